#!/usr/bin/env bash
# Instructions per request of fedgate's no-auth keep-alive path, counted by
# valgrind's callgrind: the same figure on every run of the same build, so
# a change to fedgate's own code can be judged by a few per cent where the
# 2-core box's timing noise (±7 %) hides it. It is not CPU time (the
# kernel's share, about two thirds, is not counted, and callgrind counts a
# `rep movsb` copy byte by byte) and it does not replace bench/core.sh's
# side-by-side CPU figures; it shows where user-space work went.
#
#   bench/instructions.sh          build release if needed, measure, print
#   env: REQUESTS=2000  requests counted, after 300 of warm-up, over 4
#                       keep-alive TLS connections (sequential; the
#                       handshakes and the warm-up are not counted)
#        FEDGATE_BIN=path     measure that fedgate instead of target/release
#        FEDGATE_BEFORE=path  also measure an older build, and print the ratio
#        WITH_NGINX=1         also measure nginx as the TLS reverse proxy of
#                             bench/core.sh (one worker, no master, under
#                             callgrind), and print fedgate / nginx
#        TOP=25               functions listed (self cost, per request)
#        BENCH_RUN=/tmp/fedgate-instructions
#
# The upstream is a private nginx serving Keystone's /v3 document, as in
# bench/core.sh; fedgate's configuration is bench/conf/fedgate.toml with
# logging on. A callgrind build wants symbols: `cargo build --profile
# profiling` gives them (FEDGATE_BIN=target/profiling/fedgate).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUN=${BENCH_RUN:-/tmp/fedgate-instructions}
P_UP=18830 P_FEDGATE=18831 P_ADMIN=18832
N=${REQUESTS:-2000}
log() { echo "[instructions] $*" >&2; }

for tool in valgrind nginx openssl curl python3; do
  command -v "$tool" >/dev/null || { log "$tool is missing (apt-get install valgrind nginx openssl curl)"; exit 2; }
done
if [ -z "${FEDGATE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin fedgate >&2)
fi
FEDGATE=${FEDGATE_BIN:-$ROOT/target/release/fedgate}

rm -rf "$RUN" && mkdir -p "$RUN"/{pki,upstream/htdocs,fedgate/ca}
cat >"$RUN/upstream/htdocs/v3.json" <<'EOF'
{"version": {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z", "links": [{"rel": "self", "href": "https://localhost/v3/"}], "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}}
EOF
openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$RUN/pki/hostkey.pem" -out "$RUN/pki/hostcert.pem" 2>/dev/null
cp "$RUN/pki/hostcert.pem" "$RUN/fedgate/ca/$(openssl x509 -noout -subject_hash -in "$RUN/pki/hostcert.pem").0"
render() { sed -e "s#@RUN@#$RUN#g" -e "s#@P_UP@#$P_UP#g" -e "s#@P_FEDGATE@#$P_FEDGATE#g" -e "s#@P_ADMIN@#$P_ADMIN#g" "$1" >"$2"; }
render "$HERE/conf/upstream-nginx.conf" "$RUN/upstream/nginx.conf"
render "$HERE/conf/fedgate.toml" "$RUN/fedgate/fedgate.toml"
# nginx as bench/core.sh runs it, but one process (callgrind follows one):
# the same TLS front, access log and keep-alive pool to the upstream.
mkdir -p "$RUN/nginx"
sed -e "s#@RUN@#$RUN#g" -e "s#@P_UP@#$P_UP#g" -e "s#@P_NGINX@#$P_FEDGATE#g" \
  -e 's/^worker_processes 2;/worker_processes 1; master_process off; daemon off;/' \
  "$HERE/conf/front-nginx.conf" >"$RUN/nginx/nginx.conf"

PIDS=()
stop_all() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all EXIT
nginx -e "$RUN/upstream/error.log" -c "$RUN/upstream/nginx.conf" -g 'daemon off;' >"$RUN/upstream.out" 2>&1 </dev/null &
PIDS+=($!)

# measure NAME BINARY: prints "NAME <instructions per request>" and keeps
# the callgrind profile of the counted requests in $RUN/NAME.callgrind.
measure() {
  local name=$1 bin=$2 vg
  local cmd=("$bin" run --config "$RUN/fedgate/fedgate.toml")
  [ "$name" != nginx ] || cmd=(nginx -e "$RUN/nginx/error.log" -c "$RUN/nginx/nginx.conf")
  valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
    --callgrind-out-file="$RUN/$name.callgrind.%p" \
    "${cmd[@]}" >"$RUN/$name.out" 2>&1 </dev/null &
  vg=$!
  local ok=0
  for _ in $(seq 200); do
    if curl -fsk -o /dev/null "https://127.0.0.1:$P_FEDGATE/v3"; then ok=1; break; fi
    sleep 0.2
  done
  [ $ok = 1 ] || { log "$name does not answer"; tail -5 "$RUN/$name.out"; kill "$vg"; return 1; }
  python3 "$HERE/instructions.py" requests --port $P_FEDGATE --warmup 300 --count "$N" --pid "$vg"
  kill -TERM "$vg"; wait "$vg" 2>/dev/null || true
  # The dump of the counted requests is part 1.
  mv "$RUN/$name.callgrind.$vg.1" "$RUN/$name.callgrind"
  rm -f "$RUN/$name.callgrind.$vg"
}

measure fedgate "$FEDGATE"
[ -z "${FEDGATE_BEFORE:-}" ] || measure before "$FEDGATE_BEFORE"
[ -z "${WITH_NGINX:-}" ] || measure nginx nginx
python3 "$HERE/instructions.py" report --requests "$N" --top "${TOP:-25}" \
  ${WITH_NGINX:+--nginx "$RUN/nginx.callgrind"} \
  "$RUN/fedgate.callgrind" ${FEDGATE_BEFORE:+"$RUN/before.callgrind"} | tee "$RUN/summary.txt"
