/* Built against an installed stratacache by scripts/test-install.sh. */
#include <stdio.h>
#include <string.h>
#include <stratacache.h>

int main(void)
{
    strata_cache *c;
    strata_value v = STRATA_VALUE_INIT;
    if (strata_cache_new(&c, "memory://", NULL) != 0 || strata_set(c, "k", 1, "v", 1, 0) != 0 ||
        strata_get(c, "k", 1, &v) != STRATA_OK || v.len != 1 || memcmp(v.data, "v", 1) != 0) {
        fprintf(stderr, "consumer: %s\n", strata_error_last());
        return 1;
    }
    printf("consumer ok (stratacache %s)\n", strata_version());
    strata_value_dispose(&v);
    strata_cache_free(c);
    return 0;
}
