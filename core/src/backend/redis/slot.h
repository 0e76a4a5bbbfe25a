/*
 * Redis Cluster key slots, pure: slot = CRC16-XMODEM(key) mod 16384, where a
 * key with a hash tag (the first "{" followed by a non-empty "...}") hashes
 * only the text inside it, so keys sharing a tag share a slot.
 */
#ifndef STRATA_REDIS_SLOT_H
#define STRATA_REDIS_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define STRATA__CLUSTER_SLOTS 16384

uint16_t     strata__crc16(const char *buf, size_t len);
/* 1 and the tag's offset and length when key has a hash tag Redis honours, else 0. */
int          strata__cluster_hashtag(const char *key, size_t keylen, size_t *start, size_t *len);
unsigned int strata__cluster_slot(const char *key, size_t keylen);

#endif
