# tests/soak/soak.mk - included by the top Makefile (tests/soak/run.sh and
# soak.py say what runs and what is checked; docs/reliability.md has figures).
# make soak:       3000 mixed transfers, 50 in flight, 8 lossy relays (<= 6 min)
# make soak-short: 400 of them through 2 relays, for CI (<= 90 s)
# Both need nginx (make deps) and write $(BUILD)/soak*/report.json. Extra
# soak.py options: make soak SOAK_ARGS="--seed 7"; a longer soak needs a
# larger bound too: make soak SOAK_ARGS="--count 8000 --budget 480" SOAK_LIMIT=590
.PHONY: soak soak-short

soak: $(BIN) $(BUILD)/tftpload
	@TFTPGW_BIN=$(CURDIR)/$(BIN) TFTPLOAD=$(CURDIR)/$(BUILD)/tftpload SOAK_DIR=$(CURDIR)/$(BUILD)/soak \
	    SOAK_LIMIT=$${SOAK_LIMIT:-380} bash tests/soak/run.sh --count 3000 --budget 280 --relays 8 $(SOAK_ARGS)

soak-short: $(BIN) $(BUILD)/tftpload
	@TFTPGW_BIN=$(CURDIR)/$(BIN) TFTPLOAD=$(CURDIR)/$(BUILD)/tftpload SOAK_DIR=$(CURDIR)/$(BUILD)/soak-short \
	    SOAK_LIMIT=$${SOAK_LIMIT:-110} bash tests/soak/run.sh --count 400 --budget 55 --relays 2 $(SOAK_ARGS)
