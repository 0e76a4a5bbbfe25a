/*
 * strata_inspect: what the backend holds under one key, decoded for an
 * operator. Read-only: no L1, no stats, no lease, no freshness decision
 * (the verdicts are reported, not acted on).
 */
#include "cache.h"
#include "error.h"
#include "engine/metrics.h"

#include <stdio.h>
#include <string.h>

static int check_version(unsigned int version, unsigned int want, const char *what)
{
    if (version != want)
        return strata__error(STRATA_EVERSION, "%s: struct version %u (this library knows %u)", what, version,
                             want);
    return 0;
}

/* The peek for a backend without its own: the value only. */
static int peek(strata_cache *c, const char *fk, size_t fklen, strata__peek *p)
{
    strata__backend *be = strata__backend_untimed(c->backend);
    int rc;
    p->ttl_ms = -2;
    p->lease_ttl_ms = -2;
    if (be->ops->peek != NULL)
        return be->ops->peek(be, &c->cfg, fk, fklen, p);
    rc = be->ops->get(be, fk, fklen, &p->val);
    p->found = rc == 0;
    return rc == STRATA_MISS ? 0 : rc;
}

#define INSPECT_TAGS (sizeof ((strata_inspection *)0)->tags / sizeof ((strata_inspection *)0)->tags[0])

/* Stamped versions against the current ones (one backend round trip). Only
 * tags a caller gave are listed: a stamp with an empty name is not a tag. */
static int tag_verdict(strata_cache *c, const strata__envelope *e, strata_inspection *out)
{
    const char *names[INSPECT_TAGS];
    size_t lens[INSPECT_TAGS], i, n = 0;
    strata__env_tag now[INSPECT_TAGS];
    int rc;
    for (i = 0; i < e->ntags && n < INSPECT_TAGS; i++) {
        strata_inspect_tag *t = &out->tags[n];
        if (e->tags[i].len == 0 || e->tags[i].len >= sizeof t->name)
            continue;
        memcpy(t->name, e->tags[i].name, e->tags[i].len);
        t->name[e->tags[i].len] = '\0';
        t->namelen = e->tags[i].len;
        t->stamped = e->tags[i].version;
        names[n] = e->tags[i].name;
        lens[n] = e->tags[i].len;
        n++;
    }
    out->ntags = n;
    for (i = 0; i < e->ntags; i++)
        if (e->tags[i].len == 0)
            out->ns_stamped = e->tags[i].version;
    /* strata_clear bumps the generation: an entry stamped with another (or
     * with none, written before the first clear) reads as cleared */
    if ((rc = strata__tags_ns_version(c, &out->ns_current)) < 0)
        return rc;
    out->cleared = out->ns_current != 0 && out->ns_stamped != out->ns_current;
    if (n == 0)
        return 0;
    if ((rc = strata__tags_stamp(c, names, lens, n, now)) < 0)
        return rc;
    for (i = 0; i < n; i++) {
        out->tags[i].current = now[i].version;
        if (now[i].version != out->tags[i].stamped)
            out->stale_by_tag = 1;
    }
    return 0;
}

int strata_inspect(strata_cache *c, const char *key, size_t keylen, strata_inspection *out)
{
    char fk[STRATA__KEYBUF];
    strata__peek p;
    strata__envelope e;
    strata_value keep;
    int fklen, rc;

    if (out == NULL)
        return strata__error(STRATA_EINVAL, "inspection out-pointer is NULL");
    if ((rc = check_version(out->version, STRATA_INSPECT_VERSION, "strata_inspection")) < 0)
        return rc;
    if ((fklen = strata__full_key(c, key, keylen, fk)) < 0)
        return fklen;
    keep = out->value; /* reused buffer */
    memset(out, 0, sizeof *out);
    out->version = STRATA_INSPECT_VERSION;
    out->value = keep;
    out->value.len = 0;
    memset(&p, 0, sizeof p);
    out->now_ms = strata__now_wall_ms();
    if ((rc = peek(c, fk, (size_t)fklen, &p)) < 0)
        goto done;
    out->backend_ttl_ms = p.found ? p.ttl_ms : -2;
    out->lease = p.lease;
    memcpy(out->lease_holder, p.lease_holder, sizeof out->lease_holder);
    out->lease_ttl_ms = p.lease ? p.lease_ttl_ms : -2;
    if (!p.found) {
        out->kind = STRATA_INSPECT_MISS;
        goto done;
    }
    out->stored_len = p.val.len;
    if (strata__env_decode(p.val.data, p.val.len, &e) != 0) {
        out->kind = STRATA_INSPECT_FOREIGN;
        rc = strata__value_set(&out->value, p.val.data ? p.val.data : "", p.val.len);
        goto done;
    }
    out->kind = STRATA_INSPECT_ENTRY;
    out->negative = (e.flags & STRATA__ENV_FLAG_NEGATIVE) != 0;
    out->created_ms = e.created_ms;
    out->fresh_until_ms = e.fresh_until_ms;
    out->stale_until_ms = e.stale_until_ms;
    out->cost_ms = e.cost_ms;
    if ((rc = strata__value_set(&out->value, e.payload ? e.payload : "", e.payload_len)) == 0)
        rc = tag_verdict(c, &e, out);
done:
    strata__bytes_free(&p.val);
    return rc < 0 ? rc : 0;
}
