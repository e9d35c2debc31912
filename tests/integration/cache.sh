# tests/integration/cache.sh - the cache backend (type = cache) in front of
# nginx and s3rver (sourced by run.sh after http.sh and s3.sh; bash).
#
# Every test starts its own nginx (http.sh's nginx_up) or s3rver (s3.sh's
# s3_up), and a gateway whose only route sends everything to a cache:
#
#   [backend up]    type = http, url = http://127.0.0.1:NGX/base/  (or s3)
#   [backend edge]  type = cache, upstream = up, dir = $T/cache, + test keys
#   [route r]       match = "" -> edge, write = overwrite
#
# What reached the upstream is read from nginx's access log (one line per
# request: method, URI, status, If-None-Match) or s3rver's request log; the
# "cache edge:" counters line the gateway logs at shutdown is extra evidence.
# A test that needs a fill to take a while creates $NGX_DIR/root/slow.flag:
# nginx then throttles every response (set $limit_rate), and removing the
# flag makes the next request fast again.
#
#   CACHE_CLIENTS=N  concurrent clients in cache_single_flight (default 40:
#                    enough joiners to show one fill serves them all; 100
#                    cost over a minute of the suite's 15)

CACHE_DIR=""
CACHE_CLIENTS=${CACHE_CLIENTS:-40}
CACHE_COUNTERS=""

# the larger fixtures only these tests use, made once
cache_fixtures() {
    [ -f "$FIX/f20M" ] || head -c $((20 << 20)) /dev/urandom > "$FIX/f20M"
    local i
    for i in 1 2 3 4; do
        [ -f "$FIX/e$i" ] || head -c $((10 << 20)) /dev/urandom > "$FIX/e$i"
    done
}

# cx FUNCTION ARGS...: run a cache test, then stop its gateway (a crash is a
# failure, as in run_test), nginx and s3rver.
cx() {
    [ -n "$PEER" ] && { REASON="gateway-specific (cache backend)"; return 77; }
    CACHE_DIR=$T/cache
    CACHE_COUNTERS=""
    cache_fixtures
    "$@"
    gw_verdict $?
    local rc=$?
    peers_stop
    s3_down
    REASON=$GW_REASON
    return $rc
}

# cache_nginx_up [RATE]: nginx_up; while $NGX_DIR/root/slow.flag exists every
# response is sent at RATE (nginx units: 2m is 2 MiB/s)
cache_nginx_up() {
    nginx_up "if (-f \$document_root/slow.flag) { set \$limit_rate ${1:-2m}; }"
}
slow_on() { touch "$NGX_DIR/root/slow.flag"; }
slow_off() { rm -f "$NGX_DIR/root/slow.flag"; }

# ngx_count METHOD KEY [STATUS]: requests for /base/KEY in nginx's access log
ngx_count() {
    grep -cF "$1 \"/base/$2\" ${3:-}" "$NGX_DIR/logs/access.log" 2>/dev/null
}
# ngx_lines KEY: its access-log requests counted by method and status, for messages
ngx_lines() {
    grep -F "\"/base/$1\"" "$NGX_DIR/logs/access.log" 2>/dev/null | cut -d' ' -f1-3 |
        sort | uniq -c | sed 's/^ *//' | tr '\n' '|'
}

# ngx_gets_are KEY N WHAT: exactly N GETs of KEY reached nginx
ngx_gets_are() {
    local n
    n=$(ngx_count GET "$1")
    [ "$n" = "$2" ] && return 0
    fail "$3: $n upstream GETs of $1, want $2 (nginx: $(ngx_lines "$1"))"
}

