/*
 * Resumable operations (docs/SANS-IO.md): the engine's sequences as state
 * machines over the Redis protocol layer. op.c is the driver-facing part
 * (next / feed / io_failed / result); op_read.c the lookup and get_many
 * sequences; op_write.c set, delete, tag bumps, connection setup and the
 * subscription. A step never blocks: it either builds the next request or
 * finishes the op.
 */
#ifndef STRATA_OP_H
#define STRATA_OP_H

#include "cache.h"
#include "backend/redis/protocol.h"
#include "backend/redis/watch.h"

enum strata__op_kind {
    STRATA__OP_LOOKUP = 1,
    STRATA__OP_GET_MANY,
    STRATA__OP_SET,
    STRATA__OP_DELETE,
    STRATA__OP_TAG,
    STRATA__OP_HELLO,
    STRATA__OP_SUBSCRIBE,
    STRATA__OP_TOUCH,
    STRATA__OP_WRITE_BEHIND
};

/* A tag-version read in progress (envelopes to verify, or a stamp to take).
 * Up to STRATA__OP_TAGS_INLINE names live in the op itself: a read's usual
 * check is the namespace generation alone. */
#define STRATA__OP_TAGS_INLINE 4
typedef struct strata__op_tags {
    size_t n;                   /* names */
    const char **names;
    size_t *lens;
    uint64_t *versions;
    size_t *missing;            /* indices not in the version cache */
    size_t nmissing;
    int creating;               /* second exchange: SET NX + INCRBY 0 for absent counters */
    size_t *absent;
    size_t nabsent;
    const char *in_names[STRATA__OP_TAGS_INLINE];
    size_t in_lens[STRATA__OP_TAGS_INLINE];
    uint64_t in_versions[STRATA__OP_TAGS_INLINE];
    size_t in_missing[STRATA__OP_TAGS_INLINE], in_absent[STRATA__OP_TAGS_INLINE];
    int refetched;              /* versions read again after a stamp showed one behind */
} strata__op_tags;

/* An idle op in its cache's pool (op_pool.c): the buffers it keeps. While
 * idle, this is all of the op that is not poisoned under AddressSanitizer
 * (LeakSanitizer does not look into poisoned memory for pointers). */
typedef struct strata__op_idle {
    strata_op *next;
    strata__bytes req, raw;
    redisReader *reader;
    char *keymem;
    size_t keycap;
    void *vbuf;
    size_t vcap;
} strata__op_idle;

struct strata_op {
    strata__op_idle idle;       /* only while in the pool */
    struct strata__op_pool *pool; /* where it goes back to (outlives the cache) */
    strata_cache *c;
    int kind;
    int state;                  /* the kind's own step */
    int done, rc;
    char *err;                  /* the error's message (NULL until one) */
    unsigned int server;        /* where the key lives (route.c); 0 for keyless ops */
    const char *who;            /* "redis host:port" for messages */

    /* The current exchange. */
    strata__redis_req req;
    strata__redis_replies rs;
    int pending;                /* request built, replies awaited */
    int handed;                 /* its bytes went to the driver */
    int64_t timeout_ms;
    int64_t deadline_ms;        /* monotonic: handed + timeout */
    uint64_t exch_t0_ns;
    int64_t wait_ms;            /* > 0: the driver is asked to WAIT */
    int (*on_replies)(strata_op *op);          /* the exchange's replies are in */
    int (*on_failed)(strata_op *op, int code); /* the exchange failed (rc = its code) */

    /* Keys. */
    char *key, *fk, *lk;        /* user key, "<ns>:<key>", "<ns>#L:<key>" (in keymem) */
    size_t keylen, fklen, lklen;
    char *keymem;
    size_t keycap;
    strata__key k;              /* the key's descriptor (policy/key.h): hashed once */

    /* Read state. */
    strata_value value;         /* what the result hands out */
    strata__bytes raw;          /* the backend bytes env points into */
    strata__envelope env;
    uint64_t epoch;
    uint64_t get_t0_ns;         /* past L1: the get histogram */
    int read_rc;
    int lease, wait, use_sha;
    uint64_t token;
    int have_lease;
    int64_t wait_deadline, backoff;
    uint64_t started_ns;        /* for the fill's cost */
    strata__tagstamp *stamp;    /* fill stamps (op options' tags) */
    char *stamp_mem;            /* lookup options' tags: names back to back */
    size_t *stamp_lens, nstamp;
    strata__op_tags tags;
    int (*after_tags)(strata_op *op);
    strata_op_meta meta;        /* the entry the result served or the fill stored */
    int has_meta;

    /* Writes. */
    strata__bytes enc;
    int negative, tagged;
    uint64_t ns;                /* the namespace generation the write stamps (tags.c) */
    int64_t now_ms, fresh_until, backend_ttl;
    char *val;                  /* set: the raw value (a copy) */
    size_t vallen;
    int64_t counter;

    /* get_many */
    size_t n, nb;
    strata_value *outs;
    int *results;
    char **fks;
    size_t *fklens, *idx;
    uint64_t *epochs;
    strata__bytes *raws;
    int *rcs;
    strata__envelope *envs, **decoded;

    /* subscribe */
    int subscribed, ping_out;
    char chan[STRATA__INV_CHANNEL_MAX];
    size_t chanlen;
    char origin[STRATA__INV_ORIGIN_LEN + 1];
};

/* op.c: starting an exchange (the request is in op->req) and finishing.
 * exchange_get: the request is one GET whose string goes into op->raw. */
int  strata__op_exchange(strata_op *op, int (*on_replies)(strata_op *), int (*on_failed)(strata_op *, int));
int  strata__op_exchange_get(strata_op *op, int (*on_replies)(strata_op *), int (*on_failed)(strata_op *, int));
int  strata__op_finish(strata_op *op, int rc);
int  strata__op_new(strata_op **out, strata_cache *c, int kind, const char *key, size_t keylen);
int  strata__op_options(strata_op *op, const strata_op_options *opts);
/* The entry's metadata for strata_op_meta_get: from an envelope (exact), or
 * from a value served by L1 (its ttl only). */
void strata__op_meta_env(strata_op_meta *m, const strata__envelope *e);
void strata__op_meta_l1(strata_op_meta *m, const strata_value *v, int64_t now_ms);

/* op_read.c: tag versions for op->tags.names, then op->after_tags. alloc
 * makes room for n names (zeroed). */
int  strata__op_tags_start(strata_op *op, int (*after)(strata_op *));
int  strata__op_tags_alloc(strata__op_tags *t, size_t n);
/* The user tags of n envelopes (NULL skipped) then the namespace generation
 * into op->tags; *total = 0 when there is no envelope. */
int  strata__op_tags_of(strata_op *op, size_t n, strata__envelope *const *envs, size_t *total);
void strata__op_tags_free(strata__op_tags *t);

/* op_pool.c: a cache's idle ops, reused with their buffers (a mutex: ops of
 * one cache may be begun and freed on any thread). new_op: an idle op reset
 * to zero but for its buffers, else a fresh one (NULL without memory); it
 * holds a reference on the pool. free_op: back to the pool, or freed when
 * the pool is full or its cache is gone. */
strata_op *strata__op_pool_new_op(strata_cache *c);
void strata__op_pool_free_op(strata_op *op);
/* Runs drop(op's cache, op's key) unless the cache is gone (its close waits). */
void strata__op_pool_settle(strata_op *op, uint64_t (*drop)(strata_cache *c, const strata__key *k));
/* op.c: frees an op whose per-call state is already released. */
void strata__op_destroy(strata_op *op);

#endif
