/*
 * Hot-key detection for a cache: the sketch and top-k set of policy/, sharded
 * with a lock per shard so reader threads rarely meet. Fed by every read;
 * answers "is this key hot?" for L1 admission and "which keys are hottest?"
 * for operators.
 */
#ifndef STRATA_HOTKEYS_H
#define STRATA_HOTKEYS_H

#include <stddef.h>
#include <stdint.h>

#include "stratacache.h"
#include "policy/key.h"

typedef struct strata__hot strata__hot;

/* A tracker sized by opts (hot_sketch_width > 0). */
int  strata__hot_new(strata__hot **out, const strata_options *opts);
void strata__hot_free(strata__hot *h);

/* Bytes of memory the tracker holds (fixed at creation). */
size_t strata__hot_bytes(const strata__hot *h);

/* n reads of key (n > 1: one sampled read standing for n). */
void strata__hot_note(strata__hot *h, const strata__key *k, unsigned int n);

/* A sampled L1 hit standing for n reads: kept in the calling thread's buffer
 * and merged into the sketch in batches of up to 256 samples (hotkeys.c):
 * a thread's samples wait at most 255 others (4096 reads at hot_sample=16)
 * to count; strata__hot_top merges the caller's own first. */
void strata__hot_note_sampled(strata__hot *h, const strata__key *k, unsigned int n);

/* 1 when key's estimated reads in the window reach the threshold. */
int strata__hot_is_hot(strata__hot *h, const strata__key *k);

/* TinyLFU's admission test: 1 when k is read more often lately than the
 * key whose call hash is victim_hash (the L1 entry it would push out). */
int strata__hot_prefer(strata__hot *h, const strata__key *k, uint64_t victim_hash);

/* Up to n hottest keys, hottest first, into out; *count = how many. */
int strata__hot_top(strata__hot *h, size_t n, strata_hot_key *out, size_t *count);

#endif
