#include "hotkeys.h"
#include "error.h"
#include "platform/platform.h"
#include "policy/sketch.h"
#include "policy/topk.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define HOT_SHARDS 16
#define HOT_SEED 0x486f744b /* independent of the L1's shard hash */
#define HOT_BUFFER_PLACES 128  /* a thread's sample buffer: an open-addressed table */
#define HOT_BUFFER_KEYS 96     /* distinct keys it holds before merging (3/4 full) */
#define HOT_BUFFER_SAMPLES 256 /* samples it holds before merging */
#define HOT_BUFFER_KEY 48      /* longer keys are noted at once, not buffered */

/* Sampled L1 hits of one key waiting in a thread's buffer (one cache line). */
typedef struct hot_pending {
    uint64_t key_hash; /* the call's key hash */
    uint32_t reads;    /* the reads the samples stand for; 0 = an empty place */
    uint32_t keylen;
    char key[HOT_BUFFER_KEY];
} hot_pending;

/* A reader slot's samples (written by the slot's thread only), merged into
 * the shared shards every HOT_BUFFER_SAMPLES samples or HOT_BUFFER_KEYS
 * keys: each key a thread read in a batch becomes one sketch update, not
 * one per sample (8 KB, made on a slot's first sample). */
typedef struct hot_buffer {
    unsigned int keys, samples;
    uint64_t reads;
    unsigned char used[HOT_BUFFER_KEYS]; /* the places holding a key, in the order taken */
    hot_pending p[HOT_BUFFER_PLACES];
} __attribute__((aligned(64))) hot_buffer;

typedef struct hot_shard {
    int busy;                  /* the shard's lock (atomic; shard_lock below) */
    strata__sketch sketch;
    strata__topk top;
    unsigned int halvings;     /* of the tracker's that this shard has applied */
    int64_t window_start_ms;   /* monotonic: when the last halving happened */
    int64_t last_window_ms;    /* how long the window before it lasted (0 = none yet) */
    unsigned int unflushed;    /* reads noted here, not yet added to the tracker's count */
    char pad[64];
} hot_shard;

/* The window (hot_window reads) is the whole tracker's: every read a shard
 * counts goes toward it (in batches, see `flush`), and when it turns, each
 * shard halves the next time it is touched, so a shard no reader visits
 * still forgets. */
struct strata__hot {
    hot_shard shards[HOT_SHARDS];
    unsigned int halvings;     /* windows completed (atomic; read by every note) */
    uint64_t window;
    unsigned int flush;        /* a shard adds its reads to `reads` in batches of this many */
    unsigned int threshold;
    size_t bytes;
    uint8_t *cells;
    strata__topk_entry *entries;
    hot_buffer *buffers[STRATA__READER_SLOTS]; /* by reader slot, made on its first sample */
    strata__hot *prev, *next;  /* every live tracker (trackers, below) */
    /* Written by every batch, so on a cache line of its own: beside the
     * fields above it made every note of every thread miss. */
    char pad[64];
    uint64_t reads;            /* in all shards (atomic) */
    char pad2[64];
};

