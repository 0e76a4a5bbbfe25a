/*
 * The behavioural suite through the public API, run once per backend:
 *   test_api memory | redis | memcached
 */
#include "test.h"
#include "engine/cache.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *backend_name;
static char url[1024];

static strata_cache *open_cache(const char *query)
{
    strata_cache *c = NULL;
    char u[1024];
    const char *base = test_backend_url(backend_name);
    snprintf(u, sizeof u, "%s%s%s", strcmp(backend_name, "memory") == 0 ? "memory://shared" : base,
             strchr(base, '?') ? "&" : "?", query ? query : "timeout_ms=1000");
    if (strata_cache_new(&c, u, NULL) != 0) {
        fprintf(stderr, "  cannot open %s: %s\n", u, strata_error_last());
        return NULL;
    }
    snprintf(url, sizeof url, "%s", u);
    return c;
}

#define K(s) (s), strlen(s)

static void set_get_delete(void)
{
    strata_cache *c = open_cache("ns=api");
    strata_value v = STRATA_VALUE_INIT;
    const char *key = test_unique("k");
    char k2[128];
    REQUIRE(c);
    snprintf(k2, sizeof k2, "%s", key);
    CHECK_RC(strata_get(c, K(k2), &v), STRATA_MISS);
    CHECK_RC(strata_set(c, K(k2), K("value-1"), 0), 0);
    CHECK_RC(strata_get(c, K(k2), &v), STRATA_OK);
    CHECK_VALUE(&v, "value-1");
    CHECK(v.level == STRATA_LEVEL_BACKEND && v.stale == 0 && v.ttl_ms > 0);
    CHECK_RC(strata_set(c, K(k2), "bin\0ary", 7, 0), 0); /* binary-safe */
    CHECK_RC(strata_get(c, K(k2), &v), STRATA_OK);
    CHECK(v.len == 7 && memcmp(v.data, "bin\0ary", 7) == 0);
    CHECK_RC(strata_set(c, K(k2), "", 0, 0), 0); /* empty value is a value */
    CHECK_RC(strata_get(c, K(k2), &v), STRATA_OK);
    CHECK(v.len == 0);
    CHECK_RC(strata_delete(c, K(k2)), 0);
    CHECK_RC(strata_get(c, K(k2), &v), STRATA_MISS);
    CHECK_RC(strata_delete(c, K(k2)), STRATA_MISS);
    CHECK_RC(strata_invalidate(c, K(k2)), 0);
    strata_value_dispose(&v);
    strata_value_dispose(&v); /* twice is fine */
    strata_cache_free(c);
}

static void ttl_is_honoured(void)
{
    strata_cache *c = open_cache("ns=api");
    strata_value v = STRATA_VALUE_INIT;
    char key[128];
    REQUIRE(c);
    snprintf(key, sizeof key, "%s", test_unique("ttl"));
    CHECK_RC(strata_set(c, K(key), K("short"), 1000), 0);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_OK);
    strata__sleep_ms(2100); /* memcached expiries have 1 s resolution */
    CHECK_RC(strata_get(c, K(key), &v), STRATA_MISS);
    /* touch extends a live entry and misses a dead one */
    CHECK_RC(strata_set(c, K(key), K("again"), 1000), 0);
    CHECK_RC(strata_touch(c, K(key), 60000), 0);
    strata__sleep_ms(2100);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_OK);
    CHECK_VALUE(&v, "again");
    CHECK_RC(strata_touch(c, K("never-set-touch-key"), 1000), STRATA_MISS);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void batch_operations(void)
{
    strata_cache *c = open_cache("ns=api");
    char names[5][64];
    const char *keys[5];
    size_t lens[5], i;
    const char *vals[3] = {"a", "bb", "ccc"};
    size_t vlens[3] = {1, 2, 3};
    strata_value outs[5];
    int results[5];
    REQUIRE(c);
    memset(outs, 0, sizeof outs);
    for (i = 0; i < 5; i++) {
        snprintf(names[i], sizeof names[i], "%s-%zu", test_unique("batch"), i);
        keys[i] = names[i];
        lens[i] = strlen(names[i]);
    }
    CHECK_RC(strata_set_many(c, 3, keys, lens, vals, vlens, 0), 0);
    keys[4] = keys[1]; /* a repeated key */
    lens[4] = lens[1];
    CHECK_RC(strata_get_many(c, 5, keys, lens, outs, results), 0);
    CHECK(results[0] == STRATA_OK && results[1] == STRATA_OK && results[2] == STRATA_OK);
    CHECK(results[3] == STRATA_MISS && results[4] == STRATA_OK);
    CHECK_VALUE(&outs[0], "a");
    CHECK_VALUE(&outs[2], "ccc");
    CHECK_VALUE(&outs[4], "bb");
    CHECK_RC(strata_get_many(c, 0, NULL, NULL, NULL, NULL), 0);
    for (i = 0; i < 5; i++)
        strata_value_dispose(&outs[i]);
    strata_cache_free(c);
}

/* get_many into the same values call after call, as a binding does: each
 * length from 0 to 300 bytes (the envelope then crosses every buffer size
 * edge), with a miss and a repeated key in each batch; every value exact
 * and NUL-terminated, whatever the value held before. */
