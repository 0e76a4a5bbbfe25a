/*
 * Redis backend over hiredis 0.14.1 (RESP2, blocking contexts).
 *
 * A fixed pool of contexts shared by all threads: a context is used by one
 * thread at a time (hiredis is not thread-safe per context). Contexts are made
 * lazily so a cache can be opened while its server is down, and re-made from
 * scratch (never redisReconnect, which forgets timeouts, AUTH and SELECT).
 * Any I/O error or timeout leaves unread replies on the socket, so the
 * context is freed rather than reused.
 */
#include "backend.h"
#include "error.h"
#include "platform/platform.h"
#include "backend/redis_watch.h"
#include "backend/redis_admin.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#define RB_MAX_VALUE     ((size_t)512 * 1024 * 1024) /* Redis proto-max-bulk-len default */
#define RB_BACKOFF_MIN   50
#define RB_BACKOFF_MAX   2000
#define RB_KEYBUF        (4096 + STRATA__MAX_NS + 16) /* lease keys of any legal key */
#define RB_ARGV_STACK    32

/* Lease scripts: atomic on the server, so check-and-write cannot interleave
 * with another client's set/del. */
enum { SCRIPT_FILL = 0, SCRIPT_RELEASE, SCRIPT_TAKEOVER, SCRIPT_ADD, SCRIPT_CAS, SCRIPT_OWN, SCRIPT_COUNT };

static const char *const script_text[SCRIPT_COUNT] = {
    /* lease_fill: KEYS = value, lease; ARGV = token, value, ttl_ms. set/del delete the lease, so a
     * lease still holding our token also proves nobody wrote since acquire. */
    "if redis.call('GET', KEYS[2]) == ARGV[1] then "
    "if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) "
    "else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end "
    "redis.call('DEL', KEYS[2]) return 1 end return 0",
    /* lease_release: KEYS[1] = lease key, ARGV[1] = token. */
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end return 0",
    /* lease take-over of a broken lease (no expiry, or not a token of ours):
     * KEYS[1] = lease key, ARGV = token, lease_ttl_ms, the value seen ("" when
     * it was not a string). Only while it is still what the caller saw, so
     * of several callers exactly one takes it. */
    "local t = redis.call('TYPE', KEYS[1])['ok'] "
    "if t == 'string' then if redis.call('GET', KEYS[1]) ~= ARGV[3] then return 0 end "
    "elseif t ~= 'none' then if ARGV[3] ~= '' then return 0 end redis.call('DEL', KEYS[1]) end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1",
    /* add: KEYS = value, lease; ARGV = value, ttl_ms ('0': none), channel, payload. */
    "local ok if ARGV[2] == '0' then ok = redis.call('SET', KEYS[1], ARGV[1], 'NX') "
    "else ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) end "
    "if not ok then return 0 end "
    "redis.call('DEL', KEYS[2]) redis.call('PUBLISH', ARGV[3], ARGV[4]) return 1",
    /* cas: KEYS = value, lease; ARGV = old, new, ttl_ms ('0': none), channel, payload. */
    "local v = redis.call('GET', KEYS[1]) if not v then return -1 end "
    "if v ~= ARGV[1] then return 0 end "
    "if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) "
    "else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end "
    "redis.call('DEL', KEYS[2]) redis.call('PUBLISH', ARGV[4], ARGV[5]) return 1",
    /* lease_own: KEYS[1] = lease; ARGV = token ('': who holds it?), ttl_ms ('0': release). */
    "local v = redis.call('GET', KEYS[1]) "
    "if ARGV[1] == '' then if v then return 1 end return 0 end "
    "if v ~= ARGV[1] then return -1 end "
    "if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) "
    "else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 1",
};

typedef struct rb_slot {
    redisContext *ctx;     /* NULL until (re)connected */
    unsigned int gen;      /* fork generation the context was made in */
    unsigned int epoch;    /* b->epoch when made: older ones predate a server failure */
} rb_slot;

typedef struct rb {
    strata__backend base;
    char host[256];
    int port;
    char user[128];
    char password[256];
    int db;
    char ns[STRATA__MAX_NS + 1];
    size_t nslen;
    int64_t timeout_ms;
    int64_t connect_timeout_ms;

    strata__mutex mu;      /* guards everything below */
    strata__cond cv;
    rb_slot *slots;
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

    char chan[STRATA__INV_CHANNEL_MAX]; /* invalidation channel of the namespace */
    size_t chanlen;
    char origin[STRATA__INV_ORIGIN_LEN + 1]; /* this cache in this process */
    uint64_t instance;

    char sha[SCRIPT_COUNT][41];
    int sha_ready[SCRIPT_COUNT]; /* atomic; sha[i] is immutable once set */
} rb;

static const strata__backend_ops rb_ops;

/* ---- errors ---------------------------------------------------------- */

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
           strstr(c->errstr, "timed out") != NULL ||
           strstr(c->errstr, "temporarily unavailable") != NULL;
}

static int ctx_code(const redisContext *c, int err_no)
{
    if (ctx_timed_out(c, err_no))
        return STRATA_ETIMEOUT;
    if (c->err == REDIS_ERR_OOM)
        return STRATA_ENOMEM;
    return STRATA_EBACKEND;
}

/* Error replies that mean the server cannot serve anyone right now: an
 * outage. Any other error reply refuses this one command. */
static int reply_is_outage(const redisReply *r)
{
    static const char *const down[] = {"LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN"};
    size_t i, n;
    for (i = 0; i < sizeof down / sizeof *down; i++) {
        n = strlen(down[i]);
        if (r->len >= n && memcmp(r->str, down[i], n) == 0)
            return 1;
    }
    return 0;
}

/* A server error reply, or a reply of a type the caller cannot use. */
static int reply_fail(rb *b, const redisReply *r, const char *what)
{
    if (r->type == REDIS_REPLY_ERROR)
        return strata__error(reply_is_outage(r) ? STRATA_EBACKEND : STRATA__EREFUSED, "redis %s:%d: %s: %.*s",
                             b->host, b->port, what, (int)(r->len > 300 ? 300 : r->len), r->str);
    return strata__error(STRATA_EBACKEND, "redis %s:%d: %s: unexpected reply type %d",
                         b->host, b->port, what, r->type);
}

/* ---- pool ------------------------------------------------------------ */

/* In a forked child the parent's sockets must not be used (both processes
 * would read the same stream), and slots held by parent threads that do not
 * exist here would never come back: reset the whole pool. close() alone sends
 * nothing, so the parent's connections are unaffected. Called with mu held. */
static void pool_reset_after_fork(rb *b, unsigned int gen)
{
    size_t i;
    for (i = 0; i < b->nslots; i++) {
        if (b->slots[i].ctx != NULL && b->slots[i].gen != gen) {
            redisFree(b->slots[i].ctx);
            b->slots[i].ctx = NULL;
        }
        b->free_idx[i] = b->nslots - 1 - i;
    }
    b->nfree = b->nslots;
    b->waiters = 0;
    b->probing = 0; /* a parent thread's probe does not exist here */
    b->pool_gen = gen;
    strata__inv_origin(b->origin, b->instance); /* a child is a new publisher */
}

