/*
 * The Redis conversation without a socket: every operation's reply bytes fed
 * whole, split at every byte boundary and one byte at a time give the same
 * result, and exactly the bytes of its replies are consumed (the rest belong
 * to the next op on the connection).
 *  - Without a server: reply bytes written out here (hits, nil, error replies,
 *    WRONGTYPE, a lease lost, NOSCRIPT so EVALSHA becomes EVAL, garbage).
 *  - With STRATA_TEST_REDIS_URL: each case runs live once, recording the
 *    server's reply bytes per exchange, then the recording is replayed into a
 *    fresh op (on an io=host handle that has no connection) and must give the
 *    live result at every split.
 *   test_protocol
 */
#define _GNU_SOURCE
#include "test.h"
#include "policy/envelope.h"
#include "backend/redis/protocol.h"

#include <hiredis/hiredis.h>
#include "platform/platform.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXEX 8

typedef struct recording {
    size_t n;                   /* exchanges */
    char *bytes[MAXEX];
    size_t len[MAXEX];
    int waits;                  /* WAITs asked (replayed as "slept") */
} recording;

static void recording_free(recording *r)
{
    size_t i;
    for (i = 0; i < r->n; i++)
        free(r->bytes[i]);
    memset(r, 0, sizeof *r);
}

typedef struct outcome {
    int rc;
    char value[256];
    size_t len;
    int items[4];               /* get_many results */
} outcome;

static void take_outcome(strata_op *op, outcome *o, size_t nitems)
{
    strata_value v = STRATA_VALUE_INIT;
    size_t i;
    memset(o, 0, sizeof *o);
    o->rc = strata_op_result(op, &v);
    o->len = v.len < sizeof o->value ? v.len : sizeof o->value;
    if (v.data)
        memcpy(o->value, v.data, o->len);
    for (i = 0; i < nitems && i < 4; i++)
        o->items[i] = strata_op_item(op, i, &v);
    strata_value_dispose(&v);
}

static int same(const outcome *a, const outcome *b)
{
    return a->rc == b->rc && a->len == b->len && memcmp(a->value, b->value, a->len) == 0 &&
           memcmp(a->items, b->items, sizeof a->items) == 0;
}

/* ---- live: a blocking socket that records each exchange's reply bytes ---- */

static int connect_to(const char *host, int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, &sa.sin_addr);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Drives op to DONE (or to a continuation point) over fd, recording. */
static void drive_live(int fd, strata_op *op, recording *rec)
{
    strata_io io = STRATA_IO_INIT;
    for (;;) {
        int more = 1;
        strata_op_next(op, &io);
        if (io.kind == STRATA_IO_DONE)
            return;
        if (io.kind == STRATA_IO_WAIT) {
            rec->waits++;
            usleep((useconds_t)io.wait_ms * 1000);
            continue;
        }
        if (io.kind == STRATA_IO_SEND && send(fd, io.data, io.len, 0) != (ssize_t)io.len)
            return;
        if (rec->n == MAXEX)
            return;
        rec->bytes[rec->n] = NULL;
        rec->len[rec->n] = 0;
        while (more == 1) {
            char buf[65536];
            struct pollfd p = {fd, POLLIN, 0};
            ssize_t n;
            size_t used = 0;
            if (poll(&p, 1, 3000) != 1 || (n = recv(fd, buf, sizeof buf, 0)) <= 0) {
                strata_op_io_failed(op, STRATA_ETIMEOUT, "test: no reply");
                break;
            }
            more = strata_op_feed(op, buf, (size_t)n, &used);
            rec->bytes[rec->n] = realloc(rec->bytes[rec->n], rec->len[rec->n] + used);
            memcpy(rec->bytes[rec->n] + rec->len[rec->n], buf, used);
            rec->len[rec->n] += used;
        }
        rec->n++;
    }
}

/* ---- replay: the recording into a fresh op, split as asked ---- */

enum { WHOLE = 0, BYTEWISE = -1 }; /* else: split after that many bytes */

/* Feeds one exchange's bytes (plus a trailing foreign reply, which must not
 * be consumed) in the given split; 0 when consistent. */
