/* What a redis+cluster:// cache may not ask for (docs/CLUSTER.md). */
#include "config.h"
#include "error.h"

int strata__validate_cluster(const strata__config *cfg)
{
    if (!cfg->cluster)
        return 0;
    if (cfg->nservers == 0)
        return strata__error(STRATA_EOPTION, "redis+cluster://: no seed node (expected host:port[,host:port...])");
    if (cfg->db != 0)
        return strata__error(STRATA_EOPTION, "redis+cluster://: database %d: a Redis Cluster has only database 0",
                             cfg->db);
    if (cfg->io_host)
        return strata__error(STRATA_EOPTION, "redis+cluster://: option io=host is not supported yet (the "
                             "sans-I/O operations do not follow MOVED/ASK; use the blocking driver)");
    if (cfg->opts.tracking)
        return strata__error(STRATA_EOPTION, "redis+cluster://: option tracking=1 is not supported (CLIENT "
                             "TRACKING is per node; the invalidation channel is cluster-wide)");
    return 0;
}
