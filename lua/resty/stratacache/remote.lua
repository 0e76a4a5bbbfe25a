-- The remote tier of resty.stratacache: a cosocket driver of the core's
-- resumable operations (docs/SANS-IO.md). It only moves bytes: the core says
-- what to send to which server, what to wait for and what the replies mean
-- (leases, fills, tags, coherence); this file connects, sends, feeds what
-- arrives (sock:receiveany, any split), applies the deadlines and reports
-- connection failures. The core's handle is made with io=host (no socket, no
-- thread) and l1=0 (the Lua tiers are the host's L1/L2).
local ffi = require "ffi"
local lib = require "resty.stratacache.lib"
local options = require "stratacache.options"

local C = lib.C
local ngx = ngx
local tcp, sleep, ngx_now, timer_at = ngx.socket.tcp, ngx.sleep, ngx.now, ngx.timer.at
local ffi_string, ffi_gc, tonumber, tostring, type = ffi.string, ffi.gc, tonumber, tostring, type
local floor, min, max, band = math.floor, math.min, math.max, bit.band

local DONE, SEND, WAIT = 0, 1, 3
local OK, MISS, NEGATIVE, HIT_STALE, HIT_REFRESH, MISS_LEAD = 0, 1, 2, 3, 4, 5
local EBACKEND, ETIMEOUT, EBREAKER = -3, -4, -12
local EVENT_EVICT, EVENT_FLUSH, EVENT_LINK_UP, EVENT_LINK_DOWN = 1, 2, 3, 4
local L3, LOADED = 3, 4
local RECV_SLICE_MS = 1000 -- the subscriber wakes this often to notice a reload

local _M = {}
local mt = {__index = _M}

if not pcall(ffi.typeof, "strata_io") then
  function _M.new()
    return nil, "ENOTSUP: this build's declarations have no sans-I/O operations (strata_op_*); "
      .. "a redis:// tier needs them"
  end
  return _M
end

-- Reused out-params. Nothing may yield between filling one and reading it:
-- other requests of the worker run in between yields.
local io = ffi.new("strata_io")
local value = ffi.new("strata_value")
local opp = ffi.new("strata_op*[1]")
local consumed = ffi.new("size_t[1]")
local event = ffi.new("strata_event")
local key_arr = ffi.new("const char*[1]")
local len_arr = ffi.new("size_t[1]")
-- The lookups' options: initialised once (in new), then each lookup sets
-- the fields it varies (lease, wait, tags) and nothing else writes them.
local lookup_opts = ffi.new("strata_op_options")

local function has_ops()
  return pcall(function() return C.strata_op_lookup, C.strata_events_next end)
end

local function op_error(op, rc)
  local msg = C.strata_op_error(op)
  msg = msg ~= nil and ffi_string(msg) or ""
  return ffi_string(C.strata_error_name(rc)) .. ": " .. msg
end

-- Options the remote core takes from sc.new (the rest are the Lua tiers').
local CORE = {namespace = true, ttl = true, stale = true, neg_ttl = true, lock_wait = true,
  lease_ttl = true, timeout = true, connect_timeout = true, wait_policy = true, xfetch_beta = true,
  breaker_threshold = true, breaker_cooldown = true, coherence_ping = true, tag_cache = true}

function _M.new(owner, opts)
  if not has_ops() then
    return nil, "ENOTSUP: this libstratacache has no sans-I/O operations (strata_op_*); "
      .. "a redis:// tier needs them (STRATACACHE_LIB names the library)"
  end
  C.strata_io_init(io, 1)
  C.strata_event_init(event, 1)
  C.strata_op_options_init(lookup_opts, 1)
  local core = {}
  for k, v in pairs(opts) do if CORE[k] then core[k] = v end end
  core.io, core.l1 = "host", false
  -- No hot-key sketch: resty has no hot-key report and these handles no L1
  -- to admit to, so feeding one would cost every remote read for nothing.
  core.hot_sketch_width = 0
  local url = options.url("new", opts.url, core, {})
  -- Two handles of the same configuration: one for the reads and writes, one
  -- for the invalidation link alone. The link's ping periods pass in silence
  -- whenever nothing changes, and each is reported as a timeout; on a handle
  -- of their own they never open the breaker that guards the reads.
  local cp, lp = ffi.new("strata_cache*[1]"), ffi.new("strata_cache*[1]")
  local rc = C.strata_cache_new(cp, url, nil)
  if rc ~= 0 then return nil, lib.error_string(rc) end
  local cache = ffi_gc(cp[0], C.strata_cache_free)
  rc = C.strata_cache_new(lp, url, nil)
  if rc ~= 0 then return nil, lib.error_string(rc) end
  local self = setmetatable({
    owner = owner,
    cache = cache,
    link_cache = ffi_gc(lp[0], C.strata_cache_free),
    pool = "strata:" .. opts.url:gsub("%?.*$", "") .. ":",
    pool_size = opts.pool_size or 32,
    connect_ms = opts.connect_timeout and floor(opts.connect_timeout * 1000) or 1000,
    servers = {}, -- server index -> {host, port, connect options}
    link = false, -- the invalidation link is subscribed
    trust_from = 0, -- ms: host-tier entries older than this were made while the link was down
  }, mt)
  local ok, err = timer_at(0, _M.subscriber, self)
  if not ok then return nil, "EBACKEND: ngx.timer.at: " .. tostring(err) end
  return self
end

function _M.link_up(self) return self.link end

---------------------------------------------------------------------------
-- Op lifetimes. ffi.gc on every op costs 0.4-1.7 us per remote read (the
-- finalizer table, then the GC calling the finalizer); ops are freed
-- explicitly instead. Each is registered with the conn table of the call
-- that runs it (a local of that call's frame, held by nothing else), so one
-- whose request died inside a yield (ngx.thread.kill, a client abort) is
-- freed by sweep() (the link's timer, every second) once the GC has
-- collected that coroutine and so its conn: nginx holds a reference to every
-- coroutine it may still resume. (coroutine.running() would do too, but it
-- ends a trace: ~600 instructions a remote read.)

-- Both tables are keyed by the op's address: the core's op pool hands the
-- same few addresses out again, so their slots are reused instead of a new
-- key (and now and then a rehash) per read, as a cdata key (a new object
-- per op) would cost.
local live = {} -- address -> op, until freed
local owners = setmetatable({}, {__mode = "v"}) -- address -> the conn of the call running it
local PINNED = {} -- the owner of an op handed to a timer, until the timer takes it
local uintptr = ffi.typeof("uintptr_t")

local function address(op)
  return tonumber(ffi.cast(uintptr, op))
end

-- The op just made by a strata_op_* begin call that returned rc, for the
-- call whose conn is owner. -> op | nil, rc
local function new_op(rc, owner)
  if rc ~= 0 then return nil, rc end
  local op = opp[0]
  local a = address(op)
  live[a], owners[a] = op, owner
  return op
end

local function own(op, owner)
  owners[address(op)] = owner
end

local function free_op(op)
  local a = address(op)
  if live[a] then
    live[a], owners[a] = nil, nil
    C.strata_op_free(op)
  end
end

local function sweep()
  for a, op in pairs(live) do
    if owners[a] == nil then free_op(op) end
  end
end
_M.sweep = sweep

-- Ops made and not freed yet (for tests).
function _M.live_ops()
  local n = 0
  for _ in pairs(live) do n = n + 1 end
  return n
end

-- The non-yielding steps of a drive, small so that the JIT compiles each on
-- its own: the driver around them yields in every cosocket call and runs in
-- the interpreter, where each FFI call or cdata field read costs ~0.1 us.

-- -> kind, server, timeout_ms (wait_ms for WAIT), bytes to send (SEND)
local function step(op)
  C.strata_op_next(op, io)
  local kind = io.kind
  if kind == SEND then return kind, io.server, tonumber(io.timeout_ms), ffi_string(io.data, io.len) end
  if kind == WAIT then return kind, 0, tonumber(io.wait_ms) end
  return kind, io.server, tonumber(io.timeout_ms)
end

-- -> strata_op_feed's rc, whether it took the whole chunk
local function feed(op, chunk)
  local rc = C.strata_op_feed(op, chunk, #chunk, consumed)
  return rc, tonumber(consumed[0]) == #chunk
end

-- The op's result. -> rc, payload (nil without one), fresh ms left
local function result(op)
  local rc = C.strata_op_result(op, value)
  local payload = value.data ~= nil and ffi_string(value.data, value.len) or nil
  local ttl = tonumber(value.ttl_ms)
  C.strata_value_dispose(value)
  return rc, payload, ttl
end

---------------------------------------------------------------------------
-- Connections: one nginx keepalive pool per server index. A connection the
-- pool made new is set up first (strata_op_hello: AUTH, SELECT).

local drive

-- Whether a new connection to server needs a hello (AUTH, SELECT): the
-- core's hello is made of the URL alone, so one probe tells for good, and a
-- connection needs no getreusedtimes() call per read when there is none.
local probe_io = ffi.new("strata_io")
local function needs_hello(cache, server)
  if C.strata_op_hello(opp, cache, server) ~= 0 then return true end -- connect reports it
  local hello = opp[0]
  C.strata_io_init(probe_io, 1)
  C.strata_op_next(hello, probe_io)
  local empty = probe_io.kind == DONE and C.strata_op_result(hello, nil) == 0
  C.strata_op_free(hello)
  return not empty
end

-- {host, port, connect options, needs a hello} of server i, made once
-- (indices are stable). Reads io.host: call it right after a step.
local function server_of(self, i)
  local srv = self.servers[i]
  if not srv then
    srv = {ffi_string(io.host), io.port, {pool = self.pool .. i, pool_size = self.pool_size}}
    srv[4] = needs_hello(self.cache, i)
    self.servers[i] = srv
  end
  return srv
end

local function connect(self, server, srv, timeout)
  local sock = tcp()
  sock:settimeouts(self.connect_ms, timeout, timeout)
  local ok, err = sock:connect(srv[1], srv[2], srv[3])
  if not ok then return nil, err end
  if srv[4] and sock:getreusedtimes() == 0 then
    local rc = C.strata_op_hello(opp, self.cache, server)
    if rc ~= 0 then sock:close(); return nil, lib.error_string(rc) end
    local hello = ffi_gc(opp[0], C.strata_op_free)
    local conn = {sock = sock, server = server, timeout = timeout}
    drive(self, hello, conn)
    rc = C.strata_op_result(hello, nil)
    if rc ~= 0 or not conn.sock then
      if conn.sock then sock:close() end
      return nil, op_error(hello, rc)
    end
    if conn.timeout ~= timeout then sock:settimeouts(self.connect_ms, timeout, timeout) end
  end
  return sock
end

-- A conn ({sock, server, timeout}) with its fields made at once: no
-- rehashes as the first exchange fills them in.
local function new_conn()
  return {sock = false, server = false, timeout = false}
end

local function release(self, conn)
  if conn.sock then
    conn.sock:setkeepalive(60000, self.pool_size)
    conn.sock = nil
  end
end

local function fail(op, conn, code, msg)
  C.strata_op_io_failed(op, code, msg)
  if conn.sock then conn.sock:close(); conn.sock = nil end
end

-- One step of a drive that is not DONE: a WAIT, or an exchange over conn
-- ({sock, server, timeout}, kept open for the caller). The socket's timeouts
-- are the exchange's (io.timeout_ms); a reply in several pieces is held to
-- the same deadline.
local function exchange(self, op, conn, kind, server, timeout, data)
  if kind == WAIT then
    release(self, conn) -- hold no connection while another host loads
    return sleep(max(timeout, 1) / 1000)
  end
  local sock = conn.sock
  if sock and conn.server ~= server then release(self, conn); sock = nil end
  if not sock then
    local srv = server_of(self, server)
    local err
    sock, err = connect(self, server, srv, timeout)
    if not sock then
      C.strata_op_io_failed(op, EBACKEND, "connect " .. srv[1] .. ":" .. srv[2] .. ": " .. tostring(err))
      return
    end
    conn.sock, conn.server, conn.timeout = sock, server, timeout
  elseif conn.timeout ~= timeout then
    sock:settimeouts(self.connect_ms, timeout, timeout)
    conn.timeout = timeout
  end
  if data then
    local ok, err = sock:send(data)
    if not ok then return fail(op, conn, EBACKEND, "send: " .. tostring(err)) end
  end
  local deadline
  while true do
    local chunk, err = sock:receiveany(65536)
    if not chunk then
      if err == "timeout" then return fail(op, conn, ETIMEOUT, "no reply within " .. timeout .. " ms") end
      return fail(op, conn, EBACKEND, "receive: " .. tostring(err))
    end
    local rc, whole = feed(op, chunk)
    if rc < 0 then sock:close(); conn.sock = nil; return end -- not a reply: stream lost
    if rc == 0 then
      -- bytes past this op's replies belong to no one here (no pipelining)
      if not whole then sock:close(); conn.sock = nil end
      return
    end
    -- more to come: what is left of the exchange's time
    deadline = deadline or ngx_now() + timeout / 1000
    local left = floor((deadline - ngx_now()) * 1000)
    if left <= 0 then return fail(op, conn, ETIMEOUT, "no reply within " .. timeout .. " ms") end
    sock:settimeout(left)
    conn.timeout = nil
  end
end

-- Drives op until DONE over conn. The first step is peeled off the loop: a
-- root trace that enters a loop aborts (the JIT waits for the loop's own
-- trace), and a lookup's one exchange then never reaches it.
function drive(self, op, conn)
  local kind, server, timeout, data = step(op)
  if kind == DONE then return end
  exchange(self, op, conn, kind, server, timeout, data)
  kind, server, timeout, data = step(op)
  while kind ~= DONE do
    exchange(self, op, conn, kind, server, timeout, data)
    kind, server, timeout, data = step(op)
  end
end

-- Drives the op a begin call made (returning rc) to its end. -> op (the
-- caller frees it), rc, payload, fresh ms left | nil, rc
local function run(self, rc, conn)
  local op
  op, rc = new_op(rc, conn)
  if not op then return nil, rc end
  drive(self, op, conn)
  return op, result(op)
end

---------------------------------------------------------------------------
-- Reads

local tag_ptrs, tag_lens = ffi.new("const char*[16]"), ffi.new("size_t[16]")

local function set_tags(o, tags)
  o.ntags = 0
  if type(tags) ~= "table" then return end
  local n = min(#tags, 16)
  for i = 1, n do
    tag_ptrs[i - 1], tag_lens[i - 1] = tags[i], #tags[i]
  end
  o.tags, o.taglens, o.ntags = tag_ptrs, tag_lens, n
end

-- strata_op_lookup with the reused options. -> rc (the op is in opp[0])
local function begin_lookup(cache, key, lease, tags)
  lookup_opts.lease, lookup_opts.wait = lease, 1
  set_tags(lookup_opts, tags)
  return C.strata_op_lookup(opp, cache, key, #key, lookup_opts)
end

-- The op metadata ABI (strata_op_meta, in libraries that have it): the
-- entry's own stale_until, loader cost and whether it carries tag stamps, so
-- the host tiers keep it as the core would. Without it they keep the fresh
-- ms left, this cache's stale window, no cost, and tags only as asked.
local meta
if pcall(ffi.typeof, "strata_op_meta") and pcall(function() return C.strata_op_meta_get end) then
  meta = ffi.new("strata_op_meta")
end
local META_EXACT, META_TAGGED = 1, 2
_M.has_meta = meta ~= nil

-- How the host tiers keep the entry behind result i of op.
-- -> ttl_ms, stale_ms (nil: this cache's), cost_ms, tagged (the entry's
-- stamps; a tagged entry is served again only through a lookup)
local function entry_of(op, i, ttl_ms, tagged)
  if not meta then return ttl_ms, nil, 0, tagged end
  C.strata_op_meta_init(meta, 1)
  if C.strata_op_meta_get(op, i, meta) ~= 0 then return ttl_ms, nil, 0, tagged end
  local flags = meta.flags
  if band(flags, META_TAGGED) ~= 0 then tagged = true end
  if band(flags, META_EXACT) == 0 then return ttl_ms, nil, 0, tagged end
  local now = floor(ngx_now() * 1000)
  local fresh, stale_until = tonumber(meta.fresh_until_ms), tonumber(meta.stale_until_ms)
  local ttl = max(fresh - now, 0)
  return ttl, max(stale_until - now - ttl, 0), tonumber(meta.cost_ms), tagged
end

-- Stores what the remote tier said into the host tiers. -> value, nil, level
local function keep(self, key, payload, negative, ttl_ms, stale_ms, cost_ms, tagged)
  local owner = self.owner
  if stale_ms == nil then stale_ms = negative and 0 or owner.stale_ms end
  local v, err = owner._store(owner, key, payload, negative, max(ttl_ms, 0), stale_ms, cost_ms, tagged)
  if err then return nil, err end
  if negative then return nil, nil, L3 end
  return v, nil, L3
end

-- The fill half after MISS_LEAD / HIT_REFRESH: the loader runs with no
-- connection held, then the op stores under its lease. Frees the op.
-- -> value, err, level
local function load_and_fill(self, op, conn, key, opts, loader, ...)
  release(self, conn)
  local owner = self.owner
  local kind, v, x, cost = owner._run_loader(owner, loader, ...)
  if kind == "error" then
    C.strata_op_abandon(op)
    drive(self, op, conn)
    release(self, conn)
    free_op(op)
    return nil, "EUSER: " .. v
  end
  local negative = kind == "missing"
  local ttl_ms = owner._ttl_ms(owner, opts, negative, x)
  if negative then C.strata_op_fill_negative(op, ttl_ms)
  else C.strata_op_fill(op, v, #v, ttl_ms) end
  drive(self, op, conn)
  local rc = C.strata_op_result(op, nil)
  release(self, conn)
  free_op(op)
  if rc < 0 and rc ~= -11 then -- ELEASE: a later write won; our value is still the answer
    owner.counts.backend_errors = owner.counts.backend_errors + 1
  end
  local stored, err = owner._store(owner, key, v, negative, ttl_ms,
                                   negative and 0 or owner.stale_ms, cost, owner._tagged(opts))
  if err then return nil, err end
  if negative then return nil, nil, LOADED end
  return stored, nil, LOADED
end

local function refresh_job(premature, self, op, key, opts, loader, ...)
  if premature then return free_op(op) end
  local conn = new_conn()
  own(op, conn)
  local ok, err = pcall(load_and_fill, self, op, conn, key, opts, loader, ...)
  release(self, conn)
  free_op(op)
  if not ok then ngx.log(ngx.WARN, "stratacache: refresh of ", key, ": ", tostring(err)) end
end

-- The loader without the lease and without a fill (the remote tier failed,
-- or lock_wait passed with wait_policy load). -> value, err, level
local function load_unstored(owner, loader, ...)
  local kind, v = owner._run_loader(owner, loader, ...)
  if kind == "error" then return nil, "EUSER: " .. v end
  if kind == "missing" then return nil, nil, LOADED end
  return owner._decode(owner, v), nil, LOADED
end

-- get through the core's lookup op. stale: a value this call saw in L1 past
-- its XFetch point (served if the remote tier fails). -> value, err, level
function _M.get(self, stale, key, opts, loader, ...)
  local owner, counts = self.owner, self.owner.counts
  local tags = opts and opts.tags
  local conn = new_conn()
  local op, rc, payload, ttl = run(self, begin_lookup(self.cache, key, loader and 1 or 0, tags), conn)
  if not op then return nil, lib.error_string(rc) end
  if rc == OK or rc == HIT_STALE or rc == HIT_REFRESH then
    if rc == OK then counts.hits = counts.hits + 1 else counts.stale_hits = counts.stale_hits + 1 end
    release(self, conn)
    local ttl_ms, stale_ms, cost_ms, tagged = entry_of(op, 0, rc == OK and ttl or 0, owner._tagged(opts))
    if rc == HIT_REFRESH and loader then
      counts.early_refreshes = counts.early_refreshes + 1
      own(op, PINNED) -- the timer's now: kept until it runs
      if not timer_at(0, refresh_job, self, op, key, opts, loader, ...) then free_op(op) end
    else
      free_op(op)
    end
    local v, err, level = keep(self, key, payload or "", false, ttl_ms, stale_ms, cost_ms, tagged)
    return v, err, level -- not a tail call: keep's trace would return into a pcall frame (NYI)
  elseif rc == NEGATIVE then
    local ttl_ms, stale_ms, cost_ms, tagged = entry_of(op, 0, ttl, owner._tagged(opts))
    free_op(op)
    counts.negative_hits = counts.negative_hits + 1
    release(self, conn)
    local v, err, level = keep(self, key, nil, true, ttl_ms, stale_ms, cost_ms, tagged)
    return v, err, level
  elseif rc == MISS_LEAD then
    counts.misses = counts.misses + 1
    return load_and_fill(self, op, conn, key, opts, loader, ...)
  end
  release(self, conn)
  local why = op_error(op, rc)
  free_op(op)
  if rc == MISS then
    counts.misses = counts.misses + 1
    if not loader then return nil end
    return load_unstored(owner, loader, ...)
  end
  if rc == ETIMEOUT and owner.policy == "fail" and why:find("loader", 1, true) then
    return nil, why
  end
  if rc == EBACKEND or rc == ETIMEOUT or rc == EBREAKER then
    if rc == ETIMEOUT then counts.timeouts = counts.timeouts + 1
    else counts.backend_errors = counts.backend_errors + 1 end
    if stale ~= nil then -- stale-if-error
      counts.stale_hits = counts.stale_hits + 1
      local v, level = owner._stale_value(stale)
      return v, nil, level
    end
    if not loader then return nil, why end
    counts.fail_open = counts.fail_open + 1
    return load_unstored(owner, loader, ...)
  end
  return nil, why
end

-- keys -> {[j] = {value, level} for hits and cached "not found"s}, or nil, err
function _M.get_many(self, keys)
  local n = #keys
  local ptrs, lens = ffi.new("const char*[?]", n), ffi.new("size_t[?]", n)
  for i = 1, n do ptrs[i - 1], lens[i - 1] = keys[i], #keys[i] end
  local o = ffi.new("strata_op_options")
  C.strata_op_options_init(o, 1)
  o.lease = 0
  local conn = new_conn()
  local op, rc = run(self, C.strata_op_get_many(opp, self.cache, n, ptrs, lens, o), conn)
  release(self, conn)
  if not op then return nil, lib.error_string(rc) end
  if rc < 0 then
    local why = op_error(op, rc)
    free_op(op)
    return nil, why
  end
  local out, counts = {}, self.owner.counts
  for j = 1, n do
    local irc = C.strata_op_item(op, j - 1, value)
    local payload = value.data ~= nil and ffi_string(value.data, value.len) or ""
    local ttl = tonumber(value.ttl_ms)
    C.strata_value_dispose(value)
    if irc == OK or irc == HIT_STALE then
      counts.hits = counts.hits + 1
      local v = keep(self, keys[j], payload, false, entry_of(op, j - 1, irc == OK and ttl or 0, false))
      out[j] = {v, L3}
    elseif irc == NEGATIVE then
      keep(self, keys[j], nil, true, entry_of(op, j - 1, ttl, false))
      out[j] = {nil, L3}
    else
      counts.misses = counts.misses + 1
    end
  end
  free_op(op)
  return out
end

---------------------------------------------------------------------------
-- Writes

local set_opts = ffi.new("strata_set_options")

local function simple(self, rc)
  local conn = new_conn()
  local op, res = run(self, rc, conn)
  release(self, conn)
  if not op then return nil, lib.error_string(res) end
  local why = res < 0 and op_error(op, res)
  free_op(op)
  if why then return nil, why end
  return true
end

function _M.set(self, key, val, opts, ttl_ms, stale_ms)
  C.strata_set_options_init(set_opts, 1)
  set_opts.ttl_ms, set_opts.stale_ms = ttl_ms, stale_ms
  local tags = opts and opts.tags
  if type(tags) == "table" then
    set_tags(set_opts, tags)
  end
  return simple(self, C.strata_op_set(opp, self.cache, key, #key, val, #val, set_opts))
end

function _M.delete(self, key)
  return simple(self, C.strata_op_delete(opp, self.cache, key, #key))
end

function _M.invalidate_tag(self, tag)
  return simple(self, C.strata_op_invalidate_tag(opp, self.cache, tag, #tag))
end

---------------------------------------------------------------------------
-- The invalidation link, in a timer per worker: the subscribe op on a
-- connection of its own; what it hears comes back as events for the host
-- tiers. While it is down the host tiers serve nothing fresh (owner.link).

local function apply_events(self)
  local owner = self.owner
  -- the data handle queues its own writes' evictions: the Lua tiers did those
  while C.strata_events_next(self.cache, event) == 0 do end
  while C.strata_events_next(self.link_cache, event) == 0 do
    local kind = event.kind
    if kind == EVENT_EVICT then
      if event.own == 0 then owner._evict_local(owner, ffi_string(event.key, event.keylen)) end
    elseif kind == EVENT_FLUSH then
      owner._flush_local(owner)
    elseif kind == EVENT_LINK_UP then
      self.link, self.trust_from = true, floor(ngx_now() * 1000)
      owner._link(owner, true, self.trust_from)
    elseif kind == EVENT_LINK_DOWN then
      self.link = false
      owner._link(owner, false)
    end
  end
end

local function subscribe_once(self)
  local rc = C.strata_op_subscribe(opp, self.link_cache)
  if rc ~= 0 then return lib.error_string(rc) end
  local op = ffi_gc(opp[0], C.strata_op_free)
  local sock
  while not ngx.worker.exiting() do
    C.strata_op_next(op, io)
    local kind = io.kind
    if kind == DONE then break end
    local server, timeout = io.server, tonumber(io.timeout_ms)
    local data = kind == SEND and ffi_string(io.data, io.len) or nil
    if not sock then
      local host, port = ffi_string(io.host), io.port
      sock = tcp()
      sock:settimeouts(self.connect_ms, 1000, 1000)
      local ok, err = sock:connect(host, port) -- not pooled: it stays subscribed
      if not ok then
        C.strata_op_io_failed(op, EBACKEND, "connect: " .. tostring(err))
        sock = nil
        break
      end
      -- its own hello, on this connection
      local hrc = C.strata_op_hello(opp, self.link_cache, server)
      if hrc == 0 then
        local hello = ffi_gc(opp[0], C.strata_op_free)
        local conn = {sock = sock, server = server}
        drive(self, hello, conn)
        if not conn.sock or C.strata_op_result(hello, nil) ~= 0 then
          C.strata_op_io_failed(op, EBACKEND, "hello failed")
          if conn.sock then sock:close() end
          sock = nil
          break
        end
      end
    end
    if data then
      local ok, err = sock:send(data)
      if not ok then C.strata_op_io_failed(op, EBACKEND, "send: " .. tostring(err)); break end
    end
    local deadline = ngx_now() + timeout / 1000
    while not ngx.worker.exiting() do
      local left = floor((deadline - ngx_now()) * 1000)
      if left <= 0 then C.strata_op_io_failed(op, ETIMEOUT, "silence"); break end
      sock:settimeout(min(left, RECV_SLICE_MS))
      local chunk, err = sock:receiveany(65536)
      if chunk then
        local frc = C.strata_op_feed(op, chunk, #chunk, consumed)
        apply_events(self)
        if frc ~= 1 then break end
      elseif err ~= "timeout" then
        C.strata_op_io_failed(op, EBACKEND, "receive: " .. tostring(err))
        break
      else
        sweep() -- once per quiet slice (RECV_SLICE_MS)
      end
    end
    apply_events(self)
  end
  if sock then sock:close() end
  apply_events(self)
  return nil
end

function _M.subscriber(premature, self)
  if premature then return end
  local backoff = 0.05
  while not ngx.worker.exiting() do
    local t0 = ngx_now()
    local err = subscribe_once(self)
    apply_events(self)
    sweep()
    if ngx.worker.exiting() then break end
    if err then ngx.log(ngx.WARN, "stratacache: invalidation link: ", err) end
    if ngx_now() - t0 > 5 then backoff = 0.05 end
    sleep(backoff)
    backoff = min(backoff * 2, 1)
  end
end

return _M
