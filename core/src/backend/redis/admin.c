/*
 * Operator tools on Redis (see admin.h): what `stratacache inspect`,
 * `keys`, `doctor` and `wb` ask the server. Key layout in docs/FORMAT.md.
 * Commands go through the backend's pool; the pub/sub and CLIENT TRACKING
 * checks use two short-lived connections of their own, so no pooled
 * connection is ever left subscribed or tracking.
 */
#include "admin.h"
#include "error.h"
#include "platform/platform.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#define ADMIN_KEYBUF (4096 + 2 * STRATA__MAX_NS + 16)

static int bad_reply(const strata__config *cfg, const redisReply *r, const char *what)
{
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        return strata__error(STRATA_EBACKEND, "redis %s:%d: %s: %.*s", cfg->servers[0].host,
                             cfg->servers[0].port, what, (int)(r->len > 300 ? 300 : r->len), r->str);
    return strata__error(STRATA_EBACKEND, "redis %s:%d: %s: unexpected reply type %d", cfg->servers[0].host,
                         cfg->servers[0].port, what, r ? r->type : -1);
}

static void free_replies(redisReply **r, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (r[i] != NULL)
            freeReplyObject(r[i]);
}

static int run1(strata__backend *be, int argc, const char **argv, const size_t *lens, redisReply **r,
                const char *what)
{
    const char **const argvs[1] = {argv};
    const size_t *const lensv[1] = {lens};
    return strata__redis_pipeline(be, 1, &argc, argvs, lensv, r, what);
}

/* "<ns><tag><user key>" where fk is "<ns>:<user key>". */
static size_t ns_key(const strata__config *cfg, const char *tag, const char *user, size_t ulen, char *buf)
{
    size_t tl = strlen(tag);
    memcpy(buf, cfg->ns, cfg->nslen);
    memcpy(buf + cfg->nslen, tag, tl);
    memcpy(buf + cfg->nslen + tl, user, ulen);
    return cfg->nslen + tl + ulen;
}

static int64_t ttl_of(const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        return -2;
    return r->integer < 0 ? (r->integer == -1 ? -1 : -2) : (int64_t)r->integer;
}

/* ---- inspect ------------------------------------------------------------ */

int strata__redis_peek(strata__backend *be, const strata__config *cfg, const char *fk, size_t fklen,
                       strata__peek *out)
{
    char lk[ADMIN_KEYBUF];
    const char *a0[2], *a1[2], *a2[2], *a3[2];
    size_t l0[2], l1[2], l2[2], l3[2];
    const char **argvs[4] = {a0, a1, a2, a3};
    const size_t *lens[4] = {l0, l1, l2, l3};
    int argcs[4] = {2, 2, 2, 2};
    redisReply *r[4];
    size_t lklen;
    int rc;

    if (fklen <= cfg->nslen + 1 || fklen - cfg->nslen - 1 > 4096)
        return strata__error(STRATA_EKEY, "inspect: not a key of namespace \"%s\"", cfg->ns);
    lklen = strata__redis_backend_lease_key(be, fk, fklen, lk);
    a0[0] = "GET"; l0[0] = 3; a0[1] = fk; l0[1] = fklen;
    a1[0] = "PTTL"; l1[0] = 4; a1[1] = fk; l1[1] = fklen;
    a2[0] = "GET"; l2[0] = 3; a2[1] = lk; l2[1] = lklen;
    a3[0] = "PTTL"; l3[0] = 4; a3[1] = lk; l3[1] = lklen;
    if ((rc = strata__redis_pipeline(be, 4, argcs, (const char **const *)argvs, lens, r, "inspect")) != 0)
        return rc;
    out->found = r[0]->type == REDIS_REPLY_STRING;
    if (r[0]->type != REDIS_REPLY_STRING && r[0]->type != REDIS_REPLY_NIL)
        rc = bad_reply(cfg, r[0], "GET");
    else if (out->found)
        rc = strata__bytes_set(&out->val, r[0]->str, r[0]->len);
    out->ttl_ms = ttl_of(r[1]);
    out->lease = r[2]->type == REDIS_REPLY_STRING;
    if (out->lease)
        snprintf(out->lease_holder, sizeof out->lease_holder, "%.*s",
                 (int)(r[2]->len < sizeof out->lease_holder ? r[2]->len : sizeof out->lease_holder - 1),
                 r[2]->str);
    out->lease_ttl_ms = ttl_of(r[3]);
    free_replies(r, 4);
    return rc;
}

