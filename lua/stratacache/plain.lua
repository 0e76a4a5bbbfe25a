-- The Lua half of the plain C module (lua/stratacache_lua.c embeds this file
-- at build time and runs it from luaopen_stratacache): sc.new's option
-- handling and get_or_load over the two-phase primitives. The parts the nginx
-- module needs too live in stratacache.options and stratacache.loader.
local sc, methods, cnew, csleep, cnow, cclock, l1_check_address, use_ffi_tier, gol_front = ...
local type, tostring, rawget = type, tostring, rawget
local pcall = pcall
local co_create, co_resume, co_status, co_yield = coroutine.create, coroutine.resume, coroutine.status, coroutine.yield
local options = require "stratacache.options"
local loader_result = require "stratacache.loader"

local NOT_FOUND = loader_result.NOT_FOUND
sc.NOT_FOUND = NOT_FOUND
local OK, NEGATIVE, HIT_STALE, HIT_REFRESH, MISS_LEAD, MISS_WAIT = 0, 2, 3, 4, 5, 6
local EBACKEND, ETIMEOUT, EBREAKER = -3, -4, -12
local lookup, record = methods._gol_lookup, methods._record_load
local settings = setmetatable({}, {__mode = "k"})

-- Inside nginx this module's network I/O would block the worker (every
-- request of that worker waits): it refuses a networked cache there and
-- points to resty.stratacache. memory:// is fine; its lease waits sleep with
-- ngx.sleep where the phase allows, so other requests keep running.
local ngx = rawget(_G, "ngx")
local in_nginx = type(ngx) == "table" and type(ngx.config) == "table"
  and ngx.config.ngx_lua_version ~= nil
local yieldable = {rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true}
local sleep = csleep
if in_nginx then
  sleep = function(s)
    if yieldable[ngx.get_phase()] then return ngx.sleep(s) end
    return csleep(s)
  end
end
sc.sleep = sleep

local function networked(url, opts)
  return not url:find("^memory://") or opts.l1_bus ~= nil
end

function sc.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'new' (options must be a table, got " .. type(opts) .. ")", 2)
  end
  local url = options.url("new", opts.url or "memory://", opts, {sleep = true, blocking_in_nginx = true})
  if opts.sleep ~= nil and type(opts.sleep) ~= "function" then
    error("bad argument #1 to 'new' (sleep must be a function, got " .. type(opts.sleep) .. ")", 2)
  end
  if in_nginx and networked(url, opts) and not opts.blocking_in_nginx then
    return nil, "ENOTSUP: the stratacache C module does blocking network I/O, which would freeze "
      .. "this nginx worker; inside nginx use require 'resty.stratacache' (cosockets), "
      .. "or pass blocking_in_nginx = true to accept the freeze"
  end
  local c, err = cnew(url)
  if not c then return nil, err end
  local lock_wait, policy = options.wait_settings(url, 2000, 0)
  settings[c] = {lock_wait = lock_wait, policy = policy, sleep = opts.sleep or sleep}
  return c
end

-- Runs the loader; yields inside it reach the caller's coroutine. On plain
-- Lua 5.1 pcall is not yieldable, so the loader runs in its own coroutine
-- whose yields are passed up by hand.
local call
if _VERSION ~= "Lua 5.1" or rawget(_G, "jit") then
  call = pcall
else
  local function pass(co, ok, ...)
    if not ok then return false, ... end
    if co_status(co) == "dead" then return true, ... end
    return pass(co, co_resume(co, co_yield(...)))
  end
  call = function(f, ...)
    local co = co_create(f)
    return pass(co, co_resume(co, ...))
  end
end

-- -> 'value', v, ttl | 'missing', neg_ttl | 'error', message. Each call is
-- counted in the cache's stats and load histogram (strata_record_load).
local check = loader_result.check
local function load(self, loader, ...)
  local t0 = cclock()
  local ok, v, x = call(loader, ...)
  local kind, a, b = check(ok, v, x)
  record(self, kind == "error", t0)
  return kind, a, b
