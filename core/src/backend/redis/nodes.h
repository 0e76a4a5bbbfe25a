/*
 * The blocking driver's servers: one connection pool per route server index
 * (pool.c), opened lazily for nodes a cluster names later, and the routing
 * layer's conversation on a cluster: follow MOVED (patch the map, refresh it
 * soon) and ASK (ASKING on that connection, no map change), retry TRYAGAIN
 * and CLUSTERDOWN after short sleeps (a write to a slot under migration
 * waits there until it finishes), at most STRATA__NODES_MAX_REDIRECTS
 * MOVED/ASK hops and no attempt begun past the call's deadline (timeout_ms). On a single node
 * all of this is one pool_exchange.
 */
#ifndef STRATA_REDIS_NODES_H
#define STRATA_REDIS_NODES_H

#include <stdint.h>

#include "config.h"
#include "platform/platform.h"
#include "backend/redis/pool.h"
#include "backend/redis/route.h"

#define STRATA__NODES_MAX_REDIRECTS 5

/* Where a call goes: its server, its key's slot (-1: keyless, or one node)
 * and, on a cluster, its deadline (monotonic ms, set by the first acquire:
 * map refreshes, redirects and retries all fit inside it). */
typedef struct strata__redis_at {
    unsigned int server;
    int slot;
    int64_t deadline_ms;
} strata__redis_at;

typedef struct strata__redis_nodes {
    strata__redis_route *route;
    const strata__config *cfg;                         /* the cache's: outlives the backend */
    strata__redis_pool *pools[STRATA__ROUTE_MAX_NODES]; /* by server index; NULL until used (atomic) */
    strata__mutex mu;                                   /* opening pools */
    strata__mutex refresh_mu;                           /* one map refresh at a time */
    unsigned int refresh_due;                           /* a MOVED or a failure was seen (atomic) */
    int64_t refresh_after_ms;                           /* no refresh before (monotonic; under refresh_mu) */
    int64_t timeout_ms;
} strata__redis_nodes;

/* Opens the seeds' pools; on a cluster, learns the slot map from the first
 * seed that answers (none answering is no error: the map is learnt later). */
int  strata__nodes_open(strata__redis_nodes *n, strata__redis_route *route, const strata__config *cfg);
void strata__nodes_close(strata__redis_nodes *n);

strata__redis_at strata__nodes_at(const strata__redis_nodes *n, const char *key, size_t keylen);

/* A connection to at->server, refreshing a due slot map first (on a cluster;
 * at->server may change). On error nothing is held. */
int  strata__nodes_acquire(strata__redis_nodes *n, strata__redis_at *at, strata__pool_conn **conn);
void strata__nodes_release(strata__redis_nodes *n, const strata__redis_at *at, strata__pool_conn *conn);
/* Exchanges q on *conn, following redirects: *conn and at->server then name
 * the server that answered (on error *conn may be NULL: nothing is held). */
int  strata__nodes_exchange(strata__redis_nodes *n, strata__redis_at *at, strata__pool_conn **conn,
                            const strata__redis_req *q, redisReply **r, const char *what);
/* A batch over k distinct servers: every request sent before any reply is
 * read (one round trip in all, not one per server). rs[j] gets qs[j]'s
 * replies, rcs[j] its outcome; redirects are left in the replies for the
 * caller (a batch's items live in many slots: it redoes the redirected ones
 * alone). Connections are taken in ascending server order, so two batches
 * never wait on each other's. */
void strata__nodes_run_each(strata__redis_nodes *n, size_t k, const unsigned int *servers,
                            const strata__redis_req *qs, redisReply **const *rs, int *rcs, const char *what);
/* acquire + exchange + release. */
int  strata__nodes_run(strata__redis_nodes *n, strata__redis_at *at, const strata__redis_req *q, redisReply **r,
                       const char *what);

#endif
