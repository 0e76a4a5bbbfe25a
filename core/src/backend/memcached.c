/*
 * Memcached backend over libmemcached 1.1 (binary protocol, ketama).
 *
 * What memcached lacks and how this file makes up for it (docs/BACKEND-CONTRACT.md):
 *  - keys: memcached takes 1-250 bytes without whitespace or control bytes, and
 *    libmemcached aborts the process after some bad keys. Every key that is not
 *    plainly safe is replaced by "<ns>#H:" + hex(sha256(key)) before it reaches
 *    the library; nothing is ever truncated.
 *  - leases: no scripts, so a lease is an `add` of "<ns>#L:<user key>" and the
 *    write guard is the CAS of the value key seen at acquire time. `del` writes a
 *    tombstone (an item with TOMB_FLAGS) instead of deleting, so a holder that
 *    saw "absent" and fills with `add` is refused too; reads treat it as a miss.
 *  - deadlines: libmemcached's poll timeout bounds each wait; a per-server
 *    backoff shared by all pooled handles makes a dead server fail at once.
 */
#include "backend.h"
#include "error.h"
#include "platform/platform.h"
#include "backend/mc_key.h"

#include <libmemcached/memcached.h>
#include <libmemcached/util.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MC_KEY_MAX STRATA__MC_KEY_MAX
/* Server default item size is 1 MiB including the item header and the key
 * (1,048,512 value bytes fit with a 4-byte key). 512 bytes cover the header
 * (about 64) plus the longest key we send (250), so any value up to this
 * bound fits whatever its key. Checked before sending: a server-side E2BIG
 * on `set` makes memcached drop the old item, which would change something. */
#define MC_ITEM_LIMIT ((size_t)1024 * 1024)
#define MC_MAX_VALUE (MC_ITEM_LIMIT - 512)

/* Item flags mark tombstones: the value bytes stay opaque (any byte string is
 * a valid envelope to us), so the marker cannot collide with a stored value.
 * The body is only there to make a tombstone recognisable in a dump. */
#define TOMB_FLAGS 0x53544d42u /* "STMB" */
static const char TOMB_VALUE[] = "\xffstrata-tombstone";

#define MAX_RELATIVE_EXPIRY (30 * 24 * 3600) /* beyond this memcached reads unix time */
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

typedef struct mc_server {
    char name[280];          /* "host:port" for messages */
    int64_t retry_at_ms;     /* monotonic; 0 = healthy. Atomics. */
    int64_t backoff_ms;
} mc_server;

/* Everything that holds sockets. Replaced wholesale in a forked child. */
typedef struct mc_conns {
    memcached_pool_st *pool;
    strata__mutex lock;      /* waits for a free handle with a monotonic deadline */
    strata__cond cond;
    unsigned int gen;        /* strata__fork_generation() at creation */
} mc_conns;

typedef struct mc_backend {
    strata__backend base;
    memcached_st *master;    /* configuration only: cloned by the pool, never does I/O */
    mc_conns *conns;         /* atomic pointer */
    strata__mutex fork_lock;
    mc_server *servers;
    size_t nservers;
    unsigned int pool_size;
    int64_t timeout_ms;
    int64_t max_lease_ttl_ms; /* tombstones outlive every lease handed out (atomic) */
    char ns[STRATA__MAX_NS + 1];
    size_t nslen;
} mc_backend;

/* A key as sent to memcached: always safe, at most 250 bytes. */
typedef struct mc_key {
    char buf[MC_KEY_MAX + 1];
    size_t len;
    uint32_t server;
} mc_key;

/* One pooled handle borrowed for the duration of an operation. */
typedef struct mc_call {
    mc_backend *b;
    mc_conns *c;
    memcached_st *mc;
} mc_call;

/* ---- keys ---- */

static void value_key(const mc_backend *b, const char *key, size_t keylen, mc_key *out)
{
    out->len = strata__mc_key_from_logical(b->ns, b->nslen, key, keylen, out->buf);
    out->server = memcached_generate_hash(b->master, out->buf, out->len);
}

/* "<ns>#L:<user key>"; a key without the "<ns>:" prefix is taken whole. */
static int lease_key(const mc_backend *b, const char *key, size_t keylen, mc_key *out)
{
    out->len = strata__mc_lease_key(b->ns, b->nslen, key, keylen, out->buf);
    if (out->len == 0)
        return STRATA_ENOMEM;
    out->server = memcached_generate_hash(b->master, out->buf, out->len);
    return 0;
}

/* ---- times ---- */

/* Seconds, rounded up, plus one: memcached's clock ticks in whole seconds, so
 * an item can die up to a second before its exptime; the envelope, not the
 * backend, decides freshness, so living a little longer is harmless.
 * Past 30 days memcached wants a unix time. */
static time_t expiry_from_ms(int64_t ttl_ms)
{
    int64_t s;
    if (ttl_ms >= STRATA__TTL_NEVER)
        return 0;
    if (ttl_ms <= 0)
        return 1;
    if (ttl_ms > (int64_t)100 * 365 * 24 * 3600 * 1000)
        ttl_ms = (int64_t)100 * 365 * 24 * 3600 * 1000;
    s = (ttl_ms + 999) / 1000 + 1;
    if (s > MAX_RELATIVE_EXPIRY)
        s += (int64_t)time(NULL);
    return (time_t)s;
}

/* A tombstone must outlive any lease taken before the delete. memcached's
 * clock ticks in whole seconds, so add one for the tick in progress. */
static time_t tomb_expiry(mc_backend *b)
{
    int64_t ms = strata__atomic_load(&b->max_lease_ttl_ms);
    if (ms < 1000)
        ms = 1000;
    return expiry_from_ms(ms) + 1;
}

/* ---- per-server backoff ---- */

static const char *server_name(const mc_backend *b, uint32_t idx)
{
    return idx < b->nservers ? b->servers[idx].name : "(unknown server)";
}

static int server_check(mc_backend *b, uint32_t idx)
{
    int64_t at, now;
    if (idx >= b->nservers)
        return 0;
    at = strata__atomic_load(&b->servers[idx].retry_at_ms);
    if (at == 0)
        return 0;
    now = strata__now_mono_ms();
    if (now >= at)
        return 0;
    return strata__error(STRATA_EBACKEND, "memcached %s: reconnect backoff (%" PRId64 " ms left)",
                         b->servers[idx].name, at - now);
}

static void server_failed(mc_backend *b, uint32_t idx)
{
    mc_server *s;
    int64_t backoff;
    if (idx >= b->nservers)
        return;
    s = &b->servers[idx];
    /* Racy doubling between threads is harmless: any value in range will do. */
    backoff = strata__atomic_load(&s->backoff_ms);
    backoff = backoff == 0 ? BACKOFF_MIN_MS : backoff * 2;
    if (backoff > BACKOFF_MAX_MS)
        backoff = BACKOFF_MAX_MS;
    strata__atomic_store(&s->backoff_ms, backoff);
    strata__atomic_store(&s->retry_at_ms, strata__now_mono_ms() + backoff);
}

static void server_ok(mc_backend *b, uint32_t idx)
{
    if (idx < b->nservers && strata__atomic_load(&b->servers[idx].backoff_ms) != 0) {
        strata__atomic_store(&b->servers[idx].retry_at_ms, 0);
        strata__atomic_store(&b->servers[idx].backoff_ms, 0);
    }
}

/* ---- error mapping ---- */

