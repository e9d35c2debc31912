# tests/integration/lib.sh - helpers for run.sh (sourced, bash).
#
# Every process started here is recorded in PIDS and killed on exit; every
# client runs under `timeout`. A test is a shell function that returns 0
# (pass), 77 (skip) or anything else (fail) with the reason in REASON.
#
# Environment:
#   TFTPGW_BIN   gateway binary (default: ./tftpgw at the repository root)
#   TFTPGW_PEER  reference-server launcher "CMD PORT ROOT TIMEOUT_MS" (e.g. a
#                wrapper around tftpd-hpa) to check the harness itself;
#                gateway-only tests are then skipped
#   KEEP=1       keep the work directory
#   BUDGET=S     skip the tests that would start after S seconds (default 1200)

HERE=${HERE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
REPO=$(cd "$HERE/../.." && pwd)
GW=${TFTPGW_BIN:-$REPO/tftpgw}
PEER=${TFTPGW_PEER:-}
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the source tree

BUDGET=${BUDGET:-1200}
PIDS=()
NPASS=0 NFAIL=0 NSKIP=0
FAILED=()
REASON=""
GW_PID="" GW_LOG="" PORT="" HOST=127.0.0.1 ROOT="" T=""
WORK=""

lib_cleanup() {
    local pid="" i
    # TERM first: a `timeout` wrapper passes it on to its child
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
    done
    for i in 1 2 3 4 5 6 7 8 9 10; do
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && break; pid=""; done
        [ -z "$pid" ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    [ -n "$WORK" ] || return 0
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept $WORK"
    elif [ "$NFAIL" -gt 0 ]; then
        # keep what explains a failure (logs, configs, client output), not the data
        rm -rf -- "$WORK/fix"
        find "$WORK/t" -mindepth 2 -maxdepth 2 -name root -exec rm -rf -- {} +
        find "$WORK/t" -type f -size +1M -delete
        echo "logs of this run kept in $WORK/t"
    else
        rm -rf -- "$WORK"
    fi
}

lib_init() {
    WORK=$(mktemp -d /tmp/tftpgw-it.XXXXXX) || exit 2
    chmod 755 "$WORK"
    trap lib_cleanup EXIT
    trap 'exit 130' INT TERM
}

track() { PIDS+=("$1"); }

# forget a pid we have already reaped
untrack() {
    local i
    for i in "${!PIDS[@]}"; do [ "${PIDS[$i]}" = "$1" ] && unset 'PIDS[i]'; done
}

fail() { REASON="$*"; return 1; }

free_port() {
    "$PY" -c 'import socket,sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "${1:-127.0.0.1}"
}

# A free TCP port on 127.0.0.1 (nginx, the metrics endpoint).
free_tcp_port() {
    "$PY" -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

have_ipv6() {
    "$PY" -c 'import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::1", 0))' 2>/dev/null
}

# udp_bound PORT: some socket listens on UDP PORT (v4 or v6)
udp_bound() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v h=":$hex" 'FNR > 1 && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
        /proc/net/udp /proc/net/udp6 2>/dev/null
}

sha() { sha256sum < "$1" | cut -c1-64; }

# same_file GOT WANT WHAT
same_file() {
    [ -f "$1" ] || { fail "$3: $1 missing"; return 1; }
    local a b
    a=$(sha "$1") b=$(sha "$2")
    [ "$a" = "$b" ] && return 0
    fail "$3: sha256 ${a:0:16} ($(stat -c %s "$1") bytes), want ${b:0:16} ($(stat -c %s "$2") bytes)"
}

# ---------------------------------------------------------------- fixtures

FIX=""
make_fixtures() {
    FIX=$WORK/fix
    mkdir -p "$FIX"
    : > "$FIX/f0"
    local n
    for n in 1 511 512 513 4404 50000 200000; do
        head -c "$n" /dev/urandom > "$FIX/f$n"
    done
    mv "$FIX/f50000" "$FIX/f50k"
    mv "$FIX/f200000" "$FIX/f200k"
    head -c $((5 << 20)) /dev/urandom > "$FIX/f5M"
    head -c $((40 << 20)) /dev/urandom > "$FIX/f40M"
    head -c $((2 << 20)) /dev/urandom > "$FIX/f2M"
    printf 'first line\nbare\rcarriage return\n\n\r\r\nCRLF in the file\r\nno newline at the end' \
        > "$FIX/text.txt"
    "$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import rawtests
open(sys.argv[2], "wb").write(rawtests.netascii_text())' "$HERE" "$FIX/text2.txt"
    chmod 644 "$FIX"/*
}

# a fresh root: fixtures hard-linked, up/ and rw/ with one file each
make_root() {
    ROOT=$1
    mkdir -p "$ROOT"
    cp -al "$FIX/." "$ROOT/"
    rm -f "$ROOT/f40M" "$ROOT/f2M"
    mkdir -p "$ROOT/up" "$ROOT/rw"
    echo "existing in up" > "$ROOT/up/existing"
    echo "existing in rw" > "$ROOT/rw/existing"
    chmod 755 "$ROOT"
    chmod 777 "$ROOT/up" "$ROOT/rw"
    chmod 666 "$ROOT/up/existing" "$ROOT/rw/existing"
}

# ---------------------------------------------------------------- gateway

# write_config FILE LISTEN key=value...: the suite's standard configuration;
# server_extra: the [server] lines every test config gets from
# TG_SERVER_EXTRA ("single_port=yes ..."), to rerun the suite in another mode.
# TFTPGW_WORKERS=N adds "workers = N" to every config that does not set
# workers itself (to rerun groups with several worker loops).
server_extra() {
    local kv have=${1:-}
    for kv in ${TG_SERVER_EXTRA:-}; do
        [ "${kv%%=*}" = workers ] && have=1
        echo "${kv%%=*} = ${kv#*=}"
    done
    [ -n "${TFTPGW_WORKERS:-}" ] && [ -z "$have" ] && echo "workers = $TFTPGW_WORKERS"
    return 0
}

# key=value pairs override [server] keys (timeout, retries, max_blksize, ...)
write_config() {
    local file=$1 listen=$2
    shift 2
    declare -A kv=([timeout]=1000 [retries]=5 [max_blksize]=65464 [max_windowsize]=64)
    local order=(timeout retries max_blksize max_windowsize) p k
    for p in "$@"; do
        k=${p%%=*}
        [ -n "${kv[$k]+x}" ] || order+=("$k")
        kv[$k]=${p#*=}
    done
    {
        echo "; written by tests/integration/run.sh"
        echo "[server]"
        echo "listen = $listen"
        server_extra "${kv[workers]:-}"
        for k in "${order[@]}"; do echo "$k = ${kv[$k]}"; done
        echo
        echo "[backend files]"
        echo "type = file"
        echo "root = $ROOT"
        echo
        echo "[route uploads]"
        echo "match = up/"
        echo "backend = files"
        echo "write = create"
        echo "max_size = 1M"
        echo
        echo "[route rw]"
        echo "match = rw/"
        echo "backend = files"
        echo "write = overwrite"
        echo
        echo "[route all]"
        echo "match ="
        echo "backend = files"
    } > "$file"
}

# start_gateway CMD...: run a server whose stderr goes to GW_LOG, wait until
# PORT is bound. Sets GW_PID.
start_gateway() {
    # Started as root with no user set, tftpgw drops to nobody; the tests
    # run as root and their files are root's, so they keep root (peers get
    # no such flag) unless GW_DROP=1 asks for the default.
    local a
    if [ "$(id -u)" = 0 ] && [ "${GW_DROP:-0}" != 1 ]; then
        for a in "$@"; do [ "$a" = "$GW" ] && { set -- "$@" --allow-root; break; }; done
    fi
    "$@" >> "$GW_LOG" 2>&1 < /dev/null &
    GW_PID=$!
    track "$GW_PID"
    local i
    for i in $(seq 1 100); do
        if ! kill -0 "$GW_PID" 2>/dev/null; then
            wait "$GW_PID"
            local st=$?
            untrack "$GW_PID"
            GW_PID=""
            fail "gateway exited at start-up (status $st): $(tail -n 3 "$GW_LOG" | tr '\n' ' ')"
            return 1
        fi
        udp_bound "$PORT" && return 0
        sleep 0.05
    done
    fail "gateway did not bind UDP port $PORT within 5 s"
}

# gw_up [host=ADDR] [key=value...]: standard config, a free port, started.
gw_up() {
    HOST=127.0.0.1
    local args=() p
    for p in "$@"; do
        case $p in
            host=*) HOST=${p#host=} ;;
            *) args+=("$p") ;;
        esac
    done
    local tmo=1000
    for p in "${args[@]}"; do case $p in timeout=*) tmo=${p#timeout=} ;; esac; done
    for _ in 1 2 3; do
        PORT=$(free_port "$HOST")
        local listen="$HOST:$PORT"
        [[ $HOST == *:* ]] && listen="[$HOST]:$PORT"
        if [ -n "$PEER" ]; then
            # shellcheck disable=SC2086 # PEER may carry arguments
            start_gateway $PEER "$PORT" "$ROOT" "$tmo" "$HOST" && return 0
        else
            write_config "$T/gw.ini" "$listen" "${args[@]}"
            start_gateway "$GW" --config "$T/gw.ini" && return 0
        fi
        case $REASON in *"did not bind"*) return 1 ;; esac
    done
    return 1
}

# gw_cli ARGS...: start the gateway with command-line flags (--listen added).
gw_cli() {
    [ -n "$PEER" ] && { REASON="command-line mode is gateway-only"; return 77; }
    HOST=127.0.0.1
    PORT=$(free_port)
    start_gateway "$GW" --listen "127.0.0.1:$PORT" "$@"
}

# stop the current gateway; fails if it crashed or would not stop
gw_stop() {
    [ -n "$GW_PID" ] || return 0
    local pid=$GW_PID st i
    GW_PID=""
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid"; st=$?
        untrack "$pid"
        fail "gateway exited during the test (status $st$(sigdesc $st))"
        return 1
    fi
    # SIGTERM drains: a session still dallying after its final ACK (3 s by
    # default) may hold the exit back a little
    kill -TERM "$pid"
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null
        untrack "$pid"
        fail "gateway still running 10 s after SIGTERM (sessions never ended?)"
        return 1
    fi
    wait "$pid"; st=$?
    untrack "$pid"
    case $st in
        132|133|134|135|136|139)
            fail "gateway crashed on SIGTERM (status $st$(sigdesc $st))"; return 1 ;;
        99)
            fail "valgrind reported errors or leaks (tests/valgrind-gw.sh)"; return 1 ;;
    esac
    if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$GW_LOG" 2>/dev/null; then
        fail "sanitizer report in the gateway log"; return 1
    fi
    return 0
}

sigdesc() {
    [ "$1" -gt 128 ] 2>/dev/null || return 0
    printf ', signal %s' "$(kill -l $(($1 - 128)) 2>/dev/null)"
}

# log_has PATTERN...: a line of GW_LOG holds every pattern (fixed strings),
# waiting up to 3 s for it. Always true against a reference peer.
log_has() {
    [ -n "$PEER" ] && return 0
    local i
    for i in $(seq 1 30); do
        log_lines "$@" | grep -q . && return 0
        sleep 0.1
    done
    fail "no log line with: $*"
}

log_lines() {
    local p lines
    lines=$(cat "$GW_LOG")
    for p in "$@"; do lines=$(printf '%s\n' "$lines" | grep -F -- "$p"); done
    printf '%s\n' "$lines" | grep .
}

# transfer_logged BYTES [RESULT]: a summary line with result=RESULT (ok)
# and exactly bytes=BYTES, waiting up to 6 s (the gateway dallies one timeout
# after the final ACK of an upload before it logs: RFC 1350 section 6;
# docs/protocol.md, Final ACK and dally)
transfer_logged() {
    [ -n "$PEER" ] && return 0
    local i res=${2:-ok}
    for i in $(seq 1 60); do
        grep -E "result=$res" "$GW_LOG" | grep -qE "bytes=$1([^0-9]|\$)" && return 0
        sleep 0.1
    done
    fail "no log line with result=$res and bytes=$1"
}

# failure_logged PATTERN: a summary line holding PATTERN whose result is not
# ok (the spec says result=error...; any other value than ok is accepted),
# or a listener "refused" line holding it; waits up to 8 s
failure_logged() {
    [ -n "$PEER" ] && return 0
    local i
    for i in $(seq 1 80); do
        grep -F -- "$1" "$GW_LOG" | grep -E 'result=|refused' | grep -qv 'result=ok' && return 0
        sleep 0.1
    done
    fail "no failure logged for $1"
}

# ---------------------------------------------------------------- clients

# hpa MODE get|put A B: tftp-hpa; sets HPA_CODE to the TFTP error code or ""
hpa() {
    local mode=$1 op=$2 a=$3 b=$4 rc out
    HPA_CODE=""
    out=$(timeout 60 tftp -m "$mode" "$HOST" "$PORT" -c "$op" "$a" "$b" 2>&1)
    rc=$?
    if [[ $out =~ Error\ code\ ([0-9]+) ]]; then
        HPA_CODE=${BASH_REMATCH[1]}
        fail "tftp-hpa $mode $op $a: $out"
        return 1
    fi
    [ $rc -eq 0 ] && [ -z "$out" ] && return 0
    fail "tftp-hpa $mode $op $a: exit $rc: ${out:0:200}"
}

# hpa_expect CODE MODE get|put A B
hpa_expect() {
    local code=$1; shift
    if hpa "$@"; then fail "tftp-hpa $2 $3: succeeded, want error $code"; return 1; fi
    [ "$HPA_CODE" = "$code" ] && return 0
    fail "tftp-hpa $2 $3: ${REASON#tftp-hpa } (want error $code)"
}

curl_url() {
    if [[ $HOST == *:* ]]; then echo "tftp://[$HOST]:$PORT/$1"; else echo "tftp://$HOST:$PORT/$1"; fi
}

# --connect-timeout 2 makes curl ask for the TFTP timeout option 1 (it derives
# it from that), so the gateway's dally after an upload stays short.
# curl_get REMOTE LOCAL [curl args]; curl_put LOCAL REMOTE [curl args]; CURL_RC
curl_get() {
    local r=$1 l=$2; shift 2
    CURL_OUT=$(timeout 60 curl -sS -g --connect-timeout 2 --max-time 55 -o "$l" "$@" "$(curl_url "$r")" 2>&1)
    CURL_RC=$?
    [ $CURL_RC -eq 0 ] || fail "curl get $r: exit $CURL_RC $CURL_OUT"
}
curl_put() {
    local l=$1 r=$2; shift 2
    CURL_OUT=$(timeout 60 curl -sS -g --connect-timeout 2 --max-time 55 -T "$l" "$@" "$(curl_url "$r")" 2>&1)
    CURL_RC=$?
    [ $CURL_RC -eq 0 ] || fail "curl put $r: exit $CURL_RC $CURL_OUT"
}

# curl exit codes for TFTP errors (curl 7.88 lib/tftp.c, checked against a
# stub server): 0 and 4 -> 71, 1 -> 68, 2 -> 69, 3 -> 70, 5 -> 72, 6 -> 73,
# 7 -> 74, 8 -> 42. curl 7.88's message for them is a bogus "getpeername()
# failed with errno 107", so only the exit code tells the TFTP error.
curl_code_of() {
    case $1 in 1) echo 68 ;; 2) echo 69 ;; 3) echo 70 ;; 0|4) echo 71 ;; 5) echo 72 ;;
        6) echo 73 ;; 7) echo 74 ;; 8) echo 42 ;; esac
}

# curl_expect TFTPCODE get|put A B [args]
curl_expect() {
    local code=$1 op=$2; shift 2
    if "curl_$op" "$@"; then fail "curl $op $1: succeeded, want TFTP error $code"; return 1; fi
    local want
    want=$(curl_code_of "$code")
    [ "$CURL_RC" = "$want" ] && return 0
    fail "curl $op $1: exit $CURL_RC, want $want (TFTP error $code): $CURL_OUT"
}

# raw NAME: one check from rawtests.py against the running gateway
raw() {
    local out rc
    out=$(timeout 60 "$PY" "$HERE/rawtests.py" "$1" --host "$HOST" --port "$PORT" \
        --root "$ROOT" ${PEER:+--peer} 2>&1)
    rc=$?
    [ $rc -eq 0 ] && return 0
    [ $rc -eq 124 ] && out="timed out after 60 s; $out"
    REASON=$(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')
    [ $rc -eq 77 ] && return 77
    return 1
}

# ---------------------------------------------------------------- runner

FILTER=()
want_test() {
    [ ${#FILTER[@]} -eq 0 ] && return 0
    local f
    for f in "${FILTER[@]}"; do [[ $1 == *$f* ]] && return 0; done
    return 1
}

# run_test NAME FUNCTION [ARGS...]
run_test() {
    local name=$1; shift
    want_test "$name" || return 0
    if [ "$SECONDS" -ge "$BUDGET" ]; then
        NSKIP=$((NSKIP + 1))
        echo "SKIP $name: suite time budget of $BUDGET s used up"
        return 0
    fi
    T=$WORK/t/$name
    mkdir -p "$T"
    make_root "$T/root"
    GW_LOG=$T/gw.log
    : > "$GW_LOG"
    REASON=""
    local rc reason t0=$SECONDS
    "$@"
    rc=$?
    reason=$REASON
    REASON=""
    if ! gw_stop; then
        case $rc in
            0|77) rc=1 reason=$REASON ;;
            *) reason="$reason; $REASON" ;;
        esac
    fi
    local saved=$reason
    case $rc in
        0) NPASS=$((NPASS + 1)); echo "PASS $name ($((SECONDS - t0)) s)" ;;
        77) NSKIP=$((NSKIP + 1)); echo "SKIP $name: ${saved:-skipped}" ;;
        *)
            NFAIL=$((NFAIL + 1)); FAILED+=("$name")
            echo "FAIL $name: ${saved:-no reason given}"
            if [ -s "$GW_LOG" ]; then
                echo "    --- gateway log (last 15 lines of $(wc -l < "$GW_LOG")) ---"
                tail -n 15 "$GW_LOG" | cut -c1-300 | sed 's/^/    /'
            fi
            ;;
    esac
    return 0
}

# stop_pid PID: TERM, wait up to 3 s, KILL
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    untrack "$pid"
}

# gw_verdict RC: stop the test's gateway after a backend test; a crash or a
# hang turns a pass into a failure. Returns the final status and leaves the
# combined reason in GW_REASON (the caller stops its peers, then sets REASON).
gw_verdict() {
    local rc=$1 reason=$REASON
    REASON=""
    if ! gw_stop; then
        case $rc in
            0|77) rc=1 reason=$REASON ;;
            *) reason="$reason; $REASON" ;;
        esac
    fi
    GW_REASON=$reason
    return $rc
}

summary() {
    local line="$NPASS passed, $NFAIL failed"
    [ "$NSKIP" -gt 0 ] && line="$line, $NSKIP skipped"
    echo "$line"
    [ "$NFAIL" -eq 0 ]
}
