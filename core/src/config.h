/* A cache's settings: the options struct merged with the URL (the URL wins,
 * so deployment configuration overrides compiled-in defaults). */
#ifndef STRATA_CONFIG_H
#define STRATA_CONFIG_H

#include "stratacache.h"

typedef enum strata__scheme {
    STRATA__SCHEME_MEMORY = 0,
    STRATA__SCHEME_REDIS,
    STRATA__SCHEME_MEMCACHED
} strata__scheme;

#define STRATA__MAX_SERVERS 64
#define STRATA__MAX_NS 64

typedef struct strata__server {
    char host[256];
    int port;
} strata__server;

typedef struct strata__config {
    strata__scheme scheme;
    strata__server servers[STRATA__MAX_SERVERS];
    size_t nservers;
    char user[128];
    char password[256];
    int db;                      /* redis database number */
    unsigned int refresh_threads; /* background refreshers for get_or_load; 0 = inline */
    unsigned int hot_sample;     /* an L1 hit feeds the sketch 1 time in this many (power of two) */
    int hot_compare;             /* l1_admission=hot: a full shard compares newcomer and victim (TinyLFU) */
    char ns[STRATA__MAX_NS + 1]; /* namespace, "" for none */
    size_t nslen;
    strata_options opts;         /* every field valid; opts.ns points at ns */
    uint64_t instance;           /* random per cache handle: names its invalidations */
    char wb_journal[1024];       /* opts.wb_journal points here ("" = none -> NULL) */
    char wb_consumer[128];       /* opts.wb_consumer points here ("" = default -> NULL) */
    int io_host;                 /* io=host: the host drives every exchange (docs/SANS-IO.md) */
    char l1_bus[512];            /* redis:// URL of the invalidation bus (memcached), "" = none */
    /* write-behind housekeeping, URL only (docs/WRITE-BEHIND.md); 0 = default / no limit */
    uint64_t wb_journal_compact_bytes;
    uint64_t wb_dead_max;
    int64_t wb_dead_max_age_ms;
    int payload_crc;             /* URL payload_crc=1: envelopes carry a CRC32C of the payload */
    /* Redis Cluster (docs/CLUSTER.md) */
    int cluster;                 /* redis+cluster://seed1,seed2: servers[] are the seeds */
} strata__config;

/* Bounds of the hot-key options (validated in config_hot.c). */
#define STRATA__HOT_MAX_WIDTH (1u << 26)
#define STRATA__HOT_MAX_WINDOW (1u << 30)
#define STRATA__HOT_MAX_TOP 1024u
#define STRATA__HOT_SAMPLE_DEFAULT 16u

/* Records the l1_bus URL (checked by strata__validate_hot). */
int strata__set_l1_bus(strata__config *cfg, const char *url, size_t len);

/* The bus's server, credentials and database parsed into out (a redis config). */
int strata__parse_l1_bus(const strata__config *cfg, strata__config *out);

/* Checks what a redis+cluster:// config may not ask for (config_cluster.c). */
int strata__validate_cluster(const strata__config *cfg);

/* Checks the hot-key and coherence options of a parsed config. */
int strata__validate_hot(const strata__config *cfg);

/* Parses url into cfg on top of opts (NULL = defaults). Errors: STRATA_EURL,
 * STRATA_EOPTION or STRATA_EVERSION with a message naming the problem. */
int strata__config_parse(strata__config *cfg, const char *url, const strata_options *opts);

#endif
