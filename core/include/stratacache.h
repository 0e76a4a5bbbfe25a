/*
 * stratacache: caching policy over Redis, Memcached or an embedded store.
 *
 * The one public header. Conventions (see docs/API.md):
 *  - every function returns an int: negative = error (STRATA_E*), 0 = OK / hit,
 *    positive = a non-error outcome (STRATA_MISS, STRATA_NEGATIVE, ...);
 *  - the message for the last error on this thread is strata_error_last();
 *  - inputs are borrowed for the duration of the call; values come back in a
 *    strata_value whose bytes belong to the library and are released by
 *    strata_value_dispose() (the struct itself is the caller's, and reusable);
 *  - option structs start with a version and come with an _init() function.
 */
#ifndef STRATACACHE_H
#define STRATACACHE_H

#include <stddef.h>
#include <stdint.h>

#define STRATA_VERSION_MAJOR 0
#define STRATA_VERSION_MINOR 1
#define STRATA_VERSION_PATCH 0

#if defined(_WIN32)
#  define STRATA_EXTERN __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#  define STRATA_EXTERN __attribute__((visibility("default")))
#else
#  define STRATA_EXTERN
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Result codes. Errors are negative; outcomes that are not errors are >= 0. */
typedef enum strata_code {
    STRATA_OK          = 0,   /* success; for reads: a fresh hit */
    STRATA_MISS        = 1,   /* nothing cached under the key */
    STRATA_NEGATIVE    = 2,   /* a cached "not found" */
    STRATA_HIT_STALE   = 3,   /* a value past its freshness, served anyway */
    STRATA_HIT_REFRESH = 4,   /* a value, and the caller holds the refresh ticket */
    STRATA_MISS_LEAD   = 5,   /* a miss, and the caller holds the lease: load, then fill */
    STRATA_MISS_WAIT   = 6,   /* a miss another caller is loading: retry after wait_ms */
    STRATA_INVALIDATED = 7,   /* write accepted, but the cache entry was invalidated
                                 instead of updated (the cache update failed) */
    STRATA_EXISTS      = 8,   /* strata_add: the key already holds a live value */

    STRATA_EINVAL      = -1,  /* bad argument (NULL, out of range) */
    STRATA_ENOMEM      = -2,  /* out of memory */
    STRATA_EBACKEND    = -3,  /* the backend failed or refused the command */
    STRATA_ETIMEOUT    = -4,  /* the backend did not answer within the deadline */
    STRATA_EKEY        = -5,  /* bad key: empty, too long, or not storable */
    STRATA_ETOOBIG     = -6,  /* value larger than the backend accepts */
    STRATA_EURL        = -7,  /* malformed or unsupported URL */
    STRATA_EOPTION     = -8,  /* unknown or malformed option */
    STRATA_EVERSION    = -9,  /* options struct of an unknown version */
    STRATA_EUSER       = -10, /* a callback (loader, writer) reported an error */
    STRATA_ELEASE      = -11, /* fill refused: the lease was lost to a write or expiry */
    STRATA_EBREAKER    = -12, /* circuit breaker open: backend skipped for now */
    STRATA_EBUSY       = -13, /* backpressure: a bounded queue is full */
    STRATA_ENOTSUP     = -14, /* not supported by this backend */
    STRATA_ECLOSED     = -15, /* the handle or ticket is no longer usable */
    STRATA_ESTALE      = -16, /* the source was written, but the cache could be neither
                                 updated nor invalidated: it may serve the old value */
    STRATA_ENOTNUM     = -17  /* strata_incr: the stored value is not a decimal integer,
                                 or the result would overflow int64 */
} strata_code;

/* Where a returned value came from (strata_value.level). */
typedef enum strata_level {
    STRATA_LEVEL_NONE    = 0,
    STRATA_LEVEL_L1      = 1, /* in-process tier */
    STRATA_LEVEL_BACKEND = 2, /* redis / memcached / memory store */
    STRATA_LEVEL_LOADED  = 3, /* produced by the loader during this call */
    STRATA_LEVEL_STALE   = 4  /* served past freshness (SWR, stale-if-error, waiter) */
} strata_level;

/* What a waiter does when the lease holder has not filled within lock_wait_ms. */
typedef enum strata_wait_policy {
    STRATA_WAIT_STALE_OR_LOAD = 0, /* serve stale if any, else load without the lease */
    STRATA_WAIT_LOAD          = 1, /* load without the lease */
    STRATA_WAIT_FAIL          = 2  /* return STRATA_ETIMEOUT */
} strata_wait_policy;

/* Which keys the in-process tier admits. */
typedef enum strata_l1_admission {
    STRATA_L1_ALL  = 0,
    STRATA_L1_HOT  = 1,
    STRATA_L1_NONE = 2
} strata_l1_admission;

typedef struct strata_cache strata_cache;   /* thread-safe handle */
typedef struct strata_ticket strata_ticket; /* a lease or refresh ticket from lookup */
typedef struct strata_load strata_load;     /* where a loader puts its result */

/*
 * A value handed back by the library. The struct is the caller's (stack or
 * reused); `data` points into library-owned memory, valid until the struct is
 * passed to another call or to strata_value_dispose(). Zero it (or use
 * STRATA_VALUE_INIT) before first use.
 */
typedef struct strata_value {
    const char *data;
    size_t len;
    int level;          /* strata_level */
    int stale;          /* 1 when served past fresh-until */
    int64_t ttl_ms;     /* ms left until fresh-until (<= 0 when stale) */
    int64_t wait_ms;    /* after STRATA_MISS_WAIT: suggested wait before retrying */
    void *priv_;        /* library-owned buffer */
    size_t cap_;
} strata_value;

#define STRATA_VALUE_INIT {0, 0, 0, 0, 0, 0, 0, 0}

/*
 * A loader fetches the value for a key from the source of truth and reports the
 * result through `load`: strata_load_value(), strata_load_not_found(), or
 * strata_load_error(). Its return value: 0, or STRATA_EUSER on failure.
 */
typedef int (*strata_loader_fn)(void *userdata, const char *key, size_t keylen,
                                strata_load *load);

/* A batch loader gets only the missing keys, one strata_load per key. */
typedef int (*strata_many_loader_fn)(void *userdata, size_t n, const char *const *keys,
                                     const size_t *keylens, strata_load *const *loads);

/* Where a writer reports failure (strata_write_error). */
typedef struct strata_write strata_write;

/* A write-through writer stores one key/value in the source of truth. Return 0
 * on success; on failure call strata_write_error() and/or return non-zero. */
typedef int (*strata_writer_fn)(void *userdata, const char *key, size_t keylen,
                                const char *val, size_t vallen, strata_write *w);

/* A write-behind batch writer stores n distinct keys (latest value each);
 * success or failure is for the batch as a whole. */
