-- One loop for scripts/callgrind-lua.sh: N L1 hits of MODE on memory://?l1=1
-- (64 keys, 100-byte values), every key settled in L1 (and its string tier)
-- first. MODE: table (a Lua table lookup, the baseline) | get | get_or_load |
-- get_or_load_tags ({tags = ...} options).
--   lua5.4 bench/callgrind_lua.lua MODE N
local sc = require "stratacache"
local mode, n = arg[1], tonumber(arg[2] or "")
if not n then
  io.stderr:write("usage: callgrind_lua.lua table|get|get_or_load|get_or_load_tags N\n")
  os.exit(2)
end
local c = assert(sc.new{url = "memory://callgrind-lua", l1 = true, ttl = 600, l1_ttl = 600})
local keys, tbl, VALUE = {}, {}, string.rep("v", 100)
local function never() error("the loader must not run: every key is cached") end
local TAGS = {tags = {"callgrind-tag-a", "callgrind-tag-b"}}
for i = 1, 64 do
  keys[i] = "callgrind-lua-" .. i
  tbl[keys[i]] = VALUE
  assert(c:set(keys[i], VALUE))
  for _ = 1, 2 do
    assert(select(3, c:get(keys[i])) == 1 and select(3, c:get_or_load(keys[i], never)) == 1)
  end
end
local acc = 0
if mode == "table" then
  for i = 1, n do acc = acc + #tbl[keys[i % 64 + 1]] end
elseif mode == "get" then
  for i = 1, n do acc = acc + #c:get(keys[i % 64 + 1]) end
elseif mode == "get_or_load" then
  for i = 1, n do acc = acc + #c:get_or_load(keys[i % 64 + 1], never) end
elseif mode == "get_or_load_tags" then
  for i = 1, n do acc = acc + #c:get_or_load(keys[i % 64 + 1], TAGS, never) end
else
  error("unknown mode " .. tostring(mode))
end
assert(acc == n * #VALUE)
c:close()
