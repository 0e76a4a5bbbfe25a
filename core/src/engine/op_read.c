/*
 * The read sequences as resumable operations: lookup (L1, read, decide,
 * lease + re-check in one round trip, stamp, fill) and get_many. The
 * decisions are the blocking API's (lookup.c, ops.c): the same freshness
 * verdicts, counters and L1 rules, with the I/O handed to the driver.
 */
#include "op.h"
#include "error.h"
#include "policy/freshness.h"

#include <stdlib.h>
#include <string.h>

enum { S_READ = 1, S_EARLY, S_STALE, S_MISS, S_RECHECK, S_RELEASE, S_FILL, S_ABANDON };

static int begin_lookup(strata_op *op);
static int after_read(strata_op *op, int rc);
static int after_recheck(strata_op *op, int rc);

/* ---- tag versions (the I/O half of tags.c's versions()) ---- */

void strata__op_tags_free(strata__op_tags *t)
{
    if (t->names != t->in_names) {
        free(t->names);
        free(t->lens);
        free(t->versions);
        free(t->missing);
        free(t->absent);
    }
    t->names = NULL;
    t->lens = NULL;
    t->versions = NULL;
    t->missing = t->absent = NULL;
    t->n = t->nmissing = t->nabsent = 0;
    t->creating = t->refetched = 0;
}

int strata__op_tags_alloc(strata__op_tags *t, size_t n)
{
    strata__op_tags_free(t);
    t->n = n;
    if (n <= STRATA__OP_TAGS_INLINE) { /* in the op: no allocation */
        memset(t->in_names, 0, sizeof t->in_names);
        memset(t->in_lens, 0, sizeof t->in_lens);
        memset(t->in_versions, 0, sizeof t->in_versions);
        t->names = t->in_names;
        t->lens = t->in_lens;
        t->versions = t->in_versions;
        t->missing = t->in_missing;
        t->absent = t->in_absent;
        return 0;
    }
    t->names = calloc(n, sizeof *t->names);
    t->lens = calloc(n, sizeof *t->lens);
    t->versions = calloc(n, sizeof *t->versions);
    t->missing = calloc(n, sizeof *t->missing);
    t->absent = calloc(n, sizeof *t->absent);
    if (!t->names || !t->lens || !t->versions || !t->missing || !t->absent)
        return strata__error(STRATA_ENOMEM, "out of memory checking %zu tags", n);
    return 0;
}

static int tags_failed(strata_op *op, int code)
{
    if (op->kind == STRATA__OP_GET_MANY)
        return strata__op_finish(op, code);
    if (op->state == S_READ)
        return after_read(op, code);
    if (op->state == S_RECHECK)
        return after_recheck(op, code);
    return strata__op_finish(op, code);
}

static int tags_created(strata_op *op)
{
    strata__op_tags *t = &op->tags;
    size_t i;
    int rc;
    for (i = 0; i < t->nabsent; i++) {
        int64_t v = 0;
        size_t k = t->absent[i];
        rc = strata__backend_result(op->c, strata__rp_counter(op->who, op->rs.r + 2 * i, &v));
        if (rc < 0)
            return tags_failed(op, rc);
        t->versions[k] = (uint64_t)v;
        strata__tags_remember(op->c, t->names[k], t->lens[k], (uint64_t)v, 0);
    }
    return op->after_tags(op);
}

static int tags_read(strata_op *op)
{
    strata__op_tags *t = &op->tags;
    const redisReply *r = op->rs.r[0];
    size_t i;
    int rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != t->nmissing)
        return tags_failed(op, strata__backend_result(op->c, strata__rp_fail(op->who, r, "MGET of tag versions")));
    strata__backend_result(op->c, 0);
    strata__redis_req_reset(&op->req);
    t->nabsent = 0;
    for (i = 0; i < t->nmissing; i++) {
        const redisReply *e = r->element[i];
        size_t k = t->missing[i];
        if (e->type == REDIS_REPLY_STRING && strata__tags_parse_version(e->str, e->len, &t->versions[k]) == 0) {
            strata__tags_remember(op->c, t->names[k], t->lens[k], t->versions[k], 0);
        } else if (e->type == REDIS_REPLY_NIL && t->lens[k] == 0) {
            t->versions[k] = 0; /* never cleared: entries carry no stamp */
            strata__tags_remember(op->c, "", 0, 0, 0);
        } else if (e->type == REDIS_REPLY_NIL) {
            char key[STRATA__TAG_KEYBUF];
            size_t klen = strata__tags_key(op->c, t->names[k], t->lens[k], key);
            t->absent[t->nabsent++] = k;
            if ((rc = strata__rq_counter(&op->req, key, klen, strata__tags_fresh_version(), 0)) < 0)
                return strata__op_finish(op, rc);
        } else {
            char shown[80];
            return tags_failed(op, strata__error(STRATA_EBACKEND, "tag counter for \"%s\" holds a non-numeric value",
                                                 strata__key_for_message(t->names[k], t->lens[k], shown,
                                                                         sizeof shown)));
        }
    }
    if (t->nabsent == 0)
        return op->after_tags(op);
    return strata__op_exchange(op, tags_created, tags_failed);
}

