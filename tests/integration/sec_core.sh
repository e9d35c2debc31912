# tests/integration/sec_core.sh - what a blind, off-path sender can make the
# gateway send, store or hold (docs/security.md); sourced by run.sh (bash),
# which runs the tests named sec_core_*.
#
# blind.py plays the forged victim: a socket on 127.0.0.77 that sends the
# forged packets and then only counts what the gateway sends it. Bounds are
# asserted in bytes at the victim, objects stored or not, and the gateway's
# resident memory after request floods.
#
#   sec_core_reflect_single_port  one forged RRQ plus one blind ACK 0 on the
#                                 shared port: at most 256 KiB reach the victim
#   sec_core_reflect_per_port     RFC 1350's baseline: a plain unanswered RRQ
#                                 gets one DATA and one retransmission
#   sec_core_unsent_ack           an ACK for a block never sent ends the
#                                 transfer with ERROR 4
#   sec_core_single_port_clients  real clients with the capped window
#   sec_core_spoofed_put          a forged WRQ + DATA 1 from an allowed address
#                                 stores nothing unless single_port_writes = yes
#   sec_core_flood_memory         RSS after floods of unanswered big-window RRQs
#   sec_core_client_rate          client_rate paces what one address receives

SEC_BIG="-o blksize=65464 -o windowsize=64 -o tsize=0"

# blind ARGS...: blind.py's JSON on stdout, or a failure
blind() {
    timeout 60 "$PY" "$HERE/blind.py" "$@"
}

# jget JSON EXPR: a value from blind.py's output (EXPR in Python, on d)
jget() {
    "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"
}

# at_most JSON LIMIT WHAT: the victim received no more than LIMIT bytes
at_most() {
    local b
    b=$(jget "$1" 'd["bytes"]') || { fail "$3: no result from blind.py"; return 1; }
    [ "$b" -le "$2" ] && return 0
    fail "$3: $b bytes reached the forged address (limit $2): $1"
}

sec_up() {
    [ -n "$PEER" ] && { REASON="gateway-specific (reflection bounds)"; return 77; }
    gw_up "$@"
}

t_sec_reflect_single() {
    sec_up single_port=yes timeout=500 || return 1
    local out
    # shellcheck disable=SC2086
    out=$(blind reflect "$HOST" "$PORT" f5M $SEC_BIG --ack0 0.1 --listen 5) || return 1
    at_most "$out" 262144 "blksize 65464 windowsize 64 + blind ACK 0" || return 1
    [ "$(jget "$out" 'd["kinds"].get("DATA", 0)')" -ge 1 ] ||
        { fail "no DATA reached the victim: the test did not exercise the window ($out)"; return 1; }
    log_has "client=127.0.0.77:" "result=timeout" || return 1
    out=$(blind reflect "$HOST" "$PORT" f5M -o blksize=1468 -o windowsize=64 --ack0 0.1 \
          --listen 5) || return 1
    at_most "$out" 262144 "blksize 1468 windowsize 64 + blind ACK 0" || return 1
    # the OACK offered no more than single_port_window (64 KiB): 44 blocks
    log_has "client=127.0.0.77:" "blksize=1468 windowsize=44"
}

t_sec_reflect_per_port() {
    sec_up timeout=500 || return 1
    local out
    out=$(blind reflect "$HOST" "$PORT" f5M --listen 4) || return 1
    at_most "$out" 1100 "plain RRQ, never answered" || return 1
    [ "$(jget "$out" 'd["kinds"].get("DATA", 0)')" -eq 2 ] ||
        { fail "want one DATA and one retransmission: $out"; return 1; }
    # the blind ACK 0 cannot reach the session's own port: only the
    # listener's ERROR 4 answers it, and no DATA goes out
    # shellcheck disable=SC2086
    out=$(blind reflect "$HOST" "$PORT" f5M $SEC_BIG --ack0 0.1 --listen 4) || return 1
    at_most "$out" 400 "big-window RRQ + blind ACK 0 to the listening port" || return 1
    [ "$(jget "$out" 'd["kinds"].get("DATA", 0)')" -eq 0 ] ||
        { fail "DATA went out without an ACK on the session's port: $out"; return 1; }
}

