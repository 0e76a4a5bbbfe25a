/*
 * The write side, run once per backend:  test_write memory | redis | memcached
 * read-through, write-through, write-behind (pull and push), its durability
 * across kill -9 (redis: stream + XAUTOCLAIM; memory/memcached: journal replay).
 */
#define _GNU_SOURCE
#include "test.h"
#include "platform/platform.h"
#include "server.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define K(s) (s), strlen(s)

static const char *backend_name;
static char tmpdir[256];
static unsigned ns_counter;
static int expect_open_failure; /* a case that wants the open to fail says so */

static int is_redis(void) { return strcmp(backend_name, "redis") == 0; }
static int is_memory(void) { return strcmp(backend_name, "memory") == 0; }

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A fresh namespace per case: streams and journals never see another case's records. */
static const char *fresh_ns(void)
{
    static char ns[64];
    snprintf(ns, sizeof ns, "w%ld-%d-%u", (long)time(NULL) % 100000, (int)getpid(), ns_counter++);
    return ns;
}

static const char *journal_path(const char *ns)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s.journal", tmpdir, ns);
    return p;
}

/* Opens a cache on the backend under test with `query` and the struct opts
 * (NULL = defaults). memory:// caches share the store named by ns so two
 * instances see each other; local backends journal under tmpdir. */
static strata_cache *open_with(const char *ns, const char *query, const strata_options *opts)
{
    strata_cache *c = NULL;
    char u[2048];
    const char *base = test_backend_url(backend_name);
    if (is_memory())
        snprintf(u, sizeof u, "memory://%s?ns=%s&timeout_ms=1000%s%s", ns, ns, query ? "&" : "", query ? query : "");
    else
        snprintf(u, sizeof u, "%s%sns=%s&timeout_ms=1000%s%s", base, strchr(base, '?') ? "&" : "?", ns,
                 query ? "&" : "", query ? query : "");
    if (strata_cache_new(&c, u, opts) != 0) {
        if (!expect_open_failure)
            fprintf(stderr, "  cannot open %s: %s\n", u, strata_error_last());
        return NULL;
    }
    return c;
}

/* Opens with a journal for the local backends (ignored on redis). */
static strata_cache *open_wb(const char *ns, const char *query, strata_options *opts)
{
    strata_options o = STRATA_OPTIONS_INIT;
    if (opts == NULL)
        opts = &o;
    if (!is_redis() && opts->wb_journal == NULL)
        opts->wb_journal = journal_path(ns);
    return open_with(ns, query, opts);
}

/* ---- a recording writer ---------------------------------------------------- */

#define MAX_SEEN 20000

typedef struct recorder {
    pthread_mutex_t mu;
    int fail_first;        /* fail this many calls */
    int fail_always;
    int calls, items;
    int block_fd;          /* >= 0: block reading it (a writer that never returns) */
    char keys[MAX_SEEN][24];
    char vals[MAX_SEEN][24];
    int nseen;
    int64_t max_delay_ms;
} recorder;

static recorder *recorder_new(void)
{
    recorder *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->block_fd = -1;
    return r;
}

