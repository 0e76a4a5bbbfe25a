#include "l1.h"
#include "local/l1_shard.h"
#include "error.h"
#include "local/table.h"
#include "platform/platform.h"

#include <stdlib.h>
#include <string.h>

typedef strata__l1_shard l1_shard;

void strata__l1_set_gate(strata__l1 *l1, const strata__l1_gate *gate)
{
    l1->gate = *gate;
}

/* ---- the shard's writer side (readers: local/l1_shard.h) ---- */

/* Excludes every reader: the flag turns new ones to the mutex, and the
 * readers already inside are waited out (they copy one value at most). */
static void write_begin(strata__l1 *l1, l1_shard *s)
{
    unsigned int i, n, me = (unsigned int)(s - l1->shards) + 1;
    strata__mutex_lock(&s->lock);
    __atomic_store_n(&s->writer, 1, __ATOMIC_SEQ_CST);
    n = strata__reader_slots_used();
    for (i = 0; i < n; i++) {
        unsigned int round = 0;
        while (__atomic_load_n(&l1->readers[i].shard, __ATOMIC_ACQUIRE) == me)
            strata__spin_pause(round++);
    }
}

static void write_end(l1_shard *s)
{
    __atomic_store_n(&s->writer, 0, __ATOMIC_RELEASE);
    strata__mutex_unlock(&s->lock);
}

/* ---- fork ----
 * A thread inside a shard when another forks would leave its reader mark
 * (or the writer flag and mutex) taken forever in the child, where that
 * thread does not exist. So fork waits: before it, the forking thread takes
 * every shard of every L1 as a writer (readers drain; a write in progress
 * completes), and both processes let go after it, each with whole tables. */

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static strata__l1 *live;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void before_fork(void)
{
    strata__l1 *l1;
    size_t i;
    pthread_mutex_lock(&live_lock);
    for (l1 = live; l1; l1 = l1->next)
        for (i = 0; i < STRATA__L1_SHARDS; i++)
            write_begin(l1, &l1->shards[i]);
}

static void after_fork(void)
{
    strata__l1 *l1;
    size_t i;
    for (l1 = live; l1; l1 = l1->next)
        for (i = 0; i < STRATA__L1_SHARDS; i++)
            write_end(&l1->shards[i]);
    pthread_mutex_unlock(&live_lock);
}

static void register_atfork(void)
{
    pthread_atfork(before_fork, after_fork, after_fork);
}

static void live_add(strata__l1 *l1)
{
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&live_lock);
    l1->next = live;
    if (live)
        live->prev = l1;
    live = l1;
    pthread_mutex_unlock(&live_lock);
}

static void live_remove(strata__l1 *l1)
{
    pthread_mutex_lock(&live_lock);
    if (l1->prev)
        l1->prev->next = l1->next;
    else if (live == l1)
        live = l1->next;
    if (l1->next)
        l1->next->prev = l1->prev;
    pthread_mutex_unlock(&live_lock);
}

/* ---- lifetime ---- */

int strata__l1_new(strata__l1 **out, uint64_t max_bytes, unsigned int max_entries)
{
    size_t i;
    void *mem = NULL;
    strata__l1 *l1;
    if (posix_memalign(&mem, 64, sizeof *l1) != 0)
        return strata__error(STRATA_ENOMEM, "out of memory creating the L1 tier");
    l1 = memset(mem, 0, sizeof *l1);
    for (i = 0; i < STRATA__L1_SHARDS; i++) {
        strata__mutex_init(&l1->shards[i].lock);
        if (strata__table_init(&l1->shards[i].table, (size_t)(max_bytes / STRATA__L1_SHARDS),
                               max_entries / STRATA__L1_SHARDS ? max_entries / STRATA__L1_SHARDS : 1) < 0) {
            strata__l1_free(l1);
            return strata__error(STRATA_ENOMEM, "out of memory creating the L1 tier");
        }
    }
    live_add(l1);
    *out = l1;
    return 0;
}

