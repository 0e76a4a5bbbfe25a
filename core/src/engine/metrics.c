/* Latency histograms and the timed backend that feeds the backend one. */
#include "metrics.h"
#include "cache.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

#define LAST (STRATA_HISTOGRAM_BUCKETS - 1)

unsigned strata__hist_bucket(uint64_t ns)
{
    uint64_t us = (ns + 999) / 1000; /* round up: bucket i holds <= 2^i us */
    unsigned i;
    if (us <= 1)
        return 0;
    i = 64u - (unsigned)__builtin_clzll(us - 1); /* ceil(log2(us)) */
    return i < LAST ? i : LAST;
}

void strata__hist_record(strata__hist *h, uint64_t ns)
{
    __atomic_add_fetch(&h->buckets[strata__hist_bucket(ns)], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&h->sum_ns, ns, __ATOMIC_RELAXED);
}

void strata__hist_read(const strata__hist *h, strata_histogram *out)
{
    unsigned i;
    out->count = 0;
    for (i = 0; i < STRATA_HISTOGRAM_BUCKETS; i++) {
        out->buckets[i] = __atomic_load_n(&h->buckets[i], __ATOMIC_RELAXED);
        out->count += out->buckets[i];
    }
    out->sum_ns = __atomic_load_n(&h->sum_ns, __ATOMIC_RELAXED);
}

double strata__hist_le_seconds(unsigned i)
{
    return (double)((uint64_t)1 << i) * 1e-6;
}

int strata_stats_histogram(strata_cache *c, int kind, strata_histogram *out)
{
    const strata__hist *h;
    if (c == NULL || out == NULL)
        return strata__error(STRATA_EINVAL, "%s is NULL", c == NULL ? "cache handle" : "histogram pointer");
    switch (kind) {
    case STRATA_HISTOGRAM_GET: h = &c->metrics.get; break;
    case STRATA_HISTOGRAM_LOAD: h = &c->metrics.load; break;
    case STRATA_HISTOGRAM_BACKEND: h = &c->metrics.backend; break;
    default: return strata__error(STRATA_EINVAL, "unknown histogram kind %d (0 get, 1 load, 2 backend)", kind);
    }
    strata__hist_read(h, out);
    return 0;
}

/* ---- the timed backend: a decorator over the vtable ---- */

typedef struct timed {
    strata__backend base;
    strata__backend_ops ops;  /* the wrappers, under the inner backend's name */
    strata__backend *inner;
    strata__hist *hist;
} timed;

#define T(b) ((timed *)(b))
#define TIMED(call) do { \
        uint64_t t0_ = strata__now_mono_ns(); \
        int rc_ = T(b)->inner->ops->call; \
        strata__hist_record(T(b)->hist, strata__now_mono_ns() - t0_); \
        return rc_; \
    } while (0)

static void t_close(strata__backend *b)
{
    T(b)->inner->ops->close(T(b)->inner);
    free(b);
}

static int t_get(strata__backend *b, const char *k, size_t kl, strata__bytes *out)
{ TIMED(get(T(b)->inner, k, kl, out)); }

static int t_get_many(strata__backend *b, size_t n, const char *const *ks, const size_t *kls,
                      strata__bytes *outs, int *rcs)
{ TIMED(get_many(T(b)->inner, n, ks, kls, outs, rcs)); }

static int t_set(strata__backend *b, const char *k, size_t kl, const char *v, size_t vl, int64_t ttl)
{ TIMED(set(T(b)->inner, k, kl, v, vl, ttl)); }

static int t_set_many(strata__backend *b, size_t n, const char *const *ks, const size_t *kls,
                      const char *const *vs, const size_t *vls, const int64_t *ttls)
{ TIMED(set_many(T(b)->inner, n, ks, kls, vs, vls, ttls)); }

static int t_del(strata__backend *b, const char *k, size_t kl)
{ TIMED(del(T(b)->inner, k, kl)); }

static int t_touch(strata__backend *b, const char *k, size_t kl, int64_t ttl)
{ TIMED(touch(T(b)->inner, k, kl, ttl)); }

static int t_lease_acquire(strata__backend *b, const char *k, size_t kl, uint64_t token, int64_t ttl,
                           uint64_t *guard, int64_t *wait_ms)
{ TIMED(lease_acquire(T(b)->inner, k, kl, token, ttl, guard, wait_ms)); }

static int t_lease_fill(strata__backend *b, const char *k, size_t kl, uint64_t token, uint64_t guard,
                        const char *v, size_t vl, int64_t ttl)
{ TIMED(lease_fill(T(b)->inner, k, kl, token, guard, v, vl, ttl)); }

static int t_lease_release(strata__backend *b, const char *k, size_t kl, uint64_t token)
{ TIMED(lease_release(T(b)->inner, k, kl, token)); }

