/*
 * The resumable operations driven by a second driver (poll_driver.c: one
 * thread, non-blocking sockets, poll()): results match the blocking API; 100
 * lookups of one cold key in flight here plus 100 in a second process make
 * exactly one load; 1,000 mixed ops in flight finish within their deadlines;
 * a paused server times its ops out on time while the same thread keeps
 * serving another, live one.
 *   test_sansio (needs STRATA_TEST_REDIS_URL)
 */
#include "test.h"
#include "server.h"
#include "poll_driver.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static strata_cache *open_cache(const char *base_url, const char *ns, const char *extra)
{
    char u[512];
    strata_cache *c = NULL;
    snprintf(u, sizeof u, "%s?ns=%s%s%s", base_url, ns, extra[0] ? "&" : "", extra);
    if (strata_cache_new(&c, u, NULL) != 0)
        fprintf(stderr, "  open %s: %s\n", u, strata_error_last());
    return c;
}

/* Drives one op to DONE on its own driver; returns its result. */
typedef struct one_run {
    int done;
} one_run;

static void one_done(void *ud, strata_op *op)
{
    (void)op;
    ((one_run *)ud)->done = 1;
}

static int drive(strata_op *op, strata_value *v)
{
    poll_driver *d = poll_driver_new(1);
    one_run r = {0};
    poll_driver_add(d, op, one_done, &r);
    poll_driver_run(d, strata_clock_ms() + 5000);
    poll_driver_free(d);
    if (!r.done)
        return -999;
    return strata_op_result(op, v);
}

