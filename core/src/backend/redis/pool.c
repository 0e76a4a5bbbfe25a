/* The blocking connection pool (pool.h). */
#include "pool.h"
#include "error.h"
#include "platform/platform.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define POOL_BACKOFF_MIN 50
#define POOL_BACKOFF_MAX 2000

struct strata__pool_conn {
    redisContext *ctx;     /* NULL until (re)connected */
    unsigned int gen;      /* fork generation the context was made in */
    unsigned int epoch;    /* p->epoch when made: older ones predate a server failure */
};

struct strata__redis_pool {
    char host[256];
    int port;
    char user[128];
    char password[256];
    int db;
    int64_t timeout_ms;
    int64_t connect_timeout_ms;

    strata__mutex mu;      /* guards everything below */
    strata__cond cv;
    strata__pool_conn *slots;
    size_t nslots;
    size_t *free_idx;      /* stack of free slot indices (LIFO keeps hot sockets warm) */
    size_t nfree;
    unsigned int waiters;
    unsigned int pool_gen; /* fork generation the pool was last reset in */
    unsigned int epoch;    /* bumped when a connection breaks (server restart, kill) */
    int64_t retry_at_ms;   /* no connect attempt before this (monotonic) */
    int64_t backoff_ms;    /* 0 after a successful connect */
    int probing;           /* a connect attempt is under way while in backoff */
    char last_cause[160];  /* why the last connect failed, for backoff messages */
};

/* ---- errors ---- */

static int ctx_timed_out(const redisContext *c, int err_no)
{
#ifdef REDIS_ERR_TIMEOUT
    if (c->err == REDIS_ERR_TIMEOUT)
        return 1;
#endif
    if (c->err != REDIS_ERR_IO)
        return 0;
    /* SO_RCVTIMEO surfaces as EAGAIN; connect() timeouts as ETIMEDOUT. errno
     * may have been touched by cleanup, so the message is checked too. */
    return err_no == EAGAIN || err_no == EWOULDBLOCK || err_no == ETIMEDOUT ||
           strstr(c->errstr, "timed out") != NULL || strstr(c->errstr, "temporarily unavailable") != NULL;
}

static int ctx_code(const redisContext *c, int err_no)
{
    if (ctx_timed_out(c, err_no))
        return STRATA_ETIMEOUT;
    if (c->err == REDIS_ERR_OOM)
        return STRATA_ENOMEM;
    return STRATA_EBACKEND;
}

/* ---- the pool ---- */

/* In a forked child the parent's sockets must not be used (both processes
 * would read the same stream), and slots held by parent threads that do not
 * exist here would never come back: reset the whole pool. close() alone sends
 * nothing, so the parent's connections are unaffected. Called with mu held. */
static void reset_after_fork(strata__redis_pool *p, unsigned int gen)
{
    size_t i;
    for (i = 0; i < p->nslots; i++) {
        if (p->slots[i].ctx != NULL && p->slots[i].gen != gen) {
            redisFree(p->slots[i].ctx);
            p->slots[i].ctx = NULL;
        }
        p->free_idx[i] = p->nslots - 1 - i;
    }
    p->nfree = p->nslots;
    p->waiters = 0;
    p->probing = 0; /* a parent thread's probe does not exist here */
    p->pool_gen = gen;
}

/* Called with mu held; releases it. */
static int backoff_fail(strata__redis_pool *p, int64_t now)
{
    int64_t left = p->retry_at_ms > now ? p->retry_at_ms - now : 0;
    int rc = strata__error(STRATA_EBACKEND, "redis %s:%d: reconnect backoff (%lld ms left%s) after: %s", p->host,
                           p->port, (long long)left, p->probing ? ", another caller is probing" : "", p->last_cause);
    strata__mutex_unlock(&p->mu);
    return rc;
}

