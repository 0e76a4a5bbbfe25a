/*
 * L1: the in-process tier. Sharded for threads, bounded in bytes and entries,
 * TTL'd (never past the entry's own freshness). Keyed by the user key.
 *
 * Races with invalidation: a reader takes the key's fill epoch before reading
 * the backend and passes it to put(); a delete/invalidate of any key of its
 * stripe (local/l1_shard.h: 1/4096 of the keys) and every clear bump it, and
 * a put carrying an older epoch is dropped, so a value read before an
 * invalidation never enters L1 after it.
 *
 * Reads take no lock and write no line another reader writes: a reader
 * marks its thread's reader slot (a cache line of its own in this L1, no
 * other live thread's) with the shard it reads, a writer raises the shard's
 * writer flag and waits until no slot names the shard (a reader that sees
 * the flag waits on the shard's mutex instead); local/l1_shard.h has the
 * protocol and the one-pass hit the engine inlines. Hits mark entries
 * referenced (their first few hits only) rather than moving them in the LRU
 * list (eviction gives a referenced entry a second chance), and hits are
 * counted in the reader's slot with plain stores, so two threads hitting L1
 * share no written cache line.
 */
#ifndef STRATA_L1_H
#define STRATA_L1_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "stratacache.h"
#include "policy/key.h"

typedef struct strata__l1 strata__l1;

int  strata__l1_new(strata__l1 **out, uint64_t max_bytes, unsigned int max_entries);
void strata__l1_free(strata__l1 *l1);

uint64_t strata__l1_epoch(strata__l1 *l1, const strata__key *k);

/* Copies a servable entry's payload into out (level L1). 0 = hit, STRATA_MISS,
 * or STRATA_NEGATIVE for a cached "not found". now_ms is the wall clock, the
 * coarse one will do (strata__now_wall_coarse_ms): within
 * STRATA__COARSE_SLACK_MS of an entry's serve-until the L1 reads the precise
 * clock, so expiry is decided exactly. */
int strata__l1_get(strata__l1 *l1, const strata__key *k, int64_t now_ms, strata_value *out);

/* The same, counted in the L1's hit counters (strata__l1_hits): what the
 * engine's reads use; strata__l1_get is for looking without counting.
 * *hits gets this thread's slot's hit count after a hit (untouched otherwise):
 * a sequence the caller may sample from without a counter of its own; 0 for
 * one of the entry's first 15 hits (since it was put or last given a second
 * chance), which a caller counting frequencies should count exactly. */
int strata__l1_read(strata__l1 *l1, const strata__key *k, int64_t now_ms, strata_value *out, uint64_t *hits);

/* strata__l1_read that also names the entry served (*version, 0 when not
 * an L1 hit), for a binding's tier of decoded objects. */
int strata__l1_read_versioned(strata__l1 *l1, const strata__key *k, int64_t now_ms, strata_value *out,
                              uint64_t *hits, uint64_t *version);

/* Whether the entry `version` names still serves k, as strata__l1_read
 * would decide now, without copying it: 0 (counted as a hit; *hits as for
 * strata__l1_read), STRATA_NEGATIVE, or STRATA_MISS (gone, replaced,
 * expired, its tags due for a check, or L1 unreadable). */
int strata__l1_check(strata__l1 *l1, const strata__key *k, int64_t now_ms, uint64_t version, uint64_t *hits);

/* Stale-if-error while the backend is down: an entry past its serving time
 * but before its stale-until, served as level STALE. 0 or STRATA_MISS. */
int strata__l1_get_stale(strata__l1 *l1, const strata__key *k, int64_t now_ms, strata_value *out);

/* Stores an entry unless the key's fill epoch moved past `epoch`. It is served
 * until serve_until_ms (wall clock) and kept until stale_until_ms for
 * strata__l1_get_stale; a negative ("not found") entry is never kept stale. */
void strata__l1_put(strata__l1 *l1, const strata__key *k, const char *val, size_t vallen,
                    int negative, int64_t serve_until_ms, int64_t fresh_until_ms,
                    int64_t stale_until_ms, uint64_t epoch);