void strata__l1_free(strata__l1 *l1)
{
    size_t i;
    if (l1 == NULL)
        return;
    live_remove(l1);
    for (i = 0; i < STRATA__L1_SHARDS; i++) {
        strata__table_destroy(&l1->shards[i].table);
        strata__mutex_destroy(&l1->shards[i].lock);
    }
    free(l1);
}

int strata__value_set(strata_value *v, const char *data, size_t len)
{
    if (len + 1 > v->cap_ || v->priv_ == NULL) {
        size_t cap = len + 1 < 64 ? 64 : len + 1;
        char *p = realloc(v->priv_, cap);
        if (p == NULL)
            return strata__error(STRATA_ENOMEM, "out of memory for a %zu-byte value", len);
        v->priv_ = p;
        v->cap_ = cap;
    }
    if (len)
        memcpy(v->priv_, data, len);
    ((char *)v->priv_)[len] = '\0'; /* handy for C callers printing text values */
    v->data = v->priv_;
    v->len = len;
    return 0;
}

static uint64_t *epoch_of(strata__l1 *l1, const strata__key *k)
{
    return &l1->epochs[k->hash % STRATA__L1_SHARDS][strata__l1_stripe_of(k)];
}

uint64_t strata__l1_epoch(strata__l1 *l1, const strata__key *k)
{
    return strata__atomic_load(epoch_of(l1, k));
}

/* Every stripe of shard i (inside its write section): clear, demote. */
static void bump_all(strata__l1 *l1, size_t i)
{
    size_t j;
    for (j = 0; j < STRATA__L1_STRIPES; j++)
        strata__atomic_add(&l1->epochs[i][j], 1);
}

/* ---- reads ---- */

/* Copies e's value from byte `from` on into out; the caller is inside the shard. */
static inline __attribute__((always_inline)) int copy_out(const strata__entry *e, int64_t now_ms, int level,
                                                         strata_value *out, size_t from)
{
    if (strata__value_copy(out, STRATA__ENTRY_VALUE(e) + from, e->vallen - from) < 0)
        return STRATA_ENOMEM;
    out->level = level;
    out->stale = level == STRATA_LEVEL_STALE;
    out->ttl_ms = e->aux - now_ms;
    return (e->flags & STRATA__L1_NEGATIVE) ? STRATA_NEGATIVE : 0;
}

/* Stores a tagged entry's fresh token, unless the entry was replaced since
 * it was read (its put_id tells). */
static void keep_token(strata__l1 *l1, l1_shard *s, const strata__key *k, const strata__entry *read, uint32_t put_id,
                       const strata__l1_token *t)
{
    strata__entry *e;
    write_begin(l1, s);
    e = strata__table_find(&s->table, k->hash, k->ptr, k->len);
    if (e == read && e->put_id == put_id && t->payload_off <= UINT16_MAX) {
        strata__l1_kept_token kept;
        kept.generation = t->generation;
        kept.until_ms = t->until_ms;
        memcpy(STRATA__ENTRY_EXTRA(e), &kept, sizeof kept);
        e->check_off = (uint16_t)t->payload_off;
    }
    write_end(s);
}

/* Shared by get, read and get_stale: stale = 0 serves entries within their
 * serving time, stale = 1 positive entries up to their stale-until. count:
 * a hit is counted, and *hits gets the slot's hit count after it (else 0).
 * Inlined into each so the flags fold away on the hit path. */
