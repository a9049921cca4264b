//! Prometheus metrics, served on the admin listener.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExpiryLabels {
    kind: String,
    subject: String,
}

/// When one certificate or CRL stops being usable: `kind` is `host`, `ca`
/// or `crl`, `at` the Unix time of its notAfter (nextUpdate for a CRL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    pub kind: &'static str,
    pub subject: String,
    pub at: i64,
}

/// `fedgate_certificate_expiry_seconds{kind, subject}`: seconds from `now`
/// to each end date (negative when past). Built per scrape from the
/// running trust store, so it counts down between reloads and a CA gone
/// from the store is gone from the metric.
pub fn expiry_registry(list: &[Expiry], now: i64) -> Registry {
    let mut reg = Registry::with_prefix("fedgate");
    let family = Family::<ExpiryLabels, Gauge>::default();
    reg.register(
        "certificate_expiry_seconds",
        "Seconds until the host certificate or a CA certificate expires (notAfter) or a CRL is due (nextUpdate); negative when past",
        family.clone(),
    );
    for e in list {
        family
            .get_or_create(&ExpiryLabels {
                kind: e.kind.into(),
                subject: e.subject.clone(),
            })
            .set(e.at.saturating_sub(now));
    }
    reg
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    backend: String,
    op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabel {
    backend: String,
}

/// `fedgate_shared_state_errors_total{backend, op}` (calls to the
/// shared-state store that failed or timed out; `op="open"`: values that
/// did not open) and `fedgate_shared_state_up{backend}` (1 when its last
/// call succeeded). Built per scrape from the store's process-wide
/// counters, which live beside the store (a leaf cannot import another).
pub fn shared_state_registry(errors: &[(&str, &str, u64)], up: &[(&str, bool)]) -> Registry {
    let mut reg = Registry::with_prefix("fedgate");
    let errs = Family::<StateLabels, Counter>::default();
    reg.register(
        "shared_state_errors",
        "Shared-state store calls that failed or timed out, by backend and operation (op=open: values that did not open)",
        errs.clone(),
    );
    for (b, op, n) in errors {
        errs.get_or_create(&StateLabels {
            backend: (*b).into(),
            op: (*op).into(),
        })
        .inc_by(*n);
    }
    let ups = Family::<BackendLabel, Gauge>::default();
    reg.register(
        "shared_state_up",
        "1 when the last call to the shared-state store succeeded, else 0",
        ups.clone(),
    );
    for (b, u) in up {
        ups.get_or_create(&BackendLabel {
            backend: (*b).into(),
        })
        .set(i64::from(*u));
    }
    reg
}

/// The X.509 caches, built per scrape from the counts their modules keep:
/// - `fedgate_x509_path_validations_total{result}`: client chains judged by
///   a full path validation (`full`) or answered from the validated-path
///   cache (`cached`) ([`crate::pki::paths::counts`]);
/// - `fedgate_x509_verdicts_total{result}`: new connections whose chain's
///   VOMS attributes and gridsite values were built (`evaluated`) or taken
///   from an earlier connection with the same chain (`shared`)
///   (`crate::auth::x509::verdict_counts`).
pub fn path_cache_registry(paths: (u64, u64), verdicts: (u64, u64)) -> Registry {
    let mut reg = Registry::with_prefix("fedgate");
    for (name, help, labels) in [
        (
            "x509_path_validations",
            "Client certificate chains judged, by a full path validation (full) or from the validated-path cache (cached)",
            [("full", paths.0), ("cached", paths.1)],
        ),
        (
            "x509_verdicts",
            "New connections whose chain's VOMS attributes and gridsite values were built (evaluated) or shared with an earlier connection presenting the same chain (shared)",
            [("evaluated", verdicts.0), ("shared", verdicts.1)],
        ),
    ] {
        let fam = Family::<ResultLabel, Counter>::default();
        reg.register(name, help, fam.clone());
        for (result, n) in labels {
            fam.get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc_by(n);
        }
    }
    reg
}

pub struct Metrics {
    registry: Registry,
    /// Tells this set of metrics from another in the same process (tests
    /// build many) for [`Metrics::request`]'s per-thread handles.
    id: u64,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabel, Histogram>,
    pub upstream_errors: Family<KindLabel, Counter>,
    pub handshakes: Family<ResultLabel, Counter>,
    /// Handshakes that resumed a TLS session (also in `handshakes`).
    pub resumed_handshakes: Counter,
    pub scrubbed_headers: Counter,
    pub reloads: Family<ResultLabel, Counter>,
    pub connections: Gauge,
    /// Idle HTTP/1.1 keep-alive connections whose HTTP buffers were given
    /// back (`crate::server::connection`), also in `connections`.
    pub parked_connections: Gauge,
    pub refused_connections: Family<KindLabel, Counter>,
    pub denials: Family<KindLabel, Counter>,
    /// Logins not recorded in the identities store because its queue was
    /// full (`[plugins.identities]`).
    pub identity_records_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fedgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route and HTTP status",
            requests.clone(),
        );
        let latency = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ])
        });
        registry.register(
            "request_duration_seconds",
            "Time from request head to response head, by route",
            latency.clone(),
        );
        let upstream_errors = Family::<KindLabel, Counter>::default();
        registry.register(
            "upstream_errors",
            "Requests that could not be forwarded to Keystone, by cause",
            upstream_errors.clone(),
        );
        let handshakes = Family::<ResultLabel, Counter>::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes, by result (ok, failed, timeout, closed: the peer left before its first byte, as a TCP health check does)",
            handshakes.clone(),
        );
        let resumed_handshakes = Counter::default();
        registry.register(
            "tls_resumed_handshakes",
            "TLS handshakes that resumed a session (also counted in tls_handshakes{result=\"ok\"})",
            resumed_handshakes.clone(),
        );
        let scrubbed_headers = Counter::default();
        registry.register(
            "scrubbed_headers",
            "Client headers dropped because they could pose as identity",
            scrubbed_headers.clone(),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads, by result",
            reloads.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections currently open",
            connections.clone(),
        );
        let parked_connections = Gauge::default();
        registry.register(
            "parked_connections",
            "Idle keep-alive connections holding no HTTP buffers until the client sends again",
            parked_connections.clone(),
        );
        let refused_connections = Family::<KindLabel, Counter>::default();
        registry.register(
            "connections_refused",
            "Client connections closed before being served, by the limit reached or the PROXY header refusal",
            refused_connections.clone(),
        );
        let denials = Family::<KindLabel, Counter>::default();
        registry.register(
            "auth_denials",
            "Requests refused by an authenticator, by auth kind",
            denials.clone(),
        );
        let identity_records_dropped = Counter::default();
        registry.register(
            "identity_records_dropped",
            "Federated logins not recorded in the identities store: its queue was full",
            identity_records_dropped.clone(),
        );
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Metrics {
            registry,
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            requests,
            latency,
            upstream_errors,
            handshakes,
            resumed_handshakes,
            scrubbed_headers,
            reloads,
            connections,
            parked_connections,
            refused_connections,
            denials,
            identity_records_dropped,
        }
    }

    pub fn encode(&self) -> String {
        self.encode_with(&[])
    }

    /// The gateway's metrics followed by those of `extra` registries
    /// (built per scrape by their owners), in one exposition with a single
    /// final `# EOF`, as OpenMetrics requires.
    pub fn encode_with(&self, extra: &[&Registry]) -> String {
        let mut out = String::new();
        for r in std::iter::once(&self.registry).chain(extra.iter().copied()) {
            let _ = prometheus_client::encoding::text::encode_registry(&mut out, r);
        }
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }

    /// Counts one answered request and its latency.
    ///
    /// Every request comes here. A family's look-up builds an owned label
    /// set (two `String`s) and takes the family's lock, which both serving
    /// threads contend for; each thread keeps the handles of the
    /// (route, status) pairs it has seen instead, a short list scanned by
    /// value. The handles share the family's counters, so the exposition
    /// is the same either way.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        /// Routes and statuses a thread remembers; past this the list
        /// starts again (labels come from the configuration and a handful
        /// of statuses, so this is seldom reached).
        const HANDLES: usize = 64;
        struct Handle {
            owner: u64,
            status: u16,
            route: Box<str>,
            count: Counter,
            latency: Histogram,
        }
        thread_local! {
            static SEEN: std::cell::RefCell<Vec<Handle>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SEEN.with(|seen| {
            let mut seen = seen.borrow_mut();
            if let Some(h) = seen
                .iter()
                .find(|h| h.owner == self.id && h.status == status && &*h.route == route)
            {
                h.count.inc();
                h.latency.observe(seconds);
                return;
            }
            let count = self
                .requests
                .get_or_create(&RequestLabels {
                    route: route.into(),
                    status,
                })
                .clone();
            let latency = self
                .latency
                .get_or_create(&RouteLabel {
                    route: route.into(),
                })
                .clone();
            count.inc();
            latency.observe(seconds);
            if seen.len() >= HANDLES {
                seen.clear();
            }
            seen.push(Handle {
                owner: self.id,
                status,
                route: route.into(),
                count,
                latency,
            });
        });
    }

    pub fn handshake(&self, result: &str) {
        self.handshakes
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_state_metrics_are_exposed() {
        let m = Metrics::new();
        let reg = shared_state_registry(
            &[("redis", "get", 3), ("redis", "set", 1)],
            &[("redis", false), ("memcached", true)],
        );
        let out = m.encode_with(&[&reg]);
        assert!(
            out.contains("fedgate_shared_state_errors_total{backend=\"redis\",op=\"get\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("fedgate_shared_state_up{backend=\"redis\"} 0"),
            "{out}"
        );
        assert!(
            out.contains("fedgate_shared_state_up{backend=\"memcached\"} 1"),
            "{out}"
        );
    }

    /// Each thread keeps handles of the pairs it has seen; they must count
    /// in the family (what the exposition shows) and only in the metrics
    /// they came from.
    #[test]
    fn requests_are_counted_through_remembered_handles() {
        let (a, b) = (Metrics::new(), Metrics::new());
        for _ in 0..3 {
            a.request("keystone", 200, 0.002);
        }
        a.request("keystone", 401, 0.001);
        a.request("oidc-redirect", 302, 0.2);
        b.request("keystone", 200, 0.004);
        let (ta, tb) = (a.encode(), b.encode());
        for line in [
            "fedgate_requests_total{route=\"keystone\",status=\"200\"} 3",
            "fedgate_requests_total{route=\"keystone\",status=\"401\"} 1",
            "fedgate_requests_total{route=\"oidc-redirect\",status=\"302\"} 1",
            "fedgate_request_duration_seconds_count{route=\"keystone\"} 4",
            "fedgate_request_duration_seconds_count{route=\"oidc-redirect\"} 1",
        ] {
            assert!(ta.contains(line), "{line} in {ta}");
        }
        assert!(
            tb.contains("fedgate_requests_total{route=\"keystone\",status=\"200\"} 1"),
            "{tb}"
        );
        assert!(!tb.contains("status=\"401\""), "{tb}");
        // Another thread starts with no handles and adds to the same counts.
        std::thread::scope(|s| {
            s.spawn(|| a.request("keystone", 200, 0.002));
        });
        assert!(
            a.encode()
                .contains("fedgate_requests_total{route=\"keystone\",status=\"200\"} 4")
        );
        // Past the list's length it starts again and still counts.
        for i in 0..200u16 {
            a.request("many", 200 + i, 0.001);
        }
        a.request("keystone", 200, 0.002);
        let ta = a.encode();
        assert!(
            ta.contains("fedgate_requests_total{route=\"keystone\",status=\"200\"} 5"),
            "{ta}"
        );
        assert!(ta.contains("fedgate_requests_total{route=\"many\",status=\"399\"} 1"));
    }
}
