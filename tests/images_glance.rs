//! The Glance sync against a real Glance 33 (tests/harness/glance/setup.sh)
//! with the real Keystone: create, idempotent second run, new version,
//! removal, grace period, members per VO, upload format, dry run, and the
//! `fedgate images sync|status` commands.
//!
//! Needs the harness's env.sh sourced (FEDGATE_GLANCE_URL, ...); without it
//! the test prints SKIPPED and passes, unless FEDGATE_REQUIRE_GLANCE=1.
//! Every run uses its own Glance tag, so runs never see each other's images.

#![cfg(feature = "accounting")]

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use fedgate::internal::http_client::HttpClient;
use fedgate::internal::images::plan::Desired;
use fedgate::internal::images::plugin::{Context, Gathered, ImagesConfig};
use http::{HeaderName, Method};
use serde_json::{Value, json};

struct Env {
    glance: String,
    auth: String,
    user: String,
    password: String,
    project: String,
    vo_a: Vec<String>,
    vo_b: Vec<String>,
}

fn env() -> Option<Env> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(glance) = get("FEDGATE_GLANCE_URL") else {
        assert!(
            std::env::var("FEDGATE_REQUIRE_GLANCE").as_deref() != Ok("1"),
            "FEDGATE_REQUIRE_GLANCE=1 but FEDGATE_GLANCE_URL is not set: source the env.sh of tests/harness/glance/setup.sh"
        );
        eprintln!(
            "SKIPPED: no Glance (run tests/harness/glance/setup.sh and source its env.sh, or scripts/test.sh)"
        );
        return None;
    };
    let list = |k: &str| {
        get(k)
            .unwrap_or_default()
            .split(',')
            .map(str::to_string)
            .collect()
    };
    Some(Env {
        glance,
        auth: get("FEDGATE_GLANCE_AUTH_URL").expect("FEDGATE_GLANCE_AUTH_URL"),
        user: get("FEDGATE_GLANCE_SYNC_USER").expect("FEDGATE_GLANCE_SYNC_USER"),
        password: get("FEDGATE_GLANCE_SYNC_PASSWORD").expect("FEDGATE_GLANCE_SYNC_PASSWORD"),
        project: get("FEDGATE_GLANCE_PROJECT").expect("FEDGATE_GLANCE_PROJECT"),
        vo_a: list("FEDGATE_GLANCE_VO_A_PROJECTS"),
        vo_b: list("FEDGATE_GLANCE_VO_B_PROJECTS"),
    })
}

/// `[plugins.images]` for the harness, VO A from the table, VO B from a
/// cASO-style voms.json.
fn section(e: &Env, tag: &str, grace: &str, voms_json: &Path) -> String {
    format!(
        "glance_url = \"{}\"\ntag = \"{tag}\"\ngrace_period = \"{grace}\"\nschedule = \"every 1h\"\n\
         vo_map_file = \"{}\"\n\
         [projects]\n\"vo.a.test\" = [{}]\n\
         [auth]\nurl = \"{}\"\nusername = \"{}\"\npassword = \"{}\"\nproject = \"{}\"\n",
        e.glance,
        voms_json.display(),
        e.vo_a
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", "),
        e.auth,
        e.user,
        e.password,
        e.project
    )
}