typedef int (*strata_batch_writer_fn)(void *userdata, size_t n, const char *const *keys,
                                      const size_t *keylens, const char *const *vals,
                                      const size_t *vallens, strata_write *w);

/* Journal fsync policy for write-behind on memory:// and memcached:// */
typedef enum strata_wb_fsync {
    STRATA_WB_FSYNC_ALWAYS   = 0, /* fsync before write_behind returns */
    STRATA_WB_FSYNC_INTERVAL = 1, /* at most every wb_interval_ms (survives a process crash) */
    STRATA_WB_FSYNC_NONE     = 2  /* leave it to the OS (survives a process crash) */
} strata_wb_fsync;

/* Version 2 added tag_cache_ms, the hot-key, coherence and write-behind
 * options; version 3 added l1_bus. Structs of versions 1 and 2 are still
 * accepted. */
#define STRATA_OPTIONS_VERSION 3

typedef struct strata_options {
    unsigned int version;
    const char *ns;               /* namespace: isolates caches sharing a server */
    int64_t ttl_ms;               /* fresh TTL for writes without their own */
    int64_t stale_ms;             /* extra time an entry may be served stale */
    int64_t neg_ttl_ms;           /* TTL of "not found" entries */
    unsigned int jitter_pct;      /* TTL jitter, percent (0 = none) */
    int64_t timeout_ms;           /* per backend operation */
    int64_t connect_timeout_ms;
    unsigned int pool_size;       /* backend connections (threads in parallel) */
    uint64_t max_bytes;           /* memory:// store bound */
    int l1;                       /* in-process tier on (1) or off (0) */
    uint64_t l1_max_bytes;
    unsigned int l1_max_entries;
    int64_t l1_ttl_ms;            /* upper bound; never past the entry's freshness */
    int l1_admission;             /* strata_l1_admission */
    int64_t lease_ttl_ms;         /* how long a lease (load lock) lives */
    int64_t lock_wait_ms;         /* how long a waiter waits for the leader */
    int wait_policy;              /* strata_wait_policy */
    double xfetch_beta;           /* XFetch eagerness; 0 turns early refresh off */
    unsigned int breaker_threshold;   /* consecutive failures that open the breaker */
    int64_t breaker_cooldown_ms;
    strata_loader_fn loader;      /* default loader: makes get() read-through */
    void *loader_data;
    int64_t tag_cache_ms;         /* how long tag versions are cached in-process;
                                     bounds how late another process's tag bump is
                                     seen (0 = ask the backend on every check) */
    /* Hot keys (docs/L1-COHERENCE.md): a count-min sketch fed by every read. */
    unsigned int hot_sketch_width; /* counters per row (4 rows of 1 byte); 0 = no sketch */
    unsigned int hot_window;      /* reads after which the sketch halves (old popularity fades) */
    unsigned int hot_threshold;   /* l1_admission=hot: estimated reads in the window to enter L1 */
    unsigned int hot_top;         /* keys each of the sketch's 16 shards ranks exactly */
    /* L1 coherence on Redis: a subscriber connection per cache with L1 on. */
    int tracking;                 /* 1: CLIENT TRACKING BCAST, so any client's write evicts L1 */
    int64_t coherence_ping_ms;    /* ping period of the subscriber link */
    /* Write-behind (docs/WRITE-BEHIND.md). */
    strata_batch_writer_fn wb_writer; /* used by the flusher threads and strata_flush */
    void *wb_writer_data;
    unsigned int wb_threads;      /* push flusher threads; 0 = pull only (strata_wb_poll) */
    unsigned int wb_batch_size;   /* keys per batch */
    int64_t wb_interval_ms;       /* longest a record waits for a flusher poll */
    unsigned int wb_max_attempts; /* failed deliveries before dead-lettering */
    int64_t wb_retry_ms;          /* first retry delay; doubles per attempt */
    int64_t wb_retry_max_ms;      /* retry delay cap */
    uint64_t wb_max_backlog;      /* records not yet flushed before backpressure */
    int64_t wb_block_ms;          /* at the limit: 0 = STRATA_EBUSY at once, else wait up to this */
    int64_t wb_claim_ms;          /* redis: take over another consumer's records idle this long */
    int64_t wb_drain_ms;          /* strata_cache_free waits this long for the flusher */
    const char *wb_journal;       /* memory/memcached: journal file path (NULL = not durable) */
    int wb_fsync;                 /* strata_wb_fsync */
    const char *wb_consumer;      /* redis consumer name (NULL = host:pid:random) */
    const char *l1_bus;           /* memcached:// only: a redis:// URL carrying invalidations */
} strata_options;

#define STRATA_OPTIONS_INIT {STRATA_OPTIONS_VERSION, 0, 300000, 0, 60000, 0, \
    250, 1000, 4, 67108864, 0, 16777216, 100000, 10000, 0, 5000, 2000, 0, 1.0, \
    5, 1000, 0, 0, 1000, 262144, 1048576, 2, 16, 0, 1000, \
    0, 0, 1, 100, 100, 5, 100, 10000, 100000, 0, 30000, 5000, 0, 1, 0, 0}

#define STRATA_SET_OPTIONS_VERSION 1

/* Per-write options for strata_set_ex(). */
typedef struct strata_set_options {
    unsigned int version;
    int64_t ttl_ms;               /* fresh TTL; 0 = the cache's default */
    int64_t stale_ms;             /* -1 = the cache's default */
    int64_t cost_ms;              /* load time recorded for XFetch (0 = unknown) */
    const char *const *tags;      /* stamp the entry with these tags' versions */
    const size_t *taglens;
    size_t ntags;
} strata_set_options;

#define STRATA_SET_OPTIONS_INIT {STRATA_SET_OPTIONS_VERSION, 0, -1, 0, 0, 0, 0}

#define STRATA_STATS_VERSION 3

/* Counters since the cache was created. Version 1 callers get the fields up
 * to fail_open, version 2 up to wb_backlog; version 3 adds the rest. */
