#!/usr/bin/env bash
# Where a new TLS connection with a 2-level VOMS proxy spends fedgate's CPU:
# perf (DWARF call graphs) on one fedgate serving `ab -E depth2_voms.pem`
# (a new handshake per request, 8 at a time, 20 s), then the inclusive
# shares of the interesting frames.
#   bench/x509_profile.sh BINARY NAME [OUTDIR]   (default /tmp/fedgate-bench-x509)
# BINARY should have symbols: `cargo build --profile profiling`.
# env: PORT_BASE (default 18720): fedgate +6, admin +7, uWSGI +8.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=$1 NAME=$2 OUT=${3:-/tmp/fedgate-bench-x509}
B=${PORT_BASE:-18720}
P_FG=$((B + 6)) P_ADMIN=$((B + 7)) P_UW=$((B + 8))
for t in ab perf curl; do command -v $t >/dev/null || { echo "profile: missing $t" >&2; exit 3; }; done
UWSGI=${UWSGI:-$(command -v uwsgi || echo "$HOME/.cache/fedgate/keystone-venv/bin/uwsgi")}
mkdir -p "$OUT"; PKI="$OUT/pki"
[ -f "$PKI/.complete" ] || bash "$HERE/tests/fixtures/pki/mkpki.sh" "$PKI" >/dev/null
cat > "$OUT/app.py" <<'PY'
def application(environ, start_response):
    body = b'{"ok":true}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
PY
cat > "$OUT/profile.toml" <<TOML
[server]
listen = ["127.0.0.1:$P_FG"]
[admin]
listen = ["127.0.0.1:$P_ADMIN"]
[tls]
certificate = "$PKI/host.pem"
private_key = "$PKI/host.key"
ca_dir = "$PKI/certificates"
client_auth = "optional"
[voms]
dir = "$PKI/vomsdir"
[upstream]
url = "uwsgi://127.0.0.1:$P_UW"
[logging]
level = "warn"
[[route]]
path = "^/"
auth = "x509"
TOML
"$UWSGI" --uwsgi-socket 127.0.0.1:$P_UW --master --die-on-term --processes 2 --buffer-size 65535 \
  --wsgi-file "$OUT/app.py" --disable-logging > "$OUT/uwsgi-profile.log" 2>&1 & UW=$!
"$BIN" run -c "$OUT/profile.toml" > "$OUT/fedgate-$NAME.log" 2>&1 & FG=$!
trap 'kill $FG $UW 2>/dev/null || true' EXIT
sleep 1.5
curl -fsk --cert "$PKI/creds/depth2_voms.pem" "https://127.0.0.1:$P_FG/v3/auth" >/dev/null
perf record -F 299 --call-graph dwarf,16384 -o "$OUT/perf-$NAME.data" -p $FG -- sleep 20 >/dev/null 2>&1 & PR=$!
ab -q -c 8 -t 20 -n 100000 -E "$PKI/creds/depth2_voms.pem" "https://127.0.0.1:$P_FG/v3/auth" > "$OUT/ab-$NAME.txt" 2>&1 || true
wait $PR || true
curl -s "http://127.0.0.1:$P_ADMIN/metrics" | grep -E '^fedgate_(x509|tls_)' || true
grep -E "Complete|Failed|Non-2xx|per second" "$OUT/ab-$NAME.txt"
echo "# inclusive share of fedgate's samples (perf report --children)"
perf report -i "$OUT/perf-$NAME.data" --children --sort symbol --stdio -g none 2>/dev/null \
  | grep -E '^ +[0-9]' | sed -E 's/ +$//' | grep -E 'accept_loop::\{\{closure\}\}::\{\{closure\}\}$|emit_certificate_verify_tls13|X509Authenticator::evaluate$|X509Authenticator::evaluate \(inlined\)$|Validator::validate|Validator::check_signature|Cert::parse$|voms::evaluate::evaluate|gridsite::env$|UwsgiUpstream::send|verify_tls13_signature$|emit_ticket|PathCache' \
  | cut -c1-160
