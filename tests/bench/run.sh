#!/bin/bash
# tests/bench/run.sh - tftpgw against tftpd-hpa, atftpd and dnsmasq, in one
# run, on loopback; writes docs/performance.md and docs/performance.png.
#
#   make bench                    (REPS=3, about 6 minutes on 2 idle cores)
#   QUICK=1 make bench            (one repetition, half the storm, ~1 minute)
#   bash tests/bench/run.sh --report [RUNDIR]
#                                 write the report again from the raw results
#                                 of RUNDIR (default build/bench/latest)
#
# Servers (SERVERS, space separated, default all): gw-file, gw-http (nginx on
# loopback), gw-cache (cache backend in front of that nginx, warmed first),
# gw-sp (file, single-port), gw-w2 and gw-cache-w2 (file and cache with 2
# workers, on both CPUs, storms only), tftpd-hpa, atftpd, dnsmasq. The peers come from Debian packages unpacked
# into build/peers/ (`apt-get download` + `dpkg -x`, never installed: their
# packages start services on port 69). dnsmasq serves TFTP on port 69 only,
# so it runs in a network namespace created here, and so does its client.
# Servers run on CPU SERVER_CPU (0), the load generator on CLIENT_CPU (1),
# nginx on NGINX_CPU (1).
#
# Scenarios (SCENARIOS): ls1468 ws8 ws16 ws32 ws64 ls8192 storm mem slope
# by default (slope: tests/bench/memslope.sh, memory per active transfer on
# the file, http, s3 and cache backends, new and old binary); storm1000 (1000 RRQs of a 1 MiB file, all in flight: the issue's
# 1000-client check) only when named. Each repetition is one interleaved
# round: every scenario runs against every server once before the next
# repetition.
#
# Old and new binary in one run: TFTPGW_OLD_BIN (and TFTPGW_OLD_REV, its
# label) adds old-file, old-http and old-cache, the same backends served by
# that binary, interleaved with the others; the report then has a table of
# new/old ratios (`make bench-compare OLD=REV` builds REV and sets both).
#
# Environment: REPS (3), QUICK=1, SERVERS, SCENARIOS, TFTPLOAD (load
# generator, default build/tftpload, built with make when missing),
# TFTPGW_BIN, SERVER_CPU, CLIENT_CPU, NGINX_CPU, OUT_MD, OUT_PNG, KEEP=1
# (keep the temporary directory). Raw results: build/bench/run-DATE/
# (raw.csv, oack.csv, meta.env, commands.txt, logs/); build/bench/latest
# points at the last one.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/../integration" && pwd)
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"
HTTP_SH_LIB_ONLY=1
. "$HERE/http.sh"

OUT_MD=${OUT_MD:-$REPO/docs/performance.md}
OUT_PNG=${OUT_PNG:-$REPO/docs/performance.png}
TOOL=("$PY" "$BENCH/benchtool.py")

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*"; }

# ---------------------------------------------------------------- report only

if [ "${1:-}" = "--report" ]; then
    RUN=${2:-$REPO/build/bench/latest}
    [ -f "$RUN/raw.csv" ] || die "no $RUN/raw.csv"
    "${TOOL[@]}" report "$RUN" "$OUT_MD" "$OUT_PNG" || exit 1
    say "wrote $OUT_MD and $OUT_PNG from $RUN"
    exit 0
fi

# ---------------------------------------------------------------- parameters

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    REPS=${REPS:-1}
    STORM_COUNT=${STORM_COUNT:-100} STORM_CONC=${STORM_CONC:-50}
else
    REPS=${REPS:-3}
    STORM_COUNT=${STORM_COUNT:-200} STORM_CONC=${STORM_CONC:-100}
fi
BIG_MIB=${BIG_MIB:-32}
STORM_MIB=${STORM_MIB:-8}
MEM_MIB=${MEM_MIB:-8}
STORM1000_MIB=${STORM1000_MIB:-1}
MEM_CLIENTS=${MEM_CLIENTS:-100}
MEM_WINDOWSIZE=64 MEM_BLKSIZE=1468
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
NGINX_CPU=${NGINX_CPU:-1}
RSS_SAMPLE_S=0.05
OLD_GW=${TFTPGW_OLD_BIN:-}
OLD_REV=${TFTPGW_OLD_REV:-}
if [ -n "$OLD_GW" ]; then
    SERVERS=${SERVERS:-gw-file old-file gw-sp old-sp gw-w2 gw-http old-http gw-cache old-cache gw-cache-w2 tftpd-hpa atftpd dnsmasq}
