# tests/integration/single_port.sh - single-port mode (single_port = yes):
# every transfer served from the listening socket, sessions told apart by the
# client's address:port (sourced by run.sh; bash).
#
#   single_port_matrix       the real clients (tftp-hpa, atftp, curl, busybox)
#   single_port_many_ports   50 concurrent transfers from one address
#   single_port_supersede_and_foreign
#                            a new request from a busy port supersedes, a
#                            duplicate does not, DATA/ACK of nobody get ERROR 5
#   single_port_reupload     one socket uploads one name twice (tftp-hpa's
#                            interactive mode): served at once, as per-port
#   single_port_nat          through a masquerading router in namespaces:
#                            per-port mode fails, single-port mode works
#
# That replies come from the listening port is asserted by rawtests.py's
# session_tid (run under TG_SERVER_EXTRA=single_port=yes) and, here, by
# natclient.py --single for every transfer it makes. natclient.py holds the
# packet-level checks; this file the real clients and the log.

# the [server] lines of TG_SERVER_EXTRA without single_port: these tests set
# it themselves (a key twice is a config error)
sp_extra() {
    local kv out=""
    for kv in ${TG_SERVER_EXTRA:-}; do
        case $kv in single_port=*|single_port_writes=*) ;; *) out="$out $kv" ;; esac
    done
    echo "$out"
}

# sp_up [key=value...]: gw_up in single-port mode, uploads on the shared
# port too (the default, a port per upload, is tested in sec_core.sh)
sp_up() {
    TG_SERVER_EXTRA="$(sp_extra) single_port=yes single_port_writes=yes" gw_up "$@" || return 1
    log_has "listening on $HOST:$PORT" "single-port mode"
}

# spx FUNCTION ARGS...: a gateway-only test
spx() {
    [ -n "$PEER" ] && { REASON="gateway-specific (single_port)"; return 77; }
    "$@"
}

natclient() {
    timeout 100 "$PY" "$HERE/natclient.py" "$@" 2>&1
}

# sp_atftp get|put REMOTE LOCAL WINDOWSIZE: blksize 1468 and tsize as well,
# all three in the OACK
sp_atftp() {
    local op=$1 r=$2 l=$3 ws=$4 flag=-g size rc oack
    [ "$op" = put ] && flag=-p
    timeout 60 atftp --trace --option "blksize 1468" --option "tsize 0" \
        --option "windowsize $ws" $flag -r "$r" -l "$l" "$HOST" "$PORT" > "$T/atftp.trace" 2>&1
    rc=$?
    [ $rc -eq 0 ] || { fail "atftp $op $r windowsize $ws: exit $rc: $(grep -iE 'error|abort|timeout' "$T/atftp.trace" | head -n 3 | tr '\n' ' ')"; return 1; }
    if [ "$op" = get ]; then size=$(stat -c %s "$ROOT/$r"); else size=$(stat -c %s "$l"); fi
    oack=$(grep -m1 'received OACK' "$T/atftp.trace")
    [[ $oack == *"blksize: 1468"* && $oack == *"windowsize: $ws"* && $oack == *"tsize: $size"* ]] ||
        { fail "atftp $op $r windowsize $ws: OACK was '$oack'"; return 1; }
}

# ------------------------------------------------------------ matrix

