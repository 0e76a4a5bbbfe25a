/* The memcached backend against private memcached servers: key safety, item
 * limits, multi-server get_many, the lease protocol, TTLs, counters, dead and
 * paused servers, fork. Also the SHA-256 used for unsafe keys. */
#include "test.h"
#include "server.h"

#include "backend/backend.h"
#include "config.h"
#include "error.h"
#include "platform/platform.h"
#include "policy/sha256.h"

#include <libmemcached/memcached.h>

#include <sys/wait.h>
#include <unistd.h>

static test_server srv_a, srv_b; /* shared, never killed */

/* A backend over the given servers, config built by hand (no URL parser). */
static strata__backend *open_on(const test_server *const *srv, size_t n, int64_t timeout_ms,
                                int64_t connect_timeout_ms, unsigned pool_size)
{
    static strata__config cfg;
    strata_options o = STRATA_OPTIONS_INIT;
    strata__backend *b = NULL;
    size_t i;
    memset(&cfg, 0, sizeof cfg);
    cfg.scheme = STRATA__SCHEME_MEMCACHED;
    for (i = 0; i < n; i++) {
        snprintf(cfg.servers[i].host, sizeof cfg.servers[i].host, "127.0.0.1");
        cfg.servers[i].port = srv[i]->port;
    }
    cfg.nservers = n;
    snprintf(cfg.ns, sizeof cfg.ns, "strata");
    cfg.nslen = 6;
    o.ns = cfg.ns;
    o.timeout_ms = timeout_ms;
    o.connect_timeout_ms = connect_timeout_ms;
    o.pool_size = pool_size;
    o.lease_ttl_ms = 2000;
    cfg.opts = o;
    if (strata__backend_memcached_open(&b, &cfg) != 0)
        return NULL;
    return b;
}

static strata__backend *open_one(const test_server *s)
{
    const test_server *list[1];
    list[0] = s;
    return open_on(list, 1, 500, 1000, 4);
}

static strata__backend *open_two(void)
{
    const test_server *list[2];
    list[0] = &srv_a;
    list[1] = &srv_b;
    return open_on(list, 2, 500, 1000, 4);
}

/* "strata:<unique>-<name>": a full key as the engine passes it. */
static const char *fk(const char *name)
{
    static char ring[8][256];
    static int at;
    char *buf = ring[at++ & 7];
    snprintf(buf, 256, "strata:%s", test_unique(name));
    return buf;
}

#define GET(b, k, out) (b)->ops->get((b), (k), strlen(k), (out))
#define SET(b, k, v, ttl) (b)->ops->set((b), (k), strlen(k), (v), strlen(v), (ttl))
#define DEL(b, k) (b)->ops->del((b), (k), strlen(k))

static int bytes_eq(const strata__bytes *v, const char *s, size_t n)
{
    return v->len == n && (n == 0 || memcmp(v->data, s, n) == 0);
}

