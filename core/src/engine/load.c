/*
 * get_or_load: the push-style API, built on lookup/fill. In-process
 * singleflight collapses concurrent misses for one key to one caller (the
 * flight leader); across processes the lease does the same.
 */
#include "cache.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LOAD_NONE = 0, LOAD_VALUE, LOAD_NOT_FOUND, LOAD_ERROR };

struct strata_load {
    int kind;
    int64_t ttl_ms;
    strata__bytes value;
    char message[256];
    strata_cache *cache;
    strata__tagstamp *stamp;    /* strata_load_tags: handed to the ticket's fill */
};

strata__tagstamp **strata__load_stamp(strata_load *l) { return &l->stamp; }
strata_cache *strata__load_cache(strata_load *l) { return l->cache; }

static void load_dispose(strata_load *l)
{
    strata__bytes_free(&l->value);
    strata__tagstamp_free(l->stamp);
    l->stamp = NULL;
}

struct strata__flight {
    strata__flight *next;
    const char *key;            /* the leader's key, valid while the flight is listed */
    size_t keylen;
    int refs, done, rc;
    strata_value result;
    char message[512];
    strata__cond cond;
};

int strata_load_value(strata_load *l, const char *val, size_t vallen, int64_t ttl_ms)
{
    int rc;
    if (l == NULL)
        return strata__error(STRATA_EINVAL, "load is NULL");
    if (val == NULL && vallen > 0)
        return strata__error(STRATA_EINVAL, "value is NULL with length %zu", vallen);
    if ((rc = strata__check_ttl("ttl_ms", ttl_ms)) < 0)
        return rc;
    if ((rc = strata__bytes_set(&l->value, val ? val : "", vallen)) < 0)
        return rc;
    l->kind = LOAD_VALUE;
    l->ttl_ms = ttl_ms;
    return 0;
}

int strata_load_not_found(strata_load *l, int64_t neg_ttl_ms)
{
    if (l == NULL)
        return strata__error(STRATA_EINVAL, "load is NULL");
    int rc;
    if ((rc = strata__check_ms(STRATA_EINVAL, "neg_ttl_ms", neg_ttl_ms, 0)) < 0)
        return rc;
    l->kind = LOAD_NOT_FOUND;
    l->ttl_ms = neg_ttl_ms;
    return 0;
}

int strata_load_error(strata_load *l, const char *message)
{
    if (l == NULL)
        return strata__error(STRATA_EINVAL, "load is NULL");
    l->kind = LOAD_ERROR;
    snprintf(l->message, sizeof l->message, "%s", message ? message : "loader failed");
    return 0;
}

int strata_record_load(strata_cache *c, int failed, int64_t duration_ns)
{
    if (c == NULL)
        return strata__error(STRATA_EINVAL, "cache handle is NULL");
    if (duration_ns < 0)
        return strata__error(STRATA_EINVAL, "duration_ns must be >= 0, got %lld", (long long)duration_ns);
    STRATA__COUNT(c, loads);
    if (failed)
        STRATA__COUNT(c, load_errors);
    strata__hist_record(&c->metrics.load, (uint64_t)duration_ns);
    return 0;
}

/* Calls the loader; 0 with l->kind VALUE or NOT_FOUND, or STRATA_EUSER. */
static int call_loader(strata_cache *c, strata_loader_fn loader, void *ud, const char *key, size_t keylen,
                       strata_load *l)
{
    int rc;
    uint64_t t0 = strata__now_mono_ns();
    STRATA__COUNT(c, loads);
    l->cache = c;
    rc = loader(ud, key, keylen, l);
    strata__hist_record(&c->metrics.load, strata__now_mono_ns() - t0);
    if (rc != 0 || l->kind == LOAD_ERROR || l->kind == LOAD_NONE) {
        STRATA__COUNT(c, load_errors);
        if (l->kind == LOAD_ERROR)
            return strata__error(STRATA_EUSER, "loader failed: %s", l->message);
        if (rc != 0)
            return strata__error(STRATA_EUSER, "loader failed (returned %d)", rc);
        return strata__error(STRATA_EUSER, "loader returned without a value, not-found or error");
    }
    return 0;
}

