/* Redis Cluster (redis+cluster://): the slot function and the redirect codec
 * (pure), then the cache against the 3-master cluster of
 * scripts/test-servers.sh (STRATA_TEST_REDIS_CLUSTER_URL / _PORTS): keys spread
 * over every master, leases beside their values, a slot resharded under a
 * reader (MOVED), a half-migrated slot (ASK), a stopped master, bad URLs. */
#define _GNU_SOURCE
#include "raw_write.h"
#include "test.h"

#include "backend/redis/protocol.h"
#include "backend/redis/redirect.h"
#include "backend/redis/slot.h"
#include "platform/platform.h"

#include <hiredis/hiredis.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <unistd.h>

#define NMASTERS 3
#define TIMEOUT_MS 300

static const char *cluster_url;
static int ports[NMASTERS];
static int nports;

static int have_cluster(void)
{
    const char *p = getenv("STRATA_TEST_REDIS_CLUSTER_PORTS");
    cluster_url = getenv("STRATA_TEST_REDIS_CLUSTER_URL");
    if (cluster_url == NULL || *cluster_url == '\0' || p == NULL) {
        printf("  skipped: no Redis Cluster (set STRATA_TEST_REDIS_CLUSTER_URL and _PORTS; `make test` does)\n");
        return 0;
    }
    if (nports == 0) {
        char *end;
        while (nports < NMASTERS && *p) {
            ports[nports++] = (int)strtol(p, &end, 10);
            p = end;
            while (*p == ' ')
                p++;
        }
    }
    return nports == NMASTERS;
}


static long long raw_int(int port, const char *fmt, const char *arg)
{
    redisContext *c = test_redis_raw(port);
    redisReply *r;
    long long v = -1;
    if (c == NULL)
        return -1;
    if ((r = redisCommand(c, fmt, arg)) != NULL) {
        if (r->type == REDIS_REPLY_INTEGER)
            v = r->integer;
        freeReplyObject(r);
    }
    redisFree(c);
    return v;
}

/* A field of an INFO-style reply ("process_id:", "cluster_state:"): its
 * text after the colon into buf; 0, or -1 when absent. */
static int info_text(int port, const char *cmd, const char *field, char *buf, size_t size)
{
    redisContext *c = test_redis_raw(port);
    redisReply *r;
    int rc = -1;
    if (c == NULL)
        return -1;
    if ((r = redisCommand(c, cmd)) != NULL && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, field);
        if (p) {
            p += strlen(field);
            snprintf(buf, size, "%.*s", (int)strcspn(p, "\r\n"), p);
            rc = 0;
        }
    }
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return rc;
}

static int node_pid(int port)
{
    char v[32];
    return info_text(port, "INFO server", "process_id:", v, sizeof v) == 0 ? atoi(v) : -1;
}

static int known_nodes(int port)
{
    char v[32];
    return info_text(port, "CLUSTER INFO", "cluster_known_nodes:", v, sizeof v) == 0 ? atoi(v) : -1;
}

/* State ok and every slot's owner known: with --cluster-require-full-coverage
 * no, a node that joined says ok before gossip told it who serves each slot
 * (until then it answers CLUSTERDOWN Hash slot not served). */
static int state_ok(int port)
{
    char v[32], n[32];
    return info_text(port, "CLUSTER INFO", "cluster_state:", v, sizeof v) == 0 && strcmp(v, "ok") == 0 &&
           info_text(port, "CLUSTER INFO", "cluster_slots_assigned:", n, sizeof n) == 0 && strcmp(n, "16384") == 0;
}

/* The master port that owns slot (by CLUSTER SLOTS on the first master). */
static int owner_of(unsigned int slot)
{
    redisContext *c = test_redis_raw(ports[0]);
    redisReply *r;
    int port = -1;
    size_t i;
    if (c == NULL)
        return -1;
    if ((r = redisCommand(c, "CLUSTER SLOTS")) != NULL && r->type == REDIS_REPLY_ARRAY)
        for (i = 0; i < r->elements; i++) {
            redisReply *x = r->element[i];
            if (x->element[0]->integer <= (long long)slot && (long long)slot <= x->element[1]->integer)
                port = (int)x->element[2]->element[1]->integer;
        }
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return port;
}

static void node_id(int port, char *out, size_t size)
{
    redisContext *c = test_redis_raw(port);
    redisReply *r;
    out[0] = '\0';
    if (c == NULL)
        return;
    if ((r = redisCommand(c, "CLUSTER MYID")) != NULL && r->type == REDIS_REPLY_STRING)
        snprintf(out, size, "%s", r->str);
    if (r)
        freeReplyObject(r);
    redisFree(c);
}

static int command_ok(int port, const char *fmt, ...)
{
    redisContext *c = test_redis_raw(port);
    redisReply *r;
    va_list ap;
    int ok;
    if (c == NULL)
        return 0;
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    ok = r != NULL && r->type != REDIS_REPLY_ERROR;
    if (r && !ok)
        fprintf(stderr, "  (port %d: %s)\n", port, r->str);
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}

static strata_cache *open_cluster(const char *extra)
{
    char url[1024];
    strata_cache *c = NULL;
    snprintf(url, sizeof url, "%s?timeout_ms=%d&connect_timeout_ms=%d&breaker_threshold=0&l1=0%s", cluster_url,
             TIMEOUT_MS, TIMEOUT_MS, extra ? extra : "");
    if (strata_cache_new(&c, url, NULL) != 0)
        fprintf(stderr, "  open %s: %s\n", url, strata_error_last());
    return c;
}

/* A user key whose full key "strata:<key>" lands in slot `slot` (the key is
 * "{<tag>}<suffix>" with a tag found by trying). */
