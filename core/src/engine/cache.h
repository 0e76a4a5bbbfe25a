/* The engine's private view of a cache handle. */
#ifndef STRATA_CACHE_H
#define STRATA_CACHE_H

#include "stratacache.h"
#include "backend/backend.h"
#include "config.h"
#include "local/l1.h"
#include "platform/platform.h"
#include "policy/envelope.h"

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
    int breaker_probe;          /* 1 while one probe call is in flight */

    struct strata__wb *wb;      /* write-behind state (engine/write_behind.c) */
};

#define STRATA__COUNT(c, field) strata__atomic_add(&(c)->stats.field, 1)

/* Checks a key and writes "<ns>:<key>" into buf; returns its length or an error. */
int strata__full_key(strata_cache *c, const char *key, size_t keylen, char *buf);

/* Validates (cache, key) arguments shared by every entry point. */
int strata__check_key(const strata_cache *c, const char *key, size_t keylen);

/* Encodes an envelope for a new write into a library buffer. */
int strata__encode_value(strata_cache *c, strata__bytes *out, const char *val, size_t vallen,
                         int negative, int64_t ttl_ms, int64_t stale_ms, int64_t cost_ms,
                         int64_t now_ms, int64_t *fresh_until, int64_t *backend_ttl_ms);

/* Backend call bookkeeping: breaker state and error counters. */
int  strata__breaker_allow(strata_cache *c);
int  strata__backend_result(strata_cache *c, int rc);

/* Serves a decoded envelope read from the backend into out, caching it in L1
 * when fresh. Returns the read outcome, or STRATA_MISS when expired. */
int strata__serve_envelope(strata_cache *c, const char *key, size_t keylen, const strata__envelope *e,
                           int64_t now_ms, uint64_t epoch, strata_value *out);

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

/* Reads one key through L1 and the backend, without loading. env/raw hold the
 * decoded backend envelope when out->level is BACKEND or STALE. */
int strata__read(strata_cache *c, const char *key, size_t keylen, strata_value *out,
                 strata__bytes *raw, strata__envelope *env);

#endif