else
    SERVERS=${SERVERS:-gw-file gw-sp gw-w2 gw-http gw-cache gw-cache-w2 tftpd-hpa atftpd dnsmasq}
fi
SCENARIOS=${SCENARIOS:-ls1468 ws8 ws16 ws32 ws64 ls8192 storm mem slope}
TFTPLOAD=${TFTPLOAD:-$REPO/build/tftpload}
PEERS_DIR=$REPO/build/peers
NOTES=()

# scenario -> "FILE BLKSIZE WINDOWSIZE COUNT CONCURRENCY TSIZE LIMIT_S";
# windowsize 1 means the option is not sent at all (a plain RFC 2348 client)
declare -A SC=(
    [ls1468]="big 1468 1 1 1 0 120"
    [ws8]="big 1468 8 1 1 0 120"
    [ws16]="big 1468 16 1 1 0 120"
    [ws32]="big 1468 32 1 1 0 120"
    [ws64]="big 1468 64 1 1 0 120"
    [ls8192]="big 8192 1 1 1 0 120"
    [storm]="storm 1468 1 $STORM_COUNT $STORM_CONC 1 400"
    [storm1000]="small 1468 1 1000 1000 1 600"
)
# 1000 clients: a socket each in the load generator, two descriptors per
# session in a server
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)" 2> /dev/null

# ---------------------------------------------------------------- checks, set-up

[ -x "$GW" ] || die "no gateway binary at $GW (run make first)"
[ -z "$OLD_GW" ] || [ -x "$OLD_GW" ] || die "no old gateway binary at $OLD_GW"
# tftpgw refuses root without [server] user unless told; the bench drops nothing.
ALLOW_ROOT=""; [ "$(id -u)" = 0 ] && ALLOW_ROOT=--allow-root
if [ ! -x "$TFTPLOAD" ]; then
    make -C "$REPO" --no-print-directory build/tftpload > /dev/null ||
        die "no load generator at $TFTPLOAD and \`make build/tftpload\` failed"
fi
[ "$(nproc)" -ge 2 ] || NOTES+=("only $(nproc) CPU: server and client share it")
command -v taskset > /dev/null || die "taskset missing (util-linux)"
command -v nginx > /dev/null || die "nginx not installed (make deps)"

apt_fetch() {   # apt_fetch PKG...: .debs into the current directory
    apt-get download "$@" > /dev/null 2>&1 && return 0
    apt-get update -qq > /dev/null 2>&1
    apt-get download "$@" > /dev/null 2>&1
}

# Bench-only dependency: gnuplot draws the chart. Not in tests/deps.sh, since
# only the benchmark needs it.
if ! command -v gnuplot > /dev/null; then
    say "installing gnuplot-nox (bench only)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends gnuplot-nox > /dev/null 2>&1 ||
        { apt-get update -qq > /dev/null 2>&1
          apt-get install -y -qq --no-install-recommends gnuplot-nox > /dev/null 2>&1; } ||
        NOTES+=("gnuplot-nox could not be installed: no chart")
fi

# The peers, unpacked: tftpd-hpa and atftpd conflict as installed packages
# and all three start services on port 69. The libraries they need that a
# build machine may lack come along.
PEER_PKGS="tftpd-hpa atftpd dnsmasq-base libwrap0 libnetfilter-conntrack3 libnfnetlink0
           libnftables1 libnftnl11 libjansson4 libxtables12 libmnl0"
