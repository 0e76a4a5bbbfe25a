/*
 * Stampede protection under load, against real servers (issue 3's figures):
 *
 * 1. Cold key: 4 processes x 16 threads call get_or_load at once with a
 *    100 ms loader. Loader calls per round (target 1) and the slowest
 *    caller's latency against the loader's own time measured in the same run
 *    (target <= loader + 50 ms).
 * 2. Hot key: 8 threads read one key with a 1 s fresh TTL for 10 s through
 *    get_or_load. Loads, and how many started while another load of the key
 *    was running (target 0: one load per expiry; XFetch refreshes somewhat
 *    before each expiry, so there are a few more loads than seconds), and the
 *    p99 latency against the p99 of a plain hit on a key that never expires,
 *    same threads, same run (target <= 3x).
 *
 *   bench_stampede REDIS_PORT MEMCACHED_PORT [hot_seconds]
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

#define PROCS 4
#define THREADS 16
#define LOADER_MS 100
#define COLD_ROUNDS 9
#define HOT_THREADS 8

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* --- 1. cold key across processes --- */

static int calls_fd = -1;

static int slow_loader(void *ud, const char *key, size_t keylen, strata_load *load)
{
    (void)ud;
    if (write(calls_fd, "x", 1) != 1)
        return -1;
    sleep_ms(LOADER_MS);
    return strata_load_value(load, key, keylen, 0);
}

typedef struct cold_arg {
    strata_cache *c;
    const char *key;
    pthread_barrier_t *start;
    double us;
    int rc;
} cold_arg;

static void *cold_thread(void *p)
{
    cold_arg *a = p;
    strata_value v = STRATA_VALUE_INIT;
    double t0;
    pthread_barrier_wait(a->start);
    t0 = now_us();
    a->rc = strata_get_or_load(a->c, a->key, strlen(a->key), slow_loader, NULL, &v);
    a->us = now_us() - t0;
    strata_value_dispose(&v);
    return NULL;
}

/* One process of a round: its own handle, 16 threads released together when
 * the parent writes to `go`; reports its slowest latency (us) on `out`. */
static void cold_child(const char *url, const char *key, int go, int out)
{
    strata_cache *c = open_or_die(url);
    pthread_t th[THREADS];
    cold_arg args[THREADS];
    pthread_barrier_t start;
    double worst = 0;
    char b;
    int i, bad = 0;
    pthread_barrier_init(&start, NULL, THREADS);
    if (read(go, &b, 1) != 1)
        _exit(2);
    for (i = 0; i < THREADS; i++) {
        args[i] = (cold_arg){c, key, &start, 0, 0};
        pthread_create(&th[i], NULL, cold_thread, &args[i]);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        bad |= args[i].rc != STRATA_OK;
        if (args[i].us > worst)
            worst = args[i].us;
    }
    if (write(out, &worst, sizeof worst) != (ssize_t)sizeof worst)
        _exit(2);
    strata_cache_free(c);
    _exit(bad);
}

