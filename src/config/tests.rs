use std::path::Path;

use super::*;
use crate::tls::ClientAuth;

fn parse(text: &str) -> Result<Config, Problems> {
    Config::parse(Path::new("fedgate.toml"), text.to_string())
}

const MINIMAL: &str =
    "[upstream]\nurl = \"uwsgi://127.0.0.1:5001\"\n[[route]]\npath = \"^/\"\nauth = \"none\"\n";

#[test]
fn defaults_are_the_grid_paths() {
    let c = parse(MINIMAL).unwrap();
    assert!(c.validate().is_empty(), "{}", c.validate());
    assert_eq!(
        c.tls.certificate.get_ref(),
        Path::new("/etc/grid-security/hostcert.pem")
    );
    assert_eq!(
        c.tls.private_key.get_ref(),
        Path::new("/etc/grid-security/hostkey.pem")
    );
    assert_eq!(
        c.tls.ca_dir.get_ref(),
        Path::new("/etc/grid-security/certificates")
    );
    assert_eq!(
        c.voms.dir.get_ref(),
        Path::new("/etc/grid-security/vomsdir")
    );
    assert_eq!(c.tls.client_auth, ClientAuth::Optional);
    assert_eq!(
        c.server.listen_addrs(),
        vec!["0.0.0.0:5000".parse().unwrap()]
    );
    assert_eq!(
        c.admin.listen_addrs(),
        vec!["127.0.0.1:9090".parse().unwrap()]
    );
}

#[test]
fn unknown_keys_are_errors_with_line() {
    let e = parse("[upstream]\nurl = \"uwsgi://127.0.0.1:5001\"\ntimeout = 3\n")
        .err()
        .unwrap();
    assert_eq!(e.0[0].line, Some(3), "{e}");
    assert!(e.0[0].message.contains("timeout"), "{e}");
    let e = parse(&format!("{MINIMAL}[tls]\nclient_auht = \"required\"\n"))
        .err()
        .unwrap();
    assert_eq!(e.0[0].line, Some(7), "{e}");
    let e = parse(&format!("{MINIMAL}[bogus]\n")).err().unwrap();
    assert!(e.to_string().starts_with("fedgate.toml:6:"), "{e}");
}

#[test]
fn bad_values_name_their_line() {
    let c = parse(
        "[server]\nlisten = [\"0.0.0.0:5000\", \"not-an-address\"]\ntrusted_proxies = [\"10.0.0.0/40\"]\n\
         [upstream]\nurl = \"https://keystone:5000\"\n[[route]]\npath = \"^/\"\nauth = \"none\"\n",
    )
    .unwrap();
    let p = c.validate();
    let lines: Vec<_> = p.0.iter().map(|x| x.line).collect();
    assert_eq!(lines, vec![Some(2), Some(3), Some(5)], "{p}");
    assert!(p.0[2].message.contains("uwsgi://host:port"), "{p}");
}

#[test]
fn proxy_protocol_needs_trusted_proxies() {
    let c = parse(&format!("[server]\nproxy_protocol = true\n{MINIMAL}")).unwrap();
    let p = c.validate();
    assert_eq!(p.0.len(), 1, "{p}");
    assert_eq!(p.0[0].line, Some(2), "{p}");
    assert!(p.0[0].message.contains("trusted_proxies"), "{p}");
    let c = parse(&format!(
        "[server]\nproxy_protocol = true\ntrusted_proxies = \"10.0.0.5\"\n{MINIMAL}"
    ))
    .unwrap();
    assert!(c.server.proxy_protocol());
    assert!(c.validate().0.is_empty());
    assert!(
        !parse(MINIMAL).unwrap().server.proxy_protocol(),
        "off by default"
    );
}

#[test]
fn public_names_are_authorities_with_their_line() {
    let c = parse(&format!(
        "[server]\npublic_names = [\n  \"keystone.example.org:5000\",\n  \"evil.example/x\",\n]\n{MINIMAL}"
    ))
    .unwrap();
    let p = c.validate();
    assert_eq!(p.0.len(), 1, "{p}");
    assert_eq!(p.0[0].line, Some(4), "{p}");
    assert!(p.0[0].message.contains("public_names"), "{p}");
    let c = parse(&format!(
        "[server]\npublic_names = [\"keystone.example.org:5000\", \"k2\"]\n{MINIMAL}"
    ))
    .unwrap();
    assert!(c.validate().is_empty());
    assert_eq!(
        c.server.public_names().url_for("/v3/x").as_deref(),
        Some("https://keystone.example.org:5000/v3/x")
    );
}

