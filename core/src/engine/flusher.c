/*
 * Push-style write-behind: threads that call the registered batch writer,
 * built on the pull API (strata__wb_step = poll, write, ack or fail). After a
 * batch that was not full a thread sleeps up to wb_interval_ms, so batches
 * fill up instead of going out a few records at a time; it is woken early
 * when a full batch has been accepted in this process.
 */
#include "writes.h"
#include "error.h"

#include <stdlib.h>

struct strata__flusher {
    strata_cache *c;
    strata__mutex mu;
    strata__cond cv;
    int stop, woken;
    int64_t interval_ms;
    unsigned int gen;           /* fork generation: the threads exist only there */
    unsigned int n;
    strata__thread *threads;
};

static void *flusher_main(void *arg)
{
    strata__flusher *f = arg;
    for (;;) {
        int rc;
        strata__mutex_lock(&f->mu);
        if (f->stop) {
            strata__mutex_unlock(&f->mu);
            break;
        }
        strata__mutex_unlock(&f->mu);
        rc = strata__wb_step(f->c);
        if (rc >= (int)f->c->cfg.opts.wb_batch_size)
            continue; /* a full batch went out: more are waiting */
        /* else let the next batch fill up for wb_interval_ms (woken early
         * when a full batch is accepted in this process) */
        strata__mutex_lock(&f->mu);
        if (!f->stop && !f->woken) {
            int64_t until = strata__now_mono_ms() + f->interval_ms;
            while (!f->stop && !f->woken && strata__cond_wait_until(&f->cv, &f->mu, until) == 0)
                ;
        }
        f->woken = 0;
        strata__mutex_unlock(&f->mu);
    }
    return NULL;
}

int strata__flusher_new(strata__flusher **out, strata_cache *c, unsigned int threads, int64_t interval_ms)
{
    strata__flusher *f = calloc(1, sizeof *f);
    unsigned int i;
    *out = NULL;
    if (f == NULL || (f->threads = calloc(threads, sizeof *f->threads)) == NULL) {
        free(f);
        return strata__error(STRATA_ENOMEM, "out of memory for flusher threads");
    }
    f->c = c;
    f->interval_ms = interval_ms;
    f->gen = strata__fork_generation();
    strata__mutex_init(&f->mu);
    strata__cond_init(&f->cv);
    for (i = 0; i < threads; i++) {
        if (strata__thread_start(&f->threads[i], flusher_main, f) != 0)
            break;
        f->n++;
    }
    if (f->n < threads) {
        strata__flusher_free(f);
        return strata__error(STRATA_ENOMEM, "cannot start %u write-behind flusher threads", threads);
    }
    *out = f;
    return 0;
}

int strata__flusher_running(const strata__flusher *f)
{
    return f != NULL && f->n > 0 && f->gen == strata__fork_generation();
}

void strata__flusher_wake(strata__flusher *f)
{
    if (f == NULL)
        return;
    strata__mutex_lock(&f->mu);
    f->woken = 1;
    strata__cond_broadcast(&f->cv);
    strata__mutex_unlock(&f->mu);
}

void strata__flusher_free(strata__flusher *f)
{
    unsigned int i;
    if (f == NULL)
        return;
    if (f->gen == strata__fork_generation()) {
        strata__mutex_lock(&f->mu);
        f->stop = 1;
        strata__cond_broadcast(&f->cv);
        strata__mutex_unlock(&f->mu);
        for (i = 0; i < f->n; i++)
            strata__thread_join(f->threads[i]);
        strata__cond_destroy(&f->cv);
        strata__mutex_destroy(&f->mu);
    } /* in a forked child the threads do not exist, and the lock may be a parent thread's */
    free(f->threads);
    free(f);
}