static void test_sha256_vectors(void)
{
    static const struct { const char *msg; size_t repeat; const char *hex; } cases[] = {
        {"", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
         "klmnopqrlmnopqrsmnopqrstnopqrstu", 1,
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
        {"a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
    };
    size_t i, j;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t mlen = strlen(cases[i].msg), len = mlen * cases[i].repeat;
        char *buf = malloc(len + 1), hex[65];
        unsigned char d[32];
        for (j = 0; j < cases[i].repeat; j++)
            memcpy(buf + j * mlen, cases[i].msg, mlen);
        strata__sha256(buf, len, d);
        for (j = 0; j < 32; j++)
            snprintf(hex + 2 * j, 3, "%02x", d[j]);
        if (strcmp(hex, cases[i].hex) != 0) {
            fprintf(stderr, "  sha256 case %zu: %s, want %s\n", i, hex, cases[i].hex);
            test_failures++;
        }
        free(buf);
    }
}

static void test_set_get_miss(void)
{
    strata__backend *b = open_one(&srv_a);
    strata__bytes v = {0, 0, 0};
    const char *k = fk("basic"), *missing = fk("missing");
    REQUIRE(b != NULL);
    CHECK_RC(GET(b, missing, &v), STRATA_MISS);
    CHECK_RC(SET(b, k, "hello", 60000), 0);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(bytes_eq(&v, "hello", 5));
    CHECK_RC(SET(b, k, "again", 60000), 0);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(bytes_eq(&v, "again", 5));
    CHECK_RC(b->ops->touch(b, k, strlen(k), 60000), 0);
    CHECK_RC(b->ops->touch(b, missing, strlen(missing), 60000), STRATA_MISS);
    CHECK_RC(DEL(b, k), 0);
    CHECK_RC(GET(b, k, &v), STRATA_MISS);      /* tombstone reads as a miss */
    CHECK_RC(DEL(b, k), STRATA_MISS);          /* nothing live any more */
    CHECK_RC(b->ops->touch(b, k, strlen(k), 60000), STRATA_MISS);
    CHECK_RC(DEL(b, missing), STRATA_MISS);
    /* Empty and binary values round-trip. */
    CHECK_RC(b->ops->set(b, k, strlen(k), "", 0, 60000), 0);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(v.len == 0);
    CHECK_RC(b->ops->set(b, k, strlen(k), "a\0b\r\nc", 6, 60000), 0);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(bytes_eq(&v, "a\0b\r\nc", 6));
    strata__bytes_free(&v);
    b->ops->close(b);
}

/* Keys memcached cannot take raw: stored, read back, kept apart, and the
 * connection stays usable (a raw bad key would desynchronise or abort). */
static void test_unsafe_keys(void)
{
    static const size_t lens[] = {250, 251, 252, 300, 1000, 4096, 4096};
    strata__backend *b = open_one(&srv_a);
    strata__bytes v = {0, 0, 0};
    const char *base = fk("unsafe");
    char keys[12][4200];
    size_t klen[12], n = 0, i;
    char val[32];
    REQUIRE(b != NULL);

    klen[n] = (size_t)snprintf(keys[n], sizeof keys[n], "%s with space", base); n++;
    klen[n] = (size_t)snprintf(keys[n], sizeof keys[n], "%s\nnewline", base); n++;
    klen[n] = (size_t)snprintf(keys[n], sizeof keys[n], "%s\ttab", base); n++;
    klen[n] = (size_t)snprintf(keys[n], sizeof keys[n], "%s\x7f" "del", base); n++;
    klen[n] = (size_t)snprintf(keys[n], sizeof keys[n], "%sXnul", base);
    keys[n][strlen(base)] = '\0'; n++;                       /* embedded NUL */
    for (i = 0; i < sizeof lens / sizeof lens[0]; i++, n++) {
        size_t bl = strlen(base);
        memcpy(keys[n], base, bl);
        memset(keys[n] + bl, 'x', lens[i] - bl);
        klen[n] = lens[i];
    }
    keys[n - 1][4095] = 'y'; /* two 4096-byte keys differing in the last byte */

    for (i = 0; i < n; i++) {
        snprintf(val, sizeof val, "value-%zu", i);
        CHECK_RC(b->ops->set(b, keys[i], klen[i], val, strlen(val), 60000), 0);
    }
    for (i = 0; i < n; i++) {
        snprintf(val, sizeof val, "value-%zu", i);
        CHECK_RC(b->ops->get(b, keys[i], klen[i], &v), 0);
        if (!bytes_eq(&v, val, strlen(val))) {
            fprintf(stderr, "  key %zu (len %zu) read \"%.*s\", want %s\n", i, klen[i],
                    (int)v.len, v.data, val);
            test_failures++;
        }
    }
    /* The key without its NUL tail is a different key. */
    CHECK_RC(b->ops->get(b, keys[4], strlen(base), &v), STRATA_MISS);
    /* Leases on unsafe keys work too. */
    {
        uint64_t guard = 0;
        int64_t wait = 0;
        CHECK_RC(b->ops->lease_acquire(b, keys[0], klen[0], 7, 2000, &guard, &wait), 0);
        CHECK_RC(b->ops->lease_acquire(b, keys[0], klen[0], 8, 2000, &guard, &wait), STRATA_MISS_WAIT);
        CHECK_RC(b->ops->lease_acquire(b, keys[6], klen[6], 9, 2000, &guard, &wait), 0);
        CHECK_RC(b->ops->lease_fill(b, keys[6], klen[6], 9, guard, "filled", 6, 60000), 0);
        CHECK_RC(b->ops->get(b, keys[6], klen[6], &v), 0);
        CHECK(bytes_eq(&v, "filled", 6));
        CHECK_RC(b->ops->lease_release(b, keys[0], klen[0], 7), 0);
    }
    CHECK_RC(b->ops->del(b, keys[1], klen[1]), 0);
    CHECK_RC(b->ops->get(b, keys[1], klen[1], &v), STRATA_MISS);
    /* The connection is still in step. */
    {
        const char *k = fk("after-unsafe");
        CHECK_RC(SET(b, k, "ok", 60000), 0);
        CHECK_RC(GET(b, k, &v), 0);
        CHECK(bytes_eq(&v, "ok", 2));
    }
    strata__bytes_free(&v);
    b->ops->close(b);
}

static void test_too_big(void)
{
    strata__backend *b = open_one(&srv_a);
    strata__bytes v = {0, 0, 0};
    const char *k = fk("big");
    size_t big = 1048512, max;
    char *val = malloc(2 * 1024 * 1024), longkey[300];
    REQUIRE(b != NULL && val != NULL);
    memset(val, 'v', 2 * 1024 * 1024);
    max = b->ops->max_value_size(b);
    CHECK(max > 0 && max < big);

    CHECK_RC(SET(b, k, "small", 60000), 0);
    CHECK_RC(b->ops->set(b, k, strlen(k), val, big, 60000), STRATA_ETOOBIG);
    CHECK_MSG_HAS("1048512");
    CHECK_RC(b->ops->set(b, k, strlen(k), val, 2 * 1024 * 1024, 60000), STRATA_ETOOBIG);
    /* Nothing changed, and the next command works. */
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(bytes_eq(&v, "small", 5));
    CHECK_RC(SET(b, k, "next", 60000), 0);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(bytes_eq(&v, "next", 4));

    /* The advertised maximum fits even under the longest raw key. */
    snprintf(longkey, sizeof longkey, "%s", fk("maxfit"));
    memset(longkey + strlen(longkey), 'k', 250 - strlen(longkey));
    CHECK_RC(b->ops->set(b, longkey, 250, val, max, 60000), 0);
    CHECK_RC(b->ops->get(b, longkey, 250, &v), 0);
    CHECK(v.len == max);
    CHECK_RC(b->ops->set(b, longkey, 250, val, max + 1, 60000), STRATA_ETOOBIG);
    {
        uint64_t guard = 0;
        int64_t wait = 0;
        const char *lk = fk("bigfill");
        CHECK_RC(b->ops->lease_acquire(b, lk, strlen(lk), 1, 2000, &guard, &wait), 0);
        CHECK_RC(b->ops->lease_fill(b, lk, strlen(lk), 1, guard, val, big, 60000), STRATA_ETOOBIG);
        CHECK_RC(b->ops->lease_release(b, lk, strlen(lk), 1), 0);
    }
    CHECK_RC(SET(b, k, "after", 60000), 0);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(bytes_eq(&v, "after", 5));
    free(val);
    strata__bytes_free(&v);
    b->ops->close(b);
}

/* A server whose item limit (512 KiB) is below ours: its own E2BIG must come
 * back as STRATA_ETOOBIG and leave the connection usable. */
static void test_server_e2big(void)
{
    test_server s;
    char port[16];
    pid_t pid;
    int i;
    strata__backend *b;
    strata__bytes v = {0, 0, 0};
    const char *k = fk("e2big");
    size_t size = 700 * 1024;
    char *val = malloc(size);
    REQUIRE(val != NULL);
    memset(val, 'e', size);
    REQUIRE(test_server_start(&s, "memcached") == 0);
    test_server_stop(&s); /* keep the port, restart with -I */
    snprintf(port, sizeof port, "%d", s.port);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        execlp("memcached", "memcached", "-l", "127.0.0.1", "-p", port, "-U", "0", "-m", "64",
               "-I", "512k", "-u", "root", (char *)NULL);
        _exit(127);
    }
    s.pid = pid;
    b = open_one(&s);
    /* the restarted server may take seconds to listen on a loaded machine; each
     * refused connect backs the server off, so wait out up to 15 s of tries */
    for (i = 0; i < 300 && SET(b, k, "small", 60000) != 0; i++)
        strata__sleep_ms(50);
    REQUIRE(SET(b, k, "small", 60000) == 0);
    CHECK_RC(b->ops->set(b, k, strlen(k), val, size, 60000), STRATA_ETOOBIG);
    CHECK_MSG_HAS("716800");
    CHECK_RC(SET(b, k, "next", 60000), 0);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(bytes_eq(&v, "next", 4));
    b->ops->close(b);
    test_server_stop(&s);
    strata__bytes_free(&v);
    free(val);
}