end

local function finish(ticket, kind, v, x)
  if kind == "value" then
    if ticket then ticket:fill(v, x) end
    return v, nil, 3
  elseif kind == "missing" then
    if ticket then ticket:fill_negative(x) end
    return nil, nil, "negative"
  end
  if ticket then ticket:abandon() end
  return nil, "EUSER: " .. v
end

-- The slow path: everything but a plain hit (a miss, a wait, a refresh, an
-- error). opts is get_or_load's options table or nil.
local function resolve(self, key, rc, val, level, ticket, wait_ms, err, opts, loader, ...)
  local s, deadline, backoff = settings[self], nil, nil
  while true do
    if rc == OK or rc == HIT_STALE then return val, nil, level end
    if rc == NEGATIVE then return nil, nil, "negative" end
    if rc == HIT_REFRESH then
      local kind, v, x = load(self, loader, ...)
      if kind == "error" then ticket:abandon(); return val, nil, level end
      return finish(ticket, kind, v, x)
    end
    if rc == MISS_LEAD then return finish(ticket, load(self, loader, ...)) end
    if rc == MISS_WAIT then
      local now = cnow()
      if not deadline then deadline, backoff = now + s.lock_wait, 2 end
      if now >= deadline then
        if s.policy == 2 then
          return nil, ("ETIMEOUT: waited %d ms for another loader of this key"):format(s.lock_wait)
        end
        return finish(nil, load(self, loader, ...))
      end
      local nap = backoff < wait_ms and backoff or wait_ms
      if nap > deadline - now then nap = deadline - now end
      if nap < 1 then nap = 1 end
      s.sleep(nap / 1000)
      backoff = backoff * 2 > 50 and 50 or backoff * 2
    elseif rc == EBACKEND or rc == ETIMEOUT or rc == EBREAKER then
      return finish(nil, load(self, loader, ...))
    else
      return nil, err or "EBACKEND: unexpected lookup result " .. tostring(rc)
    end
    if opts then rc, val, level, ticket, wait_ms, err = lookup(self, key, opts, loader)
    else rc, val, level, ticket, wait_ms, err = lookup(self, key, loader) end
  end
end

-- get_or_load past its C lookup.
local function looked_up(self, key, loader, rc, val, level, ticket, wait_ms, err, ...)
  if rc == OK then return val, nil, level end
  if type(loader) == "table" then return resolve(self, key, rc, val, level, ticket, wait_ms, err, loader, ...) end
  return resolve(self, key, rc, val, level, ticket, wait_ms, err, nil, loader, ...)
end

-- A hit is one C call (which also checks the arguments; on an L1 cache it
-- serves the string tier as get does) and one comparison.
-- get_or_load(key, loader, ...) or get_or_load(key, {tags = {...}}, loader, ...):
-- with options, the C lookup gets the loader too (the first of ...).
function methods.get_or_load(self, key, loader, ...)
  local rc, val, level, ticket, wait_ms, err = lookup(self, key, loader, (...))
  if rc == OK then return val, nil, level end
  return looked_up(self, key, loader, rc, val, level, ticket, wait_ms, err, ...)
end
-- Lua 5.3+: a C front serves tier hits with no Lua call and calls the above
-- for the rest (a call to a Lua function with varargs costs as much as the hit).
if gol_front then methods.get_or_load = gol_front(methods.get_or_load) end

