"""The Python binding through a redis+cluster:// URL (docs/CLUSTER.md): the
same calls as on one node, with keys spread over every master."""
import os
import uuid

import pytest

import stratacache

URL = os.environ.get("STRATA_TEST_REDIS_CLUSTER_URL")
pytestmark = pytest.mark.skipif(not URL, reason="STRATA_TEST_REDIS_CLUSTER_URL is not set "
                                "(scripts/test-servers.sh start DIR sets it)")


@pytest.fixture
def cache():
    c = stratacache.Cache(URL, namespace="py" + uuid.uuid4().hex[:10], timeout_ms=1000)
    yield c
    c.close()


def test_set_get_delete_across_slots(cache):
    keys = [f"k-{i}" for i in range(60)]
    for i, k in enumerate(keys):
        cache.set(k, b"%d" % i)
    assert [cache.get(k) for k in keys] == [b"%d" % i for i in range(60)]
    got = cache.get_many(keys + ["missing"])
    assert got == {k: b"%d" % i for i, k in enumerate(keys)}
    assert cache.delete_many(keys[:10]) == 10
    assert cache.get(keys[0]) is None and cache.get(keys[10]) == b"10"
    cache.set_many({k: b"again" for k in keys[:20]})
    assert cache.get_many(keys[:20]) == {k: b"again" for k in keys[:20]}


def test_get_or_load_and_tags(cache):
    calls = []

    def load(k):
        calls.append(k)
        return b"loaded:" + k.encode()

    assert cache.get_or_load("gol", load) == b"loaded:gol"
    assert cache.get_or_load("gol", load) == b"loaded:gol"
    assert calls == ["gol"]
    cache.set("tagged", b"1", tags=["org:1"])
    cache.invalidate_tag("org:1")
    assert cache.get("tagged") is None


def test_user_hash_tags_and_refusals(cache):
    cache.set("{user:42}:profile", b"p")
    cache.set("{user:42}:tags", b"t")
    assert cache.get_many(["{user:42}:profile", "{user:42}:tags"]) == {"{user:42}:profile": b"p",
                                                                       "{user:42}:tags": b"t"}
    with pytest.raises(stratacache.InvalidArgument, match="has a '}' but no hash tag"):
        cache.set("a}b", b"1")
    with pytest.raises(stratacache.InvalidArgument, match="write-behind is not supported yet"):
        cache.write_behind("wb", b"1")


def test_bad_cluster_url():
    with pytest.raises(stratacache.InvalidArgument, match="only database 0"):
        stratacache.Cache(URL + "/3")
