#!/usr/bin/env bash
# Benchmarks against throwaway servers; results go to stdout (record them in bench/RESULTS.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
servers="$root/.test-servers-bench"
trap 'scripts/test-servers.sh stop "$servers"' EXIT
scripts/test-servers.sh start "$servers"
. "$servers/env"
echo "== core (C) on $(nproc) cores, $(date -u +%Y-%m-%d)"
./build/bench/bench_core "$STRATA_TEST_REDIS_PORT" "$STRATA_TEST_MEMCACHED_PORT"
./build/bench/bench_write "$STRATA_TEST_REDIS_PORT"
for b in scripts/bench-python.sh scripts/bench-lua.sh; do
  if [ -x "$b" ]; then echo "== $b"; "$b"; fi
done
