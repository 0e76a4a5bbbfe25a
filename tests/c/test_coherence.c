/*
 * L1 coherence on Redis, against a private redis-server: invalidations
 * published by writes reach other caches and processes, CLIENT TRACKING
 * catches writes by plain clients, a killed or silent link flushes L1 and
 * comes back, and a fill that raced with an invalidation stays out of L1.
 * Waits poll a condition under a bounded deadline; none is tuned to pass.
 */
#define _GNU_SOURCE
#include "raw_write.h"
#include "test.h"
#include "server.h"
#include "backend_hook.h"

#include "engine/cache.h"
#include "platform/platform.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEADLINE_MS 5000

static test_server srv;
static int srv_up;

#define K(s) (s), strlen(s)

static int ensure_server(void)
{
    if (!srv_up && test_server_start(&srv, "redis") == 0)
        srv_up = 1;
    return srv_up;
}

static strata_cache *open_cache(const char *query)
{
    strata_cache *c = NULL;
    char u[512];
    snprintf(u, sizeof u, "%s?ns=coh&timeout_ms=300&connect_timeout_ms=300&%s", srv.url, query);
    if (strata_cache_new(&c, u, NULL) != 0) {
        fprintf(stderr, "  cannot open %s: %s\n", u, strata_error_last());
        return NULL;
    }
    return c;
}


/* Polls cond every millisecond until it holds or ms pass; its final value. */
#define EVENTUALLY(cond, ms) ({ int64_t end_ = strata__now_mono_ms() + (ms); int ok_; \
    for (;;) { \
        if ((ok_ = (cond)) || strata__now_mono_ms() >= end_) \
            break; \
        strata__sleep_ms(1); \
    } \
    ok_; })

/* get returns rc with value want (NULL: any) at level lvl (0: any). */
static int get_is(strata_cache *c, const char *key, int rc, const char *want, int lvl)
{
    strata_value v = STRATA_VALUE_INIT;
    int got = strata_get(c, key, strlen(key), &v), ok;
    ok = got == rc && (want == NULL || (v.len == strlen(want) && memcmp(v.data, want, v.len) == 0)) &&
         (lvl == 0 || v.level == lvl);
    strata_value_dispose(&v);
    return ok;
}


static int raw_ok(redisContext *r, const char *fmt, const char *a, const char *b, size_t blen)
{
    redisReply *rep = b ? redisCommand(r, fmt, a, b, blen) : redisCommand(r, fmt, a);
    int ok = rep != NULL && rep->type != REDIS_REPLY_ERROR;
    if (rep)
        freeReplyObject(rep);
    return ok;
}

/* ---- across caches and processes ---------------------------------------- */

static void link_comes_up(void)
{
    strata_cache *c;
    REQUIRE(ensure_server());
    REQUIRE((c = open_cache("l1=1")) != NULL);
    CHECK(EVENTUALLY(test_stats(c).l1_link_up == 1, DEADLINE_MS));
    strata_cache_free(c);
    /* no L1, no link */
    REQUIRE((c = open_cache("l1=0")) != NULL);
    CHECK(test_stats(c).l1_link_up == 0);
    strata_cache_free(c);
}

