/* Write-behind records shared by the stream backends and the engine. */
#include "common/wb_record.h"

#include <stdlib.h>

void strata__wb_records_free(strata__wb_record *recs, size_t n)
{
    size_t i;
    if (recs == NULL)
        return;
    for (i = 0; i < n; i++) {
        strata__bytes_free(&recs[i].key);
        strata__bytes_free(&recs[i].val);
    }
    free(recs);
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