/* A write of k by this process has finished; epoch is k's fill epoch taken
 * before the write was sent (the old entry served meanwhile: a read beside
 * a write not yet acknowledged may return the old value). In one write
 * section: when val is not NULL (the write succeeded), it is admitted and
 * the epoch has not moved (no invalidation from elsewhere, no other write
 * of its stripe finished meanwhile), val replaces the entry; otherwise the
 * entry is dropped. Either way the epoch moves, so a fill that read the
 * backend during the write never leaves an older value behind. */
void strata__l1_settle(strata__l1 *l1, const strata__key *k, uint64_t epoch, const char *val, size_t vallen,
                       int tagged, int64_t serve_until_ms, int64_t fresh_until_ms, int64_t stale_until_ms);

void strata__l1_del(strata__l1 *l1, const strata__key *k);
void strata__l1_clear(strata__l1 *l1);

/* Like clear for every fresh read (and for fills in flight), but entries stay
 * for stale-if-error: what the invalidation link uses when it may have missed
 * messages, so an outage of Redis still finds stale values to serve. */
void strata__l1_demote(strata__l1 *l1);

/* An optional gate the owner installs: `readable` says whether L1 may serve
 * at all now (e.g. the invalidation link is up), `admit` whether a key may
 * enter. Either may be NULL (always yes). Called without L1 locks held. */
typedef struct strata__l1_gate {
    int (*readable)(void *ud);
    int (*admit)(void *ud, const strata__key *k);
    /* When a full shard would evict victim_hash's entry for k: 1 = evict it,
     * 0 = keep it and leave k out (TinyLFU). Called inside the shard, so it
     * must not call into this L1. May be NULL (always evict). */
    int (*replace)(void *ud, const strata__key *k, uint64_t victim_hash);
    void *ud;
} strata__l1_gate;

void strata__l1_set_gate(strata__l1 *l1, const strata__l1_gate *gate);

/* fills_refused: puts dropped because their key's fill epoch had moved. */
void strata__l1_stats(strata__l1 *l1, uint64_t *entries, uint64_t *bytes, uint64_t *evictions,
                      uint64_t *fills_refused);

/* Hits counted by strata__l1_read: all of them, and the negative ones. */
void strata__l1_hits(strata__l1 *l1, uint64_t *hits, uint64_t *negative_hits);

/* Tagged entries (engine/tags.c): the value kept is a whole envelope. On a
 * hit, outside the shard, the validator checks it and leaves just the payload
 * in out; it returns rc, or STRATA_MISS. Without a validator a tagged entry
 * never hits. A validator that passes also fills a token, which the entry
 * keeps: later hits skip the validator while *generation still equals the
 * token's and now is before its until_ms, and copy just the payload. */
typedef struct strata__l1_token {
    uint64_t generation;
    int64_t until_ms;    /* wall clock; INT64_MIN = check every time */
    size_t payload_off;  /* where the payload starts in the envelope */
} strata__l1_token;
typedef int (*strata__l1_validator)(void *ctx, const strata__key *k, int64_t now_ms,
                                    strata_value *out, int rc, strata__l1_token *token);
void strata__l1_set_validator(strata__l1 *l1, strata__l1_validator fn, void *ctx, const uint64_t *generation);
void strata__l1_put_tagged(strata__l1 *l1, const strata__key *k, const char *envelope,
                           size_t len, int negative, int64_t serve_until_ms, int64_t fresh_until_ms,
                           int64_t stale_until_ms, uint64_t epoch);

/* Copies bytes into a strata_value's library-owned buffer. */
int strata__value_set(strata_value *v, const char *data, size_t len);

/* The same, inline when the buffer is big enough already (a reused value on
 * a hit path); else strata__value_set grows it. */
static inline int strata__value_copy(strata_value *v, const char *data, size_t len)
{
    if (len < v->cap_ && v->priv_ != NULL) {
        memcpy(v->priv_, data, len);
        ((char *)v->priv_)[len] = '\0';
        v->data = v->priv_;
        v->len = len;
        return 0;
    }
    return strata__value_set(v, data, len);
}

#endif
