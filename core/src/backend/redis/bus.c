#include "backend/redis/bus.h"
#include "backend/redis/watch.h"
#include "error.h"
#include "platform/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define BUS_BACKOFF_MIN 50
#define BUS_BACKOFF_MAX 2000

struct strata__redis_bus {
    char host[256];
    int port;
    char user[128];
    char password[256];
    char chan[STRATA__INV_CHANNEL_MAX];
    size_t chanlen;
    uint64_t instance;
    int64_t timeout_ms, connect_timeout_ms;

    strata__mutex mu;          /* guards everything below */
    unsigned int ready_gen;    /* fork generation mu and ctx belong to (atomic) */
    unsigned int claim_gen;    /* claimed by the thread resetting after a fork */
    redisContext *ctx;
    char origin[STRATA__INV_ORIGIN_LEN + 1];
    int64_t retry_at_ms, backoff_ms;
};

static struct timeval tv_of(int64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

int strata__redis_bus_open(strata__redis_bus **out, const strata__config *cfg)
{
    strata__redis_bus *b = calloc(1, sizeof *b);
    if (b == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory opening the invalidation bus");
    snprintf(b->host, sizeof b->host, "%s", cfg->servers[0].host);
    b->port = cfg->servers[0].port;
    snprintf(b->user, sizeof b->user, "%s", cfg->user);
    snprintf(b->password, sizeof b->password, "%s", cfg->password);
    b->chanlen = strata__inv_channel(b->chan, sizeof b->chan, cfg);
    b->instance = cfg->instance;
    b->timeout_ms = cfg->opts.timeout_ms;
    b->connect_timeout_ms = cfg->opts.connect_timeout_ms;
    strata__mutex_init(&b->mu);
    b->ready_gen = b->claim_gen = strata__fork_generation();
    strata__inv_origin(b->origin, b->instance);
    *out = b;
    return 0;
}

void strata__redis_bus_close(strata__redis_bus *b)
{
    if (b == NULL)
        return;
    if (b->ctx)
        redisFree(b->ctx); /* in a child that never published, this only closes its copy */
    if (strata__atomic_load(&b->ready_gen) == strata__fork_generation())
        strata__mutex_destroy(&b->mu);
    free(b);
}

/* In a forked child the parent's socket and lock state are not ours: one
 * thread closes the socket (sending nothing) and re-makes the lock. */
static int ready_in_this_process(strata__redis_bus *b)
{
    unsigned int gen = strata__fork_generation(), seen;
    if (strata__atomic_load(&b->ready_gen) == gen)
        return 1;
    seen = strata__atomic_load(&b->claim_gen);
    if (seen == gen || !strata__atomic_cas(&b->claim_gen, &seen, gen))
        return 0; /* another thread of this child is at it */
    if (b->ctx) {
        if (b->ctx->fd >= 0)
            close(b->ctx->fd);
        b->ctx->fd = -1;
        redisFree(b->ctx);
        b->ctx = NULL;
    }
    strata__mutex_init(&b->mu);
    strata__inv_origin(b->origin, b->instance);
    b->retry_at_ms = b->backoff_ms = 0;
    strata__atomic_store(&b->ready_gen, gen);
    return 1;
}

/* Called with mu held. */
static int bus_connect(strata__redis_bus *b)
{
    int64_t now = strata__now_mono_ms();
    redisReply *r;
    if (now < b->retry_at_ms)
        return strata__error(STRATA_EBACKEND, "invalidation bus %s:%d: reconnect backoff", b->host, b->port);
    b->ctx = redisConnectWithTimeout(b->host, b->port, tv_of(b->connect_timeout_ms));
    if (b->ctx && !b->ctx->err && redisSetTimeout(b->ctx, tv_of(b->timeout_ms)) == REDIS_OK) {
        if (!b->password[0])
            goto ok;
        r = b->user[0] ? redisCommand(b->ctx, "AUTH %s %s", b->user, b->password)
                       : redisCommand(b->ctx, "AUTH %s", b->password);
        if (r && r->type != REDIS_REPLY_ERROR) {
            freeReplyObject(r);
            goto ok;
        }
        if (r)
            freeReplyObject(r);
    }
    strata__error(STRATA_EBACKEND, "invalidation bus %s:%d: connect failed: %s", b->host, b->port,
                  b->ctx ? b->ctx->errstr : "out of memory");
    if (b->ctx)
        redisFree(b->ctx);
    b->ctx = NULL;
    b->backoff_ms = b->backoff_ms ? (b->backoff_ms * 2 > BUS_BACKOFF_MAX ? BUS_BACKOFF_MAX : b->backoff_ms * 2)
                                  : BUS_BACKOFF_MIN;
    b->retry_at_ms = now + b->backoff_ms;
    return STRATA_EBACKEND;
ok:
    b->backoff_ms = 0;
    return 0;
}

int strata__redis_bus_publish(strata__redis_bus *b, const char *key, size_t keylen)
{
    char *payload;
    const char *argv[3];
    size_t lens[3];
    redisReply *r = NULL;
    int rc = 0;
    if (!ready_in_this_process(b))
        return strata__error(STRATA_EBACKEND, "invalidation bus: restarting after fork");
    if ((payload = malloc(STRATA__INV_ORIGIN_LEN + keylen)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory publishing an invalidation");
    strata__mutex_lock(&b->mu);
    memcpy(payload, b->origin, STRATA__INV_ORIGIN_LEN);
    memcpy(payload + STRATA__INV_ORIGIN_LEN, key, keylen);
    argv[0] = "PUBLISH"; lens[0] = 7;
    argv[1] = b->chan; lens[1] = b->chanlen;
    argv[2] = payload; lens[2] = STRATA__INV_ORIGIN_LEN + keylen;
    if (b->ctx == NULL)
        rc = bus_connect(b);
    if (rc == 0 && (r = redisCommandArgv(b->ctx, 3, argv, lens)) == NULL) {
        rc = strata__error(STRATA_EBACKEND, "invalidation bus %s:%d: PUBLISH failed: %s", b->host, b->port,
                           b->ctx->errstr);
        redisFree(b->ctx); /* its stream position is unknown */
        b->ctx = NULL;
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        rc = strata__error(STRATA_EBACKEND, "invalidation bus %s:%d: PUBLISH refused: %.*s", b->host, b->port,
                           (int)(r->len > 200 ? 200 : r->len), r->str);
    }
    strata__mutex_unlock(&b->mu);
    if (r)
        freeReplyObject(r);
    free(payload);
    return rc;
}
