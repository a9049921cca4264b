#!/usr/bin/env bash
# The real deployment path: Keystone under uWSGI, spoken to with the uwsgi
# protocol. fedgate vs Apache (mod_ssl + mod_proxy_uwsgi), both
# TLS-terminating with the same RSA-2048 host certificate, each in front of
# the same uWSGI over TCP and over its unix socket: four targets measured in
# ONE interleaved run with bench/bench.py's method (keep-alive clients,
# wrk -t2 -c16; server CPU per request from /proc, uWSGI's CPU apart).
#
#   bench/uwsgi.sh           build release if needed, start all, measure, stop all
#   env: REPS=3 DURATION=10 CONC=16 MODES=keep-alive BENCH_RUN=/tmp/fedgate-bench-uwsgi
#        UWSGI_PROCESSES=8 FEDGATE=path/to/fedgate UWSGI=path/to/uwsgi (default: the pinned PyPI uWSGI
#        in ~/.cache/fedgate/uwsgi-bench-venv, installed on first use)
#        FEDGATE_BEFORE=path/to/older/fedgate: two more targets (before-tcp,
#        before-unix) in the same interleaved run, with fedgate/before ratios,
#        to measure a change side by side
#
# The upstream is a trivial WSGI app (bench/conf/uwsgi-app.py: Keystone's
# GET /v3 document) so the figures are the front ends' and the protocol's.
# uWSGI: one instance, master + UWSGI_PROCESSES single-threaded workers
# (no GIL between requests), both sockets, listen backlog 1024, no request
# logging; 8 workers for at most 16 requests in flight keep it from being the
# bottleneck (its CPU per request is reported and is the same for both
# front ends).
#
# Ports (127.0.0.1): 18900 uWSGI (uwsgi protocol), 18901 Apache -> TCP,
# 18902 Apache -> unix socket, 18903/18904 fedgate -> TCP (TLS/admin),
# 18905/18906 fedgate -> unix socket, 18907/18908 FEDGATE_BEFORE -> TCP/unix
# (no admin listener). Every process is started and stopped here by PID.
# Results: $BENCH_RUN/results/summary.{md,json,txt}.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUN=${BENCH_RUN:-/tmp/fedgate-bench-uwsgi}
UWSGI_VERSION=2.0.30
VENV=$HOME/.cache/fedgate/uwsgi-bench-venv
P_UWSGI=18900 P_APACHE_TCP=18901 P_APACHE_UNIX=18902
P_FG_TCP=18903 P_FG_TCP_ADMIN=18904 P_FG_UNIX=18905 P_FG_UNIX_ADMIN=18906
P_BEFORE_TCP=18907 P_BEFORE_UNIX=18908
BEFORE=${FEDGATE_BEFORE:-}
log() { echo "[bench] $*" >&2; }

for tool in apache2 wrk openssl curl python3; do
  command -v "$tool" >/dev/null || { log "$tool is missing (apt-get install apache2 wrk openssl curl)"; exit 2; }
done
[ -f /usr/lib/apache2/modules/mod_proxy_uwsgi.so ] || { log "mod_proxy_uwsgi is missing (Debian apache2)"; exit 2; }
for p in $P_UWSGI $P_APACHE_TCP $P_APACHE_UNIX $P_FG_TCP $P_FG_TCP_ADMIN $P_FG_UNIX $P_FG_UNIX_ADMIN \
  ${BEFORE:+$P_BEFORE_TCP $P_BEFORE_UNIX}; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then log "port $p is in use"; exit 1; fi
done

UWSGI=${UWSGI:-$VENV/bin/uwsgi}
if [ ! -x "$UWSGI" ]; then
  log "installing uWSGI $UWSGI_VERSION from PyPI into $VENV (compiles; a few minutes)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "uwsgi==$UWSGI_VERSION" >&2
fi
log "uWSGI $("$UWSGI" --version)"

