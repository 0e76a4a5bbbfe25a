/*
 * Soak: reader and writer threads share a small key space through several
 * cache handles (each with its own L1) while an in-memory "source of truth"
 * counts versions. Writers change the source and then the cache (set,
 * write-through, or invalidate) under the key's source lock, so per key the
 * cache sees writes in source order; readers get_or_load with a loader that
 * reads the source. Afterwards every handle must converge on the source: a
 * stale write-back or a stale L1 entry that survives is a failure, and so is
 * any read error other than a deadline under load.
 *   soak memory|redis|memcached [seconds]     (make test: 3 s; make stress: 60 s)
 */
#include "test.h"
#include "platform/platform.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HANDLES 3
#define KEYS 16
#define READERS 6
#define WRITERS 2

static struct {
    pthread_mutex_t mu[KEYS];
    uint64_t version[KEYS];
    int deleted[KEYS];
} source;

static strata_cache *handles[HANDLES];
static volatile int stop;
static uint64_t reads, writes, read_errors, write_errors, unrepaired, timeouts, loads;

static void key_name(char *buf, size_t cap, int i)
{
    snprintf(buf, cap, "soak-%d", i);
}

static int key_index(const char *key, size_t keylen)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)keylen, key);
    return atoi(buf + 5);
}

/* Reads the source; the short sleep widens the window in which a write can
 * overtake this load, which the lease must then refuse to store. */
static int source_loader(void *ud, const char *key, size_t keylen, strata_load *load)
{
    int i = key_index(key, keylen), deleted;
    uint64_t v;
    char val[32];
    (void)ud;
    pthread_mutex_lock(&source.mu[i]);
    v = source.version[i];
    deleted = source.deleted[i];
    pthread_mutex_unlock(&source.mu[i]);
    __atomic_add_fetch(&loads, 1, __ATOMIC_RELAXED);
    strata__sleep_ms((int64_t)(strata__random_u64() % 10));
    if (deleted)
        return strata_load_not_found(load, 0);
    snprintf(val, sizeof val, "v%llu", (unsigned long long)v);
    return strata_load_value(load, val, strlen(val), 0);
}

static void *reader(void *arg)
{
    strata_value v = STRATA_VALUE_INIT;
    (void)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        int i = (int)(strata__random_u64() % KEYS), h = (int)(strata__random_u64() % HANDLES), rc;
        char key[32];
        key_name(key, sizeof key, i);
        rc = strata_get_or_load(handles[h], key, strlen(key), source_loader, NULL, &v);
        __atomic_add_fetch(&reads, 1, __ATOMIC_RELAXED);
        if (rc == STRATA_ETIMEOUT)
            __atomic_add_fetch(&timeouts, 1, __ATOMIC_RELAXED);
        else if (rc != STRATA_OK && rc != STRATA_NEGATIVE && rc != STRATA_HIT_STALE) {
            __atomic_add_fetch(&read_errors, 1, __ATOMIC_RELAXED);
            fprintf(stderr, "  read %s: %s %s\n", key, strata_error_name(rc), strata_error_last());
        }
    }
    strata_value_dispose(&v);
    return NULL;
}

/* write_through's writer: the source write itself (the caller holds the lock). */
static int bump_writer(void *ud, const char *key, size_t keylen, const char *val, size_t vallen, strata_write *w)
{
    (void)ud;
    (void)key;
    (void)keylen;
    (void)val;
    (void)vallen;
    (void)w;
    return 0;
}

static void *writer(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        int i = (int)(strata__random_u64() % KEYS), h = (int)(strata__random_u64() % HANDLES);
        int op = (int)(strata__random_u64() % 4), rc;
        char key[32], val[32];
        key_name(key, sizeof key, i);
        pthread_mutex_lock(&source.mu[i]);
        source.deleted[i] = op == 3;
        source.version[i]++;
        snprintf(val, sizeof val, "v%llu", (unsigned long long)source.version[i]);
        switch (op) {
        case 0: rc = strata_set(handles[h], key, strlen(key), val, strlen(val), 0); break;
        case 1: rc = strata_write_through(handles[h], key, strlen(key), val, strlen(val), 0, bump_writer, NULL); break;
        default: rc = strata_invalidate(handles[h], key, strlen(key)); break; /* 2: changed, 3: deleted */
        }
        if (rc < 0) {
            /* The source changed and the cache may not have (a failover can stall a write past its
             * deadline): as an application would, invalidate until it takes. */
            int64_t give_up = strata__now_mono_ms() + 10000;
            if (__atomic_add_fetch(&write_errors, 1, __ATOMIC_RELAXED) <= 5)
                fprintf(stderr, "  write %s: %s %s\n", key, strata_error_name(rc), strata_error_last());
            while ((rc = strata_invalidate(handles[h], key, strlen(key))) < 0 && strata__now_mono_ms() < give_up)
                strata__sleep_ms(50);
            if (rc < 0)
                __atomic_add_fetch(&unrepaired, 1, __ATOMIC_RELAXED);
        }
        pthread_mutex_unlock(&source.mu[i]);
        __atomic_add_fetch(&writes, 1, __ATOMIC_RELAXED);
        strata__sleep_ms(1);
    }
    return NULL;
}

