-- The Lua module's per-op cost against baselines measured in the same run:
--   L1 hit (get, get_or_load)              vs a plain Lua table lookup
--   L1 hit, get of 1 KB values, and get alternating two caches (each call
--   takes get's full self check)           vs a plain Lua table lookup
--   redis hit, L1 off (get, get_or_load)   vs raw hiredis GET through a minimal
--                                          binding (bench/bench_lua_hiredis.c)
--   L1 hit, get_or_load with {tags = ...}  vs get_or_load without
--   redis write_behind, write_through      vs set (L1 off)
-- Rounds of each pair are interleaved so both sides see the same machine noise;
-- each figure is the median over the rounds, the ratio the median of per-round
-- ratios (the method of bench/bench_core.c).
--   LUA_CPATH=build-lua54/?.so lua5.4 bench/bench_lua.lua REDIS_PORT
-- BENCH_ROUNDS overrides the number of rounds (default 15).
local sc = require "stratacache"
local raw = require "bench_lua_hiredis"

local port = tonumber(arg[1] or "")
if not port then
  io.stderr:write("usage: bench_lua.lua REDIS_PORT\n")
  os.exit(2)
end
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS") or "") or 15
local L1_OPS, REMOTE_OPS = 200000, 2000
local NKEYS = 64 -- a few keys, so no side reads one hot slot only
local VALUE = string.rep("v", 100) -- as bench_core: 100 bytes (+ the envelope in redis)

local now = raw.now
local url = ("redis://127.0.0.1:%d"):format(port)
local BIG = string.rep("b", 1024)
local keys, rawkeys, tbl, bigtbl = {}, {}, {}, {}
for i = 1, NKEYS do
  keys[i] = "bench-lua-" .. i
  rawkeys[i] = "raw-lua:" .. i
  tbl[keys[i]] = VALUE
  bigtbl[keys[i]] = BIG
end

local l1 = assert(sc.new{url = url, namespace = "bench-lua", ttl = 600, l1 = true, l1_ttl = 600})
local l1big = assert(sc.new{url = url, namespace = "bench-lua-big", ttl = 600, l1 = true, l1_ttl = 600})
local l1b = assert(sc.new{url = url, namespace = "bench-lua", ttl = 600, l1 = true, l1_ttl = 600})
local remote = assert(sc.new{url = url, namespace = "bench-lua", ttl = 600})
local r = raw.connect("127.0.0.1", port)
for i = 1, NKEYS do
  assert(remote:set(keys[i], VALUE))
  r:set(rawkeys[i], VALUE)
  assert(select(3, remote:get(keys[i])) == 2, "expected a remote hit")
  assert(r:get(rawkeys[i]) == VALUE)
end
-- Fill L1. With L1 coherence the invalidations our own sets published may land
-- after a first read filled L1, so read until every key is an L1 hit (bounded).
local settle = now() + 5
local function fill_l1(c, value)
  for i = 1, NKEYS do
    while true do
      local v, err, level = c:get(keys[i])
      assert(v == value, err)
      if level == 1 then break end
      assert(now() < settle, "the keys did not settle into L1 within 5 s")
      sc.sleep(0.001)
    end
  end
end
for i = 1, NKEYS do assert(l1big:set(keys[i], BIG)) end
fill_l1(l1, VALUE)
fill_l1(l1b, VALUE)
fill_l1(l1big, BIG)
local function never() error("the loader must not run: every key is cached") end

-- Each loop consumes what it reads (the length), so no side is optimised away.
local function table_lookup(n)
  local acc, t, ks = 0, tbl, keys
  for i = 1, n do acc = acc + #t[ks[i % NKEYS + 1]] end
  return acc
end
local function l1_get(n)
  local acc, c, ks = 0, l1, keys
  for i = 1, n do acc = acc + #c:get(ks[i % NKEYS + 1]) end
  return acc
end
local function big_table_lookup(n)
  local acc, t, ks = 0, bigtbl, keys
  for i = 1, n do acc = acc + #t[ks[i % NKEYS + 1]] end
  return acc
end
local function l1_get_big(n)
  local acc, c, ks = 0, l1big, keys
  for i = 1, n do acc = acc + #c:get(ks[i % NKEYS + 1]) end
  return acc
end
local function l1_get_two_caches(n)
  local acc, c1, c2, ks = 0, l1, l1b, keys
  for i = 1, n, 2 do acc = acc + #c1:get(ks[i % NKEYS + 1]) + #c2:get(ks[(i + 1) % NKEYS + 1]) end
  return acc
end
local function l1_get_or_load(n)
  local acc, c, ks = 0, l1, keys
  for i = 1, n do acc = acc + #c:get_or_load(ks[i % NKEYS + 1], never) end
  return acc
end
local function remote_get(n)
  local acc, c, ks = 0, remote, keys
  for i = 1, n do acc = acc + #c:get(ks[i % NKEYS + 1]) end
  return acc
end
local function remote_get_or_load(n)
  local acc, c, ks = 0, remote, keys
  for i = 1, n do acc = acc + #c:get_or_load(ks[i % NKEYS + 1], never) end
  return acc
end
local TAGS = {tags = {"bench-tag-a", "bench-tag-b"}}
local function l1_get_or_load_tagged(n)
  local acc, c, ks, o = 0, l1, keys, TAGS
  for i = 1, n do acc = acc + #c:get_or_load(ks[i % NKEYS + 1], o, never) end
  return acc
end
local function remote_set(n)
  local c, ks = remote, keys
  for i = 1, n do c:set(ks[i % NKEYS + 1], VALUE) end
  return n
end
local wb = assert(sc.new{url = url, namespace = "bench-lua-wb", ttl = 600})
local function remote_write_behind(n)
  local c, ks = wb, keys
  for i = 1, n do assert(c:write_behind(ks[i % NKEYS + 1], VALUE)) end
  return n
end
local function ok_writer() return true end
local function remote_write_through(n)
  local c, ks, w = remote, keys, ok_writer
  for i = 1, n do c:write_through(ks[i % NKEYS + 1], VALUE, w) end
  return n
end
local function raw_get(n)
  local acc, c, ks = 0, r, rawkeys
  for i = 1, n do acc = acc + #c:get(ks[i % NKEYS + 1]) end
  return acc
end

-- Wall time for the network rows (the wait is the cost); process CPU time for
-- the in-process rows, so a round preempted by a neighbour's compile does not count.
local function round_ns(f, n, clock)
  local t0 = clock()
  f(n)
  return (clock() - t0) * 1e9 / n
end

local function median(t)
  table.sort(t)
  return t[math.floor(#t / 2) + 1]
end

local function measure_pair(a, b, n, clock)
  round_ns(a, n / 10, clock) -- warm-up (and, under LuaJIT, trace compilation)
  round_ns(b, n / 10, clock)
  local pa, pb, ratio = {}, {}, {}
  for i = 1, ROUNDS do
    pa[i] = round_ns(a, n, clock)
    pb[i] = round_ns(b, n, clock)
    ratio[i] = pa[i] / pb[i]
  end
  return median(pa), median(pb), median(ratio)
end

local l1_misses_before = l1:stats().l1_misses + l1b:stats().l1_misses + l1big:stats().l1_misses
local interp = rawget(_G, "jit") and jit.version or _VERSION
print(("== %s: median per-op time over %d interleaved rounds; ratio = median of per-round ratios"):format(interp, ROUNDS))
print("                                                  stratacache      baseline      ratio  clock")
local rows = {
  {"L1 hit, get vs Lua table lookup", l1_get, table_lookup, L1_OPS, "ns"},
  {"L1 hit, get of 1 KB vs Lua table lookup", l1_get_big, big_table_lookup, L1_OPS, "ns"},
  {"L1 hit, get, two caches in turn vs table", l1_get_two_caches, table_lookup, L1_OPS, "ns"},
  {"L1 hit, get_or_load vs Lua table lookup", l1_get_or_load, table_lookup, L1_OPS, "ns"},
  {"L1 hit, get_or_load vs get", l1_get_or_load, l1_get, L1_OPS, "ns"},
  {"redis hit (L1 off), get vs raw hiredis GET", remote_get, raw_get, REMOTE_OPS, "us"},
  {"redis hit (L1 off), get_or_load vs raw GET", remote_get_or_load, raw_get, REMOTE_OPS, "us"},
  {"L1 hit, get_or_load {tags} vs get_or_load", l1_get_or_load_tagged, l1_get_or_load, L1_OPS, "ns"},
  {"redis, write_behind vs set (L1 off)", remote_write_behind, remote_set, REMOTE_OPS, "us"},
  {"redis, write_through (Lua writer) vs set", remote_write_through, remote_set, REMOTE_OPS, "us"},
}
for _, row in ipairs(rows) do
  local clock = row[5] == "us" and now or os.clock
  local a, b, ratio = measure_pair(row[2], row[3], row[4], clock)
  local scale = row[5] == "us" and 1e-3 or 1
  print(("%-46s %10.2f %s  %10.2f %s  %8.2fx  %s"):format(row[1], a * scale, row[5], b * scale, row[5], ratio,
    clock == now and "wall" or "cpu"))
end

assert(l1:stats().l1_misses + l1b:stats().l1_misses + l1big:stats().l1_misses == l1_misses_before,
  "the L1 rows must be L1 hits only")
-- deliver what write_behind queued, so the stream does not outlive the run
assert(wb:flush(30, function() return true end))
l1:close()
l1b:close()
l1big:close()
remote:close()
wb:close()
