//! `[plugins.accounting.ams]`: where and how the built-in sender publishes
//! the queued APEL messages (what `ssmsend`'s `sender.cfg` said under
//! `[broker]`, `[certificates]` and `[messaging]` with `protocol: AMS`).
//!
//! The defaults are EGI's production values, so a site normally sets
//! nothing here but, where its files live elsewhere, `cert` and `key`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::problem::{Problems, Source};
use crate::secret::Secret;

fn default_host() -> Spanned<String> {
    Spanned::new(0..0, "msg.argo.grnet.gr".into())
}
fn default_port() -> u16 {
    443
}
fn default_auth_port() -> u16 {
    8443
}
fn default_project() -> Spanned<String> {
    Spanned::new(0..0, "accounting".into())
}
fn default_cloud_topic() -> Spanned<String> {
    Spanned::new(0..0, "eu-egi-cloud-accounting".into())
}
fn default_storage_topic() -> Spanned<String> {
    Spanned::new(0..0, "eu-egi-storage-accounting".into())
}
fn default_cert() -> Spanned<PathBuf> {
    Spanned::new(0..0, "/etc/grid-security/hostcert.pem".into())
}
fn default_key() -> Spanned<PathBuf> {
    Spanned::new(0..0, "/etc/grid-security/hostkey.pem".into())
}
fn default_timeout() -> Spanned<u64> {
    Spanned::new(0..0, 10)
}
fn default_retries() -> Spanned<u32> {
    Spanned::new(0..0, 3)
}
fn default_retry_delay() -> u64 {
    60
}

/// `[plugins.accounting.ams]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmsOptions {
    /// The AMS host name (EGI test service: `msg-devel.argo.grnet.gr`).
    #[serde(default = "default_host")]
    pub host: Spanned<String>,
    /// Port of the messaging API.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Port of the authentication service that trades the host
    /// certificate for a token (`authx509`), used when `token` is unset.
    #[serde(default = "default_auth_port")]
    pub auth_port: u16,
    /// The AMS project.
    #[serde(default = "default_project")]
    pub project: Spanned<String>,
    /// Topic of cloud, public IP and accelerator messages.
    #[serde(default = "default_cloud_topic")]
    pub cloud_topic: Spanned<String>,
    /// Topic of storage (StAR) messages.
    #[serde(default = "default_storage_topic")]
    pub storage_topic: Spanned<String>,
    /// An AMS token; without one, the host certificate obtains one.
    #[serde(default)]
    pub token: Option<Secret>,
    /// The host certificate (PEM): signs every message and authenticates
    /// to `authx509`. Its DN must be the GOCDB Host DN of the site's
    /// accounting service.
    #[serde(default = "default_cert")]
    pub cert: Spanned<PathBuf>,
    /// The host certificate's key (PEM, unencrypted).
    #[serde(default = "default_key")]
    pub key: Spanned<PathBuf>,
    /// CA certificates (PEM) trusted for the AMS server besides the
    /// system ones.
    #[serde(default)]
    pub ca_file: Option<Spanned<PathBuf>>,
    /// Seconds one HTTP exchange may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: Spanned<u64>,
    /// Further attempts after a timeout, a 408 or a 5xx (SSM's default is
    /// 3).
    #[serde(default = "default_retries")]
    pub retries: Spanned<u32>,
    /// Seconds between attempts (argo-ams-library's `retrysleep`).
    #[serde(default = "default_retry_delay")]
    pub retry_delay_secs: u64,
}

impl Default for AmsOptions {
    fn default() -> Self {
        AmsOptions {
            host: default_host(),
            port: default_port(),
            auth_port: default_auth_port(),
            project: default_project(),
            cloud_topic: default_cloud_topic(),
            storage_topic: default_storage_topic(),
            token: None,
            cert: default_cert(),
            key: default_key(),
            ca_file: None,
            timeout_secs: default_timeout(),
            retries: default_retries(),
            retry_delay_secs: default_retry_delay(),
        }
    }
}

/// A name that goes into a URL path or authority unescaped: AMS project
/// and topic names are `[A-Za-z0-9_.-]`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Most retries accepted: with the default delay, 10 retries already
/// hold one run for ten minutes.
pub const MAX_RETRIES: u32 = 10;

impl AmsOptions {
    fn base(&self, port: u16) -> String {
        if port == 443 {
            format!("https://{}", self.host.get_ref())
        } else {
            format!("https://{}:{port}", self.host.get_ref())
        }
    }

    /// `POST` target publishing to `topic`.
    pub fn publish_url(&self, topic: &str) -> String {
        format!(
            "{}/v1/projects/{}/topics/{topic}:publish",
            self.base(self.port),
            self.project.get_ref()
        )
    }

    /// `GET` target trading the client certificate for a token.
    pub fn authx509_url(&self) -> String {
        format!(
            "{}/v1/service-types/ams/hosts/{}:authx509",
            self.base(self.auth_port),
            self.host.get_ref()
        )
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(*self.timeout_secs.get_ref())
    }