static void key_in_slot(unsigned int slot, const char *suffix, char *out, size_t size)
{
    unsigned int i;
    char tag[32];
    for (i = 0;; i++) {
        snprintf(tag, sizeof tag, "t%u", i);
        if (strata__cluster_slot(tag, strlen(tag)) == slot)
            break;
    }
    snprintf(out, size, "{%s}%s", tag, suffix);
}

static int set_str(strata_cache *c, const char *k, const char *v)
{
    return strata_set(c, k, strlen(k), v, strlen(v), 60000);
}

static int get_is(strata_cache *c, const char *k, const char *want)
{
    strata_value v = STRATA_VALUE_INIT;
    int rc = strata_get(c, k, strlen(k), &v), ok;
    ok = rc == 0 && v.len == strlen(want) && memcmp(v.data, want, v.len) == 0;
    if (!ok)
        fprintf(stderr, "  get %s: %s (%d) \"%.*s\", want \"%s\"; %s\n", k, strata_error_name(rc), rc,
                (int)(v.len > 60 ? 60 : v.len), v.data ? v.data : "", want, strata_error_last());
    strata_value_dispose(&v);
    return ok;
}

/* ---- pure --------------------------------------------------------------- */

static void t_slot_vectors(void)
{
    static const struct { const char *key; unsigned int slot; } v[] = {
        {"123456789", 12739},       {"{user:42}:profile", 15880}, {"{user:42}:tags", 15880},
        {"user:42", 15880},         {"{}foo", 9500},              {"a{}{b}", 15033},
    };
    size_t i, start = 0, len = 0;
    CHECK(strata__crc16("123456789", 9) == 0x31C3);
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        unsigned int s = strata__cluster_slot(v[i].key, strlen(v[i].key));
        if (s != v[i].slot)
            fprintf(stderr, "  slot(%s) = %u, want %u\n", v[i].key, s, v[i].slot);
        CHECK(s == v[i].slot);
    }
    CHECK(strata__cluster_hashtag("x{ab}c{d}", 9, &start, &len) == 1 && start == 2 && len == 2);
    CHECK(strata__cluster_hashtag("{ab", 3, &start, &len) == 0);
    CHECK(strata__cluster_hashtag("", 0, &start, &len) == 0);
}

/* The cluster lease key hashes like its value key, by Redis's own rule too
 * (CLUSTER KEYSLOT on a live node when there is one). */
static void t_lease_key_shares_the_slot(void)
{
    static const char *const fks[] = {"strata:plain", "strata:{user:42}:profile", "strata:a{b", "strata:{}",
                                      "strata:x{y}z}"};
    size_t i;
    for (i = 0; i < sizeof fks / sizeof fks[0]; i++) {
        char lk[256];
        size_t start, len, fklen = strlen(fks[i]), lklen;
        if (strata__cluster_hashtag(fks[i], fklen, &start, &len))
            lklen = strata__redis_lease_key("strata", 6, fks[i] + 7, fklen - 7, lk);
        else if (memchr(fks[i], '}', fklen) == NULL)
            lklen = strata__redis_cluster_lease_key("strata", 6, fks[i], fklen, lk);
        else
            continue; /* refused (t_awkward_keys) */
        lk[lklen] = '\0';
        CHECK(strata__cluster_slot(lk, lklen) == strata__cluster_slot(fks[i], fklen));
        if (have_cluster()) {
            CHECK(raw_int(ports[0], "CLUSTER KEYSLOT %s", lk) == (long long)strata__cluster_slot(fks[i], fklen));
            CHECK(raw_int(ports[0], "CLUSTER KEYSLOT %s", fks[i]) == (long long)strata__cluster_slot(fks[i], fklen));
        }
    }
}

static redisReply err_reply(const char *s)
{
    redisReply r;
    memset(&r, 0, sizeof r);
    r.type = REDIS_REPLY_ERROR;
    r.str = (char *)s;
    r.len = strlen(s);
    return r;
}

