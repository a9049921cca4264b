//! From a parsed Apache configuration to fedgate's TOML: the vhost that
//! serves Keystone, its mod_ssl, mod_auth_openidc, gridsite, mod_wsgi and
//! mod_proxy_uwsgi settings, and one `[[route]]` per `<Location>` that
//! asks for authentication.
//!
//! Apache merges `<Location>`/`<LocationMatch>` sections in file order
//! (the main server's before the vhost's) and the last one that sets
//! `AuthType` decides; fedgate takes the first route that matches. The
//! routes are therefore written in reverse order of the sections, so the
//! same section wins for every path.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::parse::{At, Directive, Parsed};

/// What the command line adds to the Apache files.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Replaces the directory `OIDCMetadataDir` names.
    pub metadata_dir: Option<PathBuf>,
    /// Keystone's `[federation] trusted_dashboard` values (they are not in
    /// the Apache configuration).
    pub trusted_dashboards: Vec<String>,
}

/// One directive that was not translated, or translated with a change in
/// behaviour: printed as `file:line: Directive: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub at: At,
    pub directive: String,
    pub reason: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.directive, self.reason)
    }
}

/// The result of a translation.
#[derive(Debug, Clone)]
pub struct Translation {
    /// fedgate's configuration, with `# from file:line` comments.
    pub toml: String,
    pub notes: Vec<Note>,
}

/// Nothing in the files could become a fedgate configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error(
        "no virtual host serves Keystone (no ProxyPass to uwsgi:// or http://, no WSGIScriptAlias){0}"
    )]
    NoKeystone(String),
}

/// A value with the directive it came from.
#[derive(Debug, Clone)]
struct Val<T> {
    v: T,
    at: At,
    name: String,
}

impl<T> Val<T> {
    fn of(d: &Directive, v: T) -> Self {
        Val {
            v,
            at: d.at.clone(),
            name: d.name.clone(),
        }
    }
    fn from(&self) -> String {
        format!("{} ({})", self.name, self.at)
    }
}

/// The authentication a section asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    None,
    Oidc,
    Bearer,
    X509,
}

impl Auth {
    fn name(self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Oidc => "oidc",
            Auth::Bearer => "bearer",
            Auth::X509 => "x509",
        }
    }
}

#[derive(Debug, Clone)]
struct RouteDraft {
    regex: String,
    /// The section header, for comments.
    section: String,
    at: At,
    auth: Auth,
    auth_from: String,
    claims: Vec<(String, bool, String)>,
    /// An IdP issuer pinned by `OIDCDiscoverURL ...?iss=`.
    pinned_issuer: Option<Val<String>>,
    /// The regex does not compile in Rust's dialect.
    broken: Option<String>,
}

#[derive(Default)]
struct Draft {
    notes: Vec<Note>,
    listen: Vec<(String, String)>,
    public_names: Vec<Val<String>>,
    ssl_engine: Option<Val<bool>>,
    cert: Option<Val<String>>,
    key: Option<Val<String>>,
    ca_dir: Option<Val<String>>,
    crl_dir: Option<Val<String>>,
    crl_check: Option<Val<String>>,
    client_auth: Option<Val<String>>,
    ssl_options: Option<Val<String>>,
    proxy_limit: Option<Val<u32>>,
    upstream: Option<Val<String>>,
    proxy_paths: Vec<Val<String>>,
    wsgi: Option<Val<String>>,
    uwsgi_ini: Option<String>,
    // mod_auth_openidc
    provider_metadata_url: Option<Val<String>>,
    provider_issuer: Option<Val<String>>,
    client_id: Option<Val<String>>,
    client_secret: Option<Val<String>>,
    oauth_client_id: Option<Val<String>>,
    oauth_client_secret: Option<Val<String>>,
    introspection: Option<Val<String>>,
    oauth_metadata_url: Option<Val<String>>,
    jwks_uri: Option<Val<String>>,
    ca_bundle: Option<Val<String>>,
    remote_user: Option<Val<String>>,
    oauth_remote_user: Option<Val<String>>,
    scope: Option<Val<String>>,
    redirect_uri: Option<Val<String>>,
    passphrase: Option<Val<String>>,
    inactivity: Option<Val<u64>>,
    max_duration: Option<Val<u64>>,
    state_timeout: Option<Val<u64>>,
    max_state_cookies: Option<Val<u64>>,
    iat_slack: Option<Val<u64>>,
    jwks_refresh: Option<Val<u64>>,
    metadata_refresh: Option<Val<u64>>,
    introspection_interval: Option<Val<i64>>,
    claims: Option<Val<Vec<String>>>,
    logged_out_url: Option<Val<String>>,
    redis: Option<Val<String>>,
    metadata_dir: Option<Val<String>>,
    authn_header: Option<Val<String>>,
    routes: Vec<RouteDraft>,
}

fn note(d: &Directive, reason: impl Into<String>) -> Note {
    Note {
        at: d.at.clone(),
        directive: d.name.clone(),
        reason: reason.into(),
    }
}

/// One translated key: `key = value  # from file:line (Directive)`, so
/// every value in the output names the directive it came from.
fn set(t: &mut String, key: &str, value: impl std::fmt::Display, from: impl std::fmt::Display) {
    t.push_str(&format!("{key} = {value}  # from {from}\n"));
}

/// A TOML basic string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn on(d: &Directive) -> bool {
    d.arg(0)
        .is_some_and(|a| a.eq_ignore_ascii_case("on") || a.eq_ignore_ascii_case("true"))
}

/// `<IfModule>`/`<IfDefine>`/`<IfVersion>` resolved: modules are assumed
/// loaded (the vhost was written for them), defines are the file's own.
fn flatten(dirs: &[Directive], parsed: &Parsed, notes: &mut Vec<Note>) -> Vec<Directive> {
    let mut out = Vec::new();
    for d in dirs {
        let cond = |name: &str| {
            let (neg, n) = match name.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, name),
            };
            (neg, n.to_string())
        };
        if d.is("IfModule") {
            let (neg, _) = cond(d.arg(0).unwrap_or_default());
            if !neg {
                out.extend(flatten(d.children(), parsed, notes));
            } else if !d.children().is_empty() {
                notes.push(note(
                    d,
                    "skipped: its contents apply only without a module this configuration uses",
                ));
            }
        } else if d.is("IfDefine") {
            let (neg, n) = cond(d.arg(0).unwrap_or_default());
            if parsed.defines.contains_key(&n) != neg {
                out.extend(flatten(d.children(), parsed, notes));
            }
        } else if d.is("IfVersion") || d.is("IfFile") || d.is("IfDirective") || d.is("IfSection") {
            out.extend(flatten(d.children(), parsed, notes));
        } else if let Some(ch) = &d.children {
            let mut d2 = d.clone();
            d2.children = Some(flatten(ch, parsed, notes));
            out.push(d2);
        } else {
            out.push(d.clone());
        }
    }
    out
}

fn serves_keystone(dirs: &[Directive]) -> bool {
    dirs.iter().any(|d| {
        (d.is("ProxyPass")
            && d.arg(1).is_some_and(|t| {
                let t = t
                    .strip_prefix("unix:")
                    .and_then(|t| t.split_once('|'))
                    .map_or(t, |(_, url)| url);
                t.starts_with("uwsgi://") || t.starts_with("http://") || t.starts_with("https://")
            }))
            || d.is("WSGIScriptAlias")
    }) || dirs.iter().any(|d| {
        (d.is("Location") || d.is("LocationMatch"))
            && d.children().iter().any(|c| c.is("ProxyPass"))
    })
}

/// Apache's `<Location path>` as a regex on fedgate's canonical path:
/// `/a/b` covers `/a/b` and everything below it (not `/a/bc`); `*`, `?`
/// and `[...]` are wildcards within one segment.
pub fn location_regex(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "^/".into();
    }
    let mut re = String::from("^");
    let mut chars = trimmed.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                let mut class = String::new();
                let mut closed = false;
                for d in chars.by_ref() {
                    if d == ']' {
                        closed = true;
                        break;
                    }
                    class.push(d);
                }
                if closed {
                    let class = class.replacen('!', "^", usize::from(class.starts_with('!')));
                    re.push('[');
                    re.push_str(&class.replace('\\', "\\\\").replace('[', "\\["));
                    re.push(']');
                } else {
                    re.push_str(&regex::escape(&format!("[{class}")));
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push_str("(/|$)");
    re
}

/// The issuer a discovery URL belongs to.
fn issuer_of_discovery(url: &str) -> String {
    url.strip_suffix("/.well-known/openid-configuration")
        .or_else(|| url.strip_suffix("/.well-known/oauth-authorization-server"))
        .unwrap_or(url)
        .to_string()
}

/// A guess at the issuer behind an introspection endpoint (Keycloak,
/// oidc-provider, MITREid/INDIGO IAM layouts).
fn issuer_of_introspection(url: &str) -> String {
    for suffix in [
        "/protocol/openid-connect/token/introspect",
        "/token/introspection",
        "/introspect",
        "/oauth2/introspect",
    ] {
        if let Some(i) = url.strip_suffix(suffix) {
            return i.to_string();
        }
    }
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| url.to_string())
}

