/*
 * The write-behind pending table: records not yet delivered, coalesced per key
 * (the latest value wins; every record id is kept so all can be acknowledged),
 * in arrival order, each with its retry schedule. Not thread-safe: the owner
 * holds a lock. A key in a batch ("in flight") is not handed out again until
 * the batch is acked or failed; writes arriving meanwhile stay queued behind it.
 */
#ifndef STRATA_WB_QUEUE_H
#define STRATA_WB_QUEUE_H

#include "backend/backend.h"

typedef struct strata__wbq_entry {
    struct strata__wbq_entry *chain;        /* hash bucket */
    struct strata__wbq_entry *prev, *next;  /* arrival order */
    uint64_t hash;
    strata__bytes key, val;                 /* val: the latest write */
    int64_t enqueued_ms;                    /* of the latest write */
    uint64_t token;                         /* of the latest write (redis; 0 = none) */
    strata__wb_id *ids;                     /* records covered, oldest first */
    size_t nids, capids;
    size_t inflight;                        /* ids covered by the batch out now (0 = none) */
    unsigned int attempts;                  /* failed deliveries so far */
    int64_t due_ms;                         /* monotonic: not before this */
} strata__wbq_entry;

typedef struct strata__wbq {
    strata__wbq_entry **buckets;
    size_t nbuckets, nkeys;
    uint64_t nrecords;                      /* ids held: the backlog */
    strata__wbq_entry *head, *tail;
} strata__wbq;

int  strata__wbq_init(strata__wbq *q);
void strata__wbq_destroy(strata__wbq *q);

/* Adds one record: 1 added, 0 already held (a re-delivered id), or an error. */
int  strata__wbq_add(strata__wbq *q, const char *key, size_t keylen, const char *val, size_t vallen,
                     int64_t enqueued_ms, strata__wb_id id, uint64_t token);

/* Marks up to max due, idle entries in flight; returns how many (in out). */
size_t strata__wbq_take(strata__wbq *q, size_t max, int64_t now_ms, strata__wbq_entry **out);

/* The batch covering e was delivered (or dead-lettered): drops its ids and,
 * when no newer write arrived meanwhile, the entry (e is then freed). */
void strata__wbq_done(strata__wbq *q, strata__wbq_entry *e);

/* The batch failed: e becomes due again at due_ms. */
void strata__wbq_retry(strata__wbq *q, strata__wbq_entry *e, int64_t due_ms);

#endif
