"""Metrics read from the C handle: stats, latency histograms, Prometheus text, hot keys."""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, NamedTuple, NoReturn, Tuple

from ._native import ffi, lib

# Macros in the header (not in the cdef); python/tests/test_metrics.py checks them.
STATS_VERSION = 3  # STRATA_STATS_VERSION
HISTOGRAM_BUCKETS = 27  # STRATA_HISTOGRAM_BUCKETS
HOT_KEY_MAX = 256  # STRATA_HOT_KEY_MAX
HOT_TOP_MAX = 1024  # the largest hot_top option the core accepts
HOT_SHARDS = 16  # the sketch's shards, each ranking hot_top keys

HISTOGRAM_KINDS: Dict[str, int] = {
    "get": lib.STRATA_HISTOGRAM_GET,
    "load": lib.STRATA_HISTOGRAM_LOAD,
    "backend": lib.STRATA_HISTOGRAM_BACKEND,
}

# Bucket i holds calls of at most 2**i microseconds; the last one the rest.
BUCKET_BOUNDS: Tuple[float, ...] = tuple(
    [(1 << i) * 1e-6 for i in range(HISTOGRAM_BUCKETS - 1)] + [math.inf]
)

Raise = Callable[[int], NoReturn]


class Histogram(NamedTuple):
    """Latency of one kind of call since the cache was created.

    ``buckets`` holds (upper bound in seconds, calls) pairs, not cumulative,
    on a log scale (1 us, 2 us, 4 us ... 33.5 s, then inf)."""

    count: int  # type: ignore[assignment]  # (shadows tuple.count, on purpose)
    sum_s: float
    buckets: Tuple[Tuple[float, int], ...]

    def quantile(self, q: float) -> float:
        """The upper bound (seconds) of the bucket holding the q-quantile;
        nan when nothing was recorded."""
        if isinstance(q, bool) or not isinstance(q, (int, float)):
            raise TypeError(f"q must be a number, not {type(q).__name__}")
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be between 0 and 1, got {q!r}")
        if self.count == 0:
            return math.nan
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for bound, n in self.buckets:
            seen += n
            if seen >= rank:
                return bound
        return math.inf

    @property
    def mean_s(self) -> float:
        """Mean seconds per call; nan when nothing was recorded."""
        return self.sum_s / self.count if self.count else math.nan


class HotKey(NamedTuple):
    """One of the hottest keys: ``key`` (its first 256 bytes when longer),
    estimated reads in the recent window, and estimated reads per second."""

    key: bytes
    count: int  # type: ignore[assignment]  # (shadows tuple.count, on purpose)
    rate_per_s: float


STATS_FIELDS: Tuple[str, ...] = tuple(
    name for name, _ in ffi.typeof("strata_stats").fields if name != "version"
)


def read_stats(h: Any, fail: Raise) -> Dict[str, int]:
    st = ffi.new("strata_stats *")
    rc = lib.strata_stats_get(h, st, STATS_VERSION)
    if rc < 0:
        fail(rc)
    return {name: int(getattr(st, name)) for name in STATS_FIELDS}


def histogram_kind(kind: Any) -> int:
    if not isinstance(kind, str):
        raise TypeError(f"kind must be str ('get', 'load' or 'backend'), not {type(kind).__name__}")
    try:
        return HISTOGRAM_KINDS[kind]
    except KeyError:
        raise ValueError(f"kind must be 'get', 'load' or 'backend', got {kind!r}") from None


def read_histogram(h: Any, kind: int, fail: Raise) -> Histogram:
    out = ffi.new("strata_histogram *")
    rc = lib.strata_stats_histogram(h, kind, out)
    if rc < 0:
        fail(rc)
    buckets = tuple((BUCKET_BOUNDS[i], int(out.buckets[i])) for i in range(HISTOGRAM_BUCKETS))
    return Histogram(int(out.count), int(out.sum_ns) / 1e9, buckets)


class PrometheusBuffer:
    """Remembers the last text's size so the next call usually needs one C call."""

    def __init__(self) -> None:
        self.cap = 16384

    def read(self, h: Any, fail: Raise) -> str:
        needed = ffi.new("size_t *")
        for _ in range(8):  # the text grows between calls only as new labels appear
            cap = self.cap
            buf = ffi.new("char[]", cap)
            rc = lib.strata_stats_prometheus(h, buf, cap, needed)
            if rc == 0:
                return str(ffi.string(buf).decode("utf-8", "replace"))
            if rc != lib.STRATA_ETOOBIG:
                fail(rc)
            self.cap = max(int(needed[0]) + 1024, cap * 2)
        fail(lib.STRATA_ETOOBIG)


def add_to_samples(text: str, extra: Dict[str, int]) -> str:
    """The exposition text with ``extra[metric]`` added to each sample of
    those metrics (the counts Python keeps next to the C ones)."""
    out = []
    for line in text.splitlines(keepends=True):
        name = line.partition("{")[0]
        if name in extra and not line.startswith("#"):
            head, _, value = line.rstrip("\n").rpartition(" ")
            line = f"{head} {int(value) + extra[name]}\n"
        out.append(line)
    return "".join(out)


def hot_count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return min(n, HOT_TOP_MAX * HOT_SHARDS)


def read_hot_keys(h: Any, n: int, fail: Raise) -> List[HotKey]:
    out = ffi.new("strata_hot_key[]", max(n, 1))
    count = ffi.new("size_t *")
    rc = lib.strata_hot_keys(h, n, out, count)
    if rc < 0:
        fail(rc)
    return [
        HotKey(ffi.unpack(out[i].key, out[i].keylen), int(out[i].count), float(out[i].rate_per_s))
        for i in range(int(count[0]))
    ]
