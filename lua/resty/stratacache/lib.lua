-- The core library through LuaJIT's FFI: the shared declarations of
-- bindings/stratacache.cdef (resty/stratacache/cdef.lua) and the library at
-- $STRATACACHE_LIB (pass it to workers with nginx's `env STRATACACHE_LIB;`),
-- else the installed libstratacache on the system's library path.
local ffi = require "ffi"

local _M = {}

ffi.cdef(require "resty.stratacache.cdef")

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
