-- Misuse raises, with a message naming the argument (mlcache, luv).
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "helpers"
local sc = require "stratacache"

describe("misuse", function()
  local c
  before_each(function() c = assert(sc.new{url = "memory://", namespace = "misuse"}) end)
  after_each(function() c:close() end)

  it("bad keys name the argument", function()
    H.raises(function() c:get("") end, "bad argument #1 to 'get' (key must be a non-empty string, got an empty string)")
    H.raises(function() c:get(nil) end, "bad argument #1 to 'get' (key must be a non-empty string, got nil)")
    H.raises(function() c:get(42) end, "bad argument #1 to 'get' (key must be a non-empty string, got number)")
    H.raises(function() c:delete({}) end, "bad argument #1 to 'delete' (key must be")
    H.raises(function() c:touch("") end, "bad argument #1 to 'touch'")
    H.raises(function() c:invalidate("") end, "bad argument #1 to 'invalidate'")
    H.raises(function() c:invalidate_tag("") end, "bad argument #1 to 'invalidate_tag' (tag must be")
    H.raises(function() c:get_or_load("", function() end) end,
      "bad argument #1 to 'get_or_load' (key must be a non-empty string")
  end)

  it("bad values and ttls name the argument", function()
    H.raises(function() c:set("k", nil) end, "bad argument #2 to 'set' (value must be a string, got nil)")
    H.raises(function() c:set("k", {}) end, "bad argument #2 to 'set' (value must be a string, got table)")
    H.raises(function() c:set("k", "v", -1) end, "bad argument #3 to 'set' (ttl must be a non-negative number")
    H.raises(function() c:set("k", "v", "soon") end, "bad argument #3 to 'set' (ttl must be")
    H.raises(function() c:touch("k", -5) end, "bad argument #2 to 'touch' (ttl must be")
    H.raises(function() c:get_or_load("k", "not a function") end,
      "bad argument #2 to 'get_or_load' (loader must be a function, got string)")
  end)

  it("bad batches name the argument and the item", function()
    H.raises(function() c:get_many("k") end, "bad argument #1 to 'get_many' (keys must be a table")
    H.raises(function() c:get_many({"a", 3}) end, "bad argument #1 to 'get_many' (keys[2] must be a non-empty string, got number)")
    H.raises(function() c:set_many(nil) end, "bad argument #1 to 'set_many' (items must be a table")
    H.raises(function() c:set_many({k = 1}) end, "value for key \"k\" must be a string, got number")
    H.raises(function() c:set_many({[1] = "v"}) end, "every key must be a non-empty string")
    H.raises(function() c:set_many({k = "v"}, -1) end, "bad argument #2 to 'set_many' (ttl must be")
  end)

  it("bad options raise; bad URLs and unknown options return nil, err", function()
    H.raises(function() sc.new("redis://x") end, "bad argument #1 to 'new' (options must be a table, got string)")
    H.raises(function() sc.new{url = 5} end, "bad argument #1 to 'new' (url must be a string, got number)")
    H.raises(function() sc.new{ttl = -1} end, "bad argument #1 to 'new' (ttl must be a non-negative number of seconds)")
    H.raises(function() sc.new{ttl = "1"} end, "ttl must be a non-negative number")
    H.raises(function() sc.new{sleep = 1} end, "sleep must be a function")
    local c2, err = sc.new{url = "ftp://host"}
    assert.is_nil(c2)
    assert.truthy(err:find("^EURL: "), err)
    c2, err = sc.new{url = "memory://", bogus = 1}
    assert.is_nil(c2)
    assert.truthy(err:find("^EOPTION: .*bogus"), err)
    H.raises(function() sc.new{namespace = "a&l1=1"} end, "option namespace must not contain '&'")
    c2, err = sc.new{namespace = "bad!ns"}
    assert.is_nil(c2)
    assert.truthy(err:find("^EOPTION: .*ns"), err)
  end)

  it("closed handles raise on use; close is idempotent", function()
    local h = assert(sc.new{})
    h:close()
    h:close()
    H.raises(function() h:get("k") end, "cache is closed")
    H.raises(function() h:set("k", "v") end, "cache is closed")
    H.raises(function() h:stats() end, "cache is closed")
    H.raises(function() h:get_or_load("k", function() return "v" end) end,
      "calling 'get_or_load' on bad self (cache is closed)")
  end)

  it("methods check self", function()
    H.raises(function() c.get({}, "k") end, "stratacache.cache expected")
    H.raises(function() c.get_or_load({}, "k", print) end, "bad self")
  end)

  it("tickets are single-use", function()
    local rc, _, _, t = c:_lookup(H.key("ticket"))
    assert.are.equal(5, rc)
    assert.is_true(t:fill("v"))
    H.raises(function() t:fill("again") end, "ticket was already used")
    assert.is_true(t:abandon()) -- abandoning a used ticket is a no-op
  end)

  if _VERSION >= "Lua 5.4" then
    it("__close closes the handle at the end of its scope", function()
      local chunk = assert(load([[
        local sc = ...
        local saved
        do
          local h <close> = assert(sc.new{})
          saved = h
        end
        return saved
      ]]))
      local h = chunk(sc)
      assert.truthy(tostring(h):find("closed"))
    end)
  end
end)
