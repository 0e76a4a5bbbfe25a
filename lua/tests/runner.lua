-- A tiny busted-compatible runner, for interpreters busted is not packaged for
-- (Debian's lua-busted runs under 5.1 only):
--   lua5.4 lua/tests/runner.lua lua/tests/api_spec.lua ...
-- Supports describe / it / pending / before_each / after_each / setup /
-- teardown and the luassert calls the specs use. Exits 1 on any failure.
local passed, failed, pending_n = 0, 0, 0
local failures = {}

local function fmt(v)
  if type(v) == "string" then return ("%q"):format(v) end
  return tostring(v)
end

local function fail(msg, level) error(msg, (level or 1) + 1) end

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local A = {}
function A.equal(want, got, msg)
  if want ~= got then fail((msg or "values differ") .. ": expected " .. fmt(want) .. ", got " .. fmt(got), 2) end
end
function A.same(want, got, msg)
  if not deep_equal(want, got) then fail((msg or "tables differ"), 2) end
end
function A.is_nil(v, msg) if v ~= nil then fail((msg or "expected nil") .. ", got " .. fmt(v), 2) end end
function A.is_not_nil(v, msg) if v == nil then fail(msg or "expected a value, got nil", 2) end end
function A.is_true(v, msg) if v ~= true then fail((msg or "expected true") .. ", got " .. fmt(v), 2) end end
function A.is_false(v, msg) if v ~= false then fail((msg or "expected false") .. ", got " .. fmt(v), 2) end end
function A.truthy(v, msg) if not v then fail((msg or "expected a truthy value") .. ", got " .. fmt(v), 2) end end
function A.falsy(v, msg) if v then fail((msg or "expected a falsy value") .. ", got " .. fmt(v), 2) end end
function A.has_error(f, want)
  local ok, err = pcall(f)
  if ok then fail("expected an error", 2) end
  if want ~= nil and err ~= want then fail("expected error " .. fmt(want) .. ", got " .. fmt(err), 2) end
end
A.are = {equal = A.equal, same = A.same}
A.is = {["nil"] = A.is_nil, truthy = A.truthy, falsy = A.falsy}
assert = setmetatable(A, {__call = function(_, v, msg, ...)
  if not v then error(msg or "assertion failed!", 2) end
  return v, msg, ...
end})

local stack = {} -- describe blocks: {name, before = {}, after = {}}

local function full_name(name)
  local parts = {}
  for _, b in ipairs(stack) do parts[#parts + 1] = b.name end
  parts[#parts + 1] = name
  return table.concat(parts, " ")
end

function describe(name, body)
  stack[#stack + 1] = {name = name, before = {}, after = {}, teardown = {}}
  local ok, err = pcall(body)
  local block = table.remove(stack)
  for _, f in ipairs(block.teardown) do pcall(f) end
  if not ok then
    failed = failed + 1
    failures[#failures + 1] = full_name(name) .. ": error in describe: " .. tostring(err)
  end
end
function before_each(f) table.insert(stack[#stack].before, f) end
function after_each(f) table.insert(stack[#stack].after, f) end
function setup(f) f() end
function teardown(f) table.insert(stack[#stack].teardown, f) end
lazy_setup, lazy_teardown, strict_setup, strict_teardown = setup, teardown, setup, teardown

function pending(name)
  pending_n = pending_n + 1
  io.write("  pending: ", full_name(name), "\n")
end

function it(name, body)
  local ok, err = true, nil
  for _, b in ipairs(stack) do
    for _, f in ipairs(b.before) do
      if ok then ok, err = pcall(f) end
    end
  end
  if ok then ok, err = xpcall(body, debug.traceback) end
  for i = #stack, 1, -1 do
    for _, f in ipairs(stack[i].after) do pcall(f) end
  end
  if ok then
    passed = passed + 1
  else
    failed = failed + 1
    failures[#failures + 1] = full_name(name) .. ": " .. tostring(err)
    io.write("  FAIL: ", full_name(name), "\n")
  end
end

for _, file in ipairs(arg) do
  local chunk, err = loadfile(file)
  if not chunk then
    failed = failed + 1
    failures[#failures + 1] = file .. ": " .. err
  else
    local ok, e = xpcall(chunk, debug.traceback)
    if not ok then
      failed = failed + 1
      failures[#failures + 1] = file .. ": " .. tostring(e)
    end
  end
end

for _, f in ipairs(failures) do io.write("\nFailure: ", f, "\n") end
local interp = rawget(_G, "jit") and jit.version or _VERSION
io.write(("\n%s: %d successes / %d failures / %d pending\n"):format(interp, passed, failed, pending_n))
os.exit(failed == 0 and 0 or 1)
