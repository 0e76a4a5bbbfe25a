/*
 * Redis Cluster's answers that send a command elsewhere, without a socket:
 * MOVED (the slot lives on another node now), ASK (during a migration: that
 * node, once, after ASKING), TRYAGAIN (a multi-key command on a half-moved
 * slot) and CLUSTERDOWN (no owner right now). The blocking driver (nodes.c)
 * acts on them; any driver can.
 */
#ifndef STRATA_REDIS_REDIRECT_H
#define STRATA_REDIS_REDIRECT_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "backend/redis/protocol.h"

typedef enum strata__redirect_kind {
    STRATA__REDIRECT_NONE = 0,
    STRATA__REDIRECT_MOVED,
    STRATA__REDIRECT_ASK,
    STRATA__REDIRECT_TRYAGAIN,
    STRATA__REDIRECT_CLUSTERDOWN
} strata__redirect_kind;

typedef struct strata__redirect {
    strata__redirect_kind kind;
    unsigned int slot;          /* MOVED, ASK */
    const char *host;           /* MOVED, ASK: into the reply; "" = the node that answered */
    size_t hostlen;
    int port;
} strata__redirect;

/* The first redirect among n replies (a MULTI's queued commands answer one
 * each, EXEC then fails whole, so nothing ran): its kind, or NONE. */
strata__redirect_kind strata__rp_redirect(redisReply *const *r, size_t n, strata__redirect *out);

/* q with ASKING before each command outside a MULTI block (before MULTI, the
 * flag lasts for the whole block): ASKING covers one command only. asking[i]
 * = 1 marks the replies of the ASKING commands (asking holds 2 * q->nreplies
 * places). 0 or STRATA_ENOMEM / STRATA_EINVAL (q is not RESP commands). */
int strata__rq_asking(const strata__redis_req *q, strata__redis_req *out, unsigned char *asking);

int strata__rq_cluster_slots(strata__redis_req *q);                                    /* 1 */

#endif
