//! The image sync's plan: what to do in Glance so that it holds exactly
//! the desired images, computed without I/O from the desired images and
//! the managed images Glance has.
//!
//! Model (cloudkeeper-os, atrope): the sync owns its images in one
//! project, tags them, shares them (`visibility: shared`) with the
//! projects of the image's VO as members, each member accepted by a token
//! scoped to that project. Every fact the sync needs lives in Glance
//! properties, so the plan survives restarts and a lost state file:
//!
//! * `appdb_id` (atrope) / `APPLIANCE_ID` (cloudkeeper): the image's
//!   `dc:identifier`; `image_hash` = `sha512:<hex>`: the version as
//!   published; `image_list`: the list it came from;
//! * `fedgate_retired_at`: Unix time the image was retired (deactivated);
//!   it is deleted once the grace period has passed since.
//!
//! Decisions:
//! * same identifier, same hash: keep; patch properties that differ;
//!   members brought in line (added, accepted, extra ones removed); a
//!   retired copy that comes back is reactivated.
//! * same identifier, new hash (a new version): a new image is created and
//!   uploaded; the previous one is retired (deactivated, so running VMs
//!   keep their image record and can still be looked at) and deleted after
//!   the grace period, like any image that left its list.
//! * identifier no longer desired (left its list, list expired): retired,
//!   then deleted after the grace period. Images of a list that could not
//!   be fetched or was refused are *held*: never retired for that reason.
//! * managed images that never finished uploading (`queued`, `saving`,
//!   `killed`): deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;

use super::glance::{GlanceImage, Member, Patch};

/// Property holding the image's `dc:identifier` (atrope's name).
pub const ID_PROP: &str = "appdb_id";
/// Property holding `sha512:<hex>` of the image as published.
pub const HASH_PROP: &str = "image_hash";
/// Property holding the list's `dc:identifier`.
pub const LIST_PROP: &str = "image_list";
/// Property holding the subscription URL (without credentials) the image
/// came from: images of a subscription that could not be fetched are held.
pub const SOURCE_PROP: &str = "fedgate_source";
/// Property holding the Unix time the sync retired the image.
pub const RETIRED_PROP: &str = "fedgate_retired_at";

/// One image as it should be in Glance. Built from an accepted list entry
/// and its staged (downloaded, converted) file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The image's `dc:identifier`.
    pub identifier: String,
    pub title: String,
    pub version: String,
    pub vo: String,
    /// The list's `dc:identifier`.
    pub list_identifier: String,
    /// `ad:mpuri` (the accounting ImageId); the identifier if absent.
    pub mpuri: Option<String>,
    pub disk_format: String,
    pub container_format: String,
    /// The staged file to upload.
    pub file: PathBuf,
    pub size: u64,
    /// `sl:checksum:sha512` of the image as published (lower-case hex).
    pub sha512: String,
    /// SHA-512 of the staged file, when known (the download unconverted);
    /// Glance's `os_hash_value` must equal it after upload.
    pub file_sha512: Option<String>,
    /// More properties (`os_distro`, `architecture`, raw list attributes).
    pub properties: BTreeMap<String, String>,
}

impl Desired {
    /// Every property the sync sets on the image (B7: the atrope set,
    /// cloudkeeper's `APPLIANCE_*` and vmcatcher's event names that cASO
    /// and cloud-info-provider read).
    pub fn glance_properties(&self) -> BTreeMap<String, String> {
        let mut p = self.properties.clone();
        let mpuri = self
            .mpuri
            .clone()
            .unwrap_or_else(|| self.identifier.clone());
        for (k, v) in [
            (ID_PROP, self.identifier.clone()),
            (HASH_PROP, self.hash()),
            (LIST_PROP, self.list_identifier.clone()),
            ("APPLIANCE_ID", self.identifier.clone()),
            ("APPLIANCE_IMAGE_LIST_ID", self.list_identifier.clone()),
            ("APPLIANCE_VERSION", self.version.clone()),
            ("APPLIANCE_TITLE", self.title.clone()),
            ("APPLIANCE_VO", self.vo.clone()),
            ("APPLIANCE_MPURI", mpuri.clone()),
            ("vmcatcher_event_ad_mpuri", mpuri),
            ("vmcatcher_event_dc_identifier", self.identifier.clone()),
            ("vmcatcher_event_dc_title", self.title.clone()),
            ("vmcatcher_event_hv_version", self.version.clone()),
            ("vmcatcher_event_sl_checksum_sha512", self.sha512.clone()),
        ] {
            p.insert(k.to_string(), v);
        }
        p
    }

