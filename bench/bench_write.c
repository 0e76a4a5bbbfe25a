/*
 * Write-behind on Redis with the flusher running: how many writes per second
 * the cache accepts, and how long a write takes to reach the writer.
 *   bench_write REDIS_PORT
 * Rows, in interleaved rounds (median of ROUNDS):
 *   - baseline: strata_set (one SET round trip per write), 1 thread;
 *   - write_behind, 1 thread and THREADS threads (one script round trip each);
 *   - write_behind_many, BATCH writes per call (one pipelined round trip).
 * End-to-end delay: each value carries its enqueue time (monotonic ns); the
 * writer records now - then. Measured at saturation (the throughput rounds)
 * and at a paced rate well below it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stratacache.h"
#include "bench_util.h"

#define ROUNDS 7
#define OPS 20000
#define THREADS 4
#define CROWD 16 /* more callers than pool connections: group commit engages */
#define BATCH 100
#define PACED_RATE 5000 /* writes/s */
#define PACED_OPS 5000
#define MAX_DELAYS 1000000

/* ---- the writer: records delays ------------------------------------------------ */

static pthread_mutex_t delays_mu = PTHREAD_MUTEX_INITIALIZER;
static double delays_ms[MAX_DELAYS];
static size_t ndelays;
static int recording;

static int delay_writer(void *ud, size_t n, const char *const *keys, const size_t *keylens,
                        const char *const *vals, const size_t *vallens, strata_write *w)
{
    uint64_t now = now_ns();
    size_t i;
    (void)ud; (void)keys; (void)keylens; (void)w;
    pthread_mutex_lock(&delays_mu);
    for (i = 0; i < n && recording; i++) {
        unsigned long long then;
        if (vallens[i] >= 20 && sscanf(vals[i], "%20llu", &then) == 1 && ndelays < MAX_DELAYS)
            delays_ms[ndelays++] = (double)(now - then) / 1e6;
    }
    pthread_mutex_unlock(&delays_mu);
    return 0;
}

/* ---- writers under test -------------------------------------------------------- */

typedef struct job {
    strata_cache *c;
    int mode;          /* 0 set, 1 write_behind, 2 write_behind_many */
    int id, ops;
    int errors;
} job;

static void make_value(char *buf, size_t size)
{
    /* 100 bytes: the enqueue time first (the writer parses it), then padding */
    int n = snprintf(buf, size, "%020llu", (unsigned long long)now_ns());
    memset(buf + n, 'x', size - (size_t)n - 1);
    buf[size - 1] = '\0';
}

static void *run_job(void *arg)
{
    job *j = arg;
    char keys[BATCH][32], vals[BATCH][101];
    const char *kp[BATCH], *vp[BATCH];
    size_t kl[BATCH], vl[BATCH];
    int i, k;
    for (i = 0; i < j->ops;) {
        if (j->mode == 2) {
            int n = j->ops - i < BATCH ? j->ops - i : BATCH;
            for (k = 0; k < n; k++) {
                snprintf(keys[k], sizeof keys[k], "t%d-k%d", j->id, (i + k) % 5000);
                make_value(vals[k], sizeof vals[k]);
                kp[k] = keys[k]; kl[k] = strlen(keys[k]);
                vp[k] = vals[k]; vl[k] = 100;
            }
            if (strata_write_behind_many(j->c, (size_t)n, kp, kl, vp, vl, 0) != 0)
                j->errors++;
            i += n;
        } else {
            snprintf(keys[0], sizeof keys[0], "t%d-k%d", j->id, i % 5000);
            make_value(vals[0], sizeof vals[0]);
            if ((j->mode == 0 ? strata_set(j->c, keys[0], strlen(keys[0]), vals[0], 100, 0)
                              : strata_write_behind(j->c, keys[0], strlen(keys[0]), vals[0], 100, 0)) != 0)
                j->errors++;
            i++;
        }
    }
    return NULL;
}