static void cold_key(const char *name, const char *url)
{
    double slowest[COLD_ROUNDS], loader_ms[COLD_ROUNDS];
    int calls[COLD_ROUNDS], r, max_calls = 0, failed = 0;
    for (r = 0; r < COLD_ROUNDS; r++) {
        int callp[2], gop[2], outp[2], p, status;
        pid_t pids[PROCS];
        char key[64], buf[64];
        double worst = 0, w, t0;
        ssize_t n;
        snprintf(key, sizeof key, "cold-%d-%d-%ld", r, (int)getpid(), (long)time(NULL));
        if (pipe(callp) || pipe(gop) || pipe(outp))
            exit(1);
        for (p = 0; p < PROCS; p++) {
            if ((pids[p] = fork()) == 0) {
                close(callp[0]);
                calls_fd = callp[1];
                cold_child(url, key, gop[0], outp[1]);
            }
        }
        close(callp[1]);
        close(outp[1]);
        sleep_ms(200); /* let every child connect before the start */
        for (p = 0; p < PROCS; p++)
            if (write(gop[1], "g", 1) != 1)
                exit(1);
        calls[r] = 0;
        while ((n = read(callp[0], buf, sizeof buf)) > 0)
            calls[r] += (int)n;
        while (read(outp[0], &w, sizeof w) == (ssize_t)sizeof w)
            if (w > worst)
                worst = w;
        for (p = 0; p < PROCS; p++) {
            waitpid(pids[p], &status, 0);
            failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
        }
        close(callp[0]);
        close(gop[0]);
        close(gop[1]);
        close(outp[0]);
        slowest[r] = worst / 1000.0;
        /* The baseline: the loader's sleep alone, on the same machine, now. */
        t0 = now_us();
        sleep_ms(LOADER_MS);
        loader_ms[r] = (now_us() - t0) / 1000.0;
        if (calls[r] > max_calls)
            max_calls = calls[r];
    }
    {
        double over[COLD_ROUNDS];
        for (r = 0; r < COLD_ROUNDS; r++)
            over[r] = slowest[r] - loader_ms[r];
        printf("%-9s cold key, %d procs x %d threads, %d ms loader, %d rounds:\n", name, PROCS, THREADS,
               LOADER_MS, COLD_ROUNDS);
        printf("          loader calls per round: max %d (rounds with exactly 1: ", max_calls);
        {
            int ones = 0;
            for (r = 0; r < COLD_ROUNDS; r++)
                ones += calls[r] == 1;
            printf("%d/%d)\n", ones, COLD_ROUNDS);
        }
        printf("          slowest caller: median %.1f ms, loader alone %.1f ms, median excess %.1f ms "
               "(max %.1f ms)%s\n",
               percentile(slowest, COLD_ROUNDS, 0.5), percentile(loader_ms, COLD_ROUNDS, 0.5),
               percentile(over, COLD_ROUNDS, 0.5), percentile(over, COLD_ROUNDS, 1.0),
               failed ? "  FAILED CALLS" : "");
    }
}

/* --- 2. hot key --- */

typedef struct hot_run {
    strata_cache *c;
    const char *key;
    int use_loader;
    volatile int stop;
    pthread_mutex_t lock;
    int loads, overlapping; /* overlapping: started while another load ran */
    double last_end;
} hot_run;

typedef struct hot_arg {
    hot_run *run;
    double *lat;
    size_t n, cap;
    int errors;
} hot_arg;

static int counting_loader(void *ud, const char *key, size_t keylen, strata_load *load)
{
    hot_run *h = ud;
    double start = now_us();
    pthread_mutex_lock(&h->lock);
    h->loads++;
    h->overlapping += start < h->last_end || h->last_end < 0;
    h->last_end = -1; /* running */
    pthread_mutex_unlock(&h->lock);
    sleep_ms(LOADER_MS);
    pthread_mutex_lock(&h->lock);
    h->last_end = now_us();
    pthread_mutex_unlock(&h->lock);
    return strata_load_value(load, key, keylen, 0);
}

static void *hot_thread(void *p)
{
    hot_arg *a = p;
    hot_run *h = a->run;
    strata_value v = STRATA_VALUE_INIT;
    while (!h->stop && a->n < a->cap) {
        double t0 = now_us();
        int rc = h->use_loader ? strata_get_or_load(h->c, h->key, strlen(h->key), counting_loader, h, &v)
                               : strata_get(h->c, h->key, strlen(h->key), &v);
        a->lat[a->n++] = now_us() - t0;
        a->errors += rc != STRATA_OK && rc != STRATA_HIT_STALE;
    }
    strata_value_dispose(&v);
    return NULL;
}

