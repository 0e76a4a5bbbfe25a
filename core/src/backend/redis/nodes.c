/* The blocking driver's servers and the cluster conversation (nodes.h). */
#include "nodes.h"
#include "error.h"
#include "backend/redis/redirect.h"
#include "backend/redis/slot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFRESH_MIN_INTERVAL_MS 100 /* a dead node's callers do not each re-read the map */
#define TRYAGAIN_SLEEP_MS 20
#define CLUSTERDOWN_SLEEP_MS 100

static int is_cluster(const strata__redis_nodes *n)
{
    return strata__route_is_cluster(n->route);
}

static int pool_of(strata__redis_nodes *n, unsigned int i, strata__redis_pool **out)
{
    strata__redis_pool *p = strata__atomic_load(&n->pools[i]);
    int rc = 0;
    if (p == NULL) {
        strata__mutex_lock(&n->mu);
        if ((p = n->pools[i]) == NULL &&
            (rc = strata__pool_open(&p, n->cfg, strata__route_host(n->route, i), strata__route_port(n->route, i))) == 0)
            strata__atomic_store(&n->pools[i], p);
        strata__mutex_unlock(&n->mu);
    }
    *out = p;
    return rc;
}

static int acquire_on(strata__redis_nodes *n, unsigned int i, strata__pool_conn **conn)
{
    strata__redis_pool *p;
    int rc;
    *conn = NULL;
    if ((rc = pool_of(n, i, &p)) < 0)
        return rc;
    if ((rc = strata__pool_acquire(p, conn)) != 0) {
        *conn = NULL;
        if (is_cluster(n))
            strata__atomic_store(&n->refresh_due, 1u); /* a failover may have moved its slots */
    }
    return rc;
}

static void release_on(strata__redis_nodes *n, unsigned int i, strata__pool_conn *conn)
{
    if (conn != NULL)
        strata__pool_release(strata__atomic_load(&n->pools[i]), conn);
}

/* CLUSTER SLOTS on conn (server i) replaces the map. */
static int load_map(strata__redis_nodes *n, unsigned int i, strata__pool_conn *conn)
{
    strata__redis_req q = {{0, 0, 0}, 0};
    redisReply *r[1] = {NULL};
    int rc;
    if ((rc = strata__rq_cluster_slots(&q)) == 0 &&
        (rc = strata__pool_exchange(strata__atomic_load(&n->pools[i]), conn, &q, r, "CLUSTER SLOTS")) == 0) {
        if (r[0]->type == REDIS_REPLY_ERROR)
            rc = strata__error(STRATA_EBACKEND, "%s: CLUSTER SLOTS refused: %.*s (is it a cluster node?)",
                               strata__route_who(n->route, i), (int)(r[0]->len > 200 ? 200 : r[0]->len), r[0]->str);
        else
            rc = strata__route_load(n->route, i, r[0]);
    }
    if (r[0])
        freeReplyObject(r[0]);
    strata__redis_req_free(&q);
    return rc;
}

/* Moves the call to server i (releasing what it held). */
static int switch_to(strata__redis_nodes *n, strata__redis_at *at, strata__pool_conn **conn, unsigned int i)
{
    release_on(n, at->server, *conn);
    at->server = i;
    return acquire_on(n, i, conn);
}

/* A due refresh, on the connection the call holds anyway (a dead node's
 * callers cannot refresh, the others' can), at most every
 * REFRESH_MIN_INTERVAL_MS. Never fails the call: the map stays as it was. */
static int maybe_refresh(strata__redis_nodes *n, strata__redis_at *at, strata__pool_conn **conn, int force)
{
    int64_t now;
    unsigned int want;
    int failed = 0;
    if (!force && !strata__atomic_load(&n->refresh_due))
        return 0;
    if (strata__mutex_trylock(&n->refresh_mu) != 0)
        return 0; /* another caller is at it */
    now = strata__now_mono_ms();
    if (force || now >= n->refresh_after_ms) {
        strata__atomic_store(&n->refresh_due, 0u);
        n->refresh_after_ms = now + REFRESH_MIN_INTERVAL_MS;
        if (load_map(n, at->server, *conn) < 0) {
            strata__atomic_store(&n->refresh_due, 1u);
            failed = 1;
        }
    }
    strata__mutex_unlock(&n->refresh_mu);
    if (failed) /* a timed-out CLUSTER SLOTS closed the connection: go on with a live one */
        return switch_to(n, at, conn, at->server);
    if (at->slot < 0 || (want = strata__route_slot_server(n->route, (unsigned int)at->slot)) == at->server)
        return 0;
    return switch_to(n, at, conn, want);
}

