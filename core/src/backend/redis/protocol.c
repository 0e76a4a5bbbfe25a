/* The Redis conversation as bytes (see protocol.h). */
#include "protocol.h"
#include "error.h"
#include "backend/backend.h"
#include "stratacache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lease scripts: atomic on the server, so check-and-write cannot interleave
 * with another client's set/del. The SHA1 of each text is fixed (checked
 * against SCRIPT LOAD by tests/c/test_protocol.c). */
static const char *const script_text[STRATA__SCRIPT_COUNT] = {
    /* fill: KEYS = value, lease; ARGV = token, value, ttl_ms. set/del delete the lease, so a
     * lease still holding our token also proves nobody wrote since acquire. */
    "if redis.call('GET', KEYS[2]) == ARGV[1] then "
    "if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) "
    "else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end "
    "redis.call('DEL', KEYS[2]) return 1 end return 0",
    /* release: KEYS[1] = lease key, ARGV[1] = token. */
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end return 0",
    /* take-over of a broken lease (no expiry, or not a token of ours):
     * KEYS[1] = lease key, ARGV = token, lease_ttl_ms, the value seen ("" when
     * it was not a string). Only while it is still what the caller saw, so
     * of several callers exactly one takes it. */
    "local t = redis.call('TYPE', KEYS[1])['ok'] "
    "if t == 'string' then if redis.call('GET', KEYS[1]) ~= ARGV[3] then return 0 end "
    "elseif t ~= 'none' then if ARGV[3] ~= '' then return 0 end redis.call('DEL', KEYS[1]) end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1",
    /* add: KEYS = value, lease; ARGV = value, ttl_ms ('0': none), channel, payload. */
    "local ok if ARGV[2] == '0' then ok = redis.call('SET', KEYS[1], ARGV[1], 'NX') "
    "else ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) end "
    "if not ok then return 0 end "
    "redis.call('DEL', KEYS[2]) redis.call('PUBLISH', ARGV[3], ARGV[4]) return 1",
    /* cas: KEYS = value, lease; ARGV = old, new, ttl_ms ('0': none), channel, payload. */
    "local v = redis.call('GET', KEYS[1]) if not v then return -1 end "
    "if v ~= ARGV[1] then return 0 end "
    "if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) "
    "else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end "
    "redis.call('DEL', KEYS[2]) redis.call('PUBLISH', ARGV[4], ARGV[5]) return 1",
    /* lease_own: KEYS[1] = lease; ARGV = token ('': who holds it?), ttl_ms ('0': release). */
    "local v = redis.call('GET', KEYS[1]) "
    "if ARGV[1] == '' then if v then return 1 end return 0 end "
    "if v ~= ARGV[1] then return -1 end "
    "if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) "
    "else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 1",
};

static const char *const script_sha[STRATA__SCRIPT_COUNT] = {
    "049ba6d7f4fec55950912d121520fdb928c11603",
    "6fbe84d1140fd2047394924af9d845b83c070bec",
    "5522d67ed41c78771295e7c1117e87ff5fe784f8",
    "5f16133d40fe8b7b62a22675a7a7848384dca08d",
    "bb810c2e89306394fc8ba4d8b1e7a8e572205d27",
    "036bda1a5ccecf73fd5451d517aaba6fdd7d2bbc",
};

const char *strata__redis_script_sha(int which)
{
    return script_sha[which];
}

const char *strata__redis_script_text(int which)
{
    return script_text[which];
}

void strata__redis_req_reset(strata__redis_req *q)
{
    q->buf.len = 0;
    q->nreplies = 0;
}

void strata__redis_req_free(strata__redis_req *q)
{
    strata__bytes_free(&q->buf);
    q->nreplies = 0;
}

