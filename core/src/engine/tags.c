/*
 * Tags: one version counter per tag in the backend ("<ns>#T:<tag>"), an
 * in-process cache of recent versions, stamping on write, checking on read.
 * Why counters start at a clock-derived value: docs/TAGS.md.
 */
#include "tags.h"
#include "cache.h"
#include "error.h"
#include "local/table.h"
#include "policy/hash.h"

#include <stdlib.h>
#include <string.h>

#define VC_SHARDS 8
#define VC_ENTRIES_PER_SHARD 512 /* 4096 tags cached at most */
#define TAG_KEYBUF (STRATA__MAX_NS + 3 + STRATA__ENV_MAX_TAG_LEN)

typedef struct vc_shard {
    strata__mutex lock;
    strata__table table; /* tag name -> 8-byte version, expiring on the monotonic clock */
} vc_shard;

struct strata__tags {
    int64_t cache_ms;
    vc_shard shards[VC_SHARDS];
    /* The namespace generation, cached apart (every backend read checks it):
     * two atomic loads instead of a hash, a lock and a table probe. ns_v is
     * stored before ns_until, so a reader that sees an expiry sees its value. */
    uint64_t ns_v;
    int64_t ns_until;          /* monotonic ms; 0 = not cached */
};

/* Moves when a cached tag version of any cache in this process changes or
 * enters its cache, and at every clear (atomic): L1 tag-check tokens carry
 * it. One for the process, so a clear through another cache sharing a
 * memory:// store voids them too; the cost is checking again after a change
 * elsewhere. */
static uint64_t tag_generation;

/* ---- the version cache ---- */