t_sp_matrix() {
    # windowsize 64 as asked: the cap on what one blind ACK releases is
    # raised, as a network with source-address validation may (sec_core.sh
    # tests the default)
    sp_up single_port_window=4M || return 1
    ln "$FIX/f2M" "$ROOT/f2M"
    local f ws bs
    # tftp-hpa, octet and netascii
    for f in f2M f200k f50k; do
        hpa octet get "$f" "$T/hpa-$f" || return 1
        same_file "$T/hpa-$f" "$FIX/$f" "tftp-hpa get $f" || return 1
        hpa octet put "$FIX/$f" "rw/hpa-$f" || return 1
        same_file "$ROOT/rw/hpa-$f" "$FIX/$f" "tftp-hpa put $f (stored)" || return 1
    done
    for f in text.txt text2.txt; do
        hpa netascii put "$FIX/$f" "rw/na-$f" || return 1
        same_file "$ROOT/rw/na-$f" "$FIX/$f" "tftp-hpa netascii put $f (stored)" || return 1
        hpa netascii get "rw/na-$f" "$T/na-$f" || return 1
        same_file "$T/na-$f" "$FIX/$f" "tftp-hpa netascii get $f" || return 1
    done
    # tftp-hpa's interactive mode: one socket, one client port, four
    # transfers; each new request supersedes a dallying upload
    local out
    out=$(cd "$T" && printf 'binary\nput %s rw/i1\nget f200k i-f200k\nput %s rw/i2\nascii\nget text.txt i-text\nquit\n' \
        "$FIX/f50k" "$FIX/f2M" | timeout 60 tftp "$HOST" "$PORT" 2>&1)
    [[ $out == *rror* || $out == *imed\ out* ]] && { fail "tftp-hpa interactive: $out"; return 1; }
    same_file "$ROOT/rw/i1" "$FIX/f50k" "tftp-hpa interactive put 1 (stored)" || return 1
    same_file "$T/i-f200k" "$FIX/f200k" "tftp-hpa interactive get after a put" || return 1
    same_file "$ROOT/rw/i2" "$FIX/f2M" "tftp-hpa interactive put 2 (stored)" || return 1
    same_file "$T/i-text" "$FIX/text.txt" "tftp-hpa interactive netascii get" || return 1
    # atftp, windowed
    for ws in 8 64; do
        sp_atftp get f2M "$T/at$ws" "$ws" || return 1
        same_file "$T/at$ws" "$FIX/f2M" "atftp get f2M windowsize $ws" || return 1
        sp_atftp put "rw/at$ws" "$FIX/f2M" "$ws" || return 1
        same_file "$ROOT/rw/at$ws" "$FIX/f2M" "atftp put f2M windowsize $ws (stored)" || return 1
    done
    # curl
    for bs in 512 1468; do
        curl_get f2M "$T/curl$bs" --tftp-blksize "$bs" || return 1
        same_file "$T/curl$bs" "$FIX/f2M" "curl get f2M blksize $bs" || return 1
        curl_put "$FIX/f200k" "rw/curl$bs" --tftp-blksize "$bs" || return 1
        same_file "$ROOT/rw/curl$bs" "$FIX/f200k" "curl put f200k blksize $bs (stored)" || return 1
    done
    # busybox (blksize 1468, see bb in run.sh)
    bb -g -r f2M -l "$T/bb" || return 1
    same_file "$T/bb" "$FIX/f2M" "busybox get f2M" || return 1
    bb -p -l "$FIX/f200k" -r rw/bb || return 1
    same_file "$ROOT/rw/bb" "$FIX/f200k" "busybox put f200k (stored)" || return 1
    # errors still come from the listening port's sessions
    hpa_expect 1 octet get nope "$T/x" || return 1
    curl_expect 6 put "$FIX/f1" up/existing || return 1
    # 24 transfers: all logged ok (uploads after their dally)
    local i n=0
    for i in $(seq 1 80); do
        n=$(grep -c 'result=ok' "$GW_LOG")
        [ "$n" -ge 24 ] && break
        sleep 0.1
    done
    [ "$n" -ge 24 ] || { fail "$n result=ok lines for 24 transfers"; return 1; }
    ! grep -q 'result=superseded' "$GW_LOG" || { fail "a transfer was superseded: $(grep -m1 'result=superseded' "$GW_LOG")"; return 1; }
}

# ------------------------------------------------------------ many ports

