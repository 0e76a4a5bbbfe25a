-- The core library through LuaJIT's FFI: the shared declarations of
-- bindings/stratacache.cdef (resty/stratacache/cdef.lua) and the library at
-- $STRATACACHE_LIB (pass it to workers with nginx's `env STRATACACHE_LIB;`),
-- else the installed libstratacache on the system's library path.
local ffi = require "ffi"

local _M = {}

-- The declarations are bindings/stratacache.cdef itself (checked against the
-- header by python/tests/test_cdef.py): read from the source tree next to this
-- file, or, in an installed tree, from resty/stratacache/cdef.lua, which
-- lua/CMakeLists.txt writes from that same file at install time.
local function declarations()
  local ok, text = pcall(require, "resty.stratacache.cdef")
  if ok then return text end
  local dir = debug.getinfo(1, "S").source:match("^@(.*)/resty/stratacache/[^/]*$")
  local path = (dir or ".") .. "/../bindings/stratacache.cdef"
  local f, err = io.open(path, "rb")
  if not f then error("resty.stratacache: no declarations (" .. tostring(err) .. ")", 0) end
  text = f:read("*a")
  f:close()
  return text
end
ffi.cdef(declarations())

local function load()
  local path = os.getenv("STRATACACHE_LIB")
  if path and path ~= "" then
    local ok, lib = pcall(ffi.load, path)
    if not ok then return nil, "STRATACACHE_LIB=" .. path .. ": " .. tostring(lib) end
    return lib
  end
  -- the dev symlink first, then the runtime SONAME (no -dev package needed)
  local errs = {}
  for _, name in ipairs{"stratacache", "libstratacache.so.0.1"} do
    local ok, lib = pcall(ffi.load, name)
    if ok then return lib end
    errs[#errs + 1] = tostring(lib)
  end
  return nil, "libstratacache not found (set STRATACACHE_LIB and `env STRATACACHE_LIB;`): "
    .. table.concat(errs, "; ")
end

local lib, err = load()
if not lib then error(err, 0) end
_M.C = lib

-- "ENAME: message" for a failed call, as the other bindings report it.
function _M.error_string(code)
  return ffi.string(lib.strata_error_name(code)) .. ": " .. ffi.string(lib.strata_error_last())
end

-- The core's defaults (strata_options_init), so nginx and C agree on them.
function _M.defaults()
  local o = ffi.new("strata_options")
  assert(lib.strata_options_init(o, 3) == 0)
  return o
end

return _M
