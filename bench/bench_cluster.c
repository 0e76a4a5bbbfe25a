/*
 * A get through redis+cluster:// against the same get on a single redis://
 * node (same build, same machine, interleaved rounds, medians), and
 * get_many of 100 keys (spread over 3 masters: a round trip per node) against
 * one MGET on one node.
 *   bench_cluster REDIS_URL CLUSTER_URL
 *   bench_cluster --gets URL N    N gets of one key and nothing else (callgrind:
 *                                 scripts/callgrind-cluster.sh)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratacache.h"
#include "bench_util.h"

#define ROUNDS 15
#define OPS 4000
#define BATCH 100

static char batch_keys[BATCH][32];
static const char *batch_kp[BATCH];
static size_t batch_kl[BATCH];

static void fill(strata_cache *c)
{
    char v[100];
    size_t i;
    memset(v, 'v', sizeof v);
    if (strata_set(c, "bench-key", 9, v, sizeof v, 600000) != 0) {
        fprintf(stderr, "set: %s\n", strata_error_last());
        exit(1);
    }
    for (i = 0; i < BATCH; i++) {
        snprintf(batch_keys[i], sizeof batch_keys[i], "bench-many-%zu", i);
        batch_kp[i] = batch_keys[i];
        batch_kl[i] = strlen(batch_keys[i]);
        if (strata_set(c, batch_kp[i], batch_kl[i], v, sizeof v, 600000) != 0) {
            fprintf(stderr, "set: %s\n", strata_error_last());
            exit(1);
        }
    }
}

static void one_get(strata_cache *c, strata_value *v)
{
    if (strata_get(c, "bench-key", 9, v) != 0) {
        fprintf(stderr, "get: %s\n", strata_error_last());
        exit(1);
    }
}

static double round_get(strata_cache *c, int ops)
{
    strata_value v = STRATA_VALUE_INIT;
    double t0 = now_us();
    int i;
    for (i = 0; i < ops; i++)
        one_get(c, &v);
    strata_value_dispose(&v);
    return (now_us() - t0) / ops;
}

static double round_many(strata_cache *c, int ops)
{
    strata_value outs[BATCH];
    int rcs[BATCH], i;
    size_t k;
    double t0;
    for (k = 0; k < BATCH; k++)
        outs[k] = (strata_value)STRATA_VALUE_INIT;
    t0 = now_us();
    for (i = 0; i < ops; i++)
        if (strata_get_many(c, BATCH, batch_kp, batch_kl, outs, rcs) != 0) {
            fprintf(stderr, "get_many: %s\n", strata_error_last());
            exit(1);
        }
    t0 = (now_us() - t0) / ops;
    for (k = 0; k < BATCH; k++)
        strata_value_dispose(&outs[k]);
    return t0;
}

static void pair(const char *what, double (*fn)(strata_cache *, int), strata_cache *a, strata_cache *b, int ops)
{
    double pa[ROUNDS], pb[ROUNDS], ratio[ROUNDS];
    int r;
    fn(a, ops / 10);
    fn(b, ops / 10);
    for (r = 0; r < ROUNDS; r++) {
        pa[r] = fn(a, ops);
        pb[r] = fn(b, ops);
        ratio[r] = pa[r] / pb[r];
    }
    printf("%-44s %9.2f   %9.2f   %5.2fx\n", what, median(pa, ROUNDS), median(pb, ROUNDS), median(ratio, ROUNDS));
}

static void loadavg(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[64] = "?";
    if (f) {
        if (fgets(buf, sizeof buf, f) == NULL)
            buf[0] = '\0';
        fclose(f);
    }
    printf("load average: %s", buf);
}

int main(int argc, char **argv)
{
    char url[1024];
    strata_cache *single, *cluster;
    if (argc == 4 && strcmp(argv[1], "--gets") == 0) {
        strata_value v = STRATA_VALUE_INIT;
        long i, n = atol(argv[3]);
        snprintf(url, sizeof url, "%s?ns=bench&l1=0", argv[2]);
        cluster = open_or_die(url);
        fill(cluster);
        for (i = 0; i < n; i++)
            one_get(cluster, &v);
        strata_value_dispose(&v);
        strata_cache_free(cluster);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: bench_cluster REDIS_URL CLUSTER_URL | --gets URL N\n");
        return 2;
    }
    snprintf(url, sizeof url, "%s?ns=bench&l1=0", argv[1]);
    single = open_or_die(url);
    snprintf(url, sizeof url, "%s?ns=bench&l1=0", argv[2]);
    cluster = open_or_die(url);
    fill(single);
    fill(cluster);
    loadavg();
    printf("median per-op time over %d interleaved rounds (us); ratio = median of per-round ratios\n", ROUNDS);
    printf("%-44s %9s   %9s   %6s\n", "", "cluster", "one node", "ratio");
    pair("get, L1 off: redis+cluster:// vs redis://", round_get, cluster, single, OPS);
    pair("get_many 100 keys (3 masters vs 1 MGET)", round_many, cluster, single, OPS / 20);
    strata_cache_free(cluster);
    strata_cache_free(single);
    return 0;
}