# cache_write_config FILE LISTEN UPSTREAM key=value...: UPSTREAM is a URL
# (http backend) or "s3" (s3.sh's backend settings). [server] keys (timeout,
# retries, max_blksize, max_windowsize, max_sessions, log_level) go to
# [server] (and workers, metrics_listen), write=... to the route, dir=... replaces the cache directory,
# anything else (max_size, ttl, stale_if_error, prefetch) to [backend edge].
cache_write_config() {
    local file=$1 listen=$2 up=$3 p k
    shift 3
    declare -A srv=([timeout]=1000 [retries]=5 [max_blksize]=65464 [max_windowsize]=64)
    local order=(timeout retries max_blksize max_windowsize) edge=() write=overwrite dir=$CACHE_DIR
    for p in "$@"; do
        k=${p%%=*}
        case $k in
            timeout|retries|max_blksize|max_windowsize|max_sessions|log_level|workers|metrics_listen)
                [ -n "${srv[$k]+x}" ] || order+=("$k")
                srv[$k]=${p#*=} ;;
            write) write=${p#*=} ;;
            dir) dir=${p#*=} ;;
            *) edge+=("$k = ${p#*=}") ;;
        esac
    done
    {
        echo "; written by tests/integration/cache.sh"
        echo "[server]"
        echo "listen = $listen"
        server_extra "${srv[workers]:-}"
        for k in "${order[@]}"; do echo "$k = ${srv[$k]}"; done
        if [ "$up" = s3 ]; then
            s3_backend up
        else
            echo
            echo "[backend up]"
            echo "type = http"
            echo "url = $up"
        fi
        echo
        echo "[backend edge]"
        echo "type = cache"
        echo "upstream = up"
        echo "dir = $dir"
        for p in "${edge[@]}"; do echo "$p"; done
        echo
        echo "[route r]"
        echo "match ="
        echo "backend = edge"
        echo "write = $write"
    } > "$file"
}

# cache_gw_up UPSTREAM key=value...: that configuration on a free port
cache_gw_up() {
    local up=$1
    shift
    HOST=127.0.0.1
    for _ in 1 2 3; do
        PORT=$(free_port)
        cache_write_config "$T/gw.ini" "127.0.0.1:$PORT" "$up" "$@"
        chmod 600 "$T/gw.ini"    # the s3 variant holds secrets
        start_gateway "$GW" --config "$T/gw.ini" && return 0
        case $REASON in *"did not bind"*|*"exited at start-up"*) return 1 ;; esac
    done
    return 1
}

# cache_gw_restart: the same configuration (port, cache dir) once more
cache_gw_restart() { start_gateway "$GW" --config "$T/gw.ini"; }

# cache_stop: stop the gateway (SIGTERM) and keep its counters line
cache_stop() {
    gw_stop || return 1
    CACHE_COUNTERS=$(grep -F 'cache edge:' "$GW_LOG" | tail -n 1)
    [ -n "$CACHE_COUNTERS" ] || { fail "no 'cache edge:' counters line at shutdown"; return 1; }
    echo "$CACHE_COUNTERS" >> "$T/counters"
    local k
    for k in hits misses revalidations stale evictions upstream_bytes served_bytes; do
        [[ $CACHE_COUNTERS =~ (^|[^a-z_])$k=[0-9]+ ]] ||
            { fail "counters line lacks $k=N: $CACHE_COUNTERS"; return 1; }
    done
}

# counter NAME: its value in the last counters line
counter() {
    [[ $CACHE_COUNTERS =~ (^|[^a-z_])$1=([0-9]+) ]] && echo "${BASH_REMATCH[2]}"
}

# counter_cmp NAME ge|eq N WHAT
counter_cmp() {
    local v ok=""
    v=$(counter "$1")
    case $2 in
        ge) [ -n "$v" ] && [ "$v" -ge "$3" ] && ok=1 ;;
        eq) [ -n "$v" ] && [ "$v" -eq "$3" ] && ok=1 ;;
    esac
    [ -n "$ok" ] && return 0
    fail "$4: counter $1=${v:-?}, want $2 $3 ($CACHE_COUNTERS)"
}

