/*
 * The framework primitives (clear, add, incr/decr, delete_many, set_many_ex,
 * locks, STRATA_TTL_FOREVER) through the public API, once per backend:
 *   test_framework memory | redis | memcached
 */
#include "test.h"
#include "engine/cache.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

static const char *backend_name;
static char ns[64];

#define K(s) (s), strlen(s)

/* A cache on the backend under test, in namespace nsname (NULL: this run's). */
static strata_cache *open_ns(const char *nsname, const char *query)
{
    strata_cache *c = NULL;
    char u[1024];
    const char *base = test_backend_url(backend_name);
    snprintf(u, sizeof u, "%s%sns=%s&timeout_ms=1000%s%s",
             strcmp(backend_name, "memory") == 0 ? "memory://framework" : base, strchr(base, '?') ? "&" : "?",
             nsname ? nsname : ns, query ? "&" : "", query ? query : "");
    if (strata_cache_new(&c, u, NULL) != 0) {
        fprintf(stderr, "  cannot open %s: %s\n", u, strata_error_last());
        return NULL;
    }
    return c;
}

static strata_cache *open_cache(const char *query)
{
    return open_ns(NULL, query);
}

static int loads;

static int load_plain(void *ud, const char *key, size_t keylen, strata_load *l)
{
    (void)ud;
    loads++;
    return strata_load_value(l, key, keylen, 0);
}

static int set_tagged(strata_cache *c, const char *key, const char *val, const char *tag)
{
    strata_set_options o;
    size_t len = strlen(tag);
    strata_set_options_init(&o, STRATA_SET_OPTIONS_VERSION);
    o.tags = &tag;
    o.taglens = &len;
    o.ntags = 1;
    return strata_set_ex(c, K(key), K(val), &o);
}

/* ---- clear ---- */

static void clear_misses_everything(const char *query)
{
    strata_cache *c = open_cache(query), *other = open_cache("tag_cache_ms=0"), *elsewhere;
    strata_value v = STRATA_VALUE_INIT;
    char a[96], b[96], d[96], other_ns[80];
    REQUIRE(c && other);
    snprintf(other_ns, sizeof other_ns, "%s_b", ns);
    elsewhere = open_ns(other_ns, NULL);
    REQUIRE(elsewhere);
    snprintf(a, sizeof a, "%s", test_unique("a"));
    snprintf(b, sizeof b, "%s", test_unique("b"));
    snprintf(d, sizeof d, "%s", test_unique("d"));
    {
        strata_set_options o; /* a stale window does not outlive a clear */
        strata_set_options_init(&o, STRATA_SET_OPTIONS_VERSION);
        o.stale_ms = 60000;
        CHECK_RC(strata_set_ex(c, K(a), K("1"), &o), 0);
    }
    CHECK_RC(set_tagged(c, b, "2", "t"), 0);
    CHECK_RC(strata_get_or_load(c, K(d), load_plain, NULL, &v), 0);
    CHECK_RC(strata_set(elsewhere, K(a), K("kept"), 0), 0);
    CHECK_RC(strata_get(c, K(a), &v), STRATA_OK);
    CHECK_RC(strata_get(c, K(a), &v), STRATA_OK); /* from L1 when it is on */
    CHECK_RC(strata_get(other, K(b), &v), STRATA_OK);

    CHECK_RC(strata_clear(c), 0);

    CHECK_RC(strata_get(c, K(a), &v), STRATA_MISS);
    CHECK_RC(strata_get(c, K(b), &v), STRATA_MISS);
    CHECK_RC(strata_get(c, K(d), &v), STRATA_MISS);
    CHECK_RC(strata_get(other, K(a), &v), STRATA_MISS); /* another handle: tag_cache_ms=0 asks */
    CHECK_RC(strata_get(elsewhere, K(a), &v), STRATA_OK); /* another namespace is untouched */
    CHECK_VALUE(&v, "kept");
    /* Writes after the clear are stamped with the new generation and live. */
    CHECK_RC(strata_set(c, K(a), K("new"), 0), 0);
    CHECK_RC(strata_get(c, K(a), &v), STRATA_OK);
    CHECK_VALUE(&v, "new");
    CHECK_RC(strata_get(other, K(a), &v), STRATA_OK);
    loads = 0;
    CHECK_RC(strata_get_or_load(c, K(d), load_plain, NULL, &v), 0);
    CHECK(loads == 1 && v.level == STRATA_LEVEL_LOADED);
    CHECK_RC(strata_get_or_load(other, K(d), load_plain, NULL, &v), 0);
    CHECK(loads == 1);
    /* A second clear outdates the stamped ones too. */
    CHECK_RC(strata_clear(other), 0);
    CHECK_RC(strata_get(other, K(a), &v), STRATA_MISS);
    CHECK_RC(strata_clear(NULL), STRATA_EINVAL);
    strata_value_dispose(&v);
    strata_cache_free(c);
    strata_cache_free(other);
    strata_cache_free(elsewhere);
}

