/* URL and options parsing. Every rejection names the offending part. */
#include "config.h"
#include "error.h"

#include <ctype.h>
#include <stdio.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define MAX_URL 4096

/* Bytes of an older strata_options: version 1 ends before tag_cache_ms,
 * version 2 before l1_bus. */
static size_t options_size(unsigned int version)
{
    return version == 1 ? offsetof(strata_options, tag_cache_ms)
         : version == 2 ? offsetof(strata_options, l1_bus) : sizeof(strata_options);
}

int strata_options_init(strata_options *opts, unsigned int version)
{
    static const strata_options defaults = STRATA_OPTIONS_INIT;
    if (opts == NULL)
        return strata__error(STRATA_EINVAL, "options pointer is NULL");
    if (version < 1 || version > STRATA_OPTIONS_VERSION)
        return strata__error(STRATA_EVERSION, "unknown strata_options version %u (this library knows 1-%d)",
                             version, STRATA_OPTIONS_VERSION);
    memcpy(opts, &defaults, options_size(version));
    opts->version = version;
    return 0;
}

int strata_set_options_init(strata_set_options *opts, unsigned int version)
{
    static const strata_set_options defaults = STRATA_SET_OPTIONS_INIT;
    return strata__struct_init(opts, sizeof *opts, &defaults, "strata_set_options", version,
                               STRATA_SET_OPTIONS_VERSION);
}

