/*
 * Renewal of hot L1 entries (l1_renew, engine/l1_renew.c) against a private
 * server: a hot key stays an L1 hit across many l1_ttl_ms periods (with
 * l1_renew=0 it misses once per period), a change by a client that tells
 * nobody is still seen within l1_ttl_ms, an invalidation during a renewal
 * batch wins, a cold entry is left to expire, a value's own TTL caps its
 * renewal, and a forked child renews with its own thread.
 * Assertions are on what was served and when, never on tuned timings.
 *   test_renew redis | memcached | redis_cluster (make test runs
 *   hot_key_stays_in_l1 there; the cases with a raw client or a fork need
 *   the private server)
 */
#include "raw_write.h"
#include "test.h"
#include "server.h"
#include "backend_hook.h"

#include "engine/cache.h"
#include "platform/platform.h"

#include <hiredis/hiredis.h>
#include <sys/wait.h>
#include <unistd.h>

#define K(s) (s), strlen(s)
#define L1_TTL_MS 200
#define DEADLINE_MS 5000

static const char *kind;
static test_server srv;
static int srv_up;

static int is_cluster(void) { return strcmp(kind, "redis_cluster") == 0; }
static int is_redis(void) { return strcmp(kind, "redis") == 0 || is_cluster(); }

/* A private server; on the cluster the shared one (test_backend_url: exits
 * 77, skipped, without STRATA_TEST_REDIS_CLUSTER_URL). */
static int ensure_server(void)
{
    if (!srv_up && is_cluster()) {
        snprintf(srv.url, sizeof srv.url, "%s", test_backend_url(kind));
        srv_up = 2;
    } else if (!srv_up && test_server_start(&srv, kind) == 0) {
        srv_up = 1;
    }
    return srv_up;
}

/* A cache of namespace "ren" with a short l1_ttl_ms. */
static strata_cache *open_cache(const char *query)
{
    strata_cache *c = NULL;
    char u[512];
    snprintf(u, sizeof u, "%s?ns=ren&timeout_ms=300&connect_timeout_ms=300&jitter_pct=0&l1_ttl_ms=%d&%s", srv.url,
             L1_TTL_MS, query);
    if (strata_cache_new(&c, u, NULL) != 0) {
        fprintf(stderr, "  cannot open %s: %s\n", u, strata_error_last());
        return NULL;
    }
    return c;
}


static int l1_ready(strata_cache *c)
{
    int64_t end = strata__now_mono_ms() + DEADLINE_MS;
    if (!is_redis())
        return 1;
    while (test_stats(c).l1_link_up != 1 && strata__now_mono_ms() < end)
        strata__sleep_ms(1);
    return test_stats(c).l1_link_up == 1;
}

/* One read: its rc, level and whether it returned want. */
typedef struct read_result {
    int rc, level, is_want;
} read_result;

static read_result read_key(strata_cache *c, const char *key, const char *want)
{
    strata_value v = STRATA_VALUE_INIT;
    read_result r;
    r.rc = strata_get(c, key, strlen(key), &v);
    r.level = v.level;
    r.is_want = r.rc == STRATA_OK && v.len == strlen(want) && memcmp(v.data, want, v.len) == 0;
    strata_value_dispose(&v);
    return r;
}

/* Reads key every millisecond for ms; the L1 misses that cost (stats). */
static uint64_t l1_misses_reading(strata_cache *c, const char *key, const char *want, int64_t ms)
{
    uint64_t before = test_stats(c).l1_misses;
    int64_t end = strata__now_mono_ms() + ms;
    while (strata__now_mono_ms() < end) {
        read_result r = read_key(c, key, want);
        CHECK(r.is_want);
        strata__sleep_ms(1);
    }
    return test_stats(c).l1_misses - before;
}

/* Another writer that tells no L1: a plain client copying the stored bytes
 * (a valid envelope) of src over dst, or deleting dst when src is NULL. */
