/*
 * The resumable operations (docs/SANS-IO.md) fed arbitrary reply bytes, with
 * no server: an io=host handle, so nothing is ever sent anywhere. Input:
 * byte 0 picks the op, byte 1 how replies are split (whole, a byte at a time,
 * or chunks of 1 + byte1 % 64), then the reply chunks separated by "~~\n":
 * chunk i answers the op's i-th exchange; an exchange whose chunk runs out is
 * reported as a timeout, as a driver would. Whatever the bytes, the op must
 * end (bounded exchanges), consume no more than it is given (the rest belongs
 * to the next op on the connection), return an outcome its API can return,
 * and never hand out a value that was not in the reply bytes (no result of
 * another request).
 */
#define _GNU_SOURCE
#include "fuzz.h"
#include "stratacache.h"

#include <string.h>

#define MAX_CHUNKS 16
#define MAX_STEPS 64

enum { OP_LOOKUP, OP_GET, OP_LOOKUP_FILL, OP_LOOKUP_ABANDON, OP_LOOKUP_WAIT, OP_GET_MANY, OP_SET, OP_SET_TAGGED,
       OP_DELETE, OP_TAG, OP_SUBSCRIBE, OP_HELLO, OP_TOUCH, OP_WRITE_BEHIND, OP_COUNT };

static strata_cache *cache;

typedef struct input {
    const uint8_t *chunk[MAX_CHUNKS];
    size_t len[MAX_CHUNKS], n, next;
    unsigned split;
    const uint8_t *all;
    size_t alllen;
} input;

/* Feeds the next chunk to op; returns 0 when the exchange completed. */
static int feed_chunk(strata_op *op, input *in)
{
    const uint8_t *p;
    size_t left, step, used;
    int rc = 1;
    if (in->next >= in->n)
        return -1;
    p = in->chunk[in->next];
    left = in->len[in->next++];
    step = in->split == 0 ? left : in->split == 1 ? 1 : 1 + in->split % 64;
    while (left > 0 && rc == 1) {
        size_t give = step < left ? step : left;
        used = (size_t)-1;
        rc = strata_op_feed(op, (const char *)p, give, &used);
        FUZZ_CHECK(used <= give, "consumed %zu of %zu bytes", used, give);
        if (rc == 1)
            FUZZ_CHECK(used == give, "needs more but left %zu of %zu bytes unread", give - used, give);
        if (rc < 0)
            fuzz_check_message(rc, strata_error_last());
        p += used;
        left -= used;
    }
    return rc == 1 ? -1 : 0;
}

/* Drives op until DONE; an exchange without bytes left times out. */
static void drive(strata_op *op, input *in)
{
    strata_io io;
    int steps;
    strata_io_init(&io, STRATA_IO_VERSION);
    for (steps = 0; steps < MAX_STEPS; steps++) {
        FUZZ_CHECK(strata_op_next(op, &io) == 0, "next failed: %s", strata_error_last());
        if (io.kind == STRATA_IO_DONE)
            return;
        if (io.kind == STRATA_IO_WAIT) {
            FUZZ_CHECK(io.wait_ms > 0, "WAIT of %lld ms", (long long)io.wait_ms);
            continue;
        }
        FUZZ_CHECK(io.kind == STRATA_IO_SEND || io.kind == STRATA_IO_RECV, "io kind %d", io.kind);
        FUZZ_CHECK(io.kind != STRATA_IO_SEND || (io.data != NULL && io.len > 0), "SEND without bytes");
        FUZZ_CHECK(io.timeout_ms > 0, "exchange without a deadline");
        if (feed_chunk(op, in) != 0)
            strata_op_io_failed(op, STRATA_ETIMEOUT, "fuzz: no more reply bytes");
    }
    /* a subscription only ends on a failure: report one */
    strata_op_io_failed(op, STRATA_EBACKEND, "fuzz: closed");
    FUZZ_CHECK(strata_op_next(op, &io) == 0 && io.kind == STRATA_IO_DONE, "op did not end within %d steps",
               MAX_STEPS);
}

static int is_error(int rc)
{
    return rc < 0 && rc >= STRATA_ESTALE;
}