static void ops_match_the_blocking_api(void)
{
    const char *ns = test_unique("sio");
    strata_cache *host = open_cache(test_backend_url("redis"), ns, "io=host");
    strata_cache *blk = open_cache(test_backend_url("redis"), ns, "");
    strata_value v = STRATA_VALUE_INIT;
    strata_op *op = NULL;
    strata_event ev = STRATA_EVENT_INIT;
    const char *keys[3] = {"a", "b", "nope"};
    size_t lens[3] = {1, 1, 4};
    const char *tag = "t1";
    size_t taglen = 2;
    strata_set_options so = STRATA_SET_OPTIONS_INIT;
    REQUIRE(host && blk);
    CHECK_RC(strata_events_next(host, &ev), STRATA_MISS); /* on from the start with io=host */
    CHECK_RC(strata_get(host, "a", 1, &v), STRATA_ENOTSUP);
    CHECK_MSG_HAS("io=host");

    /* set by op, read by the blocking API and by op */
    CHECK_RC(strata_op_set(&op, host, "a", 1, "va", 2, NULL), 0);
    CHECK_RC(drive(op, NULL), 0);
    strata_op_free(op);
    CHECK_RC(strata_get(blk, "a", 1, &v), 0);
    CHECK_VALUE(&v, "va");
    CHECK_RC(strata_events_next(host, &ev), 0);
    CHECK(ev.kind == STRATA_EVENT_EVICT && ev.own == 1 && ev.keylen == 1 && ev.key[0] == 'a');
    CHECK_RC(strata_set(blk, "b", 1, "vb", 2, 0), 0);
    CHECK_RC(strata_op_lookup(&op, host, "b", 1, NULL), 0);
    CHECK_RC(drive(op, &v), 0);
    CHECK_VALUE(&v, "vb");
    CHECK(v.level == STRATA_LEVEL_BACKEND);
    strata_op_free(op);

    /* a miss leads; the fill is seen by the blocking API */
    CHECK_RC(strata_op_lookup(&op, host, "c", 1, NULL), 0);
    CHECK_RC(drive(op, &v), STRATA_MISS_LEAD);
    CHECK_RC(strata_op_fill(op, "vc", 2, 0), 0);
    CHECK_RC(drive(op, NULL), 0);
    strata_op_free(op);
    CHECK_RC(strata_get(blk, "c", 1, &v), 0);
    CHECK_VALUE(&v, "vc");

    /* a fill takes STRATA_TTL_FOREVER as strata_fill does; other negative TTLs are refused */
    CHECK_RC(strata_op_lookup(&op, host, "f", 1, NULL), 0);
    CHECK_RC(drive(op, &v), STRATA_MISS_LEAD);
    CHECK_RC(strata_op_fill(op, "vf", 2, -2), STRATA_EINVAL);
    CHECK_RC(strata_op_fill(op, "vf", 2, STRATA_TTL_FOREVER), 0);
    CHECK_RC(drive(op, NULL), 0);
    strata_op_free(op);
    CHECK_RC(strata_get(blk, "f", 1, &v), 0);
    CHECK_VALUE(&v, "vf");

    /* a second leader while the first holds the lease: MISS_WAIT */
    {
        strata_op *a = NULL, *b = NULL;
        CHECK_RC(strata_op_lookup(&a, host, "d", 1, NULL), 0);
        CHECK_RC(drive(a, &v), STRATA_MISS_LEAD);
        CHECK_RC(strata_op_lookup(&b, host, "d", 1, NULL), 0);
        CHECK_RC(drive(b, &v), STRATA_MISS_WAIT);
        CHECK(v.wait_ms > 0);
        /* a write kills the lease: the first leader's fill is refused */
        CHECK_RC(strata_set(blk, "d", 1, "new", 3, 0), 0);
        CHECK_RC(strata_op_fill(a, "old", 3, 0), 0);
        CHECK_RC(drive(a, NULL), STRATA_ELEASE);
        CHECK_RC(strata_get(blk, "d", 1, &v), 0);
        CHECK_VALUE(&v, "new");
        strata_op_free(a);
        strata_op_free(b);
    }

    /* negative fill, then abandon */
    CHECK_RC(strata_op_lookup(&op, host, "n", 1, NULL), 0);
    CHECK_RC(drive(op, &v), STRATA_MISS_LEAD);
    CHECK_RC(strata_op_fill_negative(op, 0), 0);
    CHECK_RC(drive(op, NULL), 0);
    strata_op_free(op);
    CHECK_RC(strata_get(blk, "n", 1, &v), STRATA_NEGATIVE);
    CHECK_RC(strata_op_lookup(&op, host, "e", 1, NULL), 0);
    CHECK_RC(drive(op, &v), STRATA_MISS_LEAD);
    CHECK_RC(strata_op_abandon(op), 0);
    CHECK_RC(drive(op, NULL), 0);
    strata_op_free(op);
    CHECK_RC(strata_op_lookup(&op, host, "e", 1, NULL), 0);
    CHECK_RC(drive(op, &v), STRATA_MISS_LEAD); /* the lease was given back */
    strata_op_free(op);

    /* get_many */
    CHECK_RC(strata_op_get_many(&op, host, 3, keys, lens, NULL), 0);
    CHECK_RC(drive(op, NULL), 0);
    CHECK_RC(strata_op_item(op, 0, &v), 0);
    CHECK_VALUE(&v, "va");
    CHECK_RC(strata_op_item(op, 1, &v), 0);
    CHECK_VALUE(&v, "vb");
    CHECK_RC(strata_op_item(op, 2, &v), STRATA_MISS);
    strata_op_free(op);

    /* delete */
    CHECK_RC(strata_op_delete(&op, host, "a", 1), 0);
    CHECK_RC(drive(op, NULL), 0);
    strata_op_free(op);
    CHECK_RC(strata_get(blk, "a", 1, &v), STRATA_MISS);
    CHECK_RC(strata_op_delete(&op, host, "a", 1), 0);
    CHECK_RC(drive(op, NULL), STRATA_MISS);
    strata_op_free(op);

    /* tags: a bump by op outdates an entry stamped by the blocking API */
    so.tags = &tag;
    so.taglens = &taglen;
    so.ntags = 1;
    CHECK_RC(strata_set_ex(blk, "t", 1, "vt", 2, &so), 0);
    CHECK_RC(strata_op_lookup(&op, host, "t", 1, NULL), 0);
    CHECK_RC(drive(op, &v), 0);
    CHECK_VALUE(&v, "vt");
    strata_op_free(op);
    CHECK_RC(strata_op_invalidate_tag(&op, host, tag, taglen), 0);
    CHECK_RC(drive(op, NULL), 0);
    strata_op_free(op);
    CHECK_RC(strata_op_lookup(&op, host, "t", 1, NULL), 0);
    CHECK_RC(drive(op, &v), STRATA_MISS_LEAD);
    strata_op_free(op);
    /* set by op with a tag: the blocking API sees the stamp outdated after a bump
     * (a tag blk has not cached: another process's bump is seen within tag_cache_ms) */
    tag = "t2tag";
    taglen = 5;
    CHECK_RC(strata_op_set(&op, host, "t2", 2, "v2", 2, &so), 0);
    CHECK_RC(drive(op, NULL), 0);
    strata_op_free(op);
    CHECK_RC(strata_get(blk, "t2", 2, &v), 0);
    CHECK_RC(strata_invalidate_tag(blk, tag, taglen), 0);
    CHECK_RC(strata_get(blk, "t2", 2, &v), STRATA_MISS);

    /* a namespace clear (strata_clear) outdates what ops wrote and read (on a
     * handle that caches no generation: another's clear is seen within tag_cache_ms) */
    {
        strata_cache *fresh = open_cache(test_backend_url("redis"), ns, "io=host&tag_cache_ms=0");
        REQUIRE(fresh);
        CHECK_RC(strata_op_set(&op, fresh, "cl", 2, "before", 6, NULL), 0);
        CHECK_RC(drive(op, NULL), 0);
        strata_op_free(op);
        CHECK_RC(strata_clear(blk), 0);
        CHECK_RC(strata_op_lookup(&op, fresh, "cl", 2, NULL), 0);
        CHECK_RC(drive(op, &v), STRATA_MISS_LEAD);
        CHECK_RC(strata_op_fill(op, "after", 5, 0), 0);
        CHECK_RC(drive(op, NULL), 0);
        strata_op_free(op);
        strata_cache_free(fresh);
    }
    CHECK_RC(strata_get(blk, "cl", 2, &v), 0); /* the fill carries the new generation */
    CHECK_VALUE(&v, "after");

    /* misuse: precise errors, nothing changes */
    CHECK_RC(strata_op_lookup(&op, host, "", 0, NULL), STRATA_EKEY);
    CHECK(op == NULL);
    CHECK_RC(strata_op_fill(NULL, "x", 1, 0), STRATA_EINVAL);
    strata_value_dispose(&v);
    strata_cache_free(host);
    strata_cache_free(blk);
}