/* Outcomes after which the connection is known to be in step with the server. */
static int rc_in_sync(memcached_return_t rc)
{
    switch (rc) {
    case MEMCACHED_SUCCESS:
    case MEMCACHED_NOTFOUND:
    case MEMCACHED_DATA_EXISTS:
    case MEMCACHED_NOTSTORED:
    case MEMCACHED_STORED:
    case MEMCACHED_DELETED:
    case MEMCACHED_END:
    case MEMCACHED_E2BIG:
    case MEMCACHED_SERVER_MARKED_DEAD:        /* no socket was used */
    case MEMCACHED_SERVER_TEMPORARILY_DISABLED:
        return 1;
    default:
        return 0;
    }
}

/* Failures of the server or the path to it (as opposed to refusals). */
static int rc_is_connection(memcached_return_t rc)
{
    switch (rc) {
    case MEMCACHED_TIMEOUT:
    case MEMCACHED_CONNECTION_FAILURE:
    case MEMCACHED_CONNECTION_BIND_FAILURE:
    case MEMCACHED_HOST_LOOKUP_FAILURE:
    case MEMCACHED_WRITE_FAILURE:
    case MEMCACHED_READ_FAILURE:
    case MEMCACHED_UNKNOWN_READ_FAILURE:
    case MEMCACHED_PROTOCOL_ERROR:
    case MEMCACHED_ERRNO:
    case MEMCACHED_SERVER_MARKED_DEAD:
    case MEMCACHED_SERVER_TEMPORARILY_DISABLED:
    case MEMCACHED_SOME_ERRORS:
    case MEMCACHED_NO_SERVERS:
        return 1;
    default:
        return 0;
    }
}

/* Records the error, backs the server off, and drops this handle's sockets
 * when a reply may still be in flight (a later call would read it as its own). */
/* Our index of a libmemcached server (nservers when not found). */
static uint32_t server_index(const mc_backend *b, const memcached_instance_st *inst)
{
    char buf[280];
    uint32_t idx;
    snprintf(buf, sizeof buf, "%s:%u", memcached_server_name(inst), (unsigned)memcached_server_port(inst));
    for (idx = 0; idx < b->nservers; idx++)
        if (strcmp(b->servers[idx].name, buf) == 0)
            break;
    return idx;
}

static int call_fail(mc_call *call, memcached_return_t rc, uint32_t idx, const char *op)
{
    char detail[256];
    const char *server;
    const memcached_instance_st *inst;
    /* A refusal (the server answered with an error) is not an outage. */
    int code = rc == MEMCACHED_TIMEOUT ? STRATA_ETIMEOUT : rc_is_connection(rc) ? STRATA_EBACKEND : STRATA__EREFUSED;

    snprintf(detail, sizeof detail, "%s", memcached_last_error_message(call->mc));
    if (idx >= call->b->nservers) {
        /* Multi-server calls: the server libmemcached last gave up on or,
         * when it kept none (a timeout in mget), the one whose own last
         * error is a connection failure. */
        uint32_t i, n = memcached_server_count(call->mc);
        inst = memcached_server_get_last_disconnect(call->mc);
        for (i = 0; inst == NULL && i < n; i++) {
            const memcached_instance_st *cand = memcached_server_instance_by_position(call->mc, i);
            if (cand && rc_is_connection(memcached_server_error_return(cand)))
                inst = cand;
        }
        if (inst)
            idx = server_index(call->b, inst);
    }
    server = server_name(call->b, idx);
    if (rc_is_connection(rc))
        server_failed(call->b, idx);
    if (!rc_in_sync(rc))
        memcached_quit(call->mc);
    return strata__error(code, "memcached %s: %s: %s (%s)", server, op,
                         memcached_strerror(call->mc, rc), detail);
}

static int too_big(size_t vallen)
{
    return strata__error(STRATA_ETOOBIG,
                         "memcached: value of %zu bytes exceeds the item limit (%zu bytes)",
                         vallen, (size_t)MC_MAX_VALUE);
}

/* ---- connections ---- */

static mc_conns *conns_new(mc_backend *b)
{
    mc_conns *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->gen = strata__fork_generation();
    c->pool = memcached_pool_create(b->master, 1, b->pool_size);
    if (c->pool == NULL) {
        free(c);
        return NULL;
    }
    if (strata__mutex_init(&c->lock) != 0) {
        memcached_pool_destroy(c->pool);
        free(c);
        return NULL;
    }
    if (strata__cond_init(&c->cond) != 0) {
        strata__mutex_destroy(&c->lock);
        memcached_pool_destroy(c->pool);
        free(c);
        return NULL;
    }
    return c;
}

static void conns_free(mc_conns *c)
{
    /* memcached_pool_destroy() does not free the master (not owned by the pool). */
    memcached_pool_destroy(c->pool);
    strata__cond_destroy(&c->cond);
    strata__mutex_destroy(&c->lock);
    free(c);
}

/*
 * After fork() the child must not touch the parent's pool: its handles hold the
 * parent's sockets (a QUIT from the child would close the parent's connections
 * on the server side) and its mutex may have been copied locked. So the child
 * builds a fresh pool from the master (which never did I/O) and deliberately
 * leaks the old one: a few hundred bytes and pool_size * nservers descriptors
 * per fork generation, which is the price of never writing to a shared socket.
 */
static mc_conns *conns_current(mc_backend *b)
{
    mc_conns *c = strata__atomic_load(&b->conns);
    unsigned int gen = strata__fork_generation();
    if (c->gen == gen)
        return c;
    strata__mutex_lock(&b->fork_lock);
    c = strata__atomic_load(&b->conns);
    if (c->gen != gen) {
        mc_conns *fresh = conns_new(b);
        if (fresh == NULL) {
            strata__mutex_unlock(&b->fork_lock);
            return NULL;
        }
        strata__atomic_store(&b->conns, fresh);
        c = fresh;
    }
    strata__mutex_unlock(&b->fork_lock);
    return c;
}

static int call_begin(mc_backend *b, mc_call *call)
{
    static struct timespec no_wait = {0, 0};
    memcached_return_t rc = MEMCACHED_SUCCESS;
    int64_t deadline;
    mc_conns *c = conns_current(b);

    call->b = b;
    call->mc = NULL;
    call->c = c;
    if (c == NULL)
        return strata__error(STRATA_ENOMEM, "memcached: out of memory creating the connection pool");

    /* libmemcached's own timed fetch rounds its deadline to wall-clock seconds;
     * poll without waiting and wait here on the monotonic clock instead. */
    deadline = strata__now_mono_ms() + b->timeout_ms;
    strata__mutex_lock(&c->lock);
    for (;;) {
        call->mc = memcached_pool_fetch(c->pool, &no_wait, &rc);
        if (call->mc != NULL)
            break;
        if (rc != MEMCACHED_NOTFOUND && rc != MEMCACHED_SUCCESS) {
            strata__mutex_unlock(&c->lock);
            return strata__error(STRATA_EBACKEND, "memcached: connection pool: %s",
                                 memcached_strerror(NULL, rc));
        }
        if (rc == MEMCACHED_SUCCESS) { /* grow failed: out of memory */
            strata__mutex_unlock(&c->lock);
            return strata__error(STRATA_ENOMEM, "memcached: out of memory growing the pool");
        }
        if (strata__cond_wait_until(&c->cond, &c->lock, deadline) &&
            strata__now_mono_ms() >= deadline) {
            call->mc = memcached_pool_fetch(c->pool, &no_wait, &rc);
            if (call->mc != NULL)
                break;
            strata__mutex_unlock(&c->lock);
            return strata__error(STRATA_ETIMEOUT,
                                 "memcached: all %u pooled connections busy for %" PRId64 " ms",
                                 b->pool_size, b->timeout_ms);
        }
    }
    strata__mutex_unlock(&c->lock);
    return 0;
}

