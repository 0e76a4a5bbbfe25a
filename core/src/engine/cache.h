/* The engine's private view of a cache handle. */
#ifndef STRATA_CACHE_H
#define STRATA_CACHE_H

#include "stratacache.h"
#include "backend/backend.h"
#include "config.h"
#include "local/l1.h"
#include "local/l1_shard.h"
#include "platform/platform.h"
#include "policy/envelope.h"
#include "policy/key.h"
#include "engine/metrics.h"
#include "engine/tags.h"

#define STRATA__MAX_KEY 4096
#define STRATA__KEYBUF (STRATA__MAX_KEY + STRATA__MAX_NS + 8)

typedef struct strata__flight strata__flight;
typedef struct strata__refresher strata__refresher;

struct strata_cache {
    strata__config cfg;
    strata__backend *backend;
    strata__l1 *l1;             /* NULL when off */
    strata_stats stats;         /* updated with relaxed atomics */

    strata__mutex flights_lock; /* in-process singleflight */
    strata__flight *flights;

    strata__refresher *refresher; /* background refresh; NULL when inline */

    /* Circuit breaker over the backend. */
    unsigned int consecutive_failures;
    int64_t breaker_open_until; /* monotonic ms; 0 = closed */
    int64_t breaker_probe_until; /* monotonic ms the half-open probe lapses at; 0 = none */

    strata__tags *tags;         /* tag version cache (tags.c) */
    strata__metrics metrics;    /* latency histograms (metrics.c) */
    struct strata__hot *hot;             /* hot-key sketch; NULL when off */
    struct strata__coherence *coherence; /* L1 invalidation link; NULL when none */
    struct strata__wb *wb;      /* write-behind state (engine/write_behind.c) */
    struct strata__events *events; /* coherence events for host tiers (events.c) */
    struct strata__redis_route *route; /* redis: which server a key lives on (the op API routes by it) */

    /* Idle host-driven operations, reused with their buffers (engine/op_pool.c). */
    struct strata__op_pool *op_pool;
};

/* A cache's pool of idle ops (op_pool.c). It outlives the cache while ops
 * of it are alive: a binding's garbage collector may free the cache first. */
int  strata__op_pool_new(struct strata__op_pool **out);
void strata__op_pool_close(struct strata__op_pool *p);

#define STRATA__COUNT(c, field) strata__atomic_add(&(c)->stats.field, 1)

/* Every read of a key feeds the hot-key sketch (l1_gate.c): a read past L1
 * is counted, and so are an L1 entry's first hits (hit_seq 0 from
 * strata__l1_read), where a few reads decide admission; later hits are
 * sampled (1 in cfg.hot_sample, counted as that many): unbiased, and it
 * keeps the hit path of a hot key cheap and free of shared writes. */
void strata__note_read(strata_cache *c, const strata__key *k);
void strata__note_sampled_hit(strata_cache *c, const strata__key *k);
/* The draw mixes hit_seq (the L1's per-thread hit count) with the key, so a
 * loop over 16 keys does not sample one of them only. */
static inline void strata__note_hit(strata_cache *c, const strata__key *k, uint64_t hit_seq)
{
    if (c->hot == NULL)
        return;
    if (hit_seq == 0)
        strata__note_read(c, k);
    else if (((((hit_seq * 0x9e3779b97f4a7c15ull) ^ k->hash) >> 40) & (c->cfg.hot_sample - 1)) == 0)
        strata__note_sampled_hit(c, k);
}

/* Installs the L1 gate (coherence, admission) and starts the invalidation
 * link where there is one; stops it (l1_gate.c). */
int  strata__l1_gate_start(strata_cache *c);
void strata__l1_gate_stop(strata_cache *c);

/* Checks a key and writes "<ns>:<key>" into buf; returns its length or an error. */
int strata__full_key(strata_cache *c, const char *key, size_t keylen, char *buf);

/* Validates (cache, key) arguments shared by every entry point. */
int strata__check_key(const strata_cache *c, const char *key, size_t keylen);

/* The call's key descriptor (policy/key.h): checks the key and hashes it;
 * 0 or the error of strata__check_key (called only for a bad key). */
