//! The Glance sync: reads what the sync manages in Glance, computes the
//! [`plan`](super::plan), and applies it.
//!
//! The sync's session is scoped to the project that owns the images. Each
//! member project accepts an image with a session rescoped to it (Glance
//! lets only the member itself accept), so password credentials are
//! needed for sharing; an application credential can own images but not
//! accept them.

use std::collections::{BTreeMap, HashMap, HashSet};

use http::StatusCode;
use serde_json::{Value, json};

use super::glance::{Glance, GlanceImage, Patch};
use super::mapping::KnownProject;
use super::plan::{self, Action, Desired, Existing, Inputs, Plan, RETIRED_PROP};
use crate::openstack::session::{OpenStackError, Scope, Session};
use crate::shutdown::Shutdown;

/// The stop signal a run checks between steps.
pub use crate::shutdown::Shutdown as Stop;

/// What the sync needs besides the desired images.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Glance's URL; `None` takes the catalog's `image` endpoint.
    pub glance_url: Option<String>,
    /// The tag that marks managed images.
    pub tag: String,
    pub grace_secs: i64,
}

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub plan: Vec<String>,
    /// created, updated, restored, shared, deactivated, deleted,
    /// unchanged, waiting, held, failed.
    pub counts: BTreeMap<String, u64>,
    pub errors: Vec<String>,
}

impl Outcome {
    fn add(&mut self, k: &str, n: u64) {
        *self.counts.entry(k.to_string()).or_default() += n;
    }
}

/// The projects the session's user has a role on (`GET /v3/auth/projects`).
pub async fn known_projects(session: &Session) -> Result<Vec<KnownProject>, OpenStackError> {
    let url = format!("{}/auth/projects", session.identity_url());
    let v = session.get_json(&url, &[]).await?;
    Ok(v.get("projects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(KnownProject {
                id: p.get("id")?.as_str()?.to_string(),
                name: p.get("name")?.as_str()?.to_string(),
                domain_id: p
                    .get("domain_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            })
        })
        .collect())
}

/// Glance's URL for this session.
pub async fn glance_url(session: &Session, opts: &SyncOptions) -> Result<String, OpenStackError> {
    match &opts.glance_url {
        Some(u) => Ok(u.clone()),
        None => session.endpoint("image").await,
    }
}

/// The managed images (the tag, owned by the session's project) with
/// their members.
pub async fn managed(glance: &Glance<'_>, tag: &str) -> Result<Vec<Existing>, OpenStackError> {
    let owner = glance.session.token().await?.project_id.unwrap_or_default();
    let mut filters = vec![("tag", tag)];
    if !owner.is_empty() {
        filters.push(("owner", owner.as_str()));
    }
    let images = glance.list(&filters).await?;
    let mut out = Vec::with_capacity(images.len());
    for image in images {
        let members = glance.members(&image.id).await?;
        out.push(Existing { image, members });
    }
    Ok(out)
}

/// Reads Glance and plans.
pub async fn compute(
    glance: &Glance<'_>,
    opts: &SyncOptions,
    desired: &[Desired],
    projects: &BTreeMap<String, Vec<String>>,
    held_lists: &HashSet<String>,
    now: i64,
) -> Result<Plan, OpenStackError> {
    let existing = managed(glance, &opts.tag).await?;
    Ok(plan::plan(&Inputs {
        desired,
        existing: &existing,
        projects,
        held_lists,
        now,
        grace_secs: opts.grace_secs,
    }))
}

/// Applies a plan. Every failed step is recorded in `errors` (and logged
/// once); the other steps still run. A failed creation leaves nothing
/// behind and retires nothing.
pub async fn apply(
    glance: &Glance<'_>,
    opts: &SyncOptions,
    p: &Plan,
    desired: &[Desired],
    now: i64,
    stop: &Shutdown,
) -> Outcome {
    let mut out = Outcome {
        plan: p.describe(desired),
        ..Outcome::default()
    };
    out.add("unchanged", p.unchanged as u64);
    out.add("waiting", p.waiting as u64);
    out.add("held", p.held as u64);
    let mut members = MemberSessions::default();
    for a in &p.actions {
        if stop.is_triggered() {
            out.errors
                .push("stopped before the plan was complete".into());
            break;
        }
        let (kind, result) = match a {
            Action::Create {
                desired: i,
                supersedes,
                members: projects,
            } => {
                let d = &desired[*i];
                let r = create(glance, opts, d, projects, &mut members).await;
                if r.is_ok() {
                    for old in supersedes {
                        match retire(glance, old, now).await {
                            Ok(()) => out.add("deactivated", 1),
                            Err(e) => fail(&mut out, &format!("retire {old}"), e),
                        }
                    }
                }
                ("created", r)
            }
            Action::Restore { image, .. } => ("restored", restore(glance, image).await),
            Action::Update { image, ops, .. } => (
                "updated",
                glance.patch(image, ops).await.map_err(SyncError::from),
            ),
            Action::Share {
                image,
                add,
                accept,
                remove,
                ..
            } => (
                "shared",
                share(glance, image, add, accept, remove, &mut members).await,
            ),
            Action::Retire { image, .. } => ("deactivated", retire(glance, image, now).await),
            Action::Delete { image, .. } => (
                "deleted",
                glance.delete(image).await.map_err(SyncError::from),
            ),
        };
        match result {
            Ok(()) => out.add(kind, 1),
            Err(e) => fail(&mut out, &step_name(a, desired), e),
        }
    }
    out
}

