/* Range checks for the hot-key and L1-coherence options. */
#include "config.h"
#include "error.h"

int strata__validate_hot(const strata__config *cfg)
{
    const strata_options *o = &cfg->opts;
    if (o->hot_sketch_width != 0 && (o->hot_sketch_width < 256 || o->hot_sketch_width > STRATA__HOT_MAX_WIDTH))
        return strata__error(STRATA_EOPTION, "option hot_sketch_width: must be 0 (off) or 256-%u, got %u",
                             STRATA__HOT_MAX_WIDTH, o->hot_sketch_width);
    if (o->hot_window < 1 || o->hot_window > STRATA__HOT_MAX_WINDOW)
        return strata__error(STRATA_EOPTION, "option hot_window: must be 1-%u, got %u",
                             STRATA__HOT_MAX_WINDOW, o->hot_window);
    if (o->hot_threshold < 1 || o->hot_threshold > 255)
        return strata__error(STRATA_EOPTION, "option hot_threshold: must be 1-255 (8-bit counters), got %u",
                             o->hot_threshold);
    if (o->hot_top > STRATA__HOT_MAX_TOP)
        return strata__error(STRATA_EOPTION, "option hot_top: must be 0-%u, got %u", STRATA__HOT_MAX_TOP,
                             o->hot_top);
    if (o->l1 && o->l1_admission == STRATA_L1_HOT && o->hot_sketch_width == 0)
        return strata__error(STRATA_EOPTION, "option l1_admission=hot needs the sketch (hot_sketch_width > 0)");
    if (o->tracking != 0 && o->tracking != 1)
        return strata__error(STRATA_EOPTION, "option tracking: must be 0 or 1, got %d", o->tracking);
    if (o->tracking && cfg->scheme != STRATA__SCHEME_REDIS)
        return strata__error(STRATA_EOPTION, "option tracking: only for redis:// URLs (CLIENT TRACKING)");
    if (o->coherence_ping_ms <= 0)
        return strata__error(STRATA_EOPTION, "option coherence_ping_ms: must be > 0, got %lld",
                             (long long)o->coherence_ping_ms);
    return 0;
}
