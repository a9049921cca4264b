//! The authorization-code flow: start a login, finish it at the redirect
//! URI, and recognise the session on later WebSSO requests.
//!
//! Order matters for safety: the `origin=` is checked before anything
//! else, so an untrusted dashboard never even reaches the IdP; the state is
//! bound to the browser by a sealed cookie; the ID token is verified with
//! the IdP's JWKS (iss, aud, azp, nonce, exp, iat); PKCE S256 is always on.

use std::sync::Arc;

use http::header::{ACCEPT, HeaderMap, HeaderValue, LOCATION, SET_COOKIE};
use http::{Response, StatusCode, Uri};

use super::config::{OidcConfig, RouteOidc};
use super::pages::{self, Choice};
use super::state::{self, Pending, PendingLogin, StateError};
use super::{cookies, origin};
use crate::auth::{AuthOutcome, Denial};
use crate::http::body::{Body, empty};
use crate::http::host::PublicNames;
use crate::identity::AuthMethod;
use crate::identity::Identity;
use crate::oidc::claims::{Export, to_identity};
use crate::oidc::{Idp, Registry};
use crate::session::{KeyRing, Lifetimes, Session, SessionData, SessionStore};

/// Why the browser login could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebSsoError {
    #[error("oidc.session.keys: {0}")]
    Keys(crate::session::SealError),
}

/// Seconds a browser is asked to wait when the session store is down.
const RETRY_AFTER_SECS: u32 = 5;

/// The session store failed (or was too slow): 503, never a cleared
/// cookie, which would turn an outage into a silent logout loop. A page
/// for people, Keystone's JSON for scripts; one log line.
fn store_unavailable(h: &HeaderMap, what: &str, e: &dyn std::fmt::Display) -> Response<Body> {
    tracing::warn!(error = %e, during = what, "session store unavailable: answered 503, cookie kept");
    let mut r = if is_browser(h) {
        pages::unavailable(RETRY_AFTER_SECS)
    } else {
        crate::http::reply::json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "sign-in is temporarily unavailable (session store unreachable); retry later",
        )
    };
    r.headers_mut().insert(
        http::header::RETRY_AFTER,
        HeaderValue::from(RETRY_AFTER_SECS),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

/// The storage key marking a login state as used: a hash, so the store
/// never holds the state value itself.
fn used_state_key(store: &crate::kv::Store, state: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, state.as_bytes());
    store.key("login", &hex::encode(d.as_ref()))
}

/// The browser-flow authenticator, one per process configuration.
pub struct WebSso {
    pub cfg: OidcConfig,
    /// `server.public_names`: the redirect URI is built from them.
    public: PublicNames,
    registry: Arc<Registry>,
    keys: KeyRing,
    store: SessionStore,
    lifetimes: Lifetimes,
    /// Session digest → the identity its claims give under this
    /// configuration's `[[idp]]` export rules. Per flow, so a reload that
    /// changes those rules starts afresh; keyed by the stored session's
    /// digest (see [`Session::digest`]), so it answers only for the very
    /// session it was built from, and only after the store has said that
    /// session is still live.
    identities: moka::sync::Cache<[u8; 32], Arc<Identity>>,
    /// `[oidc] trusted_dashboards`, normalised as Keystone compares them.
    dashboards: Vec<String>,
}

/// How many session identities a flow remembers, and for how long unused.
const IDENTITY_ENTRIES: u64 = 4096;
const IDENTITY_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

