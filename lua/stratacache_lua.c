/*
 * stratacache for Lua 5.1 / LuaJIT and Lua 5.4: `local sc = require "stratacache"`.
 *
 * The C part wraps the public C ABI (stratacache.h) only; get_or_load and
 * sc.new's option handling are Lua (lua/stratacache/ .lua files, embedded at build time) over
 * the two-phase primitives, so loaders run in the caller's Lua code and may
 * yield. C never calls Lua from another thread: the library's own loader
 * callbacks are not used.
 *
 * Error shape (lua-resty-mlcache, luv): misuse raises with a message naming
 * the argument; a runtime failure returns nil, "ENAME: message"; a miss
 * returns nil; a hit returns value, nil, level; a negative hit returns
 * nil, nil, "negative".
 *
 * A cache userdata and its reused strata_value belong to one lua_State at a
 * time (the usual rule for Lua states); the strata_cache underneath is
 * thread-safe.
 *
 * API (times in seconds; strings are bytes):
 *   sc.new{url =, namespace =, ttl =, stale =, neg_ttl =, l1 =, ...} -> cache | nil, err
 *     every option of the URL query (docs/L1-COHERENCE.md, docs/TAGS.md):
 *     names ending in _ms take milliseconds as in the URL; ttl, stale, neg_ttl,
 *     timeout, connect_timeout, lock_wait, lease_ttl, l1_ttl, breaker_cooldown,
 *     tag_cache and coherence_ping are the same in seconds; booleans (l1,
 *     tracking) become 1/0; hot_threshold, hot_window, hot_sketch_width,
 *     hot_top are numbers; l1_admission is "all" | "hot" | "none"; l1_bus
 *     (memcached://) is a redis:// URL; the wb_* write-behind options as in
 *     the URL. A value the core refuses gives nil, "EOPTION: ...".
 *     Inside nginx a networked cache (redis://, memcached://, l1_bus) gives
 *     nil, "ENOTSUP: ..." pointing to resty.stratacache, because this module's
 *     I/O would freeze the worker (blocking_in_nginx = true accepts that);
 *     memory:// works, and its lease waits use ngx.sleep where the phase allows.
 *   cache:get(key) / set(key, value[, ttl[, tags]]) / delete / touch / invalidate
 *     get on an L1 cache hands out the same Lua string for each hit of one L1
 *     entry (the string tier, below; under LuaJIT plain.lua's FFI twin).
 *     set's tags: an array of at most 16 tag strings; the entry is stamped with
 *     their versions now (strata_set_ex).
 *   cache:invalidate_tag(tag): every entry stamped with tag before now misses
 *     (or reads stale when written with a stale allowance).
 *   cache:get_or_load(key, loader, ...) or get_or_load(key, {tags = {...}}, loader, ...)
 *     loader(...) returns value[, ttl] | sc.NOT_FOUND[, neg_ttl] | nil, err, or
 *     raises; it runs in the caller's Lua code and may yield. With tags, the
 *     lease ticket is stamped (strata_ticket_tags) right after the lookup,
 *     before the loader runs, so a bump that lands while the loader reads the
 *     source makes the fill read as bumped. Tags are not taken from the
 *     loader's return values: by then the versions would postdate the read.
 *     Every loader call counts in stats().loads / load_errors and the "load"
 *     histogram (strata_record_load, timed with CLOCK_MONOTONIC).
    On an L1 cache get_or_load(key, loader) serves L1 hits from get's string
    tier (on 5.4 from a C front, l_get_or_load, without a Lua call).
 *   cache:stats() -> table of every strata_stats v2 field, by its C name.
 *   cache:histogram("get" | "load" | "backend") -> {count =, sum_ns =, buckets =}
 *     buckets[i] counts calls of at most 2^(i-1) us (27, not cumulative).
 *   cache:prometheus() -> the Prometheus text exposition (docs/METRICS.md).
 *   cache:hot_keys([n = 10]) -> {{key =, count =, rate =}, ...}, hottest first;
 *     rate is reads per second; truncated = true for keys cut at 256 bytes;
 *     nil, "ENOTSUP: ..." with hot_sketch_width = 0.
 *   Write side (docs/WRITE-BEHIND.md); a write returns true, or true, nil,
 *   "invalidated" when the source/journal took it but the cache entry could
 *   only be invalidated (STRATA_INVALIDATED), or nil, err (ESTALE, EBUSY, ...):
 *   cache:write_behind(key, value[, ttl]): cache write + journal record.
 *   cache:wb_poll([max = 100]) -> batch | nil (nothing due) | nil, err; the
 *     pull API: batch.records = {{key =, value =, enqueued_ms =}, ...} (latest
 *     value per key); end each batch with batch:ack() or batch:fail([msg])
 *     (retry after wb_retry_ms, dead letter after wb_max_attempts). A batch
 *     collected unended is failed by its __gc; close() fails the open ones.
 *   cache:write_through(key, value, writer[, ttl]): writer(key, value) must
 *     return true (nil/false[, err] or a raise fail it: EUSER, cache
 *     untouched); then the cache is updated. The core calls the writer in the
 *     middle of strata_write_through, on the caller's thread and lua_State
 *     (never from a C thread), so it must not yield: a yield fails the write.
 *   cache:flush(timeout[, writer]): without a writer, strata_flush: wait until
 *     the backlog is empty (delivered by other consumers) or ETIMEOUT. With
 *     writer(records) -> true | nil, err, pull and deliver the batches here
 *     (the writer may yield) until the backlog is empty.
 *   No C writer is registered (wb_writer), so there are no flusher threads and
 *   close() does not drain: deliver with wb_poll or flush(timeout, writer).
 *   cache:_lookup(key) -> rc, value, level, ticket, wait_ms, err (two-phase);
 *     ticket:tags({...}) / fill(value[, ttl]) / fill_negative([neg_ttl]) / abandon().
 */
#define _POSIX_C_SOURCE 200809L
#include "stratacache.h"

#include <lauxlib.h>
#include <lua.h>

#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if LUA_VERSION_NUM < 502
#  define sl_rawlen(L, i) lua_objlen(L, i)
#else
#  define sl_rawlen(L, i) lua_rawlen(L, i)
#endif

/* Sets each function of l into the table at -1, as a closure over the value at
 * upvalue_idx (the metatable its self must have: see check_self). */
static void set_methods(lua_State *L, const luaL_Reg *l, int upvalue_idx)
{
    if (upvalue_idx < 0)
        upvalue_idx = lua_gettop(L) + 1 + upvalue_idx;
    for (; l->name; l++) {
        lua_pushvalue(L, upvalue_idx);
        lua_pushcclosure(L, l->func, 1);
        lua_setfield(L, -2, l->name);
    }
}

#define CACHE_MT "stratacache.cache"
#define TICKET_MT "stratacache.ticket"

#define BATCH_MT "stratacache.wb_batch"

typedef struct lticket lticket;
typedef struct lbatch lbatch;

typedef struct lcache {
    strata_cache *c;
    strata_value v;      /* reused by every read on this handle (value_take) */
    int v_busy;          /* a read is pushing from v */
    lticket *tickets;    /* live tickets, abandoned by close() */
    lbatch *batches;     /* write-behind batches not yet acked or failed */
    int in_writer;       /* write_through writers running: the C call is on the stack */
    int tier;            /* L1 on: get keeps value strings in the uservalue (l_get) */
    size_t tier_count;   /* strings kept there, and their bytes (with the keys) */
    uint64_t tier_bytes;
    uint64_t tier_max_count, tier_max_bytes; /* L1's own bounds (l1_max_entries, l1_max_bytes) */
} lcache;

/*
 * The cache whose get passed the full self check last, per Lua state (get's
 * upvalue 2): a get on it needs no metatable lookup. Only an open cache is
 * remembered, and its __gc forgets it, so the pointer never outlives the
 * userdata (__gc runs before the memory is freed, once, and leaves the cache
 * closed for good).
 */
typedef struct lstate {
    lcache *last;
} lstate;

/*
 * get_or_load's twin of it (_gol_lookup's upvalue 2): the cache that passed
 * its full self check last. get_or_load reads the tier from the cache's
 * uservalue, so it remembers no tier of its own; when its fill replaces the
 * tier it points get's upvalue 3 at the new one (get is its upvalue 3). ffi:
 * LuaJIT's plain.lua keeps the strings in its own tier, so the C tier is not
 * used and an L1 hit's entry version is returned instead (use_ffi_tier).
 */
typedef struct lgol_state {
    lcache *last;
    lstate *get;
    int ffi;
} lgol_state;

/* A write-behind batch from wb_poll; its uservalue is the records array. */
struct lbatch {
    strata_wb_batch *b;
    lcache *owner;
    lbatch *prev, *next;
};

#if LUA_VERSION_NUM >= 504
#  define sl_newuserdata1(L, sz) lua_newuserdatauv(L, sz, 1)
#  define sl_setuservalue(L, idx) lua_setiuservalue(L, idx, 1)
#  define sl_getuservalue(L, idx) lua_getiuservalue(L, idx, 1)
#elif LUA_VERSION_NUM >= 502
#  define sl_newuserdata1(L, sz) lua_newuserdata(L, sz)
#  define sl_setuservalue(L, idx) lua_setuservalue(L, idx)
#  define sl_getuservalue(L, idx) lua_getuservalue(L, idx)
#else /* 5.1: a userdata's environment table */
#  define sl_newuserdata1(L, sz) lua_newuserdata(L, sz)
#  define sl_setuservalue(L, idx) lua_setfenv(L, idx)
#  define sl_getuservalue(L, idx) lua_getfenv(L, idx)
#endif

struct lticket {
    strata_ticket *t;
    lcache *owner;
    lticket *prev, *next;
};

/* --- helpers --- */

static int push_error(lua_State *L, int code)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", strata_error_name(code), strata_error_last());
    return 2;
}