int strata__op_tags_start(strata_op *op, int (*after)(strata_op *))
{
    strata__op_tags *t = &op->tags;
    char *keymem;
    const char **keys;
    size_t *klens, i;
    int rc;
    op->after_tags = after;
    t->nmissing = 0;
    for (i = 0; i < t->n; i++)
        if (!strata__tags_cached(op->c, t->names[i], t->lens[i], &t->versions[i]))
            t->missing[t->nmissing++] = i;
    if (t->nmissing == 0)
        return after(op);
    if ((rc = strata__breaker_allow(op->c)) < 0)
        return tags_failed(op, rc);
    keymem = malloc(t->nmissing * STRATA__TAG_KEYBUF);
    keys = malloc(t->nmissing * sizeof *keys);
    klens = malloc(t->nmissing * sizeof *klens);
    rc = keymem && keys && klens ? 0 : strata__error(STRATA_ENOMEM, "out of memory reading tag versions");
    for (i = 0; rc == 0 && i < t->nmissing; i++) {
        keys[i] = keymem + i * STRATA__TAG_KEYBUF;
        klens[i] = strata__tags_key(op->c, t->names[t->missing[i]], t->lens[t->missing[i]],
                                    keymem + i * STRATA__TAG_KEYBUF);
    }
    strata__redis_req_reset(&op->req);
    if (rc == 0)
        rc = strata__rq_mget(&op->req, t->nmissing, keys, klens);
    free(keymem);
    free((void *)keys);
    free(klens);
    if (rc < 0)
        return strata__op_finish(op, rc);
    STRATA__COUNT(op->c, tag_fetches);
    return strata__op_exchange(op, tags_read, tags_failed);
}

/* Collects the tag names of n envelopes (NULL skipped) into op->tags, then
 * the namespace generation (name "", the last entry: strata_clear outdates
 * every older entry); *total = 0 when there is no envelope. */
int strata__op_tags_of(strata_op *op, size_t n, strata__envelope *const *envs, size_t *total)
{
    size_t i, j, k = 0;
    int rc, any = 0;
    *total = 0;
    for (i = 0; i < n; i++)
        if (envs[i]) {
            any = 1;
            for (j = 0; j < envs[i]->ntags; j++)
                *total += envs[i]->tags[j].len > 0; /* a namespace stamp is checked apart */
        }
    if (!any)
        return 0;
    if ((rc = strata__op_tags_alloc(&op->tags, *total + 1)) < 0)
        return rc;
    for (i = 0; i < n; i++)
        for (j = 0; envs[i] && j < envs[i]->ntags; j++)
            if (envs[i]->tags[j].len > 0) {
                op->tags.names[k] = envs[i]->tags[j].name;
                op->tags.lens[k++] = envs[i]->tags[j].len;
            }
    op->tags.names[k] = "";
    op->tags.lens[k] = 0;
    *total = k + 1;
    return 0;
}

/* ---- lookup ---- */

static int send_get(strata_op *op, int (*done)(strata_op *), int (*failed)(strata_op *, int))
{
    int rc;
    strata__redis_req_reset(&op->req);
    if ((rc = strata__rq_get(&op->req, op->fk, op->fklen)) < 0)
        return strata__op_finish(op, rc);
    return strata__op_exchange_get(op, done, failed);
}

static int serve_read(strata_op *op)
{
    strata__envelope *pe = &op->env;
    int rc;
    if (op->tags.n > 0 && !op->tags.refetched &&
        strata__tags_forget_behind(op->c, 1, &pe, op->tags.versions, op->tags.versions[op->tags.n - 1]) > 0) {
        op->tags.refetched = 1; /* a cached version older than a stamp: read it anew, once */
        return strata__op_tags_start(op, serve_read);
    }
    if (op->tags.n > 0)
        strata__tags_apply(op->c, 1, &pe, op->tags.versions, op->tags.versions[op->tags.n - 1], op->now_ms, 1);
    rc = strata__serve_envelope_ref(op->c, &op->k, &op->env, op->now_ms, op->epoch, &op->value);
    if (rc == STRATA_OK || rc == STRATA_NEGATIVE || rc == STRATA_HIT_STALE) {
        strata__op_meta_env(&op->meta, &op->env);
        op->has_meta = 1;
    }
    return op->state == S_RECHECK ? after_recheck(op, rc) : after_read(op, rc);
}

