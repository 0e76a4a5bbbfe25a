/*
 * The current top keys beside the sketch: a small fixed set (Space-Saving
 * style). A key enters with its sketch estimate when that beats the smallest
 * tracked count, and is then counted exactly while it stays, so the hottest
 * keys are ranked even where the 8-bit sketch saturates. Pure: the caller
 * provides the entry array and the lock; no allocation. K is small (tens), so
 * a linear scan beats a heap here.
 */
#ifndef STRATA_TOPK_H
#define STRATA_TOPK_H

#include <stddef.h>
#include <stdint.h>

#define STRATA__TOPK_KEY 256 /* bytes of a key kept for the report */

typedef struct strata__topk_entry {
    uint64_t hash;
    uint64_t count;         /* decayed occurrences, same unit as the sketch */
    size_t keylen;          /* the key's full length */
    char key[STRATA__TOPK_KEY]; /* its first min(keylen, STRATA__TOPK_KEY) bytes */
} strata__topk_entry;

typedef struct strata__topk {
    strata__topk_entry *e;
    size_t cap, n;
    uint64_t min_count;     /* smallest count when full: quick rejection */
} strata__topk;

void strata__topk_init(strata__topk *t, strata__topk_entry *entries, size_t cap);

/* One occurrence of key (hash h, sketch estimate est, counted already). */
void strata__topk_note(strata__topk *t, uint64_t h, const char *key, size_t keylen,
                       unsigned int est);

/* The same for n occurrences at once (a sampled read standing for n). */
void strata__topk_note_n(strata__topk *t, uint64_t h, const char *key, size_t keylen,
                         unsigned int est, unsigned int n);

/* Halves every count, in step with the sketch. */
void strata__topk_halve(strata__topk *t);

#endif