fn identity_memo() -> moka::sync::Cache<[u8; 32], Arc<Identity>> {
    moka::sync::Cache::builder()
        .max_capacity(IDENTITY_ENTRIES)
        .time_to_idle(IDENTITY_IDLE)
        .build()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// mod_auth_openidc's rule for clients that must get 401 rather than a
/// redirect: scripts (XHR, fetch) and anything that does not accept HTML.
pub fn is_browser(h: &HeaderMap) -> bool {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    if get("x-requested-with").is_some_and(|v| v.eq_ignore_ascii_case("XMLHttpRequest")) {
        return false;
    }
    if get("sec-fetch-mode").is_some_and(|v| v != "navigate")
        || get("sec-fetch-dest").is_some_and(|v| v != "document")
    {
        return false;
    }
    match get(ACCEPT.as_str()) {
        Some(a) => a.contains("text/html") || a.contains("*/*"),
        None => true,
    }
}

fn redirect(to: &str) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

fn deny(status: StatusCode, reason: impl Into<String>) -> AuthOutcome {
    AuthOutcome::Deny(Denial::new(status, reason))
}

/// Where a signed-out user is sent: `[oidc] post_logout_url`, else the
/// root of the dashboard they came from. The trusted dashboard URL
/// itself is Horizon's WebSSO callback, which only takes a POST: a link
/// to it shows Horizon's "Login failed".
fn after_logout(post_logout_url: Option<&str>, back: Option<&str>) -> Option<String> {
    if let Some(u) = post_logout_url {
        return Some(u.to_string());
    }
    let mut u = url::Url::parse(back?).ok()?;
    let path = u.path().to_string();
    let root = path
        .strip_suffix("auth/websso/")
        .or_else(|| path.strip_suffix("auth/websso"))
        .unwrap_or("/")
        .to_string();
    u.set_path(&root);
    u.set_query(None);
    u.set_fragment(None);
    Some(u.to_string())
}

/// The seal name of the logout confirmation token.
const LOGOUT_TOKEN: &str = "fedgate_logout";

/// Whether a request is a top-level navigation the user made on this site
/// (or typed). Browsers set `Sec-Fetch-*` themselves; no page can forge
/// them. Without them (an old browser, a script), the answer is no.
fn same_site_navigation(h: &HeaderMap) -> bool {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    matches!(
        get("sec-fetch-site"),
        Some("same-origin" | "same-site" | "none")
    ) && get("sec-fetch-mode") == Some("navigate")
}

/// One field of a small urlencoded form body (at most 8 KiB is read).
async fn form_field(mut body: Body, name: &str) -> Option<String> {
    use http_body_util::BodyExt;
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            bytes.extend_from_slice(&data);
            if bytes.len() > 8 * 1024 {
                return None;
            }
        }
    }
    url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl WebSso {
    /// Builds the flow from `[oidc]`, with sessions in `store` (`[state]`;
    /// the caller keeps the running store across reloads when `[state]`
    /// is unchanged). On a reload, `previous` is the running flow: when
    /// `[oidc.session]` is unchanged its keys are kept, so a reload neither
    /// logs anybody out nor breaks a login in progress (whose state cookie
    /// is sealed with the same keys), even with a generated key.
    pub async fn build(
        cfg: OidcConfig,
        public: PublicNames,
        registry: Arc<Registry>,
        store: crate::kv::Store,
        previous: Option<&WebSso>,
    ) -> Result<WebSso, WebSsoError> {
        let store = SessionStore::new(store);
        let s = &cfg.session;
        let lifetimes = Lifetimes {
            inactivity: std::time::Duration::from_secs(s.inactivity_timeout_secs),
            max_duration: std::time::Duration::from_secs(s.max_duration_secs),
        };
        if let Some(p) = previous.filter(|p| p.cfg.session == *s) {
            tracing::info!(
                "[oidc.session] unchanged: browser sessions and logins in progress kept"
            );
            return Ok(WebSso {
                keys: p.keys.clone(),
                store,
                public,
                registry,
                lifetimes,
                identities: identity_memo(),
                dashboards: origin::normalize(&cfg.trusted_dashboards),
                cfg,
            });
        }
        let keys = if s.keys.is_empty() {
            tracing::warn!(
                "oidc.session.keys is not set: using a random key, kept across reloads; sessions end on restart and are not shared between nodes"
            );
            KeyRing::ephemeral().map_err(WebSsoError::Keys)?
        } else {
            KeyRing::from_base64(s.keys.iter().map(|k| k.expose())).map_err(WebSsoError::Keys)?
        };
        Ok(WebSso {
            dashboards: origin::normalize(&cfg.trusted_dashboards),
            cfg,
            public,
            registry,
            keys,
            store,
            lifetimes,
            identities: identity_memo(),
        })
    }

    fn allowed<'a>(&'a self, ro: Option<&'a RouteOidc>) -> Vec<&'a Arc<Idp>> {
        let names = ro.map(|r| r.idps.as_slice()).unwrap_or(&[]);
        self.registry
            .iter()
            .filter(|i| names.is_empty() || names.iter().any(|n| n == i.name()))
            .collect()
    }

    /// The redirect URI sent to the IdP: `[oidc] redirect_uri`, else built
    /// from `server.public_names` (configuration, never the request), else
    /// from the request's (validated) Host.
    fn redirect_uri(&self, parts: &http::request::Parts) -> String {
        if let Some(u) = &self.cfg.redirect_uri {
            return u.clone();
        }
        if let Some(u) = self.public.url_for(&self.cfg.redirect_path) {
            return u;
        }
        let host = crate::http::host::request_host(parts).unwrap_or_else(|| "localhost".into());
        format!("https://{host}{}", self.cfg.redirect_path)
    }

    fn export(idp: &Idp) -> Export {
        Export {
            claims: idp.config.claims.clone(),
            remote_user: idp.config.remote_user,
        }
    }

    /// A request on a WebSSO route.
    pub async fn authenticate(&self, ro: &RouteOidc, parts: &http::request::Parts) -> AuthOutcome {
        // 1. Never an open redirector: the dashboard must be trusted first.
        if let Err(e) = origin::check_normalized(parts.uri.query(), &self.dashboards) {
            let status = if matches!(e, origin::OriginError::Missing) {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::FORBIDDEN
            };
            return deny(status, e.to_string());
        }
        let ro = Some(ro);
        let allowed = self.allowed(ro);

        // 2. An existing session for an IdP allowed here. A store that
        //    cannot say fails closed (503), and the cookie stays.
        let session = match self.session(parts).await {
            Ok(s) => s,
            Err(e) => {
                return AuthOutcome::Respond(store_unavailable(
                    &parts.headers,
                    "session lookup",
                    &e,
                ));
            }
        };
        if let Some(s) = session {
            if let Some(idp) = allowed.iter().find(|i| i.name() == s.idp) {
                return match self.session_identity(idp, &s) {
                    Ok(id) => AuthOutcome::Forward(Some(id)),
                    Err(e) => deny(StatusCode::UNAUTHORIZED, e),
                };
            }
        }

        // 3. No session: scripts get 401, people get the IdP.
        if !is_browser(&parts.headers) {
            return AuthOutcome::Deny(Denial::unauthorized(
                "login required: open this URL in a browser to sign in",
                "Bearer realm=\"fedgate\"",
            ));
        }
        let chosen = match query_param(&parts.uri, "iss") {
            Some(iss) => match allowed.iter().find(|i| i.issuer() == iss) {
                Some(i) => (*i).clone(),
                None => {
                    return deny(
                        StatusCode::BAD_REQUEST,
                        format!("identity provider {iss} is not offered here"),
                    );
                }
            },
            None if allowed.len() == 1 => allowed[0].clone(),
            None if allowed.is_empty() => {
                return deny(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "no identity provider is configured for this path",
                );
            }
            None => return AuthOutcome::Respond(self.chooser(parts, &allowed)),
        };
        self.start_login(parts, &chosen).await
    }

    /// The identity of a live session with `idp`, built once per session
    /// contents (see `identities`). Refusals are not remembered.
    fn session_identity(&self, idp: &Idp, s: &Session) -> Result<Arc<Identity>, String> {
        if let Some(id) = self.identities.get(&s.digest) {
            return Ok(id);
        }
        let id = to_identity(
            AuthMethod::OidcSession,
            idp.issuer(),
            &s.claims,
            &Self::export(idp),
        )
        .map(Arc::new)
        .map_err(|e| e.to_string())?;
        self.identities.insert(s.digest, id.clone());
        Ok(id)
    }

    fn chooser(&self, parts: &http::request::Parts, allowed: &[&Arc<Idp>]) -> Response<Body> {
        let base = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let sep = if base.contains('?') { '&' } else { '?' };
        let choices: Vec<Choice> = allowed
            .iter()
            .map(|i| {
                let iss: String =
                    url::form_urlencoded::byte_serialize(i.issuer().as_bytes()).collect();
                Choice {
                    label: i
                        .config
                        .display_name
                        .clone()
                        .unwrap_or_else(|| i.name().to_string()),
                    href: format!("{base}{sep}iss={iss}"),
                }
            })
            .collect();
        pages::chooser(&choices)
    }

    /// The live session the cookie names: `Ok(None)` without a (valid)
    /// cookie or session, `Err` when the store cannot say.
    async fn session(
        &self,
        parts: &http::request::Parts,
    ) -> Result<Option<Session>, crate::session::store::StoreError> {
        let Some(c) = cookies::get(&parts.headers, &self.cfg.session.cookie_name) else {
            return Ok(None);
        };
        let id = match self.keys.open(&self.cfg.session.cookie_name, c) {
            Ok(id) => id,
            Err(e) => {
                tracing::info!(reason = %e, "ignored an invalid session cookie");
                return Ok(None);
            }
        };
        self.store.touch(&id, self.lifetimes, now()).await
    }

    async fn start_login(&self, parts: &http::request::Parts, idp: &Idp) -> AuthOutcome {
        let meta = match idp.discovery.get().await {
            Ok(m) => m,
            Err(e) => {
                return deny(
                    StatusCode::BAD_GATEWAY,
                    format!("identity provider {} is unavailable: {e}", idp.name()),
                );
            }
        };
        let Some(authz) = meta.authorization_endpoint.clone() else {
            return deny(
                StatusCode::BAD_GATEWAY,
                format!(
                    "identity provider {} publishes no authorization_endpoint",
                    idp.name()
                ),
            );
        };
        let Some(client_id) = idp.config.client_id.clone() else {
            return deny(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("identity provider {} has no client_id", idp.name()),
            );
        };
        let target = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let t = now();
        let login = match PendingLogin::new(idp.name(), &target, t) {
            Ok(l) => l,
            Err(e) => return deny(StatusCode::URI_TOO_LONG, e.to_string()),
        };
        let mut pending = Pending::open(&self.keys, cookies::get(&parts.headers, state::COOKIE))
            .unwrap_or_default();
        let mut url = match url::Url::parse(&authz) {
            Ok(u) => u,
            Err(_) => {
                return deny(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "identity provider {} has an invalid authorization_endpoint",
                        idp.name()
                    ),
                );
            }
        };
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", &self.redirect_uri(parts))
            .append_pair(
                "scope",
                idp.config.scopes.as_deref().unwrap_or(&self.cfg.scopes),
            )
            .append_pair("state", &login.state)
            .append_pair("nonce", &login.nonce)
            .append_pair("code_challenge", &state::pkce_challenge(&login.verifier))
            .append_pair("code_challenge_method", "S256");
        pending.push(
            login,
            self.cfg.max_pending_logins,
            t,
            self.cfg.state_timeout_secs as i64,
        );
        let sealed = match pending.seal(&self.keys) {
            Ok(Some(s)) => s,
            _ => {
                return deny(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot create the login state",
                );
            }
        };
        let mut r = redirect(url.as_str());
        r.headers_mut().append(
            SET_COOKIE,
            cookies::set(state::COOKIE, &sealed, Some(self.cfg.state_timeout_secs)),
        );
        tracing::info!(idp = idp.name(), "login started");
        AuthOutcome::Respond(r)
    }

    /// The IdP's redirect back: verify, create the session, and replay the
    /// original WebSSO request to Keystone with the identity.
    pub async fn finish_login(&self, parts: &http::request::Parts) -> AuthOutcome {
        let t = now();
        let timeout = self.cfg.state_timeout_secs as i64;
        let mut pending =
            // Without the cookie the response cannot belong to a login started
            // in this browser (or it was already used): both are "unknown".
            match Pending::open(&self.keys, cookies::get(&parts.headers, state::COOKIE)) {
                Ok(p) => p,
                Err(StateError::NoCookie) => Pending::default(),
                Err(e) => return deny(StatusCode::BAD_REQUEST, e.to_string()),
            };
        let Some(st) = query_param(&parts.uri, "state") else {
            return deny(StatusCode::BAD_REQUEST, "the login response has no state");
        };
        let login = match pending.take(&st, t, timeout) {
            Ok(l) => l,
            Err(e) => return deny(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let mut headers = HeaderMap::new();
        match pending.seal(&self.keys) {
            Ok(Some(s)) => headers.append(
                SET_COOKIE,
                cookies::set(state::COOKIE, &s, Some(self.cfg.state_timeout_secs)),
            ),
            _ => headers.append(SET_COOKIE, cookies::clear(state::COOKIE)),
        };
        if let Some(err) = query_param(&parts.uri, "error") {
            let desc = query_param(&parts.uri, "error_description").unwrap_or_default();
            return deny(
                StatusCode::UNAUTHORIZED,
                format!("the identity provider refused the login: {err} {desc}")
                    .trim()
                    .to_string(),
            );
        }
        let Some(idp) = self.registry.by_name(&login.idp).cloned() else {
            return deny(
                StatusCode::BAD_REQUEST,
                "the identity provider of this login is no longer configured",
            );
        };
        if let Some(iss) = query_param(&parts.uri, "iss") {
            if iss != idp.issuer() {
                return deny(
                    StatusCode::BAD_REQUEST,
                    "the login response comes from another issuer (RFC 9207 mix-up defence)",
                );
            }
        }
        let Some(code) = query_param(&parts.uri, "code") else {
            return deny(StatusCode::BAD_REQUEST, "the login response has no code");
        };
        // One callback completes a login once across all nodes: the
        // state cookie can be replayed to another node (or this one after
        // a reload), the used-state mark cannot. Marked before the code is
        // redeemed, so a replay never reaches the IdP.
        let mark = used_state_key(self.store.store(), &login.state);
        match self
            .store
            .store()
            .add(
                &mark,
                b"1",
                std::time::Duration::from_secs(timeout.max(1) as u64),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(idp = idp.name(), "refused a replayed login response");
                return deny(
                    StatusCode::BAD_REQUEST,
                    "this login response was already used; start again from the dashboard",
                );
            }
            Err(e) => {
                return AuthOutcome::Respond(store_unavailable(
                    &parts.headers,
                    "login completion",
                    &e,
                ));
            }
        }
        let claims = match super::exchange::code_for_claims(
            &idp,
            &code,
            &login,
            &self.redirect_uri(parts),
            self.cfg.iat_slack_secs,
            t,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => return deny(e.status(), e.to_string()),
        };
        let id_token = claims.1;
        let claims = claims.0;
        let identity = match to_identity(
            AuthMethod::OidcSession,
            idp.issuer(),
            &claims,
            &Self::export(&idp),
        ) {
            Ok(i) => i,
            Err(e) => return deny(StatusCode::UNAUTHORIZED, e.to_string()),
        };
        let sid = match crate::session::crypto::random_bytes::<32>() {
            Ok(b) => b,
            Err(e) => return deny(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        let data = SessionData {
            idp: idp.name().into(),
            claims,
            id_token,
            created: t,
            last_seen: t,
        };
        if let Err(e) = self.store.insert(&sid, &data, self.lifetimes, t).await {
            return AuthOutcome::Respond(store_unavailable(&parts.headers, "session creation", &e));
        }
        let Ok(sealed) = self.keys.seal(&self.cfg.session.cookie_name, &sid) else {
            return deny(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot create the session cookie",
            );
        };
        headers.append(
            SET_COOKIE,
            cookies::set(&self.cfg.session.cookie_name, &sealed, None),
        );
        let Ok(uri) = login.target.parse::<Uri>() else {
            return deny(
                StatusCode::BAD_REQUEST,
                "the original URL cannot be replayed",
            );
        };
        tracing::info!(idp = idp.name(), sub = %identity.principal, "login completed");
        AuthOutcome::Replay {
            uri,
            identity: identity.into(),
            response_headers: headers,
        }
    }

    /// The logout path. Ending a session is a state change, so it must not
    /// happen because another site made the browser ask (an image tag, a
    /// cross-site link or form): it happens on a top-level navigation from
    /// this site or one the user typed (`Sec-Fetch-Site` same-origin,
    /// same-site or none, `Sec-Fetch-Mode: navigate`), or on a POST
    /// carrying the token of the confirmation page, which is sealed and
    /// bound to the session. Anything else gets that confirmation page.
    pub async fn logout(&self, parts: &http::request::Parts, body: Body) -> Response<Body> {
        let back = origin::check_normalized(parts.uri.query(), &self.dashboards).ok();
        let after = after_logout(self.cfg.post_logout_url.as_deref(), back.as_deref());
        let session_id = cookies::get(&parts.headers, &self.cfg.session.cookie_name)
            .and_then(|c| self.keys.open(&self.cfg.session.cookie_name, c).ok());
        let Some(id) = session_id else {
            // Nothing to end: straight on to where a signed-out user goes
            // (Horizon sends every anonymous visitor to its LOGIN_URL, which
            // a site may point here); a stale cookie is cleared all the same.
            let mut r = match after.as_deref() {
                Some(to) => redirect(to),
                None => pages::logged_out(None),
            };
            r.headers_mut()
                .append(SET_COOKIE, cookies::clear(&self.cfg.session.cookie_name));
            return r;
        };
        let confirmed = match parts.method {
            http::Method::POST => {
                let token = form_field(body, "csrf").await;
                let valid = token
                    .as_deref()
                    .and_then(|t| self.keys.open(LOGOUT_TOKEN, t).ok())
                    .is_some_and(|bound| bound == id);
                if !valid {
                    tracing::info!(
                        "logout refused: the confirmation token is missing or not this session's"
                    );
                    return pages::error(
                        StatusCode::FORBIDDEN,
                        "This sign-out request did not come from fedgate's sign-out page. Nothing was changed.",
                    );
                }
                true
            }
            http::Method::GET | http::Method::HEAD => same_site_navigation(&parts.headers),
            _ => {
                return pages::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Use GET or POST to sign out.",
                );
            }
        };
        if !confirmed {
            let Ok(token) = self.keys.seal(LOGOUT_TOKEN, &id) else {
                return pages::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Cannot sign out right now.",
                );
            };
            let action = match parts.uri.query() {
                Some(q) => format!("{}?{q}", self.cfg.logout_path),
                None => self.cfg.logout_path.clone(),
            };
            return pages::confirm_logout(&action, &token);
        }
        self.end_session(&parts.headers, &id, after).await
    }

    /// Ends the session, and the IdP session where the IdP offers
    /// RP-initiated logout.
    async fn end_session(&self, h: &HeaderMap, id: &[u8], after: Option<String>) -> Response<Body> {
        let mut end_session = None;
        let session = match self.store.touch(id, self.lifetimes, now()).await {
            Ok(s) => s,
            Err(e) => return store_unavailable(h, "logout", &e),
        };
        if let Some(s) = session {
            if let Some(idp) = self.registry.by_name(&s.idp) {
                if let Ok(m) = idp.discovery.get().await {
                    end_session = m
                        .end_session_endpoint
                        .clone()
                        .map(|e| (e, s.id_token.clone(), idp.config.client_id.clone()));
                }
            }
        }
        if let Err(e) = self.store.remove(id).await {
            return store_unavailable(h, "logout", &e);
        }
        let mut r = match end_session.and_then(|(e, hint, client)| {
            let mut u = url::Url::parse(&e).ok()?;
            {
                let mut q = u.query_pairs_mut();
                if let Some(h) = hint {
                    q.append_pair("id_token_hint", &h);
                }
                if let Some(c) = client {
                    q.append_pair("client_id", &c);
                }
                if let Some(b) = &after {
                    q.append_pair("post_logout_redirect_uri", b);
                }
            }
            Some(u.to_string())
        }) {
            Some(to) => redirect(&to),
            None => pages::logged_out(after.as_deref()),
        };
        r.headers_mut()
            .append(SET_COOKIE, cookies::clear(&self.cfg.session.cookie_name));
        tracing::info!("logout");
        r
    }

    /// Cookie names the pipeline removes before forwarding to Keystone.
    pub fn own_cookies(&self) -> [&str; 2] {
        [self.cfg.session.cookie_name.as_str(), state::COOKIE]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    /// With `server.public_names`, the redirect URI comes from them and
    /// never from the request's Host.
    #[tokio::test]
    async fn the_redirect_uri_comes_from_configuration() {
        let registry = Arc::new(Registry::default());
        let req = |host: &str| {
            http::Request::get("/v3/auth/OS-FEDERATION/websso/openid")
                .header("host", host)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let public = PublicNames::parse(["keystone.example.org:5000", "localhost:8443"]).unwrap();
        let w = WebSso::build(
            OidcConfig::default(),
            public,
            registry.clone(),
            crate::kv::Store::memory(10),
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            w.redirect_uri(&req("localhost:8443")),
            "https://keystone.example.org:5000/v3/auth/OS-FEDERATION/websso/openid/redirect"
        );
        // Without public names, the request's (validated) Host is used.
        let w = WebSso::build(
            OidcConfig::default(),
            PublicNames::default(),
            registry,
            crate::kv::Store::memory(10),
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            w.redirect_uri(&req("localhost:8443")),
            "https://localhost:8443/v3/auth/OS-FEDERATION/websso/openid/redirect"
        );
    }

    #[test]
    fn where_a_signed_out_user_goes() {
        let origin = "https://horizon.example.org/dashboard/auth/websso/";
        assert_eq!(
            after_logout(None, Some(origin)).as_deref(),
            Some("https://horizon.example.org/dashboard/")
        );
        assert_eq!(
            after_logout(None, Some("https://h.example:8443/auth/websso")).as_deref(),
            Some("https://h.example:8443/")
        );
        assert_eq!(
            after_logout(None, Some("https://h.example/other/callback")).as_deref(),
            Some("https://h.example/")
        );
        assert_eq!(
            after_logout(Some("https://portal.example/bye"), Some(origin)).as_deref(),
            Some("https://portal.example/bye"),
            "oidc.post_logout_url wins"
        );
        assert_eq!(after_logout(None, None), None);
    }

    /// Nothing to end: the browser goes straight on to where a signed-out
    /// user belongs. Horizon sends every anonymous visitor to its LOGIN_URL,
    /// which a site points at this path (docs/horizon.md); a page with a
    /// link there would cost each of them a click.
    #[tokio::test]
    async fn without_a_session_logout_sends_the_browser_on() {
        let logout = |cfg: &str, uri: &str| {
            let cfg: OidcConfig = toml::from_str(cfg).unwrap();
            let uri = uri.to_string();
            // boxed: clippy::large_futures
            Box::pin(async move {
                let w = WebSso::build(
                    cfg,
                    PublicNames::default(),
                    Arc::new(Registry::default()),
                    crate::kv::Store::memory(10),
                    None,
                )
                .await
                .unwrap();
                let (parts, _) = http::Request::get(uri)
                    .header("cookie", "fedgate_session=stale")
                    .body(())
                    .unwrap()
                    .into_parts();
                w.logout(&parts, empty()).await
            })
        };
        let login_page = "https://h.example/dashboard/auth/login/";
        let r = logout(
            &format!("post_logout_url = \"{login_page}\""),
            "/v3/auth/OS-FEDERATION/websso/logout?next=%2Fdashboard%2F",
        )
        .await;
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(r.headers()[LOCATION], login_page);
        assert!(
            r.headers()[SET_COOKIE]
                .to_str()
                .unwrap()
                .starts_with("fedgate_session=;"),
            "the stale cookie is cleared"
        );
        let r = logout(
            "trusted_dashboards = [\"https://h.example/dashboard/auth/websso/\"]",
            "/v3/auth/OS-FEDERATION/websso/logout?origin=https://h.example/dashboard/auth/websso/",
        )
        .await;
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(r.headers()[LOCATION], "https://h.example/dashboard/");
        // Nowhere to go: the "signed out" page.
        let r = logout("", "/v3/auth/OS-FEDERATION/websso/logout").await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[test]
    fn only_same_site_navigations_sign_out_directly() {
        let nav = |site: &str, mode: &str| {
            same_site_navigation(&h(&[("sec-fetch-site", site), ("sec-fetch-mode", mode)]))
        };
        assert!(nav("same-origin", "navigate"));
        assert!(nav("same-site", "navigate"));
        assert!(nav("none", "navigate"));
        assert!(!nav("cross-site", "navigate"));
        assert!(!nav("same-site", "no-cors"));
        assert!(
            !same_site_navigation(&h(&[])),
            "no Sec-Fetch headers: confirm first"
        );
    }

    #[test]
    fn browsers_and_scripts() {
        assert!(is_browser(&h(&[(
            "accept",
            "text/html,application/xhtml+xml"
        )])));
        assert!(
            is_browser(&h(&[("accept", "*/*")])),
            "curl's default, as mod_auth_openidc treats it"
        );
        assert!(is_browser(&h(&[])));
        assert!(is_browser(&h(&[
            ("accept", "text/html"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document")
        ])));
        assert!(!is_browser(&h(&[("accept", "application/json")])));
        assert!(!is_browser(&h(&[
            ("accept", "text/html"),
            ("x-requested-with", "XMLHttpRequest")
        ])));
        assert!(!is_browser(&h(&[
            ("accept", "text/html"),
            ("sec-fetch-mode", "cors")
        ])));
        assert!(!is_browser(&h(&[
            ("accept", "*/*"),
            ("sec-fetch-dest", "empty")
        ])));
    }

    /// A session's identity is built once per session contents: the
    /// same session shares it, a session whose stored contents changed
    /// gets a new one, and a removed session gets none.
    #[tokio::test]
    async fn a_session_identity_follows_the_stored_session() {
        const ORIGIN: &str = "https://horizon.test/dashboard/auth/websso/";
        let cfg: OidcConfig =
            toml::from_str(&format!("trusted_dashboards = [\"{ORIGIN}\"]\n")).unwrap();
        let idp: crate::oidc::IdpConfig = toml::from_str(
            "name = \"egi\"\nissuer = \"http://127.0.0.1:19122\"\nclient_id = \"c\"\n",
        )
        .unwrap();
        let registry = Arc::new(crate::oidc::registry(&[idp], None).unwrap());
        let w = WebSso::build(
            cfg,
            PublicNames::default(),
            registry,
            crate::kv::Store::memory(10),
            None,
        )
        .await
        .unwrap();
        let sid = [9u8; 32];
        let put = |sub: &'static str| {
            let mut claims = serde_json::Map::new();
            claims.insert("sub".into(), sub.into());
            let data = SessionData {
                idp: "egi".into(),
                claims,
                id_token: None,
                created: now(),
                last_seen: now(),
            };
            let w = &w;
            async move {
                w.store
                    .insert(&sid, &data, w.lifetimes, now())
                    .await
                    .unwrap()
            }
        };
        let cookie = format!(
            "fedgate_session={}",
            w.keys.seal("fedgate_session", &sid).unwrap()
        );
        let req = http::Request::get(format!(
            "/v3/auth/OS-FEDERATION/websso/openid?origin={ORIGIN}"
        ))
        .header("cookie", &cookie)
        .header("accept", "application/json")
        .body(())
        .unwrap()
        .into_parts()
        .0;
        let who = |o: AuthOutcome| match o {
            AuthOutcome::Forward(Some(id)) => id,
            _ => panic!("expected an identity"),
        };
        put("alice").await;
        let a = who(w.authenticate(&RouteOidc::default(), &req).await);
        let again = who(w.authenticate(&RouteOidc::default(), &req).await);
        assert!(Arc::ptr_eq(&a, &again), "built once for the same session");
        assert!(a.variables().any(|(_, v)| v == b"alice"));
        // Another node (or a new login) rewrote the session: a new identity.
        put("bob").await;
        let b = who(w.authenticate(&RouteOidc::default(), &req).await);
        assert!(b.variables().any(|(_, v)| v == b"bob"), "{b:?}");
        assert!(!b.variables().any(|(_, v)| v == b"alice"));
        // Signed out: nothing is remembered past the stored session.
        w.store.remove(&sid).await.unwrap();
        match w.authenticate(&RouteOidc::default(), &req).await {
            AuthOutcome::Deny(d) => assert_eq!(d.status, StatusCode::UNAUTHORIZED),
            _ => panic!("a removed session must not authenticate"),
        }
    }

    /// Sessions and login completion with a real Redis as the shared
    /// store (`redis-server` on this crate's test ports 19119-19120).
    mod shared_state {
        use super::*;
        use crate::kv::testing::Redis;
        use crate::kv::{BackendKind, Settings, Store};
        use std::time::Duration;

        const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        const ORIGIN: &str = "https://horizon.test/dashboard/auth/websso/";

        async fn node(port: u16) -> WebSso {
            let cfg: OidcConfig = toml::from_str(&format!(
                "trusted_dashboards = [\"{ORIGIN}\"]\n[session]\nkeys = [\"{KEY}\"]\n"
            ))
            .unwrap();
            let idp: crate::oidc::IdpConfig = toml::from_str(
                "name = \"egi\"\nissuer = \"http://127.0.0.1:19121\"\nclient_id = \"c\"\n",
            )
            .unwrap();
            let registry = Arc::new(crate::oidc::registry(&[idp], None).unwrap());
            let settings = Settings {
                backend: BackendKind::Redis,
                servers: vec![],
                url: Some(format!("redis://127.0.0.1:{port}/0")),
                sentinels: vec![],
                master_name: None,
                db: None,
                username: None,
                password: None,
                tls: false,
                tls_ca_pem: None,
                timeout: Duration::from_millis(300),
                prefix: "t:".into(),
                max_entries: 100,
            };
            let store = Store::from_settings(&settings, Some(KeyRing::from_base64([KEY]).unwrap()))
                .unwrap();
            WebSso::build(cfg, PublicNames::default(), registry, store, None)
                .await
                .unwrap()
        }

        fn websso(cookie: &str, accept: &str) -> http::request::Parts {
            http::Request::get(format!(
                "/v3/auth/OS-FEDERATION/websso/openid?origin={ORIGIN}"
            ))
            .header("cookie", cookie)
            .header("accept", accept)
            .body(())
            .unwrap()
            .into_parts()
            .0
        }

        /// A logged-in browser while the store does not answer: 503 with
        /// Retry-After, a page (JSON for scripts), the cookie untouched;
        /// the same cookie works again once the store is back.
        #[tokio::test]
        async fn a_session_while_the_store_is_down_is_503_and_survives() {
            let redis = Redis::start(19119);
            let w = Box::pin(node(19119)).await;
            let sid = [7u8; 32];
            let mut claims = serde_json::Map::new();
            claims.insert("sub".into(), "alice".into());
            let data = SessionData {
                idp: "egi".into(),
                claims,
                id_token: None,
                created: now(),
                last_seen: now(),
            };
            w.store
                .insert(&sid, &data, w.lifetimes, now())
                .await
                .unwrap();
            let cookie = format!(
                "fedgate_session={}",
                w.keys.seal("fedgate_session", &sid).unwrap()
            );
            let html = websso(&cookie, "text/html");
            assert!(matches!(
                w.authenticate(&RouteOidc::default(), &html).await,
                AuthOutcome::Forward(Some(_))
            ));

            redis.pause(true);
            let t0 = std::time::Instant::now();
            let AuthOutcome::Respond(r) = w.authenticate(&RouteOidc::default(), &html).await else {
                panic!("expected a 503 page");
            };
            assert!(
                t0.elapsed() < Duration::from_millis(600),
                "bounded by timeout_ms"
            );
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(r.headers()[http::header::RETRY_AFTER], "5");
            assert!(r.headers().get(SET_COOKIE).is_none(), "the cookie is kept");
            assert!(
                r.headers()[http::header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html")
            );
            use http_body_util::BodyExt;
            let body = r.into_body().collect().await.unwrap().to_bytes();
            assert!(String::from_utf8_lossy(&body).contains("temporarily unavailable"));
            // A script gets Keystone's JSON.
            let AuthOutcome::Respond(r) = w
                .authenticate(&RouteOidc::default(), &websso(&cookie, "application/json"))
                .await
            else {
                panic!("expected a 503");
            };
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(r.headers()[http::header::CONTENT_TYPE], "application/json");
            // Logout while down: 503 too, the cookie kept.
            let (parts, _) = http::Request::get("/v3/auth/OS-FEDERATION/websso/logout")
                .header("cookie", &cookie)
                .header("sec-fetch-site", "same-origin")
                .header("sec-fetch-mode", "navigate")
                .body(())
                .unwrap()
                .into_parts();
            let r = w.logout(&parts, empty()).await;
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(r.headers().get(SET_COOKIE).is_none());

            redis.pause(false);
            assert!(
                matches!(
                    w.authenticate(&RouteOidc::default(), &html).await,
                    AuthOutcome::Forward(Some(_))
                ),
                "the same cookie works once the store is back"
            );
        }

        /// One callback completes a login once across all nodes.
        #[tokio::test]
        async fn a_replayed_callback_is_refused_on_another_node() {
            let redis = Redis::start(19120);
            let (one, two) = (Box::pin(node(19120)).await, Box::pin(node(19120)).await);
            let callback = |st: &str, cookie: &str| {
                http::Request::get(format!(
                    "/v3/auth/OS-FEDERATION/websso/openid/redirect?state={st}&code=abc"
                ))
                .header("cookie", format!("{}={cookie}", state::COOKIE))
                .body(())
                .unwrap()
                .into_parts()
                .0
            };
            let login =
                PendingLogin::new("egi", "/v3/auth/OS-FEDERATION/websso/openid", now()).unwrap();
            let st = login.state.clone();
            let sealed = Pending(vec![login]).seal(&one.keys).unwrap().unwrap();
            let parts = callback(&st, &sealed);
            // Node one takes it (the code exchange then fails: no IdP
            // listens; what matters is that the state is now used).
            match one.finish_login(&parts).await {
                AuthOutcome::Deny(d) => assert!(!d.reason.contains("already used"), "{}", d.reason),
                _ => panic!("no IdP: the exchange cannot succeed"),
            }
            // The same callback on node two: refused.
            match two.finish_login(&parts).await {
                AuthOutcome::Deny(d) => {
                    assert_eq!(d.status, StatusCode::BAD_REQUEST);
                    assert!(d.reason.contains("already used"), "{}", d.reason);
                }
                _ => panic!("a replay must be refused"),
            }
            // The store down at a callback: 503, not a login.
            let login = PendingLogin::new("egi", "/x", now()).unwrap();
            let st = login.state.clone();
            let sealed = Pending(vec![login]).seal(&one.keys).unwrap().unwrap();
            redis.pause(true);
            match two.finish_login(&callback(&st, &sealed)).await {
                AuthOutcome::Respond(r) => assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE),
                _ => panic!("expected 503"),
            }
            redis.pause(false);
        }
    }
}