static void get_many_reuses_values(void)
{
    strata_cache *c = open_cache("ns=api");
    char names[3][64], val[301];
    const char *keys[4];
    size_t lens[4], i, len;
    strata_value outs[4];
    int results[4], failures = test_failures;
    REQUIRE(c);
    memset(outs, 0, sizeof outs);
    for (i = 0; i < 3; i++) {
        snprintf(names[i], sizeof names[i], "%s-%zu", test_unique("reuse"), i);
        keys[i] = names[i];
        lens[i] = strlen(names[i]);
    }
    keys[3] = keys[0];
    lens[3] = lens[0];
    for (len = 0; len <= 300; len++) {
        memset(val, 'a' + (int)(len % 26), len);
        CHECK_RC(strata_set(c, keys[0], lens[0], val, len, 0), 0);
        CHECK_RC(strata_set(c, keys[1], lens[1], val, len / 2, 0), 0);
        if (len % 2) /* keys[2] misses every other round */
            CHECK_RC(strata_delete(c, keys[2], lens[2]), 0);
        else
            CHECK_RC(strata_set(c, keys[2], lens[2], val, 300 - len, 0), 0);
        CHECK_RC(strata_get_many(c, 4, keys, lens, outs, results), 0);
        CHECK(results[0] == STRATA_OK && results[1] == STRATA_OK && results[3] == STRATA_OK);
        CHECK(results[2] == (len % 2 ? STRATA_MISS : STRATA_OK));
        CHECK(outs[0].len == len && memcmp(outs[0].data, val, len) == 0 && outs[0].data[len] == '\0');
        CHECK(outs[3].len == len && memcmp(outs[3].data, val, len) == 0 && outs[3].data[len] == '\0');
        CHECK(outs[1].len == len / 2 && memcmp(outs[1].data, val, len / 2) == 0 && outs[1].data[len / 2] == '\0');
        if (!(len % 2))
            CHECK(outs[2].len == 300 - len && memcmp(outs[2].data, val, 300 - len) == 0 &&
                  outs[2].data[300 - len] == '\0');
        CHECK(outs[0].level == STRATA_LEVEL_BACKEND && outs[0].ttl_ms > 0);
        if (test_failures > failures)
            break; /* one round's report is enough */
    }
    for (i = 0; i < 4; i++)
        strata_value_dispose(&outs[i]);
    strata_cache_free(c);
}

static void namespaces_isolate(void)
{
    strata_cache *a = open_cache("ns=alpha"), *b = open_cache("ns=beta");
    strata_value v = STRATA_VALUE_INIT;
    REQUIRE(a && b);
    CHECK_RC(strata_set(a, K("same-key"), K("from-a"), 0), 0);
    CHECK_RC(strata_set(b, K("same-key"), K("from-b"), 0), 0);
    CHECK_RC(strata_get(a, K("same-key"), &v), STRATA_OK);
    CHECK_VALUE(&v, "from-a");
    CHECK_RC(strata_delete(b, K("same-key")), 0);
    CHECK_RC(strata_get(a, K("same-key"), &v), STRATA_OK);
    strata_value_dispose(&v);
    strata_cache_free(a);
    strata_cache_free(b);
}

static void bad_input(void)
{
    strata_cache *c = open_cache("ns=api");
    strata_value v = STRATA_VALUE_INIT;
    static char long_key[5000];
    strata_stats before, after;
    REQUIRE(c);
    memset(long_key, 'x', sizeof long_key);
    strata_stats_get(c, &before, STRATA_STATS_VERSION);
    CHECK_RC(strata_get(NULL, K("k"), &v), STRATA_EINVAL);
    CHECK_MSG_HAS("cache handle is NULL");
    CHECK_RC(strata_get(c, NULL, 3, &v), STRATA_EINVAL);
    CHECK_MSG_HAS("key is NULL");
    CHECK_RC(strata_get(c, "k", 0, &v), STRATA_EKEY);
    CHECK_MSG_HAS("key is empty");
    CHECK_RC(strata_set(c, long_key, 4097, K("v"), 0), STRATA_EKEY);
    CHECK_MSG_HAS("4097 bytes");
    CHECK_RC(strata_get(c, K("k"), NULL), STRATA_EINVAL);
    CHECK_RC(strata_set(c, K("k"), NULL, 5, 0), STRATA_EINVAL);
    CHECK_MSG_HAS("value is NULL");
    CHECK_RC(strata_set(c, K("k"), K("v"), -5), STRATA_EINVAL);
    CHECK_MSG_HAS("ttl_ms");
    CHECK_RC(strata_delete(c, NULL, 0), STRATA_EINVAL);
    CHECK_RC(strata_stats_get(c, &after, 99), STRATA_EVERSION);
    strata_stats_get(c, &after, STRATA_STATS_VERSION);
    CHECK(after.sets == before.sets && after.deletes == before.deletes); /* nothing happened */
    {
        const char *keys[2] = {"ok", ""};
        size_t lens[2] = {2, 0};
        const char *vals[2] = {"1", "2"};
        size_t vlens[2] = {1, 1};
        CHECK_RC(strata_set_many(c, 2, keys, lens, vals, vlens, 0), STRATA_EKEY);
        CHECK_MSG_HAS("item 1");
        CHECK_RC(strata_get(c, K("ok"), &v), STRATA_MISS); /* all or nothing */
    }
    strata_value_dispose(&v);
    strata_cache_free(c);
}

/* Keys memcached cannot take raw (whitespace, control bytes, > 250 bytes)
 * work everywhere, and stay distinct. */