static int feed_split(strata_op *op, const char *bytes, size_t len, long split)
{
    static const char foreign[] = "+OK\r\n";
    char *buf = malloc(len + sizeof foreign);
    size_t total = len + sizeof foreign - 1, off = 0, used = 0;
    int rc = 1;
    memcpy(buf, bytes, len);
    memcpy(buf + len, foreign, sizeof foreign - 1);
    while (off < total && rc == 1) {
        size_t chunk = split == WHOLE ? total - off : split == BYTEWISE ? 1 : off < (size_t)split ? (size_t)split - off
                                                                                                  : total - off;
        rc = strata_op_feed(op, buf + off, chunk, &used);
        if (rc == 1 && used != chunk) {
            fprintf(stderr, "  feed needs more but consumed %zu of %zu\n", used, chunk);
            rc = -100;
        }
        off += used;
    }
    free(buf);
    if (rc < 0 && rc != -100)
        return 0; /* an invalid reply ends the op with an error: a result like any other */
    if (rc == 0 && off != len) {
        fprintf(stderr, "  consumed %zu bytes of a %zu-byte reply (split %ld)\n", off, len, split);
        return -1;
    }
    return rc == 0 ? 0 : -1;
}

/* Replays rec from exchange *at into op (begun identically); 0 when it
 * reached DONE. */
static int replay(strata_op *op, const recording *rec, long split, size_t *at)
{
    strata_io io = STRATA_IO_INIT;
    size_t ex = *at;
    for (;;) {
        strata_op_next(op, &io);
        if (io.kind == STRATA_IO_DONE) {
            *at = ex;
            return 0;
        }
        if (io.kind == STRATA_IO_WAIT)
            continue; /* the host "slept" */
        if (ex >= rec->n)
            return -1;
        if (feed_split(op, rec->bytes[ex], rec->len[ex], split < 0 ? split : split % (long)(rec->len[ex] + 1)) != 0)
            return -1;
        ex++;
    }
}

/* ---- cases ---- */

typedef struct pcase {
    const char *name;
    /* Prepares the server (blk: a blocking handle), begins the op, and for a
     * lookup that leads optionally continues it (fill/abandon) once DONE. */
    strata_op *(*begin)(strata_cache *c, strata_cache *blk, const char *ns);
    void (*cont)(strata_op *op);
    size_t nitems;
    int want;                   /* the expected live result */
} pcase;

static strata_op *begin_get_hit(strata_cache *c, strata_cache *blk, const char *ns)
{
    strata_op *op = NULL;
    strata_op_options o;
    (void)ns;
    strata_set(blk, "hit", 3, "value-of-hit", 12, 0);
    strata_op_options_init(&o, STRATA_OP_OPTIONS_VERSION);
    o.lease = 0;
    strata_op_lookup(&op, c, "hit", 3, &o);
    return op;
}

static strata_op *begin_get_nil(strata_cache *c, strata_cache *blk, const char *ns)
{
    strata_op *op = NULL;
    strata_op_options o;
    (void)blk;
    (void)ns;
    strata_op_options_init(&o, STRATA_OP_OPTIONS_VERSION);
    o.lease = 0;
    strata_op_lookup(&op, c, "absent", 6, &o);
    return op;
}

static strata_op *begin_lead(strata_cache *c, strata_cache *blk, const char *ns)
{
    strata_op *op = NULL;
    (void)blk;
    (void)ns;
    strata_op_lookup(&op, c, "lead", 4, NULL);
    return op;
}

static strata_ticket *g_held; /* begin_wait's lease, given back after its case */

static strata_op *begin_wait(strata_cache *c, strata_cache *blk, const char *ns)
{
    strata_op *op = NULL;
    strata_value v = STRATA_VALUE_INIT;
    (void)ns;
    if (g_held == NULL)
        strata_lookup(blk, "held", 4, &v, &g_held); /* blk holds the lease */
    strata_value_dispose(&v);
    strata_op_lookup(&op, c, "held", 4, NULL);
    return op;
}

/* The fill after a SCRIPT FLUSH: EVALSHA answers NOSCRIPT, the op sends EVAL. */
static strata_op *begin_fill_noscript(strata_cache *c, strata_cache *blk, const char *ns)
{
    strata_op *op = NULL;
    (void)blk;
    (void)ns;
    strata_op_lookup(&op, c, "fillme", 6, NULL);
    return op;
}

static void flush_scripts(void);
static void cont_fill(strata_op *op)
{
    flush_scripts();
    strata_op_fill(op, "filled", 6, 0);
}

static strata_cache *g_blk;
static void cont_fill_lost(strata_op *op)
{
    strata_set(g_blk, "lost", 4, "newer", 5, 0); /* a write kills the lease */
    strata_op_fill(op, "older", 5, 0);
}

static strata_op *begin_lost(strata_cache *c, strata_cache *blk, const char *ns)
{
    strata_op *op = NULL;
    (void)blk;
    (void)ns;
    strata_op_lookup(&op, c, "lost", 4, NULL);
    return op;
}

static void cont_abandon(strata_op *op)
{
    strata_op_abandon(op);
}

static strata_op *begin_set(strata_cache *c, strata_cache *blk, const char *ns)
{
    strata_op *op = NULL;
    (void)blk;
    (void)ns;
    strata_op_set(&op, c, "s", 1, "set-value", 9, NULL);
    return op;
}

