/*
 * The corruption matrix: bytes planted from outside under the keys the
 * library reads (value, lease, tag counter, write-behind stream and latest
 * token; docs/FORMAT.md), then every read path runs over them. Each must end
 * in a clean miss or a clean error with a message, never a crash, a hang or
 * a wrong value.
 *   test_corruption memory | redis | memcached [case]
 * Planting: redis with hiredis (raw commands, wrong types included),
 * memcached with its text protocol on a plain socket, memory:// through a
 * second handle's backend on the same named store (nothing else reaches it).
 */
#define _DEFAULT_SOURCE
#include "test.h"
#include "engine/cache.h"
#include "policy/envelope.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define K(s) (s), strlen(s)

static const char *backend_name;
static char ns[64];
static redisContext *redis_raw;
static strata_cache *memory_planter;
static char mc_host[256];
static int mc_port;

static int is(const char *b) { return strcmp(backend_name, b) == 0; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static strata_cache *open_cache(const char *query)
{
    strata_cache *c = NULL;
    char u[1024];
    const char *base = is("memory") ? "memory://corruption" : test_backend_url(backend_name);
    snprintf(u, sizeof u, "%s%sns=%s&timeout_ms=1000&lock_wait_ms=300&lease_ttl_ms=2000%s%s", base,
             strchr(base, '?') ? "&" : "?", ns, query ? "&" : "", query ? query : "");
    if (strata_cache_new(&c, u, NULL) != 0) {
        fprintf(stderr, "  cannot open %s: %s\n", u, strata_error_last());
        return NULL;
    }
    return c;
}

/* ---- planting from outside ----------------------------------------------- */

static int mc_command(const char *cmd, size_t len, char *reply, size_t cap)
{
    struct sockaddr_in a;
    ssize_t r;
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)mc_port);
    inet_pton(AF_INET, strcmp(mc_host, "localhost") == 0 ? "127.0.0.1" : mc_host, &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || send(fd, cmd, len, 0) != (ssize_t)len) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    r = recv(fd, reply, cap - 1, 0);
    close(fd);
    ok = r > 0;
    reply[ok ? r : 0] = '\0';
    return ok ? 0 : -1;
}

/* "<ns><sep><name>" with the given bytes, no expiry (ttl_ms 0) or a TTL. */
static int plant(const char *sep, const char *name, const char *val, size_t len, int64_t ttl_ms)
{
    char key[512], reply[256];
    int n = snprintf(key, sizeof key, "%s%s%s", ns, sep, name);
    if (is("redis")) {
        redisReply *r = ttl_ms > 0 ? redisCommand(redis_raw, "SET %s %b PX %lld", key, val, len, (long long)ttl_ms)
                                   : redisCommand(redis_raw, "SET %s %b", key, val, len);
        int ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        return ok ? 0 : -1;
    }
    if (is("memcached")) {
        size_t hl;
        char *cmd = malloc(len + 600);
        int rc;
        if (cmd == NULL)
            return -1;
        hl = (size_t)snprintf(cmd, 600, "set %s 0 %lld %zu\r\n", key, (long long)(ttl_ms > 0 ? ttl_ms / 1000 + 1 : 0), len);
        memcpy(cmd + hl, val, len);
        memcpy(cmd + hl + len, "\r\n", 2);
        rc = mc_command(cmd, hl + len + 2, reply, sizeof reply);
        free(cmd);
        return rc == 0 && strncmp(reply, "STORED", 6) == 0 ? 0 : -1;
    }
    return memory_planter->backend->ops->set(memory_planter->backend, key, (size_t)n, val, len,
                                             ttl_ms > 0 ? ttl_ms : 3600000) == 0 ? 0 : -1;
}