/* A raw single-server client, to see where keys landed. */
static int raw_has(const test_server *s, const char *key)
{
    memcached_st *m = memcached_create(NULL);
    memcached_return_t rc;
    size_t len;
    uint32_t flags;
    char *v;
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
    memcached_server_add(m, "127.0.0.1", (in_port_t)s->port);
    v = memcached_get(m, key, strlen(key), &len, &flags, &rc);
    free(v);
    memcached_free(m);
    return rc == MEMCACHED_SUCCESS;
}

static void test_get_many_two_servers(void)
{
    enum { N = 40 };
    strata__backend *b = open_two();
    char keys[N][64], val[32];
    const char *q[N + 8];
    size_t ql[N + 8], i, nq = 0, on_a = 0, on_b = 0;
    strata__bytes outs[N + 8];
    int rcs[N + 8];
    char longkey[600];
    char missing[64];
    REQUIRE(b != NULL);
    memset(outs, 0, sizeof outs);
    snprintf(missing, sizeof missing, "%s", fk("gm-missing"));

    for (i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "%s", fk("gm"));
        snprintf(val, sizeof val, "v%zu", i);
        CHECK_RC(SET(b, keys[i], val, 60000), 0);
        on_a += raw_has(&srv_a, keys[i]);
        on_b += raw_has(&srv_b, keys[i]);
    }
    /* Every key is on exactly one server, and both servers got some. */
    CHECK(on_a + on_b == N);
    CHECK(on_a > 0 && on_b > 0);

    snprintf(longkey, sizeof longkey, "%s", fk("gm-long"));
    memset(longkey + strlen(longkey), 'L', 500 - strlen(longkey));
    longkey[500] = '\0';
    CHECK_RC(SET(b, longkey, "long", 60000), 0);
    CHECK_RC(SET(b, keys[3], "v3", 60000), 0);

    for (i = 0; i < N; i += 2) {
        q[nq] = keys[i];
        ql[nq++] = strlen(keys[i]);
    }
    q[nq] = missing; ql[nq++] = strlen(missing);
    q[nq] = keys[4]; ql[nq++] = strlen(keys[4]);   /* repeated */
    q[nq] = longkey; ql[nq++] = 500;               /* hashed */
    q[nq] = keys[4]; ql[nq++] = strlen(keys[4]);   /* repeated again */
    q[nq] = longkey; ql[nq++] = 500;
    q[nq] = missing; ql[nq++] = strlen(missing);
    CHECK_RC(DEL(b, keys[2]), 0);                  /* tombstone: a miss */

    CHECK_RC(b->ops->get_many(b, nq, q, ql, outs, rcs), 0);
    for (i = 0; i < N / 2; i++) {
        snprintf(val, sizeof val, "v%zu", 2 * i);
        if (2 * i == 2) {
            CHECK(rcs[i] == STRATA_MISS);
            continue;
        }
        CHECK(rcs[i] == 0);
        if (rcs[i] == 0 && !bytes_eq(&outs[i], val, strlen(val))) {
            fprintf(stderr, "  get_many[%zu] = %.*s, want %s\n", i, (int)outs[i].len,
                    outs[i].data, val);
            test_failures++;
        }
    }
    i = N / 2;
    CHECK(rcs[i] == STRATA_MISS);
    CHECK(rcs[i + 1] == 0 && bytes_eq(&outs[i + 1], "v4", 2));
    CHECK(rcs[i + 2] == 0 && bytes_eq(&outs[i + 2], "long", 4));
    CHECK(rcs[i + 3] == 0 && bytes_eq(&outs[i + 3], "v4", 2));
    CHECK(rcs[i + 4] == 0 && bytes_eq(&outs[i + 4], "long", 4));
    CHECK(rcs[i + 5] == STRATA_MISS);
    CHECK_RC(b->ops->get_many(b, 0, q, ql, outs, rcs), 0);
    for (i = 0; i < N + 8; i++)
        strata__bytes_free(&outs[i]);
    b->ops->close(b);
}