static strata_op *begin_delete(strata_cache *c, strata_cache *blk, const char *ns)
{
    strata_op *op = NULL;
    (void)ns;
    strata_set(blk, "del", 3, "x", 1, 0);
    strata_op_delete(&op, c, "del", 3);
    return op;
}

static strata_op *begin_delete_absent(strata_cache *c, strata_cache *blk, const char *ns)
{
    strata_op *op = NULL;
    (void)blk;
    (void)ns;
    strata_op_delete(&op, c, "never", 5);
    return op;
}

static strata_op *begin_get_many(strata_cache *c, strata_cache *blk, const char *ns)
{
    strata_op *op = NULL;
    const char *keys[3] = {"m1", "m2", "m3"};
    size_t lens[3] = {2, 2, 2};
    (void)ns;
    strata_set(blk, "m1", 2, "one", 3, 0);
    strata_set(blk, "m3", 2, "three", 5, 0);
    strata_op_get_many(&op, c, 3, keys, lens, NULL);
    return op;
}

static strata_op *begin_tag(strata_cache *c, strata_cache *blk, const char *ns)
{
    strata_op *op = NULL;
    (void)blk;
    (void)ns;
    strata_op_invalidate_tag(&op, c, "tg", 2);
    return op;
}

/* A tagged entry: the read needs the tag's version (a second exchange). */
static strata_op *begin_tagged_read(strata_cache *c, strata_cache *blk, const char *ns)
{
    strata_op *op = NULL;
    strata_op_options o;
    strata_set_options so = STRATA_SET_OPTIONS_INIT;
    const char *tag = "tr";
    size_t taglen = 2;
    (void)ns;
    so.tags = &tag;
    so.taglens = &taglen;
    so.ntags = 1;
    strata_set_ex(blk, "tagged", 6, "tv", 2, &so);
    strata_op_options_init(&o, STRATA_OP_OPTIONS_VERSION);
    o.lease = 0;
    strata_op_lookup(&op, c, "tagged", 6, &o);
    return op;
}

static const char *g_url;

/* WRONGTYPE: the key holds a list. */
static strata_op *begin_wrongtype(strata_cache *c, strata_cache *blk, const char *ns)
{
    strata_op *op = NULL;
    strata_op_options o;
    char cmd[256];
    (void)blk;
    snprintf(cmd, sizeof cmd, "redis-cli -u '%s' RPUSH '%s:wt' x >/dev/null", g_url, ns);
    if (system(cmd) != 0)
        fprintf(stderr, "  RPUSH failed\n");
    strata_op_options_init(&o, STRATA_OP_OPTIONS_VERSION);
    o.lease = 0;
    strata_op_lookup(&op, c, "wt", 2, &o);
    return op;
}

/* A lease key holding no lease of ours (no expiry, not a token): taken over. */
static strata_op *begin_broken_lease(strata_cache *c, strata_cache *blk, const char *ns)
{
    strata_op *op = NULL;
    char cmd[256];
    (void)blk;
    snprintf(cmd, sizeof cmd, "redis-cli -u '%s' SET '%s#L:brk' junk >/dev/null", g_url, ns);
    if (system(cmd) != 0)
        fprintf(stderr, "  SET failed\n");
    strata_op_lookup(&op, c, "brk", 3, NULL);
    return op;
}

static void flush_scripts(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "redis-cli -u '%s' SCRIPT FLUSH >/dev/null", g_url);
    if (system(cmd) != 0)
        fprintf(stderr, "  SCRIPT FLUSH failed\n");
}

static const pcase cases_live[] = {
    {"get hit", begin_get_hit, NULL, 0, STRATA_OK},
    {"get nil", begin_get_nil, NULL, 0, STRATA_MISS},
    {"lookup leads (lease + re-check)", begin_lead, NULL, 0, STRATA_MISS_LEAD},
    {"lookup waits for a holder", begin_wait, NULL, 0, STRATA_MISS_WAIT},
    {"fill after NOSCRIPT", begin_fill_noscript, cont_fill, 0, STRATA_OK},
    {"fill after the lease was lost", begin_lost, cont_fill_lost, 0, STRATA_ELEASE},
    {"abandon", begin_lead, cont_abandon, 0, STRATA_OK},
    {"set", begin_set, NULL, 0, STRATA_OK},
    {"delete", begin_delete, NULL, 0, STRATA_OK},
    {"delete absent", begin_delete_absent, NULL, 0, STRATA_MISS},
    {"get_many", begin_get_many, NULL, 3, STRATA_OK},
    {"invalidate_tag", begin_tag, NULL, 0, STRATA_OK},
    {"tagged read", begin_tagged_read, NULL, 0, STRATA_OK},
    {"WRONGTYPE", begin_wrongtype, NULL, 0, STRATA_EBACKEND},
    {"a broken lease is taken over", begin_broken_lease, NULL, 0, STRATA_MISS_LEAD},
};

