//! Records from what the services answered: pure functions, so that every
//! rule of cASO 5.2.2 and every deliberate deviation (A14) is unit-tested
//! without OpenStack.
//!
//! Times are microseconds since the epoch in UTC; durations are truncated
//! to whole seconds the way cASO's `int(timedelta.total_seconds())` does.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::super::record::{AcceleratorRecord, CloudRecord, IpRecord, StorageRecord, VmStatus};
use super::super::source::{ExtractOptions, GlobalUserSource, IdentityLookup};
use super::model::{Flavor, FloatingIp, Server, ServerUsage, Volume};
use super::times::{self, US};

/// What every record of one project and window shares.
pub struct Context<'a> {
    pub opts: &'a ExtractOptions,
    pub project_id: &'a str,
    pub vo: &'a str,
    /// The window, microseconds since the epoch (UTC).
    pub from: i64,
    pub to: i64,
    /// Extraction time, microseconds.
    pub now: i64,
    /// Keystone user id → user name (`None`: lookup failed).
    pub names: &'a BTreeMap<String, Option<String>>,
    pub ids: &'a dyn IdentityLookup,
}

/// Characters other than ASCII dropped, as cASO does for APEL.
pub fn ascii(s: &str) -> String {
    s.chars().filter(char::is_ascii).collect()
}

fn secs(us: i64) -> i64 {
    us.div_euclid(US)
}

/// `int((a - b).total_seconds())`: truncated towards zero.
fn dur(a: i64, b: i64) -> i64 {
    (a - b) / US
}

impl Context<'_> {
    /// `(GlobalUserName, FQAN)` of a Keystone user: the gateway's identity
    /// when it knows the user and the site asks for it, else cASO's (the
    /// Keystone user name and the project's VO).
    pub fn who(&self, user_id: &str) -> (Option<String>, String) {
        if !self.opts.caso_compat && self.opts.global_user == GlobalUserSource::Gateway {
            if let Some(g) = self.ids.lookup(user_id) {
                let name = Some(ascii(&g.global_user_name)).filter(|n| !n.is_empty());
                return (name, g.fqan.unwrap_or_else(|| self.vo.to_string()));
            }
        }
        let name = self
            .names
            .get(user_id)
            .cloned()
            .flatten()
            .filter(|n| !n.is_empty())
            .map(|n| ascii(&n));
        (name, self.vo.to_string())
    }
}

/// Nova's answers for one project (A4 steps 1-5).
#[derive(Debug, Default, Clone)]
pub struct NovaData {
    pub flavors: BTreeMap<String, Flavor>,
    /// Image id → `vmcatcher_event_ad_mpuri`, when the image has one.
    pub images: BTreeMap<String, Option<String>>,
    /// Step 3: servers changed since `from`, deleted ones included.
    pub changed: Vec<Server>,
    /// Step 4: usages of the window.
    pub usages: Vec<ServerUsage>,
    /// Step 5: servers of usages not in `changed` that Nova still returns.
    pub fetched: BTreeMap<String, Server>,
}

/// cASO's end of a server: `terminated_at`; else `created` if it never
/// launched; else `updated` if it is DELETED.
fn server_end(s: &Server) -> Option<i64> {
    match s.terminated_at {
        Some(t) => Some(t),
        None if s.launched_at.is_none() => Some(s.created),
        None if s.status == "DELETED" => s.updated,
        None => None,
    }
}

struct Draft {
    rec: CloudRecord,
    start: i64,
    end: Option<i64>,
    wall: Option<i64>,
    cpu: Option<i64>,
}

