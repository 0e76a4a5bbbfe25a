/* The write-behind journal's conversation (stream.h). */
#include "stream.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WB_GROUP "strata"

size_t strata__wb_stream_key(const char *ns, size_t nslen, char *buf, int dead)
{
    memcpy(buf, ns, nslen);
    memcpy(buf + nslen, dead ? "#W:dead" : "#W", dead ? 7 : 2);
    return nslen + (dead ? 7 : 2);
}

static size_t fmt_id(char *buf, size_t size, const strata__wb_id *id)
{
    return (size_t)snprintf(buf, size, "%llu-%llu", (unsigned long long)id->ms, (unsigned long long)id->seq);
}

static int parse_id(const char *s, size_t len, strata__wb_id *id)
{
    char buf[48], *end;
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    id->ms = strtoull(buf, &end, 10);
    if (*end != '-')
        return -1;
    id->seq = strtoull(end + 1, &end, 10);
    return *end == '\0' ? 0 : -1;
}

/* "<ns><tag><key>" in a new buffer (NULL on OOM). */
static char *ns_key(const char *ns, size_t nslen, const char *tag, const char *ukey, size_t ulen, size_t *outlen)
{
    size_t taglen = strlen(tag), len = nslen + taglen + ulen;
    char *p = malloc(len ? len : 1);
    if (p == NULL) {
        strata__error(STRATA_ENOMEM, "out of memory building a journal key");
        return NULL;
    }
    memcpy(p, ns, nslen);
    memcpy(p + nslen, tag, taglen);
    memcpy(p + nslen + taglen, ukey, ulen);
    *outlen = len;
    return p;
}

int strata__rq_wb_append(strata__redis_req *q, const strata__wb_append_args *a)
{
    char ttl[24], now[24], tok[20], stream[STRATA__WB_STREAM_KEYBUF];
    const char *argv[11];
    size_t lens[11], idklen = 0, nklen = 0, slen = strata__wb_stream_key(a->ns, a->nslen, stream, 0);
    char *idk = ns_key(a->ns, a->nslen, "#W:id:", a->key, a->keylen, &idklen);
    char *nk = ns_key(a->ns, a->nslen, "#W:n:", a->key, a->keylen, &nklen);
    int rc = STRATA_ENOMEM;

    if (idk == NULL || nk == NULL)
        goto out;
    strata__redis_fmt_token(tok, sizeof tok, a->token);
    if ((rc = strata__redis_cmd1(q, "MULTI")) < 0)
        goto out;
    argv[0] = "DEL"; lens[0] = 3;
    argv[1] = a->lk; lens[1] = a->lklen;
    if ((rc = strata__redis_cmd(q, 2, argv, lens)) < 0)
        goto out;
    argv[0] = "SET"; lens[0] = 3;
    argv[1] = a->fk; lens[1] = a->fklen;
    argv[2] = a->env; lens[2] = a->envlen;
    argv[3] = "PX"; lens[3] = 2;
    argv[4] = ttl; lens[4] = strata__redis_fmt_i64(ttl, sizeof ttl, a->ttl_ms);
    if ((rc = strata__redis_cmd(q, 5, argv, lens)) < 0)
        goto out;
    argv[0] = "XADD"; lens[0] = 4;
    argv[1] = stream; lens[1] = slen;
    argv[2] = "*"; lens[2] = 1;
    argv[3] = "k"; lens[3] = 1;
    argv[4] = a->key; lens[4] = a->keylen;
    argv[5] = "v"; lens[5] = 1;
    argv[6] = a->val; lens[6] = a->vallen;
    argv[7] = "t"; lens[7] = 1;
    argv[8] = now; lens[8] = strata__redis_fmt_i64(now, sizeof now, a->now_ms);
    argv[9] = "n"; lens[9] = 1;
    argv[10] = tok; lens[10] = 16;
    if ((rc = strata__redis_cmd(q, 11, argv, lens)) < 0)
        goto out;
    argv[0] = "SET"; lens[0] = 3;
    argv[1] = idk; lens[1] = idklen;
    argv[2] = tok; lens[2] = 16;
    if ((rc = strata__redis_cmd(q, 3, argv, lens)) < 0)
        goto out;
    argv[0] = "INCR"; lens[0] = 4;
    argv[1] = nk; lens[1] = nklen;
    if ((rc = strata__redis_cmd(q, 2, argv, lens)) < 0)
        goto out;
    if ((rc = strata__rq_publish(q, a->chan, a->chanlen, a->payload, a->paylen)) < 0)
        goto out;
    rc = strata__redis_cmd1(q, "EXEC");
out:
    free(idk);
    free(nk);
    return rc;
}