# cache_get KEY WANT WHAT [tsize]: tftpraw get with blksize 1468 and tsize 0;
# the bytes are WANT's, a tsize in the OACK is WANT's size, and with the
# fourth argument the OACK must carry it (a hit knows the size at once)
cache_get() {
    local key=$1 want=$2 what=$3 need=${4:-} out size
    out=$T/get.out
    rm -f "$out"
    raw_ok get "$key" "$out" -o blksize=1468 -o tsize=0 || { REASON="$what: $REASON"; return 1; }
    size=$(stat -c %s "$want")
    if [[ $RAW_OUT == *"('tsize', "* ]]; then
        [[ $RAW_OUT == *"('tsize', '$size')"* ]] ||
            { fail "$what: OACK $RAW_OUT, want tsize $size"; return 1; }
    elif [ -n "$need" ]; then
        fail "$what: no tsize in the OACK ($RAW_OUT), want $size"
        return 1
    fi
    same_file "$out" "$want" "$what"
}

# data_bytes: bytes in the cache directory's files of 64 KiB or more (the
# objects; an index or metadata files are smaller)
data_bytes() {
    find "$CACHE_DIR" -type f -size +64k -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
}

dir_listing() {
    find "$CACHE_DIR" -mindepth 1 -printf '%P(%s) ' 2>/dev/null | cut -c1-600
}

# ------------------------------------------------------------ tests

# CACHE_CLIENTS curl clients at once for one 20 MiB object on a cold cache:
# one upstream GET (single flight), every copy right. nginx sends at 8 MiB/s,
# so every RRQ arrives while the fill runs and the readers follow it.
t_cache_single_flight() {
    cache_nginx_up 8m || return 1
    ln "$FIX/f20M" "$NGX_ROOT/f20M"
    slow_on
    cache_gw_up "$(ngx_url)" || return 1
    local n=$CACHE_CLIENTS want i pids=() rc=0 bad=0 t0=$SECONDS
    want=$(sha "$FIX/f20M")
    for i in $(seq 1 "$n"); do
        timeout 170 bash -c 'set -o pipefail
            curl -sS --connect-timeout 2 --max-time 160 --tftp-blksize 1468 -o - "$1" | sha256sum | cut -c1-64' \
            _ "$(curl_url f20M)" > "$T/c$i.sha" 2> "$T/c$i.err" &
        pids+=($!)
        track $!
    done
    for i in "${pids[@]}"; do
        wait "$i" || rc=$((rc + 1))
        untrack "$i"
    done
    for i in $(seq 1 "$n"); do
        [ "$(cat "$T/c$i.sha")" = "$want" ] || bad=$((bad + 1))
    done
    echo "$n clients, $((SECONDS - t0)) s" >> "$T/notes"
    [ $bad -eq 0 ] ||
        { fail "$bad of $n concurrent gets of f20M wrong or failed ($rc exits != 0): $(cat "$T"/c*.err | sort | uniq -c | head -n 3 | tr '\n' ' ')"; return 1; }
    ngx_gets_are f20M 1 "$n concurrent RRQs on a cold cache" || return 1
    cache_stop || return 1
    counter_cmp upstream_bytes eq $((20 << 20)) "one fill of f20M" || return 1
    counter_cmp served_bytes ge $((n * (20 << 20))) "$n copies of f20M served"
}

