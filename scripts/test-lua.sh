#!/usr/bin/env bash
# The Lua module: build stratacache.so for Lua 5.1 (also LuaJIT) and 5.4, check
# that the rockspec builds and installs with LuaRocks, and run the specs under
# Lua 5.1, LuaJIT and Lua 5.4:
#   busted under lua5.1 and luajit (Debian packages busted for 5.1; LuaJIT runs it),
#   lua/tests/runner.lua, a busted-compatible runner, under lua5.4, lua5.1 and luajit,
#   and under lua5.4 once more with the module built with ASan+UBSan.
# The runs go in parallel (each spends most of its time waiting out TTLs);
# their keys are unique per interpreter run (lua/tests/helpers.lua).
# LuaJIT is OpenResty's luajit2, which the OpenResty module needs too; Debian's
# stock luajit conflicts with it, so an installed luajit of either kind is used
# as it is and never replaced.
# Uses the servers of scripts/run-tests.sh when STRATA_TEST_REDIS_URL is set,
# otherwise starts its own and stops them on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
need=()
for p in lua5.1 lua5.4 liblua5.1-0-dev liblua5.4-dev lua-busted luarocks; do
  installed "$p" || need+=("$p")
done
command -v luajit >/dev/null || need+=(luajit2)
[ -f /usr/include/luajit-2.1/lua.h ] || installed libluajit-5.1-dev || need+=(libluajit2-5.1-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-remove "${need[@]}" >/dev/null
  else
    echo "test-lua: missing packages (run as root to install): ${need[*]}" >&2
    exit 1
  fi
fi

jobs=$(nproc)
for v in 5.1 5.4; do
  dir="build-lua${v/./}"
  echo "== Lua $v: building $dir/stratacache.so"
  cmake -S lua -B "$dir" -DSTRATA_LUA_VERSION="$v" -DCMAKE_C_FLAGS="-Werror" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
done

# The module's own C under ASan+UBSan too, loaded into the stock lua5.4 with the
# sanitizer runtimes preloaded (skipped when gcc has no libasan).
asan_rt=$(gcc -print-file-name=libasan.so)
ubsan_rt=$(gcc -print-file-name=libubsan.so)
if [ -f "$asan_rt" ] && [ -f "$ubsan_rt" ]; then
  echo "== Lua 5.4: building build-lua54-asan/stratacache.so (ASan+UBSan)"
  cmake -S lua -B build-lua54-asan -DSTRATA_LUA_VERSION=5.4 -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS="-Werror -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
    -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
  cmake --build build-lua54-asan -j"$jobs" >/dev/null
else
  asan_rt=
  echo "== no libasan/libubsan for gcc: skipping the ASan+UBSan run"
fi

# The rockspec, as a LuaRocks user runs it: build, install into a throwaway
# tree, then require the module from that tree only (about 10 s).
rocks=$(mktemp -d)
logs=$(mktemp -d)
cleanup() {
  rm -rf "$rocks" "$logs"
  if [ -n "${servers:-}" ]; then scripts/test-servers.sh stop "$servers"; fi
}
trap cleanup EXIT
smoke='local sc = require "stratacache"
local c = assert(sc.new{namespace = "rock"})
assert(c:set("k", "v"))
local v, err, level = c:get("k")
assert(v == "v" and err == nil and level == 2, "rock smoke test")
print("   ok: " .. (rawget(_G, "jit") and jit.version or _VERSION) .. " required " .. package.cpath)'
rock_check() { # name lua-version interpreter [VAR=value...]
  local name=$1 ver=$2 lua=$3
  shift 3
  if ! luarocks --lua-version "$ver" make --tree "$rocks/$name" lua/stratacache-scm-1.rockspec "$@" \
      >"$rocks/$name.log" 2>&1; then
    cat "$rocks/$name.log" >&2
    echo "test-lua: luarocks make failed for $name" >&2
    return 1
  fi
  env -u LUA_CPATH -u LUA_CPATH_5_4 -u LUA_PATH "$lua" \
    -e "package.cpath = '$rocks/$name/lib/lua/$ver/?.so'" -e "$smoke"
}
echo "== LuaRocks: luarocks make lua/stratacache-scm-1.rockspec into throwaway trees"
luarocks lint lua/stratacache-scm-1.rockspec
rock_check lua5.4 5.4 lua5.4
rock_check luajit 5.1 luajit LUA_INCDIR=/usr/include/luajit-2.1
for f in resty/stratacache.lua resty/stratacache/cdef.lua resty/stratacache/remote.lua stratacache/loader.lua; do
  [ -f "$rocks/luajit/share/lua/5.1/$f" ] || { echo "test-lua: the rock did not install $f" >&2; exit 1; }
done

if [ -z "${STRATA_TEST_REDIS_URL:-}" ] || [ -z "${STRATA_TEST_MEMCACHED_URL:-}" ]; then
  servers="$root/.test-servers-lua"
  scripts/test-servers.sh start "$servers"
  # shellcheck disable=SC1091
  . "$servers/env"
fi

# Each interpreter finds its own build first; children launched by the specs inherit this.
export LUA_CPATH="$root/build-lua51/?.so;;"
export LUA_CPATH_5_4="$root/build-lua54/?.so;;"

specs=(lua/tests/api_spec.lua lua/tests/misuse_spec.lua lua/tests/stampede_spec.lua lua/tests/interop_spec.lua
       lua/tests/tags_spec.lua lua/tests/metrics_spec.lua lua/tests/write_spec.lua lua/tests/framework_spec.lua
       lua/tests/l1_tier_spec.lua lua/tests/cluster_spec.lua)
runs=("busted lua5.1" "busted luajit" "runner lua5.4" "runner lua5.1" "runner luajit")
[ -z "$asan_rt" ] || runs+=("asan lua5.4")
pids=()
for run in "${runs[@]}"; do
  read -r tool lua <<<"$run"
  log="$logs/$tool-$lua.log"
  if [ "$tool" = busted ]; then
    STRATA_LUA=$lua busted --lua="$lua" -o utfTerminal "${specs[@]}" >"$log" 2>&1 &
  elif [ "$tool" = asan ]; then
    # not interop_spec: it runs cc, which must not get the sanitizers preloaded
    LD_PRELOAD="$asan_rt $ubsan_rt" LUA_CPATH_5_4="$root/build-lua54-asan/?.so;;" STRATA_LUA=$lua \
      "$lua" lua/tests/runner.lua lua/tests/api_spec.lua lua/tests/misuse_spec.lua lua/tests/stampede_spec.lua \
      lua/tests/tags_spec.lua lua/tests/metrics_spec.lua lua/tests/write_spec.lua lua/tests/framework_spec.lua \
      lua/tests/l1_tier_spec.lua >"$log" 2>&1 &
  else
    STRATA_LUA=$lua "$lua" lua/tests/runner.lua "${specs[@]}" >"$log" 2>&1 &
  fi
  pids+=($!)
done
failed=()
for i in "${!runs[@]}"; do
  if wait "${pids[$i]}"; then status=passed; else status=FAILED; failed+=("${runs[$i]}"); fi
  echo
  echo "== ${runs[$i]}: $status"
  cat "$logs/${runs[$i]// /-}.log"
done
echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "== Lua suites FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "== Lua suites passed (${runs[*]}; luarocks: lua5.4, luajit)"
