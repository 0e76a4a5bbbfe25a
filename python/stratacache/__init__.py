"""stratacache: caching policy over Redis, Memcached or an embedded store.

    import stratacache
    with stratacache.Cache("redis://127.0.0.1:6379", namespace="app", ttl=300,
                           serializer="json") as cache:
        user = cache.get_or_load("user:42", load_user)

Values are bytes unless a serializer is chosen: "json", a (dumps, loads) pair,
or "pickle" (only when asked for: unpickling executes code chosen by whoever
can write to the cache server).
"""
from ._async import AsyncCache
from ._cache import FOREVER, MAX_MS, NOT_FOUND, Cache, build_url
from ._cache import _NotFound as NotFoundType  # the type of NOT_FOUND, for loaders' annotations
from ._lock import AsyncLock, Lock
from ._typing import AsyncCachedFunction, CachedFunction
from ._loaded import Loaded
from ._metrics import Histogram, HotKey
from ._errors import (
    BackendError,
    BreakerOpen,
    Busy,
    Closed,
    InvalidArgument,
    LeaseLost,
    LoaderError,
    NotAnInteger,
    NotSupported,
    OutOfMemory,
    StaleCache,
    StrataError,
    Timeout,
    TooBig,
)
from ._native import ffi as _ffi, lib as _lib

__version__ = _ffi.string(_lib.strata_version()).decode("ascii")
c_version = __version__

__all__ = [
    "AsyncCache",
    "AsyncCachedFunction",
    "AsyncLock",
    "CachedFunction",
    "FOREVER",
    "Lock",
    "NotAnInteger",
    "NotFoundType",
    "BackendError",
    "BreakerOpen",
    "Busy",
    "Cache",
    "Closed",
    "Histogram",
    "HotKey",
    "InvalidArgument",
    "LeaseLost",
    "Loaded",
    "LoaderError",
    "MAX_MS",
    "NOT_FOUND",
    "NotSupported",
    "OutOfMemory",
    "StaleCache",
    "StrataError",
    "Timeout",
    "TooBig",
    "build_url",
]