static strata_cache *open_url(const char *base, const char *ns, const char *extra)
{
    char u[512];
    strata_cache *c = NULL;
    snprintf(u, sizeof u, "%s?ns=%s&tag_cache_ms=0%s", base, ns, extra);
    if (strata_cache_new(&c, u, NULL) != 0)
        fprintf(stderr, "  open %s: %s\n", u, strata_error_last());
    return c;
}

/* The scripts' SHA1s are fixed in protocol.c: each must be what the server
 * computes, or every EVALSHA would cost a NOSCRIPT round trip. */
static void script_shas_match_the_server(void)
{
    const char *url = getenv("STRATA_TEST_REDIS_URL");
    char host[256];
    int port = 0, i;
    redisContext *rc;
    if (url == NULL || sscanf(url, "redis://%255[^:]:%d", host, &port) != 2) {
        fprintf(stderr, "  (no STRATA_TEST_REDIS_URL: skipped)\n");
        return;
    }
    rc = redisConnect(host, port);
    REQUIRE(rc && !rc->err);
    for (i = 0; i < STRATA__SCRIPT_COUNT; i++) {
        redisReply *r = redisCommand(rc, "SCRIPT LOAD %s", strata__redis_script_text(i));
        REQUIRE(r && r->type == REDIS_REPLY_STRING);
        if (strcmp(r->str, strata__redis_script_sha(i)) != 0)
            fprintf(stderr, "  script %d: server says %s, protocol.c has %s\n", i, r->str, strata__redis_script_sha(i));
        CHECK(strcmp(r->str, strata__redis_script_sha(i)) == 0);
        freeReplyObject(r);
    }
    redisFree(rc);
}

static void live_recordings_replay_at_every_split(void)
{
    size_t k;
    const char *url = getenv("STRATA_TEST_REDIS_URL");
    char host[256];
    int port = 0;
    if (url == NULL || sscanf(url, "redis://%255[^:]:%d", host, &port) != 2) {
        fprintf(stderr, "  (no STRATA_TEST_REDIS_URL: live recordings skipped)\n");
        return;
    }
    g_url = url;
    for (k = 0; k < sizeof cases_live / sizeof cases_live[0]; k++) {
        const pcase *pc = &cases_live[k];
        const char *ns = test_unique("proto");
        strata_cache *live = open_url(url, ns, "&io=host"), *blk = open_url(url, ns, ""), *dry;
        recording rec;
        outcome want, got;
        strata_op *op;
        int fd = connect_to(host, port), failures = 0;
        long split, maxsplit = 0;
        size_t i;
        REQUIRE(live && blk && fd >= 0);
        g_blk = blk;
        memset(&rec, 0, sizeof rec);
        op = pc->begin(live, blk, ns);
        REQUIRE(op);
        drive_live(fd, op, &rec);
        if (pc->cont) {
            pc->cont(op);
            drive_live(fd, op, &rec);
        }
        take_outcome(op, &want, pc->nitems);
        strata_op_free(op);
        close(fd);
        if (want.rc != pc->want)
            fprintf(stderr, "  %s: live result %s, want %s (%s)\n", pc->name, strata_error_name(want.rc),
                    strata_error_name(pc->want), strata_error_last());
        CHECK_RC(want.rc, pc->want);
        /* Replay on a handle with no connection: the same result at every split. */
        for (i = 0; i < rec.n; i++)
            if ((long)rec.len[i] > maxsplit)
                maxsplit = (long)rec.len[i];
        dry = open_url(url, ns, "&io=host");
        for (split = BYTEWISE; split <= maxsplit + 1; split++) {
            strata_op *again = pc->begin(dry, blk, ns);
            size_t at = 0;
            int rr;
            if (again == NULL)
                break;
            rr = replay(again, &rec, split, &at);
            if (rr == 0 && pc->cont) {
                pc->cont(again);
                rr = replay(again, &rec, split, &at); /* the recording's later exchanges */
            }
            if (rr == 0 && at != rec.n)
                rr = -1; /* the replay asked for fewer exchanges than the live run */
            take_outcome(again, &got, pc->nitems);
            strata_op_free(again);
            if (rr != 0 || !same(&want, &got)) {
                if (failures++ < 3)
                    fprintf(stderr, "  %s: split %ld gave %s (live %s)\n", pc->name, split,
                            strata_error_name(got.rc), strata_error_name(want.rc));
            }
        }
        CHECK_RC(failures, 0);
        if (g_held)
            strata_abandon(g_held);
        g_held = NULL;
        recording_free(&rec);
        strata_cache_free(dry);
        strata_cache_free(live);
        strata_cache_free(blk);
    }
}