/*
 * luaL_checkudata without its registry lookup by name: every method holds its
 * metatable as upvalue 1 (this is the hot path of an L1 hit). The message is
 * luaL_checkudata's.
 */
static void *check_self(lua_State *L, const char *tname)
{
    void *p = lua_touserdata(L, 1);
    int ok = p != NULL && lua_type(L, 1) == LUA_TUSERDATA && lua_getmetatable(L, 1);
    if (ok) {
        ok = lua_rawequal(L, -1, lua_upvalueindex(1));
        lua_pop(L, 1);
    }
    if (!ok) {
        lua_pushfstring(L, "%s expected, got %s", tname, luaL_typename(L, 1));
        luaL_argerror(L, 1, lua_tostring(L, -1));
    }
    return p;
}

static lcache *check_cache(lua_State *L)
{
    lcache *lc = (lcache *)check_self(L, CACHE_MT);
    if (lc->c == NULL)
        luaL_argerror(L, 1, "cache is closed");
    return lc;
}

static const char *check_key(lua_State *L, int idx, size_t *len, const char *what)
{
    const char *k = NULL;
    if (lua_type(L, idx) != LUA_TSTRING || (k = lua_tolstring(L, idx, len), *len == 0)) {
        lua_pushfstring(L, "%s must be a non-empty string, got %s", what,
                        lua_type(L, idx) == LUA_TSTRING ? "an empty string" : luaL_typename(L, idx));
        luaL_argerror(L, idx, lua_tostring(L, -1));
    }
    return k;
}

static const char *check_value(lua_State *L, int idx, size_t *len)
{
    if (lua_type(L, idx) != LUA_TSTRING) {
        lua_pushfstring(L, "value must be a string, got %s", luaL_typename(L, idx));
        luaL_argerror(L, idx, lua_tostring(L, -1));
    }
    return lua_tolstring(L, idx, len);
}

/* Optional seconds -> ms; nil = 0 (the cache's default). At most ~1 year. */
static int64_t check_seconds(lua_State *L, int idx, const char *what)
{
    lua_Number s;
    if (lua_isnoneornil(L, idx))
        return 0;
    s = lua_tonumber(L, idx);
    if (lua_type(L, idx) != LUA_TNUMBER || !(s >= 0 && s <= 3.2e7)) { /* also NaN */
        if (lua_type(L, idx) == LUA_TNUMBER)
            lua_pushfstring(L, "%s must be a non-negative number of seconds (at most 32000000), got %s",
                            what, lua_tostring(L, idx));
        else
            lua_pushfstring(L, "%s must be a non-negative number of seconds, got %s", what, luaL_typename(L, idx));
        luaL_argerror(L, idx, lua_tostring(L, -1));
    }
    return (int64_t)(s * 1000.0 + 0.5);
}

/* An entry's TTL: nil = the cache's default, sc.FOREVER (math.huge) = never
 * expires; 0 is refused, as in Python and C's other callers (delete instead). */
static int64_t check_ttl(lua_State *L, int idx, const char *what)
{
    if (lua_type(L, idx) == LUA_TNUMBER && lua_tonumber(L, idx) == HUGE_VAL)
        return STRATA_TTL_FOREVER;
    if (lua_type(L, idx) == LUA_TNUMBER && lua_tonumber(L, idx) == 0) {
        lua_pushfstring(L, "%s=0 is refused (nil for the cache's default, stratacache.FOREVER for no expiry, "
                        "or delete the key)", what);
        luaL_argerror(L, idx, lua_tostring(L, -1));
    }
    return check_seconds(L, idx, what);
}

#define MAX_TAGS 16 /* docs/TAGS.md: an entry carries at most 16 tags */

/*
 * Reads the array of tag strings at idx into tags/lens (borrowed: the strings
 * stay anchored by the table). Returns NULL, or a message (pushed) naming the
 * bad item; the caller raises it. Tag lengths are the core's to check (EKEY).
 */
static const char *read_tags(lua_State *L, int idx, const char *what, const char **tags, size_t *lens,
                             size_t *n)
{
    size_t i, len;
    *n = 0;
    if (lua_type(L, idx) != LUA_TTABLE)
        return lua_pushfstring(L, "%s must be an array of strings, got %s", what, luaL_typename(L, idx));
    len = sl_rawlen(L, idx);
    if (len > MAX_TAGS)
        return lua_pushfstring(L, "%s has %d entries, at most %d are allowed", what, (int)len, MAX_TAGS);
    for (i = 0; i < len; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING || sl_rawlen(L, -1) == 0) {
            const char *got = lua_type(L, -1) == LUA_TSTRING ? "an empty string" : luaL_typename(L, -1);
            return lua_pushfstring(L, "%s[%d] must be a non-empty string, got %s", what, (int)i + 1, got);
        }
        tags[i] = lua_tolstring(L, -1, &lens[i]);
        lua_pop(L, 1);
    }
    *n = len;
    return NULL;
}

/* A counter: an integer on Lua 5.3+, a float (exact to 2^53) before. */
static void push_u64(lua_State *L, uint64_t x)
{
#if LUA_VERSION_NUM >= 503
    lua_pushinteger(L, (lua_Integer)x);
#else
    lua_pushnumber(L, (lua_Number)x);
#endif
}

static void push_value(lua_State *L, const strata_value *v)
{
    lua_pushlstring(L, v->data ? v->data : "", v->len);
}

static void push_level(lua_State *L, const strata_value *v)
{
    lua_pushinteger(L, v->stale ? STRATA_LEVEL_STALE : v->level);
}

/*
 * The handle's reused strata_value for one read, or *spare while another read
 * on this handle is still pushing from it: a finalizer may run inside a push
 * (LuaJIT collects before it copies the bytes) and read the same handle.
 * value_give ends the read. A raise in between (out of memory) leaves v busy:
 * later reads use spares, which costs a copy, never a wrong value.
 */
static strata_value *value_take(lcache *lc, strata_value *spare)
{
    strata_value blank = STRATA_VALUE_INIT;
    if (lc->v_busy) {
        *spare = blank;
        return spare;
    }
    lc->v_busy = 1;
    return &lc->v;
}

static void value_give(lcache *lc, strata_value *v)
{
    if (v == &lc->v)
        lc->v_busy = 0;
    else
        strata_value_dispose(v);
}

/* --- tickets --- */

static void ticket_unlink(lticket *tk)
{
    if (tk->owner == NULL)
        return;
    if (tk->prev)
        tk->prev->next = tk->next;
    else
        tk->owner->tickets = tk->next;
    if (tk->next)
        tk->next->prev = tk->prev;
    tk->owner = NULL;
    tk->prev = tk->next = NULL;
}

/* Takes the strata_ticket out of the userdata: the caller consumes it. */
static strata_ticket *ticket_take(lua_State *L, int idx)
{
    lticket *tk = (lticket *)luaL_checkudata(L, idx, TICKET_MT);
    strata_ticket *t = tk->t;
    if (t == NULL)
        luaL_argerror(L, idx, "ticket was already used or its cache was closed");
    tk->t = NULL;
    ticket_unlink(tk);
    return t;
}

