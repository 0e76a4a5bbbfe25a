#!/usr/bin/env bash
# Throwaway redis-server, memcached and a 3-master Redis Cluster on free loopback ports.
#   scripts/test-servers.sh start DIR   -> starts them, writes DIR/env (export lines)
#   scripts/test-servers.sh stop DIR    -> stops whatever DIR's pidfiles name
# STRATA_TEST_CLUSTER_REPLICAS=1 gives each cluster master a replica (the
# failover soak, scripts/stress-cluster-failover.sh); make test runs without.
set -euo pipefail

cmd=${1:?usage: test-servers.sh start|stop DIR}
dir=${2:?usage: test-servers.sh start|stop DIR}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# n free ports whose cluster bus port (port + 10000) is free too.
free_cluster_ports() {
  python3 - "$1" <<'PY'
import socket, sys
want, got, held = int(sys.argv[1]), [], []
while len(got) < want:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    held.append(s)
    if p > 55000:
        continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 10000))
    except OSError:
        continue
    finally:
        b.close()
    got.append(p)
print(" ".join(map(str, got)))
PY
}

wait_port() { # host port name
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "test-servers: $3 did not start on $1:$2" >&2
  return 1
}

stop() {
  for f in "$dir"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -CONT "$pid" 2>/dev/null || true
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

case "$cmd" in
start)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  stop
  rm -rf "$dir"/cluster-*
  trap 'rc=$?; stop; exit $rc' ERR # a half-started set is stopped whole
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log"
  wait_port 127.0.0.1 "$rport" redis-server
  mport=$(free_port)
  memcached -l 127.0.0.1 -p "$mport" -U 0 -m 128 -u "$(id -un)" -d -P "$dir/memcached.pid"
  wait_port 127.0.0.1 "$mport" memcached
  # Redis Cluster, 3 masters and by default no replicas (each node costs start
  # time). Full coverage off: a stopped master's slots fail, the others keep serving.
  replicas=${STRATA_TEST_CLUSTER_REPLICAS:-0}
  allports=$(free_cluster_ports $((3 * (1 + replicas))))
  cports=$(echo $allports | cut -d' ' -f1-3)   # redis-cli makes the first three the masters
  rports=$(echo $allports | cut -d' ' -f4- -s)
  seeds=""
  for p in $allports; do
    mkdir -p "$dir/cluster-$p"
    redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --cluster-enabled yes \
      --cluster-config-file "$dir/cluster-$p/nodes.conf" --cluster-node-timeout 2000 \
      --cluster-require-full-coverage no --daemonize yes --pidfile "$dir/cluster-$p.pid" \
      --dir "$dir/cluster-$p" --logfile "$dir/cluster-$p/redis.log"
    seeds="$seeds 127.0.0.1:$p"
  done
  for p in $allports; do wait_port 127.0.0.1 "$p" "redis-server (cluster)"; done
  # shellcheck disable=SC2086
  redis-cli --cluster create $seeds --cluster-replicas "$replicas" --cluster-yes > "$dir/cluster-create.log" 2>&1 || {
    cat "$dir/cluster-create.log" >&2; stop; exit 1; }
  for _ in $(seq 1 100); do
    ok=1
    for p in $allports; do
      redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.05
  done
  [ "$ok" = 1 ] || { echo "test-servers: redis cluster did not reach cluster_state:ok" >&2; stop; exit 1; }
  for p in $rports; do # a replica that never synced refuses to take over
    for _ in $(seq 1 200); do
      redis-cli -p "$p" info replication 2>/dev/null | grep -q '^master_link_status:up' && break
      sleep 0.05
    done
  done
  cluster_url="redis+cluster://$(echo $seeds | cut -d' ' -f1-3 | tr ' ' ',')"
  cat > "$dir/env" <<ENV
export STRATA_TEST_REDIS_URL=redis://127.0.0.1:$rport
export STRATA_TEST_MEMCACHED_URL=memcached://127.0.0.1:$mport
export STRATA_TEST_REDIS_PORT=$rport
export STRATA_TEST_MEMCACHED_PORT=$mport
export STRATA_TEST_REDIS_CLUSTER_URL=$cluster_url
export STRATA_TEST_REDIS_CLUSTER_PORTS="$cports"
export STRATA_TEST_REDIS_CLUSTER_REPLICA_PORTS="$rports"
ENV
  echo "test-servers: redis on $rport, memcached on $mport, redis cluster on $cports"
  ;;
stop)
  [ -d "$dir" ] && stop
  ;;
*)
  echo "usage: test-servers.sh start|stop DIR" >&2; exit 2 ;;
esac
