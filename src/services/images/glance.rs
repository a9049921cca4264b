//! The Glance v2 calls the image sync makes (spec B8, status codes as
//! Glance 33 answers them): find by tag and property, create, upload
//! (streamed), JSON-patch the properties, share with member projects and
//! accept as each member, deactivate / reactivate, delete.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::openstack::session::{OpenStackError, Session};
use crate::openstack::upload;

/// The content type Glance wants for `PATCH /v2/images/{id}`.
pub const JSON_PATCH: &str = "application/openstack-images-v2.1-json-patch";

/// Image fields that are Glance's own, not custom properties.
const CORE: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "size",
    "virtual_size",
    "min_ram",
    "min_disk",
    "created_at",
    "updated_at",
    "tags",
    "disk_format",
    "container_format",
    "direct_url",
    "locations",
    "self",
    "file",
    "schema",
    "os_hidden",
    "stores",
];

/// One image as Glance lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlanceImage {
    pub id: String,
    pub name: String,
    /// `queued`, `saving`, `active`, `deactivated`, `killed`, ...
    pub status: String,
    pub visibility: String,
    pub owner: String,
    pub disk_format: Option<String>,
    /// SHA-512 of the stored data (`os_hash_value`), once uploaded.
    pub os_hash_value: Option<String>,
    pub tags: Vec<String>,
    /// Custom properties (string-valued, as Glance stores them).
    pub properties: BTreeMap<String, String>,
}

impl GlanceImage {
    pub fn from_json(v: &Value) -> Option<GlanceImage> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let obj = v.as_object()?;
        let properties = obj
            .iter()
            .filter(|(k, _)| !CORE.contains(&k.as_str()))
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect();
        Some(GlanceImage {
            id: s("id")?,
            name: s("name").unwrap_or_default(),
            status: s("status").unwrap_or_default(),
            visibility: s("visibility").unwrap_or_default(),
            owner: s("owner").unwrap_or_default(),
            disk_format: s("disk_format"),
            os_hash_value: s("os_hash_value"),
            tags: v
                .get("tags")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            properties,
        })
    }

    pub fn prop(&self, k: &str) -> Option<&str> {
        self.properties.get(k).map(String::as_str)
    }
}

/// A member project of an image and its status (`pending`, `accepted`,
/// `rejected`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub project: String,
    pub status: String,
}

/// One JSON-patch operation on an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patch {
    /// `add`: a property the image does not have yet.
    Add(String, String),
    /// `replace`: a property or core field (`name`) it has.
    Replace(String, String),
    Remove(String),
}

impl Patch {
    fn to_json(&self) -> Value {
        match self {
            Patch::Add(k, v) => json!({"op": "add", "path": format!("/{k}"), "value": v}),
            Patch::Replace(k, v) => json!({"op": "replace", "path": format!("/{k}"), "value": v}),
            Patch::Remove(k) => json!({"op": "remove", "path": format!("/{k}")}),
        }
    }
}

/// Glance at one URL, called with one session.
pub struct Glance<'a> {
    pub session: &'a Session,
    /// Without a trailing slash, without `/v2`.
    pub url: String,
}

fn bad_json(url: &str, what: &str) -> OpenStackError {
    OpenStackError::Json {
        url: url.into(),
        detail: what.into(),
    }
}

