/*
 * Hot keys and L1 coherence on Redis:
 *  1. throughput of a Zipf(1.0) workload over 100k keys, 8 threads, 95% get /
 *     5% set, with L1 in hot-admission mode against L1 off. Rounds of the two
 *     alternate (same machine noise); the ratio is the median of per-round
 *     ratios;
 *  2. the L1 memory that took (entries, bytes) and the sketch's fixed size;
 *  3. the staleness window: from a write in one process to the moment
 *     another process, reading the key from its L1 in a loop, sees the new
 *     value (median, p99).
 *  4. the same Zipf trace replayed in one thread through memory:// caches
 *     that differ only in admission (the present threshold, TinyLFU's
 *     newcomer-vs-victim test, all): L1 hit ratio of the reads, and the
 *     share of operations left for the backend (what bounds hot vs off).
 *   bench_hot REDIS_PORT [round_seconds]
 *   bench_hot --trace          part 4 only (no server)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stratacache.h"
#include "bench_util.h"

#define NKEYS 100000
#define THREADS 8
#define ROUNDS 9
#define WRITE_PCT 5
#define VALUE_LEN 100
#define STALE_SAMPLES 300

/* ---- Zipf(1.0) by inverse CDF ---- */

static double *cdf;

static void zipf_init(void)
{
    double sum = 0;
    int i;
    cdf = malloc(NKEYS * sizeof *cdf);
    for (i = 0; i < NKEYS; i++)
        sum += 1.0 / (i + 1);
    cdf[0] = 1.0 / sum;
    for (i = 1; i < NKEYS; i++)
        cdf[i] = cdf[i - 1] + 1.0 / (i + 1) / sum;
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int zipf(uint64_t *s)
{
    double u = (double)(next_rand(s) >> 11) / 9007199254740992.0;
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

/* ---- the mixed workload ---- */

typedef struct worker {
    pthread_t th;
    strata_cache *c;
    uint64_t seed;
    double until;
    long ops, errors;
} worker;

static void *work(void *p)
{
    worker *w = p;
    strata_value v = STRATA_VALUE_INIT;
    char key[32], val[VALUE_LEN];
    long n = 0;
    memset(val, 'v', sizeof val);
    while ((n & 63) != 0 || now_s() < w->until) {
        int k = zipf(&w->seed), rc;
        size_t kl = (size_t)snprintf(key, sizeof key, "h%d", k);
        if (next_rand(&w->seed) % 100 < WRITE_PCT)
            rc = strata_set(w->c, key, kl, val, sizeof val, 0);
        else
            rc = strata_get(w->c, key, kl, &v);
        if (rc < 0)
            w->errors++;
        n++;
    }
    w->ops = n;
    strata_value_dispose(&v);
    return NULL;
}

static double run_round(strata_cache *c, double seconds, uint64_t seed)
{
    worker w[THREADS];
    double t0 = now_s(), until = t0 + seconds;
    long ops = 0, errors = 0;
    int i;
    for (i = 0; i < THREADS; i++) {
        w[i].c = c;
        w[i].seed = seed * 7919 + (uint64_t)i * 104729 + 1;
        w[i].until = until;
        w[i].ops = w[i].errors = 0;
        pthread_create(&w[i].th, NULL, work, &w[i]);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(w[i].th, NULL);
        ops += w[i].ops;
        errors += w[i].errors;
    }
    if (errors)
        fprintf(stderr, "  %ld errors in a round: %s\n", errors, strata_error_last());
    return ops / (now_s() - t0);
}

static void hit_counts(strata_cache *c, uint64_t *hits, uint64_t *misses)
{
    strata_stats st;
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    *hits = st.l1_hits;
    *misses = st.l1_misses;
}

/* L1 hits over L1 lookups since hit_counts gave h0, m0. */
static double round_hit_ratio(strata_cache *c, uint64_t h0, uint64_t m0)
{
    uint64_t h, m;
    hit_counts(c, &h, &m);
    return h - h0 + m - m0 ? (double)(h - h0) / (double)(h - h0 + m - m0) : 0;
}

static void preload(const char *base)
{
    /* each configuration has its own namespace: writes in the L1-off rounds
     * must not evict the L1 of the other configuration */
    char url[256], keys[1000][16], val[VALUE_LEN];
    const char *kp[1000], *vp[1000];
    size_t kl[1000], vl[1000];
    strata_cache *c;
    int i, j;
    snprintf(url, sizeof url, "%s&l1=0", base);
    c = open_or_die(url);
    memset(val, 'v', sizeof val);
    for (i = 0; i < NKEYS; i += 1000) {
        for (j = 0; j < 1000; j++) {
            kl[j] = (size_t)snprintf(keys[j], sizeof keys[j], "h%d", i + j);
            kp[j] = keys[j];
            vp[j] = val;
            vl[j] = sizeof val;
        }
        if (strata_set_many(c, 1000, kp, kl, vp, vl, 0) != 0) {
            fprintf(stderr, "preload failed: %s\n", strata_error_last());
            exit(1);
        }
    }
    strata_cache_free(c);
}

/* ---- staleness across processes ---- */

static void staleness(const char *base)
{
    char url[256];
    int to_parent[2], to_child[2], i, n = 0;
    double t0[STALE_SAMPLES], seen[STALE_SAMPLES], lag_us[STALE_SAMPLES], write_us[STALE_SAMPLES];
    pid_t pid;
    strata_cache *w;

    if (pipe(to_parent) != 0 || pipe(to_child) != 0)
        exit(1);
    snprintf(url, sizeof url, "%s&ns=bench-stale&l1=1&l1_admission=all", base);
    pid = fork();
    if (pid == 0) {
        /* The reader: serves "stale-key" from its L1 in a tight loop and
         * reports when the value changes to the version it is told to expect. */
        strata_cache *r = open_or_die(url);
        strata_value v = STRATA_VALUE_INIT;
        char want[32], go;
        for (i = 0; i < STALE_SAMPLES; i++) {
            double t;
            int wl = snprintf(want, sizeof want, "version-%d", i);
            /* be sure the old value sits in L1 before the writer goes */
            do
                strata_get(r, "stale-key", 9, &v);
            while (v.level != 1);
            if (write(to_parent[1], "r", 1) != 1 || read(to_child[0], &go, 1) != 1)
                _exit(1);
            do
                strata_get(r, "stale-key", 9, &v);
            while (!(v.len == (size_t)wl && memcmp(v.data, want, (size_t)wl) == 0));
            t = now_s();
            if (write(to_parent[1], &t, sizeof t) != sizeof t)
                _exit(1);
        }
        strata_value_dispose(&v);
        strata_cache_free(r);
        _exit(0);
    }
    w = open_or_die(url);
    strata_set(w, "stale-key", 9, "initial", 7, 0);
    for (i = 0; i < STALE_SAMPLES; i++) {
        char val[32], ready;
        int vl = snprintf(val, sizeof val, "version-%d", i);
        if (read(to_parent[0], &ready, 1) != 1)
            break;
        if (write(to_child[1], "g", 1) != 1)
            break;
        t0[i] = now_s();
        strata_set(w, "stale-key", 9, val, (size_t)vl, 0);
        write_us[n] = (now_s() - t0[i]) * 1e6;
        if (read(to_parent[0], &seen[i], sizeof seen[i]) != sizeof seen[i])
            break;
        lag_us[n++] = (seen[i] - t0[i]) * 1e6;
    }
    waitpid(pid, NULL, 0);
    strata_cache_free(w);
    if (n == 0) {
        printf("staleness: no samples\n");
        return;
    }
    qsort(lag_us, (size_t)n, sizeof *lag_us, cmp_double);
    printf("staleness window, write in process A -> process B's L1 serves the new value "
           "(%d samples): median %.1f us, p99 %.1f us, max %.1f us; the write call itself: "
           "median %.1f us, p99 %.1f us\n",
           n, lag_us[n / 2], lag_us[(int)(0.99 * (n - 1))], lag_us[n - 1],
           percentile(write_us, n, 0.5), percentile(write_us, n, 0.99));
}

/* ---- admission on one trace ---- */

#define TRACE_OPS 2000000

static void trace_row(const char *label, const char *query)
{
    char url[256], key[32], val[VALUE_LEN];
    strata_cache *c;
    strata_value v = STRATA_VALUE_INIT;
    strata_stats st;
    uint64_t seed = 42, hits = 0;
    long i, reads = 0;
    int pass;
    snprintf(url, sizeof url, "memory://?%s", query);
    c = open_or_die(url);
    memset(val, 'v', sizeof val);
    for (i = 0; i < NKEYS; i++) {
        size_t kl = (size_t)snprintf(key, sizeof key, "h%ld", i);
        strata_set(c, key, kl, val, sizeof val, 0);
    }
    for (pass = 0; pass < 2; pass++) { /* a warm-up pass, then the measured one */
        uint64_t hits0;
        strata_stats_get(c, &st, STRATA_STATS_VERSION);
        hits0 = st.l1_hits;
        reads = 0;
        for (i = 0; i < TRACE_OPS; i++) {
            int k = zipf(&seed);
            size_t kl = (size_t)snprintf(key, sizeof key, "h%d", k);
            if (next_rand(&seed) % 100 < WRITE_PCT) {
                strata_set(c, key, kl, val, sizeof val, 0);
            } else {
                strata_get(c, key, kl, &v);
                reads++;
            }
        }
        strata_stats_get(c, &st, STRATA_STATS_VERSION);
        hits = st.l1_hits - hits0;
    }
    printf("  %-44s L1 hit ratio %5.1f%% of reads; ops left for the backend %5.1f%% "
           "(bound on hot vs off: %.1fx); %llu L1 entries\n", label, 100.0 * (double)hits / (double)reads,
           100.0 * (double)(TRACE_OPS - hits) / TRACE_OPS, (double)TRACE_OPS / (double)(TRACE_OPS - hits),
           (unsigned long long)st.l1_entries);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void trace_rows(void)
{
    printf("one Zipf(1.0) trace, %d ops (after as many to warm up) over %d keys, %d%% writes, one thread, "
           "memory:// (L1 defaults: 16 MiB, 100k entries, 10 s L1 TTL)\n", TRACE_OPS, NKEYS, WRITE_PCT);
    trace_row("l1_admission=hot, threshold only (present)", "l1=1&l1_admission=hot&hot_compare=0");
    trace_row("l1_admission=hot, + TinyLFU victim test", "l1=1&l1_admission=hot");
    trace_row("l1_admission=all (second-chance LRU)", "l1=1&l1_admission=all");
    if (getenv("BENCH_TRACE_EXTRA"))
        trace_row(getenv("BENCH_TRACE_EXTRA"), getenv("BENCH_TRACE_EXTRA"));
}

int main(int argc, char **argv)
{
    char base[128], off_url[256], hot_url[512];
    double seconds = argc > 2 ? atof(argv[2]) : 2.0, off[ROUNDS], hot[ROUNDS], ratio[ROUNDS], hits[ROUNDS];
    strata_cache *c_off, *c_hot;
    strata_stats st;
    const char *hot_opts = getenv("BENCH_HOT_OPTS");
    int r;

    if (argc >= 2 && strcmp(argv[1], "--trace") == 0) {
        zipf_init();
        trace_rows();
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: bench_hot REDIS_PORT [round_seconds] | --trace\n");
        return 2;
    }
    if (hot_opts == NULL)
        hot_opts = "l1_admission=hot";
    snprintf(base, sizeof base, "redis://127.0.0.1:%d?pool_size=8&timeout_ms=1000", atoi(argv[1]));
    zipf_init();
    snprintf(off_url, sizeof off_url, "%s&ns=bench-off", base);
    snprintf(hot_url, sizeof hot_url, "%s&ns=bench-hot", base);
    preload(off_url);
    preload(hot_url);
    snprintf(off_url, sizeof off_url, "%s&ns=bench-off&l1=0", base);
    snprintf(hot_url, sizeof hot_url, "%s&ns=bench-hot&l1=1&%s", base, hot_opts);
    c_off = open_or_die(off_url);
    c_hot = open_or_die(hot_url);
    printf("Zipf(1.0) over %d keys, %d threads, %d%% writes, %d-byte values; %d rounds of %.1f s\n",
           NKEYS, THREADS, WRITE_PCT, VALUE_LEN, ROUNDS, seconds);
    printf("hot cache: %s\n", hot_url);
    {
        /* Warm-up: the sketch learns and L1 fills until a round's L1 hit
         * ratio stops rising (at this rate a fixed few seconds left the
         * rounds measuring a cold L1), at most 20 rounds. */
        double prev = -1, now = 0;
        int w;
        for (w = 0; w < 20; w++) {
            uint64_t h0, m0;
            hit_counts(c_hot, &h0, &m0);
            run_round(c_hot, seconds, 999 + (uint64_t)w);
            now = round_hit_ratio(c_hot, h0, m0);
            if (now < prev + 0.005)
                break;
            prev = now;
        }
        printf("warm-up: %d rounds, L1 hit ratio of the last %.1f%%\n", w + 1, 100 * now);
    }
    run_round(c_off, seconds / 2, 998);
    for (r = 0; r < ROUNDS; r++) {
        uint64_t h0, m0;
        off[r] = run_round(c_off, seconds, (uint64_t)r);
        hit_counts(c_hot, &h0, &m0);
        hot[r] = run_round(c_hot, seconds, (uint64_t)r + 100);
        hits[r] = round_hit_ratio(c_hot, h0, m0);
        ratio[r] = hot[r] / off[r];
        printf("  round %d: L1 off %.0f ops/s, L1 hot %.0f ops/s, ratio %.2fx; L1 hit ratio in the round %.1f%%\n",
               r, off[r], hot[r], ratio[r], 100 * hits[r]);
    }
    printf("throughput: L1 off %.0f ops/s, L1 hot %.0f ops/s (medians); ratio %.2fx (median of rounds); "
           "L1 hit ratio %.1f%% (median of rounds)\n",
           percentile(off, ROUNDS, 0.5), percentile(hot, ROUNDS, 0.5), percentile(ratio, ROUNDS, 0.5),
           100 * percentile(hits, ROUNDS, 0.5));
    strata_stats_get(c_hot, &st, STRATA_STATS_VERSION);
    printf("L1 (hot): %llu entries, %llu bytes (%.1f MiB) of %d keys; hit ratio %.1f%% of L1 lookups; "
           "%llu admission rejects; %llu fills refused (a write of their stripe came first); "
           "%llu invalidations received\n",
           (unsigned long long)st.l1_entries, (unsigned long long)st.l1_bytes, st.l1_bytes / 1048576.0,
           NKEYS, 100.0 * st.l1_hits / (double)(st.l1_hits + st.l1_misses ? st.l1_hits + st.l1_misses : 1),
           (unsigned long long)st.l1_admission_rejects, (unsigned long long)st.l1_fills_refused,
           (unsigned long long)st.invalidations_received);
    {
        strata_hot_key top[5];
        size_t n = 0, i;
        if (strata_hot_keys(c_hot, 5, top, &n) == 0)
            for (i = 0; i < n; i++)
                printf("  hot key %zu: %s, ~%llu reads in window, %.0f reads/s\n", i + 1, top[i].key,
                       (unsigned long long)top[i].count, top[i].rate_per_s);
    }
    strata_cache_free(c_off);
    strata_cache_free(c_hot);
    staleness(base);
    trace_rows();
    return 0;
}