t_sp_many() {
    sp_up || return 1
    ln "$FIX/f2M" "$ROOT/f2M"
    local pids=() i rc=0 out
    # real clients at the same time, each on its own port too
    for i in 1 2 3 4; do
        timeout 60 curl -sS --connect-timeout 2 --max-time 55 --tftp-blksize 1468 \
            -o "$T/c$i" "$(curl_url f2M)" > "$T/c$i.err" 2>&1 &
        pids+=($!); track $!
    done
    for i in 1 2; do
        timeout 60 tftp -m octet "$HOST" "$PORT" -c put "$FIX/f2M" "rw/hpa$i" > "$T/h$i.err" 2>&1 &
        pids+=($!); track $!
    done
    out=$(natclient many "$HOST" "$PORT" --root "$ROOT" --count 48 --single) || rc=1
    for i in "${pids[@]}"; do
        wait "$i" || rc=2
        untrack "$i"
    done
    [ $rc -eq 1 ] && { fail "natclient many: $(printf '%s\n' "$out" | head -n 4 | tr '\n' ' ')"; return 1; }
    [ $rc -eq 2 ] && { fail "a curl or tftp-hpa client failed: $(cat "$T"/*.err | head -n 3 | tr '\n' ' ')"; return 1; }
    echo "    $out"
    for i in 1 2 3 4; do
        same_file "$T/c$i" "$FIX/f2M" "concurrent curl get $i" || return 1
    done
    for i in 1 2; do
        [ -s "$T/h$i.err" ] && { fail "tftp-hpa put $i: $(cat "$T/h$i.err")"; return 1; }
        same_file "$ROOT/rw/hpa$i" "$FIX/f2M" "concurrent tftp-hpa put $i (stored)" || return 1
    done
    # 56 transfers, each its own session: as many ok lines, from as many ports
    local n ports
    for i in $(seq 1 80); do
        n=$(grep -c 'result=ok' "$GW_LOG")
        [ "$n" -ge 56 ] && break
        sleep 0.1
    done
    [ "$n" -ge 56 ] || { fail "$n result=ok lines for 56 transfers"; return 1; }
    ports=$(grep -o 'transfer client=127.0.0.1:[0-9]*' "$GW_LOG" | sort -u | wc -l)
    [ "$ports" -ge 56 ] || { fail "transfers logged from $ports client ports, want 56"; return 1; }
    ! grep -qE 'result=(superseded|timeout|error)' "$GW_LOG" ||
        { fail "$(grep -m1 -E 'result=(superseded|timeout|error)' "$GW_LOG")"; return 1; }
}

# ------------------------------------------------------------ supersede, duplicates, foreign

