//! Secrets in configuration: written inline, or read from the environment
//! so that the file itself can be world-readable.

use std::fmt;

use serde::Deserialize;

/// A secret value. `Debug` never shows it.
///
/// Accepted forms: `"literal"`, `"env:VARIABLE"` or `{ env = "VARIABLE" }`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    fn from_env(var: &str) -> Result<Self, String> {
        std::env::var(var)
            .map(Secret)
            .map_err(|_| format!("environment variable {var} (named for a secret) is not set"))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Plain(String),
            Env { env: String },
        }
        match Raw::deserialize(d)? {
            Raw::Plain(s) => match s.strip_prefix("env:") {
                Some(var) => Secret::from_env(var).map_err(serde::de::Error::custom),
                None => Ok(Secret(s)),
            },
            Raw::Env { env } => Secret::from_env(&env).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        s: Secret,
    }

    #[test]
    #[allow(unsafe_code)]
    fn forms() {
        // SAFETY: this test is the only user of this variable.
        unsafe { std::env::set_var("FEDGATE_TEST_SECRET_A", "from-env") };
        let t: T = toml::from_str("s = \"plain\"").unwrap();
        assert_eq!(t.s.expose(), "plain");
        let t: T = toml::from_str("s = \"env:FEDGATE_TEST_SECRET_A\"").unwrap();
        assert_eq!(t.s.expose(), "from-env");
        let t: T = toml::from_str("s = { env = \"FEDGATE_TEST_SECRET_A\" }").unwrap();
        assert_eq!(t.s.expose(), "from-env");
        assert_eq!(format!("{:?}", t.s), "Secret(<redacted>)");
        let e = toml::from_str::<T>("s = \"env:FEDGATE_TEST_SECRET_UNSET_Z\"")
            .err()
            .unwrap();
        assert!(e.to_string().contains("FEDGATE_TEST_SECRET_UNSET_Z"), "{e}");
    }
}
