#!/bin/bash
# tests/soak/run.sh - the soak: thousands of mixed RRQ/WRQ transfers through
# lossy relays against tftpgw's file and HTTP (nginx) backends, with every
# byte verified; see tests/soak/soak.py for the plan and the invariants.
#
#   bash tests/soak/run.sh [soak.py options]     e.g. --count 400 --budget 70
#
# Environment: TFTPGW_BIN (default ./tftpgw), TFTPLOAD (default
# build/tftpload), SOAK_DIR (default build/soak). Exit status: soak.py's
# (0 when every invariant holds), 124 when the whole run overran its bound.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
GW=${TFTPGW_BIN:-$TOP/tftpgw}
LOAD=${TFTPLOAD:-$TOP/build/tftpload}
DIR=${SOAK_DIR:-$TOP/build/soak}
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi

for f in "$GW" "$LOAD"; do
    [ -x "$f" ] || { echo "soak: $f missing: make tftpgw build/tftpload" >&2; exit 1; }
done
command -v nginx > /dev/null || { echo "soak: nginx missing: make deps" >&2; exit 1; }

# soak.py stops everything it started; the outer bound only catches a hang
# of soak.py itself (--budget plus the slowest job plus the checks).
LIMIT=${SOAK_LIMIT:-420}
timeout -k 10 "$LIMIT" "$PY" "$HERE/soak.py" --gateway "$GW" --tftpload "$LOAD" \
    --workdir "$DIR" "$@"
rc=$?
[ $rc -eq 124 ] && echo "soak: FAILED: still running after $LIMIT s" >&2
exit $rc
