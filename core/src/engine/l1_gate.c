/*
 * What may enter and be served from L1: nothing while the invalidation link
 * is down (Redis), and with l1_admission=hot only keys the sketch has seen
 * often enough lately. Also where reads feed the sketch.
 */
#include "cache.h"
#include "coherence.h"
#include "hotkeys.h"

void strata__note_read(strata_cache *c, const strata__key *k)
{
    if (c->hot)
        strata__hot_note(c->hot, k, 1);
}

void strata__note_sampled_hit(strata_cache *c, const strata__key *k)
{
    strata__hot_note_sampled(c->hot, k, c->cfg.hot_sample);
}

static int gate_readable(void *ud)
{
    return strata__coherence_usable(ud);
}

static int gate_admit(void *ud, const strata__key *k)
{
    strata_cache *c = ud;
    if (c->coherence && !strata__coherence_usable(c))
        return 0;
    if (c->cfg.opts.l1_admission == STRATA_L1_NONE ||
        (c->cfg.opts.l1_admission == STRATA_L1_HOT && !strata__hot_is_hot(c->hot, k))) {
        STRATA__COUNT(c, l1_admission_rejects);
        return 0;
    }
    return 1;
}

/* A full L1 shard keeps its victim unless the newcomer is read more often
 * lately (TinyLFU): the Zipf tail stops pushing out keys read often before. */
static int gate_replace(void *ud, const strata__key *k, uint64_t victim_hash)
{
    strata_cache *c = ud;
    if (strata__hot_prefer(c->hot, k, victim_hash))
        return 1;
    STRATA__COUNT(c, l1_admission_rejects);
    return 0;
}

int strata__l1_gate_start(strata_cache *c)
{
    strata__l1_gate gate;
    int rc;
    if ((rc = strata__coherence_start(c)) < 0)
        return rc;
    if (c->l1 == NULL)
        return 0;
    gate.readable = c->coherence ? gate_readable : 0;
    gate.admit = c->coherence || c->cfg.opts.l1_admission != STRATA_L1_ALL ? gate_admit : 0;
    gate.replace = c->cfg.opts.l1_admission == STRATA_L1_HOT && c->cfg.hot_compare ? gate_replace : 0;
    gate.ud = c;
    strata__l1_set_gate(c->l1, &gate);
    return 0;
}

void strata__l1_gate_stop(strata_cache *c)
{
    strata__coherence_stop(c);
}
