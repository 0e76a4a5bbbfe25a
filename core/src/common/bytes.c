#include "common/bytes.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

int strata__bytes_reserve(strata__bytes *b, size_t cap)
{
    char *p;
    size_t newcap;
    if (cap <= b->cap)
        return 0;
    newcap = b->cap ? b->cap : 64;
    while (newcap < cap)
        newcap = newcap > SIZE_MAX / 2 ? cap : newcap * 2;
    p = realloc(b->data, newcap);
    if (p == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory allocating %zu bytes", newcap);
    b->data = p;
    b->cap = newcap;
    return 0;
}

int strata__bytes_set(strata__bytes *b, const void *data, size_t len)
{
    int rc = strata__bytes_reserve(b, len ? len : 1);
    if (rc < 0)
        return rc;
    if (len)
        memcpy(b->data, data, len);
    b->len = len;
    return 0;
}

void strata__bytes_free(strata__bytes *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
