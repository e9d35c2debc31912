# tests/integration/sec_cache.sh - the cache backend and its upstreams
# against a hostile or broken network (sourced by run.sh after cache.sh;
# bash). Tests are named sec_cache_*.
#
#   sec_cache_tmpfs_endless   max_size 1M on an 8 MiB tmpfs, an upstream body
#                             without end: the disk never fills, usage stays
#                             under max_size, later fills are stored
#   sec_cache_dead_reader     one RRQ from a socket closed at once, 5 MiB
#                             object: the fetch is cancelled after fill_grace,
#                             nginx sent far less than 5 MiB, nothing is kept
#   sec_cache_unproven_end    bodies with neither Content-Length nor chunked
#                             framing are relayed, never kept; one cut short
#                             by a reset is an ERROR for its client
#   sec_cache_max_connections 300 never-answered RRQs against an http route
#                             with max_connections = 8: at most 8 upstream
#                             connections, a good client still served
#
# nginx here is started by sc_nginx_up: it logs $body_bytes_sent (what it
# really sent) and serves base/slow/ at a limited rate. badhttp.py is the
# misbehaving server (http.sh's badhttp_up). Cache helpers are cache.sh's.

SC_NGX_BYTES=""

# sc_nginx_up RATE: nginx serving $NGX_ROOT (= $NGX_DIR/root/base) on a
# free port; everything under base/slow/ is sent at RATE (nginx units);
# $NGX_DIR/logs/access.log has one line per request:
#   METHOD "URI" STATUS sent=$body_bytes_sent t=$request_time
sc_nginx_up() {
    command -v nginx > /dev/null || { fail "nginx not installed (make deps)"; return 1; }
    local rate=$1 i
    NGX_DIR=$T/ngx
    NGX_ROOT=$NGX_DIR/root/base
    mkdir -p "$NGX_DIR/logs" "$NGX_DIR/tmp" "$NGX_ROOT/slow"
    for _ in 1 2 3; do
        NGX_PORT=$(free_tcp_port)
        cat > "$NGX_DIR/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $NGX_DIR/nginx.pid;
error_log $NGX_DIR/logs/error.log info;
events { worker_connections 1024; }
http {
    log_format b '\$request_method "\$request_uri" \$status sent=\$body_bytes_sent t=\$request_time';
    access_log $NGX_DIR/logs/access.log b;
    client_body_temp_path $NGX_DIR/tmp/body;
    proxy_temp_path $NGX_DIR/tmp/proxy;
    fastcgi_temp_path $NGX_DIR/tmp/fcgi;
    uwsgi_temp_path $NGX_DIR/tmp/uwsgi;
    scgi_temp_path $NGX_DIR/tmp/scgi;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$NGX_PORT;
        root $NGX_DIR/root;
        location /base/slow/ { limit_rate $rate; }
    }
}
EOF
        nginx -e "$NGX_DIR/logs/error.log" -p "$NGX_DIR" -c "$NGX_DIR/nginx.conf" \
            >> "$NGX_DIR/logs/stderr" 2>&1 < /dev/null &
        NGX_PID=$!
        track "$NGX_PID"
        for i in $(seq 1 50); do
            kill -0 "$NGX_PID" 2>/dev/null || break
            tcp_ready "$NGX_PORT" && return 0
            sleep 0.1
        done
        stop_pid "$NGX_PID"
        NGX_PID=""
    done
    fail "nginx did not start: $(tail -n 3 "$NGX_DIR/logs/error.log" 2>/dev/null | tr '\n' ' ')"
}

# bad_gets PATH: GETs of PATH (e.g. /close/300000) in badhttp's request log
bad_gets() {
    grep -cF "\"target\": \"/$1\"" "$BAD_LOG" 2>/dev/null | grep -E '^[0-9]+$' || echo 0
}

