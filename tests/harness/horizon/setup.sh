#!/usr/bin/env bash
# The real OpenStack dashboard (Horizon 27.0.0 from PyPI, Django 5.2) for
# fedgate's WebSSO end-to-end test (tests/horizon_e2e.rs). Test tooling.
#
#   setup.sh WORKDIR [up|down|status]      (default: up)
#
# `up` starts Horizon under gunicorn (TLS, 1 worker x 4 threads) on
# https://localhost:$HORIZON_PORT/dashboard/ with WebSSO on and
# OPENSTACK_KEYSTONE_URL = fedgate at https://localhost:$FEDGATE_PORT/v3.
# fedgate and the IdP are NOT started here: the test starts them (the
# binary under test, tests/harness/idp) on those fixed ports; Horizon only
# talks to fedgate when somebody logs in.
# Keystone is an EXISTING one (tests/harness/keystone): KEYSTONE_ENV is its
# env.sh. Its [federation] trusted_dashboard must list
# https://localhost:$HORIZON_PORT/dashboard/auth/websso/ and its IdP egi.eu
# the issuer http://127.0.0.1:$IDP_PORT (scripts/test.sh sets both).
# Horizon's overview needs `compute` in the catalog: when the catalog already
# has one that is not ours (the Nova harness, tests/harness/nova), Horizon
# uses that real Nova; otherwise compute_standin.py is started and registered
# (RegionOne, public + internal). The identity endpoints are left alone.
# WORKDIR/pki holds a throwaway CA and a localhost certificate, served by
# Horizon and by the test's fedgate. WORKDIR/env.sh exports what the test
# needs; WORKDIR/timings.txt records how long each step took.
#
# Environment (defaults):
#   FEDGATE_HORIZON_VENV  (~/.cache/fedgate/horizon-venv) created from
#                         constraints.txt when missing or incomplete
#   KEYSTONE_ENV          env.sh of the Keystone harness (needed by `up`)
#   HORIZON_PORT=19080 FEDGATE_PORT=19081 IDP_PORT=19082 COMPUTE_PORT=19083
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 1 ] || { sed -n '2,29p' "$0" >&2; exit 2; }
W=$(realpath -m "$1")
ACTION=${2:-up}
VENV=${FEDGATE_HORIZON_VENV:-$HOME/.cache/fedgate/horizon-venv}
HORIZON_PORT=${HORIZON_PORT:-19080}
FEDGATE_PORT=${FEDGATE_PORT:-19081}
IDP_PORT=${IDP_PORT:-19082}
COMPUTE_PORT=${COMPUTE_PORT:-19083}
HORIZON_URL=https://localhost:$HORIZON_PORT/dashboard/
FEDGATE_URL=https://localhost:$FEDGATE_PORT
COMPUTE_URL=http://127.0.0.1:$COMPUTE_PORT/v2.1
RUN=$W/run; LOGS=$W/logs; ETC=$W/etc; PKI=$W/pki
TIMINGS=$W/timings.txt

say() { echo "[horizon] $*" >&2; }
record() { mkdir -p "$W"; printf '%-34s %6ss\n' "$1" "$2" >>"$TIMINGS"; say "$1: $2 s"; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A pid file's process, if it is alive and its command line contains PATTERN.
ours() {
  local pid
  pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" && echo "$pid"
}
stop_pidfile() { # FILE PATTERN NAME
  local pid
  if pid=$(ours "$1" "$2"); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    say "$3 stopped (pid $pid)"
  fi
  rm -f "$1"
}

down() {
  stop_pidfile "$RUN/gunicorn.pid" "horizon-e2e" "Horizon (gunicorn)"
  stop_pidfile "$RUN/compute.pid" "compute_standin.py $COMPUTE_PORT" "compute stand-in"
}

case "$ACTION" in
  down) down; exit 0 ;;
  status)
    for s in "gunicorn.pid|horizon-e2e|horizon" "compute.pid|compute_standin.py|compute stand-in"; do
      IFS='|' read -r f pat name <<<"$s"
      if pid=$(ours "$RUN/$f" "$pat"); then echo "$name running pid $pid"; else echo "$name stopped"; fi
    done
    exit 0 ;;
  up) ;;
  *) echo "unknown action $ACTION (up|down|status)" >&2; exit 2 ;;