static inline __attribute__((always_inline)) int get(strata__l1 *l1, const strata__key *k, int64_t now_ms,
                                                    int stale, int count, strata_value *out, uint64_t *hits,
                                                    uint64_t *version)
{
    l1_shard *s = strata__l1_shard_of(l1, k);
    unsigned int slot = strata__reader_slot();
    strata__entry *e, *read = NULL;
    uint32_t put_id = 0;
    unsigned int reads = STRATA__L1_EARLY_HITS;
    int rc = STRATA_MISS, unlocked;
    if (!stale && l1->gate.readable && !l1->gate.readable(l1->gate.ud))
        return STRATA_MISS; /* stale-if-error does not need the invalidation link */
    unlocked = strata__l1_enter(l1, s, slot);
    e = strata__table_find(&s->table, k->hash, k->ptr, k->len);
    if (e && e->aux2 < now_ms + STRATA__COARSE_SLACK_MS)
        now_ms = strata__now_wall_ms(); /* near its end: the coarse clock may lag, decide exactly */
    /* Served until aux2, kept until expires_ms >= aux2: a servable entry is live. */
    if (e && (stale ? !(e->flags & STRATA__L1_NEGATIVE) && now_ms < e->expires_ms : now_ms < e->aux2)) {
        int level = stale ? STRATA_LEVEL_STALE : STRATA_LEVEL_L1;
        if (version)
            *version = strata__l1_entry_version(e, (unsigned int)(s - l1->shards));
        if (!(e->flags & STRATA__L1_TAGGED)) {
            rc = copy_out(e, now_ms, level, out, 0);
        } else if (strata__l1_token_valid(l1, e, now_ms)) {
            rc = copy_out(e, now_ms, level, out, e->check_off); /* checked lately, nothing changed since */
        } else {
            rc = copy_out(e, now_ms, level, out, 0); /* the envelope, for the validator */
            read = e;
            put_id = e->put_id;
        }
        reads = __atomic_load_n(&e->referenced, __ATOMIC_RELAXED);
        if (reads < STRATA__L1_EARLY_HITS) /* written for the first hits only, not per hit */
            __atomic_store_n(&e->referenced, (unsigned char)(reads + 1), __ATOMIC_RELAXED);
    }
    strata__l1_leave(l1, s, slot, unlocked);
    if (read && rc >= 0) {
        strata__l1_token token;
        rc = l1->validator ? l1->validator(l1->validator_ctx, k, now_ms, out, rc, &token) : STRATA_MISS;
        if (rc >= 0 && rc != STRATA_MISS && token.until_ms != INT64_MIN)
            keep_token(l1, s, k, read, put_id, &token); /* `read` is only compared, never followed */
    }
    if (count && rc >= 0 && rc != STRATA_MISS) {
        uint64_t seq = strata__l1_count_hit(l1, slot, rc);
        *hits = reads < STRATA__L1_EARLY_HITS ? 0 : seq;
    }
    return rc;
}

int strata__l1_get(strata__l1 *l1, const strata__key *k, int64_t now_ms, strata_value *out)
{
    return get(l1, k, now_ms, 0, 0, out, NULL, NULL);
}

int strata__l1_read(strata__l1 *l1, const strata__key *k, int64_t now_ms, strata_value *out, uint64_t *hits)
{
    return get(l1, k, now_ms, 0, 1, out, hits, NULL);
}

int strata__l1_read_versioned(strata__l1 *l1, const strata__key *k, int64_t now_ms, strata_value *out,
                              uint64_t *hits, uint64_t *version)
{
    int rc;
    *version = 0;
    rc = get(l1, k, now_ms, 0, 1, out, hits, version);
    if (rc < 0 || rc == STRATA_MISS)
        *version = 0; /* a tag check turned it down */
    return rc;
}

/* strata__l1_check past its fast path: on the precise clock near the
 * entry's serve-until, under the mutex while a writer works, or taking the
 * thread's reader slot. Apart, so the fast path saves no registers. */
static __attribute__((noinline)) int check_slow(strata__l1 *l1, const strata__key *k, int64_t now_ms,
                                                uint64_t version, uint64_t *hits)
{
    l1_shard *s = strata__l1_shard_of(l1, k);
    unsigned int slot = strata__reader_slot();
    strata__entry *e;
    int rc = STRATA_MISS, unlocked;
    if (l1->gate.readable && !l1->gate.readable(l1->gate.ud))
        return STRATA_MISS;
    unlocked = strata__l1_enter(l1, s, slot);
    e = strata__table_find(&s->table, k->hash, k->ptr, k->len);
    if (e && e->aux2 < now_ms + STRATA__COARSE_SLACK_MS)
        now_ms = strata__now_wall_ms();
    if (e && now_ms < e->aux2 && strata__l1_entry_version(e, (unsigned int)(s - l1->shards)) == version &&
        (!(e->flags & STRATA__L1_TAGGED) || strata__l1_token_valid(l1, e, now_ms))) /* else a tag check is due: the caller's full read does it */
        rc = (e->flags & STRATA__L1_NEGATIVE) ? STRATA_NEGATIVE : 0;
    strata__l1_leave(l1, s, slot, unlocked);
    if (rc != STRATA_MISS)
        *hits = strata__l1_count_hit(l1, slot, rc);
    return rc;
}

