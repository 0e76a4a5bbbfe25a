-- What a loader may return, shared by the plain module (stratacache) and the
-- nginx one (resty.stratacache): value[, ttl] | NOT_FOUND[, neg_ttl] | nil, err,
-- or a raise. Both modules hand out the same NOT_FOUND when both are loaded.
local type, tostring, setmetatable = type, tostring, setmetatable

local _M = {}

_M.NOT_FOUND = setmetatable({}, {__tostring = function() return "stratacache.NOT_FOUND" end})
local NOT_FOUND = _M.NOT_FOUND

-- (pcall's ok, v, x) -> "value", v, ttl | "missing", neg_ttl | "error", message.
function _M.check(ok, v, x)
  if not ok then return "error", "loader raised: " .. tostring(v) end
  if v == NOT_FOUND then
    if x ~= nil and (type(x) ~= "number" or x < 0) then return "error", "loader returned a bad neg_ttl" end
    return "missing", x
  end
  if v == nil then return "error", "loader failed: " .. tostring(x) end
  if type(v) == "number" then v = tostring(v) end
  if type(v) ~= "string" then
    return "error", "loader returned a " .. type(v) .. ", expected a string, NOT_FOUND or nil, err"
  end
  if x ~= nil and (type(x) ~= "number" or x < 0) then return "error", "loader returned a bad ttl" end
  return "value", v, x
end

return _M
