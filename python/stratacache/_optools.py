"""The operator tools of the C ABI as plain Python data (used by the
``stratacache`` command, stratacache/cli.py): inspect, keys, server info,
write-behind status and dead letters. Each function takes a Cache."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ._cache import Cache, _key_bytes, _raise
from ._native import ffi, lib

_INSPECT_VERSION = 1  # STRATA_INSPECT_VERSION
_SERVER_INFO_VERSION = 1  # STRATA_SERVER_INFO_VERSION
_WB_STATUS_VERSION = 1  # STRATA_WB_STATUS_VERSION

MISS, ENTRY, FOREIGN = lib.STRATA_INSPECT_MISS, lib.STRATA_INSPECT_ENTRY, lib.STRATA_INSPECT_FOREIGN


@dataclass
class TagStamp:
    name: bytes
    stamped: int
    current: int

    @property
    def stale(self) -> bool:
        return self.stamped != self.current


@dataclass
class Inspection:
    kind: int                     # MISS, ENTRY or FOREIGN
    now_ms: int
    value: bytes = b""            # payload (ENTRY) or the raw bytes (FOREIGN)
    stored_len: int = 0
    negative: bool = False
    created_ms: int = 0
    fresh_until_ms: int = 0
    stale_until_ms: int = 0
    cost_ms: int = 0
    tags: List[TagStamp] = field(default_factory=list)
    stale_by_tag: bool = False
    backend_ttl_ms: int = -2      # -1: no expiry, -2: unknown
    lease_holder: Optional[str] = None
    lease_ttl_ms: int = -2
    cleared: bool = False         # strata_clear ran on the namespace since the write


def inspect(cache: Cache, key: Any) -> Inspection:
    kb = _key_bytes(key)
    h = cache._enter()
    out = ffi.new("strata_inspection *")
    out.version = _INSPECT_VERSION
    rc = lib.strata_inspect(h, kb, len(kb), out)
    try:
        if rc < 0:
            _raise(rc)
        r = Inspection(kind=out.kind, now_ms=out.now_ms, stored_len=out.stored_len,
                       backend_ttl_ms=out.backend_ttl_ms)
        if out.value.len:
            r.value = bytes(ffi.buffer(out.value.data, out.value.len))
        if out.lease:
            r.lease_holder = ffi.string(out.lease_holder).decode("ascii", "replace")
            r.lease_ttl_ms = out.lease_ttl_ms
        if out.kind == ENTRY:
            r.negative = bool(out.negative)
            r.created_ms, r.fresh_until_ms, r.stale_until_ms = out.created_ms, out.fresh_until_ms, out.stale_until_ms
            r.cost_ms = out.cost_ms
            r.stale_by_tag = bool(out.stale_by_tag)
            r.cleared = bool(out.cleared)
            r.tags = [TagStamp(bytes(ffi.buffer(t.name, t.namelen)), t.stamped, t.current)
                      for t in out.tags[0:out.ntags]]
        return r
    finally:
        lib.strata_value_dispose(ffi.addressof(out, "value"))


@dataclass
class KeyInfo:
    key: bytes
    size: int    # bytes stored; -2 unknown
    ttl_ms: int  # -1 no expiry, -2 gone or unknown


def scan_page(cache: Cache, cursor: str = "0", match: Optional[str] = None,
              count: int = 100) -> Tuple[str, List[KeyInfo]]:
    """One SCAN page: (next cursor, "0" when done; keys)."""
    h = cache._enter()
    page = ffi.new("strata_key_page **")
    m = match.encode("utf-8") if match is not None else ffi.NULL
    rc = lib.strata_keys_scan(h, cursor.encode("ascii"), m, count, page)
    if rc < 0:
        _raise(rc)
    p = page[0]
    try:
        k, kl = ffi.new("const char **"), ffi.new("size_t *")
        size, ttl = ffi.new("int64_t *"), ffi.new("int64_t *")
        items = []
        for i in range(lib.strata_key_page_count(p)):
            lib.strata_key_page_item(p, i, k, kl, size, ttl)
            items.append(KeyInfo(bytes(ffi.buffer(k[0], kl[0])), size[0], ttl[0]))
        return ffi.string(lib.strata_key_page_cursor(p)).decode("ascii"), items
    finally:
        lib.strata_key_page_free(p)


def scan(cache: Cache, match: Optional[str] = None, limit: int = 1000, count: int = 100,
         max_pages: int = 10000) -> Tuple[List[KeyInfo], bool]:
    """Up to limit keys, at most max_pages SCAN round trips; (keys, complete)."""
    out: List[KeyInfo] = []
    cursor = "0"
    for _ in range(max_pages):
        cursor, items = scan_page(cache, cursor, match, count)
        out.extend(items)
        if len(out) >= limit:
            return out[:limit], cursor == "0" and len(out) == limit
        if cursor == "0":
            return out, True
    return out, False


def _read_struct(cache: Cache, ctype: str, version: int, fn: Any) -> Any:
    """A versioned out-struct filled by fn(handle, out)."""
    h = cache._enter()
    out = ffi.new(ctype)
    out.version = version
    rc = fn(h, out)
    if rc < 0:
        _raise(rc)
    return out


def server_info(cache: Cache) -> Dict[str, Any]:
    out = _read_struct(cache, "strata_server_info *", _SERVER_INFO_VERSION, lib.strata_server_info_get)

    def s(name: str) -> str:
        return ffi.string(getattr(out, name)).decode("utf-8", "replace")

    return {
        "backend": s("backend"),
        "server_version": s("server_version"),
        "rtt_us": out.rtt_us,
        "clock_skew_ms": out.clock_skew_ms if out.clock_known else None,
        "maxmemory": out.maxmemory,
        "eviction_policy": s("eviction_policy"),
        "cluster": out.cluster,
        "cluster_state": s("cluster_state"),
        "pubsub": out.pubsub,
        "tracking": out.tracking,
        "item_size_max": out.item_size_max,
        "problem": s("problem"),
    }


def wb_status(cache: Cache) -> Dict[str, Any]:
    out = _read_struct(cache, "strata_wb_status *", _WB_STATUS_VERSION, lib.strata_wb_status_get)
    return {
        "backlog": out.backlog,
        "pending": out.pending,
        "oldest_ms": out.oldest_ms or None,
        "dead": out.dead,
        "consumers": [
            {"name": ffi.string(c.name).decode("utf-8", "replace"), "pending": c.pending, "idle_ms": c.idle_ms}
            for c in out.consumers[0:out.nconsumers]
        ],
    }


@dataclass
class DeadLetter:
    id: str
    key: bytes
    value: bytes
    error: str
    given_up_ms: int
    attempts: int


def dead_letters(cache: Cache, limit: int = 0) -> List[DeadLetter]:
    h = cache._enter()
    lst = ffi.new("strata_dead_list **")
    rc = lib.strata_wb_dead_list(h, limit, lst)
    if rc < 0:
        _raise(rc)
    try:
        d = ffi.new("strata_dead_letter *")
        out = []
        for i in range(lib.strata_dead_list_count(lst[0])):
            lib.strata_dead_list_item(lst[0], i, d)
            out.append(DeadLetter(ffi.string(d.id).decode("ascii", "replace"), bytes(ffi.buffer(d.key, d.keylen)),
                                  bytes(ffi.buffer(d.val, d.vallen)),
                                  bytes(ffi.buffer(d.error, d.errorlen)).decode("utf-8", "replace"),
                                  d.given_up_ms, d.attempts))
        return out
    finally:
        lib.strata_dead_list_free(lst[0])


def _dead_take(fn: Any, cache: Cache, key: Optional[Any]) -> int:
    h = cache._enter()
    n = ffi.new("size_t *")
    if key is None:
        rc = fn(h, ffi.NULL, 0, n)
    else:
        kb = _key_bytes(key)
        rc = fn(h, kb, len(kb), n)
    if rc < 0:
        _raise(rc)
    return int(n[0])


def dead_replay(cache: Cache, key: Optional[Any] = None) -> int:
    """Dead letters of key (None = all) back into the journal; how many."""
    return _dead_take(lib.strata_wb_dead_replay, cache, key)


def dead_purge(cache: Cache, key: Optional[Any] = None) -> int:
    return _dead_take(lib.strata_wb_dead_purge, cache, key)