/* ---- without a server: reply bytes written out ---- */

/* An envelope holding payload, fresh for a minute, as a RESP bulk string. */
static size_t bulk_envelope(const char *payload, int negative, char *out, size_t cap)
{
    strata__envelope e;
    char env[256];
    size_t n, head;
    memset(&e, 0, sizeof e);
    e.flags = negative ? STRATA__ENV_FLAG_NEGATIVE : 0;
    e.created_ms = strata__now_wall_ms();
    e.fresh_until_ms = e.created_ms + 60000;
    e.stale_until_ms = e.fresh_until_ms;
    e.payload = payload;
    e.payload_len = strlen(payload);
    n = strata__env_encode(&e, env, sizeof env);
    head = (size_t)snprintf(out, cap, "$%zu\r\n", n);
    memcpy(out + head, env, n); /* binary: no printf */
    memcpy(out + head + n, "\r\n", 2);
    return head + n + 2;
}

typedef struct scripted {
    const char *name;
    int kind;                   /* 0 plain get, 1 lookup, 2 lookup + fill, 3 delete */
    const char *replies[4];     /* per exchange; "ENV" / "NEG" = an envelope bulk */
    int want;
    const char *value;          /* expected payload, or NULL */
    const char *fill_request;   /* the fill's last request must start with this */
} scripted;

static const scripted script_cases[] = {
    {"nil", 0, {"$-1\r\n"}, STRATA_MISS, NULL, NULL},
    {"hit", 0, {"ENV"}, STRATA_OK, "payload", NULL},
    {"negative", 0, {"NEG"}, STRATA_NEGATIVE, NULL, NULL},
    {"WRONGTYPE", 0, {"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"}, STRATA_EBACKEND,
     NULL, NULL},
    {"LOADING (an outage)", 0, {"-LOADING Redis is loading the dataset in memory\r\n"}, STRATA_EBACKEND, NULL, NULL},
    {"an integer for a GET", 0, {":1\r\n"}, STRATA_EBACKEND, NULL, NULL},
    {"an array for a GET", 0, {"*1\r\n$1\r\nx\r\n"}, STRATA_EBACKEND, NULL, NULL},
    {"not RESP", 0, {"?garbage\r\n"}, STRATA_EBACKEND, NULL, NULL},
    /* a GET's reply is parsed without the reader: its own errors */
    {"a bulk length that is no number", 0, {"$1x\r\nabc\r\n"}, STRATA_EBACKEND, NULL, NULL},
    {"a negative bulk length other than -1", 0, {"$-2\r\n"}, STRATA_EBACKEND, NULL, NULL},
    {"a bulk length without digits", 0, {"$\r\n"}, STRATA_EBACKEND, NULL, NULL},
    {"a bulk length past any value", 0, {"$99999999999\r\n"}, STRATA_EBACKEND, NULL, NULL},
    {"a bulk string without its CRLF", 0, {"$3\r\nabcXY"}, STRATA_EBACKEND, NULL, NULL},
    {"an empty string (not an envelope)", 0, {"$0\r\n\r\n"}, STRATA_MISS, NULL, NULL},
    {"a foreign string (not an envelope)", 0, {"$3\r\nabc\r\n"}, STRATA_MISS, NULL, NULL},
    {"lead: lease won, re-check nil", 1, {"$-1\r\n", "+OK\r\n:5000\r\n$16\r\n0123456789abcdef\r\n$-1\r\n"}, STRATA_MISS_LEAD, NULL, NULL},
    {"lead: re-check finds the fill", 1, {"$-1\r\n", "+OK\r\n:5000\r\n$16\r\n0123456789abcdef\r\nENV", ":1\r\n"}, STRATA_OK, "payload",
     NULL},
    {"wait: another holder", 1, {"$-1\r\n", "$-1\r\n:1234\r\n$16\r\n0123456789abcdef\r\n$-1\r\n"}, STRATA_MISS_WAIT, NULL, NULL},
    {"lead: a broken lease (no expiry) is taken over", 1,
     {"$-1\r\n", "$-1\r\n:-1\r\n$3\r\nbad\r\n$-1\r\n", ":1\r\n$-1\r\n"}, STRATA_MISS_LEAD, NULL, NULL},
    {"lead: a broken lease repaired by another first", 1,
     {"$-1\r\n", "$-1\r\n:-1\r\n$3\r\nbad\r\n$-1\r\n", ":0\r\n$-1\r\n"}, STRATA_MISS_WAIT, NULL, NULL},
    {"lead: take-over after NOSCRIPT", 1,
     {"$-1\r\n", "$-1\r\n:-1\r\n$3\r\nbad\r\n$-1\r\n", "-NOSCRIPT No matching script.\r\n$-1\r\n",
      ":1\r\n$-1\r\n"}, STRATA_MISS_LEAD, NULL, NULL},
    {"fill: NOSCRIPT, then EVAL", 2,
     {"$-1\r\n", "+OK\r\n:5000\r\n$16\r\n0123456789abcdef\r\n$-1\r\n", "-NOSCRIPT No matching script. Please use EVAL.\r\n", ":1\r\n"},
     STRATA_OK, NULL, "*8\r\n$4\r\nEVAL\r\n"},
    {"fill: the lease was lost", 2, {"$-1\r\n", "+OK\r\n:5000\r\n$16\r\n0123456789abcdef\r\n$-1\r\n", ":0\r\n"}, STRATA_ELEASE, NULL,
     "*8\r\n$7\r\nEVALSHA\r\n"},
    {"delete: existed", 3, {"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n:1\r\n:0\r\n:0\r\n"}, STRATA_OK,
     NULL, NULL},
    {"delete: absent", 3, {"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n:0\r\n:0\r\n:0\r\n"},
     STRATA_MISS, NULL, NULL},
    {"delete: EXEC aborted", 3, {"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*-1\r\n"}, STRATA_EBACKEND, NULL,
     NULL},
};

