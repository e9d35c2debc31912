#!/bin/bash
# tests/integration/run.sh - tftpgw against real TFTP clients on loopback.
#
#   bash tests/integration/run.sh [NAME-SUBSTRING...]
#
# Each test starts its own gateway (./tftpgw, or $TFTPGW_BIN) on a free port
# with a fresh root in a temporary directory, runs clients under `timeout`,
# compares sha256 sums, TFTP error codes and what was stored, and prints
# PASS/FAIL/SKIP lines and a summary. See lib.sh for the environment knobs.
# Stored uploads are checked as soon as the client returns: the gateway
# sends the final ACK only after the backend committed the file.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

FILTER=("$@")
lib_init

if [ -z "$PEER" ] && [ ! -x "$GW" ]; then
    echo "FAIL setup: no gateway binary at $GW (run make first)"
    echo "0 passed, 1 failed"
    exit 1
fi
for tool in tftp atftp curl busybox; do
    command -v "$tool" > /dev/null ||
        { echo "FAIL setup: $tool not installed (make deps)"; echo "0 passed, 1 failed"; exit 1; }
done
make_fixtures

# ------------------------------------------------------------ start-up, CLI

t_start_stop() {
    if [ -z "$PEER" ]; then
        local v
        v=$(timeout 5 "$GW" --version 2>&1) || { fail "--version exited $?: $v"; return 1; }
        [ -n "$v" ] || { fail "--version printed nothing"; return 1; }
    fi
    gw_up || return 1
    sleep 0.2
    gw_stop || return 1
    udp_bound "$PORT" && { fail "port $PORT still bound after the gateway exited"; return 1; }
    return 0
}

t_cli_root() {
    gw_cli --root "$ROOT"; local rc=$?
    [ $rc -eq 0 ] || return $rc
    hpa octet get f4404 "$T/out" || return 1
    same_file "$T/out" "$FIX/f4404" "get in --root mode" || return 1
    hpa_expect 2 octet put "$FIX/f1" rw/new || return 1
    [ -e "$ROOT/rw/new" ] && { fail "read-only --root created rw/new"; return 1; }
    gw_stop || return 1
    gw_cli --root "$ROOT" --write create || return 1
    hpa octet put "$FIX/f513" rw/new || return 1
    same_file "$ROOT/rw/new" "$FIX/f513" "put with --write create" || return 1
    hpa_expect 6 octet put "$FIX/f1" rw/new || return 1
    same_file "$ROOT/rw/new" "$FIX/f513" "rw/new after refused overwrite" || return 1
    gw_stop || return 1
    gw_cli --root "$ROOT" --write overwrite -v || return 1
    hpa octet put "$FIX/f1" rw/new || return 1
    same_file "$ROOT/rw/new" "$FIX/f1" "put with --write overwrite"
}

# ------------------------------------------------------------ tftp-hpa

SIZES=(f0 f1 f511 f512 f513 f4404 f50k f5M)

t_hpa_get_octet() {
    gw_up || return 1
    local f
    for f in "${SIZES[@]}"; do
        hpa octet get "$f" "$T/$f" || return 1
        same_file "$T/$f" "$FIX/$f" "tftp-hpa get $f" || return 1
        transfer_logged "$(stat -c %s "$FIX/$f")" || return 1
    done
}

t_hpa_put_octet() {
    gw_up || return 1
    local f
    for f in "${SIZES[@]}"; do
        hpa octet put "$FIX/$f" "rw/$f" || return 1
        same_file "$ROOT/rw/$f" "$FIX/$f" "tftp-hpa put $f (stored)" || return 1
    done
    # an upload is logged after the gateway's dally, so check them all at the end
    for f in "${SIZES[@]}"; do
        transfer_logged "$(stat -c %s "$FIX/$f")" || return 1
    done
}

t_hpa_netascii() {
    gw_up || return 1
    local f
    for f in text.txt text2.txt; do
        hpa netascii put "$FIX/$f" "rw/$f" || return 1
        same_file "$ROOT/rw/$f" "$FIX/$f" "netascii put $f, stored file" || return 1
        hpa octet get "rw/$f" "$T/oct-$f" || return 1
        same_file "$T/oct-$f" "$FIX/$f" "netascii put $f, fetched in octet" || return 1
        hpa netascii get "rw/$f" "$T/back-$f" || return 1
        same_file "$T/back-$f" "$FIX/$f" "netascii put then netascii get $f" || return 1
        hpa netascii get "$f" "$T/na-$f" || return 1
        same_file "$T/na-$f" "$FIX/$f" "netascii get $f" || return 1
    done
}

