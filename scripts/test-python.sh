#!/usr/bin/env bash
# The Python package's suite: builds `pip install .` into .venv-test and runs
# pytest python/tests. Uses the servers scripts/run-tests.sh exported
# (STRATA_TEST_REDIS_URL / STRATA_TEST_MEMCACHED_URL); when run alone, starts
# its own throwaway ones and stops them afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv-test"
py=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  rm -rf "$venv"
  if ! "$py" -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
      echo "test-python: installing python3-venv"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends python3-venv "python$ver-venv" >/dev/null 2>&1 ||
        apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
      "$py" -m venv "$venv"
    else
      echo "test-python: '$py -m venv' failed; install python3-venv (as root: apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi

"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$venv/bin/python" -m pip install -q pytest build
# optional dependency of stratacache.metrics (the Prometheus collector and its test)
"$venv/bin/python" -m pip install -q prometheus_client
# A fresh build every run: the C core may have changed since the last install.
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps --no-cache-dir . ||
  "$venv/bin/python" -m pip install -q .
"$venv/bin/python" -m pip install -q "cffi>=1.15"

if [ -z "${STRATA_TEST_REDIS_URL:-}" ] && [ -z "${STRATA_TEST_MEMCACHED_URL:-}" ] &&
   command -v redis-server >/dev/null && command -v memcached >/dev/null; then
  servers="$root/.test-servers-python"
  trap '"$root/scripts/test-servers.sh" stop "$servers"' EXIT
  "$root/scripts/test-servers.sh" start "$servers"
  # shellcheck disable=SC1091
  . "$servers/env"
fi

# test_sdist.py builds the sdist and pip-installs it into a fresh venv with
# build isolation (setuptools, wheel, cffi from the index or the pip cache);
# STRATA_TEST_SDIST=0 skips it, e.g. with no package index in reach.
export STRATA_TEST_SDIST=${STRATA_TEST_SDIST:-1}

# Run from python/tests so the source tree's python/stratacache is not imported
# in place of the installed package.
cd "$root/python/tests"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" .

# STRATACACHE_USE_SYSTEM_LIB=1 links an installed libstratacache instead of
# compiling the core in: checked against the prefix scripts/test-install.sh
# leaves (make test runs it first).
prefix="$root/build-install/prefix"
pcdir=$(ls -d "$prefix"/lib*/pkgconfig 2>/dev/null | head -1 || true)
if [ -n "$pcdir" ]; then
  echo "== the package against the installed library (STRATACACHE_USE_SYSTEM_LIB=1)"
  scratch=$(mktemp -d)
  mkdir -p "$scratch/stratacache"
  cp "$root"/python/stratacache/*.py "$scratch/stratacache/"
  (cd "$scratch" && STRATACACHE_USE_SYSTEM_LIB=1 PKG_CONFIG_PATH="$pcdir" \
    "$venv/bin/python" "$root/python/stratacache/_build.py" >/dev/null)
  (cd "$scratch" && LD_LIBRARY_PATH="$(dirname "$pcdir")" PYTHONPATH="$scratch" "$venv/bin/python" -c '
import os, stratacache, stratacache._native as native
assert native.__file__.startswith(os.getcwd()), native.__file__
with stratacache.Cache("memory://") as c:
    c.set("k", b"v")
    assert c.get("k") == b"v"
    assert c.get_or_load("x", lambda k: b"loaded") == b"loaded"
print("   ok: set, get and get_or_load through the installed libstratacache")
')
  rm -rf "$scratch"
fi
