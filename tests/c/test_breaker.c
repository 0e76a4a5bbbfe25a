/*
 * The circuit breaker against a real server that dies and comes back, or
 * that refuses one command:
 *   - the half-open probe is released whatever call took it (write_behind and
 *     write_through run internal set/invalidate calls that share it);
 *   - an error reply (a WRONGTYPE key, a non-numeric counter) is that call's
 *     error, not an outage: it never opens the breaker.
 *   test_breaker redis | memcached
 */
#include "test.h"
#include "server.h"
#include "platform/platform.h"

#include "raw_write.h"

#include <unistd.h>

#define K(s) (s), strlen(s)

static const char *kind;

static int is_redis(void) { return strcmp(kind, "redis") == 0; }

static strata_cache *open_on(test_server *s, const char *query, const strata_options *o)
{
    char u[512];
    strata_cache *c = NULL;
    snprintf(u, sizeof u, "%s?ns=%s&%s", s->url, test_unique("brk"), query);
    if (strata_cache_new(&c, u, o) != 0)
        fprintf(stderr, "  open %s: %s\n", u, strata_error_last());
    return c;
}

/* Kills the server, fails calls until the breaker is open, restarts it and
 * waits out the cooldown: the next call is the half-open probe. */
static int open_breaker_then_heal(strata_cache *c, test_server *s)
{
    strata_value v = STRATA_VALUE_INIT;
    int i, rc = 0;
    test_server_stop(s);
    for (i = 0; i < 20 && rc != STRATA_EBREAKER; i++)
        rc = strata_get(c, K("probe"), &v);
    if (rc != STRATA_EBREAKER)
        return -1;
    if (test_server_restart(s) != 0)
        return -1;
    strata__sleep_ms(400); /* past breaker_cooldown_ms=300 */
    return 0;
}

/* Calls op until it returns 0 (reconnect backoff may refuse the first
 * probes); then the breaker must be closed for every other call. */
static void check_heals(strata_cache *c, int (*op)(strata_cache *, int), const char *what)
{
    strata_value v = STRATA_VALUE_INIT;
    strata_stats st;
    int64_t t0 = strata__now_mono_ms();
    int rc, n = 0;
    do {
        rc = op(c, n++);
        if (rc != 0)
            strata__sleep_ms(50);
    } while (rc != 0 && strata__now_mono_ms() - t0 < 6000);
    if (rc != 0)
        fprintf(stderr, "  %s never succeeded: %s (%s)\n", what, strata_error_name(rc), strata_error_last());
    CHECK_RC(rc, 0);
    CHECK_RC(strata_set(c, K("after"), K("x"), 0), 0);
    CHECK_RC(strata_get(c, K("after"), &v), STRATA_OK);
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    CHECK(st.breaker_state == 0);
    strata_value_dispose(&v);
}

static int op_write_behind(strata_cache *c, int n)
{
    char val[16];
    snprintf(val, sizeof val, "v%d", n);
    return strata_write_behind(c, K("wb"), K(val), 0);
}

static int writer_ok(void *ud, const char *key, size_t keylen, const char *val, size_t vallen, strata_write *w)
{
    (void)ud; (void)key; (void)keylen; (void)val; (void)vallen; (void)w;
    return 0;
}

static int op_write_through(strata_cache *c, int n)
{
    (void)n;
    return strata_write_through(c, K("wt"), K("v"), 0, writer_ok, NULL);
}

static int op_get_many(strata_cache *c, int n)
{
    const char *keys[2] = {"m1", "m2"};
    size_t lens[2] = {2, 2};
    strata_value outs[2];
    int results[2], rc;
    (void)n;
    memset(outs, 0, sizeof outs);
    rc = strata_get_many(c, 2, keys, lens, outs, results);
    strata_value_dispose(&outs[0]);
    strata_value_dispose(&outs[1]);
    return rc;
}

#define BREAKER_QUERY "timeout_ms=300&connect_timeout_ms=300&breaker_threshold=2&breaker_cooldown_ms=300"

/* Defect 1: strata_write_behind takes the probe; its internal set is refused
 * by the breaker, the probe is never released, EBREAKER for ever after. */
static void write_behind_probe_is_released(void)
{
    test_server s;
    strata_options o = STRATA_OPTIONS_INIT;
    char journal[256];
    strata_cache *c;
    snprintf(journal, sizeof journal, "/tmp/strata-brk-%d.journal", (int)getpid());
    unlink(journal);
    if (!is_redis())
        o.wb_journal = journal;
    REQUIRE(test_server_start(&s, kind) == 0);
    c = open_on(&s, BREAKER_QUERY "&wb_threads=0", &o);
    if (c == NULL)
        test_server_stop(&s);
    REQUIRE(c);
    if (open_breaker_then_heal(c, &s) == 0)
        check_heals(c, op_write_behind, "write_behind");
    else
        CHECK(!"breaker did not open");
    strata_cache_free(c);
    test_server_stop(&s);
    unlink(journal);
}