static int connect_slot(rb *b, rb_slot *s, unsigned int gen, unsigned int epoch);

/* Called with mu held; releases it. */
static int backoff_fail(rb *b, int64_t now)
{
    int64_t left = b->retry_at_ms > now ? b->retry_at_ms - now : 0;
    int rc = strata__error(STRATA_EBACKEND,
                           "redis %s:%d: reconnect backoff (%lld ms left%s) after: %s",
                           b->host, b->port, (long long)left,
                           b->probing ? ", another caller is probing" : "", b->last_cause);
    strata__mutex_unlock(&b->mu);
    return rc;
}

/* Takes a free slot (waiting at most timeout_ms) and makes sure it holds a live
 * context of this process. On error the slot is already given back. */
static int slot_acquire(rb *b, rb_slot **out)
{
    unsigned int gen = strata__fork_generation();
    unsigned int epoch;
    int64_t deadline = 0, now = 0;
    rb_slot *s;
    size_t i;
    int rc, probe;

    strata__mutex_lock(&b->mu);
    if (gen != b->pool_gen)
        pool_reset_after_fork(b, gen);
    while (b->nfree == 0) {
        if (deadline == 0)
            deadline = strata__now_mono_ms() + (b->timeout_ms > 0 ? b->timeout_ms : 1);
        b->waiters++;
        rc = strata__cond_wait_until(&b->cv, &b->mu, deadline);
        b->waiters--;
        if (rc != 0 && b->nfree == 0) {
            strata__mutex_unlock(&b->mu);
            return strata__error(STRATA_ETIMEOUT,
                                 "redis %s:%d: no free connection within %lld ms "
                                 "(pool of %zu busy)", b->host, b->port,
                                 (long long)b->timeout_ms, b->nslots);
        }
    }
    /* Prefer a live context: a slot that needs connecting might be refused
     * by the backoff even though healthy connections are free. */
    for (i = b->nfree; i-- > 0;) {
        s = &b->slots[b->free_idx[i]];
        if (s->ctx != NULL && (s->gen != gen || s->epoch != b->epoch)) {
            /* Made before a fork, or before the server broke a connection
             * (a restarted server would answer it with EOF): drop it unused. */
            redisFree(s->ctx);
            s->ctx = NULL;
        }
        if (s->ctx != NULL) {
            size_t top = b->free_idx[b->nfree - 1];
            b->free_idx[b->nfree - 1] = b->free_idx[i];
            b->free_idx[i] = top;
            b->nfree--;
            strata__mutex_unlock(&b->mu);
            *out = s;
            return 0;
        }
    }
    now = strata__now_mono_ms();
    if (now < b->retry_at_ms || (b->backoff_ms > 0 && b->probing)) {
        /* A dead server costs no connect timeout per call, and once it has
         * failed only one caller at a time probes it. */
        return backoff_fail(b, now);
    }
    s = &b->slots[b->free_idx[--b->nfree]];
    probe = b->backoff_ms > 0;
    if (probe)
        b->probing = 1;
    epoch = b->epoch;
    strata__mutex_unlock(&b->mu);

    rc = connect_slot(b, s, gen, epoch); /* slow: outside the lock */

    strata__mutex_lock(&b->mu);
    if (probe)
        b->probing = 0;
    if (rc == 0) {
        b->backoff_ms = 0;
        b->retry_at_ms = 0;
    } else {
        /* Only a probe doubles the backoff: callers that failed together
         * (say the whole pool at start-up) are one failure, not n. */
        if (b->backoff_ms == 0)
            b->backoff_ms = RB_BACKOFF_MIN;
        else if (probe)
            b->backoff_ms = b->backoff_ms * 2 > RB_BACKOFF_MAX ? RB_BACKOFF_MAX
                                                               : b->backoff_ms * 2;
        b->retry_at_ms = strata__now_mono_ms() + b->backoff_ms;
        snprintf(b->last_cause, sizeof b->last_cause, "%s", strata_error_last());
        b->free_idx[b->nfree++] = (size_t)(s - b->slots);
        if (b->waiters)
            strata__cond_signal(&b->cv);
    }
    strata__mutex_unlock(&b->mu);
    if (rc == 0)
        *out = s;
    return rc;
}

static void slot_release(rb *b, rb_slot *s)
{
    strata__mutex_lock(&b->mu);
    b->free_idx[b->nfree++] = (size_t)(s - b->slots);
    if (b->waiters)
        strata__cond_signal(&b->cv);
    strata__mutex_unlock(&b->mu);
}

/* The context failed (I/O, timeout, protocol, OOM): its stream position is
 * unknown, so it is freed. A broken (not merely slow) connection usually means
 * the server went away, so every older context is retired too. */
static int slot_fail(rb *b, rb_slot *s, const char *what, int err_no)
{
    int code = ctx_code(s->ctx, err_no);
    if (code == STRATA_ETIMEOUT)
        strata__error(code, "redis %s:%d: %s timed out after %lld ms (%s)", b->host, b->port,
                      what, (long long)b->timeout_ms, s->ctx->errstr);
    else
        strata__error(code, "redis %s:%d: %s failed: %s", b->host, b->port, what,
                      s->ctx->errstr);
    redisFree(s->ctx);
    s->ctx = NULL;
    if (code == STRATA_EBACKEND) {
        strata__mutex_lock(&b->mu);
        b->epoch++;
        strata__mutex_unlock(&b->mu);
    }
    return code;
}

