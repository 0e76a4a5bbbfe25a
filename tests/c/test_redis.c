/* Redis backend: behaviour against private redis-servers, including the ones
 * the contract suite cannot cover (auth, db selection, a killed, paused or
 * restarted server, script cache loss, fork). */
#define _GNU_SOURCE
#include "raw_write.h"
#include "test.h"
#include "server.h"

#include "backend/backend.h"
#include "config.h"
#include "platform/platform.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TIMEOUT_MS 200
#define CONNECT_TIMEOUT_MS 300

static test_server shared; /* for cases that do not disturb the server */
static int shared_up;

static void make_cfg(strata__config *cfg, int port)
{
    strata_options o = STRATA_OPTIONS_INIT;
    memset(cfg, 0, sizeof *cfg);
    cfg->scheme = STRATA__SCHEME_REDIS;
    snprintf(cfg->servers[0].host, sizeof cfg->servers[0].host, "127.0.0.1");
    cfg->servers[0].port = port;
    cfg->nservers = 1;
    memcpy(cfg->ns, "strata", 7);
    cfg->nslen = 6;
    o.ns = cfg->ns;
    o.timeout_ms = TIMEOUT_MS;
    o.connect_timeout_ms = CONNECT_TIMEOUT_MS;
    o.pool_size = 4;
    o.lease_ttl_ms = 5000;
    cfg->opts = o;
}

static strata__backend *open_on(int port)
{
    strata__config cfg;
    strata__backend *b = NULL;
    make_cfg(&cfg, port);
    if (strata__backend_redis_open(&b, &cfg) != 0)
        return NULL;
    return b;
}

static int ensure_shared(void)
{
    if (!shared_up && test_server_start(&shared, "redis") == 0)
        shared_up = 1;
    return shared_up;
}

/* A full key "strata:<unique>" (the engine always hands the backend these). */
static const char *fkey(char *buf, size_t size, const char *base)
{
    snprintf(buf, size, "strata:%s", test_unique(base));
    return buf;
}


/* Runs a command on a raw connection; returns its reply type, or -1. */
static int raw_cmd(redisContext *c, const char *cmd, redisReply **keep)
{
    redisReply *r = redisCommand(c, cmd);
    int t;
    if (r == NULL)
        return -1;
    t = r->type;
    if (keep)
        *keep = r;
    else
        freeReplyObject(r);
    return t;
}

/* Retries get until the backend answers (after a restart, allowing for backoff). */
static int get_until_ok(strata__backend *b, const char *k, strata__bytes *out, int64_t max_ms)
{
    int64_t end = strata__now_mono_ms() + max_ms;
    int rc;
    do {
        rc = b->ops->get(b, k, strlen(k), out);
        if (rc >= 0)
            return rc;
        strata__sleep_ms(25);
    } while (strata__now_mono_ms() < end);
    return rc;
}

static int set_str(strata__backend *b, const char *k, const char *v, int64_t ttl)
{
    return b->ops->set(b, k, strlen(k), v, strlen(v), ttl);
}

#define CHECK_BYTES(bytes, str) do { size_t n__ = strlen(str); \
    if ((bytes)->len != n__ || memcmp((bytes)->data, (str), n__) != 0) { \
    fprintf(stderr, "  FAIL %s (%s:%d): bytes \"%.*s\", want \"%s\"\n", test_current, \
        __FILE__, __LINE__, (int)((bytes)->len > 80 ? 80 : (bytes)->len), \
        (bytes)->data ? (bytes)->data : "", (str)); test_failures++; } } while (0)

/* ---- basics ---------------------------------------------------------- */

