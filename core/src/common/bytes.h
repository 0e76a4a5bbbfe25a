/* A growable, library-owned byte buffer (every layer passes bytes in it). */
#ifndef STRATA_BYTES_H
#define STRATA_BYTES_H

#include <stddef.h>

typedef struct strata__bytes {
    char *data;
    size_t len;
    size_t cap;
} strata__bytes;

int  strata__bytes_reserve(strata__bytes *b, size_t cap);
int  strata__bytes_set(strata__bytes *b, const void *data, size_t len);
void strata__bytes_free(strata__bytes *b);

#endif
