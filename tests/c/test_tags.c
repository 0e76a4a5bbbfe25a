/*
 * Tags and versions through the public API, once per backend:
 *   test_tags memory | redis | memcached
 */
#include "test.h"
#include "engine/cache.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

static const char *backend_name;
static char ns[64];

#define K(s) (s), strlen(s)

/* A cache on the backend under test; memory:// caches share one named store. */
static strata_cache *open_cache(const char *query)
{
    strata_cache *c = NULL;
    char u[1024];
    const char *base = test_backend_url(backend_name);
    snprintf(u, sizeof u, "%s%sns=%s&timeout_ms=1000%s%s",
             strcmp(backend_name, "memory") == 0 ? "memory://tags" : base, strchr(base, '?') ? "&" : "?",
             ns, query ? "&" : "", query ? query : "");
    if (strata_cache_new(&c, u, NULL) != 0) {
        fprintf(stderr, "  cannot open %s: %s\n", u, strata_error_last());
        return NULL;
    }
    return c;
}

static int set_tagged(strata_cache *c, const char *key, const char *val, size_t ntags, const char *const *tags)
{
    strata_set_options o;
    size_t lens[STRATA__ENV_MAX_TAGS + 2], i;
    strata_set_options_init(&o, STRATA_SET_OPTIONS_VERSION);
    for (i = 0; i < ntags && i < sizeof lens / sizeof lens[0]; i++)
        lens[i] = tags[i] ? strlen(tags[i]) : 0;
    o.tags = tags;
    o.taglens = lens;
    o.ntags = ntags;
    return strata_set_ex(c, K(key), K(val), &o);
}

static int loads;

static int load_plain(void *ud, const char *key, size_t keylen, strata_load *l)
{
    (void)ud;
    loads++;
    return strata_load_value(l, key, keylen, 0);
}

static uint64_t stat(strata_cache *c, size_t offset)
{
    strata_stats s;
    uint64_t v;
    if (strata_stats_get(c, &s, STRATA_STATS_VERSION) != 0)
        return UINT64_MAX;
    memcpy(&v, (char *)&s + offset, sizeof v);
    return v;
}
#define STAT(c, f) stat((c), offsetof(strata_stats, f))

