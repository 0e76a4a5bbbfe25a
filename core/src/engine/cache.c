/* Handle lifetime, key checks, envelope writes, metrics and the breaker. */
#include "cache.h"
#include "error.h"
#include "writes.h"
#include "policy/freshness.h"
#include "engine/coherence.h"
#include "engine/hotkeys.h"
#include "engine/events.h"
#include "backend/redis/redis.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

const char *strata_version(void)
{
    return STR(STRATA_VERSION_MAJOR) "." STR(STRATA_VERSION_MINOR) "." STR(STRATA_VERSION_PATCH);
}

void strata_value_dispose(strata_value *v)
{
    if (v == NULL)
        return;
    free(v->priv_);
    memset(v, 0, sizeof *v);
}

int strata_cache_new(strata_cache **out, const char *url, const strata_options *opts)
{
    strata_cache *c;
    int rc;
    if (out == NULL)
        return strata__error(STRATA_EINVAL, "out pointer is NULL");
    *out = NULL;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory");
    if ((rc = strata__config_parse(&c->cfg, url, opts)) < 0) {
        free(c);
        return rc;
    }
    c->cfg.opts.ns = c->cfg.ns;
    c->cfg.instance = strata__random_u64();
    switch (c->cfg.scheme) {
    case STRATA__SCHEME_REDIS:
        if ((rc = strata__backend_redis_open(&c->backend, &c->cfg)) == 0)
            c->route = strata__redis_backend_route(c->backend);
        break;
    case STRATA__SCHEME_MEMCACHED: rc = strata__backend_memcached_open(&c->backend, &c->cfg); break;
    default: rc = strata__backend_memory_open(&c->backend, &c->cfg); break;
    }
    if (rc == 0 && c->cfg.opts.l1)
        rc = strata__l1_new(&c->l1, c->cfg.opts.l1_max_bytes, c->cfg.opts.l1_max_entries);
    if (rc == 0 && c->cfg.refresh_threads)
        rc = strata__refresher_new(&c->refresher, c->cfg.refresh_threads);
    if (rc == 0)
        rc = strata__tags_new(&c->tags, c->cfg.opts.tag_cache_ms);
    if (rc == 0)
        rc = strata__backend_timed(&c->backend, &c->metrics.backend);
    if (rc == 0 && c->l1)
        strata__l1_set_validator(c->l1, strata__tags_l1_check, c, strata__tags_generation(c->tags));
    if (rc == 0)
        rc = strata__events_new(&c->events, c->cfg.io_host);
    if (rc == 0 && c->cfg.opts.hot_sketch_width)
        rc = strata__hot_new(&c->hot, &c->cfg.opts);
    if (rc == 0)
        rc = strata__l1_gate_start(c);
    if (rc < 0) {
        strata__refresher_free(c->refresher);
        if (c->backend)
            c->backend->ops->close(c->backend);
        strata__hot_free(c->hot);
        strata__l1_free(c->l1);
        strata__tags_free(c->tags);
        strata__events_free(c->events);
        free(c);
        return rc;
    }
    strata__mutex_init(&c->flights_lock);
    c->stats.version = STRATA_STATS_VERSION;
    if ((rc = strata__op_pool_new(&c->op_pool)) < 0 || (rc = strata__wb_new(&c->wb, c)) < 0) {
        c->wb = NULL; /* everything else is up: the normal teardown applies */
        strata_cache_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void strata_cache_free(strata_cache *c)
{
    if (c == NULL)
        return;
    strata__op_pool_close(c->op_pool); /* first: an op freed later must not touch L1 (op.c) */
    strata__wb_free(c->wb); /* drains first: its flushers use the backend */
    strata__refresher_free(c->refresher); /* before the backend: queued fills need it */
    strata__l1_gate_stop(c);              /* its thread writes to L1 */
    c->backend->ops->close(c->backend);
    strata__hot_free(c->hot);
    strata__l1_free(c->l1);
    strata__tags_free(c->tags);
    strata__events_free(c->events);
    strata__mutex_destroy(&c->flights_lock);
    free(c);
}

int strata__check_key(const strata_cache *c, const char *key, size_t keylen)
{
    if (c == NULL)
        return strata__error(STRATA_EINVAL, "cache handle is NULL");
    if (key == NULL)
        return strata__error(STRATA_EINVAL, "key is NULL");
    if (keylen == 0)
        return strata__error(STRATA_EKEY, "key is empty");
    if (keylen > STRATA__MAX_KEY)
        return strata__error(STRATA_EKEY, "key is %zu bytes; the limit is %d", keylen, STRATA__MAX_KEY);
    return 0;
}

int strata__full_key(strata_cache *c, const char *key, size_t keylen, char *buf)
{
    int rc = strata__check_key(c, key, keylen);
    if (rc < 0)
        return rc;
    memcpy(buf, c->cfg.ns, c->cfg.nslen);
    buf[c->cfg.nslen] = ':';
    memcpy(buf + c->cfg.nslen + 1, key, keylen);
    return (int)(c->cfg.nslen + 1 + keylen);
}

const char *strata__key_full(strata_cache *c, strata__key *k, char *buf)
{
    if (k->full == NULL) {
        memcpy(buf, c->cfg.ns, c->cfg.nslen);
        buf[c->cfg.nslen] = ':';
        memcpy(buf + c->cfg.nslen + 1, k->ptr, k->len);
        k->full = buf;
        k->fulllen = c->cfg.nslen + 1 + k->len;
    }
    return k->full;
}

int strata__encode_value(strata_cache *c, strata__bytes *out, const char *val, size_t vallen,
                         int negative, int64_t ttl_ms, int64_t stale_ms, int64_t cost_ms,
                         int64_t now_ms, int64_t *fresh_until, int64_t *backend_ttl_ms)
{
    return strata__encode_value_tags(c, out, val, vallen, negative, ttl_ms, stale_ms, cost_ms, NULL, 0,
                                     now_ms, fresh_until, backend_ttl_ms);
}

int strata__decode_stored(strata_cache *c, const char *data, size_t len, strata__envelope *e)
{
    int rc = strata__env_decode(data, len, e);
    if (rc == STRATA__ENV_DAMAGED)
        STRATA__COUNT(c, payload_crc_errors);
    return rc;
}

int strata__encode_value_tags(strata_cache *c, strata__bytes *out, const char *val, size_t vallen,
                              int negative, int64_t ttl_ms, int64_t stale_ms, int64_t cost_ms,
                              const strata__env_tag *tags, size_t ntags,
                              int64_t now_ms, int64_t *fresh_until, int64_t *backend_ttl_ms)
{
    return strata__encode_value_ns(c, out, val, vallen, negative, ttl_ms, stale_ms, cost_ms, tags, ntags, NULL,
                                   now_ms, fresh_until, backend_ttl_ms);
}

int strata__encode_value_ns(strata_cache *c, strata__bytes *out, const char *val, size_t vallen, int negative,
                            int64_t ttl_ms, int64_t stale_ms, int64_t cost_ms, const strata__env_tag *tags,
                            size_t ntags, const uint64_t *known_ns, int64_t now_ms, int64_t *fresh_until,
                            int64_t *backend_ttl_ms)
{
    strata__envelope e;
    size_t need, max = c->backend->ops->max_value_size(c->backend);
    int rc;
    memset(&e, 0, sizeof e);
    e.ntags = strata__tags_with_ns(c, tags, ntags, e.tags, known_ns, &rc); /* after a clear: the namespace stamp */
    if (rc < 0)
        return rc;
    if (ttl_ms == STRATA_TTL_FOREVER) {
        /* Never expires: far enough that now + the backend TTL cannot overflow. */
        e.fresh_until_ms = e.stale_until_ms = STRATA__TTL_NEVER * 2;
    } else {
        if (ttl_ms <= 0)
            ttl_ms = negative ? c->cfg.opts.neg_ttl_ms : c->cfg.opts.ttl_ms;
        if (stale_ms < 0)
            stale_ms = negative ? 0 : c->cfg.opts.stale_ms;
        ttl_ms = strata__jitter_ttl(ttl_ms, c->cfg.opts.jitter_pct, strata__random_unit());
        e.fresh_until_ms = now_ms + ttl_ms;
        e.stale_until_ms = e.fresh_until_ms + stale_ms;
    }
    e.flags = negative ? STRATA__ENV_FLAG_NEGATIVE : 0;
    if (c->cfg.payload_crc)
        e.flags |= STRATA__ENV_FLAG_PAYLOAD_CRC;
    e.created_ms = now_ms;
    e.cost_ms = cost_ms < 0 ? 0 : cost_ms > 0xffffffffll ? 0xffffffffu : (uint32_t)cost_ms;
    e.payload = val;
    e.payload_len = vallen;
    need = strata__env_size(&e);
    if (vallen > 0xffffffffu || (max && need > max))
        return strata__error(STRATA_ETOOBIG, "value of %zu bytes is too big for the %s backend "
                             "(limit %zu bytes including the %d-byte envelope)",
                             vallen, c->backend->ops->name, max, STRATA__ENV_HEADER);
    if ((rc = strata__bytes_reserve(out, need)) < 0)
        return rc;
    out->len = strata__env_encode(&e, out->data, out->cap);
    if (out->len == 0)
        return strata__error(STRATA_EINVAL, "value cannot be encoded");
    *fresh_until = e.fresh_until_ms;
    *backend_ttl_ms = e.stale_until_ms - now_ms;
    return 0;
}

/* Breaker: after `breaker_threshold` consecutive outages the backend is
 * skipped for breaker_cooldown_ms, then one probe call decides.
 *
 * The probe belongs to the thread whose call took it, so the internal calls
 * of that one API call (write_behind -> set, write_through -> invalidate)
 * ride on it instead of being refused by it. Whatever ends the probe's first
 * backend call releases it (success closes the breaker, an outage reopens
 * it, anything else just frees it), and a probe whose call never reached the
 * backend lapses after one cooldown plus one deadline, so no path can keep
 * the breaker open against a healthy server. */
static STRATA__TLS const strata_cache *probe_cache; /* the cache whose probe this thread holds */
static STRATA__TLS int64_t probe_until;             /* ... and the lapse it was taken with */

static int holds_probe(const strata_cache *c, int64_t now)
{
    return probe_cache == c && now < probe_until && strata__atomic_load(&c->breaker_probe_until) == probe_until;
}

static void release_probe(strata_cache *c)
{
    if (probe_cache != c)
        return;
    probe_cache = NULL;
    {
        int64_t mine = probe_until;
        strata__atomic_cas(&c->breaker_probe_until, &mine, 0); /* unless it lapsed to another */
    }
}

int strata__breaker_allow(strata_cache *c)
{
    int64_t until = strata__atomic_load(&c->breaker_open_until), now, held;
    if (until == 0)
        return 0;
    now = strata__now_mono_ms();
    if (holds_probe(c, now))
        return 0; /* an internal call of the probing call */
    held = strata__atomic_load(&c->breaker_probe_until);
    if (now >= until && (held == 0 || now >= held)) {
        int64_t lapse = now + c->cfg.opts.breaker_cooldown_ms + c->cfg.opts.connect_timeout_ms +
                        c->cfg.opts.timeout_ms;
        if (strata__atomic_cas(&c->breaker_probe_until, &held, lapse)) {
            probe_cache = c;
            probe_until = lapse;
            return 0; /* this caller is the probe */
        }
    }
    return strata__error(STRATA_EBREAKER, "circuit breaker open: %s backend failed %u times in a row",
                         c->backend->ops->name, c->cfg.opts.breaker_threshold);
}

int strata__backend_result(strata_cache *c, int rc)
{
    if (rc == STRATA_ETIMEOUT || rc == STRATA_EBACKEND) {
        unsigned int n = strata__atomic_add(&c->consecutive_failures, 1);
        if (rc == STRATA_ETIMEOUT)
            STRATA__COUNT(c, timeouts);
        STRATA__COUNT(c, backend_errors);
        if (c->cfg.opts.breaker_threshold && n >= c->cfg.opts.breaker_threshold) {
            if (strata__atomic_load(&c->breaker_open_until) == 0)
                STRATA__COUNT(c, breaker_opens);
            strata__atomic_store(&c->breaker_open_until, strata__now_mono_ms() + c->cfg.opts.breaker_cooldown_ms);
        }
    } else if (rc >= 0 || rc == STRATA__EREFUSED || rc == STRATA_ELEASE || rc == STRATA_ETOOBIG) {
        /* The server answered, even if only to refuse: it is up. */
        if (rc == STRATA__EREFUSED) {
            STRATA__COUNT(c, backend_errors);
            rc = STRATA_EBACKEND;
        }
        if (strata__atomic_load(&c->consecutive_failures))
            strata__atomic_store(&c->consecutive_failures, 0);
        if (strata__atomic_load(&c->breaker_open_until))
            strata__atomic_store(&c->breaker_open_until, 0);
    }
    release_probe(c);
    return rc;
}

uint64_t strata__l1_written(strata_cache *c, const strata__key *k)
{
    if (c->l1 == NULL)
        return 0;
    strata__l1_del(c->l1, k);
    return strata__l1_epoch(c->l1, k);
}

uint64_t strata__l1_writing(strata_cache *c, const strata__key *k)
{
    return c->l1 ? strata__l1_epoch(c->l1, k) : 0;
}

static int64_t l1_serve_until(strata_cache *c, int64_t now_ms, int64_t fresh_until_ms)
{
    int64_t serve_until = now_ms + c->cfg.opts.l1_ttl_ms;
    return serve_until > fresh_until_ms ? fresh_until_ms : serve_until;
}

void strata__l1_wrote(strata_cache *c, const strata__key *k, uint64_t epoch, int ok, const char *val,
                      size_t vallen, int tagged, int64_t now_ms, int64_t fresh_until_ms, int64_t stale_until_ms)
{
    if (c->l1)
        strata__l1_settle(c->l1, k, epoch, ok ? val : NULL, vallen, tagged, l1_serve_until(c, now_ms, fresh_until_ms),
                          fresh_until_ms, stale_until_ms);
}

void strata__l1_store(strata_cache *c, const strata__key *k, const char *val, size_t vallen,
                      int negative, int tagged, int64_t now_ms, int64_t fresh_until_ms,
                      int64_t stale_until_ms, uint64_t epoch)
{
    int64_t serve_until = l1_serve_until(c, now_ms, fresh_until_ms);
    if (c->l1 == NULL)
        return;
    if (tagged)
        strata__l1_put_tagged(c->l1, k, val, vallen, negative, serve_until, fresh_until_ms,
                              stale_until_ms, epoch);
    else
        strata__l1_put(c->l1, k, val, vallen, negative, serve_until, fresh_until_ms, stale_until_ms,
                       epoch);
}

static int serve_envelope(strata_cache *c, const strata__key *k, const strata__envelope *e, int64_t now_ms,
                          uint64_t epoch, strata_value *out, int copy)
{
    int negative = (e->flags & STRATA__ENV_FLAG_NEGATIVE) != 0;
    int rc;
    if (now_ms >= e->stale_until_ms)
        return STRATA_MISS;
    if (!copy) {
        out->data = e->payload;
        out->len = e->payload_len;
    } else if ((rc = strata__value_set(out, e->payload, e->payload_len)) < 0) {
        return rc;
    }
    out->level = STRATA_LEVEL_BACKEND;
    out->ttl_ms = e->fresh_until_ms - now_ms;
    out->stale = now_ms >= e->fresh_until_ms;
    if (out->stale) {
        if (negative)
            return STRATA_MISS; /* a stale "not found" is worth nothing */
        out->level = STRATA_LEVEL_STALE;
        STRATA__COUNT(c, stale_hits);
        return STRATA_HIT_STALE;
    }
    if (strata__env_user_tags(e)) /* the namespace stamp alone: strata_clear drops L1 itself */
        strata__tags_l1_put(c, k, e, now_ms, epoch);
    else
        strata__l1_store(c, k, e->payload, e->payload_len, negative, 0, now_ms, e->fresh_until_ms,
                         e->stale_until_ms, epoch);
    if (negative) {
        STRATA__COUNT(c, negative_hits);
        return STRATA_NEGATIVE;
    }
    STRATA__COUNT(c, hits);
    return STRATA_OK;
}

int strata__serve_envelope(strata_cache *c, const strata__key *k, const strata__envelope *e,
                           int64_t now_ms, uint64_t epoch, strata_value *out)
{
    return serve_envelope(c, k, e, now_ms, epoch, out, 1);
}

int strata__serve_envelope_ref(strata_cache *c, const strata__key *k, const strata__envelope *e,
                               int64_t now_ms, uint64_t epoch, strata_value *out)
{
    return serve_envelope(c, k, e, now_ms, epoch, out, 0);
}

int strata_stats_get(strata_cache *c, strata_stats *out, unsigned int version)
{
    if (c == NULL || out == NULL)
        return strata__error(STRATA_EINVAL, "%s is NULL", c == NULL ? "cache handle" : "stats pointer");
    if (version < 1 || version > STRATA_STATS_VERSION)
        return strata__error(STRATA_EVERSION, "unknown strata_stats version %u (this library knows 1-%d)",
                             version, STRATA_STATS_VERSION);
    {
        strata_stats s;
        int64_t until = strata__atomic_load(&c->breaker_open_until);
        memcpy(&s, &c->stats, sizeof s);
        s.version = version;
        if (c->l1) {
            uint64_t hits, negative_hits;
            strata__l1_stats(c->l1, &s.l1_entries, &s.l1_bytes, &s.l1_evictions, &s.l1_fills_refused);
            strata__l1_hits(c->l1, &hits, &negative_hits); /* counted per reader slot */
            s.l1_hits += hits;
            s.negative_hits += negative_hits;
        }
        s.breaker_state = until == 0 ? 0 : strata__now_mono_ms() < until ? 1 : 2;
        /* A version 1 caller's struct ends at fail_open, a version 2 one at wb_backlog. */
        s.l1_link_up = (uint64_t)strata__coherence_link_up(c);
        memcpy(out, &s, version == 1   ? offsetof(strata_stats, fail_open) + sizeof s.fail_open
                        : version == 2 ? offsetof(strata_stats, wb_backlog) + sizeof s.wb_backlog
                                       : sizeof s);
    }
    return 0;
}