static struct timeval ms_to_tv(int64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

/* Connects, applies timeouts and keepalive, then AUTH and SELECT pipelined. */
static int connect_slot(rb *b, rb_slot *s, unsigned int gen, unsigned int epoch)
{
    redisContext *c;
    redisReply *r = NULL;
    const char *argv[3];
    size_t lens[3];
    char dbbuf[16];
    int n = 0, i, err_no, rc = 0;

    c = redisConnectWithTimeout(b->host, b->port, ms_to_tv(b->connect_timeout_ms));
    err_no = errno;
    if (c == NULL)
        return strata__error(STRATA_ENOMEM, "redis %s:%d: connect: out of memory",
                             b->host, b->port);
    if (c->err) {
        rc = ctx_code(c, err_no);
        strata__error(rc, "redis %s:%d: connect %s: %s", b->host, b->port,
                      rc == STRATA_ETIMEOUT ? "timed out" : "failed", c->errstr);
        redisFree(c);
        return rc;
    }
    if ((b->timeout_ms > 0 && redisSetTimeout(c, ms_to_tv(b->timeout_ms)) != REDIS_OK) ||
        redisEnableKeepAlive(c) != REDIS_OK) {
        rc = strata__error(STRATA_EBACKEND, "redis %s:%d: socket options: %s",
                           b->host, b->port, c->errstr);
        redisFree(c);
        return rc;
    }

    if (b->password[0] != '\0') {
        argv[0] = "AUTH"; lens[0] = 4;
        i = 1;
        if (b->user[0] != '\0') {
            argv[i] = b->user; lens[i] = strlen(b->user); i++;
        }
        argv[i] = b->password; lens[i] = strlen(b->password); i++;
        if (redisAppendCommandArgv(c, i, argv, lens) != REDIS_OK)
            goto io_error;
        n++;
    }
    if (b->db != 0) {
        argv[0] = "SELECT"; lens[0] = 6;
        lens[1] = (size_t)snprintf(dbbuf, sizeof dbbuf, "%d", b->db);
        argv[1] = dbbuf;
        if (redisAppendCommandArgv(c, 2, argv, lens) != REDIS_OK)
            goto io_error;
        n++;
    }
    for (i = 0; i < n; i++) {
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            goto io_error;
        if (rc == 0 && r->type == REDIS_REPLY_ERROR)
            rc = strata__error(STRATA_EBACKEND, "redis %s:%d: %s refused: %.*s",
                               b->host, b->port, i == 0 && b->password[0] ? "AUTH" : "SELECT",
                               (int)(r->len > 200 ? 200 : r->len), r->str);
        freeReplyObject(r);
    }
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
    strata__error(rc, "redis %s:%d: connection setup %s: %s", b->host, b->port,
                  rc == STRATA_ETIMEOUT ? "timed out" : "failed", c->errstr);
    redisFree(c);
    return rc;
}

/* ---- commands -------------------------------------------------------- */

static int append(rb *b, rb_slot *s, int argc, const char **argv, const size_t *lens,
                  const char *what)
{
    if (redisAppendCommandArgv(s->ctx, argc, argv, lens) != REDIS_OK)
        return slot_fail(b, s, what, errno);
    return 0;
}

/* The next reply; on failure the context is gone and no more may be read. */
static int next_reply(rb *b, rb_slot *s, redisReply **r, const char *what)
{
    void *p = NULL;
    *r = NULL;
    if (redisGetReply(s->ctx, &p) != REDIS_OK)
        return slot_fail(b, s, what, errno);
    *r = p;
    return 0;
}

/* One command, one reply. */
static int command(rb *b, rb_slot *s, int argc, const char **argv, const size_t *lens,
                   redisReply **r, const char *what)
{
    int rc = append(b, s, argc, argv, lens, what);
    return rc != 0 ? rc : next_reply(b, s, r, what);
}

/* The user key part of a full key. The engine always passes "<ns>:<user>";
 * anything else is used whole, which still yields a distinct lease key. */
static void user_part(const rb *b, const char *key, size_t keylen,
                      const char **ukey, size_t *ulen)
{
    if (b->nslen > 0 && keylen > b->nslen && key[b->nslen] == ':' &&
        memcmp(key, b->ns, b->nslen) == 0) {
        *ukey = key + b->nslen + 1;
        *ulen = keylen - b->nslen - 1;
    } else {
        *ukey = key;
        *ulen = keylen;
    }
}

/* "<ns>#L:<user key>" into buf, or a malloc'd buffer when it does not fit
 * (free it when it differs from buf). NULL on OOM. */
static char *lease_key(const rb *b, const char *key, size_t keylen, char *buf,
                       size_t bufsize, size_t *outlen)
{
    const char *ukey;
    size_t ulen, len;
    char *p = buf;
    user_part(b, key, keylen, &ukey, &ulen);
    len = b->nslen + 3 + ulen;
    if (len > bufsize && (p = malloc(len)) == NULL) {
        strata__error(STRATA_ENOMEM, "out of memory building a lease key");
        return NULL;
    }
    memcpy(p, b->ns, b->nslen);
    memcpy(p + b->nslen, "#L:", 3);
    memcpy(p + b->nslen + 3, ukey, ulen);
    *outlen = len;
    return p;
}

static size_t fmt_i64(char *buf, size_t size, int64_t v)
{
    return (size_t)snprintf(buf, size, "%lld", (long long)v);
}

static size_t fmt_token(char *buf, size_t size, uint64_t token)
{
    return (size_t)snprintf(buf, size, "%016llx", (unsigned long long)token);
}

static int is_status(const redisReply *r, const char *text)
{
    return r->type == REDIS_REPLY_STATUS && r->len == strlen(text) &&
           memcmp(r->str, text, r->len) == 0;
}

/* Appends PUBLISH <channel> <origin><user key>: inside the write's MULTI, so
 * every L1 subscribed to the namespace hears of the write in the same round
 * trip and exactly when it becomes visible (docs/L1-COHERENCE.md). */
static int append_publish(rb *b, rb_slot *s, const char *key, size_t keylen, const char *what)
{
    char payload[STRATA__INV_ORIGIN_LEN + RB_KEYBUF];
    const char *argv[3], *ukey;
    size_t lens[3], ulen;
    user_part(b, key, keylen, &ukey, &ulen);
    if (ulen > RB_KEYBUF)
        ulen = RB_KEYBUF; /* cannot happen: keys are at most 4096 bytes */
    memcpy(payload, b->origin, STRATA__INV_ORIGIN_LEN);
    memcpy(payload + STRATA__INV_ORIGIN_LEN, ukey, ulen);
    argv[0] = "PUBLISH"; lens[0] = 7;
    argv[1] = b->chan; lens[1] = b->chanlen;
    argv[2] = payload; lens[2] = STRATA__INV_ORIGIN_LEN + ulen;
    return append(b, s, 3, argv, lens, what);
}

/* Appends MULTI, DEL lease, SET value PX ttl, PUBLISH, EXEC: the value write and the
 * lease kill happen atomically, in the same round trip as everything else. */
static int append_set(rb *b, rb_slot *s, const char *key, size_t keylen,
                      const char *lkey, size_t lklen, const char *val, size_t vallen,
                      int64_t ttl_ms)
{
    const char *argv[5];
    size_t lens[5];
    char ttl[24];
    int rc;

    argv[0] = "MULTI"; lens[0] = 5;
    if ((rc = append(b, s, 1, argv, lens, "SET")) != 0)
        return rc;
    argv[0] = "DEL"; lens[0] = 3;
    argv[1] = lkey; lens[1] = lklen;
    if ((rc = append(b, s, 2, argv, lens, "SET")) != 0)
        return rc;
    argv[0] = "SET"; lens[0] = 3;
    argv[1] = key; lens[1] = keylen;
    argv[2] = val; lens[2] = vallen;
    argv[3] = "PX"; lens[3] = 2;
    argv[4] = ttl; lens[4] = fmt_i64(ttl, sizeof ttl, ttl_ms);
    if ((rc = append(b, s, ttl_ms >= STRATA__TTL_NEVER ? 3 : 5, argv, lens, "SET")) != 0)
        return rc;
    if ((rc = append_publish(b, s, key, keylen, "SET")) != 0)
        return rc;
    argv[0] = "EXEC"; lens[0] = 4;
    return append(b, s, 1, argv, lens, "SET");
}

/* Reads the replies of a MULTI block of `nq` queued commands. On success
 * *exec is the EXEC array (caller frees). On a server error returns
 * EBACKEND with the stream still in sync. */
static int read_multi(rb *b, rb_slot *s, size_t nq, redisReply **exec, const char *what)
{
    redisReply *r = NULL;
    int rc, err = 0;
    size_t i;

    *exec = NULL;
    for (i = 0; i < nq + 1; i++) { /* MULTI's +OK, then +QUEUED each */
        if ((rc = next_reply(b, s, &r, what)) != 0)
            return rc;
        if (err == 0 && r->type == REDIS_REPLY_ERROR)
            err = reply_fail(b, r, what);
        freeReplyObject(r);
    }
    if ((rc = next_reply(b, s, &r, what)) != 0)
        return rc;
    if (err != 0) {
        freeReplyObject(r);
        return err;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != nq) {
        rc = reply_fail(b, r, what);
        freeReplyObject(r);
        return rc;
    }
    for (i = 0; i < nq; i++) {
        if (r->element[i]->type == REDIS_REPLY_ERROR) {
            rc = reply_fail(b, r->element[i], what);
            freeReplyObject(r);
            return rc;
        }
    }
    *exec = r;
    return 0;
}

/* Runs a script by SHA; when the server does not know it (first use, or
 * after a restart or SCRIPT FLUSH) loads and runs it in one round trip. */
static int run_script(rb *b, rb_slot *s, int which, int nkeys, int argc,
                      const char **args, const size_t *arglens, redisReply **out,
                      const char *what)
{
    const char *argv[12];
    size_t lens[12];
    char nk[8];
    redisReply *r = NULL;
    int i, rc;

    argv[2] = nk; lens[2] = (size_t)snprintf(nk, sizeof nk, "%d", nkeys);
    for (i = 0; i < argc; i++) {
        argv[3 + i] = args[i];
        lens[3 + i] = arglens[i];
    }
    if (strata__atomic_load(&b->sha_ready[which])) {
        argv[0] = "EVALSHA"; lens[0] = 7;
        argv[1] = b->sha[which]; lens[1] = 40;
        if ((rc = command(b, s, 3 + argc, argv, lens, &r, what)) != 0)
            return rc;
        if (!(r->type == REDIS_REPLY_ERROR && r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0)) {
            *out = r;
            return 0;
        }
        freeReplyObject(r);
    }
    {
        const char *load[3] = {"SCRIPT", "LOAD", script_text[which]};
        size_t loadlens[3] = {6, 4, strlen(script_text[which])};
        if ((rc = append(b, s, 3, load, loadlens, what)) != 0)
            return rc;
    }
    argv[0] = "EVAL"; lens[0] = 4;
    argv[1] = script_text[which]; lens[1] = strlen(script_text[which]);
    if ((rc = append(b, s, 3 + argc, argv, lens, what)) != 0)
        return rc;
    if ((rc = next_reply(b, s, &r, what)) != 0)
        return rc;
    if (r->type == REDIS_REPLY_STRING && r->len == 40 &&
        !strata__atomic_load(&b->sha_ready[which])) {
        strata__mutex_lock(&b->mu);
        if (!b->sha_ready[which]) {
            memcpy(b->sha[which], r->str, 40);
            b->sha[which][40] = '\0';
            strata__atomic_store(&b->sha_ready[which], 1);
        }
        strata__mutex_unlock(&b->mu);
    }
    freeReplyObject(r);
    return next_reply(b, s, out, what);
}

/* ---- ops ------------------------------------------------------------- */

#define RB(x) ((rb *)(x))

static int rb_get(strata__backend *be, const char *key, size_t keylen, strata__bytes *out)
{
    rb *b = RB(be);
    rb_slot *s;
    redisReply *r = NULL;
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, keylen};
    int rc;

    if ((rc = slot_acquire(b, &s)) != 0)
        return rc;
    rc = command(b, s, 2, argv, lens, &r, "GET");
    slot_release(b, s);
    if (rc != 0)
        return rc;
    if (r->type == REDIS_REPLY_STRING)
        rc = strata__bytes_set(out, r->str, r->len);
    else if (r->type == REDIS_REPLY_NIL)
        rc = STRATA_MISS;
    else
        rc = reply_fail(b, r, "GET");
    freeReplyObject(r);
    return rc;
}

