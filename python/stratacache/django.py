"""A Django cache backend over stratacache::

    CACHES = {
        "default": {
            "BACKEND": "stratacache.django.StrataCache",
            "LOCATION": "redis://127.0.0.1:6379",   # or memcached://h:p,h:p, memory://NAME
            # optional: "TIMEOUT", "KEY_PREFIX", "VERSION", "KEY_FUNCTION" as usual, and
            # "OPTIONS": {"namespace": "myapp", "l1": True, "timeout_ms": 250, ...}
        }
    }

Django's rules hold: TIMEOUT/timeout None never expires (stratacache.FOREVER),
0 or a negative timeout expires at once (the key is deleted), keys go through
make_and_validate_key (KEY_PREFIX, VERSION, KEY_FUNCTION, the memcached-safety
warnings). Values are pickled by default, because Django caches arbitrary
objects; an int is stored as decimal text so incr()/decr() are atomic across
processes. Unpickling trusts whoever can write to the cache server; pass
OPTIONS={"serializer": "json"} for JSON. OPTIONS are Cache keyword options
(MAX_ENTRIES and CULL_FREQUENCY are ignored: the server's own eviction culls).

Aliases with the same LOCATION and OPTIONS share one stratacache.Cache (so one
clear() is seen by all of them at once, and memory://NAME is one store per
process). close() keeps it open: its connections are pooled.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, Iterable, List, Optional, Tuple

from asgiref.sync import sync_to_async
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from ._cache import FOREVER, Cache
from ._errors import NotAnInteger

__all__ = ["StrataCache"]

_DJANGO_OPTIONS = {"MAX_ENTRIES", "CULL_FREQUENCY"}
_shared: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], Cache] = {}
_shared_lock = threading.Lock()
_MISSING = object()


def _shared_cache(location: str, options: Dict[str, Any]) -> Cache:
    key = (location, tuple(sorted((k, repr(v)) for k, v in options.items())))
    with _shared_lock:
        c = _shared.get(key)
        if c is None or c.closed:
            kw = dict(options)
            kw.setdefault("serializer", "pickle")
            c = _shared[key] = Cache(location, **kw)
        return c


class StrataCache(BaseCache):
    """django.core.cache.backends.base.BaseCache over stratacache.Cache."""

    def __init__(self, location: str, params: Dict[str, Any]) -> None:
        super().__init__(params)
        if isinstance(location, (list, tuple)):
            location = ",".join(location)
        options = {k: v for k, v in (params.get("OPTIONS") or {}).items() if k not in _DJANGO_OPTIONS}
        self._cache = _shared_cache(location or "memory://django", options)

    # -- Django's timeouts --------------------------------------------------

    def _ttl(self, timeout: Any) -> Optional[float]:
        """Seconds for stratacache (FOREVER for None), or None: expire now."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return FOREVER
        return float(timeout) if timeout > 0 else None

    # -- the BaseCache API ---------------------------------------------------

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> bool:
        k = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        if ttl is None:  # Django: "stored" and gone at once, unless the key is taken
            return self._cache.get(k, _MISSING) is _MISSING
        return self._cache.add(k, value, ttl=ttl)

    def get(self, key: Any, default: Any = None, version: Optional[int] = None) -> Any:
        return self._cache.get(self.make_and_validate_key(key, version=version), default)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> None:
        k = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        if ttl is None:
            self._cache.delete(k)
        else:
            self._cache.set(k, value, ttl=ttl)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> bool:
        k = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        if ttl is None:
            return self._cache.delete(k)
        return self._cache.touch(k, ttl)

    def delete(self, key: Any, version: Optional[int] = None) -> bool:
        return self._cache.delete(self.make_and_validate_key(key, version=version))

    def get_many(self, keys: Iterable[Any], version: Optional[int] = None) -> Dict[Any, Any]:
        made = {self.make_and_validate_key(k, version=version): k for k in keys}
        if not made:
            return {}
        return {made[k]: v for k, v in self._cache.get_many(list(made)).items()}

    def has_key(self, key: Any, version: Optional[int] = None) -> bool:
        return self._cache.get(self.make_and_validate_key(key, version=version), _MISSING) is not _MISSING

    def incr(self, key: Any, delta: int = 1, version: Optional[int] = None) -> int:
        """Atomic across processes. ValueError when the key is missing (Django's
        rule; a concurrent delete may land between the check and the add, as
        with Django's own redis backend), TypeError when it holds no integer."""
        k = self.make_and_validate_key(key, version=version)
        if self._cache.get(k, _MISSING) is _MISSING:
            raise ValueError(f"Key '{key}' not found")
        try:
            return self._cache.incr(k, delta)
        except NotAnInteger as e:
            raise TypeError(str(e)) from e

    def decr(self, key: Any, delta: int = 1, version: Optional[int] = None) -> int:
        return self.incr(key, -delta, version=version)

    def set_many(self, data: Dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT,
                 version: Optional[int] = None) -> List[Any]:
        made = {self.make_and_validate_key(k, version=version): v for k, v in data.items()}
        ttl = self._ttl(timeout)
        if ttl is None:
            self._cache.delete_many(list(made))
        else:
            self._cache.set_many(made, ttl=ttl)
        return []  # all or nothing: an error raises

    def delete_many(self, keys: Iterable[Any], version: Optional[int] = None) -> None:
        made = [self.make_and_validate_key(k, version=version) for k in keys]
        if made:
            self._cache.delete_many(made)

    def clear(self) -> None:
        self._cache.clear()

    def close(self, **kwargs: Any) -> None:
        """Django calls this after every request: the pooled connections stay."""

    # -- async: in a worker thread (cffi releases the GIL), not Django's
    # default thread_sensitive executor, which runs them one at a time ----------

    async def aadd(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT,
                   version: Optional[int] = None) -> bool:
        return await sync_to_async(self.add, thread_sensitive=False)(key, value, timeout, version)

    async def aget(self, key: Any, default: Any = None, version: Optional[int] = None) -> Any:
        return await sync_to_async(self.get, thread_sensitive=False)(key, default, version)

    async def aset(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT,
                   version: Optional[int] = None) -> None:
        await sync_to_async(self.set, thread_sensitive=False)(key, value, timeout, version)

    async def atouch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> bool:
        return await sync_to_async(self.touch, thread_sensitive=False)(key, timeout, version)

    async def adelete(self, key: Any, version: Optional[int] = None) -> bool:
        return await sync_to_async(self.delete, thread_sensitive=False)(key, version)

    async def aget_many(self, keys: Iterable[Any], version: Optional[int] = None) -> Dict[Any, Any]:
        return await sync_to_async(self.get_many, thread_sensitive=False)(list(keys), version)

    async def ahas_key(self, key: Any, version: Optional[int] = None) -> bool:
        return await sync_to_async(self.has_key, thread_sensitive=False)(key, version)

    async def aincr(self, key: Any, delta: int = 1, version: Optional[int] = None) -> int:
        return await sync_to_async(self.incr, thread_sensitive=False)(key, delta, version)

    async def adecr(self, key: Any, delta: int = 1, version: Optional[int] = None) -> int:
        return await sync_to_async(self.decr, thread_sensitive=False)(key, delta, version)

    async def aset_many(self, data: Dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT,
                        version: Optional[int] = None) -> List[Any]:
        return await sync_to_async(self.set_many, thread_sensitive=False)(data, timeout, version)

    async def adelete_many(self, keys: Iterable[Any], version: Optional[int] = None) -> None:
        await sync_to_async(self.delete_many, thread_sensitive=False)(list(keys), version)

    async def aclear(self) -> None:
        await sync_to_async(self.clear, thread_sensitive=False)()
