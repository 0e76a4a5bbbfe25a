/* Cache-aside operations: get, set, delete, touch, and their batch forms. */
#include "cache.h"
#include "error.h"
#include "engine/coherence.h"
#include "engine/events.h"

#include <stdlib.h>
#include <string.h>

static int check_out(strata_value *out)
{
    return out ? 0 : strata__error(STRATA_EINVAL, "value out-pointer is NULL");
}

int strata__read_backend(strata_cache *c, const strata__key *k, int64_t now, uint64_t epoch,
                         strata_value *out, strata__bytes *raw, strata__envelope *env)
{
    int rc;
    if ((rc = strata__breaker_allow(c)) == 0)
        rc = strata__backend_result(c, c->backend->ops->get(c->backend, k->full, k->fulllen, raw));
    if (rc == 0 && strata__decode_stored(c, raw->data, raw->len, env) == 0) {
        rc = strata__tags_verify(c, 1, &env, now); /* a tag bump expires the entry */
        if (rc >= 0)
            rc = strata__serve_envelope(c, k, env, now, epoch, out);
    } else if (rc == 0) {
        rc = STRATA_MISS; /* foreign or corrupt bytes: not ours, a miss */
    }
    return rc;
}

/* Reads one key through L1 and the backend. Does not load. */
int strata__read(strata_cache *c, strata__key *k, char *fkbuf, strata_value *out,
                 strata__bytes *raw, strata__envelope *env)
{
    return strata__read_ex(c, k, fkbuf, out, raw, env, 0);
}

/* A read past L1 (a miss there, or L1 off). */
static int read_past_l1(strata_cache *c, strata__key *k, char *fkbuf, strata_value *out, strata__bytes *raw,
                        strata__envelope *env, int timed)
{
    int rc;
    int64_t now;
    uint64_t epoch = c->l1 ? strata__l1_epoch(c->l1, k) : 0, t0;
    strata__note_read(c, k);
    strata__key_full(c, k, fkbuf);
    now = strata__now_wall_ms();
    /* Timed past L1 only: two clock reads would double an L1 hit's cost. */
    t0 = timed ? strata__now_mono_ns() : 0;
    rc = strata__read_backend(c, k, now, epoch, out, raw, env);
    if (strata__is_outage(rc) && c->l1 && strata__l1_get_stale(c->l1, k, now, out) == 0) {
        /* Stale-if-error: the last value this process saw, within its stale window. */
        STRATA__COUNT(c, stale_hits);
        raw->len = 0; /* tells lookup there is no backend to take a lease from */
        rc = STRATA_HIT_STALE;
    } else if (rc == STRATA_MISS) {
        STRATA__COUNT(c, misses);
    }
    if (timed)
        strata__hist_record(&c->metrics.get, strata__now_mono_ns() - t0);
    return rc;
}

int strata__read_ex(strata_cache *c, strata__key *k, char *fkbuf, strata_value *out,
                    strata__bytes *raw, strata__envelope *env, int timed)
{
    int rc;
    out->wait_ms = 0;
    if (c->l1) {
        if ((rc = strata__l1_hit(c, k, out)) != STRATA_MISS)
            return rc;
        STRATA__COUNT(c, l1_misses);
    }
    return read_past_l1(c, k, fkbuf, out, raw, env, timed);
}


/* strata_get past an L1 hit, with the big buffers a backend read needs
 * (kept out of the hit path's stack frame). */
static __attribute__((noinline)) int get_past_l1(strata_cache *c, strata__key *k, strata_value *out)
{
    strata__bytes raw = {0, 0, 0};
    strata__envelope env;
    char fk[STRATA__KEYBUF];
    int rc = read_past_l1(c, k, fk, out, &raw, &env, 1);
    strata__bytes_free(&raw);
    return rc;
}

