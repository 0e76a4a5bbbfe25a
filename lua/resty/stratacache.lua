-- resty.stratacache: stratacache inside nginx, never blocking a worker.
--
-- Tiers, nearest first (docs in README, section OpenResty):
--   L1  per worker, lua-resty-lrucache of decoded values (l1_serializer);
--   L2  optional lua_shared_dict of envelopes in the core's format, shared by
--       the workers (encoded, decoded and judged by the core's C functions);
--   L3  Redis over cosockets: the core's resumable operations
--       (resty/stratacache/remote.lua moves their bytes);
--   then the loader.
-- Locks: one loader per key in a worker (ngx.semaphore: every waiter woken
-- with the result), one per key across workers (a shared-dict lock with an
-- expiry), the core's Redis lease across hosts.
--
--   cache:get(key[, opts[, loader, ...]]) -> value, nil, level | nil (miss)
--     | nil, nil, level (cached "not found") | nil, "ENAME: message"
--   level: 1 L1, 2 L2 (shm), 3 L3 (Redis), 4 the loader ran.
local lrucache = require "resty.lrucache"
local semaphore = require "ngx.semaphore"
local lib = require "resty.stratacache.lib"
local envelope = require "resty.stratacache.envelope"
local ipc = require "resty.stratacache.ipc"
local stats = require "resty.stratacache.stats"
local phase = require "resty.stratacache.phase"
local loader_result = require "stratacache.loader"

local ngx = ngx
local ngx_now, update_time, timer_at, sleep = ngx.now, ngx.update_time, ngx.timer.at, ngx.sleep
local shared, worker_pid = ngx.shared, ngx.worker.pid
local type, error, pcall, tostring, floor, min = type, error, pcall, tostring, math.floor, math.min
local select, setmetatable, tonumber = select, setmetatable, tonumber
local check_result, cannot_wait = loader_result.check, phase.cannot_wait
local decode, verdict_of, payload_of, horizons = envelope.decode, envelope.verdict,
  envelope.payload, envelope.horizons

local OK, MISS, NEGATIVE, HIT_STALE, HIT_REFRESH = 0, 1, 2, 3, 4
local L1, L2, LOADED = 1, 2, 4 -- 3 is the remote tier's (remote.lua)
local UNTRUSTED = 100 -- an L2 entry kept for stale-if-error only (see _link)

local _M = {_VERSION = "0.1.0", NOT_FOUND = loader_result.NOT_FOUND}
local mt = {__index = _M}

local NEG = setmetatable({}, {__tostring = function() return "stratacache negative entry" end})

local function bad(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local OPTIONS = {url = "string", namespace = "string", ttl = "number", stale = "number",
  neg_ttl = "number", lock_wait = "number", lease_ttl = "number", timeout = "number",
  connect_timeout = "number", wait_policy = "string", xfetch_beta = "number",
  l1_size = "number", l1_ttl = "number", l1_serializer = "function", shm = "string",
  shm_ipc = "string", pool_size = "number", breaker_threshold = "number",
  breaker_cooldown = "number", coherence_ping = "number", tag_cache = "number"}

local function now_ms()
  return floor(ngx_now() * 1000)
end

-- A token that tells this worker's locks from another's.
local lock_token = tostring(worker_pid()) .. ":" .. tostring(ngx_now())

-- sc.new{shm_ipc = "name", [shm = "name"], [url = "redis://..."], [namespace =],
--   [ttl =], [stale =], [neg_ttl =], [lock_wait =], [lease_ttl =], [timeout =],
--   [wait_policy = "stale_or_load" | "load" | "fail"], [xfetch_beta =],
--   [l1_size = 1000], [l1_ttl =], [l1_serializer = fn(string) -> value]}
-- Durations are seconds; the defaults are the core's (strata_options_init).
-- One per worker and configuration (each runs a stats timer, and with a url
-- an invalidation link): in init_worker_by_lua* or lazily once, never in the
-- master.
function _M.new(opts)
  if type(opts) ~= "table" then bad(1, "new", "options must be a table, got " .. type(opts)) end
  for k, v in pairs(opts) do
    if not OPTIONS[k] then bad(1, "new", "unknown option " .. tostring(k)) end
    if type(v) ~= OPTIONS[k] then
      bad(1, "new", "option " .. k .. " must be a " .. OPTIONS[k] .. ", got " .. type(v))
    end
    if OPTIONS[k] == "number" and not (v >= 0) then
      bad(1, "new", "option " .. k .. " must be a non-negative number, got " .. tostring(v))
    end
  end
  if ngx.get_phase() == "init" then
    return nil, "ENOTSUP: sc.new in init_by_lua* runs in the master; "
      .. "create the cache in init_worker_by_lua* or lazily in a request"
  end
  local ns = opts.namespace or "strata"
  if #ns > 64 or not ns:find("^[A-Za-z0-9_.-]+$") then
    bad(1, "new", "namespace must be 1-64 bytes of [A-Za-z0-9_.-], got '" .. ns .. "'")
  end
  if not opts.shm_ipc then bad(1, "new", "option shm_ipc (a lua_shared_dict name) is required") end
  local ipc_dict = shared[opts.shm_ipc]
  if not ipc_dict then
    return nil, "EOPTION: no lua_shared_dict " .. opts.shm_ipc .. " (shm_ipc) in nginx.conf"
  end
  local l2
  if opts.shm then
    l2 = shared[opts.shm]
    if not l2 then return nil, "EOPTION: no lua_shared_dict " .. opts.shm .. " (shm) in nginx.conf" end
  end
  local policy = opts.wait_policy or "stale_or_load"
  if policy ~= "stale_or_load" and policy ~= "load" and policy ~= "fail" then
    bad(1, "new", "wait_policy must be stale_or_load, load or fail, got " .. policy)
  end
  local d = lib.defaults()
  local function ms(name, field) return opts[name] and floor(opts[name] * 1000 + 0.5) or tonumber(d[field]) end
  local self = setmetatable({
    ns = ns,
    prefix = ns .. ":",
    lock_prefix = ns .. "#L:",
    ttl_ms = ms("ttl", "ttl_ms"),
    stale_ms = ms("stale", "stale_ms"),
    neg_ttl_ms = ms("neg_ttl", "neg_ttl_ms"),
    lock_wait = ms("lock_wait", "lock_wait_ms") / 1000,
    lease_ttl = ms("lease_ttl", "lease_ttl_ms") / 1000,
    policy = policy,
    beta = opts.xfetch_beta or tonumber(d.xfetch_beta),
    tag_cache = ms("tag_cache", "tag_cache_ms") / 1000,
    l1_ttl = opts.l1_ttl,
    l1_serializer = opts.l1_serializer,
    lru = assert(lrucache.new(opts.l1_size or 1000)),
    l2 = l2,
    locks = ipc_dict,
    inflight = {},
    refreshing = {},
    link_up = not opts.url, -- the remote tier's invalidation link (see _link)
    trust_from = 0,
  }, mt)
  self._stats = stats.new(ipc_dict, ns)
  self.counts = self._stats.c
  local lru, counts = self.lru, self.counts
  local events, err = ipc.new(ipc_dict, ns,
    function(key) lru:delete(key); counts.invalidations_received = counts.invalidations_received + 1 end,
    function() lru:flush_all(); counts.l1_flushes = counts.l1_flushes + 1 end)
  if not events then return nil, err end
  self.ipc = events
  if opts.url then
    local scheme = opts.url:match("^(%a+)://")
    if scheme == "memcached" then
      return nil, "ENOTSUP: memcached:// from nginx is not supported yet (it needs the memcached "
        .. "meta-protocol codec on the sans-I/O layer); use redis:// or no url (L1 + shm)"
    elseif scheme ~= "redis" then
      return nil, "EURL: resty.stratacache takes redis:// URLs (or no url for L1 + shm), got " .. opts.url
    end
    local remote = require "resty.stratacache.remote"
    local r, err = remote.new(self, opts)
    if not r then return nil, err end
    self.remote = r
  end
  local ok, err = ngx.timer.every(1, function(premature)
    if not premature then self._stats:flush() end
  end)
  if not ok then return nil, "EBACKEND: ngx.timer.every: " .. tostring(err) end
  return self
end

---------------------------------------------------------------------------
-- L1 and L2

local function deserialize(self, payload)
  local f = self.l1_serializer
  if not f then return payload end
  local ok, v, err = pcall(f, payload)
  if not ok then return nil, "EUSER: l1_serializer raised: " .. tostring(v) end
  if v == nil then return nil, "EUSER: l1_serializer failed: " .. tostring(err) end
  return v
end

-- L1 keeps a value until the XFetch point of its envelope (never past l1_ttl),
-- so the fast path is a plain lrucache get and every decision is the core's.
local function l1_put(self, key, value, info, now, tagged)
  if not self.link_up then return end
  local refresh_in = horizons(info, now)
  if self.l1_ttl and self.l1_ttl < refresh_in then refresh_in = self.l1_ttl end
  if tagged and self.tag_cache < refresh_in then refresh_in = self.tag_cache end
  if refresh_in > 0 then self.lru:set(key, value, refresh_in) end
end

-- -> value, verdict (OK, HIT_REFRESH, HIT_STALE, NEGATIVE or MISS), err
local function l2_read(self, key, now)
  local bytes = self.l2:get(self.prefix .. key)
  if not bytes then return nil, MISS end
  local info = decode(bytes, key, self.beta)
  if not info then return nil, MISS end
  local verdict = verdict_of(info, now)
  if verdict == MISS then return nil, MISS end
  if not self.link_up or info.created_ms < self.trust_from then
    if verdict == NEGATIVE then return nil, UNTRUSTED end
    local v = deserialize(self, payload_of(info))
    return v, UNTRUSTED
  end
  if verdict == NEGATIVE then
    l1_put(self, key, NEG, info, now)
    return nil, NEGATIVE
  end
  local v, err = deserialize(self, payload_of(info))
  if err then return nil, MISS, err end
  if verdict == OK then l1_put(self, key, v, info, now) end
  return v, verdict
end

-- Envelope into L2 and the decoded value into L1. -> value (decoded) | nil, err
-- A tagged entry stays out of L2 and in L1 for tag_cache at most: the core
-- checks tag stamps on its own reads, the host tiers cannot, so they keep it
-- no longer than the core trusts its tag versions (docs/TAGS.md).
local function store(self, key, payload, negative, ttl_ms, stale_ms, cost_ms, tagged)
  local value, err = NEG, nil
  if not negative then
    value, err = deserialize(self, payload)
    if err then return nil, err end
  end
  local to_l2 = self.l2 and not tagged
  if not to_l2 and (self.l1_ttl == 0 or not self.link_up) then return value end -- no tier takes it
  local now = now_ms()
  local bytes
  bytes, err = envelope.encode(payload, negative, now, ttl_ms, stale_ms, cost_ms)
  if not bytes then return nil, err end
  if to_l2 then
    local ok, serr = self.l2:set(self.prefix .. key, bytes, (ttl_ms + stale_ms) / 1000)
    if not ok then ngx.log(ngx.WARN, "stratacache: shm ", tostring(serr), " for ", key) end
  end
  l1_put(self, key, value, decode(bytes, key, self.beta), now, tagged)
  return value
end
_M._store = store

---------------------------------------------------------------------------
-- Loading

local function elapsed_ms(t0)
  update_time()
  local d = floor((ngx_now() - t0) * 1000 + 0.5)
  return d > 0 and d or 0
end

-- Runs the loader. -> "value", v, ttl, cost_ms | "missing", neg_ttl, nil,
-- cost_ms | "error", message (counted in stats either way).
local function run_loader(self, loader, ...)
  local counts = self.counts
  counts.loads = counts.loads + 1
  update_time()
  local t0 = ngx_now()
  local kind, v, x = check_result(pcall(loader, ...))
  if kind == "error" then
    counts.load_errors = counts.load_errors + 1
    return kind, v
  end
  return kind, v, x, elapsed_ms(t0)
end
_M._run_loader = run_loader

-- The TTL in ms of a loaded value: the loader's, else get's opts, else the cache's.
local function ttl_ms(self, opts, negative, x)
  if x then return floor(x * 1000 + 0.5) end
  local o = opts and (negative and opts.neg_ttl or opts.ttl)
  if o then return floor(o * 1000 + 0.5) end
  return negative and self.neg_ttl_ms or self.ttl_ms
end
_M._ttl_ms = ttl_ms

-- Runs the loader and stores what it returned. -> value, err, level
local function load(self, key, opts, loader, ...)
  local kind, v, x, cost = run_loader(self, loader, ...)
  if kind == "error" then return nil, "EUSER: " .. v end
  local negative = kind == "missing"
  local stale = negative and 0 or (opts and opts.stale and floor(opts.stale * 1000 + 0.5) or self.stale_ms)
  local value, err = store(self, key, v, negative, ttl_ms(self, opts, negative, x), stale, cost,
                           _M._tagged(opts))
  if err then return nil, err end
  if negative then return nil, nil, LOADED end
  return value, nil, LOADED
end

function _M._tagged(opts)
  local tags = opts and opts.tags
  return tags ~= nil and #tags > 0
end

-- A value for the caller only (not stored), decoded like an L1 value.
function _M._decode(self, payload)
  local v, err = deserialize(self, payload)
  if err then return nil end
  return v
end

-- A value kept for stale-if-error and the stale_or_load policy: {value, level}.
-- -> value (nil for a cached "not found"), level
function _M._stale_value(stale)
  local v = stale[1]
  if v == NEG then return nil, stale[2] end
  return v, stale[2]
end

-- Host tiers and the remote tier's invalidation link (remote.lua's events).
function _M._evict_local(self, key)
  self.lru:delete(key)
  if self.l2 then self.l2:delete(self.prefix .. key) end
  self.counts.invalidations_received = self.counts.invalidations_received + 1
end

function _M._flush_local(self)
  self.lru:flush_all()
  self.counts.l1_flushes = self.counts.l1_flushes + 1
end

-- While the link is down nothing in L1 or L2 is trusted as fresh (a write on
-- another host may have been missed); once it is back, L2 entries made
-- before that moment count as stale only.
function _M._link(self, up, trust_from)
  self.link_up = up
  if up then self.trust_from = trust_from end
  self.lru:flush_all()
end

-- The cross-worker lock: a shared-dict key with the lease TTL as expiry, so a
-- worker that dies holding it delays the others by lease_ttl at most.
local function lock(self, key)
  return self.locks:add(self.lock_prefix .. key, lock_token, self.lease_ttl)
end

local function unlock(self, key)
  local k = self.lock_prefix .. key
  if self.locks:get(k) == lock_token then self.locks:delete(k) end
end

-- Past the waiter deadline: the core's policies. stale is {value, level}: a
-- value this call saw (L1 past its XFetch point, an L2 entry not trusted as
-- fresh), or nil.
local function wait_expired(self, stale, key, opts, loader, ...)
  if self.policy == "fail" then
    return nil, ("ETIMEOUT: waited %d ms for another loader of this key"):format(self.lock_wait * 1000)
  end
  if self.policy == "stale_or_load" and stale ~= nil then
    self.counts.stale_hits = self.counts.stale_hits + 1
    local v, level = _M._stale_value(stale)
    return v, nil, level
  end
  return load(self, key, opts, loader, ...)
end

-- This worker's leader for key: takes the cross-worker lock (waiting for the
-- holder's value to land in L2), then the remote tier or the loader.
local function lead(self, stale, key, opts, loader, ...)
  local counts = self.counts
  if not self.l2 then -- no lock to give back: fill's pcall covers errors
    if self.remote then return self.remote:get(stale, key, opts, loader, ...) end
    return load(self, key, opts, loader, ...)
  end
  local deadline, nap = ngx_now() + self.lock_wait, 0.001
  while not lock(self, key) do
    counts.waits = counts.waits + 1
    sleep(nap)
    nap = min(nap * 2, 0.05)
    local v, verdict, err = l2_read(self, key, now_ms())
    if err then return nil, err end
    if verdict ~= MISS and verdict ~= UNTRUSTED then
      if verdict == NEGATIVE then return nil, nil, L2 end
      return v, nil, L2
    end
    if ngx_now() >= deadline then return wait_expired(self, stale, key, opts, loader, ...) end
  end
  -- filled between our miss and our lock?
  local v, verdict = l2_read(self, key, now_ms())
  if verdict == OK or verdict == NEGATIVE or verdict == HIT_REFRESH then
    unlock(self, key)
    return v, nil, L2
  end
  local ok, v, err, level
  if self.remote then
    ok, v, err, level = pcall(self.remote.get, self.remote, stale, key, opts, loader, ...)
  else
    ok, v, err, level = pcall(load, self, key, opts, loader, ...)
  end
  unlock(self, key)
  if not ok then error(v, 0) end
  return v, err, level
end

-- Each fill's token, a table only its leader's stack holds (fill's local,
-- used after the pcall so it stays live), kept here weakly: a leader killed
-- inside its fill (ngx.thread.kill, a client abort) never clears
-- inflight[key]; once the GC has its coroutine and so the token, the next
-- caller leads instead of waiting for it. (coroutine.running() would do,
-- but it is not compiled and costs a remote hit ~7k instructions.)
local leaders = setmetatable({}, {__mode = "v"})

-- One loader per key in this worker: the first caller leads, the others wait
-- on its semaphore and get its result.
local function fill(self, stale, key, opts, loader, ...)
  local inflight = self.inflight
  local f = inflight[key]
  if f and leaders[f] == nil then -- its leader died in it
    inflight[key], f = nil, nil
  end
  if f then
    self.counts.singleflight_shared = self.counts.singleflight_shared + 1
    local sema = f.sema
    if not sema then sema = semaphore.new(); f.sema = sema end -- made by the first waiter
    local ok = sema:wait(self.lock_wait)
    if ok or f.done then return f.value, f.err, f.level end
    return wait_expired(self, stale, key, opts, loader, ...)
  end
  f = {}
  local token = {}
  inflight[key], leaders[f] = f, token
  local ok, v, err, level = pcall(lead, self, stale, key, opts, loader, ...)
  if inflight[key] == f and leaders[f] == token then inflight[key] = nil end
  if not ok then v, err, level = nil, "EUSER: " .. tostring(v), nil end
  f.done, f.value, f.err, f.level = true, v, err, level
  local sema = f.sema
  if sema then
    local waiting = -sema:count()
    if waiting > 0 then sema:post(waiting) end
  end
  return v, err, level
end

-- Stale-while-revalidate and XFetch: the caller has its value; one timer per
-- key and worker refreshes it, and only where the cross-worker lock is free.
local function refresh_job(premature, self, key, opts, loader, ...)
  if not premature and (not self.l2 or lock(self, key)) then
    -- another worker's refresh may have landed between our read and our lock
    if self.l2 and select(2, l2_read(self, key, now_ms())) == OK then
      unlock(self, key)
      self.refreshing[key] = nil
      return
    end
    local ok, _, err
    if self.remote then ok, _, err = pcall(self.remote.get, self.remote, nil, key, opts, loader, ...)
    else ok, _, err = pcall(load, self, key, opts, loader, ...) end
    if self.l2 then unlock(self, key) end
    if not ok or err then ngx.log(ngx.WARN, "stratacache: refresh of ", key, ": ", tostring(err)) end
  end
  self.refreshing[key] = nil
end

local function refresh_later(self, key, opts, loader, ...)
  if self.refreshing[key] then return end
  self.refreshing[key] = true
  local ok = timer_at(0, refresh_job, self, key, opts, loader, ...)
  if not ok then self.refreshing[key] = nil end
end

---------------------------------------------------------------------------
-- Reads

local function get_slow(self, stale, key, opts, loader, ...)
  local counts = self.counts
  counts.l1_misses = counts.l1_misses + 1
  if opts ~= nil and type(opts) ~= "table" then bad(2, "get", "opts must be a table or nil, got " .. type(opts)) end
  if loader ~= nil and type(loader) ~= "function" then
    bad(3, "get", "loader must be a function or nil, got " .. type(loader))
  end
  if self.l2 then
    local v, verdict, err = l2_read(self, key, now_ms())
    if err then return nil, err end
    if verdict == OK then counts.l2_hits = counts.l2_hits + 1; return v, nil, L2 end
    if verdict == NEGATIVE then counts.negative_hits = counts.negative_hits + 1; return nil, nil, L2 end
    if verdict == UNTRUSTED then
      if stale == nil then stale = {v == nil and NEG or v, L2} end
    elseif verdict ~= MISS then
      if verdict == HIT_REFRESH then counts.early_refreshes = counts.early_refreshes + 1
      else counts.stale_hits = counts.stale_hits + 1 end
      if loader then refresh_later(self, key, opts, loader, ...) end
      return v, nil, L2
    end
    counts.l2_misses = counts.l2_misses + 1
  end
  if not loader and not self.remote then return nil end
  local why = cannot_wait("a cache miss (it waits for a loader or the network)")
  if why then return nil, why end
  return fill(self, stale, key, opts, loader, ...)
end

-- Other workers' writes are applied (ipc:poll) when the shared word of the
-- event log changed since this worker's last poll: one plain load per read
-- (ipc.lua), so a write in another worker is seen by the very next read, and
-- a hit is an lrucache get plus that load.
function _M.get(self, key, opts, loader, ...)
  if type(key) ~= "string" then bad(1, "get", "key must be a non-empty string") end
  local events = self.ipc
  if events.word[0] ~= events.word_seen then events:poll() end
  local v, stale = self.lru:get(key)
  if v ~= nil then
    local counts = self.counts
    counts.l1_hits = counts.l1_hits + 1
    if v == NEG then return nil, nil, L1 end
    return v, nil, L1
  end
  if key == "" then bad(1, "get", "key must be a non-empty string") end
  return get_slow(self, stale ~= nil and {stale, L1} or nil, key, opts, loader, ...)
end

-- L1 then L2 (fresh entries only). -> value, level | nil (not there)
local function host_read(self, key)
  local events = self.ipc
  if events.word[0] ~= events.word_seen then events:poll() end
  local v = self.lru:get(key)
  if v ~= nil then
    self.counts.l1_hits = self.counts.l1_hits + 1
    if v == NEG then return nil, L1 end
    return v, L1
  end
  self.counts.l1_misses = self.counts.l1_misses + 1
  if self.l2 then
    local lv, verdict = l2_read(self, key, now_ms())
    if verdict == OK or verdict == HIT_REFRESH or verdict == HIT_STALE then
      self.counts.l2_hits = self.counts.l2_hits + 1
      return lv, L2
    end
    if verdict == NEGATIVE then return nil, L2 end
  end
  return nil
end

-- get_many(keys[, opts[, loader]]) -> values, errs, levels: arrays aligned
-- with keys (holes for misses). L1 and L2 per key, then one remote round
-- (the core's get_many op) for what is left, then loader(key) per key still
-- missing, through get's locks.
function _M.get_many(self, keys, opts, loader)
  if type(keys) ~= "table" then bad(1, "get_many", "keys must be an array of strings") end
  if loader ~= nil and type(loader) ~= "function" then bad(3, "get_many", "loader must be a function") end
  local n = #keys
  local values, errs, levels = {}, {}, {}
  local missing = {}
  for i = 1, n do
    local key = keys[i]
    if type(key) ~= "string" or key == "" then bad(1, "get_many", "key #" .. i .. " must be a non-empty string") end
    local v, level = host_read(self, key)
    values[i], levels[i] = v, level
    if level == nil then missing[#missing + 1] = i end
  end
  if #missing > 0 and self.remote then
    local why = cannot_wait("a remote read")
    if why then
      for _, i in ipairs(missing) do errs[i] = why end
      return values, errs, levels
    end
    local mkeys = {}
    for j, i in ipairs(missing) do mkeys[j] = keys[i] end
    local got, err = self.remote:get_many(mkeys)
    local still = {}
    for j, i in ipairs(missing) do
      local r = got and got[j]
      if r then values[i], levels[i] = r[1], r[2]
      elseif err then errs[i] = err; if loader then still[#still + 1] = i end
      else still[#still + 1] = i end
    end
    missing = still
  end
  if loader then
    for _, i in ipairs(missing) do
      errs[i] = nil
      values[i], errs[i], levels[i] = self:get(keys[i], opts, loader, keys[i])
    end
  end
  return values, errs, levels
end

---------------------------------------------------------------------------
-- Writes: the remote tier first (when there is one), then this host's tiers,
-- then the other workers' L1 through the shared dict.

local function check_key(fname, key)
  if type(key) ~= "string" or key == "" then bad(1, fname, "key must be a non-empty string") end
end

local function evict_everywhere(self, key)
  self.lru:delete(key)
  if self.l2 then self.l2:delete(self.prefix .. key) end
  return self.ipc:publish("k" .. key)
end

-- set(key, value[, opts {ttl =, stale =, tags =}]) -> true | nil, err
function _M.set(self, key, value, opts)
  check_key("set", key)
  if type(value) == "number" then value = tostring(value) end
  if type(value) ~= "string" then bad(2, "set", "value must be a string, got " .. type(value)) end
  if opts ~= nil and type(opts) ~= "table" then bad(3, "set", "opts must be a table or nil") end
  local ttl = opts and opts.ttl and floor(opts.ttl * 1000 + 0.5) or self.ttl_ms
  local stale = opts and opts.stale and floor(opts.stale * 1000 + 0.5) or self.stale_ms
  if self.remote then
    local why = cannot_wait("a write to the remote tier")
    if why then return nil, why end
    local ok, err = self.remote:set(key, value, opts, ttl, stale)
    if not ok then evict_everywhere(self, key); return nil, err end
  end
  local _, err = store(self, key, value, false, ttl, stale, 0, _M._tagged(opts))
  if err then return nil, err end
  self.counts.sets = self.counts.sets + 1
  return self.ipc:publish("k" .. key)
end

function _M.delete(self, key)
  check_key("delete", key)
  if self.remote then
    local why = cannot_wait("a delete in the remote tier")
    if why then return nil, why end
    local ok, err = self.remote:delete(key)
    evict_everywhere(self, key)
    if not ok then return nil, err end
  else
    local ok, err = evict_everywhere(self, key)
    if not ok then return nil, err end
  end
  self.counts.deletes = self.counts.deletes + 1
  return true
end

-- Drops key from every tier and every worker's (and host's) L1.
_M.invalidate = _M.delete

function _M.invalidate_tag(self, tag)
  if type(tag) ~= "string" or tag == "" then bad(1, "invalidate_tag", "tag must be a non-empty string") end
  if not self.remote then
    return nil, "ENOTSUP: tags need the remote tier (a redis:// url): tag versions live in the backend"
  end
  local why = cannot_wait("a tag bump")
  if why then return nil, why end
  local ok, err = self.remote:invalidate_tag(tag)
  if not ok then return nil, err end
  -- tagged entries of this host's L1s, whichever keys they are: gone at once
  return self:purge_l1()
end

-- write_through(key, value, writer[, opts]): writer(key, value) -> true |
-- nil/false[, err] (or a raise) writes the source first; only then the cache.
function _M.write_through(self, key, value, writer, opts)
  check_key("write_through", key)
  if type(writer) ~= "function" then bad(3, "write_through", "writer must be a function") end
  local ok, done, err = pcall(writer, key, value)
  if not ok then return nil, "EUSER: writer raised: " .. tostring(done) end
  if not done then return nil, "EUSER: writer failed: " .. tostring(err) end
  return self:set(key, value, opts)
end

-- Write-behind is not for nginx: its journal (a Redis stream per namespace)
-- and the wb_poll/ack pull API run on the core's blocking driver, which would
-- freeze the worker. Deliver it from a service process (C, Python, plain Lua).
function _M.write_behind()
  return nil, "ENOTSUP: write-behind from nginx is not supported: its journal and delivery run "
    .. "on the blocking driver; use write_through here, write_behind from a service process"
end

-- Drops every entry of this worker's L1 and asks the other workers to.
function _M.purge_l1(self)
  self.lru:flush_all()
  return self.ipc:publish("f")
end

---------------------------------------------------------------------------
-- Stats

-- Counters summed over every worker (and reloads), by the names of
-- docs/METRICS.md where they exist there (l2_* are the shm tier's).
function _M.stats(self)
  return self._stats:merged()
end

-- The Prometheus text exposition of stats(), for a /metrics location.
function _M.prometheus(self)
  local gauges = {{"l1_entries", self.lru:count(), "Entries in the in-process tier (this worker)."}}
  if self.remote then gauges[#gauges + 1] = {"l1_link_up", self.remote:link_up() and 1 or 0,
    "1 while the L1 invalidation link is subscribed."} end
  return stats.prometheus(self._stats:merged(), self.ns, gauges)
end

return _M