static int plant_copy(const char *src, const char *dst)
{
    char fs[160], fd[160];
    int ok = 0;
    snprintf(fs, sizeof fs, "ren:%s", src);
    snprintf(fd, sizeof fd, "ren:%s", dst);
    if (is_redis()) {
        redisContext *r = test_redis_raw(srv.port);
        redisReply *got = r && src ? redisCommand(r, "GET %s", fs) : NULL, *set = NULL;
        if (got && got->type == REDIS_REPLY_STRING)
            set = redisCommand(r, "SET %s %b", fd, got->str, (size_t)got->len);
        else if (r && src == NULL)
            set = redisCommand(r, "DEL %s", fd);
        ok = set && (set->type == REDIS_REPLY_STATUS || (set->type == REDIS_REPLY_INTEGER && set->integer == 1));
        if (set)
            freeReplyObject(set);
        if (got)
            freeReplyObject(got);
        if (r)
            redisFree(r);
    } else { /* memcached without a bus: another cache's write tells nobody */
        strata_cache *o = open_cache("l1=0");
        strata_value v = STRATA_VALUE_INIT;
        if (src == NULL)
            ok = o && strata_delete(o, K(dst)) == 0;
        else
            ok = o && strata_get(o, K(src), &v) == STRATA_OK && strata_set(o, K(dst), v.data, v.len, 0) == 0;
        strata_value_dispose(&v);
        strata_cache_free(o);
    }
    return ok;
}

/* A hot key read across several l1_ttl_ms stays an L1 hit; without renewal
 * it misses about once per period (the same loop, same run). */
static void hot_key_stays_in_l1(void)
{
    strata_cache *on, *off;
    char key[128];
    uint64_t on_misses, off_misses;
    REQUIRE(ensure_server());
    REQUIRE((on = open_cache("l1=1")) != NULL);
    REQUIRE((off = open_cache("l1=1&l1_renew=0")) != NULL);
    REQUIRE(l1_ready(on) && l1_ready(off));
    snprintf(key, sizeof key, "%s", test_unique("hot"));
    CHECK_RC(strata_set(on, K(key), K("v1"), 0), 0);
    read_key(off, key, "v1"); /* each in its L1 first */
    off_misses = l1_misses_reading(off, key, "v1", 5 * L1_TTL_MS);
    read_key(on, key, "v1");
    on_misses = l1_misses_reading(on, key, "v1", 5 * L1_TTL_MS);
    printf("  l1 misses over 5 x l1_ttl_ms: %llu renewed, %llu not; %llu renewals\n",
           (unsigned long long)on_misses, (unsigned long long)off_misses,
           (unsigned long long)test_stats(on).l1_renewals);
    CHECK(off_misses >= 3);
    CHECK(on_misses <= off_misses / 3);
    CHECK(test_stats(on).l1_renewals >= 3);
    CHECK(test_stats(on).l1_renew_batches >= 3);
    CHECK(test_stats(off).l1_renewals == 0);
    strata_cache_free(on);
    strata_cache_free(off);
}

/* Another writer that tells nobody copies src's bytes over key (NULL:
 * deletes key) while key is hot here: the old value is never served from L1
 * later than l1_ttl_ms after that landed, and the change is seen. Renewal
 * re-reads the key; it never extends the old value past that bound. */
static void unpublished_write_seen_within_l1_ttl(const char *src, const char *want)
{
    strata_cache *c;
    char key[128];
    int64_t landed, end;
    int seen = 0;
    REQUIRE(ensure_server());
    REQUIRE((c = open_cache("l1=1")) != NULL);
    REQUIRE(l1_ready(c));
    snprintf(key, sizeof key, "%s", test_unique("chg"));
    CHECK_RC(strata_set(c, K(key), K("v1"), 0), 0);
    if (src)
        CHECK_RC(strata_set(c, K(src), K(want), 0), 0);
    l1_misses_reading(c, key, "v1", 2 * L1_TTL_MS); /* hot, renewed at least once */
    CHECK(test_stats(c).l1_renewals >= 1);
    REQUIRE(plant_copy(src, key));
    landed = strata__now_wall_ms();
    end = strata__now_mono_ms() + DEADLINE_MS;
    while (!seen && strata__now_mono_ms() < end) {
        int64_t t0 = strata__now_wall_ms();
        read_result r = read_key(c, key, src ? want : "v1");
        if (src ? r.is_want : r.rc == STRATA_MISS)
            seen = 1;
        else if (t0 > landed + L1_TTL_MS)
            CHECK(!"the old value was served past l1_ttl_ms after the change");
        strata__sleep_ms(1);
    }
    CHECK(seen);
    strata_cache_free(c);
}

static void unpublished_change_seen_within_l1_ttl(void)
{
    char src[128];
    snprintf(src, sizeof src, "%s", test_unique("src")); /* test_unique's buffer is reused */
    unpublished_write_seen_within_l1_ttl(src, "v2");
}

static void unpublished_delete_seen_within_l1_ttl(void)
{
    unpublished_write_seen_within_l1_ttl(NULL, NULL);
}

/* An invalidation that arrives while a renewal batch is out wins: the
 * batch read the old value, and it must not come back into L1 (a fill of
 * the new one made during the batch stays). */
