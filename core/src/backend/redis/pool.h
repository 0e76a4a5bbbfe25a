/*
 * The blocking driver's connections to one Redis server: a fixed pool of
 * hiredis contexts shared by all threads, each used by one thread at a time
 * (hiredis is not thread-safe per context). Contexts are made lazily, so a
 * cache opens while its server is down, and re-made from scratch (never
 * redisReconnect, which forgets timeouts, AUTH and SELECT) with a backoff;
 * a forked child never uses its parent's sockets. The pool moves request
 * bytes built by protocol.c and hands back the replies: it knows no command.
 */
#ifndef STRATA_REDIS_POOL_H
#define STRATA_REDIS_POOL_H

#include <stdint.h>

#include <hiredis/hiredis.h>

#include "config.h"
#include "backend/redis/protocol.h"

typedef struct strata__redis_pool strata__redis_pool;
typedef struct strata__pool_conn strata__pool_conn;

/* One pool for server (host, port) with cfg's credentials, db and timeouts. */
int  strata__pool_open(strata__redis_pool **out, const strata__config *cfg, const char *host, int port);
void strata__pool_close(strata__redis_pool *p); /* callers must have finished every call */

/* A live connection of this process (waiting at most timeout_ms for a free
 * one); on error nothing is held. */
int  strata__pool_acquire(strata__redis_pool *p, strata__pool_conn **out);
void strata__pool_release(strata__redis_pool *p, strata__pool_conn *c);

/* Sends q's bytes and reads its q->nreplies replies into r (the caller frees
 * them with freeReplyObject). An I/O failure or timeout closes the
 * connection (unread replies are on it) and returns ETIMEOUT / EBACKEND
 * naming `what`; the connection is still released by the caller. */
int  strata__pool_exchange(strata__redis_pool *p, strata__pool_conn *c, const strata__redis_req *q, redisReply **r,
                           const char *what);
/* The two halves of an exchange, so one caller can have requests in flight
 * on several servers at once (a cluster's batches); same failure rules. */
int  strata__pool_send(strata__redis_pool *p, strata__pool_conn *c, const strata__redis_req *q, const char *what);
int  strata__pool_recv(strata__redis_pool *p, strata__pool_conn *c, unsigned int n, redisReply **r,
                       const char *what);
/* acquire + exchange + release. */
int  strata__pool_run(strata__redis_pool *p, const strata__redis_req *q, redisReply **r, const char *what);

#endif
