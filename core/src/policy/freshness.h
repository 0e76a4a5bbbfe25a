/*
 * Freshness decisions: pure functions of (entry times, clock, random draw,
 * options). Unit-tested with a fixed clock and RNG.
 */
#ifndef STRATA_FRESHNESS_H
#define STRATA_FRESHNESS_H

#include <stdint.h>

typedef enum strata__verdict {
    STRATA__FRESH = 0,     /* serve it */
    STRATA__EARLY_REFRESH, /* serve it, and refresh now (XFetch chose this caller) */
    STRATA__STALE,         /* past fresh-until, before stale-until: serve while revalidating */
    STRATA__EXPIRED        /* past stale-until: a miss */
} strata__verdict;

/* XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): refresh early when
 *   now - cost * beta * ln(u) >= fresh_until,  u uniform in (0, 1].
 * With beta = 0 or cost = 0 the entry is simply fresh until fresh_until. */
strata__verdict strata__freshness(int64_t now_ms, int64_t fresh_until_ms, int64_t stale_until_ms,
                                  uint32_t cost_ms, double beta, double u);

/* TTL with jitter: spreads expiries by shortening ttl by up to pct percent
 * (never lengthening it, so a TTL is an upper bound). u uniform in (0, 1]. */
int64_t strata__jitter_ttl(int64_t ttl_ms, unsigned int pct, double u);

#endif
