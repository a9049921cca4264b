#!/usr/bin/env bash
# fedgate's own Nova harness for the accounting tests: real Placement 16,
# Glance 33 and Nova 34 (API, conductor, scheduler, compute with the fake
# virt driver) from PyPI, a private RabbitMQ (Debian), and stand-ins for
# Neutron and Cinder (see README.md), all on 127.0.0.1 with sqlite, in front
# of an EXISTING Keystone (the project's, tests/harness/keystone/setup.sh).
#
#   setup.sh WORKDIR [up|down|status]        (default: up)
#
# Keystone: admin credentials from the environment (OS_AUTH_URL, OS_USERNAME,
# OS_PASSWORD, OS_PROJECT_NAME, OS_USER_DOMAIN_ID, OS_PROJECT_DOMAIN_ID), or
# from the file FEDGATE_NOVA_KEYSTONE_ENV (the env.sh the Keystone harness
# writes). Ports (FEDGATE_NOVA_BASE, default 18650):
#   BASE+0 RabbitMQ AMQP (+1 epmd, +2 Erlang distribution)
#   BASE+3 Placement  BASE+4 Glance  BASE+5 Nova API (/v2.1)
#   BASE+6 Neutron stand-in  BASE+7 Cinder stand-in (/v3/<project>)
# `up` is idempotent (running services are left alone, objects re-applied);
# `down` stops what this WORKDIR started, by pid. WORKDIR/env.sh exports
# FEDGATE_E2E_NOVA_* (for tests/accounting_nova.rs) and the admin OS_*.
# Environment: FEDGATE_NOVA_VENV (~/.cache/fedgate/nova-venv), created from
#   constraints.txt when missing; FEDGATE_CASO_VENV (~/.cache/fedgate/caso-venv):
#   caso 5.2.2 for the differential test (installed by `up` unless
#   FEDGATE_NOVA_NO_CASO=1).
set -euo pipefail

[ $# -ge 1 ] || { sed -n '2,25p' "$0" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=$(realpath -m "$1")
ACTION=${2:-up}
BASE=${FEDGATE_NOVA_BASE:-18650}
case "$BASE" in '' | *[!0-9]*) echo "FEDGATE_NOVA_BASE must be a number" >&2; exit 2 ;; esac
RABBIT_PORT=$BASE PLACEMENT_PORT=$((BASE + 3)) GLANCE_PORT=$((BASE + 4))
NOVA_PORT=$((BASE + 5)) NEUTRON_PORT=$((BASE + 6)) CINDER_PORT=$((BASE + 7))
VENV=${FEDGATE_NOVA_VENV:-$HOME/.cache/fedgate/nova-venv}
CASO_VENV=${FEDGATE_CASO_VENV:-$HOME/.cache/fedgate/caso-venv}
SERVICE_PW=service-pw
H=http://127.0.0.1
TRANSPORT="rabbit://guest:guest@127.0.0.1:$RABBIT_PORT/"
PINS="nova==34.0.0 openstack-placement==16.0.0 glance==33.0.0 pyuwsgi==2.0.30.post1 python-openstackclient==10.5.0"
UWSGI_SERVICES=(placement glance nova-api)
DAEMONS=(neutron-standin cinder-standin nova-conductor nova-scheduler nova-compute)
TIMINGS=$W/timings.txt