t_sp_supersede() {
    sp_up || return 1
    local out port
    out=$(natclient supersede "$HOST" "$PORT" --root "$ROOT") ||
        { fail "supersede: $(printf '%s\n' "$out" | grep FAIL | head -n 3 | tr '\n' ' ')"; return 1; }
    echo "    supersede: $(printf '%s\n' "$out" | tr '\n' ' ')"
    port=$(printf '%s\n' "$out" | sed -n 's/^rrq-mid port=\([0-9]*\).*/\1/p')
    log_has "client=$HOST:$port " 'op=RRQ file="f5M"' 'result=superseded' \
        'error="superseded by a new request from the same port"' || return 1
    log_has "client=$HOST:$port " 'op=RRQ file="f50k"' 'bytes=50000' 'result=ok' || return 1
    port=$(printf '%s\n' "$out" | sed -n 's/^rrq-burst port=\([0-9]*\).*/\1/p')
    log_has "client=$HOST:$port " 'op=RRQ file="f5M"' 'result=superseded' || return 1
    log_has "client=$HOST:$port " 'op=RRQ file="f200k"' 'bytes=200000' 'result=ok' || return 1
    port=$(printf '%s\n' "$out" | sed -n 's/^wrq-mid port=\([0-9]*\).*/\1/p')
    log_has "client=$HOST:$port " 'op=WRQ file="rw/sup-old"' 'result=superseded' || return 1
    log_has "client=$HOST:$port " 'op=WRQ file="rw/sup-new"' 'bytes=100000' 'result=ok' || return 1
    [ -e "$ROOT/rw/sup-old" ] && { fail "the superseded upload rw/sup-old was stored"; return 1; }
    # an upload that had finished (dallying) when the next request came is ok
    port=$(printf '%s\n' "$out" | sed -n 's/^seq port=\([0-9]*\).*/\1/p')
    log_has "client=$HOST:$port " 'op=WRQ file="rw/seq-1"' 'bytes=30000' 'result=ok' || return 1

    out=$(natclient dup "$HOST" "$PORT" --root "$ROOT") ||
        { fail "duplicate requests: $(printf '%s\n' "$out" | grep FAIL | head -n 3 | tr '\n' ' ')"; return 1; }
    local p n op name bytes
    for p in "rrq f200k 200000" "wrq rw/dup 150000"; do
        read -r op name bytes <<< "$p"
        port=$(printf '%s\n' "$out" | sed -n "s/^$op port=\([0-9]*\).*/\1/p")
        log_has "client=$HOST:$port " "file=\"$name\"" "bytes=$bytes" 'result=ok' || return 1
        # one session: no second transfer, no refusal for that port
        n=$(grep -c "client=$HOST:$port " "$GW_LOG")
        [ "$n" = 1 ] || { fail "$op with duplicate requests: $n log lines for its port, want 1: $(grep "client=$HOST:$port " "$GW_LOG" | tr '\n' ' ')"; return 1; }
    done

    out=$(natclient foreign "$HOST" "$PORT" --root "$ROOT") ||
        { fail "foreign: $(printf '%s\n' "$out" | grep FAIL | head -n 3 | tr '\n' ' ')"; return 1; }
    log_has refused 'op=ACK' 'code=5' || return 1
    log_has refused 'op=DATA' 'code=5' || return 1
    log_has 'file="f200k"' 'blksize=1024' 'bytes=200000' 'result=ok' || return 1
    log_has 'file="rw/foreign-sp"' 'bytes=80000' 'result=ok' || return 1
}

# tftp-hpa's interactive mode keeps one socket: "put a x" twice sends the
# second WRQ from the port whose first upload the gateway still dallies on
# (3 s). Per-port mode starts it at once; single-port mode must too, not
# take it for a late duplicate and leave the client to its 5 s retransmit.
t_sp_reupload() {
    sp_up || return 1
    head -c 3000 /dev/urandom > "$T/a"
    head -c 5000 /dev/urandom > "$T/b"
    local out t0 ms
    t0=$(date +%s%N)
    out=$(cd "$T" && printf 'binary\nput a rw/again\nput b rw/again\nquit\n' | timeout 30 tftp "$HOST" "$PORT" 2>&1)
    ms=$((($(date +%s%N) - t0) / 1000000))
    [[ $out == *rror* || $out == *imed\ out* ]] && { fail "tftp-hpa interactive: $out"; return 1; }
    same_file "$ROOT/rw/again" "$T/b" "rw/again after the second put" || return 1
    [ "$ms" -lt 2000 ] || { fail "two puts of one name from one port took $ms ms (per-port mode: ~40 ms): the second WRQ waited for the client's retransmission"; return 1; }
}

# ------------------------------------------------------------ NAT

# Three namespaces of this run: $SP_NS-cli (10.200.1.2 and .3) -- $SP_NS-rt
# (10.200.1.1 | 10.200.2.1, forwarding, nftables masquerade out of r1) --
# $SP_NS-gw (10.200.2.2, no route back to 10.200.1.0/24). The gateway sees
# every client as 10.200.2.1. No conntrack helper is attached (kernels >= 6.0
# never attach one on their own), so a reply from a port other than the one
# the client asked is a new flow at the router: not forwarded.
SP_NS=""
SP_NAT_LOG=""

sp_ns() { ip netns exec "$SP_NS-$1" "${@:2}"; }

