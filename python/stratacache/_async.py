"""AsyncCache: the Cache's methods as coroutines, run on a thread pool.

cffi API mode releases the GIL around every C call, so backend round trips in
the pool threads do not block the event loop. Loaders may be coroutine
functions (awaited on the loop) or plain functions (run in the pool).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import time
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, TypeVar, Union, cast, overload

from ._cache import (
    HIT_REFRESH,
    HIT_STALE,
    MISS_LEAD,
    MISS_WAIT,
    NEGATIVE,
    NOT_FOUND,
    OK,
    _FAIL_OPEN,
    Cache,
    Key,
    Serializer,
    _Prepared,
    _key_bytes,
    _ms,
    _ttl_ms,
    _raise,
    _tag_bytes,
)
from . import _metrics
from ._errors import Timeout
from ._lock import AsyncLock
from ._loaded import Loaded
from ._typing import AsyncCachedFunction, P, R
from ._native import lib

log = logging.getLogger("stratacache")
T = TypeVar("T")
D = TypeVar("D")
K = TypeVar("K", str, bytes)


class AsyncCache:
    """Same constructor as Cache, plus ``max_workers`` (pool threads; default
    the backend pool size or 8) or an ``executor`` of your own."""

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
        **options: Any,
    ) -> None:
        self.cache = Cache(url, namespace, ttl, neg_ttl, stale, l1, serializer, writer=writer, **options)
        self._own_executor = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers or int(options.get("pool_size", 8)),
            thread_name_prefix="stratacache",
        )
        self._flights: Dict[bytes, "asyncio.Future[Any]"] = {}

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    # -- lifetime --------------------------------------------------------------

    async def close(self) -> None:
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
        _key_bytes(key)
        return await self._run(self.cache.get, key, default)

    async def set(self, key: Key, value: Any, ttl: Optional[float] = None, tags: Iterable[Key] = ()) -> None:
        _key_bytes(key)
        await self._run(self.cache.set, key, value, ttl, _tag_bytes(tags))

    async def delete(self, key: Key) -> bool:
        _key_bytes(key)
        return await self._run(self.cache.delete, key)

    async def invalidate(self, key: Key) -> None:
        _key_bytes(key)
        await self._run(self.cache.invalidate, key)

    async def invalidate_tag(self, tag: Key) -> None:
        _key_bytes(tag, "tag")
        await self._run(self.cache.invalidate_tag, tag)

    async def touch(self, key: Key, ttl: Optional[float] = None) -> bool:
        _key_bytes(key)
        return await self._run(self.cache.touch, key, ttl)

    async def get_many(self, keys: Iterable[Key]) -> Dict[Key, Any]:
        if isinstance(keys, (str, bytes)):
            raise TypeError("keys must be an iterable of keys, not a single key")
        return await self._run(self.cache.get_many, list(keys))

    async def set_many(self, mapping: Mapping[Key, Any], ttl: Optional[float] = None,
                       tags: Optional[Iterable[Key]] = None) -> None:
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
        _key_bytes(key)
        return await self._run(self.cache.write_behind, key, value, ttl)

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
                now = time.monotonic()
                if now >= deadline:
                    if c._wait_policy == "fail":
                        raise Timeout(lib.STRATA_ETIMEOUT, "ETIMEOUT",
                                      f"waited {c._lock_wait * 1000:.0f} ms for another loader of this key")
                    return (await self._counted_loader(loader, key)).value
                await asyncio.sleep(max(0.001, min(backoff, wait, deadline - now)))
                backoff = min(backoff * 2, 0.05)
                continue
            if rc in _FAIL_OPEN:
                c._count("fail_open")
                return (await self._counted_loader(loader, key)).value
            _raise(rc)

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