static void call_end(mc_call *call)
{
    if (call->mc == NULL)
        return;
    memcached_pool_release(call->c->pool, call->mc);
    /* Taking the lock orders this signal after a waiter's failed fetch. */
    strata__mutex_lock(&call->c->lock);
    strata__cond_signal(&call->c->cond);
    strata__mutex_unlock(&call->c->lock);
    call->mc = NULL;
}

/* ---- primitives on a borrowed handle ---- */

typedef struct mc_item {
    int found;
    uint32_t flags;
    uint64_t cas;
} mc_item;

/* Reads one key with its CAS and flags; the value goes to out when non-NULL.
 * 0, or an error. */
static int item_get(mc_call *call, const mc_key *k, mc_item *item, strata__bytes *out,
                    const char *op)
{
    memcached_result_st res;
    memcached_return_t rc;
    const char *keys[1];
    size_t lens[1];
    int err = 0;

    item->found = 0;
    keys[0] = k->buf;
    lens[0] = k->len;
    rc = memcached_mget(call->mc, keys, lens, 1);
    if (rc != MEMCACHED_SUCCESS)
        return call_fail(call, rc, k->server, op);
    if (memcached_result_create(call->mc, &res) == NULL)
        return strata__error(STRATA_ENOMEM, "memcached: out of memory");
    /* Read to the end (NULL + NOTFOUND) so the handle is ready for the next command. */
    while (memcached_fetch_result(call->mc, &res, &rc) != NULL) {
        if (item->found || err)
            continue;
        item->found = 1;
        item->flags = memcached_result_flags(&res);
        item->cas = memcached_result_cas(&res);
        if (out && item->flags != TOMB_FLAGS)
            err = strata__bytes_set(out, memcached_result_value(&res), memcached_result_length(&res));
    }
    memcached_result_free(&res);
    if (rc != MEMCACHED_NOTFOUND && rc != MEMCACHED_END && rc != MEMCACHED_SUCCESS)
        return call_fail(call, rc, k->server, op);
    if (err)
        return err;
    server_ok(call->b, k->server);
    return 0;
}

/* Delete, ignoring "not there". */
static int item_delete(mc_call *call, const mc_key *k, const char *op)
{
    memcached_return_t rc = memcached_delete(call->mc, k->buf, k->len, 0);
    if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND && rc != MEMCACHED_DELETED)
        return call_fail(call, rc, k->server, op);
    server_ok(call->b, k->server);
    return 0;
}

static int store_failed(mc_call *call, memcached_return_t rc, const mc_key *k, size_t vallen,
                        const char *op)
{
    if (rc == MEMCACHED_E2BIG) {
        call_fail(call, rc, k->server, op); /* keeps the connection checks in one place */
        return strata__error(STRATA_ETOOBIG,
                             "memcached %s: value of %zu bytes refused as too large (limit %zu)",
                             server_name(call->b, k->server), vallen, (size_t)MC_MAX_VALUE);
    }
    return call_fail(call, rc, k->server, op);
}

static int value_set(mc_call *call, const mc_key *k, const char *val, size_t vallen, int64_t ttl_ms)
{
    memcached_return_t rc = memcached_set(call->mc, k->buf, k->len, val, vallen,
                                          expiry_from_ms(ttl_ms), 0);
    if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_STORED)
        return store_failed(call, rc, k, vallen, "set");
    server_ok(call->b, k->server);
    return 0;
}

/* "<16 hex token>:<wall-clock expiry ms>": the expiry gives losers a wait_ms
 * (libmemcached cannot ask for an item's remaining TTL). */
static int lease_format(char *buf, size_t size, uint64_t token, int64_t ttl_ms)
{
    return snprintf(buf, size, "%016" PRIx64 ":%" PRId64, token, strata__now_wall_ms() + ttl_ms);
}

static int lease_parse(const char *v, size_t len, uint64_t *token, int64_t *expires_ms)
{
    char buf[64];
    unsigned long long t;
    long long e;
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, v, len);
    buf[len] = '\0';
    if (sscanf(buf, "%16llx:%lld", &t, &e) != 2)
        return -1;
    *token = (uint64_t)t;
    *expires_ms = (int64_t)e;
    return 0;
}

/* Is the lease on lk held by token? 1 yes, 0 no, or an error. */
static int lease_is_ours(mc_call *call, const mc_key *lk, uint64_t token, int64_t *expires_ms)
{
    strata__bytes v = {0, 0, 0};
    mc_item item;
    uint64_t held;
    int64_t exp = 0;
    int rc = item_get(call, lk, &item, &v, "lease read");
    if (rc < 0) {
        strata__bytes_free(&v);
        return rc;
    }
    rc = item.found && lease_parse(v.data, v.len, &held, &exp) == 0 && held == token;
    if (expires_ms)
        *expires_ms = item.found ? exp : 0;
    strata__bytes_free(&v);
    return rc;
}

/* After a lost add: who holds lk? A lease that is not in our format, or whose
 * own expiry stamp has passed while the item lives on (written without a TTL,
 * or by a foreign client), is broken, not held: it is taken over with a CAS
 * on the version just read, so of several callers exactly one wins it.
 * 0 = ours now; STRATA_MISS = gone (add again); STRATA_MISS_WAIT with
 * *wait_ms = the holder's time left; or an error. */
static int lease_contest(mc_call *call, const mc_key *lk, const char *lv, int lvlen, int64_t lease_ttl_ms,
                         int64_t *wait_ms)
{
    strata__bytes v = {0, 0, 0};
    mc_item item;
    uint64_t held;
    int64_t expires = 0, now = strata__now_wall_ms();
    int rc = item_get(call, lk, &item, &v, "lease read");
    if (rc < 0) {
        strata__bytes_free(&v);
        return rc;
    }
    if (!item.found) {
        rc = STRATA_MISS;
    } else if (lease_parse(v.data, v.len, &held, &expires) == 0 && expires > now &&
               expires - now <= STRATA_MAX_MS) { /* no lease of ours lives longer */
        *wait_ms = expires - now > lease_ttl_ms ? lease_ttl_ms : expires - now;
        rc = STRATA_MISS_WAIT;
    } else {
        memcached_return_t mrc = memcached_cas(call->mc, lk->buf, lk->len, lv, (size_t)lvlen,
                                               expiry_from_ms(lease_ttl_ms), 0, item.cas);
        if (mrc == MEMCACHED_SUCCESS || mrc == MEMCACHED_STORED) {
            rc = 0;
        } else if (mrc == MEMCACHED_DATA_EXISTS || mrc == MEMCACHED_NOTFOUND || mrc == MEMCACHED_NOTSTORED) {
            *wait_ms = 1; /* another caller repaired it first */
            rc = STRATA_MISS_WAIT;
        } else {
            rc = call_fail(call, mrc, lk->server, "lease take-over");
        }
    }
    strata__bytes_free(&v);
    return rc;
}

/* ---- ops ---- */