sp_nat_down() {
    [ -n "$SP_NS" ] || return 0
    local n
    for n in cli rt gw; do ip netns del "$SP_NS-$n" 2> /dev/null; done
    SP_NS=""
    trap lib_cleanup EXIT
}

sp_nat_up() {
    command -v ip > /dev/null || { REASON="ip(8) not installed (iproute2)"; return 77; }
    command -v nft > /dev/null || { REASON="nft not installed (tests/deps.sh installs nftables)"; return 77; }
    SP_NS=tgsp$$
    trap 'lib_cleanup; sp_nat_down' EXIT
    if ! ip netns add "$SP_NS-cli" 2> "$T/ns.err"; then
        SP_NS=""
        trap lib_cleanup EXIT
        REASON="cannot create a network namespace: $(head -n 1 "$T/ns.err")"
        return 77
    fi
    SP_NAT_LOG=$T/nat-setup.log
    {
        ip netns add "$SP_NS-rt" && ip netns add "$SP_NS-gw" &&
        ip -n "$SP_NS-cli" link set lo up && ip -n "$SP_NS-rt" link set lo up &&
        ip -n "$SP_NS-gw" link set lo up &&
        ip -n "$SP_NS-cli" link add c0 type veth peer name r0 netns "$SP_NS-rt" &&
        ip -n "$SP_NS-rt" link add r1 type veth peer name g0 netns "$SP_NS-gw" &&
        ip -n "$SP_NS-cli" addr add 10.200.1.2/24 dev c0 &&
        ip -n "$SP_NS-cli" addr add 10.200.1.3/24 dev c0 &&
        ip -n "$SP_NS-rt" addr add 10.200.1.1/24 dev r0 &&
        ip -n "$SP_NS-rt" addr add 10.200.2.1/24 dev r1 &&
        ip -n "$SP_NS-gw" addr add 10.200.2.2/24 dev g0 &&
        ip -n "$SP_NS-cli" link set c0 up && ip -n "$SP_NS-rt" link set r0 up &&
        ip -n "$SP_NS-rt" link set r1 up && ip -n "$SP_NS-gw" link set g0 up &&
        ip -n "$SP_NS-cli" route add default via 10.200.1.1 &&
        sp_ns rt sysctl -qw net.ipv4.ip_forward=1
    } > "$SP_NAT_LOG" 2>&1 || { fail "namespace setup: $(tail -n 2 "$SP_NAT_LOG" | tr '\n' ' ')"; return 1; }
    # older kernels attach helpers by port when this is 1; make sure ours does not
    if sp_ns rt test -f /proc/sys/net/netfilter/nf_conntrack_helper; then
        sp_ns rt sysctl -qw net.netfilter.nf_conntrack_helper=0 >> "$SP_NAT_LOG" 2>&1
    fi
    printf '%s\n' 'table ip tgsp_nat {' \
        '    chain post {' \
        '        type nat hook postrouting priority srcnat; policy accept;' \
        '        oifname "r1" masquerade' \
        '    }' \
        '}' | sp_ns rt nft -f - >> "$SP_NAT_LOG" 2>&1 ||
        { REASON="nftables masquerade unavailable here: $(tail -n 1 "$SP_NAT_LOG")"; return 77; }
    return 0
}

