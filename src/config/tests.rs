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
