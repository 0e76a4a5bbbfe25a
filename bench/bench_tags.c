/*
 * The cost of tags and of a histogram record, measured in the same run.
 * Each figure is the median over ROUNDS of a round's mean per-op time; rows
 * interleave their two sides round by round, so both see the same noise.
 *   bench_tags REDIS_PORT
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stratacache.h"
#include "bench_util.h"
#include "engine/metrics.h"

#define ROUNDS 15
#define OPS 4000

typedef struct reader {
    strata_cache *c;
    const char *key;
    strata_value v;
} reader;

static void get_op(reader *r)
{
    if (strata_get(r->c, r->key, strlen(r->key), &r->v) != STRATA_OK) {
        fprintf(stderr, "get %s failed: %s\n", r->key, strata_error_last());
        exit(1);
    }
}

static double round_us(reader *r, int ops)
{
    double t0 = now_us();
    int i;
    for (i = 0; i < ops; i++)
        get_op(r);
    return (now_us() - t0) / ops;
}

/* A (tagged) against B (untagged): medians and the median per-round ratio. */
static void row(const char *what, reader *a, reader *b, int ops)
{
    double pa[ROUNDS], pb[ROUNDS], ratio[ROUNDS];
    int i;
    round_us(a, ops / 10);
    round_us(b, ops / 10);
    for (i = 0; i < ROUNDS; i++) {
        pa[i] = round_us(a, ops);
        pb[i] = round_us(b, ops);
        ratio[i] = pa[i] / pb[i];
    }
    printf("%-52s %10.3f %10.3f %8.2fx\n", what, median(pa, ROUNDS), median(pb, ROUNDS), median(ratio, ROUNDS));
}

static strata_cache *open_cache(int port, const char *opts)
{
    char url[256];
    strata_cache *c = NULL;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d?ns=bench-tags&%s", port, opts);
    if (strata_cache_new(&c, url, NULL) != 0) {
        fprintf(stderr, "cannot open %s: %s\n", url, strata_error_last());
        exit(1);
    }
    return c;
}

static void put(strata_cache *c, const char *key, size_t ntags)
{
    static const char *tags[4] = {"user:1", "team:7", "org:3", "plan:9"};
    static const size_t lens[4] = {6, 6, 5, 6};
    char val[100];
    strata_set_options o;
    memset(val, 'v', sizeof val);
    strata_set_options_init(&o, STRATA_SET_OPTIONS_VERSION);
    o.tags = tags;
    o.taglens = lens;
    o.ntags = ntags;
    if (strata_set_ex(c, key, strlen(key), val, sizeof val, &o) != 0) {
        fprintf(stderr, "set failed: %s\n", strata_error_last());
        exit(1);
    }
}

static strata__hist hist;

static void *record_loop(void *arg)
{
    long i, n = (long)(size_t)arg;
    for (i = 0; i < n; i++)
        strata__hist_record(&hist, (uint64_t)i * 7919u % 3000000u);
    return NULL;
}

static double record_ns(int threads, long per_thread)
{
    pthread_t t[8];
    double t0 = now_us();
    int i;
    for (i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, record_loop, (void *)(size_t)per_thread);
    for (i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return (now_us() - t0) * 1000.0 / (double)per_thread; /* wall ns per record per thread */
}

int main(int argc, char **argv)
{
    int port;
    strata_cache *plain, *cached, *strict, *l1;
    reader untagged, tagged1, tagged4, strict1, l1_untagged, l1_tagged;
    double rec[ROUNDS], rec2[ROUNDS];
    int i;

    if (argc < 2) {
        fprintf(stderr, "usage: bench_tags REDIS_PORT\n");
        return 2;
    }
    port = atoi(argv[1]);
    plain = open_cache(port, "l1=0");
    cached = open_cache(port, "l1=0&tag_cache_ms=1000");
    strict = open_cache(port, "l1=0&tag_cache_ms=0");
    l1 = open_cache(port, "l1=1&l1_ttl_ms=600000&ttl_ms=600000&tag_cache_ms=600000");
    put(plain, "untagged", 0);
    put(plain, "tagged1", 1);
    put(plain, "tagged4", 4);
    put(l1, "l1-untagged", 0);
    put(l1, "l1-tagged", 4);

    untagged = (reader){plain, "untagged", STRATA_VALUE_INIT};
    tagged1 = (reader){cached, "tagged1", STRATA_VALUE_INIT};
    tagged4 = (reader){cached, "tagged4", STRATA_VALUE_INIT};
    strict1 = (reader){strict, "tagged1", STRATA_VALUE_INIT};
    l1_untagged = (reader){l1, "l1-untagged", STRATA_VALUE_INIT};
    l1_tagged = (reader){l1, "l1-tagged", STRATA_VALUE_INIT};

    printf("%-52s %10s %10s %9s\n", "get on redis, 100-byte values", "tagged us", "plain us", "ratio");
    row("1 tag, versions cached (tag_cache_ms=1000), L1 off", &tagged1, &untagged, OPS);
    row("4 tags, versions cached (tag_cache_ms=1000), L1 off", &tagged4, &untagged, OPS);
    row("1 tag, no version cache (tag_cache_ms=0), L1 off", &strict1, &untagged, OPS);
    row("4 tags vs none, both L1 hits", &l1_tagged, &l1_untagged, OPS * 50);

    for (i = 0; i < ROUNDS; i++) {
        rec[i] = record_ns(1, 2000000);
        rec2[i] = record_ns(2, 1000000);
    }
    printf("histogram record: %.2f ns (1 thread), %.2f ns per record with 2 threads on one histogram\n",
           median(rec, ROUNDS), median(rec2, ROUNDS));

    strata_value_dispose(&untagged.v);
    strata_value_dispose(&tagged1.v);
    strata_value_dispose(&tagged4.v);
    strata_value_dispose(&strict1.v);
    strata_value_dispose(&l1_untagged.v);
    strata_value_dispose(&l1_tagged.v);
    strata_cache_free(plain);
    strata_cache_free(cached);
    strata_cache_free(strict);
    strata_cache_free(l1);
    return 0;
}
