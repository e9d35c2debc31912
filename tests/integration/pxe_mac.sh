# tests/integration/pxe_mac.sh - {client_mac} in route keys: the client's
# MAC from the kernel's neighbour table (gateway/neighwait.c); sourced by
# run.sh (bash), which runs the tests named pxe_mac_*.
#
# A MAC is only in a neighbour table for a client on a directly attached
# network, which loopback is not, so each test builds its own network
# namespaces (names unique to this run) and deletes them at the end, even
# when the test fails or the run is interrupted:
#
#   A (client)  veth 52:54:00:5e:00:02 10.77.1.2 ── 10.77.1.1 52:54:00:5e:00:01  GW
#                                      fd77:1::2 ── fd77:1::1
#   C (client)  10.77.3.2 ── 10.77.3.1  R (router)  10.77.2.2 ── 10.77.2.1       GW
#
# The gateway (and nginx, for the HTTP test) run inside GW and listen on
# port 69 of every address there; the clients are tftp-hpa's tftp inside A
# and C (curl for the s3 upload). Every address is private to these namespaces. Without the right
# to create namespaces (not root, or no CONFIG_NET_NS) the tests skip.

MAC_A=52:54:00:5e:00:02          # the directly attached client's MAC
MAC_A_KEY=52-54-00-5e-00-02      # as {client_mac} spells it
MAC_C=52:54:00:5e:00:03
MNS_GW="" MNS_A="" MNS_R="" MNS_C=""

