"""A dogpile.cache backend over stratacache, registered as ``"stratacache"``::

    from dogpile.cache import make_region

    region = make_region().configure(
        "stratacache",
        expiration_time=300,
        arguments={"url": "redis://127.0.0.1:6379", "namespace": "myapp"},
    )

Arguments (all optional; others are ignored, as dogpile's own backends do):
  - ``url``: the cache URL (default ``"memory://dogpile"``, one store per process);
  - ``namespace``: isolates this region's keys on a shared server;
  - ``ttl``: seconds the server keeps an entry (default FOREVER: dogpile
    decides freshness from its own metadata, like its redis backend);
  - ``lock_timeout``: seconds a dogpile lock is held at most (default 30), so a
    crashed creator blocks the others that long at worst;
  - ``options``: a dict of further Cache keyword options (``timeout_ms``, ``l1`` ...).

The mutex (get_mutex) is a stratacache Lock: one creator per key across every
process sharing the server, releasable from another thread (dogpile's
async_creation_runner does that). Values are dogpile's bytes, stored as they are.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from dogpile.cache.api import NO_VALUE, BytesBackend, CacheMutex, NoValue

from ._cache import FOREVER, Cache
from ._lock import Lock

__all__ = ["StrataBackend", "StrataMutex"]


class StrataMutex(CacheMutex):
    """dogpile's CacheMutex over a stratacache Lock."""

    def __init__(self, lock: Lock) -> None:
        self.lock = lock

    def acquire(self, wait: bool = True) -> bool:
        return self.lock.acquire(blocking=wait)

    def release(self) -> None:
        self.lock.release()

    def locked(self) -> bool:
        return self.lock.locked()


class StrataBackend(BytesBackend):
    """dogpile.cache's BytesBackend on a stratacache.Cache (``self.cache``)."""

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        options: Dict[str, Any] = dict(arguments.get("options") or {})
        self.ttl: Optional[float] = arguments.get("ttl", FOREVER)
        self.lock_timeout: float = arguments.get("lock_timeout", 30.0)
        self.cache = Cache(arguments.get("url", "memory://dogpile"), namespace=arguments.get("namespace"),
                           **options)

    def get_serialized(self, key: str) -> Union[bytes, NoValue]:
        value = self.cache.get(key)
        return NO_VALUE if value is None else value

    def get_serialized_multi(self, keys: Sequence[str]) -> List[Union[bytes, NoValue]]:
        if not keys:
            return []
        found = self.cache.get_many(keys)
        return [found.get(k, NO_VALUE) for k in keys]

    def set_serialized(self, key: str, value: bytes) -> None:
        self.cache.set(key, value, ttl=self.ttl)

    def set_serialized_multi(self, mapping: Mapping[str, bytes]) -> None:
        self.cache.set_many(mapping, ttl=self.ttl)

    def delete(self, key: str) -> None:
        self.cache.delete(key)

    def delete_multi(self, keys: Sequence[str]) -> None:
        self.cache.delete_many(keys)

    def get_mutex(self, key: str) -> StrataMutex:
        return StrataMutex(self.cache.lock(key, ttl=self.lock_timeout))

    def has_lock_timeout(self) -> bool:
        return True
