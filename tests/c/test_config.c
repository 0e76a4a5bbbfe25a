/* URLs and options: every malformed input is rejected with a code and a message naming it. */
#include "test.h"
#include "config.h"

typedef struct bad_url {
    const char *url;
    int code;
    const char *message_part;
} bad_url;

static void rejects_bad_urls(void)
{
    static const bad_url cases[] = {
        {"http://localhost", STRATA_EURL, "unsupported URL scheme \"http\""},
        {"localhost:6379", STRATA_EURL, "no scheme"},
        {"redis://", STRATA_EURL, "no host"},
        {"redis://host:0", STRATA_EURL, "bad port"},
        {"redis://host:65536", STRATA_EURL, "bad port"},
        {"redis://host:12ab", STRATA_EURL, "bad port"},
        {"redis://host:6379/abc", STRATA_EURL, "database number"},
        {"redis://a:1,b:2", STRATA_EURL, "one host"},
        {"redis://ho st:1", STRATA_EURL, "whitespace"},
        {"redis://host:1\n", STRATA_EURL, "whitespace"},
        {"redis://[::1:6379", STRATA_EURL, "unterminated"},
        {"redis://user:p%zzw@host:1", STRATA_EURL, "percent-escape"},
        {"memcached://u:p@host:1", STRATA_EURL, "credentials"},
        {"memcached://host:1/3", STRATA_EURL, "only valid in redis"},
        {"memcached://a:1,,b:2", STRATA_EURL, "empty host"},
        {"memory://bad/name", STRATA_EURL, "store name"},
        {"memory://?ttl_ms=abc", STRATA_EOPTION, "ttl_ms"},
        {"memory://?ttl_ms=-5", STRATA_EOPTION, "ttl_ms"},
        {"memory://?ttl_ms=0", STRATA_EOPTION, "ttl_ms"},
        {"memory://?bogus=1", STRATA_EOPTION, "unknown option \"bogus\""},
        {"memory://?ttl_ms", STRATA_EOPTION, "no value"},
        {"memory://?wb_journal=", STRATA_EOPTION, "option wb_journal: empty path"},
        {"memory://?l1=yes", STRATA_EOPTION, "option l1"},
        {"memory://?l1_admission=some", STRATA_EOPTION, "l1_admission"},
        {"memory://?hot_sample=3", STRATA_EOPTION, "hot_sample: must be a power of two"},
        {"memory://?hot_sample=0", STRATA_EOPTION, "hot_sample"},
        {"memory://?hot_sample=512", STRATA_EOPTION, "hot_sample"},
        {"memory://?hot_compare=2", STRATA_EOPTION, "hot_compare"},
        {"redis://h:1?l1_renew=2", STRATA_EOPTION, "option l1_renew"},
        {"redis://h:1?l1_renew=yes", STRATA_EOPTION, "option l1_renew"},
        {"memory://?wait_policy=pray", STRATA_EOPTION, "wait_policy"},
        {"memory://?jitter_pct=80", STRATA_EOPTION, "jitter_pct"},
        {"memory://?pool_size=0", STRATA_EOPTION, "pool_size"},
        {"memory://?xfetch_beta=nan", STRATA_EOPTION, "xfetch_beta"},
        {"memory://?ns=has:colon", STRATA_EOPTION, "namespace"},
        {"memory://?ns=", STRATA_EOPTION, "namespace"},
        {"memory://?db=2", STRATA_EOPTION, "only for redis"},
        {"memory://?timeout_ms=99999999999999999999", STRATA_EOPTION, "timeout_ms"},
        {"memory://?hot_threshold=0", STRATA_EOPTION, "hot_threshold"},
        {"memory://?hot_threshold=256", STRATA_EOPTION, "hot_threshold"},
        {"memory://?hot_sketch_width=100", STRATA_EOPTION, "hot_sketch_width"},
        {"memory://?hot_sketch_width=99999999999", STRATA_EOPTION, "hot_sketch_width"},
        {"memory://?hot_window=0", STRATA_EOPTION, "hot_window"},
        {"memory://?hot_top=5000", STRATA_EOPTION, "hot_top"},
        {"memory://?l1=1&l1_admission=hot&hot_sketch_width=0", STRATA_EOPTION, "needs the sketch"},
        {"memory://?tracking=1", STRATA_EOPTION, "only for redis"},
        {"memcached://h:1?tracking=1", STRATA_EOPTION, "only for redis"},
        {"redis://h:1?tracking=yes", STRATA_EOPTION, "option tracking"},
        {"redis://h:1?coherence_ping_ms=0", STRATA_EOPTION, "coherence_ping_ms"},
        {"redis://h:1?coherence_ping_ms=-1", STRATA_EOPTION, "coherence_ping_ms"},
        {"redis://h:1?l1_bus=redis://h:2", STRATA_EOPTION, "only for memcached"},
        {"memory://?l1_bus=redis://h:2", STRATA_EOPTION, "only for memcached"},
        {"memcached://h:1?l1_bus=http://h:2", STRATA_EOPTION, "option l1_bus"},
        {"memcached://h:1?l1_bus=redis://h:99999", STRATA_EOPTION, "option l1_bus"},
        {"memcached://h:1?l1_bus=redis://", STRATA_EOPTION, "option l1_bus"},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        strata_cache *c = (strata_cache *)1;
        int rc = strata_cache_new(&c, cases[i].url, NULL);
        if (rc != cases[i].code || c != NULL || !strstr(strata_error_last(), cases[i].message_part)) {
            fprintf(stderr, "  FAIL url \"%s\": rc %s, message \"%s\", want %s with \"%s\"\n", cases[i].url,
                    strata_error_name(rc), strata_error_last(), strata_error_name(cases[i].code),
                    cases[i].message_part);
            test_failures++;
        }
    }
}

