/* Routing (route.h): a single node. */
#include "route.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct route_server {
    char host[256];
    int port;
    char who[280];
} route_server;

struct strata__redis_route {
    size_t n;
    route_server servers[1];
};

int strata__route_new(strata__redis_route **out, const strata__config *cfg)
{
    strata__redis_route *r;
    *out = NULL;
    if (cfg->nservers != 1)
        return strata__error(STRATA_EURL, "redis backend takes exactly one server (got %zu)", cfg->nservers);
    if (cfg->servers[0].host[0] == '\0' || cfg->servers[0].port <= 0 || cfg->servers[0].port > 65535)
        return strata__error(STRATA_EURL, "redis backend: bad server address \"%s:%d\"", cfg->servers[0].host,
                             cfg->servers[0].port);
    if ((r = calloc(1, sizeof *r)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory opening the redis backend");
    r->n = 1;
    snprintf(r->servers[0].host, sizeof r->servers[0].host, "%s", cfg->servers[0].host);
    r->servers[0].port = cfg->servers[0].port;
    snprintf(r->servers[0].who, sizeof r->servers[0].who, "redis %s:%d", r->servers[0].host, r->servers[0].port);
    *out = r;
    return 0;
}

void strata__route_free(strata__redis_route *r)
{
    free(r);
}

unsigned int strata__route_key(const strata__redis_route *r, const char *key, size_t keylen)
{
    (void)r;
    (void)key;
    (void)keylen;
    return 0;
}

size_t strata__route_count(const strata__redis_route *r)
{
    return r->n;
}

const char *strata__route_host(const strata__redis_route *r, unsigned int i)
{
    return r->servers[i < r->n ? i : 0].host;
}

int strata__route_port(const strata__redis_route *r, unsigned int i)
{
    return r->servers[i < r->n ? i : 0].port;
}

const char *strata__route_who(const strata__redis_route *r, unsigned int i)
{
    return r->servers[i < r->n ? i : 0].who;
}
