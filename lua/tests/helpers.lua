-- Shared by the specs: which backends to run on, unique keys, misuse checks.
local H = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
H.dir = here
H.root = here .. "/../.."

-- The interpreter running the specs (children are launched with the same one).
H.lua = os.getenv("STRATA_LUA") or "lua"

-- name -> URL for every backend the environment provides.
function H.backends()
  local list = {{name = "memory", url = "memory://spec"}}
  local r, m = os.getenv("STRATA_TEST_REDIS_URL"), os.getenv("STRATA_TEST_MEMCACHED_URL")
  list[#list + 1] = {name = "redis", url = r}
  list[#list + 1] = {name = "memcached", url = m}
  return list
end

-- describe(title .. b.name, function() body(b) end) for every backend (only the
-- names in `only`, when given); title may be a function(b) giving the whole name.
-- A backend the environment does not provide is one pending line.
function H.each_backend(title, body, only)
  -- busted gives each spec file an environment of its own, where describe lives
  local env = getfenv and getfenv(2) or _G
  for _, b in ipairs(H.backends()) do
    if not only or only[b.name] then
      env.describe(type(title) == "function" and title(b) or title .. b.name, function()
        if not b.url then
          env.pending(b.name .. " server not configured (run scripts/test-lua.sh)")
          return
        end
        body(b)
      end)
    end
  end
end

-- sc.new{url = b.url, ...opts}, asserted; with L1 on, once it may serve (on
-- redis, when its invalidation link is up: H.wait_link).
function H.open(b, opts)
  local o = {url = b.url}
  for k, v in pairs(opts or {}) do o[k] = v end
  local c = assert(require("stratacache").new(o))
  if o.l1 and b.name == "redis" then assert(H.wait_link(c), "the L1 invalidation link never came up") end
  return c
end

local counter = 0
-- Unique per interpreter run: scripts/test-lua.sh runs several at once on the same
-- servers. os.tmpname() makes a file no other process has (mkstemp), so its name is
-- unique where the clock and LuaJIT's predictable addresses (seeds) are not.
H.interpreter = rawget(_G, "jit") and "luajit" or _VERSION:gsub("Lua ", "lua")
local unique = os.tmpname()
os.remove(unique)
local run = ("%s-%d-%s"):format(H.interpreter, os.time(), unique:match("([^/]+)$"))
function H.key(prefix)
  counter = counter + 1
  return ("%s-%s-%d"):format(prefix, run, counter)
end

-- Calls f, which must raise; returns the message (which must contain want).
function H.raises(f, want)
  local ok, err = pcall(f)
  if ok then error("expected an error containing " .. ("%q"):format(want), 2) end
  err = tostring(err)
  if not err:find(want, 1, true) then
    error("error " .. ("%q"):format(err) .. " should contain " .. ("%q"):format(want), 2)
  end
  return err
end

-- Waits (at most 5 s) until c's L1 invalidation link is subscribed: on redis,
-- or with l1_bus, L1 serves only then (at creation, or a moment later on a
-- busy machine). Returns whether it came up.
function H.wait_link(c)
  for _ = 1, 500 do
    if c:stats().l1_link_up == 1 then return true end
    H.sleep(0.01)
  end
  return false
end

function H.sleep(s)
  require("stratacache").sleep(s)
end

-- Runs the functions as coroutines, round-robin, until all are done.
function H.run_coroutines(fns)
  local cos, results = {}, {}
  for i, f in ipairs(fns) do cos[i] = coroutine.create(f) end
  local live = #cos
  while live > 0 do
    live = 0
    for i, co in ipairs(cos) do
      if coroutine.status(co) == "suspended" then
        local r = {coroutine.resume(co)}
        if not r[1] then error("coroutine " .. i .. " failed: " .. tostring(r[2])) end
        if coroutine.status(co) == "dead" then results[i] = r end -- r[2], r[3], r[4]: what f returned
        live = live + 1
      end
    end
  end
  return results
end

return H
