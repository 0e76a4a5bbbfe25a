"""stats() (version 2), histogram(), prometheus(), hot_keys() and the hot-key,
admission, coherence and tag options, on every backend."""
import asyncio
import math
import re
from pathlib import Path

import pytest

import stratacache
from stratacache import _metrics
from stratacache._native import ffi

from conftest import unique

HEADER = Path(__file__).resolve().parents[2] / "core" / "include" / "stratacache.h"

V2_FIELDS = {"breaker_state", "tag_invalidations", "tag_stale", "tag_fetches", "invalidations_received",
             "l1_flushes", "l1_admission_rejects", "l1_link_up"}

# stats() field -> (metric, extra labels) in the exposition text.
EXPORTED = {
    "l1_hits": ("stratacache_hits_total", {"tier": "l1"}),
    "hits": ("stratacache_hits_total", {"tier": "backend"}),
    "l1_misses": ("stratacache_misses_total", {"tier": "l1"}),
    "misses": ("stratacache_misses_total", {"tier": "backend"}),
    "negative_hits": ("stratacache_negative_hits_total", {}),
    "stale_hits": ("stratacache_stale_served_total", {}),
    "sets": ("stratacache_sets_total", {}),
    "deletes": ("stratacache_deletes_total", {}),
    "loads": ("stratacache_loads_total", {}),
    "load_errors": ("stratacache_load_errors_total", {}),
    "backend_errors": ("stratacache_backend_errors_total", {}),
    "timeouts": ("stratacache_timeouts_total", {}),
    "leases_won": ("stratacache_leases_won_total", {}),
    "leases_lost": ("stratacache_leases_lost_total", {}),
    "waits": ("stratacache_lease_waits_total", {}),
    "early_refreshes": ("stratacache_early_refreshes_total", {}),
    "singleflight_shared": ("stratacache_singleflight_shared_total", {}),
    "breaker_opens": ("stratacache_breaker_opens_total", {}),
    "breaker_state": ("stratacache_breaker_state", {}),
    "fail_open": ("stratacache_fail_open_total", {}),
    "l1_entries": ("stratacache_l1_entries", {"tier": "l1"}),
    "l1_bytes": ("stratacache_l1_bytes", {"tier": "l1"}),
    "l1_evictions": ("stratacache_l1_evictions_total", {"tier": "l1"}),
    "tag_invalidations": ("stratacache_tag_invalidations_total", {}),
    "tag_stale": ("stratacache_tag_stale_total", {}),
    "tag_fetches": ("stratacache_tag_fetches_total", {}),
    "invalidations_received": ("stratacache_invalidations_received_total", {"tier": "l1"}),
    "l1_flushes": ("stratacache_l1_flushes_total", {"tier": "l1"}),
    "l1_admission_rejects": ("stratacache_l1_admission_rejects_total", {"tier": "l1"}),
    "l1_link_up": ("stratacache_l1_link_up", {"tier": "l1"}),
    "l1_renewals": ("stratacache_l1_renewals_total", {"tier": "l1"}),
    "l1_renew_batches": ("stratacache_l1_renew_batches_total", {"tier": "l1"}),
    "wb_journal_skipped": ("stratacache_write_behind_journal_skipped_total", {}),
    "wb_dead_trimmed": ("stratacache_write_behind_dead_trimmed_total", {}),
}

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*,?)?\}})? (\S+)(?: -?\d+)?$")
HELP = re.compile(rf"^# HELP ({NAME}) .*$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")


def parse_exposition(text):
    """{(metric, frozenset(labels)): value}; asserts every line is valid."""
    assert text.endswith("\n")
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("#"):
            m = HELP.match(line) or TYPE.match(line)
            assert m, f"bad comment line: {line!r}"
            if line.startswith("# TYPE"):
                assert m.group(1) not in types, f"two TYPE lines for {m.group(1)}"
                types[m.group(1)] = m.group(2)
            continue
        m = SAMPLE.match(line)
        assert m, f"bad sample line: {line!r}"
        name, labels, value = m.groups()
        float(value)  # a valid float ("+Inf", "NaN" included)
        pairs = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels or ""))
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"sample before its TYPE line: {line!r}"
        key = (name, pairs)
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = value
    return samples, types


def workload(c):
    for i in range(5):
        k = unique()
        c.set(k, b"v")
        c.get(k)
        c.get(unique())
    c.get_or_load(unique(), lambda _: b"v")
    c.get_or_load(unique(), lambda _: stratacache.NOT_FOUND)
    c.delete(unique())
    t = unique("t")
    k = unique()
    c.set(k, b"v", tags=[t])
    c.invalidate_tag(t)
    c.get(k)


