//! Routes: which authentication a path needs.
//!
//! Routes are tried in file order and the first whose `path` regex matches
//! decides. A request that matches no route is refused with 404 rather than
//! forwarded: a gateway that forgets a path must fail closed.

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

pub use crate::auth::AuthKind;
use crate::auth::{Policy, bearer::RouteBearer, websso::RouteOidc, x509::RouteX509};
use crate::problem::{Problem, Problems, Source};

/// One `[[route]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Label for metrics and logs; defaults to `route<N>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Regex matched against the canonical request path (`crate::http::path`).
    pub path: Spanned<String>,
    pub auth: Spanned<AuthKind>,
    /// Options of the x509 authenticator for this route.
    #[serde(default)]
    pub x509: Option<RouteX509>,
    /// Options of browser-login routes.
    #[serde(default)]
    pub oidc: Option<RouteOidc>,
    /// Options of bearer and introspect routes.
    #[serde(default)]
    pub bearer: Option<RouteBearer>,
}

/// What route validation needs to know of the rest of the configuration.
pub struct Context<'a> {
    /// Names of the `[[idp]]` tables; `None` when a metadata directory may
    /// add more (then names are checked once it has been read).
    pub idp_names: Option<Vec<&'a str>>,
    /// Whether any IdP can exist (`[[idp]]` or a metadata directory).
    pub any_idp: bool,
    /// Whether `[oidc] trusted_dashboards` is set.
    pub dashboards: bool,
}

impl RouteConfig {
    /// Checks one route against its own rules and `ctx`.
    pub fn validate(&self, src: &Source, ctx: &Context<'_>, p: &mut Problems) {
        if let Err(e) = Regex::new(self.path.get_ref()) {
            p.push(src.problem(&self.path, format!("route path is not a valid regex: {e}")));
        }
        let known = |n: &str| ctx.idp_names.as_ref().is_none_or(|v| v.contains(&n));
        match *self.auth.get_ref() {
            AuthKind::None | AuthKind::X509 => {}
            AuthKind::Bearer | AuthKind::Introspect => {
                if !ctx.any_idp {
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
                    if !known(n) {
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
                if !ctx.any_idp {
                    p.push(src.problem(
                        &self.auth,
                        "browser login needs at least one [[idp]] (or metadata_dir)",
                    ));
                }
                if !ctx.dashboards {
                    p.push(src.problem(&self.auth, "browser login needs [oidc] trusted_dashboards (Keystone's trusted_dashboard values)"));
                }
                for n in self.oidc.iter().flat_map(|o| o.idps.iter()) {
                    if !known(n) {
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

    /// The authenticator this route asks for, with its options.
    pub fn policy(&self) -> Policy {
        match *self.auth.get_ref() {
            AuthKind::None => Policy::None,
            AuthKind::X509 => Policy::X509(self.x509.clone().unwrap_or_default()),
            AuthKind::Bearer => Policy::Bearer(self.bearer.clone().unwrap_or_default()),
            AuthKind::Introspect => Policy::Introspect(self.bearer.clone().unwrap_or_default()),
            AuthKind::Oidc => Policy::Oidc(self.oidc.clone().unwrap_or_default()),
        }
    }
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub path: Regex,
    pub policy: Policy,
}

impl Route {
    pub fn auth(&self) -> AuthKind {
        self.policy.kind()
    }
}

/// The compiled, ordered route list.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Compiles validated route configs; regexes were checked by
    /// [`RouteConfig::validate`], so failure here is a bug reported as a
    /// problem.
    pub fn build(routes: &[RouteConfig], src: &Source) -> Result<RouteTable, Problems> {
        let mut out = Vec::new();
        let mut problems = Problems::default();
        for (i, r) in routes.iter().enumerate() {
            match Regex::new(r.path.get_ref()) {
                Ok(path) => out.push(Route {
                    name: r.name.clone().unwrap_or_else(|| format!("route{i}")),
                    path,
                    policy: r.policy(),
                }),
                Err(e) => problems.push(src.problem(&r.path, format!("route path regex: {e}"))),
            }
        }
        problems.into_result()?;
        Ok(RouteTable { routes: out })
    }

    /// The first route matching `path`, if any.
    pub fn find(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.path.is_match(path))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }
}
