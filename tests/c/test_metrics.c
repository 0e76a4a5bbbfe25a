/*
 * Metrics: histograms, stats versions, breaker state, and the Prometheus text
 * exposition checked line by line by a strict parser written here.
 */
#include "test.h"
#include "engine/cache.h"
#include "engine/metrics.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>

#define K(s) (s), strlen(s)

/* ---- a strict checker of the text exposition format (0.0.4) ---- */

#define MAX_SAMPLES 512
#define MAX_FAMILIES 64

typedef struct sample {
    char name[128];
    char labels[256];   /* as written, between the braces */
    char le[128];       /* the le label, if any */
    double value;
} sample;

typedef struct exposition {
    sample s[MAX_SAMPLES];
    size_t n;
    char families[MAX_FAMILIES][128];
    char types[MAX_FAMILIES][16];
    size_t nf;
    char error[256];
} exposition;

static int bad(exposition *x, int line, const char *why)
{
    snprintf(x->error, sizeof x->error, "line %d: %s", line, why);
    return -1;
}

static int is_name_start(int c) { return isalpha(c) || c == '_' || c == ':'; }
static int is_name_char(int c) { return isalnum(c) || c == '_' || c == ':'; }

/* Reads a metric or label name at *p; returns its length, 0 if none. */
static size_t read_name(const char **p, char *out, size_t cap, int label)
{
    size_t n = 0;
    if (!is_name_start((unsigned char)**p) || (label && **p == ':'))
        return 0;
    while (is_name_char((unsigned char)**p) && !(label && **p == ':')) {
        if (n + 1 >= cap)
            return 0;
        out[n++] = *(*p)++;
    }
    out[n] = '\0';
    return n;
}