static void t_redirect_codec(void)
{
    redisReply ok, e1 = err_reply("MOVED 3999 127.0.0.1:6381"), e2 = err_reply("ASK 12182 ::1:30006"),
               e3 = err_reply("TRYAGAIN Multiple keys request during rehashing of slot"),
               e4 = err_reply("CLUSTERDOWN The cluster is down"), e5 = err_reply("MOVED 99999 h:1"),
               e6 = err_reply("MOVEDX 1 h:1"), e7 = err_reply("MOVED 7 :6380");
    redisReply *r[2];
    strata__redirect d;
    strata__redis_req q = {{0, 0, 0}, 0}, a = {{0, 0, 0}, 0};
    unsigned char mask[16];
    const char *get[2] = {"GET", "k"};
    size_t getl[2] = {3, 1};
    static const char want[] = "*1\r\n$6\r\nASKING\r\n*1\r\n$5\r\nMULTI\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
                               "*1\r\n$4\r\nEXEC\r\n*1\r\n$6\r\nASKING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    memset(&ok, 0, sizeof ok);
    ok.type = REDIS_REPLY_STATUS;
    r[0] = &ok;
    r[1] = &e1;
    CHECK(strata__rp_redirect(r, 2, &d) == STRATA__REDIRECT_MOVED && d.slot == 3999 && d.port == 6381 &&
          d.hostlen == 9 && memcmp(d.host, "127.0.0.1", 9) == 0);
    r[1] = &e2;
    CHECK(strata__rp_redirect(r, 2, &d) == STRATA__REDIRECT_ASK && d.slot == 12182 && d.port == 30006 &&
          d.hostlen == 3 && memcmp(d.host, "::1", 3) == 0);
    r[1] = &e3;
    CHECK(strata__rp_redirect(r, 2, &d) == STRATA__REDIRECT_TRYAGAIN);
    r[1] = &e4;
    CHECK(strata__rp_redirect(r, 2, &d) == STRATA__REDIRECT_CLUSTERDOWN);
    r[1] = &e5;
    CHECK(strata__rp_redirect(r, 2, &d) == STRATA__REDIRECT_NONE); /* no such slot */
    r[1] = &e6;
    CHECK(strata__rp_redirect(r, 2, &d) == STRATA__REDIRECT_NONE);
    r[1] = &e7;
    CHECK(strata__rp_redirect(r, 2, &d) == STRATA__REDIRECT_MOVED && d.hostlen == 0 && d.port == 6380);
    CHECK(strata__rp_redirect(r, 1, &d) == STRATA__REDIRECT_NONE);

    /* ASKING before MULTI covers the block; a lone command gets its own. */
    CHECK_RC(strata__redis_cmd1(&q, "MULTI"), 0);
    CHECK_RC(strata__redis_cmd(&q, 2, get, getl), 0);
    CHECK_RC(strata__redis_cmd1(&q, "EXEC"), 0);
    CHECK_RC(strata__redis_cmd(&q, 2, get, getl), 0);
    CHECK_RC(strata__rq_asking(&q, &a, mask), 0);
    CHECK(a.nreplies == 6 && mask[0] == 1 && mask[1] == 0 && mask[2] == 0 && mask[3] == 0 && mask[4] == 1 &&
          mask[5] == 0);
    CHECK(a.buf.len == sizeof want - 1 && memcmp(a.buf.data, want, a.buf.len) == 0);
    q.buf.len -= 3; /* a cut command is refused, not read past its end */
    CHECK_RC(strata__rq_asking(&q, &a, mask), STRATA_EINVAL);
    strata__redis_req_free(&q);
    strata__redis_req_free(&a);
}

/* ---- URLs ---------------------------------------------------------------- */

static void t_bad_urls(void)
{
    static const struct { const char *url; int rc; const char *needle; } v[] = {
        {"redis+cluster://127.0.0.1:1/3", STRATA_EOPTION, "a Redis Cluster has only database 0"},
        {"redis+cluster://127.0.0.1:1?db=2", STRATA_EOPTION, "database 2"},
        {"redis+cluster://127.0.0.1:1?io=host", STRATA_EOPTION, "io=host is not supported"},
        {"redis+cluster://127.0.0.1:1?tracking=1", STRATA_EOPTION, "tracking=1 is not supported"},
        {"redis+cluster://127.0.0.1:1?ns=a{b", STRATA_EOPTION, "[A-Za-z0-9_.-]"}, /* the layout relies on it */
        {"redis+cluster://", STRATA_EURL, "no host"},
        {"redis+cluster://127.0.0.1:1,", STRATA_EURL, "empty host"},
        {"redis+cluster://127.0.0.1:99999", STRATA_EURL, "bad port"},
        {"redis://127.0.0.1:1,127.0.0.1:2", STRATA_EURL, "redis+cluster://"},
    };
    size_t i;
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        strata_cache *c = (strata_cache *)1;
        int rc = strata_cache_new(&c, v[i].url, NULL);
        if (rc != v[i].rc || strstr(strata_error_last(), v[i].needle) == NULL)
            fprintf(stderr, "  %s: %s \"%s\", want %s \"%s\"\n", v[i].url, strata_error_name(rc), strata_error_last(),
                    strata_error_name(v[i].rc), v[i].needle);
        CHECK(rc == v[i].rc && strstr(strata_error_last(), v[i].needle) != NULL);
        CHECK(c == NULL);
    }
}

/* ---- the live cluster ------------------------------------------------------ */

/* Seeds that are down are skipped; a cluster with none answering still opens
 * (the map is learnt later), as a single node does. */
static void t_opens_with_dead_seeds(void)
{
    char url[512];
    strata_cache *c = NULL;
    if (!have_cluster())
        return;
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:1,127.0.0.1:%d?timeout_ms=%d&breaker_threshold=0", ports[1],
             TIMEOUT_MS);
    REQUIRE(strata_cache_new(&c, url, NULL) == 0);
    CHECK_RC(set_str(c, "seeded", "yes"), 0);
    CHECK(get_is(c, "seeded", "yes"));
    strata_cache_free(c);
}

static void t_keys_spread_over_every_master(void)
{
    enum { N = 300 };
    strata_cache *c;
    char keys[N][48];
    const char *kp[N];
    size_t kl[N], i;
    strata_value outs[N];
    int rcs[N], per_master[NMASTERS] = {0}, m;
    if (!have_cluster())
        return;
    REQUIRE((c = open_cluster(NULL)) != NULL);
    for (i = 0; i < N; i++) {
        char v[48];
        snprintf(keys[i], sizeof keys[i], "%s-%zu", test_unique("spread"), i);
        snprintf(v, sizeof v, "v%zu", i);
        kp[i] = keys[i];
        kl[i] = strlen(keys[i]);
        outs[i] = (strata_value)STRATA_VALUE_INIT;
        CHECK_RC(set_str(c, keys[i], v), 0);
    }
    /* Each key is on the master that owns its slot (EXISTS there answers 1). */
    for (i = 0; i < N; i++) {
        char fk[128];
        unsigned int slot;
        int owner;
        snprintf(fk, sizeof fk, "strata:%.60s", keys[i]);
        slot = strata__cluster_slot(fk, strlen(fk));
        owner = owner_of(slot);
        for (m = 0; m < NMASTERS; m++)
            if (ports[m] == owner)
                per_master[m]++;
        CHECK(raw_int(owner, "EXISTS %s", fk) == 1);
    }
    for (m = 0; m < NMASTERS; m++)
        CHECK(per_master[m] > N / 10);
    /* get_many across every node, in order; a missing key among them */
    snprintf(keys[7], sizeof keys[7], "%s", test_unique("spread-missing"));
    kl[7] = strlen(keys[7]);
    CHECK_RC(strata_get_many(c, N, kp, kl, outs, rcs), 0);
    for (i = 0; i < N; i++) {
        char v[48];
        snprintf(v, sizeof v, "v%zu", i);
        if (i == 7)
            CHECK(rcs[i] == STRATA_MISS);
        else
            CHECK(rcs[i] == 0 && outs[i].len == strlen(v) && memcmp(outs[i].data, v, outs[i].len) == 0);
        strata_value_dispose(&outs[i]);
    }
    /* deletes on every node */
    for (i = 0; i < N; i += 3)
        CHECK_RC(strata_delete(c, keys[i], kl[i]), 0);
    for (i = 0; i < N; i += 3) {
        strata_value v = STRATA_VALUE_INIT;
        CHECK_RC(strata_get(c, keys[i], kl[i], &v), STRATA_MISS);
        strata_value_dispose(&v);
    }
    strata_cache_free(c);
}

