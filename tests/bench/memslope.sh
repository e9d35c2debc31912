#!/bin/bash
# tests/bench/memslope.sh - memory per active transfer, per backend.
#
#   bash tests/bench/memslope.sh          (after make and make build/tftpload)
#
# For each backend (file; http from nginx; s3 from s3rver, as
# tests/integration/s3.sh starts it; cache in front of that nginx, warmed so
# every measured RRQ is a hit) a fresh gateway serves LOW and then HIGH
# concurrent RRQs of one file (windowsize 16, blksize 1468, build/tftpload,
# every byte checked). Before each run VmHWM is reset to VmRSS (clear_refs 5),
# after it the peak is read; the line per backend gives
#   KiB per transfer = (hwm_HIGH - hwm_LOW) / (HIGH - LOW).
# The constant part of the process (code, allocator arenas, connections
# kept) cancels out. RSS is not timing: a busy machine changes the
# numbers little, but repeat (REPS) and look at the spread.
#
# Environment: BACKENDS ("file http s3 cache"), REPS (3), LOW (10),
# HIGH (40), SIZE_MIB (4), WINDOWSIZE (16), BLKSIZE (1468), TFTPGW_BIN,
# TFTPLOAD (build/tftpload), KEEP=1. s3 is left out (with a note) when
# node, npm or awscli is missing.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/../integration" && pwd)
. "$HERE/lib.sh"
HTTP_SH_LIB_ONLY=1
. "$HERE/http.sh"
. "$HERE/s3.sh"

BACKENDS=${BACKENDS:-file http s3 cache}
REPS=${REPS:-3}
LOW=${LOW:-10}
HIGH=${HIGH:-40}
SIZE_MIB=${SIZE_MIB:-4}
WINDOWSIZE=${WINDOWSIZE:-16}
BLKSIZE=${BLKSIZE:-1468}
TFTPLOAD=${TFTPLOAD:-$REPO/build/tftpload}

die() { echo "memslope: $*" >&2; exit 1; }
[ -x "$GW" ] || die "no gateway binary at $GW (run make first)"
[ -x "$TFTPLOAD" ] || die "no load generator at $TFTPLOAD (make build/tftpload)"
command -v nginx > /dev/null || die "nginx not installed (make deps)"
lib_init
T=$WORK/t
FIX=$WORK/fix
ROOT=$WORK/root
mkdir -p "$T" "$FIX" "$ROOT"
chmod 755 "$ROOT"
trap 'gw_stop > /dev/null 2>&1; peers_stop; [ -n "$S3_PID" ] && s3_down; lib_cleanup' EXIT
ALLOW_ROOT=(); [ "$(id -u)" = 0 ] && ALLOW_ROOT=(--allow-root)

head -c $((SIZE_MIB << 20)) /dev/urandom > "$ROOT/m.bin"
chmod 644 "$ROOT/m.bin"
nginx_up || die "nginx: $REASON"
ln "$ROOT/m.bin" "$NGX_ROOT/m.bin"
S3_OK=0
# s3_up makes the s3 tests' large fixtures unless they seem made: not needed here
: > "$FIX/f50M"
if [[ " $BACKENDS " == *" s3 "* ]]; then
    if s3_up && s3_put_obj "$ROOT/m.bin" m.bin; then S3_OK=1
    else echo "memslope: s3 left out: $REASON"; fi
fi

gw_ini() {   # gw_ini FILE PORT KIND
    {
        echo "[server]"
        echo "listen = 127.0.0.1:$2"
        echo "max_blksize = 65464"
        echo "max_windowsize = 64"
        echo "max_sessions = 2000"
        echo "log_level = warn"
        echo
        case $3 in
            file) printf '[backend b]\ntype = file\nroot = %s\n' "$ROOT" ;;
            http) printf '[backend b]\ntype = http\nurl = %s\n' "$(ngx_url)" ;;
            s3) s3_backend b ;;
            cache)
                printf '[backend up]\ntype = http\nurl = %s\n\n' "$(ngx_url)"
                printf '[backend b]\ntype = cache\nupstream = up\ndir = %s\nttl = 86400\n' \
                    "$WORK/cache-$RANDOM" ;;
        esac
        printf '\n[route all]\nmatch =\nbackend = b\n'
    } > "$1"
}

kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# load N: N concurrent RRQs of m.bin, all checked; prints the peak RSS in KiB
load() {
    local out
    echo 5 > "/proc/$GW_PID/clear_refs"
    out=$(timeout 300 "$TFTPLOAD" --server 127.0.0.1 --port "$PORT" --file m.bin \
        --expect "$ROOT/m.bin" --blksize "$BLKSIZE" --windowsize "$WINDOWSIZE" \
        --count "$1" --concurrency "$1" --duration-limit 240 2>> "$T/load.err" |
        grep 'transfers_ok=' | tail -n 1)
    [[ $out == *"transfers_ok=$1 "* ]] || { echo "memslope: $1 RRQs: ${out:-no result}" >&2; return 1; }
    kib "$GW_PID" VmHWM
}

echo "memslope: $LOW and $HIGH concurrent RRQs of a $SIZE_MIB MiB file, windowsize $WINDOWSIZE," \
    "blksize $BLKSIZE ($GW)"
for rep in $(seq 1 "$REPS"); do
    for kind in $BACKENDS; do
        [ "$kind" = s3 ] && [ "$S3_OK" = 0 ] && continue
        GW_LOG=$T/gw-$kind-$rep.log
        PORT=$(free_port)
        gw_ini "$T/gw.ini" "$PORT" "$kind"
        [ "$kind" = s3 ] && chmod 600 "$T/gw.ini"
        start_gateway "$GW" --config "$T/gw.ini" "${ALLOW_ROOT[@]}" || die "$kind: $REASON"
        # warm-up: connections, allocator arenas; the cache stores the file
        load 1 > /dev/null || die "$kind: warm-up failed"
        [ "$kind" = cache ] && { sleep 0.5; load 1 > /dev/null || die "cache: second warm-up"; }
        idle=$(kib "$GW_PID" VmRSS)
        h1=$(load "$LOW") || die "$kind: $LOW RRQs failed"
        h2=$(load "$HIGH") || die "$kind: $HIGH RRQs failed"
        gw_stop || die "$kind: $REASON"
        awk -v k="$kind" -v r="$rep" -v i="$idle" -v a="$h1" -v b="$h2" -v lo="$LOW" -v hi="$HIGH" \
            'BEGIN { printf "memslope: rep %d %-5s idle %6d KiB  hwm%d %6d  hwm%d %6d  %6.1f KiB per transfer\n",
                     r, k, i, lo, a, hi, b, (b - a) / (hi - lo) }'
    done
done
