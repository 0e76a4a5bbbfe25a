/* Pure policy: envelope codec (with the vectors in tests/vectors), freshness, XFetch, jitter. */
#include "test.h"
#include "policy/crc32c.h"
#include "policy/envelope.h"
#include "policy/freshness.h"
#include "policy/hash.h"
#include "policy/sketch.h"
#include "policy/topk.h"

#include <math.h>

static void envelope_roundtrip(void)
{
    strata__envelope e, d;
    char buf[256];
    size_t n;
    memset(&e, 0, sizeof e);
    e.created_ms = 1700000000000;
    e.fresh_until_ms = 1700000060000;
    e.stale_until_ms = 1700000120000;
    e.cost_ms = 42;
    e.payload = "hello";
    e.payload_len = 5;
    e.ntags = 1;
    e.tags[0].name = "user:1";
    e.tags[0].len = 6;
    e.tags[0].version = 7;
    n = strata__env_encode(&e, buf, sizeof buf);
    CHECK(n == STRATA__ENV_HEADER + 2 + 6 + 8 + 5);
    CHECK(strata__env_decode(buf, n, &d) == 0);
    CHECK(d.created_ms == e.created_ms && d.fresh_until_ms == e.fresh_until_ms);
    CHECK(d.stale_until_ms == e.stale_until_ms && d.cost_ms == 42);
    CHECK(d.payload_len == 5 && memcmp(d.payload, "hello", 5) == 0);
    CHECK(d.ntags == 1 && d.tags[0].len == 6 && d.tags[0].version == 7);
    CHECK(strata__env_encode(&e, buf, n - 1) == 0); /* too small a buffer */
}

/* Decoding never crashes and never accepts a damaged envelope. */
static void envelope_rejects_corruption(void)
{
    strata__envelope e, d;
    char buf[128], bad[128];
    size_t n, i;
    int bit;
    memset(&e, 0, sizeof e);
    e.created_ms = 1;
    e.fresh_until_ms = 2;
    e.stale_until_ms = 3;
    e.payload = "abc";
    e.payload_len = 3;
    n = strata__env_encode(&e, buf, sizeof buf);
    REQUIRE(n > 0);
    for (i = 0; i < n; i++) /* every truncation */
        CHECK(strata__env_decode(buf, i, &d) == -1);
    for (i = 0; i < STRATA__ENV_HEADER; i++) {
        for (bit = 0; bit < 8; bit++) { /* every single-bit flip in the header */
            memcpy(bad, buf, n);
            bad[i] ^= (char)(1 << bit);
            CHECK(strata__env_decode(bad, n, &d) == -1);
        }
    }
    CHECK(strata__env_decode("plain text value from another client", 36, &d) == -1);
    CHECK(strata__env_decode(NULL, 0, &d) == -1);
    memcpy(bad, buf, n); /* trailing garbage */
    bad[n] = 'x';
    CHECK(strata__env_decode(bad, n + 1, &d) == -1);
}