/* 8 threads for `seconds`; returns the p99 latency (us), fills *loads. */
static double hot_phase(strata_cache *c, const char *key, int use_loader, int seconds, int *loads,
                        int *overlapping, double *p50, size_t *ops, int *errors)
{
    hot_run h = {c, key, use_loader, 0, PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
    hot_arg args[HOT_THREADS];
    pthread_t th[HOT_THREADS];
    size_t cap = 4000000 / HOT_THREADS, total = 0, i;
    double *all, p99;
    int t;
    for (t = 0; t < HOT_THREADS; t++) {
        args[t] = (hot_arg){&h, malloc(cap * sizeof(double)), 0, cap, 0};
        pthread_create(&th[t], NULL, hot_thread, &args[t]);
    }
    sleep_ms(seconds * 1000);
    h.stop = 1;
    *errors = 0;
    for (t = 0; t < HOT_THREADS; t++) {
        pthread_join(th[t], NULL);
        total += args[t].n;
        *errors += args[t].errors;
    }
    all = malloc(total * sizeof(double));
    for (t = 0, i = 0; t < HOT_THREADS; t++) {
        memcpy(all + i, args[t].lat, args[t].n * sizeof(double));
        i += args[t].n;
        free(args[t].lat);
    }
    p99 = percentile(all, total, 0.99);
    *p50 = percentile(all, total, 0.5);
    free(all);
    *ops = total;
    *loads = h.loads;
    *overlapping = h.overlapping;
    return p99;
}

static void hot_key(const char *name, const char *url_base, int seconds)
{
    static const char *modes[] = {"inline refresh", "refresh_threads=1"};
    char url[512], key[64];
    int m;
    for (m = 0; m < 2; m++) {
        strata_cache *c;
        strata_value v = STRATA_VALUE_INIT;
        double plain99, plain50, before99, before50, hot99, hot50;
        size_t plain_ops, hot_ops;
        int loads, plain_loads, overlapping, errors, plain_errors;
        snprintf(url, sizeof url, "%s%sttl_ms=1000&jitter_pct=0&pool_size=%d&xfetch_beta=1", url_base,
                 strchr(url_base, '?') ? "&" : "?", HOT_THREADS + 2);
        if (m == 1)
            strcat(url, "&refresh_threads=1");
        c = open_or_die(url);
        snprintf(key, sizeof key, "hot-%d-%d", m, (int)getpid());
        /* Baseline: a plain hit on a key that never expires in this run,
         * measured before and after the hot phase (after a discarded warm-up
         * that opens the pool's connections). */
        if (strata_set(c, "plain", 5, "p", 1, 3600 * 1000) != 0)
            exit(1);
        hot_phase(c, "plain", 0, 1, &plain_loads, &overlapping, &plain50, &plain_ops, &plain_errors);
        before99 = hot_phase(c, "plain", 0, seconds / 2 > 0 ? seconds / 2 : 1, &plain_loads, &overlapping, &before50,
                             &plain_ops, &plain_errors);
        /* Warm the hot key, then read it through get_or_load for `seconds`. */
        strata_get_or_load(c, key, strlen(key), counting_loader, &(hot_run){.lock = PTHREAD_MUTEX_INITIALIZER}, &v);
        strata_value_dispose(&v);
        hot99 = hot_phase(c, key, 1, seconds, &loads, &overlapping, &hot50, &hot_ops, &errors);
        plain99 = hot_phase(c, "plain", 0, seconds / 2 > 0 ? seconds / 2 : 1, &plain_loads, &overlapping, &plain50,
                            &plain_ops, &plain_errors);
        plain99 = (plain99 + before99) / 2;
        plain50 = (plain50 + before50) / 2;
        printf("%-9s hot key, %s, %d threads, 1 s TTL, %d s: %d loads (one per %.0f ms), %d started while "
               "another ran; %zu gets, %d errors\n",
               name, modes[m], HOT_THREADS, seconds, loads, seconds * 1000.0 / (loads ? loads : 1), overlapping,
               hot_ops, errors);
        printf("          p99 %.1f us vs plain hit p99 %.1f us (mean of before and after): %.2fx "
               "(p50 %.1f vs %.1f us)\n", hot99, plain99,
               hot99 / plain99, hot50, plain50);
        strata_cache_free(c);
    }
}

int main(int argc, char **argv)
{
    char redis[256], mc[256];
    int seconds = argc > 3 ? atoi(argv[3]) : 10;
    if (argc < 3) {
        fprintf(stderr, "usage: bench_stampede REDIS_PORT MEMCACHED_PORT [hot_seconds]\n");
        return 2;
    }
    snprintf(redis, sizeof redis, "redis://127.0.0.1:%s?ns=benchstamp&pool_size=4&lock_wait_ms=5000", argv[1]);
    snprintf(mc, sizeof mc, "memcached://127.0.0.1:%s?ns=benchstamp&pool_size=4&lock_wait_ms=5000", argv[2]);
    cold_key("redis", redis);
    cold_key("memcached", mc);
    hot_key("redis", redis, seconds);
    hot_key("memcached", mc, seconds);
    return 0;
}
