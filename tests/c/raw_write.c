#include "raw_write.h"

#include <hiredis/hiredis.h>
#include <libmemcached/memcached.h>
#include <string.h>

redisContext *test_redis_raw(int port)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c != NULL && c->err) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static int redis_set(int port, const char *key, const char *val, int as_list)
{
    redisContext *r = test_redis_raw(port);
    redisReply *rep;
    int ok;
    if (r == NULL)
        return -1;
    rep = as_list ? redisCommand(r, "RPUSH %s %s", key, val) : redisCommand(r, "SET %s %s", key, val);
    ok = rep != NULL && rep->type != REDIS_REPLY_ERROR;
    freeReplyObject(rep);
    redisFree(r);
    return ok ? 0 : -1;
}

static int memcached_raw_set(int port, const char *key, const char *val)
{
    memcached_st *m = memcached_create(NULL);
    memcached_return_t rc;
    if (m == NULL)
        return -1;
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
    memcached_server_add(m, "127.0.0.1", (in_port_t)port);
    rc = memcached_set(m, key, strlen(key), val, strlen(val), 0, 0);
    memcached_free(m);
    return rc == MEMCACHED_SUCCESS ? 0 : -1;
}

int test_raw_set(const char *kind, int port, const char *key, const char *val, int as_list)
{
    if (strcmp(kind, "redis") == 0)
        return redis_set(port, key, val, as_list);
    if (strcmp(kind, "memcached") == 0 && !as_list)
        return memcached_raw_set(port, key, val);
    return -1;
}