/* Redis only: a list or a hash where a string (or a stream) is expected. */
static int plant_type(const char *sep, const char *name, const char *type)
{
    char key[512];
    redisReply *r;
    int ok;
    snprintf(key, sizeof key, "%s%s%s", ns, sep, name);
    freeReplyObject(redisCommand(redis_raw, "DEL %s", key));
    r = strcmp(type, "list") == 0 ? redisCommand(redis_raw, "RPUSH %s a b c", key)
      : strcmp(type, "hash") == 0 ? redisCommand(redis_raw, "HSET %s f v", key)
                                  : redisCommand(redis_raw, "SET %s %s", key, "not a stream");
    ok = r && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    return ok ? 0 : -1;
}

static void unplant(const char *sep, const char *name)
{
    char key[512];
    snprintf(key, sizeof key, "%s%s%s", ns, sep, name);
    if (is("redis")) {
        freeReplyObject(redisCommand(redis_raw, "DEL %s", key));
    } else if (is("memcached")) {
        char cmd[600], reply[64];
        int n = snprintf(cmd, sizeof cmd, "delete %s\r\n", key);
        mc_command(cmd, (size_t)n, reply, sizeof reply);
    } else {
        memory_planter->backend->ops->del(memory_planter->backend, key, strlen(key));
    }
}

/* ---- the bad bytes --------------------------------------------------------- */

static uint32_t fnv1a(const unsigned char *p, size_t n, uint32_t h)
{
    while (n--)
        h = (h ^ *p++) * 16777619u;
    return h;
}

/* Recomputes the header checksum of an envelope without tags, so a case gets
 * past it to the field it damages. */
static void fix_checksum(unsigned char *e, size_t tagslen)
{
    uint32_t h = fnv1a(e + 44, tagslen, fnv1a(e, 40, 2166136261u));
    e[40] = (unsigned char)(h >> 24); e[41] = (unsigned char)(h >> 16);
    e[42] = (unsigned char)(h >> 8); e[43] = (unsigned char)h;
}

static size_t good_envelope(char *out, size_t cap, unsigned flags, const char *payload)
{
    strata__envelope e;
    int64_t now = (int64_t)time(NULL) * 1000;
    memset(&e, 0, sizeof e);
    e.flags = flags;
    e.created_ms = now;
    e.fresh_until_ms = e.stale_until_ms = now + 60000;
    e.payload = payload;
    e.payload_len = strlen(payload);
    return strata__env_encode(&e, out, cap);
}

typedef enum kind {
    RANDOM, EMPTY, MAGIC_ONLY, TRUNCATED_HEADER, TRUNCATED_PAYLOAD, HEADER_BIT, PAYLOAD_BIT_CRC,
    HUGE_PAYLOAD_LEN, HUGE_TAG_LEN, HUGE_TAG_COUNT, NUMBER_TEXT, LIST, HASH, COUNTER_2_63
} kind;

static const char *const kind_names[] = {
    "random bytes", "empty", "magic only", "truncated header", "truncated payload", "header bit flipped",
    "payload bit flipped (payload_crc)", "huge payload_len", "huge tag length", "17 tags", "a number",
    "a list", "a hash", "the number 2^63"
};