typedef struct strata_stats {
    unsigned int version;
    uint64_t l1_hits, l1_misses, l1_entries, l1_bytes, l1_evictions;
    uint64_t hits, misses, negative_hits, stale_hits;
    uint64_t sets, deletes, loads, load_errors;
    uint64_t backend_errors, timeouts;
    uint64_t leases_won, leases_lost, waits, early_refreshes;
    uint64_t singleflight_shared, breaker_opens, fail_open;
    /* version 2 */
    uint64_t breaker_state;       /* now: 0 closed, 1 open, 2 half-open (next call probes) */
    uint64_t tag_invalidations;   /* strata_invalidate_tag bumps */
    uint64_t tag_stale;           /* entries read whose tag stamps were outdated */
    uint64_t tag_fetches;         /* backend round trips for tag versions */
    uint64_t invalidations_received; /* L1 evictions asked by the invalidation link */
    uint64_t l1_flushes;             /* whole-L1 drops: link lost, FLUSHDB, fork */
    uint64_t l1_admission_rejects;   /* fills kept out of L1 by l1_admission=hot */
    uint64_t l1_link_up;             /* 1 while the invalidation link is subscribed */
    /* write-behind; wb_backlog: records not yet flushed (on redis: the stream
     * length last seen by this process) */
    uint64_t wb_enqueued, wb_flushed, wb_retried, wb_dead, wb_backlog;
    /* version 3 (write-behind housekeeping, payload CRC) */
    uint64_t wb_journal_skipped;  /* damaged journal records skipped at replay (kept in <wb_journal>.corrupt) */
    uint64_t wb_dead_trimmed;     /* dead letters removed by wb_dead_max / wb_dead_max_age_ms */
    uint64_t payload_crc_errors;  /* stored values whose payload failed its CRC32C (payload_crc=1), read as misses */
    /* version 3 (L1 fills) */
    uint64_t l1_fills_refused;    /* values read past L1 kept out of it: a write or invalidation of a key of
                                     their fill-epoch stripe came between the read and the fill */
} strata_stats;

/* Latency histogram: log-scale buckets, bucket i counts calls that took at
 * most 2^i microseconds (1 us .. 2^25 us = 33.5 s), the last one the rest. */
#define STRATA_HISTOGRAM_BUCKETS 27

typedef enum strata_histogram_kind {
    STRATA_HISTOGRAM_GET     = 0, /* strata_get, strata_get_or_load (whole call) and
                                     strata_lookup, when they go past L1 */
    STRATA_HISTOGRAM_LOAD    = 1, /* loader callbacks */
    STRATA_HISTOGRAM_BACKEND = 2  /* each backend command (round trip) */
} strata_histogram_kind;

typedef struct strata_histogram {
    uint64_t count;               /* = the sum of buckets */
    uint64_t sum_ns;
    uint64_t buckets[STRATA_HISTOGRAM_BUCKETS]; /* not cumulative */
} strata_histogram;

#define STRATA_HOT_KEY_MAX 256

/*
 * One entry of strata_hot_keys(). Caller-owned (an array the caller passes);
 * the key bytes are copied in. Keys longer than STRATA_HOT_KEY_MAX bytes are
 * reported by their first STRATA_HOT_KEY_MAX bytes, with keylen < full_keylen.
 */
typedef struct strata_hot_key {
    char key[STRATA_HOT_KEY_MAX + 1]; /* NUL-terminated for printing; may hold NULs */
    size_t keylen;                    /* bytes of key[] that belong to the key */
    size_t full_keylen;               /* the key's real length */
    uint64_t count;                   /* estimated reads in the recent (decayed) window */
    double rate_per_s;                /* estimated reads per second lately */
} strata_hot_key;

/* Library */
STRATA_EXTERN const char *strata_version(void);
STRATA_EXTERN const char *strata_error_last(void);
STRATA_EXTERN const char *strata_error_name(int code);

/* Options */
STRATA_EXTERN int strata_options_init(strata_options *opts, unsigned int version);
STRATA_EXTERN int strata_set_options_init(strata_set_options *opts, unsigned int version);

/* Values */
STRATA_EXTERN void strata_value_dispose(strata_value *value);

/* Handle: url is memory://, redis://[user:pass@]host:port[/db] or
 * memcached://host:port[,host:port...], each with ?option=value&... */
STRATA_EXTERN int strata_cache_new(strata_cache **out, const char *url,
                                   const strata_options *opts);
STRATA_EXTERN void strata_cache_free(strata_cache *cache);

/* Cache-aside */
STRATA_EXTERN int strata_get(strata_cache *cache, const char *key, size_t keylen,
                             strata_value *out);
STRATA_EXTERN int strata_set(strata_cache *cache, const char *key, size_t keylen,
                             const char *val, size_t vallen, int64_t ttl_ms);
STRATA_EXTERN int strata_set_ex(strata_cache *cache, const char *key, size_t keylen,
                                const char *val, size_t vallen,
                                const strata_set_options *opts);
STRATA_EXTERN int strata_delete(strata_cache *cache, const char *key, size_t keylen);
STRATA_EXTERN int strata_touch(strata_cache *cache, const char *key, size_t keylen,
                               int64_t ttl_ms);
/* results[i] gets each key's read outcome (STRATA_OK, STRATA_MISS, ...). */
STRATA_EXTERN int strata_get_many(strata_cache *cache, size_t n, const char *const *keys,
                                  const size_t *keylens, strata_value *outs, int *results);
STRATA_EXTERN int strata_set_many(strata_cache *cache, size_t n, const char *const *keys,
                                  const size_t *keylens, const char *const *vals,
                                  const size_t *vallens, int64_t ttl_ms);

/* Two-phase: lookup, then fill / fill_negative / abandon the ticket (which
 * frees it). A ticket comes with STRATA_HIT_REFRESH and STRATA_MISS_LEAD. */
STRATA_EXTERN int strata_lookup(strata_cache *cache, const char *key, size_t keylen,
                                strata_value *out, strata_ticket **ticket);
STRATA_EXTERN int strata_fill(strata_ticket *ticket, const char *val, size_t vallen,
                              int64_t ttl_ms);
STRATA_EXTERN int strata_fill_negative(strata_ticket *ticket, int64_t neg_ttl_ms);
STRATA_EXTERN int strata_abandon(strata_ticket *ticket);

/* Push style, built on the two-phase API. */
STRATA_EXTERN int strata_get_or_load(strata_cache *cache, const char *key, size_t keylen,
                                     strata_loader_fn loader, void *userdata,
                                     strata_value *out);
STRATA_EXTERN int strata_get_many_or_load(strata_cache *cache, size_t n,
                                          const char *const *keys, const size_t *keylens,
                                          strata_many_loader_fn loader, void *userdata,
                                          strata_value *outs, int *results);

/* What a loader reports. ttl_ms 0 = the cache's default. */
STRATA_EXTERN int strata_load_value(strata_load *load, const char *val, size_t vallen,
                                    int64_t ttl_ms);
STRATA_EXTERN int strata_load_not_found(strata_load *load, int64_t neg_ttl_ms);
STRATA_EXTERN int strata_load_error(strata_load *load, const char *message);

/* For hosts that call their loaders themselves around lookup/fill (the Python
 * and Lua bindings): counts one load in the stats (loads, and load_errors when
 * failed != 0) and its duration in the load histogram, as get_or_load does
 * for its own loader calls. */
STRATA_EXTERN int strata_record_load(strata_cache *cache, int failed, int64_t duration_ns);

