#!/usr/bin/env bash
# The Python benchmarks (bench/bench_python.py, bench/bench_asyncio.py): stratacache against redis-py,
# dogpile.cache and cachetools, which are installed from the package index into
# .venv-bench only (never dependencies of the package). scripts/run-bench.sh
# runs it with its servers' env; alone, it starts throwaway servers.
#   scripts/bench-python.sh [--rounds N] [--scale X]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv-bench"
py=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  rm -rf "$venv"
  "$py" -m venv "$venv" || {
    echo "bench-python: '$py -m venv' failed; install python3-venv (scripts/test-python.sh does, as root)" >&2
    exit 1
  }
fi
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$venv/bin/python" -m pip install -q redis hiredis dogpile.cache cachetools "cffi>=1.15"
# A fresh build: the C core may have changed since the last install.
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps --no-cache-dir .

if [ -z "${STRATA_TEST_REDIS_PORT:-}" ]; then
  servers="$root/.test-servers-pybench"
  trap '"$root/scripts/test-servers.sh" stop "$servers"' EXIT
  "$root/scripts/test-servers.sh" start "$servers"
  # shellcheck disable=SC1091
  . "$servers/env"
fi

# From bench/ so the source tree's python/stratacache cannot shadow the build.
cd "$root/bench"
# dogpile warns that thread_local_lock is moot with distributed_lock; not news.
"$venv/bin/python" -W "ignore::UserWarning:dogpile.cache.backends.redis" bench_python.py \
  "$STRATA_TEST_REDIS_PORT" "$@"
# AsyncCache (native on the loop, and on its thread pool) against redis.asyncio.
"$venv/bin/python" bench_asyncio.py "$STRATA_TEST_REDIS_PORT" "$@"