static void test_lease_protocol(void)
{
    strata__backend *b = open_two();
    strata__bytes v = {0, 0, 0};
    uint64_t g1 = 0, g2 = 0;
    int64_t wait = 0;
    const char *k;
    REQUIRE(b != NULL);

    /* Plain path: absent at acquire, fill stores, lease is released. */
    k = fk("lease-plain");
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 1, 2000, &g1, &wait), 0);
    CHECK(g1 == 0);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 1, g1, "loaded", 6, 60000), 0);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(bytes_eq(&v, "loaded", 6));
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 2, 2000, &g2, &wait), 0); /* stale refresh */
    CHECK(g2 != 0);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 2, g2, "refreshed", 9, 60000), 0);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(bytes_eq(&v, "refreshed", 9));

    /* Exclusive: a second acquire waits, with the holder's remaining time. */
    k = fk("lease-excl");
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 10, 2000, &g1, &wait), 0);
    wait = 0;
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 11, 2000, &g2, &wait), STRATA_MISS_WAIT);
    CHECK(wait > 0 && wait <= 2000);
    /* The loser cannot fill; the holder can. */
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 11, 0, "thief", 5, 60000), STRATA_ELEASE);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 10, g1, "mine", 4, 60000), 0);

    /* Release: the next caller leads at once; a stranger's release is a no-op. */
    k = fk("lease-release");
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 20, 2000, &g1, &wait), 0);
    CHECK_RC(b->ops->lease_release(b, k, strlen(k), 99), 0);
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 21, 2000, &g2, &wait), STRATA_MISS_WAIT);
    CHECK_RC(b->ops->lease_release(b, k, strlen(k), 20), 0);
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 21, 2000, &g2, &wait), 0);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 20, g1, "old", 3, 60000), STRATA_ELEASE);
    CHECK_RC(b->ops->lease_release(b, k, strlen(k), 21), 0);

    /* del kills the lease: the fill is refused and nothing is stored. */
    k = fk("lease-del");
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 30, 2000, &g1, &wait), 0);
    CHECK_RC(DEL(b, k), STRATA_MISS);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 30, g1, "stale", 5, 60000), STRATA_ELEASE);
    CHECK_RC(GET(b, k, &v), STRATA_MISS);
    /* ... and after the delete a new leader may fill over the tombstone. */
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 31, 2000, &g2, &wait), 0);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 31, g2, "fresh", 5, 60000), 0);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(bytes_eq(&v, "fresh", 5));

    /* del kills the lease also when a value was present at acquire. */
    k = fk("lease-del2");
    CHECK_RC(SET(b, k, "v1", 60000), 0);
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 35, 2000, &g1, &wait), 0);
    CHECK_RC(DEL(b, k), 0);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 35, g1, "stale", 5, 60000), STRATA_ELEASE);
    CHECK_RC(GET(b, k, &v), STRATA_MISS);

    /* set kills the lease: the newer write stays. */
    k = fk("lease-set");
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 40, 2000, &g1, &wait), 0);
    CHECK_RC(SET(b, k, "written", 60000), 0);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 40, g1, "stale", 5, 60000), STRATA_ELEASE);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(bytes_eq(&v, "written", 7));

    /* Absent at acquire, then set + del by someone else: the add-fill must fail. */
    k = fk("lease-setdel");
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 50, 2000, &g1, &wait), 0);
    CHECK(g1 == 0);
    CHECK_RC(SET(b, k, "x", 60000), 0);
    CHECK_RC(DEL(b, k), 0);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 50, g1, "stale", 5, 60000), STRATA_ELEASE);
    CHECK_RC(GET(b, k, &v), STRATA_MISS);

    strata__bytes_free(&v);
    b->ops->close(b);
}

