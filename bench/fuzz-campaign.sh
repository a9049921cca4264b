#!/usr/bin/env bash
# Runs every fuzz target for a fixed time and records libFuzzer's figures.
#
#   bench/fuzz-campaign.sh [SECONDS_PER_TARGET=600] [LANES=2] [TARGET...]
#
# Each target fuzzes from (and adds to) fuzz/corpus/<target>, seeded from
# fuzz/seeds/<target> when that exists; afterwards the corpus is minimised
# (`cargo fuzz cmin`) so that what is committed stays small. LANES targets
# run at once (one core each). Results: one TSV line per target in
# bench/results/fuzz-<date>.tsv (executions, execs/s, coverage, features,
# corpus files before/after, crashes) and the libFuzzer log next to it.
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECS=${1:-600}
LANES=${2:-2}
shift $(( $# > 2 ? 2 : $# ))
if [ $# -gt 0 ]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(ls fuzz/fuzz_targets | sed 's/\.rs$//' | sort)
fi
STAMP=$(date -u +%Y-%m-%dT%H%MZ)
OUT=bench/results/fuzz-$STAMP
mkdir -p "$OUT" fuzz/corpus
TSV=$OUT/summary.tsv
printf 'target\tseconds\texecs\texecs_per_s\tcov\tft\tcorpus_before\tcorpus_after_cmin\tpeak_rss_mb\tcrashes\n' >"$TSV"

echo "== building ${#TARGETS[@]} targets (release, ASan)"
cargo +nightly fuzz build -O >"$OUT/build.log" 2>&1
# The binaries are run directly: `cargo fuzz run` would rebuild them
# whenever the sources change during the campaign.
BIN=fuzz/target/x86_64-unknown-linux-gnu/release

run_one() {
  local t=$1 log=$OUT/$1.log corpus=fuzz/corpus/$1
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  [ -d "fuzz/seeds/$t" ] && cp -n fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
  local before
  before=$(find "$corpus" -type f | wc -l)
  local crashes=0
  "$BIN/$t" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$SECS" \
    -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 "$corpus" >"$log" 2>&1 || crashes=1
  local execs eps peak cov ft
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  # Minimise: merge into a fresh directory, keep only what adds coverage.
  local min=$corpus.min
  rm -rf "$min"; mkdir -p "$min"
  if "$BIN/$t" -merge=1 -rss_limit_mb=2048 -timeout=10 "$min" "$corpus" >"$OUT/$t.cmin.log" 2>&1; then
    rm -rf "$corpus"; mv "$min" "$corpus"
  else
    rm -rf "$min"
  fi
  local after
  after=$(find "$corpus" -type f | wc -l)
  [ -d "fuzz/artifacts/$t" ] && crashes=$(( crashes + $(find "fuzz/artifacts/$t" -type f -newer "$OUT/build.log" | wc -l) ))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$SECS" "${execs:-?}" "${eps:-?}" \
    "${cov:-?}" "${ft:-?}" "$before" "$after" "${peak:-?}" "$crashes" >>"$TSV"
  echo "$t: execs=${execs:-?} exec/s=${eps:-?} cov=${cov:-?} corpus $before -> $after crashes=$crashes"
}

# A simple job pool: LANES targets at a time.
for t in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$LANES" ]; do wait -n || true; done
  run_one "$t" &
done
wait
echo "== $TSV"
column -t -s $'\t' "$TSV"
