/* Reads or writes one key through the C library, for test_interop.py:
 *   interop_helper URL get KEY        -> prints the value as hex, or MISS
 *   interop_helper URL set KEY VALUE  -> stores VALUE */
#include <stdio.h>
#include <string.h>
#include "stratacache.h"

int main(int argc, char **argv)
{
    strata_cache *c = NULL;
    strata_value v = STRATA_VALUE_INIT;
    int rc;
    size_t i;
    if (argc < 4)
        return 2;
    if (strata_cache_new(&c, argv[1], NULL) != 0) {
        fprintf(stderr, "%s\n", strata_error_last());
        return 1;
    }
    if (strcmp(argv[2], "set") == 0 && argc == 5) {
        rc = strata_set(c, argv[3], strlen(argv[3]), argv[4], strlen(argv[4]), 0);
    } else {
        rc = strata_get(c, argv[3], strlen(argv[3]), &v);
        if (rc == STRATA_OK) {
            for (i = 0; i < v.len; i++)
                printf("%02x", (unsigned char)v.data[i]);
            printf("\n");
        } else if (rc > 0) {
            printf("MISS\n");
        }
    }
    if (rc < 0)
        fprintf(stderr, "%s: %s\n", strata_error_name(rc), strata_error_last());
    strata_value_dispose(&v);
    strata_cache_free(c);
    return rc < 0 ? 1 : 0;
}
