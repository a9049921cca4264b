//! fedgate: one process in front of Keystone that terminates TLS,
//! authenticates by X.509/VOMS, OIDC or bearer token, and hands Keystone the
//! identity under the names its federation mappings already use.
//!
//! # Layout
//!
//! A request travels one way: `server` accepts it and terminates TLS,
//! `route` picks the route, `auth` runs the route's authenticator, which
//! yields one [`Identity`], and `upstream` encodes that identity for
//! Keystone (uwsgi environ or HTTP headers).
//!
//! The modules form layers. **A module imports only modules below it**;
//! `tests/layering.rs` parses every `use` and fails on an upward or
//! sideways import, so the rule holds by construction:
//!
//! | layer | job |
//! |---|---|
//! | `app` | the command line; `run`, `check-config`, `x509-info`, `demo`; the admin listener; owns the background services |
//! | `migrate` | moving from Apache: `import-apache` reads the vhost, `migrate-check` compares identities under Keystone's mapping rules |
//! | `server` | accept, TLS handshake, HTTP/1.1 and HTTP/2, the request pipeline, reload, file watching |
//! | `config` | the TOML file: loads it and validates it; each section's type lives beside its subsystem |
//! | `route` | `[[route]]` tables: which authentication a path needs |
//! | `auth` | the contract (`AuthOutcome`, `Denial`), enum dispatch, and one folder per authenticator (`x509`, `bearer`, `websso`), each given its own options only |
//! | `services` | the background-service trait and its set (plugins) |
//! | `openstack` | the plugins' OpenStack API client: Keystone authentication, catalog, JSON requests |
//! | `upstream` | the uwsgi and HTTP encoders towards Keystone |
//! | `tls` | rustls server configuration and the grid client-certificate verifier |
//! | `oidc` | IdP registry, discovery, JWKS, JWS verification, introspection, claims → `Identity` |
//! | `voms` | VOMS attribute certificates |
//! | `pki` | grid PKI primitives: trust store, chain validation, DNs |
//! | `session` | sealed cookies and the browser-session store |
//! | `http` | body, error replies, hop-by-hop and X-Forwarded-* headers, request host and path in canonical form, cookies, the outbound client |
//! | leaves | `identity`, `conn`, `metrics`, `logging`, `problem`, `secret`, `crypto`, `shutdown`, `kv`, `memory`: import none of the above and none of each other |
//!
//! # Public surface
//!
//! The binary is the product; this library exists for it, for the
//! integration tests and for the fuzz targets. Its stable surface is small:
//! [`main`], [`serve_config`] with [`Bound`], [`set_memory_release`], [`Config`], [`Identity`], and
//! the [`demo`] pieces. [`internal`] re-exports parsers and primitives for
//! the fuzz targets and tests, and is not an API.

// Layers, top to bottom (see the table above).
mod app;
mod auth;
mod config;
mod http;
mod migrate;
mod oidc;
#[cfg(feature = "accounting")]
mod openstack;
mod pki;
mod route;
mod server;
mod services;
mod session;
mod tls;
mod upstream;
mod voms;
// Leaves.
mod conn;
mod crypto;
mod identity;
mod kv;
mod logging;
mod memory;
mod metrics;
mod problem;
mod secret;
mod shutdown;

pub use app::{Bound, ServeError, main, serve_config};
pub use config::Config;
pub use identity::{AuthMethod, Identity};
pub use memory::set_release as set_memory_release;
pub use problem::{Problem, Problems};

/// The demo's throwaway PKI and its upstream that echoes the WSGI environ
/// it receives; the integration tests reuse both.
pub mod demo {
    pub use crate::app::demo::{X509_PATH, echo, pki};
}

/// Not an API: parsers of untrusted input and grid primitives, public for
/// the fuzz targets and the integration tests only.
#[doc(hidden)]
pub mod internal {
    pub use crate::app::check::{Probes, Report, check};
    pub use crate::crypto::provider as crypto_provider;
    pub use crate::http::client as http_client;
    pub use crate::route::RouteTable;
    pub use crate::server::proxy_header;
    pub use crate::upstream::uwsgi;

    /// Grid PKI primitives and the gridsite values built from a verdict.
    pub mod pki {
        pub use crate::auth::x509::gridsite;
        pub use crate::pki::*;
    }
    pub mod voms {
        pub use crate::voms::*;
    }
    /// APEL records, their wire formats and validator, the dirq queue.
    #[cfg(feature = "accounting")]
    pub mod accounting {
        pub use crate::services::accounting::{
            ams, ams_options, caso_conf, config, dirq, extract, identities, record, run, send,
            smime_sign, source, state, validate, wire,
        };
    }
    /// The plugins' Keystone session.
    #[cfg(feature = "accounting")]
    pub mod openstack {
        pub use crate::openstack::session;
        pub use crate::secret::Secret;
    }
    pub mod oidc {
        pub use crate::oidc::{claims, idp, introspect, jwks, jws};
    }
    /// Keystone's mapping engine and migrate-check's comparison.
    pub mod migrate {
        pub use crate::migrate::{check, mapping};
    }
    /// `import-apache`: the Apache configuration parser and the translation.
    pub mod apache {
        pub use crate::migrate::apache::*;
    }
    pub mod bearer {
        pub use crate::auth::bearer::extract;
    }
    /// The shared-state store and its backends (`[state]`).
    pub mod kv {
        pub use crate::kv::*;
    }
    /// Parsers of the request line and headers.
    pub mod http {
        pub use crate::http::{host, path};
    }
    /// Signed HEPiX image lists.
    pub mod images {
        pub use crate::services::images::*;
    }
}
