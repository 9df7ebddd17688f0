# tern build. `make` builds the release binary build/release/tern.
#   make run         install missing packages, build, run with embedded defaults
#   make test        install missing packages, build with ASan+UBSan, run every test
#   make unit | e2e | fuzz-smoke | compilers | lint    parts of `make test`
.SUFFIXES:

CC       ?= cc
CLANG    ?= clang
PYTHON   ?= /usr/bin/python3
PKGS      = libevent libevent_pthreads libcares libcrypto libssl libcrypt libsystemd
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
	@$(MAKE) --no-print-directory fuzz-smoke FUZZ_SECONDS=10
	@$(MAKE) --no-print-directory e2e

# ---- install ----------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=]: the binary in PREFIX/sbin, the
# manual pages in PREFIX/share/man, the systemd unit in
# PREFIX/lib/systemd/system (systemd looks there for /usr/local and /usr
# alike), and the example configuration as /etc/tern/tern.conf unless that
# file exists. As root without DESTDIR it also creates the system user tern.
# make install-sendmail: the same, and the links /usr/sbin/sendmail and
# /usr/bin/mailq to tern (not over another MTA's files).
PREFIX   ?= /usr/local
SBINDIR  ?= $(PREFIX)/sbin
MANDIR   ?= $(PREFIX)/share/man
UNITDIR  ?= $(PREFIX)/lib/systemd/system
CONFDIR  ?= /etc/tern
SENDMAIL ?= /usr/sbin/sendmail
MAILQ    ?= /usr/bin/mailq
MAN_PAGES := build/man/tern.8 build/man/tern.conf.5

$(MAN_PAGES) &: build/release/tern etc/tern.conf doc/tern.8.in doc/tern.conf.5.in tools/gen-man
	$(PYTHON) tools/gen-man --bin build/release/tern --conf etc/tern.conf --out build/man

man: $(MAN_PAGES)

install: build/release/tern $(MAN_PAGES)
	install -d -m 0755 '$(DESTDIR)$(SBINDIR)' '$(DESTDIR)$(MANDIR)/man8' \
		'$(DESTDIR)$(MANDIR)/man5' '$(DESTDIR)$(UNITDIR)' '$(DESTDIR)$(CONFDIR)'
	install -m 0755 build/release/tern '$(DESTDIR)$(SBINDIR)/tern'
	install -m 0644 build/man/tern.8 '$(DESTDIR)$(MANDIR)/man8/tern.8'
	install -m 0644 build/man/tern.conf.5 '$(DESTDIR)$(MANDIR)/man5/tern.conf.5'
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@CONFDIR@|$(CONFDIR)|g' etc/tern.service \
		> '$(DESTDIR)$(UNITDIR)/tern.service.tmp'
	chmod 0644 '$(DESTDIR)$(UNITDIR)/tern.service.tmp'
	mv -f '$(DESTDIR)$(UNITDIR)/tern.service.tmp' '$(DESTDIR)$(UNITDIR)/tern.service'
	@conf='$(DESTDIR)$(CONFDIR)/tern.conf'; \
	if [ -e "$$conf" ] || [ -L "$$conf" ]; then \
		echo "install: $$conf exists: kept as it is"; \
	else \
		echo "install -m 0644 etc/tern.conf $$conf"; \
		install -m 0644 etc/tern.conf "$$conf"; \
	fi
	@if [ -n '$(DESTDIR)' ]; then \
		echo "install: DESTDIR is set: no system user made (the unit runs as tern)"; \
	elif [ "$$(id -u)" -ne 0 ]; then \
		echo "install: not root: no system user made; as root: useradd --system" \
			"--user-group --home-dir /var/lib/tern --shell /usr/sbin/nologin tern"; \
	elif getent passwd tern >/dev/null; then \
		echo "install: user tern exists"; \
	else \
		echo "useradd --system --user-group --home-dir /var/lib/tern --shell /usr/sbin/nologin tern"; \
		useradd --system --user-group --home-dir /var/lib/tern \
			--shell /usr/sbin/nologin tern; \
	fi
	@[ -n '$(DESTDIR)' ] || echo "install: next: edit $(CONFDIR)/tern.conf" \
		"(tern check-config $(CONFDIR)/tern.conf), then" \
		"systemctl daemon-reload && systemctl enable --now tern"

install-sendmail: install
	@for link in '$(SENDMAIL)' '$(MAILQ)'; do \
		path='$(DESTDIR)'"$$link"; \
		if [ -L "$$path" ] && [ "$$(readlink "$$path")" = '$(SBINDIR)/tern' ]; then \
			echo "install-sendmail: $$path is tern already"; continue; \
		fi; \
		if [ -e "$$path" ] || [ -L "$$path" ]; then \
			echo "install-sendmail: $$path exists (another MTA's?): remove it" \
				"first, or give SENDMAIL= / MAILQ= another path" >&2; \
			exit 1; \
		fi; \
		install -d -m 0755 "$$(dirname "$$path")"; \
		echo "ln -s $(SBINDIR)/tern $$path"; \
		ln -s '$(SBINDIR)/tern' "$$path"; \
	done

# removes what install and install-sendmail added, except the
# configuration, the state directory and the user
uninstall:
	rm -f '$(DESTDIR)$(SBINDIR)/tern' '$(DESTDIR)$(MANDIR)/man8/tern.8' \
		'$(DESTDIR)$(MANDIR)/man5/tern.conf.5' '$(DESTDIR)$(UNITDIR)/tern.service'
	@for link in '$(SENDMAIL)' '$(MAILQ)'; do \
		path='$(DESTDIR)'"$$link"; \
		if [ -L "$$path" ] && [ "$$(readlink "$$path")" = '$(SBINDIR)/tern' ]; then \
			echo "rm -f $$path"; rm -f "$$path"; \
		fi; \
	done
	@echo "uninstall: kept $(DESTDIR)$(CONFDIR), /var/lib/tern and the user tern"

.PHONY: man install install-sendmail uninstall

clean:
	rm -rf build

.PHONY: all deps test-deps run compilers unit fuzz-build fuzz-smoke e2e layers docs test clean
