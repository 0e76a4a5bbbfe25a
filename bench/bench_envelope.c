/*
 * The envelope's payload CRC32C (payload_crc=1, docs/FORMAT.md): encode +
 * decode of one value with and without it, 100 B and 10 KB, rounds
 * interleaved so both see the same machine; medians and the median ratio.
 *   bench_envelope
 */
#include <stdio.h>
#include <string.h>

#include "bench_util.h"
#include "policy/crc32c.h"
#include "policy/envelope.h"

#define ROUNDS 15

static char buf[16384], payload[10240];
static volatile size_t sink;

static double round_ns(unsigned flags, size_t len, int ops)
{
    strata__envelope e, d;
    uint64_t t0;
    int i;
    memset(&e, 0, sizeof e);
    e.flags = flags;
    e.created_ms = 1700000000000;
    e.fresh_until_ms = e.stale_until_ms = 1700000060000;
    e.payload = payload;
    e.payload_len = len;
    t0 = now_ns();
    for (i = 0; i < ops; i++) {
        size_t n = strata__env_encode(&e, buf, sizeof buf);
        if (n == 0 || strata__env_decode(buf, n, &d) != 0) {
            fprintf(stderr, "envelope round trip failed\n");
            exit(1);
        }
        sink += d.payload_len;
    }
    return (double)(now_ns() - t0) / ops;
}

int main(void)
{
    static const size_t sizes[] = {100, 10240};
    size_t s, i;
    for (i = 0; i < sizeof payload; i++)
        payload[i] = (char)(i * 131 + 17);
    printf("CRC32C: %s\n", strata__crc32c("x", 1) == strata__crc32c_sw("x", 1) ? "ok" : "MISMATCH");
    printf("%-8s %14s %14s %8s\n", "payload", "plain ns/op", "crc32c ns/op", "ratio");
    for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        double plain[ROUNDS], crc[ROUNDS], ratio[ROUNDS];
        int ops = sizes[s] > 1000 ? 20000 : 200000, r;
        round_ns(0, sizes[s], ops / 10); /* warm-up */
        round_ns(STRATA__ENV_FLAG_PAYLOAD_CRC, sizes[s], ops / 10);
        for (r = 0; r < ROUNDS; r++) {
            plain[r] = round_ns(0, sizes[s], ops);
            crc[r] = round_ns(STRATA__ENV_FLAG_PAYLOAD_CRC, sizes[s], ops);
            ratio[r] = crc[r] / plain[r];
        }
        printf("%-8zu %14.1f %14.1f %8.2f\n", sizes[s], median(plain, ROUNDS), median(crc, ROUNDS),
               median(ratio, ROUNDS));
    }
    return 0;
}
