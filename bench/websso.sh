#!/usr/bin/env bash
# WebSSO benchmark: logins per second through fedgate (full code flow at a
# real oidc-provider, browser-free), and the cost of checking a session per
# request (wrk on the WebSSO route with a session cookie, against the same
# route without authentication). Upstream: a private nginx serving a small
# static JSON, so fedgate and the IdP are what is measured.
#
#   bench/websso.sh            (needs: cargo, node + tests/harness/idp npm packages, nginx, wrk, python3)
# Ports 18880-18889. Everything is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d /tmp/fedgate-bench-websso.XXXXXX)
IDP=18880; GATE=18881; UP=18882
DUR=${DURATION:-10}; LOGINS=${LOGINS:-200}
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; [ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; exit 1; }

(cd "$ROOT" && cargo build --release -q)
[ -d "$ROOT/tests/harness/idp/node_modules" ] || (cd "$ROOT/tests/harness/idp" && npm ci --no-audit --no-fund -q)

# upstream: static JSON
mkdir -p "$W/html" "$W/tmp"; chmod 755 "$W" "$W/html"
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
mkdir -p "$W/ca"
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
[[idp]]
name = "egi"
issuer = "http://127.0.0.1:$IDP"
client_id = "gateway"
client_secret = "gateway-secret"
[oidc]
trusted_dashboards = ["https://horizon.test/dashboard/auth/websso/"]
[[route]]
name = "websso"
path = "^/v3/auth/OS-FEDERATION/websso/openid$"
auth = "oidc"
[[route]]
name = "plain"
path = "^/"
auth = "none"
CFG
"$ROOT/target/release/fedgate" run --config "$W/f.toml" 2> "$W/fedgate.log" & PIDS+=($!)
wait_port $IDP; wait_port $GATE
URL="https://localhost:$GATE/v3/auth/OS-FEDERATION/websso/openid?origin=https://horizon.test/dashboard/auth/websso/"

echo "== logins: $LOGINS full code-flow logins, 4 concurrent (fedgate + IdP + upstream on 2 cores)"
python3 "$ROOT/bench/websso_logins.py" "$URL" --logins "$LOGINS" --concurrency 4

# one session cookie for the per-request check: one login, keeping the jar
JAR="$W/jar"
python3 - "$URL" "$JAR" <<'PY'
import sys, http.cookiejar, ssl, urllib.request, urllib.parse, re
url, jarfile = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
jar = http.cookiejar.MozillaCookieJar()
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
for c in jar:
    if c.name == "fedgate_session":
        open(jarfile + ".cookie", "w").write(f"{c.name}={c.value}")
PY
SESSION=$(cat "$JAR.cookie")
echo "== session check: wrk -t2 -c16 -d${DUR}s, same upstream"
echo "-- WebSSO route with a valid session cookie (origin check + cookie open + session lookup + claims to identity)"
wrk -t2 -c16 -d"${DUR}s" --latency -H "Cookie: $SESSION" -H 'Accept: application/json' "$URL" | grep -E "Requests/sec|50%|99%|Non-2xx"
sleep 2
echo "-- same gateway, route without authentication"
wrk -t2 -c16 -d"${DUR}s" --latency "https://localhost:$GATE/v3/plain" | grep -E "Requests/sec|50%|99%|Non-2xx"
