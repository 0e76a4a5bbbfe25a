/* Write-behind state shared by write_behind.c (accepting writes, flush) and
 * wb_pull.c (poll, ack, fail). Engine-private. */
#ifndef STRATA_WB_STATE_H
#define STRATA_WB_STATE_H

#include "writes.h"
#include "wb_queue.h"
#include "local/journal.h"

struct strata__wb {
    strata_cache *c;
    int stream;                 /* 1: the backend journals (redis) */
    unsigned int gen;           /* fork generation of the creator */

    strata__mutex mu;           /* guards q, journal, next_seq */
    strata__cond space;         /* records left the queue (backpressure waiters) */
    strata__wbq q;
    strata__journal *journal;   /* local mode, when wb_journal is set */
    uint64_t next_seq;

    strata__mutex read_mu;      /* stream mode: one read at a time */
    char consumer[200];
    unsigned int consumer_gen;
    char cursor[48];            /* XAUTOCLAIM scan position */
    int64_t next_claim_ms;      /* monotonic */

    unsigned int unpolled;      /* accepted since the last poll (flusher wake-up) */
    int backlog_seen;           /* stream mode: stats.wb_backlog came from the server */
    strata__flusher *flusher;
};

struct strata_wb_batch {
    strata_cache *c;
    size_t n;
    strata__wbq_entry **entries;
    const char **keys, **vals;
    size_t *keylens, *vallens;
    int64_t *enqueued;
    char *buf;                  /* copies of keys and values */
};

/* STRATA_ECLOSED in a forked child of a local-queue cache, else 0. */
int  strata__wb_check_owner(strata__wb *wb);
/* Publishes the local queue's size as stats.wb_backlog (mu held). */
void strata__wb_backlog_changed(strata__wb *wb);
/* Publishes the journal's housekeeping counters (mu held, journal set). */
void strata__wb_journal_counters_changed(strata__wb *wb);
/* Compacts the journal file when it has grown past its limit (mu held). */
void strata__wb_maybe_compact(strata__wb *wb);

#endif
