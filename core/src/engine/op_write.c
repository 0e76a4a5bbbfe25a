/*
 * The write sequences as resumable operations: set (with tag stamps),
 * delete, tag bumps, plus the connection-level ops a driver needs (hello,
 * the subscription). Same effects as ops.c / tags.c: L1 first, the write
 * and its invalidation in one MULTI, own events for host tiers.
 */
#include "op.h"
#include "error.h"
#include "engine/events.h"
#include "engine/wb_state.h"
#include "backend/redis/route.h"
#include "backend/redis/stream.h"

#include <stdlib.h>
#include <string.h>

/* "<origin><user key>": what every L1 on the namespace hears. */
static int invalidation(strata_op *op, char **payload, size_t *len)
{
    char origin[STRATA__INV_ORIGIN_LEN + 1];
    strata__inv_origin(origin, op->c->cfg.instance);
    if ((*payload = malloc(STRATA__INV_ORIGIN_LEN + op->keylen)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory");
    memcpy(*payload, origin, STRATA__INV_ORIGIN_LEN);
    memcpy(*payload + STRATA__INV_ORIGIN_LEN, op->key, op->keylen);
    *len = STRATA__INV_ORIGIN_LEN + op->keylen;
    return 0;
}

static size_t channel(strata_op *op)
{
    if (op->chanlen == 0)
        op->chanlen = strata__inv_channel(op->chan, sizeof op->chan, &op->c->cfg);
    return op->chanlen;
}

/* ---- set ---- */

static int set_done(strata_op *op)
{
    strata_cache *c = op->c;
    int rc = strata__backend_result(c, strata__rp_write(op->who, op->rs.r));
    if (op->tagged) /* read-your-writes (cache.h) */
        strata__l1_wrote(c, &op->k, op->epoch, rc == 0, op->enc.data, op->enc.len, 1, op->now_ms, op->fresh_until,
                         op->now_ms + op->backend_ttl);
    else
        strata__l1_wrote(c, &op->k, op->epoch, rc == 0, op->val ? op->val : "", op->vallen, 0, op->now_ms,
                         op->fresh_until, op->now_ms + op->backend_ttl);
    if (rc == 0)
        STRATA__COUNT(c, sets);
    return strata__op_finish(op, rc);
}

static int write_failed(strata_op *op, int code)
{
    if (op->kind == STRATA__OP_SET || op->kind == STRATA__OP_DELETE || op->kind == STRATA__OP_TOUCH ||
        op->kind == STRATA__OP_WRITE_BEHIND)
        strata__l1_written(op->c, &op->k); /* it may have landed */
    return strata__op_finish(op, code);
}

/* Before any write: the key's fill epoch, to settle the write with (L1
 * serves the old value while it is in flight; its end drops or replaces
 * it), and host tiers hear of it, even if the write then times out: it may
 * have landed. */
static void forget(strata_op *op)
{
    strata_cache *c = op->c;
    op->epoch = strata__l1_writing(c, &op->k);
    strata__events_push(c, STRATA_EVENT_EVICT, op->key, op->keylen, 1);
}

/* The MULTI write of op->enc (set, touch): lease kill, SET, invalidation. */
static int send_write(strata_op *op, int (*done)(strata_op *))
{
    char *payload = NULL;
    size_t paylen = 0;
    int rc;
    forget(op);
    strata__redis_req_reset(&op->req);
    if ((rc = invalidation(op, &payload, &paylen)) == 0)
        rc = strata__rq_write(&op->req, op->fk, op->fklen, op->lk, op->lklen, op->enc.data, op->enc.len,
                              op->backend_ttl, op->chan, channel(op), payload, paylen);
    free(payload);
    if (rc < 0)
        return strata__op_finish(op, rc);
    return strata__op_exchange(op, done, write_failed);
}

static int set_send(strata_op *op)
{
    strata_cache *c = op->c;
    strata__env_tag stamps[STRATA__ENV_MAX_TAGS];
    size_t i;
    int rc;
    size_t nt = op->tags.n - 1; /* the last entry is the namespace generation */
    for (i = 0; i < nt && i < STRATA__ENV_MAX_TAGS; i++) {
        stamps[i].name = op->tags.names[i];
        stamps[i].len = op->tags.lens[i];
        stamps[i].version = op->tags.versions[i];
    }
    op->ns = op->tags.versions[nt];
    op->tagged = nt > 0 || op->ns != 0; /* stamped: L1 keeps the envelope and checks it on hits */
    op->now_ms = strata__now_wall_ms();
    rc = strata__encode_value_ns(c, &op->enc, op->val ? op->val : "", op->vallen, 0, op->fresh_until, op->counter,
                                 op->backend_ttl, nt > 0 ? stamps : NULL, nt, &op->ns, op->now_ms, &op->fresh_until,
                                 &op->backend_ttl);
    if (rc == 0)
        rc = strata__breaker_allow(c);
    if (rc < 0)
        return strata__op_finish(op, rc);
    return send_write(op, set_done);
}

int strata_op_set(strata_op **out, strata_cache *c, const char *key, size_t keylen, const char *val, size_t vallen,
                  const strata_set_options *o)
{
    strata_op *op;
    int rc;
    if (out != NULL)
        *out = NULL;
    if ((rc = strata__check_key(c, key, keylen)) < 0)
        return rc;
    if (val == NULL && vallen > 0)
        return strata__error(STRATA_EINVAL, "value is NULL with length %zu", vallen);
    if (o != NULL) {
        if (o->version != STRATA_SET_OPTIONS_VERSION)
            return strata__error(STRATA_EVERSION, "unknown strata_set_options version %u (this library knows %d)",
                                 o->version, STRATA_SET_OPTIONS_VERSION);
        if (o->ttl_ms < 0)
            return strata__error(STRATA_EINVAL, "ttl_ms must be >= 0 (0 = the cache's default), got %lld",
                                 (long long)o->ttl_ms);
        if (o->stale_ms < -1 || o->cost_ms < 0)
            return strata__error(STRATA_EINVAL, "set options: stale_ms must be >= -1 and cost_ms >= 0");
        if ((rc = strata__tags_check(o->tags, o->taglens, o->ntags)) < 0)
            return rc;
    }
    if ((rc = strata__op_new(&op, c, STRATA__OP_SET, key, keylen)) < 0)
        return rc;
    if (vallen > 0 && (op->val = malloc(vallen)) == NULL) {
        strata_op_free(op);
        return strata__error(STRATA_ENOMEM, "out of memory copying a %zu-byte value", vallen);
    }
    if (vallen > 0)
        memcpy(op->val, val, vallen);
    op->vallen = vallen;
    /* Until set_send: fresh_until = ttl, counter = stale, backend_ttl = cost (the write's options). */
    op->fresh_until = o ? o->ttl_ms : 0;
    op->counter = o ? o->stale_ms : -1;
    op->backend_ttl = o ? o->cost_ms : 0;
    *out = op;
    {
        /* The versions are read first (which may create counters), with the
         * namespace generation as the last entry. */
        size_t i, total = 0, at = 0, nt = o ? o->ntags : 0;
        for (i = 0; i < nt; i++)
            total += o->taglens[i];
        op->stamp_mem = malloc(total ? total : 1);
        if (!op->stamp_mem || strata__op_tags_alloc(&op->tags, nt + 1) < 0) {
            strata_op_free(op);
            *out = NULL;
            return strata__error(STRATA_ENOMEM, "out of memory for %zu tags", nt);
        }
        for (i = 0; i < nt; i++) {
            memcpy(op->stamp_mem + at, o->tags[i], o->taglens[i]);
            op->tags.names[i] = op->stamp_mem + at;
            op->tags.lens[i] = o->taglens[i];
            at += o->taglens[i];
        }
        op->tags.names[nt] = "";
        op->tags.lens[nt] = 0;
        op->tags.n = nt + 1;
        strata__op_tags_start(op, set_send);
        return 0;
    }
}

/* ---- delete ---- */

static int delete_done(strata_op *op)
{
    int rc = strata__backend_result(op->c, strata__rp_delete(op->who, op->rs.r));
    strata__l1_written(op->c, &op->k);
    if (rc >= 0)
        STRATA__COUNT(op->c, deletes);
    return strata__op_finish(op, rc);
}

int strata_op_delete(strata_op **out, strata_cache *c, const char *key, size_t keylen)
{
    strata_op *op;
    char *payload = NULL;
    size_t paylen = 0;
    int rc;
    if (out != NULL)
        *out = NULL;
    if ((rc = strata__check_key(c, key, keylen)) < 0)
        return rc;
    if ((rc = strata__op_new(&op, c, STRATA__OP_DELETE, key, keylen)) < 0)
        return rc;
    *out = op;
    if ((rc = strata__breaker_allow(c)) < 0) {
        strata__l1_written(c, &op->k); /* not sent, but this process forgets the key */
        return strata__op_finish(op, rc), 0;
    }
    strata__events_push(c, STRATA_EVENT_EVICT, key, keylen, 1); /* also when absent: other tiers may hold it */
    if ((rc = invalidation(op, &payload, &paylen)) == 0)
        rc = strata__rq_delete(&op->req, op->fk, op->fklen, op->lk, op->lklen, op->chan, channel(op), payload,
                               paylen);
    free(payload);
    if (rc < 0)
        return strata__op_finish(op, rc), 0;
    strata__op_exchange(op, delete_done, write_failed);
    return 0;
}

/* ---- touch (ops.c's strata_touch): the entry rewritten with new times ---- */

static int touch_done(strata_op *op)
{
    int rc = strata__backend_result(op->c, strata__rp_write(op->who, op->rs.r));
    strata__l1_written(op->c, &op->k); /* L1 forgets the old times */
    return strata__op_finish(op, rc);
}

/* The stamps checked: an outdated entry is not revived; the rest keeps its
 * value, stamps and cost under the new TTL. */
static int touch_verified(strata_op *op)
{
    strata_cache *c = op->c;
    strata__envelope *pe = &op->env;
    uint64_t ns = op->tags.versions[op->tags.n - 1];
    int rc;
    if (!op->tags.refetched && strata__tags_forget_behind(c, 1, &pe, op->tags.versions, ns) > 0) {
        op->tags.refetched = 1; /* a cached version older than a stamp: read it anew, once (as serve_read) */
        return strata__op_tags_start(op, touch_verified);
    }
    if (strata__tags_apply(c, 1, &pe, op->tags.versions, ns, op->now_ms, 1) > 0)
        return strata__op_finish(op, STRATA_MISS);
    rc = strata__encode_value_ns(c, &op->enc, op->env.payload, op->env.payload_len,
                                 (op->env.flags & STRATA__ENV_FLAG_NEGATIVE) != 0, op->counter, -1, op->env.cost_ms,
                                 op->env.tags, op->env.ntags, &ns, op->now_ms, &op->fresh_until, &op->backend_ttl);
    if (rc == 0)
        rc = strata__breaker_allow(c);
    if (rc < 0)
        return strata__op_finish(op, rc);
    return send_write(op, touch_done); /* host tiers hold the old times: they hear of it too */
}

static int touch_read(strata_op *op)
{
    size_t total;
    int rc = strata__backend_result(op->c, strata__replies_get(&op->rs, op->who, &op->raw));
    op->now_ms = strata__now_wall_ms();
    if (rc == 0 && (strata__decode_stored(op->c, op->raw.data, op->raw.len, &op->env) != 0 ||
                    op->now_ms >= op->env.stale_until_ms))
        rc = STRATA_MISS;
    if (rc == 0 && (rc = strata__op_tags_of(op, 1, (strata__envelope *const[]){&op->env}, &total)) == 0)
        return strata__op_tags_start(op, touch_verified);
    return strata__op_finish(op, rc);
}

int strata_op_touch(strata_op **out, strata_cache *c, const char *key, size_t keylen, int64_t ttl_ms)
{
    strata_op *op;
    int rc;
    if (out != NULL)
        *out = NULL;
    if ((rc = strata__check_key(c, key, keylen)) < 0 || (rc = strata__check_ttl("ttl_ms", ttl_ms)) < 0)
        return rc;
    if ((rc = strata__op_new(&op, c, STRATA__OP_TOUCH, key, keylen)) < 0)
        return rc;
    *out = op;
    op->counter = ttl_ms; /* until touch_verified */
    if ((rc = strata__breaker_allow(c)) < 0)
        return strata__op_finish(op, rc), 0;
    if ((rc = strata__rq_get(&op->req, op->fk, op->fklen)) < 0)
        return strata__op_finish(op, rc), 0;
    strata__op_exchange_get(op, touch_read, write_failed);
    return 0;
}

/* ---- write-behind append (write_behind.c's stream mode) ----
 * The cache write and the journal record in one MULTI on the Redis stream;
 * whichever process runs the flusher (wb_threads, or strata_wb_poll) in the
 * consumer group delivers it. */

static int wb_appended(strata_op *op)
{
    strata_cache *c = op->c;
    int64_t len = 0;
    int rc = strata__backend_result(c, strata__rp_wb_append(op->who, op->rs.r));
    /* reads in flight may not refill L1 with older values */
    strata__l1_wrote(c, &op->k, op->epoch, rc == 0, op->val ? op->val : "", op->vallen, 0, op->now_ms,
                     op->fresh_until, op->now_ms + op->backend_ttl);
    if (strata__rp_integer(op->who, op->rs.r[STRATA__WB_APPEND_REPLIES], "XLEN", &len) == 0 && len >= 0) {
        strata__atomic_store(&c->stats.wb_backlog, (uint64_t)len);
        strata__atomic_store(&c->wb->backlog_seen, 1);
    }
    if (rc == 0) {
        STRATA__COUNT(c, wb_enqueued);
        STRATA__COUNT(c, sets);
    }
    return strata__op_finish(op, rc);
}

static int wb_append_send(strata_op *op)
{
    strata_cache *c = op->c;
    strata__wb_append_args a;
    char stream[STRATA__WB_STREAM_KEYBUF];
    char *payload = NULL;
    size_t paylen = 0;
    int rc;
    if ((rc = invalidation(op, &payload, &paylen)) < 0)
        return strata__op_finish(op, rc);
    memset(&a, 0, sizeof a);
    a.ns = c->cfg.ns; a.nslen = c->cfg.nslen;
    a.fk = op->fk; a.fklen = op->fklen;
    a.lk = op->lk; a.lklen = op->lklen;
    a.env = op->enc.data; a.envlen = op->enc.len;
    a.ttl_ms = op->backend_ttl;
    a.key = op->key; a.keylen = op->keylen;
    a.val = op->val ? op->val : ""; a.vallen = op->vallen;
    a.now_ms = op->now_ms;
    a.token = strata__random_u64() | 1; /* never 0 ("unknown") */
    a.chan = op->chan; a.chanlen = channel(op);
    a.payload = payload; a.paylen = paylen;
    forget(op);
    strata__redis_req_reset(&op->req);
    rc = strata__rq_wb_append(&op->req, &a);
    if (rc == 0) /* the backlog after it, for the next append's backpressure */
        rc = strata__rq_xlen(&op->req, stream, strata__wb_stream_key(c->cfg.ns, c->cfg.nslen, stream, 0));
    free(payload);
    if (rc < 0)
        return strata__op_finish(op, rc);
    return strata__op_exchange(op, wb_appended, write_failed);
}

/* Backpressure without blocking: over wb_max_backlog (as this process last
 * saw the stream, or as XLEN says now) the op ends with STRATA_EBUSY. */
static int wb_backlog_read(strata_op *op)
{
    strata_cache *c = op->c;
    int64_t len = 0;
    int rc = strata__backend_result(c, strata__rp_integer(op->who, op->rs.r[0], "XLEN", &len));
    if (rc < 0)
        return strata__op_finish(op, rc);
    strata__atomic_store(&c->stats.wb_backlog, (uint64_t)(len < 0 ? 0 : len));
    strata__atomic_store(&c->wb->backlog_seen, 1);
    if ((uint64_t)len + 1 > c->cfg.opts.wb_max_backlog)
        return strata__op_finish(op, strata__error(STRATA_EBUSY, "write-behind backlog is at its limit (%lld records, "
                                                   "wb_max_backlog=%llu)", (long long)len,
                                                   (unsigned long long)c->cfg.opts.wb_max_backlog));
    return wb_append_send(op);
}

/* The namespace generation is known: encode, then the backlog check. */
static int wb_stamped(strata_op *op)
{
    strata_cache *c = op->c;
    char stream[STRATA__WB_STREAM_KEYBUF];
    int rc;
    op->ns = op->tags.versions[0];
    op->now_ms = strata__now_wall_ms();
    rc = strata__encode_value_ns(c, &op->enc, op->val ? op->val : "", op->vallen, 0, op->counter, -1, 0, NULL, 0,
                                 &op->ns, op->now_ms, &op->fresh_until, &op->backend_ttl);
    if (rc == 0)
        rc = strata__breaker_allow(c);
    if (rc < 0)
        return strata__op_finish(op, rc);
    if (strata__atomic_load(&c->wb->backlog_seen) &&
        strata__atomic_load(&c->stats.wb_backlog) + 1 <= c->cfg.opts.wb_max_backlog)
        return wb_append_send(op);
    strata__redis_req_reset(&op->req);
    if ((rc = strata__rq_xlen(&op->req, stream, strata__wb_stream_key(c->cfg.ns, c->cfg.nslen, stream, 0))) < 0)
        return strata__op_finish(op, rc);
    return strata__op_exchange(op, wb_backlog_read, write_failed);
}

int strata_op_write_behind(strata_op **out, strata_cache *c, const char *key, size_t keylen, const char *val,
                           size_t vallen, int64_t ttl_ms)
{
    strata_op *op;
    int rc;
    if (out != NULL)
        *out = NULL;
    if ((rc = strata__check_key(c, key, keylen)) < 0 || (rc = strata__check_ttl("ttl_ms", ttl_ms)) < 0)
        return rc;
    if (val == NULL && vallen > 0)
        return strata__error(STRATA_EINVAL, "value is NULL with length %zu", vallen);
    if ((rc = strata__op_new(&op, c, STRATA__OP_WRITE_BEHIND, key, keylen)) < 0)
        return rc;
    if ((rc = strata__wb_check_owner(c->wb)) < 0 || (rc = strata__op_tags_alloc(&op->tags, 1)) < 0 ||
        (vallen > 0 && (op->val = malloc(vallen)) == NULL)) {
        strata_op_free(op);
        return rc < 0 ? rc : strata__error(STRATA_ENOMEM, "out of memory copying a %zu-byte value", vallen);
    }
    if (vallen > 0)
        memcpy(op->val, val, vallen);
    op->vallen = vallen;
    op->counter = ttl_ms; /* until wb_stamped */
    op->tags.names[0] = ""; /* the namespace generation the record's envelope carries */
    op->tags.lens[0] = 0;
    *out = op;
    strata__op_tags_start(op, wb_stamped);
    return 0;
}

/* ---- invalidate_tag ---- */

static int tag_done(strata_op *op)
{
    int64_t v = 0;
    int rc = strata__backend_result(op->c, strata__rp_counter(op->who, op->rs.r, &v));
    if (rc < 0)
        return strata__op_finish(op, rc);
    strata__tags_remember(op->c, op->key, op->keylen, (uint64_t)v, 1); /* our own bump is seen at once */
    STRATA__COUNT(op->c, tag_invalidations);
    return strata__op_finish(op, 0);
}

int strata_op_invalidate_tag(strata_op **out, strata_cache *c, const char *tag, size_t taglen)
{
    strata_op *op;
    char key[STRATA__TAG_KEYBUF];
    size_t klen;
    int rc;
    if (out != NULL)
        *out = NULL;
    if (c == NULL)
        return strata__error(STRATA_EINVAL, "cache handle is NULL");
    if ((rc = strata__tags_check(&tag, &taglen, 1)) < 0)
        return rc;
    if ((rc = strata__op_new(&op, c, STRATA__OP_TAG, tag, taglen)) < 0)
        return rc;
    *out = op;
    if ((rc = strata__breaker_allow(c)) < 0)
        return strata__op_finish(op, rc), 0;
    klen = strata__tags_key(c, tag, taglen, key);
    /* O(1): one increment; a missing counter starts at a fresh version. */
    if ((rc = strata__rq_counter(&op->req, key, klen, strata__tags_fresh_version(), 1)) < 0)
        return strata__op_finish(op, rc), 0;
    strata__op_exchange(op, tag_done, write_failed);
    return 0;
}

/* ---- hello: a new connection's AUTH / SELECT ---- */

static int hello_done(strata_op *op)
{
    return strata__op_finish(op, strata__backend_result(op->c, strata__rp_hello(op->who, op->rs.r, op->rs.got)));
}

int strata_op_hello(strata_op **out, strata_cache *c, unsigned int server)
{
    strata_op *op;
    int rc;
    if (out != NULL)
        *out = NULL;
    if ((rc = strata__op_new(&op, c, STRATA__OP_HELLO, NULL, 0)) < 0)
        return rc;
    if (server >= strata__route_count(c->route)) {
        strata_op_free(op);
        return strata__error(STRATA_EINVAL, "server %u: this cache has %zu", server, strata__route_count(c->route));
    }
    op->server = server;
    op->who = strata__route_who(c->route, server);
    *out = op;
    if ((rc = strata__rq_hello(&op->req, c->cfg.user, c->cfg.password, c->cfg.db)) < 0)
        return strata__op_finish(op, rc), 0;
    if (op->req.nreplies == 0)
        return strata__op_finish(op, 0), 0;
    strata__op_exchange(op, hello_done, write_failed);
    return 0;
}

/* ---- subscribe: the invalidation link, driven by the host ---- */

static int sub_heard(strata_op *op);

static int sub_failed(strata_op *op, int code)
{
    strata_cache *c = op->c;
    if (code == STRATA_ETIMEOUT && op->subscribed && !op->ping_out) {
        /* A quiet link or a dead one: a PING tells. */
        int rc;
        op->ping_out = 1;
        strata__redis_req_reset(&op->req);
        if ((rc = strata__rq_ping(&op->req)) < 0)
            return strata__op_finish(op, rc);
        return strata__op_exchange(op, sub_heard, sub_failed);
    }
    if (c->l1)
        strata__l1_demote(c->l1);
    strata__events_push(c, STRATA_EVENT_LINK_DOWN, NULL, 0, 0);
    strata__events_push(c, STRATA_EVENT_FLUSH, NULL, 0, 0);
    return strata__op_finish(op, code);
}

/* One message at a time: each becomes the next exchange's single reply. */
static int sub_heard(strata_op *op)
{
    strata_cache *c = op->c;
    const char *key = NULL;
    size_t keylen = 0;
    int rc;
    switch (strata__rp_sub_message(op->rs.r[0], op->chan, op->chanlen, op->origin, STRATA__INV_ORIGIN_LEN, &key,
                                   &keylen)) {
    case STRATA__SUB_SUBSCRIBED:
        op->subscribed = 1;
        strata__events_push(c, STRATA_EVENT_FLUSH, NULL, 0, 0); /* what was missed before */
        strata__events_push(c, STRATA_EVENT_LINK_UP, NULL, 0, 0);
        break;
    case STRATA__SUB_PONG:
        op->ping_out = 0;
        break;
    case STRATA__SUB_EVICT:
        if (c->l1) {
            strata__key kk = strata__key_of(key, keylen);
            strata__l1_del(c->l1, &kk);
        }
        STRATA__COUNT(c, invalidations_received);
        strata__events_push(c, STRATA_EVENT_EVICT, key, keylen, 0);
        break;
    case STRATA__SUB_FLUSH:
        if (c->l1)
            strata__l1_demote(c->l1);
        STRATA__COUNT(c, l1_flushes);
        strata__events_push(c, STRATA_EVENT_FLUSH, NULL, 0, 0);
        break;
    default: /* our own writes were pushed when made */
        if (op->rs.r[0]->type == REDIS_REPLY_ERROR)
            return sub_failed(op, strata__backend_result(c, strata__rp_fail(op->who, op->rs.r[0], "SUBSCRIBE")));
        break;
    }
    if ((rc = strata__replies_expect(&op->rs, 1)) < 0)
        return strata__op_finish(op, rc);
    /* Keep receiving: the exchange stays handed (nothing new to send). */
    op->on_replies = sub_heard;
    op->on_failed = sub_failed;
    op->pending = 1;
    op->handed = 1;
    op->deadline_ms = strata__now_mono_ms() + c->cfg.opts.coherence_ping_ms;
    return 0;
}

int strata_op_subscribe(strata_op **out, strata_cache *c)
{
    strata_op *op;
    int rc;
    if (out != NULL)
        *out = NULL;
    if ((rc = strata__op_new(&op, c, STRATA__OP_SUBSCRIBE, NULL, 0)) < 0)
        return rc;
    *out = op;
    strata__inv_origin(op->origin, c->cfg.instance);
    channel(op);
    if ((rc = strata__rq_subscribe(&op->req, op->chan, op->chanlen)) < 0)
        return strata__op_finish(op, rc), 0;
    strata__op_exchange(op, sub_heard, sub_failed);
    return 0;
}