static void test_lease_expiry(void)
{
    strata__backend *b = open_one(&srv_a);
    strata__bytes v = {0, 0, 0};
    uint64_t g1 = 0, g2 = 0;
    int64_t wait = 0;
    const char *k = fk("lease-expiry");
    REQUIRE(b != NULL);
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 1, 1000, &g1, &wait), 0);
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 2, 1000, &g2, &wait), STRATA_MISS_WAIT);
    CHECK(wait > 0 && wait <= 1000);
    strata__sleep_ms(2200); /* memcached's clock ticks in whole seconds */
    CHECK_RC(b->ops->lease_acquire(b, k, strlen(k), 2, 1000, &g2, &wait), 0);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 1, g1, "late", 4, 60000), STRATA_ELEASE);
    CHECK_RC(b->ops->lease_fill(b, k, strlen(k), 2, g2, "new", 3, 60000), 0);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(bytes_eq(&v, "new", 3));
    strata__bytes_free(&v);
    b->ops->close(b);
}

static void test_ttl(void)
{
    strata__backend *b = open_one(&srv_a);
    strata__bytes v = {0, 0, 0};
    const char *k = fk("ttl"), *month = fk("ttl-month"), *touched = fk("ttl-touch");
    REQUIRE(b != NULL);
    CHECK_RC(SET(b, k, "short", 1), 0);           /* 1 ms rounds up to 1 s */
    CHECK_RC(SET(b, month, "long", (int64_t)31 * 24 * 3600 * 1000), 0); /* unix-time form */
    CHECK_RC(SET(b, touched, "t", 1000), 0);
    CHECK_RC(b->ops->touch(b, touched, strlen(touched), 60000), 0);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK_RC(GET(b, month, &v), 0);
    strata__sleep_ms(2200);
    CHECK_RC(GET(b, k, &v), STRATA_MISS);
    CHECK_RC(GET(b, month, &v), 0);
    CHECK(bytes_eq(&v, "long", 4));
    CHECK_RC(GET(b, touched, &v), 0);
    strata__bytes_free(&v);
    b->ops->close(b);
}