static size_t digits(size_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* Decimal digits of v at p; returns the end. */
static char *put_size(char *p, size_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* RESP array of bulk strings, written straight into the buffer: the same
 * bytes redisFormatCommandArgv makes, without its allocation and printf per
 * command (the request of a get is on the hot path). */
int strata__redis_cmd(strata__redis_req *q, int argc, const char **argv, const size_t *lens)
{
    size_t need = 1 + digits((size_t)argc) + 2, i;
    char *p;
    int rc;
    for (i = 0; i < (size_t)argc; i++)
        need += 1 + digits(lens[i]) + 2 + lens[i] + 2;
    if ((rc = strata__bytes_reserve(&q->buf, q->buf.len + need + 1)) < 0)
        return rc;
    p = q->buf.data + q->buf.len;
    *p++ = '*';
    p = put_size(p, (size_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (i = 0; i < (size_t)argc; i++) {
        *p++ = '$';
        p = put_size(p, lens[i]);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], lens[i]);
        p += lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    q->buf.len = (size_t)(p - q->buf.data);
    q->nreplies++;
    return 0;
}

size_t strata__redis_lease_key(const char *ns, size_t nslen, const char *ukey, size_t ulen, char *buf)
{
    memcpy(buf, ns, nslen);
    memcpy(buf + nslen, "#L:", 3);
    memcpy(buf + nslen + 3, ukey, ulen);
    return nslen + 3 + ulen;
}

size_t strata__redis_cluster_lease_key(const char *ns, size_t nslen, const char *fk, size_t fklen, char *buf)
{
    memcpy(buf, ns, nslen);
    memcpy(buf + nslen, "#L:{", 4);
    memcpy(buf + nslen + 4, fk, fklen);
    buf[nslen + 4 + fklen] = '}';
    return nslen + 5 + fklen;
}

size_t strata__redis_fmt_i64(char *buf, size_t size, int64_t v)
{
    return (size_t)snprintf(buf, size, "%lld", (long long)v);
}

size_t strata__redis_fmt_token(char *buf, size_t size, uint64_t token)
{
    return (size_t)snprintf(buf, size, "%016llx", (unsigned long long)token);
}

/* ---- requests ---- */

/* The read hot path: the same bytes as strata__redis_cmd, fixed head written whole. */
int strata__rq_get(strata__redis_req *q, const char *fk, size_t fklen)
{
    static const char head[] = "*2\r\n$3\r\nGET\r\n$";
    char *p;
    int rc;
    if ((rc = strata__bytes_reserve(&q->buf, q->buf.len + (sizeof head - 1) + 20 + 2 + fklen + 2 + 1)) < 0)
        return rc;
    p = q->buf.data + q->buf.len;
    memcpy(p, head, sizeof head - 1);
    p = put_size(p + (sizeof head - 1), fklen);
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, fk, fklen);
    p += fklen;
    *p++ = '\r';
    *p++ = '\n';
    q->buf.len = (size_t)(p - q->buf.data);
    q->nreplies++;
    return 0;
}

int strata__rq_mget(strata__redis_req *q, size_t n, const char *const *fks, const size_t *fklens)
{
    const char *argv_stack[33], **argv = argv_stack;
    size_t lens_stack[33], *lens = lens_stack, i;
    int rc;
    if (n > 0x7ffffffe)
        return strata__error(STRATA_EINVAL, "get_many: too many keys (%zu)", n);
    if (n + 1 > 33) {
        argv = malloc((n + 1) * sizeof *argv);
        lens = malloc((n + 1) * sizeof *lens);
        if (argv == NULL || lens == NULL) {
            free((void *)argv);
            free(lens);
            return strata__error(STRATA_ENOMEM, "out of memory for MGET of %zu keys", n);
        }
    }
    argv[0] = "MGET";
    lens[0] = 4;
    for (i = 0; i < n; i++) {
        argv[i + 1] = fks[i];
        lens[i + 1] = fklens[i];
    }
    rc = strata__redis_cmd(q, (int)(n + 1), argv, lens);
    if (argv != argv_stack) {
        free((void *)argv);
        free(lens);
    }
    return rc;
}

int strata__rq_lease_take(strata__redis_req *q, const char *lk, size_t lklen, uint64_t token, int64_t ttl_ms)
{
    char tok[20], ttl[24];
    const char *argv[6] = {"SET", lk, tok, "NX", "PX", ttl};
    size_t lens[6] = {3, lklen, 0, 2, 2, 0};
    int rc;
    lens[2] = strata__redis_fmt_token(tok, sizeof tok, token);
    lens[5] = strata__redis_fmt_i64(ttl, sizeof ttl, ttl_ms);
    if ((rc = strata__redis_cmd(q, 6, argv, lens)) < 0)
        return rc;
    /* PTTL and GET ride along: if we lose, we already know how long the
     * holder has left, and whether it is a lease of ours at all. */
    argv[0] = "PTTL";
    lens[0] = 4;
    if ((rc = strata__redis_cmd(q, 2, argv, lens)) < 0)
        return rc;
    argv[0] = "GET";
    lens[0] = 3;
    return strata__redis_cmd(q, 2, argv, lens);
}

int strata__rq_lease_takeover(strata__redis_req *q, int use_sha, const char *lk, size_t lklen, uint64_t token,
                              int64_t ttl_ms, const char *held, size_t heldlen)
{
    char tok[20], ttl[24];
    const char *args[4] = {lk, tok, ttl, held};
    size_t lens[4] = {lklen, 0, 0, heldlen};
    lens[1] = strata__redis_fmt_token(tok, sizeof tok, token);
    lens[2] = strata__redis_fmt_i64(ttl, sizeof ttl, ttl_ms);
    return strata__rq_script(q, use_sha, STRATA__SCRIPT_TAKEOVER, 1, 4, args, lens);
}

int strata__rq_script(strata__redis_req *q, int use_sha, int which, int nkeys, int argc, const char **args,
                      const size_t *arglens)
{
    const char *argv[3 + 8];
    size_t lens[3 + 8];
    char nk[4];
    int i;
    if (argc < 0 || argc > 8)
        return strata__error(STRATA_EINVAL, "script with %d arguments (at most 8)", argc);
    argv[0] = use_sha ? "EVALSHA" : "EVAL";
    lens[0] = use_sha ? 7 : 4;
    argv[1] = use_sha ? script_sha[which] : script_text[which];
    lens[1] = strlen(argv[1]);
    argv[2] = nk;
    lens[2] = (size_t)snprintf(nk, sizeof nk, "%d", nkeys);
    for (i = 0; i < argc; i++) {
        argv[3 + i] = args[i];
        lens[3 + i] = arglens[i];
    }
    return strata__redis_cmd(q, 3 + argc, argv, lens);
}

int strata__rq_lease_fill(strata__redis_req *q, int use_sha, const char *fk, size_t fklen, const char *lk,
                          size_t lklen, uint64_t token, const char *val, size_t vallen, int64_t ttl_ms)
{
    char tok[20], ttl[24];
    const char *args[5] = {fk, lk, tok, val, ttl};
    size_t lens[5] = {fklen, lklen, 0, vallen, 0};
    lens[2] = strata__redis_fmt_token(tok, sizeof tok, token);
    lens[4] = strata__redis_fmt_i64(ttl, sizeof ttl, ttl_ms >= STRATA__TTL_NEVER ? 0 : ttl_ms);
    return strata__rq_script(q, use_sha, STRATA__SCRIPT_FILL, 2, 5, args, lens);
}

int strata__rq_lease_release(strata__redis_req *q, int use_sha, const char *lk, size_t lklen, uint64_t token)
{
    char tok[20];
    const char *args[2] = {lk, tok};
    size_t lens[2] = {lklen, 0};
    lens[1] = strata__redis_fmt_token(tok, sizeof tok, token);
    return strata__rq_script(q, use_sha, STRATA__SCRIPT_RELEASE, 1, 2, args, lens);
}

int strata__redis_cmd1(strata__redis_req *q, const char *cmd)
{
    size_t len = strlen(cmd);
    return strata__redis_cmd(q, 1, &cmd, &len);
}

static int two(strata__redis_req *q, const char *cmd, const char *arg, size_t arglen)
{
    const char *argv[2] = {cmd, arg};
    size_t lens[2] = {strlen(cmd), arglen};
    return strata__redis_cmd(q, 2, argv, lens);
}

int strata__rq_publish(strata__redis_req *q, const char *chan, size_t chanlen, const char *payload, size_t paylen)
{
    const char *argv[3] = {"PUBLISH", chan, payload};
    size_t lens[3] = {7, chanlen, paylen};
    return strata__redis_cmd(q, 3, argv, lens);
}

/* The value write and the lease kill happen atomically; the PUBLISH inside the
 * MULTI tells every L1 exactly when the write becomes visible. */
int strata__rq_write(strata__redis_req *q, const char *fk, size_t fklen, const char *lk, size_t lklen,
                     const char *val, size_t vallen, int64_t ttl_ms, const char *chan, size_t chanlen,
                     const char *payload, size_t paylen)
{
    char ttl[24];
    const char *argv[5] = {"SET", fk, val, "PX", ttl};
    size_t lens[5] = {3, fklen, vallen, 2, 0};
    int rc;
    lens[4] = strata__redis_fmt_i64(ttl, sizeof ttl, ttl_ms);
    if ((rc = strata__redis_cmd1(q, "MULTI")) < 0 || (rc = two(q, "DEL", lk, lklen)) < 0 ||
        (rc = strata__redis_cmd(q, ttl_ms >= STRATA__TTL_NEVER ? 3 : 5, argv, lens)) < 0 ||
        (rc = strata__rq_publish(q, chan, chanlen, payload, paylen)) < 0)
        return rc;
    return strata__redis_cmd1(q, "EXEC");
}

/* Two DELs in one MULTI: one DEL of both keys could not tell whether the
 * value existed (its count includes the lease). */
int strata__rq_delete(strata__redis_req *q, const char *fk, size_t fklen, const char *lk, size_t lklen,
                      const char *chan, size_t chanlen, const char *payload, size_t paylen)
{
    int rc;
    if ((rc = strata__redis_cmd1(q, "MULTI")) < 0 || (rc = two(q, "DEL", fk, fklen)) < 0 || (rc = two(q, "DEL", lk, lklen)) < 0 ||
        (rc = strata__rq_publish(q, chan, chanlen, payload, paylen)) < 0)
        return rc;
    return strata__redis_cmd1(q, "EXEC");
}

int strata__rq_counter(strata__redis_req *q, const char *key, size_t keylen, int64_t init, int64_t delta)
{
    char iv[24];
    const char *setv[4] = {"SET", key, iv, "NX"};
    size_t setl[4] = {3, keylen, 0, 2};
    int rc;
    setl[2] = strata__redis_fmt_i64(iv, sizeof iv, init);
    if ((rc = strata__redis_cmd(q, 4, setv, setl)) < 0)
        return rc;
    return strata__rq_incr(q, key, keylen, delta);
}

int strata__rq_incr(strata__redis_req *q, const char *key, size_t keylen, int64_t delta)
{
    char dv[24];
    const char *argv[3] = {"INCRBY", key, dv};
    size_t lens[3] = {6, keylen, 0};
    lens[2] = strata__redis_fmt_i64(dv, sizeof dv, delta);
    return strata__redis_cmd(q, 3, argv, lens);
}

int strata__rq_touch(strata__redis_req *q, const char *key, size_t keylen, int64_t ttl_ms)
{
    char ttl[24];
    const char *argv[3] = {"PEXPIRE", key, ttl};
    size_t lens[3] = {7, keylen, 0};
    lens[2] = strata__redis_fmt_i64(ttl, sizeof ttl, ttl_ms);
    return strata__redis_cmd(q, 3, argv, lens);
}

int strata__rq_hello(strata__redis_req *q, const char *user, const char *password, int db)
{
    const char *argv[3];
    size_t lens[3];
    char dbbuf[16];
    int rc, n = 1;
    if (password[0] != '\0') {
        argv[0] = "AUTH";
        lens[0] = 4;
        if (user[0] != '\0') {
            argv[n] = user;
            lens[n++] = strlen(user);
        }
        argv[n] = password;
        lens[n++] = strlen(password);
        if ((rc = strata__redis_cmd(q, n, argv, lens)) < 0)
            return rc;
    }
    if (db != 0) {
        argv[0] = "SELECT";
        lens[0] = 6;
        argv[1] = dbbuf;
        lens[1] = (size_t)snprintf(dbbuf, sizeof dbbuf, "%d", db);
        return strata__redis_cmd(q, 2, argv, lens);
    }
    return 0;
}

int strata__rq_subscribe(strata__redis_req *q, const char *chan, size_t chanlen)
{
    return two(q, "SUBSCRIBE", chan, chanlen);
}

int strata__rq_ping(strata__redis_req *q)
{
    return strata__redis_cmd1(q, "PING");
}

/* ---- replies ---- */

/* Error replies that mean the server cannot serve anyone right now: an
 * outage. Any other error reply refuses this one command. */
static int reply_is_outage(const redisReply *r)
{
    static const char *const down[] = {"LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN"};
    size_t i, n;
    for (i = 0; i < sizeof down / sizeof *down; i++) {
        n = strlen(down[i]);
        if (r->len >= n && memcmp(r->str, down[i], n) == 0)
            return 1;
    }
    return 0;
}

int strata__rp_fail(const char *who, const redisReply *r, const char *what)
{
    if (r->type == REDIS_REPLY_ERROR) {
        /* The server's text, quoted printable: whatever the bytes, the
         * message is one readable line. */
        char text[301];
        size_t i, n = r->len > 300 ? 300 : r->len;
        for (i = 0; i < n; i++)
            text[i] = (unsigned char)r->str[i] < 0x20 || (unsigned char)r->str[i] == 0x7f ? '?' : r->str[i];
        text[n] = '\0';
        return strata__error(reply_is_outage(r) ? STRATA_EBACKEND : STRATA__EREFUSED, "%s: %s: %s", who, what,
                             n ? text : "(empty error reply)");
    }
    return strata__error(STRATA_EBACKEND, "%s: %s: unexpected reply type %d", who, what, r->type);
}

int strata__rp_is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0;
}

int strata__rp_is_status(const redisReply *r, const char *text)
{
    return r->type == REDIS_REPLY_STATUS && r->len == strlen(text) && memcmp(r->str, text, r->len) == 0;
}

int strata__rp_get(const char *who, const redisReply *r, strata__bytes *out)
{
    if (r->type == REDIS_REPLY_STRING)
        return strata__bytes_set(out, r->str, r->len);
    if (r->type == REDIS_REPLY_NIL)
        return STRATA_MISS;
    return strata__rp_fail(who, r, "GET");
}

int strata__rp_mget(const char *who, const redisReply *r, size_t n, strata__bytes *outs, int *rcs)
{
    size_t i;
    int rc = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
        return strata__rp_fail(who, r, "MGET");
    for (i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING) {
            if ((rc = strata__bytes_set(&outs[i], e->str, e->len)) < 0)
                return rc;
            rcs[i] = 0;
        } else if (e->type == REDIS_REPLY_NIL) {
            rcs[i] = STRATA_MISS;
        } else {
            return strata__rp_fail(who, e, "MGET element");
        }
    }
    return 0;
}

