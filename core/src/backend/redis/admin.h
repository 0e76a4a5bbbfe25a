/*
 * The operator tools' side of the Redis backend (admin.c): inspection,
 * SCAN, server facts and checks, write-behind status and dead letters. They
 * borrow the backend's pool through strata__redis_pipeline (redis.c).
 */
#ifndef STRATA_REDIS_ADMIN_H
#define STRATA_REDIS_ADMIN_H

#include "backend/backend.h"

struct redisReply;

/* n commands pipelined on one pooled connection. 0 and every reply (the
 * caller frees them with freeReplyObject), or an error and none. On a
 * cluster they go to the node of the first command's key (SCAN: the first
 * seed's), redirects followed: keep a pipeline's keys in one slot. */
int strata__redis_pipeline(strata__backend *be, size_t n, const int *argcs, const char **const *argvs,
                           const size_t *const *lens, struct redisReply **replies, const char *what);

/* Full key fk's lease key, in the layout of this backend (a cluster's keeps
 * the value's slot; docs/FORMAT.md) into buf (RB_KEYBUF: 4096 + 2 * ns + 16
 * bytes); 0 when fk has none. */
size_t strata__redis_backend_lease_key(strata__backend *be, const char *fk, size_t fklen, char *buf);

int strata__redis_peek(strata__backend *be, const strata__config *cfg, const char *fk, size_t fklen,
                       strata__peek *out);
int strata__redis_scan(strata__backend *be, const strata__config *cfg, char *cursor, size_t cursorsize,
                       const char *match, size_t count, strata__scan_item **items, size_t *n);
int strata__redis_server_info(strata__backend *be, const strata__config *cfg, strata_server_info *out);
int strata__redis_wb_status(strata__backend *be, const strata__config *cfg, strata_wb_status *out);
int strata__redis_wb_dead_list(strata__backend *be, const strata__config *cfg, size_t max,
                               strata__dead_letter **out, size_t *n);
int strata__redis_wb_dead_take(strata__backend *be, const strata__config *cfg, const strata__dead_letter *d,
                               int replay, int64_t now_ms);

#endif