int strata__rp_wb_append(const char *who, redisReply *const *r)
{
    return strata__rp_multi(who, r, 6, "write-behind append");
}

int strata__rq_xlen(strata__redis_req *q, const char *stream, size_t slen)
{
    const char *argv[2] = {"XLEN", stream};
    size_t lens[2] = {4, slen};
    return strata__redis_cmd(q, 2, argv, lens);
}

int strata__rq_wb_read_new(strata__redis_req *q, const char *consumer, size_t count, const char *stream,
                           size_t slen)
{
    char cnt[24];
    const char *argv[9] = {"XREADGROUP", "GROUP", WB_GROUP, consumer, "COUNT", cnt, "STREAMS", stream, ">"};
    size_t lens[9] = {10, 5, sizeof WB_GROUP - 1, 0, 5, 0, 7, slen, 1};
    lens[3] = strlen(consumer);
    lens[5] = (size_t)snprintf(cnt, sizeof cnt, "%zu", count);
    return strata__redis_cmd(q, 9, argv, lens);
}

int strata__rq_wb_group(strata__redis_req *q, const char *stream, size_t slen)
{
    const char *argv[6] = {"XGROUP", "CREATE", stream, WB_GROUP, "0", "MKSTREAM"};
    size_t lens[6] = {6, 6, slen, sizeof WB_GROUP - 1, 1, 8};
    return strata__redis_cmd(q, 6, argv, lens);
}

int strata__rp_wb_group(const char *who, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR && !(r->len >= 9 && memcmp(r->str, "BUSYGROUP", 9) == 0))
        return strata__rp_fail(who, r, "XGROUP CREATE");
    return 0;
}

int strata__rq_wb_claim(strata__redis_req *q, const char *stream, size_t slen, const char *consumer,
                        int64_t idle_ms, const char *cursor, size_t count)
{
    char cnt[24], idle[24];
    const char *argv[8] = {"XAUTOCLAIM", stream, WB_GROUP, consumer, idle, cursor, "COUNT", cnt};
    size_t lens[8] = {10, slen, sizeof WB_GROUP - 1, 0, 0, 0, 5, 0};
    lens[3] = strlen(consumer);
    lens[4] = strata__redis_fmt_i64(idle, sizeof idle, idle_ms);
    lens[5] = strlen(cursor);
    lens[7] = (size_t)snprintf(cnt, sizeof cnt, "%zu", count);
    return strata__redis_cmd(q, 8, argv, lens);
}

int strata__rp_is_nogroup(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->len >= 7 && memcmp(r->str, "NOGROUP", 7) == 0;
}

/* Entries ([id, [field, value, ...]], ...) into recs; a deleted entry (nil
 * fields, Redis 6.2 XAUTOCLAIM) or one that is not ours is skipped. */
