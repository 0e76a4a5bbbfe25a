/* Bytes planted from outside: a plain client writes straight to a test
 * server, bypassing the library (foreign values, keys without a TTL). */
#ifndef STRATA_TEST_RAW_WRITE_H
#define STRATA_TEST_RAW_WRITE_H

/* Sets key to val with no expiry on the redis or memcached server at
 * 127.0.0.1:port; on redis with as_list, RPUSHes val instead (a key of the
 * wrong type). 0 or -1. */
int test_raw_set(const char *kind, int port, const char *key, const char *val, int as_list);

/* A plain hiredis connection to the redis at 127.0.0.1:port (2 s connect
 * timeout), or NULL. redisFree it. */
struct redisContext *test_redis_raw(int port);

#endif
