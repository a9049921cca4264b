//! Horizon WebSSO: the OIDC authorization-code flow run by fedgate.
//!
//! The flow ([`WebSso`]) owns two endpoints besides the WebSSO routes: the
//! redirect URI where the IdP sends the browser back, and the logout path.

mod config;
mod cookies;
mod exchange;
mod flow;
mod origin;
mod pages;
mod state;

pub use config::{OidcConfig, RouteOidc, SessionConfig};
pub use cookies::strip_own as strip_own_cookies;
pub use flow::WebSso;
