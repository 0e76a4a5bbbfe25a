#include "sketch.h"

#include <string.h>

size_t strata__sketch_bytes(uint32_t width)
{
    return (size_t)STRATA__SKETCH_ROWS * width;
}

int strata__sketch_init(strata__sketch *s, void *mem, uint32_t width, uint32_t window)
{
    if (s == NULL || mem == NULL || width < 8 || (width & (width - 1)) != 0 || window == 0)
        return -1;
    memset(mem, 0, strata__sketch_bytes(width));
    s->cells = mem;
    s->width = width;
    s->window = window;
    s->additions = 0;
    s->halvings = 0;
    return 0;
}

/* Row i's counter for h: double hashing over the two 32-bit halves (a +
 * i * b), so the four rows are independent enough for a count-min bound. */
static void cells_of(const strata__sketch *s, uint64_t h, uint8_t *cells[STRATA__SKETCH_ROWS])
{
    uint32_t a = (uint32_t)h, b = (uint32_t)(h >> 32) | 1u, mask = s->width - 1;
    uint8_t *row = s->cells;
    unsigned int i;
#pragma GCC unroll 4
    for (i = 0; i < STRATA__SKETCH_ROWS; i++, row += s->width, a += b)
        cells[i] = row + (a & mask);
}

unsigned int strata__sketch_estimate(const strata__sketch *s, uint64_t h)
{
    uint8_t *cells[STRATA__SKETCH_ROWS];
    unsigned int row, est = STRATA__SKETCH_MAX_COUNT;
    cells_of(s, h, cells);
#pragma GCC unroll 4
    for (row = 0; row < STRATA__SKETCH_ROWS; row++)
        if (*cells[row] < est)
            est = *cells[row];
    return est;
}

void strata__sketch_halve(strata__sketch *s)
{
    size_t i, n = strata__sketch_bytes(s->width);
    for (i = 0; i < n; i++)
        s->cells[i] >>= 1;
    s->additions /= 2;
    s->halvings++;
}

int strata__sketch_add(strata__sketch *s, uint64_t h, unsigned int *estimate)
{
    return strata__sketch_add_n(s, h, 1, estimate);
}

int strata__sketch_add_n(strata__sketch *s, uint64_t h, unsigned int n, unsigned int *estimate)
{
    uint8_t *cells[STRATA__SKETCH_ROWS];
    unsigned int row, est = STRATA__SKETCH_MAX_COUNT;
    int halved = 0;
    cells_of(s, h, cells); /* each row's cell found once, for both passes */
#pragma GCC unroll 4
    for (row = 0; row < STRATA__SKETCH_ROWS; row++)
        if (*cells[row] < est)
            est = *cells[row];
    if (est < STRATA__SKETCH_MAX_COUNT) {
        /* Conservative update: raising only the counters below the new
         * estimate keeps every counter an upper bound while adding the
         * least noise. */
        unsigned int want = est + n > STRATA__SKETCH_MAX_COUNT ? STRATA__SKETCH_MAX_COUNT : est + n;
#pragma GCC unroll 4
        for (row = 0; row < STRATA__SKETCH_ROWS; row++)
            if (*cells[row] < want)
                *cells[row] = (uint8_t)want;
        est = want;
    }
    s->additions += n;
    if (s->additions >= s->window) {
        strata__sketch_halve(s);
        est /= 2;
        halved = 1;
    }
    if (estimate)
        *estimate = est;
    return halved;
}