static int loads;

static int loader(void *ud, const char *key, size_t keylen, strata_load *load)
{
    char v[128];
    (void)ud;
    loads++;
    snprintf(v, sizeof v, "loaded:%.*s", (int)keylen, key);
    return strata_load_value(load, v, strlen(v), 60000);
}

/* get_or_load everywhere; a held lease sits on its value's node, and another
 * handle sees it held. */
static void t_leases_beside_their_values(void)
{
    strata_cache *a, *b;
    strata_value v = STRATA_VALUE_INIT;
    strata_ticket *t = NULL, *t2 = NULL;
    char k[64], fk[80], lk[160], want[128];
    size_t lklen, i;
    int owner;
    if (!have_cluster())
        return;
    REQUIRE((a = open_cluster(NULL)) != NULL);
    REQUIRE((b = open_cluster(NULL)) != NULL);
    loads = 0;
    for (i = 0; i < 30; i++) {
        snprintf(k, sizeof k, "%s-%zu", test_unique("gol"), i);
        snprintf(want, sizeof want, "loaded:%s", k);
        CHECK_RC(strata_get_or_load(a, k, strlen(k), loader, NULL, &v), 0);
        CHECK(v.len == strlen(want) && memcmp(v.data, want, v.len) == 0);
        CHECK(get_is(b, k, want));
    }
    CHECK(loads == 30);

    snprintf(k, sizeof k, "%s", test_unique("lease"));
    snprintf(fk, sizeof fk, "strata:%s", k);
    lklen = strata__redis_cluster_lease_key("strata", 6, fk, strlen(fk), lk);
    lk[lklen] = '\0';
    owner = owner_of(strata__cluster_slot(fk, strlen(fk)));
    CHECK_RC(strata_lookup(a, k, strlen(k), &v, &t), STRATA_MISS_LEAD);
    CHECK(raw_int(owner, "EXISTS %s", lk) == 1);
    CHECK_RC(strata_lookup(b, k, strlen(k), &v, &t2), STRATA_MISS_WAIT);
    CHECK_RC(strata_fill(t, "filled", 6, 60000), 0);
    CHECK(raw_int(owner, "EXISTS %s", lk) == 0);
    CHECK(get_is(b, k, "filled"));
    strata_value_dispose(&v);
    strata_cache_free(b);
    strata_cache_free(a);
}

/* A user's own hash tag decides the slot: its keys share one. */
static void t_user_hash_tags_and_awkward_keys(void)
{
    strata_cache *c;
    char k1[64], k2[64];
    strata_value v = STRATA_VALUE_INIT;
    const char *tag = test_unique("u");
    if (!have_cluster())
        return;
    REQUIRE((c = open_cluster(NULL)) != NULL);
    snprintf(k1, sizeof k1, "{%s}:profile", tag);
    snprintf(k2, sizeof k2, "{%s}:tags", tag);
    CHECK(strata__cluster_slot(k1, strlen(k1)) == strata__cluster_slot(tag, strlen(tag)));
    CHECK_RC(set_str(c, k1, "p"), 0);
    CHECK_RC(set_str(c, k2, "t"), 0);
    CHECK(get_is(c, k1, "p") && get_is(c, k2, "t"));
    CHECK(raw_int(owner_of(strata__cluster_slot(tag, strlen(tag))), "EXISTS strata:%s", k1) == 1);
    /* no tag but a '}': refused, precisely, and nothing changes */
    CHECK_RC(set_str(c, "a}b", "x"), STRATA_EINVAL);
    CHECK_MSG_HAS("has a '}' but no hash tag");
    CHECK_RC(strata_get(c, "a}b", 3, &v), STRATA_MISS); /* reads need no lease key */
    /* write-behind: refused with the reason */
    CHECK_RC(strata_write_behind(c, "wb", 2, "v", 1, 0), STRATA_EOPTION);
    CHECK_MSG_HAS("write-behind is not supported yet");
    strata_value_dispose(&v);
    strata_cache_free(c);
}

/* Moves slot `slot` from port src to port dst the way redis-cli reshard does,
 * optionally stopping half-way (keys listed in `first` moved, the slot still
 * the source's, both ends migrating/importing). */
