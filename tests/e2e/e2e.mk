# tests/e2e/e2e.mk - included by the top Makefile.
# make e2e: QEMU + Debian's iPXE boot a test kernel through tftpgw, with QEMU
# user networking and in a network namespace with a tap device (docs/e2e.md).
# E2E_VARIANTS="user" or "tap" runs one of them. Installs QEMU, ipxe-qemu and
# dnsmasq-base on first use (too large for tests/deps.sh's default set).
E2E_VARIANTS ?=

.PHONY: e2e
e2e: deps tftpgw
	@TFTPGW_BIN=$(CURDIR)/tftpgw bash tests/e2e/run.sh $(E2E_VARIANTS)