/* A lease we lost to is broken, not held, when it has no expiry (PTTL -1:
 * ours always have one), more time left than any of ours, or is not a token
 * of ours (16 hex digits; a non-string there answers GET with an error). */
static int lease_is_broken(const redisReply *pttl, const redisReply *held)
{
    size_t i;
    if (pttl->type == REDIS_REPLY_INTEGER && (pttl->integer == -1 || pttl->integer > STRATA_MAX_MS))
        return 1; /* no lease of ours lives longer than STRATA_MAX_MS */
    if (held->type == REDIS_REPLY_ERROR)
        return 1;
    if (held->type != REDIS_REPLY_STRING)
        return 0; /* NIL: gone in between */
    if (held->len != 16)
        return 1;
    for (i = 0; i < 16; i++) {
        char ch = held->str[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
            return 1;
    }
    return 0;
}

int strata__rp_lease_take(const char *who, redisReply *const *r, int64_t *wait_ms, const char **held,
                          size_t *heldlen)
{
    if (strata__rp_is_status(r[0], "OK"))
        return 0; /* the lease itself guards: set and del delete it */
    if (r[0]->type == REDIS_REPLY_NIL) {
        if (r[1]->type != REDIS_REPLY_INTEGER && r[1]->type != REDIS_REPLY_ERROR)
            return strata__rp_fail(who, r[1], "lease PTTL");
        if (r[2]->type != REDIS_REPLY_STRING && r[2]->type != REDIS_REPLY_NIL && r[2]->type != REDIS_REPLY_ERROR)
            return strata__rp_fail(who, r[2], "lease GET");
        if (lease_is_broken(r[1], r[2])) {
            *held = r[2]->type == REDIS_REPLY_STRING ? r[2]->str : "";
            *heldlen = r[2]->type == REDIS_REPLY_STRING ? r[2]->len : 0;
            return STRATA__LEASE_BROKEN;
        }
        /* PTTL -2: the holder's lease expired in between: retry soon. */
        *wait_ms = r[1]->type == REDIS_REPLY_INTEGER && r[1]->integer > 0 ? r[1]->integer : 1;
        return STRATA_MISS_WAIT;
    }
    return strata__rp_fail(who, r[0], "lease SET NX");
}

int strata__rp_lease_takeover(const char *who, const redisReply *r, int64_t *wait_ms)
{
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER) {
        *wait_ms = 1;
        return STRATA_MISS_WAIT;
    }
    return strata__rp_fail(who, r, "lease take-over");
}

