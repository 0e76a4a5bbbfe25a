/*
 * The write-behind journal file (memory://; memcached:// uses the same file):
 * a failed append never hides later acknowledged writes, a damaged record
 * costs only itself (kept aside and counted), the file stays bounded while
 * the backlog never empties (dead-letter trimming: test_write, every backend).
 */
#define _GNU_SOURCE
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define K(s) (s), strlen(s)

static char tmpdir[256];
static unsigned counter;

static const char *fresh_ns(void)
{
    static char ns[64];
    snprintf(ns, sizeof ns, "j%d-%u", (int)getpid(), counter++);
    return ns;
}

static const char *path_of(const char *ns, const char *suffix)
{
    static char p[2][512];
    static int which;
    which ^= 1;
    snprintf(p[which], sizeof p[which], "%s/%s.journal%s", tmpdir, ns, suffix);
    return p[which];
}

static strata_cache *open_journal(const char *ns, const char *query)
{
    strata_cache *c = NULL;
    char u[1200];
    snprintf(u, sizeof u, "memory://%s?ns=%s&wb_threads=0&wb_journal=%s%s%s", ns, ns, path_of(ns, ""),
             query ? "&" : "", query ? query : "");
    if (strata_cache_new(&c, u, NULL) != 0) {
        fprintf(stderr, "  cannot open %s: %s\n", u, strata_error_last());
        return NULL;
    }
    return c;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Polls everything due and acks it; "key=value" pairs into out, sorted by poll order. */
static int drain(strata_cache *c, char *out, size_t outsize)
{
    strata_wb_batch *b = NULL;
    int n = 0;
    out[0] = '\0';
    while (strata_wb_poll(c, 1000, &b) == STRATA_OK) {
        size_t i;
        for (i = 0; i < strata_wb_batch_count(b); i++) {
            const char *k, *v;
            size_t kl, vl, used = strlen(out);
            strata_wb_batch_item(b, i, &k, &kl, &v, &vl);
            snprintf(out + used, outsize - used, "%s%.*s=%.*s", used ? " " : "", (int)kl, k,
                     (int)(vl > 20 ? 20 : vl), v);
            n++;
        }
        CHECK_RC(strata_wb_ack(b), 0);
    }
    return n;
}

/* ---- defect 3: a failed (partial) append ------------------------------------ */

/* In a child: "a" journaled, then a write the file-size limit cuts off half
 * way (EFBIG, a torn record), then "b" and "c" acknowledged once the limit is
 * lifted; the child dies without closing. Every acknowledged write must be
 * replayed: the torn record may not hide the later ones. */
static void failed_append_is_cut_back(void)
{
    const char *ns = fresh_ns();
    static const char *const modes[] = {"always", "interval", "none"};
    char wal[512];
    size_t m;
    snprintf(wal, sizeof wal, "%s", path_of(ns, ""));
    for (m = 0; m < 3; m++) {
        char query[64], seen[512];
        pid_t pid;
        int status, n;
        strata_cache *c;
        unlink(wal);
        snprintf(query, sizeof query, "wb_fsync=%s", modes[m]);
        pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            struct rlimit lim, low;
            char big[4000];
            int bad = 0;
            long size;
            signal(SIGXFSZ, SIG_IGN);
            if ((c = open_journal(ns, query)) == NULL)
                _exit(10);
            bad |= strata_write_behind(c, K("a"), K("1"), 0) != 0;
            size = file_size(wal);
            getrlimit(RLIMIT_FSIZE, &lim);
            low = lim;
            low.rlim_cur = (rlim_t)size + 100; /* the big record gets 100 of its ~4 KB in */
            if (setrlimit(RLIMIT_FSIZE, &low) != 0)
                _exit(11);
            memset(big, 'x', sizeof big);
            if (strata_write_behind(c, K("big"), big, sizeof big, 0) >= 0)
                bad |= 2; /* the write must report its failure */
            if (strstr(strata_error_last(), "journal") == NULL)
                bad |= 4;
            if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
                _exit(12);
            if (file_size(wal) != size)
                bad |= 8; /* cut back to the last whole record */
            bad |= (strata_write_behind(c, K("b"), K("2"), 0) != 0) << 4;
            bad |= (strata_write_behind(c, K("c"), K("3"), 0) != 0) << 5;
            _exit(bad); /* a crash: no close, no drain */
        }
        REQUIRE(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr, "  fsync=%s: child status %d\n", modes[m], WEXITSTATUS(status));
        REQUIRE((c = open_journal(ns, query)) != NULL);
        n = drain(c, seen, sizeof seen);
        CHECK(n == 3);
        CHECK(strcmp(seen, "a=1 b=2 c=3") == 0);
        if (n != 3 || strcmp(seen, "a=1 b=2 c=3") != 0)
            fprintf(stderr, "  fsync=%s: replayed \"%s\"\n", modes[m], seen);
        strata_cache_free(c);
    }
}

