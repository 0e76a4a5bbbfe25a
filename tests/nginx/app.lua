-- The test application behind tests/nginx/nginx.conf.in: one cache per
-- flavour, made per worker in init_worker_by_lua (app.init), and locations
-- the Python driver (test_resty.py) calls. Every response is JSON with the
-- answering worker's pid, so the driver can tell the workers apart.
local cjson = require "cjson.safe"
local sc = require "resty.stratacache"

local _M = {caches = {}}
local counters = ngx.shared.test_counts

local function flavours()
  local f = {
    l2 = {shm = "sc_l2", shm_ipc = "sc_ipc", namespace = "t_l2", ttl = 30, lock_wait = 3},
    l1only = {shm_ipc = "sc_ipc", namespace = "t_l1", ttl = 30},
    short = {shm = "sc_l2", shm_ipc = "sc_ipc", namespace = "t_short", ttl = 0.3, stale = 30,
              xfetch_beta = 0}, -- SWR alone: a 0.3 s load on a 0.3 s ttl is an XFetch refresh at once
    failfast = {shm = "sc_l2", shm_ipc = "sc_ipc", namespace = "t_fail", ttl = 30, lock_wait = 0.05,
                wait_policy = "fail"},
    loadanyway = {shm = "sc_l2", shm_ipc = "sc_ipc", namespace = "t_load", ttl = 30, lock_wait = 0.05,
                  wait_policy = "load"},
    json = {shm = "sc_l2", shm_ipc = "sc_ipc", namespace = "t_json", ttl = 30,
            l1_serializer = function(s) return cjson.decode(s) end},
  }
  local redis = os.getenv("STRATA_TEST_REDIS_URL")
  if redis and redis ~= "" then
    f.redis = {url = redis, shm = "sc_l2", shm_ipc = "sc_ipc", namespace = "t_redis", ttl = 30,
               lock_wait = 3, timeout = 0.5, breaker_cooldown = 0.3, coherence_ping = 0.2,
               -- tag versions read every time, so a bump in one worker is seen by the other
               -- at once (cached, another worker would see it within tag_cache_ms: docs/TAGS.md)
               tag_cache = 0}
    f.redis_l1 = {url = redis, shm_ipc = "sc_ipc", namespace = "t_redis", ttl = 30, timeout = 0.5,
                  lock_wait = 3, breaker_cooldown = 0.3, coherence_ping = 0.2}
    -- database 1: every new connection needs its hello (SELECT)
    f.redis_db1 = {url = redis .. "/1", shm_ipc = "sc_ipc", namespace = "t_redis", ttl = 30,
                   timeout = 0.5, l1_ttl = 0}
  end
  return f
end

function _M.init()
  for name, opts in pairs(flavours()) do
    local ok, c, err = pcall(sc.new, opts)
    if not ok then c, err = nil, c end
    if c then _M.caches[name] = c
    else _M.caches[name] = false; _M[name .. "_err"] = err end
  end
end

local function reply(t, status)
  t.pid = ngx.worker.pid()
  ngx.status = status or 200
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(t))
end

local function cache_of(args)
  local name = args.cache or "l2"
  local c = _M.caches[name]
  if not c then
    reply({error = "no cache " .. name .. ": " .. tostring(_M[name .. "_err"])}, 500)
    return nil
  end
  return c
end

-- The loader: counts its calls per key in a shared dict (across workers),
-- sleeps `delay` seconds, returns "v:<key>:<n>" or NOT_FOUND for keys "nf*".
local function loader(key, delay)
  local n = counters:incr("loads:" .. key, 1, 0)
  if delay and delay > 0 then ngx.sleep(delay) end
  if key:find("^nf") then return sc.NOT_FOUND end
  if key:find("^json") then return cjson.encode({key = key, n = n}) end
  return "v:" .. key .. ":" .. n
end

local routes = {}

