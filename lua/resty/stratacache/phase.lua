-- Where a request may wait. Cosockets, ngx.sleep and semaphore waits are
-- disabled in these phases (BACKEND-FACTS, OpenResty): a call that would
-- need them returns ENOTSUP at once instead of raising or blocking.
local get_phase = ngx.get_phase

local _M = {}

local blocked = {init = true, init_worker = true, set = true, header_filter = true,
                 body_filter = true, log = true, balancer = true, exit_worker = true}

-- nil when the current phase may yield, else "ENOTSUP: <what> not available
-- in <phase>_by_lua*".
function _M.cannot_wait(what)
  local phase = get_phase()
  if blocked[phase] then
    return "ENOTSUP: " .. what .. " not available in " .. phase .. "_by_lua*"
  end
  return nil
end

return _M
