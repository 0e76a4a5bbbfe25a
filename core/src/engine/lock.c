/*
 * strata_lock: a named lock on the backend's load lease. The holder is a
 * random token kept in the handle, so any thread holding the handle may
 * release or extend it, and a lost lock (expired, then taken by another) is
 * reported instead of silently shared: every operation is guarded by the
 * token on the server.
 */
#include "cache.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

#define LOCK_BACKOFF_MIN_MS 1
#define LOCK_BACKOFF_MAX_MS 50

struct strata_lock {
    strata_cache *cache;
    int64_t ttl_ms;
    uint64_t token;     /* atomic: 0 while this handle does not hold it */
    size_t fklen;
    char fk[];          /* "<ns>#K:<name>": apart from every value key */
};

int strata_lock_new(strata_lock **out, strata_cache *c, const char *name, size_t namelen, int64_t ttl_ms)
{
    strata_lock *l;
    int rc;
    if (out == NULL)
        return strata__error(STRATA_EINVAL, "lock out-pointer is NULL");
    *out = NULL;
    if ((rc = strata__check_key(c, name, namelen)) < 0)
        return strata__error(rc, "lock name: %s", strata_error_last());
    if (ttl_ms <= 0)
        return strata__error(STRATA_EINVAL, "lock ttl_ms must be > 0 (it bounds how long a crashed holder "
                             "blocks the others), got %lld", (long long)ttl_ms);
    if ((l = malloc(sizeof *l + c->cfg.nslen + 3 + namelen)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory creating a lock");
    l->cache = c;
    l->ttl_ms = ttl_ms;
    l->token = 0;
    memcpy(l->fk, c->cfg.ns, c->cfg.nslen);
    memcpy(l->fk + c->cfg.nslen, "#K:", 3);
    memcpy(l->fk + c->cfg.nslen + 3, name, namelen);
    l->fklen = c->cfg.nslen + 3 + namelen;
    *out = l;
    return 0;
}

void strata_lock_free(strata_lock *l)
{
    free(l);
}

static int call(strata_lock *l, int rc)
{
    return strata__backend_result(l->cache, rc);
}

int strata_lock_acquire(strata_lock *l, int blocking, int64_t timeout_ms)
{
    strata_cache *c;
    int64_t deadline, backoff = LOCK_BACKOFF_MIN_MS;
    uint64_t token = strata__random_u64() | 1, guard;
    if (l == NULL)
        return strata__error(STRATA_EINVAL, "lock is NULL");
    /* Not reentrant (as threading.Lock): while this handle holds it, the
     * lease is taken, so this waits like any other taker. */
    c = l->cache;
    deadline = timeout_ms < 0 ? INT64_MAX : strata__now_mono_ms() + timeout_ms;
    for (;;) {
        int64_t wait_ms = 0, now, nap;
        int rc = strata__breaker_allow(c);
        if (rc == 0)
            rc = call(l, c->backend->ops->lease_acquire(c->backend, l->fk, l->fklen, token, l->ttl_ms, &guard,
                                                        &wait_ms));
        if (rc == 0) {
            strata__atomic_store(&l->token, token);
            return 0;
        }
        if (rc != STRATA_MISS_WAIT)
            return rc;
        now = strata__now_mono_ms();
        if (!blocking || now >= deadline)
            return STRATA_MISS_WAIT;
        nap = backoff < wait_ms || wait_ms <= 0 ? backoff : wait_ms;
        if (deadline != INT64_MAX && nap > deadline - now)
            nap = deadline - now;
        strata__sleep_ms(nap);
        backoff = backoff * 2 > LOCK_BACKOFF_MAX_MS ? LOCK_BACKOFF_MAX_MS : backoff * 2;
    }
}

/* Renews (ttl_ms > 0) or releases (0) the lease while this handle's token
 * holds it. When the token turns out not to hold it (or it was released), the
 * handle forgets that token, unless another thread of the same handle has
 * taken the lock anew meanwhile (a handle may be shared, as threading.Lock). */
static int owned(strata_lock *l, int64_t ttl_ms, const char *what)
{
    strata_cache *c;
    uint64_t token;
    int rc;
    if (l == NULL)
        return strata__error(STRATA_EINVAL, "lock is NULL");
    if ((token = strata__atomic_load(&l->token)) == 0)
        return strata__error(STRATA_ELEASE, "%s: this handle does not hold the lock", what);
    c = l->cache;
    if ((rc = strata__breaker_allow(c)) < 0)
        return rc;
    rc = call(l, c->backend->ops->lease_own(c->backend, l->fk, l->fklen, token, ttl_ms));
    if (rc == STRATA_ELEASE || (rc == 0 && ttl_ms == 0))
        strata__atomic_cas(&l->token, &token, 0);
    return rc;
}

int strata_lock_release(strata_lock *l)
{
    return owned(l, 0, "release");
}

int strata_lock_extend(strata_lock *l, int64_t ttl_ms)
{
    if (l != NULL && ttl_ms < 0)
        return strata__error(STRATA_EINVAL, "lock extend: ttl_ms must be >= 0 (0 = the lock's TTL)");
    return owned(l, l && ttl_ms == 0 ? l->ttl_ms : ttl_ms, "extend");
}

int strata_lock_locked(strata_lock *l)
{
    strata_cache *c;
    int rc;
    if (l == NULL)
        return strata__error(STRATA_EINVAL, "lock is NULL");
    c = l->cache;
    if ((rc = strata__breaker_allow(c)) < 0)
        return rc;
    rc = call(l, c->backend->ops->lease_own(c->backend, l->fk, l->fklen, 0, 0));
    return rc == 0 ? 1 : rc == STRATA_MISS ? 0 : rc;
}
