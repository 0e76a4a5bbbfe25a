/*
 * The URL / options parser on arbitrary text (the input up to its first NUL,
 * as a C caller would pass it). Every outcome is an accepted config or a
 * rejection with the right kind of code and a readable message
 * (fuzz_check_message): issue 11 found empty and garbled ones.
 */
#include "fuzz.h"
#include "config.h"

#include <string.h>

static strata__config cfg, bus; /* large: kept off the stack */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);
    int rc;
    FUZZ_CHECK(url != NULL, "out of memory");
    memcpy(url, data, size);
    url[size] = '\0';
    rc = strata__config_parse(&cfg, url, NULL);
    if (rc == 0) {
        FUZZ_CHECK(cfg.opts.ns == cfg.ns && strlen(cfg.ns) == cfg.nslen, "namespace not set up");
        FUZZ_CHECK(cfg.scheme == STRATA__SCHEME_MEMORY || cfg.nservers >= 1, "no server");
        FUZZ_CHECK(cfg.nservers <= STRATA__MAX_SERVERS, "%zu servers", cfg.nservers);
        if (cfg.l1_bus[0]) {
            rc = strata__parse_l1_bus(&cfg, &bus);
            if (rc != 0)
                fuzz_check_message(rc, strata_error_last());
        }
    } else {
        FUZZ_CHECK(rc == STRATA_EURL || rc == STRATA_EOPTION || rc == STRATA_EINVAL,
                   "rc %d (%s) for a bad URL", rc, strata_error_name(rc));
        fuzz_check_message(rc, strata_error_last());
    }
    free(url);
    return 0;
}