/* Returns the loaded result to the caller: LOADED level, or NEGATIVE. */
static int deliver(strata_load *l, strata_value *out)
{
    int rc;
    if (l->kind == LOAD_NOT_FOUND) {
        out->len = 0;
        out->level = STRATA_LEVEL_LOADED;
        return STRATA_NEGATIVE;
    }
    if ((rc = strata__value_set(out, l->value.data ? l->value.data : "", l->value.len)) < 0)
        return rc;
    out->level = STRATA_LEVEL_LOADED;
    out->stale = 0;
    out->ttl_ms = 0;
    return STRATA_OK;
}

/* Fills the ticket from a load result (the ticket is consumed). A refused
 * fill still returns the loaded value: the caller asked for it and got it. */
static void fill_from(strata_ticket *t, strata_load *l)
{
    if (l->stamp) { /* the ticket takes the stamp over */
        strata__tagstamp **slot = strata__ticket_stamp(t);
        strata__tagstamp_free(*slot);
        *slot = l->stamp;
        l->stamp = NULL;
    }
    if (l->kind == LOAD_NOT_FOUND)
        strata_fill_negative(t, l->ttl_ms);
    else
        strata_fill(t, l->value.data ? l->value.data : "", l->value.len, l->ttl_ms);
}

/* The whole single-key algorithm, run by the flight leader. */
static int load_one(strata_cache *c, strata__key *k, strata_loader_fn loader, void *ud, strata_value *out)
{
    const char *key = k->ptr;
    size_t keylen = k->len;
    strata_load l;
    strata_ticket *t = NULL;
    int64_t deadline = strata__now_mono_ms() + c->cfg.opts.lock_wait_ms, backoff = 2;
    int rc;

    memset(&l, 0, sizeof l);
    for (;;) {
        rc = strata__lookup_key(c, k, out, &t);
        if (rc == STRATA_OK || rc == STRATA_NEGATIVE || rc == STRATA_HIT_STALE)
            break;
        if (rc == STRATA_HIT_REFRESH) {
            /* With refresher threads the caller returns what it has at once. */
            if (strata__refresh_async(c, t, key, keylen, loader, ud) == 0) {
                rc = out->stale ? STRATA_HIT_STALE : STRATA_OK;
                break;
            }
            /* Inline: this caller refreshes; on loader failure it keeps the
             * value it has (stale-if-error when it is stale). */
            if (call_loader(c, loader, ud, key, keylen, &l) == 0) {
                fill_from(t, &l);
                rc = deliver(&l, out);
            } else {
                strata_abandon(t);
                rc = out->stale ? STRATA_HIT_STALE : STRATA_OK;
            }
            break;
        }
        if (rc == STRATA_MISS_LEAD) {
            if ((rc = call_loader(c, loader, ud, key, keylen, &l)) == 0) {
                fill_from(t, &l);
                rc = deliver(&l, out);
            } else {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", strata_error_last());
                strata_abandon(t);
                strata__error(rc, "%s", msg);
            }
            break;
        }
        if (rc == STRATA_MISS_WAIT) {
            int64_t now = strata__now_mono_ms(), nap;
            if (now >= deadline) {
                if (c->cfg.opts.wait_policy == STRATA_WAIT_FAIL) {
                    rc = strata__error(STRATA_ETIMEOUT, "waited %lld ms for another loader of this key",
                                       (long long)c->cfg.opts.lock_wait_ms);
                    break;
                }
                /* Load without the lease and do not store: the lease holder's
                 * fill (or a later write) stays authoritative. */
                if ((rc = call_loader(c, loader, ud, key, keylen, &l)) == 0)
                    rc = deliver(&l, out);
                break;
            }
            nap = backoff < out->wait_ms ? backoff : out->wait_ms;
            if (nap > deadline - now)
                nap = deadline - now;
            strata__sleep_ms(nap < 1 ? 1 : nap);
            backoff = backoff * 2 > 50 ? 50 : backoff * 2;
            continue;
        }
        if (strata__is_outage(rc)) {
            /* Fail open: the source of truth still answers. */
            STRATA__COUNT(c, fail_open);
            if ((rc = call_loader(c, loader, ud, key, keylen, &l)) == 0)
                rc = deliver(&l, out);
        }
        break;
    }
    load_dispose(&l);
    return rc;
}

void strata__refresh_now(strata_cache *c, strata_ticket *t, const char *key, size_t keylen,
                         strata_loader_fn loader, void *ud)
{
    strata_load l;
    memset(&l, 0, sizeof l);
    if (call_loader(c, loader, ud, key, keylen, &l) == 0)
        fill_from(t, &l);
    else
        strata_abandon(t);
    load_dispose(&l);
}

