rockspec_format = "3.0"
package = "stratacache"
version = "scm-1"
source = {
  url = "git+https://github.com/stratacache/stratacache.git",
}
description = {
  summary = "Caching policy over Redis, Memcached or an embedded store",
  detailed = [[
    require "stratacache": cache-aside, get_or_load with a lease so one caller
    per key loads (across processes too), stale-while-revalidate,
    stale-if-error, negative caching and an in-process L1. One .so per Lua
    ABI (5.1/LuaJIT, 5.4) with the C core compiled in. Also installs
    resty.stratacache, the OpenResty module (LuaJIT FFI over an installed
    libstratacache, cosockets; README, section OpenResty).
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
}
external_dependencies = {
  HIREDIS = { header = "hiredis/hiredis.h" },
  LIBMEMCACHED = { header = "libmemcached/memcached.h" },
}
-- From the repository root: luarocks make lua/stratacache-scm-1.rockspec
-- (scripts/test-lua.sh does, into throwaway trees, for Lua 5.4 and LuaJIT).
-- LuaRocks' cmake backend only configures the top of the source tree, which
-- is the C library's project; the module's own CMake project is lua/, so the
-- commands are spelled out. LUA_INCDIR is whichever Lua (or LuaJIT) LuaRocks
-- builds for; LIBDIR is where LuaRocks expects the rock's C modules.
build = {
  type = "command",
  build_command = [[$(CMAKE) -S lua -B build.luarocks -DCMAKE_BUILD_TYPE=Release -DSTRATA_LUA_INCLUDE_DIR="$(LUA_INCDIR)" -DSTRATA_LUA_CMOD_DIR="$(LIBDIR)" -DSTRATA_LUA_LMOD_DIR="$(LUADIR)" >/dev/null && $(CMAKE) --build build.luarocks]],
  install_command = [[$(CMAKE) --install build.luarocks]],
}
test = {
  type = "command",
  script = "scripts/test-lua.sh",
}
