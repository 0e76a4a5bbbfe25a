-- Tags (docs/TAGS.md): set(key, value, ttl, tags), get_or_load(key, {tags = ...}, loader, ...),
-- ticket:tags(...), invalidate_tag(tag). A bump makes every entry stamped before it miss.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "helpers"
local sc = require "stratacache"

for _, l1 in ipairs({false, true}) do
  H.each_backend(function(b) return ("tags on %s, L1 %s"):format(b.name, l1 and "on" or "off") end, function(b)
    local c
    before_each(function()
      c = H.open(b, {namespace = "lua-tags", l1 = l1})
    end)
    after_each(function() c:close() end)

    it("a bump makes the stamped entries miss and leaves the others", function()
      local user, team = H.key("user"), H.key("team")
      local k1, k2, k3 = H.key("tagged"), H.key("tagged"), H.key("plain")
      assert.is_true(c:set(k1, "profile", nil, {user, team}))
      assert.is_true(c:set(k2, "settings", 60, {user}))
      assert.is_true(c:set(k3, "untagged", nil, {}))
      local v, err, level = c:get(k1)
      assert.are.equal("profile", v)
      assert.is_nil(err)
      assert.are.equal(l1 and 1 or 2, level) -- a write enters L1 when it is on
      assert.are.equal("settings", (c:get(k2)))
      assert.is_true(c:invalidate_tag(team))
      assert.is_nil(c:get(k1))
      assert.are.equal("settings", (c:get(k2)))
      assert.is_true(c:invalidate_tag(user))
      assert.is_nil(c:get(k2))
      assert.are.equal("untagged", (c:get(k3)))
      local st = c:stats()
      assert.are.equal(2, st.tag_invalidations)
      assert.truthy(st.tag_stale >= 2, "tag_stale " .. st.tag_stale)
      -- written again after the bump: current again
      assert.is_true(c:set(k1, "profile-2", nil, {user, team}))
      assert.are.equal("profile-2", (c:get(k1)))
    end)

    it("another handle's bump is seen once tag_cache runs out (0 = at once)", function()
      local reader = H.open(b, {namespace = "lua-tags", l1 = l1, tag_cache = 0})
      local tag, k = H.key("t"), H.key("cross")
      assert.is_true(reader:set(k, "v", nil, {tag}))
      assert.are.equal("v", (reader:get(k)))
      assert.are.equal("v", (reader:get(k)))
      assert.is_true(c:invalidate_tag(tag))
      assert.is_nil(reader:get(k))
      reader:close()
    end)

    it("get_or_load with tags stamps the loaded value", function()
      local tag, k, calls = H.key("t"), H.key("gol"), 0
      local function loader(suffix)
        calls = calls + 1
        return "loaded-" .. calls .. suffix
      end
      local v, err, level = c:get_or_load(k, {tags = {tag}}, loader, "!")
      assert.are.equal("loaded-1!", v)
      assert.is_nil(err)
      assert.are.equal(3, level)
      assert.are.equal("loaded-1!", (c:get_or_load(k, {tags = {tag}}, loader, "!")))
      assert.are.equal(1, calls)
      c:invalidate_tag(tag)
      assert.is_nil(c:get(k))
      assert.are.equal("loaded-2!", (c:get_or_load(k, {tags = {tag}}, loader, "!")))
      assert.are.equal(2, calls)
    end)

    it("tags are stamped before the loader runs: a bump during the load wins", function()
      local tag, k = H.key("t"), H.key("race")
      local v = c:get_or_load(k, {tags = {tag}}, function()
        c:invalidate_tag(tag) -- the source changed while we read it
        return "read-before-the-write"
      end)
      assert.are.equal("read-before-the-write", v) -- this caller gets what it loaded
      assert.is_nil(c:get(k))                      -- but it is not served as current
      assert.are.equal("fresh", (c:get_or_load(k, {tags = {tag}}, function() return "fresh" end)))
      assert.are.equal("fresh", (c:get(k)))
    end)

    it("a tagged negative entry goes with the bump too", function()
      local tag, k, calls = H.key("t"), H.key("neg"), 0
      local function loader() calls = calls + 1; return sc.NOT_FOUND end
      local _, _, what = c:get_or_load(k, {tags = {tag}}, loader)
      assert.are.equal("negative", what)
      _, _, what = c:get_or_load(k, {tags = {tag}}, loader)
      assert.are.equal("negative", what)
      assert.are.equal(1, calls)
      c:invalidate_tag(tag)
      c:get_or_load(k, {tags = {tag}}, loader)
      assert.are.equal(2, calls)
    end)

    it("ticket:tags stamps a two-phase fill", function()
      local tag, k = H.key("t"), H.key("ticket")
      local rc, _, _, ticket = c:_lookup(k)
      assert.are.equal(5, rc) -- MISS_LEAD
      assert.is_true(ticket:tags({tag}))
      assert.is_true(ticket:fill("two-phase"))
      assert.are.equal("two-phase", (c:get(k)))
      c:invalidate_tag(tag)
      assert.is_nil(c:get(k))
    end)

    it("an over-long tag is a runtime EKEY that changes nothing", function()
      local k = H.key("long")
      local v, err = c:set(k, "v", nil, {string.rep("t", 300)})
      assert.is_nil(v)
      assert.truthy(err:find("^EKEY: "), err)
      assert.is_nil(c:get(k))
      local calls = 0
      v, err = c:get_or_load(k, {tags = {string.rep("t", 300)}}, function() calls = calls + 1; return "x" end)
      assert.is_nil(v)
      assert.truthy(err:find("^EKEY: "), err)
      assert.are.equal(0, calls)
      -- the lease was given back: a plain get_or_load leads at once
      assert.are.equal("y", (c:get_or_load(k, function() return "y" end)))
    end)
  end)
end