# gw_cache_files: files under the cache directory, and the gateway's open
# descriptors into it (an anonymous fill file shows as "dir/#N (deleted)")
gw_cache_files() {
    # through the gateway's root: its mount namespace may be private
    find "/proc/$GW_PID/root$CACHE_DIR" -type f -printf '%P(%s) ' 2>/dev/null
    local fd l
    for fd in /proc/"$GW_PID"/fd/*; do
        l=$(readlink "$fd" 2>/dev/null) || continue
        case $l in "$CACHE_DIR"/*) printf 'open:%s ' "$l" ;; esac
    done
}

# log_wait PATTERN SECONDS: a gateway log line holds PATTERN (fixed string)
log_wait() {
    local i
    for i in $(seq 1 $(($2 * 10))); do
        grep -qF -- "$1" "$GW_LOG" && return 0
        sleep 0.1
    done
    fail "no log line with \"$1\" within $2 s"
}

# ------------------------------------------------------------ tmpfs, endless

# tmpfs_used DIR: bytes in use on the tmpfs mounted at DIR inside the
# gateway's mount namespace (seen through /proc/PID/root)
tmpfs_used() {
    local s
    s=$(stat -f -c '%b %f %S' "/proc/$GW_PID/root$1" 2>/dev/null) || { echo -1; return; }
    set -- $s
    echo $((($1 - $2) * $3))
}

# max_size 1M, min_free 1M on an 8 MiB tmpfs mounted in a private mount
# namespace around the gateway (it goes away with the gateway). A reader
# takes 4 MiB of an endless chunked body (relayed past what is stored,
# pausing 1 s early on, so the fill runs ahead to max_size) and stops
# answering; a sampler watches the tmpfs all along. Then good fills.
t_sec_cache_tmpfs_endless() {
    command -v unshare > /dev/null || { REASON="unshare not installed"; return 77; }
    badhttp_up || return 1
    local mnt=$T/tmpfs lim=$((1 << 20)) slack=$((64 << 10)) i
    mkdir -p "$mnt"
    CACHE_DIR=$mnt/cache
    HOST=127.0.0.1
    PORT=$(free_port)
    cache_write_config "$T/gw.ini" "127.0.0.1:$PORT" "$BAD_URL" max_size=1M min_free=1M \
        timeout=200 retries=3 "dir=$CACHE_DIR"
    start_gateway unshare -m --propagation private \
        sh -c 'mount -t tmpfs -o size=8m tmpfs "$1" && shift && exec "$@"' _ "$mnt" \
        "$GW" --config "$T/gw.ini" || return 1
    local base
    base=$(tmpfs_used "$mnt")
    [ "$base" -ge 0 ] && [ "$base" -le $((16 << 10)) ] ||
        { fail "the gateway's tmpfs at $mnt is not visible or not empty: $base bytes used"; return 1; }
    # the sampler: max bytes used on the tmpfs, every 20 ms, until told to stop
    (
        max=0
        while [ ! -e "$T/sample.stop" ]; do
            u=$(tmpfs_used "$mnt")
            [ "$u" -gt "$max" ] && max=$u && echo "$max" > "$T/sample.max"
            sleep 0.02
        done
    ) &
    local spid=$!
    track "$spid"
    local out rc
    out=$(timeout 60 "$PY" - "$HERE" "$HOST" "$PORT" <<'EOF' 2>&1
import sys, time
sys.path.insert(0, sys.argv[1])
import tftpraw as T
class Enough(Exception):
    pass
got = [0]
def hook(c, res, block):
    got[0] = block * 1468      # block: the absolute count of in-order blocks
    if block == 48:
        time.sleep(1.0)        # the fill runs ahead to max_size meanwhile
    if got[0] >= 4 << 20:
        raise Enough()
c = T.Client(sys.argv[2], int(sys.argv[3]), timeout=1.0, retries=5)
try:
    c.get("endless", options=[("blksize", "1468"), ("windowsize", "16")], hook=hook)
    print("ENDED bytes=%d" % got[0])
except Enough:
    print("STOPPED bytes=%d" % got[0])
# the socket closes here: the session gives up, its reader goes
EOF
    )
    rc=$?
    echo "reader: $out" >> "$T/notes"
    [[ $rc -eq 0 && $out == STOPPED* ]] ||
        { touch "$T/sample.stop"; fail "endless reader: exit $rc: $(tail -n 2 <<< "$out" | tr '\n' ' ')"; return 1; }
    # the fetch must end once nobody reads: the session gives up (timeout
    # 200 ms, 3 retries with backoff: 3 s), then the relay has nobody left
    log_wait "fetch of endless cancelled" 15 || { touch "$T/sample.stop"; return 1; }
    sleep 0.3
    local after
    after=$(tmpfs_used "$mnt")
    touch "$T/sample.stop"
    wait "$spid" 2>/dev/null
    untrack "$spid"
    local max
    max=$(cat "$T/sample.max" 2>/dev/null || echo 0)
    echo "tmpfs: $base bytes at start, at most $max during the endless fill, $after after it" >> "$T/notes"
    grep -F "endless" "$GW_LOG" | grep -F 'not kept' >> "$T/notes"
    [ "$max" -le $((base + lim + slack)) ] ||
        { fail "tmpfs use reached $max bytes with max_size 1M (start $base)"; return 1; }
    [ "$max" -ge $((base + lim / 2)) ] ||
        { fail "tmpfs use never passed $max bytes: the fill stored nothing (the test proves nothing)"; return 1; }
    [ "$after" -le $((base + slack)) ] ||
        { fail "the cancelled fill left $after bytes on the tmpfs: $(gw_cache_files)"; return 1; }
    log_has "endless not kept" "max_size" || return 1
    if grep -qiE 'no space left|short write' "$GW_LOG"; then
        fail "disk full: $(grep -iE -m1 'no space left|short write' "$GW_LOG")"; return 1
    fi
    # later good fills are stored and served: a second get is a hit
    bad_gen 300000 "$T/want300k"
    bad_gen 500000 "$T/want500k"
    for i in 1 2; do
        cache_get data/300000 "$T/want300k" "good fill after the endless one ($i)" || return 1
        cache_get data/500000 "$T/want500k" "second good fill ($i)" || return 1
    done
    [ "$(bad_gets data/300000)" = 1 ] && [ "$(bad_gets data/500000)" = 1 ] ||
        { fail "good objects fetched again (not stored): $(bad_gets data/300000) and $(bad_gets data/500000) GETs"; return 1; }
    after=$(tmpfs_used "$mnt")
    echo "tmpfs after two good fills: $after bytes: $(gw_cache_files)" >> "$T/notes"
    [ "$after" -le $((base + lim + slack)) ] ||
        { fail "tmpfs holds $after bytes after the good fills"; return 1; }
}

# ------------------------------------------------------------ dead reader

# One RRQ for a 5 MiB object from a socket that is closed at once; nginx
# sends at 256 KiB/s. The session gives up (timeout 200 ms: 1.4 s), its
# fill loses its last reader, fill_grace = 1 s later the fetch is cancelled.
t_sec_cache_dead_reader() {
    sc_nginx_up 256k || return 1
    ln "$FIX/f5M" "$NGX_ROOT/slow/f5M"
    cache_gw_up "$(ngx_url)" fill_grace=1 timeout=200 || return 1
    local t0
    t0=$(now_ms)
    "$PY" - "$HOST" "$PORT" <<'EOF' || { fail "could not send the RRQ"; return 1; }
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"\x00\x01slow/f5M\x00octet\x00", (sys.argv[1], int(sys.argv[2])))
s.close()
EOF
    log_wait "fetch of slow/f5M cancelled" 15 || return 1
    local t1 line sent i
    t1=$(now_ms)
    for i in $(seq 1 30); do
        line=$(grep -F 'GET "/base/slow/f5M"' "$NGX_DIR/logs/access.log" 2>/dev/null | head -n 1)
        [ -n "$line" ] && break
        sleep 0.1
    done
    echo "cancelled $((t1 - t0)) ms after the RRQ; nginx: $line" >> "$T/notes"
    grep -F 'slow/f5M' "$GW_LOG" >> "$T/notes"
    [ -n "$line" ] || { fail "nginx never ended the GET of slow/f5M (the upstream request still runs?)"; return 1; }
    sent=$(sed -n 's/.* sent=\([0-9]*\) .*/\1/p' <<< "$line")
    [ -n "$sent" ] && [ "$sent" -lt $((3 << 19)) ] ||
        { fail "nginx sent ${sent:-?} bytes of the 5 MiB object for a reader that was gone at once (want < 1.5 MiB)"; return 1; }
    [ "$(grep -cF 'GET "/base/slow/f5M"' "$NGX_DIR/logs/access.log")" = 1 ] ||
        { fail "more than one upstream GET: $(grep -F slow/f5M "$NGX_DIR/logs/access.log" | tr '\n' '|')"; return 1; }
    sleep 0.3
    local left
    left=$(gw_cache_files)
    [ -z "$left" ] || { fail "the cache still holds or has open: $left"; return 1; }
}

