/* SHA-256 (FIPS 180-4), used to map keys memcached cannot store to a
 * fixed-length safe form. One-shot only: keys are small. */
#ifndef STRATA_SHA256_H
#define STRATA_SHA256_H

#include <stddef.h>

#define STRATA__SHA256_LEN 32

void strata__sha256(const void *data, size_t len, unsigned char out[32]);

#endif
