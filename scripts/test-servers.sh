#!/usr/bin/env bash
# Throwaway redis-server and memcached on free loopback ports.
#   scripts/test-servers.sh start DIR   -> starts both, writes DIR/env (export lines)
#   scripts/test-servers.sh stop DIR    -> stops whatever DIR's pidfiles name
set -euo pipefail

cmd=${1:?usage: test-servers.sh start|stop DIR}
dir=${2:?usage: test-servers.sh start|stop DIR}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
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
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log"
  wait_port 127.0.0.1 "$rport" redis-server
  mport=$(free_port)
  memcached -l 127.0.0.1 -p "$mport" -U 0 -m 128 -u "$(id -un)" -d -P "$dir/memcached.pid"
  wait_port 127.0.0.1 "$mport" memcached
  cat > "$dir/env" <<ENV
export STRATA_TEST_REDIS_URL=redis://127.0.0.1:$rport
export STRATA_TEST_MEMCACHED_URL=memcached://127.0.0.1:$mport
export STRATA_TEST_REDIS_PORT=$rport
export STRATA_TEST_MEMCACHED_PORT=$mport
ENV
  echo "test-servers: redis on $rport, memcached on $mport"
  ;;
stop)
  [ -d "$dir" ] && stop
  ;;
*)
  echo "usage: test-servers.sh start|stop DIR" >&2; exit 2 ;;
esac
