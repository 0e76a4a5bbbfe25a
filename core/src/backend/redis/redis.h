/* The blocking Redis backend (redis.c): the vtable of backend/backend.h as
 * protocol.c / stream.c conversations run over pool.c's connections, one pool
 * per server of route.c. */
#ifndef STRATA_REDIS_BACKEND_H
#define STRATA_REDIS_BACKEND_H

#include "backend/backend.h"
#include "backend/redis/route.h"

/* The routing of a backend made by strata__backend_redis_open (the host
 * drivers route with the same table). */
strata__redis_route *strata__redis_backend_route(strata__backend *b);

#endif
