/*
 * One call's key, checked and hashed once where the call enters the library
 * and carried through every layer: the L1 shard and bucket, the hot-key
 * sketch and the XFetch draw all take this one hash, and the namespaced
 * backend key is built at most once per call (strata__key_full, engine).
 */
#ifndef STRATA_KEY_H
#define STRATA_KEY_H

#include <stddef.h>
#include <stdint.h>

#include <string.h>

#include "policy/hash.h"

#define STRATA__KEY_SEED 0x4c31u

typedef struct strata__key {
    const char *ptr;  /* the caller's key, borrowed for the call */
    size_t len;
    uint64_t hash;    /* strata__hash64(ptr, len, STRATA__KEY_SEED) */
    const char *full; /* "<ns>:<key>" once built (NULL before), in the caller's buffer */
    size_t fulllen;
} strata__key;

/* A descriptor for a key already known to be valid (no check). */
static inline strata__key strata__key_of(const char *key, size_t len)
{
    strata__key k;
    k.ptr = key;
    k.len = len;
    k.hash = strata__hash64(key, len, STRATA__KEY_SEED);
    k.full = NULL;
    k.fulllen = 0;
    return k;
}

/* Whether two keys of length len are the same bytes: inline, with two
 * overlapping loads for the usual 4-16-byte key instead of a memcmp call
 * (the L1's bucket probe and the hot-key top-k). */
static inline int strata__key_bytes_equal(const char *a, const char *b, size_t len)
{
    uint64_t x, y, x2, y2;
    if (len >= 4 && len < 8) {
        uint32_t p, q, p2, q2;
        memcpy(&p, a, 4);
        memcpy(&q, b, 4);
        memcpy(&p2, a + len - 4, 4);
        memcpy(&q2, b + len - 4, 4);
        return ((p ^ q) | (p2 ^ q2)) == 0;
    }
    if (len < 8 || len > 16)
        return memcmp(a, b, len) == 0;
    /* 4-16 bytes, the usual key: two overlapping loads each, no call */
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
    memcpy(&x2, a + len - 8, 8);
    memcpy(&y2, b + len - 8, 8);
    return ((x ^ y) | (x2 ^ y2)) == 0;
}

#endif
