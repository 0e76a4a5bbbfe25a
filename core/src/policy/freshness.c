#include "freshness.h"
#include "key.h"
#include "hash.h"

#include <math.h>

strata__verdict strata__freshness(int64_t now_ms, int64_t fresh_until_ms, int64_t stale_until_ms,
                                  uint32_t cost_ms, double beta, double u)
{
    if (now_ms >= stale_until_ms)
        return STRATA__EXPIRED;
    if (now_ms >= fresh_until_ms)
        return STRATA__STALE;
    if (cost_ms > 0 && beta > 0 && u > 0 && u <= 1) {
        double gap = (double)cost_ms * beta * (1.0 - log(u)); /* >= cost * beta */
        if ((double)now_ms + gap >= (double)fresh_until_ms)
            return STRATA__EARLY_REFRESH;
    }
    return STRATA__FRESH;
}

int64_t strata__jitter_ttl(int64_t ttl_ms, unsigned int pct, double u)
{
    int64_t cut;
    if (pct == 0 || ttl_ms <= 1)
        return ttl_ms;
    if (pct > 100)
        pct = 100;
    cut = (int64_t)((double)ttl_ms * (double)pct / 100.0 * (u > 1 ? 1 : u));
    return ttl_ms - cut < 1 ? 1 : ttl_ms - cut;
}

double strata__xfetch_draw(uint64_t seed, const char *key, size_t keylen, int64_t fresh_until_ms)
{
    return strata__xfetch_draw_hashed(seed, strata__hash64(key, keylen, STRATA__KEY_SEED), fresh_until_ms);
}

double strata__xfetch_draw_hashed(uint64_t seed, uint64_t key_hash, int64_t fresh_until_ms)
{
    uint64_t h = strata__hash64(&key_hash, sizeof key_hash, seed ^ ((uint64_t)fresh_until_ms * 0x9e3779b97f4a7c15ull));
    return (double)((h >> 11) + 1) * (1.0 / 9007199254740992.0);
}
