/*
 * The memcached key sanitizer on arbitrary user keys. The input is a
 * namespace length (first byte), then two user keys split at the first
 * 0x00 byte. Every key sent must be what memcached takes (1-250 bytes, no
 * whitespace or control bytes), a safe key must pass unchanged, and the four
 * keys (value and lease of each user key) must all differ unless the user
 * keys are equal: a collision would serve one key's value for another.
 */
#include "fuzz.h"
#include "backend/mc_key.h"

#include <string.h>

static void check_sent(const char *k, size_t n, const char *ns, size_t nslen)
{
    size_t i;
    FUZZ_CHECK(n >= 1 && n <= STRATA__MC_KEY_MAX && k[n] == '\0', "length %zu", n);
    for (i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)k[i] > 0x20 && (unsigned char)k[i] != 0x7f, "byte 0x%02x at %zu",
                   (unsigned char)k[i], i);
    FUZZ_CHECK(n > nslen && memcmp(k, ns, nslen) == 0, "the namespace is lost");
}

/* Value key "<ns>:<user>" and lease key of one user key. */
static void keys_of(const char *ns, size_t nslen, const char *user, size_t ulen, char *full,
                    char *value, size_t *vlen, char *lease, size_t *llen)
{
    memcpy(full, ns, nslen);
    full[nslen] = ':';
    memcpy(full + nslen + 1, user, ulen);
    *vlen = strata__mc_key_from_logical(ns, nslen, full, nslen + 1 + ulen, value);
    check_sent(value, *vlen, ns, nslen);
    if (strata__mc_key_is_safe(full, nslen + 1 + ulen))
        FUZZ_CHECK(*vlen == nslen + 1 + ulen && memcmp(value, full, *vlen) == 0, "a safe key was changed");
    else
        FUZZ_CHECK(*vlen == nslen + 3 + 64 && memcmp(value + nslen, "#H:", 3) == 0, "not the hashed form");
    *llen = strata__mc_lease_key(ns, nslen, full, nslen + 1 + ulen, lease);
    check_sent(lease, *llen, ns, nslen);
}

static int same(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && memcmp(a, b, an) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char nsbytes[] = "strata_ns-0.1234567890abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";
    char full[2][4200], value[2][STRATA__MC_KEY_MAX + 1], lease[2][STRATA__MC_KEY_MAX + 1];
    size_t vlen[2], llen[2], nslen, ulen[2];
    const char *user[2], *sep;

    if (size < 1 || size > 4096)
        return 0;
    nslen = 1 + data[0] % 64; /* 1-64 bytes of [A-Za-z0-9_.-], as config.c allows */
    user[0] = (const char *)data + 1;
    sep = memchr(user[0], '\0', size - 1);
    ulen[0] = sep ? (size_t)(sep - user[0]) : size - 1;
    user[1] = sep ? sep + 1 : user[0] + ulen[0];
    ulen[1] = size - 1 - ulen[0] - (sep ? 1 : 0);

    keys_of(nsbytes, nslen, user[0], ulen[0], full[0], value[0], &vlen[0], lease[0], &llen[0]);
    keys_of(nsbytes, nslen, user[1], ulen[1], full[1], value[1], &vlen[1], lease[1], &llen[1]);
    FUZZ_CHECK(!same(value[0], vlen[0], lease[0], llen[0]), "value and lease key collide: %s", value[0]);
    FUZZ_CHECK(!same(value[0], vlen[0], lease[1], llen[1]), "a value key is another's lease key: %s", value[0]);
    FUZZ_CHECK(!same(value[1], vlen[1], lease[0], llen[0]), "a value key is another's lease key: %s", value[1]);
    if (!same(user[0], ulen[0], user[1], ulen[1])) {
        FUZZ_CHECK(!same(value[0], vlen[0], value[1], vlen[1]), "two user keys share %s", value[0]);
        FUZZ_CHECK(!same(lease[0], llen[0], lease[1], llen[1]), "two user keys share lease %s", lease[0]);
    }
    return 0;
}