static int migrate_slot(unsigned int slot, int src, int dst, int start, int finish, const char *const *first,
                        size_t nfirst)
{
    char src_id[64], dst_id[64];
    redisContext *c;
    size_t i;
    int m;
    node_id(src, src_id, sizeof src_id);
    node_id(dst, dst_id, sizeof dst_id);
    if (start && (!command_ok(dst, "CLUSTER SETSLOT %u IMPORTING %s", slot, src_id) ||
                  !command_ok(src, "CLUSTER SETSLOT %u MIGRATING %s", slot, dst_id)))
        return -1;
    for (i = 0; i < nfirst; i++)
        if (!command_ok(src, "MIGRATE 127.0.0.1 %d %s 0 5000", dst, first[i]))
            return -1;
    if (!finish)
        return 0;
    if ((c = test_redis_raw(src)) == NULL)
        return -1;
    for (;;) { /* every key left in the slot, in batches */
        redisReply *r = redisCommand(c, "CLUSTER GETKEYSINSLOT %u 50", slot);
        size_t n = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        for (i = 0; i < n; i++) {
            if (!command_ok(src, "MIGRATE 127.0.0.1 %d %s 0 5000", dst, r->element[i]->str)) {
                freeReplyObject(r);
                redisFree(c);
                return -1;
            }
        }
        if (r)
            freeReplyObject(r);
        if (n == 0)
            break;
    }
    redisFree(c);
    /* the target first, then the source, then the rest (the order Redis's manual
     * asks for; the routing layer rides out the others too) */
    if (!command_ok(dst, "CLUSTER SETSLOT %u NODE %s", slot, dst_id))
        return -1;
    for (m = 0; m < NMASTERS && ports[m] != src; m++)
        ;
    if (m < NMASTERS && !command_ok(src, "CLUSTER SETSLOT %u NODE %s", slot, dst_id))
        return -1;
    for (m = 0; m < NMASTERS; m++)
        if (ports[m] != dst && ports[m] != src && !command_ok(ports[m], "CLUSTER SETSLOT %u NODE %s", slot, dst_id))
            return -1;
    for (m = 0; m < NMASTERS && ports[m] != src; m++)
        ;
    if (m == NMASTERS) /* a node beyond the three (t_a_new_node_gets_a_new_index): a master that gave */
        command_ok(src, "CLUSTER SETSLOT %u NODE %s", slot, dst_id); /* away its last slot is a replica: refused */
    return 0;
}

typedef struct reader_arg {
    strata_cache *c;
    char (*keys)[64];
    size_t n;
    int stop;
    long reads, errors, wrong;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    while (!strata__atomic_load(&a->stop)) {
        size_t i;
        for (i = 0; i < a->n; i++) {
            strata_value v = STRATA_VALUE_INIT;
            char want[80];
            int rc = strata_get(a->c, a->keys[i], strlen(a->keys[i]), &v);
            snprintf(want, sizeof want, "val:%s", a->keys[i]);
            a->reads++;
            if (rc != 0) {
                if (a->errors++ < 3)
                    fprintf(stderr, "  reader: %s: %s\n", strata_error_name(rc), strata_error_last());
            } else if (v.len != strlen(want) || memcmp(v.data, want, v.len) != 0) {
                a->wrong++;
            }
            strata_value_dispose(&v);
        }
    }
    return NULL;
}

/* A slot moves to another master while a reader loops over its keys: no
 * error, every value intact; the cache then talks to the new owner (MOVED
 * patched the map) and a fresh handle learns it from CLUSTER SLOTS. */
static void t_moved_while_resharding(void)
{
    enum { N = 20 };
    char keys[N][64];
    unsigned int slot = 777 + (unsigned int)(getpid() % 1000) * 5; /* some slot; its owner is looked up */
    reader_arg a;
    strata__thread th;
    strata_cache *c, *fresh, *stale;
    int src, dst, round;
    size_t i;
    if (!have_cluster())
        return;
    REQUIRE((c = open_cluster(NULL)) != NULL);
    for (i = 0; i < N; i++) {
        char suffix[48], v[80];
        snprintf(suffix, sizeof suffix, "%s-%zu", test_unique("mv"), i);
        key_in_slot(slot, suffix, keys[i], sizeof keys[i]);
        snprintf(v, sizeof v, "val:%s", keys[i]);
        CHECK_RC(set_str(c, keys[i], v), 0);
    }
    for (round = 0; round < 2; round++) { /* there and back */
        src = owner_of(slot);
        dst = src == ports[0] ? ports[1] : ports[0];
        REQUIRE((stale = open_cluster(NULL)) != NULL); /* its map predates the move */
        memset(&a, 0, sizeof a);
        a.c = c;
        a.keys = keys;
        a.n = N;
        REQUIRE(strata__thread_start(&th, reader, &a) == 0);
        strata__sleep_ms(50);
        CHECK(migrate_slot(slot, src, dst, 1, 1, NULL, 0) == 0);
        strata__sleep_ms(100);
        strata__atomic_store(&a.stop, 1);
        strata__thread_join(th);
        CHECK(owner_of(slot) == dst);
        CHECK(a.reads > N && a.errors == 0 && a.wrong == 0);
        for (i = 0; i < N; i++) {
            char fk[128], v[128];
            snprintf(fk, sizeof fk, "strata:%.63s", keys[i]);
            CHECK(raw_int(dst, "EXISTS %s", fk) == 1);
            snprintf(v, sizeof v, "val:%.63s", keys[i]);
            CHECK(get_is(c, keys[i], v));
        }
        {   /* a batch on the stale map: the moved keys' replies redirect and are redone alone */
            const char *kp[N];
            size_t kl[N];
            strata_value outs[N];
            int rcs[N];
            for (i = 0; i < N; i++) {
                kp[i] = keys[i];
                kl[i] = strlen(keys[i]);
                outs[i] = (strata_value)STRATA_VALUE_INIT;
            }
            CHECK_RC(strata_get_many(stale, N, kp, kl, outs, rcs), 0);
            for (i = 0; i < N; i++) {
                char v[128];
                snprintf(v, sizeof v, "val:%.63s", keys[i]);
                CHECK(rcs[i] == 0 && outs[i].len == strlen(v) && memcmp(outs[i].data, v, outs[i].len) == 0);
                strata_value_dispose(&outs[i]);
            }
            strata_cache_free(stale);
        }
        REQUIRE((fresh = open_cluster(NULL)) != NULL);
        {
            char v[80];
            snprintf(v, sizeof v, "val:%s", keys[N - 1]);
            CHECK(get_is(fresh, keys[N - 1], v));
            CHECK_RC(set_str(fresh, keys[N - 1], v), 0); /* writes (MULTI) too */
        }
        strata_cache_free(fresh);
    }
    strata_cache_free(c);
}

