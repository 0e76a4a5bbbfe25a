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
void strata__error_clear(void);

/* A millisecond input within [lo, STRATA_MAX_MS]: 0, or `code` with a message
 * naming it ("ttl_ms must be 0-31622400000 ms, got ..."). */
int strata__check_ms(int code, const char *name, int64_t ms, int64_t lo);
/* A per-call TTL: 0 (the cache's default), 1..STRATA_MAX_MS, or STRATA_TTL_FOREVER; else EINVAL naming it. */
int strata__check_ttl(const char *name, int64_t ttl_ms);

/* Printable form of a key for messages: truncated, non-printables escaped. */
const char *strata__key_for_message(const char *key, size_t keylen, char *buf, size_t bufsize);

#endif