fn base_record(ctx: &Context<'_>, nova: &NovaData, s: &Server) -> Result<Draft, String> {
    let (global, fqan) = ctx.who(&s.user_id);
    let flavor = s.flavor_id.as_ref().and_then(|f| nova.flavors.get(f));
    let (cpu_count, memory, disk) = flavor
        .map(|f| (f.vcpus, f.ram, f.disk + f.ephemeral))
        .unwrap_or((0, 0, 0));
    let keys = &ctx.opts.spec_keys;
    let bench_name = flavor.and_then(|f| f.extra.get(&keys.benchmark_name));
    let bench_value = flavor.and_then(|f| f.extra.get(&keys.benchmark_value));
    let (benchmark_type, benchmark) = match (bench_name, bench_value) {
        (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => match v.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => (Some(n.clone()), Some(f)),
            _ if ctx.opts.caso_compat => {
                return Err(format!(
                    "server {}: benchmark value {v:?} is not a number",
                    s.id
                ));
            }
            _ => {
                tracing::warn!(server = %s.id, value = %v, "accounting: flavor benchmark value is not a number; benchmark omitted");
                (None, None)
            }
        },
        _ => (None, None),
    };
    let image_id = s.image_id.as_ref().map(|i| match nova.images.get(i) {
        Some(Some(mpuri)) => mpuri.clone(),
        _ => i.clone(),
    });
    let end = server_end(s);
    Ok(Draft {
        rec: CloudRecord {
            vm_uuid: s.id.clone(),
            site_name: ctx.opts.site_name.clone(),
            cloud_compute_service: ctx.opts.service_name.clone(),
            cloud_type: ctx.opts.cloud_type.clone(),
            machine_name: ascii(&s.name),
            local_user_id: ascii(&s.user_id),
            local_group_id: s.tenant_id.clone(),
            global_user_name: global,
            fqan,
            status: VmStatus::from_nova(&s.status),
            start_time: secs(s.created),
            end_time: 0,
            wall_duration: 0,
            cpu_duration: 0,
            cpu_count: cpu_count.min(u64::from(u32::MAX)) as u32,
            memory,
            disk,
            public_ip_count: s.floating_ips,
            benchmark_type,
            benchmark,
            image_id,
        },
        start: s.created,
        end,
        wall: None,
        cpu: None,
    })
}

/// A6: one record per calendar month the VM ran in the window.
fn accelerators(
    ctx: &Context<'_>,
    nova: &NovaData,
    s: &Server,
    d: &Draft,
) -> Result<Vec<AcceleratorRecord>, String> {
    let Some(flavor) = s.flavor_id.as_ref().and_then(|f| nova.flavors.get(f)) else {
        return Ok(Vec::new());
    };
    let keys = &ctx.opts.spec_keys;
    let get = |k: &String| flavor.extra.get(k).filter(|v| !v.is_empty());
    let (Some(kind), Some(model), Some(vendor), Some(number)) = (
        get(&keys.accelerator_type),
        get(&keys.accelerator_model),
        get(&keys.accelerator_vendor),
        get(&keys.accelerator_number),
    ) else {
        return Ok(Vec::new());
    };
    let count = match number.trim().parse::<u32>() {
        Ok(c) => c,
        Err(_) if ctx.opts.caso_compat => {
            return Err(format!(
                "flavor {}: accelerator number {number:?} is not an integer",
                flavor.id
            ));
        }
        Err(_) => {
            tracing::warn!(flavor = %flavor.id, server = %s.id, number = %number,
                "accounting: accelerator number is not an integer; no accelerator record");
            return Ok(Vec::new());
        }
    };
    let first = d.start.max(ctx.from);
    let last = d.end.map_or(ctx.to, |e| e.min(ctx.to));
    let (mut y, mut m) = times::year_month(secs(first));
    let stop = times::year_month(secs(last));
    let mut out = Vec::new();
    while (y, m) <= stop {
        let month = times::month_start(y, m) * US;
        let (ny, nm) = times::next_month(y, m);
        let rs = month.max(d.start);
        let mut re = (times::month_start(ny, nm) * US).min(ctx.to);
        if let Some(e) = d.end {
            re = re.min(e);
        }
        if re >= rs {
            let duration = dur(re, rs);
            out.push(AcceleratorRecord {
                measurement_month: m,
                measurement_year: y as i32,
                associated_record: s.id.clone(),
                global_user_name: d.rec.global_user_name.clone(),
                fqan: d.rec.fqan.clone(),
                site_name: d.rec.site_name.clone(),
                cloud_compute_service: d.rec.cloud_compute_service.clone(),
                cloud_type: d.rec.cloud_type.clone(),
                count,
                available_duration: duration,
                active_duration: duration,
                kind: kind.clone(),
                model: format!("{vendor} {model}"),
            });
        }
        (y, m) = (ny, nm);
    }
    Ok(out)
}

fn finish(d: Draft) -> CloudRecord {
    let mut r = d.rec;
    r.end_time = d.end.map_or(0, secs);
    let wall = d
        .wall
        .unwrap_or_else(|| d.end.map_or(0, |e| dur(e, d.start)));
    r.wall_duration = wall;
    r.cpu_duration = d
        .cpu
        .unwrap_or_else(|| wall.saturating_mul(i64::from(r.cpu_count)));
    r
}

