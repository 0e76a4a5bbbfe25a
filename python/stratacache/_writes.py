"""Write-through and write-behind: Python writers called back from C.

Write-behind delivers through the C flusher threads (push), which take the
GIL once per batch to call the registered writer. The pull API
(strata_wb_poll/ack/fail) driven from a Python thread would do the same work
with a Python polling loop added: the C flusher already sleeps until a batch
is due, is woken early by a full batch, and retries with backoff.
bench/bench_python.py measures both (bench/RESULTS.md).
"""
from __future__ import annotations

import inspect
import logging
from typing import Any, Callable, Dict, Optional

from ._native import ffi, lib

log = logging.getLogger("stratacache")

BatchWriter = Callable[[Dict[bytes, Any]], Any]


def _not_awaitable(result: Any, what: str) -> None:
    # A coroutine function's call only creates the coroutine: nothing would be
    # written while C goes on as if it had been.
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()
        raise TypeError(f"{what} returned an awaitable; the cache calls it synchronously "
                        "(use AsyncCache.write_through for a coroutine writer)")


def check_batch_writer(writer: Any) -> None:
    if not callable(writer):
        raise TypeError(f"writer must be callable, not {type(writer).__name__}")
    if inspect.iscoroutinefunction(writer):
        raise TypeError("writer must be a plain function: it runs on a flusher thread, not on an event loop")


def _message(e: BaseException) -> bytes:
    text = f"{type(e).__name__}: {e}"
    return text.encode("utf-8", "replace")[:500]


class WriteCall:
    """One write_through call: the writer, the caller's key and value, and
    the writer's exception (re-raised by the caller once C returns)."""

    __slots__ = ("writer", "key", "value", "error")

    def __init__(self, writer: Callable[[Any, Any], Any], key: Any, value: Any) -> None:
        self.writer, self.key, self.value = writer, key, value
        self.error: Optional[BaseException] = None


class BatchWriterBox:
    """What the C flusher hands back to strata_py_batch_writer: the writer and
    the cache's value decoder. Lives as long as the C handle."""

    __slots__ = ("writer", "loads", "__weakref__")

    def __init__(self, writer: BatchWriter, loads: Callable[[bytes], Any]) -> None:
        self.writer, self.loads = writer, loads


@ffi.def_extern()  # type: ignore[misc]
def strata_py_writer(ud: Any, key: Any, keylen: int, val: Any, vallen: int, w: Any) -> int:
    call: WriteCall = ffi.from_handle(ud)
    try:
        _not_awaitable(call.writer(call.key, call.value), "writer")
    except BaseException as e:  # noqa: B902 (re-raised unchanged by write_through)
        call.error = e
        lib.strata_write_error(w, _message(e))
        return int(lib.STRATA_EUSER)
    return 0


@ffi.def_extern()  # type: ignore[misc]
def strata_py_batch_writer(ud: Any, n: int, keys: Any, keylens: Any, vals: Any, vallens: Any, w: Any) -> int:
    # Runs on a C flusher thread (or inside flush()): nobody to raise to, so a
    # failure is logged and reported to C, which retries the batch later.
    box: BatchWriterBox = ffi.from_handle(ud)
    try:
        loads = box.loads
        batch = {ffi.unpack(keys[i], keylens[i]): loads(ffi.unpack(vals[i], vallens[i])) for i in range(n)}
        _not_awaitable(box.writer(batch), "writer")
    except BaseException as e:  # noqa: B902
        log.warning("write-behind writer failed for a batch of %d keys; it will be retried", n, exc_info=True)
        lib.strata_write_error(w, _message(e))
        return int(lib.STRATA_EUSER)
    return 0
