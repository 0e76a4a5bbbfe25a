"""The frameworks' own suites against stratacache's adapters (scripts/test-frameworks.sh):
dogpile.cache's (shipped in the package, plus the async-creation test from its
sdist) and Django's BaseCacheTests (from its sdist), each on memory, redis and
memcached, in one pytest process."""
import os
import sys
import uuid

import pytest

BACKENDS = ("memory", "redis", "memcached")
ENV = {"redis": "STRATA_TEST_REDIS_URL", "memcached": "STRATA_TEST_MEMCACHED_URL"}


def backend_url(name: str) -> str:
    if name == "memory":
        return "memory://frameworks"
    url = os.environ.get(ENV[name])
    if not url:  # never a silent skip: the suites must run on all three
        raise RuntimeError(f"{ENV[name]} is not set (scripts/test-servers.sh start DIR sets it)")
    return url


def unique_ns(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def pytest_configure(config: pytest.Config) -> None:
    for var in ("DOGPILE_TESTS", "DJANGO_TESTS"):
        path = os.environ.get(var)
        if path and path not in sys.path:
            sys.path.insert(0, path)
