/*
 * Redis backend over hiredis 0.14.1 (RESP2): the blocking driver of the
 * conversation. Each vtable call builds its request with protocol.c (or
 * stream.c for the journal), routes it (route.c), runs it on a pooled
 * connection (pool.c) and reads the replies' meaning back through the
 * protocol: this file knows no wire format.
 */
#include "redis.h"
#include "error.h"
#include "platform/platform.h"
#include "backend/redis/nodes.h"
#include "backend/redis/redirect.h"
#include "backend/redis/slot.h"
#include "backend/redis/protocol.h"
#include "backend/redis/stream.h"
#include "backend/redis/watch.h"
#include "backend/redis/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RB_MAX_VALUE ((size_t)512 * 1024 * 1024) /* Redis proto-max-bulk-len default */
#define RB_KEYBUF    (4096 + 2 * STRATA__MAX_NS + 16)  /* lease keys of any legal key (a cluster's too) */

typedef struct rb {
    strata__backend base;
    strata__redis_route *route;
    strata__redis_nodes nodes;   /* a pool per server index; the cluster conversation */
    int nodes_open;
    int cluster;                 /* redis+cluster:// (the single-node path skips the routing layer) */
    char ns[STRATA__MAX_NS + 1];
    size_t nslen;
    int io_host;                 /* io=host: the host drives all I/O (op API only) */
    char chan[STRATA__INV_CHANNEL_MAX]; /* invalidation channel of the namespace */
    size_t chanlen;
    uint64_t instance;
    char origin[STRATA__INV_ORIGIN_LEN + 1]; /* this cache in this process */
    unsigned int origin_gen;     /* fork generation origin was made in (atomic; a child is a new publisher) */
    unsigned int origin_claim;   /* generation whose origin a thread is writing (atomic) */
} rb;

#define RB(x) ((rb *)(x))

static const strata__backend_ops rb_ops;

strata__redis_route *strata__redis_backend_route(strata__backend *b)
{
    return RB(b)->route;
}

/* ---- plumbing ---- */

static const char *who(const rb *b, unsigned int server)
{
    return strata__route_who(b->route, server);
}

/* Runs q on at's server (following a cluster's redirects: at then names
 * the server that answered); r gets q->nreplies replies. */
static int run(rb *b, strata__redis_at *at, const strata__redis_req *q, redisReply **r, const char *what)
{
    if (b->io_host)
        return strata__error(STRATA_ENOTSUP, "%s: io=host: this handle opens no connection; drive its calls "
                             "with strata_op_* (docs/SANS-IO.md)", who(b, at->server));
    if (!b->cluster)
        return strata__pool_run(b->nodes.pools[0], q, r, what);
    return strata__nodes_run(&b->nodes, at, q, r, what);
}

static strata__redis_at route(const rb *b, const char *key, size_t keylen)
{
    strata__redis_at at = {0, -1, 0};
    return b->cluster ? strata__nodes_at(&b->nodes, key, keylen) : at;
}

/* The user key part of a full key. The engine always passes "<ns>:<user>";
 * anything else is used whole, which still yields a distinct lease key. */
static void user_part(const rb *b, const char *key, size_t keylen, const char **ukey, size_t *ulen)
{
    if (b->nslen > 0 && keylen > b->nslen && key[b->nslen] == ':' && memcmp(key, b->ns, b->nslen) == 0) {
        *ukey = key + b->nslen + 1;
        *ulen = keylen - b->nslen - 1;
    } else {
        *ukey = key;
        *ulen = keylen;
    }
}

static int is_cluster(const rb *b)
{
    return b->cluster;
}

/* On a cluster, a key whose lease cannot share its slot is refused
 * (strata__redis_cluster_lease_key). */
static int keys_ok(const rb *b, size_t n, const char *const *keys, const size_t *keylens)
{
    size_t i, start, len;
    if (!is_cluster(b))
        return 0;
    for (i = 0; i < n; i++)
        if (!strata__cluster_hashtag(keys[i], keylens[i], &start, &len) && memchr(keys[i], '}', keylens[i]))
            return strata__error(STRATA_EINVAL, "redis cluster: key \"%.*s\" has a '}' but no hash tag (\"{...}\"): "
                                 "its lease could not share its slot (docs/FORMAT.md, cluster key layout)",
                                 (int)(keylens[i] > 80 ? 80 : keylens[i]), keys[i]);
    return 0;
}

static int key_ok(const rb *b, const char *key, size_t keylen)
{
    return keys_ok(b, 1, &key, &keylen);
}

/* The lease key of full key `key` into buf (RB_KEYBUF bytes). */
static size_t lease_key(const rb *b, const char *key, size_t keylen, char *buf)
{
    const char *ukey;
    size_t ulen;
    size_t start, len;
    if (is_cluster(b) && !strata__cluster_hashtag(key, keylen, &start, &len) && keylen <= RB_KEYBUF - b->nslen - 5)
        return strata__redis_cluster_lease_key(b->ns, b->nslen, key, keylen, buf);
    user_part(b, key, keylen, &ukey, &ulen);
    if (ulen > RB_KEYBUF - b->nslen - 3)
        ulen = RB_KEYBUF - b->nslen - 3; /* cannot happen: keys are at most 4096 bytes */
    return strata__redis_lease_key(b->ns, b->nslen, ukey, ulen, buf);
}

