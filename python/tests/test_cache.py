"""The behavioural suite, once per backend."""
import threading
import time

import pytest

import stratacache
from stratacache import NOT_FOUND, InvalidArgument, StrataError

from conftest import unique


def test_set_get_delete(cache):
    k = unique()
    assert cache.get(k) is None
    assert cache.get(k, b"dflt") == b"dflt"
    cache.set(k, b"value-1")
    assert cache.get(k) == b"value-1"
    cache.set(k, b"bin\0ary")
    assert cache.get(k) == b"bin\0ary"
    cache.set(k, b"")
    assert cache.get(k) == b""
    cache.set(k, bytearray(b"ba"))
    assert cache.get(k) == b"ba"
    assert cache.delete(k) is True
    assert cache.get(k) is None
    assert cache.delete(k) is False
    cache.invalidate(k)


def test_str_and_bytes_keys_are_the_same_key(cache):
    k = unique("ключ")
    cache.set(k, b"utf8")
    assert cache.get(k.encode("utf-8")) == b"utf8"
    cache.set(b"raw\xff\x00key" + k.encode(), b"binary-key")
    assert cache.get(b"raw\xff\x00key" + k.encode()) == b"binary-key"


def test_ttl_and_touch(cache):
    k = unique("ttl")
    cache.set(k, b"short", ttl=1)
    assert cache.get(k) == b"short"
    time.sleep(2.1)  # memcached expiries have 1 s resolution
    assert cache.get(k) is None
    cache.set(k, b"again", ttl=1)
    assert cache.touch(k, 60) is True
    time.sleep(2.1)
    assert cache.get(k) == b"again"
    assert cache.touch(unique("never"), 1) is False


def test_batch(cache):
    ks = [unique("b") for _ in range(4)]
    cache.set_many({ks[0]: b"a", ks[1]: b"bb", ks[2]: b"ccc"})
    assert cache.get_many(ks + [ks[1]]) == {ks[0]: b"a", ks[1]: b"bb", ks[2]: b"ccc"}
    assert cache.get_many([]) == {}
    cache.set_many({})


def test_namespaces_isolate(make):
    a, b = make(namespace="alpha" + unique()[:8]), make(namespace="beta" + unique()[:8])
    k = unique()
    a.set(k, b"from-a")
    b.set(k, b"from-b")
    assert a.get(k) == b"from-a"
    b.delete(k)
    assert a.get(k) == b"from-a"


def test_context_manager_and_close(url, ns):
    with stratacache.Cache(url, namespace=ns) as c:
        c.set("k", b"v")
        assert not c.closed
    assert c.closed
    c.close()  # twice is fine
    with pytest.raises(stratacache.Closed):
        c.get("k")


def test_bad_input(cache):
    with pytest.raises(InvalidArgument, match="key is empty") as ei:
        cache.get("")
    assert ei.value.name == "EKEY" and ei.value.code == -5
    assert isinstance(ei.value, ValueError)
    with pytest.raises(InvalidArgument, match="4097 bytes"):
        cache.set("x" * 4097, b"v")
    with pytest.raises(TypeError, match="key"):
        cache.get(42)
    with pytest.raises(TypeError, match="value"):
        cache.set("k", "a str is not bytes")
    with pytest.raises(TypeError, match="ttl"):
        cache.set("k", b"v", ttl="10")
    with pytest.raises(InvalidArgument, match="ttl"):
        cache.set("k", b"v", ttl=-1)
    with pytest.raises(TypeError, match="keys"):
        cache.get_many("abc")
    with pytest.raises(TypeError, match=r"keys\[1\]"):
        cache.get_many(["ok", 3])
    with pytest.raises(InvalidArgument, match="item 1"):
        cache.set_many({"ok": b"1", "": b"2"})
    assert cache.get("ok") is None  # all or nothing
    with pytest.raises(TypeError, match="loader"):
        cache.get_or_load("k", b"not callable")


def test_bad_urls_and_options():
    with pytest.raises(InvalidArgument) as ei:
        stratacache.Cache("nosuch://x")
    assert ei.value.name == "EURL"
    with pytest.raises(InvalidArgument) as ei:
        stratacache.Cache("memory://", no_such_option=1)
    assert ei.value.name == "EOPTION" and "no_such_option" in ei.value.message
    with pytest.raises(TypeError, match="url"):
        stratacache.Cache(b"memory://")
    with pytest.raises(TypeError, match="option pool_size"):
        stratacache.Cache("memory://", pool_size=[1])


def test_options_map_to_query():
    url = stratacache.build_url("redis://h:1", namespace="app", ttl=1.5, neg_ttl=0.25, stale=60,
                                l1=True, options={"pool_size": 8, "wait_policy": "fail"})
    assert url == ("redis://h:1?ns=app&ttl_ms=1500&neg_ttl_ms=250&stale_ms=60000&l1=1"
                   "&pool_size=8&wait_policy=fail")
    assert stratacache.build_url("memory://x?l1=1", ttl=2) == "memory://x?l1=1&ttl_ms=2000"


def test_l1_and_stats(make):
    c = make(l1=True)
    k = unique("l1")
    c.set(k, b"one")
    assert c.get(k) == b"one"
    c.set(k, b"two")
    assert c.get(k) == b"two"
    st = c.stats()
    assert st["l1_hits"] == 2 and st["sets"] == 2
    assert "version" not in st and all(isinstance(v, int) for v in st.values())


def test_get_or_load_basics(cache):
    calls = []

    def loader(key):
        calls.append(key)
        return b"loaded:" + key.encode()

    k = unique("gol")
    assert cache.get_or_load(k, loader) == b"loaded:" + k.encode()
    assert cache.get_or_load(k, loader) == b"loaded:" + k.encode()
    assert calls == [k]  # the loader gets the key as given
    assert cache.get(k) == b"loaded:" + k.encode()


