#!/usr/bin/env bash
# The frameworks' own suites against stratacache's adapters (issue 14), in the
# venv of scripts/test-python.sh (which installs the package first):
#   dogpile.cache 1.5.0's suites (dogpile.testing) + its async-creation test,
#   Django 5.2 LTS's BaseCacheTests (tests/cache from its sdist),
# each on memory, redis and memcached, in one pytest process; then mypy --strict
# on a script using every public call. The sdists are downloaded into a
# temporary folder for this run only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-test"
DOGPILE_VERSION=1.5.0
DJANGO_VERSION=5.2.19
MYPY_VERSION=1.13.0
if [ ! -x "$venv/bin/python" ]; then
  echo "test-frameworks: run scripts/test-python.sh first (it makes $venv and installs the package)" >&2
  exit 1
fi
"$venv/bin/python" -m pip install -q "dogpile.cache==$DOGPILE_VERSION" "django==$DJANGO_VERSION" "mypy==$MYPY_VERSION"

tmp=$(mktemp -d)
cleanup() { if [ -n "${servers:-}" ]; then "$root/scripts/test-servers.sh" stop "$servers" || true; fi; rm -rf "$tmp"; }
trap cleanup EXIT
if [ -z "${STRATA_TEST_REDIS_URL:-}" ] || [ -z "${STRATA_TEST_MEMCACHED_URL:-}" ]; then
  servers="$tmp/servers"
  "$root/scripts/test-servers.sh" start "$servers"
  # shellcheck disable=SC1091
  . "$servers/env"
fi

for spec in "dogpile.cache==$DOGPILE_VERSION" "django==$DJANGO_VERSION"; do
  "$venv/bin/python" -m pip download -q --no-deps --no-binary :all: "$spec" -d "$tmp/sdist"
done
tar -xzf "$tmp"/sdist/dogpile_cache-*.tar.gz -C "$tmp"
tar -xzf "$tmp"/sdist/[dD]jango-*.tar.gz -C "$tmp"
export DOGPILE_TESTS=$(ls -d "$tmp"/dogpile_cache-*/tests/cache)
export DJANGO_TESTS=$(ls -d "$tmp"/[dD]jango-*/tests)

cd "$root/python/framework_tests"
echo "== dogpile.cache $DOGPILE_VERSION suites (memory, redis, memcached)"
# An exception in a test's thread fails the test (pytest only warns by default).
"$venv/bin/python" -m pytest -q -p no:cacheprovider \
  -W error::pytest.PytestUnhandledThreadExceptionWarning "$@" .
echo "== Django $DJANGO_VERSION BaseCacheTests (memory, redis, memcached)"
"$venv/bin/python" run_django.py
echo "== mypy --strict on a script using every public call"
"$venv/bin/python" -m mypy --strict --no-incremental typing_check.py
