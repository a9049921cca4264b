#!/usr/bin/env bash
# X.509 benchmark: fedgate vs Apache + mod_ssl + mod_gridsite, same run,
# same generated credentials, same load generators: ApacheBench (which can
# present a client certificate chain) and, for resumed TLS sessions (ab
# cannot resume), bench/tls_resume.py.
#   bench/x509.sh [OUTDIR]        (default /tmp/fedgate-bench-x509)
# Scenarios (concurrency $CONC, $DURATION s each, $REPS interleaved
# repetitions: every scenario on every server in each repetition):
#   hs_plain  new TLS handshake per request, no client certificate
#   hs_user   new TLS handshake per request, plain user certificate
#   hs_proxy2 new TLS handshake per request, 2-level proxy chain with a VOMS AC
#   rs_proxy2 resumed TLS session per request, same 2-level VOMS proxy
#             ($CONC client processes; each offers its previous session)
#   nd_plain, nd_proxy2  new TLS handshake per request, no certificate /
#             2-level VOMS proxy, from bench/tls_resume.py with TCP_NODELAY
#             sockets as urllib3 (the openstack CLI) makes them. ab's
#             sockets wait ~40 ms per handshake whose client flight
#             exceeds 4 kB (Nagle against the delayed ACK; see
#             tls_resume.py), so hs_proxy2 runs at a fraction of
#             hs_plain's rate and its CPU per request carries the
#             per-wakeup costs that a loaded server spreads over many
#             connections; nd_proxy2 / nd_plain compares the two at
#             similar rates (issue 16, goal 5)
#   ka_proxy  keep-alive requests, RFC VOMS proxy
#   ka_plain  keep-alive requests without a certificate on a route without
#             authentication, same upstream: the floor ka_proxy is compared
#             with (issue 16: X.509 keep-alive ≤ no-auth + 0.01 ms)
# fedgate forwards to a trivial WSGI app under uWSGI (the uwsgi protocol,
# full gridsite environ); Apache answers from its own static vhost (it does
# strictly less work: no upstream hop). Also reports server CPU ms per
# request from /proc (fedgate process; Apache parent + children), medians
# over the repetitions, and ratios.
# env: SCENARIOS="ka_proxy ka_plain" (a subset), FEDGATE_BIN=path (skip the release build), FEDGATE_BASELINE=path (a
# second fedgate, e.g. the previous release, measured in the same run as
# "before"), PORT_BASE (default 18720): fedgate +0, Apache static +1,
# uWSGI +2, Apache cgi +3, baseline fedgate +4, fedgate admin +5.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-/tmp/fedgate-bench-x509}
CONC=${CONC:-16}; DURATION=${DURATION:-10}; MAXREQ=${MAXREQ:-200000}; REPS=${REPS:-3}
B=${PORT_BASE:-18720}
P_FG=$B P_AP=$((B + 1)) P_UW=$((B + 2)) P_CGI=$((B + 3)) P_BASE=$((B + 4)) P_ADMIN=$((B + 5))
for t in ab apache2 openssl voms-proxy-fake grid-proxy-init python3; do
  command -v $t >/dev/null || { echo "bench: missing $t" >&2; exit 3; }
done
mkdir -p "$OUT"
PKI="$OUT/pki"
[ -f "$PKI/.complete" ] || bash "$HERE/tests/fixtures/pki/mkpki.sh" "$PKI" >/dev/null
if [ -z "${FEDGATE_BIN:-}" ]; then
  ( cd "$HERE" && cargo build --release --quiet )
  FEDGATE_BIN="$HERE/target/release/fedgate"
fi

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
"$UWSGI" --uwsgi-socket 127.0.0.1:$P_UW --master --die-on-term --processes 2 --buffer-size 65535 --wsgi-file "$OUT/app.py" \
  --disable-logging > "$OUT/uwsgi.log" 2>&1 & pids+=($!)