static int l_ticket_fill(lua_State *L)
{
    strata_ticket *t;
    size_t len;
    const char *val = check_value(L, 2, &len);
    int64_t ttl = check_seconds(L, 3, "ttl");
    int rc;
    t = ticket_take(L, 1);
    if ((rc = strata_fill(t, val, len, ttl)) < 0)
        return push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_ticket_fill_negative(lua_State *L)
{
    int64_t ttl = check_seconds(L, 2, "neg_ttl");
    int rc;
    strata_ticket *t = ticket_take(L, 1);
    if ((rc = strata_fill_negative(t, ttl)) < 0)
        return push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* ticket:tags({tag, ...}): stamp the fill with these tags' versions, taken
 * now; call it before reading the source (docs/TAGS.md). */
static int l_ticket_tags(lua_State *L)
{
    lticket *tk = (lticket *)luaL_checkudata(L, 1, TICKET_MT);
    const char *tags[MAX_TAGS];
    size_t lens[MAX_TAGS], n;
    const char *msg = read_tags(L, 2, "tags", tags, lens, &n);
    int rc;
    if (msg)
        luaL_argerror(L, 2, msg);
    if (tk->t == NULL)
        luaL_argerror(L, 1, "ticket was already used or its cache was closed");
    if ((rc = strata_ticket_tags(tk->t, tags, lens, n)) < 0)
        return push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_ticket_abandon(lua_State *L)
{
    lticket *tk = (lticket *)luaL_checkudata(L, 1, TICKET_MT);
    if (tk->t != NULL)
        strata_abandon(ticket_take(L, 1));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_ticket_gc(lua_State *L)
{
    lticket *tk = (lticket *)luaL_checkudata(L, 1, TICKET_MT);
    if (tk->t != NULL) { /* dropped unused (e.g. a loader coroutine never resumed) */
        strata_abandon(tk->t);
        tk->t = NULL;
    }
    ticket_unlink(tk);
    return 0;
}

/* --- cache --- */

static void batch_unlink(lbatch *bt)
{
    if (bt->owner == NULL)
        return;
    if (bt->prev)
        bt->prev->next = bt->next;
    else
        bt->owner->batches = bt->next;
    if (bt->next)
        bt->next->prev = bt->prev;
    bt->owner = NULL;
    bt->prev = bt->next = NULL;
}

static void cache_close(lcache *lc)
{
    /* the core wants every batch ended before the cache is freed; failing
     * one hands its records out again later (or to another consumer) */
    while (lc->batches) {
        lbatch *bt = lc->batches;
        if (bt->b)
            strata_wb_fail(bt->b, "the cache was closed before the batch was acked");
        bt->b = NULL;
        batch_unlink(bt);
    }
    while (lc->tickets) {
        lticket *tk = lc->tickets;
        if (tk->t)
            strata_abandon(tk->t);
        tk->t = NULL;
        ticket_unlink(tk);
    }
    strata_value_dispose(&lc->v);
    strata_cache_free(lc->c);
    lc->c = NULL;
}

/* The URL query's name=<digits> (the core has accepted the URL), else dflt. */
static uint64_t url_flag(const char *url, const char *name, uint64_t dflt)
{
    const char *q = strchr(url, '?');
    size_t n = strlen(name);
    while (q != NULL) {
        q++;
        if (strncmp(q, name, n) == 0 && q[n] == '=' && q[n + 1] >= '0' && q[n + 1] <= '9')
            return strtoull(q + n + 1, NULL, 10);
        q = strchr(q, '&');
    }
    return dflt;
}

/* _new(url) -> cache | nil, err */

static int l_new(lua_State *L)
{
    size_t len;
    const char *url = luaL_checklstring(L, 1, &len);
    strata_cache *c = NULL;
    lcache *lc;
    int rc;
    if (strlen(url) != len) { /* the C API would read up to the NUL and drop the rest */
        lua_pushnil(L);
        lua_pushfstring(L, "EURL: URL contains a NUL byte at offset %d", (int)strlen(url));
        return 2;
    }
    if ((rc = strata_cache_new(&c, url, NULL)) < 0)
        return push_error(L, rc);
    lc = (lcache *)sl_newuserdata1(L, sizeof *lc);
    memset(lc, 0, sizeof *lc);
    lc->c = c;
    lc->tier = url_flag(url, "l1", 0) == 1;
    lc->tier_max_count = url_flag(url, "l1_max_entries", 100000);
    lc->tier_max_bytes = url_flag(url, "l1_max_bytes", 16u << 20);
    if (lc->tier) {
        lua_newtable(L);
        sl_setuservalue(L, -2);
    }
    luaL_getmetatable(L, CACHE_MT);
    lua_setmetatable(L, -2);
    return 1;
}

static int l_close(lua_State *L)
{
    lcache *lc = (lcache *)luaL_checkudata(L, 1, CACHE_MT);
    if (lc->in_writer) /* freeing the cache would pull it from under strata_write_through */
        return luaL_error(L, "stratacache: cannot close a cache inside its write_through writer");
    if (lc->c)
        cache_close(lc);
    return 0;
}

/* __gc (upvalues: the lstate, get, get_or_load's lgol_state): the caches get
 * and get_or_load remember, and get's tier, are forgotten before the memory
 * can go. */
static int l_gc(lua_State *L)
{
    lstate *st = (lstate *)lua_touserdata(L, lua_upvalueindex(1));
    lgol_state *gst = (lgol_state *)lua_touserdata(L, lua_upvalueindex(3));
    if (st->last == lua_touserdata(L, 1)) {
        st->last = NULL;
        lua_pushnil(L);
        lua_setupvalue(L, lua_upvalueindex(2), 3);
    }
    if (gst->last == lua_touserdata(L, 1))
        gst->last = NULL;
    return l_close(L);
}

static int l_isopen(lua_State *L)
{
    lcache *lc = (lcache *)luaL_checkudata(L, 1, CACHE_MT);
    lua_pushboolean(L, lc->c != NULL);
    return 1;
}

static int l_tostring(lua_State *L)
{
    lcache *lc = (lcache *)luaL_checkudata(L, 1, CACHE_MT);
    if (lc->c)
        lua_pushfstring(L, "stratacache.cache (%p)", (void *)lc);
    else
        lua_pushliteral(L, "stratacache.cache (closed)");
    return 1;
}

/* Pushes a read's outcome in the public shape. */
static int push_read(lua_State *L, int rc, const strata_value *v)
{
    switch (rc) {
    case STRATA_OK:
    case STRATA_HIT_STALE:
        push_value(L, v);
        lua_pushnil(L);
        push_level(L, v);
        return 3;
    case STRATA_NEGATIVE:
        lua_pushnil(L);
        lua_pushnil(L);
        lua_pushliteral(L, "negative");
        return 3;
    case STRATA_MISS:
        lua_pushnil(L);
        return 1;
    default:
        return push_error(L, rc < 0 ? rc : STRATA_EBACKEND);
    }
}

/*
 * The string tier of an L1 cache: get keeps each value's Lua string with the
 * version of the L1 entry it came from (strata_l1_get) and hands the same
 * string out again after one strata_l1_check, which decides as an L1 hit
 * would (expiry, invalidations from this and other processes, tag bumps,
 * writes, clear): no copy and no new string per hit, and exactly as coherent
 * as L1 (Lua strings cannot be mutated, so sharing them is safe).
 *
 * The cache's uservalue is the tier, {key = entry}: an entry is a small
 * userdata holding the version and a copy of the key (what strata_l1_check
 * takes), with the value string as its own uservalue, so a hit is one table
 * lookup. Only string keys that passed check_key are kept. The table is
 * replaced whole, by tier_keep only (get's upvalue 3 follows it), once what
 * it kept passes L1's own bounds (l1_max_entries, l1_max_bytes): the strings
 * of keys L1 dropped long ago are not kept beyond what L1 itself would hold.
 */
typedef struct tier_entry {
    uint64_t version;
    size_t klen;
    char key[1]; /* klen bytes */
} tier_entry;

#if LUA_VERSION_NUM >= 503 /* a uservalue may be any value */
#  define entry_set_value(L, idx) sl_setuservalue(L, idx)
#  define entry_push_value(L, idx) sl_getuservalue(L, idx)
#else /* 5.1, 5.2: a table, {value} */
static void entry_set_value(lua_State *L, int idx)
{
    idx = idx < 0 ? lua_gettop(L) + 1 + idx : idx;
    lua_createtable(L, 1, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    sl_setuservalue(L, idx);
}
#  define entry_push_value(L, idx) (sl_getuservalue(L, idx), lua_rawgeti(L, -1, 1), lua_remove(L, -2))
#endif

#if LUA_VERSION_NUM >= 503
#  define sl_rawget_type(L, idx) lua_rawget(L, idx)
#else
#  define sl_rawget_type(L, idx) (lua_rawget(L, idx), lua_type(L, -1))
#endif

/* get's upvalues: the cache metatable, the lstate, the remembered cache's tier. */
#define GET_STATE lua_upvalueindex(2)
#define GET_TIER lua_upvalueindex(3)

/* get's self check: the remembered cache at once, any other the full way
 * (which remembers it, with its tier as upvalue 3). */
static lcache *get_self(lua_State *L)
{
    lstate *st = (lstate *)lua_touserdata(L, GET_STATE);
    lcache *lc = (lcache *)lua_touserdata(L, 1);
    if (lc != NULL && lc == st->last && lc->c != NULL && lua_type(L, 1) == LUA_TUSERDATA)
        return lc;
    lc = check_cache(L);
    st->last = lc;
    if (lc->tier)
        sl_getuservalue(L, 1);
    else
        lua_pushnil(L);
    lua_replace(L, GET_TIER);
    return lc;
}

/* With the tier at tier_idx (an upvalue, or -2: the top before this call):
 * pushes the entry of the key at 2 and, while strata_l1_check says its L1 entry still
 * serves the key, its string, and returns 1; else 0 (entry or nil pushed). */
static inline __attribute__((always_inline)) int tier_hit(lua_State *L, lcache *lc, int tier_idx)
{
    lua_pushvalue(L, 2);
    if (sl_rawget_type(L, tier_idx) == LUA_TUSERDATA) { /* only checked keys are kept */
        const tier_entry *e = (const tier_entry *)lua_touserdata(L, -1);
        if (strata_l1_check(lc->c, e->key, e->klen, e->version) == STRATA_OK) {
            entry_push_value(L, -1);
            return 1;
        }
    }
    return 0;
}

/* Keeps the string at the top under key k (index 2) (stack unchanged), and
 * leaves the tier on the stack. The allocations here may run finalizers, and
 * a Lua one may call get on another cache, so the tier is the cache's
 * uservalue, and get's tier (upvalue 3) is set afterwards, by the caller
 * (tier_keep_get, tier_keep_gol), only while lc is still the cache get
 * remembers. */
static void tier_keep(lua_State *L, lcache *lc, const char *k, size_t klen, uint64_t version)
{
    tier_entry *e;
    lc->tier_bytes += klen + sl_rawlen(L, -1);
    if (++lc->tier_count > lc->tier_max_count || lc->tier_bytes > lc->tier_max_bytes) {
        lc->tier_count = 1;
        lc->tier_bytes = klen + sl_rawlen(L, -1);
        lua_newtable(L);
        sl_setuservalue(L, 1);
    }
    sl_getuservalue(L, 1);
    lua_pushvalue(L, 2);
    e = (tier_entry *)sl_newuserdata1(L, offsetof(tier_entry, key) + klen);
    e->version = version;
    e->klen = klen;
    memcpy(e->key, k, klen);
    lua_pushvalue(L, -4);
    entry_set_value(L, -2);
    lua_rawset(L, -3);
}

/* tier_keep from get. */
static void tier_keep_get(lua_State *L, lcache *lc, const char *k, size_t klen, uint64_t version)
{
    tier_keep(L, lc, k, klen, version);
    if (((lstate *)lua_touserdata(L, GET_STATE))->last == lc)
        lua_replace(L, GET_TIER);
    else
        lua_pop(L, 1);
}

static int l_get(lua_State *L)
{
    lcache *lc = get_self(L);
    strata_value spare, *v;
    size_t klen;
    const char *k;
    int rc, n;
    if (lc->tier) {
        uint64_t version = 0;
        if (tier_hit(L, lc, GET_TIER)) {
            lua_pushnil(L);
            lua_pushinteger(L, STRATA_LEVEL_L1);
            return 3;
        }
        k = check_key(L, 2, &klen, "key");
        lua_settop(L, 2);
        v = value_take(lc, &spare);
        rc = strata_l1_get(lc->c, k, klen, v, &version);
        if (rc == STRATA_OK && version) {
            push_value(L, v);
            lua_pushnil(L);
            push_level(L, v);
            value_give(lc, v);
            lua_pushvalue(L, -3);
            tier_keep_get(L, lc, k, klen, version);
            lua_pop(L, 1);
            return 3;
        }
        if (rc == STRATA_MISS)
            rc = strata_get(lc->c, k, klen, v);
    } else {
        k = check_key(L, 2, &klen, "key");
        v = value_take(lc, &spare);
        rc = strata_get(lc->c, k, klen, v);
    }
    n = push_read(L, rc, v);
    value_give(lc, v);
    return n;
}

static int l_set(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t klen, vlen;
    const char *k = check_key(L, 2, &klen, "key");
    const char *val = check_value(L, 3, &vlen);
    int64_t ttl = check_ttl(L, 4, "ttl");
    int rc;
    if (lua_isnoneornil(L, 5)) {
        rc = strata_set(lc->c, k, klen, val, vlen, ttl);
    } else {
        const char *tags[MAX_TAGS];
        size_t lens[MAX_TAGS];
        size_t n;
        strata_set_options o;
        const char *msg = read_tags(L, 5, "tags", tags, lens, &n);
        if (msg)
            luaL_argerror(L, 5, msg);
        strata_set_options_init(&o, STRATA_SET_OPTIONS_VERSION);
        o.ttl_ms = ttl;
        o.tags = tags;
        o.taglens = lens;
        o.ntags = n;
        rc = strata_set_ex(lc->c, k, klen, val, vlen, &o);
    }
    if (rc < 0)
        return push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* true when something was there, false when nothing was. */
static int l_delete(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t klen;
    const char *k = check_key(L, 2, &klen, "key");
    int rc = strata_delete(lc->c, k, klen);
    if (rc < 0)
        return push_error(L, rc);
    lua_pushboolean(L, rc == 0);
    return 1;
}

static int l_touch(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t klen;
    const char *k = check_key(L, 2, &klen, "key");
    int64_t ttl = check_ttl(L, 3, "ttl");
    int rc = strata_touch(lc->c, k, klen, ttl);
    if (rc < 0)
        return push_error(L, rc);
    lua_pushboolean(L, rc == 0);
    return 1;
}

static int l_invalidate(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t klen;
    const char *k = check_key(L, 2, &klen, "key");
    int rc = strata_invalidate(lc->c, k, klen);
    if (rc < 0)
        return push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_invalidate_tag(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t tlen;
    const char *tag = check_key(L, 2, &tlen, "tag");
    int rc = strata_invalidate_tag(lc->c, tag, tlen);
    if (rc < 0)
        return push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* Scratch arrays for the batch calls, freed by __gc if Lua raises midway. */
typedef struct batch {
    size_t n;
    const char **keys, **vals;
    size_t *klens, *vlens;
    strata_value *outs;
    int *results;
} batch;

static int l_batch_gc(lua_State *L)
{
    batch *b = (batch *)lua_touserdata(L, 1);
    size_t i;
    for (i = 0; b->outs && i < b->n; i++)
        strata_value_dispose(&b->outs[i]);
    free(b->keys);
    free(b->vals);
    free(b->klens);
    free(b->vlens);
    free(b->outs);
    free(b->results);
    memset(b, 0, sizeof *b);
    return 0;
}

static batch *new_batch(lua_State *L, size_t n, int with_vals, int with_outs)
{
    batch *b = (batch *)lua_newuserdata(L, sizeof *b);
    size_t m = n ? n : 1;
    memset(b, 0, sizeof *b);
    lua_newtable(L);
    lua_pushcfunction(L, l_batch_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    b->keys = (const char **)calloc(m, sizeof *b->keys);
    b->klens = (size_t *)calloc(m, sizeof *b->klens);
    if (with_vals) {
        b->vals = (const char **)calloc(m, sizeof *b->vals);
        b->vlens = (size_t *)calloc(m, sizeof *b->vlens);
    }
    if (with_outs) {
        b->outs = (strata_value *)calloc(m, sizeof *b->outs);
        b->results = (int *)calloc(m, sizeof *b->results);
    }
    b->n = n;
    if (!b->keys || !b->klens || (with_vals && (!b->vals || !b->vlens)) ||
        (with_outs && (!b->outs || !b->results)))
        luaL_error(L, "stratacache: out of memory");
    return b;
}

static void batch_done(lua_State *L, int idx)
{
    lua_pushcfunction(L, l_batch_gc);
    lua_pushvalue(L, idx);
    lua_call(L, 1, 0);
}

/* get_many({k1, k2, ...}) -> {k = value} for the hits; nil, err */
static int l_get_many(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t n, i;
    batch *b;
    int rc, bidx;
    if (!lua_istable(L, 2))
        luaL_argerror(L, 2, "keys must be a table (an array of strings)");
    n = sl_rawlen(L, 2);
    b = new_batch(L, n, 0, 1);
    bidx = lua_gettop(L);
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, 2, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING || sl_rawlen(L, -1) == 0) {
            lua_pushfstring(L, "keys[%d] must be a non-empty string, got %s", (int)i + 1,
                            lua_type(L, -1) == LUA_TSTRING ? "an empty string" : luaL_typename(L, -1));
            luaL_argerror(L, 2, lua_tostring(L, -1));
        }
        b->keys[i] = lua_tolstring(L, -1, &b->klens[i]); /* anchored by the keys table */
        lua_pop(L, 1);
    }
    rc = strata_get_many(lc->c, n, b->keys, b->klens, b->outs, b->results);
    if (rc < 0) {
        rc = push_error(L, rc);
        batch_done(L, bidx);
        return rc;
    }
    lua_createtable(L, 0, (int)n);
    for (i = 0; i < n; i++) {
        if (b->results[i] == STRATA_OK || b->results[i] == STRATA_HIT_STALE) {
            lua_pushlstring(L, b->keys[i], b->klens[i]);
            push_value(L, &b->outs[i]);
            lua_rawset(L, -3);
        }
    }
    batch_done(L, bidx);
    return 1;
}

/* set_many({k = v, ...}, ttl) -> true | nil, err (all or nothing) */
static int l_set_many(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t n = 0, i = 0;
    int64_t ttl;
    batch *b;
    int rc, bidx;
    if (!lua_istable(L, 2))
        luaL_argerror(L, 2, "items must be a table of key = value strings");
    ttl = check_ttl(L, 3, "ttl");
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        n++;
        lua_pop(L, 1);
    }
    b = new_batch(L, n, 1, 0);
    bidx = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) != LUA_TSTRING || sl_rawlen(L, -2) == 0) {
            lua_pushfstring(L, "items keys must be non-empty strings, got %s",
                            lua_type(L, -2) == LUA_TSTRING ? "an empty string" : luaL_typename(L, -2));
            luaL_argerror(L, 2, lua_tostring(L, -1));
        }
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pushfstring(L, "items[\"%s\"] must be a string, got %s", lua_tostring(L, -2),
                            luaL_typename(L, -1));
            luaL_argerror(L, 2, lua_tostring(L, -1));
        }
        b->keys[i] = lua_tolstring(L, -2, &b->klens[i]);
        b->vals[i] = lua_tolstring(L, -1, &b->vlens[i]);
        i++;
        lua_pop(L, 1);
    }
    rc = strata_set_many(lc->c, n, b->keys, b->klens, b->vals, b->vlens, ttl);
    batch_done(L, bidx);
    if (rc < 0)
        return push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_stats(lua_State *L)
{
    lcache *lc = check_cache(L);
    strata_stats st;
    int rc;
    memset(&st, 0, sizeof st);
    if ((rc = strata_stats_get(lc->c, &st, STRATA_STATS_VERSION)) < 0)
        return push_error(L, rc);
    lua_createtable(L, 0, 24);
#define F(name) push_u64(L, st.name); lua_setfield(L, -2, #name)
    F(l1_hits); F(l1_misses); F(l1_entries); F(l1_bytes); F(l1_evictions);
    F(hits); F(misses); F(negative_hits); F(stale_hits);
    F(sets); F(deletes); F(loads); F(load_errors);
    F(backend_errors); F(timeouts);
    F(leases_won); F(leases_lost); F(waits); F(early_refreshes);
    F(singleflight_shared); F(breaker_opens); F(fail_open);
    F(breaker_state); F(tag_invalidations); F(tag_stale); F(tag_fetches);
    F(invalidations_received); F(l1_flushes); F(l1_admission_rejects); F(l1_link_up);
    F(wb_enqueued); F(wb_flushed); F(wb_retried); F(wb_dead); F(wb_backlog);
    F(wb_journal_skipped); F(wb_dead_trimmed);
    F(payload_crc_errors);
    F(l1_fills_refused);
    F(l1_renewals); F(l1_renew_batches);
#undef F
    return 1;
}

/*
 * histogram("get" | "load" | "backend") -> {count =, sum_ns =, buckets = {...}}
 * buckets[i] (1-based, not cumulative) counts calls that took at most
 * 2^(i-1) microseconds; the last one counts the rest.
 */
static int l_histogram(lua_State *L)
{
    static const char *const kinds[] = {"get", "load", "backend", NULL};
    lcache *lc = check_cache(L);
    strata_histogram h;
    const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    int kind = -1, rc, i;
    for (i = 0; name && kinds[i]; i++)
        if (strcmp(name, kinds[i]) == 0)
            kind = i; /* the order of strata_histogram_kind */
    if (kind < 0) {
        if (name)
            lua_pushfstring(L, "kind must be 'get', 'load' or 'backend', got '%s'", name);
        else
            lua_pushfstring(L, "kind must be 'get', 'load' or 'backend', got %s", luaL_typename(L, 2));
        luaL_argerror(L, 2, lua_tostring(L, -1));
    }
    if ((rc = strata_stats_histogram(lc->c, kind, &h)) < 0)
        return push_error(L, rc);
    lua_createtable(L, 0, 3);
    push_u64(L, h.count);
    lua_setfield(L, -2, "count");
    push_u64(L, h.sum_ns);
    lua_setfield(L, -2, "sum_ns");
    lua_createtable(L, STRATA_HISTOGRAM_BUCKETS, 0);
    for (i = 0; i < STRATA_HISTOGRAM_BUCKETS; i++) {
        push_u64(L, h.buckets[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "buckets");
    return 1;
}

/* prometheus() -> the text exposition (docs/METRICS.md) | nil, err */
static int l_prometheus(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t cap = 16384, needed = 0;
    int rc, tries;
    for (tries = 0; tries < 4; tries++) {
        /* scratch owned by Lua's GC, so nothing leaks if pushing raises */
        char *buf = (char *)lua_newuserdata(L, cap);
        rc = strata_stats_prometheus(lc->c, buf, cap, &needed);
        if (rc == 0) {
            lua_pushstring(L, buf);
            return 1;
        }
        lua_pop(L, 1);
        if (rc != STRATA_ETOOBIG)
            return push_error(L, rc);
        cap = needed + 1024; /* counters may gain digits before the next try */
    }
    return push_error(L, rc);
}

/* hot_keys([n = 10]) -> {{key =, count =, rate =}, ...}, hottest first | nil, err
 * A key longer than 256 bytes comes as its first 256 with truncated = true. */
static int l_hot_keys(lua_State *L)
{
    lcache *lc = check_cache(L);
    lua_Number want = 10;
    strata_hot_key *out;
    size_t n, count = 0, i;
    int rc;
    if (!lua_isnoneornil(L, 2)) {
        want = lua_tonumber(L, 2);
        if (lua_type(L, 2) != LUA_TNUMBER || !(want >= 1 && want <= 1024) || want != (lua_Number)(int)want) {
            if (lua_type(L, 2) == LUA_TNUMBER)
                lua_pushfstring(L, "n must be an integer from 1 to 1024, got %s", lua_tostring(L, 2));
            else
                lua_pushfstring(L, "n must be an integer from 1 to 1024, got %s", luaL_typename(L, 2));
            luaL_argerror(L, 2, lua_tostring(L, -1));
        }
    }
    n = (size_t)want;
    out = (strata_hot_key *)lua_newuserdata(L, n * sizeof *out);
    if ((rc = strata_hot_keys(lc->c, n, out, &count)) < 0)
        return push_error(L, rc);
    lua_createtable(L, (int)count, 0);
    for (i = 0; i < count; i++) {
        lua_createtable(L, 0, 3);
        lua_pushlstring(L, out[i].key, out[i].keylen);
        lua_setfield(L, -2, "key");
        push_u64(L, out[i].count);
        lua_setfield(L, -2, "count");
        lua_pushnumber(L, out[i].rate_per_s);
        lua_setfield(L, -2, "rate");
        if (out[i].keylen < out[i].full_keylen) {
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "truncated");
        }
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* _load_clock() -> a monotonic timestamp in ns, for _record_load. */
static int l_load_clock(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)mono_ns());
    return 1;
}

/*
 * _record_load(self, failed, t0): get_or_load calls its loaders itself, so it
 * counts each call here, as strata_get_or_load does for its own (stats loads,
 * load_errors, the load histogram). A handle closed meanwhile counts nothing.
 */
static int l_record_load(lua_State *L)
{
    lcache *lc = (lcache *)check_self(L, CACHE_MT);
    int64_t d = mono_ns() - (int64_t)lua_tonumber(L, 3);
    if (lc->c != NULL)
        strata_record_load(lc->c, lua_toboolean(L, 2), d > 0 ? d : 0);
    return 0;
}

/* Tags to stamp on a lookup's ticket, if it gets one. */
typedef struct tagset {
    const char *tags[MAX_TAGS];
    size_t lens[MAX_TAGS];
    size_t n;
} tagset;

/*
 * Looks key up; pushes rc, value, level, ticket, wait_ms, err (see _lookup).
 * With tags, a ticket is stamped at once, before any loader reads the source;
 * if stamping fails the ticket is given back and rc is the error.
 */
static int lookup_push(lua_State *L, lcache *lc, const char *k, size_t klen, const tagset *ts)
{
    strata_ticket *t = NULL;
    strata_value spare, *v = value_take(lc, &spare);
    int rc = strata_lookup(lc->c, k, klen, v, &t);
    int64_t wait_ms;
    if (t != NULL && ts != NULL) {
        int trc = strata_ticket_tags(t, ts->tags, ts->lens, ts->n);
        if (trc < 0) {
            strata_abandon(t);
            t = NULL;
            rc = trc;
        }
    }
    lua_pushinteger(L, rc);
    if (rc == STRATA_OK || rc == STRATA_HIT_STALE || rc == STRATA_HIT_REFRESH) {
        push_value(L, v);
        push_level(L, v);
        if (t == NULL && rc != STRATA_HIT_REFRESH) {
            value_give(lc, v);
            return 3; /* a plain hit: the rest would be nils */
        }
    } else {
        lua_pushnil(L);
        lua_pushnil(L);
    }
    if (t != NULL) {
        lticket *tk = (lticket *)lua_newuserdata(L, sizeof *tk);
        tk->t = t;
        tk->owner = lc;
        tk->prev = NULL;
        tk->next = lc->tickets;
        if (lc->tickets)
            lc->tickets->prev = tk;
        lc->tickets = tk;
        luaL_getmetatable(L, TICKET_MT);
        lua_setmetatable(L, -2);
    } else {
        lua_pushnil(L);
    }
    wait_ms = v->wait_ms;
    value_give(lc, v);
    if (rc == STRATA_MISS_WAIT)
        lua_pushnumber(L, (lua_Number)wait_ms);
    else
        lua_pushnil(L);
    if (rc < 0)
        lua_pushfstring(L, "%s: %s", strata_error_name(rc), strata_error_last());
    else
        lua_pushnil(L);
    return 6;
}

/*
 * _lookup(key) -> rc, value, level, ticket, wait_ms, err
 * The two-phase primitive: rc is the strata_code; a ticket comes with
 * MISS_LEAD and HIT_REFRESH. A plain hit returns rc, value, level only.
 */
static int l_lookup(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t klen;
    const char *k = check_key(L, 2, &klen, "key");
    return lookup_push(L, lc, k, klen, NULL);
}

/* Raises msg as the misuse of fname, a method written in Lua that called
 * this C helper, at its caller's line (what error(msg, 3) there would give). */
#if LUA_VERSION_NUM >= 503
static int l_get_or_load(lua_State *L);
#endif

/* The level of the Lua method's caller: 2 (0 = this function, 1 = the Lua
 * method), or 3 when the method was called by get_or_load's C front
 * (l_get_or_load), which is the method the user called. */
static int method_caller(lua_State *L)
{
    int level = 2;
#if LUA_VERSION_NUM >= 503
    lua_Debug ar;
    if (lua_getstack(L, 2, &ar) && lua_getinfo(L, "f", &ar)) {
        if (lua_tocfunction(L, -1) == l_get_or_load)
            level = 3;
        lua_pop(L, 1);
    }
#else
    (void)L;
#endif
    return level;
}

static int wrapped_error(lua_State *L, const char *fname, int arg, const char *msg)
{
    luaL_where(L, method_caller(L));
    if (arg == 0)
        lua_pushfstring(L, "calling '%s' on bad self (%s)", fname, msg);
    else
        lua_pushfstring(L, "bad argument #%d to '%s' (%s)", arg, fname, msg);
    lua_concat(L, 2);
    return lua_error(L);
}

/* The open cache at 1 for fname, a method written in Lua over this C helper;
 * anything else raises as that method's misuse (wrapped_error). */
static lcache *wrapped_cache(lua_State *L, const char *fname)
{
    lcache *lc = (lcache *)lua_touserdata(L, 1);
    int ok = lc != NULL && lua_type(L, 1) == LUA_TUSERDATA && lua_getmetatable(L, 1);
    if (ok) {
        ok = lua_rawequal(L, -1, lua_upvalueindex(1));
        lua_pop(L, 1);
    }
    if (!ok)
        wrapped_error(L, fname, 0, lua_pushfstring(L, "%s expected, got %s", CACHE_MT, luaL_typename(L, 1)));
    if (lc->c == NULL) /* first, as check_cache does for the other methods */
        wrapped_error(L, fname, 0, "cache is closed");
    return lc;
}

/* The key at 2 for fname, as wrapped_cache: a non-empty string. */
static const char *wrapped_key(lua_State *L, const char *fname, size_t *klen)
{
    const char *k = NULL;
    if (lua_type(L, 2) != LUA_TSTRING || (k = lua_tolstring(L, 2, klen), *klen == 0))
        wrapped_error(L, fname, 1, lua_pushfstring(L, "key must be a non-empty string, got %s",
                                                   lua_type(L, 2) == LUA_TSTRING ? "an empty string"
                                                                                 : luaL_typename(L, 2)));
    return k;
}

static int gol_error(lua_State *L, int arg, const char *msg)
{
    return wrapped_error(L, "get_or_load", arg, msg);
}

/*
 * _get_fill(self, key) -> get's results, plus the L1 entry version when the
 * value came from L1 (nil otherwise), plus l1_max_entries and l1_max_bytes:
 * the C half of LuaJIT's get (plain.lua), which keeps the strings in a Lua
 * table and checks them through the FFI (strata_l1_check), compiled by the
 * JIT. Misuse raises as get's own.
 */
static int l_get_fill(lua_State *L)
{
    lcache *lc = wrapped_cache(L, "get");
    strata_value spare, *v;
    uint64_t version = 0;
    size_t klen = 0;
    const char *k = wrapped_key(L, "get", &klen);
    int rc, n;
    lua_settop(L, 2);
    v = value_take(lc, &spare);
    rc = lc->tier ? strata_l1_get(lc->c, k, klen, v, &version) : STRATA_MISS;
    if (rc == STRATA_MISS)
        rc = strata_get(lc->c, k, klen, v);
    n = push_read(L, rc, v);
    value_give(lc, v);
    if (rc != STRATA_OK || version == 0)
        return n;
    lua_pushnumber(L, (lua_Number)version); /* < 2^53: exact in a double */
    lua_pushnumber(L, (lua_Number)lc->tier_max_count);
    lua_pushnumber(L, (lua_Number)lc->tier_max_bytes);
    return 6;
}

static int gol_l1_read(lua_State *L, lcache *lc, const lgol_state *st, const tagset *ts);

/* _gol_lookup with options at 3 and the loader at 4; the only option is tags. */
static int gol_lookup_opts(lua_State *L, lcache *lc, const lgol_state *st, const char *k, size_t klen)
{
    tagset ts;
    const char *msg;
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "tags") != 0)
            return gol_error(L, 2, lua_pushfstring(L, "unknown option %s%s (options are: tags)",
                                                   lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "of type ",
                                                   lua_type(L, -1) == LUA_TSTRING ? "" : luaL_typename(L, -1)));
    }
    if (lua_type(L, 4) != LUA_TFUNCTION)
        return gol_error(L, 3, lua_pushfstring(L, "loader must be a function, got %s", luaL_typename(L, 4)));
    lua_getfield(L, 3, "tags");
    if (lua_isnil(L, -1)) {
        ts.n = 0;
    } else if ((msg = read_tags(L, lua_gettop(L), "options.tags", ts.tags, ts.lens, &ts.n)) != NULL) {
        return gol_error(L, 2, msg);
    }
    /* the tag strings stay anchored by the options table at 3 */
    if (lc->tier && !st->ffi) /* LuaJIT's FFI tier serves the loader form only */
        return gol_l1_read(L, lc, st, ts.n ? &ts : NULL);
    return lookup_push(L, lc, k, klen, ts.n ? &ts : NULL);
}

/* _gol_lookup's upvalues: the cache metatable, its lgol_state, get. */
#define GOL_STATE lua_upvalueindex(2)
#define GOL_GET lua_upvalueindex(3)

/* tier_keep from get_or_load: get's tier follows the cache's while get
 * remembers lc (get's own keep does the same). */
static void tier_keep_gol(lua_State *L, lcache *lc, const char *k, size_t klen, uint64_t version)
{
    tier_keep(L, lc, k, klen, version);
    if (((lgol_state *)lua_touserdata(L, GOL_STATE))->get->last == lc)
        lua_setupvalue(L, GOL_GET, 3);
    else
        lua_pop(L, 1);
}

/*
 * get_or_load(key[, options], loader) on an L1 cache (options checked
 * already; their tags stamp a ticket, which a hit has none of): the string
 * tier first, as get
 * (0, value, 1 after one strata_l1_check), then L1 (the string kept in the
 * tier; under LuaJIT's FFI tier its entry version, l1_max_entries and
 * l1_max_bytes returned after the 6 values instead), then strata_lookup. An L1 entry is served until L1's own
 * serve-until (min(l1_ttl, fresh_until)) and strata_lookup never refreshes
 * early from L1, so the check decides exactly as the lookup did: once the
 * entry stops serving, the read goes to strata_lookup, which decides XFetch,
 * stale-while-revalidate and the lease from the stored envelope.
 */
static int gol_l1_read(lua_State *L, lcache *lc, const lgol_state *st, const tagset *ts)
{
    strata_value spare, *v;
    uint64_t version = 0;
    size_t klen = 0;
    const char *k;
    int rc;
    if (!st->ffi) {
        lua_pushinteger(L, STRATA_OK);
        sl_getuservalue(L, 1);
        if (tier_hit(L, lc, -2)) { /* OK, tier, entry, value */
            lua_replace(L, -3);
            lua_pushinteger(L, STRATA_LEVEL_L1);
            lua_replace(L, -2);
            return 3;
        }
    }
    k = wrapped_key(L, "get_or_load", &klen);
    lua_settop(L, 3);
    v = value_take(lc, &spare);
    rc = strata_l1_get(lc->c, k, klen, v, &version);
    if (rc == STRATA_OK && version) {
        lua_pushinteger(L, STRATA_OK);
        push_value(L, v);
        push_level(L, v);
        value_give(lc, v);
        if (st->ffi) {
            lua_pushnil(L);
            lua_pushnil(L);
            lua_pushnil(L);
            lua_pushnumber(L, (lua_Number)version); /* < 2^53: exact in a double */
            lua_pushnumber(L, (lua_Number)lc->tier_max_count);
            lua_pushnumber(L, (lua_Number)lc->tier_max_bytes);
            return 9;
        }
        lua_pushvalue(L, -2);
        tier_keep_gol(L, lc, k, klen, version);
        lua_pop(L, 1);
        return 3;
    }
    value_give(lc, v);
    if (rc == STRATA_NEGATIVE) { /* as strata_lookup's L1 hit: nothing more to say */
        lua_pushinteger(L, rc);
        return 1;
    }
    return lookup_push(L, lc, k, klen, ts); /* a miss, or an error it reports the same way */
}

/*
 * _gol_lookup(self, key, loader): get_or_load's first step. Its argument
 * checks live here, in the one C call a hit makes anyway, rather than as Lua
 * type() calls before it. The self check remembers the last cache that
 * passed it, as get's does.
 */
static int l_gol_lookup(lua_State *L)
{
    lgol_state *st = (lgol_state *)lua_touserdata(L, GOL_STATE);
    lcache *lc = (lcache *)lua_touserdata(L, 1);
    size_t klen = 0;
    const char *k;
    if (lc == NULL || lc != st->last || lc->c == NULL || lua_type(L, 1) != LUA_TUSERDATA) {
        lc = wrapped_cache(L, "get_or_load");
        st->last = lc;
    }
    if (lua_type(L, 3) == LUA_TFUNCTION) {
        if (lc->tier)
            return gol_l1_read(L, lc, st, NULL);
        k = wrapped_key(L, "get_or_load", &klen);
        return lookup_push(L, lc, k, klen, NULL);
    }
    k = wrapped_key(L, "get_or_load", &klen);
    if (lua_type(L, 3) == LUA_TTABLE) /* get_or_load(key, {tags = ...}, loader, ...) */
        return gol_lookup_opts(L, lc, st, k, klen);
    return gol_error(L, 2, lua_pushfstring(L, "loader must be a function (or an options table before it), got %s",
                                           luaL_typename(L, 3)));
}

#if LUA_VERSION_NUM >= 503
/* get_or_load's results are its Lua half's (also after a yield in the loader). */
static int gol_continue(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    return lua_gettop(L);
}

/*
 * get_or_load on Lua 5.3+ (upvalues: the metatable, GOL_STATE, GOL_GET and
 * plain.lua's get_or_load): a hit on the string tier of the cache
 * _gol_lookup remembers is served here, with no Lua call; anything else is
 * the Lua get_or_load's, called with a continuation so the loader may yield.
 */
static int l_get_or_load(lua_State *L)
{
    const lgol_state *st = (const lgol_state *)lua_touserdata(L, GOL_STATE);
    lcache *lc = (lcache *)lua_touserdata(L, 1);
    if (lc != NULL && lc == st->last && lc->c != NULL && lc->tier && lua_type(L, 3) == LUA_TFUNCTION &&
        lua_type(L, 1) == LUA_TUSERDATA) {
        sl_getuservalue(L, 1);
        if (tier_hit(L, lc, -2)) {
            lua_pushnil(L);
            lua_pushinteger(L, STRATA_LEVEL_L1);
            return 3;
        }
        lua_pop(L, 2);
    }
    lua_pushvalue(L, lua_upvalueindex(4));
    lua_insert(L, 1);
    lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, gol_continue);
    return lua_gettop(L);
}

