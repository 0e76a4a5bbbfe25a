/*
 * A single-threaded hash table with TTLs, LRU order and byte/entry bounds.
 * The caller shards it and holds a lock per shard: the memory backend and the
 * L1 tier are both built on it.
 */
#ifndef STRATA_TABLE_H
#define STRATA_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/key.h"

/* 72 bytes before the key: every byte here is counted against max_bytes
 * for every entry (with 100-byte values and short keys the header was a
 * third of L1's room at 112 bytes), so lengths are as narrow as the limits
 * allow and what only some entries need lives in their `extra` bytes. */
typedef struct strata__entry {
    struct strata__entry *chain;
    struct strata__entry *lru_prev, *lru_next; /* head = most recently used */
    uint64_t hash;
    int64_t expires_ms;  /* on the caller's clock; 0 = never */
    int64_t aux, aux2;   /* caller's metadata (L1: fresh-until, serve-until) */
    uint32_t vallen;     /* STRATA__TABLE_MAX_VALUE at most */
    uint32_t put_id;     /* caller's: tells a replaced entry from its successor */
    uint16_t keylen;     /* STRATA__TABLE_MAX_KEY at most */
    uint16_t check_off;  /* caller's metadata (L1: where a tagged entry's payload starts) */
    unsigned char flags; /* caller's metadata */
    unsigned char referenced; /* raised by readers that do not move it (atomic); see put */
    unsigned char extra; /* bytes after the value, the caller's (STRATA__ENTRY_EXTRA) */
    char data[];         /* key bytes, then value bytes, then `extra` bytes */
} strata__entry;

#define STRATA__TABLE_MAX_KEY UINT16_MAX
#define STRATA__TABLE_MAX_VALUE UINT32_MAX
#define STRATA__ENTRY_VALUE(e) ((e)->data + (e)->keylen)
#define STRATA__ENTRY_EXTRA(e) ((e)->data + (e)->keylen + (e)->vallen) /* unaligned: memcpy */

typedef struct strata__table {
    strata__entry **buckets;
    size_t nbuckets, count, bytes;
    size_t max_bytes, max_entries;
    uint64_t evictions;
    strata__entry *lru_head, *lru_tail;
} strata__table;

int  strata__table_init(strata__table *t, size_t max_bytes, size_t max_entries);
void strata__table_destroy(strata__table *t);
void strata__table_clear(strata__table *t);

/* Bytes an entry costs against max_bytes: its whole allocation (header,
 * key, value, extra bytes). */
size_t strata__table_cost(size_t keylen, size_t vallen);

/* A live entry (expired ones are dropped on the way), moved to the LRU head. */
strata__entry *strata__table_get(strata__table *t, uint64_t hash, const char *key, size_t keylen,
                                 int64_t now);

/* The entry for key, expired or not, touching nothing: for readers that run
 * beside each other (they mark e->referenced instead of moving it). Inline:
 * it is most of an L1 hit. */
static inline strata__entry *strata__table_find(const strata__table *t, uint64_t hash, const char *key,
                                                size_t keylen)
{
    strata__entry *e = t->buckets[(hash >> 7) & (t->nbuckets - 1)];
    for (; e; e = e->chain)
        if (e->hash == hash && e->keylen == keylen && strata__key_bytes_equal(e->data, key, keylen))
            return e;
    return NULL;
}

/* Inserts or replaces, evicting from the LRU tail to stay within bounds (a
 * tail entry marked referenced gets a second chance: unmarked, moved to the
 * head).
 * 0 (and *out if non-NULL), STRATA_ETOOBIG if it can never fit, STRATA_ENOMEM. */
int strata__table_put(strata__table *t, uint64_t hash, const char *key, size_t keylen,
                      const char *val, size_t vallen, int64_t expires_ms, strata__entry **out);
/* The same with `extra` bytes after the value for the caller (uninitialised),
 * counted in the entry's cost. */
int strata__table_put_extra(strata__table *t, uint64_t hash, const char *key, size_t keylen,
                            const char *val, size_t vallen, unsigned char extra, int64_t expires_ms,
                            strata__entry **out);

/* The entry a put of cost bytes would evict first (after giving referenced
 * tail entries their second chance, as put does), or NULL when it fits. */
strata__entry *strata__table_victim(strata__table *t, size_t cost);

/* 0 when a live entry was removed, STRATA_MISS otherwise. */
int strata__table_del(strata__table *t, uint64_t hash, const char *key, size_t keylen, int64_t now);

#endif
