"""stratacache.metrics.Collector scraped through prometheus_client's own
registry, exposition and text parser; and the sample Grafana dashboard
queries only series the library exports."""
import json
import re
from pathlib import Path

import pytest

import stratacache

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from stratacache.metrics import Collector  # noqa: E402

from conftest import unique  # noqa: E402

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def scrape(registry):
    """{(sample name, labels frozenset): value} from the registry's text."""
    text = generate_latest(registry).decode("utf-8")
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_collector_exports_the_caches_counters_and_histograms(make, ns):
    c = make(l1=True)
    other = make(namespace=ns + "b")
    k = unique()
    assert c.get(k) is None
    c.get_or_load(k, lambda key: b"v")
    assert c.get(k) == b"v"  # an L1 hit
    other.set("x", b"1")
    registry = CollectorRegistry()
    registry.register(Collector(c, other))
    got = scrape(registry)
    st = c.stats()

    def val(name, **labels):
        return got[(name, frozenset(dict(namespace=ns, **labels).items()))]

    assert val("stratacache_hits_total", tier="l1") == st["l1_hits"] >= 1
    assert val("stratacache_misses_total", tier="backend") == st["misses"] >= 1
    assert val("stratacache_loads_total") == st["loads"] == 1
    h = c.histogram("load")
    assert val("stratacache_load_seconds_count") == h.count == 1
    assert val("stratacache_load_seconds_bucket", le="+Inf") == 1
    assert got[("stratacache_sets_total", frozenset({"namespace": ns + "b"}.items()))] == 1
    # read fresh at each scrape
    c.set(unique(), b"w")
    assert scrape(registry)[("stratacache_sets_total", frozenset({"namespace": ns}.items()))] == st["sets"] + 1


def test_collector_rejects_what_is_not_a_cache():
    with pytest.raises(ValueError):
        Collector()
    with pytest.raises(TypeError):
        Collector("redis://x")


def _exported_names() -> set:
    with stratacache.Cache("memory://", namespace="dash") as c:
        text = c.prometheus()
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_dashboard_queries_only_exported_series():
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    used = {m for e in exprs for m in re.findall(r"\bstratacache_[a-z0-9_]+", e)}
    exported = _exported_names()
    assert len(exprs) >= 20 and len(used) >= 25
    assert used <= exported, f"queried but not exported: {sorted(used - exported)}"
