/*
 * A server that dies or stops answering: calls fail within their deadline,
 * get_or_load fails open to the loader, the breaker stops paying for a dead
 * server, and everything recovers when the server is back.
 *   test_outage redis | memcached
 */
#include "test.h"
#include "server.h"
#include "platform/platform.h"

static const char *kind;

static int loader(void *ud, const char *key, size_t keylen, strata_load *load)
{
    (*(int *)ud)++;
    return strata_load_value(load, key, keylen, 0);
}

static strata_cache *open_on(test_server *s, const char *query)
{
    char u[512];
    strata_cache *c = NULL;
    snprintf(u, sizeof u, "%s?%s", s->url, query);
    if (strata_cache_new(&c, u, NULL) != 0)
        fprintf(stderr, "  open %s: %s\n", u, strata_error_last());
    return c;
}

static void killed_server_fails_open_and_recovers(void)
{
    test_server s;
    strata_cache *c;
    strata_value v = STRATA_VALUE_INIT;
    strata_stats st;
    int calls = 0, rc, i;
    int64_t t0, elapsed;
    REQUIRE(test_server_start(&s, kind) == 0);
    c = open_on(&s, "timeout_ms=200&connect_timeout_ms=200&breaker_threshold=3&breaker_cooldown_ms=500");
    REQUIRE(c);
    CHECK_RC(strata_set(c, "k", 1, "v", 1, 0), 0);
    test_server_stop(&s);

    /* fail open: the loader answers, within the deadline */
    t0 = strata__now_mono_ms();
    CHECK_RC(strata_get_or_load(c, "k", 1, loader, &calls, &v), STRATA_OK);
    elapsed = strata__now_mono_ms() - t0;
    CHECK(calls == 1 && v.level == STRATA_LEVEL_LOADED);
    CHECK(elapsed < 1500);
    for (i = 0; i < 5; i++) {
        rc = strata_get(c, "k", 1, &v);
        CHECK(rc == STRATA_EBACKEND || rc == STRATA_ETIMEOUT || rc == STRATA_EBREAKER);
    }
    /* the breaker is open now: calls return at once */
    t0 = strata__now_mono_ms();
    CHECK_RC(strata_get(c, "k", 1, &v), STRATA_EBREAKER);
    CHECK(strata__now_mono_ms() - t0 < 50);
    CHECK_MSG_HAS("circuit breaker open");
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    CHECK(st.breaker_opens >= 1 && st.backend_errors >= 3 && st.fail_open >= 1);

    REQUIRE(test_server_restart(&s) == 0);
    /* after the cooldown one probe closes the breaker; allow for reconnect backoff */
    t0 = strata__now_mono_ms();
    do {
        strata__sleep_ms(100);
        rc = strata_set(c, "k", 1, "back", 4, 0);
    } while (rc != 0 && strata__now_mono_ms() - t0 < 5000);
    CHECK_RC(rc, 0);
    CHECK_RC(strata_get(c, "k", 1, &v), STRATA_OK);
    CHECK_VALUE(&v, "back");
    strata_value_dispose(&v);
    strata_cache_free(c);
    test_server_stop(&s);
}

static int batch_loader(void *ud, size_t n, const char *const *keys, const size_t *lens, strata_load *const *loads)
{
    size_t i;
    (*(int *)ud)++;
    for (i = 0; i < n; i++)
        strata_load_value(loads[i], keys[i], lens[i], 0);
    return 0;
}

/* A batch with the server gone: one loader call for every key, and no
 * per-key backend attempts after the batch read failed. */
static void batch_fails_open(void)
{
    test_server s;
    strata_cache *c;
    strata_value outs[3];
    strata_stats st;
    const char *keys[3] = {"a", "b", "c"};
    size_t lens[3] = {1, 1, 1};
    int results[3], calls = 0, i;
    REQUIRE(test_server_start(&s, kind) == 0);
    c = open_on(&s, "timeout_ms=200&connect_timeout_ms=200&breaker_threshold=0");
    REQUIRE(c);
    memset(outs, 0, sizeof outs);
    test_server_stop(&s);
    CHECK_RC(strata_get_many_or_load(c, 3, keys, lens, batch_loader, &calls, outs, results), 0);
    CHECK(calls == 1);
    for (i = 0; i < 3; i++) {
        CHECK_RC(results[i], STRATA_OK);
        CHECK(outs[i].level == STRATA_LEVEL_LOADED && outs[i].len == 1 && outs[i].data[0] == keys[i][0]);
        strata_value_dispose(&outs[i]);
    }
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    CHECK(st.backend_errors == 1 && st.fail_open == 1);
    strata_cache_free(c);
}

/* Stale-if-error with the server paused: values this process saw are served
 * stale from L1 (bounded by stale-until) without the loader; others fail open. */
