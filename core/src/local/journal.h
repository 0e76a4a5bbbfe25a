/*
 * The write-behind journal file for backends without streams (memory://,
 * memcached://): an append-only log of accepted writes and acknowledgements,
 * replayed on the next open so a crash loses no accepted write. Format in
 * docs/FORMAT.md ("Write-behind journal file"). One process and one cache
 * own a journal at a time (an exclusive flock).
 */
#ifndef STRATA_JOURNAL_H
#define STRATA_JOURNAL_H

#include "backend/backend.h"

typedef struct strata__journal strata__journal;

#define STRATA__JOURNAL_COMPACT_DEFAULT ((uint64_t)64 << 20)

/* Housekeeping (docs/WRITE-BEHIND.md): 0 = the default / no limit. */
typedef struct strata__journal_limits {
    uint64_t compact_bytes;     /* wb_journal_compact_bytes */
    uint64_t dead_max;          /* wb_dead_max: dead letters kept */
    int64_t dead_max_age_ms;    /* wb_dead_max_age_ms */
} strata__journal_limits;

typedef struct strata__journal_counters {
    uint64_t skipped_records, skipped_bytes; /* damaged, found at replay */
    uint64_t dead_trimmed;
    uint64_t compactions;
} strata__journal_counters;

/* Opens (creating) path, replays it and compacts it to the live records,
 * which come back in *recs (acceptance order; id.seq = their sequence) with
 * *next_seq the first unused sequence. A damaged record is skipped (its
 * bytes appended to "<path>.corrupt", counted, described by _report); the
 * records around it are kept. */
int  strata__journal_open(strata__journal **out, const char *path, int fsync_policy,
                          int64_t interval_ms, strata__wb_record **recs, size_t *n,
                          uint64_t *next_seq);
void strata__journal_close(strata__journal *j);

/* A write, durable per the fsync policy when this returns 0. A failed
 * append (disk full, EFBIG) is cut back to the last whole record, so nothing
 * acknowledged later sits behind a torn one. */
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

/* Sets the limits and trims the dead letters to them. */
int  strata__journal_set_limits(strata__journal *j, const strata__journal_limits *lim);
/* 1 when the file has grown past wb_journal_compact_bytes and twice its
 * size after the last compaction: time to rewrite it from the live records. */
int  strata__journal_wants_compaction(const strata__journal *j);
/* Rewrites the journal with exactly these records (in increasing seq order). */
int  strata__journal_compact(strata__journal *j, const strata__wb_record *recs, size_t n);
void strata__journal_get_counters(const strata__journal *j, strata__journal_counters *out);
/* What replay skipped at open ("" = nothing), for the opener to report. */
const char *strata__journal_report(const strata__journal *j);

/* Dead letters of "<path>.dead" (operator tools): all of them, oldest first
 * (id = position, from 1); and the file rewritten with those whose keep[i]
 * is set (temporary file, fdatasync, rename). Under the lock that
 * serialises strata__journal_dead (the queue lock). */
int  strata__journal_dead_read(strata__journal *j, strata__dead_letter **out, size_t *n);
int  strata__journal_dead_rewrite(strata__journal *j, const strata__dead_letter *d, size_t n,
                                  const unsigned char *keep);

#endif
