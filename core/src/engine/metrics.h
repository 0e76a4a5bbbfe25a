/*
 * Latency histograms: log-scale buckets (powers of two of a microsecond),
 * recorded with relaxed atomics, no locks. A reader sees each bucket exactly
 * but not one instant across buckets, so the count is taken as their sum.
 */
#ifndef STRATA_METRICS_H
#define STRATA_METRICS_H

#include <stdint.h>

#include "stratacache.h"
#include "backend/backend.h"

typedef struct strata__hist {
    uint64_t buckets[STRATA_HISTOGRAM_BUCKETS];
    uint64_t sum_ns;
} strata__hist;

typedef struct strata__metrics {
    strata__hist get, load, backend;
} strata__metrics;

/* Bucket index for a duration: the first i with ns <= 2^i us. */
unsigned strata__hist_bucket(uint64_t ns);
void strata__hist_record(strata__hist *h, uint64_t ns);
void strata__hist_read(const strata__hist *h, strata_histogram *out);

/* Upper bound of bucket i in seconds (the last bucket is +Inf). */
double strata__hist_le_seconds(unsigned i);

/* Wraps *b so every backend command's latency lands in h; 0 or ENOMEM
 * (then *b is unchanged). Closing the wrapper closes the original. */
int strata__backend_timed(strata__backend **b, strata__hist *h);
/* The backend strata__backend_timed wrapped (b itself when not wrapped). */
strata__backend *strata__backend_untimed(strata__backend *b);

#endif