int strata_get(strata_cache *c, const char *key, size_t keylen, strata_value *out)
{
    strata__key k;
    int rc;
    if ((rc = check_out(out)) < 0)
        return rc;
    if (c && c->cfg.opts.loader) /* read-through (which checks the key) */
        return strata_get_or_load(c, key, keylen, c->cfg.opts.loader, c->cfg.opts.loader_data, out);
    if ((rc = strata__key_init(c, &k, key, keylen)) < 0)
        return rc;
    out->wait_ms = 0;
    if (c->l1) {
        if ((rc = strata__l1_hit(c, &k, out)) != STRATA_MISS)
            return rc;
        STRATA__COUNT(c, l1_misses);
    }
    return get_past_l1(c, &k, out);
}

/* ---- for bindings' object tiers (stratacache.h) ---- */

int strata_l1_get(strata_cache *c, const char *key, size_t keylen, strata_value *out, uint64_t *version)
{
    strata__key k;
    uint64_t hit_seq;
    int rc;
    if (version == NULL)
        return strata__error(STRATA_EINVAL, "version out-pointer is NULL");
    *version = 0;
    if ((rc = check_out(out)) < 0 || (rc = strata__key_init(c, &k, key, keylen)) < 0)
        return rc;
    if (c->l1 == NULL)
        return STRATA_MISS;
    out->wait_ms = 0;
    rc = strata__l1_read_versioned(c->l1, &k, strata__now_wall_coarse_ms(), out, &hit_seq, version);
    if (rc != STRATA_MISS)
        strata__note_hit(c, &k, hit_seq);
    return rc;
}

int strata_l1_check(strata_cache *c, const char *key, size_t keylen, uint64_t version)
{
    strata__key k;
    uint64_t hit_seq;
    int rc;
    if ((rc = strata__key_init(c, &k, key, keylen)) < 0)
        return rc;
    if (c->l1 == NULL || version == 0)
        return STRATA_MISS;
    rc = strata__l1_check(c->l1, &k, strata__now_wall_coarse_ms(), version, &hit_seq);
    if (rc != STRATA_MISS)
        strata__note_hit(c, &k, hit_seq);
    return rc;
}

static int check_value(const char *val, size_t vallen)
{
    if (val == NULL && vallen > 0)
        return strata__error(STRATA_EINVAL, "value is NULL with length %zu", vallen);
    return 0;
}

/* 0 = the cache's default */
static int check_ttl(int64_t ttl_ms)
{
    return strata__check_ttl("ttl_ms", ttl_ms);
}

static int write_value(strata_cache *c, const char *key, size_t keylen, const char *val, size_t vallen,
                       int64_t ttl_ms, int64_t stale_ms, int64_t cost_ms, const strata__env_tag *tags,
                       size_t ntags)
{
    char fk[STRATA__KEYBUF];
    strata__bytes enc = {0, 0, 0};
    int64_t now = strata__now_wall_ms(), fresh_until, backend_ttl;
    uint64_t epoch = 0;
    strata__key k;
    int rc;
    if ((rc = strata__key_init(c, &k, key, keylen)) < 0)
        return rc;
    strata__key_full(c, &k, fk);
    if ((rc = check_value(val, vallen)) < 0 || (rc = check_ttl(ttl_ms)) < 0)
        return rc;
    rc = strata__encode_value_tags(c, &enc, val ? val : "", vallen, 0, ttl_ms, stale_ms, cost_ms, tags, ntags,
                                   now, &fresh_until, &backend_ttl);
    if (rc == 0 && (rc = strata__breaker_allow(c)) == 0) {
        epoch = strata__l1_writing(c, &k); /* the old value serves while the write is in flight */
        rc = strata__backend_result(c, c->backend->ops->set(c->backend, k.full, k.fulllen, enc.data,
                                                            enc.len, backend_ttl));
        if (ntags)
            strata__l1_wrote(c, &k, epoch, rc == 0, enc.data, enc.len, 1, now, fresh_until, now + backend_ttl);
        else
            strata__l1_wrote(c, &k, epoch, rc == 0, val ? val : "", vallen, 0, now, fresh_until,
                             now + backend_ttl);
        strata__coherence_wrote(c, key, keylen); /* even after a timeout: it may have landed */
        strata__events_push(c, STRATA_EVENT_EVICT, key, keylen, 1);
        if (rc == 0)
            STRATA__COUNT(c, sets);
    }
    strata__bytes_free(&enc);
    return rc;
}

