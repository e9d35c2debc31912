# tests/e2e/e2e.mk - included by the top Makefile.
# make e2e: QEMU boots a test kernel through tftpgw (docs/e2e.md): Debian's
# iPXE with QEMU user networking (user) and in a network namespace with a tap
# device (tap), and OVMF's own PXE stack loading GRUB in the same namespace
# (uefi). E2E_VARIANTS="user", "tap" or "uefi" (or any two) runs only those.
# Installs QEMU, ipxe-qemu, dnsmasq-base and ovmf on first use (too large for
# tests/deps.sh's default set); GRUB is unpacked under the run's work
# directory, never installed.
E2E_VARIANTS ?=

.PHONY: e2e
e2e: deps tftpgw
	@TFTPGW_BIN=$(CURDIR)/tftpgw bash tests/e2e/run.sh $(E2E_VARIANTS)
