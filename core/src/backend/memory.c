/*
 * memory://: the embedded store. Thread-safe, TTL'd, bounded by max_bytes with
 * LRU eviction. memory://NAME is shared by every cache in the process that
 * names it (reference-counted); plain memory:// is private to its cache.
 *
 * A value key and its lease key hash to the same shard (by the user-key part),
 * so lease operations are atomic under one shard lock.
 */
#include "backend.h"
#include "error.h"
#include "local/table.h"
#include "platform/platform.h"
#include "policy/hash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 32
#define LEASE_KEY_STACK 512
#define KEY_ROOM 4096   /* kept free beside the largest value: a maximal key */
#define MIN_VALUE 4096  /* every shard holds at least one value this big */

/* The smallest max_bytes with room in every shard for one entry of a
 * maximal key and a MIN_VALUE-byte value. */
static uint64_t min_max_bytes(void)
{
    return (uint64_t)SHARDS * (strata__table_cost(0, 0) + KEY_ROOM + MIN_VALUE);
}

typedef struct mem_shard {
    strata__mutex lock;
    strata__table table;
} mem_shard;

typedef struct mem_store {
    char name[256];
    int refs;
    struct mem_store *next;
    mem_shard shards[SHARDS];
} mem_store;

typedef struct mem_backend {
    strata__backend base;
    mem_store *store;
    size_t nslen;
    char ns[STRATA__MAX_NS + 1];
} mem_backend;

/* A key located: its shard, hash, and (for lease ops) the lease key. */
typedef struct mem_ref {
    mem_shard *shard;
    uint64_t hash;
    char *lease;
    size_t leaselen;
    char stack[LEASE_KEY_STACK];
} mem_ref;

static strata__mutex registry_lock = PTHREAD_MUTEX_INITIALIZER;
static mem_store *registry; /* named stores */

#define M(b) ((mem_backend *)(b))

/* The shard is picked by the user-key part, so "<ns>:<k>" and "<ns>#L:<k>"
 * land together; the hash covers the whole key. */
static int locate(mem_backend *m, const char *key, size_t keylen, int want_lease, mem_ref *r)
{
    size_t userlen = keylen - m->nslen - 1;
    const char *user = key + m->nslen + 1;
    r->hash = strata__hash64(key, keylen, 0x6d656d6f7279ull);
    r->shard = &m->store->shards[strata__hash64(user, userlen, 17) % SHARDS];
    r->lease = NULL;
    if (want_lease) {
        r->leaselen = m->nslen + 3 + userlen;
        r->lease = r->leaselen <= LEASE_KEY_STACK ? r->stack : malloc(r->leaselen);
        if (r->lease == NULL)
            return strata__error(STRATA_ENOMEM, "out of memory");
        memcpy(r->lease, m->ns, m->nslen);
        memcpy(r->lease + m->nslen, "#L:", 3);
        memcpy(r->lease + m->nslen + 3, user, userlen);
    }
    strata__mutex_lock(&r->shard->lock);
    return 0;
}

static void unlock(mem_ref *r)
{
    strata__mutex_unlock(&r->shard->lock);
    if (r->lease != r->stack)
        free(r->lease);
}

static uint64_t lease_hash(const mem_ref *r)
{
    return strata__hash64(r->lease, r->leaselen, 0x6d656d6f7279ull);
}

/* The store's expiry for a TTL from now (0 = never). */
static int64_t expiry(int64_t now, int64_t ttl_ms)
{
    return ttl_ms >= STRATA__TTL_NEVER ? 0 : now + ttl_ms;
}

static int put(mem_ref *r, const char *key, size_t keylen, uint64_t h, const char *val,
               size_t vallen, int64_t expires_ms)
{
    int rc = strata__table_put(&r->shard->table, h, key, keylen, val, vallen, expires_ms, NULL);
    if (rc == STRATA_ETOOBIG)
        return strata__error(rc, "value of %zu bytes is over the memory store's limit of %zu "
                             "(max_bytes / %d shards)", vallen,
                             r->shard->table.max_bytes - strata__table_cost(keylen, 0), SHARDS);
    if (rc == STRATA_ENOMEM)
        return strata__error(rc, "out of memory storing %zu bytes", vallen);
    return rc;
}

