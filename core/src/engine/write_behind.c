/*
 * Write-behind: accept a write into the cache and a durable journal in one
 * step, deliver it later in batches (pull: strata_wb_poll/ack/fail; push: the
 * flusher threads on top of it). Two journals:
 *  - a backend stream (redis): the backend's wb_* entries; records are read
 *    through a consumer group into this process's pending table;
 *  - a local journal (memory, memcached): the pending table is the queue, and
 *    the journal file (optional) makes it survive a crash.
 * Either way the pending table coalesces writes per key and keeps retry state.
 */
#include "wb_state.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- lifetime --------------------------------------------------------- */

static int load_replayed(strata__wb *wb, strata__wb_record *recs, size_t n)
{
    size_t i;
    int rc = 0;
    for (i = 0; i < n && rc >= 0; i++)
        rc = strata__wbq_add(&wb->q, recs[i].key.data, recs[i].key.len, recs[i].val.data, recs[i].val.len,
                             recs[i].enqueued_ms, recs[i].id, recs[i].token);
    return rc < 0 ? rc : 0;
}

int strata__wb_new(strata__wb **out, strata_cache *c)
{
    const strata_options *o = &c->cfg.opts;
    strata__wb *wb;
    int rc;

    *out = NULL;
    if ((wb = calloc(1, sizeof *wb)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory for write-behind");
    wb->c = c;
    wb->stream = c->backend->ops->wb_append != NULL;
    wb->gen = strata__fork_generation();
    wb->next_seq = 1;
    snprintf(wb->cursor, sizeof wb->cursor, "0-0");
    if ((rc = strata__wbq_init(&wb->q)) < 0) {
        free(wb);
        return rc;
    }
    strata__mutex_init(&wb->mu);
    strata__mutex_init(&wb->read_mu);
    strata__cond_init(&wb->space);
    if (!wb->stream && o->wb_journal) {
        strata__wb_record *recs = NULL;
        size_t n = 0;
        strata__journal_limits lim;
        lim.compact_bytes = c->cfg.wb_journal_compact_bytes;
        lim.dead_max = c->cfg.wb_dead_max;
        lim.dead_max_age_ms = c->cfg.wb_dead_max_age_ms;
        rc = strata__journal_open(&wb->journal, o->wb_journal, o->wb_fsync, o->wb_interval_ms, &recs, &n,
                                  &wb->next_seq);
        if (rc == 0)
            rc = strata__journal_set_limits(wb->journal, &lim);
        if (rc == 0)
            rc = load_replayed(wb, recs, n);
        strata__wb_records_free(recs, n);
        c->stats.wb_backlog = wb->q.nrecords;
        if (wb->journal)
            strata__wb_journal_counters_changed(wb);
    }
    *out = wb; /* c->wb: the flusher threads use it from their first step */
    if (rc == 0 && o->wb_writer && o->wb_threads > 0)
        rc = strata__flusher_new(&wb->flusher, c, o->wb_threads, o->wb_interval_ms);
    if (rc < 0) {
        *out = NULL;
        strata__journal_close(wb->journal);
        strata__wbq_destroy(&wb->q);
        strata__cond_destroy(&wb->space);
        strata__mutex_destroy(&wb->read_mu);
        strata__mutex_destroy(&wb->mu);
        free(wb);
        return rc;
    }
    if (wb->journal && strata__journal_report(wb->journal)[0])
        strata__error(0, "%s", strata__journal_report(wb->journal)); /* success, but said */
    return 0;
}

void strata__wb_free(strata__wb *wb)
{
    if (wb == NULL)
        return;
    /* with a writer registered (threads or inline), deliver what is queued,
     * for at most wb_drain_ms; the rest stays journaled for the next start */
    if (wb->c->cfg.opts.wb_writer && wb->gen == strata__fork_generation() && wb->c->cfg.opts.wb_drain_ms > 0)
        strata_flush(wb->c, wb->c->cfg.opts.wb_drain_ms);
    strata__flusher_free(wb->flusher);
    strata__journal_close(wb->journal); /* what is left is replayed next time */
    strata__wbq_destroy(&wb->q);
    strata__cond_destroy(&wb->space);
    strata__mutex_destroy(&wb->read_mu);
    strata__mutex_destroy(&wb->mu);
    free(wb);
}

/* The local queue lives in the creating process: a forked child would append
 * to the same file and deliver the same records. */
int strata__wb_check_owner(strata__wb *wb)
{
    if (!wb->stream && wb->gen != strata__fork_generation())
        return strata__error(STRATA_ECLOSED, "write-behind on %s belongs to the process that created "
                             "the cache; open a new cache in this (forked) process",
                             wb->c->backend->ops->name);
    return 0;
}

void strata__wb_backlog_changed(strata__wb *wb)
{
    strata__atomic_store(&wb->c->stats.wb_backlog, wb->q.nrecords);
}

void strata__wb_journal_counters_changed(strata__wb *wb)
{
    strata__journal_counters jc;
    strata__journal_get_counters(wb->journal, &jc);
    strata__atomic_store(&wb->c->stats.wb_journal_skipped, jc.skipped_records);
    strata__atomic_store(&wb->c->stats.wb_dead_trimmed, jc.dead_trimmed);
}

/* Rewrites the journal from the pending table once it has grown past its
 * limit: one record per key (its latest value under its newest sequence),
 * so the file stays bounded even when the backlog never empties. Records
 * in flight stay: their ack names sequences the new file may not hold,
 * which replay ignores, or the newest one, which it honours. mu held. */
static int newer_seq_first(const void *a, const void *b)
{
    uint64_t x = ((const strata__wb_record *)a)->id.seq, y = ((const strata__wb_record *)b)->id.seq;
    return x < y ? -1 : x > y;
}

void strata__wb_maybe_compact(strata__wb *wb)
{
    strata__wbq_entry *e;
    strata__wb_record *recs;
    size_t n = 0, i;
    if (wb->journal == NULL || !strata__journal_wants_compaction(wb->journal))
        return;
    if ((recs = calloc(wb->q.nkeys ? wb->q.nkeys : 1, sizeof *recs)) == NULL)
        return; /* later, then */
    for (e = wb->q.head; e; e = e->next) {
        strata__wb_record *r = &recs[n++];
        r->id = e->ids[0];
        for (i = 1; i < e->nids; i++)
            if (e->ids[i].seq > r->id.seq)
                r->id = e->ids[i];
        r->key = e->key; /* borrowed */
        r->val = e->val;
        r->enqueued_ms = e->enqueued_ms;
    }
    qsort(recs, n, sizeof *recs, newer_seq_first);
    strata__journal_compact(wb->journal, recs, n); /* on failure the old file stays: still correct */
    free(recs);
}

/* ---- accepting writes --------------------------------------------------- */

typedef struct wb_write {
    char *fk;
    size_t fklen;
    strata__bytes env;
    int64_t fresh_until, backend_ttl;
    uint64_t epoch;
} wb_write;

/* The append returned: L1 takes the value written (ok) or drops the key. */
static void l1_after_write(strata_cache *c, const char *key, size_t keylen, const char *val, size_t vallen,
                           const wb_write *w, int64_t now, int ok)
{
    strata__key k = strata__key_of(key, keylen);
    strata__l1_wrote(c, &k, w->epoch, ok, val, vallen, 0, now, w->fresh_until, now + w->backend_ttl);
}

static int wake_flusher(strata__wb *wb, size_t n)
{
    unsigned int before = strata__atomic_add(&wb->unpolled, (unsigned int)n) - (unsigned int)n;
    unsigned int size = wb->c->cfg.opts.wb_batch_size;
    if (wb->flusher && before < size && before + n >= size)
        strata__flusher_wake(wb->flusher);
    return 0;
}

/* Backpressure on the stream: the length this process saw last (every append
 * reports it), confirmed with XLEN only when it says full. Waits up to
 * wb_block_ms when configured. 0 or STRATA_EBUSY. */
static int stream_room(strata__wb *wb, size_t n)
{
    strata_cache *c = wb->c;
    const strata_options *o = &c->cfg.opts;
    int64_t deadline = strata__now_mono_ms() + o->wb_block_ms, wait = 1;
    uint64_t backlog = strata__atomic_load(&c->stats.wb_backlog);
    int rc, known = strata__atomic_load(&wb->backlog_seen);
    while (!known || backlog + n > o->wb_max_backlog) {
        known = 1;
        if ((rc = strata__backend_result(c, c->backend->ops->wb_backlog(c->backend, &backlog))) < 0)
            return rc;
        strata__atomic_store(&c->stats.wb_backlog, backlog);
        strata__atomic_store(&wb->backlog_seen, 1);
        if (backlog + n <= o->wb_max_backlog)
            break;
        if (o->wb_block_ms == 0 || strata__now_mono_ms() >= deadline)
            return strata__error(STRATA_EBUSY, "write-behind backlog is at its limit (%llu records, "
                                 "wb_max_backlog=%llu%s)", (unsigned long long)backlog,
                                 (unsigned long long)o->wb_max_backlog, o->wb_block_ms ? ", waited wb_block_ms" : "");
        strata__sleep_ms(wait);
        wait = wait * 2 > 50 ? 50 : wait * 2;
    }
    return 0;
}

/* Redis: per item, SET + lease kill + XADD in one MULTI; all items pipelined. */
static int accept_stream(strata__wb *wb, size_t n, const char *const *keys, const size_t *keylens,
                         const char *const *vals, const size_t *vallens, wb_write *ws, int64_t now)
{
    strata_cache *c = wb->c;
    strata__wb_item *items;
    uint64_t backlog = 0;
    size_t i;
    int rc;

    if ((rc = stream_room(wb, n)) < 0)
        return rc;
    if ((items = calloc(n, sizeof *items)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory");
    for (i = 0; i < n; i++) {
        strata__wb_item *it = &items[i];
        it->fk = ws[i].fk; it->fklen = ws[i].fklen;
        it->env = ws[i].env.data; it->envlen = ws[i].env.len;
        it->ttl_ms = ws[i].backend_ttl;
        it->key = keys[i]; it->keylen = keylens[i];
        it->val = vals[i] ? vals[i] : ""; it->vallen = vallens[i];
    }
    rc = strata__backend_result(c, c->backend->ops->wb_append(c->backend, n, items, now, &backlog));
    for (i = 0; i < n; i++) /* reads in flight during the append may not refill L1 with older values */
        l1_after_write(c, keys[i], keylens[i], vals[i] ? vals[i] : "", vallens[i], &ws[i], now,
                       rc == 0 && items[i].rc == 0);
    if (backlog)
        strata__atomic_store(&c->stats.wb_backlog, backlog);
    for (i = 0; i < n; i++) {
        if (items[i].rc != 0)
            continue;
        STRATA__COUNT(c, wb_enqueued);
        STRATA__COUNT(c, sets);
    }
    free(items);
    if (rc == 0)
        wake_flusher(wb, n);
    return rc;
}

/* Memory/memcached: journal + queue first (the write is then accepted), then
 * the cache; a failed cache update invalidates instead. */
static int accept_local(strata__wb *wb, size_t n, const char *const *keys, const size_t *keylens,
                        const char *const *vals, const size_t *vallens, int64_t ttl_ms, int *results,
                        int64_t now)
{
    strata_cache *c = wb->c;
    int64_t deadline = strata__now_mono_ms() + c->cfg.opts.wb_block_ms;
    size_t i, accepted;
    char why[400];
    int rc = 0, worst = 0;

    strata__mutex_lock(&wb->mu);
    while (wb->q.nrecords + n > c->cfg.opts.wb_max_backlog) {
        if (c->cfg.opts.wb_block_ms == 0 || strata__cond_wait_until(&wb->space, &wb->mu, deadline) != 0) {
            if (wb->q.nrecords + n <= c->cfg.opts.wb_max_backlog)
                break;
            strata__mutex_unlock(&wb->mu);
            for (i = 0; i < n; i++)
                results[i] = STRATA_EBUSY;
            return strata__error(STRATA_EBUSY, "write-behind backlog is at its limit (%llu records, "
                                 "wb_max_backlog=%llu%s)", (unsigned long long)wb->q.nrecords,
                                 (unsigned long long)c->cfg.opts.wb_max_backlog,
                                 c->cfg.opts.wb_block_ms ? ", waited wb_block_ms" : "");
        }
    }
    for (i = 0; i < n && rc == 0; i++) {
        strata__wb_id id;
        id.ms = 0;
        id.seq = wb->next_seq;
        if (wb->journal)
            rc = strata__journal_put(wb->journal, id.seq, keys[i], keylens[i], vals[i], vallens[i], now);
        if (rc == 0)
            rc = strata__wbq_add(&wb->q, keys[i], keylens[i], vals[i], vallens[i], now, id, 0);
        if (rc >= 0) {
            rc = 0;
            wb->next_seq++;
            STRATA__COUNT(c, wb_enqueued);
        }
        results[i] = rc;
    }
    accepted = rc < 0 ? i - 1 : n;
    if (rc < 0)
        snprintf(why, sizeof why, "%s", strata_error_last());
    else
        strata__wb_maybe_compact(wb);
    strata__wb_backlog_changed(wb);
    strata__mutex_unlock(&wb->mu);
    if (accepted > 0)
        wake_flusher(wb, accepted);
    /* the accepted ones reach the writer: the cache must not keep their old
     * values (a failed update invalidates, and says so) */
    for (i = 0; i < accepted; i++) {
        int r = strata__update_or_invalidate(c, keys[i], keylens[i], vals[i], vallens[i], ttl_ms);
        results[i] = r;
        if (r < 0 && worst >= 0)
            worst = r;
        else if (r > 0 && worst == 0)
            worst = r;
    }
    if (rc < 0) {
        for (i = accepted; i < n; i++)
            results[i] = rc;
        return strata__error(rc, "%s", why);
    }
    return worst;
}

/* Prefixes the current message with the item number. */
static int item_error(int rc, size_t i)
{
    char msg[400];
    snprintf(msg, sizeof msg, "%s", strata_error_last()); /* the buffer is rewritten below */
    return strata__error(rc, "item %zu: %s", i, msg);
}

int strata_write_behind_many(strata_cache *c, size_t n, const char *const *keys, const size_t *keylens,
                             const char *const *vals, const size_t *vallens, int64_t ttl_ms)
{
    wb_write *ws = NULL;
    int *results = NULL, rc = 0;
    int64_t now = strata__now_wall_ms();
    size_t i;

    if (c == NULL || (n > 0 && (keys == NULL || keylens == NULL || vals == NULL || vallens == NULL)))
        return strata__error(STRATA_EINVAL, "%s is NULL", c == NULL ? "cache handle" : "an array argument");
    if ((rc = strata__check_ttl("ttl_ms", ttl_ms)) < 0)
        return rc;
    for (i = 0; i < n; i++) {
        if ((rc = strata__check_key(c, keys[i], keylens[i])) < 0)
            return item_error(rc, i);
        if (vals[i] == NULL && vallens[i] > 0)
            return strata__error(STRATA_EINVAL, "item %zu: value is NULL with length %zu", i, vallens[i]);
    }
    if (n == 0)
        return 0;
    if ((rc = strata__wb_check_owner(c->wb)) < 0)
        return rc;
    ws = calloc(n, sizeof *ws);
    results = calloc(n, sizeof *results);
    if (ws == NULL || results == NULL) {
        rc = strata__error(STRATA_ENOMEM, "out of memory");
        goto done;
    }
    /* Encode everything first: bad input (too big) changes nothing. */
    for (i = 0; i < n; i++) {
        rc = strata__encode_value(c, &ws[i].env, vals[i] ? vals[i] : "", vallens[i], 0, ttl_ms, -1, 0, now,
                                  &ws[i].fresh_until, &ws[i].backend_ttl);
        if (rc == 0 && (ws[i].fk = malloc(c->cfg.nslen + 1 + keylens[i])) == NULL)
            rc = strata__error(STRATA_ENOMEM, "out of memory");
        if (rc < 0) {
            rc = n > 1 ? item_error(rc, i) : rc;
            goto done;
        }
        ws[i].fklen = (size_t)strata__full_key(c, keys[i], keylens[i], ws[i].fk);
    }
    if ((rc = strata__breaker_allow(c)) < 0)
        goto done;
    if (c->wb->stream) {
        for (i = 0; c->l1 && i < n; i++) { /* L1 serves the old values while the append is in flight */
            strata__key k = strata__key_of(keys[i], keylens[i]);
            ws[i].epoch = strata__l1_writing(c, &k);
        }
        rc = accept_stream(c->wb, n, keys, keylens, vals, vallens, ws, now);
    } else {
        rc = accept_local(c->wb, n, keys, keylens, vals, vallens, ttl_ms, results, now);
    }
done:
    for (i = 0; ws && i < n; i++) {
        free(ws[i].fk);
        strata__bytes_free(&ws[i].env);
    }
    free(ws);
    free(results);
    return rc;
}

int strata_write_behind(strata_cache *c, const char *key, size_t keylen, const char *val, size_t vallen,
                        int64_t ttl_ms)
{
    if (c == NULL)
        return strata__error(STRATA_EINVAL, "cache handle is NULL");
    return strata_write_behind_many(c, 1, &key, &keylen, &val, &vallen, ttl_ms);
}

/* ---- push step and flush ------------------------------------------------- */

int strata__wb_step(strata_cache *c)
{
    const strata_options *o = &c->cfg.opts;
    strata_wb_batch *b = NULL;
    strata_write w;
    size_t n;
    int rc = strata_wb_poll(c, o->wb_batch_size, &b);
    if (rc != STRATA_OK)
        return rc;
    memset(&w, 0, sizeof w);
    rc = strata__call_writer(&w, o->wb_writer(o->wb_writer_data, b->n, b->keys, b->keylens, b->vals,
                                              b->vallens, &w), "write-behind writer");
    n = b->n;
    if (rc < 0)
        strata_wb_fail(b, strata_error_last());
    else
        strata_wb_ack(b);
    return (int)n;
}

static int backlog_now(strata__wb *wb, uint64_t *out)
{
    strata_cache *c = wb->c;
    int rc;
    if (!wb->stream) {
        strata__mutex_lock(&wb->mu);
        *out = wb->q.nrecords;
        strata__mutex_unlock(&wb->mu);
        return 0;
    }
    rc = strata__backend_result(c, c->backend->ops->wb_backlog(c->backend, out));
    if (rc == 0)
        strata__atomic_store(&c->stats.wb_backlog, *out);
    return rc;
}

int strata_flush(strata_cache *c, int64_t deadline_ms)
{
    strata__wb *wb;
    int64_t end;
    uint64_t backlog = 0;
    int rc, inline_writer;

    if (c == NULL)
        return strata__error(STRATA_EINVAL, "cache handle is NULL");
    if ((rc = strata__check_ms(STRATA_EINVAL, "deadline_ms", deadline_ms, 0)) < 0)
        return rc;
    wb = c->wb;
    if ((rc = strata__wb_check_owner(wb)) < 0)
        return rc;
    end = strata__now_mono_ms() + deadline_ms;
    inline_writer = c->cfg.opts.wb_writer != NULL && !strata__flusher_running(wb->flusher);
    for (;;) {
        int64_t now;
        if ((rc = backlog_now(wb, &backlog)) < 0)
            return rc;
        if (backlog == 0)
            return 0;
        now = strata__now_mono_ms();
        if (now >= end)
            break;
        if (inline_writer) {
            rc = strata__wb_step(c);
            if (rc > 0)
                continue;
            if (rc < 0 && rc != STRATA_EBACKEND && rc != STRATA_ETIMEOUT && rc != STRATA_EBREAKER)
                return rc;
        }
        if (wb->flusher)
            strata__flusher_wake(wb->flusher);
        strata__sleep_ms(end - now < 5 ? end - now : 5); /* polling for someone else's progress */
    }
    return strata__error(STRATA_ETIMEOUT, "flush: %llu write-behind records still pending after %lld ms",
                         (unsigned long long)backlog, (long long)deadline_ms);
}
