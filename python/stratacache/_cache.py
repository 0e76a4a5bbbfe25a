"""The synchronous Cache over the C handle."""
from __future__ import annotations

import atexit
import functools
import hashlib
import inspect
import json
import logging
import math
import os
import pickle
import threading
import time
import weakref
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    NoReturn,
    Optional,
    Tuple,
    TypeVar,
    Union,
    cast,
    overload,
)
from urllib.parse import parse_qsl, quote

from . import _metrics
from ._errors import Closed, InvalidArgument, NotAnInteger, StrataError, Timeout, error_class
from ._loaded import Loaded, tag_list
from ._lock import Lock
from ._typing import CachedFunction, P, R
from ._native import ffi, lib
from ._object_tier import MISSED, ObjectTier
from ._writes import BatchWriter, BatchWriterBox, WriteCall, check_batch_writer

log = logging.getLogger("stratacache")

Key = Union[str, bytes]
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
D = TypeVar("D")
K = TypeVar("K", str, bytes)

OK = lib.STRATA_OK
MISS = lib.STRATA_MISS
NEGATIVE = lib.STRATA_NEGATIVE
HIT_STALE = lib.STRATA_HIT_STALE
HIT_REFRESH = lib.STRATA_HIT_REFRESH
MISS_LEAD = lib.STRATA_MISS_LEAD
MISS_WAIT = lib.STRATA_MISS_WAIT
_FAIL_OPEN = (lib.STRATA_EBACKEND, lib.STRATA_ETIMEOUT, lib.STRATA_EBREAKER)

# Bound once: a module-global lookup is cheaper than lib.<name> on every call.
_strata_get = lib.strata_get
_strata_lookup = lib.strata_lookup
_strata_l1_check = lib.strata_l1_check
_unpack = ffi.unpack
_NULL = ffi.NULL


class _NotFound:
    """The sentinel a loader returns for "the source of truth has no such key".
    It is cached as a negative entry (for neg_ttl) so the source is not asked again."""

    _instance: Optional["_NotFound"] = None

    def __new__(cls) -> "_NotFound":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "stratacache.NOT_FOUND"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "NOT_FOUND"


NOT_FOUND = _NotFound()


def _raise(rc: int) -> NoReturn:
    msg = ffi.string(lib.strata_error_last()).decode("utf-8", "replace")
    name = ffi.string(lib.strata_error_name(rc)).decode("ascii", "replace")
    raise error_class(rc)(rc, name, msg)


def _key_bytes(key: Any, what: str = "key") -> bytes:
    if type(key) is bytes:
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, bytes):
        return key
    raise TypeError(f"{what} must be str or bytes, not {type(key).__name__}")


_SET_OPTIONS_VERSION = 1  # STRATA_SET_OPTIONS_VERSION (a macro, so not in the cdef)
_OPTIONS_VERSION = 3  # STRATA_OPTIONS_VERSION


_tag_bytes = tag_list


def _tag_arrays(tags: List[bytes]) -> Tuple[Any, Any, List[Any]]:
    """(const char *[], size_t[], buffers to keep alive) for a C tags argument."""
    keep = [ffi.from_buffer(t) for t in tags]
    return ffi.new("const char *[]", keep), ffi.new("size_t[]", [len(t) for t in tags]), keep


class _Prepared:
    """A loader's result made ready to fill: the caller's value, its bytes
    (None for NOT_FOUND), its own TTL in ms (None: the call's) and tags."""

    __slots__ = ("value", "data", "ms", "tags")

    def __init__(self, value: Any, data: Optional[bytes], ms: Optional[int], tags: Tuple[bytes, ...]) -> None:
        self.value, self.data, self.ms, self.tags = value, data, ms, tags


# STRATA_MAX_MS of stratacache.h: the largest millisecond value any option or
# argument takes (366 days).
MAX_MS = 31622400000


def _ms(seconds: Any, what: str, allow_none: bool = True) -> int:
    """Seconds (int or float) to milliseconds; None -> 0 (the cache's default)."""
    if seconds is None and allow_none:
        return 0
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(seconds).__name__}")
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise InvalidArgument(lib.STRATA_EINVAL, "EINVAL", f"{what} must be a finite number of seconds, got {seconds!r}")
    if seconds < 0:
        raise InvalidArgument(lib.STRATA_EINVAL, "EINVAL", f"{what} must be >= 0 seconds, got {seconds!r}")
    if seconds * 1000 > MAX_MS:
        raise InvalidArgument(lib.STRATA_EINVAL, "EINVAL",
                              f"{what} must be at most {MAX_MS // 1000} seconds (366 days), got {seconds!r}")
    ms = int(round(seconds * 1000))
    return 1 if ms == 0 and seconds > 0 else ms


# --- TTLs of entries (docs/FRAMEWORKS.md) ---------------------------------

FOREVER: float = float("inf")
"""A TTL that never expires (redis: no PX; memcached: exptime 0)."""


def _ttl_ms(ttl: Optional[float], what: str = "ttl") -> int:
    """An entry's TTL in seconds to the C convention: None -> 0 (the cache's
    default), FOREVER -> -1 (STRATA_TTL_FOREVER). 0 is refused, in every
    language alike: it would read as "expire now" to some and "the default"
    to others; delete the key instead, or pass None."""
    if ttl == FOREVER and isinstance(ttl, float):
        return -1
    if ttl is not None and not isinstance(ttl, bool) and isinstance(ttl, (int, float)) and ttl == 0:
        raise InvalidArgument(lib.STRATA_EINVAL, "EINVAL",
                              f"{what}=0 is refused (use None for the cache's default, FOREVER for no "
                              "expiry, or delete the key)")
    return _ms(ttl, what)


# --- serializers ---------------------------------------------------------

Serializer = Union[None, str, Tuple[Callable[[Any], bytes], Callable[[bytes], Any]]]


