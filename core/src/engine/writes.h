/* The write side: write-through, write-behind and its flusher (engine-private). */
#ifndef STRATA_WRITES_H
#define STRATA_WRITES_H

#include "cache.h"

/* What a writer reports (strata_write_error). */
struct strata_write {
    int failed;
    char message[256];
};

/* After the source was written: set the cache (L1 too); when that fails,
 * invalidate the key instead (retried). 0, STRATA_INVALIDATED or STRATA_ESTALE. */
int strata__update_or_invalidate(strata_cache *c, const char *key, size_t keylen,
                                 const char *val, size_t vallen, int64_t ttl_ms);

/* Runs the writer; 0, or STRATA_EUSER with its message. */
int strata__call_writer(strata_write *w, int rc, const char *what);

/* Write-behind state, created with the cache. */
typedef struct strata__wb strata__wb;
int  strata__wb_new(strata__wb **out, strata_cache *c);
void strata__wb_free(strata__wb *wb);    /* drains (bounded by wb_drain_ms) first */

/* One push step: poll a batch, run the registered writer, ack or fail.
 * Returns the batch size (> 0), STRATA_MISS when nothing was due, or an error. */
int  strata__wb_step(strata_cache *c);

/* Flusher threads (built on strata__wb_step). */
typedef struct strata__flusher strata__flusher;
int  strata__flusher_new(strata__flusher **out, strata_cache *c, unsigned int threads,
                         int64_t interval_ms);
void strata__flusher_wake(strata__flusher *f);
void strata__flusher_free(strata__flusher *f);
int  strata__flusher_running(const strata__flusher *f);

#endif
