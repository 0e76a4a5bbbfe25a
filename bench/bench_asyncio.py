"""AsyncCache on one event loop against redis.asyncio, in one run, on one
Redis (scripts/bench-python.sh runs it in .venv-bench after bench_python.py).

  python bench/bench_asyncio.py REDIS_PORT [--rounds N] [--scale X]

Sides of the remote-hit rows (L1 off, a 100-byte value):
  native    AsyncCache.get on redis://: strata_op_lookup driven on the loop
  executor  AsyncCache(native=False).get: the same call on the thread pool
  redis     redis.asyncio GET (redis-py from the package index, its default
            parser: hiredis when installed, as bench-python.sh does)
each with 1 coroutine (calls one after the other) and 64 concurrent
coroutines (the calls split among them). Rounds of the sides are interleaved
and the side that goes first rotates, so all see the same machine noise; a
round's figure is the mean wall time per call; a row gives each side's median
and the median of the per-round ratios native/redis.asyncio (time: lower is
faster; target <= 1.0x) and native/executor, in wall time and in this
process's CPU time (what a loaded machine disturbs least; the executor's
CPU includes its pool threads').

The transport row measures the driver's choice of asyncio.Protocol over
asyncio streams: the same GET bytes and reply read raw over each, no
stratacache at all.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import time
from typing import Awaitable, Callable, Dict, List

import redis
import redis.asyncio

import stratacache

VALUE = b"v" * 100
Call = Callable[[], Awaitable[object]]


CPU: Dict[str, List[float]] = {}  # side -> CPU ns per call of each round (this process)


async def round_ns(call: Call, ops: int, conc: int, side: str = "") -> float:
    """Mean wall ns per call of ``ops`` calls made by ``conc`` coroutines
    (the process's CPU ns per call go to CPU[side])."""
    per = max(ops // conc, 1)

    async def worker() -> None:
        for _ in range(per):
            await call()

    t0, c0 = time.perf_counter_ns(), time.process_time_ns()
    if conc == 1:
        await worker()
    else:
        await asyncio.gather(*(worker() for _ in range(conc)))
    if side:
        CPU.setdefault(side, []).append((time.process_time_ns() - c0) / (per * conc))
    return (time.perf_counter_ns() - t0) / (per * conc)


async def measure(sides: Dict[str, Call], ops: int, conc: int, rounds: int) -> Dict[str, List[float]]:
    names = list(sides)
    for n in names:  # warm-up: connections opened, code paths hot
        await round_ns(sides[n], max(ops // 10, conc), conc)
    out: Dict[str, List[float]] = {n: [] for n in names}
    CPU.clear()
    gc.disable()
    try:
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                out[n].append(await round_ns(sides[n], ops, conc, n))
    finally:
        gc.enable()
    return out


def ratio(a: List[float], b: List[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


class RawProtocol(asyncio.Protocol):
    """One GET at a time: the reply is a bulk string of a known length."""

    def __init__(self, want: int) -> None:
        self.want = want
        self.buf = b""
        self.fut: "asyncio.Future[bytes] | None" = None
        self.transport: "asyncio.Transport | None" = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= self.want and self.fut is not None:
            fut, self.fut, got, self.buf = self.fut, None, self.buf, b""
            fut.set_result(got)

    async def get(self, req: bytes) -> bytes:
        assert self.transport is not None
        self.fut = asyncio.get_running_loop().create_future()
        self.transport.write(req)
        return await self.fut


async def main_async(port: int, rounds: int, scale: float) -> None:
    url = f"redis://127.0.0.1:{port}"
    ns = f"bench{os.getpid()}"
    native = stratacache.AsyncCache(url, namespace=ns, l1=False, timeout_ms=2000)
    pooled = stratacache.AsyncCache(url, namespace=ns, l1=False, timeout_ms=2000, native=False)
    rp = redis.asyncio.Redis(host="127.0.0.1", port=port)
    await native.set("k0", VALUE)
    await rp.set("raw:k0", VALUE)
    assert await native.get("k0") == VALUE and await pooled.get("k0") == VALUE
    assert await rp.get("raw:k0") == VALUE

    async def sc_native() -> object:
        return await native.get("k0")

    async def sc_pooled() -> object:
        return await pooled.get("k0")

    async def rp_get() -> object:
        return await rp.get("raw:k0")

    print(f"stratacache {stratacache.__version__}, Python {platform.python_version()}, redis-py "
          f"{redis.__version__}; {rounds} rounds, redis on {port}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'remote hit, L1 off':34s} {'native':>9s} {'executor':>9s} {'redis.aio':>9s}   "
          f"{'native/redis.aio':>16s} {'native/executor':>15s}")
    for conc, n in ((1, 2000), (64, 6400)):
        ops = max(int(n * scale), conc)
        t = await measure({"native": sc_native, "executor": sc_pooled, "redis": rp_get}, ops, conc, rounds)
        med = {k: statistics.median(v) / 1000 for k, v in t.items()}
        print(f"{'AsyncCache.get, ' + str(conc) + ' coroutine' + ('s' if conc > 1 else ''):34s} "
              f"{med['native']:9.2f} {med['executor']:9.2f} {med['redis']:9.2f}   "
              f"{ratio(t['native'], t['redis']):15.2f}x {ratio(t['native'], t['executor']):14.2f}x"
              f"   (wall us per call; target native/redis.aio <= 1.0x)", flush=True)
        cpu = {k: statistics.median(v) / 1000 for k, v in CPU.items()}
        print(f"{'  the same, CPU of this process':34s} {cpu['native']:9.2f} {cpu['executor']:9.2f} "
              f"{cpu['redis']:9.2f}   {ratio(CPU['native'], CPU['redis']):15.2f}x "
              f"{ratio(CPU['native'], CPU['executor']):14.2f}x   (CPU us per call)", flush=True)

    # The transport: Protocol + a future per reply vs StreamReader/Writer.
    req = b"*2\r\n$3\r\nGET\r\n$6\r\nraw:k0\r\n"
    want = len(b"$100\r\n") + 100 + 2
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: RawProtocol(want), "127.0.0.1", port)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def via_protocol() -> object:
        return await proto.get(req)

    async def via_streams() -> object:
        writer.write(req)
        return await reader.readexactly(want)

    t = await measure({"protocol": via_protocol, "streams": via_streams}, max(int(2000 * scale), 1), 1, rounds)
    print(f"{'raw GET: asyncio.Protocol vs streams':34s} {statistics.median(t['protocol']) / 1000:9.2f} "
          f"{statistics.median(t['streams']) / 1000:9.2f} {'':9s}   "
          f"{ratio(t['protocol'], t['streams']):15.2f}x   (protocol/streams, time)", flush=True)
    writer.close()
    assert proto.transport is not None
    proto.transport.close()
    await rp.aclose() if hasattr(rp, "aclose") else await rp.close()
    await native.close()
    await pooled.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("redis_port", type=int)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the calls per round")
    a = ap.parse_args()
    asyncio.run(main_async(a.redis_port, a.rounds, a.scale))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