# ------------------------------------------------------------ unproven end

# badhttp's /close/N: no Content-Length, not chunked, then FIN (whole, but
# nothing proves it); /close-reset/N: the same, then RST (cut short).
# Neither may be stored. Controls: /chunked/N and /data/N are stored.
t_sec_cache_unproven_end() {
    badhttp_up || return 1
    cache_gw_up "$BAD_URL" || return 1
    bad_gen 300000 "$T/want"
    local p i
    for i in 1 2; do
        cache_get close/300000 "$T/want" "body ended by a close ($i)" || return 1
    done
    [ "$(bad_gets close/300000)" = 2 ] ||
        { fail "a body ended only by the connection closing was stored: $(bad_gets close/300000) GETs for 2 reads"; return 1; }
    log_has "close/300000 not kept" "closing the connection" || return 1
    for i in 1 2; do
        raw_expect 0 get close-reset/300000 "$T/cut" -o blksize=1468 ||
            { REASON="body cut short by a reset ($i): $REASON"; return 1; }
        [ ! -s "$T/cut" ] || { fail "the cut-short body was written out as a file ($(stat -c %s "$T/cut") bytes)"; return 1; }
    done
    [ "$(bad_gets close-reset/300000)" = 2 ] ||
        { fail "a body cut short was stored: $(bad_gets close-reset/300000) GETs for 2 reads"; return 1; }
    for p in chunked/300000 data/300000; do
        for i in 1 2; do
            cache_get "$p" "$T/want" "$p ($i)" || return 1
        done
        [ "$(bad_gets "$p")" = 1 ] ||
            { fail "$p (end proven) was not stored: $(bad_gets "$p") GETs for 2 reads"; return 1; }
    done
    sleep 0.3
    if grep -rlsF -e 'key close/' -e 'key close-reset/' "$CACHE_DIR"; then
        fail "a .meta for an unproven body exists: $(gw_cache_files)"; return 1
    fi
    return 0
}