t_sec_unsent_ack() {
    sec_up single_port=yes timeout=500 || return 1
    local out
    out=$(blind reflect "$HOST" "$PORT" f5M -o blksize=1468 -o windowsize=8 --ack0 0.1 \
          --ack 9 --listen 2) || return 1
    [ "$(jget "$out" 'd["kinds"].get("ERROR 4", 0)')" -eq 1 ] ||
        { fail "want one ERROR 4 for the ACK of block 9: $out"; return 1; }
    [ "$(jget "$out" 'd["error_text"]')" = "Illegal TFTP operation" ] ||
        { fail "ERROR text: $out"; return 1; }
    at_most "$out" 16384 "one window of 8 blocks, then the ERROR" || return 1
    log_has "ACK 9 for a block not sent yet" || return 1
    # the server serves on: a real client right after
    hpa octet get f513 "$T/f513" || return 1
    same_file "$T/f513" "$FIX/f513" "tftp-hpa get after the blind ACK"
}

t_sec_sp_clients() {
    sec_up single_port=yes || return 1
    # windowed, through the 64 KiB cap (windowsize lowered in the OACK)
    timeout 60 "$PY" "$HERE/tftpraw.py" get "$HOST" "$PORT" f5M "$T/w" \
        -o blksize=1468 -o windowsize=64 > "$T/w.err" 2>&1 ||
        { fail "tftpraw windowed get: $(tail -n 2 "$T/w.err")"; return 1; }
    same_file "$T/w" "$FIX/f5M" "windowed get in single-port mode" || return 1
    log_has "blksize=1468 windowsize=44" "result=ok" || return 1
    timeout 60 "$PY" "$HERE/tftpraw.py" get "$HOST" "$PORT" f5M "$T/b" \
        -o blksize=65464 > "$T/b.err" 2>&1 ||
        { fail "tftpraw blksize 65464 get: $(tail -n 2 "$T/b.err")"; return 1; }
    same_file "$T/b" "$FIX/f5M" "blksize 65464 get in single-port mode" || return 1
    hpa octet get f5M "$T/h" || return 1
    same_file "$T/h" "$FIX/f5M" "tftp-hpa get in single-port mode" || return 1
    # uploads take a port of their own by default (single_port_writes = no)
    hpa octet put "$FIX/f200k" up/real || return 1
    same_file "$ROOT/up/real" "$FIX/f200k" "tftp-hpa put in single-port mode" || return 1
    timeout 60 curl -sS -g --max-time 50 -T "$FIX/f50k" "$(curl_url up/real2)" \
        > "$T/c.err" 2>&1 || { fail "curl put: $(cat "$T/c.err")"; return 1; }
    same_file "$ROOT/up/real2" "$FIX/f50k" "curl put in single-port mode"
}

# the standard config with an allow list on the upload route
sec_allow_config() {
    PORT=$(free_port "$HOST")
    write_config "$T/gw.ini" "$HOST:$PORT" "$@"
    sed -i 's|^match = up/$|match = up/\nallow = 127.0.0.0/8|' "$T/gw.ini"
    grep -q '^allow = 127.0.0.0/8' "$T/gw.ini" || { fail "config edit failed"; return 1; }
}

t_sec_spoofed_put() {
    [ -n "$PEER" ] && { REASON="gateway-specific (single_port_writes)"; return 77; }
    HOST=127.0.0.1
    sec_allow_config single_port=yes timeout=500 || return 1
    start_gateway "$GW" --config "$T/gw.ini" || return 1
    local out
    out=$(blind put "$HOST" "$PORT" up/forged --listen 3) || return 1
    [ -e "$ROOT/up/forged" ] && { fail "a blind WRQ + DATA 1 stored up/forged: $out"; return 1; }
    # the DATA to the listening port found no session there: ERROR 5
    [ "$(jget "$out" 'd["kinds"].get("ERROR 5", 0)')" -ge 1 ] ||
        { fail "want ERROR 5 for DATA sent to the listening port: $out"; return 1; }
    log_has "client=127.0.0.77:" "up/forged" "result=timeout" || return 1
    grep -q "uploads on the single port" "$GW_LOG" &&
        { fail "warning logged with single_port_writes = no"; return 1; }
    gw_stop || return 1

    # opted in: the start-up warning names the risk, and the risk is real
    : > "$GW_LOG"
    sec_allow_config single_port=yes single_port_writes=yes timeout=500 || return 1
    start_gateway "$GW" --config "$T/gw.ini" || return 1
    log_has "route uploads: uploads on the single port" "allow list" || return 1
    out=$(blind put "$HOST" "$PORT" up/forged2 --listen 2) || return 1
    [ "$(cat "$ROOT/up/forged2" 2>/dev/null)" = forged ] ||
        { fail "with single_port_writes = yes the blind upload should land (shows the test bites): $out"; return 1; }
}

