/*
 * strata_envelope_*: the envelope codec and freshness verdict of policy/,
 * exported for host-side tiers that store envelopes themselves (the nginx
 * shared dict of resty.stratacache). Thin and pure: the decisions stay in
 * policy/envelope.c and policy/freshness.c.
 */
#include "stratacache.h"

#include "error.h"
#include "platform/platform.h"
#include "policy/envelope.h"
#include "policy/freshness.h"

#include <math.h>
#include <string.h>

int strata_envelope_decode(const char *data, size_t len, const char *key, size_t keylen,
                           double xfetch_beta, strata_envelope_info *out)
{
    strata__envelope env;
    if (!out || (!data && len) || (!key && keylen))
        return strata__error(STRATA_EINVAL, "strata_envelope_decode: NULL argument");
    memset(out, 0, sizeof *out);
    if (!data || strata__env_decode(data, len, &env) != 0)
        return STRATA_MISS;
    out->negative = (env.flags & STRATA__ENV_FLAG_NEGATIVE) != 0;
    out->created_ms = env.created_ms;
    out->fresh_until_ms = env.fresh_until_ms;
    out->stale_until_ms = env.stale_until_ms;
    out->cost_ms = env.cost_ms;
    out->ntags = env.ntags;
    out->payload = env.payload;
    out->payload_len = env.payload_len;
    out->refresh_at_ms = env.fresh_until_ms;
    if (xfetch_beta > 0 && env.cost_ms > 0 && !out->negative) {
        /* the earliest now at which strata__freshness says EARLY_REFRESH */
        double u = strata__xfetch_draw(strata__process_seed(), key ? key : "", keylen,
                                       env.fresh_until_ms);
        double gap = (double)env.cost_ms * xfetch_beta * (1.0 - log(u));
        double at = ceil((double)env.fresh_until_ms - gap);
        out->refresh_at_ms = at < (double)env.created_ms ? env.created_ms : (int64_t)at;
    }
    return STRATA_OK;
}

int strata_envelope_verdict(const strata_envelope_info *info, int64_t now_ms)
{
    if (!info)
        return strata__error(STRATA_EINVAL, "strata_envelope_verdict: info is NULL");
    if (now_ms >= info->stale_until_ms)
        return STRATA_MISS;
    if (info->negative)
        return STRATA_NEGATIVE;
    if (now_ms >= info->fresh_until_ms)
        return STRATA_HIT_STALE;
    if (now_ms >= info->refresh_at_ms)
        return STRATA_HIT_REFRESH;
    return STRATA_OK;
}

int strata_envelope_encode(const char *val, size_t vallen, int negative, int64_t now_ms,
                           int64_t ttl_ms, int64_t stale_ms, uint32_t cost_ms, char *buf,
                           size_t cap, size_t *needed)
{
    strata__envelope env;
    size_t size;
    if (!needed || (!val && vallen) || (!buf && cap))
        return strata__error(STRATA_EINVAL, "strata_envelope_encode: NULL argument");
    *needed = 0;
    if (ttl_ms < 0 || stale_ms < 0)
        return strata__error(STRATA_EINVAL, "strata_envelope_encode: negative ttl or stale");
    if (negative && vallen)
        return strata__error(STRATA_EINVAL, "strata_envelope_encode: a negative entry has no payload");
    if (vallen > UINT32_MAX)
        return strata__error(STRATA_ETOOBIG, "strata_envelope_encode: payload over 4 GiB");
    memset(&env, 0, sizeof env);
    env.flags = negative ? STRATA__ENV_FLAG_NEGATIVE : 0;
    env.created_ms = now_ms;
    env.fresh_until_ms = now_ms + ttl_ms;
    env.stale_until_ms = env.fresh_until_ms + stale_ms;
    env.cost_ms = cost_ms;
    env.payload = val;
    env.payload_len = vallen;
    size = strata__env_size(&env);
    *needed = size;
    if (cap < size)
        return strata__error(STRATA_ETOOBIG, "strata_envelope_encode: %zu-byte buffer, %zu needed",
                             cap, size);
    if (strata__env_encode(&env, buf, cap) != size)
        return strata__error(STRATA_EINVAL, "strata_envelope_encode: not encodable");
    return STRATA_OK;
}
