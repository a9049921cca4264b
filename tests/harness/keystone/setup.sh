#!/usr/bin/env bash
# fedgate's own Keystone for the end-to-end tests: keystone 30.0.0 from PyPI
# under uWSGI (sqlite in WAL mode, fernet tokens), with the federation objects
# an EGI Federated Cloud site has (IdP egi.eu, protocols openid and mapped).
#
#   setup.sh WORKDIR PORT [up|down|status]      (default: up)
#
# PORT is uWSGI's http-socket (curl, admin calls, the http:// upstream kind);
# PORT+1 its uwsgi-socket (the uwsgi:// upstream kind: environ set by the
# front end, as Apache mod_proxy_uwsgi does). Both bind 127.0.0.1.
# `up` is idempotent: an existing venv, database and keys are reused and a
# healthy running server is left alone. The last stdout line is the URL.
# WORKDIR/env.sh exports the admin credentials and both addresses.
#
# Environment:
#   FEDGATE_KEYSTONE_VENV  venv dir (default ~/.cache/fedgate/keystone-venv),
#                          created from constraints.txt when missing/incomplete
#   KEYSTONE_OIDC_ISSUERS  comma list: remote_ids of IdP egi.eu
#   KEYSTONE_TRUSTED_DASHBOARDS comma list: [federation] trusted_dashboard
#                               (one line each; KEYSTONE_TRUSTED_DASHBOARD,
#                               a single URL, is still read)
#   KEYSTONE_ADMIN_PASSWORD     (admin-pw)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 2 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
WORKDIR=$(realpath -m "$1")
PORT=$2
ACTION=${3:-up}
case "$PORT" in '' | *[!0-9]*) echo "PORT must be a number" >&2; exit 2 ;; esac
UPORT=$((PORT + 1))

VENV=${FEDGATE_KEYSTONE_VENV:-$HOME/.cache/fedgate/keystone-venv}
ISSUERS=${KEYSTONE_OIDC_ISSUERS:-http://127.0.0.1:18500,https://127.0.0.1:18500,https://aai.egi.test/auth/realms/egi}
DASHBOARDS=${KEYSTONE_TRUSTED_DASHBOARDS:-${KEYSTONE_TRUSTED_DASHBOARD:-https://horizon.test/dashboard/auth/websso/}}
ADMIN_PW=${KEYSTONE_ADMIN_PASSWORD:-admin-pw}
URL="http://127.0.0.1:$PORT"
PIDFILE="$WORKDIR/run/uwsgi.pid"

say() { echo "[keystone] $*" >&2; }
pid_alive() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}
healthy() { curl -fsS -o /dev/null --max-time 5 "$URL/v3" 2>/dev/null; }

stop() {
  local pid
  if pid=$(pid_alive); then
    say "stopping uWSGI pid $pid"
    kill -TERM "$pid" 2>/dev/null || true # die-on-term: TERM stops, not reloads
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

case "$ACTION" in
  down) stop; exit 0 ;;
  status)
    if pid=$(pid_alive) && healthy; then echo "running pid $pid $URL"; exit 0; fi
    echo "not running"; exit 1 ;;
  up) ;;
  *) echo "unknown action $ACTION (up|down|status)" >&2; exit 2 ;;
esac