-- Under LuaJIT, get keeps the strings of L1 hits in Lua tables and checks one
-- with strata_l1_check through the FFI before it hands it out again (the C
-- module does the same in C under PUC Lua, lua/stratacache_lua.c): a call to
-- a Lua C function is never compiled, an FFI call is. The check decides as an
-- L1 hit would (expiry, invalidations from this and other processes, tag
-- bumps, writes, clear), and counts the hit. tiers[self] exists only for
-- caches _get_fill accepted, so finding it proves self is one; ((void **)
-- self)[0] is the strata_cache (NULL once closed).
local ok_ffi, ffi = false, nil
if rawget(_G, "jit") then ok_ffi, ffi = pcall(require, "ffi") end
if ok_ffi and l1_check_address then
  local check = ffi.cast("int (*)(void *, const char *, size_t, uint64_t)", l1_check_address)
  local handle = ffi.typeof("void **")
  local fill = methods._get_fill
  local tiers, sizes = setmetatable({}, {__mode = "k"}), setmetatable({}, {__mode = "k"})
  local function tier_put(self, key, v, version, max_count, max_bytes)
    local t, size = tiers[self], sizes[self]
    if not t or size[1] >= max_count or size[2] >= max_bytes then -- bounded as L1 is
      t, size = {}, {0, 0}
      tiers[self], sizes[self] = t, size
    end
    size[1], size[2] = size[1] + 1, size[2] + #key + #v
    t[key] = {v, version}
  end
  -- the kept string of key while its L1 entry still serves it, else nil
  local function tier_hit(self, key)
    local t = tiers[self]
    if t then
      local e = t[key]
      if e then
        local c = ffi.cast(handle, self)[0]
        if c ~= nil and check(c, key, #key, e[2]) == 0 then return e[1] end
      end
    end
  end
  -- fill's results as get's (a miss stays one nil), keeping an L1 hit's string
  local function keep(self, key, ...)
    local v, err, level, version, max_count, max_bytes = ...
    if not version then return ... end
    tier_put(self, key, v, version, max_count, max_bytes)
    return v, err, level
  end
  function methods.get(self, key)
    local v = tier_hit(self, key)
    if v then return v, nil, 1 end
    return keep(self, key, fill(self, key))
  end
  -- The same tier for get_or_load(key, loader): the C lookup returns an L1
  -- hit's entry version (use_ffi_tier). Only an L1 hit is served here, and
  -- the check ends it where L1 stops serving it, so XFetch,
  -- stale-while-revalidate and leases are still the C lookup's decisions.
  use_ffi_tier()
  function methods.get_or_load(self, key, loader, ...)
    if type(loader) == "function" then
      local v = tier_hit(self, key)
      if v then return v, nil, 1 end
    end
    local rc, val, level, ticket, wait_ms, err, version, max_count, max_bytes = lookup(self, key, loader, (...))
    if rc == OK then
      if version then tier_put(self, key, val, version, max_count, max_bytes) end
      return val, nil, level
    end
    return looked_up(self, key, loader, rc, val, level, ticket, wait_ms, err, ...)
  end
end

-- flush(timeout[, writer]): with a writer, pull the batches here and hand each
-- batch's records to writer(records) in the caller's Lua code (it may yield):
-- true acks, nil/false, err or a raise fails the batch (retried after
-- wb_retry_ms). Done when the backlog is empty (strata_flush with 0 ms says so).
local cflush, wb_poll = methods._flush, methods.wb_poll
function methods.flush(self, timeout, writer)
  local r, err = cflush(self, timeout, writer)
  if r == true then return true elseif r ~= "drain" then return nil, err end
  local deadline, s = cnow() + timeout * 1000, settings[self]
  while true do
    local batch, perr = wb_poll(self)
    if batch then
      local ok, done, why = call(writer, batch.records)
      if ok and done then batch:ack()
      elseif ok then batch:fail(why ~= nil and tostring(why) or "writer returned nil or false")
      else batch:fail("writer raised: " .. tostring(done)) end
    elseif perr then return nil, perr
    else
      r, err = cflush(self, 0)
      if r then return r end
      if cnow() >= deadline then return nil, err end
      s.sleep(0.005) -- nothing due now: records wait for a retry or another consumer
    end
    if cnow() >= deadline then return cflush(self, 0) end
  end
end
