#include "backend/redis/watch.h"
#include "error.h"
#include "platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define WATCH_BACKOFF_MIN 50
#define WATCH_BACKOFF_MAX 2000
#define TRACKING_CHANNEL "__redis__:invalidate"

struct strata__redis_watch {
    char host[256];           /* the node subscribed to */
    int port;
    strata__server seeds[STRATA__MAX_SERVERS]; /* a cluster's: PUBLISH reaches every node */
    size_t nseeds, seed;
    char user[128];
    char password[256];
    char ns[STRATA__MAX_NS + 1];
    size_t nslen;
    char chan[STRATA__INV_CHANNEL_MAX];
    size_t chanlen;
    char origin[STRATA__INV_ORIGIN_LEN + 1];
    int tracking;
    int64_t timeout_ms, connect_timeout_ms, ping_ms;
    strata__watch_events ev;

    strata__thread thread;
    int wake[2];              /* self-pipe: stop() wakes the thread's poll() */
    int stop;                 /* atomic */
    redisContext *ctx;        /* the thread's; read by forget() in a child only */

    strata__mutex mu;         /* guards first_done */
    strata__cond cv;
    int first_done;
};

void strata__inv_origin(char out[STRATA__INV_ORIGIN_LEN + 1], uint64_t instance)
{
    snprintf(out, STRATA__INV_ORIGIN_LEN + 1, "%016llx%08x", (unsigned long long)instance,
             (unsigned int)getpid());
}