int strata_set(strata_cache *c, const char *key, size_t keylen, const char *val, size_t vallen,
               int64_t ttl_ms)
{
    return write_value(c, key, keylen, val, vallen, ttl_ms, -1, 0, NULL, 0);
}

int strata_set_ex(strata_cache *c, const char *key, size_t keylen, const char *val, size_t vallen,
                  const strata_set_options *o)
{
    if (o == NULL)
        return strata_set(c, key, keylen, val, vallen, 0);
    if (o->version != STRATA_SET_OPTIONS_VERSION)
        return strata__error(STRATA_EVERSION, "unknown strata_set_options version %u (this library knows %d)",
                             o->version, STRATA_SET_OPTIONS_VERSION);
    {
        int rc;
        if ((rc = strata__check_ms(STRATA_EINVAL, "set options: stale_ms", o->stale_ms, -1)) < 0 ||
            (rc = strata__check_ms(STRATA_EINVAL, "set options: cost_ms", o->cost_ms, 0)) < 0)
            return rc;
    }
    if (o->ntags > 0) {
        strata__env_tag stamps[STRATA__ENV_MAX_TAGS];
        int rc = strata__check_key(c, key, keylen);
        /* Bad input is refused before the versions are read (which may create counters). */
        if (rc < 0 || (rc = check_value(val, vallen)) < 0 || (rc = check_ttl(o->ttl_ms)) < 0 ||
            (rc = strata__tags_check(o->tags, o->taglens, o->ntags)) < 0 ||
            (rc = strata__tags_stamp(c, o->tags, o->taglens, o->ntags, stamps)) < 0)
            return rc;
        return write_value(c, key, keylen, val, vallen, o->ttl_ms, o->stale_ms, o->cost_ms, stamps, o->ntags);
    }
    return write_value(c, key, keylen, val, vallen, o->ttl_ms, o->stale_ms, o->cost_ms, NULL, 0);
}

int strata_delete(strata_cache *c, const char *key, size_t keylen)
{
    char fk[STRATA__KEYBUF];
    strata__key k;
    int rc;
    if ((rc = strata__key_init(c, &k, key, keylen)) < 0)
        return rc;
    strata__key_full(c, &k, fk);
    if ((rc = strata__breaker_allow(c)) < 0) {
        strata__l1_written(c, &k); /* not sent, but this process forgets the key */
        return rc;
    }
    /* L1 serves the old value while the delete is in flight, and drops it after */
    rc = strata__backend_result(c, c->backend->ops->del(c->backend, k.full, k.fulllen));
    strata__l1_written(c, &k);
    strata__coherence_wrote(c, key, keylen); /* also when absent or timed out: other L1s may hold it */
    strata__events_push(c, STRATA_EVENT_EVICT, key, keylen, 1);
    if (rc >= 0)
        STRATA__COUNT(c, deletes);
    return rc;
}

int strata_invalidate(strata_cache *c, const char *key, size_t keylen)
{
    int rc = strata_delete(c, key, keylen);
    return rc == STRATA_MISS ? 0 : rc;
}