static void t_set_get_miss(void)
{
    strata__backend *b;
    strata__bytes out = {0};
    char k[128], m[128];
    static const char bin[] = {'a', 0, 'b', '\n', (char)0xff};
    REQUIRE(ensure_shared());
    REQUIRE((b = open_on(shared.port)) != NULL);
    CHECK(strcmp(b->ops->name, "redis") == 0);
    fkey(k, sizeof k, "sgm");
    fkey(m, sizeof m, "sgm-missing");
    CHECK_RC(set_str(b, k, "hello", 60000), 0);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
    CHECK_BYTES(&out, "hello");
    CHECK_RC(set_str(b, k, "again", 60000), 0);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
    CHECK_BYTES(&out, "again");
    CHECK_RC(b->ops->get(b, m, strlen(m), &out), STRATA_MISS);
    /* binary-safe, and empty values are values */
    CHECK_RC(b->ops->set(b, k, strlen(k), bin, sizeof bin, 60000), 0);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
    CHECK(out.len == sizeof bin && memcmp(out.data, bin, sizeof bin) == 0);
    CHECK_RC(b->ops->set(b, k, strlen(k), "", 0, 60000), 0);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
    CHECK(out.len == 0);
    CHECK(b->ops->max_value_size(b) == (size_t)512 * 1024 * 1024);
    CHECK_RC(set_str(b, k, "x", 0), STRATA_EINVAL);
    strata__bytes_free(&out);
    b->ops->close(b);
}

static void t_big_value(void)
{
    strata__backend *b;
    strata__bytes out = {0};
    char k[128];
    size_t n = 3 * 1024 * 1024 + 7, i;
    char *v = malloc(n);
    REQUIRE(v != NULL);
    for (i = 0; i < n; i++)
        v[i] = (char)(i * 131 + 7);
    if (!ensure_shared() || (b = open_on(shared.port)) == NULL) {
        free(v);
        REQUIRE(0);
    }
    fkey(k, sizeof k, "big");
    CHECK_RC(b->ops->set(b, k, strlen(k), v, n, 60000), 0);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
    CHECK(out.len == n && memcmp(out.data, v, n) == 0);
    free(v);
    strata__bytes_free(&out);
    b->ops->close(b);
}

static void t_get_many(void)
{
    strata__backend *b;
    strata__bytes outs[40];
    int rcs[40];
    char kb[40][128];
    const char *keys[40];
    size_t lens[40], i;
    REQUIRE(ensure_shared());
    REQUIRE((b = open_on(shared.port)) != NULL);
    memset(outs, 0, sizeof outs);
    for (i = 0; i < 40; i++) {
        keys[i] = fkey(kb[i], sizeof kb[i], "gm");
        lens[i] = strlen(keys[i]);
        if (i % 3 == 0) {
            char v[32];
            snprintf(v, sizeof v, "v%zu", i);
            CHECK_RC(set_str(b, keys[i], v, 60000), 0);
        }
    }
    /* 3 keys (stack path) and 40 (heap path) */
    for (i = 0; i < 40; i++)
        rcs[i] = -99;
    CHECK_RC(b->ops->get_many(b, 3, keys, lens, outs, rcs), 0);
    CHECK(rcs[0] == 0 && rcs[1] == STRATA_MISS && rcs[2] == STRATA_MISS);
    CHECK_BYTES(&outs[0], "v0");
    CHECK_RC(b->ops->get_many(b, 40, keys, lens, outs, rcs), 0);
    for (i = 0; i < 40; i++) {
        if (i % 3 == 0) {
            char v[32];
            snprintf(v, sizeof v, "v%zu", i);
            CHECK(rcs[i] == 0);
            if (rcs[i] == 0)
                CHECK_BYTES(&outs[i], v);
        } else {
            CHECK(rcs[i] == STRATA_MISS);
        }
    }
    CHECK_RC(b->ops->get_many(b, 0, keys, lens, outs, rcs), 0);
    for (i = 0; i < 40; i++)
        strata__bytes_free(&outs[i]);
    b->ops->close(b);
}