/* ---- keys --------------------------------------------------------------- */

int strata__redis_scan(strata__backend *be, const strata__config *cfg, char *cursor, size_t cursorsize,
                       const char *match, size_t count, strata__scan_item **items, size_t *n)
{
    char pattern[ADMIN_KEYBUF], countbuf[24];
    const char *argv[6];
    size_t lens[6], plen, mlen = match ? strlen(match) : 1, i, nk = 0;
    redisReply *r = NULL, **rs = NULL;
    strata__scan_item *out = NULL;
    int rc, *argcs = NULL;
    const char ***argvs = NULL;
    const size_t **lensv = NULL;
    const char *(*cmd)[2] = NULL;
    size_t (*cmdlen)[2] = NULL;

    *items = NULL;
    *n = 0;
    if (mlen > 4096)
        return strata__error(STRATA_EINVAL, "keys: pattern of %zu bytes is too long", mlen);
    memcpy(pattern, cfg->ns, cfg->nslen);
    pattern[cfg->nslen] = ':';
    memcpy(pattern + cfg->nslen + 1, match ? match : "*", mlen);
    plen = cfg->nslen + 1 + mlen;
    argv[0] = "SCAN"; lens[0] = 4;
    argv[1] = cursor; lens[1] = strlen(cursor);
    argv[2] = "MATCH"; lens[2] = 5;
    argv[3] = pattern; lens[3] = plen;
    argv[4] = "COUNT"; lens[4] = 5;
    argv[5] = countbuf; lens[5] = (size_t)snprintf(countbuf, sizeof countbuf, "%zu", count);
    if ((rc = run1(be, 6, argv, lens, &r, "SCAN")) != 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        rc = bad_reply(cfg, r, "SCAN");
        goto out;
    }
    snprintf(cursor, cursorsize, "%.*s", (int)r->element[0]->len, r->element[0]->str);
    nk = r->element[1]->elements;
    if (nk == 0)
        goto out;
    out = calloc(nk, sizeof *out);
    rs = calloc(2 * nk, sizeof *rs);
    argcs = calloc(2 * nk, sizeof *argcs);
    argvs = calloc(2 * nk, sizeof *argvs);
    lensv = calloc(2 * nk, sizeof *lensv);
    cmd = calloc(2 * nk, sizeof *cmd);
    cmdlen = calloc(2 * nk, sizeof *cmdlen);
    if (!out || !rs || !argcs || !argvs || !lensv || !cmd || !cmdlen) {
        rc = strata__error(STRATA_ENOMEM, "out of memory listing %zu keys", nk);
        goto out;
    }
    for (i = 0; i < 2 * nk; i++) {
        const redisReply *k = r->element[1]->element[i / 2];
        cmd[i][0] = i % 2 ? "PTTL" : "STRLEN";
        cmdlen[i][0] = i % 2 ? 4 : 6;
        cmd[i][1] = k->type == REDIS_REPLY_STRING ? k->str : "";
        cmdlen[i][1] = k->type == REDIS_REPLY_STRING ? k->len : 0;
        argcs[i] = 2;
        argvs[i] = cmd[i];
        lensv[i] = cmdlen[i];
    }
    if ((rc = strata__redis_pipeline(be, 2 * nk, argcs, (const char **const *)argvs, lensv, rs,
                                     "keys")) != 0)
        goto out;
    for (i = 0; i < nk && rc == 0; i++) {
        const redisReply *k = r->element[1]->element[i];
        size_t skip = cfg->nslen + 1;
        if (k->type != REDIS_REPLY_STRING || k->len < skip)
            continue;
        rc = strata__bytes_set(&out[*n].key, k->str + skip, k->len - skip);
        /* STRLEN of a key that is not a string is an error reply: size unknown */
        out[*n].size = rs[2 * i]->type == REDIS_REPLY_INTEGER ? (int64_t)rs[2 * i]->integer : -2;
        out[*n].ttl_ms = ttl_of(rs[2 * i + 1]);
        (*n)++;
    }
    if (rc == 0) {
        *items = out;
        out = NULL;
    } else {
        *n = 0;
    }
out:
    if (rs)
        free_replies(rs, 2 * nk);
    strata__scan_items_free(out, nk);
    free(rs);
    free(argcs);
    free(argvs);
    free(lensv);
    free(cmd);
    free(cmdlen);
    freeReplyObject(r);
    return rc;
}

/* ---- doctor ------------------------------------------------------------- */

