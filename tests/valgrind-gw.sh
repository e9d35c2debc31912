#!/bin/sh
# tests/valgrind-gw.sh - the gateway under valgrind memcheck, for
# `make test-valgrind-integration` (TFTPGW_BIN points here). Exit status 99
# means valgrind found an error or a definite/indirect leak; lib.sh's
# gw_stop fails the test on it. --child-silent-after-fork: the gateway does
# not fork, but the libraries' helpers must not confuse the report.
here=$(cd "$(dirname "$0")/.." && pwd)
exec valgrind -q --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    --child-silent-after-fork=yes "${TFTPGW_REAL_BIN:-$here/tftpgw}" "$@"