# UEFI firmware: RRQ tsize=0 blksize=1468 -> OACK's tsize -> ERROR 8 ->
# RRQ without tsize from a new port -> the whole file. On a cold cache with a
# slow upstream, the ERROR 8 arrives mid-fill; the fill must go on.
t_cache_uefi() {
    cache_nginx_up 8m || return 1
    ln "$FIX/f20M" "$NGX_ROOT/f20M"
    slow_on
    cache_gw_up "$(ngx_url)" || return 1
    local out rc
    out=$(timeout 120 "$PY" - "$HERE" "$HOST" "$PORT" f20M "$T/uefi.out" <<'EOF' 2>&1
import sys, time
sys.path.insert(0, sys.argv[1])
import tftpraw as T
host, port, name, dst = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
with T.Client(host, port, timeout=1.0, retries=5) as c:
    c.send_raw(T.build_rrq(name, "octet", [("tsize", "0"), ("blksize", "1468")]))
    end = time.monotonic() + 10
    first = None
    while first is None and time.monotonic() < end:
        got = c.recv(end - time.monotonic())
        if got is not None and got[0] is not None:
            first = got
    if first is None:
        print("no answer to the first RRQ within 10 s")
        sys.exit(2)
    pkt, addr, _ = first
    if pkt.op != T.OACK:
        print("first RRQ answered %r, want an OACK" % (pkt,))
        sys.exit(3)
    tsize = pkt.opts().get("tsize")
    c.send_raw(T.build_error(8, "tsize only"), addr)
    # the session must end: nothing more from it (a retransmitted OACK is a bug)
    extra = [g[0] for g in c.collect(1.5) if g[1] == addr]
time.sleep(0.2)
with T.Client(host, port, timeout=1.0, retries=8) as c:
    r = c.get(name, options=[("blksize", "1468")])
open(dst, "wb").write(r.data)
print("tsize=%s extra=%r bytes=%d elapsed=%.2f" % (tsize, extra, len(r.data), r.elapsed))
EOF
    )
    rc=$?
    echo "$out" >> "$T/notes"
    [ $rc -eq 0 ] || { fail "UEFI pattern: exit $rc: $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"; return 1; }
    [[ $out == *"tsize=$((20 << 20)) "* ]] ||
        { fail "UEFI pattern: first OACK's tsize: $out, want $((20 << 20))"; return 1; }
    [[ $out == *"extra=[] "* ]] ||
        { fail "UEFI pattern: the session went on after ERROR 8: $out"; return 1; }
    same_file "$T/uefi.out" "$FIX/f20M" "UEFI pattern, second RRQ" || return 1
    ngx_gets_are f20M 1 "UEFI pattern (RRQ, ERROR 8, RRQ) on a cold cache" || return 1
    # the probe the client declined is normal, not a failure
    gw_stop || return 1
    log_has "stopped: 1 ok, 0 failed, 1 declined, 0 refused"
}

# a hit: no request upstream at all, tsize at once, right bytes, any client;
# a missing object without a copy is ERROR 1 (nginx 404)
t_cache_hit() {
    cache_nginx_up || return 1
    ln "$FIX/f5M" "$NGX_ROOT/f5M"
    cache_gw_up "$(ngx_url)" || return 1
    cache_get f5M "$FIX/f5M" "first get (miss)" || return 1
    ngx_gets_are f5M 1 "first get" || return 1
    cache_get f5M "$FIX/f5M" "second get (hit)" tsize || return 1
    curl_get f5M "$T/curl" --tftp-blksize 1468 || return 1
    same_file "$T/curl" "$FIX/f5M" "curl get (hit)" || return 1
    hpa octet get f5M "$T/hpa" || return 1
    same_file "$T/hpa" "$FIX/f5M" "tftp-hpa get, no options (hit)" || return 1
    local all
    all=$(grep -cF '"/base/f5M"' "$NGX_DIR/logs/access.log")
    [ "$all" = 1 ] || { fail "hits within ttl sent requests upstream: $(ngx_lines f5M)"; return 1; }
    raw_expect 1 get nope "$T/x" || { REASON="missing object: $REASON"; return 1; }
    cache_stop || return 1
    counter_cmp hits ge 3 "three hits" || return 1
    counter_cmp misses ge 1 "one miss" || return 1
    counter_cmp upstream_bytes eq $((5 << 20)) "one fill of f5M"
}

