"""Test classes deriving from Django's BaseCacheTests, one per stratacache
backend (imported by run_django.py once Django is configured)."""
import unittest

from django.test import TestCase, override_settings

from cache.tests import BaseCacheTests, caches_setting_for_tests  # Django's, from its sdist

from conftest import backend_url, unique_ns

# As Django does for its memcached backends: the server culls by itself, so
# there is no MAX_ENTRIES cull to test (those tests skip, saying so).
EXCLUDED = {"cull", "zero_cull"}
ALLOWED_SKIPS = {"test_cull", "test_zero_cull", "test_cull_delete_when_store_empty"}
_skips = []


def unexpected_skips():
    bad = [name for name in _skips if name.split(".")[-1] not in ALLOWED_SKIPS]
    for name in bad:
        print(f"unexpected skip: {name}")
    return bad


def _suite(backend):
    params = {"BACKEND": "stratacache.django.StrataCache", "LOCATION": backend_url(backend),
              "OPTIONS": {"namespace": unique_ns("dj" + backend)}}

    @override_settings(CACHES=caches_setting_for_tests(base=params, exclude=EXCLUDED))
    class Suite(BaseCacheTests, TestCase):
        def skipTest(self, reason):
            _skips.append(self.id())
            super().skipTest(reason)

    Suite.__name__ = Suite.__qualname__ = f"Strata{backend.capitalize()}CacheTests"
    return Suite


StrataMemoryCacheTests = _suite("memory")
StrataRedisCacheTests = _suite("redis")
StrataMemcachedCacheTests = _suite("memcached")


def load_tests(loader, tests, pattern):
    suite = unittest.TestSuite()
    for cls in (StrataMemoryCacheTests, StrataRedisCacheTests, StrataMemcachedCacheTests):
        suite.addTests(loader.loadTestsFromTestCase(cls))
    return suite
