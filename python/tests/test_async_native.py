"""AsyncCache on redis:// driven natively on the event loop (_aio_driver.py):
no pool thread, connections per server, deadlines on the loop, cancellation."""
import asyncio
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

import stratacache
from stratacache import NOT_FOUND, Loaded

from conftest import backend_url, unique


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """A pool that counts what is run on it: the native path runs nothing."""

    def __init__(self):
        super().__init__(max_workers=2)
        self.submitted = 0

    def submit(self, fn, *args, **kwargs):
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def rurl():
    return backend_url("redis")


def test_native_calls_run_no_thread(rurl, ns):
    ex = CountingExecutor()

    async def main():
        c = stratacache.AsyncCache(rurl, namespace=ns, timeout_ms=1000, executor=ex)
        assert c.native
        k, k2 = unique(), unique()
        assert await c.get(k) is None
        await c.set(k, b"v")
        assert await c.get(k) == b"v"
        assert await c.get_many([k, k2]) == {k: b"v"}
        assert await c.touch(k, 10) is True
        assert await c.touch(k2, 10) is False
        assert await c.delete(k) is True
        assert await c.delete(k) is False
        await c.invalidate(k)

        async def load(key):
            return b"loaded:" + key.encode()

        assert await c.get_or_load(k2, load) == b"loaded:" + k2.encode()
        assert await c.get(k2) == b"loaded:" + k2.encode()
        t = await c.get_or_load(unique(), load, tags=["grp"])
        await c.set(k, b"tagged", tags=["grp"])
        assert await c.get(k) == b"tagged"
        await c.invalidate_tag("grp")
        assert await c.get(k) is None
        assert t.startswith(b"loaded:")
        with pytest.raises(stratacache.InvalidArgument, match="key is empty"):
            await c.get("")
        assert ex.submitted == 0
        assert c._driver is not None and c._driver.live == 0
        await c.close()

    run(main())
    ex.shutdown()


def test_write_behind_is_native_and_delivered(rurl, ns):
    batches = []
    ex = CountingExecutor()

    async def main():
        c = stratacache.AsyncCache(rurl, namespace=ns, writer=batches.append, wb_threads=0, executor=ex)
        k = unique()
        assert await c.write_behind(k, b"behind") is True
        assert await c.get(k) == b"behind"
        assert ex.submitted == 0
        await c.flush(10)  # delivery is the library's (on the pool)
        assert {k.encode(): b"behind"} in batches
        await c.close()

    run(main())
    ex.shutdown()


def test_new_connections_select_the_url_database(rurl, ns):
    async def main():
        c = stratacache.AsyncCache(rurl + "/3", namespace=ns, timeout_ms=1000, pool_size=2)
        keys = [unique() for _ in range(8)]
        await asyncio.gather(*(c.set(k, b"in-3") for k in keys))  # on more than one connection
        assert c._driver.connections() == 2
        in3 = stratacache.Cache(rurl + "/3", namespace=ns)
        in0 = stratacache.Cache(rurl, namespace=ns)
        assert [in3.get(k) for k in keys] == [b"in-3"] * 8
        assert [in0.get(k) for k in keys] == [None] * 8
        in3.close()
        in0.close()
        await c.close()

    run(main())


def test_get_many_or_load_native(rurl, ns):
    ex = CountingExecutor()

    async def main():
        c = stratacache.AsyncCache(rurl, namespace=ns, timeout_ms=1000, executor=ex)
        ks = [unique() for _ in range(4)]
        await c.set(ks[0], b"cached")
        calls = []

        async def many(missing):
            calls.append(list(missing))
            return {m: m.encode() for m in missing if m != ks[3]}  # ks[3]: not found

        want = {ks[0]: b"cached", ks[1]: ks[1].encode(), ks[2]: ks[2].encode()}
        assert await c.get_many_or_load(ks + [ks[1]], many, tags=["g"]) == want
        assert calls == [ks[1:]]
        assert await c.get_many_or_load(ks, many) == want  # all cached now, "not found" too
        assert len(calls) == 1
        await c.invalidate_tag("g")
        assert await c.get(ks[1]) is None and await c.get(ks[0]) == b"cached"
        assert ex.submitted == 0 and c._driver.live == 0
        await c.close()

    run(main())
    ex.shutdown()