# nginx killed: a stale copy (ttl 1, past it) is served with a warning, an
# object without a copy is ERROR 0
t_cache_stale() {
    cache_nginx_up || return 1
    ln "$FIX/f5M" "$NGX_ROOT/f5M"
    ln "$FIX/f513" "$NGX_ROOT/f513"
    cache_gw_up "$(ngx_url)" ttl=1 stale_if_error=86400 || return 1
    cache_get f5M "$FIX/f5M" "first get (miss)" || return 1
    stop_pid "$NGX_PID"
    NGX_PID=""
    sleep 1.5
    local before
    before=$(wc -l < "$GW_LOG")
    cache_get f5M "$FIX/f5M" "stale copy with nginx down" || return 1
    local i found=""
    for i in $(seq 1 30); do
        found=$(tail -n +$((before + 1)) "$GW_LOG" | grep -F stale | head -n 1)
        [ -n "$found" ] && break
        sleep 0.1
    done
    [ -n "$found" ] || { fail "stale copy served without a log line containing 'stale'"; return 1; }
    echo "warning: $found" >> "$T/notes"
    raw_expect 0 get f513 "$T/x" || { REASON="uncached object with nginx down: $REASON"; return 1; }
    cache_stop || return 1
    counter_cmp stale ge 1 "a stale copy served"
}

# ttl 1: the object replaced in nginx's root is fetched anew, while a slow
# reader that started on the old copy still gets the old bytes intact
t_cache_changed() {
    cache_nginx_up || return 1
    cp "$FIX/f5M" "$NGX_ROOT/obj"
    cache_gw_up "$(ngx_url)" ttl=1 retries=8 || return 1
    cache_get obj "$FIX/f5M" "first get (miss)" || return 1
    # the slow reader stops after block 200 (100 KiB of 5 MiB) until $T/go exists
    timeout 60 "$PY" - "$HERE" "$HOST" "$PORT" "$T/slow.out" "$T/go" > "$T/slow.log" 2>&1 <<'EOF' &
import os, sys, time
sys.path.insert(0, sys.argv[1])
import tftpraw as T
host, port, dst, go = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def hook(c, res, block):
    if block == 200:
        print("MID", flush=True)
        end = time.monotonic() + 20
        while not os.path.exists(go) and time.monotonic() < end:
            time.sleep(0.05)
with T.Client(host, port, timeout=1.0, retries=10) as c:
    r = c.get("obj", options=[("blksize", "512")], hook=hook)
open(dst, "wb").write(r.data)
print("DONE bytes=%d retransmits=%d" % (len(r.data), r.retransmits), flush=True)
EOF
    local pid=$! i
    track "$pid"
    for i in $(seq 1 100); do
        grep -q MID "$T/slow.log" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    grep -q MID "$T/slow.log" ||
        { fail "the slow reader did not get 200 blocks: $(tail -n 2 "$T/slow.log" | tr '\n' ' ')"; return 1; }
    # replace atomically, other size (nginx's ETag is mtime-size)
    cp "$FIX/f2M" "$NGX_ROOT/.obj.new" && mv -f "$NGX_ROOT/.obj.new" "$NGX_ROOT/obj"
    sleep 1.3
    cache_get obj "$FIX/f2M" "get after the object changed upstream (ttl 1)"
    local got_new=$? new_reason=$REASON
    touch "$T/go"
    local st
    wait "$pid"; st=$?
    untrack "$pid"
    [ $got_new -eq 0 ] || { fail "$new_reason (nginx: $(ngx_lines obj))"; return 1; }
    [ $st -eq 0 ] || { fail "slow reader of the old copy: exit $st: $(tail -n 2 "$T/slow.log" | tr '\n' ' ')"; return 1; }
    same_file "$T/slow.out" "$FIX/f5M" "slow reader that started on the old copy" || return 1
    [ "$(ngx_count GET obj 200)" -ge 2 ] ||
        { fail "no second GET answered 200 after the change: $(ngx_lines obj)"; return 1; }
    # the new copy is what the cache holds now
    cache_get obj "$FIX/f2M" "get after the replacement" tsize
}