/* ---- op result metadata for host tiers (strata_op_meta_get) ---- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void op_meta_for_host_tiers(void)
{
    const char *ns = test_unique("siometa");
    strata_cache *host = open_cache(test_backend_url("redis"), ns, "io=host&jitter_pct=0&stale_ms=3000");
    strata_cache *l1c = open_cache(test_backend_url("redis"), ns, "jitter_pct=0&l1=1&tracking=0");
    strata_cache *blk = open_cache(test_backend_url("redis"), ns, "jitter_pct=0");
    strata_value v = STRATA_VALUE_INIT;
    strata_op_meta m = STRATA_OP_META_INIT, bad = STRATA_OP_META_INIT;
    strata_set_options so = STRATA_SET_OPTIONS_INIT;
    strata_op *op = NULL;
    const char *tag = "mt";
    size_t taglen = 2;
    const char *keys[4] = {"plain", "tagged", "none", "empty"};
    size_t lens[4] = {5, 6, 4, 5};
    int64_t t0, t1;
    REQUIRE(host && l1c && blk);

    /* an entry written with ttl, stale window and cost: exact, untagged */
    so.ttl_ms = 10000;
    so.stale_ms = 5000;
    so.cost_ms = 123;
    t0 = wall_ms();
    CHECK_RC(strata_set_ex(blk, "plain", 5, "p", 1, &so), 0);
    t1 = wall_ms();
    CHECK_RC(strata_op_lookup(&op, host, "plain", 5, NULL), 0);
    CHECK_RC(drive(op, &v), 0);
    CHECK_RC(strata_op_meta_get(op, 0, &m), 0);
    CHECK(m.flags == STRATA_META_EXACT);
    CHECK(m.fresh_until_ms >= t0 + 10000 && m.fresh_until_ms <= t1 + 10000);
    CHECK(m.stale_until_ms == m.fresh_until_ms + 5000);
    CHECK(m.cost_ms == 123);
    CHECK_RC(strata_op_meta_get(op, 1, &m), STRATA_EINVAL);
    CHECK_MSG_HAS("item 1");
    bad.version = 99;
    CHECK_RC(strata_op_meta_get(op, 0, &bad), STRATA_EVERSION);
    CHECK_RC(strata_op_meta_init(&bad, 2), STRATA_EVERSION);
    strata_op_free(op);

    /* tagged elsewhere, read without tags: the host learns it must verify */
    so.tags = &tag;
    so.taglens = &taglen;
    so.ntags = 1;
    CHECK_RC(strata_set_ex(blk, "tagged", 6, "t", 1, &so), 0);
    CHECK_RC(strata_op_lookup(&op, host, "tagged", 6, NULL), 0);
    CHECK_RC(drive(op, &v), 0);
    CHECK_RC(strata_op_meta_get(op, 0, &m), 0);
    CHECK(m.flags == (STRATA_META_EXACT | STRATA_META_TAGGED));
    strata_op_free(op);

    /* a miss names no entry; the fill's result names what it stored */
    so.tags = NULL;
    so.ntags = 0;
    CHECK_RC(strata_op_lookup(&op, host, "none", 4, NULL), 0);
    CHECK_RC(drive(op, &v), STRATA_MISS_LEAD);
    m.flags = 77;
    CHECK_RC(strata_op_meta_get(op, 0, &m), STRATA_MISS);
    CHECK(m.flags == 0 && m.fresh_until_ms == 0 && m.version == STRATA_OP_META_VERSION);
    usleep(30 * 1000); /* the load's cost */
    t0 = wall_ms();
    CHECK_RC(strata_op_fill(op, "filled", 6, 2000), 0);
    CHECK_RC(drive(op, NULL), 0);
    t1 = wall_ms();
    CHECK_RC(strata_op_meta_get(op, 0, &m), 0);
    CHECK(m.flags == STRATA_META_EXACT);
    CHECK(m.fresh_until_ms >= t0 + 2000 && m.fresh_until_ms <= t1 + 2000);
    CHECK(m.stale_until_ms == m.fresh_until_ms + 3000); /* the cache's stale_ms */
    CHECK(m.cost_ms >= 30 && m.cost_ms < 5000);
    strata_op_free(op);
    /* the same entry read back: the envelope says the same */
    {
        strata_op_meta again = STRATA_OP_META_INIT;
        int64_t fresh = m.fresh_until_ms, cost = m.cost_ms;
        CHECK_RC(strata_op_lookup(&op, host, "none", 4, NULL), 0);
        CHECK_RC(drive(op, &v), 0);
        CHECK_VALUE(&v, "filled");
        CHECK_RC(strata_op_meta_get(op, 0, &again), 0);
        CHECK(again.fresh_until_ms == fresh && again.cost_ms == cost);
        strata_op_free(op);
    }

    /* get_many: per item, the hits' envelopes; misses name none */
    CHECK_RC(strata_set_ex(blk, "empty", 5, "", 0, NULL), 0);
    CHECK_RC(strata_op_get_many(&op, host, 4, keys, lens, NULL), 0);
    CHECK_RC(drive(op, NULL), 0);
    CHECK_RC(strata_op_meta_get(op, 0, &m), 0);
    CHECK(m.flags == STRATA_META_EXACT && m.cost_ms == 123);
    CHECK_RC(strata_op_meta_get(op, 1, &m), 0);
    CHECK(m.flags == (STRATA_META_EXACT | STRATA_META_TAGGED));
    CHECK_RC(strata_op_meta_get(op, 2, &m), 0); /* "none": filled above */
    CHECK(m.flags == STRATA_META_EXACT && m.cost_ms >= 30);
    CHECK_RC(strata_op_meta_get(op, 3, &m), 0);
    CHECK_RC(strata_op_meta_get(op, 4, &m), STRATA_EINVAL);
    strata_op_free(op);
    {
        const char *nk[1] = {"absent"};
        size_t nl[1] = {6};
        CHECK_RC(strata_op_get_many(&op, host, 1, nk, nl, NULL), 0);
        CHECK_RC(drive(op, NULL), 0);
        CHECK_RC(strata_op_meta_get(op, 0, &m), STRATA_MISS);
        strata_op_free(op);
    }

    /* an L1 hit knows its freshness only: not exact, maybe tagged (L1 serves
     * once the cache's invalidation link is up) */
    {
        int tries, l1hit = 0;
        for (tries = 0; tries < 100 && !l1hit; tries++) {
            CHECK_RC(strata_op_lookup(&op, l1c, "plain", 5, NULL), 0);
            CHECK_RC(drive(op, &v), 0);
            if ((l1hit = v.level == STRATA_LEVEL_L1)) {
                t0 = wall_ms();
                CHECK_RC(strata_op_meta_get(op, 0, &m), 0);
                CHECK(m.flags == STRATA_META_TAGGED);
                CHECK(m.fresh_until_ms > t0 && m.fresh_until_ms <= t0 + 10000 + 1000);
                CHECK(m.stale_until_ms == m.fresh_until_ms && m.cost_ms == 0);
            }
            strata_op_free(op);
            if (!l1hit)
                usleep(20 * 1000);
        }
        CHECK(l1hit);
    }

    /* writes name no entry; misuse is precise */
    CHECK_RC(strata_op_delete(&op, host, "plain", 5), 0);
    CHECK_RC(drive(op, NULL), 0);
    CHECK_RC(strata_op_meta_get(op, 0, &m), STRATA_MISS);
    strata_op_free(op);
    CHECK_RC(strata_op_lookup(&op, host, "plain", 5, NULL), 0);
    CHECK_RC(strata_op_meta_get(op, 0, &m), STRATA_EINVAL);
    CHECK_MSG_HAS("not done");
    strata_op_free(op);
    CHECK_RC(strata_op_meta_get(NULL, 0, &m), STRATA_EINVAL);
    strata_value_dispose(&v);
    strata_cache_free(host);
    strata_cache_free(l1c);
    strata_cache_free(blk);
}

