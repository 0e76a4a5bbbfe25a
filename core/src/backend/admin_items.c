/* Release of the operator tools' record arrays (backend.h). */
#include "backend.h"

#include <stdlib.h>

void strata__scan_items_free(strata__scan_item *items, size_t n)
{
    size_t i;
    if (items == NULL)
        return;
    for (i = 0; i < n; i++)
        strata__bytes_free(&items[i].key);
    free(items);
}

void strata__dead_letters_free(strata__dead_letter *d, size_t n)
{
    size_t i;
    if (d == NULL)
        return;
    for (i = 0; i < n; i++) {
        strata__bytes_free(&d[i].key);
        strata__bytes_free(&d[i].val);
        strata__bytes_free(&d[i].error);
    }
    free(d);
}
