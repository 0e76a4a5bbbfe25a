/*
 * Hot-key detection through the engine (memory:// backend: admission does not
 * depend on the backend): l1_admission=hot under a Zipf workload admits only
 * keys read often enough, strata_hot_keys() ranks the true hottest, old
 * popularity fades, and bad input is refused.
 */
#include "test.h"

#include "engine/cache.h"
#include "engine/hotkeys.h"
#include "local/l1.h"

#include <math.h>
#include <pthread.h>

#define NKEYS 2000
#define READS 40000
#define K(s) (s), strlen(s)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* Zipf(1.0) ranks 0..n-1 by inverse CDF. */
static double cdf[NKEYS];

static void zipf_init(void)
{
    double sum = 0;
    int i;
    for (i = 0; i < NKEYS; i++)
        sum += 1.0 / (i + 1);
    cdf[0] = 1.0 / sum;
    for (i = 1; i < NKEYS; i++)
        cdf[i] = cdf[i - 1] + 1.0 / (i + 1) / sum;
}

static int zipf(void)
{
    double u = uniform();
    int lo = 0, hi = NKEYS - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static strata_cache *open_cache(const char *query)
{
    strata_cache *c = NULL;
    char u[512];
    snprintf(u, sizeof u, "memory://?%s", query);
    if (strata_cache_new(&c, u, NULL) != 0) {
        fprintf(stderr, "  cannot open %s: %s\n", u, strata_error_last());
        return NULL;
    }
    return c;
}

/* In L1 now? (Asked of the tier directly, so the question is not a read.) */
static int in_l1(strata_cache *c, const char *key)
{
    strata_value v = STRATA_VALUE_INIT;
    strata__key k = strata__key_of(key, strlen(key));
    int rc = strata__l1_get(c->l1, &k, strata__now_wall_ms(), &v);
    strata_value_dispose(&v);
    return rc == STRATA_OK;
}

static void zipf_admits_only_hot_keys(void)
{
    static int truth[NKEYS];
    /* hot_sample=1: every L1 hit counted, so the report below is exact */
    strata_cache *c = open_cache("l1=1&l1_admission=hot&hot_threshold=8&hot_window=1000000"
                                 "&hot_sketch_width=65536&l1_max_entries=100000&ttl_ms=600000&hot_sample=1");
    strata_value v = STRATA_VALUE_INIT;
    strata_stats st;
    strata_hot_key top[10];
    size_t n = 0;
    char key[32];
    int i, r, admitted = 0, admitted_cold = 0, missed_hot = 0, want_top[10];
    REQUIRE(c);
    zipf_init();
    memset(truth, 0, sizeof truth);
    for (i = 0; i < NKEYS; i++) {
        snprintf(key, sizeof key, "z%d", i);
        CHECK_RC(strata_set(c, K(key), K("value"), 0), 0);
    }
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    CHECK(st.l1_entries == 0 && st.l1_admission_rejects == NKEYS); /* never read: not hot */
    for (i = 0; i < READS; i++) {
        r = zipf();
        truth[r]++;
        snprintf(key, sizeof key, "z%d", r);
        CHECK_RC(strata_get(c, K(key), &v), STRATA_OK);
    }
    for (i = 0; i < NKEYS; i++) {
        snprintf(key, sizeof key, "z%d", i);
        if (in_l1(c, key)) {
            admitted++;
            if (truth[i] < 8)
                admitted_cold++;
        } else if (truth[i] >= 8) {
            missed_hot++;
        }
    }
    /* every key read 8+ times got in at its 8th read; a sketch over-estimate
     * may let a rare colder one in early, never a key read once or twice */
    CHECK(missed_hot == 0);
    CHECK(admitted > 100 && admitted < NKEYS / 2);
    CHECK(admitted_cold * 100 <= admitted);
    for (i = 0; i < NKEYS; i++) {
        snprintf(key, sizeof key, "z%d", i);
        if (truth[i] <= 2)
            CHECK(!in_l1(c, key));
    }
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    CHECK(st.l1_entries == (uint64_t)admitted);
    CHECK(st.l1_hits > READS / 2); /* the hot head is served from L1 */

    /* the report names the true ten hottest (Zipf ranks 0-9: well apart here) */
    CHECK_RC(strata_hot_keys(c, 10, top, &n), 0);
    CHECK(n == 10);
    for (i = 0; i < 10; i++) {
        int j, best = -1;
        for (j = 0; j < NKEYS; j++) {
            int k, taken = 0;
            for (k = 0; k < i; k++)
                taken |= want_top[k] == j;
            if (!taken && (best < 0 || truth[j] > truth[best]))
                best = j;
        }
        want_top[i] = best;
    }
    for (i = 0; i < (int)n; i++) {
        int j, found = 0;
        for (j = 0; j < 10; j++) {
            snprintf(key, sizeof key, "z%d", want_top[j]);
            found |= top[i].keylen == strlen(key) && memcmp(top[i].key, key, top[i].keylen) == 0;
        }
        CHECK(found);
        CHECK(top[i].full_keylen == top[i].keylen && top[i].key[top[i].keylen] == '\0');
        CHECK(i == 0 || top[i].rate_per_s <= top[i - 1].rate_per_s); /* hottest first */
        CHECK(top[i].rate_per_s > 0);
    }
    snprintf(key, sizeof key, "z%d", want_top[0]);
    CHECK(strcmp(top[0].key, key) == 0);
    /* counted exactly while tracked: within a few percent of the truth */
    CHECK(fabs((double)top[0].count - truth[want_top[0]]) <= 0.05 * truth[want_top[0]]);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

/* Runs the Zipf reads against c; returns its L1 hits, fills l1_entries. */
static uint64_t zipf_hits(strata_cache *c, uint64_t seed, uint64_t *l1_entries)
{
    strata_value v = STRATA_VALUE_INIT;
    strata_stats st;
    char key[32];
    int i;
    rng_state = seed;
    for (i = 0; i < NKEYS; i++) {
        snprintf(key, sizeof key, "z%d", i);
        CHECK_RC(strata_set(c, K(key), K("value"), 0), 0);
    }
    for (i = 0; i < READS; i++) {
        snprintf(key, sizeof key, "z%d", zipf());
        CHECK_RC(strata_get(c, K(key), &v), STRATA_OK);
    }
    strata_value_dispose(&v);
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    *l1_entries = st.l1_entries;
    return st.l1_hits;
}

/* L1 hits feed the sketch 1 time in hot_sample (16 by default), weighted by
 * 16: admission is decided on misses, which are all counted, so the same
 * trace gets the same hit ratio as counting every hit, and the report still
 * ranks the clear leaders first. */
static void sampled_hits_keep_the_hit_ratio(void)
{
    const char *q = "l1=1&l1_admission=hot&hot_threshold=8&hot_window=1000000"
                    "&hot_sketch_width=65536&l1_max_entries=100000&ttl_ms=600000";
    char exact_q[512];
    strata_cache *sampled = open_cache(q), *exact;
    strata_hot_key top[5];
    uint64_t hits_s, hits_e, entries_s, entries_e;
    size_t n = 0;
    int i;
    snprintf(exact_q, sizeof exact_q, "%s&hot_sample=1", q);
    exact = open_cache(exact_q);
    REQUIRE(sampled && exact);
    zipf_init();
    hits_s = zipf_hits(sampled, 0x1234567ull, &entries_s);
    hits_e = zipf_hits(exact, 0x1234567ull, &entries_e);
    CHECK(hits_e > READS / 2);
    CHECK(hits_s * 1000 >= hits_e * 995); /* no loss of hit ratio (0.5% slack for sketch noise) */
    CHECK(entries_s * 100 >= entries_e * 98 && entries_s * 100 <= entries_e * 102);
    CHECK_RC(strata_hot_keys(sampled, 5, top, &n), 0);
    CHECK(n == 5);
    for (i = 0; i < 3 && i < (int)n; i++) { /* Zipf ranks 0-2: 2x, 1.5x apart */
        char want[16];
        snprintf(want, sizeof want, "z%d", i);
        CHECK(strcmp(top[i].key, want) == 0);
    }
    strata_cache_free(sampled);
    strata_cache_free(exact);
}

/* Reads the n keys "<prefix><i>" `times` times each (values are set first). */
static void read_keys(strata_cache *c, const char *prefix, int n, int times)
{
    strata_value v = STRATA_VALUE_INIT;
    char key[32];
    int i, t;
    for (i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%s%d", prefix, i);
        CHECK_RC(strata_set(c, K(key), K("value"), 0), 0);
    }
    for (t = 0; t < times; t++)
        for (i = 0; i < n; i++) {
            snprintf(key, sizeof key, "%s%d", prefix, i);
            strata_get(c, K(key), &v);
        }
    strata_value_dispose(&v);
}

/* A full L1 of keys read often; then a scan of keys each read just enough
 * to pass the threshold. TinyLFU keeps the residents (the newcomers are read
 * less often than the entries they would push out); with hot_compare=0 the
 * scan flushes them. */
static void full_l1_keeps_frequent_keys_against_a_scan(void)
{
    const char *q = "l1=1&l1_admission=hot&hot_threshold=2&l1_max_entries=320&hot_sketch_width=65536";
    char plain_q[256];
    strata_cache *tinylfu = open_cache(q), *plain;
    int pass, kept[2] = {0, 0};
    snprintf(plain_q, sizeof plain_q, "%s&hot_compare=0", q);
    plain = open_cache(plain_q);
    REQUIRE(tinylfu && plain);
    for (pass = 0; pass < 2; pass++) {
        strata_cache *c = pass == 0 ? tinylfu : plain;
        char key[32];
        int i;
        read_keys(c, "resident-", 200, 10);
        read_keys(c, "scan-", 2000, 3);
        for (i = 0; i < 200; i++) {
            snprintf(key, sizeof key, "resident-%d", i);
            kept[pass] += in_l1(c, key);
        }
    }
    CHECK(kept[0] >= 190); /* TinyLFU: the residents stay */
    CHECK(kept[1] < 100);  /* the threshold alone lets the scan through */
    strata_cache_free(tinylfu);
    strata_cache_free(plain);
}

/* A key hot long ago is neither reported nor admitted once the window has
 * turned over a few times. */
static void old_popularity_fades(void)
{
    strata_cache *c = open_cache("l1=1&l1_admission=hot&hot_threshold=4&hot_window=4096"
                                 "&hot_sketch_width=4096&hot_top=4");
    strata_value v = STRATA_VALUE_INIT;
    strata_hot_key top[4];
    strata__key star = strata__key_of(K("old-star"));
    size_t n = 0, i;
    char key[32];
    int r;
    REQUIRE(c);
    CHECK_RC(strata_set(c, K("old-star"), K("x"), 0), 0);
    for (r = 0; r < 200; r++)
        strata_get(c, K("old-star"), &v);
    CHECK(strata__hot_is_hot(c->hot, &star));
    CHECK_RC(strata_hot_keys(c, 1, top, &n), 0);
    CHECK(n == 1 && strcmp(top[0].key, "old-star") == 0);
    for (r = 0; r < 40000; r++) { /* ten windows of other traffic */
        snprintf(key, sizeof key, "new-%d", r % 3);
        strata_get(c, K(key), &v);
    }
    CHECK(!strata__hot_is_hot(c->hot, &star));
    CHECK_RC(strata_hot_keys(c, 4, top, &n), 0);
    CHECK(n >= 3);
    for (i = 0; i < n && i < 3; i++)
        CHECK(strncmp(top[i].key, "new-", 4) == 0);
    strata__l1_clear(c->l1);
    CHECK_RC(strata_get(c, K("old-star"), &v), STRATA_OK);
    CHECK(v.level == STRATA_LEVEL_BACKEND && !in_l1(c, "old-star")); /* not admitted any more */
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void admission_all_and_none(void)
{
    strata_cache *all = open_cache("l1=1&l1_admission=all");
    strata_cache *none = open_cache("l1=1&l1_admission=none");
    strata_value v = STRATA_VALUE_INIT;
    strata_stats st;
    REQUIRE(all && none);
    CHECK_RC(strata_set(all, K("k"), K("v"), 0), 0);
    CHECK_RC(strata_get(all, K("k"), &v), STRATA_OK);
    CHECK(v.level == STRATA_LEVEL_L1); /* all: in at once */
    CHECK_RC(strata_set(none, K("k"), K("v"), 0), 0);
    CHECK_RC(strata_get(none, K("k"), &v), STRATA_OK);
    CHECK_RC(strata_get(none, K("k"), &v), STRATA_OK);
    CHECK(v.level == STRATA_LEVEL_BACKEND); /* none: never */
    strata_stats_get(none, &st, STRATA_STATS_VERSION);
    CHECK(st.l1_entries == 0 && st.l1_admission_rejects >= 2);
    strata_value_dispose(&v);
    strata_cache_free(all);
    strata_cache_free(none);
}

/* Hot keys are tracked with L1 off too; long keys come back as a marked prefix. */
static void report_without_l1_and_long_keys(void)
{
    strata_cache *c = open_cache("l1=0");
    strata_value v = STRATA_VALUE_INIT;
    strata_hot_key top[2];
    char longkey[1000];
    size_t n = 0;
    int i;
    REQUIRE(c);
    memset(longkey, 'L', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    for (i = 0; i < 50; i++)
        strata_get(c, K(longkey), &v);
    for (i = 0; i < 5; i++)
        strata_get(c, K("short"), &v);
    CHECK_RC(strata_hot_keys(c, 2, top, &n), 0);
    REQUIRE(n == 2);
    CHECK(top[0].keylen == STRATA_HOT_KEY_MAX && top[0].full_keylen == sizeof longkey - 1);
    CHECK(memcmp(top[0].key, longkey, STRATA_HOT_KEY_MAX) == 0 && top[0].key[STRATA_HOT_KEY_MAX] == '\0');
    CHECK(top[0].count >= 50 && top[1].count >= 5 && top[1].count < 50);
    CHECK(strcmp(top[1].key, "short") == 0);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void bad_input(void)
{
    strata_cache *c = open_cache("l1=1"), *off = open_cache("hot_sketch_width=0");
    strata_hot_key top[2];
    size_t n = 99;
    REQUIRE(c && off);
    CHECK_RC(strata_hot_keys(NULL, 2, top, &n), STRATA_EINVAL);
    CHECK_MSG_HAS("cache handle");
    CHECK_RC(strata_hot_keys(c, 2, top, NULL), STRATA_EINVAL);
    CHECK_MSG_HAS("count");
    CHECK_RC(strata_hot_keys(c, 2, NULL, &n), STRATA_EINVAL);
    CHECK_MSG_HAS("output array");
    /* the fixed memory the docs state: 4 bytes per sketch column, 280 per top-k slot */
    CHECK(strata__hot_bytes(c->hot) >= 4u * 262144 + 16u * 16 * 280 &&
          strata__hot_bytes(c->hot) < 4u * 262144 + 16u * 16 * 280 + 4096);
    CHECK_RC(strata_hot_keys(c, 0, NULL, &n), 0); /* nothing asked, nothing written */
    CHECK(n == 0);
    n = 99;
    CHECK_RC(strata_hot_keys(c, 2, top, &n), 0); /* nothing read yet */
    CHECK(n == 0);
    n = 99;
    CHECK_RC(strata_hot_keys(off, 2, top, &n), STRATA_ENOTSUP);
    CHECK_MSG_HAS("hot_sketch_width=0");
    CHECK(n == 0);
    strata_cache_free(c);
    strata_cache_free(off);
}

/* Threads hitting L1 keep their sampled hits in buffers of their own and
 * merge them in batches: a key every thread reads at once is counted for
 * all the threads' reads (none lost to a busy shard, nor left in the buffer
 * of a thread that ended; ours is merged before the report), and a
 * reader's own key is counted for its reads. */
#define SHARED_THREADS 4
#define SHARED_READS 16000

typedef struct shared_reader {
    pthread_t th;
    strata_cache *c;
    char own[16];
} shared_reader;

static void *read_shared_and_own(void *p)
{
    shared_reader *r = p;
    strata_value v = STRATA_VALUE_INIT;
    int i;
    for (i = 0; i < SHARED_READS; i++) {
        strata_get(r->c, K("everyone"), &v);
        strata_get(r->c, K(r->own), &v);
    }
    strata_value_dispose(&v);
    return NULL;
}

static void threads_samples_all_count(void)
{
    strata_cache *c = open_cache("l1=1&hot_window=10000000&hot_top=8");
    shared_reader r[SHARED_THREADS];
    strata_hot_key top[8];
    strata_value v = STRATA_VALUE_INIT;
    uint64_t everyone = 0, own[SHARED_THREADS] = {0};
    size_t n = 0, i;
    int t;
    REQUIRE(c);
    CHECK_RC(strata_set(c, K("everyone"), K("x"), 0), 0);
    for (t = 0; t < SHARED_THREADS; t++) {
        r[t].c = c;
        snprintf(r[t].own, sizeof r[t].own, "own-%d", t);
        CHECK_RC(strata_set(c, K(r[t].own), K("x"), 0), 0);
        pthread_create(&r[t].th, NULL, read_shared_and_own, &r[t]);
    }
    for (t = 0; t < SHARED_THREADS; t++)
        pthread_join(r[t].th, NULL);
    /* this thread's reads after the others ended: its samples merge here */
    for (t = 0; t < SHARED_READS; t++)
        strata_get(c, K("everyone"), &v);
    CHECK_RC(strata_hot_keys(c, 8, top, &n), 0);
    for (i = 0; i < n; i++) {
        if (strcmp(top[i].key, "everyone") == 0)
            everyone = top[i].count;
        for (t = 0; t < SHARED_THREADS; t++)
            if (strcmp(top[i].key, r[t].own) == 0)
                own[t] = top[i].count;
    }
    /* sampled 1 in 16, each sample counting 16: within 2% (dropping the
     * samples that met a busy shard lost 3-7% of "everyone" on 2 cores) */
    CHECK(everyone * 100 >= (SHARED_THREADS + 1) * SHARED_READS * 98ull);
    CHECK(everyone * 100 <= (SHARED_THREADS + 1) * SHARED_READS * 102ull);
    for (t = 0; t < SHARED_THREADS; t++)
        CHECK(own[t] * 100 >= SHARED_READS * 95ull && own[t] * 100 <= SHARED_READS * 105ull);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"zipf_admits_only_hot_keys", zipf_admits_only_hot_keys},
        {"sampled_hits_keep_the_hit_ratio", sampled_hits_keep_the_hit_ratio},
        {"full_l1_keeps_frequent_keys_against_a_scan", full_l1_keeps_frequent_keys_against_a_scan},
        {"old_popularity_fades", old_popularity_fades},
        {"admission_all_and_none", admission_all_and_none},
        {"report_without_l1_and_long_keys", report_without_l1_and_long_keys},
        {"bad_input", bad_input},
        {"threads_samples_all_count", threads_samples_all_count},
    };
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