/* The GET's reply (read or re-check): decoded, tag-checked, served. */
static int got_value(strata_op *op, int rc)
{
    size_t total;
    if (rc == 0 && strata__env_decode(op->raw.data, op->raw.len, &op->env) == 0) {
        if ((rc = strata__op_tags_of(op, 1, (strata__envelope *const[]){&op->env}, &total)) < 0)
            return strata__op_finish(op, rc);
        if (total > 0)
            return strata__op_tags_start(op, serve_read);
        op->tags.n = 0;
        return serve_read(op);
    }
    if (rc == 0)
        rc = STRATA_MISS; /* foreign or corrupt bytes: not ours, a miss */
    return op->state == S_RECHECK ? after_recheck(op, rc) : after_read(op, rc);
}

static int read_done(strata_op *op)
{
    return got_value(op, strata__backend_result(op->c, strata__replies_get(&op->rs, op->who, &op->raw)));
}

static int read_failed(strata_op *op, int code)
{
    return after_read(op, code);
}

static int lease_done(strata_op *op);
static int lease_failed(strata_op *op, int code);
static int lead(strata_op *op, int rc);
static int wait_or_give_up(strata_op *op, int64_t wait_ms);

static int take_lease(strata_op *op, int state)
{
    int rc;
    op->state = state;
    op->token = strata__random_u64() | 1;
    strata__redis_req_reset(&op->req);
    rc = strata__rq_lease_take(&op->req, op->lk, op->lklen, op->token, op->c->cfg.opts.lease_ttl_ms);
    /* After a miss the re-check rides in the same round trip: it runs after
     * the SET NX on the server, so a winner sees any fill that preceded it. */
    if (rc == 0 && state == S_MISS)
        rc = strata__rq_get(&op->req, op->fk, op->fklen);
    if (rc < 0)
        return strata__op_finish(op, rc);
    return strata__op_exchange(op, lease_done, lease_failed);
}

static int after_read(strata_op *op, int rc)
{
    strata_cache *c = op->c;
    if (strata__is_outage(rc) && c->l1 &&
        strata__l1_get_stale(c->l1, &op->k, op->now_ms, &op->value) == 0) {
        /* Stale-if-error: the last value this process saw, within its stale window. */
        STRATA__COUNT(c, stale_hits);
        op->raw.len = 0;
        strata__op_meta_l1(&op->meta, &op->value, op->now_ms);
        op->has_meta = 1;
        rc = STRATA_HIT_STALE;
    } else if (rc == STRATA_MISS) {
        STRATA__COUNT(c, misses);
    }
    if (op->get_t0_ns) {
        strata__hist_record(&c->metrics.get, strata__now_mono_ns() - op->get_t0_ns);
        op->get_t0_ns = 0;
    }
    op->read_rc = rc;
    if (!op->lease)
        return strata__op_finish(op, rc);
    if (rc == STRATA_OK && op->value.level == STRATA_LEVEL_BACKEND && c->cfg.opts.xfetch_beta > 0 &&
        strata__freshness(strata__now_wall_ms(), op->env.fresh_until_ms, op->env.stale_until_ms, op->env.cost_ms,
                          c->cfg.opts.xfetch_beta,
                          strata__xfetch_draw(strata__process_seed(), op->key, op->keylen, op->env.fresh_until_ms)) ==
            STRATA__EARLY_REFRESH)
        return take_lease(op, S_EARLY); /* XFetch picked this caller; the lease keeps it to one */
    if (rc == STRATA_HIT_STALE && op->raw.len > 0)
        return take_lease(op, S_STALE);
    if (rc == STRATA_MISS)
        return take_lease(op, S_MISS);
    return strata__op_finish(op, rc);
}

static int stamped(strata_op *op)
{
    strata__tagstamp *s;
    size_t i, total = 0, at = 0;
    op->ns = op->tags.versions[op->tags.n - 1]; /* the fill stamps the generation of now */
    if (op->tags.n == 1)
        return strata__op_finish(op, op->read_rc);
    for (i = 0; i + 1 < op->tags.n; i++)
        total += op->tags.lens[i];
    if ((s = malloc(sizeof *s + total)) == NULL)
        return strata__op_finish(op, strata__error(STRATA_ENOMEM, "out of memory for %zu tags", op->tags.n));
    s->n = op->tags.n - 1;
    for (i = 0; i < s->n; i++) {
        memcpy(s->names + at, op->tags.names[i], op->tags.lens[i]);
        s->tags[i].name = s->names + at;
        s->tags[i].len = op->tags.lens[i];
        s->tags[i].version = op->tags.versions[i];
        at += op->tags.lens[i];
    }
    strata__tagstamp_free(op->stamp);
    op->stamp = s;
    return strata__op_finish(op, op->read_rc);
}