/* The same limit hit by an acknowledgement record: the later writes survive too. */
static void failed_ack_is_cut_back(void)
{
    const char *ns = fresh_ns();
    char wal[512];
    pid_t pid;
    int status, n;
    strata_cache *c;
    char seen[8192];
    snprintf(wal, sizeof wal, "%s", path_of(ns, ""));
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        struct rlimit lim, low;
        strata_wb_batch *b = NULL;
        char key[16];
        int i, bad = 0;
        signal(SIGXFSZ, SIG_IGN);
        if ((c = open_journal(ns, NULL)) == NULL)
            _exit(10);
        for (i = 0; i < 200; i++) { /* one ack record of 200 ids: 1.6 KB */
            snprintf(key, sizeof key, "k%03d", i);
            bad |= strata_write_behind(c, K(key), K("v"), 0) != 0;
        }
        bad |= strata_write_behind(c, K("later"), K("L"), 0) != 0;
        getrlimit(RLIMIT_FSIZE, &lim);
        low = lim;
        low.rlim_cur = (rlim_t)file_size(wal) + 50;
        if (strata_wb_poll(c, 200, &b) != STRATA_OK || setrlimit(RLIMIT_FSIZE, &low) != 0)
            _exit(11);
        strata_wb_ack(b); /* its record fails half way: delivered again later, at least once */
        setrlimit(RLIMIT_FSIZE, &lim);
        bad |= (strata_write_behind(c, K("after"), K("A"), 0) != 0) << 1;
        _exit(bad);
    }
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    REQUIRE((c = open_journal(ns, NULL)) != NULL);
    n = drain(c, seen, sizeof seen);
    CHECK(strstr(seen, "later=L") != NULL);
    CHECK(strstr(seen, "after=A") != NULL);
    CHECK(n == 202); /* the lost ack means the 200 come again */
    strata_cache_free(c);
}

/* ---- defect 4: one damaged record mid-journal ------------------------------- */

#define REC_BYTES (8 + 21 + 2 + 7) /* frame + put header + "kN" + "value-N" */

static void write_ten(const char *ns)
{
    strata_cache *c;
    int i;
    REQUIRE((c = open_journal(ns, NULL)) != NULL);
    for (i = 0; i < 10; i++) {
        char key[8], val[16];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(val, sizeof val, "value-%d", i);
        CHECK_RC(strata_write_behind(c, K(key), K(val), 0), 0);
    }
    strata_cache_free(c); /* no writer: everything stays journaled */
    CHECK(file_size(path_of(ns, "")) == 8 + 10 * REC_BYTES);
}

static void flip_bit(const char *path, long offset, int bit)
{
    FILE *f = fopen(path, "r+b");
    int ch;
    REQUIRE(f != NULL);
    fseek(f, offset, SEEK_SET);
    ch = fgetc(f);
    fseek(f, offset, SEEK_SET);
    fputc(ch ^ (1 << bit), f);
    fclose(f);
}

static void check_nine_survive(const char *ns, const char *what)
{
    strata_cache *c;
    strata_stats st;
    char seen[512];
    int n;
    REQUIRE((c = open_journal(ns, NULL)) != NULL);
    CHECK(strstr(strata_error_last(), "damaged") != NULL); /* reported, not silent */
    CHECK(strstr(strata_error_last(), ".corrupt") != NULL);
    CHECK_RC(strata_stats_get(c, &st, STRATA_STATS_VERSION), 0);
    CHECK(st.wb_journal_skipped == 1);
    CHECK(st.wb_backlog == 9);
    CHECK(file_size(path_of(ns, ".corrupt")) == REC_BYTES); /* the damaged bytes, kept aside */
    strata_cache_free(c);
    /* the intact records were not deleted by the first replay */
    REQUIRE((c = open_journal(ns, NULL)) != NULL);
    CHECK_RC(strata_stats_get(c, &st, STRATA_STATS_VERSION), 0);
    CHECK(st.wb_journal_skipped == 0);
    n = drain(c, seen, sizeof seen);
    CHECK(n == 9);
    CHECK(strcmp(seen, "k0=value-0 k1=value-1 k2=value-2 k4=value-4 k5=value-5 k6=value-6 "
                       "k7=value-7 k8=value-8 k9=value-9") == 0);
    if (n != 9)
        fprintf(stderr, "  %s: replayed \"%s\"\n", what, seen);
    strata_cache_free(c);
}

static void flipped_payload_bit_costs_one_record(void)
{
    const char *ns = fresh_ns();
    write_ten(ns);
    flip_bit(path_of(ns, ""), 8 + 3 * REC_BYTES + REC_BYTES - 2, 3); /* k3's value */
    check_nine_survive(ns, "payload bit");
}

static void flipped_length_bit_resyncs(void)
{
    const char *ns = fresh_ns();
    write_ten(ns);
    flip_bit(path_of(ns, ""), 8 + 3 * REC_BYTES + 1, 4); /* k3's length: +4096 */
    check_nine_survive(ns, "length bit");
}