static void write_in_one_cache_evicts_the_other(void)
{
    strata_cache *a, *b;
    uint64_t inv;
    char key[128], k2[128];
    const char *keys[2];
    size_t lens[2];
    const char *vals[2] = {"m1", "m2"};
    size_t vlens[2] = {2, 2};
    REQUIRE(ensure_server());
    REQUIRE((a = open_cache("l1=1")) != NULL);
    REQUIRE((b = open_cache("l1=1")) != NULL);
    REQUIRE(EVENTUALLY(test_stats(b).l1_link_up == 1, DEADLINE_MS));
    snprintf(key, sizeof key, "%s", test_unique("k"));
    snprintf(k2, sizeof k2, "%s", test_unique("k2"));

    inv = test_stats(b).invalidations_received;
    CHECK_RC(strata_set(a, K(key), K("v1"), 0), 0);
    /* a's message may land during b's read below, which then (rightly) keeps
     * what it read out of L1: wait for it first */
    CHECK(EVENTUALLY(test_stats(b).invalidations_received > inv, DEADLINE_MS));
    CHECK(get_is(b, key, STRATA_OK, "v1", STRATA_LEVEL_BACKEND));
    /* b serves it from L1 now (once a's message, which may trail b's read and
     * evict the fresh entry, has come and gone) */
    CHECK(EVENTUALLY(get_is(b, key, STRATA_OK, "v1", STRATA_LEVEL_L1), DEADLINE_MS));

    CHECK_RC(strata_set(a, K(key), K("v2"), 0), 0);
    CHECK(EVENTUALLY(get_is(b, key, STRATA_OK, "v2", 0), DEADLINE_MS));
    CHECK(test_stats(b).invalidations_received >= 1);
    { /* the same counts in the Prometheus export */
        static char text[65536];
        char line[160];
        strata_stats st = test_stats(b);
        CHECK_RC(strata_stats_prometheus(b, text, sizeof text, NULL), 0);
        snprintf(line, sizeof line, "\nstratacache_invalidations_received_total{namespace=\"coh\",tier=\"l1\"} %llu\n",
                 (unsigned long long)st.invalidations_received);
        CHECK(strstr(text, line) != NULL);
        snprintf(line, sizeof line, "\nstratacache_l1_link_up{namespace=\"coh\",tier=\"l1\"} 1\n");
        CHECK(strstr(text, line) != NULL);
        CHECK(strstr(text, "\nstratacache_l1_flushes_total{namespace=\"coh\",tier=\"l1\"} ") != NULL);
        CHECK(strstr(text, "\n# TYPE stratacache_l1_admission_rejects_total counter\n") != NULL);
    }
    /* a's own message is not an eviction for a: it wrote v2 into its L1 itself */
    CHECK(get_is(a, key, STRATA_OK, "v2", STRATA_LEVEL_L1));

    /* delete and invalidate publish too */
    CHECK(EVENTUALLY(get_is(b, key, STRATA_OK, "v2", STRATA_LEVEL_L1), DEADLINE_MS));
    CHECK_RC(strata_delete(a, K(key)), 0);
    CHECK(EVENTUALLY(get_is(b, key, STRATA_MISS, NULL, 0), DEADLINE_MS));
    CHECK_RC(strata_set(a, K(key), K("v3"), 0), 0);
    CHECK(EVENTUALLY(get_is(b, key, STRATA_OK, "v3", STRATA_LEVEL_L1), DEADLINE_MS));
    CHECK_RC(strata_invalidate(a, K(key)), 0);
    CHECK(EVENTUALLY(get_is(b, key, STRATA_MISS, NULL, 0), DEADLINE_MS));

    /* set_many publishes each key */
    keys[0] = key; lens[0] = strlen(key);
    keys[1] = k2; lens[1] = strlen(k2);
    CHECK_RC(strata_set_many(a, 2, keys, lens, vals, vlens, 0), 0);
    CHECK(EVENTUALLY(get_is(b, key, STRATA_OK, "m1", STRATA_LEVEL_L1) &&
                     get_is(b, k2, STRATA_OK, "m2", STRATA_LEVEL_L1), DEADLINE_MS));
    vals[0] = "n1";
    vals[1] = "n2";
    CHECK_RC(strata_set_many(a, 2, keys, lens, vals, vlens, 0), 0);
    CHECK(EVENTUALLY(get_is(b, key, STRATA_OK, "n1", 0) && get_is(b, k2, STRATA_OK, "n2", 0), DEADLINE_MS));
    strata_cache_free(a);
    strata_cache_free(b);
}

/* A byte channel each way between a test and its forked child. After the
 * fork each side closes the ends it does not use, so a dead child's pipe
 * reads as EOF instead of blocking the parent for ever; reads also have a
 * deadline (a child alive but stuck). */
typedef struct duplex {
    int up[2];   /* child -> parent */
    int down[2]; /* parent -> child */
} duplex;

static int duplex_open(duplex *d)
{
    if (pipe(d->up) != 0)
        return -1;
    if (pipe(d->down) != 0) {
        close(d->up[0]);
        close(d->up[1]);
        return -1;
    }
    return 0;
}

/* Keeps the ends this side uses: child reads down, writes up; parent the reverse. */
static void duplex_keep(duplex *d, int child)
{
    close(child ? d->up[0] : d->up[1]);
    close(child ? d->down[1] : d->down[0]);
}

static void duplex_close(duplex *d, int child)
{
    close(child ? d->up[1] : d->up[0]);
    close(child ? d->down[0] : d->down[1]);
}

/* One byte within ms, or -1 (EOF: the other side is gone; error; deadline). */
static int duplex_read(int fd, int ms)
{
    struct pollfd p;
    char ch;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    if (poll(&p, 1, ms) != 1 || read(fd, &ch, 1) != 1)
        return -1;
    return (unsigned char)ch;
}

/* The harness itself: a child that dies without a word ends the parent's
 * wait at once (it used to block for ever, holding the write end itself). */
static void fork_handshake_survives_a_dead_child(void)
{
    duplex d;
    int status = -1;
    int64_t t0;
    pid_t pid;
    REQUIRE(duplex_open(&d) == 0);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        duplex_keep(&d, 1);
        _exit(7); /* dies before saying anything */
    }
    duplex_keep(&d, 0);
    t0 = strata__now_mono_ms();
    CHECK(duplex_read(d.up[0], 30000) == -1);
    CHECK(strata__now_mono_ms() - t0 < 10000); /* EOF, not the deadline */
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    duplex_close(&d, 0);
}

/* The handle is made before fork and used in both processes: the child
 * starts its own link (never the parent's socket) and its L1 follows the
 * parent's writes. Exit codes say which step failed. */