static void t_set_many(void)
{
    strata__backend *b;
    strata__bytes out = {0};
    char kb[3][128];
    const char *keys[3], *vals[3] = {"one", "two", "three"};
    size_t lens[3], vlens[3];
    int64_t ttls[3] = {60000, 60000, 60000};
    uint64_t guard;
    int64_t wait;
    int i;
    REQUIRE(ensure_shared());
    REQUIRE((b = open_on(shared.port)) != NULL);
    for (i = 0; i < 3; i++) {
        keys[i] = fkey(kb[i], sizeof kb[i], "sm");
        lens[i] = strlen(keys[i]);
        vlens[i] = strlen(vals[i]);
    }
    CHECK_RC(b->ops->lease_acquire(b, keys[1], lens[1], 42, 5000, &guard, &wait), 0);
    CHECK_RC(b->ops->set_many(b, 3, keys, lens, vals, vlens, ttls), 0);
    for (i = 0; i < 3; i++) {
        CHECK_RC(b->ops->get(b, keys[i], lens[i], &out), 0);
        CHECK_BYTES(&out, vals[i]);
    }
    /* set_many killed the lease too */
    CHECK_RC(b->ops->lease_fill(b, keys[1], lens[1], 42, guard, "old", 3, 60000), STRATA_ELEASE);
    CHECK_RC(b->ops->get(b, keys[1], lens[1], &out), 0);
    CHECK_BYTES(&out, "two");
    strata__bytes_free(&out);
    b->ops->close(b);
}

/* ---- leases ---------------------------------------------------------- */

static void t_del_kills_lease(void)
{
    strata__backend *b;
    strata__bytes out = {0};
    char k[128];
    uint64_t guard = 0;
    int64_t wait = 0;
    REQUIRE(ensure_shared());
    REQUIRE((b = open_on(shared.port)) != NULL);
    fkey(k, sizeof k, "dkl");
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 7, 5000, &guard, &wait), 0);
    CHECK_RC(b->ops->del(b, k, strlen(k)), STRATA_MISS); /* no value, lease only */
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 7, guard, "late", 4, 60000), STRATA_ELEASE);
    CHECK_MSG_HAS("lease");
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), STRATA_MISS);
    /* with a value present del reports it */
    CHECK_RC(set_str(b, k, "v", 60000), 0);
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 8, 5000, &guard, &wait), 0);
    CHECK_RC(b->ops->del(b, k, strlen(k)), 0);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 8, guard, "late", 4, 60000), STRATA_ELEASE);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), STRATA_MISS);
    CHECK_RC(b->ops->del(b, k, strlen(k)), STRATA_MISS);
    strata__bytes_free(&out);
    b->ops->close(b);
}

static void t_set_kills_lease(void)
{
    strata__backend *b;
    strata__bytes out = {0};
    char k[128];
    uint64_t guard = 0;
    int64_t wait = 0;
    REQUIRE(ensure_shared());
    REQUIRE((b = open_on(shared.port)) != NULL);
    fkey(k, sizeof k, "skl");
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 9, 5000, &guard, &wait), 0);
    CHECK_RC(set_str(b, k, "fresh", 60000), 0);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 9, guard, "stale", 5, 60000), STRATA_ELEASE);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
    CHECK_BYTES(&out, "fresh");
    /* and the lease is free again */
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 10, 5000, &guard, &wait), 0);
    strata__bytes_free(&out);
    b->ops->close(b);
}

static void t_lease_exclusive(void)
{
    strata__backend *b, *b2;
    strata__bytes out = {0};
    char k[128];
    uint64_t guard = 0, guard2 = 0;
    int64_t wait = 0;
    REQUIRE(ensure_shared());
    REQUIRE((b = open_on(shared.port)) != NULL);
    REQUIRE((b2 = open_on(shared.port)) != NULL); /* another "process" */
    fkey(k, sizeof k, "lx");
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 0x1111, 5000, &guard, &wait), 0);
    CHECK_RC(b2->ops->lease_acquire(b2, k, strlen(k), 0x2222, 5000, &guard2, &wait),
             STRATA_MISS_WAIT);
    CHECK(wait > 0 && wait <= 5000);
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 0x3333, 5000, &guard2, &wait),
             STRATA_MISS_WAIT);
    /* a non-holder cannot fill */
    CHECK_RC(b2->ops->lease_fill(b2, k, strlen(k), 0x2222, guard2, "no", 2, 60000),
             STRATA_ELEASE);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), STRATA_MISS);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 0x1111, guard, "loaded", 6, 60000), 0);
    CHECK_RC(b2->ops->get(b2, k, strlen(k), &out), 0);
    CHECK_BYTES(&out, "loaded");
    /* the fill released the lease; a second fill with the same token is refused */
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 0x1111, guard, "again", 5, 60000),
             STRATA_ELEASE);
    CHECK_RC(b2->ops->lease_acquire(b2, k, strlen(k), 0x4444, 5000, &guard2, &wait), 0);
    strata__bytes_free(&out);
    b->ops->close(b);
    b2->ops->close(b2);
}