/* c_get_or_load(lua_get_or_load) (upvalues: the metatable, GOL_STATE,
 * GOL_GET) -> get_or_load's C front over the Lua one. */
static int l_gol_front(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, lua_upvalueindex(3));
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, l_get_or_load, 4);
    return 1;
}
#endif

/* use_ffi_tier() (upvalue: the lgol_state), for plain.lua under LuaJIT: from
 * now on get_or_load's L1 hits return their entry version for its FFI tier. */
static int l_use_ffi_tier(lua_State *L)
{
    ((lgol_state *)lua_touserdata(L, lua_upvalueindex(1)))->ffi = 1;
    return 0;
}


/* --- write side (docs/WRITE-BEHIND.md) --- */

/* true; true, nil, "invalidated"; or nil, err: the shape of a write's result. */
static int push_write(lua_State *L, int rc)
{
    if (rc < 0)
        return push_error(L, rc);
    lua_pushboolean(L, 1);
    if (rc != STRATA_INVALIDATED)
        return 1;
    lua_pushnil(L);
    lua_pushliteral(L, "invalidated");
    return 3;
}

/* write_behind(key, value[, ttl]): cache write and journal record in one step. */
static int l_write_behind(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t klen, vlen;
    const char *k = check_key(L, 2, &klen, "key");
    const char *val = check_value(L, 3, &vlen);
    int64_t ttl = check_seconds(L, 4, "ttl");
    return push_write(L, strata_write_behind(lc->c, k, klen, val, vlen, ttl));
}