typedef struct finisher_arg {
    unsigned int slot;
    int src, dst, rc;
} finisher_arg;

static void *finisher(void *p)
{
    finisher_arg *f = p;
    strata__sleep_ms(150);
    f->rc = migrate_slot(f->slot, f->src, f->dst, 0, 1, NULL, 0);
    return NULL;
}

/* Half-way through a migration: a key already moved is read from the target
 * (ASK, then ASKING there), a key still on the source is read there, and the
 * map keeps the slot on the source. A write (a MULTI over the value and its
 * lease) meets TRYAGAIN on the target until the migration ends: it retries
 * inside its deadline, fails with the reason when the deadline passes, and
 * succeeds when the migration finishes meanwhile. */
static void t_ask_during_migration(void)
{
    char moved[64], stays[64], fresh_key[64], fk_moved[128], fk_new[128], suffix[48];
    unsigned int slot = 6000 + (unsigned int)(getpid() % 1000); /* some slot; its owner is looked up */
    const char *first[1];
    strata_cache *c, *patient;
    strata__thread th;
    finisher_arg f;
    int64_t t0, took;
    if (!have_cluster())
        return;
    REQUIRE((c = open_cluster(NULL)) != NULL);
    REQUIRE((patient = open_cluster("&timeout_ms=3000")) != NULL);
    snprintf(suffix, sizeof suffix, "%s", test_unique("ask-moved"));
    key_in_slot(slot, suffix, moved, sizeof moved);
    snprintf(suffix, sizeof suffix, "%s", test_unique("ask-stays"));
    key_in_slot(slot, suffix, stays, sizeof stays);
    snprintf(suffix, sizeof suffix, "%s", test_unique("ask-new"));
    key_in_slot(slot, suffix, fresh_key, sizeof fresh_key);
    CHECK_RC(set_str(c, moved, "m1"), 0);
    CHECK_RC(set_str(c, stays, "s1"), 0);
    f.slot = slot;
    f.src = owner_of(slot);
    f.dst = f.src == ports[2] ? ports[0] : ports[2];
    f.rc = -1;
    snprintf(fk_moved, sizeof fk_moved, "strata:%s", moved);
    snprintf(fk_new, sizeof fk_new, "strata:%s", fresh_key);
    first[0] = fk_moved;
    REQUIRE(migrate_slot(slot, f.src, f.dst, 1, 0, first, 1) == 0);
    CHECK(raw_int(f.dst, "EXISTS %s", fk_moved) == -1); /* without ASKING the target answers MOVED */
    CHECK(raw_int(f.src, "EXISTS %s", fk_moved) == -1); /* absent here: ASK */
    CHECK(get_is(c, moved, "m1"));
    CHECK(get_is(c, stays, "s1"));
    CHECK(owner_of(slot) == f.src);

    t0 = strata__now_mono_ms();
    CHECK_RC(set_str(c, fresh_key, "n1"), STRATA_ETIMEOUT);
    took = strata__now_mono_ms() - t0;
    CHECK_MSG_HAS("TRYAGAIN");
    CHECK(took >= TIMEOUT_MS / 2 && took < 4 * TIMEOUT_MS);
    CHECK(raw_int(f.src, "EXISTS %s", fk_new) == -1);

    REQUIRE(strata__thread_start(&th, finisher, &f) == 0);
    CHECK_RC(set_str(patient, fresh_key, "n1"), 0);
    CHECK_RC(set_str(patient, moved, "m2"), 0);
    strata__thread_join(th);
    CHECK(f.rc == 0);
    CHECK(owner_of(slot) == f.dst);
    CHECK(raw_int(f.dst, "EXISTS %s", fk_new) == 1);
    CHECK(get_is(c, stays, "s1") && get_is(c, moved, "m2") && get_is(c, fresh_key, "n1"));
    strata_cache_free(patient);
    strata_cache_free(c);
}

/* A botched migration (the source says MIGRATING, the target never said
 * IMPORTING) bounces a missing key's call between the two: capped at 5 hops
 * with a message naming the last redirect; the slot works again once stable. */
static void t_redirect_loop_is_capped(void)
{
    char k[64], suffix[48], dst_id[64];
    unsigned int slot = 9000 + (unsigned int)(getpid() % 1000);
    strata_cache *c;
    strata_value v = STRATA_VALUE_INIT;
    int src, dst;
    if (!have_cluster())
        return;
    REQUIRE((c = open_cluster(NULL)) != NULL);
    snprintf(suffix, sizeof suffix, "%s", test_unique("loop"));
    key_in_slot(slot, suffix, k, sizeof k);
    src = owner_of(slot);
    dst = src == ports[0] ? ports[1] : ports[0];
    node_id(dst, dst_id, sizeof dst_id);
    REQUIRE(command_ok(src, "CLUSTER SETSLOT %u MIGRATING %s", slot, dst_id));
    CHECK_RC(strata_get(c, k, strlen(k), &v), STRATA_EBACKEND);
    CHECK_MSG_HAS("more than 5 redirects");
    CHECK_MSG_HAS("MOVED");
    CHECK(command_ok(src, "CLUSTER SETSLOT %u STABLE", slot));
    CHECK_RC(strata_get(c, k, strlen(k), &v), STRATA_MISS);
    CHECK_RC(set_str(c, k, "ok"), 0);
    CHECK(get_is(c, k, "ok"));
    strata_value_dispose(&v);
    strata_cache_free(c);
}

