/*
 * Coherence events for host-side tiers (strata_events_next): a bounded queue
 * per cache, off until a host first asks (or io=host), so a cache nobody
 * pulls from pays one atomic load per write.
 */
#ifndef STRATA_EVENTS_H
#define STRATA_EVENTS_H

#include <stddef.h>

struct strata_cache;
typedef struct strata__events strata__events;

#define STRATA__EVENTS_MAX 4096

int  strata__events_new(strata__events **out, int on);
void strata__events_free(strata__events *q);
/* Queues an event when collection is on; an overflow collapses into FLUSH. */
void strata__events_push(struct strata_cache *c, int kind, const char *key, size_t keylen, int own);

#endif