PEER_LIB=$PEERS_DIR/usr/lib/x86_64-linux-gnu:$PEERS_DIR/lib/x86_64-linux-gnu
peers_fetch() {
    local want=0 b
    for b in in.tftpd atftpd dnsmasq; do [ -x "$PEERS_DIR/usr/sbin/$b" ] || want=1; done
    [ $want = 1 ] || return 0
    say "fetching the peer servers into build/peers (apt-get download + dpkg -x)"
    mkdir -p "$PEERS_DIR/debs"
    chmod 777 "$PEERS_DIR/debs"   # apt's _apt user downloads into it
    # shellcheck disable=SC2086 # a list of package names
    (cd "$PEERS_DIR/debs" && apt_fetch $PEER_PKGS) || {
        NOTES+=("apt-get download of the peers failed: peers skipped"); return 1; }
    local d
    for d in "$PEERS_DIR"/debs/*.deb; do dpkg -x "$d" "$PEERS_DIR"; done
}
peer_ok() {   # peer_ok BINARY: present and every library found
    [ -x "$PEERS_DIR/usr/sbin/$1" ] || return 1
    ! LD_LIBRARY_PATH=$PEER_LIB ldd "$PEERS_DIR/usr/sbin/$1" 2>/dev/null | grep -q 'not found'
}
has_server() { [[ " $SERVERS " == *" $1 "* ]]; }
has_scen() { [[ " $SCENARIOS " == *" $1 "* ]]; }
case " $SERVERS " in *" tftpd-hpa "*|*" atftpd "*|*" dnsmasq "*) peers_fetch ;; esac
drop_server() {
    local s=$1 new="" x
    for x in $SERVERS; do [ "$x" = "$s" ] || new="$new $x"; done
    SERVERS=${new# }
}
for pair in tftpd-hpa:in.tftpd atftpd:atftpd dnsmasq:dnsmasq; do
    s=${pair%%:*} b=${pair#*:}
    if has_server "$s" && ! peer_ok "$b"; then
        NOTES+=("$s left out: build/peers/usr/sbin/$b missing or a library not found")
        drop_server "$s"
    fi
done
NS=""

STAMP=$(date +%Y%m%d-%H%M%S)
RUN=$REPO/build/bench/run-$STAMP
mkdir -p "$RUN/logs"
ln -sfn "run-$STAMP" "$REPO/build/bench/latest"
CSV=$RUN/raw.csv
OACK=$RUN/oack.csv
CMDS=$RUN/commands.txt
: > "$CMDS"

lib_init
bench_cleanup() {
    lib_cleanup
    if [ -n "$NS" ]; then ip netns del "$NS" 2> /dev/null; fi
}
trap bench_cleanup EXIT
if has_server dnsmasq; then
    NS=tftpgw-bench-$$
    if ! { ip netns add "$NS" && ip netns exec "$NS" ip link set lo up; } 2>/dev/null; then
        ip netns del "$NS" 2> /dev/null
        NS=""
        NOTES+=("dnsmasq left out: could not create a network namespace (needs root)")
        drop_server dnsmasq
    fi
fi
T=$WORK/t
ROOT=$WORK/root
mkdir -p "$T" "$ROOT"
chmod 755 "$ROOT"

say "run directory ${RUN#"$REPO"/}; work directory $WORK"
say "making the files (${BIG_MIB} MiB, ${STORM_MIB} MiB, ${MEM_MIB} MiB)"
head -c $((BIG_MIB << 20)) /dev/urandom > "$ROOT/big.bin"
head -c $((STORM_MIB << 20)) /dev/urandom > "$ROOT/storm.bin"
if [ "$MEM_MIB" = "$BIG_MIB" ]; then ln "$ROOT/big.bin" "$ROOT/mem.bin"
elif [ "$MEM_MIB" = "$STORM_MIB" ]; then ln "$ROOT/storm.bin" "$ROOT/mem.bin"
else head -c $((MEM_MIB << 20)) /dev/urandom > "$ROOT/mem.bin"; fi
if has_scen storm1000; then
    head -c $((STORM1000_MIB << 20)) /dev/urandom > "$ROOT/small.bin"
fi
chmod 644 "$ROOT"/*.bin

# ---------------------------------------------------------------- servers

declare -A SPID SPORT SNS SFORKS
cmd_note() {   # cmd_note WHAT CMD...: record the command, temp dirs made generic
    local line="$1:"
    shift
    line="$line $*"
    line=${line//"$WORK"/WORK}
    line=${line//"$PEERS_DIR"/build/peers}
    line=${line//"$REPO"\//}
    [ -n "$NS" ] && line=${line//"$NS"/NS}
    # the client of dnsmasq runs in its namespace too: one line says it all
    [[ $line == "load "* ]] && line=${line/": ip netns exec NS "/": "}
    line=$(sed -E 's/--port [0-9]+/--port PORT/; s/--server-pid [0-9]+/--server-pid PID/;
                   s/127\.0\.0\.1:[0-9]+/127.0.0.1:PORT/' <<< "$line")
    grep -qxF -- "$line" "$CMDS" || echo "$line" >> "$CMDS"
}

# wait_udp PID PORT: PID's network namespace has PORT bound (5 s)
wait_udp() {
    local pid=$1 hex i
    hex=$(printf ':%04X' "$2")
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 1
        awk -v h="$hex" 'FNR > 1 && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
            "/proc/$pid/net/udp" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# start_srv NAME PORT NS CMD...: start pinned to SERVER_CPU, log to logs/NAME.log
start_srv() {
    local name=$1 port=$2 ns=$3 pid
    shift 3
    local pre=()
    [ -n "$ns" ] && pre=(ip netns exec "$ns")
    # two workers get both CPUs (the load generator shares one with them)
    local cpus=$SERVER_CPU
    [[ $name == *-w2 ]] && cpus="$SERVER_CPU,$CLIENT_CPU"
    cmd_note "server $name" "${pre[@]}" taskset -c "$cpus" "$@"
    # only the peers take the unpacked libraries
    [[ $1 == "$PEERS_DIR"/* ]] && pre+=(env LD_LIBRARY_PATH="$PEER_LIB")
    # ip netns exec, env and taskset exec: $! is the server itself
    "${pre[@]}" taskset -c "$cpus" "$@" \
        >> "$RUN/logs/$name.log" 2>&1 < /dev/null &
    pid=$!
    track "$pid"
    if wait_udp "$pid" "$port"; then
        SPID[$name]=$pid SPORT[$name]=$port SNS[$name]=$ns
        return 0
    fi
    stop_pid "$pid"
    REASON="$name did not bind UDP port $port: $(tail -n 2 "$RUN/logs/$name.log" | tr '\n' ' ')"
    return 1
}

gw_config() {   # gw_config FILE PORT KIND
    local file=$1 port=$2 kind=$3
    {
        echo "; written by tests/bench/run.sh"
        echo "[server]"
        echo "listen = 127.0.0.1:$port"
        echo "max_blksize = 65464"
        echo "max_windowsize = 64"
        echo "max_sessions = 2000"
        echo
        # sp: the file backend with every transfer on the listening port
        [ "$kind" = sp ] && echo "single_port = yes"
        # w2, cachew2: two workers (two event loops on two threads), on both CPUs
        [ "$kind" = w2 ] || [ "$kind" = cachew2 ] && echo "workers = 2"
        case $kind in
            file|sp|w2)
                echo "[backend b]"; echo "type = file"; echo "root = $ROOT" ;;
            http)
                echo "[backend b]"; echo "type = http"; echo "url = $(ngx_url)" ;;
            cache|cachew2)
                echo "[backend up]"; echo "type = http"; echo "url = $(ngx_url)"; echo
                echo "[backend b]"; echo "type = cache"; echo "upstream = up"
                echo "dir = $WORK/$kind"; echo "max_size = 4G"
                # a day: every measured run is a hit, none a revalidation
                echo "ttl = 86400" ;;
        esac
        echo
        echo "[route all]"
        echo "match ="
        echo "backend = b"
    } > "$file"
}

start_gw() {   # start_gw NAME KIND [BINARY]: old-* names run the old binary
    local name=$1 kind=$2 port bin=${3:-$GW}
    case $name in old-*|mem-old-*) bin=$OLD_GW ;; esac
    for _ in 1 2 3; do
        port=$(free_port)
        gw_config "$T/$name.ini" "$port" "$kind"
        sed -e "s|$WORK|WORK|g" -e "s|127.0.0.1:$port|127.0.0.1:PORT|" \
            -e "s|127.0.0.1:${NGX_PORT:-none}/|127.0.0.1:NGINX_PORT/|" "$T/$name.ini" > "$RUN/logs/$name.ini"
        start_srv "$name" "$port" "" "$bin" --config "$T/$name.ini" $ALLOW_ROOT && return 0
    done
    return 1
}

start_peer() {   # start_peer NAME
    local name=$1 port
    local sbin=$PEERS_DIR/usr/sbin
    case $name in
        tftpd-hpa)
            SFORKS[$name]=1
            for _ in 1 2 3; do
                port=$(free_port)
                start_srv "$name" "$port" "" "$sbin/in.tftpd" --foreground --listen \
                    --address "127.0.0.1:$port" --secure --blocksize 65464 "$ROOT" && return 0
            done ;;
        atftpd)
            for _ in 1 2 3; do
                port=$(free_port)
                start_srv "$name" "$port" "" "$sbin/atftpd" --daemon --no-fork --port "$port" \
                    --bind-address 127.0.0.1 --logfile /dev/null --maxthread 2000 "$ROOT" && return 0
            done ;;
        dnsmasq)
            start_srv "$name" 69 "$NS" "$sbin/dnsmasq" --no-daemon --conf-file=/dev/null \
                --port=0 --enable-tftp --tftp-root="$ROOT" --listen-address=127.0.0.1 \
                --bind-interfaces --no-resolv --no-hosts --user=nobody --group=nogroup \
                --tftp-max=2000 --log-facility="$T/dnsmasq.log" && return 0 ;;
    esac
    return 1
}

NGX_UP=0
if has_server gw-http || has_server gw-cache || has_server old-http || has_server old-cache ||
    has_server gw-cache-w2 || has_scen mem; then
    if nginx_up; then
        NGX_UP=1
        taskset -pc "$NGINX_CPU" "$NGX_PID" > /dev/null
        ln "$ROOT"/*.bin "$NGX_ROOT/"
        cmd_note "upstream nginx" "nginx -p WORK/t/ngx -c WORK/t/ngx/nginx.conf (tests/integration/http.sh nginx_up), then taskset -pc $NGINX_CPU PID"
    else
        NOTES+=("nginx did not start ($REASON): http and cache backends left out")
        drop_server gw-http
        drop_server gw-cache
        drop_server old-http
        drop_server old-cache
        drop_server gw-cache-w2
    fi
fi

for s in $SERVERS; do
    case $s in
        gw-file|old-file) start_gw "$s" file ;;
        gw-sp|old-sp) start_gw "$s" sp ;;
        gw-w2) start_gw "$s" w2 ;;
        gw-http|old-http) start_gw "$s" http ;;
        gw-cache|old-cache) start_gw "$s" cache ;;
        gw-cache-w2) start_gw "$s" cachew2 ;;
        *) start_peer "$s" ;;
    esac || { NOTES+=("$s left out: $REASON"); say "$REASON"; drop_server "$s"; }
done
[ -n "$SERVERS" ] || die "no server started"
say "servers: $(for s in $SERVERS; do printf '%s=%s ' "$s" "${SPID[$s]}"; done)"

# ---------------------------------------------------------------- measuring

stat_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null; }
# utime + stime + cutime + cstime in clock ticks: reaped children included
cpu_ticks() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    st=${st##*) }
    awk '{print $12 + $13 + $14 + $15}' <<< "$st"
}
HZ=$(getconf CLK_TCK)

CSV_HEAD=rep,scenario,server,blksize,windowsize,count,concurrency,file_bytes,rc,transfers_ok,transfers_failed,bytes,seconds,aggregate_MBps,p50_s,p99_s,tl_cpu_s,tl_peak_rss_kib,cpu_s,upstream_cpu_s,peak_rss_kib,rss_method,idle_rss_kib
echo "$CSV_HEAD" > "$CSV"
echo "server,req_blksize,req_windowsize,blksize,windowsize,tsize" > "$OACK"

# load NAME SCEN FILE BLK WS COUNT CONC TSIZE LIMIT: tftpload against server
# NAME; sets LOAD_OUT (its line) and LOAD_RC
load() {
    local name=$1 scen=$2 file=$3 blk=$4 ws=$5 count=$6 conc=$7 tsize=$8 limit=$9
    local args=(--server 127.0.0.1 --port "${SPORT[$name]}" --file "$file.bin"
                --expect "$ROOT/$file.bin" --blksize "$blk" --count "$count"
                --concurrency "$conc" --server-pid "${SPID[$name]}" --duration-limit "$limit")
    [ "$ws" -gt 1 ] && args+=(--windowsize "$ws")
    [ "$tsize" = 1 ] && args+=(--tsize)
    local pre=()
    [ -n "${SNS[$name]}" ] && pre=(ip netns exec "${SNS[$name]}")
    cmd_note "load $scen" "${pre[@]}" taskset -c "$CLIENT_CPU" "$TFTPLOAD" "${args[@]}"
    echo "== $scen $name" >> "$RUN/logs/tftpload.err"
    LOAD_OUT=$(timeout $((limit + 30)) "${pre[@]}" taskset -c "$CLIENT_CPU" "$TFTPLOAD" "${args[@]}" \
        2>> "$RUN/logs/tftpload.err")
    LOAD_RC=$?
    LOAD_OUT=$(printf '%s\n' "$LOAD_OUT" | grep 'transfers_ok=' | tail -n 1)
}

kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<< "$LOAD_OUT"; }

# measure REP SCEN NAME [FILE BLK WS COUNT CONC TSIZE LIMIT]: one run, one CSV row
measure() {
    local rep=$1 scen=$2 name=$3
    shift 3
    local spec
    if [ $# -gt 0 ]; then spec="$*"; else spec=${SC[$scen]}; fi
    local file blk ws count conc tsize limit
    read -r file blk ws count conc tsize limit <<< "$spec"
    local pid=${SPID[$name]}
    # single-port mode differs from per-port only where many transfers share
    # the listening socket: the storms
    case $name:$scen in *-sp:storm*|*-w2:storm*) ;; *-sp:*|*-w2:*) return 0 ;; esac
    if ! kill -0 "$pid" 2>/dev/null; then
        say "$name is not running any more (see build/bench/.../logs/$name.log)"
        NOTES+=("$name died during the run (rep $rep, before $scen)")
        drop_server "$name"
        return 1
    fi
    local idle
    idle=$(stat_kib "$pid" VmRSS)
    echo 5 > "/proc/$pid/clear_refs" 2>/dev/null   # VmHWM := VmRSS
    local c0 u0=0 u1=0 sampler="" method=hwm
    c0=$(cpu_ticks "$pid")
    [ "$NGX_UP" = 1 ] && u0=$(cpu_ticks "$NGX_PID")
    if [ -n "${SFORKS[$name]:-}" ]; then
        method=sampled-sum
        taskset -c "$CLIENT_CPU" "${TOOL[@]}" tree-sample "$pid" "$RSS_SAMPLE_S" > "$T/tree.out" &
        sampler=$!
        track "$sampler"
    fi
    load "$name" "$scen" "$file" "$blk" "$ws" "$count" "$conc" "$tsize" "$limit"
    # let the sampler see tftpd-hpa's children end their last ACK wait
    [ -n "$sampler" ] && sleep 0.2
    local c1 peak kids=0
    c1=$(cpu_ticks "$pid")
    [ "$NGX_UP" = 1 ] && u1=$(cpu_ticks "$NGX_PID")
    if [ -n "$sampler" ]; then
        kill -TERM "$sampler"; wait "$sampler"; untrack "$sampler"
        read -r peak kids < "$T/tree.out"
    else
        peak=$(stat_kib "$pid" VmHWM)
    fi
    local ups=""
    case $name in *-http|*-cache) ups=$(awk -v t=$((u1 - u0)) -v hz="$HZ" 'BEGIN {printf "%.2f", t / hz}') ;; esac
    [ "$scen" = mem ] && ups=""
    local size
    size=$(stat -c %s "$ROOT/$file.bin")
    local rc=$LOAD_RC
    if [ -z "$LOAD_OUT" ] && [ "$rc" = 0 ]; then rc=99; fi   # no result line: a failed run
    printf '%s\n' "$rep,$scen,${ROW_NAME:-$name},$blk,$ws,$count,$conc,$size,$rc,$(kv transfers_ok),$(kv transfers_failed),$(kv bytes),$(kv seconds),$(kv aggregate_MBps),$(kv p50_s),$(kv p99_s),$(kv server_cpu_s),$(kv server_peak_rss_kib),$(awk -v t=$((c1 - c0 + kids)) -v hz="$HZ" 'BEGIN {printf "%.2f", t / hz}'),$ups,$peak,$method,$idle" >> "$CSV"
    local extra=""
    [ "$count" -gt 1 ] && extra=" p99 $(kv p99_s) s, ok $(kv transfers_ok)/$count"
    [ "$rc" = 0 ] || extra="$extra (exit $rc${LOAD_OUT:+: $LOAD_OUT})"
    say "rep $rep/$REPS $scen ${ROW_NAME:-$name}: $(kv aggregate_MBps) MB/s$extra"
}

# the memory row: a fresh gateway per backend, peak RSS of that process
measure_mem() {
    local rep=$1 kind who
    for kind in file http; do
        [ "$kind" = http ] && [ "$NGX_UP" != 1 ] && continue
        for who in gw ${OLD_GW:+old}; do
            local name=mem-$kind
            [ "$who" = old ] && name=mem-old-$kind
            start_gw "$name" "$kind" || { NOTES+=("memory row, $kind backend: $REASON"); continue; }
            sleep 0.2
            # the CSV names the backend as the other tables do
            ROW_NAME=$who-$kind measure "$rep" mem "$name" mem "$MEM_BLKSIZE" "$MEM_WINDOWSIZE" \
                "$MEM_CLIENTS" "$MEM_CLIENTS" 0 300
            stop_pid "${SPID[$name]}"
        done
    done
}

# slope: memory per active transfer, one memslope.sh round per binary
# (its own gateways, nginx and s3rver): rep,who,backend,kib in slope.csv
measure_slope() {
    local rep=$1 who bin out
    for who in gw ${OLD_GW:+old}; do
        bin=$GW
        [ "$who" = old ] && bin=$OLD_GW
        out=$(TFTPGW_BIN=$bin TFTPLOAD=$TFTPLOAD REPS=1 BACKENDS="file http s3 cache" \
            bash "$REPO/tests/bench/memslope.sh" 2>&1)
        sed -n "s/^memslope: rep 1 \([a-z0-9]*\) .* \([0-9.]*\) KiB per transfer\$/$rep,$who,\1,\2/p" \
            <<< "$out" >> "$RUN/slope.csv"
        grep -q "KiB per transfer" <<< "$out" ||
            NOTES+=("memory slope, $who: $(tail -n 1 <<< "$out")")
        grep -q "left out" <<< "$out" && NOTES+=("$(grep "left out" <<< "$out" | head -n 1)")
        say "slope $who: $(grep -o '[a-z0-9]* *idle.*' <<< "$out" | awk '{printf "%s %s; ", $1, $(NF-3)}')"
    done
}

# probes: what each server grants
for s in $SERVERS; do
    for spec in "1468 64" "8192 "; do
        read -r b w <<< "$spec"
        pre=()
        [ -n "${SNS[$s]}" ] && pre=(ip netns exec "${SNS[$s]}")
        got=$("${pre[@]}" timeout 10 "${TOOL[@]}" probe 127.0.0.1 "${SPORT[$s]}" storm.bin "$b" "$w")
        echo "$s,$b,$w,$(sed -n 's/.*blksize=\([^ ]*\).*/\1/p' <<< "$got"),$(sed -n 's/.*windowsize=\([^ ]*\).*/\1/p' <<< "$got"),$(sed -n 's/.*tsize=\([^ ]*\).*/\1/p' <<< "$got")" >> "$OACK"
        say "probe $s blksize $b${w:+ windowsize $w}: $got"
    done
done
sleep 1   # let the probed sessions time out or end

# warm-up, not measured: the cache fills (a hit from now on), every server
# opens its files once
for s in $SERVERS; do
    for f in storm big small; do
        [ -f "$ROOT/$f.bin" ] || continue
        case $s in *-cache|*-cache-w2) ;; *) [ "$f" != storm ] && continue ;; esac
        load "$s" warmup "$f" 1468 8 1 1 0 120
        [ "$LOAD_RC" = 0 ] || NOTES+=("warm-up of $f.bin on $s failed (exit $LOAD_RC): $LOAD_OUT")
    done