def test_stats_has_every_field(cache):
    st = cache.stats()
    fields = {n for n, _ in ffi.typeof("strata_stats").fields} - {"version"}
    assert set(st) == fields and V2_FIELDS <= fields
    assert all(isinstance(v, int) and v >= 0 for v in st.values())
    assert st["breaker_state"] == 0
    workload(cache)
    st = cache.stats()
    assert st["sets"] >= 6 and st["tag_invalidations"] == 1 and st["tag_stale"] >= 1 and st["loads"] == 2


def test_prometheus_parses_and_matches_stats(make, ns):
    c = make(l1=True)
    workload(c)
    text = c.prometheus()
    st = c.stats()  # after: nothing runs between on this handle
    samples, types = parse_exposition(text)
    for field, (metric, labels) in EXPORTED.items():
        want = frozenset({("namespace", ns), *labels.items()})
        assert int(samples[(metric, want)]) == st[field], field
        assert types[metric] == ("counter" if metric.endswith("_total") else "gauge")
    for kind in ("get", "load", "backend"):
        h = c.histogram(kind)
        base = f"stratacache_{kind}_seconds"
        assert types[base] == "histogram"
        assert int(samples[(base + "_count", frozenset({("namespace", ns)}))]) == h.count
        inf = samples[(base + "_bucket", frozenset({("namespace", ns), ("le", "+Inf")}))]
        assert int(inf) == h.count
        assert float(samples[(base + "_sum", frozenset({("namespace", ns)}))]) == pytest.approx(h.sum_s, abs=1e-6)
        cum = [int(v) for (n, lab), v in samples.items() if n == base + "_bucket"]
        assert len(cum) == _metrics.HISTOGRAM_BUCKETS
    assert st["loads"] == c.histogram("load").count == 2
    assert c.histogram("get").count >= 6  # get() calls past L1 (L1 hits are not timed)


def test_prometheus_buffer_grows():
    with stratacache.Cache("memory://prom") as c:
        c._prom.cap = 16  # far too small: sized from `needed` and retried
        text = c.prometheus()
        assert c._prom.cap > 16 and text.startswith("# HELP stratacache_")
        parse_exposition(text)
        assert c.prometheus() == text


def test_histogram(cache):
    h0 = cache.histogram()
    k = unique()
    cache.set(k, b"v")
    for _ in range(10):
        cache.get(k)
    h = cache.histogram("get")
    assert h.count - h0.count == 10 and h.sum_s > h0.sum_s
    assert len(h.buckets) == 27 and h.buckets[0][0] == 1e-6 and math.isinf(h.buckets[-1][0])
    assert sum(n for _, n in h.buckets) == h.count
    assert 0 < h.quantile(0.5) <= h.quantile(0.99) and h.mean_s > 0
    assert cache.histogram("backend").count > 0
    empty = stratacache.Histogram(0, 0.0, h.buckets)
    assert math.isnan(empty.quantile(0.5)) and math.isnan(empty.mean_s)
    with pytest.raises(ValueError, match="kind must be 'get', 'load' or 'backend'"):
        cache.histogram("gets")
    with pytest.raises(TypeError, match="kind must be str"):
        cache.histogram(1)
    with pytest.raises(ValueError, match="q must be between 0 and 1"):
        h.quantile(1.5)
    with pytest.raises(TypeError, match="q must be a number"):
        h.quantile("0.5")


def test_hot_keys_rank_a_skewed_workload(make):
    c = make(hot_top=8, hot_sketch_width=1024)
    keys = {unique("hot"): 300, unique("warm"): 120, unique("mild"): 50}
    cold = [unique("cold") for _ in range(60)]
    for k in list(keys) + cold:
        c.set(k, b"v")
    for k in cold:
        c.get(k)
    for i in range(300):
        for k, n in keys.items():
            if i < n:
                c.get(k)
    hot = c.hot_keys(3)
    assert [h.key for h in hot] == [k.encode() for k in keys]
    assert all(isinstance(h, stratacache.HotKey) for h in hot)
    assert hot[0].count >= hot[1].count >= hot[2].count
    assert hot[0].count >= 250 and hot[0].rate_per_s > 0
    key, count, rate = hot[0]  # unpacks as a plain triple
    assert len(c.hot_keys()) == 10 and c.hot_keys(0) == []
    ranked = c.hot_keys(10**9)
    assert len(ranked) <= len(keys) + len(cold) and len({h.key for h in ranked}) == len(ranked)
    with pytest.raises(TypeError, match="n must be an int"):
        c.hot_keys("3")
    with pytest.raises(ValueError, match="n must be >= 0"):
        c.hot_keys(-1)


def test_hot_keys_report_long_keys_by_their_first_256_bytes(make):
    c = make()
    long_key = ("L" * 300 + unique()).encode()
    c.set(long_key, b"v")
    for _ in range(50):
        c.get(long_key)
    top = c.hot_keys(1)[0]
    assert top.key == long_key[:_metrics.HOT_KEY_MAX] and top.count >= 40


