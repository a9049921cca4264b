//! [`Extractor`]: the projects to account and their records for a window.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use http::StatusCode;
use serde_json::Value;
use tokio::sync::Mutex;

use super::super::source::{
    ExtractOptions, Extractor as Kind, IdentityLookup, ProjectRef, Usage, Window,
};
use super::api;
use super::build::{self, Context, NovaData};
use super::error::{Cause, ExtractError};
use super::times::{self, US};
use crate::openstack::session::{Credentials, Scope, Session};

/// Extracts usage records from Nova, Cinder and Neutron (cASO's job).
pub struct Extractor {
    opts: ExtractOptions,
    session: Arc<Session>,
    /// System-scoped, for tags and user names (cASO's `system_scope=all`
    /// client); `None` when the credentials cannot have one.
    system: Option<Arc<Session>>,
    names: Mutex<BTreeMap<String, Option<String>>>,
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("session", &self.session)
            .field("caso_compat", &self.opts.caso_compat)
            .finish()
    }
}

fn is_app_credential(opts: &ExtractOptions) -> bool {
    matches!(
        opts.auth.credentials,
        Credentials::ApplicationCredential { .. }
    )
}

impl Extractor {
    /// Authenticates (bad credentials fail here), and gets a system-scoped
    /// token too when the configured scope is another one.
    pub async fn connect(opts: ExtractOptions) -> Result<Extractor, ExtractError> {
        let session = Arc::new(
            Session::new(opts.auth.clone())
                .await
                .map_err(ExtractError::Connect)?,
        );
        let system = if opts.auth.scope == Scope::System {
            Some(session.clone())
        } else if is_app_credential(&opts) {
            None
        } else {
            match session.rescope(Scope::System).await {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    tracing::warn!(error = %e, "accounting: no system-scoped token: tagged projects and other users' names may be unreadable");
                    None
                }
            }
        };
        Ok(Extractor {
            opts,
            session,
            system,
            names: Mutex::new(BTreeMap::new()),
        })
    }

    fn admin(&self) -> &Session {
        self.system.as_deref().unwrap_or(&self.session)
    }

    /// A2: the configured projects (ids or names) and those tagged with
    /// `project_tag`, each with its VO: the project property `vo_property`,
    /// else the mapping (by id, then name), else none.
    pub async fn projects(&self) -> Result<Vec<ProjectRef>, ExtractError> {
        let ks = self.admin();
        let base = ks.identity_url();
        let mut docs: Vec<Value> = Vec::new();
        let mut seen = BTreeSet::new();
        for p in &self.opts.projects {
            match self.project_doc(p).await? {
                Some(doc) => {
                    let id = doc.get("id").and_then(Value::as_str).unwrap_or_default();
                    if seen.insert(id.to_string()) {
                        docs.push(doc);
                    }
                }
                None => {
                    tracing::warn!(project = %p, "accounting: configured project not found in Keystone; skipped")
                }
            }
        }
        if let Some(tag) = &self.opts.project_tag {
            let u = api::url(&base, "/projects", &[("tags", tag)]);
            match ks.get_json(&u, &[]).await {
                Ok(v) => {
                    for doc in v
                        .get("projects")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let id = doc.get("id").and_then(Value::as_str).unwrap_or_default();
                        if !id.is_empty() && seen.insert(id.to_string()) {
                            docs.push(doc.clone());
                        }
                    }
                }
                Err(e) if e.status() == Some(StatusCode::FORBIDDEN) => {
                    tracing::warn!(error = %e, "accounting: cannot list tagged projects; only the configured ones are accounted");
                }
                Err(e) => return Err(ExtractError::Projects(e)),
            }
        }
        Ok(docs.iter().map(|d| self.project_ref(d)).collect())
    }

    async fn project_doc(&self, id_or_name: &str) -> Result<Option<Value>, ExtractError> {
        let ks = self.admin();
        let base = ks.identity_url();
        let by_id = api::url(&base, &format!("/projects/{}", enc(id_or_name)), &[]);
        match ks.get_json(&by_id, &[]).await {
            Ok(v) => return Ok(v.get("project").cloned()),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {}
            Err(e)
                if e.status() == Some(StatusCode::FORBIDDEN) && !is_app_credential(&self.opts) =>
            {
                // cASO retries with a token scoped to the project itself.
                let scoped = self
                    .session
                    .rescope(Scope::ProjectId(id_or_name.to_string()))
                    .await
                    .map_err(ExtractError::Projects)?;
                let v = scoped
                    .get_json(&by_id, &[])
                    .await
                    .map_err(ExtractError::Projects)?;
                return Ok(v.get("project").cloned());
            }
            Err(e) => return Err(ExtractError::Projects(e)),
        }
        let by_name = api::url(&base, "/projects", &[("name", id_or_name)]);
        let v = ks
            .get_json(&by_name, &[])
            .await
            .map_err(ExtractError::Projects)?;
        Ok(v.get("projects")
            .and_then(Value::as_array)
            .and_then(|l| l.first())
            .cloned())
    }

    fn project_ref(&self, doc: &Value) -> ProjectRef {
        let id = doc
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = doc
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let vo = doc
            .get(&self.opts.vo_property)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .or_else(|| self.opts.vo_mapping.get(&id).cloned())
            .or_else(|| self.opts.vo_mapping.get(&name).cloned());
        if vo.is_none() {
            tracing::warn!(project = %id, name = %name, property = %self.opts.vo_property,
                "accounting: project has no VO (property or mapping): it yields no records");
        }
        ProjectRef { id, name, vo }
    }

    async fn names_of(&self, users: BTreeSet<String>, fallback: &Session) {
        let ks = self.system.as_deref().unwrap_or(fallback);
        for u in users {
            if u.is_empty() || self.names.lock().await.contains_key(&u) {
                continue;
            }
            let n = api::user_name(ks, &u).await;
            self.names.lock().await.insert(u, n);
        }
    }

    /// The records of one project for `window` (Unix seconds, UTC; `to`
    /// in the future is clamped to now). Every configured extractor must
    /// succeed, else the project yields an error and no records.
    pub async fn extract(
        &self,
        project: &ProjectRef,
        window: Window,
        ids: &dyn IdentityLookup,
    ) -> Result<Usage, ExtractError> {
        let Some(vo) = project.vo.as_deref() else {
            return Err(ExtractError::NoVo {
                project: project.id.clone(),
            });
        };
        let now = times::now_us();
        let to = (window.to * US).min(now);
        let from = window.from * US;
        let scoped: Arc<Session> = if is_app_credential(&self.opts) {
            self.session.clone()
        } else {
            Arc::new(
                self.session
                    .rescope(Scope::ProjectId(project.id.clone()))
                    .await
                    .map_err(|cause| ExtractError::Scope {
                        project: project.id.clone(),
                        cause,
                    })?,
            )
        };
        let fail = |kind: Kind| {
            let project = project.id.clone();
            move |cause: Cause| ExtractError::Extract {
                extractor: kind,
                project,
                cause,
            }
        };
        let mut usage = Usage::default();
        let mut fetched_nova = None;
        let mut fetched_vols = None;
        let mut fetched_fips = None;
        for kind in &self.opts.extractors {
            match kind {
                Kind::Nova => {
                    let d = self
                        .fetch_nova(&scoped, &project.id, from, to)
                        .await
                        .map_err(fail(Kind::Nova))?;
                    fetched_nova = Some(d);
                }
                Kind::Cinder => {
                    let base = api::cinder_base(&scoped, &project.id)
                        .await
                        .map_err(fail(Kind::Cinder))?;
                    let since = self.opts.caso_compat.then_some(from.div_euclid(US));
                    let v = api::volumes(&scoped, &base, since)
                        .await
                        .map_err(fail(Kind::Cinder))?;
                    fetched_vols = Some(v);
                }
                Kind::Neutron => {
                    let n = scoped
                        .endpoint("network")
                        .await
                        .map_err(|e| fail(Kind::Neutron)(e.into()))?;
                    let f = api::floating_ips(&scoped, &n, &project.id, self.opts.caso_compat)
                        .await
                        .map_err(fail(Kind::Neutron))?;
                    fetched_fips = Some(f);
                }
            }
        }
        let mut users = BTreeSet::new();
        if let Some(d) = &fetched_nova {
            users.extend(d.changed.iter().map(|s| s.user_id.clone()));
            users.extend(d.fetched.values().map(|s| s.user_id.clone()));
        }
        if let Some(v) = &fetched_vols {
            users.extend(v.iter().map(|v| v.user_id.clone()));
        }
        self.names_of(users, &scoped).await;
        let names = self.names.lock().await.clone();
        let ctx = Context {
            opts: &self.opts,
            project_id: &project.id,
            vo,
            from,
            to,
            now: times::now_us(),
            names: &names,
            ids,
        };
        if let Some(d) = &fetched_nova {
            let (cloud, acc) =
                build::nova_records(&ctx, d).map_err(|e| fail(Kind::Nova)(Cause::Data(e)))?;
            usage.cloud = cloud;
            usage.accelerator = acc;
        }
        if let Some(v) = &fetched_vols {
            usage.storage =
                build::storage_records(&ctx, v).map_err(|e| fail(Kind::Cinder)(Cause::Data(e)))?;
        }
        if let Some(f) = &fetched_fips {
            usage.ip =
                build::ip_records(&ctx, f).map_err(|e| fail(Kind::Neutron)(Cause::Data(e)))?;
        }
        Ok(usage)
    }

    async fn fetch_nova(
        &self,
        s: &Session,
        project: &str,
        from: i64,
        to: i64,
    ) -> Result<NovaData, Cause> {
        let nova = s.endpoint("compute").await?;
        let glance = s.endpoint("image").await?;
        let mut d = NovaData {
            flavors: api::flavors(s, &nova).await?,
            images: api::images(s, &glance).await?,
            changed: api::changed_servers(s, &nova, from.div_euclid(US)).await?,
            ..NovaData::default()
        };
        api::usages(
            s,
            &nova,
            project,
            from.div_euclid(US),
            to.div_euclid(US),
            &mut d,
        )
        .await?;
        Ok(d)
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
