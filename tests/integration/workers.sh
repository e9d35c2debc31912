# tests/integration/workers.sh - [server] workers: several event loops on
# several threads (sourced by run.sh; bash). docs/design.md, "Workers".
#
#   workers_per_port      40 concurrent RRQs from 40 source ports, byte-exact;
#                         both workers carried transfers; the per-worker
#                         counts, tftpgw_transfers_finished_total and the
#                         bytes sent all sum exactly; /transfers lists all 40,
#                         also to each of 6 requests sent at once
#   workers_single_port   single-port mode on 127.0.0.1 and [::1]: every
#                         datagram of a client reaches the worker that owns
#                         its session (else its ACKs would meet "unknown
#                         transfer ID"): 40 RRQs, windowed ones, and uploads
#                         stored as soon as the client has its final ACK;
#                         a foreign socket that joins the SO_REUSEPORT group
#                         gets nothing (the steering program, not the
#                         kernel's hash, picks the socket)
#   workers_single_port_v6only
#                         single-port mode on [::] only: both workers'
#                         sockets are IPv6-only (ss: v6only:1, no *:PORT),
#                         so no IPv4 client reaches the steered group as an
#                         IPv4-mapped peer: 30 IPv4 RRQs (windowsize 8) get
#                         no answer and leave no trace in the log, metrics
#                         or /transfers; 30 windowed IPv6 reads through the
#                         same group are byte-exact and both workers carry
#                         some
#   workers_max_sessions  max_sessions = 4 across 2 workers: with 4 sessions
#                         held, 8 more requests from 8 ports are all refused
#   workers_reload        SIGHUP moves a route to another root; 20 clients
#                         afterwards all get the new content, on both workers
#   workers_drain         SIGTERM with transfers in flight on both workers:
#                         they finish byte-exact, a new request hears
#                         "shutting down", the process exits
#   workers_cache         one cache for 2 workers (worker 1 reaches worker 0's
#                         through gateway/remote.c): 50 cold RRQs spread
#                         over both make one upstream GET and arrive
#                         byte-exact; a write through worker 1 drops the
#                         copy for both; --check-config takes 2 and auto,
#                         refuses bad values

wk_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wk_scrape: /metrics into $T/m.txt
wk_scrape() {
    timeout 5 curl -s -o "$T/m.txt" "http://127.0.0.1:$MPORT/metrics"
}

# wk_metric NAME: its value in $T/m.txt ("" when absent)
wk_metric() {
    awk -v n="$1" '$1 == n { print $2 }' "$T/m.txt"
}

# wk_gets N FILE [curl args]: N concurrent curl reads of FILE into $T/gN,
# each from a source port of its own; fails unless all are byte-exact
wk_gets() {
    local n=$1 f=$2 i pids=() bad=0
    shift 2
    for i in $(seq 1 "$n"); do
        timeout 30 curl -s -g "$@" -o "$T/g$i" "$(curl_url "$f")" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || bad=$((bad + 1)); done
    [ "$bad" = 0 ] || { fail "$bad of $n curl reads of $f failed"; return 1; }
    for i in $(seq 1 "$n"); do
        same_file "$T/g$i" "$ROOT/$f" "read $i of $f" || return 1
    done
}

# wk_idle N: scrape until no session is active (N tries, 0.1 s apart);
# $T/m.txt holds the last scrape
wk_idle() {
    local i
    for i in $(seq 1 "$1"); do
        wk_scrape
        [ "$(wk_metric tftpgw_active_sessions)" = 0 ] && return 0
        sleep 0.1
    done
}

# wk_both_workers SERIES: both worker="0" and worker="1" of SERIES above 0
wk_both_workers() {
    local a b
    a=$(wk_metric "$1{worker=\"0\"}")
    b=$(wk_metric "$1{worker=\"1\"}")
    [ "${a:-0}" -gt 0 ] && [ "${b:-0}" -gt 0 ] ||
        { fail "$1: worker 0 has '$a', worker 1 '$b' (both should be > 0)"; return 1; }
}

