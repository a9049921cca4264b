#!/usr/bin/env bash
# Gateway core benchmark: fedgate vs nginx vs Apache (mod_ssl + mod_proxy),
# all TLS-terminating reverse proxies with the same RSA-2048 host cert in
# front of the same fast upstream (a private nginx serving a static JSON),
# measured in ONE run, interleaved (see bench/bench.py for the method).
#
#   bench/core.sh            build release if needed, start all, measure, stop all
#   env: REPS=3 DURATION=10 CONC=16 BENCH_RUN=/tmp/fedgate-bench
#        FEDGATE_BIN=path: measure that fedgate instead of building target/release
#        FEDGATE_BEFORE=path: an older fedgate as a fifth target ("before",
#        ports 18805/18806), in the same interleaved run
#
# Ports (127.0.0.1): 18800 upstream nginx, 18801 nginx TLS, 18802 Apache TLS,
# 18803 fedgate TLS, 18804 fedgate admin. Every process is started and
# stopped here by PID. Results: $BENCH_RUN/results/summary.{md,json}.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUN=${BENCH_RUN:-/tmp/fedgate-bench}
P_UP=18800 P_NGINX=18801 P_APACHE=18802 P_FEDGATE=18803 P_ADMIN=18804
log() { echo "[bench] $*" >&2; }

for tool in nginx apache2 wrk ab openssl curl python3; do
  command -v "$tool" >/dev/null || { log "$tool is missing (apt-get install nginx apache2 wrk apache2-utils openssl curl)"; exit 2; }
done
for p in $P_UP $P_NGINX $P_APACHE $P_FEDGATE $P_ADMIN; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then log "port $p is in use"; exit 1; fi
done

if [ -z "${FEDGATE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin fedgate >&2)
fi
FEDGATE=${FEDGATE_BIN:-$ROOT/target/release/fedgate}
BEFORE=${FEDGATE_BEFORE:-}
P_BEFORE=18805 P_BEFORE_ADMIN=18806

rm -rf "$RUN" && mkdir -p "$RUN"/{pki,upstream/htdocs,nginx,apache/{run,lock,log},fedgate/ca,results}
chmod -R 755 "$RUN"
# The upstream's answer: Keystone's GET /v3 document.
cat >"$RUN/upstream/htdocs/v3.json" <<'EOF'
{"version": {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z", "links": [{"rel": "self", "href": "https://localhost/v3/"}], "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}}
EOF
openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$RUN/pki/hostkey.pem" -out "$RUN/pki/hostcert.pem" 2>/dev/null
chmod 644 "$RUN/pki/hostkey.pem" # private throwaway key; Apache children read it as www-data
cp "$RUN/pki/hostcert.pem" "$RUN/fedgate/ca/$(openssl x509 -noout -subject_hash -in "$RUN/pki/hostcert.pem").0"

render() { sed -e "s#@RUN@#$RUN#g" -e "s#@P_UP@#$P_UP#g" -e "s#@P_NGINX@#$P_NGINX#g" \
  -e "s#@P_APACHE@#$P_APACHE#g" -e "s#@P_FEDGATE@#$P_FEDGATE#g" -e "s#@P_ADMIN@#$P_ADMIN#g" "$1" >"$2"; }
render "$HERE/conf/upstream-nginx.conf" "$RUN/upstream/nginx.conf"
render "$HERE/conf/front-nginx.conf" "$RUN/nginx/nginx.conf"
render "$HERE/conf/front-apache.conf" "$RUN/apache/apache.conf"
render "$HERE/conf/fedgate.toml" "$RUN/fedgate/fedgate.toml"
[ -z "$BEFORE" ] || sed -e "s#@RUN@#$RUN#g" -e "s#@P_UP@#$P_UP#g" -e "s#@P_FEDGATE@#$P_BEFORE#g" \
  -e "s#@P_ADMIN@#$P_BEFORE_ADMIN#g" "$HERE/conf/fedgate.toml" >"$RUN/fedgate/before.toml"

PIDS=()
stop_all() {
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    local pid=${PIDS[$i]##*:}
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT
start() { # name cmd...
  local name=$1; shift
  "$@" >"$RUN/$name.out" 2>&1 &
  PIDS+=("$name:$!")
  log "started $name pid $!"
}
start upstream nginx -e "$RUN/upstream/error.log" -c "$RUN/upstream/nginx.conf" -g 'daemon off;'
start nginx nginx -e "$RUN/nginx/error.log" -c "$RUN/nginx/nginx.conf" -g 'daemon off;'
start apache env APACHE_RUN_USER=www-data APACHE_RUN_GROUP=www-data APACHE_RUN_DIR="$RUN/apache/run" \
  APACHE_LOCK_DIR="$RUN/apache/lock" APACHE_LOG_DIR="$RUN/apache/log" APACHE_PID_FILE="$RUN/apache/run/apache2.pid" \
  apache2 -d "$RUN/apache" -f "$RUN/apache/apache.conf" -DFOREGROUND
start fedgate "$FEDGATE" run --config "$RUN/fedgate/fedgate.toml"
[ -z "$BEFORE" ] || start before "$BEFORE" run --config "$RUN/fedgate/before.toml"

for port in $P_UP $P_NGINX $P_APACHE $P_FEDGATE ${BEFORE:+$P_BEFORE}; do
  scheme=https; [ "$port" = $P_UP ] && scheme=http
  ok=0
  for _ in $(seq 100); do
    if curl -fsk -o /dev/null "$scheme://127.0.0.1:$port/v3"; then ok=1; break; fi
    sleep 0.1
  done
  [ $ok = 1 ] || { log "nothing answers on $port"; tail -5 "$RUN"/*.out "$RUN"/*/error.log "$RUN"/apache/log/error.log 2>/dev/null; exit 1; }
done
for port in $P_NGINX $P_APACHE $P_FEDGATE ${BEFORE:+$P_BEFORE}; do
  curl -fsk "https://127.0.0.1:$port/v3" | grep -q '"v3.14"' || { log "$port does not proxy the upstream's JSON"; exit 1; }
done
log "all four answer; measuring"

pid_of() { for e in "${PIDS[@]}"; do [ "${e%%:*}" = "$1" ] && echo "${e##*:}"; done; }
# The Apache we started is `env`, which exec'd apache2: same pid.
python3 "$HERE/bench.py" --out "$RUN/results" --reps "${REPS:-3}" --duration "${DURATION:-10}" --conc "${CONC:-16}" \
  --target "nginx=https://127.0.0.1:$P_NGINX/v3=$(pid_of nginx)" \
  --target "apache=https://127.0.0.1:$P_APACHE/v3=$(pid_of apache)" \
  --target "fedgate=https://127.0.0.1:$P_FEDGATE/v3=$(pid_of fedgate)" \
  ${BEFORE:+--target "before=https://127.0.0.1:$P_BEFORE/v3=$(pid_of before)" --pair fedgate:before} \
  --upstream "$(pid_of upstream)"
cat "$RUN/results/summary.md"