/* We hold the lease: the result, after the fill's stamps are taken. */
static int lead(strata_op *op, int rc)
{
    op->have_lease = 1;
    op->started_ns = strata__now_mono_ns();
    op->read_rc = rc;
    {
        /* the options' tags, then the namespace generation, read before the load */
        size_t i, at = 0;
        int r;
        if ((r = strata__op_tags_alloc(&op->tags, op->nstamp + 1)) < 0)
            return strata__op_finish(op, r);
        for (i = 0; i < op->nstamp; i++) {
            op->tags.names[i] = op->stamp_mem + at;
            op->tags.lens[i] = op->stamp_lens[i];
            at += op->stamp_lens[i];
        }
        op->tags.names[op->nstamp] = "";
        op->tags.lens[op->nstamp] = 0;
        op->state = 0;
        return strata__op_tags_start(op, stamped);
    }
}

static int wait_or_give_up(strata_op *op, int64_t wait_ms)
{
    strata_cache *c = op->c;
    int64_t now = strata__now_mono_ms(), nap;
    op->value.len = 0;
    op->value.level = STRATA_LEVEL_NONE;
    if (!op->wait) {
        op->value.wait_ms = wait_ms < 1 ? 1 : wait_ms;
        return strata__op_finish(op, STRATA_MISS_WAIT);
    }
    if (op->wait_deadline == 0) {
        op->wait_deadline = now + c->cfg.opts.lock_wait_ms;
        op->backoff = 2;
    }
    if (now >= op->wait_deadline) {
        if (c->cfg.opts.wait_policy == STRATA_WAIT_FAIL)
            return strata__op_finish(op, strata__error(STRATA_ETIMEOUT, "waited %lld ms for another loader of this key",
                                                       (long long)c->cfg.opts.lock_wait_ms));
        return strata__op_finish(op, STRATA_MISS); /* load without the lease; the holder's fill stays authoritative */
    }
    nap = op->backoff < wait_ms ? op->backoff : wait_ms;
    if (nap > op->wait_deadline - now)
        nap = op->wait_deadline - now;
    op->backoff = op->backoff * 2 > 50 ? 50 : op->backoff * 2;
    op->wait_ms = nap < 1 ? 1 : nap;
    op->on_replies = begin_lookup; /* after the sleep: the whole lookup again */
    return 0;
}

/* The lease is ours (won, or taken over): the result for each reason we
 * wanted it; after a miss, recheck is the GET that rode along. */
static int lease_won(strata_op *op, const redisReply *recheck)
{
    strata_cache *c = op->c;
    STRATA__COUNT(c, leases_won);
    switch (op->state) {
    case S_EARLY:
        STRATA__COUNT(c, early_refreshes);
        return lead(op, STRATA_HIT_REFRESH);
    case S_STALE:
        return lead(op, STRATA_HIT_REFRESH);
    default: /* S_MISS */
        op->have_lease = 1;
        op->state = S_RECHECK;
        op->now_ms = strata__now_wall_ms();
        op->raw.len = 0;
        return got_value(op, strata__backend_result(c, strata__rp_get(op->who, recheck, &op->raw)));
    }
}

/* Another caller holds it (or an error): the result for each reason. */
static int lease_lost(strata_op *op, int rc, int64_t wait_ms)
{
    if (rc == STRATA_MISS_WAIT)
        STRATA__COUNT(op->c, waits);
    if (op->state == S_EARLY)
        return strata__op_finish(op, STRATA_OK);
    if (op->state == S_STALE)
        return strata__op_finish(op, STRATA_HIT_STALE);
    if (rc == STRATA_MISS_WAIT)
        return wait_or_give_up(op, wait_ms);
    return strata__op_finish(op, rc);
}

static int taken_over(strata_op *op);

static int send_takeover(strata_op *op)
{
    int rc;
    strata__redis_req_reset(&op->req);
    rc = strata__rq_lease_takeover(&op->req, op->use_sha, op->lk, op->lklen, op->token, op->c->cfg.opts.lease_ttl_ms,
                                   op->val ? op->val : "", op->vallen);
    if (rc == 0 && op->state == S_MISS)
        rc = strata__rq_get(&op->req, op->fk, op->fklen);
    if (rc < 0)
        return strata__op_finish(op, rc);
    return strata__op_exchange(op, taken_over, lease_failed);
}