def test_hot_keys_off(make):
    c = make(hot_sketch_width=0)
    with pytest.raises(stratacache.NotSupported, match="hot_sketch_width"):
        c.hot_keys()


def test_l1_admission_hot(make):
    c = make(l1=True, l1_admission="hot", hot_threshold=3)
    k = unique()
    c.set(k, b"v")
    for _ in range(8):
        assert c.get(k) == b"v"
    st = c.stats()
    assert st["l1_admission_rejects"] >= 1 and st["l1_hits"] >= 1
    none = make(l1=True, l1_admission="none")
    none.set(k, b"v")
    for _ in range(3):
        none.get(k)
    assert none.stats()["l1_hits"] == 0


def test_option_misuse_names_the_option(url, ns):
    with pytest.raises(ValueError, match="l1_admission"):
        stratacache.Cache(url, namespace=ns, l1=True, l1_admission="sometimes")
    with pytest.raises(ValueError, match="hot_threshold"):
        stratacache.Cache(url, namespace=ns, hot_threshold=0)
    with pytest.raises(ValueError, match="hot_sketch_width"):
        stratacache.Cache(url, namespace=ns, hot_sketch_width=7)
    with pytest.raises(ValueError, match="tag_cache_ms"):
        stratacache.Cache(url, namespace=ns, tag_cache_ms=-1)
    with pytest.raises(ValueError, match="coherence_ping_ms"):
        stratacache.Cache(url, namespace=ns, coherence_ping_ms=0)
    with pytest.raises(TypeError, match="option hot_top"):
        stratacache.Cache(url, namespace=ns, hot_top=[1])
    with pytest.raises(TypeError, match="option l1_bus must be a str"):
        stratacache.Cache(url, namespace=ns, l1_bus=6379)
    if not url.startswith("redis"):
        with pytest.raises(ValueError, match="tracking"):
            stratacache.Cache(url, namespace=ns, tracking=True)


def test_redis_coherence_options(url, ns, backend):
    if backend != "redis":
        pytest.skip("tracking and the invalidation link are Redis features")
    with stratacache.Cache(url, namespace=ns, l1=True, tracking=True, coherence_ping_ms=200) as c:
        import time
        deadline = time.monotonic() + 10
        while c.stats()["l1_link_up"] != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert c.stats()["l1_link_up"] == 1


def test_async_metrics(url, ns):
    async def main():
        async with stratacache.AsyncCache(url, namespace=ns, hot_top=4) as c:
            k = unique()
            await c.set(k, b"v")
            for _ in range(5):
                await c.get(k)
            assert (await c.histogram("get")).count == 5
            parse_exposition(await c.prometheus())
            assert (await c.hot_keys(1))[0].key == k.encode()
            assert set(await c.stats()) >= V2_FIELDS
            with pytest.raises(ValueError, match="kind"):
                await c.histogram("nope")
            with pytest.raises(TypeError, match="n must be an int"):
                await c.hot_keys(None)

    asyncio.run(main())


def test_macros_match_header():
    header = HEADER.read_text()
    for macro, value in (("STRATA_STATS_VERSION", _metrics.STATS_VERSION),
                         ("STRATA_HISTOGRAM_BUCKETS", _metrics.HISTOGRAM_BUCKETS),
                         ("STRATA_HOT_KEY_MAX", _metrics.HOT_KEY_MAX)):
        m = re.search(rf"#define {macro} (\d+)", header)
        assert m and int(m.group(1)) == value, macro
    config = (HEADER.parents[1] / "src" / "config.h").read_text()
    m = re.search(r"#define STRATA__HOT_MAX_TOP (\d+)u?", config)
    assert m and int(m.group(1)) == _metrics.HOT_TOP_MAX
    hotkeys = (HEADER.parents[1] / "src" / "engine" / "hotkeys.c").read_text()
    m = re.search(r"#define HOT_SHARDS (\d+)", hotkeys)
    assert m and int(m.group(1)) == _metrics.HOT_SHARDS


def test_memcached_l1_bus_option(url, ns, backend):
    if backend != "memcached":
        pytest.skip("l1_bus carries invalidations for memcached:// caches")
    import time
    from conftest import backend_url

    bus = backend_url("redis")  # a URL inside the URL's query: build_url percent-encodes it
    with stratacache.Cache(url, namespace=ns, l1=True, l1_bus=bus) as a, \
            stratacache.Cache(url, namespace=ns, l1=True, l1_bus=bus) as b:
        deadline = time.monotonic() + 10
        while min(a.stats()["l1_link_up"], b.stats()["l1_link_up"]) != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        k = unique()
        a.set(k, b"v1")
        assert b.get(k) == b"v1" and b.get(k) == b"v1"  # now in b's L1
        before = b.stats()["invalidations_received"]
        a.set(k, b"v2")
        while b.stats()["invalidations_received"] == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert b.get(k) == b"v2"
