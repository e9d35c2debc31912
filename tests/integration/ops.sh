# tests/integration/ops.sh - operations (sourced by run.sh): --check-config,
# the root refusal and privilege drop, SIGHUP reload under load, SIGTERM
# drain with drain_timeout, syslog and JSON logs, chroot, socket activation,
# and the request limits (max_sessions, per-client, rate_limit).

# slow_get FILE OUT DELAY [tftpraw args]: a reader that sleeps DELAY s per
# block (lock-step, blksize 512), so a transfer spans a signal.
slow_get() {
    local f=$1 out=$2 d=$3; shift 3
    timeout 120 "$PY" "$HERE/tftpraw.py" get "$HOST" "$PORT" "$f" "$out" \
        --block-delay "$d" --timeout 1 --retries 8 "$@"
}

# gw_pid_exit: wait for the gateway to exit on its own; sets GW_EXIT and
# clears GW_PID so run_test does not stop it again. Fails after $1 s.
gw_wait_exit() {
    local max=$1 i pid=$GW_PID
    for i in $(seq 1 $((max * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "gateway still running $max s after SIGTERM"
        return 1
    fi
    wait "$pid"; GW_EXIT=$?
    untrack "$pid"
    GW_PID=""
    return 0
}

t_ops_check_config() {
    local out rc
    write_config "$T/good.ini" "127.0.0.1:$(free_port)"
    out=$(timeout 10 "$GW" --check-config "$T/good.ini" 2>&1); rc=$?
    [ $rc -eq 0 ] || { fail "good config: exit $rc: $out"; return 1; }
    case $out in *"OK"*"route uploads"*"write create"*"route all"*) ;;
        *) fail "good config: routes not printed: $out"; return 1 ;; esac
    case $out in *"timeout 1s,"*"drain 30s"*) ;;
        *) fail "good config: durations not printed with units: $out"; return 1 ;; esac
    # durations with units, in [server] and in a backend (the cache's ttl)
    { sed 's/^timeout = .*/timeout = 250ms\ndrain_timeout = 1500ms/' "$T/good.ini"
      printf '[backend c]\ntype = cache\nupstream = files\ndir = %s\nttl = 1h\n' "$T/cache"
      printf 'stale_if_error = 1d\nfill_grace = 500ms\n'; } > "$T/units.ini"
    out=$(timeout 10 "$GW" --check-config "$T/units.ini" 2>&1); rc=$?
    [ $rc -eq 1 ] || { fail "drain_timeout = 1500ms: exit $rc, want 1: $out"; return 1; }
    case $out in *"drain_timeout: 1500ms: takes whole seconds"*) ;;
        *) fail "drain_timeout = 1500ms: message: $out"; return 1 ;; esac
    sed -i 's/^drain_timeout = 1500ms$/drain_timeout = 2m/' "$T/units.ini"
    out=$(timeout 10 "$GW" --check-config "$T/units.ini" 2>&1); rc=$?
    [ $rc -eq 0 ] || { fail "durations with units: exit $rc: $out"; return 1; }
    case $out in *"timeout 250ms,"*"drain 2m"*"backend c"*"type cache"*) ;;
        *) fail "durations with units: $out"; return 1 ;; esac
    printf '[server]\nlisten = 127.0.0.1:1\n[route r]\nbackend = nope\n' > "$T/bad.ini"
    out=$(timeout 10 "$GW" --check-config "$T/bad.ini" 2>&1); rc=$?
    [ $rc -eq 1 ] || { fail "missing backend: exit $rc, want 1: $out"; return 1; }
    case $out in *bad.ini:*nope*) ;; *) fail "missing backend: message: $out"; return 1 ;; esac
    # a backend's own keys are only checked when it is built: a missing root
    sed "s#^root = .*#root = $T/does-not-exist#" "$T/good.ini" > "$T/noroot.ini"
    out=$(timeout 10 "$GW" --check-config "$T/noroot.ini" 2>&1); rc=$?
    [ $rc -eq 1 ] || { fail "missing root: exit $rc, want 1: $out"; return 1; }
    case $out in *"[backend files]"*) ;; *) fail "missing root: message: $out"; return 1 ;; esac
}

# uids of the running gateway: real, effective, saved, file system
gw_uids() {
    awk '$1 == "Uid:" {print $2, $3, $4, $5}' "/proc/$GW_PID/status"
}