int strata__rp_lease_fill(const char *who, const redisReply *r, const char *key, size_t keylen)
{
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
        char kb[96];
        return strata__error(STRATA_ELEASE, "%s: lease on %s lost (expired, or a write or delete happened "
                             "since it was taken)", who, strata__key_for_message(key, keylen, kb, sizeof kb));
    }
    return strata__rp_fail(who, r, "lease fill");
}

int strata__rp_lease_release(const char *who, const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER ? 0 : strata__rp_fail(who, r, "lease release");
}

/* MULTI's +OK, +QUEUED per command, then EXEC's array of nq results. */
int strata__rp_multi(const char *who, redisReply *const *r, size_t nq, const char *what)
{
    size_t i;
    const redisReply *exec = r[nq + 1];
    for (i = 0; i <= nq; i++)
        if (r[i]->type == REDIS_REPLY_ERROR || !(strata__rp_is_status(r[i], i == 0 ? "OK" : "QUEUED")))
            return strata__rp_fail(who, r[i], what);
    if (exec->type != REDIS_REPLY_ARRAY || exec->elements != nq)
        return strata__rp_fail(who, exec, what);
    for (i = 0; i < nq; i++)
        if (exec->element[i]->type == REDIS_REPLY_ERROR)
            return strata__rp_fail(who, exec->element[i], what);
    return 0;
}

