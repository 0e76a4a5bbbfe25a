-- Worker-to-worker invalidation through a lua_shared_dict: an append-only log
-- of events numbered by dict:incr. Every worker applies the events it has not
-- seen yet; one it cannot read any more (expired, evicted, or written after
-- its number was taken) makes it flush its whole L1, because it may have
-- missed something. Events are "k<key>" (drop one key) and "f" (drop all).
--
-- Whether there is anything to apply is one plain load per read (changed()):
-- every publisher stores its event's number, after the event, into a word of
-- the same shared memory zone (8 bytes of the dict's own slab pool, found by
-- every worker through an entry of the dict). Numbers come from dict:incr,
-- so no two stores write the same value: a word that differs from the last
-- one a worker saw means "poll", and a word that does not means nothing was
-- published since, even when two publishers' stores land out of order. A
-- shdict:get per read would cost ~90 ns (a C call the JIT cannot inline);
-- the load costs well under 1 ns, and a write in worker A is seen by the very
-- next read in worker B.
local ffi = require "ffi"

local C = ffi.C
local tonumber, tostring, pcall = tonumber, tostring, pcall

local EVENT_TTL = 60 -- seconds an event stays readable
local MAX_BEHIND = 1000 -- further behind than this: flush instead of replaying

-- The public nginx structs' first fields: ngx_shm_zone_t {data; ngx_shm_t
-- shm {addr; size; ...}}, and shm.addr is the zone's ngx_slab_pool_t.
for _, decl in ipairs{
  "void *ngx_http_lua_ffi_shdict_udata_to_zone(void *zone_udata);",
  "void *ngx_slab_calloc(void *pool, size_t size);",
  "typedef struct { void *data; char *addr; size_t size; } strata_ngx_shm_zone;",
} do pcall(ffi.cdef, decl) end

local _M = {}
local mt = {__index = _M}

-- The dict's shared word for key: made (zeroed, in the dict's slab pool) by
-- the first worker, found by the others. -> double* | nil, err
local function shared_word(dict, key)
  local ok, zone = pcall(function()
    return ffi.cast("strata_ngx_shm_zone*", C.ngx_http_lua_ffi_shdict_udata_to_zone(dict[1]))
  end)
  if not ok or zone == nil then return nil, "no shm zone behind the dict: " .. tostring(zone) end
  -- the layout check: the zone's size is the dict's capacity
  if tonumber(zone.size) ~= dict:capacity() then
    return nil, "unexpected ngx_shm_zone_t layout (size " .. tostring(zone.size) .. ")"
  end
  local lo, hi = tonumber(ffi.cast("uintptr_t", zone.addr)), tonumber(ffi.cast("uintptr_t", zone.addr + zone.size))
  local addr = dict:get(key)
  if not addr then
    local p = C.ngx_slab_calloc(zone.addr, 8)
    if p == nil then return nil, "no memory for 8 bytes" end
    local made = tonumber(ffi.cast("uintptr_t", p))
    local added, err = dict:add(key, made)
    if added then addr = made
    elseif err == "exists" then addr = dict:get(key) -- another worker was first (8 bytes left over)
    else return nil, "shared dict add: " .. tostring(err) end
  end
  if type(addr) ~= "number" or addr < lo or addr + 8 > hi then
    return nil, "entry " .. key .. " does not name a word of the zone: " .. tostring(addr)
  end
  return ffi.cast("double*", ffi.cast("uintptr_t", addr)), addr
end

-- -> ipc | nil, "EBACKEND: ..."
function _M.new(dict, ns, evict, flush)
  local self = setmetatable({dict = dict, seq = ns .. "#E", prefix = ns .. "#E:", word_key = ns .. "#E@",
                             evict = evict, flush = flush}, mt)
  local word, addr = shared_word(dict, self.word_key)
  if not word then return nil, "EBACKEND: shm_ipc's shared word: " .. addr end
  self.word, self.addr = word, addr
  self.word_seen = word[0]
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
  self.word[0] = n -- after the event: a reader that sees n can read it
  if n == self.seen + 1 then self.seen = n end
  -- keeps the word's entry recent in the dict's LRU (workers started later
  -- find the word through it) and puts it back if it was evicted anyway
  if dict:get(self.word_key) == nil then dict:add(self.word_key, self.addr) end
  return true
end

-- Whether another worker may have published since the last poll: one load.
function _M:changed()
  return self.word[0] ~= self.word_seen
end

-- Applies the events other workers published since the last call.
function _M:poll()
  self.word_seen = self.word[0] -- first: a store after this read is seen next time
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