/// A5 + A6: cloud and accelerator records of one project, in cASO's
/// order (changed servers by creation time, then usage-only ones).
pub fn nova_records(
    ctx: &Context<'_>,
    nova: &NovaData,
) -> Result<(Vec<CloudRecord>, Vec<AcceleratorRecord>), String> {
    let compat = ctx.opts.caso_compat;
    let mut order: Vec<String> = Vec::new();
    let mut drafts: BTreeMap<String, Draft> = BTreeMap::new();
    let mut accel: Vec<AcceleratorRecord> = Vec::new();

    let mut changed: Vec<&Server> = nova.changed.iter().collect();
    changed.sort_by_key(|s| s.created);
    for s in changed {
        let end = server_end(s);
        // Created after the window, or ended before it.
        if s.created > ctx.to || end.is_some_and(|e| e < ctx.from) {
            continue;
        }
        let mut d = base_record(ctx, nova, s)?;
        let acc = accelerators(ctx, nova, s, &d)?;
        if end.is_none_or(|e| e > ctx.to) {
            // Running at the end of the window: cumulative until `to`, and
            // not completed yet (a SHUTOFF VM is reported started).
            let wall = dur(ctx.to, d.start);
            d.wall = Some(wall);
            d.end = None;
            if d.rec.status == VmStatus::Completed {
                d.rec.status = VmStatus::Started;
            }
            if compat {
                // cASO multiplies by the flavor's vCPUs before the usage
                // override; the default uses the final CpuCount.
                d.cpu = Some(wall.saturating_mul(i64::from(d.rec.cpu_count)));
            }
        }
        if !drafts.contains_key(&s.id) {
            order.push(s.id.clone());
        }
        accel.retain(|a| a.associated_record != s.id);
        accel.extend(acc);
        drafts.insert(s.id.clone(), d);
    }

    // cASO's `wall` variable survives from one usage to the next (A14 #6).
    let mut stale_wall: Option<i64> = None;
    for u in &nova.usages {
        if !drafts.contains_key(&u.instance_id) {
            let Some(s) = nova.fetched.get(&u.instance_id) else {
                // Nova lists a usage for a server it no longer returns.
                continue;
            };
            if s.created > ctx.to {
                continue;
            }
            let mut d = base_record(ctx, nova, s)?;
            accel.extend(accelerators(ctx, nova, s, &d)?);
            let ended = u.ended_at;
            if let Some(e) = ended {
                d.end = Some(e);
            }
            let running = ended.is_none_or(|e| e > ctx.to);
            let wall = if running {
                let w = dur(ctx.to, d.start);
                d.wall = Some(w);
                stale_wall = Some(w);
                if d.rec.status == VmStatus::Completed {
                    d.rec.status = VmStatus::Started;
                }
                if !compat {
                    d.end = None;
                }
                w
            } else if compat {
                stale_wall.ok_or_else(|| {
                    format!(
                        "server {}: cASO 5.2.2 fails here (CpuDuration of a usage-only server that ended in the window)",
                        s.id
                    )
                })?
            } else {
                d.end.map_or(0, |e| dur(e, d.start))
            };
            d.cpu = Some(wall.saturating_mul(u.vcpus.min(i64::MAX as u64) as i64));
            order.push(s.id.clone());
            drafts.insert(s.id.clone(), d);
        }
        if let Some(d) = drafts.get_mut(&u.instance_id) {
            d.rec.memory = u.memory_mb;
            d.rec.cpu_count = u.vcpus.min(u64::from(u32::MAX)) as u32;
            d.rec.disk = u.local_gb;
        }
    }
    let cloud = order
        .into_iter()
        .filter_map(|id| drafts.remove(&id))
        .map(finish)
        .collect();
    Ok((cloud, accel))
}

