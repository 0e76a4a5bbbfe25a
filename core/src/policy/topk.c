#include "topk.h"
#include "policy/key.h"

#include <string.h>

void strata__topk_init(strata__topk *t, strata__topk_entry *entries, size_t cap)
{
    t->e = entries;
    t->cap = cap;
    t->n = 0;
    t->min_count = 0;
}

static int same_key(const strata__topk_entry *e, uint64_t h, const char *key, size_t keylen)
{
    size_t kept = keylen < STRATA__TOPK_KEY ? keylen : STRATA__TOPK_KEY;
    return e->hash == h && e->keylen == keylen && strata__key_bytes_equal(e->key, key, kept);
}

static void refresh_min(strata__topk *t)
{
    size_t i;
    uint64_t m = UINT64_MAX;
    for (i = 0; i < t->n; i++)
        if (t->e[i].count < m)
            m = t->e[i].count;
    t->min_count = t->n == t->cap ? m : 0;
}

void strata__topk_note(strata__topk *t, uint64_t h, const char *key, size_t keylen, unsigned int est)
{
    strata__topk_note_n(t, h, key, keylen, est, 1);
}

void strata__topk_note_n(strata__topk *t, uint64_t h, const char *key, size_t keylen, unsigned int est,
                         unsigned int n)
{
    size_t i, victim = 0;
    strata__topk_entry *e;
    if (t->cap == 0)
        return;
    for (i = 0; i < t->n; i++) {
        if (same_key(&t->e[i], h, key, keylen)) {
            uint64_t old = t->e[i].count;
            e = &t->e[i];
            e->count = old + n > est ? old + n : est;
            if (t->n == t->cap && old == t->min_count)
                refresh_min(t);
            return;
        }
    }
    if (t->n < t->cap) {
        victim = t->n++;
    } else {
        if (est <= t->min_count)
            return;
        for (i = 1; i < t->n; i++)
            if (t->e[i].count < t->e[victim].count)
                victim = i;
    }
    e = &t->e[victim];
    e->hash = h;
    e->count = est;
    e->keylen = keylen;
    memcpy(e->key, key, keylen < STRATA__TOPK_KEY ? keylen : STRATA__TOPK_KEY);
    refresh_min(t);
}

void strata__topk_halve(strata__topk *t)
{
    size_t i;
    for (i = 0; i < t->n; i++)
        t->e[i].count /= 2;
    refresh_min(t);
}
