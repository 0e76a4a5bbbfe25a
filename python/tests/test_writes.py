"""Write-through and write-behind with Python writers, on every backend."""
import asyncio
import threading
import time
import traceback

import pytest

import stratacache
import stratacache._errors

from conftest import unique


class SourceError(Exception):
    pass


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_write_through_writes_source_then_cache(make):
    c = make(serializer="json")
    k = unique()
    seen = []
    assert c.write_through(k, {"n": 1}, lambda key, value: seen.append((key, value))) is True
    assert seen == [(k, {"n": 1})]  # the caller's own objects
    assert c.get(k) == {"n": 1}


def test_write_through_writer_exception_propagates_and_cache_is_untouched(cache):
    k = unique()
    cache.set(k, b"old")
    err = SourceError("constraint violated")

    def writer(key, value):
        raise err

    with pytest.raises(SourceError) as info:
        cache.write_through(k, b"new", writer)
    assert info.value is err
    assert "raise err" in "".join(traceback.format_tb(info.value.__traceback__))
    assert cache.get(k) == b"old"


def test_write_through_beats_an_older_load(make):
    c = make()
    k = unique()
    loading, release = threading.Event(), threading.Event()
    got = []

    def slow_loader(_):
        loading.set()
        release.wait(10)
        return b"from before the write"

    t = threading.Thread(target=lambda: got.append(c.get_or_load(k, slow_loader)))
    t.start()
    assert loading.wait(10)
    assert c.write_through(k, b"written", lambda key, value: None)
    release.set()
    t.join(10)
    assert got == [b"from before the write"]  # the loader's caller gets its value
    assert c.get(k) == b"written"  # but its fill was refused


def test_write_behind_pull_only_flush_runs_writer_inline(make):
    batches = []
    c = make(writer=batches.append, wb_threads=0)
    k1, k2 = unique(), unique()
    assert c.write_behind(k1, b"a") is True
    assert c.write_behind(k1, b"b") is True
    assert c.write_behind(k2, b"c", ttl=60) is True
    assert c.get(k1) == b"b" and c.get(k2) == b"c"  # the cache is written at once
    assert batches == []  # no flusher threads
    c.flush(10)
    delivered = {}
    for b in batches:
        delivered.update(b)
    assert delivered == {k1.encode(): b"b", k2.encode(): b"c"}  # coalesced: the latest value
    st = c.stats()
    assert st["wb_enqueued"] == 3 and st["wb_flushed"] >= 2 and st["wb_backlog"] == 0


def test_write_behind_push_with_json(make):
    got = {}
    lock = threading.Lock()

    def writer(batch):
        with lock:
            got.update(batch)

    c = make(writer=writer, serializer="json", wb_interval_ms=20)
    keys = [unique() for _ in range(20)]
    assert c.write_behind_many({k: {"i": i} for i, k in enumerate(keys)}) is True
    assert c.write_behind_many({}) is True
    assert wait_for(lambda: len(got) == len(keys))
    assert got == {k.encode(): {"i": i} for i, k in enumerate(keys)}
    assert threading.current_thread() is threading.main_thread()
    c.flush(10)
    assert c.stats()["wb_flushed"] >= len(keys)


def test_write_behind_failed_batch_is_retried(make, caplog):
    fails = [2]
    got = []

    def writer(batch):
        if fails[0]:
            fails[0] -= 1
            raise SourceError("db down")
        got.append(batch)

    c = make(writer=writer, wb_threads=0, wb_retry_ms=10, wb_retry_max_ms=20, wb_max_attempts=10)
    k = unique()
    c.write_behind(k, b"v")
    c.flush(10)
    assert got == [{k.encode(): b"v"}]
    st = c.stats()
    assert st["wb_retried"] >= 2 and st["wb_dead"] == 0
    assert "db down" in caplog.text


def test_flush_timeout_and_backpressure(make):
    def writer(batch):
        raise SourceError("always down")

    c = make(writer=writer, wb_threads=0, wb_retry_ms=10000, wb_max_attempts=100, wb_max_backlog=2,
             wb_block_ms=0, wb_drain_ms=100)
    c.write_behind(unique(), b"1")
    c.write_behind(unique(), b"2")
    with pytest.raises(stratacache.Busy):
        c.write_behind(unique(), b"3")
    with pytest.raises(stratacache.Timeout):
        c.flush(0.2)


