"""Django 5.2's BaseCacheTests (tests/cache/tests.py of its sdist, on sys.path
through DJANGO_TESTS) on stratacache.django.StrataCache over memory, redis and
memcached, with Django's own test runner (its TestCase needs the test
database). Run by scripts/test-frameworks.sh; exits non-zero on any failure or
on a skip other than the cull tests."""
import os
import sys

import django
from django.conf import settings

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    sys.path.insert(0, os.environ["DJANGO_TESTS"])
    sys.path.insert(0, HERE)
    settings.configure(
        SECRET_KEY="stratacache-tests",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "cache"],
        CACHES={"default": {"BACKEND": "stratacache.django.StrataCache", "LOCATION": "memory://django"}},
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()
    from django.test.runner import DiscoverRunner

    import django_suites

    runner = DiscoverRunner(verbosity=1)
    failures = runner.run_tests(["django_suites"])
    return 1 if failures or django_suites.unexpected_skips() else 0


if __name__ == "__main__":
    sys.exit(main())