/* Invalidation */
STRATA_EXTERN int strata_invalidate(strata_cache *cache, const char *key, size_t keylen);
STRATA_EXTERN int strata_invalidate_tag(strata_cache *cache, const char *tag,
                                        size_t taglen);

/* Metrics */
STRATA_EXTERN int strata_stats_get(strata_cache *cache, strata_stats *out,
                                   unsigned int version);

/* Tags (docs/TAGS.md). Stamp a loaded entry with tags: call before reading the
 * source, because the versions are taken at the call; the fill then stamps
 * them. strata_load_tags from inside a loader, strata_ticket_tags on a
 * MISS_LEAD / HIT_REFRESH ticket before strata_fill. */
STRATA_EXTERN int strata_load_tags(strata_load *load, const char *const *tags,
                                   const size_t *taglens, size_t ntags);
STRATA_EXTERN int strata_ticket_tags(strata_ticket *ticket, const char *const *tags,
                                     const size_t *taglens, size_t ntags);

STRATA_EXTERN int strata_stats_histogram(strata_cache *cache, int kind, strata_histogram *out);

/* Prometheus text exposition of the stats and histograms (metric names
 * stratacache_*, labels namespace and tier). Writes a NUL-terminated text when
 * it fits in cap bytes and returns 0; otherwise returns STRATA_ETOOBIG and
 * writes nothing. *needed (optional) gets the bytes required, NUL included;
 * buf may be NULL when cap is 0. */
STRATA_EXTERN int strata_stats_prometheus(strata_cache *cache, char *buf, size_t cap,
                                          size_t *needed);
/* The hottest keys now, hottest first: up to n entries into out (caller-owned
 * array), *count = how many were written. */
STRATA_EXTERN int strata_hot_keys(strata_cache *cache, size_t n, strata_hot_key *out,
                                  size_t *count);

/* Write-through: writer first (the source of truth); only on its success the
 * cache is updated (value set, lease killed, L1 updated). Returns 0;
 * STRATA_EUSER with the writer's message when the writer failed (the cache is
 * untouched); STRATA_INVALIDATED when the source was written but the cache
 * update failed and the key was invalidated instead; STRATA_ESTALE when even
 * the invalidation failed; or an input error before anything ran. */
STRATA_EXTERN int strata_write_through(strata_cache *cache, const char *key, size_t keylen,
                                       const char *val, size_t vallen, int64_t ttl_ms,
                                       strata_writer_fn writer, void *userdata);
STRATA_EXTERN int strata_write_error(strata_write *w, const char *message);

/* Write-behind: the cache write and its journal record are one step (redis:
 * SET + XADD in one script); returns once both are stored. 0, STRATA_EBUSY
 * (backlog at wb_max_backlog), STRATA_INVALIDATED / STRATA_ESTALE (journaled,
 * but the cache update failed: see write_through), or an error. */
STRATA_EXTERN int strata_write_behind(strata_cache *cache, const char *key, size_t keylen,
                                      const char *val, size_t vallen, int64_t ttl_ms);
/* n writes in one round trip (redis); all or nothing on bad input. */
STRATA_EXTERN int strata_write_behind_many(strata_cache *cache, size_t n,
                                           const char *const *keys, const size_t *keylens,
                                           const char *const *vals, const size_t *vallens,
                                           int64_t ttl_ms);

/* Pull API for hosts that cannot be called back from a thread. poll returns
 * STRATA_OK and a batch of up to max distinct keys (latest value each), or
 * STRATA_MISS and *batch = NULL when nothing is due. Every batch must end in
 * exactly one strata_wb_ack (delivered) or strata_wb_fail (retry later, or
 * dead-letter after wb_max_attempts), which free it. */
typedef struct strata_wb_batch strata_wb_batch;
STRATA_EXTERN int strata_wb_poll(strata_cache *cache, size_t max, strata_wb_batch **batch);
STRATA_EXTERN size_t strata_wb_batch_count(const strata_wb_batch *batch);
STRATA_EXTERN int strata_wb_batch_item(const strata_wb_batch *batch, size_t i,
                                       const char **key, size_t *keylen,
                                       const char **val, size_t *vallen);
/* Wall-clock ms when item i's latest write was accepted (0 when out of range). */
STRATA_EXTERN int64_t strata_wb_batch_enqueued_ms(const strata_wb_batch *batch, size_t i);
STRATA_EXTERN int strata_wb_ack(strata_wb_batch *batch);
STRATA_EXTERN int strata_wb_fail(strata_wb_batch *batch, const char *message);

/* Waits until every record is flushed (running the registered writer inline
 * when there are no flusher threads), at most deadline_ms. 0 or STRATA_ETIMEOUT. */
STRATA_EXTERN int strata_flush(strata_cache *cache, int64_t deadline_ms);


/* ---- Envelopes for host-side tiers (resty.stratacache's lua_shared_dict) ----
 * Pure functions over the envelope of docs/FORMAT.md, so a host that keeps
 * its own tier of stored envelopes (nginx's shared dict) reads and writes the
 * core's format and takes the core's freshness decision without a cache
 * handle and without reimplementing either. No I/O, no allocation. */
typedef struct strata_envelope_info {
    int negative;              /* 1: a cached "not found" (payload empty) */
    int64_t created_ms;        /* unix ms */
    int64_t fresh_until_ms;    /* soft TTL */
    int64_t stale_until_ms;    /* hard TTL */
    int64_t refresh_at_ms;     /* XFetch: from here this process refreshes early */
    uint32_t cost_ms;          /* load time recorded with the value */
    size_t ntags;              /* tag stamps in the envelope */
    const char *payload;       /* points into the decoded bytes */
    size_t payload_len;
} strata_envelope_info;

/* Parses data. STRATA_OK and *out filled (payload points into data), or
 * STRATA_MISS when the bytes are not an envelope of ours (a miss to the
 * caller). refresh_at_ms is fresh_until_ms moved earlier by XFetch's draw for
 * this process, key and stored version (beta = xfetch_beta; 0 disables). */
STRATA_EXTERN int strata_envelope_decode(const char *data, size_t len, const char *key,
                                         size_t keylen, double xfetch_beta,
                                         strata_envelope_info *out);

/* The core's freshness verdict on a decoded envelope at now_ms: STRATA_OK
 * (fresh), STRATA_HIT_REFRESH (serve it and refresh early), STRATA_HIT_STALE
 * (past fresh, serve while revalidating), STRATA_MISS (expired), or
 * STRATA_NEGATIVE (a fresh or stale "not found"). */
STRATA_EXTERN int strata_envelope_verdict(const strata_envelope_info *info, int64_t now_ms);

