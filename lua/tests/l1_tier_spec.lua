-- The string tier of an L1 cache (lua/stratacache_lua.c): get keeps each value's
-- Lua string beside the C L1 and serves it after one strata_l1_check. Whatever
-- ends the L1 entry must end the kept string too, at once: a write here or in
-- another process, a tag bump, the TTL, delete, clear.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "helpers"
local sc = require "stratacache"

-- Lua 5.4's %p shows a string's address: a tier hit hands out the very string kept.
local addresses = _VERSION == "Lua 5.4" and not rawget(_G, "jit")
local LONG = string.rep("x", 200) -- not interned: a new read would make a new string
-- a namespace of its own: the interpreters run side by side, and clear() is namespace-wide
local NS = H.key("lua-tier")

-- Reads k (with get, or get_or_load(k, loader) when given a loader) until L1
-- serves it (on redis the invalidation link must be up, and our own set's
-- message may evict the first fill), then once more from the tier.
local function settled(c, k, loader)
  local function read()
    if loader then return c:get_or_load(k, loader) end
    return c:get(k)
  end
  local v, err, level
  for _ = 1, 500 do
    v, err, level = read()
    if level == 1 then break end
    H.sleep(0.01)
  end
  assert.are.equal(1, level, "the key never settled into L1")
  local again, err2, level2 = read()
  assert.are.equal(v, again)
  assert.is_nil(err2)
  assert.are.equal(1, level2)
  if addresses then assert.are.equal(("%p"):format(v), ("%p"):format(again)) end
  return v, err
end

-- Sets k to "from another process" in a child interpreter (namespace NS).
local function write_from_another_process(url, k)
  local child = os.tmpname() .. ".lua"
  local f = assert(io.open(child, "w"))
  f:write([[
    local sc = require "stratacache"
    local url, key, ns = ...
    local w = assert(sc.new{url = url, namespace = ns})
    assert(w:set(key, "from another process"))
    w:close()
  ]])
  f:close()
  local p = assert(io.popen(("%s %q %q %q %q 2>&1"):format(H.lua, child, url, k, NS)))
  local out = p:read("*a")
  p:close()
  os.remove(child)
  assert.are.equal("", out)
end

-- Polls get(k) for up to 5 s until it returns want.
local function eventually(c, k, want)
  local v
  for _ = 1, 500 do
    v = c:get(k)
    if v == want then return end
    H.sleep(0.01)
  end
  assert.are.equal(want, v, "within 5 s")
end