static int mem_get(strata__backend *b, const char *key, size_t keylen, strata__bytes *out)
{
    mem_ref r;
    strata__entry *e;
    int rc = STRATA_MISS;
    locate(M(b), key, keylen, 0, &r);
    e = strata__table_get(&r.shard->table, r.hash, key, keylen, strata__now_mono_ms());
    if (e)
        rc = strata__bytes_set(out, STRATA__ENTRY_VALUE(e), e->vallen);
    unlock(&r);
    return rc;
}

static int mem_get_many(strata__backend *b, size_t n, const char *const *keys,
                        const size_t *keylens, strata__bytes *outs, int *rcs)
{
    size_t i;
    for (i = 0; i < n; i++)
        if ((rcs[i] = mem_get(b, keys[i], keylens[i], &outs[i])) < 0)
            return rcs[i];
    return 0;
}

static int mem_set(strata__backend *b, const char *key, size_t keylen, const char *val,
                   size_t vallen, int64_t ttl_ms)
{
    mem_ref r;
    int64_t now = strata__now_mono_ms();
    int rc = locate(M(b), key, keylen, 1, &r);
    if (rc < 0)
        return rc;
    strata__table_del(&r.shard->table, lease_hash(&r), r.lease, r.leaselen, now); /* kills the lease */
    rc = put(&r, key, keylen, r.hash, val, vallen, expiry(now, ttl_ms));
    unlock(&r);
    return rc;
}