t_hpa_errors() {
    gw_up || return 1
    hpa_expect 1 octet get nope "$T/x" || return 1
    hpa_expect 2 octet get ../etc/passwd "$T/x" || return 1
    hpa_expect 2 octet get up/../../../etc/passwd "$T/x" || return 1
    hpa_expect 2 octet put "$FIX/f1" f1 || return 1
    hpa_expect 2 octet put "$FIX/f1" newfile || return 1
    hpa_expect 6 octet put "$FIX/f1" up/existing || return 1
    hpa_expect 3 octet put "$FIX/f2M" up/big || return 1
    same_file "$ROOT/f1" "$FIX/f1" "f1 after refused put" || return 1
    [ -e "$ROOT/newfile" ] && { fail "refused put created newfile"; return 1; }
    sleep 0.3
    [ -e "$ROOT/up/big" ] && { fail "oversize put left up/big ($(stat -c %s "$ROOT/up/big") bytes)"; return 1; }
    local extra
    extra=$(find "$ROOT/up" -mindepth 1 ! -name existing -printf '%P ')
    [ -z "$extra" ] || { fail "files left in up/: $extra"; return 1; }
    failure_logged up/big
}

# ------------------------------------------------------------ curl

t_curl_get() {
    local bs=$1 f=f5M
    [ "$bs" = 8 ] && f=f50k
    gw_up || return 1
    curl_get "$f" "$T/out" --tftp-blksize "$bs" || return 1
    same_file "$T/out" "$FIX/$f" "curl get $f blksize $bs" || return 1
    transfer_logged "$(stat -c %s "$FIX/$f")"
}

# small and boundary sizes, including the empty file (curl sends tsize=0
# and rejects an OACK with "tsize 0")
t_curl_edges() {
    gw_up || return 1
    local f bs
    for bs in 512 1468; do
        for f in f0 f1 f511 f512 f513 f4404; do
            curl_get "$f" "$T/$f-$bs" --tftp-blksize "$bs" || return 1
            same_file "$T/$f-$bs" "$FIX/$f" "curl get $f blksize $bs" || return 1
        done
    done
    for f in f0 f512 f4404; do
        curl_put "$FIX/$f" "rw/$f" --tftp-blksize 1468 || return 1
        same_file "$ROOT/rw/$f" "$FIX/$f" "curl put $f" || return 1
    done
}

t_curl_put() {
    local bs=$1 f=f5M
    [ "$bs" = 8 ] && f=f50k
    gw_up || return 1
    curl_put "$FIX/$f" "rw/curl$bs" --tftp-blksize "$bs" || return 1
    same_file "$ROOT/rw/curl$bs" "$FIX/$f" "curl put $f blksize $bs" || return 1
    transfer_logged "$(stat -c %s "$FIX/$f")"
}

t_curl_errors() {
    gw_up || return 1
    curl_expect 1 get nope "$T/x" || return 1
    curl_expect 1 get nodir/nope "$T/x" || return 1
    curl_expect 2 put "$FIX/f1" f1 || return 1
    curl_expect 6 put "$FIX/f1" up/existing || return 1
    curl_expect 3 put "$FIX/f2M" up/big || return 1      # curl sends tsize: refused up front
    sleep 0.2
    [ -e "$ROOT/up/big" ] && { fail "oversize put left up/big"; return 1; }
    same_file "$ROOT/f1" "$FIX/f1" "f1 after refused put"
}

t_curl_rollover() {
    gw_up || return 1
    ln "$FIX/f40M" "$ROOT/f40M"
    curl_get f40M "$T/out" --tftp-blksize 512 || return 1
    same_file "$T/out" "$FIX/f40M" "curl get 40 MiB at blksize 512 (81920 blocks, wraps)" || return 1
    transfer_logged $((40 << 20))
}

# ------------------------------------------------------------ atftp

# atftp_run get|put REMOTE LOCAL WINDOWSIZE: with blksize 1468, tsize, windowsize;
# the trace shows the OACK, which must carry all three.
atftp_run() {
    local op=$1 r=$2 l=$3 ws=$4 flag=-g
    [ "$op" = put ] && flag=-p
    timeout 60 atftp --trace --option "blksize 1468" --option "tsize 0" \
        --option "windowsize $ws" $flag -r "$r" -l "$l" "$HOST" "$PORT" > "$T/atftp.trace" 2>&1
    local rc=$?
    if [ $rc -ne 0 ]; then
        fail "atftp $op $r windowsize $ws: exit $rc: $(grep -iE 'error|abort|timeout' "$T/atftp.trace" | head -n 3 | tr '\n' ' ')"
        return 1
    fi
    local oack size
    oack=$(grep -m1 'received OACK' "$T/atftp.trace")
    size=$(stat -c %s "$FIX/f5M")
    [ -n "$PEER" ] && return 0
    [[ $oack == *"blksize: 1468"* && $oack == *"windowsize: $ws"* && $oack == *"tsize: $size"* ]] ||
        { fail "atftp $op windowsize $ws: OACK was '$oack'"; return 1; }
}

