"""The cache's counters and histograms on a service's existing Prometheus
``/metrics`` (needs the optional prometheus_client: ``pip install
stratacache[prometheus]``).

    from prometheus_client import REGISTRY
    from stratacache.metrics import Collector
    REGISTRY.register(Collector(users_cache, sessions_cache))

Every series is what ``Cache.prometheus()`` exposes (docs/METRICS.md), read
fresh at each scrape; several caches go into one collector (one family per
metric, a ``namespace`` label per cache), since a registry refuses two
collectors that export the same names.
"""
from __future__ import annotations

from typing import Dict, Iterator, List

try:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("stratacache.metrics needs prometheus_client "
                      "(pip install 'stratacache[prometheus]')") from e

from ._cache import Cache

__all__ = ["Collector"]


class Collector:
    """A prometheus_client collector over one or more caches."""

    def __init__(self, *caches: Cache) -> None:
        if not caches:
            raise ValueError("Collector needs at least one Cache")
        for c in caches:
            if not isinstance(c, Cache):
                raise TypeError(f"Collector takes Cache objects, not {type(c).__name__}")
        self._caches = caches

    def collect(self) -> Iterator[Metric]:
        families: Dict[str, Metric] = {}
        order: List[str] = []
        for cache in self._caches:
            if cache.closed:
                continue
            for fam in text_string_to_metric_families(cache.prometheus()):
                have = families.get(fam.name)
                if have is None:
                    families[fam.name] = fam
                    order.append(fam.name)
                else:
                    have.samples.extend(fam.samples)
        for name in order:
            yield families[name]
