-- Worker-to-worker invalidation through a lua_shared_dict: an append-only log
-- of events numbered by dict:incr. Every worker applies the events it has not
-- seen yet; one it cannot read any more (expired, evicted, or written after
-- its number was taken) makes it flush its whole L1, because it may have
-- missed something. Events are "k<key>" (drop one key) and "f" (drop all).
local EVENT_TTL = 60 -- seconds an event stays readable
local MAX_BEHIND = 1000 -- further behind than this: flush instead of replaying

local _M = {}
local mt = {__index = _M}

function _M.new(dict, ns, evict, flush)
  local self = setmetatable({dict = dict, seq = ns .. "#E", prefix = ns .. "#E:",
                             evict = evict, flush = flush}, mt)
  self.seen = dict:get(self.seq) or 0
  return self
end

-- Records one event; returns true or nil, err. The own worker has applied it
-- already, so it moves its cursor past it when nothing came in between.
function _M:publish(event)
  local dict = self.dict
  local n, err = dict:incr(self.seq, 1, 0)
  if not n then return nil, "EBACKEND: shared dict incr: " .. tostring(err) end
  local ok, serr = dict:set(self.prefix .. n, event, EVENT_TTL)
  if not ok then return nil, "EBACKEND: shared dict set: " .. tostring(serr) end
  if n == self.seen + 1 then self.seen = n end
  return true
end

-- Applies the events other workers published since the last call.
function _M:poll()
  local dict, seen = self.dict, self.seen
  local cur = dict:get(self.seq) or 0
  if cur == seen then return 0 end
  self.seen = cur
  if cur < seen or cur - seen > MAX_BEHIND then
    self.flush()
    return cur - seen
  end
  local prefix = self.prefix
  for i = seen + 1, cur do
    local ev = dict:get(prefix .. i)
    if not ev or ev == "f" then
      self.flush()
      return cur - seen
    end
    self.evict(ev:sub(2))
  end
  return cur - seen
end

return _M
