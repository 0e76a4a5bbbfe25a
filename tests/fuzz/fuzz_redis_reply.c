#define _GNU_SOURCE
/*
 * The Redis backend's reply handling: every backend op talks to a fake
 * server (fake_resp_server.c) that answers with arbitrary bytes. Input:
 * byte 0 picks the op, byte 1 its arguments (how many keys, which flags),
 * then the reply chunks, separated by "~~\n": chunk i answers the i-th batch
 * of commands the op sends. Whatever comes back, the op must end (EOF after
 * the last chunk, never a timeout), return a known outcome or a negative
 * code with a message, and hand back outputs that are consistent; ASan and
 * UBSan watch the parsing of every reply.
 */
#include "fuzz.h"
#include "fake_resp_server.h"
#include "backend/backend.h"
#include "config.h"

#include <string.h>

#define MAX_CHUNKS 16
#define NKEYS 4

enum { OP_GET, OP_GET_MANY, OP_SET, OP_SET_MANY, OP_DEL, OP_TOUCH, OP_LEASE_ACQUIRE, OP_LEASE_FILL,
       OP_LEASE_RELEASE, OP_INCR, OP_COUNTER, OP_WB_APPEND, OP_WB_READ, OP_WB_ACK, OP_WB_DEAD,
       OP_WB_BACKLOG, OP_WB_LATEST, OP_COUNT };

static strata__config cfg;

static void check_rc(int rc, int ok1, int ok2)
{
    const char *msg;
    if (rc == 0 || rc == ok1 || rc == ok2)
        return;
    /* STRATA__EREFUSED: a server's refusal, which the engine reports as EBACKEND */
    FUZZ_CHECK(rc == STRATA__EREFUSED || (rc < 0 && rc >= STRATA_ESTALE), "unexpected outcome %d (%s)", rc,
               strata_error_name(rc));
    msg = strata_error_last();
    /* Server error text is quoted as sent, so only emptiness and stacking are checked. */
    FUZZ_CHECK(msg[0] != '\0', "rc %s without a message", strata_error_name(rc));
    FUZZ_CHECK(strstr(msg, ": ") == NULL || strncmp(msg, strstr(msg, ": ") + 2,
                                                    (size_t)(strstr(msg, ": ") - msg)) != 0,
               "message repeats its prefix: \"%s\"", msg);
}