static int mem_set_many(strata__backend *b, size_t n, const char *const *keys, const size_t *keylens,
                        const char *const *vals, const size_t *vallens, const int64_t *ttls)
{
    size_t i;
    for (i = 0; i < n; i++) {
        int rc = mem_set(b, keys[i], keylens[i], vals[i], vallens[i], ttls[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int mem_del(strata__backend *b, const char *key, size_t keylen)
{
    mem_ref r;
    int64_t now = strata__now_mono_ms();
    int rc = locate(M(b), key, keylen, 1, &r);
    if (rc < 0)
        return rc;
    strata__table_del(&r.shard->table, lease_hash(&r), r.lease, r.leaselen, now);
    rc = strata__table_del(&r.shard->table, r.hash, key, keylen, now);
    unlock(&r);
    return rc;
}

static int mem_touch(strata__backend *b, const char *key, size_t keylen, int64_t ttl_ms)
{
    mem_ref r;
    strata__entry *e;
    int64_t now = strata__now_mono_ms();
    locate(M(b), key, keylen, 0, &r);
    e = strata__table_get(&r.shard->table, r.hash, key, keylen, now);
    if (e)
        e->expires_ms = expiry(now, ttl_ms);
    unlock(&r);
    return e ? 0 : STRATA_MISS;
}

static int mem_lease_acquire(strata__backend *b, const char *key, size_t keylen, uint64_t token,
                             int64_t lease_ttl_ms, uint64_t *guard, int64_t *wait_ms)
{
    mem_ref r;
    strata__entry *e;
    int64_t now = strata__now_mono_ms();
    int rc = locate(M(b), key, keylen, 1, &r);
    if (rc < 0)
        return rc;
    *guard = 0;
    e = strata__table_get(&r.shard->table, lease_hash(&r), r.lease, r.leaselen, now);
    /* A lease without expiry or not a token is broken, not held: taken over. */
    if (e && (e->expires_ms == 0 || e->vallen != sizeof token))
        e = NULL;
    if (e) {
        *wait_ms = e->expires_ms - now;
        rc = STRATA_MISS_WAIT;
    } else {
        rc = put(&r, r.lease, r.leaselen, lease_hash(&r), (const char *)&token, sizeof token,
                 now + lease_ttl_ms);
    }
    unlock(&r);
    return rc;
}

/* Fill (val != NULL) or release (val == NULL), only while the lease holds token. */
static int lease_finish(strata__backend *b, const char *key, size_t keylen, uint64_t token,
                        const char *val, size_t vallen, int64_t ttl_ms)
{
    mem_ref r;
    strata__entry *e;
    int64_t now = strata__now_mono_ms();
    int rc = locate(M(b), key, keylen, 1, &r);
    if (rc < 0)
        return rc;
    e = strata__table_get(&r.shard->table, lease_hash(&r), r.lease, r.leaselen, now);
    if (e && e->vallen == sizeof token && memcmp(STRATA__ENTRY_VALUE(e), &token, sizeof token) == 0) {
        strata__table_del(&r.shard->table, lease_hash(&r), r.lease, r.leaselen, now);
        if (val)
            rc = put(&r, key, keylen, r.hash, val, vallen, expiry(now, ttl_ms));
    } else if (val) {
        rc = strata__error(STRATA_ELEASE,
                           "fill refused: the lease was lost (a write, delete or lease expiry came first)");
    }
    unlock(&r);
    return rc;
}

static int mem_lease_fill(strata__backend *b, const char *key, size_t keylen, uint64_t token,
                          uint64_t guard, const char *val, size_t vallen, int64_t ttl_ms)
{
    (void)guard; /* set and del kill the lease under the same lock: the token suffices */
    return lease_finish(b, key, keylen, token, val ? val : "", vallen, ttl_ms);
}

static int mem_lease_release(strata__backend *b, const char *key, size_t keylen, uint64_t token)
{
    return lease_finish(b, key, keylen, token, NULL, 0, 0);
}

static int mem_incr(strata__backend *b, const char *key, size_t keylen, int64_t delta, int64_t *out)
{
    mem_ref r;
    strata__entry *e;
    int64_t v = 0;
    int rc = 0;
    locate(M(b), key, keylen, 0, &r);
    e = strata__table_get(&r.shard->table, r.hash, key, keylen, strata__now_mono_ms());
    if (e && e->vallen == sizeof v) {
        memcpy(&v, STRATA__ENTRY_VALUE(e), sizeof v);
        v += delta;
        memcpy(STRATA__ENTRY_VALUE(e), &v, sizeof v);
    } else {
        v = delta;
        rc = put(&r, key, keylen, r.hash, (const char *)&v, sizeof v, 0);
    }
    unlock(&r);
    if (rc == 0)
        *out = v;
    return rc;
}

/* Decimal text, like the network backends, so get_many reads it back alike. */
static int mem_counter(strata__backend *b, const char *key, size_t keylen, int64_t init, int64_t delta,
                       int64_t *out)
{
    mem_ref r;
    strata__entry *e;
    char text[24];
    long long v = init;
    int rc = 0, n;
    locate(M(b), key, keylen, 0, &r);
    e = strata__table_get(&r.shard->table, r.hash, key, keylen, strata__now_mono_ms());
    if (e) {
        char *end;
        n = e->vallen < sizeof text ? (int)e->vallen : 0;
        memcpy(text, STRATA__ENTRY_VALUE(e), (size_t)n);
        text[n] = '\0';
        errno = 0;
        v = strtoll(text, &end, 10);
        if (n == 0 || *end != '\0')
            rc = strata__error(STRATA__EREFUSED, "memory: counter key holds a non-numeric value");
        else if (errno == ERANGE)
            rc = strata__error(STRATA__EREFUSED, "memory: counter %s is out of range (the largest is %lld)", text,
                               (long long)INT64_MAX);
    }
    if (rc == 0 && ((delta > 0 && v > INT64_MAX - delta) || (delta < 0 && v < INT64_MIN - delta)))
        rc = strata__error(STRATA__EREFUSED, "memory: counter %lld + %lld would overflow", v, (long long)delta);
    if (rc == 0) {
        v += delta;
        n = snprintf(text, sizeof text, "%lld", v);
        rc = put(&r, key, keylen, r.hash, text, (size_t)n, 0);
    }
    unlock(&r);
    if (rc == 0)
        *out = v;
    return rc;
}

static size_t mem_max_value_size(strata__backend *b)
{
    return M(b)->store->shards[0].table.max_bytes - strata__table_cost(0, 0) - KEY_ROOM;
}

static void store_destroy(mem_store *st)
{
    size_t i;
    for (i = 0; i < SHARDS; i++) {
        strata__table_destroy(&st->shards[i].table);
        strata__mutex_destroy(&st->shards[i].lock);
    }
    free(st);
}

static mem_store *store_new(const char *name, uint64_t max_bytes)
{
    size_t i;
    mem_store *st = calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    snprintf(st->name, sizeof st->name, "%s", name);
    st->refs = 1;
    for (i = 0; i < SHARDS; i++) {
        strata__mutex_init(&st->shards[i].lock);
        if (strata__table_init(&st->shards[i].table, (size_t)(max_bytes / SHARDS), SIZE_MAX) < 0) {
            st->shards[i].table.buckets = NULL;
            store_destroy(st);
            return NULL;
        }
    }
    return st;
}

static void mem_close(strata__backend *b)
{
    mem_store *st = M(b)->store;
    int last;
    strata__mutex_lock(&registry_lock);
    last = --st->refs == 0;
    if (last && st->name[0]) {
        mem_store **pp = &registry;
        while (*pp && *pp != st)
            pp = &(*pp)->next;
        if (*pp)
            *pp = st->next;
    }
    strata__mutex_unlock(&registry_lock);
    if (last)
        store_destroy(st);
    free(b);
}

/* Operator tools: the value with its remaining TTL, and the lease. */
static int mem_peek(strata__backend *b, const strata__config *cfg, const char *key, size_t keylen,
                    strata__peek *out)
{
    mem_ref r;
    strata__entry *e;
    int64_t now = strata__now_mono_ms();
    int rc = locate(M(b), key, keylen, 1, &r);
    (void)cfg;
    if (rc < 0)
        return rc;
    if ((e = strata__table_get(&r.shard->table, r.hash, key, keylen, now)) != NULL) {
        out->found = 1;
        out->ttl_ms = e->expires_ms ? e->expires_ms - now : -1;
        rc = strata__bytes_set(&out->val, STRATA__ENTRY_VALUE(e), e->vallen);
    }
    if ((e = strata__table_get(&r.shard->table, lease_hash(&r), r.lease, r.leaselen, now)) != NULL) {
        uint64_t token = 0;
        memcpy(&token, STRATA__ENTRY_VALUE(e), e->vallen < sizeof token ? e->vallen : sizeof token);
        out->lease = 1;
        out->lease_ttl_ms = e->expires_ms - now;
        snprintf(out->lease_holder, sizeof out->lease_holder, "%016llx", (unsigned long long)token);
    }
    unlock(&r);
    return rc;
}

/* ---- conditional writes, batch delete, leases as locks ---- */

/* Writes val unless the key holds a value, or (old != NULL) unless it holds
 * exactly old: the check and the write under one shard lock. */
static int conditional_put(strata__backend *b, const char *key, size_t keylen, const char *old,
                           size_t oldlen, const char *val, size_t vallen, int64_t ttl_ms)
{
    mem_ref r;
    strata__entry *e;
    int64_t now = strata__now_mono_ms();
    int rc = locate(M(b), key, keylen, 1, &r);
    if (rc < 0)
        return rc;
    e = strata__table_get(&r.shard->table, r.hash, key, keylen, now);
    if (old == NULL && e)
        rc = STRATA_EXISTS;
    else if (old != NULL && e == NULL)
        rc = STRATA_MISS;
    else if (old != NULL && (e->vallen != oldlen || memcmp(STRATA__ENTRY_VALUE(e), old, oldlen) != 0))
        rc = STRATA_EXISTS;
    else {
        strata__table_del(&r.shard->table, lease_hash(&r), r.lease, r.leaselen, now);
        rc = put(&r, key, keylen, r.hash, val, vallen, expiry(now, ttl_ms));
    }
    unlock(&r);
    return rc;
}

static int mem_add(strata__backend *b, const char *key, size_t keylen, const char *val, size_t vallen,
                   int64_t ttl_ms)
{
    return conditional_put(b, key, keylen, NULL, 0, val, vallen, ttl_ms);
}

static int mem_cas(strata__backend *b, const char *key, size_t keylen, const char *old, size_t oldlen,
                   const char *val, size_t vallen, int64_t ttl_ms)
{
    return conditional_put(b, key, keylen, old ? old : "", oldlen, val, vallen, ttl_ms);
}

static int mem_del_many(strata__backend *b, size_t n, const char *const *keys, const size_t *keylens,
                        int *deleted)
{
    size_t i;
    for (i = 0; i < n; i++) {
        int rc = mem_del(b, keys[i], keylens[i]);
        if (rc < 0)
            return rc;
        deleted[i] = rc == 0;
    }
    return 0;
}

static int mem_lease_own(strata__backend *b, const char *key, size_t keylen, uint64_t token, int64_t ttl_ms)
{
    mem_ref r;
    strata__entry *e;
    int64_t now = strata__now_mono_ms();
    int rc = locate(M(b), key, keylen, 1, &r);
    if (rc < 0)
        return rc;
    e = strata__table_get(&r.shard->table, lease_hash(&r), r.lease, r.leaselen, now);
    if (token == 0)
        rc = e ? 0 : STRATA_MISS;
    else if (!e || e->vallen != sizeof token || memcmp(STRATA__ENTRY_VALUE(e), &token, sizeof token) != 0)
        rc = strata__error(STRATA_ELEASE, "memory: the lock is not held by this handle (expired or taken over)");
    else if (ttl_ms > 0)
        e->expires_ms = expiry(now, ttl_ms);
    else
        strata__table_del(&r.shard->table, lease_hash(&r), r.lease, r.leaselen, now);
    unlock(&r);
    return rc;
}

static const strata__backend_ops mem_ops = {
    "memory", mem_close, mem_get, mem_get_many, mem_set, mem_set_many, mem_del, mem_touch,
    mem_lease_acquire, mem_lease_fill, mem_lease_release, mem_incr, mem_max_value_size,
    mem_counter,
    NULL, NULL, NULL, NULL, NULL, NULL, /* no streams: write-behind uses the local journal */
    NULL,                               /* wb_dead_trim: the local journal trims */
    mem_peek,
    NULL, NULL, NULL, NULL, NULL, /* scan, server_info, wb_status, wb_dead_*: the engine answers */
    mem_add, mem_cas, mem_del_many, mem_lease_own,
    NULL /* one process: no other L1s to tell */
};

int strata__backend_memory_open(strata__backend **out, const strata__config *cfg)
{
    mem_backend *m = calloc(1, sizeof *m);
    const char *name = cfg->nservers ? cfg->servers[0].host : "";
    if (m == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory");
    if (cfg->opts.max_bytes < min_max_bytes()) {
        free(m);
        return strata__error(STRATA_EOPTION, "option max_bytes: memory:// needs at least %llu (%d shards, each "
                             "with room for a %d-byte key and a %d-byte value), got %llu",
                             (unsigned long long)min_max_bytes(), SHARDS, KEY_ROOM, MIN_VALUE,
                             (unsigned long long)cfg->opts.max_bytes);
    }
    m->base.ops = &mem_ops;
    m->nslen = cfg->nslen;
    memcpy(m->ns, cfg->ns, cfg->nslen + 1);
    strata__mutex_lock(&registry_lock);
    if (name[0]) {
        mem_store *st = registry;
        while (st && strcmp(st->name, name) != 0)
            st = st->next;
        if (st) {
            st->refs++;
            m->store = st;
        } else if ((m->store = store_new(name, cfg->opts.max_bytes)) != NULL) {
            m->store->next = registry;
            registry = m->store;
        }
    } else {
        m->store = store_new("", cfg->opts.max_bytes);
    }
    strata__mutex_unlock(&registry_lock);
    if (m->store == NULL) {
        free(m);
        return strata__error(STRATA_ENOMEM, "out of memory creating the memory store");
    }
    *out = &m->base;
    return 0;
}