H.each_backend("the L1 string tier on ", function(b)
  local c
  before_each(function()
    c = H.open(b, {namespace = NS, l1 = true})
  end)
  after_each(function() c:close() end)

  it("hits are L1 hits, counted, and hand out the kept string", function()
    local k = H.key("hit")
    assert.is_true(c:set(k, LONG))
    assert.are.equal(LONG, (settled(c, k)))
    local before = c:stats()
    for _ = 1, 10 do assert.are.equal(LONG, (c:get(k))) end
    local after = c:stats()
    assert.are.equal(before.l1_hits + 10, after.l1_hits)
    assert.are.equal(before.l1_misses, after.l1_misses)
  end)

  it("get_or_load hits are L1 hits from the tier: counted, no loader, no new string", function()
    local k, loads = H.key("gol"), 0
    local function loader() loads = loads + 1; return LONG end
    assert.are.equal(LONG, (settled(c, k, loader)))
    local before = c:stats()
    collectgarbage()
    collectgarbage("stop")
    local heap = collectgarbage("count")
    for _ = 1, 2000 do c:get_or_load(k, loader) end
    local grown_kb = collectgarbage("count") - heap
    collectgarbage("restart")
    local after = c:stats()
    assert.are.equal(before.l1_hits + 2000, after.l1_hits)
    assert.are.equal(before.l1_misses, after.l1_misses)
    assert.truthy(loads <= 2, "the loader ran " .. loads .. " times") -- our own set's message may evict the first fill
    -- a copy per hit would be 2000 strings of 200 bytes, 400 KB
    assert.truthy(grown_kb < 100, ("2000 hits grew the Lua heap by %.0f KB"):format(grown_kb))
    assert.are.equal(LONG, (c:get(k))) -- get and get_or_load share the tier
    local v, err, level = c:get_or_load(k, {tags = {H.key("t")}}, loader) -- the options form too
    assert.are.equal(LONG, v)
    assert.is_nil(err)
    assert.are.equal(1, level)
    if addresses then assert.are.equal(("%p"):format((c:get(k))), ("%p"):format(v)) end
  end)

  it("get_or_load refreshes a tier-served key once it stops serving (stale-while-revalidate)", function()
    local d = H.open(b, {namespace = "lua-tier-swr", l1 = true, ttl = 1, stale = 30, xfetch_beta = 0})
    local k, loads = H.key("swr"), 0
    local function loader() loads = loads + 1; return "v" .. loads .. LONG end
    settled(d, k, loader)
    local first = loads
    for _ = 1, 50 do assert.are.equal("v" .. first .. LONG, (d:get_or_load(k, loader))) end
    assert.are.equal(first, loads)
    H.sleep(1.3) -- past fresh-until, within stale: L1 no longer serves it
    local refreshed = d:get_or_load(k, loader) -- the one refresh, inline
    assert.are.equal(first + 1, loads)
    assert.are.equal("v" .. loads .. LONG, refreshed)
    for _ = 1, 50 do assert.are.equal(refreshed, (d:get_or_load(k, loader))) end
    assert.are.equal(first + 1, loads, "exactly one refresh")
    d:close()
  end)

  if b.name == "memory" then
    it("get_or_load still refreshes early (XFetch) a key the tier served", function()
      -- L1 serves 0.2 s at a time; then the lookup reads the envelope and
      -- XFetch (a 0.1 s load, beta 5: at least 0.5 s before fresh-until)
      -- picks this process before the 1.5 s TTL ends.
      local d = assert(sc.new{url = b.url, namespace = "lua-tier-xf", l1 = true, l1_ttl = 0.2, ttl = 1.5,
                              xfetch_beta = 5})
      local k, loads = H.key("xf"), 0
      local function loader() loads = loads + 1; H.sleep(0.1); return "v" .. loads .. LONG end
      assert.are.equal("v1" .. LONG, (d:get_or_load(k, loader)))
      assert.are.equal("v1" .. LONG, (d:get_or_load(k, loader)))
      assert.are.equal(1, loads)
      local tier_hits = d:stats().l1_hits
      for _ = 1, 600 do
        if loads > 1 then break end
        d:get_or_load(k, loader)
        H.sleep(0.005)
      end
      assert.are.equal(2, loads)
      -- no stale window: a refresh after fresh-until would be a miss's load
      assert.are.equal(1, d:stats().early_refreshes, "the refresh was not early")
      assert.truthy(d:stats().l1_hits > tier_hits, "no L1 hits before the refresh")
      for _ = 1, 20 do assert.are.equal("v2" .. LONG, (d:get_or_load(k, loader))) end
      assert.are.equal(2, loads, "exactly one refresh")
      d:close()
    end)
  end

  it("a set is read back at once", function()
    local k = H.key("ryw")
    assert.is_true(c:set(k, "one" .. LONG))
    settled(c, k)
    assert.is_true(c:set(k, "two" .. LONG))
    assert.are.equal("two" .. LONG, (c:get(k)))
    assert.is_true(c:set(k, ""))
    assert.are.equal("", (c:get(k)))
  end)

  it("delete, invalidate and clear end the kept string", function()
    local k1, k2 = H.key("del"), H.key("inv")
    c:set(k1, LONG)
    c:set(k2, LONG)
    settled(c, k1)
    settled(c, k2)
    assert.is_true(c:delete(k1))
    assert.is_nil(c:get(k1))
    assert.is_true(c:invalidate(k2))
    local v, _, level = c:get(k2)
    assert.truthy(v == nil or level ~= 1, "invalidate left an L1 hit")
    c:set(k2, LONG)
    settled(c, k2)
    assert.is_true(c:clear())
    assert.is_nil(c:get(k2))
  end)

  it("a tag bump ends the kept string", function()
    local tag, k = H.key("tag"), H.key("tagged")
    assert.is_true(c:set(k, LONG, nil, {tag}))
    settled(c, k)
    assert.is_true(c:invalidate_tag(tag))
    assert.is_nil(c:get(k))
    assert.is_true(c:set(k, "after", nil, {tag}))
    assert.are.equal("after", (c:get(k)))
  end)

  it("the TTL ends the kept string", function()
    local k = H.key("ttl")
    assert.is_true(c:set(k, LONG, 1))
    settled(c, k)
    H.sleep(1.3)
    assert.is_nil(c:get(k))
  end)

  it("two caches keep their own strings (also when a finalizer reads the other mid-fill)", function()
    -- Both L1s number their entries alike, so a string kept in the wrong
    -- cache's tier would pass that cache's check: finalizers that call
    -- get on b run during a's fills (any allocation may run them).
    local a = H.open(b, {namespace = "lua-tier-a", l1 = true})
    local z = H.open(b, {namespace = "lua-tier-b", l1 = true})
    local keys = {}
    for i = 1, 20 do
      keys[i] = H.key("pair")
      a:set(keys[i], "a" .. i)
      z:set(keys[i], "z" .. i)
    end
    local gc_reads = 0
    local function read_b() gc_reads = gc_reads + 1; z:get(keys[gc_reads % 20 + 1]) end
    local mt = {__gc = read_b}
    local function garbage() -- 5.1 finalizes userdata only
      if newproxy then getmetatable(newproxy(true)).__gc = read_b else setmetatable({}, mt) end
    end
    local pause = collectgarbage("setpause", 10)
    for round = 1, 30 do
      for i = 1, 20 do -- both caches write alike, so their entries get alike versions
        a:set(keys[i], ("a%d.%d"):format(i, round))
        z:set(keys[i], ("z%d.%d"):format(i, round))
      end
      for i = 1, 20 do
        for _ = 1, 20 do garbage() end
        local v = a:get(keys[i]) -- a fill: a finalizer may read b meanwhile
        assert.truthy(v == nil or v == ("a%d.%d"):format(i, round), "cache a returned " .. tostring(v))
        local w = z:get(keys[i])
        assert.truthy(w == nil or w == ("z%d.%d"):format(i, round), "cache b returned " .. tostring(w))
        assert.are.equal(v, (a:get(keys[i])))
      end
    end
    collectgarbage("setpause", pause)
    collectgarbage()
    assert.truthy(gc_reads > 0, "no finalizer ran")
    a:close()
    z:close()
  end)

  it("a finalizer reading the same cache mid-read gets its own value, and so does the read", function()
    -- LuaJIT may run finalizers inside lua_pushlstring before it copies:
    -- a read there must not reuse the buffer the outer read copies from.
    for _, l1 in ipairs({true, false}) do
      local d = H.open(b, {namespace = "lua-tier-fin", l1 = l1})
      local keys, want = {}, {}
      for i = 1, 16 do
        keys[i] = H.key("fin")
        want[i] = i .. string.rep("-", i * 7)
        assert.is_true(d:set(keys[i], want[i]))
      end
      local wrong, gc_reads = {}, 0
      local function read_d()
        gc_reads = gc_reads + 1
        local i = gc_reads % 16 + 1
        local v = d:get(keys[i])
        if v ~= nil and v ~= want[i] then wrong[#wrong + 1] = v end
      end
      local mt = {__gc = read_d}
      local pause = collectgarbage("setpause", 10)
      for round = 1, 40 do
        for i = 1, 16 do
          if round % 4 == 0 then d:set(keys[i], want[i]) end -- the next get fills the tier again
          for _ = 1, 10 do
            if newproxy then getmetatable(newproxy(true)).__gc = read_d else setmetatable({}, mt) end
          end
          local v = d:get(keys[i])
          if v ~= nil and v ~= want[i] then wrong[#wrong + 1] = v end
        end
      end
      collectgarbage("setpause", pause)
      collectgarbage()
      d:close()
      assert.truthy(gc_reads > 0, "no finalizer ran")
      assert.are.equal(0, #wrong, "wrong values: " .. table.concat(wrong, ", "))
    end
  end)

  if b.name == "memory" then
    it("keeps no more than L1's own bounds (l1_max_bytes)", function()
      local d = assert(sc.new{url = b.url, namespace = "lua-tier-bound", l1 = true, l1_max_bytes = 1048576})
      local big = string.rep("b", 10000)
      collectgarbage()
      local before = collectgarbage("count")
      for i = 1, 2000 do
        local k = H.key("bound")
        assert.is_true(d:set(k, big .. i))
        assert.are.equal(big .. i, (d:get(k)))
      end
      collectgarbage()
      local grown_kb = collectgarbage("count") - before
      d:close()
      assert.truthy(grown_kb < 4096, ("the Lua heap grew by %.0f KB for a 1 MiB L1"):format(grown_kb))
    end)
  end

  it("a closed or collected cache is refused; another cache still serves", function()
    local k = H.key("gone")
    local d = assert(sc.new{url = b.url, namespace = NS, l1 = true})
    d:set(k, "v")
    d:get(k)
    d:get(k)
    d:close()
    H.raises(function() d:get(k) end, "cache is closed")
    H.raises(function() c.get(io.stdout, k) end, "stratacache.cache expected")
    d = assert(sc.new{url = b.url, namespace = NS, l1 = true})
    d:get(k)
    d = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    c:set(k, "mine")
    assert.are.equal("mine", (c:get(k)))
    H.raises(function() c.get(io.stdout, k) end, "stratacache.cache expected")
  end)

  if b.name == "redis" then
    it("a write from another process ends the kept string", function()
      local k = H.key("proc")
      assert.is_true(c:set(k, "old" .. LONG))
      settled(c, k)
      write_from_another_process(b.url, k)
      eventually(c, k, "from another process")
      assert.truthy(c:stats().invalidations_received >= 1)
    end)

    it("a write from another process ends the kept string for get_or_load too", function()
      local k = H.key("proc-gol")
      local function loader() return "loaded" end
      assert.is_true(c:set(k, "old" .. LONG))
      assert.are.equal("old" .. LONG, (settled(c, k, loader)))
      write_from_another_process(b.url, k)
      local v
      for _ = 1, 500 do
        v = c:get_or_load(k, loader)
        if v ~= "old" .. LONG then break end
        H.sleep(0.01)
      end
      assert.are.equal("from another process", v, "within 5 s")
    end)
  end
end, {memory = true, redis = true})
