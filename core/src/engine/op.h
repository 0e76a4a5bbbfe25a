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
    STRATA__OP_SUBSCRIBE
};

/* A tag-version read in progress (envelopes to verify, or a stamp to take). */
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
    int refetched;              /* versions read again after a stamp showed one behind */
} strata__op_tags;

struct strata_op {
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

/* op.c: starting an exchange (the request is in op->req) and finishing. */
int  strata__op_exchange(strata_op *op, int (*on_replies)(strata_op *), int (*on_failed)(strata_op *, int));
int  strata__op_finish(strata_op *op, int rc);
int  strata__op_new(strata_op **out, strata_cache *c, int kind, const char *key, size_t keylen);
int  strata__op_options(strata_op *op, const strata_op_options *opts);
/* The entry's metadata for strata_op_meta_get: from an envelope (exact), or
 * from a value served by L1 (its ttl only). */
void strata__op_meta_env(strata_op_meta *m, const strata__envelope *e);
void strata__op_meta_l1(strata_op_meta *m, const strata_value *v, int64_t now_ms);

/* op_read.c: tag versions for op->tags.names, then op->after_tags. */
int  strata__op_tags_start(strata_op *op, int (*after)(strata_op *));
void strata__op_tags_free(strata__op_tags *t);

#endif