static inline int strata__key_init(strata_cache *c, strata__key *k, const char *key, size_t keylen)
{
    if (c == NULL || key == NULL || keylen == 0 || keylen > STRATA__MAX_KEY)
        return strata__check_key(c, key, keylen);
    *k = strata__key_of(key, keylen);
    return 0;
}

/* k's namespaced backend key, built into buf (STRATA__KEYBUF bytes) unless
 * built before; k->full and k->fulllen point at it afterwards. */
const char *strata__key_full(strata_cache *c, strata__key *k, char *buf);


/* Encodes an envelope for a new write into a library buffer. */
int strata__encode_value(strata_cache *c, strata__bytes *out, const char *val, size_t vallen,
                         int negative, int64_t ttl_ms, int64_t stale_ms, int64_t cost_ms,
                         int64_t now_ms, int64_t *fresh_until, int64_t *backend_ttl_ms);

/* The backend is unreachable (as opposed to answering "no"). A server's
 * refusal (STRATA__EREFUSED from a backend) reaches callers as EBACKEND too,
 * but only strata__backend_result sees the difference. */
static inline int strata__is_outage(int rc)
{
    return rc == STRATA_EBACKEND || rc == STRATA_ETIMEOUT || rc == STRATA_EBREAKER;
}

/* strata__encode_value with tag stamps (tags may be NULL when ntags is 0). */
/* strata__env_decode of stored bytes, counting payload CRC failures
 * (stats payload_crc_errors); anything but 0 reads as a miss. */
int strata__decode_stored(strata_cache *c, const char *data, size_t len, strata__envelope *e);

int strata__encode_value_tags(strata_cache *c, strata__bytes *out, const char *val, size_t vallen,
                              int negative, int64_t ttl_ms, int64_t stale_ms, int64_t cost_ms,
                              const strata__env_tag *tags, size_t ntags,
                              int64_t now_ms, int64_t *fresh_until, int64_t *backend_ttl_ms);

/* The same with the namespace generation already known (host-driven ops
 * read it in their own exchange; NULL = read it here, which may do I/O). */
int strata__encode_value_ns(strata_cache *c, strata__bytes *out, const char *val, size_t vallen, int negative,
                            int64_t ttl_ms, int64_t stale_ms, int64_t cost_ms, const strata__env_tag *tags,
                            size_t ntags, const uint64_t *known_ns, int64_t now_ms, int64_t *fresh_until,
                            int64_t *backend_ttl_ms);

/* Backend call bookkeeping: breaker state and error counters. */
int  strata__breaker_allow(strata_cache *c);
int  strata__backend_result(strata_cache *c, int rc);

/* Serves a decoded envelope read from the backend into out, caching it in L1
 * when fresh. Returns the read outcome, or STRATA_MISS when expired. */
int strata__serve_envelope(strata_cache *c, const strata__key *k, const strata__envelope *e,
                           int64_t now_ms, uint64_t epoch, strata_value *out);
/* The same decision with out->data pointing at e's payload, not a copy
 * (out keeps its own buffer for later): the op's read, whose envelope
 * bytes live as long as the op. */
int strata__serve_envelope_ref(strata_cache *c, const strata__key *k, const strata__envelope *e,
                               int64_t now_ms, uint64_t epoch, strata_value *out);

/* After a backend write or delete of key returned (landed or not): drops
 * L1's copy and moves its fill epoch on, so a read that started while the
 * write was in flight (and may have seen the older value) cannot put that
 * value back into L1: read-your-writes. Returns the new epoch (0 without
 * L1). A write that stores its value in L1 uses strata__l1_writing and
 * strata__l1_wrote instead. */
uint64_t strata__l1_written(strata_cache *c, const strata__key *k);

/* A write of k is about to be sent: the fill epoch to settle it with
 * (strata__l1_wrote; 0 without L1). L1 keeps serving the old value while
 * the write is in flight: a read beside a write not yet acknowledged may
 * return the old value. */
uint64_t strata__l1_writing(strata_cache *c, const strata__key *k);

/* The write begun at `epoch` returned. ok: it succeeded and val is what the
 * key now holds (tagged: the whole envelope; times as for strata__l1_store):
 * L1 takes it unless an invalidation or another write of the key's stripe
 * finished meanwhile (then the order is unknown). Not ok (failed, timed
 * out: it may have landed): L1 drops the key. Either way fills that read
 * the backend during the write stay out (strata__l1_settle). */
