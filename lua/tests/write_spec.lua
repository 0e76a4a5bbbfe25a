-- The write side (docs/WRITE-BEHIND.md): write_behind and the pull API (wb_poll,
-- batch:ack / batch:fail), write_through with a Lua writer, flush.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "helpers"
local sc = require "stratacache"

-- Polls f until it returns a truthy value, for at most 3 s; returns that value.
local function eventually(f, what)
  local deadline = os.time() + 3
  while true do
    local v = f()
    if v then return v end
    assert(os.time() <= deadline, "timed out waiting for " .. what)
    sc.sleep(0.005)
  end
end

H.each_backend("write side on ", function(b)
  local c
  before_each(function()
    -- a namespace of its own: on redis every cache of a namespace shares its stream
    c = H.open(b, {namespace = H.key("wb"), wb_retry_ms = 20, wb_retry_max_ms = 20, wb_max_attempts = 2})
  end)
  after_each(function() c:close() end)

  it("write_behind writes the cache; wb_poll hands out the latest value per key", function()
    local k1, k2 = H.key("a"), H.key("b")
    assert.is_true(c:write_behind(k1, "one"))
    assert.is_true(c:write_behind(k2, "two", 60))
    assert.is_true(c:write_behind(k1, "one-v2"))
    assert.are.equal("one-v2", (c:get(k1)))
    local st = c:stats()
    assert.are.equal(3, st.wb_enqueued)
    assert.are.equal(3, st.wb_backlog)
    local batch = assert(c:wb_poll(10))
    local got = {}
    for _, r in ipairs(batch.records) do
      got[r.key] = r.value
      assert.truthy(math.abs(r.enqueued_ms / 1000 - os.time()) < 5, "enqueued_ms is wall-clock ms")
    end
    assert.are.equal(2, #batch.records)
    assert.are.same({[k1] = "one-v2", [k2] = "two"}, got)
    assert.is_nil(c:wb_poll(10)) -- in flight: not handed out twice
    assert.is_true(batch:ack())
    H.raises(function() batch:ack() end, "batch was already acked or failed")
    st = c:stats()
    assert.are.equal(0, st.wb_backlog)
    assert.are.equal(3, st.wb_flushed)
    assert.is_nil(c:wb_poll())
    assert.is_true(c:flush(0))
  end)

  it("wb_poll(max) bounds the batch", function()
    for i = 1, 5 do c:write_behind(H.key("m" .. i), "v") end
    local b1 = assert(c:wb_poll(3))
    assert.are.equal(3, #b1.records)
    local b2 = assert(c:wb_poll(3))
    assert.are.equal(2, #b2.records)
    b1:ack()
    b2:ack()
    assert.are.equal(0, c:stats().wb_backlog)
  end)

  it("batch:fail retries after wb_retry_ms, then dead-letters", function()
    local k = H.key("f")
    c:write_behind(k, "v")
    local batch = assert(c:wb_poll())
    assert.is_true(batch:fail("db down"))
    batch = eventually(function() return c:wb_poll() end, "the retry")
    assert.are.equal(k, batch.records[1].key)
    assert.is_true(batch:fail()) -- the second failure: wb_max_attempts = 2
    local st = c:stats()
    assert.are.equal(1, st.wb_retried)
    assert.are.equal(1, st.wb_dead)
    assert.are.equal(0, st.wb_backlog)
  end)

  it("a batch dropped without ack or fail is failed by the GC and comes back", function()
    local k = H.key("gc")
    c:write_behind(k, "v")
    assert.truthy(c:wb_poll())
    collectgarbage()
    collectgarbage()
    local batch = eventually(function() return c:wb_poll() end, "the batch to come back")
    assert.are.equal(k, batch.records[1].key)
    batch:ack()
  end)

  it("close fails the batches still open", function()
    local h = assert(sc.new{url = b.url, namespace = H.key("wb")})
    h:write_behind(H.key("c"), "v")
    local batch = assert(h:wb_poll())
    h:close()
    H.raises(function() batch:ack() end, "its cache was closed")
  end)

  it("write_through runs the writer first, then updates the cache", function()
    local k, calls = H.key("wt"), {}
    local function writer(key, value)
      calls[#calls + 1] = key .. "=" .. value
      return true
    end
    c:set(k, "old")
    assert.is_true(c:write_through(k, "new", writer))
    assert.are.same({k .. "=new"}, calls)
    assert.are.equal("new", (c:get(k)))
    assert.is_true(c:write_through(k, "ttl", writer, 60))
    assert.are.equal("ttl", (c:get(k)))
  end)

  it("a failing writer leaves the cache untouched and reports EUSER", function()
    local k = H.key("wtf")
    c:set(k, "kept")
    local cases = {
      {function() return nil, "db down" end, "db down"},
      {function() return false end, "writer returned nil or false"},
      {function() end, "writer returned nil or false"},
      {function() error("constraint violated") end, "writer raised: .*constraint violated"},
      {function() error({}) end, "writer raised: an error object that is not a string"},
    }
    for i, case in ipairs(cases) do
      local ok, err = c:write_through(k, "lost-" .. i, case[1])
      assert.is_nil(ok)
      assert.truthy(err:find("^EUSER: .*" .. case[2]), err)
      assert.are.equal("kept", (c:get(k)))
    end
  end)

  it("a writer cannot yield: it runs inside the C call", function()
    local k = H.key("wty")
    local co = coroutine.create(function()
      return c:write_through(k, "v", function() coroutine.yield() return true end)
    end)
    local ok, v, err = coroutine.resume(co)
    assert.is_true(ok)
    assert.are.equal("dead", coroutine.status(co)) -- the call returned; nothing was suspended
    assert.is_nil(v)
    assert.truthy(err:find("^EUSER: .*yield"), err)
    assert.is_nil(c:get(k))
  end)

  it("a writer cannot close its cache (the C call is still running)", function()
    local k = H.key("wtc")
    local ok, err = c:write_through(k, "v", function() c:close() return true end)
    assert.is_nil(ok)
    assert.truthy(err:find("cannot close a cache inside its write_through writer", 1, true), err)
    assert.is_nil(c:get(k))
    assert.is_true(c:write_through(k, "v", function() return true end))
    assert.are.equal("v", (c:get(k)))
  end)

  it("write_through refuses a bad key before the writer runs", function()
    local ran = false
    local ok, err = c:write_through(string.rep("k", 5000), "v", function() ran = true; return true end)
    assert.is_nil(ok)
    assert.truthy(err:find("^EKEY: "), err)
    assert.is_false(ran)
  end)

  it("flush(timeout) waits for the backlog; flush(timeout, writer) delivers it, yielding allowed", function()
    local k = H.key("fl")
    c:write_behind(k, "v")
    local ok, err = c:flush(0.05) -- nobody consumes: times out
    assert.is_nil(ok)
    assert.truthy(err:find("^ETIMEOUT: "), err)
    local delivered, attempts = {}, 0
    local co = coroutine.wrap(function()
      return c:flush(3, function(records)
        attempts = attempts + 1
        coroutine.yield("writing")
        if attempts == 1 then return nil, "first try fails" end
        for _, r in ipairs(records) do delivered[r.key] = r.value end
        return true
      end)
    end)
    local r = co()
    while r == "writing" do r = co() end
    assert.is_true(r)
    assert.are.equal(2, attempts)
    assert.are.same({[k] = "v"}, delivered)
    assert.are.equal(0, c:stats().wb_backlog)
  end)
end)
