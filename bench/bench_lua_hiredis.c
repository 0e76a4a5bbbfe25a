/*
 * The raw-client baseline of bench/bench_lua.lua: a minimal hiredis GET for
 * Lua, built per Lua ABI by lua/CMakeLists.txt (-DSTRATA_LUA_BENCH=ON) and
 * never installed. It pays what stratacache's get pays on the Lua side (one
 * Lua C API call, one checked userdata, the reply pushed as a Lua string), so
 * the ratio between the two is what the library adds, not what Lua adds.
 *
 *   local raw = require "bench_lua_hiredis"
 *   local r = raw.connect("127.0.0.1", port)   -- raises on failure
 *   r:set(key, value); local v = r:get(key)    -- v is nil on a miss
 *   raw.now()                                   -- monotonic seconds (double)
 */
#define _POSIX_C_SOURCE 200809L
#include <hiredis/hiredis.h>
#include <lauxlib.h>
#include <lua.h>

#include <time.h>

#define RAW_MT "bench_lua_hiredis"

static redisContext **check_ctx(lua_State *L)
{
    redisContext **rc = (redisContext **)luaL_checkudata(L, 1, RAW_MT);
    if (*rc == NULL)
        luaL_argerror(L, 1, "connection is closed");
    return rc;
}

static redisReply *command(lua_State *L, redisContext *c, int argc, const char **argv,
                           const size_t *lens)
{
    redisReply *r = (redisReply *)redisCommandArgv(c, argc, argv, lens);
    if (r == NULL)
        luaL_error(L, "hiredis: %s", c->errstr);
    if (r->type == REDIS_REPLY_ERROR) {
        lua_pushlstring(L, r->str, r->len);
        freeReplyObject(r);
        lua_error(L);
    }
    return r;
}

static int l_get(lua_State *L)
{
    redisContext **rc = check_ctx(L);
    const char *argv[2] = {"GET", NULL};
    size_t lens[2] = {3, 0};
    redisReply *r;
    argv[1] = luaL_checklstring(L, 2, &lens[1]);
    r = command(L, *rc, 2, argv, lens);
    if (r->type == REDIS_REPLY_STRING)
        lua_pushlstring(L, r->str, r->len);
    else
        lua_pushnil(L);
    freeReplyObject(r);
    return 1;
}

static int l_set(lua_State *L)
{
    redisContext **rc = check_ctx(L);
    const char *argv[3] = {"SET", NULL, NULL};
    size_t lens[3] = {3, 0, 0};
    argv[1] = luaL_checklstring(L, 2, &lens[1]);
    argv[2] = luaL_checklstring(L, 3, &lens[2]);
    freeReplyObject(command(L, *rc, 3, argv, lens));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_gc(lua_State *L)
{
    redisContext **rc = (redisContext **)luaL_checkudata(L, 1, RAW_MT);
    if (*rc)
        redisFree(*rc);
    *rc = NULL;
    return 0;
}

static int l_connect(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    int port = (int)luaL_checkinteger(L, 2);
    redisContext **rc = (redisContext **)lua_newuserdata(L, sizeof *rc);
    *rc = NULL;
    luaL_getmetatable(L, RAW_MT);
    lua_setmetatable(L, -2);
    *rc = redisConnect(host, port);
    if (*rc == NULL || (*rc)->err)
        return luaL_error(L, "cannot connect to redis on %s:%d", host, port);
    return 1;
}

static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

int luaopen_bench_lua_hiredis(lua_State *L)
{
    luaL_newmetatable(L, RAW_MT);
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);
    lua_pushcfunction(L, l_get);
    lua_setfield(L, -2, "get");
    lua_pushcfunction(L, l_set);
    lua_setfield(L, -2, "set");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    lua_newtable(L);
    lua_pushcfunction(L, l_connect);
    lua_setfield(L, -2, "connect");
    lua_pushcfunction(L, l_now);
    lua_setfield(L, -2, "now");
    return 1;
}