/* The writer of write_through, run by the core on the caller's thread in the
 * middle of strata_write_through: writer(key, value) at stack slot 4, under a
 * pcall, so nothing raises through the core. A yield cannot cross this C call:
 * Lua refuses it ("attempt to yield across a C-call boundary"), and the
 * writer fails with that message. */
static int call_lua_writer(void *ud, const char *key, size_t keylen, const char *val, size_t vallen,
                           strata_write *w)
{
    lua_State *L = (lua_State *)ud;
    int top = lua_gettop(L), rc = 0;
    (void)key; (void)keylen; (void)val; (void)vallen; /* the same strings as arguments 2 and 3 */
    lua_pushvalue(L, 4);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    if (lua_pcall(L, 2, 2, 0) != 0) {
        const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "an error object that is not a string";
        lua_pushfstring(L, "writer raised: %s", m);
        strata_write_error(w, lua_tostring(L, -1));
        rc = STRATA_EUSER;
    } else if (!lua_toboolean(L, -2)) {
        const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "writer returned nil or false";
        strata_write_error(w, m);
        rc = STRATA_EUSER;
    }
    lua_settop(L, top);
    return rc;
}

/* write_through(key, value, writer[, ttl]): writer(key, value) first, the
 * cache only after it returned true. */
static int l_write_through(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t klen, vlen;
    const char *k = check_key(L, 2, &klen, "key");
    const char *val = check_value(L, 3, &vlen);
    int64_t ttl;
    int rc;
    if (lua_type(L, 4) != LUA_TFUNCTION) {
        lua_pushfstring(L, "writer must be a function, got %s", luaL_typename(L, 4));
        luaL_argerror(L, 4, lua_tostring(L, -1));
    }
    ttl = check_seconds(L, 5, "ttl");
    lua_settop(L, 5);
    luaL_checkstack(L, 8, "write_through"); /* the callback's pushes cannot fail */
    lc->in_writer++;
    rc = strata_write_through(lc->c, k, klen, val, vlen, ttl, call_lua_writer, L);
    lc->in_writer--;
    return push_write(L, rc);
}

