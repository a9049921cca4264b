//! Routes: which authentication a path needs.
//!
//! Routes are tried in file order and the first whose `path` regex matches
//! decides. A request that matches no route is refused with 404 rather than
//! forwarded: a gateway that forgets a path must fail closed.

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{Config, Problem, Problems};

/// The authentication a route asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// Forward without an identity (Keystone's own password/token auth).
    None,
    /// X.509 client chain, GSI proxies and VOMS attributes.
    X509,
    /// `Authorization: Bearer` access token.
    Bearer,
    /// Browser login with the OIDC authorization-code flow.
    Oidc,
    /// ESACO-compatible RFC 7662 endpoint (fedgate answers itself).
    Introspect,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::None => "none",
            AuthKind::X509 => "x509",
            AuthKind::Bearer => "bearer",
            AuthKind::Oidc => "oidc",
            AuthKind::Introspect => "introspect",
        }
    }
}

/// One `[[route]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Label for metrics and logs; defaults to `route<N>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Regex matched against the decoded request path.
    pub path: Spanned<String>,
    pub auth: Spanned<AuthKind>,
    /// Options of the x509 authenticator for this route.
    #[serde(default)]
    pub x509: Option<crate::pki::RouteX509>,
    /// Options of browser-login routes.
    #[serde(default)]
    pub oidc: Option<crate::oidc::websso::config::RouteOidc>,
    /// Options of bearer and introspect routes.
    #[serde(default)]
    pub bearer: Option<crate::token::RouteBearer>,
}

impl RouteConfig {
    pub(crate) fn validate(&self, cfg: &Config, p: &mut Problems) {
        let src = &cfg.source;
        if let Err(e) = Regex::new(self.path.get_ref()) {
            p.push(src.problem(&self.path, format!("route path is not a valid regex: {e}")));
        }
        match *self.auth.get_ref() {
            AuthKind::None | AuthKind::X509 => {}
            AuthKind::Bearer | AuthKind::Introspect => {
                if cfg.idps.is_empty() && cfg.metadata_dir.is_none() {
                    p.push(src.problem(
                        &self.auth,
                        "bearer tokens need at least one [[idp]] (or metadata_dir)",
                    ));
                }
                let b = self.bearer.clone().unwrap_or_default();
                for r in &b.require_claims {
                    if let Err(e) = r.check_shape() {
                        p.push(src.problem(&self.path, e));
                    }
                }
                for n in b.idps.iter().chain(b.opaque_idps.iter().flatten()) {
                    if cfg.metadata_dir.is_none() && !cfg.idps.iter().any(|i| &i.name == n) {
                        p.push(src.problem(
                            &self.path,
                            format!("[route.bearer] names idp `{n}`, which is not configured"),
                        ));
                    }
                }
                if *self.auth.get_ref() == AuthKind::Introspect && b.clients.is_empty() {
                    p.push(src.problem(&self.auth, "auth = \"introspect\" needs [route.bearer] clients (Basic credentials of callers)"));
                }
            }
            AuthKind::Oidc => {
                if cfg.idps.is_empty() && cfg.metadata_dir.is_none() {
                    p.push(src.problem(
                        &self.auth,
                        "browser login needs at least one [[idp]] (or metadata_dir)",
                    ));
                }
                if cfg.oidc.trusted_dashboards.is_empty() {
                    p.push(src.problem(&self.auth, "browser login needs [oidc] trusted_dashboards (Keystone's trusted_dashboard values)"));
                }
                for n in self.oidc.iter().flat_map(|o| o.idps.iter()) {
                    if cfg.metadata_dir.is_none() && !cfg.idps.iter().any(|i| &i.name == n) {
                        p.push(src.problem(
                            &self.path,
                            format!("[route.oidc] names idp `{n}`, which is not configured"),
                        ));
                    }
                }
            }
        }
        if self.bearer.is_some()
            && !matches!(
                *self.auth.get_ref(),
                AuthKind::Bearer | AuthKind::Introspect
            )
        {
            p.push(Problem::file(
                &src.path,
                format!(
                    "route `{}` has a [route.bearer] table but auth is not \"bearer\"",
                    self.path.get_ref()
                ),
            ));
        }
        if self.x509.is_some() && *self.auth.get_ref() != AuthKind::X509 {
            p.push(Problem::file(
                &src.path,
                format!(
                    "route `{}` has an [route.x509] table but auth is not \"x509\"",
                    self.path.get_ref()
                ),
            ));
        }
    }
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub path: Regex,
    pub auth: AuthKind,
    pub config: RouteConfig,
}

/// The compiled, ordered route list.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Compiles validated route configs; regexes were checked by
    /// [`Config::validate`], so failure here is a bug reported as a problem.
    pub fn build(cfg: &Config) -> Result<RouteTable, Problems> {
        let mut routes = Vec::new();
        let mut problems = Problems::default();
        for (i, r) in cfg.routes.iter().enumerate() {
            match Regex::new(r.path.get_ref()) {
                Ok(path) => routes.push(Route {
                    name: r.name.clone().unwrap_or_else(|| format!("route{i}")),
                    path,
                    auth: *r.auth.get_ref(),
                    config: r.clone(),
                }),
                Err(e) => problems.push(
                    cfg.source
                        .problem(&r.path, format!("route path regex: {e}")),
                ),
            }
        }
        problems.into_result()?;
        Ok(RouteTable { routes })
    }

    /// The first route matching `path`, if any.
    pub fn find(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.path.is_match(path))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let t = RouteTable::build(&c).unwrap();
        let r = t
            .find("/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth")
            .unwrap();
        assert_eq!(r.name.as_str(), "voms");
        let r = t.find("/v3/auth/tokens").unwrap();
        assert_eq!((r.name.as_str(), r.auth), ("route1", AuthKind::None));
    }

    #[test]
    fn no_match_is_none() {
        let c = cfg("[[route]]\npath = \"^/v3$\"\nauth = \"none\"\n");
        let t = RouteTable::build(&c).unwrap();
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
