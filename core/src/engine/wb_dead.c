/*
 * Write-behind for operators: the journal's status and its dead letters
 * (list, replay into the journal, purge). Redis: the namespace's streams,
 * whoever wrote them (backend ops). memory/memcached: this cache's queue and
 * "<wb_journal>.dead", under the queue lock (the only writer of that file).
 */
#include "wb_state.h"
#include "error.h"
#include "engine/metrics.h"

#include <stdlib.h>
#include <string.h>

struct strata_dead_list {
    size_t n;
    strata__dead_letter *d;
};

static int wb_of(strata_cache *c, strata__wb **wb, strata__backend **be)
{
    *wb = NULL;
    *be = NULL;
    if (c == NULL)
        return strata__error(STRATA_EINVAL, "cache handle is NULL");
    *wb = c->wb;
    *be = strata__backend_untimed(c->backend);
    return strata__wb_check_owner(c->wb);
}

int strata_wb_status_get(strata_cache *c, strata_wb_status *out)
{
    strata__wb *wb;
    strata__backend *be;
    strata__wbq_entry *e;
    strata__dead_letter *d = NULL;
    size_t nd = 0;
    int rc;

    if (out == NULL)
        return strata__error(STRATA_EINVAL, "status out-pointer is NULL");
    if (out->version != STRATA_WB_STATUS_VERSION)
        return strata__error(STRATA_EVERSION, "strata_wb_status: struct version %u (this library knows %u)",
                             out->version, STRATA_WB_STATUS_VERSION);
    if ((rc = wb_of(c, &wb, &be)) < 0)
        return rc;
    memset(out, 0, sizeof *out);
    out->version = STRATA_WB_STATUS_VERSION;
    if (wb->stream)
        return be->ops->wb_status(be, &c->cfg, out);
    strata__mutex_lock(&wb->mu);
    out->backlog = wb->q.nrecords;
    for (e = wb->q.head; e != NULL; e = e->next) {
        if (out->oldest_ms == 0 || e->enqueued_ms < out->oldest_ms)
            out->oldest_ms = e->enqueued_ms;
        out->pending += e->inflight;
    }
    if (wb->journal)
        rc = strata__journal_dead_read(wb->journal, &d, &nd);
    strata__mutex_unlock(&wb->mu);
    out->dead = nd;
    strata__dead_letters_free(d, nd);
    return rc;
}

/* Every dead letter, oldest first (all of them in local mode: the file is
 * read whole; max then trims). */
static int read_dead(strata_cache *c, size_t max, strata__dead_letter **d, size_t *n)
{
    strata__wb *wb = c->wb;
    strata__backend *be = strata__backend_untimed(c->backend);
    int rc = 0;
    *d = NULL;
    *n = 0;
    if (wb->stream)
        return be->ops->wb_dead_list(be, &c->cfg, max, d, n);
    if (wb->journal)
        rc = strata__journal_dead_read(wb->journal, d, n);
    if (rc == 0 && max && *n > max) {
        size_t i;
        for (i = max; i < *n; i++) {
            strata__bytes_free(&(*d)[i].key);
            strata__bytes_free(&(*d)[i].val);
            strata__bytes_free(&(*d)[i].error);
        }
        *n = max;
    }
    return rc;
}