log() { echo "[nova] $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
record() { printf '%-34s %6ss\n' "$1" "$2" >> "$TIMINGS"; log "$1: ${2}s"; }
pid_of() { [ -f "$W/run/$1.pid" ] && local p && p=$(cat "$W/run/$1.pid") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"; }
wait_http() {  # URL SECONDS: any HTTP answer (even 401) counts as up
  local i
  for i in $(seq 1 $(($2 * 5))); do
    curl -s -o /dev/null --max-time 3 "$1" && return 0
    sleep 0.2
  done
  return 1
}

# Stop services by their recorded pids (and each pid's direct children:
# oslo.service and uWSGI workers): signal all, wait up to 15 s, then KILL.
# uWSGI wants SIGINT (SIGTERM = reload).
stop_all() {
  local name sig pid kids waitlist=() k
  for name in "$@"; do
    sig=TERM
    case " ${UWSGI_SERVICES[*]} " in *" $name "*) sig=INT ;; esac
    if pid=$(pid_of "$name"); then
      kids=$(ps -o pid= --ppid "$pid" 2>/dev/null | tr '\n' ' ' || true)
      log "stopping $name (pid $pid${kids:+, children $kids})"
      kill -"$sig" "$pid" 2>/dev/null || true
      # shellcheck disable=SC2206
      waitlist+=("$pid" $kids)
    fi
    rm -f "$W/run/$name.pid"
  done
  [ ${#waitlist[@]} -gt 0 ] || return 0
  for _ in $(seq 1 150); do
    local alive=0
    for k in "${waitlist[@]}"; do kill -0 "$k" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.1
  done
  for k in "${waitlist[@]}"; do kill -KILL "$k" 2>/dev/null || true; done
}

down() {
  stop_all nova-compute nova-scheduler nova-conductor neutron-standin cinder-standin
  stop_all nova-api glance placement
  "$HERE/rabbitmq.sh" "$W" "$RABBIT_PORT" down
}

status() {
  local rc=0 n p
  "$HERE/rabbitmq.sh" "$W" "$RABBIT_PORT" status || rc=1
  for n in "${UWSGI_SERVICES[@]}" "${DAEMONS[@]}"; do
    if p=$(pid_of "$n"); then echo "$n running pid $p"; else echo "$n NOT running"; rc=1; fi
  done
  return $rc
}

case "$ACTION" in
  down) [ -d "$W" ] && down; exit 0 ;;
  status) status; exit $? ;;
  up) ;;
  *) echo "unknown action $ACTION (up|down|status)" >&2; exit 2 ;;
esac

# ------------------------------------------------------------------ Keystone
if [ -n "${FEDGATE_NOVA_KEYSTONE_ENV:-}" ]; then
  # shellcheck disable=SC1090
  . "$FEDGATE_NOVA_KEYSTONE_ENV"
fi
: "${OS_AUTH_URL:?no Keystone: set OS_* admin credentials or FEDGATE_NOVA_KEYSTONE_ENV}"
: "${OS_USERNAME:?}" "${OS_PASSWORD:?}"
export OS_PROJECT_NAME=${OS_PROJECT_NAME:-admin} OS_USER_DOMAIN_ID=${OS_USER_DOMAIN_ID:-default}
export OS_PROJECT_DOMAIN_ID=${OS_PROJECT_DOMAIN_ID:-default} OS_IDENTITY_API_VERSION=3
export OS_REGION_NAME=${OS_REGION_NAME:-RegionOne}
KS=${OS_AUTH_URL%/}; KS=${KS%/v3}/v3
curl -fsS -o /dev/null --max-time 10 "$KS" || { log "Keystone $KS does not answer"; exit 1; }

mkdir -p "$W"/{etc/placement,etc/glance,etc/nova,db,log,run,glance/images,glance/staging,glance/tasks,nova/state,nova/instances,nova/lock}
T_ALL=$(now)
echo "# $(date -u +%FT%TZ) setup.sh up" >> "$TIMINGS"

# ------------------------------------------------------------------ 1. venvs
venv_ok() { [ "$(cat "$VENV/.harness-stamp" 2>/dev/null)" = "$PINS" ] && [ -x "$VENV/bin/nova-api" ] && [ -x "$VENV/bin/uwsgi" ]; }
if ! venv_ok; then
  if [ -x "$VENV/bin/nova-manage" ] && [ -x "$VENV/bin/uwsgi" ] && [ -x "$VENV/bin/openstack" ] &&
    "$VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("nova") != "34.0.0")' 2>/dev/null; then
    echo "$PINS" > "$VENV/.harness-stamp"
  else
    T=$(now); log "installing into $VENV: $PINS"
    rm -rf "$VENV"; mkdir -p "$(dirname "$VENV")"; python3 -m venv "$VENV"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install -q --disable-pip-version-check -c "$HERE/constraints.txt" $PINS
    echo "$PINS" > "$VENV/.harness-stamp"
    record "pip install (nova venv)" "$(since "$T")"
  fi