static void awkward_keys(void)
{
    strata_cache *c = open_cache("ns=api");
    strata_value v = STRATA_VALUE_INIT;
    static char long_key[4096];
    const char *keys[] = {"has space", "has\nnewline", "tab\there", "nul\0byte", "nul\0bytf"};
    size_t lens[] = {9, 11, 8, 8, 8}, i;
    REQUIRE(c);
    for (i = 0; i < 5; i++)
        CHECK_RC(strata_set(c, keys[i], lens[i], (const char *)&i, sizeof i, 0), 0);
    for (i = 0; i < 5; i++) {
        CHECK_RC(strata_get(c, keys[i], lens[i], &v), STRATA_OK);
        CHECK(v.len == sizeof i && memcmp(v.data, &i, sizeof i) == 0);
    }
    memset(long_key, 'L', sizeof long_key);
    CHECK_RC(strata_set(c, long_key, 4096, K("long-4096"), 0), 0);
    CHECK_RC(strata_set(c, long_key, 4095, K("long-4095"), 0), 0);
    CHECK_RC(strata_get(c, long_key, 4096, &v), STRATA_OK);
    CHECK_VALUE(&v, "long-4096");
    CHECK_RC(strata_get(c, long_key, 4095, &v), STRATA_OK);
    CHECK_VALUE(&v, "long-4095");
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void too_big_changes_nothing(void)
{
    strata_cache *c = open_cache("ns=api");
    strata_value v = STRATA_VALUE_INIT;
    size_t big = strcmp(backend_name, "memcached") == 0 ? 1100000
               : strcmp(backend_name, "memory") == 0 ? 4u << 20 : 0;
    char *buf;
    REQUIRE(c);
    if (big == 0) { /* redis takes 512 MiB: nothing sensible to test here */
        strata_cache_free(c);
        return;
    }
    buf = calloc(1, big);
    CHECK_RC(strata_set(c, K("big-key"), K("small"), 0), 0);
    CHECK_RC(strata_set(c, K("big-key"), buf, big, 0), STRATA_ETOOBIG);
    CHECK_MSG_HAS("bytes");
    CHECK_RC(strata_get(c, K("big-key"), &v), STRATA_OK);
    CHECK_VALUE(&v, "small");
    CHECK_RC(strata_set(c, K("after-big"), K("fine"), 0), 0); /* connection still in sync */
    CHECK_RC(strata_get(c, K("after-big"), &v), STRATA_OK);
    free(buf);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void corrupt_bytes_are_a_miss(void)
{
    strata_cache *c = open_cache("ns=api");
    strata_value v = STRATA_VALUE_INIT;
    const char *plants[] = {"plain text from another client", "\xe5SC\x01 truncated", ""};
    size_t i;
    REQUIRE(c);
    for (i = 0; i < 3; i++) {
        CHECK_RC(c->backend->ops->set(c->backend, K("api:planted"), plants[i], strlen(plants[i]), 60000), 0);
        CHECK_RC(strata_get(c, K("planted"), &v), STRATA_MISS);
    }
    CHECK_RC(strata_set(c, K("planted"), K("ours"), 0), 0); /* and it can be overwritten */
    CHECK_RC(strata_get(c, K("planted"), &v), STRATA_OK);
    CHECK_VALUE(&v, "ours");
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void l1_read_your_writes(void)
{
    strata_cache *c = open_cache("ns=api&l1=1");
    strata_value v = STRATA_VALUE_INIT;
    strata_stats st;
    char key[128];
    REQUIRE(c);
    snprintf(key, sizeof key, "%s", test_unique("l1"));
    CHECK_RC(strata_set(c, K(key), K("one"), 0), 0);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_OK);
    CHECK(v.level == STRATA_LEVEL_L1);
    CHECK_VALUE(&v, "one");
    CHECK_RC(strata_set(c, K(key), K("two"), 0), 0);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_OK);
    CHECK_VALUE(&v, "two");
    CHECK_RC(strata_delete(c, K(key)), 0);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_MISS);
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    CHECK(st.l1_hits == 2 && st.sets == 2 && st.deletes == 1 && st.misses == 1);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void l1_bounded(void)
{
    strata_cache *c = open_cache("ns=api&l1=1&l1_max_entries=64&l1_max_bytes=65536");
    strata_value v = STRATA_VALUE_INIT;
    strata_stats st;
    char key[64], val[200];
    int i;
    REQUIRE(c);
    memset(val, 'v', sizeof val);
    for (i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "bounded-%d", i);
        strata_set(c, K(key), val, sizeof val, 0);
    }
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    CHECK(st.l1_entries <= 64 && st.l1_bytes <= 65536 && st.l1_evictions > 0);
    CHECK_RC(strata_get(c, K("bounded-0"), &v), STRATA_OK); /* evicted from L1, still in the backend */
    strata_value_dispose(&v);
    strata_cache_free(c);
}

/* --- two-phase and loaders --- */

static void two_phase_lease(void)
{
    strata_cache *a = open_cache("ns=api"), *b = open_cache("ns=api");
    strata_value v = STRATA_VALUE_INIT;
    strata_ticket *t = NULL, *t2 = NULL;
    char key[128];
    REQUIRE(a && b);
    snprintf(key, sizeof key, "%s", test_unique("lease"));
    CHECK_RC(strata_lookup(a, K(key), &v, &t), STRATA_MISS_LEAD);
    REQUIRE(t != NULL);
    CHECK_RC(strata_lookup(b, K(key), &v, &t2), STRATA_MISS_WAIT);
    CHECK(t2 == NULL && v.wait_ms > 0);
    CHECK_RC(strata_fill(t, K("loaded"), 0), 0);
    CHECK_RC(strata_lookup(b, K(key), &v, &t2), STRATA_OK);
    CHECK_VALUE(&v, "loaded");
    /* abandon gives the lease back at once */
    CHECK_RC(strata_lookup(a, K("abandoned-key"), &v, &t), STRATA_MISS_LEAD);
    CHECK_RC(strata_abandon(t), 0);
    CHECK_RC(strata_lookup(b, K("abandoned-key"), &v, &t2), STRATA_MISS_LEAD);
    CHECK_RC(strata_fill_negative(t2, 0), 0);
    CHECK_RC(strata_lookup(a, K("abandoned-key"), &v, &t), STRATA_NEGATIVE);
    CHECK_RC(strata_delete(a, K("abandoned-key")), 0);
    CHECK_RC(strata_fill(NULL, K("x"), 0), STRATA_EINVAL);
    strata_value_dispose(&v);
    strata_cache_free(a);
    strata_cache_free(b);
}