/* The value of "name:" in an INFO text, into buf. */
static int info_field(const char *text, const char *name, char *buf, size_t size)
{
    size_t nl = strlen(name);
    const char *p = text;
    while ((p = strstr(p, name)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[nl] == ':') {
            size_t i = 0;
            p += nl + 1;
            while (p[i] && p[i] != '\r' && p[i] != '\n' && i + 1 < size) {
                buf[i] = p[i];
                i++;
            }
            buf[i] = '\0';
            return 0;
        }
        p += nl;
    }
    buf[0] = '\0';
    return -1;
}

static struct timeval tv_ms(int64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

/* A connection of the checks' own: timeouts, AUTH, SELECT. NULL and
 * problem[] set on failure. */
static redisContext *probe_connect(const strata__config *cfg, char *problem, size_t psize)
{
    int64_t cto = cfg->opts.connect_timeout_ms > 0 ? cfg->opts.connect_timeout_ms : 1000;
    redisContext *c = redisConnectWithTimeout(cfg->servers[0].host, cfg->servers[0].port, tv_ms(cto));
    redisReply *r;
    if (c == NULL || c->err) {
        snprintf(problem, psize, "connect: %s", c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv_ms(cfg->opts.timeout_ms > 0 ? cfg->opts.timeout_ms : 1000));
    if (cfg->password[0]) {
        r = cfg->user[0] ? redisCommand(c, "AUTH %s %s", cfg->user, cfg->password)
                         : redisCommand(c, "AUTH %s", cfg->password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(problem, psize, "AUTH: %s", r ? r->str : c->errstr);
            goto fail;
        }
        freeReplyObject(r);
    }
    if (cfg->db != 0) {
        r = redisCommand(c, "SELECT %d", cfg->db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(problem, psize, "SELECT: %s", r ? r->str : c->errstr);
            goto fail;
        }
        freeReplyObject(r);
    }
    return c;
fail:
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return NULL;
}

/* Reads pushed messages on sub until one on channel `chan` arrives: 1 yes, 0 not in time. */
static int await_message(redisContext *sub, const char *chan, int64_t deadline_ms)
{
    while (strata__now_mono_ms() < deadline_ms) {
        void *p = NULL;
        redisReply *m;
        int hit;
        if (redisGetReply(sub, &p) != REDIS_OK)
            return 0;
        m = p;
        hit = m->type == REDIS_REPLY_ARRAY && m->elements == 3 && m->element[0]->type == REDIS_REPLY_STRING &&
              strcmp(m->element[0]->str, "message") == 0 && m->element[1]->type == REDIS_REPLY_STRING &&
              strcmp(m->element[1]->str, chan) == 0;
        freeReplyObject(m);
        if (hit)
            return 1;
    }
    return 0;
}

/* Pub/sub and CLIENT TRACKING, live: a subscriber hears a PUBLISH on a
 * private channel, then the tracking invalidation of a probe key written by
 * a second connection that redirects its tracking to the subscriber. */
static void check_push(const strata__config *cfg, strata_server_info *out)
{
    char chan[96], probe[STRATA__MAX_NS + 40];
    uint64_t rnd = strata__random_u64();
    int64_t deadline;
    long long id;
    redisContext *sub = probe_connect(cfg, out->problem, sizeof out->problem), *pub = NULL;
    redisReply *r = NULL;

    out->pubsub = 0;
    out->tracking = 0;
    if (sub == NULL)
        return;
    if ((pub = probe_connect(cfg, out->problem, sizeof out->problem)) == NULL)
        goto done;
    snprintf(chan, sizeof chan, "__strata__:doctor:%016" PRIx64, rnd);
    snprintf(probe, sizeof probe, "%s#doctor:%016" PRIx64, cfg->ns, rnd);
    r = redisCommand(sub, "CLIENT ID");
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        snprintf(out->problem, sizeof out->problem, "CLIENT ID: %s", r && r->str ? r->str : sub->errstr);
        goto done;
    }
    id = r->integer;
    freeReplyObject(r);
    r = redisCommand(sub, "SUBSCRIBE %s __redis__:invalidate", chan);
    if (r == NULL) {
        snprintf(out->problem, sizeof out->problem, "SUBSCRIBE: %s", sub->errstr);
        goto done;
    }
    freeReplyObject(r); /* the first confirmation; await_message skips the second */
    r = NULL;
    deadline = strata__now_mono_ms() + (cfg->opts.timeout_ms > 0 ? cfg->opts.timeout_ms : 1000);
    r = redisCommand(pub, "PUBLISH %s ping", chan);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        out->pubsub = await_message(sub, chan, deadline);
    if (!out->pubsub)
        snprintf(out->problem, sizeof out->problem, "a PUBLISH did not reach a subscriber within timeout_ms");
    if (r)
        freeReplyObject(r);
    r = redisCommand(pub, "CLIENT TRACKING on REDIRECT %lld BCAST PREFIX %s", id, probe);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        snprintf(out->problem, sizeof out->problem, "CLIENT TRACKING: %s", r && r->str ? r->str : pub->errstr);
        goto done;
    }
    freeReplyObject(r);
    r = redisCommand(pub, "SET %s 1 PX 5000", probe);
    if (r)
        freeReplyObject(r);
    deadline = strata__now_mono_ms() + (cfg->opts.timeout_ms > 0 ? cfg->opts.timeout_ms : 1000);
    out->tracking = await_message(sub, "__redis__:invalidate", deadline);
    if (!out->tracking)
        snprintf(out->problem, sizeof out->problem, "CLIENT TRACKING sent no invalidation within timeout_ms");
    r = redisCommand(pub, "DEL %s", probe);
done:
    if (r)
        freeReplyObject(r);
    redisFree(pub);
    redisFree(sub);
}

