/*
 * The L1 tier's lock-free read path (memory:// backend): readers beside
 * writers see whole values, old or new, never a torn one; fork while other
 * threads read leaves the child an L1 it can write; a hit near its expiry is
 * decided on the precise clock; an entry read since it was put survives the
 * next eviction (second chance); hits are counted once per read, from any
 * thread.
 */
#include "test.h"
#include "backend_hook.h"

#include "engine/cache.h"
#include "local/l1.h"
#include "local/l1_shard.h"
#include "platform/platform.h"

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#define K(s) (s), strlen(s)
#define VLEN 200

static strata_cache *open_cache(const char *query)
{
    strata_cache *c = NULL;
    char u[256];
    snprintf(u, sizeof u, "memory://?%s", query);
    if (strata_cache_new(&c, u, NULL) != 0) {
        fprintf(stderr, "  cannot open %s: %s\n", u, strata_error_last());
        return NULL;
    }
    return c;
}

typedef struct reader {
    pthread_t th;
    strata_cache *c;
    int *stop; /* atomic */
    long reads, torn, hits;
} reader;

/* A value is VLEN copies of one letter: any mix of two writes shows. */
static void *read_loop(void *p)
{
    reader *r = p;
    strata_value v = STRATA_VALUE_INIT;
    while (!__atomic_load_n(r->stop, __ATOMIC_RELAXED)) {
        int rc = strata_get(r->c, K("shared"), &v), i;
        r->reads++;
        if (rc != STRATA_OK)
            continue;
        r->hits += v.level == STRATA_LEVEL_L1;
        if (v.len != VLEN) {
            r->torn++;
            continue;
        }
        for (i = 1; i < VLEN; i++)
            if (v.data[i] != v.data[0]) {
                r->torn++;
                break;
            }
    }
    strata_value_dispose(&v);
    return NULL;
}

static void readers_beside_writers_see_whole_values(void)
{
    strata_cache *c = open_cache("l1=1&l1_admission=all");
    int stop = 0;
    reader r[2];
    char val[VLEN];
    int i, w;
    int64_t end;
    REQUIRE(c);
    memset(val, 'a', sizeof val);
    CHECK_RC(strata_set(c, K("shared"), val, sizeof val, 0), 0);
    for (i = 0; i < 2; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].c = c;
        r[i].stop = &stop;
        pthread_create(&r[i].th, NULL, read_loop, &r[i]);
    }
    end = strata__now_mono_ms() + 300;
    for (w = 0; strata__now_mono_ms() < end; w++) {
        memset(val, 'a' + w % 26, sizeof val);
        CHECK_RC(strata_set(c, K("shared"), val, sizeof val, 0), 0);
        if (w % 7 == 0)
            strata_invalidate(c, K("shared"));
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (i = 0; i < 2; i++) {
        pthread_join(r[i].th, NULL);
        CHECK(r[i].torn == 0);
        CHECK(r[i].hits > 0);
    }
    strata_cache_free(c);
}