/* The race: a slow loader starts, a writer updates and invalidates, the
 * loader fills. The newer value must survive. */
static void lease_race_keeps_newer_write(void)
{
    strata_cache *loader = open_cache("ns=api"), *writer = open_cache("ns=api");
    strata_value v = STRATA_VALUE_INIT;
    strata_ticket *t = NULL;
    char key[128];
    REQUIRE(loader && writer);
    snprintf(key, sizeof key, "%s", test_unique("race"));
    CHECK_RC(strata_lookup(loader, K(key), &v, &t), STRATA_MISS_LEAD);
    CHECK_RC(strata_invalidate(writer, K(key)), 0); /* source updated, cache invalidated */
    CHECK_RC(strata_fill(t, K("old-from-slow-loader"), 0), STRATA_ELEASE);
    CHECK_RC(strata_get(writer, K(key), &v), STRATA_MISS);

    CHECK_RC(strata_lookup(loader, K(key), &v, &t), STRATA_MISS_LEAD);
    CHECK_RC(strata_set(writer, K(key), K("new"), 0), 0);
    CHECK_RC(strata_fill(t, K("old-from-slow-loader"), 0), STRATA_ELEASE);
    CHECK_RC(strata_get(loader, K(key), &v), STRATA_OK);
    CHECK_VALUE(&v, "new");
    strata_value_dispose(&v);
    strata_cache_free(loader);
    strata_cache_free(writer);
}

typedef struct loader_state {
    int calls;
    int sleep_ms;
    int mode; /* 0 value, 1 not found, 2 error */
    pthread_mutex_t lock;
} loader_state;

static int test_loader(void *ud, const char *key, size_t keylen, strata_load *load)
{
    loader_state *s = ud;
    char buf[256];
    pthread_mutex_lock(&s->lock);
    s->calls++;
    pthread_mutex_unlock(&s->lock);
    strata__sleep_ms(s->sleep_ms);
    if (s->mode == 1)
        return strata_load_not_found(load, 0);
    if (s->mode == 2) {
        strata_load_error(load, "database is down");
        return STRATA_EUSER;
    }
    snprintf(buf, sizeof buf, "loaded:%.*s", (int)keylen, key);
    return strata_load_value(load, buf, strlen(buf), 0);
}

static void get_or_load_basics(void)
{
    strata_cache *c = open_cache("ns=api");
    strata_value v = STRATA_VALUE_INIT;
    loader_state s = {0, 0, 0, PTHREAD_MUTEX_INITIALIZER};
    char key[128];
    REQUIRE(c);
    snprintf(key, sizeof key, "%s", test_unique("gol"));
    CHECK_RC(strata_get_or_load(c, K(key), test_loader, &s, &v), STRATA_OK);
    CHECK(v.level == STRATA_LEVEL_LOADED && s.calls == 1);
    CHECK(v.len > 7 && memcmp(v.data, "loaded:", 7) == 0);
    CHECK_RC(strata_get_or_load(c, K(key), test_loader, &s, &v), STRATA_OK);
    CHECK(v.level == STRATA_LEVEL_BACKEND && s.calls == 1);

    /* not found is cached as a negative entry, reported as its own result */
    s.mode = 1;
    snprintf(key, sizeof key, "%s", test_unique("gol-neg"));
    CHECK_RC(strata_get_or_load(c, K(key), test_loader, &s, &v), STRATA_NEGATIVE);
    CHECK_RC(strata_get_or_load(c, K(key), test_loader, &s, &v), STRATA_NEGATIVE);
    CHECK(s.calls == 2);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_NEGATIVE);

    /* a loader error reaches the caller with its message and is not cached */
    s.mode = 2;
    snprintf(key, sizeof key, "%s", test_unique("gol-err"));
    CHECK_RC(strata_get_or_load(c, K(key), test_loader, &s, &v), STRATA_EUSER);
    CHECK_MSG_HAS("database is down");
    CHECK_RC(strata_get(c, K(key), &v), STRATA_MISS);
    s.mode = 0;
    CHECK_RC(strata_get_or_load(c, K(key), test_loader, &s, &v), STRATA_OK); /* lease was released */
    CHECK_RC(strata_get_or_load(c, K(key), NULL, &s, &v), STRATA_EINVAL);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

typedef struct stampede_arg {
    strata_cache *c;
    const char *key;
    loader_state *s;
    int rc;
    char value[64];
} stampede_arg;

static void *stampede_thread(void *p)
{
    stampede_arg *a = p;
    strata_value v = STRATA_VALUE_INIT;
    a->rc = strata_get_or_load(a->c, a->key, strlen(a->key), test_loader, a->s, &v);
    if (a->rc == 0)
        snprintf(a->value, sizeof a->value, "%.*s", (int)v.len, v.data);
    strata_value_dispose(&v);
    return NULL;
}

/* 32 threads on one cold key with a 100 ms loader: one load, 32 values. */
static void singleflight_32_threads(void)
{
    strata_cache *c = open_cache("ns=api&pool_size=8&lock_wait_ms=10000");
    loader_state s = {0, 100, 0, PTHREAD_MUTEX_INITIALIZER};
    pthread_t th[32];
    stampede_arg args[32];
    char key[128], want[160];
    int i;
    REQUIRE(c);
    snprintf(key, sizeof key, "%s", test_unique("stampede"));
    snprintf(want, sizeof want, "loaded:%s", key);
    for (i = 0; i < 32; i++) {
        args[i].c = c;
        args[i].key = key;
        args[i].s = &s;
        args[i].value[0] = '\0';
        pthread_create(&th[i], NULL, stampede_thread, &args[i]);
    }
    for (i = 0; i < 32; i++)
        pthread_join(th[i], NULL);
    CHECK(s.calls == 1);
    for (i = 0; i < 32; i++) {
        CHECK_RC(args[i].rc, STRATA_OK);
        CHECK(strcmp(args[i].value, want) == 0);
    }
    strata_cache_free(c);
}

