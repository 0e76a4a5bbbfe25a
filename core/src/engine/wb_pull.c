/*
 * The write-behind pull API: strata_wb_poll hands out a batch of distinct keys
 * (latest value each) from the pending table, filled from the redis stream
 * (new records, and other consumers' idle ones) or by the local queue;
 * strata_wb_ack / strata_wb_fail end it (acknowledge; or retry with backoff,
 * dead-letter after wb_max_attempts). The flusher threads use the same calls.
 */
#include "wb_state.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *consumer_name(strata__wb *wb)
{
    unsigned int gen = strata__fork_generation();
    if (wb->c->cfg.opts.wb_consumer)
        return wb->c->cfg.opts.wb_consumer;
    if (wb->consumer_gen != gen || wb->consumer[0] == '\0') {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(wb->consumer, sizeof wb->consumer, "%s:%ld:%08llx", host, (long)getpid(),
                 (unsigned long long)(strata__random_u64() & 0xffffffffull));
        wb->consumer_gen = gen;
    }
    return wb->consumer;
}

/* Stream mode: new records (and, now and then, other consumers' idle ones)
 * into the pending table. */
static int fetch(strata__wb *wb, size_t max)
{
    strata_cache *c = wb->c;
    strata__wb_record *recs = NULL;
    size_t n = 0, i;
    int64_t now = strata__now_mono_ms(), claim = 0;
    int rc;

    strata__mutex_lock(&wb->read_mu);
    if (now >= wb->next_claim_ms)
        claim = c->cfg.opts.wb_claim_ms;
    if ((rc = strata__breaker_allow(c)) == 0)
        rc = strata__backend_result(c, c->backend->ops->wb_read(c->backend, consumer_name(wb), max, claim,
                                                                wb->cursor, sizeof wb->cursor, &recs, &n));
    if (rc == 0 && claim) {
        /* a finished scan rests a while; an unfinished one continues next poll */
        int64_t rest = c->cfg.opts.wb_claim_ms / 4;
        wb->next_claim_ms = strcmp(wb->cursor, "0-0") == 0 ? now + (rest < 10 ? 10 : rest) : now;
    }
    strata__mutex_unlock(&wb->read_mu);
    if (rc < 0)
        return rc;
    strata__mutex_lock(&wb->mu);
    for (i = 0; i < n && rc >= 0; i++)
        rc = strata__wbq_add(&wb->q, recs[i].key.data, recs[i].key.len, recs[i].val.data, recs[i].val.len,
                             recs[i].enqueued_ms, recs[i].id, recs[i].token);
    strata__mutex_unlock(&wb->mu);
    strata__wb_records_free(recs, n);
    return rc < 0 ? rc : 0;
}

static void batch_free(strata_wb_batch *b)
{
    if (b == NULL)
        return;
    free(b->entries);
    free((void *)b->keys);
    free((void *)b->vals);
    free(b->keylens);
    free(b->vallens);
    free(b->enqueued);
    free(b->buf);
    free(b);
}

/* Copies the taken entries into a batch; called with mu held. */
static int batch_build(strata_cache *c, strata__wbq_entry **taken, size_t n, strata_wb_batch **out)
{
    strata_wb_batch *b = calloc(1, sizeof *b);
    size_t i, total = 0, off = 0;
    for (i = 0; i < n; i++)
        total += taken[i]->key.len + taken[i]->val.len + 2;
    if (b == NULL || (b->keys = malloc(n * sizeof *b->keys)) == NULL ||
        (b->vals = malloc(n * sizeof *b->vals)) == NULL || (b->keylens = malloc(n * sizeof *b->keylens)) == NULL ||
        (b->vallens = malloc(n * sizeof *b->vallens)) == NULL ||
        (b->enqueued = malloc(n * sizeof *b->enqueued)) == NULL || (b->buf = malloc(total)) == NULL) {
        batch_free(b);
        return strata__error(STRATA_ENOMEM, "out of memory for a write-behind batch");
    }
    b->c = c;
    b->n = n;
    b->entries = taken;
    for (i = 0; i < n; i++) {
        strata__wbq_entry *e = taken[i];
        memcpy(b->buf + off, e->key.data, e->key.len);
        b->buf[off + e->key.len] = '\0';
        b->keys[i] = b->buf + off;
        b->keylens[i] = e->key.len;
        off += e->key.len + 1;
        if (e->val.len)
            memcpy(b->buf + off, e->val.data, e->val.len);
        b->buf[off + e->val.len] = '\0';
        b->vals[i] = b->buf + off;
        b->vallens[i] = e->val.len;
        off += e->val.len + 1;
        b->enqueued[i] = e->enqueued_ms;
    }
    *out = b;
    return 0;
}

