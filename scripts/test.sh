#!/usr/bin/env bash
# The test command: installs what the tests need (only what is missing),
# starts the project's own Keystone (tests/harness/keystone) on 18600/18601,
# runs every test including the end-to-end ones, stops Keystone, and exits
# with the test result.
#
#   scripts/test.sh [extra cargo test arguments]
#
# Environment:
#   FEDGATE_SKIP_KEYSTONE=1   no Keystone: the e2e tests print SKIPPED and pass
#   FEDGATE_KEYSTONE_WORKDIR  (target/keystone-e2e) database, keys, logs
#   FEDGATE_KEYSTONE_PORT     (18600; +1 is the uwsgi socket)
#   FEDGATE_KEYSTONE_VENV     (~/.cache/fedgate/keystone-venv) reused when complete
#   FEDGATE_SKIP_GLANCE=1     no Glance: tests/images_glance.rs prints SKIPPED and passes
#   FEDGATE_GLANCE_WORKDIR    (target/glance-e2e) Glance database, images, logs
#   FEDGATE_GLANCE_PORT       (18682)
#   FEDGATE_GLANCE_VENV       (~/.cache/fedgate/glance-venv) reused when complete
#   FEDGATE_NO_INSTALL=1      never run apt-get / npm
#   FEDGATE_SKIP_NOVA=1       no Nova harness: tests/accounting_nova.rs skips
#   FEDGATE_NOVA_WORKDIR      (target/nova-e2e) the Nova harness's state
#   FEDGATE_NOVA_BASE         (18650; ports BASE..BASE+7)
#   FEDGATE_NOVA_VENV, FEDGATE_CASO_VENV (~/.cache/fedgate/nova-venv, caso-venv)
#   FEDGATE_SKIP_HORIZON=1    no Horizon: tests/horizon_e2e.rs prints SKIPPED and passes
#   FEDGATE_HORIZON_WORKDIR   (target/horizon-e2e) Horizon's settings, static files, logs
#   FEDGATE_HORIZON_VENV      (~/.cache/fedgate/horizon-venv) reused when complete
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
T0=$SECONDS
say() { printf '\n== %s\n' "$*" >&2; }

# ------------------------------------------------------------ prerequisites
command -v cargo >/dev/null || { echo "cargo not found: install Rust >= 1.85 (rustup.rs)" >&2; exit 2; }
# voms-clients, globus-proxy-utils: real VOMS proxies (voms-proxy-fake,
# grid-proxy-init); apache2 + gridsite: the interop comparison; redis-server:
# the shared token cache; chromium: the WebSSO browser login; python3-dirq:
# the APEL outgoing queue read back by the dirq that ssmsend uses;
# qemu-utils: qemu-img makes the test images and converts them (image
# plugin) and the small images the Glance sync uploads; docker-registry: the
# real OCI registry the image plugin reads artifacts from (pushed by oras
# from tests/harness/registry); rabbitmq-server: the message bus of the
# Nova harness (tests/harness/nova); haproxy: the load balancer in front of
# fedgate with the PROXY protocol (tests/proxy_protocol.rs) and in front of
# two nodes (tests/multinode.rs); memcached: the shared-state backend
# ([state], tests/shared_state.rs and tests/multinode.rs; redis-server also
# runs as Sentinel there).
APT_PKGS=(curl openssl ca-certificates python3 python3-venv voms-clients globus-proxy-utils
  apache2 gridsite redis-server chromium python3-dirq qemu-utils docker-registry rabbitmq-server
  haproxy memcached)
