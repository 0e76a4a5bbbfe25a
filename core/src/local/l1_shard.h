/*
 * The L1's layout and its lock-free read protocol, shared by l1.c (every
 * read and write) and the engine's hit path, which inlines
 * strata__l1_hit_fast into strata_get: one pass from the key descriptor to
 * the copied value, no call into l1.c.
 *
 * A reader marks its thread's reader slot (platform.h: no other live thread
 * has it) with the shard it reads, then checks the shard's writer flag; a
 * writer raises the flag, then waits until no slot names its shard. Both are
 * seq_cst (a store, then a load), so one side always sees the other. A reader
 * that sees the flag takes the shard's mutex instead. Hits are counted in the
 * slot by its own thread: plain stores, no locked instruction, no cache line
 * another reader writes. A thread without a slot (more than
 * STRATA__READER_SLOTS alive) reads under the mutex and counts atomically.
 */
#ifndef STRATA_L1_SHARD_H
#define STRATA_L1_SHARD_H

#include "l1.h"
#include "local/table.h"
#include "platform/platform.h"

#define STRATA__L1_SHARDS 16
#define STRATA__L1_NEGATIVE 1u
#define STRATA__L1_TAGGED 2u
#define STRATA__L1_EARLY_HITS 15u /* an entry's first hits are reported as such (*hits = 0) */
#define STRATA__L1_SLOW 100       /* strata__l1_hit_fast: not decided here, ask strata__l1_read */

/* Fill epochs per stripe of keys, not per shard: a fill is refused only for
 * a write, delete or invalidation of a key of its own stripe (1 in 4096 of
 * the keys), not for any of the shard's (a sixteenth of them; under a 5%
 * write share a quarter of the fills that took 100-200 us met one). The hit
 * path never reads them. */
#define STRATA__L1_STRIPES 256 /* per shard */

static inline unsigned int strata__l1_stripe_of(const strata__key *k)
{
    return (unsigned int)(k->hash >> 40) % STRATA__L1_STRIPES; /* bits the shard and bucket do not use */
}

typedef struct strata__l1_shard {
    strata__mutex lock;     /* writers, and readers that met a writer */
    int writer;             /* 1 while a writer changes the table (atomic) */
    uint32_t puts;          /* numbers the entries put (writers only) */
    uint64_t refused;       /* fills refused for a moved epoch (writers only) */
    strata__table table;
} __attribute__((aligned(64))) strata__l1_shard;

/* One reader slot's view of this L1, on a cache line of its own. */
typedef struct strata__l1_reader {
    unsigned int shard;           /* index + 1 of the shard being read, 0 = none (atomic) */
    uint64_t hits, negative_hits; /* stored by the slot's thread only (atomic) */
} __attribute__((aligned(64))) strata__l1_reader;

/* Hits of threads without a reader slot (atomic adds). */
typedef struct strata__l1_shared_hits {
    uint64_t hits, negative_hits;
} __attribute__((aligned(64))) strata__l1_shared_hits;

struct strata__l1 {
    strata__l1_shard shards[STRATA__L1_SHARDS];
    /* shard i's stripes: bumped inside its write section (atomic: readers
     * load them). Apart from the shards, which stay a power of two long. */
    uint64_t epochs[STRATA__L1_SHARDS][STRATA__L1_STRIPES] __attribute__((aligned(64)));
    strata__l1_reader readers[STRATA__READER_SLOTS];
    strata__l1_shared_hits shared;
    strata__l1 *prev, *next;        /* every live L1, for fork (l1.c) */
    strata__l1_validator validator;
    void *validator_ctx;
    const uint64_t *tag_generation; /* the validator's tokens' counter (atomic) */
    strata__l1_gate gate;
};

static inline strata__l1_shard *strata__l1_shard_of(strata__l1 *l1, const strata__key *k)
{
    return &l1->shards[k->hash % STRATA__L1_SHARDS];
}

/* 1: inside without the lock; 0: under the shard's mutex (a writer is at
 * work, or the thread has no slot). Leave with strata__l1_leave. */
static inline int strata__l1_enter(strata__l1 *l1, strata__l1_shard *s, unsigned int slot)
{
    if (slot < STRATA__READER_SLOTS) {
        strata__l1_reader *r = &l1->readers[slot];
        __atomic_store_n(&r->shard, (unsigned int)(s - l1->shards) + 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&s->writer, __ATOMIC_SEQ_CST) == 0)
            return 1;
        __atomic_store_n(&r->shard, 0, __ATOMIC_RELEASE);
    }
    strata__mutex_lock(&s->lock);
    return 0;
}

