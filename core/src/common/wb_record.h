/* Write-behind records (docs/FORMAT.md "Write-behind journal"): what the
 * server-side journal (redis streams) and the local journal file both hold,
 * and what the engine's flusher delivers. */
#ifndef STRATA_WB_RECORD_H
#define STRATA_WB_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

typedef struct strata__wb_id {
    uint64_t ms, seq;           /* redis stream id <ms>-<seq>; journal file: 0, sequence */
} strata__wb_id;

typedef struct strata__wb_record {
    strata__wb_id id;
    strata__bytes key;          /* user key (no namespace) */
    strata__bytes val;          /* the raw value, not an envelope */
    int64_t enqueued_ms;        /* wall clock */
    uint64_t token;             /* redis: names the write (0 = none) */
} strata__wb_record;

void strata__wb_records_free(strata__wb_record *recs, size_t n);

/* A write-behind record given up on (dead-lettered), as the operator tools
 * list it from a stream or the journal file. */
typedef struct strata__dead_letter {
    char id[48];                /* redis stream id; journal file: record number */
    strata__bytes key, val, error;
    int64_t given_up_ms;
    unsigned int attempts;
} strata__dead_letter;

void strata__dead_letters_free(strata__dead_letter *d, size_t n);

#endif
