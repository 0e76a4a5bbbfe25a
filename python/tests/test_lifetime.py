"""close() while another thread is inside a call: the call keeps the C handle
until it returns, so its lease's fill still lands; new calls raise Closed."""
import threading

import pytest

import stratacache

from conftest import unique


def test_close_during_a_load(make):
    c = make()
    other = make()  # memory:// stores live while a handle on them does
    k = unique("closing")
    started, release, out = threading.Event(), threading.Event(), []

    def loader(_):
        started.set()
        assert release.wait(10)
        return b"loaded"

    t = threading.Thread(target=lambda: out.append(c.get_or_load(k, loader)))
    t.start()
    assert started.wait(10)
    c.close()  # returns at once: the load in progress holds the handle
    assert c.closed
    with pytest.raises(stratacache.Closed):
        c.get(k)
    with pytest.raises(stratacache.Closed):
        c.get_or_load(k, loader)
    release.set()
    t.join(10)
    assert out == [b"loaded"]
    assert other.get(k) == b"loaded"  # the fill reached the backend


def test_many_threads_and_close(make):
    c = make(l1=True)
    k = unique("race")
    c.set(k, b"v")
    stop, errors = threading.Event(), []

    def reader():
        while not stop.is_set():
            try:
                assert c.get(k) == b"v"
            except stratacache.Closed:
                return
            except BaseException as e:  # noqa: BLE001 (reported below)
                errors.append(e)
                return

    ths = [threading.Thread(target=reader) for _ in range(8)]
    for t in ths:
        t.start()
    c.close()
    stop.set()
    for t in ths:
        t.join(10)
    assert not errors