size_t strata__inv_channel(char *buf, size_t size, const strata__config *cfg)
{
    int n = snprintf(buf, size, "__strata__:inv:%d:%s", cfg->db, cfg->ns);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

static struct timeval tv_of(int64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

static int is_str(const redisReply *r, const char *s, size_t len)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == len && memcmp(r->str, s, len) == 0;
}

static void mark_first_done(strata__redis_watch *w)
{
    strata__mutex_lock(&w->mu);
    w->first_done = 1;
    strata__cond_broadcast(&w->cv);
    strata__mutex_unlock(&w->mu);
}

/* One blocking command during setup (the socket has timeouts). */
static redisReply *setup_cmd(strata__redis_watch *w, int argc, const char **argv, const size_t *lens)
{
    redisReply *r = redisCommandArgv(w->ctx, argc, argv, lens);
    if (r == NULL)
        return NULL;
    if (r->type == REDIS_REPLY_ERROR) {
        strata__error(STRATA_EBACKEND, "redis %s:%d: invalidation link: %s refused: %.*s", w->host,
                      w->port, argv[0], (int)(r->len > 200 ? 200 : r->len), r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Connects, authenticates, turns tracking on (redirected to this very
 * connection: BCAST needs no data connection to track anything, so the
 * tracking state lives and dies with the subscriber) and subscribes. */
static int connect_and_subscribe(strata__redis_watch *w)
{
    const char *argv[8];
    size_t lens[8];
    char id[32], prefix[STRATA__MAX_NS + 2];
    redisReply *r;
    int i, n, want;

    w->ctx = redisConnectWithTimeout(w->host, w->port, tv_of(w->connect_timeout_ms));
    if (w->ctx == NULL || w->ctx->err ||
        redisSetTimeout(w->ctx, tv_of(w->timeout_ms)) != REDIS_OK ||
        redisEnableKeepAlive(w->ctx) != REDIS_OK)
        goto fail;
    if (w->password[0]) {
        n = 0;
        argv[n] = "AUTH"; lens[n++] = 4;
        if (w->user[0]) {
            argv[n] = w->user; lens[n++] = strlen(w->user);
        }
        argv[n] = w->password; lens[n++] = strlen(w->password);
        if ((r = setup_cmd(w, n, argv, lens)) == NULL)
            goto fail;
        freeReplyObject(r);
    }
    if (w->tracking) {
        argv[0] = "CLIENT"; lens[0] = 6;
        argv[1] = "ID"; lens[1] = 2;
        if ((r = setup_cmd(w, 2, argv, lens)) == NULL)
            goto fail;
        snprintf(id, sizeof id, "%lld", (long long)r->integer);
        freeReplyObject(r);
        snprintf(prefix, sizeof prefix, "%s:", w->ns);
        argv[1] = "TRACKING"; lens[1] = 8;
        argv[2] = "on"; lens[2] = 2;
        argv[3] = "REDIRECT"; lens[3] = 8;
        argv[4] = id; lens[4] = strlen(id);
        argv[5] = "BCAST"; lens[5] = 5;
        argv[6] = "PREFIX"; lens[6] = 6;
        argv[7] = prefix; lens[7] = w->nslen + 1;
        if ((r = setup_cmd(w, 8, argv, lens)) == NULL)
            goto fail;
        freeReplyObject(r);
    }
    argv[0] = "SUBSCRIBE"; lens[0] = 9;
    argv[1] = w->chan; lens[1] = w->chanlen;
    argv[2] = TRACKING_CHANNEL; lens[2] = strlen(TRACKING_CHANNEL);
    want = w->tracking ? 2 : 1;
    if (redisAppendCommandArgv(w->ctx, 1 + want, argv, lens) != REDIS_OK)
        goto fail;
    for (i = 0; i < want; i++) {
        void *p = NULL;
        if (redisGetReply(w->ctx, &p) != REDIS_OK)
            goto fail;
        r = p;
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !is_str(r->element[0], "subscribe", 9)) {
            freeReplyObject(r);
            goto fail;
        }
        freeReplyObject(r);
    }
    return 0;
fail:
    if (w->ctx) {
        redisFree(w->ctx);
        w->ctx = NULL;
    }
    return -1;
}

static void on_message(strata__redis_watch *w, const redisReply *r, int *pong)
{
    const redisReply *chan, *body;
    size_t i;
    if (r->type != REDIS_REPLY_ARRAY)
        return;
    if (r->elements == 2 && is_str(r->element[0], "pong", 4)) {
        *pong = 1;
        return;
    }
    if (r->elements != 3 || !is_str(r->element[0], "message", 7))
        return; /* subscribe confirmations */
    chan = r->element[1];
    body = r->element[2];
    if (is_str(chan, w->chan, w->chanlen)) {
        if (body->type != REDIS_REPLY_STRING || body->len < STRATA__INV_ORIGIN_LEN) {
            w->ev.flush(w->ev.ud); /* not ours to parse: assume anything changed */
        } else if (memcmp(body->str, w->origin, STRATA__INV_ORIGIN_LEN) != 0) {
            /* our own writes already updated our L1 in order */
            w->ev.evict(w->ev.ud, body->str + STRATA__INV_ORIGIN_LEN, body->len - STRATA__INV_ORIGIN_LEN);
        }
    } else if (is_str(chan, TRACKING_CHANNEL, strlen(TRACKING_CHANNEL))) {
        if (body->type != REDIS_REPLY_ARRAY) {
            w->ev.flush(w->ev.ud); /* FLUSHDB / FLUSHALL: a null payload */
            return;
        }
        for (i = 0; i < body->elements; i++) {
            const redisReply *k = body->element[i];
            if (k->type == REDIS_REPLY_STRING && k->len > w->nslen && k->str[w->nslen] == ':' &&
                memcmp(k->str, w->ns, w->nslen) == 0)
                w->ev.evict(w->ev.ud, k->str + w->nslen + 1, k->len - w->nslen - 1);
        }
    }
}

/* Serves the subscribed link until it breaks, a ping goes unanswered, or
 * stop() is called. */
static void serve(strata__redis_watch *w)
{
    int64_t now = strata__now_mono_ms(), ping_due = now + w->ping_ms, pong_deadline = 0;
    for (;;) {
        struct pollfd fds[2];
        int64_t wait = (pong_deadline ? pong_deadline : ping_due) - now;
        int pong = 0;
        fds[0].fd = w->ctx->fd;
        fds[0].events = POLLIN;
        fds[1].fd = w->wake[0];
        fds[1].events = POLLIN;
        fds[0].revents = fds[1].revents = 0;
        if (poll(fds, 2, wait < 0 ? 0 : wait > 60000 ? 60000 : (int)wait) < 0 && errno != EINTR)
            return;
        if (strata__atomic_load(&w->stop))
            return;
        if (fds[0].revents) {
            void *p = NULL;
            if (redisBufferRead(w->ctx) != REDIS_OK)
                return; /* EOF (CLIENT KILL, server gone) or a read error */
            for (;;) {
                if (redisGetReplyFromReader(w->ctx, &p) != REDIS_OK)
                    return;
                if (p == NULL)
                    break;
                on_message(w, p, &pong);
                freeReplyObject(p);
            }
            if (pong)
                pong_deadline = 0;
        }
        now = strata__now_mono_ms();
        if (pong_deadline && now >= pong_deadline)
            return; /* the server stopped answering: messages may be lost */
        if (!pong_deadline && now >= ping_due) {
            const char *argv[1] = {"PING"};
            size_t lens[1] = {4};
            int done = 0;
            if (redisAppendCommandArgv(w->ctx, 1, argv, lens) != REDIS_OK)
                return;
            while (!done)
                if (redisBufferWrite(w->ctx, &done) != REDIS_OK)
                    return;
            pong_deadline = now + w->timeout_ms;
            ping_due = now + w->ping_ms;
        }
    }
}

/* Sleeps up to ms unless stop() is called. */
static void nap(strata__redis_watch *w, int64_t ms)
{
    struct pollfd fd;
    fd.fd = w->wake[0];
    fd.events = POLLIN;
    fd.revents = 0;
    if (!strata__atomic_load(&w->stop))
        poll(&fd, 1, (int)ms);
}

/* A cluster's link moves to the next seed when its node fails. */
static void next_seed(strata__redis_watch *w)
{
    if (w->nseeds < 2)
        return;
    w->seed = (w->seed + 1) % w->nseeds;
    memcpy(w->host, w->seeds[w->seed].host, sizeof w->host); /* both NUL-terminated 256-byte fields */
    w->port = w->seeds[w->seed].port;
}

static void *watch_main(void *arg)
{
    strata__redis_watch *w = arg;
    int64_t backoff = 0;
    while (!strata__atomic_load(&w->stop)) {
        if (connect_and_subscribe(w) == 0) {
            backoff = 0;
            /* Whatever was written before the subscription took effect went
             * unheard: start from an empty L1. */
            w->ev.flush(w->ev.ud);
            w->ev.link(w->ev.ud, 1);
            mark_first_done(w);
            serve(w);
            w->ev.link(w->ev.ud, 0);
            w->ev.flush(w->ev.ud);
            redisFree(w->ctx);
            w->ctx = NULL;
            next_seed(w);
            continue; /* reconnect at once; backoff only once connecting fails */
        }
        mark_first_done(w);
        next_seed(w);
        backoff = backoff ? (backoff * 2 > WATCH_BACKOFF_MAX ? WATCH_BACKOFF_MAX : backoff * 2)
                          : WATCH_BACKOFF_MIN;
        nap(w, backoff);
    }
    return NULL;
}

int strata__redis_watch_start(strata__redis_watch **out, const strata__config *cfg,
                              const strata__watch_events *ev)
{
    strata__redis_watch *w = calloc(1, sizeof *w);
    if (w == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory starting the invalidation link");
    snprintf(w->host, sizeof w->host, "%s", cfg->servers[0].host);
    w->port = cfg->servers[0].port;
    if (cfg->cluster) {
        memcpy(w->seeds, cfg->servers, cfg->nservers * sizeof cfg->servers[0]);
        w->nseeds = cfg->nservers;
    }
    snprintf(w->user, sizeof w->user, "%s", cfg->user);
    snprintf(w->password, sizeof w->password, "%s", cfg->password);
    memcpy(w->ns, cfg->ns, cfg->nslen);
    w->nslen = cfg->nslen;
    w->chanlen = strata__inv_channel(w->chan, sizeof w->chan, cfg);
    strata__inv_origin(w->origin, cfg->instance);
    w->tracking = cfg->opts.tracking;
    w->timeout_ms = cfg->opts.timeout_ms;
    w->connect_timeout_ms = cfg->opts.connect_timeout_ms > 0 ? cfg->opts.connect_timeout_ms
                                                             : cfg->opts.timeout_ms;
    w->ping_ms = cfg->opts.coherence_ping_ms;
    w->ev = *ev;
    if (pipe(w->wake) != 0) {
        free(w);
        return strata__error(STRATA_EBACKEND, "invalidation link: pipe: %s", strerror(errno));
    }
    fcntl(w->wake[0], F_SETFD, FD_CLOEXEC);
    fcntl(w->wake[1], F_SETFD, FD_CLOEXEC);
    strata__mutex_init(&w->mu);
    strata__cond_init(&w->cv);
    if (strata__thread_start(&w->thread, watch_main, w) != 0) {
        close(w->wake[0]);
        close(w->wake[1]);
        strata__cond_destroy(&w->cv);
        strata__mutex_destroy(&w->mu);
        free(w);
        return strata__error(STRATA_ENOMEM, "invalidation link: cannot start its thread");
    }
    *out = w;
    return 0;
}

void strata__redis_watch_wait_first(strata__redis_watch *w, int64_t deadline_ms)
{
    strata__mutex_lock(&w->mu);
    while (!w->first_done && strata__cond_wait_until(&w->cv, &w->mu, deadline_ms) == 0)
        ;
    strata__mutex_unlock(&w->mu);
}

void strata__redis_watch_stop(strata__redis_watch *w)
{
    ssize_t ignored;
    if (w == NULL)
        return;
    strata__atomic_store(&w->stop, 1);
    ignored = write(w->wake[1], "x", 1);
    (void)ignored;
    strata__thread_join(w->thread);
    if (w->ctx)
        redisFree(w->ctx);
    w->ctx = NULL;
    close(w->wake[0]);
    close(w->wake[1]);
    strata__cond_destroy(&w->cv);
    strata__mutex_destroy(&w->mu);
    strata__redis_watch_release(w);
}

void strata__redis_watch_forget(strata__redis_watch *w)
{
    if (w == NULL)
        return;
    if (w->ctx && w->ctx->fd >= 0) {
        close(w->ctx->fd);
        w->ctx->fd = -1; /* redisFree() later must not close a reused number */
    }
    close(w->wake[0]);
    close(w->wake[1]);
    w->wake[0] = w->wake[1] = -1;
}

void strata__redis_watch_release(strata__redis_watch *w)
{
    if (w == NULL)
        return;
    /* After forget(): the parent's thread may have been inside hiredis at
     * fork, but it spends its life in poll(), where the context is whole. */
    if (w->ctx)
        redisFree(w->ctx);
    free(w);
}