static inline void strata__l1_leave(strata__l1 *l1, strata__l1_shard *s, unsigned int slot, int unlocked)
{
    if (unlocked)
        __atomic_store_n(&l1->readers[slot].shard, 0, __ATOMIC_RELEASE);
    else
        strata__mutex_unlock(&s->lock);
}

/* Counts a hit (rc 0 or STRATA_NEGATIVE); returns the count it is part of
 * (the slot's, or the shared one's). */
static inline uint64_t strata__l1_count_hit(strata__l1 *l1, unsigned int slot, int rc)
{
    strata__l1_reader *r;
    uint64_t n;
    if (slot >= STRATA__READER_SLOTS) {
        if (rc == STRATA_NEGATIVE)
            __atomic_add_fetch(&l1->shared.negative_hits, 1, __ATOMIC_RELAXED);
        return __atomic_add_fetch(&l1->shared.hits, 1, __ATOMIC_RELAXED);
    }
    r = &l1->readers[slot];
    if (rc == STRATA_NEGATIVE)
        __atomic_store_n(&r->negative_hits, __atomic_load_n(&r->negative_hits, __ATOMIC_RELAXED) + 1,
                         __ATOMIC_RELAXED);
    n = __atomic_load_n(&r->hits, __ATOMIC_RELAXED) + 1;
    __atomic_store_n(&r->hits, n, __ATOMIC_RELAXED);
    return n;
}

/* Copies a value: 17-128 bytes (the usual cached value) in two overlapping
 * fixed-size moves the compiler inlines, no call; others with memcpy. */
static inline void strata__l1_copy(char *dst, const char *src, size_t len)
{
    if (len > 64 && len <= 128) {
        memcpy(dst, src, 64);
        memcpy(dst + len - 64, src + len - 64, 64);
    } else if (len > 32 && len <= 64) {
        memcpy(dst, src, 32);
        memcpy(dst + len - 32, src + len - 32, 32);
    } else if (len > 16 && len <= 32) {
        memcpy(dst, src, 16);
        memcpy(dst + len - 16, src + len - 16, 16);
    } else {
        memcpy(dst, src, len);
    }
}

/* A tagged entry's tag-check token, kept in its extra bytes (untagged
 * entries have none): the generation and until of strata__l1_token. */
typedef struct strata__l1_kept_token {
    uint64_t generation;
    int64_t until_ms;
} strata__l1_kept_token;

/* Whether a tagged entry's token still vouches for its tag versions. */
static inline int strata__l1_token_valid(const strata__l1 *l1, const strata__entry *e, int64_t now_ms)
{
    strata__l1_kept_token t;
    if (!l1->validator)
        return 0;
    memcpy(&t, STRATA__ENTRY_EXTRA(e), sizeof t);
    return t.generation == __atomic_load_n(l1->tag_generation, __ATOMIC_ACQUIRE) && now_ms < t.until_ms;
}

/* Names entry e of shard number `shard` among all this L1 ever held (never 0): a new
 * put of the key, in any shard, gets a new one (strata_l1_get, _check). */
static inline uint64_t strata__l1_entry_version(const strata__entry *e, unsigned int shard)
{
    return ((uint64_t)e->put_id << 4 | shard) + 1;
}

/* The fast paths' way in: k's entry, found inside its shard with the
 * thread's reader slot marked (leave with strata__l1_fast_leave), or NULL
 * and *rc = STRATA_MISS (no entry, or L1 may not serve now; not inside) or
 * STRATA__L1_SLOW (no slot yet, or a writer at work; not inside). */
static inline __attribute__((always_inline)) strata__entry *strata__l1_fast_find(strata__l1 *l1, const strata__key *k,
                                                                                unsigned int *slot, int *rc)
{
    unsigned int shard = (unsigned int)(k->hash % STRATA__L1_SHARDS);
    strata__l1_shard *s = &l1->shards[shard];
    strata__l1_reader *r;
    strata__entry *e;
    *slot = strata__reader_slot_held();
    *rc = STRATA__L1_SLOW;
    if (*slot >= STRATA__READER_SLOTS)
        return NULL;
    r = &l1->readers[*slot];
    if (l1->gate.readable && !l1->gate.readable(l1->gate.ud)) {
        *rc = STRATA_MISS;
        return NULL;
    }
    __atomic_store_n(&r->shard, shard + 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&s->writer, __ATOMIC_SEQ_CST) != 0) {
        __atomic_store_n(&r->shard, 0, __ATOMIC_RELEASE);
        return NULL;
    }
    e = strata__table_find(&s->table, k->hash, k->ptr, k->len);
    if (e == NULL) {
        __atomic_store_n(&r->shard, 0, __ATOMIC_RELEASE);
        *rc = STRATA_MISS;
    }
    return e;
}