static int valid_ns(const char *ns, size_t len)
{
    size_t i;
    if (len == 0 || len > STRATA__MAX_NS)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)ns[i];
        if (!(isalnum(c) || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static int set_ns(strata__config *cfg, const char *ns, size_t len)
{
    if (!valid_ns(ns, len))
        return strata__error(STRATA_EOPTION,
            "option ns: namespace must be 1-%d characters of [A-Za-z0-9_.-], got \"%.*s\"",
            STRATA__MAX_NS, (int)(len > 80 ? 80 : len), ns);
    memcpy(cfg->ns, ns, len);
    cfg->ns[len] = '\0';
    cfg->nslen = len;
    return 0;
}

/* Write-behind ranges (docs/WRITE-BEHIND.md). */
static int validate_write_behind(const strata_options *o)
{
#define RANGE(f, lo, hi) if ((long long)o->f < (long long)(lo) || (long long)o->f > (long long)(hi)) \
        return strata__error(STRATA_EOPTION, "option " #f ": must be %lld-%lld, got %lld", \
                             (long long)(lo), (long long)(hi), (long long)o->f)
    RANGE(wb_threads, 0, 16);
    RANGE(wb_batch_size, 1, 100000);
    RANGE(wb_interval_ms, 1, 3600000);
    RANGE(wb_max_attempts, 1, 1000000);
    RANGE(wb_retry_ms, 1, 3600000);
    RANGE(wb_retry_max_ms, o->wb_retry_ms, 86400000);
    RANGE(wb_max_backlog, 1, (uint64_t)1 << 40);
    RANGE(wb_block_ms, 0, 3600000);
    RANGE(wb_claim_ms, 1, 86400000);
    RANGE(wb_drain_ms, 0, 3600000);
    RANGE(wb_fsync, STRATA_WB_FSYNC_ALWAYS, STRATA_WB_FSYNC_NONE);
#undef RANGE
    if (o->wb_journal && (o->wb_journal[0] == '\0' || strlen(o->wb_journal) >= 1024))
        return strata__error(STRATA_EOPTION, "option wb_journal: path must be 1-1023 bytes");
    if (o->wb_consumer && (o->wb_consumer[0] == '\0' || strlen(o->wb_consumer) >= 128))
        return strata__error(STRATA_EOPTION, "option wb_consumer: name must be 1-127 bytes");
    return 0;
}

/* Range checks shared by the struct and the URL. */
static int validate(strata__config *cfg)
{
    const strata_options *o = &cfg->opts;
    int rc;
    /* Every ms option is bounded by STRATA_MAX_MS: sums with clocks never overflow. */
#define MS_IN(f, lo) if ((rc = strata__check_ms(STRATA_EOPTION, "option " #f ":", o->f, lo)) < 0) return rc
    MS_IN(ttl_ms, 1);
    MS_IN(stale_ms, 0);
    MS_IN(neg_ttl_ms, 1);
    MS_IN(timeout_ms, 1);
    MS_IN(connect_timeout_ms, 1);
    MS_IN(l1_ttl_ms, 1);
    MS_IN(lease_ttl_ms, 1);
    MS_IN(lock_wait_ms, 0);
    MS_IN(breaker_cooldown_ms, 0);
    MS_IN(tag_cache_ms, 0);
#undef MS_IN
    if (o->jitter_pct > 50)
        return strata__error(STRATA_EOPTION, "option jitter_pct: must be 0-50, got %u", o->jitter_pct);
    if (o->pool_size < 1 || o->pool_size > 1024)
        return strata__error(STRATA_EOPTION, "option pool_size: must be 1-1024, got %u", o->pool_size);
    if (o->l1 != 0 && o->l1 != 1)
        return strata__error(STRATA_EOPTION, "option l1: must be 0 or 1, got %d", o->l1);
    if (o->l1_admission < STRATA_L1_ALL || o->l1_admission > STRATA_L1_NONE)
        return strata__error(STRATA_EOPTION, "option l1_admission: unknown mode %d", o->l1_admission);
    if (o->wait_policy < STRATA_WAIT_STALE_OR_LOAD || o->wait_policy > STRATA_WAIT_FAIL)
        return strata__error(STRATA_EOPTION, "option wait_policy: unknown policy %d", o->wait_policy);
    if (!(o->xfetch_beta >= 0 && o->xfetch_beta <= 100))
        return strata__error(STRATA_EOPTION, "option xfetch_beta: must be 0-100, got %g", o->xfetch_beta);
    if (o->max_bytes < 1024)
        return strata__error(STRATA_EOPTION, "option max_bytes: must be >= 1024, got %llu",
                             (unsigned long long)o->max_bytes);
    if (o->l1 && (o->l1_max_bytes < 1024 || o->l1_max_entries < 1))
        return strata__error(STRATA_EOPTION, "option l1_max_bytes/l1_max_entries: too small for an L1");
    if ((rc = validate_write_behind(o)) < 0)
        return rc;
    if (cfg->scheme == STRATA__SCHEME_REDIS && o->wb_journal)
        return strata__error(STRATA_EOPTION, "option wb_journal: redis:// journals write-behind in a stream; "
                             "the journal file is for memory:// and memcached://");
    if (cfg->scheme == STRATA__SCHEME_REDIS && cfg->wb_journal_compact_bytes)
        return strata__error(STRATA_EOPTION, "option wb_journal_compact_bytes: redis:// has no journal file "
                             "(the stream is trimmed as records are acknowledged)");
    if (cfg->scheme != STRATA__SCHEME_REDIS && o->wb_consumer)
        return strata__error(STRATA_EOPTION, "option wb_consumer: only for redis:// (consumer groups)");
    if ((rc = strata__validate_cluster(cfg)) < 0)
        return rc;
    return strata__validate_hot(cfg);
}

/* --- number parsing for query values --- */

static int parse_i64(const char *name, const char *v, size_t len, int64_t min, int64_t max, int64_t *out)
{
    char buf[32], *end;
    long long x;
    if (len == 0 || len >= sizeof buf)
        return strata__error(STRATA_EOPTION, "option %s: expected an integer, got \"%.*s\"",
                             name, (int)(len > 40 ? 40 : len), v);
    memcpy(buf, v, len);
    buf[len] = '\0';
    errno = 0;
    x = strtoll(buf, &end, 10);
    if (errno || *end != '\0' || !(isdigit((unsigned char)buf[0]) || buf[0] == '-'))
        return strata__error(STRATA_EOPTION, "option %s: expected an integer, got \"%s\"", name, buf);
    if (x < min || x > max)
        return strata__error(STRATA_EOPTION, "option %s: %lld is out of range %lld-%lld",
                             name, x, (long long)min, (long long)max);
    *out = x;
    return 0;
}

static int parse_double(const char *name, const char *v, size_t len, double *out)
{
    char buf[32], *end;
    double x;
    if (len == 0 || len >= sizeof buf)
        return strata__error(STRATA_EOPTION, "option %s: expected a number", name);
    memcpy(buf, v, len);
    buf[len] = '\0';
    errno = 0;
    x = strtod(buf, &end);
    if (errno || *end != '\0' || !isfinite(x))
        return strata__error(STRATA_EOPTION, "option %s: expected a number, got \"%s\"", name, buf);
    *out = x;
    return 0;
}

static int word_is(const char *v, size_t len, const char *w)
{
    return strlen(w) == len && memcmp(v, w, len) == 0;
}

static int parse_enum(const char *name, const char *v, size_t len, const char *const *words, int *out)
{
    int i;
    for (i = 0; words[i]; i++) {
        if (word_is(v, len, words[i])) {
            *out = i;
            return 0;
        }
    }
    return strata__error(STRATA_EOPTION, "option %s: unknown value \"%.*s\"", name,
                         (int)(len > 40 ? 40 : len), v);
}

#define MS_MAX STRATA_MAX_MS /* 366 days */

static int decode_part(const char *what, const char *src, size_t len, char *dst, size_t dstsize);

/* wb_* query options; ranges are checked by validate_write_behind. */
static int apply_write_behind_option(strata__config *cfg, const char *name, const char *v, size_t vlen)
{
    strata_options *o = &cfg->opts;
    static const char *const fsyncs[] = {"always", "interval", "none", NULL};
    int64_t x;
    int rc, e;
#define NUM(field, hi) if (strcmp(name, #field) == 0) { \
        if ((rc = parse_i64(name, v, vlen, 0, hi, &x)) == 0) \
            o->field = x; \
        return rc; \
    }
    NUM(wb_threads, 16)
    NUM(wb_batch_size, 100000)
    NUM(wb_interval_ms, MS_MAX)
    NUM(wb_max_attempts, 1000000)
    NUM(wb_retry_ms, MS_MAX)
    NUM(wb_retry_max_ms, MS_MAX)
    NUM(wb_max_backlog, INT64_MAX)
    NUM(wb_block_ms, MS_MAX)
    NUM(wb_claim_ms, MS_MAX)
    NUM(wb_drain_ms, MS_MAX)
#undef NUM
    /* housekeeping, URL only */
#define CFG_NUM(field, lo, hi) if (strcmp(name, #field) == 0) { \
        if ((rc = parse_i64(name, v, vlen, lo, hi, &x)) == 0) \
            cfg->field = x; \
        return rc; \
    }
    CFG_NUM(wb_journal_compact_bytes, 4096, (int64_t)1 << 40)
    CFG_NUM(wb_dead_max, 0, (int64_t)1 << 40)
    CFG_NUM(wb_dead_max_age_ms, 0, MS_MAX)
#undef CFG_NUM
    if (strcmp(name, "wb_fsync") == 0) {
        if ((rc = parse_enum(name, v, vlen, fsyncs, &e)) == 0)
            o->wb_fsync = e;
        return rc;
    }
    if (strcmp(name, "wb_journal") == 0) {
        if (vlen == 0) /* not "no journal": leave the option out for that */
            return strata__error(STRATA_EOPTION, "option wb_journal: empty path (leave the option out to "
                                 "run without a journal, whose writes do not survive a crash)");
        if ((rc = decode_part("option wb_journal", v, vlen, cfg->wb_journal, sizeof cfg->wb_journal)) == 0)
            o->wb_journal = cfg->wb_journal[0] ? cfg->wb_journal : NULL;
        return rc < 0 ? strata__error(STRATA_EOPTION, "%s", strata_error_last()) : 0;
    }
    if (strcmp(name, "wb_consumer") == 0) {
        if ((rc = decode_part("option wb_consumer", v, vlen, cfg->wb_consumer, sizeof cfg->wb_consumer)) == 0)
            o->wb_consumer = cfg->wb_consumer[0] ? cfg->wb_consumer : NULL;
        return rc < 0 ? strata__error(STRATA_EOPTION, "%s", strata_error_last()) : 0;
    }
    return strata__error(STRATA_EOPTION, "unknown option \"%s\"", name);
}

