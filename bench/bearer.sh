#!/usr/bin/env bash
# Bearer-token benchmark, one run, same IdP, same upstream:
#   * keep-alive req/s with one cached bearer token: fedgate vs Apache 2.4 +
#     mod_auth_openidc (Debian, AuthType oauth20, introspection, cached until exp)
#   * introspections caused by a burst of 1000 concurrent requests with one
#     fresh token, for both.
#
# usage: bench/bearer.sh            (env: DURATION=10 CONC=16 REPS=3 RUN=/tmp/fedgate-bench-bearer)
# needs: target/release/fedgate (cargo build --release), node+npm, nginx,
#        apache2 + libapache2-mod-auth-openidc, wrk, ab (apache2-utils), openssl, curl.
# Ports 18780-18784 on 127.0.0.1. Every process is started and stopped here, by pid.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${RUN:-/tmp/fedgate-bench-bearer}
DURATION=${DURATION:-10} CONC=${CONC:-16} REPS=${REPS:-3} BURST=${BURST:-1000}
P_IDP=18780 P_UP=18781 P_MAO=18782 P_FG=18783
FEDGATE=${FEDGATE:-$ROOT/target/release/fedgate}
PATH_AUTH=/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth
ISS=https://127.0.0.1:$P_IDP
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
log() { echo "[bench] $*" >&2; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; log "port $1 not up"; exit 1; }
ulimit -n 20000 2>/dev/null || true
[ -x "$FEDGATE" ] || { log "build first: cargo build --release"; exit 2; }
rm -rf "$RUN"; mkdir -p "$RUN"/{pki,up/htdocs,up/tmp,apache/run,apache/log,fg/ca}

# fedgate-none = the same fedgate on a route with auth = "none": the cost of
# TLS + proxying alone, to separate it from the bearer check.
# ---- PKI: one test CA; server cert for IdP, Apache and fedgate (RSA-2048)
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca -keyout "$RUN/pki/ca.key" -out "$RUN/pki/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$RUN/pki/key.pem" -out "$RUN/pki/req.pem" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' > "$RUN/pki/ext"
openssl x509 -req -in "$RUN/pki/req.pem" -CA "$RUN/pki/ca.pem" -CAkey "$RUN/pki/ca.key" -CAcreateserial -days 2 \
  -extfile "$RUN/pki/ext" -out "$RUN/pki/cert.pem" 2>/dev/null
chmod 644 "$RUN/pki/"*.pem

# ---- IdP (oidc-provider harness, https, access log off)
(cd "$ROOT/tests/harness/idp" && [ -d node_modules/oidc-provider ] || npm ci --no-audit --no-fund >&2)
IDP_TLS_CERT="$RUN/pki/cert.pem" IDP_TLS_KEY="$RUN/pki/key.pem" IDP_QUIET=1 IDP_STATE_DIR="$RUN/idp" \
  node "$ROOT/tests/harness/idp/idp.js" "bench=$P_IDP" > "$RUN/idp.log" 2>&1 &
PIDS+=($!)

# ---- common upstream: nginx, one small JSON for any path
echo '{"version": {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z", "links": [{"rel": "self", "href": "http://127.0.0.1/v3/"}], "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}}' > "$RUN/up/htdocs/keystone.json"
cat > "$RUN/up/nginx.conf" <<NGX
worker_processes 1; daemon off; pid $RUN/up/nginx.pid; error_log $RUN/up/error.log warn;
events { worker_connections 4096; }
http { access_log off; default_type application/json; keepalive_requests 1000000;
  client_body_temp_path $RUN/up/tmp/b; proxy_temp_path $RUN/up/tmp/p; fastcgi_temp_path $RUN/up/tmp/f; uwsgi_temp_path $RUN/up/tmp/u; scgi_temp_path $RUN/up/tmp/s;
  server { listen 127.0.0.1:$P_UP; root $RUN/up/htdocs; location / { try_files /keystone.json =404; } } }
NGX
nginx -c "$RUN/up/nginx.conf" -p "$RUN/up" &
PIDS+=($!)