int strata__redis_server_info(strata__backend *be, const strata__config *cfg, strata_server_info *out)
{
    const char *argv[4];
    size_t lens[4];
    char buf[64];
    redisReply *r = NULL;
    uint64_t t0, t1;
    int64_t wall0, wall1;
    int rc;

    snprintf(out->backend, sizeof out->backend, "redis");
    argv[0] = "PING"; lens[0] = 4;
    if ((rc = run1(be, 1, argv, lens, &r, "PING")) != 0) /* connects, so the next one is one round trip */
        return rc;
    freeReplyObject(r);
    t0 = strata__now_mono_ns();
    wall0 = strata__now_wall_ms();
    argv[0] = "TIME"; lens[0] = 4;
    if ((rc = run1(be, 1, argv, lens, &r, "TIME")) != 0)
        return rc;
    t1 = strata__now_mono_ns();
    wall1 = strata__now_wall_ms();
    out->rtt_us = (int64_t)((t1 - t0) / 1000);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING) {
        int64_t server_ms = strtoll(r->element[0]->str, NULL, 10) * 1000 +
                            strtoll(r->element[1]->str, NULL, 10) / 1000;
        out->clock_known = 1;
        out->clock_skew_ms = server_ms - (wall0 + wall1) / 2;
    }
    freeReplyObject(r);
    argv[0] = "INFO"; lens[0] = 4;
    argv[1] = "server"; lens[1] = 6;
    argv[2] = "memory"; lens[2] = 6;
    argv[3] = "cluster"; lens[3] = 7;
    if ((rc = run1(be, 4, argv, lens, &r, "INFO")) != 0)
        return rc;
    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS) {
        rc = bad_reply(cfg, r, "INFO");
        freeReplyObject(r);
        return rc;
    }
    info_field(r->str, "redis_version", out->server_version, sizeof out->server_version);
    if (info_field(r->str, "maxmemory", buf, sizeof buf) == 0)
        out->maxmemory = strtoll(buf, NULL, 10);
    info_field(r->str, "maxmemory_policy", out->eviction_policy, sizeof out->eviction_policy);
    if (info_field(r->str, "cluster_enabled", buf, sizeof buf) == 0)
        out->cluster = atoi(buf);
    freeReplyObject(r);
    if (out->cluster == 1) {
        argv[0] = "CLUSTER"; lens[0] = 7;
        argv[1] = "INFO"; lens[1] = 4;
        if (run1(be, 2, argv, lens, &r, "CLUSTER INFO") == 0) {
            if (r->type == REDIS_REPLY_STRING)
                info_field(r->str, "cluster_state", out->cluster_state, sizeof out->cluster_state);
            freeReplyObject(r);
        }
    }
    check_push(cfg, out);
    return 0;
}

/* ---- write-behind ------------------------------------------------------- */

static size_t stream_name(const strata__config *cfg, char *buf, int dead)
{
    return ns_key(cfg, dead ? "#W:dead" : "#W", "", 0, buf);
}

static uint64_t id_ms(const char *id)
{
    return strtoull(id, NULL, 10);
}