t_atftp_get() {
    gw_up || return 1
    atftp_run get f5M "$T/out" "$1" || return 1
    same_file "$T/out" "$FIX/f5M" "atftp get f5M windowsize $1" || return 1
    transfer_logged $((5 << 20))
}

t_atftp_put() {
    gw_up || return 1
    atftp_run put "rw/atftp$1" "$FIX/f5M" "$1" || return 1
    same_file "$ROOT/rw/atftp$1" "$FIX/f5M" "atftp put f5M windowsize $1" || return 1
    transfer_logged $((5 << 20))
}

# ------------------------------------------------------------ busybox

bb() {
    local out rc
    out=$(timeout 60 busybox tftp "$@" -b 1468 "$HOST" "$PORT" 2>&1)
    rc=$?
    [ $rc -eq 0 ] || { fail "busybox tftp $*: exit $rc: $out"; return 1; }
}

t_busybox() {
    gw_up || return 1
    local f
    for f in f0 f513 f4404 f5M; do
        bb -g -r "$f" -l "$T/$f" || return 1
        same_file "$T/$f" "$FIX/$f" "busybox get $f" || return 1
        bb -p -l "$FIX/$f" -r "rw/bb-$f" || return 1
        same_file "$ROOT/rw/bb-$f" "$FIX/$f" "busybox put $f" || return 1
    done
    local out
    out=$(timeout 30 busybox tftp -g -r nope -l "$T/nope" -b 1468 "$HOST" "$PORT" 2>&1)
    [[ $out == *"(1)"* ]] || { fail "busybox get of a missing file: '$out', want error (1)"; return 1; }
}

# ------------------------------------------------------------ protocol (raw client)

t_raw() {
    local name=$1; shift
    gw_up "$@" || return 1
    raw "$name"
}

# ------------------------------------------------------------ robustness

t_killed_upload() {
    gw_up timeout=200 retries=3 || return 1
    local before after pid i
    before=$(cd "$ROOT" && find . -print | sort)
    # not under `timeout`: the pid must be the client itself (it is killed
    # after 1 s; a 5 MiB upload at 2 ms per block would take 20 s)
    "$PY" "$HERE/tftpraw.py" put "$HOST" "$PORT" "$FIX/f5M" rw/killed \
        --block-delay 0.002 > "$T/client.out" 2>&1 &
    pid=$!
    track "$pid"
    sleep 1
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid"; untrack "$pid"
        fail "the slow upload ended before it was killed: $(cat "$T/client.out")"
        return 1
    fi
    if [ -e "$ROOT/rw/killed" ] && [ -z "$PEER" ]; then
        kill -KILL "$pid"; wait "$pid" 2>/dev/null; untrack "$pid"
        fail "partial upload visible as rw/killed ($(stat -c %s "$ROOT/rw/killed") bytes) before commit"
        return 1
    fi
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    untrack "$pid"
    # the session gives up after timeout*(1+2+4+8) ms at most with backoff;
    # wait for its summary line (up to 8 s)
    failure_logged rw/killed || return 1
    [ -n "$PEER" ] && sleep 5
    sleep 0.3
    after=$(cd "$ROOT" && find . -print | sort)
    if [ "$before" != "$after" ]; then
        fail "root changed after the killed upload: $(diff <(echo "$before") <(echo "$after") | grep '^>' | head -n 5 | tr '\n' ' ')"
        return 1
    fi
    hpa octet put "$FIX/f513" rw/afterwards || return 1
    same_file "$ROOT/rw/afterwards" "$FIX/f513" "upload after the killed one"
}

