-- Counters of one cache object: plain Lua numbers per worker (a hit costs an
-- addition, not a shared-dict write), pushed as deltas into the shared dict by
-- flush() (a timer calls it every second, stats() before reading), so the
-- merged figures are the sum over the workers and survive `nginx -s reload`.
local pairs, tostring, concat = pairs, tostring, table.concat

local _M = {}
local mt = {__index = _M}

-- name -> {Prometheus metric, labels, help}; names follow docs/METRICS.md.
local METRICS = {
  {"l1_hits", "hits_total", 'tier="l1"', "Fresh hits, by tier."},
  {"l2_hits", "hits_total", 'tier="shm"', "Fresh hits, by tier."},
  {"hits", "hits_total", 'tier="backend"', "Fresh hits, by tier."},
  {"l1_misses", "misses_total", 'tier="l1"', "Misses, by tier."},
  {"l2_misses", "misses_total", 'tier="shm"', "Misses, by tier."},
  {"misses", "misses_total", 'tier="backend"', "Misses, by tier."},
  {"negative_hits", "negative_hits_total", "", 'Cached "not found" entries served.'},
  {"stale_hits", "stale_served_total", "", "Values served past their freshness."},
  {"sets", "sets_total", "", "Values written."},
  {"deletes", "deletes_total", "", "Deletes and invalidations."},
  {"loads", "loads_total", "", "Loader calls."},
  {"load_errors", "load_errors_total", "", "Loader calls that failed."},
  {"backend_errors", "backend_errors_total", "", "Backend calls that failed."},
  {"timeouts", "timeouts_total", "", "Backend calls that timed out."},
  {"waits", "lease_waits_total", "", "Lookups that found another loader's lease."},
  {"early_refreshes", "early_refreshes_total", "", "XFetch early refreshes."},
  {"singleflight_shared", "singleflight_shared_total", "", "Calls that shared another's load."},
  {"fail_open", "fail_open_total", "", "Loads served from the source while the backend failed."},
  {"invalidations_received", "invalidations_received_total", "",
   "L1 evictions asked by the invalidation link (docs/L1-COHERENCE.md)."},
  {"l1_flushes", "l1_flushes_total", "", "Whole-L1 flushes: invalidation link lost, FLUSHDB, fork."},
}
_M.NAMES = {}
for i, m in ipairs(METRICS) do _M.NAMES[i] = m[1] end

function _M.new(dict, ns)
  local c = {}
  for _, m in ipairs(METRICS) do c[m[1]] = 0 end
  return setmetatable({dict = dict, prefix = ns .. "#S:", c = c, pushed = {}}, mt)
end

-- Adds this worker's counts since the last flush into the shared dict.
function _M:flush()
  local dict, prefix, pushed = self.dict, self.prefix, self.pushed
  for name, v in pairs(self.c) do
    local d = v - (pushed[name] or 0)
    if d ~= 0 then
      local ok = dict:incr(prefix .. name, d, 0)
      if ok then pushed[name] = v end
    end
  end
end

-- Every worker's counters summed.
function _M:merged()
  self:flush()
  local out, dict, prefix = {}, self.dict, self.prefix
  for _, m in ipairs(METRICS) do out[m[1]] = dict:get(prefix .. m[1]) or 0 end
  return out
end

-- The Prometheus text exposition of merged (plus gauges given by the caller).
function _M.prometheus(merged, ns, gauges)
  local lines, seen = {}, {}
  local function family(name, typ, help)
    if not seen[name] then
      seen[name] = true
      lines[#lines + 1] = "# HELP stratacache_" .. name .. " " .. help
      lines[#lines + 1] = "# TYPE stratacache_" .. name .. " " .. typ
    end
  end
  local nslabel = 'namespace="' .. ns .. '"'
  for _, m in ipairs(METRICS) do
    family(m[2], "counter", m[4])
    local labels = m[3] ~= "" and (nslabel .. "," .. m[3]) or nslabel
    lines[#lines + 1] = ("stratacache_%s{%s} %s"):format(m[2], labels, tostring(merged[m[1]] or 0))
  end
  for _, g in ipairs(gauges or {}) do
    family(g[1], "gauge", g[3])
    lines[#lines + 1] = ("stratacache_%s{%s} %s"):format(g[1], nslabel, tostring(g[2]))
  end
  return concat(lines, "\n") .. "\n"
end

return _M
