/* Routing (route.h): a single node, or a Redis Cluster's slot map. */
#include "route.h"
#include "error.h"
#include "platform/platform.h"
#include "backend/redis/slot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct route_server {
    char host[256];
    int port;
    char who[280];
} route_server;

/* Readers take no lock: a server is written whole before n counts it, and a
 * slot entry (one atomic word) only ever names a counted server. */
struct strata__redis_route {
    int cluster;
    size_t cap;
    unsigned int n;              /* servers published (atomic) */
    unsigned int *slots;         /* cluster: STRATA__CLUSTER_SLOTS entries, each a server index (atomic) */
    strata__mutex mu;            /* serialises adding servers */
    route_server servers[1];     /* cap of them */
};

static void set_server(route_server *s, const char *host, size_t hostlen, int port)
{
    snprintf(s->host, sizeof s->host, "%.*s", (int)hostlen, host);
    s->port = port;
    snprintf(s->who, sizeof s->who, "redis %.*s:%d", (int)hostlen, host, port);
}

int strata__route_new(strata__redis_route **out, const strata__config *cfg)
{
    strata__redis_route *r;
    size_t i, cap;
    *out = NULL;
    if (!cfg->cluster && cfg->nservers != 1)
        return strata__error(STRATA_EURL, "redis backend takes exactly one server (got %zu)", cfg->nservers);
    if (cfg->nservers == 0 || cfg->nservers > STRATA__ROUTE_MAX_NODES)
        return strata__error(STRATA_EURL, "redis backend: %zu seed servers (1-%d)", cfg->nservers,
                             STRATA__ROUTE_MAX_NODES);
    for (i = 0; i < cfg->nservers; i++)
        if (cfg->servers[i].host[0] == '\0' || cfg->servers[i].port <= 0 || cfg->servers[i].port > 65535)
            return strata__error(STRATA_EURL, "redis backend: bad server address \"%s:%d\"", cfg->servers[i].host,
                                 cfg->servers[i].port);
    cap = cfg->cluster ? STRATA__ROUTE_MAX_NODES : 1;
    if ((r = calloc(1, sizeof *r + (cap - 1) * sizeof r->servers[0])) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory opening the redis backend");
    if (cfg->cluster && (r->slots = calloc(STRATA__CLUSTER_SLOTS, sizeof *r->slots)) == NULL) {
        free(r);
        return strata__error(STRATA_ENOMEM, "out of memory for the cluster slot map");
    }
    if (strata__mutex_init(&r->mu) != 0) {
        free(r->slots);
        free(r);
        return strata__error(STRATA_ENOMEM, "cannot create the route's mutex");
    }
    r->cluster = cfg->cluster;
    r->cap = cap;
    for (i = 0; i < cfg->nservers; i++)
        set_server(&r->servers[i], cfg->servers[i].host, strlen(cfg->servers[i].host), cfg->servers[i].port);
    r->n = (unsigned int)cfg->nservers; /* every slot on seed 0 until a map is learnt */
    *out = r;
    return 0;
}

void strata__route_free(strata__redis_route *r)
{
    if (r == NULL)
        return;
    strata__mutex_destroy(&r->mu);
    free(r->slots);
    free(r);
}

unsigned int strata__route_key(const strata__redis_route *r, const char *key, size_t keylen)
{
    if (!r->cluster)
        return 0;
    return strata__atomic_load(&r->slots[strata__cluster_slot(key, keylen)]);
}

size_t strata__route_count(const strata__redis_route *r)
{
    return strata__atomic_load(&r->n);
}

const char *strata__route_host(const strata__redis_route *r, unsigned int i)
{
    return r->servers[i < strata__atomic_load(&r->n) ? i : 0].host;
}

int strata__route_port(const strata__redis_route *r, unsigned int i)
{
    return r->servers[i < strata__atomic_load(&r->n) ? i : 0].port;
}

const char *strata__route_who(const strata__redis_route *r, unsigned int i)
{
    return r->servers[i < strata__atomic_load(&r->n) ? i : 0].who;
}

int strata__route_is_cluster(const strata__redis_route *r)
{
    return r->cluster;
}

size_t strata__route_capacity(const strata__redis_route *r)
{
    return r->cap;
}

unsigned int strata__route_slot_server(const strata__redis_route *r, unsigned int slot)
{
    return r->cluster ? strata__atomic_load(&r->slots[slot & (STRATA__CLUSTER_SLOTS - 1)]) : 0;
}

int strata__route_node(strata__redis_route *r, const char *host, size_t hostlen, int port, unsigned int *out)
{
    unsigned int i, n;
    int rc = 0;
    if (hostlen == 0 || hostlen >= sizeof r->servers[0].host || port <= 0 || port > 65535)
        return strata__error(STRATA_EBACKEND, "redis cluster: bad node address \"%.*s:%d\"",
                             (int)(hostlen > 80 ? 80 : hostlen), host, port);
    strata__mutex_lock(&r->mu);
    n = r->n;
    for (i = 0; i < n; i++)
        if (r->servers[i].port == port && strlen(r->servers[i].host) == hostlen &&
            memcmp(r->servers[i].host, host, hostlen) == 0)
            break;
    if (i == n) {
        if (n >= r->cap) {
            rc = strata__error(STRATA_EBACKEND, "redis cluster: more than %zu nodes", r->cap);
        } else {
            set_server(&r->servers[n], host, hostlen, port);
            strata__atomic_store(&r->n, n + 1);
        }
    }
    strata__mutex_unlock(&r->mu);
    *out = i;
    return rc;
}

void strata__route_moved(strata__redis_route *r, unsigned int slot, unsigned int i)
{
    if (r->cluster && slot < STRATA__CLUSTER_SLOTS && i < strata__atomic_load(&r->n))
        strata__atomic_store(&r->slots[slot], i);
}

/* [start, end, [ip, port, id], replicas...] entries. Nodes announced with
 * an empty ip live on the host the reply came from. */
int strata__route_load(strata__redis_route *r, unsigned int from, const redisReply *slots)
{
    size_t e;
    const char *who = strata__route_who(r, from);
    if (!r->cluster)
        return 0;
    if (slots == NULL || slots->type != REDIS_REPLY_ARRAY)
        return strata__error(STRATA_EBACKEND, "%s: CLUSTER SLOTS: not an array", who);
    for (e = 0; e < slots->elements; e++) {
        const redisReply *x = slots->element[e];
        if (x->type != REDIS_REPLY_ARRAY || x->elements < 3 || x->element[0]->type != REDIS_REPLY_INTEGER ||
            x->element[1]->type != REDIS_REPLY_INTEGER || x->element[2]->type != REDIS_REPLY_ARRAY ||
            x->element[2]->elements < 2 || x->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            x->element[2]->element[1]->type != REDIS_REPLY_INTEGER || x->element[0]->integer < 0 ||
            x->element[1]->integer >= STRATA__CLUSTER_SLOTS || x->element[0]->integer > x->element[1]->integer)
            return strata__error(STRATA_EBACKEND, "%s: CLUSTER SLOTS: unreadable entry %zu", who, e);
    }
    for (e = 0; e < slots->elements; e++) {
        const redisReply *x = slots->element[e], *node = x->element[2];
        const char *host = node->element[0]->str;
        size_t hostlen = node->element[0]->len;
        char same[256];
        unsigned int i;
        long long s;
        int rc;
        if (hostlen == 0) { /* copied: the new server's address is written beside it */
            hostlen = (size_t)snprintf(same, sizeof same, "%s", strata__route_host(r, from));
            host = same;
        }
        if ((rc = strata__route_node(r, host, hostlen, (int)node->element[1]->integer, &i)) < 0)
            return rc;
        for (s = x->element[0]->integer; s <= x->element[1]->integer; s++)
            strata__atomic_store(&r->slots[s], i);
    }
    return 0;
}