static int taken_over(strata_op *op)
{
    int64_t wait_ms = 0;
    int rc;
    if (strata__rp_is_noscript(op->rs.r[0]) && op->use_sha) {
        op->use_sha = 0;
        return send_takeover(op);
    }
    free(op->val); /* the held value is spent */
    op->val = NULL;
    op->vallen = 0;
    rc = strata__backend_result(op->c, strata__rp_lease_takeover(op->who, op->rs.r[0], &wait_ms));
    if (rc == 0)
        return lease_won(op, op->state == S_MISS ? op->rs.r[1] : NULL);
    return lease_lost(op, rc, wait_ms);
}

static int lease_done(strata_op *op)
{
    int64_t wait_ms = 0;
    const char *held = "";
    size_t heldlen = 0;
    int rc = strata__backend_result(op->c, strata__rp_lease_take(op->who, op->rs.r, &wait_ms, &held, &heldlen));
    if (rc == 0)
        return lease_won(op, op->state == S_MISS ? op->rs.r[STRATA__LEASE_TAKE_REPLIES] : NULL);
    if (rc == STRATA__LEASE_BROKEN) {
        /* A holder that is no lease of ours: take it over while it holds what we saw. */
        free(op->val);
        op->vallen = 0;
        if ((op->val = malloc(heldlen ? heldlen : 1)) == NULL)
            return strata__op_finish(op, strata__error(STRATA_ENOMEM, "out of memory"));
        memcpy(op->val, held, heldlen);
        op->vallen = heldlen;
        op->use_sha = 1;
        return send_takeover(op);
    }
    return lease_lost(op, rc, wait_ms);
}

static int lease_failed(strata_op *op, int code)
{
    if (op->state == S_EARLY)
        return strata__op_finish(op, STRATA_OK);
    if (op->state == S_STALE)
        return strata__op_finish(op, STRATA_HIT_STALE);
    return strata__op_finish(op, code);
}

static int released(strata_op *op);
static int release_failed(strata_op *op, int code);

static int send_release(strata_op *op)
{
    int rc;
    strata__redis_req_reset(&op->req);
    if ((rc = strata__rq_lease_release(&op->req, op->use_sha, op->lk, op->lklen, op->token)) < 0)
        return strata__op_finish(op, rc);
    return strata__op_exchange(op, released, release_failed);
}

static int released(strata_op *op)
{
    int rc;
    if (strata__rp_is_noscript(op->rs.r[0]) && op->use_sha) {
        op->use_sha = 0; /* first use on this server, or after a restart / SCRIPT FLUSH */
        return send_release(op);
    }
    rc = strata__backend_result(op->c, strata__rp_lease_release(op->who, op->rs.r[0]));
    op->have_lease = 0;
    if (op->state == S_ABANDON)
        return strata__op_finish(op, rc < 0 ? rc : 0);
    return strata__op_finish(op, op->read_rc); /* a re-check hit: the hit is the result */
}

static int release_failed(strata_op *op, int code)
{
    op->have_lease = 0; /* unknown: it expires by itself */
    return strata__op_finish(op, op->state == S_ABANDON ? code : op->read_rc);
}

/* The re-check (lookup.c's recheck): a leader that filled and released between
 * our miss and our lease must not be loaded over. */
static int after_recheck(strata_op *op, int rc)
{
    if (rc == STRATA_OK || rc == STRATA_NEGATIVE) {
        op->read_rc = rc;
        op->state = S_RELEASE;
        return send_release(op);
    }
    if (rc == STRATA_HIT_STALE)
        return lead(op, STRATA_HIT_REFRESH); /* ours to refresh, with the stale value in hand */
    op->value.len = 0;
    op->value.level = STRATA_LEVEL_NONE;
    return lead(op, STRATA_MISS_LEAD); /* still absent, or unreadable now: the holder loads */
}

static int begin_lookup(strata_op *op)
{
    strata_cache *c = op->c;
    int rc;
    op->state = S_READ;
    op->now_ms = strata__now_wall_ms();
    op->value.wait_ms = 0;
    op->tags.n = 0;
    op->has_meta = 0;
    op->raw.len = 0;
    op->value.data = NULL; /* it may point into raw (a served envelope) */
    op->value.len = 0;
    strata__note_read(c, &op->k);
    if (c->l1) {
        rc = strata__l1_get(c->l1, &op->k, op->now_ms, &op->value);
        if (rc != STRATA_MISS) {
            if (rc >= 0) {
                strata__op_meta_l1(&op->meta, &op->value, op->now_ms);
                op->has_meta = 1;
                STRATA__COUNT(c, l1_hits);
                if (rc == STRATA_NEGATIVE)
                    STRATA__COUNT(c, negative_hits);
            }
            return strata__op_finish(op, rc);
        }
        STRATA__COUNT(c, l1_misses);
        op->epoch = strata__l1_epoch(c->l1, &op->k);
    }
    op->get_t0_ns = strata__now_mono_ns();
    if ((rc = strata__breaker_allow(c)) < 0)
        return after_read(op, rc);
    return send_get(op, read_done, read_failed);
}