impl<'a> Glance<'a> {
    pub fn new(session: &'a Session, url: &str) -> Glance<'a> {
        let mut url = url.trim_end_matches('/').to_string();
        if let Some(stripped) = url.strip_suffix("/v2") {
            url = stripped.to_string();
        }
        Glance { session, url }
    }

    /// Images matching the filters (`tag=...`, `<property>=...`), every
    /// page. Glance lists only what the token's project can see.
    pub async fn list(&self, filters: &[(&str, &str)]) -> Result<Vec<GlanceImage>, OpenStackError> {
        let query = {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("limit", "200");
            for (k, v) in filters {
                q.append_pair(k, v);
            }
            q.finish()
        };
        let mut next = Some(format!("{}/v2/images?{query}", self.url));
        let mut out = Vec::new();
        // Pages are bounded; a server that loops `next` forever is cut off.
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(bad_json(&url, "more than 10000 pages"));
            }
            let v = self.session.get_json(&url, &[]).await?;
            let images = v
                .get("images")
                .and_then(Value::as_array)
                .ok_or_else(|| bad_json(&url, "no images array"))?;
            out.extend(images.iter().filter_map(GlanceImage::from_json));
            // `next` is a path with query, relative to the endpoint root.
            next = v.get("next").and_then(Value::as_str).map(|n| {
                if n.starts_with("http://") || n.starts_with("https://") {
                    n.to_string()
                } else {
                    format!("{}{}", self.url, n)
                }
            });
        }
        Ok(out)
    }

    pub async fn get(&self, id: &str) -> Result<Option<GlanceImage>, OpenStackError> {
        let url = format!("{}/v2/images/{id}", self.url);
        match self.session.get_json(&url, &[]).await {
            Ok(v) => Ok(GlanceImage::from_json(&v)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /v2/images`; the image is `queued`.
    pub async fn create(&self, body: &Value) -> Result<GlanceImage, OpenStackError> {
        let url = format!("{}/v2/images", self.url);
        let v = self
            .session
            .send_json(Method::POST, &url, &[], body)
            .await?;
        GlanceImage::from_json(&v).ok_or_else(|| bad_json(&url, "no image id in the answer"))
    }

    /// `PUT /v2/images/{id}/file`, streamed from `path`.
    pub async fn upload(&self, id: &str, path: &Path) -> Result<(), OpenStackError> {
        let url = format!("{}/v2/images/{id}/file", self.url);
        upload::send_file(
            self.session,
            Method::PUT,
            &url,
            "application/octet-stream",
            path,
        )
        .await
    }

    pub async fn patch(&self, id: &str, ops: &[Patch]) -> Result<(), OpenStackError> {
        if ops.is_empty() {
            return Ok(());
        }
        let url = format!("{}/v2/images/{id}", self.url);
        let body = Value::Array(ops.iter().map(Patch::to_json).collect());
        self.session
            .request(
                Method::PATCH,
                &url,
                &[],
                Some((JSON_PATCH, Bytes::from(body.to_string()))),
            )
            .await?;
        Ok(())
    }

    pub async fn members(&self, id: &str) -> Result<Vec<Member>, OpenStackError> {
        let url = format!("{}/v2/images/{id}/members", self.url);
        let v = self.session.get_json(&url, &[]).await?;
        let list = v
            .get("members")
            .and_then(Value::as_array)
            .ok_or_else(|| bad_json(&url, "no members array"))?;
        Ok(list
            .iter()
            .filter_map(|m| {
                Some(Member {
                    project: m.get("member_id")?.as_str()?.to_string(),
                    status: m.get("status")?.as_str()?.to_string(),
                })
            })
            .collect())
    }

    /// Adds a member project (`pending`); 409 (already one) is success.
    pub async fn add_member(&self, id: &str, project: &str) -> Result<(), OpenStackError> {
        let url = format!("{}/v2/images/{id}/members", self.url);
        match self
            .session
            .send_json(Method::POST, &url, &[], &json!({"member": project}))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(StatusCode::CONFLICT) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sets a member's status; Glance allows it only to a token scoped to
    /// the member project itself.
    pub async fn set_member_status(
        &self,
        id: &str,
        project: &str,
        status: &str,
    ) -> Result<(), OpenStackError> {
        let url = format!("{}/v2/images/{id}/members/{project}", self.url);
        self.session
            .send_json(Method::PUT, &url, &[], &json!({"status": status}))
            .await?;
        Ok(())
    }

    /// Removes a member; 404 (not one) is success.
    pub async fn remove_member(&self, id: &str, project: &str) -> Result<(), OpenStackError> {
        let url = format!("{}/v2/images/{id}/members/{project}", self.url);
        match self.session.request(Method::DELETE, &url, &[], None).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn action(&self, id: &str, action: &str) -> Result<(), OpenStackError> {
        let url = format!("{}/v2/images/{id}/actions/{action}", self.url);
        self.session
            .request(Method::POST, &url, &[], None)
            .await
            .map(|_| ())
    }

    pub async fn deactivate(&self, id: &str) -> Result<(), OpenStackError> {
        self.action(id, "deactivate").await
    }

    pub async fn reactivate(&self, id: &str) -> Result<(), OpenStackError> {
        self.action(id, "reactivate").await
    }

    /// Deletes; 404 (already gone) is success.
    pub async fn delete(&self, id: &str) -> Result<(), OpenStackError> {
        let url = format!("{}/v2/images/{id}", self.url);
        match self.session.request(Method::DELETE, &url, &[], None).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_read_core_fields_and_string_properties() {
        let v = json!({"id": "i1", "name": "Ubuntu", "status": "active", "visibility": "shared",
            "owner": "p", "tags": ["fedgate"], "disk_format": "qcow2", "size": 5,
            "appdb_id": "a1", "min_ram": 0, "os_hash_value": "x"});
        let i = GlanceImage::from_json(&v).unwrap();
        assert_eq!(i.tags, vec!["fedgate"]);
        assert_eq!(i.prop("appdb_id"), Some("a1"));
        assert_eq!(i.prop("os_hash_value"), None);
        assert_eq!(i.properties.len(), 1);
        assert!(GlanceImage::from_json(&json!({"name": "x"})).is_none());
    }

    #[test]
    fn patches_are_json_patch_operations() {
        assert_eq!(
            Patch::Add("a".into(), "b".into()).to_json(),
            json!({"op": "add", "path": "/a", "value": "b"})
        );
        assert_eq!(
            Patch::Replace("name".into(), "b".into()).to_json(),
            json!({"op": "replace", "path": "/name", "value": "b"})
        );
        assert_eq!(
            Patch::Remove("a".into()).to_json(),
            json!({"op": "remove", "path": "/a"})
        );
    }
}
