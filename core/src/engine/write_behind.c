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
#include "writes.h"
#include "wb_queue.h"
#include "error.h"
#include "local/journal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct strata__wb {
    strata_cache *c;
    int stream;                 /* 1: the backend journals (redis) */
    unsigned int gen;           /* fork generation of the creator */

    strata__mutex mu;           /* guards q, journal, next_seq */
    strata__cond space;         /* records left the queue (backpressure waiters) */
    strata__wbq q;
    strata__journal *journal;   /* local mode, when wb_journal is set */
    uint64_t next_seq;

    strata__mutex read_mu;      /* stream mode: one read at a time */
    char consumer[200];
    unsigned int consumer_gen;
    char cursor[48];            /* XAUTOCLAIM scan position */
    int64_t next_claim_ms;      /* monotonic */

    unsigned int unpolled;      /* accepted since the last poll (flusher wake-up) */
    int backlog_seen;           /* stream mode: stats.wb_backlog came from the server */
    strata__flusher *flusher;
};

struct strata_wb_batch {
    strata_cache *c;
    size_t n;
    strata__wbq_entry **entries;
    const char **keys, **vals;
    size_t *keylens, *vallens;
    int64_t *enqueued;
    char *buf;                  /* copies of keys and values */
};

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
        rc = strata__journal_open(&wb->journal, o->wb_journal, o->wb_fsync, o->wb_interval_ms, &recs, &n,
                                  &wb->next_seq);
        if (rc == 0)
            rc = load_replayed(wb, recs, n);
        strata__wb_records_free(recs, n);
        c->stats.wb_backlog = wb->q.nrecords;
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
static int check_owner(strata__wb *wb)
{
    if (!wb->stream && wb->gen != strata__fork_generation())
        return strata__error(STRATA_ECLOSED, "write-behind on %s belongs to the process that created "
                             "the cache; open a new cache in this (forked) process",
                             wb->c->backend->ops->name);
    return 0;
}

static void backlog_changed(strata__wb *wb)
{
    strata__atomic_store(&wb->c->stats.wb_backlog, wb->q.nrecords);
}

/* ---- accepting writes --------------------------------------------------- */

typedef struct wb_write {
    char *fk;
    size_t fklen;
    strata__bytes env;
    int64_t fresh_until, backend_ttl;
    uint64_t epoch;
} wb_write;

static void l1_after_write(strata_cache *c, const char *key, size_t keylen, const char *val, size_t vallen,
                           const wb_write *w, int64_t now)
{
    strata__l1_store(c, key, keylen, val, vallen, 0, 0, now, w->fresh_until, now + w->backend_ttl, w->epoch);
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
    if (backlog)
        strata__atomic_store(&c->stats.wb_backlog, backlog);
    for (i = 0; i < n; i++) {
        if (items[i].rc != 0)
            continue;
        STRATA__COUNT(c, wb_enqueued);
        STRATA__COUNT(c, sets);
        if (c->l1)
            l1_after_write(c, keys[i], keylens[i], vals[i] ? vals[i] : "", vallens[i], &ws[i], now);
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
    backlog_changed(wb);
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
    if (ttl_ms < 0)
        return strata__error(STRATA_EINVAL, "ttl_ms must be >= 0 (0 = the cache's default), got %lld",
                             (long long)ttl_ms);
    for (i = 0; i < n; i++) {
        if ((rc = strata__check_key(c, keys[i], keylens[i])) < 0)
            return item_error(rc, i);
        if (vals[i] == NULL && vallens[i] > 0)
            return strata__error(STRATA_EINVAL, "item %zu: value is NULL with length %zu", i, vallens[i]);
    }
    if (n == 0)
        return 0;
    if ((rc = check_owner(c->wb)) < 0)
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
        for (i = 0; c->l1 && i < n; i++) {
            strata__l1_del(c->l1, keys[i], keylens[i]); /* older readers may not re-enter L1 */
            ws[i].epoch = strata__l1_epoch(c->l1, keys[i], keylens[i]);
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

/* ---- pull API ------------------------------------------------------------ */

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

    if (latest == NULL || drop == NULL ||
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
        for (i = 0, nids = 0; i < b->n; i++) {
            if (drop[i]) {
                memcpy(ids + nids, b->entries[i]->ids, b->entries[i]->inflight * sizeof *ids);
                nids += b->entries[i]->inflight;
            }
        }
    }
    strata__mutex_unlock(&wb->mu);
    if (ndrop == 0 || ids == NULL || c->backend->ops->wb_ack(c->backend, nids, ids) != 0)
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
    if ((rc = check_owner(wb)) < 0)
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

/* The record ids a batch entry covers. */
static strata__wb_id *covered_ids(strata_wb_batch *b, size_t *count)
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
    backlog_changed(wb);
    strata__cond_broadcast(&wb->space);
}

int strata_wb_ack(strata_wb_batch *b)
{
    strata_cache *c;
    strata__wb *wb;
    strata__wb_id *ids;
    size_t n = 0;
    int rc = 0;

    if (b == NULL)
        return strata__error(STRATA_EINVAL, "batch is NULL");
    c = b->c;
    wb = c->wb;
    strata__mutex_lock(&wb->mu);
    ids = covered_ids(b, &n);
    strata__mutex_unlock(&wb->mu);
    if (ids == NULL) {
        rc = strata__error(STRATA_ENOMEM, "out of memory acknowledging a batch");
    } else if (wb->stream) {
        /* A failed ack only means a later re-delivery (at least once). */
        rc = strata__backend_result(c, c->backend->ops->wb_ack(c->backend, n, ids));
    }
    strata__mutex_lock(&wb->mu);
    if (wb->journal && ids)
        rc = strata__journal_ack(wb->journal, n, ids);
    strata__atomic_add(&c->stats.wb_flushed, n);
    finish_entries(wb, b->entries, b->n);
    strata__mutex_unlock(&wb->mu);
    free(ids);
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
        rc = strata__backend_result(c, c->backend->ops->wb_dead(c->backend, b->keys[i], b->keylens[i], b->vals[i],
                                                                b->vallens[i], n, ids, e->attempts, message));
    } else if (wb->journal) {
        strata__mutex_lock(&wb->mu);
        rc = strata__journal_dead(wb->journal, b->keys[i], b->keylens[i], b->vals[i], b->vallens[i], e->attempts,
                                  message, n, ids);
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
    if (deadline_ms < 0)
        return strata__error(STRATA_EINVAL, "deadline_ms must be >= 0, got %lld", (long long)deadline_ms);
    wb = c->wb;
    if ((rc = check_owner(wb)) < 0)
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