static void parses_good_urls(void)
{
    strata__config cfg;
    CHECK_RC(strata__config_parse(&cfg, "redis://bob:s%40cret@10.0.0.1:7000/3?timeout_ms=50&ns=app", NULL), 0);
    CHECK(cfg.scheme == STRATA__SCHEME_REDIS && cfg.nservers == 1);
    CHECK(strcmp(cfg.servers[0].host, "10.0.0.1") == 0 && cfg.servers[0].port == 7000);
    CHECK(strcmp(cfg.user, "bob") == 0 && strcmp(cfg.password, "s@cret") == 0 && cfg.db == 3);
    CHECK(cfg.opts.timeout_ms == 50 && strcmp(cfg.ns, "app") == 0);

    CHECK_RC(strata__config_parse(&cfg, "redis://localhost", NULL), 0);
    CHECK(cfg.servers[0].port == 6379 && strcmp(cfg.ns, "strata") == 0);

    CHECK_RC(strata__config_parse(&cfg, "redis://[::1]:6380", NULL), 0);
    CHECK(strcmp(cfg.servers[0].host, "::1") == 0 && cfg.servers[0].port == 6380);

    CHECK_RC(strata__config_parse(&cfg, "memcached://a:1,b,c:3?pool_size=8&l1=1&l1_admission=hot", NULL), 0);
    CHECK(cfg.scheme == STRATA__SCHEME_MEMCACHED && cfg.nservers == 3);
    CHECK(cfg.servers[1].port == 11211 && cfg.servers[2].port == 3);
    CHECK(cfg.opts.pool_size == 8 && cfg.opts.l1 == 1 && cfg.opts.l1_admission == STRATA_L1_HOT);

    CHECK_RC(strata__config_parse(&cfg, "redis://h?l1=1&l1_admission=hot&hot_threshold=7&hot_window=5000"
                                        "&hot_sketch_width=4096&hot_top=3&tracking=1&coherence_ping_ms=250", NULL), 0);
    CHECK(cfg.opts.hot_threshold == 7 && cfg.opts.hot_window == 5000 && cfg.opts.hot_sketch_width == 4096);
    CHECK(cfg.opts.hot_top == 3 && cfg.opts.tracking == 1 && cfg.opts.coherence_ping_ms == 250);

    CHECK_RC(strata__config_parse(&cfg, "memory://", NULL), 0);
    CHECK(cfg.scheme == STRATA__SCHEME_MEMORY && cfg.nservers == 0);
    CHECK(cfg.opts.hot_sketch_width == 262144 && cfg.opts.hot_window == 1048576 && cfg.opts.hot_threshold == 2);
    CHECK(cfg.opts.hot_top == 16 && cfg.opts.tracking == 0 && cfg.opts.coherence_ping_ms == 1000);
    CHECK_RC(strata__config_parse(&cfg, NULL, NULL), 0);
    CHECK(cfg.scheme == STRATA__SCHEME_MEMORY);
}

/* Every other versioned struct's *_init: NULL and an unknown version are
 * refused naming the type and leave the struct alone; the right one sets
 * the defaults. */
static void other_struct_inits(void)
{
    strata_io io;
    strata_op_options oo;
    strata_op_meta m;
    strata_event ev;
    strata_set_options so;
    memset(&so, 0x5a, sizeof so);
    CHECK_RC(strata_set_options_init(NULL, STRATA_SET_OPTIONS_VERSION), STRATA_EINVAL);
    CHECK_MSG_HAS("strata_set_options pointer is NULL");
    CHECK_RC(strata_set_options_init(&so, STRATA_SET_OPTIONS_VERSION + 1), STRATA_EVERSION);
    CHECK_MSG_HAS("unknown strata_set_options version");
    CHECK(so.ntags == (size_t)0x5a5a5a5a5a5a5a5aULL); /* untouched */
    CHECK_RC(strata_set_options_init(&so, STRATA_SET_OPTIONS_VERSION), 0);
    CHECK(so.version == STRATA_SET_OPTIONS_VERSION && so.ntags == 0);
    CHECK_RC(strata_io_init(NULL, STRATA_IO_VERSION), STRATA_EINVAL);
    CHECK_MSG_HAS("strata_io pointer is NULL");
    CHECK_RC(strata_io_init(&io, 0), STRATA_EVERSION);
    CHECK_MSG_HAS("unknown strata_io version 0");
    memset(&io, 0x5a, sizeof io);
    CHECK_RC(strata_io_init(&io, STRATA_IO_VERSION), 0);
    CHECK(io.version == STRATA_IO_VERSION && io.kind == 0 && io.data == NULL && io.len == 0);
    CHECK_RC(strata_op_options_init(&oo, 77), STRATA_EVERSION);
    CHECK_MSG_HAS("strata_op_options");
    CHECK_RC(strata_op_options_init(&oo, STRATA_OP_OPTIONS_VERSION), 0);
    CHECK(oo.version == STRATA_OP_OPTIONS_VERSION && oo.lease == 1 && oo.ntags == 0);
    CHECK_RC(strata_op_meta_init(NULL, STRATA_OP_META_VERSION), STRATA_EINVAL);
    CHECK_MSG_HAS("strata_op_meta");
    memset(&m, 0x5a, sizeof m);
    CHECK_RC(strata_op_meta_init(&m, STRATA_OP_META_VERSION), 0);
    CHECK(m.version == STRATA_OP_META_VERSION && m.flags == 0 && m.cost_ms == 0);
    CHECK_RC(strata_event_init(&ev, STRATA_EVENT_VERSION + 1), STRATA_EVERSION);
    CHECK_MSG_HAS("unknown strata_event version");
    CHECK_RC(strata_event_init(&ev, STRATA_EVENT_VERSION), 0);
    CHECK(ev.version == STRATA_EVENT_VERSION && ev.key == NULL);
}

