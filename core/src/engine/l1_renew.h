/*
 * Renewal of hot L1 entries (l1_renew=1, the default on redis:// and
 * memcached:// with L1 on): a thread per cache re-reads, in batches through
 * the backend's get_many, the entries hit since their fill or last renewal
 * that are about to reach their serve-until, so a hot key's read after
 * l1_ttl_ms no longer waits for a round trip. The bound stays: an entry is
 * never served more than l1_ttl_ms after the backend read that produced it
 * (docs/L1-COHERENCE.md, "Renewal").
 */
#ifndef STRATA_L1_RENEW_H
#define STRATA_L1_RENEW_H

struct strata_cache;
typedef struct strata__l1_renewer strata__l1_renewer;

/* Starts the thread where renewal applies (else leaves c->renewer NULL). */
int  strata__l1_renew_start(struct strata_cache *c);
/* Stops and joins it (a forked child's inherited one is only freed). */
void strata__l1_renew_stop(struct strata_cache *c);
/* In a forked child the parent's thread is not here: the first fill there
 * starts the child's own (a cheap check otherwise). */
void strata__l1_renew_after_fork(struct strata_cache *c);

#endif