static int parse_entries(const char *who, const redisReply *arr, strata__wb_record *recs, size_t *n, size_t max)
{
    size_t i, j;
    int rc = 0;
    if (arr->type != REDIS_REPLY_ARRAY)
        return strata__rp_fail(who, arr, "write-behind read");
    for (i = 0; i < arr->elements && *n < max && rc == 0; i++) {
        const redisReply *e = arr->element[i], *f;
        strata__wb_record *rec = &recs[*n];
        int have_k = 0;
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        f = e->element[1];
        if (f->type != REDIS_REPLY_ARRAY || parse_id(e->element[0]->str, e->element[0]->len, &rec->id) != 0)
            continue;
        rec->enqueued_ms = 0;
        rec->token = 0;
        rec->key.len = rec->val.len = 0;
        for (j = 0; j + 1 < f->elements && rc == 0; j += 2) {
            const redisReply *name = f->element[j], *v = f->element[j + 1];
            if (name->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || name->len != 1)
                continue;
            if (name->str[0] == 'k') {
                rc = strata__bytes_set(&rec->key, v->str, v->len);
                have_k = 1;
            } else if (name->str[0] == 'v') {
                rc = strata__bytes_set(&rec->val, v->str, v->len);
            } else if (name->str[0] == 't') {
                rec->enqueued_ms = strtoll(v->str, NULL, 10);
            } else if (name->str[0] == 'n') {
                rec->token = strtoull(v->str, NULL, 16);
            }
        }
        if (rc == 0 && have_k && rec->key.len > 0)
            (*n)++;
    }
    return rc;
}

int strata__rp_wb_read_new(const char *who, const redisReply *r, strata__wb_record *recs, size_t *n, size_t max)
{
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 2)
        return parse_entries(who, r->element[0]->element[1], recs, n, max);
    if (r->type != REDIS_REPLY_NIL)
        return strata__rp_fail(who, r, "XREADGROUP");
    return 0;
}

/* 6.2 replies [cursor, entries]; 7.0 adds [deleted ids]. */
int strata__rp_wb_claim(const char *who, const redisReply *r, char *cursor, size_t cursorsize,
                        strata__wb_record *recs, size_t *n, size_t max)
{
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[0]->type == REDIS_REPLY_STRING) {
        snprintf(cursor, cursorsize, "%.*s", (int)r->element[0]->len, r->element[0]->str);
        return parse_entries(who, r->element[1], recs, n, max);
    }
    if (!strata__rp_is_nogroup(r)) /* no group yet: nothing to claim */
        return strata__rp_fail(who, r, "XAUTOCLAIM");
    return 0;
}

/* Acknowledges and deletes each record; for each one actually deleted here
 * (so a record acked twice counts once) the key's record count drops, and
 * with its last record the key's latest-token and count go too. */
static const char wb_ack_script[] =
    "local s, g, ns = KEYS[1], ARGV[1], ARGV[2] "
    "for i = 3, #ARGV do "
    "  local e = redis.call('XRANGE', s, ARGV[i], ARGV[i]) "
    "  redis.call('XACK', s, g, ARGV[i]) "
    "  if redis.call('XDEL', s, ARGV[i]) == 1 and e[1] then "
    "    local f = e[1][2] "
    "    for j = 1, #f - 1, 2 do "
    "      if f[j] == 'k' then "
    "        local n = ns .. '#W:n:' .. f[j + 1] "
    "        if redis.call('DECR', n) <= 0 then redis.call('DEL', n, ns .. '#W:id:' .. f[j + 1]) end "
    "        break "
    "      end "
    "    end "
    "  end "
    "end "
    "return 1";

int strata__rq_wb_ack(strata__redis_req *q, const char *ns, size_t nslen, size_t n, const strata__wb_id *ids,
                      int extra_argc, const char **extra, const size_t *extralens)
{
    char stream[STRATA__WB_STREAM_KEYBUF];
    size_t argc = n + 6, i, k = 0, slen = strata__wb_stream_key(ns, nslen, stream, 0);
    const char **argv = malloc(argc * sizeof *argv);
    size_t *lens = malloc(argc * sizeof *lens);
    char *idbuf = malloc(n * 48 + 1);
    int rc;
    if (argv == NULL || lens == NULL || idbuf == NULL) {
        rc = strata__error(STRATA_ENOMEM, "out of memory acknowledging %zu records", n);
        goto out;
    }
    argv[k] = "EVAL"; lens[k++] = 4;
    argv[k] = wb_ack_script; lens[k++] = sizeof wb_ack_script - 1;
    argv[k] = "1"; lens[k++] = 1;
    argv[k] = stream; lens[k++] = slen;
    argv[k] = WB_GROUP; lens[k++] = sizeof WB_GROUP - 1;
    argv[k] = ns; lens[k++] = nslen;
    for (i = 0; i < n; i++) {
        argv[k] = idbuf + i * 48;
        lens[k++] = fmt_id(idbuf + i * 48, 48, &ids[i]);
    }
    if ((rc = strata__redis_cmd1(q, "MULTI")) < 0 ||
        (extra_argc > 0 && (rc = strata__redis_cmd(q, extra_argc, extra, extralens)) < 0) ||
        (rc = strata__redis_cmd(q, (int)argc, argv, lens)) < 0)
        goto out;
    rc = strata__redis_cmd1(q, "EXEC");
out:
    free((void *)argv);
    free(lens);
    free(idbuf);
    return rc;
}

