/*
 * A cache's idle operations (op.h). Beginning an op was a 1.6 KB zeroed
 * allocation plus its key block, request buffer, reply buffer and value
 * buffer, each freed again at the end: most of a pipelined GET's cost. An
 * idle op keeps its buffers (up to KEEP_BYTES each) and is handed out again
 * zeroed but for them. Under AddressSanitizer an idle op (but its `idle`
 * header) and its buffers are poisoned, so a use after strata_op_free is
 * still caught.
 *
 * Every live op holds a reference on its pool and strata_op_free touches
 * only the pool, never the cache: a binding's garbage collector (ffi.gc,
 * cffi) may free a cache before its last ops. A closed pool frees what
 * comes back and goes when the last op does.
 */
#include "op.h"
#include "error.h"

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

typedef struct strata__op_pool strata__op_pool;

struct strata__op_pool {
    strata__mutex lock;
    strata_op *idle;            /* a list through idle.next */
    unsigned int nidle;
    size_t refs;                /* the cache's (until closed) + one per live op */
    int closed;                 /* the cache is gone */
};

int strata__op_pool_new(strata__op_pool **out)
{
    strata__op_pool *p = calloc(1, sizeof *p);
    *out = NULL;
    if (p == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory for the operation pool");
    strata__mutex_init(&p->lock);
    p->refs = 1;
    *out = p;
    return 0;
}

/* An idle op back to a freshly allocated one's state, its buffers kept. */
static void reset(strata_op *op)
{
    strata__op_idle k = op->idle;
    UNPOISON(BODY(op), BODY_SIZE);
    poison_buffers(&k, 0);
    memset(op, 0, sizeof *op);
    op->req.buf = k.req;
    op->raw = k.raw;
    op->rs.reader = k.reader;
    op->keymem = k.keymem;
    op->keycap = k.keycap;
    op->value.priv_ = k.vbuf;
    op->value.cap_ = k.vcap;
}

strata_op *strata__op_pool_new_op(strata_cache *c)
{
    strata__op_pool *p = c->op_pool;
    strata_op *op;
    strata__mutex_lock(&p->lock);
    op = p->idle;
    if (op != NULL) {
        p->idle = op->idle.next;
        p->nidle--;
    }
    p->refs++;
    strata__mutex_unlock(&p->lock);
    if (op != NULL)
        reset(op);
    else if ((op = calloc(1, sizeof *op)) == NULL) {
        strata__mutex_lock(&p->lock);
        p->refs--; /* the cache still holds its own: never the last */
        strata__mutex_unlock(&p->lock);
        return NULL;
    }
    op->pool = p;
    return op;
}

/* The kept buffers into the idle header (large ones freed). */
static void park(strata_op *op)
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
}

void strata__op_pool_free_op(strata_op *op)
{
    strata__op_pool *p = op->pool;
    int last;
    park(op);
    strata__mutex_lock(&p->lock);
    last = --p->refs == 0;
    if (!p->closed && p->nidle < POOL_MAX) {
        poison_buffers(&op->idle, 1);
        POISON(BODY(op), BODY_SIZE);
        op->idle.next = p->idle;
        p->idle = op;
        p->nidle++;
        op = NULL;
    }
    strata__mutex_unlock(&p->lock);
    if (op != NULL)
        strata__op_destroy(op);
    if (last) {
        strata__mutex_destroy(&p->lock);
        free(p);
    }
}

void strata__op_pool_settle(strata_op *op, uint64_t (*drop)(strata_cache *c, const strata__key *k))
{
    strata__op_pool *p = op->pool;
    strata__mutex_lock(&p->lock); /* holds off strata_cache_free's close */
    if (!p->closed)
        drop(op->c, &op->k);
    strata__mutex_unlock(&p->lock);
}

void strata__op_pool_close(strata__op_pool *p)
{
    strata_op *op, *next;
    int last;
    if (p == NULL)
        return;
    strata__mutex_lock(&p->lock);
    p->closed = 1;
    op = p->idle;
    p->idle = NULL;
    p->nidle = 0;
    last = --p->refs == 0;
    strata__mutex_unlock(&p->lock);
    for (; op != NULL; op = next) {
        next = op->idle.next;
        reset(op);
        strata__op_destroy(op);
    }
    if (last) {
        strata__mutex_destroy(&p->lock);
        free(p);
    }
}