static void two_processes_via_fork(void)
{
    strata_cache *c;
    char key[128];
    duplex d;
    int status = -1;
    pid_t pid;
    SKIP_UNDER_TSAN("the forked child starts threads, which TSan cannot run after a multi-threaded fork");
    REQUIRE(ensure_server());
    REQUIRE((c = open_cache("l1=1")) != NULL);
    REQUIRE(EVENTUALLY(test_stats(c).l1_link_up == 1, DEADLINE_MS));
    snprintf(key, sizeof key, "%s", test_unique("fork"));
    CHECK_RC(strata_set(c, K(key), K("old"), 0), 0);
    CHECK(get_is(c, key, STRATA_OK, "old", STRATA_LEVEL_L1));
    REQUIRE(duplex_open(&d) == 0);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int code = 0;
        duplex_keep(&d, 1);
        /* inherited L1 entries are dropped: they may miss messages sent since the fork */
        if (!get_is(c, key, STRATA_OK, "old", 0))
            code = 1;
        else if (!EVENTUALLY(test_stats(c).l1_link_up == 1 && get_is(c, key, STRATA_OK, "old", STRATA_LEVEL_L1),
                             DEADLINE_MS))
            code = 2; /* the child's own link never came up */
        if (write(d.up[1], code ? "n" : "y", 1) != 1 || duplex_read(d.down[0], 4 * DEADLINE_MS) != 'g')
            code = code ? code : 3;
        else if (!EVENTUALLY(get_is(c, key, STRATA_OK, "new", 0), DEADLINE_MS))
            code = 4; /* still serving the parent's old value */
        _exit(code);
    }
    duplex_keep(&d, 0);
    CHECK(duplex_read(d.up[0], 4 * DEADLINE_MS) == 'y');
    CHECK_RC(strata_set(c, K(key), K("new"), 0), 0); /* the parent writes... */
    CHECK(write(d.down[1], "g", 1) == 1);
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* ...the child stops serving "old" */
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fprintf(stderr, "  child exit status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    /* the parent's link was not disturbed by the child */
    CHECK(test_stats(c).l1_link_up == 1);
    CHECK(get_is(c, key, STRATA_OK, "new", 0));
    duplex_close(&d, 0);
    strata_cache_free(c);
}

/* Several threads of a child hit the inherited handle at once: one of them
 * restarts the link, none uses the parent's, all end up served from L1. */
typedef struct child_reader {
    strata_cache *c;
    const char *key;
    int ok;
} child_reader;

static void *child_read(void *p)
{
    child_reader *r = p;
    r->ok = EVENTUALLY(get_is(r->c, r->key, STRATA_OK, "shared", STRATA_LEVEL_L1), DEADLINE_MS);
    return NULL;
}

static void fork_child_threads_restart_once(void)
{
    strata_cache *c;
    char key[128];
    int status = -1;
    pid_t pid;
    SKIP_UNDER_TSAN("the forked child starts threads, which TSan cannot run after a multi-threaded fork");
    REQUIRE(ensure_server());
    REQUIRE((c = open_cache("l1=1")) != NULL);
    REQUIRE(EVENTUALLY(test_stats(c).l1_link_up == 1, DEADLINE_MS));
    snprintf(key, sizeof key, "%s", test_unique("forkthreads"));
    CHECK_RC(strata_set(c, K(key), K("shared"), 0), 0);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        child_reader r[4];
        pthread_t th[4];
        int i, code = 0;
        for (i = 0; i < 4; i++) {
            r[i].c = c;
            r[i].key = key;
            r[i].ok = 0;
            pthread_create(&th[i], NULL, child_read, &r[i]);
        }
        for (i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            if (!r[i].ok)
                code = 1;
        }
        if (test_stats(c).l1_link_up != 1)
            code = 2;
        strata_cache_free(c); /* stops the child's own link */
        _exit(code);
    }
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(test_stats(c).l1_link_up == 1);
    strata_cache_free(c);
}

/* ---- tracking: writes by plain clients ------------------------------------ */

