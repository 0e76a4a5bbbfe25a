#!/usr/bin/env bash
# Instructions per Lua L1 hit (bench/callgrind_lua.lua under callgrind): get,
# get_or_load and get_or_load with {tags} against a Lua table lookup, under
# lua5.4 and luajit: the difference of an N-hit run and a 0-hit run, over N.
# Uses the modules scripts/bench-lua.sh builds (build-lua54/, build-lua51/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=200000
for lua in lua5.4 luajit; do
  command -v "$lua" >/dev/null || continue
  dir=build-lua51
  [ "$lua" = lua5.4 ] && dir=build-lua54
  line="$lua instructions per hit (callgrind):"
  for mode in table get get_or_load get_or_load_tags; do
    declare -A ir=()
    for k in 0 "$n"; do
      log=$(LUA_CPATH="$root/$dir/?.so" LUA_CPATH_5_4="$root/$dir/?.so" valgrind --tool=callgrind \
        --callgrind-out-file=/dev/null "$lua" bench/callgrind_lua.lua "$mode" "$k" 2>&1 >/dev/null)
      ir[$k]=$(sed -n 's/.*Collected : *//p' <<<"$log" | tr -d ,)
    done
    line="$line $mode $(( (ir[$n] - ir[0]) / n ))"
  done
  echo "$line"
done