static void test_incr(void)
{
    strata__backend *b = open_two();
    strata__bytes v = {0, 0, 0};
    const char *k = fk("counter");
    int64_t out = -1;
    REQUIRE(b != NULL);
    CHECK_RC(b->ops->incr(b, k, strlen(k), 1, &out), 0);
    CHECK(out == 1);
    CHECK_RC(b->ops->incr(b, k, strlen(k), 5, &out), 0);
    CHECK(out == 6);
    CHECK_RC(b->ops->incr(b, k, strlen(k), -2, &out), 0);
    CHECK(out == 4);
    CHECK_RC(b->ops->incr(b, k, strlen(k), (int64_t)1 << 40, &out), 0);
    CHECK(out == ((int64_t)1 << 40) + 4);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(bytes_eq(&v, "1099511627780", 13));
    /* A deleted counter starts again from 0. */
    CHECK_RC(DEL(b, k), 0);
    CHECK_RC(b->ops->incr(b, k, strlen(k), 1, &out), 0);
    CHECK(out == 1);
    /* Decrement stops at 0 (memcached counters are unsigned). */
    CHECK_RC(b->ops->incr(b, k, strlen(k), -10, &out), 0);
    CHECK(out == 0);
    strata__bytes_free(&v);
    b->ops->close(b);
}

static int is_failure(int rc)
{
    return rc == STRATA_EBACKEND || rc == STRATA_ETIMEOUT;
}

/* Retries set+get until both work or the limit passes; returns elapsed ms or -1. */
static int64_t recover(strata__backend *b, const char *k, int64_t limit_ms)
{
    strata__bytes v = {0, 0, 0};
    int64_t start = strata__now_mono_ms();
    while (strata__now_mono_ms() - start < limit_ms) {
        if (SET(b, k, "back", 60000) == 0 && GET(b, k, &v) == 0 && bytes_eq(&v, "back", 4)) {
            strata__bytes_free(&v);
            return strata__now_mono_ms() - start;
        }
        strata__sleep_ms(50);
    }
    strata__bytes_free(&v);
    return -1;
}

static void test_server_killed(void)
{
    test_server s;
    const test_server *list[1];
    strata__backend *b;
    strata__bytes v = {0, 0, 0};
    const char *k = fk("killed");
    int i;
    REQUIRE(test_server_start(&s, "memcached") == 0);
    list[0] = &s;
    b = open_on(list, 1, 200, 300, 2);
    REQUIRE(b != NULL);
    CHECK_RC(SET(b, k, "before", 60000), 0);
    test_server_stop(&s);
    for (i = 0; i < 10; i++) {
        int64_t t0 = strata__now_mono_ms(), dt;
        int rc = i % 2 ? GET(b, k, &v) : SET(b, k, "during", 60000);
        dt = strata__now_mono_ms() - t0;
        CHECK(is_failure(rc));
        if (dt > 200 + 300 + 1000) {
            fprintf(stderr, "  call %d took %lld ms\n", i, (long long)dt);
            test_failures++;
        }
        if (i == 0 || i == 9) {
            char port[16];
            snprintf(port, sizeof port, ":%d", s.port);
            CHECK_MSG_HAS(port);
        }
    }
    REQUIRE(test_server_restart(&s) == 0);
    CHECK(recover(b, k, 10000) >= 0);
    b->ops->close(b);
    test_server_stop(&s);
    strata__bytes_free(&v);
}

/* SIGSTOP takes effect asynchronously: wait until the kernel shows it stopped. */
static void wait_stopped(const test_server *s)
{
    char path[64], buf[512], *p;
    int i;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)s->pid);
    for (i = 0; i < 100; i++) {
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        p = strrchr(buf, ')');
        if (p && p[1] == ' ' && (p[2] == 'T' || p[2] == 't'))
            return;
        strata__sleep_ms(10);
    }
}