    /// `sha512:<hex>`; a value that already names its algorithm (an OCI
    /// digest, `sha256:<hex>`) is kept as is.
    fn hash(&self) -> String {
        if self.sha512.contains(':') {
            self.sha512.clone()
        } else {
            format!("sha512:{}", self.sha512)
        }
    }
}

/// A managed image as the planner sees it.
#[derive(Debug, Clone)]
pub struct Existing {
    pub image: GlanceImage,
    pub members: Vec<Member>,
}

/// What the planner is given.
pub struct Inputs<'a> {
    pub desired: &'a [Desired],
    pub existing: &'a [Existing],
    /// Member project ids, by VO.
    pub projects: &'a BTreeMap<String, Vec<String>>,
    /// Lists whose images are held (fetch failed, list refused).
    pub held_lists: &'a HashSet<String>,
    pub now: i64,
    pub grace_secs: i64,
}

/// One step. Steps run in plan order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create, upload, share; then the images in `supersedes` are retired.
    Create {
        desired: usize,
        supersedes: Vec<String>,
        /// Member projects to add and accept.
        members: Vec<String>,
    },
    /// Reactivate a retired image that is desired again.
    Restore { image: String, identifier: String },
    /// Patch name and properties.
    Update {
        image: String,
        identifier: String,
        ops: Vec<Patch>,
    },
    /// Bring the members in line.
    Share {
        image: String,
        identifier: String,
        add: Vec<String>,
        accept: Vec<String>,
        remove: Vec<String>,
    },
    /// Deactivate and record the time.
    Retire {
        image: String,
        identifier: String,
        version: String,
        why: String,
    },
    Delete {
        image: String,
        identifier: String,
        why: String,
    },
}

