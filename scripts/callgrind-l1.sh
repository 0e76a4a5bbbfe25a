#!/usr/bin/env bash
# Instructions per L1 hit (strata_get on memory://?l1=1, 100-byte value),
# counted by callgrind inside strata_get only: untagged and with 4 tags;
# and per strata_l1_check (the object tiers' currency check).
#   scripts/callgrind-l1.sh [build-dir]
set -euo pipefail
build=${1:-build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
n=100000
for tags in 0 4; do
  valgrind --tool=callgrind --toggle-collect=strata_get --callgrind-out-file="$out/cg.$tags" \
    "$build/bench/bench_core" --l1-hits "$n" "$tags" >/dev/null 2>"$out/log.$tags"
  ir=$(sed -n 's/.*I *refs: *//p' "$out/log.$tags" | tr -d ,)
  target=""; [ "$tags" = 0 ] && target="   target <= 250"
  echo "L1 hit, $tags tags: $((ir / n)) instructions per strata_get (callgrind, $n hits)$target"
done
# The object tiers' currency check (Lua string tier, Python object tier).
valgrind --tool=callgrind --toggle-collect=strata_l1_check --callgrind-out-file="$out/cg.check" \
  "$build/bench/bench_core" --l1-checks "$n" >/dev/null 2>"$out/log.check"
ir=$(sed -n 's/.*I *refs: *//p' "$out/log.check" | tr -d ,)
echo "L1 check (strata_l1_check, OK): $((ir / n)) instructions per call (callgrind, $n calls)"
