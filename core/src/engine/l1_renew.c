/*
 * The renewal thread (l1_renew.h). Every pass (l1_ttl_ms / 10, 10 ms to 1 s
 * apart) it collects, shard by shard under the shard's mutex (readers go on,
 * writers wait for the copy), the keys of entries due within `lead`, then
 * for each batch of them: takes their fill epochs, notes the time, sends one
 * get_many (the breaker and timeout_ms apply; a failed batch just lets its
 * entries expire), and decides each key as a miss fill would
 * (strata__l1_renew_envelope): renewed for l1_ttl_ms from the time noted
 * before the send, replaced, or dropped, unless an invalidation or write of
 * its stripe came meanwhile. No shard is held across I/O, and the
 * invalidation link's thread never waits for any of it.
 */
#include "l1_renew.h"
#include "cache.h"
#include "coherence.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

#define BATCH 128

struct strata__l1_renewer {
    strata_cache *c;
    strata__mutex lock;
    strata__cond cond;
    int stopping;
    strata__thread thread;
    unsigned int gen;         /* the fork generation the thread runs in */
    unsigned int restart_gen; /* claimed by the child's thread restarting it */
    strata__l1_renewer *inherited; /* the parent's, across a fork: freed, never joined */
    /* one pass's due keys: "<ns>:<key>" in `keys`, starting at off[i] */
    char *keys;
    size_t keys_len, keys_cap;
    size_t *off;
    uint64_t *hash;
    size_t n, cap;
    int full; /* out of memory collecting: renew what was collected */
};

static void collect(void *ud, const char *key, size_t keylen, uint64_t hash)
{
    strata__l1_renewer *r = ud;
    const strata__config *cfg = &r->c->cfg;
    size_t need = cfg->nslen + 1 + keylen;
    if (r->full)
        return;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        size_t *off = realloc(r->off, cap * sizeof *off);
        uint64_t *h = off ? realloc(r->hash, cap * sizeof *h) : NULL;
        if (off)
            r->off = off;
        if (h == NULL) {
            r->full = 1;
            return;
        }
        r->hash = h;
        r->cap = cap;
    }
    if (r->keys_len + need > r->keys_cap) {
        size_t cap = r->keys_cap ? r->keys_cap * 2 : 65536;
        char *p;
        while (cap < r->keys_len + need)
            cap *= 2;
        if ((p = realloc(r->keys, cap)) == NULL) {
            r->full = 1;
            return;
        }
        r->keys = p;
        r->keys_cap = cap;
    }
    r->off[r->n] = r->keys_len;
    r->hash[r->n++] = hash;
    memcpy(r->keys + r->keys_len, cfg->ns, cfg->nslen);
    r->keys[r->keys_len + cfg->nslen] = ':';
    memcpy(r->keys + r->keys_len + cfg->nslen + 1, key, keylen);
    r->keys_len += need;
}

/* Key i of the pass, its full key built already. */
static strata__key key_at(const strata__l1_renewer *r, size_t i)
{
    strata__key k;
    size_t end = i + 1 < r->n ? r->off[i + 1] : r->keys_len, skip = r->c->cfg.nslen + 1;
    k.full = r->keys + r->off[i];
    k.fulllen = end - r->off[i];
    k.ptr = k.full + skip;
    k.len = k.fulllen - skip;
    k.hash = r->hash[i];
    return k;
}

/* Renews keys [from, from + n) of the pass; < 0 when the batch failed. */
static int renew_batch(strata__l1_renewer *r, size_t from, size_t n)
{
    strata_cache *c = r->c;
    strata__key k[BATCH];
    const char *full[BATCH];
    size_t lens[BATCH], i;
    uint64_t epochs[BATCH];
    strata__bytes outs[BATCH];
    strata__envelope envs[BATCH], *pe[BATCH];
    int rcs[BATCH], rc;
    int64_t now;
    for (i = 0; i < n; i++) {
        k[i] = key_at(r, from + i);
        full[i] = k[i].full;
        lens[i] = k[i].fulllen;
        epochs[i] = strata__l1_epoch(c->l1, &k[i]); /* before the send: a change during the batch wins */
    }
    if ((rc = strata__breaker_allow(c)) < 0)
        return rc;
    memset(outs, 0, n * sizeof outs[0]);
    now = strata__now_wall_ms(); /* the read is no older than this */
    rc = strata__backend_result(c, c->backend->ops->get_many(c->backend, n, full, lens, outs, rcs));
    STRATA__COUNT(c, l1_renew_batches);
    if (rc == 0) {
        for (i = 0; i < n; i++)
            pe[i] = rcs[i] == 0 && strata__decode_stored(c, outs[i].data, outs[i].len, &envs[i]) == 0 ? &envs[i]
                                                                                                  : NULL;
        if ((rc = strata__tags_verify(c, n, pe, now)) >= 0) {
            rc = 0;
            for (i = 0; i < n; i++)
                if (strata__l1_renew_envelope(c, &k[i], pe[i], now, epochs[i]))
                    STRATA__COUNT(c, l1_renewals);
        }
    }
    for (i = 0; i < n; i++)
        strata__bytes_free(&outs[i]);
    return rc;
}

