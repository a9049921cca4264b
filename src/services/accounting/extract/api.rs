//! The OpenStack calls of an extraction (A4), on top of the plugins'
//! Keystone [`Session`]: each returns what [`super::build`] needs.

use std::collections::BTreeMap;

use http::StatusCode;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::build::NovaData;
use super::error::Cause;
use super::model::{Flavor, FloatingIp, Server, ServerUsage, Volume};
use super::times;
use crate::openstack::session::{OpenStackError, Session};

/// Page size of every listing (cASO's 200).
pub const PAGE: usize = 200;

const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `base` + `path` + `?k=v&...`, values percent-encoded.
pub fn url(base: &str, path: &str, params: &[(&str, &str)]) -> String {
    let mut u = format!("{}{}", base.trim_end_matches('/'), path);
    for (i, (k, v)) in params.iter().enumerate() {
        u.push(if i == 0 { '?' } else { '&' });
        u.push_str(k);
        u.push('=');
        u.push_str(&utf8_percent_encode(v, QUERY).to_string());
    }
    u
}

fn data(what: &str) -> impl Fn(String) -> Cause + '_ {
    move |e| Cause::Data(format!("{what}: {e}"))
}

fn list<'v>(v: &'v Value, key: &str, url: &str) -> Result<&'v Vec<Value>, Cause> {
    v.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| Cause::Data(format!("{url}: no {key:?} list in the answer")))
}

/// Step 1: flavors with their extra specs.
pub async fn flavors(s: &Session, nova: &str) -> Result<BTreeMap<String, Flavor>, Cause> {
    let mut out = BTreeMap::new();
    let limit = PAGE.to_string();
    let mut marker: Option<String> = None;
    loop {
        let mut params = vec![("limit", limit.as_str())];
        if let Some(m) = &marker {
            params.push(("marker", m));
        }
        let u = url(nova, "/flavors/detail", &params);
        let v = s.get_json(&u, &[]).await?;
        let page = list(&v, "flavors", &u)?;
        for f in page {
            let mut fl = Flavor::from_json(f).map_err(data(&u))?;
            let eu = url(
                nova,
                &format!("/flavors/{}/os-extra_specs", enc(&fl.id)),
                &[],
            );
            let specs = s.get_json(&eu, &[]).await?;
            if let Some(m) = specs.get("extra_specs").and_then(Value::as_object) {
                for (k, val) in m {
                    let val = match val {
                        Value::String(x) => x.clone(),
                        other => other.to_string(),
                    };
                    fl.extra.insert(k.clone(), val);
                }
            }
            marker = Some(fl.id.clone());
            out.insert(fl.id.clone(), fl);
        }
        if page.len() < PAGE {
            return Ok(out);
        }
    }
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

/// Step 2: image id → `vmcatcher_event_ad_mpuri`, following Glance's
/// `next` links.
pub async fn images(s: &Session, glance: &str) -> Result<BTreeMap<String, Option<String>>, Cause> {
    let mut out = BTreeMap::new();
    let base = glance.trim_end_matches('/');
    // The catalog URL may or may not end in /v2; `next` links start with /v2.
    let root = base.strip_suffix("/v2").unwrap_or(base).to_string();
    let mut next = Some(url(&root, "/v2/images", &[("limit", &PAGE.to_string())]));
    let mut pages = 0;
    while let Some(u) = next.take() {
        pages += 1;
        if pages > 100_000 {
            return Err(Cause::Data(format!("{u}: Glance keeps paging")));
        }
        let v = s.get_json(&u, &[]).await?;
        for img in list(&v, "images", &u)? {
            let Some(id) = img.get("id").and_then(Value::as_str) else {
                continue;
            };
            let mpuri = img
                .get("vmcatcher_event_ad_mpuri")
                .and_then(Value::as_str)
                .map(str::to_string);
            out.insert(id.to_string(), mpuri);
        }
        next = v
            .get("next")
            .and_then(Value::as_str)
            .map(|n| format!("{root}{n}"));
    }
    Ok(out)
}

/// Step 3: servers changed since `from` (deleted ones included), paged by
/// marker.
pub async fn changed_servers(s: &Session, nova: &str, from: i64) -> Result<Vec<Server>, Cause> {
    let since = times::rfc3339(from);
    let limit = PAGE.to_string();
    let mut out: Vec<Server> = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut params = vec![("changes-since", since.as_str()), ("limit", limit.as_str())];
        if let Some(m) = &marker {
            params.push(("marker", m));
        }
        let u = url(nova, "/servers/detail", &params);
        let v = s.get_json(&u, &[]).await?;
        let page = list(&v, "servers", &u)?;
        for sv in page {
            out.push(Server::from_json(sv).map_err(data(&u))?);
        }
        if page.len() < PAGE {
            return Ok(out);
        }
        marker = out.last().map(|l| l.id.clone());
    }
}

