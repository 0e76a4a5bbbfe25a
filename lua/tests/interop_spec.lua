-- A value set from Lua is read by a C program on the public ABI, and back.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local H = require "helpers"
local sc = require "stratacache"

local C_SOURCE = [[
#include "stratacache.h"
#include <stdio.h>
#include <string.h>
/* interop URL KEY [VALUE]: prints what KEY holds, then sets KEY.c to VALUE */
int main(int argc, char **argv)
{
    strata_cache *c = NULL;
    strata_value v = STRATA_VALUE_INIT;
    int rc;
    if (argc < 3 || strata_cache_new(&c, argv[1], NULL) != 0) {
        printf("ERROR %s\n", strata_error_last());
        return 1;
    }
    rc = strata_get(c, argv[2], strlen(argv[2]), &v);
    if (rc == STRATA_OK)
        printf("HIT %zu %.*s\n", v.len, (int)v.len, v.data);
    else
        printf("RC %d\n", rc);
    if (argc > 3) {
        char k[512];
        snprintf(k, sizeof k, "%s.c", argv[2]);
        if (strata_set(c, k, strlen(k), argv[3], strlen(argv[3]), 0) != 0)
            printf("ERROR %s\n", strata_error_last());
    }
    strata_value_dispose(&v);
    strata_cache_free(c);
    return 0;
}
]]

-- Runs cmd; returns success and its output (5.1's popen gives no exit status).
local function sh(cmd)
  local p = io.popen("(" .. cmd .. ") 2>&1; echo \"exit=$?\"")
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.-)exit=(%d+)%s*$")
  return code == "0", body or out
end

describe("interop with C", function()
  local bin
  setup(function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(sh("mkdir -p " .. dir))
    local src = assert(io.open(dir .. "/interop.c", "w"))
    src:write(C_SOURCE)
    src:close()
    local root = H.root
    local cmd = ("cc -std=gnu99 -O0 -o %s/interop %s/interop.c -I%s/core/include -I%s/core/src " ..
      "$(find %s/core/src -name '*.c') $(pkg-config --cflags --libs hiredis libmemcached) -lpthread -lm")
      :format(dir, dir, root, root, root)
    local ok, out = sh(cmd)
    if ok then bin = dir .. "/interop" else io.stderr:write("interop build failed:\n", out, "\n") end
  end)

  for _, b in ipairs(H.backends()) do
    if b.name ~= "memory" then -- memory:// lives inside one process
      it("a value set from Lua is read by C on " .. b.name, function()
        if not b.url then return pending(b.name .. " server not configured") end
        assert.truthy(bin, "the C interop program did not build (see stderr)")
        local c = assert(sc.new{url = b.url, namespace = "interop"})
        local k = H.key("interop")
        assert.is_true(c:set(k, "set from lua"))
        local ok, out = sh(("%s %q %q %q"):format(bin, b.url .. "?ns=interop", k, "set from C"))
        assert.truthy(ok, out)
        assert.are.equal("HIT 12 set from lua\n", out)
        assert.are.equal("set from C", (c:get(k .. ".c")))
        c:close()
      end)
    end
  end
end)
