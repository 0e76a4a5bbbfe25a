/* The driver-facing half of the resumable operations (docs/SANS-IO.md). */
#include "op.h"
#include "error.h"
#include "engine/events.h"
#include "backend/redis/route.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t strata_clock_ms(void)
{
    return strata__now_mono_ms();
}

int strata_io_init(strata_io *io, unsigned int version)
{
    return strata__struct_init(io, sizeof *io, NULL, "strata_io", version, STRATA_IO_VERSION);
}

int strata_op_options_init(strata_op_options *o, unsigned int version)
{
    static const strata_op_options defaults = STRATA_OP_OPTIONS_INIT;
    return strata__struct_init(o, sizeof *o, &defaults, "strata_op_options", version, STRATA_OP_OPTIONS_VERSION);
}

int strata__op_new(strata_op **out, strata_cache *c, int kind, const char *key, size_t keylen)
{
    strata_op *op;
    size_t nslen;
    if (out == NULL)
        return strata__error(STRATA_EINVAL, "op out-pointer is NULL");
    *out = NULL;
    if (c == NULL)
        return strata__error(STRATA_EINVAL, "cache handle is NULL");
    if (c->cfg.scheme != STRATA__SCHEME_REDIS)
        return strata__error(STRATA_ENOTSUP, "host-driven operations need a redis:// cache (this one is %s)",
                             c->backend->ops->name);
    if (c->cfg.cluster) /* docs/CLUSTER.md: what is left */
        return strata__error(STRATA_ENOTSUP, "host-driven operations do not follow Redis Cluster redirects yet: "
                             "use the blocking calls on a redis+cluster:// cache");
    nslen = c->cfg.nslen;
    if ((op = strata__op_pool_new_op(c)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory for an operation");
    op->c = c;
    op->kind = kind;
    op->timeout_ms = c->cfg.opts.timeout_ms > 0 ? c->cfg.opts.timeout_ms : 1000;
    op->lease = 1;
    op->use_sha = 1;
    if (key != NULL) {
        /* key, "<ns>:<key>" and "<ns>#L:<key>" in one block (an idle op's, when it fits) */
        size_t need = keylen + (nslen + 1 + keylen) + (nslen + 3 + keylen) + 1;
        if (need > op->keycap) {
            char *mem = realloc(op->keymem, need);
            if (mem == NULL) {
                strata_op_free(op);
                return strata__error(STRATA_ENOMEM, "out of memory for an operation");
            }
            op->keymem = mem;
            op->keycap = need;
        }
        op->key = op->keymem;
        memcpy(op->key, key, keylen);
        op->keylen = keylen;
        op->fk = op->key + keylen;
        memcpy(op->fk, c->cfg.ns, nslen);
        op->fk[nslen] = ':';
        memcpy(op->fk + nslen + 1, key, keylen);
        op->fklen = nslen + 1 + keylen;
        op->lk = op->fk + op->fklen;
        op->lklen = strata__redis_lease_key(c->cfg.ns, nslen, key, keylen, op->lk);
        op->server = strata__route_key(c->route, op->fk, op->fklen);
        op->k = strata__key_of(op->key, op->keylen);
        op->k.full = op->fk;
        op->k.fulllen = op->fklen;
    }
    op->who = strata__route_who(c->route, op->server);
    *out = op;
    return 0;
}

int strata__op_options(strata_op *op, const strata_op_options *o)
{
    if (o == NULL)
        return 0;
    if (o->version != STRATA_OP_OPTIONS_VERSION)
        return strata__error(STRATA_EVERSION, "unknown strata_op_options version %u (this library knows %d)",
                             o->version, STRATA_OP_OPTIONS_VERSION);
    if (o->timeout_ms < 0)
        return strata__error(STRATA_EINVAL, "op options: timeout_ms must be >= 0, got %lld",
                             (long long)o->timeout_ms);
    if (o->timeout_ms > 0)
        op->timeout_ms = o->timeout_ms;
    op->lease = o->lease != 0;
    op->wait = o->wait != 0;
    return 0;
}

int strata__op_finish(strata_op *op, int rc)
{
    if (rc == STRATA__EREFUSED) /* a refusal that skipped strata__backend_result: callers see EBACKEND */
        rc = strata__backend_result(op->c, rc);
    op->done = 1;
    op->pending = 0;
    op->rc = rc;
    free(op->err);
    op->err = rc < 0 ? strdup(strata_error_last()) : NULL; /* NULL on OOM: strata_op_error says so */
    return rc;
}

static int exchange(strata_op *op, int rc, int (*on_replies)(strata_op *), int (*on_failed)(strata_op *, int))
{
    if (rc < 0)
        return strata__op_finish(op, rc);
    op->on_replies = on_replies;
    op->on_failed = on_failed;
    op->pending = 1;
    op->handed = 0;
    return 0;
}

int strata__op_exchange(strata_op *op, int (*on_replies)(strata_op *), int (*on_failed)(strata_op *, int))
{
    return exchange(op, strata__replies_expect(&op->rs, op->req.nreplies), on_replies, on_failed);
}

int strata__op_exchange_get(strata_op *op, int (*on_replies)(strata_op *), int (*on_failed)(strata_op *, int))
{
    return exchange(op, strata__replies_expect_get(&op->rs, &op->raw), on_replies, on_failed);
}

int strata_op_next(strata_op *op, strata_io *io)
{
    strata_cache *c;
    if (op == NULL || io == NULL)
        return strata__error(STRATA_EINVAL, "%s is NULL", op == NULL ? "op" : "io");
    if (io->version != STRATA_IO_VERSION)
        return strata__error(STRATA_EVERSION, "unknown strata_io version %u (this library knows %d): "
                             "strata_io_init() it first", io->version, STRATA_IO_VERSION);
    c = op->c;
    io->server = op->server; /* routing picked it (backend/redis/route.c) */
    io->host = strata__route_host(c->route, op->server);
    io->port = strata__route_port(c->route, op->server);
    io->data = NULL;
    io->len = 0;
    io->wait_ms = 0;
    io->timeout_ms = 0;
    io->deadline_ms = 0;
    if (op->done) {
        io->kind = STRATA_IO_DONE;
        return 0;
    }
    if (op->wait_ms > 0) {
        /* Asked once; the next call means the host has slept. */
        io->kind = STRATA_IO_WAIT;
        io->wait_ms = op->wait_ms;
        op->wait_ms = -1;
        return 0;
    }
    if (op->wait_ms < 0) {
        int (*resume)(strata_op *) = op->on_replies;
        op->wait_ms = 0;
        resume(op);
        return strata_op_next(op, io);
    }
    if (!op->pending) { /* cannot happen: a step either finishes or starts an exchange */
        strata__error(STRATA_EINVAL, "operation has nothing to do");
        strata__op_finish(op, STRATA_EINVAL);
        io->kind = STRATA_IO_DONE;
        return 0;
    }
    if (!op->handed) {
        op->handed = 1;
        op->exch_t0_ns = strata__now_mono_ns();
        op->deadline_ms = strata__now_mono_ms() + op->timeout_ms;
        io->kind = STRATA_IO_SEND;
        io->data = op->req.buf.data;
        io->len = op->req.buf.len;
    } else {
        io->kind = STRATA_IO_RECV;
    }
    io->timeout_ms = op->deadline_ms - strata__now_mono_ms();
    if (io->timeout_ms < 1)
        io->timeout_ms = 1;
    io->deadline_ms = op->deadline_ms;
    return 0;
}

int strata_op_feed(strata_op *op, const char *data, size_t len, size_t *consumed)
{
    size_t used = 0;
    int rc;
    if (consumed)
        *consumed = 0;
    if (op == NULL || (data == NULL && len > 0))
        return strata__error(STRATA_EINVAL, "%s is NULL", op == NULL ? "op" : "data");
    if (op->done || !op->pending || !op->handed)
        return strata__error(STRATA_EINVAL, "operation is not waiting for replies (%s)",
                             op->done ? "it is done" : "call strata_op_next and send first");
    rc = strata__replies_feed(&op->rs, data, len, &used, op->who);
    if (consumed)
        *consumed = used;
    if (rc == 1)
        return 1;
    strata__hist_record(&op->c->metrics.backend, strata__now_mono_ns() - op->exch_t0_ns);
    op->pending = 0;
    if (rc < 0) {
        strata__backend_result(op->c, rc);
        op->on_failed(op, rc);
        return rc;
    }
    op->on_replies(op);
    return 0;
}

int strata_op_io_failed(strata_op *op, int code, const char *message)
{
    if (op == NULL)
        return strata__error(STRATA_EINVAL, "op is NULL");
    if (code != STRATA_ETIMEOUT && code != STRATA_EBACKEND)
        return strata__error(STRATA_EINVAL, "io_failed: code must be STRATA_ETIMEOUT or STRATA_EBACKEND, got %d",
                             code);
    if (op->done || !op->pending)
        return strata__error(STRATA_EINVAL, "operation has no exchange in flight");
    op->pending = 0;
    if (code == STRATA_ETIMEOUT)
        strata__error(code, "%s: timed out after %lld ms%s%s", op->who, (long long)op->timeout_ms,
                      message ? ": " : "", message ? message : "");
    else
        strata__error(code, "%s: connection failed%s%s", op->who, message ? ": " : "", message ? message : "");
    strata__backend_result(op->c, code);
    op->on_failed(op, code);
    return 0;
}

int strata_op_result(strata_op *op, strata_value *value)
{
    int rc;
    if (op == NULL)
        return strata__error(STRATA_EINVAL, "op is NULL");
    if (!op->done)
        return strata__error(STRATA_EINVAL, "operation is not done: drive it until strata_op_next says DONE");
    if (op->rc < 0)
        return strata__error(op->rc, "%s", strata_op_error(op));
    if (value != NULL && op->kind == STRATA__OP_LOOKUP) {
        if ((rc = strata__value_set(value, op->value.data ? op->value.data : "", op->value.len)) < 0)
            return rc;
        value->level = op->value.level;
        value->stale = op->value.stale;
        value->ttl_ms = op->value.ttl_ms;
        value->wait_ms = op->value.wait_ms;
    }
    return op->rc;
}

const char *strata_op_error(const strata_op *op)
{
    if (op == NULL)
        return "op is NULL";
    if (op->err == NULL)
        return op->done && op->rc < 0 ? "out of memory keeping the error message" : "";
    return op->err;
}

int strata_op_item(strata_op *op, size_t i, strata_value *value)
{
    int rc;
    if (op == NULL || value == NULL)
        return strata__error(STRATA_EINVAL, "%s is NULL", op == NULL ? "op" : "value");
    if (op->kind != STRATA__OP_GET_MANY)
        return strata__error(STRATA_EINVAL, "strata_op_item is for get_many operations");
    if (!op->done)
        return strata__error(STRATA_EINVAL, "operation is not done: drive it until strata_op_next says DONE");
    if (op->outs == NULL || i >= op->n) /* after an outage each key still has its outcome */
        return strata__error(STRATA_EINVAL, "item %zu of %zu", i, op->n);
    if ((rc = strata__value_set(value, op->outs[i].data ? op->outs[i].data : "", op->outs[i].len)) < 0)
        return rc;
    value->level = op->outs[i].level;
    value->stale = op->outs[i].stale;
    value->ttl_ms = op->outs[i].ttl_ms;
    value->wait_ms = 0;
    return op->results[i];
}

int strata_op_meta_init(strata_op_meta *m, unsigned int version)
{
    return strata__struct_init(m, sizeof *m, NULL, "strata_op_meta", version, STRATA_OP_META_VERSION);
}

void strata__op_meta_env(strata_op_meta *m, const strata__envelope *e)
{
    m->flags = STRATA_META_EXACT | (strata__env_user_tags(e) ? STRATA_META_TAGGED : 0);
    m->fresh_until_ms = e->fresh_until_ms;
    m->stale_until_ms = e->stale_until_ms;
    m->cost_ms = e->cost_ms;
}

void strata__op_meta_l1(strata_op_meta *m, const strata_value *v, int64_t now_ms)
{
    m->flags = STRATA_META_TAGGED; /* L1 does not say whether the entry is stamped */
    m->fresh_until_ms = now_ms + v->ttl_ms;
    m->stale_until_ms = m->fresh_until_ms;
    m->cost_ms = 0;
}

static int served(int rc)
{
    return rc == STRATA_OK || rc == STRATA_NEGATIVE || rc == STRATA_HIT_STALE || rc == STRATA_HIT_REFRESH;
}

/* Batch slot of get_many item k (op->idx is ascending), or op->nb. */
static size_t slot_of(const strata_op *op, size_t k)
{
    size_t lo = 0, hi = op->nb;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (op->idx[mid] < k)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < op->nb && op->idx[lo] == k ? lo : op->nb;
}

int strata_op_meta_get(strata_op *op, size_t i, strata_op_meta *meta)
{
    strata_op_meta m;
    if (op == NULL || meta == NULL)
        return strata__error(STRATA_EINVAL, "%s is NULL", op == NULL ? "op" : "meta");
    if (meta->version != STRATA_OP_META_VERSION)
        return strata__error(STRATA_EVERSION, "unknown strata_op_meta version %u (this library knows %d): "
                             "strata_op_meta_init() it first", meta->version, STRATA_OP_META_VERSION);
    if (!op->done)
        return strata__error(STRATA_EINVAL, "operation is not done: drive it until strata_op_next says DONE");
    memset(&m, 0, sizeof m);
    m.version = meta->version;
    if (op->kind == STRATA__OP_LOOKUP) {
        if (i != 0)
            return strata__error(STRATA_EINVAL, "a lookup has one result (item 0), not item %zu", i);
        if (!op->has_meta || !served(op->rc)) {
            *meta = m;
            return STRATA_MISS;
        }
        m.flags = op->meta.flags;
        m.fresh_until_ms = op->meta.fresh_until_ms;
        m.stale_until_ms = op->meta.stale_until_ms;
        m.cost_ms = op->meta.cost_ms;
    } else if (op->kind == STRATA__OP_GET_MANY) {
        size_t b;
        if (op->results == NULL || i >= op->n)
            return strata__error(STRATA_EINVAL, "item %zu of %zu", i, op->n);
        if (!served(op->results[i])) {
            *meta = m;
            return STRATA_MISS;
        }
        b = slot_of(op, i);
        if (b < op->nb && op->decoded[b] != NULL && op->outs[i].level != STRATA_LEVEL_L1)
            strata__op_meta_env(&m, op->decoded[b]);
        else
            strata__op_meta_l1(&m, &op->outs[i], op->now_ms);
    } else {
        *meta = m;
        return STRATA_MISS;
    }
    *meta = m;
    return 0;
}

/* The per-call state; the buffers an idle op keeps stay (strata__op_destroy frees them). */
static void release(strata_op *op)
{
    size_t i;
    strata__replies_clear(&op->rs);
    if (op->rs.r != op->rs.inline_r)
        free(op->rs.r);
    op->rs.r = NULL;
    strata__bytes_free(&op->enc);
    strata__tagstamp_free(op->stamp);
    strata__op_tags_free(&op->tags);
    for (i = 0; op->outs && i < op->n; i++)
        strata_value_dispose(&op->outs[i]);
    for (i = 0; op->fks && i < op->n; i++)
        free(op->fks[i]);
    for (i = 0; op->raws && i < op->n; i++)
        strata__bytes_free(&op->raws[i]);
    free(op->outs);
    free(op->results);
    free(op->fks);
    free(op->fklens);
    free(op->idx);
    free(op->epochs);
    free(op->raws);
    free(op->rcs);
    free(op->envs);
    free(op->decoded);
    free(op->val);
    free(op->stamp_mem);
    free(op->stamp_lens);
    free(op->err);
}

void strata__op_destroy(strata_op *op)
{
    strata__redis_req_free(&op->req);
    strata__replies_free(&op->rs);
    strata__bytes_free(&op->raw);
    free(op->value.priv_);
    free(op->keymem);
    free(op);
}

/* A write whose request may be out: it may have landed, so L1 must not
 * keep serving the old value (what strata_op_io_failed would do). */
static int write_in_flight(const strata_op *op)
{
    return op->pending && !op->done &&
           (op->kind == STRATA__OP_SET || op->kind == STRATA__OP_DELETE || op->kind == STRATA__OP_TOUCH ||
            op->kind == STRATA__OP_WRITE_BEHIND);
}

void strata_op_free(strata_op *op)
{
    if (op == NULL)
        return;
    if (write_in_flight(op))
        strata__op_pool_settle(op, strata__l1_written);
    release(op);
    strata__op_pool_free_op(op); /* touches the pool only: the cache may be gone */
}