/* Several handles (as separate processes would be) on one key: the lease
 * makes one load across them. */
static void lease_across_handles(void)
{
    strata_cache *cs[4];
    loader_state s = {0, 100, 0, PTHREAD_MUTEX_INITIALIZER};
    pthread_t th[16];
    stampede_arg args[16];
    char key[128];
    int i;
    snprintf(key, sizeof key, "%s", test_unique("cross"));
    for (i = 0; i < 4; i++) {
        cs[i] = open_cache("ns=api&pool_size=4&lock_wait_ms=10000");
        REQUIRE(cs[i]);
    }
    for (i = 0; i < 16; i++) {
        args[i].c = cs[i % 4];
        args[i].key = key;
        args[i].s = &s;
        pthread_create(&th[i], NULL, stampede_thread, &args[i]);
    }
    for (i = 0; i < 16; i++)
        pthread_join(th[i], NULL);
    CHECK(s.calls == 1);
    for (i = 0; i < 16; i++)
        CHECK_RC(args[i].rc, STRATA_OK);
    for (i = 0; i < 4; i++)
        strata_cache_free(cs[i]);
}

/* Stale-while-revalidate and stale-if-error. */
static void stale_serving(void)
{
    strata_cache *a = open_cache("ns=api&stale_ms=60000&xfetch_beta=0"), *b = open_cache("ns=api&xfetch_beta=0");
    strata_value v = STRATA_VALUE_INIT;
    strata_ticket *t = NULL, *t2 = NULL;
    loader_state s = {0, 0, 2, PTHREAD_MUTEX_INITIALIZER};
    char key[128];
    REQUIRE(a && b);
    snprintf(key, sizeof key, "%s", test_unique("swr"));
    CHECK_RC(strata_set(a, K(key), K("old"), 200), 0);
    strata__sleep_ms(300);
    CHECK_RC(strata_lookup(a, K(key), &v, &t), STRATA_HIT_REFRESH); /* one refresher */
    CHECK(v.stale == 1 && v.level == STRATA_LEVEL_STALE);
    CHECK_VALUE(&v, "old");
    CHECK_RC(strata_lookup(b, K(key), &v, &t2), STRATA_HIT_STALE); /* the others: stale at once */
    CHECK_VALUE(&v, "old");
    CHECK_RC(strata_abandon(t), 0);
    /* the loader fails: the stale value is served and reported as stale */
    CHECK_RC(strata_get_or_load(a, K(key), test_loader, &s, &v), STRATA_HIT_STALE);
    CHECK_VALUE(&v, "old");
    CHECK(s.calls == 1);
    /* the loader works: fresh again */
    s.mode = 0;
    CHECK_RC(strata_get_or_load(a, K(key), test_loader, &s, &v), STRATA_OK);
    CHECK(v.level == STRATA_LEVEL_LOADED);
    CHECK_RC(strata_get(b, K(key), &v), STRATA_OK);
    CHECK(v.stale == 0);
    strata_value_dispose(&v);
    strata_cache_free(a);
    strata_cache_free(b);
}

static void waiter_policies(void)
{
    strata_cache *lead = open_cache("ns=api");
    strata_cache *fail = open_cache("ns=api&lock_wait_ms=100&wait_policy=fail");
    strata_cache *load = open_cache("ns=api&lock_wait_ms=100&wait_policy=load");
    strata_value v = STRATA_VALUE_INIT;
    strata_ticket *t = NULL;
    loader_state s = {0, 0, 0, PTHREAD_MUTEX_INITIALIZER};
    char key[128];
    REQUIRE(lead && fail && load);
    snprintf(key, sizeof key, "%s", test_unique("wait"));
    CHECK_RC(strata_lookup(lead, K(key), &v, &t), STRATA_MISS_LEAD);
    CHECK_RC(strata_get_or_load(fail, K(key), test_loader, &s, &v), STRATA_ETIMEOUT);
    CHECK(s.calls == 0);
    CHECK_RC(strata_get_or_load(load, K(key), test_loader, &s, &v), STRATA_OK);
    CHECK(s.calls == 1 && v.level == STRATA_LEVEL_LOADED);
    CHECK_RC(strata_get(load, K(key), &v), STRATA_MISS); /* loaded without the lease: not stored */
    CHECK_RC(strata_fill(t, K("leader"), 0), 0);
    CHECK_RC(strata_get(load, K(key), &v), STRATA_OK);
    CHECK_VALUE(&v, "leader");
    strata_value_dispose(&v);
    strata_cache_free(lead);
    strata_cache_free(fail);
    strata_cache_free(load);
}

/* A lease holder that disappears blocks others no longer than the lease TTL. */
static void crashed_leader_lease_expires(void)
{
    strata_cache *a = open_cache("ns=api&lease_ttl_ms=1000");
    strata_cache *b = open_cache("ns=api&lease_ttl_ms=1000&lock_wait_ms=3000&wait_policy=fail");
    strata_value v = STRATA_VALUE_INIT;
    strata_ticket *t = NULL;
    loader_state s = {0, 0, 0, PTHREAD_MUTEX_INITIALIZER};
    char key[128];
    REQUIRE(a && b);
    snprintf(key, sizeof key, "%s", test_unique("crash"));
    CHECK_RC(strata_lookup(a, K(key), &v, &t), STRATA_MISS_LEAD);
    strata_cache_free(a); /* the leader vanishes without filling or abandoning */
    CHECK_RC(strata_get_or_load(b, K(key), test_loader, &s, &v), STRATA_OK);
    CHECK(s.calls == 1);
    free(t); /* the ticket's handle is gone; release its memory only */
    strata_value_dispose(&v);
    strata_cache_free(b);
}

