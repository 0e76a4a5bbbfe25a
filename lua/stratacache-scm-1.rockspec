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
    ABI (5.1/LuaJIT, 5.4) with the C core compiled in.
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
build = {
  type = "cmake",
  cmakedir = "lua",
  variables = {
    STRATA_LUA_VERSION = "$(LUA_VERSION)",
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    CMAKE_INSTALL_LIBDIR = "$(LIBDIR)",
  },
  install = {
    lib = { stratacache = "stratacache.so" },
  },
}
test = {
  type = "command",
  script = "scripts/test-lua.sh",
}
