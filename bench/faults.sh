#!/usr/bin/env bash
# Fault runs: two fedgate nodes (release build, server.proxy_protocol = true)
# behind haproxy (TCP mode, TLS passthrough, send-proxy-v2, health checks
# every second), in front of the real Keystone 30 (uwsgi://), the
# oidc-provider IdP and Redis (shared token cache and WebSSO sessions, the
# legacy [cache]/[oidc.session] redis_url keys), under the steady mixed load
# of bench/loadgen.py through haproxy, every identity checked against
# Keystone's answer. In turn, each is killed and restarted:
#
#   keystone   SIGKILL to uWSGI (master and worker), restarted by the harness
#   idp        SIGKILL to the IdP, restarted (its tokens were in memory: the
#              load generator is told, with SIGUSR1, to mint new ones); every
#              opaque token is used once, so each needs an introspection
#   redis      SIGKILL to redis-server, restarted on its append-only file
#              (STATE=memcached: memcached instead, restarted empty; the
#              nodes use [state] backend = "memcached"; STATE=redis-state:
#              Redis through [state] rather than the legacy keys)
#   node1      SIGKILL to one fedgate node, restarted
#   node2      SIGTERM to the other (graceful: drains), restarted
# then SIGHUP to both nodes every second for RELOAD_SECS (bench/faults.sh
# reload runs only that part).
#
#   bench/faults.sh [all|reload]   (env: DOWN=20 GAP=40 RELOAD_SECS=120 RATES=... OUT=bench/results/faults-<UTC>)
#
# Ports 19160-19168: Keystone 19160/19161, IdP 19162, Redis 19163, node1
# 19164 (admin 19165), node2 19166 (admin 19167), haproxy 19168.
# Results: $OUT/{events.jsonl,marks.jsonl,report.md,*.log}.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=${1:-all}
DOWN=${DOWN:-20} GAP=${GAP:-40} RELOAD_SECS=${RELOAD_SECS:-120}
# 5 req/s, 1 of them a federated login (Keystone: one thread, ~150 ms of CPU
# each): lower than the soak's 20 req/s, which may run at the same time.
RATES=${RATES:-none=4,bearer_jwt=0.25,bearer_opaque=0.25,x509=0.25,websso=0.25}
STAMP=$(date -u +%Y%m%dT%H%MZ)
OUT=${OUT:-$ROOT/bench/results/faults-$MODE-$STAMP}
RUN=${RUN:-/tmp/fedgate-faults}
PKI=${PKI:-$RUN/pki}
P_KS=19160 P_IDP=19162 P_REDIS=19163 P_N1=19164 P_A1=19165 P_N2=19166 P_A2=19167 P_HA=19168
# shellcheck source=bench/stack.sh
. "$ROOT/bench/stack.sh"

[ -x "$ROOT/target/release/fedgate" ] || { say "build first: cargo build --release"; exit 2; }
for t in node redis-server haproxy voms-proxy-fake python3 curl openssl; do
  command -v $t >/dev/null || { say "missing $t"; exit 2; }