/* Optional count at idx: an integer from 1 to hi, or dflt when nil. */
static size_t check_count(lua_State *L, int idx, const char *what, lua_Number dflt, int hi)
{
    lua_Number n = dflt;
    if (!lua_isnoneornil(L, idx)) {
        n = lua_tonumber(L, idx);
        if (lua_type(L, idx) != LUA_TNUMBER || !(n >= 1 && n <= hi) || n != (lua_Number)(int)n) {
            if (lua_type(L, idx) == LUA_TNUMBER)
                lua_pushfstring(L, "%s must be an integer from 1 to %d, got %s", what, hi, lua_tostring(L, idx));
            else
                lua_pushfstring(L, "%s must be an integer from 1 to %d, got %s", what, hi, luaL_typename(L, idx));
            luaL_argerror(L, idx, lua_tostring(L, -1));
        }
    }
    return (size_t)n;
}

/* wb_poll([max = 100]) -> batch | nil (nothing due) | nil, err. batch.records
 * is an array of {key =, value =, enqueued_ms =}; end it with batch:ack() or
 * batch:fail(msg). A batch dropped unended is failed by the GC, and close()
 * fails the ones still open. */
static int l_wb_poll(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t max = check_count(L, 2, "max", 100, 100000), n, i;
    strata_wb_batch *b = NULL;
    lbatch *bt;
    int rc = strata_wb_poll(lc->c, max, &b);
    if (rc < 0)
        return push_error(L, rc);
    if (rc != STRATA_OK || b == NULL) {
        lua_pushnil(L);
        return 1;
    }
    bt = (lbatch *)sl_newuserdata1(L, sizeof *bt);
    bt->b = b;
    bt->owner = lc;
    bt->prev = NULL;
    bt->next = lc->batches;
    if (lc->batches)
        lc->batches->prev = bt;
    lc->batches = bt;
    luaL_getmetatable(L, BATCH_MT);
    lua_setmetatable(L, -2);
    n = strata_wb_batch_count(b);
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        const char *k = NULL, *v = NULL;
        size_t kl = 0, vl = 0;
        strata_wb_batch_item(b, i, &k, &kl, &v, &vl);
        lua_createtable(L, 0, 3);
        lua_pushlstring(L, k ? k : "", kl);
        lua_setfield(L, -2, "key");
        lua_pushlstring(L, v ? v : "", vl);
        lua_setfield(L, -2, "value");
        push_u64(L, (uint64_t)strata_wb_batch_enqueued_ms(b, i)); /* wall-clock ms, >= 0 */
        lua_setfield(L, -2, "enqueued_ms");
        lua_rawseti(L, -2, (int)i + 1);
    }
    sl_setuservalue(L, -2);
    return 1;
}

