/*
 * strata_clear: every entry of the namespace misses afterwards. One O(1)
 * bump of the namespace generation (engine/tags.c), so nothing is scanned or
 * deleted; the outdated entries expire by their TTL or are overwritten.
 * Design and cost per read: docs/FRAMEWORKS.md.
 */
#include "cache.h"
#include "error.h"
#include "engine/coherence.h"

int strata_clear(strata_cache *c)
{
    int rc;
    if (c == NULL)
        return strata__error(STRATA_EINVAL, "cache handle is NULL");
    if ((rc = strata__tags_clear(c)) < 0)
        return rc;
    if (c->l1) {
        strata__l1_clear(c->l1); /* not even for stale-if-error: they were cleared */
        STRATA__COUNT(c, l1_flushes);
    }
    strata__coherence_cleared(c);
    return 0;
}
