#!/usr/bin/env bash
# tests/topology/run.sh - two tftpgw instances behind an nftables balancer,
# sharing one nginx proxy_cache tier (docs/guide-scale-out.md).
#
# Network namespaces of this run (all deleted at exit, whatever happened):
#   c1..c4  clients 10.231.0.11-14 on a bridge in lb
#   lb      the balancer: bridge 10.231.0.1 and the VIP 10.231.0.69; routes
#           to 10.231.1.0/24 (gw1), 10.231.2.0/24 (gw2), 10.231.3.0/24 (tier);
#           nftables DNATs UDP VIP:69 by jhash of client address . port
#   g1, g2  tftpgw in single-port mode on 0.0.0.0:69 (10.231.1.2, 10.231.2.2),
#           a cache backend over the tier
#   tier    nginx proxy_cache on 10.231.3.2:8080 in front of the origin, a
#           second nginx serving the artifacts on 127.0.0.1:8081
# The nftables ruleset, the gateways' configuration and the tier's nginx
# configuration are the guide's listings (the fenced blocks after its
# <!-- topology:NAME --> markers); only cache directories and log paths are
# replaced.
#
# The storm: 40 RRQs (curl blksize 1468, a few tftp-hpa at 512) of three
# random files of about 1, 3 and 8 MiB, all at once, 10 per client
# namespace. Checked: every download's sha256; 40 transfers logged ok, each
# instance at least one, every one with a client's real address; each client
# saw replies from VIP:69 only (nftables counters in the client namespaces);
# one GET per file in the origin's log; in the tier's log, one GET per file
# from each instance that served it and none from one that did not.
#
# Usage: bash tests/topology/run.sh   (make test-topology)
# Environment:
#   TFTPGW_BIN  gateway binary (default: ./tftpgw at the repository root)
#   TOPO_MAX    seconds the whole run may take (default 120)
#   KEEP=1      keep the work directory (kept anyway on failure, without
#               the big files)
# Exit status: 0 passed, or skipped (printed as SKIP: needs root, ip, nft,
# network namespaces, nftables NAT); 1 a check failed; 2 set-up impossible.

set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
GW=${TFTPGW_BIN:-$REPO/tftpgw}
GUIDE=$REPO/docs/guide-scale-out.md
TOPO_MAX=${TOPO_MAX:-120}
NS=tgtp$$
VIP=10.231.0.69
GW_ADDR=(10.231.1.2 10.231.2.2)
TIER=10.231.3.2
NCLI=4
NREQ=40
ARTS=(boot/grubx64.efi boot/initrd.img boot/vmlinuz)
ART_SIZES=($(((1 << 20) + 333)) $(((3 << 20) + 1)) $(((8 << 20) - 7)))

PIDS=()
NSS=()
WORK=""
ERRS=()

say() { echo "topology: $*"; }
bad() { ERRS+=("$*"); say "FAIL: $*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

track() { PIDS+=("$1"); }
untrack() {
    local i
    for i in "${!PIDS[@]}"; do [ "${PIDS[$i]}" = "$1" ] && unset 'PIDS[i]'; done
}

# stop_pid PID: TERM, up to 5 s, then KILL; its exit status in STOP_ST
STOP_ST=""
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    STOP_ST=$?
    untrack "$pid"
}

