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

#endif
