/* Shared by the fuzz harnesses: the libFuzzer entry point and a check that
 * aborts (a crash is what libFuzzer and the replay driver report). */
#ifndef STRATA_FUZZ_H
#define STRATA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "fuzz check failed (%s:%d): %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); \
    fputc('\n', stderr); \
    abort(); } } while (0)

/* A rejection's message is there and readable: non-empty, no control bytes,
 * and not one prefix stacked on itself ("key 1: key 1: ..."), which is what
 * formatting a message into its own buffer produces. */
void fuzz_check_message(int rc, const char *msg);

#endif