static void stale_if_error_while_down(void)
{
    test_server s;
    strata_cache *c;
    strata_value v = STRATA_VALUE_INIT, outs[2];
    strata_stats st;
    strata_set_options so = STRATA_SET_OPTIONS_INIT;
    const char *keys[2] = {"old", "new"};
    size_t lens[2] = {3, 3};
    int calls = 0, results[2], rc;
    int64_t t0;
    REQUIRE(test_server_start(&s, kind) == 0);
    c = open_on(&s, "timeout_ms=200&connect_timeout_ms=200&breaker_threshold=2&breaker_cooldown_ms=60000"
                    "&l1=1&l1_ttl_ms=50&ttl_ms=200&stale_ms=60000&xfetch_beta=0");
    REQUIRE(c);
    memset(outs, 0, sizeof outs);
    CHECK_RC(strata_set(c, "old", 3, "v1", 2, 0), 0);
    so.ttl_ms = 100;
    so.stale_ms = 0;
    CHECK_RC(strata_set_ex(c, "gone", 4, "g", 1, &so), 0);
    strata__sleep_ms(300); /* past fresh-until; "gone" is past its stale window too */
    test_server_pause(&s);

    t0 = strata__now_mono_ms();
    CHECK_RC(strata_get(c, "old", 3, &v), STRATA_HIT_STALE);
    CHECK_VALUE(&v, "v1");
    CHECK(v.stale == 1 && v.level == STRATA_LEVEL_STALE);
    CHECK_RC(strata_get_or_load(c, "old", 3, loader, &calls, &v), STRATA_HIT_STALE);
    CHECK_VALUE(&v, "v1");
    CHECK(calls == 0);
    CHECK(strata__now_mono_ms() - t0 < 1500); /* one deadline, then the breaker */
    /* a value never seen here fails open to the loader */
    CHECK_RC(strata_get_or_load(c, "other", 5, loader, &calls, &v), STRATA_OK);
    CHECK(calls == 1 && v.level == STRATA_LEVEL_LOADED);
    /* a batch: stale for what L1 kept, one loader call for the rest */
    CHECK_RC(strata_get_many_or_load(c, 2, keys, lens, batch_loader, &calls, outs, results), 0);
    CHECK_RC(results[0], STRATA_HIT_STALE);
    CHECK(outs[0].len == 2 && memcmp(outs[0].data, "v1", 2) == 0);
    CHECK_RC(results[1], STRATA_OK);
    CHECK(calls == 2 && outs[1].level == STRATA_LEVEL_LOADED);
    /* past stale-until nothing is served: the error surfaces */
    rc = strata_get(c, "gone", 4, &v);
    CHECK(rc == STRATA_EBREAKER || rc == STRATA_ETIMEOUT || rc == STRATA_EBACKEND);
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    CHECK(st.stale_hits >= 3);
    test_server_resume(&s);
    strata_value_dispose(&v);
    strata_value_dispose(&outs[0]);
    strata_value_dispose(&outs[1]);
    strata_cache_free(c);
    test_server_stop(&s);
}

static void paused_server_times_out(void)
{
    test_server s;
    strata_cache *c;
    strata_value v = STRATA_VALUE_INIT;
    int64_t t0;
    int rc;
    REQUIRE(test_server_start(&s, kind) == 0);
    c = open_on(&s, "timeout_ms=200&connect_timeout_ms=200&breaker_threshold=0");
    REQUIRE(c);
    CHECK_RC(strata_set(c, "k", 1, "v", 1, 0), 0);
    test_server_pause(&s);
    strata__sleep_ms(50);
    t0 = strata__now_mono_ms();
    rc = strata_get(c, "k", 1, &v);
    CHECK(rc == STRATA_ETIMEOUT || rc == STRATA_EBACKEND);
    CHECK(strata__now_mono_ms() - t0 < 1500);
    test_server_resume(&s);
    t0 = strata__now_mono_ms();
    do {
        rc = strata_get(c, "k", 1, &v);
        if (rc != 0)
            strata__sleep_ms(100);
    } while (rc != 0 && strata__now_mono_ms() - t0 < 5000);
    CHECK_RC(rc, 0);
    CHECK_VALUE(&v, "v");
    strata_value_dispose(&v);
    strata_cache_free(c);
    test_server_stop(&s);
}

static void created_while_down(void)
{
    test_server s;
    strata_cache *c;
    strata_value v = STRATA_VALUE_INIT;
    int rc;
    int64_t t0;
    REQUIRE(test_server_start(&s, kind) == 0);
    test_server_stop(&s);
    c = open_on(&s, "timeout_ms=200&connect_timeout_ms=200&breaker_threshold=0");
    REQUIRE(c); /* a service starts without its cache server */
    rc = strata_get(c, "k", 1, &v);
    CHECK(rc == STRATA_EBACKEND || rc == STRATA_ETIMEOUT);
    REQUIRE(test_server_restart(&s) == 0);
    t0 = strata__now_mono_ms();
    do {
        rc = strata_set(c, "k", 1, "up", 2, 0);
        if (rc != 0)
            strata__sleep_ms(100);
    } while (rc != 0 && strata__now_mono_ms() - t0 < 5000);
    CHECK_RC(rc, 0);
    strata_value_dispose(&v);
    strata_cache_free(c);
    test_server_stop(&s);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"killed_server_fails_open_and_recovers", killed_server_fails_open_and_recovers},
        {"batch_fails_open", batch_fails_open},
        {"paused_server_times_out", paused_server_times_out},
        {"stale_if_error_while_down", stale_if_error_while_down},
        {"created_while_down", created_while_down},
    };
    if (argc < 2) {
        fprintf(stderr, "usage: test_outage redis|memcached [case]\n");
        return 2;
    }
    kind = argv[1];
    return test_main(argc - 1, argv + 1, cases, sizeof cases / sizeof cases[0]);
}