# mac_net_down: delete this test's namespaces (their veths go with them)
mac_net_down() {
    local ns
    for ns in "$MNS_GW" "$MNS_A" "$MNS_R" "$MNS_C"; do
        [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null
    done
    MNS_GW="" MNS_A="" MNS_R="" MNS_C=""
}

# mac_net_up: the four namespaces and three links above; 77 when they
# cannot be made
mac_net_up() {
    local sfx=$$.$RANDOM
    MNS_GW=tgmac-gw.$sfx MNS_A=tgmac-a.$sfx MNS_R=tgmac-r.$sfx MNS_C=tgmac-c.$sfx
    if ! ip netns add "$MNS_GW" 2> "$T/netns.err"; then
        MNS_GW=""
        REASON="cannot create a network namespace: $(head -c 200 "$T/netns.err")"
        mac_net_down
        return 77
    fi
    # from here on an interrupted run still deletes what was made
    trap 'mac_net_down; lib_cleanup' EXIT
    ip netns add "$MNS_A" && ip netns add "$MNS_R" && ip netns add "$MNS_C" &&
        ip -n "$MNS_GW" link add ga type veth peer name ag netns "$MNS_A" &&
        ip -n "$MNS_GW" link add gr type veth peer name rg netns "$MNS_R" &&
        ip -n "$MNS_R" link add rc type veth peer name cr netns "$MNS_C" &&
        ip -n "$MNS_GW" link set dev ga address 52:54:00:5e:00:01 &&
        ip -n "$MNS_A" link set dev ag address "$MAC_A" &&
        ip -n "$MNS_C" link set dev cr address "$MAC_C" &&
        ip -n "$MNS_GW" addr add 10.77.1.1/24 dev ga &&
        ip -n "$MNS_A" addr add 10.77.1.2/24 dev ag &&
        ip -n "$MNS_GW" addr add 10.77.2.1/24 dev gr &&
        ip -n "$MNS_R" addr add 10.77.2.2/24 dev rg &&
        ip -n "$MNS_R" addr add 10.77.3.1/24 dev rc &&
        ip -n "$MNS_C" addr add 10.77.3.2/24 dev cr &&
        ip -n "$MNS_GW" addr add fd77:1::1/64 dev ga nodad &&
        ip -n "$MNS_A" addr add fd77:1::2/64 dev ag nodad ||
        { fail "setting up the namespaces failed"; return 1; }
    local x
    for x in "$MNS_GW lo" "$MNS_GW ga" "$MNS_GW gr" "$MNS_A lo" "$MNS_A ag" "$MNS_R lo" \
        "$MNS_R rg" "$MNS_R rc" "$MNS_C lo" "$MNS_C cr"; do
        # shellcheck disable=SC2086 # "namespace device"
        ip -n ${x% *} link set dev ${x#* } up || { fail "link up $x failed"; return 1; }
    done
    ip netns exec "$MNS_R" sysctl -qw net.ipv4.ip_forward=1 &&
        ip -n "$MNS_GW" route add 10.77.3.0/24 via 10.77.2.2 &&
        ip -n "$MNS_C" route add default via 10.77.3.1 ||
        { fail "routes through R failed"; return 1; }
    return 0
}

# mac_config [HTTP_URL [S3_URL]]: file routes, and an http or s3 route for
# each URL given
mac_config() {
    {
        echo "[server]"
        echo "listen = 0.0.0.0:69 [::]:69"
        echo "timeout = 1000"
        echo "retries = 3"
        echo
        echo "[backend files]"
        echo "type = file"
        echo "root = $ROOT"
        if [ -n "${1:-}" ]; then
            echo
            echo "[backend web]"
            echo "type = http"
            echo "url = $1"
            echo
            echo "[route boot]"
            echo "match = boot/"
            echo "backend = web"
            echo "key = hosts/{client_mac}/{rest}"
        fi
        if [ -n "${2:-}" ]; then
            echo
            echo "[backend store]"
            echo "type = s3"
            echo "endpoint = $2"
            echo "bucket = $S3_BUCKET"
            echo "region = us-east-1"
            echo "path_style = yes"
            echo "access_key = S3RVER"
            echo "secret_key = S3RVER"
            echo "spool_dir = $T/spool"
            echo "part_size = 5M"
            echo
            echo "[route s3]"
            echo "match = s3/"
            echo "backend = store"
            echo "write = overwrite"
            echo "key = devices/{client_mac}/{basename}"
        fi
        echo
        echo "[route cfg]"
        echo "match = cfg/"
        echo "backend = files"
        echo "write = create"
        echo "key = configs/{client_mac}/{basename}"
        echo
        echo "[route all]"
        echo "match ="
        echo "backend = files"
    } > "$T/gw.ini"
}

# mac_gw_up: the gateway inside GW, ready when it says so
mac_gw_up() {
    local a=()
    [ "$(id -u)" = 0 ] && a=(--allow-root)
    ip netns exec "$MNS_GW" "$GW" --config "$T/gw.ini" "${a[@]}" >> "$GW_LOG" 2>&1 < /dev/null &
    GW_PID=$!
    track "$GW_PID"
    local i
    for i in $(seq 1 100); do
        grep -q "ready" "$GW_LOG" && return 0
        kill -0 "$GW_PID" 2>/dev/null || break
        sleep 0.1
    done
    fail "gateway did not start in $MNS_GW: $(tail -n 3 "$GW_LOG" | tr '\n' ' ')"
}

# mac_tftp NS SERVER ARGS...: tftp-hpa inside a namespace; prints what it said
mac_tftp() {
    local ns=$1 server=$2
    shift 2
    ip netns exec "$ns" timeout 20 tftp -m octet "$server" -c "$@" 2>&1
}

# mx FUNCTION: a test with namespaces, always torn down
mx() {
    [ -n "$PEER" ] && { REASON="gateway-specific ({client_mac})"; return 77; }
    command -v ip > /dev/null || { REASON="iproute2 not installed"; return 77; }
    local rc
    mac_net_up
    rc=$?
    if [ $rc -eq 0 ]; then
        "$@"
        rc=$?
    fi
    gw_verdict $rc
    rc=$?
    [ -n "${MPEER_PID:-}" ] && stop_pid "$MPEER_PID"
    MPEER_PID=""
    mac_net_down
    trap lib_cleanup EXIT
    REASON=$GW_REASON
    return $rc
}

# A directly attached client uploads x.cfg: it is stored under its own MAC,
# reads back through the same route, and the transfer line says mac=.
t_pxe_mac_upload() {
    mac_config
    mac_gw_up || return 1
    head -c 3000 /dev/urandom > "$T/x.cfg"
    local out
    out=$(cd "$T" && mac_tftp "$MNS_A" 10.77.1.1 put x.cfg cfg/x.cfg) ||
        { fail "tftp put from A: $out"; return 1; }
    [ -z "$out" ] || { fail "tftp put from A said: $out"; return 1; }
    same_file "$ROOT/configs/$MAC_A_KEY/x.cfg" "$T/x.cfg" "stored under A's MAC" || return 1
    [ "$(find "$ROOT/configs" -type f | wc -l)" = 1 ] ||
        { fail "more than one file stored: $(find "$ROOT/configs" -type f)"; return 1; }
    out=$(mac_tftp "$MNS_A" 10.77.1.1 get cfg/x.cfg "$T/back.cfg") ||
        { fail "tftp get from A: $out"; return 1; }
    same_file "$T/back.cfg" "$T/x.cfg" "read back by A" || return 1
    log_has "transfer client=10.77.1.2:" " mac=$MAC_A_KEY op=WRQ" "route=cfg" \
        "key=\"configs/$MAC_A_KEY/x.cfg\"" "result=ok" || return 1
    log_has " mac=$MAC_A_KEY op=RRQ" "bytes=3000" "result=ok" || return 1
    # over IPv6 the entry comes from neighbour discovery: the same MAC
    head -c 1500 /dev/urandom > "$T/v6.cfg"
    out=$(cd "$T" && mac_tftp "$MNS_A" fd77:1::1 put v6.cfg cfg/v6.cfg) ||
        { fail "tftp put over IPv6 from A: $out"; return 1; }
    same_file "$ROOT/configs/$MAC_A_KEY/v6.cfg" "$T/v6.cfg" "IPv6 upload stored under A's MAC" ||
        return 1
    log_has "transfer client=[fd77:1::2]:" " mac=$MAC_A_KEY op=WRQ" "result=ok" || return 1
    # a route without {client_mac} makes no lookup and logs no mac=
    out=$(mac_tftp "$MNS_A" 10.77.1.1 get f4404 "$T/f4404") || { fail "get f4404: $out"; return 1; }
    same_file "$T/f4404" "$FIX/f4404" "get f4404 from A" || return 1
    log_has "op=RRQ file=\"f4404\" route=all" "result=ok" || return 1
    if log_lines "file=\"f4404\"" | grep -q "mac="; then
        fail "a route without {client_mac} logged a MAC"; return 1
    fi
}

# A client behind the router R: ERROR 2 (RFC 1350's "Access violation"; the
# detail "client MAC unknown" is the log's), the log says
# why, nothing is stored; the same client is served by a route without it.
t_pxe_mac_routed() {
    mac_config
    mac_gw_up || return 1
    head -c 700 /dev/urandom > "$T/x.cfg"
    local out
    out=$(cd "$T" && mac_tftp "$MNS_C" 10.77.2.1 put x.cfg cfg/x.cfg)
    [[ $out == *"Error code 2: Access violation"* ]] ||
        { fail "put from C behind R: want ERROR 2 client MAC unknown, got: $out"; return 1; }
    [ ! -e "$ROOT/configs" ] || { fail "something was stored: $(find "$ROOT/configs")"; return 1; }
    log_has "info client MAC unknown client=10.77.3.2:" \
        "not on a directly attached network (via 10.77.2.2)" || return 1
    log_has "refused client=10.77.3.2:" "op=WRQ" "code=2" "msg=\"client MAC unknown\"" || return 1
    out=$(mac_tftp "$MNS_C" 10.77.2.1 get cfg/x.cfg "$T/nope")
    [[ $out == *"Error code 2: Access violation"* ]] ||
        { fail "get from C: want ERROR 2, got: $out"; return 1; }
    out=$(mac_tftp "$MNS_C" 10.77.2.1 get f4404 "$T/f4404") || { fail "get f4404 from C: $out"; return 1; }
    same_file "$T/f4404" "$FIX/f4404" "get f4404 from C" || return 1
    # the gateway asking itself: a local address, not a neighbour
    out=$(cd "$T" && mac_tftp "$MNS_GW" 10.77.1.1 put x.cfg cfg/x.cfg)
    [[ $out == *"Error code 2: Access violation"* ]] ||
        { fail "put from the gateway's own namespace: want ERROR 2, got: $out"; return 1; }
    log_has "client MAC unknown client=10.77.1.1:" || return 1
}

# The http backend sends X-TFTP-Client-MAC and the key names the MAC.
t_pxe_mac_http() {
    local d=$T/ngx
    mkdir -p "$d/logs" "$d/tmp" "$d/root/base/hosts/$MAC_A_KEY"
    head -c 5000 /dev/urandom > "$d/root/base/hosts/$MAC_A_KEY/boot.ipxe"
    chmod -R a+rX "$d/root"
    cat > "$d/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log info;
events { worker_connections 64; }
http {
    log_format t '\$request_method "\$request_uri" \$status mac="\$http_x_tftp_client_mac" '
                 'xc="\$http_x_tftp_client"';
    access_log $d/logs/access.log t;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    server { listen 127.0.0.1:8080; root $d/root; }
}
EOF
    ip netns exec "$MNS_GW" nginx -e "$d/logs/error.log" -p "$d" -c "$d/nginx.conf" \
        >> "$d/logs/stderr" 2>&1 < /dev/null &
    MPEER_PID=$!
    track "$MPEER_PID"
    local i
    for i in $(seq 1 50); do
        ip netns exec "$MNS_GW" timeout 1 bash -c 'exec 3<> /dev/tcp/127.0.0.1/8080' 2>/dev/null &&
            break
        sleep 0.1
    done
    mac_config http://127.0.0.1:8080/base/
    mac_gw_up || return 1
    local out
    out=$(mac_tftp "$MNS_A" 10.77.1.1 get boot/boot.ipxe "$T/boot.ipxe") ||
        { fail "get boot/boot.ipxe from A: $out"; return 1; }
    same_file "$T/boot.ipxe" "$d/root/base/hosts/$MAC_A_KEY/boot.ipxe" "boot.ipxe via nginx" ||
        return 1
    grep -qF "GET \"/base/hosts/$MAC_A_KEY/boot.ipxe\" 200 mac=\"$MAC_A_KEY\" xc=\"10.77.1.2\"" \
        "$d/logs/access.log" ||
        { fail "nginx access log lacks the MAC header: $(tail -n 3 "$d/logs/access.log" | tr '\n' '|')"; return 1; }
    log_has " mac=$MAC_A_KEY op=RRQ" "route=boot" "bytes=5000" "result=ok" || return 1
    # behind the router: refused before anything goes upstream
    out=$(mac_tftp "$MNS_C" 10.77.2.1 get boot/boot.ipxe "$T/nope")
    [[ $out == *"Error code 2: Access violation"* ]] ||
        { fail "get from C: want ERROR 2, got: $out"; return 1; }
    [ "$(grep -c . "$d/logs/access.log")" = 1 ] ||
        { fail "nginx saw $(grep -c . "$d/logs/access.log") requests, want 1"; return 1; }
}

# The s3 backend: the object is named by the MAC, and both the PUT and the
# GET carry X-TFTP-Client-MAC (s3rver checks their SigV4 signatures).
t_pxe_mac_s3() {
    s3_setup || return $?
    local log=$T/s3req.log out i port=""
    mkdir -p "$T/s3data" "$T/spool"
    : > "$log"
    ip netns exec "$MNS_GW" env S3RVER_REQLOG="$log" node "$HERE/s3rver-launch.js" "$S3_MODDIR" \
        "$T/s3data" 0 "$S3_BUCKET" > "$T/s3rver.out" 2> "$T/s3rver.err" < /dev/null &
    MPEER_PID=$!
    track "$MPEER_PID"
    for i in $(seq 1 100); do
        port=$(awk '/^listening / { n = split($2, a, ":"); print a[n] }' "$T/s3rver.out")
        [ -n "$port" ] && break
        kill -0 "$MPEER_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] || { fail "s3rver did not start: $(tail -n 3 "$T/s3rver.err" | tr '\n' ' ')"; return 1; }
    mac_config "" "http://127.0.0.1:$port"
    mac_gw_up || return 1
    head -c 2000 /dev/urandom > "$T/x.cfg"
    # curl sends tsize: one signed PUT
    out=$(ip netns exec "$MNS_A" timeout 20 curl -sS --connect-timeout 2 -T "$T/x.cfg" \
        tftp://10.77.1.1/s3/x.cfg 2>&1) || { fail "curl put from A: $out"; return 1; }
    grep -qE "^PUT /$S3_BUCKET/devices/$MAC_A_KEY/x.cfg 200 .* mac=$MAC_A_KEY\$" "$log" ||
        { fail "s3rver saw no signed PUT with the MAC: $(tail -n 3 "$log" | tr '\n' '|')"; return 1; }
    out=$(mac_tftp "$MNS_A" 10.77.1.1 get s3/x.cfg "$T/back.cfg") || { fail "get from A: $out"; return 1; }
    same_file "$T/back.cfg" "$T/x.cfg" "read back from s3 by A" || return 1
    grep -qE "^GET /$S3_BUCKET/devices/$MAC_A_KEY/x.cfg 200 .* mac=$MAC_A_KEY\$" "$log" ||
        { fail "s3rver saw no GET with the MAC: $(tail -n 3 "$log" | tr '\n' '|')"; return 1; }
    log_has " mac=$MAC_A_KEY op=WRQ" "route=s3" "key=\"devices/$MAC_A_KEY/x.cfg\"" "result=ok" ||
        return 1
    # tftp-hpa sends no tsize: past part_size a multipart upload, whose
    # parts carry it too
    head -c $(((5 << 20) + 300000)) /dev/urandom > "$T/y.cfg"
    out=$(cd "$T" && mac_tftp "$MNS_A" 10.77.1.1 put y.cfg s3/y.cfg) || { fail "put y.cfg: $out"; return 1; }
    # how the bytes fall into parts depends on when the spool fills, so:
    # at least one part, and every part carries the MAC
    local parts
    parts=$(grep -cE "^PUT /$S3_BUCKET/devices/$MAC_A_KEY/y.cfg\?partNumber=" "$log")
    [ "$parts" -ge 1 ] || { fail "s3rver saw no part of y.cfg: $(tail -n 3 "$log" | tr '\n' '|')"; return 1; }
    [ "$(grep -cE "^PUT /$S3_BUCKET/devices/$MAC_A_KEY/y.cfg\?partNumber=[0-9]+&.* 200 .* mac=$MAC_A_KEY\$" "$log")" = "$parts" ] ||
        { fail "a part of y.cfg without the MAC: $(grep partNumber "$log" | tr '\n' '|')"; return 1; }
    out=$(mac_tftp "$MNS_A" 10.77.1.1 get s3/y.cfg "$T/back-y.cfg") || { fail "get y.cfg: $out"; return 1; }
    same_file "$T/back-y.cfg" "$T/y.cfg" "multipart upload read back by A"
}

run_test pxe_mac_upload mx t_pxe_mac_upload
run_test pxe_mac_routed mx t_pxe_mac_routed
run_test pxe_mac_http   mx t_pxe_mac_http
run_test pxe_mac_s3     mx t_pxe_mac_s3