def test_memory_and_native_false_use_the_pool(rurl, ns):
    ex = CountingExecutor()

    async def main():
        for url, kw in (("memory://", {}), (rurl, {"native": False})):
            c = stratacache.AsyncCache(url, namespace=ns, executor=ex, **kw)
            assert not c.native
            await c.set("k", b"v")
            assert await c.get("k") == b"v"
        assert ex.submitted >= 4

    run(main())
    ex.shutdown()


def test_loader_results_forever_negative_and_own_tags(rurl, ns):
    async def main():
        c = stratacache.AsyncCache(rurl, namespace=ns, timeout_ms=1000)
        k = unique()

        async def forever(key):
            return b"kept"

        # FOREVER: the op's fill takes STRATA_TTL_FOREVER as strata_fill does
        assert await c.get_or_load(k, forever, ttl=stratacache.FOREVER) == b"kept"
        assert await c.get(k) == b"kept"
        assert c.cache.get(k) == b"kept"

        async def missing(key):
            return NOT_FOUND

        k2 = unique()
        assert await c.get_or_load(k2, missing, default=b"d") == b"d"
        assert await c.get_or_load(k2, forever, default=b"d") == b"d"  # cached "not found"

        async def own_tags(key):
            return Loaded(b"mine", tags=["own"])

        k3 = unique()
        assert await c.get_or_load(k3, own_tags) == b"mine"
        assert await c.get(k3) == b"mine"
        await c.invalidate_tag("own")
        assert await c.get(k3) is None
        await c.close()

    run(main())


def test_64_concurrent_cold_loads_one_load_few_sockets(rurl, ns):
    async def main():
        c = stratacache.AsyncCache(rurl, namespace=ns, timeout_ms=2000, pool_size=4)
        k = unique()
        calls = []

        async def loader(key):
            calls.append(key)
            await asyncio.sleep(0.2)
            return b"v"

        results = await asyncio.gather(*(c.get_or_load(k, loader) for _ in range(64)))
        assert results == [b"v"] * 64 and len(calls) == 1
        keys = [unique() for _ in range(64)]
        for key in keys[:8]:
            await c.set(key, key.encode())
        got = await asyncio.gather(*(c.get(key) for key in keys))
        assert got == [key.encode() for key in keys[:8]] + [None] * 56
        assert 1 <= c._driver.connections() <= 4  # pipelined, not 64 sockets
        assert c._driver.live == 0
        await c.close()

    run(main())


CHILD = textwrap.dedent("""
    import asyncio, sys, time
    import stratacache
    url, ns, key, log, start = sys.argv[1:6]

    async def main():
        c = stratacache.AsyncCache(url, namespace=ns, timeout_ms=2000, lock_wait_ms=5000)

        async def loader(k):
            with open(log, "a") as f:
                f.write("load\\n")
            await asyncio.sleep(0.5)
            return b"from-one-loader"

        await asyncio.sleep(max(0.0, float(start) - time.time()))
        rs = await asyncio.gather(*(c.get_or_load(key, loader) for _ in range(32)))
        assert set(rs) == {b"from-one-loader"}, rs
        await c.close()

    asyncio.run(main())
""")


def test_two_processes_one_load(rurl, ns):
    key = unique()
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "loads")
        script = os.path.join(tmp, "child.py")
        with open(script, "w") as f:
            f.write(CHILD)
        start = str(time.time() + 1.5)  # both processes begin together
        procs = [subprocess.Popen([sys.executable, script, rurl, ns, key, log, start]) for _ in range(2)]
        for p in procs:
            assert p.wait(30) == 0
        with open(log) as f:
            assert f.read().count("load") == 1