def _raw_dumps(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(
        f"value must be bytes (or bytearray/memoryview), not {type(value).__name__}; "
        "pass serializer='json' or a (dumps, loads) pair to store other types"
    )


def _json_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _json_loads(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


def _pickle_dumps(value: Any) -> bytes:
    # An int is stored as decimal text, so incr()/decr() can count on it (and
    # get() of a counter reads back an int); no pickle starts with a digit or '-'.
    if type(value) is int:
        return str(value).encode("ascii")
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _pickle_loads(data: bytes) -> Any:
    if data[:1].isdigit() or data[:1] == b"-":
        return int(data)
    return pickle.loads(data)


def _codec(serializer: Serializer) -> Tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    if serializer is None or serializer == "bytes":
        return _raw_dumps, bytes
    if serializer == "json":
        return _json_dumps, _json_loads
    if serializer == "pickle":
        # Only on explicit request: unpickling runs code chosen by whoever can
        # write to the cache server, so pickle trusts every client of it.
        return _pickle_dumps, _pickle_loads
    if isinstance(serializer, tuple) and len(serializer) == 2 and all(map(callable, serializer)):
        return serializer
    if isinstance(serializer, str):
        raise ValueError(f"unknown serializer {serializer!r} (use 'json', 'pickle' or a (dumps, loads) pair)")
    raise TypeError(f"serializer must be None, 'json', 'pickle' or a (dumps, loads) pair, not {type(serializer).__name__}")


def _option_value(name: str, v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float, str)):
        return str(v)
    raise TypeError(f"option {name} must be str, int, float or bool, not {type(v).__name__}")


def build_url(
    url: str,
    namespace: Optional[str] = None,
    ttl: Optional[float] = None,
    neg_ttl: Optional[float] = None,
    stale: Optional[float] = None,
    l1: Optional[bool] = None,
    options: Optional[Mapping[str, Any]] = None,
) -> str:
    """The URL with the keyword options appended as query options. An option
    given both in the URL and as a keyword is refused (which one should win
    is not obvious to a reader of the call)."""
    if not isinstance(url, str):
        raise TypeError(f"url must be str, not {type(url).__name__}")
    if "\0" in url:
        # The C API reads the URL up to its first NUL: the rest would be dropped silently.
        raise InvalidArgument(lib.STRATA_EURL, "EURL", f"url contains a NUL byte at offset {url.index(chr(0))}")
    if l1 is not None and not isinstance(l1, bool) and not (type(l1) is int and l1 in (0, 1)):
        raise TypeError(f"l1 must be a bool, not {l1!r}")
    q: List[Tuple[str, str]] = []
    if namespace is not None:
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be str, not {type(namespace).__name__}")
        q.append(("ns", namespace))
    for name, v, opt in (("ttl", ttl, "ttl_ms"), ("neg_ttl", neg_ttl, "neg_ttl_ms"), ("stale", stale, "stale_ms")):
        if v is not None:
            q.append((opt, str(_ms(v, name, allow_none=False))))
    if l1 is not None:
        q.append(("l1", "1" if l1 else "0"))
    for k, v in (options or {}).items():
        q.append((k, _option_value(k, v)))
    if not q:
        return url
    in_url = dict(parse_qsl(url.partition("?")[2], keep_blank_values=True))
    keyword = {"ns": "namespace", "ttl_ms": "ttl", "neg_ttl_ms": "neg_ttl", "stale_ms": "stale"}
    if "namespace" in in_url:
        in_url["ns"] = in_url["namespace"]
    for k, v in q:
        if k in in_url:
            kw = keyword.get(k, k)
            raise InvalidArgument(lib.STRATA_EOPTION, "EOPTION",
                                  f"option {k} given twice: {k}={in_url[k]} in the URL and the keyword "
                                  f"{kw}; give it once")
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in q)
    return url + ("&" if "?" in url else "?") + query