static int rb_get_many(strata__backend *be, size_t n, const char *const *keys,
                       const size_t *keylens, strata__bytes *outs, int *rcs)
{
    rb *b = RB(be);
    rb_slot *s;
    redisReply *r = NULL;
    const char *argv_stack[RB_ARGV_STACK + 1];
    size_t lens_stack[RB_ARGV_STACK + 1];
    const char **argv = argv_stack;
    size_t *lens = lens_stack;
    size_t i;
    int rc;

    if (n == 0)
        return 0;
    if (n > (size_t)0x7ffffffe)
        return strata__error(STRATA_EINVAL, "get_many: too many keys (%zu)", n);
    if (n > RB_ARGV_STACK) {
        argv = malloc((n + 1) * sizeof *argv);
        lens = malloc((n + 1) * sizeof *lens);
        if (argv == NULL || lens == NULL) {
            rc = strata__error(STRATA_ENOMEM, "out of memory for MGET of %zu keys", n);
            goto out;
        }
    }
    argv[0] = "MGET"; lens[0] = 4;
    for (i = 0; i < n; i++) {
        argv[i + 1] = keys[i];
        lens[i + 1] = keylens[i];
    }
    if ((rc = slot_acquire(b, &s)) != 0)
        goto out;
    rc = command(b, s, (int)(n + 1), argv, lens, &r, "MGET");
    slot_release(b, s);
    if (rc != 0)
        goto out;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        rc = reply_fail(b, r, "MGET");
    } else {
        for (i = 0; i < n && rc == 0; i++) {
            const redisReply *e = r->element[i];
            if (e->type == REDIS_REPLY_STRING) {
                rc = strata__bytes_set(&outs[i], e->str, e->len);
                rcs[i] = 0;
            } else {
                rcs[i] = STRATA_MISS;
            }
        }
    }
    freeReplyObject(r);
out:
    if (argv != argv_stack)
        free((void *)argv);
    if (lens != lens_stack)
        free(lens);
    return rc;
}