done
for p in $P_IDP $P_REDIS $P_N1 $P_A1 $P_N2 $P_A2 $P_HA; do port_free $p || { say "port $p is in use"; exit 1; }; done
mkdir -p "$RUN" "$OUT"
rm -f "$RUN"/*.log # the logs of this run only
: >"$OUT/marks.jsonl"
LG_PID=
cleanup() {
  [ -z "$LG_PID" ] || kill -TERM "$LG_PID" 2>/dev/null || true
  stop_all
  keystone_down "$RUN/keystone"
}
trap cleanup EXIT
mark() { # EVENT: a line in marks.jsonl, and on stderr
  printf '{"t": %s, "event": "%s"}\n' "$(date +%s.%N)" "$1" >>"$OUT/marks.jsonl"
  say "$1"
}

pki_up
keystone_up "$RUN/keystone" $P_KS "http://127.0.0.1:$P_IDP"
KS_UWSGI=127.0.0.1:$((P_KS + 1)) IDP_PORT=$P_IDP REDIS_PORT=$P_REDIS
SESSION_KEY=$(openssl rand -base64 32)
export KS_UWSGI IDP_PORT REDIS_PORT SESSION_KEY
REDIRECT="https://localhost:$P_HA/v3/auth/OS-FEDERATION/websso/openid/redirect"
idp_up idp $P_IDP "$REDIRECT"
STORE=redis; [ "${STATE:-redis}" = memcached ] && STORE=memcached
${STORE}_up $STORE $P_REDIS
fedgate_up node1 $P_N1 $P_A1 true
fedgate_up node2 $P_N2 $P_A2 true
haproxy_up haproxy $P_HA $P_N1 $P_N2
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(nproc) cores, load at start $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "fedgate: $("$ROOT/target/release/fedgate" --version) ($(git -C "$ROOT" rev-parse --short HEAD)); $(haproxy -v | head -1); $(redis-server --version | cut -d' ' -f1-3)"
  echo "rates: $RATES; down ${DOWN}s, gap ${GAP}s, reload ${RELOAD_SECS}s; state: ${STATE:-redis}"
} >"$OUT/run.txt"

case $MODE in
  all | reload) ;;
  *) say "usage: faults.sh [all|reload]"; exit 2 ;;
esac
python3 "$ROOT/bench/loadgen.py" --gate "https://localhost:$P_HA" --keystone "http://127.0.0.1:$P_KS" \
  --idp "http://127.0.0.1:$P_IDP" --pki "$PKI" --federation "$RUN/keystone/federation.json" \
  --rates "$RATES" --duration 86400 --sample-secs 10 --opaque-uses 1 \
  --events "$OUT/events.jsonl" --summary "$OUT/summary.json" >"$OUT/loadgen.out" 2>"$OUT/loadgen.log" &
LG_PID=$!
# The load generator logs in (WebSSO) before its clock starts.
for _ in $(seq 600); do [ -s "$OUT/events.jsonl" ] && break; sleep 0.1; done
mark load_started

up_when() { # NAME CHECK...: mark NAME_up once CHECK succeeds
  local name=$1
  shift
  for _ in $(seq 600); do "$@" >/dev/null 2>&1 && break; sleep 0.1; done
  mark "${name}_up"
}
node_restart() { # NAME PORT ADMIN
  "$ROOT/target/release/fedgate" run --config "$RUN/$1/fedgate.toml" >>"$RUN/$1.log" 2>&1 &
  record "$1" $!
}

if [ "$MODE" = all ]; then
  sleep 30
  mark keystone_down
  keystone_kill "$RUN/keystone"
  sleep "$DOWN"
  mark keystone_restart
  keystone_up "$RUN/keystone" $P_KS "http://127.0.0.1:$P_IDP" &
  KU=$!
  up_when keystone curl -fs "http://127.0.0.1:$P_KS/v3"
  wait $KU
  sleep "$GAP"

  mark idp_down
  proc_kill idp KILL
  sleep "$DOWN"
  mark idp_restart
  idp_up idp $P_IDP "$REDIRECT"
  kill -USR1 "$LG_PID"
  mark idp_up
  sleep "$GAP"

  mark ${STORE}_down
  proc_kill $STORE KILL
  sleep "$DOWN"
  mark ${STORE}_restart
  ${STORE}_up $STORE $P_REDIS
  mark ${STORE}_up
  sleep "$GAP"

  mark node1_down
  proc_kill node1 KILL
  sleep "$DOWN"
  mark node1_restart
  node_restart node1 $P_N1 $P_A1
  up_when node1 curl -fs "http://127.0.0.1:$P_A1/healthz"
  sleep "$GAP"

  mark node2_down
  proc_kill node2 TERM
  sleep "$DOWN"
  mark node2_restart
  node_restart node2 $P_N2 $P_A2
  up_when node2 curl -fs "http://127.0.0.1:$P_A2/healthz"
  sleep 60
fi

sleep 20
mark reload_start
end=$((SECONDS + RELOAD_SECS))
while [ $SECONDS -lt $end ]; do
  kill -HUP "$(proc_pid node1)" "$(proc_pid node2)"
  sleep 1
done
mark reload_end
for a in $P_A1 $P_A2; do
  curl -fs "http://127.0.0.1:$a/metrics" | grep '^fedgate_config_reloads_total' | sed "s/^/admin $a: /" >>"$OUT/reloads.txt" || true
done
sleep 20
kill -TERM "$LG_PID"
wait "$LG_PID" || true
LG_PID=
# fedgate's logs without the one line per request and haproxy's health checks
# (a TCP connect with a PROXY LOCAL header, logged as a failed TLS handshake); the others whole.
for f in node1 node2; do
  grep -v -e ' INFO request' -e 'TLS handshake failed' "$RUN/$f.log" >"$OUT/$f.log" 2>/dev/null || true
  echo "# plus $(grep -c 'TLS handshake failed' "$RUN/$f.log") lines 'INFO TLS handshake failed' (haproxy's health checks)" >>"$OUT/$f.log"
done
for f in idp redis haproxy; do cp "$RUN/$f.log" "$OUT/$f.log" 2>/dev/null || true; done
echo "load at end $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/run.txt"
python3 "$ROOT/bench/faults_report.py" "$OUT" >"$OUT/report.md"
gzip -9 "$OUT/events.jsonl"
cat "$OUT/report.md"