/* The planted bytes of kind k (a genuine value of ours is "planted-value"). */
static size_t bad_bytes(kind k, char *out, size_t cap)
{
    unsigned char *u = (unsigned char *)out;
    size_t n, i;
    uint32_t x = 2463534242u;
    switch (k) {
    case RANDOM:
        for (i = 0; i < 64; i++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            out[i] = (char)x;
        }
        return 64;
    case EMPTY:
        return 0;
    case MAGIC_ONLY:
        memcpy(out, "\xe5SC\x01", 4);
        return 4;
    case TRUNCATED_HEADER:
        return good_envelope(out, cap, 0, "planted-value") - 20 - 13;
    case TRUNCATED_PAYLOAD:
        return good_envelope(out, cap, 0, "planted-value") - 1;
    case HEADER_BIT:
        n = good_envelope(out, cap, 0, "planted-value");
        u[20] ^= 0x08;
        return n;
    case PAYLOAD_BIT_CRC:
        n = good_envelope(out, cap, STRATA__ENV_FLAG_PAYLOAD_CRC, "planted-value");
        u[n - 3] ^= 0x01;
        return n;
    case HUGE_PAYLOAD_LEN:
        n = good_envelope(out, cap, 0, "planted-value");
        u[36] = u[37] = u[38] = 0xff;
        fix_checksum(u, 0);
        return n;
    case HUGE_TAG_LEN:
        n = good_envelope(out, cap, 0, "planted-value");
        u[5] = 1;               /* one tag ... */
        u[44] = u[45] = 0xff;   /* ... of 65535 bytes, in a 13-byte tail */
        fix_checksum(u, 13);
        return n;
    case HUGE_TAG_COUNT:
        n = good_envelope(out, cap, 0, "planted-value");
        u[5] = 17;
        fix_checksum(u, 0);
        return n;
    case NUMBER_TEXT:
        memcpy(out, "12345", 5);
        return 5;
    case COUNTER_2_63:
        memcpy(out, "9223372036854775808", 19);
        return 19;
    default:
        return 0;
    }
}

static int plant_kind(const char *sep, const char *name, kind k)
{
    char buf[256];
    if (k == LIST || k == HASH)
        return plant_type(sep, name, k == LIST ? "list" : "hash");
    return plant(sep, name, buf, bad_bytes(k, buf, sizeof buf), 0);
}

static kind kinds[16];
static size_t nkinds;

static void kinds_for_backend(void)
{
    kind k;
    nkinds = 0;
    for (k = RANDOM; k <= HASH; k++)
        if ((k != LIST && k != HASH) || is("redis"))
            kinds[nkinds++] = k;
    kinds[nkinds++] = COUNTER_2_63; /* issue 11 defect 13: overflow is an error everywhere */
}

/* ---- outcome checks -------------------------------------------------------- */

/* A clean miss, or a clean error: negative code with a message. */
#define CHECK_CLEAN(rc, what, k) do { int r_ = (rc); \
    if (!(r_ == STRATA_MISS || (r_ < 0 && strata_error_last()[0] != '\0'))) { \
        fprintf(stderr, "  FAIL %s (%s:%d): %s over %s: %s (%d), want a miss or an error\n", \
                test_current, __FILE__, __LINE__, what, kind_names[k], strata_error_name(r_), r_); \
        test_failures++; } } while (0)

static int load_calls;

static int loader(void *userdata, const char *key, size_t keylen, strata_load *load)
{
    (void)key; (void)keylen;
    load_calls++;
    if (userdata)
        strata_load_tags(load, (const char *const[]){"t1"}, (const size_t[]){2}, 1);
    return strata_load_value(load, K("loaded"), 0);
}

/* get_or_load must hand back the loader's value (or fail cleanly) in bounded time. */
static void check_loads(strata_cache *c, const char *key, kind k, void *tagged)
{
    strata_value v = STRATA_VALUE_INIT;
    double t0 = now_s();
    int rc = strata_get_or_load(c, K(key), loader, tagged, &v);
    if (rc == STRATA_OK) {
        CHECK_VALUE(&v, "loaded");
    } else if (!(rc < 0 && strata_error_last()[0])) {
        fprintf(stderr, "  FAIL %s: get_or_load over %s: %s\n", test_current, kind_names[k], strata_error_name(rc));
        test_failures++;
    }
    CHECK(now_s() - t0 < 10.0);
    strata_value_dispose(&v);
}

/* ---- the cases ------------------------------------------------------------- */