static int rb_set_many(strata__backend *be, size_t n, const char *const *keys,
                       const size_t *keylens, const char *const *vals,
                       const size_t *vallens, const int64_t *ttls_ms)
{
    rb *b = RB(be);
    rb_slot *s;
    redisReply *exec;
    char kbuf[RB_KEYBUF];
    size_t i, sent = 0, lklen;
    int rc, first = 0;

    for (i = 0; i < n; i++)
        if (ttls_ms[i] <= 0)
            return strata__error(STRATA_EINVAL, "SET: ttl_ms must be > 0 (got %lld)",
                                 (long long)ttls_ms[i]);
    if (n == 0)
        return 0;
    if ((rc = slot_acquire(b, &s)) != 0)
        return rc;
    for (i = 0; i < n; i++) {
        char *lk = lease_key(b, keys[i], keylens[i], kbuf, sizeof kbuf, &lklen);
        if (lk == NULL) {
            first = STRATA_ENOMEM;
            break;
        }
        rc = append_set(b, s, keys[i], keylens[i], lk, lklen, vals[i], vallens[i], ttls_ms[i]);
        if (lk != kbuf)
            free(lk);
        if (rc != 0) {
            slot_release(b, s);
            return rc;
        }
        sent++;
    }
    /* Read every reply we asked for, even after an error, to stay in sync. */
    for (i = 0; i < sent; i++) {
        rc = read_multi(b, s, 3, &exec, "SET");
        if ((rc == STRATA_EBACKEND || rc == STRATA__EREFUSED) && s->ctx != NULL) {
            if (first == 0)
                first = rc;
            continue;
        }
        if (rc != 0) {
            slot_release(b, s);
            return rc;
        }
        freeReplyObject(exec);
    }
    slot_release(b, s);
    if (first == STRATA_ENOMEM) /* the rest were never sent */
        return strata__error(STRATA_ENOMEM, "out of memory building a lease key");
    return first;
}

static int rb_set(strata__backend *be, const char *key, size_t keylen,
                  const char *val, size_t vallen, int64_t ttl_ms)
{
    return rb_set_many(be, 1, &key, &keylen, &val, &vallen, &ttl_ms);
}

static int rb_del(strata__backend *be, const char *key, size_t keylen)
{
    rb *b = RB(be);
    rb_slot *s;
    redisReply *exec;
    char kbuf[RB_KEYBUF];
    const char *argv[2];
    size_t lens[2], lklen;
    char *lk;
    int rc;

    if ((lk = lease_key(b, key, keylen, kbuf, sizeof kbuf, &lklen)) == NULL)
        return STRATA_ENOMEM;
    if ((rc = slot_acquire(b, &s)) != 0)
        goto out;
    /* One DEL of both keys cannot tell whether the *value* existed (the count
     * includes the lease), so two DELs in one MULTI: just as atomic, and still
     * one round trip. */
    argv[0] = "MULTI"; lens[0] = 5;
    if ((rc = append(b, s, 1, argv, lens, "DEL")) != 0)
        goto release;
    argv[0] = "DEL"; lens[0] = 3;
    argv[1] = key; lens[1] = keylen;
    if ((rc = append(b, s, 2, argv, lens, "DEL")) != 0)
        goto release;
    argv[1] = lk; lens[1] = lklen;
    if ((rc = append(b, s, 2, argv, lens, "DEL")) != 0)
        goto release;
    if ((rc = append_publish(b, s, key, keylen, "DEL")) != 0)
        goto release;
    argv[0] = "EXEC"; lens[0] = 4;
    if ((rc = append(b, s, 1, argv, lens, "DEL")) != 0)
        goto release;
    if ((rc = read_multi(b, s, 3, &exec, "DEL")) == 0) {
        rc = exec->element[0]->type == REDIS_REPLY_INTEGER && exec->element[0]->integer > 0
           ? 0 : STRATA_MISS;
        freeReplyObject(exec);
    }
release:
    slot_release(b, s);
out:
    if (lk != kbuf)
        free(lk);
    return rc;
}

static int rb_touch(strata__backend *be, const char *key, size_t keylen, int64_t ttl_ms)
{
    rb *b = RB(be);
    rb_slot *s;
    redisReply *r = NULL;
    char ttl[24];
    const char *argv[3] = {"PEXPIRE", key, ttl};
    size_t lens[3] = {7, keylen, 0};
    int rc;

    if (ttl_ms <= 0)
        return strata__error(STRATA_EINVAL, "touch: ttl_ms must be > 0 (got %lld)",
                             (long long)ttl_ms);
    lens[2] = fmt_i64(ttl, sizeof ttl, ttl_ms);
    if ((rc = slot_acquire(b, &s)) != 0)
        return rc;
    rc = command(b, s, 3, argv, lens, &r, "PEXPIRE");
    slot_release(b, s);
    if (rc != 0)
        return rc;
    if (r->type == REDIS_REPLY_INTEGER)
        rc = r->integer == 1 ? 0 : STRATA_MISS;
    else
        rc = reply_fail(b, r, "PEXPIRE");
    freeReplyObject(r);
    return rc;
}

/* A lease we lost to is broken, not held, when it has no expiry (PTTL -1:
 * ours always have one), more time left than any of ours, or is not a token of ours (16 hex digits; a
 * non-string there answers GET with an error). */
static int lease_is_broken(const redisReply *pttl, const redisReply *held)
{
    size_t i;
    if (pttl->type == REDIS_REPLY_INTEGER && (pttl->integer == -1 || pttl->integer > STRATA_MAX_MS))
        return 1; /* no lease of ours lives longer than STRATA_MAX_MS */
    if (held->type == REDIS_REPLY_ERROR)
        return 1;
    if (held->type != REDIS_REPLY_STRING)
        return 0; /* NIL: gone in between */
    if (held->len != 16)
        return 1;
    for (i = 0; i < 16; i++)
        if (!isxdigit((unsigned char)held->str[i]))
            return 1;
    return 0;
}

/* Takes a broken lease over (SCRIPT_TAKEOVER): 0 when it is ours now, else
 * STRATA_MISS_WAIT (another caller repaired it first) or an error. */
static int take_over(rb *b, rb_slot *s, const char *lk, size_t lklen, const char *tok, size_t toklen,
                     const char *ttl, size_t ttllen, const redisReply *held, int64_t *wait_ms)
{
    const char *args[4] = {lk, tok, ttl, ""};
    size_t lens[4] = {lklen, toklen, ttllen, 0};
    redisReply *r = NULL;
    int rc;
    if (held->type == REDIS_REPLY_STRING) {
        args[3] = held->str;
        lens[3] = held->len;
    }
    if ((rc = run_script(b, s, SCRIPT_TAKEOVER, 1, 4, args, lens, &r, "lease take-over")) != 0)
        return rc;
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        rc = 0;
    } else if (r->type == REDIS_REPLY_INTEGER) {
        *wait_ms = 1;
        rc = STRATA_MISS_WAIT;
    } else {
        rc = reply_fail(b, r, "lease take-over");
    }
    freeReplyObject(r);
    return rc;
}