int strata_op_lookup(strata_op **out, strata_cache *c, const char *key, size_t keylen, const strata_op_options *opts)
{
    strata_op *op;
    int rc;
    if (out != NULL)
        *out = NULL;
    if ((rc = strata__check_key(c, key, keylen)) < 0)
        return rc;
    if (opts != NULL && opts->ntags > 0 && (rc = strata__tags_check(opts->tags, opts->taglens, opts->ntags)) < 0)
        return rc;
    if ((rc = strata__op_new(&op, c, STRATA__OP_LOOKUP, key, keylen)) < 0)
        return rc;
    if ((rc = strata__op_options(op, opts)) < 0) {
        strata_op_free(op);
        return rc;
    }
    if (opts != NULL && opts->ntags > 0) {
        /* The fill's stamps: names copied now, versions read when we lead. */
        size_t i, total = 0, at = 0;
        for (i = 0; i < opts->ntags; i++)
            total += opts->taglens[i];
        op->stamp_mem = malloc(total ? total : 1);
        op->stamp_lens = malloc(opts->ntags * sizeof *op->stamp_lens);
        if (op->stamp_mem == NULL || op->stamp_lens == NULL) {
            strata_op_free(op);
            return strata__error(STRATA_ENOMEM, "out of memory for %zu tags", opts->ntags);
        }
        for (i = 0; i < opts->ntags; i++) {
            memcpy(op->stamp_mem + at, opts->tags[i], opts->taglens[i]);
            op->stamp_lens[i] = opts->taglens[i];
            at += opts->taglens[i];
        }
        op->nstamp = opts->ntags;
    }
    begin_lookup(op);
    *out = op;
    return 0;
}

/* ---- fill / abandon: continuations of a lookup that holds the lease ---- */

static int filled(strata_op *op);
static int fill_failed(strata_op *op, int code)
{
    op->have_lease = 0;
    return strata__op_finish(op, code);
}

static int send_fill(strata_op *op)
{
    int rc;
    strata__redis_req_reset(&op->req);
    if ((rc = strata__rq_lease_fill(&op->req, op->use_sha, op->fk, op->fklen, op->lk, op->lklen, op->token,
                                    op->enc.data, op->enc.len, op->backend_ttl)) < 0)
        return strata__op_finish(op, rc);
    return strata__op_exchange(op, filled, fill_failed);
}

static int filled(strata_op *op)
{
    strata_cache *c = op->c;
    int rc;
    if (strata__rp_is_noscript(op->rs.r[0]) && op->use_sha) {
        op->use_sha = 0;
        return send_fill(op);
    }
    rc = strata__backend_result(c, strata__rp_lease_fill(op->who, op->rs.r[0], op->fk, op->fklen));
    op->have_lease = 0;
    if (rc == 0) {
        op->has_meta = 1; /* the entry the fill stored (fill() noted it) */
        STRATA__COUNT(c, sets);
        if (op->stamp)
            strata__l1_store(c, &op->k, op->enc.data, op->enc.len, op->negative, 1, op->now_ms,
                             op->fresh_until, op->now_ms + op->backend_ttl, op->epoch);
        else
            strata__l1_store(c, &op->k, op->val ? op->val : "", op->vallen, op->negative, 0,
                             op->now_ms, op->fresh_until, op->now_ms + op->backend_ttl, op->epoch);
    } else if (rc == STRATA_ELEASE) {
        STRATA__COUNT(c, leases_lost);
    }
    return strata__op_finish(op, rc);
}

static int check_leading(strata_op *op)
{
    if (op == NULL)
        return strata__error(STRATA_EINVAL, "op is NULL");
    if (op->kind != STRATA__OP_LOOKUP || !op->done || !op->have_lease ||
        (op->rc != STRATA_MISS_LEAD && op->rc != STRATA_HIT_REFRESH))
        return strata__error(STRATA_EINVAL, "op holds no lease (fill and abandon follow a lookup that gave "
                             "STRATA_MISS_LEAD or STRATA_HIT_REFRESH)");
    return 0;
}

