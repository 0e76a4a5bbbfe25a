"""The object tier (_object_tier.py): decoded objects beside the C L1, ended
by everything that ends the L1 entry: a write in another process, a tag
bump, clear(), the TTL; a set here reads back the new object at once."""
import os
import subprocess
import sys
import time

import pytest

import stratacache

from conftest import backend_url, unique


def wait_link(*caches) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(c.stats()["l1_link_up"] == 1 for c in caches):
        time.sleep(0.01)
    assert all(c.stats()["l1_link_up"] == 1 for c in caches)


def wait_for(fn, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(0.005)
    return fn()


def json_cache(url: str, ns: str, **kw) -> stratacache.Cache:
    kw.setdefault("timeout_ms", 1000)
    return stratacache.Cache(url, namespace=ns, l1=True, serializer="json", l1_admission="all", **kw)


def test_hits_share_one_decoded_object(ns):
    c = json_cache(backend_url("memory"), ns)
    c.set("k", {"a": [1, 2, 3]})
    first = c.get("k")
    assert first == {"a": [1, 2, 3]}
    again = c.get("k")
    assert again is first  # decoded once, then kept
    assert c.get_or_load("k", lambda k: pytest.fail("loaded")) is first
    st = c.stats()
    assert st["l1_hits"] == 3 and st["misses"] == 0
    c.close()


def test_off_decodes_every_time(ns):
    c = json_cache(backend_url("memory"), ns, object_tier=False)
    c.set("k", {"a": 1})
    assert c.get("k") == {"a": 1}
    assert c.get("k") is not c.get("k")
    c.close()


def test_set_here_reads_back_the_new_object_at_once(ns):
    c = json_cache(backend_url("memory"), ns)
    c.set("k", {"v": 1})
    assert c.get("k") == {"v": 1} and c.get("k") == {"v": 1}
    c.set("k", {"v": 2})
    assert c.get("k") == {"v": 2}
    c.delete("k")
    assert c.get("k", "gone") == "gone"
    c.close()


def test_ttl_expiry_ends_the_object(ns):
    c = json_cache(backend_url("memory"), ns)
    c.set("k", {"v": 1}, ttl=0.15)
    assert c.get("k") == {"v": 1} and c.get("k") == {"v": 1}
    written = time.monotonic()
    assert wait_for(lambda: c.get("k") is None, 3.0)
    assert time.monotonic() - written >= 0.14  # not before its time either
    c.close()


def test_tag_bump_ends_the_object(ns):
    c = json_cache(backend_url("memory"), ns)
    c.set("k", {"v": 1}, tags=["t"])
    obj = c.get("k")
    assert obj == {"v": 1} and c.get("k") is obj
    c.invalidate_tag("t")
    assert c.get("k") is None
    c.close()


@pytest.mark.skipif(not hasattr(stratacache.Cache, "clear"), reason="Cache.clear() not in this build yet")
def test_clear_ends_the_object(ns):
    c = json_cache(backend_url("memory"), ns)
    c.set("k", {"v": 1})
    assert c.get("k") == {"v": 1} and c.get("k") == {"v": 1}
    c.clear()
    assert c.get("k") is None
    c.close()


WRITER = r"""
import sys, stratacache
url, ns, what = sys.argv[1:4]
c = stratacache.Cache(url, namespace=ns, serializer="json", timeout_ms=1000)
if what == "set":
    c.set("k", {"v": "from-the-other-process"})
else:
    c.invalidate_tag("t")
c.close()
"""


def run_other_process(url: str, ns: str, what: str) -> None:
    env = dict(os.environ)
    subprocess.run([sys.executable, "-c", WRITER, url, ns, what], check=True, env=env, timeout=60)


def test_write_in_another_process_ends_the_object(ns):
    url = backend_url("redis")
    c = json_cache(url, ns)
    wait_link(c)
    c.set("k", {"v": "here"})
    obj = c.get("k")
    assert obj == {"v": "here"} and c.get("k") is obj
    run_other_process(url, ns, "set")
    assert wait_for(lambda: c.get("k") == {"v": "from-the-other-process"})
    c.close()


def test_tag_bump_in_another_process_ends_the_object(ns):
    url = backend_url("redis")
    c = json_cache(url, ns, tag_cache_ms=100)
    wait_link(c)
    c.set("k", {"v": "here"}, tags=["t"])
    obj = c.get("k")
    assert obj == {"v": "here"} and c.get("k") is obj
    run_other_process(url, ns, "bump")
    bumped = time.monotonic()
    assert wait_for(lambda: c.get("k") is None, 3.0)
    assert time.monotonic() - bumped < 2.0  # within tag_cache_ms, with room for a busy machine
    c.close()


def test_bytes_cache_returns_the_kept_bytes(ns):
    c = stratacache.Cache(backend_url("memory"), namespace=ns, l1=True, l1_admission="all")
    c.set("k", b"payload")
    first = c.get("k")
    assert first == b"payload" and c.get("k") is first  # bytes are immutable: sharing is free
    c.set("k", b"new")
    assert c.get("k") == b"new"
    c.close()


def test_bounded_by_l1_max_entries(ns):
    c = json_cache(backend_url("memory"), ns, l1_max_entries=64)
    for i in range(500):
        key = unique()
        c.set(key, i)
        assert c.get(key) == i
    assert len(c._objects.objects) <= 64
    c.close()