#[test]
fn client_auth_values() {
    for (v, want) in [
        ("none", ClientAuth::None),
        ("optional", ClientAuth::Optional),
        ("required", ClientAuth::Required),
    ] {
        let c = parse(&format!("{MINIMAL}[tls]\nclient_auth = \"{v}\"\n")).unwrap();
        assert_eq!(c.tls.client_auth, want);
    }
    assert!(parse(&format!("{MINIMAL}[tls]\nclient_auth = \"maybe\"\n")).is_err());
}

#[test]
fn no_routes_is_a_problem() {
    let c = parse("[upstream]\nurl = \"http://127.0.0.1:5000\"\n").unwrap();
    let p = c.validate();
    assert_eq!(p.0.len(), 1);
    assert!(p.0[0].message.contains("[[route]]"));
}

#[test]
fn missing_upstream_is_an_error() {
    let e = parse("[[route]]\npath = \"^/\"\nauth = \"none\"\n")
        .err()
        .unwrap();
    assert!(e.to_string().contains("upstream"), "{e}");
}

#[test]
fn example_config_parses_and_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/fedgate.example.toml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let p = c.validate();
    assert!(p.is_empty(), "{p}");
}

/// Route tables as the configuration file gives them.
mod routes {
    use super::*;
    use crate::route::{AuthKind, RouteTable};
    use std::path::Path;

    fn cfg(routes: &str) -> Config {
        let text = format!("[upstream]\nurl = \"http://127.0.0.1:1\"\n{routes}");
        Config::parse(Path::new("t.toml"), text).unwrap()
    }

    #[test]
    fn first_match_wins() {
        let c = cfg(
            "[[route]]\nname = \"voms\"\npath = \"^/v3/OS-FEDERATION/.*/protocols/mapped/auth$\"\nauth = \"none\"\n\
             [[route]]\npath = \"^/\"\nauth = \"none\"\n",
        );
        assert!(c.validate().is_empty(), "{}", c.validate());
        let t = RouteTable::build(&c.routes, &c.source).unwrap();
        let r = t
            .find("/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth")
            .unwrap();
        assert_eq!(r.name.as_str(), "voms");
        let r = t.find("/v3/auth/tokens").unwrap();
        assert_eq!((r.name.as_str(), r.auth()), ("route1", AuthKind::None));
    }

    #[test]
    fn no_match_is_none() {
        let c = cfg("[[route]]\npath = \"^/v3$\"\nauth = \"none\"\n");
        let t = RouteTable::build(&c.routes, &c.source).unwrap();
        assert!(t.find("/v2.0").is_none());
    }

    #[test]
    fn bad_regex_names_its_line() {
        let c = cfg("\n[[route]]\npath = \"^/(\"\nauth = \"none\"\n");
        let p = c.validate();
        assert_eq!(p.0.len(), 1, "{p}");
        assert_eq!(p.0[0].line, Some(5));
        assert!(p.0[0].message.contains("regex"));
    }

    #[test]
    fn unknown_auth_is_a_parse_error_with_line() {
        let e = Config::parse(
            Path::new("t.toml"),
            "[upstream]\nurl = \"http://x:1\"\n[[route]]\npath = \"^/\"\nauth = \"kerberos\"\n"
                .into(),
        )
        .err()
        .unwrap();
        assert_eq!(e.0[0].line, Some(5), "{e}");
        assert!(e.0[0].message.contains("kerberos"), "{e}");
    }
}

/// `[tls] watch`, `watch_interval_secs`, `watch_debounce_ms` and
/// `expiry_warning_days`: defaults, values, and refusals with their line.
#[test]
fn tls_watch_settings() {
    use crate::tls::WatchMode;
    use std::time::Duration;
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.tls.watch, WatchMode::Inotify);
    assert_eq!(c.tls.watch_interval(), Duration::from_secs(30));
    assert_eq!(c.tls.watch_debounce(), Duration::from_secs(2));
    assert_eq!(c.tls.expiry_warning_secs(), 14 * 86_400);
    let c = parse(&format!(
        "{MINIMAL}[tls]\nwatch = \"poll\"\nwatch_interval_secs = 5\nwatch_debounce_ms = 250\nexpiry_warning_days = 30\n"
    ))
    .unwrap();
    assert_eq!(c.tls.watch, WatchMode::Poll);
    assert_eq!(c.tls.watch_interval(), Duration::from_secs(5));
    assert_eq!(c.tls.watch_debounce(), Duration::from_millis(250));
    assert_eq!(c.tls.expiry_warning_secs(), 30 * 86_400);
    assert!(c.validate().is_empty(), "{}", c.validate());
    let c = parse(&format!("{MINIMAL}[tls]\nwatch = \"off\"\n")).unwrap();
    assert_eq!(c.tls.watch, WatchMode::Off);
    assert!(parse(&format!("{MINIMAL}[tls]\nwatch = \"fanotify\"\n")).is_err());
    let text = format!("{MINIMAL}[tls]\nwatch_interval_secs = 0\nwatch_debounce_ms = 7200000\n");
    let first = MINIMAL.lines().count() + 2;
    let p = parse(&text).unwrap().validate();
    assert_eq!(p.0.len(), 2, "{p}");
    assert_eq!(p.0[0].line, Some(first), "{p}");
    assert_eq!(p.0[1].line, Some(first + 1), "{p}");
}