static void recorder_free(recorder *r)
{
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static int record_batch(void *ud, size_t n, const char *const *keys, const size_t *keylens,
                        const char *const *vals, const size_t *vallens, strata_write *w)
{
    recorder *r = ud;
    size_t i;
    int fail;
    if (r->block_fd >= 0) {
        char ch;
        while (read(r->block_fd, &ch, 1) < 0 && errno == EINTR)
            ;
    }
    pthread_mutex_lock(&r->mu);
    r->calls++;
    fail = r->fail_always || r->calls <= r->fail_first;
    if (!fail) {
        for (i = 0; i < n; i++) {
            int j;
            if (keylens[i] >= 24 || vallens[i] >= 24)
                continue;
            /* the latest delivery of a key wins, as in a database */
            for (j = 0; j < r->nseen; j++)
                if (strlen(r->keys[j]) == keylens[i] && memcmp(r->keys[j], keys[i], keylens[i]) == 0)
                    break;
            if (j == r->nseen && r->nseen < MAX_SEEN)
                r->nseen++;
            if (j < MAX_SEEN) {
                memcpy(r->keys[j], keys[i], keylens[i]);
                r->keys[j][keylens[i]] = '\0';
                memcpy(r->vals[j], vals[i], vallens[i]);
                r->vals[j][vallens[i]] = '\0';
            }
        }
        r->items += (int)n;
    }
    pthread_mutex_unlock(&r->mu);
    if (fail) {
        strata_write_error(w, "database is down");
        return STRATA_EUSER;
    }
    return 0;
}

static const char *seen_value(recorder *r, const char *key)
{
    int j;
    for (j = 0; j < r->nseen; j++)
        if (strcmp(r->keys[j], key) == 0)
            return r->vals[j];
    return NULL;
}

/* ---- read-through ------------------------------------------------------------ */

static int rt_calls;

static int rt_loader(void *ud, const char *key, size_t keylen, strata_load *load)
{
    char buf[128];
    rt_calls++;
    snprintf(buf, sizeof buf, "%s:%.*s", (const char *)ud, (int)keylen, key);
    return strata_load_value(load, buf, strlen(buf), 0);
}

static void read_through(void)
{
    strata_options o = STRATA_OPTIONS_INIT;
    const char *ns = fresh_ns();
    strata_cache *c;
    strata_value v = STRATA_VALUE_INIT;
    o.loader = rt_loader;
    o.loader_data = (void *)"db";
    REQUIRE((c = open_with(ns, NULL, &o)) != NULL);
    rt_calls = 0;
    CHECK_RC(strata_get(c, K("u1"), &v), STRATA_OK);
    CHECK_VALUE(&v, "db:u1");
    CHECK(v.level == STRATA_LEVEL_LOADED);
    CHECK_RC(strata_get(c, K("u1"), &v), STRATA_OK);
    CHECK_VALUE(&v, "db:u1");
    CHECK(rt_calls == 1 && v.level != STRATA_LEVEL_LOADED);
    /* a per-call loader still overrides the default one */
    CHECK_RC(strata_get_or_load(c, K("u2"), rt_loader, (void *)"other", &v), STRATA_OK);
    CHECK_VALUE(&v, "other:u2");
    CHECK(rt_calls == 2);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

/* ---- write-through ------------------------------------------------------------ */

static int wt_calls;

static int wt_writer(void *ud, const char *key, size_t keylen, const char *val, size_t vallen, strata_write *w)
{
    (void)key; (void)keylen; (void)val; (void)vallen;
    wt_calls++;
    if (ud != NULL) {
        strata_write_error(w, (const char *)ud);
        return STRATA_EUSER;
    }
    return 0;
}

static void write_through_failure_leaves_cache(void)
{
    const char *ns = fresh_ns();
    strata_cache *a = open_with(ns, "l1=1", NULL), *b = open_with(ns, NULL, NULL);
    strata_value v = STRATA_VALUE_INIT;
    REQUIRE(a && b);
    CHECK_RC(strata_set(a, K("k"), K("old"), 0), 0);
    CHECK_RC(strata_get(a, K("k"), &v), STRATA_OK); /* now in a's L1 too */
    wt_calls = 0;
    CHECK_RC(strata_write_through(a, K("k"), K("new"), 0, wt_writer, (void *)"constraint violated"), STRATA_EUSER);
    CHECK_MSG_HAS("constraint violated");
    CHECK(wt_calls == 1);
    CHECK_RC(strata_get(a, K("k"), &v), STRATA_OK);
    CHECK_VALUE(&v, "old");
    CHECK_RC(strata_get(b, K("k"), &v), STRATA_OK);
    CHECK_VALUE(&v, "old");
    /* an absent key stays absent */
    CHECK_RC(strata_write_through(a, K("absent"), K("x"), 0, wt_writer, (void *)"no"), STRATA_EUSER);
    CHECK_RC(strata_get(b, K("absent"), &v), STRATA_MISS);
    strata_value_dispose(&v);
    strata_cache_free(a);
    strata_cache_free(b);
}

static void write_through_success_visible(void)
{
    const char *ns = fresh_ns();
    strata_cache *a = open_with(ns, "l1=1", NULL), *b = open_with(ns, "l1=1", NULL);
    strata_value v = STRATA_VALUE_INIT;
    strata_ticket *t = NULL;
    REQUIRE(a && b);
    CHECK_RC(strata_set(a, K("k"), K("old"), 0), 0);
    CHECK_RC(strata_get(a, K("k"), &v), STRATA_OK);
    /* a slow loader on b holds the lease on another key while a writes it */
    CHECK_RC(strata_lookup(b, K("leased"), &v, &t), STRATA_MISS_LEAD);
    wt_calls = 0;
    CHECK_RC(strata_write_through(a, K("k"), K("new"), 0, wt_writer, NULL), 0);
    CHECK_RC(strata_write_through(a, K("leased"), K("fresh"), 0, wt_writer, NULL), 0);
    CHECK(wt_calls == 2);
    CHECK_RC(strata_get(a, K("k"), &v), STRATA_OK);
    CHECK_VALUE(&v, "new");
    CHECK(v.level == STRATA_LEVEL_L1);
    CHECK_RC(strata_get(b, K("k"), &v), STRATA_OK);
    CHECK_VALUE(&v, "new");
    if (t) /* the write killed the lease: the old load cannot overwrite it */
        CHECK_RC(strata_fill(t, K("stale-load"), 0), STRATA_ELEASE);
    CHECK_RC(strata_get(b, K("leased"), &v), STRATA_OK);
    CHECK_VALUE(&v, "fresh");
    strata_value_dispose(&v);
    strata_cache_free(a);
    strata_cache_free(b);
}

/* The cache update fails after the writer succeeded (redis: an ACL change
 * refuses the SET but not the DEL): the key is invalidated and the result says so. If the
 * server is gone altogether, ESTALE. */
static redisContext *private_ctx;
static test_server *private_srv;

static int acl_writer(void *ud, const char *key, size_t keylen, const char *val, size_t vallen, strata_write *w)
{
    redisReply *r;
    (void)ud; (void)key; (void)keylen; (void)val; (void)vallen; (void)w;
    r = redisCommand(private_ctx, "ACL SETUSER default -set");
    if (r)
        freeReplyObject(r);
    return 0;
}

static int killing_writer(void *ud, const char *key, size_t keylen, const char *val, size_t vallen, strata_write *w)
{
    (void)ud; (void)key; (void)keylen; (void)val; (void)vallen; (void)w;
    test_server_stop(private_srv);
    return 0;
}

static void write_through_cache_failure(void)
{
    test_server srv;
    strata_cache *c = NULL;
    strata_value v = STRATA_VALUE_INIT;
    char u[256];
    if (is_memory()) {
        printf("  (memory store updates cannot fail)\n");
        return;
    }
    REQUIRE(test_server_start(&srv, backend_name) == 0);
    snprintf(u, sizeof u, "%s?timeout_ms=300&connect_timeout_ms=300&breaker_threshold=0", srv.url);
    REQUIRE(strata_cache_new(&c, u, NULL) == 0);
    private_srv = &srv;
    if (is_redis()) {
        REQUIRE((private_ctx = redisConnect("127.0.0.1", srv.port)) != NULL && !private_ctx->err);
        CHECK_RC(strata_set(c, K("k"), K("old"), 0), 0);
        CHECK_RC(strata_write_through(c, K("k"), K("new"), 0, acl_writer, NULL), STRATA_INVALIDATED);
        CHECK_MSG_HAS("invalidated");
        freeReplyObject(redisCommand(private_ctx, "ACL SETUSER default +set"));
        CHECK_RC(strata_get(c, K("k"), &v), STRATA_MISS); /* never the old value */
        redisFree(private_ctx);
    }
    CHECK_RC(strata_set(c, K("k2"), K("old"), 0), 0);
    CHECK_RC(strata_write_through(c, K("k2"), K("new"), 0, killing_writer, NULL), STRATA_ESTALE);
    CHECK_MSG_HAS("may serve the old value");
    strata_value_dispose(&v);
    strata_cache_free(c);
    test_server_stop(&srv);
}

/* ---- write-behind: pull API, coalescing ------------------------------------- */

static void write_behind_updates_cache_at_once(void)
{
    const char *ns = fresh_ns();
    strata_cache *a = open_wb(ns, "wb_threads=0", NULL), *b = open_with(ns, NULL, NULL);
    strata_value v = STRATA_VALUE_INIT;
    strata_stats st;
    REQUIRE(a && b);
    CHECK_RC(strata_write_behind(a, K("k"), K("v1"), 0), 0);
    CHECK_RC(strata_get(b, K("k"), &v), STRATA_OK);
    CHECK_VALUE(&v, "v1");
    CHECK_RC(strata_stats_get(a, &st, STRATA_STATS_VERSION), 0);
    CHECK(st.wb_enqueued == 1 && st.wb_backlog == 1 && st.wb_flushed == 0);
    strata_value_dispose(&v);
    strata_cache_free(a);
    strata_cache_free(b);
}

static void pull_api_coalesces(void)
{
    const char *ns = fresh_ns();
    strata_cache *c = open_wb(ns, "wb_threads=0", NULL);
    strata_wb_batch *b = NULL;
    strata_stats st;
    const char *key, *val;
    size_t keylen, vallen, i;
    int64_t before = time(NULL) * 1000LL - 1000;
    int got_k = 0, got_k2 = 0;
    REQUIRE(c);
    CHECK_RC(strata_wb_poll(c, 10, &b), STRATA_MISS);
    CHECK(b == NULL);
    CHECK_RC(strata_write_behind(c, K("k"), K("v1"), 0), 0);
    CHECK_RC(strata_write_behind(c, K("k2"), K("x"), 0), 0);
    CHECK_RC(strata_write_behind(c, K("k"), K("v2"), 0), 0);
    CHECK_RC(strata_write_behind(c, K("k"), K("v3"), 0), 0);
    CHECK_RC(strata_wb_poll(c, 10, &b), STRATA_OK);
    REQUIRE(b != NULL);
    CHECK(strata_wb_batch_count(b) == 2); /* four writes, two keys */
    for (i = 0; i < strata_wb_batch_count(b); i++) {
        CHECK_RC(strata_wb_batch_item(b, i, &key, &keylen, &val, &vallen), 0);
        if (keylen == 1 && key[0] == 'k') {
            got_k = vallen == 2 && memcmp(val, "v3", 2) == 0;
        } else if (keylen == 2) {
            got_k2 = vallen == 1 && val[0] == 'x';
        }
        CHECK(strata_wb_batch_enqueued_ms(b, i) >= before);
    }
    CHECK(got_k && got_k2);
    CHECK_RC(strata_wb_batch_item(b, 2, &key, &keylen, &val, &vallen), STRATA_EINVAL);
    CHECK(strata_wb_batch_enqueued_ms(b, 99) == 0);
    {
        strata_wb_batch *again = NULL;
        CHECK_RC(strata_wb_poll(c, 10, &again), STRATA_MISS); /* both keys are in flight */
    }
    CHECK_RC(strata_wb_ack(b), 0);
    CHECK_RC(strata_stats_get(c, &st, STRATA_STATS_VERSION), 0);
    CHECK(st.wb_enqueued == 4 && st.wb_flushed == 4 && st.wb_backlog == 0);
    CHECK_RC(strata_flush(c, 1000), 0);
    strata_cache_free(c);
}

static void pull_api_fail_retries_later(void)
{
    const char *ns = fresh_ns();
    strata_cache *c = open_wb(ns, "wb_threads=0&wb_retry_ms=150&wb_max_attempts=5", NULL);
    strata_wb_batch *b = NULL;
    strata_stats st;
    int64_t failed_at, deadline;
    int rc = STRATA_MISS;
    REQUIRE(c);
    CHECK_RC(strata_write_behind(c, K("k"), K("v1"), 0), 0);
    CHECK_RC(strata_wb_poll(c, 10, &b), STRATA_OK);
    REQUIRE(b);
    CHECK_RC(strata_wb_fail(b, "try later"), 0);
    failed_at = now_ms();
    b = NULL;
    /* not before the backoff, then the same record again */
    deadline = failed_at + 5000;
    while (now_ms() < deadline && (rc = strata_wb_poll(c, 10, &b)) == STRATA_MISS)
        sleep_ms(5);
    CHECK_RC(rc, STRATA_OK);
    CHECK(now_ms() - failed_at >= 140);
    REQUIRE(b);
    CHECK(strata_wb_batch_count(b) == 1);
    CHECK_RC(strata_wb_ack(b), 0);
    CHECK_RC(strata_stats_get(c, &st, STRATA_STATS_VERSION), 0);
    CHECK(st.wb_retried == 1 && st.wb_flushed == 1 && st.wb_backlog == 0);
    strata_cache_free(c);
}

/* ---- write-behind: the registered writer -------------------------------------- */

static void writer_retries_then_succeeds(void)
{
    const char *ns = fresh_ns();
    strata_options o = STRATA_OPTIONS_INIT;
    recorder *r = recorder_new();
    strata_cache *c;
    strata_stats st;
    r->fail_first = 2;
    o.wb_writer = record_batch;
    o.wb_writer_data = r;
    o.wb_threads = 0;
    o.wb_retry_ms = 10;
    REQUIRE((c = open_wb(ns, NULL, &o)) != NULL);
    CHECK_RC(strata_write_behind(c, K("k"), K("v"), 0), 0);
    CHECK_RC(strata_flush(c, 5000), 0);
    CHECK(r->calls == 3);
    CHECK(seen_value(r, "k") && strcmp(seen_value(r, "k"), "v") == 0);
    CHECK_RC(strata_stats_get(c, &st, STRATA_STATS_VERSION), 0);
    CHECK(st.wb_retried == 2 && st.wb_flushed == 1 && st.wb_dead == 0);
    strata_cache_free(c);
    recorder_free(r);
}

static long redis_xlen(const char *key)
{
    const char *url = test_backend_url("redis");
    int port = atoi(strrchr(url, ':') + 1);
    redisContext *ctx = redisConnect("127.0.0.1", port);
    redisReply *rep;
    long n = -1;
    if (ctx == NULL || ctx->err)
        return -1;
    rep = redisCommand(ctx, "XLEN %s", key);
    if (rep && rep->type == REDIS_REPLY_INTEGER)
        n = (long)rep->integer;
    if (rep)
        freeReplyObject(rep);
    redisFree(ctx);
    return n;
}

/* Redis: keys "<ns>#W:id:*" and "<ns>#W:n:*" left (the per-key order keys). */
static long order_keys_left(const char *ns)
{
    const char *url = test_backend_url("redis");
    redisContext *ctx = redisConnect("127.0.0.1", atoi(strrchr(url, ':') + 1));
    long n = 0;
    char cursor[32] = "0";
    if (ctx == NULL || ctx->err)
        return -1;
    do {
        redisReply *rep = redisCommand(ctx, "SCAN %s MATCH %s#W:[in]*:* COUNT 1000", cursor, ns);
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            n = -1;
            if (rep)
                freeReplyObject(rep);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        n += (long)rep->element[1]->elements;
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    redisFree(ctx);
    return n;
}

static void writer_dead_letters(void)
{
    const char *ns = fresh_ns();
    strata_options o = STRATA_OPTIONS_INIT;
    recorder *r = recorder_new();
    strata_cache *c;
    strata_stats st;
    char dead[600];
    r->fail_always = 1;
    o.wb_writer = record_batch;
    o.wb_writer_data = r;
    o.wb_threads = 0;
    o.wb_retry_ms = 5;
    o.wb_max_attempts = 3;
    REQUIRE((c = open_wb(ns, NULL, &o)) != NULL);
    CHECK_RC(strata_write_behind(c, K("doomed"), K("v"), 0), 0);
    CHECK_RC(strata_flush(c, 5000), 0); /* dead-lettered counts as done */
    CHECK(r->calls == 3);
    CHECK_RC(strata_stats_get(c, &st, STRATA_STATS_VERSION), 0);
    CHECK(st.wb_dead == 1 && st.wb_retried == 2 && st.wb_flushed == 0 && st.wb_backlog == 0);
    if (is_redis()) {
        snprintf(dead, sizeof dead, "%s#W:dead", ns);
        CHECK(redis_xlen(dead) == 1);
        snprintf(dead, sizeof dead, "%s#W", ns);
        CHECK(redis_xlen(dead) == 0);
    } else {
        struct stat sb;
        snprintf(dead, sizeof dead, "%s.dead", journal_path(ns));
        CHECK(stat(dead, &sb) == 0 && sb.st_size > 8);
    }
    strata_cache_free(c);
    recorder_free(r);
}

/* Dead letters in the file or stream of the backend under test. */
static long dead_count(const char *ns)
{
    char path[600];
    FILE *f;
    unsigned char hdr[8];
    long n = 0;
    if (is_redis()) {
        snprintf(path, sizeof path, "%s#W:dead", ns);
        return redis_xlen(path);
    }
    snprintf(path, sizeof path, "%s.dead", journal_path(ns));
    if ((f = fopen(path, "rb")) == NULL)
        return 0;
    if (fread(hdr, 1, 8, f) == 8)
        while (fread(hdr, 1, 8, f) == 8 &&
               fseek(f, (long)((uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16), SEEK_CUR) == 0)
            n++;
    fclose(f);
    return n;
}

static void dead_letter_one(strata_cache *c, const char *key)
{
    strata_wb_batch *b = NULL;
    CHECK_RC(strata_write_behind(c, K(key), K("v"), 0), 0);
    CHECK_RC(strata_wb_poll(c, 10, &b), STRATA_OK);
    if (b)
        CHECK_RC(strata_wb_fail(b, "database refused it"), 0);
}

/* Issue 15: dead letters are trimmed to wb_dead_max and wb_dead_max_age_ms. */
static void dead_letters_trimmed(void)
{
    const char *ns = fresh_ns();
    strata_cache *c;
    strata_stats st;
    char key[16];
    int i;
    REQUIRE((c = open_wb(ns, "wb_threads=0&wb_max_attempts=1&wb_dead_max=3", NULL)) != NULL);
    for (i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "d%d", i);
        dead_letter_one(c, key);
    }
    CHECK(dead_count(ns) == 3);
    CHECK_RC(strata_stats_get(c, &st, STRATA_STATS_VERSION), 0);
    CHECK(st.wb_dead == 5 && st.wb_dead_trimmed == 2);
    strata_cache_free(c);
    REQUIRE((c = open_wb(ns, "wb_threads=0&wb_max_attempts=1&wb_dead_max_age_ms=200", NULL)) != NULL);
    sleep_ms(300);
    dead_letter_one(c, "fresh");
    CHECK(dead_count(ns) == 1);
    CHECK_RC(strata_stats_get(c, &st, STRATA_STATS_VERSION), 0);
    CHECK(st.wb_dead_trimmed == 3);
    if (st.wb_dead_trimmed != 3 || dead_count(ns) != 1)
        fprintf(stderr, "  %ld dead letters, %llu trimmed\n", dead_count(ns), (unsigned long long)st.wb_dead_trimmed);
    strata_cache_free(c);
}

static void push_flusher_delivers(void)
{
    const char *ns = fresh_ns();
    strata_options o = STRATA_OPTIONS_INIT;
    recorder *r = recorder_new();
    strata_cache *c;
    strata_stats st;
    char key[32], val[32];
    int i, ok = 1;
    o.wb_writer = record_batch;
    o.wb_writer_data = r;
    o.wb_threads = 2;
    o.wb_batch_size = 50;
    o.wb_interval_ms = 10;
    REQUIRE((c = open_wb(ns, NULL, &o)) != NULL);
    for (i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i % 400);
        snprintf(val, sizeof val, "v%d", i);
        CHECK_RC(strata_write_behind(c, K(key), K(val), 0), 0);
    }
    CHECK_RC(strata_flush(c, 20000), 0);
    for (i = 600; i < 1000; i++) {
        const char *seen;
        snprintf(key, sizeof key, "k%d", i % 400);
        snprintf(val, sizeof val, "v%d", i);
        seen = seen_value(r, key);
        if (!seen || strcmp(seen, val) != 0)
            ok = 0;
    }
    CHECK(ok);
    /* on redis the stream can be empty (the ack ran on the server) a moment
     * before the flusher thread that sent it counts it: wait for the count */
    for (i = 0; i < 200; i++) {
        CHECK_RC(strata_stats_get(c, &st, STRATA_STATS_VERSION), 0);
        if (st.wb_flushed >= 1000)
            break;
        sleep_ms(10);
    }
    CHECK(st.wb_enqueued == 1000 && st.wb_flushed == 1000 && st.wb_backlog == 0);
    if (st.wb_flushed != 1000)
        fprintf(stderr, "  enqueued %llu, flushed %llu, backlog %llu\n", (unsigned long long)st.wb_enqueued,
                (unsigned long long)st.wb_flushed, (unsigned long long)st.wb_backlog);
    strata_cache_free(c);
    recorder_free(r);
}

/* Closing the cache drains the queue (bounded). */
static void free_drains(void)
{
    const char *ns = fresh_ns();
    strata_options o = STRATA_OPTIONS_INIT;
    recorder *r = recorder_new();
    strata_cache *c;
    o.wb_writer = record_batch;
    o.wb_writer_data = r;
    o.wb_threads = 1;
    o.wb_interval_ms = 60000; /* only the drain can deliver in time */
    o.wb_batch_size = 1000;
    REQUIRE((c = open_wb(ns, NULL, &o)) != NULL);
    CHECK_RC(strata_write_behind(c, K("a"), K("1"), 0), 0);
    CHECK_RC(strata_write_behind(c, K("b"), K("2"), 0), 0);
    strata_cache_free(c);
    CHECK(seen_value(r, "a") && seen_value(r, "b"));
    recorder_free(r);
}

/* ---- backpressure -------------------------------------------------------------- */

typedef struct acker {
    strata_cache *c;
    int delay_ms;
} acker;

static void *ack_later(void *arg)
{
    acker *a = arg;
    strata_wb_batch *b = NULL;
    sleep_ms(a->delay_ms);
    if (strata_wb_poll(a->c, 1, &b) == STRATA_OK)
        strata_wb_ack(b);
    return NULL;
}

static void backpressure(void)
{
    const char *ns = fresh_ns();
    strata_cache *c = open_wb(ns, "wb_threads=0&wb_max_backlog=5", NULL), *blocking;
    strata_value v = STRATA_VALUE_INIT;
    strata_stats st;
    char key[16];
    pthread_t th;
    acker a;
    int64_t t0;
    int i;
    REQUIRE(c);
    for (i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "k%d", i);
        CHECK_RC(strata_write_behind(c, K(key), K("v"), 0), 0);
    }
    CHECK_RC(strata_write_behind(c, K("over"), K("v"), 0), STRATA_EBUSY);
    CHECK_MSG_HAS("wb_max_backlog");
    CHECK_RC(strata_get(c, K("over"), &v), STRATA_MISS); /* refused: nothing written */
    CHECK_RC(strata_stats_get(c, &st, STRATA_STATS_VERSION), 0);
    CHECK(st.wb_enqueued == 5 && st.wb_backlog == 5);
    strata_cache_free(c);

    /* blocking mode: waits up to wb_block_ms, succeeds when room appears */
    REQUIRE((blocking = open_wb(ns, "wb_threads=0&wb_max_backlog=5&wb_block_ms=3000", NULL)) != NULL);
    a.c = blocking;
    a.delay_ms = 100;
    REQUIRE(pthread_create(&th, NULL, ack_later, &a) == 0);
    t0 = now_ms();
    CHECK_RC(strata_write_behind(blocking, K("over"), K("v"), 0), 0);
    CHECK(now_ms() - t0 >= 80);
    pthread_join(th, NULL);
    strata_cache_free(blocking);

    REQUIRE((blocking = open_wb(ns, "wb_threads=0&wb_max_backlog=5&wb_block_ms=150", NULL)) != NULL);
    t0 = now_ms();
    CHECK_RC(strata_write_behind(blocking, K("over2"), K("v"), 0), STRATA_EBUSY);
    CHECK(now_ms() - t0 >= 140);
    strata_value_dispose(&v);
    strata_cache_free(blocking);
}

/* ---- redis: a second consumer claims a dead consumer's records --------------- */

static void second_consumer_claims(void)
{
    const char *ns = fresh_ns();
    strata_cache *c;
    strata_wb_batch *b = NULL;
    pid_t pid;
    int status, rc = STRATA_MISS, i;
    int64_t t0, deadline;
    if (!is_redis()) {
        printf("  (redis only: the local queue belongs to one process)\n");
        return;
    }
    REQUIRE((c = open_with(ns, "wb_threads=0&wb_consumer=alive&wb_claim_ms=300", NULL)) != NULL);
    for (i = 0; i < 3; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        CHECK_RC(strata_write_behind(c, K(key), K("v"), 0), 0);
    }
    t0 = now_ms(); /* the other consumer takes the records after this */
    pid = fork();
    if (pid == 0) {
        strata_cache *dying = open_with(ns, "wb_threads=0&wb_consumer=doomed", NULL);
        strata_wb_batch *db = NULL;
        /* takes every record, then dies without ack */
        _exit(dying && strata_wb_poll(dying, 10, &db) == STRATA_OK && strata_wb_batch_count(db) == 3 ? 0 : 1);
    }
    REQUIRE(pid > 0);
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rc = strata_wb_poll(c, 10, &b);
    if (now_ms() - t0 < 200) /* held by the other consumer and not idle long enough yet */
        CHECK_RC(rc, STRATA_MISS);
    deadline = t0 + 10000;
    while (rc == STRATA_MISS && now_ms() < deadline) {
        sleep_ms(20);
        rc = strata_wb_poll(c, 10, &b);
    }
    CHECK_RC(rc, STRATA_OK);
    CHECK(now_ms() - t0 >= 290);
    if (b) {
        CHECK(strata_wb_batch_count(b) == 3);
        CHECK_RC(strata_wb_ack(b), 0);
    }
    CHECK_RC(strata_flush(c, 2000), 0);
    strata_cache_free(c);
}

/* Two consumers share the stream; a key's older versions held by one
 * consumer are skipped once the other holds the newest. */
static int deliver_batch(strata_wb_batch *b, recorder *r)
{
    size_t i, n = strata_wb_batch_count(b);
    const char **keys = calloc(n, sizeof *keys), **vals = calloc(n, sizeof *vals);
    size_t *kl = calloc(n, sizeof *kl), *vl = calloc(n, sizeof *vl);
    strata_write *w = NULL; /* record_batch only reports failure through it */
    for (i = 0; i < n; i++)
        strata_wb_batch_item(b, i, &keys[i], &kl[i], &vals[i], &vl[i]);
    record_batch(r, n, keys, kl, vals, vl, w);
    free((void *)keys);
    free((void *)vals);
    free(kl);
    free(vl);
    return strata_wb_ack(b);
}

static void two_consumers_share_the_work(void)
{
    const char *ns = fresh_ns();
    strata_cache *a, *b, *w;
    recorder *r = recorder_new();
    char key[24], val[24];
    int i, v, batches_a = 0, batches_b = 0, wrong = 0, rounds = 0;
    if (!is_redis()) {
        printf("  (redis only)\n");
        recorder_free(r);
        return;
    }
    REQUIRE((w = open_with(ns, "wb_threads=0", NULL)) != NULL);
    for (v = 1; v <= 4; v++) {
        for (i = 0; i < 500; i++) {
            snprintf(key, sizeof key, "k%d", i);
            snprintf(val, sizeof val, "v%d", v);
            CHECK_RC(strata_write_behind(w, K(key), K(val), 0), 0);
        }
    }
    REQUIRE((a = open_with(ns, "wb_threads=0&wb_consumer=a", NULL)) != NULL);
    REQUIRE((b = open_with(ns, "wb_threads=0&wb_consumer=b", NULL)) != NULL);
    for (;;) {
        strata_wb_batch *ba = NULL, *bb = NULL;
        int ra = strata_wb_poll(a, 64, &ba), rb = strata_wb_poll(b, 64, &bb);
        if (ra == STRATA_MISS && rb == STRATA_MISS)
            break;
        if (ra == STRATA_OK) {
            CHECK_RC(deliver_batch(ba, r), 0);
            batches_a++;
        }
        if (rb == STRATA_OK) {
            CHECK_RC(deliver_batch(bb, r), 0);
            batches_b++;
        }
        REQUIRE(ra >= 0 && rb >= 0 && ++rounds < 1000);
    }
    CHECK(batches_a > 0 && batches_b > 0);
    CHECK(r->nseen == 500);
    for (i = 0; i < 500; i++) {
        const char *seen;
        snprintf(key, sizeof key, "k%d", i);
        seen = seen_value(r, key);
        if (!seen || strcmp(seen, "v4") != 0)
            wrong++;
    }
    CHECK(wrong == 0);
    CHECK(r->items < 2000); /* older versions were skipped, not all delivered */
    CHECK_RC(strata_flush(w, 2000), 0);
    CHECK(order_keys_left(ns) == 0); /* they go with each key's last record */
    strata_cache_free(a);
    strata_cache_free(b);
    strata_cache_free(w);
    recorder_free(r);
}

/* Per-key order however long a record waits (issue 11 #2): a dead
 * consumer's old record, claimed after the value (and its TTL) is long gone,
 * must not reach the writer after the newer value did. */
static void late_claim_keeps_key_order(void)
{
    const char *ns = fresh_ns();
    strata_cache *w, *live;
    strata_wb_batch *b = NULL;
    recorder *r = recorder_new();
    pid_t pid;
    int status, rc, delivered_after = 0;
    int64_t deadline;
    char stream[80];
    snprintf(stream, sizeof stream, "%s#W", ns);
    if (!is_redis()) {
        printf("  (redis only: consumers share the stream)\n");
        recorder_free(r);
        return;
    }
    REQUIRE((w = open_with(ns, "wb_threads=0&stale_ms=0", NULL)) != NULL);
    CHECK_RC(strata_write_behind(w, K("k"), K("old"), 200), 0);
    pid = fork();
    if (pid == 0) {
        strata_cache *dying = open_with(ns, "wb_threads=0&wb_consumer=doomed", NULL);
        strata_wb_batch *db = NULL;
        _exit(dying && strata_wb_poll(dying, 10, &db) == STRATA_OK && strata_wb_batch_count(db) == 1 ? 0 : 1);
    }
    REQUIRE(pid > 0 && waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_RC(strata_write_behind(w, K("k"), K("new"), 200), 0);
    REQUIRE((live = open_with(ns, "wb_threads=0&wb_consumer=live&wb_claim_ms=300", NULL)) != NULL);
    REQUIRE(strata_wb_poll(live, 10, &b) == STRATA_OK);
    CHECK(strata_wb_batch_count(b) == 1);
    CHECK_RC(deliver_batch(b, r), 0);
    CHECK(seen_value(r, "k") && strcmp(seen_value(r, "k"), "new") == 0);
    /* the value and its TTL are gone; the old record becomes claimable */
    sleep_ms(500);
    deadline = now_ms() + 3000;
    while (now_ms() < deadline) {
        b = NULL;
        if ((rc = strata_wb_poll(live, 10, &b)) == STRATA_OK) {
            delivered_after += (int)strata_wb_batch_count(b);
            CHECK_RC(deliver_batch(b, r), 0);
        }
        REQUIRE(rc >= 0);
        if (redis_xlen(stream) == 0)
            break; /* the old record was taken and dropped as superseded */
        sleep_ms(20);
    }
    CHECK(delivered_after == 0);
    CHECK(seen_value(r, "k") && strcmp(seen_value(r, "k"), "new") == 0);
    CHECK(redis_xlen(stream) == 0);
    { /* the order keys went with the key's last record: nothing is left behind */
        const char *url = test_backend_url("redis");
        redisContext *ctx = redisConnect("127.0.0.1", atoi(strrchr(url, ':') + 1));
        redisReply *rep = ctx && !ctx->err ? redisCommand(ctx, "EXISTS %s#W:id:k %s#W:n:k", ns, ns) : NULL;
        CHECK(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0);
        if (rep)
            freeReplyObject(rep);
        if (ctx)
            redisFree(ctx);
    }
    strata_cache_free(live);
    strata_cache_free(w);
    recorder_free(r);
}

/* A forked child may write through its parent's redis cache (it reconnects). */
static void fork_child_writes_to_stream(void)
{
    const char *ns = fresh_ns();
    strata_cache *c;
    strata_wb_batch *b = NULL;
    pid_t pid;
    int status;
    if (!is_redis()) {
        printf("  (redis only)\n");
        return;
    }
    REQUIRE((c = open_with(ns, "wb_threads=0", NULL)) != NULL);
    CHECK_RC(strata_write_behind(c, K("parent"), K("1"), 0), 0);
    pid = fork();
    if (pid == 0)
        _exit(strata_write_behind(c, K("child"), K("2"), 0) == 0 ? 0 : 1);
    REQUIRE(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_RC(strata_wb_poll(c, 10, &b), STRATA_OK);
    if (b) {
        CHECK(strata_wb_batch_count(b) == 2);
        CHECK_RC(strata_wb_ack(b), 0);
    }
    strata_cache_free(c);
}

/* ---- kill -9 at a random point of a write stream -------------------------------- */

/* A writer process writes round after round over KILL_KEYS keys (each key's
 * version rising by round) and publishes how many writes were acknowledged;
 * it is killed -9 at a random point within the first KILL_ROUNDS rounds. A new process must deliver, for every
 * key, its newest acknowledged version or the one in flight at the kill,
 * never lose one, and never deliver a key's versions out of order. Run per
 * fsync mode on the journal (memory, memcached) and once on the stream. */
#define KILL_KEYS 600
#define KILL_ROUNDS 4                          /* the kill comes within the first KILL_ROUNDS */
#define KILL_WRITES (KILL_KEYS * KILL_ROUNDS)
#define KILL_MAX_WRITES (KILL_KEYS * 50)        /* the writer keeps going until killed */

typedef struct order_recorder {
    int last[KILL_KEYS];   /* newest version delivered, -1 = none */
    int backwards;         /* deliveries older than an earlier one of the same key */
} order_recorder;

static int record_order(void *ud, size_t n, const char *const *keys, const size_t *keylens,
                        const char *const *vals, const size_t *vallens, strata_write *w)
{
    order_recorder *r = ud;
    size_t i;
    (void)keylens; (void)vallens; (void)w;
    for (i = 0; i < n; i++) {
        int k = atoi(keys[i] + 1), v = atoi(vals[i] + 1);
        if (k < 0 || k >= KILL_KEYS)
            continue;
        if (v < r->last[k])
            r->backwards++;
        else
            r->last[k] = v;
    }
    return 0;
}

static void kill9_one(int fsync_mode)
{
    const char *ns = fresh_ns();
    int block_pipe[2], status, i, lost = 0, invented = 0, kill_at;
    volatile int *acked;
    pid_t pid;
    order_recorder *r;
    strata_options o = STRATA_OPTIONS_INIT;
    strata_cache *c;
    strata_stats st;
    int64_t deadline;

    acked = mmap(NULL, sizeof *acked, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(acked != MAP_FAILED && pipe(block_pipe) == 0);
    *acked = 0;
    kill_at = KILL_WRITES / 4 + (int)(strata__random_u64() % (KILL_WRITES * 3 / 4));
    pid = fork();
    if (pid == 0) {
        /* redis: a flusher whose writer never returns holds some records
         * pending to this consumer; local backends: no flusher at all */
        strata_options co = STRATA_OPTIONS_INIT;
        recorder *blocked = recorder_new();
        strata_cache *wc;
        char key[24], val[24];
        blocked->block_fd = block_pipe[0];
        co.wb_writer = record_batch;
        co.wb_writer_data = blocked;
        co.wb_threads = is_redis() ? 1 : 0;
        co.wb_batch_size = 100;
        co.wb_interval_ms = 5;
        co.wb_fsync = fsync_mode;
        if ((wc = open_wb(ns, NULL, &co)) == NULL)
            _exit(2);
        for (i = 0; i < KILL_MAX_WRITES; i++) {
            snprintf(key, sizeof key, "k%d", i % KILL_KEYS);
            snprintf(val, sizeof val, "v%d", i / KILL_KEYS);
            if (strata_write_behind(wc, K(key), K(val), 0) != 0) {
                fprintf(stderr, "  child: write %d failed: %s\n", i, strata_error_last());
                _exit(3);
            }
            __atomic_store_n(acked, i + 1, __ATOMIC_SEQ_CST);
        }
        for (;;)
            pause();
    }
    REQUIRE(pid > 0);
    deadline = now_ms() + 60000;
    while (__atomic_load_n(acked, __ATOMIC_SEQ_CST) < kill_at && now_ms() < deadline &&
           waitpid(pid, &status, WNOHANG) == 0)
        ;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    close(block_pipe[0]);
    close(block_pipe[1]);
    CHECK(*acked >= kill_at);

    r = calloc(1, sizeof *r);
    for (i = 0; i < KILL_KEYS; i++)
        r->last[i] = -1;
    o.wb_writer = record_order;
    o.wb_writer_data = r;
    o.wb_threads = 0;
    o.wb_batch_size = 500;
    o.wb_claim_ms = 300;
    REQUIRE((c = open_wb(ns, NULL, &o)) != NULL);
    CHECK_RC(strata_flush(c, 60000), 0);
    for (i = 0; i < KILL_KEYS; i++) {
        /* write number w = round * KILL_KEYS + key was acked when w < *acked;
         * write *acked may have landed too */
        int newest_acked = -1, in_flight = -1, w;
        for (w = i; w <= *acked; w += KILL_KEYS) {
            if (w < *acked)
                newest_acked = w / KILL_KEYS;
            else if (w == *acked)
                in_flight = w / KILL_KEYS;
        }
        if (r->last[i] < newest_acked)
            lost++;
        else if (r->last[i] != newest_acked && r->last[i] != in_flight)
            invented++;
    }
    CHECK(lost == 0);
    CHECK(invented == 0);
    CHECK(r->backwards == 0);
    CHECK_RC(strata_stats_get(c, &st, STRATA_STATS_VERSION), 0);
    CHECK(st.wb_backlog == 0);
    if (is_redis())
        CHECK(order_keys_left(ns) == 0); /* claimed, delivered twice or not: none left */
    if (lost || invented || r->backwards)
        fprintf(stderr, "  fsync mode %d, killed after %d acks: %d keys lost, %d wrong, %d out of order\n",
                fsync_mode, *acked, lost, invented, r->backwards);
    strata_cache_free(c);
    free(r);
    munmap((void *)acked, sizeof *acked);
}

static void kill9_loses_nothing(void)
{
    if (is_redis()) {
        kill9_one(STRATA_WB_FSYNC_NONE); /* the stream: fsync is Redis's own */
        return;
    }
    kill9_one(STRATA_WB_FSYNC_ALWAYS);
    kill9_one(STRATA_WB_FSYNC_INTERVAL);
    kill9_one(STRATA_WB_FSYNC_NONE);
}

/* ---- local journal specifics ---------------------------------------------------- */

static void journal_replay_and_compaction(void)
{
    const char *ns = fresh_ns();
    strata_cache *c;
    strata_wb_batch *b = NULL;
    struct stat sb;
    const char *key, *val;
    size_t keylen, vallen;
    if (is_redis()) {
        printf("  (the journal file is for memory/memcached)\n");
        return;
    }
    REQUIRE((c = open_wb(ns, "wb_threads=0", NULL)) != NULL);
    CHECK_RC(strata_write_behind(c, K("a"), K("1"), 0), 0);
    CHECK_RC(strata_write_behind(c, K("b"), K("2"), 0), 0);
    CHECK_RC(strata_wb_poll(c, 1, &b), STRATA_OK);
    REQUIRE(b);
    CHECK_RC(strata_wb_ack(b), 0); /* "a" delivered, "b" not */
    strata_cache_free(c);
    /* the journal is one process's: a second cache on it is refused */
    REQUIRE((c = open_wb(ns, "wb_threads=0", NULL)) != NULL);
    expect_open_failure = 1;
    CHECK(open_wb(ns, "wb_threads=0", NULL) == NULL);
    expect_open_failure = 0;
    CHECK_MSG_HAS("in use");
    CHECK_RC(strata_wb_poll(c, 10, &b), STRATA_OK);
    REQUIRE(b);
    CHECK(strata_wb_batch_count(b) == 1);
    CHECK_RC(strata_wb_batch_item(b, 0, &key, &keylen, &val, &vallen), 0);
    CHECK(keylen == 1 && key[0] == 'b' && vallen == 1 && val[0] == '2');
    CHECK_RC(strata_wb_ack(b), 0);
    /* everything flushed: back to the bare header */
    CHECK(stat(journal_path(ns), &sb) == 0 && sb.st_size == 8);
    strata_cache_free(c);
    /* a torn tail (crash mid-record) is ignored on replay */
    {
        FILE *f;
        REQUIRE((c = open_wb(ns, "wb_threads=0", NULL)) != NULL);
        CHECK_RC(strata_write_behind(c, K("c"), K("3"), 0), 0);
        strata_cache_free(c);
        REQUIRE((f = fopen(journal_path(ns), "ab")) != NULL);
        fwrite("\x40\0\0\0garbage", 1, 11, f);
        fclose(f);
        REQUIRE((c = open_wb(ns, "wb_threads=0", NULL)) != NULL);
        CHECK_RC(strata_wb_poll(c, 10, &b), STRATA_OK);
        if (b) {
            CHECK(strata_wb_batch_count(b) == 1);
            CHECK_RC(strata_wb_ack(b), 0);
        }
        strata_cache_free(c);
    }
}

static void fork_child_cannot_use_local_queue(void)
{
    const char *ns = fresh_ns();
    strata_cache *c;
    pid_t pid;
    int status;
    if (is_redis()) {
        printf("  (redis children share the stream safely)\n");
        return;
    }
    REQUIRE((c = open_wb(ns, "wb_threads=0", NULL)) != NULL);
    pid = fork();
    if (pid == 0)
        _exit(strata_write_behind(c, K("k"), K("v"), 0) == STRATA_ECLOSED ? 0 : 1);
    REQUIRE(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_RC(strata_write_behind(c, K("k"), K("v"), 0), 0);
    strata_cache_free(c);
}

/* ---- bad input ------------------------------------------------------------------ */

static void bad_input(void)
{
    const char *ns = fresh_ns();
    strata_cache *c = open_wb(ns, "wb_threads=0", NULL), *bad = NULL;
    strata_options o = STRATA_OPTIONS_INIT;
    strata_wb_batch *b = (strata_wb_batch *)&o; /* must be reset to NULL */
    strata_value v = STRATA_VALUE_INIT;
    const char *key, *val;
    size_t keylen, vallen;
    char u[512];
    const char *keys[2] = {"ok", ""};
    size_t keylens[2] = {2, 0};
    const char *vals[2] = {"1", "2"};
    size_t vallens[2] = {1, 1};
    REQUIRE(c);
    CHECK_RC(strata_write_through(c, K("k"), K("v"), 0, NULL, NULL), STRATA_EINVAL);
    CHECK_MSG_HAS("writer is NULL");
    CHECK_RC(strata_write_through(NULL, K("k"), K("v"), 0, wt_writer, NULL), STRATA_EINVAL);
    CHECK_RC(strata_write_through(c, "", 0, K("v"), 0, wt_writer, NULL), STRATA_EKEY);
    CHECK_RC(strata_write_through(c, K("k"), NULL, 3, 0, wt_writer, NULL), STRATA_EINVAL);
    CHECK_RC(strata_write_through(c, K("k"), K("v"), -2, wt_writer, NULL), STRATA_EINVAL);
    CHECK_MSG_HAS("STRATA_TTL_FOREVER"); /* -1 is STRATA_TTL_FOREVER, any other negative is refused */
    CHECK_RC(strata_write_error(NULL, "x"), STRATA_EINVAL);
    CHECK_RC(strata_write_behind(NULL, K("k"), K("v"), 0), STRATA_EINVAL);
    CHECK_RC(strata_write_behind(c, NULL, 1, K("v"), 0), STRATA_EINVAL);
    CHECK_RC(strata_write_behind(c, K("k"), K("v"), -5), STRATA_EINVAL);
    CHECK_RC(strata_write_behind_many(c, 2, keys, keylens, vals, vallens, 0), STRATA_EKEY);
    CHECK_MSG_HAS("item 1");
    CHECK_RC(strata_get(c, K("ok"), &v), STRATA_MISS); /* all or nothing */
    CHECK_RC(strata_write_behind_many(c, 1, NULL, keylens, vals, vallens, 0), STRATA_EINVAL);
    CHECK_RC(strata_wb_poll(c, 10, NULL), STRATA_EINVAL);
    CHECK_RC(strata_wb_poll(NULL, 10, &b), STRATA_EINVAL);
    CHECK(b == NULL);
    CHECK_RC(strata_wb_poll(c, 0, &b), STRATA_EINVAL);
    CHECK_RC(strata_wb_ack(NULL), STRATA_EINVAL);
    CHECK_RC(strata_wb_fail(NULL, "x"), STRATA_EINVAL);
    CHECK_RC(strata_wb_batch_item(NULL, 0, &key, &keylen, &val, &vallen), STRATA_EINVAL);
    CHECK(strata_wb_batch_count(NULL) == 0);
    CHECK_RC(strata_flush(NULL, 10), STRATA_EINVAL);
    CHECK_RC(strata_flush(c, -1), STRATA_EINVAL);
    CHECK_RC(strata_stats_get(c, &(strata_stats){0}, STRATA_STATS_VERSION), 0);
    strata_cache_free(c);

    /* bad options, in the URL and in the struct */
    CHECK_RC(strata_cache_new(&bad, "memory://?wb_batch_size=0", NULL), STRATA_EOPTION);
    CHECK_MSG_HAS("wb_batch_size");
    CHECK_RC(strata_cache_new(&bad, "memory://?wb_fsync=sometimes", NULL), STRATA_EOPTION);
    CHECK_MSG_HAS("wb_fsync");
    CHECK_RC(strata_cache_new(&bad, "memory://?wb_threads=99", NULL), STRATA_EOPTION);
    CHECK_RC(strata_cache_new(&bad, "memory://?wb_retry_ms=1000&wb_retry_max_ms=10", NULL), STRATA_EOPTION);
    CHECK_MSG_HAS("wb_retry_max_ms");
    CHECK_RC(strata_cache_new(&bad, "memory://?wb_bogus=1", NULL), STRATA_EOPTION);
    o.wb_max_backlog = 0;
    CHECK_RC(strata_cache_new(&bad, "memory://", &o), STRATA_EOPTION);
    CHECK_MSG_HAS("wb_max_backlog");
    o = (strata_options)STRATA_OPTIONS_INIT;
    o.wb_journal = "";
    CHECK_RC(strata_cache_new(&bad, "memory://", &o), STRATA_EOPTION);
    CHECK(bad == NULL);
    /* an unwritable journal path */
    if (!is_redis()) {
        o = (strata_options)STRATA_OPTIONS_INIT;
        o.wb_journal = "/nonexistent-dir/strata/journal";
        expect_open_failure = 1;
        CHECK(open_with(fresh_ns(), NULL, &o) == NULL);
        expect_open_failure = 0;
        CHECK_MSG_HAS("cannot open");
        snprintf(u, sizeof u, "memory://?wb_journal=/proc/strata-cannot-write");
        CHECK_RC(strata_cache_new(&bad, u, NULL), STRATA_EOPTION);
        CHECK_MSG_HAS("wb_journal");
    }
    /* a journal file on redis, a consumer name elsewhere: refused */
    CHECK_RC(strata_cache_new(&bad, "redis://127.0.0.1:1?wb_journal=/tmp/x", NULL), STRATA_EOPTION);
    CHECK_MSG_HAS("wb_journal");
    CHECK_RC(strata_cache_new(&bad, "memory://?wb_consumer=me", NULL), STRATA_EOPTION);
    CHECK_MSG_HAS("wb_consumer");
    /* the URL form works */
    snprintf(u, sizeof u, "memory://?wb_journal=%s/url%%2Djournal&wb_fsync=always&wb_threads=0", tmpdir);
    CHECK_RC(strata_cache_new(&bad, u, NULL), 0);
    if (bad) {
        CHECK_RC(strata_write_behind(bad, K("k"), K("v"), 0), 0);
        strata_cache_free(bad);
        snprintf(u, sizeof u, "%s/url-journal", tmpdir);
        CHECK(access(u, F_OK) == 0);
    }
    strata_value_dispose(&v);
}

static void cleanup_tmpdir(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* A write-behind write is a write like any other for the other processes'
 * L1: it publishes its invalidation in the same MULTI (redis). */
static void write_behind_evicts_other_l1(void)
{
    strata_cache *a, *b;
    strata_value v = STRATA_VALUE_INIT;
    strata_stats st;
    char key[128];
    int64_t end;
    int rc = 0;
    if (!is_redis())
        return; /* memory and memcached L1s have no invalidation link */
    a = open_wb("wbl1", "l1=1", NULL);
    b = open_with("wbl1", "l1=1", NULL);
    REQUIRE(a && b);
    snprintf(key, sizeof key, "%s", test_unique("l1"));
    CHECK_RC(strata_set(a, key, strlen(key), "old", 3, 0), 0);
    /* b holds "old" in its L1 (once its invalidation link is up) */
    end = strata__now_mono_ms() + 5000;
    do {
        rc = strata_get(b, key, strlen(key), &v);
        if (rc == STRATA_OK && v.level == STRATA_LEVEL_L1)
            break;
        strata__sleep_ms(2);
    } while (strata__now_mono_ms() < end);
    CHECK(rc == STRATA_OK && v.level == STRATA_LEVEL_L1);
    CHECK_VALUE(&v, "old");
    CHECK_RC(strata_write_behind(a, key, strlen(key), "new", 3, 0), 0);
    /* b hears of it: its L1 stops serving "old" (bounded wait, no tuned sleep) */
    end = strata__now_mono_ms() + 5000;
    do {
        rc = strata_get(b, key, strlen(key), &v);
        if (rc == STRATA_OK && v.len == 3 && memcmp(v.data, "new", 3) == 0)
            break;
        strata__sleep_ms(2);
    } while (strata__now_mono_ms() < end);
    CHECK_VALUE(&v, "new");
    strata_stats_get(b, &st, STRATA_STATS_VERSION);
    CHECK(st.invalidations_received >= 1);
    strata_value_dispose(&v);
    strata_cache_free(a);
    strata_cache_free(b);
}

typedef struct group_arg {
    strata_cache *c;
    int t, failures;
} group_arg;

#define GROUP_THREADS 8
#define GROUP_WRITES 400

static void *group_writer(void *p)
{
    group_arg *a = p;
    char key[32], val[32];
    int i;
    for (i = 0; i < GROUP_WRITES; i++) {
        snprintf(key, sizeof key, "g%d-%d", a->t, i);
        snprintf(val, sizeof val, "v%d-%d", a->t, i);
        a->failures += strata_write_behind(a->c, key, strlen(key), val, strlen(val), 0) != 0;
    }
    return NULL;
}

/* Concurrent write_behind calls on one cache, more callers than pooled
 * connections: every write is journaled exactly as its caller asked. */
static void concurrent_writes_all_journaled(void)
{
    const char *ns = fresh_ns();
    /* more threads than connections: a write may wait for one; on a loaded
     * machine that took past the default timeout_ms once (this test counts
     * records, not deadlines) */
    strata_cache *c = open_wb(ns, "wb_threads=0&pool_size=3&timeout_ms=5000", NULL);
    pthread_t th[GROUP_THREADS];
    group_arg args[GROUP_THREADS];
    strata_wb_batch *b = NULL;
    static unsigned char seen[GROUP_THREADS][GROUP_WRITES];
    int t, failures = 0, wrong = 0, total = 0;
    REQUIRE(c);
    memset(seen, 0, sizeof seen);
    for (t = 0; t < GROUP_THREADS; t++) {
        args[t] = (group_arg){c, t, 0};
        pthread_create(&th[t], NULL, group_writer, &args[t]);
    }
    for (t = 0; t < GROUP_THREADS; t++) {
        pthread_join(th[t], NULL);
        failures += args[t].failures;
    }
    CHECK(failures == 0);
    while (strata_wb_poll(c, 500, &b) == STRATA_OK) {
        size_t i, keylen, vallen;
        const char *key, *val;
        for (i = 0; i < strata_wb_batch_count(b); i++) {
            int kt, ki, vt, vi;
            char kbuf[32], vbuf[32];
            CHECK_RC(strata_wb_batch_item(b, i, &key, &keylen, &val, &vallen), 0);
            snprintf(kbuf, sizeof kbuf, "%.*s", (int)keylen, key);
            snprintf(vbuf, sizeof vbuf, "%.*s", (int)vallen, val);
            if (sscanf(kbuf, "g%d-%d", &kt, &ki) != 2 || sscanf(vbuf, "v%d-%d", &vt, &vi) != 2 ||
                kt != vt || ki != vi || kt < 0 || kt >= GROUP_THREADS || ki < 0 || ki >= GROUP_WRITES) {
                wrong++;
                continue;
            }
            total += !seen[kt][ki];
            seen[kt][ki] = 1;
        }
        CHECK_RC(strata_wb_ack(b), 0);
        b = NULL;
    }
    CHECK(wrong == 0);
    CHECK(total == GROUP_THREADS * GROUP_WRITES);
    strata_cache_free(c);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"read_through", read_through},
        {"write_through_failure_leaves_cache", write_through_failure_leaves_cache},
        {"write_through_success_visible", write_through_success_visible},
        {"write_through_cache_failure", write_through_cache_failure},
        {"write_behind_updates_cache_at_once", write_behind_updates_cache_at_once},
        {"pull_api_coalesces", pull_api_coalesces},
        {"pull_api_fail_retries_later", pull_api_fail_retries_later},
        {"writer_retries_then_succeeds", writer_retries_then_succeeds},
        {"writer_dead_letters", writer_dead_letters},
        {"dead_letters_trimmed", dead_letters_trimmed},
        {"push_flusher_delivers", push_flusher_delivers},
        {"free_drains", free_drains},
        {"backpressure", backpressure},
        {"second_consumer_claims", second_consumer_claims},
        {"two_consumers_share_the_work", two_consumers_share_the_work},
        {"fork_child_writes_to_stream", fork_child_writes_to_stream},
        {"late_claim_keeps_key_order", late_claim_keeps_key_order},
        {"kill9_loses_nothing", kill9_loses_nothing},
        {"journal_replay_and_compaction", journal_replay_and_compaction},
        {"fork_child_cannot_use_local_queue", fork_child_cannot_use_local_queue},
        {"bad_input", bad_input},
        {"write_behind_evicts_other_l1", write_behind_evicts_other_l1},
        {"concurrent_writes_all_journaled", concurrent_writes_all_journaled},
    };
    int rc;
    if (argc < 2) {
        fprintf(stderr, "usage: test_write memory|redis|memcached [case]\n");
        return 2;
    }
    backend_name = argv[1];
    test_backend_url(backend_name); /* exits 77 when the server is not configured */
    snprintf(tmpdir, sizeof tmpdir, "/tmp/strata-test-write-%d", (int)getpid());
    mkdir(tmpdir, 0700);
    rc = test_main(argc - 1, argv + 1, cases, sizeof cases / sizeof cases[0]);
    cleanup_tmpdir();
    return rc;
}