fi
if [ "${FEDGATE_NOVA_NO_CASO:-0}" != 1 ] && [ ! -x "$CASO_VENV/bin/caso-extract" ]; then
  T=$(now); log "installing caso==5.2.2 into $CASO_VENV"
  rm -rf "$CASO_VENV"; mkdir -p "$(dirname "$CASO_VENV")"; python3 -m venv "$CASO_VENV"
  "$CASO_VENV/bin/pip" install -q --disable-pip-version-check caso==5.2.2
  record "pip install caso==5.2.2" "$(since "$T")"
fi
B=$VENV/bin

# ------------------------------------------------------------------ 2. config
authtoken() {  # keystonemiddleware / keystoneauth password auth as service user $1
  cat <<EOF
www_authenticate_uri = $KS
auth_url = $KS
auth_type = password
user_domain_id = default
project_domain_id = default
project_name = service
username = $1
password = $SERVICE_PW
region_name = $OS_REGION_NAME
EOF
}
ksauth() { authtoken "$1" | grep -v www_authenticate_uri; echo "valid_interfaces = public"; }

cat > "$W/etc/placement/placement.conf" <<EOF
[DEFAULT]
log_file = $W/log/placement.log
[api]
auth_strategy = keystone
[keystone_authtoken]
$(authtoken placement)
[placement_database]
connection = sqlite:///$W/db/placement.db
EOF

cp "$VENV/etc/glance/glance-api-paste.ini" "$W/etc/glance/glance-api-paste.ini"
cat > "$W/etc/glance/glance-api.conf" <<EOF
[DEFAULT]
log_file = $W/log/glance.log
enabled_backends = fs:file
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $W/glance/images
[os_glance_staging_store]
filesystem_store_datadir = $W/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = $W/glance/tasks
[database]
connection = sqlite:///$W/db/glance.db
[paste_deploy]
flavor = keystone
config_file = $W/etc/glance/glance-api-paste.ini
[keystone_authtoken]
$(authtoken glance)
[oslo_policy]
enforce_new_defaults = true
EOF

cp "$VENV/etc/nova/api-paste.ini" "$W/etc/nova/api-paste.ini"
cat > "$W/etc/nova/nova.conf" <<EOF
[DEFAULT]
host = aio
my_ip = 127.0.0.1
state_path = $W/nova/state
instances_path = $W/nova/instances
transport_url = $TRANSPORT
# FakeDriver resources with a stable node UUID (state_path/compute_id): the
# plain fake.FakeDriver invents one per process and refuses a second start
compute_driver = fake.FakeDriverWithoutFakeNodes
# the fake driver forgets its instances on restart: no power-state sync
sync_power_state_interval = -1
# do not poll the Neutron stand-in for every instance's ports
heal_instance_info_cache_interval = -1
use_rootwrap_daemon = false
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $W/etc/nova/api-paste.ini
[api_database]
connection = sqlite:///$W/db/nova_api.db
[database]
connection = sqlite:///$W/db/nova_cell1.db
[keystone_authtoken]
$(authtoken nova)
service_token_roles_required = true
[service_user]
send_service_user_token = true
$(ksauth nova)
[placement]
$(ksauth nova)
[glance]
valid_interfaces = public
region_name = $OS_REGION_NAME
[neutron]
$(ksauth nova)
[cinder]
os_region_name = $OS_REGION_NAME
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 10
[oslo_concurrency]
lock_path = $W/nova/lock
[oslo_messaging_notifications]
driver = noop
[notifications]
notify_on_state_change = vm_and_task_state
[vnc]
enabled = false
EOF
# nova-compute must not see the database sections ("No DB access allowed")
awk '/^\[/ { skip = ($0 == "[api_database]" || $0 == "[database]") } !skip' \
  "$W/etc/nova/nova.conf" > "$W/etc/nova/nova-compute.conf"

