/* fuzz_check_message (see fuzz.h). */
#include "fuzz.h"

#include <string.h>

void fuzz_check_message(int rc, const char *msg)
{
    size_t i, n;
    const char *colon;
    FUZZ_CHECK(msg != NULL, "rc %d: NULL message", rc);
    n = strlen(msg);
    FUZZ_CHECK(n >= 4, "rc %d: message \"%s\" is empty or too short", rc, msg);
    for (i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)msg[i] >= 0x20 && (unsigned char)msg[i] != 0x7f,
                   "rc %d: control byte 0x%02x at %zu in \"%s\"", rc, (unsigned char)msg[i], i, msg);
    colon = strstr(msg, ": ");
    if (colon != NULL) {
        size_t p = (size_t)(colon - msg) + 2; /* "prefix: " */
        FUZZ_CHECK(!(2 * p <= n && memcmp(msg, msg + p, p) == 0),
                   "rc %d: message repeats its prefix: \"%s\"", rc, msg);
    }
}