static void t_lease_release(void)
{
    strata__backend *b;
    char k[128];
    uint64_t guard = 0;
    int64_t wait = 0;
    REQUIRE(ensure_shared());
    REQUIRE((b = open_on(shared.port)) != NULL);
    fkey(k, sizeof k, "lr");
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 1, 5000, &guard, &wait), 0);
    CHECK_RC(b->ops->lease_release(b, k, strlen(k), 2), 0); /* not ours: no effect */
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 3, 5000, &guard, &wait), STRATA_MISS_WAIT);
    CHECK_RC(b->ops->lease_release(b, k, strlen(k), 1), 0);
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 3, 5000, &guard, &wait), 0);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 1, guard, "x", 1, 60000), STRATA_ELEASE);
    CHECK_RC(b->ops->lease_release(b, k, strlen(k), 3), 0);
    CHECK_RC(b->ops->lease_release(b, k, strlen(k), 3), 0); /* idempotent */
    b->ops->close(b);
}

static void t_lease_expiry(void)
{
    strata__backend *b;
    strata__bytes out = {0};
    char k[128];
    uint64_t guard = 0, guard2 = 0;
    int64_t wait = 0;
    REQUIRE(ensure_shared());
    REQUIRE((b = open_on(shared.port)) != NULL);
    fkey(k, sizeof k, "le");
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 5, 100, &guard, &wait), 0);
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 6, 100, &guard2, &wait), STRATA_MISS_WAIT);
    CHECK(wait > 0 && wait <= 100);
    strata__sleep_ms(250);
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 6, 5000, &guard2, &wait), 0);
    /* the expired holder lost its right to fill */
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 5, guard, "old", 3, 60000), STRATA_ELEASE);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 6, guard2, "new", 3, 60000), 0);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
    CHECK_BYTES(&out, "new");
    strata__bytes_free(&out);
    b->ops->close(b);
}

static void t_script_flush(void)
{
    strata__backend *b;
    strata__bytes out = {0};
    redisContext *c;
    char k[128];
    uint64_t guard = 0;
    int64_t wait = 0;
    int round;
    REQUIRE(ensure_shared());
    REQUIRE((b = open_on(shared.port)) != NULL);
    REQUIRE((c = test_redis_raw(shared.port)) != NULL);
    fkey(k, sizeof k, "sf");
    for (round = 0; round < 3; round++) {
        /* round 0 loads the scripts; later rounds find the cache emptied */
        if (round > 0)
            CHECK(raw_cmd(c, "SCRIPT FLUSH", NULL) == REDIS_REPLY_STATUS);
        CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 77, 5000, &guard, &wait), 0);
        CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 77, guard, "filled", 6, 60000), 0);
        CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
        CHECK_BYTES(&out, "filled");
        CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 78, 5000, &guard, &wait), 0);
        if (round > 0)
            CHECK(raw_cmd(c, "SCRIPT FLUSH", NULL) == REDIS_REPLY_STATUS);
        CHECK_RC(b->ops->lease_release(b, k, strlen(k), 78), 0);
        CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 79, 5000, &guard, &wait), 0);
        CHECK_RC(b->ops->lease_release(b, k, strlen(k), 79), 0);
    }
    redisFree(c);
    strata__bytes_free(&out);
    b->ops->close(b);
}

/* ---- ttl, touch, incr ------------------------------------------------ */

