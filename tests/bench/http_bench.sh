#!/bin/bash
# tests/bench/http_bench.sh - throughput and memory of the HTTP backend.
#
#   bash tests/bench/http_bench.sh        (make bench runs the full comparison, tests/bench/run.sh)
#
# Starts nginx and tftpgw (HTTP backend, loopback, free ports), runs N
# concurrent RRQs with curl of one file, checks every checksum, and prints
# the aggregate rate, the gateway's peak RSS (VmHWM) and the RSS per
# transfer in flight ((VmHWM - idle RSS) / N). Exit 1 if a transfer failed or
# a checksum differs.
#
# Environment: N (20 transfers), SIZE_MIB (20), BLKSIZE (1468),
# WINDOWSIZE (1: curl does not ask for one), TFTPGW_BIN, KEEP=1.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/../integration" && pwd)
. "$HERE/lib.sh"
HTTP_SH_LIB_ONLY=1
. "$HERE/http.sh"

N=${N:-20}
SIZE_MIB=${SIZE_MIB:-20}
BLKSIZE=${BLKSIZE:-1468}

die() { echo "http_bench: $*" >&2; NFAIL=1; exit 1; }

[ -x "$GW" ] || die "no gateway binary at $GW (run make first)"
for tool in curl nginx; do
    command -v "$tool" > /dev/null || die "$tool not installed (make deps)"
done
lib_init
FIX=$WORK/fix
T=$WORK/t/bench
mkdir -p "$FIX" "$T"
GW_LOG=$T/gw.log
: > "$GW_LOG"

trap 'gw_stop > /dev/null 2>&1; peers_stop; lib_cleanup' EXIT

head -c $((SIZE_MIB << 20)) /dev/urandom > "$FIX/bench.bin"
WANT=$(sha "$FIX/bench.bin")
nginx_up || die "$REASON"
ln "$FIX/bench.bin" "$NGX_ROOT/bench.bin"
gw_http "$(ngx_url)" log_level=warn || die "$REASON"

status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# one warm-up transfer (connection set-up, allocator arenas), then idle RSS
curl -sS --connect-timeout 2 --max-time 60 --tftp-blksize "$BLKSIZE" -o /dev/null \
    "$(curl_url bench.bin)" || die "warm-up transfer failed"
sleep 0.2
IDLE=$(status_kib "$GW_PID" VmRSS)
TICKS0=$(cpu_ticks "$GW_PID")

t0=$(now_ms)
pids=()
for i in $(seq 1 "$N"); do
    timeout 300 bash -c 'set -o pipefail
        curl -sS --connect-timeout 2 --max-time 290 --tftp-blksize "$2" -o - "$1" | sha256sum | cut -c1-64' \
        _ "$(curl_url bench.bin)" "$BLKSIZE" > "$T/c$i.sha" 2> "$T/c$i.err" &
    pids+=($!)
    track $!
done
rc=0
for p in "${pids[@]}"; do
    wait "$p" || rc=1
    untrack "$p"
done
t1=$(now_ms)
HWM=$(status_kib "$GW_PID" VmHWM)
TICKS1=$(cpu_ticks "$GW_PID")
HZ=$(getconf CLK_TCK)

ok=0
for i in $(seq 1 "$N"); do
    [ "$(cat "$T/c$i.sha")" = "$WANT" ] && ok=$((ok + 1))
done
ms=$((t1 - t0))
[ "$ms" -gt 0 ] || ms=1
awk -v n="$N" -v mib="$SIZE_MIB" -v ms="$ms" -v bs="$BLKSIZE" -v idle="$IDLE" -v hwm="$HWM" \
    -v cpu=$((TICKS1 - TICKS0)) -v hz="$HZ" -v ok="$ok" 'BEGIN {
    bytes = n * mib * 1048576
    printf "http_bench: %d concurrent RRQs (curl, blksize %d) of a %d MiB file from nginx\n", n, bs, mib
    printf "  checksums:  %d/%d ok\n", ok, n
    printf "  time:       %.2f s, %.1f MB/s aggregate (%.1f MiB/s)\n", ms / 1000, bytes / 1e6 / (ms / 1000), bytes / 1048576 / (ms / 1000)
    printf "  gateway:    idle RSS %.1f MiB, peak RSS (VmHWM) %.1f MiB, %.0f KiB per transfer in flight\n", idle / 1024, hwm / 1024, (hwm - idle) / n
    printf "  gateway CPU: %.2f s (%.0f%% of one core)\n", cpu / hz, 100 * cpu / hz / (ms / 1000)
}'
if [ $rc -ne 0 ] || [ "$ok" -ne "$N" ]; then
    echo "http_bench: $((N - ok)) transfers failed or had a wrong checksum: $(cat "$T"/c*.err | sort | uniq -c | head -n 3 | tr '\n' ' ')"
    NFAIL=1
    exit 1
fi
gw_stop || { echo "http_bench: $REASON"; NFAIL=1; exit 1; }
exit 0