/* Every handle agrees with the source: the cached value, a cached "not
 * found", or nothing. Returns how many (handle, key) pairs disagree. */
static int disagreements(int report)
{
    strata_value v = STRATA_VALUE_INIT;
    int h, i, bad = 0;
    for (h = 0; h < HANDLES; h++) {
        for (i = 0; i < KEYS; i++) {
            char key[32], want[32];
            int rc;
            key_name(key, sizeof key, i);
            snprintf(want, sizeof want, "v%llu", (unsigned long long)source.version[i]);
            rc = strata_get(handles[h], key, strlen(key), &v);
            if (rc == STRATA_MISS || (rc == STRATA_NEGATIVE && source.deleted[i]) ||
                (rc == STRATA_OK && !source.deleted[i] && v.len == strlen(want) && memcmp(v.data, want, v.len) == 0))
                continue;
            bad++;
            if (report)
                fprintf(stderr, "  handle %d %s: %s \"%.*s\" (level %d), source %s%s\n", h, key,
                        strata_error_name(rc), (int)v.len, v.data ? v.data : "", v.level, want,
                        source.deleted[i] ? " deleted" : "");
        }
    }
    strata_value_dispose(&v);
    return bad;
}

static void soak(const char *backend, int seconds)
{
    pthread_t r[READERS], w[WRITERS];
    char url[1024];
    const char *base = test_backend_url(backend);
    int i, bad = -1;
    int64_t end;
    for (i = 0; i < KEYS; i++)
        pthread_mutex_init(&source.mu[i], NULL);
    /* memory:// handles share one store but not each other's L1, and
     * memcached has no invalidation link: their L1s are bounded by l1_ttl_ms */
    snprintf(url, sizeof url, "%s%sns=soak%d&l1=1&l1_ttl_ms=300&ttl_ms=60000&stale_ms=0&lease_ttl_ms=2000"
             "&lock_wait_ms=3000&timeout_ms=2000&pool_size=8",
             strcmp(backend, "memory") == 0 ? "memory://soak" : base, strchr(base, '?') ? "&" : "?",
             (int)(strata__random_u64() % 1000000));
    for (i = 0; i < HANDLES; i++) {
        if (strata_cache_new(&handles[i], url, NULL) != 0) {
            fprintf(stderr, "  open %s: %s\n", url, strata_error_last());
            CHECK(0);
            return;
        }
    }
    for (i = 0; i < READERS; i++)
        pthread_create(&r[i], NULL, reader, NULL);
    for (i = 0; i < WRITERS; i++)
        pthread_create(&w[i], NULL, writer, NULL);
    strata__sleep_ms((int64_t)seconds * 1000);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (i = 0; i < READERS; i++)
        pthread_join(r[i], NULL);
    for (i = 0; i < WRITERS; i++)
        pthread_join(w[i], NULL);
    /* Converge: invalidations in flight are delivered, L1s age out (300 ms). */
    end = strata__now_mono_ms() + 5000;
    while ((bad = disagreements(0)) != 0 && strata__now_mono_ms() < end)
        strata__sleep_ms(50);
    if (bad != 0)
        disagreements(1);
    fprintf(stderr, "  %s: %llu reads, %llu writes, %llu loads in %d s; %llu timeouts, %llu errors, %llu write "
            "errors; %d stale\n", backend, (unsigned long long)reads, (unsigned long long)writes,
            (unsigned long long)loads, seconds, (unsigned long long)timeouts, (unsigned long long)read_errors,
            (unsigned long long)write_errors, bad);
    CHECK(bad == 0);
    CHECK(read_errors == 0);
    CHECK(unrepaired == 0);
    CHECK(reads > 0 && writes > 0);
    for (i = 0; i < HANDLES; i++)
        strata_cache_free(handles[i]);
}

static const char *backend_arg;
static int seconds_arg = 3;

static void soak_case(void)
{
    soak(backend_arg, seconds_arg);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {{"soak", soak_case}};
    if (argc < 2) {
        fprintf(stderr, "usage: soak memory|redis|memcached [seconds]\n");
        return 2;
    }
    backend_arg = argv[1];
    if (argc > 2 && atoi(argv[2]) > 0)
        seconds_arg = atoi(argv[2]);
    test_backend_url(backend_arg); /* exits 77 (skipped) without the server */
    return test_main(1, argv, cases, 1);
}