uwsgi_ini() {  # NAME PORT MODULE [extra lines...]
  local name=$1 port=$2 module=$3; shift 3
  {
    echo "[uwsgi]"
    echo "module = $module"
    echo "http-socket = 127.0.0.1:$port"
    echo "master = true"
    echo "processes = 1"
    echo "threads = 4"
    echo "enable-threads = true"
    echo "lazy-apps = true"
    echo "need-app = true"
    echo "die-on-term = true"
    echo "buffer-size = 65535"
    # http-socket has no keep-alive: say so, or pooled clients reuse a
    # closed connection ("Connection reset by peer")
    echo "add-header = Connection: close"
    echo "pidfile = $W/run/$name.pid"
    echo "daemonize = $W/log/$name-uwsgi.log"
    printf '%s\n' "$@"
  } > "$W/etc/$name-uwsgi.ini"
}
uwsgi_ini placement "$PLACEMENT_PORT" placement.wsgi.api:application
uwsgi_ini glance "$GLANCE_PORT" glance.wsgi.api:application "http-chunked-input = true" "http-raw-body = true"
uwsgi_ini nova-api "$NOVA_PORT" nova.wsgi.osapi_compute:application

start_uwsgi() {  # NAME HEALTH_URL VAR=VALUE...
  local name=$1 url=$2 T; shift 2
  if pid_of "$name" >/dev/null && wait_http "$url" 1; then log "$name already running"; return; fi
  stop_all "$name"
  T=$(now)
  env "$@" "$B/uwsgi" --ini "$W/etc/$name-uwsgi.ini"
  if ! wait_http "$url" 90; then log "$name did not come up:"; tail -30 "$W/log/$name-uwsgi.log" >&2; exit 1; fi
  record "start $name" "$(since "$T")"
}
start_daemon() {  # NAME CMD...
  local name=$1; shift
  if pid_of "$name" >/dev/null; then log "$name already running"; return; fi
  setsid nohup "$@" >> "$W/log/$name.out" 2>&1 < /dev/null &
  echo $! > "$W/run/$name.pid"
  log "started $name (pid $!)"
}
NM=("$B/nova-manage" --config-file "$W/etc/nova/nova.conf")
sqlite_wal() { for db in "$@"; do "$B/python" -c 'import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")' "$db"; done; }
export PATH="$B:$PATH" PLACEMENT_PORT GLANCE_PORT NOVA_PORT NEUTRON_PORT CINDER_PORT

# ------------------------------------------------------------------ 3. RabbitMQ
T=$(now)
"$HERE/rabbitmq.sh" "$W" "$RABBIT_PORT" up
record "rabbitmq up" "$(since "$T")"

# ------------------------------------------------------------------ 4. Keystone objects
T=$(now)
"$B/python" "$HERE/bootstrap.py" identity > "$W/objects-identity.json.tmp"
mv "$W/objects-identity.json.tmp" "$W/objects-identity.json"
record "keystone objects" "$(since "$T")"

# ------------------------------------------------------------------ 5. Placement, Glance, stand-ins
T=$(now)
"$B/placement-manage" --config-file "$W/etc/placement/placement.conf" db sync >> "$W/log/placement-manage.log" 2>&1
"$B/glance-manage" --config-file "$W/etc/glance/glance-api.conf" db_sync >> "$W/log/glance-manage.log" 2>&1
sqlite_wal "$W/db/placement.db" "$W/db/glance.db"
record "placement+glance db sync" "$(since "$T")"
start_uwsgi placement "$H:$PLACEMENT_PORT/" OS_PLACEMENT_CONFIG_DIR="$W/etc/placement"
start_uwsgi glance "$H:$GLANCE_PORT/" OS_GLANCE_CONFIG_DIR="$W/etc/glance"
# the stand-ins validate tokens with Keystone as their service users
STANDIN_ENV=(STANDIN_KEYSTONE="$KS" STANDIN_PASSWORD="$SERVICE_PW" STANDIN_SEED="$W/objects-identity.json")
start_daemon neutron-standin env "${STANDIN_ENV[@]}" STANDIN_USER=neutron "$B/python" "$HERE/standins.py" neutron "$NEUTRON_PORT"
start_daemon cinder-standin env "${STANDIN_ENV[@]}" STANDIN_USER=cinder "$B/python" "$HERE/standins.py" cinder "$CINDER_PORT"
wait_http "$H:$NEUTRON_PORT/" 20 && wait_http "$H:$CINDER_PORT/" 20 || { log "stand-ins did not come up"; tail "$W/log/"*-standin.out >&2; exit 1; }