done
sed -i '/^load warmup:/d' "$CMDS"
if has_server gw-cache; then
    n=$(grep -c 'GET "/base/big.bin" 200' "$NGX_DIR/logs/access.log" 2>/dev/null)
    say "cache warmed: nginx served big.bin ${n:-0} time(s)"
fi

# ---------------------------------------------------------------- meta

GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
GIT_DIRTY=0
[ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ] && GIT_DIRTY=1
pv() { dpkg-deb -f "$PEERS_DIR/debs/$1"_*.deb Version 2>/dev/null | head -n 1; }
{
    echo "DATE=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "NPROC=$(nproc)"
    echo "CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)$(grep -q hypervisor /proc/cpuinfo && echo ' (virtual machine)')"
    echo "KERNEL=$(uname -srm)"
    echo "OS=$(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}")"
    echo "GIT_REV=$GIT_REV"
    echo "GIT_DIRTY=$GIT_DIRTY"
    echo "OLD_REV=$OLD_REV"
    echo "GW_CFLAGS=make (CFLAGS -O2 -g)"
    echo "PEER_VERSIONS=tftpd-hpa $(pv tftpd-hpa), atftpd $(pv atftpd), dnsmasq $(pv dnsmasq-base) (Debian packages, unpacked)"
    echo "NGINX_VERSION=nginx $(nginx -v 2>&1 | sed 's/.*nginx\///')"
    echo "QUICK=$QUICK"
    echo "REPS=$REPS"
    echo "BIG_MIB=$BIG_MIB"
    echo "STORM_MIB=$STORM_MIB"
    echo "STORM_COUNT=$STORM_COUNT"
    echo "STORM_CONC=$STORM_CONC"
    echo "MEM_MIB=$MEM_MIB"
    echo "STORM1000_MIB=$STORM1000_MIB"
    echo "MEM_CLIENTS=$MEM_CLIENTS"
    echo "MEM_WINDOWSIZE=$MEM_WINDOWSIZE"
    echo "MEM_BLKSIZE=$MEM_BLKSIZE"
    echo "SERVER_CPU=$SERVER_CPU"
    echo "CLIENT_CPU=$CLIENT_CPU"
    echo "NGINX_CPU=$NGINX_CPU"
    echo "RSS_SAMPLE_S=$RSS_SAMPLE_S"
    echo "RUNDIR_REL=build/bench/run-$STAMP"
    inv="make bench"
    [ "$QUICK" = 1 ] && inv="QUICK=1 make bench"
    [ "$REPS" != 3 ] && [ "$QUICK" != 1 ] && inv="REPS=$REPS make bench"
    [ -n "$OLD_GW" ] && inv="$inv-compare OLD=${OLD_REV:-?}"
    echo "INVOCATION=$inv"
} > "$RUN/meta.env"