static void t_ttl_touch(void)
{
    strata__backend *b;
    strata__bytes out = {0};
    char k[128], k2[128], m[128];
    REQUIRE(ensure_shared());
    REQUIRE((b = open_on(shared.port)) != NULL);
    fkey(k, sizeof k, "ttl");
    fkey(k2, sizeof k2, "ttl-touched");
    fkey(m, sizeof m, "ttl-missing");
    CHECK_RC(set_str(b, k, "short", 150), 0);
    CHECK_RC(set_str(b, k2, "short", 150), 0);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
    CHECK_RC(b->ops->touch(b, k2, strlen(k2), 60000), 0);
    CHECK_RC(b->ops->touch(b, m, strlen(m), 60000), STRATA_MISS);
    strata__sleep_ms(400);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), STRATA_MISS);
    CHECK_RC(b->ops->get(b, k2, strlen(k2), &out), 0);
    CHECK_BYTES(&out, "short");
    strata__bytes_free(&out);
    b->ops->close(b);
}

static void t_incr(void)
{
    strata__backend *b;
    char k[128];
    int64_t v = 0;
    REQUIRE(ensure_shared());
    REQUIRE((b = open_on(shared.port)) != NULL);
    fkey(k, sizeof k, "incr");
    CHECK_RC(b->ops->incr(b, k, strlen(k), 5, &v), 0);
    CHECK(v == 5);
    CHECK_RC(b->ops->incr(b, k, strlen(k), -7, &v), 0);
    CHECK(v == -2);
    CHECK_RC(set_str(b, k, "not a number", 60000), 0);
    CHECK_RC(b->ops->incr(b, k, strlen(k), 1, &v), STRATA__EREFUSED); /* a refusal, not an outage */
    CHECK_MSG_HAS("not an integer");
    /* the connection is still usable after a server error reply */
    CHECK_RC(b->ops->del(b, k, strlen(k)), 0);
    CHECK_RC(b->ops->incr(b, k, strlen(k), 1, &v), 0);
    CHECK(v == 1);
    b->ops->close(b);
}

typedef struct incr_arg {
    strata__backend *b;
    const char *key;
    int fails;
} incr_arg;

static void *incr_worker(void *p)
{
    incr_arg *a = p;
    int64_t v;
    int i;
    for (i = 0; i < 300; i++)
        if (a->b->ops->incr(a->b, a->key, strlen(a->key), 1, &v) != 0)
            a->fails++;
    return NULL;
}

static void t_threads(void)
{
    strata__config cfg;
    strata__backend *b = NULL;
    strata__thread th[8];
    incr_arg args[8];
    char k[128];
    int64_t v = 0;
    int i;
    REQUIRE(ensure_shared());
    make_cfg(&cfg, shared.port);
    cfg.opts.pool_size = 2;          /* threads outnumber connections */
    cfg.opts.timeout_ms = 2000;      /* waiting for a connection is not a failure here */
    REQUIRE(strata__backend_redis_open(&b, &cfg) == 0);
    fkey(k, sizeof k, "threads");
    for (i = 0; i < 8; i++) {
        args[i].b = b;
        args[i].key = k;
        args[i].fails = 0;
        REQUIRE(strata__thread_start(&th[i], incr_worker, &args[i]) == 0);
    }
    for (i = 0; i < 8; i++) {
        strata__thread_join(th[i]);
        CHECK(args[i].fails == 0);
    }
    CHECK_RC(b->ops->incr(b, k, strlen(k), 0, &v), 0);
    CHECK(v == 8 * 300);
    b->ops->close(b);
}

/* ---- auth and db ----------------------------------------------------- */