# ------------------------------------------------------------------ 6. Nova databases and cells
T=$(now)
"${NM[@]}" api_db sync >> "$W/log/nova-manage.log" 2>&1
# (no `nova-manage ... | grep -q`: with pipefail an early grep exit can
# SIGPIPE nova-manage and turn a match into a failure)
has() { local out; out=$("${NM[@]}" cell_v2 "$1" 2>/dev/null || true); [[ $out == *" $2 "* ]]; }
has list_cells cell0 ||
  "${NM[@]}" cell_v2 map_cell0 --database_connection "sqlite:///$W/db/nova_cell0.db" >> "$W/log/nova-manage.log" 2>&1
has list_cells cell1 ||
  "${NM[@]}" cell_v2 create_cell --name cell1 --database_connection "sqlite:///$W/db/nova_cell1.db" \
    --transport-url "$TRANSPORT" >> "$W/log/nova-manage.log" 2>&1
"${NM[@]}" db sync >> "$W/log/nova-manage.log" 2>&1
sqlite_wal "$W/db/nova_api.db" "$W/db/nova_cell0.db" "$W/db/nova_cell1.db"
record "nova api_db/cells/db sync" "$(since "$T")"

# ------------------------------------------------------------------ 7. Nova services
T=$(now)
for svc in conductor scheduler; do
  start_daemon "nova-$svc" "$B/nova-$svc" --config-file "$W/etc/nova/nova.conf" --log-file "$W/log/nova-$svc.log"
done
start_daemon nova-compute "$B/nova-compute" --config-file "$W/etc/nova/nova-compute.conf" --log-file "$W/log/nova-compute.log"
start_uwsgi nova-api "$H:$NOVA_PORT/" OS_NOVA_CONFIG_DIR="$W/etc/nova"
for _ in $(seq 1 120); do
  "${NM[@]}" cell_v2 discover_hosts >> "$W/log/nova-manage.log" 2>&1 || true
  if has list_hosts aio; then break; fi
  for n in nova-conductor nova-scheduler nova-compute; do
    pid_of "$n" >/dev/null || { log "$n died:"; tail -30 "$W/log/$n.log" "$W/log/$n.out" >&2; exit 1; }
  done
  sleep 2
done
has list_hosts aio || { log "compute host never mapped"; exit 1; }
record "nova services -> host mapped" "$(since "$T")"

# ------------------------------------------------------------------ 8. flavors, image
IMG=$W/tiny.raw
[ -f "$IMG" ] || head -c 1048576 /dev/zero > "$IMG"
T=$(now)
"$B/python" "$HERE/bootstrap.py" cloud "$IMG" > "$W/objects-cloud.json.tmp"
mv "$W/objects-cloud.json.tmp" "$W/objects-cloud.json"
record "flavors + image" "$(since "$T")"

cat > "$W/env.sh" <<EOF
# source me (written by tests/harness/nova/setup.sh)
export OS_AUTH_URL=$OS_AUTH_URL
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=$OS_USERNAME
export OS_PASSWORD=$OS_PASSWORD
export OS_USER_DOMAIN_ID=$OS_USER_DOMAIN_ID
export OS_PROJECT_NAME=$OS_PROJECT_NAME
export OS_PROJECT_DOMAIN_ID=$OS_PROJECT_DOMAIN_ID
export OS_REGION_NAME=$OS_REGION_NAME
export FEDGATE_E2E_NOVA_DIR=$W
export FEDGATE_E2E_NOVA_KEYSTONE=$KS
export FEDGATE_E2E_NOVA_URL=$H:$NOVA_PORT/v2.1
export FEDGATE_E2E_NOVA_OBJECTS=$W/objects-identity.json
export FEDGATE_E2E_NOVA_CASO=$CASO_VENV/bin/caso-extract
export FEDGATE_E2E_NOVA_VENV=$VENV
EOF
record "total setup.sh up" "$(since "$T_ALL")"
log "up: Nova $H:$NOVA_PORT/v2.1 against Keystone $KS; . $W/env.sh"
echo "$H:$NOVA_PORT/v2.1"