/* A torn tail (a crash mid-write) is dropped like before, and said so. */
static void torn_tail_is_reported(void)
{
    const char *ns = fresh_ns();
    strata_cache *c;
    strata_stats st;
    FILE *f;
    char seen[512];
    write_ten(ns);
    REQUIRE((f = fopen(path_of(ns, ""), "ab")) != NULL);
    fwrite("\x40\0\0\0garbage", 1, 11, f);
    fclose(f);
    REQUIRE((c = open_journal(ns, NULL)) != NULL);
    CHECK_RC(strata_stats_get(c, &st, STRATA_STATS_VERSION), 0);
    CHECK(st.wb_journal_skipped == 1);
    CHECK(file_size(path_of(ns, ".corrupt")) == 11);
    CHECK(drain(c, seen, sizeof seen) == 10);
    strata_cache_free(c);
}

/* ---- issue 15: compaction while the backlog never empties ------------------- */

#define STEADY_KEYS 500
#define STEADY_WRITES 6000

static void journal_bounded_under_steady_load(void)
{
    const char *ns = fresh_ns();
    strata_cache *c;
    strata_stats st;
    strata_wb_batch *b = NULL;
    char wal[512];
    static int last[STEADY_KEYS], delivered[STEADY_KEYS];
    char key[16], val[128];
    long max_size = 0;
    int i, k, pending = 0, wrong = 0, replayed = 0;
    memset(val, 'v', sizeof val);
    snprintf(wal, sizeof wal, "%s", path_of(ns, ""));
    for (k = 0; k < STEADY_KEYS; k++)
        last[k] = delivered[k] = -1;
    REQUIRE((c = open_journal(ns, "wb_journal_compact_bytes=65536")) != NULL);
    for (i = 0; i < STEADY_WRITES; i++) {
        long size;
        snprintf(key, sizeof key, "k%d", i % STEADY_KEYS);
        snprintf(val, 16, "%06d", i);
        CHECK_RC(strata_write_behind(c, K(key), val, 100, 0), 0);
        last[i % STEADY_KEYS] = i;
        /* deliver the oldest key now and then: about 50 keys always wait */
        if (i >= 50 && i % 2 == 0 && strata_wb_poll(c, 1, &b) == STRATA_OK) {
            const char *bk, *bv;
            size_t bkl, bvl;
            strata_wb_batch_item(b, 0, &bk, &bkl, &bv, &bvl);
            delivered[atoi(bk + 1)] = atoi(bv);
            CHECK_RC(strata_wb_ack(b), 0);
        }
        size = file_size(wal);
        if (size > max_size)
            max_size = size;
        CHECK_RC(strata_stats_get(c, &st, STRATA_STATS_VERSION), 0);
        REQUIRE(st.wb_backlog > 0);
    }
    /* without compaction: 6000 puts of ~130 bytes and their acks, ~900 KB */
    CHECK(max_size < 2 * 65536 + 4096);
    if (max_size >= 2 * 65536 + 4096)
        fprintf(stderr, "  journal grew to %ld bytes\n", max_size);
    strata_cache_free(c);
    /* it replays to exactly the keys whose latest write was not delivered, latest values */
    for (k = 0; k < STEADY_KEYS; k++)
        pending += delivered[k] != last[k];
    REQUIRE((c = open_journal(ns, NULL)) != NULL);
    while (strata_wb_poll(c, 1000, &b) == STRATA_OK) {
        size_t j;
        for (j = 0; j < strata_wb_batch_count(b); j++) {
            const char *bk, *bv;
            size_t bkl, bvl;
            strata_wb_batch_item(b, j, &bk, &bkl, &bv, &bvl);
            k = atoi(bk + 1);
            replayed++;
            if (delivered[k] == last[k] || atoi(bv) != last[k])
                wrong++;
        }
        CHECK_RC(strata_wb_ack(b), 0);
    }
    CHECK(pending > 0);
    CHECK(replayed == pending);
    CHECK(wrong == 0);
    strata_cache_free(c);
}

static void bad_options(void)
{
    strata_cache *c = NULL;
    CHECK_RC(strata_cache_new(&c, "memory://?wb_journal_compact_bytes=100", NULL), STRATA_EOPTION);
    CHECK_MSG_HAS("wb_journal_compact_bytes");
    CHECK_RC(strata_cache_new(&c, "memory://?wb_dead_max=-1", NULL), STRATA_EOPTION);
    CHECK_MSG_HAS("wb_dead_max");
    CHECK_RC(strata_cache_new(&c, "memory://?wb_dead_max_age_ms=x", NULL), STRATA_EOPTION);
    CHECK_MSG_HAS("wb_dead_max_age_ms");
    CHECK(c == NULL);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"failed_append_is_cut_back", failed_append_is_cut_back},
        {"failed_ack_is_cut_back", failed_ack_is_cut_back},
        {"flipped_payload_bit_costs_one_record", flipped_payload_bit_costs_one_record},
        {"flipped_length_bit_resyncs", flipped_length_bit_resyncs},
        {"torn_tail_is_reported", torn_tail_is_reported},
        {"journal_bounded_under_steady_load", journal_bounded_under_steady_load},
        {"bad_options", bad_options},
    };
    char cmd[400];
    int rc;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/strata-test-journal-%d", (int)getpid());
    mkdir(tmpdir, 0700);
    rc = test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