static strata_op *begin_scripted(strata_cache *c, const scripted *sc)
{
    strata_op *op = NULL;
    strata_op_options o;
    strata_op_options_init(&o, STRATA_OP_OPTIONS_VERSION);
    o.lease = sc->kind != 0;
    if (sc->kind == 3)
        strata_op_delete(&op, c, "k", 1);
    else
        strata_op_lookup(&op, c, "k", 1, &o);
    return op;
}

/* Drives op over the scripted replies (split as asked); the last SEND's bytes
 * into last (for the EVAL check). */
static int run_scripted(strata_op *op, const scripted *sc, long split, char *last, size_t lastcap)
{
    strata_io io = STRATA_IO_INIT;
    size_t ex = 0;
    int filled = 0;
    for (;;) {
        char bytes[1024];
        size_t len;
        strata_op_next(op, &io);
        if (io.kind == STRATA_IO_DONE) {
            int rc = strata_op_result(op, NULL);
            if (sc->kind == 2 && !filled && rc == STRATA_MISS_LEAD) {
                filled = 1;
                if (strata_op_fill(op, "loaded", 6, 0) != 0)
                    return -1;
                continue;
            }
            return 0;
        }
        if (io.kind == STRATA_IO_SEND && io.len > 14 && memcmp(io.data + 4, "$4\r\nMGET\r\n", 10) == 0 &&
            memmem(io.data, io.len, "#T:", 3)) {
            /* the namespace generation, read with every envelope: never cleared */
            int k = atoi(io.data + 1) - 1, j;
            len = (size_t)snprintf(bytes, sizeof bytes, "*%d\r\n", k);
            for (j = 0; j < k; j++)
                len += (size_t)snprintf(bytes + len, sizeof bytes - len, "$-1\r\n");
            if (feed_split(op, bytes, len, split < 0 ? split : split % (long)(len + 1)) != 0)
                return -1;
            continue;
        }
        if (io.kind == STRATA_IO_SEND)
            snprintf(last, lastcap, "%.*s", (int)(io.len < lastcap - 1 ? io.len : lastcap - 1), io.data);
        if (ex >= 4 || sc->replies[ex] == NULL)
            return -1; /* asked for an exchange the script does not have */
        if (strcmp(sc->replies[ex], "ENV") == 0 || strcmp(sc->replies[ex], "NEG") == 0)
            len = bulk_envelope(sc->replies[ex][0] == 'N' ? "" : "payload", sc->replies[ex][0] == 'N', bytes, sizeof bytes);
        else if (strstr(sc->replies[ex], "ENV")) { /* a prefix, then an envelope */
            size_t pre = (size_t)(strstr(sc->replies[ex], "ENV") - sc->replies[ex]);
            memcpy(bytes, sc->replies[ex], pre);
            len = pre + bulk_envelope("payload", 0, bytes + pre, sizeof bytes - pre);
        } else {
            len = strlen(sc->replies[ex]);
            memcpy(bytes, sc->replies[ex], len);
        }
        if (feed_split(op, bytes, len, split < 0 ? split : split % (long)(len + 1)) != 0)
            return -1;
        ex++;
    }
}