typedef struct racer {
    strata_cache *mine, *theirs;
    const char *key;
    char fk[160];
    int done;
} racer;

static void overtake_renewal(void *ud, const char *fk, size_t fklen, int landed)
{
    racer *o = ud;
    uint64_t inv = test_stats(o->mine).invalidations_received;
    int64_t end = strata__now_mono_ms() + DEADLINE_MS;
    if (!landed || __atomic_load_n(&o->done, __ATOMIC_ACQUIRE) || fklen != strlen(o->fk) ||
        memcmp(fk, o->fk, fklen) != 0)
        return;
    CHECK_RC(strata_set(o->theirs, K(o->key), K("theirs"), 0), 0);
    while (test_stats(o->mine).invalidations_received == inv && strata__now_mono_ms() < end)
        strata__sleep_ms(1);
    CHECK(test_stats(o->mine).invalidations_received > inv);
    /* the new value is read and filled while the batch holds the old one */
    CHECK(read_key(o->mine, o->key, "theirs").is_want);
    CHECK(read_key(o->mine, o->key, "theirs").level == STRATA_LEVEL_L1);
    __atomic_store_n(&o->done, 1, __ATOMIC_RELEASE); /* after this, the batch decides its (old) replies */
}

static void invalidation_during_renewal_wins(void)
{
    racer o;
    char key[128];
    int64_t end;
    if (!is_redis()) {
        printf("  skipped: memcached has no invalidations to race\n");
        return;
    }
    REQUIRE(ensure_server());
    REQUIRE((o.mine = open_cache("l1=1")) != NULL);
    REQUIRE((o.theirs = open_cache("l1=0")) != NULL);
    REQUIRE(l1_ready(o.mine));
    snprintf(key, sizeof key, "%s", test_unique("race"));
    snprintf(o.fk, sizeof o.fk, "ren:%s", key);
    o.key = key;
    o.done = 0;
    backend_hook_set_reads(o.mine, overtake_renewal, &o);
    CHECK_RC(strata_set(o.mine, K(key), K("mine"), 0), 0);
    end = strata__now_mono_ms() + DEADLINE_MS;
    while (!__atomic_load_n(&o.done, __ATOMIC_ACQUIRE) && strata__now_mono_ms() < end) {
        read_key(o.mine, key, "mine"); /* hot: its renewal batch comes */
        strata__sleep_ms(1);
    }
    CHECK(o.done);
    strata__sleep_ms(50); /* the batch's replies are decided by now (the hook stays: the
                           * renewal thread may be reading the vtable) */
    CHECK(read_key(o.mine, key, "theirs").is_want);
    CHECK(read_key(o.mine, key, "theirs").level == STRATA_LEVEL_L1);
    strata_cache_free(o.mine);
    strata_cache_free(o.theirs);
}

/* A host tier (the Python object tier, the Lua string tier) that keeps a
 * decoded object while strata_l1_check says its entry still serves: checks
 * are uses too, so the entry is renewed, and renewed in place (the same
 * bytes keep the same version), so the object outlives l1_ttl_ms. */