/* Encodes val (or a "not found" with negative = 1 and vallen 0) written at
 * now_ms, fresh for ttl_ms and servable stale for stale_ms more, into buf.
 * *needed is always set to the envelope's size; STRATA_ETOOBIG when cap is
 * smaller (nothing written), STRATA_EINVAL on a negative TTL or a payload
 * with negative = 1. */
STRATA_EXTERN int strata_envelope_encode(const char *val, size_t vallen, int negative,
                                         int64_t now_ms, int64_t ttl_ms, int64_t stale_ms,
                                         uint32_t cost_ms, char *buf, size_t cap,
                                         size_t *needed);

/* Limits (reliability): the largest millisecond value any option or argument
 * takes (ttl_ms, stale_ms, neg_ttl_ms, cost_ms, timeouts, lease and wait
 * times, deadlines): 366 days. Past it the call is refused with
 * STRATA_EINVAL (arguments) or STRATA_EOPTION (options) naming the value. */
#define STRATA_MAX_MS 31622400000LL
/* ---- Operator tools (the `stratacache` command is built on these) ----------
 * Read-only views of what a cache holds, the write-behind journal and its dead
 * letters, and the server, for diagnosis; strata_wb_dead_replay/_purge change
 * only the dead letters and the journal. */

#define STRATA_INSPECT_VERSION 1
#define STRATA_INSPECT_HOLDER_MAX 64

typedef enum strata_inspect_kind {
    STRATA_INSPECT_MISS    = 0, /* no value under the key */
    STRATA_INSPECT_ENTRY   = 1, /* one of our envelopes (value or NEGATIVE) */
    STRATA_INSPECT_FOREIGN = 2  /* bytes that are not a stratacache envelope */
} strata_inspect_kind;

typedef struct strata_inspect_tag {
    char name[257];             /* NUL-terminated; may hold NULs (see namelen) */
    size_t namelen;
    uint64_t stamped;           /* the version in the envelope */
    uint64_t current;           /* the tag's version now (0 when not read) */
} strata_inspect_tag;

/* What strata_inspect found. Caller-owned; value.data is library-owned and
 * released by strata_value_dispose(&info.value). */
typedef struct strata_inspection {
    unsigned int version;       /* STRATA_INSPECT_VERSION */
    int kind;                   /* strata_inspect_kind */
    int negative;               /* a cached "not found" */
    int stale_by_tag;           /* a tag was bumped since the entry was stamped */
    int64_t now_ms;             /* wall clock at the read */
    int64_t created_ms, fresh_until_ms, stale_until_ms; /* unix ms, from the envelope */
    uint32_t cost_ms;
    size_t ntags;
    strata_inspect_tag tags[16];
    int64_t backend_ttl_ms;     /* -1: no expiry, -2: the backend cannot tell */
    int lease;                  /* 1: a load lease is held on the key */
    char lease_holder[STRATA_INSPECT_HOLDER_MAX]; /* the holder's token */
    int64_t lease_ttl_ms;       /* -2 when unknown */
    size_t stored_len;          /* bytes stored (envelope or foreign) */
    strata_value value;         /* payload (ENTRY) or the raw bytes (FOREIGN) */
    int cleared;                /* strata_clear ran on the namespace since the write */
    uint64_t ns_stamped;        /* the namespace generation in the envelope (0 = none) */
    uint64_t ns_current;        /* the namespace generation now (0 = never cleared) */
} strata_inspection;

/* Reads key without touching L1, stats, leases or freshness. 0 and *out
 * filled (out->kind says what was found), or an error. */
STRATA_EXTERN int strata_inspect(strata_cache *cache, const char *key, size_t keylen,
                                 strata_inspection *out);

/* Keys of the namespace, one bounded page at a time (redis SCAN, never KEYS).
 * cursor "0" (or NULL) starts; strata_key_page_cursor gives the next one, "0"
 * once the scan is complete. match: a glob on user keys (NULL = all). count:
 * keys the server examines per page (a hint, 1-10000). STRATA_ENOTSUP on
 * backends that cannot list (memcached). */
typedef struct strata_key_page strata_key_page;
STRATA_EXTERN int strata_keys_scan(strata_cache *cache, const char *cursor, const char *match,
                                   size_t count, strata_key_page **out);
STRATA_EXTERN const char *strata_key_page_cursor(const strata_key_page *page);
STRATA_EXTERN size_t strata_key_page_count(const strata_key_page *page);
/* size: bytes stored; ttl_ms: -1 no expiry, -2 gone or unknown. */
STRATA_EXTERN int strata_key_page_item(const strata_key_page *page, size_t i, const char **key,
                                       size_t *keylen, int64_t *size, int64_t *ttl_ms);
STRATA_EXTERN void strata_key_page_free(strata_key_page *page);

#define STRATA_SERVER_INFO_VERSION 1

/* What strata_server_info reports; -1 (or "") where it does not apply or
 * could not be learnt, and problem[] says why a check failed. */
typedef struct strata_server_info {
    unsigned int version;       /* STRATA_SERVER_INFO_VERSION */
    char backend[16];           /* "redis", "memcached", "memory" */
    char server_version[64];
    int64_t rtt_us;             /* one round trip */
    int clock_known;
    int64_t clock_skew_ms;      /* the server's clock minus ours */
    int64_t maxmemory;          /* bytes; 0 = unlimited */
    char eviction_policy[32];   /* redis maxmemory-policy; memcached "lru" / "none" */
    int cluster;                /* 1 cluster mode, 0 not */
    char cluster_state[16];
    int pubsub;                 /* 1 a published message arrived, 0 it did not */
    int tracking;               /* 1 CLIENT TRACKING delivered an invalidation */
    int64_t item_size_max;      /* memcached item size limit */
    char problem[256];
} strata_server_info;

STRATA_EXTERN int strata_server_info_get(strata_cache *cache, strata_server_info *out);

#define STRATA_WB_STATUS_VERSION 1
#define STRATA_WB_STATUS_CONSUMERS 32

typedef struct strata_wb_consumer {
    char name[128];
    uint64_t pending;           /* records it holds, not yet acknowledged */
    int64_t idle_ms;
} strata_wb_consumer;

/* The write-behind journal now: on redis the namespace's stream (all
 * processes), on memory/memcached this cache's queue and journal file. */
typedef struct strata_wb_status {
    unsigned int version;       /* STRATA_WB_STATUS_VERSION */
    uint64_t backlog;           /* records not yet delivered */
    uint64_t pending;           /* of those, handed to a consumer (redis) */
    int64_t oldest_ms;          /* wall ms the oldest record was accepted; 0 = none */
    uint64_t dead;              /* dead letters */
    size_t nconsumers;          /* entries in consumers[] (at most 32 are listed) */
    strata_wb_consumer consumers[STRATA_WB_STATUS_CONSUMERS];
} strata_wb_status;

