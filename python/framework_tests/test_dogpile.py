"""dogpile.cache 1.5.0's generic backend, serializer and mutex suites
(dogpile.testing) and its async-creation test (tests/cache/test_redis_backend.py
of its sdist, found through DOGPILE_TESTS) on the "stratacache" backend, once
per stratacache backend. The backend is loaded by dogpile's entry point."""
import os

from dogpile.testing.fixtures import _GenericBackendTestSuite, _GenericMutexTestSuite, _GenericSerializerTestSuite

from conftest import BACKENDS, backend_url, unique_ns

os.environ.setdefault("DOGPILE_REDIS_PORT", "0")  # its async test then fails instead of skipping
import test_redis_backend as dogpile_redis_tests  # noqa: E402 (from the sdist, DOGPILE_TESTS)


def _arguments(backend: str, **extra: object) -> dict:
    # "foo" is an unknown argument, as dogpile's own suites pass one: ignored.
    return {"url": backend_url(backend), "namespace": unique_ns("dogpile"), "foo": "barf", **extra}


for _b in BACKENDS:
    _name = _b.capitalize()
    _backend_cls = type(f"Strata{_name}BackendTest", (_GenericBackendTestSuite,),
                        {"backend": "stratacache", "config_args": {"arguments": _arguments(_b)}})
    globals()[_backend_cls.__name__] = _backend_cls
    globals()[f"Strata{_name}SerializerTest"] = type(
        f"Strata{_name}SerializerTest", (_GenericSerializerTestSuite, _backend_cls), {})
    globals()[f"Strata{_name}MutexTest"] = type(
        f"Strata{_name}MutexTest", (_GenericMutexTestSuite,),
        {"backend": "stratacache", "config_args": {"arguments": _arguments(_b, lock_timeout=10)}})
    # The mutex is released in the runner's thread, not the acquirer's.
    globals()[f"Strata{_name}AsyncCreationTest"] = type(
        f"Strata{_name}AsyncCreationTest", (dogpile_redis_tests.RedisAsyncCreationTest,),
        {"backend": "stratacache", "config_args": {"arguments": _arguments(_b)}})