class OwnRedis:
    """A redis-server of this test's own, to pause with SIGSTOP."""

    def __init__(self, tmp):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{self.port}"

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def own_redis():
    if subprocess.run(["which", "redis-server"], capture_output=True).returncode != 0:
        pytest.skip("redis-server is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        r = OwnRedis(tmp)
        try:
            yield r
        finally:
            r.stop()


async def lateness_of(coro):
    """(coro's result or exception, its seconds, the worst lateness of a
    10 ms asyncio.sleep ticker running beside it)."""
    worst = 0.0
    done = False

    async def ticker():
        nonlocal worst
        while not done:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            worst = max(worst, time.monotonic() - t - 0.01)

    t = asyncio.ensure_future(ticker())
    t0 = time.monotonic()
    try:
        r = await coro
    except Exception as e:
        r = e
    elapsed = time.monotonic() - t0
    done = True
    await t
    return r, elapsed, worst


def test_paused_redis_fails_within_deadline_loop_keeps_serving(own_redis, ns):
    async def main():
        c = stratacache.AsyncCache(own_redis.url, namespace=ns, timeout_ms=1000, breaker_threshold=100)
        await c.set("k", b"v")
        baseline = (await lateness_of(c.get("k")))[2]
        own_redis.pause()
        try:
            r, elapsed, worst = await lateness_of(c.get("k"))
            assert isinstance(r, stratacache.Timeout), r
            assert 0.9 <= elapsed < 3.0
            # the loop ran the ticker all along: never blocked for the deadline
            assert worst < baseline + 0.5, (worst, baseline)

            async def loader(key):
                return b"from source"

            r, elapsed, worst = await lateness_of(c.get_or_load("k2", loader))
            assert r == b"from source"  # fail open, within the deadline
            assert elapsed < 3.0 and worst < baseline + 0.5
        finally:
            own_redis.resume()
        assert await c.get("k") == b"v"  # a new connection
        assert c._driver.live == 0
        await c.close()

    run(main())


def test_cancelled_in_flight_keeps_connection_in_step(own_redis, ns):
    async def main():
        c = stratacache.AsyncCache(own_redis.url, namespace=ns, timeout_ms=3000, pool_size=1)
        await c.set("a", b"A")
        await c.set("b", b"B")
        own_redis.pause()
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.get("a"), 0.2)
            behind = asyncio.ensure_future(c.get("b"))  # pipelined behind the cancelled one
            await asyncio.sleep(0.1)
        finally:
            own_redis.resume()
        assert await behind == b"B"  # its own reply, not the cancelled call's
        assert await c.get("a") == b"A"
        assert c._driver.connections() == 1  # the conversation ended cleanly: kept
        await asyncio.sleep(0.05)
        assert c._driver.live == 0  # the cancelled call's op was freed
        await c.close()

    run(main())


def test_cancelled_past_the_deadline_closes_connection(own_redis, ns):
    async def main():
        c = stratacache.AsyncCache(own_redis.url, namespace=ns, timeout_ms=300, pool_size=1)
        await c.set("a", b"A")
        own_redis.pause()
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.get("a"), 0.1)
            await asyncio.sleep(0.5)  # its deadline passes: the connection is closed
            assert c._driver.connections() == 0
            assert c._driver.live == 0
        finally:
            own_redis.resume()
        assert await c.get("a") == b"A"
        await c.close()

    run(main())


def test_cancelled_leader_gives_the_lease_back(rurl, ns):
    async def main():
        opts = dict(namespace=ns, timeout_ms=1000, lease_ttl_ms=20000, lock_wait_ms=20000)
        a = stratacache.AsyncCache(rurl, **opts)
        b = stratacache.AsyncCache(rurl, **opts)  # another holder of leases, as another process
        k = unique()
        started = asyncio.Event()

        async def hangs(key):
            started.set()
            await asyncio.sleep(60)

        async def quick(key):
            return b"second"

        leader = asyncio.ensure_future(a.get_or_load(k, hangs))
        follower = asyncio.ensure_future(a.get_or_load(k, quick))  # shares the leader's flight
        await started.wait()
        other = asyncio.ensure_future(b.get_or_load(k, quick))  # waits on the lease
        await asyncio.sleep(0.2)
        assert not other.done()
        leader.cancel()
        t0 = time.monotonic()
        assert await asyncio.wait_for(other, 5) == b"second"
        assert await asyncio.wait_for(follower, 5) == b"second"
        assert time.monotonic() - t0 < 5  # not the lease's 20 s
        with pytest.raises(asyncio.CancelledError):
            await leader
        await asyncio.sleep(0.05)
        assert a._driver.live == 0 and b._driver.live == 0
        await a.close()
        await b.close()

    run(main())


