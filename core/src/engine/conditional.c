/*
 * Conditional writes: strata_add (set if absent) and strata_incr/decr
 * (read-modify-write of a decimal integer), atomic across processes.
 *
 * Both are compare-and-swap loops over the backend's add and cas ops: read
 * the raw bytes, judge them here (an expired, tag-outdated, cleared, negative
 * or foreign entry counts as absent), then write only if the bytes are still
 * the ones judged. Of racing writers exactly one swap succeeds; the others
 * read again. The backend never parses an envelope.
 */
#include "cache.h"
#include "error.h"
#include "engine/coherence.h"

#include <stdio.h>
#include <string.h>

/* Racing writers each lose at most once per winner; this bound is only hit
 * when something keeps rewriting the key faster than it can be read. */
#define CAS_ATTEMPTS 10000

/* 1 when raw holds a live value of ours (decoded into env), 0 when it counts
 * as absent, or an error (tag versions unreadable). An entry that looks
 * outdated is judged again on versions fresh from the backend: another
 * process's write stamped after a clear or bump this process has not seen
 * yet is live, and two writers must not both take it for dead. */
static int judge(strata_cache *c, const strata__bytes *raw, int64_t now, strata__envelope *env)
{
    strata__envelope *pe = env;
    int rc;
    if (strata__env_decode(raw->data, raw->len, env) != 0)
        return 0;
    if ((rc = strata__tags_verify(c, 1, &pe, now)) > 0) {
        strata__env_decode(raw->data, raw->len, env); /* verify moved its times */
        strata__tags_forget(c, env);
        rc = strata__tags_verify(c, 1, &pe, now);
    }
    if (rc < 0)
        return rc;
    return (env->flags & STRATA__ENV_FLAG_NEGATIVE) == 0 && now < env->fresh_until_ms;
}

/* Local bookkeeping after a conditional write landed (or may have). */
static void wrote(strata_cache *c, const char *key, size_t keylen, int landed)
{
    if (c->l1) {
        strata__key k = strata__key_of(key, keylen);
        strata__l1_del(c->l1, &k);
    }
    strata__coherence_wrote(c, key, keylen);
    if (landed)
        STRATA__COUNT(c, sets);
}

/* Writes enc where the key holds nothing live: raw (rc_read 0) or nothing
 * (rc_read STRATA_MISS) was what the caller read. 0 stored; STRATA_EXISTS
 * when another writer came first (read again); or an error. */
static int swap_in(strata_cache *c, const char *fk, size_t fklen, int rc_read, const strata__bytes *raw,
                   const strata__bytes *enc, int64_t backend_ttl)
{
    const strata__backend_ops *ops = c->backend->ops;
    int rc;
    if ((rc = strata__breaker_allow(c)) < 0)
        return rc;
    if (rc_read == STRATA_MISS)
        rc = ops->add(c->backend, fk, fklen, enc->data, enc->len, backend_ttl);
    else
        rc = ops->cas(c->backend, fk, fklen, raw->data, raw->len, enc->data, enc->len, backend_ttl);
    rc = strata__backend_result(c, rc);
    return rc == STRATA_MISS ? STRATA_EXISTS : rc;
}

static int read_raw(strata_cache *c, const char *fk, size_t fklen, strata__bytes *raw)
{
    int rc = strata__breaker_allow(c);
    return rc < 0 ? rc : strata__backend_result(c, c->backend->ops->get(c->backend, fk, fklen, raw));
}

static int check_ttl(int64_t ttl_ms)
{
    if (ttl_ms < 0 && ttl_ms != STRATA_TTL_FOREVER)
        return strata__error(STRATA_EINVAL, "ttl_ms must be >= 0 (0 = the cache's default) or "
                             "STRATA_TTL_FOREVER, got %lld", (long long)ttl_ms);
    return 0;
}

int strata_add(strata_cache *c, const char *key, size_t keylen, const char *val, size_t vallen, int64_t ttl_ms)
{
    char fk[STRATA__KEYBUF];
    strata__bytes enc = {0, 0, 0}, raw = {0, 0, 0};
    strata__envelope env;
    int64_t now = strata__now_wall_ms(), fresh_until, backend_ttl;
    int fklen = strata__full_key(c, key, keylen, fk), rc, attempt;
    if (fklen < 0)
        return fklen;
    if (val == NULL && vallen > 0)
        return strata__error(STRATA_EINVAL, "value is NULL with length %zu", vallen);
    if ((rc = check_ttl(ttl_ms)) < 0)
        return rc;
    /* Stamped with the generation as it is now, not as cached: a value
     * stamped before another process's clear would be dead to the others,
     * who could then add over it. */
    strata__tags_ns_forget(c);
    if ((rc = strata__encode_value(c, &enc, val ? val : "", vallen, 0, ttl_ms, -1, 0, now, &fresh_until,
                                   &backend_ttl)) < 0) {
        strata__bytes_free(&enc);
        return rc;
    }
    rc = STRATA_MISS; /* first try: as if nothing were there (one round trip when so) */
    for (attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        int r = swap_in(c, fk, (size_t)fklen, rc, &raw, &enc, backend_ttl);
        if (r != STRATA_EXISTS) {
            rc = r;
            break;
        }
        if ((rc = read_raw(c, fk, (size_t)fklen, &raw)) == STRATA_MISS)
            continue; /* gone meanwhile: add again */
        if (rc < 0)
            break;
        if ((r = judge(c, &raw, strata__now_wall_ms(), &env)) != 0) {
            rc = r < 0 ? r : STRATA_EXISTS; /* a live value: the add loses */
            break;
        }
        /* Dead bytes (expired, outdated, cleared, foreign): replace exactly them. */
    }
    if (attempt == CAS_ATTEMPTS)
        rc = strata__error(STRATA_EBUSY, "add: the key kept changing under %d attempts", CAS_ATTEMPTS);
    if (rc == 0 || strata__is_outage(rc))
        wrote(c, key, keylen, rc == 0);
    strata__bytes_free(&enc);
    strata__bytes_free(&raw);
    return rc;
}

