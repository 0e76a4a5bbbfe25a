/*
 * Write-through: the writer (source of truth) first, the cache only after its
 * success. If the cache cannot be updated, the key is invalidated instead, and
 * the caller is told: a stale value is never left behind silently.
 */
#include "writes.h"
#include "error.h"

#include <stdio.h>
#include <string.h>

#define INVALIDATE_TRIES 3

int strata_write_error(strata_write *w, const char *message)
{
    if (w == NULL)
        return strata__error(STRATA_EINVAL, "write is NULL");
    w->failed = 1;
    snprintf(w->message, sizeof w->message, "%s", message ? message : "writer failed");
    return 0;
}

int strata__call_writer(strata_write *w, int rc, const char *what)
{
    if (w->failed)
        return strata__error(STRATA_EUSER, "%s failed: %s", what, w->message);
    if (rc != 0)
        return strata__error(STRATA_EUSER, "%s failed (returned %d)", what, rc);
    return 0;
}

int strata__update_or_invalidate(strata_cache *c, const char *key, size_t keylen, const char *val,
                                 size_t vallen, int64_t ttl_ms)
{
    char why[240], why_not[240], kb[96];
    int rc = strata_set(c, key, keylen, val, vallen, ttl_ms), i;
    if (rc == 0)
        return 0;
    snprintf(why, sizeof why, "%s", strata_error_last());
    /* strata_set already dropped the L1 copy; the backend copy must go too. */
    for (i = 0; i < INVALIDATE_TRIES; i++) {
        if (i > 0)
            strata__sleep_ms(10 << i);
        if ((rc = strata_invalidate(c, key, keylen)) == 0)
            return strata__error(STRATA_INVALIDATED, "key %s: the cache update failed (%s); "
                                 "the key was invalidated instead",
                                 strata__key_for_message(key, keylen, kb, sizeof kb), why);
    }
    snprintf(why_not, sizeof why_not, "%s", strata_error_last()); /* the message buffer is reused below */
    return strata__error(STRATA_ESTALE, "key %s: the source was written, but the cache could be neither "
                         "updated nor invalidated, so it may serve the old value until it expires "
                         "(update: %s; invalidate: %s)",
                         strata__key_for_message(key, keylen, kb, sizeof kb), why, why_not);
}

int strata_write_through(strata_cache *c, const char *key, size_t keylen, const char *val, size_t vallen,
                         int64_t ttl_ms, strata_writer_fn writer, void *userdata)
{
    strata__bytes enc = {0, 0, 0};
    strata_write w;
    int64_t fresh_until, backend_ttl;
    int rc;

    if ((rc = strata__check_key(c, key, keylen)) < 0)
        return rc;
    if (writer == NULL)
        return strata__error(STRATA_EINVAL, "writer is NULL");
    if (val == NULL && vallen > 0)
        return strata__error(STRATA_EINVAL, "value is NULL with length %zu", vallen);
    if ((rc = strata__check_ttl("ttl_ms", ttl_ms)) < 0)
        return rc;
    /* A value the cache cannot hold is refused before the source is touched. */
    rc = strata__encode_value(c, &enc, val ? val : "", vallen, 0, ttl_ms, -1, 0, strata__now_wall_ms(),
                              &fresh_until, &backend_ttl);
    strata__bytes_free(&enc);
    if (rc < 0)
        return rc;
    memset(&w, 0, sizeof w);
    if ((rc = strata__call_writer(&w, writer(userdata, key, keylen, val ? val : "", vallen, &w),
                                  "writer")) < 0)
        return rc;
    return strata__update_or_invalidate(c, key, keylen, val, vallen, ttl_ms);
}