# ---- Apache + mod_auth_openidc 2.4.12 (oauth20 resource server)
M=/etc/apache2/mods-available
cat > "$RUN/apache/apache.conf" <<APC
DefaultRuntimeDir $RUN/apache/run
PidFile $RUN/apache/run/httpd.pid
ServerName localhost
User www-data
Group www-data
ErrorLog $RUN/apache/log/error.log
LogLevel warn
KeepAlive On
MaxKeepAliveRequests 100000
Include $M/mpm_event.load
Include $M/mpm_event.conf
Include $M/authn_core.load
Include $M/authz_core.load
Include $M/authz_user.load
Include $M/mime.load
TypesConfig /etc/mime.types
Include $M/socache_shmcb.load
Include $M/ssl.load
Include $M/ssl.conf
Include $M/proxy.load
Include $M/proxy_http.load
Include $M/auth_openidc.load
Listen 127.0.0.1:$P_MAO
OIDCOAuthIntrospectionEndpoint $ISS/token/introspection
OIDCCABundlePath $RUN/pki/ca.pem
OIDCOAuthSSLValidateServer On
OIDCOAuthClientID gateway
OIDCOAuthClientSecret gateway-secret
OIDCOAuthIntrospectionEndpointAuth client_secret_basic
OIDCOAuthRemoteUserClaim sub
OIDCClaimPrefix "OIDC-"
OIDCClaimDelimiter ";"
<VirtualHost 127.0.0.1:$P_MAO>
  SSLEngine on
  SSLCertificateFile $RUN/pki/cert.pem
  SSLCertificateKeyFile $RUN/pki/key.pem
  <Location />
    AuthType oauth20
    Require valid-user
  </Location>
  ProxyPass / http://127.0.0.1:$P_UP/
</VirtualHost>
APC
APACHE_RUN_DIR=$RUN/apache/run APACHE_LOG_DIR=$RUN/apache/log apache2 -d "$RUN/apache" -f "$RUN/apache/apache.conf" -DFOREGROUND &
PIDS+=($!)
APACHE_PID=$!

# ---- fedgate
# The burst opens 1000 connections from 127.0.0.1 at once: the per-address
# limit (default 256, one host must not take every slot) is raised to let it
# through, as Apache has no such limit.
cat > "$RUN/fg/fedgate.toml" <<FG
[server]
listen = ["127.0.0.1:$P_FG"]
max_connections_per_ip = 4096
[admin]
listen = []
[tls]
certificate = "$RUN/pki/cert.pem"
private_key = "$RUN/pki/key.pem"
ca_dir = "$RUN/fg/ca"
client_auth = "none"
[upstream]
url = "http://127.0.0.1:$P_UP"
[logging]
level = "warn"
[[idp]]
name = "bench"
issuer = "$ISS"
client_id = "gateway"
client_secret = "gateway-secret"
ca_file = "$RUN/pki/ca.pem"
[[route]]
name = "baseline"
path = "^/none/"
auth = "none"
[[route]]
name = "openid"
path = "^/"
auth = "bearer"
FG
"$FEDGATE" run -c "$RUN/fg/fedgate.toml" > "$RUN/fg/fedgate.log" 2>&1 &
PIDS+=($!)
FG_PID=$!
for p in $P_IDP $P_UP $P_MAO $P_FG; do wait_port $p; done

C=(curl -sS --cacert "$RUN/pki/ca.pem")
mint() { "${C[@]}" -u cli:cli-secret -d grant_type=password -d username=alice -d password=alice-pw "$ISS/token" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'; }
introspections() { "${C[@]}" "$ISS/_harness/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"].get("introspection",0))'; }

# ---- sanity: both answer the upstream's JSON with a token, 401 without
T=$(mint)
for url in "https://127.0.0.1:$P_FG$PATH_AUTH" "https://127.0.0.1:$P_MAO$PATH_AUTH"; do
  body=$("${C[@]}" -H "Authorization: Bearer $T" "$url")
  case "$body" in *v3.14*) ;; *) log "no upstream answer from $url: $body"; exit 1;; esac
  code=$("${C[@]}" -o /dev/null -w '%{http_code}' "$url")
  [ "$code" = 401 ] || { log "$url without token: $code"; exit 1; }
done
log "sanity ok (fedgate $("$FEDGATE" --version 2>/dev/null || true), $(apache2 -v | head -1), MAO $(dpkg-query -W -f '${Version}' libapache2-mod-auth-openidc))"

