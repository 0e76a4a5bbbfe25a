-- Misuse raises, with a message naming the argument (mlcache, luv), blamed on
-- the caller's line (error(msg, 2)). Every public method is covered.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "helpers"
local sc = require "stratacache"

-- H.raises, plus: the message starts at the line of this file that made the call.
local function raises(f, want)
  local err = H.raises(f, want)
  if not err:find("^[^:]*misuse_spec%.lua:%d+: ") then
    error(("error %q should point at the calling line of misuse_spec.lua"):format(err), 2)
  end
  return err
end

local function loader() return "v" end

-- Every method with good arguments (after self), for the bad-self and closed cases.
local METHODS = {
  get = {"k"}, set = {"k", "v"}, delete = {"k"}, touch = {"k", 1}, invalidate = {"k"},
  invalidate_tag = {"t"}, get_many = {{"k"}}, set_many = {{k = "v"}}, stats = {},
  get_or_load = {"k", loader}, histogram = {"get"}, prometheus = {}, hot_keys = {3},
  write_behind = {"k", "v"}, write_through = {"k", "v", function() return true end}, wb_poll = {}, flush = {0},
}
local unpack = unpack or table.unpack

describe("misuse", function()
  local c
  before_each(function() c = assert(sc.new{url = "memory://", namespace = "misuse"}) end)
  after_each(function() c:close() end)

  it("bad keys name the argument, for every keyed method", function()
    -- written out: only method-call syntax lets Lua name the method in the message
    raises(function() c:get("") end, "bad argument #1 to 'get' (key must be a non-empty string, got an empty string)")
    raises(function() c:get(nil) end, "bad argument #1 to 'get' (key must be a non-empty string, got nil)")
    raises(function() c:get(42) end, "bad argument #1 to 'get' (key must be a non-empty string, got number)")
    -- under LuaJIT get is a Lua function (plain.lua), which sees nil for a missing key
    raises(function() c:get() end, "bad argument #1 to 'get' (key must be a non-empty string, got "
      .. (rawget(_G, "jit") and "nil)" or "no value)"))
    raises(function() c:delete("") end, "bad argument #1 to 'delete' (key must be a non-empty string, got an empty string)")
    raises(function() c:delete({}) end, "bad argument #1 to 'delete' (key must be a non-empty string, got table)")
    raises(function() c:touch("") end, "bad argument #1 to 'touch' (key must be a non-empty string, got an empty string)")
    raises(function() c:touch(nil, 1) end, "bad argument #1 to 'touch' (key must be a non-empty string, got nil)")
    raises(function() c:invalidate("") end, "bad argument #1 to 'invalidate' (key must be a non-empty string, got an empty string)")
    raises(function() c:invalidate(1) end, "bad argument #1 to 'invalidate' (key must be a non-empty string, got number)")
    raises(function() c:set("", "v") end, "bad argument #1 to 'set' (key must be a non-empty string, got an empty string)")
    raises(function() c:set(true, "v") end, "bad argument #1 to 'set' (key must be a non-empty string, got boolean)")
    raises(function() c:invalidate_tag("") end, "bad argument #1 to 'invalidate_tag' (tag must be a non-empty string, got an empty string)")
    raises(function() c:invalidate_tag(nil) end, "bad argument #1 to 'invalidate_tag' (tag must be a non-empty string, got nil)")
    raises(function() c:get_or_load("", loader) end,
      "bad argument #1 to 'get_or_load' (key must be a non-empty string, got an empty string)")
    raises(function() c:get_or_load(nil, loader) end, "bad argument #1 to 'get_or_load' (key must be a non-empty string, got nil)")
    raises(function() c:get_or_load(7, loader) end, "bad argument #1 to 'get_or_load' (key must be a non-empty string, got number)")
  end)

  it("bad values, ttls and loaders name the argument", function()
    raises(function() c:set("k", nil) end, "bad argument #2 to 'set' (value must be a string, got nil)")
    raises(function() c:set("k", {}) end, "bad argument #2 to 'set' (value must be a string, got table)")
    raises(function() c:set("k", 5) end, "bad argument #2 to 'set' (value must be a string, got number)")
    raises(function() c:set("k", "v", -1) end,
      "bad argument #3 to 'set' (ttl must be a non-negative number of seconds (at most 32000000), got -1)")
    raises(function() c:set("k", "v", 0 / 0) end, "bad argument #3 to 'set' (ttl must be a non-negative number of seconds")
    raises(function() c:set("k", "v", 1e12) end, "bad argument #3 to 'set' (ttl must be a non-negative number of seconds (at most 32000000)")
    raises(function() c:set("k", "v", "soon") end, "bad argument #3 to 'set' (ttl must be a non-negative number of seconds, got string)")
    raises(function() c:touch("k", -5) end, "bad argument #2 to 'touch' (ttl must be a non-negative number of seconds")
    raises(function() c:touch("k", {}) end, "bad argument #2 to 'touch' (ttl must be a non-negative number of seconds, got table)")
    raises(function() c:get_or_load("k", "not a function") end,
      "bad argument #2 to 'get_or_load' (loader must be a function (or an options table before it), got string)")
    raises(function() c:get_or_load("k") end, "bad argument #2 to 'get_or_load' (loader must be a function (or an options table before it), got nil)")
  end)

  it("bad batches name the argument and the item", function()
    raises(function() c:get_many("k") end, "bad argument #1 to 'get_many' (keys must be a table (an array of strings))")
    raises(function() c:get_many(nil) end, "bad argument #1 to 'get_many' (keys must be a table")
    raises(function() c:get_many({"a", 3}) end, "bad argument #1 to 'get_many' (keys[2] must be a non-empty string, got number)")
    raises(function() c:get_many({""}) end, "bad argument #1 to 'get_many' (keys[1] must be a non-empty string, got an empty string)")
    raises(function() c:set_many(nil) end, "bad argument #1 to 'set_many' (items must be a table of key = value strings)")
    raises(function() c:set_many({k = 1}) end, "bad argument #1 to 'set_many' (items[\"k\"] must be a string, got number)")
    raises(function() c:set_many({[1] = "v"}) end, "bad argument #1 to 'set_many' (items keys must be non-empty strings, got number)")
    raises(function() c:set_many({[""] = "v"}) end, "bad argument #1 to 'set_many' (items keys must be non-empty strings, got an empty string)")
    raises(function() c:set_many({k = "v"}, -1) end, "bad argument #2 to 'set_many' (ttl must be a non-negative number of seconds")
    -- nothing was written by the refused batches
    assert.is_nil(c:get("k"))
  end)

  it("bad options raise; bad URLs and unknown options return nil, err", function()
    raises(function() sc.new("redis://x") end, "bad argument #1 to 'new' (options must be a table, got string)")
    raises(function() sc.new{url = 5} end, "bad argument #1 to 'new' (url must be a string, got number)")
    raises(function() sc.new{ttl = -1} end, "bad argument #1 to 'new' (ttl must be a non-negative number of seconds, got -1)")
    raises(function() sc.new{ttl = "1"} end, "bad argument #1 to 'new' (ttl must be a non-negative number of seconds, got string)")
    raises(function() sc.new{neg_ttl = 0 / 0} end, "bad argument #1 to 'new' (neg_ttl must be a non-negative number of seconds")
    raises(function() sc.new{lock_wait = {}} end, "bad argument #1 to 'new' (lock_wait must be a non-negative number of seconds, got table)")
    raises(function() sc.new{sleep = 1} end, "bad argument #1 to 'new' (sleep must be a function, got number)")
    raises(function() sc.new{namespace = {}} end, "bad argument #1 to 'new' (option namespace must be a string, number or boolean, got table)")
    raises(function() sc.new{[1] = "x"} end, "bad argument #1 to 'new' (option names must be strings, got number)")
    raises(function() sc.new{namespace = "a&l1=1"} end, "option namespace must not contain '&'")
    local c2, err = sc.new{url = "ftp://host"}
    assert.is_nil(c2)
    assert.truthy(err:find("^EURL: "), err)
    c2, err = sc.new{url = "memory://", bogus = 1}
    assert.is_nil(c2)
    assert.truthy(err:find("^EOPTION: .*bogus"), err)
    c2, err = sc.new{namespace = "bad!ns"}
    assert.is_nil(c2)
    assert.truthy(err:find("^EOPTION: .*ns"), err)
  end)

  it("bad tags name the argument and the item", function()
    raises(function() c:set("k", "v", nil, "t") end, "bad argument #4 to 'set' (tags must be an array of strings, got string)")
    raises(function() c:set("k", "v", 1, {"a", 2}) end, "bad argument #4 to 'set' (tags[2] must be a non-empty string, got number)")
    raises(function() c:set("k", "v", 1, {""}) end, "bad argument #4 to 'set' (tags[1] must be a non-empty string, got an empty string)")
    local many = {}
    for i = 1, 17 do many[i] = "t" .. i end
    raises(function() c:set("k", "v", nil, many) end, "bad argument #4 to 'set' (tags has 17 entries, at most 16 are allowed)")
    raises(function() c:get_or_load("k", {tags = "t"}, loader) end,
      "bad argument #2 to 'get_or_load' (options.tags must be an array of strings, got string)")
    raises(function() c:get_or_load("k", {tags = {"a", {}}}, loader) end,
      "bad argument #2 to 'get_or_load' (options.tags[2] must be a non-empty string, got table)")
    raises(function() c:get_or_load("k", {tag = {"a"}}, loader) end,
      "bad argument #2 to 'get_or_load' (unknown option tag (options are: tags))")
    raises(function() c:get_or_load("k", {[1] = "a"}, loader) end,
      "bad argument #2 to 'get_or_load' (unknown option of type number (options are: tags))")
    raises(function() c:get_or_load("k", {tags = {"a"}}) end,
      "bad argument #3 to 'get_or_load' (loader must be a function, got nil)")
    raises(function() c:get_or_load("k", {tags = {"a"}}, "f") end,
      "bad argument #3 to 'get_or_load' (loader must be a function, got string)")
    raises(function() c:get_or_load("k", 5) end,
      "bad argument #2 to 'get_or_load' (loader must be a function (or an options table before it), got number)")
    local rc, _, _, t = c:_lookup(H.key("tags"))
    assert.are.equal(5, rc)
    raises(function() t:tags("a") end, "bad argument #1 to 'tags' (tags must be an array of strings, got string)")
    raises(function() t:tags({"a", ""}) end, "bad argument #1 to 'tags' (tags[2] must be a non-empty string, got an empty string)")
    assert.is_true(t:abandon())
    raises(function() t:tags({"a"}) end, "ticket was already used")
    -- nothing was written by the refused calls
    assert.is_nil(c:get("k"))
    assert.are.equal(0, c:stats().loads)
  end)

  it("bad metric arguments name the argument", function()
    raises(function() c:histogram("gets") end, "bad argument #1 to 'histogram' (kind must be 'get', 'load' or 'backend', got 'gets')")
    raises(function() c:histogram() end, "bad argument #1 to 'histogram' (kind must be 'get', 'load' or 'backend', got no value)")
    raises(function() c:histogram(1) end, "bad argument #1 to 'histogram' (kind must be 'get', 'load' or 'backend', got number)")
    raises(function() c:hot_keys(0) end, "bad argument #1 to 'hot_keys' (n must be an integer from 1 to 1024, got 0)")
    raises(function() c:hot_keys(2.5) end, "bad argument #1 to 'hot_keys' (n must be an integer from 1 to 1024, got 2.5)")
    raises(function() c:hot_keys(5000) end, "bad argument #1 to 'hot_keys' (n must be an integer from 1 to 1024, got 5000)")
    raises(function() c:hot_keys("3") end, "bad argument #1 to 'hot_keys' (n must be an integer from 1 to 1024, got string)")
    raises(function() sc.new{tag_cache = -1} end, "bad argument #1 to 'new' (tag_cache must be a non-negative number of seconds, got -1)")
    raises(function() sc.new{coherence_ping = "1"} end, "bad argument #1 to 'new' (coherence_ping must be a non-negative number of seconds, got string)")
    raises(function() sc.new{tracking = {}} end, "bad argument #1 to 'new' (option tracking must be a string, number or boolean, got table)")
    raises(function() sc.new{l1_admission = print} end, "bad argument #1 to 'new' (option l1_admission must be a string, number or boolean, got function)")
  end)

  it("bad write-side arguments name the argument", function()
    local function w() return true end
    raises(function() c:write_behind("", "v") end, "bad argument #1 to 'write_behind' (key must be a non-empty string, got an empty string)")
    raises(function() c:write_behind("k", 1) end, "bad argument #2 to 'write_behind' (value must be a string, got number)")
    raises(function() c:write_behind("k", "v", -1) end, "bad argument #3 to 'write_behind' (ttl must be a non-negative number of seconds")
    raises(function() c:write_through(nil, "v", w) end, "bad argument #1 to 'write_through' (key must be a non-empty string, got nil)")
    raises(function() c:write_through("k", nil, w) end, "bad argument #2 to 'write_through' (value must be a string, got nil)")
    raises(function() c:write_through("k", "v") end, "bad argument #3 to 'write_through' (writer must be a function, got no value)")
    raises(function() c:write_through("k", "v", "w") end, "bad argument #3 to 'write_through' (writer must be a function, got string)")
    raises(function() c:write_through("k", "v", w, "1") end, "bad argument #4 to 'write_through' (ttl must be a non-negative number of seconds, got string)")
    raises(function() c:wb_poll(0) end, "bad argument #1 to 'wb_poll' (max must be an integer from 1 to 100000, got 0)")
    raises(function() c:wb_poll("all") end, "bad argument #1 to 'wb_poll' (max must be an integer from 1 to 100000, got string)")
    raises(function() c:wb_poll(1.5) end, "bad argument #1 to 'wb_poll' (max must be an integer from 1 to 100000, got 1.5)")
    raises(function() c:flush() end, "bad argument #1 to 'flush' (timeout must be a non-negative number of seconds, got nil)")
    raises(function() c:flush(-1) end, "bad argument #1 to 'flush' (timeout must be a non-negative number of seconds, got -1)")
    raises(function() c:flush(1, "w") end, "bad argument #2 to 'flush' (writer must be a function, got string)")
    c:write_behind("wk", "v")
    local batch = assert(c:wb_poll())
    raises(function() batch:fail(42) end, "bad argument #1 to 'fail' (message must be a string, got number)")
    raises(function() batch.ack({}) end, "stratacache.wb_batch expected, got table")
    assert.is_true(batch:ack())
    raises(function() batch:fail("late") end, "batch was already acked or failed")
    assert.is_nil(c:wb_poll())
  end)

  it("every method checks self", function()
    for name, args in pairs(METHODS) do
      raises(function() c[name]({}, unpack(args)) end, "stratacache.cache expected, got table")
      raises(function() c[name]("k", unpack(args)) end, "stratacache.cache expected, got string")
    end
    raises(function() c.get() end, "stratacache.cache expected, got " .. (rawget(_G, "jit") and "nil" or "no value"))
    raises(function() c.get_or_load() end, "stratacache.cache expected, got nil") -- a Lua function: self is nil
    raises(function() c.close({}) end, "stratacache.cache expected")
  end)

  it("every method of a closed handle raises; close is idempotent", function()
    local h = assert(sc.new{})
    h:close()
    h:close()
    raises(function() h:get("k") end, "calling 'get' on bad self (cache is closed)")
    raises(function() h:set("k", "v") end, "calling 'set' on bad self (cache is closed)")
    raises(function() h:delete("k") end, "calling 'delete' on bad self (cache is closed)")
    raises(function() h:touch("k", 1) end, "calling 'touch' on bad self (cache is closed)")
    raises(function() h:invalidate("k") end, "calling 'invalidate' on bad self (cache is closed)")
    raises(function() h:invalidate_tag("t") end, "calling 'invalidate_tag' on bad self (cache is closed)")
    raises(function() h:get_many({"k"}) end, "calling 'get_many' on bad self (cache is closed)")
    raises(function() h:set_many({k = "v"}) end, "calling 'set_many' on bad self (cache is closed)")
    raises(function() h:stats() end, "calling 'stats' on bad self (cache is closed)")
    raises(function() h:histogram("get") end, "calling 'histogram' on bad self (cache is closed)")
    raises(function() h:prometheus() end, "calling 'prometheus' on bad self (cache is closed)")
    raises(function() h:hot_keys(1) end, "calling 'hot_keys' on bad self (cache is closed)")
    raises(function() h:write_behind("k", "v") end, "calling 'write_behind' on bad self (cache is closed)")
    raises(function() h:write_through("k", "v", loader) end, "calling 'write_through' on bad self (cache is closed)")
    raises(function() h:wb_poll() end, "calling 'wb_poll' on bad self (cache is closed)")
    raises(function() h:flush(1) end, "calling 'flush' on bad self (cache is closed)")
    raises(function() h:get_or_load("k", {tags = {"t"}}, loader) end, "calling 'get_or_load' on bad self (cache is closed)")
    raises(function() h:get_or_load("k", loader) end, "calling 'get_or_load' on bad self (cache is closed)")
    raises(function() h:_lookup("k") end, "calling '_lookup' on bad self (cache is closed)")
    raises(function() h:get_or_load("", 1) end, "calling 'get_or_load' on bad self (cache is closed)")
  end)

  it("tickets are single-use and check their arguments", function()
    local rc, _, _, t = c:_lookup(H.key("ticket"))
    assert.are.equal(5, rc)
    raises(function() t:fill(nil) end, "bad argument #1 to 'fill' (value must be a string, got nil)")
    raises(function() t:fill("v", -1) end, "bad argument #2 to 'fill' (ttl must be a non-negative number of seconds")
    raises(function() t:fill_negative("x") end, "bad argument #1 to 'fill_negative' (neg_ttl must be a non-negative number of seconds, got string)")
    raises(function() t.fill({}, "v") end, "stratacache.ticket expected, got table")
    assert.is_true(t:fill("v"))
    raises(function() t:fill("again") end, "ticket was already used")
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

describe("bad URLs", function()
  it("a NUL byte in the URL is refused, not cut off", function()
    local c, err = sc.new{url = "memory://?ttl_ms=1000\0&l1=1"}
    assert.is_nil(c)
    assert.truthy(err:find("^EURL: URL contains a NUL byte at offset 21"))
    c, err = sc.new{url = "memory://", wb_journal = "a\0b"}
    assert.is_nil(c)
    assert.truthy(err:find("^EURL: URL contains a NUL byte"))
  end)
end)