int strata__nodes_open(strata__redis_nodes *n, strata__redis_route *route, const strata__config *cfg)
{
    size_t i, seeds = strata__route_count(route);
    int rc;
    memset(n, 0, sizeof *n);
    n->route = route;
    n->cfg = cfg;
    n->timeout_ms = cfg->opts.timeout_ms > 0 ? cfg->opts.timeout_ms : 1000;
    if (strata__mutex_init(&n->mu) != 0)
        return strata__error(STRATA_ENOMEM, "cannot create the redis backend's mutex");
    if (strata__mutex_init(&n->refresh_mu) != 0) {
        strata__mutex_destroy(&n->mu);
        return strata__error(STRATA_ENOMEM, "cannot create the redis backend's mutex");
    }
    for (i = 0; i < seeds; i++) {
        strata__redis_pool *p;
        if ((rc = pool_of(n, (unsigned int)i, &p)) < 0)
            return rc;
    }
    if (!is_cluster(n) || cfg->io_host)
        return 0;
    n->refresh_due = 1;
    for (i = 0; i < seeds; i++) {
        strata__pool_conn *conn;
        if (acquire_on(n, (unsigned int)i, &conn) != 0)
            continue;
        rc = load_map(n, (unsigned int)i, conn);
        release_on(n, (unsigned int)i, conn);
        if (rc == 0) {
            n->refresh_due = 0;
            n->refresh_after_ms = strata__now_mono_ms() + REFRESH_MIN_INTERVAL_MS;
            break;
        }
    }
    return 0;
}

void strata__nodes_close(strata__redis_nodes *n)
{
    size_t i;
    for (i = 0; i < STRATA__ROUTE_MAX_NODES; i++)
        strata__pool_close(n->pools[i]);
    strata__mutex_destroy(&n->refresh_mu);
    strata__mutex_destroy(&n->mu);
}

strata__redis_at strata__nodes_at(const strata__redis_nodes *n, const char *key, size_t keylen)
{
    strata__redis_at at = {0, -1, 0};
    if (is_cluster(n)) {
        at.slot = (int)strata__cluster_slot(key, keylen);
        at.server = strata__route_slot_server(n->route, (unsigned int)at.slot);
    }
    return at;
}

int strata__nodes_acquire(strata__redis_nodes *n, strata__redis_at *at, strata__pool_conn **conn)
{
    int rc;
    if (at->deadline_ms == 0 && is_cluster(n))
        at->deadline_ms = strata__now_mono_ms() + n->timeout_ms;
    rc = acquire_on(n, at->server, conn);
    if (rc == 0 && is_cluster(n))
        rc = maybe_refresh(n, at, conn, 0);
    return rc;
}

void strata__nodes_release(strata__redis_nodes *n, const strata__redis_at *at, strata__pool_conn *conn)
{
    release_on(n, at->server, conn);
}

/* q with ASKING before its commands; the ASKING replies are dropped. */
static int exchange_asking(strata__redis_pool *p, strata__pool_conn *conn, const strata__redis_req *q,
                           redisReply **r, const char *what)
{
    strata__redis_req aq = {{0, 0, 0}, 0};
    unsigned char *mask = calloc(2 * (size_t)q->nreplies + 1, 1);
    redisReply **all = calloc(2 * (size_t)q->nreplies + 1, sizeof *all);
    unsigned int i, j = 0;
    int rc;
    if (mask == NULL || all == NULL)
        rc = strata__error(STRATA_ENOMEM, "out of memory for ASKING");
    else if ((rc = strata__rq_asking(q, &aq, mask)) == 0 && (rc = strata__pool_exchange(p, conn, &aq, all, what)) == 0)
        for (i = 0; i < aq.nreplies; i++) {
            if (mask[i])
                freeReplyObject(all[i]);
            else
                r[j++] = all[i];
        }
    strata__redis_req_free(&aq);
    free(all);
    free(mask);
    return rc;
}

