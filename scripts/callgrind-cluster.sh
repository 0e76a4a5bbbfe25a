#!/usr/bin/env bash
# Instructions per strata_get (L1 off, 100-byte value) on one Redis node and on
# a Redis Cluster, counted by callgrind inside strata_get only, and inside the
# slot function (CRC16 of the key's hash tag) alone.
#   scripts/callgrind-cluster.sh REDIS_URL CLUSTER_URL [build-dir]
set -euo pipefail
single=${1:?usage: callgrind-cluster.sh REDIS_URL CLUSTER_URL [build-dir]}
cluster=${2:?usage: callgrind-cluster.sh REDIS_URL CLUSTER_URL [build-dir]}
build=${3:-build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
n=10000
count() { # name url function
  valgrind --tool=callgrind --toggle-collect="$3" --callgrind-out-file="$out/cg.$1" \
    "$build/bench/bench_cluster" --gets "$2" "$n" >/dev/null 2>"$out/log.$1"
  ir=$(sed -n 's/.*I *refs: *//p' "$out/log.$1" | tr -d ,)
  echo $((ir / n))
}
a=$(count single "$single" strata_get)
b=$(count cluster "$cluster" strata_get)
s=$(count slot "$cluster" strata__cluster_slot)
echo "strata_get, L1 off, one node:  $a instructions per call (callgrind, $n gets)"
echo "strata_get, L1 off, cluster:   $b instructions per call (+$((b - a)))"
echo "of which the slot function:    $s instructions per call"