/// A random UUID4 (cASO's IP record `uuid`).
pub fn uuid4() -> String {
    let mut b = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        // Fall back to the clock: the field is an identifier nobody reads.
        b[..8].copy_from_slice(&times::now_us().to_be_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A7: floating IPs counted per IP version. The default counts only the
/// project's IPs (A14 #1) and sends one record per version (A14 #2); cASO
/// counts every IP the token sees and keeps only the last version.
pub fn ip_records(ctx: &Context<'_>, fips: &[FloatingIp]) -> Result<Vec<IpRecord>, String> {
    let compat = ctx.opts.caso_compat;
    let (mut v4, mut v6) = (0u64, 0u64);
    for f in fips {
        if !compat && f.project_id.as_deref() != Some(ctx.project_id) {
            continue;
        }
        let created = if compat {
            let raw = f.created_at_raw.as_deref().unwrap_or("");
            // cASO: strptime(created_at, "%Y-%m-%dT%H:%M:%SZ")
            let strict = raw.len() == 20 && raw.ends_with('Z') && !raw.contains('.');
            match times::parse(raw).filter(|_| strict) {
                Some(t) => Some(t),
                None => {
                    return Err(format!(
                        "floating IP created_at {raw:?} is not %Y-%m-%dT%H:%M:%SZ"
                    ));
                }
            }
        } else {
            f.created_at
        };
        if created.is_some_and(|c| c > ctx.to) {
            continue;
        }
        match f.address.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => v4 += 1,
            Ok(IpAddr::V6(_)) => v6 += 1,
            Err(_) if compat => return Err(format!("{:?} is not an IP address", f.address)),
            Err(_) => {
                tracing::warn!(address = %f.address, "accounting: floating IP address unreadable; not counted");
            }
        }
    }
    let record = |version: u8, count: u64| IpRecord {
        site_name: ctx.opts.site_name.clone(),
        cloud_type: ctx.opts.cloud_type.clone(),
        cloud_compute_service: ctx.opts.service_name.clone(),
        uuid: Some(uuid4()),
        local_group: ctx.project_id.to_string(),
        fqan: ctx.vo.to_string(),
        ip_version: version,
        ip_count: count,
        measurement_time: secs(ctx.now),
    };
    let mut out: Vec<IpRecord> = [(4, v4), (6, v6)]
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(v, n)| record(v, n))
        .collect();
    if compat && out.len() > 1 {
        // One dict key for both versions: IPv6 overwrites IPv4.
        out.remove(0);
    }
    Ok(out)
}

