/*
 * The operator tools' ABI (strata_inspect, strata_keys_scan,
 * strata_server_info_get, strata_wb_status_get, strata_wb_dead_*), once per
 * backend:  test_optools memory | redis | memcached
 */
#include "test.h"
#include "engine/cache.h"

#include <time.h>
#include <unistd.h>

static const char *backend_name;
static char ns[64];

#define K(s) (s), strlen(s)
#define IS(b) (strcmp(backend_name, (b)) == 0)

static strata_cache *open_cache(const char *query, const strata_options *o)
{
    strata_cache *c = NULL;
    char u[1400];
    const char *base = test_backend_url(backend_name);
    /* redis: database 9, out of reach of test_coherence's FLUSHDB (db 0) in a parallel ctest */
    snprintf(u, sizeof u, "%s%s%sns=%s&timeout_ms=1000%s%s", IS("memory") ? "memory://optools" : base,
             IS("redis") ? "/9" : "", strchr(base, '?') ? "&" : "?", ns, query ? "&" : "", query ? query : "");
    if (strata_cache_new(&c, u, o) != 0) {
        fprintf(stderr, "  cannot open %s: %s\n", u, strata_error_last());
        return NULL;
    }
    return c;
}

static void inspect_entry_and_tags(void)
{
    strata_cache *c = open_cache("stale_ms=30000", NULL);
    strata_inspection in;
    strata_set_options o;
    const char *tags[] = {"org:1", "team"};
    size_t lens[] = {5, 4};
    const char *k = test_unique("entry");
    REQUIRE(c);
    memset(&in, 0, sizeof in);
    in.version = STRATA_INSPECT_VERSION;
    strata_set_options_init(&o, STRATA_SET_OPTIONS_VERSION);
    o.ttl_ms = 60000;
    o.cost_ms = 12;
    o.tags = tags;
    o.taglens = lens;
    o.ntags = 2;
    CHECK_RC(strata_set_ex(c, K(k), K("payload"), &o), 0);
    CHECK_RC(strata_inspect(c, K(k), &in), 0);
    CHECK(in.kind == STRATA_INSPECT_ENTRY && !in.negative && !in.stale_by_tag);
    CHECK(in.fresh_until_ms - in.created_ms == 60000 && in.stale_until_ms - in.fresh_until_ms == 30000);
    CHECK(in.cost_ms == 12 && in.ntags == 2 && strcmp(in.tags[0].name, "org:1") == 0 && in.tags[1].namelen == 4);
    CHECK(in.tags[0].current == in.tags[0].stamped && in.tags[1].current == in.tags[1].stamped);
    CHECK_VALUE(&in.value, "payload");
    CHECK(in.stored_len > 7 && in.now_ms >= in.created_ms);
    if (IS("memcached"))
        CHECK(in.backend_ttl_ms == -2); /* libmemcached cannot ask */
    else
        CHECK(in.backend_ttl_ms > 80000 && in.backend_ttl_ms <= 90000);
    CHECK_RC(strata_invalidate_tag(c, K("team")), 0);
    CHECK_RC(strata_inspect(c, K(k), &in), 0); /* reuses the value buffer */
    CHECK(in.stale_by_tag && in.tags[1].current == in.tags[1].stamped + 1 && in.tags[0].current == in.tags[0].stamped);
    CHECK_VALUE(&in.value, "payload");
    strata_value_dispose(&in.value);
    strata_cache_free(c);
}

static void inspect_after_clear(void)
{
    strata_cache *c = open_cache(NULL, NULL);
    strata_inspection in;
    char before[96], after[96];
    REQUIRE(c);
    memset(&in, 0, sizeof in);
    in.version = STRATA_INSPECT_VERSION;
    snprintf(before, sizeof before, "%s", test_unique("before"));
    snprintf(after, sizeof after, "%s", test_unique("after"));
    CHECK_RC(strata_set(c, K(before), K("old"), 60000), 0);
    CHECK_RC(strata_clear(c), 0);
    CHECK_RC(strata_set(c, K(after), K("new"), 60000), 0);
    CHECK_RC(strata_inspect(c, K(before), &in), 0);
    CHECK(in.kind == STRATA_INSPECT_ENTRY && in.cleared && in.ns_current != 0 && in.ns_stamped != in.ns_current);
    CHECK(in.ntags == 0); /* the generation stamp is not listed as a tag */
    CHECK_RC(strata_inspect(c, K(after), &in), 0);
    CHECK(in.kind == STRATA_INSPECT_ENTRY && !in.cleared && in.ns_stamped == in.ns_current && in.ntags == 0);
    strata_value_dispose(&in.value);
    strata_cache_free(c);
}

