/*
 * L1: the in-process tier. Sharded for threads, bounded in bytes and entries,
 * TTL'd (never past the entry's own freshness). Keyed by the user key.
 *
 * Races with invalidation: a reader takes the shard's epoch before reading the
 * backend and passes it to put(); any delete/invalidate/clear in that shard
 * bumps the epoch, and a put carrying an older epoch is dropped, so a value
 * read before an invalidation never enters L1 after it.
 */
#ifndef STRATA_L1_H
#define STRATA_L1_H

#include <stddef.h>
#include <stdint.h>

#include "stratacache.h"

typedef struct strata__l1 strata__l1;

int  strata__l1_new(strata__l1 **out, uint64_t max_bytes, unsigned int max_entries);
void strata__l1_free(strata__l1 *l1);

uint64_t strata__l1_epoch(strata__l1 *l1, const char *key, size_t keylen);

/* Copies a live entry's payload into out (level L1). 0 = hit, STRATA_MISS,
 * or STRATA_NEGATIVE for a cached "not found". now_ms is the wall clock. */
int strata__l1_get(strata__l1 *l1, const char *key, size_t keylen, int64_t now_ms, strata_value *out);

/* Stores a fresh value until expires_ms (wall clock) unless the shard's epoch
 * moved past `epoch`. negative = a "not found" entry. */
void strata__l1_put(strata__l1 *l1, const char *key, size_t keylen, const char *val, size_t vallen,
                    int negative, int64_t expires_ms, int64_t fresh_until_ms, uint64_t epoch);

void strata__l1_del(strata__l1 *l1, const char *key, size_t keylen);
void strata__l1_clear(strata__l1 *l1);

/* An optional gate the owner installs: `readable` says whether L1 may serve
 * at all now (e.g. the invalidation link is up), `admit` whether a key may
 * enter. Either may be NULL (always yes). Called without L1 locks held. */
typedef struct strata__l1_gate {
    int (*readable)(void *ud);
    int (*admit)(void *ud, const char *key, size_t keylen);
    void *ud;
} strata__l1_gate;

void strata__l1_set_gate(strata__l1 *l1, const strata__l1_gate *gate);

void strata__l1_stats(strata__l1 *l1, uint64_t *entries, uint64_t *bytes, uint64_t *evictions);

/* Copies bytes into a strata_value's library-owned buffer. */
int strata__value_set(strata_value *v, const char *data, size_t len);

#endif
