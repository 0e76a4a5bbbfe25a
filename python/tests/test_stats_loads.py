"""Python loads bypass the C loader path, where the C counters see loads; the
package counts them itself, so stats() reports loads made from Python too."""
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


def test_fail_open_loads_are_counted():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with stratacache.Cache(f"redis://127.0.0.1:{port}", timeout_ms=200, connect_timeout_ms=200) as c:
        assert c.get_or_load("k", lambda _: b"from source") == b"from source"
        st = c.stats()
        assert st["fail_open"] == 1 and st["loads"] == 1 and st["load_errors"] == 0