int strata__l1_check(strata__l1 *l1, const strata__key *k, int64_t now_ms, uint64_t version, uint64_t *hits)
{
    int rc = strata__l1_check_fast(l1, k, now_ms, version, hits);
    return rc != STRATA__L1_SLOW ? rc : check_slow(l1, k, now_ms, version, hits);
}

int strata__l1_get_stale(strata__l1 *l1, const strata__key *k, int64_t now_ms, strata_value *out)
{
    return get(l1, k, now_ms, 1, 0, out, NULL, NULL);
}

/* ---- writes ---- */

/* Inside s's write section: stores k's entry (the TinyLFU gate may keep a
 * newcomer out of a full shard). 1 = stored, 0 = not (nothing changed, or
 * the old entry is gone: a put that fails after removing it). */
static int store_locked(strata__l1 *l1, l1_shard *s, const strata__key *k, const char *val, size_t vallen,
                        unsigned int flags, int64_t serve_until_ms, int64_t fresh_until_ms,
                        int64_t stale_until_ms)
{
    strata__entry *e = NULL;
    int64_t keep_until = (flags & STRATA__L1_NEGATIVE) || stale_until_ms < serve_until_ms ? serve_until_ms
                                                                                  : stale_until_ms;
    unsigned char extra = (flags & STRATA__L1_TAGGED) ? sizeof(strata__l1_kept_token) : 0;
    if (l1->gate.replace && strata__table_find(&s->table, k->hash, k->ptr, k->len) == NULL) {
        strata__entry *victim = strata__table_victim(&s->table, strata__table_cost(k->len, vallen + extra));
        if (victim && !l1->gate.replace(l1->gate.ud, k, victim->hash))
            return 0;
    }
    if (strata__table_put_extra(&s->table, k->hash, k->ptr, k->len, val, vallen, extra, keep_until, &e) != 0)
        return 0;
    e->aux = fresh_until_ms;
    e->aux2 = serve_until_ms;
    e->flags = (unsigned char)flags;
    e->put_id = ++s->puts;
    if (extra) {
        strata__l1_kept_token none = {0, INT64_MIN}; /* no token yet: the first hit checks */
        memcpy(STRATA__ENTRY_EXTRA(e), &none, sizeof none);
    }
    return 1;
}

static void put_flagged(strata__l1 *l1, const strata__key *k, const char *val, size_t vallen,
                        unsigned int flags, int64_t serve_until_ms, int64_t fresh_until_ms,
                        int64_t stale_until_ms, uint64_t epoch)
{
    l1_shard *s = strata__l1_shard_of(l1, k);
    if (l1->gate.admit && !l1->gate.admit(l1->gate.ud, k))
        return;
    write_begin(l1, s);
    if (strata__atomic_load(epoch_of(l1, k)) == epoch)
        store_locked(l1, s, k, val, vallen, flags, serve_until_ms, fresh_until_ms, stale_until_ms);
    else
        s->refused++;
    write_end(s);
}

void strata__l1_put(strata__l1 *l1, const strata__key *k, const char *val, size_t vallen,
                    int negative, int64_t serve_until_ms, int64_t fresh_until_ms,
                    int64_t stale_until_ms, uint64_t epoch)
{
    put_flagged(l1, k, val, vallen, negative ? STRATA__L1_NEGATIVE : 0, serve_until_ms, fresh_until_ms,
                stale_until_ms, epoch);
}