esac

mkdir -p "$RUN" "$LOGS" "$ETC" "$PKI"
echo "# $(date -u +%FT%TZ) up" >>"$TIMINGS"
T0=$SECONDS
if [ -z "${OS_AUTH_URL:-}" ]; then
  [ -n "${KEYSTONE_ENV:-}" ] && [ -f "$KEYSTONE_ENV" ] || { say "KEYSTONE_ENV (the Keystone harness's env.sh) is needed"; exit 1; }
  # shellcheck disable=SC1090
  . "$KEYSTONE_ENV"
fi

# ------------------------------------------------------------------ PKI
# One CA; one certificate for localhost / 127.0.0.1, for Horizon and fedgate.
# fedgate's ca_dir (it asks no client certificate) holds the CA, hashed.
if [ ! -f "$PKI/host.pem" ] || ! openssl x509 -checkend 86400 -noout -in "$PKI/host.pem" >/dev/null; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/O=fedgate test/CN=Horizon e2e CA" \
    -keyout "$PKI/ca.key" -out "$PKI/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=fedgate test/CN=localhost" \
    -keyout "$PKI/host.key" -out "$PKI/host.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >"$PKI/ext.cnf"
  openssl x509 -req -in "$PKI/host.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 30 -extfile "$PKI/ext.cnf" -out "$PKI/host.pem" 2>/dev/null
  rm -rf "$PKI/certificates"; mkdir -p "$PKI/certificates"
  cp "$PKI/ca.pem" "$PKI/certificates/$(openssl x509 -hash -noout -in "$PKI/ca.pem").0"
fi

# ------------------------------------------------------------------ venv
want="horizon==27.0.0 gunicorn"
venv_ok() {
  [ -x "$VENV/bin/gunicorn" ] &&
    "$VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("horizon") != "27.0.0")' 2>/dev/null
}
if venv_ok; then
  say "reusing venv $VENV"
else
  say "creating venv $VENV ($want), pinned by constraints.txt"
  t=$SECONDS
  rm -rf "$VENV"; mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -c "$HERE/constraints.txt" $want >"$LOGS/pip.log" 2>&1 ||
    { tail -20 "$LOGS/pip.log" >&2; exit 1; }
  venv_ok || { say "venv is incomplete after pip install"; exit 1; }
  record "pip install horizon (venv)" $((SECONDS - t))
fi

# ------------------------------------------------------------------ catalog
stop_pidfile "$RUN/compute.pid" "compute_standin.py $COMPUTE_PORT" "compute stand-in"
t=$SECONDS
compute=$(python3 "$HERE/catalog.py" "$OS_AUTH_URL" "$COMPUTE_URL" check)
if [ "$compute" = standin ]; then
  port_free "$COMPUTE_PORT" || { say "port $COMPUTE_PORT is taken"; exit 1; }
  nohup python3 "$HERE/compute_standin.py" "$COMPUTE_PORT" "$LOGS/compute.log" >"$LOGS/compute.out" 2>&1 </dev/null &
  echo $! >"$RUN/compute.pid"
  for _ in $(seq 50); do curl -s -o /dev/null "$COMPUTE_URL" && break; sleep 0.1; done
  python3 "$HERE/catalog.py" "$OS_AUTH_URL" "$COMPUTE_URL" register >/dev/null
  say "compute: the stand-in $COMPUTE_URL"
else
  say "compute: the catalog's own ($compute)"
fi
record "compute in the catalog" $((SECONDS - t))

# ------------------------------------------------------------------ settings
[ -f "$ETC/secret_key" ] || python3 -c 'import secrets; print(secrets.token_urlsafe(48))' >"$ETC/secret_key"
python3 - "$HERE/local_settings.py.tmpl" "$ETC/local_settings.py" \
  "SECRET_KEY=$(cat "$ETC/secret_key")" "FEDGATE_URL=$FEDGATE_URL" "CACERT=$PKI/ca.pem" \
  "STATIC_ROOT=$W/static" "LOG_FILE=$LOGS/horizon.log" "HORIZON_PORT=$HORIZON_PORT" <<'PY'