int strata__redis_wb_status(strata__backend *be, const strata__config *cfg, strata_wb_status *out)
{
    char stream[STRATA__MAX_NS + 8], dead[STRATA__MAX_NS + 8];
    size_t sl = stream_name(cfg, stream, 0), dl = stream_name(cfg, dead, 1), i;
    const char *a0[2] = {"XLEN", stream}, *a1[2] = {"XLEN", dead};
    const char *a2[6] = {"XRANGE", stream, "-", "+", "COUNT", "1"};
    const char *a3[4] = {"XINFO", "CONSUMERS", stream, "strata"};
    size_t l0[2] = {4, sl}, l1[2] = {4, dl}, l2[6] = {6, sl, 1, 1, 5, 1}, l3[4] = {5, 9, sl, 6};
    const char **argvs[4] = {a0, a1, a2, a3};
    const size_t *lens[4] = {l0, l1, l2, l3};
    int argcs[4] = {2, 2, 6, 4}, rc;
    redisReply *r[4];

    if ((rc = strata__redis_pipeline(be, 4, argcs, (const char **const *)argvs, lens, r, "wb status")) != 0)
        return rc;
    if (r[0]->type != REDIS_REPLY_INTEGER || r[1]->type != REDIS_REPLY_INTEGER) {
        rc = bad_reply(cfg, r[0]->type != REDIS_REPLY_INTEGER ? r[0] : r[1], "XLEN");
        goto out;
    }
    out->backlog = (uint64_t)r[0]->integer;
    out->dead = (uint64_t)r[1]->integer;
    if (r[2]->type == REDIS_REPLY_ARRAY && r[2]->elements > 0 && r[2]->element[0]->type == REDIS_REPLY_ARRAY &&
        r[2]->element[0]->elements >= 1 && r[2]->element[0]->element[0]->type == REDIS_REPLY_STRING)
        out->oldest_ms = (int64_t)id_ms(r[2]->element[0]->element[0]->str);
    /* XINFO CONSUMERS: no group yet is an error reply, meaning no consumers */
    if (r[3]->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < r[3]->elements; i++) {
            const redisReply *c = r[3]->element[i];
            strata_wb_consumer one;
            size_t f;
            memset(&one, 0, sizeof one);
            for (f = 0; c->type == REDIS_REPLY_ARRAY && f + 1 < c->elements; f += 2) {
                const redisReply *k = c->element[f], *v = c->element[f + 1];
                if (k->type != REDIS_REPLY_STRING)
                    continue;
                if (strcmp(k->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
                    snprintf(one.name, sizeof one.name, "%.*s", (int)v->len, v->str);
                else if (strcmp(k->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
                    one.pending = (uint64_t)v->integer;
                else if (strcmp(k->str, "idle") == 0 && v->type == REDIS_REPLY_INTEGER)
                    one.idle_ms = v->integer;
            }
            out->pending += one.pending;
            if (out->nconsumers < STRATA_WB_STATUS_CONSUMERS)
                out->consumers[out->nconsumers++] = one;
        }
    }
out:
    free_replies(r, 4);
    return rc;
}

/* One XRANGE entry [id, [field, value, ...]] into d. */
static int parse_dead(const redisReply *e, strata__dead_letter *d)
{
    const redisReply *f;
    size_t i;
    int rc = 0;
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[1]->type != REDIS_REPLY_ARRAY)
        return -1;
    snprintf(d->id, sizeof d->id, "%.*s", (int)e->element[0]->len, e->element[0]->str);
    f = e->element[1];
    for (i = 0; i + 1 < f->elements && rc == 0; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "k") == 0)
            rc = strata__bytes_set(&d->key, v->str, v->len);
        else if (strcmp(k->str, "v") == 0)
            rc = strata__bytes_set(&d->val, v->str, v->len);
        else if (strcmp(k->str, "error") == 0)
            rc = strata__bytes_set(&d->error, v->str, v->len);
        else if (strcmp(k->str, "t") == 0)
            d->given_up_ms = strtoll(v->str, NULL, 10);
        else if (strcmp(k->str, "attempts") == 0)
            d->attempts = (unsigned int)strtoul(v->str, NULL, 10);
    }
    return rc;
}