/// The plan and what it leaves alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Images already as desired.
    pub unchanged: usize,
    /// Retired images waiting for their grace period.
    pub waiting: usize,
    /// Images of held lists left as they are.
    pub held: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// One line per action, for `--dry-run` and the logs.
    pub fn describe(&self, desired: &[Desired]) -> Vec<String> {
        self.actions
            .iter()
            .map(|a| match a {
                Action::Create {
                    desired: i,
                    supersedes,
                    members,
                } => {
                    let d = &desired[*i];
                    let mut s = format!(
                        "create {} {:?} version {} ({} {}, {} bytes) for VO {}",
                        d.identifier,
                        d.title,
                        d.version,
                        d.disk_format,
                        d.container_format,
                        d.size,
                        d.vo
                    );
                    s.push_str(&format!(", shared with [{}]", members.join(", ")));
                    if !supersedes.is_empty() {
                        s.push_str(&format!(", then retire {}", supersedes.join(", ")));
                    }
                    s
                }
                Action::Restore { image, identifier } => {
                    format!("reactivate {image} ({identifier}): desired again")
                }
                Action::Update {
                    image,
                    identifier,
                    ops,
                } => {
                    let keys: Vec<String> = ops
                        .iter()
                        .map(|o| match o {
                            Patch::Add(k, _) | Patch::Replace(k, _) => k.clone(),
                            Patch::Remove(k) => format!("-{k}"),
                        })
                        .collect();
                    format!("update {image} ({identifier}): {}", keys.join(", "))
                }
                Action::Share {
                    image,
                    identifier,
                    add,
                    accept,
                    remove,
                } => format!(
                    "share {image} ({identifier}): add [{}], accept [{}], remove [{}]",
                    add.join(", "),
                    accept.join(", "),
                    remove.join(", ")
                ),
                Action::Retire {
                    image,
                    identifier,
                    version,
                    why,
                } => format!("retire (deactivate) {image} ({identifier} {version}): {why}"),
                Action::Delete {
                    image,
                    identifier,
                    why,
                } => format!("delete {image} ({identifier}): {why}"),
            })
            .collect()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

fn retired_at(i: &GlanceImage) -> Option<i64> {
    i.prop(RETIRED_PROP).and_then(|t| t.parse().ok())
}

fn usable(i: &GlanceImage) -> bool {
    matches!(i.status.as_str(), "active" | "deactivated")
}

/// The patch that gives `img` the desired name and properties.
pub fn property_ops(d: &Desired, img: &GlanceImage) -> Vec<Patch> {
    let mut ops = Vec::new();
    if img.name != d.title {
        ops.push(Patch::Replace("name".into(), d.title.clone()));
    }
    for (k, v) in d.glance_properties() {
        match img.prop(&k) {
            Some(cur) if cur == v => {}
            Some(_) => ops.push(Patch::Replace(k, v)),
            None => ops.push(Patch::Add(k, v)),
        }
    }
    ops
}

/// Computes the plan.
pub fn plan(inp: &Inputs<'_>) -> Plan {
    let mut p = Plan::default();
    let mut by_id: HashMap<&str, Vec<&Existing>> = HashMap::new();
    let mut handled: HashSet<&str> = HashSet::new();
    for e in inp.existing {
        if !usable(&e.image) {
            p.actions.push(Action::Delete {
                image: e.image.id.clone(),
                identifier: e.image.prop(ID_PROP).unwrap_or("").to_string(),
                why: format!("upload never finished (status {})", e.image.status),
            });
            handled.insert(&e.image.id);
            continue;
        }
        by_id
            .entry(e.image.prop(ID_PROP).unwrap_or(""))
            .or_default()
            .push(e);
    }
    let no_projects = Vec::new();
    let mut desired_ids = BTreeSet::new();
    for (i, d) in inp.desired.iter().enumerate() {
        desired_ids.insert(d.identifier.as_str());
        let copies = by_id
            .get(d.identifier.as_str())
            .cloned()
            .unwrap_or_default();
        // The copy holding this version: prefer one not retired.
        let current = copies
            .iter()
            .filter(|e| e.image.prop(HASH_PROP) == Some(d.hash().as_str()))
            .min_by_key(|e| (retired_at(&e.image).is_some(), e.image.id.clone()))
            .copied();
        let mut supersedes = Vec::new();
        for e in &copies {
            if current.is_some_and(|c| c.image.id == e.image.id) {
                continue;
            }
            handled.insert(&e.image.id);
            retire_or_delete(
                &mut p,
                inp,
                e,
                format!("superseded by version {}", d.version),
                current.is_none().then_some(&mut supersedes),
            );
        }
        let wanted = inp.projects.get(&d.vo).unwrap_or(&no_projects);
        let Some(c) = current else {
            p.actions.push(Action::Create {
                desired: i,
                supersedes,
                members: wanted.clone(),
            });
            continue;
        };
        handled.insert(&c.image.id);
        let mut changed = false;
        if retired_at(&c.image).is_some() || c.image.status == "deactivated" {
            p.actions.push(Action::Restore {
                image: c.image.id.clone(),
                identifier: d.identifier.clone(),
            });
            changed = true;
        }
        let ops = property_ops(d, &c.image);
        if !ops.is_empty() {
            p.actions.push(Action::Update {
                image: c.image.id.clone(),
                identifier: d.identifier.clone(),
                ops,
            });
            changed = true;
        }
        let have: HashMap<&str, &str> = c
            .members
            .iter()
            .map(|m| (m.project.as_str(), m.status.as_str()))
            .collect();
        let add: Vec<String> = wanted
            .iter()
            .filter(|w| !have.contains_key(w.as_str()))
            .cloned()
            .collect();
        let accept: Vec<String> = wanted
            .iter()
            .filter(|w| have.get(w.as_str()).is_none_or(|s| *s != "accepted"))
            .cloned()
            .collect();
        let remove: Vec<String> = c
            .members
            .iter()
            .filter(|m| !wanted.contains(&m.project))
            .map(|m| m.project.clone())
            .collect();
        if !(add.is_empty() && accept.is_empty() && remove.is_empty()) {
            p.actions.push(Action::Share {
                image: c.image.id.clone(),
                identifier: d.identifier.clone(),
                add,
                accept,
                remove,
            });
            changed = true;
        }
        if !changed {
            p.unchanged += 1;
        }
    }
    // Managed images whose identifier is not desired.
    let mut rest: Vec<&Existing> = inp
        .existing
        .iter()
        .filter(|e| !handled.contains(e.image.id.as_str()))
        .filter(|e| !desired_ids.contains(e.image.prop(ID_PROP).unwrap_or("")))
        .collect();
    rest.sort_by(|a, b| a.image.id.cmp(&b.image.id));
    for e in rest {
        let held = [LIST_PROP, SOURCE_PROP]
            .iter()
            .any(|k| e.image.prop(k).is_some_and(|l| inp.held_lists.contains(l)));
        if held && retired_at(&e.image).is_none() {
            p.held += 1;
            continue;
        }
        retire_or_delete(
            &mut p,
            inp,
            e,
            "no longer in its list, or its list expired".into(),
            None,
        );
    }
    p
}

/// Retires an image not retired yet (or queues it for retirement after a
/// creation), deletes a retired one whose grace period is over.
fn retire_or_delete(
    p: &mut Plan,
    inp: &Inputs<'_>,
    e: &Existing,
    why: String,
    after_create: Option<&mut Vec<String>>,
) {
    let identifier = e.image.prop(ID_PROP).unwrap_or("").to_string();
    match retired_at(&e.image) {
        None => {
            if let Some(list) = after_create {
                list.push(e.image.id.clone());
            } else {
                p.actions.push(Action::Retire {
                    image: e.image.id.clone(),
                    identifier,
                    version: e.image.prop("APPLIANCE_VERSION").unwrap_or("").to_string(),
                    why,
                });
            }
        }
        Some(t) if inp.now >= t.saturating_add(inp.grace_secs) => {
            p.actions.push(Action::Delete {
                image: e.image.id.clone(),
                identifier,
                why: format!(
                    "retired {}s ago, grace period {}s is over",
                    inp.now - t,
                    inp.grace_secs
                ),
            });
        }
        Some(_) => p.waiting += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(id: &str, version: &str, hash: &str, vo: &str) -> Desired {
        Desired {
            identifier: id.into(),
            title: format!("Image {id}"),
            version: version.into(),
            vo: vo.into(),
            list_identifier: "list-1".into(),
            mpuri: None,
            disk_format: "qcow2".into(),
            container_format: "bare".into(),
            file: "/tmp/x".into(),
            size: 1,
            sha512: hash.into(),
            file_sha512: None,
            properties: BTreeMap::new(),
        }
    }

    /// The image the sync would have made for `d`, accepted by `members`.
    fn made(gid: &str, d: &Desired, members: &[&str]) -> Existing {
        Existing {
            image: GlanceImage {
                id: gid.into(),
                name: d.title.clone(),
                status: "active".into(),
                visibility: "shared".into(),
                owner: "ops".into(),
                disk_format: Some(d.disk_format.clone()),
                os_hash_value: None,
                tags: vec!["fedgate".into()],
                properties: d.glance_properties(),
            },
            members: members
                .iter()
                .map(|p| Member {
                    project: p.to_string(),
                    status: "accepted".into(),
                })
                .collect(),
        }
    }

    fn projects() -> BTreeMap<String, Vec<String>> {
        [
            ("vo.a".to_string(), vec!["a1".to_string(), "a2".to_string()]),
            ("vo.b".to_string(), vec!["b1".to_string()]),
        ]
        .into()
    }

    fn run(desired: &[Desired], existing: &[Existing], held: &[&str], now: i64) -> Plan {
        let held: HashSet<String> = held.iter().map(|s| s.to_string()).collect();
        plan(&Inputs {
            desired,
            existing,
            projects: &projects(),
            held_lists: &held,
            now,
            grace_secs: 100,
        })
    }

    #[test]
    fn a_new_image_is_created_and_a_synced_one_left_alone() {
        let d = vec![desired("i1", "1", "aa", "vo.a")];
        let p = run(&d, &[], &[], 0);
        assert_eq!(
            p.actions,
            vec![Action::Create {
                desired: 0,
                supersedes: vec![],
                members: vec!["a1".into(), "a2".into()],
            }]
        );
        let e = vec![made("g1", &d[0], &["a1", "a2"])];
        let p = run(&d, &e, &[], 0);
        assert!(p.is_empty(), "{:?}", p.actions);
        assert_eq!(p.unchanged, 1);
    }

    #[test]
    fn members_are_added_accepted_and_removed() {
        let d = vec![desired("i1", "1", "aa", "vo.a")];
        let mut e = made("g1", &d[0], &["a1", "b1"]);
        e.members[0].status = "pending".into();
        let p = run(&d, &[e], &[], 0);
        assert_eq!(
            p.actions,
            vec![Action::Share {
                image: "g1".into(),
                identifier: "i1".into(),
                add: vec!["a2".into()],
                accept: vec!["a1".into(), "a2".into()],
                remove: vec!["b1".into()],
            }]
        );
    }

    #[test]
    fn a_new_version_creates_then_retires_the_old_one() {
        let old = desired("i1", "1", "aa", "vo.a");
        let new = desired("i1", "2", "bb", "vo.a");
        let e = vec![made("g1", &old, &["a1", "a2"])];
        let p = run(std::slice::from_ref(&new), &e, &[], 0);
        assert_eq!(
            p.actions,
            vec![Action::Create {
                desired: 0,
                supersedes: vec!["g1".into()],
                members: vec!["a1".into(), "a2".into()],
            }]
        );
        // Next run: the old copy is retired; grace not over yet.
        let mut old_retired = made("g1", &old, &["a1", "a2"]);
        old_retired
            .image
            .properties
            .insert(RETIRED_PROP.into(), "1000".into());
        old_retired.image.status = "deactivated".into();
        let e = vec![old_retired, made("g2", &new, &["a1", "a2"])];
        let p = run(std::slice::from_ref(&new), &e, &[], 1050);
        assert!(p.is_empty(), "{:?}", p.actions);
        assert_eq!((p.unchanged, p.waiting), (1, 1));
        let p = run(std::slice::from_ref(&new), &e, &[], 1100);
        assert!(matches!(&p.actions[..], [Action::Delete { image, .. }] if image == "g1"));
    }

    #[test]
    fn a_removed_image_is_retired_then_deleted_unless_its_list_is_held() {
        let d = desired("i1", "1", "aa", "vo.a");
        let e = vec![made("g1", &d, &["a1", "a2"])];
        let p = run(&[], &e, &[], 0);
        assert!(matches!(&p.actions[..], [Action::Retire { image, .. }] if image == "g1"));
        // A held list (fetch failed, refused) never loses its images.
        let p = run(&[], &e, &["list-1"], 0);
        assert!(p.is_empty());
        assert_eq!(p.held, 1);
        let mut r = e[0].clone();
        r.image.properties.insert(RETIRED_PROP.into(), "10".into());
        r.image.status = "deactivated".into();
        let p = run(&[], std::slice::from_ref(&r), &[], 50);
        assert!(p.is_empty());
        assert_eq!(p.waiting, 1);
        let p = run(&[], &[r], &[], 110);
        assert!(matches!(&p.actions[..], [Action::Delete { .. }]));
    }

    #[test]
    fn a_retired_image_that_comes_back_is_restored_and_changed_metadata_patched() {
        let d = desired("i1", "1", "aa", "vo.a");
        let mut r = made("g1", &d, &["a1", "a2"]);
        r.image.properties.insert(RETIRED_PROP.into(), "10".into());
        r.image.status = "deactivated".into();
        let mut d2 = d.clone();
        d2.title = "Renamed".into();
        let p = run(&[d2], &[r], &[], 50);
        assert_eq!(p.actions.len(), 2, "{:?}", p.actions);
        assert!(matches!(&p.actions[0], Action::Restore { .. }));
        match &p.actions[1] {
            Action::Update { ops, .. } => {
                assert!(ops.contains(&Patch::Replace("name".into(), "Renamed".into())));
                assert!(ops.contains(&Patch::Replace("APPLIANCE_TITLE".into(), "Renamed".into())));
            }
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn unfinished_uploads_are_deleted_and_properties_carry_the_accounting_id() {
        let d = desired("i1", "1", "aa", "vo.a");
        let mut q = made("g0", &d, &[]);
        q.image.status = "queued".into();
        let p = run(std::slice::from_ref(&d), &[q], &[], 0);
        assert!(matches!(&p.actions[0], Action::Delete { image, .. } if image == "g0"));
        assert!(
            matches!(&p.actions[1], Action::Create { supersedes, .. } if supersedes.is_empty())
        );
        let props = d.glance_properties();
        assert_eq!(props["vmcatcher_event_ad_mpuri"], "i1");
        assert_eq!(props[HASH_PROP], "sha512:aa");
        assert_eq!(props["APPLIANCE_IMAGE_LIST_ID"], "list-1");
        let mut m = d.clone();
        m.mpuri = Some("https://appdb/x:1/".into());
        assert_eq!(
            m.glance_properties()["vmcatcher_event_ad_mpuri"],
            "https://appdb/x:1/"
        );
    }
}
