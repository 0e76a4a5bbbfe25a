/* A fast 64-bit hash for in-process tables and sketches (not for security).
 * Inline: every call's key is hashed once, on its way in, so this is part
 * of every L1 hit. */
#ifndef STRATA_HASH_H
#define STRATA_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Multiply-xorshift over 8-byte words, then a murmur-style finaliser. */
static inline uint64_t strata__hash_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static inline uint64_t strata__hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ull);
    uint64_t w;
    while (len >= 8) {
        memcpy(&w, p, 8);
        h = (h ^ strata__hash_mix(w)) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    /* The 0-7 byte tail in at most two loads (overlapping when 3-7 bytes
     * remain) instead of a byte-by-byte copy: keys are short, so the tail is
     * most of the work. */
    if (len >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + len - 4, 4);
        w = (uint64_t)lo | ((uint64_t)hi << 32);
    } else if (len > 0) {
        w = (uint64_t)p[0] | ((uint64_t)p[len / 2] << 8) | ((uint64_t)p[len - 1] << 16);
    } else {
        w = 0;
    }
    return strata__hash_mix((h ^ w ^ ((uint64_t)len << 56)) * 0x9e3779b97f4a7c15ull);
}

#endif
