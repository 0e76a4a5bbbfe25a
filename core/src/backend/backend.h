/*
 * The backend vtable: byte storage with deadlines, plus the lease primitives
 * the engine builds stampede protection on. A backend never decides freshness:
 * it stores opaque bytes (envelopes) under full keys (namespace applied).
 *
 * Return conventions: 0 = done / found; STRATA_MISS = no such key;
 * negative = STRATA_E* with strata__error() already called.
 */
#ifndef STRATA_BACKEND_H
#define STRATA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "stratacache.h"
#include "config.h"

/* Internal only: the server answered with an error (a WRONGTYPE key, a
 * non-numeric counter, an argument out of range). It is that call's failure,
 * not an outage: strata__backend_result keeps the breaker closed and turns
 * it into STRATA_EBACKEND, so callers never see this value. Connection
 * failures and timeouts stay STRATA_EBACKEND / STRATA_ETIMEOUT. */
#define STRATA__EREFUSED (-1000)

/* A growable, library-owned byte buffer. */
typedef struct strata__bytes {
    char *data;
    size_t len;
    size_t cap;
} strata__bytes;

int  strata__bytes_reserve(strata__bytes *b, size_t cap);
int  strata__bytes_set(strata__bytes *b, const void *data, size_t len);
void strata__bytes_free(strata__bytes *b);

typedef struct strata__backend strata__backend;

/* Write-behind records (docs/FORMAT.md "Write-behind journal"). */
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

/* One write_behind item for wb_append. */
typedef struct strata__wb_item {
    const char *fk; size_t fklen;       /* full value key */
    const char *env; size_t envlen;     /* the envelope to SET */
    int64_t ttl_ms;                     /* backend TTL */
    const char *key; size_t keylen;     /* user key for the record */
    const char *val; size_t vallen;     /* raw value for the record */
    int rc;                             /* out: 0 or an error */
} strata__wb_item;

/* Operator tools (engine/inspect.c, engine/keys.c, engine/doctor.c,
 * engine/wb_dead.c): read-only views and dead-letter housekeeping. */
typedef struct strata__peek {
    int found;                  /* the value key exists (val holds its bytes) */
    strata__bytes val;
    int64_t ttl_ms;             /* -1 no expiry, -2 unknown */
    int lease;                  /* a lease key exists */
    char lease_holder[STRATA_INSPECT_HOLDER_MAX];
    int64_t lease_ttl_ms;       /* -2 unknown */
} strata__peek;

typedef struct strata__scan_item {
    strata__bytes key;          /* user key (namespace stripped) */
    int64_t size, ttl_ms;       /* -2: gone meanwhile or unknown */
} strata__scan_item;

typedef struct strata__dead_letter {
    char id[48];                /* redis stream id; journal file: record number */
    strata__bytes key, val, error;
    int64_t given_up_ms;
    unsigned int attempts;
} strata__dead_letter;

void strata__scan_items_free(strata__scan_item *items, size_t n);
void strata__dead_letters_free(strata__dead_letter *d, size_t n);