/* Value key: get, get_many (beside a good key), lookup, get_or_load. */
static void value_key(void)
{
    strata_cache *c = open_cache(NULL);
    size_t i;
    REQUIRE(c != NULL);
    for (i = 0; i < nkinds; i++) {
        char key[32];
        const char *keys[2];
        size_t lens[2];
        strata_value v = STRATA_VALUE_INIT, outs[2] = {STRATA_VALUE_INIT, STRATA_VALUE_INIT};
        strata_ticket *t = NULL;
        int results[2] = {99, 99}, rc;
        kind k = kinds[i];
        snprintf(key, sizeof key, "v%zu", i);
        REQUIRE(plant_kind(":", key, k) == 0);
        CHECK_CLEAN(strata_get(c, K(key), &v), "get", k);
        strata_value_dispose(&v);

        CHECK_RC(strata_set(c, K("good"), K("good-value"), 60000), 0);
        keys[0] = "good"; lens[0] = 4;
        keys[1] = key; lens[1] = strlen(key);
        rc = strata_get_many(c, 2, keys, lens, outs, results);
        if (rc == STRATA_OK) {
            CHECK(results[0] == STRATA_OK);
            if (results[0] == STRATA_OK)
                CHECK_VALUE(&outs[0], "good-value");
            CHECK_CLEAN(results[1], "get_many", k);
        } else {
            CHECK_CLEAN(rc, "get_many", k);
        }
        strata_value_dispose(&outs[0]);
        strata_value_dispose(&outs[1]);

        rc = strata_lookup(c, K(key), &v, &t);
        CHECK(rc != STRATA_OK && rc != STRATA_HIT_REFRESH);
        if (rc < 0)
            CHECK(strata_error_last()[0] != '\0');
        if (t)
            strata_abandon(t);
        strata_value_dispose(&v);

        check_loads(c, key, k, NULL);
        unplant(":", key);
    }
    strata_cache_free(c);
}

/* Lease key: a foreign lease must not keep the loader's value from the caller. */
static void lease_key(void)
{
    strata_cache *c = open_cache(NULL);
    size_t i;
    REQUIRE(c != NULL);
    for (i = 0; i < nkinds; i++) {
        char key[32], buf[256];
        kind k = kinds[i];
        snprintf(key, sizeof key, "l%zu", i);
        if (k == LIST || k == HASH)
            REQUIRE(plant_kind("#L:", key, k) == 0);
        else /* with a TTL: defect 6 (a lease without one) is rel-engine's */
            REQUIRE(plant("#L:", key, buf, bad_bytes(k, buf, sizeof buf), 2000) == 0);
        check_loads(c, key, k, NULL);
        unplant("#L:", key);
        unplant(":", key);
    }
    strata_cache_free(c);
}

/* Tag counter: loads stamped with the tag, then invalidate_tag: either it
 * fails cleanly, or it worked and the stamped entry is never served again. */
static void tag_key(void)
{
    strata_cache *c = open_cache(NULL);
    size_t i;
    REQUIRE(c != NULL);
    for (i = 0; i < nkinds; i++) {
        char key[32];
        strata_value v = STRATA_VALUE_INIT;
        kind k = kinds[i];
        int rc;
        snprintf(key, sizeof key, "t%zu", i);
        REQUIRE(plant_kind("#T:", "t1", k) == 0);
        check_loads(c, key, k, (void *)1);
        rc = strata_invalidate_tag(c, K("t1"));
        if (rc == STRATA_OK) {
            rc = strata_get(c, K(key), &v);
            if (rc == STRATA_OK)
                fprintf(stderr, "  FAIL %s: invalidate_tag over %s returned OK, then get served \"%.*s\"\n",
                        test_current, kind_names[k], (int)v.len, v.data);
            CHECK(rc != STRATA_OK);
        } else {
            CHECK(rc < 0 && strata_error_last()[0] != '\0');
        }
        strata_value_dispose(&v);
        unplant("#T:", "t1");
        unplant(":", key);
    }
    strata_cache_free(c);
}

/* Redis write-behind: a stream key of the wrong type makes write_behind and
 * poll fail cleanly; a damaged latest-token key or foreign stream entries
 * never make poll deliver a value nobody wrote. */
