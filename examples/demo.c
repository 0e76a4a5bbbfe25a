/*
 * The main job on the embedded memory:// backend: cache-aside reads, a
 * stampede collapsed to one load, negative caching, and the counters.
 *   ./build/examples/demo [url]
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "stratacache.h"

static int loads;
static pthread_mutex_t loads_lock = PTHREAD_MUTEX_INITIALIZER;

/* Stands in for a database: user ids below 1000 exist, and each query takes 50 ms. */
static int load_user(void *ud, const char *key, size_t keylen, strata_load *load)
{
    struct timespec ts = {0, 50 * 1000000L};
    char row[128];
    int id = 0;
    (void)ud;
    pthread_mutex_lock(&loads_lock);
    loads++;
    pthread_mutex_unlock(&loads_lock);
    nanosleep(&ts, NULL);
    sscanf(key, "user:%d", &id);
    (void)keylen;
    if (id >= 1000)
        return strata_load_not_found(load, 0);
    snprintf(row, sizeof row, "{\"id\":%d,\"name\":\"user %d\"}", id, id);
    return strata_load_value(load, row, strlen(row), 0);
}

static const char *level_name(int level)
{
    static const char *names[] = {"-", "L1", "backend", "loaded", "stale"};
    return level >= 0 && level <= 4 ? names[level] : "?";
}

static strata_cache *cache;

static void *reader(void *arg)
{
    strata_value v = STRATA_VALUE_INIT;
    (void)arg;
    strata_get_or_load(cache, "user:7", 6, load_user, NULL, &v);
    strata_value_dispose(&v);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "memory://?ns=demo&l1=1&ttl_ms=60000";
    strata_value v = STRATA_VALUE_INIT;
    strata_stats st;
    pthread_t th[16];
    int i, rc;

    if (strata_cache_new(&cache, url, NULL) != 0) {
        fprintf(stderr, "demo: %s: %s\n", strata_error_name(-1), strata_error_last());
        return 1;
    }
    printf("stratacache %s on %s\n\n", strata_version(), url);

    printf("1. cache-aside: first read loads, second read is served from cache\n");
    for (i = 0; i < 3; i++) {
        rc = strata_get_or_load(cache, "user:1", 6, load_user, NULL, &v);
        printf("   get user:1 -> %s %.*s (from %s)\n", strata_error_name(rc), (int)v.len, v.data,
               level_name(v.level));
    }

    printf("2. stampede: 16 threads miss user:7 at once\n");
    loads = 0;
    for (i = 0; i < 16; i++)
        pthread_create(&th[i], NULL, reader, NULL);
    for (i = 0; i < 16; i++)
        pthread_join(th[i], NULL);
    printf("   loader calls: %d (singleflight + lease)\n", loads);

    printf("3. negative caching: a missing row is cached as \"not found\"\n");
    loads = 0;
    for (i = 0; i < 2; i++) {
        rc = strata_get_or_load(cache, "user:4242", 9, load_user, NULL, &v);
        printf("   get user:4242 -> %s\n", strata_error_name(rc));
    }
    printf("   loader calls: %d\n", loads);

    printf("4. a write is visible at once; after an invalidation the key misses\n");
    strata_set(cache, "user:1", 6, "{\"id\":1,\"name\":\"renamed\"}", 26, 0);
    rc = strata_get(cache, "user:1", 6, &v);
    printf("   after set: %.*s (from %s)\n", (int)v.len, v.data, level_name(v.level));
    strata_invalidate(cache, "user:1", 6);
    rc = strata_get(cache, "user:1", 6, &v);
    printf("   after invalidate: %s\n", strata_error_name(rc));

    strata_stats_get(cache, &st, STRATA_STATS_VERSION);
    printf("\ncounters: l1_hits=%llu l1_misses=%llu hits=%llu misses=%llu negative_hits=%llu\n"
           "          sets=%llu deletes=%llu loads=%llu leases_won=%llu singleflight_shared=%llu\n"
           "          l1_entries=%llu l1_bytes=%llu backend_errors=%llu\n",
           (unsigned long long)st.l1_hits, (unsigned long long)st.l1_misses,
           (unsigned long long)st.hits, (unsigned long long)st.misses,
           (unsigned long long)st.negative_hits, (unsigned long long)st.sets,
           (unsigned long long)st.deletes, (unsigned long long)st.loads,
           (unsigned long long)st.leases_won, (unsigned long long)st.singleflight_shared,
           (unsigned long long)st.l1_entries, (unsigned long long)st.l1_bytes,
           (unsigned long long)st.backend_errors);
    strata_value_dispose(&v);
    strata_cache_free(cache);
    return 0;
}
