/* The write-behind pending table (see wb_queue.h). */
#include "wb_queue.h"
#include "error.h"
#include "policy/hash.h"

#include <stdlib.h>
#include <string.h>

int strata__wbq_init(strata__wbq *q)
{
    memset(q, 0, sizeof *q);
    q->nbuckets = 1024;
    if ((q->buckets = calloc(q->nbuckets, sizeof *q->buckets)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory for the write-behind table");
    return 0;
}

static void entry_free(strata__wbq_entry *e)
{
    strata__bytes_free(&e->key);
    strata__bytes_free(&e->val);
    free(e->ids);
    free(e);
}

void strata__wbq_destroy(strata__wbq *q)
{
    strata__wbq_entry *e = q->head, *next;
    for (; e; e = next) {
        next = e->next;
        entry_free(e);
    }
    free(q->buckets);
    memset(q, 0, sizeof *q);
}

static strata__wbq_entry **slot_of(strata__wbq *q, const char *key, size_t keylen, uint64_t h)
{
    strata__wbq_entry **p = &q->buckets[h & (q->nbuckets - 1)];
    while (*p && !((*p)->hash == h && (*p)->key.len == keylen && memcmp((*p)->key.data, key, keylen) == 0))
        p = &(*p)->chain;
    return p;
}

static void grow(strata__wbq *q)
{
    size_t nb = q->nbuckets * 2, i;
    strata__wbq_entry **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return; /* longer chains, still correct */
    for (i = 0; i < q->nbuckets; i++) {
        strata__wbq_entry *e = q->buckets[i], *next;
        for (; e; e = next) {
            next = e->chain;
            e->chain = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(q->buckets);
    q->buckets = b;
    q->nbuckets = nb;
}

static int id_less(strata__wb_id a, strata__wb_id b)
{
    return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq);
}

int strata__wbq_add(strata__wbq *q, const char *key, size_t keylen, const char *val, size_t vallen,
                    int64_t enqueued_ms, strata__wb_id id, uint64_t token)
{
    uint64_t h = strata__hash64(key, keylen, 0x77625f71ull);
    strata__wbq_entry **p = slot_of(q, key, keylen, h), *e = *p;
    size_t i;
    int rc, newest = 1;

    if (e == NULL) {
        if ((e = calloc(1, sizeof *e)) == NULL)
            return strata__error(STRATA_ENOMEM, "out of memory queueing a write-behind record");
        if ((rc = strata__bytes_set(&e->key, key, keylen)) < 0) {
            free(e);
            return rc;
        }
        e->hash = h;
        e->chain = *p;
        *p = e;
        e->prev = q->tail;
        if (q->tail)
            q->tail->next = e;
        else
            q->head = e;
        q->tail = e;
        q->nkeys++;
        if (q->nkeys > q->nbuckets)
            grow(q);
    } else {
        for (i = 0; i < e->nids; i++) {
            if (e->ids[i].ms == id.ms && e->ids[i].seq == id.seq)
                return 0; /* claimed back or read twice: already here */
            if (id_less(id, e->ids[i]))
                newest = 0;
        }
    }
    if (e->nids == e->capids) {
        size_t nc = e->capids ? e->capids * 2 : 2;
        strata__wb_id *ids = realloc(e->ids, nc * sizeof *ids);
        if (ids == NULL)
            return strata__error(STRATA_ENOMEM, "out of memory queueing a write-behind record");
        e->ids = ids;
        e->capids = nc;
    }
    e->ids[e->nids++] = id;
    q->nrecords++;
    /* An older record arriving late (claimed from a dead consumer) must not
     * replace a newer value. */
    if (newest || e->nids == 1) {
        if ((rc = strata__bytes_set(&e->val, val ? val : "", vallen)) < 0)
            return rc;
        e->enqueued_ms = enqueued_ms;
        e->token = token;
    }
    return 1;
}

size_t strata__wbq_take(strata__wbq *q, size_t max, int64_t now_ms, strata__wbq_entry **out)
{
    strata__wbq_entry *e;
    size_t n = 0;
    for (e = q->head; e && n < max; e = e->next) {
        if (e->inflight || e->due_ms > now_ms)
            continue;
        e->inflight = e->nids;
        out[n++] = e;
    }
    return n;
}

static void unlink_entry(strata__wbq *q, strata__wbq_entry *e)
{
    strata__wbq_entry **p = slot_of(q, e->key.data, e->key.len, e->hash);
    *p = e->chain;
    if (e->prev)
        e->prev->next = e->next;
    else
        q->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        q->tail = e->prev;
    q->nkeys--;
}

void strata__wbq_done(strata__wbq *q, strata__wbq_entry *e)
{
    size_t covered = e->inflight;
    q->nrecords -= covered;
    if (covered >= e->nids) {
        unlink_entry(q, e);
        entry_free(e);
        return;
    }
    memmove(e->ids, e->ids + covered, (e->nids - covered) * sizeof *e->ids);
    e->nids -= covered;
    e->inflight = 0;
    e->attempts = 0;
    e->due_ms = 0;
}

void strata__wbq_retry(strata__wbq *q, strata__wbq_entry *e, int64_t due_ms)
{
    (void)q;
    e->inflight = 0;
    e->due_ms = due_ms;
}
