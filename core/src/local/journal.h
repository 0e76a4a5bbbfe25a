/*
 * The write-behind journal file for backends without streams (memory://,
 * memcached://): an append-only log of accepted writes and acknowledgements,
 * replayed on the next open so a crash loses no accepted write. Format in
 * docs/FORMAT.md ("Write-behind journal file"). One process and one cache
 * own a journal at a time (an exclusive flock).
 */
#ifndef STRATA_JOURNAL_H
#define STRATA_JOURNAL_H

#include "common/wb_record.h"

typedef struct strata__journal strata__journal;

/* Opens (creating) path, replays it and compacts it to the live records,
 * which come back in *recs (acceptance order; id.seq = their sequence) with
 * *next_seq the first unused sequence. */
int  strata__journal_open(strata__journal **out, const char *path, int fsync_policy,
                          int64_t interval_ms, strata__wb_record **recs, size_t *n,
                          uint64_t *next_seq);
void strata__journal_close(strata__journal *j);

/* A write, durable per the fsync policy when this returns 0. */
int  strata__journal_put(strata__journal *j, uint64_t seq, const char *key, size_t keylen,
                         const char *val, size_t vallen, int64_t enqueued_ms);
/* Delivered records. */
int  strata__journal_ack(strata__journal *j, size_t n, const strata__wb_id *ids);
/* Given up: the latest value goes to "<path>.dead", then the ids are acked. */
int  strata__journal_dead(strata__journal *j, const char *key, size_t keylen, const char *val,
                          size_t vallen, unsigned int attempts, const char *message,
                          size_t n, const strata__wb_id *ids);
/* Everything is flushed: drop the log back to its header. */
int  strata__journal_truncate(strata__journal *j);

#endif