int strata__redis_wb_dead_list(strata__backend *be, const strata__config *cfg, size_t max,
                               strata__dead_letter **out, size_t *n)
{
    char dead[STRATA__MAX_NS + 8], countbuf[24];
    const char *argv[6];
    size_t lens[6], i;
    redisReply *r = NULL;
    strata__dead_letter *d = NULL;
    int rc;

    *out = NULL;
    *n = 0;
    argv[0] = "XRANGE"; lens[0] = 6;
    argv[1] = dead; lens[1] = stream_name(cfg, dead, 1);
    argv[2] = "-"; lens[2] = 1;
    argv[3] = "+"; lens[3] = 1;
    argv[4] = "COUNT"; lens[4] = 5;
    argv[5] = countbuf; lens[5] = (size_t)snprintf(countbuf, sizeof countbuf, "%zu", max);
    if ((rc = run1(be, max ? 6 : 4, argv, lens, &r, "XRANGE")) != 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY) {
        rc = bad_reply(cfg, r, "XRANGE");
        goto done;
    }
    if (r->elements && (d = calloc(r->elements, sizeof *d)) == NULL) {
        rc = strata__error(STRATA_ENOMEM, "out of memory reading %zu dead letters", r->elements);
        goto done;
    }
    for (i = 0; i < r->elements && rc == 0; i++)
        if ((rc = parse_dead(r->element[i], &d[*n])) == 0 && d[*n].key.len > 0)
            (*n)++;
    if (rc < 0)
        rc = rc == -1 ? strata__error(STRATA_EBACKEND, "dead letter stream %s holds a malformed entry", dead) : rc;
done:
    if (rc == 0) {
        *out = d;
    } else {
        strata__dead_letters_free(d, r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0);
        *n = 0;
    }
    freeReplyObject(r);
    return rc;
}

/* Removes the dead entry and, replaying, appends it as the key's newest
 * write in one script, as wb_append does (backend/redis/stream.c): the record
 * with a fresh token, <ns>#W:id:<key> = that token, <ns>#W:n:<key> + 1.
 * A dead letter is replayed or purged at most once whoever else runs it. */
static const char TAKE_SCRIPT[] =
    "if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end "
    "if ARGV[2] == '1' then "
    "redis.call('XADD', KEYS[2], '*', 'k', ARGV[3], 'v', ARGV[4], 't', ARGV[5], 'n', ARGV[6]) "
    "redis.call('SET', KEYS[3], ARGV[6]) "
    "redis.call('INCR', KEYS[4]) end "
    "return 1";

int strata__redis_wb_dead_take(strata__backend *be, const strata__config *cfg, const strata__dead_letter *d,
                               int replay, int64_t now_ms)
{
    char dead[STRATA__MAX_NS + 8], stream[STRATA__MAX_NS + 8], now[24], tok[20];
    char *idk = malloc(cfg->nslen + 6 + d->key.len + 1), *nk = malloc(cfg->nslen + 5 + d->key.len + 1);
    const char *argv[13];
    size_t lens[13];
    redisReply *r = NULL;
    int rc;

    if (idk == NULL || nk == NULL) {
        free(idk);
        free(nk);
        return strata__error(STRATA_ENOMEM, "out of memory replaying a dead letter");
    }
    argv[0] = "EVAL"; lens[0] = 4;
    argv[1] = TAKE_SCRIPT; lens[1] = sizeof TAKE_SCRIPT - 1;
    argv[2] = "4"; lens[2] = 1;
    argv[3] = dead; lens[3] = stream_name(cfg, dead, 1);
    argv[4] = stream; lens[4] = stream_name(cfg, stream, 0);
    argv[5] = idk; lens[5] = ns_key(cfg, "#W:id:", d->key.data, d->key.len, idk);
    argv[6] = nk; lens[6] = ns_key(cfg, "#W:n:", d->key.data, d->key.len, nk);
    argv[7] = d->id; lens[7] = strlen(d->id);
    argv[8] = replay ? "1" : "0"; lens[8] = 1;
    argv[9] = d->key.data; lens[9] = d->key.len;
    argv[10] = d->val.data ? d->val.data : ""; lens[10] = d->val.len;
    argv[11] = now; lens[11] = (size_t)snprintf(now, sizeof now, "%" PRId64, now_ms);
    argv[12] = tok; lens[12] = (size_t)snprintf(tok, sizeof tok, "%016" PRIx64, strata__random_u64() | 1);
    rc = run1(be, 13, argv, lens, &r, replay ? "dead-letter replay" : "dead-letter purge");
    free(idk);
    free(nk);
    if (rc != 0)
        return rc;
    rc = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : bad_reply(cfg, r, "dead-letter script");
    freeReplyObject(r);
    return rc;
}
