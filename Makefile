# SPDX-License-Identifier: MIT
# Shoal: one GNU Makefile, no configure step. See docs/building.md.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
CC ?= cc
PKG_CONFIG ?= pkg-config
BUILDDIR ?= build
CFLAGS ?= -O2 -g
LDFLAGS ?=
WERROR ?= 1
V ?= 0
CLANG ?= clang

VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || cat VERSION 2>/dev/null || echo unknown)

PKGS := libuv libsodium sqlite3 liblz4 libprotobuf-c jansson libcrypto
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
# Debian 12's libmbedtls-dev ships no .pc file; http-parser has none either.
# MBEDTLS_CFLAGS points at another mbedTLS's headers (docs/building.md).
MBEDTLS_CFLAGS ?=
MBEDTLS_LIBS ?= -lmbedtls -lmbedx509 -lmbedcrypto
EXTRA_LIBS := $(MBEDTLS_LIBS) -lhttp_parser -lpthread -lm

WARN := -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Wshadow \
	-Wformat=2 -Wvla -fno-common
ifeq ($(WERROR),1)
WARN += -Werror
endif
FINAL_CFLAGS := -std=c11 -D_GNU_SOURCE -Iinclude -I$(BUILDDIR)/gen $(WARN) \
	$(MBEDTLS_CFLAGS) $(PKG_CFLAGS) -MMD -MP \
	$(CFLAGS)
FINAL_LDFLAGS := $(LDFLAGS)
FINAL_LIBS := $(PKG_LIBS) $(EXTRA_LIBS)

ifeq ($(V),1)
Q :=
quiet = @true
else
Q := @
quiet = @printf '  %-6s %s\n' $(1) $(2)
endif

PROTO := proto/bep.proto
GEN_C := $(if $(wildcard $(PROTO)),$(BUILDDIR)/gen/bep.pb-c.c)
GEN_H := $(GEN_C:.c=.h)

