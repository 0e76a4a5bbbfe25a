-- resty.stratacache micro-benchmarks, run inside one nginx worker (JIT on)
-- by bench/bench_openresty.py through GET /bench?case=<name>&redis=<url>.
-- Each case interleaves rounds of stratacache and its baseline in the same
-- loop and returns per-round ns/op for both: the driver takes medians.
local ffi = require "ffi"
local cjson = require "cjson.safe"
local lrucache = require "resty.lrucache"
local sc = require "resty.stratacache"
local envelope = require "resty.stratacache.envelope"

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } strata_bench_timespec;
int clock_gettime(int clk_id, strata_bench_timespec *tp);
]]
local ts = ffi.new("strata_bench_timespec")
local CLOCK = 1 -- CLOCK_MONOTONIC; 3 = CLOCK_THREAD_CPUTIME_ID (the worker's CPU time)
local function now_ns()
  ffi.C.clock_gettime(CLOCK, ts)
  return tonumber(ts.tv_sec) * 1e9 + tonumber(ts.tv_nsec)
end

local function timed(n, fn, ...)
  local t0 = now_ns()
  fn(n, ...)
  return (now_ns() - t0) / n
end

-- Rounds of n calls of each side, interleaved, after warm calls of each;
-- with ?only=ours|base (bench/callgrind_openresty.py counts instructions)
-- one side alone. -> per-round ns/op of each side, calls made per side
local ONLY
local function interleave(rounds, warm, n, ours, base)
  local a, b = {}, {}
  if ONLY ~= "base" then ours(warm) end
  if ONLY ~= "ours" then base(warm) end
  for r = 1, rounds do
    if ONLY ~= "base" then a[r] = timed(n, ours) end
    if ONLY ~= "ours" then b[r] = timed(n, base) end
  end
  return a, b, warm + rounds * n
end

local VALUE = ("v"):rep(100)
local _M = {}
local cases = {}

-- L1 hit vs lua-resty-lrucache get (same size, same key).
function cases.l1(rounds)
  local cache = assert(sc.new{shm_ipc = "sc_ipc", namespace = "bench_l1", ttl = 3600})
  assert(cache:set("k", VALUE))
  local lru = lrucache.new(1000)
  lru:set("k", VALUE, 3600)
  local function ours(n) local get = cache.get; for _ = 1, n do get(cache, "k") end end
  local function base(n) for _ = 1, n do lru:get("k") end end
  return interleave(rounds, 1e5, 1e6, ours, base)
end

-- L2 (shm) hit with L1 off (l1_ttl = 0) vs ngx.shared.DICT:get + the same
-- envelope decode and payload copy.
function cases.l2(rounds)
  local cache = assert(sc.new{shm = "sc_l2", shm_ipc = "sc_ipc", namespace = "bench_l2",
                              ttl = 3600, l1_ttl = 0})
  assert(cache:set("k", VALUE))
  local dict = ngx.shared.sc_l2
  local function ours(n) for _ = 1, n do cache:get("k") end end
  local function base(n)
    for _ = 1, n do
      local bytes = dict:get("bench_l2:k")
      local info = envelope.decode(bytes, "k", 1)
      envelope.payload(info)
    end
  end
  local v = cache:get("k")
  assert(v == VALUE, "l2 bench: " .. tostring(v))
  return interleave(rounds, 1e4, 2e5, ours, base)
end

-- A remote (Redis) hit with L1 and L2 off vs a raw cosocket GET of the same
-- stored bytes over the same kind of pooled connection.
function cases.remote(rounds, redis)
  local cache = assert(sc.new{url = redis, shm_ipc = "sc_ipc", namespace = "bench_r",
                              ttl = 3600, l1_ttl = 0})
  assert(cache:set("k", VALUE))
  local host, port = redis:match("^redis://([^:/]+):(%d+)")
  port = tonumber(port)
  local req = "*2\r\n$3\r\nGET\r\n$9\r\nbench_r:k\r\n"
  local function ours(n)
    for _ = 1, n do
      local v, err = cache:get("k")
      if v ~= VALUE then error("remote bench: " .. tostring(v) .. " " .. tostring(err)) end
    end
  end
  local function base(n)
    for _ = 1, n do
      local sock = ngx.socket.tcp()
      sock:settimeouts(1000, 1000, 1000)
      assert(sock:connect(host, port, {pool = "bench-raw"}))
      assert(sock:send(req))
      local line = assert(sock:receive("*l"))
      local len = tonumber(line:sub(2))
      assert(sock:receive(len + 2))
      sock:setkeepalive(60000, 32)
    end
  end
  return interleave(rounds, 200, 2000, ours, base)
end

function _M.run()
  local args = ngx.req.get_uri_args()
  local f = cases[args.case]
  if not f then ngx.status = 404; return ngx.say("no case") end
  if args.jitv then require("jit.v").start(args.jitv) end
  CLOCK = tonumber(args.clock) or 1
  ONLY = args.only
  local ok, a, b, calls = pcall(f, tonumber(args.rounds) or 15, args.redis)
  if args.jitv then require("jit.v").off() end
  if not ok then ngx.status = 500; return ngx.say(tostring(a)) end
  ngx.say(cjson.encode({ours = a, base = b, calls = calls}))
end

-- /cached: an L1 hit per request (the wrk row's cached location)
local cached
function _M.cached()
  if not cached then
    cached = assert(sc.new{shm = "sc_l2", shm_ipc = "sc_ipc", namespace = "bench_wrk", ttl = 3600})
  end
  local v = cached:get("page", nil, function() return VALUE end)
  ngx.say(v)
end

return _M