t_workers_per_port() {
    [ -n "$PEER" ] && { REASON="gateway-specific (workers)"; return 77; }
    local i ok w0 w1 size sent retr out pids
    MPORT=$(wk_port)
    head -c 200000 /dev/urandom > "$ROOT/w200k"
    gw_up workers=2 "metrics_listen=127.0.0.1:$MPORT" || return 1
    log_has "2 workers" || return 1
    [ "$(grep -c "listening on 127.0.0.1:$PORT" "$GW_LOG")" = 2 ] ||
        { fail "expected one listener per worker"; return 1; }
    wk_gets 40 w200k || return 1
    for i in $(seq 1 30); do
        wk_scrape
        ok=$(wk_metric 'tftpgw_transfers_finished_total{op="rrq",route="all",result="ok"}')
        [ "${ok:-0}" = 40 ] && break
        sleep 0.1
    done
    [ "$ok" = 40 ] || { fail "finished ok = '$ok', want 40"; return 1; }
    wk_both_workers tftpgw_worker_transfers_total || return 1
    w0=$(wk_metric 'tftpgw_worker_transfers_total{worker="0"}')
    w1=$(wk_metric 'tftpgw_worker_transfers_total{worker="1"}')
    [ $((w0 + w1)) = 40 ] || { fail "per-worker transfers $w0 + $w1 != 40"; return 1; }
    [ "$(wk_metric tftpgw_active_sessions)" = 0 ] || { fail "active sessions not 0"; return 1; }
    # the live view holds every worker's finished transfers, each built on
    # its own worker's loop
    timeout 5 curl -s -o "$T/live.json" "http://127.0.0.1:$MPORT/transfers"
    out=$("$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d["active_count"], len(d["active"]), sum(1 for r in d["finished"] if r["file"] == "w200k" and r["result"] == "ok"))' "$T/live.json") ||
        { fail "/transfers: $(head -c 200 "$T/live.json")"; return 1; }
    [ "$out" = "0 0 40" ] || { fail "/transfers: active_count, active, finished ok = $out"; return 1; }
    # requests at once share one collection (or start the next): each
    # still gets the whole view, none is left without an answer
    pids=()
    for i in 1 2 3 4 5 6; do
        timeout 5 curl -s -o "$T/live$i.json" --interface "127.0.0.$((60 + i))" \
            "http://127.0.0.1:$MPORT/transfers" &
        pids+=($!)
    done
    wait "${pids[@]}"
    for i in 1 2 3 4 5 6; do
        out=$("$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(sum(1 for r in d["finished"] if r["file"] == "w200k" and r["result"] == "ok"))' \
            "$T/live$i.json") || { fail "/transfers #$i: $(head -c 200 "$T/live$i.json")"; return 1; }
        [ "$out" = 40 ] || { fail "/transfers #$i lists $out of 40"; return 1; }
    done
    size=$(stat -c %s "$ROOT/w200k")
    sent=$(wk_metric tftpgw_bytes_sent_total)
    retr=$(wk_metric tftpgw_retransmissions_total)
    if [ "$retr" = 0 ]; then
        [ "$sent" = $((40 * size)) ] || { fail "bytes sent $sent, want $((40 * size))"; return 1; }
    else
        [ "$sent" -ge $((40 * size)) ] || { fail "bytes sent $sent < $((40 * size))"; return 1; }
    fi
}

# Uploads through curl: stored, and complete, the moment curl returns.
wk_puts() {
    local n=$1 i pids=() bad=0
    for i in $(seq 1 "$n"); do
        head -c $((30000 + i * 517)) /dev/urandom > "$T/u$i"
        timeout 30 curl -s -g --connect-timeout 2 -T "$T/u$i" "$(curl_url "rw/u$i")" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || bad=$((bad + 1)); done
    [ "$bad" = 0 ] || { fail "$bad of $n uploads failed"; return 1; }
    for i in $(seq 1 "$n"); do
        same_file "$ROOT/rw/u$i" "$T/u$i" "upload $i" || return 1
    done
}

t_workers_single_port() {
    [ -n "$PEER" ] && { REASON="gateway-specific (workers)"; return 77; }
    local i ok w0 w1 pids=() bad=0
    MPORT=$(wk_port)
    HOST=127.0.0.1
    PORT=$(free_port)
    head -c 300000 /dev/urandom > "$ROOT/w300k"
    write_config "$T/gw.ini" "127.0.0.1:$PORT [::1]:$PORT" workers=2 single_port=yes \
        single_port_writes=yes "metrics_listen=127.0.0.1:$MPORT"
    start_gateway "$GW" --config "$T/gw.ini" || return 1
    log_has "2 workers" || return 1
    [ "$(grep -c "listening on \[::1\]:$PORT, single-port mode" "$GW_LOG")" = 2 ] ||
        { fail "expected one [::1] listener per worker"; return 1; }
    # A third socket joins the group (same user, SO_REUSEPORT): the kernel's
    # own hash would now send it a share of the datagrams, and those
    # transfers would stall. The program only ever picks a worker's socket.
    cat > "$T/intruder.py" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("joined", flush=True)
s.settimeout(0.2)
n, end = 0, time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        s.recv(70000)
        n += 1
    except socket.timeout:
        pass
print("received", n, flush=True)
EOF
    timeout 20 "$PY" "$T/intruder.py" "$PORT" 6 > "$T/intruder.out" 2>&1 &
    local intruder=$!
    track "$intruder"
    for i in $(seq 1 30); do grep -q joined "$T/intruder.out" 2>/dev/null && break; sleep 0.1; done
    grep -q joined "$T/intruder.out" || { fail "intruder: $(cat "$T/intruder.out")"; return 1; }
    wk_gets 30 w300k --tftp-blksize 1468 || return 1
    wait "$intruder"
    untrack "$intruder"
    grep -q '^received 0$' "$T/intruder.out" ||
        { fail "a socket outside the workers got datagrams: $(cat "$T/intruder.out")"; return 1; }
    HOST=::1
    wk_gets 10 w300k || return 1
    HOST=127.0.0.1
    # windowed reads: a whole window of DATA and its ACKs per round trip
    for i in 1 2 3 4 5 6; do
        timeout 30 atftp --option "windowsize 8" --option "blksize 1024" -g -r w300k \
            -l "$T/a$i" "$HOST" "$PORT" > "$T/atftp$i.log" 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || bad=$((bad + 1)); done
    [ "$bad" = 0 ] || { fail "$bad atftp windowed reads failed"; return 1; }
    for i in 1 2 3 4 5 6; do same_file "$T/a$i" "$ROOT/w300k" "atftp read $i" || return 1; done
    wk_puts 8 || return 1
    wk_idle 80
    ok=$(wk_metric 'tftpgw_transfers_finished_total{op="rrq",route="all",result="ok"}')
    [ "$ok" = 46 ] || { fail "finished rrq ok = '$ok', want 46"; return 1; }
    ok=$(wk_metric 'tftpgw_transfers_finished_total{op="wrq",route="rw",result="ok"}')
    [ "$ok" = 8 ] || { fail "finished wrq ok = '$ok', want 8"; return 1; }
    [ -z "$(grep 'unknown transfer ID' "$GW_LOG")" ] ||
        { fail "a datagram reached a worker that did not own its transfer"; return 1; }
    wk_both_workers tftpgw_worker_transfers_total || return 1
    w0=$(wk_metric 'tftpgw_worker_transfers_total{worker="0"}')
    w1=$(wk_metric 'tftpgw_worker_transfers_total{worker="1"}')
    [ $((w0 + w1)) = 54 ] || { fail "per-worker transfers $w0 + $w1 != 54"; return 1; }
}

# wk_port46: a UDP port free on both 127.0.0.1 and [::] (a dual-stack
# socket holds both while it is picked)
wk_port46() {
    "$PY" -c 'import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 0)); print(s.getsockname()[1])'
}

# Single-port mode on [::] alone with 2 workers. The steering program
# (gateway/listener.c, attach_steering) would hash an IPv4 datagram on a
# dual-stack socket as IPv4, but tg_listener_open makes every IPv6 listener
# IPV6_V6ONLY, so an IPv4-mapped peer never reaches a steered group: this
# asserts that from outside (the sockets' flag, and IPv4 requests that get
# nothing), and that the group still carries windowed IPv6 reads on both
# workers.
t_workers_single_port_v6only() {
    [ -n "$PEER" ] && { REASON="gateway-specific (workers)"; return 77; }
    have_ipv6 || { REASON="no IPv6 on loopback"; return 77; }
    local i out socks pids=() bad=0
    MPORT=$(wk_port)
    PORT=$(wk_port46)
    head -c 300000 /dev/urandom > "$ROOT/w6"
    write_config "$T/gw.ini" "[::]:$PORT" workers=2 single_port=yes \
        "metrics_listen=127.0.0.1:$MPORT"
    start_gateway "$GW" --config "$T/gw.ini" || return 1
    log_has "2 workers" || return 1
    [ "$(grep -c "listening on \[::\]:$PORT, single-port mode" "$GW_LOG")" = 2 ] ||
        { fail "expected one [::] listener per worker"; return 1; }
    # ss shows a dual-stack socket on :: as *:PORT with v6only:0
    socks=$(ss -ulnHe "sport = :$PORT" 2>&1)
    [ "$(printf '%s\n' "$socks" | grep -c "\[::\]:$PORT .*v6only:1")" = 2 ] &&
        [ "$(printf '%s\n' "$socks" | grep -c .)" = 2 ] ||
        { fail "UDP sockets on $PORT: $(echo "$socks" | tr -s ' ' | tr '\n' ';')"; return 1; }
    # 30 IPv4 readers at once, each asking windowsize 8: ICMP port
    # unreachable or silence, never a DATA, OACK or ERROR
    cat > "$T/probe4.py" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
socks = []
for i in range(30):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.send(b"\0\1w6\0octet\0windowsize\0008\0blksize\0001024\0")
    socks.append(s)
n = {"refused": 0, "silence": 0, "answer": 0}
end = time.monotonic() + 1.5
for s in socks:
    s.settimeout(max(0.05, end - time.monotonic()))
    try:
        s.recv(2048)
        n["answer"] += 1
    except ConnectionRefusedError:
        n["refused"] += 1
    except socket.timeout:
        n["silence"] += 1
print("refused=%(refused)d silence=%(silence)d answer=%(answer)d" % n)
EOF
    out=$(timeout 20 "$PY" "$T/probe4.py" "$PORT" 2>&1) || { fail "IPv4 probe: $out"; return 1; }
    [[ $out == *" answer=0" ]] || { fail "IPv4 requests reached the [::] group: $out"; return 1; }
    HOST=::1
    for i in $(seq 1 30); do
        timeout 30 atftp --option "windowsize 8" --option "blksize 1024" -g -r w6 \
            -l "$T/a$i" "$HOST" "$PORT" > "$T/atftp$i.log" 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || bad=$((bad + 1)); done
    HOST=127.0.0.1
    [ "$bad" = 0 ] || { fail "$bad of 30 windowed IPv6 reads failed"; return 1; }
    for i in $(seq 1 30); do same_file "$T/a$i" "$ROOT/w6" "IPv6 read $i" || return 1; done
    wk_idle 50
    out=$(wk_metric 'tftpgw_transfers_finished_total{op="rrq",route="all",result="ok"}')
    [ "$out" = 30 ] || { fail "finished rrq ok = '$out', want 30 (IPv6 only)"; return 1; }
    wk_both_workers tftpgw_worker_transfers_total || return 1
    out=$(grep -E 'client=(127\.|\[::ffff:)' "$GW_LOG")
    [ -z "$out" ] || { fail "an IPv4 or IPv4-mapped client in the log: ${out:0:200}"; return 1; }
    [ -z "$(grep 'unknown transfer ID' "$GW_LOG")" ] ||
        { fail "a datagram reached a worker that did not own its transfer"; return 1; }
    timeout 5 curl -s -o "$T/live.json" "http://127.0.0.1:$MPORT/transfers"
    out=$("$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(len(d["finished"]), sorted(set(r["client"] for r in d["finished"])))' "$T/live.json") ||
        { fail "/transfers: $(head -c 200 "$T/live.json")"; return 1; }
    [ "$out" = "30 ['::1']" ] || { fail "/transfers finished: $out"; return 1; }
}

# wk_holders N FILE: N clients that each take DATA 1, ACK it (so the session
# is proven, never evicted) and then go quiet; prints "held" per client
wk_holders() {
    cat > "$T/hold.py" <<'EOF'
import socket, sys, time
host, port, n, name = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(b"\0\1" + name.encode() + b"\0octet\0", (host, port))
    d, a = s.recvfrom(2048)
    if d[:4] != b"\0\3\0\1":
        print("no DATA 1:", d[:40]); sys.exit(1)
    s.sendto(b"\0\4\0\1", a)
    socks.append((s, a))
    print("held", flush=True)
time.sleep(float(sys.argv[5]))
for s, a in socks:  # end the sessions: their places come back at once
    s.sendto(b"\0\5\0\0done\0", a)
print("released", flush=True)
EOF
    timeout 20 "$PY" "$T/hold.py" "$HOST" "$PORT" "$1" "$2" "${3:-6}" > "$T/hold.out" 2>&1 &
    HOLD_PID=$!
    track "$HOLD_PID"
}

# wk_try_busy N FILE: N requests from N new ports; prints each answer
wk_try() {
    timeout 20 "$PY" - "$HOST" "$PORT" "$1" "$2" <<'EOF'
import socket, sys
host, port, n, name = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(b"\0\1" + name.encode() + b"\0octet\0", (host, port))
    try:
        d, a = s.recvfrom(2048)
    except socket.timeout:
        print("silence"); continue
    if d[:2] == b"\0\5":
        print("error", d[2:4].hex(), d[4:-1].decode(errors="replace"))
    else:
        print("answer", d[:4].hex())
        s.sendto(b"\0\5\0\0stop\0", a)
EOF
}

t_workers_max_sessions() {
    [ -n "$PEER" ] && { REASON="gateway-specific (workers)"; return 77; }
    local i out busy
    MPORT=$(wk_port)
    head -c 100000 /dev/urandom > "$ROOT/w100k"
    gw_up workers=2 max_sessions=4 timeout=2000 "metrics_listen=127.0.0.1:$MPORT" || return 1
    wk_holders 4 w100k 3
    for i in $(seq 1 50); do
        [ "$(grep -c held "$T/hold.out" 2>/dev/null)" = 4 ] && break
        sleep 0.1
    done
    [ "$(grep -c held "$T/hold.out")" = 4 ] || { fail "holders: $(cat "$T/hold.out")"; return 1; }
    wk_scrape
    [ "$(wk_metric tftpgw_active_sessions)" = 4 ] ||
        { fail "active sessions $(wk_metric tftpgw_active_sessions), want 4"; return 1; }
    out=$(wk_try 8 w100k)
    busy=$(printf '%s\n' "$out" | grep -c 'error 0000 server busy, try again later')
    [ "$busy" = 8 ] || { fail "8 requests over 4 held places: $(echo "$out" | tr '\n' ';')"; return 1; }
    wk_scrape
    [ "$(wk_metric 'tftpgw_requests_refused_total{reason="busy"}')" = 8 ] ||
        { fail "refused busy: $(wk_metric 'tftpgw_requests_refused_total{reason="busy"}')"; return 1; }
    # the places come back: once the holders' sessions ended, reads work
    wait "$HOLD_PID"
    untrack "$HOLD_PID"
    grep -q released "$T/hold.out" || { fail "holders: $(cat "$T/hold.out")"; return 1; }
    wk_idle 50
    wk_gets 4 w100k || return 1
}

t_workers_reload() {
    [ -n "$PEER" ] && { REASON="gateway-specific (workers)"; return 77; }
    local i w0 w1 a0 a1 root1=$ROOT
    MPORT=$(wk_port)
    head -c 50000 /dev/urandom > "$ROOT/wr"
    gw_up workers=2 "metrics_listen=127.0.0.1:$MPORT" || return 1
    wk_gets 4 wr || return 1
    wk_scrape
    a0=$(wk_metric 'tftpgw_worker_transfers_total{worker="0"}')
    a1=$(wk_metric 'tftpgw_worker_transfers_total{worker="1"}')
    mkdir -p "$T/root2"
    head -c 70000 /dev/urandom > "$T/root2/wr"
    ROOT=$T/root2 write_config "$T/gw.ini" "127.0.0.1:$PORT" workers=2 \
        "metrics_listen=127.0.0.1:$MPORT"
    kill -HUP "$GW_PID"
    log_has "configuration reloaded" || return 1
    sleep 0.3 # the other worker takes it from its mailbox on its own loop
    ROOT=$T/root2
    wk_gets 20 wr
    local rc=$?
    ROOT=$root1
    [ $rc = 0 ] || return 1
    [ -z "$(grep 'reload not taken' "$GW_LOG")" ] || { fail "a worker kept the old one"; return 1; }
    wk_scrape
    w0=$(wk_metric 'tftpgw_worker_transfers_total{worker="0"}')
    w1=$(wk_metric 'tftpgw_worker_transfers_total{worker="1"}')
    [ "$w0" -gt "$a0" ] && [ "$w1" -gt "$a1" ] ||
        { fail "after reload: worker 0 $a0 -> $w0, worker 1 $a1 -> $w1"; return 1; }
}

t_workers_drain() {
    [ -n "$PEER" ] && { REASON="gateway-specific (workers)"; return 77; }
    local i pid out pids=() bad=0
    MPORT=$(wk_port)
    head -c 400000 /dev/urandom > "$ROOT/wd"
    gw_up workers=2 drain_timeout=20 "metrics_listen=127.0.0.1:$MPORT" || return 1
    # slow readers: 512-byte blocks, each ACK 4 ms late: about 3 s a transfer
    cat > "$T/slow.py" <<'EOF'
import socket, sys, time
host, port, name, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"\0\1" + name.encode() + b"\0octet\0", (host, port))
want, data = 1, bytearray()
while True:
    d, a = s.recvfrom(2048)
    if d[:2] != b"\0\3":
        print("not DATA:", d[:40]); sys.exit(1)
    blk = int.from_bytes(d[2:4], "big")
    if blk == want:
        data += d[4:]
        want += 1
    time.sleep(0.004)
    s.sendto(b"\0\4" + d[2:4], a)
    if blk == want - 1 and len(d) < 516:
        break
open(out, "wb").write(data)
EOF
    for i in $(seq 1 8); do
        timeout 40 "$PY" "$T/slow.py" "$HOST" "$PORT" wd "$T/d$i" > "$T/slow$i.log" 2>&1 &
        pids+=($!)
    done
    for i in $(seq 1 30); do
        wk_scrape
        [ "$(wk_metric tftpgw_active_sessions)" = 8 ] && break
        sleep 0.1
    done
    wk_both_workers tftpgw_worker_active_sessions || return 1
    pid=$GW_PID
    kill -TERM "$pid"
    log_has "draining" || return 1
    out=$(wk_try 1 wd)
    [[ $out == *"server is shutting down"* ]] || { fail "request during drain: $out"; return 1; }
    for i in "${pids[@]}"; do wait "$i" || bad=$((bad + 1)); done
    [ "$bad" = 0 ] || { fail "$bad slow readers failed: $(cat "$T"/slow*.log | head -3)"; return 1; }
    for i in $(seq 1 8); do same_file "$T/d$i" "$ROOT/wd" "drained read $i" || return 1; done
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { fail "still running after every transfer ended"; return 1; }
    wait "$pid"
    local st=$?
    untrack "$pid"
    GW_PID=""
    [ "$st" = 0 ] || { fail "exit status $st"; return 1; }
    log_has "stopped: 8 ok, 0 failed" || return 1
}

# wk_put_on_worker1 FILE KEY: hpa puts of FILE as KEY until one lands on
# worker 1 (the kernel's hash picks the socket; 12 tries), so the write
# runs on a stand-in and worker 0's cache must hear of it
wk_put_on_worker1() {
    local i j b0 b1 a0 a1
    for i in $(seq 1 12); do
        wk_scrape
        b0=$(wk_metric 'tftpgw_worker_transfers_total{worker="0"}')
        b1=$(wk_metric 'tftpgw_worker_transfers_total{worker="1"}')
        hpa octet put "$1" "$2" || return 1
        # an upload's session ends after it lingers for a repeated last block
        for j in $(seq 1 50); do
            wk_scrape
            a0=$(wk_metric 'tftpgw_worker_transfers_total{worker="0"}')
            a1=$(wk_metric 'tftpgw_worker_transfers_total{worker="1"}')
            [ "${a0:-0}" != "${b0:-0}" ] || [ "${a1:-0}" != "${b1:-0}" ] && break
            sleep 0.1
        done
        [ "${a1:-0}" -gt "${b1:-0}" ] && return 0
    done
    fail "12 puts all landed on worker 0"
}

t_workers_cache() {
    local out v n=50 want i pids=() bad=0 gets
    for v in 2 auto; do
        cache_write_config "$T/c.ini" "127.0.0.1:$(free_port)" "http://127.0.0.1:1/" workers=$v
        out=$("$GW" --check-config "$T/c.ini" 2>&1) || { fail "workers = $v refused: $out"; return 1; }
    done
    for v in 0 65 -1 two; do
        cache_write_config "$T/c.ini" "127.0.0.1:$(free_port)" "http://127.0.0.1:1/" workers=$v
        out=$("$GW" --check-config "$T/c.ini" 2>&1) && { fail "workers = $v accepted"; return 1; }
        [[ $out == *"workers"*"1..64 or auto"* ]] || { fail "workers = $v: $out"; return 1; }
    done
    # a cold object, sent slowly: every RRQ arrives while the one fill runs
    cache_nginx_up 4m || return 1
    head -c $((3 << 20)) /dev/urandom > "$NGX_ROOT/cold"
    slow_on
    MPORT=$(wk_port)
    cache_gw_up "$(ngx_url)" workers=2 "metrics_listen=127.0.0.1:$MPORT" || return 1
    want=$(sha "$NGX_ROOT/cold")
    for i in $(seq 1 $n); do
        timeout 60 bash -c 'set -o pipefail
            curl -sS --max-time 50 --tftp-blksize 1468 -o - "$1" | sha256sum | cut -c1-64' \
            _ "$(curl_url cold)" > "$T/c$i.sha" 2> "$T/c$i.err" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i"; done
    for i in $(seq 1 $n); do [ "$(cat "$T/c$i.sha")" = "$want" ] || bad=$((bad + 1)); done
    [ $bad = 0 ] || { fail "$bad of $n cold reads wrong: $(cat "$T"/c*.err | sort | uniq -c | head -n 3 | tr '\n' ' ')"; return 1; }
    ngx_gets_are cold 1 "$n cold RRQs over 2 workers" || return 1
    wk_scrape
    wk_both_workers tftpgw_worker_transfers_total || return 1
    [ "$(wk_metric 'tftpgw_cache_events_total{cache="edge",event="miss"}')" = 1 ] ||
        { fail "cache misses: $(grep cache_events "$T/m.txt" | tr '\n' ' ')"; return 1; }
    # warm: hits, read in place by the worker that got them
    pids=()
    for i in $(seq 1 20); do
        timeout 30 curl -s --tftp-blksize 1468 -o "$T/h$i" "$(curl_url cold)" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i"; done
    for i in $(seq 1 20); do
        [ "$(sha "$T/h$i")" = "$want" ] || { fail "warm read $i wrong"; return 1; }
    done
    ngx_gets_are cold 1 "20 warm RRQs after the fill" || return 1
    # a write through worker 1's stand-in drops worker 0's copy: every
    # read after it, on either worker, gets the new bytes
    slow_off
    head -c 7000 /dev/urandom > "$T/new"
    wk_put_on_worker1 "$T/new" cold || return 1
    same_file "$NGX_ROOT/cold" "$T/new" "the put reached nginx" || return 1
    pids=()
    for i in $(seq 1 12); do
        timeout 30 curl -s -o "$T/n$i" "$(curl_url cold)" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i"; done
    for i in $(seq 1 12); do same_file "$T/n$i" "$T/new" "read $i after the put" || return 1; done
    gets=$(ngx_count GET cold)
    [ "$gets" -ge 2 ] || { fail "no upstream GET after the put (nginx: $(ngx_lines cold))"; return 1; }
    # bytes a worker read in place count as the cache's own
    cache_stop || return 1
    counter_cmp served_bytes ge $((70 * (3 << 20))) "70 reads of 3 MiB on 2 workers"
}

# Held UEFI probes across workers (per-port mode): a probe's download
# comes from a new port, which SO_REUSEPORT may give to the other worker;
# that worker hands it to the one holding the probe's GET
# (gateway/heldmap.h), so every probe and its download cost one upstream
# GET. 24 pairs: without the hand-off, about half would cost two.
t_workers_probe_hold() {
    [ -n "$PEER" ] && { REASON="gateway-specific (workers)"; return 77; }
    local i held handed
    nginx_up || return 1
    head -c 300000 /dev/urandom > "$NGX_ROOT/wboot.efi"
    gw_http "$(ngx_url)" workers=2 log_level=debug probe_hold=10 || return 1
    for i in $(seq 1 24); do
        pxp_uefi wboot.efi "$T/wboot$i.efi" || return 1
        same_file "$T/wboot$i.efi" "$NGX_ROOT/wboot.efi" "UEFI download $i" || return 1
    done
    pxp_gets_are wboot.efi 24 || return 1
    held=$(log_lines "result=ok" 'key="wboot.efi"' " held=1" | grep -c .)
    [ "$held" = 24 ] || { fail "$held of 24 downloads continued their held probe"; return 1; }
    handed=$(grep -c "handed over by worker" "$GW_LOG")
    [ "$handed" -ge 1 ] ||
        { fail "no download was handed over: the test did not reach a second worker"; return 1; }
}

# A second signal while worker 1 reads through its stand-in for worker 0's
# cache (a fill running, slow upstream): every worker ends its transfers
# at once and the process exits, cleanly (no crash, no sanitizer report:
# a stand-in's stream must not outlive the cache it reads from).
t_workers_cache_abort() {
    [ -n "$PEER" ] && { REASON="gateway-specific (workers)"; return 77; }
    local i pid st pids=()
    cache_nginx_up 4m || return 1
    head -c $((3 << 20)) /dev/urandom > "$NGX_ROOT/cold2"
    slow_on
    MPORT=$(wk_port)
    cache_gw_up "$(ngx_url)" workers=2 "metrics_listen=127.0.0.1:$MPORT" || return 1
    for i in $(seq 1 16); do
        timeout 40 curl -s --tftp-blksize 1468 -o "$T/a$i" "$(curl_url cold2)" 2> /dev/null &
        pids+=($!)
    done
    for i in $(seq 1 50); do
        wk_scrape
        [ "$(wk_metric 'tftpgw_worker_active_sessions{worker="1"}')" -gt 0 ] 2>/dev/null &&
            [ "$(wk_metric 'tftpgw_worker_active_sessions{worker="0"}')" -gt 0 ] 2>/dev/null && break
        sleep 0.1
    done
    wk_both_workers tftpgw_worker_active_sessions || return 1
    pid=$GW_PID
    GW_PID=""
    kill -TERM "$pid"
    log_has "draining" || return 1
    kill -TERM "$pid"
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"; wait "$pid" 2>/dev/null; untrack "$pid"
        fail "still running 10 s after the second signal"; return 1
    fi
    wait "$pid"; st=$?
    untrack "$pid"
    for i in "${pids[@]}"; do kill "$i" 2>/dev/null; wait "$i" 2>/dev/null; done
    slow_off
    case $st in
        0|1) ;;
        99) fail "valgrind reported errors or leaks"; return 1 ;;
        *) fail "exit status $st$(sigdesc "$st") after the second signal"; return 1 ;;
    esac
    if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$GW_LOG"; then
        fail "sanitizer report in the gateway log"; return 1
    fi
    log_has "stopped:" || return 1
    echo "exit status $st" > "$T/abort.status"
}

run_test workers_per_port t_workers_per_port
run_test workers_single_port t_workers_single_port
run_test workers_single_port_v6only t_workers_single_port_v6only
run_test workers_max_sessions t_workers_max_sessions
run_test workers_reload t_workers_reload
run_test workers_drain t_workers_drain
run_test workers_cache cx t_workers_cache
run_test workers_probe_hold hx t_workers_probe_hold
run_test workers_cache_abort cx t_workers_cache_abort
