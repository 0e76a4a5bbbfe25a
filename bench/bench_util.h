/* Clocks, percentiles and set-up shared by the C benchmarks. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "stratacache.h"

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline double now_us(void) { return (double)now_ns() / 1e3; }
static inline double now_s(void) { return (double)now_ns() / 1e9; }

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v and returns its p-quantile (nearest rank); 0 when empty. */
static inline double percentile(double *v, size_t n, double p)
{
    size_t i;
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static inline double median(double *v, size_t n) { return percentile(v, n, 0.5); }

static inline strata_cache *open_or_die(const char *url)
{
    strata_cache *c = NULL;
    if (strata_cache_new(&c, url, NULL) != 0) {
        fprintf(stderr, "open %s: %s\n", url, strata_error_last());
        exit(1);
    }
    return c;
}

#endif
