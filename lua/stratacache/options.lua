-- Lua option tables -> the core's URL query (docs/L1-COHERENCE.md, docs/TAGS.md),
-- shared by the plain module's sc.new and resty.stratacache's remote cache:
-- durations named without _ms are seconds, booleans become 1/0, `namespace`
-- is `ns`. Options named in `skip` are the caller's own and stay out of the URL.
local type, pairs, ipairs, tostring, error, floor = type, pairs, ipairs, tostring, error, math.floor
local sort, concat = table.sort, table.concat

local _M = {}

_M.SECONDS = {ttl = "ttl_ms", neg_ttl = "neg_ttl_ms", stale = "stale_ms", timeout = "timeout_ms",
  connect_timeout = "connect_timeout_ms", lock_wait = "lock_wait_ms", lease_ttl = "lease_ttl_ms",
  l1_ttl = "l1_ttl_ms", breaker_cooldown = "breaker_cooldown_ms", tag_cache = "tag_cache_ms",
  coherence_ping = "coherence_ping_ms"}
local seconds = _M.SECONDS

_M.POLICIES = {stale_or_load = 0, load = 1, fail = 2}

local function bad(fname, msg)
  error(("bad argument #1 to '%s' (%s)"):format(fname, msg), 4)
end

local function num(v)
  if v == floor(v) and v > -1e15 and v < 1e15 then return ("%d"):format(v) end
  return ("%.17g"):format(v)
end

-- -> url with opts appended as its query, in name order. Raises (as a misuse
-- of fname, at the caller's caller) on a malformed option.
function _M.url(fname, url, opts, skip)
  if type(url) ~= "string" then bad(fname, "url must be a string, got " .. type(url)) end
  local names = {}
  for k in pairs(opts) do
    if type(k) ~= "string" then bad(fname, "option names must be strings, got " .. type(k)) end
    if k ~= "url" and not skip[k] then names[#names + 1] = k end
  end
  sort(names)
  local q = {}
  for _, k in ipairs(names) do
    local v, name = opts[k], k
    if seconds[k] then
      if type(v) ~= "number" or not (v >= 0) then
        bad(fname, k .. " must be a non-negative number of seconds, got "
          .. (type(v) == "number" and tostring(v) or type(v)))
      end
      name, v = seconds[k], num(floor(v * 1000 + 0.5))
    elseif k == "namespace" then name = "ns"
    end
    if type(v) == "boolean" then v = v and "1" or "0"
    elseif type(v) == "number" then v = num(v)
    elseif type(v) ~= "string" then
      bad(fname, "option " .. k .. " must be a string, number or boolean, got " .. type(v))
    end
    if v:find("[&=#]") then bad(fname, "option " .. k .. " must not contain '&', '=' or '#'") end
    q[#q + 1] = name .. "=" .. v
  end
  if #q > 0 then url = url .. (url:find("?", 1, true) and "&" or "?") .. concat(q, "&") end
  return url
end

-- The query's lock_wait_ms and wait_policy (the core's defaults otherwise).
function _M.wait_settings(url, lock_wait_ms, policy)
  local query = url:match("%?(.*)$") or ""
  for k, v in query:gmatch("([^&=]+)=([^&]*)") do
    if k == "lock_wait_ms" then lock_wait_ms = tonumber(v) or lock_wait_ms
    elseif k == "wait_policy" then policy = _M.POLICIES[v] or policy end
  end
  return lock_wait_ms, policy
end

return _M
