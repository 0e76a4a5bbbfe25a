-- Metrics and hot keys: stats() v2, histogram(kind), prometheus(), hot_keys(n),
-- and the sc.new options for hot keys, L1 admission and coherence.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "helpers"
local sc = require "stratacache"

local STATS_FIELDS = {
  "l1_hits", "l1_misses", "l1_entries", "l1_bytes", "l1_evictions", "hits", "misses", "negative_hits",
  "stale_hits", "sets", "deletes", "loads", "load_errors", "backend_errors", "timeouts", "leases_won",
  "leases_lost", "waits", "early_refreshes", "singleflight_shared", "breaker_opens", "fail_open",
  "breaker_state", "tag_invalidations", "tag_stale", "tag_fetches", "invalidations_received",
  "l1_flushes", "l1_admission_rejects", "l1_link_up", "wb_enqueued", "wb_flushed", "wb_retried", "wb_dead",
  "wb_backlog", "wb_journal_skipped", "wb_dead_trimmed", "payload_crc_errors",
  "l1_fills_refused",
  "l1_renewals", "l1_renew_batches",
}

-- Prometheus series -> stats() field (docs/METRICS.md).
local SERIES = {
  ['hits_total{tier="l1"}'] = "l1_hits", ['hits_total{tier="backend"}'] = "hits",
  ['misses_total{tier="l1"}'] = "l1_misses", ['misses_total{tier="backend"}'] = "misses",
  negative_hits_total = "negative_hits", stale_served_total = "stale_hits", sets_total = "sets",
  deletes_total = "deletes", loads_total = "loads", load_errors_total = "load_errors",
  backend_errors_total = "backend_errors", timeouts_total = "timeouts", leases_won_total = "leases_won",
  leases_lost_total = "leases_lost", lease_waits_total = "waits", early_refreshes_total = "early_refreshes",
  singleflight_shared_total = "singleflight_shared", breaker_opens_total = "breaker_opens",
  breaker_state = "breaker_state", fail_open_total = "fail_open",
  ['l1_entries{tier="l1"}'] = "l1_entries", ['l1_bytes{tier="l1"}'] = "l1_bytes",
  ['l1_evictions_total{tier="l1"}'] = "l1_evictions", tag_invalidations_total = "tag_invalidations",
  tag_stale_total = "tag_stale", tag_fetches_total = "tag_fetches",
  ['invalidations_received_total{tier="l1"}'] = "invalidations_received",
  ['l1_flushes_total{tier="l1"}'] = "l1_flushes", ['l1_admission_rejects_total{tier="l1"}'] = "l1_admission_rejects",
  ['l1_link_up{tier="l1"}'] = "l1_link_up",
  write_behind_enqueued_total = "wb_enqueued", write_behind_flushed_total = "wb_flushed",
  write_behind_retried_total = "wb_retried", write_behind_dead_total = "wb_dead",
  write_behind_backlog = "wb_backlog", write_behind_journal_skipped_total = "wb_journal_skipped",
  write_behind_dead_trimmed_total = "wb_dead_trimmed",
}