int strata_touch(strata_cache *c, const char *key, size_t keylen, int64_t ttl_ms)
{
    char fk[STRATA__KEYBUF];
    strata__bytes raw = {0, 0, 0}, enc = {0, 0, 0};
    strata__envelope env;
    int fklen = strata__full_key(c, key, keylen, fk), rc;
    int64_t now = strata__now_wall_ms(), fresh_until, backend_ttl;
    if (fklen < 0)
        return fklen;
    if ((rc = check_ttl(ttl_ms)) < 0 || (rc = strata__breaker_allow(c)) < 0)
        return rc;
    /* The freshness lives in the envelope, so touch rewrites it with new times. */
    rc = strata__backend_result(c, c->backend->ops->get(c->backend, fk, (size_t)fklen, &raw));
    if (rc == 0 && (strata__decode_stored(c, raw.data, raw.len, &env) != 0 || now >= env.stale_until_ms))
        rc = STRATA_MISS;
    if (rc == 0) { /* a tag-outdated entry is not revived; the stamps are kept */
        strata__envelope *pe = &env;
        rc = strata__tags_verify(c, 1, &pe, now);
        rc = rc > 0 ? STRATA_MISS : rc;
    }
    if (rc == 0)
        rc = strata__encode_value_tags(c, &enc, env.payload, env.payload_len,
                                       (env.flags & STRATA__ENV_FLAG_NEGATIVE) != 0, ttl_ms, -1,
                                       env.cost_ms, env.tags, env.ntags, now, &fresh_until, &backend_ttl);
    if (rc == 0)
        rc = strata__backend_result(c, c->backend->ops->set(c->backend, fk, (size_t)fklen, enc.data,
                                                            enc.len, backend_ttl));
    if (rc == 0 && c->l1) {
        strata__key k = strata__key_of(key, keylen);
        strata__l1_del(c->l1, &k);
    }
    strata__bytes_free(&raw);
    strata__bytes_free(&enc);
    return rc;
}

/* The batch read failed with an outage: as strata_get does, each key this
 * process saw is served stale from L1 within its stale window; the others
 * get the outage code. 0 when every key was served, else the outage. */
int strata__get_many_stale(strata_cache *c, size_t nb, const size_t *idx, const char *const *keys,
                          const size_t *keylens, int64_t now, strata_value *outs, int *results, int outage)
{
    size_t i, unserved = 0;
    for (i = 0; i < nb; i++) {
        size_t k = idx[i];
        strata__key kd = strata__key_of(keys[k], keylens[k]);
        if (c->l1 && strata__l1_get_stale(c->l1, &kd, now, &outs[k]) == 0) {
            STRATA__COUNT(c, stale_hits);
            results[k] = STRATA_HIT_STALE;
        } else {
            results[k] = outage;
            unserved++;
        }
    }
    return unserved ? outage : 0;
}

/*
 * get_many's values take one copy: the backend's, from its reply into the
 * buffer of the caller's value, lent to the batch item's raw bytes
 * (many_lend); the item is then served by reference into its envelope
 * (whose payload ends it) and the value takes its buffer back. Each buffer
 * has one owner at any time, out or raw, so every path frees it once.
 */
static void many_lend(strata_value *out, strata__bytes *raw)
{
    raw->data = out->priv_;
    raw->cap = out->priv_ ? out->cap_ : 0;
    raw->len = 0;
    out->priv_ = NULL;
    out->cap_ = 0;
    out->data = NULL;
    out->len = 0;
}

/* Gives raw's buffer to out (served from it, or emptied). */
static void many_return(strata_value *out, strata__bytes *raw)
{
    out->priv_ = raw->data;
    out->cap_ = raw->cap;
    raw->data = NULL;
    raw->cap = raw->len = 0;
}

static int many_serve(strata_cache *c, const strata__key *k, const strata__envelope *e, int64_t now,
                      uint64_t epoch, strata_value *out, strata__bytes *raw)
{
    size_t end = raw->len;
    int rc;
    if (raw->cap <= end || e->payload + e->payload_len != raw->data + end) /* no byte for the NUL: copy */
        return strata__serve_envelope(c, k, e, now, epoch, out);
    rc = strata__serve_envelope_ref(c, k, e, now, epoch, out);
    if (out->data == e->payload) { /* served: else (expired) nothing was */
        raw->data[end] = '\0';
        many_return(out, raw);
    }
    return rc;
}