int strata__rp_write(const char *who, redisReply *const *r)
{
    int rc = strata__rp_multi(who, r, 3, "SET");
    if (rc == 0 && !strata__rp_is_status(r[4]->element[1], "OK"))
        return strata__rp_fail(who, r[4]->element[1], "SET");
    return rc;
}

int strata__rp_delete(const char *who, redisReply *const *r)
{
    int rc = strata__rp_multi(who, r, 3, "DEL");
    if (rc < 0)
        return rc;
    if (r[4]->element[0]->type != REDIS_REPLY_INTEGER)
        return strata__rp_fail(who, r[4]->element[0], "DEL");
    return r[4]->element[0]->integer > 0 ? 0 : STRATA_MISS;
}

int strata__rp_integer(const char *who, const redisReply *r, const char *what, int64_t *out)
{
    if (r->type != REDIS_REPLY_INTEGER)
        return strata__rp_fail(who, r, what);
    *out = (int64_t)r->integer;
    return 0;
}

int strata__rp_counter(const char *who, redisReply *const *r, int64_t *out)
{
    if (!(strata__rp_is_status(r[0], "OK") || r[0]->type == REDIS_REPLY_NIL))
        return strata__rp_fail(who, r[0], "SET NX");
    return strata__rp_integer(who, r[1], "INCRBY", out);
}

