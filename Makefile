# QwenEmbed — the README's two commands:
#   make run    install what is missing, build, fetch the default model, chat with it
#   make test   every test: Swift (unit), C (against libqwen.so), Python (ctypes + real model)
# and `make build`, which leaves .build/release/libqwen.so and .build/release/qwen.

SHELL := /bin/bash
PYTHON ?= python3
QWEN_CACHE ?= $(HOME)/.cache/qwen-embed
export QWEN_CACHE

# No CPU flags: the build is the same on every machine. The kernels for each x86
# instruction set are compiled by their own targets (Package.swift) and chosen at run
# time from CPUID (override: QWEN_ISA=generic|avx2|avxvnni|avx512).
# Release: Swift runtime linked in, only qwen_* exported from libqwen.so.
RELEASE_FLAGS := -c release -Xswiftc -static-stdlib \
	-Xlinker --version-script=$(CURDIR)/scripts/libqwen.map

CC ?= cc
CFLAGS ?= -std=c11 -O2 -Wall -Wextra -Werror
LIBDIR := $(CURDIR)/.build/release
C_LINK := -I$(CURDIR)/include -L$(LIBDIR) -lqwen -Wl,-rpath,$(LIBDIR) -lpthread -lm

.PHONY: all run build deps model test test-swift test-c test-python test-sanitize fuzz wheel examples install bench check-consumer clean
PREFIX ?= /usr/local

all: build examples

deps:
	@bash scripts/install-deps.sh

model: deps
	@bash scripts/fetch-model.sh >/dev/null