int strata_get_many(strata_cache *c, size_t n, const char *const *keys, const size_t *keylens,
                    strata_value *outs, int *results)
{
    char **fks = NULL;
    size_t *fklens = NULL, *idx = NULL, i, nb = 0;
    strata__bytes *raws = NULL;
    int *rcs = NULL, rc = 0;
    int64_t now = strata__now_wall_ms();
    uint64_t *epochs = NULL;
    strata__envelope *envs = NULL, **decoded = NULL;
    strata__key *ks = NULL;

    if (c == NULL || (n > 0 && (keys == NULL || keylens == NULL || outs == NULL || results == NULL)))
        return strata__error(STRATA_EINVAL, "%s is NULL", c == NULL ? "cache handle" : "an array argument");
    for (i = 0; i < n; i++)
        if ((rc = strata__check_key(c, keys[i], keylens[i])) < 0)
            return strata__error(rc, "key %zu: %s", i, strata_error_last());
    if (n == 0)
        return 0;
    fks = calloc(n, sizeof *fks);
    fklens = calloc(n, sizeof *fklens);
    idx = calloc(n, sizeof *idx);
    raws = calloc(n, sizeof *raws);
    rcs = calloc(n, sizeof *rcs);
    epochs = calloc(n, sizeof *epochs);
    envs = malloc(n * sizeof *envs);
    decoded = calloc(n, sizeof *decoded);
    ks = malloc(n * sizeof *ks);
    if (!fks || !fklens || !idx || !raws || !rcs || !epochs || !envs || !decoded || !ks) {
        rc = strata__error(STRATA_ENOMEM, "out of memory");
        goto done;
    }
    /* L1 first; the rest go to the backend in one batch. */
    for (i = 0; i < n; i++) {
        outs[i].wait_ms = 0;
        results[i] = STRATA_MISS; /* also what a failed batch leaves for non-L1 keys */
        ks[i] = strata__key_of(keys[i], keylens[i]);
        if (c->l1) {
            uint64_t hit_seq;
            int r = strata__l1_read(c->l1, &ks[i], now, &outs[i], &hit_seq);
            if (r != STRATA_MISS) {
                strata__note_hit(c, &ks[i], hit_seq);
                results[i] = r;
                continue;
            }
            STRATA__COUNT(c, l1_misses);
            epochs[nb] = strata__l1_epoch(c->l1, &ks[i]);
        }
        strata__note_read(c, &ks[i]);
        many_lend(&outs[i], &raws[nb]);
        fks[nb] = malloc(c->cfg.nslen + 1 + keylens[i]);
        if (fks[nb] == NULL) {
            rc = strata__error(STRATA_ENOMEM, "out of memory");
            goto done;
        }
        fklens[nb] = (size_t)strata__full_key(c, keys[i], keylens[i], fks[nb]);
        idx[nb++] = i;
    }
    if (nb > 0) {
        if ((rc = strata__breaker_allow(c)) == 0)
            rc = strata__backend_result(c, c->backend->ops->get_many(c->backend, nb, (const char *const *)fks,
                                                                     fklens, raws, rcs));
        if (rc < 0) {
            if (strata__is_outage(rc))
                rc = strata__get_many_stale(c, nb, idx, keys, keylens, now, outs, results, rc);
            goto done;
        }
        for (i = 0; i < nb; i++)
            if (rcs[i] == 0 && strata__decode_stored(c, raws[i].data, raws[i].len, &envs[i]) == 0)
                decoded[i] = &envs[i];
        /* All the tag stamps in one round trip at most. */
        if ((rc = strata__tags_verify(c, nb, decoded, now)) < 0) {
            if (strata__is_outage(rc))
                rc = strata__get_many_stale(c, nb, idx, keys, keylens, now, outs, results, rc);
            goto done;
        }
        for (i = 0; i < nb; i++) {
            size_t k = idx[i];
            int r = rcs[i];
            if (decoded[i])
                r = many_serve(c, &ks[k], decoded[i], now, epochs[i], &outs[k], &raws[i]);
            else if (r == 0)
                r = STRATA_MISS;
            if (outs[k].priv_ == NULL && raws[i].data != NULL) { /* not served from its buffer: lent back */
                raws[i].data[0] = '\0';
                outs[k].data = raws[i].data;
                many_return(&outs[k], &raws[i]);
            }
            if (r == STRATA_MISS)
                STRATA__COUNT(c, misses);
            results[k] = r;
        }
    }
done:
    for (i = 0; fks && i < n; i++)
        free(fks[i]);
    for (i = 0; raws && i < n; i++)
        strata__bytes_free(&raws[i]);
    free(fks);
    free(fklens);
    free(idx);
    free(raws);
    free(rcs);
    free(epochs);
    free(envs);
    free(decoded);
    free(ks);
    return rc < 0 ? rc : 0;
}