int strata__nodes_exchange(strata__redis_nodes *n, strata__redis_at *at, strata__pool_conn **conn,
                           const strata__redis_req *q, redisReply **r, const char *what)
{
    int64_t deadline;
    int hops = 0, asking = 0, rc;
    char last[300];

    if (!is_cluster(n))
        return strata__pool_exchange(strata__atomic_load(&n->pools[at->server]), *conn, q, r, what);
    if (at->deadline_ms == 0)
        at->deadline_ms = strata__now_mono_ms() + n->timeout_ms;
    deadline = at->deadline_ms;
    for (;;) {
        strata__redis_pool *p = strata__atomic_load(&n->pools[at->server]);
        strata__redirect d;
        char host[256];
        int64_t left;
        unsigned int to = at->server;

        rc = asking ? exchange_asking(p, *conn, q, r, what) : strata__pool_exchange(p, *conn, q, r, what);
        if (rc != 0) {
            strata__atomic_store(&n->refresh_due, 1u);
            return rc;
        }
        if (strata__rp_redirect(r, q->nreplies, &d) == STRATA__REDIRECT_NONE)
            return 0;
        if (d.kind == STRATA__REDIRECT_MOVED || d.kind == STRATA__REDIRECT_ASK) {
            if (d.hostlen == 0) {
                snprintf(host, sizeof host, "%s", strata__route_host(n->route, at->server));
            } else {
                snprintf(host, sizeof host, "%.*s", (int)(d.hostlen < sizeof host ? d.hostlen : sizeof host - 1),
                         d.host);
            }
            snprintf(last, sizeof last, "%s %u %s:%d from %s", d.kind == STRATA__REDIRECT_MOVED ? "MOVED" : "ASK",
                     d.slot, host, d.port, strata__route_who(n->route, at->server));
        } else {
            snprintf(last, sizeof last, "%s from %s", d.kind == STRATA__REDIRECT_TRYAGAIN ? "TRYAGAIN" : "CLUSTERDOWN",
                     strata__route_who(n->route, at->server));
        }
        strata__redis_replies_free(r, q->nreplies);
        if ((d.kind == STRATA__REDIRECT_MOVED || d.kind == STRATA__REDIRECT_ASK) &&
            hops++ >= STRATA__NODES_MAX_REDIRECTS)
            return strata__error(STRATA_EBACKEND, "redis cluster: %s: more than %d redirects (last: %s)", what,
                                 STRATA__NODES_MAX_REDIRECTS, last);
        if ((left = deadline - strata__now_mono_ms()) <= 0)
            return strata__error(STRATA_ETIMEOUT, "redis cluster: %s: redirects and retries took longer than "
                                 "timeout_ms (%lld ms; last: %s)", what, (long long)n->timeout_ms, last);
        switch (d.kind) {
        case STRATA__REDIRECT_MOVED:
            if ((rc = strata__route_node(n->route, host, strlen(host), d.port, &to)) < 0)
                return rc;
            if (hops > 2) /* nodes disagree for a moment (a slot handed over, gossip on its way): let it settle */
                strata__sleep_ms(left < TRYAGAIN_SLEEP_MS ? left : TRYAGAIN_SLEEP_MS);
            strata__route_moved(n->route, d.slot, to);
            strata__atomic_store(&n->refresh_due, 1u); /* slots move in groups: re-read the map soon */
            asking = 0;
            break;
        case STRATA__REDIRECT_ASK:
            if ((rc = strata__route_node(n->route, host, strlen(host), d.port, &to)) < 0)
                return rc;
            asking = 1; /* the map stays: the slot is still the source's */
            break;
        case STRATA__REDIRECT_TRYAGAIN:
            strata__sleep_ms(left < TRYAGAIN_SLEEP_MS ? left : TRYAGAIN_SLEEP_MS);
            break;
        default: /* CLUSTERDOWN: a failover may be under way */
            strata__sleep_ms(left < CLUSTERDOWN_SLEEP_MS ? left : CLUSTERDOWN_SLEEP_MS);
            asking = 0;
            if ((rc = maybe_refresh(n, at, conn, 1)) != 0)
                return rc;
            continue;
        }
        if (to != at->server && (rc = switch_to(n, at, conn, to)) != 0)
            return rc;
    }
}