# ttl 1, unchanged object: a conditional GET answered 304 keeps the copy
t_cache_revalidate() {
    cache_nginx_up || return 1
    ln "$FIX/f5M" "$NGX_ROOT/f5M"
    cache_gw_up "$(ngx_url)" ttl=1 || return 1
    cache_get f5M "$FIX/f5M" "first get (miss)" || return 1
    sleep 1.3
    cache_get f5M "$FIX/f5M" "get after ttl, object unchanged" tsize || return 1
    ngx_log_has 'GET "/base/f5M" 304' || return 1
    [ "$(ngx_count GET f5M 200)" = 1 ] ||
        { fail "revalidation fetched the body again: $(ngx_lines f5M)"; return 1; }
    grep -F '"/base/f5M" 304' "$NGX_DIR/logs/access.log" >> "$T/notes"
    cache_stop || return 1
    counter_cmp revalidations ge 1 "a 304 revalidation"
}

# max_size 30M, four 10 MiB objects: the least recently used one goes
t_cache_eviction() {
    cache_nginx_up || return 1
    local i
    for i in 1 2 3 4; do ln "$FIX/e$i" "$NGX_ROOT/e$i"; done
    cache_gw_up "$(ngx_url)" max_size=30M || return 1
    for i in 1 2 3; do
        cache_get "e$i" "$FIX/e$i" "get e$i (miss)" || return 1
    done
    cache_get e1 "$FIX/e1" "get e1 again (hit): e2 is now the least recently used" tsize || return 1
    ngx_gets_are e1 1 "e1 cached" || return 1
    cache_get e4 "$FIX/e4" "get e4 (miss, past max_size)" || return 1
    local n=0
    for i in $(seq 1 30); do
        n=$(data_bytes)
        [ "$n" -le $((30 << 20)) ] && break
        sleep 0.1
    done
    echo "after e4: data $n bytes, du -sb $(du -sb "$CACHE_DIR" | cut -f1): $(dir_listing)" >> "$T/notes"
    [ "$n" -le $((30 << 20)) ] ||
        { fail "cache holds $n bytes of data files with max_size 30M: $(dir_listing)"; return 1; }
    cache_get e1 "$FIX/e1" "e1 (recently used) after the eviction" || return 1
    cache_get e4 "$FIX/e4" "e4 (just fetched) after the eviction" || return 1
    ngx_gets_are e1 1 "e1, used after e2, must stay cached" || return 1
    ngx_gets_are e4 1 "e4 must stay cached" || return 1
    cache_get e2 "$FIX/e2" "e2 after the eviction" || return 1
    ngx_gets_are e2 2 "e2, the least recently used, must have been evicted" || return 1
    cache_stop || return 1
    counter_cmp evictions ge 1 "an eviction"
}

# the index survives a restart: no new upstream request afterwards
t_cache_restart() {
    cache_nginx_up || return 1
    ln "$FIX/f5M" "$NGX_ROOT/f5M"
    cache_gw_up "$(ngx_url)" || return 1
    cache_get f5M "$FIX/f5M" "first get (miss)" || return 1
    cache_stop || return 1
    echo "before restart: $(dir_listing)" >> "$T/notes"
    cache_gw_restart || return 1
    cache_get f5M "$FIX/f5M" "get after a restart" tsize || return 1
    ngx_gets_are f5M 1 "get after a restart (the index must be rebuilt from dir)"
}