static void scripted_replies_at_every_split(void)
{
    strata_cache *c = NULL;
    size_t k;
    /* io=host: no connection is made, so no server is needed */
    REQUIRE(strata_cache_new(&c, "redis://127.0.0.1:1?io=host&ns=p&tag_cache_ms=0&xfetch_beta=0&breaker_threshold=0", NULL) == 0);
    for (k = 0; k < sizeof script_cases / sizeof script_cases[0]; k++) {
        const scripted *sc = &script_cases[k];
        long split;
        int failures = 0;
        for (split = BYTEWISE; split <= 120; split++) {
            strata_op *op = begin_scripted(c, sc);
            strata_value v = STRATA_VALUE_INIT;
            char last[64] = "";
            int rr, rc;
            REQUIRE(op);
            rr = run_scripted(op, sc, split, last, sizeof last);
            rc = strata_op_result(op, &v);
            if (rr != 0 || rc != sc->want || (sc->value && (v.len != strlen(sc->value) ||
                                                            memcmp(v.data, sc->value, v.len) != 0)) ||
                (sc->fill_request && strncmp(last, sc->fill_request, strlen(sc->fill_request)) != 0)) {
                if (failures++ < 2)
                    fprintf(stderr, "  %s (split %ld): %s, want %s; %s\n", sc->name, split, strata_error_name(rc),
                            strata_error_name(sc->want), rc < 0 ? strata_op_error(op) : "");
            }
            strata_value_dispose(&v);
            strata_op_free(op);
        }
        CHECK_RC(failures, 0);
    }
    strata_cache_free(c);
}

/* A value larger than the GET parser reserves up front (64 KB), fed in
 * chunks with the next op's reply behind it: all of it, and only it. */
static void large_value_grows_as_it_arrives(void)
{
    strata_cache *c = NULL;
    strata__envelope e;
    size_t plen = 200000, n, head, total, chunk;
    char *payload = malloc(plen), *env, *bytes;
    long splits[] = {WHOLE, 1000, 65536 + 7, 3};
    size_t i, k;
    REQUIRE(payload);
    REQUIRE(strata_cache_new(&c, "redis://127.0.0.1:1?io=host&ns=p&tag_cache_ms=0&xfetch_beta=0", NULL) == 0);
    for (i = 0; i < plen; i++)
        payload[i] = (char)('a' + i % 26);
    memset(&e, 0, sizeof e);
    e.created_ms = strata__now_wall_ms();
    e.fresh_until_ms = e.stale_until_ms = e.created_ms + 60000;
    e.payload = payload;
    e.payload_len = plen;
    n = strata__env_size(&e);
    env = malloc(n);
    bytes = malloc(n + 64);
    REQUIRE(env && bytes && strata__env_encode(&e, env, n) == n);
    head = (size_t)snprintf(bytes, 64, "$%zu\r\n", n);
    memcpy(bytes + head, env, n);
    memcpy(bytes + head + n, "\r\n", 2);
    total = head + n + 2;
    for (k = 0; k < sizeof splits / sizeof splits[0]; k++) {
        strata_op *op = NULL;
        strata_op_options o;
        strata_io io = STRATA_IO_INIT;
        strata_value v = STRATA_VALUE_INIT;
        strata_op_options_init(&o, STRATA_OP_OPTIONS_VERSION);
        o.lease = 0;
        CHECK_RC(strata_op_lookup(&op, c, "big", 3, &o), 0);
        CHECK_RC(strata_op_next(op, &io), 0);
        CHECK(io.kind == STRATA_IO_SEND);
        if (splits[k] == 3) { /* bytewise would be slow: 3 bytes at a time, the foreign reply behind */
            size_t off = 0, used;
            int rc = 1;
            char *buf = malloc(total + 5);
            REQUIRE(buf);
            memcpy(buf, bytes, total);
            memcpy(buf + total, "+OK\r\n", 5);
            while (rc == 1) {
                chunk = total + 5 - off < 3 ? total + 5 - off : 3;
                rc = strata_op_feed(op, buf + off, chunk, &used);
                off += used;
            }
            CHECK_RC(rc, 0);
            CHECK(off == total);
            free(buf);
        } else {
            CHECK_RC(feed_split(op, bytes, total, splits[k]), 0);
        }
        CHECK_RC(strata_op_next(op, &io), 0);
        if (io.kind == STRATA_IO_SEND && memmem(io.data, io.len, "MGET", 4)) { /* the namespace generation */
            CHECK_RC(feed_split(op, "*1\r\n$-1\r\n", 9, WHOLE), 0);
            CHECK_RC(strata_op_next(op, &io), 0);
        }
        CHECK(io.kind == STRATA_IO_DONE);
        CHECK_RC(strata_op_result(op, &v), 0);
        CHECK(v.len == plen && memcmp(v.data, payload, plen) == 0);
        strata_value_dispose(&v);
        strata_op_free(op);
    }
    free(bytes);
    free(env);
    free(payload);
    strata_cache_free(c);
}