static int parse_value(const char *s, double *v)
{
    char *end;
    if (strcmp(s, "+Inf") == 0) { *v = INFINITY; return 0; }
    if (strcmp(s, "-Inf") == 0) { *v = -INFINITY; return 0; }
    if (strcmp(s, "NaN") == 0) { *v = NAN; return 0; }
    if (*s == '\0' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    *v = strtod(s, &end);
    return *end == '\0' && errno == 0 ? 0 : -1;
}

/* The family a sample belongs to: histogram suffixes stripped when the family is a histogram. */
static int family_of(exposition *x, const char *name)
{
    size_t i;
    for (i = 0; i < x->nf; i++) {
        size_t fl = strlen(x->families[i]);
        if (strcmp(x->families[i], name) == 0)
            return (int)i;
        if (strcmp(x->types[i], "histogram") == 0 && strncmp(name, x->families[i], fl) == 0 &&
            (strcmp(name + fl, "_bucket") == 0 || strcmp(name + fl, "_sum") == 0 || strcmp(name + fl, "_count") == 0))
            return (int)i;
    }
    return -1;
}

static int check_exposition(exposition *x, const char *text)
{
    const char *p = text;
    int line = 0, current = -1;
    memset(x, 0, sizeof *x);
    if (*text == '\0' || text[strlen(text) - 1] != '\n')
        return bad(x, 0, "text must end with a newline");
    while (*p) {
        const char *eol = strchr(p, '\n');
        char buf[1024], name[128];
        size_t len = (size_t)(eol - p);
        line++;
        if (len == 0 || len >= sizeof buf)
            return bad(x, line, "empty or overlong line");
        memcpy(buf, p, len);
        buf[len] = '\0';
        p = eol + 1;
        if (buf[len - 1] == ' ' || buf[len - 1] == '\t')
            return bad(x, line, "trailing whitespace");
        if (buf[0] == '#') {
            const char *q = buf + 2;
            int help;
            if (strncmp(buf, "# HELP ", 7) == 0)
                help = 1;
            else if (strncmp(buf, "# TYPE ", 7) == 0)
                help = 0;
            else
                return bad(x, line, "a comment that is neither HELP nor TYPE");
            q = buf + 7;
            if (!read_name(&q, name, sizeof name, 0) || *q != ' ' || q[1] == '\0')
                return bad(x, line, "HELP/TYPE needs a metric name and text");
            q++;
            if (help) {
                int f = family_of(x, name);
                if (f >= 0 && f != (int)x->nf - 1)
                    return bad(x, line, "HELP for a family seen before");
                if (f < 0) {
                    if (x->nf == MAX_FAMILIES)
                        return bad(x, line, "too many families");
                    snprintf(x->families[x->nf], sizeof x->families[0], "%s", name);
                    x->types[x->nf][0] = '\0';
                    x->nf++;
                }
                current = (int)x->nf - 1;
            } else {
                if (strcmp(q, "counter") && strcmp(q, "gauge") && strcmp(q, "histogram") &&
                    strcmp(q, "summary") && strcmp(q, "untyped"))
                    return bad(x, line, "unknown TYPE");
                if (current < 0 || strcmp(x->families[current], name) != 0)
                    return bad(x, line, "TYPE without its HELP just before");
                if (x->types[current][0])
                    return bad(x, line, "second TYPE for a family");
                if (x->n > 0 && family_of(x, x->s[x->n - 1].name) == current)
                    return bad(x, line, "TYPE after the family's samples");
                snprintf(x->types[current], sizeof x->types[0], "%s", q);
            }
            continue;
        }
        {
            sample *s;
            const char *q = buf;
            char lname[64];
            int f;
            if (x->n == MAX_SAMPLES)
                return bad(x, line, "too many samples");
            s = &x->s[x->n];
            memset(s, 0, sizeof *s);
            if (!read_name(&q, s->name, sizeof s->name, 0))
                return bad(x, line, "bad metric name");
            f = family_of(x, s->name);
            if (f < 0 || f != current)
                return bad(x, line, "sample outside its family's block");
            if (*q == '{') {
                const char *start = ++q;
                int first = 1;
                while (*q != '}') {
                    char val[128];
                    size_t vn = 0;
                    if (!first) {
                        if (*q != ',')
                            return bad(x, line, "labels must be separated by ','");
                        q++;
                    }
                    first = 0;
                    if (!read_name(&q, lname, sizeof lname, 1) || *q != '=' || q[1] != '"')
                        return bad(x, line, "bad label name or missing =\"");
                    q += 2;
                    while (*q != '"') {
                        if (*q == '\0')
                            return bad(x, line, "unterminated label value");
                        if (*q == '\\') {
                            q++;
                            if (*q != '\\' && *q != '"' && *q != 'n')
                                return bad(x, line, "bad escape in label value");
                        }
                        if (vn + 1 < sizeof val)
                            val[vn++] = *q;
                        q++;
                    }
                    val[vn] = '\0';
                    q++;
                    if (strcmp(lname, "le") == 0)
                        snprintf(s->le, sizeof s->le, "%s", val);
                }
                if ((size_t)(q - start) >= sizeof s->labels)
                    return bad(x, line, "labels too long");
                memcpy(s->labels, start, (size_t)(q - start));
                q++;
            }
            if (*q != ' ')
                return bad(x, line, "expected one space before the value");
            q++;
            {
                char val[64];
                const char *sp = strchr(q, ' ');
                size_t vl = sp ? (size_t)(sp - q) : strlen(q);
                if (vl == 0 || vl >= sizeof val)
                    return bad(x, line, "missing value");
                memcpy(val, q, vl);
                val[vl] = '\0';
                if (parse_value(val, &s->value) < 0)
                    return bad(x, line, "value is not a float");
                if (sp) { /* optional timestamp: an integer */
                    const char *t = sp + 1;
                    if (*t == '-')
                        t++;
                    if (*t == '\0')
                        return bad(x, line, "empty timestamp");
                    for (; *t; t++)
                        if (!isdigit((unsigned char)*t))
                            return bad(x, line, "timestamp is not an integer");
                }
            }
            if (!x->types[f][0])
                return bad(x, line, "sample before its family's TYPE");
            if (strcmp(x->types[f], "counter") == 0 && (s->value < 0 ||
                strlen(s->name) < 6 || strcmp(s->name + strlen(s->name) - 6, "_total") != 0))
                return bad(x, line, "a counter must be named *_total and be >= 0");
            if (strcmp(x->types[f], "histogram") == 0 && strstr(s->name, "_bucket") && s->le[0] == '\0')
                return bad(x, line, "a histogram bucket without le");
            x->n++;
        }
    }
    return 0;
}

/* The value of the sample `name` whose labels contain every pair in `want`. */
static double value_of(const exposition *x, const char *name, const char *want)
{
    size_t i;
    for (i = 0; i < x->n; i++)
        if (strcmp(x->s[i].name, name) == 0 && strstr(x->s[i].labels, want))
            return x->s[i].value;
    return -1;
}

/* Histogram invariants: le increasing to +Inf, cumulative, +Inf == _count. */
static void check_histogram(const exposition *x, const char *base, const strata_histogram *h)
{
    char bname[160], cname[160];
    size_t i, nb = 0;
    double prev_le = -1, prev = 0, inf = -1;
    snprintf(bname, sizeof bname, "%s_bucket", base);
    snprintf(cname, sizeof cname, "%s_count", base);
    for (i = 0; i < x->n; i++) {
        double le;
        if (strcmp(x->s[i].name, bname) != 0)
            continue;
        CHECK(parse_value(x->s[i].le, &le) == 0);
        CHECK(le > prev_le);
        CHECK(x->s[i].value >= prev);
        if (h && nb < STRATA_HISTOGRAM_BUCKETS) /* cumulative of the struct's buckets */
            CHECK(x->s[i].value >= (double)h->buckets[nb]);
        prev_le = le;
        prev = x->s[i].value;
        if (isinf(le))
            inf = x->s[i].value;
        nb++;
    }
    CHECK(nb == STRATA_HISTOGRAM_BUCKETS);
    CHECK(isinf(prev_le));
    CHECK(inf == value_of(x, cname, ""));
    if (h)
        CHECK(inf == (double)h->count);
}

/* ---- cases ---- */

static void checker_rejects_bad_text(void)
{
    static exposition x;
    static const char *bad_texts[] = {
        "a_total 1\n",                                                     /* no TYPE */
        "# HELP a_total h\n# TYPE a_total counter\na_total  1\n",          /* two spaces */
        "# HELP a_total h\n# TYPE a_total counter\na_total{x=\"1} 1\n",    /* unterminated */
        "# HELP a_total h\n# TYPE a_total counter\na_total{1x=\"1\"} 1\n", /* bad label name */
        "# HELP a_total h\n# TYPE a_total counter\na_total 1x\n",          /* bad value */
        "# HELP a h\n# TYPE a counter\na 1\n",                             /* counter without _total */
        "# HELP a_total h\n# TYPE a_total counter\na_total 1",             /* no final newline */
        "# HELP a_total h\n# TYPE a_total counter\na_total 1\n# HELP b h\n# TYPE b gauge\nb 1\na_total 2\n",
        "# HELP h h\n# TYPE h histogram\nh_bucket 1\n",                    /* bucket without le */
        "# HELP a_total h\n# TYPE a_total wat\na_total 1\n",
        "# comment\n",
    };
    size_t i;
    CHECK(check_exposition(&x, "# HELP a_total h\n# TYPE a_total counter\na_total{x=\"a\\\"b\"} 1 123\n") == 0);
    for (i = 0; i < sizeof bad_texts / sizeof bad_texts[0]; i++) {
        if (check_exposition(&x, bad_texts[i]) == 0)
            fprintf(stderr, "  accepted bad text %zu\n", i);
        CHECK(check_exposition(&x, bad_texts[i]) < 0);
    }
}

static int loader_calls;

static int load_some(void *ud, const char *key, size_t keylen, strata_load *l)
{
    (void)ud;
    loader_calls++;
    if (keylen > 3 && memcmp(key, "nf:", 3) == 0)
        return strata_load_not_found(l, 0);
    return strata_load_value(l, key, keylen, 0);
}

/* A known workload; the exposition agrees with strata_stats and the histograms. */
static void prometheus_matches_stats(void)
{
    static exposition x;
    strata_cache *c = NULL;
    strata_value v = STRATA_VALUE_INIT;
    strata_stats s;
    strata_histogram hg, hl, hb;
    char *text;
    size_t need = 0;
    int i, gets = 0;
    const char *tag = "t";
    size_t taglen = 1;
    strata_set_options so;

    REQUIRE(strata_cache_new(&c, "memory://?ns=prom.test-1&l1=1", NULL) == 0);
    for (i = 0; i < 3; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        CHECK_RC(strata_set(c, K(k), K("v"), 0), 0);
    }
    CHECK_RC(strata_get(c, K("k0"), &v), STRATA_OK);         /* L1 hit (set fills L1) */
    CHECK_RC(strata_get(c, K("absent"), &v), STRATA_MISS);   /* L1 miss, backend miss */
    gets += 1; /* the get histogram times what goes past L1 */
    CHECK_RC(strata_get_or_load(c, K("loaded"), load_some, NULL, &v), STRATA_OK);
    CHECK_RC(strata_get_or_load(c, K("nf:x"), load_some, NULL, &v), STRATA_NEGATIVE);
    CHECK_RC(strata_get_or_load(c, K("nf:x"), load_some, NULL, &v), STRATA_NEGATIVE); /* L1 negative hit */
    gets += 2;
    strata_set_options_init(&so, STRATA_SET_OPTIONS_VERSION);
    so.tags = &tag;
    so.taglens = &taglen;
    so.ntags = 1;
    CHECK_RC(strata_set_ex(c, K("tagged"), K("v"), &so), 0);
    CHECK_RC(strata_invalidate_tag(c, K("t")), 0);
    CHECK_RC(strata_get(c, K("tagged"), &v), STRATA_MISS);
    gets++;
    CHECK(loader_calls == 2);

    CHECK_RC(strata_stats_prometheus(c, NULL, 0, &need), STRATA_ETOOBIG);
    REQUIRE(need > 100);
    text = malloc(need);
    REQUIRE(text);
    CHECK_RC(strata_stats_prometheus(c, text, need - 1, NULL), STRATA_ETOOBIG);
    CHECK_RC(strata_stats_prometheus(c, text, need, &need), 0);
    CHECK(strlen(text) + 1 == need);
    REQUIRE(strata_stats_get(c, &s, STRATA_STATS_VERSION) == 0);
    REQUIRE(strata_stats_histogram(c, STRATA_HISTOGRAM_GET, &hg) == 0);
    REQUIRE(strata_stats_histogram(c, STRATA_HISTOGRAM_LOAD, &hl) == 0);
    REQUIRE(strata_stats_histogram(c, STRATA_HISTOGRAM_BACKEND, &hb) == 0);
    if (check_exposition(&x, text) != 0) {
        fprintf(stderr, "  %s\n", x.error);
        CHECK(!"exposition is valid");
    }
    /* Every sample names the namespace. */
    for (i = 0; i < (int)x.n; i++)
        CHECK(strstr(x.s[i].labels, "namespace=\"prom.test-1\"") != NULL);

    /* 3 sets, 1 tagged set, 2 fills by get_or_load */
    CHECK(s.sets == 6 && s.l1_hits == 2 && s.negative_hits == 1 && s.loads == 2);
    CHECK(s.tag_invalidations == 1 && s.tag_stale == 1);
    CHECK(value_of(&x, "stratacache_hits_total", "tier=\"l1\"") == (double)s.l1_hits);
    CHECK(value_of(&x, "stratacache_hits_total", "tier=\"backend\"") == (double)s.hits);
    CHECK(value_of(&x, "stratacache_misses_total", "tier=\"l1\"") == (double)s.l1_misses);
    CHECK(value_of(&x, "stratacache_misses_total", "tier=\"backend\"") == (double)s.misses);
    CHECK(value_of(&x, "stratacache_sets_total", "") == 6);
    CHECK(value_of(&x, "stratacache_negative_hits_total", "") == 1);
    CHECK(value_of(&x, "stratacache_loads_total", "") == 2);
    CHECK(value_of(&x, "stratacache_leases_won_total", "") == (double)s.leases_won);
    CHECK(value_of(&x, "stratacache_leases_lost_total", "") == 0);
    CHECK(value_of(&x, "stratacache_stale_served_total", "") == 0);
    CHECK(value_of(&x, "stratacache_breaker_state", "") == 0);
    CHECK(value_of(&x, "stratacache_tag_invalidations_total", "") == 1);
    CHECK(value_of(&x, "stratacache_tag_stale_total", "") == 1);
    CHECK(value_of(&x, "stratacache_l1_entries", "tier=\"l1\"") == (double)s.l1_entries);

    CHECK(hg.count == (uint64_t)gets);
    CHECK(hl.count == 2);
    CHECK(hb.count > 0);
    CHECK(value_of(&x, "stratacache_get_seconds_count", "") == (double)gets);
    CHECK(value_of(&x, "stratacache_load_seconds_count", "") == 2);
    CHECK(fabs(value_of(&x, "stratacache_get_seconds_sum", "") - (double)hg.sum_ns / 1e9) < 1e-6);
    check_histogram(&x, "stratacache_get_seconds", NULL);
    check_histogram(&x, "stratacache_load_seconds", NULL);
    check_histogram(&x, "stratacache_backend_seconds", NULL);
    {
        uint64_t sum = 0;
        for (i = 0; i < STRATA_HISTOGRAM_BUCKETS; i++)
            sum += hb.buckets[i];
        CHECK(sum == hb.count);
    }
    free(text);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void prometheus_bad_input(void)
{
    strata_cache *c = NULL;
    size_t need = 7;
    char buf[8];
    REQUIRE(strata_cache_new(&c, "memory://", NULL) == 0);
    CHECK_RC(strata_stats_prometheus(NULL, buf, sizeof buf, &need), STRATA_EINVAL);
    CHECK_RC(strata_stats_prometheus(c, NULL, 10, &need), STRATA_EINVAL);
    CHECK_MSG_HAS("buffer is NULL");
    memset(buf, 'x', sizeof buf);
    CHECK_RC(strata_stats_prometheus(c, buf, sizeof buf, &need), STRATA_ETOOBIG);
    CHECK(buf[0] == 'x'); /* nothing written when it does not fit */
    CHECK(need > sizeof buf);
    CHECK_RC(strata_stats_histogram(c, 3, &(strata_histogram){0, 0, {0}}), STRATA_EINVAL);
    CHECK_RC(strata_stats_histogram(c, 0, NULL), STRATA_EINVAL);
    CHECK_RC(strata_stats_histogram(NULL, 0, &(strata_histogram){0, 0, {0}}), STRATA_EINVAL);
    strata_cache_free(c);
}

static void histogram_buckets(void)
{
    static const struct { uint64_t ns; unsigned bucket; } cases[] = {
        {0, 0}, {1, 0}, {1000, 0}, {1001, 1}, {2000, 1}, {2001, 2}, {4000, 2}, {1000000, 10},
        {1024000, 10}, {1024001, 11}, {33554432000ull, 25}, {33554432001ull, 26}, {UINT64_MAX / 2, 26}, {UINT64_MAX - 1000, 26},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned b = strata__hist_bucket(cases[i].ns);
        if (b != cases[i].bucket)
            fprintf(stderr, "  %llu ns -> bucket %u, want %u\n", (unsigned long long)cases[i].ns, b,
                    cases[i].bucket);
        CHECK(b == cases[i].bucket);
        /* The bound it reports covers the value, the bound below does not. */
        if (cases[i].bucket < STRATA_HISTOGRAM_BUCKETS - 1)
            CHECK((double)cases[i].ns <= strata__hist_le_seconds(b) * 1e9 + 0.5);
        if (b > 0 && b < STRATA_HISTOGRAM_BUCKETS - 1)
            CHECK((double)cases[i].ns > strata__hist_le_seconds(b - 1) * 1e9);
    }
}

static strata__hist shared_hist;

static void *record_many(void *arg)
{
    uint64_t i, seed = (uint64_t)(size_t)arg;
    for (i = 0; i < 100000; i++)
        strata__hist_record(&shared_hist, (i * 2654435761u + seed) % 5000000);
    return NULL;
}

/* Lock-free recording loses nothing under contention. */
static void histogram_concurrent(void)
{
    pthread_t t[4];
    strata_histogram h;
    size_t i;
    memset(&shared_hist, 0, sizeof shared_hist);
    for (i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, record_many, (void *)(i + 1));
    for (i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    strata__hist_read(&shared_hist, &h);
    CHECK(h.count == 400000);
}

/* Version 1 and 2 callers get their prefix and nothing past it. */
static void stats_versions(void)
{
    strata_cache *c = NULL;
    strata_stats s;
    REQUIRE(strata_cache_new(&c, "memory://", NULL) == 0);
    CHECK_RC(strata_set(c, K("a"), K("b"), 0), 0);
    memset(&s, 0xAB, sizeof s);
    CHECK_RC(strata_stats_get(c, &s, 1), 0);
    CHECK(s.version == 1 && s.sets == 1);
    CHECK(s.breaker_state == 0xABABABABABABABABull && s.tag_fetches == 0xABABABABABABABABull);
    CHECK_RC(strata_stats_get(c, &s, 2), 0);
    CHECK(s.version == 2 && s.breaker_state == 0 && s.tag_fetches == 0);
    CHECK(s.wb_journal_skipped == 0xABABABABABABABABull && s.payload_crc_errors == 0xABABABABABABABABull);
    CHECK_RC(strata_stats_get(c, &s, 3), 0);
    CHECK(s.version == 3 && s.wb_journal_skipped == 0 && s.wb_dead_trimmed == 0 && s.payload_crc_errors == 0 &&
          s.l1_fills_refused == 0);
    CHECK_RC(strata_stats_get(c, &s, STRATA_STATS_VERSION + 1), STRATA_EVERSION);
    strata_cache_free(c);
}

/* Loads a host ran itself (lookup, its loader, fill) count like get_or_load's. */
static void record_load_from_a_host(void)
{
    strata_cache *c = NULL;
    strata_stats s;
    strata_histogram h;
    REQUIRE(strata_cache_new(&c, "memory://", NULL) == 0);
    CHECK_RC(strata_record_load(c, 0, 1500000), 0);  /* 1.5 ms */
    CHECK_RC(strata_record_load(c, 1, 3000), 0);     /* 3 us, failed */
    CHECK_RC(strata_record_load(NULL, 0, 1), STRATA_EINVAL);
    CHECK_RC(strata_record_load(c, 0, -1), STRATA_EINVAL);
    CHECK_MSG_HAS("duration_ns");
    CHECK_RC(strata_stats_get(c, &s, STRATA_STATS_VERSION), 0);
    CHECK(s.loads == 2 && s.load_errors == 1);
    CHECK_RC(strata_stats_histogram(c, STRATA_HISTOGRAM_LOAD, &h), 0);
    CHECK(h.count == 2 && h.sum_ns == 1503000);
    CHECK(h.buckets[strata__hist_bucket(3000)] == 1 && h.buckets[strata__hist_bucket(1500000)] == 1);
    strata_cache_free(c);
}

/* A host's own get_or_load (lookup, loader, fill) shows in the get histogram
 * like C's: lookups past L1 are timed, L1 hits are not. */
static void lookup_is_timed_past_l1(void)
{
    strata_cache *c = NULL;
    strata_value v = STRATA_VALUE_INIT;
    strata_ticket *t = NULL;
    strata_histogram h;
    REQUIRE(strata_cache_new(&c, "memory://?l1=1", NULL) == 0);
    CHECK_RC(strata_set(c, K("here"), K("v"), 0), 0);
    CHECK_RC(strata_lookup(c, K("here"), &v, &t), STRATA_OK); /* from L1 */
    CHECK(v.level == STRATA_LEVEL_L1 && t == NULL);
    CHECK_RC(strata_stats_histogram(c, STRATA_HISTOGRAM_GET, &h), 0);
    CHECK(h.count == 0);
    CHECK_RC(strata_lookup(c, K("absent"), &v, &t), STRATA_MISS_LEAD);
    CHECK_RC(strata_abandon(t), 0);
    CHECK_RC(strata_stats_histogram(c, STRATA_HISTOGRAM_GET, &h), 0);
    CHECK(h.count == 1);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

/* Breaker state: closed, open after failures, half-open once the cooldown ends. */
static void breaker_state(void)
{
    strata_cache *c = NULL;
    strata_value v = STRATA_VALUE_INIT;
    strata_stats s;
    int64_t deadline;
    int i;
    /* Port 1 on loopback refuses at once. */
    REQUIRE(strata_cache_new(&c, "redis://127.0.0.1:1?breaker_threshold=2&breaker_cooldown_ms=300"
                                 "&timeout_ms=200&connect_timeout_ms=200", NULL) == 0);
    CHECK_RC(strata_stats_get(c, &s, STRATA_STATS_VERSION), 0);
    CHECK(s.breaker_state == 0);
    for (i = 0; i < 3; i++)
        strata_get(c, K("k"), &v);
    CHECK_RC(strata_stats_get(c, &s, STRATA_STATS_VERSION), 0);
    CHECK(s.breaker_state == 1 && s.breaker_opens == 1);
    deadline = strata__now_mono_ms() + 5000;
    do {
        strata__sleep_ms(20);
        CHECK_RC(strata_stats_get(c, &s, STRATA_STATS_VERSION), 0);
    } while (s.breaker_state == 1 && strata__now_mono_ms() < deadline);
    CHECK(s.breaker_state == 2);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"checker_rejects_bad_text", checker_rejects_bad_text},
        {"prometheus_matches_stats", prometheus_matches_stats},
        {"prometheus_bad_input", prometheus_bad_input},
        {"histogram_buckets", histogram_buckets},
        {"histogram_concurrent", histogram_concurrent},
        {"stats_versions", stats_versions},
        {"breaker_state", breaker_state},
        {"record_load_from_a_host", record_load_from_a_host},
        {"lookup_is_timed_past_l1", lookup_is_timed_past_l1},
    };
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