/* Strict decimal int64: optional '-', 1-19 digits, nothing else (memcached
 * may pad a number it incremented with spaces: those are dropped). */
static int parse_int(const char *s, size_t len, int64_t *out)
{
    uint64_t x = 0, limit;
    size_t i = 0;
    int neg;
    while (len > 0 && s[len - 1] == ' ')
        len--;
    neg = len > 0 && s[0] == '-';
    i = (size_t)neg;
    if (len == i || len - i > 19)
        return -1;
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || x > (limit - (uint64_t)(s[i] - '0')) / 10)
            return -1;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    *out = neg ? (int64_t)(0 - x) : (int64_t)x;
    return 0;
}

/* The new counter envelope: with ttl_ms, fresh times; without (keep), the
 * live entry's times, tags and cost, so an increment never extends a TTL. */
static int encode_count(strata_cache *c, const char *text, size_t len, int keep, const strata__envelope *live,
                        int64_t ttl_ms, int64_t now, strata__bytes *out, int64_t *backend_ttl)
{
    strata__envelope e;
    size_t need;
    int rc;
    if (!keep) {
        int64_t fresh_until;
        return strata__encode_value(c, out, text, len, 0, ttl_ms, -1, 0, now, &fresh_until, backend_ttl);
    }
    e = *live;
    e.ntags = strata__tags_with_ns(c, live->tags, live->ntags, e.tags, &rc);
    if (rc < 0)
        return rc;
    e.payload = text;
    e.payload_len = len;
    need = strata__env_size(&e);
    if ((rc = strata__bytes_reserve(out, need)) < 0)
        return rc;
    if ((out->len = strata__env_encode(&e, out->data, out->cap)) == 0)
        return strata__error(STRATA_EINVAL, "counter cannot be encoded");
    *backend_ttl = e.stale_until_ms - now;
    return 0;
}

int strata_incr(strata_cache *c, const char *key, size_t keylen, int64_t delta, int64_t ttl_ms, int64_t *out)
{
    char fk[STRATA__KEYBUF], text[24], shown[80];
    strata__bytes raw = {0, 0, 0}, enc = {0, 0, 0};
    strata__envelope env;
    int64_t value = 0, backend_ttl;
    int fklen = strata__full_key(c, key, keylen, fk), rc, attempt;
    if (fklen < 0)
        return fklen;
    if ((rc = check_ttl(ttl_ms)) < 0)
        return rc;
    strata__tags_ns_forget(c); /* as in strata_add */
    for (attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        int64_t now = strata__now_wall_ms(), cur = 0;
        int live = 0, len, read;
        raw.len = 0;
        if ((rc = read = read_raw(c, fk, (size_t)fklen, &raw)) < 0 && rc != STRATA_MISS)
            break;
        if (rc == 0 && (live = judge(c, &raw, now, &env)) < 0) {
            rc = live;
            break;
        }
        if (live && parse_int(env.payload, env.payload_len, &cur) != 0) {
            rc = strata__error(STRATA_ENOTNUM, "incr: key \"%s\" holds a value that is not a decimal integer",
                               strata__key_for_message(key, keylen, shown, sizeof shown));
            break;
        }
        if ((delta > 0 && cur > INT64_MAX - delta) || (delta < 0 && cur < INT64_MIN - delta)) {
            rc = strata__error(STRATA_ENOTNUM, "incr: %lld %+lld overflows a 64-bit integer (key \"%s\")",
                               (long long)cur, (long long)delta,
                               strata__key_for_message(key, keylen, shown, sizeof shown));
            break;
        }
        value = cur + delta;
        len = snprintf(text, sizeof text, "%lld", (long long)value);
        if ((rc = encode_count(c, text, (size_t)len, live && ttl_ms == 0, &env, ttl_ms, now, &enc,
                               &backend_ttl)) < 0)
            break;
        /* The read's outcome: 0 (swap those bytes) or MISS (add). */
        if ((rc = swap_in(c, fk, (size_t)fklen, read, &raw, &enc, backend_ttl)) != STRATA_EXISTS)
            break;
        if (attempt >= 8) /* many writers on one key: step aside a little */
            strata__sleep_ms((int64_t)(strata__random_u64() % 2));
    }
    if (attempt == CAS_ATTEMPTS)
        rc = strata__error(STRATA_EBUSY, "incr: the key kept changing under %d attempts", CAS_ATTEMPTS);
    if (rc == 0 || strata__is_outage(rc))
        wrote(c, key, keylen, rc == 0);
    if (rc == 0 && out)
        *out = value;
    strata__bytes_free(&raw);
    strata__bytes_free(&enc);
    return rc;
}

int strata_decr(strata_cache *c, const char *key, size_t keylen, int64_t delta, int64_t ttl_ms, int64_t *out)
{
    if (delta == INT64_MIN)
        return strata__error(STRATA_ENOTNUM, "decr: delta %lld cannot be negated", (long long)delta);
    return strata_incr(c, key, keylen, -delta, ttl_ms, out);
}