/* "<origin><user key>" into buf (STRATA__INV_ORIGIN_LEN + RB_KEYBUF bytes). */
static size_t invalidation(rb *b, const char *key, size_t keylen, char *buf)
{
    const char *ukey;
    size_t ulen;
    unsigned int gen = strata__fork_generation();
    user_part(b, key, keylen, &ukey, &ulen);
    if (ulen > RB_KEYBUF)
        ulen = RB_KEYBUF;
    if (strata__atomic_load(&b->origin_gen) == gen) {
        memcpy(buf, b->origin, STRATA__INV_ORIGIN_LEN); /* written once per process, before origin_gen */
    } else {
        /* First write in a forked child: no lock (the parent may have forked
         * holding one); one thread publishes the origin, the rest make their own. */
        unsigned int seen = strata__atomic_load(&b->origin_claim);
        char mine[STRATA__INV_ORIGIN_LEN + 1];
        strata__inv_origin(mine, b->instance);
        memcpy(buf, mine, STRATA__INV_ORIGIN_LEN);
        if (seen != gen && strata__atomic_cas(&b->origin_claim, &seen, gen)) {
            memcpy(b->origin, mine, sizeof mine);
            strata__atomic_store(&b->origin_gen, gen);
        }
    }
    memcpy(buf + STRATA__INV_ORIGIN_LEN, ukey, ulen);
    return STRATA__INV_ORIGIN_LEN + ulen;
}

/* ---- a cluster's batches ---- */

/* An item of a batch: its request (nrep replies) and what they mean. */
typedef struct batch_ops {
    unsigned int nrep;
    int (*build)(rb *b, void *ud, size_t i, strata__redis_req *q);
    int (*parse)(rb *b, void *ud, size_t i, unsigned int server, redisReply **r); /* 0 or the item's error */
} batch_ops;

/* A cluster's multi-key call: the items grouped by the server holding them,
 * each server's share pipelined, all servers' requests in flight at once
 * (one round trip in all); an item whose replies redirect is redone alone
 * through run(), which follows the redirect. Every item is tried; returns
 * the first error. */
static int batch_run(rb *b, size_t n, const char *const *keys, const size_t *keylens, const batch_ops *ops, void *ud,
                     const char *what)
{
    strata__redis_at *at = calloc(n, sizeof *at);
    size_t *item = calloc(n, sizeof *item), i, g, k = 0, pos = 0;
    redisReply **r = calloc(n * ops->nrep, sizeof *r);
    unsigned int servers[STRATA__ROUTE_MAX_NODES] = {0};
    size_t start[STRATA__ROUTE_MAX_NODES + 1];
    strata__redis_req qs[STRATA__ROUTE_MAX_NODES] = {{{0, 0, 0}, 0}};
    redisReply **rs[STRATA__ROUTE_MAX_NODES] = {NULL};
    int rcs[STRATA__ROUTE_MAX_NODES], first = 0, failed = 0;
    int64_t deadline;

    if (at == NULL || item == NULL || r == NULL) {
        first = strata__error(STRATA_ENOMEM, "out of memory for a batch of %zu", n);
        goto out;
    }
    deadline = strata__now_mono_ms() + b->nodes.timeout_ms; /* redone items share the call's deadline */
    for (i = 0; i < n; i++) {
        at[i] = route(b, keys[i], keylens[i]);
        at[i].deadline_ms = deadline;
        for (g = 0; g < k && servers[g] != at[i].server; g++)
            ;
        if (g == k)
            servers[k++] = at[i].server;
    }
    for (g = 0; g < k; g++) { /* each server's items, in call order, replies side by side */
        start[g] = pos;
        qs[g] = (strata__redis_req){{0, 0, 0}, 0};
        rs[g] = r + pos * ops->nrep;
        for (i = 0; i < n; i++)
            if (at[i].server == servers[g]) {
                item[pos++] = i;
                if (first == 0)
                    first = ops->build(b, ud, i, &qs[g]);
            }
    }
    start[k] = pos;
    if (first == 0)
        strata__nodes_run_each(&b->nodes, k, servers, qs, rs, rcs, what);
    for (g = 0; first == 0 && g < k; g++)
        for (pos = start[g]; pos < start[g + 1]; pos++) {
            redisReply **mr = r + pos * ops->nrep;
            strata__redirect d;
            int one = rcs[g];
            i = item[pos];
            if (one == 0 && strata__rp_redirect(mr, ops->nrep, &d) != STRATA__REDIRECT_NONE) {
                strata__redis_req q1 = {{0, 0, 0}, 0};
                strata__redis_replies_free(mr, ops->nrep);
                if ((one = ops->build(b, ud, i, &q1)) == 0 && (one = run(b, &at[i], &q1, mr, what)) == 0)
                    one = ops->parse(b, ud, i, at[i].server, mr);
                strata__redis_req_free(&q1);
            } else if (one == 0) {
                one = ops->parse(b, ud, i, servers[g], mr);
            }
            if (one < 0 && failed == 0)
                failed = one;
        }
    if (first == 0)
        first = failed;
    for (g = 0; g < k; g++)
        strata__redis_req_free(&qs[g]);
out:
    if (r)
        strata__redis_replies_free(r, n * ops->nrep);
    free(r);
    free(item);
    free(at);
    return first;
}

/* ---- key/value ---- */

static int rb_get(strata__backend *be, const char *key, size_t keylen, strata__bytes *out)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    redisReply *r[1] = {NULL};
    strata__redis_at s = route(b, key, keylen);
    int rc = strata__rq_get(&q, key, keylen);
    if (rc == 0 && (rc = run(b, &s, &q, r, "GET")) == 0)
        rc = strata__rp_get(who(b, s.server), r[0], out);
    strata__redis_replies_free(r, 1);
    strata__redis_req_free(&q);
    return rc;
}

typedef struct get_many_ud {
    const char *const *keys;
    const size_t *keylens;
    strata__bytes *outs;
    int *rcs;
} get_many_ud;

static int get_build(rb *b, void *ud, size_t i, strata__redis_req *q)
{
    get_many_ud *g = ud;
    (void)b;
    return strata__rq_get(q, g->keys[i], g->keylens[i]);
}

static int get_parse(rb *b, void *ud, size_t i, unsigned int server, redisReply **r)
{
    get_many_ud *g = ud;
    int rc = strata__rp_get(who(b, server), r[0], &g->outs[i]);
    g->rcs[i] = rc < 0 ? STRATA_MISS : rc;
    return rc < 0 ? rc : 0;
}

