#!/usr/bin/env bash
# `make fuzz`: builds tests/fuzz with clang, libFuzzer and ASan+UBSan in
# build-fuzz/, then runs each harness for FUZZ_MINUTES (default 2) minutes,
# one at a time (the machine may be shared). Corpora grow in FUZZ_WORK
# (default .fuzz-work/, not committed; FUZZ_MINUTES may be a fraction), seeded from tests/fuzz/corpus/<name>/;
# crashes land in FUZZ_WORK/crashes/<name>/. FUZZ_HARNESSES picks some, e.g.
# FUZZ_MINUTES=5 FUZZ_HARNESSES="envelope journal" make fuzz.
# Ends with a table of executions, executions per second and coverage.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh clang libclang-rt-14-dev
minutes=${FUZZ_MINUTES:-2}
seconds=$(awk -v m="$minutes" 'BEGIN { s = int(m * 60); print s < 1 ? 1 : s }') # 0 would mean "forever"
work=${FUZZ_WORK:-$root/.fuzz-work}
harnesses=${FUZZ_HARNESSES:-"envelope options journal mc_key redis_reply"}
build=build-fuzz

CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_SANITIZE=ON -DSTRATA_FUZZ=ON \
  -DSTRATA_BUILD_BENCH=OFF -DSTRATA_BUILD_EXAMPLES=OFF >/dev/null
targets=()
for h in $harnesses; do targets+=(--target "fuzz_$h"); done
cmake --build "$build" -j2 "${targets[@]}"

summary="$work/summary.txt"
mkdir -p "$work"
printf '%-12s %8s %12s %10s %6s %s\n' harness seconds execs exec/s cov crashes > "$summary"
failed=0
for h in $harnesses; do
  corpus="$work/corpus/$h"
  crashes="$work/crashes/$h"
  log="$work/$h.log"
  bin="./$build/tests/fuzz/fuzz_$h"
  mkdir -p "$corpus" "$crashes"
  echo "== fuzz $h for $seconds s (log: $log)"
  # One forked worker that keeps going after a crash (each one is saved), so
  # a known defect does not end the campaign for everything behind it.
  UBSAN_OPTIONS=print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    "$bin" -fork=1 -ignore_crashes=1 -max_total_time="$seconds" -timeout=10 -max_len=8192 \
    -artifact_prefix="$crashes/" "$corpus" "tests/fuzz/corpus/$h" >"$log" 2>&1 || true
  last=$(grep -E '^#[0-9]+: cov: ' "$log" | tail -1)
  execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
  cov=$(sed -E 's/.* cov: ([0-9]+) .*/\1/' <<<"$last")
  rate=$(sed -E 's/.* exec\/s ([0-9]+) .*/\1/' <<<"$last")
  ncrash=0
  for c in "$crashes"/crash-* "$crashes"/leak-* "$crashes"/timeout-*; do
    case "$c" in *.txt) continue ;; esac
    [ -e "$c" ] || continue
    ncrash=$((ncrash + 1))
    # the stack of each, for the report
    [ -e "$c.txt" ] || "$bin" "$c" >"$c.txt" 2>&1 || true
  done
  [ "$ncrash" -eq 0 ] || { failed=1; echo "   $ncrash crash(es): $crashes/*.txt"; }
  printf '%-12s %8s %12s %10s %6s %s\n' "$h" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$ncrash" \
    >> "$summary"
done
cat "$summary"
exit $failed
