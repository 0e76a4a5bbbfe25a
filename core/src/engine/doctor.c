/* strata_server_info_get: the server facts `stratacache doctor` judges. */
#include "cache.h"
#include "error.h"
#include "engine/metrics.h"

#include <stdio.h>
#include <string.h>

int strata_server_info_get(strata_cache *c, strata_server_info *out)
{
    strata__backend *be;
    unsigned int version;
    int rc;

    if (c == NULL || out == NULL)
        return strata__error(STRATA_EINVAL, "strata_server_info_get: NULL argument");
    if ((version = out->version) != STRATA_SERVER_INFO_VERSION)
        return strata__error(STRATA_EVERSION, "strata_server_info: struct version %u (this library knows %u)",
                             version, STRATA_SERVER_INFO_VERSION);
    memset(out, 0, sizeof *out);
    out->version = version;
    out->rtt_us = -1;
    out->maxmemory = -1;
    out->cluster = -1;
    out->pubsub = -1;
    out->tracking = -1;
    out->item_size_max = -1;
    be = strata__backend_untimed(c->backend);
    snprintf(out->backend, sizeof out->backend, "%s", be->ops->name);
    if (be->ops->server_info == NULL) { /* the embedded store: this process is the server */
        snprintf(out->server_version, sizeof out->server_version, "%s", strata_version());
        out->maxmemory = (int64_t)c->cfg.opts.max_bytes;
        snprintf(out->eviction_policy, sizeof out->eviction_policy, "lru");
        out->clock_known = 1;
        return 0;
    }
    rc = be->ops->server_info(be, &c->cfg, out);
    return rc < 0 ? rc : 0;
}
