#!/usr/bin/env bash
# Capacity: what one fedgate node costs per request and per login, with
# each shared-state backend, so that a site can size a deployment
# (docs/reliability.md, "Capacity").
#
#   bench/capacity.sh            (env: DURATION=10 CONC=16 LOGINS=100 STATES="memory memcached redis"
#                                 FEDGATE_BIN=path: that binary, no release build)
#
# For each [state] backend: a release fedgate in front of a static nginx
# upstream, the oidc-provider IdP harness, and (for memcached/redis) the
# Debian server on a private port. Measured per backend:
#   - logins: LOGINS full OIDC code-flow logins, 4 at a time
#     (bench/websso_logins.py): logins/s, and fedgate's CPU per login;
#   - session: wrk on the WebSSO route with one valid session cookie
#     (cookie open + store lookup + identity): req/s, p50/p99, fedgate's
#     CPU per request, and the store server's CPU per request;
#   - none: wrk on a route without authentication (the floor).
# CPU is utime+stime from /proc before and after each point, divided by
# the requests done: the figure that stays stable on a noisy 2-core box.
# Ports 18890-18899. Output: a table on stdout and bench/results/capacity-<time>.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d /tmp/fedgate-bench-capacity.XXXXXX)
IDP=18890; GATE=18891; UP=18892; MC=18893; RD=18894
DUR=${DURATION:-10}; CONC=${CONC:-16}; LOGINS=${LOGINS:-100}
STATES=${STATES:-memory memcached redis}
OUT=$ROOT/bench/results/capacity-$(date -u +%Y%m%dT%H%MZ).txt
PIDS=()
GATE_PID=""; STORE_PID=""
cleanup() {
  for p in "${PIDS[@]}" $GATE_PID $STORE_PID; do kill "$p" 2>/dev/null || true; done
  [ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; exit 1; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

FEDGATE=${FEDGATE_BIN:-$ROOT/target/release/fedgate}
[ -n "${FEDGATE_BIN:-}" ] || (cd "$ROOT" && cargo build --release -q)
[ -d "$ROOT/tests/harness/idp/node_modules" ] || (cd "$ROOT/tests/harness/idp" && npm ci --no-audit --no-fund -q)

mkdir -p "$W/html" "$W/tmp" "$W/ca"; chmod 755 "$W" "$W/html"
echo '{"version":{"id":"v3.14","status":"stable"}}' > "$W/html/k.json"
cat > "$W/nginx.conf" <<NG
worker_processes 1; pid $W/nginx.pid; error_log $W/nginx.err warn; daemon on;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $W/tmp; proxy_temp_path $W/tmp; fastcgi_temp_path $W/tmp; uwsgi_temp_path $W/tmp; scgi_temp_path $W/tmp;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$UP; root $W/html; default_type application/json; location / { try_files /k.json =404; } } }
NG
nginx -c "$W/nginx.conf"
IDP_STATE_DIR="$W/idp" IDP_QUIET=1 IDP_REDIRECT_URIS="https://localhost:$GATE/v3/auth/OS-FEDERATION/websso/openid/redirect" \
  node "$ROOT/tests/harness/idp/idp.js" "a=$IDP" > "$W/idp.log" 2>&1 & PIDS+=($!)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/k.pem" -out "$W/c.pem" -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
KEY=$(head -c 32 /dev/urandom | base64)
wait_port $IDP

URL="https://localhost:$GATE/v3/auth/OS-FEDERATION/websso/openid?origin=https://horizon.test/dashboard/auth/websso/"
{
  echo "# bench/capacity.sh $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), conc=$CONC duration=${DUR}s logins=$LOGINS"
  printf '%-10s %-8s %10s %9s %9s %14s %14s\n' state point "per_s" p50_ms p99_ms fedgate_cpu_ms store_cpu_ms
} | tee "$OUT"

# wrk at CONC for DUR; prints "req/s p50 p99 fedgate_ms store_ms".
point() {
  local f0 s0 f1 s1 out rps n
  f0=$(ticks "$GATE_PID"); s0=0; [ -n "$STORE_PID" ] && s0=$(ticks "$STORE_PID")
  out=$(wrk -t2 -c"$CONC" -d"${DUR}s" --latency "$@")
  f1=$(ticks "$GATE_PID"); s1=0; [ -n "$STORE_PID" ] && s1=$(ticks "$STORE_PID")
  if echo "$out" | grep -q "Non-2xx"; then echo "non-2xx answers: $out" >&2; exit 1; fi
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  local p50 p99
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  python3 - "$rps" "$p50" "$p99" "$n" "$((f1 - f0))" "$((s1 - s0))" "$TCK" <<'PY'
import sys
rps, p50, p99, n, f, s, tck = sys.argv[1:]
def ms(v):
    return float(v[:-2]) if v.endswith("ms") else float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-1]) * 1000
