/*
 * Core overhead against the raw clients, measured in the same run on the
 * same servers. Each figure is the median over ROUNDS of the mean per-op time
 * in a round; the ratios are what matter (the machine is noisy).
 *   bench_core REDIS_PORT MEMCACHED_PORT
 *   bench_core --l1            the L1 rows only (memory://, no servers)
 *   bench_core --l1-checks N   N strata_l1_check calls that answer OK (callgrind)
 *   bench_core --l1-hits N [NTAGS]  N L1 hits and nothing else (for callgrind:
 *                              scripts/callgrind-l1.sh)
 */
#include <hiredis/hiredis.h>
#include <libmemcached/memcached.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stratacache.h"
#include "bench_util.h"

#define ROUNDS 15
#define OPS 4000
#define BATCH 100

typedef void (*op_fn)(void *ctx);

static double round_us(op_fn fn, void *ctx, int ops)
{
    double t0 = now_us();
    int i;
    for (i = 0; i < ops; i++)
        fn(ctx);
    return (now_us() - t0) / ops;
}

/* Rounds of A and B interleaved, so both see the same machine noise: median
 * per-op microseconds of each, and the median of the per-round ratios A/B. */
static double measure_pair(op_fn a, void *actx, op_fn b, void *bctx, int ops, double *a_us, double *b_us)
{
    double pa[ROUNDS], pb[ROUNDS], ratio[ROUNDS];
    int r;
    round_us(a, actx, ops / 10); /* warm-up */
    round_us(b, bctx, ops / 10);
    for (r = 0; r < ROUNDS; r++) {
        pa[r] = round_us(a, actx, ops);
        pb[r] = round_us(b, bctx, ops);
        ratio[r] = pa[r] / pb[r];
    }
    *a_us = median(pa, ROUNDS);
    *b_us = median(pb, ROUNDS);
    return median(ratio, ROUNDS);
}

/* --- raw clients --- */
static redisContext *rc;
static memcached_st *mc, *mc_eq;

static void raw_redis_get(void *ctx)
{
    redisReply *r = redisCommand(rc, "GET %s", (const char *)ctx);
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "raw redis GET failed\n");
        exit(1);
    }
    freeReplyObject(r);
}

static void raw_redis_pipeline(void *ctx)
{
    char **keys = ctx;
    int i;
    for (i = 0; i < BATCH; i++)
        redisAppendCommand(rc, "GET %s", keys[i]);
    for (i = 0; i < BATCH; i++) {
        void *reply;
        if (redisGetReply(rc, &reply) != REDIS_OK) {
            fprintf(stderr, "raw pipeline failed\n");
            exit(1);
        }
        freeReplyObject(reply);
    }
}

static void raw_mc_get(void *ctx)
{
    size_t len;
    uint32_t flags;
    memcached_return_t r;
    char *v = memcached_get(mc, (const char *)ctx, strlen(ctx), &len, &flags, &r);
    if (v == NULL) {
        fprintf(stderr, "raw memcached get failed: %s\n", memcached_strerror(mc, r));
        exit(1);
    }
    free(v);
}

/* --- stratacache --- */
typedef struct strata_ctx {
    strata_cache *c;
    const char *key;
    strata_value v;
    const char **keys;
    size_t *lens;
    strata_value *outs;
    int *results;
} strata_ctx;

static void strata_get_op(void *p)
{
    strata_ctx *s = p;
    if (strata_get(s->c, s->key, strlen(s->key), &s->v) != STRATA_OK) {
        fprintf(stderr, "strata_get failed: %s\n", strata_error_last());
        exit(1);
    }
}

static void strata_get_many_op(void *p)
{
    strata_ctx *s = p;
    if (strata_get_many(s->c, BATCH, s->keys, s->lens, s->outs, s->results) != 0) {
        fprintf(stderr, "strata_get_many failed: %s\n", strata_error_last());
        exit(1);
    }
}

/* ---- L1 on memory:// (no servers): the in-process hit path ---- */

#define L1_KEYS 64
#define L1_VALUE 100

typedef struct l1_ctx {
    strata_cache *c;
    char names[L1_KEYS][16];
    size_t lens[L1_KEYS];
    strata_value v;
    unsigned int i;
} l1_ctx;