static int apply_option(strata__config *cfg, const char *k, size_t klen, const char *v, size_t vlen)
{
    strata_options *o = &cfg->opts;
    int64_t x;
    int rc = 0, e;
    char name[40];
    static const char *const onoff[] = {"0", "1", NULL};
    static const char *const admission[] = {"all", "hot", "none", NULL};
    static const char *const policies[] = {"stale_or_load", "load", "fail", NULL};

    if (klen == 0 || klen >= sizeof name)
        return strata__error(STRATA_EOPTION, "unknown option \"%.*s\"", (int)(klen > 40 ? 40 : klen), k);
    memcpy(name, k, klen);
    name[klen] = '\0';

#define MS(field) if (strcmp(name, #field) == 0) { \
        rc = parse_i64(name, v, vlen, 0, MS_MAX, &x); \
        if (rc == 0) \
            o->field = x; \
        return rc; \
    }
#define UINT(field, lo, hi) if (strcmp(name, #field) == 0) { \
        rc = parse_i64(name, v, vlen, lo, hi, &x); \
        if (rc == 0) \
            o->field = (unsigned int)x; \
        return rc; \
    }
    MS(ttl_ms)
    MS(stale_ms)
    MS(neg_ttl_ms)
    MS(timeout_ms)
    MS(connect_timeout_ms)
    MS(l1_ttl_ms)
    MS(lease_ttl_ms)
    MS(lock_wait_ms)
    MS(breaker_cooldown_ms)
    MS(tag_cache_ms)
    UINT(jitter_pct, 0, 50)
    UINT(pool_size, 1, 1024)
    UINT(l1_max_entries, 1, 100000000)
    UINT(breaker_threshold, 0, 1000000)
    MS(coherence_ping_ms)
    UINT(hot_sketch_width, 0, STRATA__HOT_MAX_WIDTH)
    UINT(hot_window, 1, STRATA__HOT_MAX_WINDOW)
    UINT(hot_threshold, 1, 255)
    UINT(hot_top, 0, STRATA__HOT_MAX_TOP)
