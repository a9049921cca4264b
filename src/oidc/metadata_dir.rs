//! mod_auth_openidc's `OIDCMetadataDir`, read as is, so a site can point
//! fedgate at the directory its Apache already uses.
//!
//! Per provider: `<urlencode(issuer without scheme and trailing /)>.provider`
//! (the discovery JSON), `.client` (JSON with `client_id`,
//! `client_secret`...) and an optional `.conf` (JSON overrides; fedgate
//! uses `jwks_refresh_interval` and ignores keys it has no use for).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::discovery::ProviderMetadata;
use super::idp::IdpConfig;

#[derive(Debug, thiserror::Error)]
pub enum MetadataDirError {
    #[error("cannot read metadata directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    File(PathBuf, String),
}

#[derive(Deserialize)]
struct ClientFile {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
}

#[derive(Deserialize, Default)]
struct ConfFile {
    #[serde(default)]
    jwks_refresh_interval: Option<u64>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, MetadataDirError> {
    let text =
        std::fs::read(path).map_err(|e| MetadataDirError::File(path.into(), e.to_string()))?;
    serde_json::from_slice(&text)
        .map_err(|e| MetadataDirError::File(path.into(), format!("not valid JSON: {e}")))
}

/// Reads every `.provider` with its `.client` (required) and `.conf`
/// (optional), in file-name order so the result is stable.
pub fn load(dir: &Path) -> Result<Vec<IdpConfig>, MetadataDirError> {
    let mut stems: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| MetadataDirError::Dir(dir.into(), e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".provider"))
                .map(str::to_string)
        })
        .collect();
    stems.sort();
    let mut out = Vec::new();
    for stem in stems {
        // Not with_extension: issuers such as aai.egi.eu contain dots.
        let file = |ext: &str| dir.join(format!("{stem}.{ext}"));
        let provider_path = file("provider");
        let meta: ProviderMetadata = read_json(&provider_path)?;
        let expected = percent_encoding::percent_decode_str(&stem)
            .decode_utf8_lossy()
            .into_owned();
        let stripped = meta
            .issuer
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        if stripped != expected {
            return Err(MetadataDirError::File(
                provider_path,
                format!("issuer {} does not match the file name", meta.issuer),
            ));
        }
        let client: ClientFile = read_json(&file("client"))?;
        let conf_path = file("conf");
        let conf: ConfFile = if conf_path.exists() {
            read_json(&conf_path)?
        } else {
            ConfFile::default()
        };
        let mut c: IdpConfig = toml::from_str(&format!(
            "name = {:?}\nissuer = {:?}\n",
            expected, meta.issuer
        ))
        .map_err(|e| MetadataDirError::File(provider_path.clone(), e.to_string()))?;
        c.issuer = Spanned::new(0..0, meta.issuer.clone());
        c.client_id = Some(client.client_id);
        c.client_secret = client.client_secret.map(crate::secret::Secret::new);
        if let Some(s) = conf.jwks_refresh_interval {
            c.jwks_refresh_secs = s;
        }
        c.static_metadata = Some(meta);
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mod_auth_openidc_layout() {
        let d = tempfile::tempdir().unwrap();
        let stem = "aai.egi.eu%2Fauth%2Frealms%2Fegi";
        std::fs::write(
            d.path().join(format!("{stem}.provider")),
            r#"{"issuer":"https://aai.egi.eu/auth/realms/egi","jwks_uri":"https://aai.egi.eu/jwks","introspection_endpoint":"https://aai.egi.eu/i"}"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join(format!("{stem}.client")),
            r#"{"client_id":"c","client_secret":"s","response_type":"code"}"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join(format!("{stem}.conf")),
            r#"{"scope":"openid","jwks_refresh_interval":600}"#,
        )
        .unwrap();
        std::fs::write(d.path().join("unrelated.txt"), "x").unwrap();
        let v = load(d.path()).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].issuer(), "https://aai.egi.eu/auth/realms/egi");
        assert_eq!(v[0].name, "aai.egi.eu/auth/realms/egi");
        assert_eq!(v[0].client_id.as_deref(), Some("c"));
        assert_eq!(v[0].client_secret.as_ref().unwrap().expose(), "s");
        assert_eq!(v[0].jwks_refresh_secs, 600);
        assert_eq!(
            v[0].static_metadata
                .as_ref()
                .unwrap()
                .introspection_endpoint
                .as_deref(),
            Some("https://aai.egi.eu/i")
        );
    }

    #[test]
    fn missing_client_file_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.b.provider"), r#"{"issuer":"https://a.b"}"#).unwrap();
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("a.b.client"), "{e}");
    }
}
