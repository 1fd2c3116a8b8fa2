# embedkit — top-level entry points.  Quick start: `make run`, `make test`.
#
#   make deps       install missing Debian packages (apt-get when root,
#                   otherwise print the exact command)
#   make build      configure + build (build/ek, build/libembedkit.{a,so})
#   make models     generate the bundled default model (random weights)
#   make run        deps + build + models, then embed the bundled sample texts
#   make test       deps + build, then the test suite (CTest + cmocka)
#   make test-asan  the same suite under AddressSanitizer + UBSan (build-asan/)
#   make test-clang build with clang -Werror (warnings check) and run the suite
#   make check-aarch64  build everything for aarch64 with cross gcc and clang
#                   (-Werror, linked against Debian's arm64 libraries in a
#                   sysroot; tools/test_aarch64.sh --build-only)
#   make perf-check   instruction counts + allocations of the hot paths under
#                     callgrind against bench/baselines (fails above +5%)
#   make perf-baseline  record those baselines (a deliberate, reviewed change)

BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
DEBIAN_PACKAGES = build-essential cmake pkg-config libdnnl-dev libutf8proc-dev \
                  libcjson-dev libcmocka-dev libsqlite3-dev libsodium-dev libyaml-dev \
                  libcurl4-openssl-dev libmicrohttpd-dev minisign prometheus clang \
                  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd libclblast-dev valgrind \
                  gnuplot-nox jq gcc-aarch64-linux-gnu mmdebstrap
DEFAULT_MODEL = $(BUILD)/models/default

.PHONY: all deps build models run test test-asan test-clang check-aarch64 clean perf-check perf-baseline

all: build

deps:
	@sh tools/deps.sh $(DEBIAN_PACKAGES)

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

models: build
	@sh tools/make_test_models.sh $(BUILD)/ek-genmodel $(BUILD)/models . default

run: models
	@echo "== model (bundled default: RANDOM weights, for trying embedkit out) =="
	$(BUILD)/ek info --model $(DEFAULT_MODEL)
	@echo "== embedding examples/sentences.txt =="
	$(BUILD)/ek embed --model $(DEFAULT_MODEL) < examples/sentences.txt | cut -c1-160
	@echo "== cosine similarity matrix =="
	$(BUILD)/ek similarity --model $(DEFAULT_MODEL) \
	    "A man is eating food." "A man is eating a piece of bread." "The sky is blue."

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DEK_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    ctest --output-on-failure -j $(JOBS)

test-clang: deps
	CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Release
	cmake --build build-clang -j $(JOBS)
	cd build-clang && ctest --output-on-failure -j $(JOBS)

check-aarch64: deps
	@sh tools/test_aarch64.sh --build-only

# Performance regression check (bench/perfcheck.py; skips with a message when
# valgrind is missing or the toolchain differs from the baseline's).
PERFCHECK = python3 bench/perfcheck.py --bin $(BUILD)/ek-perfcheck --models $(BUILD)/models

perf-check: build
	@sh tools/make_test_models.sh $(BUILD)/ek-genmodel $(BUILD)/models .
	$(PERFCHECK)

perf-baseline: build
	@sh tools/make_test_models.sh $(BUILD)/ek-genmodel $(BUILD)/models .
	$(PERFCHECK) --update

clean:
	rm -rf $(BUILD) build-asan build-clang build-a64 build-a64-clang