#undef MS
#undef UINT
    if (strcmp(name, "ns") == 0 || strcmp(name, "namespace") == 0) {
        /* Decoded first, so an error shows the namespace as the caller wrote it. */
        char ns[3 * STRATA__MAX_NS + 1];
        if (vlen >= sizeof ns)
            return set_ns(cfg, v, vlen);
        if ((rc = decode_part("option ns", v, vlen, ns, sizeof ns)) < 0)
            return rc;
        return set_ns(cfg, ns, strlen(ns));
    }
    if (strcmp(name, "max_bytes") == 0 || strcmp(name, "l1_max_bytes") == 0) {
        if ((rc = parse_i64(name, v, vlen, 0, INT64_MAX, &x)) == 0)
            *(name[0] == 'm' ? &o->max_bytes : &o->l1_max_bytes) = (uint64_t)x;
        return rc;
    }
    if (strcmp(name, "payload_crc") == 0) { /* docs/FORMAT.md: CRC32C of each payload written */
        if ((rc = parse_enum(name, v, vlen, onoff, &e)) == 0) cfg->payload_crc = e;
        return rc;
    }
    if (strcmp(name, "l1") == 0) {
        if ((rc = parse_enum(name, v, vlen, onoff, &e)) == 0) o->l1 = e;
        return rc;
    }
    if (strcmp(name, "l1_bus") == 0) {
        /* percent-decoded like wb_journal, so a bus URL with credentials fits in a query */
        char bus[sizeof cfg->l1_bus];
        if ((rc = decode_part("option l1_bus", v, vlen, bus, sizeof bus)) < 0)
            return rc;
        return strata__set_l1_bus(cfg, bus, strlen(bus));
    }
    if (strcmp(name, "tracking") == 0) {
        if ((rc = parse_enum(name, v, vlen, onoff, &e)) == 0) o->tracking = e;
        return rc;
    }
    if (strcmp(name, "l1_admission") == 0) {
        if ((rc = parse_enum(name, v, vlen, admission, &e)) == 0) o->l1_admission = e;
        return rc;
    }
    if (strcmp(name, "wait_policy") == 0) {
        if ((rc = parse_enum(name, v, vlen, policies, &e)) == 0) o->wait_policy = e;
        return rc;
    }
    if (strcmp(name, "xfetch_beta") == 0)
        return parse_double(name, v, vlen, &o->xfetch_beta);
    if (strcmp(name, "hot_compare") == 0) {
        rc = parse_i64(name, v, vlen, 0, 1, &x);
        if (rc == 0)
            cfg->hot_compare = (int)x;
        return rc;
    }
    if (strcmp(name, "hot_sample") == 0) {
        rc = parse_i64(name, v, vlen, 1, 256, &x);
        if (rc == 0 && (x & (x - 1)) != 0)
            rc = strata__error(STRATA_EOPTION, "option hot_sample: must be a power of two (1-256), got %lld",
                               (long long)x);
        if (rc == 0)
            cfg->hot_sample = (unsigned int)x;
        return rc;
    }
    if (strcmp(name, "io") == 0) {
        static const char *const io_modes[] = {"pool", "host", NULL};
        if (cfg->scheme != STRATA__SCHEME_REDIS)
            return strata__error(STRATA_EOPTION, "option io: only for redis:// URLs");
        if ((rc = parse_enum(name, v, vlen, io_modes, &e)) == 0) cfg->io_host = e;
        return rc;
    }
    if (strcmp(name, "refresh_threads") == 0) {
        rc = parse_i64(name, v, vlen, 0, 16, &x);
        if (rc == 0)
            cfg->refresh_threads = (unsigned int)x;
        return rc;
    }
    if (strncmp(name, "wb_", 3) == 0)
        return apply_write_behind_option(cfg, name, v, vlen);
    if (strcmp(name, "db") == 0) {
        if (cfg->scheme != STRATA__SCHEME_REDIS)
            return strata__error(STRATA_EOPTION, "option db: only for redis:// URLs");
        if ((rc = parse_i64(name, v, vlen, 0, 1000000, &x)) == 0) cfg->db = (int)x;
        return rc;
    }
    return strata__error(STRATA_EOPTION, "unknown option \"%s\"", name);
}

