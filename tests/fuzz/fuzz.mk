# tests/fuzz/fuzz.mk - libFuzzer targets for the pure parsers (included by
# the top Makefile). `make fuzz` runs each target FUZZ_SECONDS (60) in turn,
# `make fuzz-short` the same for 20 s; both fail when any target crashes.
# New corpus entries go to build-fuzz/corpus (a scratch copy of the committed
# seeds), crash inputs to build-fuzz/artifacts, each run's log beside them.
FUZZ_CC ?= clang
FUZZ_DIR ?= build-fuzz
FUZZ_SAN := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS = -g -O1 $(FUZZ_SAN) -std=c11 -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) $(WARN)
# The parsers need only inih (the config); nothing else is linked.
FUZZ_LIBS = $(shell pkg-config --libs inih 2>/dev/null)
# -timeout: one input running this long is a hang, reported as a crash.
FUZZ_FLAGS ?= -timeout=10 -rss_limit_mb=2048 -print_final_stats=1

FUZZ_TARGETS := request packet netascii path config
FUZZ_request := gateway/util gateway/packet gateway/options
FUZZ_packet := gateway/util gateway/packet
FUZZ_netascii := gateway/util gateway/netascii
FUZZ_path := gateway/util gateway/sockaddr gateway/log gateway/packet gateway/options gateway/path \
             gateway/route gateway/config gateway/keys gateway/remap gateway/uri
FUZZ_config := gateway/util gateway/sockaddr gateway/log gateway/packet gateway/options gateway/path \
               gateway/route gateway/config gateway/keys gateway/remap
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

.PHONY: fuzz fuzz-short fuzz-build

$(FUZZ_DIR)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

define fuzz_rule
$(FUZZ_DIR)/fuzz_$(1): tests/fuzz/fuzz_$(1).c $$(FUZZ_$(1):%=$(FUZZ_DIR)/obj/%.o) $(HDRS)
	@mkdir -p $(FUZZ_DIR)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) -o $$@ $$< $$(FUZZ_$(1):%=$(FUZZ_DIR)/obj/%.o) $$(FUZZ_LIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_rule,$(t))))

fuzz-build: $(FUZZ_BINS)

fuzz: FUZZ_SECONDS ?= 60
fuzz-short: FUZZ_SECONDS ?= 12
# One target at a time (the machine has two shared cores); every target runs
# even after a crash, so one report shows them all.
fuzz fuzz-short: $(FUZZ_BINS)
	@mkdir -p $(FUZZ_DIR)/artifacts; fail=""; \
	for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	    cp -n tests/fuzz/corpus/$$t/* $(FUZZ_DIR)/corpus/$$t/ 2>/dev/null || true; \
	    log=$(FUZZ_DIR)/fuzz_$$t.log; \
	    if $(FUZZ_DIR)/fuzz_$$t $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SECONDS) \
	        -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- $(FUZZ_DIR)/corpus/$$t > $$log 2>&1; then \
	        echo "fuzz_$$t: ok, $(FUZZ_SECONDS) s: $$(grep -h 'DONE' $$log | sed 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*//') $$(grep -h 'stat::number_of_executed_units' $$log | sed 's/.*: */runs: /')"; \
	    else \
	        echo "fuzz_$$t: FAILED, see $$log"; \
	        grep -h -m 3 -E 'ERROR:|invariant failed|runtime error|Test unit written' $$log; \
	        fail="$$fail $$t"; \
	    fi; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz: crashes in:$$fail (inputs in $(FUZZ_DIR)/artifacts)"; exit 1; fi; \
	echo "fuzz: $(words $(FUZZ_TARGETS)) targets clean"