/// Steps 4 and 5: the window's usages, and the servers of those not in
/// `known` (404: the usage is skipped, with one log line).
pub async fn usages(
    s: &Session,
    nova: &str,
    project: &str,
    from: i64,
    to: i64,
    data_: &mut NovaData,
) -> Result<(), Cause> {
    let (start, end) = (times::rfc3339(from), times::rfc3339(to));
    let u = url(
        nova,
        &format!("/os-simple-tenant-usage/{}", enc(project)),
        &[("start", &start), ("end", &end)],
    );
    let v = s.get_json(&u, &[]).await?;
    let entries = v
        .pointer("/tenant_usage/server_usages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for e in &entries {
        data_
            .usages
            .push(ServerUsage::from_json(e).map_err(data(&u))?);
    }
    let known: std::collections::BTreeSet<String> =
        data_.changed.iter().map(|s| s.id.clone()).collect();
    for usage in &data_.usages {
        let id = &usage.instance_id;
        if known.contains(id) || data_.fetched.contains_key(id) {
            continue;
        }
        let su = url(nova, &format!("/servers/{}", enc(id)), &[]);
        match s.get_json(&su, &[]).await {
            Ok(v) => {
                let sv = v
                    .get("server")
                    .ok_or_else(|| Cause::Data(format!("{su}: no server object")))?;
                data_
                    .fetched
                    .insert(id.clone(), Server::from_json(sv).map_err(data(&su))?);
            }
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {
                tracing::warn!(server = %id, project = %project,
                    "accounting: Nova reports usage for a server it cannot return; skipped");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Cinder's volume list URL for a project: the catalog URL usually
/// carries the project id already (`.../v3/<project>`).
pub async fn cinder_base(s: &Session, project: &str) -> Result<String, Cause> {
    let mut last = None;
    for kind in ["volumev3", "block-storage", "volume"] {
        match s.endpoint(kind).await {
            Ok(u) if u.contains(project) => return Ok(u),
            Ok(u) => return Ok(format!("{u}/{}", enc(project))),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or(OpenStackError::NoEndpoint {
            service_type: "volumev3".into(),
            interface: s.options().interface.clone(),
            region: String::new(),
        })
        .into())
}

/// Step 6: every volume of the project, paged by marker. `changes_since`
/// only for cASO's request; Cinder may not honour it, so the default
/// lists all.
pub async fn volumes(
    s: &Session,
    base: &str,
    changes_since: Option<i64>,
) -> Result<Vec<Volume>, Cause> {
    let since = changes_since.map(times::rfc3339);
    let limit = PAGE.to_string();
    let mut out: Vec<Volume> = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut params = vec![("limit", limit.as_str())];
        if let Some(c) = &since {
            params.push(("changes-since", c));
        }
        if let Some(m) = &marker {
            params.push(("marker", m));
        }
        let u = url(base, "/volumes/detail", &params);
        let v = s.get_json(&u, &[]).await?;
        let page = list(&v, "volumes", &u)?;
        for vol in page {
            out.push(Volume::from_json(vol).map_err(data(&u))?);
        }
        if page.len() < PAGE {
            return Ok(out);
        }
        marker = out.last().map(|l| l.id.clone());
    }
}

/// Step 7: floating IPs, of the project only unless `all` (cASO), following
/// `floatingips_links` `next`.
pub async fn floating_ips(
    s: &Session,
    neutron: &str,
    project: &str,
    all: bool,
) -> Result<Vec<FloatingIp>, Cause> {
    let base = neutron.trim_end_matches('/');
    let root = base.strip_suffix("/v2.0").unwrap_or(base);
    let mut next = Some(if all {
        url(root, "/v2.0/floatingips", &[])
    } else {
        url(root, "/v2.0/floatingips", &[("project_id", project)])
    });
    let mut out = Vec::new();
    let mut pages = 0;
    while let Some(u) = next.take() {
        pages += 1;
        if pages > 100_000 {
            return Err(Cause::Data(format!("{u}: Neutron keeps paging")));
        }
        let v = s.get_json(&u, &[]).await?;
        out.extend(
            list(&v, "floatingips", &u)?
                .iter()
                .map(FloatingIp::from_json),
        );
        next = v
            .get("floatingips_links")
            .and_then(Value::as_array)
            .and_then(|l| {
                l.iter()
                    .find(|x| x.get("rel").and_then(Value::as_str) == Some("next"))
            })
            .and_then(|x| x.get("href").and_then(Value::as_str))
            .map(str::to_string);
    }
    Ok(out)
}

/// Keystone user name of a user id; `None` when Keystone will not say.
pub async fn user_name(s: &Session, user_id: &str) -> Option<String> {
    let u = url(&s.identity_url(), &format!("/users/{}", enc(user_id)), &[]);
    match s.get_json(&u, &[]).await {
        Ok(v) => v
            .pointer("/user/name")
            .and_then(Value::as_str)
            .map(str::to_string),
        Err(e) => {
            tracing::warn!(user = %user_id, error = %e, "accounting: cannot read the Keystone user; GlobalUserName omitted");
            None
        }
    }
}