if [ "${FEDGATE_NO_INSTALL:-0}" != 1 ]; then
  missing=()
  for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  for pkg in tests/harness/*/package.json; do
    [ -e "$pkg" ] || continue
    d=$(dirname "$pkg")
    if [ ! -d "$d/node_modules" ]; then
      say "npm dependencies of $d"
      if [ -f "$d/package-lock.json" ]; then (cd "$d" && npm ci --no-audit --no-fund); else (cd "$d" && npm install --no-audit --no-fund); fi
    fi
  done
fi

# ------------------------------------------------------------ Keystone
KS_DIR=${FEDGATE_KEYSTONE_WORKDIR:-$ROOT/target/keystone-e2e}
KS_PORT=${FEDGATE_KEYSTONE_PORT:-18600}
KS_STARTED=0
GL_DIR=${FEDGATE_GLANCE_WORKDIR:-$ROOT/target/glance-e2e}
GL_PORT=${FEDGATE_GLANCE_PORT:-18682}
GL_STARTED=0
NOVA_DIR=${FEDGATE_NOVA_WORKDIR:-$ROOT/target/nova-e2e}
NOVA_STARTED=0
HZ_DIR=${FEDGATE_HORIZON_WORKDIR:-$ROOT/target/horizon-e2e}
HZ_STARTED=0
stop_keystone() {
  if [ "$HZ_STARTED" = 1 ]; then
    tests/harness/horizon/setup.sh "$HZ_DIR" down >/dev/null 2>&1 || true
  fi
  if [ "$NOVA_STARTED" = 1 ]; then
    tests/harness/nova/setup.sh "$NOVA_DIR" down >/dev/null 2>&1 || true
  fi
  if [ "$GL_STARTED" = 1 ]; then
    tests/harness/glance/setup.sh "$GL_DIR" "$GL_PORT" down >/dev/null 2>&1 || true
  fi
  if [ "$KS_STARTED" = 1 ]; then
    tests/harness/keystone/setup.sh "$KS_DIR" "$KS_PORT" down >/dev/null 2>&1 || true
  fi
}
trap stop_keystone EXIT
if [ "${FEDGATE_SKIP_KEYSTONE:-0}" = 1 ]; then
  say "FEDGATE_SKIP_KEYSTONE=1: the Keystone end-to-end tests will be skipped"
  unset FEDGATE_E2E_KEYSTONE_URL FEDGATE_E2E_KEYSTONE_UWSGI
else
  say "Keystone (tests/harness/keystone) on 127.0.0.1:$KS_PORT (+1 uwsgi)"
  t=$SECONDS
  KS_STARTED=1
  # The issuers of the test IdPs (bearer tests: 18760/18761; WebSSO tests:
  # 18850/18851; Horizon: 19082; two nodes behind haproxy: 19130) are
  # remote ids of Keystone's IdP egi.eu.
  # Trusted dashboards: the WebSSO tests' stand-in origin and the real
  # Horizon of tests/harness/horizon.
  KEYSTONE_OIDC_ISSUERS=${KEYSTONE_OIDC_ISSUERS:-http://127.0.0.1:18760,http://127.0.0.1:18761,http://127.0.0.1:18850,http://127.0.0.1:18851,http://127.0.0.1:18771,http://127.0.0.1:18772,http://127.0.0.1:19082,http://127.0.0.1:19130} \
  KEYSTONE_TRUSTED_DASHBOARDS=${KEYSTONE_TRUSTED_DASHBOARDS:-https://horizon.test/dashboard/auth/websso/,https://localhost:19080/dashboard/auth/websso/} \
  FEDGATE_KEYSTONE_VENV=${FEDGATE_KEYSTONE_VENV:-$HOME/.cache/fedgate/keystone-venv} \
    tests/harness/keystone/setup.sh "$KS_DIR" "$KS_PORT" up >/dev/null
  # shellcheck disable=SC1091
  . "$KS_DIR/env.sh"
  echo "Keystone ready in $((SECONDS - t)) s: $FEDGATE_E2E_KEYSTONE_URL, uwsgi $FEDGATE_E2E_KEYSTONE_UWSGI" >&2
fi

# ------------------------------------------------------------ Glance
# Glance 33 (tests/harness/glance) against the Keystone above, for the image
# sync (tests/images_glance.rs). Not registered in the catalog.
if [ "${FEDGATE_SKIP_GLANCE:-0}" = 1 ] || [ "${FEDGATE_SKIP_KEYSTONE:-0}" = 1 ]; then
  say "no Glance (FEDGATE_SKIP_GLANCE or FEDGATE_SKIP_KEYSTONE): the Glance sync tests will be skipped"
  unset FEDGATE_GLANCE_URL
else
  say "Glance (tests/harness/glance) on 127.0.0.1:$GL_PORT"
  t=$SECONDS
  GL_STARTED=1
  FEDGATE_GLANCE_VENV=${FEDGATE_GLANCE_VENV:-$HOME/.cache/fedgate/glance-venv} \
    tests/harness/glance/setup.sh "$GL_DIR" "$GL_PORT" up >/dev/null
  # shellcheck disable=SC1091
  . "$GL_DIR/env.sh"
  export FEDGATE_REQUIRE_GLANCE=1
  echo "Glance ready in $((SECONDS - t)) s: $FEDGATE_GLANCE_URL" >&2
fi

# ------------------------------------------------------------ Nova
# Real Nova/Placement/Glance + RabbitMQ with Neutron/Cinder stand-ins,
# against the Keystone above (tests/harness/nova); caso 5.2.2 for the
# differential test. tests/accounting_nova.rs fails, not skips, without it.
unset FEDGATE_E2E_NOVA_ENV
if [ "${FEDGATE_SKIP_NOVA:-0}" = 1 ] || [ -z "${FEDGATE_E2E_KEYSTONE_URL:-}" ]; then
  say "no Nova harness (FEDGATE_SKIP_NOVA=1 or no Keystone): tests/accounting_nova.rs will be skipped"
else
  say "Nova harness (tests/harness/nova) on 127.0.0.1:${FEDGATE_NOVA_BASE:-18650}-"
  t=$SECONDS
  NOVA_STARTED=1
  FEDGATE_NOVA_KEYSTONE_ENV=$KS_DIR/env.sh tests/harness/nova/setup.sh "$NOVA_DIR" up >"$ROOT/target/nova-setup.log" 2>&1 ||
    { tail -30 "$ROOT/target/nova-setup.log" >&2; echo "Nova harness failed (log: target/nova-setup.log)" >&2; exit 1; }
  export FEDGATE_E2E_NOVA_ENV=$NOVA_DIR/env.sh FEDGATE_REQUIRE_NOVA=1
  echo "Nova ready in $((SECONDS - t)) s (log: target/nova-setup.log)" >&2
fi

# ------------------------------------------------------------ Horizon
# The real dashboard (Horizon 27, tests/harness/horizon) on 19080, against
# the Keystone above through the fedgate that tests/horizon_e2e.rs starts
# (19081, IdP 19082). Compute: the Nova harness's when it runs, else a
# stand-in on 19083 registered in the catalog.
unset FEDGATE_E2E_HORIZON_URL
if [ "${FEDGATE_SKIP_HORIZON:-0}" = 1 ] || [ -z "${FEDGATE_E2E_KEYSTONE_URL:-}" ]; then
  say "no Horizon (FEDGATE_SKIP_HORIZON=1 or no Keystone): tests/horizon_e2e.rs will be skipped"
else
  say "Horizon (tests/harness/horizon) on https://localhost:19080/dashboard/"
  t=$SECONDS
  HZ_STARTED=1
  mkdir -p "$ROOT/target"
  KEYSTONE_ENV=$KS_DIR/env.sh tests/harness/horizon/setup.sh "$HZ_DIR" up >"$ROOT/target/horizon-setup.log" 2>&1 ||
    { tail -30 "$ROOT/target/horizon-setup.log" >&2; echo "Horizon harness failed (log: target/horizon-setup.log)" >&2; exit 1; }
  # shellcheck disable=SC1091
  . "$HZ_DIR/env.sh"
  export FEDGATE_REQUIRE_HORIZON=1
  echo "Horizon ready in $((SECONDS - t)) s (compute: $FEDGATE_E2E_HORIZON_COMPUTE; log: target/horizon-setup.log)" >&2
fi

# ------------------------------------------------------------ tests
# tests/accounting.rs fails, rather than skips, when dirq cannot be imported.
export FEDGATE_REQUIRE_DIRQ=1
# tests/multinode.rs fails, rather than skips, when haproxy, memcached,
# redis-server, the IdP harness or the grid tools are missing.
export FEDGATE_REQUIRE_MULTINODE=1
# tests/ams.rs compares its AMS envelope with argo-ams-library's: a venv
# (~/.cache/fedgate/ams-venv, ~10 s once); the test fails when it is missing.
if sh tests/harness/ams/venv.sh >/dev/null; then
  export FEDGATE_REQUIRE_AMS_LIBRARY=1
else
  echo "argo-ams-library venv unavailable (PyPI?): tests/ams.rs skips the envelope comparison" >&2
fi
# tests/packaging.rs: hadolint for the Containerfile (a venv,
# ~/.cache/fedgate/hadolint-venv); as root, the .deb is built (cargo-deb is
# installed into ~/.cargo/bin once, about 3 min), installed with dpkg and
# purged, and a missing tool fails the test instead of skipping it.
if FEDGATE_HADOLINT=$(sh tests/harness/hadolint/venv.sh); then
  export FEDGATE_HADOLINT
else
  echo "hadolint unavailable (PyPI?): tests/packaging.rs skips the Containerfile lint" >&2
fi
if [ "$(id -u)" = 0 ] && [ -n "${FEDGATE_HADOLINT:-}" ] && packaging/build-deb.sh --install-tools; then
  export FEDGATE_REQUIRE_PACKAGING=1
fi
# tests/images_fetch.rs fails, rather than skips, without qemu-img and
# docker-registry; its oras venv is ~/.cache/fedgate/oras-venv.
export FEDGATE_REQUIRE_IMAGE_TOOLS=1
say "cargo test --all-targets --no-fail-fast $*"
t=$SECONDS
LOG=$ROOT/target/test-output.log
mkdir -p "$ROOT/target"
set +e
cargo test --all-targets --no-fail-fast "$@" 2>&1 | tee "$LOG" | grep -a -v '^\[fedgate\]'
rc=${PIPESTATUS[0]}
set -e
read -r passed failed ignored < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) {
    if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } }
  END { print p + 0, f + 0, g + 0 }' "$LOG")
say "summary"
echo "tests: $passed passed, $failed failed, $ignored ignored (cargo test: $((SECONDS - t)) s, total $((SECONDS - T0)) s)"
if [ -n "${FEDGATE_E2E_KEYSTONE_URL:-}" ]; then
  echo "Keystone end-to-end: ran against $FEDGATE_E2E_KEYSTONE_URL and uwsgi://$FEDGATE_E2E_KEYSTONE_UWSGI"
else
  echo "Keystone end-to-end: SKIPPED (no Keystone)"
fi
if [ -n "${FEDGATE_GLANCE_URL:-}" ]; then
  echo "Glance sync: ran against $FEDGATE_GLANCE_URL"
else
  echo "Glance sync: SKIPPED (no Glance)"
fi
if [ -n "${FEDGATE_E2E_NOVA_ENV:-}" ]; then
  echo "Nova end-to-end + cASO differential: ran against $NOVA_DIR"
else
  echo "Nova end-to-end: SKIPPED"
fi
if [ -n "${FEDGATE_E2E_HORIZON_URL:-}" ]; then
  echo "Horizon end-to-end: ran against $FEDGATE_E2E_HORIZON_URL"
else
  echo "Horizon end-to-end: SKIPPED"
fi
grep -a -E '^test .* FAILED$|^    [a-z_:]+$' "$LOG" | sed 's/^/  /' || true
echo "full output (with fedgate logs): $LOG"
[ "$rc" = 0 ] && echo "RESULT: PASS" || echo "RESULT: FAIL (exit $rc)"
exit "$rc"