static void clear_l1_off(void) { clear_misses_everything("l1=0"); }
static void clear_l1_on(void) { clear_misses_everything("l1=1"); }

/* ---- add ---- */

static void add_once(void)
{
    strata_cache *c = open_cache(NULL);
    strata_value v = STRATA_VALUE_INIT;
    char k[96], tk[96];
    REQUIRE(c);
    snprintf(k, sizeof k, "%s", test_unique("add"));
    snprintf(tk, sizeof tk, "%s", test_unique("addtag"));
    CHECK_RC(strata_add(c, K(k), K("first"), 0), 0);
    CHECK_RC(strata_add(c, K(k), K("second"), 0), STRATA_EXISTS);
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK_VALUE(&v, "first");
    CHECK_RC(strata_delete(c, K(k)), 0);
    CHECK_RC(strata_add(c, K(k), K("after delete"), 0), 0); /* memcached: over the tombstone */
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK_VALUE(&v, "after delete");
    /* An expired entry still in the backend (stale window) counts as absent. */
    {
        strata_set_options o;
        strata_set_options_init(&o, STRATA_SET_OPTIONS_VERSION);
        o.ttl_ms = 30;
        o.stale_ms = 60000;
        CHECK_RC(strata_set_ex(c, K(k), K("expiring"), &o), 0);
    }
    usleep(80 * 1000);
    CHECK_RC(strata_add(c, K(k), K("after expiry"), 0), 0);
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK_VALUE(&v, "after expiry");
    /* Tag-outdated and cleared entries count as absent too. */
    CHECK_RC(set_tagged(c, tk, "tagged", "addtag"), 0);
    CHECK_RC(strata_add(c, K(tk), K("x"), 0), STRATA_EXISTS);
    CHECK_RC(strata_invalidate_tag(c, K("addtag")), 0);
    CHECK_RC(strata_add(c, K(tk), K("after bump"), 0), 0);
    CHECK_RC(strata_clear(c), 0);
    CHECK_RC(strata_add(c, K(k), K("after clear"), 0), 0);
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK_VALUE(&v, "after clear");
    /* Bad input changes nothing. */
    CHECK_RC(strata_add(c, NULL, 3, K("v"), 0), STRATA_EINVAL);
    CHECK_RC(strata_add(c, K(k), NULL, 4, 0), STRATA_EINVAL);
    CHECK_RC(strata_add(c, K(k), K("v"), -5), STRATA_EINVAL);
    CHECK_MSG_HAS("ttl_ms");
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK_VALUE(&v, "after clear");
    strata_value_dispose(&v);
    strata_cache_free(c);
}

#define RACERS 16
#define ROUNDS 30

typedef struct racer {
    strata_cache *c;
    const char *key;
    pthread_barrier_t *start;
    int won;
    int err;
} racer;

static void *race_add(void *arg)
{
    racer *r = arg;
    int rc;
    pthread_barrier_wait(r->start);
    rc = strata_add(r->c, K(r->key), K("v"), 0);
    r->won = rc == 0;
    r->err = rc < 0 || (rc != 0 && rc != STRATA_EXISTS);
    return NULL;
}