int strata__rp_hello(const char *who, redisReply *const *r, unsigned int n)
{
    unsigned int i;
    for (i = 0; i < n; i++)
        if (!strata__rp_is_status(r[i], "OK"))
            return strata__rp_fail(who, r[i], "connection setup (AUTH/SELECT) refused");
    return 0;
}

static int is_str(const redisReply *r, const char *s, size_t len)
{
    return (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->len == len &&
           memcmp(r->str, s, len) == 0;
}

int strata__rp_sub_message(const redisReply *r, const char *chan, size_t chanlen, const char *origin,
                           size_t originlen, const char **key, size_t *keylen)
{
    const redisReply *body;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2)
        return STRATA__SUB_OTHER;
    if (r->elements == 2 && is_str(r->element[0], "pong", 4))
        return STRATA__SUB_PONG;
    if (r->elements == 3 && is_str(r->element[0], "subscribe", 9))
        return is_str(r->element[1], chan, chanlen) ? STRATA__SUB_SUBSCRIBED : STRATA__SUB_OTHER;
    if (r->elements != 3 || !is_str(r->element[0], "message", 7) || !is_str(r->element[1], chan, chanlen))
        return STRATA__SUB_OTHER;
    body = r->element[2];
    if (body->type != REDIS_REPLY_STRING || body->len < originlen)
        return STRATA__SUB_FLUSH; /* not ours to parse: assume anything changed */
    *key = body->str + originlen;
    *keylen = body->len - originlen;
    return memcmp(body->str, origin, originlen) == 0 ? STRATA__SUB_OWN : STRATA__SUB_EVICT;
}

