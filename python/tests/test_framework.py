"""The framework primitives through the package, on memory, redis and memcached:
clear, add, incr/decr, delete_many, set_many(tags=), lock, FOREVER, the ttl rule.
The cross-process contention test is in test_contention.py."""
import asyncio
import threading
import time

import pytest

import stratacache
from stratacache import FOREVER, InvalidArgument, LeaseLost, NotAnInteger

from conftest import backend_url, unique
from raw_backend import connect


def test_clear_misses_every_entry_and_another_handle_sees_it(make):
    a = make(serializer="json")
    b = make(serializer="json", tag_cache_ms=0)
    a.set("x", 1)
    a.set("y", 2, tags=["t"])
    assert a.get_or_load("z", lambda k: 3) == 3
    assert b.get("x") == 1
    a.clear()
    assert a.get("x") is None and a.get("y") is None and a.get("z") is None
    assert b.get("x") is None and b.get_many(["x", "y", "z"]) == {}
    a.set("x", 10)
    assert a.get("x") == 10 and b.get("x") == 10


def test_clear_leaves_other_namespaces(make, ns):
    a = make()
    other = make(namespace=ns + "other")
    a.set("k", b"a")
    other.set("k", b"other")
    a.clear()
    assert a.get("k") is None
    assert other.get("k") == b"other"


def test_clear_hooks_run_after_the_clear(cache):
    seen = []
    cache.set("k", b"v")
    cache.on_clear(lambda: seen.append(cache.get("k")))
    cache.clear()
    assert seen == [None]


def test_add_exactly_once(cache):
    k = unique()
    assert cache.add(k, b"first") is True
    assert cache.add(k, b"second") is False
    assert cache.get(k) == b"first"
    cache.delete(k)
    assert cache.add(k, b"again") is True
    cache.clear()
    assert cache.add(k, b"after clear") is True
    assert cache.get(k) == b"after clear"


