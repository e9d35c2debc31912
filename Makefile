# tftpgw - TFTP gateway. `make run` and `make test` do all set-up on Debian 12.
PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
PKGS := libuv libcurl inih
BUILD ?= build
BIN ?= tftpgw
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -Iinclude $(PKG_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS = $(PKG_LIBS) $(EXTRA_LDFLAGS)

CORE := gateway/util gateway/sockaddr gateway/neigh gateway/neighwait gateway/log gateway/packet gateway/options gateway/netascii \
        gateway/path gateway/window gateway/route gateway/config gateway/keys gateway/remap gateway/backend \
        gateway/engine gateway/registry gateway/transport gateway/sendq gateway/liveview gateway/session gateway/listener gateway/server gateway/shared gateway/heldmap gateway/workers gateway/remote gateway/uri gateway/curl_uv \
        gateway/json gateway/live gateway/live_page gateway/metrics gateway/ratelimit gateway/sha256 gateway/cachectl gateway/localfs backends/file backends/file_write backends/http_engine backends/http_transport backends/http_hold backends/hold_table backends/http backends/s3 backends/s3_call backends/s3_multipart backends/cache backends/cache_fill backends/cache_read backends/cache_neg
OBJS := $(CORE:%=$(BUILD)/obj/%.o)
HDRS := $(wildcard include/tftpgw/*.h) $(wildcard gateway/*.h) $(wildcard backends/*.h)

# Unit tests: each lists the modules it links (built with -DUNIT_TESTING).
UNIT_TESTS := packet options netascii path window route config keys file_backend uri http_config s3 cache metrics ratelimit sha256 curl_cap engine neigh cachectl hold_table json sendq remap shared heldmap
UT_packet := gateway/util gateway/packet
UT_options := gateway/util gateway/packet gateway/options
UT_netascii := gateway/util gateway/netascii
UT_path := gateway/util gateway/path
UT_remap := gateway/util gateway/remap
UT_window := gateway/util gateway/packet gateway/window
UT_route := gateway/util gateway/sockaddr gateway/path gateway/route
UT_config := gateway/util gateway/sockaddr gateway/log gateway/packet gateway/options gateway/path gateway/route gateway/config gateway/keys gateway/remap
UT_keys = $(UT_config)
UT_uri := gateway/util gateway/uri
UT_metrics := gateway/util gateway/sockaddr gateway/log gateway/json gateway/live_page gateway/metrics
UT_ratelimit := gateway/util gateway/ratelimit
UT_neigh := gateway/util gateway/ratelimit gateway/neigh
UT_sha256 := gateway/sha256
UT_cachectl := gateway/util gateway/cachectl
UT_curl_cap := gateway/util gateway/log gateway/curl_uv
UT_hold_table := gateway/util backends/hold_table
UT_json := gateway/util gateway/json
UT_sendq := gateway/util gateway/sendq
UT_shared := gateway/util gateway/shared
UT_heldmap := gateway/util gateway/ratelimit gateway/heldmap
UT_engine := gateway/util gateway/packet gateway/window gateway/netascii gateway/engine
# Linked without libuv, libcurl or inih: the engine needs none of them.
UT_NOLIBS := engine
UT_http_config = $(UT_file_backend)
UT_s3 = $(UT_file_backend)
UT_cache = $(UT_file_backend)
UT_file_backend := gateway/util gateway/sockaddr gateway/log gateway/packet gateway/options gateway/path gateway/route gateway/config gateway/keys gateway/remap gateway/backend gateway/uri gateway/curl_uv gateway/live_page gateway/json gateway/metrics gateway/sha256 gateway/cachectl gateway/localfs backends/file backends/file_write backends/http_engine backends/http_transport backends/http_hold backends/hold_table backends/http backends/s3 backends/s3_call backends/s3_multipart backends/cache backends/cache_fill backends/cache_read backends/cache_neg

.PHONY: all deps run test unit integration install clean test-asan test-valgrind test-valgrind-integration bench bench-compare test-topology test-dashboards deb test-deb test-workers

all: $(BIN)

$(BIN): $(OBJS) $(BUILD)/obj/gateway/main.o
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/uobj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DUNIT_TESTING -c -o $@ $<

define unit_rule
$(BUILD)/test_$(1): tests/unit/test_$(1).c $$(UT_$(1):%=$(BUILD)/uobj/%.o) $(HDRS)
	@mkdir -p $(BUILD)
	$$(CC) $$(ALL_CFLAGS) -DUNIT_TESTING -o $$@ $$< $$(UT_$(1):%=$(BUILD)/uobj/%.o) \
	    $(if $(filter $(1),$(UT_NOLIBS)),$$(EXTRA_LDFLAGS),$$(LDLIBS)) $(CMOCKA_LIBS)
endef
$(foreach t,$(UNIT_TESTS),$(eval $(call unit_rule,$(t))))

UNIT_BINS := $(UNIT_TESTS:%=$(BUILD)/test_%)

# Installs what is missing (Debian 12, as root); does nothing when all is there.
deps:
	@sh tests/deps.sh

run: deps tftpgw
	@mkdir -p $(BUILD)/demo
	@printf 'Hello from tftpgw.\n' > $(BUILD)/demo/hello.txt
	@test -f $(BUILD)/demo/random-1M.bin || head -c 1048576 /dev/urandom > $(BUILD)/demo/random-1M.bin
	@echo "tftpgw serving $(BUILD)/demo on 127.0.0.1:6969 (read-only). Try:"
	@echo "  curl -s tftp://127.0.0.1:6969/hello.txt"
	@echo "  curl -s -o /tmp/r.bin --tftp-blksize 1468 tftp://127.0.0.1:6969/random-1M.bin"
	@echo "Ctrl-C stops it."
	./tftpgw --root $(BUILD)/demo --listen 127.0.0.1:6969 $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

unit: $(UNIT_BINS)
	@sh tests/run-unit.sh $(UNIT_BINS)

integration: tftpgw
	@bash tests/integration/run.sh

# TFTP load generator (client side only; shares the packet codec).
$(BUILD)/tftpload: tests/bench/tftpload.c $(BUILD)/obj/gateway/packet.o $(BUILD)/obj/gateway/util.o $(HDRS)
	@mkdir -p $(BUILD)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(filter %.o,$^) $(EXTRA_LDFLAGS)

# tftpgw (file, http, cache backends) against tftpd-hpa, atftpd and dnsmasq;
# writes docs/performance.md and .png. QUICK=1: one short round. The older
# HTTP-only check still runs alone: bash tests/bench/http_bench.sh
bench: deps tftpgw $(BUILD)/tftpload
	@TFTPLOAD=$(CURDIR)/$(BUILD)/tftpload bash tests/bench/run.sh

test: deps
	@$(MAKE) --no-print-directory tftpgw $(UNIT_BINS)
	@sh tests/run-unit.sh $(UNIT_BINS)
	@bash tests/integration/run.sh
	@$(MAKE) --no-print-directory fuzz-short

# With [server] workers = 2: the integration groups that several worker
# loops change (the cache on worker 0, single-port steering, reload, drain,
# limits, floods) and the short soak (about 7 minutes). The whole suite
# runs so with TFTPGW_WORKERS=2 bash tests/integration/run.sh (about 15
# minutes; held-probe tests skip, a probe being per worker).
test-workers: deps
	@$(MAKE) --no-print-directory tftpgw $(BUILD)/tftpload
	@TFTPGW_WORKERS=2 bash tests/integration/run.sh cache_ workers single_port ops_ hostile sec_limits pxe_probe
	@TFTPGW_BIN=$(CURDIR)/$(BIN) TFTPLOAD=$(CURDIR)/$(BUILD)/tftpload SOAK_DIR=$(CURDIR)/$(BUILD)/soak-workers \
	    SOAK_LIMIT=110 bash tests/soak/run.sh --count 400 --budget 55 --relays 2 --workers 2

# The whole suite again with ASan+UBSan: unit tests and the gateway under test.
test-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan BIN=build-asan/tftpgw \
	    EXTRA_CFLAGS="$(SAN)" EXTRA_LDFLAGS="$(SAN)" build-asan/tftpgw $(UNIT_TESTS:%=build-asan/test_%)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    sh tests/run-unit.sh $(UNIT_TESTS:%=build-asan/test_%)
	@ASAN_OPTIONS=detect_leaks=1 TFTPGW_BIN=$(CURDIR)/build-asan/tftpgw bash tests/integration/run.sh

# The benchmark with the gateway of commit OLD served alongside (old-file,
# old-http, old-cache, interleaved in every round): docs/performance.md then
# has a table of new/old ratios from the same run.
bench-compare: deps tftpgw $(BUILD)/tftpload
	@test -n "$(OLD)" || { echo "usage: make bench-compare OLD=COMMIT"; exit 2; }
	@rm -rf $(BUILD)/old && mkdir -p $(BUILD)/old && git archive "$(OLD)" | tar -x -C $(BUILD)/old
	@$(MAKE) --no-print-directory -C $(BUILD)/old tftpgw > /dev/null
	@TFTPLOAD=$(CURDIR)/$(BUILD)/tftpload TFTPGW_OLD_BIN=$(CURDIR)/$(BUILD)/old/tftpgw \
	    TFTPGW_OLD_REV=$$(git rev-parse --short "$(OLD)") bash tests/bench/run.sh

# Unit tests under valgrind (memcheck, leaks are errors).
test-valgrind: $(UNIT_BINS)
	@for t in $(UNIT_BINS); do echo "== valgrind $$t"; \
	    valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect $$t > /dev/null || exit 1; done
	@echo "valgrind: all unit tests clean"

# The integration suite with the gateway under valgrind (on request: slow,
# and timing-sensitive tests may need BUDGET or a name filter, e.g.
# make test-valgrind-integration VG_TESTS="hpa curl ops_reload").
test-valgrind-integration: tftpgw
	@TFTPGW_BIN=$(CURDIR)/tests/valgrind-gw.sh TFTPGW_REAL_BIN=$(CURDIR)/tftpgw \
	    bash tests/integration/run.sh $(VG_TESTS)

# Two gateways in single-port mode behind an nftables balancer (jhash DNAT),
# sharing one nginx proxy_cache tier, all in network namespaces; the configs
# are docs/guide-scale-out.md's listings. Needs root; SKIP without netns/nft.
# Not part of `make test`.
test-topology: deps tftpgw
	@TFTPGW_BIN=$(CURDIR)/tftpgw bash tests/topology/run.sh

# The Prometheus rules and the Grafana dashboard (etc/prometheus, etc/grafana)
# against promtool, a real Prometheus scraping a real gateway, and the names
# the gateway serves. Prometheus is Debian's package unpacked into
# $(BUILD)/prometheus on first use, never installed (about 20 s after that).
test-dashboards: deps tftpgw
	@PROM_DIR=$(CURDIR)/$(BUILD)/prometheus bash tests/integration/dashboards.sh

# The Debian package (debian/): build/tftpgw_VERSION_ARCH.deb, then lintian
# on it (errors and warnings fail; debian/tftpgw.lintian-overrides says why
# for each tag it hides). dpkg-buildpackage writes next to the source tree,
# so it builds a copy of the tree (files git knows, committed or not) in
# $(BUILD)/deb. About a minute on two cores.
DEB_VERSION = $(shell sed -n 's/^\#define TG_VERSION "\(.*\)"$$/\1/p' include/tftpgw/common.h)
DEB_SRC = $(BUILD)/deb/tftpgw-$(DEB_VERSION)
deb:
	@sh tests/deps.sh debhelper dpkg-dev fakeroot lintian
	@rm -rf $(BUILD)/deb && mkdir -p $(DEB_SRC)
	@git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C $(DEB_SRC)
	cd $(DEB_SRC) && dpkg-buildpackage -us -uc -b > ../build.log 2>&1 || { tail -40 ../build.log; exit 1; }
	@rm -f $(BUILD)/tftpgw_*.deb && cp $(BUILD)/deb/tftpgw_$(DEB_VERSION)_*.deb $(BUILD)/
	lintian --info --display-info --fail-on error,warning $(BUILD)/deb/tftpgw_$(DEB_VERSION)_*.changes
	@ls $(BUILD)/tftpgw_$(DEB_VERSION)_*.deb

# Installs that package with apt on this machine, checks its files, user and
# conffile, serves a file with the packaged configuration (in a network
# namespace of its own), then purges it and checks nothing is left. Needs
# root. Not part of `make test`.
test-deb: deb
	@bash tests/deb/run.sh

# Fragments owned by their suites: fuzzing (tests/fuzz), the QEMU PXE boot
# (tests/e2e) and the soak (tests/soak).
-include tests/fuzz/fuzz.mk
-include tests/e2e/e2e.mk
-include tests/soak/soak.mk

# Man pages, systemd units (both directories are in man's and systemd's
# search paths for PREFIX /usr and /usr/local), the guides and their configs.
# The unit's ExecStart is written for /usr/local/bin and rewritten for PREFIX.
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system

install: tftpgw
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/tftpgw $(DESTDIR)$(PREFIX)/share/tftpgw \
	    $(DESTDIR)$(PREFIX)/share/tftpgw/guides $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(UNITDIR)
	install -m 0755 tftpgw $(DESTDIR)$(PREFIX)/bin/tftpgw
	install -m 0644 etc/tftpgw.ini $(DESTDIR)$(PREFIX)/share/tftpgw/tftpgw.ini.sample
	install -m 0644 etc/guides/*.ini $(DESTDIR)$(PREFIX)/share/tftpgw/guides/
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/tftpgw/README.md
	install -m 0644 $(wildcard docs/guide-*.md docs/s3.md docs/metrics.md) $(DESTDIR)$(PREFIX)/share/doc/tftpgw/
	install -m 0644 docs/tftpgw.8 $(DESTDIR)$(MANDIR)/man8/tftpgw.8
	install -m 0644 docs/tftpgw.ini.5 $(DESTDIR)$(MANDIR)/man5/tftpgw.ini.5
	sed 's|/usr/local/bin/tftpgw|$(PREFIX)/bin/tftpgw|g' etc/tftpgw.service > $(DESTDIR)$(UNITDIR)/tftpgw.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/tftpgw.service
	install -m 0644 etc/tftpgw.socket $(DESTDIR)$(UNITDIR)/tftpgw.socket

clean:
	rm -rf $(BUILD) tftpgw