static void fork_while_threads_read(void)
{
    strata_cache *c = open_cache("l1=1&l1_admission=all");
    int stop = 0;
    reader r[2];
    int i, n, failed = 0;
    REQUIRE(c);
    CHECK_RC(strata_set(c, K("shared"), "x", 1, 0), 0);
    for (i = 0; i < 2; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].c = c;
        r[i].stop = &stop;
        pthread_create(&r[i].th, NULL, read_loop, &r[i]);
    }
    for (n = 0; n < 20; n++) {
        int status = 0;
        int64_t deadline;
        pid_t pid = fork(), done = 0;
        if (pid == 0) {
            /* writes take every shard: a reader count left by a parent thread would hang them */
            alarm(10);
            strata__l1_clear(c->l1);
            _exit(strata_set(c, K("shared"), "y", 1, 0) == 0 && strata_delete(c, K("shared")) == 0 ? 0 : 1);
        }
        REQUIRE(pid > 0);
        deadline = strata__now_mono_ms() + 10000;
        while (done == 0 && strata__now_mono_ms() < deadline) {
            done = waitpid(pid, &status, WNOHANG);
            if (done == 0)
                strata__sleep_ms(1);
        }
        if (done == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        failed += !(done == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (i = 0; i < 2; i++)
        pthread_join(r[i].th, NULL);
    CHECK(failed == 0);
    strata_cache_free(c);
}

/* ttl 60 ms: by the precise clock the value is never an L1 hit past its end,
 * whatever the coarse clock said. */
/* Sets "short" for 60 ms, ten times, and reads it until L1 stops serving
 * it: with strata_get, or (by_check) with strata_l1_check of the version
 * strata_l1_get named. Never once after the entry's end. */
static void short_entry_never_served_late(strata_cache *c, int by_check)
{
    strata_value v = STRATA_VALUE_INIT;
    uint64_t version = 0;
    int round, late = 0, served = 0;
    for (round = 0; round < 10; round++) {
        int64_t until;
        CHECK_RC(strata_set(c, K("short"), K("v"), 60), 0);
        until = strata__now_wall_ms() + 60; /* after the write: the entry ends no later */
        if (by_check && strata_l1_get(c, K("short"), &v, &version) != STRATA_OK)
            continue;
        for (;;) {
            int64_t before = strata__now_wall_ms();
            int ok = by_check ? strata_l1_check(c, K("short"), version) == STRATA_OK
                              : strata_get(c, K("short"), &v) == STRATA_OK && v.level == STRATA_LEVEL_L1;
            if (!ok)
                break;
            served++;
            late += before >= until;
        }
    }
    CHECK(served > 0);
    CHECK(late == 0);
    strata_value_dispose(&v);
}

static void expiry_decided_on_the_precise_clock(void)
{
    strata_cache *c = open_cache("l1=1&l1_admission=all");
    REQUIRE(c);
    short_entry_never_served_late(c, 0);
    strata_cache_free(c);
}

static int in_l1(strata_cache *c, const char *key)
{
    strata_value v = STRATA_VALUE_INIT;
    strata__key k = strata__key_of(K(key));
    int rc = strata__l1_get(c->l1, &k, strata__now_wall_ms(), &v);
    strata_value_dispose(&v);
    return rc == STRATA_OK;
}

/* L1 full of entries, every other one read; new entries then take the room
 * of the unread ones and the read ones stay (what LRU did too). */
static void read_entries_get_a_second_chance(void)
{
    strata_cache *c = open_cache("l1=1&l1_admission=all&l1_max_entries=1600");
    strata_value v = STRATA_VALUE_INIT;
    char key[32];
    int i, read_before = 0, kept_read = 0, kept_unread = 0;
    REQUIRE(c);
    for (i = 0; i < 1600; i++) {
        snprintf(key, sizeof key, "old-%d", i);
        CHECK_RC(strata_set(c, K(key), K("v"), 0), 0);
    }
    for (i = 0; i < 1600; i += 2) {
        snprintf(key, sizeof key, "old-%d", i);
        if (strata_get(c, K(key), &v) == STRATA_OK && v.level == STRATA_LEVEL_L1)
            read_before++;
    }
    for (i = 0; i < 600; i++) {
        snprintf(key, sizeof key, "new-%d", i);
        CHECK_RC(strata_set(c, K(key), K("v"), 0), 0);
    }
    for (i = 0; i < 1600; i++) {
        snprintf(key, sizeof key, "old-%d", i);
        if (in_l1(c, key))
            *(i % 2 == 0 ? &kept_read : &kept_unread) += 1;
    }
    CHECK(read_before > 600);
    CHECK(kept_read * 100 >= read_before * 95);
    CHECK(kept_unread * 2 < kept_read);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static void hits_counted_from_every_thread(void)
{
    strata_cache *c = open_cache("l1=1&l1_admission=all");
    int stop = 0;
    reader r[3];
    strata_stats st;
    long hits = 0;
    int i;
    REQUIRE(c);
    CHECK_RC(strata_set(c, K("shared"), K("v"), 0), 0);
    for (i = 0; i < 3; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].c = c;
        r[i].stop = &stop;
        pthread_create(&r[i].th, NULL, read_loop, &r[i]);
    }
    strata__sleep_ms(100);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (i = 0; i < 3; i++) {
        pthread_join(r[i].th, NULL);
        hits += r[i].hits;
    }
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    CHECK(hits > 0 && st.l1_hits == (uint64_t)hits);
    strata_cache_free(c);
}

/* More threads alive than reader slots: the ones without a slot read under
 * the shard's mutex; every thread still sees whole values and every hit is
 * counted once. */
static void more_threads_than_reader_slots(void)
{
    enum { N = STRATA__READER_SLOTS + 16 };
    strata_cache *c = open_cache("l1=1&l1_admission=all");
    static reader r[N];
    int stop = 0;
    strata_stats st;
    char val[VLEN];
    long hits = 0, torn = 0;
    int i, w;
    int64_t end;
    REQUIRE(c);
    memset(val, 'a', sizeof val);
    CHECK_RC(strata_set(c, K("shared"), val, sizeof val, 0), 0);
    for (i = 0; i < N; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].c = c;
        r[i].stop = &stop;
        REQUIRE(pthread_create(&r[i].th, NULL, read_loop, &r[i]) == 0);
    }
    end = strata__now_mono_ms() + 300;
    for (w = 0; strata__now_mono_ms() < end; w++) {
        memset(val, 'a' + w % 26, sizeof val);
        CHECK_RC(strata_set(c, K("shared"), val, sizeof val, 0), 0);
        strata__sleep_ms(1);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (i = 0; i < N; i++) {
        pthread_join(r[i].th, NULL);
        hits += r[i].hits;
        torn += r[i].torn;
    }
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    CHECK(torn == 0);
    CHECK(hits > 0 && st.l1_hits == (uint64_t)hits);
    strata_cache_free(c);
}

static void *take_slot(void *p)
{
    *(unsigned int *)p = strata__reader_slot();
    return NULL;
}

typedef struct holder {
    pthread_t th;
    pthread_mutex_t *gate;
    unsigned int slot;
} holder;

static void *hold_slot(void *p)
{
    holder *h = p;
    __atomic_store_n(&h->slot, strata__reader_slot(), __ATOMIC_RELEASE);
    pthread_mutex_lock(h->gate); /* held until the test lets go */
    pthread_mutex_unlock(h->gate);
    return NULL;
}

/* Slots come back when threads exit, and a forked child (which has only
 * the forking thread) may hand out the slots of its parent's other threads. */
static void reader_slots_are_given_back(void)
{
    enum { HOLD = STRATA__READER_SLOTS - 1 };
    static holder h[HOLD];
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    unsigned int slot;
    pthread_t t;
    int i, round, status = 0, got = 0;
    pid_t pid;
    for (round = 0; round < (int)(3 * STRATA__READER_SLOTS); round++) { /* one at a time, many more than the slots */
        slot = STRATA__READER_SLOTS;
        REQUIRE(pthread_create(&t, NULL, take_slot, &slot) == 0);
        pthread_join(t, NULL);
        got += slot < STRATA__READER_SLOTS;
    }
    CHECK(got == (int)(3 * STRATA__READER_SLOTS));
    (void)strata__reader_slot(); /* this thread's own */
    pthread_mutex_lock(&gate);
    for (i = 0; i < HOLD; i++) {
        h[i].gate = &gate;
        h[i].slot = STRATA__READER_SLOTS + 1;
        REQUIRE(pthread_create(&h[i].th, NULL, hold_slot, &h[i]) == 0);
    }
    for (i = 0; i < HOLD; i++)
        while (__atomic_load_n(&h[i].slot, __ATOMIC_ACQUIRE) == STRATA__READER_SLOTS + 1)
            strata__sleep_ms(1);
    /* now every slot is taken: a new thread gets none */
    slot = 0;
    REQUIRE(pthread_create(&t, NULL, take_slot, &slot) == 0);
    pthread_join(t, NULL);
    CHECK(slot == STRATA__READER_SLOTS);
    if (test_under_tsan()) {
        printf("  skipped under ThreadSanitizer: the forked child's thread (TSan cannot start threads after a "
               "multi-threaded fork)\n");
    } else {
        pid = fork();
        if (pid == 0) {
            alarm(10);
            slot = STRATA__READER_SLOTS;
            if (pthread_create(&t, NULL, take_slot, &slot) != 0)
                _exit(2);
            pthread_join(t, NULL);
            _exit(slot < STRATA__READER_SLOTS ? 0 : 1);
        }
        REQUIRE(pid > 0);
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    pthread_mutex_unlock(&gate);
    for (i = 0; i < HOLD; i++)
        pthread_join(h[i].th, NULL);
}

/* The hit path copies values of 17-128 bytes in fixed-size moves: every
 * length around those edges reads back byte for byte from L1. */
static void values_of_every_length_read_back_whole(void)
{
    strata_cache *c = open_cache("l1=1&l1_admission=all");
    strata_value v = STRATA_VALUE_INIT;
    char val[300], key[32];
    int len, i, bad = 0, l1 = 0;
    REQUIRE(c);
    for (len = 0; len <= (int)sizeof val; len++) {
        for (i = 0; i < len; i++)
            val[i] = (char)(i * 7 + len);
        snprintf(key, sizeof key, "len-%d", len);
        CHECK_RC(strata_set(c, K(key), val, (size_t)len, 0), 0);
        for (i = 0; i < 2; i++) { /* a value buffer grown by the first read, reused by the second */
            CHECK_RC(strata_get(c, K(key), &v), 0);
            l1 += v.level == STRATA_LEVEL_L1;
            bad += v.len != (size_t)len || memcmp(v.data, val, (size_t)len) != 0 || v.data[len] != '\0';
        }
    }
    CHECK(bad == 0);
    CHECK(l1 == 2 * ((int)sizeof val + 1));
    strata_value_dispose(&v);
    strata_cache_free(c);
}

static uint64_t l1_hits_of(strata_cache *c)
{
    strata_stats st;
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    return st.l1_hits;
}

/* strata_l1_check (the object tiers' question) on its one-pass path: the
 * entry a read named still serves (counted as a hit); another version, a
 * new write, a delete do not; and the answer near the entry's end is the
 * precise clock's, never late. */
static void l1_check_answers_as_a_hit_would(void)
{
    strata_cache *c = open_cache("l1=1&l1_admission=all");
    strata_value v = STRATA_VALUE_INIT;
    uint64_t version = 0, second = 0, hits;
    REQUIRE(c);
    CHECK_RC(strata_set(c, K("checked"), K("one"), 0), 0);
    CHECK_RC(strata_l1_get(c, K("checked"), &v, &version), STRATA_OK);
    CHECK(version != 0);
    hits = l1_hits_of(c);
    CHECK_RC(strata_l1_check(c, K("checked"), version), STRATA_OK);
    CHECK_RC(strata_l1_check(c, K("checked"), version), STRATA_OK);
    CHECK(l1_hits_of(c) == hits + 2);
    CHECK_RC(strata_l1_check(c, K("checked"), version + 16), STRATA_MISS); /* another put's name */
    CHECK_RC(strata_l1_check(c, K("unknown"), version), STRATA_MISS);
    CHECK_RC(strata_set(c, K("checked"), K("two"), 0), 0);
    CHECK_RC(strata_l1_check(c, K("checked"), version), STRATA_MISS);
    CHECK_RC(strata_l1_get(c, K("checked"), &v, &second), STRATA_OK);
    CHECK(second != version);
    CHECK_RC(strata_l1_check(c, K("checked"), second), STRATA_OK);
    CHECK_RC(strata_delete(c, K("checked")), 0);
    CHECK_RC(strata_l1_check(c, K("checked"), second), STRATA_MISS);
    strata_value_dispose(&v);
    short_entry_never_served_late(c, 1);
    strata_cache_free(c);
}

static uint64_t l1_refused_of(strata_cache *c)
{
    strata_stats st;
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    return st.l1_fills_refused;
}

/* A key of k's shard, numbered from *n on, in k's stripe (same = 1) or in
 * another one. */
static strata__key shard_mate(const strata__key *k, int same, char *buf, size_t cap, int *n)
{
    for (;; (*n)++) {
        strata__key o;
        snprintf(buf, cap, "mate-%d", *n);
        o = strata__key_of(buf, strlen(buf));
        if (o.hash % STRATA__L1_SHARDS == k->hash % STRATA__L1_SHARDS &&
            (strata__l1_stripe_of(&o) == strata__l1_stripe_of(k)) == same) {
            (*n)++;
            return o;
        }
    }
}

/* A value read from the backend enters L1 although other keys of its shard
 * were written while it was read; a write of its own key (or of a key of its
 * stripe) keeps it out. */
static void fill_survives_writes_to_other_keys(void)
{
    strata_cache *c = open_cache("l1=1&l1_admission=all");
    strata__key k = strata__key_of(K("filled")), o;
    char buf[32];
    int64_t until = strata__now_wall_ms() + 60000;
    uint64_t epoch;
    int i, n = 0;
    REQUIRE(c);
    epoch = strata__l1_epoch(c->l1, &k);
    for (i = 0; i < 20; i++) {
        o = shard_mate(&k, 0, buf, sizeof buf, &n);
        CHECK_RC(i % 2 ? strata_set(c, o.ptr, o.len, K("w"), 0) : strata_invalidate(c, o.ptr, o.len), 0);
    }
    strata__l1_put(c->l1, &k, K("read before"), 0, until, until, until, epoch);
    CHECK(in_l1(c, "filled"));
    CHECK(l1_refused_of(c) == 0);

    k = strata__key_of(K("filled-2"));
    epoch = strata__l1_epoch(c->l1, &k);
    CHECK_RC(strata_invalidate(c, K("filled-2")), 0);
    strata__l1_put(c->l1, &k, K("read before"), 0, until, until, until, epoch);
    CHECK(!in_l1(c, "filled-2"));
    CHECK(l1_refused_of(c) == 1); /* strata_stats.l1_fills_refused */

    epoch = strata__l1_epoch(c->l1, &k);
    o = shard_mate(&k, 1, buf, sizeof buf, &n);
    CHECK_RC(strata_set(c, o.ptr, o.len, K("w"), 0), 0);
    strata__l1_put(c->l1, &k, K("read before"), 0, until, until, until, epoch);
    CHECK(!in_l1(c, "filled-2"));
    strata_cache_free(c);
}

/* ---- L1 beside this process's writes in flight (backend_hook.h) ---- */

typedef struct flight {
    strata_cache *c;
    const char *key;
    int reads, l1_old; /* reads in the hook; of them, the old value from L1 */
} flight;

static void read_in_flight(void *ud, const char *fk, size_t fklen, int landed)
{
    flight *f = ud;
    strata_value v = STRATA_VALUE_INIT;
    (void)fk, (void)fklen, (void)landed;
    f->reads++;
    if (strata_get(f->c, f->key, strlen(f->key), &v) == STRATA_OK && v.level == STRATA_LEVEL_L1 && v.len == 3 &&
        memcmp(v.data, "old", 3) == 0)
        f->l1_old++;
    strata_value_dispose(&v);
}

/* Readers beside a write not yet acknowledged are served the old value from
 * L1 (as linearizable as the new one) instead of missing for the whole
 * round trip; once the write returns, L1 serves the new value. */
static void old_value_served_while_write_in_flight(void)
{
    strata_cache *c = open_cache("l1=1&l1_admission=all");
    strata_value v = STRATA_VALUE_INIT;
    flight f = {0};
    REQUIRE(c);
    f.c = c;
    f.key = "in-flight";
    CHECK_RC(strata_set(c, K("in-flight"), K("old"), 0), 0);
    backend_hook_set(c, read_in_flight, &f);
    CHECK_RC(strata_set(c, K("in-flight"), K("new"), 0), 0);
    backend_hook_set(c, NULL, NULL);
    CHECK(f.reads == 2);
    CHECK(f.l1_old == 2);
    CHECK_RC(strata_get(c, K("in-flight"), &v), STRATA_OK);
    CHECK(v.level == STRATA_LEVEL_L1 && v.len == 3 && memcmp(v.data, "new", 3) == 0);
    strata_value_dispose(&v);
    strata_cache_free(c);
}

typedef struct filler {
    strata_cache *c;
    const char *key;
} filler;

/* Before the write is sent: a read that misses L1 reads the old value from
 * the store and fills L1 with it. */
static void fill_before_landing(void *ud, const char *fk, size_t fklen, int landed)
{
    filler *f = ud;
    strata_value v = STRATA_VALUE_INIT;
    (void)fk, (void)fklen;
    if (!landed)
        strata_get(f->c, f->key, strlen(f->key), &v);
    strata_value_dispose(&v);
}

/* A read that filled L1 from the store while a write or delete of its key
 * was in flight never outlives the write: after set, delete and
 * delete_many return, L1 serves what the store holds. */
static void fill_during_write_never_left_behind(void)
{
    strata_cache *c = NULL, *other = NULL;
    strata_value v = STRATA_VALUE_INIT;
    const char *keys[1] = {"filled-meanwhile"};
    size_t lens[1] = {16}, deleted = 0;
    filler f;
    int step;
    REQUIRE(strata_cache_new(&c, "memory://l1-flight?l1=1&l1_admission=all", NULL) == 0);
    REQUIRE(strata_cache_new(&other, "memory://l1-flight?l1=0", NULL) == 0);
    f.c = c;
    f.key = keys[0];
    for (step = 0; step < 3; step++) {
        /* the old value in the store only: c's L1 does not have it */
        CHECK_RC(strata_set(other, K("filled-meanwhile"), K("old"), 0), 0);
        backend_hook_set(c, fill_before_landing, &f);
        if (step == 0)
            CHECK_RC(strata_set(c, K("filled-meanwhile"), K("new"), 0), 0);
        else if (step == 1)
            CHECK_RC(strata_delete(c, K("filled-meanwhile")), 0);
        else
            CHECK_RC(strata_delete_many(c, 1, keys, lens, &deleted), 0);
        backend_hook_set(c, NULL, NULL);
        if (step == 0) {
            CHECK_RC(strata_get(c, K("filled-meanwhile"), &v), STRATA_OK);
            CHECK(v.len == 3 && memcmp(v.data, "new", 3) == 0);
        } else {
            CHECK_RC(strata_get(c, K("filled-meanwhile"), &v), STRATA_MISS);
        }
    }
    strata_value_dispose(&v);
    strata_cache_free(other);
    strata_cache_free(c);
}

static strata_stats l1_stats_of(strata_cache *c)
{
    strata_stats st;
    memset(&st, 0, sizeof st);
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    return st;
}

/* The default 16 MiB L1 holds 90% of 100k keys with 100-byte values (77%
 * when an entry's header took 112 bytes), and what it counts is what an
 * entry allocates: header, key, value (and a tagged entry's token). */
static void entries_cost_what_they_allocate(void)
{
    strata_cache *c = open_cache("l1=1&l1_admission=all");
    strata_set_options so = STRATA_SET_OPTIONS_INIT;
    const char *tags[1] = {"t"};
    size_t taglens[1] = {1};
    char key[32], val[100];
    strata_stats st;
    uint64_t before;
    int i;
    REQUIRE(c);
    memset(val, 'v', sizeof val);
    CHECK_RC(strata_set(c, K("k"), val, sizeof val, 0), 0);
    st = l1_stats_of(c);
    CHECK(st.l1_entries == 1 && st.l1_bytes == sizeof(strata__entry) + 1 + sizeof val);
    so.tags = tags;
    so.taglens = taglens;
    so.ntags = 1;
    before = st.l1_bytes;
    CHECK_RC(strata_set_ex(c, K("t"), val, sizeof val, &so), 0);
    st = l1_stats_of(c);
    /* the whole envelope is kept, plus the tag-check token */
    CHECK(st.l1_entries == 2 && st.l1_bytes > before + sizeof(strata__entry) + 1 + sizeof val + 16);
    strata_clear(c);
    for (i = 0; i < 100000; i++) {
        size_t kl = (size_t)snprintf(key, sizeof key, "h%d", i);
        CHECK_RC(strata_set(c, key, kl, val, sizeof val, 0), 0);
    }
    st = l1_stats_of(c);
    CHECK(st.l1_entries >= 90000);
    CHECK(st.l1_bytes <= 16u << 20);
    strata_cache_free(c);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"readers_beside_writers_see_whole_values", readers_beside_writers_see_whole_values},
        {"fork_while_threads_read", fork_while_threads_read},
        {"expiry_decided_on_the_precise_clock", expiry_decided_on_the_precise_clock},
        {"read_entries_get_a_second_chance", read_entries_get_a_second_chance},
        {"hits_counted_from_every_thread", hits_counted_from_every_thread},
        {"more_threads_than_reader_slots", more_threads_than_reader_slots},
        {"reader_slots_are_given_back", reader_slots_are_given_back},
        {"values_of_every_length_read_back_whole", values_of_every_length_read_back_whole},
        {"l1_check_answers_as_a_hit_would", l1_check_answers_as_a_hit_would},
        {"fill_survives_writes_to_other_keys", fill_survives_writes_to_other_keys},
        {"old_value_served_while_write_in_flight", old_value_served_while_write_in_flight},
        {"fill_during_write_never_left_behind", fill_during_write_never_left_behind},
        {"entries_cost_what_they_allocate", entries_cost_what_they_allocate},
    };
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