t_concurrent() {
    gw_up || return 1
    local pids=() i bs rc=0
    for i in 1 2 3 4 5 6; do
        case $i in 1|2) bs=512 ;; 3|4) bs=1468 ;; *) bs=65464 ;; esac
        timeout 60 curl -sS --connect-timeout 2 --max-time 55 --tftp-blksize $bs -o "$T/c$i" "$(curl_url f5M)" \
            > "$T/c$i.err" 2>&1 &
        pids+=($!); track $!
    done
    for i in 1 2 3 4; do
        timeout 60 tftp -m octet "$HOST" "$PORT" -c put "$FIX/f5M" "rw/par$i" > "$T/p$i.err" 2>&1 &
        pids+=($!); track $!
    done
    for i in "${pids[@]}"; do
        wait "$i" || rc=1
        untrack "$i"
    done
    [ $rc -eq 0 ] || { fail "a parallel client failed: $(cat "$T"/*.err | head -n 3 | tr '\n' ' ')"; return 1; }
    for i in 1 2 3 4 5 6; do
        same_file "$T/c$i" "$FIX/f5M" "parallel curl get $i" || return 1
    done
    for i in 1 2 3 4; do
        [ -s "$T/p$i.err" ] && { fail "parallel tftp put $i: $(cat "$T/p$i.err")"; return 1; }
        same_file "$ROOT/rw/par$i" "$FIX/f5M" "parallel tftp-hpa put $i" || return 1
    done
    [ -n "$PEER" ] && return 0
    local n
    for i in $(seq 1 60); do
        n=$(grep -c 'result=ok' "$GW_LOG")
        [ "$n" -ge 10 ] && return 0
        sleep 0.1
    done
    fail "only $n result=ok lines for 10 transfers"
}

t_ipv6() {
    have_ipv6 || { REASON="::1 is not available on this host"; return 77; }
    gw_up host=::1 || return 1
    curl_get f5M "$T/out" --tftp-blksize 1448 || return 1
    same_file "$T/out" "$FIX/f5M" "curl get over [::1]" || return 1
    raw ipv6
}

# ------------------------------------------------------------ lossy path

# lossy get|put WINDOWSIZE BLKSIZE FILE SEED
t_lossy() {
    local op=$1 ws=$2 bs=$3 f=$4 seed=$5 out rc port
    gw_up timeout=150 retries=8 || return 1
    "$PY" "$HERE/relay.py" --target "$HOST:$PORT" --drop 0.10 --dup 0.05 --reorder 0.05 \
        --seed "$seed" --stats "$T/relay.json" > "$T/relay.out" 2> "$T/relay.err" &
    local rpid=$!
    track $rpid
    for _ in $(seq 1 50); do
        port=$(awk '/^PORT/ {print $2}' "$T/relay.out")
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { fail "relay did not start: $(cat "$T/relay.err")"; return 1; }
    local opts=(-o "blksize=$bs")
    [ "$ws" -gt 1 ] && opts+=(-o "windowsize=$ws")
    if [ "$op" = get ]; then
        out=$(timeout 60 "$PY" "$HERE/tftpraw.py" get "$HOST" "$port" "$f" "$T/out" "${opts[@]}" \
            --timeout 0.3 --retries 12 --dally 1.0 2>&1)
    else
        out=$(timeout 60 "$PY" "$HERE/tftpraw.py" put "$HOST" "$port" "$FIX/$f" "rw/lossy" "${opts[@]}" \
            --timeout 0.3 --retries 12 2>&1)
    fi
    rc=$?
    kill -TERM $rpid; wait $rpid 2>/dev/null; untrack $rpid
    local stats
    stats=$(cat "$T/relay.json" 2>/dev/null)
    [ $rc -eq 0 ] || { fail "raw $op windowsize $ws via relay: exit $rc: $out; relay $stats"; return 1; }
    if [ "$op" = get ]; then
        same_file "$T/out" "$FIX/$f" "lossy get windowsize $ws" || return 1
    else
        same_file "$ROOT/rw/lossy" "$FIX/$f" "lossy put windowsize $ws" || return 1
    fi
    # the relay really dropped packets both ways
    "$PY" -c 'import json,sys; s = json.load(open(sys.argv[1]))
sys.exit(0 if s["c2s"]["dropped"] > 0 and s["s2c"]["dropped"] > 0 else 1)' "$T/relay.json" ||
        { fail "relay dropped nothing in one direction: $stats"; return 1; }
    [[ $out == *"windowsize=$ws "* ]] || { fail "negotiated other than windowsize $ws: $out"; return 1; }
}

# ------------------------------------------------------------ the list

if [ -n "$PEER" ]; then
    # rules tftpd-hpa does not follow (routes, size caps, windowsize, ...)
    gw_only() { REASON="gateway-specific"; return 77; }
else
    gw_only() { "$@"; }
fi

