/*
 * strata_stats_prometheus: the stats and histograms in the Prometheus text
 * exposition format (version 0.0.4). Table-driven: a new counter in
 * strata_stats is one row below. Rows of one metric sit together, so each
 * family gets one HELP and one TYPE line.
 */
#include "cache.h"
#include "error.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct stat_row {
    const char *name;   /* after "stratacache_" */
    const char *type;   /* "counter" or "gauge" */
    const char *label;  /* extra label pair, e.g. tier="l1", or "" */
    size_t offset;      /* of a uint64_t in strata_stats */
    const char *help;
} stat_row;

#define F(field) offsetof(strata_stats, field)

static const stat_row rows[] = {
    {"hits_total", "counter", "tier=\"l1\"", F(l1_hits), "Fresh hits, by tier."},
    {"hits_total", "counter", "tier=\"backend\"", F(hits), "Fresh hits, by tier."},
    {"misses_total", "counter", "tier=\"l1\"", F(l1_misses), "Misses, by tier."},
    {"misses_total", "counter", "tier=\"backend\"", F(misses), "Misses, by tier."},
    {"negative_hits_total", "counter", "", F(negative_hits), "Cached \"not found\" entries served."},
    {"stale_served_total", "counter", "", F(stale_hits), "Values served past their freshness."},
    {"sets_total", "counter", "", F(sets), "Values written."},
    {"deletes_total", "counter", "", F(deletes), "Deletes and invalidations."},
    {"loads_total", "counter", "", F(loads), "Loader calls."},
    {"load_errors_total", "counter", "", F(load_errors), "Loader calls that failed."},
    {"backend_errors_total", "counter", "", F(backend_errors), "Backend calls that failed."},
    {"timeouts_total", "counter", "", F(timeouts), "Backend calls that timed out."},
    {"leases_won_total", "counter", "", F(leases_won), "Load leases taken."},
    {"leases_lost_total", "counter", "", F(leases_lost), "Fills refused because the lease was lost."},
    {"lease_waits_total", "counter", "", F(waits), "Lookups that found another loader's lease."},
    {"early_refreshes_total", "counter", "", F(early_refreshes), "XFetch early refreshes."},
    {"singleflight_shared_total", "counter", "", F(singleflight_shared), "Calls that shared another's load."},
    {"breaker_opens_total", "counter", "", F(breaker_opens), "Times the circuit breaker opened."},
    {"breaker_state", "gauge", "", F(breaker_state), "Circuit breaker: 0 closed, 1 open, 2 half-open."},
    {"fail_open_total", "counter", "", F(fail_open), "Loads served from the source while the backend failed."},
    {"l1_entries", "gauge", "tier=\"l1\"", F(l1_entries), "Entries in the in-process tier."},
    {"l1_bytes", "gauge", "tier=\"l1\"", F(l1_bytes), "Bytes in the in-process tier."},
    {"l1_evictions_total", "counter", "tier=\"l1\"", F(l1_evictions), "In-process tier evictions."},
    {"tag_invalidations_total", "counter", "", F(tag_invalidations), "Tag version bumps."},
    {"tag_stale_total", "counter", "", F(tag_stale), "Entries read with an outdated tag stamp."},
    {"tag_fetches_total", "counter", "", F(tag_fetches), "Backend round trips for tag versions."},
    {"invalidations_received_total", "counter", "tier=\"l1\"", F(invalidations_received),
     "L1 evictions asked by the invalidation link."},
    {"l1_flushes_total", "counter", "tier=\"l1\"", F(l1_flushes),
     "Whole-L1 flushes: invalidation link lost, FLUSHDB, fork."},
    {"l1_admission_rejects_total", "counter", "tier=\"l1\"", F(l1_admission_rejects),
     "Fills kept out of L1 by its admission mode."},
    {"l1_link_up", "gauge", "tier=\"l1\"", F(l1_link_up), "1 while the L1 invalidation link is subscribed."},
    {"l1_renewals_total", "counter", "tier=\"l1\"", F(l1_renewals),
     "Hot L1 entries re-read in a background batch before they expired (l1_renew)."},
    {"l1_renew_batches_total", "counter", "tier=\"l1\"", F(l1_renew_batches),
     "Batched backend reads (get_many) of L1 renewal."},
    {"write_behind_enqueued_total", "counter", "", F(wb_enqueued), "Write-behind writes accepted."},
    {"write_behind_flushed_total", "counter", "", F(wb_flushed), "Write-behind records delivered to the writer."},
    {"write_behind_retried_total", "counter", "", F(wb_retried), "Write-behind deliveries retried."},
    {"write_behind_dead_total", "counter", "", F(wb_dead), "Write-behind records dead-lettered."},
    {"write_behind_backlog", "gauge", "", F(wb_backlog), "Write-behind records not yet flushed."},
    {"write_behind_journal_skipped_total", "counter", "", F(wb_journal_skipped),
     "Damaged write-behind journal records skipped at replay (kept in <wb_journal>.corrupt)."},
    {"write_behind_dead_trimmed_total", "counter", "", F(wb_dead_trimmed),
     "Dead letters removed by wb_dead_max / wb_dead_max_age_ms."},
};