fn idp_name(issuer: &str) -> String {
    url::Url::parse(issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "idp".into())
}

fn uwsgi_ini(wsgi: &Directive, daemon: Option<&Directive>, socket: &str) -> String {
    let script = wsgi.arg(1).unwrap_or("/usr/bin/keystone-wsgi-public");
    let mut ini = format!(
        "[uwsgi]\nwsgi-file = {script}\nuwsgi-socket = {socket}\nbuffer-size = 65535\nmaster = true\n"
    );
    if let Some(d) = daemon {
        for a in d.args.iter().skip(1) {
            if let Some((k, v)) = a.split_once('=') {
                match k {
                    "processes" => ini.push_str(&format!("processes = {v}\n")),
                    "threads" => ini.push_str(&format!("threads = {v}\n")),
                    "user" => ini.push_str(&format!("uid = {v}\n")),
                    "group" => ini.push_str(&format!("gid = {v}\n")),
                    "python-home" => ini.push_str(&format!("virtualenv = {v}\n")),
                    "python-path" => ini.push_str(&format!("pythonpath = {v}\n")),
                    _ => {}
                }
            }
        }
    }
    ini.push_str("die-on-term = true\n");
    ini
}

/// Process-level directives with nothing to translate, and why.
fn process_level(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    let r = match n.as_str() {
        "loadmodule" | "loadfile" => "fedgate has its modules built in",
        "user" | "group" => "run fedgate as its own user (its systemd unit)",
        "errorlog" | "customlog" | "logformat" | "loglevel" | "transferlog" => {
            "fedgate logs one line per request to stderr ([logging] format and level)"
        }
        "pidfile" | "mutex" | "defaultruntimedir" | "serverroot" | "define" | "undefine"
        | "scriptsock" | "typesconfig" | "addtype" | "addhandler" | "servertokens"
        | "serversignature" | "hostnamelookups" | "usecanonicalname" | "documentroot"
        | "directoryindex" | "accessfilename" | "addDefaultCharset" | "enablesendfile"
        | "enablemmap" | "traceenable" | "serveradmin" | "alias" | "scriptalias" | "options"
        | "allowoverride" | "sethandler" | "fileetag" => {
            "an Apache setting with no meaning in fedgate"
        }
        "startservers"
        | "minspareservers"
        | "maxspareservers"
        | "minsparethreads"
        | "maxsparethreads"
        | "threadlimit"
        | "threadsperchild"
        | "maxrequestworkers"
        | "maxclients"
        | "serverlimit"
        | "maxconnectionsperchild"
        | "maxrequestsperchild" => {
            "fedgate is one multi-threaded process; [server] max_connections bounds it"
        }
        "timeout"
        | "keepalive"
        | "maxkeepaliverequests"
        | "keepalivetimeout"
        | "requestreadtimeout" => {
            "fedgate's own timeouts apply ([server] header_timeout_secs, [upstream] response_timeout_secs)"
        }
        "limitrequestbody" => "see [server] max_body_bytes",
        "limitrequestfieldsize" | "limitrequestfields" | "limitrequestline" => {
            "fedgate's header limits are built in"
        }
        "sslprotocol"
        | "sslciphersuite"
        | "sslhonorcipherorder"
        | "sslcompression"
        | "sslsessiontickets"
        | "sslsessioncache"
        | "sslsessioncachetimeout"
        | "sslrandomseed"
        | "sslpassphrasedialog"
        | "sslstaplingcache"
        | "sslusestapling"
        | "sslopensslconfcmd"
        | "sslinsecurerenegotiation"
        | "sslstrictsnivhostcheck" => {
            "rustls offers TLS 1.2 and 1.3 with its safe cipher suites only; no setting"
        }
        "proxypassreverse" | "proxypassreversecookiedomain" | "proxypassreversecookiepath" => {
            "not needed: fedgate does not rewrite Keystone's answers"
        }
        "proxypreservehost" => "fedgate always passes the client's Host and sets X-Forwarded-*",
        "requestheader" | "header" => {
            "fedgate sets Keystone's environ itself and drops identity-looking client headers; no header rules"
        }
        "wsgiprocessgroup"
        | "wsgiapplicationgroup"
        | "wsgipassauthorization"
        | "wsgiscriptreloading"
        | "wsgisocketprefix"
        | "wsgichunkedrequest" => {
            "mod_wsgi setting: Keystone runs under uWSGI instead (see the uwsgi ini printed for WSGIScriptAlias)"
        }
        "limitrequestbodyfields"
        | "errordocument"
        | "redirect"
        | "redirectmatch"
        | "rewriteengine"
        | "rewriterule"
        | "rewritecond"
        | "setenv"
        | "setenvif"
        | "passenv"
        | "unsetenv"
        | "use"
        | "undefmacro" => "not translated: fedgate has no equivalent; check what it did",
        _ => return None,
    };
    Some(r)
}

impl Draft {
    fn n(&mut self, d: &Directive, reason: impl Into<String>) {
        self.notes.push(note(d, reason));
    }

    fn num<T: std::str::FromStr>(&mut self, d: &Directive) -> Option<Val<T>> {
        match d.arg(0).and_then(|a| a.parse().ok()) {
            Some(v) => Some(Val::of(d, v)),
            None => {
                self.n(d, "not a number; ignored");
                None
            }
        }
    }

    fn s(d: &Directive) -> Option<Val<String>> {
        d.arg(0).map(|a| Val::of(d, a.to_string()))
    }

    /// A server-level (main server or vhost) directive.
    fn server(&mut self, d: &Directive) {
        let lc = d.name.to_ascii_lowercase();
        match lc.as_str() {
            "listen" | "namevirtualhost" => {}
            "servername" => {
                if let Some(v) = Self::s(d) {
                    self.public_names.retain(|p| p.name != d.name);
                    self.public_names.insert(0, v);
                }
            }
            "serveralias" => {
                for a in &d.args {
                    self.public_names.push(Val::of(d, a.clone()));
                }
            }
            "sslengine" => self.ssl_engine = Some(Val::of(d, on(d))),
            "sslcertificatefile" => self.cert = Self::s(d),
            "sslcertificatekeyfile" => self.key = Self::s(d),
            "sslcertificatechainfile" => self.n(
                d,
                "fedgate reads intermediates from tls.certificate (after the leaf) or completes \
                 them from tls.ca_dir: append this file to the certificate file",
            ),
            "sslcacertificatepath" => self.ca_dir = Self::s(d),
            "sslcacertificatefile" => self.n(
                d,
                "fedgate needs a hashed CA directory (tls.ca_dir, as SSLCACertificatePath); \
                 put the CAs of this file there",
            ),
            "sslcarevocationpath" => self.crl_dir = Self::s(d),
            "sslcarevocationfile" => self.n(
                d,
                "fedgate reads CRLs from tls.ca_dir (<hash>.rN files) only",
            ),
            "sslcarevocationcheck" => self.crl_check = Some(Val::of(d, d.args_line())),
            "sslverifyclient" => self.client_auth = Self::s(d),
            "sslverifydepth" => self.n(
                d,
                "fedgate validates chains up to a CA of tls.ca_dir whatever their length; \
                 proxies are limited by [x509] max_proxy_depth",
            ),
            "ssloptions" => self.ssl_options(d),
            "gridsiteenvs" => {
                if on(d) {
                    self.n(
                        d,
                        "at server level: gridsite's values reach Keystone only on routes with \
                         auth = \"x509\" in fedgate; put it in the <Location> of the VOMS login",
                    )
                }
            }
            "gridsitegsiproxylimit" => self.proxy_limit = self.num(d),
            "gridsitesessionsdir"
            | "gridsiteindexes"
            | "gridsitegridhttp"
            | "gridsiteauth"
            | "gridsitednlists"
            | "gridsitednlistsuri"
            | "gridsiteadminlist"
            | "gridsitehtmlfile"
            | "gridsitemethods"
            | "gridsiteheadfile"
            | "gridsitefootfile"
            | "gridsiteadmin"
            | "gridsiteadminfile"
            | "gridsitegacl"
            | "gridsitecastdnlists"
            | "gridsiteautopasscode"
            | "gridsiterequirepasscode"
            | "gridsitesoap" => self.n(
                d,
                "gridsite feature fedgate does not have (it authenticates and exports GRST_* \
                 values; authorization is Keystone's mapping)",
            ),
            "proxypass" => self.proxy_pass(d),
            "proxyrequests" => {
                if on(d) {
                    self.n(d, "forward proxying is not something fedgate does")
                }
            }
            "proxytimeout" => {
                self.n(d, "see [upstream] response_timeout_secs (default 60)");
            }
            "wsgiscriptalias" => self.wsgi = Some(Val::of(d, d.args_line())),
            "wsgidaemonprocess" => {}
            _ if lc.starts_with("oidc") => self.oidc(d, None),
            _ => match process_level(&d.name) {
                Some(r) => self.n(d, r),
                None => self.n(
                    d,
                    "not translated: fedgate has no equivalent; check what it did",
                ),
            },
        }
    }

