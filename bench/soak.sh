#!/usr/bin/env bash
# Endurance run: one fedgate (release build) in front of the real Keystone 30
# (uwsgi://), with the oidc-provider IdP, Redis for the token cache and the
# WebSSO sessions (legacy [cache]/[oidc.session] redis_url keys) and VOMS
# proxies made by voms-proxy-fake, under a steady mixed load (bench/loadgen.py:
# /v3 without authentication, bearer JWT and opaque tokens, X.509 + VOMS,
# WebSSO session cookies), every identity checked against Keystone's answer.
# Every SAMPLE seconds: fedgate's RSS and open fds, per kind p50/p99, errors.
#
#   bench/soak.sh                  (env: DURATION=3600 SAMPLE=60 RATES=... OUT=bench/results/soak-<UTC>)
#
# Needs: target/release/fedgate (cargo build --release), node + npm (IdP),
# redis-server, voms-proxy-fake + grid-proxy-init (the PKI), python3, curl,
# the Keystone venv (tests/harness/keystone/setup.sh makes it).
# Ports 19150-19155: Keystone 19150 (HTTP) / 19151 (uwsgi), IdP 19152,
# Redis 19153, fedgate 19154, its admin 19155. Everything started here is
# stopped on exit, by pid. Results: $OUT/{soak.csv,summary.json,summary.md,*.log}.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-3600} SAMPLE=${SAMPLE:-60}
# 20 req/s in all, 1 of them a federated login: the harness Keystone (1 uWSGI
# process, 1 thread, sqlite) takes about 150 ms of CPU per federated login and
# 2 ms per GET /v3 (its uWSGI log), and gets a fraction of a core on this box
# while colleagues build (load average 6-9). 12 and then 3 logins/s (first
# tries) queued requests for minutes.
RATES=${RATES:-none=19,bearer_jwt=0.25,bearer_opaque=0.25,x509=0.25,websso=0.25}
STAMP=$(date -u +%Y%m%dT%H%MZ)
OUT=${OUT:-$ROOT/bench/results/soak-$STAMP}
RUN=${RUN:-/tmp/fedgate-soak}
PKI=${PKI:-$RUN/pki}
P_KS=19150 P_IDP=19152 P_REDIS=19153 P_GATE=19154 P_ADMIN=19155
# shellcheck source=bench/stack.sh
. "$ROOT/bench/stack.sh"

[ -x "$ROOT/target/release/fedgate" ] || { say "build first: cargo build --release"; exit 2; }
for t in node redis-server voms-proxy-fake python3 curl openssl; do
  command -v $t >/dev/null || { say "missing $t"; exit 2; }
done
for p in $P_IDP $P_REDIS $P_GATE $P_ADMIN; do port_free $p || { say "port $p is in use"; exit 1; }; done
mkdir -p "$RUN" "$OUT"
trap 'stop_all; keystone_down "$RUN/keystone"' EXIT

pki_up
say "Keystone on $P_KS/$((P_KS + 1))"
keystone_up "$RUN/keystone" $P_KS "http://127.0.0.1:$P_IDP"
KS_UWSGI=127.0.0.1:$((P_KS + 1)) IDP_PORT=$P_IDP REDIS_PORT=$P_REDIS
SESSION_KEY=$(openssl rand -base64 32)
export KS_UWSGI IDP_PORT REDIS_PORT SESSION_KEY
idp_up idp $P_IDP "https://localhost:$P_GATE/v3/auth/OS-FEDERATION/websso/openid/redirect"
redis_up redis $P_REDIS
fedgate_up fedgate $P_GATE $P_ADMIN
FG_PID=$(proc_pid fedgate)
say "fedgate pid $FG_PID; load $RATES for $DURATION s, a sample every $SAMPLE s"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(nproc) cores, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo), load at start $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "fedgate: $("$ROOT/target/release/fedgate" --version) ($(git -C "$ROOT" rev-parse --short HEAD))"
  echo "rates: $RATES; duration ${DURATION}s; sample ${SAMPLE}s"
} >"$OUT/run.txt"

python3 "$ROOT/bench/loadgen.py" --gate "https://localhost:$P_GATE" --keystone "http://127.0.0.1:$P_KS" \
  --idp "http://127.0.0.1:$P_IDP" --pki "$PKI" --federation "$RUN/keystone/federation.json" \
  --rates "$RATES" --duration "$DURATION" --sample-secs "$SAMPLE" --pid "fedgate=$FG_PID" --timeout 35 \
  --csv "$OUT/soak.csv" --summary "$OUT/summary.json" >"$OUT/loadgen.out" 2>"$OUT/loadgen.log"

echo "load at end $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/run.txt"
curl -fs "http://127.0.0.1:$P_ADMIN/metrics" >"$OUT/metrics.txt" || true
python3 "$ROOT/bench/soak_report.py" "$OUT/soak.csv" "$OUT/summary.json" >"$OUT/summary.md"
# fedgate's log (one line per request) stays in $RUN; its warnings and errors go with the results.
grep -v ' INFO ' "$RUN/fedgate.log" >"$OUT/fedgate-warnings.log" 2>/dev/null || true
cat "$OUT/summary.md"
