-- One cold key, many callers: one load.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "helpers"
local sc = require "stratacache"

local function tmpname()
  local p = os.tmpname()
  os.remove(p)
  return p
end

H.each_backend("stampede on ", function(b)

  it("8 coroutines with a yielding loader: one load, 8 values", function()
    -- waiters yield instead of blocking, so the lease holder can finish
    local c = assert(sc.new{url = b.url, namespace = "lua-stampede", sleep = function() coroutine.yield() end})
    local k, loads = H.key("co"), 0
    local function loader()
      loads = loads + 1
      for _ = 1, 20 do coroutine.yield() end
      return "value-of-" .. k
    end
    local fns = {}
    for i = 1, 8 do fns[i] = function() return c:get_or_load(k, loader) end end
    local results = H.run_coroutines(fns)
    assert.are.equal(1, loads)
    for i = 1, 8 do
      assert.are.equal("value-of-" .. k, results[i][2], "coroutine " .. i)
      assert.is_nil(results[i][3])
    end
    assert.are.equal(3, results[1][4]) -- the first one loaded
    c:close()
  end)

  it("several handles in sequence: one load", function()
    local k, loads = H.key("seq"), 0
    local keep = assert(sc.new{url = b.url}) -- keeps a named memory:// store alive
    for _ = 1, 4 do
      local h = assert(sc.new{url = b.url, namespace = "lua-stampede"})
      assert.are.equal("v", (h:get_or_load(k, function() loads = loads + 1; return "v" end)))
      h:close()
    end
    assert.are.equal(1, loads)
    keep:close()
  end)

  if b.name ~= "memory" then
    it("6 lua processes with a slow loader: exactly one load", function()
      local k, log = H.key("proc"), tmpname()
      local child = tmpname() .. ".lua"
      local f = assert(io.open(child, "w"))
      f:write([[
        local sc = require "stratacache"
        local url, key, log = ...
        local c = assert(sc.new{url = url, namespace = "lua-stampede", lock_wait = 10})
        local v, err, level = c:get_or_load(key, function()
          local l = assert(io.open(log, "a")); l:write("load\n"); l:close()
          sc.sleep(0.5)
          return "from-process"
        end)
        local st = c:stats() -- a load after a backend error or timeout is fail-open, not a lost lease
        io.write(tostring(v), " ", tostring(err), " ", tostring(level), " timeouts=", st.timeouts,
          " backend_errors=", st.backend_errors, " leases_won=", st.leases_won, "\n")
        c:close()
      ]])
      f:close()
      local procs = {}
      for i = 1, 6 do
        procs[i] = assert(io.popen(("%s %q %q %q %q"):format(H.lua, child, b.url, k, log)))
      end
      local outs = {}
      for i = 1, 6 do
        outs[i] = procs[i]:read("*a")
        procs[i]:close()
      end
      local loads = 0
      local l = io.open(log)
      if l then
        for _ in l:lines() do loads = loads + 1 end
        l:close()
      end
      os.remove(log)
      os.remove(child)
      assert.are.equal(1, loads, "loads across processes; outputs: " .. table.concat(outs))
      local levels = {}
      for i = 1, 6 do
        local v, err, level = outs[i]:match("^(%S+) (%S+) (%S+)")
        assert.are.equal("from-process", v, "process " .. i .. ": " .. outs[i])
        assert.are.equal("nil", err)
        levels[level] = (levels[level] or 0) + 1
      end
      assert.are.equal(1, levels["3"]) -- one loaded, the others read it
    end)
  end
end)
