#!/usr/bin/env bash
# The OpenResty part of `make bench` (bench/bench_openresty.py): resty.stratacache
# in a real nginx against lua-resty-lrucache, ngx.shared.DICT, a raw cosocket GET,
# a constant location (wrk) and the cold-key stampede. Uses the servers of
# scripts/run-bench.sh (STRATA_TEST_REDIS_URL), else starts its own.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target stratacache >/dev/null
cmake -S lua -B build-lua51 -DSTRATA_LUA_VERSION=5.1 >/dev/null
cmake --build build-lua51 -j2 >/dev/null
export STRATACACHE_LIB="$root/build/libstratacache.so"
cleanup() { if [ -n "${servers:-}" ]; then scripts/test-servers.sh stop "$servers"; fi; }
trap cleanup EXIT
if [ -z "${STRATA_TEST_REDIS_URL:-}" ]; then
  servers="$root/.test-servers-bench-openresty"
  scripts/test-servers.sh start "$servers"
  # shellcheck disable=SC1091
  . "$servers/env"
fi
python3 bench/bench_openresty.py
