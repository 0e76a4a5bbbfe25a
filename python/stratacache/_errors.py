"""Exceptions: one per family of C error codes. A miss is never an exception."""
from __future__ import annotations

from typing import Dict, Tuple, Type


class StrataError(Exception):
    """An error reported by the C library: ``code`` (negative int), ``name``
    (e.g. ``"ETIMEOUT"``) and ``message`` (strata_error_last() at the time)."""

    code: int
    name: str
    message: str

    def __new__(cls, code: int = 0, name: str = "", message: str = "", *rest: object):
        # OSError subclasses (Timeout) would read (code, name, message) as
        # (errno, strerror, filename); give the base one argument instead.
        return super().__new__(cls, f"{name}: {message}")  # type: ignore[call-arg]

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.code = code
        self.name = name
        self.message = message

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"

    def __reduce__(self) -> Tuple[type, Tuple[int, str, str]]:
        return (type(self), (self.code, self.name, self.message))


class InvalidArgument(StrataError, ValueError):
    """EINVAL, EKEY, EURL, EOPTION, EVERSION: the call was malformed."""


class OutOfMemory(StrataError, MemoryError):
    """ENOMEM."""


class BackendError(StrataError):
    """EBACKEND: the backend failed or refused the command."""


class Timeout(StrataError, TimeoutError):
    """ETIMEOUT: no answer within the deadline (or waited too long for a loader)."""


class TooBig(StrataError):
    """ETOOBIG: the value is larger than the backend accepts."""


class LoaderError(StrataError):
    """EUSER: a loader or writer reported an error (C loaders only; Python
    loaders' exceptions propagate unchanged)."""


class LeaseLost(StrataError):
    """ELEASE: a fill was refused because the lease was lost."""


class BreakerOpen(BackendError):
    """EBREAKER: the circuit breaker is open; the backend is skipped for now."""


class Busy(StrataError):
    """EBUSY: backpressure, a bounded queue is full."""


class NotSupported(StrataError):
    """ENOTSUP: not supported by this backend."""


class Closed(StrataError):
    """ECLOSED, or a call on a closed Cache."""


class StaleCache(BackendError):
    """ESTALE: the source of truth was written, but the cache could be neither
    updated nor invalidated; it may serve the old value until it expires."""


class NotAnInteger(StrataError, ValueError):
    """ENOTNUM: incr/decr found a value that is not a decimal integer, or the
    result would not fit in 64 bits."""


_BY_CODE: Dict[int, Type[StrataError]] = {
    -1: InvalidArgument,
    -2: OutOfMemory,
    -3: BackendError,
    -4: Timeout,
    -5: InvalidArgument,
    -6: TooBig,
    -7: InvalidArgument,
    -8: InvalidArgument,
    -9: InvalidArgument,
    -10: LoaderError,
    -11: LeaseLost,
    -12: BreakerOpen,
    -13: Busy,
    -14: NotSupported,
    -15: Closed,
    -16: StaleCache,
    -17: NotAnInteger,
}


def error_class(code: int) -> Type[StrataError]:
    return _BY_CODE.get(code, StrataError)
