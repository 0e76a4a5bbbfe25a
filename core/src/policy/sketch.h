/*
 * A count-min sketch of key frequencies with periodic halving (TinyLFU's
 * "reset"), so old popularity fades. Four rows of 8-bit saturating counters,
 * conservative update (only the smallest counters grow, which keeps the
 * over-estimate low). Pure: no I/O, no threads, no allocation; the caller
 * hands it the counter memory (strata__sketch_bytes(width) bytes).
 */
#ifndef STRATA_SKETCH_H
#define STRATA_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#define STRATA__SKETCH_ROWS 4
#define STRATA__SKETCH_MAX_COUNT 255u

typedef struct strata__sketch {
    uint8_t *cells;      /* ROWS * width counters, row after row */
    uint32_t width;      /* counters per row, a power of two */
    uint32_t window;     /* additions after which every counter is halved */
    uint32_t additions;  /* since the last halving (itself halved then) */
    uint64_t halvings;
} strata__sketch;

/* Bytes of counter memory for `width` counters per row. */
size_t strata__sketch_bytes(uint32_t width);

/* width must be a power of two >= 8, window >= 1; mem holds
 * strata__sketch_bytes(width) bytes. Returns 0, or -1 on bad arguments. */
int strata__sketch_init(strata__sketch *s, void *mem, uint32_t width, uint32_t window);

/* Counts one occurrence of the key with hash h. *estimate (if non-NULL) gets
 * its estimated count afterwards. Returns 1 when this addition completed a
 * window and every counter was halved, else 0. */
int strata__sketch_add(strata__sketch *s, uint64_t h, unsigned int *estimate);

/* Counts n occurrences at once (a sampled read standing for n reads):
 * every counter of h is raised to at least estimate + n (conservative
 * update with a weight), and the window advances by n. */
int strata__sketch_add_n(strata__sketch *s, uint64_t h, unsigned int n, unsigned int *estimate);

/* Estimated count of h: never below the true count since the counters were
 * last halved (up to the 255 cap), and rarely much above it. */
unsigned int strata__sketch_estimate(const strata__sketch *s, uint64_t h);

/* Halves every counter (the periodic fade; also called by add). */
void strata__sketch_halve(strata__sketch *s);

#endif