/* ---- touch as an op: strata_touch's outcomes ---- */

static void op_touch_renews_like_the_blocking_api(void)
{
    const char *ns = test_unique("siotouch");
    strata_cache *host = open_cache(test_backend_url("redis"), ns, "io=host&jitter_pct=0&tag_cache_ms=0");
    strata_cache *blk = open_cache(test_backend_url("redis"), ns, "jitter_pct=0");
    strata_value v = STRATA_VALUE_INIT;
    strata_op_meta m = STRATA_OP_META_INIT;
    strata_set_options so = STRATA_SET_OPTIONS_INIT;
    strata_event ev = STRATA_EVENT_INIT;
    strata_op *op = NULL;
    const char *tag = "tt";
    size_t taglen = 2;
    REQUIRE(host && blk);
    while (strata_events_next(host, &ev) == 0)
        ;

    /* a short-lived tagged entry gets a long life; value, stamps and cost stay */
    so.ttl_ms = 1500;
    so.cost_ms = 77;
    so.tags = &tag;
    so.taglens = &taglen;
    so.ntags = 1;
    CHECK_RC(strata_set_ex(blk, "k", 1, "kept", 4, &so), 0);
    CHECK_RC(strata_op_touch(&op, host, "k", 1, 60000), 0);
    CHECK_RC(drive(op, NULL), 0);
    strata_op_free(op);
    CHECK_RC(strata_events_next(host, &ev), 0);
    CHECK(ev.kind == STRATA_EVENT_EVICT && ev.own == 1 && ev.keylen == 1 && ev.key[0] == 'k');
    CHECK_RC(strata_get(blk, "k", 1, &v), 0);
    CHECK_VALUE(&v, "kept");
    CHECK(v.ttl_ms > 50000);
    CHECK_RC(strata_op_lookup(&op, host, "k", 1, NULL), 0);
    CHECK_RC(drive(op, &v), 0);
    CHECK_RC(strata_op_meta_get(op, 0, &m), 0);
    CHECK(m.flags == (STRATA_META_EXACT | STRATA_META_TAGGED) && m.cost_ms == 77);
    strata_op_free(op);

    /* absent: a miss, as strata_touch */
    CHECK_RC(strata_touch(blk, "absent", 6, 1000), STRATA_MISS);
    CHECK_RC(strata_op_touch(&op, host, "absent", 6, 1000), 0);
    CHECK_RC(drive(op, NULL), STRATA_MISS);
    strata_op_free(op);

    /* outdated by a tag bump: not revived */
    CHECK_RC(strata_invalidate_tag(blk, tag, taglen), 0);
    CHECK_RC(strata_op_touch(&op, host, "k", 1, 60000), 0);
    CHECK_RC(drive(op, NULL), STRATA_MISS);
    strata_op_free(op);
    CHECK_RC(strata_get(blk, "k", 1, &v), STRATA_MISS);

    /* an untagged entry; 0 = the cache's default ttl */
    CHECK_RC(strata_set(blk, "p", 1, "plain", 5, 1000), 0);
    CHECK_RC(strata_op_touch(&op, host, "p", 1, 0), 0);
    CHECK_RC(drive(op, NULL), 0);
    strata_op_free(op);
    CHECK_RC(strata_get(blk, "p", 1, &v), 0);
    CHECK_VALUE(&v, "plain");
    CHECK(v.ttl_ms > 1000);

    /* misuse: precise errors, nothing begun */
    CHECK_RC(strata_op_touch(&op, host, "p", 1, -5), STRATA_EINVAL);
    CHECK(op == NULL);
    CHECK_MSG_HAS("ttl_ms");
    CHECK_RC(strata_op_touch(&op, host, "", 0, 1000), STRATA_EKEY);
    strata_value_dispose(&v);
    strata_cache_free(host);
    strata_cache_free(blk);
}