# ---------------------------------------------------------------- the rounds

t_start=$SECONDS
echo "LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"
for rep in $(seq 1 "$REPS"); do
    for scen in $SCENARIOS; do
        if [ "$scen" = mem ]; then
            measure_mem "$rep"
            continue
        fi
        if [ "$scen" = slope ]; then
            measure_slope "$rep"
            continue
        fi
        [ -n "${SC[$scen]:-}" ] || die "unknown scenario $scen"
        for s in $SERVERS; do
            measure "$rep" "$scen" "$s"
        done
    done
    say "repetition $rep done after $((SECONDS - t_start)) s"
done

echo "LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"
echo "MEASURE_S=$((SECONDS - t_start))" >> "$RUN/meta.env"
notes=""
for n in "${NOTES[@]}"; do notes="$notes${notes:+ ;; }$n"; done
echo "NOTES=$notes" >> "$RUN/meta.env"

# ---------------------------------------------------------------- report

for s in $SERVERS; do stop_pid "${SPID[$s]}"; done
peers_stop
"${TOOL[@]}" report "$RUN" "$OUT_MD" "$OUT_PNG" || die "report generation failed"
say "wrote ${OUT_MD#"$REPO"/} and ${OUT_PNG#"$REPO"/} from ${RUN#"$REPO"/} in $((SECONDS - t_start)) s of measuring"
fails=$(awk -F, 'NR > 1 && $9 != 0' "$CSV" | wc -l)
if [ "$fails" -gt 0 ]; then
    say "$fails run(s) had failed transfers (rc != 0 in raw.csv)"
    exit 1
fi
exit 0