/* Ops of one cache begun and freed on several threads at once: each gets
 * an op of its own from the cache's pool, and its value is the one fed to it. */
#define POOL_THREADS 4
#define POOL_ROUNDS 3000

typedef struct pool_thread {
    strata_cache *c;
    int id, wrong;
} pool_thread;

static void *pool_worker(void *arg)
{
    pool_thread *t = arg;
    strata_value v = STRATA_VALUE_INIT;
    int i;
    for (i = 0; i < POOL_ROUNDS; i++) {
        strata_op *op = NULL;
        strata_op_options o;
        strata_io io = STRATA_IO_INIT;
        char payload[32], bytes[256];
        size_t len, used;
        strata_op_options_init(&o, STRATA_OP_OPTIONS_VERSION);
        o.lease = 0;
        snprintf(payload, sizeof payload, "t%d-%d", t->id, i);
        len = bulk_envelope(payload, 0, bytes, sizeof bytes);
        if (strata_op_lookup(&op, t->c, "k", 1, &o) != 0 || strata_op_next(op, &io) != 0 ||
            io.kind != STRATA_IO_SEND || strata_op_feed(op, bytes, len, &used) != 0) {
            t->wrong++;
            strata_op_free(op);
            continue;
        }
        strata_op_next(op, &io);
        if (io.kind == STRATA_IO_SEND) /* the namespace generation (not cached: tag_cache_ms=0) */
            strata_op_feed(op, "*1\r\n$-1\r\n", 9, &used);
        if (strata_op_result(op, &v) != 0 || v.len != strlen(payload) || memcmp(v.data, payload, v.len) != 0)
            t->wrong++;
        strata_op_free(op);
    }
    strata_value_dispose(&v);
    return NULL;
}

static void ops_on_many_threads_share_the_pool(void)
{
    strata_cache *c = NULL;
    pthread_t th[POOL_THREADS];
    pool_thread t[POOL_THREADS];
    int i;
    REQUIRE(strata_cache_new(&c, "redis://127.0.0.1:1?io=host&ns=p&tag_cache_ms=0&xfetch_beta=0", NULL) == 0);
    for (i = 0; i < POOL_THREADS; i++) {
        t[i].c = c;
        t[i].id = i;
        t[i].wrong = 0;
        REQUIRE(pthread_create(&th[i], NULL, pool_worker, &t[i]) == 0);
    }
    for (i = 0; i < POOL_THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_RC(t[i].wrong, 0);
    }
    strata_cache_free(c);
}

/* A binding's garbage collector may free a cache before its ops (ffi.gc
 * runs finalizers in no set order): freeing those ops afterwards is safe. */
static void ops_may_outlive_their_cache(void)
{
    strata_cache *c = NULL;
    strata_op *done = NULL, *mid = NULL, *fresh = NULL, *idle = NULL;
    strata_io io = STRATA_IO_INIT;
    size_t used;
    REQUIRE(strata_cache_new(&c, "redis://127.0.0.1:1?io=host&ns=p", NULL) == 0);
    CHECK_RC(strata_op_lookup(&idle, c, "i", 1, NULL), 0);
    strata_op_free(idle); /* an idle op in the pool when the cache goes */
    CHECK_RC(strata_op_lookup(&done, c, "d", 1, NULL), 0);
    CHECK_RC(strata_op_next(done, &io), 0);
    CHECK_RC(strata_op_feed(done, "$-1\r\n", 5, &used), 0);
    CHECK_RC(strata_op_lookup(&mid, c, "m", 1, NULL), 0);
    CHECK_RC(strata_op_next(mid, &io), 0);
    CHECK_RC(strata_op_feed(mid, "$10\r\nab", 8, &used), 1);
    CHECK_RC(strata_op_delete(&fresh, c, "f", 1), 0);
    strata_cache_free(c);
    strata_op_free(mid);
    strata_op_free(done);
    strata_op_free(fresh);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"scripted_replies_at_every_split", scripted_replies_at_every_split},
        {"large_value_grows_as_it_arrives", large_value_grows_as_it_arrives},
        {"ops_on_many_threads_share_the_pool", ops_on_many_threads_share_the_pool},
        {"ops_may_outlive_their_cache", ops_may_outlive_their_cache},
        {"script_shas_match_the_server", script_shas_match_the_server},
        {"live_recordings_replay_at_every_split", live_recordings_replay_at_every_split},
    };
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
