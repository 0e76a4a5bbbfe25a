#!/usr/bin/env bash
# Long soaks (tests/c/soak.c) on every backend, plain and under ASan+UBSan,
# against throwaway servers: STRESS_SECONDS per run (default 60).
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
echo "== stress passed"
