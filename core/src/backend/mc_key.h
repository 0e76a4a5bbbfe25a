/*
 * Memcached keys: the bytes actually sent for a value or lease key. Memcached
 * takes 1-250 bytes without whitespace or control bytes (and libmemcached
 * aborts the process after some bad keys), so every key that is not plainly
 * safe becomes "<ns>#H:" + hex(sha256(logical key)). Pure, so the fuzz
 * harness (tests/fuzz/fuzz_mc_key.c) drives exactly what the backend sends.
 */
#ifndef STRATA_MC_KEY_H
#define STRATA_MC_KEY_H

#include <stddef.h>

#define STRATA__MC_KEY_MAX 250

/* 1 when memcached takes k as it is. */
int strata__mc_key_is_safe(const char *k, size_t n);

/* The key sent for the logical key (value "<ns>:<user>" or lease
 * "<ns>#L:<user>"): written NUL-terminated into out (STRATA__MC_KEY_MAX + 1
 * bytes); returns its length. */
size_t strata__mc_key_from_logical(const char *ns, size_t nslen, const char *logical, size_t len,
                                   char *out);

/* The lease key of a full value key: "<ns>#L:<user key>" (a key without the
 * "<ns>:" prefix is taken whole), then made safe as above. Returns its
 * length, or 0 when out of memory (the error is set). */
size_t strata__mc_lease_key(const char *ns, size_t nslen, const char *key, size_t keylen, char *out);

#endif