static void finish_entries(strata__wb *wb, strata__wbq_entry **entries, size_t n);

/* Stream mode: an entry whose latest write is not its key's latest journal
 * record (claimed late from a dead consumer, or the newer write is with
 * another consumer or already delivered) is superseded: it is acknowledged
 * without delivery, so an old value never overwrites a newer one at the
 * writer. Returns how many entries remain in the batch. */
static size_t drop_superseded(strata__wb *wb, strata_wb_batch *b)
{
    strata_cache *c = wb->c;
    uint64_t *latest = calloc(b->n, sizeof *latest);
    strata__wb_id *ids = NULL;
    size_t i, w, nids = 0, ndrop = 0;
    char *drop = calloc(b->n, 1);
    const char **dkeys = malloc(b->n * sizeof *dkeys);
    size_t *dlens = malloc(b->n * sizeof *dlens), *dcounts = malloc(b->n * sizeof *dcounts);

    if (latest == NULL || drop == NULL || dkeys == NULL || dlens == NULL || dcounts == NULL ||
        c->backend->ops->wb_latest(c->backend, b->n, b->keys, b->keylens, latest) != 0)
        goto out; /* unknown: deliver (at least once) */
    strata__mutex_lock(&wb->mu);
    for (i = 0; i < b->n; i++) {
        strata__wbq_entry *e = b->entries[i];
        if (latest[i] != 0 && e->token != 0 && latest[i] != e->token) {
            drop[i] = 1;
            ndrop++;
            nids += e->inflight;
        }
    }
    if (ndrop && (ids = malloc(nids * sizeof *ids)) != NULL) {
        for (i = 0, nids = 0, w = 0; i < b->n; i++) {
            if (drop[i]) {
                memcpy(ids + nids, b->entries[i]->ids, b->entries[i]->inflight * sizeof *ids);
                nids += b->entries[i]->inflight;
                dkeys[w] = b->keys[i];
                dlens[w] = b->keylens[i];
                dcounts[w++] = b->entries[i]->inflight;
            }
        }
    }
    strata__mutex_unlock(&wb->mu);
    if (ndrop == 0 || ids == NULL || c->backend->ops->wb_ack(c->backend, ndrop, dkeys, dlens, dcounts, ids) != 0)
        goto out;
    strata__mutex_lock(&wb->mu);
    for (i = 0, w = 0; i < b->n; i++) {
        if (drop[i]) {
            finish_entries(wb, &b->entries[i], 1);
            continue;
        }
        b->entries[w] = b->entries[i];
        b->keys[w] = b->keys[i];
        b->keylens[w] = b->keylens[i];
        b->vals[w] = b->vals[i];
        b->vallens[w] = b->vallens[i];
        b->enqueued[w] = b->enqueued[i];
        w++;
    }
    b->n = w;
    strata__atomic_add(&c->stats.wb_flushed, nids); /* coalesced into the newer write */
    strata__mutex_unlock(&wb->mu);
out:
    free(latest);
    free(drop);
    free(ids);
    free((void *)dkeys);
    free(dlens);
    free(dcounts);
    return b->n;
}