/* Writes per second of one round: `threads` threads, OPS writes in all. */
static double round_rate(strata_cache *c, int mode, int threads, int *errors)
{
    pthread_t th[CROWD];
    job jobs[CROWD];
    uint64_t t0;
    int i;
    t0 = now_ns();
    for (i = 0; i < threads; i++) {
        jobs[i].c = c; jobs[i].mode = mode; jobs[i].id = i; jobs[i].ops = OPS / threads; jobs[i].errors = 0;
        pthread_create(&th[i], NULL, run_job, &jobs[i]);
    }
    for (i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        *errors += jobs[i].errors;
    }
    return (double)(OPS / threads * threads) / ((double)(now_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
    strata_options o = STRATA_OPTIONS_INIT;
    strata_cache *c;
    char url[256];
    double set1[ROUNDS], wb1[ROUNDS], wbn[ROUNDS], wbc[ROUNDS], many[ROUNDS], manyn[ROUNDS], ratio[ROUNDS];
    int r, errors = 0, i;
    uint64_t t0;
    strata_stats st;

    if (argc < 2) {
        fprintf(stderr, "usage: bench_write REDIS_PORT\n");
        return 2;
    }
    o.wb_writer = delay_writer;
    o.wb_threads = 1;
    o.wb_batch_size = 500;
    o.wb_interval_ms = 2;
    o.wb_max_backlog = 10000000;
    o.pool_size = 8;
    snprintf(url, sizeof url, "redis://127.0.0.1:%s?ns=benchw&timeout_ms=2000", argv[1]);
    if (strata_cache_new(&c, url, &o) != 0) {
        fprintf(stderr, "cannot open %s: %s\n", url, strata_error_last());
        return 1;
    }
    round_rate(c, 1, 1, &errors); /* warm-up: connections, script cache, group */
    strata_flush(c, 30000);

    recording = 1;
    for (r = 0; r < ROUNDS; r++) {
        set1[r] = round_rate(c, 0, 1, &errors);
        wb1[r] = round_rate(c, 1, 1, &errors);
        wbn[r] = round_rate(c, 1, THREADS, &errors);
        wbc[r] = round_rate(c, 1, CROWD, &errors);
        many[r] = round_rate(c, 2, 1, &errors);
        manyn[r] = round_rate(c, 2, THREADS, &errors);
        ratio[r] = wb1[r] / set1[r];
        if (strata_flush(c, 60000) != 0)
            fprintf(stderr, "flush: %s\n", strata_error_last());
    }
    recording = 0;
    printf("== write-behind on redis, flusher running (1 thread, batches of %u), %d rounds, median\n",
           o.wb_batch_size, ROUNDS);
    printf("%-44s %12.0f writes/s\n", "baseline: strata_set, 1 thread", percentile(set1, ROUNDS, 0.5));
    printf("%-44s %12.0f writes/s  (x%.2f of set)\n", "write_behind, 1 thread", percentile(wb1, ROUNDS, 0.5),
           percentile(ratio, ROUNDS, 0.5));
    printf("write_behind, %d threads %20s %12.0f writes/s\n", THREADS, "", percentile(wbn, ROUNDS, 0.5));
    printf("write_behind, %d threads (pool of %u) %8s %12.0f writes/s\n", CROWD, o.pool_size, "",
           percentile(wbc, ROUNDS, 0.5));
    printf("write_behind_many (%d per call), 1 thread %4s %12.0f writes/s\n", BATCH, "", percentile(many, ROUNDS, 0.5));
    printf("write_behind_many (%d per call), %d threads %3s %12.0f writes/s\n", BATCH, THREADS, "",
           percentile(manyn, ROUNDS, 0.5));
    pthread_mutex_lock(&delays_mu);
    printf("end-to-end delay at saturation (%zu writes): median %.2f ms, p99 %.2f ms\n", ndelays,
           percentile(delays_ms, ndelays, 0.5), percentile(delays_ms, ndelays, 0.99));
    ndelays = 0;
    pthread_mutex_unlock(&delays_mu);

    /* paced: PACED_RATE writes/s from one thread */
    recording = 1;
    t0 = now_ns();
    for (i = 0; i < PACED_OPS; i++) {
        char key[32], val[101];
        uint64_t due = t0 + (uint64_t)i * (1000000000ull / PACED_RATE);
        while (now_ns() < due)
            ;
        snprintf(key, sizeof key, "paced-%d", i % 1000);
        make_value(val, sizeof val);
        if (strata_write_behind(c, key, strlen(key), val, 100, 0) != 0)
            errors++;
    }
    strata_flush(c, 30000);
    recording = 0;
    pthread_mutex_lock(&delays_mu);
    printf("end-to-end delay at %d writes/s (%zu writes): median %.2f ms, p99 %.2f ms\n", PACED_RATE, ndelays,
           percentile(delays_ms, ndelays, 0.5), percentile(delays_ms, ndelays, 0.99));
    pthread_mutex_unlock(&delays_mu);
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    printf("stats: enqueued %llu, flushed %llu, retried %llu, dead %llu, backlog %llu; errors %d\n",
           (unsigned long long)st.wb_enqueued, (unsigned long long)st.wb_flushed,
           (unsigned long long)st.wb_retried, (unsigned long long)st.wb_dead,
           (unsigned long long)st.wb_backlog, errors);
    strata_cache_free(c);
    return errors ? 1 : 0;
}