static int parse_query(strata__config *cfg, const char *q, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t start = i, eq = 0, end;
        int have_eq = 0, rc;
        while (i < len && q[i] != '&') {
            if (q[i] == '=' && !have_eq) {
                have_eq = 1;
                eq = i;
            }
            i++;
        }
        end = i++;
        if (end == start)
            continue; /* tolerate "a=1&&b=2" and a trailing '&' */
        if (!have_eq)
            return strata__error(STRATA_EOPTION, "option \"%.*s\" has no value (expected name=value)",
                                 (int)(end - start > 40 ? 40 : end - start), q + start);
        rc = apply_option(cfg, q + start, eq - start, q + eq + 1, end - eq - 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* --- URL --- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src into dst (NUL-terminated). */
static int decode_part(const char *what, const char *src, size_t len, char *dst, size_t dstsize)
{
    size_t i, o = 0;
    for (i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len)
                return strata__error(STRATA_EURL, "bad percent-escape in URL %s", what);
            hi = hexval(src[i + 1]);
            lo = hexval(src[i + 2]);
            if (hi < 0 || lo < 0)
                return strata__error(STRATA_EURL, "bad percent-escape in URL %s", what);
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return strata__error(STRATA_EURL, "NUL byte in URL %s", what);
            i += 2;
        }
        if (o + 1 >= dstsize)
            return strata__error(STRATA_EURL, "URL %s is too long", what);
        dst[o++] = c;
    }
    dst[o] = '\0';
    return 0;
}

static int parse_server(strata__config *cfg, const char *s, size_t len, int default_port)
{
    strata__server *srv;
    const char *host = s, *colon = NULL;
    size_t hostlen, i;
    int64_t port = default_port;

    if (cfg->nservers >= STRATA__MAX_SERVERS)
        return strata__error(STRATA_EURL, "too many servers in URL (at most %d)", STRATA__MAX_SERVERS);
    if (len == 0)
        return strata__error(STRATA_EURL, "empty host in URL");
    if (s[0] == '[') { /* [ipv6]:port */
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return strata__error(STRATA_EURL, "unterminated '[' in URL host");
        host = s + 1;
        hostlen = (size_t)(close - host);
        if ((size_t)(close + 1 - s) < len) {
            if (close[1] != ':')
                return strata__error(STRATA_EURL, "expected ':' after ']' in URL host");
            colon = close + 1;
        }
    } else {
        colon = memchr(s, ':', len);
        hostlen = colon ? (size_t)(colon - s) : len;
    }
    if (hostlen == 0 || hostlen >= sizeof srv->host)
        return strata__error(STRATA_EURL, "bad host \"%.*s\" in URL", (int)(len > 80 ? 80 : len), s);
    for (i = 0; i < hostlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!(isalnum(c) || c == '.' || c == '-' || c == '_' || c == ':'))
            return strata__error(STRATA_EURL, "bad character in URL host \"%.*s\"",
                                 (int)(hostlen > 80 ? 80 : hostlen), host);
    }
    if (colon) {
        size_t plen = len - (size_t)(colon + 1 - s);
        char buf[8];
        char *end;
        if (plen == 0 || plen >= sizeof buf)
            return strata__error(STRATA_EURL, "bad port in URL \"%.*s\"", (int)(len > 80 ? 80 : len), s);
        memcpy(buf, colon + 1, plen);
        buf[plen] = '\0';
        port = strtol(buf, &end, 10);
        if (*end != '\0' || !isdigit((unsigned char)buf[0]) || port < 1 || port > 65535)
            return strata__error(STRATA_EURL, "bad port \"%s\" in URL (1-65535)", buf);
    }
    srv = &cfg->servers[cfg->nservers++];
    memcpy(srv->host, host, hostlen);
    srv->host[hostlen] = '\0';
    srv->port = (int)port;
    return 0;
}

