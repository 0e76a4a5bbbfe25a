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
echo "== instructions per L1 hit (callgrind, issue 16)"
scripts/install-deps.sh valgrind
scripts/callgrind-l1.sh build
echo "== stampede protection (C)"
./build/bench/bench_stampede "$STRATA_TEST_REDIS_PORT" "$STRATA_TEST_MEMCACHED_PORT" 10
echo "== hot keys and L1 coherence (C)"
./build/bench/bench_hot "$STRATA_TEST_REDIS_PORT"
echo "== tags and histograms (C)"
./build/bench/bench_tags "$STRATA_TEST_REDIS_PORT"
./build/bench/bench_write "$STRATA_TEST_REDIS_PORT"
./build/bench/bench_envelope
./build/bench/bench_sansio "$STRATA_TEST_REDIS_PORT"
echo "== instructions per get_many (callgrind; blocking and sans-I/O)"
scripts/callgrind-get-many.sh "$STRATA_TEST_REDIS_PORT" build
echo "== Redis Cluster: a get on a cluster vs on one node (docs/CLUSTER.md)"
./build/bench/bench_cluster "$STRATA_TEST_REDIS_URL" "$STRATA_TEST_REDIS_CLUSTER_URL"
scripts/callgrind-cluster.sh "$STRATA_TEST_REDIS_URL" "$STRATA_TEST_REDIS_CLUSTER_URL" build
for b in scripts/bench-python.sh scripts/bench-lua.sh; do
  if [ -x "$b" ]; then echo "== $b"; "$b"; fi
done
echo "== instructions per Lua L1 hit (callgrind; the modules bench-lua.sh built)"
scripts/callgrind-lua.sh
echo "== OpenResty (resty.stratacache in nginx)"
scripts/test-nginx.sh --bench
echo "== OpenResty instruction counts (callgrind, one worker)"
scripts/test-nginx.sh --callgrind