STRATA_EXTERN int strata_wb_status_get(strata_cache *cache, strata_wb_status *out);

/* Dead letters, oldest first. A list is library-owned; items point into it. */
typedef struct strata_dead_list strata_dead_list;
typedef struct strata_dead_letter {
    const char *id;             /* redis stream id, or "<n>" in the file */
    const char *key; size_t keylen;
    const char *val; size_t vallen;
    const char *error; size_t errorlen;  /* the writer's last message */
    int64_t given_up_ms;        /* wall ms */
    unsigned int attempts;
} strata_dead_letter;

/* Up to max (0 = all) dead letters. */
STRATA_EXTERN int strata_wb_dead_list(strata_cache *cache, size_t max, strata_dead_list **out);
STRATA_EXTERN size_t strata_dead_list_count(const strata_dead_list *list);
STRATA_EXTERN int strata_dead_list_item(const strata_dead_list *list, size_t i,
                                        strata_dead_letter *out);
STRATA_EXTERN void strata_dead_list_free(strata_dead_list *list);
/* Puts the dead letters of key (NULL = all) back into the journal as new
 * writes, oldest first, each exactly once (it leaves the dead letters in the
 * same step); *count (optional) = how many. */
STRATA_EXTERN int strata_wb_dead_replay(strata_cache *cache, const char *key, size_t keylen,
                                        size_t *count);
/* Deletes the dead letters of key (NULL = all); *count = how many. */
STRATA_EXTERN int strata_wb_dead_purge(strata_cache *cache, const char *key, size_t keylen,
                                       size_t *count);
/* ---- Framework primitives (docs/FRAMEWORKS.md) ----------------------------
 * TTL arguments: STRATA_TTL_DEFAULT (0) is the cache's default TTL (what
 * Python's and Lua's ttl=None mean); STRATA_TTL_FOREVER (-1) never expires
 * (redis: no PX, memcached: exptime 0); other negative values are EINVAL.
 * There is no "expire now" TTL: delete the key instead (Python and Lua reject
 * ttl=0). Every TTL-taking call accepts STRATA_TTL_FOREVER. */
#define STRATA_TTL_DEFAULT 0
#define STRATA_TTL_FOREVER (-1)

/* Every entry of this namespace misses afterwards, in this process at once
 * and in others within tag_cache_ms (at once where an invalidation link
 * carries the flush to their L1s): one O(1) bump of the namespace generation
 * (docs/FRAMEWORKS.md has the cost per read). Leases and locks are kept. */
STRATA_EXTERN int strata_clear(strata_cache *cache);

/* Stores the value only where the key holds no live value (absent, expired,
 * tag-outdated or cleared): 0 stored, STRATA_EXISTS not stored. Atomic across
 * processes: of racing adds exactly one stores. */
STRATA_EXTERN int strata_add(strata_cache *cache, const char *key, size_t keylen,
                             const char *val, size_t vallen, int64_t ttl_ms);

/* Adds delta to the decimal integer stored under key, atomically across
 * processes; *out (optional) gets the new value. A key without a live value
 * starts at 0 (it is created holding delta, for ttl_ms or the cache's
 * default). ttl_ms STRATA_TTL_DEFAULT keeps the entry's remaining TTL; any
 * other value gives it that TTL. STRATA_ENOTNUM when the stored value is not
 * a decimal integer (optional '-', digits, nothing else) or the sum would
 * overflow; the value is then unchanged. strata_get of the key returns the
 * decimal text. strata_decr subtracts delta. */
STRATA_EXTERN int strata_incr(strata_cache *cache, const char *key, size_t keylen,
                              int64_t delta, int64_t ttl_ms, int64_t *out);
STRATA_EXTERN int strata_decr(strata_cache *cache, const char *key, size_t keylen,
                              int64_t delta, int64_t ttl_ms, int64_t *out);

/* Deletes n keys (leases killed, L1s told) in one round trip per server on
 * redis (memcached: one call per key on one connection); *deleted (optional)
 * gets how many held a value. */
STRATA_EXTERN int strata_delete_many(strata_cache *cache, size_t n, const char *const *keys,
                                     const size_t *keylens, size_t *deleted);

/* strata_set_many with per-call options: ttl_ms, stale_ms, cost_ms and tags
 * (every item is stamped with the tags). opts NULL = the defaults. */
STRATA_EXTERN int strata_set_many_ex(strata_cache *cache, size_t n, const char *const *keys,
                                     const size_t *keylens, const char *const *vals,
                                     const size_t *vallens, const strata_set_options *opts);

/* A named lock on the backend's lease (one lock per name and namespace,
 * across processes; the holder is a random token, so only the holder's
 * handle can extend or release it, from any thread). ttl_ms > 0 bounds how
 * long a crashed holder blocks the others. */
typedef struct strata_lock strata_lock;
STRATA_EXTERN int strata_lock_new(strata_lock **out, strata_cache *cache, const char *name,
                                  size_t namelen, int64_t ttl_ms);
/* Does not release a held lock (it expires after its TTL); NULL is a no-op. */
STRATA_EXTERN void strata_lock_free(strata_lock *lock);
/* 0 acquired; STRATA_MISS_WAIT held (blocking == 0, or still after
 * timeout_ms; timeout_ms < 0 waits without bound). Not reentrant: while this
 * handle holds the lock, acquiring it again waits like any other taker. */
STRATA_EXTERN int strata_lock_acquire(strata_lock *lock, int blocking, int64_t timeout_ms);
/* 0 released; STRATA_ELEASE when this handle did not hold it (never taken,
 * expired, or taken over after expiry): nothing is released then. */
STRATA_EXTERN int strata_lock_release(strata_lock *lock);
/* 1 when anybody holds the lock now, 0 when nobody does, or an error. */
STRATA_EXTERN int strata_lock_locked(strata_lock *lock);
/* Renews a held lock for ttl_ms (0 = the lock's own TTL): 0, or
 * STRATA_ELEASE when it was lost (expired, or someone else holds it now). */
