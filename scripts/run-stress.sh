#!/usr/bin/env bash
# Long soaks (tests/c/soak.c) on every backend, plain and under ASan+UBSan,
# against throwaway servers: STRESS_SECONDS per run (default 60). Then the C
# suites and the soak under ThreadSanitizer (build-tsan/, STRATA_SANITIZE_THREAD);
# cases TSan cannot run say so (SKIP_UNDER_TSAN in tests/c/test.h). Every
# TSan report fails the run; the distinct ones are listed at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${STRESS_SECONDS:-60}
servers="$root/.test-servers-stress"
trap 'scripts/test-servers.sh stop "$servers"' EXIT
scripts/test-servers.sh start "$servers"
# shellcheck disable=SC1091
. "$servers/env"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target soak
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSTRATA_SANITIZE=ON \
  -DSTRATA_BUILD_BENCH=OFF -DSTRATA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-asan -j"$(nproc)" --target soak
for dir in build build-asan; do
  for b in memory redis memcached; do
    echo "== $dir soak $b, ${seconds} s"
    ASAN_OPTIONS=detect_leaks=1 "./$dir/tests/c/soak" "$b" "$seconds"
  done
done

echo "== the soak on a Redis Cluster while its masters fail over (${seconds} s)"
scripts/stress-cluster-failover.sh build "$seconds"

echo "== C suites and the soak under ThreadSanitizer"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_SANITIZE_THREAD=ON \
  -DSTRATA_BUILD_BENCH=OFF -DSTRATA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-tsan -j"$(nproc)"
tsan_log="$root/build-tsan/tsan.log"
: > "$tsan_log"
export TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1"
status=0
(cd build-tsan && ctest --output-on-failure -j1 --timeout 600) >>"$tsan_log" 2>&1 || status=1
for b in memory redis memcached; do
  echo "== build-tsan soak $b, ${seconds} s" >>"$tsan_log"
  "./build-tsan/tests/c/soak" "$b" "$seconds" >>"$tsan_log" 2>&1 || status=1
done
grep -E '^(ok|FAIL) |skipped under ThreadSanitizer|tests passed|cases,' "$tsan_log" | grep -v '^ok ' || true
echo "== ThreadSanitizer reports (log: $tsan_log):"
grep -E '^SUMMARY: ThreadSanitizer' "$tsan_log" | sort | uniq -c | sort -rn || echo "   none"
[ "$status" -eq 0 ] || { echo "== stress FAILED under ThreadSanitizer"; exit 1; }
echo "== stress passed"