/* kill -9 of a process holding the lease: the others load once the lease
 * TTL has passed, not later (and never wait out lock_wait_ms for nothing). */
static void killed_leader_process(void)
{
    strata_cache *b;
    strata_value v = STRATA_VALUE_INIT;
    loader_state s = {0, 0, 0, PTHREAD_MUTEX_INITIALIZER};
    char key[128], ready;
    int fds[2], status;
    int64_t t0, waited;
    pid_t pid;
    if (strcmp(backend_name, "memory") == 0) /* the store dies with the process */
        return;
    snprintf(key, sizeof key, "%s", test_unique("killed"));
    REQUIRE(pipe(fds) == 0);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        strata_cache *a = open_cache("ns=api&lease_ttl_ms=1000");
        strata_ticket *t = NULL;
        close(fds[0]);
        if (a == NULL || strata_lookup(a, K(key), &v, &t) != STRATA_MISS_LEAD)
            _exit(1);
        if (write(fds[1], "L", 1) != 1)
            _exit(1);
        for (;;)
            pause(); /* a loader stuck forever, until SIGKILL */
    }
    close(fds[1]);
    REQUIRE(read(fds[0], &ready, 1) == 1);
    close(fds[0]);
    t0 = strata__now_mono_ms();
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    b = open_cache("ns=api&lease_ttl_ms=1000&lock_wait_ms=10000&wait_policy=fail");
    REQUIRE(b);
    CHECK_RC(strata_get_or_load(b, K(key), test_loader, &s, &v), STRATA_OK);
    waited = strata__now_mono_ms() - t0;
    CHECK(s.calls == 1 && v.level == STRATA_LEVEL_LOADED);
    CHECK(waited < 1000 + 2000 + 1000); /* lease TTL (+ memcached's whole-second clock) + slack, far below lock_wait */
    CHECK_RC(strata_get(b, K(key), &v), STRATA_OK); /* stored under the new lease */
    strata_value_dispose(&v);
    strata_cache_free(b);
}

typedef struct race_arg {
    strata_cache *c;
    const char *base;
    pthread_barrier_t *start;
    int *loads;
    int errors;
} race_arg;

static int counting_loader(void *ud, const char *key, size_t keylen, strata_load *load)
{
    __atomic_add_fetch((int *)ud, 1, __ATOMIC_RELAXED);
    return strata_load_value(load, key, keylen, 0);
}

static void *race_thread(void *p)
{
    race_arg *a = p;
    strata_value v = STRATA_VALUE_INIT;
    char key[160];
    int i;
    for (i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "%s-%d", a->base, i);
        pthread_barrier_wait(a->start);
        if (strata_get_or_load(a->c, K(key), counting_loader, &a->loads[i], &v) != STRATA_OK)
            a->errors++;
    }
    strata_value_dispose(&v);
    return NULL;
}

/* Two handles race on each of 300 cold keys with an instant loader: a leader
 * may fill and release between the other's read and its lease, and that
 * lease must not load the key again. */
static void lease_recheck_after_fill(void)
{
    static int loads[300];
    strata_cache *a = open_cache("ns=api"), *b = open_cache("ns=api");
    pthread_barrier_t start;
    pthread_t th[2];
    race_arg args[2];
    char base[128];
    int i, twice = 0;
    REQUIRE(a && b);
    snprintf(base, sizeof base, "%s", test_unique("recheck"));
    memset(loads, 0, sizeof loads);
    pthread_barrier_init(&start, NULL, 2);
    args[0] = (race_arg){a, base, &start, loads, 0};
    args[1] = (race_arg){b, base, &start, loads, 0};
    pthread_create(&th[0], NULL, race_thread, &args[0]);
    pthread_create(&th[1], NULL, race_thread, &args[1]);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    for (i = 0; i < 300; i++)
        twice += loads[i] != 1;
    CHECK(twice == 0);
    CHECK(args[0].errors == 0 && args[1].errors == 0);
    pthread_barrier_destroy(&start);
    strata_cache_free(a);
    strata_cache_free(b);
}

static int pipe_fd = -1;

/* Reports each call through a pipe, so the parent counts across processes. */
static int pipe_loader(void *ud, const char *key, size_t keylen, strata_load *load)
{
    (void)ud;
    if (write(pipe_fd, "x", 1) != 1)
        return STRATA_EUSER;
    strata__sleep_ms(100);
    return strata_load_value(load, key, keylen, 0);
}

static void *pipe_thread(void *p)
{
    stampede_arg *a = p;
    strata_value v = STRATA_VALUE_INIT;
    a->rc = strata_get_or_load(a->c, a->key, strlen(a->key), pipe_loader, NULL, &v);
    strata_value_dispose(&v);
    return NULL;
}

/* 4 processes x 16 threads on one cold key: one load across all of them.
 * The children inherit the parent's handle, so this also checks fork safety. */
