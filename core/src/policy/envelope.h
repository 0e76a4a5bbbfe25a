/*
 * The envelope: the versioned header wrapped around every stored value, the
 * one format shared by C, Python and Lua. Byte layout in docs/FORMAT.md.
 * Pure: no I/O, no allocation (the caller provides the output buffer).
 */
#ifndef STRATA_ENVELOPE_H
#define STRATA_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#define STRATA__ENV_HEADER 44
/* 16 caller tags plus the namespace generation stamp (the tag with an empty
 * name, written only once the namespace has been cleared: docs/FRAMEWORKS.md). */
#define STRATA__ENV_MAX_TAGS 17
#define STRATA__MAX_USER_TAGS 16
#define STRATA__ENV_MAX_TAG_LEN 256
#define STRATA__ENV_FLAG_NEGATIVE 0x01
/* A CRC32C of the payload follows the tag section (docs/FORMAT.md). */
#define STRATA__ENV_FLAG_PAYLOAD_CRC 0x02
#define STRATA__ENV_FLAGS_KNOWN (STRATA__ENV_FLAG_NEGATIVE | STRATA__ENV_FLAG_PAYLOAD_CRC)
/* strata__env_decode: ours, but the payload fails its CRC32C. */
#define STRATA__ENV_DAMAGED (-2)

typedef struct strata__env_tag {
    const char *name;   /* points into the encoded bytes (decode) or caller's memory */
    size_t len;
    uint64_t version;
} strata__env_tag;

typedef struct strata__envelope {
    unsigned int flags;
    int64_t created_ms;      /* unix ms */
    int64_t fresh_until_ms;  /* soft TTL */
    int64_t stale_until_ms;  /* hard TTL: the backend TTL */
    uint32_t cost_ms;        /* how long the load took (XFetch delta) */
    size_t ntags;
    strata__env_tag tags[STRATA__ENV_MAX_TAGS];
    const char *payload;     /* points into the encoded bytes (decode) or caller's memory */
    size_t payload_len;
} strata__envelope;

/* Bytes needed to encode e (header + tags + payload CRC if flagged + payload). */
size_t strata__env_size(const strata__envelope *e);

/* Writes e into out (cap >= strata__env_size(e)); returns bytes written, or 0
 * when e is not encodable (too many or too long tags, payload over 4 GiB). */
size_t strata__env_encode(const strata__envelope *e, char *out, size_t cap);

/* Parses any byte string. 0 and *e filled (pointing into data), -1 when the
 * bytes are not a well-formed envelope of a known version ("not ours"), or
 * STRATA__ENV_DAMAGED when a payload CRC is present and does not match
 * (checked whenever the flag is set, whatever the reader's own options). */
int strata__env_decode(const char *data, size_t len, strata__envelope *e);

#endif
