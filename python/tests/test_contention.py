"""Across processes (redis and memcached; memory:// is one process's store):
8 processes x 250 incr() end at exactly 2,000, and in each of 30 rounds of 16
processes racing add() on a fresh key exactly one wins."""
import multiprocessing as mp

import pytest

import stratacache

from conftest import backend_url, unique

CTX = mp.get_context("fork")


def _count(url: str, ns: str, key: str, n: int, errors) -> None:
    with stratacache.Cache(url, namespace=ns, timeout_ms=2000) as c:
        for _ in range(n):
            try:
                c.incr(key)
            except stratacache.StrataError:
                with errors.get_lock():
                    errors.value += 1


def _race(url: str, ns: str, keys, barrier, wins, errors, me: int) -> None:
    with stratacache.Cache(url, namespace=ns, timeout_ms=2000) as c:
        for r, key in enumerate(keys):
            barrier.wait()
            try:
                if c.add(key, b"%d" % me):
                    with wins.get_lock():
                        wins[r] += 1
            except stratacache.StrataError:
                with errors.get_lock():
                    errors.value += 1


@pytest.mark.parametrize("backend", ["redis", "memcached"])
def test_incr_across_processes_loses_nothing(backend, ns):
    url, key = backend_url(backend), unique("n")
    errors = CTX.Value("i", 0)
    procs = [CTX.Process(target=_count, args=(url, ns, key, 250, errors)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 8
    assert errors.value == 0
    with stratacache.Cache(url, namespace=ns) as c:
        assert c.get(key) == b"2000"


@pytest.mark.parametrize("backend", ["redis", "memcached"])
def test_racing_adds_have_one_winner(backend, ns):
    url, rounds, racers = backend_url(backend), 30, 16
    keys = [unique("add") for _ in range(rounds)]
    barrier, wins, errors = CTX.Barrier(racers), CTX.Array("i", rounds), CTX.Value("i", 0)
    procs = [CTX.Process(target=_race, args=(url, ns, keys, barrier, wins, errors, i)) for i in range(racers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * racers
    assert errors.value == 0
    assert list(wins) == [1] * rounds