static void write_through_probe_is_released(void)
{
    test_server s;
    strata_cache *c;
    REQUIRE(test_server_start(&s, kind) == 0);
    c = open_on(&s, BREAKER_QUERY, NULL);
    if (c == NULL)
        test_server_stop(&s);
    REQUIRE(c);
    if (open_breaker_then_heal(c, &s) == 0)
        check_heals(c, op_write_through, "write_through");
    else
        CHECK(!"breaker did not open");
    strata_cache_free(c);
    test_server_stop(&s);
}

static void get_many_probe_is_released(void)
{
    test_server s;
    strata_cache *c;
    REQUIRE(test_server_start(&s, kind) == 0);
    c = open_on(&s, BREAKER_QUERY "&l1=1", NULL);
    if (c == NULL)
        test_server_stop(&s);
    REQUIRE(c);
    if (open_breaker_then_heal(c, &s) == 0)
        check_heals(c, op_get_many, "get_many");
    else
        CHECK(!"breaker did not open");
    strata_cache_free(c);
    test_server_stop(&s);
}

/* A delete the open breaker keeps from the server still drops the key from
 * this process's L1 (and so from stale-if-error): the caller asked for it
 * gone, and write_through's fallback relies on it. */
static void delete_refused_by_breaker_still_forgets_l1(void)
{
    test_server s;
    strata_cache *c;
    strata_value v = STRATA_VALUE_INIT;
    const char *keys[1] = {"many"};
    size_t lens[1] = {4};
    int i, rc = 0;
    REQUIRE(test_server_start(&s, kind) == 0);
    c = open_on(&s, BREAKER_QUERY "&l1=1", NULL);
    if (c == NULL)
        test_server_stop(&s);
    REQUIRE(c);
    CHECK_RC(strata_set(c, K("one"), K("v"), 0), 0);
    CHECK_RC(strata_set(c, K("many"), K("v"), 0), 0);
    test_server_stop(&s);
    for (i = 0; i < 20 && rc != STRATA_EBREAKER; i++)
        rc = strata_get(c, K("probe"), &v);
    CHECK_RC(rc, STRATA_EBREAKER);
    CHECK_RC(strata_delete(c, K("one")), STRATA_EBREAKER);
    CHECK_RC(strata_delete_many(c, 1, keys, lens, NULL), STRATA_EBREAKER);
    rc = strata_get(c, K("one"), &v);
    CHECK(rc < 0); /* not served from L1, fresh or stale */
    rc = strata_get(c, K("many"), &v);
    CHECK(rc < 0);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static int plant(const test_server *s, const char *key, const char *val, int as_list)
{
    return test_raw_set(kind, s->port, key, val, as_list);
}

/* Defect 5: a command the server refuses (a WRONGTYPE value key on redis, a
 * non-numeric tag counter on both) fails that call only; the breaker stays
 * closed and other keys keep working. */
static void refusal_is_not_an_outage(void)
{
    test_server s;
    strata_cache *c;
    strata_value v = STRATA_VALUE_INIT;
    strata_stats st;
    char ns[64], key[128];
    int i, rc;
    REQUIRE(test_server_start(&s, kind) == 0);
    snprintf(ns, sizeof ns, "%s", test_unique("refuse"));
    {
        char u[512];
        snprintf(u, sizeof u, "%s?ns=%s&timeout_ms=500&breaker_threshold=2&breaker_cooldown_ms=60000", s.url, ns);
        c = NULL;
        if (strata_cache_new(&c, u, NULL) != 0)
            fprintf(stderr, "  open %s: %s\n", u, strata_error_last());
    }
    if (c == NULL)
        test_server_stop(&s);
    REQUIRE(c);
    snprintf(key, sizeof key, "%s#T:bad", ns);
    CHECK(plant(&s, key, "not-a-number", 0) == 0);
    if (is_redis()) {
        snprintf(key, sizeof key, "%s:listkey", ns);
        CHECK(plant(&s, key, "x", 1) == 0);
        for (i = 0; i < 5; i++) {
            rc = strata_get(c, K("listkey"), &v);
            CHECK_RC(rc, STRATA_EBACKEND);
            CHECK_MSG_HAS("WRONGTYPE");
        }
    }
    for (i = 0; i < 5; i++) {
        rc = strata_invalidate_tag(c, K("bad"));
        CHECK(rc == STRATA_EBACKEND);
    }
    /* every other key still works: the breaker never opened */
    CHECK_RC(strata_set(c, K("fine"), K("v"), 0), 0);
    CHECK_RC(strata_get(c, K("fine"), &v), STRATA_OK);
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    CHECK(st.breaker_opens == 0 && st.breaker_state == 0);
    CHECK(st.backend_errors >= 5); /* refusals are still counted as errors */
    strata_value_dispose(&v);
    strata_cache_free(c);
    test_server_stop(&s);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"write_behind_probe_is_released", write_behind_probe_is_released},
        {"write_through_probe_is_released", write_through_probe_is_released},
        {"get_many_probe_is_released", get_many_probe_is_released},
        {"refusal_is_not_an_outage", refusal_is_not_an_outage},
        {"delete_refused_by_breaker_still_forgets_l1", delete_refused_by_breaker_still_forgets_l1},
    };
    if (argc < 2) {
        fprintf(stderr, "usage: test_breaker redis|memcached [case]\n");
        return 2;
    }
    kind = argv[1];
    return test_main(argc - 1, argv + 1, cases, sizeof cases / sizeof cases[0]);
}
