/* Redis Cluster redirects (redirect.h). */
#include "redirect.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int starts(const redisReply *r, const char *word)
{
    size_t n = strlen(word);
    return r->len >= n && memcmp(r->str, word, n) == 0 && (r->len == n || r->str[n] == ' ');
}

/* "MOVED <slot> <host>:<port>" or "ASK ..." after the word. */
static int parse_target(const redisReply *r, size_t skip, strata__redirect *out)
{
    const char *p = r->str + skip, *end = r->str + r->len, *colon, *d;
    unsigned long slot = 0;
    long port = 0;
    if (p >= end || *p != ' ')
        return 0;
    for (p++; p < end && *p >= '0' && *p <= '9' && slot < 16384; p++)
        slot = slot * 10 + (unsigned long)(*p - '0');
    if (p >= end || *p != ' ' || slot >= 16384)
        return 0;
    colon = NULL;
    for (d = ++p; d < end; d++)
        if (*d == ':')
            colon = d; /* the last ':' (an IPv6 host has others) */
    if (colon == NULL || colon + 1 == end)
        return 0;
    for (d = colon + 1; d < end; d++) {
        if (*d < '0' || *d > '9' || port > 65535)
            return 0;
        port = port * 10 + (*d - '0');
    }
    if (port < 1 || port > 65535)
        return 0;
    out->slot = (unsigned int)slot;
    out->host = p;
    out->hostlen = (size_t)(colon - p);
    out->port = (int)port;
    return 1;
}

strata__redirect_kind strata__rp_redirect(redisReply *const *r, size_t n, strata__redirect *out)
{
    size_t i;
    out->kind = STRATA__REDIRECT_NONE;
    for (i = 0; i < n; i++) {
        const redisReply *x = r[i];
        if (x == NULL || x->type != REDIS_REPLY_ERROR)
            continue;
        if (starts(x, "MOVED") && parse_target(x, 5, out))
            return out->kind = STRATA__REDIRECT_MOVED;
        if (starts(x, "ASK") && parse_target(x, 3, out))
            return out->kind = STRATA__REDIRECT_ASK;
        if (starts(x, "TRYAGAIN"))
            return out->kind = STRATA__REDIRECT_TRYAGAIN;
        if (starts(x, "CLUSTERDOWN"))
            return out->kind = STRATA__REDIRECT_CLUSTERDOWN;
    }
    return STRATA__REDIRECT_NONE;
}

/* Reads "<c><digits>\r\n" at *pos; the number, or -1. */
static long long read_len(const char *b, size_t len, size_t *pos, char c)
{
    long long v = 0;
    size_t p = *pos;
    if (p >= len || b[p] != c)
        return -1;
    for (p++; p < len && b[p] >= '0' && b[p] <= '9'; p++)
        v = v * 10 + (b[p] - '0');
    if (p + 1 >= len || b[p] != '\r' || b[p + 1] != '\n')
        return -1;
    *pos = p + 2;
    return v;
}

int strata__rq_asking(const strata__redis_req *q, strata__redis_req *out, unsigned char *asking)
{
    const char *b = q->buf.data;
    size_t len = q->buf.len, pos = 0, reply = 0;
    int in_multi = 0, rc;
    strata__redis_req_reset(out);
    while (pos < len) {
        size_t start = pos;
        long long argc = read_len(b, len, &pos, '*'), a;
        const char *name = NULL;
        long long namelen = 0;
        if (argc < 1 || reply + 2 > 2 * (size_t)q->nreplies)
            return strata__error(STRATA_EINVAL, "ASKING: request is not RESP commands");
        for (a = 0; a < argc; a++) {
            long long n = read_len(b, len, &pos, '$');
            if (n < 0 || pos + (size_t)n + 2 > len)
                return strata__error(STRATA_EINVAL, "ASKING: request is not RESP commands");
            if (a == 0) {
                name = b + pos;
                namelen = n;
            }
            pos += (size_t)n + 2;
        }
        if (!in_multi) {
            if ((rc = strata__redis_cmd1(out, "ASKING")) < 0)
                return rc;
            asking[reply++] = 1;
        }
        if (namelen == 5 && strncasecmp(name, "MULTI", 5) == 0)
            in_multi = 1;
        else if ((namelen == 4 && strncasecmp(name, "EXEC", 4) == 0) ||
                 (namelen == 7 && strncasecmp(name, "DISCARD", 7) == 0))
            in_multi = 0;
        if ((rc = strata__bytes_reserve(&out->buf, out->buf.len + (pos - start) + 1)) < 0)
            return rc;
        memcpy(out->buf.data + out->buf.len, b + start, pos - start);
        out->buf.len += pos - start;
        out->nreplies++;
        asking[reply++] = 0;
    }
    return 0;
}

int strata__rq_cluster_slots(strata__redis_req *q)
{
    const char *argv[2] = {"CLUSTER", "SLOTS"};
    size_t lens[2] = {7, 5};
    return strata__redis_cmd(q, 2, argv, lens);
}
