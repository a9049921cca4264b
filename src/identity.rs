//! The one currency between authenticators and upstream encoders.
//!
//! An authenticator turns a verified credential into an [`Identity`]; the
//! upstream encoder hands its attributes to Keystone, as WSGI environ
//! variables (uwsgi) or as request headers (HTTP). Nothing else in a request
//! may carry identity: every client header that looks like one is scrubbed
//! before routing (see [`crate::server::scrub`]).

use std::fmt;

/// How an identity was established. Used in logs and metrics only; the
/// values Keystone sees are all in [`Identity::attributes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// X.509 client chain, possibly with GSI proxies and VOMS attributes.
    X509,
    /// OAuth2 bearer token (introspected or checked as a JWT).
    Bearer,
    /// Browser session from the OIDC authorization-code flow.
    OidcSession,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::X509 => "x509",
            AuthMethod::Bearer => "bearer",
            AuthMethod::OidcSession => "oidc",
        }
    }
}

/// One variable handed to Keystone.
///
/// The name is the WSGI environ name Keystone's mappings use today
/// (`HTTP_OIDC_SUB`, `OIDC-eduperson_entitlement`, `GRST_CONN_AURI_0`...).
/// The value is raw bytes because WSGI environ values are byte strings
/// decoded as latin-1; claims may be UTF-8 or latin-1 depending on the
/// configured encoding.
#[derive(Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Vec<u8>,
}

impl fmt::Debug for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?}",
            self.name,
            String::from_utf8_lossy(&self.value)
        )
    }
}

/// A verified identity, ready for the upstream encoder.
#[derive(Debug, Clone)]
pub struct Identity {
    pub method: AuthMethod,
    /// Short human-readable principal for logs (DN, `sub`...). Never a secret.
    pub principal: String,
    /// Value of `REMOTE_USER`, when the method defines one.
    pub remote_user: Option<String>,
    /// Variables in the order they are handed to Keystone.
    pub attributes: Vec<Attribute>,
}

impl Identity {
    pub fn new(method: AuthMethod, principal: impl Into<String>) -> Self {
        Identity {
            method,
            principal: principal.into(),
            remote_user: None,
            attributes: Vec::new(),
        }
    }

    /// Appends a variable. A later value with the same name replaces the
    /// earlier one, so the upstream never sees a name twice.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        let name = name.into();
        let value = value.into();
        if let Some(a) = self.attributes.iter_mut().find(|a| a.name == name) {
            a.value = value;
        } else {
            self.attributes.push(Attribute { name, value });
        }
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_slice())
    }

    /// All variables including `REMOTE_USER`, in hand-over order.
    pub fn variables(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.attributes
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_slice()))
            .chain(
                self.remote_user
                    .as_deref()
                    .map(|u| ("REMOTE_USER", u.as_bytes())),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_and_keeps_order() {
        let mut id = Identity::new(AuthMethod::Bearer, "alice");
        id.set("HTTP_OIDC_ISS", "https://a");
        id.set("HTTP_OIDC_SUB", "alice");
        id.set("HTTP_OIDC_ISS", "https://b");
        id.remote_user = Some("alice".into());
        let v: Vec<_> = id
            .variables()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        assert_eq!(
            v,
            vec![
                ("HTTP_OIDC_ISS".into(), b"https://b".to_vec()),
                ("HTTP_OIDC_SUB".into(), b"alice".to_vec()),
                ("REMOTE_USER".into(), b"alice".to_vec()),
            ]
        );
        assert_eq!(id.get("HTTP_OIDC_SUB"), Some(&b"alice"[..]));
    }
}