static int mc_get(strata__backend *base, const char *key, size_t keylen, strata__bytes *out)
{
    mc_backend *b = (mc_backend *)base;
    mc_call call;
    mc_key k;
    mc_item item;
    int rc;
    value_key(b, key, keylen, &k);
    if ((rc = server_check(b, k.server)) < 0)
        return rc;
    if ((rc = call_begin(b, &call)) < 0)
        return rc;
    {
        /* memcached_get sends one non-quiet GETK; the mget path used where a
         * CAS is needed sends GETKQ + NOOP in two writes, a second syscall
         * and packet per read (measured: 2 sendto per get). */
        size_t len = 0;
        uint32_t flags = 0;
        memcached_return_t mrc;
        char *val = memcached_get(call.mc, k.buf, k.len, &len, &flags, &mrc);
        if (mrc == MEMCACHED_SUCCESS) {
            server_ok(b, k.server);
            item.found = flags != TOMB_FLAGS;
            rc = item.found ? strata__bytes_set(out, val ? val : "", val ? len : 0) : 0;
        } else if (mrc == MEMCACHED_NOTFOUND) {
            server_ok(b, k.server);
            item.found = 0;
            rc = 0;
        } else {
            rc = call_fail(&call, mrc, k.server, "get");
        }
        free(val);
    }
    call_end(&call);
    if (rc < 0)
        return rc;
    return item.found ? 0 : STRATA_MISS;
}

typedef struct mc_slot {
    mc_key key;
    size_t index;
} mc_slot;

static int slot_cmp(const void *a, const void *b)
{
    const mc_slot *x = a, *y = b;
    size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = memcmp(x->key.buf, y->key.buf, n);
    if (c)
        return c;
    return x->key.len < y->key.len ? -1 : x->key.len > y->key.len;
}

static int mc_get_many(strata__backend *base, size_t n, const char *const *keys,
                       const size_t *keylens, strata__bytes *outs, int *rcs)
{
    mc_backend *b = (mc_backend *)base;
    mc_slot *slots = NULL;
    const char **ukeys = NULL;
    size_t *ulens = NULL, *ufirst = NULL;
    size_t i, nu = 0;
    memcached_result_st res;
    memcached_return_t mrc;
    mc_call call;
    int rc = 0, res_ready = 0;

    for (i = 0; i < n; i++)
        rcs[i] = STRATA_MISS;
    if (n == 0)
        return 0;

    slots = malloc(n * sizeof *slots);
    ukeys = malloc(n * sizeof *ukeys);
    ulens = malloc(n * sizeof *ulens);
    ufirst = malloc(n * sizeof *ufirst);
    if (!slots || !ukeys || !ulens || !ufirst) {
        rc = strata__error(STRATA_ENOMEM, "out of memory in get_many (%zu keys)", n);
        goto done;
    }
    for (i = 0; i < n; i++) {
        value_key(b, keys[i], keylens[i], &slots[i].key);
        slots[i].index = i;
        if ((rc = server_check(b, slots[i].key.server)) < 0)
            goto done;
    }
    /* Sorted, repeated keys sit together: send each once, fan results out. */
    qsort(slots, n, sizeof *slots, slot_cmp);
    for (i = 0; i < n; i++) {
        if (i > 0 && slot_cmp(&slots[i - 1], &slots[i]) == 0)
            continue;
        ukeys[nu] = slots[i].key.buf;
        ulens[nu] = slots[i].key.len;
        ufirst[nu] = i;
        nu++;
    }

    if ((rc = call_begin(b, &call)) < 0)
        goto done;
    mrc = memcached_mget(call.mc, ukeys, ulens, nu);
    if (mrc != MEMCACHED_SUCCESS) {
        rc = call_fail(&call, mrc, UINT32_MAX, "get_many");
        call_end(&call);
        goto done;
    }
    if (memcached_result_create(call.mc, &res) == NULL) {
        memcached_quit(call.mc); /* replies are queued on the sockets */
        call_end(&call);
        rc = strata__error(STRATA_ENOMEM, "memcached: out of memory");
        goto done;
    }
    res_ready = 1;
    while (memcached_fetch_result(call.mc, &res, &mrc) != NULL) {
        mc_slot probe, *hit;
        size_t klen = memcached_result_key_length(&res), j;
        if (rc < 0 || klen > MC_KEY_MAX || memcached_result_flags(&res) == TOMB_FLAGS)
            continue;
        memcpy(probe.key.buf, memcached_result_key_value(&res), klen);
        probe.key.len = klen;
        hit = bsearch(&probe, slots, n, sizeof *slots, slot_cmp);
        if (hit == NULL)
            continue;
        /* bsearch may land anywhere in a run of equal keys. */
        while (hit > slots && slot_cmp(hit - 1, &probe) == 0)
            hit--;
        for (j = (size_t)(hit - slots); j < n && slot_cmp(&slots[j], &probe) == 0; j++) {
            size_t at = slots[j].index;
            int src = strata__bytes_set(&outs[at], memcached_result_value(&res),
                                        memcached_result_length(&res));
            if (src < 0) {
                rc = src;
                break;
            }
            rcs[at] = 0;
        }
    }
    if (mrc != MEMCACHED_NOTFOUND && mrc != MEMCACHED_END && mrc != MEMCACHED_SUCCESS)
        rc = call_fail(&call, mrc, UINT32_MAX, "get_many");
    else if (rc == 0)
        for (i = 0; i < nu; i++)
            server_ok(b, slots[ufirst[i]].key.server);
    call_end(&call);

done:
    if (res_ready)
        memcached_result_free(&res);
    if (rc < 0)
        for (i = 0; i < n; i++)
            rcs[i] = STRATA_MISS;
    free(slots);
    free(ukeys);
    free(ulens);
    free(ufirst);
    return rc;
}

/* Write the value, then drop any lease so the next reader can lead at once;
 * the holder's fill fails anyway because the CAS changed. A failure to drop
 * the lease is not the caller's problem (it expires by itself). */
static int set_on(mc_call *call, const char *key, size_t keylen, const char *val, size_t vallen,
                  int64_t ttl_ms)
{
    mc_backend *b = call->b;
    mc_key k, lk;
    int rc;
    if (vallen > MC_MAX_VALUE)
        return too_big(vallen);
    value_key(b, key, keylen, &k);
    if ((rc = server_check(b, k.server)) < 0)
        return rc;
    if ((rc = value_set(call, &k, val, vallen, ttl_ms)) < 0)
        return rc;
    if (lease_key(b, key, keylen, &lk) == 0 && server_check(b, lk.server) == 0)
        (void)item_delete(call, &lk, "set (dropping the lease)");
    strata__error_clear();
    return 0;
}

static int mc_set(strata__backend *base, const char *key, size_t keylen,
                  const char *val, size_t vallen, int64_t ttl_ms)
{
    mc_backend *b = (mc_backend *)base;
    mc_call call;
    int rc;
    if (vallen > MC_MAX_VALUE)
        return too_big(vallen);
    if ((rc = call_begin(b, &call)) < 0)
        return rc;
    rc = set_on(&call, key, keylen, val, vallen, ttl_ms);
    call_end(&call);
    return rc;
}

/* Not pipelined: libmemcached's buffered mode reports errors of earlier
 * commands late and per handle, which would break "first error" reporting. */
static int mc_set_many(strata__backend *base, size_t n, const char *const *keys,
                       const size_t *keylens, const char *const *vals,
                       const size_t *vallens, const int64_t *ttls_ms)
{
    mc_backend *b = (mc_backend *)base;
    mc_call call;
    size_t i;
    int rc, first = 0;
    for (i = 0; i < n; i++)
        if (vallens[i] > MC_MAX_VALUE)
            return too_big(vallens[i]);
    if (n == 0)
        return 0;
    if ((rc = call_begin(b, &call)) < 0)
        return rc;
    for (i = 0; i < n; i++) {
        rc = set_on(&call, keys[i], keylens[i], vals[i], vallens[i], ttls_ms[i]);
        if (rc < 0 && first == 0)
            first = rc;
    }
    call_end(&call);
    return first;
}

