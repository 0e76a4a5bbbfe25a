/* Thread-local error messages behind strata_error_last(). */
#ifndef STRATA_ERROR_H
#define STRATA_ERROR_H

#include "stratacache.h"

#if defined(__GNUC__)
#  define STRATA__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define STRATA__PRINTF(a, b)
#endif

/* Records the message for this thread and returns `code`, so callers can
 * `return strata__error(STRATA_EINVAL, "key is NULL");`. */
int strata__error(int code, const char *fmt, ...) STRATA__PRINTF(2, 3);
/* The body of a versioned public struct's *_init: refuses NULL and an unknown
 * version naming the type, then copies defaults (NULL: zeroes the struct and
 * stamps version, its first field). */
int strata__struct_init(void *p, size_t size, const void *defaults, const char *type, unsigned int version,
                        unsigned int known);
void strata__error_clear(void);

/* A millisecond input within [lo, STRATA_MAX_MS]: 0, or `code` with a message
 * naming it ("ttl_ms must be 0-31622400000 ms, got ..."). */
int strata__check_ms(int code, const char *name, int64_t ms, int64_t lo);
/* A per-call TTL: 0 (the cache's default), 1..STRATA_MAX_MS, or STRATA_TTL_FOREVER; else EINVAL naming it. */
int strata__check_ttl(const char *name, int64_t ttl_ms);

/* Printable form of a key for messages: truncated, non-printables escaped. */
const char *strata__key_for_message(const char *key, size_t keylen, char *buf, size_t bufsize);

#endif