static int rb_get_many(strata__backend *be, size_t n, const char *const *keys, const size_t *keylens,
                       strata__bytes *outs, int *rcs)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    redisReply *r[1] = {NULL};
    strata__redis_at s;
    int rc;
    if (n == 0)
        return 0;
    if (is_cluster(b)) { /* keys of many slots: a GET each, pipelined per node */
        static const batch_ops ops = {1, get_build, get_parse};
        get_many_ud g = {keys, keylens, outs, rcs};
        return batch_run(b, n, keys, keylens, &ops, &g, "GET (many)");
    }
    s = route(b, keys[0], keylens[0]); /* one node: every key is there */
    if ((rc = strata__rq_mget(&q, n, keys, keylens)) == 0 && (rc = run(b, &s, &q, r, "MGET")) == 0)
        rc = strata__rp_mget(who(b, s.server), r[0], n, outs, rcs);
    strata__redis_replies_free(r, 1);
    strata__redis_req_free(&q);
    return rc;
}

typedef struct set_many_ud {
    const char *const *keys;
    const size_t *keylens;
    const char *const *vals;
    const size_t *vallens;
    const int64_t *ttls_ms;
    int *deleted;               /* del_many */
} set_many_ud;

static int write_build(rb *b, void *ud, size_t i, strata__redis_req *q)
{
    set_many_ud *w = ud;
    char lk[RB_KEYBUF], payload[STRATA__INV_ORIGIN_LEN + RB_KEYBUF];
    return strata__rq_write(q, w->keys[i], w->keylens[i], lk, lease_key(b, w->keys[i], w->keylens[i], lk), w->vals[i],
                            w->vallens[i], w->ttls_ms[i], b->chan, b->chanlen, payload,
                            invalidation(b, w->keys[i], w->keylens[i], payload));
}

static int write_parse(rb *b, void *ud, size_t i, unsigned int server, redisReply **r)
{
    (void)ud;
    (void)i;
    return strata__rp_write(who(b, server), r);
}

/* n writes pipelined, each in its own MULTI (5 replies); 0 or the first error. */
static int rb_set_many(strata__backend *be, size_t n, const char *const *keys, const size_t *keylens,
                       const char *const *vals, const size_t *vallens, const int64_t *ttls_ms)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    char lk[RB_KEYBUF], payload[STRATA__INV_ORIGIN_LEN + RB_KEYBUF];
    redisReply **r;
    size_t i;
    strata__redis_at s;
    int rc = 0, first = 0;

    for (i = 0; i < n; i++)
        if (ttls_ms[i] <= 0)
            return strata__error(STRATA_EINVAL, "SET: ttl_ms must be > 0 (got %lld)", (long long)ttls_ms[i]);
    if (n == 0)
        return 0;
    if ((rc = keys_ok(b, n, keys, keylens)) < 0)
        return rc;
    if (is_cluster(b)) { /* pipelined per node */
        static const batch_ops ops = {5, write_build, write_parse};
        set_many_ud w = {keys, keylens, vals, vallens, ttls_ms, NULL};
        return batch_run(b, n, keys, keylens, &ops, &w, "SET");
    }
    if ((r = calloc(n * 5, sizeof *r)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory for %zu writes", n);
    s = route(b, keys[0], keylens[0]);
    for (i = 0; i < n && rc == 0; i++) /* built whole before anything is sent: no half-sent batch */
        rc = strata__rq_write(&q, keys[i], keylens[i], lk, lease_key(b, keys[i], keylens[i], lk), vals[i],
                              vallens[i], ttls_ms[i], b->chan, b->chanlen, payload,
                              invalidation(b, keys[i], keylens[i], payload));
    if (rc == 0 && (rc = run(b, &s, &q, r, "SET")) == 0) {
        for (i = 0; i < n; i++) { /* every reply was read: the stream stays in sync */
            int one = strata__rp_write(who(b, s.server), r + 5 * i);
            if (one != 0 && first == 0)
                first = one;
        }
        rc = first;
    }
    strata__redis_replies_free(r, n * 5);
    free(r);
    strata__redis_req_free(&q);
    return rc;
}

static int rb_set(strata__backend *be, const char *key, size_t keylen, const char *val, size_t vallen,
                  int64_t ttl_ms)
{
    return rb_set_many(be, 1, &key, &keylen, &val, &vallen, &ttl_ms);
}

static int rb_del(strata__backend *be, const char *key, size_t keylen)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    char lk[RB_KEYBUF], payload[STRATA__INV_ORIGIN_LEN + RB_KEYBUF];
    redisReply *r[5] = {NULL, NULL, NULL, NULL, NULL};
    strata__redis_at s = route(b, key, keylen);
    int rc = key_ok(b, key, keylen);
    if (rc < 0)
        return rc;
    rc = strata__rq_delete(&q, key, keylen, lk, lease_key(b, key, keylen, lk), b->chan, b->chanlen, payload,
                           invalidation(b, key, keylen, payload));
    if (rc == 0 && (rc = run(b, &s, &q, r, "DEL")) == 0)
        rc = strata__rp_delete(who(b, s.server), r);
    strata__redis_replies_free(r, 5);
    strata__redis_req_free(&q);
    return rc;
}

static int rb_touch(strata__backend *be, const char *key, size_t keylen, int64_t ttl_ms)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    redisReply *r[1] = {NULL};
    strata__redis_at s = route(b, key, keylen);
    int64_t v = 0;
    int rc;
    if (ttl_ms <= 0)
        return strata__error(STRATA_EINVAL, "touch: ttl_ms must be > 0 (got %lld)", (long long)ttl_ms);
    if ((rc = strata__rq_touch(&q, key, keylen, ttl_ms)) == 0 && (rc = run(b, &s, &q, r, "PEXPIRE")) == 0 &&
        (rc = strata__rp_integer(who(b, s.server), r[0], "PEXPIRE", &v)) == 0)
        rc = v == 1 ? 0 : STRATA_MISS;
    strata__redis_replies_free(r, 1);
    strata__redis_req_free(&q);
    return rc;
}

/* ---- leases ---- */

/* A lease script by SHA on conn; NOSCRIPT (first use on this server, or
 * after a restart or SCRIPT FLUSH) sends it whole on the same connection. */
