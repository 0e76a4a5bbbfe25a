"""Types of the decorated functions (Cache.cached, AsyncCache.cached): the
wrapped function's own signature (ParamSpec) plus its key and tag helpers."""
from __future__ import annotations

import sys
from typing import Awaitable, Iterable, TypeVar, Union

if sys.version_info >= (3, 10):
    from typing import ParamSpec, Protocol
else:  # pragma: no cover
    from typing_extensions import ParamSpec, Protocol

Key = Union[str, bytes]
P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class CachedFunction(Protocol[P, R_co]):
    """What Cache.cached() returns: call it as the function it wraps;
    ``cache_key(*args, **kwargs)`` is the key that call reads and stores,
    ``cache_tags(*args, **kwargs)`` the tags it stamps."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> Key: ...

    def cache_tags(self, *args: P.args, **kwargs: P.kwargs) -> Iterable[Key]: ...


class AsyncCachedFunction(Protocol[P, R_co]):
    """What AsyncCache.cached() returns: a coroutine function with the
    wrapped one's signature, and the same helpers as CachedFunction."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R_co]: ...

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> Key: ...

    def cache_tags(self, *args: P.args, **kwargs: P.kwargs) -> Iterable[Key]: ...