static int set_many(strata_cache *c, size_t n, const char *const *keys, const size_t *keylens,
                    const char *const *vals, const size_t *vallens, int64_t ttl_ms, int64_t stale_ms,
                    int64_t cost_ms, const strata__env_tag *tags, size_t ntags)
{
    char **fks = NULL;
    size_t *fklens = NULL, i;
    strata__bytes *encs = NULL;
    int64_t *ttls = NULL, now = strata__now_wall_ms(), fresh_until;
    int rc = 0;

    if (c == NULL || (n > 0 && (keys == NULL || keylens == NULL || vals == NULL || vallens == NULL)))
        return strata__error(STRATA_EINVAL, "%s is NULL", c == NULL ? "cache handle" : "an array argument");
    if ((rc = check_ttl(ttl_ms)) < 0)
        return rc;
    for (i = 0; i < n; i++) {
        if ((rc = strata__check_key(c, keys[i], keylens[i])) < 0 || (rc = check_value(vals[i], vallens[i])) < 0)
            return strata__error(rc, "item %zu: %s", i, strata_error_last());
    }
    if (n == 0)
        return 0;
    fks = calloc(n, sizeof *fks);
    fklens = calloc(n, sizeof *fklens);
    encs = calloc(n, sizeof *encs);
    ttls = calloc(n, sizeof *ttls);
    if (!fks || !fklens || !encs || !ttls) {
        rc = strata__error(STRATA_ENOMEM, "out of memory");
        goto done;
    }
    /* Validate and encode everything before the first write: all or nothing
     * on bad input. */
    for (i = 0; i < n; i++) {
        fks[i] = malloc(c->cfg.nslen + 1 + keylens[i]);
        if (fks[i] == NULL) {
            rc = strata__error(STRATA_ENOMEM, "out of memory");
            goto done;
        }
        fklens[i] = (size_t)strata__full_key(c, keys[i], keylens[i], fks[i]);
        rc = strata__encode_value_tags(c, &encs[i], vals[i] ? vals[i] : "", vallens[i], 0, ttl_ms, stale_ms,
                                       cost_ms, tags, ntags, now, &fresh_until, &ttls[i]);
        if (rc < 0) {
            rc = strata__error(rc, "item %zu: %s", i, strata_error_last());
            goto done;
        }
    }
    if ((rc = strata__breaker_allow(c)) < 0)
        goto done;
    {
        const char **vp = (const char **)calloc(n, sizeof *vp);
        size_t *vl = calloc(n, sizeof *vl);
        if (vp == NULL || vl == NULL) {
            free(vp);
            free(vl);
            rc = strata__error(STRATA_ENOMEM, "out of memory");
            goto done;
        }
        for (i = 0; i < n; i++) {
            vp[i] = encs[i].data;
            vl[i] = encs[i].len;
        }
        rc = strata__backend_result(c, c->backend->ops->set_many(c->backend, n, (const char *const *)fks,
                                                                 fklens, vp, vl, ttls));
        free(vp);
        free(vl);
    }
    for (i = 0; i < n; i++) { /* even after a failure: some may have landed */
        strata__key k = strata__key_of(keys[i], keylens[i]);
        strata__l1_written(c, &k);
        strata__coherence_wrote(c, keys[i], keylens[i]);
        strata__events_push(c, STRATA_EVENT_EVICT, keys[i], keylens[i], 1);
    }
    if (rc == 0)
        strata__atomic_add(&c->stats.sets, n);
done:
    for (i = 0; fks && i < n; i++)
        free(fks[i]);
    for (i = 0; encs && i < n; i++)
        strata__bytes_free(&encs[i]);
    free(fks);
    free(fklens);
    free(encs);
    free(ttls);
    return rc;
}

int strata_set_many(strata_cache *c, size_t n, const char *const *keys, const size_t *keylens,
                    const char *const *vals, const size_t *vallens, int64_t ttl_ms)
{
    return set_many(c, n, keys, keylens, vals, vallens, ttl_ms, -1, 0, NULL, 0);
}

