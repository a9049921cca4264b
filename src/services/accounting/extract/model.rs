//! The parts of the OpenStack answers the records are built from, read
//! from JSON by the fields the API references document. Missing optional
//! fields are `None`; a missing identifier is an error (the caller names
//! the service).

use std::collections::BTreeMap;

use serde_json::Value;

use super::times;

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn t(v: &Value, k: &str) -> Result<Option<i64>, String> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(x)) if x.is_empty() => Ok(None),
        Some(Value::String(x)) => times::parse(x)
            .map(Some)
            .ok_or_else(|| format!("{k} {x:?} is not a timestamp")),
        Some(other) => Err(format!("{k} {other} is not a timestamp")),
    }
}

fn u(v: &Value, k: &str) -> u64 {
    match v.get(k) {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f.max(0.0) as u64))
            .unwrap_or(0),
        Some(Value::String(x)) => x.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

fn id(v: &Value, what: &str) -> Result<String, String> {
    match v.get("id") {
        Some(Value::String(x)) => Ok(x.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(format!("a {what} without an id")),
    }
}

/// A Nova flavor with its extra specs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flavor {
    pub id: String,
    pub vcpus: u64,
    pub ram: u64,
    pub disk: u64,
    pub ephemeral: u64,
    pub extra: BTreeMap<String, String>,
}

impl Flavor {
    pub fn from_json(v: &Value) -> Result<Flavor, String> {
        Ok(Flavor {
            id: id(v, "flavor")?,
            vcpus: u(v, "vcpus"),
            ram: u(v, "ram"),
            disk: u(v, "disk"),
            ephemeral: u(v, "OS-FLV-EXT-DATA:ephemeral"),
            extra: BTreeMap::new(),
        })
    }
}

/// A Nova server (`GET /servers/detail`, `GET /servers/{id}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub status: String,
    pub user_id: String,
    pub tenant_id: String,
    /// Microseconds since the epoch, UTC.
    pub created: i64,
    pub updated: Option<i64>,
    pub launched_at: Option<i64>,
    pub terminated_at: Option<i64>,
    pub flavor_id: Option<String>,
    /// `None` when booted from a volume (`"image": ""`).
    pub image_id: Option<String>,
    /// Addresses of type `floating`.
    pub floating_ips: u32,
}

impl Server {
    pub fn from_json(v: &Value) -> Result<Server, String> {
        let sid = id(v, "server")?;
        let ctx = |e: String| format!("server {sid}: {e}");
        let created = t(v, "created")
            .map_err(ctx)?
            .ok_or_else(|| format!("server {sid}: no created time"))?;
        let floating_ips = v
            .get("addresses")
            .and_then(Value::as_object)
            .map(|nets| {
                nets.values()
                    .filter_map(Value::as_array)
                    .flatten()
                    .filter(|a| {
                        a.get("OS-EXT-IPS:type").and_then(Value::as_str) == Some("floating")
                    })
                    .count() as u32
            })
            .unwrap_or(0);
        Ok(Server {
            name: s(v, "name").unwrap_or_default(),
            status: s(v, "status").unwrap_or_default(),
            user_id: s(v, "user_id").unwrap_or_default(),
            tenant_id: s(v, "tenant_id").unwrap_or_default(),
            created,
            updated: t(v, "updated").map_err(ctx)?,
            launched_at: t(v, "OS-SRV-USG:launched_at").map_err(ctx)?,
            terminated_at: t(v, "OS-SRV-USG:terminated_at").map_err(ctx)?,
            flavor_id: v.get("flavor").and_then(|f| s(f, "id")),
            image_id: v
                .get("image")
                .and_then(|i| s(i, "id"))
                .filter(|i| !i.is_empty()),
            floating_ips,
            id: sid,
        })
    }
}

/// One entry of `os-simple-tenant-usage/{project}` `server_usages`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerUsage {
    pub instance_id: String,
    pub vcpus: u64,
    pub memory_mb: u64,
    pub local_gb: u64,
    pub ended_at: Option<i64>,
}

impl ServerUsage {
    pub fn from_json(v: &Value) -> Result<ServerUsage, String> {
        let instance_id =
            s(v, "instance_id").ok_or_else(|| "a server usage without instance_id".to_string())?;
        Ok(ServerUsage {
            vcpus: u(v, "vcpus"),
            memory_mb: u(v, "memory_mb"),
            local_gb: u(v, "local_gb"),
            ended_at: t(v, "ended_at").map_err(|e| format!("usage of {instance_id}: {e}"))?,
            instance_id,
        })
    }
}

/// A Cinder volume (`GET /v3/{project}/volumes/detail`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Volume {
    pub id: String,
    /// `None` for `"name": null`.
    pub name: Option<String>,
    pub user_id: String,
    pub created_at: i64,
    /// GiB.
    pub size: u64,
}

impl Volume {
    pub fn from_json(v: &Value) -> Result<Volume, String> {
        let vid = id(v, "volume")?;
        let created_at = t(v, "created_at")
            .map_err(|e| format!("volume {vid}: {e}"))?
            .ok_or_else(|| format!("volume {vid}: no created_at"))?;
        Ok(Volume {
            name: s(v, "name"),
            user_id: s(v, "user_id").unwrap_or_default(),
            created_at,
            size: u(v, "size"),
            id: vid,
        })
    }
}

/// A Neutron floating IP (`GET /v2.0/floatingips`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FloatingIp {
    pub address: String,
    pub project_id: Option<String>,
    /// `None` when absent or unreadable.
    pub created_at: Option<i64>,
    /// The raw `created_at`, for cASO's strict `%Y-%m-%dT%H:%M:%SZ`.
    pub created_at_raw: Option<String>,
}

impl FloatingIp {
    pub fn from_json(v: &Value) -> FloatingIp {
        FloatingIp {
            address: s(v, "floating_ip_address").unwrap_or_default(),
            project_id: s(v, "project_id").or_else(|| s(v, "tenant_id")),
            created_at: s(v, "created_at").and_then(|c| times::parse(&c)),
            created_at_raw: s(v, "created_at"),
        }
    }
}