static void processes_stampede(void)
{
    strata_cache *c = open_cache("ns=api&pool_size=4&lock_wait_ms=10000");
    char key[128], buf[64];
    int fds[2], p, status, failed = 0, calls = 0;
    ssize_t n;
    pid_t pids[4];
    strata_value v = STRATA_VALUE_INIT;
    REQUIRE(c);
    if (strcmp(backend_name, "memory") == 0) { /* an in-process store is not shared by processes */
        strata_cache_free(c);
        return;
    }
    CHECK_RC(strata_set(c, K("warm-before-fork"), K("x"), 0), 0); /* parent has live sockets */
    snprintf(key, sizeof key, "%s", test_unique("procs"));
    REQUIRE(pipe(fds) == 0);
    for (p = 0; p < 4; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            pthread_t th[16];
            stampede_arg args[16];
            int i, bad = 0;
            close(fds[0]);
            pipe_fd = fds[1];
            for (i = 0; i < 16; i++) {
                args[i].c = c;
                args[i].key = key;
                pthread_create(&th[i], NULL, pipe_thread, &args[i]);
            }
            for (i = 0; i < 16; i++) {
                pthread_join(th[i], NULL);
                bad |= args[i].rc != STRATA_OK;
            }
            _exit(bad);
        }
    }
    close(fds[1]);
    while ((n = read(fds[0], buf, sizeof buf)) > 0)
        calls += (int)n;
    close(fds[0]);
    for (p = 0; p < 4; p++) {
        waitpid(pids[p], &status, 0);
        failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    CHECK(calls == 1);
    CHECK(failed == 0);
    CHECK_RC(strata_get(c, K("warm-before-fork"), &v), STRATA_OK); /* the parent still works */
    strata_value_dispose(&v);
    strata_cache_free(c);
}

typedef struct hot_state {
    strata_cache *c;
    const char *key;
    int loads, served_loaded, stop, errors;
    pthread_mutex_t lock;
} hot_state;

static int versioned_loader(void *ud, const char *key, size_t keylen, strata_load *load)
{
    hot_state *h = ud;
    char buf[32];
    int n;
    (void)key;
    (void)keylen;
    pthread_mutex_lock(&h->lock);
    n = ++h->loads;
    pthread_mutex_unlock(&h->lock);
    strata__sleep_ms(100);
    snprintf(buf, sizeof buf, "version-%d", n);
    return strata_load_value(load, buf, strlen(buf), 0);
}

static void *hot_reader(void *p)
{
    hot_state *h = p;
    strata_value v = STRATA_VALUE_INIT;
    while (!strata__atomic_load(&h->stop)) {
        int rc = strata_get_or_load(h->c, h->key, strlen(h->key), versioned_loader, h, &v);
        pthread_mutex_lock(&h->lock);
        if (rc != STRATA_OK) {
            h->errors++;
            fprintf(stderr, "  reader: %s %s\n", strata_error_name(rc), strata_error_last());
        }
        else if (v.level == STRATA_LEVEL_LOADED)
            h->served_loaded++;
        pthread_mutex_unlock(&h->lock);
        strata__sleep_ms(5);
    }
    strata_value_dispose(&v);
    return NULL;
}

/* A hot key nearing expiry under XFetch with a background refresher: exactly
 * one early refresh, and no reader ever waits for (is served by) a load. */
