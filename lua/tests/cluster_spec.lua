-- The Lua binding through a redis+cluster:// URL (docs/CLUSTER.md): the same
-- calls as on one node, with keys spread over the cluster's masters.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "helpers"
local sc = require "stratacache"

local url = os.getenv("STRATA_TEST_REDIS_CLUSTER_URL")

describe("stratacache on a Redis Cluster", function()
  if not url or url == "" then
    pending("STRATA_TEST_REDIS_CLUSTER_URL not set (run scripts/test-lua.sh)")
    return
  end
  local c
  before_each(function() c = assert(sc.new{url = url, namespace = "luacl", timeout = 1}) end)
  after_each(function() if c then c:close() end end)

  it("set, get, get_many, set_many and delete across slots", function()
    local keys, want = {}, {}
    for i = 1, 40 do
      keys[i] = H.key("cl")
      want[keys[i]] = "v" .. i
      assert.is_true(c:set(keys[i], "v" .. i))
    end
    assert.are.same(want, c:get_many(keys))
    local more = {}
    for i = 1, 10 do more[H.key("clm")] = "m" .. i end
    assert.is_true(c:set_many(more))
    for k, v in pairs(more) do assert.are.equal(v, (c:get(k))) end
    assert.is_true(c:delete(keys[1]))
    assert.is_nil(c:get(keys[1]))
  end)

  it("get_or_load loads once", function()
    local k, calls = H.key("clgol"), 0
    local function loader() calls = calls + 1; return "loaded" end
    assert.are.equal("loaded", (c:get_or_load(k, loader)))
    assert.are.equal("loaded", (c:get_or_load(k, loader)))
    assert.are.equal(1, calls)
  end)

  it("a database other than 0 is refused with the reason", function()
    local c2, err = sc.new{url = url .. "/2"}
    assert.is_nil(c2)
    assert.truthy(err:find("^EOPTION: .*only database 0"), err)
  end)
end)