static void l1_open_url(l1_ctx *x, const char *url, int ntags)
{
    static const char *tags[4] = {"tag-a", "tag-b", "tag-c", "tag-d"};
    static const size_t taglens[4] = {5, 5, 5, 5};
    char value[L1_VALUE];
    strata_set_options so = STRATA_SET_OPTIONS_INIT;
    int i;
    memset(x, 0, sizeof *x);
    memset(value, 'v', sizeof value);
    x->c = open_or_die(url);
    so.ttl_ms = 600000;
    so.tags = tags;
    so.taglens = taglens;
    so.ntags = (size_t)ntags;
    for (i = 0; i < L1_KEYS; i++) {
        x->lens[i] = (size_t)snprintf(x->names[i], sizeof x->names[i], "key:%d", i);
        if (strata_set_ex(x->c, x->names[i], x->lens[i], value, sizeof value, &so) != 0) {
            fprintf(stderr, "L1 set failed: %s\n", strata_error_last());
            exit(1);
        }
    }
}

static void l1_open(l1_ctx *x, int ntags)
{
    l1_open_url(x, "memory://?l1=1", ntags);
}

static void l1_close(l1_ctx *x)
{
    strata_value_dispose(&x->v);
    strata_cache_free(x->c);
}

static void l1_hit_op(void *p)
{
    l1_ctx *x = p;
    unsigned int k = x->i++ % L1_KEYS;
    int rc = strata_get(x->c, x->names[k], x->lens[k], &x->v);
    if (rc == STRATA_OK && x->v.level == STRATA_LEVEL_BACKEND) /* past l1_ttl_ms (10 s): refilled, read again */
        rc = strata_get(x->c, x->names[k], x->lens[k], &x->v);
    if (rc != STRATA_OK || x->v.level != STRATA_LEVEL_L1) {
        fprintf(stderr, "expected an L1 hit of %s: rc %d, level %d %s\n", x->names[k], rc, x->v.level,
                strata_error_last());
        exit(1);
    }
}

/* Threads hitting one cache's L1 (the same 64 keys) for a fixed time. */
typedef struct l1_thread {
    pthread_t th;
    l1_ctx *shared;
    double until;
    long ops;
    double cpu_s; /* the thread's own CPU time: what it got of a core */
} l1_thread;

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *l1_thread_main(void *p)
{
    l1_thread *t = p;
    l1_ctx mine = *t->shared; /* own strata_value and key cursor, same cache */
    long n = 0;
    double cpu0 = thread_cpu_s();
    memset(&mine.v, 0, sizeof mine.v);
    mine.i = (unsigned int)(size_t)t & 63u;
    while ((n & 1023) != 0 || now_s() < t->until) {
        l1_hit_op(&mine);
        n++;
    }
    t->cpu_s = thread_cpu_s() - cpu0;
    strata_value_dispose(&mine.v);
    t->ops = n;
    return NULL;
}

/* Hits per second of wall time; *per_cpu_s gets hits per second of thread
 * CPU time, which only contention lowers (not a busy machine's other work). */
static double l1_threads_rate(l1_ctx *x, int nthreads, double seconds, double *per_cpu_s)
{
    l1_thread t[2];
    double t0 = now_s(), cpu = 0;
    long ops = 0;
    int i;
    for (i = 0; i < nthreads; i++) {
        t[i].shared = x;
        t[i].until = t0 + seconds;
        pthread_create(&t[i].th, NULL, l1_thread_main, &t[i]);
    }
    for (i = 0; i < nthreads; i++) {
        pthread_join(t[i].th, NULL);
        ops += t[i].ops;
        cpu += t[i].cpu_s;
    }
    *per_cpu_s = ops / cpu;
    return ops / (now_s() - t0);
}

/* Clock candidates for the hit path's freshness check (docs/FRESHNESS.md). */
static volatile int64_t ticker_ms;
static volatile int ticker_stop;

static void *ticker_main(void *p)
{
    struct timespec ts, nap = {0, 1000000};
    (void)p;
    while (!ticker_stop) {
        clock_gettime(CLOCK_REALTIME, &ts);
        __atomic_store_n(&ticker_ms, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, __ATOMIC_RELEASE);
        nanosleep(&nap, NULL);
    }
    return NULL;
}

