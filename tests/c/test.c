#include "test.h"

#include <time.h>
#include <unistd.h>

int test_failures;
const char *test_current = "";

int test_main(int argc, char **argv, const test_case *cases, size_t n)
{
    size_t i, ran = 0;
    const char *filter = argc > 1 ? argv[argc - 1] : NULL;
    for (i = 0; i < n; i++) {
        int before = test_failures;
        if (filter && !strstr(cases[i].name, filter))
            continue;
        test_current = cases[i].name;
        cases[i].fn();
        ran++;
        printf("%s %s\n", test_failures == before ? "ok  " : "FAIL", cases[i].name);
        fflush(stdout);
    }
    printf("%zu cases, %d failed checks\n", ran, test_failures);
    if (ran == 0) {
        fprintf(stderr, "no case matched\n");
        return 1;
    }
    return test_failures ? 1 : 0;
}

const char *test_backend_url(const char *backend)
{
    const char *url = NULL;
    if (strcmp(backend, "memory") == 0)
        return "memory://";
    if (strcmp(backend, "redis") == 0)
        url = getenv("STRATA_TEST_REDIS_URL");
    else if (strcmp(backend, "redis_cluster") == 0)
        url = getenv("STRATA_TEST_REDIS_CLUSTER_URL");
    else if (strcmp(backend, "memcached") == 0)
        url = getenv("STRATA_TEST_MEMCACHED_URL");
    if (url == NULL || *url == '\0') {
        printf("skipped: no %s server (set STRATA_TEST_%s_URL; `make test` does)\n",
               backend, strcmp(backend, "redis") == 0 ? "REDIS" : strcmp(backend, "redis_cluster") == 0
                                                                  ? "REDIS_CLUSTER" : "MEMCACHED");
        exit(77);
    }
    return url;
}

strata_stats test_stats(strata_cache *c)
{
    strata_stats st;
    memset(&st, 0, sizeof st);
    strata_stats_get(c, &st, STRATA_STATS_VERSION);
    return st;
}

const char *test_unique(const char *base)
{
    static char buf[128];
    static unsigned counter;
    snprintf(buf, sizeof buf, "%s-%ld-%d-%u", base, (long)time(NULL), (int)getpid(), counter++);
    return buf;
}

#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif

int test_under_tsan(void)
{
#ifdef TEST_TSAN
    return 1;
#else
    return 0;
#endif
}