def test_write_misuse(make, cache):
    with pytest.raises(TypeError, match="writer must be callable"):
        make(writer=42)
    with pytest.raises(TypeError, match="writer must be callable"):
        cache.write_through("k", b"v", None)
    with pytest.raises(TypeError, match="key must be str or bytes"):
        cache.write_through(1, b"v", lambda k, v: None)
    with pytest.raises(TypeError, match="key must be str or bytes"):
        cache.write_behind(None, b"v")
    with pytest.raises(TypeError, match="value must be bytes"):
        cache.write_behind("k", 5)
    with pytest.raises(TypeError, match="timeout must be a number"):
        cache.flush("soon")
    with pytest.raises(ValueError, match="timeout must be >= 0"):
        cache.flush(-1)
    with pytest.raises(TypeError, match="mapping must be a mapping"):
        cache.write_behind_many([("k", b"v")])
    assert cache.get("k") is None


def test_async_writes(url, ns):
    async def main():
        batches = []
        async with stratacache.AsyncCache(url, namespace=ns, writer=batches.append, wb_threads=0) as c:
            k = unique()
            seen = []

            async def writer(key, value):
                await asyncio.sleep(0)
                seen.append((key, value))

            assert await c.write_through(k, b"v", writer) is True
            assert seen == [(k, b"v")] and await c.get(k) == b"v"

            async def failing(key, value):
                raise SourceError("no")

            with pytest.raises(SourceError):
                await c.write_through(k, b"w", failing)
            assert await c.get(k) == b"v"
            assert await c.write_behind(k, b"behind")
            await c.flush(10)
            assert {k.encode(): b"behind"} in batches

    asyncio.run(main())


def test_options_version_and_estale_match_header():
    import re
    from pathlib import Path

    from stratacache import _cache
    from stratacache._native import lib

    header = (Path(__file__).resolve().parents[2] / "core" / "include" / "stratacache.h").read_text()
    m = re.search(r"#define STRATA_OPTIONS_VERSION (\d+)", header)
    assert m and int(m.group(1)) == _cache._OPTIONS_VERSION
    assert issubclass(stratacache._errors.error_class(lib.STRATA_ESTALE), stratacache.StaleCache)
    assert lib.STRATA_INVALIDATED > 0


def test_write_through_reports_a_cache_it_could_not_update(backend, url, ns):
    if backend != "redis":
        pytest.skip("needs a server that can be paused from the writer (CLIENT PAUSE)")
    from raw_backend import connect

    raw = connect("redis", url)
    k = unique()
    c = stratacache.Cache(url, namespace=ns, timeout_ms=100, breaker_threshold=0)
    c.set(k, b"old")

    def writer(key, value):
        # The source is written; then the cache refuses writes for 2 s, so
        # neither the update nor the invalidation (nor its retries) can land.
        raw.command(b"CLIENT", b"PAUSE", b"2000", b"WRITE")

    try:
        with pytest.raises(stratacache.StaleCache) as info:
            c.write_through(k, b"new", writer)
        assert isinstance(info.value, stratacache.BackendError) and info.value.name == "ESTALE"
    finally:
        raw.command(b"CLIENT", b"UNPAUSE")
        raw.close()
        c.close()


def test_write_behind_journal_survives_reopening(backend, url, ns, tmp_path):
    if backend == "redis":
        pytest.skip("the journal file is for memory:// and memcached:// (redis keeps a stream)")
    journal = str(tmp_path / "wb.journal")
    k = unique()
    c = stratacache.Cache(url, namespace=ns, wb_journal=journal, wb_threads=0, wb_drain_ms=0)
    c.write_behind(k, b"durable")
    c.close()  # nothing delivered: no writer
    got = []
    with stratacache.Cache(url, namespace=ns, wb_journal=journal, writer=got.append, wb_threads=0) as c2:
        c2.flush(10)
    assert got == [{k.encode(): b"durable"}]


def test_coroutine_writers_are_refused_not_dropped(make, cache):
    async def save(key, value):
        pass

    async def save_batch(batch):
        pass

    with pytest.raises(TypeError, match="writer must be a plain function"):
        make(writer=save_batch)
    k = unique()
    cache.set(k, b"old")
    with pytest.raises(TypeError, match="returned an awaitable"):
        cache.write_through(k, b"new", save)  # the sync Cache cannot await it
    assert cache.get(k) == b"old"