static struct timeval ms_to_tv(int64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

/* Connects, applies timeouts and keepalive, then the protocol's hello
 * (AUTH and SELECT, pipelined). */
static int connect_slot(strata__redis_pool *p, strata__pool_conn *s, unsigned int gen, unsigned int epoch)
{
    redisContext *c;
    strata__redis_req q = {{0, 0, 0}, 0};
    redisReply *r[2] = {NULL, NULL};
    char who[300];
    unsigned int i;
    int err_no, rc = 0;

    c = redisConnectWithTimeout(p->host, p->port, ms_to_tv(p->connect_timeout_ms));
    err_no = errno;
    if (c == NULL)
        return strata__error(STRATA_ENOMEM, "redis %s:%d: connect: out of memory", p->host, p->port);
    if (c->err) {
        rc = ctx_code(c, err_no);
        strata__error(rc, "redis %s:%d: connect %s: %s", p->host, p->port,
                      rc == STRATA_ETIMEOUT ? "timed out" : "failed", c->errstr);
        redisFree(c);
        return rc;
    }
    if ((p->timeout_ms > 0 && redisSetTimeout(c, ms_to_tv(p->timeout_ms)) != REDIS_OK) ||
        redisEnableKeepAlive(c) != REDIS_OK) {
        rc = strata__error(STRATA_EBACKEND, "redis %s:%d: socket options: %s", p->host, p->port, c->errstr);
        redisFree(c);
        return rc;
    }
    if ((rc = strata__rq_hello(&q, p->user, p->password, p->db)) < 0) {
        redisFree(c);
        return rc;
    }
    if (q.nreplies > 0 && redisAppendFormattedCommand(c, q.buf.data, q.buf.len) != REDIS_OK)
        goto io_error;
    for (i = 0; i < q.nreplies; i++)
        if (redisGetReply(c, (void **)&r[i]) != REDIS_OK)
            goto io_error;
    snprintf(who, sizeof who, "redis %s:%d", p->host, p->port);
    if (q.nreplies > 0 && (rc = strata__rp_hello(who, r, q.nreplies)) < 0)
        rc = STRATA_EBACKEND; /* a refused AUTH or SELECT: this server is unusable to us */
    for (i = 0; i < q.nreplies; i++)
        if (r[i])
            freeReplyObject(r[i]);
    strata__redis_req_free(&q);
    if (rc != 0) {
        redisFree(c);
        return rc;
    }
    s->ctx = c;
    s->gen = gen;
    s->epoch = epoch;
    return 0;

io_error:
    err_no = errno;
    rc = ctx_code(c, err_no);
    strata__error(rc, "redis %s:%d: connection setup %s: %s", p->host, p->port,
                  rc == STRATA_ETIMEOUT ? "timed out" : "failed", c->errstr);
    for (i = 0; i < 2; i++)
        if (r[i])
            freeReplyObject(r[i]);
    strata__redis_req_free(&q);
    redisFree(c);
    return rc;
}

int strata__pool_acquire(strata__redis_pool *p, strata__pool_conn **out)
{
    unsigned int gen = strata__fork_generation();
    unsigned int epoch;
    int64_t deadline = 0, now = 0;
    strata__pool_conn *s;
    size_t i;
    int rc, probe;

    strata__mutex_lock(&p->mu);
    if (gen != p->pool_gen)
        reset_after_fork(p, gen);
    while (p->nfree == 0) {
        if (deadline == 0)
            deadline = strata__now_mono_ms() + (p->timeout_ms > 0 ? p->timeout_ms : 1);
        p->waiters++;
        rc = strata__cond_wait_until(&p->cv, &p->mu, deadline);
        p->waiters--;
        if (rc != 0 && p->nfree == 0) {
            strata__mutex_unlock(&p->mu);
            return strata__error(STRATA_ETIMEOUT, "redis %s:%d: no free connection within %lld ms (pool of %zu busy)",
                                 p->host, p->port, (long long)p->timeout_ms, p->nslots);
        }
    }
    /* Prefer a live context: a slot that needs connecting might be refused
     * by the backoff even though healthy connections are free. */
    for (i = p->nfree; i-- > 0;) {
        s = &p->slots[p->free_idx[i]];
        if (s->ctx != NULL && (s->gen != gen || s->epoch != p->epoch)) {
            /* Made before a fork, or before the server broke a connection
             * (a restarted server would answer it with EOF): drop it unused. */
            redisFree(s->ctx);
            s->ctx = NULL;
        }
        if (s->ctx != NULL) {
            size_t top = p->free_idx[p->nfree - 1];
            p->free_idx[p->nfree - 1] = p->free_idx[i];
            p->free_idx[i] = top;
            p->nfree--;
            strata__mutex_unlock(&p->mu);
            *out = s;
            return 0;
        }
    }
    now = strata__now_mono_ms();
    if (now < p->retry_at_ms || (p->backoff_ms > 0 && p->probing)) {
        /* A dead server costs no connect timeout per call, and once it has
         * failed only one caller at a time probes it. */
        return backoff_fail(p, now);
    }
    s = &p->slots[p->free_idx[--p->nfree]];
    probe = p->backoff_ms > 0;
    if (probe)
        p->probing = 1;
    epoch = p->epoch;
    strata__mutex_unlock(&p->mu);

    rc = connect_slot(p, s, gen, epoch); /* slow: outside the lock */

    strata__mutex_lock(&p->mu);
    if (probe)
        p->probing = 0;
    if (rc == 0) {
        p->backoff_ms = 0;
        p->retry_at_ms = 0;
    } else {
        /* Only a probe doubles the backoff: callers that failed together
         * (say the whole pool at start-up) are one failure, not n. */
        if (p->backoff_ms == 0)
            p->backoff_ms = POOL_BACKOFF_MIN;
        else if (probe)
            p->backoff_ms = p->backoff_ms * 2 > POOL_BACKOFF_MAX ? POOL_BACKOFF_MAX : p->backoff_ms * 2;
        p->retry_at_ms = strata__now_mono_ms() + p->backoff_ms;
        snprintf(p->last_cause, sizeof p->last_cause, "%s", strata_error_last());
        p->free_idx[p->nfree++] = (size_t)(s - p->slots);
        if (p->waiters)
            strata__cond_signal(&p->cv);
    }
    strata__mutex_unlock(&p->mu);
    if (rc == 0)
        *out = s;
    return rc;
}

void strata__pool_release(strata__redis_pool *p, strata__pool_conn *s)
{
    strata__mutex_lock(&p->mu);
    p->free_idx[p->nfree++] = (size_t)(s - p->slots);
    if (p->waiters)
        strata__cond_signal(&p->cv);
    strata__mutex_unlock(&p->mu);
}

/* The context failed (I/O, timeout, protocol, OOM): its stream position is
 * unknown, so it is freed. A broken (not merely slow) connection usually means
 * the server went away, so every older context is retired too. */
static int conn_fail(strata__redis_pool *p, strata__pool_conn *s, const char *what, int err_no)
{
    int code = ctx_code(s->ctx, err_no);
    if (code == STRATA_ETIMEOUT)
        strata__error(code, "redis %s:%d: %s timed out after %lld ms (%s)", p->host, p->port, what,
                      (long long)p->timeout_ms, s->ctx->errstr);
    else
        strata__error(code, "redis %s:%d: %s failed: %s", p->host, p->port, what, s->ctx->errstr);
    redisFree(s->ctx);
    s->ctx = NULL;
    if (code == STRATA_EBACKEND) {
        strata__mutex_lock(&p->mu);
        p->epoch++;
        strata__mutex_unlock(&p->mu);
    }
    return code;
}

int strata__pool_send(strata__redis_pool *p, strata__pool_conn *s, const strata__redis_req *q, const char *what)
{
    int done = 0;
    if (s->ctx == NULL)
        return strata__error(STRATA_EBACKEND, "redis %s:%d: %s: the connection was closed", p->host, p->port, what);
    if (redisAppendFormattedCommand(s->ctx, q->buf.data, q->buf.len) != REDIS_OK)
        return conn_fail(p, s, what, errno);
    while (!done)
        if (redisBufferWrite(s->ctx, &done) != REDIS_OK)
            return conn_fail(p, s, what, errno);
    return 0;
}

/* n replies into r; on failure the connection is closed and none kept. */
static inline int read_replies(strata__redis_pool *p, strata__pool_conn *s, unsigned int n, redisReply **r,
                               const char *what)
{
    unsigned int i, j;
    for (i = 0; i < n; i++) {
        void *reply = NULL;
        if (redisGetReply(s->ctx, &reply) != REDIS_OK) {
            int rc = conn_fail(p, s, what, errno);
            for (j = 0; j < i; j++) {
                freeReplyObject(r[j]);
                r[j] = NULL;
            }
            return rc;
        }
        r[i] = reply;
    }
    return 0;
}

int strata__pool_recv(strata__redis_pool *p, strata__pool_conn *s, unsigned int n, redisReply **r, const char *what)
{
    if (s->ctx == NULL)
        return strata__error(STRATA_EBACKEND, "redis %s:%d: %s: the connection was closed", p->host, p->port, what);
    return read_replies(p, s, n, r, what);
}

int strata__pool_exchange(strata__redis_pool *p, strata__pool_conn *s, const strata__redis_req *q, redisReply **r,
                          const char *what)
{
    if (s->ctx == NULL)
        return strata__error(STRATA_EBACKEND, "redis %s:%d: %s: the connection was closed", p->host, p->port, what);
    if (redisAppendFormattedCommand(s->ctx, q->buf.data, q->buf.len) != REDIS_OK)
        return conn_fail(p, s, what, errno);
    return read_replies(p, s, q->nreplies, r, what); /* the first read flushes the request */
}

int strata__pool_run(strata__redis_pool *p, const strata__redis_req *q, redisReply **r, const char *what)
{
    strata__pool_conn *s;
    int rc = strata__pool_acquire(p, &s);
    if (rc != 0)
        return rc;
    rc = strata__pool_exchange(p, s, q, r, what);
    strata__pool_release(p, s);
    return rc;
}

int strata__pool_open(strata__redis_pool **out, const strata__config *cfg, const char *host, int port)
{
    strata__redis_pool *p;
    size_t i, n;
    *out = NULL;
    if ((p = calloc(1, sizeof *p)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory opening the redis backend");
    snprintf(p->host, sizeof p->host, "%s", host);
    p->port = port;
    snprintf(p->user, sizeof p->user, "%s", cfg->user);
    snprintf(p->password, sizeof p->password, "%s", cfg->password);
    p->db = cfg->db;
    p->timeout_ms = cfg->opts.timeout_ms;
    p->connect_timeout_ms = cfg->opts.connect_timeout_ms > 0 ? cfg->opts.connect_timeout_ms : cfg->opts.timeout_ms;
    if (p->connect_timeout_ms <= 0)
        p->connect_timeout_ms = 1000;
    snprintf(p->last_cause, sizeof p->last_cause, "no connection yet");
    n = cfg->opts.pool_size > 0 ? cfg->opts.pool_size : 1;
    p->slots = calloc(n, sizeof *p->slots);
    p->free_idx = calloc(n, sizeof *p->free_idx);
    if (p->slots == NULL || p->free_idx == NULL)
        goto nomem;
    p->nslots = n;
    for (i = 0; i < n; i++)
        p->free_idx[i] = n - 1 - i;
    p->nfree = n;
    p->pool_gen = strata__fork_generation();
    if (strata__mutex_init(&p->mu) != 0)
        goto nomem;
    if (strata__cond_init(&p->cv) != 0) {
        strata__mutex_destroy(&p->mu);
        goto nomem;
    }
    *out = p;
    return 0;

nomem:
    free(p->free_idx);
    free(p->slots);
    free(p);
    return strata__error(STRATA_ENOMEM, "out of memory opening the redis backend");
}

void strata__pool_close(strata__redis_pool *p)
{
    size_t i;
    if (p == NULL)
        return;
    for (i = 0; i < p->nslots; i++)
        if (p->slots[i].ctx != NULL)
            redisFree(p->slots[i].ctx);
    strata__cond_destroy(&p->cv);
    strata__mutex_destroy(&p->mu);
    free(p->free_idx);
    free(p->slots);
    free(p);
}
