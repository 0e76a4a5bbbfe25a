"""L1 renewal (l1_renew, docs/L1-COHERENCE.md) seen from Python: a hot key's
decoded object outlives many l1_ttl_ms periods, because a renewal that reads
the same bytes keeps the L1 entry (its version) and so the object tier's
object; without renewal each period ends the object and decodes anew."""
import time

import pytest

import stratacache

from conftest import backend_url


@pytest.mark.parametrize("backend", ["redis", "memcached"])
@pytest.mark.parametrize("renew", [True, False])
def test_hot_object_outlives_l1_ttl_only_with_renewal(backend, renew, ns):
    c = stratacache.Cache(backend_url(backend), namespace=ns, l1=True, serializer="json", l1_admission="all",
                          l1_ttl_ms=200, l1_renew=renew, timeout_ms=1000)
    deadline = time.monotonic() + 5
    while backend == "redis" and c.stats()["l1_link_up"] != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    c.set("k", {"v": [1, 2, 3]})
    first = c.get("k")
    objects = [first]  # kept alive, so identity is meaningful
    end = time.monotonic() + 1.0  # 5 x l1_ttl_ms
    while time.monotonic() < end:
        got = c.get("k")
        assert got == {"v": [1, 2, 3]}
        if not any(got is o for o in objects):
            objects.append(got)
        time.sleep(0.001)
    st = c.stats()
    if renew:
        assert st["l1_renewals"] >= 3 and st["l1_renew_batches"] >= 3
        assert len(objects) <= 2  # one; two if a loaded machine let it expire once
    else:
        assert st["l1_renewals"] == 0
        assert len(objects) >= 3  # a new object after each expiry
    c.close()


def test_l1_renew_refuses_a_bad_value(ns):
    with pytest.raises(stratacache.InvalidArgument, match="l1_renew"):
        stratacache.Cache(backend_url("memory"), namespace=ns, l1=True, l1_renew=2)