static int not_found(void *ud, const char *key, size_t keylen, strata_load *l)
{
    (void)ud; (void)key; (void)keylen;
    return strata_load_not_found(l, 0);
}

static void inspect_miss_negative_lease_foreign(void)
{
    strata_cache *c = open_cache(NULL, NULL);
    strata_inspection in;
    strata_value v = STRATA_VALUE_INIT;
    strata_ticket *t = NULL;
    char fk[256], neg[96], lead[96], foreign[96]; /* test_unique's buffer is reused */
    snprintf(neg, sizeof neg, "%s", test_unique("neg"));
    snprintf(lead, sizeof lead, "%s", test_unique("lead"));
    snprintf(foreign, sizeof foreign, "%s", test_unique("foreign"));
    REQUIRE(c);
    memset(&in, 0, sizeof in);
    in.version = STRATA_INSPECT_VERSION;
    CHECK_RC(strata_inspect(c, K(test_unique("none")), &in), 0);
    CHECK(in.kind == STRATA_INSPECT_MISS && !in.lease && in.value.len == 0);

    CHECK_RC(strata_get_or_load(c, K(neg), not_found, NULL, &v), STRATA_NEGATIVE);
    CHECK_RC(strata_inspect(c, K(neg), &in), 0);
    CHECK(in.kind == STRATA_INSPECT_ENTRY && in.negative && in.value.len == 0);

    CHECK_RC(strata_lookup(c, K(lead), &v, &t), STRATA_MISS_LEAD);
    CHECK_RC(strata_inspect(c, K(lead), &in), 0);
    CHECK(in.kind == STRATA_INSPECT_MISS);
    CHECK(in.lease && strlen(in.lease_holder) == 16);
    CHECK(in.lease_ttl_ms > 0 && in.lease_ttl_ms <= 5000);
    CHECK_RC(strata_abandon(t), 0);

    snprintf(fk, sizeof fk, "%s:%s", ns, foreign);
    CHECK_RC(c->backend->ops->set(c->backend, K(fk), K("\x1b[0mnot an envelope"), 60000), 0);
    CHECK_RC(strata_inspect(c, K(foreign), &in), 0);
    CHECK(in.kind == STRATA_INSPECT_FOREIGN && in.stored_len == 19);
    CHECK_VALUE(&in.value, "\x1b[0mnot an envelope");
    CHECK_RC(strata_get(c, K(foreign), &v), STRATA_MISS); /* and the engine still reads a miss */

    strata_value_dispose(&v);
    strata_value_dispose(&in.value);
    strata_cache_free(c);
}

static void bad_input(void)
{
    strata_cache *c = open_cache(NULL, NULL);
    strata_inspection in;
    strata_key_page *p = NULL;
    strata_server_info si;
    strata_wb_status st;
    strata_dead_list *dl = NULL;
    REQUIRE(c);
    memset(&in, 0, sizeof in);
    CHECK_RC(strata_inspect(c, K("k"), &in), STRATA_EVERSION); /* version 0 */
    in.version = STRATA_INSPECT_VERSION;
    CHECK_RC(strata_inspect(c, "", 0, &in), STRATA_EKEY);
    CHECK_RC(strata_inspect(c, K("k"), NULL), STRATA_EINVAL);
    CHECK_RC(strata_inspect(NULL, K("k"), &in), STRATA_EINVAL);
    CHECK_RC(strata_keys_scan(c, "0", NULL, 0, &p), STRATA_EINVAL);
    CHECK_RC(strata_keys_scan(c, "12abc", NULL, 10, &p), STRATA_EINVAL);
    CHECK_MSG_HAS("cursor");
    CHECK(p == NULL);
    memset(&si, 0, sizeof si);
    CHECK_RC(strata_server_info_get(c, &si), STRATA_EVERSION);
    memset(&st, 0, sizeof st);
    CHECK_RC(strata_wb_status_get(c, &st), STRATA_EVERSION);
    CHECK_RC(strata_wb_dead_list(c, 0, NULL), STRATA_EINVAL);
    CHECK_RC(strata_wb_dead_replay(c, "", 0, NULL), STRATA_EKEY);
    CHECK(strata_dead_list_count(NULL) == 0 && strata_key_page_count(NULL) == 0);
    CHECK_RC(strata_wb_dead_list(c, 0, &dl), 0);
    CHECK(strata_dead_list_count(dl) == 0);
    strata_dead_list_free(dl);
    strata_key_page_free(NULL);
    strata_dead_list_free(NULL);
    strata_cache_free(c);
}