/* A stopped master: its slots fail inside the deadline, the others serve. */
static void t_stopped_master_fails_only_its_slots(void)
{
    char kdead[64], klive[64], suffix[48];
    strata_cache *c;
    int victim, pid, rc, i;
    unsigned int dead_slot, live_slot;
    int64_t t0, worst = 0;
    if (!have_cluster())
        return;
    REQUIRE((c = open_cluster(NULL)) != NULL);
    victim = ports[2];
    for (dead_slot = 16383; owner_of(dead_slot) != victim && dead_slot > 0; dead_slot--)
        ;
    for (live_slot = 0; owner_of(live_slot) == victim && live_slot < 16383; live_slot++)
        ;
    snprintf(suffix, sizeof suffix, "%s", test_unique("dead"));
    key_in_slot(dead_slot, suffix, kdead, sizeof kdead);
    key_in_slot(live_slot, suffix, klive, sizeof klive);
    CHECK_RC(set_str(c, kdead, "d"), 0);
    CHECK_RC(set_str(c, klive, "l"), 0);
    REQUIRE((pid = node_pid(victim)) > 0);
    REQUIRE(kill(pid, SIGSTOP) == 0);
    for (i = 0; i < 3; i++) {
        strata_value v = STRATA_VALUE_INIT;
        t0 = strata__now_mono_ms();
        rc = strata_get(c, kdead, strlen(kdead), &v);
        if (strata__now_mono_ms() - t0 > worst)
            worst = strata__now_mono_ms() - t0;
        CHECK(rc == STRATA_ETIMEOUT || rc == STRATA_EBACKEND);
        strata_value_dispose(&v);
        CHECK(get_is(c, klive, "l"));
        CHECK_RC(set_str(c, klive, "l"), 0);
    }
    kill(pid, SIGCONT);
    CHECK(worst < 4 * TIMEOUT_MS); /* a generous margin on a loaded machine */
    for (i = 0; i < 160; i++) { /* back after the reconnect backoff (up to 2 s), with room for a loaded machine */
        strata_value v = STRATA_VALUE_INIT;
        rc = strata_get(c, kdead, strlen(kdead), &v);
        strata_value_dispose(&v);
        if (rc == 0)
            break;
        strata__sleep_ms(50);
    }
    CHECK(get_is(c, kdead, "d"));
    strata_cache_free(c);
}

static int link_up(strata_cache *c)
{
    return test_stats(c).l1_link_up == 1;
}

static uint64_t l1_flushes(strata_cache *c)
{
    return test_stats(c).l1_flushes;
}

static int wait_link(strata_cache *c, int up, int64_t max_ms)
{
    int64_t end = strata__now_mono_ms() + max_ms;
    while (link_up(c) != up && strata__now_mono_ms() < end)
        strata__sleep_ms(20);
    return link_up(c) == up;
}

/* An L1 value read is served from L1 until another handle's write, published
 * on whatever node holds the key, evicts it (PUBLISH is cluster-wide, the link
 * listens on one node); when that node stops, the link moves to the next seed
 * and keeps working. */
static void t_invalidations_cross_nodes_and_survive_a_stopped_seed(void)
{
    strata_cache *w, *r;
    char k[64], suffix[48];
    unsigned int slot;
    uint64_t flushes;
    int pid, i, seen = 0;
    if (!have_cluster())
        return;
    REQUIRE((w = open_cluster(NULL)) != NULL);
    REQUIRE((r = open_cluster("&l1=1&l1_ttl_ms=60000&coherence_ping_ms=100")) != NULL);
    REQUIRE(wait_link(r, 1, 3000));
    for (slot = 0; owner_of(slot) == ports[0]; slot += 97) /* a key away from the first seed */
        ;
    snprintf(suffix, sizeof suffix, "%s", test_unique("coh"));
    key_in_slot(slot, suffix, k, sizeof k);
    CHECK_RC(set_str(w, k, "v1"), 0);
    CHECK(get_is(r, k, "v1"));
    CHECK_RC(set_str(w, k, "v2"), 0);
    for (i = 0; i < 100 && !seen; i++) {
        strata_value v = STRATA_VALUE_INIT;
        seen = strata_get(r, k, strlen(k), &v) == 0 && v.len == 2 && memcmp(v.data, "v2", 2) == 0;
        strata_value_dispose(&v);
        if (!seen)
            strata__sleep_ms(20);
    }
    CHECK(seen);

    REQUIRE((pid = node_pid(ports[0])) > 0);
    flushes = l1_flushes(r);
    REQUIRE(kill(pid, SIGSTOP) == 0);
    for (i = 0; i < 150 && l1_flushes(r) < flushes + 2; i++) /* lost (ping unanswered), then back */
        strata__sleep_ms(20);
    CHECK(l1_flushes(r) >= flushes + 2);
    CHECK(wait_link(r, 1, 3000));   /* subscribed on the next seed */
    CHECK(get_is(r, k, "v2"));      /* read into L1 again */
    CHECK_RC(set_str(w, k, "v3"), 0);
    for (i = 0, seen = 0; i < 100 && !seen; i++) {
        strata_value v = STRATA_VALUE_INIT;
        seen = strata_get(r, k, strlen(k), &v) == 0 && v.len == 2 && memcmp(v.data, "v3", 2) == 0;
        strata_value_dispose(&v);
        if (!seen)
            strata__sleep_ms(20);
    }
    kill(pid, SIGCONT);
    CHECK(seen);
    strata_cache_free(r);
    strata_cache_free(w);
}

