#!/usr/bin/env bash
# fedgate's own Glance for the image-plugin tests: glance 33.0.0 from PyPI
# under uWSGI (pyuwsgi), file store, sqlite, keystonemiddleware against an
# EXISTING Keystone (tests/harness/keystone/setup.sh).
#
#   setup.sh WORKDIR PORT [up|down|status]      (default: up)
#
# Keystone's admin credentials come from the environment, as the Keystone
# harness's env.sh exports them (OS_AUTH_URL, OS_PASSWORD, ...); `up` sources
# KEYSTONE_ENV (a path to that env.sh) when OS_AUTH_URL is unset.
# Glance listens on 127.0.0.1:PORT (http-socket). Glance is NOT registered in
# the catalog (another harness may register its own `image` service in the
# same Keystone): clients take the URL from WORKDIR/env.sh.
# `up` is idempotent. WORKDIR/timings.txt records how long each step took.
#
# Environment:
#   FEDGATE_GLANCE_VENV  venv dir (default ~/.cache/fedgate/glance-venv),
#                        created from constraints.txt when missing/incomplete
#   KEYSTONE_ENV         env.sh of the Keystone harness (if OS_AUTH_URL unset)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 2 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
W=$(realpath -m "$1")
PORT=$2
ACTION=${3:-up}
case "$PORT" in '' | *[!0-9]*) echo "PORT must be a number" >&2; exit 2 ;; esac

VENV=${FEDGATE_GLANCE_VENV:-$HOME/.cache/fedgate/glance-venv}
URL="http://127.0.0.1:$PORT"
PIDFILE="$W/run/uwsgi.pid"
SVC_PW=glance-svc-pw
SYNC_PW=sync-pw
TIMINGS=$W/timings.txt

say() { echo "[glance] $*" >&2; }
record() { mkdir -p "$W"; printf '%-32s %5ss\n' "$1" "$2" >>"$TIMINGS"; say "$1: $2 s"; }
pid_alive() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}
# Any HTTP answer (the version list is 300) counts as up.
healthy() { curl -s -o /dev/null --max-time 5 "$URL/" 2>/dev/null; }

stop() {
  local pid kids
  if pid=$(pid_alive); then
    kids=$(ps -o pid= --ppid "$pid" 2>/dev/null | tr '\n' ' ' || true)
    say "stopping uWSGI pid $pid"
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    for k in $pid $kids; do kill -KILL "$k" 2>/dev/null || true; done
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

if [ -z "${OS_AUTH_URL:-}" ] && [ -n "${KEYSTONE_ENV:-}" ]; then
  # shellcheck disable=SC1090
  . "$KEYSTONE_ENV"
fi
[ -n "${OS_AUTH_URL:-}" ] && [ -n "${OS_PASSWORD:-}" ] || {
  say "no Keystone admin credentials: source the env.sh of tests/harness/keystone/setup.sh"; exit 2; }
KS=${OS_AUTH_URL%/}
KS=${KS%/v3}
mkdir -p "$W"/{etc,log,run,db,images,staging,tasks}
echo "# $(date -u +%FT%TZ) setup.sh up" >>"$TIMINGS"

# ------------------------------------------------------------------ venv
want="glance==33.0.0 pyuwsgi"
venv_ok() {
  [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/uwsgi" ] && [ -x "$VENV/bin/glance-manage" ] &&
    "$VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("glance") != "33.0.0")' 2>/dev/null
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
  record "pip install (glance venv)" "$((SECONDS - t0))"
fi

# ------------------------------------------------------------------ Keystone objects
t0=$SECONDS
python3 "$HERE/objects.py" "$SVC_PW" "$SYNC_PW" >"$W/objects.json"
record "keystone objects" "$((SECONDS - t0))"

# ------------------------------------------------------------------ config
cp "$VENV/etc/glance/glance-api-paste.ini" "$W/etc/glance-api-paste.ini"
cat >"$W/etc/glance-api.conf" <<CONF
# written by tests/harness/glance/setup.sh
[DEFAULT]
log_file = $W/log/glance.log
enabled_backends = fs:file
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $W/images
[os_glance_staging_store]
filesystem_store_datadir = $W/staging
[os_glance_tasks_store]
filesystem_store_datadir = $W/tasks
[database]
connection = sqlite:///$W/db/glance.db
[paste_deploy]
flavor = keystone
config_file = $W/etc/glance-api-paste.ini
[keystone_authtoken]
www_authenticate_uri = $KS/v3
auth_url = $KS/v3
auth_type = password
user_domain_id = default
project_domain_id = default
project_name = fedgate-images
username = fedgate-glance-svc
password = $SVC_PW
[oslo_policy]
enforce_new_defaults = true
CONF

cat >"$W/etc/uwsgi.ini" <<CONF
; written by tests/harness/glance/setup.sh
[uwsgi]
module = glance.wsgi.api:application
http-socket = 127.0.0.1:$PORT
; http-socket has no keep-alive: say so, or pooled clients reuse a closed socket
add-header = Connection: close
; image uploads: chunked request bodies, read raw by Glance
http-chunked-input = true
http-raw-body = true
buffer-size = 65535
master = true
processes = 1
threads = 4
enable-threads = true
lazy-apps = true
need-app = true
die-on-term = true
pidfile = $PIDFILE
daemonize = $W/log/uwsgi.log
CONF

cat >"$W/env.sh" <<ENV
# source me (written by tests/harness/glance/setup.sh)
export FEDGATE_GLANCE_URL=$URL
export FEDGATE_GLANCE_AUTH_URL=$KS/v3
export FEDGATE_GLANCE_SYNC_USER=fedgate-sync
export FEDGATE_GLANCE_SYNC_PASSWORD=$SYNC_PW
export FEDGATE_GLANCE_PROJECT=fedgate-images
export FEDGATE_GLANCE_VO_A_PROJECTS=vo-a-1,vo-a-2
export FEDGATE_GLANCE_VO_B_PROJECTS=vo-b-1
ENV

# ------------------------------------------------------------------ database, server
if pid=$(pid_alive) && healthy; then
  say "Glance already running (pid $pid)"
else
  stop
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    say "port $PORT is taken by another process"; exit 1
  fi
  t0=$SECONDS
  "$VENV/bin/glance-manage" --config-file "$W/etc/glance-api.conf" db_sync >>"$W/log/manage.log" 2>&1
  "$VENV/bin/python" -c 'import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")' "$W/db/glance.db"
  record "glance db_sync" "$((SECONDS - t0))"
  t0=$SECONDS
  # pyuwsgi runs inside Python: ini `env =` lines would not reach os.environ
  OS_GLANCE_CONFIG_DIR="$W/etc" "$VENV/bin/uwsgi" --ini "$W/etc/uwsgi.ini"
  until healthy; do
    if [ $((SECONDS - t0)) -gt 90 ] || { [ -f "$PIDFILE" ] && ! pid_alive >/dev/null; }; then
      say "Glance did not come up; end of $W/log/uwsgi.log:"
      tail -30 "$W/log/uwsgi.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  record "start glance -> HTTP" "$((SECONDS - t0))"
fi
say "Glance on $URL (Keystone $KS); env: $W/env.sh"
echo "$URL"
