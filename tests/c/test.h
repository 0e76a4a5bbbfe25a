/* A small test harness: table-driven cases, each a function; failures print
 * file:line and the expression, and the run exits non-zero. */
#ifndef STRATA_TEST_H
#define STRATA_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratacache.h"

extern int test_failures;
extern const char *test_current;

#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "  FAIL %s (%s:%d): %s\n", test_current, __FILE__, __LINE__, #cond); \
    test_failures++; } } while (0)

#define CHECK_RC(expr, want) do { int rc_ = (expr); if (rc_ != (want)) { \
    fprintf(stderr, "  FAIL %s (%s:%d): %s = %s (%d), want %s; last error: %s\n", \
        test_current, __FILE__, __LINE__, #expr, strata_error_name(rc_), rc_, \
        strata_error_name(want), strata_error_last()); \
    test_failures++; } } while (0)

#define CHECK_MSG_HAS(needle) do { if (!strstr(strata_error_last(), (needle))) { \
    fprintf(stderr, "  FAIL %s (%s:%d): message \"%s\" lacks \"%s\"\n", \
        test_current, __FILE__, __LINE__, strata_error_last(), (needle)); \
    test_failures++; } } while (0)

#define CHECK_VALUE(v, str) do { size_t n_ = strlen(str); \
    if ((v)->len != n_ || memcmp((v)->data, (str), n_) != 0) { \
    fprintf(stderr, "  FAIL %s (%s:%d): value \"%.*s\", want \"%s\"\n", test_current, \
        __FILE__, __LINE__, (int)((v)->len > 80 ? 80 : (v)->len), (v)->data ? (v)->data : "", (str)); \
    test_failures++; } } while (0)

/* Stop the current case when a precondition fails. */
#define REQUIRE(cond) do { if (!(cond)) { \
    fprintf(stderr, "  FAIL %s (%s:%d): required %s; last error: %s\n", test_current, \
        __FILE__, __LINE__, #cond, strata_error_last()); \
    test_failures++; return; } } while (0)

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

/* Runs the cases whose name contains argv[1] (all without it). Exit 0 or 1. */
int test_main(int argc, char **argv, const test_case *cases, size_t n);

/* The backend URL under test: argv-selected "memory", "redis", "redis_cluster"
 * (STRATA_TEST_REDIS_CLUSTER_URL) or "memcached".
 * Redis and Memcached come from STRATA_TEST_REDIS_URL / STRATA_TEST_MEMCACHED_URL;
 * when unset the process exits 77 (skipped). */
const char *test_backend_url(const char *backend);

/* 1 when built with ThreadSanitizer (STRATA_SANITIZE_THREAD, make stress). */
int test_under_tsan(void);

/* Ends the current case, reported as skipped, in a TSan build: for cases TSan
 * cannot run (a fork of a multi-threaded process whose child starts threads). */
#define SKIP_UNDER_TSAN(reason) do { if (test_under_tsan()) { \
    printf("  skipped under ThreadSanitizer: %s\n", (reason)); return; } } while (0)

/* A unique key prefix per run so tests sharing a server never collide. */
const char *test_unique(const char *base);

/* c's strata_stats, current version (zeroed if the call fails). */
strata_stats test_stats(strata_cache *c);

#endif