static void keys_scan(void)
{
    strata_cache *c = open_cache(NULL, NULL);
    strata_key_page *p = NULL;
    char cursor[64] = "0", key[64];
    int seen[30] = {0}, pages = 0, i, all = 1;
    REQUIRE(c);
    if (!IS("redis")) {
        CHECK_RC(strata_keys_scan(c, NULL, NULL, 10, &p), STRATA_ENOTSUP);
        CHECK_MSG_HAS("cannot list");
        strata_cache_free(c);
        return;
    }
    for (i = 0; i < 30; i++) {
        snprintf(key, sizeof key, "scan:%02d", i);
        CHECK_RC(strata_set(c, K(key), K("value"), 60000), 0);
    }
    CHECK_RC(strata_set(c, K("other"), K("v"), 60000), 0);
    do {
        size_t n, j;
        REQUIRE(strata_keys_scan(c, cursor, "scan:*", 7, &p) == 0);
        n = strata_key_page_count(p);
        for (j = 0; j < n; j++) {
            const char *k;
            size_t kl;
            int64_t size, ttl;
            CHECK_RC(strata_key_page_item(p, j, &k, &kl, &size, &ttl), 0);
            CHECK(kl == 7 && memcmp(k, "scan:", 5) == 0 && size > 5 && ttl > 0 && ttl <= 60000);
            if (kl == 7 && memcmp(k, "scan:", 5) == 0)
                seen[(k[5] - '0') * 10 + (k[6] - '0')]++;
        }
        CHECK_RC(strata_key_page_item(p, n, NULL, NULL, NULL, NULL), STRATA_EINVAL);
        snprintf(cursor, sizeof cursor, "%s", strata_key_page_cursor(p));
        strata_key_page_free(p);
        pages++;
    } while (strcmp(cursor, "0") != 0 && pages < 1000);
    for (i = 0; i < 30; i++)
        all &= seen[i] >= 1; /* SCAN may repeat a key, never skip one */
    CHECK(all && pages >= 2);
    strata_cache_free(c);
}

static void server_info(void)
{
    strata_cache *c = open_cache(NULL, NULL);
    strata_server_info si;
    REQUIRE(c);
    memset(&si, 0, sizeof si);
    si.version = STRATA_SERVER_INFO_VERSION;
    CHECK_RC(strata_server_info_get(c, &si), 0);
    CHECK(strcmp(si.backend, backend_name) == 0 && si.server_version[0]);
    CHECK(si.clock_known);
    if (IS("redis")) {
        CHECK(si.pubsub == 1 && si.tracking == 1 && si.cluster == 0 && si.rtt_us >= 0);
        CHECK(si.eviction_policy[0] && si.maxmemory >= 0 && si.clock_skew_ms > -1000 && si.clock_skew_ms < 1000);
    } else if (IS("memcached")) {
        CHECK(si.item_size_max >= 1024 * 1024 && si.maxmemory > 0 && si.pubsub == -1);
    } else {
        CHECK(si.maxmemory > 0 && si.pubsub == -1 && si.item_size_max == -1);
    }
    strata_cache_free(c);
}

static int failing_writer(void *ud, size_t n, const char *const *keys, const size_t *keylens,
                          const char *const *vals, const size_t *vallens, strata_write *w)
{
    (void)ud; (void)n; (void)keys; (void)keylens; (void)vals; (void)vallens;
    strata_write_error(w, "db down");
    return STRATA_EUSER;
}

static void status_of(strata_cache *c, strata_wb_status *st)
{
    memset(st, 0, sizeof *st);
    st->version = STRATA_WB_STATUS_VERSION;
    CHECK_RC(strata_wb_status_get(c, st), 0);
}

