/* strata_envelope_decode / _verdict / _encode: the public envelope functions
 * host-side tiers (resty.stratacache's shared dict) use. */
#include "test.h"

#include "policy/envelope.h"
#include "policy/freshness.h"
#include "platform/platform.h"

#include <string.h>

static const int64_t NOW = 1700000000000LL;

static void encode_decode_roundtrip(void)
{
    char buf[128];
    size_t need = 0;
    strata_envelope_info i;
    CHECK_RC(strata_envelope_encode("value", 5, 0, NOW, 1000, 500, 7, buf, sizeof buf, &need), STRATA_OK);
    CHECK(need == STRATA__ENV_HEADER + 5);
    CHECK_RC(strata_envelope_decode(buf, need, "k", 1, 0, &i), STRATA_OK);
    CHECK(i.negative == 0 && i.created_ms == NOW && i.fresh_until_ms == NOW + 1000);
    CHECK(i.stale_until_ms == NOW + 1500 && i.cost_ms == 7 && i.ntags == 0);
    CHECK(i.refresh_at_ms == i.fresh_until_ms); /* beta 0: no early refresh */
    CHECK(i.payload_len == 5 && memcmp(i.payload, "value", 5) == 0);
    CHECK_RC(strata_envelope_encode(NULL, 0, 1, NOW, 1000, 0, 0, buf, sizeof buf, &need), STRATA_OK);
    CHECK_RC(strata_envelope_decode(buf, need, "k", 1, 1, &i), STRATA_OK);
    CHECK(i.negative == 1 && i.payload_len == 0);
}

static void verdicts_follow_the_core(void)
{
    char buf[128];
    size_t need;
    strata_envelope_info i;
    CHECK_RC(strata_envelope_encode("v", 1, 0, NOW, 1000, 500, 0, buf, sizeof buf, &need), STRATA_OK);
    CHECK_RC(strata_envelope_decode(buf, need, "k", 1, 1, &i), STRATA_OK);
    CHECK_RC(strata_envelope_verdict(&i, NOW), STRATA_OK);
    CHECK_RC(strata_envelope_verdict(&i, NOW + 1000), STRATA_HIT_STALE);
    CHECK_RC(strata_envelope_verdict(&i, NOW + 1500), STRATA_MISS);
    CHECK_RC(strata_envelope_encode(NULL, 0, 1, NOW, 1000, 0, 0, buf, sizeof buf, &need), STRATA_OK);
    CHECK_RC(strata_envelope_decode(buf, need, "k", 1, 1, &i), STRATA_OK);
    CHECK_RC(strata_envelope_verdict(&i, NOW), STRATA_NEGATIVE);
    CHECK_RC(strata_envelope_verdict(&i, NOW + 1000), STRATA_MISS);
}

/* refresh_at_ms is exactly where strata__freshness starts saying EARLY_REFRESH */
static void refresh_at_matches_xfetch(void)
{
    char buf[128];
    size_t need;
    strata_envelope_info i;
    double u;
    CHECK_RC(strata_envelope_encode("v", 1, 0, NOW, 1000, 0, 200, buf, sizeof buf, &need), STRATA_OK);
    CHECK_RC(strata_envelope_decode(buf, need, "key", 3, 1.0, &i), STRATA_OK);
    CHECK(i.refresh_at_ms <= NOW + 800 && i.refresh_at_ms >= NOW);
    u = strata__xfetch_draw(strata__process_seed(), "key", 3, i.fresh_until_ms);
    CHECK(strata__freshness(i.refresh_at_ms - 1, i.fresh_until_ms, i.stale_until_ms, 200, 1.0, u) ==
          STRATA__FRESH || i.refresh_at_ms == NOW);
    CHECK(strata__freshness(i.refresh_at_ms, i.fresh_until_ms, i.stale_until_ms, 200, 1.0, u) ==
          STRATA__EARLY_REFRESH);
    CHECK_RC(strata_envelope_verdict(&i, i.refresh_at_ms), STRATA_HIT_REFRESH);
}

static void bad_input_is_refused_or_not_ours(void)
{
    char buf[128];
    size_t need = 99;
    strata_envelope_info i;
    CHECK_RC(strata_envelope_decode("hello", 5, "k", 1, 0, &i), STRATA_MISS);
    CHECK_RC(strata_envelope_decode(NULL, 0, "k", 1, 0, &i), STRATA_MISS);
    CHECK_RC(strata_envelope_decode("x", 1, "k", 1, 0, NULL), STRATA_EINVAL);
    CHECK_RC(strata_envelope_verdict(NULL, NOW), STRATA_EINVAL);
    CHECK_RC(strata_envelope_encode("v", 1, 1, NOW, 1, 0, 0, buf, sizeof buf, &need), STRATA_EINVAL);
    CHECK_MSG_HAS("negative entry has no payload");
    CHECK_RC(strata_envelope_encode("v", 1, 0, NOW, -1, 0, 0, buf, sizeof buf, &need), STRATA_EINVAL);
    CHECK_RC(strata_envelope_encode("v", 1, 0, NOW, 1, 0, 0, buf, 10, &need), STRATA_ETOOBIG);
    CHECK(need == STRATA__ENV_HEADER + 1); /* the size it needs, nothing written */
    CHECK_RC(strata_envelope_encode("v", 1, 0, NOW, 1, 0, 0, buf, sizeof buf, NULL), STRATA_EINVAL);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"encode_decode_roundtrip", encode_decode_roundtrip},
        {"verdicts_follow_the_core", verdicts_follow_the_core},
        {"refresh_at_matches_xfetch", refresh_at_matches_xfetch},
        {"bad_input_is_refused_or_not_ours", bad_input_is_refused_or_not_ours},
    };
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