int strata_wb_dead_list(strata_cache *c, size_t max, strata_dead_list **out)
{
    strata__wb *wb;
    strata__backend *be;
    strata_dead_list *l;
    int rc;

    if (out == NULL)
        return strata__error(STRATA_EINVAL, "dead list out-pointer is NULL");
    *out = NULL;
    if ((rc = wb_of(c, &wb, &be)) < 0)
        return rc;
    if ((l = calloc(1, sizeof *l)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory");
    if (!wb->stream)
        strata__mutex_lock(&wb->mu);
    rc = read_dead(c, max, &l->d, &l->n);
    if (!wb->stream)
        strata__mutex_unlock(&wb->mu);
    if (rc < 0) {
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

size_t strata_dead_list_count(const strata_dead_list *l)
{
    return l ? l->n : 0;
}

int strata_dead_list_item(const strata_dead_list *l, size_t i, strata_dead_letter *out)
{
    const strata__dead_letter *d;
    if (l == NULL || out == NULL || i >= l->n)
        return strata__error(STRATA_EINVAL, "dead letter %zu is out of range", i);
    d = &l->d[i];
    out->id = d->id;
    out->key = d->key.data ? d->key.data : "";
    out->keylen = d->key.len;
    out->val = d->val.data ? d->val.data : "";
    out->vallen = d->val.len;
    out->error = d->error.data ? d->error.data : "";
    out->errorlen = d->error.len;
    out->given_up_ms = d->given_up_ms;
    out->attempts = d->attempts;
    return 0;
}

void strata_dead_list_free(strata_dead_list *l)
{
    if (l == NULL)
        return;
    strata__dead_letters_free(l->d, l->n);
    free(l);
}

static int selected(const strata__dead_letter *d, const char *key, size_t keylen)
{
    return key == NULL || (d->key.len == keylen && memcmp(d->key.data, key, keylen) == 0);
}

/* Local mode, queue lock held: replayed letters become new journal records
 * and queue entries, then leave the dead file. A crash between the two
 * steps replays a letter twice, never loses one (the writer gets the key's
 * value again). */
static int take_local(strata_cache *c, const char *key, size_t keylen, int replay, size_t *count)
{
    strata__wb *wb = c->wb;
    strata__dead_letter *d = NULL;
    unsigned char *keep = NULL;
    size_t n = 0, i;
    int64_t now = strata__now_wall_ms();
    int rc;

    if (wb->journal == NULL)
        return 0; /* no journal file: dead letters were only counted */
    if ((rc = strata__journal_dead_read(wb->journal, &d, &n)) < 0 || n == 0)
        goto out;
    if ((keep = malloc(n)) == NULL) {
        rc = strata__error(STRATA_ENOMEM, "out of memory replaying dead letters");
        goto out;
    }
    for (i = 0; i < n; i++)
        keep[i] = !selected(&d[i], key, keylen);
    for (i = 0; i < n && rc == 0 && replay; i++) {
        strata__wb_id id;
        if (keep[i])
            continue;
        id.ms = 0;
        id.seq = wb->next_seq;
        rc = strata__journal_put(wb->journal, id.seq, d[i].key.data, d[i].key.len, d[i].val.data ? d[i].val.data : "",
                                 d[i].val.len, now);
        if (rc == 0)
            rc = strata__wbq_add(&wb->q, d[i].key.data, d[i].key.len, d[i].val.data ? d[i].val.data : "",
                                 d[i].val.len, now, id, 0);
        if (rc >= 0) {
            rc = 0;
            wb->next_seq++;
            (*count)++;
        } else {
            keep[i] = 1; /* not replayed: stays a dead letter (and those after it) */
            for (; i < n; i++)
                keep[i] = 1;
        }
    }
    if (rc == 0 && !replay)
        for (i = 0; i < n; i++)
            *count += !keep[i];
    {
        int r = *count > 0 ? strata__journal_dead_rewrite(wb->journal, d, n, keep) : 0;
        if (rc == 0)
            rc = r;
    }
    strata__wb_backlog_changed(wb);
out:
    free(keep);
    strata__dead_letters_free(d, n);
    return rc;
}

static int take(strata_cache *c, const char *key, size_t keylen, int replay, size_t *count)
{
    strata__wb *wb;
    strata__backend *be;
    strata__dead_letter *d = NULL;
    size_t n = 0, i, done = 0;
    int64_t now = strata__now_wall_ms();
    int rc;

    if (count)
        *count = 0;
    if ((rc = wb_of(c, &wb, &be)) < 0)
        return rc;
    if (key != NULL && (rc = strata__check_key(c, key, keylen)) < 0)
        return rc;
    if (!wb->stream) {
        strata__mutex_lock(&wb->mu);
        rc = take_local(c, key, keylen, replay, &done);
        strata__mutex_unlock(&wb->mu);
        if (count)
            *count = done;
        return rc;
    }
    /* redis: oldest first, each in its own atomic step */
    if ((rc = be->ops->wb_dead_list(be, &c->cfg, 0, &d, &n)) < 0)
        return rc;
    for (i = 0; i < n && rc >= 0; i++) {
        if (!selected(&d[i], key, keylen))
            continue;
        if ((rc = be->ops->wb_dead_take(be, &c->cfg, &d[i], replay, now)) > 0)
            done++;
    }
    strata__dead_letters_free(d, n);
    if (count)
        *count = done;
    return rc < 0 ? rc : 0;
}

int strata_wb_dead_replay(strata_cache *c, const char *key, size_t keylen, size_t *count)
{
    return take(c, key, keylen, 1, count);
}

int strata_wb_dead_purge(strata_cache *c, const char *key, size_t keylen, size_t *count)
{
    return take(c, key, keylen, 0, count);
}