static int mc_del(strata__backend *base, const char *key, size_t keylen)
{
    mc_backend *b = (mc_backend *)base;
    mc_call call;
    mc_key k, lk;
    mc_item item;
    memcached_return_t mrc;
    int rc;

    value_key(b, key, keylen, &k);
    if ((rc = server_check(b, k.server)) < 0)
        return rc;
    if ((rc = call_begin(b, &call)) < 0)
        return rc;
    /* The read only decides 0 vs MISS; the tombstone is written either way,
     * replacing any value and any older tombstone (new CAS, lease fills fail). */
    rc = item_get(&call, &k, &item, NULL, "delete");
    if (rc == 0) {
        mrc = memcached_set(call.mc, k.buf, k.len, TOMB_VALUE, sizeof TOMB_VALUE - 1,
                            tomb_expiry(b), TOMB_FLAGS);
        if (mrc != MEMCACHED_SUCCESS && mrc != MEMCACHED_STORED)
            rc = call_fail(&call, mrc, k.server, "delete (tombstone)");
    }
    if (rc == 0 && lease_key(b, key, keylen, &lk) == 0 && server_check(b, lk.server) == 0)
        (void)item_delete(&call, &lk, "delete (dropping the lease)");
    call_end(&call);
    if (rc < 0)
        return rc;
    strata__error_clear();
    return item.found && item.flags != TOMB_FLAGS ? 0 : STRATA_MISS;
}

static int mc_touch(strata__backend *base, const char *key, size_t keylen, int64_t ttl_ms)
{
    mc_backend *b = (mc_backend *)base;
    mc_call call;
    mc_key k;
    mc_item item;
    memcached_return_t mrc;
    int rc;

    value_key(b, key, keylen, &k);
    if ((rc = server_check(b, k.server)) < 0)
        return rc;
    if ((rc = call_begin(b, &call)) < 0)
        return rc;
    /* A tombstone is a miss and must keep its own expiry. */
    rc = item_get(&call, &k, &item, NULL, "touch");
    if (rc == 0 && (!item.found || item.flags == TOMB_FLAGS)) {
        rc = STRATA_MISS;
    } else if (rc == 0) {
        mrc = memcached_touch(call.mc, k.buf, k.len, expiry_from_ms(ttl_ms));
        if (mrc == MEMCACHED_NOTFOUND)
            rc = STRATA_MISS;
        else if (mrc != MEMCACHED_SUCCESS)
            rc = call_fail(&call, mrc, k.server, "touch");
    }
    call_end(&call);
    return rc;
}

static int mc_lease_acquire(strata__backend *base, const char *key, size_t keylen,
                            uint64_t token, int64_t lease_ttl_ms,
                            uint64_t *guard, int64_t *wait_ms)
{
    mc_backend *b = (mc_backend *)base;
    mc_call call;
    mc_key k, lk;
    mc_item item;
    char lv[64];
    int lvlen, attempt, rc;
    int64_t seen;

    if (lease_ttl_ms <= 0)
        lease_ttl_ms = 1;
    /* Remember the longest lease so tombstones outlive it. */
    seen = strata__atomic_load(&b->max_lease_ttl_ms);
    while (lease_ttl_ms > seen && !strata__atomic_cas(&b->max_lease_ttl_ms, &seen, lease_ttl_ms))
        ;
    value_key(b, key, keylen, &k);
    if ((rc = lease_key(b, key, keylen, &lk)) < 0)
        return rc;
    if ((rc = server_check(b, lk.server)) < 0 || (rc = server_check(b, k.server)) < 0)
        return rc;
    if ((rc = call_begin(b, &call)) < 0)
        return rc;

    lvlen = lease_format(lv, sizeof lv, token, lease_ttl_ms);
    rc = STRATA_MISS_WAIT;
    *wait_ms = 1;
    for (attempt = 0; attempt < 2; attempt++) {
        memcached_return_t mrc = memcached_add(call.mc, lk.buf, lk.len, lv, (size_t)lvlen,
                                               expiry_from_ms(lease_ttl_ms), 0);
        if (mrc == MEMCACHED_SUCCESS || mrc == MEMCACHED_STORED) {
            rc = 0;
            break;
        }
        if (mrc != MEMCACHED_DATA_EXISTS && mrc != MEMCACHED_NOTSTORED) {
            rc = call_fail(&call, mrc, lk.server, "lease acquire");
            break;
        }
        /* Lost: see who holds it (and how long for), or take over a broken one. */
        rc = lease_contest(&call, &lk, lv, lvlen, lease_ttl_ms, wait_ms);
        if (rc != STRATA_MISS)
            break;
        rc = STRATA_MISS_WAIT; /* released in between: add again, else wait a moment */
        *wait_ms = 1;
    }
    if (rc == 0) {
        /* Won: the guard is whatever is under the value key now, tombstone
         * included (so filling over a tombstone needs no add). */
        rc = item_get(&call, &k, &item, NULL, "lease acquire (reading the guard)");
        if (rc < 0)
            (void)item_delete(&call, &lk, "lease acquire (undo)");
        else
            *guard = item.found ? item.cas : 0;
    }
    call_end(&call);
    return rc;
}

static int mc_lease_fill(strata__backend *base, const char *key, size_t keylen,
                         uint64_t token, uint64_t guard,
                         const char *val, size_t vallen, int64_t ttl_ms)
{
    mc_backend *b = (mc_backend *)base;
    mc_call call;
    mc_key k, lk;
    memcached_return_t mrc;
    int rc, ours;

    if (vallen > MC_MAX_VALUE)
        return too_big(vallen);
    value_key(b, key, keylen, &k);
    if ((rc = lease_key(b, key, keylen, &lk)) < 0)
        return rc;
    if ((rc = server_check(b, lk.server)) < 0 || (rc = server_check(b, k.server)) < 0)
        return rc;
    if ((rc = call_begin(b, &call)) < 0)
        return rc;

    ours = lease_is_ours(&call, &lk, token, NULL);
    if (ours < 0) {
        call_end(&call);
        return ours;
    }
    if (!ours) {
        call_end(&call);
        return strata__error(STRATA_ELEASE, "memcached: lease lost (expired, or taken "
                             "over after a write) before the fill");
    }
    if (guard != 0)
        mrc = memcached_cas(call.mc, k.buf, k.len, val, vallen, expiry_from_ms(ttl_ms), 0, guard);
    else
        mrc = memcached_add(call.mc, k.buf, k.len, val, vallen, expiry_from_ms(ttl_ms), 0);
    if (mrc == MEMCACHED_SUCCESS || mrc == MEMCACHED_STORED) {
        rc = 0;
    } else if (mrc == MEMCACHED_DATA_EXISTS || mrc == MEMCACHED_NOTSTORED ||
               mrc == MEMCACHED_NOTFOUND) {
        rc = strata__error(STRATA_ELEASE, "memcached: fill refused: the key was written or "
                           "deleted after the lease was taken");
    } else {
        rc = store_failed(&call, mrc, &k, vallen, "lease fill");
    }
    /* Give the lease back either way. Between the check above and this delete
     * the lease may have expired and gone to someone else; deleting theirs
     * only lets a third caller lead early. Their fill still fails on the CAS,
     * so this weakens stampede protection in a corner, never write safety. */
    if (rc != STRATA_ETIMEOUT && rc != STRATA_EBACKEND && server_check(b, lk.server) == 0)
        (void)item_delete(&call, &lk, "lease fill (release)"); /* else it expires by itself */
    call_end(&call);
    if (rc == 0)
        strata__error_clear();
    return rc;
}