void strata__l1_wrote(strata_cache *c, const strata__key *k, uint64_t epoch, int ok, const char *val,
                      size_t vallen, int tagged, int64_t now_ms, int64_t fresh_until_ms, int64_t stale_until_ms);

/* get_many's backend read failed with an outage: keys idx[0..nb) are served
 * stale from L1 where this process has them, the others get the outage code.
 * 0 when every key was served, else the outage (ops.c). */
int strata__get_many_stale(strata_cache *c, size_t nb, const size_t *idx, const char *const *keys,
                           const size_t *keylens, int64_t now, strata_value *outs, int *results, int outage);

/* Puts a value just read or written at now_ms into L1 (when on): served
 * until min(now + l1_ttl_ms, fresh_until), kept for stale-if-error until
 * stale_until. epoch is the shard epoch seen before the backend call.
 * tagged: val is the whole envelope, checked against tag versions on hits. */
void strata__l1_store(strata_cache *c, const strata__key *k, const char *val, size_t vallen,
                      int negative, int tagged, int64_t now_ms, int64_t fresh_until_ms,
                      int64_t stale_until_ms, uint64_t epoch);

/* Background refresh (refresh_threads > 0): the ticket, loader and userdata
 * go to a refresher thread. 0 when queued (the caller returns at once), or an
 * error (the caller refreshes inline). */
int  strata__refresher_new(strata__refresher **out, unsigned int threads);
void strata__refresher_free(strata__refresher *r);
int  strata__refresh_async(strata_cache *c, strata_ticket *t, const char *key, size_t keylen,
                           strata_loader_fn loader, void *userdata);

/* Runs loader for key and fills or abandons t (defined in load.c). */
void strata__refresh_now(strata_cache *c, strata_ticket *t, const char *key, size_t keylen,
                         strata_loader_fn loader, void *userdata);

/* strata_lookup without timing into the get histogram (for get_or_load,
 * which times its whole call). */
int strata__lookup(strata_cache *c, const char *key, size_t keylen, strata_value *out,
                   strata_ticket **ticket);
/* The same for a key already checked (k from strata__key_init). */
int strata__lookup_key(strata_cache *c, strata__key *k, strata_value *out, strata_ticket **ticket);

/* The backend half of strata__read: one read of k->full (built), decoded,
 * tag-checked and served (into L1 too, unless its shard moved past epoch). */
int strata__read_backend(strata_cache *c, const strata__key *k, int64_t now, uint64_t epoch,
                         strata_value *out, strata__bytes *raw, strata__envelope *env);

/* An L1 hit for k, counted (and sampled into the hot-key sketch), or
 * STRATA_MISS (not counted: the caller goes on past L1 and counts there).
 * The hit path's clock is the coarse one (never behind; docs/FRESHNESS.md). */
static inline __attribute__((always_inline)) int strata__l1_hit(strata_cache *c, const strata__key *k,
                                                               strata_value *out)
{
    uint64_t hit_seq;
    int64_t now = strata__now_wall_coarse_ms();
    int rc = strata__l1_hit_fast(c->l1, k, now, out, &hit_seq); /* inline: the common hit, one pass */
    if (rc == STRATA__L1_SLOW)
        rc = strata__l1_read(c->l1, k, now, out, &hit_seq);
    if (rc != STRATA_MISS)
        strata__note_hit(c, k, hit_seq);
    return rc;
}

/* Reads one key through L1 and the backend, without loading. env/raw hold the
 * decoded backend envelope when out->level is BACKEND or STALE. k is checked
 * (strata__key_init); its full key is built here when the read goes past L1. */
int strata__read(strata_cache *c, strata__key *k, char *fkbuf, strata_value *out,
                 strata__bytes *raw, strata__envelope *env);
/* The same; with timed set, a read that goes past L1 lands in the get histogram. */
int strata__read_ex(strata_cache *c, strata__key *k, char *fkbuf, strata_value *out,
                    strata__bytes *raw, strata__envelope *env, int timed);

#endif
