#include "backend_hook.h"

#include "engine/cache.h"

static const strata__backend_ops *real;
static strata__backend_ops hooked;
static backend_hook_fn hook_fn;
static void *hook_ud;

static int hooked_set(strata__backend *b, const char *key, size_t keylen, const char *val, size_t vallen,
                      int64_t ttl_ms)
{
    int rc;
    if (hook_fn)
        hook_fn(hook_ud, key, keylen, 0);
    rc = real->set(b, key, keylen, val, vallen, ttl_ms);
    if (hook_fn)
        hook_fn(hook_ud, key, keylen, 1);
    return rc;
}

static int hooked_del(strata__backend *b, const char *key, size_t keylen)
{
    int rc;
    if (hook_fn)
        hook_fn(hook_ud, key, keylen, 0);
    rc = real->del(b, key, keylen);
    if (hook_fn)
        hook_fn(hook_ud, key, keylen, 1);
    return rc;
}

static int hooked_del_many(strata__backend *b, size_t n, const char *const *keys, const size_t *keylens, int *gone)
{
    int rc;
    if (hook_fn && n > 0)
        hook_fn(hook_ud, keys[0], keylens[0], 0);
    rc = real->del_many(b, n, keys, keylens, gone);
    if (hook_fn && n > 0)
        hook_fn(hook_ud, keys[0], keylens[0], 1);
    return rc;
}

void backend_hook_set(strata_cache *c, backend_hook_fn hook, void *ud)
{
    if (hook == NULL) {
        if (real)
            c->backend->ops = real;
        real = NULL;
        hook_fn = NULL;
        return;
    }
    real = c->backend->ops;
    hooked = *real;
    hooked.set = hooked_set;
    hooked.del = hooked_del;
    hooked.del_many = hooked_del_many;
    hook_fn = hook;
    hook_ud = ud;
    c->backend->ops = &hooked;
}
