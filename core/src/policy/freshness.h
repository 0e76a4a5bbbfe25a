/*
 * Freshness decisions: pure functions of (entry times, clock, random draw,
 * options). Unit-tested with a fixed clock and RNG.
 */
#ifndef STRATA_FRESHNESS_H
#define STRATA_FRESHNESS_H

#include <stddef.h>
#include <stdint.h>

typedef enum strata__verdict {
    STRATA__FRESH = 0,     /* serve it */
    STRATA__EARLY_REFRESH, /* serve it, and refresh now (XFetch chose this caller) */
    STRATA__STALE,         /* past fresh-until, before stale-until: serve while revalidating */
    STRATA__EXPIRED        /* past stale-until: a miss */
} strata__verdict;

/* XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015), drawn once per
 * process and stored version (see strata__xfetch_draw): refresh early when
 *   now + cost * beta * (1 - ln(u)) >= fresh_until,  u uniform in (0, 1].
 * The paper's term is -cost * beta * ln(u); the added cost * beta starts the
 * refresh at least one load time before expiry, so with one draw per process
 * the new value is in place before readers could see the old one expire.
 * With beta = 0 or cost = 0 the entry is simply fresh until fresh_until. */
strata__verdict strata__freshness(int64_t now_ms, int64_t fresh_until_ms, int64_t stale_until_ms,
                                  uint32_t cost_ms, double beta, double u);

/* XFetch's u for one process and one stored version of a key (identified by
 * its fresh_until): a hash of (seed, key, fresh_until) mapped onto (0, 1].
 * Drawing per request would make the first early refresh come earlier the
 * busier the key is (at 100k reads/s a 100 ms load refreshes ~0.9 s early, so
 * several loads per TTL); drawing once per process and version keeps the
 * expected margin at cost * beta per process, whatever the read rate. */
double strata__xfetch_draw(uint64_t seed, const char *key, size_t keylen, int64_t fresh_until_ms);

/* The same from the key's hash (the call's key descriptor carries it), so a
 * read past L1 hashes its key once. */
double strata__xfetch_draw_hashed(uint64_t seed, uint64_t key_hash, int64_t fresh_until_ms);

/* TTL with jitter: spreads expiries by shortening ttl by up to pct percent
 * (never lengthening it, so a TTL is an upper bound). u uniform in (0, 1]. */
int64_t strata__jitter_ttl(int64_t ttl_ms, unsigned int pct, double u);

#endif
