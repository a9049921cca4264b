#!/usr/bin/env bash
# Accounting extraction at scale, fedgate against cASO 5.2.2 in one run.
#
#   bench/accounting/run.sh [PROJECTS [SERVERS_PER_PROJECT]]   (default 100 x 100)
#
# Both extract the same window from the same stand-in (standin.py: Keystone,
# Nova and Glance answering the calls of spec A4 for seeded servers), one
# after the other, under /usr/bin/time -v. Reported: wall time, CPU time
# (user + system) and peak RSS of each extractor, the records each wrote,
# and the ratios. The stand-in's own CPU is the same for both and not
# counted. cASO gets its own venv (CASO_VENV, default
# ~/.cache/fedgate/caso-venv); fedgate is the release build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
NP=${1:-100}
NS=${2:-100}
PORT=${BENCH_STANDIN_PORT:-18845}
CV=${CASO_VENV:-$HOME/.cache/fedgate/caso-venv}
W=$(mktemp -d /tmp/fedgate-acct-bench.XXXXXX)
FROM=2026-11-01T00:00:00
TO=2026-11-30T00:00:00

if [ ! -x "$CV/bin/caso-extract" ]; then
  python3 -m venv "$CV"
  "$CV/bin/pip" install -q --disable-pip-version-check caso==5.2.2
fi
[ -x target/release/fedgate ] && [ -z "${BENCH_REBUILD:-}" ] || cargo build --release -q
FEDGATE=$ROOT/target/release/fedgate

python3 bench/accounting/standin.py "$PORT" "$NP" "$NS" > "$W/standin.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$PORT/v3" >/dev/null 2>&1 && break; sleep 0.2; done

mkdir -p "$W/caso/spool" "$W/caso/out" "$W/fedgate/spool" "$W/fedgate/out" "$W/fedgate/storage"
cat > "$W/caso/caso.conf" <<EOF
[DEFAULT]
site_name = BENCH
service_name = bench.test
projects =
vo_property = VO
extractor = nova
messengers = ssm
spooldir = $W/caso/spool
lock_path = $W/caso/spool
region_name = RegionOne
log_file = $W/caso/caso.log

[keystone_auth]
auth_type = password
auth_url = http://127.0.0.1:$PORT/v3
username = accounting
password = bench
user_domain_id = default
project_domain_id = default

[ssm]
output_path = $W/caso/out
EOF
# The same settings, translated by fedgate itself.
# (exit 1: log_file has no equivalent, fedgate logs its own way)
printf '[upstream]\nurl = "http://127.0.0.1:1"\n[admin]\nlisten = []\n' > "$W/fedgate/fedgate.toml"
"$FEDGATE" accounting import-caso "$W/caso/caso.conf" >> "$W/fedgate/fedgate.toml" 2> "$W/fedgate/import.log" || true
sed -i -e "s#$W/caso/spool#$W/fedgate/spool#g" -e "s#$W/caso/out#$W/fedgate/out#g" "$W/fedgate/fedgate.toml"

measure() { # name command...
  local name=$1; shift
  /usr/bin/time -v "$@" > "$W/$name.out" 2> "$W/$name.time" || { tail -20 "$W/$name.time" >&2; echo "$name failed" >&2; exit 1; }
  local wall user sys rss
  wall=$(awk -F': ' '/Elapsed/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$W/$name.time")
  user=$(awk -F': ' '/User time/ { print $2 }' "$W/$name.time")
  sys=$(awk -F': ' '/System time/ { print $2 }' "$W/$name.time")
  rss=$(awk -F': ' '/Maximum resident/ { print $2 }' "$W/$name.time")
  echo "$name $wall $(echo "$user + $sys" | bc) $rss"
}

echo "== $NP projects x $NS servers, window $FROM .. $TO" >&2
C=$(measure caso "$CV/bin/caso-extract" --config-file "$W/caso/caso.conf" --extract-from "$FROM" --extract-to "$TO")
F=$(measure fedgate "$FEDGATE" accounting extract --config "$W/fedgate/fedgate.toml" --from "$FROM" --to "$TO")
count() { cat $(find "$1" -type f) 2>/dev/null | grep -c '^VMUUID:' || true; }
read -r _ cw cc cr <<< "$C"
read -r _ fw fc fr <<< "$F"
printf '%-8s %10s %10s %12s %10s\n' tool wall_s cpu_s peak_rss_MB records
printf '%-8s %10s %10s %12s %10s\n' caso "$cw" "$cc" "$((cr / 1024))" "$(count "$W/caso/out")"
printf '%-8s %10s %10s %12s %10s\n' fedgate "$fw" "$fc" "$((fr / 1024))" "$(count "$W/fedgate/out")"
echo "ratios caso/fedgate: wall $(echo "scale=1; $cw / $fw" | bc)x, cpu $(echo "scale=1; $cc / $fc" | bc)x, peak RSS $(echo "scale=1; $cr / $fr" | bc)x"
echo "work dir: $W"
