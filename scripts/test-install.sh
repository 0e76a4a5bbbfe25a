#!/usr/bin/env bash
# Installs the library into a scratch prefix and builds a consumer both ways:
# CMake find_package and pkg-config. Also compiles the public header alone
# under -std=c99 -pedantic -Werror.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
prefix="$root/build-install/prefix"
rm -rf build-install
cmake -S . -B build-install/lib -DCMAKE_INSTALL_PREFIX="$prefix" -DSTRATA_BUILD_TESTS=OFF \
  -DSTRATA_BUILD_BENCH=OFF -DSTRATA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-install/lib -j"$(nproc)" >/dev/null
cmake --install build-install/lib >/dev/null

echo 'header alone: -std=c99 -pedantic -Werror'
printf '#include <stratacache.h>\nint main(void) { return strata_version() == 0; }\n' > build-install/header.c
cc -std=c99 -pedantic -Wall -Wextra -Werror -c -I"$prefix/include" build-install/header.c -o build-install/header.o
c++ -x c++ -std=c++11 -pedantic -Werror -fsyntax-only -I"$prefix/include" build-install/header.c 2>/dev/null \
  || { command -v c++ >/dev/null && { echo "header does not compile as C++"; exit 1; }; }

echo 'consumer via find_package(stratacache)'
cmake -S tests/consumer -B build-install/consumer -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build build-install/consumer >/dev/null
LD_LIBRARY_PATH="$prefix/lib:${LD_LIBRARY_PATH:-}" build-install/consumer/consumer

echo 'consumer via pkg-config'
libdir=$(ls -d "$prefix"/lib*/pkgconfig | head -1)
PKG_CONFIG_PATH="$libdir" cc tests/consumer/consumer.c -o build-install/consumer-pc \
  $(PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs stratacache)
LD_LIBRARY_PATH="$(dirname "$libdir"):${LD_LIBRARY_PATH:-}" build-install/consumer-pc

echo 'static link via pkg-config --static'
PKG_CONFIG_PATH="$libdir" cc tests/consumer/consumer.c -o build-install/consumer-static \
  $(PKG_CONFIG_PATH="$libdir" pkg-config --cflags stratacache) "$(dirname "$libdir")/libstratacache.a" \
  $(PKG_CONFIG_PATH="$libdir" pkg-config --static --libs-only-l stratacache | sed 's/-lstratacache//')
build-install/consumer-static
echo 'install checks passed'