/* ---- the reply collector ---- */

void strata__replies_clear(strata__redis_replies *rs)
{
    unsigned int i;
    for (i = 0; i < rs->got; i++)
        freeReplyObject(rs->r[i]);
    rs->got = 0;
}

int strata__replies_expect(strata__redis_replies *rs, unsigned int want)
{
    strata__replies_clear(rs);
    rs->want = 0;
    rs->bulk = NULL;
    if (rs->r == NULL || (want > rs->cap)) {
        redisReply **r = want <= STRATA__REDIS_MAX_REPLIES ? rs->inline_r : NULL;
        if (r == NULL && (r = malloc(want * sizeof *r)) == NULL)
            return strata__error(STRATA_ENOMEM, "out of memory for %u replies", want);
        if (rs->r != NULL && rs->r != rs->inline_r)
            free(rs->r);
        rs->r = r;
        rs->cap = want <= STRATA__REDIS_MAX_REPLIES ? STRATA__REDIS_MAX_REPLIES : want;
    }
    rs->want = want;
    if (rs->reader != NULL && (rs->reader->len > rs->reader->pos || rs->reader->ridx != -1)) {
        redisReaderFree(rs->reader); /* leftovers of a cancelled exchange */
        rs->reader = NULL;
    }
    return 0;
}

void strata__replies_free(strata__redis_replies *rs)
{
    strata__replies_clear(rs);
    if (rs->reader)
        redisReaderFree(rs->reader);
    rs->reader = NULL;
    if (rs->r != rs->inline_r)
        free(rs->r);
    rs->r = NULL;
    rs->cap = 0;
}

/* Feeds the reader at most `len` bytes and collects replies; *fed = bytes
 * handed to the reader. */
static int feed_some(strata__redis_replies *rs, const char *data, size_t len, const char *who)
{
    if (len > 0 && redisReaderFeed(rs->reader, data, len) != REDIS_OK)
        return strata__error(STRATA_ENOMEM, "out of memory buffering a reply");
    while (rs->got < rs->want) {
        void *reply = NULL;
        if (redisReaderGetReply(rs->reader, &reply) != REDIS_OK) {
            int rc = strata__error(STRATA_EBACKEND, "%s: protocol error in a reply: %s", who, rs->reader->errstr);
            redisReaderFree(rs->reader);
            rs->reader = NULL;
            return rc;
        }
        if (reply == NULL)
            break;
        rs->r[rs->got++] = reply;
    }
    return 0;
}

/* ---- a lone GET's reply without the reader ---- */

enum { BULK_TYPE = 0, BULK_LEN, BULK_LEN_LF, BULK_BODY, BULK_CR, BULK_LF, BULK_DONE, BULK_READER };

/* Lengths past this are no value of ours (the envelope caps payloads at 4 GiB). */
#define BULK_MAX ((uint64_t)1 << 33)

int strata__replies_expect_get(strata__redis_replies *rs, strata__bytes *into)
{
    int rc = strata__replies_expect(rs, 1);
    if (rc < 0)
        return rc;
    rs->bulk = into;
    rs->bulk_state = BULK_TYPE;
    rs->bulk_rc = 0;
    rs->bulk_len = 0;
    rs->bulk_digits = 0;
    into->len = 0;
    return 0;
}

int strata__replies_get(const strata__redis_replies *rs, const char *who, strata__bytes *into)
{
    if (rs->bulk != NULL && rs->bulk_state == BULK_DONE)
        return rs->bulk_rc;
    return strata__rp_get(who, rs->r[0], into);
}

static int bulk_bad(strata__redis_replies *rs, const char *who, const char *what)
{
    rs->bulk_state = BULK_TYPE;
    return strata__error(STRATA_EBACKEND, "%s: protocol error in a reply: %s", who, what);
}

/* 0 complete, 1 more needed, BULK_READER (not a bulk string: nothing taken),
 * or an error. */
