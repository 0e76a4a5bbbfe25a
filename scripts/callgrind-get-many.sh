#!/usr/bin/env bash
# Instructions per get_many, counted by callgrind against the redis on PORT:
# strata_get_many of 100 keys (100-byte values) into reused values, and the
# sans-I/O op get_many of 64 keys through the poll driver (bench_sansio's
# many_batch, items read into reused values), per key.
#   scripts/callgrind-get-many.sh REDIS_PORT [build-dir]
set -euo pipefail
port=${1:?usage: callgrind-get-many.sh REDIS_PORT [build-dir]}
build=${2:-build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
calls=2000
valgrind --tool=callgrind --toggle-collect=strata_get_many --callgrind-out-file="$out/cg.many" \
  "$build/bench/bench_core" --get-many "$port" "$calls" >/dev/null 2>"$out/log.many"
ir=$(sed -n 's/.*Collected : *//p' "$out/log.many" | tr -d ,)
echo "strata_get_many, 100 keys: $((ir / calls)) instructions per call, $((ir / calls / 100)) per key (callgrind)"
valgrind --tool=callgrind --toggle-collect=many_batch --callgrind-out-file="$out/cg.op" \
  "$build/bench/bench_sansio" "$port" >/dev/null 2>"$out/log.op"
ir=$(sed -n 's/.*Collected : *//p' "$out/log.op" | tr -d ,)
keys=$(( (15 + 1) * 200 * 64 )) # bench_sansio: (ROUNDS + warm-up) x BATCHES batches of 64 keys
echo "op get_many, 64 keys (poll driver): $((ir / keys)) instructions per key (callgrind)"