# kill -9 in the middle of a slow fill leaves nothing that serves wrong
# bytes: after a restart the object is fetched again, right. The reader
# prints MID once 1000 blocks (1.4 MiB of 20) arrived: the fill is under way
# (at 2 MiB/s it takes 10 s). The partial copy may be an O_TMPFILE, invisible
# in the directory, so the gateway's open files are noted too.
t_cache_kill9() {
    cache_nginx_up 2m || return 1
    ln "$FIX/f20M" "$NGX_ROOT/f20M"
    slow_on
    cache_gw_up "$(ngx_url)" || return 1
    timeout 60 "$PY" - "$HERE" "$HOST" "$PORT" > "$T/client.out" 2>&1 <<'EOF' &
import sys
sys.path.insert(0, sys.argv[1])
import tftpraw as T
def hook(c, res, block):
    if block == 1000:
        print("MID", flush=True)
with T.Client(sys.argv[2], int(sys.argv[3]), timeout=1.0, retries=3) as c:
    r = c.get("f20M", options=[("blksize", "1468")], hook=hook)
print("FINISHED", len(r.data))
EOF
    local cpid=$! i fd
    track "$cpid"
    for i in $(seq 1 100); do
        grep -q MID "$T/client.out" && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q MID "$T/client.out" || grep -q FINISHED "$T/client.out"; then
        fail "the reader did not get 1000 blocks of an unfinished fill: $(tail -n 2 "$T/client.out" | tr '\n' ' ')"
        return 1
    fi
    {
        echo "at kill -9: dir: $(dir_listing)"
        for fd in /proc/"$GW_PID"/fd/*; do
            case $(readlink "$fd") in
                "$CACHE_DIR"*) echo "  open: fd ${fd##*/} $(readlink "$fd") $(stat -L -c %s "$fd") bytes" ;;
            esac
        done
    } >> "$T/notes" 2>/dev/null
    [ "$(ngx_count GET f20M)" = 0 ] ||
        echo "note: nginx had logged the GET before the kill: $(ngx_lines f20M)" >> "$T/notes"
    kill -KILL "$GW_PID"
    wait "$GW_PID" 2>/dev/null
    untrack "$GW_PID"
    GW_PID=""
    kill -TERM "$cpid" 2>/dev/null
    wait "$cpid" 2>/dev/null
    untrack "$cpid"
    echo "after kill -9: $(dir_listing)" >> "$T/notes"
    slow_off
    cache_gw_restart || return 1
    echo "after the restart: $(dir_listing)" >> "$T/notes"
    cache_get f20M "$FIX/f20M" "get after kill -9 mid-fill and a restart" || return 1
    [ "$(ngx_count GET f20M)" -ge 2 ] ||
        { fail "no new upstream GET after the killed fill: $(ngx_lines f20M)"; return 1; }
    local gets
    gets=$(ngx_count GET f20M)
    cache_get f20M "$FIX/f20M" "second get after the restart (hit)" tsize || return 1
    ngx_gets_are f20M "$gets" "second get after the restart" || return 1
    echo "at the end: $(dir_listing)" >> "$T/notes"
}

# the same miss then hit in front of the s3 backend
t_cache_s3() {
    s3_up || return $?
    s3_put_obj "$FIX/f5M" cache/f5M || return 1
    # what the test stored with awscli beforehand is not the gateway's doing
    [ -s "$S3_REQLOG" ] && mv "$S3_REQLOG" "$T/s3req-setup.log"
    cache_gw_up s3 || return 1
    cache_get cache/f5M "$FIX/f5M" "first get from s3 (miss)" || return 1
    cache_get cache/f5M "$FIX/f5M" "second get from s3 (hit)" tsize || return 1
    curl_get cache/f5M "$T/curl" --tftp-blksize 1468 || return 1
    same_file "$T/curl" "$FIX/f5M" "curl get from s3 (hit)" || return 1
    sleep 0.2
    local n
    n=$(s3_req "^GET /$S3_BUCKET/cache/f5M[ ?]" | grep -c .)
    [ "$n" = 1 ] || { fail "$n upstream GETs of cache/f5M, want 1: $(s3_log_tail)"; return 1; }
    hpa_expect 1 octet get cache/nope "$T/x" || return 1
    cache_stop || return 1
    counter_cmp upstream_bytes eq $((5 << 20)) "one fill of cache/f5M"
}

# a WRQ through the cache route lands upstream and drops the cached copy
t_cache_wrq() {
    cache_nginx_up || return 1
    cp "$FIX/f5M" "$NGX_ROOT/obj"
    cache_gw_up "$(ngx_url)" || return 1
    cache_get obj "$FIX/f5M" "first get (miss)" || return 1
    hpa octet put "$FIX/f513" obj || return 1
    same_file "$NGX_ROOT/obj" "$FIX/f513" "tftp-hpa put through the cache (nginx root)" || return 1
    ngx_log_has 'PUT "/base/obj" 20' || return 1
    cache_get obj "$FIX/f513" "get after a put replaced it (ttl 300: the copy must be dropped)" || return 1
    curl_put "$FIX/f4404" sub/new --tftp-blksize 1468 || return 1
    same_file "$NGX_ROOT/sub/new" "$FIX/f4404" "curl put of a new object through the cache"
}