/* A free port whose cluster bus port (+10000) is free too. */
static int free_cluster_port(void)
{
    int tries;
    for (tries = 0; tries < 100; tries++) {
        struct sockaddr_in a;
        socklen_t len = sizeof a;
        int s = socket(AF_INET, SOCK_STREAM, 0), b, port;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(s, (struct sockaddr *)&a, &len) != 0) {
            if (s >= 0)
                close(s);
            continue;
        }
        port = ntohs(a.sin_port);
        close(s);
        if (port > 55000)
            continue;
        b = socket(AF_INET, SOCK_STREAM, 0);
        a.sin_port = htons((uint16_t)(port + 10000));
        if (b >= 0 && bind(b, (struct sockaddr *)&a, sizeof a) == 0) {
            close(b);
            return port;
        }
        if (b >= 0)
            close(b);
    }
    return -1;
}

/* A node that joins later (CLUSTER MEET) and takes a slot: the cache hears of
 * it from MOVED, gives it the next server index and a pool of its own, and
 * reads and writes there. The node then gives the slot back and goes away
 * before the cache hears of it. */
static void t_a_new_node_gets_a_new_index(void)
{
    char dir[] = "/tmp/strata-cluster-XXXXXX", cmd[1024], k[64], suffix[48], new_id[64];
    unsigned int slot = 12000 + (unsigned int)(getpid() % 1000);
    strata_cache *c;
    int port, src, i, m, pid;
    if (!have_cluster())
        return;
    REQUIRE(mkdtemp(dir) != NULL);
    REQUIRE((port = free_cluster_port()) > 0);
    snprintf(cmd, sizeof cmd, "redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --cluster-enabled yes "
             "--cluster-config-file %s/nodes.conf --cluster-node-timeout 2000 --cluster-require-full-coverage no "
             "--daemonize yes --dir %s --logfile %s/redis.log", port, dir, dir, dir);
    REQUIRE(system(cmd) == 0);
    for (i = 0; i < 100 && node_pid(port) <= 0; i++)
        strata__sleep_ms(20);
    REQUIRE((pid = node_pid(port)) > 0);
    REQUIRE((c = open_cluster(NULL)) != NULL); /* its map has three nodes */
    snprintf(suffix, sizeof suffix, "%s", test_unique("newnode"));
    key_in_slot(slot, suffix, k, sizeof k);
    CHECK_RC(set_str(c, k, "before"), 0);
    CHECK(command_ok(ports[0], "CLUSTER MEET 127.0.0.1 %d", port));
    for (i = 0; i < 200 && (known_nodes(port) != NMASTERS + 1 || known_nodes(ports[1]) != NMASTERS + 1 ||
                            known_nodes(ports[2]) != NMASTERS + 1); i++)
        strata__sleep_ms(25);
    CHECK(known_nodes(port) == NMASTERS + 1);
    for (i = 0; i < 200 && !state_ok(port); i++) /* it has heard who serves which slot */
        strata__sleep_ms(25);
    CHECK(state_ok(port));
    src = owner_of(slot);
    if (migrate_slot(slot, src, port, 1, 1, NULL, 0) == 0) {
        CHECK(get_is(c, k, "before"));       /* MOVED to a node it never knew */
        CHECK_RC(set_str(c, k, "after"), 0); /* a MULTI there */
        CHECK(get_is(c, k, "after"));
        CHECK(raw_int(port, "EXISTS strata:%s", k) == 1);
        CHECK(migrate_slot(slot, port, src, 1, 1, NULL, 0) == 0);
    } else {
        CHECK(0);
        command_ok(src, "CLUSTER SETSLOT %u STABLE", slot);
    }
    node_id(port, new_id, sizeof new_id);
    for (m = 0; m < NMASTERS; m++)
        command_ok(ports[m], "CLUSTER FORGET %s", new_id);
    kill(pid, SIGTERM);
    for (i = 0; i < 100 && kill(pid, 0) == 0; i++)
        strata__sleep_ms(20);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    /* The cache still sends the slot to the node that left: its connection
     * breaks, the map is re-read from another node, the call goes there. */
    CHECK(get_is(c, k, "after"));
    CHECK(get_is(c, k, "after"));
    strata_cache_free(c);
}

static const test_case cases[] = {
    {"slot_vectors", t_slot_vectors},
    {"lease_key_shares_the_slot", t_lease_key_shares_the_slot},
    {"redirect_codec", t_redirect_codec},
    {"bad_urls", t_bad_urls},
    {"opens_with_dead_seeds", t_opens_with_dead_seeds},
    {"keys_spread_over_every_master", t_keys_spread_over_every_master},
    {"leases_beside_their_values", t_leases_beside_their_values},
    {"user_hash_tags_and_awkward_keys", t_user_hash_tags_and_awkward_keys},
    {"moved_while_resharding", t_moved_while_resharding},
    {"ask_during_migration", t_ask_during_migration},
    {"redirect_loop_is_capped", t_redirect_loop_is_capped},
    {"a_new_node_gets_a_new_index", t_a_new_node_gets_a_new_index},
    {"stopped_master_fails_only_its_slots", t_stopped_master_fails_only_its_slots},
    {"invalidations_cross_nodes_and_survive_a_stopped_seed", t_invalidations_cross_nodes_and_survive_a_stopped_seed},
};

int main(int argc, char **argv)
{
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
