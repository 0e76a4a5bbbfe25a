/* strata_keys_scan: the namespace's keys, one bounded page at a time. */
#include "cache.h"
#include "error.h"
#include "engine/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct strata_key_page {
    char cursor[64];
    size_t n;
    strata__scan_item *items;
};

int strata_keys_scan(strata_cache *c, const char *cursor, const char *match, size_t count,
                     strata_key_page **out)
{
    strata__backend *be;
    strata_key_page *p;
    int rc;

    if (out == NULL)
        return strata__error(STRATA_EINVAL, "key page out-pointer is NULL");
    *out = NULL;
    if (c == NULL)
        return strata__error(STRATA_EINVAL, "cache handle is NULL");
    if (count < 1 || count > 10000)
        return strata__error(STRATA_EINVAL, "keys: count %zu is outside 1-10000", count);
    if (cursor == NULL || *cursor == '\0')
        cursor = "0";
    if (strlen(cursor) >= sizeof p->cursor || strspn(cursor, "0123456789") != strlen(cursor))
        return strata__error(STRATA_EINVAL, "keys: cursor \"%.32s\" is not one a scan returned", cursor);
    be = strata__backend_untimed(c->backend);
    if (be->ops->scan == NULL)
        return strata__error(STRATA_ENOTSUP, "%s cannot list its keys (no SCAN); look a key up with inspect",
                             be->ops->name);
    if ((p = calloc(1, sizeof *p)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory");
    snprintf(p->cursor, sizeof p->cursor, "%s", cursor);
    if ((rc = be->ops->scan(be, &c->cfg, p->cursor, sizeof p->cursor, match, count, &p->items, &p->n)) < 0) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

const char *strata_key_page_cursor(const strata_key_page *p)
{
    return p ? p->cursor : "0";
}

size_t strata_key_page_count(const strata_key_page *p)
{
    return p ? p->n : 0;
}

int strata_key_page_item(const strata_key_page *p, size_t i, const char **key, size_t *keylen,
                         int64_t *size, int64_t *ttl_ms)
{
    if (p == NULL || i >= p->n)
        return strata__error(STRATA_EINVAL, "key page item %zu is out of range", i);
    if (key)
        *key = p->items[i].key.data;
    if (keylen)
        *keylen = p->items[i].key.len;
    if (size)
        *size = p->items[i].size;
    if (ttl_ms)
        *ttl_ms = p->items[i].ttl_ms;
    return 0;
}

void strata_key_page_free(strata_key_page *p)
{
    if (p == NULL)
        return;
    strata__scan_items_free(p->items, p->n);
    free(p);
}