static void write_behind_keys(void)
{
    static const char *const types[] = {"string", "list", "hash"};
    strata_cache *c;
    strata_wb_batch *b = NULL;
    size_t i;
    int rc;
    if (!is("redis")) {
        printf("  (write-behind keys: redis only; the journal file is fuzzed by tests/fuzz/fuzz_journal)\n");
        return;
    }
    c = open_cache("wb_threads=0");
    REQUIRE(c != NULL);
    for (i = 0; i < 3; i++) {
        REQUIRE(plant_type("#W", "", types[i]) == 0);
        rc = strata_write_behind(c, K("wk"), K("w1"), 0);
        CHECK(rc == STRATA_OK || (rc < 0 && strata_error_last()[0] != '\0'));
        rc = strata_wb_poll(c, 10, &b);
        CHECK(rc == STRATA_MISS || (rc < 0 && strata_error_last()[0] != '\0') || rc == STRATA_OK);
        if (b)
            strata_wb_ack(b);
        b = NULL;
        unplant("#W", "");
    }
    /* Refusals (WRONGTYPE) are that call's errors, not an outage (issue 11 defect 5). */
    CHECK_RC(strata_set(c, K("after-refusals"), K("v"), 60000), 0);
    /* foreign entries in the stream, then a real write whose token is damaged */
    freeReplyObject(redisCommand(redis_raw, "XADD %s#W * x y", ns));
    freeReplyObject(redisCommand(redis_raw, "XADD %s#W * k %b", ns, "", (size_t)0));
    freeReplyObject(redisCommand(redis_raw, "XADD %s#W * k only-a-key", ns));
    CHECK_RC(strata_write_behind(c, K("wk2"), K("real"), 0), 0);
    REQUIRE(plant("#W:id:", "wk2", "\xff\x00garbage", 9, 0) == 0);
    rc = strata_wb_poll(c, 10, &b);
    CHECK(rc == STRATA_OK || rc == STRATA_MISS || (rc < 0 && strata_error_last()[0] != '\0'));
    if (rc == STRATA_OK && b) {
        const char *key, *val;
        size_t kl, vl, j;
        for (j = 0; j < strata_wb_batch_count(b); j++) {
            CHECK_RC(strata_wb_batch_item(b, j, &key, &kl, &val, &vl), 0);
            if (kl == 3 && memcmp(key, "wk2", 3) == 0)
                CHECK(vl == 4 && memcmp(val, "real", 4) == 0);
        }
        strata_wb_ack(b);
    }
    strata_cache_free(c);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"value_key", value_key},
        {"lease_key", lease_key},
        {"tag_key", tag_key},
        {"write_behind_keys", write_behind_keys},
    };
    const char *url;
    int rc;
    if (argc < 2) {
        fprintf(stderr, "usage: %s memory|redis|memcached [case]\n", argv[0]);
        return 2;
    }
    backend_name = argv[1];
    url = test_backend_url(backend_name);
    snprintf(ns, sizeof ns, "corr%ld-%d", (long)time(NULL) % 100000, (int)getpid());
    if (is("redis")) {
        char host[256] = "127.0.0.1";
        int port = 6379;
        sscanf(url, "redis://%255[^:/?]:%d", host, &port);
        redis_raw = redisConnect(host, port);
        if (redis_raw == NULL || redis_raw->err) {
            fprintf(stderr, "cannot reach redis at %s:%d\n", host, port);
            return 1;
        }
    } else if (is("memcached")) {
        mc_port = 11211;
        sscanf(url, "memcached://%255[^:/?,]:%d", mc_host, &mc_port);
    } else {
        memory_planter = open_cache(NULL);
        if (memory_planter == NULL)
            return 1;
    }
    kinds_for_backend();
    rc = test_main(argc - 1, argv + 1, cases, sizeof cases / sizeof cases[0]);
    strata_cache_free(memory_planter);
    if (redis_raw)
        redisFree(redis_raw);
    return rc;
}