static void run_op(strata__backend *b, unsigned op, unsigned arg)
{
    static const char *const keys[NKEYS] = {"strata:a", "strata:bb", "strata:", "strata:k\r\n"};
    static const size_t keylens[NKEYS] = {8, 9, 7, 10};
    static const char *const vals[NKEYS] = {"v", "", "value", "\0\1"};
    static const size_t vallens[NKEYS] = {1, 0, 5, 2};
    static const int64_t ttls[NKEYS] = {1000, 1, 60000, 5};
    const strata__backend_ops *o = b->ops;
    size_t n = 1 + arg % NKEYS, i;
    strata__bytes out[NKEYS];
    strata__wb_id ids[NKEYS] = {{1, 0}, {2, 5}, {0, 0}, {UINT64_MAX, UINT64_MAX}};
    int rcs[NKEYS], rc;
    uint64_t guard = 0, backlog = 0, tokens[NKEYS];
    int64_t wait_ms = 0, v = 0;

    memset(out, 0, sizeof out);
    switch (op) {
    case OP_GET:
        rc = o->get(b, keys[arg % NKEYS], keylens[arg % NKEYS], &out[0]);
        check_rc(rc, STRATA_MISS, STRATA_MISS);
        FUZZ_CHECK(rc != 0 || out[0].len == 0 || out[0].data != NULL, "a hit without bytes");
        break;
    case OP_GET_MANY:
        for (i = 0; i < NKEYS; i++)
            rcs[i] = 12345;
        rc = o->get_many(b, n, keys, keylens, out, rcs);
        check_rc(rc, 0, 0);
        for (i = 0; rc == 0 && i < n; i++)
            FUZZ_CHECK(rcs[i] == 0 || rcs[i] == STRATA_MISS, "key %zu: outcome %d", i, rcs[i]);
        break;
    case OP_SET:
        check_rc(o->set(b, keys[0], keylens[0], vals[arg % NKEYS], vallens[arg % NKEYS], 1000), 0, 0);
        break;
    case OP_SET_MANY:
        check_rc(o->set_many(b, n, keys, keylens, vals, vallens, ttls), 0, 0);
        break;
    case OP_DEL:
        check_rc(o->del(b, keys[arg % NKEYS], keylens[arg % NKEYS]), STRATA_MISS, STRATA_MISS);
        break;
    case OP_TOUCH:
        check_rc(o->touch(b, keys[0], keylens[0], 5000), STRATA_MISS, STRATA_MISS);
        break;
    case OP_LEASE_ACQUIRE:
        rc = o->lease_acquire(b, keys[0], keylens[0], 0x1234abcdu, 3000, &guard, &wait_ms);
        check_rc(rc, STRATA_MISS_WAIT, STRATA_MISS_WAIT);
        FUZZ_CHECK(rc != STRATA_MISS_WAIT || (wait_ms >= 0 && wait_ms <= 3000 * 1000),
                   "wait %lld ms", (long long)wait_ms);
        break;
    case OP_LEASE_FILL:
        check_rc(o->lease_fill(b, keys[0], keylens[0], 0x1234abcdu, 7, "x", 1, 1000), STRATA_ELEASE,
                 STRATA_ELEASE);
        break;
    case OP_LEASE_RELEASE:
        check_rc(o->lease_release(b, keys[0], keylens[0], 0x1234abcdu), 0, 0);
        break;
    case OP_INCR:
        check_rc(o->incr(b, keys[1], keylens[1], arg & 1 ? -1 : 3, &v), 0, 0);
        break;
    case OP_COUNTER:
        check_rc(o->counter(b, keys[1], keylens[1], (int64_t)1 << 40, arg & 1, &v), 0, 0);
        break;
    case OP_WB_APPEND: {
        strata__wb_item items[NKEYS];
        for (i = 0; i < n; i++) {
            items[i].fk = keys[i]; items[i].fklen = keylens[i];
            items[i].env = vals[i]; items[i].envlen = vallens[i];
            items[i].ttl_ms = ttls[i];
            items[i].key = keys[i] + 7; items[i].keylen = keylens[i] - 7;
            items[i].val = vals[i]; items[i].vallen = vallens[i];
            items[i].rc = 12345;
        }
        rc = o->wb_append(b, n, items, 1700000000000, &backlog);
        check_rc(rc, 0, 0);
        break;
    }
    case OP_WB_READ: {
        char cursor[64] = "0-0";
        strata__wb_record *recs = NULL;
        size_t nrec = 0, max = 1 + arg % 8;
        rc = o->wb_read(b, "fuzz", max, arg & 8 ? 1000 : 0, cursor, sizeof cursor, &recs, &nrec);
        check_rc(rc, STRATA_MISS, STRATA_MISS);
        FUZZ_CHECK(memchr(cursor, '\0', sizeof cursor) != NULL, "cursor not terminated");
        if (rc == 0) {
            FUZZ_CHECK(nrec <= max, "%zu records for max %zu", nrec, max);
            for (i = 0; i < nrec; i++)
                FUZZ_CHECK(recs[i].key.len == 0 || recs[i].key.data != NULL, "record %zu: no key bytes", i);
        }
        strata__wb_records_free(recs, nrec);
        break;
    }
    case OP_WB_ACK: { /* the n ids as records of one key */
        const char *ukey = "a";
        size_t ulen = 1;
        check_rc(o->wb_ack(b, 1, &ukey, &ulen, &n, ids), 0, 0);
        break;
    }
    case OP_WB_DEAD:
        check_rc(o->wb_dead(b, "a", 1, "v", 1, n, ids, 3, "writer failed"), 0, 0);
        break;
    case OP_WB_BACKLOG:
        check_rc(o->wb_backlog(b, &backlog), 0, 0);
        break;
    case OP_WB_LATEST: {
        const char *ukeys[NKEYS] = {"a", "bb", "", "k"};
        size_t ulens[NKEYS] = {1, 2, 0, 1};
        check_rc(o->wb_latest(b, n, ukeys, ulens, tokens), 0, 0);
        break;
    }
    }
    for (i = 0; i < NKEYS; i++)
        strata__bytes_free(&out[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *chunks[MAX_CHUNKS], *p, *end;
    size_t lens[MAX_CHUNKS], n = 0;
    strata__backend *b;
    char url[128];
    int rc;

    if (size < 2)
        return 0;
    if (cfg.nservers == 0) {
        snprintf(url, sizeof url, "redis://127.0.0.1:%d?pool_size=1&timeout_ms=5000", fake_resp_start());
        rc = strata__config_parse(&cfg, url, NULL);
        FUZZ_CHECK(rc == 0, "%s: %s", url, strata_error_last());
    }
    p = (const char *)data + 2;
    end = (const char *)data + size;
    while (n < MAX_CHUNKS) {
        const char *sep = memmem(p, (size_t)(end - p), "~~\n", 3);
        chunks[n] = p;
        lens[n] = sep ? (size_t)(sep - p) : (size_t)(end - p);
        n++;
        if (sep == NULL)
            break;
        p = sep + 3;
    }
    fake_resp_script(chunks, lens, n);
    rc = strata__backend_redis_open(&b, &cfg);
    FUZZ_CHECK(rc == 0, "open: %s", strata_error_last());
    run_op(b, data[0] % OP_COUNT, data[1]);
    b->ops->close(b);
    fake_resp_wait_idle();
    return 0;
}