static int mc_lease_release(strata__backend *base, const char *key, size_t keylen, uint64_t token)
{
    mc_backend *b = (mc_backend *)base;
    mc_call call;
    mc_key lk;
    int rc;
    if ((rc = lease_key(b, key, keylen, &lk)) < 0)
        return rc;
    if ((rc = server_check(b, lk.server)) < 0)
        return rc;
    if ((rc = call_begin(b, &call)) < 0)
        return rc;
    rc = lease_is_ours(&call, &lk, token, NULL);
    if (rc > 0)
        rc = item_delete(&call, &lk, "lease release");
    call_end(&call);
    return rc < 0 ? rc : 0;
}

/* Add-then-incr: created holding `init` (decimal, no expiry) when absent. */
static int mc_counter(strata__backend *base, const char *key, size_t keylen,
                      int64_t init, int64_t delta, int64_t *out)
{
    mc_backend *b = (mc_backend *)base;
    mc_call call;
    mc_key k;
    mc_item item;
    uint64_t value = 0, mag;
    int rc = 0, attempt;
    char iv[24];
    size_t ivlen = (size_t)snprintf(iv, sizeof iv, "%lld", (long long)(init < 0 ? 0 : init));

    value_key(b, key, keylen, &k);
    if ((rc = server_check(b, k.server)) < 0)
        return rc;
    if ((rc = call_begin(b, &call)) < 0)
        return rc;
    /* memcached counters are unsigned 64-bit and a decrement stops at 0. */
    mag = delta < 0 ? (uint64_t)(-(delta + 1)) + 1 : (uint64_t)delta;
    for (attempt = 0; attempt < 3; attempt++) {
        memcached_return_t mrc;
        /* Created at init with no expiry; losing the add just means it exists. */
        mrc = memcached_add(call.mc, k.buf, k.len, iv, ivlen, 0, 0);
        if (mrc != MEMCACHED_SUCCESS && mrc != MEMCACHED_STORED &&
            mrc != MEMCACHED_DATA_EXISTS && mrc != MEMCACHED_NOTSTORED) {
            rc = call_fail(&call, mrc, k.server, "incr (create)");
            break;
        }
        if (delta >= 0)
            mrc = memcached_increment_by_key(call.mc, k.buf, k.len, k.buf, k.len, mag, &value);
        else
            mrc = memcached_decrement_by_key(call.mc, k.buf, k.len, k.buf, k.len, mag, &value);
        if (mrc == MEMCACHED_SUCCESS) {
            rc = 0;
            break;
        }
        if (mrc == MEMCACHED_NOTFOUND)
            continue; /* evicted between add and incr */
        if (rc_is_connection(mrc) && mrc != MEMCACHED_UNKNOWN_READ_FAILURE) {
            rc = call_fail(&call, mrc, k.server, "incr");
            break;
        }
        /* Refused as non-numeric (libmemcached 1.1 reports the binary DELTA_BADVAL
         * status as UNKNOWN_READ_FAILURE). Not a server fault, so no backoff; the
         * sockets are dropped anyway, since it is unclear how much was read.
         * A deleted counter's tombstone restarts at init. */
        if (!rc_in_sync(mrc))
            memcached_quit(call.mc);
        rc = item_get(&call, &k, &item, NULL, "incr");
        if (rc < 0)
            break;
        if (item.found && item.flags == TOMB_FLAGS) {
            mrc = memcached_cas(call.mc, k.buf, k.len, iv, ivlen, 0, 0, item.cas);
            if (mrc == MEMCACHED_SUCCESS || mrc == MEMCACHED_DATA_EXISTS ||
                mrc == MEMCACHED_NOTFOUND || mrc == MEMCACHED_STORED)
                continue;
            rc = call_fail(&call, mrc, k.server, "incr (replacing a tombstone)");
            break;
        }
        rc = strata__error(STRATA__EREFUSED, "memcached %s: incr: the key holds a non-numeric value",
                           server_name(b, k.server));
        break;
    }
    if (rc == 0 && attempt == 3)
        rc = strata__error(STRATA_EBACKEND, "memcached %s: incr: counter kept disappearing",
                           server_name(b, k.server));
    call_end(&call);
    if (rc == 0)
        server_ok(b, k.server);
    /* memcached counters are unsigned and wrap at 2^64; ours stop at 2^63-1 */
    if (rc == 0 && (value > (uint64_t)INT64_MAX || (delta > 0 && value < mag)))
        rc = strata__error(STRATA__EREFUSED, "memcached %s: incr: counter %.*s overflowed (now %llu; the largest "
                           "is %lld)", server_name(b, k.server), (int)(k.len > 200 ? 200 : k.len), k.buf,
                           (unsigned long long)value, (long long)INT64_MAX);
    if (rc == 0)
        *out = (int64_t)value;
    return rc;
}

static int mc_incr(strata__backend *base, const char *key, size_t keylen,
                   int64_t delta, int64_t *out)
{
    return mc_counter(base, key, keylen, 0, delta, out);
}

static size_t mc_max_value_size(strata__backend *base)
{
    (void)base;
    return MC_MAX_VALUE;
}

static void mc_close(strata__backend *base)
{
    mc_backend *b = (mc_backend *)base;
    mc_conns *c;
    if (b == NULL)
        return;
    c = strata__atomic_load(&b->conns);
    /* A pool inherited across fork() is the parent's: leave it alone (see conns_current). */
    if (c != NULL && c->gen == strata__fork_generation())
        conns_free(c);
    memcached_free(b->master);
    strata__mutex_destroy(&b->fork_lock);
    free(b->servers);
    free(b);
}

/* Operator tools: the value (a tombstone reads as absent) and the lease with
 * its holder and remaining time; memcached cannot tell an item's TTL. */
static int mc_peek(strata__backend *base, const strata__config *cfg, const char *key, size_t keylen,
                   strata__peek *out)
{
    mc_backend *b = (mc_backend *)base;
    strata__bytes lease = {0, 0, 0};
    mc_call call;
    mc_key k, lk;
    mc_item item;
    uint64_t token;
    int64_t expires;
    int rc;
    (void)cfg;
    value_key(b, key, keylen, &k);
    if ((rc = lease_key(b, key, keylen, &lk)) < 0)
        return rc;
    if ((rc = call_begin(b, &call)) < 0)
        return rc;
    rc = item_get(&call, &k, &item, &out->val, "inspect");
    out->found = rc == 0 && item.found && item.flags != TOMB_FLAGS;
    if (rc == 0)
        rc = item_get(&call, &lk, &item, &lease, "inspect");
    call_end(&call);
    if (rc == 0 && item.found && lease_parse(lease.data, lease.len, &token, &expires) == 0) {
        out->lease = 1;
        snprintf(out->lease_holder, sizeof out->lease_holder, "%016" PRIx64, token);
        out->lease_ttl_ms = expires - strata__now_wall_ms();
    }
    strata__bytes_free(&lease);
    return rc;
}

/* `stats settings` of the first server to answer: item size limit, evictions. */
static memcached_return_t settings_seen(const memcached_instance_st *server, const char *key, size_t keylen,
                                        const char *value, size_t valuelen, void *ctx)
{
    strata_server_info *out = ctx;
    char v[32];
    (void)server;
    snprintf(v, sizeof v, "%.*s", (int)(valuelen < sizeof v ? valuelen : sizeof v - 1), value);
    if (keylen == 13 && memcmp(key, "item_size_max", 13) == 0 && out->item_size_max < 0)
        out->item_size_max = strtoll(v, NULL, 10);
    else if (keylen == 9 && memcmp(key, "evictions", 9) == 0 && out->eviction_policy[0] == '\0')
        snprintf(out->eviction_policy, sizeof out->eviction_policy, "%s", strcmp(v, "on") == 0 ? "lru" : "none");
    return MEMCACHED_SUCCESS;
}

