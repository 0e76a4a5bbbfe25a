#include "table.h"
#include "stratacache.h"

#include <stdlib.h>
#include <string.h>

#define MIN_BUCKETS 16

/* The header's size is part of every entry's cost (table.h): keep it so. */
typedef char strata__entry_header_is_72_bytes[sizeof(void *) != 8 || sizeof(strata__entry) == 72 ? 1 : -1];

size_t strata__table_cost(size_t keylen, size_t vallen)
{
    return sizeof(strata__entry) + keylen + vallen;
}

int strata__table_init(strata__table *t, size_t max_bytes, size_t max_entries)
{
    memset(t, 0, sizeof *t);
    t->buckets = calloc(MIN_BUCKETS, sizeof *t->buckets);
    if (t->buckets == NULL)
        return STRATA_ENOMEM;
    t->nbuckets = MIN_BUCKETS;
    t->max_bytes = max_bytes;
    t->max_entries = max_entries;
    return 0;
}

void strata__table_clear(strata__table *t)
{
    strata__entry *e = t->lru_head, *next;
    for (; e; e = next) {
        next = e->lru_next;
        free(e);
    }
    memset(t->buckets, 0, t->nbuckets * sizeof *t->buckets);
    t->lru_head = t->lru_tail = NULL;
    t->count = t->bytes = 0;
}

void strata__table_destroy(strata__table *t)
{
    if (t->buckets == NULL)
        return;
    strata__table_clear(t);
    free(t->buckets);
    t->buckets = NULL;
}

static void lru_unlink(strata__table *t, strata__entry *e)
{
    if (e->lru_prev) e->lru_prev->lru_next = e->lru_next; else t->lru_head = e->lru_next;
    if (e->lru_next) e->lru_next->lru_prev = e->lru_prev; else t->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(strata__table *t, strata__entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = t->lru_head;
    if (t->lru_head) t->lru_head->lru_prev = e; else t->lru_tail = e;
    t->lru_head = e;
}

static strata__entry **find_slot(strata__table *t, uint64_t h, const char *key, size_t keylen)
{
    strata__entry **pp = &t->buckets[(h >> 7) & (t->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->chain) {
        strata__entry *e = *pp;
        if (e->hash == h && e->keylen == keylen && memcmp(e->data, key, keylen) == 0)
            break;
    }
    return pp;
}

static void remove_at(strata__table *t, strata__entry **pp)
{
    strata__entry *e = *pp;
    *pp = e->chain;
    lru_unlink(t, e);
    t->bytes -= strata__table_cost(e->keylen, (size_t)e->vallen + e->extra);
    t->count--;
    free(e);
}

static void grow(strata__table *t)
{
    size_t i, n = t->nbuckets * 2;
    strata__entry **b = calloc(n, sizeof *b);
    if (b == NULL)
        return; /* longer chains, still correct */
    for (i = 0; i < t->nbuckets; i++) {
        strata__entry *e = t->buckets[i], *next;
        for (; e; e = next) {
            next = e->chain;
            e->chain = b[(e->hash >> 7) & (n - 1)];
            b[(e->hash >> 7) & (n - 1)] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

strata__entry *strata__table_get(strata__table *t, uint64_t hash, const char *key, size_t keylen,
                                 int64_t now)
{
    strata__entry **pp = find_slot(t, hash, key, keylen), *e = *pp;
    if (e == NULL)
        return NULL;
    if (e->expires_ms && e->expires_ms <= now) {
        remove_at(t, pp);
        return NULL;
    }
    if (t->lru_head != e) {
        lru_unlink(t, e);
        lru_push_front(t, e);
    }
    return e;
}

strata__entry *strata__table_victim(strata__table *t, size_t cost)
{
    while (t->lru_tail && (t->bytes + cost > t->max_bytes || t->count + 1 > t->max_entries)) {
        strata__entry *victim = t->lru_tail;
        if (!victim->referenced || victim == t->lru_head)
            return victim;
        victim->referenced = 0;
        lru_unlink(t, victim);
        lru_push_front(t, victim);
    }
    return NULL;
}

int strata__table_put(strata__table *t, uint64_t hash, const char *key, size_t keylen,
                      const char *val, size_t vallen, int64_t expires_ms, strata__entry **out)
{
    return strata__table_put_extra(t, hash, key, keylen, val, vallen, 0, expires_ms, out);
}

int strata__table_put_extra(strata__table *t, uint64_t hash, const char *key, size_t keylen,
                            const char *val, size_t vallen, unsigned char extra, int64_t expires_ms,
                            strata__entry **out)
{
    strata__entry **pp, *e;
    size_t cost = strata__table_cost(keylen, vallen + extra);
    if (keylen > STRATA__TABLE_MAX_KEY || vallen > STRATA__TABLE_MAX_VALUE || cost > t->max_bytes)
        return STRATA_ETOOBIG;
    pp = find_slot(t, hash, key, keylen);
    if (*pp)
        remove_at(t, pp);
    while (t->lru_tail && (t->bytes + cost > t->max_bytes || t->count + 1 > t->max_entries)) {
        strata__entry *victim = t->lru_tail;
        if (victim->referenced && victim != t->lru_head) {
            victim->referenced = 0; /* read since it last came round: keep it once more */
            lru_unlink(t, victim);
            lru_push_front(t, victim);
            continue;
        }
        remove_at(t, find_slot(t, victim->hash, victim->data, victim->keylen));
        t->evictions++;
    }
    e = malloc(cost);
    if (e == NULL)
        return STRATA_ENOMEM;
    e->hash = hash;
    e->expires_ms = expires_ms;
    e->aux = e->aux2 = 0;
    e->flags = 0;
    e->referenced = 0;
    e->put_id = 0;
    e->check_off = 0;
    e->extra = extra;
    e->keylen = (uint16_t)keylen;
    e->vallen = (uint32_t)vallen;
    memcpy(e->data, key, keylen);
    if (vallen)
        memcpy(e->data + keylen, val, vallen);
    pp = &t->buckets[(hash >> 7) & (t->nbuckets - 1)];
    e->chain = *pp;
    *pp = e;
    lru_push_front(t, e);
    t->bytes += cost;
    if (++t->count > t->nbuckets * 2)
        grow(t);
    if (out)
        *out = e;
    return 0;
}

int strata__table_del(strata__table *t, uint64_t hash, const char *key, size_t keylen, int64_t now)
{
    strata__entry **pp = find_slot(t, hash, key, keylen);
    int live;
    if (*pp == NULL)
        return STRATA_MISS;
    live = !((*pp)->expires_ms && (*pp)->expires_ms <= now);
    remove_at(t, pp);
    return live ? 0 : STRATA_MISS;
}
