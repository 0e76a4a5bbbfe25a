/*
 * Tags: version counters in the backend, stamped into envelopes, checked on
 * every read. Design and guarantees in docs/TAGS.md.
 */
#ifndef STRATA_TAGS_H
#define STRATA_TAGS_H

#include "stratacache.h"
#include "policy/envelope.h"
#include "config.h"

#include <stdint.h>

typedef struct strata__tags strata__tags; /* the in-process version cache */

/* A tag list with its versions, owning its names (tickets, loads). */
typedef struct strata__tagstamp {
    size_t n;
    strata__env_tag tags[STRATA__ENV_MAX_TAGS];
    char names[];
} strata__tagstamp;

/* cache_ms 0 = no cache: every check asks the backend. */
int  strata__tags_new(strata__tags **out, int64_t cache_ms);
void strata__tags_free(strata__tags *t);

/* Checks a caller's tag list: arrays, count (<= 16), each 1-256 bytes. */
int strata__tags_check(const char *const *tags, const size_t *taglens, size_t ntags);

/* out[i] = {tags[i], its current version}: version cache, then at most one
 * backend round trip for all the tags it lacks. */
int strata__tags_stamp(strata_cache *c, const char *const *tags, const size_t *taglens, size_t ntags,
                       strata__env_tag *out);

/* The same, into a new owned stamp (*out NULL when ntags is 0). */
int  strata__tagstamp_new(strata_cache *c, const char *const *tags, const size_t *taglens, size_t ntags,
                          strata__tagstamp **out);
void strata__tagstamp_free(strata__tagstamp *s);

/* Checks the stamps of n decoded envelopes (NULL entries skipped) in at most
 * one round trip. An envelope stamped with an outdated version is expired as
 * of now_ms: fresh-until moves to now and its stale window (stale-until minus
 * fresh-until) starts now, so it reads as stale only where stale serving was
 * allowed, else as a miss. Returns how many were expired, or an error. */
int strata__tags_verify(strata_cache *c, size_t n, strata__envelope *const *envs, int64_t now_ms);

/* The pieces of a version read, for hosts driving the I/O (op_read.c). */
size_t  strata__tags_key(const strata_cache *c, const char *name, size_t len, char *buf); /* "<ns>#T:<tag>" */
int64_t strata__tags_fresh_version(void);        /* the start of a new counter */
int     strata__tags_parse_version(const char *s, size_t len, uint64_t *v); /* 0 or -1 */
int     strata__tags_cached(strata_cache *c, const char *name, size_t len, uint64_t *v); /* 1 = known */
void    strata__tags_remember(strata_cache *c, const char *name, size_t len, uint64_t v, int replace);
/* Expires the envelopes stamped with versions other than v (their tags in
 * order, flattened); returns how many. */
int     strata__tags_apply(strata_cache *c, size_t n, strata__envelope *const *envs, const uint64_t *v,
                           int64_t now_ms, int count);
#define STRATA__TAG_KEYBUF (STRATA__MAX_NS + 3 + STRATA__ENV_MAX_TAG_LEN)

/* L1 keeps a tagged entry as its whole envelope so that every hit checks the
 * stamps (local bumps at once, other processes' within tag_cache_ms). */
void strata__tags_l1_put(strata_cache *c, const char *key, size_t keylen, const strata__envelope *e,
                         int64_t now_ms, uint64_t epoch);
int  strata__tags_l1_check(void *cache, const char *key, size_t keylen, int64_t now_ms,
                           strata_value *out, int rc);

/* Ticket and load plumbing (lookup.c, load.c): where a stamp is kept. */
strata__tagstamp **strata__ticket_stamp(strata_ticket *t);
strata_cache *strata__ticket_cache(strata_ticket *t);
strata__tagstamp **strata__load_stamp(strata_load *l);
strata_cache *strata__load_cache(strata_load *l);

#endif