/* ---- write-behind as an op: appended by the host, delivered by a flusher ---- */

static void op_write_behind_is_delivered_by_a_flusher(void)
{
    const char *ns = test_unique("siowb");
    strata_cache *host = open_cache(test_backend_url("redis"), ns, "io=host");
    strata_cache *full = open_cache(test_backend_url("redis"), ns, "io=host&wb_max_backlog=1");
    strata_cache *blk = open_cache(test_backend_url("redis"), ns, "wb_threads=0");
    strata_value v = STRATA_VALUE_INIT;
    strata_wb_batch *b = NULL;
    strata_stats st;
    strata_event ev = STRATA_EVENT_INIT;
    strata_op *op = NULL;
    const char *key, *val;
    size_t keylen, vallen;
    REQUIRE(host && full && blk);
    while (strata_events_next(host, &ev) == 0)
        ;

    /* accepted: the cache holds the value at once, the journal the record */
    CHECK_RC(strata_op_write_behind(&op, host, "k", 1, "v1", 2, 0), 0);
    CHECK_RC(drive(op, NULL), 0);
    strata_op_free(op);
    CHECK_RC(strata_get(blk, "k", 1, &v), 0);
    CHECK_VALUE(&v, "v1");
    CHECK_RC(strata_events_next(host, &ev), 0);
    CHECK(ev.kind == STRATA_EVENT_EVICT && ev.own == 1 && ev.keylen == 1);
    CHECK_RC(strata_stats_get(host, &st, STRATA_STATS_VERSION), 0);
    CHECK(st.wb_enqueued == 1 && st.wb_backlog == 1);

    /* over the backlog limit: EBUSY at once, nothing written */
    CHECK_RC(strata_op_write_behind(&op, full, "k2", 2, "no", 2, 0), 0);
    CHECK_RC(drive(op, NULL), STRATA_EBUSY);
    CHECK(strstr(strata_op_error(op), "wb_max_backlog") != NULL);
    strata_op_free(op);
    CHECK_RC(strata_get(blk, "k2", 2, &v), STRATA_MISS);

    /* a second write of the key: the flusher delivers the latest, once */
    CHECK_RC(strata_op_write_behind(&op, host, "k", 1, "v2", 2, 0), 0);
    CHECK_RC(drive(op, NULL), 0);
    strata_op_free(op);
    CHECK_RC(strata_wb_poll(blk, 10, &b), STRATA_OK);
    REQUIRE(b != NULL);
    CHECK(strata_wb_batch_count(b) == 1);
    CHECK_RC(strata_wb_batch_item(b, 0, &key, &keylen, &val, &vallen), 0);
    CHECK(keylen == 1 && key[0] == 'k' && vallen == 2 && memcmp(val, "v2", 2) == 0);
    CHECK_RC(strata_wb_ack(b), 0);
    CHECK_RC(strata_flush(blk, 2000), 0);

    /* misuse: precise errors, nothing begun */
    CHECK_RC(strata_op_write_behind(&op, host, "k", 1, NULL, 3, 0), STRATA_EINVAL);
    CHECK(op == NULL);
    CHECK_RC(strata_op_write_behind(&op, host, "k", 1, "x", 1, -5), STRATA_EINVAL);
    CHECK_RC(strata_op_write_behind(&op, host, "", 0, "x", 1, 0), STRATA_EKEY);
    strata_value_dispose(&v);
    strata_cache_free(host);
    strata_cache_free(full);
    strata_cache_free(blk);
}

/* ---- 100 lookups of one cold key here and 100 in another process ---- */

typedef struct stampede {
    poll_driver *d;
    int loads, served, errors;
    strata_op *leader;
} stampede;

/* An entry stamped by another process with a version newer than the one
 * this cache holds is served, not reloaded: the op reads that version anew
 * (lookup and get_many; tags.c's strata__tags_forget_behind). */