mod state {
    use super::*;
    use crate::kv::BackendKind;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn state(extra: &str) -> Result<crate::config::StateResolved, Problems> {
        let c = parse(&format!("{MINIMAL}{extra}"))?;
        c.state()
    }

    fn err(extra: &str) -> Problems {
        state(extra).expect_err("a problem")
    }

    #[test]
    fn default_is_memory_with_its_defaults() {
        let r = state("").unwrap();
        assert_eq!(r.settings.backend, BackendKind::Memory);
        assert_eq!(r.settings.prefix, "fedgate:");
        assert_eq!(r.settings.timeout, Duration::from_millis(500));
        assert!(r.key_ring().is_none());
    }

    /// Each key reaches the settings the store is built from.
    #[test]
    fn every_key_is_read() {
        let r = state(&format!(
            "[state]\nbackend = \"memcached\"\nservers = [\"127.0.0.1:1\", \"h:2\"]\n\
             timeout_ms = 123\nprefix = \"c1:\"\nkeys = [\"{KEY}\"]\n"
        ))
        .unwrap();
        assert_eq!(r.settings.backend, BackendKind::Memcached);
        assert_eq!(r.settings.servers, ["127.0.0.1:1", "h:2"]);
        assert_eq!(r.settings.timeout, Duration::from_millis(123));
        assert_eq!(r.settings.prefix, "c1:");
        assert!(r.key_ring().is_some());
        let r = state(&format!(
            "[state]\nbackend = \"redis\"\nsentinels = [\"127.0.0.1:26379\"]\nmaster_name = \"m\"\n\
             db = 3\nusername = \"u\"\npassword = \"pw\"\ntls = true\nkeys = [\"{KEY}\"]\n"
        ))
        .unwrap();
        let s = &r.settings;
        assert_eq!(s.sentinels, ["127.0.0.1:26379"]);
        assert_eq!(s.master_name.as_deref(), Some("m"));
        assert_eq!(s.db, Some(3));
        assert_eq!(s.username.as_deref(), Some("u"));
        assert_eq!(s.password.as_deref(), Some("pw"));
        assert!(s.tls);
        assert!(
            !format!("{r:?}").contains("pw\""),
            "password redacted: {r:?}"
        );
        let r = state(&format!(
            "[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/1\"\nkeys = [\"{KEY}\"]\n"
        ))
        .unwrap();
        assert_eq!(r.settings.url.as_deref(), Some("redis://127.0.0.1:6379/1"));
        // Keys default to [oidc.session] keys.
        let r = state(&format!(
            "[oidc.session]\nkeys = [\"{KEY}\"]\n[state]\nbackend = \"memcached\"\nservers = [\"h:1\"]\n"
        ))
        .unwrap();
        assert!(r.key_ring().is_some());
    }

