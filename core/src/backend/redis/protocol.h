/*
 * The Redis conversation without a socket: each backend operation as request
 * bytes (hiredis's formatter) and as the meaning of its replies (hiredis's
 * reader builds them). Both the blocking pool and the resumable operations of
 * the engine speak through this file; neither knows a command.
 *
 * Key layout per namespace <ns>: value "<ns>:<key>", lease "<ns>#L:<key>"
 * (a cluster's: strata__redis_cluster_lease_key),
 * tag counter "<ns>#T:<tag>", invalidation channel "__strata__:inv:<db>:<ns>"
 * with payload <origin><key> (docs/L1-COHERENCE.md).
 */
#ifndef STRATA_REDIS_PROTOCOL_H
#define STRATA_REDIS_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "common/bytes.h"

/* Request bytes for one exchange and how many replies they will produce. */
typedef struct strata__redis_req {
    strata__bytes buf;
    unsigned int nreplies;
} strata__redis_req;

void strata__redis_req_reset(strata__redis_req *q);
/* Frees the non-NULL of n replies and clears their places (inline: every call's path). */
static inline void strata__redis_replies_free(redisReply **r, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (r[i]) {
            freeReplyObject(r[i]);
            r[i] = NULL;
        }
}
void strata__redis_req_free(strata__redis_req *q);
/* Appends one command; 0 or STRATA_ENOMEM. */
int  strata__redis_cmd(strata__redis_req *q, int argc, const char **argv, const size_t *lens);

/* A command without arguments (MULTI, EXEC, PING). */
int  strata__redis_cmd1(strata__redis_req *q, const char *cmd);
size_t strata__redis_fmt_i64(char *buf, size_t size, int64_t v);
size_t strata__redis_fmt_token(char *buf, size_t size, uint64_t token); /* 16 hex digits */

/* "<ns>#L:<ukey>" into buf (size >= nslen + 3 + ulen); returns its length. */
size_t strata__redis_lease_key(const char *ns, size_t nslen, const char *ukey, size_t ulen, char *buf);

/* On a cluster (docs/FORMAT.md, cluster key layout) the lease shares its
 * value's slot: the single-node lease key when the value key fk has a hash
 * tag of its own (the user's tag decides the slot), else "<ns>#L:{<fk>}"
 * (this function; buf size >= nslen + fklen + 5), which hashes all of fk as
 * Redis does for fk. A fk with no tag but a '}' has no such lease key (refused). */
size_t strata__redis_cluster_lease_key(const char *ns, size_t nslen, const char *fk, size_t fklen, char *buf);

/* Scripts run by SHA first; NOSCRIPT makes the caller send the same with
 * use_sha 0 (EVAL, which also loads it). */
enum { STRATA__SCRIPT_FILL = 0, STRATA__SCRIPT_RELEASE, STRATA__SCRIPT_TAKEOVER, STRATA__SCRIPT_ADD, STRATA__SCRIPT_CAS,
       STRATA__SCRIPT_OWN, STRATA__SCRIPT_COUNT };
const char *strata__redis_script_sha(int which);
const char *strata__redis_script_text(int which);
/* EVALSHA (use_sha) or EVAL of a script with nkeys keys among args (1 reply). */
int strata__rq_script(strata__redis_req *q, int use_sha, int which, int nkeys, int argc, const char **args,
                      const size_t *arglens);

/* ---- requests (each says in a comment how many replies it adds) ---- */

int strata__rq_get(strata__redis_req *q, const char *fk, size_t fklen);                 /* 1 */
int strata__rq_mget(strata__redis_req *q, size_t n, const char *const *fks,
                    const size_t *fklens);                                               /* 1 */
/* SET lease NX PX ttl, PTTL lease, GET lease (what holds it). */
int strata__rq_lease_take(strata__redis_req *q, const char *lk, size_t lklen, uint64_t token,
                          int64_t ttl_ms);                                               /* 3 */
#define STRATA__LEASE_TAKE_REPLIES 3
/* Takes a broken lease over while it still holds `held` (the value seen,
 * "" when it was not a string): of several callers exactly one wins. */
int strata__rq_lease_takeover(strata__redis_req *q, int use_sha, const char *lk, size_t lklen, uint64_t token,
                              int64_t ttl_ms, const char *held, size_t heldlen);         /* 1 */
/* Store val under fk only while the lease holds token; release it. */
int strata__rq_lease_fill(strata__redis_req *q, int use_sha, const char *fk, size_t fklen,
                          const char *lk, size_t lklen, uint64_t token, const char *val,
                          size_t vallen, int64_t ttl_ms);                                /* 1 */
int strata__rq_lease_release(strata__redis_req *q, int use_sha, const char *lk, size_t lklen,
                             uint64_t token);                                            /* 1 */
/* MULTI, DEL lease, SET fk val PX ttl, PUBLISH chan payload, EXEC. */
int strata__rq_write(strata__redis_req *q, const char *fk, size_t fklen, const char *lk,
                     size_t lklen, const char *val, size_t vallen, int64_t ttl_ms,
                     const char *chan, size_t chanlen, const char *payload, size_t paylen); /* 5 */
/* MULTI, DEL fk, DEL lease, PUBLISH chan payload, EXEC. */
int strata__rq_delete(strata__redis_req *q, const char *fk, size_t fklen, const char *lk,
                      size_t lklen, const char *chan, size_t chanlen, const char *payload,
                      size_t paylen);                                                    /* 5 */
/* SET key init NX, INCRBY key delta. */
int strata__rq_counter(strata__redis_req *q, const char *key, size_t keylen, int64_t init,
                       int64_t delta);                                                   /* 2 */