int strata_wb_poll(strata_cache *c, size_t max, strata_wb_batch **out)
{
    strata__wb *wb;
    strata__wbq_entry **taken;
    size_t n;
    int64_t deadline;
    int rc, tries;

    if (out == NULL)
        return strata__error(STRATA_EINVAL, "batch out-pointer is NULL");
    *out = NULL;
    if (c == NULL)
        return strata__error(STRATA_EINVAL, "cache handle is NULL");
    if (max == 0 || max > 100000)
        return strata__error(STRATA_EINVAL, "max must be 1-100000, got %zu", max);
    wb = c->wb;
    if ((rc = strata__wb_check_owner(wb)) < 0)
        return rc;
    strata__atomic_store(&wb->unpolled, 0);
    /* When a whole batch was superseded, read on: the stream may hold more
     * (bounded by the operation timeout, so a poll never runs unbounded). */
    deadline = strata__now_mono_ms() + c->cfg.opts.timeout_ms;
    for (tries = 0; tries == 0 || strata__now_mono_ms() < deadline; tries++) {
        if (wb->stream && (rc = fetch(wb, max)) < 0)
            return rc;
        if ((taken = malloc(max * sizeof *taken)) == NULL)
            return strata__error(STRATA_ENOMEM, "out of memory");
        strata__mutex_lock(&wb->mu);
        n = strata__wbq_take(&wb->q, max, strata__now_mono_ms(), taken);
        rc = n > 0 ? batch_build(c, taken, n, out) : 0;
        if (rc < 0) {
            size_t i;
            for (i = 0; i < n; i++)
                strata__wbq_retry(&wb->q, taken[i], 0);
        }
        strata__mutex_unlock(&wb->mu);
        if (n == 0 || rc < 0)
            free(taken);
        if (rc < 0)
            return rc;
        if (n == 0)
            return STRATA_MISS;
        if (!wb->stream || drop_superseded(wb, *out) > 0)
            return STRATA_OK;
        batch_free(*out); /* everything was superseded: look again */
        *out = NULL;
    }
    return STRATA_MISS;
}

size_t strata_wb_batch_count(const strata_wb_batch *b)
{
    return b ? b->n : 0;
}

int strata_wb_batch_item(const strata_wb_batch *b, size_t i, const char **key, size_t *keylen,
                         const char **val, size_t *vallen)
{
    if (b == NULL || key == NULL || keylen == NULL || val == NULL || vallen == NULL)
        return strata__error(STRATA_EINVAL, "%s is NULL", b == NULL ? "batch" : "an out-pointer");
    if (i >= b->n)
        return strata__error(STRATA_EINVAL, "item %zu is out of range (batch of %zu)", i, b->n);
    *key = b->keys[i];
    *keylen = b->keylens[i];
    *val = b->vals[i];
    *vallen = b->vallens[i];
    return 0;
}

int64_t strata_wb_batch_enqueued_ms(const strata_wb_batch *b, size_t i)
{
    return b && i < b->n ? b->enqueued[i] : 0;
}

/* The record ids the batch's entries cover, entry by entry (counts[i] of
 * entry i; counts may be NULL). */
static strata__wb_id *covered_ids(strata_wb_batch *b, size_t *count, size_t *counts)
{
    size_t i, n = 0;
    strata__wb_id *ids;
    for (i = 0; i < b->n; i++)
        n += b->entries[i]->inflight;
    if ((ids = malloc((n ? n : 1) * sizeof *ids)) == NULL)
        return NULL;
    for (i = 0, n = 0; i < b->n; i++) {
        memcpy(ids + n, b->entries[i]->ids, b->entries[i]->inflight * sizeof *ids);
        n += b->entries[i]->inflight;
        if (counts)
            counts[i] = b->entries[i]->inflight;
    }
    *count = n;
    return ids;
}

static void finish_entries(strata__wb *wb, strata__wbq_entry **entries, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        strata__wbq_done(&wb->q, entries[i]);
    if (wb->journal && wb->q.nrecords == 0)
        strata__journal_truncate(wb->journal); /* everything flushed: the log starts over */
    else
        strata__wb_maybe_compact(wb); /* acks grow the file too */
    strata__wb_backlog_changed(wb);
    strata__cond_broadcast(&wb->space);
}

int strata_wb_ack(strata_wb_batch *b)
{
    strata_cache *c;
    strata__wb *wb;
    strata__wb_id *ids;
    size_t n = 0, *counts;
    int rc = 0;

    if (b == NULL)
        return strata__error(STRATA_EINVAL, "batch is NULL");
    c = b->c;
    wb = c->wb;
    counts = malloc((b->n ? b->n : 1) * sizeof *counts);
    strata__mutex_lock(&wb->mu);
    ids = counts ? covered_ids(b, &n, counts) : NULL;
    strata__mutex_unlock(&wb->mu);
    if (ids == NULL) {
        rc = strata__error(STRATA_ENOMEM, "out of memory acknowledging a batch");
    } else if (wb->stream) {
        /* A failed ack only means a later re-delivery (at least once). */
        rc = strata__backend_result(c, c->backend->ops->wb_ack(c->backend, b->n, (const char *const *)b->keys,
                                                               b->keylens, counts, ids));
    }
    strata__mutex_lock(&wb->mu);
    if (wb->journal && ids)
        rc = strata__journal_ack(wb->journal, n, ids);
    strata__atomic_add(&c->stats.wb_flushed, n);
    finish_entries(wb, b->entries, b->n);
    strata__mutex_unlock(&wb->mu);
    free(ids);
    free(counts);
    batch_free(b);
    return rc;
}

