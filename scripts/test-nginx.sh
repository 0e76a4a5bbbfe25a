#!/usr/bin/env bash
# resty.stratacache in a real nginx: Debian's nginx + lua-nginx-module with
# OpenResty's LuaJIT (luajit2), 2 workers on a free loopback port, driven over
# HTTP by tests/nginx/test_resty.py (which starts and always stops its own
# nginx, and signals no other). Installs what is missing when run as root.
# Uses the servers of scripts/run-tests.sh when STRATA_TEST_REDIS_URL is set,
# otherwise starts its own and stops them on exit.
#   scripts/test-nginx.sh          the suite (make test)
#   scripts/test-nginx.sh --bench  bench/bench_openresty.py instead (make bench)
#   scripts/test-nginx.sh --callgrind  bench/callgrind_openresty.py (instructions per call)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
need=()
for p in nginx libnginx-mod-http-lua lua-resty-core lua-resty-lrucache lua-cjson; do
  installed "$p" || need+=("$p")
done
# lua-nginx-module needs OpenResty's LuaJIT (lua_setexdata): its dependency
# also accepts Debian's stock libluajit-5.1-2, with which it fails to load, so
# luajit2's runtime is named explicitly (it replaces the stock one).
installed libluajit2-5.1-2 || need+=(libluajit2-5.1-2)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "test-nginx: missing packages (run as root to install): ${need[*]}" >&2
    exit 1
  fi
fi

jobs=$(nproc)
echo "== nginx suite: building libstratacache (build/) and the plain Lua module (build-lua51/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs" --target stratacache >/dev/null
cmake -S lua -B build-lua51 -DSTRATA_LUA_VERSION=5.1 >/dev/null
cmake --build build-lua51 -j"$jobs" >/dev/null
export STRATACACHE_LIB="$root/build/libstratacache.so"

cleanup() { if [ -n "${servers:-}" ]; then scripts/test-servers.sh stop "$servers"; fi; }
trap cleanup EXIT
if [ -z "${STRATA_TEST_REDIS_URL:-}" ]; then
  servers="$root/.test-servers-nginx"
  scripts/test-servers.sh start "$servers"
  # shellcheck disable=SC1091
  . "$servers/env"
fi

if [ "${1:-}" = --bench ]; then
  echo "== OpenResty benchmark: bench/bench_openresty.py"
  python3 bench/bench_openresty.py
  exit 0
fi
if [ "${1:-}" = --callgrind ]; then
  echo "== OpenResty instruction counts: bench/callgrind_openresty.py"
  python3 bench/callgrind_openresty.py
  exit 0
fi

echo "== envelope ABI under LuaJIT (tests/nginx/envelope_spec.lua)"
LUA_PATH="$root/lua/?.lua;;" luajit tests/nginx/envelope_spec.lua
echo "== nginx: tests/nginx/test_resty.py"
py=python3
[ -x "$root/.venv-test/bin/python" ] && py="$root/.venv-test/bin/python"
(cd tests/nginx && "$py" test_resty.py)