t_ops_root_drop() {
    [ "$(id -u)" = 0 ] || { REASON="needs root"; return 77; }
    local name=nobody u
    id -u tftpgw > /dev/null 2>&1 && name=tftpgw
    u=$(id -u "$name")
    chmod -R o+rX "$ROOT"
    # as root with no user set: binds, then drops by itself
    GW_DROP=1 gw_up || return 1
    [ "$(gw_uids)" = "$u $u $u $u" ] || { fail "uids $(gw_uids), want $name's ($u)"; return 1; }
    log_has "running as user $name: started as root with no user set" || return 1
    hpa octet get f4404 "$T/out" || return 1
    same_file "$T/out" "$FIX/f4404" "get after dropping to $name" || return 1
    gw_stop || return 1
    # -u NAME, tftpd-hpa's flag, names the user
    GW_DROP=1 gw_cli --root "$ROOT" -u daemon || return 1
    u=$(id -u daemon)
    [ "$(gw_uids)" = "$u $u $u $u" ] || { fail "-u daemon: uids $(gw_uids)"; return 1; }
    log_has "running as user daemon" || return 1
    gw_stop || return 1
    # --allow-root keeps root, and only then
    gw_cli --root "$ROOT" || return 1
    [ "$(gw_uids)" = "0 0 0 0" ] || { fail "--allow-root: uids $(gw_uids)"; return 1; }
    gw_stop || return 1
    # an unknown user is an error, not root
    local out rc
    out=$(timeout 10 "$GW" --root "$ROOT" --listen "127.0.0.1:$(free_port)" -u no-such-user-x \
        2>&1 < /dev/null); rc=$?
    [ $rc -eq 1 ] || { fail "-u no-such-user-x: exit $rc, want 1: $out"; return 1; }
    case $out in *"user 'no-such-user-x' not found"*) ;; *) fail "message: $out"; return 1 ;; esac
}

t_ops_reload() {
    gw_up || return 1
    mkdir -p "$T/root2"
    echo "second root" > "$T/root2/hello"
    local i pids=() rc=0
    for i in 1 2 3 4; do
        slow_get f200k "$T/slow$i" 0.004 > "$T/slow$i.out" 2>&1 &
        pids+=($!)
    done
    sleep 0.5
    # the new configuration: one more backend and route, an old route gone
    cp "$T/gw.ini" "$T/gw.ini.old"
    {
        sed '/^\[route rw\]/,/^$/d' "$T/gw.ini.old" | sed '/^\[route all\]/,$d'
        printf '[backend second]\ntype = file\nroot = %s\n\n' "$T/root2"
        printf '[route new]\nmatch = new/\nkey = {rest}\nbackend = second\n\n'
        sed -n '/^\[route all\]/,$p' "$T/gw.ini.old"
    } > "$T/gw.ini"
    kill -HUP "$GW_PID"
    log_has "configuration reloaded" "1 kept running" || return 1
    for i in 1 2 3 4; do
        wait "${pids[$((i - 1))]}" || { fail "slow get $i across the reload: $(cat "$T/slow$i.out")"; rc=1; }
    done
    [ $rc -eq 0 ] || return 1
    for i in 1 2 3 4; do same_file "$T/slow$i" "$FIX/f200k" "slow get $i across the reload" || return 1; done
    hpa octet get new/hello "$T/hello" || return 1
    same_file "$T/hello" "$T/root2/hello" "new route after the reload" || return 1
    hpa_expect 2 octet put "$FIX/f1" rw/gone || return 1   # [route rw] was removed
    # a broken file is refused; the running configuration stays
    echo "[route" >> "$T/gw.ini"
    kill -HUP "$GW_PID"
    log_has "reload refused" "gw.ini" || return 1
    hpa octet get new/hello "$T/hello2" || return 1
    same_file "$T/hello2" "$T/root2/hello" "get after a refused reload"
}

t_ops_drain() {
    gw_up drain_timeout=3 timeout=1000 || return 1
    slow_get f50k "$T/short" 0.002 > "$T/short.out" 2>&1 &
    local short=$!
    slow_get f200k "$T/long" 0.05 > "$T/long.out" 2>&1 &   # about 20 s
    local long=$! t0 rc
    sleep 0.5
    t0=$SECONDS
    kill -TERM "$GW_PID"
    sleep 0.3
    # new requests hear why they are refused
    hpa_expect 0 octet get f4404 "$T/refused" || return 1
    wait "$short" || { fail "short transfer during the drain: $(cat "$T/short.out")"; return 1; }
    same_file "$T/short" "$FIX/f50k" "transfer finished during the drain" || return 1
    wait "$long"; rc=$?
    [ $rc -eq 100 ] || { fail "long transfer: exit $rc, want ERROR 0 (100): $(cat "$T/long.out")"; return 1; }
    gw_wait_exit 10 || return 1
    [ "$GW_EXIT" -eq 0 ] || { fail "gateway exit status $GW_EXIT after the drain, want 0"; return 1; }
    [ $((SECONDS - t0)) -le 6 ] || { fail "drain took $((SECONDS - t0)) s with drain_timeout = 3"; return 1; }
    log_has "drain timeout" || return 1
}