static int64_t clock_sink;
static void clock_realtime(void *p) { struct timespec ts; (void)p; clock_gettime(CLOCK_REALTIME, &ts); clock_sink += ts.tv_nsec; }
static void clock_coarse(void *p) { struct timespec ts; (void)p; clock_gettime(CLOCK_REALTIME_COARSE, &ts); clock_sink += ts.tv_nsec; }
static void clock_mono_coarse(void *p) { struct timespec ts; (void)p; clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); clock_sink += ts.tv_nsec; }
static void clock_ticked(void *p) { (void)p; clock_sink += __atomic_load_n(&ticker_ms, __ATOMIC_ACQUIRE); }

static void l1_rows(void)
{
    l1_ctx plain, tagged, nosketch;
    double plain_us, tagged_us, r_tag, one[ROUNDS], two[ROUNDS], scale[ROUNDS], eff[ROUNDS], cpu1, cpu2;
    double ns_scale[ROUNDS], ns_eff[ROUNDS];
    double rt_us, co_us, mco_us, tick_us;
    struct timespec res;
    pthread_t ticker;
    int r;

    l1_open(&plain, 0);
    l1_open(&tagged, 4);
    l1_open_url(&nosketch, "memory://?l1=1&hot_sketch_width=0", 0);
    r_tag = measure_pair(l1_hit_op, &tagged, l1_hit_op, &plain, 200000, &tagged_us, &plain_us);
    for (r = 0; r < ROUNDS; r++) {
        one[r] = l1_threads_rate(&plain, 1, 0.2, &cpu1);
        two[r] = l1_threads_rate(&plain, 2, 0.2, &cpu2);
        scale[r] = two[r] / one[r];
        eff[r] = cpu2 / cpu1;
        /* the same without the hot-key sketch: what its sampled writes cost two threads */
        ns_scale[r] = l1_threads_rate(&nosketch, 2, 0.2, &cpu2);
        ns_scale[r] /= l1_threads_rate(&nosketch, 1, 0.2, &cpu1);
        ns_eff[r] = cpu2 / cpu1;
    }
    measure_pair(clock_realtime, NULL, clock_coarse, NULL, 200000, &rt_us, &co_us);
    pthread_create(&ticker, NULL, ticker_main, NULL);
    measure_pair(clock_mono_coarse, NULL, clock_ticked, NULL, 200000, &mco_us, &tick_us);
    ticker_stop = 1;
    pthread_join(ticker, NULL);
    clock_getres(CLOCK_REALTIME_COARSE, &res);

    printf("L1 on memory://?l1=1 (defaults, hot-key sketch on), %d-byte values, %d keys; medians of %d rounds\n",
           L1_VALUE, L1_KEYS, ROUNDS);
    printf("  L1 hit, no tags                              %7.1f ns   target <= 40 ns\n", plain_us * 1e3);
    printf("  L1 hit, 4 tags                               %7.1f ns   target <= 80 ns (%.2fx untagged)\n",
           tagged_us * 1e3, r_tag);
    printf("  L1 hits, 2 threads vs 1 (same keys)          %7.2fx     target >= 1.8x (%.1f vs %.1f M hits/s)\n",
           median(scale, ROUNDS), median(two, ROUNDS) / 1e6, median(one, ROUNDS) / 1e6);
    printf("  the same per thread-CPU-second (contention)  %7.2fx     1.00x = threads never slow each other\n",
           median(eff, ROUNDS));
    printf("  the same two rows without the hot-key sketch %7.2fx / %.2fx (hot_sketch_width=0)\n",
           median(ns_scale, ROUNDS), median(ns_eff, ROUNDS));
    printf("  clock: CLOCK_REALTIME %.1f ns, CLOCK_REALTIME_COARSE %.1f ns (resolution %.1f ms), "
           "CLOCK_MONOTONIC_COARSE %.1f ns, ticker-cached time %.1f ns\n",
           rt_us * 1e3, co_us * 1e3, res.tv_nsec / 1e6, mco_us * 1e3, tick_us * 1e3);
    l1_close(&plain);
    l1_close(&tagged);
    l1_close(&nosketch);
}