def test_add_threads_one_winner(make):
    caches = [make() for _ in range(4)]
    for _ in range(10):
        k = unique()
        wins = []
        barrier = threading.Barrier(16)

        def race(i: int) -> None:
            barrier.wait()
            wins.append(caches[i % 4].add(k, b"v"))

        threads = [threading.Thread(target=race, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wins.count(True) == 1


@pytest.mark.parametrize("serializer", [None, "json", "pickle"])
def test_incr_counts_and_get_reads_the_number(make, serializer):
    c = make(serializer=serializer)
    k = unique()
    assert c.incr(k) == 1  # absent: starts at 0
    assert c.incr(k, 10) == 11
    assert c.decr(k, 12) == -1
    c.set(k, 41 if serializer else b"41")
    assert c.incr(k) == 42
    assert c.get(k) == (42 if serializer else b"42")


def test_incr_refuses_a_non_integer_and_changes_nothing(make):
    c = make(serializer="pickle")
    c.set("s", "text")
    with pytest.raises(NotAnInteger) as e:
        c.incr("s")
    assert "not a decimal integer" in str(e.value)
    assert c.get("s") == "text"
    c.set("big", 2**63 - 1)
    with pytest.raises(NotAnInteger, match="overflows"):
        c.incr("big")
    with pytest.raises(NotAnInteger):
        c.incr("big", 2**64)
    with pytest.raises(TypeError):
        c.incr("big", 1.5)  # type: ignore[arg-type]


def test_incr_keeps_the_ttl_unless_given(cache):
    k = unique()
    cache.set(k, b"1", ttl=0.4)
    time.sleep(0.15)
    cache.incr(k)
    time.sleep(0.35)
    assert cache.get(k) is None  # expired on the original schedule
    cache.incr(k, ttl=60)
    cache.incr(k)
    assert cache.get(k) == b"2"


def test_delete_many_counts_and_set_many_tags(cache):
    ks = [unique() for _ in range(3)]
    cache.set_many({ks[0]: b"a", ks[1]: b"b"}, ttl=60, tags=["grp"])
    assert cache.get_many(ks) == {ks[0]: b"a", ks[1]: b"b"}
    cache.invalidate_tag("grp")
    assert cache.get_many(ks) == {}
    cache.set_many({ks[0]: b"a", ks[1]: b"b"})
    assert cache.delete_many(ks) == 2
    assert cache.get_many(ks) == {}
    assert cache.delete_many([]) == 0
    with pytest.raises(TypeError):
        cache.delete_many("abc")


def test_forever_and_the_ttl_rule(cache, backend):
    k = unique()
    cache.set(k, b"v", ttl=FOREVER)
    assert cache.get(k) == b"v"
    assert cache.touch(k, 30) is True
    assert cache.touch(k, FOREVER) is True
    assert cache.touch(k) is True  # None: the cache's default
    assert cache.touch(unique()) is False
    for bad in (0, 0.0):
        with pytest.raises(InvalidArgument, match="ttl=0 is refused"):
            cache.set(k, b"x", ttl=bad)
        with pytest.raises(InvalidArgument, match="ttl=0"):
            cache.add(k, b"x", ttl=bad)
    assert cache.get(k) == b"v"


@pytest.mark.parametrize("backend", ["redis", "memcached"])
def test_forever_is_no_expiry_on_the_server(make, ns, backend):
    c = make()
    raw = connect(backend, backend_url(backend))
    try:
        c.set("f", b"v", ttl=FOREVER)
        if backend == "redis":
            assert int(raw.command(b"PTTL", f"{ns}:f".encode())) == -1  # no PX
        else:  # the meta protocol reports the remaining TTL: -1 is none
            raw.sock.sendall(f"mg {ns}:f t\r\n".encode())
            assert raw.file.readline().split() == [b"HD", b"t-1"]
    finally:
        raw.close()


def test_lock_basics_and_release_from_another_thread(make):
    a, b = make(), make()
    name = unique("lock")
    la, lb = a.lock(name, ttl=30), b.lock(name, ttl=30)
    assert la.acquire() is True
    assert lb.acquire(blocking=False) is False
    assert lb.acquire(timeout=0.05) is False
    assert lb.locked() is True
    with pytest.raises(LeaseLost):
        lb.release()
    la.extend(10)
    t = threading.Thread(target=la.release)
    t.start()
    t.join()
    assert la.locked() is False
    with lb:
        assert la.acquire(blocking=False) is False
    assert la.acquire(blocking=False) is True
    la.release()
    with pytest.raises(ValueError):
        la.acquire(blocking=False, timeout=1)
    with pytest.raises(InvalidArgument):
        a.lock(name, ttl=0)
    with pytest.raises(InvalidArgument):
        a.lock(name, ttl=FOREVER)


def test_lock_lost_is_reported(make):
    c = make()
    name = unique("lost")
    short, other = c.lock(name, ttl=0.3), c.lock(name, ttl=30)
    assert short.acquire()
    assert other.acquire(timeout=10)  # after short's TTL (memcached: whole seconds)
    with pytest.raises(LeaseLost):
        short.extend()
    with pytest.raises(LeaseLost):
        short.release()
    assert other.locked()
    other.release()


def test_async_cache_primitives(url, ns):
    async def main() -> None:
        async with stratacache.AsyncCache(url, namespace=ns, serializer="json") as c:
            assert await c.add("a", 1) is True
            assert await c.add("a", 2) is False
            assert await c.incr("n", 5) == 5
            assert await c.decr("n") == 4
            await c.set_many({"x": 1, "y": 2}, tags=["g"])
            assert await c.delete_many(["x", "y", "z"]) == 2
            assert await c.touch("a") is True
            lock = c.lock("job", ttl=10)
            async with lock:
                assert await lock.locked() is True
                other = c.lock("job", ttl=10)
                assert await other.acquire(timeout=0.05) is False
            assert await lock.locked() is False
            await c.clear()
            assert await c.get("a") is None

    asyncio.run(main())


def test_bad_namespace_is_named_as_given():
    with pytest.raises(InvalidArgument) as e:
        stratacache.Cache("memory://", namespace="my app")
    assert '"my app"' in str(e.value)