static int rb_lease_acquire(strata__backend *be, const char *key, size_t keylen,
                            uint64_t token, int64_t lease_ttl_ms,
                            uint64_t *guard, int64_t *wait_ms)
{
    rb *b = RB(be);
    rb_slot *s;
    redisReply *set = NULL, *pttl = NULL, *held = NULL;
    char kbuf[RB_KEYBUF], tok[20], ttl[24];
    const char *argv[6];
    size_t lens[6], lklen;
    char *lk;
    int rc;

    if (lease_ttl_ms <= 0)
        return strata__error(STRATA_EINVAL, "lease_acquire: lease_ttl_ms must be > 0");
    if ((lk = lease_key(b, key, keylen, kbuf, sizeof kbuf, &lklen)) == NULL)
        return STRATA_ENOMEM;
    if ((rc = slot_acquire(b, &s)) != 0)
        goto out;
    /* PTTL rides along in the same round trip: if we lose, we already know
     * how long the holder has left. */
    argv[0] = "SET"; lens[0] = 3;
    argv[1] = lk; lens[1] = lklen;
    argv[2] = tok; lens[2] = fmt_token(tok, sizeof tok, token);
    argv[3] = "NX"; lens[3] = 2;
    argv[4] = "PX"; lens[4] = 2;
    argv[5] = ttl; lens[5] = fmt_i64(ttl, sizeof ttl, lease_ttl_ms);
    if ((rc = append(b, s, 6, argv, lens, "lease SET NX")) != 0)
        goto release;
    argv[0] = "PTTL"; lens[0] = 4;
    if ((rc = append(b, s, 2, argv, lens, "lease PTTL")) != 0)
        goto release;
    argv[0] = "GET"; lens[0] = 3;
    if ((rc = append(b, s, 2, argv, lens, "lease GET")) != 0)
        goto release;
    if ((rc = next_reply(b, s, &set, "lease SET NX")) != 0)
        goto release;
    if ((rc = next_reply(b, s, &pttl, "lease PTTL")) != 0)
        goto release;
    if ((rc = next_reply(b, s, &held, "lease GET")) != 0)
        goto release;
    *guard = 0; /* the lease itself guards: set and del delete it */
    if (is_status(set, "OK")) {
        rc = 0;
    } else if (set->type == REDIS_REPLY_NIL && lease_is_broken(pttl, held)) {
        rc = take_over(b, s, lk, lklen, tok, lens[2], ttl, lens[5], held, wait_ms);
    } else if (set->type == REDIS_REPLY_NIL) {
        /* PTTL -2: the holder's lease expired in between: retry soon. */
        *wait_ms = pttl->type == REDIS_REPLY_INTEGER && pttl->integer > 0 ? pttl->integer : 1;
        rc = STRATA_MISS_WAIT;
    } else {
        rc = reply_fail(b, set, "lease SET NX");
    }
release:
    slot_release(b, s);
out:
    if (set)
        freeReplyObject(set);
    if (pttl)
        freeReplyObject(pttl);
    if (held)
        freeReplyObject(held);
    if (lk != kbuf)
        free(lk);
    return rc;
}

static int rb_lease_fill(strata__backend *be, const char *key, size_t keylen,
                         uint64_t token, uint64_t guard,
                         const char *val, size_t vallen, int64_t ttl_ms)
{
    rb *b = RB(be);
    rb_slot *s;
    redisReply *r = NULL;
    char kbuf[RB_KEYBUF], tok[20], ttl[24];
    const char *args[5];
    size_t lens[5], lklen;
    char *lk;
    int rc;

    (void)guard;
    if (ttl_ms <= 0)
        return strata__error(STRATA_EINVAL, "lease_fill: ttl_ms must be > 0 (got %lld)",
                             (long long)ttl_ms);
    if ((lk = lease_key(b, key, keylen, kbuf, sizeof kbuf, &lklen)) == NULL)
        return STRATA_ENOMEM;
    args[0] = key; lens[0] = keylen;
    args[1] = lk; lens[1] = lklen;
    args[2] = tok; lens[2] = fmt_token(tok, sizeof tok, token);
    args[3] = val; lens[3] = vallen;
    args[4] = ttl; lens[4] = fmt_i64(ttl, sizeof ttl, ttl_ms >= STRATA__TTL_NEVER ? 0 : ttl_ms);
    if ((rc = slot_acquire(b, &s)) == 0) {
        rc = run_script(b, s, SCRIPT_FILL, 2, 5, args, lens, &r, "lease fill");
        slot_release(b, s);
        if (rc == 0) {
            if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
                rc = 0;
            } else if (r->type == REDIS_REPLY_INTEGER) {
                char kb[96];
                rc = strata__error(STRATA_ELEASE, "redis %s:%d: lease on %s lost (expired, "
                                   "or a write or delete happened since it was taken)",
                                   b->host, b->port,
                                   strata__key_for_message(key, keylen, kb, sizeof kb));
            } else {
                rc = reply_fail(b, r, "lease fill");
            }
            freeReplyObject(r);
        }
    }
    if (lk != kbuf)
        free(lk);
    return rc;
}

static int rb_lease_release(strata__backend *be, const char *key, size_t keylen,
                            uint64_t token)
{
    rb *b = RB(be);
    rb_slot *s;
    redisReply *r = NULL;
    char kbuf[RB_KEYBUF], tok[20];
    const char *args[2];
    size_t lens[2], lklen;
    char *lk;
    int rc;

    if ((lk = lease_key(b, key, keylen, kbuf, sizeof kbuf, &lklen)) == NULL)
        return STRATA_ENOMEM;
    args[0] = lk; lens[0] = lklen;
    args[1] = tok; lens[1] = fmt_token(tok, sizeof tok, token);
    if ((rc = slot_acquire(b, &s)) == 0) {
        rc = run_script(b, s, SCRIPT_RELEASE, 1, 2, args, lens, &r, "lease release");
        slot_release(b, s);
        if (rc == 0) {
            rc = r->type == REDIS_REPLY_INTEGER ? 0 : reply_fail(b, r, "lease release");
            freeReplyObject(r);
        }
    }
    if (lk != kbuf)
        free(lk);
    return rc;
}

static int rb_incr(strata__backend *be, const char *key, size_t keylen,
                   int64_t delta, int64_t *out)
{
    rb *b = RB(be);
    rb_slot *s;
    redisReply *r = NULL;
    char d[24];
    const char *argv[3] = {"INCRBY", key, d};
    size_t lens[3] = {6, keylen, 0};
    int rc;

    lens[2] = fmt_i64(d, sizeof d, delta);
    if ((rc = slot_acquire(b, &s)) != 0)
        return rc;
    rc = command(b, s, 3, argv, lens, &r, "INCRBY");
    slot_release(b, s);
    if (rc != 0)
        return rc;
    if (r->type == REDIS_REPLY_INTEGER)
        *out = (int64_t)r->integer;
    else
        rc = reply_fail(b, r, "INCRBY");
    freeReplyObject(r);
    return rc;
}

/* SET NX creates the counter at init, INCRBY adds delta (0 reads it): two
 * atomic commands pipelined in one round trip. */