static void test_server_paused(void)
{
    test_server s;
    const test_server *list[1];
    strata__backend *b;
    strata__bytes v = {0, 0, 0};
    const char *k = fk("paused");
    int i;
    REQUIRE(test_server_start(&s, "memcached") == 0);
    list[0] = &s;
    b = open_on(list, 1, 200, 300, 2);
    REQUIRE(b != NULL);
    CHECK_RC(SET(b, k, "before", 60000), 0);
    test_server_pause(&s);
    wait_stopped(&s);
    for (i = 0; i < 6; i++) {
        int64_t t0 = strata__now_mono_ms(), dt;
        int rc = i % 2 ? GET(b, k, &v) : SET(b, k, "during", 60000);
        dt = strata__now_mono_ms() - t0;
        if (!is_failure(rc)) {
            fprintf(stderr, "  call %d while paused returned %s\n", i, strata_error_name(rc));
            test_failures++;
        }
        if (dt >= 1500) {
            fprintf(stderr, "  call %d took %lld ms\n", i, (long long)dt);
            test_failures++;
        }
    }
    test_server_resume(&s);
    CHECK(recover(b, k, 10000) >= 0);
    /* No reply from the paused period is read as a later command's answer. */
    CHECK_RC(SET(b, k, "in-step", 60000), 0);
    CHECK_RC(GET(b, k, &v), 0);
    CHECK(bytes_eq(&v, "in-step", 7));
    b->ops->close(b);
    test_server_stop(&s);
    strata__bytes_free(&v);
}

/* A get_many that times out on one server (issue 11 #14) names that server
 * and backs it off, as get does: the next call fails fast. */
static void test_get_many_timeout_backs_off(void)
{
    test_server s;
    const test_server *list[2];
    strata__backend *b;
    const char *keys[20];
    size_t lens[20], i;
    strata__bytes outs[20];
    int rcs[20], rc, k;
    char name[64];
    int64_t t0;
    REQUIRE(test_server_start(&s, "memcached") == 0);
    list[0] = &srv_a;
    list[1] = &s;
    b = open_on(list, 2, 300, 300, 2);
    REQUIRE(b != NULL);
    memset(outs, 0, sizeof outs);
    for (i = 0; i < 20; i++) { /* 20 keys: some land on each server */
        keys[i] = fk("gm-timeout");
        lens[i] = strlen(keys[i]);
    }
    {
        static char keep[20][256];
        for (i = 0; i < 20; i++) {
            snprintf(keep[i], sizeof keep[i], "%s", keys[i]);
            keys[i] = keep[i];
        }
    }
    CHECK_RC(b->ops->get_many(b, 20, keys, lens, outs, rcs), 0);
    test_server_pause(&s);
    wait_stopped(&s);
    snprintf(name, sizeof name, "memcached 127.0.0.1:%d:", s.port);
    /* three real timeouts, each after the previous backoff ran out: 50, 100, 200 ms */
    for (k = 0; k < 3; k++) {
        rc = b->ops->get_many(b, 20, keys, lens, outs, rcs);
        CHECK(is_failure(rc));
        CHECK(strncmp(strata_error_last(), name, strlen(name)) == 0);
        if (k == 0 && strncmp(strata_error_last(), name, strlen(name)) != 0)
            fprintf(stderr, "  message: %s\n", strata_error_last());
        if (k < 2)
            strata__sleep_ms((50 << k) + 30);
    }
    /* inside the 200 ms backoff now: refused at once, naming the server */
    t0 = strata__now_mono_ms();
    rc = b->ops->get_many(b, 20, keys, lens, outs, rcs);
    CHECK(is_failure(rc));
    CHECK_MSG_HAS("backoff");
    CHECK(strncmp(strata_error_last(), name, strlen(name)) == 0);
    CHECK(strata__now_mono_ms() - t0 < 150);
    test_server_resume(&s);
    for (i = 0; i < 20; i++)
        strata__bytes_free(&outs[i]);
    b->ops->close(b);
    test_server_stop(&s);
}

static void test_open_while_down(void)
{
    test_server s;
    const test_server *list[1];
    strata__backend *b;
    strata__bytes v = {0, 0, 0};
    const char *k = fk("down");
    int64_t t0;
    REQUIRE(test_server_start(&s, "memcached") == 0);
    test_server_stop(&s);
    list[0] = &s;
    b = open_on(list, 1, 200, 300, 2);
    REQUIRE(b != NULL);
    t0 = strata__now_mono_ms();
    CHECK(is_failure(GET(b, k, &v)));
    CHECK(strata__now_mono_ms() - t0 < 1500);
    REQUIRE(test_server_restart(&s) == 0);
    CHECK(recover(b, k, 10000) >= 0);
    b->ops->close(b);
    test_server_stop(&s);
    strata__bytes_free(&v);
}