/* Threads over separate handles (separate connections): one winner a round. */
static void add_race_one_winner(void)
{
    strata_cache *cs[4];
    pthread_t th[RACERS];
    racer rs[RACERS];
    pthread_barrier_t start;
    int round, i, bad = 0, errs = 0;
    for (i = 0; i < 4; i++)
        REQUIRE((cs[i] = open_cache(NULL)) != NULL);
    for (round = 0; round < ROUNDS; round++) {
        char k[96];
        int winners = 0;
        snprintf(k, sizeof k, "%s", test_unique("race"));
        if (round % 2) /* half the rounds race over a dead value, not over nothing */
            CHECK_RC(strata_set(cs[0], K(k), K("old"), 0) == 0 && strata_clear(cs[0]) == 0 ? 0 : -1, 0);
        pthread_barrier_init(&start, NULL, RACERS);
        for (i = 0; i < RACERS; i++) {
            rs[i].c = cs[i % 4];
            rs[i].key = k;
            rs[i].start = &start;
            pthread_create(&th[i], NULL, race_add, &rs[i]);
        }
        for (i = 0; i < RACERS; i++) {
            pthread_join(th[i], NULL);
            winners += rs[i].won;
            errs += rs[i].err;
        }
        pthread_barrier_destroy(&start);
        bad += winners != 1;
        if (winners != 1)
            fprintf(stderr, "  round %d: %d winners\n", round, winners);
    }
    CHECK(bad == 0);
    CHECK(errs == 0);
    for (i = 0; i < 4; i++)
        strata_cache_free(cs[i]);
}

/* ---- incr / decr ---- */

