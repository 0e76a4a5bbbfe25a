/* Range checks for the hot-key and L1-coherence options. */
#include "config.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

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
    if (o->coherence_ping_ms <= 0 || o->coherence_ping_ms > STRATA_MAX_MS)
        return strata__error(STRATA_EOPTION, "option coherence_ping_ms: must be 1-%lld ms, got %lld",
                             (long long)STRATA_MAX_MS, (long long)o->coherence_ping_ms);
    if (cfg->l1_bus[0]) {
        strata__config *bus;
        int rc;
        if (cfg->scheme != STRATA__SCHEME_MEMCACHED)
            return strata__error(STRATA_EOPTION, "option l1_bus: only for memcached:// URLs "
                                 "(redis:// carries its own invalidations)");
        if ((bus = malloc(sizeof *bus)) == NULL)
            return strata__error(STRATA_ENOMEM, "out of memory checking option l1_bus");
        rc = strata__parse_l1_bus(cfg, bus);
        free(bus);
        return rc;
    }
    return 0;
}

int strata__set_l1_bus(strata__config *cfg, const char *url, size_t len)
{
    if (len >= sizeof cfg->l1_bus)
        return strata__error(STRATA_EOPTION, "option l1_bus: URL longer than %zu bytes", sizeof cfg->l1_bus - 1);
    memcpy(cfg->l1_bus, url, len);
    cfg->l1_bus[len] = '\0';
    return 0;
}

int strata__parse_l1_bus(const strata__config *cfg, strata__config *out)
{
    int rc;
    if (strncmp(cfg->l1_bus, "redis://", 8) != 0 || strchr(cfg->l1_bus, '?') != NULL)
        return strata__error(STRATA_EOPTION, "option l1_bus: expected redis://[user:password@]host[:port][/db] "
                             "without options, got \"%.80s\"", cfg->l1_bus);
    if ((rc = strata__config_parse(out, cfg->l1_bus, NULL)) < 0)
        return strata__error(STRATA_EOPTION, "option l1_bus: %s", strata_error_last());
    return 0;
}