/* --get-many REDIS_PORT N: N strata_get_many calls of BATCH keys (100-byte
 * values) into reused values, for callgrind's per-call count
 * (--toggle-collect=strata_get_many). */
static int get_many_loop(int port, long n)
{
    char url[128], names[BATCH][32], value[100];
    const char *keys[BATCH];
    size_t lens[BATCH];
    strata_value outs[BATCH];
    int results[BATCH], i;
    strata_cache *c;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d?ns=bench", port);
    c = open_or_die(url);
    memset(value, 'v', sizeof value);
    memset(outs, 0, sizeof outs);
    for (i = 0; i < BATCH; i++) {
        snprintf(names[i], sizeof names[i], "k%d", i);
        keys[i] = names[i];
        lens[i] = strlen(names[i]);
        strata_set(c, keys[i], lens[i], value, sizeof value, 600000);
    }
    while (n-- > 0)
        if (strata_get_many(c, BATCH, keys, lens, outs, results) != 0 || results[BATCH - 1] != STRATA_OK ||
            outs[BATCH - 1].len != sizeof value) {
            fprintf(stderr, "strata_get_many failed: %s\n", strata_error_last());
            return 1;
        }
    for (i = 0; i < BATCH; i++)
        strata_value_dispose(&outs[i]);
    strata_cache_free(c);
    return 0;
}