static int64_t retry_delay(const strata_options *o, unsigned int attempts)
{
    int64_t d = o->wb_retry_ms;
    while (attempts-- > 1 && d < o->wb_retry_max_ms)
        d *= 2;
    return d < o->wb_retry_max_ms ? d : o->wb_retry_max_ms;
}

/* Moves one given-up entry to the dead letters; 0 or an error (then it stays). */
static int dead_letter(strata_wb_batch *b, size_t i, const char *message)
{
    strata_cache *c = b->c;
    strata__wb *wb = c->wb;
    strata__wbq_entry *e = b->entries[i];
    strata__wb_id *ids;
    size_t n;
    int rc = 0;
    strata__mutex_lock(&wb->mu); /* e->ids may grow meanwhile: copy the covered ones */
    n = e->inflight;
    if ((ids = malloc((n ? n : 1) * sizeof *ids)) != NULL)
        memcpy(ids, e->ids, n * sizeof *ids);
    strata__mutex_unlock(&wb->mu);
    if (ids == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory dead-lettering a record");
    if (wb->stream) {
        uint64_t trimmed = 0;
        rc = strata__backend_result(c, c->backend->ops->wb_dead(c->backend, b->keys[i], b->keylens[i], b->vals[i],
                                                                b->vallens[i], n, ids, e->attempts, message));
        /* housekeeping: a failed trim only leaves extra dead letters for the next one */
        if (rc == 0 && (c->cfg.wb_dead_max || c->cfg.wb_dead_max_age_ms) &&
            c->backend->ops->wb_dead_trim(c->backend, c->cfg.wb_dead_max, c->cfg.wb_dead_max_age_ms,
                                          strata__now_wall_ms(), &trimmed) == 0)
            strata__atomic_add(&c->stats.wb_dead_trimmed, trimmed);
    } else if (wb->journal) {
        strata__mutex_lock(&wb->mu);
        rc = strata__journal_dead(wb->journal, b->keys[i], b->keylens[i], b->vals[i], b->vallens[i], e->attempts,
                                  message, n, ids);
        strata__wb_journal_counters_changed(wb);
        strata__mutex_unlock(&wb->mu);
    }
    free(ids);
    return rc;
}

int strata_wb_fail(strata_wb_batch *b, const char *message)
{
    strata_cache *c;
    strata__wb *wb;
    const strata_options *o;
    int64_t now = strata__now_mono_ms();
    size_t i;
    int rc = 0;

    if (b == NULL)
        return strata__error(STRATA_EINVAL, "batch is NULL");
    if (message == NULL)
        message = "writer failed";
    c = b->c;
    wb = c->wb;
    o = &c->cfg.opts;
    for (i = 0; i < b->n; i++) {
        strata__wbq_entry *e = b->entries[i];
        unsigned int attempts = ++e->attempts; /* in flight: only this batch touches it */
        if (attempts >= o->wb_max_attempts) {
            int r = dead_letter(b, i, message);
            strata__mutex_lock(&wb->mu);
            if (r == 0) {
                strata__atomic_add(&c->stats.wb_dead, e->inflight);
                finish_entries(wb, &e, 1);
            } else {
                strata__wbq_retry(&wb->q, e, now + retry_delay(o, attempts));
                if (rc == 0)
                    rc = r;
            }
            strata__mutex_unlock(&wb->mu);
            continue;
        }
        strata__mutex_lock(&wb->mu);
        strata__wbq_retry(&wb->q, e, now + retry_delay(o, attempts));
        STRATA__COUNT(c, wb_retried);
        strata__mutex_unlock(&wb->mu);
    }
    batch_free(b);
    return rc;
}