static void incr_semantics(void)
{
    strata_cache *c = open_cache(NULL);
    strata_value v = STRATA_VALUE_INIT;
    char k[96], s[96];
    int64_t out = 0;
    REQUIRE(c);
    snprintf(k, sizeof k, "%s", test_unique("n"));
    snprintf(s, sizeof s, "%s", test_unique("s"));
    CHECK_RC(strata_incr(c, K(k), 5, 0, &out), 0); /* absent: starts at 0 */
    CHECK(out == 5);
    CHECK_RC(strata_decr(c, K(k), 7, 0, &out), 0);
    CHECK(out == -2);
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK_VALUE(&v, "-2");
    CHECK_RC(strata_set(c, K(k), K("41"), 0), 0);
    CHECK_RC(strata_incr(c, K(k), 1, 0, &out), 0);
    CHECK(out == 42);
    CHECK_RC(strata_incr(c, K(k), 0, 0, NULL), 0);
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK_VALUE(&v, "42");
    /* Not an integer: a clear error, the value unchanged. */
    CHECK_RC(strata_set(c, K(s), K("4x"), 0), 0);
    CHECK_RC(strata_incr(c, K(s), 1, 0, &out), STRATA_ENOTNUM);
    CHECK_MSG_HAS("not a decimal integer");
    CHECK_RC(strata_set(c, K(s), K(""), 0), 0);
    CHECK_RC(strata_incr(c, K(s), 1, 0, &out), STRATA_ENOTNUM);
    CHECK_RC(strata_set(c, K(s), K("99999999999999999999"), 0), 0);
    CHECK_RC(strata_incr(c, K(s), 1, 0, &out), STRATA_ENOTNUM);
    CHECK_RC(strata_set(c, K(s), K("9223372036854775807"), 0), 0);
    CHECK_RC(strata_incr(c, K(s), 1, 0, &out), STRATA_ENOTNUM);
    CHECK_MSG_HAS("overflows");
    CHECK_RC(strata_get(c, K(s), &v), STRATA_OK);
    CHECK_VALUE(&v, "9223372036854775807");
    CHECK_RC(strata_set(c, K(s), K("-9223372036854775808"), 0), 0);
    CHECK_RC(strata_incr(c, K(s), 0, 0, &out), 0);
    CHECK(out == INT64_MIN);
    CHECK_RC(strata_decr(c, K(s), 1, 0, &out), STRATA_ENOTNUM);
    CHECK_RC(strata_decr(c, K(s), INT64_MIN, 0, &out), STRATA_ENOTNUM);
    CHECK_RC(strata_incr(c, K(s), 1, -7, &out), STRATA_EINVAL);
    CHECK_RC(strata_incr(c, NULL, 1, 1, 0, &out), STRATA_EINVAL);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void incr_keeps_ttl(void)
{
    strata_cache *c = open_cache(NULL);
    strata_value v = STRATA_VALUE_INIT;
    char k[96];
    int64_t out = 0;
    REQUIRE(c);
    snprintf(k, sizeof k, "%s", test_unique("ttl"));
    CHECK_RC(strata_set(c, K(k), K("1"), 400), 0);
    usleep(150 * 1000);
    CHECK_RC(strata_incr(c, K(k), 1, 0, &out), 0);
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK(v.ttl_ms > 0 && v.ttl_ms <= 260); /* not reset to 400, nor to the default */
    usleep(300 * 1000);
    CHECK_RC(strata_get(c, K(k), &v), STRATA_MISS); /* expired on schedule */
    CHECK_RC(strata_incr(c, K(k), 3, 0, &out), 0);  /* expired: starts again at 0 */
    CHECK(out == 3);
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK(v.ttl_ms > 290000); /* created with the cache's default (300 s) */
    CHECK_RC(strata_incr(c, K(k), 1, 50000, &out), 0); /* a TTL given: that one */
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK(v.ttl_ms > 40000 && v.ttl_ms <= 50000);
    CHECK_RC(strata_incr(c, K(k), 1, STRATA_TTL_FOREVER, &out), 0);
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK(v.ttl_ms > (int64_t)1 << 60);
    CHECK_RC(strata_clear(c), 0);
    CHECK_RC(strata_incr(c, K(k), 1, 0, &out), 0); /* cleared: starts again */
    CHECK(out == 1);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

#define INCR_THREADS 8
#define INCR_EACH 250

typedef struct counter_arg {
    strata_cache *c;
    const char *key;
    int errors;
} counter_arg;

static void *count_up(void *p)
{
    counter_arg *a = p;
    int i;
    for (i = 0; i < INCR_EACH; i++)
        a->errors += strata_incr(a->c, K(a->key), 1, 0, NULL) != 0;
    return NULL;
}

static void incr_threads_exact(void)
{
    strata_cache *cs[INCR_THREADS];
    pthread_t th[INCR_THREADS];
    counter_arg args[INCR_THREADS];
    strata_value v = STRATA_VALUE_INIT;
    char k[96];
    int i, errors = 0;
    snprintf(k, sizeof k, "%s", test_unique("count"));
    for (i = 0; i < INCR_THREADS; i++) {
        REQUIRE((cs[i] = open_cache(NULL)) != NULL);
        args[i].c = cs[i];
        args[i].key = k;
        args[i].errors = 0;
        pthread_create(&th[i], NULL, count_up, &args[i]);
    }
    for (i = 0; i < INCR_THREADS; i++) {
        pthread_join(th[i], NULL);
        errors += args[i].errors;
    }
    CHECK(errors == 0);
    CHECK_RC(strata_get(cs[0], K(k), &v), STRATA_OK);
    CHECK_VALUE(&v, "2000");
    strata_value_dispose(&v);
    for (i = 0; i < INCR_THREADS; i++)
        strata_cache_free(cs[i]);
}

/* ---- batch forms ---- */

static void delete_many_counts(void)
{
    strata_cache *c = open_cache("l1=1");
    strata_value v = STRATA_VALUE_INIT;
    char k[3][96];
    const char *keys[4];
    size_t lens[4], n = 99, i;
    REQUIRE(c);
    for (i = 0; i < 3; i++) {
        snprintf(k[i], sizeof k[i], "%s", test_unique("dm"));
        keys[i] = k[i];
        lens[i] = strlen(k[i]);
    }
    keys[3] = k[0]; /* a repeat counts once */
    lens[3] = lens[0];
    CHECK_RC(strata_set(c, K(k[0]), K("a"), 0), 0);
    CHECK_RC(strata_set(c, K(k[1]), K("b"), 0), 0);
    CHECK_RC(strata_get(c, K(k[0]), &v), STRATA_OK); /* in L1 too */
    CHECK_RC(strata_delete_many(c, 4, keys, lens, &n), 0);
    CHECK(n == 2);
    CHECK_RC(strata_get(c, K(k[0]), &v), STRATA_MISS);
    CHECK_RC(strata_get(c, K(k[1]), &v), STRATA_MISS);
    CHECK_RC(strata_delete_many(c, 0, NULL, NULL, &n), 0);
    CHECK(n == 0);
    lens[1] = 0; /* bad input: nothing deleted */
    CHECK_RC(strata_set(c, K(k[2]), K("c"), 0), 0);
    CHECK_RC(strata_delete_many(c, 3, keys, lens, &n), STRATA_EKEY);
    CHECK_MSG_HAS("key 1");
    CHECK_RC(strata_get(c, K(k[2]), &v), STRATA_OK);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void set_many_with_tags(void)
{
    strata_cache *c = open_cache(NULL);
    strata_value v = STRATA_VALUE_INIT;
    strata_set_options o;
    char k[2][96], tag[64];
    const char *keys[2], *vals[2] = {"x", "y"}, *tp = tag;
    size_t lens[2], vlens[2] = {1, 1}, tlen, i;
    REQUIRE(c);
    snprintf(tag, sizeof tag, "%s", test_unique("smt"));
    tlen = strlen(tag);
    for (i = 0; i < 2; i++) {
        snprintf(k[i], sizeof k[i], "%s", test_unique("sm"));
        keys[i] = k[i];
        lens[i] = strlen(k[i]);
    }
    strata_set_options_init(&o, STRATA_SET_OPTIONS_VERSION);
    o.ttl_ms = 60000;
    o.tags = &tp;
    o.taglens = &tlen;
    o.ntags = 1;
    CHECK_RC(strata_set_many_ex(c, 2, keys, lens, vals, vlens, &o), 0);
    CHECK_RC(strata_get(c, K(k[1]), &v), STRATA_OK);
    CHECK_VALUE(&v, "y");
    CHECK(v.ttl_ms > 50000 && v.ttl_ms <= 60000);
    CHECK_RC(strata_invalidate_tag(c, tag, tlen), 0);
    CHECK_RC(strata_get(c, K(k[0]), &v), STRATA_MISS);
    CHECK_RC(strata_get(c, K(k[1]), &v), STRATA_MISS);
    o.ntags = 17;
    CHECK_RC(strata_set_many_ex(c, 2, keys, lens, vals, vlens, &o), STRATA_EINVAL);
    o.ntags = 0;
    o.version = 99;
    CHECK_RC(strata_set_many_ex(c, 2, keys, lens, vals, vlens, &o), STRATA_EVERSION);
    CHECK_RC(strata_get(c, K(k[0]), &v), STRATA_MISS); /* refused: nothing written */
    CHECK_RC(strata_set_many_ex(c, 2, keys, lens, vals, vlens, NULL), 0);
    CHECK_RC(strata_get(c, K(k[0]), &v), STRATA_OK);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

/* ---- FOREVER ---- */

static void forever_never_expires(void)
{
    strata_cache *c = open_cache(NULL);
    strata_value v = STRATA_VALUE_INIT;
    char k[96];
    REQUIRE(c);
    snprintf(k, sizeof k, "%s", test_unique("forever"));
    CHECK_RC(strata_set(c, K(k), K("v"), STRATA_TTL_FOREVER), 0);
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK(v.ttl_ms > (int64_t)1 << 60);
    CHECK_RC(strata_touch(c, K(k), 1000), 0);
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK(v.ttl_ms > 0 && v.ttl_ms <= 1000);
    CHECK_RC(strata_touch(c, K(k), STRATA_TTL_FOREVER), 0);
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK(v.ttl_ms > (int64_t)1 << 60);
    CHECK_RC(strata_touch(c, K(k), 0), 0); /* the cache's default */
    CHECK_RC(strata_get(c, K(k), &v), STRATA_OK);
    CHECK(v.ttl_ms > 290000 && v.ttl_ms <= 300000);
    CHECK_RC(strata_add(c, K(k), K("w"), STRATA_TTL_FOREVER), STRATA_EXISTS);
    CHECK_RC(strata_set(c, K(k), K("v"), -2), STRATA_EINVAL);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

/* ---- locks ---- */

typedef struct release_arg {
    strata_lock *l;
    int rc;
} release_arg;

static void *release_elsewhere(void *p)
{
    release_arg *a = p;
    a->rc = strata_lock_release(a->l);
    return NULL;
}

static void lock_basics(void)
{
    strata_cache *c = open_cache(NULL), *c2 = open_cache(NULL);
    strata_lock *a = NULL, *b = NULL, *bad = NULL;
    strata_value v = STRATA_VALUE_INIT;
    pthread_t th;
    release_arg ra;
    char name[96];
    REQUIRE(c && c2);
    snprintf(name, sizeof name, "%s", test_unique("lock"));
    CHECK_RC(strata_lock_new(&a, c, K(name), 30000), 0);
    CHECK_RC(strata_lock_new(&b, c2, K(name), 30000), 0);
    REQUIRE(a && b);
    CHECK_RC(strata_lock_locked(a), 0);
    CHECK_RC(strata_lock_acquire(a, 0, 0), 0);
    CHECK_RC(strata_lock_acquire(a, 0, 0), STRATA_MISS_WAIT); /* not reentrant */
    CHECK_RC(strata_lock_locked(b), 1);
    CHECK_RC(strata_lock_acquire(b, 0, 0), STRATA_MISS_WAIT);
    CHECK_RC(strata_lock_acquire(b, 1, 60), STRATA_MISS_WAIT); /* waited, then gave up */
    CHECK_RC(strata_lock_release(b), STRATA_ELEASE); /* not the holder: nothing released */
    CHECK_RC(strata_lock_locked(b), 1);
    CHECK_RC(strata_lock_extend(a, 0), 0);
    /* The lock is not a cache entry: a value under the same name is another thing. */
    CHECK_RC(strata_get(c, K(name), &v), STRATA_MISS);
    CHECK_RC(strata_clear(c), 0);
    CHECK_RC(strata_lock_locked(b), 1); /* clear keeps locks */
    /* Released from another thread than the acquirer's. */
    ra.l = a;
    pthread_create(&th, NULL, release_elsewhere, &ra);
    pthread_join(th, NULL);
    CHECK_RC(ra.rc, 0);
    CHECK_RC(strata_lock_locked(a), 0);
    CHECK_RC(strata_lock_release(a), STRATA_ELEASE); /* twice */
    CHECK_RC(strata_lock_acquire(b, 1, 5000), 0);
    CHECK_RC(strata_lock_release(b), 0);
    /* Bad input. */
    CHECK_RC(strata_lock_new(&bad, c, K(name), 0), STRATA_EINVAL);
    CHECK_MSG_HAS("ttl_ms");
    CHECK_RC(strata_lock_new(&bad, c, "", 0, 1000), STRATA_EKEY);
    CHECK_MSG_HAS("lock name");
    CHECK_RC(strata_lock_new(&bad, NULL, K(name), 1000), STRATA_EINVAL);
    CHECK(bad == NULL);
    CHECK_RC(strata_lock_acquire(NULL, 1, 0), STRATA_EINVAL);
    CHECK_RC(strata_lock_extend(b, -1), STRATA_EINVAL);
    strata_lock_free(NULL);
    strata_lock_free(a);
    strata_lock_free(b);
    strata_value_dispose(&v);
    strata_cache_free(c);
    strata_cache_free(c2);
}

/* A holder whose lock expired and went to another learns it lost it. */
static void lock_lost_is_reported(void)
{
    strata_cache *c = open_cache(NULL);
    strata_lock *a = NULL, *b = NULL;
    char name[96];
    REQUIRE(c);
    snprintf(name, sizeof name, "%s", test_unique("lost"));
    CHECK_RC(strata_lock_new(&a, c, K(name), 300), 0);
    CHECK_RC(strata_lock_new(&b, c, K(name), 30000), 0);
    REQUIRE(a && b);
    CHECK_RC(strata_lock_acquire(a, 1, 0), 0);
    CHECK_RC(strata_lock_acquire(b, 1, 10000), 0); /* after a's TTL (memcached: whole seconds) */
    CHECK_RC(strata_lock_extend(a, 1000), STRATA_ELEASE);
    CHECK_MSG_HAS("not held");
    CHECK_RC(strata_lock_release(a), STRATA_ELEASE);
    CHECK_RC(strata_lock_locked(a), 1); /* b still holds it */
    CHECK_RC(strata_lock_release(b), 0);
    strata_lock_free(a);
    strata_lock_free(b);
    strata_cache_free(c);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"clear_l1_off", clear_l1_off},
        {"clear_l1_on", clear_l1_on},
        {"add_once", add_once},
        {"add_race_one_winner", add_race_one_winner},
        {"incr_semantics", incr_semantics},
        {"incr_keeps_ttl", incr_keeps_ttl},
        {"incr_threads_exact", incr_threads_exact},
        {"delete_many_counts", delete_many_counts},
        {"set_many_with_tags", set_many_with_tags},
        {"forever_never_expires", forever_never_expires},
        {"lock_basics", lock_basics},
        {"lock_lost_is_reported", lock_lost_is_reported},
    };
    if (argc < 2) {
        fprintf(stderr, "usage: test_framework memory|redis|memcached [case]\n");
        return 2;
    }
    backend_name = argv[1];
    test_backend_url(backend_name);
    snprintf(ns, sizeof ns, "fw%ld%d", (long)time(NULL) % 100000, (int)getpid());
    return test_main(argc - 1, argv + 1, cases, sizeof cases / sizeof cases[0]);
}