static int script_on(rb *b, strata__redis_at *s, strata__pool_conn **conn, int which, int nkeys, int argc,
                     const char **args, const size_t *lens, redisReply **r, const char *what)
{
    strata__redis_req q = {{0, 0, 0}, 0};
    int use_sha, rc = 0;
    for (use_sha = 1; use_sha >= 0; use_sha--) {
        strata__redis_req_reset(&q);
        if ((rc = strata__rq_script(&q, use_sha, which, nkeys, argc, args, lens)) == 0)
            rc = strata__nodes_exchange(&b->nodes, s, conn, &q, r, what);
        if (rc != 0 || !strata__rp_is_noscript(r[0]) || use_sha == 0)
            break;
        strata__redis_replies_free(r, 1);
    }
    strata__redis_req_free(&q);
    return rc;
}

static int run_script(rb *b, strata__redis_at *s, int which, int nkeys, int argc, const char **args, const size_t *lens,
                      redisReply **r, const char *what)
{
    strata__pool_conn *conn;
    int rc;
    if (b->io_host) {
        strata__redis_req q = {{0, 0, 0}, 0};
        return run(b, s, &q, r, what);
    }
    if ((rc = strata__nodes_acquire(&b->nodes, s, &conn)) != 0)
        return rc;
    rc = script_on(b, s, &conn, which, nkeys, argc, args, lens, r, what);
    strata__nodes_release(&b->nodes, s, conn);
    return rc;
}

static int rb_lease_acquire(strata__backend *be, const char *key, size_t keylen, uint64_t token,
                            int64_t lease_ttl_ms, uint64_t *guard, int64_t *wait_ms)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    char lk[RB_KEYBUF];
    redisReply *r[STRATA__LEASE_TAKE_REPLIES] = {NULL, NULL, NULL}, *over[1] = {NULL};
    strata__redis_at s = route(b, key, keylen);
    size_t lklen = lease_key(b, key, keylen, lk);
    strata__pool_conn *conn;
    int rc;
    if (lease_ttl_ms <= 0)
        return strata__error(STRATA_EINVAL, "lease_acquire: lease_ttl_ms must be > 0");
    if ((rc = key_ok(b, key, keylen)) < 0)
        return rc;
    *guard = 0; /* the lease itself guards: set and del delete it */
    if ((rc = strata__rq_lease_take(&q, lk, lklen, token, lease_ttl_ms)) < 0)
        return rc;
    if (b->io_host) {
        rc = run(b, &s, &q, r, "lease SET NX");
        strata__redis_req_free(&q);
        return rc;
    }
    if ((rc = strata__nodes_acquire(&b->nodes, &s, &conn)) == 0) {
        const char *held = "";
        size_t heldlen = 0;
        if ((rc = strata__nodes_exchange(&b->nodes, &s, &conn, &q, r, "lease SET NX")) == 0 &&
            (rc = strata__rp_lease_take(who(b, s.server), r, wait_ms, &held, &heldlen)) == STRATA__LEASE_BROKEN) {
            /* A holder that is no lease of ours: take it over, on the same connection. */
            char tok[20], ttl[24];
            const char *args[4] = {lk, tok, ttl, held};
            size_t lens[4] = {lklen, 0, 0, heldlen};
            lens[1] = strata__redis_fmt_token(tok, sizeof tok, token);
            lens[2] = strata__redis_fmt_i64(ttl, sizeof ttl, lease_ttl_ms);
            if ((rc = script_on(b, &s, &conn, STRATA__SCRIPT_TAKEOVER, 1, 4, args, lens, over, "lease take-over")) == 0)
                rc = strata__rp_lease_takeover(who(b, s.server), over[0], wait_ms);
        }
        strata__nodes_release(&b->nodes, &s, conn);
    }
    strata__redis_replies_free(r, STRATA__LEASE_TAKE_REPLIES);
    strata__redis_replies_free(over, 1);
    strata__redis_req_free(&q);
    return rc;
}

static int rb_lease_fill(strata__backend *be, const char *key, size_t keylen, uint64_t token, uint64_t guard,
                         const char *val, size_t vallen, int64_t ttl_ms)
{
    rb *b = RB(be);
    char lk[RB_KEYBUF], tok[20], ttl[24];
    redisReply *r[1] = {NULL};
    strata__redis_at s = route(b, key, keylen);
    const char *args[5] = {key, lk, tok, val, ttl};
    size_t lens[5] = {keylen, 0, 0, vallen, 0};
    int rc;
    (void)guard;
    if (ttl_ms <= 0)
        return strata__error(STRATA_EINVAL, "lease_fill: ttl_ms must be > 0 (got %lld)", (long long)ttl_ms);
    if ((rc = key_ok(b, key, keylen)) < 0)
        return rc;
    lens[1] = lease_key(b, key, keylen, lk);
    lens[2] = strata__redis_fmt_token(tok, sizeof tok, token);
    lens[4] = strata__redis_fmt_i64(ttl, sizeof ttl, ttl_ms);
    rc = run_script(b, &s, STRATA__SCRIPT_FILL, 2, 5, args, lens, r, "lease fill");
    if (rc == 0)
        rc = strata__rp_lease_fill(who(b, s.server), r[0], key, keylen);
    strata__redis_replies_free(r, 1);
    return rc;
}

static int rb_lease_release(strata__backend *be, const char *key, size_t keylen, uint64_t token)
{
    rb *b = RB(be);
    char lk[RB_KEYBUF], tok[20];
    redisReply *r[1] = {NULL};
    strata__redis_at s = route(b, key, keylen);
    const char *args[2] = {lk, tok};
    size_t lens[2] = {0, 0};
    int rc;
    if ((rc = key_ok(b, key, keylen)) < 0)
        return rc;
    lens[0] = lease_key(b, key, keylen, lk);
    lens[1] = strata__redis_fmt_token(tok, sizeof tok, token);
    rc = run_script(b, &s, STRATA__SCRIPT_RELEASE, 1, 2, args, lens, r, "lease release");
    if (rc == 0)
        rc = strata__rp_lease_release(who(b, s.server), r[0]);
    strata__redis_replies_free(r, 1);
    return rc;
}