fn qemu_img(dir: &Path, name: &str, fmt: &str, size: &str) -> PathBuf {
    let p = dir.join(name);
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", fmt])
        .arg(&p)
        .arg(size)
        .output()
        .expect("qemu-img (Debian qemu-utils) is needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

fn sha512(p: &Path) -> String {
    let out = Command::new("sha512sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn desired(id: &str, version: &str, vo: &str, file: &Path, fmt: &str) -> Desired {
    Desired {
        identifier: id.into(),
        title: format!("Test image {id}"),
        version: version.into(),
        vo: vo.into(),
        list_identifier: format!("list-{vo}"),
        mpuri: Some(format!("https://appdb.test/store/vo/image/{id}:{version}/")),
        disk_format: fmt.into(),
        container_format: "bare".into(),
        file: file.to_path_buf(),
        size: std::fs::metadata(file).unwrap().len(),
        sha512: sha512(file),
        file_sha512: Some(sha512(file)),
        properties: [("os_distro".to_string(), "ubuntu".to_string())].into(),
    }
}

fn gathered(desired: Vec<Desired>) -> Gathered {
    Gathered {
        desired,
        held_lists: HashSet::new(),
        refused: BTreeMap::new(),
        pins: Vec::new(),
    }
}

/// A token of the sync user scoped to `project` (by name).
async fn token(http: &HttpClient, e: &Env, project: &str) -> String {
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": e.user, "domain": {"id": "default"}, "password": e.password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
    let a = http
        .request(
            Method::POST,
            &format!("{}/auth/tokens", e.auth.trim_end_matches('/')),
            &[],
            Some(("application/json", Bytes::from(body.to_string()))),
            1 << 22,
        )
        .await
        .unwrap();
    assert!(a.status.is_success(), "token for {project}: {}", a.status);
    a.headers["x-subject-token"].to_str().unwrap().to_string()
}

/// Image ids with `tag` that `project` sees in `GET /v2/images`.
async fn visible(http: &HttpClient, e: &Env, project: &str, tag: &str) -> Vec<String> {
    let t = token(http, e, project).await;
    let a = http
        .request(
            Method::GET,
            &format!("{}/v2/images?tag={tag}", e.glance),
            &[(HeaderName::from_static("x-auth-token"), t)],
            None,
            1 << 22,
        )
        .await
        .unwrap();
    assert!(a.status.is_success(), "{}", a.status);
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn count(o: &fedgate::internal::images::sync::Outcome, k: &str) -> u64 {
    o.counts.get(k).copied().unwrap_or(0)
}

/// The managed images as `status` reports them.
async fn images(ctx: &Context) -> Vec<Value> {
    ctx.status().await.unwrap()["images"]
        .as_array()
        .unwrap()
        .clone()
}

fn by_identifier<'a>(images: &'a [Value], id: &str) -> Vec<&'a Value> {
    images.iter().filter(|i| i["identifier"] == id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glance_sync_lifecycle() {
    let Some(e) = env() else { return };
    let t0 = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let tag = format!(
        "fedgate-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let voms = dir.path().join("voms.json");
    std::fs::write(
        &voms,
        json!({"vo.b.test": {"projects": e.vo_b}}).to_string(),
    )
    .unwrap();
    // Longer than a few sync runs take on a loaded box: the old A, retired
    // one run before B, must still be waiting when B is retired.
    let grace = 30;
    let text = section(&e, &tag, &format!("{grace}s"), &voms);
    let cfg_file = dir.path().join("fedgate.toml");
    std::fs::write(
        &cfg_file,
        format!(
            "[upstream]\nurl = \"http://127.0.0.1:1\"\n[admin]\nlisten = []\n[plugins.images]\n{}",
            text.replace("\n[", "\n[plugins.images.")
        ),
    )
    .unwrap();
    let cfg: ImagesConfig = toml::from_str(&text).unwrap();
    let ctx = Context::connect(&cfg).await.expect("connect");
    let stop = fedgate_stop();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };

    let a1 = qemu_img(dir.path(), "a1.qcow2", "qcow2", "16M");
    let b1 = qemu_img(dir.path(), "b1.qcow2", "qcow2", "8M");
    let a2 = qemu_img(dir.path(), "a2.qcow2", "qcow2", "32M");
    let da1 = desired("img-a", "1.0", "vo.a.test", &a1, "qcow2");
    let db1 = desired("img-b", "1.0", "vo.b.test", &b1, "qcow2");
    let http = HttpClient::new(None, Duration::from_secs(60)).unwrap();

    // Dry run: a plan of two creations, nothing changed in Glance.
    let g = gathered(vec![da1.clone(), db1.clone()]);
    let dry = ctx.sync(&g, true, now(), &stop).await.unwrap();
    assert_eq!(dry.plan.len(), 2, "{:?}", dry.plan);
    assert!(
        dry.plan.iter().all(|l| l.starts_with("create ")),
        "{:?}",
        dry.plan
    );
    assert!(images(&ctx).await.is_empty(), "a dry run changed Glance");

    // First run: both created, uploaded, shared and accepted.
    let o = ctx.sync(&g, false, now(), &stop).await.unwrap();
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(count(&o, "created"), 2, "{:?}", o.counts);
    let imgs = images(&ctx).await;
    assert_eq!(imgs.len(), 2, "{imgs:?}");
    let a_id = by_identifier(&imgs, "img-a")[0]["glance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let b_id = by_identifier(&imgs, "img-b")[0]["glance_id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in &imgs {
        assert_eq!(i["state"], "active");
        let members = i["members"].as_array().unwrap();
        assert!(members.iter().all(|m| m["status"] == "accepted"), "{i}");
    }
    assert_eq!(
        by_identifier(&imgs, "img-a")[0]["members"]
            .as_array()
            .unwrap()
            .len(),
        e.vo_a.len()
    );
    // The properties sites and cASO read, and the declared format.
    let raw = ctx.glance().get(&a_id).await.unwrap().unwrap();
    assert_eq!(raw.disk_format.as_deref(), Some("qcow2"));
    assert_eq!(raw.os_hash_value.as_deref(), Some(da1.sha512.as_str()));
    assert_eq!(
        raw.prop("vmcatcher_event_ad_mpuri"),
        Some("https://appdb.test/store/vo/image/img-a:1.0/")
    );
    assert_eq!(raw.prop("APPLIANCE_VO"), Some("vo.a.test"));
    assert_eq!(raw.prop("os_distro"), Some("ubuntu"));
    assert_eq!(
        raw.prop("image_hash"),
        Some(format!("sha512:{}", da1.sha512).as_str())
    );

    // Members: VO A's projects see A and not B; VO B's sees B, never A.
    for p in &e.vo_a {
        let v = visible(&http, &e, p, &tag).await;
        assert!(v.contains(&a_id), "{p} must see img-a: {v:?}");
        assert!(!v.contains(&b_id), "{p} must not see img-b: {v:?}");
    }
    for p in &e.vo_b {
        let v = visible(&http, &e, p, &tag).await;
        assert_eq!(v, vec![b_id.clone()], "{p} sees exactly img-b");
    }

    // Second run: nothing to do, and it says so.
    let o = ctx.sync(&g, false, now(), &stop).await.unwrap();
    assert!(o.plan.is_empty(), "{:?}", o.plan);
    assert_eq!(count(&o, "unchanged"), 2, "{:?}", o.counts);
    for k in ["created", "updated", "deactivated", "deleted", "shared"] {
        assert_eq!(count(&o, k), 0, "{k}: {:?}", o.counts);
    }

    // The CLI agrees: dry run and sync print nothing to do; status lists both.
    let bin = env!("CARGO_BIN_EXE_fedgate");
    let out = Command::new(bin)
        .args(["images", "sync", "--dry-run", "--config"])
        .arg(&cfg_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(bin)
        .args(["images", "status", "--json", "--config"])
        .arg(&cfg_file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["images"].as_array().unwrap().len(), 2, "{st}");

    // A new version of A: a new image, the old one deactivated.
    let da2 = desired("img-a", "2.0", "vo.a.test", &a2, "qcow2");
    let g2 = gathered(vec![da2.clone(), db1.clone()]);
    let o = ctx.sync(&g2, false, now(), &stop).await.unwrap();
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(
        (count(&o, "created"), count(&o, "deactivated")),
        (1, 1),
        "{:?}",
        o.counts
    );
    let imgs = images(&ctx).await;
    let a = by_identifier(&imgs, "img-a");
    assert_eq!(a.len(), 2);
    let old = a.iter().find(|i| i["glance_id"] == a_id.as_str()).unwrap();
    let new = a.iter().find(|i| i["glance_id"] != a_id.as_str()).unwrap();
    assert_eq!(
        (old["state"].as_str(), old["version"].as_str()),
        (Some("deactivated"), Some("1.0"))
    );
    assert_eq!(
        (new["state"].as_str(), new["version"].as_str()),
        (Some("active"), Some("2.0"))
    );
    let new_a = new["glance_id"].as_str().unwrap().to_string();
    // VO A's projects now see the new version.
    assert!(visible(&http, &e, &e.vo_a[0], &tag).await.contains(&new_a));

    // B leaves its list: deactivated, not deleted yet.
    let g3 = gathered(vec![da2.clone()]);
    let o = ctx.sync(&g3, false, now(), &stop).await.unwrap();
    assert_eq!(count(&o, "deactivated"), 1, "{:?}", o.counts);
    assert_eq!(count(&o, "deleted"), 0, "{:?}", o.counts);
    let imgs = images(&ctx).await;
    assert_eq!(by_identifier(&imgs, "img-b")[0]["state"], "deactivated");
    // Within the grace period: nothing more happens.
    let o = ctx.sync(&g3, false, now(), &stop).await.unwrap();
    assert!(o.plan.is_empty(), "{:?}", o.plan);
    assert_eq!(count(&o, "waiting"), 2, "{:?}", o.counts);

    // After the grace period: the old A and B are deleted.
    let b_retired = by_identifier(&imgs, "img-b")[0]["retired_at"]
        .as_i64()
        .unwrap();
    let wait = (b_retired + grace as i64 + 1 - now()).max(0) as u64;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let o = ctx.sync(&g3, false, now(), &stop).await.unwrap();
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(count(&o, "deleted"), 2, "{:?}", o.counts);
    let imgs = images(&ctx).await;
    assert_eq!(imgs.len(), 1, "{imgs:?}");
    assert_eq!(imgs[0]["glance_id"], new_a.as_str());
    assert!(ctx.glance().get(&a_id).await.unwrap().is_none());
    assert!(ctx.glance().get(&b_id).await.unwrap().is_none());

    // A file whose real format differs from the declared one: Glance 33
    // refuses the upload (415), the step fails, nothing is left behind.
    let raw_file = qemu_img(dir.path(), "c.raw", "raw", "1M");
    let dc = desired("img-c", "1.0", "vo.a.test", &raw_file, "qcow2");
    let o = ctx
        .sync(&gathered(vec![da2.clone(), dc]), false, now(), &stop)
        .await
        .unwrap();
    assert_eq!(count(&o, "failed"), 1, "{:?}", o.counts);
    assert!(o.errors[0].contains("415"), "{:?}", o.errors);
    assert_eq!(images(&ctx).await.len(), 1, "the failed image was removed");

    // Clean up: nothing desired, grace 0 → retire, then delete.
    let text0 = section(&e, &tag, "0s", &voms);
    let ctx0 = Context::connect(&toml::from_str(&text0).unwrap())
        .await
        .unwrap();
    let empty = gathered(vec![]);
    ctx0.sync(&empty, false, now(), &stop).await.unwrap();
    let o = ctx0.sync(&empty, false, now(), &stop).await.unwrap();
    assert_eq!(count(&o, "deleted"), 1, "{:?}", o.counts);
    assert!(images(&ctx0).await.is_empty());
    eprintln!("glance_sync_lifecycle: {:.1} s", t0.elapsed().as_secs_f64());
}

fn fedgate_stop() -> fedgate::internal::images::sync::Stop {
    fedgate::internal::images::sync::Stop::new()
}

/// The EGI registry source end to end: an artifact pushed by `oras` to a
/// real `docker-registry` (as EGI publishes images, with its
/// `eu.egi.cloud.*` annotations) is found, staged by digest and synced
/// into the real Glance for its VO's projects only; a second run changes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_artifacts_sync_into_glance() {
    use fedgate::internal::images::plugin::gather;
    let Some(e) = env() else { return };
    let harness = |f: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/harness/registry")
            .join(f)
    };
    if !Path::new("/usr/bin/docker-registry").exists() {
        assert!(
            std::env::var("FEDGATE_REQUIRE_IMAGE_TOOLS").as_deref() != Ok("1"),
            "FEDGATE_REQUIRE_IMAGE_TOOLS=1 but docker-registry is missing"
        );
        eprintln!("SKIPPED: no docker-registry");
        return;
    }
    let o = Command::new(harness("oras-venv.sh")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let py = String::from_utf8_lossy(&o.stdout).trim().to_string();
    const PORT: u16 = 18797;
    let dir = tempfile::tempdir().unwrap();
    let reg_dir = dir.path().join("registry");
    let up = Command::new(harness("registry.sh"))
        .arg("up")
        .arg(&reg_dir)
        .args([&PORT.to_string(), "htpasswd", "pusher", "pw"])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    struct Down(PathBuf, PathBuf);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = Command::new(&self.0).arg("down").arg(&self.1).status();
        }
    }
    let _down = Down(harness("registry.sh"), reg_dir.clone());

    let tag = format!(
        "fedgate-reg-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let img = qemu_img(dir.path(), "cirros.qcow2", "qcow2", "16M");
    let annotations = json!({
        "$manifest": {"eu.egi.cloud.tag": "0.6.2", "eu.egi.cloud.image.title": "CirrOS 0.6.2",
                      "eu.egi.cloud.description": "registry test", "eu.egi.cloud.vo": "vo.a.test",
                      "org.opencontainers.image.version": "0.6.2"},
        "$layer": {"org.openstack.glance.disk_format": "qcow2",
                   "org.openstack.glance.container_format": "bare"}
    });
    let pushed = Command::new(&py)
        .arg(harness("push.py"))
        .args([&format!("127.0.0.1:{PORT}"), "pusher", "pw"])
        .arg(format!("egi_vm_images/{tag}:0.6.2"))
        .arg(&img)
        .arg(annotations.to_string())
        .output()
        .unwrap();
    assert!(
        pushed.status.success(),
        "oras push: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );

    let voms = dir.path().join("voms.json");
    std::fs::write(
        &voms,
        json!({"vo.b.test": {"projects": e.vo_b}}).to_string(),
    )
    .unwrap();
    let text = format!(
        "{}[staging]\nstaging_dir = \"{}\"\nallow_http = true\n\
         [staging.registry]\nurl = \"http://127.0.0.1:{PORT}\"\nallow_http = true\n\
         repositories = [\"egi_vm_images/{tag}\"]\nusername = \"pusher\"\npassword = \"pw\"\n",
        section(&e, &tag, "1h", &voms),
        dir.path().join("staging").display()
    );
    std::fs::create_dir_all(dir.path().join("staging")).unwrap();
    let cfg: ImagesConfig = toml::from_str(&text).unwrap_or_else(|err| panic!("{err}\n{text}"));
    let ctx = Context::connect(&cfg).await.expect("connect");
    let stop = fedgate_stop();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    let g = gather(&cfg, now, &stop).await.expect("gather");
    assert_eq!(g.desired.len(), 1, "refused: {:?}", g.refused);
    assert_eq!(g.desired[0].vo, "vo.a.test");
    let out = ctx.sync(&g, false, now, &stop).await.expect("sync");
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(count(&out, "created"), 1, "{:?}", out.counts);

    let http = HttpClient::new(None, Duration::from_secs(60)).unwrap();
    for p in &e.vo_a {
        assert_eq!(
            visible(&http, &e, p, &tag).await.len(),
            1,
            "VO A project {p}"
        );
    }
    for p in &e.vo_b {
        assert!(
            visible(&http, &e, p, &tag).await.is_empty(),
            "VO B project {p}"
        );
    }
    let managed = images(&ctx).await;
    let mine: Vec<&Value> = managed
        .iter()
        .filter(|i| i["identifier"].as_str().unwrap_or("").contains(&tag))
        .collect();
    assert_eq!(mine.len(), 1, "{managed:?}");
    assert_eq!(mine[0]["state"], "active");

    // Idempotent: the same artifact again changes nothing.
    let g = gather(&cfg, now + 60, &stop).await.expect("gather again");
    let out = ctx
        .sync(&g, false, now + 60, &stop)
        .await
        .expect("sync again");
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(count(&out, "created"), 0, "{:?}", out.counts);
    assert!(out.plan.is_empty(), "{:?}", out.plan);
}

/// The HEPiX source end to end: a list signed with `openssl smime` by a
/// trusted endorser of a test IGTF store, served over HTTP with its image,
/// is fetched, verified, staged (sha512 checked) and synced into the real
/// Glance for its VO's projects only. After the sync the list is pinned:
/// an older version of it is then refused (`VersionRollback`) and its
/// image kept as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_list_images_sync_into_glance() {
    use fedgate::internal::images::plugin::{commit_pins, gather};
    let Some(e) = env() else { return };
    const PORT: u16 = 18798;
    const ENDORSER: &str = "/DC=org/DC=fedgate-test/O=Hosts/CN=lists.fedgate-test.org";
    const CA: &str = "/DC=org/DC=fedgate-test/CN=Fedgate Images Test CA";
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/mkpki.sh"))
        .arg(&pki)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let serve = dir.path().join("serve");
    std::fs::create_dir_all(&serve).unwrap();
    let img = qemu_img(&serve, "centos.qcow2", "qcow2", "8M");
    let size = std::fs::metadata(&img).unwrap().len();
    let tag = format!(
        "fedgate-list-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let date = |days: i64| {
        let o = Command::new("date")
            .args(["-u", "-d", &format!("{days} days"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let image_id = format!("{tag}-centos");
    let signed = |version: &str| {
        let list = json!({"hv:imagelist": {"dc:identifier": format!("{tag}-list"),
            "dc:title": "test list", "dc:description": "images", "dc:source": "https://appdb.test/",
            "ad:vo": "vo.a.test", "dc:date:created": date(-1), "dc:date:expires": date(30),
            "hv:version": version, "hv:uri": format!("http://127.0.0.1:{PORT}/image.list"),
            "hv:endorser": {"hv:x509": {"dc:creator": "test", "hv:email": "ops@example.org",
                "hv:dn": ENDORSER, "hv:ca": CA}},
            "hv:images": [{"hv:image": {"dc:identifier": image_id, "dc:title": "CentOS test",
                "hv:uri": format!("http://127.0.0.1:{PORT}/centos.qcow2"), "hv:size": size.to_string(),
                "hv:version": version, "hv:format": "QCOW2", "sl:checksum:sha512": sha512(&img),
                "ad:mpuri": format!("https://appdb.test/store/vo/image/{image_id}:{version}/")}}]}});
        let json_file = dir.path().join("list.json");
        std::fs::write(
            &json_file,
            serde_json::to_string_pretty(&list).unwrap() + "\n",
        )
        .unwrap();
        let st = Command::new("openssl")
            .args(["smime", "-sign", "-in"])
            .arg(&json_file)
            .arg("-signer")
            .arg(pki.join("signers/endorser.pem"))
            .arg("-inkey")
            .arg(pki.join("signers/endorser.key"))
            .arg("-out")
            .arg(serve.join("image.list"))
            .env("OPENSSL_CONF", "/dev/null")
            .status()
            .unwrap();
        assert!(st.success());
    };
    signed("2");
    let mut server = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &PORT.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&serve)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _kill = Kill(&mut server);
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", PORT)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let voms = dir.path().join("voms.json");
    std::fs::write(
        &voms,
        json!({"vo.b.test": {"projects": e.vo_b}}).to_string(),
    )
    .unwrap();
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let text = format!(
        "ca_dir = \"{}\"\n{}[staging]\nstaging_dir = \"{}\"\nallow_http = true\n\
         [[subscription]]\nurl = \"http://127.0.0.1:{PORT}/image.list\"\nvo = \"vo.a.test\"\n\
         endorsers = [{{ dn = \"{ENDORSER}\", ca = \"{CA}\" }}]\n",
        pki.join("certificates").display(),
        section(&e, &tag, "1h", &voms),
        staging.display()
    );
    let cfg: ImagesConfig = toml::from_str(&text).unwrap_or_else(|err| panic!("{err}\n{text}"));
    let ctx = Context::connect(&cfg).await.expect("connect");
    let stop = fedgate_stop();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    let g = gather(&cfg, now, &stop).await.expect("gather");
    assert_eq!(
        g.desired.len(),
        1,
        "refused: {:?}, held: {:?}",
        g.refused,
        g.held_lists
    );
    assert_eq!(g.desired[0].identifier, image_id);
    let out = ctx.sync(&g, false, now, &stop).await.expect("sync");
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(count(&out, "created"), 1, "{:?}", out.counts);
    commit_pins(&g).unwrap();
    let http = HttpClient::new(None, Duration::from_secs(60)).unwrap();
    for p in &e.vo_a {
        assert_eq!(
            visible(&http, &e, p, &tag).await.len(),
            1,
            "VO A project {p}"
        );
    }
    for p in &e.vo_b {
        assert!(
            visible(&http, &e, p, &tag).await.is_empty(),
            "VO B project {p}"
        );
    }

    // A rollback to an older version of the same list: refused, held.
    signed("1");
    let g = gather(&cfg, now + 60, &stop).await.expect("gather again");
    assert!(g.desired.is_empty(), "{:?}", g.desired);
    assert!(g.refused.contains_key("VersionRollback"), "{:?}", g.refused);
    let out = ctx
        .sync(&g, false, now + 60, &stop)
        .await
        .expect("sync again");
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(count(&out, "deactivated"), 0, "{:?}", out.counts);
    let managed = images(&ctx).await;
    let mine = by_identifier(&managed, &image_id);
    assert_eq!(mine.len(), 1, "{managed:?}");
    assert_eq!(mine[0]["state"], "active");
}