static int rb_counter(strata__backend *be, const char *key, size_t keylen, int64_t init, int64_t delta,
                      int64_t *out)
{
    rb *b = RB(be);
    rb_slot *s;
    redisReply *r1 = NULL, *r2 = NULL;
    char iv[24], dv[24];
    const char *setv[4] = {"SET", key, iv, "NX"}, *incv[3] = {"INCRBY", key, dv};
    size_t setl[4] = {3, keylen, 0, 2}, incl[3] = {6, keylen, 0};
    int rc;

    setl[2] = fmt_i64(iv, sizeof iv, init);
    incl[2] = fmt_i64(dv, sizeof dv, delta);
    if ((rc = slot_acquire(b, &s)) != 0)
        return rc;
    rc = append(b, s, 4, setv, setl, "SET NX");
    if (rc == 0)
        rc = append(b, s, 3, incv, incl, "INCRBY");
    if (rc == 0)
        rc = next_reply(b, s, &r1, "SET NX");
    if (rc == 0)
        rc = next_reply(b, s, &r2, "INCRBY");
    slot_release(b, s);
    if (rc == 0) {
        if (r1->type == REDIS_REPLY_ERROR)
            rc = reply_fail(b, r1, "SET NX");
        else if (r2->type == REDIS_REPLY_INTEGER)
            *out = (int64_t)r2->integer;
        else
            rc = reply_fail(b, r2, "INCRBY");
    }
    if (r1)
        freeReplyObject(r1);
    if (r2)
        freeReplyObject(r2);
    return rc;
}

static size_t rb_max_value_size(strata__backend *be)
{
    (void)be;
    return RB_MAX_VALUE;
}

/* Callers must have finished every call. */
static void rb_close(strata__backend *be)
{
    rb *b = RB(be);
    size_t i;
    if (b == NULL)
        return;
    for (i = 0; i < b->nslots; i++)
        if (b->slots[i].ctx != NULL)
            redisFree(b->slots[i].ctx);
    strata__cond_destroy(&b->cv);
    strata__mutex_destroy(&b->mu);
    free(b->free_idx);
    free(b->slots);
    free(b);
}

/* ---- for the operator tools (redis_admin.c) --------------------------- */

int strata__redis_pipeline(strata__backend *be, size_t n, const int *argcs, const char **const *argvs,
                           const size_t *const *lens, redisReply **replies, const char *what)
{
    rb *b = RB(be);
    rb_slot *s;
    size_t i, got = 0;
    int rc;
    for (i = 0; i < n; i++)
        replies[i] = NULL;
    if ((rc = slot_acquire(b, &s)) != 0)
        return rc;
    for (i = 0; i < n && rc == 0; i++)
        rc = append(b, s, argcs[i], argvs[i], lens[i], what);
    for (; got < n && rc == 0; got++)
        rc = next_reply(b, s, &replies[got], what);
    slot_release(b, s);
    if (rc != 0)
        for (i = 0; i < got; i++) {
            freeReplyObject(replies[i]);
            replies[i] = NULL;
        }
    return rc;
}

/* ---- conditional writes, batch delete, leases as locks ---- */

/* "<origin><user key>": the invalidation the scripts publish, as append_publish does. */
static char *inv_payload(const rb *b, const char *key, size_t keylen, size_t *len)
{
    const char *ukey;
    size_t ulen;
    char *p;
    user_part(b, key, keylen, &ukey, &ulen);
    if ((p = malloc(STRATA__INV_ORIGIN_LEN + ulen + 1)) == NULL) {
        strata__error(STRATA_ENOMEM, "out of memory building an invalidation");
        return NULL;
    }
    memcpy(p, b->origin, STRATA__INV_ORIGIN_LEN);
    memcpy(p + STRATA__INV_ORIGIN_LEN, ukey, ulen);
    *len = STRATA__INV_ORIGIN_LEN + ulen;
    return p;
}

/* add (old == NULL) or cas: one script; see script_text. */
static int conditional_set(rb *b, const char *key, size_t keylen, const char *old, size_t oldlen,
                           const char *val, size_t vallen, int64_t ttl_ms)
{
    rb_slot *s;
    redisReply *r = NULL;
    char kbuf[RB_KEYBUF], ttl[24];
    const char *args[7];
    size_t lens[7], lklen, plen = 0, n = 0;
    char *lk, *payload;
    const char *what = old ? "cas" : "add";
    int rc;

    if ((lk = lease_key(b, key, keylen, kbuf, sizeof kbuf, &lklen)) == NULL)
        return STRATA_ENOMEM;
    if ((payload = inv_payload(b, key, keylen, &plen)) == NULL) {
        rc = STRATA_ENOMEM;
        goto out;
    }
    args[n] = key; lens[n++] = keylen;
    args[n] = lk; lens[n++] = lklen;
    if (old) {
        args[n] = old; lens[n++] = oldlen;
    }
    args[n] = val; lens[n++] = vallen;
    args[n] = ttl; lens[n++] = fmt_i64(ttl, sizeof ttl, ttl_ms >= STRATA__TTL_NEVER ? 0 : ttl_ms);
    args[n] = b->chan; lens[n++] = b->chanlen;
    args[n] = payload; lens[n++] = plen;
    if ((rc = slot_acquire(b, &s)) == 0) {
        rc = run_script(b, s, old ? SCRIPT_CAS : SCRIPT_ADD, 2, (int)n, args, lens, &r, what);
        slot_release(b, s);
        if (rc == 0) {
            if (r->type != REDIS_REPLY_INTEGER)
                rc = reply_fail(b, r, what);
            else
                rc = r->integer == 1 ? 0 : r->integer == 0 ? STRATA_EXISTS : STRATA_MISS;
            freeReplyObject(r);
        }
    }
out:
    free(payload);
    if (lk != kbuf)
        free(lk);
    return rc;
}

static int rb_add(strata__backend *be, const char *key, size_t keylen, const char *val, size_t vallen,
                  int64_t ttl_ms)
{
    return conditional_set(RB(be), key, keylen, NULL, 0, val, vallen, ttl_ms);
}

static int rb_cas(strata__backend *be, const char *key, size_t keylen, const char *old, size_t oldlen,
                  const char *val, size_t vallen, int64_t ttl_ms)
{
    return conditional_set(RB(be), key, keylen, old ? old : "", oldlen, val, vallen, ttl_ms);
}