cleanup() {
    local pid n
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null; done
    NSS=()
    [ -n "$WORK" ] || return 0
    if [ "${KEEP:-0}" = 1 ]; then
        say "kept $WORK"
    elif [ ${#ERRS[@]} -gt 0 ]; then
        find "$WORK" -type f -size +1M -delete
        say "logs of this run kept in $WORK"
    else
        rm -rf -- "$WORK"
    fi
}

skip() { say "SKIP: $*"; exit 0; }
die() { say "$*"; exit 2; }

nsx() { local n=$1; shift; ip netns exec "$NS-$n" "$@"; }

# guide_block NAME: the fenced block after <!-- topology:NAME --> in the guide
guide_block() {
    awk -v m="<!-- topology:$1 -->" '
        $0 == m { f = 1; next }
        f && /^```/ { if (in_b) exit; in_b = 1; next }
        in_b { print }' "$GUIDE"
}

# ------------------------------------------------------------------ set-up

preflight() {
    [ "$(id -u)" = 0 ] || skip "needs root (network namespaces, port 69)"
    command -v ip > /dev/null || skip "ip(8) not installed (iproute2)"
    command -v nft > /dev/null || skip "nft not installed (tests/deps.sh installs nftables)"
    local c
    for c in nginx curl tftp python3; do
        command -v "$c" > /dev/null || die "$c not installed (make deps)"
    done
    [ -x "$GW" ] || die "no gateway binary at $GW (make tftpgw)"
    [ -f "$GUIDE" ] || die "no $GUIDE"
}

ns_add() {
    ip netns add "$NS-$1" 2> "$WORK/ns.err" || return 1
    NSS+=("$NS-$1")
    ip -n "$NS-$1" link set lo up
}

# veth LB_IF LB_ADDR NSNAME NS_ADDR: a link from lb to NSNAME, whose default
# route is the lb end
veth() {
    ip -n "$NS-lb" link add "$1" type veth peer name e0 netns "$NS-$3" &&
        ip -n "$NS-lb" addr add "$2/24" dev "$1" && ip -n "$NS-lb" link set "$1" up &&
        ip -n "$NS-$3" addr add "$4/24" dev e0 && ip -n "$NS-$3" link set e0 up &&
        ip -n "$NS-$3" route add default via "$2"
}

# net_links: the bridge of the clients, the links to the instances and the
# tier, forwarding on the balancer
net_links() {
    local i
    ip -n "$NS-lb" link add br0 type bridge &&
        ip -n "$NS-lb" addr add 10.231.0.1/24 dev br0 &&
        ip -n "$NS-lb" addr add "$VIP/24" dev br0 &&
        ip -n "$NS-lb" link set br0 up || return 1
    for i in $(seq 1 "$NCLI"); do
        ip -n "$NS-c$i" link add e0 type veth peer name "lbc$i" netns "$NS-lb" &&
            ip -n "$NS-lb" link set "lbc$i" master br0 up &&
            ip -n "$NS-c$i" addr add "10.231.0.1$i/24" dev e0 &&
            ip -n "$NS-c$i" link set e0 up &&
            ip -n "$NS-c$i" route add default via 10.231.0.1 || return 1
    done
    veth lg1 10.231.1.1 g1 "${GW_ADDR[0]}" &&
        veth lg2 10.231.2.1 g2 "${GW_ADDR[1]}" &&
        veth ltier 10.231.3.1 tier "$TIER" &&
        nsx lb sysctl -qw net.ipv4.ip_forward=1
}

net_up() {
    ns_add lb || skip "cannot create a network namespace: $(head -n 1 "$WORK/ns.err")"
    local n i
    for n in g1 g2 tier $(seq -f 'c%g' 1 "$NCLI"); do
        ns_add "$n" || die "ip netns add $NS-$n: $(head -n 1 "$WORK/ns.err")"
    done
    net_links > "$WORK/net.log" 2>&1 || die "namespace set-up: $(tail -n 2 "$WORK/net.log" | tr '\n' ' ')"
    # older kernels attach conntrack helpers by port when this is 1
    if nsx lb test -f /proc/sys/net/netfilter/nf_conntrack_helper; then
        nsx lb sysctl -qw net.netfilter.nf_conntrack_helper=0 >> "$WORK/net.log" 2>&1
    fi
    # can this kernel do nftables NAT at all? (a skip); the guide's own
    # ruleset failing to load is a failure
    printf '%s\n' 'table ip tgtp_probe {' \
        '    chain p { type nat hook prerouting priority dstnat; policy accept; }' '}' |
        nsx lb nft -f - >> "$WORK/net.log" 2>&1 ||
        skip "nftables NAT unavailable here: $(tail -n 1 "$WORK/net.log")"
    nsx lb nft delete table ip tgtp_probe
    guide_block nft > "$WORK/lb.nft"
    grep -q 'dnat to jhash' "$WORK/lb.nft" || die "no nftables listing in $GUIDE"
    nsx lb nft -f "$WORK/lb.nft" > "$WORK/nft.err" 2>&1 ||
        { bad "the guide's nftables ruleset does not load: $(head -n 3 "$WORK/nft.err" | tr '\n' ' ')"; return 1; }
    # the test's own eyes in each client: UDP from VIP:69, and anything else
    for i in $(seq 1 "$NCLI"); do
        nsx "c$i" nft -f - <<EOF || { bad "client probe table in c$i"; return 1; }
table ip tgtp_seen {
    counter vip {}
    counter other {}
    chain in {
        type filter hook input priority filter; policy accept;
        ip saddr $VIP udp sport 69 counter name "vip" accept
        meta l4proto udp counter name "other"
    }
}
EOF
    done
}

fixtures() {
    local i
    mkdir -p "$WORK/origin/root/boot"
    for i in 0 1 2; do
        head -c "${ART_SIZES[$i]}" /dev/urandom > "$WORK/origin/root/${ARTS[$i]}"
    done
    chmod -R a+rX "$WORK/origin/root"
}

tcp_ready_in() {
    nsx "$1" timeout 1 bash -c 'exec 3<> "/dev/tcp/$1/$2"' _ "$2" "$3" 2>/dev/null
}

# nginx_in DIR HTTP_BODY ADDR PORT: nginx in the tier namespace with DIR as
# prefix; HTTP_BODY goes inside http {}
nginx_in() {
    local d=$1 body=$2 addr=$3 port=$4 pid i
    mkdir -p "$d/logs" "$d/tmp"
    cat > "$d/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log info;
events { worker_connections 1024; }
http {
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    default_type application/octet-stream;
$body
}
EOF
    ip netns exec "$NS-tier" nginx -e "$d/logs/error.log" -p "$d" -c "$d/nginx.conf" \
        >> "$d/logs/stderr" 2>&1 < /dev/null &
    pid=$!
    track "$pid"
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        tcp_ready_in tier "$addr" "$port" && return 0
        sleep 0.1
    done
    bad "nginx ($d) did not start: $(tail -n 3 "$d/logs/error.log" "$d/logs/stderr" 2>/dev/null | tr '\n' ' ')"
    return 1
}

peers_up() {
    local o=$WORK/origin t=$WORK/tier
    nginx_in "$o" "    log_format o '\$remote_addr \$request_method \"\$request_uri\" \$status \$body_bytes_sent';
    access_log $o/logs/access.log o;
    server { listen 127.0.0.1:8081; root $o/root; }" 127.0.0.1 8081 || return 1
    mkdir -p "$t/cache"
    guide_block nginx | sed -e "s|/var/cache/nginx/tftp|$t/cache|" \
        -e "s|/var/log/nginx/tftp-tier.log|$t/logs/access.log|" > "$t/tier.conf"
    grep -q 'proxy_cache_lock on' "$t/tier.conf" || die "no nginx listing in $GUIDE"
    nginx_in "$t" "    include $t/tier.conf;" "$TIER" 8080
}

# gw_up N: instance N (1, 2) in namespace gN with the guide's configuration
GW_PIDS=()
gw_up() {
    local n=$1 d=$WORK/gw$1 pid i
    mkdir -p "$d"
    guide_block tftpgw | sed -e "s|/var/cache/tftpgw/edge|$d/cache|" > "$d/tftpgw.ini"
    grep -q 'single_port = yes' "$d/tftpgw.ini" || die "no tftpgw listing in $GUIDE"
    ip netns exec "$NS-g$n" "$GW" --config "$d/tftpgw.ini" --allow-root >> "$d/tftpgw.log" 2>&1 < /dev/null &
    pid=$!
    track "$pid"
    GW_PIDS[$n]=$pid
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        # UDP port 69 (0045) bound inside the namespace
        nsx "g$n" awk 'FNR > 1 && substr($2, length($2) - 4) == ":0045" { f = 1 } END { exit !f }' \
            /proc/net/udp && return 0
        sleep 0.05
    done
    bad "gateway $n did not bind port 69: $(tail -n 3 "$d/tftpgw.log" | tr '\n' ' ')"
    return 1
}

# ------------------------------------------------------------------ storm

storm() {
    local i c a tool out pids=() rc t0 t1 failed=0
    mkdir -p "$WORK/out"
    t0=$(now_ms)
    for i in $(seq 0 $((NREQ - 1))); do
        c=$((i % NCLI + 1))
        a=$(((i / NCLI) % 3))
        out=$WORK/out/$i
        echo "$a" > "$out.art"
        # every fifth round tftp-hpa (blksize 512), the rest curl
        if [ $(((i / NCLI) % 5)) = 4 ]; then
            tool=hpa
            ip netns exec "$NS-c$c" timeout 90 tftp -m octet "$VIP" 69 -c get "${ARTS[$a]}" "$out" \
                > "$out.log" 2>&1 &
        else
            tool=curl
            ip netns exec "$NS-c$c" timeout 90 curl -sS --connect-timeout 2 --max-time 85 \
                --tftp-blksize 1468 -o "$out" "tftp://$VIP/${ARTS[$a]}" > "$out.log" 2>&1 &
        fi
        echo "$tool c$c" > "$out.who"
        pids[$i]=$!
        track "${pids[$i]}"
    done
    for i in $(seq 0 $((NREQ - 1))); do
        wait "${pids[$i]}"
        rc=$?
        untrack "${pids[$i]}"
        [ $rc -eq 0 ] || { bad "request $i ($(cat "$WORK/out/$i.who") ${ARTS[$(cat "$WORK/out/$i.art")]}): exit $rc: $(head -c 200 "$WORK/out/$i.log")"; failed=$((failed + 1)); }
    done
    t1=$(now_ms)
    STORM_MS=$((t1 - t0))
    [ $failed -eq 0 ] || return 1
}

# ------------------------------------------------------------------ checks

sha() { sha256sum < "$1" | cut -c1-64; }

check_bytes() {
    local i a want=() n=0
    for a in 0 1 2; do want[$a]=$(sha "$WORK/origin/root/${ARTS[$a]}"); done
    for i in $(seq 0 $((NREQ - 1))); do
        a=$(cat "$WORK/out/$i.art")
        if [ -f "$WORK/out/$i" ] && [ "$(sha "$WORK/out/$i")" = "${want[$a]}" ]; then
            n=$((n + 1))
        else
            bad "request $i (${ARTS[$a]}): not byte-exact ($(stat -c %s "$WORK/out/$i" 2>/dev/null || echo no) bytes, want ${ART_SIZES[$a]})"
        fi
    done
    say "byte-exact downloads: $n of $NREQ"
}

# the summary lines of instance N
transfers() { grep ' transfer client=' "$WORK/gw$1/tftpgw.log"; }

check_instances() {
    local i n total=0 ok=0 cnt=()
    # a read is logged after its final ACK: give the last ones a moment
    for i in $(seq 1 50); do
        ok=$(cat "$WORK"/gw1/tftpgw.log "$WORK"/gw2/tftpgw.log | grep ' transfer client=' | grep -c 'result=ok')
        [ "$ok" -ge "$NREQ" ] && break
        sleep 0.1
    done
    for n in 1 2; do
        cnt[$n]=$(transfers "$n" | grep -c 'result=ok')
        total=$((total + $(transfers "$n" | wc -l)))
        [ "${cnt[$n]}" -ge 1 ] || bad "instance $n carried no transfer (jhash sent all $NREQ flows to one side?)"
        if transfers "$n" | grep -qv 'client=10\.231\.0\.1[1-4]:'; then
            bad "instance $n logged a transfer not from a client's own address: $(transfers "$n" | grep -v 'client=10\.231\.0\.1[1-4]:' | head -n 1)"
        fi
    done
    [ "$ok" = "$NREQ" ] || bad "$ok transfers logged result=ok, want $NREQ"
    [ "$total" = "$NREQ" ] || bad "$total transfer lines, want $NREQ: $(cat "$WORK"/gw[12]/tftpgw.log | grep ' transfer ' | grep -v result=ok | head -n 2 | tr '\n' ' ')"
    SPLIT="${cnt[1]}/${cnt[2]}"
    say "transfers per instance: gw1 ${cnt[1]}, gw2 ${cnt[2]}"
}

counter_of() { nsx "$1" nft list counter ip tgtp_seen "$2" | sed -n 's/.*packets \([0-9]*\).*/\1/p'; }

check_clients() {
    local i v o line=""
    for i in $(seq 1 "$NCLI"); do
        v=$(counter_of "c$i" vip) o=$(counter_of "c$i" other)
        line="$line c$i:$v/$o"
        [ "${v:-0}" -gt 0 ] || bad "client c$i received nothing from $VIP:69"
        [ "${o:-1}" = 0 ] || bad "client c$i received $o UDP packets not from $VIP:69"
    done
    say "client packets from VIP:69 / from elsewhere:$line"
}

check_upstream() {
    local a n ol=$WORK/origin/logs/access.log tl=$WORK/tier/logs/access.log g want line=""
    for a in "${ARTS[@]}"; do
        n=$(grep -cF "GET \"/$a\" " "$ol")
        [ "$n" = 1 ] || bad "origin: $n GETs of /$a, want exactly 1"
        line="$line $a:$n"
    done
    n=$(wc -l < "$ol")
    [ "$n" = 3 ] || bad "origin: $n requests, want 3: $(tr '\n' '|' < "$ol")"
    say "origin GETs:$line"
    line=""
    for g in 1 2; do
        for a in "${ARTS[@]}"; do
            n=$(grep -F "${GW_ADDR[$((g - 1))]} GET \"/$a\" " "$tl" | grep -c .)
            # one fill per instance and file (the edge cache's own dedupe),
            # none where no client of that instance asked
            want=0
            transfers "$g" | grep -qF "file=\"$a\"" && want=1
            [ "$n" = "$want" ] || bad "tier: $n GETs of /$a from gw$g, want $want"
            line="$line gw$g:$a:$n"
        done
    done
    say "tier GETs:$line"
    say "tier log: $(awk '{ print $1, $3, $5 }' "$tl" | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
}

stop_instances() {
    local n
    for n in 1 2; do
        stop_pid "${GW_PIDS[$n]}"
        [ "$STOP_ST" = 0 ] || bad "gateway $n exit status $STOP_ST after SIGTERM"
        grep -E 'cache edge:' "$WORK/gw$n/tftpgw.log" | sed "s/^/topology: gw$n /"
    done
}

# ------------------------------------------------------------------ main

main() {
    local t0 t1 ct
    t0=$(now_ms)
    preflight
    WORK=$(mktemp -d /tmp/tftpgw-topo.XXXXXX) || exit 2
    chmod 755 "$WORK"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    fixtures
    if net_up && peers_up && gw_up 1 && gw_up 2; then
        say "up: VIP $VIP:69 -> ${GW_ADDR[*]}, tier $TIER:8080, origin 127.0.0.1:8081 ($(($(now_ms) - t0)) ms)"
        storm
        say "storm: $NREQ RRQs in $STORM_MS ms"
        ct=$(nsx lb cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null)
        say "balancer conntrack entries after the storm: ${ct:-?}"
        check_bytes
        check_instances
        check_clients
        check_upstream
        stop_instances
    fi
    t1=$(now_ms)
    [ $((t1 - t0)) -le $((TOPO_MAX * 1000)) ] ||
        bad "the run took $((t1 - t0)) ms, more than TOPO_MAX=$TOPO_MAX s"
    if [ ${#ERRS[@]} -gt 0 ]; then
        say "FAIL (${#ERRS[@]} problems) in $((t1 - t0)) ms"
        exit 1
    fi
    say "PASS: $NREQ transfers (gw1/gw2 $SPLIT) in $STORM_MS ms, whole run $((t1 - t0)) ms"
}

main "$@"