t_ops_syslog() {
    local sock=$T/log.sock cap=$T/syslog.txt lp
    "$PY" - "$sock" "$cap" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
with open(sys.argv[2], "ab", buffering=0) as f:
    try:
        while True:
            f.write(s.recv(65536) + b"\n")
    except socket.timeout:
        pass
EOF
    lp=$!
    track "$lp"
    for _ in $(seq 1 50); do [ -S "$sock" ] && break; sleep 0.05; done
    PORT=$(free_port)
    write_config "$T/gw.ini" "127.0.0.1:$PORT" log_target=syslog
    start_gateway env TFTPGW_SYSLOG_SOCKET="$sock" "$GW" --config "$T/gw.ini" || return 1
    hpa octet get f4404 "$T/out" || return 1
    sleep 0.3
    stop_pid "$lp"
    grep -q '^<30>.* tftpgw\[[0-9]*\]: transfer client=.*file="f4404".*result=ok' "$cap" ||
        { fail "no daemon.info transfer line in the syslog capture: $(head -c 300 "$cap")"; return 1; }
    grep -q 'transfer client' "$GW_LOG" &&
        { fail "transfer line went to stderr as well"; return 1; }
    return 0
}

t_ops_json_log() {
    gw_up log_format=json || return 1
    hpa octet get f4404 "$T/out" || return 1
    hpa_expect 1 octet get nothing-here "$T/x" || return 1
    sleep 0.2
    "$PY" - "$GW_LOG" <<'EOF' || { fail "gateway log is not JSON lines: $(head -c 300 "$GW_LOG")"; return 1; }
import json, sys
n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    rec = json.loads(line)
    assert set(rec) >= {"ts", "level", "msg"}, rec
    n += "transfer client=" in rec["msg"]
assert n == 2, n
EOF
}

t_ops_chroot() {
    mkdir -p "$T/jail/files"
    cp "$FIX/f4404" "$T/jail/files/"
    PORT=$(free_port)
    {
        printf '[server]\nlisten = 127.0.0.1:%s\nchroot = %s\n' "$PORT" "$T/jail"
        printf '[backend files]\ntype = file\nroot = %s\n' "$T/jail/files"
        printf '[route all]\nbackend = files\n'
    } > "$T/gw.ini"
    start_gateway "$GW" --config "$T/gw.ini" || return 1
    log_has "chroot $T/jail" || return 1
    [ "$(readlink "/proc/$GW_PID/root")" = "$T/jail" ] ||
        { fail "gateway root is $(readlink "/proc/$GW_PID/root"), want $T/jail"; return 1; }
    hpa octet get f4404 "$T/out" || return 1
    same_file "$T/out" "$FIX/f4404" "get from a chrooted gateway" || return 1
    gw_stop || return 1
    # HTTP needs what a chroot hides: refused at start
    {
        printf '[server]\nlisten = 127.0.0.1:%s\nchroot = %s\n' "$PORT" "$T/jail"
        printf '[backend web]\ntype = http\nurl = http://127.0.0.1:9/\n'
        printf '[route all]\nbackend = web\n'
    } > "$T/http.ini"
    local out rc
    out=$(timeout 10 "$GW" --config "$T/http.ini" --allow-root 2>&1 < /dev/null); rc=$?
    [ $rc -eq 1 ] || { fail "chroot with an http backend: exit $rc: $out"; return 1; }
    case $out in *"file backends only"*) ;; *) fail "chroot with http: message: $out"; return 1 ;; esac
}

t_ops_socket_activation() {
    command -v systemd-socket-activate > /dev/null ||
        { REASON="systemd-socket-activate not installed"; return 77; }
    local unused
    unused=$(free_port)
    PORT=$(free_port)
    write_config "$T/gw.ini" "127.0.0.1:$unused"
    start_gateway systemd-socket-activate -d -l "127.0.0.1:$PORT" "$GW" --config "$T/gw.ini" || return 1
    hpa octet get f50k "$T/out" || return 1
    same_file "$T/out" "$FIX/f50k" "get on the socket systemd passed" || return 1
    log_has "socket activation: 1 socket(s)" || return 1
    udp_bound "$unused" && { fail "configured listen address bound too"; return 1; }
    return 0
}

