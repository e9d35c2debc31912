# tests/integration/hostile.sh - bad input from the network (issue 9);
# sourced by run.sh (bash), which runs the tests named hostile_*.
#
# Each test starts a gateway with the suite's standard configuration (file
# backend: up/ create with max_size 1M, rw/ overwrite, the rest read-only)
# and timeout 500 ms, so sessions opened by spoofed requests give up after
# 1.5 s. While hostile.py sends one group of bad input and checks every
# answer (see its header), real clients (curl, tftp-hpa) fetch and store
# 1-5 MiB files in a loop, each checked by sha256. Afterwards: the gateway
# is alive and serves, its log holds no raw control byte (hostile strings
# appear escaped), and its descriptor count is back to where it started.
#
# hostile.py prints one "case NAME: got ANSWER" line per case; they are kept
# in $T/hostile.out (KEEP=1 keeps the work directory).

HOSTILE_TMO=500

hostile_fixtures() {
    [ -f "$FIX/g1M" ] || head -c $((1 << 20)) /dev/urandom > "$FIX/g1M"
    [ -f "$FIX/g3M" ] || head -c $((3 << 20)) /dev/urandom > "$FIX/g3M"
    chmod 644 "$FIX/g1M" "$FIX/g3M"
    ln -f "$FIX/g1M" "$ROOT/g1M"
    ln -f "$FIX/g3M" "$ROOT/g3M"
}

gw_fds() { find "/proc/$GW_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# good_round N: three real transfers at once; prints "round N ok" or FAIL lines
good_round() {
    local n=$1 d=$T/good rc1 rc2 rc3
    timeout 40 curl -sS -g --connect-timeout 2 --max-time 38 --tftp-blksize 1468 \
        -o "$d/get5M" "$(curl_url f5M)" > "$d/c1.err" 2>&1 &
    local p1=$!
    timeout 40 tftp -m octet "$HOST" "$PORT" -c get g1M "$d/get1M" > "$d/h.err" 2>&1 &
    local p2=$!
    timeout 40 curl -sS -g --connect-timeout 2 --max-time 38 --tftp-blksize 1468 \
        -T "$FIX/g3M" "$(curl_url "rw/good-put")" > "$d/c3.err" 2>&1 &
    local p3=$!
    wait $p1; rc1=$?
    wait $p2; rc2=$?
    wait $p3; rc3=$?
    local ok=1
    if [ $rc1 -ne 0 ] || [ "$(sha "$d/get5M")" != "$(sha "$FIX/f5M")" ]; then
        echo "FAIL round $n: curl get f5M: exit $rc1 $(head -c 200 "$d/c1.err")"; ok=0
    fi
    if [ $rc2 -ne 0 ] || [ -s "$d/h.err" ] || [ "$(sha "$d/get1M")" != "$(sha "$FIX/g1M")" ]; then
        echo "FAIL round $n: tftp-hpa get g1M: exit $rc2 $(head -c 200 "$d/h.err")"; ok=0
    fi
    if [ $rc3 -ne 0 ] || [ "$(sha "$ROOT/rw/good-put")" != "$(sha "$FIX/g3M")" ]; then
        echo "FAIL round $n: curl put g3M: exit $rc3 $(head -c 200 "$d/c3.err")"; ok=0
    fi
    rm -f "$d/get5M" "$d/get1M" "$ROOT/rw/good-put"
    [ $ok = 1 ] && echo "round $n ok"
}

# good_loop: rounds until $T/good.stop exists (at least one, at most 30 or 50 s)
good_loop() {
    local n=0 t0=$SECONDS
    mkdir -p "$T/good"
    while [ $n -lt 30 ] && [ $((SECONDS - t0)) -lt 50 ]; do
        n=$((n + 1))
        good_round $n
        [ -e "$T/good.stop" ] && break
    done
}

# t_hostile GROUP [LOG-TEXT...]: the group against a gateway with good
# transfers alongside; each LOG-TEXT must appear in the gateway log (the
# escaped form of a hostile string)
t_hostile() {
    local group=$1 out rc fd0 fd1 gpid
    shift
    [ -n "$PEER" ] && { REASON="gateway-specific (log, descriptors, design answers)"; return 77; }
    hostile_fixtures
    gw_up timeout=$HOSTILE_TMO || return 1
    fd0=$(gw_fds)
    rm -f "$T/good.stop"
    good_loop > "$T/good.log" 2>&1 &
    gpid=$!
    track $gpid
    sleep 0.2   # the first good transfers are under way
    out=$(timeout 100 "$PY" "$HERE/hostile.py" "$group" --host "$HOST" --port "$PORT" \
        --root "$ROOT" --log "$GW_LOG" --timeout-ms "$HOSTILE_TMO" 2>&1)
    rc=$?
    printf '%s\n' "$out" > "$T/hostile.out"
    touch "$T/good.stop"
    wait $gpid
    untrack $gpid
    [ $rc -eq 124 ] && { fail "hostile.py $group timed out: $(tail -n 2 <<< "$out" | tr '\n' ' ')"; return 1; }
    [ $rc -eq 77 ] && { REASON=$(tail -n 1 <<< "$out"); return 77; }
    [ $rc -eq 0 ] || { fail "$(grep -m1 -E '^FAIL' <<< "$out" || tail -n 1 <<< "$out")"; return 1; }
    if grep -q FAIL "$T/good.log"; then
        fail "good transfer during $group: $(grep -m1 FAIL "$T/good.log")"; return 1
    fi
    local rounds
    rounds=$(grep -c ' ok$' "$T/good.log")
    [ "$rounds" -ge 1 ] || { fail "no good round completed: $(head -c 300 "$T/good.log")"; return 1; }
    kill -0 "$GW_PID" 2>/dev/null || { fail "the gateway died during $group"; return 1; }
    hpa octet get f4404 "$T/alive" || return 1
    same_file "$T/alive" "$FIX/f4404" "get after $group" || return 1
    local expect=() e
    for e in "$@"; do expect+=(--expect "$e"); done
    out=$("$PY" "$HERE/hostile.py" logcheck --port "$PORT" --root "$ROOT" --log "$GW_LOG" \
        "${expect[@]}" 2>&1) || { fail "log: $(tail -n 1 <<< "$out")"; return 1; }
    printf '%s\n' "$out" >> "$T/hostile.out"
    # every session over: flood ones give up after 1.5 s, the last good
    # upload dallies 3 s after its final ACK
    local t0=$SECONDS
    for _ in $(seq 1 100); do
        fd1=$(gw_fds)
        [ "$fd1" -le "$fd0" ] && break
        sleep 0.1
    done
    echo "fds: $fd0 at start, $fd1 at the end (after $((SECONDS - t0)) s); $rounds good rounds" \
        >> "$T/hostile.out"
    [ "$fd1" -le "$fd0" ] ||
        { fail "gateway holds $fd1 descriptors, $fd0 at start: $(find "/proc/$GW_PID/fd" -mindepth 1 -printf '%f->%l ' 2>/dev/null)"; return 1; }
    return 0
}

run_test hostile_requests t_hostile requests
run_test hostile_options  t_hostile options
run_test hostile_session  t_hostile session 'client: \x1b[2J\x0d\x0aFAKE result=ok\x07'
run_test hostile_names    t_hostile names 'file="rw/\x1b[31mred\x1b[0m"' 'file="f1\x0d\x0afake log line"'
run_test hostile_port0    t_hostile port0
run_test hostile_flood    t_hostile flood
