"""A user's script touching every public call of stratacache, for
`mypy --strict` (scripts/test-frameworks.sh): it must pass with no error and
no ignore comment. Only type-checked, never run."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Dict, List, Optional, Union

import stratacache
from stratacache import FOREVER, NOT_FOUND, AsyncCache, Cache, Loaded
from stratacache.django import StrataCache
from stratacache.dogpile import StrataBackend


@dataclass
class User:
    id: int
    name: str


def load_user(key: str) -> User:
    return User(int(key.split(":")[1]), "ann")


def load_maybe(key: str) -> Union[User, Loaded, stratacache.NotFoundType]:
    return NOT_FOUND if key.endswith("0") else Loaded(User(1, "bo"), ttl=30, tags=["users"])


def load_many(keys: List[Union[str, bytes]]) -> Dict[Union[str, bytes], object]:
    return {k: 1 for k in keys}


def sync_calls() -> None:
    url: str = stratacache.build_url("redis://127.0.0.1:6379", namespace="app", ttl=60)
    with Cache(url, serializer="pickle", l1=True) as cache:
        u: Optional[User] = cache.get_or_load("user:1", load_user, ttl=60, tags=["users"])
        u2: Union[User, str] = cache.get_or_load("user:2", load_user, default="none")
        m: Optional[User] = cache.get_or_load("user:10", load_maybe)
        raw: Optional[str] = cache.get_or_load(b"k", lambda k: k.decode())
        cache.set("k", 1, ttl=FOREVER, tags=["t"])
        cache.set_many({"a": 1, "b": 2}, ttl=30, tags=["t"])
        got: object = cache.get("k", default=0)
        many: Dict[Union[str, bytes], object] = cache.get_many(["a", "b"])
        loaded = cache.get_many_or_load(["a", "c"], load_many, ttl=10)
        added: bool = cache.add("n", 0, ttl=None)
        n: int = cache.incr("n", 5) + cache.decr("n", 2, ttl=120)
        gone: int = cache.delete_many(["a", "b"])
        deleted: bool = cache.delete("k")
        cache.invalidate("k")
        cache.invalidate_tag("t")
        touched: bool = cache.touch("n") and cache.touch("n", 10) and cache.touch("n", FOREVER)
        cache.clear()
        cache.on_clear(lambda: None)
        lock: stratacache.Lock = cache.lock("job", ttl=30)
        if lock.acquire(blocking=True, timeout=5.0):
            lock.extend(30)
            held: bool = lock.locked()
            lock.release()
        with cache.lock("other", ttl=10):
            pass
        wrote: bool = cache.write_through("k", 1, lambda k, v: None, ttl=5)
        behind: bool = cache.write_behind("k", 2) and cache.write_behind_many({"x": 3})
        cache.flush(timeout=1.0)
        stats: Dict[str, int] = cache.stats()
        hist: stratacache.Histogram = cache.histogram("get")
        text: str = cache.prometheus()
        hot: List[stratacache.HotKey] = cache.hot_keys(5)

        @cache.cached(ttl=30, key="user:{user_id}", tags=["users"])
        def get_user(user_id: int, fresh: bool = False) -> User:
            return User(user_id, "cy")

        user: User = get_user(3, fresh=True)
        key: Union[str, bytes] = get_user.cache_key(3)
        tags = list(get_user.cache_tags(3))

        @cache.cached(cache_none=True)
        def find(name: str) -> Optional[User]:
            return None

        found: Optional[User] = find("x")
        print(u, u2, m, raw, got, many, loaded, added, n, gone, deleted, touched, held, wrote, behind,
              stats, hist.count, text, hot, user, key, tags, found, cache.closed, cache.url)


async def async_calls() -> None:
    async with AsyncCache("memory://", serializer="json") as cache:

        async def load(key: str) -> int:
            return len(key)

        v: Optional[int] = await cache.get_or_load("abc", load, ttl=5)
        w: Union[int, str] = await cache.get_or_load("abc", load, default="none")
        s: Optional[int] = await cache.get_or_load("abc", lambda k: len(k))
        await cache.set("k", 1, ttl=FOREVER)
        await cache.set_many({"a": 1}, tags=["t"])
        added: bool = await cache.add("a", 2)
        n: int = await cache.incr("n") + await cache.decr("n")
        gone: int = await cache.delete_many(["a"])
        touched: bool = await cache.touch("k")
        await cache.clear()
        lock = cache.lock("job", ttl=10)
        async with lock:
            held: bool = await lock.locked()
            await lock.extend(10)
        ok: bool = await lock.acquire(blocking=False)
        if ok:
            await lock.release()

        @cache.cached(ttl=10)
        async def square(x: int) -> int:
            return x * x

        sq: int = await square(4)
        key: Union[str, bytes] = square.cache_key(4)
        print(v, w, s, added, n, gone, touched, held, sq, key, await cache.get("k"), await cache.stats())


def adapters() -> None:
    django_cache = StrataCache("memory://django", {"OPTIONS": {"namespace": "d"}})
    django_cache.set("k", 1, timeout=None)
    backend = StrataBackend({"url": "memory://dogpile"})
    mutex = backend.get_mutex("k")
    if mutex.acquire(False):
        mutex.release()


if __name__ == "__main__":
    sync_calls()
    asyncio.run(async_calls())
    adapters()