/* A value handed out must be bytes some reply carried. */
static void check_value(const strata_value *v, const input *in)
{
    if (v->len == 0)
        return;
    FUZZ_CHECK(memmem(in->all, in->alllen, v->data, v->len) != NULL, "value of %zu bytes not in the replies",
               v->len);
}

static void check_read(int rc, const strata_value *v, const input *in, int lease)
{
    FUZZ_CHECK(is_error(rc) || rc == STRATA_OK || rc == STRATA_MISS || rc == STRATA_NEGATIVE ||
                   rc == STRATA_HIT_STALE || (lease && (rc == STRATA_HIT_REFRESH || rc == STRATA_MISS_LEAD ||
                                                        rc == STRATA_MISS_WAIT)),
               "read outcome %d (%s)", rc, strata_error_name(rc));
    if (rc < 0)
        fuzz_check_message(rc, strata_error_last());
    if (rc == STRATA_OK || rc == STRATA_HIT_STALE || rc == STRATA_HIT_REFRESH)
        check_value(v, in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in;
    strata_op *op = NULL;
    strata_value v = STRATA_VALUE_INIT;
    strata_op_options o;
    strata_set_options so = STRATA_SET_OPTIONS_INIT;
    const char *keys[3] = {"a", "bb", "a"}, *tags[2] = {"t1", "t2"};
    size_t lens[3] = {1, 2, 1}, taglens[2] = {2, 2}, i;
    unsigned opk;
    int rc;

    if (cache == NULL &&
        strata_cache_new(&cache, "redis://127.0.0.1:1?io=host&ns=f&tag_cache_ms=0&breaker_threshold=0", NULL) != 0)
        abort();
    if (size < 2)
        return 0;
    memset(&in, 0, sizeof in);
    opk = data[0] % OP_COUNT;
    in.split = data[1];
    in.all = data + 2;
    in.alllen = size - 2;
    {
        const uint8_t *p = data + 2, *end = data + size;
        while (in.n < MAX_CHUNKS) {
            const uint8_t *sep = memmem(p, (size_t)(end - p), "~~\n", 3);
            in.chunk[in.n] = p;
            in.len[in.n++] = sep ? (size_t)(sep - p) : (size_t)(end - p);
            if (sep == NULL)
                break;
            p = sep + 3;
        }
    }
    strata_op_options_init(&o, STRATA_OP_OPTIONS_VERSION);
    switch (opk) {
    case OP_GET: o.lease = 0; /* fall through */
    case OP_LOOKUP:
    case OP_LOOKUP_FILL:
    case OP_LOOKUP_ABANDON:
    case OP_LOOKUP_WAIT:
        o.wait = opk == OP_LOOKUP_WAIT;
        if (opk == OP_LOOKUP_FILL) {
            o.tags = tags;
            o.taglens = taglens;
            o.ntags = 2;
        }
        FUZZ_CHECK(strata_op_lookup(&op, cache, "key", 3, &o) == 0, "lookup: %s", strata_error_last());
        drive(op, &in);
        rc = strata_op_result(op, &v);
        check_read(rc, &v, &in, opk != OP_GET);
        if (rc == STRATA_MISS_LEAD || rc == STRATA_HIT_REFRESH) {
            if (opk == OP_LOOKUP_ABANDON)
                FUZZ_CHECK(strata_op_abandon(op) == 0, "abandon: %s", strata_error_last());
            else
                FUZZ_CHECK(strata_op_fill(op, "loaded", 6, 0) == 0, "fill: %s", strata_error_last());
            drive(op, &in);
            rc = strata_op_result(op, NULL);
            FUZZ_CHECK(rc == 0 || rc == STRATA_ELEASE || is_error(rc), "fill/abandon outcome %d", rc);
        } else {
            /* a continuation without a lease is refused and changes nothing */
            FUZZ_CHECK(strata_op_fill(op, "x", 1, 0) == STRATA_EINVAL, "fill without a lease accepted");
        }
        break;
    case OP_GET_MANY:
        FUZZ_CHECK(strata_op_get_many(&op, cache, 3, keys, lens, NULL) == 0, "get_many: %s", strata_error_last());
        drive(op, &in);
        rc = strata_op_result(op, NULL);
        FUZZ_CHECK(rc == 0 || is_error(rc), "get_many outcome %d", rc);
        for (i = 0; i < 3; i++) {
            int r = strata_op_item(op, i, &v);
            check_read(r, &v, &in, 0);
        }
        FUZZ_CHECK(strata_op_item(op, 3, &v) == STRATA_EINVAL, "item past the end");
        break;
    case OP_SET:
    case OP_SET_TAGGED:
        if (opk == OP_SET_TAGGED) {
            so.tags = tags;
            so.taglens = taglens;
            so.ntags = 2;
        }
        FUZZ_CHECK(strata_op_set(&op, cache, "key", 3, "val", 3, &so) == 0, "set: %s", strata_error_last());
        drive(op, &in);
        rc = strata_op_result(op, NULL);
        FUZZ_CHECK(rc == 0 || is_error(rc), "set outcome %d", rc);
        break;
    case OP_DELETE:
        FUZZ_CHECK(strata_op_delete(&op, cache, "key", 3) == 0, "delete: %s", strata_error_last());
        drive(op, &in);
        rc = strata_op_result(op, NULL);
        FUZZ_CHECK(rc == 0 || rc == STRATA_MISS || is_error(rc), "delete outcome %d", rc);
        break;
    case OP_TOUCH:
        FUZZ_CHECK(strata_op_touch(&op, cache, "key", 3, 5000) == 0, "touch: %s", strata_error_last());
        drive(op, &in);
        rc = strata_op_result(op, NULL);
        FUZZ_CHECK(rc == 0 || rc == STRATA_MISS || is_error(rc), "touch outcome %d", rc);
        break;
    case OP_WRITE_BEHIND:
        FUZZ_CHECK(strata_op_write_behind(&op, cache, "key", 3, "val", 3, 0) == 0, "write_behind: %s",
                   strata_error_last());
        drive(op, &in);
        rc = strata_op_result(op, NULL);
        FUZZ_CHECK(rc == 0 || is_error(rc), "write-behind outcome %d", rc);
        break;
    case OP_TAG:
        FUZZ_CHECK(strata_op_invalidate_tag(&op, cache, "t1", 2) == 0, "tag: %s", strata_error_last());
        drive(op, &in);
        rc = strata_op_result(op, NULL);
        FUZZ_CHECK(rc == 0 || is_error(rc), "tag outcome %d", rc);
        break;
    case OP_SUBSCRIBE:
        {
            /* earlier inputs' own writes queued events too: start from none */
            strata_event ev;
            strata_event_init(&ev, STRATA_EVENT_VERSION);
            while (strata_events_next(cache, &ev) == 0)
                ;
        }
        FUZZ_CHECK(strata_op_subscribe(&op, cache) == 0, "subscribe: %s", strata_error_last());
        drive(op, &in);
        rc = strata_op_result(op, NULL);
        FUZZ_CHECK(is_error(rc), "a subscription ended without an error: %d", rc);
        {
            strata_event ev;
            strata_event_init(&ev, STRATA_EVENT_VERSION);
            while (strata_events_next(cache, &ev) == 0)
                FUZZ_CHECK(ev.kind >= STRATA_EVENT_EVICT && ev.kind <= STRATA_EVENT_LINK_DOWN &&
                               (ev.kind != STRATA_EVENT_EVICT || ev.keylen == 0 ||
                                memmem(in.all, in.alllen, ev.key, ev.keylen) != NULL),
                           "event %d", ev.kind);
        }
        break;
    case OP_HELLO:
    default:
        FUZZ_CHECK(strata_op_hello(&op, cache, 0) == 0, "hello: %s", strata_error_last());
        drive(op, &in);
        rc = strata_op_result(op, NULL);
        FUZZ_CHECK(rc == 0, "hello without AUTH/SELECT sends nothing: %d", rc);
        break;
    }
    strata_value_dispose(&v);
    strata_op_free(op);
    return 0;
}