/* ---- counters ---- */

static int rb_incr(strata__backend *be, const char *key, size_t keylen, int64_t delta, int64_t *out)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    redisReply *r[1] = {NULL};
    strata__redis_at s = route(b, key, keylen);
    int rc;
    if ((rc = strata__rq_incr(&q, key, keylen, delta)) == 0 && (rc = run(b, &s, &q, r, "INCRBY")) == 0)
        rc = strata__rp_integer(who(b, s.server), r[0], "INCRBY", out);
    strata__redis_replies_free(r, 1);
    strata__redis_req_free(&q);
    return rc;
}

/* SET NX creates the counter at init, INCRBY adds delta (0 reads it): two
 * atomic commands pipelined in one round trip. */
static int rb_counter(strata__backend *be, const char *key, size_t keylen, int64_t init, int64_t delta,
                      int64_t *out)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    redisReply *r[2] = {NULL, NULL};
    strata__redis_at s = route(b, key, keylen);
    int rc;
    if ((rc = strata__rq_counter(&q, key, keylen, init, delta)) == 0 && (rc = run(b, &s, &q, r, "INCRBY")) == 0)
        rc = strata__rp_counter(who(b, s.server), r, out);
    strata__redis_replies_free(r, 2);
    strata__redis_req_free(&q);
    return rc;
}

static size_t rb_max_value_size(strata__backend *be)
{
    (void)be;
    return RB_MAX_VALUE;
}

/* ---- the write-behind journal (stream.c) ---- */