fedgate_conf() { # fedgate_conf PORT ADMIN-LISTEN
  cat <<TOML
[server]
listen = ["127.0.0.1:$1"]
[admin]
listen = [$2]
[tls]
certificate = "$PKI/host.pem"
private_key = "$PKI/host.key"
ca_dir = "$PKI/certificates"
client_auth = "optional"
# The ACs are checked as Apache's gridsite checks them (same vomsdir).
[voms]
dir = "$PKI/vomsdir"
[upstream]
url = "uwsgi://127.0.0.1:$P_UW"
[logging]
level = "warn"
# The plain-handshake point: no client certificate, no authentication.
[[route]]
path = "^/plain"
auth = "none"
[[route]]
path = "^/"
auth = "x509"
TOML
}
fedgate_conf $P_FG "\"127.0.0.1:$P_ADMIN\"" > "$OUT/fedgate.toml"
"$FEDGATE_BIN" run -c "$OUT/fedgate.toml" > "$OUT/fedgate.log" 2>&1 & FGPID=$!; pids+=($FGPID)
SERVERS="fedgate apache"
if [ -n "${FEDGATE_BASELINE:-}" ]; then
  fedgate_conf $P_BASE "" > "$OUT/baseline.toml"
  "$FEDGATE_BASELINE" run -c "$OUT/baseline.toml" > "$OUT/baseline.log" 2>&1 & BASEPID=$!; pids+=($BASEPID)
  SERVERS="baseline fedgate apache"
fi
APPID=$(bash "$HERE/tests/harness/gridsite/apache.sh" start "$PKI" "$OUT/apache" $P_CGI $P_AP)
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

# One line per point: rep name req/s done failed non-2xx CPU-ms/req resumed
line() { # line REP NAME T0 T1 RPS DONE FAILS NON2XX RESUMED
  local cpu; cpu=$(awk -v a="$3" -v b="$4" -v n="${6:-0}" -v hz="$HZ" 'BEGIN{ if (n>0) printf "%.3f", (b-a)*1000/hz/n; else print "-" }')
  printf 'rep%s %-22s %10s req/s  %7s done  %4s failed  %4s non-2xx  %7s CPU-ms/req  %6s resumed\n' \
    "$1" "$2" "${5:-0}" "${6:-0}" "${7:-?}" "${8:-0}" "$cpu" "${9:--}" | tee -a "$OUT/results.txt"
}

run() { # run REP NAME SERVERPID URL ab-args...
  local rep=$1 name=$2 pid=$3 url=$4; shift 4
  local t0 t1
  t0=$(ticks "$pid")
  ab -q -c "$CONC" -t "$DURATION" -n "$MAXREQ" "$@" "$url" > "$OUT/$name.$rep.ab" 2>&1 || true
  t1=$(ticks "$pid")
  local f="$OUT/$name.$rep.ab" non2xx
  non2xx=$(awk '/Non-2xx responses/{print $3}' "$f")
  line "$rep" "$name" "$t0" "$t1" "$(awk '/Requests per second/{print $4}' "$f")" \
    "$(awk '/Complete requests/{print $3}' "$f")" "$(awk '/Failed requests/{print $3}' "$f")" "${non2xx:-0}" -
}

run_resumed() { # run_resumed REP NAME SERVERPID PORT PATH CERT [--resume]
  local rep=$1 name=$2 pid=$3 t0 t1 j
  t0=$(ticks "$pid")
  j=$(python3 "$HERE/bench/tls_resume.py" --port "$4" --path "$5" ${6:+--cert "$6"} ${7:-} \
    --procs "$CONC" --duration "$DURATION")
  t1=$(ticks "$pid")
  echo "$j" > "$OUT/$name.$rep.json"
  get() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$1'])" "$j"; }
  line "$rep" "$name" "$t0" "$t1" "$(get rps)" "$(get completed)" "$(get failed)" "$(get non2xx)" "$(get resumed)"
}