static void newer_stamp_is_served(void)
{
    const char *ns = test_unique("sio");
    strata_cache *host = open_cache(test_backend_url("redis"), ns, "io=host&tag_cache_ms=600000");
    strata_cache *blk = open_cache(test_backend_url("redis"), ns, "tag_cache_ms=600000");
    strata_value v = STRATA_VALUE_INIT;
    strata_op *op = NULL;
    const char *tag = "tv", *key = "k";
    size_t taglen = 2, keylen = 1;
    strata_set_options so = STRATA_SET_OPTIONS_INIT;
    int round;
    REQUIRE(host && blk);
    so.tags = &tag;
    so.taglens = &taglen;
    so.ntags = 1;
    CHECK_RC(strata_set_ex(blk, "k", 1, "v0", 2, &so), 0);
    CHECK_RC(strata_op_lookup(&op, host, "k", 1, NULL), 0);
    CHECK_RC(drive(op, &v), 0); /* host now holds the tag's version */
    strata_op_free(op);
    for (round = 0; round < 2; round++) {
        CHECK_RC(strata_invalidate_tag(blk, tag, taglen), 0);
        CHECK_RC(strata_set_ex(blk, "k", 1, round ? "v2" : "v1", 2, &so), 0);
        if (round == 0) {
            CHECK_RC(strata_op_lookup(&op, host, "k", 1, NULL), 0);
            CHECK_RC(drive(op, &v), 0);
        } else {
            CHECK_RC(strata_op_get_many(&op, host, 1, &key, &keylen, NULL), 0);
            CHECK_RC(drive(op, NULL), 0);
            CHECK_RC(strata_op_item(op, 0, &v), 0);
        }
        CHECK_VALUE(&v, round ? "v2" : "v1");
        strata_op_free(op);
    }
    /* and a bump is still seen */
    CHECK_RC(strata_op_invalidate_tag(&op, host, tag, taglen), 0);
    CHECK_RC(drive(op, NULL), 0);
    strata_op_free(op);
    {
        strata_cache *strict = open_cache(test_backend_url("redis"), ns, "tag_cache_ms=0");
        REQUIRE(strict);
        CHECK_RC(strata_get(strict, "k", 1, &v), STRATA_MISS);
        strata_cache_free(strict);
    }
    strata_value_dispose(&v);
    strata_cache_free(host);
    strata_cache_free(blk);
}

static void stampede_done(void *ud, strata_op *op);

static void load_finished(void *ud)
{
    stampede *s = ud;
    strata_op_fill(s->leader, "loaded", 6, 0);
    poll_driver_add(s->d, s->leader, stampede_done, s);
    s->leader = NULL;
}

static void stampede_done(void *ud, strata_op *op)
{
    stampede *s = ud;
    strata_value v = STRATA_VALUE_INIT;
    int rc = strata_op_result(op, &v);
    if (rc == STRATA_MISS_LEAD && s->leader == NULL) {
        s->loads++;
        s->leader = op; /* a 200 ms loader, on the driver's timer: the thread goes on */
        poll_driver_at(s->d, strata_clock_ms() + 200, load_finished, s);
        strata_value_dispose(&v);
        return;
    }
    if (rc == 0 && v.len == 6 && memcmp(v.data, "loaded", 6) == 0)
        s->served++;
    else if (rc != 0 || v.len != 0) /* the leader's own fill result is 0 with no value */
        s->errors++;
    strata_value_dispose(&v);
    strata_op_free(op);
}

static int run_stampede(const char *ns)
{
    strata_cache *c = open_cache(test_backend_url("redis"), ns, "io=host&lock_wait_ms=5000");
    strata_op_options o;
    stampede s;
    int i;
    if (c == NULL)
        return -1;
    memset(&s, 0, sizeof s);
    s.d = poll_driver_new(4);
    strata_op_options_init(&o, STRATA_OP_OPTIONS_VERSION);
    o.wait = 1;
    for (i = 0; i < 100; i++) {
        strata_op *op = NULL;
        if (strata_op_lookup(&op, c, "cold", 4, &o) == 0)
            poll_driver_add(s.d, op, stampede_done, &s);
    }
    poll_driver_run(s.d, strata_clock_ms() + 10000);
    poll_driver_free(s.d);
    strata_cache_free(c);
    if (s.errors || s.served < 99)
        fprintf(stderr, "  stampede pid %d: %d served, %d errors, %d loads\n", (int)getpid(), s.served, s.errors,
                s.loads);
    return s.errors || s.served < 99 ? -1 : s.loads;
}

static void cold_key_one_load_across_processes(void)
{
    const char *ns = test_unique("sio-stampede");
    int go[2], status = 0, mine;
    pid_t pid;
    char b;
    REQUIRE(pipe(go) == 0);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(go[1]);
        if (read(go[0], &b, 1) != 1)
            _exit(100);
        mine = run_stampede(ns);
        _exit(mine < 0 ? 100 : mine);
    }
    close(go[0]);
    b = 'g';
    CHECK(write(go[1], &b, 1) == 1);
    close(go[1]);
    mine = run_stampede(ns);
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 100);
    CHECK(mine >= 0);
    CHECK_RC(mine + (WIFEXITED(status) ? WEXITSTATUS(status) : 100), 1);
}

/* ---- 1,000 mixed ops in flight ---- */

typedef struct mixed {
    int done, errors;
    int64_t latest;             /* the last op's finish, for the deadline check */
} mixed;

static void mixed_done(void *ud, strata_op *op)
{
    mixed *m = ud;
    int rc = strata_op_result(op, NULL);
    m->done++;
    if (rc < 0) {
        m->errors++;
        if (m->errors < 5)
            fprintf(stderr, "  mixed op failed: %s\n", strata_op_error(op));
    }
    m->latest = strata_clock_ms();
    strata_op_free(op);
}