/* All items pipelined (one round trip), each in its own MULTI, then XLEN. */
static int rb_wb_append(strata__backend *be, size_t n, strata__wb_item *items, int64_t now_ms, uint64_t *backlog)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    char lk[RB_KEYBUF], payload[STRATA__INV_ORIGIN_LEN + RB_KEYBUF], stream[STRATA__WB_STREAM_KEYBUF];
    size_t nr = n * STRATA__WB_APPEND_REPLIES + 1, i;
    redisReply **r;
    strata__redis_at s;
    int64_t len = 0;
    int rc = 0, first = 0;

    if (n == 0)
        return 0;
    if (is_cluster(b))
        return strata__error(STRATA_EOPTION, "redis cluster: write-behind is not supported yet (its journal is one "
                             "stream per namespace, a single slot; docs/CLUSTER.md): use write-through");
    if ((r = calloc(nr, sizeof *r)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory for %zu journal writes", n);
    s = route(b, items[0].fk, items[0].fklen);
    for (i = 0; i < n && rc == 0; i++) {
        strata__wb_append_args a;
        a.ns = b->ns; a.nslen = b->nslen;
        a.fk = items[i].fk; a.fklen = items[i].fklen;
        a.lk = lk; a.lklen = lease_key(b, items[i].fk, items[i].fklen, lk);
        a.env = items[i].env; a.envlen = items[i].envlen;
        a.ttl_ms = items[i].ttl_ms;
        a.key = items[i].key; a.keylen = items[i].keylen;
        a.val = items[i].val; a.vallen = items[i].vallen;
        a.now_ms = now_ms;
        a.token = strata__random_u64() | 1; /* never 0 ("unknown") */
        a.chan = b->chan; a.chanlen = b->chanlen;
        a.payload = payload; a.paylen = invalidation(b, items[i].fk, items[i].fklen, payload);
        items[i].rc = STRATA_ENOMEM;
        rc = strata__rq_wb_append(&q, &a);
    }
    if (rc == 0)
        rc = strata__rq_xlen(&q, stream, strata__wb_stream_key(b->ns, b->nslen, stream, 0));
    if (rc == 0 && (rc = run(b, &s, &q, r, "write-behind append")) == 0) {
        for (i = 0; i < n; i++) {
            items[i].rc = strata__rp_wb_append(who(b, s.server), r + STRATA__WB_APPEND_REPLIES * i);
            if (items[i].rc != 0 && first == 0)
                first = items[i].rc;
        }
        if (strata__rp_integer(who(b, s.server), r[nr - 1], "XLEN", &len) == 0)
            *backlog = (uint64_t)len;
        rc = first;
    }
    strata__redis_replies_free(r, nr);
    free(r);
    strata__redis_req_free(&q);
    return rc;
}

/* XREADGROUP ... > : records never delivered; NOGROUP (first use of the
 * stream) makes the group, from the start, and reads again. */
static int wb_read_new(rb *b, strata__redis_at *s, const char *consumer, const char *stream, size_t slen,
                       strata__wb_record *recs, size_t *n, size_t max)
{
    strata__redis_req q = {{0, 0, 0}, 0};
    redisReply *r[1] = {NULL};
    int rc = 0, attempt;
    for (attempt = 0; attempt < 2 && rc == 0; attempt++) {
        strata__redis_req_reset(&q);
        if ((rc = strata__rq_wb_read_new(&q, consumer, max - *n, stream, slen)) != 0 ||
            (rc = run(b, s, &q, r, "XREADGROUP")) != 0)
            break;
        if (!strata__rp_is_nogroup(r[0]) || attempt > 0) {
            rc = strata__rp_wb_read_new(who(b, s->server), r[0], recs, n, max);
            break;
        }
        strata__redis_replies_free(r, 1);
        strata__redis_req_reset(&q);
        if ((rc = strata__rq_wb_group(&q, stream, slen)) == 0 && (rc = run(b, s, &q, r, "XGROUP CREATE")) == 0)
            rc = strata__rp_wb_group(who(b, s->server), r[0]);
        strata__redis_replies_free(r, 1);
    }
    strata__redis_replies_free(r, 1);
    strata__redis_req_free(&q);
    return rc;
}

/* Claims first (when asked), so a busy stream cannot starve a dead
 * consumer's records, then new records up to max. */
static int rb_wb_read(strata__backend *be, const char *consumer, size_t max, int64_t claim_idle_ms, char *cursor,
                      size_t cursorsize, strata__wb_record **out, size_t *nout)
{
    rb *b = RB(be);
    char stream[STRATA__WB_STREAM_KEYBUF];
    size_t slen = strata__wb_stream_key(b->ns, b->nslen, stream, 0), n = 0, i;
    strata__redis_at s = route(b, stream, slen);
    strata__wb_record *recs;
    int rc = 0;

    *out = NULL;
    *nout = 0;
    if (max == 0 || is_cluster(b))
        return 0; /* a cluster journals nothing (rb_wb_append) */
    if ((recs = calloc(max, sizeof *recs)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory for %zu write-behind records", max);
    if (claim_idle_ms > 0) {
        strata__redis_req q = {{0, 0, 0}, 0};
        redisReply *r[1] = {NULL};
        if ((rc = strata__rq_wb_claim(&q, stream, slen, consumer, claim_idle_ms, cursor, max)) == 0 &&
            (rc = run(b, &s, &q, r, "XAUTOCLAIM")) == 0)
            rc = strata__rp_wb_claim(who(b, s.server), r[0], cursor, cursorsize, recs, &n, max);
        strata__redis_replies_free(r, 1);
        strata__redis_req_free(&q);
    }
    if (rc == 0 && n < max)
        rc = wb_read_new(b, &s, consumer, stream, slen, recs, &n, max);
    if (rc != 0 || n == 0) {
        strata__wb_records_free(recs, max);
        return rc;
    }
    for (i = n; i < max; i++) { /* a skipped entry may have left buffers in the unused tail */
        strata__bytes_free(&recs[i].key);
        strata__bytes_free(&recs[i].val);
    }
    *out = recs;
    *nout = n;
    return 0;
}

/* MULTI, [extra], ack script, EXEC. */
static int wb_ack_multi(rb *b, size_t nkeys, const char *const *keys, const size_t *keylens, const size_t *counts,
                        const strata__wb_id *ids, int extra_argc, const char **extra, const size_t *extralens,
                        const char *what)
{
    strata__redis_req q = {{0, 0, 0}, 0};
    char stream[STRATA__WB_STREAM_KEYBUF];
    redisReply *r[4] = {NULL, NULL, NULL, NULL};
    size_t nq = extra_argc > 0 ? 2 : 1;
    strata__redis_at s = route(b, stream, strata__wb_stream_key(b->ns, b->nslen, stream, 0));
    int rc;
    if ((rc = strata__rq_wb_ack(&q, b->ns, b->nslen, nkeys, keys, keylens, counts, ids, extra_argc, extra,
                                extralens)) == 0 &&
        (rc = run(b, &s, &q, r, what)) == 0)
        rc = strata__rp_multi(who(b, s.server), r, nq, what);
    strata__redis_replies_free(r, 4);
    strata__redis_req_free(&q);
    return rc;
}

static int rb_wb_ack(strata__backend *be, size_t nkeys, const char *const *keys, const size_t *keylens,
                     const size_t *counts, const strata__wb_id *ids)
{
    if (nkeys == 0)
        return 0;
    return wb_ack_multi(RB(be), nkeys, keys, keylens, counts, ids, 0, NULL, NULL, "write-behind ack");
}

static int rb_wb_dead(strata__backend *be, const char *key, size_t keylen, const char *val, size_t vallen, size_t n,
                      const strata__wb_id *ids, unsigned int attempts, const char *message)
{
    rb *b = RB(be);
    char dead[STRATA__WB_STREAM_KEYBUF], att[16], now[24];
    const char *argv[13];
    size_t lens[13];
    strata__wb_dead_argv(b->ns, b->nslen, key, keylen, val, vallen, attempts, message, strata__now_wall_ms(), dead,
                         att, now, argv, lens);
    return wb_ack_multi(b, 1, &key, &keylen, &n, ids, 13, argv, lens, "write-behind dead letter");
}

static int rb_wb_latest(strata__backend *be, size_t n, const char *const *keys, const size_t *keylens,
                        uint64_t *tokens)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    redisReply *r[1] = {NULL};
    strata__redis_at s = {0, -1, 0};
    size_t i;
    int rc;
    for (i = 0; i < n; i++)
        tokens[i] = 0;
    if (n == 0)
        return 0;
    if ((rc = strata__rq_wb_latest(&q, b->ns, b->nslen, n, keys, keylens)) == 0 &&
        (rc = run(b, &s, &q, r, "MGET journal ids")) == 0)
        rc = strata__rp_wb_latest(who(b, s.server), r[0], n, tokens);
    strata__redis_replies_free(r, 1);
    strata__redis_req_free(&q);
    return rc;
}

static int rb_wb_backlog(strata__backend *be, uint64_t *out)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    char stream[STRATA__WB_STREAM_KEYBUF];
    redisReply *r[1] = {NULL};
    size_t slen = strata__wb_stream_key(b->ns, b->nslen, stream, 0);
    strata__redis_at s = route(b, stream, slen);
    int64_t v = 0;
    int rc;
    if ((rc = strata__rq_xlen(&q, stream, slen)) == 0 && (rc = run(b, &s, &q, r, "XLEN")) == 0 &&
        (rc = strata__rp_integer(who(b, s.server), r[0], "XLEN", &v)) == 0)
        *out = (uint64_t)v;
    strata__redis_replies_free(r, 1);
    strata__redis_req_free(&q);
    return rc;
}

/* XTRIM the dead letters: MAXLEN = max, then MINID = now - max_age (both
 * exact, pipelined); *trimmed = the entries they removed. */
static int rb_wb_dead_trim(strata__backend *be, uint64_t max, int64_t max_age_ms, int64_t now_ms, uint64_t *trimmed)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    char dead[STRATA__WB_STREAM_KEYBUF];
    redisReply *r[2] = {NULL, NULL};
    size_t dlen = strata__wb_stream_key(b->ns, b->nslen, dead, 1);
    strata__redis_at s = route(b, dead, dlen);
    unsigned int i;
    int rc;
    *trimmed = 0;
    if (max == 0 && max_age_ms <= 0)
        return 0;
    rc = strata__rq_wb_dead_trim(&q, dead, dlen, max, max_age_ms, now_ms);
    if (rc == 0 && q.nreplies == 0) {
        strata__redis_req_free(&q);
        return 0;
    }
    if (rc == 0 && (rc = run(b, &s, &q, r, "XTRIM dead letters")) == 0) {
        for (i = 0; i < q.nreplies && rc == 0; i++) {
            int64_t v = 0;
            if ((rc = strata__rp_integer(who(b, s.server), r[i], "XTRIM dead letters", &v)) == 0)
                *trimmed += (uint64_t)v;
        }
    }
    strata__redis_replies_free(r, 2);
    strata__redis_req_free(&q);
    return rc;
}

