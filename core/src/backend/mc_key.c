/* Memcached keys (see mc_key.h). */
#include "mc_key.h"
#include "error.h"
#include "policy/sha256.h"

#include <stdlib.h>
#include <string.h>

int strata__mc_key_is_safe(const char *k, size_t n)
{
    size_t i;
    if (n == 0 || n > STRATA__MC_KEY_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)k[i];
        if (ch <= 0x20 || ch == 0x7f)
            return 0;
    }
    return 1;
}

size_t strata__mc_key_from_logical(const char *ns, size_t nslen, const char *logical, size_t len,
                                   char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[STRATA__SHA256_LEN];
    size_t i, o;
    if (strata__mc_key_is_safe(logical, len)) {
        memcpy(out, logical, len);
        o = len;
    } else {
        /* "#H:" cannot occur in a value key ("<ns>:") or a lease key ("<ns>#L:"),
         * and the digest covers the whole logical key, tag included. */
        strata__sha256(logical, len, digest);
        memcpy(out, ns, nslen);
        o = nslen;
        memcpy(out + o, "#H:", 3);
        o += 3;
        for (i = 0; i < sizeof digest; i++) {
            out[o++] = hex[digest[i] >> 4];
            out[o++] = hex[digest[i] & 15];
        }
    }
    out[o] = '\0';
    return o;
}

size_t strata__mc_lease_key(const char *ns, size_t nslen, const char *key, size_t keylen, char *out)
{
    char stack[512];
    char *buf = stack;
    const char *user = key;
    size_t userlen = keylen, len, n;
    if (keylen > nslen && memcmp(key, ns, nslen) == 0 && key[nslen] == ':') {
        user = key + nslen + 1;
        userlen = keylen - nslen - 1;
    }
    len = nslen + 3 + userlen;
    if (len > sizeof stack) {
        buf = malloc(len);
        if (buf == NULL) {
            strata__error(STRATA_ENOMEM, "out of memory building a lease key");
            return 0;
        }
    }
    memcpy(buf, ns, nslen);
    memcpy(buf + nslen, "#L:", 3);
    memcpy(buf + nslen + 3, user, userlen);
    n = strata__mc_key_from_logical(ns, nslen, buf, len, out);
    if (buf != stack)
        free(buf);
    return n;
}
