/* A fast 64-bit hash for in-process tables and sketches (not for security). */
#ifndef STRATA_HASH_H
#define STRATA_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t strata__hash64(const void *data, size_t len, uint64_t seed);

#endif