/* ---- framework primitives: batch forms (docs/FRAMEWORKS.md) ---- */

int strata_set_many_ex(strata_cache *c, size_t n, const char *const *keys, const size_t *keylens,
                       const char *const *vals, const size_t *vallens, const strata_set_options *o)
{
    strata__env_tag stamps[STRATA__ENV_MAX_TAGS];
    int rc;
    if (o == NULL)
        return strata_set_many(c, n, keys, keylens, vals, vallens, 0);
    if (o->version != STRATA_SET_OPTIONS_VERSION)
        return strata__error(STRATA_EVERSION, "unknown strata_set_options version %u (this library knows %d)",
                             o->version, STRATA_SET_OPTIONS_VERSION);
    if (o->stale_ms < -1 || o->cost_ms < 0)
        return strata__error(STRATA_EINVAL, "set options: stale_ms must be >= -1 and cost_ms >= 0");
    if (c == NULL)
        return strata__error(STRATA_EINVAL, "cache handle is NULL");
    /* Bad input is refused before the versions are read (which may create counters). */
    if ((rc = check_ttl(o->ttl_ms)) < 0 || (rc = strata__tags_check(o->tags, o->taglens, o->ntags)) < 0)
        return rc;
    if (o->ntags > 0 && n > 0 && (rc = strata__tags_stamp(c, o->tags, o->taglens, o->ntags, stamps)) < 0)
        return rc;
    return set_many(c, n, keys, keylens, vals, vallens, o->ttl_ms, o->stale_ms, o->cost_ms, stamps, o->ntags);
}

int strata_delete_many(strata_cache *c, size_t n, const char *const *keys, const size_t *keylens, size_t *deleted)
{
    char **fks = NULL;
    size_t *fklens = NULL, i, count = 0;
    int *gone = NULL, rc = 0;
    if (deleted)
        *deleted = 0;
    if (c == NULL || (n > 0 && (keys == NULL || keylens == NULL)))
        return strata__error(STRATA_EINVAL, "%s is NULL", c == NULL ? "cache handle" : "an array argument");
    for (i = 0; i < n; i++)
        if ((rc = strata__check_key(c, keys[i], keylens[i])) < 0)
            return strata__error(rc, "key %zu: %s", i, strata_error_last());
    if (n == 0)
        return 0;
    fks = calloc(n, sizeof *fks);
    fklens = calloc(n, sizeof *fklens);
    gone = calloc(n, sizeof *gone);
    if (!fks || !fklens || !gone) {
        rc = strata__error(STRATA_ENOMEM, "out of memory");
        goto done;
    }
    for (i = 0; i < n; i++) {
        if ((fks[i] = malloc(c->cfg.nslen + 1 + keylens[i])) == NULL) {
            rc = strata__error(STRATA_ENOMEM, "out of memory");
            goto done;
        }
        fklens[i] = (size_t)strata__full_key(c, keys[i], keylens[i], fks[i]);
    }
    if ((rc = strata__breaker_allow(c)) < 0) {
        for (i = 0; i < n; i++) { /* not sent, but this process forgets the keys */
            strata__key k = strata__key_of(keys[i], keylens[i]);
            strata__l1_written(c, &k);
        }
        goto done;
    }
    rc = strata__backend_result(c, c->backend->ops->del_many(c->backend, n, (const char *const *)fks, fklens,
                                                             gone));
    for (i = 0; i < n; i++) { /* also after a failure: other L1s may hold them */
        strata__key k = strata__key_of(keys[i], keylens[i]);
        strata__l1_written(c, &k); /* after the delete: a fill that read the old value meanwhile stays out */
        strata__coherence_wrote(c, keys[i], keylens[i]);
        count += rc == 0 && gone[i];
    }
    if (rc == 0) {
        strata__atomic_add(&c->stats.deletes, count);
        if (deleted)
            *deleted = count;
    }
done:
    for (i = 0; fks && i < n; i++)
        free(fks[i]);
    free(fks);
    free(fklens);
    free(gone);
    return rc;
}
