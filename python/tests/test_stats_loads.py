"""Loads made by Python loaders are recorded in the C stats and the load
histogram through strata_record_load; the Python singleflight and fail-open
paths (which the C get_or_load never runs) are counted by the package."""
import asyncio
import socket
import threading
import time

import pytest

import stratacache

from conftest import unique


def delta(before, after, *names):
    return {n: after[n] - before[n] for n in names}


def test_loads_and_load_errors_are_counted(cache):
    before = cache.stats()
    h0 = cache.histogram("load")
    k = unique()
    assert cache.get_or_load(k, lambda _: b"v") == b"v"
    assert cache.get_or_load(k, lambda _: b"w") == b"v"  # a hit: no load

    def boom(_):
        raise KeyError("no such row")

    with pytest.raises(KeyError):
        cache.get_or_load(unique(), boom)
    with pytest.raises(TypeError):
        cache.get_or_load(unique(), lambda _: 42)  # not bytes: the load failed
    assert cache.get_or_load(unique(), lambda _: stratacache.NOT_FOUND) is None
    assert len(cache.get_many_or_load([unique(), unique()], lambda ks: {k: b"x" for k in ks})) == 2
    d = delta(before, cache.stats(), "loads", "load_errors", "hits")
    assert d["loads"] == 5  # four single loads, one batch
    assert d["load_errors"] == 2
    assert d["hits"] >= 1
    assert cache.histogram("load").count - h0.count == 5


def test_load_histogram_times_python_loaders(cache):
    h0 = cache.histogram("load")

    def slow(_):
        time.sleep(0.02)
        return b"v"

    for _ in range(3):
        cache.get_or_load(unique(), slow)
    h = cache.histogram("load")
    assert h.count - h0.count == 3
    assert h.sum_s - h0.sum_s >= 0.06
    new = [(b, n - n0) for (b, n), (_, n0) in zip(h.buckets, h0.buckets)]
    assert sum(n for _, n in new) == 3
    assert all(b >= 0.016 for b, n in new if n)  # 20 ms falls in the 32.8 ms bucket or above
    assert h.quantile(1.0) >= 0.016


def test_async_loads_are_recorded(url, ns):
    async def main():
        async with stratacache.AsyncCache(url, namespace=ns) as c:
            before = await c.stats()

            async def load(_):
                await asyncio.sleep(0.01)
                return b"v"

            async def fail(_):
                raise LookupError("gone")

            await c.get_or_load(unique(), load)
            await c.get_or_load(unique(), lambda _: b"sync")
            with pytest.raises(LookupError):
                await c.get_or_load(unique(), fail)
            after = await c.stats()
            assert after["loads"] - before["loads"] == 3
            assert after["load_errors"] - before["load_errors"] == 1
            assert (await c.histogram("load")).count == after["loads"]

    asyncio.run(main())


def test_threads_sharing_a_load_are_counted(make):
    c = make()
    n = 8
    k = unique("shared")
    release = threading.Event()
    calls = []

    def loader(key):
        calls.append(key)
        release.wait(10)
        return b"v"

    ths = [threading.Thread(target=c.get_or_load, args=(k, loader)) for _ in range(n)]
    for t in ths:
        t.start()
    # Every thread but the lease holder joins a flight (at most one other
    # thread may first poll the lease and lead the waiters' flight).
    deadline = time.monotonic() + 10
    while c.stats()["singleflight_shared"] < n - 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    for t in ths:
        t.join(10)
    st = c.stats()
    assert len(calls) == 1 and st["loads"] == 1
    assert n - 2 <= st["singleflight_shared"] <= n - 1
    line = next(s for s in c.prometheus().splitlines() if s.startswith("stratacache_singleflight_shared_total{"))
    assert int(line.rsplit(" ", 1)[1]) == st["singleflight_shared"]


def test_fail_open_loads_are_counted():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with stratacache.Cache(f"redis://127.0.0.1:{port}", timeout_ms=200, connect_timeout_ms=200) as c:
        assert c.get_or_load("k", lambda _: b"from source") == b"from source"
        st = c.stats()
        assert st["fail_open"] == 1 and st["loads"] == 1 and st["load_errors"] == 0
        assert st["backend_errors"] >= 1
