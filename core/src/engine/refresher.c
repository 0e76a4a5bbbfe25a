/*
 * Background refresh: with refresh_threads > 0, the caller that wins a
 * refresh ticket (stale-while-revalidate or XFetch) returns the value it has
 * at once and a refresher thread runs the loader and fills. Opt-in, because
 * the loader and its userdata are then used after get_or_load returns.
 */
#include "cache.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

#define MAX_QUEUED 1024

typedef struct refresh_job {
    struct refresh_job *next;
    strata_cache *cache;
    strata_ticket *ticket;
    strata_loader_fn loader;
    void *userdata;
    size_t keylen;
    char key[];
} refresh_job;

struct strata__refresher {
    strata__mutex lock;
    strata__cond cond;
    refresh_job *head, *tail;
    size_t queued;
    unsigned int nthreads, started;
    unsigned int generation; /* threads do not survive fork: restart in a child */
    int stopping;
    strata__thread threads[16];
};

static void *refresh_main(void *arg)
{
    strata__refresher *r = arg;
    strata__mutex_lock(&r->lock);
    for (;;) {
        refresh_job *job;
        while (r->head == NULL && !r->stopping)
            strata__cond_wait(&r->cond, &r->lock);
        if (r->head == NULL)
            break;
        job = r->head;
        r->head = job->next;
        if (r->head == NULL)
            r->tail = NULL;
        r->queued--;
        strata__mutex_unlock(&r->lock);
        strata__refresh_now(job->cache, job->ticket, job->key, job->keylen, job->loader, job->userdata);
        free(job);
        strata__mutex_lock(&r->lock);
    }
    strata__mutex_unlock(&r->lock);
    return NULL;
}

int strata__refresher_new(strata__refresher **out, unsigned int threads)
{
    strata__refresher *r = calloc(1, sizeof *r);
    if (r == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory");
    strata__mutex_init(&r->lock);
    strata__cond_init(&r->cond);
    r->nthreads = threads > 16 ? 16 : threads;
    r->generation = strata__fork_generation();
    *out = r;
    return 0;
}

void strata__refresher_free(strata__refresher *r)
{
    unsigned int i;
    refresh_job *job;
    if (r == NULL)
        return;
    strata__mutex_lock(&r->lock);
    r->stopping = 1;
    strata__cond_broadcast(&r->cond);
    strata__mutex_unlock(&r->lock);
    if (r->generation == strata__fork_generation())
        for (i = 0; i < r->started; i++)
            strata__thread_join(r->threads[i]);
    while ((job = r->head) != NULL) { /* not run: give their leases back */
        r->head = job->next;
        strata_abandon(job->ticket);
        free(job);
    }
    strata__cond_destroy(&r->cond);
    strata__mutex_destroy(&r->lock);
    free(r);
}

int strata__refresh_async(strata_cache *c, strata_ticket *t, const char *key, size_t keylen,
                          strata_loader_fn loader, void *userdata)
{
    strata__refresher *r = c->refresher;
    refresh_job *job;
    if (r == NULL)
        return STRATA_ENOTSUP;
    job = malloc(sizeof *job + keylen);
    if (job == NULL)
        return STRATA_ENOMEM;
    job->next = NULL;
    job->cache = c;
    job->ticket = t;
    job->loader = loader;
    job->userdata = userdata;
    job->keylen = keylen;
    memcpy(job->key, key, keylen);
    strata__mutex_lock(&r->lock);
    if (r->generation != strata__fork_generation()) {
        /* In a fork child the parent's threads are gone: start afresh and
         * leave the parent's queued jobs alone. */
        r->generation = strata__fork_generation();
        r->started = 0;
        r->head = r->tail = NULL;
        r->queued = 0;
    }
    if (r->queued >= MAX_QUEUED || r->stopping) {
        strata__mutex_unlock(&r->lock);
        free(job);
        return STRATA_EBUSY;
    }
    if (r->started < r->nthreads && r->queued >= r->started) {
        if (strata__thread_start(&r->threads[r->started], refresh_main, r) == 0)
            r->started++;
    }
    if (r->started == 0) {
        strata__mutex_unlock(&r->lock);
        free(job);
        return STRATA_ENOMEM;
    }
    if (r->tail)
        r->tail->next = job;
    else
        r->head = job;
    r->tail = job;
    r->queued++;
    strata__cond_signal(&r->cond);
    strata__mutex_unlock(&r->lock);
    return 0;
}