# ------------------------------------------------------------ max_connections

# sc_flood N NAME HOLD: N RRQs for NAME, each from its own socket (a
# duplicate from one port would be answered as a retransmission), never
# read; prints SENT, holds the sockets HOLD seconds, then closes them.
sc_flood() {
    "$PY" - "$HOST" "$PORT" "$1" "$2" "$3" <<'EOF'
import socket, sys, time
host, port, n, name, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
rrq = b"\x00\x01" + name.encode() + b"\x00octet\x00"
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(rrq, (host, port))
    socks.append(s)
print("SENT", len(socks), flush=True)
time.sleep(hold)
for s in socks:
    s.close()
EOF
}

# sc_sample_conns PORT FILE: established connections to PORT (the
# gateway's side), every 20 ms, one count a line, until FILE.stop exists
sc_sample_conns() {
    local port=$1 file=$2
    : > "$file"
    while [ ! -e "$file.stop" ]; do
        ss -Htn state established "( dport = :$port )" 2>/dev/null | wc -l >> "$file"
        sleep 0.02
    done
}

# one flood against the running gateway, connections sampled; sets
# FLOOD_MAX and FLOOD_SAMPLES; with GOOD=1 a good client runs alongside
sc_flood_round() {
    local n=$1 hold=$2 good=${3:-0} spid fpid gpid=""
    rm -f "$T/conns.stop"
    sc_sample_conns "$NGX_PORT" "$T/conns" &
    spid=$!
    track "$spid"
    sc_flood "$n" slow/f5M "$hold" > "$T/flood.out" 2>&1 &
    fpid=$!
    track "$fpid"
    local i
    for i in $(seq 1 100); do grep -q SENT "$T/flood.out" && break; sleep 0.05; done
    if [ "$good" = 1 ]; then
        # right after the burst: it waits in the queue behind the flood's
        # requests (seconds), so its RRQ is repeated every second, up to 15
        timeout 40 "$PY" "$HERE/tftpraw.py" get "$HOST" "$PORT" f2M "$T/good.out" \
            -o blksize=1468 --timeout 1 --retries 15 > "$T/good.err" 2>&1 &
        gpid=$!
        track "$gpid"
    fi
    GOOD_RC=0
    if [ -n "$gpid" ]; then
        wait "$gpid"; GOOD_RC=$?
        untrack "$gpid"
    fi
    wait "$fpid"
    untrack "$fpid"
    touch "$T/conns.stop"
    wait "$spid"
    untrack "$spid"
    FLOOD_SAMPLES=$(grep -c . "$T/conns")
    FLOOD_MAX=$(sort -n "$T/conns" | tail -n 1)
}