/* After server `failed` broke: the map re-read from another node that
 * answers (a failover moves slots; a node that left has given them away),
 * before the deadline. 0 when one answered. */
static int refresh_elsewhere(strata__redis_nodes *n, unsigned int failed, int64_t deadline)
{
    size_t i, count = strata__route_count(n->route);
    int rc = -1;
    if (strata__mutex_trylock(&n->refresh_mu) != 0)
        return -1;
    for (i = 0; i < count && rc != 0 && strata__now_mono_ms() < deadline; i++) {
        strata__pool_conn *conn;
        if (i == failed || acquire_on(n, (unsigned int)i, &conn) != 0)
            continue;
        rc = load_map(n, (unsigned int)i, conn);
        release_on(n, (unsigned int)i, conn);
    }
    if (rc == 0) {
        strata__atomic_store(&n->refresh_due, 0u);
        n->refresh_after_ms = strata__now_mono_ms() + REFRESH_MIN_INTERVAL_MS;
    }
    strata__mutex_unlock(&n->refresh_mu);
    return rc;
}

int strata__nodes_run(strata__redis_nodes *n, strata__redis_at *at, const strata__redis_req *q, redisReply **r,
                      const char *what)
{
    strata__pool_conn *conn;
    int rc;
    unsigned int failed;
    if (!is_cluster(n))
        return strata__pool_run(strata__atomic_load(&n->pools[0]), q, r, what);
    if ((rc = strata__nodes_acquire(n, at, &conn)) == 0) {
        rc = strata__nodes_exchange(n, at, &conn, q, r, what);
        strata__nodes_release(n, at, conn);
    }
    /* A node that refuses or dropped the connection (not a slow one: that
     * took the deadline already) may no longer own the slot: re-read the map
     * elsewhere and, when the slot moved, try its new owner once. */
    if (rc != STRATA_EBACKEND || at->slot < 0 || strata__now_mono_ms() >= at->deadline_ms)
        return rc;
    failed = at->server;
    if (refresh_elsewhere(n, failed, at->deadline_ms) != 0 ||
        (at->server = strata__route_slot_server(n->route, (unsigned int)at->slot)) == failed) {
        at->server = failed;
        return rc;
    }
    if ((rc = strata__nodes_acquire(n, at, &conn)) == 0) {
        rc = strata__nodes_exchange(n, at, &conn, q, r, what);
        strata__nodes_release(n, at, conn);
    }
    return rc;
}

void strata__nodes_run_each(strata__redis_nodes *n, size_t k, const unsigned int *servers,
                            const strata__redis_req *qs, redisReply **const *rs, int *rcs, const char *what)
{
    strata__pool_conn *conn[STRATA__ROUTE_MAX_NODES];
    size_t order[STRATA__ROUTE_MAX_NODES], j, m, t;
    for (j = 0; j < k; j++) { /* insertion sort by server: k is the node count */
        for (m = j; m > 0 && servers[order[m - 1]] > servers[j]; m--)
            order[m] = order[m - 1];
        order[m] = j;
    }
    for (t = 0; t < k; t++) {
        j = order[t];
        conn[j] = NULL;
        if ((rcs[j] = acquire_on(n, servers[j], &conn[j])) == 0 &&
            (rcs[j] = strata__pool_send(strata__atomic_load(&n->pools[servers[j]]), conn[j], &qs[j], what)) != 0)
            strata__atomic_store(&n->refresh_due, 1u);
    }
    for (t = 0; t < k; t++) {
        j = order[t];
        if (rcs[j] == 0 &&
            (rcs[j] = strata__pool_recv(strata__atomic_load(&n->pools[servers[j]]), conn[j], qs[j].nreplies, rs[j],
                                        what)) != 0)
            strata__atomic_store(&n->refresh_due, 1u);
        release_on(n, servers[j], conn[j]);
    }
}