static void t_auth_select(void)
{
    test_server s;
    strata__config cfg;
    strata__backend *b = NULL, *bad = NULL;
    strata__bytes out = {0};
    redisContext *c;
    redisReply *r = NULL;
    char k[128], cmd[256];
    REQUIRE(test_server_start(&s, "redis") == 0);
    c = test_redis_raw(s.port);
    if (c == NULL) {
        test_server_stop(&s);
        REQUIRE(0);
    }
    CHECK(raw_cmd(c, "CONFIG SET requirepass s3cret", NULL) == REDIS_REPLY_STATUS);

    make_cfg(&cfg, s.port);
    snprintf(cfg.password, sizeof cfg.password, "s3cret");
    cfg.db = 3;
    CHECK_RC(strata__backend_redis_open(&b, &cfg), 0);
    fkey(k, sizeof k, "auth");
    if (b) {
        CHECK_RC(set_str(b, k, "in-db-3", 60000), 0);
        CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
        CHECK_BYTES(&out, "in-db-3");
        b->ops->close(b);
    }
    /* AUTH with a user name (ACL form) */
    snprintf(cfg.user, sizeof cfg.user, "default");
    b = NULL;
    CHECK_RC(strata__backend_redis_open(&b, &cfg), 0);
    if (b) {
        CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
        b->ops->close(b);
    }
    /* a wrong password fails with the server's reason */
    cfg.user[0] = '\0';
    snprintf(cfg.password, sizeof cfg.password, "wrong");
    CHECK_RC(strata__backend_redis_open(&bad, &cfg), 0);
    if (bad) {
        CHECK_RC(bad->ops->get(bad, k, strlen(k), &out), STRATA_EBACKEND);
        CHECK_MSG_HAS("AUTH");
        bad->ops->close(bad);
    }

    /* the raw view: the key is in db 3, not db 0 */
    CHECK(raw_cmd(c, "AUTH s3cret", NULL) == REDIS_REPLY_STATUS);
    snprintf(cmd, sizeof cmd, "GET %s", k);
    CHECK(raw_cmd(c, cmd, NULL) == REDIS_REPLY_NIL);
    CHECK(raw_cmd(c, "SELECT 3", NULL) == REDIS_REPLY_STATUS);
    CHECK(raw_cmd(c, cmd, &r) == REDIS_REPLY_STRING);
    if (r) {
        CHECK(r->type == REDIS_REPLY_STRING && r->len == 7 && memcmp(r->str, "in-db-3", 7) == 0);
        freeReplyObject(r);
    }
    redisFree(c);
    strata__bytes_free(&out);
    test_server_stop(&s);
}

/* ---- failures -------------------------------------------------------- */

static void t_server_killed(void)
{
    test_server s;
    strata__backend *b;
    strata__bytes out = {0};
    char k[128];
    int i, rc, saw_backoff = 0;
    int64_t t0, el, worst = 0;
    REQUIRE(test_server_start(&s, "redis") == 0);
    if ((b = open_on(s.port)) == NULL) {
        test_server_stop(&s);
        REQUIRE(0);
    }
    fkey(k, sizeof k, "killed");
    CHECK_RC(set_str(b, k, "v", 60000), 0);
    test_server_stop(&s);
    for (i = 0; i < 20; i++) {
        t0 = strata__now_mono_ms();
        rc = b->ops->get(b, k, strlen(k), &out);
        el = strata__now_mono_ms() - t0;
        if (el > worst)
            worst = el;
        CHECK(rc == STRATA_EBACKEND || rc == STRATA_ETIMEOUT);
        CHECK(strstr(strata_error_last(), "127.0.0.1:") != NULL);
        if (strstr(strata_error_last(), "reconnect backoff"))
            saw_backoff = 1;
    }
    CHECK(worst < TIMEOUT_MS + CONNECT_TIMEOUT_MS + 1000);
    CHECK(saw_backoff);

    REQUIRE(test_server_restart(&s) == 0);
    /* data is gone (no persistence) but the backend is back */
    CHECK_RC(get_until_ok(b, k, &out, 5000), STRATA_MISS);
    CHECK_RC(set_str(b, k, "back", 60000), 0);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
    CHECK_BYTES(&out, "back");
    strata__bytes_free(&out);
    b->ops->close(b);
    test_server_stop(&s);
}