static void options_struct(void)
{
    strata_options o;
    strata_cache *c = NULL;
    CHECK_RC(strata_options_init(&o, 999), STRATA_EVERSION);
    CHECK_RC(strata_options_init(NULL, STRATA_OPTIONS_VERSION), STRATA_EINVAL);
    CHECK_RC(strata_options_init(&o, STRATA_OPTIONS_VERSION), 0);
    o.version = STRATA_OPTIONS_VERSION + 1;
    CHECK_RC(strata_cache_new(&c, "memory://", &o), STRATA_EVERSION);
    CHECK_MSG_HAS("unknown strata_options version");
    CHECK(c == NULL);
    strata_options_init(&o, STRATA_OPTIONS_VERSION);
    o.ttl_ms = -1;
    CHECK_RC(strata_cache_new(&c, "memory://", &o), STRATA_EOPTION);
    CHECK_MSG_HAS("ttl_ms");
    strata_options_init(&o, STRATA_OPTIONS_VERSION);
    o.ns = "bad ns";
    CHECK_RC(strata_cache_new(&c, "memory://", &o), STRATA_EOPTION);
    CHECK_MSG_HAS("namespace");
    strata_options_init(&o, STRATA_OPTIONS_VERSION);
    o.hot_threshold = 300; /* the struct is checked like the URL */
    CHECK_RC(strata_cache_new(&c, "memory://", &o), STRATA_EOPTION);
    CHECK_MSG_HAS("hot_threshold");
    strata_options_init(&o, STRATA_OPTIONS_VERSION);
    o.tracking = 5;
    CHECK_RC(strata_cache_new(&c, "redis://127.0.0.1:1", &o), STRATA_EOPTION);
    CHECK_MSG_HAS("tracking");
    strata_options_init(&o, STRATA_OPTIONS_VERSION);
    o.l1_bus = "nope";
    CHECK_RC(strata_cache_new(&c, "memcached://127.0.0.1:1", &o), STRATA_EOPTION);
    CHECK_MSG_HAS("l1_bus");
    CHECK(c == NULL);
    /* a version 2 struct ends before l1_bus: whatever lies there is not read */
    CHECK_RC(strata_options_init(&o, 2), 0);
    o.l1_bus = "nope";
    {
        strata__config cfg;
        CHECK_RC(strata__config_parse(&cfg, "memcached://127.0.0.1:1", &o), 0);
        CHECK(cfg.l1_bus[0] == '\0' && cfg.opts.l1_bus == NULL && cfg.opts.version == STRATA_OPTIONS_VERSION);
    }
    /* the URL wins over the struct */
    strata_options_init(&o, STRATA_OPTIONS_VERSION);
    o.ns = "fromstruct";
    {
        strata__config cfg;
        CHECK_RC(strata__config_parse(&cfg, "memory://?ns=fromurl", &o), 0);
        CHECK(strcmp(cfg.ns, "fromurl") == 0);
    }
    CHECK_RC(strata_cache_new(NULL, "memory://", NULL), STRATA_EINVAL);
    strata_cache_free(NULL); /* no-op */
}

static void error_names(void)
{
    CHECK(strcmp(strata_error_name(STRATA_ETIMEOUT), "ETIMEOUT") == 0);
    CHECK(strcmp(strata_error_name(STRATA_MISS), "MISS") == 0);
    CHECK(strcmp(strata_error_name(-999), "EUNKNOWN") == 0);
    CHECK(strata_error_last() != NULL);
    CHECK(strcmp(strata_version(), "0.1.0") == 0);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"rejects_bad_urls", rejects_bad_urls},
        {"parses_good_urls", parses_good_urls},
        {"options_struct", options_struct},
        {"other_struct_inits", other_struct_inits},
        {"error_names", error_names},
    };
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
