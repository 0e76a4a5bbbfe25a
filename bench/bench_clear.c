/*
 * What strata_clear's namespace generation costs a read (docs/FRAMEWORKS.md):
 * strata_get of stamped entries in a namespace that has been cleared (every
 * backend read checks the generation) against the same reads in one never
 * cleared (no stamp, the generation read as 0), interleaved rounds, medians.
 *   bench_clear REDIS_PORT
 */
#include "stratacache.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYS 200
#define ROUNDS 15
#define READS 4000

static double per_get_us(strata_cache *c)
{
    strata_value v = STRATA_VALUE_INIT;
    char k[32];
    double t0 = now_us();
    int i;
    for (i = 0; i < READS; i++) {
        snprintf(k, sizeof k, "k%d", i % KEYS);
        if (strata_get(c, k, strlen(k), &v) != STRATA_OK) {
            fprintf(stderr, "bench_clear: miss on %s: %s\n", k, strata_error_last());
            exit(1);
        }
    }
    strata_value_dispose(&v);
    return (now_us() - t0) / READS;
}

static void fill(strata_cache *c)
{
    char k[32];
    int i;
    for (i = 0; i < KEYS; i++) {
        snprintf(k, sizeof k, "k%d", i);
        strata_set(c, k, strlen(k), "value-of-some-bytes", 19, 600000);
    }
}

static void row(const char *what, const char *plain_url, const char *cleared_url)
{
    strata_cache *plain = open_or_die(plain_url), *cleared = open_or_die(cleared_url);
    double a[ROUNDS], b[ROUNDS], r[ROUNDS];
    int i;
    strata_clear(cleared); /* from here on its writes carry the stamp */
    fill(plain);
    fill(cleared);
    per_get_us(plain);
    per_get_us(cleared);
    for (i = 0; i < ROUNDS; i++) {
        a[i] = per_get_us(plain);
        b[i] = per_get_us(cleared);
        r[i] = b[i] / a[i];
    }
    printf("%-34s %9.3f   %9.3f   %6.3fx\n", what, median(a, ROUNDS), median(b, ROUNDS), median(r, ROUNDS));
    strata_cache_free(plain);
    strata_cache_free(cleared);
}

int main(int argc, char **argv)
{
    char p[256], q[256];
    long tag = (long)now_ns() % 1000000;
    if (argc < 2) {
        fprintf(stderr, "usage: bench_clear REDIS_PORT\n");
        return 2;
    }
    printf("median us per strata_get over %d interleaved rounds; ratio = median of per-round ratios\n", ROUNDS);
    printf("                                   never cleared   cleared     ratio\n");
    snprintf(p, sizeof p, "memory://bench?ns=plain%ld", tag);
    snprintf(q, sizeof q, "memory://bench?ns=cleared%ld", tag);
    row("memory://, L1 off", p, q);
    snprintf(p, sizeof p, "redis://127.0.0.1:%s?ns=plain%ld", argv[1], tag);
    snprintf(q, sizeof q, "redis://127.0.0.1:%s?ns=cleared%ld", argv[1], tag);
    row("redis, L1 off (tag_cache_ms=1000)", p, q);
    return 0;
}