/* Every read path sees a bump: get, get_many, lookup, get_or_load. */
static void bump_reads_as_miss(const char *query)
{
    strata_cache *c = open_cache(query);
    strata_value v = STRATA_VALUE_INIT, outs[4];
    strata_ticket *t = NULL;
    char k[4][96], ta[64], tb[64];
    const char *keys[4], *both[2];
    size_t lens[4], i;
    int res[4];
    REQUIRE(c);
    snprintf(ta, sizeof ta, "%s", test_unique("tagA"));
    snprintf(tb, sizeof tb, "%s", test_unique("tagB"));
    both[0] = ta;
    both[1] = tb;
    for (i = 0; i < 4; i++) {
        snprintf(k[i], sizeof k[i], "%s", test_unique("k"));
        keys[i] = k[i];
        lens[i] = strlen(k[i]);
        memset(&outs[i], 0, sizeof outs[i]);
    }
    CHECK_RC(set_tagged(c, k[0], "a", 1, both), 0);     /* A */
    CHECK_RC(set_tagged(c, k[1], "ab", 2, both), 0);    /* A, B */
    CHECK_RC(set_tagged(c, k[2], "b", 1, both + 1), 0); /* B */
    CHECK_RC(strata_set(c, K(k[3]), K("none"), 0), 0);
    for (i = 0; i < 4; i++) {
        CHECK_RC(strata_get(c, K(k[i]), &v), STRATA_OK);
        CHECK_RC(strata_get(c, K(k[i]), &v), STRATA_OK); /* from L1 when it is on */
    }
    CHECK_VALUE(&v, "none");
    if (strstr(query, "l1=1")) {
        CHECK_RC(strata_get(c, K(k[1]), &v), STRATA_OK);
        CHECK(v.level == STRATA_LEVEL_L1);
        CHECK_VALUE(&v, "ab"); /* the envelope kept in L1 is not what the caller sees */
    }

    CHECK_RC(strata_invalidate_tag(c, K(ta)), 0);

    CHECK_RC(strata_get(c, K(k[0]), &v), STRATA_MISS);
    CHECK_RC(strata_get(c, K(k[1]), &v), STRATA_MISS);
    CHECK_RC(strata_get(c, K(k[2]), &v), STRATA_OK); /* other tags unaffected */
    CHECK_VALUE(&v, "b");
    CHECK_RC(strata_get(c, K(k[3]), &v), STRATA_OK);
    CHECK_RC(strata_get_many(c, 4, keys, lens, outs, res), 0);
    CHECK(res[0] == STRATA_MISS && res[1] == STRATA_MISS && res[2] == STRATA_OK && res[3] == STRATA_OK);
    CHECK_RC(strata_lookup(c, K(k[0]), &v, &t), STRATA_MISS_LEAD);
    if (t)
        strata_abandon(t);
    loads = 0;
    CHECK_RC(strata_get_or_load(c, K(k[1]), load_plain, NULL, &v), STRATA_OK);
    CHECK(loads == 1 && v.level == STRATA_LEVEL_LOADED);
    CHECK_RC(strata_get_or_load(c, K(k[2]), load_plain, NULL, &v), STRATA_OK);
    CHECK(loads == 1); /* still stamped with B's current version */
    CHECK(STAT(c, tag_invalidations) == 1);
    CHECK(STAT(c, tag_stale) >= 5);

    /* A second bump of B now hits k[2], and the reloaded k[1] is untagged. */
    CHECK_RC(strata_invalidate_tag(c, K(tb)), 0);
    CHECK_RC(strata_get(c, K(k[2]), &v), STRATA_MISS);
    CHECK_RC(strata_get(c, K(k[1]), &v), STRATA_OK);
    for (i = 0; i < 4; i++)
        strata_value_dispose(&outs[i]);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void bump_l1_off(void) { bump_reads_as_miss("l1=0"); }
static void bump_l1_on(void) { bump_reads_as_miss("l1=1"); }
static void bump_l1_on_no_version_cache(void) { bump_reads_as_miss("l1=1&tag_cache_ms=0"); }

/* get_many checks every entry's stamps in one round trip. */
static void get_many_one_round_trip(void)
{
    strata_cache *c = open_cache("tag_cache_ms=0");
    const char *tags[3];
    char names[3][64], k[10][96];
    const char *keys[10];
    size_t lens[10], i;
    strata_value outs[10];
    int res[10];
    uint64_t before;
    REQUIRE(c);
    for (i = 0; i < 3; i++) {
        snprintf(names[i], sizeof names[i], "%s", test_unique("many"));
        tags[i] = names[i];
    }
    for (i = 0; i < 10; i++) {
        snprintf(k[i], sizeof k[i], "%s", test_unique("mk"));
        keys[i] = k[i];
        lens[i] = strlen(k[i]);
        memset(&outs[i], 0, sizeof outs[i]);
        CHECK_RC(set_tagged(c, k[i], "v", 1 + i % 3, tags), 0);
    }
    before = STAT(c, tag_fetches);
    CHECK_RC(strata_get_many(c, 10, keys, lens, outs, res), 0);
    CHECK(STAT(c, tag_fetches) == before + 1);
    for (i = 0; i < 10; i++)
        CHECK(res[i] == STRATA_OK);
    CHECK_RC(strata_invalidate_tag(c, K(names[2])), 0); /* on keys with 3 tags: i % 3 == 2 */
    CHECK_RC(strata_get_many(c, 10, keys, lens, outs, res), 0);
    for (i = 0; i < 10; i++)
        CHECK(res[i] == (i % 3 == 2 ? STRATA_MISS : STRATA_OK));
    for (i = 0; i < 10; i++)
        strata_value_dispose(&outs[i]);
    strata_cache_free(c);
}

/* A batch whose entries carry many distinct tags (200, none cached). */
static void get_many_distinct_tags(void)
{
    strata_cache *c = open_cache("tag_cache_ms=0");
    static char names[50][4][48], keys_mem[50][96];
    const char *keys[50], *tags[4];
    size_t lens[50], i, j;
    strata_value outs[50];
    int res[50];
    uint64_t before;
    REQUIRE(c);
    for (i = 0; i < 50; i++) {
        for (j = 0; j < 4; j++) {
            snprintf(names[i][j], sizeof names[i][j], "%s", test_unique("d"));
            tags[j] = names[i][j];
        }
        snprintf(keys_mem[i], sizeof keys_mem[i], "%s", test_unique("dk"));
        keys[i] = keys_mem[i];
        lens[i] = strlen(keys_mem[i]);
        memset(&outs[i], 0, sizeof outs[i]);
        CHECK_RC(set_tagged(c, keys_mem[i], "v", 4, tags), 0);
    }
    CHECK_RC(strata_invalidate_tag(c, K(names[17][2])), 0);
    before = STAT(c, tag_fetches);
    CHECK_RC(strata_get_many(c, 50, keys, lens, outs, res), 0);
    CHECK(STAT(c, tag_fetches) == before + 1);
    for (i = 0; i < 50; i++)
        CHECK(res[i] == (i == 17 ? STRATA_MISS : STRATA_OK));
    for (i = 0; i < 50; i++)
        strata_value_dispose(&outs[i]);
    strata_cache_free(c);
}

/* Another process's bump: seen at once without a version cache, and within
 * tag_cache_ms with one (polled with a bound; no timing asserted). */
static void second_instance_sees_bump(void)
{
    strata_cache *a = open_cache(NULL), *strict = open_cache("tag_cache_ms=0&l1=1"),
                 *cached = open_cache("tag_cache_ms=150&l1=1"), *slow = open_cache("tag_cache_ms=600000");
    strata_value v = STRATA_VALUE_INIT;
    char key[96], tag[64];
    const char *tags[1];
    int64_t deadline;
    int rc = STRATA_OK;
    REQUIRE(a && strict && cached && slow);
    snprintf(key, sizeof key, "%s", test_unique("k"));
    snprintf(tag, sizeof tag, "%s", test_unique("shared"));
    tags[0] = tag;
    CHECK_RC(set_tagged(a, key, "old", 1, tags), 0);
    CHECK_RC(strata_get(strict, K(key), &v), STRATA_OK);
    CHECK_RC(strata_get(cached, K(key), &v), STRATA_OK);
    CHECK_RC(strata_get(cached, K(key), &v), STRATA_OK);
    CHECK(v.level == STRATA_LEVEL_L1);
    CHECK_RC(strata_get(slow, K(key), &v), STRATA_OK);
    CHECK_RC(strata_invalidate_tag(a, K(tag)), 0);
    /* The documented window: a version cached 10 minutes is not asked again yet. */
    CHECK_RC(strata_get(slow, K(key), &v), STRATA_OK);
    CHECK_RC(strata_get(strict, K(key), &v), STRATA_MISS); /* L1 hit checked against the backend */
    deadline = strata__now_mono_ms() + 5000;
    while (strata__now_mono_ms() < deadline && (rc = strata_get(cached, K(key), &v)) == STRATA_OK)
        strata__sleep_ms(10);
    CHECK_RC(rc, STRATA_MISS);
    strata_value_dispose(&v);
    strata_cache_free(a);
    strata_cache_free(strict);
    strata_cache_free(cached);
    strata_cache_free(slow);
}

static int counter_key(strata_cache *c, const char *tag, char *buf)
{
    return snprintf(buf, 400, "%s#T:%s", c->cfg.ns, tag);
}

static int64_t counter_value(strata_cache *c, const char *tag)
{
    char key[400];
    strata__bytes raw = {0, 0, 0};
    int64_t v = -1;
    int n = counter_key(c, tag, key);
    if (c->backend->ops->get(c->backend, key, (size_t)n, &raw) == 0 && raw.len < 30) {
        char text[32];
        memcpy(text, raw.data, raw.len);
        text[raw.len] = '\0';
        v = strtoll(text, NULL, 10);
    }
    strata__bytes_free(&raw);
    return v;
}

/* A counter that disappears (eviction, flush) never makes an old stamp valid:
 * it comes back at a fresh, larger version. */
static void counter_missing_or_evicted(void)
{
    strata_cache *c = open_cache("tag_cache_ms=0");
    strata_value v = STRATA_VALUE_INIT;
    char key[96], key2[96], tag[64], ck[400];
    const char *tags[1];
    int64_t v1, v2;
    int n;
    REQUIRE(c);
    snprintf(key, sizeof key, "%s", test_unique("k"));
    snprintf(key2, sizeof key2, "%s", test_unique("k"));
    snprintf(tag, sizeof tag, "%s", test_unique("evict"));
    tags[0] = tag;
    n = counter_key(c, tag, ck);

    /* A write creates the counter at a clock-derived version. */
    CHECK(counter_value(c, tag) == -1);
    CHECK_RC(set_tagged(c, key, "v", 1, tags), 0);
    v1 = counter_value(c, tag);
    CHECK(v1 > ((int64_t)(strata__now_wall_ms() - 60000) << 20));
    CHECK_RC(strata_get(c, K(key), &v), STRATA_OK);

    /* Evicted: the stamp no longer matches anything, the read is a miss. */
    CHECK(c->backend->ops->del(c->backend, ck, (size_t)n) == 0);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_MISS);
    v2 = counter_value(c, tag);
    CHECK(v2 > 0 && v2 != v1);

    /* A bump of a missing counter: the entry written before stays invalid. */
    CHECK_RC(set_tagged(c, key2, "w", 1, tags), 0);
    CHECK_RC(strata_get(c, K(key2), &v), STRATA_OK);
    CHECK(c->backend->ops->del(c->backend, ck, (size_t)n) == 0);
    CHECK_RC(strata_invalidate_tag(c, K(tag)), 0);
    CHECK_RC(strata_get(c, K(key2), &v), STRATA_MISS);
    CHECK(counter_value(c, tag) > 0);

    /* Many bumps after re-creation do not walk back onto an old stamp. */
    {
        int i;
        CHECK_RC(set_tagged(c, key2, "w2", 1, tags), 0);
        CHECK(c->backend->ops->del(c->backend, ck, (size_t)n) == 0);
        for (i = 0; i < 50; i++)
            CHECK_RC(strata_invalidate_tag(c, K(tag)), 0);
        CHECK_RC(strata_get(c, K(key2), &v), STRATA_MISS);
    }

    /* The backend op: created at init once, then read (delta 0) and bumped. */
    {
        int64_t a = 0, b = 0, d = 0;
        CHECK(c->backend->ops->del(c->backend, ck, (size_t)n) == 0);
        CHECK(c->backend->ops->counter(c->backend, ck, (size_t)n, 5000000000000ll, 0, &a) == 0);
        CHECK(c->backend->ops->counter(c->backend, ck, (size_t)n, 7, 0, &b) == 0);
        CHECK(c->backend->ops->counter(c->backend, ck, (size_t)n, 7, 1, &d) == 0);
        CHECK(a == 5000000000000ll && b == a && d == a + 1);
        CHECK(counter_value(c, tag) == d);
    }

    /* Foreign bytes in a counter key are an error, not a guess. */
    CHECK(c->backend->ops->set(c->backend, ck, (size_t)n, K("not a number"), 60000) == 0);
    CHECK_RC(strata_get(c, K(key2), &v), STRATA_EBACKEND);
    CHECK_MSG_HAS("non-numeric");
    CHECK(c->backend->ops->del(c->backend, ck, (size_t)n) == 0);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

/* Counter keys live apart from values and leases of the same name. */
static void counter_keys_do_not_collide(void)
{
    strata_cache *c = open_cache(NULL);
    strata_value v = STRATA_VALUE_INIT;
    char name[96];
    const char *tags[1];
    REQUIRE(c);
    snprintf(name, sizeof name, "%s", test_unique("same"));
    tags[0] = name;
    CHECK_RC(strata_set(c, K(name), K("plain"), 0), 0);
    CHECK_RC(strata_invalidate_tag(c, K(name)), 0);
    CHECK_RC(strata_get(c, K(name), &v), STRATA_OK);
    CHECK_VALUE(&v, "plain");
    CHECK_RC(set_tagged(c, name, "tagged by its own name", 1, tags), 0);
    CHECK_RC(strata_get(c, K(name), &v), STRATA_OK);
    CHECK_RC(strata_invalidate_tag(c, K(name)), 0);
    CHECK_RC(strata_get(c, K(name), &v), STRATA_MISS);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

/* Tags with bytes memcached cannot take in a key, and the longest tags. */
static void unsafe_and_long_tags(void)
{
    strata_cache *c = open_cache("l1=1");
    strata_value v = STRATA_VALUE_INIT;
    char key[96], spaced[80], longest[257], *tags16[16];
    const char *tags[2];
    size_t lens[16], i;
    strata_set_options o;
    REQUIRE(c);
    snprintf(key, sizeof key, "%s", test_unique("k"));
    snprintf(spaced, sizeof spaced, "a tag\nwith\tspaces %s", test_unique(""));
    memset(longest, 'L', 256);
    longest[256] = '\0';
    memcpy(longest, test_unique("x"), 10);
    tags[0] = spaced;
    tags[1] = longest;
    CHECK_RC(set_tagged(c, key, "v", 2, tags), 0);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_OK);
    CHECK_RC(strata_invalidate_tag(c, K(spaced)), 0);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_MISS);
    CHECK_RC(set_tagged(c, key, "v2", 2, tags), 0);
    CHECK_RC(strata_invalidate_tag(c, longest, 256), 0);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_MISS);

    /* 16 tags of 256 bytes: the most an entry carries. */
    for (i = 0; i < 16; i++) {
        tags16[i] = malloc(257);
        memset(tags16[i], 'a' + (int)i, 256);
        memcpy(tags16[i], test_unique("t"), 10);
        lens[i] = 256;
    }
    strata_set_options_init(&o, STRATA_SET_OPTIONS_VERSION);
    o.tags = (const char *const *)tags16;
    o.taglens = lens;
    o.ntags = 16;
    CHECK_RC(strata_set_ex(c, K(key), K("sixteen"), &o), 0);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_OK);
    CHECK_VALUE(&v, "sixteen");
    CHECK_RC(strata_invalidate_tag(c, tags16[15], 256), 0);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_MISS);
    for (i = 0; i < 16; i++)
        free(tags16[i]);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void bad_input(void)
{
    strata_cache *c = open_cache(NULL);
    strata_value v = STRATA_VALUE_INIT;
    strata_set_options o;
    strata_ticket *t = NULL;
    char key[96], big[300];
    const char *one[1] = {"t"}, *nul[1] = {NULL}, *many[17];
    size_t lens[17], i, zero = 0, len1 = 1, len257 = 257;
    REQUIRE(c);
    snprintf(key, sizeof key, "%s", test_unique("k"));
    memset(big, 'b', sizeof big);
    for (i = 0; i < 17; i++) {
        many[i] = "m";
        lens[i] = 1;
    }
    strata_set_options_init(&o, STRATA_SET_OPTIONS_VERSION);
    o.ntags = 1;
    o.tags = NULL;
    o.taglens = &len1;
    CHECK_RC(strata_set_ex(c, K(key), K("v"), &o), STRATA_EINVAL);
    CHECK_MSG_HAS("tags is NULL");
    o.tags = one;
    o.taglens = NULL;
    CHECK_RC(strata_set_ex(c, K(key), K("v"), &o), STRATA_EINVAL);
    CHECK_MSG_HAS("taglens is NULL");
    o.tags = nul;
    o.taglens = &len1;
    CHECK_RC(strata_set_ex(c, K(key), K("v"), &o), STRATA_EINVAL);
    CHECK_MSG_HAS("tag 0 is NULL");
    o.tags = one;
    o.taglens = &zero;
    CHECK_RC(strata_set_ex(c, K(key), K("v"), &o), STRATA_EKEY);
    CHECK_MSG_HAS("tag 0 is empty");
    o.tags = (const char *const *)&(const char *){big};
    o.taglens = &len257;
    CHECK_RC(strata_set_ex(c, K(key), K("v"), &o), STRATA_EKEY);
    CHECK_MSG_HAS("257 bytes");
    o.tags = many;
    o.taglens = lens;
    o.ntags = 17;
    CHECK_RC(strata_set_ex(c, K(key), K("v"), &o), STRATA_EINVAL);
    CHECK_MSG_HAS("at most 16");
    o.ntags = 1;
    CHECK_RC(strata_set_ex(c, "", 0, K("v"), &o), STRATA_EKEY); /* the key is still checked */
    o.tags = one;
    o.taglens = &len1;
    CHECK_RC(strata_set_ex(c, K(key), NULL, 3, &o), STRATA_EINVAL);
    o.ttl_ms = -5;
    CHECK_RC(strata_set_ex(c, K(key), K("v"), &o), STRATA_EINVAL);
    o.ttl_ms = 0;
    CHECK(c->cfg.opts.ns && STAT(c, tag_fetches) == 0); /* refused before any version was read */
    CHECK_RC(strata_get(c, K(key), &v), STRATA_MISS); /* nothing was written */

    CHECK_RC(strata_invalidate_tag(NULL, K("t")), STRATA_EINVAL);
    CHECK_RC(strata_invalidate_tag(c, NULL, 1), STRATA_EINVAL);
    CHECK_RC(strata_invalidate_tag(c, "", 0), STRATA_EKEY);
    CHECK_RC(strata_invalidate_tag(c, big, 257), STRATA_EKEY);
    CHECK_RC(strata_load_tags(NULL, one, &len1, 1), STRATA_EINVAL);
    CHECK_RC(strata_ticket_tags(NULL, one, &len1, 1), STRATA_EINVAL);
    CHECK_RC(strata_lookup(c, K(key), &v, &t), STRATA_MISS_LEAD);
    REQUIRE(t);
    CHECK_RC(strata_ticket_tags(t, many, lens, 17), STRATA_EINVAL);
    CHECK_RC(strata_ticket_tags(t, one, &zero, 1), STRATA_EKEY);
    CHECK_RC(strata_fill(t, K("filled"), 0), 0); /* the ticket is still good */
    CHECK_RC(strata_get(c, K(key), &v), STRATA_OK);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static const char *loader_tag;
static strata_cache *bump_during_load; /* when set, the loader bumps after stamping */

static int load_tagged(void *ud, const char *key, size_t keylen, strata_load *l)
{
    size_t len = strlen(loader_tag);
    int rc;
    (void)ud;
    loads++;
    if ((rc = strata_load_tags(l, &loader_tag, &len, 1)) != 0)
        return rc;
    if (bump_during_load) /* a writer changes the source while we read it */
        strata_invalidate_tag(bump_during_load, loader_tag, len);
    return strata_load_value(l, key, keylen, 0);
}

/* Loaders stamp their fills; versions are taken before the source is read. */
static void loader_fills_carry_tags(void)
{
    strata_cache *c = open_cache("l1=1");
    strata_value v = STRATA_VALUE_INIT;
    strata_ticket *t = NULL;
    char key[96], key2[96], tag[64];
    const char *tags[1];
    size_t len;
    REQUIRE(c);
    snprintf(key, sizeof key, "%s", test_unique("k"));
    snprintf(key2, sizeof key2, "%s", test_unique("k"));
    snprintf(tag, sizeof tag, "%s", test_unique("loaded"));
    loader_tag = tag;
    tags[0] = tag;
    len = strlen(tag);
    loads = 0;
    CHECK_RC(strata_get_or_load(c, K(key), load_tagged, NULL, &v), STRATA_OK);
    CHECK_RC(strata_get_or_load(c, K(key), load_tagged, NULL, &v), STRATA_OK);
    CHECK(loads == 1);
    CHECK_RC(strata_invalidate_tag(c, K(tag)), 0);
    CHECK_RC(strata_get_or_load(c, K(key), load_tagged, NULL, &v), STRATA_OK);
    CHECK(loads == 2);

    /* A bump while the loader runs: its fill carries the older version. */
    bump_during_load = c;
    CHECK_RC(strata_invalidate_tag(c, K(tag)), 0);
    CHECK_RC(strata_get_or_load(c, K(key), load_tagged, NULL, &v), STRATA_OK);
    bump_during_load = NULL;
    CHECK(loads == 3);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_MISS);

    /* Two-phase: tags on the ticket, then fill (also a negative fill). */
    CHECK_RC(strata_lookup(c, K(key2), &v, &t), STRATA_MISS_LEAD);
    REQUIRE(t);
    CHECK_RC(strata_ticket_tags(t, tags, &len, 1), 0);
    CHECK_RC(strata_fill_negative(t, 0), 0);
    CHECK_RC(strata_get(c, K(key2), &v), STRATA_NEGATIVE);
    CHECK_RC(strata_get(c, K(key2), &v), STRATA_NEGATIVE);
    CHECK_RC(strata_invalidate_tag(c, K(tag)), 0);
    CHECK_RC(strata_get(c, K(key2), &v), STRATA_MISS);
    CHECK_RC(strata_lookup(c, K(key2), &v, &t), STRATA_MISS_LEAD);
    REQUIRE(t);
    CHECK_RC(strata_ticket_tags(t, tags, &len, 1), 0);
    CHECK_RC(strata_fill(t, K("two-phase"), 0), 0);
    CHECK_RC(strata_get(c, K(key2), &v), STRATA_OK);
    CHECK_RC(strata_invalidate_tag(c, K(tag)), 0);
    CHECK_RC(strata_get(c, K(key2), &v), STRATA_MISS);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

/* An entry stamped with a version newer than the one this cache holds is
 * current: the cache refetches that version instead of reloading the entry
 * with its older one (which another cache would then reload in turn). */
static void newer_stamp_is_not_reloaded(void)
{
    strata_cache *a = open_cache("l1=0&tag_cache_ms=600000"), *b = open_cache("l1=0&tag_cache_ms=600000");
    strata_value v = STRATA_VALUE_INIT;
    char key[96], tag[64];
    REQUIRE(a && b);
    snprintf(key, sizeof key, "%s", test_unique("k"));
    snprintf(tag, sizeof tag, "%s", test_unique("pingpong"));
    loader_tag = tag;
    loads = 0;
    CHECK_RC(strata_get_or_load(a, K(key), load_tagged, NULL, &v), STRATA_OK); /* a caches the version */
    CHECK_RC(strata_invalidate_tag(b, K(tag)), 0);
    CHECK_RC(strata_get_or_load(b, K(key), load_tagged, NULL, &v), STRATA_OK); /* stamped with the bump */
    CHECK(loads == 2);
    CHECK_RC(strata_get_or_load(a, K(key), load_tagged, NULL, &v), STRATA_OK);
    CHECK_RC(strata_get_or_load(b, K(key), load_tagged, NULL, &v), STRATA_OK);
    CHECK(loads == 2);
    /* and still a bump from a is seen by a at once */
    CHECK_RC(strata_invalidate_tag(a, K(tag)), 0);
    CHECK_RC(strata_get(a, K(key), &v), STRATA_MISS);

    /* The same for the namespace generation (a clear from b). */
    CHECK_RC(strata_get_or_load(a, K(key), load_tagged, NULL, &v), STRATA_OK);
    loads = 0;
    CHECK_RC(strata_clear(b), 0);
    CHECK_RC(strata_get_or_load(b, K(key), load_tagged, NULL, &v), STRATA_OK);
    CHECK_RC(strata_get_or_load(a, K(key), load_tagged, NULL, &v), STRATA_OK);
    CHECK_RC(strata_get_or_load(b, K(key), load_tagged, NULL, &v), STRATA_OK);
    CHECK(loads == 1);
    strata_value_dispose(&v);
    strata_cache_free(a);
    strata_cache_free(b);
}

static int load_many_tagged(void *ud, size_t n, const char *const *keys, const size_t *keylens,
                            strata_load *const *l)
{
    size_t i, len = strlen(loader_tag);
    (void)ud;
    loads++;
    for (i = 0; i < n; i++) {
        int rc = strata_load_tags(l[i], &loader_tag, &len, 1);
        if (rc == 0)
            rc = strata_load_value(l[i], keys[i], keylens[i], 0);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Batch loads stamp each fill too. */
static void batch_loader_fills_carry_tags(void)
{
    strata_cache *c = open_cache("l1=1");
    char k[3][96], tag[64];
    const char *keys[3];
    size_t lens[3], i;
    strata_value outs[3];
    int res[3];
    REQUIRE(c);
    snprintf(tag, sizeof tag, "%s", test_unique("batch"));
    loader_tag = tag;
    for (i = 0; i < 3; i++) {
        snprintf(k[i], sizeof k[i], "%s", test_unique("bk"));
        keys[i] = k[i];
        lens[i] = strlen(k[i]);
        memset(&outs[i], 0, sizeof outs[i]);
    }
    loads = 0;
    CHECK_RC(strata_get_many_or_load(c, 3, keys, lens, load_many_tagged, NULL, outs, res), 0);
    CHECK_RC(strata_get_many_or_load(c, 3, keys, lens, load_many_tagged, NULL, outs, res), 0);
    CHECK(loads == 1);
    CHECK_RC(strata_invalidate_tag(c, K(tag)), 0);
    CHECK_RC(strata_get_many(c, 3, keys, lens, outs, res), 0);
    CHECK(res[0] == STRATA_MISS && res[1] == STRATA_MISS && res[2] == STRATA_MISS);
    CHECK_RC(strata_get_many_or_load(c, 3, keys, lens, load_many_tagged, NULL, outs, res), 0);
    CHECK(loads == 2 && res[0] == STRATA_OK);
    for (i = 0; i < 3; i++)
        strata_value_dispose(&outs[i]);
    strata_cache_free(c);
}

/* With stale serving allowed, a bumped entry is stale (never fresh), and
 * get_or_load refreshes it; touch neither revives it nor drops its stamps. */
static void stale_policy_and_touch(void)
{
    strata_cache *c = open_cache("stale_ms=60000");
    strata_value v = STRATA_VALUE_INIT;
    char key[96], key2[96], tag[64];
    const char *tags[1];
    REQUIRE(c);
    snprintf(key, sizeof key, "%s", test_unique("k"));
    snprintf(key2, sizeof key2, "%s", test_unique("k"));
    snprintf(tag, sizeof tag, "%s", test_unique("stale"));
    tags[0] = tag;
    CHECK_RC(set_tagged(c, key, "old", 1, tags), 0);
    CHECK_RC(strata_invalidate_tag(c, K(tag)), 0);
    CHECK_RC(strata_get(c, K(key), &v), STRATA_HIT_STALE);
    CHECK(v.stale == 1 && v.level == STRATA_LEVEL_STALE);
    CHECK_VALUE(&v, "old");
    loads = 0;
    CHECK_RC(strata_get_or_load(c, K(key), load_plain, NULL, &v), STRATA_OK);
    CHECK(loads == 1 && v.level == STRATA_LEVEL_LOADED);

    CHECK_RC(set_tagged(c, key2, "t", 1, tags), 0);
    CHECK_RC(strata_touch(c, K(key2), 120000), 0);
    CHECK_RC(strata_invalidate_tag(c, K(tag)), 0);
    CHECK_RC(strata_get(c, K(key2), &v), STRATA_HIT_STALE);
    CHECK_RC(strata_touch(c, K(key2), 120000), STRATA_MISS);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

typedef struct stress_arg {
    strata_cache *c;
    const char *tag;
    int id, errors;
} stress_arg;

static void *stress_thread(void *p)
{
    stress_arg *a = p;
    strata_value v = STRATA_VALUE_INIT;
    const char *tags[1];
    char key[64];
    int i, rc;
    tags[0] = a->tag;
    for (i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "stress-%d", i % 20);
        switch (i % 4) {
        case 0: rc = set_tagged(a->c, key, "v", 1, tags); break;
        case 1: rc = strata_get(a->c, K(key), &v); break;
        case 2: rc = strata_invalidate_tag(a->c, K(a->tag)); break;
        default: rc = strata_get_or_load(a->c, K(key), load_plain, NULL, &v); break;
        }
        a->errors += rc < 0;
    }
    strata_value_dispose(&v);
    return NULL;
}

/* Threads writing, reading and bumping one tag: no errors, and after the last
 * bump no stamped entry is served, from L1 or the backend. */
static void threads_write_read_bump(void)
{
    strata_cache *c = open_cache("l1=1&tag_cache_ms=60000");
    strata_value v = STRATA_VALUE_INIT;
    pthread_t th[4];
    stress_arg args[4];
    char tag[64], key[64];
    int i, served = 0;
    REQUIRE(c);
    snprintf(tag, sizeof tag, "%s", test_unique("stress"));
    for (i = 0; i < 4; i++) {
        args[i].c = c;
        args[i].tag = tag;
        args[i].id = i;
        args[i].errors = 0;
        pthread_create(&th[i], NULL, stress_thread, &args[i]);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].errors == 0);
    }
    CHECK_RC(strata_invalidate_tag(c, K(tag)), 0);
    for (i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "stress-%d", i);
        /* get_or_load fills are untagged here; only tagged ones must be gone */
        if (strata_get(c, K(key), &v) == STRATA_OK && strcmp(v.data, "v") == 0)
            served++;
    }
    CHECK(served == 0);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

/* tag_cache_ms from the URL and the struct; bad values are refused. */
static void option_tag_cache_ms(void)
{
    strata_cache *c = NULL;
    strata_options o;
    strata_options_init(&o, STRATA_OPTIONS_VERSION);
    CHECK(o.tag_cache_ms == 1000);
    o.tag_cache_ms = -1;
    CHECK_RC(strata_cache_new(&c, "memory://", &o), STRATA_EOPTION);
    CHECK_MSG_HAS("tag_cache_ms");
    CHECK_RC(strata_cache_new(&c, "memory://?tag_cache_ms=abc", NULL), STRATA_EOPTION);
    CHECK_RC(strata_cache_new(&c, "memory://?tag_cache_ms=250", NULL), 0);
    REQUIRE(c);
    CHECK(c->cfg.opts.tag_cache_ms == 250);
    strata_cache_free(c);

    /* A version 1 struct (no tag_cache_ms) is read up to its end only. */
    {
        unsigned char *v1 = malloc(offsetof(strata_options, tag_cache_ms)); /* ASan sees overreads */
        unsigned int version = 0;
        int64_t ttl = 1234;
        REQUIRE(v1);
        CHECK_RC(strata_options_init((strata_options *)(void *)v1, 1), 0);
        memcpy(&version, v1 + offsetof(strata_options, version), sizeof version);
        CHECK(version == 1);
        memcpy(v1 + offsetof(strata_options, ttl_ms), &ttl, sizeof ttl);
        CHECK_RC(strata_cache_new(&c, "memory://", (strata_options *)(void *)v1), 0);
        free(v1);
        REQUIRE(c);
        CHECK(c->cfg.opts.ttl_ms == 1234 && c->cfg.opts.tag_cache_ms == 1000);
        strata_cache_free(c);
    }
}

/* A tag counter at or past the largest version (issue 11 #13): the bump is
 * an error on every backend, never an "OK" that leaves old entries fresh. */
static void counter_overflow_is_an_error(void)
{
    static const char *const planted[] = {"9223372036854775807", "9223372036854775808",
                                          "18446744073709551615"};
    const char *tags[1] = {"ovf"};
    char key[128];
    size_t klen, i;
    strata_cache *c;
    REQUIRE((c = open_cache("tag_cache_ms=0")) != NULL);
    klen = (size_t)snprintf(key, sizeof key, "%s#T:ovf", ns);
    for (i = 0; i < sizeof planted / sizeof planted[0]; i++) {
        int rc;
        REQUIRE(c->backend->ops->set(c->backend, key, klen, planted[i], strlen(planted[i]), 60000) == 0);
        rc = strata_invalidate_tag(c, K("ovf"));
        CHECK(rc < 0);
        if (rc >= 0)
            fprintf(stderr, "  counter %s: invalidate_tag returned %s\n", planted[i], strata_error_name(rc));
        else if (!(strstr(strata_error_last(), "ovf") != NULL || strstr(strata_error_last(), "#T:") != NULL ||
                   strstr(strata_error_last(), "overflow") != NULL || strstr(strata_error_last(), "range") != NULL ||
                   /* memcached itself may refuse a 20-digit value as non-numeric */
                   strstr(strata_error_last(), "non-numeric") != NULL)) {
            fprintf(stderr, "  counter %s: %s \"%s\" names neither the counter nor the overflow\n", planted[i],
                    strata_error_name(rc), strata_error_last());
            CHECK(!"the error names the counter or the overflow");
        }
    }
    /* a sane counter works again afterwards */
    REQUIRE(c->backend->ops->set(c->backend, key, klen, "1000", 4, 60000) == 0);
    CHECK_RC(set_tagged(c, "ovk", "v", 1, tags), 0);
    CHECK_RC(strata_invalidate_tag(c, K("ovf")), 0);
    strata_cache_free(c);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"bump_l1_off", bump_l1_off},
        {"bump_l1_on", bump_l1_on},
        {"bump_l1_on_no_version_cache", bump_l1_on_no_version_cache},
        {"get_many_one_round_trip", get_many_one_round_trip},
        {"get_many_distinct_tags", get_many_distinct_tags},
        {"second_instance_sees_bump", second_instance_sees_bump},
        {"counter_missing_or_evicted", counter_missing_or_evicted},
        {"counter_keys_do_not_collide", counter_keys_do_not_collide},
        {"unsafe_and_long_tags", unsafe_and_long_tags},
        {"bad_input", bad_input},
        {"loader_fills_carry_tags", loader_fills_carry_tags},
        {"batch_loader_fills_carry_tags", batch_loader_fills_carry_tags},
        {"newer_stamp_is_not_reloaded", newer_stamp_is_not_reloaded},
        {"stale_policy_and_touch", stale_policy_and_touch},
        {"option_tag_cache_ms", option_tag_cache_ms},
        {"threads_write_read_bump", threads_write_read_bump},
        {"counter_overflow_is_an_error", counter_overflow_is_an_error},
    };
    if (argc < 2) {
        fprintf(stderr, "usage: test_tags memory|redis|memcached [case]\n");
        return 2;
    }
    backend_name = argv[1];
    test_backend_url(backend_name);
    snprintf(ns, sizeof ns, "tags%ld%d", (long)time(NULL) % 100000, (int)getpid());
    return test_main(argc - 1, argv + 1, cases, sizeof cases / sizeof cases[0]);
}