static void thousand_mixed_ops_in_flight(void)
{
    const char *ns = test_unique("sio-mixed");
    strata_cache *c = open_cache(test_backend_url("redis"), ns, "io=host&timeout_ms=3000");
    strata_cache *blk = open_cache(test_backend_url("redis"), ns, "");
    poll_driver *d = poll_driver_new(4);
    strata_op_options plain;
    mixed m = {0, 0, 0};
    strata_value v = STRATA_VALUE_INIT;
    int i, rc;
    int64_t t0;
    REQUIRE(c && blk);
    strata_op_options_init(&plain, STRATA_OP_OPTIONS_VERSION);
    plain.lease = 0;
    t0 = strata_clock_ms();
    for (i = 0; i < 1000; i++) {
        char key[32];
        size_t kl = (size_t)snprintf(key, sizeof key, "k%d", i % 97);
        const char *keys[2] = {key, "k1"};
        size_t lens[2] = {kl, 2};
        strata_op *op = NULL;
        switch (i % 5) {
        case 0: rc = strata_op_set(&op, c, key, kl, key, kl, NULL); break;
        case 1: rc = strata_op_lookup(&op, c, key, kl, &plain); break;
        case 2: rc = strata_op_get_many(&op, c, 2, keys, lens, NULL); break;
        case 3: rc = strata_op_delete(&op, c, key, kl); break;
        default: rc = strata_op_invalidate_tag(&op, c, "mixed", 5); break;
        }
        CHECK_RC(rc, 0);
        if (op)
            poll_driver_add(d, op, mixed_done, &m);
    }
    CHECK_RC(poll_driver_run(d, t0 + 20000), 0);
    CHECK_RC(m.done, 1000);
    CHECK_RC(m.errors, 0);
    CHECK(m.latest - t0 < 3000 + 2000); /* every exchange's deadline is 3 s from its send */
    /* the last write of a key by op is what the blocking API reads */
    {
        strata_op *op = NULL;
        CHECK_RC(strata_op_set(&op, c, "final", 5, "f", 1, NULL), 0);
        CHECK_RC(drive(op, NULL), 0);
        strata_op_free(op);
        CHECK_RC(strata_get(blk, "final", 5, &v), 0);
        CHECK_VALUE(&v, "f");
    }
    strata_value_dispose(&v);
    poll_driver_free(d);
    strata_cache_free(c);
    strata_cache_free(blk);
}

/* ---- a paused server next to a live one ---- */

typedef struct paused {
    int timeouts, other, done;
    int64_t started, worst_late; /* how far past its deadline an op ended */
    int64_t timeout_ms;
} paused;

static void paused_done(void *ud, strata_op *op)
{
    paused *p = ud;
    int64_t late = strata_clock_ms() - (p->started + p->timeout_ms);
    int rc = strata_op_result(op, NULL);
    if (rc == STRATA_ETIMEOUT)
        p->timeouts++;
    else
        p->other++;
    if (late > p->worst_late)
        p->worst_late = late;
    p->done++;
    strata_op_free(op);
}

typedef struct live {
    poll_driver *d;
    strata_cache *c;
    int served, errors;
    int64_t until;
} live;

static void live_done(void *ud, strata_op *op);

static void live_start(live *l)
{
    strata_op *op = NULL;
    strata_op_options o;
    strata_op_options_init(&o, STRATA_OP_OPTIONS_VERSION);
    o.lease = 0;
    if (strata_op_lookup(&op, l->c, "hot", 3, &o) == 0)
        poll_driver_add(l->d, op, live_done, l);
}

static void live_done(void *ud, strata_op *op)
{
    live *l = ud;
    strata_value v = STRATA_VALUE_INIT;
    if (strata_op_result(op, &v) == 0 && v.len == 3)
        l->served++;
    else
        l->errors++;
    strata_value_dispose(&v);
    strata_op_free(op);
    if (strata_clock_ms() < l->until)
        live_start(l); /* keep one in flight the whole time */
}

static void paused_server_times_out_while_live_one_serves(void)
{
    const char *ns = test_unique("sio-pause");
    test_server s;
    char u[256];
    strata_cache *pc, *lc, *lblk;
    poll_driver *d = poll_driver_new(4);
    paused p;
    live l;
    int i;
    REQUIRE(test_server_start(&s, "redis") == 0);
    snprintf(u, sizeof u, "%s", s.url);
    pc = open_cache(u, ns, "io=host&timeout_ms=300&breaker_threshold=0");
    lc = open_cache(test_backend_url("redis"), ns, "io=host&timeout_ms=2000");
    lblk = open_cache(test_backend_url("redis"), ns, "");
    REQUIRE(pc && lc && lblk);
    CHECK_RC(strata_set(lblk, "hot", 3, "yes", 3, 0), 0);
    test_server_pause(&s);
    memset(&p, 0, sizeof p);
    p.timeout_ms = 300;
    p.started = strata_clock_ms();
    for (i = 0; i < 1000; i++) {
        char key[32];
        size_t kl = (size_t)snprintf(key, sizeof key, "p%d", i);
        strata_op *op = NULL;
        int rc = i % 2 ? strata_op_lookup(&op, pc, key, kl, NULL) : strata_op_set(&op, pc, key, kl, "x", 1, NULL);
        CHECK_RC(rc, 0);
        if (op)
            poll_driver_add(d, op, paused_done, &p);
    }
    memset(&l, 0, sizeof l);
    l.d = d;
    l.c = lc;
    l.until = p.started + 600;
    live_start(&l);
    poll_driver_run(d, p.started + 5000);
    test_server_resume(&s);
    CHECK_RC(p.done, 1000);
    CHECK_RC(p.timeouts, 1000);
    CHECK_RC(p.other, 0);
    /* on time: the deadline plus a scheduling margin on a loaded 2-core machine */
    CHECK(p.worst_late < 700);
    if (p.worst_late >= 700)
        fprintf(stderr, "  worst op ended %lld ms past its deadline\n", (long long)p.worst_late);
    /* meanwhile the same thread served the live server, during and after the pause */
    CHECK(l.served >= 10);
    CHECK_RC(l.errors, 0);
    poll_driver_free(d);
    strata_cache_free(pc);
    strata_cache_free(lc);
    strata_cache_free(lblk);
    test_server_stop(&s);
}