/// A8: one StAR record per volume of the project.
pub fn storage_records(
    ctx: &Context<'_>,
    volumes: &[Volume],
) -> Result<Vec<StorageRecord>, String> {
    let mut vols: Vec<&Volume> = volumes.iter().collect();
    vols.sort_by_key(|v| v.created_at);
    let mut out = Vec::new();
    for v in vols {
        if ctx.opts.caso_compat && v.name.is_none() {
            // cASO's record requires a string name (A14 #3).
            return Err(format!("volume {}: name is null", v.id));
        }
        let (user, group) = ctx.who(&v.user_id);
        out.push(StorageRecord {
            record_id: v.id.clone(),
            create_time: (secs(ctx.now), ctx.now.rem_euclid(US) as u32),
            storage_system: ctx.opts.service_name.clone(),
            site: ctx.opts.site_name.clone(),
            local_user: v.user_id.clone(),
            local_group: ctx.project_id.to_string(),
            user_identity: user,
            group,
            start_time: secs(v.created_at.max(ctx.from)),
            end_time: secs(ctx.now),
            capacity_used: v.size.saturating_mul(1 << 30),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::super::source::{GatewayIdentity, NoIdentities, SpecKeys};
    use super::*;
    use crate::openstack::session::{AuthOptions, Credentials, Scope};
    use crate::secret::Secret;

    const H: i64 = 3600 * US;
    /// 2026-12-03T00:00:00Z
    const DAY: i64 = 1_796_256_000 * US;

    fn opts(compat: bool) -> ExtractOptions {
        ExtractOptions {
            auth: AuthOptions {
                auth_url: "http://ks".into(),
                credentials: Credentials::Password {
                    username: "a".into(),
                    user_domain: "Default".into(),
                    password: Secret::new("p"),
                },
                scope: Scope::System,
                region: None,
                interface: "public".into(),
                ca_file: None,
                timeout: std::time::Duration::from_secs(5),
            },
            site_name: "SITE".into(),
            service_name: "svc".into(),
            cloud_type: "fedgate/0 (OpenStack)".into(),
            projects: vec![],
            project_tag: None,
            vo_property: "VO".into(),
            vo_mapping: BTreeMap::new(),
            extractors: Default::default(),
            spec_keys: SpecKeys::default(),
            global_user: GlobalUserSource::Gateway,
            caso_compat: compat,
        }
    }

    fn names() -> BTreeMap<String, Option<String>> {
        BTreeMap::from([
            ("u1".to_string(), Some("user-é-1".to_string())),
            ("u2".to_string(), None),
        ])
    }

    fn ctx<'a>(
        o: &'a ExtractOptions,
        n: &'a BTreeMap<String, Option<String>>,
        ids: &'a dyn IdentityLookup,
    ) -> Context<'a> {
        Context {
            opts: o,
            project_id: "p1",
            vo: "vo.test",
            from: DAY,
            to: DAY + 10 * H,
            now: DAY + 11 * H + 5,
            names: n,
            ids,
        }
    }

    fn flavor(id: &str, vcpus: u64, extra: &[(&str, &str)]) -> Flavor {
        Flavor {
            id: id.into(),
            vcpus,
            ram: 2048,
            disk: 10,
            ephemeral: 5,
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn server(id: &str, status: &str, created: i64) -> Server {
        Server {
            id: id.into(),
            name: format!("vm-{id}-ü"),
            status: status.into(),
            user_id: "u1".into(),
            tenant_id: "p1".into(),
            created,
            updated: Some(created + H),
            launched_at: Some(created + 10 * US),
            terminated_at: None,
            flavor_id: Some("f2".into()),
            image_id: Some("img1".into()),
            floating_ips: 1,
        }
    }

    fn nova() -> NovaData {
        NovaData {
            flavors: BTreeMap::from([
                ("f2".into(), flavor("f2", 2, &[])),
                (
                    "gpu".into(),
                    flavor(
                        "gpu",
                        4,
                        &[
                            ("Accelerator:Type", "GPU"),
                            ("Accelerator:Vendor", "NVIDIA"),
                            ("Accelerator:Model", "A100"),
                            ("Accelerator:Number", "2"),
                            ("accounting:benchmark_type", "HEPscore23"),
                            ("accounting:benchmark_value", "12.5"),
                        ],
                    ),
                ),
            ]),
            images: BTreeMap::from([
                ("img1".into(), None),
                ("img2".into(), Some("https://appdb/mp:1/".into())),
            ]),
            ..NovaData::default()
        }
    }

    fn one(cloud: &[CloudRecord], id: &str) -> CloudRecord {
        cloud.iter().find(|r| r.vm_uuid == id).unwrap().clone()
    }

    #[test]
    fn running_stopped_deleted_and_never_launched_servers() {
        let (o, n) = (opts(false), names());
        let c = ctx(&o, &n, &NoIdentities);
        let mut d = nova();
        let active = server("a", "ACTIVE", DAY - 2 * H);
        let shutoff = server("s", "SHUTOFF", DAY + H);
        let mut deleted = server("d", "DELETED", DAY + 2 * H);
        deleted.terminated_at = Some(DAY + 3 * H + 500_000);
        let mut never = server("n", "ERROR", DAY + 4 * H);
        never.launched_at = None;
        let mut stuck = server("x", "DELETED", DAY + 5 * H);
        stuck.updated = Some(DAY + 6 * H);
        let mut later = server("l", "ACTIVE", DAY + 11 * H);
        later.flavor_id = Some("gpu".into());
        let mut old = server("o", "DELETED", DAY - 5 * H);
        old.terminated_at = Some(DAY - H);
        d.changed = vec![shutoff, later, deleted, active, never, stuck, old];
        let (cloud, acc) = nova_records(&c, &d).unwrap();
        // Created after the window or ended before it: no record.
        let ids: Vec<&str> = cloud.iter().map(|r| r.vm_uuid.as_str()).collect();
        assert_eq!(ids, ["a", "s", "d", "n", "x"], "ordered by creation");
        assert!(acc.is_empty());

        let a = one(&cloud, "a");
        assert_eq!(a.status, VmStatus::Started);
        assert_eq!((a.start_time, a.end_time), ((DAY - 2 * H) / US, 0));
        assert_eq!(a.wall_duration, 12 * 3600, "cumulative since creation");
        assert_eq!(a.cpu_duration, 2 * 12 * 3600);
        assert_eq!((a.cpu_count, a.memory, a.disk), (2, 2048, 15));
        assert_eq!(a.machine_name, "vm-a-", "non-ASCII dropped");
        assert_eq!(a.global_user_name.as_deref(), Some("user--1"));
        assert_eq!(a.fqan, "vo.test");
        assert_eq!(a.image_id.as_deref(), Some("img1"));
        assert_eq!(a.public_ip_count, 1);
        assert_eq!((a.benchmark_type.as_deref(), a.benchmark), (None, None));

        // SHUTOFF is not the end: reported started, accruing until `to`.
        let s = one(&cloud, "s");
        assert_eq!(
            (s.status, s.end_time, s.wall_duration),
            (VmStatus::Started, 0, 9 * 3600)
        );

        let d = one(&cloud, "d");
        assert_eq!(d.status, VmStatus::Completed);
        assert_eq!(d.end_time, (DAY + 3 * H) / US);
        assert_eq!(d.wall_duration, 3600, "truncated to whole seconds");
        assert_eq!(d.cpu_duration, 7200);

        // Never launched: ends when created.
        let n = one(&cloud, "n");
        assert_eq!(
            (n.status, n.end_time, n.wall_duration),
            (VmStatus::Error, (DAY + 4 * H) / US, 0)
        );
        // DELETED without terminated_at: ends when last updated.
        let x = one(&cloud, "x");
        assert_eq!(
            (x.status, x.end_time, x.wall_duration),
            (VmStatus::Completed, (DAY + 6 * H) / US, 3600)
        );
    }

    #[test]
    fn server_ending_after_the_window_is_running_in_it() {
        let (o, n) = (opts(false), names());
        let c = ctx(&o, &n, &NoIdentities);
        let mut d = nova();
        let mut s = server("d", "DELETED", DAY + H);
        s.terminated_at = Some(DAY + 20 * H);
        d.changed = vec![s];
        let (cloud, _) = nova_records(&c, &d).unwrap();
        let r = one(&cloud, "d");
        assert_eq!(
            (r.status, r.end_time, r.wall_duration),
            (VmStatus::Started, 0, 9 * 3600)
        );
    }

    #[test]
    fn image_mpuri_boot_from_volume_benchmark_and_unknown_user() {
        let (o, n) = (opts(false), names());
        let c = ctx(&o, &n, &NoIdentities);
        let mut d = nova();
        let mut a = server("a", "ACTIVE", DAY);
        a.image_id = Some("img2".into());
        a.flavor_id = Some("gpu".into());
        let mut b = server("b", "ACTIVE", DAY);
        b.image_id = None;
        b.user_id = "u2".into();
        b.flavor_id = Some("gone".into());
        d.changed = vec![a, b];
        let (cloud, _) = nova_records(&c, &d).unwrap();
        let a = one(&cloud, "a");
        assert_eq!(a.image_id.as_deref(), Some("https://appdb/mp:1/"));
        assert_eq!(
            (a.benchmark_type.as_deref(), a.benchmark),
            (Some("HEPscore23"), Some(12.5))
        );
        let b = one(&cloud, "b");
        assert_eq!(b.image_id, None);
        assert_eq!(b.global_user_name, None);
        assert_eq!(
            (b.cpu_count, b.memory, b.disk, b.cpu_duration),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn usages_override_the_flavor_and_add_unchanged_servers() {
        let (o, n) = (opts(false), names());
        let c = ctx(&o, &n, &NoIdentities);
        let mut d = nova();
        d.changed = vec![server("a", "ACTIVE", DAY - H)];
        d.fetched
            .insert("u".into(), server("u", "ACTIVE", DAY - 30 * H));
        d.usages = vec![
            ServerUsage {
                instance_id: "a".into(),
                vcpus: 3,
                memory_mb: 100,
                local_gb: 7,
                ended_at: None,
            },
            ServerUsage {
                instance_id: "u".into(),
                vcpus: 8,
                memory_mb: 64,
                local_gb: 1,
                ended_at: None,
            },
            ServerUsage {
                instance_id: "ghost".into(),
                ..ServerUsage::default()
            },
        ];
        let (cloud, _) = nova_records(&c, &d).unwrap();
        assert_eq!(cloud.len(), 2, "the ghost (404) is skipped");
        let a = one(&cloud, "a");
        assert_eq!((a.cpu_count, a.memory, a.disk), (3, 100, 7));
        let u = one(&cloud, "u");
        assert_eq!(
            (u.status, u.end_time, u.wall_duration),
            (VmStatus::Started, 0, 40 * 3600)
        );
        assert_eq!(u.cpu_duration, 8 * 40 * 3600);
    }

    /// A14 #6: a usage-only server that ended in the window.
    #[test]
    fn usage_only_ended_server_cpu_duration() {
        let o = opts(false);
        let n = names();
        let mut d = nova();
        d.fetched
            .insert("u".into(), server("u", "DELETED", DAY - 30 * H));
        d.usages = vec![ServerUsage {
            instance_id: "u".into(),
            vcpus: 4,
            memory_mb: 64,
            local_gb: 1,
            ended_at: Some(DAY + 2 * H),
        }];
        let (cloud, _) = nova_records(&ctx(&o, &n, &NoIdentities), &d).unwrap();
        let u = one(&cloud, "u");
        assert_eq!(
            (u.status, u.end_time),
            (VmStatus::Completed, (DAY + 2 * H) / US)
        );
        assert_eq!(u.wall_duration, 32 * 3600);
        assert_eq!(u.cpu_duration, 4 * 32 * 3600);
        // cASO: `wall` is unbound here (or stale from an earlier usage).
        let oc = opts(true);
        assert!(nova_records(&ctx(&oc, &n, &NoIdentities), &d).is_err());
        d.fetched.insert("r".into(), server("r", "ACTIVE", DAY - H));
        d.usages.insert(
            0,
            ServerUsage {
                instance_id: "r".into(),
                vcpus: 1,
                ..ServerUsage::default()
            },
        );
        let (cloud, _) = nova_records(&ctx(&oc, &n, &NoIdentities), &d).unwrap();
        assert_eq!(
            one(&cloud, "u").cpu_duration,
            4 * 11 * 3600,
            "stale wall of r"
        );
    }

    #[test]
    fn usage_only_server_ending_after_the_window() {
        let n = names();
        let mut d = nova();
        d.fetched
            .insert("u".into(), server("u", "DELETED", DAY - H));
        d.usages = vec![ServerUsage {
            instance_id: "u".into(),
            vcpus: 1,
            ended_at: Some(DAY + 20 * H),
            ..ServerUsage::default()
        }];
        let o = opts(false);
        let (cloud, _) = nova_records(&ctx(&o, &n, &NoIdentities), &d).unwrap();
        let u = one(&cloud, "u");
        assert_eq!(
            (u.status, u.end_time, u.wall_duration),
            (VmStatus::Started, 0, 11 * 3600)
        );
        // cASO keeps the end time although it reports the VM running.
        let oc = opts(true);
        let (cloud, _) = nova_records(&ctx(&oc, &n, &NoIdentities), &d).unwrap();
        assert_eq!(one(&cloud, "u").end_time, (DAY + 20 * H) / US);
    }

    #[test]
    fn accelerator_records_per_month() {
        let (o, n) = (opts(false), names());
        let mut c = ctx(&o, &n, &NoIdentities);
        // Window 2026-11-30T00:00Z .. 2026-12-03T10:00Z, VM created 2026-11-20.
        c.from = DAY - 3 * 24 * H;
        let mut d = nova();
        let mut s = server("g", "ACTIVE", DAY - 13 * 24 * H);
        s.flavor_id = Some("gpu".into());
        d.changed = vec![s];
        let (_, acc) = nova_records(&c, &d).unwrap();
        assert_eq!(acc.len(), 2);
        let nov = &acc[0];
        assert_eq!((nov.measurement_year, nov.measurement_month), (2026, 11));
        assert_eq!(
            nov.available_duration,
            11 * 24 * 3600,
            "cumulative in the month"
        );
        assert_eq!(nov.active_duration, nov.available_duration);
        let dec = &acc[1];
        assert_eq!((dec.measurement_year, dec.measurement_month), (2026, 12));
        assert_eq!(dec.available_duration, 2 * 24 * 3600 + 10 * 3600);
        assert_eq!(
            (dec.count, dec.kind.as_str(), dec.model.as_str()),
            (2, "GPU", "NVIDIA A100")
        );
        assert_eq!(dec.associated_record, "g");
        // A non-integer count: no accelerator record (cASO fails the project).
        d.flavors
            .get_mut("gpu")
            .unwrap()
            .extra
            .insert("Accelerator:Number".into(), "1.5".into());
        assert!(nova_records(&c, &d).unwrap().1.is_empty());
        let oc = opts(true);
        let c2 = Context { opts: &oc, ..c };
        assert!(nova_records(&c2, &d).is_err());
    }

    struct Gw;
    impl IdentityLookup for Gw {
        fn lookup(&self, id: &str) -> Option<GatewayIdentity> {
            (id == "u1").then(|| GatewayIdentity {
                global_user_name: "/DC=org/CN=Jane".into(),
                fqan: Some("/vo.gw/Role=NULL".into()),
            })
        }
    }

    #[test]
    fn gateway_identity_replaces_the_keystone_name() {
        let n = names();
        let mut d = nova();
        d.changed = vec![server("a", "ACTIVE", DAY)];
        let o = opts(false);
        let (cloud, _) = nova_records(&ctx(&o, &n, &Gw), &d).unwrap();
        assert_eq!(
            cloud[0].global_user_name.as_deref(),
            Some("/DC=org/CN=Jane")
        );
        assert_eq!(cloud[0].fqan, "/vo.gw/Role=NULL");
        let mut o = opts(false);
        o.global_user = GlobalUserSource::KeystoneName;
        let (cloud, _) = nova_records(&ctx(&o, &n, &Gw), &d).unwrap();
        assert_eq!(cloud[0].global_user_name.as_deref(), Some("user--1"));
        assert_eq!(cloud[0].fqan, "vo.test");
    }

    fn fip(addr: &str, project: &str, created: &str) -> FloatingIp {
        FloatingIp::from_json(&serde_json::json!({
            "floating_ip_address": addr, "project_id": project, "created_at": created}))
    }

    /// A14 #1 and #2.
    #[test]
    fn ip_records_per_version_of_the_project_only() {
        let n = names();
        let fips = [
            fip("203.0.113.1", "p1", "2016-12-21T10:55:50Z"),
            fip("203.0.113.2", "p1", "2016-12-21T10:55:50Z"),
            fip("2001:db8::1", "p1", "2016-12-21T10:55:50Z"),
            fip("203.0.113.9", "other", "2016-12-21T10:55:50Z"),
            fip("203.0.113.3", "p1", "2036-01-01T00:00:00Z"),
        ];
        let o = opts(false);
        let r = ip_records(&ctx(&o, &n, &NoIdentities), &fips).unwrap();
        let got: Vec<(u8, u64)> = r.iter().map(|r| (r.ip_version, r.ip_count)).collect();
        assert_eq!(got, [(4, 2), (6, 1)]);
        assert_eq!(r[0].local_group, "p1");
        assert_eq!(r[0].measurement_time, (DAY + 11 * H) / US, "now, not `to`");
        assert_eq!(r[0].uuid.as_ref().map(String::len), Some(36));
        assert_ne!(r[0].uuid, r[1].uuid);
        // cASO: other projects' IPs counted, and IPv6 overwrites IPv4.
        let oc = opts(true);
        let r = ip_records(&ctx(&oc, &n, &NoIdentities), &fips).unwrap();
        let got: Vec<(u8, u64)> = r.iter().map(|r| (r.ip_version, r.ip_count)).collect();
        assert_eq!(got, [(6, 1)]);
        let r = ip_records(&ctx(&oc, &n, &NoIdentities), &fips[..2]).unwrap();
        assert_eq!(r.len(), 1);
        let r = ip_records(
            &ctx(&oc, &n, &NoIdentities),
            &[fips[0].clone(), fips[3].clone()],
        )
        .unwrap();
        assert_eq!(r[0].ip_count, 2, "cASO counts the other project's IP");
    }

    /// A14 #3.
    #[test]
    fn storage_records_and_null_volume_names() {
        let n = names();
        let vols = [
            Volume {
                id: "v2".into(),
                name: None,
                user_id: "u1".into(),
                created_at: DAY + H,
                size: 1,
            },
            Volume {
                id: "v1".into(),
                name: Some("data".into()),
                user_id: "u2".into(),
                created_at: DAY - 100 * H,
                size: 10,
            },
        ];
        let o = opts(false);
        let r = storage_records(&ctx(&o, &n, &NoIdentities), &vols).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].record_id, "v1", "by creation time");
        assert_eq!(r[0].start_time, DAY / US, "max(created, from)");
        assert_eq!(r[0].end_time, (DAY + 11 * H) / US, "now");
        assert_eq!(r[0].capacity_used, 10 << 30);
        assert_eq!(
            (r[0].local_user.as_str(), r[0].local_group.as_str()),
            ("u2", "p1")
        );
        assert_eq!(r[0].user_identity, None);
        assert_eq!(r[1].start_time, (DAY + H) / US);
        assert_eq!(r[1].user_identity.as_deref(), Some("user--1"));
        assert_eq!(r[1].group, "vo.test");
        let oc = opts(true);
        assert!(storage_records(&ctx(&oc, &n, &NoIdentities), &vols).is_err());
    }

    /// A14 #5: epochs come from UTC whatever the host's zone.
    #[test]
    fn naive_openstack_times_are_utc() {
        let s = Server::from_json(&serde_json::json!({
            "id": "a", "created": "2026-12-03T07:01:28Z",
            "OS-SRV-USG:launched_at": "2026-12-03T07:01:31.000000",
            "OS-SRV-USG:terminated_at": "2026-12-03T07:01:56.000000",
            "flavor": {"id": "f2"}, "image": ""}))
        .unwrap();
        let (o, n) = (opts(false), names());
        let mut c = ctx(&o, &n, &NoIdentities);
        c.from = 1_796_281_000 * US;
        c.to = 1_796_282_000 * US;
        let d = NovaData {
            changed: vec![s],
            ..nova()
        };
        let (cloud, _) = nova_records(&c, &d).unwrap();
        assert_eq!(
            (cloud[0].start_time, cloud[0].end_time),
            (1_796_281_288, 1_796_281_316)
        );
        assert_eq!(cloud[0].image_id, None, "boot from volume");
    }
}