-- Parses the exposition strictly enough to catch a malformed line: returns
-- samples[name .. labels-without-namespace] = value, and the TYPE of each family.
local function parse_prometheus(text, ns)
  local samples, types = {}, {}
  assert.are.equal("\n", text:sub(-1), "the text ends with a newline")
  for line in text:gmatch("([^\n]*)\n") do
    if line:sub(1, 1) == "#" then
      local kind, name, rest = line:match("^# (%u+) (stratacache_[%w_]+) (.+)$")
      assert(kind == "HELP" or kind == "TYPE", "bad comment line: " .. line)
      if kind == "TYPE" then
        assert(rest == "counter" or rest == "gauge" or rest == "histogram", "bad TYPE: " .. line)
        types[name] = rest
      end
    else
      local name, labels, value = line:match("^(stratacache_[%w_]+){([^}]*)} (%S+)$")
      assert(name, "bad sample line: " .. line)
      assert(tonumber(value), "bad sample value: " .. line)
      local rest = {}
      for pair in (labels .. ","):gmatch("([^,]*),") do
        local k, v = pair:match('^([%a_][%w_]*)="([^"\\]*)"$')
        assert(k, "bad label in: " .. line)
        if k == "namespace" then
          assert.are.equal(ns, v, "namespace label")
        else
          rest[#rest + 1] = k .. '="' .. v .. '"'
        end
      end
      local key = name:sub(#"stratacache_" + 1) .. (#rest > 0 and "{" .. table.concat(rest, ",") .. "}" or "")
      assert(samples[key] == nil, "duplicate series " .. key)
      samples[key] = tonumber(value)
    end
  end
  return samples, types
end

H.each_backend("metrics on ", function(b)
  local c
  before_each(function() c = H.open(b, {namespace = "lua-metrics"}) end)
  after_each(function() c:close() end)

  it("stats() has every field of strata_stats (version 2), as numbers", function()
    local st = c:stats()
    for _, f in ipairs(STATS_FIELDS) do assert.are.equal("number", type(st[f]), f) end
    local n = 0
    for _ in pairs(st) do n = n + 1 end
    assert.are.equal(#STATS_FIELDS, n)
    assert.are.equal(0, st.breaker_state)
    assert.are.equal(0, st.l1_link_up)
  end)

  it("Lua loaders are counted: loads, load_errors and the load histogram", function()
    local k1, k2, k3, k4 = H.key("l"), H.key("l"), H.key("l"), H.key("l")
    c:get_or_load(k1, function() sc.sleep(0.02); return "slow" end)
    c:get_or_load(k1, function() return "never" end) -- a hit: no load
    c:get_or_load(k2, function() return sc.NOT_FOUND end)
    c:get_or_load(k3, function() return nil, "source down" end)
    c:get_or_load(k4, function() error("raised") end)
    local st, h = c:stats(), c:histogram("load")
    assert.are.equal(4, st.loads)
    assert.are.equal(2, st.load_errors)
    assert.are.equal(4, h.count)
    local sum = 0
    for i = 1, #h.buckets do sum = sum + h.buckets[i] end
    assert.are.equal(27, #h.buckets)
    assert.are.equal(h.count, sum)
    assert.truthy(h.sum_ns >= 20e6, "sum_ns " .. h.sum_ns)
    -- the 20 ms load sits in a bucket of at least 2^15 us (32.8 ms)
    local slow = 0
    for i = 16, #h.buckets do slow = slow + h.buckets[i] end
    assert.are.equal(1, slow)
  end)

  it("loads without the lease count too (a waiter that gave up waiting)", function()
    local lead = assert(sc.new{url = b.url, namespace = "lua-metrics"})
    local w = assert(sc.new{url = b.url, namespace = "lua-metrics", lock_wait = 0.05, wait_policy = "load"})
    local k = H.key("wait")
    local rc, _, _, ticket = lead:_lookup(k)
    assert.are.equal(5, rc)
    assert.are.equal("mine", (w:get_or_load(k, function() return "mine" end)))
    assert.are.equal(1, w:stats().loads)
    assert.are.equal(1, w:histogram("load").count)
    ticket:abandon()
    lead:close()
    w:close()
  end)

  it("histogram('get') and ('backend') count calls", function()
    local k = H.key("h")
    c:set(k, "v")
    for _ = 1, 5 do c:get(k) end
    local g, bk = c:histogram("get"), c:histogram("backend")
    assert.are.equal(5, g.count)
    assert.truthy(bk.count >= 6, "backend count " .. bk.count)
    assert.truthy(bk.sum_ns > 0)
  end)

  it("prometheus() is valid text whose counts match stats() and histogram()", function()
    -- a namespace of its own: other runs' writes would reach this L1 link
    -- and move its counters between the two reads below
    local ns = H.key("prom")
    local l1 = H.open(b, {namespace = ns, l1 = true})
    local k, tag = H.key("p"), H.key("t")
    l1:set(k, "v", nil, {tag})
    l1:get(k)
    l1:get(H.key("none"))
    l1:get_or_load(H.key("p"), function() return "x" end)
    l1:get_or_load(H.key("p"), function() return nil, "no" end)
    l1:invalidate_tag(tag)
    l1:get(k)
    l1:delete(k)
    local text = l1:prometheus()
    local st = l1:stats()
    local hs = {get = l1:histogram("get"), load = l1:histogram("load"), backend = l1:histogram("backend")}
    local samples, types = parse_prometheus(text, ns)
    for series, field in pairs(SERIES) do
      assert.are.equal(st[field], samples[series], series)
    end
    -- a series added later must still match the stats field it is named after
    for series, value in pairs(samples) do
      if not SERIES[series] and not series:find("_seconds_") then
        local field = series:gsub("{.*$", ""):gsub("_total$", "")
        assert.truthy(st[field] ~= nil, "no stats field for series " .. series)
        assert.are.equal(st[field], value, series)
      end
    end
    -- sets counts the loader's fill too
    assert.truthy(st.loads == 2 and st.load_errors == 1 and st.tag_invalidations == 1 and st.sets == 2)
    for kind, h in pairs(hs) do
      local name = kind .. "_seconds"
      assert.are.equal("histogram", types["stratacache_" .. name])
      assert.are.equal(h.count, samples[name .. "_count"], name .. "_count")
      assert.are.equal(h.count, samples[name .. '_bucket{le="+Inf"}'], name .. " +Inf")
      local cum, prev = 0, 0
      for i = 1, 26 do
        cum = cum + h.buckets[i]
        local le = ("%.9g"):format(2 ^ (i - 1) / 1e6)
        local got = samples[name .. '_bucket{le="' .. le .. '"}']
        assert.are.equal(cum, got, name .. " le=" .. le)
        assert.truthy(got >= prev)
        prev = got
      end
      assert.truthy(math.abs(samples[name .. "_sum"] - h.sum_ns / 1e9) < 1e-6, name .. "_sum")
    end
    l1:close()
  end)

  it("hot_keys ranks the hottest keys of a skewed workload", function()
    local hot, warm = H.key("hot"), H.key("warm")
    local h = assert(sc.new{url = b.url, namespace = "lua-hot", hot_top = 8})
    h:set(hot, "h")
    h:set(warm, "w")
    for i = 1, 200 do
      h:get(H.key("cold"))
      if i % 2 == 0 then h:get(hot) end
      if i % 5 == 0 then h:get(warm) end
    end
    for _ = 1, 60 do h:get(hot) end
    local top = h:hot_keys(3)
    assert.are.equal(3, #top)
    assert.are.equal(hot, top[1].key)
    assert.are.equal(warm, top[2].key)
    assert.truthy(top[1].count >= 100 and top[1].count <= 160, "hot count " .. top[1].count)
    assert.truthy(top[1].rate > top[2].rate and top[2].rate >= top[3].rate)
    assert.are.equal(1, #h:hot_keys(1))
    assert.are.same({}, assert(sc.new{url = b.url, namespace = "lua-hot-empty"}):hot_keys())
    -- a long key comes back as its first 256 bytes, marked
    local long = H.key(string.rep("x", 300))
    for _ = 1, 400 do h:get(long) end
    top = h:hot_keys(1)
    assert.are.equal(long:sub(1, 256), top[1].key)
    assert.is_true(top[1].truncated)
    h:close()
    local off = assert(sc.new{url = b.url, namespace = "lua-hot", hot_sketch_width = 0})
    local v, err = off:hot_keys(5)
    assert.is_nil(v)
    assert.truthy(err:find("^ENOTSUP: "), err)
    off:close()
  end)

  it("l1_admission = 'hot': a key enters L1 on its hot_threshold-th read", function()
    local a = assert(sc.new{url = b.url, namespace = "lua-adm", l1 = true, l1_admission = "hot",
                            hot_threshold = 3, hot_window = 100000, hot_sketch_width = 1024})
    if b.name == "redis" then assert.is_true(H.wait_link(a)) end
    local k = H.key("adm")
    a:set(k, "v") -- not hot yet: not admitted
    assert.are.equal(1, a:stats().l1_admission_rejects)
    local levels = {}
    for i = 1, 5 do levels[i] = select(3, a:get(k)) end
    assert.are.same({2, 2, 2, 1, 1}, levels) -- the 3rd read is served by the backend and fills L1
    a:close()
    local none = H.open(b, {namespace = "lua-adm", l1 = true, l1_admission = "none"})
    none:set(k, "v")
    none:get(k)
    assert.are.equal(2, select(3, none:get(k)))
    none:close()
  end)

  it("accepts the coherence and tag options; refuses bad values with EOPTION", function()
    for _, opts in ipairs({{tag_cache = 0.25}, {tag_cache_ms = 0}, {coherence_ping = 0.5},
                           {coherence_ping_ms = 200}, {hot_top = 0}}) do
      opts.url, opts.namespace = b.url, "lua-opts"
      local h = assert(sc.new(opts))
      assert.is_true(h:set(H.key("o"), "v"))
      h:close()
    end
    for _, case in ipairs({{{l1_admission = "warm"}, "l1_admission"}, {{hot_threshold = 0}, "hot_threshold"},
                           {{hot_sketch_width = 100}, "hot_sketch_width"}, {{coherence_ping_ms = 0}, "coherence_ping_ms"},
                           {{l1 = true, l1_admission = "hot", hot_sketch_width = 0}, "hot"}}) do
      local opts = case[1]
      opts.url = b.url
      local h, err = sc.new(opts)
      assert.is_nil(h)
      assert.truthy(err:find("^EOPTION: .*" .. case[2]), err)
    end
    local h, err = sc.new{url = b.url, tracking = true}
    if b.name == "redis" then
      assert.truthy(h, err)
      h:close()
    else
      assert.is_nil(h)
      assert.truthy(err:find("^EOPTION: .*tracking"), err)
    end
  end)

  if b.name == "memcached" then
    it("l1_bus = a redis URL: another cache's write evicts this L1", function()
      local bus = os.getenv("STRATA_TEST_REDIS_URL")
      local a = assert(sc.new{url = b.url, namespace = "lua-bus", l1 = true, l1_bus = bus})
      local r = assert(sc.new{url = b.url, namespace = "lua-bus", l1 = true, l1_bus = bus, l1_ttl = 60})
      assert.is_true(H.wait_link(r))
      assert.is_true(H.wait_link(a))
      local k = H.key("bus")
      a:set(k, "old")
      -- our own write's message may evict the first fill: poll for an L1 hit
      local deadline, v, level, _ = os.time() + 3, nil, nil, nil
      repeat
        v, _, level = r:get(k)
        if level ~= 1 then sc.sleep(0.005) end
      until level == 1 or os.time() > deadline
      assert.are.equal("old", v)
      assert.are.equal(1, level)
      a:set(k, "new")
      deadline = os.time() + 3
      repeat
        v = r:get(k)
        if v ~= "new" then sc.sleep(0.005) end
      until v == "new" or os.time() > deadline
      assert.are.equal("new", v)
      assert.truthy(r:stats().invalidations_received >= 1)
      a:close()
      r:close()
    end)
  end

  if b.name == "redis" then
    it("tracking = true: another client's write evicts L1; the link is reported up", function()
      local t = assert(sc.new{url = b.url, namespace = "lua-track", l1 = true, tracking = true})
      local w = assert(sc.new{url = b.url, namespace = "lua-track"})
      local k = H.key("tr")
      assert.is_true(H.wait_link(t))
      t:set(k, "old")
      -- under tracking our own write evicts our L1 entry too, asynchronously: poll for an L1 hit
      local deadline, v, level, _ = os.time() + 3, nil, nil, nil
      repeat
        v, _, level = t:get(k)
        if level ~= 1 then sc.sleep(0.005) end
      until level == 1 or os.time() > deadline
      assert.are.equal(1, level)
      assert.are.equal("old", v)
      w:set(k, "new")
      deadline = os.time() + 3 -- poll: the message arrives on another connection
      repeat
        v = t:get(k)
        if v ~= "new" then sc.sleep(0.005) end
      until v == "new" or os.time() > deadline
      assert.are.equal("new", v)
      assert.truthy(t:stats().invalidations_received >= 1)
      t:close()
      w:close()
    end)
  end
end)
