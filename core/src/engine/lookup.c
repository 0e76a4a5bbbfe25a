/*
 * The two-phase API: lookup decides (hit, refresh early, serve stale, lead
 * the load, or wait); fill / fill_negative / abandon finish a ticket. Every
 * decision is in policy/freshness; the lease makes the fill safe against a
 * write that happened while the loader ran.
 */
#include "cache.h"
#include "error.h"
#include "policy/freshness.h"

#include <stdlib.h>
#include <string.h>

struct strata_ticket {
    strata_cache *cache;
    uint64_t token, guard, epoch, hash;
    int64_t started_ns;
    size_t keylen, fklen;
    char *key, *fk;     /* both in `mem` */
    strata__tagstamp *stamp; /* strata_ticket_tags: stamped into the fill */
    char mem[];
};

strata__tagstamp **strata__ticket_stamp(strata_ticket *t) { return &t->stamp; }
strata_cache *strata__ticket_cache(strata_ticket *t) { return t->cache; }

/* The ticket's key as a descriptor (its full key built). */
static strata__key ticket_key(const strata_ticket *t)
{
    strata__key k;
    k.ptr = t->key;
    k.len = t->keylen;
    k.hash = t->hash;
    k.full = t->fk;
    k.fulllen = t->fklen;
    return k;
}

static int take_lease(strata_cache *c, const strata__key *k, strata_ticket **ticket, int64_t *wait_ms)
{
    const char *fk = k->full, *key = k->ptr;
    size_t keylen = k->len, fklen = k->fulllen;
    uint64_t token = strata__random_u64() | 1, guard = 0;
    strata_ticket *t;
    int rc;
    rc = strata__backend_result(c, c->backend->ops->lease_acquire(c->backend, fk, (size_t)fklen, token,
                                                                  c->cfg.opts.lease_ttl_ms, &guard, wait_ms));
    if (rc == STRATA_MISS_WAIT) {
        STRATA__COUNT(c, waits);
        return rc;
    }
    if (rc < 0)
        return rc;
    t = malloc(sizeof *t + keylen + (size_t)fklen);
    if (t == NULL) {
        c->backend->ops->lease_release(c->backend, fk, (size_t)fklen, token);
        return strata__error(STRATA_ENOMEM, "out of memory");
    }
    t->cache = c;
    t->token = token;
    t->guard = guard;
    t->epoch = c->l1 ? strata__l1_epoch(c->l1, k) : 0;
    t->hash = k->hash;
    t->started_ns = (int64_t)strata__now_mono_ns();
    t->keylen = keylen;
    t->fklen = (size_t)fklen;
    t->key = t->mem;
    t->fk = t->mem + keylen;
    t->stamp = NULL;
    memcpy(t->key, key, keylen);
    memcpy(t->fk, fk, (size_t)fklen);
    STRATA__COUNT(c, leases_won);
    *ticket = t;
    return 0;
}

/* The miss and the lease are two round trips: a leader that filled and
 * released in between must not be loaded over. Winning the lease shows its
 * fill, if any, is done, so one more read tells (one round trip per load). */
static int recheck(strata_cache *c, strata_ticket **ticket, strata_value *out, strata__bytes *raw,
                   strata__envelope *env)
{
    strata_ticket *t = *ticket;
    strata__key k = ticket_key(t);
    int rc = strata__read_backend(c, &k, strata__now_wall_ms(), t->epoch, out, raw, env);
    if (rc == STRATA_OK || rc == STRATA_NEGATIVE) {
        strata_abandon(t);
        *ticket = NULL;
        return rc;
    }
    if (rc == STRATA_HIT_STALE)
        return STRATA_HIT_REFRESH; /* ours to refresh, with the stale value in hand */
    out->len = 0;
    out->level = STRATA_LEVEL_NONE;
    return STRATA_MISS_LEAD; /* still absent, or unreadable now: the holder loads */
}

/* The read that chose an early refresh and the lease are two round trips: a
 * refresher that filled and released in between already gave the key a new
 * version, and refreshing the old one again would load twice. One more read
 * (per early refresh, not per hit) tells; the new version is served instead. */
static int early_recheck(strata_cache *c, strata_ticket **ticket, strata_value *out, int64_t seen_fresh_until)
{
    strata_ticket *t = *ticket;
    strata__key k = ticket_key(t);
    strata_value now = STRATA_VALUE_INIT;
    strata__bytes raw = {0, 0, 0};
    strata__envelope env;
    int rc = strata__read_backend(c, &k, strata__now_wall_ms(), t->epoch, &now, &raw, &env);
    strata__bytes_free(&raw);
    if (rc == STRATA_OK && env.fresh_until_ms != seen_fresh_until) {
        strata_abandon(t);
        *ticket = NULL;
        strata_value_dispose(out);
        *out = now;
        return STRATA_OK;
    }
    strata_value_dispose(&now);
    return STRATA_HIT_REFRESH; /* still the version we read (or unreadable now): ours to refresh */
}

/* timed: the read counts in the get histogram (when it goes past L1), as
 * for a host's own get_or_load; C's get_or_load times its whole call. */