static int fill(strata_op *op, const char *val, size_t vallen, int negative, int64_t ttl_ms)
{
    strata_cache *c;
    int64_t cost_ms;
    int rc;
    if ((rc = check_leading(op)) < 0)
        return rc;
    c = op->c;
    if (val == NULL && vallen > 0)
        return strata__error(STRATA_EINVAL, "value is NULL with length %zu", vallen);
    if ((rc = strata__check_ttl(negative ? "neg_ttl_ms" : "ttl_ms", ttl_ms)) < 0) /* as strata_fill: FOREVER too */
        return rc;
    op->now_ms = strata__now_wall_ms();
    cost_ms = (int64_t)(strata__now_mono_ns() - op->started_ns) / 1000000;
    rc = strata__encode_value_ns(c, &op->enc, val ? val : "", vallen, negative, ttl_ms, -1, cost_ms,
                                 op->stamp ? op->stamp->tags : NULL, op->stamp ? op->stamp->n : 0, &op->ns, op->now_ms,
                                 &op->fresh_until, &op->backend_ttl);
    if (rc < 0)
        return rc;
    op->has_meta = 0;
    op->meta.flags = STRATA_META_EXACT | (op->stamp ? STRATA_META_TAGGED : 0);
    op->meta.fresh_until_ms = op->fresh_until;
    op->meta.stale_until_ms = op->now_ms + op->backend_ttl;
    op->meta.cost_ms = cost_ms < 0 ? 0 : cost_ms > 0xffffffffll ? 0xffffffffll : cost_ms;
    free(op->val);
    op->val = NULL;
    op->vallen = 0;
    if (!op->stamp && vallen > 0) { /* L1 keeps the raw value */
        if ((op->val = malloc(vallen)) == NULL)
            return strata__error(STRATA_ENOMEM, "out of memory");
        memcpy(op->val, val, vallen);
        op->vallen = vallen;
    }
    op->negative = negative;
    op->done = 0;
    op->state = S_FILL;
    send_fill(op);
    return 0;
}

int strata_op_fill(strata_op *op, const char *val, size_t vallen, int64_t ttl_ms)
{
    return fill(op, val, vallen, 0, ttl_ms);
}

int strata_op_fill_negative(strata_op *op, int64_t neg_ttl_ms)
{
    return fill(op, NULL, 0, 1, neg_ttl_ms);
}

int strata_op_abandon(strata_op *op)
{
    int rc;
    if ((rc = check_leading(op)) < 0)
        return rc;
    op->done = 0;
    op->state = S_ABANDON;
    send_release(op);
    return 0;
}

/* ---- get_many (ops.c's strata_get_many) ---- */

static int many_served(strata_op *op)
{
    strata_cache *c = op->c;
    size_t i;
    if (op->tags.n > 0 && !op->tags.refetched &&
        strata__tags_forget_behind(c, op->nb, op->decoded, op->tags.versions, op->tags.versions[op->tags.n - 1]) > 0) {
        op->tags.refetched = 1; /* as serve_read */
        return strata__op_tags_start(op, many_served);
    }
    if (op->tags.n > 0)
        strata__tags_apply(c, op->nb, op->decoded, op->tags.versions, op->tags.versions[op->tags.n - 1], op->now_ms,
                           1);
    for (i = 0; i < op->nb; i++) {
        size_t k = op->idx[i];
        int r = op->rcs[i];
        if (op->decoded[i]) {
            strata__key kk = strata__key_of(op->fks[i] + c->cfg.nslen + 1, op->fklens[i] - c->cfg.nslen - 1);
            /* by reference into raws[i] (the op's until it is freed): strata_op_item's copy is the one */
            r = strata__serve_envelope_ref(c, &kk, op->decoded[i], op->now_ms, op->epochs[i], &op->outs[k]);
        }
        else if (r == 0)
            r = STRATA_MISS;
        if (r == STRATA_MISS)
            STRATA__COUNT(c, misses);
        op->results[k] = r;
    }
    return strata__op_finish(op, 0);
}

static int many_failed(strata_op *op, int code);

static int many_read(strata_op *op)
{
    size_t i, total;
    int rc = strata__backend_result(op->c, strata__rp_mget(op->who, op->rs.r[0], op->nb, op->raws, op->rcs));
    if (rc < 0)
        return many_failed(op, rc);
    for (i = 0; i < op->nb; i++)
        if (op->rcs[i] == 0 && strata__env_decode(op->raws[i].data, op->raws[i].len, &op->envs[i]) == 0)
            op->decoded[i] = &op->envs[i];
    if ((rc = strata__op_tags_of(op, op->nb, op->decoded, &total)) < 0)
        return strata__op_finish(op, rc);
    if (total > 0)
        return strata__op_tags_start(op, many_served); /* all the stamps in one round trip at most */
    return many_served(op);
}

