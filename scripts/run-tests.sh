#!/usr/bin/env bash
# Every suite: the C suites (plain and under ASan+UBSan) against throwaway
# redis-server and memcached, then the language suites that exist.
# The servers are always stopped, even on failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
servers="$root/.test-servers"
trap 'scripts/test-servers.sh stop "$servers"' EXIT
scripts/test-servers.sh start "$servers"
# shellcheck disable=SC1091
. "$servers/env"

jobs=$(nproc)
echo "== C suites"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j2)

echo "== C suites under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSTRATA_SANITIZE=ON \
  -DSTRATA_BUILD_BENCH=OFF -DSTRATA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j2)

echo "== consumers: find_package and pkg-config"
scripts/test-install.sh

for suite in scripts/test-python.sh scripts/test-lua.sh scripts/test-nginx.sh; do
  if [ -x "$suite" ]; then
    echo "== $suite"
    "$suite"
  fi
done
# Django's and dogpile.cache's own suites on the adapters, and mypy --strict
# (in test-python.sh's venv, which has the package installed).
echo "== scripts/test-frameworks.sh"
scripts/test-frameworks.sh
echo "== all suites passed"
