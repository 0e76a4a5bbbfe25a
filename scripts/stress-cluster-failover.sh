#!/usr/bin/env bash
# The soak (tests/c/soak.c) on a Redis Cluster of 3 masters + 3 replicas while
# replicas take over from their masters again and again (CLUSTER FAILOVER, a
# coordinated hand-over: no acknowledged write is lost). The soak fails on any
# stale value that survives, and on read errors other than deadlines.
#   scripts/stress-cluster-failover.sh [build-dir] [seconds]   (make stress)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${1:-build}
seconds=${2:-${STRESS_SECONDS:-60}}
servers="$root/.test-servers-failover"
trap 'scripts/test-servers.sh stop "$servers"' EXIT
STRATA_TEST_CLUSTER_REPLICAS=1 scripts/test-servers.sh start "$servers"
# shellcheck disable=SC1091
. "$servers/env"
"./$build/tests/c/soak" redis_cluster "$seconds" &
soak=$!
failovers=0
while kill -0 "$soak" 2>/dev/null; do
  sleep 2
  for p in $STRATA_TEST_REDIS_CLUSTER_PORTS $STRATA_TEST_REDIS_CLUSTER_REPLICA_PORTS; do
    # a replica whose master is up takes over (the old master becomes its replica)
    if redis-cli -p "$p" role 2>/dev/null | head -1 | grep -q slave; then
      redis-cli -p "$p" cluster failover >/dev/null 2>&1 && failovers=$((failovers + 1))
      break
    fi
  done
done
status=0
wait "$soak" || status=$?
echo "== cluster failover soak: $failovers failovers in ${seconds} s, soak exit $status"
exit "$status"
