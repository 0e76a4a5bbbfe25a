/*
 * Tags: version counters in the backend, stamped into envelopes, checked on
 * every read. Design and guarantees in docs/TAGS.md.
 */
#ifndef STRATA_TAGS_H
#define STRATA_TAGS_H

#include "stratacache.h"
#include "policy/envelope.h"
#include "policy/key.h"
#include "local/l1.h"
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
                           uint64_t ns, int64_t now_ms, int count); /* ns: the namespace generation */
/* Versions only grow, so a stamp newer than the version at hand proves that
 * version was cached before a bump elsewhere: forgets each such version, so
 * the next read fetches it; returns how many (0 = v and ns are current enough
 * for strata__tags_apply). Same arguments as strata__tags_apply. */
size_t  strata__tags_forget_behind(strata_cache *c, size_t n, strata__envelope *const *envs, const uint64_t *v,
                                   uint64_t ns);
#define STRATA__TAG_KEYBUF (STRATA__MAX_NS + 3 + STRATA__ENV_MAX_TAG_LEN)

/* L1 keeps a tagged entry as its whole envelope so that every hit checks the
 * stamps (local bumps at once, other processes' within tag_cache_ms). */
void strata__tags_l1_put(strata_cache *c, const strata__key *k, const strata__envelope *e,
                         int64_t now_ms, uint64_t epoch);
int  strata__tags_l1_check(void *cache, const strata__key *k, int64_t now_ms,
                           strata_value *out, int rc, strata__l1_token *token);

/* The counter strata__tags_l1_check's tokens carry: it moves whenever a
 * cached tag version changes or enters the cache. */
const uint64_t *strata__tags_generation(const strata__tags *t);

/* Ticket and load plumbing (lookup.c, load.c): where a stamp is kept. */
strata__tagstamp **strata__ticket_stamp(strata_ticket *t);
strata_cache *strata__ticket_cache(strata_ticket *t);
strata__tagstamp **strata__load_stamp(strata_load *l);
strata_cache *strata__load_cache(strata_load *l);

/* ---- the namespace generation (strata_clear; docs/FRAMEWORKS.md) ---- */
/* The namespace's current generation: 0 until its first clear. Cached like a
 * tag version (except on memory://, which is asked directly). */
int  strata__tags_ns_version(strata_cache *c, uint64_t *out);
/* out = the caller's tags (any earlier namespace stamp dropped) plus the
 * current namespace stamp when there is one; returns the count, *rc = 0 or
 * the error of reading the generation. out has room for STRATA__ENV_MAX_TAGS. */
size_t strata__tags_with_ns(strata_cache *c, const strata__env_tag *tags, size_t ntags, strata__env_tag *out,
                            const uint64_t *known_ns, int *rc); /* known_ns: the generation, NULL = read it */
/* Bumps the generation (creating it at a fresh version): every entry stamped
 * with an older one, or with none, is outdated. */
int  strata__tags_clear(strata_cache *c);
/* Drops the cached generation, so the next read asks the backend (a flush
 * message from another process's clear). */
void strata__tags_ns_forget(strata_cache *c);
/* Drops the cached versions of e's stamps and of the namespace generation:
 * before a conditional write trusts a verdict of "outdated" (a stamp newer
 * than a cached version only means the cache is behind). */
void strata__tags_forget(strata_cache *c, const strata__envelope *e);
/* The tags of e a caller gave (the namespace stamp left out). */
size_t strata__env_user_tags(const strata__envelope *e);

#endif