static int holds_bytes(const char *data, size_t len, const char *what)
{
    size_t i, n = strlen(what);
    for (i = 0; i + n <= len; i++)
        if (memcmp(data + i, what, n) == 0)
            return 1;
    return 0;
}

static int l1_holds(strata_cache *c, const char *key, const char *want)
{
    strata_value v = STRATA_VALUE_INIT;
    uint64_t version = 0;
    int rc = strata_l1_get(c, key, strlen(key), &v, &version), ok;
    ok = want ? rc == STRATA_OK && v.len == strlen(want) && memcmp(v.data, want, v.len) == 0 : rc == STRATA_MISS;
    strata_value_dispose(&v);
    return ok;
}

/* "old" set and in L1, then a set of "new" whose write request is out
 * (the namespace generation is cached by the first set: the first exchange
 * is the write). */
static strata_op *set_new_over_old(strata_cache *host, strata_value *v, strata_io *io)
{
    strata_op *op = NULL;
    if (strata_op_set(&op, host, "k", 1, "old", 3, NULL) != 0)
        return NULL;
    CHECK_RC(drive(op, v), 0);
    strata_op_free(op);
    CHECK(l1_holds(host, "k", "old"));
    if (strata_op_set(&op, host, "k", 1, "new", 3, NULL) != 0)
        return NULL;
    CHECK_RC(strata_op_next(op, io), 0);
    CHECK(io->kind == STRATA_IO_SEND && holds_bytes(io->data, io->len, "MULTI"));
    return op;
}

/* A set op whose write is out keeps L1 serving the old value (as the
 * blocking set does); its failure drops the key (the write may have
 * landed); a set that succeeds leaves the new value in L1. */
static void op_set_serves_old_value_in_flight(void)
{
    const char *ns = test_unique("sioflight");
    strata_cache *host = open_cache(test_backend_url("redis"), ns, "io=host&l1=1&l1_admission=all");
    strata_value v = STRATA_VALUE_INIT;
    strata_io io = STRATA_IO_INIT;
    strata_op *op = NULL;
    REQUIRE(host);
    REQUIRE((op = set_new_over_old(host, &v, &io)) != NULL);
    CHECK(l1_holds(host, "k", "old"));
    CHECK_RC(strata_op_io_failed(op, STRATA_ETIMEOUT, "not sent"), 0);
    CHECK(l1_holds(host, "k", NULL));
    strata_op_free(op);
    REQUIRE(strata_op_set(&op, host, "k", 1, "new", 3, NULL) == 0);
    CHECK_RC(drive(op, &v), 0);
    strata_op_free(op);
    CHECK(l1_holds(host, "k", "new"));
    strata_value_dispose(&v);
    strata_cache_free(host);
}

/* A write op freed while its request is out (a host that drops a killed
 * request's op without strata_op_io_failed) settles like a failure: the
 * write may have landed, so L1 drops the key rather than serving the old
 * value until l1_ttl_ms. Freed after its cache, it touches nothing. */
static void op_set_freed_in_flight_drops_the_key(void)
{
    const char *ns = test_unique("siofreed");
    strata_cache *host = open_cache(test_backend_url("redis"), ns, "io=host&l1=1&l1_admission=all");
    strata_value v = STRATA_VALUE_INIT;
    strata_io io = STRATA_IO_INIT;
    strata_op *op = NULL;
    REQUIRE(host);
    REQUIRE((op = set_new_over_old(host, &v, &io)) != NULL);
    strata_op_free(op);
    CHECK(l1_holds(host, "k", NULL));
    REQUIRE(strata_op_set(&op, host, "k", 1, "newer", 5, NULL) == 0);
    CHECK_RC(strata_op_next(op, &io), 0);
    strata_cache_free(host);
    strata_op_free(op);
    strata_value_dispose(&v);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"ops_match_the_blocking_api", ops_match_the_blocking_api},
        {"newer_stamp_is_served", newer_stamp_is_served},
        {"op_meta_for_host_tiers", op_meta_for_host_tiers},
        {"op_touch_renews_like_the_blocking_api", op_touch_renews_like_the_blocking_api},
        {"op_write_behind_is_delivered_by_a_flusher", op_write_behind_is_delivered_by_a_flusher},
        {"cold_key_one_load_across_processes", cold_key_one_load_across_processes},
        {"thousand_mixed_ops_in_flight", thousand_mixed_ops_in_flight},
        {"paused_server_times_out_while_live_one_serves", paused_server_times_out_while_live_one_serves},
        {"op_set_serves_old_value_in_flight", op_set_serves_old_value_in_flight},
        {"op_set_freed_in_flight_drops_the_key", op_set_freed_in_flight_drops_the_key},
    };
    test_backend_url("redis"); /* exits 77 without a server */
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
