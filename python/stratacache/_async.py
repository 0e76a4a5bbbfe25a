"""AsyncCache: the Cache's methods as coroutines.

On redis:// the reads and writes that have an operation form in the core
(docs/SANS-IO.md) run natively on the event loop: each call begins a
strata_op_*, and _aio_driver.py moves its bytes over asyncio connections
kept per server, with the op's deadlines on the loop's timers and lease
waits as asyncio.sleep: get, set, delete, invalidate, invalidate_tag,
touch, get_many, get_or_load (so cached()), get_many_or_load and
write_behind (a plain loader still runs on the pool). L1 and
object-tier hits are served without any I/O. The C handle is an ordinary
one, shared with the calls below, so its L1 is kept coherent by the
library's own invalidation link exactly as a Cache's is.

The rest has no operation form and runs on a thread pool: set_many,
delete_many, clear, add, incr, decr, lock, write_through,
write_behind_many, flush, stats, histogram, prometheus, hot_keys. On
memory:// and memcached:// (no op API) every call does. cffi API mode
releases the GIL around every C call, so backend round trips in the pool
threads do not block the event loop. Loaders may be coroutine functions
(awaited on the loop) or plain functions (run in the pool).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import time
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, TypeVar, Union, cast, overload

from urllib.parse import parse_qsl

from ._cache import (
    HIT_REFRESH,
    HIT_STALE,
    MISS,
    MISS_LEAD,
    MISS_WAIT,
    NEGATIVE,
    NOT_FOUND,
    OK,
    _FAIL_OPEN,
    _SET_OPTIONS_VERSION,
    Cache,
    Key,
    Serializer,
    _Prepared,
    _key_bytes,
    _missing_keys,
    _ms,
    _ttl_ms,
    _raise,
    _tag_arrays,
    _tag_bytes,
)
from . import _metrics
from ._aio_driver import Held, LoopDriver
from ._errors import Timeout, error_class
from ._lock import AsyncLock
from ._loaded import Loaded
from ._object_tier import MISSED
from ._typing import AsyncCachedFunction, P, R
from ._native import ffi, lib

log = logging.getLogger("stratacache")
T = TypeVar("T")
D = TypeVar("D")
K = TypeVar("K", str, bytes)

_unpack = ffi.unpack
_NULL = ffi.NULL
_op_result = lib.strata_op_result
_SERVED = (OK, HIT_STALE, HIT_REFRESH)


def _raise_op(op: Any, rc: int) -> Any:
    """Raises the error an op ended with (its own message: strata_op_error)."""
    msg = ffi.string(lib.strata_op_error(op)).decode("utf-8", "replace")
    name = ffi.string(lib.strata_error_name(rc)).decode("ascii", "replace")
    raise error_class(rc)(rc, name, msg)


class AsyncCache:
    """Same constructor as Cache, plus ``max_workers`` (pool threads; default
    the backend pool size or 8) or an ``executor`` of your own, and
    ``native`` (default True: on redis:// the calls with an op form run on
    the event loop itself; False runs every call on the pool, as before).
    Native connections: up to the ``pool_size`` option per server and event
    loop, calls pipelined on them when all are busy."""

    def __init__(
        self,
        url: str = "memory://",
        namespace: Optional[str] = None,
        ttl: Optional[float] = None,
        neg_ttl: Optional[float] = None,
        stale: Optional[float] = None,
        l1: Optional[bool] = None,
        serializer: Serializer = None,
        *,
        writer: Optional[Callable[[Dict[bytes, Any]], Any]] = None,
        executor: Optional[concurrent.futures.Executor] = None,
        max_workers: Optional[int] = None,
        native: bool = True,
        **options: Any,
    ) -> None:
        if not isinstance(native, bool):
            raise TypeError(f"native must be a bool, not {type(native).__name__}")
        self.cache = Cache(url, namespace, ttl, neg_ttl, stale, l1, serializer, writer=writer, **options)
        self._own_executor = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers or int(options.get("pool_size", 8)),
            thread_name_prefix="stratacache",
        )
        self._flights: Dict[bytes, "asyncio.Future[Any]"] = {}
        q = dict(parse_qsl(self.cache.url.partition("?")[2]))
        #: whether the calls with an op form run on the event loop
        self.native = native and self.cache.url.startswith("redis://")
        self._per_server = int(q.get("pool_size", "4"))
        self._connect_timeout = int(q.get("connect_timeout_ms", "1000")) / 1000.0
        self._drivers: Dict[asyncio.AbstractEventLoop, LoopDriver] = {}
        self._driver: Optional[LoopDriver] = None  # the last one used
        self._plain = ffi.new("strata_op_options *")  # a read without a lease (Cache.get)
        lib.strata_op_options_init(self._plain, 1)
        self._plain.lease = 0
        self._lease = ffi.new("strata_op_options *")  # a read that takes the lease on a miss (lookup)
        lib.strata_op_options_init(self._lease, 1)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def _loop_driver(self, h: Any) -> LoopDriver:
        """This event loop's driver (connections are a loop's own)."""
        loop = asyncio.get_running_loop()
        d = self._driver
        if d is not None and d.loop is loop:
            return d
        d = self._drivers.get(loop)
        if d is None:
            for old in [lp for lp in self._drivers if lp.is_closed()]:
                self._drivers.pop(old).close()
            d = self._drivers[loop] = LoopDriver(h, loop, self._per_server, self._connect_timeout)
        self._driver = d
        return d

    async def _drive(self, d: LoopDriver, rc: int) -> Held:
        """Drives the op a begin call just made (rc its result) to DONE; the
        caller reads the result and then d.release()s it."""
        if rc < 0:
            _raise(rc)
        held = d.held()
        try:
            await d.drive(held)
        except BaseException:
            d.release(held)
            raise
        return held

    async def _write(self, d: LoopDriver, rc: int) -> int:
        """A write op to its end: its result code (raises on errors)."""
        held = await self._drive(d, rc)
        try:
            rc = _op_result(held.op, _NULL)
            if rc < 0:
                _raise_op(held.op, rc)
            return int(rc)
        finally:
            d.release(held)

    # -- lifetime --------------------------------------------------------------

    async def close(self) -> None:
        for d in self._drivers.values():
            d.close()
        self._drivers.clear()
        self._driver = None
        await self._run(self.cache.close)
        if self._own_executor:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> "AsyncCache":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self.cache.closed

    # -- cache-aside -------------------------------------------------------------

    async def get(self, key: Key, default: Any = None) -> Any:
        kb = _key_bytes(key)
        if not self.native:
            return await self._run(self.cache.get, key, default)
        c = self.cache
        h = c._enter()
        v = c._value()
        tier = c._objects
        if tier is not None:  # no I/O: L1 says whether the kept object still serves the key
            obj = tier.get(h, kb, v, c._tls.ver, default)
            if obj is not MISSED:
                return obj
        d = self._loop_driver(h)
        held = await self._drive(d, lib.strata_op_lookup(d.opp, h, kb, len(kb), self._plain))
        try:
            rc = _op_result(held.op, v)
            if rc == OK or rc == HIT_STALE:
                data = _unpack(v.data, v.len)
                return data if c._raw else c._loads(data)
            if rc < 0:
                _raise_op(held.op, rc)
            return default
        finally:
            d.release(held)

    async def set(self, key: Key, value: Any, ttl: Optional[float] = None, tags: Iterable[Key] = ()) -> None:
        kb = _key_bytes(key)
        if not self.native:
            await self._run(self.cache.set, key, value, ttl, _tag_bytes(tags))
            return
        c = self.cache
        data = c._dumps(value)
        opts = ffi.new("strata_set_options *")
        lib.strata_set_options_init(opts, _SET_OPTIONS_VERSION)
        opts.ttl_ms = _ttl_ms(ttl)
        tbs = _tag_bytes(tags)
        if tbs:
            tag_ptrs, tag_lens, keep = _tag_arrays(tbs)  # noqa: F841 (keep: alive for the begin call)
            opts.tags, opts.taglens, opts.ntags = tag_ptrs, tag_lens, len(tbs)
        h = c._enter()
        d = self._loop_driver(h)
        await self._write(d, lib.strata_op_set(d.opp, h, kb, len(kb), data, len(data), opts))

    async def delete(self, key: Key) -> bool:
        kb = _key_bytes(key)
        if not self.native:
            return await self._run(self.cache.delete, key)
        h = self.cache._enter()
        d = self._loop_driver(h)
        return bool(await self._write(d, lib.strata_op_delete(d.opp, h, kb, len(kb))) == OK)

    async def invalidate(self, key: Key) -> None:
        kb = _key_bytes(key)
        if not self.native:
            await self._run(self.cache.invalidate, key)
            return
        h = self.cache._enter()
        d = self._loop_driver(h)
        await self._write(d, lib.strata_op_delete(d.opp, h, kb, len(kb)))  # a miss is no error here

    async def invalidate_tag(self, tag: Key) -> None:
        tb = _key_bytes(tag, "tag")
        if not self.native:
            await self._run(self.cache.invalidate_tag, tag)
            return
        h = self.cache._enter()
        d = self._loop_driver(h)
        await self._write(d, lib.strata_op_invalidate_tag(d.opp, h, tb, len(tb)))

    async def touch(self, key: Key, ttl: Optional[float] = None) -> bool:
        kb = _key_bytes(key)
        if not self.native:
            return await self._run(self.cache.touch, key, ttl)
        ms = _ttl_ms(ttl)
        h = self.cache._enter()
        d = self._loop_driver(h)
        return bool(await self._write(d, lib.strata_op_touch(d.opp, h, kb, len(kb), ms)) == OK)

    async def get_many(self, keys: Iterable[Key]) -> Dict[Key, Any]:
        if isinstance(keys, (str, bytes)):
            raise TypeError("keys must be an iterable of keys, not a single key")
        keys = list(keys)
        if not self.native:
            return await self._run(self.cache.get_many, keys)
        if not keys:
            return {}
        c = self.cache
        kbs = [_key_bytes(k, f"keys[{i}]") for i, k in enumerate(keys)]
        keep = [ffi.from_buffer(k) for k in kbs]
        karr = ffi.new("const char *[]", keep)
        lens = ffi.new("size_t[]", [len(k) for k in kbs])
        h = c._enter()
        d = self._loop_driver(h)
        held = await self._drive(d, lib.strata_op_get_many(d.opp, h, len(kbs), karr, lens, self._plain))
        raw: List[Tuple[Key, bytes]] = []
        try:
            rc = _op_result(held.op, _NULL)
            if rc < 0:
                _raise_op(held.op, rc)
            v = c._value()
            for i, k in enumerate(keys):
                if lib.strata_op_item(held.op, i, v) in _SERVED:
                    raw.append((k, _unpack(v.data, v.len)))
        finally:
            d.release(held)
        return {k: c._loads(b) for k, b in raw}

    async def set_many(self, mapping: Mapping[Key, Any], ttl: Optional[float] = None,
                       tags: Optional[Iterable[Key]] = None) -> None:
        """On the thread pool (no op form)."""
        await self._run(self.cache.set_many, dict(mapping), ttl, None if tags is None else _tag_bytes(tags))

    # -- framework primitives (docs/FRAMEWORKS.md) --------------------------------

    async def clear(self) -> None:
        await self._run(self.cache.clear)

    async def add(self, key: Key, value: Any, ttl: Optional[float] = None) -> bool:
        _key_bytes(key)
        return await self._run(self.cache.add, key, value, ttl)

    async def incr(self, key: Key, delta: int = 1, ttl: Optional[float] = None) -> int:
        _key_bytes(key)
        return await self._run(self.cache.incr, key, delta, ttl)

    async def decr(self, key: Key, delta: int = 1, ttl: Optional[float] = None) -> int:
        _key_bytes(key)
        return await self._run(self.cache.decr, key, delta, ttl)

    async def delete_many(self, keys: Iterable[Key]) -> int:
        if isinstance(keys, (str, bytes)):
            raise TypeError("keys must be an iterable of keys, not a single key")
        return await self._run(self.cache.delete_many, list(keys))

    def lock(self, name: Key, ttl: float) -> AsyncLock:
        """Cache.lock's AsyncLock: ``async with cache.lock("job", ttl=30):``."""
        return AsyncLock(self, name, ttl)

    async def write_through(self, key: Key, value: Any, writer: Callable[[Key, Any], Any],
                            ttl: Optional[float] = None) -> bool:
        """As Cache.write_through; a coroutine writer is awaited on the loop."""
        if not callable(writer):
            raise TypeError(f"writer must be callable, not {type(writer).__name__}")
        _key_bytes(key)
        if not inspect.iscoroutinefunction(writer):
            return await self._run(self.cache.write_through, key, value, writer, ttl)
        loop = asyncio.get_running_loop()

        def sync_writer(k: Key, v: Any) -> Any:
            # Runs in a pool thread, inside the C call; the coroutine on the loop.
            return asyncio.run_coroutine_threadsafe(writer(k, v), loop).result()

        return await self._run(self.cache.write_through, key, value, sync_writer, ttl)

    async def write_behind(self, key: Key, value: Any, ttl: Optional[float] = None) -> bool:
        kb = _key_bytes(key)
        if not self.native:
            return await self._run(self.cache.write_behind, key, value, ttl)
        c = self.cache
        data = c._dumps(value)
        ms = _ttl_ms(ttl)
        h = c._enter()
        d = self._loop_driver(h)
        rc = await self._write(d, lib.strata_op_write_behind(d.opp, h, kb, len(kb), data, len(data), ms))
        return bool(rc == OK)

    async def write_behind_many(self, mapping: Mapping[Key, Any], ttl: Optional[float] = None) -> bool:
        return await self._run(self.cache.write_behind_many, mapping, ttl)

    async def flush(self, timeout: float = 30.0) -> None:
        _ms(timeout, "timeout", allow_none=False)
        await self._run(self.cache.flush, timeout)

    async def stats(self) -> Dict[str, int]:
        return await self._run(self.cache.stats)

    async def histogram(self, kind: str = "get") -> _metrics.Histogram:
        _metrics.histogram_kind(kind)
        return await self._run(self.cache.histogram, kind)

    async def prometheus(self) -> str:
        return await self._run(self.cache.prometheus)

    async def hot_keys(self, n: int = 10) -> List[_metrics.HotKey]:
        _metrics.hot_count(n)
        return await self._run(self.cache.hot_keys, n)

    # -- read-through ------------------------------------------------------------

    async def _call_loader(self, loader: Callable[..., Any], arg: Any) -> Any:
        if inspect.iscoroutinefunction(loader):
            return await loader(arg)
        r = await self._run(loader, arg)
        if inspect.isawaitable(r):
            r = await r
        return r

    @overload
    async def get_or_load(self, key: K, loader: Callable[[K], Awaitable[T]], ttl: Optional[float] = None,
                          default: None = None, tags: Iterable[Key] = ()) -> Optional[T]: ...

    @overload
    async def get_or_load(self, key: K, loader: Callable[[K], Awaitable[T]], ttl: Optional[float] = None, *,
                          default: D, tags: Iterable[Key] = ()) -> Union[T, D]: ...

    @overload
    async def get_or_load(self, key: K, loader: Callable[[K], T], ttl: Optional[float] = None,
                          default: None = None, tags: Iterable[Key] = ()) -> Optional[T]: ...

    @overload
    async def get_or_load(self, key: K, loader: Callable[[K], T], ttl: Optional[float] = None, *,
                          default: D, tags: Iterable[Key] = ()) -> Union[T, D]: ...

    async def get_or_load(self, key: Key, loader: Callable[[Any], Any],
                          ttl: Optional[float] = None, default: Any = None, tags: Iterable[Key] = ()) -> Any:
        """As Cache.get_or_load (a loader may return Loaded(...), ``tags``
        stamp the entry); one loader call per key at a time among this
        cache's tasks, and across processes through the lease."""
        if not callable(loader):
            raise TypeError(f"loader must be callable, not {type(loader).__name__}")
        kb = _key_bytes(key)
        ms = _ttl_ms(ttl)
        tbs = tuple(_tag_bytes(tags)) if tags else ()
        c = self.cache
        tier = c._objects
        if tier is not None:  # no I/O: L1 says whether the kept object still serves the key
            obj = tier.get(c._enter(), kb, c._value(), c._tls.ver, default)
            if obj is not MISSED:
                return obj
        while True:
            fut = self._flights.get(kb)
            if fut is None:
                break
            self.cache._count("singleflight_shared")
            try:
                r = await asyncio.shield(fut)
            except asyncio.CancelledError:
                if fut.cancelled():  # the leader was cancelled, not us: try again
                    continue
                raise
            return default if r is NOT_FOUND else r
        fut = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._flights[kb] = fut
        try:
            result = await self._load_one(key, kb, loader, ms, tbs)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as e:
            fut.set_exception(e)
            raise
        else:
            fut.set_result(result)
        finally:
            if self._flights.get(kb) is fut:
                del self._flights[kb]
        return default if result is NOT_FOUND else result

    async def _counted_loader(self, loader: Callable[..., Any], key: Key) -> _Prepared:
        """The loader's result, checked and encoded, recorded in the C stats
        and load histogram (the time includes waiting for the event loop)."""
        c = self.cache
        t0 = time.perf_counter_ns()
        try:
            p = c._prepare(await self._call_loader(loader, key))
        except BaseException:
            c._record_load(True, t0)
            raise
        c._record_load(False, t0)
        return p

    async def _load_one(self, key: Key, kb: bytes, loader: Callable[[Key], Any], ms: int,
                        tags: Tuple[bytes, ...] = ()) -> Any:
        if self.native:
            return await self._load_native(key, kb, loader, ms, tags)
        c = self.cache
        h = c._enter()  # noqa: F841 (held until the end: a lease's ticket points into the handle)
        deadline = time.monotonic() + c._lock_wait
        backoff = 0.002
        while True:
            rc, data, ticket, wait = await self._run(c._lookup, kb)
            if rc in (OK, HIT_STALE):
                return c._loads(data)  # type: ignore[arg-type]
            if rc == NEGATIVE:
                return NOT_FOUND
            if rc in (HIT_REFRESH, MISS_LEAD):
                if tags and not await self._run(c._stamp_before_load, ticket, tags):
                    return (await self._counted_loader(loader, key)).value
                try:
                    p = await self._counted_loader(loader, key)
                except Exception:
                    c._abandon(ticket)
                    if rc == HIT_REFRESH:
                        log.warning("refresh of %r failed; serving the cached value", key, exc_info=True)
                        return c._loads(data)  # type: ignore[arg-type]
                    raise
                except BaseException:
                    c._abandon(ticket)
                    raise
                await self._run(c._fill, ticket, p, ms, tags)
                return p.value
            if rc == MISS_WAIT:
                waited = await self._wait_for_lease(deadline, backoff, wait)
                if waited is None:  # lock_wait passed: load without the lease, store nothing
                    return (await self._counted_loader(loader, key)).value
                backoff = waited
                continue
            if rc in _FAIL_OPEN:
                c._count("fail_open")
                return (await self._counted_loader(loader, key)).value
            _raise(rc)

    def _lease_options(self, tags: Tuple[bytes, ...]) -> Tuple[Any, Any]:
        """The lookup options of a read-through (the lease on a miss, the
        fill stamped with ``tags``), and the buffers they point into."""
        if not tags:
            return self._lease, None
        opts = ffi.new("strata_op_options *")
        lib.strata_op_options_init(opts, 1)
        tag_ptrs, tag_lens, bufs = _tag_arrays(list(dict.fromkeys(tags)))
        opts.tags, opts.taglens, opts.ntags = tag_ptrs, tag_lens, len(bufs)
        return opts, (tag_ptrs, tag_lens, bufs)

    async def _wait_for_lease(self, deadline: float, backoff: float, wait: float) -> Optional[float]:
        """Another caller holds the lease: sleep (backing off) and return the
        next backoff, or None once lock_wait has passed (Timeout instead
        with wait_policy "fail")."""
        c = self.cache
        now = time.monotonic()
        if now >= deadline:
            if c._wait_policy == "fail":
                raise Timeout(lib.STRATA_ETIMEOUT, "ETIMEOUT",
                              f"waited {c._lock_wait * 1000:.0f} ms for another loader of this key")
            return None
        await asyncio.sleep(max(0.001, min(backoff, wait, deadline - now)))
        return min(backoff * 2, 0.05)

    async def _load_native(self, key: Key, kb: bytes, loader: Callable[[Key], Any], ms: int,
                           tags: Tuple[bytes, ...]) -> Any:
        """_load_one over lookup ops: the same decisions, the lease held by
        the op (given back at once if this task is cancelled meanwhile)."""
        c = self.cache
        h = c._enter()
        d = self._loop_driver(h)
        opts, keep = self._lease_options(tags)  # noqa: F841 (keep: alive for the begin calls)
        deadline = time.monotonic() + c._lock_wait
        backoff = 0.002
        while True:
            held = await self._drive(d, lib.strata_op_lookup(d.opp, h, kb, len(kb), opts))
            try:
                v = c._value()
                rc = _op_result(held.op, v)
                if rc == OK or rc == HIT_STALE:
                    return c._loads(_unpack(v.data, v.len))
                if rc == NEGATIVE:
                    return NOT_FOUND
                if rc == HIT_REFRESH or rc == MISS_LEAD:
                    data = _unpack(v.data, v.len) if rc == HIT_REFRESH else None
                    return await self._lead(d, held, key, loader, ms, tags, data)
                wait = max(int(v.wait_ms), 1) / 1000.0
                if rc != MISS_WAIT and rc != MISS and rc not in _FAIL_OPEN:
                    _raise_op(held.op, rc)
            finally:
                d.release(held)
            if rc == MISS_WAIT:
                waited = await self._wait_for_lease(deadline, backoff, wait)
                if waited is None:  # lock_wait passed: load without the lease, store nothing
                    return (await self._counted_loader(loader, key)).value
                backoff = waited
                continue
            if rc != MISS:
                c._count("fail_open")  # the backend failed: the source of truth still answers
            return (await self._counted_loader(loader, key)).value

    async def _lead(self, d: LoopDriver, held: Held, key: Key, loader: Callable[[Key], Any], ms: int,
                    tags: Tuple[bytes, ...], data: Optional[bytes]) -> Any:
        """held.op holds the lease (MISS_LEAD, or HIT_REFRESH with data):
        load, then fill under it (or give it back when the loader raised)."""
        c = self.cache
        try:
            p = await self._counted_loader(loader, key)
        except Exception:
            if lib.strata_op_abandon(held.op) == 0:
                await d.drive(held)
            if data is not None:
                log.warning("refresh of %r failed; serving the cached value", key, exc_info=True)
                return c._loads(data)
            raise
        await self._fill_lead(d, held, _key_bytes(key), p, ms, tags)
        return p.value

    async def _fill_lead(self, d: LoopDriver, held: Held, kb: bytes, p: _Prepared, ms: int,
                         tags: Tuple[bytes, ...]) -> None:
        """Stores a loaded result under the lease held.op holds. A refused
        fill (the lease lost to a newer write) is no error: the caller
        still returns the value, as Cache does."""
        if p.tags and p.data is not None:
            # The loader's own tags: the op's fill stamps only the versions
            # its lookup read, so the lease is given back and a tagged set
            # stores the value (stamped with the call's and the loader's tags).
            if lib.strata_op_abandon(held.op) == 0:
                await d.drive(held)
            opts = ffi.new("strata_set_options *")
            lib.strata_set_options_init(opts, _SET_OPTIONS_VERSION)
            opts.ttl_ms = ms if p.ms is None else p.ms
            tag_ptrs, tag_lens, keep = _tag_arrays(list(dict.fromkeys(tags + p.tags)))  # noqa: F841
            opts.tags, opts.taglens, opts.ntags = tag_ptrs, tag_lens, len(keep)
            rc = lib.strata_op_set(d.opp, self.cache._enter(), kb, len(kb), p.data, len(p.data), opts)
            if rc < 0:
                _raise(rc)
            stored = d.held()
            try:
                await d.drive(stored)
            finally:
                d.release(stored)
            return
        ttl = ms if p.ms is None else p.ms
        if p.data is None:
            rc = lib.strata_op_fill_negative(held.op, ttl if p.ms is not None else 0)
        else:
            rc = lib.strata_op_fill(held.op, p.data, len(p.data), ttl)
        if rc == 0 or lib.strata_op_abandon(held.op) == 0:
            await d.drive(held)

    async def _get_many_or_load_native(self, keys: List[Key], loader: Callable[[List[Key]], Any], ms: int,
                                       tags: Tuple[bytes, ...]) -> Dict[Key, Any]:
        """Cache._get_many_or_load over ops: get_many, a lookup per key
        still missing (the leases), one loader call, the fills."""
        c = self.cache
        found = await self.get_many(keys)
        missing = _missing_keys(keys, found)
        if not missing:
            return found
        h = c._enter()
        d = self._loop_driver(h)
        opts, keep = self._lease_options(tags)  # noqa: F841 (keep: alive for the begin calls)
        leads: Dict[bytes, Held] = {}
        to_load: List[Key] = []
        try:
            for k in missing:
                kb = _key_bytes(k)
                held = await self._drive(d, lib.strata_op_lookup(d.opp, h, kb, len(kb), opts))
                v = c._value()
                rc = _op_result(held.op, v)
                if rc in _SERVED:
                    found[k] = c._loads(_unpack(v.data, v.len))
                    d.release(held)  # a HIT_REFRESH's lease goes back at once
                elif rc == NEGATIVE:
                    d.release(held)
                else:  # load it: with the lease (MISS_LEAD), else without (a wait, an outage)
                    if rc < 0 and rc not in _FAIL_OPEN:
                        try:
                            _raise_op(held.op, rc)
                        finally:
                            d.release(held)
                    if rc == MISS_LEAD:
                        leads[kb] = held
                    else:
                        d.release(held)
                    to_load.append(k)
            if to_load:
                t0 = time.perf_counter_ns()  # one batch, one load (as the C side counts)
                try:
                    prepared = c._prepare_batch(await self._call_loader(loader, list(to_load)), to_load)
                except BaseException:
                    c._record_load(True, t0)
                    raise
                c._record_load(False, t0)
                for k, p in prepared:
                    kb = _key_bytes(k)
                    lead = leads.pop(kb, None)
                    if lead is not None:
                        try:
                            await self._fill_lead(d, lead, kb, p, ms, tags)
                        finally:
                            d.release(lead)
                    if p.value is not NOT_FOUND:
                        found[k] = p.value
        finally:
            for lead in leads.values():
                d.release(lead)  # leases not filled go back (in the background)
        return found

    async def get_many_or_load(self, keys: Iterable[Key],
                               loader: Callable[[List[Key]], Union[Mapping[Key, Any], Awaitable[Mapping[Key, Any]]]],
                               ttl: Optional[float] = None, tags: Iterable[Key] = ()) -> Dict[Key, Any]:
        """As Cache.get_many_or_load; a coroutine loader is awaited on the loop."""
        if not callable(loader):
            raise TypeError(f"loader must be callable, not {type(loader).__name__}")
        if isinstance(keys, (str, bytes)):
            raise TypeError("keys must be an iterable of keys, not a single key")
        keys = list(keys)
        tbs = _tag_bytes(tags)
        if self.native:
            ms = _ttl_ms(ttl)
            return await self._get_many_or_load_native(keys, loader, ms, tuple(tbs))
        if not inspect.iscoroutinefunction(loader):
            return await self._run(self.cache.get_many_or_load, keys, loader, ttl, tbs)
        loop = asyncio.get_running_loop()

        def sync_loader(missing: List[Key]) -> Mapping[Key, Any]:
            # Runs in a pool thread; the coroutine runs on the loop.
            return asyncio.run_coroutine_threadsafe(loader(missing), loop).result()

        return await self._run(self.cache.get_many_or_load, keys, sync_loader, ttl, tbs)

    def cached(self, ttl: Optional[float] = None, key: Union[None, str, Callable[..., Key]] = None,
               tags: Union[Iterable[str], Callable[..., Iterable[Key]]] = (), cache_none: bool = False
               ) -> Callable[[Callable[P, Awaitable[R]]], AsyncCachedFunction[P, R]]:
        """As Cache.cached, for coroutine functions."""
        def decorate(fn: Callable[P, Awaitable[R]]) -> AsyncCachedFunction[P, R]:
            # Reuse the sync decorator's key construction.
            keyed = self.cache.cached(ttl=ttl, key=key, tags=tags)(fn)
            make_key = keyed.cache_key
            make_tags = keyed.cache_tags

            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                async def load(_k: Key) -> Any:
                    r = await fn(*args, **kwargs)
                    return NOT_FOUND if r is None and not cache_none else r

                return await self.get_or_load(make_key(*args, **kwargs), load, ttl=ttl,
                                              tags=make_tags(*args, **kwargs))

            setattr(wrapper, "cache_key", make_key)
            setattr(wrapper, "cache_tags", make_tags)
            return cast("AsyncCachedFunction[P, R]", wrapper)

        return decorate
