"""Tags: set(tags=...) and invalidate_tag(). While the C library has no tags
they raise NotSupported (a StrataError) and change nothing; once it has, the
same test checks that a tag bump invalidates the tagged entry."""
import re
from pathlib import Path

import pytest

import stratacache
from stratacache import _cache

from conftest import unique

HEADER = Path(__file__).resolve().parents[2] / "core" / "include" / "stratacache.h"


def test_tags_work_or_are_refused_cleanly(cache):
    k, other = unique(), unique()
    cache.set(other, b"untagged")
    try:
        cache.set(k, b"v", tags=["users", b"org:7"])
    except stratacache.NotSupported as e:
        assert e.code == -14 and e.name == "ENOTSUP" and "tag" in e.message
        assert cache.get(k) is None  # the refused write changed nothing
        with pytest.raises(stratacache.NotSupported, match="tag"):
            cache.invalidate_tag("users")
        assert cache.get(other) == b"untagged"
        return
    assert cache.get(k) == b"v"
    cache.invalidate_tag("users")
    assert cache.get(k) is None
    assert cache.get(other) == b"untagged"


def test_bad_tags(cache):
    with pytest.raises(TypeError, match="tags must be an iterable"):
        cache.set("k", b"v", tags="users")
    with pytest.raises(TypeError, match="tags must be an iterable"):
        cache.set("k", b"v", tags=7)
    with pytest.raises(TypeError, match=r"tags\[1\]"):
        cache.set("k", b"v", tags=["ok", 3])
    with pytest.raises(TypeError, match="tag must be str or bytes"):
        cache.invalidate_tag(None)
    assert cache.get("k") is None


def test_async_invalidate_tag(url, ns):
    import asyncio

    async def main():
        async with stratacache.AsyncCache(url, namespace=ns) as c:
            try:
                await c.invalidate_tag("users")
            except stratacache.NotSupported as e:
                assert "tag" in e.message

    asyncio.run(main())


def test_set_options_version_matches_header():
    m = re.search(r"#define STRATA_SET_OPTIONS_VERSION (\d+)", HEADER.read_text())
    assert m and int(m.group(1)) == _cache._SET_OPTIONS_VERSION
