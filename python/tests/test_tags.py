"""Tags: set(tags=...), get_or_load(tags=...), Loaded(tags=...), the
decorator's tags, and invalidate_tag(), on every backend with L1 on and off.
A tag bump makes the entries stamped with it miss and leaves the rest alone."""
import asyncio
import re
from pathlib import Path

import pytest

import stratacache
from stratacache import Loaded, _cache

from conftest import unique

HEADER = Path(__file__).resolve().parents[2] / "core" / "include" / "stratacache.h"


@pytest.fixture(params=[False, True], ids=["l1off", "l1on"])
def tcache(make, request):
    # tag_cache_ms=0: every tag check asks the backend, so a bump made through
    # another handle is seen at once.
    return make(l1=request.param, tag_cache_ms=0)


def test_set_with_tags_then_invalidate_tag(tcache):
    users, org, other, plain = unique(), unique(), unique(), unique()
    t_users, t_org = unique("users"), unique("org")
    tcache.set(users, b"u", tags=[t_users, t_org.encode()])
    tcache.set(org, b"o", tags=[t_org])
    tcache.set(other, b"x", tags=[unique("other")])
    tcache.set(plain, b"p")
    assert tcache.get(users) == b"u" and tcache.get(org) == b"o"
    before = tcache.stats()
    tcache.invalidate_tag(t_users)
    assert tcache.get(users) is None
    assert tcache.get(org) == b"o"  # shares a tag with users, not the bumped one
    assert tcache.get(other) == b"x" and tcache.get(plain) == b"p"
    after = tcache.stats()
    assert after["tag_invalidations"] - before["tag_invalidations"] == 1
    assert after["tag_stale"] - before["tag_stale"] >= 1
    tcache.set(users, b"u2", tags=[t_users])  # a new write carries the new version
    assert tcache.get(users) == b"u2"
    tcache.invalidate_tag(t_org)
    assert tcache.get(org) is None and tcache.get(users) == b"u2"


def test_bump_through_another_handle(tcache, make):
    k, tag = unique(), unique("t")
    tcache.set(k, b"v", tags=[tag])
    assert tcache.get(k) == b"v"
    make(tag_cache_ms=0).invalidate_tag(tag)
    assert tcache.get(k) is None


def test_get_or_load_tags(tcache):
    k, tag = unique(), unique("t")
    calls = []

    def loader(key):
        calls.append(key)
        return f"v{len(calls)}".encode()

    assert tcache.get_or_load(k, loader, tags=[tag]) == b"v1"
    assert tcache.get_or_load(k, loader, tags=[tag]) == b"v1"
    tcache.invalidate_tag(unique("unrelated"))
    assert tcache.get_or_load(k, loader, tags=[tag]) == b"v1"
    tcache.invalidate_tag(tag)
    assert tcache.get_or_load(k, loader, tags=[tag]) == b"v2"
    assert len(calls) == 2


def test_loaded_carries_ttl_and_tags(tcache):
    k, neg, tag, static = unique(), unique(), unique("t"), unique("s")
    assert tcache.get_or_load(k, lambda _: Loaded(b"v", ttl=60, tags=[tag]), tags=[static]) == b"v"
    assert tcache.get(k) == b"v"
    assert tcache.get_or_load(neg, lambda _: Loaded(stratacache.NOT_FOUND, ttl=60), default=b"d") == b"d"
    assert tcache.get_or_load(neg, lambda _: b"never", default=b"d") == b"d"  # cached "not found"
    tcache.invalidate_tag(tag)  # a tag from the result
    assert tcache.get(k) is None
    assert tcache.get_or_load(k, lambda _: Loaded(b"w", tags=[tag]), tags=[static]) == b"w"
    tcache.invalidate_tag(static)  # a tag from the call: stamped too
    assert tcache.get(k) is None


def test_loaded_ttl_is_used(make):
    c = make()
    k = unique()
    c.get_or_load(k, lambda _: Loaded(b"short", ttl=1), ttl=1000)
    rc, data, ticket, _ = c._lookup(k.encode())  # ttl_ms left is in this thread's value
    c._abandon(ticket)
    assert data == b"short" and 0 < c._value().ttl_ms <= 1000