# SwiftPM does not recompile the Swift modules that import a C target's header when only
# the header changed (kernel_abi.h's static inline qe_attend_block_scratch kept its old
# body inside QwenEmbed: a scratch overrun): a changed header clears the release build once.
C_HEADERS := $(wildcard Sources/*/include/*.h)
.build/c-headers-release.stamp: $(C_HEADERS)
	rm -rf "$$(swift build -c release --show-bin-path)" .build/release
	@mkdir -p .build && touch $@

build: deps .build/c-headers-release.stamp
	swift build $(RELEASE_FLAGS) --product qwen
	swift build $(RELEASE_FLAGS) --product qwen-cli
	install -m 755 .build/release/qwen-cli .build/release/qwen

# examples/c/chat.c -> build/chat, linked against the built libqwen.so; build/qwen.pc
# describes the built library for pkg-config (make install writes one for PREFIX).
examples: build
	@mkdir -p build
	$(CC) $(CFLAGS) -o build/chat examples/c/chat.c $(C_LINK)
	sed 's|@PREFIX@|$(CURDIR)/build/pkgconfig-root|' scripts/qwen.pc.in > build/qwen.pc
	@mkdir -p build/pkgconfig-root/lib build/pkgconfig-root/include
	ln -sf $(LIBDIR)/libqwen.so build/pkgconfig-root/lib/libqwen.so
	ln -sf $(CURDIR)/include/qwen.h build/pkgconfig-root/include/qwen.h

# build/wheel/qwen_embed-*.whl: the Python package with this build's libqwen.so inside
# (the portable build: kernels for every instruction set, chosen at run time), tagged
# for this platform; `pip install build/wheel/qwen_embed-*.whl` needs nothing else.
wheel: build
	@rm -rf build/wheel bindings/python/build && mkdir -p build/wheel
	cp .build/release/libqwen.so bindings/python/qwen_embed/libqwen.so
	$(PYTHON) -m pip wheel --no-deps --no-build-isolation -q -w build/wheel bindings/python; status=$$?; \
		rm -f bindings/python/qwen_embed/libqwen.so; rm -rf bindings/python/build bindings/python/*.egg-info; exit $$status
	@ls build/wheel/*.whl

install: build
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 .build/release/libqwen.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/qwen.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 .build/release/qwen $(DESTDIR)$(PREFIX)/bin/
	sed 's|@PREFIX@|$(PREFIX)|' scripts/qwen.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/qwen.pc

run: build model examples
	@bash scripts/demo.sh

test: build model examples swift-server
	$(MAKE) --no-print-directory test-swift test-c test-python

test-swift:
	swift test

test-c:
	@mkdir -p build/tests
	@set -e; for src in tests/c/*.c; do \
		bin=build/tests/$$(basename $$src .c); \
		$(CC) $(CFLAGS) -o $$bin $$src $(C_LINK); \
		echo "== $$bin"; QWEN_MODEL=$$(bash scripts/fetch-model.sh 2>/dev/null | tail -1) ./$$bin; \
	done

# The Swift suites under AddressSanitizer (XCTest's own allocations leak, so leak
# detection is off) and ThreadSanitizer; the C suites under AddressSanitizer +
# UndefinedBehaviorSanitizer against a libqwen.so built with AddressSanitizer (its C part
# with UBSan too: .build-asan), and under ThreadSanitizer against a ThreadSanitizer
# libqwen.so (.build-tsan; test_chat runs sessions, cancels and BUSY calls from several
# threads). ~6 minutes, not part of `make test`: run before each submission. (swiftc
# has no UndefinedBehaviorSanitizer on Linux; Swift traps on overflow and bounds itself.)
SAN_CC ?= clang
# The toolchain's ThreadSanitizer runtime intercepts libdispatch: link the toolchain's copy.
SWIFT_RUNTIME := $(shell dirname $$(readlink -f $$(command -v swiftc)))/../lib/swift/linux
SAN_CFLAGS := -std=c11 -O1 -g -fno-omit-frame-pointer -Wall -Wextra -Werror -I$(CURDIR)/include -lpthread
test-sanitize: model
	ASAN_OPTIONS=detect_leaks=0 swift test --sanitize=address
	swift test --sanitize=thread
	swift build -c release --product qwen --scratch-path .build-asan -Xswiftc -sanitize=address \
		-Xcc -fsanitize=undefined -Xlinker --version-script=$(CURDIR)/scripts/libqwen.map
	swift build -c release --product qwen --scratch-path .build-tsan -Xswiftc -sanitize=thread \
		-Xlinker --version-script=$(CURDIR)/scripts/libqwen.map
	@mkdir -p build/asan build/tsan
	@set -e; model=$$(bash scripts/fetch-model.sh 2>/dev/null | tail -1); for src in tests/c/*.c; do \
		name=$$(basename $$src .c); \
		$(SAN_CC) -fsanitize=address,undefined -fno-sanitize-recover=undefined -o build/asan/$$name $$src $(SAN_CFLAGS) \
			-L$(CURDIR)/.build-asan/release -lqwen -Wl,-rpath,$(CURDIR)/.build-asan/release; \
		echo "== build/asan/$$name (AddressSanitizer + UndefinedBehaviorSanitizer)"; \
		ASAN_OPTIONS=detect_leaks=0 QWEN_SANITIZED=1 QWEN_MODEL=$$model ./build/asan/$$name; \
		$(SAN_CC) -fsanitize=thread -o build/tsan/$$name $$src $(SAN_CFLAGS) \
			-L$(CURDIR)/.build-tsan/release -lqwen -Wl,-rpath,$(CURDIR)/.build-tsan/release \
			-L$(SWIFT_RUNTIME) -ldispatch -lBlocksRuntime -Wl,-rpath,$(SWIFT_RUNTIME); \
		echo "== build/tsan/$$name (ThreadSanitizer)"; \
		TSAN_OPTIONS=halt_on_error=1 QWEN_SANITIZED=1 QWEN_MODEL=$$model ./build/tsan/$$name; \
	done

# libFuzzer targets (tests/fuzz) against an AddressSanitizer + coverage libqwen.so
# (.build-fuzz), FUZZ_SECONDS each (default 60); prints RELIABILITY.md's table.
FUZZ_SECONDS ?= 60
fuzz: model
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" FUZZ_RUNS=$(FUZZ_RUNS) bash scripts/fuzz.sh

test-python:
	QWEN_LIBRARY=$(LIBDIR)/libqwen.so QWEN_CLI=$(LIBDIR)/qwen \
		$(PYTHON) -m pytest -p no:hypothesispytest -q tests/python bindings/python/tests

# Side by side with llama.cpp on every kernel path this CPU runs (BENCHMARKS.md).
bench: build model
	bash scripts/bench.sh

# A Swift package depending on QwenEmbed by version tag, plain `swift build`: same paths, same speed.
check-consumer: build model
	bash scripts/check-consumer-package.sh

# examples/swift-server: QwenEmbed inside a Hummingbird 2 server, a package of its own
# that depends on this one by path (a plain release build; the flags above are for
# libqwen.so). Built by `make test` (~4 minutes from a fresh clone), whose
# tests/python/test_swift_server.py drives it with the official openai client.
.PHONY: swift-server
swift-server:
	swift build -c release --package-path examples/swift-server

clean:
	rm -rf .build build