static void t_server_paused(void)
{
    test_server s;
    strata__backend *b;
    strata__bytes out = {0};
    char k[128];
    int i, rc;
    int64_t t0, el;
    uint64_t guard;
    int64_t wait;
    REQUIRE(test_server_start(&s, "redis") == 0);
    if ((b = open_on(s.port)) == NULL) {
        test_server_stop(&s);
        REQUIRE(0);
    }
    fkey(k, sizeof k, "paused");
    CHECK_RC(set_str(b, k, "v", 60000), 0);
    test_server_pause(&s);
    t0 = strata__now_mono_ms();
    rc = b->ops->get(b, k, strlen(k), &out);
    el = strata__now_mono_ms() - t0;
    CHECK_RC(rc, STRATA_ETIMEOUT);
    CHECK_MSG_HAS("127.0.0.1:");
    CHECK(el >= TIMEOUT_MS / 2 && el < 1500);
    /* every kind of call is bounded, on fresh connections too */
    for (i = 0; i < 4; i++) {
        t0 = strata__now_mono_ms();
        if (i % 2)
            rc = set_str(b, k, "w", 60000);
        else
            rc = b->ops->lease_acquire(b, k, strlen(k), 1, 1000, &guard, &wait);
        el = strata__now_mono_ms() - t0;
        CHECK(rc == STRATA_ETIMEOUT || rc == STRATA_EBACKEND);
        CHECK(el < 1500);
    }
    test_server_resume(&s);
    CHECK(get_until_ok(b, k, &out, 5000) >= 0);
    CHECK_RC(set_str(b, k, "after", 60000), 0);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
    CHECK_BYTES(&out, "after");
    strata__bytes_free(&out);
    b->ops->close(b);
    test_server_stop(&s);
}

static void t_open_while_down(void)
{
    test_server s;
    strata__backend *b = NULL;
    strata__bytes out = {0};
    char k[128];
    int64_t t0;
    REQUIRE(test_server_start(&s, "redis") == 0);
    test_server_stop(&s);
    b = open_on(s.port);
    CHECK(b != NULL);
    if (b == NULL)
        return;
    fkey(k, sizeof k, "down");
    t0 = strata__now_mono_ms();
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), STRATA_EBACKEND);
    CHECK(strata__now_mono_ms() - t0 < CONNECT_TIMEOUT_MS + 1000);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), STRATA_EBACKEND);
    CHECK_MSG_HAS("reconnect backoff");
    if (test_server_restart(&s) != 0) {
        b->ops->close(b);
        REQUIRE(0);
    }
    CHECK_RC(get_until_ok(b, k, &out, 5000), STRATA_MISS);
    CHECK_RC(set_str(b, k, "up", 60000), 0);
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
    CHECK_BYTES(&out, "up");
    strata__bytes_free(&out);
    b->ops->close(b);
    test_server_stop(&s);
}

/* A server that never completes connects (a listener whose accept queue is
 * full, so SYNs are dropped, as with a black-holed host): callers must not
 * each pay the connect timeout; once it has failed, one caller at a time
 * probes it and the rest fail at once. */
typedef struct hang_arg {
    strata__backend *b;
    int calls, slow, bad_rc;
    int64_t worst;
} hang_arg;

static void *hang_worker(void *p)
{
    hang_arg *a = p;
    strata__bytes out = {0};
    int64_t end = strata__now_mono_ms() + 1500;
    while (strata__now_mono_ms() < end) {
        int64_t t0 = strata__now_mono_ms(), el;
        int rc = a->b->ops->get(a->b, "strata:hang", 11, &out);
        el = strata__now_mono_ms() - t0;
        a->calls++;
        if (rc != STRATA_EBACKEND && rc != STRATA_ETIMEOUT)
            a->bad_rc++;
        if (el > CONNECT_TIMEOUT_MS / 2)
            a->slow++;
        if (el > a->worst)
            a->worst = el;
        strata__sleep_ms(2);
    }
    strata__bytes_free(&out);
    return NULL;
}