void strata__l1_put_tagged(strata__l1 *l1, const strata__key *k, const char *envelope,
                           size_t len, int negative, int64_t serve_until_ms, int64_t fresh_until_ms,
                           int64_t stale_until_ms, uint64_t epoch)
{
    put_flagged(l1, k, envelope, len, STRATA__L1_TAGGED | (negative ? STRATA__L1_NEGATIVE : 0u), serve_until_ms,
                fresh_until_ms, stale_until_ms, epoch);
}

void strata__l1_settle(strata__l1 *l1, const strata__key *k, uint64_t epoch, const char *val, size_t vallen,
                       int tagged, int64_t serve_until_ms, int64_t fresh_until_ms, int64_t stale_until_ms)
{
    l1_shard *s = strata__l1_shard_of(l1, k);
    uint64_t *ep = epoch_of(l1, k);
    int keep = val != NULL && (!l1->gate.admit || l1->gate.admit(l1->gate.ud, k));
    write_begin(l1, s);
    keep = keep && strata__atomic_load(ep) == epoch &&
           store_locked(l1, s, k, val, vallen, tagged ? STRATA__L1_TAGGED : 0u, serve_until_ms, fresh_until_ms,
                        stale_until_ms);
    if (!keep)
        strata__table_del(&s->table, k->hash, k->ptr, k->len, 0);
    strata__atomic_add(ep, 1); /* fills that read the backend during the write stay out */
    write_end(s);
}

void strata__l1_set_validator(strata__l1 *l1, strata__l1_validator fn, void *ctx, const uint64_t *generation)
{
    l1->validator = fn;
    l1->validator_ctx = ctx;
    l1->tag_generation = generation;
}

void strata__l1_del(strata__l1 *l1, const strata__key *k)
{
    l1_shard *s = strata__l1_shard_of(l1, k);
    write_begin(l1, s);
    strata__atomic_add(epoch_of(l1, k), 1);
    strata__table_del(&s->table, k->hash, k->ptr, k->len, 0);
    write_end(s);
}

void strata__l1_clear(strata__l1 *l1)
{
    size_t i;
    for (i = 0; i < STRATA__L1_SHARDS; i++) {
        write_begin(l1, &l1->shards[i]);
        bump_all(l1, i);
        strata__table_clear(&l1->shards[i].table);
        write_end(&l1->shards[i]);
    }
}

void strata__l1_demote(strata__l1 *l1)
{
    size_t i;
    strata__entry *e;
    for (i = 0; i < STRATA__L1_SHARDS; i++) {
        write_begin(l1, &l1->shards[i]);
        bump_all(l1, i);
        for (e = l1->shards[i].table.lru_head; e; e = e->lru_next)
            e->aux2 = INT64_MIN; /* past its serving time; kept until stale-until */
        write_end(&l1->shards[i]);
    }
}

/* Readers change no count, so the mutex (which every writer holds) suffices. */
void strata__l1_stats(strata__l1 *l1, uint64_t *entries, uint64_t *bytes, uint64_t *evictions,
                      uint64_t *fills_refused)
{
    size_t i;
    *entries = *bytes = *evictions = *fills_refused = 0;
    for (i = 0; i < STRATA__L1_SHARDS; i++) {
        strata__mutex_lock(&l1->shards[i].lock);
        *entries += l1->shards[i].table.count;
        *bytes += l1->shards[i].table.bytes;
        *evictions += l1->shards[i].table.evictions;
        *fills_refused += l1->shards[i].refused;
        strata__mutex_unlock(&l1->shards[i].lock);
    }
}

void strata__l1_hits(strata__l1 *l1, uint64_t *hits, uint64_t *negative_hits)
{
    size_t i;
    *hits = __atomic_load_n(&l1->shared.hits, __ATOMIC_RELAXED);
    *negative_hits = __atomic_load_n(&l1->shared.negative_hits, __ATOMIC_RELAXED);
    for (i = 0; i < STRATA__READER_SLOTS; i++) {
        *hits += __atomic_load_n(&l1->readers[i].hits, __ATOMIC_RELAXED);
        *negative_hits += __atomic_load_n(&l1->readers[i].negative_hits, __ATOMIC_RELAXED);
    }
}