typedef struct hist_row {
    const char *name;
    int kind;           /* strata_histogram_kind */
    const char *help;
} hist_row;

static const hist_row hists[] = {
    {"get_seconds", STRATA_HISTOGRAM_GET, "Latency of get, get_or_load and lookup calls that go past L1."},
    {"load_seconds", STRATA_HISTOGRAM_LOAD, "Latency of loader callbacks."},
    {"backend_seconds", STRATA_HISTOGRAM_BACKEND, "Latency of backend commands."},
};

typedef struct out_buf {
    strata__bytes b;
    int failed;
} out_buf;

static void put(out_buf *o, const char *fmt, ...) STRATA__PRINTF(2, 3);

static void put(out_buf *o, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (o->failed)
        return;
    for (;;) {
        size_t room = o->b.cap - o->b.len;
        va_start(ap, fmt);
        n = vsnprintf(o->b.data ? o->b.data + o->b.len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            o->b.len += (size_t)n;
            return;
        }
        if (strata__bytes_reserve(&o->b, o->b.len + (size_t)n + 1) < 0) {
            o->failed = 1;
            return;
        }
    }
}

static void family(out_buf *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP stratacache_%s %s\n# TYPE stratacache_%s %s\n", name, help, name, type);
}

int strata_stats_prometheus(strata_cache *c, char *buf, size_t cap, size_t *needed)
{
    out_buf o;
    strata_stats s;
    const char *ns;
    size_t i;
    unsigned b;
    int rc;

    if (c == NULL)
        return strata__error(STRATA_EINVAL, "cache handle is NULL");
    if (buf == NULL && cap > 0)
        return strata__error(STRATA_EINVAL, "buffer is NULL with capacity %zu", cap);
    if ((rc = strata_stats_get(c, &s, STRATA_STATS_VERSION)) < 0)
        return rc;
    ns = c->cfg.ns; /* [A-Za-z0-9_.-]: nothing to escape in a label value */
    memset(&o, 0, sizeof o);
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const stat_row *r = &rows[i];
        uint64_t v;
        memcpy(&v, (const char *)&s + r->offset, sizeof v);
        if (i == 0 || strcmp(rows[i - 1].name, r->name) != 0)
            family(&o, r->name, r->type, r->help);
        put(&o, "stratacache_%s{namespace=\"%s\"%s%s} %llu\n", r->name, ns, r->label[0] ? "," : "",
            r->label, (unsigned long long)v);
    }
    for (i = 0; i < sizeof hists / sizeof hists[0]; i++) {
        strata_histogram h;
        uint64_t cum = 0;
        strata_stats_histogram(c, hists[i].kind, &h);
        family(&o, hists[i].name, "histogram", hists[i].help);
        for (b = 0; b < STRATA_HISTOGRAM_BUCKETS; b++) {
            cum += h.buckets[b];
            if (b + 1 < STRATA_HISTOGRAM_BUCKETS)
                put(&o, "stratacache_%s_bucket{namespace=\"%s\",le=\"%.9g\"} %llu\n", hists[i].name, ns,
                    strata__hist_le_seconds(b), (unsigned long long)cum);
            else
                put(&o, "stratacache_%s_bucket{namespace=\"%s\",le=\"+Inf\"} %llu\n", hists[i].name, ns,
                    (unsigned long long)cum);
        }
        put(&o, "stratacache_%s_sum{namespace=\"%s\"} %.9f\n", hists[i].name, ns, (double)h.sum_ns / 1e9);
        put(&o, "stratacache_%s_count{namespace=\"%s\"} %llu\n", hists[i].name, ns, (unsigned long long)cum);
    }
    if (o.failed) {
        strata__bytes_free(&o.b);
        return strata__error(STRATA_ENOMEM, "out of memory formatting the metrics");
    }
    if (needed)
        *needed = o.b.len + 1;
    if (o.b.len + 1 > cap) {
        rc = strata__error(STRATA_ETOOBIG, "metrics need %zu bytes, the buffer has %zu", o.b.len + 1, cap);
    } else {
        memcpy(buf, o.b.data, o.b.len);
        buf[o.b.len] = '\0';
        rc = 0;
    }
    strata__bytes_free(&o.b);
    return rc;
}