/* Joins the flight for key, or starts one (returns NULL: caller leads). */
static strata__flight *join_or_lead(strata_cache *c, const char *key, size_t keylen, strata__flight *mine)
{
    strata__flight *f;
    strata__mutex_lock(&c->flights_lock);
    for (f = c->flights; f; f = f->next) {
        if (f->keylen == keylen && memcmp(f->key, key, keylen) == 0) {
            f->refs++;
            strata__mutex_unlock(&c->flights_lock);
            return f;
        }
    }
    mine->key = key;
    mine->keylen = keylen;
    mine->refs = 1;
    mine->next = c->flights;
    c->flights = mine;
    strata__mutex_unlock(&c->flights_lock);
    return NULL;
}

static void flight_release(strata_cache *c, strata__flight *f)
{
    /* called with flights_lock held */
    if (--f->refs == 0) {
        strata_value_dispose(&f->result);
        strata__cond_destroy(&f->cond);
        free(f);
    }
    (void)c;
}

static int fly(strata_cache *c, strata__key *k, strata_loader_fn loader, void *ud, strata_value *out);

int strata_get_or_load(strata_cache *c, const char *key, size_t keylen, strata_loader_fn loader,
                       void *ud, strata_value *out)
{
    uint64_t t0;
    strata__key k;
    int rc;

    if (out == NULL)
        return strata__error(STRATA_EINVAL, "value out-pointer is NULL");
    if (loader == NULL)
        return strata__error(STRATA_EINVAL, "loader is NULL");
    if ((rc = strata__key_init(c, &k, key, keylen)) < 0)
        return rc;
    /* The fast path: a fresh L1 hit needs no flight. */
    if (c->l1 && (rc = strata__l1_hit(c, &k, out)) != STRATA_MISS)
        return rc; /* a miss is counted and noted by the lookup below */
    /* Timed past L1 only: two clock reads would double an L1 hit's cost. */
    t0 = strata__now_mono_ns();
    rc = fly(c, &k, loader, ud, out);
    strata__hist_record(&c->metrics.get, strata__now_mono_ns() - t0);
    return rc;
}