# CPU ticks (utime+stime, + reaped children) of a process and its live children
cpu() { local t=0 p; for p in "$1" $(pgrep -P "$1"); do
  t=$((t + $(awk '{print $14+$15+$16+$17}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
TCK=$(getconf CLK_TCK)
printf 'rep,target,req_per_s,p50,p99,introspections,server_cpu_ms_per_req\n' > "$RUN/results.csv"
for rep in $(seq "$REPS"); do
  for target in fedgate mao fedgate-none; do
    url=https://127.0.0.1:$P_FG$PATH_AUTH
    [ $target = mao ] && url=https://127.0.0.1:$P_MAO$PATH_AUTH
    [ $target = fedgate-none ] && url=https://127.0.0.1:$P_FG/none$PATH_AUTH
    pid=$FG_PID; [ $target = mao ] && pid=$APACHE_PID
    sleep 2
    i0=$(introspections); c0=$(cpu $pid)
    out=$(wrk -t2 -c"$CONC" -d"${DURATION}s" --timeout 5s --latency -H "Authorization: Bearer $T" "$url")
    i1=$(introspections); c1=$(cpu $pid)
    reqs=$(awk '/requests in/ {print $1}' <<< "$out")
    cpums=$(python3 -c "print(round(($c1-$c0)*1000/$TCK/$reqs, 4))")
    rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
    p50=$(awk '$1=="50%" {print $2}' <<< "$out"); p99=$(awk '$1=="99%" {print $2}' <<< "$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<< "$out")
    [ -z "$non2xx" ] || { log "$target: $non2xx non-2xx answers"; exit 1; }
    echo "$rep,$target,$rps,$p50,$p99,$((i1 - i0)),$cpums" >> "$RUN/results.csv"
    log "rep $rep $target: $rps req/s p50 $p50 p99 $p99 introspections $((i1 - i0)) server CPU ${cpums} ms/req"
  done
done

# ---- burst: BURST concurrent requests with one fresh token
burst() {
  local port=$1 tok i0 i1 out
  tok=$(mint); i0=$(introspections)
  out=$(ab -q -n "$BURST" -c "$BURST" -s 60 -H "Authorization: Bearer $tok" "https://127.0.0.1:$port$PATH_AUTH" 2>&1)
  i1=$(introspections)
  local failed non2xx
  failed=$(awk '/^Failed requests/ {print $3}' <<< "$out"); non2xx=$(awk '/^Non-2xx/ {print $3}' <<< "$out")
  echo "$((i1 - i0)) ${failed:-?} ${non2xx:-0}"
}
read -r FG_INTRO FG_FAIL FG_NON2XX <<< "$(burst $P_FG)"
read -r MAO_INTRO MAO_FAIL MAO_NON2XX <<< "$(burst $P_MAO)"

python3 - "$RUN/results.csv" "$FG_INTRO" "$FG_FAIL" "$FG_NON2XX" "$MAO_INTRO" "$MAO_FAIL" "$MAO_NON2XX" "$BURST" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
med = lambda t, k: statistics.median(float(r[k]) for r in rows if r['target'] == t)
ratios = [float(a['req_per_s']) / float(b['req_per_s']) for a, b in zip(
    [r for r in rows if r['target'] == 'fedgate'], [r for r in rows if r['target'] == 'mao'])]
print(f"keep-alive, cached token ({len(ratios)} interleaved reps, median):")
for t in ('fedgate', 'mao', 'fedgate-none'):
    per = ', '.join(r['req_per_s'] for r in rows if r['target'] == t)
    print(f"  {t:12s} {med(t, 'req_per_s'):9.0f} req/s   server CPU {med(t, 'server_cpu_ms_per_req'):.3f} ms/req   (req/s per rep: {per})")
print(f"  ratio fedgate/MAO: median {statistics.median(ratios):.2f}x (per rep: {', '.join(f'{r:.2f}' for r in ratios)})")
cr = [float(b['server_cpu_ms_per_req']) / float(a['server_cpu_ms_per_req']) for a, b in zip(
    [r for r in rows if r['target'] == 'fedgate'], [r for r in rows if r['target'] == 'mao'])]
print(f"  CPU per request, MAO/fedgate: median {statistics.median(cr):.2f}x (per rep: {', '.join(f'{r:.2f}' for r in cr)})")
fi, ff, fn, mi, mf, mn, n = sys.argv[2:]
print(f"burst of {n} concurrent requests with one fresh token:")
print(f"  fedgate: {fi} introspection(s), failed {ff}, non-2xx {fn}")
print(f"  MAO:     {mi} introspection(s), failed {mf}, non-2xx {mn}")
PY
log "raw: $RUN/results.csv"