/* ---- conditional writes, batch delete, leases as locks (docs/FRAMEWORKS.md) ---- */

/* add (old == NULL) or cas: one script (protocol.c). */
static int conditional_set(rb *b, const char *key, size_t keylen, const char *old, size_t oldlen, const char *val,
                           size_t vallen, int64_t ttl_ms)
{
    char lk[RB_KEYBUF], ttl[24], payload[STRATA__INV_ORIGIN_LEN + RB_KEYBUF];
    const char *args[7];
    size_t lens[7], n = 0;
    redisReply *r[1] = {NULL};
    strata__redis_at s = route(b, key, keylen);
    const char *what = old ? "cas" : "add";
    int64_t v = 0;
    int rc;
    if ((rc = key_ok(b, key, keylen)) < 0)
        return rc;
    args[n] = key; lens[n++] = keylen;
    args[n] = lk; lens[n++] = lease_key(b, key, keylen, lk);
    if (old) {
        args[n] = old; lens[n++] = oldlen;
    }
    args[n] = val; lens[n++] = vallen;
    args[n] = ttl; lens[n++] = strata__redis_fmt_i64(ttl, sizeof ttl, ttl_ms >= STRATA__TTL_NEVER ? 0 : ttl_ms);
    args[n] = b->chan; lens[n++] = b->chanlen;
    args[n] = payload; lens[n++] = invalidation(b, key, keylen, payload);
    rc = run_script(b, &s, old ? STRATA__SCRIPT_CAS : STRATA__SCRIPT_ADD, 2, (int)n, args, lens, r, what);
    if (rc == 0 && (rc = strata__rp_integer(who(b, s.server), r[0], what, &v)) == 0)
        rc = v == 1 ? 0 : v == 0 ? STRATA_EXISTS : STRATA_MISS;
    strata__redis_replies_free(r, 1);
    return rc;
}

static int rb_add(strata__backend *be, const char *key, size_t keylen, const char *val, size_t vallen, int64_t ttl_ms)
{
    return conditional_set(RB(be), key, keylen, NULL, 0, val, vallen, ttl_ms);
}

static int rb_cas(strata__backend *be, const char *key, size_t keylen, const char *old, size_t oldlen,
                  const char *val, size_t vallen, int64_t ttl_ms)
{
    return conditional_set(RB(be), key, keylen, old ? old : "", oldlen, val, vallen, ttl_ms);
}

static int del_build(rb *b, void *ud, size_t i, strata__redis_req *q)
{
    set_many_ud *w = ud;
    char lk[RB_KEYBUF], payload[STRATA__INV_ORIGIN_LEN + RB_KEYBUF];
    return strata__rq_delete(q, w->keys[i], w->keylens[i], lk, lease_key(b, w->keys[i], w->keylens[i], lk), b->chan,
                             b->chanlen, payload, invalidation(b, w->keys[i], w->keylens[i], payload));
}

static int del_parse(rb *b, void *ud, size_t i, unsigned int server, redisReply **r)
{
    set_many_ud *w = ud;
    int rc = strata__rp_delete(who(b, server), r);
    w->deleted[i] = rc == 0;
    return rc < 0 ? rc : 0;
}