function routes.get(args)
  local c = cache_of(args)
  if not c then return end
  local delay = tonumber(args.delay)
  local v, err, level
  if args.noloader then v, err, level = c:get(args.key)
  else v, err, level = c:get(args.key, nil, loader, args.key, delay) end
  if type(v) == "table" then v = "table:" .. tostring(v.key) .. ":" .. tostring(v.n) end
  reply({value = v, err = err, level = level})
end

function routes.many(args)
  local c = cache_of(args)
  if not c then return end
  local keys = {}
  for k in args.keys:gmatch("[^,]+") do keys[#keys + 1] = k end
  local values, errs, levels = c:get_many(keys, nil, (not args.noloader) and loader or nil)
  local out = {}
  for i, k in ipairs(keys) do out[i] = {key = k, value = values[i], err = errs[i], level = levels[i]} end
  reply({items = out})
end

function routes.tagget(args)
  local c = cache_of(args)
  if not c then return end
  local v, err, level = c:get(args.key, {tags = {args.tag}}, loader, args.key)
  reply({value = v, err = err, level = level})
end

function routes.bump(args)
  local c = cache_of(args)
  if not c then return end
  local ok, err = c:invalidate_tag(args.tag)
  reply({ok = ok, err = err})
end

function routes.set(args)
  local c = cache_of(args)
  if not c then return end
  local ok, err = c:set(args.key, args.value, {ttl = tonumber(args.ttl)})
  if args.flag then counters:set("written:" .. args.flag, true) end
  reply({ok = ok, err = err})
end

-- Two reads of key in one request, with no yield between them (so ngx.now()
-- and the request stay the same): the worker spins until another worker's
-- /set?flag= lands (15 s at most), so the second read must see that write.
function routes.getwait(args)
  local c = cache_of(args)
  if not c then return end
  local before = c:get(args.key)
  counters:set("ready:" .. args.flag, ngx.worker.pid())
  local deadline = os.time() + 15
  while not counters:get("written:" .. args.flag) and os.time() < deadline do end
  local after = c:get(args.key)
  reply({before = before, after = after, written = counters:get("written:" .. args.flag) or false})
end

-- A get killed while it waits for Redis: its op is freed by the sweep once
-- the GC has its coroutine.
function routes.killget(args)
  local c = cache_of(args)
  if not c then return end
  local remote = require "resty.stratacache.remote"
  local before = remote.live_ops()
  local t = ngx.thread.spawn(function() return c:get(args.key) end)
  local during = remote.live_ops()
  ngx.thread.kill(t)
  t = nil -- luacheck: ignore
  collectgarbage()
  collectgarbage()
  remote.sweep()
  reply({before = before, during = during, after = remote.live_ops()})
end

-- The envelope the shm holds for key (namespace t_redis) and whether the
-- library gives the op metadata the remote tier keeps entries by.
function routes.l2info(args)
  local envelope = require "resty.stratacache.envelope"
  local has_meta = require("resty.stratacache.remote").has_meta
  local bytes = ngx.shared.sc_l2:get("t_redis:" .. args.key)
  local i = bytes and envelope.decode(bytes, args.key, 0)
  if not i then return reply({has_meta = has_meta}) end
  reply({has_meta = has_meta, fresh_ms = tonumber(i.fresh_until_ms - i.created_ms),
         stale_ms = tonumber(i.stale_until_ms - i.fresh_until_ms), cost_ms = tonumber(i.cost_ms)})
end

-- Whether the remote tier's core handles keep a hot-key sketch: resty has
-- no hot-key report, so they must not pay for one on every read.
-- -> {rc = strata_hot_keys's code on the read handle, link_rc = on the link's}
function routes.sketch(args)
  local c = cache_of(args)
  if not c then return end
  local ffi = require "ffi"
  local C = require("resty.stratacache.lib").C
  local count = ffi.new("size_t[1]")
  reply({rc = C.strata_hot_keys(c.remote.cache, 0, nil, count),
         link_rc = C.strata_hot_keys(c.remote.link_cache, 0, nil, count)})
end

-- A leader killed while its loader runs: the next get of the key in this
-- worker must not wait for it. -> the second get's result and milliseconds
function routes.killfill(args)
  local c = cache_of(args)
  if not c then return end
  local t = ngx.thread.spawn(function() return c:get(args.key, nil, loader, args.key, 30) end)
  ngx.thread.kill(t)
  t = nil -- luacheck: ignore
  collectgarbage()
  collectgarbage()
  ngx.update_time()
  local t0 = ngx.now()
  local v, err, level = c:get(args.key, nil, loader, args.key)
  ngx.update_time()
  reply({value = v, err = err, level = level, ms = (ngx.now() - t0) * 1000})
end

function routes.flag(args)
  reply({value = counters:get(args.name)})
end

function routes.delete(args)
  local c = cache_of(args)
  if not c then return end
  local ok, err = c:delete(args.key)
  reply({ok = ok, err = err})
end

function routes.loads(args)
  reply({loads = counters:get("loads:" .. args.key) or 0})
end

function routes.stats(args)
  local c = cache_of(args)
  if not c then return end
  reply({stats = c:stats(), timers_running = ngx.timer.running_count(),
         timers_pending = ngx.timer.pending_count()})
end

function routes.metrics(args)
  local c = cache_of(args)
  if not c then return end
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(c:prometheus())
end

function routes.misuse(args)
  local c = cache_of(args)
  if not c then return end
  local ok, err = pcall(c.get, c, 42)
  local ok2, err2 = pcall(c.get, c, "k", "not a table")
  local ok3, err3 = pcall(sc.new, {shm_ipc = "sc_ipc", bogus = 1})
  local ok4, err4 = pcall(sc.new, {shm_ipc = "sc_ipc", ttl = -1})
  local c5, err5 = sc.new({shm_ipc = "sc_ipc", url = "memcached://127.0.0.1:11211"})
  local c6, err6 = sc.new({shm_ipc = "no_such_dict"})
  local wb, err7 = c:write_behind("k", "v")
  reply({ok = ok or ok2 or ok3 or ok4 or false, errs = {tostring(err), tostring(err2), tostring(err3),
         tostring(err4), tostring(err5), tostring(err6), tostring(err7)}, wb = wb ~= nil, c5 = c5 ~= nil, c6 = c6 ~= nil})
end

-- The plain Lua C module inside nginx: never the worker-blocking network path.
function routes.plain(args)
  local ok, plain = pcall(require, "stratacache")
  if not ok then return reply({error = "no plain module: " .. tostring(plain)}, 500) end
  local c, err = plain.new{url = args.url}
  local same = plain.NOT_FOUND == sc.NOT_FOUND
  local mem = plain.new{namespace = "plain_mem"}
  local v, gerr = mem:get_or_load("k", function() ngx.sleep(0.001); return "x" end)
  reply({created = c ~= nil, err = err, same_not_found = same, mem_value = v, mem_err = gerr})
end

function _M.content()
  local name = ngx.var.uri:match("^/(%w+)")
  local route = routes[name]
  if not route then return reply({error = "no route " .. tostring(name)}, 404) end
  return route(ngx.req.get_uri_args())
end

-- log_by_lua: the result of a get in the log phase goes to the shared dict,
-- where /logresult reads it.
function _M.log()
  local args = ngx.req.get_uri_args()
  local c = _M.caches[args.cache or "l2"]
  local t0 = ngx.now()
  ngx.update_time()
  t0 = ngx.now()
  local v, err, level = c:get(args.key, nil, loader, args.key)
  ngx.update_time()
  counters:set("log:" .. args.tag, cjson.encode({value = v, err = err, level = level,
    ms = (ngx.now() - t0) * 1000, pid = ngx.worker.pid()}))
end

function routes.logresult(args)
  reply({result = counters:get("log:" .. args.tag)})
end

return _M