static void tracking_catches_plain_clients(void)
{
    strata_cache *t, *n;
    redisContext *r;
    redisReply *env;
    char key[128], fk[160], src[128], fsrc[160];
    REQUIRE(ensure_server());
    REQUIRE((t = open_cache("l1=1&tracking=1")) != NULL);
    REQUIRE((n = open_cache("l1=1")) != NULL);
    REQUIRE((r = test_redis_raw(srv.port)) != NULL);
    REQUIRE(EVENTUALLY(test_stats(t).l1_link_up == 1 && test_stats(n).l1_link_up == 1, DEADLINE_MS));
    snprintf(key, sizeof key, "%s", test_unique("trk"));
    snprintf(src, sizeof src, "%s", test_unique("src"));
    snprintf(fk, sizeof fk, "coh:%s", key);
    snprintf(fsrc, sizeof fsrc, "coh:%s", src);
    CHECK_RC(strata_set(t, K(key), K("v1"), 0), 0);
    CHECK_RC(strata_set(t, K(src), K("from-src"), 0), 0);
    /* tracking also reports t's own write, so wait for the L1 to settle */
    CHECK(EVENTUALLY(get_is(t, key, STRATA_OK, "v1", STRATA_LEVEL_L1), DEADLINE_MS));
    CHECK(EVENTUALLY(get_is(n, key, STRATA_OK, "v1", STRATA_LEVEL_L1), DEADLINE_MS));

    /* copy another key's envelope over this one, as redis-cli would */
    env = redisCommand(r, "GET %s", fsrc);
    REQUIRE(env && env->type == REDIS_REPLY_STRING);
    CHECK(raw_ok(r, "SET %s %b", fk, env->str, env->len));
    freeReplyObject(env);
    CHECK(EVENTUALLY(get_is(t, key, STRATA_OK, "from-src", 0), DEADLINE_MS));
    /* without tracking nothing told n: it still serves v1 from L1 (bounded by l1_ttl_ms) */
    CHECK(get_is(n, key, STRATA_OK, "v1", STRATA_LEVEL_L1));

    /* a foreign value (not an envelope) evicts too, then reads as a miss */
    CHECK(EVENTUALLY(get_is(t, key, STRATA_OK, "from-src", STRATA_LEVEL_L1), DEADLINE_MS));
    CHECK(raw_ok(r, "SET %s plain-text", fk, NULL, 0));
    CHECK(EVENTUALLY(get_is(t, key, STRATA_MISS, NULL, 0), DEADLINE_MS));

    /* FLUSHDB arrives as a null message: the whole L1 goes */
    {
        uint64_t flushes;
        CHECK(EVENTUALLY(get_is(t, src, STRATA_OK, "from-src", STRATA_LEVEL_L1), DEADLINE_MS));
        flushes = test_stats(t).l1_flushes;
        CHECK(raw_ok(r, "FLUSHDB", NULL, NULL, 0));
        CHECK(EVENTUALLY(test_stats(t).l1_flushes > flushes, DEADLINE_MS));
        CHECK(get_is(t, src, STRATA_MISS, NULL, 0));
    }
    redisFree(r);
    strata_cache_free(t);
    strata_cache_free(n);
}

/* ---- a broken link ------------------------------------------------------ */

static void client_kill_flushes_and_recovers(void)
{
    strata_cache *t, *w;
    redisContext *r;
    char key[128], fk[160];
    strata_stats before;
    REQUIRE(ensure_server());
    REQUIRE((t = open_cache("l1=1&tracking=1")) != NULL);
    REQUIRE((w = open_cache("l1=0")) != NULL);
    REQUIRE((r = test_redis_raw(srv.port)) != NULL);
    REQUIRE(EVENTUALLY(test_stats(t).l1_link_up == 1, DEADLINE_MS));
    snprintf(key, sizeof key, "%s", test_unique("kill"));
    snprintf(fk, sizeof fk, "coh:%s", key);
    CHECK_RC(strata_set(w, K(key), K("v1"), 0), 0);
    CHECK(EVENTUALLY(get_is(t, key, STRATA_OK, "v1", STRATA_LEVEL_L1), DEADLINE_MS));
    before = test_stats(t);
    CHECK(before.l1_entries >= 1);

    CHECK(raw_ok(r, "CLIENT KILL TYPE %s", "pubsub", NULL, 0));
    /* flushed at once: no entry survives a link that may have lost messages */
    CHECK(EVENTUALLY(test_stats(t).l1_flushes > before.l1_flushes, DEADLINE_MS));
    /* and back, resubscribed, tracking re-issued */
    CHECK(EVENTUALLY(test_stats(t).l1_link_up == 1, DEADLINE_MS));
    CHECK(EVENTUALLY(get_is(t, key, STRATA_OK, "v1", STRATA_LEVEL_L1), DEADLINE_MS));
    CHECK_RC(strata_set(w, K(key), K("v2"), 0), 0); /* a stratacache write: the channel */
    CHECK(EVENTUALLY(get_is(t, key, STRATA_OK, "v2", 0), DEADLINE_MS));
    CHECK(EVENTUALLY(get_is(t, key, STRATA_OK, "v2", STRATA_LEVEL_L1), DEADLINE_MS));
    CHECK(raw_ok(r, "DEL %s", fk, NULL, 0)); /* a plain client: tracking */
    CHECK(EVENTUALLY(get_is(t, key, STRATA_MISS, NULL, 0), DEADLINE_MS));
    redisFree(r);
    strata_cache_free(t);
    strata_cache_free(w);
}

