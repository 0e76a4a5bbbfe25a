#include "l1.h"
#include "error.h"
#include "local/table.h"
#include "platform/platform.h"
#include "policy/hash.h"

#include <stdlib.h>
#include <string.h>

#define L1_SHARDS 16
#define L1_NEGATIVE 1u
#define L1_TAGGED 2u

typedef struct l1_shard {
    strata__mutex lock;
    strata__table table;
    uint64_t epoch;             /* atomic: read without the lock (strata__l1_epoch) */
    char pad[64];
} l1_shard;

struct strata__l1 {
    l1_shard shards[L1_SHARDS];
    strata__l1_validator validator;
    void *validator_ctx;
    strata__l1_gate gate;
};

void strata__l1_set_gate(strata__l1 *l1, const strata__l1_gate *gate)
{
    l1->gate = *gate;
}

static l1_shard *shard_of(strata__l1 *l1, const char *key, size_t keylen, uint64_t *h)
{
    *h = strata__hash64(key, keylen, 0x4c31);
    return &l1->shards[*h % L1_SHARDS];
}

int strata__l1_new(strata__l1 **out, uint64_t max_bytes, unsigned int max_entries)
{
    size_t i;
    strata__l1 *l1 = calloc(1, sizeof *l1);
    if (l1 == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory creating the L1 tier");
    for (i = 0; i < L1_SHARDS; i++) {
        strata__mutex_init(&l1->shards[i].lock);
        if (strata__table_init(&l1->shards[i].table, (size_t)(max_bytes / L1_SHARDS),
                               max_entries / L1_SHARDS ? max_entries / L1_SHARDS : 1) < 0) {
            strata__l1_free(l1);
            return strata__error(STRATA_ENOMEM, "out of memory creating the L1 tier");
        }
    }
    *out = l1;
    return 0;
}

void strata__l1_free(strata__l1 *l1)
{
    size_t i;
    if (l1 == NULL)
        return;
    for (i = 0; i < L1_SHARDS; i++) {
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

uint64_t strata__l1_epoch(strata__l1 *l1, const char *key, size_t keylen)
{
    uint64_t h;
    l1_shard *s = shard_of(l1, key, keylen, &h);
    return strata__atomic_load(&s->epoch);
}

/* Copies e into out; the caller holds the shard lock. */
static int copy_out(const strata__entry *e, int64_t now_ms, int level, strata_value *out)
{
    if (strata__value_set(out, STRATA__ENTRY_VALUE(e), e->vallen) < 0)
        return STRATA_ENOMEM;
    out->level = level;
    out->stale = level == STRATA_LEVEL_STALE;
    out->ttl_ms = e->aux - now_ms;
    return (e->flags & L1_NEGATIVE) ? STRATA_NEGATIVE : 0;
}

/* Shared by get and get_stale: stale = 0 serves entries within their serving
 * time, stale = 1 positive entries up to their stale-until. */
static int get(strata__l1 *l1, const char *key, size_t keylen, int64_t now_ms, int stale, strata_value *out)
{
    uint64_t h;
    l1_shard *s = shard_of(l1, key, keylen, &h);
    strata__entry *e;
    int rc = STRATA_MISS, tagged = 0;
    if (!stale && l1->gate.readable && !l1->gate.readable(l1->gate.ud))
        return STRATA_MISS; /* stale-if-error does not need the invalidation link */
    strata__mutex_lock(&s->lock);
    e = strata__table_get(&s->table, h, key, keylen, now_ms);
    if (e && (stale ? !(e->flags & L1_NEGATIVE) : now_ms < e->aux2)) {
        tagged = (e->flags & L1_TAGGED) != 0;
        rc = copy_out(e, now_ms, stale ? STRATA_LEVEL_STALE : STRATA_LEVEL_L1, out);
    }
    strata__mutex_unlock(&s->lock);
    if (tagged && rc >= 0)
        rc = l1->validator ? l1->validator(l1->validator_ctx, key, keylen, now_ms, out, rc) : STRATA_MISS;
    return rc;
}

int strata__l1_get(strata__l1 *l1, const char *key, size_t keylen, int64_t now_ms, strata_value *out)
{
    return get(l1, key, keylen, now_ms, 0, out);
}

int strata__l1_get_stale(strata__l1 *l1, const char *key, size_t keylen, int64_t now_ms,
                         strata_value *out)
{
    return get(l1, key, keylen, now_ms, 1, out);
}

static void put_flagged(strata__l1 *l1, const char *key, size_t keylen, const char *val, size_t vallen,
                        unsigned int flags, int64_t serve_until_ms, int64_t fresh_until_ms,
                        int64_t stale_until_ms, uint64_t epoch)
{
    uint64_t h;
    l1_shard *s = shard_of(l1, key, keylen, &h);
    strata__entry *e = NULL;
    if (l1->gate.admit && !l1->gate.admit(l1->gate.ud, key, keylen))
        return;
    int64_t keep_until = (flags & L1_NEGATIVE) || stale_until_ms < serve_until_ms ? serve_until_ms
                                                                                  : stale_until_ms;
    strata__mutex_lock(&s->lock);
    if (strata__atomic_load(&s->epoch) == epoch &&
        strata__table_put(&s->table, h, key, keylen, val, vallen, keep_until, &e) == 0) {
        e->aux = fresh_until_ms;
        e->aux2 = serve_until_ms;
        e->flags = flags;
    }
    strata__mutex_unlock(&s->lock);
}

void strata__l1_put(strata__l1 *l1, const char *key, size_t keylen, const char *val, size_t vallen,
                    int negative, int64_t serve_until_ms, int64_t fresh_until_ms,
                    int64_t stale_until_ms, uint64_t epoch)
{
    put_flagged(l1, key, keylen, val, vallen, negative ? L1_NEGATIVE : 0, serve_until_ms, fresh_until_ms,
                stale_until_ms, epoch);
}

void strata__l1_put_tagged(strata__l1 *l1, const char *key, size_t keylen, const char *envelope,
                           size_t len, int negative, int64_t serve_until_ms, int64_t fresh_until_ms,
                           int64_t stale_until_ms, uint64_t epoch)
{
    put_flagged(l1, key, keylen, envelope, len, L1_TAGGED | (negative ? L1_NEGATIVE : 0u), serve_until_ms,
                fresh_until_ms, stale_until_ms, epoch);
}

void strata__l1_set_validator(strata__l1 *l1, strata__l1_validator fn, void *ctx)
{
    l1->validator = fn;
    l1->validator_ctx = ctx;
}

void strata__l1_del(strata__l1 *l1, const char *key, size_t keylen)
{
    uint64_t h;
    l1_shard *s = shard_of(l1, key, keylen, &h);
    strata__mutex_lock(&s->lock);
    strata__atomic_add(&s->epoch, 1);
    strata__table_del(&s->table, h, key, keylen, 0);
    strata__mutex_unlock(&s->lock);
}

void strata__l1_clear(strata__l1 *l1)
{
    size_t i;
    for (i = 0; i < L1_SHARDS; i++) {
        strata__mutex_lock(&l1->shards[i].lock);
        strata__atomic_add(&l1->shards[i].epoch, 1);
        strata__table_clear(&l1->shards[i].table);
        strata__mutex_unlock(&l1->shards[i].lock);
    }
}

void strata__l1_demote(strata__l1 *l1)
{
    size_t i;
    strata__entry *e;
    for (i = 0; i < L1_SHARDS; i++) {
        strata__mutex_lock(&l1->shards[i].lock);
        strata__atomic_add(&l1->shards[i].epoch, 1);
        for (e = l1->shards[i].table.lru_head; e; e = e->lru_next)
            e->aux2 = INT64_MIN; /* past its serving time; kept until stale-until */
        strata__mutex_unlock(&l1->shards[i].lock);
    }
}

void strata__l1_stats(strata__l1 *l1, uint64_t *entries, uint64_t *bytes, uint64_t *evictions)
{
    size_t i;
    *entries = *bytes = *evictions = 0;
    for (i = 0; i < L1_SHARDS; i++) {
        strata__mutex_lock(&l1->shards[i].lock);
        *entries += l1->shards[i].table.count;
        *bytes += l1->shards[i].table.bytes;
        *evictions += l1->shards[i].table.evictions;
        strata__mutex_unlock(&l1->shards[i].lock);
    }
}