static void host_tier_checks_keep_the_version(void)
{
    strata_cache *c;
    strata_value v = STRATA_VALUE_INIT;
    char key[128];
    uint64_t version = 0;
    int64_t end;
    int failed = 0;
    REQUIRE(ensure_server());
    REQUIRE((c = open_cache("l1=1")) != NULL);
    REQUIRE(l1_ready(c));
    snprintf(key, sizeof key, "%s", test_unique("tier"));
    CHECK_RC(strata_set(c, K(key), K("v1"), 0), 0);
    CHECK_RC(strata_l1_get(c, K(key), &v, &version), 0);
    REQUIRE(version != 0);
    end = strata__now_mono_ms() + 5 * L1_TTL_MS;
    while (strata__now_mono_ms() < end) {
        if (strata_l1_check(c, K(key), version) != 0) { /* the tier would decode anew */
            failed++;
            CHECK_RC(strata_get(c, K(key), &v), 0);
            CHECK_RC(strata_l1_get(c, K(key), &v, &version), 0);
        }
        strata__sleep_ms(1);
    }
    printf("  the entry ended %d times over 5 x l1_ttl_ms\n", failed);
    CHECK(failed <= 1); /* once at most on a loaded machine; without renewal once per period */
    CHECK(test_stats(c).l1_renewals >= 3);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

/* An entry nobody read since its fill is not renewed: it expires. */
static void cold_entry_expires(void)
{
    strata_cache *c;
    char key[128];
    read_result r;
    REQUIRE(ensure_server());
    REQUIRE((c = open_cache("l1=1")) != NULL);
    REQUIRE(l1_ready(c));
    snprintf(key, sizeof key, "%s", test_unique("cold"));
    CHECK_RC(strata_set(c, K(key), K("v1"), 0), 0);
    CHECK(test_stats(c).l1_entries == 1);
    strata__sleep_ms(2 * L1_TTL_MS);
    CHECK(test_stats(c).l1_renewals == 0);
    r = read_key(c, key, "v1");
    CHECK(r.is_want);
    CHECK(r.level == STRATA_LEVEL_BACKEND);
    strata_cache_free(c);
}

/* A value whose own TTL ends between two renewals is never served from L1
 * past it: the renewal that read it kept its fresh-until. */
static void value_ttl_caps_the_renewal(void)
{
    strata_cache *c;
    char key[128];
    int64_t written, end, ttl = 3 * L1_TTL_MS / 2;
    int l1_hits = 0;
    REQUIRE(ensure_server());
    REQUIRE((c = open_cache("l1=1&stale_ms=0")) != NULL);
    REQUIRE(l1_ready(c));
    snprintf(key, sizeof key, "%s", test_unique("short"));
    CHECK_RC(strata_set(c, K(key), K("v1"), ttl), 0);
    written = strata__now_wall_ms();
    end = strata__now_mono_ms() + 2 * ttl;
    while (strata__now_mono_ms() < end) {
        int64_t t0 = strata__now_wall_ms();
        read_result r = read_key(c, key, "v1");
        if (r.level == STRATA_LEVEL_L1 && t0 > written + ttl)
            CHECK(!"served from L1 past the value's own TTL");
        l1_hits += r.level == STRATA_LEVEL_L1;
        strata__sleep_ms(1);
    }
    CHECK(l1_hits > 0);
    CHECK(test_stats(c).l1_renewals >= 1); /* renewed once, up to its fresh-until */
    CHECK(read_key(c, key, "v1").rc == STRATA_MISS);
    strata_cache_free(c);
}

/* A forked child gets its own renewal thread (the parent's is not there). */
static void forked_child_renews(void)
{
    strata_cache *c;
    char key[128];
    pid_t pid;
    int status = -1;
    SKIP_UNDER_TSAN("the child of a threaded process starts threads");
    REQUIRE(ensure_server());
    REQUIRE((c = open_cache("l1=1")) != NULL);
    REQUIRE(l1_ready(c));
    snprintf(key, sizeof key, "%s", test_unique("fork"));
    CHECK_RC(strata_set(c, K(key), K("v1"), 0), 0);
    l1_misses_reading(c, key, "v1", 2 * L1_TTL_MS);
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        uint64_t misses, renewals;
        int64_t end = strata__now_mono_ms() + DEADLINE_MS;
        while (read_key(c, key, "v1").level != STRATA_LEVEL_L1 && strata__now_mono_ms() < end)
            strata__sleep_ms(1); /* the child's link and L1 come up */
        renewals = test_stats(c).l1_renewals;
        misses = l1_misses_reading(c, key, "v1", 5 * L1_TTL_MS);
        renewals = test_stats(c).l1_renewals - renewals;
        strata_cache_free(c);
        _exit(misses <= 2 && renewals >= 3 ? 0 : 1);
    }
    REQUIRE(pid > 0);
    l1_misses_reading(c, key, "v1", L1_TTL_MS); /* the parent's thread goes on meanwhile */
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(l1_misses_reading(c, key, "v1", 2 * L1_TTL_MS) <= 1);
    strata_cache_free(c);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"hot_key_stays_in_l1", hot_key_stays_in_l1},
        {"unpublished_change_seen_within_l1_ttl", unpublished_change_seen_within_l1_ttl},
        {"unpublished_delete_seen_within_l1_ttl", unpublished_delete_seen_within_l1_ttl},
        {"invalidation_during_renewal_wins", invalidation_during_renewal_wins},
        {"host_tier_checks_keep_the_version", host_tier_checks_keep_the_version},
        {"cold_entry_expires", cold_entry_expires},
        {"value_ttl_caps_the_renewal", value_ttl_caps_the_renewal},
        {"forked_child_renews", forked_child_renews},
    };
    int rc;
    if (argc < 2) {
        fprintf(stderr, "usage: test_renew redis|memcached|redis_cluster [case]\n");
        return 2;
    }
    kind = argv[1];
    rc = test_main(argc - 1, argv + 1, cases, sizeof cases / sizeof cases[0]);
    if (srv_up == 1)
        test_server_stop(&srv);
    return rc;
}