typedef struct strata__backend_ops {
    const char *name;

    void (*close)(strata__backend *b);

    /* 0 and the bytes in out, or STRATA_MISS. */
    int (*get)(strata__backend *b, const char *key, size_t keylen, strata__bytes *out);

    /* One round trip per server. rcs[i] = 0 (outs[i] filled) or STRATA_MISS.
     * Returns 0, or an error when the call as a whole failed. */
    int (*get_many)(strata__backend *b, size_t n, const char *const *keys,
                    const size_t *keylens, strata__bytes *outs, int *rcs);

    /* Unconditional write; kills any lease on the key. ttl_ms > 0. */
    int (*set)(strata__backend *b, const char *key, size_t keylen,
               const char *val, size_t vallen, int64_t ttl_ms);

    /* Pipelined writes; returns 0 or the first error. */
    int (*set_many)(strata__backend *b, size_t n, const char *const *keys,
                    const size_t *keylens, const char *const *vals,
                    const size_t *vallens, const int64_t *ttls_ms);

    /* 0 deleted or STRATA_MISS; kills any lease on the key either way, so a
     * loader that started before the delete can never fill. */
    int (*del)(strata__backend *b, const char *key, size_t keylen);

    /* 0 or STRATA_MISS. */
    int (*touch)(strata__backend *b, const char *key, size_t keylen, int64_t ttl_ms);

    /* Try to take the load lease on key with `token` for lease_ttl_ms.
     * 0 = won (*guard set to whatever lease_fill needs to detect a later write);
     * STRATA_MISS_WAIT = another holder (*wait_ms = its remaining lease time). */
    int (*lease_acquire)(strata__backend *b, const char *key, size_t keylen,
                         uint64_t token, int64_t lease_ttl_ms,
                         uint64_t *guard, int64_t *wait_ms);

    /* Store val only if the lease is still ours and no write or delete happened
     * since lease_acquire; release the lease. 0 = stored; STRATA_ELEASE = refused. */
    int (*lease_fill)(strata__backend *b, const char *key, size_t keylen,
                      uint64_t token, uint64_t guard,
                      const char *val, size_t vallen, int64_t ttl_ms);

    /* Give the lease back if still ours (0 either way unless the backend failed). */
    int (*lease_release)(strata__backend *b, const char *key, size_t keylen, uint64_t token);

    /* Atomic counter (created at 0 when absent, no expiry): *out = new value. */
    int (*incr)(strata__backend *b, const char *key, size_t keylen,
                int64_t delta, int64_t *out);

    /* Largest value the backend stores (0 = unbounded); checked by the engine. */
    size_t (*max_value_size)(strata__backend *b);

    /* Tag version counter (docs/TAGS.md): creates key holding `init` (no
     * expiry) when absent, then adds delta (0 = just read); *out = the value
     * after. Stored as decimal text, so get_many reads it back as such. */
    int (*counter)(strata__backend *b, const char *key, size_t keylen,
                   int64_t init, int64_t delta, int64_t *out);

    /* Write-behind on a server-side journal (redis streams); NULL elsewhere.
     * wb_append: per item, atomically SET the value, kill the lease and append
     * the record. *backlog = the journal's length afterwards. */
    int (*wb_append)(strata__backend *b, size_t n, strata__wb_item *items, int64_t now_ms,
                     uint64_t *backlog);
    /* Records for `consumer`: new ones, then (claim_idle_ms > 0) ones idle that
     * long under any consumer, scanning from cursor (updated; "0-0" restarts). */
    int (*wb_read)(strata__backend *b, const char *consumer, size_t max, int64_t claim_idle_ms,
                   char *cursor, size_t cursorsize, strata__wb_record **recs, size_t *n);
    /* Delivered: acknowledge and delete the records, given per user key:
     * counts[i] ids (consecutive in ids) are records of keys[i]. */
    int (*wb_ack)(strata__backend *b, size_t nkeys, const char *const *keys, const size_t *keylens,
                  const size_t *counts, const strata__wb_id *ids);
    /* Given up: one dead-letter record (latest value), then ack the ids. */
    int (*wb_dead)(strata__backend *b, const char *key, size_t keylen, const char *val,
                   size_t vallen, size_t n, const strata__wb_id *ids, unsigned int attempts,
                   const char *message);
    /* Records in the journal (delivered or not, not yet acknowledged). */
    int (*wb_backlog)(strata__backend *b, uint64_t *out);
    /* The token of each user key's latest record (0 = unknown): a record
     * with another token is superseded and is acknowledged without delivery. */
    int (*wb_latest)(strata__backend *b, size_t n, const char *const *keys, const size_t *keylens,
                     uint64_t *tokens);
    /* Dead letters beyond the newest max (0 = no limit) or older than
     * max_age_ms before now_ms (wall; 0 = no limit) are deleted;
     * *trimmed = how many. */
    int (*wb_dead_trim)(strata__backend *b, uint64_t max, int64_t max_age_ms, int64_t now_ms,
                        uint64_t *trimmed);
    /* Operator tools; NULL where the backend cannot (the engine then answers
     * STRATA_ENOTSUP or does without). They take the cache's config for the
     * namespace and server. peek: the value key's raw bytes and TTL, and the
     * lease, without side effects. */
    int (*peek)(strata__backend *b, const strata__config *cfg, const char *fk, size_t fklen,
                strata__peek *out);
    /* One page of value keys matching the user-key glob (NULL = all); cursor
     * in/out as text, "0" starts and ends. */
    int (*scan)(strata__backend *b, const strata__config *cfg, char *cursor, size_t cursorsize,
                const char *match, size_t count, strata__scan_item **items, size_t *n);
    /* Server facts and live checks (fields the backend does not know stay -1). */
    int (*server_info)(strata__backend *b, const strata__config *cfg, strata_server_info *out);
    /* Server-side journal (redis streams) only, like wb_append. */
    int (*wb_status)(strata__backend *b, const strata__config *cfg, strata_wb_status *out);
    int (*wb_dead_list)(strata__backend *b, const strata__config *cfg, size_t max,
                        strata__dead_letter **out, size_t *n);
    /* Atomically: if d is still a dead letter, remove it and (replay) append
     * it to the journal as the key's latest write. 1 done, 0 already gone. */
    int (*wb_dead_take)(strata__backend *b, const strata__config *cfg, const strata__dead_letter *d,
                        int replay, int64_t now_ms);

    /* ---- conditional writes, batch delete, leases as locks (docs/FRAMEWORKS.md) ---- */
    /* Stores val only where key holds nothing (a memcached tombstone counts as
     * nothing); kills any lease on the key when it stores. 0 stored, or
     * STRATA_EXISTS (whatever bytes are there: the engine judges them). */
    int (*add)(strata__backend *b, const char *key, size_t keylen, const char *val, size_t vallen,
               int64_t ttl_ms);
    /* Replaces the value only while it is still exactly old[0..oldlen), in one
     * atomic step; kills any lease on the key when it stores. 0 swapped;
     * STRATA_MISS when absent; STRATA_EXISTS when it holds other bytes. */
    int (*cas)(strata__backend *b, const char *key, size_t keylen, const char *old, size_t oldlen,
               const char *val, size_t vallen, int64_t ttl_ms);
    /* Deletes n keys and their leases, one round trip per server where the
     * protocol allows; deleted[i] = 1 when key i held a value. 0 or an error. */
    int (*del_many)(strata__backend *b, size_t n, const char *const *keys, const size_t *keylens,
                    int *deleted);
    /* The lease on key used as a lock. token != 0: renew it for ttl_ms > 0, or
     * release it when ttl_ms == 0, only while token holds it: 0, or
     * STRATA_ELEASE when it does not. token == 0: 0 when anybody holds it,
     * STRATA_MISS when nobody does. */
    int (*lease_own)(strata__backend *b, const char *key, size_t keylen, uint64_t token,
                     int64_t ttl_ms);
    /* Tells the L1s of this namespace in other processes to drop everything
     * (strata_clear); NULL where the backend carries no invalidations. */
    int (*publish_flush)(strata__backend *b);
} strata__backend_ops;

/* A backend TTL at or above this never expires (STRATA_TTL_FOREVER): no PX
 * on redis, exptime 0 on memcached. Far enough that now + it cannot overflow. */
#define STRATA__TTL_NEVER ((int64_t)1 << 61)

struct strata__backend {
    const strata__backend_ops *ops;
};

/* Constructors: each validates its part of the config and may defer
 * connecting (a cache can be created while its server is down). */
int strata__backend_memory_open(strata__backend **out, const strata__config *cfg);
int strata__backend_redis_open(strata__backend **out, const strata__config *cfg);
int strata__backend_memcached_open(strata__backend **out, const strata__config *cfg);

#endif