/* One MULTI of DEL value, DEL lease, PUBLISH per key: one round trip. */
static int rb_del_many(strata__backend *be, size_t n, const char *const *keys, const size_t *keylens,
                       int *deleted)
{
    rb *b = RB(be);
    rb_slot *s;
    redisReply *exec = NULL;
    char kbuf[RB_KEYBUF];
    const char *argv[2];
    size_t lens[2], lklen, i;
    char *lk;
    int rc;

    if (n == 0)
        return 0;
    if ((rc = slot_acquire(b, &s)) != 0)
        return rc;
    argv[0] = "MULTI"; lens[0] = 5;
    rc = append(b, s, 1, argv, lens, "DEL (many)");
    for (i = 0; rc == 0 && i < n; i++) {
        if ((lk = lease_key(b, keys[i], keylens[i], kbuf, sizeof kbuf, &lklen)) == NULL) {
            /* Unsent commands: end the transaction empty-handed to stay in sync. */
            argv[0] = "DISCARD"; lens[0] = 7;
            if (append(b, s, 1, argv, lens, "DEL (many)") == 0) {
                redisReply *r;
                size_t k;
                for (k = 0; k < 3 * i + 2 && next_reply(b, s, &r, "DEL (many)") == 0; k++)
                    freeReplyObject(r);
            }
            slot_release(b, s);
            return STRATA_ENOMEM;
        }
        argv[0] = "DEL"; lens[0] = 3;
        argv[1] = keys[i]; lens[1] = keylens[i];
        rc = append(b, s, 2, argv, lens, "DEL (many)");
        argv[1] = lk; lens[1] = lklen;
        if (rc == 0)
            rc = append(b, s, 2, argv, lens, "DEL (many)");
        if (lk != kbuf)
            free(lk);
        if (rc == 0)
            rc = append_publish(b, s, keys[i], keylens[i], "DEL (many)");
    }
    argv[0] = "EXEC"; lens[0] = 4;
    if (rc == 0)
        rc = append(b, s, 1, argv, lens, "DEL (many)");
    if (rc == 0 && (rc = read_multi(b, s, 3 * n, &exec, "DEL (many)")) == 0) {
        for (i = 0; i < n; i++)
            deleted[i] = exec->element[3 * i]->type == REDIS_REPLY_INTEGER && exec->element[3 * i]->integer > 0;
        freeReplyObject(exec);
    }
    slot_release(b, s);
    return rc;
}

static int rb_lease_own(strata__backend *be, const char *key, size_t keylen, uint64_t token, int64_t ttl_ms)
{
    rb *b = RB(be);
    rb_slot *s;
    redisReply *r = NULL;
    char kbuf[RB_KEYBUF], tok[20], ttl[24];
    const char *args[3];
    size_t lens[3], lklen;
    char *lk;
    int rc;

    if ((lk = lease_key(b, key, keylen, kbuf, sizeof kbuf, &lklen)) == NULL)
        return STRATA_ENOMEM;
    args[0] = lk; lens[0] = lklen;
    args[1] = tok; lens[1] = token ? fmt_token(tok, sizeof tok, token) : 0;
    args[2] = ttl; lens[2] = fmt_i64(ttl, sizeof ttl, ttl_ms > 0 ? ttl_ms : 0);
    if ((rc = slot_acquire(b, &s)) == 0) {
        rc = run_script(b, s, SCRIPT_OWN, 1, 3, args, lens, &r, "lock");
        slot_release(b, s);
        if (rc == 0) {
            if (r->type != REDIS_REPLY_INTEGER)
                rc = reply_fail(b, r, "lock");
            else if (token == 0)
                rc = r->integer == 1 ? 0 : STRATA_MISS;
            else
                rc = r->integer == 1 ? 0 : strata__error(STRATA_ELEASE, "redis %s:%d: the lock is not "
                                                         "held by this handle (expired or taken over)",
                                                         b->host, b->port);
            freeReplyObject(r);
        }
    }
    if (lk != kbuf)
        free(lk);
    return rc;
}

/* An empty payload is shorter than any origin: every subscriber drops its L1. */
static int rb_publish_flush(strata__backend *be)
{
    rb *b = RB(be);
    rb_slot *s;
    redisReply *r = NULL;
    const char *argv[3] = {"PUBLISH", b->chan, ""};
    size_t lens[3] = {7, b->chanlen, 0};
    int rc;
    if ((rc = slot_acquire(b, &s)) != 0)
        return rc;
    rc = command(b, s, 3, argv, lens, &r, "PUBLISH (flush)");
    slot_release(b, s);
    if (rc == 0) {
        if (r->type != REDIS_REPLY_INTEGER)
            rc = reply_fail(b, r, "PUBLISH (flush)");
        freeReplyObject(r);
    }
    return rc;
}

#include "redis_stream.inc"

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
    size_t i, n;

    if (out == NULL || cfg == NULL)
        return strata__error(STRATA_EINVAL, "redis backend: NULL argument");
    *out = NULL;
    if (cfg->nservers != 1)
        return strata__error(STRATA_EURL, "redis backend takes exactly one server (got %zu)",
                             cfg->nservers);
    if (cfg->servers[0].host[0] == '\0' || cfg->servers[0].port <= 0 ||
        cfg->servers[0].port > 65535)
        return strata__error(STRATA_EURL, "redis backend: bad server address \"%s:%d\"",
                             cfg->servers[0].host, cfg->servers[0].port);
    if (cfg->nslen > STRATA__MAX_NS)
        return strata__error(STRATA_EINVAL, "redis backend: namespace too long");

    b = calloc(1, sizeof *b);
    if (b == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory opening the redis backend");
    b->base.ops = &rb_ops;
    snprintf(b->host, sizeof b->host, "%s", cfg->servers[0].host);
    b->port = cfg->servers[0].port;
    snprintf(b->user, sizeof b->user, "%s", cfg->user);
    snprintf(b->password, sizeof b->password, "%s", cfg->password);
    b->db = cfg->db;
    memcpy(b->ns, cfg->ns, cfg->nslen);
    b->ns[cfg->nslen] = '\0';
    b->nslen = cfg->nslen;
    b->instance = cfg->instance;
    strata__inv_origin(b->origin, b->instance);
    b->chanlen = strata__inv_channel(b->chan, sizeof b->chan, cfg);
    b->timeout_ms = cfg->opts.timeout_ms;
    b->connect_timeout_ms = cfg->opts.connect_timeout_ms > 0 ? cfg->opts.connect_timeout_ms
                                                           : cfg->opts.timeout_ms;
    if (b->connect_timeout_ms <= 0)
        b->connect_timeout_ms = 1000;
    snprintf(b->last_cause, sizeof b->last_cause, "no connection yet");

    n = cfg->opts.pool_size > 0 ? cfg->opts.pool_size : 1;
    b->slots = calloc(n, sizeof *b->slots);
    b->free_idx = calloc(n, sizeof *b->free_idx);
    if (b->slots == NULL || b->free_idx == NULL)
        goto nomem;
    b->nslots = n;
    for (i = 0; i < n; i++)
        b->free_idx[i] = n - 1 - i;
    b->nfree = n;
    b->pool_gen = strata__fork_generation();
    if (strata__mutex_init(&b->mu) != 0)
        goto nomem;
    if (strata__cond_init(&b->cv) != 0) {
        strata__mutex_destroy(&b->mu);
        goto nomem;
    }
    *out = &b->base;
    return 0;

nomem:
    free(b->free_idx);
    free(b->slots);
    free(b);
    return strata__error(STRATA_ENOMEM, "out of memory opening the redis backend");
}