# ------------------------------------------------------------------ venv
want="keystone==30.0.0 pyuwsgi python-openstackclient"
venv_ok() {
  [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/uwsgi" ] && [ -x "$VENV/bin/openstack" ] &&
    "$VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("keystone") != "30.0.0")' 2>/dev/null
}
if venv_ok; then
  say "reusing venv $VENV"
else
  say "creating venv $VENV ($want), pinned by constraints.txt"
  t0=$SECONDS
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -c "$HERE/constraints.txt" $want
  venv_ok || { say "venv is incomplete after pip install"; exit 1; }
  say "venv ready in $((SECONDS - t0)) s"
fi
PY="$VENV/bin/python"

# ------------------------------------------------------------------ config
mkdir -p "$WORKDIR"/{etc,log,run}
cp "$VENV/etc/keystone/sso_callback_template.html" "$WORKDIR/etc/sso_callback_template.html" 2>/dev/null ||
  cat >"$WORKDIR/etc/sso_callback_template.html" <<'EOF'
<!DOCTYPE html>
<html><body><form id="sso" action="$host" method="post">
<input type="hidden" name="token" id="token" value="$token"></form>
<script>document.forms['sso'].submit();</script></body></html>
EOF

cat >"$WORKDIR/etc/keystone.conf" <<EOF
# written by tests/harness/keystone/setup.sh
[DEFAULT]
log_file = $WORKDIR/log/keystone.log

[database]
connection = sqlite:///$WORKDIR/keystone.db

[token]
provider = fernet

[fernet_tokens]
key_repository = $WORKDIR/fernet-keys

[fernet_receipts]
key_repository = $WORKDIR/fernet-keys

[credential]
key_repository = $WORKDIR/credential-keys

[auth]
# EGI's list: no 'external', so REMOTE_USER alone never logs anybody in.
methods = password,token,openid,mapped,application_credential

[openid]
remote_id_attribute = HTTP_OIDC_ISS

[federation]
# No global remote_id_attribute: protocol 'mapped' (VOMS) carries no issuer.
$(tr ',' '\n' <<<"$DASHBOARDS" | sed '/^$/d; s/^/trusted_dashboard = /')
sso_callback_template = $WORKDIR/etc/sso_callback_template.html

[oslo_middleware]
enable_proxy_headers_parsing = true

[cache]
enabled = false
EOF

cat >"$WORKDIR/etc/uwsgi.ini" <<EOF
; written by tests/harness/keystone/setup.sh
[uwsgi]
module = keystone.wsgi.api:application
http-socket = 127.0.0.1:$PORT
uwsgi-socket = 127.0.0.1:$UPORT
; the same protocol on a unix socket (fedgate's uwsgi:///path upstream)
uwsgi-socket = $WORKDIR/run/uwsgi.sock
chmod-socket = 660
; uWSGI's http-socket has no keep-alive yet answers HTTP/1.1 without saying
; so, then closes: a pooling HTTP client (fedgate's http:// upstream) can
; send its next request into the closing socket. Say it explicitly.
add-header = Connection: close
; the uwsgi vars block holds every environ variable: 65535 is the protocol
; maximum and what real entitlement lists need (the default is 4096)
buffer-size = 65535
master = true
processes = 1
; one request at a time: sqlite (even in WAL mode) answers concurrent
; writers (two federated logins shadowing users) with "database is locked"
threads = 1
enable-threads = true
lazy-apps = true
need-app = true
die-on-term = true
pidfile = $PIDFILE
daemonize = $WORKDIR/log/uwsgi.log
EOF

cat >"$WORKDIR/env.sh" <<EOF
# source me (written by setup.sh)
export OS_AUTH_URL=$URL/v3
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=admin
export OS_PASSWORD=$ADMIN_PW
export OS_USER_DOMAIN_ID=default
export OS_PROJECT_NAME=admin
export OS_PROJECT_DOMAIN_ID=default
export FEDGATE_E2E_KEYSTONE_URL=$URL
export FEDGATE_E2E_KEYSTONE_UWSGI=127.0.0.1:$UPORT
export FEDGATE_E2E_KEYSTONE_UWSGI_UNIX=$WORKDIR/run/uwsgi.sock
export FEDGATE_E2E_KEYSTONE_VENV=$VENV
export FEDGATE_E2E_OIDC_ISSUER=${ISSUERS%%,*}
EOF

# ------------------------------------------------------------------ database, keys
if pid=$(pid_alive) && healthy; then
  say "Keystone already running (pid $pid)"
else
  stop
  for p in "$PORT" "$UPORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      say "port $p is taken by another process"; exit 1
    fi
  done
  KM=("$VENV/bin/keystone-manage" --config-file "$WORKDIR/etc/keystone.conf")
  t0=$SECONDS
  "${KM[@]}" db_sync >>"$WORKDIR/log/manage.log" 2>&1
  # WAL: concurrent readers do not make writers fail with "database is locked"
  "$PY" -c 'import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")' "$WORKDIR/keystone.db"
  if [ ! -e "$WORKDIR/fernet-keys/0" ]; then
    "${KM[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" >>"$WORKDIR/log/manage.log" 2>&1
    "${KM[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" >>"$WORKDIR/log/manage.log" 2>&1
  fi
  "${KM[@]}" bootstrap --bootstrap-password "$ADMIN_PW" --bootstrap-region-id RegionOne \
    --bootstrap-admin-url "$URL/v3" --bootstrap-internal-url "$URL/v3" --bootstrap-public-url "$URL/v3" \
    >>"$WORKDIR/log/manage.log" 2>&1
  say "database and keys ready in $((SECONDS - t0)) s"

  # pyuwsgi runs inside Python: ini `env =` lines would not reach os.environ
  OS_KEYSTONE_CONFIG_DIR="$WORKDIR/etc" "$VENV/bin/uwsgi" --ini "$WORKDIR/etc/uwsgi.ini"
  t0=$SECONDS
  until healthy; do
    if [ $((SECONDS - t0)) -gt 90 ] || { [ -f "$PIDFILE" ] && ! pid_alive >/dev/null; }; then
      say "Keystone did not come up; end of $WORKDIR/log/uwsgi.log:"
      tail -30 "$WORKDIR/log/uwsgi.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  say "uWSGI answering after $((SECONDS - t0)) s"
fi

# ------------------------------------------------------------------ federation
"$PY" "$HERE/federation.py" --url "$URL" --admin-password "$ADMIN_PW" --issuers "$ISSUERS" \
  >"$WORKDIR/federation.json"
say "federation objects in place; http $URL, uwsgi 127.0.0.1:$UPORT; env: $WORKDIR/env.sh"
echo "$URL"