static void test_fork(void)
{
    strata__backend *b = open_two();
    strata__bytes v = {0, 0, 0};
    const char *k = fk("fork-parent"), *kc = fk("fork-child");
    pid_t pid;
    int status = -1, i;
    REQUIRE(b != NULL);
    /* The parent's pooled handle now holds open sockets. */
    CHECK_RC(SET(b, k, "parent", 60000), 0);
    CHECK_RC(GET(b, k, &v), 0);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int bad = 0;
        strata__bytes cv = {0, 0, 0};
        bad |= SET(b, kc, "child", 60000) != 0;
        bad |= GET(b, kc, &cv) != 0 || !bytes_eq(&cv, "child", 5);
        bad |= GET(b, k, &cv) != 0 || !bytes_eq(&cv, "parent", 6);
        strata__bytes_free(&cv);
        b->ops->close(b); /* closes the child's pool only */
        _exit(bad);
    }
    /* Meanwhile the parent keeps using its own connections. */
    for (i = 0; i < 20; i++)
        CHECK_RC(GET(b, k, &v), 0);
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (i = 0; i < 20; i++) {
        CHECK_RC(GET(b, k, &v), 0);
        CHECK(bytes_eq(&v, "parent", 6));
    }
    CHECK_RC(GET(b, kc, &v), 0);
    CHECK(bytes_eq(&v, "child", 5));
    strata__bytes_free(&v);
    b->ops->close(b);
}

typedef struct hammer_arg {
    strata__backend *b;
    int failures;
    int id;
} hammer_arg;

static void *hammer(void *p)
{
    hammer_arg *a = p;
    strata__bytes v = {0, 0, 0};
    char k[128], val[32];
    int i;
    for (i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "strata:hammer-%d-%d-%d", (int)getpid(), a->id, i % 10);
        snprintf(val, sizeof val, "%d-%d", a->id, i);
        if (a->b->ops->set(a->b, k, strlen(k), val, strlen(val), 60000) != 0 ||
            a->b->ops->get(a->b, k, strlen(k), &v) != 0 || !bytes_eq(&v, val, strlen(val)))
            a->failures++;
    }
    strata__bytes_free(&v);
    return NULL;
}

/* More threads than pooled connections: they queue for handles, all succeed. */
static void test_threads(void)
{
    const test_server *list[2];
    strata__thread t[8];
    hammer_arg args[8];
    strata__backend *b;
    int i;
    list[0] = &srv_a;
    list[1] = &srv_b;
    b = open_on(list, 2, 2000, 1000, 2);
    REQUIRE(b != NULL);
    for (i = 0; i < 8; i++) {
        args[i].b = b;
        args[i].failures = 0;
        args[i].id = i;
        REQUIRE(strata__thread_start(&t[i], hammer, &args[i]) == 0);
    }
    for (i = 0; i < 8; i++) {
        strata__thread_join(t[i]);
        CHECK(args[i].failures == 0);
    }
    b->ops->close(b);
}

static const test_case cases[] = {
    {"sha256_vectors", test_sha256_vectors},
    {"set_get_miss", test_set_get_miss},
    {"unsafe_keys", test_unsafe_keys},
    {"too_big", test_too_big},
    {"server_e2big", test_server_e2big},
    {"get_many_two_servers", test_get_many_two_servers},
    {"get_many_timeout_backs_off", test_get_many_timeout_backs_off},
    {"lease_protocol", test_lease_protocol},
    {"lease_expiry", test_lease_expiry},
    {"ttl", test_ttl},
    {"incr", test_incr},
    {"threads", test_threads},
    {"fork", test_fork},
    {"server_killed", test_server_killed},
    {"server_paused", test_server_paused},
    {"open_while_down", test_open_while_down},
};

int main(int argc, char **argv)
{
    int rc;
    if (test_server_start(&srv_a, "memcached") != 0 || test_server_start(&srv_b, "memcached") != 0) {
        printf("skipped: cannot start memcached\n");
        test_server_stop(&srv_a);
        return 77;
    }
    rc = test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
    test_server_stop(&srv_a);
    test_server_stop(&srv_b);
    return rc;
}