import re, sys
src, out, *kv = sys.argv[1:]
t = open(src).read()
for item in kv:
    k, v = item.split('=', 1)
    t = t.replace('@' + k + '@', v)
left = re.findall(r'@[A-Z_]+@', t)
if left:
    sys.exit(f'{src}: unreplaced {left}')
open(out, 'w').write(t)
PY
# The settings module imports local_settings from its package: a symlink in
# the venv points at this WORKDIR's copy.
SP=$("$VENV/bin/python" -c 'import openstack_dashboard, os; print(os.path.dirname(openstack_dashboard.__file__))')
ln -sf "$ETC/local_settings.py" "$SP/local/local_settings.py"
stamp="horizon 27.0.0 /dashboard/ $(sha256sum "$HERE/local_settings.py.tmpl" | cut -c1-16)"
if [ "$(cat "$W/static/.stamp" 2>/dev/null)" != "$stamp" ]; then
  t=$SECONDS
  export DJANGO_SETTINGS_MODULE=openstack_dashboard.settings
  "$VENV/bin/python" -m django collectstatic --noinput -v0 >"$LOGS/collectstatic.log" 2>&1 ||
    { tail -20 "$LOGS/collectstatic.log" >&2; exit 1; }
  "$VENV/bin/python" -m django compress --force >"$LOGS/compress.log" 2>&1 ||
    { tail -20 "$LOGS/compress.log" >&2; exit 1; }
  echo "$stamp" >"$W/static/.stamp"
  record "collectstatic + compress" $((SECONDS - t))
fi

# ------------------------------------------------------------------ gunicorn
stop_pidfile "$RUN/gunicorn.pid" "horizon-e2e" "Horizon (gunicorn)"
port_free "$HORIZON_PORT" || { say "port $HORIZON_PORT is taken"; exit 1; }
t=$SECONDS
(cd "$HERE" && DJANGO_SETTINGS_MODULE=openstack_dashboard.settings exec nohup "$VENV/bin/gunicorn" \
  --pythonpath "$HERE" --bind "127.0.0.1:$HORIZON_PORT" --certfile "$PKI/host.pem" --keyfile "$PKI/host.key" \
  --workers 1 --threads 4 --timeout 120 --access-logfile "$LOGS/horizon-access.log" \
  --error-logfile "$LOGS/gunicorn.log" --name horizon-e2e horizon_wsgi:application \
  </dev/null >>"$LOGS/gunicorn.out" 2>&1) &
echo $! >"$RUN/gunicorn.pid"
code=000
for _ in $(seq 300); do
  code=$(curl -s -o "$LOGS/login-page.html" -w '%{http_code}' --cacert "$PKI/ca.pem" "${HORIZON_URL}auth/login/" || true)
  [ "$code" = 200 ] && break
  ours "$RUN/gunicorn.pid" horizon-e2e >/dev/null || { say "gunicorn died"; tail -30 "$LOGS/gunicorn.log" >&2; exit 1; }
  sleep 0.2
done
[ "$code" = 200 ] || { say "Horizon login page: HTTP $code"; tail -30 "$LOGS/horizon.log" "$LOGS/gunicorn.log" >&2; exit 1; }
record "gunicorn start -> login page 200" $((SECONDS - t))

cat >"$W/env.sh" <<EOF
# source me (written by tests/harness/horizon/setup.sh)
export FEDGATE_E2E_HORIZON_URL=$HORIZON_URL
export FEDGATE_E2E_HORIZON_PKI=$PKI
export FEDGATE_E2E_HORIZON_FEDGATE_PORT=$FEDGATE_PORT
export FEDGATE_E2E_HORIZON_IDP_PORT=$IDP_PORT
export FEDGATE_E2E_HORIZON_COMPUTE=$compute
export FEDGATE_E2E_HORIZON_LOGS=$LOGS
EOF
record "total up" $((SECONDS - T0))
echo "$HORIZON_URL"
