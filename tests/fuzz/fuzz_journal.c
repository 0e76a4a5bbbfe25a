/*
 * Journal replay on an arbitrary file. Opening either fails with a readable
 * message or returns records that are well-formed; then one more write is
 * appended and the journal reopened: the second replay must give back the
 * first one's records plus that write, in order (replay and compaction
 * keep every live record, and a write acknowledged after a replay of a
 * damaged file is never lost).
 * Input: byte 0 says whether to fix each record's CRC first (odd: yes, so
 * the fuzzer gets past the CRC to the record parsing; even: the bytes as
 * they are), then the file. It lives in /dev/shm when there is one
 * (fdatasync is free there).
 */
#define _DEFAULT_SOURCE
#include "fuzz.h"
#include "local/journal.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256], path[300];

static void remove_files(void)
{
    static const char *const suffixes[] = {"", ".tmp", ".dead", ".corrupt"};
    char p[320];
    size_t i;
    for (i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
}

static void remove_dir(void)
{
    remove_files();
    rmdir(dir);
}

static void setup(void)
{
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/strata-fuzz-journal-%d", base, (int)getpid());
    FUZZ_CHECK(mkdir(dir, 0700) == 0, "cannot create %s", dir);
    snprintf(path, sizeof path, "%s/journal", dir);
    atexit(remove_dir);
}

static uint32_t crc32_ieee(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    int k;
    while (n--) {
        crc ^= *p++;
        for (k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* Rewrites the CRC of every whole record after the 8-byte header. */
static void fix_crcs(unsigned char *f, size_t n)
{
    size_t off = 8;
    while (off + 8 <= n) {
        uint32_t len = (uint32_t)f[off] | (uint32_t)f[off + 1] << 8 | (uint32_t)f[off + 2] << 16 |
                       (uint32_t)f[off + 3] << 24, crc;
        if (len > n - off - 8)
            break;
        crc = crc32_ieee(f + off + 8, len);
        f[off + 4] = (unsigned char)crc;
        f[off + 5] = (unsigned char)(crc >> 8);
        f[off + 6] = (unsigned char)(crc >> 16);
        f[off + 7] = (unsigned char)(crc >> 24);
        off += 8 + (size_t)len;
    }
}

static int same_bytes(const strata__bytes *a, const strata__bytes *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    strata__journal *j;
    strata__wb_record *first, *second;
    size_t n1, n2, i;
    uint64_t next1, next2;
    unsigned char *file;
    FILE *f;
    int rc;

    if (size < 1)
        return 0;
    if (dir[0] == '\0')
        setup();
    remove_files();
    file = malloc(size);
    FUZZ_CHECK(file != NULL, "out of memory");
    memcpy(file, data + 1, size - 1);
    if (data[0] & 1)
        fix_crcs(file, size - 1);
    f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL && fwrite(file, 1, size - 1, f) == size - 1 && fclose(f) == 0, "cannot write %s", path);
    free(file);

    rc = strata__journal_open(&j, path, STRATA_WB_FSYNC_NONE, 0, &first, &n1, &next1);
    if (rc != 0) {
        FUZZ_CHECK(rc < 0 && j == NULL && first == NULL && n1 == 0, "rc %d", rc);
        fuzz_check_message(rc, strata_error_last());
        return 0;
    }
    for (i = 0; i < n1; i++) {
        FUZZ_CHECK(first[i].key.len >= 1, "record %zu has an empty key", i);
        FUZZ_CHECK(first[i].id.seq < next1, "record %zu: seq %llu, next %llu", i,
                   (unsigned long long)first[i].id.seq, (unsigned long long)next1);
    }
    FUZZ_CHECK(next1 >= 1, "next sequence 0");
    /* next1 == UINT64_MAX + 1 wrapped would be caught above (seq < next). */
    rc = strata__journal_put(j, next1, "fuzz-key", 8, "fuzz-value", 10, 1700000000000);
    FUZZ_CHECK(rc == 0, "put after replay: %s", strata_error_last());
    strata__journal_close(j);

    rc = strata__journal_open(&j, path, STRATA_WB_FSYNC_NONE, 0, &second, &n2, &next2);
    FUZZ_CHECK(rc == 0, "reopening a journal this library wrote: %s", strata_error_last());
    FUZZ_CHECK(n2 == n1 + 1, "%zu records after the first replay and one write, %zu after reopening", n1 + 1, n2);
    for (i = 0; i < n1; i++)
        FUZZ_CHECK(second[i].id.seq == first[i].id.seq && second[i].enqueued_ms == first[i].enqueued_ms &&
                   same_bytes(&second[i].key, &first[i].key) && same_bytes(&second[i].val, &first[i].val),
                   "record %zu changed across a reopen", i);
    FUZZ_CHECK(second[n1].id.seq == next1 && second[n1].key.len == 8 &&
               memcmp(second[n1].key.data, "fuzz-key", 8) == 0, "the write after replay is lost");
    FUZZ_CHECK(next2 == next1 + 1, "next sequence %llu, want %llu", (unsigned long long)next2,
               (unsigned long long)next1 + 1);
    strata__journal_close(j);
    strata__wb_records_free(first, n1);
    strata__wb_records_free(second, n2);
    return 0;
}
