# shellcheck shell=bash
# The real parts the endurance and fault runs (bench/soak.sh, bench/faults.sh)
# put behind and in front of fedgate, as shell functions. Sourced, not run.
#
#   keystone_up DIR PORT ISSUER   the harness Keystone 30 (tests/harness/keystone/setup.sh):
#                                 HTTP on PORT, uwsgi on PORT+1, federation objects in place
#   keystone_kill DIR             SIGKILL to its uWSGI master and workers (a crash)
#   idp_up NAME PORT REDIRECT_URI the oidc-provider harness (tests/harness/idp), http
#   redis_up NAME PORT            redis-server, append-only file (survives a restart)
#   fedgate_up NAME PORT ADMIN [proxy_protocol]   target/release/fedgate with the stack's config
#   haproxy_up NAME PORT NODE_PORT...             haproxy, TCP mode, send-proxy-v2, checks
#   proc_pid NAME / proc_kill NAME [SIG] / stop_all
#
# Every process is ours, started here and stopped by its pid (recorded in
# $RUN/pids/NAME). $ROOT, $RUN and $PKI must be set by the caller.

ST_PIDS=()
say() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
wait_port() { # PORT [seconds]
  local i
  for i in $(seq $((${2:-30} * 10))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  say "port $1 did not open"
  return 1
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
proc_pid() { cat "$RUN/pids/$1" 2>/dev/null; }
record() { mkdir -p "$RUN/pids"; echo "$2" >"$RUN/pids/$1"; }
proc_kill() { # NAME [SIG]: signal the recorded pid, wait until it is gone
  local pid
  pid=$(proc_pid "$1") || return 0
  kill "-${2:-TERM}" "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

keystone_up() { # DIR PORT ISSUER
  KEYSTONE_OIDC_ISSUERS=$3 bash "$ROOT/tests/harness/keystone/setup.sh" "$1" "$2" up >/dev/null
}
keystone_down() { bash "$ROOT/tests/harness/keystone/setup.sh" "$1" 0 down >/dev/null 2>&1 || true; }
keystone_kill() { # DIR: the uWSGI master and its workers, SIGKILL
  local master kids
  master=$(cat "$1/run/uwsgi.pid" 2>/dev/null) || return 0
  kids=$(pgrep -P "$master" || true)
  # shellcheck disable=SC2086
  kill -KILL "$master" $kids 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$master" 2>/dev/null || break; sleep 0.05; done
}

idp_up() { # NAME PORT REDIRECT_URI
  (cd "$ROOT/tests/harness/idp" && { [ -d node_modules/oidc-provider ] || npm ci --no-audit --no-fund >&2; })
  IDP_QUIET=1 IDP_STATE_DIR="$RUN/$1-state" IDP_REDIRECT_URIS="$3" \
    node "$ROOT/tests/harness/idp/idp.js" "a=$2:a" >>"$RUN/$1.log" 2>&1 &
  record "$1" $!
  wait_port "$2"
}

redis_up() { # NAME PORT
  mkdir -p "$RUN/$1"
  redis-server --port "$2" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync everysec \
    --dir "$RUN/$1" --daemonize no --logfile "$RUN/$1.log" &
  record "$1" $!
  wait_port "$2"
}

memcached_up() { # NAME PORT
  memcached -u "$(id -un)" -l 127.0.0.1 -p "$2" -U 0 -m 64 >>"$RUN/$1.log" 2>&1 &
  record "$1" $!
  wait_port "$2"
}

# The fedgate configuration of the runs: the EGI routes of tests/identities.rs
# in front of the real Keystone's uwsgi socket, one IdP, shared state in Redis
# (the legacy keys), sessions sealed with a fixed key so that nodes share them.
# Needs: KS_UWSGI, IDP_PORT, REDIS_PORT, SESSION_KEY, LOG_LEVEL (info).
# Shared state: STATE=redis (default: the legacy [cache]/[oidc.session]
# redis_url keys, as before) or STATE=memcached ([state], one server on
# REDIS_PORT), or STATE=redis-state ([state] backend = "redis").
state_conf() { # lines that follow [oidc.session] keys
  case ${STATE:-redis} in
    redis) printf 'redis_url = "redis://127.0.0.1:%s/0"\n[cache]\nredis_url = "redis://127.0.0.1:%s/0"\n' "$REDIS_PORT" "$REDIS_PORT" ;;
    memcached) printf '[state]\nbackend = "memcached"\nservers = ["127.0.0.1:%s"]\nkeys = ["%s"]\n' "$REDIS_PORT" "$SESSION_KEY" ;;
    redis-state) printf '[state]\nbackend = "redis"\nurl = "redis://127.0.0.1:%s/0"\nkeys = ["%s"]\n' "$REDIS_PORT" "$SESSION_KEY" ;;
    *) echo "STATE must be redis, memcached or redis-state" >&2; return 2 ;;
  esac
}

