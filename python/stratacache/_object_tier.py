"""The object tier: decoded values kept beside the C L1, exactly as coherent.

Each object is stored with the version of the C L1 entry it was decoded
from (``strata_l1_get``), and served only after one C call,
``strata_l1_check``, confirms that entry still serves the key now. The C
side decides as it does for any L1 hit, so whatever ends or replaces the
entry ends the object too: a write here or in another process (the
invalidation link), a tag bump, the TTL, ``delete``/``invalidate``, a
clear, a lost invalidation link. No second set of rules to keep in step.

Objects are shared, not copied: every hit returns the same object, so a
caller that mutates it changes what later hits return, in this process only
(the backend and other processes keep the bytes). Treat values as read-only,
or copy them yourself (``copy.deepcopy``), or pass ``object_tier=False``.
Copying on every hit would cost about as much as decoding again.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

from ._native import ffi, lib

_l1_get = lib.strata_l1_get
_unpack = ffi.unpack
OK = lib.STRATA_OK
NEGATIVE = lib.STRATA_NEGATIVE

#: what read() returns when L1 does not have the key: the caller reads on
MISSED = object()


class ObjectTier:
    """Decoded objects by key bytes: {key: (L1 entry version, object)}.

    Bounded by ``cap`` entries (the L1's own bound): when full, the oldest
    quarter is dropped in one pass, so inserting stays O(1) on average."""

    __slots__ = ("objects", "_cap", "_loads")

    def __init__(self, cap: int, loads: Callable[[bytes], Any]) -> None:
        self.objects: Dict[bytes, Tuple[int, Any]] = {}
        self._cap = max(int(cap), 16)
        self._loads = loads

    def read(self, h: Any, kb: bytes, v: Any, version: Any, default: Any) -> Any:
        """The object for kb from L1 (decoded once, then kept), ``default``
        for a cached "not found", or MISSED when L1 does not have it."""
        rc = _l1_get(h, kb, len(kb), v, version)
        if rc == OK:
            obj = self._loads(_unpack(v.data, v.len))
            if version[0]:
                self._keep(kb, version[0], obj)
            return obj
        if rc == NEGATIVE:
            return default
        return MISSED  # absent, or an error: the caller's own read reports it

    def _keep(self, kb: bytes, version: int, obj: Any) -> None:
        objects = self.objects
        if len(objects) >= self._cap and kb not in objects:
            keep = list(objects.items())[self._cap // 4:]
            objects = self.objects = dict(keep)
        objects[kb] = (version, obj)

    def forget(self, kb: Optional[bytes] = None) -> None:
        """Drops kb's object (every object when kb is None). Never needed for
        correctness (a stale version fails its check); it frees memory."""
        if kb is None:
            self.objects = {}
        else:
            self.objects.pop(kb, None)
