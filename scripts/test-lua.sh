#!/usr/bin/env bash
# The Lua module: build stratacache.so for Lua 5.1 (also LuaJIT) and 5.4, run
# the specs under both (busted under 5.1, Debian packages it for 5.1 only;
# lua/tests/runner.lua, a busted-compatible runner, under 5.1 and 5.4).
# Uses the servers of scripts/run-tests.sh when STRATA_TEST_REDIS_URL is set,
# otherwise starts its own and stops them on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

need=()
for p in lua5.1 lua5.4 liblua5.1-0-dev liblua5.4-dev lua-busted; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null
  else
    echo "test-lua: missing packages (run as root to install): ${need[*]}" >&2
    exit 1
  fi
fi

if [ -z "${STRATA_TEST_REDIS_URL:-}" ] || [ -z "${STRATA_TEST_MEMCACHED_URL:-}" ]; then
  servers="$root/.test-servers-lua"
  trap 'scripts/test-servers.sh stop "$servers"' EXIT
  scripts/test-servers.sh start "$servers"
  # shellcheck disable=SC1091
  . "$servers/env"
fi

jobs=$(nproc)
specs=(lua/tests/api_spec.lua lua/tests/misuse_spec.lua lua/tests/stampede_spec.lua lua/tests/interop_spec.lua)
for v in 5.1 5.4; do
  dir="build-lua${v/./}"
  echo "== Lua $v: building $dir/stratacache.so"
  cmake -S lua -B "$dir" -DSTRATA_LUA_VERSION="$v" -DCMAKE_C_FLAGS="-Werror" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
done

# Each interpreter finds its own build first; children launched by the specs inherit this.
export LUA_CPATH="$root/build-lua51/?.so;;"
export LUA_CPATH_5_4="$root/build-lua54/?.so;;"

echo "== Lua 5.1: busted"
STRATA_LUA=lua5.1 busted -o utfTerminal "${specs[@]}"
echo
for v in 5.1 5.4; do
  echo "== Lua $v: lua/tests/runner.lua"
  STRATA_LUA="lua$v" "lua$v" lua/tests/runner.lua "${specs[@]}"
done
echo "== Lua suites passed (5.1 busted, 5.1 and 5.4 runner)"