/* Operator tools: the first server's version, clock, memory and item size
 * limit (`stats` and `stats settings`), and one timed round trip. */
static int mc_server_info(strata__backend *base, const strata__config *cfg, strata_server_info *out)
{
    mc_backend *b = (mc_backend *)base;
    memcached_stat_st *st = NULL;
    memcached_return_t mrc;
    mc_call call;
    uint64_t t0, t1;
    int64_t wall0, wall1;
    char *v;
    int rc;
    (void)cfg;
    if ((rc = call_begin(b, &call)) < 0)
        return rc;
    memcached_version(call.mc); /* connects, so the timed call below is one round trip */
    t0 = strata__now_mono_ns();
    wall0 = strata__now_wall_ms();
    st = memcached_stat(call.mc, NULL, &mrc);
    t1 = strata__now_mono_ns();
    wall1 = strata__now_wall_ms();
    if (st == NULL || (mrc != MEMCACHED_SUCCESS && mrc != MEMCACHED_SOME_ERRORS)) {
        rc = call_fail(&call, mrc, 0, "stats");
        goto out;
    }
    out->rtt_us = (int64_t)((t1 - t0) / 1000);
    if ((v = memcached_stat_get_value(call.mc, st, "version", &mrc)) != NULL) {
        snprintf(out->server_version, sizeof out->server_version, "%s", v);
        free(v);
    }
    if ((v = memcached_stat_get_value(call.mc, st, "time", &mrc)) != NULL) {
        /* whole seconds: the skew is known to within one */
        out->clock_known = 1;
        out->clock_skew_ms = strtoll(v, NULL, 10) * 1000 - (wall0 + wall1) / 2;
        free(v);
    }
    if ((v = memcached_stat_get_value(call.mc, st, "limit_maxbytes", &mrc)) != NULL) {
        out->maxmemory = strtoll(v, NULL, 10);
        free(v);
    }
    memcached_stat_execute(call.mc, "settings", settings_seen, out);
    out->cluster = 0;
    rc = 0;
out:
    memcached_stat_free(NULL, st);
    call_end(&call);
    return rc;
}

/* ---- conditional writes, batch delete, leases as locks ---- */

static void drop_lease(mc_call *call, const char *key, size_t keylen, const char *op)
{
    mc_key lk;
    if (lease_key(call->b, key, keylen, &lk) == 0 && server_check(call->b, lk.server) == 0)
        (void)item_delete(call, &lk, op); /* else it expires by itself */
    strata__error_clear();
}

/* add (old == NULL) or cas. A tombstone counts as nothing, so add replaces
 * it by its CAS; cas compares the bytes read with their CAS, then swaps by it. */
static int conditional_set(mc_backend *b, const char *key, size_t keylen, const char *old, size_t oldlen,
                           const char *val, size_t vallen, int64_t ttl_ms)
{
    const char *op = old ? "cas" : "add";
    strata__bytes cur = {0, 0, 0};
    memcached_return_t mrc = MEMCACHED_NOTSTORED;
    mc_call call;
    mc_key k;
    mc_item item;
    int rc;

    if (vallen > MC_MAX_VALUE)
        return too_big(vallen);
    value_key(b, key, keylen, &k);
    if ((rc = server_check(b, k.server)) < 0 || (rc = call_begin(b, &call)) < 0)
        return rc;
    if (old == NULL)
        mrc = memcached_add(call.mc, k.buf, k.len, val, vallen, expiry_from_ms(ttl_ms), 0);
    if (old == NULL && mrc != MEMCACHED_SUCCESS && mrc != MEMCACHED_STORED && mrc != MEMCACHED_NOTSTORED &&
        mrc != MEMCACHED_DATA_EXISTS) {
        rc = store_failed(&call, mrc, &k, vallen, op);
    } else if (mrc == MEMCACHED_SUCCESS || mrc == MEMCACHED_STORED) {
        rc = 0;
    } else if ((rc = item_get(&call, &k, &item, &cur, op)) == 0) {
        int tomb = item.found && item.flags == TOMB_FLAGS;
        if (old == NULL)
            rc = tomb ? 0 : item.found ? STRATA_EXISTS : STRATA_MISS; /* MISS: gone meanwhile, retry */
        else
            rc = !item.found || tomb ? STRATA_MISS
               : cur.len != oldlen || memcmp(cur.data, old, oldlen) != 0 ? STRATA_EXISTS : 0;
        if (rc == 0) {
            mrc = memcached_cas(call.mc, k.buf, k.len, val, vallen, expiry_from_ms(ttl_ms), 0, item.cas);
            if (mrc == MEMCACHED_DATA_EXISTS)
                rc = STRATA_EXISTS;
            else if (mrc == MEMCACHED_NOTFOUND)
                rc = STRATA_MISS;
            else if (mrc != MEMCACHED_SUCCESS && mrc != MEMCACHED_STORED)
                rc = store_failed(&call, mrc, &k, vallen, op);
        } else if (old == NULL && rc == STRATA_MISS) {
            rc = STRATA_EXISTS; /* the engine reads again and retries */
        }
    }
    if (rc == 0) {
        server_ok(b, k.server);
        drop_lease(&call, key, keylen, op);
    }
    call_end(&call);
    strata__bytes_free(&cur);
    return rc;
}

static int mc_add(strata__backend *base, const char *key, size_t keylen, const char *val, size_t vallen,
                  int64_t ttl_ms)
{
    return conditional_set((mc_backend *)base, key, keylen, NULL, 0, val, vallen, ttl_ms);
}

static int mc_cas(strata__backend *base, const char *key, size_t keylen, const char *old, size_t oldlen,
                  const char *val, size_t vallen, int64_t ttl_ms)
{
    return conditional_set((mc_backend *)base, key, keylen, old ? old : "", oldlen, val, vallen, ttl_ms);
}

/* libmemcached 1.1.4 has no pipelined delete with per-key results: one
 * delete (tombstone) per key. */
static int mc_del_many(strata__backend *base, size_t n, const char *const *keys, const size_t *keylens,
                       int *deleted)
{
    size_t i;
    for (i = 0; i < n; i++) {
        int rc = mc_del(base, keys[i], keylens[i]);
        if (rc < 0)
            return rc;
        deleted[i] = rc == 0;
    }
    return 0;
}

static int mc_lease_own(strata__backend *base, const char *key, size_t keylen, uint64_t token, int64_t ttl_ms)
{
    mc_backend *b = (mc_backend *)base;
    strata__bytes v = {0, 0, 0};
    mc_call call;
    mc_key lk;
    mc_item item;
    uint64_t held = 0;
    int64_t exp = 0;
    int rc;

    if ((rc = lease_key(b, key, keylen, &lk)) < 0 || (rc = server_check(b, lk.server)) < 0 ||
        (rc = call_begin(b, &call)) < 0)
        return rc;
    rc = item_get(&call, &lk, &item, &v, "lock");
    if (rc == 0 && token == 0) {
        rc = item.found ? 0 : STRATA_MISS;
    } else if (rc == 0 && (!item.found || lease_parse(v.data, v.len, &held, &exp) != 0 || held != token)) {
        rc = strata__error(STRATA_ELEASE, "memcached %s: the lock is not held by this handle (expired or "
                           "taken over)", server_name(b, lk.server));
    } else if (rc == 0 && ttl_ms > 0) {
        char lv[64];
        int lvlen = lease_format(lv, sizeof lv, token, ttl_ms);
        memcached_return_t mrc = memcached_cas(call.mc, lk.buf, lk.len, lv, (size_t)lvlen,
                                               expiry_from_ms(ttl_ms), 0, item.cas);
        if (mrc == MEMCACHED_DATA_EXISTS || mrc == MEMCACHED_NOTFOUND)
            rc = strata__error(STRATA_ELEASE, "memcached %s: the lock was lost while renewing it",
                               server_name(b, lk.server));
        else if (mrc != MEMCACHED_SUCCESS && mrc != MEMCACHED_STORED)
            rc = call_fail(&call, mrc, lk.server, "lock renew");
    } else if (rc == 0) {
        /* As mc_lease_release: the lease can only change hands between the
         * check and the delete if it expired in that instant. */
        rc = item_delete(&call, &lk, "lock release");
    }
    call_end(&call);
    strata__bytes_free(&v);
    return rc;
}