static inline void strata__l1_fast_leave(strata__l1 *l1, unsigned int slot)
{
    __atomic_store_n(&l1->readers[slot].shard, 0, __ATOMIC_RELEASE);
}

/* The common hit in one pass, for inlining into an entry point: a live
 * entry not within STRATA__COARSE_SLACK_MS of its serve-until, untagged or
 * tagged with a valid token, copied into a buffer big enough already, read
 * without a writer at work. 0 or STRATA_NEGATIVE (counted, *hits as for
 * strata__l1_read), STRATA_MISS (L1 holds no entry for k, or may not serve
 * now), or STRATA__L1_SLOW for anything else (a thread's first read, which
 * takes its reader slot, included): then strata__l1_read decides (out is
 * untouched). */
static inline __attribute__((always_inline)) int strata__l1_hit_fast(strata__l1 *l1, const strata__key *k,
                                                                    int64_t now_ms, strata_value *out,
                                                                    uint64_t *hits)
{
    unsigned int slot, reads;
    strata__entry *e;
    size_t off, len;
    uint64_t n;
    int rc;
    if ((e = strata__l1_fast_find(l1, k, &slot, &rc)) == NULL)
        return rc;
    off = e->check_off; /* 0 but in a tagged entry with a token (table_put zeroes it) */
    len = e->vallen - off;
    /* cap_ is 0 while priv_ is NULL (zeroed, or disposed): the test covers both */
    if (e->aux2 < now_ms + STRATA__COARSE_SLACK_MS || len >= out->cap_ ||
        ((e->flags & STRATA__L1_TAGGED) && !strata__l1_token_valid(l1, e, now_ms))) {
        strata__l1_fast_leave(l1, slot);
        return STRATA__L1_SLOW;
    }
    strata__l1_copy(out->priv_, STRATA__ENTRY_VALUE(e) + off, len);
    ((char *)out->priv_)[len] = '\0';
    out->data = out->priv_;
    out->len = len;
    out->level = STRATA_LEVEL_L1;
    out->stale = 0;
    out->ttl_ms = e->aux - now_ms;
    rc = (e->flags & STRATA__L1_NEGATIVE) ? STRATA_NEGATIVE : 0;
    reads = __atomic_load_n(&e->referenced, __ATOMIC_RELAXED);
    if (reads < STRATA__L1_EARLY_HITS) /* written for the first hits only, not per hit */
        __atomic_store_n(&e->referenced, (unsigned char)(reads + 1), __ATOMIC_RELAXED);
    strata__l1_fast_leave(l1, slot);
    n = strata__l1_count_hit(l1, slot, rc);
    *hits = reads < STRATA__L1_EARLY_HITS ? 0 : n;
    return rc;
}

/* strata__l1_check's common answer in the same one pass: whether the entry
 * named by version still serves k (0 or STRATA_NEGATIVE, counted, *hits
 * the count), STRATA_MISS (not it, no entry, a tag check due), or
 * STRATA__L1_SLOW (near its serve-until, no slot, a writer at work). */
static inline __attribute__((always_inline)) int strata__l1_check_fast(strata__l1 *l1, const strata__key *k,
                                                                      int64_t now_ms, uint64_t version,
                                                                      uint64_t *hits)
{
    unsigned int slot;
    strata__entry *e;
    int rc;
    if ((e = strata__l1_fast_find(l1, k, &slot, &rc)) == NULL)
        return rc;
    if (e->aux2 < now_ms + STRATA__COARSE_SLACK_MS) {
        strata__l1_fast_leave(l1, slot);
        return STRATA__L1_SLOW; /* decided on the precise clock */
    }
    rc = strata__l1_entry_version(e, (unsigned int)(k->hash % STRATA__L1_SHARDS)) != version ||
                 ((e->flags & STRATA__L1_TAGGED) && !strata__l1_token_valid(l1, e, now_ms))
             ? STRATA_MISS /* a tag check due: the caller's full read does it */
             : (e->flags & STRATA__L1_NEGATIVE) ? STRATA_NEGATIVE : 0;
    strata__l1_fast_leave(l1, slot);
    if (rc != STRATA_MISS)
        *hits = strata__l1_count_hit(l1, slot, rc);
    return rc;
}

#endif
