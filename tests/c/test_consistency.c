/*
 * Read-your-writes on one handle under concurrency, and the same stale rules
 * for every read:
 *   - after strata_set / strata_delete / strata_set_many returned OK, this
 *     handle never serves the older value from its own L1, even while other
 *     threads' reads of that key (fills of L1) are in flight;
 *   - with the backend down, get and get_many both serve a value this process
 *     saw, stale from L1 within its stale window.
 *   test_consistency memory | redis | memcached
 */
#include "test.h"
#include "server.h"
#include "platform/platform.h"

#include <pthread.h>

#define K(s) (s), strlen(s)

static const char *kind;

static strata_cache *open_query(const char *query)
{
    char u[1024];
    strata_cache *c = NULL;
    const char *base = test_backend_url(kind);
    snprintf(u, sizeof u, "%s%sns=%s&%s", base, strchr(base, '?') ? "&" : "?", test_unique("ryw"), query);
    if (strata_cache_new(&c, u, NULL) != 0)
        fprintf(stderr, "  open %s: %s\n", u, strata_error_last());
    return c;
}

typedef struct readers {
    strata_cache *c;
    volatile int stop;
} readers;

/* Keeps L1 fills of "k" in flight: every read that misses L1 goes to the
 * backend and stores what it read. */
static void *reader(void *arg)
{
    readers *r = arg;
    strata_value v = STRATA_VALUE_INIT;
    while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED))
        (void)strata_get(r->c, K("k"), &v);
    strata_value_dispose(&v);
    return NULL;
}

enum { READERS = 3, ROUNDS = 1500 };

static void own_writes_are_read_back_under_concurrent_fills(void)
{
    readers r;
    pthread_t th[READERS];
    strata_value v = STRATA_VALUE_INIT;
    int i, rc, wrong_set = 0, wrong_del = 0, wrong_many = 0;
    memset(&r, 0, sizeof r);
    r.c = open_query("l1=1&l1_ttl_ms=60000&ttl_ms=60000&xfetch_beta=0&timeout_ms=2000");
    REQUIRE(r.c);
    CHECK_RC(strata_set(r.c, K("k"), K("start"), 0), 0);
    for (i = 0; i < READERS; i++)
        pthread_create(&th[i], NULL, reader, &r);
    for (i = 0; i < ROUNDS; i++) {
        char val[32];
        const char *keys[1] = {"k"};
        size_t klens[1] = {1}, vlens[1];
        const char *vals[1];
        snprintf(val, sizeof val, "v%d", i);
        if (strata_set(r.c, K("k"), K(val), 0) == 0) {
            rc = strata_get(r.c, K("k"), &v);
            if (rc != STRATA_OK || v.len != strlen(val) || memcmp(v.data, val, v.len) != 0)
                wrong_set++;
        }
        strata__sleep_ms(0);
        if (strata_delete(r.c, K("k")) >= 0) {
            rc = strata_get(r.c, K("k"), &v);
            if (rc != STRATA_MISS)
                wrong_del++;
        }
        snprintf(val, sizeof val, "m%d", i);
        vals[0] = val;
        vlens[0] = strlen(val);
        if (strata_set_many(r.c, 1, keys, klens, vals, vlens, 0) == 0) {
            rc = strata_get(r.c, K("k"), &v);
            if (rc != STRATA_OK || v.len != strlen(val) || memcmp(v.data, val, v.len) != 0)
                wrong_many++;
        }
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
    for (i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    if (wrong_set || wrong_del || wrong_many)
        fprintf(stderr, "  older value served after: set %d, delete %d, set_many %d of %d\n", wrong_set,
                wrong_del, wrong_many, ROUNDS);
    CHECK(wrong_set == 0);
    CHECK(wrong_del == 0);
    CHECK(wrong_many == 0);
    strata_value_dispose(&v);
    strata_cache_free(r.c);
}

/* Defect 12: get served stale from L1 with the server down, get_many did not. */
static void get_many_serves_stale_like_get(void)
{
    test_server s;
    strata_cache *c = NULL;
    strata_value v = STRATA_VALUE_INIT, outs[2];
    const char *keys[2] = {"old", "never"};
    size_t lens[2] = {3, 5};
    int results[2], rc;
    char u[512];
    if (strcmp(kind, "memory") == 0)
        return; /* needs a server to stop */
    REQUIRE(test_server_start(&s, kind) == 0);
    snprintf(u, sizeof u, "%s?timeout_ms=200&connect_timeout_ms=200&breaker_threshold=0"
             "&l1=1&l1_ttl_ms=50&ttl_ms=200&stale_ms=60000&xfetch_beta=0", s.url);
    if (strata_cache_new(&c, u, NULL) != 0)
        fprintf(stderr, "  open %s: %s\n", u, strata_error_last());
    if (c == NULL)
        test_server_stop(&s);
    REQUIRE(c);
    memset(outs, 0, sizeof outs);
    CHECK_RC(strata_set(c, K("old"), K("v1"), 0), 0);
    strata__sleep_ms(300); /* past fresh-until, within stale-until */
    test_server_pause(&s);
    CHECK_RC(strata_get(c, K("old"), &v), STRATA_HIT_STALE);
    CHECK_VALUE(&v, "v1");
    /* the one key: exactly what get answers */
    CHECK_RC(strata_get_many(c, 1, keys, lens, outs, results), 0);
    CHECK_RC(results[0], STRATA_HIT_STALE);
    CHECK(outs[0].level == STRATA_LEVEL_STALE && outs[0].stale == 1);
    CHECK(outs[0].len == 2 && memcmp(outs[0].data, "v1", 2) == 0);
    /* with a key never seen here the call reports the outage, as get does,
     * and still hands back what it could serve */
    rc = strata_get_many(c, 2, keys, lens, outs, results);
    CHECK(rc == STRATA_EBACKEND || rc == STRATA_ETIMEOUT || rc == STRATA_EBREAKER);
    CHECK_RC(results[0], STRATA_HIT_STALE);
    CHECK(outs[0].len == 2 && memcmp(outs[0].data, "v1", 2) == 0);
    CHECK(results[1] == rc);
    test_server_resume(&s);
    strata_value_dispose(&v);
    strata_value_dispose(&outs[0]);
    strata_value_dispose(&outs[1]);
    strata_cache_free(c);
    test_server_stop(&s);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"own_writes_are_read_back_under_concurrent_fills", own_writes_are_read_back_under_concurrent_fills},
        {"get_many_serves_stale_like_get", get_many_serves_stale_like_get},
    };
    if (argc < 2) {
        fprintf(stderr, "usage: test_consistency memory|redis|memcached [case]\n");
        return 2;
    }
    kind = argv[1];
    return test_main(argc - 1, argv + 1, cases, sizeof cases / sizeof cases[0]);
}