static uint32_t pow2_at_least(uint32_t x)
{
    uint32_t p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

/* Every live tracker, so a thread that ends merges its buffers (its last
 * batch would otherwise wait for the slot's next thread). */
static pthread_mutex_t trackers_lock = PTHREAD_MUTEX_INITIALIZER;
static strata__hot *trackers;
static pthread_once_t trackers_once = PTHREAD_ONCE_INIT;

static void merge(strata__hot *h, struct hot_buffer *b);

static void merge_ending_thread(unsigned int slot)
{
    strata__hot *h;
    pthread_mutex_lock(&trackers_lock);
    for (h = trackers; h; h = h->next)
        if (h->buffers[slot] && h->buffers[slot]->samples)
            merge(h, h->buffers[slot]);
    pthread_mutex_unlock(&trackers_lock);
}

static void trackers_before_fork(void)
{
    pthread_mutex_lock(&trackers_lock);
}

static void trackers_after_fork(void)
{
    pthread_mutex_unlock(&trackers_lock);
}

static void trackers_init(void)
{
    pthread_atfork(trackers_before_fork, trackers_after_fork, trackers_after_fork);
    strata__reader_slot_on_release(merge_ending_thread);
}

int strata__hot_new(strata__hot **out, const strata_options *o)
{
    strata__hot *h = calloc(1, sizeof *h);
    uint32_t width = pow2_at_least(o->hot_sketch_width) / HOT_SHARDS;
    size_t i, per = strata__sketch_bytes(width);
    int64_t now = strata__now_mono_ms();
    if (h == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory creating the hot-key sketch");
    h->cells = malloc(per * HOT_SHARDS);
    h->entries = o->hot_top ? calloc((size_t)o->hot_top * HOT_SHARDS, sizeof *h->entries) : NULL;
    if (h->cells == NULL || (o->hot_top && h->entries == NULL)) {
        free(h->cells);
        free(h);
        return strata__error(STRATA_ENOMEM, "out of memory creating the hot-key sketch");
    }
    h->threshold = o->hot_threshold;
    h->window = o->hot_window ? o->hot_window : 1;
    /* Batches keep threads that sample hot keys from writing one shared
     * counter per read; a window turns at most 16 batches late (1/16 of it). */
    h->flush = h->window / 256 < 1 ? 1 : h->window / 256 > 32 ? 32 : (unsigned int)(h->window / 256);
    h->bytes = sizeof *h + per * HOT_SHARDS + (size_t)o->hot_top * HOT_SHARDS * sizeof *h->entries;
    for (i = 0; i < HOT_SHARDS; i++) {
        hot_shard *s = &h->shards[i];
        strata__sketch_init(&s->sketch, h->cells + i * per, width, UINT32_MAX); /* halved here, not by itself */
        strata__topk_init(&s->top, h->entries ? h->entries + i * o->hot_top : NULL, o->hot_top);
        s->window_start_ms = now;
    }
    pthread_once(&trackers_once, trackers_init);
    pthread_mutex_lock(&trackers_lock);
    h->next = trackers;
    if (trackers)
        trackers->prev = h;
    trackers = h;
    pthread_mutex_unlock(&trackers_lock);
    *out = h;
    return 0;
}

void strata__hot_free(strata__hot *h)
{
    size_t i;
    if (h == NULL)
        return;
    pthread_mutex_lock(&trackers_lock);
    if (h->prev)
        h->prev->next = h->next;
    else
        trackers = h->next;
    if (h->next)
        h->next->prev = h->prev;
    pthread_mutex_unlock(&trackers_lock);
    for (i = 0; i < STRATA__READER_SLOTS; i++)
        free(h->buffers[i]);
    free(h->entries);
    free(h->cells);
    free(h);
}

size_t strata__hot_bytes(const strata__hot *h)
{
    return h ? strata__atomic_load(&h->bytes) : 0;
}

/* A shard's lock is a flag, not a mutex: it is held for one sketch update
 * (at most a halving of the shard's 1/16 of the sketch), a sampled L1 hit
 * only tries it, and a try is an exchange where pthread_mutex_trylock and
 * unlock cost ~55 instructions. Waiters spin, then yield. */
static int shard_try(hot_shard *s)
{
    return __atomic_exchange_n(&s->busy, 1, __ATOMIC_ACQUIRE) == 0;
}

static void shard_lock(hot_shard *s)
{
    unsigned int round = 0;
    while (__atomic_load_n(&s->busy, __ATOMIC_RELAXED) || !shard_try(s))
        strata__spin_pause(round++);
}

static void shard_unlock(hot_shard *s)
{
    __atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
}

/* The call's key hash, remixed so the sketch's cells do not line up with
 * the L1's shards and buckets (taken from the same hash); shard from the top
 * bits, sketch cells from the rest. */
static void catch_up(strata__hot *h, hot_shard *s);

static hot_shard *shard_of_hash(strata__hot *h, uint64_t key_hash, uint64_t *hash)
{
    uint64_t x = (key_hash ^ HOT_SEED) * 0x9e3779b97f4a7c15ull;
    *hash = x ^ (x >> 29);
    return &h->shards[*hash >> 60];
}

static hot_shard *shard_of(strata__hot *h, const strata__key *k, uint64_t *hash)
{
    return shard_of_hash(h, k->hash, hash);
}

static unsigned int estimate(strata__hot *h, uint64_t key_hash)
{
    uint64_t hash;
    hot_shard *s = shard_of_hash(h, key_hash, &hash);
    unsigned int est;
    shard_lock(s);
    catch_up(h, s);
    est = strata__sketch_estimate(&s->sketch, hash);
    shard_unlock(s);
    return est;
}

/* Applies the windows the tracker completed since the shard last looked;
 * the caller holds the shard. Eight halvings empty an 8-bit counter. */
static void catch_up(strata__hot *h, hot_shard *s)
{
    unsigned int due = strata__atomic_load(&h->halvings) - s->halvings, i;
    int64_t now;
    if (due == 0)
        return;
    for (i = 0; i < due && i < 9; i++) {
        strata__sketch_halve(&s->sketch);
        strata__topk_halve(&s->top);
    }
    s->halvings += due;
    now = strata__now_mono_ms();
    s->last_window_ms = (now - s->window_start_ms) / due;
    s->window_start_ms = now;
}

void strata__hot_note(strata__hot *h, const strata__key *k, unsigned int n)
{
    uint64_t hash;
    hot_shard *s = shard_of(h, k, &hash);
    unsigned int est;
    /* A reader never waits for the sketch: when another thread holds the
     * shard, this read goes uncounted. Only keys read concurrently, the hot
     * ones, lose samples, and they are far above any threshold. */
    if (!shard_try(s))
        return;
    s->unflushed += n;
    if (s->unflushed >= h->flush) {
        uint64_t reads = strata__atomic_add(&h->reads, s->unflushed);
        if (reads % h->window < s->unflushed) /* crossed a multiple of the window */
            strata__atomic_add(&h->halvings, 1);
        s->unflushed = 0;
    }
    catch_up(h, s);
    strata__sketch_add_n(&s->sketch, hash, n, &est);
    strata__topk_note_n(&s->top, hash, k->ptr, k->len, est, n);
    shard_unlock(s);
}

/* Adds a buffer's samples to the window and the shards, and empties it. */
static void merge(strata__hot *h, hot_buffer *b)
{
    uint64_t after = strata__atomic_add(&h->reads, b->reads), before = after - b->reads;
    unsigned int crossed = (unsigned int)(after / h->window - before / h->window);
    for (; crossed; crossed--)
        strata__atomic_add(&h->halvings, 1);
    unsigned int i;
    for (i = 0; i < b->keys; i++) {
        hot_pending *p = &b->p[b->used[i]];
        uint64_t hash;
        hot_shard *s = shard_of_hash(h, p->key_hash, &hash);
        unsigned int est;
        shard_lock(s); /* once per batch: waiting is cheaper than losing the batch */
        if (strata__atomic_load(&h->halvings) != s->halvings)
            catch_up(h, s);
        strata__sketch_add_n(&s->sketch, hash, p->reads, &est);
        strata__topk_note_n(&s->top, hash, p->key, p->keylen, est, p->reads);
        shard_unlock(s);
        p->reads = 0;
    }
    b->keys = b->samples = 0;
    b->reads = 0;
}

static hot_buffer *buffer_of(strata__hot *h, unsigned int slot)
{
    hot_buffer *b = h->buffers[slot];
    if (b == NULL && (b = calloc(1, sizeof *b)) != NULL) {
        h->buffers[slot] = b;
        strata__atomic_add(&h->bytes, sizeof *b);
    }
    return b;
}

/* Copies a key of at most HOT_BUFFER_KEY bytes in fixed-size moves the
 * compiler inlines (overlapping when len is not a power of two). */
static void copy_key(char *dst, const char *src, size_t len)
{
    if (len >= 16) {
        size_t i;
        for (i = 0; i + 16 <= len; i += 16)
            memcpy(dst + i, src + i, 16);
        memcpy(dst + len - 16, src + len - 16, 16);
    } else if (len >= 8) {
        memcpy(dst, src, 8);
        memcpy(dst + len - 8, src + len - 8, 8);
    } else if (len >= 4) {
        memcpy(dst, src, 4);
        memcpy(dst + len - 4, src + len - 4, 4);
    } else {
        memcpy(dst, src, len);
    }
}

void strata__hot_note_sampled(strata__hot *h, const strata__key *k, unsigned int n)
{
    unsigned int slot = strata__reader_slot_held(), place;
    hot_buffer *b;
    hot_pending *p;
    if (slot >= STRATA__READER_SLOTS || k->len > HOT_BUFFER_KEY || (b = buffer_of(h, slot)) == NULL) {
        strata__hot_note(h, k, n);
        return;
    }
    /* Linear probing from the key's hash; never full (merged at 3/4). */
    for (place = (unsigned int)(k->hash >> 57);; place = (place + 1) % HOT_BUFFER_PLACES) {
        p = &b->p[place];
        if (p->reads == 0 || (p->key_hash == k->hash && p->keylen == k->len &&
                              strata__key_bytes_equal(p->key, k->ptr, k->len)))
            break;
    }
    if (p->reads == 0) {
        p->key_hash = k->hash;
        p->keylen = (uint32_t)k->len;
        copy_key(p->key, k->ptr, k->len);
        b->used[b->keys++] = (unsigned char)place;
    }
    p->reads += n;
    b->reads += n;
    if (++b->samples >= HOT_BUFFER_SAMPLES || b->keys >= HOT_BUFFER_KEYS)
        merge(h, b);
}

/* The calling thread's pending samples, merged now (for a report). */
static void merge_own(strata__hot *h)
{
    unsigned int slot = strata__reader_slot_held();
    if (slot < STRATA__READER_SLOTS && h->buffers[slot] && h->buffers[slot]->samples)
        merge(h, h->buffers[slot]);
}

int strata__hot_is_hot(strata__hot *h, const strata__key *k)
{
    return estimate(h, k->hash) >= h->threshold;
}

int strata__hot_prefer(strata__hot *h, const strata__key *k, uint64_t victim_hash)
{
    return estimate(h, k->hash) > estimate(h, victim_hash);
}

/* Shards halve at different moments, so raw counts from two shards are not
 * comparable; rates (count over the span it covers) are. */
static int by_rate_desc(const void *a, const void *b)
{
    const strata_hot_key *x = a, *y = b;
    if (x->rate_per_s != y->rate_per_s)
        return x->rate_per_s < y->rate_per_s ? 1 : -1;
    return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

int strata__hot_top(strata__hot *h, size_t n, strata_hot_key *out, size_t *count)
{
    size_t i, j, total = 0, cap = 0, got;
    strata_hot_key *all;
    int64_t now = strata__now_mono_ms();
    for (i = 0; i < HOT_SHARDS; i++)
        cap += h->shards[i].top.cap;
    *count = 0;
    if (n == 0 || cap == 0)
        return 0;
    merge_own(h);
    if ((all = malloc(cap * sizeof *all)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory ranking hot keys");
    for (i = 0; i < HOT_SHARDS; i++) {
        hot_shard *s = &h->shards[i];
        double span_s;
        shard_lock(s);
        catch_up(h, s);
        /* A decayed count covers about the current window plus one past
         * window's length (1/2 + 1/4 + ... of each earlier one). */
        span_s = (double)(now - s->window_start_ms + s->last_window_ms) / 1000.0;
        for (j = 0; j < s->top.n; j++) {
            const strata__topk_entry *e = &s->top.e[j];
            strata_hot_key *o = &all[total++];
            o->full_keylen = e->keylen;
            o->keylen = e->keylen < STRATA_HOT_KEY_MAX ? e->keylen : STRATA_HOT_KEY_MAX;
            memcpy(o->key, e->key, o->keylen);
            o->key[o->keylen] = '\0';
            o->count = e->count;
            o->rate_per_s = (double)e->count / (span_s > 0.001 ? span_s : 0.001);
        }
        shard_unlock(s);
    }
    qsort(all, total, sizeof *all, by_rate_desc);
    got = total < n ? total : n;
    memcpy(out, all, got * sizeof *out);
    free(all);
    *count = got;
    return 0;
}

/* ---- the public report ---- */

#include "cache.h"

int strata_hot_keys(strata_cache *c, size_t n, strata_hot_key *out, size_t *count)
{
    if (c == NULL || count == NULL || (out == NULL && n > 0))
        return strata__error(STRATA_EINVAL, "%s is NULL", c == NULL ? "cache handle"
                             : count == NULL ? "count out-pointer" : "output array");
    *count = 0;
    if (c->hot == NULL)
        return strata__error(STRATA_ENOTSUP, "hot-key tracking is off for this cache (hot_sketch_width=0)");
    return strata__hot_top(c->hot, n, out, count);
}
