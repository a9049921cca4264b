#!/usr/bin/env bash
# X.509 benchmark: fedgate vs Apache + mod_ssl + mod_gridsite, same run,
# same generated credentials, same load generator (ApacheBench, which can
# present a client certificate chain).
#   bench/x509.sh [OUTDIR]        (default /tmp/fedgate-bench-x509)
# Scenarios (concurrency $CONC, $DURATION s each):
#   hs_user   new TLS handshake per request, plain user certificate
#   hs_proxy2 new TLS handshake per request, 2-level proxy chain with a VOMS AC
#   ka_proxy  keep-alive requests, RFC VOMS proxy
# fedgate forwards to a trivial WSGI app under uWSGI (the uwsgi protocol,
# full gridsite environ); Apache answers from its own static vhost (it does
# strictly less work: no upstream hop). Also reports server CPU ms per
# request from /proc (fedgate process; Apache parent + children).
# Ports 18720-18729: fedgate 18720, Apache static 18721 / cgi 18723, uWSGI 18722.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-/tmp/fedgate-bench-x509}
CONC=${CONC:-16}; DURATION=${DURATION:-10}; MAXREQ=${MAXREQ:-200000}
for t in ab apache2 openssl voms-proxy-fake grid-proxy-init; do
  command -v $t >/dev/null || { echo "bench: missing $t" >&2; exit 3; }
done
mkdir -p "$OUT"
PKI="$OUT/pki"
[ -f "$PKI/.complete" ] || bash "$HERE/tests/fixtures/pki/mkpki.sh" "$PKI" >/dev/null
( cd "$HERE" && cargo build --release --quiet )
FG="$HERE/target/release/fedgate"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  bash "$HERE/tests/harness/gridsite/apache.sh" stop "$OUT/apache" || true
}
trap cleanup EXIT

# A minimal WSGI app under uWSGI stands in for Keystone behind fedgate
# (uwsgi protocol, as in production; buffer-size as Keystone needs).
UWSGI=${UWSGI:-$(command -v uwsgi || echo "$HOME/.cache/fedgate/keystone-venv/bin/uwsgi")}
[ -x "$UWSGI" ] || { echo "bench: missing uwsgi (set UWSGI=...)" >&2; exit 3; }
cat > "$OUT/app.py" <<'PY'
def application(environ, start_response):
    body = b'{"version":{"id":"v3"}}\n'
    # A length, so HTTP/1.0 keep-alive clients (ab -k) can reuse the connection.
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
PY
"$UWSGI" --uwsgi-socket 127.0.0.1:18722 --master --die-on-term --processes 2 --buffer-size 65535 --wsgi-file "$OUT/app.py" \
  --disable-logging > "$OUT/uwsgi.log" 2>&1 & pids+=($!)
cat > "$OUT/fedgate.toml" <<TOML
[server]
listen = ["127.0.0.1:18720"]
[admin]
listen = []
[tls]
certificate = "$PKI/host.pem"
private_key = "$PKI/host.key"
ca_dir = "$PKI/certificates"
client_auth = "optional"
[upstream]
url = "uwsgi://127.0.0.1:18722"
[logging]
level = "warn"
[[route]]
path = "^/"
auth = "x509"
TOML
"$FG" run -c "$OUT/fedgate.toml" > "$OUT/fedgate.log" 2>&1 & FGPID=$!; pids+=($FGPID)
APPID=$(bash "$HERE/tests/harness/gridsite/apache.sh" start "$PKI" "$OUT/apache" 18723 18721)
sleep 1

ticks() { # ticks PID : utime+stime+cutime+cstime of PID and its descendants
  local total=0 p
  for p in $1 $(pgrep -P "$1" 2>/dev/null) $(for c in $(pgrep -P "$1" 2>/dev/null); do pgrep -P "$c"; done); do
    [ -r /proc/$p/stat ] || continue
    total=$(( total + $(awk '{print $14+$15+$16+$17}' /proc/$p/stat) ))
  done
  echo $total
}
HZ=$(getconf CLK_TCK)

run() { # run NAME SERVERPID URL ab-args...
  local name=$1 pid=$2 url=$3; shift 3
  local t0 t1 rps done_ fails
  t0=$(ticks "$pid")
  ab -q -c "$CONC" -t "$DURATION" -n "$MAXREQ" "$@" "$url" > "$OUT/$name.ab" 2>&1 || true
  t1=$(ticks "$pid")
  rps=$(awk '/Requests per second/{print $4}' "$OUT/$name.ab")
  done_=$(awk '/Complete requests/{print $3}' "$OUT/$name.ab")
  fails=$(awk '/Failed requests/{print $3}' "$OUT/$name.ab")
  local non2xx; non2xx=$(awk '/Non-2xx responses/{print $3}' "$OUT/$name.ab"); non2xx=${non2xx:-0}
  local cpu; cpu=$(awk -v a="$t0" -v b="$t1" -v n="${done_:-0}" -v hz="$HZ" 'BEGIN{ if (n>0) printf "%.2f", (b-a)*1000/hz/n; else print "-" }')
  printf '%-22s %10s req/s  %7s done  %4s failed  %4s non-2xx  %6s CPU-ms/req\n' "$name" "${rps:-0}" "${done_:-0}" "${fails:-?}" "$non2xx" "$cpu" | tee -a "$OUT/results.txt"
}

: > "$OUT/results.txt"
echo "# $(date -u +%FT%TZ) conc=$CONC duration=${DURATION}s $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/results.txt"
C="$PKI/creds"
for srv in fedgate apache; do
  if [ $srv = fedgate ]; then pid=$FGPID; url=https://127.0.0.1:18720/v3/auth; else pid=$APPID; url=https://127.0.0.1:18721/static.json; fi
  # Sanity: the identity is really established (fedgate answers 401 otherwise).
  run "${srv}_hs_user" "$pid" "$url" -E "$C/eec_alice.pem"
  run "${srv}_hs_proxy2" "$pid" "$url" -E "$C/depth2_voms.pem"
  run "${srv}_ka_proxy" "$pid" "$url" -k -E "$C/rfc_voms.pem"
done
awk '
  { r[$1]=$2; c[$1]=$10; n[$1]=$8 }
  END {
    split("hs_user hs_proxy2 ka_proxy", s, " ")
    for (i=1;i<=3;i++) { f=r["fedgate_" s[i]]; a=r["apache_" s[i]];
      printf "%-10s fedgate/apache req/s ratio %.1fx  CPU-ms/req fedgate %s apache %s (%.1fx less)  non-2xx %s/%s\n", s[i], (a>0?f/a:0), c["fedgate_" s[i]], c["apache_" s[i]], (c["fedgate_" s[i]]>0?c["apache_" s[i]]/c["fedgate_" s[i]]:0), n["fedgate_" s[i]], n["apache_" s[i]] }
  }' "$OUT/results.txt" | tee -a "$OUT/results.txt"