run_test start_stop          t_start_stop
run_test cli_root            t_cli_root
run_test hpa_get_octet       t_hpa_get_octet
run_test hpa_put_octet       t_hpa_put_octet
run_test hpa_netascii        t_hpa_netascii
run_test hpa_errors          gw_only t_hpa_errors
for bs in 8 512 1468 65464; do
    run_test "curl_get_blksize_$bs" t_curl_get "$bs"
    run_test "curl_put_blksize_$bs" t_curl_put "$bs"
done
run_test curl_edges          t_curl_edges
run_test curl_errors         gw_only t_curl_errors
run_test curl_rollover_40M   t_curl_rollover
for ws in 1 8 16 64; do
    run_test "atftp_get_ws$ws" t_atftp_get "$ws"
    run_test "atftp_put_ws$ws" t_atftp_put "$ws"
done
run_test busybox             t_busybox
run_test oack_none           t_raw oack_none
run_test oack_values         t_raw oack_values
run_test oack_caps           gw_only t_raw oack_caps max_blksize=1468 max_windowsize=8
run_test oack_default_caps   gw_only t_raw oack_default_caps
run_test dup_ack_ws1         t_raw dup_ack_ws1 timeout=2000
run_test dup_ack_window      gw_only t_raw dup_ack_window timeout=2000
run_test session_tid         t_raw session_tid
run_test wrq_window_acks     gw_only t_raw wrq_window_acks
run_test timeout_option      t_raw timeout_option timeout=3000
run_test unheard_timeout     gw_only t_raw unheard_timeout timeout=500
run_test retransmit_giveup   t_raw retransmit_giveup timeout=200 retries=3
run_test foreign_tid         t_raw foreign_tid
run_test repeat_rrq          t_raw repeat_rrq
run_test error8_after_oack   gw_only t_raw error8 timeout=200 retries=3
run_test garbage             t_raw garbage
run_test modes               gw_only t_raw modes
run_test traversal           gw_only t_raw traversal
run_test missing             t_raw missing
run_test readonly            gw_only t_raw readonly
run_test max_size            gw_only t_raw max_size
run_test exists              gw_only t_raw exists
run_test netascii_wire       t_raw netascii_wire
run_test killed_upload       t_killed_upload
run_test concurrent          t_concurrent
run_test ipv6                t_ipv6
run_test lossy_get_ws1       t_lossy get 1 1024 f50k 11
run_test lossy_get_ws16      gw_only t_lossy get 16 1024 f200k 12
run_test lossy_put_ws1       t_lossy put 1 1024 f50k 13
run_test lossy_put_ws16      gw_only t_lossy put 16 1024 f200k 14

# the HTTP backend against nginx and badhttp.py
. "$HERE/http.sh"

# the S3 backend against @20minutes/s3rver and awscli
. "$HERE/s3.sh"
run_test s3_get_small          sx t_s3_get_small
run_test s3_get_50M            sx t_s3_get_50M
run_test s3_put_tsize          sx t_s3_put_tsize
run_test s3_put_multipart_30M  sx t_s3_put_multipart_30M
run_test s3_put_notsize_1k     sx t_s3_put_notsize_1k
run_test s3_wrong_secret       sx t_s3_wrong_secret
run_test s3_missing_key        sx t_s3_missing_key
run_test s3_missing_bucket     sx t_s3_missing_bucket
run_test s3_key_chars          sx t_s3_key_chars
run_test s3_prefix             sx t_s3_prefix
run_test s3_create_exists      sx t_s3_create_exists
run_test s3_killed_multipart   sx t_s3_killed_multipart
run_test s3_env_credentials    sx t_s3_env_credentials

# the cache backend in front of nginx and s3rver
. "$HERE/cache.sh"
run_test cache_single_flight   cx t_cache_single_flight
run_test cache_uefi            cx t_cache_uefi
run_test cache_hit             cx t_cache_hit
run_test cache_stale           cx t_cache_stale
run_test cache_changed         cx t_cache_changed
run_test cache_revalidate      cx t_cache_revalidate
run_test cache_eviction        cx t_cache_eviction
run_test cache_restart         cx t_cache_restart
run_test cache_kill9           cx t_cache_kill9
run_test cache_s3              cx t_cache_s3
run_test cache_wrq             cx t_cache_wrq
run_test cache_wrq_during_fill cx t_cache_wrq_during_fill
run_test cache_prefetch        cx t_cache_prefetch

# Further groups, one file each (they define their tests and call run_test).
for group in single_port ops faults hostile matrix metrics sec_core sec_cache sec_upstream sec_limits \
    pxe_negcache pxe_probe pxe_mac pxe_names live remap workers; do
    [ -f "$HERE/$group.sh" ] && . "$HERE/$group.sh"
done

summary