/* A server that stops answering: the unanswered ping drops the link. */
static void silent_server_flushes(void)
{
    strata_cache *c;
    char key[128];
    strata_stats before;
    int down;
    REQUIRE(ensure_server());
    REQUIRE((c = open_cache("l1=1&coherence_ping_ms=50")) != NULL);
    REQUIRE(EVENTUALLY(test_stats(c).l1_link_up == 1, DEADLINE_MS));
    snprintf(key, sizeof key, "%s", test_unique("silent"));
    CHECK_RC(strata_set(c, K(key), K("v1"), 0), 0);
    CHECK(get_is(c, key, STRATA_OK, "v1", STRATA_LEVEL_L1));
    before = test_stats(c);
    test_server_pause(&srv);
    down = EVENTUALLY(test_stats(c).l1_link_up == 0, DEADLINE_MS);
    CHECK(down);
    /* the link marks itself down, then flushes: two steps another thread may see apart */
    CHECK(EVENTUALLY(test_stats(c).l1_flushes > before.l1_flushes, DEADLINE_MS));
    /* while the link is down L1 serves nothing as fresh; the paused server
     * times out and the entry it kept is served as stale-if-error */
    CHECK(get_is(c, key, STRATA_HIT_STALE, "v1", STRATA_LEVEL_STALE));
    test_server_resume(&srv);
    CHECK(EVENTUALLY(test_stats(c).l1_link_up == 1, DEADLINE_MS));
    CHECK(EVENTUALLY(get_is(c, key, STRATA_OK, "v1", STRATA_LEVEL_L1), DEADLINE_MS));
    strata_cache_free(c);
}

/* ---- the fill / invalidation race ------------------------------------------ */

/* A lease holder loads while a plain client writes the key: the invalidation
 * arrives before the fill. The fill is stored (its lease was not touched),
 * but it must not enter L1: the value it read predates the invalidation. */
static void fill_racing_invalidation_stays_out(void)
{
    strata_cache *c;
    strata_ticket *t = NULL;
    strata_value v = STRATA_VALUE_INIT;
    redisContext *r;
    char key[128], fk[160];
    uint64_t inv;
    REQUIRE(ensure_server());
    REQUIRE((c = open_cache("l1=1&tracking=1")) != NULL);
    REQUIRE((r = test_redis_raw(srv.port)) != NULL);
    REQUIRE(EVENTUALLY(test_stats(c).l1_link_up == 1, DEADLINE_MS));
    snprintf(key, sizeof key, "%s", test_unique("race"));
    snprintf(fk, sizeof fk, "coh:%s", key);
    CHECK_RC(strata_lookup(c, K(key), &v, &t), STRATA_MISS_LEAD);
    REQUIRE(t != NULL);
    inv = test_stats(c).invalidations_received;
    CHECK(raw_ok(r, "SET %s foreign", fk, NULL, 0));
    CHECK(EVENTUALLY(test_stats(c).invalidations_received > inv, DEADLINE_MS));
    CHECK_RC(strata_fill(t, K("loaded-before"), 0), 0);
    CHECK(test_stats(c).l1_entries == 0);
    CHECK(get_is(c, key, STRATA_OK, "loaded-before", STRATA_LEVEL_BACKEND));
    /* without a race a read enters L1 as usual (tracking reports the fill's
     * own write too, so allow that message to pass first) */
    CHECK(EVENTUALLY(get_is(c, key, STRATA_OK, "loaded-before", STRATA_LEVEL_L1), DEADLINE_MS));
    strata_value_dispose(&v);
    redisFree(r);
    strata_cache_free(c);
}

/* Another process's write lands after ours, and its invalidation reaches us
 * before our own write's reply: the write's end must not put our older
 * value into L1 (backend_hook.h runs the other write in our write's flight). */
typedef struct overtaker {
    strata_cache *mine, *theirs;
    const char *key;
    int done;
} overtaker;

static void overtake(void *ud, const char *fk, size_t fklen, int landed)
{
    overtaker *o = ud;
    uint64_t inv = test_stats(o->mine).invalidations_received;
    (void)fk, (void)fklen;
    if (!landed || o->done++)
        return;
    CHECK_RC(strata_set(o->theirs, o->key, strlen(o->key), K("theirs"), 0), 0);
    CHECK(EVENTUALLY(test_stats(o->mine).invalidations_received > inv, DEADLINE_MS));
}

static void invalidation_during_own_write_wins(void)
{
    overtaker o;
    char key[128];
    REQUIRE(ensure_server());
    REQUIRE((o.mine = open_cache("l1=1")) != NULL);
    REQUIRE((o.theirs = open_cache("l1=0")) != NULL);
    REQUIRE(EVENTUALLY(test_stats(o.mine).l1_link_up == 1, DEADLINE_MS));
    snprintf(key, sizeof key, "%s", test_unique("overtaken"));
    o.key = key;
    o.done = 0;
    CHECK_RC(strata_set(o.mine, K(key), K("first"), 0), 0);
    CHECK(get_is(o.mine, key, STRATA_OK, "first", STRATA_LEVEL_L1));
    backend_hook_set(o.mine, overtake, &o);
    CHECK_RC(strata_set(o.mine, K(key), K("mine"), 0), 0);
    backend_hook_set(o.mine, NULL, NULL);
    CHECK(o.done == 1);
    /* the server holds "theirs": so must every read here, from L1 or not */
    CHECK(get_is(o.mine, key, STRATA_OK, "theirs", 0));
    CHECK(get_is(o.mine, key, STRATA_OK, "theirs", STRATA_LEVEL_L1));
    strata_cache_free(o.theirs);
    strata_cache_free(o.mine);
}