/* Past L1: singleflight in-process, then load_one as the flight leader. */
static int fly(strata_cache *c, strata__key *k, strata_loader_fn loader, void *ud, strata_value *out)
{
    strata__flight *f, *mine, **pp;
    int rc;

    mine = calloc(1, sizeof *mine);
    if (mine == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory");
    strata__cond_init(&mine->cond);
    f = join_or_lead(c, k->ptr, k->len, mine);
    if (f != NULL) {
        strata__cond_destroy(&mine->cond);
        free(mine);
        STRATA__COUNT(c, singleflight_shared);
        strata__mutex_lock(&c->flights_lock);
        while (!f->done)
            strata__cond_wait(&f->cond, &c->flights_lock);
        rc = f->rc;
        if (rc >= 0 && f->result.data) {
            int r = strata__value_set(out, f->result.data, f->result.len);
            out->level = f->result.level;
            out->stale = f->result.stale;
            out->ttl_ms = f->result.ttl_ms;
            if (r < 0)
                rc = r;
        } else if (rc < 0) {
            strata__error(rc, "%s", f->message);
        } else {
            out->len = 0;
        }
        flight_release(c, f);
        strata__mutex_unlock(&c->flights_lock);
        return rc;
    }

    rc = load_one(c, k, loader, ud, out);

    strata__mutex_lock(&c->flights_lock);
    for (pp = &c->flights; *pp && *pp != mine; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = mine->next;
    mine->rc = rc;
    if (rc < 0) {
        snprintf(mine->message, sizeof mine->message, "%s", strata_error_last());
    } else if (mine->refs > 1 && strata__value_set(&mine->result, out->data ? out->data : "", out->len) == 0) {
        mine->result.level = out->level;
        mine->result.stale = out->stale;
        mine->result.ttl_ms = out->ttl_ms;
    }
    mine->done = 1;
    strata__cond_broadcast(&mine->cond);
    flight_release(c, mine);
    strata__mutex_unlock(&c->flights_lock);
    return rc;
}

/* Batch: one backend round trip for the present keys, one loader call for
 * the missing ones (each stored under its own lease when we win it). */
int strata_get_many_or_load(strata_cache *c, size_t n, const char *const *keys, const size_t *keylens,
                            strata_many_loader_fn loader, void *ud, strata_value *outs, int *results)
{
    size_t i, nm = 0;
    int rc;
    const char **mkeys = NULL;
    size_t *mlens = NULL, *midx = NULL;
    strata_load *loads = NULL, **lptrs = NULL;
    strata_ticket **tickets = NULL;
    int backend_down = 0;

    if (loader == NULL)
        return strata__error(STRATA_EINVAL, "loader is NULL");
    if ((rc = strata_get_many(c, n, keys, keylens, outs, results)) < 0) {
        if (!strata__is_outage(rc))
            return rc;
        backend_down = 1; /* no per-key lease attempts: each would fail too */
        STRATA__COUNT(c, fail_open);
        /* strata_get_many served stale from L1 what it could; load the rest. */
        for (i = 0; i < n; i++)
            if (strata__is_outage(results[i]))
                results[i] = STRATA_MISS;
    }
    for (i = 0; i < n; i++)
        if (results[i] == STRATA_MISS)
            nm++;
    if (nm == 0)
        return 0;
    mkeys = calloc(nm, sizeof *mkeys);
    mlens = calloc(nm, sizeof *mlens);
    midx = calloc(nm, sizeof *midx);
    loads = calloc(nm, sizeof *loads);
    lptrs = calloc(nm, sizeof *lptrs);
    tickets = calloc(nm, sizeof *tickets);
    if (!mkeys || !mlens || !midx || !loads || !lptrs || !tickets) {
        rc = strata__error(STRATA_ENOMEM, "out of memory");
        goto done;
    }
    for (i = 0, nm = 0; i < n; i++) {
        strata_value scratch = STRATA_VALUE_INIT;
        int r = STRATA_MISS;
        if (results[i] != STRATA_MISS)
            continue;
        /* Take the lease where we can; without it we still load but do not store. */
        if (!backend_down)
            r = strata__lookup(c, keys[i], keylens[i], &scratch, &tickets[nm]);
        if (r == STRATA_OK || r == STRATA_NEGATIVE || r == STRATA_HIT_STALE || r == STRATA_HIT_REFRESH) {
            /* filled by someone meanwhile */
            strata__value_set(&outs[i], scratch.data ? scratch.data : "", scratch.len);
            outs[i].level = scratch.level;
            outs[i].stale = scratch.stale;
            results[i] = r == STRATA_HIT_REFRESH ? (scratch.stale ? STRATA_HIT_STALE : STRATA_OK) : r;
            if (tickets[nm])
                strata_abandon(tickets[nm]);
            tickets[nm] = NULL;
            strata_value_dispose(&scratch);
            continue;
        }
        strata_value_dispose(&scratch);
        mkeys[nm] = keys[i];
        mlens[nm] = keylens[i];
        midx[nm] = i;
        lptrs[nm] = &loads[nm];
        nm++;
    }
    if (nm == 0)
        goto done;
    STRATA__COUNT(c, loads);
    for (i = 0; i < nm; i++)
        loads[i].cache = c;
    {
        uint64_t t0 = strata__now_mono_ns();
        rc = loader(ud, nm, mkeys, mlens, lptrs);
        strata__hist_record(&c->metrics.load, strata__now_mono_ns() - t0);
    }
    for (i = 0; i < nm; i++) {
        size_t k = midx[i];
        strata_load *l = &loads[i];
        if (rc != 0 || l->kind == LOAD_ERROR || l->kind == LOAD_NONE) {
            if (tickets[i])
                strata_abandon(tickets[i]);
            tickets[i] = NULL;
            continue;
        }
        if (tickets[i])
            fill_from(tickets[i], l);
        tickets[i] = NULL;
        results[k] = deliver(l, &outs[k]);
    }
    if (rc != 0) {
        STRATA__COUNT(c, load_errors);
        rc = strata__error(STRATA_EUSER, "loader failed (returned %d)", rc);
        goto done;
    }
    for (i = 0; i < nm; i++) {
        if (loads[i].kind == LOAD_ERROR || loads[i].kind == LOAD_NONE) {
            STRATA__COUNT(c, load_errors);
            rc = strata__error(STRATA_EUSER, "loader failed for key %zu: %s", midx[i],
                               loads[i].kind == LOAD_ERROR ? loads[i].message : "no result reported");
            goto done;
        }
    }
    rc = 0;
done:
    for (i = 0; loads && i < nm; i++)
        load_dispose(&loads[i]);
    free(mkeys);
    free(mlens);
    free(midx);
    free(loads);
    free(lptrs);
    free(tickets);
    return rc;
}
