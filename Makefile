# The two commands of the README, plus bench and stress. Each installs what is missing.
.PHONY: all deps build demo test bench stress fuzz clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j$$(nproc)

demo: build
	./build/examples/demo

test: deps
	scripts/run-tests.sh

bench: build
	scripts/run-bench.sh

stress: deps
	scripts/run-stress.sh

# libFuzzer on each tests/fuzz harness, FUZZ_MINUTES each (default 2).
fuzz: deps
	scripts/run-fuzz.sh

clean:
	rm -rf build build-asan build-install .test-servers build-fuzz build-tsan .fuzz-work
