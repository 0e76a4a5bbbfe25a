"""4 forked processes on one cold key: the backend lease makes one load."""
import multiprocessing as mp
import sys
import time

import pytest

import stratacache

from conftest import backend_url, unique

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs fork")


def _worker(cache, key, counter, barrier, results, i):
    def loader(k):
        with counter.get_lock():
            counter.value += 1
        time.sleep(0.3)
        return b"loaded-once"

    barrier.wait()
    results[i] = 1 if cache.get_or_load(key, loader) == b"loaded-once" else 0


@pytest.mark.parametrize("backend", ["redis", "memcached"])
def test_four_processes_one_load(backend, ns):
    url = backend_url(backend)
    ctx = mp.get_context("fork")
    with stratacache.Cache(url, namespace=ns) as cache:
        assert cache.get("warm-up") is None  # the parent's connections exist before fork
        key = unique("fork")
        counter = ctx.Value("i", 0)
        results = ctx.Array("i", 4)
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_worker, args=(cache, key, counter, barrier, results, i)) for i in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
        assert counter.value == 1
        assert list(results) == [1, 1, 1, 1]
        assert cache.get(key) == b"loaded-once"  # and the parent still works
