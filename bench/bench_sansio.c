/*
 * The host-driven operations against the raw client, same run, same server:
 * 64 plain lookups (lease off, L1 off) in flight at once on one connection,
 * driven by tests/c/poll_driver.c (non-blocking socket, poll(), pipelined),
 * vs 64 pipelined hiredis GETs of the same keys. Each figure is the median
 * over ROUNDS of the per-batch time in a round, rounds interleaved; the ratio
 * is the median of the per-round ratios. With "lease", the lookups take the
 * lease on a miss (as resty.stratacache's with a loader): hits cost the same
 * plus the XFetch check (for callgrind's per-op counts). With "nosketch",
 * the cache has no hot-key sketch (hot_sketch_width=0, as resty.stratacache's
 * remote handles): what feeding it costs a remote hit.
 *   bench_sansio REDIS_PORT [lease] [nosketch]
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratacache.h"
#include "bench_util.h"
#include "poll_driver.h"

#define ROUNDS 15
#define BATCHES 200
#define INFLIGHT 64

static redisContext *rc;
static strata_cache *cache;
static poll_driver *drv;
static char keys[INFLIGHT][32], rawkeys[INFLIGHT][32];
static size_t keylens[INFLIGHT];
static int done, bad, lease;

static void raw_batch(void)
{
    int i;
    for (i = 0; i < INFLIGHT; i++)
        redisAppendCommand(rc, "GET %s", rawkeys[i]);
    for (i = 0; i < INFLIGHT; i++) {
        redisReply *r;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK || r->type != REDIS_REPLY_STRING) {
            fprintf(stderr, "raw pipeline failed\n");
            exit(1);
        }
        freeReplyObject(r);
    }
}

static void op_done(void *ud, strata_op *op)
{
    strata_value v = STRATA_VALUE_INIT;
    (void)ud;
    if (strata_op_result(op, &v) != STRATA_OK)
        bad++;
    strata_value_dispose(&v);
    strata_op_free(op);
    done++;
}

static void op_batch(void)
{
    strata_op_options o;
    int i;
    strata_op_options_init(&o, STRATA_OP_OPTIONS_VERSION);
    o.lease = lease;
    done = 0;
    for (i = 0; i < INFLIGHT; i++) {
        strata_op *op = NULL;
        if (strata_op_lookup(&op, cache, keys[i], keylens[i], &o) != 0) {
            fprintf(stderr, "strata_op_lookup: %s\n", strata_error_last());
            exit(1);
        }
        poll_driver_add(drv, op, op_done, NULL);
    }
    poll_driver_run(drv, strata_clock_ms() + 10000);
    if (done != INFLIGHT || bad) {
        fprintf(stderr, "op batch: %d done, %d not hits\n", done, bad);
        exit(1);
    }
}

/* get_many: the same 64 keys in one op (one MGET), each item read into a
 * reused value, as a host reads a batch. */
static const char *keyptrs[INFLIGHT];
static strata_value items[INFLIGHT];

static void many_done(void *ud, strata_op *op)
{
    int i;
    (void)ud;
    for (i = 0; i < INFLIGHT; i++)
        if (strata_op_item(op, (size_t)i, &items[i]) != STRATA_OK)
            bad++;
    strata_op_free(op);
    done++;
}

static void many_batch(void)
{
    strata_op *op = NULL;
    done = 0;
    if (strata_op_get_many(&op, cache, INFLIGHT, keyptrs, keylens, NULL) != 0) {
        fprintf(stderr, "strata_op_get_many: %s\n", strata_error_last());
        exit(1);
    }
    poll_driver_add(drv, op, many_done, NULL);
    poll_driver_run(drv, strata_clock_ms() + 10000);
    if (done != 1 || bad) {
        fprintf(stderr, "get_many batch: %d done, %d not hits\n", done, bad);
        exit(1);
    }
}

static double round_us(void (*fn)(void))
{
    double t0 = now_us();
    int i;
    for (i = 0; i < BATCHES; i++)
        fn();
    return (now_us() - t0) / BATCHES;
}

int main(int argc, char **argv)
{
    double pa[ROUNDS], pb[ROUNDS], ratio[ROUNDS];
    char url[256];
    int port, i, r, nosketch = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: bench_sansio REDIS_PORT [lease] [nosketch]\n");
        return 2;
    }
    port = atoi(argv[1]);
    for (i = 2; i < argc; i++) {
        lease |= strcmp(argv[i], "lease") == 0;
        nosketch |= strcmp(argv[i], "nosketch") == 0;
    }
    rc = redisConnect("127.0.0.1", port);
    if (rc == NULL || rc->err) {
        fprintf(stderr, "cannot connect to redis on %d\n", port);
        return 1;
    }
    snprintf(url, sizeof url, "redis://127.0.0.1:%d?ns=bench-sio%s", port, nosketch ? "&hot_sketch_width=0" : "");
    if (strata_cache_new(&cache, url, NULL) != 0) {
        fprintf(stderr, "strata_cache_new: %s\n", strata_error_last());
        return 1;
    }
    for (i = 0; i < INFLIGHT; i++) {
        keylens[i] = (size_t)snprintf(keys[i], sizeof keys[i], "k%d", i);
        keyptrs[i] = keys[i];
        snprintf(rawkeys[i], sizeof rawkeys[i], "raw-sio:%d", i);
        strata_set(cache, keys[i], keylens[i], "0123456789abcdef", 16, 0);
        freeReplyObject(redisCommand(rc, "SET %s 0123456789abcdef", rawkeys[i]));
    }
    drv = poll_driver_new(1); /* one connection, as the raw pipeline */
    round_us(op_batch);       /* warm-up, and the driver's connection */
    round_us(raw_batch);
    for (r = 0; r < ROUNDS; r++) {
        pa[r] = round_us(op_batch);
        pb[r] = round_us(raw_batch);
        ratio[r] = pa[r] / pb[r];
    }
    printf("median per-batch time over %d interleaved rounds (us); ratio = median of per-round ratios\n", ROUNDS);
    printf("%-44s %10s %12s %7s   %s\n", "", "stratacache", "raw client", "ratio", "target");
    printf("%-44s %10.2f %12.2f %6.2fx   <= 1.20x\n", "64 op lookups in flight (poll) vs 64 pipelined GETs",
           median(pa, ROUNDS), median(pb, ROUNDS), median(ratio, ROUNDS));
    round_us(many_batch); /* warm-up */
    for (r = 0; r < ROUNDS; r++) {
        pa[r] = round_us(many_batch);
        pb[r] = round_us(raw_batch);
        ratio[r] = pa[r] / pb[r];
    }
    printf("%-44s %10.2f %12.2f %6.2fx   (info)\n", "op get_many of 64 keys (poll) vs 64 GETs",
           median(pa, ROUNDS), median(pb, ROUNDS), median(ratio, ROUNDS));
    for (i = 0; i < INFLIGHT; i++)
        strata_value_dispose(&items[i]);
    poll_driver_free(drv);
    strata_cache_free(cache);
    redisFree(rc);
    return 0;
}
