#!/usr/bin/env bash
# Memory per idle keep-alive TLS connection: fedgate vs nginx, both
# TLS-terminating reverse proxies with the same RSA-2048 host cert in front
# of the same upstream nginx, measured in ONE run, interleaved (see
# bench/idle_memory.py for the method and the output).
#
#   bench/idle-memory.sh        build release if needed, start all, measure, stop all
#   env: REPS=1 CONNS=1000 SETTLE=5 BENCH_RUN=/tmp/fedgate-idle-memory
#
# Run one N per invocation (`CONNS=10000 bench/idle-memory.sh`): each
# invocation starts fresh servers. A second point or repetition in the same
# processes measures on top of what the first left behind (nginx and an
# allocator that keeps freed pages reuse that memory, so their second
# figure reads near 0 KB per connection).
#        EXTRA_FEDGATE="name=/path/to/fedgate ..."  more fedgate binaries, each
#        on its own port, measured in the same run (before/after a change)
#        OUT=file   also write the output there
#
# Limits raised for the bench (the configurations say why): fedgate
# server.max_connections and max_connections_per_ip 20000,
# header_timeout_secs 600; nginx worker_connections 12000,
# worker_rlimit_nofile 20000, keepalive_timeout 600s; the shell's open
# file limit to its hard limit (the client holds 10,000 sockets).
#
# Ports (127.0.0.1): 18910 upstream nginx, 18911 nginx TLS, 18912 fedgate
# TLS, 18913 fedgate admin, 18914/18915, 18916/18917 extra fedgates.
# Every process is started and stopped here by PID.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUN=${BENCH_RUN:-/tmp/fedgate-idle-memory}
P_UP=18910 P_NGINX=18911 P_FEDGATE=18912 P_ADMIN=18913
log() { echo "[idle-memory] $*" >&2; }

for tool in nginx openssl curl python3; do
  command -v "$tool" >/dev/null || { log "$tool is missing (apt-get install nginx openssl curl)"; exit 2; }
done
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 12000 ] || { log "open file limit $(ulimit -n) is below 12000"; exit 2; }
EXTRA=(${EXTRA_FEDGATE:-})
[ ${#EXTRA[@]} -le 2 ] || { log "at most two EXTRA_FEDGATE binaries (ports 18914-18917)"; exit 2; }
for p in $P_UP $P_NGINX $P_FEDGATE $P_ADMIN $(seq 18914 $((18913 + 2 * ${#EXTRA[@]}))); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then log "port $p is in use"; exit 1; fi
done

if [ -z "${FEDGATE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin fedgate >&2)
fi
FEDGATE=${FEDGATE_BIN:-$ROOT/target/release/fedgate}

rm -rf "$RUN" && mkdir -p "$RUN"/{pki,upstream/htdocs,nginx,fedgate/ca}
chmod -R 755 "$RUN"
cat >"$RUN/upstream/htdocs/v3.json" <<'EOF'
{"version": {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z", "links": [{"rel": "self", "href": "https://localhost/v3/"}], "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}}
EOF
openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$RUN/pki/hostkey.pem" -out "$RUN/pki/hostcert.pem" 2>/dev/null
cp "$RUN/pki/hostcert.pem" "$RUN/fedgate/ca/$(openssl x509 -noout -subject_hash -in "$RUN/pki/hostcert.pem").0"

render() { # template out fedgate-port admin-port
  sed -e "s#@RUN@#$RUN#g" -e "s#@P_UP@#$P_UP#g" -e "s#@P_NGINX@#$P_NGINX#g" \
    -e "s#@P_FEDGATE@#${3:-$P_FEDGATE}#g" -e "s#@P_ADMIN@#${4:-$P_ADMIN}#g" "$1" >"$2"
}
render "$HERE/conf/upstream-nginx.conf" "$RUN/upstream/nginx.conf"
render "$HERE/conf/idle-front-nginx.conf" "$RUN/nginx/nginx.conf"
render "$HERE/conf/idle-fedgate.toml" "$RUN/fedgate/fedgate.toml"

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
pid_of() { for e in "${PIDS[@]}"; do [ "${e%%:*}" = "$1" ] && echo "${e##*:}"; done; }

start upstream nginx -e "$RUN/upstream/error.log" -c "$RUN/upstream/nginx.conf" -g 'daemon off;'
start nginx nginx -e "$RUN/nginx/error.log" -c "$RUN/nginx/nginx.conf" -g 'daemon off;'
start fedgate "$FEDGATE" run --config "$RUN/fedgate/fedgate.toml"
TARGETS=(--target "nginx=127.0.0.1:$P_NGINX=$(pid_of nginx)" --target "fedgate=127.0.0.1:$P_FEDGATE=$(pid_of fedgate)")
PORTS=($P_UP $P_NGINX $P_FEDGATE)
port=18914
for e in "${EXTRA[@]}"; do
  name=${e%%=*} bin=${e#*=}
  render "$HERE/conf/idle-fedgate.toml" "$RUN/fedgate/$name.toml" $port $((port + 1))
  start "$name" "$bin" run --config "$RUN/fedgate/$name.toml"
  TARGETS+=(--target "$name=127.0.0.1:$port=$(pid_of "$name")")
  PORTS+=($port)
  port=$((port + 2))
done

for port in "${PORTS[@]}"; do
  scheme=https; [ "$port" = $P_UP ] && scheme=http
  ok=0
  for _ in $(seq 100); do
    if curl -fsk -o /dev/null "$scheme://127.0.0.1:$port/v3"; then ok=1; break; fi
    sleep 0.1
  done
  [ $ok = 1 ] || { log "nothing answers on $port"; tail -5 "$RUN"/*.out "$RUN"/*/error.log 2>/dev/null; exit 1; }
  [ "$port" = $P_UP ] || curl -fsk "https://127.0.0.1:$port/v3" | grep -q '"v3.14"' \
    || { log "$port does not proxy the upstream's JSON"; exit 1; }
done
# The check requests above leave no connection open; let the servers settle.
sleep 2
log "all answer; measuring ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $FEDGATE)"
{
  echo "bench/idle-memory.sh $(date -u +%Y-%m-%dT%H:%MZ), fedgate $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo '(uncommitted changes)'), $(nproc) cores, nginx $(nginx -v 2>&1 | sed 's/.*\///')"
  python3 "$HERE/idle_memory.py" --reps "${REPS:-1}" --conns "${CONNS:-1000}" --settle "${SETTLE:-5}" "${TARGETS[@]}"
  grep -c '' "$RUN/nginx/access.log" | sed 's/^/nginx access log lines: /'
  grep -c 'GET' "$RUN/fedgate.out" | sed 's/^/fedgate log lines with GET: /'
} | tee ${OUT:+"$OUT"}