static void dead_letter_cycle(void)
{
    char journal[256], dead[270], query[400];
    strata_options o;
    strata_cache *c;
    strata_wb_status st;
    strata_dead_list *dl = NULL;
    strata_dead_letter d;
    strata_wb_batch *b = NULL;
    size_t count = 99;
    char k1[96], k2[96]; /* test_unique's buffer is reused */
    snprintf(k1, sizeof k1, "%s", test_unique("dead1"));
    snprintf(k2, sizeof k2, "%s", test_unique("dead2"));

    snprintf(journal, sizeof journal, "/tmp/strata-optools-%d-%s.journal", (int)getpid(), backend_name);
    snprintf(dead, sizeof dead, "%s.dead", journal);
    unlink(journal);
    unlink(dead);
    snprintf(query, sizeof query, "wb_threads=0&wb_max_attempts=1%s%s", IS("redis") ? "" : "&wb_journal=",
             IS("redis") ? "" : journal);
    strata_options_init(&o, STRATA_OPTIONS_VERSION);
    o.wb_writer = failing_writer;
    c = open_cache(query, &o);
    REQUIRE(c);
    CHECK_RC(strata_write_behind(c, K(k1), K("one"), 0), 0);
    CHECK_RC(strata_write_behind(c, K(k2), K("two"), 0), 0);
    status_of(c, &st);
    CHECK(st.backlog == 2 && st.dead == 0 && st.oldest_ms > 0 && st.oldest_ms <= strata__now_wall_ms());
    CHECK_RC(strata_flush(c, 5000), 0); /* one failed delivery each: both dead-lettered */
    status_of(c, &st);
    CHECK(st.backlog == 0 && st.dead == 2 && st.oldest_ms == 0);

    CHECK_RC(strata_wb_dead_list(c, 0, &dl), 0);
    REQUIRE(strata_dead_list_count(dl) == 2);
    CHECK_RC(strata_dead_list_item(dl, 0, &d), 0);
    CHECK(d.keylen == strlen(k1) && memcmp(d.key, k1, d.keylen) == 0 && d.vallen == 3 && memcmp(d.val, "one", 3) == 0);
    CHECK(d.attempts == 1 && d.errorlen > 0 && strstr(d.error, "db down") && d.given_up_ms > 0 && d.id[0]);
    CHECK_RC(strata_dead_list_item(dl, 2, &d), STRATA_EINVAL);
    strata_dead_list_free(dl);
    CHECK_RC(strata_wb_dead_list(c, 1, &dl), 0);
    CHECK(strata_dead_list_count(dl) == 1);
    strata_dead_list_free(dl);

    CHECK_RC(strata_wb_dead_replay(c, K(k1), &count), 0);
    CHECK(count == 1);
    CHECK_RC(strata_wb_dead_replay(c, K(k1), &count), 0);
    CHECK(count == 0); /* once */
    status_of(c, &st);
    CHECK(st.backlog == 1 && st.dead == 1);
    CHECK_RC(strata_wb_dead_purge(c, NULL, 0, &count), 0);
    CHECK(count == 1);
    status_of(c, &st);
    CHECK(st.dead == 0);

    /* the replayed write is delivered like any other */
    CHECK_RC(strata_wb_poll(c, 10, &b), 0);
    if (b != NULL) {
        const char *k, *v;
        size_t kl, vl;
        CHECK(strata_wb_batch_count(b) == 1);
        CHECK_RC(strata_wb_batch_item(b, 0, &k, &kl, &v, &vl), 0);
        CHECK(kl == strlen(k1) && memcmp(k, k1, kl) == 0 && vl == 3 && memcmp(v, "one", 3) == 0);
        CHECK_RC(strata_wb_ack(b), 0);
    }
    status_of(c, &st);
    CHECK(st.backlog == 0);
    strata_cache_free(c);
    unlink(journal);
    unlink(dead);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"inspect_entry_and_tags", inspect_entry_and_tags},
        {"inspect_miss_negative_lease_foreign", inspect_miss_negative_lease_foreign},
        {"inspect_after_clear", inspect_after_clear},
        {"bad_input", bad_input},
        {"keys_scan", keys_scan},
        {"server_info", server_info},
        {"dead_letter_cycle", dead_letter_cycle},
    };
    if (argc < 2) {
        fprintf(stderr, "usage: test_optools memory|redis|memcached [case]\n");
        return 2;
    }
    backend_name = argv[1];
    test_backend_url(backend_name);
    snprintf(ns, sizeof ns, "opt%ld%d", (long)time(NULL) % 100000, (int)getpid());
    return test_main(argc - 1, argv + 1, cases, sizeof cases / sizeof cases[0]);
}