int main(int argc, char **argv)
{
    char url[256], value[100], rawkey[64], *pipekeys[BATCH], names[BATCH][32];
    const char *keys[BATCH];
    size_t lens[BATCH];
    strata_value outs[BATCH];
    int results[BATCH], i;
    double raw_get, s_get, raw_mget, s_mget, l1_get, raw_mc, s_mc, r_get, r_mget, r_l1, r_mc, raw2, r_mc_eq, s_mc_eq, raw_mc_eq;
    strata_ctx s;
    int rport, mport;

    if (argc >= 2 && strcmp(argv[1], "--l1") == 0) {
        l1_rows();
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "--l1-hits") == 0) {
        l1_ctx x;
        long n = atol(argv[2]);
        l1_open(&x, argc > 3 ? atoi(argv[3]) : 0);
        while (n-- > 0)
            l1_hit_op(&x);
        l1_close(&x);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "--l1-checks") == 0) { /* the object tiers' currency check */
        l1_ctx x;
        uint64_t versions[L1_KEYS];
        long n = atol(argv[2]);
        unsigned int k;
        l1_open(&x, 0);
        for (k = 0; k < L1_KEYS; k++)
            if (strata_l1_get(x.c, x.names[k], x.lens[k], &x.v, &versions[k]) != STRATA_OK) {
                fprintf(stderr, "L1 get of %s failed: %s\n", x.names[k], strata_error_last());
                return 1;
            }
        for (k = 0; n-- > 0; k = (k + 1) % L1_KEYS)
            if (strata_l1_check(x.c, x.names[k], x.lens[k], versions[k]) != STRATA_OK) {
                fprintf(stderr, "L1 check of %s did not answer OK: %s\n", x.names[k], strata_error_last());
                return 1;
            }
        l1_close(&x);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "--get-many") == 0)
        return get_many_loop(atoi(argv[2]), atol(argv[3]));
    if (argc < 3) {
        fprintf(stderr, "usage: bench_core REDIS_PORT MEMCACHED_PORT | --l1 | --l1-hits N [NTAGS] | --l1-checks N"
                        " | --get-many REDIS_PORT N\n");
        return 2;
    }
    rport = atoi(argv[1]);
    mport = atoi(argv[2]);
    memset(value, 'v', sizeof value);
    memset(outs, 0, sizeof outs);
    memset(&s, 0, sizeof s);

    rc = redisConnect("127.0.0.1", rport);
    if (rc == NULL || rc->err) {
        fprintf(stderr, "cannot connect to redis on %d\n", rport);
        return 1;
    }

    /* Same 100-byte payload both ways; stratacache stores it in an envelope. */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d?ns=bench", rport);
    s.c = open_or_die(url);
    s.key = "k0";
    for (i = 0; i < BATCH; i++) {
        snprintf(names[i], sizeof names[i], "k%d", i);
        keys[i] = names[i];
        lens[i] = strlen(names[i]);
        strata_set(s.c, keys[i], lens[i], value, sizeof value, 600000);
        snprintf(rawkey, sizeof rawkey, "raw:%d", i);
        freeReplyObject(redisCommand(rc, "SET %s %b", rawkey, value, sizeof value));
        pipekeys[i] = strdup(rawkey);
    }
    s.keys = keys;
    s.lens = lens;
    s.outs = outs;
    s.results = results;

    r_get = measure_pair(strata_get_op, &s, raw_redis_get, "raw:0", OPS, &s_get, &raw_get);
    r_mget = measure_pair(strata_get_many_op, &s, raw_redis_pipeline, pipekeys, OPS / 20, &s_mget, &raw_mget);

    {
        strata_ctx l1 = s;
        snprintf(url, sizeof url, "redis://127.0.0.1:%d?ns=bench&l1=1", rport);
        l1.c = open_or_die(url);
        memset(&l1.v, 0, sizeof l1.v);
        strata_get_op(&l1); /* fill L1 */
        r_l1 = measure_pair(strata_get_op, &l1, raw_redis_get, "raw:0", OPS / 4, &l1_get, &raw2);
        strata_value_dispose(&l1.v);
        strata_cache_free(l1.c);
    }

    /* memcached: raw client with the settings our backend uses (binary protocol, TCP_NODELAY) */
    mc = memcached_create(NULL);
    memcached_server_add(mc, "127.0.0.1", (in_port_t)mport);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
    memcached_set(mc, "raw0", 4, value, sizeof value, 0, 0);
    {
        /* The same client configured as the backend configures it (ketama,
         * CAS, timeouts): the fair baseline for what a production user runs. */
        memcached_st *plain = mc;
        mc = memcached_clone(NULL, plain);
        memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_DISTRIBUTION, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA);
        memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_KETAMA_HASH, MEMCACHED_HASH_MD5);
        memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1);
        memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 1000);
        memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, 1000000);
        memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SND_TIMEOUT, 1000000);
        memcached_set(mc, "raw0", 4, value, sizeof value, 0, 0);
        mc_eq = mc;
        mc = plain;
    }
    {
        memcached_st *plain_mc = mc;
        strata_ctx m = s;
        snprintf(url, sizeof url, "memcached://127.0.0.1:%d?ns=bench", mport);
        m.c = open_or_die(url);
        memset(&m.v, 0, sizeof m.v);
        strata_set(m.c, "k0", 2, value, sizeof value, 600000);
        r_mc = measure_pair(strata_get_op, &m, raw_mc_get, "raw0", OPS, &s_mc, &raw_mc);
        mc = mc_eq;
        r_mc_eq = measure_pair(strata_get_op, &m, raw_mc_get, "raw0", OPS, &s_mc_eq, &raw_mc_eq);
        mc = plain_mc;
        strata_value_dispose(&m.v);
        strata_cache_free(m.c);
    }

    printf("median per-op time over %d interleaved rounds (us); ratio = median of per-round ratios\n", ROUNDS);
    printf("                                          stratacache   raw client   ratio   target\n");
    printf("get, redis, L1 off vs hiredis GET           %9.2f   %9.2f   %5.2fx   <= 1.10x\n", s_get, raw_get, r_get);
    printf("get, memcached vs libmemcached get          %9.2f   %9.2f   %5.2fx   <= 1.10x\n", s_mc, raw_mc, r_mc);
    printf("get, memcached vs libmemcached, same config %9.2f   %9.2f   %5.2fx   <= 1.10x\n", s_mc_eq, raw_mc_eq, r_mc_eq);
    printf("get_many 100 keys vs 100 pipelined GETs     %9.2f   %9.2f   %5.2fx   <= 1.30x\n", s_mget, raw_mget, r_mget);
    printf("get, L1 hit vs hiredis GET                  %9.3f   %9.2f   1/%.0f   <= 1/100\n", l1_get, raw2, 1.0 / r_l1);

    l1_rows();

    for (i = 0; i < BATCH; i++) {
        strata_value_dispose(&outs[i]);
        free(pipekeys[i]);
    }
    strata_value_dispose(&s.v);
    strata_cache_free(s.c);
    memcached_free(mc);
    memcached_free(mc_eq);
    redisFree(rc);
    return 0;
}
