/*
 * A cache's idle operations (op.h). Beginning an op was a 1.6 KB zeroed
 * allocation plus its key block, request buffer, reply buffer and value
 * buffer, each freed again at the end: most of a pipelined GET's cost. An
 * idle op keeps its buffers (up to KEEP_BYTES each) and is handed out again
 * zeroed but for them. Under AddressSanitizer an idle op (but its `idle`
 * header) and its buffers are poisoned, so a use after strata_op_free is
 * still caught.
 */
#include "op.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define STRATA__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRATA__ASAN 1
#endif
#endif
#ifdef STRATA__ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define POOL_MAX 64          /* idle ops per cache */
#define KEEP_BYTES 4096      /* a larger buffer is freed, not kept */

/* The op past its idle header. */
#define BODY(op) ((char *)(op) + sizeof(strata__op_idle))
#define BODY_SIZE (sizeof(strata_op) - sizeof(strata__op_idle))

static void poison_buffers(const strata__op_idle *k, int on)
{
    void *bufs[4] = {k->req.data, k->raw.data, k->keymem, k->vbuf};
    size_t caps[4] = {k->req.cap, k->raw.cap, k->keycap, k->vcap};
    int i;
    for (i = 0; i < 4; i++) {
        if (bufs[i] == NULL)
            continue;
        if (on)
            POISON(bufs[i], caps[i]);
        else
            UNPOISON(bufs[i], caps[i]);
    }
}

static void keep_or_free(strata__bytes *b)
{
    if (b->cap > KEEP_BYTES)
        strata__bytes_free(b);
    b->len = 0;
}

strata_op *strata__op_pool_take(strata_cache *c)
{
    strata_op *op;
    strata__op_idle k;
    strata__mutex_lock(&c->op_pool_lock);
    op = c->op_pool;
    if (op != NULL) {
        c->op_pool = op->idle.next;
        c->op_pool_n--;
    }
    strata__mutex_unlock(&c->op_pool_lock);
    if (op == NULL)
        return NULL;
    k = op->idle;
    UNPOISON(BODY(op), BODY_SIZE);
    poison_buffers(&k, 0);
    /* Everything zero but the buffers, as a fresh calloc'd op. */
    memset(op, 0, sizeof *op);
    op->req.buf = k.req;
    op->raw = k.raw;
    op->rs.reader = k.reader;
    op->keymem = k.keymem;
    op->keycap = k.keycap;
    op->value.priv_ = k.vbuf;
    op->value.cap_ = k.vcap;
    return op;
}

int strata__op_pool_give(strata_cache *c, strata_op *op)
{
    strata__op_idle *k = &op->idle;
    keep_or_free(&op->req.buf);
    keep_or_free(&op->raw);
    if (op->keycap > KEEP_BYTES) {
        free(op->keymem);
        op->keymem = NULL;
        op->keycap = 0;
    }
    if (op->value.cap_ > KEEP_BYTES) {
        free(op->value.priv_);
        op->value.priv_ = NULL;
        op->value.cap_ = 0;
    }
    k->req = op->req.buf;
    k->raw = op->raw;
    k->reader = op->rs.reader;
    k->keymem = op->keymem;
    k->keycap = op->keycap;
    k->vbuf = op->value.priv_;
    k->vcap = op->value.cap_;
    strata__mutex_lock(&c->op_pool_lock);
    if (c->op_pool_n >= POOL_MAX) {
        strata__mutex_unlock(&c->op_pool_lock);
        return -1;
    }
    poison_buffers(k, 1);
    POISON(BODY(op), BODY_SIZE);
    k->next = c->op_pool;
    c->op_pool = op;
    c->op_pool_n++;
    strata__mutex_unlock(&c->op_pool_lock);
    return 0;
}

void strata__op_pool_drain(strata_cache *c)
{
    strata_op *op = c->op_pool, *next;
    for (; op != NULL; op = next) {
        strata__op_idle k = op->idle;
        next = k.next;
        poison_buffers(&k, 0);
        UNPOISON(BODY(op), BODY_SIZE);
        op->req.buf = k.req;
        op->raw = k.raw;
        op->rs.reader = k.reader;
        op->keymem = k.keymem;
        op->value.priv_ = k.vbuf;
        strata__op_destroy(op);
    }
    c->op_pool = NULL;
    c->op_pool_n = 0;
}