    fn ssl_options(&mut self, d: &Directive) {
        let other: Vec<&String> = d
            .args
            .iter()
            .filter(|a| {
                let a = a.trim_start_matches('+').to_ascii_lowercase();
                a != "stdenvvars" && a != "exportcertdata"
            })
            .collect();
        self.ssl_options = Some(Val::of(d, d.args_line()));
        if !other.is_empty() {
            self.n(
                d,
                format!(
                    "{} not translated: fedgate always exports mod_ssl's StdEnvVars and \
                     ExportCertData values and nothing else",
                    other
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            );
        }
    }

    fn proxy_pass(&mut self, d: &Directive) {
        let (Some(path), Some(target)) = (d.arg(0), d.arg(1)) else {
            if d.arg(0) == Some("!") || d.arg(1) == Some("!") {
                self.n(
                    d,
                    "exclusions are not translated: every routed path is forwarded",
                );
            } else {
                self.n(d, "expected a path and a backend URL");
            }
            return;
        };
        if target == "!" {
            self.n(
                d,
                "exclusions are not translated: every routed path is forwarded",
            );
            return;
        }
        // mod_proxy's unix-socket form: `unix:/run/uwsgi.sock|uwsgi://localhost/`.
        let (socket, target) = match target.strip_prefix("unix:").and_then(|t| t.split_once('|')) {
            Some((sock, url)) => (Some(sock), url),
            None => (None, target),
        };
        let Ok(u) = url::Url::parse(target) else {
            self.n(d, format!("`{target}` is not a URL"));
            return;
        };
        let scheme = match u.scheme() {
            "uwsgi" => "uwsgi",
            "http" => "http",
            s => {
                self.n(
                    d,
                    format!("fedgate's upstream speaks uwsgi:// or http://, not {s}://"),
                );
                return;
            }
        };
        let Some(host) = u.host_str() else {
            self.n(d, "backend URL without a host");
            return;
        };
        let port = u.port_or_known_default().unwrap_or(80);
        let base = match socket {
            Some(sock) if scheme == "uwsgi" && sock.starts_with('/') => format!("uwsgi://{sock}"),
            Some(sock) => {
                self.n(
                    d,
                    format!(
                        "unix socket `{sock}`: fedgate reaches a unix socket with uwsgi:///path \
                         only (an absolute path, uwsgi protocol)"
                    ),
                );
                return;
            }
            None => format!("{scheme}://{host}:{port}"),
        };
        let back_path = u.path().trim_end_matches('/');
        let front = path.trim_end_matches('/');
        if back_path != front && !back_path.is_empty() {
            self.n(
                d,
                format!(
                    "maps {path} to {} on the backend: fedgate forwards paths unchanged",
                    u.path()
                ),
            );
        } else if back_path.is_empty() && !front.is_empty() {
            self.n(
                d,
                format!("strips {path} before forwarding: fedgate forwards paths unchanged"),
            );
        }
        if d.args.len() > 2 {
            self.n(
                d,
                format!(
                    "backend parameters `{}` are not translated (see [upstream] timeouts)",
                    d.args[2..].join(" ")
                ),
            );
        }
        match &self.upstream {
            Some(up) if up.v != base => self.n(
                d,
                format!(
                    "a second backend {base}: fedgate has one upstream ({} from {})",
                    up.v,
                    up.from()
                ),
            ),
            Some(_) => {}
            None => self.upstream = Some(Val::of(d, base)),
        }
        self.proxy_paths.push(Val::of(d, path.to_string()));
    }

    /// A mod_auth_openidc directive. `loc` is the route it appears in.
    fn oidc(&mut self, d: &Directive, loc: Option<usize>) {
        let lc = d.name.to_ascii_lowercase();
        let arg = d.arg(0).unwrap_or_default().to_string();
        match lc.as_str() {
            "oidcprovidermetadataurl" => self.provider_metadata_url = Self::s(d),
            "oidcproviderissuer" => self.provider_issuer = Self::s(d),
            "oidcclientid" => self.client_id = Self::s(d),
            "oidcclientsecret" => self.client_secret = Self::s(d),
            "oidcoauthclientid" => self.oauth_client_id = Self::s(d),
            "oidcoauthclientsecret" => self.oauth_client_secret = Self::s(d),
            "oidcoauthintrospectionendpoint" => self.introspection = Self::s(d),
            "oidcoauthservermetadataurl" => self.oauth_metadata_url = Self::s(d),
            "oidcoauthverifyjwksuri" => self.jwks_uri = Self::s(d),
            "oidccabundlepath" => self.ca_bundle = Self::s(d),
            "oidcremoteuserclaim" => self.remote_user = Self::s(d),
            "oidcoauthremoteuserclaim" => self.oauth_remote_user = Self::s(d),
            "oidcscope" => self.scope = Some(Val::of(d, d.args_line())),
            "oidcredirecturi" => self.redirect_uri = Self::s(d),
            "oidccryptopassphrase" => self.passphrase = Self::s(d),
            "oidcsessioninactivitytimeout" => self.inactivity = self.num(d),
            "oidcsessionmaxduration" => {
                self.max_duration = self.num(d);
                if self.max_duration.as_ref().is_some_and(|v| v.v == 0) {
                    self.n(
                        d,
                        "0 (until the ID token expires) has no fedgate equivalent: \
                         max_duration_secs keeps its default, 8 hours",
                    );
                    self.max_duration = None;
                }
            }
            "oidcstatetimeout" => self.state_timeout = self.num(d),
            "oidcstatemaxnumberofcookies" => self.max_state_cookies = self.num(d),
            "oidcidtokeniatslack" => self.iat_slack = self.num(d),
            "oidcjwksrefreshinterval" => self.jwks_refresh = self.num(d),
            "oidcprovidermetadatarefreshinterval" => {
                self.metadata_refresh = self.num(d);
                if self.metadata_refresh.as_ref().is_some_and(|v| v.v == 0) {
                    self.n(d, "0 (never) is not kept: fedgate refreshes discovery daily");
                    self.metadata_refresh = None;
                }
            }
            "oidcoauthtokenintrospectioninterval" => {
                let v = self.num::<i64>(d);
                if loc.is_some()
                    && let Some(old) = &self.introspection_interval
                    && v.as_ref().is_some_and(|v| v.v != old.v)
                {
                    let from = old.from();
                    self.n(
                        d,
                        format!("fedgate has one token cache for every route; {from} is kept"),
                    );
                    return;
                }
                if let Some(v) = &v
                    && v.v == 0
                {
                    self.n(
                        d,
                        "0 caches until the token expires: fedgate caches for at most \
                         [cache] max_ttl_secs (300 s), so a revoked token lives at most that long",
                    );
                }
                if loc.is_some() {
                    self.n(
                        d,
                        "set inside a <Location>: fedgate's token cache is the same for every route",
                    );
                }
                if v.as_ref().is_some_and(|v| v.v != 0) {
                    self.introspection_interval = v;
                }
            }
            "oidcwhitelistedclaims" => self.claims = Some(Val::of(d, d.args.clone())),
            "oidcdefaultloggedouturl" => self.logged_out_url = Self::s(d),
            "oidcredisCacheServer" | "oidcrediscacheserver" => self.redis = Self::s(d),
            "oidcmetadatadir" => self.metadata_dir = Self::s(d),
            "oidcauthnheader" => self.authn_header = Self::s(d),
            "oidcclaimprefix" => {
                if arg != "OIDC-" {
                    self.n(
                        d,
                        format!(
                            "fedgate hands claims to Keystone as OIDC-<claim> (and HTTP_OIDC_ISS, \
                             HTTP_OIDC_SUB), not {arg}<claim>: change the mapping's remote \
                             types to OIDC-<claim>"
                        ),
                    );
                }
            }
            "oidcclaimdelimiter" => {
                if arg != ";" {
                    self.n(
                        d,
                        format!(
                            "fedgate joins array claims with `;` (Keystone splits on it), not `{arg}`"
                        ),
                    );
                }
            }
            "oidcpassclaimsas" => self.n(
                d,
                "fedgate always passes claims the way Keystone reads them: environ OIDC-<claim> \
                 plus HTTP_OIDC_ISS/HTTP_OIDC_SUB, raw UTF-8 as mod_auth_openidc 2.4.12 wrote them",
            ),
            "oidcresponsetype" => {
                if arg != "code" {
                    self.n(
                        d,
                        format!("fedgate uses the authorization-code flow with PKCE, not `{arg}`"),
                    );
                }
            }
            "oidcpkcemethod" => {
                if arg != "S256" {
                    self.n(d, "fedgate always uses PKCE S256");
                }
            }
            "oidcoauthintrospectionendpointauth" => {
                if arg != "client_secret_basic" {
                    self.n(
                        d,
                        format!("fedgate authenticates introspection with HTTP Basic (client_secret_basic), not {arg}"),
                    );
                }
            }
            "oidcoauthsslvalidateserver" | "oidcsslvalidateserver" => {
                if !on(d) {
                    self.n(
                        d,
                        "fedgate always validates the IdP's certificate (add its CA with the idp's ca_file)",
                    );
                }
            }
            "oidcoauthaccepttokenas" => {
                if arg != "header" {
                    self.n(d, "fedgate accepts tokens in the Authorization header only");
                }
            }
            "oidccachetype" => match arg.as_str() {
                "redis" => {}
                "shm" | "file" => self.n(
                    d,
                    "fedgate keeps its caches in memory ([cache] for tokens, [oidc.session] for \
                     sessions) or shares them through [state] (memcached or Redis); nothing to set",
                ),
                _ => self.n(
                    d,
                    format!(
                        "fedgate has no {arg} cache: it keeps tokens and sessions in memory, or \
                         shares them through [state] (backend memcached or redis)"
                    ),
                ),
            },
            "oidccacheshmentrysizemax" | "oidccacheshmmax" | "oidccachedir"
            | "oidccacheencrypt" | "oidccachefilecleaninterval" | "oidcmemcacheservers"
            | "oidcredispassword" | "oidcredisusername" | "oidcredisdatabase" => self.n(
                d,
                "fedgate's caches have no such limit; [cache] max_entries bounds the token \
                 cache, [oidc.session] max_sessions the sessions (Redis credentials: [state] username, password, db)",
            ),
            "oidcsessiontype" => {
                if !arg.starts_with("server-cache") {
                    self.n(
                        d,
                        "fedgate keeps sessions server-side (memory or Redis) with a sealed cookie holding their id",
                    );
                } else if arg.ends_with(":persistent") {
                    self.n(d, "fedgate's session cookie is a browser-session cookie");
                }
            }
            "oidcscrubrequestheaders" => self.n(
                d,
                "fedgate always drops identity-looking client headers (OIDC*, GRST*, SSL_CLIENT*, \
                 REMOTE_USER, ...); it cannot be turned off",
            ),
            "oidcstripcookies" => self.n(
                d,
                "fedgate forwards no cookies to Keystone except [upstream] forward_cookies",
            ),
            "oidcunauthaction" => match arg.as_str() {
                "auth" => {}
                _ => self.n(
                    d,
                    format!(
                        "fedgate sends browsers to the IdP and answers scripts 401; `{}` is not kept",
                        d.args_line()
                    ),
                ),
            },
            "oidcunautzaction" => self.n(
                d,
                "fedgate refuses a failed claim requirement with 403",
            ),
            "oidcdiscoverurl" => {
                let pinned = url::Url::parse(&arg).ok().and_then(|u| {
                    u.query_pairs()
                        .find(|(k, _)| k == "iss")
                        .map(|(_, v)| v.into_owned())
                });
                match (pinned, loc) {
                    (Some(iss), Some(i)) => {
                        self.routes[i].pinned_issuer = Some(Val::of(d, iss));
                    }
                    _ => self.n(
                        d,
                        "fedgate shows its own IdP chooser page ([[idp]] display_name), or \
                         `?iss=` picks one",
                    ),
                }
            }
            "oidcxforwardedheaders" => self.n(
                d,
                "fedgate trusts X-Forwarded-* only from [server] trusted_proxies: list the load balancer there",
            ),
            "oidcstateinputheaders" => self.n(
                d,
                "fedgate binds a login to its state cookie, not to User-Agent or X-Forwarded-For",
            ),
            "oidccookiesamesite" | "oidccookiehttponly" | "oidcsessioncookiechunksize"
            | "oidccookie" | "oidccookiedomain" | "oidccookiepath" => self.n(
                d,
                "fedgate's cookies are fixed: HttpOnly, Secure, SameSite=Lax, one small sealed cookie",
            ),
            "oidcblacklistedclaims" => self.n(
                d,
                "fedgate has no claim deny list: use the idp's claims (an allow list) instead",
            ),
            "oidcpassidtokenas" | "oidcpassuserinfoas" | "oidcpassrefreshtoken"
            | "oidcpassaccesstoken" => self.n(
                d,
                "fedgate passes the claims Keystone maps, not the tokens themselves",
            ),
            "oidcuserinforefreshinterval" | "oidcrefreshaccesstokenbeforeexpiry" => self.n(
                d,
                "fedgate uses the login's claims for the one Keystone request it replays; no refresh",
            ),
            "oidcpathscope" | "oidcauthrequestparams" | "oidcpathauthrequestparams" => self.n(
                d,
                "not translated: fedgate asks for [oidc] scopes (or the idp's scopes) only",
            ),
            "oidcresponsemode" => self.n(d, "fedgate uses the query response mode"),
            "oidcmetricsdata" | "oidcmetricspublish" => self.n(
                d,
                "fedgate's metrics are on the admin listener (/metrics, Prometheus)",
            ),
            "oidctraceparent" => self.n(
                d,
                "fedgate gives every request an id (X-Fedgate-Request-Id) instead",
            ),
            "oidcoauthtokenexpiryclaim" => self.n(
                d,
                "fedgate reads exp from the token or the introspection answer",
            ),
            "oidcoauthverifysharedkeys" | "oidcoauthverifycertfiles" => self.n(
                d,
                "fedgate verifies JWTs with the IdP's JWKS (asymmetric keys) only",
            ),
            _ => self.n(
                d,
                "mod_auth_openidc directive not translated: fedgate has no equivalent; check what it did",
            ),
        }
    }

    /// A `<Location>`, `<LocationMatch>` or WSGI `<Directory>` section.
    fn section(&mut self, s: &Directive, url_prefix: Option<&str>) {
        let (regex, broken, header) = if let Some(p) = url_prefix {
            (
                location_regex(p),
                None,
                format!("<{} {}> (the WSGI app at {p})", s.name, s.args_line()),
            )
        } else if s.is("LocationMatch") || (s.is("Location") && s.arg(0) == Some("~")) {
            let re = if s.is("LocationMatch") {
                s.arg(0)
            } else {
                s.arg(1)
            }
            .unwrap_or_default()
            .to_string();
            let broken = regex::Regex::new(&re).err().map(|e| e.to_string());
            (re, broken, format!("<{} {}>", s.name, s.args_line()))
        } else {
            let p = s.arg(0).unwrap_or("/");
            (
                location_regex(p),
                None,
                format!("<{} {}>", s.name, s.args_line()),
            )
        };
        let broken = broken.or_else(|| regex::Regex::new(&regex).err().map(|e| e.to_string()));
        let mut auth: Option<(Auth, String)> = None;
        let mut requires: Vec<&Directive> = Vec::new();
        let mut later: Vec<&Directive> = Vec::new();
        for d in s.children() {
            let lc = d.name.to_ascii_lowercase();
            match lc.as_str() {
                "authtype" => {
                    let a = d.arg(0).unwrap_or_default().to_ascii_lowercase();
                    let from = format!("AuthType {} ({})", d.args_line(), d.at);
                    match a.as_str() {
                        "openid-connect" => auth = Some((Auth::Oidc, from)),
                        "oauth20" => auth = Some((Auth::Bearer, from)),
                        "none" => auth = Some((Auth::None, from)),
                        "auth-openidc" => {
                            self.n(
                                d,
                                "both browser login and bearer tokens on one path: fedgate \
                                 chooses one per route; translated as the browser login",
                            );
                            auth = Some((Auth::Oidc, from));
                        }
                        _ => self.n(
                            d,
                            format!("fedgate has no `{}` authentication; the path is left to the routes around it", d.args_line()),
                        ),
                    }
                }
                "gridsiteenvs" if on(d) => {
                    if auth.is_none() {
                        auth = Some((Auth::X509, format!("GridSiteEnvs on ({})", d.at)));
                    }
                }
                "gridsiteenvs" => {}
                "sslverifyclient" => {
                    if d.arg(0).is_some_and(|a| a.eq_ignore_ascii_case("require")) {
                        if auth.is_none() {
                            auth = Some((Auth::X509, format!("SSLVerifyClient require ({})", d.at)));
                        }
                    } else {
                        self.n(d, "per-path client-certificate settings other than `require` are not translated");
                    }
                }
                "require" => requires.push(d),
                "requireany" | "requireall" | "requirenone" => self.n(
                    d,
                    "authorization containers are not translated: fedgate's require_claims all must hold",
                ),
                "satisfy" | "order" | "allow" | "deny" => {
                    self.n(d, "Apache 2.2 access control is not translated")
                }
                "gridsitegsiproxylimit" => later.push(d),
                "ssloptions" => self.ssl_options(d),
                "proxypass" => self.proxy_pass(&Directive {
                    args: std::iter::once(s.arg(0).unwrap_or("/").to_string())
                        .chain(d.args.iter().cloned())
                        .collect(),
                    ..d.clone()
                }),
                "authname" => {}
                _ if lc.starts_with("oidc") => later.push(d),
                _ => match process_level(&d.name) {
                    Some(r) => self.n(d, r),
                    None => self.n(d, format!("inside {header}: not translated")),
                },
            }
        }
        let mut claims = Vec::new();
        let mut any_user = false;
        for r in &requires {
            let kind = r.arg(0).unwrap_or_default().to_ascii_lowercase();
            match kind.as_str() {
                "valid-user" => any_user = true,
                "claim" => {
                    for c in &r.args[1..] {
                        if let Some((k, v)) = c.split_once('~') {
                            if !k.contains(':') {
                                claims.push((k.to_string(), true, v.to_string()));
                                continue;
                            }
                        }
                        match c.split_once(':') {
                            Some((k, v)) => claims.push((k.to_string(), false, v.to_string())),
                            None => self.n(r, format!("`{c}` is not claim:value or claim~regex")),
                        }
                    }
                }
                "all" if r.arg(1) == Some("granted") => {
                    if auth.is_none() {
                        // A section that only grants access: no authentication here.
                    }
                }
                "all" if r.arg(1) == Some("denied") => self.n(
                    r,
                    "fedgate has no deny-all route: paths no route matches get 404",
                ),
                _ => self.n(
                    r,
                    format!(
                        "`Require {}` is not translated (fedgate checks claims of bearer tokens only)",
                        r.args_line()
                    ),
                ),
            }
        }
        if any_user && !claims.is_empty() {
            for r in &requires {
                if r.arg(0).is_some_and(|a| a.eq_ignore_ascii_case("claim")) {
                    self.n(
                        r,
                        "ignored, as Apache did: `Require valid-user` in the same section already grants any user",
                    );
                }
            }
            claims.clear();
        } else if requires
            .iter()
            .filter(|r| r.arg(0).is_some_and(|a| a.eq_ignore_ascii_case("claim")))
            .count()
            > 1
        {
            self.n(
                requires[1],
                "several `Require claim` lines: Apache accepts ANY of them, fedgate's \
                 require_claims need ALL (stricter); merge them into one regex if needed",
            );
        }
        let Some((auth, auth_from)) = auth else {
            for d in later {
                self.n(
                    d,
                    format!("inside {header}, which asks for no authentication: not translated"),
                );
            }
            if !requires.is_empty() && !claims.is_empty() {
                self.n(
                    requires[0],
                    format!("inside {header} without AuthType: not translated"),
                );
            }
            return;
        };
        if auth == Auth::Oidc && !claims.is_empty() {
            self.n(
                requires[0],
                "fedgate's browser login has no claim requirement: Keystone's mapping decides who gets in",
            );
            claims.clear();
        }
        if auth == Auth::X509 && !claims.is_empty() {
            claims.clear();
        }
        self.routes.push(RouteDraft {
            regex,
            section: header,
            at: s.at.clone(),
            auth,
            auth_from,
            claims,
            pinned_issuer: None,
            broken,
        });
        let idx = self.routes.len() - 1;
        for d in later {
            if d.is("GridSiteGSIProxyLimit") {
                let v = self.num(d);
                if let (Some(v), Some(old)) = (&v, &self.proxy_limit)
                    && v.v != old.v
                {
                    let from = old.from();
                    self.n(
                        d,
                        format!(
                            "fedgate has one [x509] max_proxy_depth; {} from {from} is kept",
                            old.v
                        ),
                    );
                    continue;
                }
                if v.is_some() {
                    self.proxy_limit = v;
                }
            } else {
                self.oidc(d, Some(idx));
            }
        }
    }
}

/// Translates the parsed files.
pub fn translate(
    parsed: &Parsed,
    files: &[PathBuf],
    opts: &Options,
) -> Result<Translation, TranslateError> {
    let mut notes = Vec::new();
    for (at, w) in &parsed.warnings {
        notes.push(Note {
            at: at.clone(),
            directive: "warning".into(),
            reason: w.clone(),
        });
    }
    let all = flatten(&parsed.directives, parsed, &mut notes);
    let global: Vec<&Directive> = all.iter().filter(|d| !d.is("VirtualHost")).collect();
    let vhosts: Vec<&Directive> = all.iter().filter(|d| d.is("VirtualHost")).collect();
    let global_owned: Vec<Directive> = global.iter().map(|d| (*d).clone()).collect();
    let chosen = vhosts
        .iter()
        .find(|v| serves_keystone(v.children()))
        .copied();
    if chosen.is_none() && !serves_keystone(&global_owned) {
        let seen = if vhosts.is_empty() {
            String::new()
        } else {
            format!(
                "; virtual hosts seen: {}",
                vhosts
                    .iter()
                    .map(|v| format!("<VirtualHost {}> at {}", v.args_line(), v.at))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(TranslateError::NoKeystone(seen));
    }
    let mut dr = Draft {
        notes,
        ..Draft::default()
    };
    for v in &vhosts {
        if !chosen.is_some_and(|c| std::ptr::eq(c, *v)) {
            dr.notes.push(note(
                v,
                format!(
                    "{}: skipped, fedgate serves one site (the vhost at {})",
                    v.args_line(),
                    chosen
                        .map(|c| c.at.to_string())
                        .unwrap_or_else(|| "main server".into())
                ),
            ));
        }
    }
    // Listeners: the vhost's addresses resolved against Listen.
    let listens: Vec<&Directive> = global.iter().copied().filter(|d| d.is("Listen")).collect();
    let listen_addr = |l: &Directive| -> Option<String> {
        let a = l.arg(0)?;
        if a.parse::<u16>().is_ok() {
            Some(format!("0.0.0.0:{a}"))
        } else if let Some(p) = a.strip_prefix("[::]:") {
            Some(format!("[::]:{p}"))
        } else {
            Some(a.to_string())
        }
    };
    let port_of = |a: &str| a.rsplit(':').next().map(str::to_string);
    match chosen {
        Some(v) => {
            for a in &v.args {
                let port = port_of(a).filter(|p| p.parse::<u16>().is_ok());
                let from_listen: Vec<_> = listens
                    .iter()
                    .filter_map(|l| Some((listen_addr(l)?, l)))
                    .filter(|(addr, _)| port.is_none() || port_of(addr) == port)
                    .collect();
                let host = a.rsplit_once(':').map(|(h, _)| h).unwrap_or(a);
                if host != "*" && host != "_default_" && host.parse::<std::net::IpAddr>().is_ok() {
                    if let Some(p) = &port {
                        dr.listen.push((
                            format!("{host}:{p}"),
                            format!("<VirtualHost {}> ({})", v.args_line(), v.at),
                        ));
                        continue;
                    }
                }
                for (addr, l) in from_listen {
                    dr.listen.push((
                        addr,
                        format!(
                            "Listen {} ({}), <VirtualHost {}> ({})",
                            l.args_line(),
                            l.at,
                            v.args_line(),
                            v.at
                        ),
                    ));
                }
            }
        }
        None => {
            for l in &listens {
                if let Some(a) = listen_addr(l) {
                    dr.listen
                        .push((a, format!("Listen {} ({})", l.args_line(), l.at)));
                }
            }
        }
    }
    dr.listen.dedup_by(|a, b| a.0 == b.0);
    // Server-level directives: the main server's, then the vhost's.
    let vh_children: Vec<Directive> = chosen.map(|v| v.children().to_vec()).unwrap_or_default();
    let is_section = |d: &Directive| d.children.is_some();
    let mut sections: Vec<&Directive> = Vec::new();
    for d in global.iter().copied().chain(vh_children.iter()) {
        if is_section(d) {
            sections.push(d);
        } else {
            dr.server(d);
        }
    }
    // The WSGI app's directory, if any.
    let wsgi_dirs: Vec<(String, String)> = global
        .iter()
        .copied()
        .chain(vh_children.iter())
        .filter(|d| d.is("WSGIScriptAlias"))
        .filter_map(|d| {
            let url = d.arg(0)?.to_string();
            let script = PathBuf::from(d.arg(1)?);
            let dir = script.parent()?.to_string_lossy().into_owned();
            Some((dir, url))
        })
        .collect();
    for s in sections {
        if s.is("Location") || s.is("LocationMatch") {
            dr.section(s, None);
        } else if s.is("Directory") {
            let p = s.arg(0).unwrap_or_default().trim_end_matches('/');
            match wsgi_dirs
                .iter()
                .find(|(dir, _)| dir.trim_end_matches('/') == p)
            {
                Some((_, url)) => {
                    let url = url.clone();
                    dr.section(s, Some(&url));
                }
                None => {
                    if s.children().iter().any(|c| c.is("AuthType")) {
                        dr.n(
                            s,
                            "a file-system section that is not the WSGI app's: not translated",
                        );
                    }
                }
            }
        } else if s.is("Macro") {
            dr.n(
                s,
                "mod_macro definitions are not expanded (`Use` lines are reported)",
            );
        } else if s.is("Proxy")
            || s.is("ProxyMatch")
            || s.is("Files")
            || s.is("FilesMatch")
            || s.is("DirectoryMatch")
        {
            if s.children()
                .iter()
                .any(|c| c.is("AuthType") || c.is("GridSiteEnvs"))
            {
                dr.n(
                    s,
                    "authentication in this kind of section is not translated",
                );
            }
        } else {
            dr.n(s, "section not translated");
        }
    }
    // mod_wsgi: Keystone moves to uWSGI.
    if let Some(w) = dr.wsgi.clone() {
        let socket = "127.0.0.1:5001";
        let daemon = global
            .iter()
            .copied()
            .chain(vh_children.iter())
            .find(|d| d.is("WSGIDaemonProcess"));
        let wsgi_d = global
            .iter()
            .copied()
            .chain(vh_children.iter())
            .find(|d| d.is("WSGIScriptAlias"))
            .cloned();
        if let Some(wd) = wsgi_d {
            let ini = uwsgi_ini(&wd, daemon, socket);
            dr.notes.push(Note {
                at: w.at.clone(),
                directive: w.name.clone(),
                reason: format!(
                    "Keystone must run under uWSGI with a uwsgi socket instead of mod_wsgi; use this ini \
                     (e.g. /etc/keystone/keystone-uwsgi-public.ini):\n{}",
                    ini.trim_end()
                ),
            });
            if let Some(dd) = daemon {
                dr.n(
                    dd,
                    "becomes the uwsgi ini's processes/threads/uid/gid (see WSGIScriptAlias)",
                );
            }
            if dr.upstream.is_none() {
                dr.upstream = Some(Val {
                    v: format!("uwsgi://{socket}"),
                    at: w.at.clone(),
                    name: w.name.clone(),
                });
                let url = wd.arg(0).unwrap_or("/").to_string();
                dr.proxy_paths.push(Val {
                    v: url,
                    at: w.at.clone(),
                    name: w.name.clone(),
                });
            }
            dr.uwsgi_ini = Some(ini);
        }
    }
    Ok(emit(dr, files, opts))
}

fn emit(mut dr: Draft, files: &[PathBuf], opts: &Options) -> Translation {
    let mut t = String::new();
    let files_list = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    t.push_str(&format!(
        "# fedgate configuration translated by `fedgate import-apache {files_list}`.\n\
         # Each value says which Apache directive it came from (file:line); what could not\n\
         # be translated was listed on stderr. Check it with `fedgate check-config`.\n\n"
    ));
    // Top-level keys first (they must precede every table).
    let any_oidc_route = dr.routes.iter().any(|r| r.auth == Auth::Oidc);
    let any_bearer_route = dr.routes.iter().any(|r| r.auth == Auth::Bearer);
    if let Some(m) = &dr.metadata_dir {
        match &opts.metadata_dir {
            Some(o) => t.push_str(&format!(
                "# {} ({}) said {}; --metadata-dir overrides it\nmetadata_dir = {}\n\n",
                m.name,
                m.at,
                m.v,
                q(&o.display().to_string())
            )),
            None => t.push_str(&format!(
                "# from {}: the same <issuer>.provider/.client/.conf files\nmetadata_dir = {}\n\n",
                m.from(),
                q(&m.v)
            )),
        }
    } else if let Some(o) = &opts.metadata_dir {
        t.push_str(&format!(
            "# from --metadata-dir\nmetadata_dir = {}\n\n",
            q(&o.display().to_string())
        ));
    }

    // [server]
    t.push_str("[server]\n");
    if dr.listen.is_empty() {
        t.push_str("# no Listen found: Keystone's public port\nlisten = [\"0.0.0.0:5000\"]\n");
    } else {
        for (_, from) in &dr.listen {
            t.push_str(&format!("# from {from}\n"));
        }
        t.push_str(&format!(
            "listen = [{}]\n",
            dr.listen
                .iter()
                .map(|(a, _)| q(a))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut names: Vec<&Val<String>> = Vec::new();
    for n in &dr.public_names {
        if !names.iter().any(|m| m.v == n.v) && crate_host_ok(&n.v) {
            names.push(n);
        }
    }
    if !names.is_empty() {
        for n in &names {
            t.push_str(&format!("# from {}\n", n.from()));
        }
        t.push_str("# Requests for another host name get 421 (Apache's only vhost served any).\n");
        t.push_str(&format!(
            "public_names = [{}]\n",
            names.iter().map(|n| q(&n.v)).collect::<Vec<_>>().join(", ")
        ));
    }
    t.push('\n');

    // [tls]
    t.push_str("[tls]\n");
    if let Some(e) = &dr.ssl_engine
        && !e.v
    {
        dr.notes.push(Note {
            at: e.at.clone(),
            directive: e.name.clone(),
            reason: "off: fedgate always serves TLS".into(),
        });
    }
    if dr.ssl_engine.is_none() {
        t.push_str("# Apache served this vhost without SSLEngine on; fedgate always serves TLS.\n");
    }
    for (key, v) in [
        ("certificate", &dr.cert),
        ("private_key", &dr.key),
        ("ca_dir", &dr.ca_dir),
    ] {
        match v {
            Some(v) => t.push_str(&format!("{key} = {}  # from {}\n", q(&v.v), v.from())),
            None => t.push_str(&format!(
                "# {key}: not set in Apache; fedgate's default applies\n"
            )),
        }
    }
    if dr.key.is_none()
        && let Some(c) = &dr.cert
    {
        t.push_str(&format!(
            "# no SSLCertificateKeyFile: the key is in the certificate file\nprivate_key = {}\n",
            q(&c.v)
        ));
    }
    if let (Some(crl), Some(ca)) = (&dr.crl_dir, &dr.ca_dir)
        && crl.v.trim_end_matches('/') != ca.v.trim_end_matches('/')
    {
        dr.notes.push(Note {
            at: crl.at.clone(),
            directive: crl.name.clone(),
            reason: format!(
                "fedgate reads CRLs from tls.ca_dir ({}) only; put the .rN files there (fetch-crl does)",
                ca.v
            ),
        });
    }
    if let Some(c) = &dr.client_auth {
        let v = match c.v.to_ascii_lowercase().as_str() {
            "require" => "required",
            "none" => "none",
            "optional" => "optional",
            other => {
                dr.notes.push(Note {
                    at: c.at.clone(),
                    directive: c.name.clone(),
                    reason: format!(
                        "`{other}` becomes \"optional\": fedgate validates every chain it is given"
                    ),
                });
                "optional"
            }
        };
        let v = if v == "none" && dr.routes.iter().any(|r| r.auth == Auth::X509) {
            "optional"
        } else {
            v
        };
        set(&mut t, "client_auth", q(v), c.from());
    } else if dr.routes.iter().any(|r| r.auth == Auth::X509) {
        t.push_str("# an x509 route exists: the handshake asks for a client certificate\nclient_auth = \"optional\"\n");
    }
    if let Some(o) = &dr.ssl_options {
        t.push_str(&format!(
            "# SSLOptions {} ({}): fedgate always exports mod_ssl's StdEnvVars and ExportCertData values\n",
            o.v, o.at
        ));
    }
    t.push('\n');

    // [x509]
    let x509_routes = dr.routes.iter().any(|r| r.auth == Auth::X509);
    if dr.crl_check.is_some() || dr.proxy_limit.is_some() || x509_routes {
        t.push_str("[x509]\n");
        match &dr.crl_check {
            Some(c) => {
                let lc = c.v.to_ascii_lowercase();
                let (mode, change) = if lc.starts_with("chain") && lc.contains("no_crl_for_cert_ok")
                {
                    ("if_valid", None)
                } else if lc.starts_with("chain") {
                    ("require", None)
                } else if lc.starts_with("leaf") {
                    (
                        "require",
                        Some(
                            "Apache checked the CRL of the user's CA only; fedgate checks every CA of the chain",
                        ),
                    )
                } else {
                    (
                        "require",
                        Some(
                            "Apache checked no CRL and accepted revoked users; fedgate requires a valid CRL per CA (run fetch-crl); crl = \"ignore\" would restore Apache's behaviour",
                        ),
                    )
                };
                if let Some(why) = change {
                    dr.notes.push(Note {
                        at: c.at.clone(),
                        directive: c.name.clone(),
                        reason: why.into(),
                    });
                }
                set(&mut t, "crl", q(mode), c.from());
            }
            None if x509_routes => {
                t.push_str("# Apache's default (SSLCARevocationCheck none) accepted revoked users;\n# fedgate requires a valid CRL per CA (run fetch-crl).\ncrl = \"require\"\n");
            }
            None => {}
        }
        if let Some(p) = &dr.proxy_limit {
            set(&mut t, "max_proxy_depth", p.v, p.from());
        }
        t.push('\n');
    }

    // [upstream]
    t.push_str("[upstream]\n");
    match &dr.upstream {
        Some(u) => {
            set(&mut t, "url", q(&u.v), u.from());
            if u.v.starts_with("http://") {
                dr.notes.push(Note {
                    at: u.at.clone(),
                    directive: u.name.clone(),
                    reason: "an http:// backend sees identity as HTTP_* headers only; Keystone's mappings \
                             keep working unchanged with a uWSGI uwsgi-socket (uwsgi://)"
                        .into(),
                });
            }
        }
        None => t.push_str(
            "url = \"uwsgi://127.0.0.1:5001\"  # no backend found: Keystone under uWSGI\n",
        ),
    }
    if let Some(ini) = &dr.uwsgi_ini {
        t.push_str("# Keystone must run under uWSGI (it ran under mod_wsgi):\n");
        for l in ini.lines() {
            t.push_str(&format!("#   {l}\n"));
        }
    }
    if let Some(h) = &dr.authn_header {
        match &dr.upstream {
            Some(u) if u.v.starts_with("http://") => {
                t.push_str(&format!(
                    "identity_headers = {{ REMOTE_USER = {} }}  # from {}\n",
                    q(&h.v),
                    h.from()
                ));
            }
            _ => dr.notes.push(Note {
                at: h.at.clone(),
                directive: h.name.clone(),
                reason: "with a uwsgi:// upstream Keystone gets REMOTE_USER in its environ; no header needed".into(),
            }),
        }
    }
    t.push('\n');

    // [[idp]]
    let issuer: Option<(String, String)> = dr
        .provider_issuer
        .as_ref()
        .map(|i| (i.v.clone(), i.from()))
        .or_else(|| {
            dr.provider_metadata_url
                .as_ref()
                .map(|m| (issuer_of_discovery(&m.v), m.from()))
        })
        .or_else(|| {
            dr.oauth_metadata_url
                .as_ref()
                .map(|m| (issuer_of_discovery(&m.v), m.from()))
        })
        .or_else(|| {
            dr.introspection.as_ref().map(|i| {
                let iss = issuer_of_introspection(&i.v);
                dr.notes.push(Note {
                    at: i.at.clone(),
                    directive: i.name.clone(),
                    reason: format!(
                        "the IdP's issuer is not in the Apache configuration: guessed {iss} from \
                         this endpoint; check [[idp]] issuer (JWTs are matched on it)"
                    ),
                });
                (iss, format!("{} (guessed)", i.from()))
            })
        })
        .or_else(|| {
            dr.jwks_uri.as_ref().map(|j| {
                let iss = url::Url::parse(&j.v)
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_default();
                dr.notes.push(Note {
                    at: j.at.clone(),
                    directive: j.name.clone(),
                    reason: format!("the IdP's issuer is not in the Apache configuration: guessed {iss}; check it"),
                });
                (iss, format!("{} (guessed)", j.from()))
            })
        });
    let mut idp_names: BTreeMap<String, String> = BTreeMap::new();
    let needs_idp = any_oidc_route || any_bearer_route;
    if let Some((iss, iss_from)) = &issuer {
        let name = idp_name(iss);
        idp_names.insert(iss.clone(), name.clone());
        t.push_str("[[idp]]\n");
        t.push_str(&format!("name = {}\n", q(&name)));
        t.push_str(&format!("issuer = {}  # from {iss_from}\n", q(iss)));
        if let Some(m) = &dr.provider_metadata_url
            && issuer_of_discovery(&m.v) == m.v
        {
            set(&mut t, "discovery_url", q(&m.v), m.from());
        }
        if let Some(m) = &dr.oauth_metadata_url
            && dr.provider_metadata_url.is_none()
            && issuer_of_discovery(&m.v) == m.v
        {
            set(&mut t, "discovery_url", q(&m.v), m.from());
        }
        // One client per IdP in fedgate: the RP's, else the resource server's.
        let (cid, secret) = match (&dr.client_id, &dr.oauth_client_id) {
            (Some(c), Some(o)) => {
                if c.v != o.v {
                    dr.notes.push(Note {
                        at: o.at.clone(),
                        directive: o.name.clone(),
                        reason: format!(
                            "fedgate uses one client per IdP: introspection now uses {} ({}) too",
                            c.v,
                            c.from()
                        ),
                    });
                }
                (
                    Some(c.clone()),
                    dr.client_secret.clone().or(dr.oauth_client_secret.clone()),
                )
            }
            (Some(c), None) => (Some(c.clone()), dr.client_secret.clone()),
            (None, Some(o)) => (Some(o.clone()), dr.oauth_client_secret.clone()),
            (None, None) => (None, None),
        };
        if let Some(c) = &cid {
            set(&mut t, "client_id", q(&c.v), c.from());
        }
        if let Some(s) = &secret {
            t.push_str(&format!(
                "# from {}: copied as Apache had it; better: client_secret = \"env:FEDGATE_{}_CLIENT_SECRET\"\n",
                s.from(),
                name.to_ascii_uppercase().replace(['.', '-', '/'], "_")
            ));
            t.push_str(&format!("client_secret = {}\n", q(&s.v)));
        }
        let validation = if let Some(i) = &dr.introspection {
            set(&mut t, "introspection_endpoint", q(&i.v), i.from());
            Some(("introspection", i.from()))
        } else if let Some(j) = &dr.jwks_uri {
            set(&mut t, "jwks_uri", q(&j.v), j.from());
            Some(("jwt", j.from()))
        } else {
            None
        };
        if let Some((v, from)) = validation {
            t.push_str(&format!(
                "# mod_auth_openidc {} every bearer token ({from})\nvalidation = {}\n",
                if v == "jwt" {
                    "checked locally"
                } else {
                    "introspected"
                },
                q(v)
            ));
        } else if cid.is_none() {
            t.push_str("validation = \"jwt\"  # no client credentials in Apache: JWTs only\n");
        }
        // REMOTE_USER: OAuth 2.0 routes' claim wins when bearer routes exist.
        let ru = if any_bearer_route {
            dr.oauth_remote_user.clone().map(|v| (v, "sub"))
        } else {
            dr.remote_user.clone().map(|v| (v, "sub@"))
        };
        let remote_user = match &ru {
            Some((v, _)) => match v.v.as_str() {
                "sub" => Some(("sub", v.from())),
                "sub@" => Some(("sub-at-issuer", v.from())),
                other => {
                    dr.notes.push(Note {
                        at: v.at.clone(),
                        directive: v.name.clone(),
                        reason: format!(
                            "REMOTE_USER from `{other}` is not available: fedgate offers sub, sub@issuer or none"
                        ),
                    });
                    None
                }
            },
            None if any_bearer_route => {
                Some(("sub", "mod_auth_openidc's OAuth 2.0 default".into()))
            }
            None => Some(("sub-at-issuer", "mod_auth_openidc's default (sub@)".into())),
        };
        if let Some((r, from)) = remote_user {
            t.push_str(&format!("remote_user = {}  # from {from}\n", q(r)));
        }
        if any_bearer_route && any_oidc_route {
            let oidc_ru = dr
                .remote_user
                .as_ref()
                .map(|v| v.v.as_str())
                .unwrap_or("sub@");
            if oidc_ru != "sub" {
                let at = dr.remote_user.as_ref().map(|v| v.at.clone()).or_else(|| {
                    dr.routes
                        .iter()
                        .find(|r| r.auth == Auth::Oidc)
                        .map(|r| r.at.clone())
                });
                if let Some(at) = at {
                    dr.notes.push(Note {
                        at,
                        directive: "OIDCRemoteUserClaim".into(),
                        reason: "fedgate sets one REMOTE_USER form per IdP: the browser login now gets the \
                                 OAuth 2.0 form (sub) too; EGI's mappings use HTTP_OIDC_SUB, not REMOTE_USER"
                            .into(),
                    });
                }
            }
        }
        if let Some(c) = &dr.ca_bundle {
            set(&mut t, "ca_file", q(&c.v), c.from());
        }
        if let Some(c) = &dr.claims {
            t.push_str(&format!(
                "claims = [{}]  # from {}\n",
                c.v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", "),
                c.from()
            ));
        }
        if let Some(v) = &dr.jwks_refresh {
            set(&mut t, "jwks_refresh_secs", v.v, v.from());
        }
        if let Some(v) = &dr.metadata_refresh {
            set(&mut t, "metadata_refresh_secs", v.v, v.from());
        }
        t.push('\n');
    } else if needs_idp && dr.metadata_dir.is_none() && opts.metadata_dir.is_none() {
        let at = dr
            .routes
            .iter()
            .find(|r| r.auth != Auth::X509 && r.auth != Auth::None)
            .map(|r| r.at.clone());
        if let Some(at) = at {
            dr.notes.push(Note {
                at,
                directive: "AuthType".into(),
                reason: "no IdP in the Apache configuration (OIDCProviderMetadataURL, \
                         OIDCOAuthIntrospectionEndpoint or OIDCMetadataDir): add an [[idp]] table"
                    .into(),
            });
        }
    }

    // [oidc]
    if any_oidc_route || dr.redirect_uri.is_some() || dr.scope.is_some() {
        t.push_str("[oidc]\n");
        if let Some(r) = &dr.redirect_uri {
            if r.v.starts_with("https://") {
                set(&mut t, "redirect_uri", q(&r.v), r.from());
                if let Ok(u) = url::Url::parse(&r.v) {
                    t.push_str(&format!("redirect_path = {}\n", q(u.path())));
                }
            } else if r.v.starts_with('/') {
                set(&mut t, "redirect_path", q(&r.v), r.from());
            } else {
                dr.notes.push(Note {
                    at: r.at.clone(),
                    directive: r.name.clone(),
                    reason: "not an https:// URL or absolute path: fedgate's default redirect path is used".into(),
                });
            }
        }
        if opts.trusted_dashboards.is_empty() {
            t.push_str(
                "# Keystone's [federation] trusted_dashboard values (not in Apache's configuration):\n\
                 # REPLACE this placeholder, or run import-apache with --trusted-dashboard URL.\n\
                 trusted_dashboards = [\"https://horizon.example.org/dashboard/auth/websso/\"]\n",
            );
            if let Some(r) = dr.routes.iter().find(|r| r.auth == Auth::Oidc) {
                dr.notes.push(Note {
                    at: r.at.clone(),
                    directive: "AuthType".into(),
                    reason: "the browser login needs Keystone's trusted_dashboard values ([oidc] \
                             trusted_dashboards): a placeholder was written; use --trusted-dashboard"
                        .into(),
                });
            }
        } else {
            t.push_str(&format!(
                "trusted_dashboards = [{}]  # from --trusted-dashboard\n",
                opts.trusted_dashboards
                    .iter()
                    .map(|s| q(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(s) = &dr.scope {
            set(&mut t, "scopes", q(&s.v), s.from());
        }
        if let Some(u) = &dr.logged_out_url {
            set(&mut t, "post_logout_url", q(&u.v), u.from());
        }
        if let Some(v) = &dr.state_timeout {
            set(&mut t, "state_timeout_secs", v.v, v.from());
        }
        if let Some(v) = &dr.max_state_cookies {
            set(&mut t, "max_pending_logins", v.v.max(1), v.from());
        }
        if let Some(v) = &dr.iat_slack {
            set(&mut t, "iat_slack_secs", v.v, v.from());
        }
        t.push_str("\n[oidc.session]\n");
        if let Some(p) = &dr.passphrase {
            let key = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, p.v.as_bytes());
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(key.as_ref());
            t.push_str(&format!(
                "# from {}: SHA-256 of Apache's passphrase, so sessions survive restarts as they did;\n\
                 # better: keys = [\"env:FEDGATE_SESSION_KEY\"] with `openssl rand -base64 32`\n\
                 keys = [{}]\n",
                p.from(),
                q(&b64)
            ));
            dr.notes.push(Note {
                at: p.at.clone(),
                directive: p.name.clone(),
                reason: "fedgate seals sessions with 32-byte keys ([oidc.session] keys): one was derived \
                         from the passphrase (SHA-256); existing Apache sessions end (users log in again)"
                    .into(),
            });
        }
        if let Some(v) = &dr.inactivity {
            set(&mut t, "inactivity_timeout_secs", v.v, v.from());
        }
        if let Some(v) = &dr.max_duration {
            set(&mut t, "max_duration_secs", v.v, v.from());
        }
        t.push('\n');
    }

    // [state]: mod_auth_openidc's Redis cache holds sessions and tokens,
    // as fedgate's shared state does.
    if let Some(r) = &dr.redis {
        t.push_str(&format!(
            "[state]\nbackend = \"redis\"\nurl = {}  # from {}\n\n",
            q(&format!("redis://{}", r.v)),
            r.from()
        ));
    }

    // [cache]
    if dr.introspection_interval.is_some() {
        t.push_str("[cache]\n");
        if let Some(v) = &dr.introspection_interval {
            let secs = if v.v < 0 { 0 } else { v.v };
            t.push_str(&format!(
                "max_ttl_secs = {secs}  # from {}{}\n",
                v.from(),
                if v.v < 0 {
                    ": -1, every token is validated again"
                } else {
                    ""
                }
            ));
        }
        t.push('\n');
    }

    // [[route]]: the last Apache section first, then what ProxyPass forwards.
    let mut used = std::collections::HashSet::new();
    for (i, r) in dr.routes.iter().enumerate().rev() {
        if let Some(e) = &r.broken {
            t.push_str(&format!(
                "# {} ({}) was NOT translated: its regex does not compile in Rust's dialect:\n# {}\n\n",
                r.section,
                r.at,
                e.lines().next().unwrap_or_default()
            ));
            dr.notes.push(Note {
                at: r.at.clone(),
                directive: r.section.clone(),
                reason: format!(
                    "regex not accepted by Rust's regex crate ({}): rewrite it and add the route by hand \
                     (until then this path gets the authentication of the routes after it)",
                    e.lines().last().unwrap_or_default().trim()
                ),
            });
            continue;
        }
        let mut base = match r.auth {
            Auth::Oidc => "websso".to_string(),
            Auth::Bearer => "openid".to_string(),
            Auth::X509 => "voms".to_string(),
            Auth::None => "open".to_string(),
        };
        if !used.insert(base.clone()) {
            base = format!("{base}{i}");
            used.insert(base.clone());
        }
        t.push_str(&format!("# {} ({}), {}\n", r.section, r.at, r.auth_from));
        t.push_str(&format!(
            "[[route]]\nname = {}\npath = {}\nauth = {}\n",
            q(&base),
            q(&r.regex),
            q(r.auth.name())
        ));
        match r.auth {
            Auth::Bearer if !r.claims.is_empty() => {
                let rules: Vec<String> = r
                    .claims
                    .iter()
                    .map(|(c, is_re, v)| {
                        format!(
                            "{{ claim = {}, {} = {} }}",
                            q(c),
                            if *is_re { "regex" } else { "value" },
                            q(v)
                        )
                    })
                    .collect();
                t.push_str(&format!(
                    "[route.bearer]\n# from Require claim\nrequire_claims = [{}]\n",
                    rules.join(", ")
                ));
            }
            Auth::Oidc => {
                if let Some(p) = &r.pinned_issuer {
                    match idp_names.get(&p.v) {
                        Some(n) => t.push_str(&format!(
                            "[route.oidc]\nidps = [{}]  # from {}\n",
                            q(n),
                            p.from()
                        )),
                        None if dr.metadata_dir.is_some() || opts.metadata_dir.is_some() => {
                            // metadata_dir IdPs are named after their issuer without the scheme.
                            let n =
                                p.v.trim_start_matches("https://")
                                    .trim_start_matches("http://")
                                    .trim_end_matches('/');
                            t.push_str(&format!(
                                "[route.oidc]\nidps = [{}]  # from {}\n",
                                q(n),
                                p.from()
                            ));
                        }
                        None => dr.notes.push(Note {
                            at: p.at.clone(),
                            directive: p.name.clone(),
                            reason: format!(
                                "names issuer {}, which no [[idp]] has: not pinned",
                                p.v
                            ),
                        }),
                    }
                }
            }
            _ => {}
        }
        t.push('\n');
    }
    let mut seen = std::collections::HashSet::new();
    for p in &dr.proxy_paths {
        let re = location_regex(&p.v);
        if !seen.insert(re.clone()) {
            continue;
        }
        t.push_str(&format!(
            "# forwarded without authentication, as {} did\n[[route]]\nname = {}\npath = {}\nauth = \"none\"\n\n",
            p.from(),
            q(&if seen.len() == 1 { "keystone".to_string() } else { format!("keystone{}", seen.len()) }),
            q(&re)
        ));
    }
    let mut notes = dr.notes;
    notes.sort_by(|a, b| (a.at.file.as_ref(), a.at.line).cmp(&(b.at.file.as_ref(), b.at.line)));
    notes.dedup();
    Translation { toml: t, notes }
}

fn crate_host_ok(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', ' ', '*'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_prefixes_become_segment_regexes() {
        let re = regex::Regex::new(&location_regex("/v3/auth/OS-FEDERATION/websso")).unwrap();
        assert!(re.is_match("/v3/auth/OS-FEDERATION/websso"));
        assert!(re.is_match("/v3/auth/OS-FEDERATION/websso/openid"));
        assert!(!re.is_match("/v3/auth/OS-FEDERATION/webssox"));
        assert_eq!(location_regex("/"), "^/");
        let re =
            regex::Regex::new(&location_regex("/v3/identity_providers/*/protocols/x/")).unwrap();
        assert!(re.is_match("/v3/identity_providers/egi.eu/protocols/x"));
        assert!(!re.is_match("/v3/identity_providers/a/b/protocols/x"));
    }

    #[test]
    fn issuers_from_endpoints() {
        assert_eq!(
            issuer_of_discovery(
                "https://aai.egi.eu/auth/realms/egi/.well-known/openid-configuration"
            ),
            "https://aai.egi.eu/auth/realms/egi"
        );
        assert_eq!(
            issuer_of_introspection(
                "https://aai.egi.eu/auth/realms/egi/protocol/openid-connect/token/introspect"
            ),
            "https://aai.egi.eu/auth/realms/egi"
        );
        assert_eq!(idp_name("https://aai.egi.eu/auth/realms/egi"), "aai.egi.eu");
    }
}