fn step_name(a: &Action, desired: &[Desired]) -> String {
    match a {
        Action::Create { desired: i, .. } => format!(
            "create {} version {}",
            desired[*i].identifier, desired[*i].version
        ),
        Action::Restore { image, .. } => format!("reactivate {image}"),
        Action::Update { image, .. } => format!("update {image}"),
        Action::Share { image, .. } => format!("share {image}"),
        Action::Retire { image, .. } => format!("retire {image}"),
        Action::Delete { image, .. } => format!("delete {image}"),
    }
}

fn fail(out: &mut Outcome, what: &str, e: SyncError) {
    let line = format!("{what}: {e}");
    tracing::warn!(plugin = "images", error = %line, "image sync step failed");
    out.add("failed", 1);
    out.errors.push(line);
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    OpenStack(#[from] OpenStackError),
    #[error("after upload the image is {status}, not active")]
    NotActive { status: String },
    #[error("Glance stored data with sha512 {got}, the staged file has {want}")]
    HashMismatch { got: String, want: String },
    #[error("cannot accept for project {project}: {source}")]
    Accept {
        project: String,
        source: OpenStackError,
    },
}

/// Sessions scoped to member projects, made on first use.
#[derive(Default)]
struct MemberSessions(HashMap<String, Session>);

impl MemberSessions {
    async fn accept(
        &mut self,
        glance: &Glance<'_>,
        image: &str,
        project: &str,
    ) -> Result<(), SyncError> {
        let wrap = |source| SyncError::Accept {
            project: project.into(),
            source,
        };
        if !self.0.contains_key(project) {
            let s = glance
                .session
                .rescope(Scope::ProjectId(project.into()))
                .await
                .map_err(wrap)?;
            self.0.insert(project.to_string(), s);
        }
        let Some(s) = self.0.get(project) else {
            return Ok(());
        };
        Glance::new(s, &glance.url)
            .set_member_status(image, project, "accepted")
            .await
            .map_err(wrap)
    }
}

async fn create(
    glance: &Glance<'_>,
    opts: &SyncOptions,
    d: &Desired,
    projects: &[String],
    members: &mut MemberSessions,
) -> Result<(), SyncError> {
    let mut body = json!({
        "name": d.title,
        "disk_format": d.disk_format,
        "container_format": d.container_format,
        "visibility": "shared",
        "tags": [opts.tag],
    });
    for (k, v) in d.glance_properties() {
        body[k] = Value::String(v);
    }
    let img = glance.create(&body).await?;
    // Anything that fails from here on removes the image again: the next
    // run starts over instead of finding half an image.
    let r = finish(glance, d, &img, projects, members).await;
    if r.is_err() {
        if let Err(e) = glance.delete(&img.id).await {
            tracing::warn!(plugin = "images", image = %img.id, error = %e, "cannot remove the image whose creation failed; the next run deletes it");
        }
    }
    r
}

async fn finish(
    glance: &Glance<'_>,
    d: &Desired,
    img: &GlanceImage,
    projects: &[String],
    members: &mut MemberSessions,
) -> Result<(), SyncError> {
    glance.upload(&img.id, &d.file).await?;
    let now = glance
        .get(&img.id)
        .await?
        .ok_or_else(|| SyncError::NotActive {
            status: "gone".into(),
        })?;
    if now.status != "active" {
        return Err(SyncError::NotActive { status: now.status });
    }
    if let (Some(want), Some(got)) = (&d.file_sha512, &now.os_hash_value) {
        if !got.eq_ignore_ascii_case(want) {
            return Err(SyncError::HashMismatch {
                got: got.clone(),
                want: want.clone(),
            });
        }
    }
    share(glance, &img.id, projects, projects, &[], members).await
}

async fn share(
    glance: &Glance<'_>,
    image: &str,
    add: &[String],
    accept: &[String],
    remove: &[String],
    members: &mut MemberSessions,
) -> Result<(), SyncError> {
    for p in add {
        glance.add_member(image, p).await?;
    }
    for p in accept {
        members.accept(glance, image, p).await?;
    }
    for p in remove {
        glance.remove_member(image, p).await?;
    }
    Ok(())
}

async fn retire(glance: &Glance<'_>, image: &str, now: i64) -> Result<(), SyncError> {
    // Deactivate first: a retired_at on an image still active would let it
    // be deleted without ever having been deactivated.
    glance.deactivate(image).await?;
    let cur = glance.get(image).await?;
    let op = match cur.as_ref().and_then(|i| i.prop(RETIRED_PROP)) {
        Some(_) => Patch::Replace(RETIRED_PROP.into(), now.to_string()),
        None => Patch::Add(RETIRED_PROP.into(), now.to_string()),
    };
    glance.patch(image, &[op]).await?;
    Ok(())
}

async fn restore(glance: &Glance<'_>, image: &str) -> Result<(), SyncError> {
    match glance.reactivate(image).await {
        Ok(()) => {}
        // Not deactivated (someone reactivated it): fine.
        Err(e) if e.status() == Some(StatusCode::CONFLICT) => {}
        Err(e) => return Err(e.into()),
    }
    let cur = glance.get(image).await?;
    if cur.as_ref().and_then(|i| i.prop(RETIRED_PROP)).is_some() {
        glance
            .patch(image, &[Patch::Remove(RETIRED_PROP.into())])
            .await?;
    }
    Ok(())
}
