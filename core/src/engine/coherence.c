#include "coherence.h"
#include "cache.h"
#include "error.h"
#include "backend/redis_bus.h"
#include "backend/redis_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct strata__coherence {
    const strata__config *watch_cfg; /* the cache's own (redis) or bus_cfg */
    strata__config *bus_cfg;         /* memcached + l1_bus: the bus server, our ns */
    strata__redis_bus *bus;          /* memcached + l1_bus: where writes publish */
    strata__redis_watch *watch;      /* NULL when this cache has no L1 */
    strata__redis_watch *retired[8]; /* parent links inherited across forks */
    size_t nretired;
    unsigned int gen;          /* fork generation `watch` belongs to (atomic) */
    unsigned int restart_gen;  /* claimed by the caller restarting after a fork */
    int link_up;               /* atomic */
};

static void on_evict(void *ud, const char *key, size_t keylen)
{
    strata_cache *c = ud;
    strata__key k = strata__key_of(key, keylen);
    strata__l1_del(c->l1, &k);
    STRATA__COUNT(c, invalidations_received);
}

static void on_flush(void *ud)
{
    strata_cache *c = ud;
    strata__tags_ns_forget(c); /* it may be another process's strata_clear */
    strata__l1_demote(c->l1);
    STRATA__COUNT(c, l1_flushes);
}

static void on_link(void *ud, int up)
{
    strata_cache *c = ud;
    strata__atomic_store(&c->coherence->link_up, up);
}

static int start_watch(strata_cache *c)
{
    strata__watch_events ev;
    ev.ud = c;
    ev.evict = on_evict;
    ev.flush = on_flush;
    ev.link = on_link;
    return strata__redis_watch_start(&c->coherence->watch, c->coherence->watch_cfg, &ev);
}

/* memcached + l1_bus: the bus server's address and credentials, with this
 * cache's namespace, instance and timeouts (they name the channel and origin). */
static int open_bus(strata_cache *c, strata__coherence *co)
{
    int rc;
    if ((co->bus_cfg = malloc(sizeof *co->bus_cfg)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory opening the invalidation bus");
    if ((rc = strata__parse_l1_bus(&c->cfg, co->bus_cfg)) < 0)
        return rc;
    memcpy(co->bus_cfg->ns, c->cfg.ns, sizeof co->bus_cfg->ns);
    co->bus_cfg->nslen = c->cfg.nslen;
    co->bus_cfg->instance = c->cfg.instance;
    co->bus_cfg->opts = c->cfg.opts;
    co->bus_cfg->opts.ns = co->bus_cfg->ns;
    co->bus_cfg->opts.tracking = 0;
    co->bus_cfg->opts.l1_bus = NULL;
    co->watch_cfg = co->bus_cfg;
    return strata__redis_bus_open(&co->bus, co->bus_cfg);
}

static void free_parts(strata__coherence *co)
{
    strata__redis_bus_close(co->bus);
    free(co->bus_cfg);
    free(co);
}

int strata__coherence_start(strata_cache *c)
{
    strata__coherence *co;
    int rc = 0, bus = c->cfg.scheme == STRATA__SCHEME_MEMCACHED && c->cfg.l1_bus[0];
    if (!(c->cfg.scheme == STRATA__SCHEME_REDIS && c->l1) && !bus)
        return 0;
    if ((co = calloc(1, sizeof *co)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory starting the invalidation link");
    co->gen = co->restart_gen = strata__fork_generation();
    co->watch_cfg = &c->cfg;
    c->coherence = co;
    if (bus)
        rc = open_bus(c, co); /* a writer without L1 still tells the others */
    if (rc == 0 && c->l1)
        rc = start_watch(c);
    if (rc < 0) {
        free_parts(co);
        c->coherence = NULL;
        return rc;
    }
    if (co->watch == NULL)
        return 0;
    /* Usually subscribed on return, so L1 works from the first call; a
     * server that is down or slow does not hold up the caller longer. */
    strata__redis_watch_wait_first(co->watch, strata__now_mono_ms() + c->cfg.opts.connect_timeout_ms +
                                                  c->cfg.opts.timeout_ms);
    return 0;
}

void strata__coherence_stop(strata_cache *c)
{
    strata__coherence *co = c->coherence;
    size_t i;
    if (co == NULL)
        return;
    if (strata__atomic_load(&co->gen) == strata__fork_generation())
        strata__redis_watch_stop(co->watch);
    else
        strata__redis_watch_forget(co->watch), strata__redis_watch_release(co->watch);
    for (i = 0; i < co->nretired; i++)
        strata__redis_watch_release(co->retired[i]);
    free_parts(co);
    c->coherence = NULL;
}

/* In a forked child: the parent's entries may have missed invalidations sent
 * since the fork, and the parent's thread does not exist here. */
static void restart_after_fork(strata_cache *c, unsigned int gen)
{
    strata__coherence *co = c->coherence;
    unsigned int seen = strata__atomic_load(&co->restart_gen);
    if (seen == gen || !strata__atomic_cas(&co->restart_gen, &seen, gen))
        return; /* another thread of this child is at it */
    strata__atomic_store(&co->link_up, 0);
    strata__redis_watch_forget(co->watch);
    if (co->nretired < sizeof co->retired / sizeof co->retired[0])
        co->retired[co->nretired++] = co->watch;
    co->watch = NULL;
    strata__l1_demote(c->l1);
    STRATA__COUNT(c, l1_flushes);
    if (start_watch(c) == 0)
        strata__atomic_store(&co->gen, gen);
    else
        strata__atomic_store(&co->restart_gen, seen); /* let a later call try again */
}

int strata__coherence_usable(strata_cache *c)
{
    strata__coherence *co = c->coherence;
    unsigned int gen = strata__fork_generation();
    if (strata__atomic_load(&co->gen) != gen) {
        restart_after_fork(c, gen);
        return 0;
    }
    return strata__atomic_load(&co->link_up);
}

void strata__coherence_wrote(strata_cache *c, const char *key, size_t keylen)
{
    char saved[512];
    if (c->coherence == NULL || c->coherence->bus == NULL)
        return;
    /* The caller reports its write's outcome: keep that message. A failed
     * publish leaves other L1s to their l1_ttl_ms bound. */
    snprintf(saved, sizeof saved, "%s", strata_error_last());
    if (strata__redis_bus_publish(c->coherence->bus, key, keylen) < 0)
        strata__error(STRATA_EBACKEND, "%s", saved);
}

int strata__coherence_link_up(strata_cache *c)
{
    return c->coherence && strata__atomic_load(&c->coherence->gen) == strata__fork_generation() &&
           strata__atomic_load(&c->coherence->link_up);
}

void strata__coherence_cleared(strata_cache *c)
{
    char saved[512];
    int rc = 0;
    snprintf(saved, sizeof saved, "%s", strata_error_last());
    if (c->coherence && c->coherence->bus)
        rc = strata__redis_bus_publish(c->coherence->bus, NULL, 0);
    else if (c->backend->ops->publish_flush)
        rc = strata__backend_result(c, c->backend->ops->publish_flush(c->backend));
    if (rc < 0) /* the clear happened; other L1s fall back to their l1_ttl_ms bound */
        strata__error(STRATA_EBACKEND, "%s", saved);
}