# a WRQ while a fill of the same key is under way: the fill started before
# the write must not become the cached copy, and an RRQ after the write's
# final ACK must not get the old bytes (the copy is dropped, spec). nginx
# sends the old 5 MiB at 1 MiB/s; the reader that started the fill still
# gets them intact.
t_cache_wrq_during_fill() {
    cache_nginx_up 1m || return 1
    cp "$FIX/f5M" "$NGX_ROOT/obj"
    slow_on
    cache_gw_up "$(ngx_url)" || return 1
    timeout 60 "$PY" - "$HERE" "$HOST" "$PORT" "$T/old.out" > "$T/reader.out" 2>&1 <<'EOF' &
import sys
sys.path.insert(0, sys.argv[1])
import tftpraw as T
def hook(c, res, block):
    if block == 200:
        print("MID", flush=True)
with T.Client(sys.argv[2], int(sys.argv[3]), timeout=1.0, retries=5) as c:
    r = c.get("obj", options=[("blksize", "1468")], hook=hook)
open(sys.argv[4], "wb").write(r.data)
print("FINISHED", len(r.data))
EOF
    local pid=$! i bad=()
    track "$pid"
    for i in $(seq 1 100); do
        grep -q MID "$T/reader.out" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q MID "$T/reader.out" || grep -q FINISHED "$T/reader.out"; then
        fail "the reader did not get 200 blocks of an unfinished fill: $(tail -n 2 "$T/reader.out" | tr '\n' ' ')"
        return 1
    fi
    slow_off        # the running GET keeps its rate; later ones are fast
    hpa octet put "$FIX/f513" obj || return 1
    same_file "$NGX_ROOT/obj" "$FIX/f513" "put during a fill (nginx root)" || return 1
    cache_get obj "$FIX/f513" "RRQ after the WRQ's final ACK, the old fill still running" ||
        bad+=("$REASON")
    local st
    wait "$pid"; st=$?
    untrack "$pid"
    [ $st -eq 0 ] && same_file "$T/old.out" "$FIX/f5M" "the reader that started the fill" ||
        bad+=("the reader that started the fill: exit $st, $REASON $(tail -n 1 "$T/reader.out")")
    sleep 0.3
    cache_get obj "$FIX/f513" "RRQ after the old fill ended (ttl 300): the pre-write fill became the copy" ||
        bad+=("$REASON")
    [ ${#bad[@]} -eq 0 ] && return 0
    fail "$(printf '%s | ' "${bad[@]}")nginx: $(ngx_lines obj)"
}

# prefetch: fetched at start-up, then served without an upstream request
t_cache_prefetch() {
    cache_nginx_up || return 1
    cp "$FIX/f513" "$NGX_ROOT/pa.bin"
    cp "$FIX/f4404" "$NGX_ROOT/pb.bin"
    cache_gw_up "$(ngx_url)" "prefetch=pa.bin, pb.bin" || return 1
    local i
    for i in $(seq 1 50); do
        [ "$(ngx_count GET pa.bin 200)" -ge 1 ] && [ "$(ngx_count GET pb.bin 200)" -ge 1 ] && break
        sleep 0.1
    done
    ngx_gets_are pa.bin 1 "prefetch at start-up" || return 1
    ngx_gets_are pb.bin 1 "prefetch at start-up" || return 1
    sleep 0.3    # the fills commit after nginx logged them
    cache_get pa.bin "$FIX/f513" "get of prefetched pa.bin" tsize || return 1
    cache_get pb.bin "$FIX/f4404" "get of prefetched pb.bin" tsize || return 1
    ngx_gets_are pa.bin 1 "prefetched pa.bin" || return 1
    ngx_gets_are pb.bin 1 "prefetched pb.bin"
}