def test_not_found_is_cached(cache):
    calls = []

    def loader(key):
        calls.append(key)
        return NOT_FOUND

    k = unique("neg")
    assert cache.get_or_load(k, loader) is None
    assert cache.get_or_load(k, loader, default=b"none") == b"none"
    assert len(calls) == 1
    assert cache.get(k) is None
    assert repr(NOT_FOUND) == "stratacache.NOT_FOUND"


class DatabaseDown(Exception):
    pass


def test_loader_exception_propagates_and_is_not_cached(cache):
    k = unique("err")

    def failing(key):
        raise DatabaseDown("database is down")

    with pytest.raises(DatabaseDown, match="database is down") as ei:
        cache.get_or_load(k, failing)
    assert any(tb.name == "failing" for tb in ei.traceback)  # traceback intact
    assert cache.get(k) is None
    # the lease was abandoned: the next caller loads at once
    t0 = time.monotonic()
    assert cache.get_or_load(k, lambda key: b"ok") == b"ok"
    assert time.monotonic() - t0 < 1.0


def test_loader_wrong_type_abandons_lease(cache):
    k = unique("type")
    with pytest.raises(TypeError, match="value must be bytes"):
        cache.get_or_load(k, lambda key: 42)
    assert cache.get_or_load(k, lambda key: b"fine") == b"fine"


def test_singleflight_32_threads(make):
    c = make(pool_size=8)
    k = unique("stampede")
    calls = []
    lock = threading.Lock()
    start = threading.Barrier(32)

    def loader(key):
        with lock:
            calls.append(key)
        time.sleep(0.1)
        return b"loaded:" + key.encode()

    results = [None] * 32

    def run(i):
        start.wait()
        results[i] = c.get_or_load(k, loader)

    ths = [threading.Thread(target=run, args=(i,)) for i in range(32)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert len(calls) == 1
    assert results == [b"loaded:" + k.encode()] * 32


def test_singleflight_shares_exceptions(make):
    c = make()
    k = unique("stampede-err")
    calls = []
    start = threading.Barrier(8)
    errors = []

    def loader(key):
        calls.append(key)
        time.sleep(0.1)
        raise DatabaseDown("down")

    def run():
        start.wait()
        try:
            c.get_or_load(k, loader)
        except DatabaseDown as e:
            errors.append(e)

    ths = [threading.Thread(target=run) for _ in range(8)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert len(errors) == 8
    assert len(calls) <= 2  # one flight; a late thread may start a second


def test_lease_across_handles(make):
    handles = [make(pool_size=4) for _ in range(4)]
    k = unique("cross")
    calls = []
    start = threading.Barrier(16)

    def loader(key):
        calls.append(key)
        time.sleep(0.1)
        return b"v"

    def run(i):
        start.wait()
        assert handles[i % 4].get_or_load(k, loader) == b"v"

    ths = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert len(calls) == 1


def test_lease_race_keeps_newer_write(make):
    loader_cache, writer = make(), make()
    k = unique("race")

    def slow_loader(key):
        writer.set(key, b"new")  # the source changed while we loaded
        return b"old-from-slow-loader"

    assert loader_cache.get_or_load(k, slow_loader) == b"old-from-slow-loader"
    assert writer.get(k) == b"new"


def test_stale_if_error(make):
    c = make(stale=60, xfetch_beta=0)
    k = unique("swr")
    c.set(k, b"old", ttl=0.2)
    time.sleep(0.3)

    def failing(key):
        raise DatabaseDown("down")

    assert c.get_or_load(k, failing) == b"old"
    assert c.get_or_load(k, lambda key: b"fresh") == b"fresh"
    assert c.get(k) == b"fresh"


def test_waiter_fail_policy(make):
    lead, fail = make(), make(lock_wait_ms=100, wait_policy="fail")
    k = unique("wait")
    rc, _, ticket, _ = lead._lookup(k.encode())
    assert rc == stratacache._cache.MISS_LEAD
    try:
        with pytest.raises(stratacache.Timeout) as ei:
            fail.get_or_load(k, lambda key: b"x")
        assert isinstance(ei.value, TimeoutError) and ei.value.name == "ETIMEOUT"
    finally:
        lead._abandon(ticket)


def test_get_many_or_load(cache):
    ks = [unique("gml") for _ in range(4)]
    cache.set(ks[0], b"present")
    calls = []

    def loader(missing):
        calls.append(list(missing))
        return {k: k.encode() for k in missing if k != ks[3]}

    want = {ks[0]: b"present", ks[1]: ks[1].encode(), ks[2]: ks[2].encode()}
    assert cache.get_many_or_load(ks, loader) == want
    assert calls == [ks[1:]]
    assert cache.get_many_or_load(ks, loader) == want
    assert len(calls) == 1  # ks[3] is cached as not found
    with pytest.raises(DatabaseDown):
        cache.get_many_or_load([unique()], lambda m: (_ for _ in ()).throw(DatabaseDown()))


def test_error_hierarchy():
    e = stratacache.Timeout(-4, "ETIMEOUT", "slow")
    assert isinstance(e, StrataError) and isinstance(e, TimeoutError)
    assert str(e) == "ETIMEOUT: slow" and e.code == -4 and e.message == "slow"
    import pickle
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is stratacache.Timeout and e2.name == "ETIMEOUT"
    assert issubclass(stratacache.BreakerOpen, stratacache.BackendError)
    assert issubclass(stratacache.InvalidArgument, ValueError)
