-- Framework primitives (docs/FRAMEWORKS.md): clear, add, incr/decr, delete_many,
-- lock, sc.FOREVER and the ttl rule, as in Python and C.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "helpers"
local sc = require "stratacache"

H.each_backend("framework primitives on ", function(b)
  local c
  -- a namespace of its own: the interpreters run side by side, and clear() is namespace-wide
  local ns = H.key("lua-fw")
  before_each(function() c = H.open(b, {namespace = ns}) end)
  after_each(function() c:close() end)

  it("clear makes every entry miss", function()
    local k = H.key("clear")
    assert.is_true(c:set(k, "v"))
    assert.is_true(c:clear())
    assert.is_nil(c:get(k))
    assert.is_true(c:set(k, "w"))
    assert.are.equal("w", (c:get(k)))
  end)

  it("add stores once, incr counts, delete_many counts", function()
    local k, n = H.key("add"), H.key("n")
    assert.is_true(c:add(k, "first"))
    assert.is_false(c:add(k, "second"))
    assert.are.equal("first", (c:get(k)))
    assert.are.equal(5, c:incr(n, 5))
    assert.are.equal(4, c:decr(n))
    assert.are.equal("4", (c:get(n)))
    local v, err = c:incr(k)
    assert.is_nil(v)
    assert.truthy(err:find("^ENOTNUM: "), err)
    assert.are.equal(2, c:delete_many({k, n, H.key("none")}))
  end)

  it("FOREVER and the ttl rule", function()
    local k = H.key("forever")
    assert.is_true(c:set(k, "v", sc.FOREVER))
    assert.is_true(c:touch(k, 30))
    assert.is_true(c:touch(k))
    assert.has_error(function() c:set(k, "v", 0) end)
    assert.has_error(function() c:add(k, "v", 0) end)
    assert.are.equal("v", (c:get(k)))
  end)

  it("a lock: one holder, released by the holder only, lost is reported", function()
    local name = H.key("lock")
    local a, o = c:lock(name, 30), c:lock(name, 30)
    assert.is_true(a:acquire())
    assert.is_false(o:acquire(false))
    assert.is_false(o:acquire(true, 0.05))
    assert.is_true(o:locked())
    local ok, err = o:release()
    assert.is_nil(ok)
    assert.truthy(err:find("^ELEASE: "), err)
    assert.is_true(a:extend(10))
    assert.is_true(a:release())
    assert.is_false(a:locked())
    assert.has_error(function() c:lock(name, 0) end)
  end)
end)
