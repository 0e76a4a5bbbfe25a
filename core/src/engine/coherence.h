/*
 * L1 coherence across processes (Redis): the cache's invalidation link drives
 * its L1. A named key is dropped (bumping the shard epoch, so a fill that
 * raced with the message never enters); a lost link, FLUSHDB or fork drops
 * everything, and L1 serves and admits nothing until the link is back.
 */
#ifndef STRATA_COHERENCE_H
#define STRATA_COHERENCE_H

#include <stddef.h>

typedef struct strata__coherence strata__coherence;
struct strata_cache;

/* Starts the link for a redis cache with L1 on; waits for its first
 * connection attempt (bounded by connect_timeout_ms + timeout_ms). */
int  strata__coherence_start(struct strata_cache *c);
void strata__coherence_stop(struct strata_cache *c);

/* 1 when L1 may serve and admit now. In a forked child the first caller
 * restarts the link for this process (the parent's thread is not here). */
int  strata__coherence_usable(struct strata_cache *c);

/* After a write or delete of key succeeded: publishes its invalidation where
 * the backend cannot (memcached with l1_bus); a no-op otherwise. */
void strata__coherence_wrote(struct strata_cache *c, const char *key, size_t keylen);

/* After strata_clear: tells every L1 of the namespace elsewhere to drop all
 * it holds (redis: a flush message; memcached: over l1_bus). */
void strata__coherence_cleared(struct strata_cache *c);

/* 1 while this process's link is subscribed (for stats). */
int  strata__coherence_link_up(struct strata_cache *c);

#endif