static const strata__backend_ops mc_ops = {
    "memcached",
    mc_close,
    mc_get,
    mc_get_many,
    mc_set,
    mc_set_many,
    mc_del,
    mc_touch,
    mc_lease_acquire,
    mc_lease_fill,
    mc_lease_release,
    mc_incr,
    mc_max_value_size,
    mc_counter,
    NULL, NULL, NULL, NULL, NULL, NULL, /* no streams: write-behind uses the local journal */
    NULL,                               /* wb_dead_trim: the local journal trims */
    mc_peek,
    NULL,                               /* scan: memcached cannot list its keys */
    mc_server_info,
    NULL, NULL, NULL,                   /* wb_status, wb_dead_*: the engine reads the journal */
    mc_add,
    mc_cas,
    mc_del_many,
    mc_lease_own,
    NULL /* no pub/sub: l1_bus, where configured, carries the flush (engine/coherence.c) */
};

static int behave(memcached_st *m, memcached_behavior_t flag, uint64_t value, const char *name)
{
    memcached_return_t rc = memcached_behavior_set(m, flag, value);
    if (rc != MEMCACHED_SUCCESS)
        return strata__error(STRATA_EBACKEND, "memcached: setting %s failed: %s", name,
                             memcached_strerror(m, rc));
    return 0;
}

int strata__backend_memcached_open(strata__backend **out, const strata__config *cfg)
{
    mc_backend *b;
    size_t i;
    int rc = 0;
    int64_t timeout, connect_timeout;

    *out = NULL;
    if (cfg->nservers == 0 || cfg->nservers > STRATA__MAX_SERVERS)
        return strata__error(STRATA_EINVAL, "memcached: %zu servers given (1-%d allowed)",
                             cfg->nservers, STRATA__MAX_SERVERS);
    if (cfg->nslen > STRATA__MAX_NS)
        return strata__error(STRATA_EINVAL, "memcached: namespace longer than %d bytes",
                             STRATA__MAX_NS);
    timeout = cfg->opts.timeout_ms > 0 ? cfg->opts.timeout_ms : 250;
    connect_timeout = cfg->opts.connect_timeout_ms > 0 ? cfg->opts.connect_timeout_ms : 1000;

    b = calloc(1, sizeof *b);
    if (b == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory opening memcached");
    b->base.ops = &mc_ops;
    b->nservers = cfg->nservers;
    b->pool_size = cfg->opts.pool_size > 0 ? cfg->opts.pool_size : 1;
    b->timeout_ms = timeout;
    b->max_lease_ttl_ms = cfg->opts.lease_ttl_ms > 0 ? cfg->opts.lease_ttl_ms : 1000;
    memcpy(b->ns, cfg->ns, cfg->nslen);
    b->ns[cfg->nslen] = '\0';
    b->nslen = cfg->nslen;
    if (strata__mutex_init(&b->fork_lock) != 0) {
        free(b);
        return strata__error(STRATA_ENOMEM, "memcached: cannot create a mutex");
    }
    b->servers = calloc(cfg->nservers, sizeof *b->servers);
    b->master = memcached_create(NULL);
    if (b->servers == NULL || b->master == NULL) {
        rc = strata__error(STRATA_ENOMEM, "out of memory opening memcached");
        goto fail;
    }

    /* Binary protocol: CAS and the losing-add code are as documented, and keys
     * are length-prefixed. Ketama: adding or losing a server moves few keys.
     * No auto-ejection: rehashing a dead server's keys elsewhere would split a
     * key's value, lease and tombstone across servers when it comes back. */
    if ((rc = behave(b->master, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1, "binary protocol")) < 0 ||
        (rc = behave(b->master, MEMCACHED_BEHAVIOR_DISTRIBUTION,
                     MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA, "ketama distribution")) < 0 ||
        (rc = behave(b->master, MEMCACHED_BEHAVIOR_KETAMA_HASH, MEMCACHED_HASH_MD5,
                     "ketama hash")) < 0 ||
        (rc = behave(b->master, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1, "CAS")) < 0 ||
        (rc = behave(b->master, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1, "TCP_NODELAY")) < 0 ||
        (rc = behave(b->master, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, (uint64_t)connect_timeout,
                     "connect timeout")) < 0 ||
        (rc = behave(b->master, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, (uint64_t)timeout,
                     "poll timeout")) < 0 ||
        (rc = behave(b->master, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, (uint64_t)timeout * 1000,
                     "receive timeout")) < 0 ||
        (rc = behave(b->master, MEMCACHED_BEHAVIOR_SND_TIMEOUT, (uint64_t)timeout * 1000,
                     "send timeout")) < 0 ||
        /* Per-handle safety net (whole seconds); the shared per-server backoff
         * above is what normally keeps calls off a dead server. */
        (rc = behave(b->master, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 1, "retry timeout")) < 0 ||
        (rc = behave(b->master, MEMCACHED_BEHAVIOR_SERVER_FAILURE_LIMIT, 2,
                     "server failure limit")) < 0)
        goto fail;

    for (i = 0; i < cfg->nservers; i++) {
        memcached_return_t mrc;
        const memcached_instance_st *inst;
        if (cfg->servers[i].port <= 0 || cfg->servers[i].port > 65535) {
            rc = strata__error(STRATA_EINVAL, "memcached: bad port %d for %s",
                               cfg->servers[i].port, cfg->servers[i].host);
            goto fail;
        }
        mrc = memcached_server_add(b->master, cfg->servers[i].host,
                                   (in_port_t)cfg->servers[i].port);
        if (mrc != MEMCACHED_SUCCESS) {
            rc = strata__error(STRATA_EINVAL, "memcached: cannot add server %s:%d: %s",
                               cfg->servers[i].host, cfg->servers[i].port,
                               memcached_strerror(b->master, mrc));
            goto fail;
        }
        /* Names come from libmemcached's own list, so they match hash positions. */
        inst = memcached_server_instance_by_position(b->master, (uint32_t)i);
        snprintf(b->servers[i].name, sizeof b->servers[i].name, "%s:%u",
                 inst ? memcached_server_name(inst) : cfg->servers[i].host,
                 inst ? (unsigned)memcached_server_port(inst) : (unsigned)cfg->servers[i].port);
    }

    /* No connection is made here: a cache can be created while its servers are down. */
    b->conns = conns_new(b);
    if (b->conns == NULL) {
        rc = strata__error(STRATA_ENOMEM, "memcached: cannot create the connection pool");
        goto fail;
    }
    *out = &b->base;
    return 0;

fail:
    if (b->master)
        memcached_free(b->master);
    strata__mutex_destroy(&b->fork_lock);
    free(b->servers);
    free(b);
    return rc;
}