fedgate_conf() { # PORT ADMIN PROXY_PROTOCOL(true|false)
  cat <<EOF
[server]
listen = ["127.0.0.1:$1"]
proxy_protocol = $3
trusted_proxies = [$([ "$3" = true ] && echo '"127.0.0.1"')]
shutdown_timeout_secs = 10
[admin]
listen = ["127.0.0.1:$2"]
[tls]
certificate = "$PKI/host.pem"
private_key = "$PKI/host.key"
ca_dir = "$PKI/certificates"
client_auth = "optional"
watch = "off"
[voms]
dir = "$PKI/vomsdir"
[upstream]
url = "uwsgi://$KS_UWSGI"
connect_timeout_secs = 2
response_timeout_secs = 30
[logging]
level = "${LOG_LEVEL:-info}"
[[idp]]
name = "a"
issuer = "http://127.0.0.1:$IDP_PORT"
client_id = "gateway"
client_secret = "gateway-secret"
claims = ["eduperson_entitlement"]
timeout_secs = 2
[oidc]
trusted_dashboards = ["https://horizon.test/dashboard/auth/websso/"]
[oidc.session]
keys = ["$SESSION_KEY"]
$(state_conf)
[[route]]
name = "websso"
path = "^/v3/auth/OS-FEDERATION/(websso/openid|identity_providers/[^/]+/protocols/openid/websso)$"
auth = "oidc"
[[route]]
name = "voms"
path = "^/v3/OS-FEDERATION/identity_providers/[^/]+/protocols/mapped/auth$"
auth = "x509"
[[route]]
name = "openid"
path = "^/v3/OS-FEDERATION/identity_providers/[^/]+/protocols/openid/auth$"
auth = "bearer"
[[route]]
name = "keystone"
path = "^/"
auth = "none"
EOF
}

fedgate_up() { # NAME PORT ADMIN [PROXY_PROTOCOL]
  mkdir -p "$RUN/$1"
  fedgate_conf "$2" "$3" "${4:-false}" >"$RUN/$1/fedgate.toml"
  "$ROOT/target/release/fedgate" check-config --offline --config "$RUN/$1/fedgate.toml" >"$RUN/$1/check.log" 2>&1 ||
    { cat "$RUN/$1/check.log" >&2; return 1; }
  "$ROOT/target/release/fedgate" run --config "$RUN/$1/fedgate.toml" >>"$RUN/$1.log" 2>&1 &
  record "$1" $!
  wait_port "$3"
  for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$3/healthz" && return 0; sleep 0.1; done
  say "$1 is not healthy"
  return 1
}

haproxy_up() { # NAME PORT NODE_PORT...
  local name=$1 port=$2 i=0 p
  shift 2
  {
    cat <<EOF
global
    maxconn 4096
defaults
    mode tcp
    timeout connect 2s
    timeout client 1m
    timeout server 1m
    retries 3
    option redispatch
frontend keystone
    bind 127.0.0.1:$port
    default_backend fedgate
backend fedgate
    balance roundrobin
EOF
    for p in "$@"; do
      i=$((i + 1))
      echo "    server node$i 127.0.0.1:$p send-proxy-v2 check check-send-proxy inter 1s fall 2 rise 2"
    done
  } >"$RUN/$name.cfg"
  haproxy -db -f "$RUN/$name.cfg" >>"$RUN/$name.log" 2>&1 &
  record "$name" $!
  wait_port "$port"
}

stop_all() {
  local f
  for f in "$RUN"/pids/*; do
    [ -e "$f" ] || continue
    proc_kill "$(basename "$f")" TERM
    rm -f "$f"
  done
}

# The grid PKI with VOMS proxies (voms-proxy-fake), made once per RUN.
pki_up() {
  [ -f "$PKI/.complete" ] || bash "$ROOT/tests/fixtures/pki/mkpki.sh" "$PKI" >/dev/null
}