class _Flight:
    __slots__ = ("event", "result", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None


_live_caches: "weakref.WeakSet[Cache]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # Locks held by other threads at fork time would never be released.
    for c in list(_live_caches):
        c._reset_locks()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _close_writers() -> None:
    # Free handles with a write-behind writer while the interpreter can still
    # run it: strata_cache_free drains the backlog for up to wb_drain_ms.
    for c in list(_live_caches):
        if c.has_writer:
            c.close()



def _missing_keys(keys: List[Key], found: Mapping[Key, Any]) -> List[Key]:
    """The keys get_many did not find, each once (get_many_or_load loads these)."""
    missing: List[Key] = []
    seen = set()
    for k in keys:
        kb = _key_bytes(k)
        if k in found or kb in seen:
            continue
        seen.add(kb)
        missing.append(k)
    return missing


class _Packed(NamedTuple):
    args: tuple      # (n, keys, keylens, vals, vallens) for the C call
    keep: list       # the buffers the arrays point into, alive until the call returns

class Cache:
    """A cache handle (thread-safe; one per process is enough).

    ``url`` is memory://[name], redis://[user:pass@]host:port[/db] or
    memcached://host:port[,host:port...]. ``ttl``, ``neg_ttl`` and ``stale`` are
    seconds; other keyword options are passed as URL query options
    (``timeout_ms=250``, ``pool_size=8``, ``lock_wait_ms=2000`` ...), among them:
      - tags: ``tag_cache_ms`` (how long tag versions are cached here; bounds
        how late another process's invalidate_tag() is seen);
      - hot keys: ``hot_sketch_width`` (0 turns tracking off), ``hot_window``,
        ``hot_threshold``, ``hot_top`` (how many keys hot_keys() can rank);
      - L1: ``l1_admission`` ("all", "hot": only keys read hot_threshold
        times lately, or "none"), ``l1_ttl_ms``, ``l1_max_entries``,
        ``l1_renew`` (bool, default on: hot entries are re-read in background
        batches before l1_ttl_ms ends, within the same staleness bound);
      - coherence on Redis: ``tracking`` (bool: CLIENT TRACKING, so any
        client's write evicts L1), ``coherence_ping_ms``; on Memcached,
        ``l1_bus="redis://host:port"`` carries invalidations between caches.
    A bad value raises InvalidArgument (a ValueError) naming the option; a
    value of the wrong type a TypeError naming it.

    ``writer`` is the write-behind batch writer: called with a dict
    {key bytes: value} of distinct keys (latest value each) from a C flusher
    thread (``wb_threads``, default 1; 0 = only inside flush()). If it raises,
    the exception is logged and the batch retried (``wb_retry_ms``,
    ``wb_max_attempts``, then dead-lettered). Other write-behind options:
    ``wb_batch_size``, ``wb_interval_ms``, ``wb_max_backlog``, ``wb_block_ms``,
    ``wb_drain_ms`` (close() and interpreter exit wait this long for
    delivery), ``wb_journal`` (memory/memcached: a file that makes accepted
    writes survive a crash), ``wb_fsync`` (docs/WRITE-BEHIND.md).
    Keys are str (UTF-8) or bytes; values are bytes unless a serializer is given.

    With L1 on, ``get`` and ``get_or_load`` keep decoded values beside it
    (``object_tier``, default True; _object_tier.py): a hit returns the same
    object every time, after one C call confirms its L1 entry still serves
    the key, so it is exactly as coherent as L1. Objects are shared: do not
    mutate a value you got (copy it first), or pass ``object_tier=False``.
    """

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
        writer: Optional[BatchWriter] = None,
        **options: Any,
    ) -> None:
        self._dumps, self._loads = _codec(serializer)
        object_tier = options.pop("object_tier", True)
        if writer is not None:
            check_batch_writer(writer)
        # l1_bus is itself a URL, which the core does not percent-decode in a
        # query; it goes in the options struct instead.
        l1_bus = options.pop("l1_bus", None)
        if l1_bus is not None and not isinstance(l1_bus, str):
            raise TypeError(f"option l1_bus must be a str (a redis:// URL), not {type(l1_bus).__name__}")
        self.url = build_url(url, namespace, ttl, neg_ttl, stale, l1, options)
        q = dict(parse_qsl(self.url.partition("?")[2]))
        try:
            self._lock_wait = int(q.get("lock_wait_ms", "2000")) / 1000.0
        except ValueError:
            self._lock_wait = 2.0
        self._wait_policy = q.get("wait_policy", "stale_or_load")
        out = ffi.new("strata_cache **")
        opts, keep, bus = ffi.NULL, None, None
        if writer is not None or l1_bus is not None:
            opts = ffi.new("strata_options *")
            lib.strata_options_init(opts, _OPTIONS_VERSION)
        if writer is not None:
            # The box is referenced by the C handle's destructor below, so it
            # outlives the flusher threads (freeing the handle joins them).
            keep = ffi.new_handle(BatchWriterBox(writer, self._loads))
            opts.wb_writer = lib.strata_py_batch_writer
            opts.wb_writer_data = keep
        if l1_bus is not None:
            bus = ffi.new("char[]", l1_bus.encode("utf-8"))  # copied by strata_cache_new
            opts.l1_bus = bus
        rc = lib.strata_cache_new(out, self.url.encode("utf-8"), opts)
        if rc < 0:
            _raise(rc)
        self.has_writer = writer is not None
        # Lifetime by reference: every call holds the handle in a local for
        # its duration, so dropping self._h in close() frees the C handle when
        # the last call in progress returns (at once when there is none),
        # without a lock pair on every call.
        self._h: Any = ffi.gc(out[0], lib.strata_cache_free if keep is None else
                              (lambda p, _box=keep: lib.strata_cache_free(p)))
        self._raw = self._loads is bytes
        # Decoded objects beside L1, checked against it on every hit
        # (_object_tier.py; object_tier=False turns it off).
        self._objects = (ObjectTier(int(q.get("l1_max_entries", "100000")), self._loads)
                         if object_tier and q.get("l1") == "1" else None)
        self._tls = threading.local()
        self._counts_lock = threading.Lock()
        # The C counters see loads through strata_record_load; these two
        # happen in Python's own singleflight and fail-open paths, which the C
        # get_or_load (where C counts them) never runs, so stats() adds them.
        self._counts = {"singleflight_shared": 0, "fail_open": 0}
        self._prom = _metrics.PrometheusBuffer()
        self._clear_hooks: List[Callable[[], None]] = []
        self._reset_locks()
        _live_caches.add(self)

    def _reset_locks(self) -> None:
        self._flights: Dict[bytes, _Flight] = {}
        self._flights_lock = threading.Lock()
        self._counts_lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self._counts_lock:
            self._counts[name] += 1

    # -- handle lifetime --------------------------------------------------

    def _enter(self) -> Any:
        """The C handle, to be held in a local while it is used."""
        h = self._h
        if h is None:
            raise Closed(lib.STRATA_ECLOSED, "ECLOSED", "the cache is closed")
        return h

    def close(self) -> None:
        """Releases the C handle (once calls in progress have returned). Idempotent."""
        self._h = None

    @property
    def closed(self) -> bool:
        return self._h is None

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<stratacache.Cache {self.url!r}{' closed' if self.closed else ''}>"

    def _value(self) -> Any:
        """This thread's reusable strata_value (its buffer grows to fit and is
        kept: no allocation per read)."""
        try:
            return self._tls.v
        except AttributeError:
            v = self._tls.v = ffi.gc(ffi.new("strata_value *"), lib.strata_value_dispose)
            self._tls.tp = ffi.new("strata_ticket **")
            self._tls.ver = ffi.new("uint64_t *")
            return v

    # -- cache-aside -------------------------------------------------------

    def get(self, key: Key, default: Any = None) -> Any:
        """The value, or ``default`` on a miss or a cached "not found"."""
        # The hot path: one C call, one copy; see bench/bench_python.py.
        h = self._h
        if h is None:
            self._enter()
        kb = key if type(key) is bytes else _key_bytes(key)
        try:
            v = self._tls.v
        except AttributeError:
            v = self._value()
        tier = self._objects
        if tier is not None:  # tier.get() inlined: this is the hottest call of the package
            hit = tier.objects.get(kb)
            if hit is not None and _strata_l1_check(h, kb, len(kb), hit[0]) == OK:
                return hit[1]
            obj = tier.read(h, kb, v, self._tls.ver, default)
            if obj is not MISSED:
                return obj
        rc = _strata_get(h, kb, len(kb), v)
        if rc == OK or rc == HIT_STALE:
            data = _unpack(v.data, v.len)
            return data if self._raw else self._loads(data)
        if rc < 0:
            _raise(rc)
        return default

    def set(self, key: Key, value: Any, ttl: Optional[float] = None, tags: Iterable[Key] = ()) -> None:
        """Stores ``value`` for ``ttl`` seconds (None: the cache's default),
        stamped with ``tags`` (str or bytes, up to 16 of up to 256 bytes):
        invalidate_tag(tag) later makes the entry a miss."""
        kb = _key_bytes(key)
        data = self._dumps(value)
        ms = _ttl_ms(ttl)
        tbs = _tag_bytes(tags)
        h = self._enter()
        if not tbs:
            rc = lib.strata_set(h, kb, len(kb), data, len(data), ms)
        else:
            opts = ffi.new("strata_set_options *")
            lib.strata_set_options_init(opts, _SET_OPTIONS_VERSION)
            opts.ttl_ms = ms
            tag_ptrs, tag_lens, keep = _tag_arrays(tbs)  # noqa: F841 (keep: alive for the call)
            opts.tags, opts.taglens, opts.ntags = tag_ptrs, tag_lens, len(tbs)
            rc = lib.strata_set_ex(h, kb, len(kb), data, len(data), opts)
        if rc < 0:
            _raise(rc)

    def delete(self, key: Key) -> bool:
        """True when something was deleted."""
        return self._keyed(lib.strata_delete, key)

    def invalidate(self, key: Key) -> None:
        """Drops the key and any in-flight load's right to fill it."""
        self._keyed(lib.strata_invalidate, key)

    def invalidate_tag(self, tag: Key) -> None:
        """Invalidates every entry stamped with ``tag`` (one backend write: the
        tag's version moves on, and entries stamped with the old one read as
        misses; other processes see it within the ``tag_cache_ms`` option)."""
        self._keyed(lib.strata_invalidate_tag, tag, "tag")

    def touch(self, key: Key, ttl: Optional[float] = None) -> bool:
        """Gives a live entry a new TTL (None: the cache's default; FOREVER);
        False when there is none."""
        kb = _key_bytes(key)
        ms = _ttl_ms(ttl)
        h = self._enter()
        rc = lib.strata_touch(h, kb, len(kb), ms)
        if rc < 0:
            _raise(rc)
        return rc == OK

    def _keyed(self, fn: Any, key: Key, what: str = "key") -> bool:
        kb = _key_bytes(key, what)
        h = self._enter()
        rc = fn(h, kb, len(kb))
        if rc < 0:
            _raise(rc)
        return rc == OK

    def get_many(self, keys: Iterable[Key]) -> Dict[Key, Any]:
        """A dict of the keys found (misses and cached "not found" are left out)."""
        if isinstance(keys, (str, bytes)):
            raise TypeError("keys must be an iterable of keys, not a single key")
        keys = list(keys)
        if not keys:
            return {}
        kbs = [_key_bytes(k, f"keys[{i}]") for i, k in enumerate(keys)]
        n = len(kbs)
        cks = [ffi.from_buffer(k) for k in kbs]
        karr = ffi.new("const char *[]", cks)
        lens = ffi.new("size_t[]", [len(k) for k in kbs])
        outs = ffi.new("strata_value[]", n)
        results = ffi.new("int[]", n)
        raw: List[Tuple[Key, bytes]] = []
        h = self._enter()
        rc = lib.strata_get_many(h, n, karr, lens, outs, results)
        try:
            if rc < 0:
                _raise(rc)
            for i in range(n):
                if results[i] in (OK, HIT_STALE, HIT_REFRESH):
                    raw.append((keys[i], _unpack(outs[i].data, outs[i].len)))
        finally:
            for i in range(n):
                lib.strata_value_dispose(ffi.addressof(outs, i))
        return {k: self._loads(d) for k, d in raw}

    def _pack_items(self, mapping: Mapping[Key, Any]) -> Optional["_Packed"]:
        """Keys and encoded values of mapping as the C arrays of the *_many
        calls (n, keys, keylens, vals, vallens); None when it is empty."""
        if not isinstance(mapping, Mapping):
            raise TypeError(f"mapping must be a mapping, not {type(mapping).__name__}")
        items = list(mapping.items())
        if not items:
            return None
        kbs = [_key_bytes(k, "key") for k, _ in items]
        vbs = [self._dumps(v) for _, v in items]
        n = len(items)
        keep = [ffi.from_buffer(b) for b in kbs] + [ffi.from_buffer(b) for b in vbs]
        karr = ffi.new("const char *[]", keep[:n])
        varr = ffi.new("const char *[]", keep[n:])
        klens = ffi.new("size_t[]", [len(b) for b in kbs])
        vlens = ffi.new("size_t[]", [len(b) for b in vbs])
        return _Packed((n, karr, klens, varr, vlens), keep)

    def set_many(self, mapping: Mapping[Key, Any], ttl: Optional[float] = None,
                 tags: Optional[Iterable[Key]] = None) -> None:
        """Stores every item (all or nothing on bad input), each stamped with
        ``tags`` when given; pipelined (one round trip on redis)."""
        ms = _ttl_ms(ttl)
        tbs = _tag_bytes(tags) if tags is not None else []
        packed = self._pack_items(mapping)
        if packed is None:
            return
        h = self._enter()
        if not tbs:
            rc = lib.strata_set_many(h, *packed.args, ms)
        else:
            opts = ffi.new("strata_set_options *")
            lib.strata_set_options_init(opts, _SET_OPTIONS_VERSION)
            opts.ttl_ms = ms
            tag_ptrs, tag_lens, keep = _tag_arrays(tbs)  # noqa: F841 (keep: alive for the call)
            opts.tags, opts.taglens, opts.ntags = tag_ptrs, tag_lens, len(tbs)
            rc = lib.strata_set_many_ex(h, *packed.args, opts)
        if rc < 0:
            _raise(rc)

    # -- framework primitives (docs/FRAMEWORKS.md) --------------------------------

    def clear(self) -> None:
        """Every entry of this namespace misses afterwards: at once in this
        process, in others within the ``tag_cache_ms`` option (at once where
        an invalidation link carries it). One O(1) backend write; nothing
        is scanned. Locks and write-behind records are kept."""
        h = self._enter()
        rc = lib.strata_clear(h)
        if rc < 0:
            _raise(rc)
        for hook in list(self._clear_hooks):
            hook()

    def on_clear(self, hook: Callable[[], None]) -> None:
        """Calls ``hook()`` after each clear() of this object (for tiers kept
        in front of it, e.g. decoded objects)."""
        self._clear_hooks.append(hook)

    def add(self, key: Key, value: Any, ttl: Optional[float] = None) -> bool:
        """Stores ``value`` only where ``key`` holds no live value: True when
        stored. Atomic across processes: of racing adds exactly one wins."""
        kb = _key_bytes(key)
        data = self._dumps(value)
        ms = _ttl_ms(ttl)
        h = self._enter()
        rc = lib.strata_add(h, kb, len(kb), data, len(data), ms)
        if rc < 0:
            _raise(rc)
        return rc == OK

    def incr(self, key: Key, delta: int = 1, ttl: Optional[float] = None) -> int:
        """Adds ``delta`` to the integer under ``key`` atomically across
        processes and returns the new value. A key without a live value
        starts at 0 (created holding ``delta``, for ``ttl`` or the default).
        ``ttl`` None keeps the entry's remaining TTL. NotAnInteger when the
        stored value is not a decimal integer (``set(k, 5)`` stores one with
        serializer "json", "pickle" or raw bytes b"5") or the sum overflows
        64 bits; the value is then unchanged."""
        return self._count_by(lib.strata_incr, key, delta, ttl)

    def decr(self, key: Key, delta: int = 1, ttl: Optional[float] = None) -> int:
        """incr(key, -delta, ttl)."""
        return self._count_by(lib.strata_decr, key, delta, ttl)

    def _count_by(self, fn: Any, key: Key, delta: int, ttl: Optional[float]) -> int:
        kb = _key_bytes(key)
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, not {type(delta).__name__}")
        if not -(1 << 63) <= delta < (1 << 63):
            raise NotAnInteger(lib.STRATA_ENOTNUM, "ENOTNUM", f"delta {delta} does not fit in 64 bits")
        ms = _ttl_ms(ttl)
        out = ffi.new("int64_t *")
        h = self._enter()
        rc = fn(h, kb, len(kb), delta, ms, out)
        if rc < 0:
            _raise(rc)
        return int(out[0])

    def delete_many(self, keys: Iterable[Key]) -> int:
        """Deletes the keys in one round trip per server (redis; memcached: one
        call per key); returns how many held a value."""
        if isinstance(keys, (str, bytes)):
            raise TypeError("keys must be an iterable of keys, not a single key")
        kbs = [_key_bytes(k, f"keys[{i}]") for i, k in enumerate(keys)]
        if not kbs:
            return 0
        keep = [ffi.from_buffer(k) for k in kbs]
        karr = ffi.new("const char *[]", keep)
        lens = ffi.new("size_t[]", [len(k) for k in kbs])
        out = ffi.new("size_t *")
        h = self._enter()
        rc = lib.strata_delete_many(h, len(kbs), karr, lens, out)
        if rc < 0:
            _raise(rc)
        return int(out[0])

    def lock(self, name: Key, ttl: float) -> "Lock":
        """A Lock named ``name`` (a context manager; acquire(blocking=True,
        timeout=None), release(), locked(), extend(ttl)) held for at most
        ``ttl`` seconds unless extended."""
        return Lock(self, name, ttl)

    # -- writes -----------------------------------------------------------------

    def write_through(self, key: Key, value: Any, writer: Callable[[Key, Any], Any],
                      ttl: Optional[float] = None) -> bool:
        """Calls ``writer(key, value)`` (store it in the source of truth), then,
        only if it returned, updates the cache (value, load leases killed, L1).
        The writer's exception propagates unchanged and the cache is untouched.
        True when the cache holds the new value; False when its update failed
        and the key was invalidated instead; StaleCache when even that failed.
        """
        if not callable(writer):
            raise TypeError(f"writer must be callable, not {type(writer).__name__}")
        kb = _key_bytes(key)
        data = self._dumps(value)
        ms = _ttl_ms(ttl)
        call = WriteCall(writer, key, value)
        ud = ffi.new_handle(call)
        h = self._enter()
        rc = lib.strata_write_through(h, kb, len(kb), data, len(data), ms, lib.strata_py_writer, ud)
        if call.error is not None:
            raise call.error
        if rc < 0:
            _raise(rc)
        return rc == OK

    def write_behind(self, key: Key, value: Any, ttl: Optional[float] = None) -> bool:
        """Updates the cache and journals the write for the writer given to
        Cache(writer=...) (called later, in batches, from a flusher thread).
        Returns once both are stored: True, or False when the cache update
        failed and the key was invalidated instead (the write is journaled).
        Busy when the backlog is at wb_max_backlog."""
        kb = _key_bytes(key)
        data = self._dumps(value)
        ms = _ttl_ms(ttl)
        h = self._enter()
        rc = lib.strata_write_behind(h, kb, len(kb), data, len(data), ms)
        if rc < 0:
            _raise(rc)
        return rc == OK

    def write_behind_many(self, mapping: Mapping[Key, Any], ttl: Optional[float] = None) -> bool:
        """write_behind for every item, in one round trip on Redis (all or
        nothing on bad input); False when some cache updates failed and
        those keys were invalidated instead."""
        packed = self._pack_items(mapping)
        if packed is None:
            return True
        ms = _ttl_ms(ttl)
        h = self._enter()
        rc = lib.strata_write_behind_many(h, *packed.args, ms)
        if rc < 0:
            _raise(rc)
        return rc == OK

    def flush(self, timeout: float = 30.0) -> None:
        """Waits until every write-behind record has reached the writer (runs
        the writer in this thread when there are no flusher threads);
        Timeout when records remain after ``timeout`` seconds. It removes
        nothing from the cache: clear() is what makes every entry miss."""
        ms = _ms(timeout, "timeout", allow_none=False)
        h = self._enter()
        rc = lib.strata_flush(h, ms)
        if rc < 0:
            _raise(rc)

    # -- metrics --------------------------------------------------------------

    def stats(self) -> Dict[str, int]:
        """Every counter of strata_stats (version 2) since the handle was
        created: hits, misses, loads, load_errors, tag_*, l1_*, wb_*,
        breaker_state (0 closed, 1 open, 2 half-open), l1_link_up ...
        (docs/METRICS.md, docs/WRITE-BEHIND.md)."""
        h = self._enter()
        out = _metrics.read_stats(h, _raise)
        with self._counts_lock:
            for name, n in self._counts.items():
                out[name] += n
        return out

    def histogram(self, kind: str = "get") -> "_metrics.Histogram":
        """Latency histogram of ``kind``: "get" (get() calls that go past L1;
        get_or_load is built on strata_lookup, which the C library does not
        time), "load" (loader calls, Python loaders included) or "backend"
        (each backend round trip)."""
        k = _metrics.histogram_kind(kind)
        return _metrics.read_histogram(self._enter(), k, _raise)

    def prometheus(self) -> str:
        """The stats and histograms in Prometheus text exposition format
        (metric names stratacache_*), for a /metrics endpoint."""
        text = self._prom.read(self._enter(), _raise)
        with self._counts_lock:
            extra = {f"stratacache_{name}_total": n for name, n in self._counts.items() if n}
        return _metrics.add_to_samples(text, extra) if extra else text

    def hot_keys(self, n: int = 10) -> List["_metrics.HotKey"]:
        """The ``n`` most read keys lately, hottest first, as HotKey(key,
        count, rate_per_s) named tuples. Each of the sketch's 16 shards
        ranks up to the ``hot_top`` option's keys (default 16); NotSupported
        when the sketch is off (hot_sketch_width=0)."""
        count = _metrics.hot_count(n)
        return _metrics.read_hot_keys(self._enter(), count, _raise)

    # -- two-phase primitives (also used by AsyncCache) --------------------

    def _lookup(self, kb: bytes) -> Tuple[int, Optional[bytes], Any, float]:
        """(rc, data or None, ticket or None, wait seconds); raises on errors
        other than the fail-open ones."""
        h = self._enter()
        v = self._value()
        tp = self._tls.tp
        rc = _strata_lookup(h, kb, len(kb), v, tp)
        if rc < 0 and rc not in _FAIL_OPEN:
            _raise(rc)
        data = _unpack(v.data, v.len) if rc in (OK, HIT_STALE, HIT_REFRESH) else None
        ticket = tp[0]
        if ticket == _NULL:
            ticket = None
        return rc, data, ticket, max(int(v.wait_ms), 1) / 1000.0

    def _prepare(self, result: Any) -> _Prepared:
        """A loader's result checked and encoded; raises (a failed load) when
        it cannot be stored."""
        if type(result) is Loaded:
            ms = None if result.ttl is None else _ttl_ms(result.ttl, "Loaded.ttl")
            value, tags = result.value, result.tags
        else:
            value, ms, tags = result, None, ()
        if isinstance(value, Loaded):
            raise TypeError("Loaded.value must not be another Loaded")
        return _Prepared(value, None if value is NOT_FOUND else self._dumps(value), ms, tags)

    def _prepare_batch(self, loaded: Any, keys: List[Key]) -> List[Tuple[Key, _Prepared]]:
        """A batch loader's result (a mapping; absent keys are NOT_FOUND),
        each key's entry prepared; raises (a failed load) otherwise."""
        if not isinstance(loaded, Mapping):
            raise TypeError(f"loader must return a dict, not {type(loaded).__name__}")
        return [(k, self._prepare(loaded.get(k, NOT_FOUND))) for k in keys]

    def _record_load(self, failed: bool, t0: int) -> None:
        """Counts one loader call in the C stats (loads, load_errors) and the
        load histogram."""
        h = self._h
        if h is not None:
            lib.strata_record_load(h, 1 if failed else 0, max(0, time.perf_counter_ns() - t0))

    def _call_loader(self, loader: Callable[[Key], Any], key: Key) -> _Prepared:
        t0 = time.perf_counter_ns()
        try:
            p = self._prepare(loader(key))
        except BaseException:
            self._record_load(True, t0)
            raise
        self._record_load(False, t0)
        return p

    @staticmethod
    def _stamp(ticket: Any, tags: Iterable[bytes]) -> int:
        """Stamps the ticket's fill with the tags' current versions (0 or an error code)."""
        tags = list(dict.fromkeys(tags))  # no repeats, order kept
        if not tags:
            return 0
        ptrs, lens, keep = _tag_arrays(tags)  # noqa: F841 (keep: alive for the call)
        return int(lib.strata_ticket_tags(ticket, ptrs, lens, len(tags)))

    def _fill(self, ticket: Any, p: _Prepared, ms: int, tags: Tuple[bytes, ...]) -> None:
        """Fills the ticket with a prepared result. A refused fill (the lease
        lost to a newer write) still returns the value, as the C get_or_load
        does. ``tags`` were stamped before the load; the result's own tags
        are stamped now, together with them."""
        if p.tags:
            rc = self._stamp(ticket, tags + p.tags)
            if rc < 0:
                lib.strata_abandon(ticket)
                if rc in _FAIL_OPEN:
                    return  # the versions could not be read: serve the value, store nothing
                _raise(rc)
        ttl = ms if p.ms is None else p.ms
        if p.data is None:
            lib.strata_fill_negative(ticket, ttl if p.ms is not None else 0)
        else:
            lib.strata_fill(ticket, p.data, len(p.data), ttl)

    def _stamp_before_load(self, ticket: Any, tags: Tuple[bytes, ...]) -> bool:
        """Stamps tags on a fresh ticket before the loader reads the source.
        False when the backend could not give their versions (the ticket is
        then abandoned: load, and store nothing); raises on bad tags."""
        rc = self._stamp(ticket, tags)
        if rc >= 0:
            return True
        lib.strata_abandon(ticket)
        if rc in _FAIL_OPEN:
            self._count("fail_open")
            return False
        _raise(rc)

    @staticmethod
    def _abandon(ticket: Any) -> None:
        if ticket is not None:
            lib.strata_abandon(ticket)

    def _result(self, result: Any, default: Any) -> Any:
        return default if result is NOT_FOUND else result

    # -- read-through ---------------------------------------------------------

    @overload
    def get_or_load(self, key: K, loader: Callable[[K], Union[T, Loaded, "_NotFound"]],
                    ttl: Optional[float] = None, default: None = None, tags: Iterable[Key] = ()) -> Optional[T]: ...

    @overload
    def get_or_load(self, key: K, loader: Callable[[K], Union[T, Loaded, "_NotFound"]],
                    ttl: Optional[float], default: D, tags: Iterable[Key] = ()) -> Union[T, D]: ...

    @overload
    def get_or_load(self, key: K, loader: Callable[[K], Union[T, Loaded, "_NotFound"]], *,
                    default: D, ttl: Optional[float] = None, tags: Iterable[Key] = ()) -> Union[T, D]: ...

    def get_or_load(self, key: Key, loader: Callable[[Any], Any], ttl: Optional[float] = None,
                    default: Any = None, tags: Iterable[Key] = ()) -> Any:
        """The cached value, or ``loader(key)``'s, stored for ``ttl`` seconds.

        ``loader`` runs in the calling thread. It returns the value,
        ``NOT_FOUND`` (cached as a negative entry; ``default`` is returned),
        or ``Loaded(value, ttl=..., tags=...)`` for a TTL or tags of its own;
        or it raises: the exception propagates unchanged and nothing is
        cached. ``tags`` stamp the stored entry (their versions are read
        before the loader runs, so an invalidate_tag() during the load wins).
        One loader call per key at a time in this process (threads share the
        result) and, through the backend's lease, across processes.
        When refreshing a value that may still be served fails, the value is
        served (stale-if-error) and the exception is logged.
        """
        h = self._enter()  # held until the end: a lease's ticket points into the handle
        if not callable(loader):
            raise TypeError(f"loader must be callable, not {type(loader).__name__}")
        kb = key if type(key) is bytes else _key_bytes(key)
        ms = _ttl_ms(ttl)
        if tags and type(tags) is not list and type(tags) is not tuple:
            tags = tag_list(tags)  # a str (TypeError) or a one-shot iterable: now
        # A list or tuple of tags is converted and checked only on a miss, so
        # a hit costs nothing more with tags than without.
        # A hit or a cached "not found" takes one lookup and no singleflight
        # bookkeeping; the rest (load, wait, fail open) is in _get_or_load_slow.
        try:
            v = self._tls.v
        except AttributeError:
            v = self._value()
        tier = self._objects
        if tier is not None:
            obj = tier.get(h, kb, v, self._tls.ver, default)
            if obj is not MISSED:
                return obj
        tp = self._tls.tp
        rc = _strata_lookup(h, kb, len(kb), v, tp)
        if rc == OK or rc == HIT_STALE:
            data = _unpack(v.data, v.len)
            return data if self._raw else self._loads(data)
        if rc == NEGATIVE:
            return default
        if rc < 0 and rc not in _FAIL_OPEN:
            _raise(rc)
        ticket = tp[0]
        first = (rc, _unpack(v.data, v.len) if rc == HIT_REFRESH else None,
                 None if ticket == _NULL else ticket, max(int(v.wait_ms), 1) / 1000.0)
        try:
            tbs = tuple(tag_list(tags)) if tags else ()
        except BaseException:
            self._abandon(first[2])
            raise
        return self._get_or_load_slow(h, key, kb, loader, ms, tbs, default, first)

    def _get_or_load_slow(self, h: Any, key: Key, kb: bytes, loader: Callable[[Key], Any], ms: int,
                          tags: Tuple[bytes, ...], default: Any,
                          first: Tuple[int, Optional[bytes], Any, float]) -> Any:
        holds_ticket = first[2] is not None
        with self._flights_lock:
            f = self._flights.get(kb)
            lead = f is None
            if lead:
                f = self._flights[kb] = _Flight()
        assert f is not None
        if not lead:
            if holds_ticket:
                # This thread holds the lease (another thread's flight is
                # waiting on it): load and fill, or that flight waits in vain.
                return self._result(self._load_one(key, kb, loader, ms, tags, first), default)
            self._count("singleflight_shared")
            f.event.wait()
            if f.error is not None:
                raise f.error
            return self._result(f.result, default)
        try:
            f.result = self._load_one(key, kb, loader, ms, tags, first)
        except BaseException as e:
            f.error = e
            raise
        finally:
            with self._flights_lock:
                self._flights.pop(kb, None)
            f.event.set()
        return self._result(f.result, default)

    def _load_one(self, key: Key, kb: bytes, loader: Callable[[Key], Any], ms: int,
                  tags: Tuple[bytes, ...] = (),
                  first: Optional[Tuple[int, Optional[bytes], Any, float]] = None) -> Any:
        deadline = time.monotonic() + self._lock_wait
        backoff = 0.002
        while True:
            if first is not None:
                (rc, data, ticket, wait), first = first, None
            else:
                rc, data, ticket, wait = self._lookup(kb)
            if rc in (OK, HIT_STALE):
                return self._loads(data)  # type: ignore[arg-type]
            if rc == NEGATIVE:
                return NOT_FOUND
            if rc in (HIT_REFRESH, MISS_LEAD):
                if tags and not self._stamp_before_load(ticket, tags):
                    return self._call_loader(loader, key).value
                try:
                    p = self._call_loader(loader, key)
                except Exception:
                    self._abandon(ticket)
                    if rc == HIT_REFRESH:
                        log.warning("refresh of %r failed; serving the cached value", key, exc_info=True)
                        return self._loads(data)  # type: ignore[arg-type]
                    raise
                except BaseException:
                    self._abandon(ticket)
                    raise
                self._fill(ticket, p, ms, tags)
                return p.value
            if rc == MISS_WAIT:
                now = time.monotonic()
                if now >= deadline:
                    if self._wait_policy == "fail":
                        raise Timeout(lib.STRATA_ETIMEOUT, "ETIMEOUT",
                                      f"waited {self._lock_wait * 1000:.0f} ms for another loader of this key")
                    # Load without the lease and do not store it.
                    return self._call_loader(loader, key).value
                time.sleep(max(0.001, min(backoff, wait, deadline - now)))
                backoff = min(backoff * 2, 0.05)
                continue
            if rc in _FAIL_OPEN:
                # The backend failed: the source of truth still answers.
                self._count("fail_open")
                return self._call_loader(loader, key).value
            _raise(rc)

    def get_many_or_load(self, keys: Iterable[Key], loader: Callable[[List[Key]], Mapping[Key, Any]],
                         ttl: Optional[float] = None, tags: Iterable[Key] = ()) -> Dict[Key, Any]:
        """A dict of the found values; ``loader`` gets the list of missing keys
        (one call) and returns a dict whose values may be ``Loaded(...)``;
        keys it leaves out, or maps to NOT_FOUND, are cached as "not found"
        and left out of the result. ``tags`` stamp every loaded entry."""
        if not callable(loader):
            raise TypeError(f"loader must be callable, not {type(loader).__name__}")
        if isinstance(keys, (str, bytes)):
            raise TypeError("keys must be an iterable of keys, not a single key")
        keys = list(keys)
        ms = _ttl_ms(ttl)
        tbs = tuple(tag_list(tags)) if tags else ()
        h = self._enter()  # noqa: F841 (held until the end: the leases' tickets point into the handle)
        return self._get_many_or_load(keys, loader, ms, tbs)

    def _get_many_or_load(self, keys: List[Key], loader: Callable[[List[Key]], Mapping[Key, Any]],
                          ms: int, tags: Tuple[bytes, ...] = ()) -> Dict[Key, Any]:
        found = self.get_many(keys)
        missing = _missing_keys(keys, found)
        if not missing:
            return found
        tickets: Dict[bytes, Any] = {}
        to_load: List[Key] = []
        try:
            for k in missing:
                kb = _key_bytes(k)
                rc, data, ticket, _ = self._lookup(kb)
                if rc in (OK, HIT_STALE, HIT_REFRESH):
                    found[k] = self._loads(data)  # type: ignore[arg-type]
                    self._abandon(ticket)
                elif rc == NEGATIVE:
                    pass
                else:
                    if ticket is not None and (not tags or self._stamp_before_load(ticket, tags)):
                        tickets[kb] = ticket
                    to_load.append(k)
            if to_load:
                t0 = time.perf_counter_ns()  # one batch, one load (as the C side counts)
                try:
                    prepared = self._prepare_batch(loader(list(to_load)), to_load)
                except BaseException:
                    self._record_load(True, t0)
                    raise
                self._record_load(False, t0)
                for k, p in prepared:
                    t = tickets.pop(_key_bytes(k), None)
                    if t is not None:
                        self._fill(t, p, ms, tags)
                    if p.value is not NOT_FOUND:
                        found[k] = p.value
        finally:
            for t in tickets.values():
                self._abandon(t)
        return found

    # -- decorator --------------------------------------------------------------

    def cached(self, ttl: Optional[float] = None, key: Union[None, str, Callable[..., Key]] = None,
               tags: Union[Iterable[str], Callable[..., Iterable[Key]]] = (), cache_none: bool = False
               ) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
        """Caches a function's results through get_or_load.

        The key is built from the call's arguments:
          - ``key=None``: ``"<module>.<qualname>:" + JSON of the bound
            arguments`` (defaults applied, so f(1) and f(x=1) share an entry);
            arguments must be str, int, float, bool, None, or lists, tuples and
            str-keyed dicts of those, else TypeError (pass ``key=``). Keys
            longer than 200 bytes are replaced by a SHA-256 digest.
          - ``key="user:{user_id}"``: a str.format template over the bound
            arguments (by name, or by position ``{0}``).
          - ``key=callable``: called with the same arguments, returns the key.
        ``tags`` stamp each stored result: str templates formatted like a
        ``key`` template (``tags=["user:{user_id}", "users"]``), or a callable
        called with the arguments that returns the tags.
        A function result of None is cached as "not found" (for the cache's
        neg_ttl) and returned as None; ``cache_none=True`` stores None as a
        value instead (for the ``ttl``; needs a serializer that encodes None).
        The returned function has the wrapped one's signature and
        ``cache_key(*args, **kwargs)`` / ``cache_tags(...)``: the key and tags
        a call with those arguments uses (e.g. to ``delete`` its entry).
        """
        if ttl is not None:
            _ttl_ms(ttl)
        if key is not None and not isinstance(key, str) and not callable(key):
            raise TypeError(f"key must be None, a str template or a callable, not {type(key).__name__}")
        templates: Tuple[str, ...] = ()
        if not callable(tags):
            if isinstance(tags, (str, bytes)):
                raise TypeError(f"tags must be an iterable of str templates or a callable, not a single "
                                f"{type(tags).__name__}")
            templates = tuple(tags)
            for i, t in enumerate(templates):
                if not isinstance(t, str):
                    raise TypeError(f"tags[{i}] must be a str template, not {type(t).__name__}")

        def decorate(fn: Callable[P, R]) -> CachedFunction[P, R]:
            sig = inspect.signature(fn)
            prefix = f"{fn.__module__}.{fn.__qualname__}"

            def make_key(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Key:
                if callable(key):
                    return key(*args, **kwargs)
                bound = sig.bind(*args, **kwargs)
                bound.apply_defaults()
                if isinstance(key, str):
                    return key.format(*bound.args, **bound.arguments)
                return _default_key(prefix, bound.arguments)

            def make_tags(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Iterable[Key]:
                if callable(tags):
                    return tags(*args, **kwargs)
                if not templates:
                    return ()
                bound = sig.bind(*args, **kwargs)
                bound.apply_defaults()
                return [t.format(*bound.args, **bound.arguments) for t in templates]

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                def load(_k: Key) -> Any:
                    r = fn(*args, **kwargs)
                    return NOT_FOUND if r is None and not cache_none else r

                return self.get_or_load(make_key(args, kwargs), load, ttl=ttl, tags=make_tags(args, kwargs))

            setattr(wrapper, "cache_key", lambda *a, **kw: make_key(a, kw))
            setattr(wrapper, "cache_tags", lambda *a, **kw: make_tags(a, kw))
            return cast("CachedFunction[P, R]", wrapper)

        return decorate


def _check_keyable(name: str, v: Any) -> None:
    if v is None or isinstance(v, (str, int, float, bool)):
        return
    if isinstance(v, (list, tuple)):
        for x in v:
            _check_keyable(name, x)
        return
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        for x in v.values():
            _check_keyable(name, x)
        return
    raise TypeError(
        f"cannot build a cache key from argument {name!r} of type {type(v).__name__}; pass key= to cached()"
    )


def _default_key(prefix: str, arguments: Mapping[str, Any]) -> str:
    for name, v in arguments.items():
        _check_keyable(name, v)
    body = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    k = f"{prefix}:{body}"
    if len(k.encode("utf-8")) > 200:
        k = f"{prefix}:sha256:{hashlib.sha256(body.encode('utf-8')).hexdigest()}"
    return k