t_sec_client_rate() {
    sec_up single_port=yes client_rate=1M || return 1
    local t0 t1
    t0=$(date +%s%N)
    timeout 60 "$PY" "$HERE/tftpraw.py" get "$HOST" "$PORT" f5M "$T/w" \
        -o blksize=1468 -o windowsize=16 > "$T/w.err" 2>&1 ||
        { fail "tftpraw get under client_rate: $(tail -n 2 "$T/w.err")"; return 1; }
    t1=$(date +%s%N)
    same_file "$T/w" "$FIX/f5M" "get under client_rate" || return 1
    # 5 MiB at 1 MiB/s after a 1 MiB bucket: at least 4 s, however fast the
    # machine (a lower bound only: a slow machine can only take longer)
    [ $(((t1 - t0) / 1000000)) -ge 3500 ] ||
        { fail "5 MiB took $(((t1 - t0) / 1000000)) ms under client_rate = 1M (want >= 3500)"; return 1; }
    log_has "f5M" "result=ok"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$GW_PID/status"; }

t_sec_flood_memory() {
    # resident memory means something only for the plain build: ASan keeps
    # shadow memory and a quarantine of freed blocks, valgrind its own heap
    if [ -n "${ASAN_OPTIONS:-}" ] || [ -n "${TFTPGW_REAL_BIN:-}" ]; then
        REASON="RSS bounds are measured on the plain build (sanitizer or valgrind run)"
        return 77
    fi
    sec_up timeout=500 || return 1
    local start r i out peak=0 list=""
    sleep 0.3
    start=$(rss_kib)
    for i in 1 2 3 4 5 6; do
        # shellcheck disable=SC2086
        out=$(blind flood "$HOST" "$PORT" f5M 5000 $SEC_BIG) || { fail "flood $i: blind.py"; return 1; }
        # an unanswered session ends 3.5 s after its OACK (500 ms, one
        # retransmission at 1 s, one listening interval of 2 s)
        sleep 4.5
        r=$(rss_kib)
        list="$list $r"
        [ "$r" -gt "$peak" ] && peak=$r
    done
    echo "rss_kib start=$start after_each=$list" > "$T/rss.txt"
    [ "$peak" -lt $((64 << 10)) ] ||
        { fail "RSS after a flood reached $peak KiB (limit 64 MiB; start $start, after each:$list)"; return 1; }
    [ "$r" -lt $((start + (16 << 10))) ] ||
        { fail "RSS did not come back near its start: $start -> $r KiB (after each:$list)"; return 1; }
    grep -q "result=timeout\|result=evicted" "$GW_LOG" ||
        { fail "the floods opened no sessions ($out)"; return 1; }
    hpa octet get f5M "$T/after" || return 1
    same_file "$T/after" "$FIX/f5M" "tftp-hpa get after the floods"
}

run_test sec_core_reflect_single_port  t_sec_reflect_single
run_test sec_core_reflect_per_port     t_sec_reflect_per_port
run_test sec_core_unsent_ack           t_sec_unsent_ack
run_test sec_core_single_port_clients  t_sec_sp_clients
run_test sec_core_spoofed_put          t_sec_spoofed_put
run_test sec_core_flood_memory         t_sec_flood_memory
run_test sec_core_client_rate          t_sec_client_rate
