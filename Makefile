# Thin wrapper over CMake.  `make demo` and `make test` are the README's
# Quick start; both install missing Debian packages first.
BUILD ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
BUILD_ARM64 ?= build-arm64
JOBS ?= $(shell nproc)

.PHONY: all build demo test test-sanitize test-tsan deps deps-test install clean cross-arm64 test-arm64

all: build

deps:
	@scripts/install-deps.sh

deps-test:
	@scripts/install-deps.sh --test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/qbert info models/bert-mini-sst2
	@echo
	$(BUILD)/qbert predict models/bert-mini-sst2 \
	  "a gripping, beautifully acted film" \
	  "the plot is thin and the jokes fall flat" \
	  "not bad at all"
	@echo
	$(BUILD)/qbert bench models/bert-mini-sst2 --seq 32,128 --batch 1,8 --runs 10

test: deps-test build
	cd $(BUILD) && ctest --output-on-failure -j 1

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
test-sanitize: deps-test
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQB_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && QB_SANITIZE=1 ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j 1

# The CLI, libqbert.so, qbert.h and qbert.pc under PREFIX (bin, lib, include).
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# The tests labelled tsan (sessions and servers in several threads) under
# ThreadSanitizer: a data race fails them.
test-tsan: deps-test
	@cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQB_TSAN=ON >/dev/null
	@cmake --build $(BUILD_TSAN) -j $(JOBS)
	cd $(BUILD_TSAN) && QB_SANITIZE=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	  ctest --output-on-failure -j 1 -L tsan

# AArch64 (docs/arm64.md): cross-built with Debian's gcc-aarch64-linux-gnu,
# tested under qemu-aarch64 at each CPU level (ARM64_SUITES=quick: the CI subset).
cross-arm64:
	@scripts/install-deps.sh --arm64 $(CURDIR)/$(BUILD_ARM64)/sysroot
	@cmake -S . -B $(BUILD_ARM64) -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DQB_ARM64_SYSROOT=$(CURDIR)/$(BUILD_ARM64)/sysroot >/dev/null
	@cmake --build $(BUILD_ARM64) -j $(JOBS)

test-arm64: cross-arm64
	scripts/test-arm64.sh $(BUILD_ARM64) $(ARM64_SUITES)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_ARM64)
