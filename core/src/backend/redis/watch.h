/*
 * The L1 invalidation link on Redis: one subscriber connection per cache with
 * its own thread. It hears the namespace's invalidation channel (published by
 * every stratacache write, see redis.c) and, with tracking=1, Redis's own
 * CLIENT TRACKING messages (BCAST on the namespace prefix), and reports them
 * as events. It pings the server; when the link breaks or a ping goes
 * unanswered it reports the link down, reconnects with backoff and
 * resubscribes. Wire format: docs/L1-COHERENCE.md.
 */
#ifndef STRATA_REDIS_WATCH_H
#define STRATA_REDIS_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* A message is <origin><user key>; origin = 16 hex digits of the cache
 * instance, then 8 of the process id, so a writer recognises its own. */
#define STRATA__INV_ORIGIN_LEN 24
#define STRATA__INV_CHANNEL_MAX (STRATA__MAX_NS + 40)

void   strata__inv_origin(char out[STRATA__INV_ORIGIN_LEN + 1], uint64_t instance);
/* "__strata__:inv:<db>:<ns>" into buf; returns its length. */
size_t strata__inv_channel(char *buf, size_t size, const strata__config *cfg);

typedef struct strata__watch_events {
    void *ud;
    void (*evict)(void *ud, const char *key, size_t keylen); /* a user key changed */
    void (*flush)(void *ud);                                 /* drop everything */
    void (*link)(void *ud, int up);  /* up: subscribed (after a flush); down: lost */
} strata__watch_events;

typedef struct strata__redis_watch strata__redis_watch;

/* Starts the thread (connecting in the background). */
int  strata__redis_watch_start(strata__redis_watch **out, const strata__config *cfg,
                               const strata__watch_events *ev);
/* Waits until the first connection attempt has finished or deadline_ms
 * (monotonic) passes. */
void strata__redis_watch_wait_first(strata__redis_watch *w, int64_t deadline_ms);
/* Stops and joins the thread, closes the connection. */
void strata__redis_watch_stop(strata__redis_watch *w);
/* In a forked child, where the thread does not exist: closes the inherited
 * sockets without sending anything (the parent's link is untouched). The
 * memory stays until strata__redis_watch_release(). */
void strata__redis_watch_forget(strata__redis_watch *w);
void strata__redis_watch_release(strata__redis_watch *w);

#endif
