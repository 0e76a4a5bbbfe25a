/* A cache's own backend with a test's code run in the middle of its writes:
 * set, del and del_many call hook(ud, full key of the first item, 0) before
 * the write is sent and hook(..., 1) after it reached the server, before the
 * call returns to the engine. So a test makes things happen,
 * deterministically, while a write is in flight (a read beside it, another
 * process's write and its invalidation). The real backend does the storing;
 * nothing is faked. */
#ifndef STRATA_TEST_BACKEND_HOOK_H
#define STRATA_TEST_BACKEND_HOOK_H

#include <stddef.h>

#include "stratacache.h"

typedef void (*backend_hook_fn)(void *ud, const char *full_key, size_t full_keylen, int landed);

/* Installs hook on c's backend (one cache at a time); NULL takes it off. */
void backend_hook_set(strata_cache *c, backend_hook_fn hook, void *ud);

#endif
