/*
 * Which server a Redis conversation goes to: the seam between the protocol
 * and the connections. One node today; a cluster's slot map (CRC16 of the
 * key's hash tag -> node, patched on MOVED) plugs in here, so every driver
 * (the blocking pool, nginx cosockets, asyncio) routes the same way.
 * Server indices are stable for the route's life: drivers key their
 * connection pools by them.
 */
#ifndef STRATA_REDIS_ROUTE_H
#define STRATA_REDIS_ROUTE_H

#include <stddef.h>

#include "config.h"

typedef struct strata__redis_route strata__redis_route;

int  strata__route_new(strata__redis_route **out, const strata__config *cfg);
void strata__route_free(strata__redis_route *r);

/* The index of the server that holds (full) key. */
unsigned int strata__route_key(const strata__redis_route *r, const char *key, size_t keylen);
size_t       strata__route_count(const strata__redis_route *r);
/* The address of server i (valid for the route's life). */
const char  *strata__route_host(const strata__redis_route *r, unsigned int i);
int          strata__route_port(const strata__redis_route *r, unsigned int i);
/* "redis host:port" for messages. */
const char  *strata__route_who(const strata__redis_route *r, unsigned int i);

#endif
