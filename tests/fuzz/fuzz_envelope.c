/*
 * The envelope decoder on arbitrary bytes. Accepted input must describe
 * itself consistently (every pointer inside the input, lengths adding up)
 * and re-encode to exactly the same bytes: the format has one encoding
 * (the payload CRC, when flagged, included).
 */
#include "fuzz.h"
#include "policy/envelope.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    strata__envelope e;
    const char *p = (const char *)data;
    char *again;
    size_t i, n;
    int rc;

    rc = strata__env_decode(p, size, &e);
    if (rc == STRATA__ENV_DAMAGED) {
        /* ours, payload damaged: the header parsed, so the payload is the input's tail */
        FUZZ_CHECK((e.flags & STRATA__ENV_FLAG_PAYLOAD_CRC) && e.payload + e.payload_len == p + size,
                   "damaged without a payload CRC");
        return 0;
    }
    FUZZ_CHECK(rc == 0 || rc == -1, "decode returned %d", rc);
    if (rc != 0)
        return 0;
    FUZZ_CHECK(e.ntags <= STRATA__ENV_MAX_TAGS, "%zu tags", e.ntags);
    FUZZ_CHECK(e.payload >= p && e.payload_len <= size && e.payload + e.payload_len == p + size,
               "payload outside the input");
    for (i = 0; i < e.ntags; i++)
        FUZZ_CHECK(e.tags[i].len >= 1 && e.tags[i].len <= STRATA__ENV_MAX_TAG_LEN &&
                   e.tags[i].name >= p + STRATA__ENV_HEADER &&
                   e.tags[i].name + e.tags[i].len <= e.payload, "tag %zu outside its section", i);
    FUZZ_CHECK(e.created_ms >= 0 && e.fresh_until_ms >= e.created_ms &&
               e.stale_until_ms >= e.fresh_until_ms, "times out of order");
    FUZZ_CHECK(!(e.flags & STRATA__ENV_FLAG_NEGATIVE) || e.payload_len == 0, "negative with a payload");

    n = strata__env_size(&e);
    FUZZ_CHECK(n == size, "size %zu, input %zu", n, size);
    again = malloc(n ? n : 1);
    FUZZ_CHECK(again != NULL, "out of memory");
    FUZZ_CHECK(strata__env_encode(&e, again, n) == n, "a decoded envelope does not encode");
    FUZZ_CHECK(memcmp(again, p, n) == 0, "decode -> encode changed the bytes");
    free(again);
    return 0;
}
