/*
 * Bounds and messages, without a server (memory://):
 *   - every millisecond input (options struct, URL, per-call ttl/stale/
 *     deadline arguments) has one documented maximum, STRATA_MAX_MS; past
 *     it the call is refused with EINVAL/EOPTION naming the argument, and at
 *     it a value is stored and read back (no int64 overflow);
 *   - every rejection carries a message that says what was wrong, never an
 *     empty or self-repeating one.
 */
#include "test.h"
#include "platform/platform.h"

#include <limits.h>
#include <stdint.h>

#define K(s) (s), strlen(s)

static strata_cache *open_memory(const char *query)
{
    char u[512];
    strata_cache *c = NULL;
    snprintf(u, sizeof u, "memory://?%s", query);
    if (strata_cache_new(&c, u, NULL) != 0)
        fprintf(stderr, "  open %s: %s\n", u, strata_error_last());
    return c;
}

static void options_struct_ms_are_bounded(void)
{
    static const struct { const char *name; size_t off; } fields[] = {
#define F(f) {#f, offsetof(strata_options, f)}
        F(ttl_ms), F(stale_ms), F(neg_ttl_ms), F(timeout_ms), F(connect_timeout_ms), F(l1_ttl_ms),
        F(lease_ttl_ms), F(lock_wait_ms), F(breaker_cooldown_ms), F(tag_cache_ms),
#undef F
    };
    size_t i;
    for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        strata_options o = STRATA_OPTIONS_INIT;
        strata_cache *c = NULL;
        int64_t *p = (int64_t *)((char *)&o + fields[i].off);
        *p = INT64_MAX;
        CHECK_RC(strata_cache_new(&c, "memory://", &o), STRATA_EOPTION);
        CHECK_MSG_HAS(fields[i].name);
        CHECK_MSG_HAS("31622400000");
        CHECK(c == NULL);
        *p = STRATA_MAX_MS; /* the maximum itself is fine */
        CHECK_RC(strata_cache_new(&c, "memory://", &o), 0);
        strata_cache_free(c);
    }
}

static int writer_ok(void *ud, const char *key, size_t keylen, const char *val, size_t vallen, strata_write *w)
{
    (void)ud; (void)key; (void)keylen; (void)val; (void)vallen; (void)w;
    return 0;
}

static int huge_loader(void *ud, const char *key, size_t keylen, strata_load *load)
{
    int rc = strata_load_value(load, key, keylen, INT64_MAX);
    (void)ud;
    if (rc != STRATA_EINVAL || !strstr(strata_error_last(), "ttl_ms"))
        return -1;
    return strata_load_value(load, key, keylen, STRATA_MAX_MS);
}