/* As strata_get_many: an outage serves stale from L1 what this process has. */
static int many_failed(strata_op *op, int code)
{
    size_t i;
    if (strata__is_outage(code)) {
        const char **keys = malloc((op->nb ? op->nb : 1) * sizeof *keys);
        size_t *lens = malloc((op->nb ? op->nb : 1) * sizeof *lens), *idx = malloc((op->nb ? op->nb : 1) * sizeof *idx);
        if (keys && lens && idx) {
            for (i = 0; i < op->nb; i++) { /* the batch's keys, indexed as the batch */
                keys[i] = op->fks[i] + op->c->cfg.nslen + 1;
                lens[i] = op->fklens[i] - op->c->cfg.nslen - 1;
                idx[i] = i;
            }
            {
                strata_value *outs = calloc(op->nb ? op->nb : 1, sizeof *outs);
                int *res = calloc(op->nb ? op->nb : 1, sizeof *res);
                if (outs && res) {
                    code = strata__get_many_stale(op->c, op->nb, idx, keys, lens, op->now_ms, outs, res, code);
                    for (i = 0; i < op->nb; i++) {
                        strata_value_dispose(&op->outs[op->idx[i]]);
                        op->outs[op->idx[i]] = outs[i];
                        op->results[op->idx[i]] = res[i];
                    }
                }
                free(outs);
                free(res);
            }
        }
        free((void *)keys);
        free(lens);
        free(idx);
    }
    return strata__op_finish(op, code);
}

int strata_op_get_many(strata_op **out, strata_cache *c, size_t n, const char *const *keys, const size_t *keylens,
                       const strata_op_options *opts)
{
    strata_op *op;
    size_t i;
    int rc;
    if (out != NULL)
        *out = NULL;
    if (c == NULL || (n > 0 && (keys == NULL || keylens == NULL)))
        return strata__error(STRATA_EINVAL, "%s is NULL", c == NULL ? "cache handle" : "an array argument");
    for (i = 0; i < n; i++)
        if ((rc = strata__check_key(c, keys[i], keylens[i])) < 0)
            return strata__error(rc, "key %zu: %s", i, strata_error_last());
    if ((rc = strata__op_new(&op, c, STRATA__OP_GET_MANY, NULL, 0)) < 0)
        return rc;
    if ((rc = strata__op_options(op, opts)) < 0) {
        strata_op_free(op);
        return rc;
    }
    op->n = n;
    op->outs = calloc(n ? n : 1, sizeof *op->outs);
    op->results = calloc(n ? n : 1, sizeof *op->results);
    op->fks = calloc(n ? n : 1, sizeof *op->fks);
    op->fklens = calloc(n ? n : 1, sizeof *op->fklens);
    op->idx = calloc(n ? n : 1, sizeof *op->idx);
    op->epochs = calloc(n ? n : 1, sizeof *op->epochs);
    op->raws = calloc(n ? n : 1, sizeof *op->raws);
    op->rcs = calloc(n ? n : 1, sizeof *op->rcs);
    op->envs = calloc(n ? n : 1, sizeof *op->envs);
    op->decoded = calloc(n ? n : 1, sizeof *op->decoded);
    if (!op->outs || !op->results || !op->fks || !op->fklens || !op->idx || !op->epochs || !op->raws || !op->rcs ||
        !op->envs || !op->decoded) {
        strata_op_free(op);
        return strata__error(STRATA_ENOMEM, "out of memory for get_many of %zu keys", n);
    }
    op->now_ms = strata__now_wall_ms();
    for (i = 0; i < n; i++) { /* L1 first; the rest in one MGET */
        strata__key kk = strata__key_of(keys[i], keylens[i]);
        op->results[i] = STRATA_MISS;
        strata__note_read(c, &kk);
        if (c->l1) {
            int r = strata__l1_get(c->l1, &kk, op->now_ms, &op->outs[i]);
            if (r != STRATA_MISS) {
                op->results[i] = r;
                if (r >= 0)
                    STRATA__COUNT(c, l1_hits);
                continue;
            }
            STRATA__COUNT(c, l1_misses);
            op->epochs[op->nb] = strata__l1_epoch(c->l1, &kk);
        }
        if ((op->fks[op->nb] = malloc(c->cfg.nslen + 1 + keylens[i])) == NULL) {
            strata_op_free(op);
            return strata__error(STRATA_ENOMEM, "out of memory for get_many of %zu keys", n);
        }
        op->fklens[op->nb] = (size_t)strata__full_key(c, keys[i], keylens[i], op->fks[op->nb]);
        op->idx[op->nb++] = i;
    }
    *out = op;
    if (op->nb == 0) {
        strata__op_finish(op, 0);
        return 0;
    }
    if ((rc = strata__breaker_allow(c)) < 0) {
        many_failed(op, rc);
        return 0;
    }
    if ((rc = strata__rq_mget(&op->req, op->nb, (const char *const *)op->fks, op->fklens)) < 0) {
        strata__op_finish(op, rc);
        return 0;
    }
    strata__op_exchange(op, many_read, many_failed);
    return 0;
}
