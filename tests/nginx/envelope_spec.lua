-- resty.stratacache's envelope helpers (the core's strata_envelope_* through
-- LuaJIT's FFI) against tests/vectors/envelope.txt, plus encode -> decode and
-- the verdicts. Plain LuaJIT, no nginx: scripts/test-nginx.sh runs it.
local envelope = require "resty.stratacache.envelope"
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local n, failures = 0, 0

local function check(cond, msg)
  n = n + 1
  if not cond then failures = failures + 1; io.stderr:write("FAIL: ", msg, "\n") end
end

local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end

for line in io.lines(here .. "/../vectors/envelope.txt") do
  if not line:find("^#") and line ~= "" then
    local hex, flags, created, fresh, stale, cost, payload = line:match(
      "^(%x+) (%d) (%d+) (%d+) (%d+) (%d+) (%S+)")
    local i = envelope.decode(unhex(hex), "k", 0)
    check(i ~= nil, "vector decodes: " .. hex:sub(1, 20))
    if i then
      check((i.negative == 1) == (tonumber(flags) % 2 == 1), "negative flag (bit 0 of " .. flags .. ")")
      check(tostring(i.created_ms) == created .. "LL", "created_ms " .. tostring(i.created_ms))
      check(tostring(i.fresh_until_ms) == fresh .. "LL", "fresh_until_ms")
      check(tostring(i.stale_until_ms) == stale .. "LL", "stale_until_ms")
      check(tonumber(i.cost_ms) == tonumber(cost), "cost_ms")
      check(envelope.payload(i) == (payload == "-" and "" or payload), "payload " .. payload)
    end
  end
end

-- foreign bytes are a miss, never an error
for _, junk in ipairs{"", "hello", ("\229SC\1"):rep(20), unhex("e5534301000000000000018bcfe568")} do
  check(envelope.decode(junk, "k", 1) == nil, "junk is not ours: " .. #junk .. " bytes")
end

-- encode -> decode, and the core's verdicts along the timeline
local now = 1700000000000
local bytes = assert(envelope.encode("value", false, now, 1000, 500, 0))
local i = assert(envelope.decode(bytes, "k", 1))
check(envelope.payload(i) == "value", "round trip payload")
check(envelope.verdict(i, now) == 0, "fresh at once")
check(envelope.verdict(i, now + 1200) == 3, "stale after ttl")
check(envelope.verdict(i, now + 1500) == 1, "expired after ttl + stale")
local neg = assert(envelope.decode(assert(envelope.encode(nil, true, now, 1000, 0, 0)), "k", 1))
check(envelope.verdict(neg, now) == 2, "negative")
-- XFetch: with a 200 ms load on a 1 s ttl the refresh point moves earlier
local xb = assert(envelope.encode("v", false, now, 1000, 0, 200))
local xi = assert(envelope.decode(xb, "k", 1))
local at = tonumber(xi.refresh_at_ms - now)
check(at <= 800 and at >= 0, "refresh_at at least one load time early: " .. at)
check(envelope.verdict(xi, now + at - 1) == 0 and envelope.verdict(xi, now + at) == 4, "early refresh from refresh_at")
-- a big value grows the reused buffer
local big = ("x"):rep(100000)
check(envelope.payload(assert(envelope.decode(assert(envelope.encode(big, false, now, 1, 0, 0)), "k", 0))) == big,
  "100 kB value")
local bad, err = envelope.encode("x", true, now, 1, 0, 0)
check(bad == nil and err:find("^EINVAL:"), "a negative entry with a payload: " .. tostring(err))

print(("envelope_spec: %d checks, %d failures"):format(n, failures))
os.exit(failures == 0 and 0 or 1)