SRCS := $(sort $(wildcard src/*.c))
OBJS := $(SRCS:src/%.c=$(BUILDDIR)/obj/%.o) $(GEN_C:.c=.o)
LIB_OBJS := $(filter-out $(BUILDDIR)/obj/main.o,$(OBJS))
LIB := $(BUILDDIR)/libshoal.a

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILDDIR)/tests/%)
TEST_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILDDIR)/fuzz/%)
FUZZ_TIME ?= 20

# Keep the generated protobuf-c files: make would otherwise delete them as
# intermediates, and fuzz targets compiled after a sub-make need the header.
.SECONDARY: $(GEN_C) $(GEN_H)

.PHONY: FORCE all test check unit integration check-asan check-headers fuzz \
	fuzz-build bench analyze lint install uninstall clean interop

all: $(BUILDDIR)/shoal

$(BUILDDIR)/shoal: $(OBJS)
	$(call quiet,LINK,$@)
	$(Q)$(CC) $(FINAL_CFLAGS) $(FINAL_LDFLAGS) -o $@ $^ $(FINAL_LIBS)

$(LIB): $(LIB_OBJS)
	$(call quiet,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILDDIR)/obj/%.o: src/%.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(call quiet,CC,$@)
	$(Q)$(CC) $(FINAL_CFLAGS) -c -o $@ $<

# The version string is compiled into one object (src/buildinfo.c), rebuilt
# whenever the version changes; the stamp is rewritten only then.
VERSION_STAMP := $(BUILDDIR)/gen/version.txt
$(VERSION_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' >$@
$(BUILDDIR)/obj/buildinfo.o: $(VERSION_STAMP)
$(BUILDDIR)/obj/buildinfo.o: FINAL_CFLAGS += -DSHOAL_VERSION='"$(VERSION)"'
FORCE:

$(BUILDDIR)/gen/%.pb-c.c $(BUILDDIR)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(dir $@)
	$(call quiet,PROTOC,$<)
	$(Q)protoc-c --proto_path=proto --c_out=$(BUILDDIR)/gen $<

# Generated code is not held to our warning flags.
$(BUILDDIR)/gen/%.pb-c.o: $(BUILDDIR)/gen/%.pb-c.c
	$(call quiet,CC,$@)
	$(Q)$(CC) -std=c11 $(PKG_CFLAGS) $(CFLAGS) -I$(BUILDDIR)/gen -c -o $@ $<

$(BUILDDIR)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(call quiet,CC,$@)
	$(Q)$(CC) $(FINAL_CFLAGS) -Itests/unit $(FINAL_LDFLAGS) -o $@ $< $(LIB) \
		$(TEST_LIBS) $(FINAL_LIBS)

unit: $(UNIT_BINS)
	$(Q)SHOAL_BUILDDIR=$(BUILDDIR) tests/unit/run.sh $(UNIT_BINS)

integration: $(BUILDDIR)/shoal
	$(Q)SHOAL=$(abspath $(BUILDDIR)/shoal) tests/integration/run.sh

test: unit integration interop
check: test

# The sanitizer flavour builds into its own directory and runs everything.
# Interop scenarios skip (exit 77) when syncthing is not installed.
check-asan:
	$(Q)$(MAKE) --no-print-directory BUILDDIR=build/asan \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
		LDFLAGS="-fsanitize=address,undefined" \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		SHOAL_TEST_TIMEOUT_MULT=3 test

interop: $(BUILDDIR)/shoal $(BUILDDIR)/tests/test_tls
	$(Q)SHOAL=$(abspath $(BUILDDIR)/shoal) tests/interop/run.sh

check-headers:
	$(Q)set -e; for h in include/shoal/*.h; do \
		printf '#include "shoal/%s"\n' $$(basename $$h) | \
		$(CC) $(FINAL_CFLAGS) -x c -fsyntax-only -MF /dev/null - ; \
		echo "  OK     $$h"; done

# Fuzz targets: clang + libFuzzer + ASan, library objects built alongside.
FUZZ_CFLAGS := -O1 -g -fsanitize=fuzzer-no-link,address,undefined
fuzz-build:
	$(Q)$(MAKE) --no-print-directory BUILDDIR=build/fuzz CC=$(CLANG) \
		CFLAGS="$(FUZZ_CFLAGS)" build/fuzz/libshoal.a
	$(Q)set -e; mkdir -p build/fuzz/fuzz; for f in $(FUZZ_SRCS); do \
		n=$$(basename $$f .c); echo "  FUZZ   $$n"; \
		$(CLANG) -std=c11 -D_GNU_SOURCE -Iinclude -Ibuild/fuzz/gen $(PKG_CFLAGS) \
		-O1 -g -fsanitize=fuzzer,address,undefined -o build/fuzz/fuzz/$$n $$f \
		build/fuzz/libshoal.a $(FINAL_LIBS); done

# Replay each seed corpus, then fuzz each target for FUZZ_TIME seconds.
fuzz: fuzz-build
	$(Q)set -e; for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
		c=tests/fuzz/corpus/$$n; mkdir -p build/fuzz/work/$$n; \
		d=; [ -f tests/fuzz/$$n.dict ] && d=-dict=tests/fuzz/$$n.dict; \
		echo "  RUN    $$n ($(FUZZ_TIME) s)"; \
		build/fuzz/fuzz/$$n $$d -max_total_time=$(FUZZ_TIME) \
		-print_final_stats=0 build/fuzz/work/$$n $$c 2>build/fuzz/work/$$n.log \
		|| { tail -50 build/fuzz/work/$$n.log; exit 1; }; done

bench: $(BUILDDIR)/shoal
	$(Q)SHOAL=$(abspath $(BUILDDIR)/shoal) tests/bench/scan
	$(Q)SHOAL=$(abspath $(BUILDDIR)/shoal) tests/bench/sync

analyze:
	$(Q)scan-build --status-bugs $(MAKE) --no-print-directory BUILDDIR=build/analyze

lint:
	$(Q)scripts/checksrc src/*.c include/shoal/*.h

install: $(BUILDDIR)/shoal
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 0755 $(BUILDDIR)/shoal $(DESTDIR)$(BINDIR)/shoal
	install -m 0644 docs/shoal.1 $(DESTDIR)$(MANDIR)/man1/shoal.1
	sed 's|@BINDIR@|$(BINDIR)|g' packaging/shoal.service > $(DESTDIR)$(SYSTEMDUNITDIR)/shoal.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/shoal.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/shoal $(DESTDIR)$(MANDIR)/man1/shoal.1 \
		$(DESTDIR)$(SYSTEMDUNITDIR)/shoal.service

clean:
	rm -rf build

-include $(OBJS:.o=.d)
