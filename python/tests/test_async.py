import asyncio
import time

import pytest

import stratacache
from stratacache import NOT_FOUND

from conftest import unique


@pytest.fixture
def acache(url, ns):
    c = stratacache.AsyncCache(url, namespace=ns, timeout_ms=1000)
    yield c
    if not c.closed:
        c.cache.close()


def run(coro):
    return asyncio.run(coro)


def test_basics(acache):
    async def main():
        k = unique()
        assert await acache.get(k) is None
        await acache.set(k, b"v")
        assert await acache.get(k) == b"v"
        assert await acache.get_many([k, unique()]) == {k: b"v"}
        await acache.set_many({k: b"w"})
        assert await acache.touch(k, 10) is True
        assert await acache.delete(k) is True
        assert (await acache.stats())["sets"] >= 2
        with pytest.raises(stratacache.InvalidArgument, match="key is empty"):
            await acache.get("")
        with pytest.raises(TypeError, match="key"):
            await acache.get(1)

    run(main())


def test_coroutine_loader_singleflight_and_responsive_loop(acache):
    async def main():
        k = unique("async")
        calls = []
        ticks = 0
        done = False

        async def loader(key):
            calls.append(key)
            await asyncio.sleep(0.3)
            return b"loaded:" + key.encode()

        async def ticker():
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.ensure_future(ticker())
        t0 = time.monotonic()
        results = await asyncio.gather(*(acache.get_or_load(k, loader) for _ in range(16)))
        elapsed = time.monotonic() - t0
        done = True
        await t
        assert results == [b"loaded:" + k.encode()] * 16
        assert len(calls) == 1
        assert ticks >= elapsed / 0.01 * 0.5  # the loop kept running while we loaded

    run(main())


def test_async_loader_errors_and_not_found(acache):
    class Boom(Exception):
        pass

    async def main():
        async def failing(key):
            raise Boom("nope")

        k = unique()
        with pytest.raises(Boom):
            await acache.get_or_load(k, failing)
        assert await acache.get_or_load(k, lambda key: b"sync loader") == b"sync loader"
        k2 = unique()

        async def nf(key):
            return NOT_FOUND

        assert await acache.get_or_load(k2, nf, default=b"d") == b"d"
        assert await acache.get(k2) is None

        async def many(missing):
            return {m: m.encode() for m in missing}

        ks = [unique(), unique()]
        assert await acache.get_many_or_load(ks, many) == {x: x.encode() for x in ks}

    run(main())


def test_async_decorator_and_context_manager(url, ns):
    async def main():
        async with stratacache.AsyncCache(url, namespace=ns, serializer="json") as c:
            calls = []

            @c.cached(ttl=30)
            async def square(n):
                calls.append(n)
                return n * n

            assert await square(4) == 16 and await square(n=4) == 16
            assert calls == [4]
        assert c.closed

    run(main())