# FEDGATE=path/to/fedgate measures that binary (e.g. a build before a
# change) instead of building the worktree's.
if [ -z "${FEDGATE:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin fedgate >&2)
  FEDGATE=$ROOT/target/release/fedgate
fi

rm -rf "$RUN" && mkdir -p "$RUN"/{pki,uwsgi,apache/{run,lock,log},fedgate/ca,fedgate-tcp,fedgate-unix,before-tcp,before-unix,results}
chmod -R 755 "$RUN"
openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$RUN/pki/hostkey.pem" -out "$RUN/pki/hostcert.pem" 2>/dev/null
chmod 644 "$RUN/pki/hostkey.pem" # private throwaway key; Apache children read it as www-data
cp "$RUN/pki/hostcert.pem" "$RUN/fedgate/ca/$(openssl x509 -noout -subject_hash -in "$RUN/pki/hostcert.pem").0"
SOCK=$RUN/uwsgi/app.sock

render() { # template out [PORT ADMIN-LISTEN UPSTREAM]
  sed -e "s#@RUN@#$RUN#g" -e "s#@P_UWSGI@#$P_UWSGI#g" -e "s#@P_APACHE_TCP@#$P_APACHE_TCP#g" \
    -e "s#@P_APACHE_UNIX@#$P_APACHE_UNIX#g" -e "s#@PORT@#${3:-}#g" -e "s#@ADMIN@#${4:-}#g" \
    -e "s#@UPSTREAM@#${5:-}#g" "$1" >"$2"
}
render "$HERE/conf/uwsgi-apache.conf" "$RUN/apache/apache.conf"
render "$HERE/conf/uwsgi-fedgate.toml" "$RUN/fedgate-tcp/fedgate.toml" $P_FG_TCP "\"127.0.0.1:$P_FG_TCP_ADMIN\"" "uwsgi://127.0.0.1:$P_UWSGI"
render "$HERE/conf/uwsgi-fedgate.toml" "$RUN/fedgate-unix/fedgate.toml" $P_FG_UNIX "\"127.0.0.1:$P_FG_UNIX_ADMIN\"" "uwsgi://$SOCK"
render "$HERE/conf/uwsgi-fedgate.toml" "$RUN/before-tcp/fedgate.toml" $P_BEFORE_TCP "" "uwsgi://127.0.0.1:$P_UWSGI"
render "$HERE/conf/uwsgi-fedgate.toml" "$RUN/before-unix/fedgate.toml" $P_BEFORE_UNIX "" "uwsgi://$SOCK"

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
# --chmod-socket: Apache's children (www-data) connect to the unix socket too.
start uwsgi "$UWSGI" --master --die-on-term --processes "${UWSGI_PROCESSES:-8}" --thunder-lock \
  --uwsgi-socket "127.0.0.1:$P_UWSGI" --uwsgi-socket "$SOCK" --chmod-socket=666 --listen 1024 \
  --buffer-size 65535 --disable-logging --wsgi-file "$HERE/conf/uwsgi-app.py"
start apache env APACHE_RUN_USER=www-data APACHE_RUN_GROUP=www-data APACHE_RUN_DIR="$RUN/apache/run" \
  APACHE_LOCK_DIR="$RUN/apache/lock" APACHE_LOG_DIR="$RUN/apache/log" APACHE_PID_FILE="$RUN/apache/run/apache2.pid" \
  apache2 -d "$RUN/apache" -f "$RUN/apache/apache.conf" -DFOREGROUND
start fedgate-tcp "$FEDGATE" run --config "$RUN/fedgate-tcp/fedgate.toml"
start fedgate-unix "$FEDGATE" run --config "$RUN/fedgate-unix/fedgate.toml"
if [ -n "$BEFORE" ]; then
  start before-tcp "$BEFORE" run --config "$RUN/before-tcp/fedgate.toml"
  start before-unix "$BEFORE" run --config "$RUN/before-unix/fedgate.toml"
fi

for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
for port in $P_APACHE_TCP $P_APACHE_UNIX $P_FG_TCP $P_FG_UNIX ${BEFORE:+$P_BEFORE_TCP $P_BEFORE_UNIX}; do
  ok=0
  for _ in $(seq 100); do
    if curl -fsk "https://127.0.0.1:$port/v3" 2>/dev/null | grep -q '"v3.14"'; then ok=1; break; fi
    sleep 0.1
  done
  [ $ok = 1 ] || { log "$port does not proxy uWSGI's JSON"; tail -5 "$RUN"/*.out "$RUN"/apache/log/error.log 2>/dev/null; exit 1; }
done
log "all answer; measuring"

pid_of() { for e in "${PIDS[@]}"; do [ "${e%%:*}" != "$1" ] || echo "${e##*:}"; done; }
# One Apache serves both virtual hosts (the points are sequential, so its
# tree's CPU during a point is that point's); the Apache we started is
# `env`, which exec'd apache2: same pid.
TARGETS=(--target "apache-tcp=https://127.0.0.1:$P_APACHE_TCP/v3=$(pid_of apache)"
  --target "fedgate-tcp=https://127.0.0.1:$P_FG_TCP/v3=$(pid_of fedgate-tcp)")
[ -z "$BEFORE" ] || TARGETS+=(--target "before-tcp=https://127.0.0.1:$P_BEFORE_TCP/v3=$(pid_of before-tcp)")
TARGETS+=(--target "apache-unix=https://127.0.0.1:$P_APACHE_UNIX/v3=$(pid_of apache)"
  --target "fedgate-unix=https://127.0.0.1:$P_FG_UNIX/v3=$(pid_of fedgate-unix)")
[ -z "$BEFORE" ] || TARGETS+=(--target "before-unix=https://127.0.0.1:$P_BEFORE_UNIX/v3=$(pid_of before-unix)")
PAIRS=(--pair fedgate-tcp:apache-tcp --pair fedgate-unix:apache-unix)
[ -z "$BEFORE" ] || PAIRS+=(--pair before-tcp:apache-tcp --pair before-unix:apache-unix
  --pair fedgate-tcp:before-tcp --pair fedgate-unix:before-unix)
python3 "$HERE/bench.py" --out "$RUN/results" --reps "${REPS:-3}" --duration "${DURATION:-10}" --conc "${CONC:-16}" \
  --modes "${MODES:-keep-alive}" --baseline apache-tcp "${TARGETS[@]}" "${PAIRS[@]}" --upstream "$(pid_of uwsgi)"
{ echo "bench/uwsgi.sh on $(date -u +%FT%TZ), fedgate $FEDGATE${BEFORE:+, before = $BEFORE} ($(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src || echo '+dirty')), $("$UWSGI" --version | sed 's/^/uWSGI /'), $(apache2 -v | head -1), $(nproc) cores"
  echo; cat "$RUN/results/summary.md"; } >"$RUN/results/summary.txt"
cat "$RUN/results/summary.txt"