static int bulk_feed(strata__redis_replies *rs, const char *data, size_t len, size_t *used, const char *who)
{
    size_t i = 0;
    int rc;
    while (i < len) {
        char ch = data[i];
        switch (rs->bulk_state) {
        case BULK_TYPE:
            if (ch != '$') {
                rs->bulk_state = BULK_READER;
                return BULK_READER;
            }
            rs->bulk_state = BULK_LEN;
            i++;
            break;
        case BULK_LEN:
            i++;
            if (ch == '-' && rs->bulk_digits == 0 && rs->bulk_rc == 0) {
                rs->bulk_rc = STRATA_MISS; /* only "$-1" follows: nil */
            } else if (ch >= '0' && ch <= '9' && rs->bulk_digits < 12) {
                rs->bulk_len = rs->bulk_len * 10 + (uint64_t)(ch - '0');
                rs->bulk_digits++;
            } else if (ch == '\r' && rs->bulk_digits > 0) {
                rs->bulk_state = BULK_LEN_LF;
            } else {
                return bulk_bad(rs, who, "Bad bulk string length");
            }
            break;
        case BULK_LEN_LF:
            i++;
            if (ch != '\n' || rs->bulk_len > BULK_MAX || (rs->bulk_rc == STRATA_MISS && rs->bulk_len != 1))
                return bulk_bad(rs, who, "Bad bulk string length");
            if (rs->bulk_rc == STRATA_MISS) {
                rs->bulk_state = BULK_DONE;
                *used = i;
                return 0;
            }
            /* the whole value when it is small; large ones grow as they arrive */
            if ((rc = strata__bytes_reserve(rs->bulk, (rs->bulk_len < 65536 ? rs->bulk_len : 65536) + 1)) < 0)
                return rc;
            rs->bulk_state = rs->bulk_len > 0 ? BULK_BODY : BULK_CR;
            break;
        case BULK_BODY: {
            size_t n = len - i < rs->bulk_len ? len - i : (size_t)rs->bulk_len;
            if ((rc = strata__bytes_reserve(rs->bulk, rs->bulk->len + n + 1)) < 0)
                return rc;
            memcpy(rs->bulk->data + rs->bulk->len, data + i, n);
            rs->bulk->len += n;
            rs->bulk_len -= n;
            i += n;
            if (rs->bulk_len == 0)
                rs->bulk_state = BULK_CR;
            break;
        }
        case BULK_CR:
            i++;
            if (ch != '\r')
                return bulk_bad(rs, who, "Bad bulk string terminator");
            rs->bulk_state = BULK_LF;
            break;
        default: /* BULK_LF */
            i++;
            if (ch != '\n')
                return bulk_bad(rs, who, "Bad bulk string terminator");
            rs->bulk_state = BULK_DONE;
            *used = i;
            return 0;
        }
    }
    *used = len;
    return 1;
}

int strata__replies_feed(strata__redis_replies *rs, const char *data, size_t len, size_t *used, const char *who)
{
    size_t off = 0, step = 256, left;
    int rc;
    *used = 0;
    if (rs->bulk != NULL && rs->bulk_state == BULK_DONE)
        return 0;
    if (rs->bulk != NULL && rs->bulk_state != BULK_READER) {
        if ((rc = bulk_feed(rs, data, len, used, who)) != BULK_READER)
            return rc;
        /* not a bulk string: the reader takes the reply from its first byte */
    }
    if (rs->got >= rs->want)
        return 0;
    if (rs->reader == NULL && (rs->reader = redisReaderCreate()) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory for a reply reader");
    /* The bytes go in growing steps: on a pipelined connection the rest of
     * the buffer is the next ops' replies, and copying all of it into every
     * op's reader would cost the square of the pipeline. */
    while (off < len && rs->got < rs->want) {
        size_t n = len - off < step ? len - off : step;
        if ((rc = feed_some(rs, data + off, n, who)) < 0)
            return rc;
        off += n;
        step *= 2;
    }
    if (len == 0 && (rc = feed_some(rs, data, 0, who)) < 0)
        return rc;
    if (rs->got < rs->want) {
        *used = len; /* a partial reply: all of it is ours, buffered in the reader */
        return 1;
    }
    /* The reader's own buffer may hold bytes of earlier calls (a partial
     * reply); anything left unparsed at the end came from this call. */
    left = rs->reader->len - rs->reader->pos;
    if (left > off)
        left = off;
    *used = off - left;
    rs->reader->pos = rs->reader->len; /* the next op's bytes: not ours to keep (the reader is between replies) */
    return 0;
}