static void xfetch_one_early_refresh(void)
{
    strata_cache *c = open_cache("ns=api&ttl_ms=4000&xfetch_beta=1&refresh_threads=1&pool_size=12");
    strata_value v = STRATA_VALUE_INIT;
    hot_state h;
    pthread_t th[8];
    char key[128];
    int i;
    if (test_under_tsan())
        strata_cache_free(c);
    SKIP_UNDER_TSAN("timing: a 100 ms load cost against lock waits, which TSan's slowdown stretches");
    REQUIRE(c);
    memset(&h, 0, sizeof h);
    pthread_mutex_init(&h.lock, NULL);
    snprintf(key, sizeof key, "%s", test_unique("hot"));
    h.c = c;
    h.key = key;
    CHECK_RC(strata_get_or_load(c, K(key), versioned_loader, &h, &v), STRATA_OK); /* cold load: 100 ms cost */
    for (i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, hot_reader, &h);
    /* Readers run for 3.95 s of the first 4 s of freshness. With a load cost
     * of 100 ms (measured: more on a busy machine) this process refreshes at
     * least one cost before expiry (two on average); a second refresh of the
     * new version would need its draw ~3.7 s early: e^-36 at 100 ms, still
     * e^-6.4 if a loaded machine stretches the measured cost to 500 ms. */
    strata__sleep_ms(3950);
    strata__atomic_store(&h.stop, 1);
    for (i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    /* a refresh started near the end completes (its key may read as a miss
     * meanwhile, if the old version's time ran out first) */
    for (i = 0; i < 300 && h.loads == 2; i++) {
        int rc = strata_get(c, K(key), &v);
        if (rc == STRATA_OK && strcmp(v.data, "version-2") == 0)
            break;
        strata__sleep_ms(10);
    }
    {
        strata_stats st;
        strata_stats_get(c, &st, STRATA_STATS_VERSION);
        if (h.loads != 2)
            fprintf(stderr, "  loads %d: leases won %llu lost %llu, early refreshes %llu\n", h.loads,
                    (unsigned long long)st.leases_won, (unsigned long long)st.leases_lost,
                    (unsigned long long)st.early_refreshes);
    }
    CHECK(h.loads == 2);           /* the cold load and one early refresh */
    CHECK(h.served_loaded == 0);   /* nobody waited for the refresh */
    CHECK(h.errors == 0);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_OK);
    CHECK_VALUE(&v, "version-2");
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static int many_loader(void *ud, size_t n, const char *const *keys, const size_t *lens, strata_load *const *loads)
{
    loader_state *s = ud;
    size_t i;
    s->calls++;
    for (i = 0; i < n; i++) {
        if (lens[i] > 4 && memcmp(keys[i] + lens[i] - 4, "none", 4) == 0)
            strata_load_not_found(loads[i], 0);
        else
            strata_load_value(loads[i], keys[i], lens[i], 0);
    }
    return 0;
}

static void get_many_or_load_one_call(void)
{
    strata_cache *c = open_cache("ns=api");
    loader_state s = {0, 0, 0, PTHREAD_MUTEX_INITIALIZER};
    char names[4][96];
    const char *keys[4];
    size_t lens[4];
    strata_value outs[4];
    int results[4], i;
    REQUIRE(c);
    memset(outs, 0, sizeof outs);
    for (i = 0; i < 4; i++) {
        snprintf(names[i], sizeof names[i], "%s-%d%s", test_unique("gml"), i, i == 3 ? "none" : "");
        keys[i] = names[i];
        lens[i] = strlen(names[i]);
    }
    CHECK_RC(strata_set(c, keys[0], lens[0], K("present"), 0), 0);
    CHECK_RC(strata_get_many_or_load(c, 4, keys, lens, many_loader, &s, outs, results), 0);
    CHECK(s.calls == 1);
    CHECK(results[0] == STRATA_OK && results[1] == STRATA_OK && results[2] == STRATA_OK);
    CHECK(results[3] == STRATA_NEGATIVE);
    CHECK_VALUE(&outs[0], "present");
    CHECK(outs[1].len == lens[1] && memcmp(outs[1].data, keys[1], lens[1]) == 0);
    CHECK_RC(strata_get_many_or_load(c, 4, keys, lens, many_loader, &s, outs, results), 0);
    CHECK(s.calls == 1 && results[3] == STRATA_NEGATIVE); /* all cached now */
    for (i = 0; i < 4; i++)
        strata_value_dispose(&outs[i]);
    strata_cache_free(c);
}

/* memory:// with a max_bytes too small for its shards (issue 11 #10): an
 * error naming max_bytes and the minimum, and at the minimum it works. */
static int mem_writer(void *ud, const char *key, size_t keylen, const char *val, size_t vallen, strata_write *w)
{
    (void)key; (void)keylen; (void)val; (void)vallen; (void)w;
    ++*(int *)ud;
    return 0;
}

static void memory_max_bytes_minimum(void)
{
    strata_cache *c = NULL;
    strata_value v = STRATA_VALUE_INIT;
    const char *at;
    char u[128], big[1000];
    unsigned long long min;
    int writes = 0;
    if (strcmp(backend_name, "memory") != 0) {
        printf("  (memory:// only)\n");
        return;
    }
    CHECK_RC(strata_cache_new(&c, "memory://?max_bytes=1024", NULL), STRATA_EOPTION);
    CHECK(c == NULL);
    CHECK_MSG_HAS("max_bytes");
    REQUIRE((at = strstr(strata_error_last(), "at least ")) != NULL);
    min = strtoull(at + 9, NULL, 10);
    REQUIRE(min > 1024);
    snprintf(u, sizeof u, "memory://?max_bytes=%llu", min - 1);
    CHECK_RC(strata_cache_new(&c, u, NULL), STRATA_EOPTION);
    snprintf(u, sizeof u, "memory://?max_bytes=%llu", min);
    REQUIRE(strata_cache_new(&c, u, NULL) == 0);
    memset(big, 'b', sizeof big);
    CHECK_RC(strata_set(c, K("k"), big, sizeof big, 0), 0);
    CHECK_RC(strata_get(c, K("k"), &v), 0);
    CHECK(v.len == sizeof big);
    CHECK_RC(strata_write_through(c, K("w"), K("x"), 0, mem_writer, &writes), 0);
    CHECK(writes == 1);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void read_through_default_loader(void)
{
    strata_options o;
    strata_cache *c = NULL;
    strata_value v = STRATA_VALUE_INIT;
    loader_state s = {0, 0, 0, PTHREAD_MUTEX_INITIALIZER};
    char key[128];
    strata_options_init(&o, STRATA_OPTIONS_VERSION);
    o.loader = test_loader;
    o.loader_data = &s;
    c = open_cache("ns=api"); /* resolves url */
    REQUIRE(c != NULL);
    strata_cache_free(c);
    REQUIRE(strata_cache_new(&c, url, &o) == 0);
    snprintf(key, sizeof key, "%s", test_unique("rt"));
    CHECK_RC(strata_get(c, K(key), &v), STRATA_OK);
    CHECK(v.level == STRATA_LEVEL_LOADED && s.calls == 1);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_OK);
    CHECK(s.calls == 1);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"set_get_delete", set_get_delete},
        {"ttl_is_honoured", ttl_is_honoured},
        {"batch_operations", batch_operations},
        {"get_many_reuses_values", get_many_reuses_values},
        {"namespaces_isolate", namespaces_isolate},
        {"bad_input", bad_input},
        {"awkward_keys", awkward_keys},
        {"too_big_changes_nothing", too_big_changes_nothing},
        {"corrupt_bytes_are_a_miss", corrupt_bytes_are_a_miss},
        {"l1_read_your_writes", l1_read_your_writes},
        {"l1_bounded", l1_bounded},
        {"two_phase_lease", two_phase_lease},
        {"lease_race_keeps_newer_write", lease_race_keeps_newer_write},
        {"get_or_load_basics", get_or_load_basics},
        {"singleflight_32_threads", singleflight_32_threads},
        {"lease_across_handles", lease_across_handles},
        {"stale_serving", stale_serving},
        {"waiter_policies", waiter_policies},
        {"crashed_leader_lease_expires", crashed_leader_lease_expires},
        {"killed_leader_process", killed_leader_process},
        {"lease_recheck_after_fill", lease_recheck_after_fill},
        {"get_many_or_load_one_call", get_many_or_load_one_call},
        {"processes_stampede", processes_stampede},
        {"xfetch_one_early_refresh", xfetch_one_early_refresh},
        {"read_through_default_loader", read_through_default_loader},
        {"memory_max_bytes_minimum", memory_max_bytes_minimum},
    };
    if (argc < 2) {
        fprintf(stderr, "usage: test_api memory|redis|memcached [case]\n");
        return 2;
    }
    backend_name = argv[1];
    test_backend_url(backend_name); /* exits 77 when the server is not configured */
    return test_main(argc - 1, argv + 1, cases, sizeof cases / sizeof cases[0]);
}