/* The struct's strings are borrowed for strata_cache_new only: keep copies. */
static int copy_wb_strings(strata__config *cfg)
{
    strata_options *o = &cfg->opts;
    if (o->wb_journal) {
        if (strlen(o->wb_journal) >= sizeof cfg->wb_journal)
            return strata__error(STRATA_EOPTION, "option wb_journal: path must be 1-1023 bytes");
        snprintf(cfg->wb_journal, sizeof cfg->wb_journal, "%s", o->wb_journal);
        o->wb_journal = cfg->wb_journal;
    }
    if (o->wb_consumer) {
        if (strlen(o->wb_consumer) >= sizeof cfg->wb_consumer)
            return strata__error(STRATA_EOPTION, "option wb_consumer: name must be 1-127 bytes");
        snprintf(cfg->wb_consumer, sizeof cfg->wb_consumer, "%s", o->wb_consumer);
        o->wb_consumer = cfg->wb_consumer;
    }
    return 0;
}

int strata__config_parse(strata__config *cfg, const char *url, const strata_options *opts)
{
    const char *p, *query, *end, *at, *slash;
    size_t urllen;
    int rc;

    memset(cfg, 0, sizeof *cfg);
    cfg->hot_sample = STRATA__HOT_SAMPLE_DEFAULT;
    cfg->hot_compare = 1;
    if (opts == NULL) {
        strata_options_init(&cfg->opts, STRATA_OPTIONS_VERSION);
    } else if (opts->version < 1 || opts->version > STRATA_OPTIONS_VERSION) {
        return strata__error(STRATA_EVERSION, "unknown strata_options version %u (this library knows 1-%d)",
                             opts->version, STRATA_OPTIONS_VERSION);
    } else {
        /* An older struct is shorter: the fields it lacks keep their defaults. */
        strata_options_init(&cfg->opts, STRATA_OPTIONS_VERSION);
        memcpy(&cfg->opts, opts, options_size(opts->version));
        cfg->opts.version = STRATA_OPTIONS_VERSION;
    }
    if ((rc = set_ns(cfg, "strata", 6)) < 0)
        return rc;
    if ((rc = copy_wb_strings(cfg)) < 0)
        return rc;
    if (cfg->opts.ns && (rc = set_ns(cfg, cfg->opts.ns, strlen(cfg->opts.ns))) < 0)
        return rc;
    if (cfg->opts.l1_bus && (rc = strata__set_l1_bus(cfg, cfg->opts.l1_bus, strlen(cfg->opts.l1_bus))) < 0)
        return rc;

    if (url == NULL || *url == '\0')
        url = "memory://";
    urllen = strlen(url);
    if (urllen > MAX_URL)
        return strata__error(STRATA_EURL, "URL is longer than %d bytes", MAX_URL);
    for (p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f)
            return strata__error(STRATA_EURL, "URL contains whitespace or a control character");

    if (strncmp(url, "memory://", 9) == 0) {
        cfg->scheme = STRATA__SCHEME_MEMORY;
        p = url + 9;
    } else if (strncmp(url, "redis://", 8) == 0) {
        cfg->scheme = STRATA__SCHEME_REDIS;
        p = url + 8;
    } else if (strncmp(url, "redis+cluster://", 16) == 0) {
        cfg->scheme = STRATA__SCHEME_REDIS;
        cfg->cluster = 1;
        p = url + 16;
    } else if (strncmp(url, "memcached://", 12) == 0) {
        cfg->scheme = STRATA__SCHEME_MEMCACHED;
        p = url + 12;
    } else {
        const char *sep = strstr(url, "://");
        if (sep == NULL)
            return strata__error(STRATA_EURL, "URL \"%.80s\" has no scheme (memory://, redis://, redis+cluster://, memcached://)", url);
        return strata__error(STRATA_EURL, "unsupported URL scheme \"%.*s\" (memory, redis, redis+cluster, memcached)",
                             (int)(sep - url > 40 ? 40 : sep - url), url);
    }

    end = url + urllen;
    query = strchr(p, '?');
    if (query == NULL)
        query = end;

    if (cfg->scheme == STRATA__SCHEME_MEMORY) {
        /* memory://NAME shares one in-process store among the caches that name it. */
        size_t i, n = (size_t)(query - p);
        if (n >= sizeof cfg->servers[0].host)
            return strata__error(STRATA_EURL, "memory:// store name is too long");
        for (i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if (!(isalnum(c) || c == '_' || c == '.' || c == '-'))
                return strata__error(STRATA_EURL, "memory:// store name must be [A-Za-z0-9_.-], got \"%.*s\"",
                                     (int)(n > 80 ? 80 : n), p);
        }
        memcpy(cfg->servers[0].host, p, n);
        cfg->servers[0].host[n] = '\0';
        cfg->nservers = n ? 1 : 0;
    } else {
        const char *hosts = p, *hostsend = query;
        at = memchr(p, '@', (size_t)(query - p));
        if (at) {
            const char *colon;
            if (cfg->scheme != STRATA__SCHEME_REDIS)
                return strata__error(STRATA_EURL, "credentials are only supported in redis:// URLs");
            colon = memchr(p, ':', (size_t)(at - p));
            if (colon) {
                if ((rc = decode_part("user", p, (size_t)(colon - p), cfg->user, sizeof cfg->user)) < 0 ||
                    (rc = decode_part("password", colon + 1, (size_t)(at - colon - 1), cfg->password,
                                      sizeof cfg->password)) < 0)
                    return rc;
            } else if ((rc = decode_part("password", p, (size_t)(at - p), cfg->password, sizeof cfg->password)) < 0) {
                return rc;
            }
            hosts = at + 1;
        }
        slash = memchr(hosts, '/', (size_t)(query - hosts));
        if (slash) {
            hostsend = slash;
            if (slash + 1 < query) {
                int64_t db;
                if (cfg->scheme != STRATA__SCHEME_REDIS)
                    return strata__error(STRATA_EURL, "a path (\"/%.*s\") is only valid in redis:// URLs (database number)",
                                         (int)(query - slash - 1), slash + 1);
                if ((rc = parse_i64("db", slash + 1, (size_t)(query - slash - 1), 0, 1000000, &db)) < 0)
                    return strata__error(STRATA_EURL, "bad database number \"%.*s\" in URL",
                                         (int)(query - slash - 1 > 20 ? 20 : query - slash - 1), slash + 1);
                cfg->db = (int)db;
            }
        }
        if (hostsend == hosts)
            return strata__error(STRATA_EURL, "URL has no host");
        if (cfg->scheme == STRATA__SCHEME_REDIS && !cfg->cluster) {
            if (memchr(hosts, ',', (size_t)(hostsend - hosts)))
                return strata__error(STRATA_EURL, "redis:// takes one host:port (a cluster's seeds: "
                                     "redis+cluster://h1:p1,h2:p2)");
            if ((rc = parse_server(cfg, hosts, (size_t)(hostsend - hosts), 6379)) < 0)
                return rc;
        } else {
            const char *s = hosts;
            while (s <= hostsend) {
                const char *comma = memchr(s, ',', (size_t)(hostsend - s));
                const char *e = comma ? comma : hostsend;
                if ((rc = parse_server(cfg, s, (size_t)(e - s), cfg->cluster ? 6379 : 11211)) < 0)
                    return rc;
                if (!comma)
                    break;
                s = comma + 1;
            }
        }
    }

    if (query < end && (rc = parse_query(cfg, query + 1, (size_t)(end - query - 1))) < 0)
        return rc;
    cfg->opts.ns = cfg->ns;
    cfg->opts.l1_bus = cfg->l1_bus[0] ? cfg->l1_bus : NULL;
    return validate(cfg);
}