    #[test]
    fn tls_ca_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ca.pem");
        std::fs::write(
            &f,
            "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let r = state(&format!(
            "[state]\nbackend = \"redis\"\nurl = \"rediss://h:1/0\"\ntls = true\ntls_ca_file = \"{}\"\nkeys = [\"{KEY}\"]\n",
            f.display()
        ))
        .unwrap();
        assert!(r.settings.tls_ca_pem.is_some());
        let e = err(&format!(
            "[state]\nbackend = \"redis\"\nurl = \"rediss://h:1/0\"\ntls_ca_file = \"{}/none.pem\"\nkeys = [\"{KEY}\"]\n",
            dir.path().display()
        ));
        assert_eq!(e.0[0].line, Some(9), "{e}");
    }

    #[test]
    fn mistakes_name_their_line() {
        // line 6 is [state], 7 the first key.
        let e = err("[state]\nbackend = \"memcached\"\n");
        assert_eq!(e.0[0].line, Some(7), "{e}");
        assert!(e.to_string().contains("servers"), "{e}");
        let e = err(&format!(
            "[state]\nbackend = \"redis\"\nkeys = [\"{KEY}\"]\n"
        ));
        assert!(e.to_string().contains("url"), "{e}");
        let e = err("[state]\nbackend = \"redis\"\nurl = \"redis://h:1/0\"\n");
        assert!(e.to_string().contains("sealing keys"), "{e}");
        let e = err(&format!(
            "[state]\nbackend = \"memcached\"\nservers = [\"h:1\"]\nurl = \"redis://h:1\"\nkeys = [\"{KEY}\"]\n"
        ));
        assert_eq!(e.0[0].line, Some(9), "{e}");
        assert!(
            e.to_string()
                .contains("state.url is read only with backend = \"redis\""),
            "{e}"
        );
        let e = err("[state]\nservers = [\"h:1\"]\n");
        assert!(e.to_string().contains("memcached"), "{e}");
        let e = err(&format!("[state]\nkeys = [\"{KEY}\"]\n"));
        assert!(e.to_string().contains("state.keys is read only"), "{e}");
        let e = err("[state]\nprefix = \"a b\"\n");
        assert_eq!(e.0[0].line, Some(7), "{e}");
        let e = err("[state]\ntimeout_ms = 0\n");
        assert_eq!(e.0[0].line, Some(7), "{e}");
        let e = err(&format!(
            "[state]\nbackend = \"redis\"\nurl = \"redis://h:1\"\ntls = true\nkeys = [\"{KEY}\"]\n"
        ));
        assert!(e.to_string().contains("rediss://"), "{e}");
        let e = err(&format!(
            "[state]\nbackend = \"memcached\"\nservers = [\"nope\"]\nkeys = [\"{KEY}\"]\n"
        ));
        assert_eq!(e.0[0].line, Some(8), "{e}");
        let e = err("[state]\nbackend = \"memcached\"\nservers = [\"h:1\"]\nkeys = [\"short\"]\n");
        assert_eq!(e.0[0].line, Some(9), "{e}");
        // deny_unknown_fields
        let e = parse(&format!("{MINIMAL}[state]\nserver = [\"h:1\"]\n"))
            .err()
            .unwrap();
        assert_eq!(e.0[0].line, Some(7), "{e}");
        let e = parse(&format!("{MINIMAL}[state]\nbackend = \"etcd\"\n"))
            .err()
            .unwrap();
        assert_eq!(e.0[0].line, Some(7), "{e}");
    }

    #[test]
    fn the_legacy_keys_are_a_shorthand_for_redis() {
        let legacy = format!(
            "[oidc.session]\nkeys = [\"{KEY}\"]\nredis_url = \"redis://h:1/0\"\n\
             [cache]\nredis_url = \"redis://h:1/0\"\nredis_prefix = \"old:\"\nredis_timeout_ms = 77\n"
        );
        let r = state(&legacy).unwrap();
        assert_eq!(r.settings.backend, BackendKind::Redis);
        assert_eq!(r.settings.url.as_deref(), Some("redis://h:1/0"));
        assert_eq!(r.settings.prefix, "old:");
        assert_eq!(r.settings.timeout, Duration::from_millis(77));
        let c = parse(&format!("{MINIMAL}{legacy}")).unwrap();
        let d = c.state_deprecations();
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(
            d[0].starts_with("fedgate.toml:10: cache.redis_url is deprecated"),
            "{d:?}"
        );
        // Equal in both places: fine.
        state(&format!(
            "{legacy}[state]\nurl = \"redis://h:1/0\"\nprefix = \"old:\"\n"
        ))
        .unwrap();
        // Different: an error at the legacy key's line.
        let e = err(&format!(
            "[oidc.session]\nkeys = [\"{KEY}\"]\nredis_url = \"redis://h:1/0\"\n\
             [cache]\nredis_url = \"redis://h:2/0\"\n"
        ));
        assert_eq!(e.0[0].line, Some(8), "{e}");
        let e = err(&format!(
            "[cache]\nredis_url = \"redis://h:1/0\"\n[state]\nurl = \"redis://other:1/0\"\nkeys = [\"{KEY}\"]\n"
        ));
        assert_eq!(e.0[0].line, Some(7), "{e}");
        let e = err(&format!(
            "[cache]\nredis_url = \"redis://h:1/0\"\n[state]\nbackend = \"memcached\"\nservers = [\"h:1\"]\nkeys = [\"{KEY}\"]\n"
        ));
        assert_eq!(e.0[0].line, Some(7), "{e}");
        let e = err(&format!(
            "[cache]\nredis_url = \"redis://h:1/0\"\nredis_timeout_ms = 100\n[state]\ntimeout_ms = 200\nkeys = [\"{KEY}\"]\n"
        ));
        assert_eq!(e.0[0].line, Some(8), "{e}");
        let e = err(&format!(
            "[cache]\nredis_url = \"redis://h:1/0\"\nredis_prefix = \"a:\"\n[state]\nprefix = \"b:\"\nkeys = [\"{KEY}\"]\n"
        ));
        assert_eq!(e.0[0].line, Some(8), "{e}");
    }
}