# 300 never-answered RRQs for a file nginx sends at 64 KiB/s, on an http
# route with max_connections = 8: `ss` never sees more than 8 established
# connections from the gateway to nginx, and a good client that asks
# right after the burst gets its file whole. Flood sessions give up after
# 0.7 s (timeout 100 ms); max_sessions 40 evicts the oldest unanswered
# ones, which takes their waiting requests out of the queue. Control:
# the same flood with max_connections = 10000 opens more than 8.
t_sec_cache_max_connections() {
    sc_nginx_up 64k || return 1
    ln "$FIX/f5M" "$NGX_ROOT/slow/f5M"
    ln "$FIX/f2M" "$NGX_ROOT/f2M"
    gw_http "$(ngx_url)" max_connections=8 timeout=100 max_sessions=40 || return 1
    sc_flood_round 300 5 1
    echo "capped at 8: max $FLOOD_MAX established of $FLOOD_SAMPLES samples; good client exit $GOOD_RC: $(cat "$T/good.err")" >> "$T/notes"
    echo "nginx GETs of slow/f5M: $(grep -cF 'GET "/base/slow/f5M"' "$NGX_DIR/logs/access.log")" >> "$T/notes"
    [ "${FLOOD_SAMPLES:-0}" -ge 20 ] || { fail "only ${FLOOD_SAMPLES:-0} samples of ss"; return 1; }
    [ "$FLOOD_MAX" -le 8 ] ||
        { fail "$FLOOD_MAX established connections to nginx with max_connections = 8"; return 1; }
    # with TFTPGW_WORKERS=2 each worker's share is 4: one at its share is
    # pressing on the cap
    local press=6
    [ "${TFTPGW_WORKERS:-1}" -gt 1 ] && press=$((8 / TFTPGW_WORKERS))
    [ "$FLOOD_MAX" -ge "$press" ] ||
        { fail "the flood never held more than $FLOOD_MAX connections: it did not press on the cap"; return 1; }
    [ "$GOOD_RC" = 0 ] || { fail "good client during the flood: exit $GOOD_RC $(head -c 200 "$T/good.err")"; return 1; }
    same_file "$T/good.out" "$FIX/f2M" "good client during the flood" || return 1
    local gets
    gets=$(grep -cF 'GET "/base/slow/f5M"' "$NGX_DIR/logs/access.log")
    [ "$gets" -lt 300 ] ||
        { fail "$gets upstream GETs for 300 RRQs: requests that went away still started"; return 1; }
    # control: without the cap the same measurement sees more than 8
    gw_stop || return 1
    gw_http "$(ngx_url)" max_connections=10000 timeout=100 max_sessions=40 || return 1
    sc_flood_round 100 2 0
    echo "control, max_connections 10000: max $FLOOD_MAX established of $FLOOD_SAMPLES samples" >> "$T/notes"
    [ "$FLOOD_MAX" -gt 8 ] ||
        { fail "control: only $FLOOD_MAX connections without a cap (the measurement cannot see a breach)"; return 1; }
}

run_test sec_cache_tmpfs_endless   cx t_sec_cache_tmpfs_endless
run_test sec_cache_dead_reader     cx t_sec_cache_dead_reader
run_test sec_cache_unproven_end    cx t_sec_cache_unproven_end
run_test sec_cache_max_connections cx t_sec_cache_max_connections