n = int(n); tck = int(tck)
print(f"{float(rps):10.0f} {ms(p50):9.2f} {ms(p99):9.2f} {int(f)*1000/tck/n:14.4f} {int(s)*1000/tck/n:14.4f}")
PY
}

for state in $STATES; do
  STORE_PID=""
  case $state in
    memory) STATE_TOML='backend = "memory"' ;;
    memcached)
      memcached -u "$(id -un)" -l 127.0.0.1 -p $MC -U 0 -m 64 -t 1 & STORE_PID=$!
      wait_port $MC
      STATE_TOML="backend = \"memcached\"
servers = [\"127.0.0.1:$MC\"]
keys = [\"$KEY\"]" ;;
    redis)
      redis-server --port $RD --bind 127.0.0.1 --save '' --appendonly no --dir "$W" >"$W/redis.log" 2>&1 & STORE_PID=$!
      wait_port $RD
      STATE_TOML="backend = \"redis\"
url = \"redis://127.0.0.1:$RD/0\"
keys = [\"$KEY\"]" ;;
    *) echo "unknown state $state" >&2; exit 2 ;;
  esac
  cat > "$W/f.toml" <<CFG
[server]
listen = ["127.0.0.1:$GATE"]
[admin]
listen = []
[tls]
certificate = "$W/c.pem"
private_key = "$W/k.pem"
ca_dir = "$W/ca"
client_auth = "none"
[upstream]
url = "http://127.0.0.1:$UP"
[logging]
level = "warn"
[state]
$STATE_TOML
[[idp]]
name = "egi"
issuer = "http://127.0.0.1:$IDP"
client_id = "gateway"
client_secret = "gateway-secret"
[oidc]
trusted_dashboards = ["https://horizon.test/dashboard/auth/websso/"]
[oidc.session]
keys = ["$KEY"]
[[route]]
name = "websso"
path = "^/v3/auth/OS-FEDERATION/websso/openid$"
auth = "oidc"
[[route]]
name = "plain"
path = "^/"
auth = "none"
CFG
  "$FEDGATE" run --config "$W/f.toml" 2> "$W/fedgate-$state.log" & GATE_PID=$!
  wait_port $GATE

  # logins, with fedgate's CPU per login
  f0=$(ticks "$GATE_PID")
  lj=$(python3 "$ROOT/bench/websso_logins.py" "$URL" --logins "$LOGINS" --concurrency 4 | tail -1)
  f1=$(ticks "$GATE_PID")
  python3 - "$state" "$lj" "$((f1 - f0))" "$TCK" "$LOGINS" <<'PY' | tee -a "$OUT"
import json, sys
state, j, f, tck, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if j.get("failures"):
    sys.exit(f"{state}: {j['failures']} failed logins")
print(f"{state:<10} {'login':<8} {j['logins_per_s']:10.1f} {j['p50_ms']:9.1f} {j['p99_ms']:9.1f} {f*1000/tck/n:14.3f} {'-':>14}")
PY

  # one session cookie
  python3 - "$URL" "$W/cookie" <<'PY'
import sys, http.cookiejar, ssl, urllib.request, urllib.parse, re
url, out = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
jar = http.cookiejar.CookieJar()
op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), urllib.request.HTTPSHandler(context=ctx))
r = op.open(urllib.request.Request(url, headers={"Accept": "text/html"}))
body = r.read().decode(); cur = r.geturl()
for _ in range(4):
    if 'id="login"' in body:
        a = urllib.parse.urljoin(cur, re.search(r'action="([^"]+)"', body).group(1))
        r = op.open(urllib.request.Request(a, data=b"username=alice&password=alice-pw", headers={"Accept": "text/html"}))
    elif 'id="consent"' in body:
        a = urllib.parse.urljoin(cur, re.search(r'id="consent" method="post" action="([^"]+)"', body).group(1))
        r = op.open(urllib.request.Request(a, data=b"", headers={"Accept": "text/html"}))
    else:
        break
    body = r.read().decode(); cur = r.geturl()
c = [c for c in jar if c.name == "fedgate_session"]
if not c:
    sys.exit("no session cookie after the login")
open(out, "w").write(f"{c[0].name}={c[0].value}")
PY
  echo "$state session $(point -H "Cookie: $(cat "$W/cookie")" -H 'Accept: application/json' "$URL")" |
    awk '{printf "%-10s %-8s %10s %9s %9s %14s %14s\n", $1, $2, $3, $4, $5, $6, $7}' | tee -a "$OUT"
  sleep 1
  echo "$state none $(point "https://localhost:$GATE/v3/plain")" |
    awk '{printf "%-10s %-8s %10s %9s %9s %14s %14s\n", $1, $2, $3, $4, $5, $6, $7}' | tee -a "$OUT"
  kill "$GATE_PID"; wait "$GATE_PID" 2>/dev/null || true; GATE_PID=""
  [ -n "$STORE_PID" ] && { kill "$STORE_PID"; wait "$STORE_PID" 2>/dev/null || true; STORE_PID=""; }
  sleep 1
done
echo "== $OUT"
