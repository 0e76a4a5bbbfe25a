/*
 * The write-behind journal on a Redis stream, as request bytes and reply
 * meanings (no socket: backend.c runs them over the pool). Keys, per
 * namespace <ns>:
 *   <ns>#W        the journal stream, consumer group "strata"
 *   <ns>#W:dead   dead letters
 *   <ns>#W:id:<key>  the token of the key's latest record: a consumer holding
 *                 an older record skips it, so records claimed late or
 *                 delivered by another consumer never overwrite a newer
 *                 write at the writer
 *   <ns>#W:n:<key>   how many of the key's records the stream holds; both
 *                 keys live exactly as long as those records (no TTL: a
 *                 record may wait for a claim however long), deleted with
 *                 the key's last record
 * None can collide with values "<ns>:<key>" or leases "<ns>#L:<key>".
 * Entry fields: k = user key, v = raw value, t = wall ms when accepted,
 * n = the write's token (docs/FORMAT.md).
 */
#ifndef STRATA_REDIS_STREAM_H
#define STRATA_REDIS_STREAM_H

#include "backend/redis/protocol.h"
#include "common/wb_record.h"

#define STRATA__WB_STREAM_KEYBUF (64 + 8)

/* "<ns>#W" (dead 0) or "<ns>#W:dead" into buf; returns its length. */
size_t strata__wb_stream_key(const char *ns, size_t nslen, char *buf, int dead);

/* One accepted write: MULTI, DEL lease, SET value PX ttl, XADD record, SET
 * latest-token, INCR the key's record count, PUBLISH, EXEC (8 replies). */
typedef struct strata__wb_append_args {
    const char *ns; size_t nslen;
    const char *fk; size_t fklen;       /* value key */
    const char *lk; size_t lklen;       /* lease key */
    const char *env; size_t envlen;     /* the envelope to SET */
    int64_t ttl_ms;
    const char *key; size_t keylen;     /* user key for the record */
    const char *val; size_t vallen;     /* raw value for the record */
    int64_t now_ms;
    uint64_t token;                     /* names this write (never 0) */
    const char *chan; size_t chanlen;   /* the invalidation, as every write sends */
    const char *payload; size_t paylen;
} strata__wb_append_args;

#define STRATA__WB_APPEND_REPLIES 8

int strata__rq_wb_append(strata__redis_req *q, const strata__wb_append_args *a);
int strata__rp_wb_append(const char *who, redisReply *const *r);
int strata__rq_xlen(strata__redis_req *q, const char *stream, size_t slen);            /* 1 */

/* XREADGROUP GROUP strata <consumer> COUNT n STREAMS <stream> > (1). */
int strata__rq_wb_read_new(strata__redis_req *q, const char *consumer, size_t count, const char *stream,
                           size_t slen);
/* XGROUP CREATE <stream> strata 0 MKSTREAM (1); BUSYGROUP is success. */
int strata__rq_wb_group(strata__redis_req *q, const char *stream, size_t slen);
int strata__rp_wb_group(const char *who, const redisReply *r);
/* XAUTOCLAIM <stream> strata <consumer> <idle> <cursor> COUNT n (1). */
int strata__rq_wb_claim(strata__redis_req *q, const char *stream, size_t slen, const char *consumer,
                        int64_t idle_ms, const char *cursor, size_t count);
int strata__rp_is_nogroup(const redisReply *r);
/* Records of an XREADGROUP reply appended to recs (*n of max used). */
int strata__rp_wb_read_new(const char *who, const redisReply *r, strata__wb_record *recs, size_t *n, size_t max);
/* XAUTOCLAIM's reply: records, and the next cursor into cursor. */
int strata__rp_wb_claim(const char *who, const redisReply *r, char *cursor, size_t cursorsize,
                        strata__wb_record *recs, size_t *n, size_t max);

/* MULTI, [extra command], the ack script over ids, EXEC (3 or 4 replies). */
int strata__rq_wb_ack(strata__redis_req *q, const char *ns, size_t nslen, size_t n, const strata__wb_id *ids,
                      int extra_argc, const char **extra, const size_t *extralens);
/* One dead letter: the XADD for rq_wb_ack's extra command (13 arguments). */
void strata__wb_dead_argv(const char *ns, size_t nslen, const char *key, size_t keylen, const char *val,
                          size_t vallen, unsigned int attempts, const char *message, int64_t now_ms,
                          char *deadbuf, char *attbuf, char *nowbuf, const char **argv, size_t *lens);
/* XTRIM <dead> MAXLEN = max (when max > 0), XTRIM <dead> MINID = now - max_age
 * (when max_age_ms > 0 and now_ms > max_age_ms): 0-2 replies, integers. */
int strata__rq_wb_dead_trim(strata__redis_req *q, const char *dead, size_t dlen, uint64_t max, int64_t max_age_ms,
                            int64_t now_ms);
/* MGET of the keys' latest-token keys (1); tokens[i] = 0 when unknown. */
int strata__rq_wb_latest(strata__redis_req *q, const char *ns, size_t nslen, size_t n, const char *const *keys,
                         const size_t *keylens);
int strata__rp_wb_latest(const char *who, const redisReply *r, size_t n, uint64_t *tokens);

#endif
