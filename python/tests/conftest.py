import os
import uuid
from typing import Callable, Iterator, List

import pytest

import stratacache

ENV = {"redis": "STRATA_TEST_REDIS_URL", "memcached": "STRATA_TEST_MEMCACHED_URL"}


def backend_url(name: str) -> str:
    if name == "memory":
        return "memory://pytest"
    url = os.environ.get(ENV[name])
    if not url:
        pytest.skip(f"{ENV[name]} is not set (scripts/test-servers.sh start DIR sets it)")
    return url


@pytest.fixture(params=["memory", "redis", "memcached"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def url(backend) -> str:
    return backend_url(backend)


@pytest.fixture
def ns() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def make(url, ns) -> Iterator[Callable[..., stratacache.Cache]]:
    made: List[stratacache.Cache] = []

    def factory(**kw) -> stratacache.Cache:
        kw.setdefault("namespace", ns)
        kw.setdefault("timeout_ms", 1000)
        c = stratacache.Cache(url, **kw)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


@pytest.fixture
def cache(make) -> stratacache.Cache:
    return make()


def unique(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"
