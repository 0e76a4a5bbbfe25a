"""The synchronous Cache over the C handle."""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
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
    NoReturn,
    Optional,
    Tuple,
    TypeVar,
    Union,
)
from urllib.parse import parse_qsl, quote

from ._errors import Closed, InvalidArgument, StrataError, Timeout, error_class
from ._native import ffi, lib

log = logging.getLogger("stratacache")

Key = Union[str, bytes]
F = TypeVar("F", bound=Callable[..., Any])

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


def _tag_bytes(tags: Any) -> List[bytes]:
    if isinstance(tags, (str, bytes)):
        raise TypeError(f"tags must be an iterable of str or bytes, not a single {type(tags).__name__}")
    try:
        it = iter(tags)
    except TypeError:
        raise TypeError(f"tags must be an iterable of str or bytes, not {type(tags).__name__}") from None
    return [_key_bytes(t, f"tags[{i}]") for i, t in enumerate(it)]


def _ms(seconds: Any, what: str, allow_none: bool = True) -> int:
    """Seconds (int or float) to milliseconds; None -> 0 (the cache's default)."""
    if seconds is None and allow_none:
        return 0
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(seconds).__name__}")
    if seconds < 0:
        raise InvalidArgument(lib.STRATA_EINVAL, "EINVAL", f"{what} must be >= 0 seconds, got {seconds!r}")
    ms = int(round(seconds * 1000))
    return 1 if ms == 0 and seconds > 0 else ms


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


def _codec(serializer: Serializer) -> Tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    if serializer is None or serializer == "bytes":
        return _raw_dumps, bytes
    if serializer == "json":
        return _json_dumps, _json_loads
    if serializer == "pickle":
        # Only on explicit request: unpickling runs code chosen by whoever can
        # write to the cache server, so pickle trusts every client of it.
        return (lambda v: pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)), pickle.loads
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
    """The URL with the keyword options appended as query options."""
    if not isinstance(url, str):
        raise TypeError(f"url must be str, not {type(url).__name__}")
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