void strata__wb_dead_argv(const char *ns, size_t nslen, const char *key, size_t keylen, const char *val,
                          size_t vallen, unsigned int attempts, const char *message, int64_t now_ms,
                          char *deadbuf, char *attbuf, char *nowbuf, const char **argv, size_t *lens)
{
    argv[0] = "XADD"; lens[0] = 4;
    argv[1] = deadbuf; lens[1] = strata__wb_stream_key(ns, nslen, deadbuf, 1);
    argv[2] = "*"; lens[2] = 1;
    argv[3] = "k"; lens[3] = 1;
    argv[4] = key; lens[4] = keylen;
    argv[5] = "v"; lens[5] = 1;
    argv[6] = val; lens[6] = vallen;
    argv[7] = "t"; lens[7] = 1;
    argv[8] = nowbuf; lens[8] = strata__redis_fmt_i64(nowbuf, 24, now_ms);
    argv[9] = "attempts"; lens[9] = 8;
    argv[10] = attbuf; lens[10] = (size_t)snprintf(attbuf, 16, "%u", attempts);
    argv[11] = "error"; lens[11] = 5;
    argv[12] = message ? message : ""; lens[12] = strlen(argv[12]);
}

int strata__rq_wb_latest(strata__redis_req *q, const char *ns, size_t nslen, size_t n, const char *const *keys,
                         const size_t *keylens)
{
    char **ks = calloc(n ? n : 1, sizeof *ks);
    size_t *ls = calloc(n ? n : 1, sizeof *ls), i;
    int rc = 0;
    if (ks == NULL || ls == NULL)
        rc = strata__error(STRATA_ENOMEM, "out of memory");
    for (i = 0; rc == 0 && i < n; i++)
        if ((ks[i] = ns_key(ns, nslen, "#W:id:", keys[i], keylens[i], &ls[i])) == NULL)
            rc = STRATA_ENOMEM;
    if (rc == 0)
        rc = strata__rq_mget(q, n, (const char *const *)ks, ls);
    for (i = 0; ks && i < n; i++)
        free(ks[i]);
    free(ks);
    free(ls);
    return rc;
}

int strata__rp_wb_latest(const char *who, const redisReply *r, size_t n, uint64_t *tokens)
{
    size_t i;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
        return strata__rp_fail(who, r, "MGET journal ids");
    for (i = 0; i < n; i++)
        tokens[i] = r->element[i]->type == REDIS_REPLY_STRING ? strtoull(r->element[i]->str, NULL, 16) : 0;
    return 0;
}

int strata__rq_wb_dead_trim(strata__redis_req *q, const char *dead, size_t dlen, uint64_t max, int64_t max_age_ms,
                            int64_t now_ms)
{
    char num[24];
    const char *argv[5] = {"XTRIM", dead, NULL, "=", num};
    size_t lens[5] = {5, dlen, 0, 1, 0};
    int rc;
    if (max > 0) {
        argv[2] = "MAXLEN";
        lens[2] = 6;
        lens[4] = (size_t)snprintf(num, sizeof num, "%llu", (unsigned long long)max);
        if ((rc = strata__redis_cmd(q, 5, argv, lens)) < 0)
            return rc;
    }
    if (max_age_ms > 0 && now_ms > max_age_ms) {
        argv[2] = "MINID";
        lens[2] = 5;
        lens[4] = strata__redis_fmt_i64(num, sizeof num, now_ms - max_age_ms);
        if ((rc = strata__redis_cmd(q, 5, argv, lens)) < 0)
            return rc;
    }
    return 0;
}
