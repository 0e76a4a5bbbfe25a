"""The Python package against the Python clients users would otherwise pick,
in one run, on one Redis (scripts/bench-python.sh runs it in .venv-bench).

  python bench/bench_python.py REDIS_PORT [--rounds N] [--scale X]

Method (as bench/bench_core.c): rounds of the two sides are interleaved (the
side that goes first alternates), so both see the same machine noise; each
round's figure is the mean time per call; each row reports the median of
each side and the median of the per-round ratios. Values are 100 bytes.
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import threading
import time
from typing import Callable, List, Tuple

import cachetools
import dogpile.cache
import redis
from redis._parsers import _HiredisParser, _RESP2Parser

import stratacache

VALUE = b"v" * 100


def round_ns(fn: Callable[[object], object], arg: object, ops: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(ops):
        fn(arg)
    return (time.perf_counter_ns() - t0) / ops


def measure_pair(a: Callable[[object], object], a_arg: object, b: Callable[[object], object], b_arg: object,
                 ops: int, rounds: int) -> Tuple[float, float, float]:
    """(median ns of A, median ns of B, median of per-round A/B)."""
    round_ns(a, a_arg, max(ops // 10, 1))  # warm-up
    round_ns(b, b_arg, max(ops // 10, 1))
    pa: List[float] = []
    pb: List[float] = []
    ratios: List[float] = []
    gc.disable()  # a collection landing in one side's round is noise
    try:
        for r in range(rounds):
            if r % 2 == 0:
                ta = round_ns(a, a_arg, ops)
                tb = round_ns(b, b_arg, ops)
            else:
                tb = round_ns(b, b_arg, ops)
                ta = round_ns(a, a_arg, ops)
            pa.append(ta)
            pb.append(tb)
            ratios.append(ta / tb)
    finally:
        gc.enable()
    return statistics.median(pa), statistics.median(pb), statistics.median(ratios)


def check(got: object, what: str) -> None:
    if got != VALUE:
        sys.exit(f"bench_python: {what} returned {got!r:.60}, not the 100-byte value")


def never_called(key: object) -> bytes:
    raise AssertionError(f"loader called for {key!r}: the entry should be a hit")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("redis_port", type=int)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the calls per round")
    args = ap.parse_args()
    port, rounds = args.redis_port, args.rounds

    def ops(n: int) -> int:
        return max(int(n * args.scale), 10)

    url = f"redis://127.0.0.1:{port}"
    remote = stratacache.Cache(url, namespace="pybench", l1=False, ttl=600)
    local = stratacache.Cache(url, namespace="pybench", l1=True, ttl=600)
    # redis-py picks the hiredis parser whenever the hiredis package is there
    # (as it is in .venv-bench); the pure-Python parser is what `pip install
    # redis` alone gives. Both are measured. dogpile uses the default (hiredis).
    rp = redis.Redis(connection_pool=redis.ConnectionPool(host="127.0.0.1", port=port,
                                                          parser_class=_RESP2Parser))
    rph = redis.Redis(connection_pool=redis.ConnectionPool(host="127.0.0.1", port=port,
                                                           parser_class=_HiredisParser))
    region = dogpile.cache.make_region().configure(
        "dogpile.cache.redis",
        expiration_time=600,
        arguments={"host": "127.0.0.1", "port": port, "redis_expiration_time": 1200,
                   "distributed_lock": True},
    )
    ttl = cachetools.TTLCache(maxsize=100_000, ttl=600)
    # The object tier (python/stratacache/_object_tier.py) against the same
    # caches without it: a json hit decodes again without it.
    plain_local = stratacache.Cache(url, namespace="pybench", l1=True, ttl=600, object_tier=False)
    jlocal = stratacache.Cache(url, namespace="pybenchj", l1=True, ttl=600, serializer="json")
    jplain = stratacache.Cache(url, namespace="pybenchj", l1=True, ttl=600, serializer="json", object_tier=False)
    doc = {f"field{i:02d}": "x" * 20 for i in range(32)}  # 1 KB of JSON
    jlocal.set("j0", doc)
    ttl["j0"] = doc
    for c in (jlocal, jplain):
        if c.get("j0") != doc or c.get("j0") != doc:
            sys.exit("bench_python: the json cache does not return the 1 KB dict")

    remote.set("k0", VALUE)
    rp.set("raw:k0", VALUE)
    region.set("dp:k0", VALUE)
    ttl["k0"] = VALUE
    check(remote.get("k0"), "Cache.get")
    check(rp.get("raw:k0"), "redis-py GET")
    check(rph.get("raw:k0"), "redis-py GET (hiredis parser)")
    check(region.get_or_create("dp:k0", never_called), "dogpile get_or_create")
    check(local.get("k0"), "Cache.get (L1)")
    check(local.get("k0"), "Cache.get (L1)")
    check(ttl.get("k0"), "TTLCache.get")
    check(plain_local.get("k0"), "Cache.get (L1, no object tier)")
    check(plain_local.get("k0"), "Cache.get (L1, no object tier)")
    check(remote.get_or_load("k0", never_called), "Cache.get_or_load")

    def sc_get_or_load(key: object) -> object:
        return remote.get_or_load(key, never_called)

    def dp_get_or_create(key: object) -> object:
        return region.get_or_create(key, never_called)

    def sc_l1_get_or_load(key: object) -> object:
        return local.get_or_load(key, never_called)

    def jl1_get_or_load(key: object) -> object:
        return jlocal.get_or_load(key, never_called)

    rows = []

    def row(name: str, a: Callable, a_arg: object, b: Callable, b_arg: object, n: int,
            target: str, per: str) -> None:
        ta, tb, r = measure_pair(a, a_arg, b, b_arg, ops(n), rounds)
        # "throughput": B's time over A's (how many times A's rate); "time": A/B.
        shown = 1.0 / r if per == "throughput" else r
        rows.append((name, ta, tb, shown, per, target))
        print(f"{name:62s} {ta / 1000:9.3f} {tb / 1000:9.3f}   {shown:6.2f}x {per:<10s} target {target}",
              flush=True)

    print(f"stratacache {stratacache.__version__}, Python {platform.python_version()}, "
          f"redis-py {redis.__version__}, dogpile.cache {dogpile.cache.__version__}, "
          f"cachetools {cachetools.__version__}; {rounds} rounds, redis on {port}")
    print(f"{'operation (A vs B)':62s} {'A (us)':>9s} {'B (us)':>9s}   ratio")
    row("remote hit, L1 off: Cache.get vs redis-py GET", remote.get, "k0", rp.get, "raw:k0", 3000,
        ">= 1.0x", "throughput")
    row("remote hit, L1 off: Cache.get vs redis-py GET, hiredis parser", remote.get, "k0", rph.get, "raw:k0",
        3000, "(info)", "throughput")
    row("get_or_load hit, L1 off vs dogpile get_or_create (redis)", sc_get_or_load, "k0", dp_get_or_create,
        "dp:k0", 3000, ">= 3x", "throughput")
    # With L1 off every hit is a round trip: this row says how close get_or_load
    # is to the floor (Cache.get is 1.00x raw hiredis in bench_core), which
    # bounds the row above at dogpile's time over one round trip.
    row("get_or_load hit vs Cache.get, both L1 off", sc_get_or_load, "k0", remote.get, "k0", 3000,
        "(info)", "time")
    row("get_or_load hit, L1 on vs dogpile get_or_create (redis)", sc_l1_get_or_load, "k0", dp_get_or_create,
        "dp:k0", 3000, ">= 3x", "throughput")
    row("L1 hit: Cache.get vs cachetools.TTLCache.get", local.get, "k0", ttl.get, "k0", 200_000,
        "<= 0.5x", "time")
    row("L1 hit, bytes, object_tier=False vs TTLCache.get", plain_local.get, "k0", ttl.get, "k0", 200_000,
        "(before)", "time")
    row("L1 hit, json 1 KB dict: Cache.get vs TTLCache.get", jlocal.get, "j0", ttl.get, "j0", 200_000,
        "<= 1.0x", "time")
    row("L1 hit, json 1 KB dict, object_tier=False vs TTLCache.get", jplain.get, "j0", ttl.get, "j0", 100_000,
        "(before)", "time")
    row("L1 hit, json 1 KB: Cache.get_or_load vs TTLCache.get", jl1_get_or_load, "j0", ttl.get, "j0", 200_000,
        "(info)", "time")
    row("L1 hit: Cache.get_or_load vs cachetools.TTLCache.get", sc_l1_get_or_load, "k0", ttl.get, "k0",
        200_000, "(info)", "time")
    for c in (remote, local, plain_local, jlocal, jplain):
        c.close()
    wb_rounds = max(rounds // 2, 3)
    for wb_url in (url, "memory://pybenchwb"):
        write_behind_rows(wb_url, ops(20000), wb_rounds)
    return 0


# --- write-behind delivery: C flusher threads calling the Python writer (push,
# what Cache(writer=...) uses) against a Python thread driving the pull API ---

def _pull_thread(cache: stratacache.Cache, writer: Callable[[dict], None], stop: threading.Event,
                 batch: int, idle_s: float) -> threading.Thread:
    from stratacache._native import ffi, lib

    def run() -> None:
        h = cache._enter()
        bp = ffi.new("strata_wb_batch **")
        k, kl = ffi.new("const char **"), ffi.new("size_t *")
        v, vl = ffi.new("const char **"), ffi.new("size_t *")
        while not stop.is_set():
            if lib.strata_wb_poll(h, batch, bp) != lib.STRATA_OK:
                time.sleep(idle_s)  # nothing due: a Python loop can only poll again later
                continue
            b = bp[0]
            items = {}
            for i in range(lib.strata_wb_batch_count(b)):
                lib.strata_wb_batch_item(b, i, k, kl, v, vl)
                items[ffi.unpack(k[0], kl[0])] = ffi.unpack(v[0], vl[0])
            try:
                writer(items)
            except Exception as e:
                lib.strata_wb_fail(b, str(e).encode())
            else:
                lib.strata_wb_ack(b)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def write_behind_rows(url: str, n: int, rounds: int) -> None:
    """Median seconds from the first write_behind to the last key reaching the
    writer, for n writes of distinct keys, push vs pull, rounds interleaved."""
    def one(mode: str, r: int) -> float:
        got = [0]
        done = threading.Event()

        def writer(items: dict) -> None:
            got[0] += len(items)
            if got[0] >= n:
                done.set()

        ns = f"pybenchwb{mode}{r}{os.getpid()}"
        stop = threading.Event()
        if mode == "push":
            c = stratacache.Cache(url, namespace=ns, writer=writer, wb_interval_ms=10)
        else:
            c = stratacache.Cache(url, namespace=ns, wb_threads=0)
            _pull_thread(c, writer, stop, 100, 0.01)
        t0 = time.perf_counter()
        for i in range(n):
            c.write_behind(f"k{i}", VALUE)
        if not done.wait(60):
            sys.exit(f"bench_python: {mode} delivered {got[0]} of {n} writes in 60 s")
        dt = time.perf_counter() - t0
        stop.set()
        c.close()
        return dt

    push: List[float] = []
    pull: List[float] = []
    ratios: List[float] = []
    for r in range(rounds):
        order = ("push", "pull") if r % 2 == 0 else ("pull", "push")
        res = {m: one(m, r) for m in order}
        push.append(res["push"])
        pull.append(res["pull"])
        ratios.append(res["pull"] / res["push"])
    mp, ml = statistics.median(push), statistics.median(pull)
    print(f"{'write_behind x' + str(n) + ' to the writer, ' + url.split(':')[0] + ': push vs pull':62s} "
          f"{mp * 1e6 / n:9.3f} {ml * 1e6 / n:9.3f}   {statistics.median(ratios):6.2f}x time(pull/push) "
          f"(us per write)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
