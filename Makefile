# tern build. `make` builds the release binary build/release/tern.
#   make run         install missing packages, build, run with embedded defaults
#   make test        install missing packages, build with ASan+UBSan, run every test
#   make unit | e2e | fuzz-smoke | compilers | lint    parts of `make test`
.SUFFIXES:

CC       ?= cc
CLANG    ?= clang
PYTHON   ?= /usr/bin/python3
PKGS      = libevent libevent_pthreads libcares libcrypto libssl libcrypt
WARN      = -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wpointer-arith -Wcast-qual -Wvla
CPPFLAGS  = -Isrc -D_GNU_SOURCE
LIBS      = $(shell pkg-config --libs $(PKGS)) -lpthread
SAN       = -fsanitize=address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer

LIB_SRC  := $(filter-out src/main/%,$(wildcard src/*/*.c))
MAIN_SRC := $(wildcard src/main/*.c)
UNIT_SRC := $(wildcard tests/unit/*/test_*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

REL_OBJ  := $(LIB_SRC:%.c=build/release/%.o)
DBG_OBJ  := $(LIB_SRC:%.c=build/debug/%.o)
FUZ_OBJ  := $(LIB_SRC:%.c=build/fuzz/%.o)
CLG_OBJ  := $(LIB_SRC:%.c=build/clang/%.o) $(MAIN_SRC:%.c=build/clang/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/debug/unit/%)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)

FUZZ_SECONDS ?= 30

all: build/release/tern

# ---- release ------------------------------------------------------------
build/release/%.o: %.c $(wildcard src/*/*.h)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) -O2 -g -c -o $@ $<
build/release/libtern.a: $(REL_OBJ)
	rm -f $@ && ar rcs $@ $(REL_OBJ)
build/release/tern: $(MAIN_SRC:%.c=build/release/%.o) build/release/libtern.a
	$(CC) -o $@ $(MAIN_SRC:%.c=build/release/%.o) build/release/libtern.a $(LIBS)

# ---- debug: ASan + UBSan --------------------------------------------------
build/debug/%.o: %.c $(wildcard src/*/*.h)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) -O1 -g $(SAN) -c -o $@ $<
build/debug/libtern.a: $(DBG_OBJ)
	rm -f $@ && ar rcs $@ $(DBG_OBJ)
build/debug/tern: $(MAIN_SRC:%.c=build/debug/%.o) build/debug/libtern.a
	$(CC) $(SAN) -o $@ $(MAIN_SRC:%.c=build/debug/%.o) build/debug/libtern.a $(LIBS)
build/debug/unit/%: tests/unit/%.c $(wildcard tests/unit/*.h) build/debug/libtern.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/unit $(WARN) -Wno-missing-prototypes -O1 -g $(SAN) \
		-o $@ $< build/debug/libtern.a -lcmocka $(LIBS)

# ---- fuzz: clang + libFuzzer ---------------------------------------------
build/fuzz/%.o: %.c $(wildcard src/*/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(CPPFLAGS) $(WARN) -O1 -g -fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<
build/fuzz/libtern.a: $(FUZ_OBJ)
	rm -f $@ && ar rcs $@ $(FUZ_OBJ)
build/fuzz/%: tests/fuzz/%.c build/fuzz/libtern.a
	$(CLANG) $(CPPFLAGS) $(WARN) -Wno-missing-prototypes -O1 -g \
		-fsanitize=fuzzer,address,undefined -o $@ $< build/fuzz/libtern.a $(LIBS)

# ---- clang: the whole tree must also build warning-free with clang --------
build/clang/%.o: %.c $(wildcard src/*/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(CPPFLAGS) $(WARN) -O2 -c -o $@ $<

# ---- entry points ----------------------------------------------------------
deps:
	@./tools/install-deps build

test-deps:
	@./tools/install-deps build test

run: deps
	@$(MAKE) --no-print-directory build/release/tern
	./build/release/tern serve

compilers: $(CLG_OBJ) build/release/tern

unit: $(UNIT_BIN)
	@./tools/run-unit $(UNIT_BIN)
	@rm -rf build/debug/dsn-samples && mkdir -p build/debug/dsn-samples
	@TERN_DSN_SAMPLES=build/debug/dsn-samples \
		build/debug/unit/msg/test_msg_dsn >/dev/null 2>&1
	@$(PYTHON) tests/unit/msg/check_dsn_samples.py build/debug/dsn-samples

fuzz-build: $(FUZZ_BIN)

fuzz-smoke: $(FUZZ_BIN)
	@./tools/fuzz-smoke $(FUZZ_SECONDS) $(FUZZ_BIN)

e2e: build/debug/tern
	TERN_BIN=$(CURDIR)/build/debug/tern $(PYTHON) -m pytest -q tests/e2e

layers:
	@./tools/check-layers

docs: build/release/tern
	@./tools/check-docs build/release/tern

# builds run on every core; the tests themselves keep their own order
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)

test: test-deps
	@$(MAKE) --no-print-directory -j$(JOBS) layers compilers docs
	@$(MAKE) --no-print-directory -j$(JOBS) $(UNIT_BIN) $(FUZZ_BIN) build/debug/tern
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory fuzz-smoke FUZZ_SECONDS=20
	@$(MAKE) --no-print-directory e2e

clean:
	rm -rf build

.PHONY: all deps test-deps run compilers unit fuzz-build fuzz-smoke e2e layers docs test clean