static strata_wb_batch *wbbatch_take(lua_State *L)
{
    lbatch *bt = (lbatch *)luaL_checkudata(L, 1, BATCH_MT);
    strata_wb_batch *b = bt->b;
    if (b == NULL)
        luaL_argerror(L, 1, "batch was already acked or failed, or its cache was closed");
    bt->b = NULL;
    batch_unlink(bt);
    return b;
}

/* batch:ack(): delivered; the records are done. */
static int l_wbbatch_ack(lua_State *L)
{
    int rc = strata_wb_ack(wbbatch_take(L));
    if (rc < 0)
        return push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* batch:fail([msg]): retry later; dead-letter after wb_max_attempts. */
static int l_wbbatch_fail(lua_State *L)
{
    const char *msg = NULL;
    int rc;
    if (!lua_isnoneornil(L, 2)) {
        if (lua_type(L, 2) != LUA_TSTRING) {
            lua_pushfstring(L, "message must be a string, got %s", luaL_typename(L, 2));
            luaL_argerror(L, 2, lua_tostring(L, -1));
        }
        msg = lua_tostring(L, 2);
    }
    if ((rc = strata_wb_fail(wbbatch_take(L), msg)) < 0)
        return push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_wbbatch_gc(lua_State *L)
{
    lbatch *bt = (lbatch *)luaL_checkudata(L, 1, BATCH_MT);
    if (bt->b != NULL) {
        strata_wb_fail(bt->b, "the batch was garbage-collected without ack or fail");
        bt->b = NULL;
    }
    batch_unlink(bt);
    return 0;
}

/* batch.records, else the methods (upvalue 1). */
static int l_wbbatch_index(lua_State *L)
{
    luaL_checkudata(L, 1, BATCH_MT);
    if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "records") == 0) {
        sl_getuservalue(L, 1);
        return 1;
    }
    lua_pushvalue(L, 2);
    lua_gettable(L, lua_upvalueindex(1));
    return 1;
}

/*
 * _flush(self, timeout[, writer]): flush's C half. Checks the arguments (as
 * flush's); without a writer it is strata_flush (wait until the backlog is
 * empty, delivered by other consumers); with one it returns "drain" and the
 * deadline, and the Lua half pulls the batches itself.
 */
static int l_flush(lua_State *L)
{
    lcache *lc = wrapped_cache(L, "flush");
    lua_Number s = lua_tonumber(L, 2);
    int rc;
    if (lua_type(L, 2) != LUA_TNUMBER || !(s >= 0 && s <= 3.2e7))
        return wrapped_error(L, "flush", 1, lua_pushfstring(L, "timeout must be a non-negative number of seconds, got %s",
                                                            lua_type(L, 2) == LUA_TNUMBER ? lua_tostring(L, 2)
                                                                                          : luaL_typename(L, 2)));
    if (!lua_isnoneornil(L, 3)) {
        if (lua_type(L, 3) != LUA_TFUNCTION)
            return wrapped_error(L, "flush", 2, lua_pushfstring(L, "writer must be a function, got %s",
                                                                luaL_typename(L, 3)));
        lua_pushliteral(L, "drain");
        return 1;
    }
    if ((rc = strata_flush(lc->c, (int64_t)(s * 1000.0 + 0.5))) < 0)
        return push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* --- module-level helpers --- */

static int l_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    struct timespec ts;
    if (s > 0) {
        ts.tv_sec = (time_t)s;
        ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    return 0;
}

static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec * 1000.0 + (lua_Number)ts.tv_nsec / 1e6);
    return 1;
}

/* ---- framework primitives (docs/FRAMEWORKS.md) ---- */

#define LOCK_MT "stratacache.lock"

static int l_clear(lua_State *L)
{
    lcache *lc = check_cache(L);
    int rc = strata_clear(lc->c);
    if (rc < 0)
        return push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* add(key, value, ttl) -> true stored | false taken | nil, err */
static int l_add(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t klen, vlen;
    const char *k = check_key(L, 2, &klen, "key");
    const char *val = check_value(L, 3, &vlen);
    int rc = strata_add(lc->c, k, klen, val, vlen, check_ttl(L, 4, "ttl"));
    if (rc < 0)
        return push_error(L, rc);
    lua_pushboolean(L, rc == 0);
    return 1;
}

static int count_by(lua_State *L, int down)
{
    lcache *lc = check_cache(L);
    size_t klen;
    const char *k = check_key(L, 2, &klen, "key");
    lua_Number d = lua_isnoneornil(L, 3) ? 1 : luaL_checknumber(L, 3);
    int64_t out = 0;
    int rc;
    if (d != floor(d) || d < -9.0e15 || d > 9.0e15)
        luaL_argerror(L, 3, "delta must be an integer");
    rc = (down ? strata_decr : strata_incr)(lc->c, k, klen, (int64_t)d, check_ttl(L, 4, "ttl"), &out);
    if (rc < 0)
        return push_error(L, rc);
    lua_pushnumber(L, (lua_Number)out);
    return 1;
}

/* incr(key, delta = 1, ttl) -> new value | nil, err (ENOTNUM: not an integer) */
static int l_incr(lua_State *L)
{
    return count_by(L, 0);
}

static int l_decr(lua_State *L)
{
    return count_by(L, 1);
}

/* delete_many({k1, k2, ...}) -> how many held a value | nil, err */
static int l_delete_many(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t n, i, deleted = 0;
    batch *b;
    int rc, bidx;
    if (!lua_istable(L, 2))
        luaL_argerror(L, 2, "keys must be a table (an array of strings)");
    n = sl_rawlen(L, 2);
    b = new_batch(L, n, 0, 0);
    bidx = lua_gettop(L);
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, 2, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING || sl_rawlen(L, -1) == 0) {
            lua_pushfstring(L, "keys[%d] must be a non-empty string", (int)i + 1);
            luaL_argerror(L, 2, lua_tostring(L, -1));
        }
        b->keys[i] = lua_tolstring(L, -1, &b->klens[i]); /* anchored by the keys table */
        lua_pop(L, 1);
    }
    rc = strata_delete_many(lc->c, n, b->keys, b->klens, &deleted);
    batch_done(L, bidx);
    if (rc < 0)
        return push_error(L, rc);
    lua_pushnumber(L, (lua_Number)deleted);
    return 1;
}