int strata__tags_new(strata__tags **out, int64_t cache_ms)
{
    strata__tags *t = calloc(1, sizeof *t);
    size_t i;
    if (t == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory creating the tag version cache");
    t->cache_ms = cache_ms;
    for (i = 0; i < VC_SHARDS; i++) {
        strata__mutex_init(&t->shards[i].lock);
        if (strata__table_init(&t->shards[i].table, SIZE_MAX, VC_ENTRIES_PER_SHARD) < 0) {
            strata__tags_free(t);
            return strata__error(STRATA_ENOMEM, "out of memory creating the tag version cache");
        }
    }
    *out = t;
    return 0;
}

void strata__tags_free(strata__tags *t)
{
    size_t i;
    if (t == NULL)
        return;
    for (i = 0; i < VC_SHARDS; i++) {
        if (t->shards[i].table.buckets)
            strata__table_destroy(&t->shards[i].table);
        strata__mutex_destroy(&t->shards[i].lock);
    }
    free(t);
}

static vc_shard *vc_shard_of(strata__tags *t, const char *name, size_t len, uint64_t *h)
{
    *h = strata__hash64(name, len, 0x74616773);
    return &t->shards[*h % VC_SHARDS];
}

static int vc_get(strata__tags *t, const char *name, size_t len, int64_t now_mono, uint64_t *v,
                  int64_t *expires_mono)
{
    uint64_t h;
    vc_shard *s;
    strata__entry *e;
    int found = 0;
    if (t->cache_ms <= 0)
        return 0;
    s = vc_shard_of(t, name, len, &h);
    strata__mutex_lock(&s->lock);
    e = strata__table_get(&s->table, h, name, len, now_mono);
    if (e) {
        memcpy(v, STRATA__ENTRY_VALUE(e), sizeof *v);
        if (e->expires_ms < *expires_mono)
            *expires_mono = e->expires_ms;
        found = 1;
    }
    strata__mutex_unlock(&s->lock);
    return found;
}

/* A fetched version never lowers a live cached one (a fetch that started
 * before this process's own bump must not undo it); a bump replaces. */
static void vc_put(strata__tags *t, const char *name, size_t len, uint64_t v, int replace)
{
    uint64_t h, old;
    vc_shard *s;
    strata__entry *e;
    int64_t now;
    if (t->cache_ms <= 0)
        return;
    now = strata__now_mono_ms();
    s = vc_shard_of(t, name, len, &h);
    strata__mutex_lock(&s->lock);
    e = strata__table_get(&s->table, h, name, len, now);
    if (e)
        memcpy(&old, STRATA__ENTRY_VALUE(e), sizeof old);
    if (e && !replace && old > v)
        v = old;
    if (e == NULL || old != v) /* L1 entries checked against the old state check again */
        strata__atomic_add(&tag_generation, 1);
    strata__table_put(&s->table, h, name, len, (const char *)&v, sizeof v, now + t->cache_ms, NULL);
    strata__mutex_unlock(&s->lock);
}

/* ---- counters in the backend ---- */

size_t strata__tags_key(const strata_cache *c, const char *name, size_t len, char *buf)
{
    memcpy(buf, c->cfg.ns, c->cfg.nslen);
    memcpy(buf + c->cfg.nslen, "#T:", 3);
    memcpy(buf + c->cfg.nslen + 3, name, len);
    return c->cfg.nslen + 3 + len;
}

/* A value no earlier incarnation of a counter can have held: unix ms in the
 * high bits, 20 random low bits. An older incarnation reaches it only after
 * 2^20 bumps per millisecond of its life (docs/TAGS.md). */
int64_t strata__tags_fresh_version(void)
{
    return (int64_t)(((uint64_t)strata__now_wall_ms() << 20) | (strata__random_u64() & 0xfffff));
}

int strata__tags_parse_version(const char *s, size_t len, uint64_t *v)
{
    uint64_t x = 0;
    size_t i = 0;
    while (len > 0 && s[len - 1] == ' ') /* memcached may pad an incremented number */
        len--;
    if (len == 0 || len > 19)
        return -1;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    *v = x;
    return 0;
}

/* Versions of n distinct tags straight from the backend: one get_many; a
 * missing counter is created at a fresh version (add-if-absent, then read). */
static int fetch(strata_cache *c, size_t n, const char *const *names, const size_t *lens, uint64_t *out)
{
    char *keymem = malloc(n * TAG_KEYBUF);
    const char **keys = malloc(n * sizeof *keys);
    size_t *klens = malloc(n * sizeof *klens), i;
    strata__bytes *raws = calloc(n, sizeof *raws);
    int *rcs = calloc(n, sizeof *rcs), rc;

    if (!keymem || !keys || !klens || !raws || !rcs) {
        rc = strata__error(STRATA_ENOMEM, "out of memory reading %zu tag versions", n);
        goto done;
    }
    for (i = 0; i < n; i++) {
        keys[i] = keymem + i * TAG_KEYBUF;
        klens[i] = strata__tags_key(c, names[i], lens[i], keymem + i * TAG_KEYBUF);
    }
    if ((rc = strata__breaker_allow(c)) < 0)
        goto done;
    STRATA__COUNT(c, tag_fetches);
    rc = strata__backend_result(c, c->backend->ops->get_many(c->backend, n, keys, klens, raws, rcs));
    for (i = 0; rc == 0 && i < n; i++) {
        if (rcs[i] == 0 && strata__tags_parse_version(raws[i].data, raws[i].len, &out[i]) == 0)
            continue;
        if (rcs[i] == 0) {
            char shown[80];
            rc = strata__error(STRATA_EBACKEND, "tag counter for \"%s\" holds a non-numeric value",
                               strata__key_for_message(names[i], lens[i], shown, sizeof shown));
        } else {
            int64_t v = 0;
            rc = strata__backend_result(c, c->backend->ops->counter(c->backend, keys[i], klens[i],
                                                                    strata__tags_fresh_version(), 0, &v));
            out[i] = (uint64_t)v;
        }
    }
done:
    for (i = 0; raws && i < n; i++)
        strata__bytes_free(&raws[i]);
    free(keymem);
    free(keys);
    free(klens);
    free(raws);
    free(rcs);
    return rc;
}

/* A tag the version cache lacked, and where its answer goes. */
typedef struct wanted {
    const char *name;
    size_t len, at;
} wanted;

static int wanted_cmp(const void *a, const void *b)
{
    const wanted *x = a, *y = b;
    int c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    c = memcmp(x->name, y->name, x->len);
    return c ? c : (x->at < y->at ? -1 : x->at > y->at);
}

/* Current versions of n tags (repeats allowed): the cache, then one fetch of
 * the distinct rest (sorted, so a big get_many dedupes in n log n). */
/* *until_mono (when not NULL) is lowered to the earliest moment one of the
 * versions handed out stops being cached. */
static int versions(strata_cache *c, size_t n, const char *const *names, const size_t *lens, uint64_t *out,
                    int64_t *until_mono)
{
    wanted *w = NULL, w_stack[STRATA__ENV_MAX_TAGS];
    const char **un = NULL;
    size_t *ul = NULL, nw = 0, nu = 0, i;
    uint64_t *uv = NULL;
    int64_t now = c->tags->cache_ms > 0 ? strata__now_mono_ms() : 0;
    int64_t until = INT64_MAX;
    int rc = 0;

    for (i = 0; i < n; i++) {
        if (vc_get(c->tags, names[i], lens[i], now, &out[i], &until))
            continue;
        if (w == NULL) /* one entry's tags fit on the stack: an L1 hit allocates nothing */
            w = n <= STRATA__ENV_MAX_TAGS ? w_stack : malloc(n * sizeof *w);
        if (w == NULL)
            return strata__error(STRATA_ENOMEM, "out of memory checking %zu tags", n);
        w[nw].name = names[i];
        w[nw].len = lens[i];
        w[nw++].at = i;
    }
    if (nw == 0) {
        if (until_mono && until < *until_mono)
            *until_mono = until;
        return 0;
    }
    qsort(w, nw, sizeof *w, wanted_cmp);
    un = malloc(nw * sizeof *un);
    ul = malloc(nw * sizeof *ul);
    uv = malloc(nw * sizeof *uv);
    if (!un || !ul || !uv) {
        rc = strata__error(STRATA_ENOMEM, "out of memory checking %zu tags", n);
        goto done;
    }
    for (i = 0; i < nw; i++) {
        if (nu == 0 || ul[nu - 1] != w[i].len || memcmp(un[nu - 1], w[i].name, w[i].len) != 0) {
            un[nu] = w[i].name;
            ul[nu++] = w[i].len;
        }
    }
    if ((rc = fetch(c, nu, un, ul, uv)) < 0)
        goto done;
    for (i = 0; i < nu; i++)
        vc_put(c->tags, un[i], ul[i], uv[i], 0);
    if (until_mono) { /* the fetched ones are cached from now on (or not at all) */
        int64_t fetched = c->tags->cache_ms > 0 ? now + c->tags->cache_ms : INT64_MIN;
        if (fetched < until)
            until = fetched;
        if (until < *until_mono)
            *until_mono = until;
    }
    for (i = 0, nu = 0; i < nw; i++) { /* same walk again: hand each its answer */
        if (i > 0 && (w[i].len != w[i - 1].len || memcmp(w[i].name, w[i - 1].name, w[i].len) != 0))
            nu++;
        out[w[i].at] = uv[nu];
    }
done:
    if (w != w_stack)
        free(w);
    free(un);
    free(ul);
    free(uv);
    return rc;
}

/* ---- stamping (writes) ---- */

int strata__tags_check(const char *const *tags, const size_t *taglens, size_t ntags)
{
    size_t i;
    if (ntags == 0)
        return 0;
    if (tags == NULL || taglens == NULL)
        return strata__error(STRATA_EINVAL, "%s is NULL with %zu tags", tags == NULL ? "tags" : "taglens", ntags);
    if (ntags > STRATA__MAX_USER_TAGS)
        return strata__error(STRATA_EINVAL, "%zu tags; an entry carries at most %d", ntags, STRATA__MAX_USER_TAGS);
    for (i = 0; i < ntags; i++) {
        if (tags[i] == NULL)
            return strata__error(STRATA_EINVAL, "tag %zu is NULL", i);
        if (taglens[i] == 0)
            return strata__error(STRATA_EKEY, "tag %zu is empty", i);
        if (taglens[i] > STRATA__ENV_MAX_TAG_LEN)
            return strata__error(STRATA_EKEY, "tag %zu is %zu bytes; the limit is %d", i, taglens[i],
                                 STRATA__ENV_MAX_TAG_LEN);
    }
    return 0;
}

int strata__tags_stamp(strata_cache *c, const char *const *tags, const size_t *taglens, size_t ntags,
                       strata__env_tag *out)
{
    uint64_t v[STRATA__ENV_MAX_TAGS];
    size_t i;
    int rc;
    if ((rc = strata__tags_check(tags, taglens, ntags)) < 0 || ntags == 0)
        return rc;
    if ((rc = versions(c, ntags, tags, taglens, v, NULL)) < 0)
        return rc;
    for (i = 0; i < ntags; i++) {
        out[i].name = tags[i];
        out[i].len = taglens[i];
        out[i].version = v[i];
    }
    return 0;
}

int strata__tagstamp_new(strata_cache *c, const char *const *tags, const size_t *taglens, size_t ntags,
                         strata__tagstamp **out)
{
    strata__tagstamp *s;
    size_t i, total = 0, at = 0;
    int rc;
    *out = NULL;
    if ((rc = strata__tags_check(tags, taglens, ntags)) < 0 || ntags == 0)
        return rc;
    for (i = 0; i < ntags; i++)
        total += taglens[i];
    if ((s = malloc(sizeof *s + total)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory for %zu tags", ntags);
    if ((rc = strata__tags_stamp(c, tags, taglens, ntags, s->tags)) < 0) {
        free(s);
        return rc;
    }
    s->n = ntags;
    for (i = 0; i < ntags; i++) {
        memcpy(s->names + at, tags[i], taglens[i]);
        s->tags[i].name = s->names + at;
        at += taglens[i];
    }
    *out = s;
    return 0;
}

void strata__tagstamp_free(strata__tagstamp *s)
{
    free(s);
}

/* ---- checking (reads) ---- */

int strata__tags_apply(strata_cache *c, size_t n, strata__envelope *const *envs, const uint64_t *v, uint64_t ns,
                       int64_t now_ms, int count)
{
    size_t i, j, k;
    int expired = 0;
    for (i = 0, k = 0; i < n; i++) {
        strata__envelope *e = envs[i];
        uint64_t stamped_ns = 0;
        int outdated = 0;
        for (j = 0; e && j < e->ntags; j++) {
            if (e->tags[j].len == 0)
                stamped_ns = e->tags[j].version;
            else
                outdated |= e->tags[j].version != v[k++];
        }
        if (e && stamped_ns != ns) {
            /* Cleared: a miss, never served stale (strata_clear's promise). */
            if (e->fresh_until_ms > now_ms)
                e->fresh_until_ms = now_ms;
            e->stale_until_ms = e->fresh_until_ms;
            outdated = 1;
        }
        if (outdated) {
            /* Expired as of now, keeping the stale allowance it was written with. */
            int64_t stale_for = e->stale_until_ms - e->fresh_until_ms;
            if (e->fresh_until_ms > now_ms)
                e->fresh_until_ms = now_ms;
            if (e->stale_until_ms > now_ms + stale_for)
                e->stale_until_ms = now_ms + stale_for;
            if (count)
                STRATA__COUNT(c, tag_stale);
            expired++;
        }
    }
    return expired;
}

static void vc_forget(strata__tags *t, const char *name, size_t len);

size_t strata__tags_forget_behind(strata_cache *c, size_t n, strata__envelope *const *envs, const uint64_t *v,
                                  uint64_t ns)
{
    size_t i, j, k, behind = 0;
    for (i = 0, k = 0; i < n; i++) {
        const strata__envelope *e = envs[i];
        for (j = 0; e && j < e->ntags; j++) {
            if (e->tags[j].len == 0) {
                if (e->tags[j].version > ns) {
                    strata__tags_ns_forget(c);
                    behind++;
                }
            } else if (e->tags[j].version > v[k++]) {
                vc_forget(c->tags, e->tags[j].name, e->tags[j].len);
                behind++;
            }
        }
    }
    return behind;
}

static int ns_cached(const strata_cache *c)
{
    return c->tags->cache_ms > 0 && strcmp(c->backend->ops->name, "memory") != 0;
}

static void ns_put(strata__tags *t, uint64_t v);

int strata__tags_cached(strata_cache *c, const char *name, size_t len, uint64_t *v)
{
    int64_t until = INT64_MAX;
    if (len == 0) { /* the namespace generation: cached apart, only where ns_version caches it */
        if (!ns_cached(c) || strata__now_mono_ms() >= strata__atomic_load(&c->tags->ns_until))
            return 0;
        *v = strata__atomic_load(&c->tags->ns_v);
        return 1;
    }
    return vc_get(c->tags, name, len, c->tags->cache_ms > 0 ? strata__now_mono_ms() : 0, v, &until);
}

void strata__tags_remember(strata_cache *c, const char *name, size_t len, uint64_t v, int replace)
{
    if (len > 0)
        vc_put(c->tags, name, len, v, replace);
    else if (ns_cached(c) && (replace || v >= strata__atomic_load(&c->tags->ns_v))) /* never lower a bump */
        ns_put(c->tags, v);
}

static int ns_version(strata_cache *c, uint64_t *out, int64_t *until_mono);

static int verify(strata_cache *c, size_t n, strata__envelope *const *envs, int64_t now_ms, int count,
                  int64_t *until_mono)
{
    const char **names, *names_stack[STRATA__ENV_MAX_TAGS];
    size_t *lens, lens_stack[STRATA__ENV_MAX_TAGS], total = 0, i, j, k;
    uint64_t *v, v_stack[STRATA__ENV_MAX_TAGS], ns = 0;
    int rc, small, any = 0, attempt;

    for (i = 0; i < n; i++)
        if (envs[i]) {
            any = 1;
            for (j = 0; j < envs[i]->ntags; j++)
                total += envs[i]->tags[j].len > 0; /* the namespace stamp is checked apart */
        }
    if (!any)
        return 0;
    small = total <= STRATA__ENV_MAX_TAGS;
    names = small ? names_stack : malloc(total * sizeof *names);
    lens = small ? lens_stack : malloc(total * sizeof *lens);
    v = small ? v_stack : malloc(total * sizeof *v);
    if (!names || !lens || !v) {
        rc = strata__error(STRATA_ENOMEM, "out of memory checking %zu tag stamps", total);
        goto done;
    }
    for (i = 0, k = 0; i < n; i++)
        for (j = 0; envs[i] && j < envs[i]->ntags; j++)
            if (envs[i]->tags[j].len > 0) {
                names[k] = envs[i]->tags[j].name;
                lens[k++] = envs[i]->tags[j].len;
            }
    for (attempt = 0;; attempt++) { /* a second time when a stamp shows a cached version behind */
        if ((rc = ns_version(c, &ns, until_mono)) < 0)
            goto done;
        if (total > 0 && (rc = versions(c, total, names, lens, v, until_mono)) < 0)
            goto done;
        if (attempt > 0 || strata__tags_forget_behind(c, n, envs, v, ns) == 0)
            break;
    }
    rc = strata__tags_apply(c, n, envs, v, ns, now_ms, count);
done:
    if (!small) {
        free(names);
        free(lens);
        free(v);
    }
    return rc;
}

int strata__tags_verify(strata_cache *c, size_t n, strata__envelope *const *envs, int64_t now_ms)
{
    return verify(c, n, envs, now_ms, 1, NULL);
}

/* ---- L1 ---- */

void strata__tags_l1_put(strata_cache *c, const strata__key *k, const strata__envelope *e,
                         int64_t now_ms, uint64_t epoch)
{
    size_t need = strata__env_size(e);
    char *buf = malloc(need);
    if (buf && strata__env_encode(e, buf, need) == need)
        strata__l1_store(c, k, buf, need, (e->flags & STRATA__ENV_FLAG_NEGATIVE) != 0, 1, now_ms,
                         e->fresh_until_ms, e->stale_until_ms, epoch);
    free(buf); /* L1 is best effort: without memory the entry is simply not kept */
}

int strata__tags_l1_check(void *cache, const strata__key *k, int64_t now_ms, strata_value *out, int rc,
                          strata__l1_token *token)
{
    strata_cache *c = cache;
    strata__envelope e, *pe = &e;
    /* read before the versions: a change while they are read voids the token */
    uint64_t generation = strata__atomic_load(&tag_generation);
    int64_t until_mono = INT64_MAX;
    int r;
    if (strata__decode_stored(c, out->data, out->len, &e) != 0)
        return STRATA_MISS;
    r = verify(c, 1, &pe, now_ms, 0, &until_mono); /* counted when the backend read that follows finds it too */
    if (r != 0) {
        if (r > 0)
            strata__l1_del(c->l1, k);
        return STRATA_MISS; /* outdated, or cannot be checked now: the backend decides */
    }
    /* Hits skip this check while no cached version changes and none of these
     * expires (the token's until, on the wall clock the L1 reads). */
    token->generation = generation;
    token->until_ms = until_mono == INT64_MIN || until_mono == INT64_MAX ? until_mono /* never / no expiry */
                      : now_ms + (until_mono - strata__now_mono_ms());
    token->payload_off = (size_t)(e.payload - out->data);
    memmove(out->priv_, e.payload, e.payload_len);
    ((char *)out->priv_)[e.payload_len] = '\0';
    out->data = out->priv_;
    out->len = e.payload_len;
    return rc;
}

const uint64_t *strata__tags_generation(const strata__tags *t)
{
    (void)t;
    return &tag_generation;
}

/* ---- public API ---- */

int strata_invalidate_tag(strata_cache *c, const char *tag, size_t taglen)
{
    char key[TAG_KEYBUF];
    size_t klen;
    int64_t v = 0;
    int rc;
    if (c == NULL)
        return strata__error(STRATA_EINVAL, "cache handle is NULL");
    if ((rc = strata__tags_check(&tag, &taglen, 1)) < 0)
        return rc;
    klen = strata__tags_key(c, tag, taglen, key);
    if ((rc = strata__breaker_allow(c)) < 0)
        return rc;
    /* O(1): one increment; a missing counter starts at a fresh version, which
     * outdates every stamp of its earlier incarnations just the same. */
    rc = strata__backend_result(c, c->backend->ops->counter(c->backend, key, klen, strata__tags_fresh_version(), 1, &v));
    if (rc < 0)
        return rc;
    vc_put(c->tags, tag, taglen, (uint64_t)v, 1); /* this process sees its own bump at once */
    STRATA__COUNT(c, tag_invalidations);
    return 0;
}

int strata_ticket_tags(strata_ticket *t, const char *const *tags, const size_t *taglens, size_t ntags)
{
    strata__tagstamp *s = NULL, **slot;
    int rc;
    if (t == NULL)
        return strata__error(STRATA_EINVAL, "ticket is NULL");
    if ((rc = strata__tagstamp_new(strata__ticket_cache(t), tags, taglens, ntags, &s)) < 0)
        return rc;
    slot = strata__ticket_stamp(t);
    strata__tagstamp_free(*slot);
    *slot = s;
    return 0;
}

int strata_load_tags(strata_load *l, const char *const *tags, const size_t *taglens, size_t ntags)
{
    strata__tagstamp *s = NULL, **slot;
    int rc;
    if (l == NULL)
        return strata__error(STRATA_EINVAL, "load is NULL");
    if ((rc = strata__tagstamp_new(strata__load_cache(l), tags, taglens, ntags, &s)) < 0)
        return rc;
    slot = strata__load_stamp(l);
    strata__tagstamp_free(*slot);
    *slot = s;
    return 0;
}

/* ---- the namespace generation (strata_clear; docs/FRAMEWORKS.md) ---- */

/* The memory store is in this process: asking it costs what the version
 * cache costs, and caches sharing memory://NAME then see a clear at once. */
static void ns_put(strata__tags *t, uint64_t v)
{
    strata__atomic_store(&t->ns_v, v);
    strata__atomic_store(&t->ns_until, strata__now_mono_ms() + t->cache_ms);
}

/* *until_mono as for versions(); INT64_MIN when the generation is not
 * cached here (memory://: asked every time, so a clear is seen at once). */
static int ns_version(strata_cache *c, uint64_t *out, int64_t *until_mono)
{
    char key[TAG_KEYBUF];
    strata__bytes raw = {0, 0, 0};
    int64_t until = INT64_MAX;
    size_t klen;
    int rc;
    if (ns_cached(c)) {
        int64_t cached_until = strata__atomic_load(&c->tags->ns_until);
        if (strata__now_mono_ms() < cached_until) {
            *out = strata__atomic_load(&c->tags->ns_v);
            if (until_mono && cached_until < *until_mono)
                *until_mono = cached_until;
            return 0;
        }
    }
    (void)until;
    if (until_mono && !ns_cached(c) && strcmp(c->backend->ops->name, "memory") != 0)
        *until_mono = INT64_MIN; /* asked every time: no check may be skipped */
    else if (until_mono && ns_cached(c) && strata__now_mono_ms() + c->tags->cache_ms < *until_mono)
        *until_mono = strata__now_mono_ms() + c->tags->cache_ms;
    /* memory://: only a clear in this process changes it, and that moves the generation */
    klen = strata__tags_key(c, "", 0, key);
    if ((rc = strata__breaker_allow(c)) < 0)
        return rc;
    rc = strata__backend_result(c, c->backend->ops->get(c->backend, key, klen, &raw));
    if (rc == STRATA_MISS) { /* never cleared: entries carry no stamp */
        *out = 0;
        rc = 0;
    } else if (rc == 0 && strata__tags_parse_version(raw.data, raw.len, out) != 0) {
        rc = strata__error(STRATA_EBACKEND, "the namespace generation counter holds a non-numeric value");
    }
    strata__bytes_free(&raw);
    if (rc == 0 && ns_cached(c) && *out >= strata__atomic_load(&c->tags->ns_v)) /* never lower a bump */
        ns_put(c->tags, *out);
    return rc;
}

int strata__tags_ns_version(strata_cache *c, uint64_t *out)
{
    return ns_version(c, out, NULL);
}

size_t strata__tags_with_ns(strata_cache *c, const strata__env_tag *tags, size_t ntags, strata__env_tag *out,
                            const uint64_t *known_ns, int *rc)
{
    size_t i, n = 0;
    uint64_t ns = known_ns ? *known_ns : 0;
    for (i = 0; i < ntags; i++)
        if (tags[i].len > 0) /* a stamp carried over (touch, incr) is taken anew */
            out[n++] = tags[i];
    *rc = 0;
    if ((known_ns || (*rc = strata__tags_ns_version(c, &ns)) == 0) && ns != 0) {
        out[n].name = "";
        out[n].len = 0;
        out[n++].version = ns;
    }
    return n;
}

int strata__tags_clear(strata_cache *c)
{
    char key[TAG_KEYBUF];
    size_t klen = strata__tags_key(c, "", 0, key);
    int64_t v = 0;
    int rc;
    if ((rc = strata__breaker_allow(c)) < 0)
        return rc;
    rc = strata__backend_result(c, c->backend->ops->counter(c->backend, key, klen, strata__tags_fresh_version(), 1, &v));
    if (rc == 0 && ns_cached(c))
        ns_put(c->tags, (uint64_t)v);
    strata__atomic_add(&tag_generation, 1); /* even after a timeout: it may have landed */
    return rc;
}

static void vc_forget(strata__tags *t, const char *name, size_t len)
{
    uint64_t h;
    vc_shard *s;
    if (t == NULL || t->cache_ms <= 0)
        return;
    s = vc_shard_of(t, name, len, &h);
    strata__mutex_lock(&s->lock);
    strata__table_del(&s->table, h, name, len, strata__now_mono_ms());
    strata__mutex_unlock(&s->lock);
}

void strata__tags_ns_forget(strata_cache *c)
{
    if (c->tags)
        strata__atomic_store(&c->tags->ns_until, 0);
}

void strata__tags_forget(strata_cache *c, const strata__envelope *e)
{
    size_t i;
    strata__tags_ns_forget(c);
    for (i = 0; i < e->ntags; i++)
        vc_forget(c->tags, e->tags[i].name, e->tags[i].len);
}

size_t strata__env_user_tags(const strata__envelope *e)
{
    size_t i, n = 0;
    for (i = 0; i < e->ntags; i++)
        n += e->tags[i].len > 0;
    return n;
}