int strata__rq_incr(strata__redis_req *q, const char *key, size_t keylen, int64_t delta); /* 1 */
int strata__rq_touch(strata__redis_req *q, const char *key, size_t keylen, int64_t ttl_ms); /* 1 */
/* AUTH [user] password when password is non-empty, SELECT db when db != 0. */
int strata__rq_hello(strata__redis_req *q, const char *user, const char *password, int db); /* 0-2 */
int strata__rq_publish(strata__redis_req *q, const char *chan, size_t chanlen, const char *payload,
                       size_t paylen);                                                  /* 1 */
int strata__rq_subscribe(strata__redis_req *q, const char *chan, size_t chanlen);       /* 1 */
int strata__rq_ping(strata__redis_req *q);                                               /* 1 */

/* ---- replies: `who` names the server in messages ("redis h:p") ---- */

/* A server error or an unusable reply type, with a message: STRATA__EREFUSED
 * for an error reply that refuses this command (WRONGTYPE, ...), else
 * STRATA_EBACKEND (LOADING, BUSY, ... and replies of the wrong type). */
int strata__rp_fail(const char *who, const redisReply *r, const char *what);
int strata__rp_is_noscript(const redisReply *r);
int strata__rp_is_status(const redisReply *r, const char *text);
/* MULTI's +OK, nq +QUEUED, then EXEC's array of nq results without errors. */
int strata__rp_multi(const char *who, redisReply *const *r, size_t nq, const char *what);

/* 0 and the bytes, or STRATA_MISS (nil). */
int strata__rp_get(const char *who, const redisReply *r, strata__bytes *out);
/* outs[i]/rcs[i] per key; 0 or an error for the whole reply. */
int strata__rp_mget(const char *who, const redisReply *r, size_t n, strata__bytes *outs, int *rcs);
/* 0 won, or STRATA_MISS_WAIT and *wait_ms (>= 1), or STRATA__LEASE_BROKEN:
 * the holder is no lease of ours (no expiry, longer than any of ours, not a
 * token): take it over with rq_lease_takeover, held/heldlen what it holds. */
#define STRATA__LEASE_BROKEN 100
int strata__rp_lease_take(const char *who, redisReply *const *r, int64_t *wait_ms, const char **held,
                          size_t *heldlen);
/* 0 taken over, or STRATA_MISS_WAIT (another caller repaired it first). */
int strata__rp_lease_takeover(const char *who, const redisReply *r, int64_t *wait_ms);
/* 0 stored, or STRATA_ELEASE. */
int strata__rp_lease_fill(const char *who, const redisReply *r, const char *key, size_t keylen);
int strata__rp_lease_release(const char *who, const redisReply *r);
/* The 5 replies of rq_write: 0. */
int strata__rp_write(const char *who, redisReply *const *r);
/* The 5 replies of rq_delete: 0 deleted, STRATA_MISS absent. */
int strata__rp_delete(const char *who, redisReply *const *r);
/* *out = the counter's value after. */
int strata__rp_counter(const char *who, redisReply *const *r, int64_t *out);
int strata__rp_integer(const char *who, const redisReply *r, const char *what, int64_t *out);
/* n replies of rq_hello: 0, or EBACKEND naming the refusal. */
int strata__rp_hello(const char *who, redisReply *const *r, unsigned int n);

/* A reply heard on a subscribed connection. */
typedef enum strata__sub_kind {
    STRATA__SUB_OTHER = 0,      /* nothing to do */
    STRATA__SUB_SUBSCRIBED,     /* the confirmation */
    STRATA__SUB_PONG,
    STRATA__SUB_EVICT,          /* key, keylen: a user key another writer changed */
    STRATA__SUB_OWN,            /* this origin's own write (key given too) */
    STRATA__SUB_FLUSH           /* unreadable payload: drop everything */
} strata__sub_kind;
int strata__rp_sub_message(const redisReply *r, const char *chan, size_t chanlen,
                           const char *origin, size_t originlen, const char **key, size_t *keylen);

/* ---- a sans-I/O reply collector: feed bytes in any split ---- */

#define STRATA__REDIS_MAX_REPLIES 8

typedef struct strata__redis_replies {
    redisReader *reader;
    redisReply **r;             /* inline_r, or allocated for long pipelines */
    redisReply *inline_r[STRATA__REDIS_MAX_REPLIES];
    unsigned int want, got, cap;
    /* A lone GET (strata__replies_expect_get): its bulk string is parsed
     * straight into `bulk`, with no reader and no reply object (the read hot
     * path); any other reply (an error, a wrong type) goes to the reader from
     * its first byte on, as every other exchange's replies do. */
    strata__bytes *bulk;
    int bulk_state, bulk_rc;
    uint64_t bulk_len;          /* the length line's value, then the body bytes still to come */
    unsigned int bulk_digits;
} strata__redis_replies;

/* Starts collecting want replies (frees earlier ones): 0 or STRATA_ENOMEM. */
int  strata__replies_expect(strata__redis_replies *rs, unsigned int want);
/* One GET's reply, its string straight into *into (len 0 first): 0 or STRATA_ENOMEM. */
int  strata__replies_expect_get(strata__redis_replies *rs, strata__bytes *into);
/* That reply's meaning once complete: as strata__rp_get (0 and the bytes in
 * the buffer given to expect_get, STRATA_MISS, or the error). */
int  strata__replies_get(const strata__redis_replies *rs, const char *who, strata__bytes *into);
/* Feeds bytes; *used = how many belonged to these replies. 0 complete, 1 more
 * needed, STRATA_EBACKEND (not RESP) or STRATA_ENOMEM. */
int  strata__replies_feed(strata__redis_replies *rs, const char *data, size_t len, size_t *used,
                          const char *who);
void strata__replies_clear(strata__redis_replies *rs);
void strata__replies_free(strata__redis_replies *rs);

#endif
