#include "error.h"
#include "platform/platform.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static STRATA__TLS char last_message[512];

int strata__error(int code, const char *fmt, ...)
{
    /* Formatted aside first: callers prefix the previous message by passing
     * strata_error_last() itself as an argument. */
    char msg[sizeof last_message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(last_message, msg, sizeof msg);
    return code;
}

int strata__check_ms(int code, const char *name, int64_t ms, int64_t lo)
{
    if (ms < lo || ms > STRATA_MAX_MS)
        return strata__error(code, "%s must be %lld-%lld ms, got %lld", name, (long long)lo,
                             (long long)STRATA_MAX_MS, (long long)ms);
    return 0;
}

int strata__check_ttl(const char *name, int64_t ttl_ms)
{
    if (ttl_ms == STRATA_TTL_FOREVER)
        return 0;
    if (ttl_ms < 0)
        return strata__error(STRATA_EINVAL, "%s must be 0 (the cache's default), 1-%lld ms or STRATA_TTL_FOREVER "
                             "(-1), got %lld", name, (long long)STRATA_MAX_MS, (long long)ttl_ms);
    return strata__check_ms(STRATA_EINVAL, name, ttl_ms, 0);
}

void strata__error_clear(void)
{
    last_message[0] = '\0';
}

const char *strata_error_last(void)
{
    return last_message;
}

const char *strata_error_name(int code)
{
    switch (code) {
    case STRATA_OK: return "OK";
    case STRATA_MISS: return "MISS";
    case STRATA_NEGATIVE: return "NEGATIVE";
    case STRATA_HIT_STALE: return "HIT_STALE";
    case STRATA_HIT_REFRESH: return "HIT_REFRESH";
    case STRATA_MISS_LEAD: return "MISS_LEAD";
    case STRATA_MISS_WAIT: return "MISS_WAIT";
    case STRATA_EINVAL: return "EINVAL";
    case STRATA_ENOMEM: return "ENOMEM";
    case STRATA_EBACKEND: return "EBACKEND";
    case STRATA_ETIMEOUT: return "ETIMEOUT";
    case STRATA_EKEY: return "EKEY";
    case STRATA_ETOOBIG: return "ETOOBIG";
    case STRATA_EURL: return "EURL";
    case STRATA_EOPTION: return "EOPTION";
    case STRATA_EVERSION: return "EVERSION";
    case STRATA_EUSER: return "EUSER";
    case STRATA_ELEASE: return "ELEASE";
    case STRATA_EBREAKER: return "EBREAKER";
    case STRATA_EBUSY: return "EBUSY";
    case STRATA_ENOTSUP: return "ENOTSUP";
    case STRATA_ECLOSED: return "ECLOSED";
    case STRATA_INVALIDATED: return "INVALIDATED";
    case STRATA_ESTALE: return "ESTALE";
    case STRATA_EXISTS: return "EXISTS";
    case STRATA_ENOTNUM: return "ENOTNUM";
    default: return "EUNKNOWN";
    }
}

const char *strata__key_for_message(const char *key, size_t keylen, char *buf, size_t bufsize)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, o = 0;
    if (bufsize < 8)
        return "";
    if (key == NULL) {
        snprintf(buf, bufsize, "(null)");
        return buf;
    }
    for (i = 0; i < keylen && o + 5 < bufsize; i++) {
        unsigned char ch = (unsigned char)key[i];
        if (ch >= 0x21 && ch < 0x7f && ch != '\\') {
            buf[o++] = (char)ch;
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[ch >> 4];
            buf[o++] = hex[ch & 15];
        }
    }
    if (i < keylen && o + 4 <= bufsize) {
        buf[o++] = '.'; buf[o++] = '.'; buf[o++] = '.';
    }
    buf[o] = '\0';
    return buf;
}

int strata__struct_init(void *p, size_t size, const void *defaults, const char *type, unsigned int version,
                        unsigned int known)
{
    if (p == NULL)
        return strata__error(STRATA_EINVAL, "%s pointer is NULL", type);
    if (version != known)
        return strata__error(STRATA_EVERSION, "unknown %s version %u (this library knows %u)", type, version, known);
    if (defaults != NULL) {
        memcpy(p, defaults, size);
    } else {
        memset(p, 0, size);
        memcpy(p, &version, sizeof version);
    }
    return 0;
}