typedef struct llock {
    strata_lock *lock;
    lcache *lc;
    int cache_ref;       /* keeps the cache userdata alive while the lock is */
} llock;

/* cache:lock(name, ttl) -> lock: acquire(blocking = true, timeout) -> true |
 * false | nil, err; release() -> true | nil, "ELEASE: ..." (not held);
 * locked() -> boolean; extend(ttl) -> true | nil, "ELEASE: ..." (lost). */
static int l_lock(lua_State *L)
{
    lcache *lc = check_cache(L);
    size_t nlen;
    const char *name = check_key(L, 2, &nlen, "name");
    int64_t ttl = check_seconds(L, 3, "ttl");
    llock *l;
    int rc;
    if (ttl <= 0)
        luaL_argerror(L, 3, "ttl must be a positive number of seconds (a lock must expire)");
    l = (llock *)lua_newuserdata(L, sizeof *l);
    l->lock = NULL;
    l->lc = lc;
    l->cache_ref = LUA_NOREF;
    luaL_getmetatable(L, LOCK_MT);
    lua_setmetatable(L, -2);
    if ((rc = strata_lock_new(&l->lock, lc->c, name, nlen, ttl)) < 0)
        return push_error(L, rc);
    lua_pushvalue(L, 1);
    l->cache_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

static llock *check_lock(lua_State *L)
{
    llock *l = (llock *)luaL_checkudata(L, 1, LOCK_MT);
    if (l->lock == NULL || l->lc->c == NULL)
        luaL_argerror(L, 1, "the lock's cache is closed");
    return l;
}

static int l_lock_acquire(lua_State *L)
{
    llock *l = check_lock(L);
    int blocking = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
    int64_t timeout = -1;
    int rc;
    if (!lua_isnoneornil(L, 3)) {
        if (!blocking)
            luaL_argerror(L, 3, "a timeout needs blocking = true");
        timeout = check_seconds(L, 3, "timeout");
    }
    rc = strata_lock_acquire(l->lock, blocking, timeout);
    if (rc < 0)
        return push_error(L, rc);
    lua_pushboolean(L, rc == 0);
    return 1;
}

static int lock_result(lua_State *L, int rc)
{
    if (rc < 0)
        return push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_lock_release(lua_State *L)
{
    return lock_result(L, strata_lock_release(check_lock(L)->lock));
}

static int l_lock_extend(lua_State *L)
{
    llock *l = check_lock(L);
    return lock_result(L, strata_lock_extend(l->lock, check_seconds(L, 2, "ttl")));
}

static int l_lock_locked(lua_State *L)
{
    int rc = strata_lock_locked(check_lock(L)->lock);
    if (rc < 0)
        return push_error(L, rc);
    lua_pushboolean(L, rc == 1);
    return 1;
}

static int l_lock_gc(lua_State *L)
{
    llock *l = (llock *)luaL_checkudata(L, 1, LOCK_MT);
    strata_lock_free(l->lock); /* memory only: it never touches the (maybe closed) cache */
    l->lock = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, l->cache_ref);
    l->cache_ref = LUA_NOREF;
    return 0;
}

static const luaL_Reg lock_methods[] = {
    {"acquire", l_lock_acquire},
    {"release", l_lock_release},
    {"extend", l_lock_extend},
    {"locked", l_lock_locked},
    {NULL, NULL}
};

static const luaL_Reg cache_methods[] = {
    {"clear", l_clear},
    {"add", l_add},
    {"incr", l_incr},
    {"decr", l_decr},
    {"delete_many", l_delete_many},
    {"lock", l_lock},
    {"set", l_set},
    {"delete", l_delete},
    {"touch", l_touch},
    {"invalidate", l_invalidate},
    {"invalidate_tag", l_invalidate_tag},
    {"get_many", l_get_many},
    {"set_many", l_set_many},
    {"stats", l_stats},
    {"histogram", l_histogram},
    {"prometheus", l_prometheus},
    {"hot_keys", l_hot_keys},
    {"_record_load", l_record_load},
    {"write_behind", l_write_behind},
    {"write_through", l_write_through},
    {"wb_poll", l_wb_poll},
    {"_flush", l_flush},
    {"close", l_close},
    {"_lookup", l_lookup},
    {"_get_fill", l_get_fill},
    {"_isopen", l_isopen},
    {NULL, NULL}
};

static const luaL_Reg wbbatch_methods[] = {
    {"ack", l_wbbatch_ack},
    {"fail", l_wbbatch_fail},
    {NULL, NULL}
};

static const luaL_Reg ticket_methods[] = {
    {"fill", l_ticket_fill},
    {"fill_negative", l_ticket_fill_negative},
    {"abandon", l_ticket_abandon},
    {"tags", l_ticket_tags},
    {NULL, NULL}
};

/* The Lua half: lua/stratacache/{loader,options,plain}.lua, embedded at build
 * time (lua/CMakeLists.txt). loader and options are also modules of their own
 * (package.loaded), shared with resty.stratacache when both run in one nginx;
 * a copy already loaded from package.path is kept. */
#include "stratacache_lua_chunks.h"

static int load_chunk(lua_State *L, const char *chunk, const char *name)
{
    return luaL_loadbuffer(L, chunk, strlen(chunk), name);
}

/* package.loaded[name] = the module of chunk, unless it is there already. */
static int preload_module(lua_State *L, const char *chunk, const char *name, const char *chunkname)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -1, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        if (load_chunk(L, chunk, chunkname) != 0)
            return lua_error(L);
        lua_call(L, 0, 1);
        lua_setfield(L, -2, name);
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return 0;
}

__attribute__((visibility("default"))) int luaopen_stratacache(lua_State *L);
__attribute__((visibility("default"))) int luaopen_stratacache(lua_State *L)
{
    lstate *st;
    lgol_state *gst;
    int sc, ist, imt, imethods, iget, igst;
    lua_newtable(L);
    sc = lua_gettop(L);

    luaL_newmetatable(L, TICKET_MT);
    lua_newtable(L);
    set_methods(L, ticket_methods, -2);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_ticket_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    luaL_newmetatable(L, BATCH_MT);
    lua_newtable(L);
    set_methods(L, wbbatch_methods, -2);
    lua_pushcclosure(L, l_wbbatch_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_wbbatch_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    luaL_newmetatable(L, LOCK_MT);
    lua_newtable(L);
    set_methods(L, lock_methods, -2);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_lock_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lua_pushnumber(L, HUGE_VAL);
    lua_setfield(L, sc, "FOREVER");

    st = (lstate *)lua_newuserdata(L, sizeof *st);
    st->last = NULL;
    ist = lua_gettop(L);
    luaL_newmetatable(L, CACHE_MT);
    imt = lua_gettop(L);
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, l_close);
    lua_setfield(L, imt, "__close");
#endif
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, imt, "__tostring");
    lua_newtable(L);
    imethods = lua_gettop(L);
    set_methods(L, cache_methods, imt);
    lua_pushvalue(L, imt);
    lua_pushvalue(L, ist);
    lua_pushnil(L);
    lua_pushcclosure(L, l_get, 3); /* upvalues: GET_STATE, GET_TIER */
    iget = lua_gettop(L);
    lua_pushvalue(L, iget);
    lua_setfield(L, imethods, "get");
    gst = (lgol_state *)lua_newuserdata(L, sizeof *gst);
    gst->last = NULL;
    gst->get = st;
    gst->ffi = 0;
    igst = lua_gettop(L);
    lua_pushvalue(L, imt);
    lua_pushvalue(L, igst);
    lua_pushvalue(L, iget);
    lua_pushcclosure(L, l_gol_lookup, 3); /* upvalues: the metatable, GOL_STATE, GOL_GET */
    lua_setfield(L, imethods, "_gol_lookup");
    lua_pushvalue(L, ist);
    lua_pushvalue(L, iget);
    lua_pushvalue(L, igst);
    lua_pushcclosure(L, l_gc, 3);
    lua_setfield(L, imt, "__gc");
    lua_pushvalue(L, imethods);
    lua_setfield(L, imt, "__index");

    lua_pushstring(L, strata_version());
    lua_setfield(L, sc, "_CVERSION");
    lua_pushliteral(L, "stratacache 0.1.0");
    lua_setfield(L, sc, "_VERSION");

    preload_module(L, strata_lua_loader, "stratacache.loader", "@stratacache/loader.lua");
    preload_module(L, strata_lua_options, "stratacache.options", "@stratacache/options.lua");
    if (load_chunk(L, strata_lua_plain, "@stratacache/plain.lua") != 0)
        return lua_error(L);
    lua_pushvalue(L, sc);
    lua_pushvalue(L, imethods);
    lua_pushcfunction(L, l_new);
    lua_pushcfunction(L, l_sleep);
    lua_pushcfunction(L, l_now);
    lua_pushcfunction(L, l_load_clock);
    lua_pushlightuserdata(L, (void *)(uintptr_t)strata_l1_check); /* for LuaJIT's FFI (plain.lua) */
    lua_pushvalue(L, igst);
    lua_pushcclosure(L, l_use_ffi_tier, 1);
#if LUA_VERSION_NUM >= 503
    lua_pushvalue(L, imt);
    lua_pushvalue(L, igst);
    lua_pushvalue(L, iget);
    lua_pushcclosure(L, l_gol_front, 3);
#else
    lua_pushnil(L); /* 5.1: get_or_load stays Lua (no continuations) */
#endif
    lua_call(L, 9, 0);
    lua_settop(L, sc);
    return 1;
}
