"""Lock and AsyncLock: a named lock on the backend's lease (Cache.lock)."""
from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any, Optional

from ._errors import InvalidArgument, LeaseLost
from ._native import ffi, lib

if TYPE_CHECKING:
    from ._async import AsyncCache
    from ._cache import Cache

_POLL_MIN, _POLL_MAX = 0.001, 0.05


def _raise(rc: int) -> Any:
    from ._cache import _raise as raise_for_code  # _cache imports this module

    raise_for_code(rc)


def _lock_seconds(seconds: Any, what: str) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(seconds).__name__}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgument(lib.STRATA_EINVAL, "EINVAL", f"{what} must be > 0 seconds and finite (a lock "
                              f"must expire, or a crashed holder blocks the others), got {seconds!r}")
    return max(1, int(round(seconds * 1000)))


class Lock:
    """A lock named ``name`` in the cache's namespace, across every process
    sharing the backend (memory:// : this process). Only this object's holder
    token releases or extends it, from any thread. ``ttl`` (seconds) bounds
    how long a crashed holder blocks the others. A context manager::

        with cache.lock("report", ttl=30):
            build_report()
    """

    def __init__(self, cache: "Cache", name: Any, ttl: float) -> None:
        from ._cache import _key_bytes

        nb = _key_bytes(name, "name")
        self.name = name
        self.ttl = ttl
        ms = _lock_seconds(ttl, "ttl")
        self._h = cache._enter()  # the lock points into the handle: keep it alive
        out = ffi.new("strata_lock **")
        rc = lib.strata_lock_new(out, self._h, nb, len(nb), ms)
        if rc < 0:
            _raise(rc)
        self._lock = ffi.gc(out[0], lib.strata_lock_free)

    def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """True once held; False when another holds it (blocking=False) or
        still did after ``timeout`` seconds (None: wait without bound)."""
        ms = self._timeout_ms(blocking, timeout)
        rc = lib.strata_lock_acquire(self._lock, 1 if blocking else 0, ms)  # the GIL is released meanwhile
        if rc == lib.STRATA_OK:
            return True
        if rc == lib.STRATA_MISS_WAIT:
            return False
        return bool(_raise(rc))

    @staticmethod
    def _timeout_ms(blocking: bool, timeout: Optional[float]) -> int:
        if timeout is None or timeout == -1:
            return -1
        if not blocking:
            raise ValueError("can't specify a timeout for a non-blocking call")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError(f"timeout must be None or >= 0 seconds, got {timeout!r}")
        return int(math.ceil(timeout * 1000))

    def _try(self) -> bool:
        return self.acquire(blocking=False)

    def release(self) -> None:
        """Releases the lock; LeaseLost when this object does not hold it
        (never acquired, or it expired and may be another's now)."""
        rc = lib.strata_lock_release(self._lock)
        if rc < 0:
            _raise(rc)

    def locked(self) -> bool:
        """Whether anybody holds the lock now."""
        rc = lib.strata_lock_locked(self._lock)
        if rc < 0:
            _raise(rc)
        return rc == 1

    def extend(self, ttl: Optional[float] = None) -> None:
        """Renews the held lock for ``ttl`` seconds (None: its own TTL);
        LeaseLost when it was lost meanwhile, never silently shared."""
        ms = 0 if ttl is None else _lock_seconds(ttl, "ttl")
        rc = lib.strata_lock_extend(self._lock, ms)
        if rc < 0:
            _raise(rc)

    def __enter__(self) -> "Lock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<stratacache.Lock {self.name!r} ttl={self.ttl!r}>"


class AsyncLock:
    """Lock for AsyncCache: acquire() polls without holding a pool thread
    while it waits; ``async with cache.lock(...)``."""

    def __init__(self, cache: "AsyncCache", name: Any, ttl: float) -> None:
        self._cache = cache
        self.lock = Lock(cache.cache, name, ttl)

    async def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        Lock._timeout_ms(blocking, timeout)  # the same argument checks
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None or timeout == -1 else loop.time() + timeout
        delay = _POLL_MIN
        while True:
            if await self._cache._run(self.lock._try):
                return True
            if not blocking or (deadline is not None and loop.time() >= deadline):
                return False
            nap = delay if deadline is None else min(delay, max(0.0, deadline - loop.time()))
            await asyncio.sleep(nap)
            delay = min(delay * 2, _POLL_MAX)

    async def release(self) -> None:
        await self._cache._run(self.lock.release)

    async def locked(self) -> bool:
        return await self._cache._run(self.lock.locked)

    async def extend(self, ttl: Optional[float] = None) -> None:
        await self._cache._run(self.lock.extend, ttl)

    async def __aenter__(self) -> "AsyncLock":
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


__all__ = ["AsyncLock", "LeaseLost", "Lock"]