STRATA_EXTERN int strata_lock_extend(strata_lock *lock, int64_t ttl_ms);
/* ---- Sans-I/O operations (docs/SANS-IO.md) ---------------------------------
 *
 * For hosts that must not block (nginx cosockets, asyncio): the library decides,
 * the host moves the bytes. An operation is begun per call, then driven:
 *
 *   strata_op_lookup(&op, cache, key, keylen, NULL);
 *   for (;;) {
 *       strata_op_next(op, &io);
 *       if (io.kind == STRATA_IO_DONE) break;
 *       if (io.kind == STRATA_IO_WAIT) { sleep io.wait_ms the host's way; continue; }
 *       if (io.kind == STRATA_IO_SEND) write io.data/io.len to server io.server;
 *       read what arrives (within io.timeout_ms) and strata_op_feed() it, all of
 *       it or a byte at a time; on a connection failure or timeout call
 *       strata_op_io_failed() instead;
 *   }
 *   rc = strata_op_result(op, &value);     (the codes of strata_lookup/strata_get)
 *   after STRATA_MISS_LEAD / STRATA_HIT_REFRESH: load, then strata_op_fill() (or
 *   _fill_negative / _abandon) re-arms the same op: drive it again as above.
 *   strata_op_free(op);
 *
 * No callbacks, no sockets, no threads, no sleeping inside these calls. Every
 * decision (freshness, XFetch, tags, negative entries, leases, stale-if-error,
 * the breaker, metrics, L1) is the library's, exactly as in the blocking API.
 * Replies on one connection arrive in order: a driver may pipeline several
 * operations on one connection and hands each its bytes in turn; feed reports
 * how many bytes were the op's, the rest belong to the next op on that
 * connection. Supported on redis:// caches; other schemes give STRATA_ENOTSUP.
 * A cache made with the URL option io=host opens no socket and starts no
 * thread (its blocking calls give STRATA_ENOTSUP); on any other cache the op
 * API is available beside the blocking one and never touches its pool.
 */
typedef struct strata_op strata_op; /* one call in progress; one thread at a time */

typedef enum strata_io_kind {
    STRATA_IO_DONE = 0, /* finished: read strata_op_result() */
    STRATA_IO_SEND = 1, /* send data/len to the server, then feed the replies */
    STRATA_IO_RECV = 2, /* nothing to send: feed more reply bytes from the server */
    STRATA_IO_WAIT = 3  /* sleep wait_ms (another caller holds the lease), then call next */
} strata_io_kind;

#define STRATA_IO_VERSION 1

/* What the driver does next (filled by strata_op_next; the struct is the
 * caller's, reusable). */
typedef struct strata_io {
    unsigned int version;
    int kind;               /* strata_io_kind */
    unsigned int server;    /* which server: an index stable for the cache's life, for
                               the driver's own connection pool (key it by index) */
    const char *host;       /* that server's address (NUL-terminated, valid while the cache is) */
    int port;
    const char *data;       /* SEND: bytes to write, valid until the next call on this op */
    size_t len;
    int64_t timeout_ms;     /* SEND/RECV: the replies must be in within this many ms, else
                               strata_op_io_failed(op, STRATA_ETIMEOUT, ...) */
    int64_t deadline_ms;    /* the same moment on strata_clock_ms()'s clock */
    int64_t wait_ms;        /* WAIT: how long to sleep before the next strata_op_next */
} strata_io;

#define STRATA_IO_INIT {STRATA_IO_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0}

#define STRATA_OP_OPTIONS_VERSION 1

/* Options of strata_op_lookup / strata_op_get_many (NULL = the defaults). */
typedef struct strata_op_options {
    unsigned int version;
    int64_t timeout_ms;           /* per exchange; 0 = the cache's timeout_ms */
    int lease;                    /* 1 (default): a miss takes the lease (MISS_LEAD), as
                                     strata_lookup; 0: a plain read, as strata_get */
    int wait;                     /* 0 (default): MISS_WAIT is a result, as strata_lookup;
                                     1: the op asks the host to WAIT and retries until
                                     lock_wait_ms, then gives STRATA_ETIMEOUT (wait_policy
                                     fail) or STRATA_MISS (load without the lease, no fill) */
    const char *const *tags;      /* lookup: a fill is stamped with these tags' versions, */
    const size_t *taglens;        /*   read during the lookup (before the load) */
    size_t ntags;
} strata_op_options;

#define STRATA_OP_OPTIONS_INIT {STRATA_OP_OPTIONS_VERSION, 0, 1, 0, 0, 0, 0}

/* Monotonic milliseconds: the clock of strata_io.deadline_ms. */
STRATA_EXTERN int64_t strata_clock_ms(void);
STRATA_EXTERN int strata_io_init(strata_io *io, unsigned int version);
STRATA_EXTERN int strata_op_options_init(strata_op_options *opts, unsigned int version);

/* Begin an operation (*out is NULL on error). Inputs are copied. */
STRATA_EXTERN int strata_op_lookup(strata_op **out, strata_cache *cache, const char *key,
                                   size_t keylen, const strata_op_options *opts);
STRATA_EXTERN int strata_op_get_many(strata_op **out, strata_cache *cache, size_t n,
                                     const char *const *keys, const size_t *keylens,
                                     const strata_op_options *opts);
STRATA_EXTERN int strata_op_set(strata_op **out, strata_cache *cache, const char *key,
                                size_t keylen, const char *val, size_t vallen,
                                const strata_set_options *opts);
STRATA_EXTERN int strata_op_delete(strata_op **out, strata_cache *cache, const char *key,
                                   size_t keylen);
STRATA_EXTERN int strata_op_invalidate_tag(strata_op **out, strata_cache *cache,
                                           const char *tag, size_t taglen);
/* strata_touch as an op: the entry's TTL renewed from now (0 = the cache's
 * default), its value, stamps and cost kept; STRATA_MISS when absent, expired
 * or outdated by a tag bump (not revived). */
STRATA_EXTERN int strata_op_touch(strata_op **out, strata_cache *cache, const char *key,
                                  size_t keylen, int64_t ttl_ms);
/* strata_write_behind as an op (one key): the cache write and its journal
 * record on the Redis stream in one round trip; a flusher of the namespace's
 * consumer group (a process with wb_threads, or strata_wb_poll) delivers it.
 * Over wb_max_backlog it ends with STRATA_EBUSY at once (no wb_block_ms wait). */
STRATA_EXTERN int strata_op_write_behind(strata_op **out, strata_cache *cache, const char *key,
                                         size_t keylen, const char *val, size_t vallen,
                                         int64_t ttl_ms);
/* Connection setup for a new connection to server (AUTH, SELECT): drive it
 * first on every connection the driver opens (it may be DONE at once). */
STRATA_EXTERN int strata_op_hello(strata_op **out, strata_cache *cache, unsigned int server);
/* The invalidation link: a long-lived op on a connection of its own. It sends
 * SUBSCRIBE, then RECVs forever; what it hears becomes events (strata_events_next)
 * and evicts the C L1. On RECV timeout (the ping period) report ETIMEOUT: it sends
 * a PING and carries on; a second silence or a failure ends it (the result says
 * why; a LINK_DOWN and a FLUSH event are queued): begin a new one after a backoff. */
STRATA_EXTERN int strata_op_subscribe(strata_op **out, strata_cache *cache);