/* Readers hammer a key while another cache rewrites it; after the last
 * write, every reader converges on it: no stale fill got stuck in L1. */
typedef struct race_arg {
    strata_cache *c;
    const char *key;
    int stop;
} race_arg;

static void *reader(void *p)
{
    race_arg *a = p;
    strata_value v = STRATA_VALUE_INIT;
    while (!strata__atomic_load(&a->stop))
        strata_get(a->c, a->key, strlen(a->key), &v);
    strata_value_dispose(&v);
    return NULL;
}

static void readers_converge_after_writes(void)
{
    strata_cache *rd, *wr;
    race_arg arg;
    pthread_t th[4];
    char key[128], val[32];
    int i;
    REQUIRE(ensure_server());
    REQUIRE((rd = open_cache("l1=1")) != NULL);
    REQUIRE((wr = open_cache("l1=1")) != NULL);
    REQUIRE(EVENTUALLY(test_stats(rd).l1_link_up == 1, DEADLINE_MS));
    snprintf(key, sizeof key, "%s", test_unique("conv"));
    arg.c = rd;
    arg.key = key;
    arg.stop = 0;
    for (i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, reader, &arg);
    for (i = 0; i <= 300; i++) {
        snprintf(val, sizeof val, "v%d", i);
        CHECK_RC(strata_set(wr, K(key), K(val), 0), 0);
    }
    CHECK(EVENTUALLY(get_is(rd, key, STRATA_OK, "v300", STRATA_LEVEL_L1), DEADLINE_MS));
    strata__atomic_store(&arg.stop, 1);
    for (i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK(get_is(rd, key, STRATA_OK, "v300", 0));
    CHECK(test_stats(rd).invalidations_received > 0);
    strata_cache_free(rd);
    strata_cache_free(wr);
}

/* A cache opened while its server is down: L1 stays out of use until the
 * link is up, then works. */
static void created_while_server_down(void)
{
    test_server down;
    strata_cache *c = NULL;
    char u[256], key[64];
    REQUIRE(test_server_start(&down, "redis") == 0);
    test_server_stop(&down);
    snprintf(u, sizeof u, "%s?l1=1&ns=coh&timeout_ms=200&connect_timeout_ms=200", down.url);
    CHECK_RC(strata_cache_new(&c, u, NULL), 0);
    REQUIRE(c != NULL);
    CHECK(test_stats(c).l1_link_up == 0);
    snprintf(key, sizeof key, "%s", test_unique("late"));
    CHECK(strata_set(c, K(key), K("x"), 0) < 0);
    REQUIRE(test_server_restart(&down) == 0);
    CHECK(EVENTUALLY(test_stats(c).l1_link_up == 1, DEADLINE_MS));
    CHECK(EVENTUALLY(strata_set(c, K(key), K("x"), 0) == 0, DEADLINE_MS));
    CHECK(EVENTUALLY(get_is(c, key, STRATA_OK, "x", STRATA_LEVEL_L1), DEADLINE_MS));
    strata_cache_free(c);
    test_server_stop(&down);
}

/* Memcached has no pub/sub: another handle's L1 may serve the old value,
 * but never for longer than l1_ttl_ms. */
static void memcached_staleness_bounded_by_l1_ttl(void)
{
    test_server mc;
    strata_cache *a = NULL, *b = NULL;
    char u[256], key[64];
    int64_t filled, end, t;
    int saw_new = 0, late_old = 0;
    REQUIRE(test_server_start(&mc, "memcached") == 0);
    snprintf(u, sizeof u, "%s?l1=1&l1_ttl_ms=300&ns=coh&timeout_ms=300", mc.url);
    CHECK_RC(strata_cache_new(&a, u, NULL), 0);
    CHECK_RC(strata_cache_new(&b, u, NULL), 0);
    if (a && b) {
        snprintf(key, sizeof key, "%s", test_unique("mc"));
        CHECK(test_stats(b).l1_link_up == 0); /* no link to have */
        CHECK_RC(strata_set(a, K(key), K("v1"), 0), 0);
        CHECK(get_is(b, key, STRATA_OK, "v1", STRATA_LEVEL_BACKEND));
        filled = strata__now_wall_ms(); /* b's L1 entry expires by filled + l1_ttl_ms */
        CHECK_RC(strata_set(a, K(key), K("v2"), 0), 0);
        CHECK(get_is(b, key, STRATA_OK, "v1", STRATA_LEVEL_L1)); /* stale, and nothing says so */
        end = strata__now_mono_ms() + DEADLINE_MS;
        while (!saw_new && strata__now_mono_ms() < end) {
            t = strata__now_wall_ms(); /* taken before the read: no scheduling slack needed */
            if (get_is(b, key, STRATA_OK, "v1", STRATA_LEVEL_L1) && t >= filled + 300)
                late_old++;
            saw_new = get_is(b, key, STRATA_OK, "v2", 0);
            strata__sleep_ms(1);
        }
        CHECK(saw_new);
        CHECK(late_old == 0); /* never served from L1 past l1_ttl_ms */
    }
    strata_cache_free(a);
    strata_cache_free(b);
    test_server_stop(&mc);
}

/* Memcached with a Redis server as its invalidation bus (l1_bus): writes
 * publish there, L1s subscribe there; l1_ttl_ms is long, so only the bus can
 * explain a timely eviction. */
static void memcached_with_redis_bus(void)
{
    test_server mc;
    strata_cache *a = NULL, *b = NULL, *w = NULL, *dead = NULL;
    char u[512], key[64];
    REQUIRE(ensure_server());
    REQUIRE(test_server_start(&mc, "memcached") == 0);
    snprintf(u, sizeof u, "%s?l1=1&l1_ttl_ms=600000&ns=coh&timeout_ms=300&l1_bus=redis://127.0.0.1:%d",
             mc.url, srv.port);
    CHECK_RC(strata_cache_new(&a, u, NULL), 0);
    CHECK_RC(strata_cache_new(&b, u, NULL), 0);
    snprintf(u, sizeof u, "%s?l1=0&ns=coh&timeout_ms=300&l1_bus=redis://127.0.0.1:%d", mc.url, srv.port);
    CHECK_RC(strata_cache_new(&w, u, NULL), 0);
    if (a && b && w) {
        snprintf(key, sizeof key, "%s", test_unique("bus"));
        CHECK(EVENTUALLY(test_stats(b).l1_link_up == 1, DEADLINE_MS));
        CHECK_RC(strata_set(a, K(key), K("v1"), 0), 0);
        CHECK(get_is(b, key, STRATA_OK, "v1", STRATA_LEVEL_BACKEND));
        CHECK(EVENTUALLY(get_is(b, key, STRATA_OK, "v1", STRATA_LEVEL_L1), DEADLINE_MS));
        CHECK_RC(strata_set(a, K(key), K("v2"), 0), 0);
        CHECK(EVENTUALLY(get_is(b, key, STRATA_OK, "v2", 0), DEADLINE_MS));
        CHECK(get_is(a, key, STRATA_OK, "v2", STRATA_LEVEL_L1)); /* a's own message is not an eviction */
        CHECK(EVENTUALLY(get_is(b, key, STRATA_OK, "v2", STRATA_LEVEL_L1), DEADLINE_MS));
        CHECK_RC(strata_set(w, K(key), K("v3"), 0), 0); /* a writer without L1 publishes too */
        CHECK(EVENTUALLY(get_is(b, key, STRATA_OK, "v3", 0), DEADLINE_MS));
        CHECK(EVENTUALLY(get_is(b, key, STRATA_OK, "v3", STRATA_LEVEL_L1), DEADLINE_MS));
        CHECK_RC(strata_delete(w, K(key)), 0);
        CHECK(EVENTUALLY(get_is(b, key, STRATA_MISS, NULL, 0), DEADLINE_MS));
        CHECK(test_stats(b).invalidations_received >= 3);
    }
    /* a bus that is down: writes still succeed; L1 stays out of use, since
     * nothing would tell it of other processes' writes */
    snprintf(u, sizeof u, "%s?l1=1&ns=coh&timeout_ms=200&connect_timeout_ms=200&l1_bus=redis://127.0.0.1:1",
             mc.url);
    CHECK_RC(strata_cache_new(&dead, u, NULL), 0);
    if (dead) {
        snprintf(key, sizeof key, "%s", test_unique("busdown"));
        CHECK_RC(strata_set(dead, K(key), K("x"), 0), 0);
        CHECK(get_is(dead, key, STRATA_OK, "x", STRATA_LEVEL_BACKEND));
        CHECK(get_is(dead, key, STRATA_OK, "x", STRATA_LEVEL_BACKEND));
        CHECK(test_stats(dead).l1_link_up == 0 && test_stats(dead).l1_entries == 0);
    }
    strata_cache_free(a);
    strata_cache_free(b);
    strata_cache_free(w);
    strata_cache_free(dead);
    test_server_stop(&mc);
}

/* ---- a write and its invalidation share one round trip ------------------ */

/* Write syscalls this process has made (/proc/self/io): one per round trip
 * of a blocking pool connection; -1 where the kernel does not account them. */
static long long write_syscalls(void)
{
    char line[128];
    long long n = -1;
    FILE *f = fopen("/proc/self/io", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "syscw: %lld", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* Invalidation messages on the subscribed raw connection until n arrived or
 * its read timeout; how many arrived. */
static int messages_heard(redisContext *sub, int n)
{
    int got = 0;
    redisReply *rep;
    while (got < n && redisGetReply(sub, (void **)&rep) == REDIS_OK) {
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 && rep->element[0]->len == 7 &&
            memcmp(rep->element[0]->str, "message", 7) == 0)
            got++;
        freeReplyObject(rep);
    }
    return got;
}

static long long command_calls(redisContext *r, const char *cmd)
{
    redisReply *rep = redisCommand(r, "INFO commandstats");
    char needle[64];
    const char *at;
    long long n = 0;
    snprintf(needle, sizeof needle, "cmdstat_%s:calls=", cmd);
    if (rep && rep->type == REDIS_REPLY_STRING && (at = strstr(rep->str, needle)) != NULL)
        n = atoll(at + strlen(needle));
    if (rep)
        freeReplyObject(rep);
    return n;
}

/* set, delete and set_many on Redis send their PUBLISH inside the write's
 * own MULTI: one send per call (a separate publish would be a second round
 * trip), every invalidation heard, and as many PUBLISHes as EXECs. */
static void write_and_publish_in_one_round_trip(void)
{
    enum { N = 20, M = 8 };
    strata_cache *w;
    redisContext *sub, *ctl;
    redisReply *rep;
    char keys[M][64];
    const char *kp[M], *vp[M];
    size_t kl[M], vl[M];
    long long before, after, exec0, pub0;
    int i;
    REQUIRE(ensure_server());
    if (write_syscalls() < 0) {
        printf("  (no /proc/self/io here: round trips not counted)\n");
        return;
    }
    /* l1=0: no link thread, so every write syscall below is the writer's */
    REQUIRE((w = open_cache("l1=0&pool_size=1")) != NULL);
    REQUIRE((sub = test_redis_raw(srv.port)) != NULL && (ctl = test_redis_raw(srv.port)) != NULL);
    rep = redisCommand(sub, "SUBSCRIBE __strata__:inv:0:coh");
    REQUIRE(rep != NULL);
    freeReplyObject(rep);
    for (i = 0; i < M; i++) {
        snprintf(keys[i], sizeof keys[i], "%s", test_unique("rt"));
        kp[i] = keys[i], kl[i] = strlen(keys[i]), vp[i] = "batch", vl[i] = 5;
    }
    CHECK_RC(strata_set(w, K("rt-warm"), K("x"), 0), 0); /* the pool connects */
    REQUIRE(messages_heard(sub, 1) == 1);
    exec0 = command_calls(ctl, "exec"), pub0 = command_calls(ctl, "publish");

    before = write_syscalls();
    for (i = 0; i < N; i++)
        CHECK_RC(strata_set(w, kp[i % M], kl[i % M], K("v"), 0), 0);
    after = write_syscalls();
    CHECK(after - before == N);

    before = write_syscalls();
    for (i = 0; i < M; i++)
        CHECK_RC(strata_delete(w, kp[i], kl[i]), 0);
    after = write_syscalls();
    CHECK(after - before == M);

    before = write_syscalls();
    CHECK_RC(strata_set_many(w, M, kp, kl, vp, vl, 0), 0);
    after = write_syscalls();
    CHECK(after - before == 1);

    CHECK(messages_heard(sub, N + 2 * M) == N + 2 * M);
    CHECK(command_calls(ctl, "exec") - exec0 == N + 2 * M);
    CHECK(command_calls(ctl, "publish") - pub0 == N + 2 * M);
    redisFree(sub);
    redisFree(ctl);
    strata_cache_free(w);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"link_comes_up", link_comes_up},
        {"write_in_one_cache_evicts_the_other", write_in_one_cache_evicts_the_other},
        {"fork_handshake_survives_a_dead_child", fork_handshake_survives_a_dead_child},
        {"two_processes_via_fork", two_processes_via_fork},
        {"fork_child_threads_restart_once", fork_child_threads_restart_once},
        {"tracking_catches_plain_clients", tracking_catches_plain_clients},
        {"client_kill_flushes_and_recovers", client_kill_flushes_and_recovers},
        {"silent_server_flushes", silent_server_flushes},
        {"fill_racing_invalidation_stays_out", fill_racing_invalidation_stays_out},
        {"invalidation_during_own_write_wins", invalidation_during_own_write_wins},
        {"readers_converge_after_writes", readers_converge_after_writes},
        {"created_while_server_down", created_while_server_down},
        {"memcached_staleness_bounded_by_l1_ttl", memcached_staleness_bounded_by_l1_ttl},
        {"memcached_with_redis_bus", memcached_with_redis_bus},
        {"write_and_publish_in_one_round_trip", write_and_publish_in_one_round_trip},
    };
    int rc = test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
    if (srv_up)
        test_server_stop(&srv);
    return rc;
}
