-- The core's envelope (docs/FORMAT.md) through the ABI's pure functions:
-- Lua never parses or builds the header itself. Out-params are reused.
local ffi = require "ffi"
local C = require("resty.stratacache.lib").C

local ffi_string, tonumber = ffi.string, tonumber
local OK, MISS = 0, 1

local _M = {}

local info = ffi.new("strata_envelope_info")
local needed = ffi.new("size_t[1]")
local buf_cap = 4096
local buf = ffi.new("char[?]", buf_cap)

-- -> info (a reused struct: read it before the next decode) or nil when the
-- bytes are not an envelope of ours (a miss).
function _M.decode(bytes, key, beta)
  if C.strata_envelope_decode(bytes, #bytes, key, #key, beta, info) ~= OK then return nil end
  return info
end

-- The core's verdict: 0 fresh, 4 refresh early, 3 stale, 2 negative, 1 expired.
function _M.verdict(i, now_ms)
  return C.strata_envelope_verdict(i, now_ms)
end

function _M.payload(i)
  return ffi_string(i.payload, i.payload_len)
end

-- Seconds to the XFetch point and to the hard expiry, from now_ms.
function _M.horizons(i, now_ms)
  return tonumber(i.refresh_at_ms - now_ms) / 1000, tonumber(i.stale_until_ms - now_ms) / 1000
end

-- -> envelope bytes, or nil, "ENAME: message".
function _M.encode(value, negative, now_ms, ttl_ms, stale_ms, cost_ms)
  local len = value and #value or 0
  local rc = C.strata_envelope_encode(value, len, negative and 1 or 0, now_ms, ttl_ms, stale_ms,
                                      cost_ms, buf, buf_cap, needed)
  if rc == -6 and needed[0] > buf_cap then -- ETOOBIG: grow the reused buffer once
    buf_cap = tonumber(needed[0])
    buf = ffi.new("char[?]", buf_cap)
    rc = C.strata_envelope_encode(value, len, negative and 1 or 0, now_ms, ttl_ms, stale_ms,
                                  cost_ms, buf, buf_cap, needed)
  end
  if rc ~= OK then return nil, require("resty.stratacache.lib").error_string(rc) end
  return ffi_string(buf, needed[0])
end

_M.MISS = MISS
return _M