/* Driving. next: what to do now (0, or an error when io is bad). feed: reply
 * bytes from io.server, any split; *consumed (optional) = how many were this
 * op's; returns 0 when the op has every reply it asked for (call next), 1 when
 * it needs more, or a negative code when the bytes are not a valid reply (the
 * op is then done with that error: close the connection). io_failed: the
 * connection failed or timed out (code STRATA_ETIMEOUT or STRATA_EBACKEND,
 * message optional); it counts for the breaker, and the op decides (fail open,
 * stale-if-error) as the blocking API would. Close that connection. */
STRATA_EXTERN int strata_op_next(strata_op *op, strata_io *io);
STRATA_EXTERN int strata_op_feed(strata_op *op, const char *data, size_t len, size_t *consumed);
STRATA_EXTERN int strata_op_io_failed(strata_op *op, int code, const char *message);

/* The outcome once DONE: the codes of strata_lookup / strata_get / strata_set /
 * strata_delete / strata_invalidate_tag; value may be NULL for writes. Its
 * message (for errors) is strata_op_error(). */
STRATA_EXTERN int strata_op_result(strata_op *op, strata_value *value);
STRATA_EXTERN const char *strata_op_error(const strata_op *op);
/* get_many: key i's read outcome and value (STRATA_OK, STRATA_MISS, ...). */
STRATA_EXTERN int strata_op_item(strata_op *op, size_t i, strata_value *value);

/* ---- Op result metadata for host tiers (version 1) ----
 * What a host tier (an nginx shm, a Python object tier) needs to keep an
 * entry the way the library would: after a lookup's result (i = 0) or a
 * get_many item's (i = the item), the stored envelope's fresh-until and
 * stale-until (wall clock, unix ms: the clock of time(), ngx.now() * 1000,
 * time.time() * 1000; not strata_clock_ms), the loader cost it records (for
 * XFetch) and whether it carries tag stamps. After a successful fill, the
 * entry the fill stored. STRATA_META_EXACT is set when the fields come from
 * the envelope itself; without it (an L1 hit, stale-if-error from L1) only
 * fresh_until is known (from the value's ttl_ms), stale_until equals it,
 * cost_ms is 0 and STRATA_META_TAGGED is set, because the stamps are unknown.
 * A TAGGED entry must have its tags verified before a host serves it again
 * (serve it only through a lookup), whatever its TTL says. */
#define STRATA_OP_META_VERSION 1

typedef enum strata_meta_flag {
    STRATA_META_EXACT  = 1, /* fields from the stored envelope */
    STRATA_META_TAGGED = 2  /* carries tag stamps (or may: without EXACT) */
} strata_meta_flag;

typedef struct strata_op_meta {
    unsigned int version;
    unsigned int flags;           /* strata_meta_flag bits */
    int64_t fresh_until_ms;       /* unix ms: served fresh until then */
    int64_t stale_until_ms;       /* unix ms: kept for stale serving until then */
    int64_t cost_ms;              /* the load time the entry records (0 = unknown) */
} strata_op_meta;

#define STRATA_OP_META_INIT {STRATA_OP_META_VERSION, 0, 0, 0, 0}

STRATA_EXTERN int strata_op_meta_init(strata_op_meta *meta, unsigned int version);
/* 0 and meta filled; STRATA_MISS (meta zeroed) when the result names no entry
 * (a miss, MISS_LEAD, MISS_WAIT, an error, a write op). */
STRATA_EXTERN int strata_op_meta_get(strata_op *op, size_t i, strata_op_meta *meta);

/* After STRATA_MISS_LEAD or STRATA_HIT_REFRESH: re-arm the op to store the
 * loaded value under its lease (0 or STRATA_ELEASE when it was lost), a
 * "not found", or to give the lease back. ttl_ms 0 = the cache's default. */
STRATA_EXTERN int strata_op_fill(strata_op *op, const char *val, size_t vallen, int64_t ttl_ms);
STRATA_EXTERN int strata_op_fill_negative(strata_op *op, int64_t neg_ttl_ms);
STRATA_EXTERN int strata_op_abandon(strata_op *op);

/* Cancels at any point; a lease still held is left to expire (lease_ttl_ms).
 * If bytes were sent and not all replies fed, close that connection. It may
 * come after strata_cache_free of the op's cache (garbage collectors run
 * finalizers in no set order); no other op call may. */
STRATA_EXTERN void strata_op_free(strata_op *op);

/* Coherence events for host-side tiers (a Lua lrucache, a Python object tier):
 * keys changed by this cache's own writes (any API) and by others (heard by
 * the invalidation link, or fed through strata_op_subscribe). Collection
 * starts at the first strata_events_next call (always on with io=host); at
 * most 4096 wait, an overflow becomes one FLUSH. */
typedef enum strata_event_kind {
    STRATA_EVENT_EVICT     = 1, /* drop key */
    STRATA_EVENT_FLUSH     = 2, /* drop everything (link lost, FLUSHDB, overflow) */
    STRATA_EVENT_LINK_UP   = 3, /* the invalidation link is subscribed */
    STRATA_EVENT_LINK_DOWN = 4  /* lost: serve nothing from host tiers until LINK_UP */
} strata_event_kind;

#define STRATA_EVENT_VERSION 1

typedef struct strata_event {
    unsigned int version;
    int kind;                     /* strata_event_kind */
    const char *key;              /* EVICT: the user key (no namespace), valid until the next call */
    size_t keylen;
    int own;                      /* 1 when this cache's own write caused it */
} strata_event;

#define STRATA_EVENT_INIT {STRATA_EVENT_VERSION, 0, 0, 0, 0}

STRATA_EXTERN int strata_event_init(strata_event *ev, unsigned int version);
/* 0 and the oldest event, or STRATA_MISS when none is waiting. */
STRATA_EXTERN int strata_events_next(strata_cache *cache, strata_event *ev);

/* ---- Object tiers of bindings (issue 16; docs/L1-COHERENCE.md) ----
 * A binding that keeps decoded objects beside L1 (the Python object tier)
 * keys each one to the L1 entry it was decoded from. strata_l1_get reads
 * L1 only (STRATA_MISS when the key is not there: not counted, the caller's
 * strata_get that follows counts it) and names the entry served in *version;
 * strata_l1_check answers, without copying anything, whether
 * that entry still serves the key now, deciding exactly as an L1 hit would
 * (expiry, invalidations from this and other processes, tag bumps, writes,
 * clears): STRATA_OK (counted as an L1 hit), STRATA_NEGATIVE, or STRATA_MISS
 * (the caller reads again). */
STRATA_EXTERN int strata_l1_get(strata_cache *cache, const char *key, size_t keylen,
                                       strata_value *out, uint64_t *version);
STRATA_EXTERN int strata_l1_check(strata_cache *cache, const char *key, size_t keylen, uint64_t version);

#ifdef __cplusplus
}
#endif

#endif /* STRATACACHE_H */
