#include "envelope.h"
#include "crc32c.h"

#include <string.h>

static const unsigned char magic[4] = {0xE5, 'S', 'C', 0x01}; /* last byte: version */

static void put_u16(unsigned char *p, uint32_t v) { p[0] = (unsigned char)(v >> 8); p[1] = (unsigned char)v; }
static void put_u32(unsigned char *p, uint32_t v) { put_u16(p, v >> 16); put_u16(p + 2, v & 0xffff); }
static void put_u64(unsigned char *p, uint64_t v) { put_u32(p, (uint32_t)(v >> 32)); put_u32(p + 4, (uint32_t)v); }
static uint32_t get_u16(const unsigned char *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t get_u32(const unsigned char *p) { return get_u16(p) << 16 | get_u16(p + 2); }
static uint64_t get_u64(const unsigned char *p) { return (uint64_t)get_u32(p) << 32 | get_u32(p + 4); }

/* FNV-1a 32 over the header (without its checksum field) and the tag section
 * (with the payload CRC when flagged): catches foreign values that happen to
 * start with the magic bytes. It does not cover the payload. */
static uint32_t checksum(const unsigned char *hdr, const unsigned char *tags, size_t tagslen)
{
    uint32_t h = 2166136261u;
    size_t i;
    for (i = 0; i < 40; i++)
        h = (h ^ hdr[i]) * 16777619u;
    for (i = 0; i < tagslen; i++)
        h = (h ^ tags[i]) * 16777619u;
    return h;
}

/* The tag section and, when flagged, the payload CRC after it. */
static size_t tags_size(const strata__envelope *e)
{
    size_t i, n = (e->flags & STRATA__ENV_FLAG_PAYLOAD_CRC) ? 4 : 0;
    for (i = 0; i < e->ntags; i++)
        n += 2 + e->tags[i].len + 8;
    return n;
}

size_t strata__env_size(const strata__envelope *e)
{
    return STRATA__ENV_HEADER + tags_size(e) + e->payload_len;
}

size_t strata__env_encode(const strata__envelope *e, char *out, size_t cap)
{
    unsigned char *p = (unsigned char *)out, *t;
    size_t i, total = strata__env_size(e);

    if (e->ntags > STRATA__ENV_MAX_TAGS || e->payload_len > 0xffffffffu || total > cap ||
        (e->flags & ~(unsigned)STRATA__ENV_FLAGS_KNOWN))
        return 0;
    for (i = 0; i < e->ntags; i++)
        if (e->tags[i].len > STRATA__ENV_MAX_TAG_LEN)
            return 0;
    memcpy(p, magic, 4);
    p[4] = (unsigned char)e->flags;
    p[5] = (unsigned char)e->ntags;
    p[6] = p[7] = 0;
    put_u64(p + 8, (uint64_t)e->created_ms);
    put_u64(p + 16, (uint64_t)e->fresh_until_ms);
    put_u64(p + 24, (uint64_t)e->stale_until_ms);
    put_u32(p + 32, e->cost_ms);
    put_u32(p + 36, (uint32_t)e->payload_len);
    t = p + STRATA__ENV_HEADER;
    for (i = 0; i < e->ntags; i++) {
        put_u16(t, (uint32_t)e->tags[i].len);
        memcpy(t + 2, e->tags[i].name, e->tags[i].len);
        put_u64(t + 2 + e->tags[i].len, e->tags[i].version);
        t += 2 + e->tags[i].len + 8;
    }
    if (e->flags & STRATA__ENV_FLAG_PAYLOAD_CRC) {
        put_u32(t, strata__crc32c(e->payload_len ? e->payload : "", e->payload_len));
        t += 4;
    }
    put_u32(p + 40, checksum(p, p + STRATA__ENV_HEADER, (size_t)(t - p - STRATA__ENV_HEADER)));
    if (e->payload_len)
        memcpy(t, e->payload, e->payload_len);
    return total;
}

int strata__env_decode(const char *data, size_t len, strata__envelope *e)
{
    const unsigned char *p = (const unsigned char *)data, *t, *end;
    uint32_t crc = 0;
    size_t i;

    if (data == NULL || len < STRATA__ENV_HEADER || memcmp(p, magic, 4) != 0)
        return -1;
    e->flags = p[4];
    e->ntags = p[5];
    if ((e->flags & ~(unsigned)STRATA__ENV_FLAGS_KNOWN) || e->ntags > STRATA__ENV_MAX_TAGS ||
        p[6] || p[7])
        return -1;
    e->created_ms = (int64_t)get_u64(p + 8);
    e->fresh_until_ms = (int64_t)get_u64(p + 16);
    e->stale_until_ms = (int64_t)get_u64(p + 24);
    e->cost_ms = get_u32(p + 32);
    e->payload_len = get_u32(p + 36);
    if (e->created_ms < 0 || e->fresh_until_ms < e->created_ms || e->stale_until_ms < e->fresh_until_ms)
        return -1;
    t = p + STRATA__ENV_HEADER;
    end = p + len;
    for (i = 0; i < e->ntags; i++) {
        size_t tl;
        if (end - t < 2)
            return -1;
        tl = get_u16(t);
        if (tl > STRATA__ENV_MAX_TAG_LEN || (size_t)(end - t) < 2 + tl + 8)
            return -1;
        e->tags[i].name = (const char *)t + 2;
        e->tags[i].len = tl;
        e->tags[i].version = get_u64(t + 2 + tl);
        t += 2 + tl + 8;
    }
    if (e->flags & STRATA__ENV_FLAG_PAYLOAD_CRC) {
        if (end - t < 4)
            return -1;
        crc = get_u32(t);
        t += 4;
    }
    if (get_u32(p + 40) != checksum(p, p + STRATA__ENV_HEADER, (size_t)(t - p - STRATA__ENV_HEADER)))
        return -1;
    if ((size_t)(end - t) != e->payload_len)
        return -1;
    if ((e->flags & STRATA__ENV_FLAG_NEGATIVE) && e->payload_len != 0)
        return -1;
    e->payload = (const char *)t;
    if ((e->flags & STRATA__ENV_FLAG_PAYLOAD_CRC) && strata__crc32c(t, e->payload_len) != crc)
        return STRATA__ENV_DAMAGED;
    return 0;
}
