#!/usr/bin/env bash
# The Lua module's benchmark, bench/bench_lua.lua, under lua5.4 and luajit.
# Builds stratacache.so and the raw hiredis baseline (bench_lua_hiredis.so) per
# Lua ABI, then runs against the redis of scripts/run-bench.sh (its exported
# STRATA_TEST_REDIS_PORT) or, run alone, against a throwaway one of its own.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ -z "${STRATA_TEST_REDIS_PORT:-}" ]; then
  servers="$root/.test-servers-bench-lua"
  trap 'scripts/test-servers.sh stop "$servers"' EXIT
  scripts/test-servers.sh start "$servers"
  # shellcheck disable=SC1091
  . "$servers/env"
fi

jobs=$(nproc)
for v in 5.1 5.4; do
  dir="build-lua${v/./}"
  cmake -S lua -B "$dir" -DSTRATA_LUA_VERSION="$v" -DSTRATA_LUA_BENCH=ON >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
done

for lua in lua5.4 luajit; do
  if ! command -v "$lua" >/dev/null; then
    echo "== $lua not installed: skipped (scripts/test-lua.sh installs it)"
    continue
  fi
  dir=build-lua51
  [ "$lua" = lua5.4 ] && dir=build-lua54
  LUA_CPATH="$root/$dir/?.so" LUA_CPATH_5_4="$root/$dir/?.so" "$lua" bench/bench_lua.lua "$STRATA_TEST_REDIS_PORT"
done