static int t_incr(strata__backend *b, const char *k, size_t kl, int64_t delta, int64_t *out)
{ TIMED(incr(T(b)->inner, k, kl, delta, out)); }

static size_t t_max_value_size(strata__backend *b)
{
    return T(b)->inner->ops->max_value_size(T(b)->inner);
}

static int t_counter(strata__backend *b, const char *k, size_t kl, int64_t init, int64_t delta, int64_t *out)
{ TIMED(counter(T(b)->inner, k, kl, init, delta, out)); }

static int t_wb_append(strata__backend *b, size_t n, strata__wb_item *items, int64_t now_ms, uint64_t *backlog)
{ TIMED(wb_append(T(b)->inner, n, items, now_ms, backlog)); }

static int t_wb_read(strata__backend *b, const char *consumer, size_t max, int64_t claim_idle_ms, char *cursor,
                     size_t cursorsize, strata__wb_record **recs, size_t *n)
{ TIMED(wb_read(T(b)->inner, consumer, max, claim_idle_ms, cursor, cursorsize, recs, n)); }

static int t_wb_ack(strata__backend *b, size_t nkeys, const char *const *keys, const size_t *keylens,
                    const size_t *counts, const strata__wb_id *ids)
{ TIMED(wb_ack(T(b)->inner, nkeys, keys, keylens, counts, ids)); }

static int t_wb_dead(strata__backend *b, const char *k, size_t kl, const char *v, size_t vl, size_t n,
                     const strata__wb_id *ids, unsigned int attempts, const char *message)
{ TIMED(wb_dead(T(b)->inner, k, kl, v, vl, n, ids, attempts, message)); }

static int t_wb_backlog(strata__backend *b, uint64_t *out)
{ TIMED(wb_backlog(T(b)->inner, out)); }

static int t_wb_latest(strata__backend *b, size_t n, const char *const *ks, const size_t *kls, uint64_t *tokens)
{ TIMED(wb_latest(T(b)->inner, n, ks, kls, tokens)); }

static int t_wb_dead_trim(strata__backend *b, uint64_t max, int64_t max_age_ms, int64_t now_ms, uint64_t *trimmed)
{ TIMED(wb_dead_trim(T(b)->inner, max, max_age_ms, now_ms, trimmed)); }

static int t_add(strata__backend *b, const char *k, size_t kl, const char *v, size_t vl, int64_t ttl)
{ TIMED(add(T(b)->inner, k, kl, v, vl, ttl)); }

static int t_cas(strata__backend *b, const char *k, size_t kl, const char *o, size_t ol, const char *v, size_t vl,
                 int64_t ttl)
{ TIMED(cas(T(b)->inner, k, kl, o, ol, v, vl, ttl)); }

static int t_del_many(strata__backend *b, size_t n, const char *const *ks, const size_t *kls, int *deleted)
{ TIMED(del_many(T(b)->inner, n, ks, kls, deleted)); }

static int t_lease_own(strata__backend *b, const char *k, size_t kl, uint64_t token, int64_t ttl)
{ TIMED(lease_own(T(b)->inner, k, kl, token, ttl)); }

static int t_publish_flush(strata__backend *b)
{ TIMED(publish_flush(T(b)->inner)); }

static const strata__backend_ops timed_ops = {
    NULL, t_close, t_get, t_get_many, t_set, t_set_many, t_del, t_touch,
    t_lease_acquire, t_lease_fill, t_lease_release, t_incr, t_max_value_size, t_counter,
    t_wb_append, t_wb_read, t_wb_ack, t_wb_dead, t_wb_backlog, t_wb_latest,
    t_wb_dead_trim,
    NULL, NULL, NULL, NULL, NULL, NULL, /* operator tools: called untimed (strata__backend_untimed) */
    t_add, t_cas, t_del_many, t_lease_own, t_publish_flush
};

int strata__backend_timed(strata__backend **b, strata__hist *h)
{
    timed *t = malloc(sizeof *t);
    if (t == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory");
    t->ops = timed_ops;
    t->ops.name = (*b)->ops->name;
    if ((*b)->ops->wb_append == NULL) { /* no streams: the engine checks for NULL */
        t->ops.wb_append = NULL;
        t->ops.wb_read = NULL;
        t->ops.wb_ack = NULL;
        t->ops.wb_dead = NULL;
        t->ops.wb_backlog = NULL;
        t->ops.wb_latest = NULL;
        t->ops.wb_dead_trim = NULL;
    }
    if ((*b)->ops->publish_flush == NULL)
        t->ops.publish_flush = NULL;
    t->base.ops = &t->ops;
    t->inner = *b;
    t->hist = h;
    *b = &t->base;
    return 0;
}

/* The backend under the timing wrapper: the operator tools' ops are not
 * wrapped (they are not part of any call the histograms describe). */
strata__backend *strata__backend_untimed(strata__backend *b)
{
    return b->ops->close == t_close ? T(b)->inner : b;
}