static void call_ms_are_bounded(void)
{
    strata_cache *c = open_memory("l1=0&wb_threads=0");
    strata_set_options so = STRATA_SET_OPTIONS_INIT;
    strata_value v = STRATA_VALUE_INIT;
    strata_ticket *t = NULL;
    const char *keys[1] = {"m"}, *vals[1] = {"v"};
    size_t klens[1] = {1}, vlens[1] = {1};
    REQUIRE(c);
    CHECK_RC(strata_set(c, K("k"), K("v"), INT64_MAX), STRATA_EINVAL);
    CHECK_MSG_HAS("ttl_ms");
    CHECK_MSG_HAS("31622400000");
    CHECK_RC(strata_set(c, K("k"), K("v"), STRATA_MAX_MS + 1), STRATA_EINVAL);
    so.stale_ms = INT64_MAX;
    CHECK_RC(strata_set_ex(c, K("k"), K("v"), &so), STRATA_EINVAL);
    CHECK_MSG_HAS("stale_ms");
    so.stale_ms = -1;
    so.cost_ms = INT64_MAX;
    CHECK_RC(strata_set_ex(c, K("k"), K("v"), &so), STRATA_EINVAL);
    CHECK_MSG_HAS("cost_ms");
    CHECK_RC(strata_touch(c, K("k"), INT64_MAX), STRATA_EINVAL);
    CHECK_MSG_HAS("ttl_ms");
    CHECK_RC(strata_set_many(c, 1, keys, klens, vals, vlens, INT64_MAX), STRATA_EINVAL);
    CHECK_MSG_HAS("ttl_ms");
    CHECK_RC(strata_write_through(c, K("k"), K("v"), INT64_MAX, writer_ok, NULL), STRATA_EINVAL);
    CHECK_MSG_HAS("ttl_ms");
    CHECK_RC(strata_write_behind(c, K("k"), K("v"), INT64_MAX), STRATA_EINVAL);
    CHECK_MSG_HAS("ttl_ms");
    CHECK_RC(strata_flush(c, INT64_MAX), STRATA_EINVAL);
    CHECK_MSG_HAS("deadline_ms");
    /* nothing was written by the refused calls */
    CHECK_RC(strata_get(c, K("k"), &v), STRATA_MISS);
    CHECK_RC(strata_get(c, K("m"), &v), STRATA_MISS);

    CHECK_RC(strata_lookup(c, K("f"), &v, &t), STRATA_MISS_LEAD);
    REQUIRE(t);
    CHECK_RC(strata_fill(t, K("x"), INT64_MAX), STRATA_EINVAL);
    CHECK_MSG_HAS("ttl_ms");
    t = NULL;
    CHECK_RC(strata_lookup(c, K("g"), &v, &t), STRATA_MISS_LEAD);
    REQUIRE(t);
    CHECK_RC(strata_fill_negative(t, INT64_MAX), STRATA_EINVAL);
    CHECK_MSG_HAS("neg_ttl_ms");
    CHECK_RC(strata_get_or_load(c, K("h"), huge_loader, NULL, &v), STRATA_OK);
    CHECK_VALUE(&v, "h");

    /* at the maximum: stored and served, with the ttl and stale at their limits */
    so.ttl_ms = STRATA_MAX_MS;
    so.stale_ms = STRATA_MAX_MS;
    so.cost_ms = 0;
    CHECK_RC(strata_set_ex(c, K("big"), K("v"), &so), 0);
    CHECK_RC(strata_get(c, K("big"), &v), STRATA_OK);
    CHECK_VALUE(&v, "v");
    CHECK(v.ttl_ms > STRATA_MAX_MS - 60000);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void url_ms_are_bounded(void)
{
    strata_cache *c = NULL;
    CHECK_RC(strata_cache_new(&c, "memory://?stale_ms=9223372036854775807", NULL), STRATA_EOPTION);
    CHECK_MSG_HAS("stale_ms");
    CHECK_RC(strata_cache_new(&c, "memory://?timeout_ms=31622400001", NULL), STRATA_EOPTION);
    CHECK_MSG_HAS("timeout_ms");
    CHECK_RC(strata_cache_new(&c, "memory://?ttl_ms=31622400000", NULL), 0);
    strata_cache_free(c);
}

/* Defect 11: messages formatted into the buffer they were read from. */
static void rejections_carry_their_message(void)
{
    strata_cache *c = open_memory("l1=0");
    strata_cache *bad = NULL;
    strata_value outs[2];
    int results[2];
    const char *keys[2] = {"ok", ""};
    size_t lens[2] = {2, 0};
    REQUIRE(c);
    memset(outs, 0, sizeof outs);
    CHECK_RC(strata_get_many(c, 2, keys, lens, outs, results), STRATA_EKEY);
    CHECK(strcmp(strata_error_last(), "key 1: key is empty") == 0);
    CHECK_RC(strata_set_many(c, 2, keys, lens, keys, lens, 0), STRATA_EKEY);
    CHECK(strcmp(strata_error_last(), "item 1: key is empty") == 0);
    CHECK_RC(strata_cache_new(&bad, "memory://?wb_journal=%zz", NULL), STRATA_EOPTION);
    CHECK(strlen(strata_error_last()) > 10);
    CHECK_MSG_HAS("wb_journal");
    CHECK_RC(strata_cache_new(&bad, "memcached://h:1?wb_consumer=%zz", NULL), STRATA_EOPTION);
    CHECK_MSG_HAS("wb_consumer");
    CHECK_RC(strata_cache_new(&bad, "memcached://h:1?l1_bus=redis://h:99999", NULL), STRATA_EOPTION);
    CHECK_MSG_HAS("option l1_bus: ");
    CHECK_MSG_HAS("bad port");
    strata_cache_free(c);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"options_struct_ms_are_bounded", options_struct_ms_are_bounded},
        {"call_ms_are_bounded", call_ms_are_bounded},
        {"url_ms_are_bounded", url_ms_are_bounded},
        {"rejections_carry_their_message", rejections_carry_their_message},
    };
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