: > "$OUT/results.txt"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# $(date -u +%FT%TZ) conc=$CONC duration=${DURATION}s reps=$REPS $(nproc) cores, load at start $LOAD0" | tee -a "$OUT/results.txt"
C="$PKI/creds"
for rep in $(seq "$REPS"); do
  for scen in ${SCENARIOS:-hs_plain hs_user hs_proxy2 rs_proxy2 ka_proxy ka_plain nd_plain nd_proxy2}; do
    for srv in $SERVERS; do
      case $srv in
        fedgate) pid=$FGPID; port=$P_FG; path=/v3/auth; plain=/plain ;;
        baseline) pid=$BASEPID; port=$P_BASE; path=/v3/auth; plain=/plain ;;
        apache) pid=$APPID; port=$P_AP; path=/static.json; plain=/static.json ;;
      esac
      url=https://127.0.0.1:$port
      sleep 1
      # Sanity: the identity is really established (fedgate answers 401
      # otherwise, and every 401 is counted as non-2xx).
      case $scen in
        hs_plain) run "$rep" "${srv}_$scen" "$pid" "$url$plain" ;;
        hs_user) run "$rep" "${srv}_$scen" "$pid" "$url$path" -E "$C/eec_alice.pem" ;;
        hs_proxy2) run "$rep" "${srv}_$scen" "$pid" "$url$path" -E "$C/depth2_voms.pem" ;;
        rs_proxy2) run_resumed "$rep" "${srv}_$scen" "$pid" "$port" "$path" "$C/depth2_voms.pem" --resume ;;
        nd_plain) run_resumed "$rep" "${srv}_$scen" "$pid" "$port" "$plain" "" ;;
        nd_proxy2) run_resumed "$rep" "${srv}_$scen" "$pid" "$port" "$path" "$C/depth2_voms.pem" ;;
        ka_proxy) run "$rep" "${srv}_$scen" "$pid" "$url$path" -k -E "$C/rfc_voms.pem" ;;
        ka_plain) run "$rep" "${srv}_$scen" "$pid" "$url$plain" -k ;;
      esac
    done
  done
done
echo "# load at end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/results.txt"
if command -v curl >/dev/null; then
  curl -fsk "http://127.0.0.1:$P_ADMIN/metrics" 2>/dev/null | grep -E '^fedgate_(tls_|x509_)' | sed 's/^/# fedgate metric: /' | tee -a "$OUT/results.txt" || true
fi
# Medians over the repetitions; ratios against Apache and against each
# server's own plain handshake.
python3 - "$OUT/results.txt" "$SERVERS" <<'PY' | tee -a "$OUT/results.txt"
import statistics, sys
rows = {}
for l in open(sys.argv[1]):
    f = l.split()
    if not l.startswith("rep") or f[10] == "-":
        continue
    srv, scen = f[1].split("_", 1)
    rows.setdefault((srv, scen), []).append((float(f[2]), float(f[10]), int(f[8])))
servers = sys.argv[2].split()
med = {k: (statistics.median(r for r, _, _ in v), statistics.median(c for _, c, _ in v), sum(n for _, _, n in v))
       for k, v in rows.items()}
print("# medians: scenario, then per server req/s and CPU-ms/req; x plain = CPU / that server's hs_plain CPU (nd_*: nd_plain's)")
for scen in ("hs_plain", "hs_user", "hs_proxy2", "rs_proxy2", "ka_proxy", "ka_plain", "nd_plain", "nd_proxy2"):
    parts = []
    for s in servers:
        if (s, scen) not in med:
            continue
        r, c, n = med[(s, scen)]
        floor = "nd_plain" if scen.startswith("nd_") else "hs_plain"
        plain = med.get((s, floor), (0, 0, 0))[1]
        parts.append(f"{s} {r:.0f}/s {c:.3f} ms (x plain {c / plain:.2f}, non-2xx {n})" if plain else f"{s} {r:.0f}/s {c:.3f} ms")
    a = med.get(("apache", scen))
    f = med.get(("fedgate", scen))
    ratio = f" | fedgate/apache req/s {f[0] / a[0]:.2f}x, CPU {a[1] / f[1]:.2f}x less" if a and f and a[0] and f[1] else ""
    b = med.get(("baseline", scen))
    before = f" | fedgate CPU vs baseline {f[1] / b[1]:.2f}x" if b and f and b[1] else ""
    if parts:
        print(f"{scen:10} " + "; ".join(parts) + ratio + before)
for s in servers:
    k, p = med.get((s, "ka_proxy")), med.get((s, "ka_plain"))
    if k and p:
        print(f"# {s}: keep-alive X.509 + VOMS costs {k[1] - p[1]:+.3f} ms CPU per request over the no-auth route ({k[1]:.3f} against {p[1]:.3f})")
PY