# rate_burst requests from one address at once: the first `burst` are
# served (here: ERROR 1, the file is missing), the rest refused with ERROR 0.
t_ops_rate_limit() {
    gw_up rate_limit=2 rate_burst=5 || return 1
    local out
    out=$("$PY" - "$PORT" <<'EOF'
import socket, sys, time
sys.path.insert(0, "tests/integration")
port = int(sys.argv[1])
socks = []
for i in range(20):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    s.sendto(b"\x00\x01missing-%d\x00octet\x00" % i, ("127.0.0.1", port))
    socks.append(s)
codes = []
for s in socks:
    try:
        d, _ = s.recvfrom(600)
        codes.append(d[3] if d[1] == 5 else -d[1])
    except socket.timeout:
        codes.append(None)
print(codes.count(1), codes.count(0), codes.count(None))
EOF
)
    read -r nf rl none <<< "$out"
    [ "$nf" = 5 ] && [ "$rl" = 15 ] && [ "$none" = 0 ] ||
        { fail "20 requests at once, burst 5: $nf not-found, $rl rate-limited, $none unanswered (want 5/15/0)"; return 1; }
    log_has "rate limit exceeded" || return 1
    sleep 1.2   # two tokens back
    hpa octet get f4404 "$T/out" || return 1
    same_file "$T/out" "$FIX/f4404" "get after the burst" || return 1
    # each refusal counted once, logged or not (the one logged was counted
    # twice before): 15 rate-limited; the 5 not found are failed transfers
    gw_stop || return 1
    log_has "stopped: 1 ok, 5 failed, 0 declined, 15 refused"
}

# --listen with --config: a reload keeps the command line's addresses and
# does not warn that the file's differ
t_ops_cli_listen_reload() {
    write_config "$T/gw.ini" "127.0.0.1:1"
    gw_cli --config "$T/gw.ini" || return 1
    kill -HUP "$GW_PID"
    log_has "configuration reloaded" || return 1
    if grep -q "listen changed" "$GW_LOG"; then
        fail "the reload warned: $(grep 'listen changed' "$GW_LOG")"; return 1
    fi
    hpa octet get f4404 "$T/out" || return 1
    same_file "$T/out" "$FIX/f4404" "get after the reload"
}

t_ops_session_limits() {
    gw_up max_sessions=2 || return 1
    slow_get f50k "$T/a" 0.02 > /dev/null 2>&1 &
    local a=$!
    slow_get f50k "$T/b" 0.02 > /dev/null 2>&1 &
    local b=$!
    sleep 0.4
    hpa_expect 0 octet get f4404 "$T/c" || return 1
    log_has "server busy" || return 1
    wait "$a" && wait "$b" || { fail "slow gets under max_sessions failed"; return 1; }
    same_file "$T/a" "$FIX/f50k" "first of two sessions" || return 1
    gw_stop || return 1
    gw_up max_sessions_per_client=1 || return 1
    slow_get f50k "$T/d" 0.02 > /dev/null 2>&1 &
    a=$!
    sleep 0.4
    hpa_expect 0 octet get f4404 "$T/e" || return 1
    wait "$a" || { fail "slow get under max_sessions_per_client failed"; return 1; }
    same_file "$T/d" "$FIX/f50k" "the one session per client" || return 1
    gw_stop || return 1
    # requests whose clients never answer (spoofed) cannot lock others out:
    # at max_sessions the oldest unanswered session makes room
    gw_up max_sessions=2 timeout=3000 || return 1
    "$PY" - "$PORT" <<'EOF'
import socket, sys
for i in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.sendto(b"\x00\x01f50k\x00octet\x00", ("127.0.0.1", int(sys.argv[1])))
EOF
    sleep 0.3
    hpa octet get f4404 "$T/f" || return 1
    same_file "$T/f" "$FIX/f4404" "get with the server full of unanswered sessions" || return 1
    log_has "evicted" || return 1
}

run_test ops_check_config        gw_only t_ops_check_config
run_test ops_root_drop           gw_only t_ops_root_drop
run_test ops_reload              gw_only t_ops_reload
run_test ops_drain               gw_only t_ops_drain
run_test ops_syslog              gw_only t_ops_syslog
run_test ops_json_log            gw_only t_ops_json_log
run_test ops_chroot              gw_only t_ops_chroot
run_test ops_socket_activation   gw_only t_ops_socket_activation
run_test ops_rate_limit          gw_only t_ops_rate_limit
run_test ops_cli_listen_reload   gw_only t_ops_cli_listen_reload
run_test ops_session_limits      gw_only t_ops_session_limits