/* One MULTI of DEL value, DEL lease, PUBLISH per key: one round trip. */
static int rb_del_many(strata__backend *be, size_t n, const char *const *keys, const size_t *keylens, int *deleted)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    char lk[RB_KEYBUF], payload[STRATA__INV_ORIGIN_LEN + RB_KEYBUF];
    redisReply **r;
    size_t i, nr = 3 * n + 2;
    strata__redis_at s;
    int rc;
    if (n == 0)
        return 0;
    if ((rc = keys_ok(b, n, keys, keylens)) < 0)
        return rc;
    if (is_cluster(b)) { /* a MULTI per key, pipelined per node */
        static const batch_ops ops = {5, del_build, del_parse};
        set_many_ud w = {keys, keylens, NULL, NULL, NULL, deleted};
        return batch_run(b, n, keys, keylens, &ops, &w, "DEL (many)");
    }
    if ((r = calloc(nr, sizeof *r)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory deleting %zu keys", n);
    s = route(b, keys[0], keylens[0]);
    rc = strata__redis_cmd1(&q, "MULTI");
    for (i = 0; rc == 0 && i < n; i++) {
        const char *argv[2] = {"DEL", keys[i]};
        size_t lens[2] = {3, keylens[i]};
        if ((rc = strata__redis_cmd(&q, 2, argv, lens)) == 0) {
            argv[1] = lk;
            lens[1] = lease_key(b, keys[i], keylens[i], lk);
            rc = strata__redis_cmd(&q, 2, argv, lens);
        }
        if (rc == 0)
            rc = strata__rq_publish(&q, b->chan, b->chanlen, payload, invalidation(b, keys[i], keylens[i], payload));
    }
    if (rc == 0)
        rc = strata__redis_cmd1(&q, "EXEC");
    if (rc == 0 && (rc = run(b, &s, &q, r, "DEL (many)")) == 0 &&
        (rc = strata__rp_multi(who(b, s.server), r, 3 * n, "DEL (many)")) == 0)
        for (i = 0; i < n; i++)
            deleted[i] = r[nr - 1]->element[3 * i]->type == REDIS_REPLY_INTEGER &&
                         r[nr - 1]->element[3 * i]->integer > 0;
    strata__redis_replies_free(r, nr);
    free(r);
    strata__redis_req_free(&q);
    return rc;
}

static int rb_lease_own(strata__backend *be, const char *key, size_t keylen, uint64_t token, int64_t ttl_ms)
{
    rb *b = RB(be);
    char lk[RB_KEYBUF], tok[20], ttl[24];
    const char *args[3] = {lk, tok, ttl};
    size_t lens[3];
    redisReply *r[1] = {NULL};
    strata__redis_at s = route(b, key, keylen);
    int64_t v = 0;
    int rc;
    if ((rc = key_ok(b, key, keylen)) < 0)
        return rc;
    lens[0] = lease_key(b, key, keylen, lk);
    lens[1] = token ? strata__redis_fmt_token(tok, sizeof tok, token) : 0;
    lens[2] = strata__redis_fmt_i64(ttl, sizeof ttl, ttl_ms > 0 ? ttl_ms : 0);
    rc = run_script(b, &s, STRATA__SCRIPT_OWN, 1, 3, args, lens, r, "lock");
    if (rc == 0 && (rc = strata__rp_integer(who(b, s.server), r[0], "lock", &v)) == 0) {
        if (token == 0)
            rc = v == 1 ? 0 : STRATA_MISS;
        else if (v != 1)
            rc = strata__error(STRATA_ELEASE, "%s: the lock is not held by this handle (expired or taken over)",
                               who(b, s.server));
    }
    strata__redis_replies_free(r, 1);
    return rc;
}

/* An empty payload is shorter than any origin: every subscriber drops its L1. */
static int rb_publish_flush(strata__backend *be)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    redisReply *r[1] = {NULL};
    int64_t v = 0;
    int rc = strata__rq_publish(&q, b->chan, b->chanlen, "", 0);
    strata__redis_at at = {0, -1, 0}; /* PUBLISH is cluster-wide: any node */
    if (rc == 0 && (rc = run(b, &at, &q, r, "PUBLISH (flush)")) == 0)
        rc = strata__rp_integer(who(b, at.server), r[0], "PUBLISH (flush)", &v);
    strata__redis_replies_free(r, 1);
    strata__redis_req_free(&q);
    return rc;
}

/* ---- for the operator tools (admin.c) ---- */

int strata__redis_pipeline(strata__backend *be, size_t n, const int *argcs, const char **const *argvs,
                           const size_t *const *lens, redisReply **replies, const char *what)
{
    rb *b = RB(be);
    strata__redis_req q = {{0, 0, 0}, 0};
    size_t i;
    int rc = 0;
    for (i = 0; i < n; i++)
        replies[i] = NULL;
    for (i = 0; i < n && rc == 0; i++)
        rc = strata__redis_cmd(&q, argcs[i], argvs[i], lens[i]);
    if (rc == 0 && n > 0) {
        strata__redis_at at = {0, -1, 0}; /* one node: every key is there */
        if (argcs[0] >= 2 && !(lens[0][0] == 4 && strncasecmp(argvs[0][0], "SCAN", 4) == 0))
            at = route(b, argvs[0][1], lens[0][1]); /* a cluster: its first key's node */
        rc = run(b, &at, &q, replies, what);
    }
    strata__redis_req_free(&q);
    return rc;
}

size_t strata__redis_backend_lease_key(strata__backend *be, const char *fk, size_t fklen, char *buf)
{
    return lease_key(RB(be), fk, fklen, buf);
}

/* ---- lifetime ---- */

/* Callers must have finished every call. */
static void rb_close(strata__backend *be)
{
    rb *b = RB(be);
    if (b == NULL)
        return;
    if (b->nodes_open)
        strata__nodes_close(&b->nodes);
    strata__route_free(b->route);
    free(b);
}

static const strata__backend_ops rb_ops = {
    "redis",
    rb_close,
    rb_get,
    rb_get_many,
    rb_set,
    rb_set_many,
    rb_del,
    rb_touch,
    rb_lease_acquire,
    rb_lease_fill,
    rb_lease_release,
    rb_incr,
    rb_max_value_size,
    rb_counter,
    rb_wb_append,
    rb_wb_read,
    rb_wb_ack,
    rb_wb_dead,
    rb_wb_backlog,
    rb_wb_latest,
    rb_wb_dead_trim,
    strata__redis_peek,
    strata__redis_scan,
    strata__redis_server_info,
    strata__redis_wb_status,
    strata__redis_wb_dead_list,
    strata__redis_wb_dead_take,
    rb_add,
    rb_cas,
    rb_del_many,
    rb_lease_own,
    rb_publish_flush,
};

int strata__backend_redis_open(strata__backend **out, const strata__config *cfg)
{
    rb *b;
    int rc;

    if (out == NULL || cfg == NULL)
        return strata__error(STRATA_EINVAL, "redis backend: NULL argument");
    *out = NULL;
    if (cfg->nslen > STRATA__MAX_NS)
        return strata__error(STRATA_EINVAL, "redis backend: namespace too long");
    if ((b = calloc(1, sizeof *b)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory opening the redis backend");
    b->base.ops = &rb_ops;
    if ((rc = strata__route_new(&b->route, cfg)) < 0) {
        free(b);
        return rc;
    }
    memcpy(b->ns, cfg->ns, cfg->nslen);
    b->ns[cfg->nslen] = '\0';
    b->nslen = cfg->nslen;
    b->io_host = cfg->io_host;
    b->cluster = strata__route_is_cluster(b->route);
    b->instance = cfg->instance;
    b->chanlen = strata__inv_channel(b->chan, sizeof b->chan, cfg);
    b->origin_gen = b->origin_claim = strata__fork_generation();
    strata__inv_origin(b->origin, b->instance);
    if ((rc = strata__nodes_open(&b->nodes, b->route, cfg)) < 0) {
        rb_close(&b->base);
        return rc;
    }
    b->nodes_open = 1;
    *out = &b->base;
    return 0;
}