static int hexval(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

/* tests/vectors/envelope.txt: "hex" lines that must decode to the fields given. */
static void envelope_vectors(void)
{
    FILE *f = fopen(STRATA_VECTORS "/envelope.txt", "r");
    char line[4096];
    int checked = 0;
    REQUIRE(f != NULL);
    while (fgets(line, sizeof line, f)) {
        char hex[2048], payload[512], tags[1024], *tag, *save = NULL;
        long long created, fresh, stale;
        unsigned cost, flags;
        unsigned char bytes[1024];
        char again[1024];
        size_t i, n, nt = 0;
        strata__envelope d;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        payload[0] = tags[0] = '\0';
        if (sscanf(line, "%2047s %u %lld %lld %lld %u %511s %1023s", hex, &flags, &created, &fresh, &stale,
                   &cost, payload, tags) < 6)
            continue;
        if (strcmp(payload, "-") == 0)
            payload[0] = '\0';
        n = strlen(hex) / 2;
        for (i = 0; i < n; i++)
            bytes[i] = (unsigned char)(hexval(hex[2 * i]) * 16 + hexval(hex[2 * i + 1]));
        CHECK(strata__env_decode((char *)bytes, n, &d) == 0);
        CHECK(d.flags == flags && d.created_ms == created && d.fresh_until_ms == fresh);
        CHECK(d.stale_until_ms == stale && d.cost_ms == cost);
        CHECK(d.payload_len == strlen(payload) && memcmp(d.payload, payload, d.payload_len) == 0);
        /* tags: name=version,... in order */
        for (tag = strtok_r(tags, ",", &save); tag; tag = strtok_r(NULL, ",", &save), nt++) {
            char *eq = strrchr(tag, '=');
            REQUIRE(eq != NULL && nt < d.ntags);
            CHECK(d.tags[nt].len == (size_t)(eq - tag) && memcmp(d.tags[nt].name, tag, d.tags[nt].len) == 0);
            CHECK(d.tags[nt].version == strtoull(eq + 1, NULL, 10));
        }
        CHECK(d.ntags == nt);
        /* and the C encoder writes the very same bytes */
        CHECK(strata__env_encode(&d, again, sizeof again) == n && memcmp(again, bytes, n) == 0);
        checked++;
    }
    fclose(f);
    CHECK(checked >= 8);
}

/* CRC32C: the standard check value, and the hardware and table versions agree
 * at every length and alignment. */
static void crc32c_values(void)
{
    char buf[300];
    size_t i, off;
    CHECK(strata__crc32c("123456789", 9) == 0xe3069283u);
    CHECK(strata__crc32c_sw("123456789", 9) == 0xe3069283u);
    CHECK(strata__crc32c("", 0) == 0);
    for (i = 0; i < sizeof buf; i++)
        buf[i] = (char)(i * 31 + 7);
    for (off = 0; off < 8; off++)
        for (i = 0; i + off <= sizeof buf; i += 13)
            CHECK(strata__crc32c(buf + off, i) == strata__crc32c_sw(buf + off, i));
}

/* Without payload_crc a flipped payload bit decodes (the checksum covers the
 * header only); with it the same flip is reported damaged, and a flip in the
 * stored CRC itself fails the header checksum (not ours). */
static void envelope_payload_crc(void)
{
    strata__envelope e, d;
    char buf[128];
    size_t n;
    int flags;
    for (flags = 0; flags <= STRATA__ENV_FLAG_PAYLOAD_CRC; flags += STRATA__ENV_FLAG_PAYLOAD_CRC) {
        memset(&e, 0, sizeof e);
        e.flags = (unsigned)flags;
        e.created_ms = 1000;
        e.fresh_until_ms = e.stale_until_ms = 2000;
        e.payload = "payload bytes";
        e.payload_len = 13;
        n = strata__env_encode(&e, buf, sizeof buf);
        REQUIRE(n == STRATA__ENV_HEADER + 13 + (flags ? 4 : 0));
        CHECK(strata__env_decode(buf, n, &d) == 0 && d.flags == (unsigned)flags && d.payload_len == 13);
        buf[n - 5] ^= 0x10;
        CHECK(strata__env_decode(buf, n, &d) == (flags ? STRATA__ENV_DAMAGED : 0));
        buf[n - 5] ^= 0x10;
        if (flags) {
            buf[STRATA__ENV_HEADER] ^= 1; /* the CRC field */
            CHECK(strata__env_decode(buf, n, &d) == -1);
        }
    }
}

static void freshness_verdicts(void)
{
    /* fresh until 1000, stale until 2000 */
    CHECK(strata__freshness(500, 1000, 2000, 0, 1.0, 0.5) == STRATA__FRESH);
    CHECK(strata__freshness(1000, 1000, 2000, 0, 1.0, 0.5) == STRATA__STALE);
    CHECK(strata__freshness(1999, 1000, 2000, 0, 1.0, 0.5) == STRATA__STALE);
    CHECK(strata__freshness(2000, 1000, 2000, 0, 1.0, 0.5) == STRATA__EXPIRED);
    CHECK(strata__freshness(500, 1000, 1000, 0, 1.0, 0.5) == STRATA__FRESH);
}

/* XFetch matches now - cost*beta*ln(u) >= fresh_until for fixed draws. */
static void xfetch_formula(void)
{
    double us[] = {1.0, 0.9, 0.5, 0.1, 0.01, 1e-9};
    int64_t nows[] = {0, 500, 900, 990, 999};
    size_t i, j;
    for (i = 0; i < sizeof us / sizeof us[0]; i++) {
        for (j = 0; j < sizeof nows / sizeof nows[0]; j++) {
            double gap = 100.0 * 2.0 * (1.0 - log(us[i]));
            int want = (double)nows[j] + gap >= 1000.0;
            strata__verdict v = strata__freshness(nows[j], 1000, 5000, 100, 2.0, us[i]);
            CHECK((v == STRATA__EARLY_REFRESH) == want);
            CHECK(v == STRATA__EARLY_REFRESH || v == STRATA__FRESH);
        }
    }
    /* beta 0 or unknown cost: never early */
    CHECK(strata__freshness(999, 1000, 5000, 100, 0.0, 1e-9) == STRATA__FRESH);
    CHECK(strata__freshness(999, 1000, 5000, 0, 1.0, 1e-9) == STRATA__FRESH);
}

/* The per-process, per-version draw: stable for its inputs, uniform across
 * seeds, and a new draw for every new version of the key. */
static void xfetch_draw_per_version(void)
{
    double sum = 0, u, lo = 1, hi = 0;
    int i, early = 0;
    CHECK(strata__xfetch_draw(42, "k", 1, 1000) == strata__xfetch_draw(42, "k", 1, 1000));
    CHECK(strata__xfetch_draw(42, "k", 1, 1000) != strata__xfetch_draw(43, "k", 1, 1000));
    CHECK(strata__xfetch_draw(42, "k", 1, 1000) != strata__xfetch_draw(42, "k", 1, 1001));
    CHECK(strata__xfetch_draw(42, "k", 1, 1000) != strata__xfetch_draw(42, "j", 1, 1000));
    for (i = 0; i < 20000; i++) {
        u = strata__xfetch_draw((uint64_t)i * 7919u, "hot", 3, 123456789);
        CHECK(u > 0 && u <= 1);
        sum += u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
        /* P(refresh with 200 ms left, cost 100 ms, beta 1) = 1/e per process */
        early += strata__freshness(800, 1000, 5000, 100, 1.0, u) == STRATA__EARLY_REFRESH;
        /* and always with one load time left */
        CHECK(strata__freshness(900, 1000, 5000, 100, 1.0, u) == STRATA__EARLY_REFRESH);
    }
    CHECK(fabs(sum / 20000 - 0.5) < 0.01);
    CHECK(lo < 0.001 && hi > 0.999);
    CHECK(fabs(early / 20000.0 - exp(-1.0)) < 0.02);
}

static void jitter_bounds(void)
{
    CHECK(strata__jitter_ttl(1000, 0, 0.7) == 1000);
    CHECK(strata__jitter_ttl(1000, 10, 1.0) == 900);
    CHECK(strata__jitter_ttl(1000, 10, 0.5) == 950);
    CHECK(strata__jitter_ttl(1, 50, 1.0) == 1);
    CHECK(strata__jitter_ttl(10, 100, 1.0) >= 1);
}


/* --- hot-key sketch and top-k --- */

static uint64_t hkey(unsigned int i)
{
    return strata__hash64(&i, sizeof i, 7);
}

static void sketch_rejects_bad_arguments(void)
{
    strata__sketch s;
    uint8_t mem[4 * 64];
    CHECK(strata__sketch_bytes(64) == 4 * 64);
    CHECK(strata__sketch_init(&s, mem, 64, 100) == 0);
    CHECK(strata__sketch_init(&s, mem, 63, 100) == -1);  /* not a power of two */
    CHECK(strata__sketch_init(&s, mem, 4, 100) == -1);   /* too narrow */
    CHECK(strata__sketch_init(&s, mem, 64, 0) == -1);    /* no window */
    CHECK(strata__sketch_init(&s, NULL, 64, 100) == -1);
    CHECK(strata__sketch_init(NULL, mem, 64, 100) == -1);
}

/* Never under the true count; one-hit keys mostly estimated at 1. */
static void sketch_bounds(void)
{
    static uint8_t mem[4 * 4096];
    static unsigned int truth[2000];
    strata__sketch s;
    unsigned int i, over = 0, est;
    REQUIRE(strata__sketch_init(&s, mem, 4096, 1u << 30) == 0);
    memset(truth, 0, sizeof truth);
    for (i = 0; i < 20000; i++) {
        unsigned int k = (i * 2654435761u) % 2000;
        k = k < 1000 ? k % 50 : k; /* 50 keys take half the reads */
        truth[k]++;
        strata__sketch_add(&s, hkey(k), NULL);
    }
    for (i = 0; i < 2000; i++) {
        est = strata__sketch_estimate(&s, hkey(i));
        CHECK(est >= (truth[i] < 255 ? truth[i] : 255));
        if (est > truth[i] + 1)
            over++;
    }
    CHECK(over < 20); /* under 1% noticeably over-estimated */
    CHECK(strata__sketch_estimate(&s, hkey(123456)) <= 1); /* never seen */
    for (i = 0; i < 1000; i++)
        strata__sketch_add(&s, hkey(5000), &est);
    CHECK(est == STRATA__SKETCH_MAX_COUNT); /* saturates, no wrap */
}

/* Every `window` additions all counts halve: a key hot long ago fades. */
static void sketch_halving_fades(void)
{
    static uint8_t mem[4 * 1024];
    strata__sketch s;
    unsigned int i, est, halvings = 0;
    REQUIRE(strata__sketch_init(&s, mem, 1024, 1000) == 0);
    for (i = 0; i < 100; i++)
        halvings += strata__sketch_add(&s, hkey(1), &est);
    CHECK(est == 100 && halvings == 0);
    for (i = 0; i < 900; i++) /* completes the window with other keys */
        halvings += strata__sketch_add(&s, hkey(10 + i % 300), NULL);
    CHECK(halvings == 1 && s.halvings == 1);
    CHECK(strata__sketch_estimate(&s, hkey(1)) == 50);
    for (i = 0; i < 5000; i++) /* five more windows without key 1 */
        strata__sketch_add(&s, hkey(10 + i % 300), NULL);
    CHECK(s.halvings >= 6);
    CHECK(strata__sketch_estimate(&s, hkey(1)) <= 2);
}

static void topk_ranks_and_replaces(void)
{
    strata__topk_entry ents[4];
    strata__topk t;
    char key[16], longkey[600];
    unsigned int i, r;
    strata__topk_init(&t, ents, 4);
    /* key r is read 100 / r times, r = 1..20, interleaved */
    for (i = 0; i < 100; i++) {
        for (r = 1; r <= 20; r++) {
            if (i % r == 0) {
                snprintf(key, sizeof key, "k%u", r);
                strata__topk_note(&t, hkey(r), key, strlen(key), i / r + 1);
            }
        }
    }
    CHECK(t.n == 4);
    for (r = 1; r <= 4; r++) {
        int found = 0;
        snprintf(key, sizeof key, "k%u", r);
        for (i = 0; i < t.n; i++)
            found |= t.e[i].keylen == strlen(key) && memcmp(t.e[i].key, key, t.e[i].keylen) == 0;
        CHECK(found);
    }
    strata__topk_halve(&t);
    for (i = 0; i < t.n; i++)
        CHECK(t.e[i].count <= 50);
    /* a long key is kept by its first STRATA__TOPK_KEY bytes, full length recorded */
    memset(longkey, 'x', sizeof longkey);
    strata__topk_note(&t, 99, longkey, sizeof longkey, 1000);
    for (i = 0, r = 0; i < t.n; i++)
        r |= t.e[i].keylen == sizeof longkey && t.e[i].count == 1000;
    CHECK(r);
    /* a cold key does not displace the tracked ones */
    strata__topk_note(&t, 12345, "cold", 4, 1);
    for (i = 0; i < t.n; i++)
        CHECK(t.e[i].hash != 12345);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"envelope_roundtrip", envelope_roundtrip},
        {"envelope_rejects_corruption", envelope_rejects_corruption},
        {"envelope_vectors", envelope_vectors},
        {"crc32c_values", crc32c_values},
        {"envelope_payload_crc", envelope_payload_crc},
        {"freshness_verdicts", freshness_verdicts},
        {"xfetch_formula", xfetch_formula},
        {"xfetch_draw_per_version", xfetch_draw_per_version},
        {"jitter_bounds", jitter_bounds},
        {"sketch_rejects_bad_arguments", sketch_rejects_bad_arguments},
        {"sketch_bounds", sketch_bounds},
        {"sketch_halving_fades", sketch_halving_fades},
        {"topk_ranks_and_replaces", topk_ranks_and_replaces},
    };
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