static void t_connect_hangs(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int lfd, fds[8], i, slow = 0, calls = 0;
    strata__backend *b;
    strata__thread th[4];
    hang_arg args[4];
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(lfd >= 0);
    REQUIRE(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 0) == 0 &&
            getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
    for (i = 0; i < 8; i++) { /* fill the accept queue */
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        connect(fds[i], (struct sockaddr *)&a, sizeof a);
    }
    strata__sleep_ms(50);
    b = open_on(ntohs(a.sin_port));
    CHECK(b != NULL);
    if (b != NULL) {
        for (i = 0; i < 4; i++) {
            memset(&args[i], 0, sizeof args[i]);
            args[i].b = b;
            CHECK(strata__thread_start(&th[i], hang_worker, &args[i]) == 0);
        }
        for (i = 0; i < 4; i++) {
            strata__thread_join(th[i]);
            CHECK(args[i].bad_rc == 0);
            CHECK(args[i].worst < CONNECT_TIMEOUT_MS + TIMEOUT_MS + 1000);
            slow += args[i].slow;
            calls += args[i].calls;
        }
        /* 1.5 s: the first round (up to 4), then backoff 50, 100, 200, 400,
         * 800 ms with one prober each: about 9 slow calls, never one per call. */
        CHECK(slow >= 1);
        CHECK(slow <= 12);
        CHECK(calls > 10 * slow);
        b->ops->close(b);
    }
    for (i = 0; i < 8; i++)
        close(fds[i]);
    close(lfd);
}

static void t_fork(void)
{
    strata__backend *b;
    strata__bytes out = {0};
    char k[128], kc[128];
    pid_t pid;
    int status = -1, i;
    REQUIRE(ensure_shared());
    REQUIRE((b = open_on(shared.port)) != NULL);
    fkey(k, sizeof k, "fork-parent");
    fkey(kc, sizeof kc, "fork-child");
    /* warm every pooled connection in the parent */
    for (i = 0; i < 8; i++)
        CHECK_RC(set_str(b, k, "parent", 60000), 0);
    fflush(NULL);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int ok = 1, j;
        for (j = 0; j < 20 && ok; j++) {
            ok = b->ops->get(b, k, strlen(k), &out) == 0 && out.len == 6 &&
                 memcmp(out.data, "parent", 6) == 0;
            ok = ok && set_str(b, kc, "child", 60000) == 0;
        }
        _exit(ok ? 0 : 1);
    }
    /* the parent keeps using its sockets while the child runs */
    for (i = 0; i < 20; i++) {
        CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
        CHECK_BYTES(&out, "parent");
    }
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_RC(b->ops->get(b, kc, strlen(kc), &out), 0);
    CHECK_BYTES(&out, "child");
    CHECK_RC(b->ops->get(b, k, strlen(k), &out), 0);
    CHECK_BYTES(&out, "parent");
    strata__bytes_free(&out);
    b->ops->close(b);
}

static void t_bad_config(void)
{
    strata__config cfg;
    strata__backend *b = NULL;
    make_cfg(&cfg, 6379);
    cfg.nservers = 0;
    CHECK(strata__backend_redis_open(&b, &cfg) < 0);
    CHECK(b == NULL);
    make_cfg(&cfg, 0);
    CHECK(strata__backend_redis_open(&b, &cfg) < 0);
}

static const test_case cases[] = {
    {"set_get_miss", t_set_get_miss},
    {"big_value", t_big_value},
    {"get_many", t_get_many},
    {"set_many", t_set_many},
    {"del_kills_lease", t_del_kills_lease},
    {"set_kills_lease", t_set_kills_lease},
    {"lease_exclusive", t_lease_exclusive},
    {"lease_release", t_lease_release},
    {"lease_expiry", t_lease_expiry},
    {"script_flush", t_script_flush},
    {"ttl_touch", t_ttl_touch},
    {"incr", t_incr},
    {"threads", t_threads},
    {"auth_select", t_auth_select},
    {"server_killed", t_server_killed},
    {"server_paused", t_server_paused},
    {"open_while_down", t_open_while_down},
    {"connect_hangs", t_connect_hangs},
    {"fork", t_fork},
    {"bad_config", t_bad_config},
};

int main(int argc, char **argv)
{
    int rc = test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
    if (shared_up)
        test_server_stop(&shared);
    return rc;
}