# sp_ns_gateway single|perport [key=value...]: the gateway in the gw
# namespace on 10.200.2.2:6969; lib.sh's udp_bound reads the caller's
# /proc/net, so the wait for the port looks from inside the namespace.
sp_ns_gateway() {
    local mode=$1 extra i hex
    shift
    extra=$(sp_extra)
    [ "$mode" = single ] && extra="$extra single_port=yes single_port_writes=yes"
    HOST=10.200.2.2 PORT=6969
    TG_SERVER_EXTRA=$extra write_config "$T/gw-$mode.ini" "$HOST:$PORT" "$@"
    # not through sp_ns: a backgrounded function is a subshell, and GW_PID
    # must be the gateway (ip netns exec execs it) for gw_stop to signal it
    ip netns exec "$SP_NS-gw" "$GW" --config "$T/gw-$mode.ini" --allow-root >> "$GW_LOG" 2>&1 < /dev/null &
    GW_PID=$!
    track "$GW_PID"
    hex=$(printf ':%04X' "$PORT")
    for i in $(seq 1 100); do
        if ! kill -0 "$GW_PID" 2> /dev/null; then
            wait "$GW_PID"
            untrack "$GW_PID"
            GW_PID=""
            fail "gateway in $SP_NS-gw exited at start-up: $(tail -n 3 "$GW_LOG" | tr '\n' ' ')"
            return 1
        fi
        sp_ns gw awk -v h="$hex" 'FNR > 1 && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
            /proc/net/udp && return 0
        sleep 0.05
    done
    fail "gateway did not bind $HOST:$PORT in $SP_NS-gw within 5 s"
}

