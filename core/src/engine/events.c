/* The coherence event queue (events.h). */
#include "events.h"
#include "cache.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

typedef struct ev_item {
    int kind, own;
    size_t keylen;
    char *key;
} ev_item;

struct strata__events {
    int on;                     /* atomic: collecting */
    strata__mutex mu;
    ev_item ring[STRATA__EVENTS_MAX];
    size_t head, count;
    int overflow;               /* a FLUSH replaces what was lost */
    char *last;                 /* the key handed out by the last next() */
};

int strata__events_new(strata__events **out, int on)
{
    strata__events *q = calloc(1, sizeof *q);
    if (q == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory for the event queue");
    strata__mutex_init(&q->mu);
    q->on = on;
    *out = q;
    return 0;
}

void strata__events_free(strata__events *q)
{
    size_t i;
    if (q == NULL)
        return;
    for (i = 0; i < q->count; i++)
        free(q->ring[(q->head + i) % STRATA__EVENTS_MAX].key);
    free(q->last);
    strata__mutex_destroy(&q->mu);
    free(q);
}

void strata__events_push(strata_cache *c, int kind, const char *key, size_t keylen, int own)
{
    strata__events *q = c->events;
    ev_item *it;
    char *copy = NULL;
    if (q == NULL || !strata__atomic_load(&q->on))
        return;
    if (kind == STRATA_EVENT_EVICT && (copy = malloc(keylen ? keylen : 1)) == NULL) {
        kind = STRATA_EVENT_FLUSH; /* cannot say which: say everything */
        keylen = 0;
    } else if (copy) {
        memcpy(copy, key, keylen);
    }
    strata__mutex_lock(&q->mu);
    if (q->count == STRATA__EVENTS_MAX) {
        q->overflow = 1;
        strata__mutex_unlock(&q->mu);
        free(copy);
        return;
    }
    it = &q->ring[(q->head + q->count++) % STRATA__EVENTS_MAX];
    it->kind = kind;
    it->own = own;
    it->key = copy;
    it->keylen = copy ? keylen : 0;
    strata__mutex_unlock(&q->mu);
}

int strata_event_init(strata_event *ev, unsigned int version)
{
    return strata__struct_init(ev, sizeof *ev, NULL, "strata_event", version, STRATA_EVENT_VERSION);
}

int strata_events_next(strata_cache *c, strata_event *ev)
{
    strata__events *q;
    if (c == NULL || ev == NULL)
        return strata__error(STRATA_EINVAL, "%s is NULL", c == NULL ? "cache handle" : "event");
    if (ev->version != STRATA_EVENT_VERSION)
        return strata__error(STRATA_EVERSION, "unknown strata_event version %u (this library knows %d)",
                             ev->version, STRATA_EVENT_VERSION);
    q = c->events;
    strata__atomic_store(&q->on, 1);
    strata__mutex_lock(&q->mu);
    free(q->last);
    q->last = NULL;
    ev->key = NULL;
    ev->keylen = 0;
    ev->own = 0;
    if (q->overflow) {
        /* Everything queued is covered by one FLUSH. */
        while (q->count > 0) {
            free(q->ring[q->head].key);
            q->head = (q->head + 1) % STRATA__EVENTS_MAX;
            q->count--;
        }
        q->overflow = 0;
        ev->kind = STRATA_EVENT_FLUSH;
        strata__mutex_unlock(&q->mu);
        return 0;
    }
    if (q->count == 0) {
        strata__mutex_unlock(&q->mu);
        return STRATA_MISS;
    }
    {
        ev_item *it = &q->ring[q->head];
        ev->kind = it->kind;
        ev->own = it->own;
        ev->key = it->key;
        ev->keylen = it->keylen;
        q->last = it->key;
        q->head = (q->head + 1) % STRATA__EVENTS_MAX;
        q->count--;
    }
    strata__mutex_unlock(&q->mu);
    return 0;
}