def test_get_many_or_load_tags(tcache):
    a, b, tag, per = unique(), unique(), unique("t"), unique("p")

    def loader(keys):
        return {keys[0]: b"A", keys[1]: Loaded(b"B", tags=[per])}

    assert tcache.get_many_or_load([a, b], loader, tags=[tag]) == {a: b"A", b: b"B"}
    tcache.invalidate_tag(per)
    assert tcache.get(a) == b"A" and tcache.get(b) is None
    tcache.invalidate_tag(tag)
    assert tcache.get(a) is None


def test_decorator_tags(tcache):
    calls = []

    @tcache.cached(key="user:{uid}:" + unique(), tags=["user:{uid}", "users"])
    def user(uid):
        calls.append(uid)
        return f"u{uid}-{len(calls)}".encode()

    assert user.cache_tags(7) == ["user:7", "users"]
    assert user(7) == b"u7-1" and user(8) == b"u8-2" and user(7) == b"u7-1"
    tcache.invalidate_tag("user:7")
    assert user(7) == b"u7-3" and user(8) == b"u8-2"
    tcache.invalidate_tag("users")
    assert user(8) == b"u8-4"

    @tcache.cached(key=lambda x: "cb:" + x, tags=lambda x: ["cb-" + x])
    def f(x):
        calls.append(x)
        return b"r"

    name = unique()
    f(name)
    n = len(calls)
    f(name)
    tcache.invalidate_tag("cb-" + name)
    f(name)
    assert len(calls) == n + 1


def test_bad_tags(cache):
    with pytest.raises(TypeError, match="tags must be an iterable"):
        cache.set("k", b"v", tags="users")
    with pytest.raises(TypeError, match="tags must be an iterable"):
        cache.set("k", b"v", tags=7)
    with pytest.raises(TypeError, match=r"tags\[1\]"):
        cache.set("k", b"v", tags=["ok", 3])
    with pytest.raises(TypeError, match="tag must be str or bytes"):
        cache.invalidate_tag(None)
    with pytest.raises(ValueError, match="tag 0 is empty"):
        cache.set("k", b"v", tags=[""])
    with pytest.raises(ValueError, match="at most 16"):
        cache.set("k", b"v", tags=[f"t{i}" for i in range(17)])
    with pytest.raises(TypeError, match="tags must be an iterable"):
        cache.get_or_load("k", lambda _: b"v", tags=b"one")
    with pytest.raises(ValueError, match="empty"):
        cache.get_or_load("k", lambda _: b"v", tags=[b""])
    assert cache.get("k") is None
    with pytest.raises(TypeError, match=r"tags\[0\]"):
        Loaded(b"v", tags=[1])
    with pytest.raises(TypeError, match="ttl must be a number"):
        Loaded(b"v", ttl="1")
    with pytest.raises(ValueError, match="ttl must be >= 0"):
        Loaded(b"v", ttl=-1)
    with pytest.raises(ValueError, match="tag 0 is empty"):  # from the loader's result
        cache.get_or_load("k", lambda _: Loaded(b"v", tags=[""]))
    assert cache.get("k") is None
    with pytest.raises(TypeError, match=r"tags\[0\] must be a str template"):
        cache.cached(tags=[1])
    with pytest.raises(TypeError, match="tags must be an iterable"):
        cache.cached(tags="users")


def test_async_tags(url, ns):
    async def main():
        async with stratacache.AsyncCache(url, namespace=ns, tag_cache_ms=0) as c:
            k, tag = unique(), unique("t")
            await c.set(k, b"v", tags=[tag])
            assert await c.get(k) == b"v"
            await c.invalidate_tag(tag)
            assert await c.get(k) is None

            async def load(_):
                return Loaded(b"L", tags=[tag])

            assert await c.get_or_load(k, load) == b"L"
            assert await c.get_or_load(k, load) == b"L"
            await c.invalidate_tag(tag)
            assert await c.get(k) is None
            assert await c.get_or_load(k, lambda _: b"S", tags=[tag]) == b"S"
            await c.invalidate_tag(tag)
            assert await c.get(k) is None
            assert await c.get_many_or_load([k], lambda ks: {ks[0]: b"M"}, tags=[tag]) == {k: b"M"}
            await c.invalidate_tag(tag)
            assert await c.get(k) is None

    asyncio.run(main())


def test_set_options_version_matches_header():
    m = re.search(r"#define STRATA_SET_OPTIONS_VERSION (\d+)", HEADER.read_text())
    assert m and int(m.group(1)) == _cache._SET_OPTIONS_VERSION