def test_l1_coherent_with_another_process_write(rurl, ns):
    async def main():
        c = stratacache.AsyncCache(rurl, namespace=ns, timeout_ms=1000, l1=True)
        other = stratacache.Cache(rurl, namespace=ns, timeout_ms=1000, l1=True)
        k = unique()
        await c.set(k, b"one")
        assert await c.get(k) == b"one"
        hits = (await c.stats())["l1_hits"]
        assert await c.get(k) == b"one"
        assert (await c.stats())["l1_hits"] > hits  # served from L1, no I/O
        child = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import stratacache
            stratacache.Cache({rurl!r}, namespace={ns!r}).set({k!r}, b"two")
        """)])
        assert child.returncode == 0
        deadline = time.monotonic() + 5
        while await c.get(k) != b"two":
            assert time.monotonic() < deadline, "the other process's write never evicted L1"
            await asyncio.sleep(0.01)
        other.close()
        await c.close()

    run(main())


def test_server_down_fails_fast_and_loads_fail_open(ns):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there

    async def main():
        c = stratacache.AsyncCache(f"redis://127.0.0.1:{port}", namespace=ns, timeout_ms=1000)
        t0 = time.monotonic()
        with pytest.raises(stratacache.BackendError, match="connect"):
            await c.get("k")

        async def loader(key):
            return b"from source"

        assert await c.get_or_load("k", loader) == b"from source"
        assert time.monotonic() - t0 < 3.0
        assert (await c.stats())["fail_open"] == 1
        assert c._driver.connections() == 0 and c._driver.live == 0
        await c.close()

    run(main())


def test_cancelled_while_connecting_frees_op(ns):
    silent = socket.socket()  # accepts connections (the kernel does) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]

    async def main():
        # /3: each new connection first sends a SELECT, which gets no reply
        c = stratacache.AsyncCache(f"redis://127.0.0.1:{port}/3", namespace=ns, timeout_ms=300)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(c.get("k"), 0.1)  # cancelled while the connection is set up
        await asyncio.sleep(0.6)  # the hello's deadline passes
        assert c._driver.live == 0 and c._driver.connections() == 0
        t0 = time.monotonic()
        with pytest.raises(stratacache.StrataError):
            await c.get("k")
        assert time.monotonic() - t0 < 3.0
        await c.close()

    try:
        run(main())
    finally:
        silent.close()


def test_cancelled_while_connecting_leaves_no_phantom_exchange(ns):
    async def fake_redis(reader, writer):
        """Answers the hello's SELECT after 0.3 s, then every command with a nil."""
        while True:
            data = await reader.read(65536)
            if not data:
                return
            if b"SELECT" in data:
                await asyncio.sleep(0.3)
                writer.write(b"+OK\r\n")
            else:
                writer.write(b"$-1\r\n" * data.count(b"*"))  # one nil per command (no '*' in these keys)

    async def main():
        server = await asyncio.start_server(fake_redis, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = stratacache.AsyncCache(f"redis://127.0.0.1:{port}/3", namespace=ns, timeout_ms=2000, pool_size=1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(c.get("a"), 0.1)  # cancelled before its request went out
        t0 = time.monotonic()
        assert await c.get("b") is None  # its own reply, on the one connection
        assert time.monotonic() - t0 < 1.5
        await asyncio.sleep(0.05)
        assert c._driver.live == 0
        await c.close()
        server.close()

    run(main())



def test_one_cache_across_event_loops(rurl, ns):
    c = stratacache.AsyncCache(rurl, namespace=ns, timeout_ms=1000)

    async def use(value):
        await c.set("k", value)
        return await c.get("k")

    async def left_in_flight():
        await c.set("k", b"first")
        asyncio.ensure_future(c.get("k"))  # asyncio.run cancels it at the end, in flight
        await asyncio.sleep(0)
        return c._driver

    first = run(left_in_flight())  # that loop closes with the connection open
    assert run(use(b"second")) == b"second"  # a new loop: connections of its own
    assert first.live == 0  # the first loop's cancelled call's op was freed

    async def close():
        await c.close()

    run(close())


def test_close_ends_background_finishes(rurl, ns):
    async def main():
        c = stratacache.AsyncCache(rurl, namespace=ns, timeout_ms=1000)
        started = asyncio.Event()

        async def hangs(key):
            started.set()
            await asyncio.sleep(60)

        leader = asyncio.ensure_future(c.get_or_load(unique(), hangs))
        await started.wait()
        leader.cancel()
        await asyncio.sleep(0)  # its lease's give-back is now a background task
        d = c._driver
        await c.close()
        await asyncio.sleep(0.1)
        assert d.live == 0 and d.connections() == 0  # nothing opened after close()

    run(main())