t_sp_nat_body() {
    ln "$FIX/f2M" "$ROOT/f2M"
    local out rc pids=() i ms t0 cli=(ip netns exec "$SP_NS-cli")

    # 1. per-port mode through the NAT: the request gets through, the
    # answer from the session's own port does not. Short client timeouts.
    GW_LOG=$T/gw-perport.log
    sp_ns_gateway perport timeout=300 retries=2 || return 1
    t0=$(date +%s%N)
    # (ip netns exec execs its command: $! is the client's `timeout`)
    "${cli[@]}" timeout 30 "$PY" "$HERE/natclient.py" probe "$HOST" "$PORT" --root "$ROOT" \
        --bind 10.200.1.2 --timeout 0.5 --retries 2 --tag nat-pp > "$T/pp-probe.out" 2>&1 &
    pids+=($!); track $!
    out=$(cd "$T" && printf 'rexmt 1\ntimeout 2\nbinary\nget f50k pp-hpa\nquit\n' |
        "${cli[@]}" timeout 20 tftp "$HOST" "$PORT" 2>&1)
    wait "${pids[0]}"; untrack "${pids[0]}"
    ms=$((($(date +%s%N) - t0) / 1000000))
    { grep -q '^get: timeout' "$T/pp-probe.out" && grep -q '^put: timeout' "$T/pp-probe.out"; } ||
        { fail "per-port mode through NAT: want client time-outs, got $(tr '\n' ' ' < "$T/pp-probe.out") (a conntrack TFTP helper at work?)"; return 1; }
    [[ $out == *"imed out"* ]] || { fail "per-port mode through NAT: tftp-hpa said '$out', want a time-out"; return 1; }
    [ -e "$ROOT/rw/nat-pp-probe" ] && { fail "per-port upload through NAT stored rw/nat-pp-probe"; return 1; }
    # the gateway did get the requests, from the router's address, and its
    # answers went nowhere
    local f
    for f in f200k rw/nat-pp-probe f50k; do
        log_has 'client=10.200.2.1:' "file=\"$f\"" 'result=timeout' || return 1
    done
    grep -q 'client=10\.200\.1\.' "$GW_LOG" && { fail "per-port gateway saw the client's own address"; return 1; }
    echo "    per-port through NAT: 3 clients timed out in $ms ms, gateway sessions result=timeout"
    gw_stop || return 1

    # 2. single-port mode through the same NAT: everything works, with
    # several clients behind the one address at once
    GW_LOG=$T/gw.log
    sp_ns_gateway single || return 1
    pids=()
    "${cli[@]}" timeout 60 tftp -m octet "$HOST" "$PORT" -c get f2M "$T/nat-hpa" > "$T/nat-hpa-get.out" 2>&1 &
    pids+=($!); track $!
    "${cli[@]}" timeout 60 tftp -m octet "$HOST" "$PORT" -c put "$FIX/f200k" rw/nat-hpa > "$T/nat-hpa-put.out" 2>&1 &
    pids+=($!); track $!
    "${cli[@]}" timeout 60 curl -sS --connect-timeout 2 --max-time 55 --tftp-blksize 1468 \
        -o "$T/nat-curl" "tftp://$HOST:$PORT/f2M" > "$T/nat-curl-get.out" 2>&1 &
    pids+=($!); track $!
    "${cli[@]}" timeout 60 curl -sS --connect-timeout 2 --max-time 55 --tftp-blksize 1468 \
        -T "$FIX/f2M" "tftp://$HOST:$PORT/rw/nat-curl" > "$T/nat-curl-put.out" 2>&1 &
    pids+=($!); track $!
    "${cli[@]}" timeout 60 atftp --option "blksize 1468" --option "windowsize 16" \
        -g -r f2M -l "$T/nat-atftp" "$HOST" "$PORT" > "$T/nat-atftp.out" 2>&1 &
    pids+=($!); track $!
    out=$("${cli[@]}" timeout 100 "$PY" "$HERE/natclient.py" many "$HOST" "$PORT" --root "$ROOT" \
        --count 14 --bind 10.200.1.2 --bind 10.200.1.3 --pair-port 40000 --single --tag nat 2>&1)
    rc=$?
    local bad=""
    for i in "${pids[@]}"; do wait "$i" || bad="$bad $i"; untrack "$i"; done
    [ $rc -eq 0 ] || { fail "single-port through NAT: natclient: $(printf '%s\n' "$out" | head -n 4 | tr '\n' ' ')"; return 1; }
    [ -z "$bad" ] || { fail "single-port through NAT: a client failed: $(cat "$T"/nat-*.out | head -n 3 | tr '\n' ' ')"; return 1; }
    echo "    single-port through NAT: $out"
    same_file "$T/nat-hpa" "$FIX/f2M" "tftp-hpa get through NAT" || return 1
    same_file "$ROOT/rw/nat-hpa" "$FIX/f200k" "tftp-hpa put through NAT (stored)" || return 1
    same_file "$T/nat-curl" "$FIX/f2M" "curl get through NAT" || return 1
    same_file "$ROOT/rw/nat-curl" "$FIX/f2M" "curl put through NAT (stored)" || return 1
    same_file "$T/nat-atftp" "$FIX/f2M" "atftp get windowsize 16 through NAT" || return 1
    # 21 transfers, all from the router's address, each its own port (the
    # two clients that both used source port 40000 got two)
    local n ports
    for i in $(seq 1 80); do
        n=$(grep -c 'result=ok' "$GW_LOG")
        [ "$n" -ge 21 ] && break
        sleep 0.1
    done
    [ "$n" -ge 21 ] || { fail "$n result=ok lines for 21 transfers through NAT"; return 1; }
    n=$(grep -c 'transfer client=' "$GW_LOG")
    [ "$(grep -c 'transfer client=10\.200\.2\.1:' "$GW_LOG")" = "$n" ] ||
        { fail "not every transfer came from the router's address: $(grep 'transfer client=' "$GW_LOG" | grep -v 'client=10\.200\.2\.1:' | head -n 2)"; return 1; }
    ports=$(grep -o 'transfer client=10\.200\.2\.1:[0-9]*' "$GW_LOG" | sort -u | wc -l)
    [ "$ports" -ge 21 ] || { fail "21 transfers through NAT logged from only $ports router ports"; return 1; }
    return 0
}

t_sp_nat() {
    local rc
    sp_nat_up
    rc=$?
    if [ $rc -eq 0 ]; then
        t_sp_nat_body
        rc=$?
    fi
    gw_verdict $rc
    rc=$?
    sp_nat_down
    REASON=$GW_REASON
    return $rc
}

run_test single_port_matrix                 spx t_sp_matrix
run_test single_port_many_ports             spx t_sp_many
run_test single_port_supersede_and_foreign  spx t_sp_supersede
run_test single_port_reupload               spx t_sp_reupload
run_test single_port_nat                    spx t_sp_nat