static int lookup(strata_cache *c, strata__key *k, strata_value *out, strata_ticket **ticket, int timed)
{
    strata__bytes raw = {0, 0, 0};
    strata__envelope env;
    char fk[STRATA__KEYBUF];
    int rc;
    int64_t wait_ms = 0;

    rc = strata__read_ex(c, k, fk, out, &raw, &env, timed);
    if (rc == STRATA_OK && out->level == STRATA_LEVEL_BACKEND && c->cfg.opts.xfetch_beta > 0 &&
        strata__freshness(strata__now_wall_ms(), env.fresh_until_ms, env.stale_until_ms, env.cost_ms,
                          c->cfg.opts.xfetch_beta,
                          strata__xfetch_draw_hashed(strata__process_seed(), k->hash, env.fresh_until_ms)) ==
            STRATA__EARLY_REFRESH) {
        /* XFetch picked this caller; the lease keeps it to one refresher per key. */
        if (take_lease(c, k, ticket, &wait_ms) == 0) {
            rc = early_recheck(c, ticket, out, env.fresh_until_ms);
            if (rc == STRATA_HIT_REFRESH)
                STRATA__COUNT(c, early_refreshes);
        }
    } else if (rc == STRATA_HIT_STALE && raw.len > 0) { /* not stale-if-error from L1 */
        if (take_lease(c, k, ticket, &wait_ms) == 0)
            rc = STRATA_HIT_REFRESH;
    } else if (rc == STRATA_MISS) {
        rc = take_lease(c, k, ticket, &wait_ms);
        if (rc == 0) {
            rc = recheck(c, ticket, out, &raw, &env);
        } else if (rc == STRATA_MISS_WAIT) {
            out->wait_ms = wait_ms < 1 ? 1 : wait_ms;
            out->len = 0;
            out->level = STRATA_LEVEL_NONE;
        }
    }
    strata__bytes_free(&raw);
    if (k->full == fk) { /* built here: it does not outlive this frame */
        k->full = NULL;
        k->fulllen = 0;
    }
    return rc;
}

/* The entry points' checks: the out-pointers and the key, once per call. */
static int lookup_entry(strata_cache *c, const char *key, size_t keylen, strata_value *out,
                        strata_ticket **ticket, int timed)
{
    strata__key k;
    int rc;
    if (ticket == NULL || out == NULL)
        return strata__error(STRATA_EINVAL, "%s is NULL", ticket == NULL ? "ticket out-pointer" : "value out-pointer");
    *ticket = NULL;
    if ((rc = strata__key_init(c, &k, key, keylen)) < 0)
        return rc;
    return lookup(c, &k, out, ticket, timed);
}

int strata_lookup(strata_cache *c, const char *key, size_t keylen, strata_value *out,
                  strata_ticket **ticket)
{
    return lookup_entry(c, key, keylen, out, ticket, 1);
}

int strata__lookup(strata_cache *c, const char *key, size_t keylen, strata_value *out,
                   strata_ticket **ticket)
{
    return lookup_entry(c, key, keylen, out, ticket, 0);
}

int strata__lookup_key(strata_cache *c, strata__key *k, strata_value *out, strata_ticket **ticket)
{
    *ticket = NULL;
    return lookup(c, k, out, ticket, 0);
}

static void ticket_free(strata_ticket *t)
{
    strata__tagstamp_free(t->stamp);
    free(t);
}

static int fill(strata_ticket *t, const char *val, size_t vallen, int negative, int64_t ttl_ms)
{
    strata_cache *c;
    strata__bytes enc = {0, 0, 0};
    int64_t now, fresh_until, backend_ttl, cost_ms;
    int rc;
    if (t == NULL)
        return strata__error(STRATA_EINVAL, "ticket is NULL");
    c = t->cache;
    if (val == NULL && vallen > 0) {
        strata_abandon(t);
        return strata__error(STRATA_EINVAL, "value is NULL with length %zu", vallen);
    }
    if ((rc = strata__check_ttl(negative ? "neg_ttl_ms" : "ttl_ms", ttl_ms)) < 0) {
        strata_abandon(t);
        return rc;
    }
    now = strata__now_wall_ms();
    cost_ms = ((int64_t)strata__now_mono_ns() - t->started_ns) / 1000000;
    rc = strata__encode_value_tags(c, &enc, val ? val : "", vallen, negative, ttl_ms, -1, cost_ms,
                                   t->stamp ? t->stamp->tags : NULL, t->stamp ? t->stamp->n : 0, now,
                                   &fresh_until, &backend_ttl);
    if (rc < 0) {
        strata_abandon(t);
        return rc;
    }
    rc = strata__backend_result(c, c->backend->ops->lease_fill(c->backend, t->fk, t->fklen, t->token,
                                                               t->guard, enc.data, enc.len, backend_ttl));
    if (rc == 0) {
        strata__key k = ticket_key(t);
        STRATA__COUNT(c, sets);
        if (t->stamp)
            strata__l1_store(c, &k, enc.data, enc.len, negative, 1, now, fresh_until,
                             now + backend_ttl, t->epoch);
        else
            strata__l1_store(c, &k, val ? val : "", vallen, negative, 0, now, fresh_until,
                             now + backend_ttl, t->epoch);
    } else if (rc == STRATA_ELEASE) {
        STRATA__COUNT(c, leases_lost);
    }
    strata__bytes_free(&enc);
    ticket_free(t);
    return rc;
}

int strata_fill(strata_ticket *t, const char *val, size_t vallen, int64_t ttl_ms)
{
    return fill(t, val, vallen, 0, ttl_ms);
}

int strata_fill_negative(strata_ticket *t, int64_t neg_ttl_ms)
{
    return fill(t, NULL, 0, 1, neg_ttl_ms);
}

int strata_abandon(strata_ticket *t)
{
    int rc;
    if (t == NULL)
        return strata__error(STRATA_EINVAL, "ticket is NULL");
    rc = strata__backend_result(t->cache, t->cache->backend->ops->lease_release(t->cache->backend, t->fk,
                                                                               t->fklen, t->token));
    ticket_free(t);
    return rc < 0 ? rc : 0;
}