    pub(crate) fn validate(&self, src: &Source, p: &mut Problems) {
        const AT: &str = "plugins.accounting.ams";
        if !is_name(self.host.get_ref()) {
            p.push(src.problem(
                &self.host,
                format!("{AT}.host {:?} is not a host name", self.host.get_ref()),
            ));
        }
        for (key, v) in [
            ("project", &self.project),
            ("cloud_topic", &self.cloud_topic),
            ("storage_topic", &self.storage_topic),
        ] {
            if !is_name(v.get_ref()) {
                p.push(src.problem(
                    v,
                    format!(
                        "{AT}.{key} {:?}: only letters, digits, '-', '_', '.'",
                        v.get_ref()
                    ),
                ));
            }
        }
        if *self.timeout_secs.get_ref() == 0 {
            p.push(src.problem(
                &self.timeout_secs,
                format!("{AT}.timeout_secs must be at least 1"),
            ));
        }
        if *self.retries.get_ref() > MAX_RETRIES {
            p.push(src.problem(
                &self.retries,
                format!("{AT}.retries must be at most {MAX_RETRIES}"),
            ));
        }
        let files = [
            ("cert", Some(&self.cert)),
            ("key", Some(&self.key)),
            ("ca_file", self.ca_file.as_ref()),
        ];
        for (key, f) in files {
            if let Some(f) = f {
                if !f.get_ref().is_file() {
                    p.push(src.problem(
                        f,
                        format!("{AT}.{key} {}: no such file", f.get_ref().display()),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> AmsOptions {
        toml::from_str(s).unwrap()
    }

    fn problems(o: &AmsOptions) -> Vec<String> {
        let mut p = Problems::default();
        o.validate(&Source::default(), &mut p);
        p.0.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn defaults_are_egi_production() {
        let o = parse("");
        assert_eq!(
            o.publish_url(o.cloud_topic.get_ref()),
            "https://msg.argo.grnet.gr/v1/projects/accounting/topics/eu-egi-cloud-accounting:publish"
        );
        assert_eq!(
            o.publish_url(o.storage_topic.get_ref()),
            "https://msg.argo.grnet.gr/v1/projects/accounting/topics/eu-egi-storage-accounting:publish"
        );
        assert_eq!(
            o.authx509_url(),
            "https://msg.argo.grnet.gr:8443/v1/service-types/ams/hosts/msg.argo.grnet.gr:authx509"
        );
        assert_eq!(o.timeout(), Duration::from_secs(10));
        assert_eq!(*o.retries.get_ref(), 3);
        assert_eq!(o.retry_delay_secs, 60);
        assert!(o.token.is_none() && o.ca_file.is_none());
        assert_eq!(
            o.cert.get_ref(),
            &PathBuf::from("/etc/grid-security/hostcert.pem")
        );
        assert_eq!(
            o.key.get_ref(),
            &PathBuf::from("/etc/grid-security/hostkey.pem")
        );
    }

    /// Each key, set, changes what the sender does.
    #[test]
    fn every_key_is_read() {
        let o = parse(
            r#"
            host = "msg-devel.argo.grnet.gr"
            port = 8080
            auth_port = 9443
            project = "p1"
            cloud_topic = "c1"
            storage_topic = "s1"
            token = "tok"
            cert = "/c.pem"
            key = "/k.pem"
            ca_file = "/ca.pem"
            timeout_secs = 7
            retries = 5
            retry_delay_secs = 2
            "#,
        );
        assert_eq!(
            o.publish_url(o.cloud_topic.get_ref()),
            "https://msg-devel.argo.grnet.gr:8080/v1/projects/p1/topics/c1:publish"
        );
        assert_eq!(
            o.publish_url(o.storage_topic.get_ref()),
            "https://msg-devel.argo.grnet.gr:8080/v1/projects/p1/topics/s1:publish"
        );
        assert_eq!(
            o.authx509_url(),
            "https://msg-devel.argo.grnet.gr:9443/v1/service-types/ams/hosts/msg-devel.argo.grnet.gr:authx509"
        );
        assert_eq!(o.token.as_ref().map(Secret::expose), Some("tok"));
        assert_eq!(o.cert.get_ref(), &PathBuf::from("/c.pem"));
        assert_eq!(o.key.get_ref(), &PathBuf::from("/k.pem"));
        assert_eq!(
            o.ca_file.as_ref().map(|c| c.get_ref().clone()),
            Some("/ca.pem".into())
        );
        assert_eq!(o.timeout(), Duration::from_secs(7));
        assert_eq!(*o.retries.get_ref(), 5);
        assert_eq!(o.retry_delay_secs, 2);
        assert!(
            toml::from_str::<AmsOptions>("topic = \"x\"").is_err(),
            "unknown keys refused"
        );
    }

    #[test]
    fn bad_values_are_problems() {
        let o = parse(
            r#"
            host = "h/x"
            project = ""
            cloud_topic = "a b"
            storage_topic = "ok"
            cert = "/nonexistent/c.pem"
            key = "/nonexistent/k.pem"
            ca_file = "/nonexistent/ca.pem"
            timeout_secs = 0
            retries = 11
            "#,
        );
        let p = problems(&o);
        for needle in [
            ".host",
            ".project",
            ".cloud_topic",
            ".cert ",
            ".key ",
            ".ca_file",
            ".timeout_secs",
            ".retries",
        ] {
            assert!(p.iter().any(|x| x.contains(needle)), "{needle}: {p:?}");
        }
        assert_eq!(p.len(), 8, "{p:?}");
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f.pem");
        std::fs::write(&f, "x").unwrap();
        let good = AmsOptions {
            cert: Spanned::new(0..0, f.clone()),
            key: Spanned::new(0..0, f),
            ..Default::default()
        };
        assert!(problems(&good).is_empty(), "{:?}", problems(&good));
    }
}