static void pass(strata__l1_renewer *r, int64_t lead_ms)
{
    strata_cache *c = r->c;
    unsigned int s;
    size_t i;
    int64_t now;
    if (c->coherence && !strata__coherence_link_up(c))
        return; /* L1 serves nothing now; the link's return flushes it anyway */
    now = strata__now_wall_ms();
    r->n = r->keys_len = 0;
    r->full = 0;
    for (s = 0; s < STRATA__L1_SHARDS; s++)
        strata__l1_due(c->l1, s, now, now + lead_ms, collect, r);
    for (i = 0; i < r->n && !strata__atomic_load(&r->stopping); i += BATCH)
        if (renew_batch(r, i, r->n - i < BATCH ? r->n - i : BATCH) < 0)
            break; /* the backend is failing: the rest expire as without renewal */
}

static void *renew_main(void *arg)
{
    strata__l1_renewer *r = arg;
    int64_t ttl = r->c->cfg.opts.l1_ttl_ms;
    int64_t period = ttl / 10 < 10 ? 10 : ttl / 10 > 1000 ? 1000 : ttl / 10;
    /* due early enough for a pass to come round and its batch to return
     * before the hit path's precise-clock margin, but within the second
     * half of an entry's time, so a hot entry is re-read at most twice per
     * l1_ttl_ms */
    int64_t lead = 2 * period + r->c->cfg.opts.timeout_ms + STRATA__COARSE_SLACK_MS;
    if (lead > ttl / 2)
        lead = ttl / 2;
    strata__mutex_lock(&r->lock);
    while (!r->stopping) {
        strata__cond_wait_until(&r->cond, &r->lock, strata__now_mono_ms() + period);
        if (r->stopping)
            break;
        strata__mutex_unlock(&r->lock);
        pass(r, lead);
        strata__mutex_lock(&r->lock);
    }
    strata__mutex_unlock(&r->lock);
    return NULL;
}

static int start(strata_cache *c, strata__l1_renewer *inherited)
{
    strata__l1_renewer *r = calloc(1, sizeof *r);
    if (r == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory starting L1 renewal");
    r->c = c;
    r->gen = r->restart_gen = strata__fork_generation();
    r->inherited = inherited;
    strata__mutex_init(&r->lock);
    strata__cond_init(&r->cond);
    if (strata__thread_start(&r->thread, renew_main, r) != 0) {
        strata__cond_destroy(&r->cond);
        strata__mutex_destroy(&r->lock);
        free(r);
        return strata__error(STRATA_ENOMEM, "cannot start the L1 renewal thread");
    }
    strata__atomic_store(&c->renewer, r);
    return 0;
}

int strata__l1_renew_start(strata_cache *c)
{
    if (c->l1 == NULL || !c->cfg.l1_renew || c->cfg.io_host || c->cfg.scheme == STRATA__SCHEME_MEMORY)
        return 0; /* memory:// has nothing to renew; io=host runs no threads */
    return start(c, NULL);
}

static void free_chain(strata__l1_renewer *r)
{
    while (r) { /* a parent's: its lock may be held by a thread that is not here, so only freed */
        strata__l1_renewer *next = r->inherited;
        free(r->keys);
        free(r->off);
        free(r->hash);
        free(r);
        r = next;
    }
}

void strata__l1_renew_stop(strata_cache *c)
{
    strata__l1_renewer *r = c->renewer;
    if (r == NULL)
        return;
    if (r->gen == strata__fork_generation()) {
        strata__mutex_lock(&r->lock);
        strata__atomic_store(&r->stopping, 1);
        strata__cond_broadcast(&r->cond);
        strata__mutex_unlock(&r->lock);
        strata__thread_join(r->thread);
        strata__cond_destroy(&r->cond);
        strata__mutex_destroy(&r->lock);
        free_chain(r->inherited);
        r->inherited = NULL;
    }
    free_chain(r);
    c->renewer = NULL;
}

void strata__l1_renew_after_fork(strata_cache *c)
{
    strata__l1_renewer *r = strata__atomic_load(&c->renewer);
    unsigned int gen = strata__fork_generation(), seen;
    if (r == NULL || r->gen == gen)
        return;
    seen = strata__atomic_load(&r->restart_gen);
    if (seen == gen || !strata__atomic_cas(&r->restart_gen, &seen, gen))
        return; /* another thread of this child is at it */
    if (start(c, r) < 0)
        strata__atomic_store(&r->restart_gen, seen); /* a later fill tries again */
}
