/*
 * Which server a Redis conversation goes to: the seam between the protocol
 * and the connections, so every driver (the blocking pool, nginx cosockets,
 * asyncio) routes the same way. One node, or a Redis Cluster's slot map:
 * CRC16 of the key's hash tag -> slot -> node, learnt from CLUSTER SLOTS and
 * patched on MOVED (docs/CLUSTER.md).
 * Server indices are stable for the route's life: drivers key their
 * connection pools by them. A cluster's seeds are servers 0..nseeds-1; a node
 * first heard of later (CLUSTER SLOTS, MOVED) gets the next index, up to
 * strata__route_capacity().
 */
#ifndef STRATA_REDIS_ROUTE_H
#define STRATA_REDIS_ROUTE_H

#include <stddef.h>

#include <hiredis/hiredis.h>

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

/* ---- Redis Cluster (a single-node route answers 0 / ignores these) ---- */

#define STRATA__ROUTE_MAX_NODES 128

int          strata__route_is_cluster(const strata__redis_route *r);
/* The most servers this route will ever hold (drivers size their pools by it). */
size_t       strata__route_capacity(const strata__redis_route *r);
/* The server holding a slot. */
unsigned int strata__route_slot_server(const strata__redis_route *r, unsigned int slot);
/* The index of host:port (added when new): 0, or STRATA_EBACKEND when full. */
int          strata__route_node(strata__redis_route *r, const char *host, size_t hostlen, int port,
                                unsigned int *out);
/* MOVED: slot now lives on server i. */
void         strata__route_moved(strata__redis_route *r, unsigned int slot, unsigned int i);
/* A CLUSTER SLOTS reply heard from server `from` replaces the map: 0 or
 * STRATA_EBACKEND (an unreadable reply; the map is unchanged). */
int          strata__route_load(strata__redis_route *r, unsigned int from, const redisReply *slots);

#endif