class Cache:
    """A cache handle (thread-safe; one per process is enough).

    ``url`` is memory://[name], redis://[user:pass@]host:port[/db] or
    memcached://host:port[,host:port...]. ``ttl``, ``neg_ttl`` and ``stale`` are
    seconds; other keyword options are passed as URL query options
    (``timeout_ms=250``, ``pool_size=8``, ``lock_wait_ms=2000`` ...).
    Keys are str (UTF-8) or bytes; values are bytes unless a serializer is given.
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
        **options: Any,
    ) -> None:
        self._dumps, self._loads = _codec(serializer)
        self.url = build_url(url, namespace, ttl, neg_ttl, stale, l1, options)
        q = dict(parse_qsl(self.url.partition("?")[2]))
        try:
            self._lock_wait = int(q.get("lock_wait_ms", "2000")) / 1000.0
        except ValueError:
            self._lock_wait = 2.0
        self._wait_policy = q.get("wait_policy", "stale_or_load")
        out = ffi.new("strata_cache **")
        rc = lib.strata_cache_new(out, self.url.encode("utf-8"), ffi.NULL)
        if rc < 0:
            _raise(rc)
        # Lifetime by reference: every call holds the handle in a local for
        # its duration, so dropping self._h in close() frees the C handle when
        # the last call in progress returns (at once when there is none),
        # without a lock pair on every call.
        self._h: Any = ffi.gc(out[0], lib.strata_cache_free)
        self._raw = self._loads is bytes
        self._tls = threading.local()
        self._counts_lock = threading.Lock()
        self._counts = {"loads": 0, "load_errors": 0, "singleflight_shared": 0, "fail_open": 0}
        self._reset_locks()
        _live_caches.add(self)

    def _reset_locks(self) -> None:
        self._flights: Dict[bytes, _Flight] = {}
        self._flights_lock = threading.Lock()
        self._counts_lock = threading.Lock()

    def _count(self, name: str) -> None:
        # Loads made by Python code do not pass through the C loader path, which
        # is where the C counters see them; stats() adds these.
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
        rc = _strata_get(h, kb, len(kb), v)
        if rc == OK or rc == HIT_STALE:
            data = _unpack(v.data, v.len)
            return data if self._raw else self._loads(data)
        if rc < 0:
            _raise(rc)
        return default

    def set(self, key: Key, value: Any, ttl: Optional[float] = None, tags: Iterable[Key] = ()) -> None:
        """Stores ``value`` for ``ttl`` seconds (None: the cache's default),
        stamped with ``tags`` (str or bytes) for invalidate_tag(). Tagged
        writes raise NotSupported while the C library lacks tags."""
        kb = _key_bytes(key)
        data = self._dumps(value)
        ms = _ms(ttl, "ttl")
        tag_list = _tag_bytes(tags)
        h = self._enter()
        if not tag_list:
            rc = lib.strata_set(h, kb, len(kb), data, len(data), ms)
        else:
            opts = ffi.new("strata_set_options *")
            lib.strata_set_options_init(opts, _SET_OPTIONS_VERSION)
            opts.ttl_ms = ms
            keep = [ffi.from_buffer(t) for t in tag_list]
            tag_ptrs = ffi.new("const char *[]", keep)
            tag_lens = ffi.new("size_t[]", [len(t) for t in tag_list])
            opts.tags, opts.taglens, opts.ntags = tag_ptrs, tag_lens, len(tag_list)
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
        """Invalidates every entry stamped with ``tag``."""
        self._keyed(lib.strata_invalidate_tag, tag, "tag")

    def touch(self, key: Key, ttl: float) -> bool:
        """Gives a live entry a new TTL; False when there is none."""
        kb = _key_bytes(key)
        ms = _ms(ttl, "ttl", allow_none=False)
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

    def set_many(self, mapping: Mapping[Key, Any], ttl: Optional[float] = None) -> None:
        """Stores every item (all or nothing on bad input)."""
        if not isinstance(mapping, Mapping):
            raise TypeError(f"mapping must be a mapping, not {type(mapping).__name__}")
        items = list(mapping.items())
        if not items:
            return
        ms = _ms(ttl, "ttl")
        kbs = [_key_bytes(k, "key") for k, _ in items]
        vbs = [self._dumps(v) for _, v in items]
        n = len(items)
        keep = [ffi.from_buffer(b) for b in kbs] + [ffi.from_buffer(b) for b in vbs]
        karr = ffi.new("const char *[]", keep[:n])
        varr = ffi.new("const char *[]", keep[n:])
        klens = ffi.new("size_t[]", [len(b) for b in kbs])
        vlens = ffi.new("size_t[]", [len(b) for b in vbs])
        h = self._enter()
        rc = lib.strata_set_many(h, n, karr, klens, varr, vlens, ms)
        if rc < 0:
            _raise(rc)

    def stats(self) -> Dict[str, int]:
        """Counters since the handle was created (strata_stats_get)."""
        st = ffi.new("strata_stats *")
        h = self._enter()
        rc = lib.strata_stats_get(h, st, 1)
        if rc < 0:
            _raise(rc)
        out = {name: int(getattr(st, name)) for name, _ in ffi.typeof("strata_stats").fields if name != "version"}
        with self._counts_lock:
            for name, n in self._counts.items():
                out[name] += n
        return out

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

    def _encode_loaded(self, result: Any) -> Optional[bytes]:
        """The bytes to fill with, or None for NOT_FOUND."""
        if result is NOT_FOUND:
            return None
        return self._dumps(result)

    @staticmethod
    def _fill(ticket: Any, data: Optional[bytes], ms: int) -> None:
        # A refused fill (lease lost to a newer write) still returns the loaded
        # value to the caller, as the C get_or_load does.
        if data is None:
            lib.strata_fill_negative(ticket, 0)
        else:
            lib.strata_fill(ticket, data, len(data), ms)

    @staticmethod
    def _abandon(ticket: Any) -> None:
        if ticket is not None:
            lib.strata_abandon(ticket)

    def _result(self, result: Any, default: Any) -> Any:
        return default if result is NOT_FOUND else result

    # -- read-through ---------------------------------------------------------

    def get_or_load(self, key: Key, loader: Callable[[Key], Any], ttl: Optional[float] = None,
                    default: Any = None) -> Any:
        """The cached value, or ``loader(key)``'s, stored for ``ttl`` seconds.

        ``loader`` runs in the calling thread. It returns the value or
        ``NOT_FOUND`` (cached as a negative entry; ``default`` is returned), or
        raises: the exception propagates unchanged and nothing is cached. One
        loader call per key at a time in this process (threads share the
        result) and, through the backend's lease, across processes.
        When refreshing a value that may still be served fails, the value is
        served (stale-if-error) and the exception is logged.
        """
        h = self._enter()  # held until the end: a lease's ticket points into the handle
        if not callable(loader):
            raise TypeError(f"loader must be callable, not {type(loader).__name__}")
        kb = key if type(key) is bytes else _key_bytes(key)
        ms = 0 if ttl is None else _ms(ttl, "ttl")
        # A hit or a cached "not found" takes one lookup and no singleflight
        # bookkeeping; the rest (load, wait, fail open) is in _get_or_load_slow.
        try:
            v = self._tls.v
        except AttributeError:
            v = self._value()
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
        return self._get_or_load_slow(h, key, kb, loader, ms, default, first)

    def _get_or_load_slow(self, h: Any, key: Key, kb: bytes, loader: Callable[[Key], Any], ms: int,
                          default: Any, first: Tuple[int, Optional[bytes], Any, float]) -> Any:
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
                return self._result(self._load_one(key, kb, loader, ms, first), default)
            self._count("singleflight_shared")
            f.event.wait()
            if f.error is not None:
                raise f.error
            return self._result(f.result, default)
        try:
            f.result = self._load_one(key, kb, loader, ms, first)
        except BaseException as e:
            f.error = e
            raise
        finally:
            with self._flights_lock:
                self._flights.pop(kb, None)
            f.event.set()
        return self._result(f.result, default)

    def _call_loader(self, loader: Callable[[Key], Any], key: Key) -> Tuple[Any, Optional[bytes]]:
        """(loader's result, its bytes or None for NOT_FOUND), counted in stats()."""
        self._count("loads")
        try:
            result = loader(key)
            return result, self._encode_loaded(result)
        except BaseException:
            self._count("load_errors")
            raise

    def _load_one(self, key: Key, kb: bytes, loader: Callable[[Key], Any], ms: int,
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
                try:
                    result, enc = self._call_loader(loader, key)
                except Exception:
                    self._abandon(ticket)
                    if rc == HIT_REFRESH:
                        log.warning("refresh of %r failed; serving the cached value", key, exc_info=True)
                        return self._loads(data)  # type: ignore[arg-type]
                    raise
                except BaseException:
                    self._abandon(ticket)
                    raise
                self._fill(ticket, enc, ms)
                return result
            if rc == MISS_WAIT:
                now = time.monotonic()
                if now >= deadline:
                    if self._wait_policy == "fail":
                        raise Timeout(lib.STRATA_ETIMEOUT, "ETIMEOUT",
                                      f"waited {self._lock_wait * 1000:.0f} ms for another loader of this key")
                    # Load without the lease and do not store it.
                    return self._call_loader(loader, key)[0]
                time.sleep(max(0.001, min(backoff, wait, deadline - now)))
                backoff = min(backoff * 2, 0.05)
                continue
            if rc in _FAIL_OPEN:
                # The backend failed: the source of truth still answers.
                self._count("fail_open")
                return self._call_loader(loader, key)[0]
            _raise(rc)

    def get_many_or_load(self, keys: Iterable[Key], loader: Callable[[List[Key]], Mapping[Key, Any]],
                         ttl: Optional[float] = None) -> Dict[Key, Any]:
        """A dict of the found values; ``loader`` gets the list of missing keys
        (one call) and returns a dict; keys it leaves out, or maps to
        NOT_FOUND, are cached as "not found" and left out of the result."""
        if not callable(loader):
            raise TypeError(f"loader must be callable, not {type(loader).__name__}")
        if isinstance(keys, (str, bytes)):
            raise TypeError("keys must be an iterable of keys, not a single key")
        keys = list(keys)
        ms = _ms(ttl, "ttl")
        h = self._enter()  # noqa: F841 (held until the end: the leases' tickets point into the handle)
        return self._get_many_or_load(keys, loader, ms)

    def _get_many_or_load(self, keys: List[Key], loader: Callable[[List[Key]], Mapping[Key, Any]],
                          ms: int) -> Dict[Key, Any]:
        found = self.get_many(keys)
        missing: List[Key] = []
        seen = set()
        for k in keys:
            kb = _key_bytes(k)
            if k in found or kb in seen:
                continue
            seen.add(kb)
            missing.append(k)
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
                    if ticket is not None:
                        tickets[kb] = ticket
                    to_load.append(k)
            if to_load:
                self._count("loads")  # one batch, one load (as the C side counts)
                try:
                    loaded = loader(list(to_load))
                    if not isinstance(loaded, Mapping):
                        raise TypeError(f"loader must return a dict, not {type(loaded).__name__}")
                    encoded = []
                    for k in to_load:
                        r = loaded.get(k, NOT_FOUND)
                        encoded.append((k, r, self._encode_loaded(r)))
                except BaseException:
                    self._count("load_errors")
                    raise
                for k, r, enc in encoded:
                    t = tickets.pop(_key_bytes(k), None)
                    if t is not None:
                        self._fill(t, enc, ms)
                    if r is not NOT_FOUND:
                        found[k] = r
        finally:
            for t in tickets.values():
                self._abandon(t)
        return found

    # -- decorator --------------------------------------------------------------

    def cached(self, ttl: Optional[float] = None, key: Union[None, str, Callable[..., Key]] = None
               ) -> Callable[[F], F]:
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
        A function result of None is cached as "not found" and returned as None.
        """
        if ttl is not None:
            _ms(ttl, "ttl")
        if key is not None and not isinstance(key, str) and not callable(key):
            raise TypeError(f"key must be None, a str template or a callable, not {type(key).__name__}")

        def decorate(fn: F) -> F:
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

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                def load(_k: Key) -> Any:
                    r = fn(*args, **kwargs)
                    return NOT_FOUND if r is None else r

                return self.get_or_load(make_key(args, kwargs), load, ttl=ttl)

            wrapper.cache_key = lambda *a, **kw: make_key(a, kw)  # type: ignore[attr-defined]
            return wrapper  # type: ignore[return-value]

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
