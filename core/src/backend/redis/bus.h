/*
 * Publishing L1 invalidations on a Redis server for a backend without pub/sub
 * (memcached with option l1_bus). One connection, used under a lock, made
 * lazily with deadlines and re-made with backoff; a forked child makes its own.
 * Same channel and payload as the Redis backend (docs/L1-COHERENCE.md).
 */
#ifndef STRATA_REDIS_BUS_H
#define STRATA_REDIS_BUS_H

#include <stddef.h>

#include "config.h"

typedef struct strata__redis_bus strata__redis_bus;

/* bus: the bus server's config carrying the cache's ns, instance and timeouts. */
int  strata__redis_bus_open(strata__redis_bus **out, const strata__config *bus);
void strata__redis_bus_close(strata__redis_bus *b);

/* Publishes an invalidation of the user key: 0, or an error (the write it
 * follows has happened; only other processes' L1 freshness is at stake). */
int  strata__redis_bus_publish(strata__redis_bus *b, const char *key, size_t keylen);

#endif
