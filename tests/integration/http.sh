# tests/integration/http.sh - the HTTP backend against real and broken
# HTTP servers (sourced by run.sh after lib.sh; bash).
#
# nginx (private config, no daemon, loopback, a free port) is the well-
# behaved peer: GET, PUT (dav), atomic uploads. badhttp.py is the broken one:
# error statuses, resets and stalls mid-body, chunked bodies, redirects,
# header echo. Each test starts its own servers and gateway; hx() stops them
# all afterwards. The gateway's [backend web] points at one of them, and a
# second backend "dead" points at a port nobody listens on:
#
#   route dead  match dead/  -> backend dead, key {rest}
#   route c     match c/     -> web, key {rest}, write = create
#   route o     match o/     -> web, key {rest}, write = overwrite
#   route all   match ""     -> web, key {path}, write = off (write= changes it)

NGX_PID="" NGX_PORT="" NGX_DIR="" NGX_ROOT=""
BAD_PID="" BAD_PORT="" BAD_URL="" BAD_LOG=""
RAW_RC="" RAW_OUT="" RAW_MS=""


tcp_ready() {
    timeout 1 bash -c 'exec 3<> "/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }


peers_stop() {
    stop_pid "$NGX_PID"
    stop_pid "$BAD_PID"
    NGX_PID="" BAD_PID=""
}

# hx FUNCTION ARGS...: run an HTTP test, then stop its gateway (a crash is a
# failure, as in run_test) and its HTTP servers.
hx() {
    [ -n "$PEER" ] && { REASON="gateway-specific (HTTP backend)"; return 77; }
    "$@"
    gw_verdict $?
    local rc=$?
    peers_stop
    REASON=$GW_REASON
    return $rc
}

# nginx_up [EXTRA_SERVER_LINES]: nginx serving $NGX_DIR/root on a free port;
# files live under $NGX_ROOT = root/base, the gateway's URL is
# http://127.0.0.1:$NGX_PORT/base/. The access log records what the tests
# check: the raw URI, Content-Length vs chunked, If-None-Match, headers.
nginx_up() {
    command -v nginx > /dev/null || { fail "nginx not installed (make deps)"; return 1; }
    local extra=${1:-} listen_extra=${2:-}
    NGX_DIR=$T/ngx
    NGX_ROOT=$NGX_DIR/root/base
    mkdir -p "$NGX_DIR/logs" "$NGX_DIR/tmp" "$NGX_ROOT"
    for _ in 1 2 3; do
        NGX_PORT=$(free_tcp_port)
        cat > "$NGX_DIR/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $NGX_DIR/nginx.pid;
error_log $NGX_DIR/logs/error.log info;
events { worker_connections 256; }
http {
    log_format t '\$request_method "\$request_uri" \$status cl="\$http_content_length" '
                 'te="\$http_transfer_encoding" inm="\$http_if_none_match" '
                 'xc="\$http_x_tftp_client" xf="\$http_x_tftp_file" auth="\$http_authorization"';
    access_log $NGX_DIR/logs/access.log t;
    client_body_temp_path $NGX_DIR/tmp/body;
    proxy_temp_path $NGX_DIR/tmp/proxy;
    fastcgi_temp_path $NGX_DIR/tmp/fcgi;
    uwsgi_temp_path $NGX_DIR/tmp/uwsgi;
    scgi_temp_path $NGX_DIR/tmp/scgi;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$NGX_PORT $listen_extra;
        root $NGX_DIR/root;
        client_max_body_size 0;
        $extra
        location / {
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }
    }
}
EOF
        nginx -e "$NGX_DIR/logs/error.log" -p "$NGX_DIR" -c "$NGX_DIR/nginx.conf" \
            >> "$NGX_DIR/logs/stderr" 2>&1 < /dev/null &
        NGX_PID=$!
        track "$NGX_PID"
        local i
        for i in $(seq 1 50); do
            kill -0 "$NGX_PID" 2>/dev/null || break
            tcp_ready "$NGX_PORT" && return 0
            sleep 0.1
        done
        stop_pid "$NGX_PID"
        NGX_PID=""
    done
    fail "nginx did not start: $(tail -n 3 "$NGX_DIR/logs/error.log" "$NGX_DIR/logs/stderr" 2>/dev/null | tr '\n' ' ')"
}

ngx_url() { echo "http://127.0.0.1:$NGX_PORT/base/"; }

# ngx_log_has PATTERN...: an access-log line holds every fixed string
ngx_log_has() {
    local lines p
    lines=$(cat "$NGX_DIR/logs/access.log" 2>/dev/null)
    for p in "$@"; do lines=$(printf '%s\n' "$lines" | grep -F -- "$p"); done
    printf '%s\n' "$lines" | grep -q . && return 0
    fail "no nginx access-log line with: $*; log: $(tail -n 4 "$NGX_DIR/logs/access.log" | tr '\n' '|')"
}

# badhttp_up: tests/integration/badhttp.py on a free port; sets BAD_URL
badhttp_up() {
    BAD_LOG=$T/badhttp.jsonl
    : > "$BAD_LOG"
    "$PY" "$HERE/badhttp.py" serve --log "$BAD_LOG" --hang 30 --lifetime 600 \
        > "$T/badhttp.out" 2> "$T/badhttp.err" < /dev/null &
    BAD_PID=$!
    track "$BAD_PID"
    local i
    for i in $(seq 1 50); do
        BAD_PORT=$(awk '/^PORT/ {print $2}' "$T/badhttp.out")
        [ -n "$BAD_PORT" ] && { BAD_URL="http://127.0.0.1:$BAD_PORT/"; return 0; }
        sleep 0.1
    done
    fail "badhttp did not start: $(cat "$T/badhttp.err")"
}

# bad_gen N FILE: the bytes badhttp serves for /data/N and /chunked/N
bad_gen() { "$PY" "$HERE/badhttp.py" gen "$1" > "$2"; }

# write_http_config FILE LISTEN URL key=value...: [server] keys (timeout,
# retries, max_blksize, max_windowsize, max_sessions, log_level) go to
# [server], write=... to the catch-all route, anything else (header may
# repeat) to [backend web].
write_http_config() {
    local file=$1 listen=$2 url=$3 p k
    shift 3
    declare -A srv=([timeout]=1000 [retries]=5 [max_blksize]=65464 [max_windowsize]=64)
    local order=(timeout retries max_blksize max_windowsize) web=() write=off
    for p in "$@"; do
        k=${p%%=*}
        case $k in
            timeout|retries|max_blksize|max_windowsize|max_sessions|log_level|workers|metrics_listen)
                [ -n "${srv[$k]+x}" ] || order+=("$k")
                srv[$k]=${p#*=} ;;
            write) write=${p#*=} ;;
            *) web+=("$k = ${p#*=}") ;;
        esac
    done
    {
        echo "; written by tests/integration/http.sh"
        echo "[server]"
        echo "listen = $listen"
        server_extra "${srv[workers]:-}"
        for k in "${order[@]}"; do echo "$k = ${srv[$k]}"; done
        echo
        echo "[backend web]"
        echo "type = http"
        echo "url = $url"
        for p in "${web[@]}"; do echo "$p"; done
        echo
        echo "[backend dead]"
        echo "type = http"
        echo "url = http://127.0.0.1:$DEAD_PORT/nothing/"
        echo "connect_timeout = 2000"
        echo
        echo "[route dead]"
        echo "match = dead/"
        echo "backend = dead"
        echo "key = {rest}"
        echo
        echo "[route c]"
        echo "match = c/"
        echo "backend = web"
        echo "key = {rest}"
        echo "write = create"
        echo
        echo "[route o]"
        echo "match = o/"
        echo "backend = web"
        echo "key = {rest}"
        echo "write = overwrite"
        echo
        echo "[route all]"
        echo "match ="
        echo "backend = web"
        echo "write = $write"
    } > "$file"
}

DEAD_PORT=""

# gw_http URL key=value...: the gateway with the HTTP configuration above
gw_http() {
    local url=$1
    shift
    HOST=127.0.0.1
    DEAD_PORT=$(free_tcp_port)
    for _ in 1 2 3; do
        PORT=$(free_port)
        write_http_config "$T/gw.ini" "127.0.0.1:$PORT" "$url" "$@"
        start_gateway "$GW" --config "$T/gw.ini" && return 0
        case $REASON in *"did not bind"*|*"exited at start-up"*) return 1 ;; esac
    done
    return 1
}

# rawc get|put A B [tftpraw args]: RAW_RC (0 ok, 100+code ERROR, 2 timeout,
# 3 violation), RAW_OUT (its one-line report), RAW_MS (elapsed)
rawc() {
    local op=$1 t0
    shift
    t0=$(now_ms)
    RAW_OUT=$(timeout 120 "$PY" "$HERE/tftpraw.py" "$op" "$HOST" "$PORT" "$@" 2>&1)
    RAW_RC=$?
    RAW_MS=$(($(now_ms) - t0))
}

# raw_ok get|put A B [args]
raw_ok() {
    rawc "$@"
    [ "$RAW_RC" = 0 ] && return 0
    fail "raw $1 $2 $3: exit $RAW_RC: $RAW_OUT"
}

# raw_expect CODE get|put A B [args]: the transfer ends in ERROR CODE
raw_expect() {
    local code=$1
    shift
    rawc "$@"
    [ "$RAW_RC" = $((100 + code)) ] && return 0
    fail "raw $1 $2 $3: exit $RAW_RC ($RAW_OUT) after ${RAW_MS} ms, want ERROR $code"
}

# good_transfer: the gateway still serves a normal file through badhttp
good_transfer() {
    local what=$1
    raw_ok get data/100000 "$T/good" -o blksize=1468 || { REASON="after $what: $REASON"; return 1; }
    [ -f "$T/want100000" ] || bad_gen 100000 "$T/want100000"
    same_file "$T/good" "$T/want100000" "good transfer after $what"
}

# ------------------------------------------------------------ nginx: reads

t_http_get_sizes() {
    nginx_up || return 1
    local f
    for f in f0 f1 f512 f513 f5M; do ln "$FIX/$f" "$NGX_ROOT/$f"; done
    gw_http "$(ngx_url)" || return 1
    for f in f0 f1 f512 f513 f5M; do
        hpa octet get "$f" "$T/hpa-$f" || return 1
        same_file "$T/hpa-$f" "$FIX/$f" "tftp-hpa get $f via nginx" || return 1
        curl_get "$f" "$T/curl-$f" --tftp-blksize 1468 || return 1
        same_file "$T/curl-$f" "$FIX/$f" "curl get $f via nginx" || return 1
        bb -g -r "$f" -l "$T/bb-$f" || return 1
        same_file "$T/bb-$f" "$FIX/$f" "busybox get $f via nginx" || return 1
    done
    # the OACK carries tsize = Content-Length, blksize and windowsize
    atftp_run get f5M "$T/atftp-f5M" 16 || return 1
    same_file "$T/atftp-f5M" "$FIX/f5M" "atftp get f5M via nginx" || return 1
    transfer_logged $((5 << 20)) || return 1
    ngx_log_has 'GET "/base/f513" 200' || return 1
    hpa_expect 1 octet get nope "$T/x" || return 1
    hpa_expect 1 octet get sub/nope "$T/x"
}

t_http_get_100M() {
    nginx_up || return 1
    [ -f "$FIX/f100M" ] || head -c $((100 << 20)) /dev/urandom > "$FIX/f100M"
    ln "$FIX/f100M" "$NGX_ROOT/f100M"
    gw_http "$(ngx_url)" || return 1
    local out rc
    out=$(timeout 150 atftp --option "blksize 1468" --option "tsize 0" --option "windowsize 16" \
        -g -r f100M -l "$T/a100" "$HOST" "$PORT" 2>&1)
    rc=$?
    [ $rc -eq 0 ] || { fail "atftp get f100M: exit $rc: ${out:0:200}"; return 1; }
    same_file "$T/a100" "$FIX/f100M" "atftp get 100 MiB blksize 1468 windowsize 16" || return 1
    rm -f "$T/a100"
    out=$(timeout 150 curl -sS --connect-timeout 2 --max-time 140 --tftp-blksize 512 \
        -o "$T/c100" "$(curl_url f100M)" 2>&1)
    rc=$?
    [ $rc -eq 0 ] || { fail "curl get f100M blksize 512: exit $rc: $out"; return 1; }
    same_file "$T/c100" "$FIX/f100M" "curl get 100 MiB blksize 512" || return 1
    rm -f "$T/c100"
    transfer_logged $((100 << 20)) || return 1
    rm -f "$FIX/f100M" "$NGX_ROOT/f100M"
}

t_http_tsize() {
    nginx_up || return 1
    ln "$FIX/f5M" "$NGX_ROOT/f5M"
    ln "$FIX/f4404" "$NGX_ROOT/f4404"
    gw_http "$(ngx_url)" || return 1
    raw_ok get f5M "$T/out" -o tsize=0 -o blksize=1468 || return 1
    [[ $RAW_OUT == *"('tsize', '$((5 << 20))')"* ]] ||
        { fail "OACK of f5M: $RAW_OUT, want tsize $((5 << 20)) (the Content-Length)"; return 1; }
    same_file "$T/out" "$FIX/f5M" "raw get f5M with tsize" || return 1
    raw_ok get f4404 "$T/out2" -o tsize=0 || return 1
    [[ $RAW_OUT == *"[('tsize', '4404')]"* ]] || { fail "OACK of f4404: $RAW_OUT"; return 1; }
    same_file "$T/out2" "$FIX/f4404" "raw get f4404 with tsize"
}

# a slow client must not count as an upstream stall, and the gateway must
# pause the download instead of buffering the body (bounded memory)
t_http_slow_client() {
    nginx_up || return 1
    ln "$FIX/f40M" "$NGX_ROOT/f40M"
    gw_http "$(ngx_url)" stall_timeout=1500 || return 1
    local out rc
    out=$(timeout 90 "$PY" - "$HERE" "$HOST" "$PORT" "$GW_PID" "$T/out" <<'EOF' 2>&1
import sys, time
sys.path.insert(0, sys.argv[1])
import tftpraw as T
host, port, pid, dst = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def rss():
    for line in open("/proc/%s/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1
seen = {}
def hook(c, res, block):
    if block == 300:
        seen["before"] = rss()
        time.sleep(3.0)          # twice stall_timeout, the client holds back
        seen["pause"] = rss()
with T.Client(host, port, timeout=1.0, retries=8) as c:
    seen["start"] = rss()
    r = c.get("f40M", options=[("blksize", "1468"), ("tsize", "0")], hook=hook)
open(dst, "wb").write(r.data)
print("rss_kib start=%d before=%d pause=%d end=%d" % (seen["start"], seen["before"], seen["pause"], rss()))
EOF
    )
    rc=$?
    [ $rc -eq 0 ] || { fail "slow client get f40M: exit $rc: $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"; return 1; }
    same_file "$T/out" "$FIX/f40M" "slow client get f40M" || return 1
    local start pause
    start=$(printf '%s' "$out" | sed -n 's/.*start=\([0-9]*\).*/\1/p')
    pause=$(printf '%s' "$out" | sed -n 's/.*pause=\([0-9]*\).*/\1/p')
    echo "$out" > "$T/rss.txt"
    # 40 MiB arrive at nginx's pace: a gateway that does not pause the
    # download holds most of them while the client sleeps
    [ $((pause - start)) -lt $((12 << 10)) ] ||
        { fail "gateway RSS grew by $(((pause - start) >> 10)) MiB while the client paused ($out)"; return 1; }
}

t_http_concurrent50() {
    nginx_up || return 1
    [ -f "$FIX/f10M" ] || head -c $((10 << 20)) /dev/urandom > "$FIX/f10M"
    ln "$FIX/f10M" "$NGX_ROOT/f10M"
    gw_http "$(ngx_url)" || return 1
    local want i pids=() rc=0 bad=0
    want=$(sha "$FIX/f10M")
    for i in $(seq 1 50); do
        timeout 150 bash -c 'set -o pipefail
            curl -sS --connect-timeout 2 --max-time 140 --tftp-blksize 1468 -o - "$1" | sha256sum | cut -c1-64' \
            _ "$(curl_url f10M)" > "$T/c$i.sha" 2> "$T/c$i.err" &
        pids+=($!)
        track $!
    done
    for i in "${pids[@]}"; do
        wait "$i" || rc=1
        untrack "$i"
    done
    for i in $(seq 1 50); do
        [ "$(cat "$T/c$i.sha")" = "$want" ] || bad=$((bad + 1))
    done
    rm -f "$FIX/f10M" "$NGX_ROOT/f10M"
    [ $rc -eq 0 ] && [ $bad -eq 0 ] && return 0
    fail "$bad of 50 concurrent gets of f10M wrong or failed: $(cat "$T"/c*.err | sort | uniq -c | head -n 3 | tr '\n' ' ')"
}

# ------------------------------------------------------------ nginx: writes

t_http_put() {
    nginx_up || return 1
    gw_http "$(ngx_url)" || return 1
    # curl sends tsize: Content-Length; tftp-hpa does not: chunked
    curl_put "$FIX/f5M" o/curl-f5M --tftp-blksize 1468 || return 1
    same_file "$NGX_ROOT/curl-f5M" "$FIX/f5M" "curl put f5M to nginx" || return 1
    ngx_log_has 'PUT "/base/curl-f5M" 201' "cl=\"$((5 << 20))\"" 'te="-"' || return 1
    hpa octet put "$FIX/f5M" o/hpa-f5M || return 1
    same_file "$NGX_ROOT/hpa-f5M" "$FIX/f5M" "tftp-hpa put f5M to nginx" || return 1
    ngx_log_has 'PUT "/base/hpa-f5M" 201' 'te="chunked"' || return 1
    local f
    for f in f0 f1 f512 f513; do
        hpa octet put "$FIX/$f" "o/sub/dir/hpa-$f" || return 1
        same_file "$NGX_ROOT/sub/dir/hpa-$f" "$FIX/$f" "tftp-hpa put $f to nginx" || return 1
        curl_put "$FIX/$f" "o/curl-$f" --tftp-blksize 512 || return 1
        same_file "$NGX_ROOT/curl-$f" "$FIX/$f" "curl put $f to nginx" || return 1
    done
    atftp_run put o/atftp-f5M "$FIX/f5M" 16 || return 1
    same_file "$NGX_ROOT/atftp-f5M" "$FIX/f5M" "atftp put f5M windowsize 16 to nginx" || return 1
    bb -p -l "$FIX/f513" -r o/bb-f513 || return 1
    same_file "$NGX_ROOT/bb-f513" "$FIX/f513" "busybox put f513 to nginx"
}

t_http_write_policy() {
    nginx_up || return 1
    echo "old object" > "$NGX_ROOT/existing"
    cp "$NGX_ROOT/existing" "$T/existing.orig"
    gw_http "$(ngx_url)" || return 1
    # create: an existing object is refused (HEAD), a new one is created with
    # If-None-Match: * so a racing writer cannot be overwritten
    hpa_expect 6 octet put "$FIX/f513" c/existing || return 1
    curl_expect 6 put "$FIX/f513" c/existing || return 1
    same_file "$NGX_ROOT/existing" "$T/existing.orig" "existing object after refused create" || return 1
    ngx_log_has 'HEAD "/base/existing" 200' || return 1
    if grep -qF 'PUT "/base/existing"' "$NGX_DIR/logs/access.log"; then
        fail "write=create sent a PUT for an existing object: $(grep -F 'PUT "/base/existing"' "$NGX_DIR/logs/access.log" | head -n 1)"
        return 1
    fi
    hpa octet put "$FIX/f4404" c/created || return 1
    same_file "$NGX_ROOT/created" "$FIX/f4404" "write=create of a new object" || return 1
    ngx_log_has 'PUT "/base/created" 201' 'inm="*"' || return 1
    # overwrite replaces
    hpa octet put "$FIX/f513" o/existing || return 1
    same_file "$NGX_ROOT/existing" "$FIX/f513" "write=overwrite of an existing object" || return 1
    curl_put "$FIX/f1" o/existing || return 1
    same_file "$NGX_ROOT/existing" "$FIX/f1" "write=overwrite again (curl)" || return 1
    # off: ERROR 2, nothing reaches nginx
    hpa_expect 2 octet put "$FIX/f513" existing || return 1
    hpa_expect 2 octet put "$FIX/f513" brandnew || return 1
    curl_expect 2 put "$FIX/f513" brandnew || return 1
    [ -e "$NGX_ROOT/brandnew" ] && { fail "write=off created brandnew"; return 1; }
    same_file "$NGX_ROOT/existing" "$FIX/f1" "existing after refused write=off put"
}

# a client killed mid-upload: the PUT is aborted (never completed), so nginx
# stores nothing and its body temp directory is empty again
t_http_killed_upload() {
    nginx_up || return 1
    gw_http "$(ngx_url)" timeout=200 retries=3 || return 1
    local name pid opts
    for name in killed-chunked killed-length; do
        opts=()
        [ $name = killed-length ] && opts=(-o "tsize=$((5 << 20))")
        "$PY" "$HERE/tftpraw.py" put "$HOST" "$PORT" "$FIX/f5M" "o/$name" "${opts[@]}" \
            --block-delay 0.002 > "$T/$name.out" 2>&1 &
        pid=$!
        track "$pid"
        sleep 1.5
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"; untrack "$pid"
            fail "the slow upload $name ended before it was killed: $(cat "$T/$name.out")"
            return 1
        fi
        # nginx spools the body: something must be arriving by now
        [ -n "$(find "$NGX_DIR/tmp/body" -type f 2>/dev/null)" ] ||
            echo "note: no nginx body temp file during $name" >> "$T/notes"
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null
        untrack "$pid"
        failure_logged "o/$name" || return 1
        sleep 0.5
        if [ -e "$NGX_ROOT/$name" ]; then
            fail "killed upload $name stored in nginx ($(stat -c %s "$NGX_ROOT/$name") bytes): the PUT was completed, not aborted; access log: $(grep -F "/base/$name" "$NGX_DIR/logs/access.log" | tr '\n' ' ')"
            return 1
        fi
        local left
        left=$(find "$NGX_DIR/tmp/body" -type f 2>/dev/null | wc -l)
        [ "$left" -eq 0 ] || { fail "nginx temp dir holds $left files after killed upload $name"; return 1; }
        if grep -F "PUT \"/base/$name\"" "$NGX_DIR/logs/access.log" | grep -qE '" 20[0-9] '; then
            fail "nginx answered 2xx to the killed upload $name: $(grep -F "/base/$name" "$NGX_DIR/logs/access.log")"
            return 1
        fi
    done
    hpa octet put "$FIX/f513" o/afterwards || return 1
    same_file "$NGX_ROOT/afterwards" "$FIX/f513" "upload after the killed ones"
}

# ------------------------------------------------------------ names and headers

t_http_key_encoding() {
    nginx_up || return 1
    mkdir -p "$NGX_ROOT/dir with space"
    cp "$FIX/f513" "$NGX_ROOT/sp ace#hash.bin"
    cp "$FIX/f4404" "$NGX_ROOT/dir with space/a+b&c=d;e.bin"
    echo "plain q" > "$NGX_ROOT/q"
    echo "q with query" > "$NGX_ROOT/q?x=1"
    echo "percent" > "$NGX_ROOT/pct%41"
    echo "decoded" > "$NGX_ROOT/pctA"
    gw_http "$(ngx_url)" || return 1
    raw_ok get "sp ace#hash.bin" "$T/o1" || return 1
    same_file "$T/o1" "$FIX/f513" "get of 'sp ace#hash.bin'" || return 1
    ngx_log_has 'GET "/base/sp%20ace%23hash.bin" 200' || return 1
    raw_ok get "dir with space/a+b&c=d;e.bin" "$T/o2" || return 1
    same_file "$T/o2" "$FIX/f4404" "get of 'dir with space/a+b&c=d;e.bin'" || return 1
    raw_ok get "pct%41" "$T/o3" || return 1
    same_file "$T/o3" "$NGX_ROOT/pct%41" "get of 'pct%41' (not pctA)" || return 1
    # '?' is part of the name: either that very object or an error, never "q"
    rawc get "q?x=1" "$T/o4"
    if [ "$RAW_RC" = 0 ]; then
        same_file "$T/o4" "$NGX_ROOT/q?x=1" "get of 'q?x=1'" || return 1
    elif [ "$RAW_RC" -lt 100 ]; then
        fail "get of 'q?x=1': $RAW_OUT"; return 1
    fi
    if grep -qF 'GET "/base/q?' "$NGX_DIR/logs/access.log"; then
        fail "a '?' in the name reached nginx as a query: $(grep -F '/base/q' "$NGX_DIR/logs/access.log")"
        return 1
    fi
    # uploads: the name arrives intact
    raw_ok put "$FIX/f513" "o/new #1?.bin" || return 1
    same_file "$NGX_ROOT/new #1?.bin" "$FIX/f513" "put of 'new #1?.bin'"
}

t_http_headers() {
    badhttp_up || return 1
    local tok="tok-$RANDOM$RANDOM"
    export TFTPGW_TEST_TOKEN=$tok
    gw_http "$BAD_URL" client_headers=yes 'header=Authorization: Bearer ${TFTPGW_TEST_TOKEN}' \
        'header=X-Extra: fixed value' || return 1
    unset TFTPGW_TEST_TOKEN
    raw_ok get echo-headers/sub/f.txt "$T/h" || return 1
    local want
    for want in "Authorization: Bearer $tok" "X-TFTP-Client: 127.0.0.1" \
        "X-TFTP-File: echo-headers/sub/f.txt" "X-Extra: fixed value"; do
        grep -qiF -- "$want" "$T/h" || { fail "request headers lack '$want': $(tr '\r\n' '  ' < "$T/h")"; return 1; }
    done
    grep -qF '${' "$T/h" && { fail "unexpanded \${VAR} sent: $(tr '\r\n' '  ' < "$T/h")"; return 1; }
    # the same headers on a PUT
    hpa octet put "$FIX/f513" o/echo-put || return 1
    "$PY" - "$BAD_LOG" "$tok" <<'EOF' || { fail "PUT headers: $(tail -n 1 "$BAD_LOG" | cut -c1-300)"; return 1; }
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
puts = [r for r in recs if r["method"] == "PUT" and r["target"].endswith("/echo-put")]
assert puts, "no PUT"
h = {k.lower(): v for k, v in puts[-1]["headers"]}
assert h.get("authorization") == "Bearer " + sys.argv[2], h
assert h.get("x-tftp-client") == "127.0.0.1", h
assert h.get("x-tftp-file") == "o/echo-put", h
assert puts[-1]["complete"] and puts[-1]["body_len"] == 513, puts[-1]
EOF
    # a CR LF in a requested name must not become a header of its own
    rawc get $'echo-headers/a\r\nX-Injected: 1' "$T/inj"
    "$PY" - "$BAD_LOG" <<'EOF' || { fail "header injection: a CR LF in the file name became a request header"; return 1; }
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    assert not any(k.lower() == "x-injected" for k, _ in r["headers"]), r
EOF
    gw_stop || return 1
    # client_headers = no: no X-TFTP-* headers
    gw_http "$BAD_URL" client_headers=no || return 1
    raw_ok get echo-headers/x "$T/h2" || return 1
    grep -qi 'X-TFTP-' "$T/h2" && { fail "client_headers=no sent: $(tr '\r\n' '  ' < "$T/h2")"; return 1; }
    gw_stop || return 1
    # a ${VAR} that is not set stops start-up with a message naming it
    unset TFTPGW_TEST_UNSET_VAR
    PORT=$(free_port)
    write_http_config "$T/bad.ini" "127.0.0.1:$PORT" "$BAD_URL" \
        'header=Authorization: Bearer ${TFTPGW_TEST_UNSET_VAR}'
    local out rc
    out=$(timeout 5 "$GW" --config "$T/bad.ini" --allow-root 2>&1 < /dev/null)
    rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] ||
        { fail "config with an unset \${VAR}: exit $rc, want a start-up error: ${out:0:200}"; return 1; }
    [[ $out == *TFTPGW_TEST_UNSET_VAR* ]] ||
        { fail "start-up error does not name the missing variable: ${out:0:200}"; return 1; }
}

# ------------------------------------------------------------ badhttp: faults

t_http_chunked() {
    badhttp_up || return 1
    gw_http "$BAD_URL" || return 1
    bad_gen 300000 "$T/want"
    raw_ok get chunked/300000 "$T/o1" -o tsize=0 -o blksize=1468 || return 1
    [[ $RAW_OUT == *tsize* ]] && { fail "chunked body without length: OACK has tsize: $RAW_OUT"; return 1; }
    [[ $RAW_OUT == *"('blksize', '1468')"* ]] || { fail "chunked: blksize not in OACK: $RAW_OUT"; return 1; }
    same_file "$T/o1" "$T/want" "chunked/300000" || return 1
    curl_get chunked/300000 "$T/o2" --tftp-blksize 512 || return 1
    same_file "$T/o2" "$T/want" "curl get chunked/300000" || return 1
    # only tsize asked, no length known: a plain DATA 1 (or an OACK without tsize)
    raw_ok get chunked/1024 "$T/o3" -o tsize=0 || return 1
    [[ $RAW_OUT == *tsize* ]] && { fail "chunked/1024: OACK has tsize: $RAW_OUT"; return 1; }
    bad_gen 1024 "$T/want1024"
    same_file "$T/o3" "$T/want1024" "chunked/1024" || return 1
    raw_ok get chunked/0 "$T/o4" -o tsize=0 -o blksize=1468 || return 1
    [ -f "$T/o4" ] && [ ! -s "$T/o4" ] || { fail "chunked/0 gave $(stat -c %s "$T/o4" 2>/dev/null) bytes"; return 1; }
    # a known length still gives tsize
    raw_ok get data/100000 "$T/o5" -o tsize=0 || return 1
    [[ $RAW_OUT == *"('tsize', '100000')"* ]] || { fail "data/100000: OACK $RAW_OUT, want tsize 100000"; return 1; }
    good_transfer "chunked bodies"
}

t_http_status() {
    badhttp_up || return 1
    gw_http "$BAD_URL" || return 1
    local pair code want bad=()
    for pair in 404:1 410:1 403:2 401:2 500:0 503:0 400:0 409:0; do
        code=${pair%:*} want=${pair#*:}
        if raw_expect "$want" get "$code" "$T/x" -o blksize=1468; then
            if [ "$want" = 0 ] && [[ $RAW_OUT != *"$code"* ]]; then
                bad+=("HTTP $code: ERROR message '$RAW_OUT' does not name the status")
            fi
            [ "$RAW_MS" -lt 3000 ] || bad+=("HTTP $code: the ERROR took $RAW_MS ms")
        else
            bad+=("$REASON")
        fi
        good_transfer "HTTP $code" || return 1
    done
    [ ${#bad[@]} -eq 0 ] || { fail "${#bad[@]} wrong answers: $(printf '%s | ' "${bad[@]}")"; return 1; }
    hpa_expect 1 octet get 404 "$T/x" || return 1
    hpa_expect 2 octet get 403 "$T/x" || return 1
    curl_expect 1 get 410 "$T/x" || return 1
    failure_logged '"500"' || return 1
    good_transfer "the status codes"
}

t_http_broken_bodies() {
    badhttp_up || return 1
    gw_http "$BAD_URL" stall_timeout=1500 max_redirects=5 || return 1
    # reset mid-body: ERROR 0 soon after the RST
    raw_expect 0 get reset "$T/x" -o blksize=1468 || return 1
    [ "$RAW_MS" -lt 5000 ] || { fail "reset mid-body: ERROR after $RAW_MS ms"; return 1; }
    echo "reset: $RAW_OUT ($RAW_MS ms)" >> "$T/messages"
    good_transfer "a reset mid-body" || return 1
    # stall mid-body: ERROR 0 after stall_timeout (1.5 s) and not much later
    # (a wrong delay is reported at the end, so the checks below still run)
    local late=""
    raw_expect 0 get stall "$T/x" -o blksize=1468 --retries 20 || return 1
    echo "stall: $RAW_OUT ($RAW_MS ms)" >> "$T/messages"
    [ "$RAW_MS" -ge 1300 ] && [ "$RAW_MS" -lt 4000 ] ||
        late="stall mid-body with stall_timeout 1500: ERROR after $RAW_MS ms ($RAW_OUT), want 1.5 s + a little"
    good_transfer "a stall mid-body" || return 1
    # a slow but moving body is not a stall: 30 bytes at 10/s, 3 s in all
    raw_ok get drip/30 "$T/drip" --retries 20 || return 1
    bad_gen 30 "$T/want30"
    same_file "$T/drip" "$T/want30" "drip/30 with stall_timeout 1500" || return 1
    # nobody listens: ERROR 0, quickly
    raw_expect 0 get dead/anything "$T/x" || return 1
    echo "refused: $RAW_OUT ($RAW_MS ms)" >> "$T/messages"
    [ "$RAW_MS" -lt 3000 ] || { fail "connection refused: ERROR after $RAW_MS ms"; return 1; }
    good_transfer "connection refused" || return 1
    # redirects: followed up to max_redirects
    raw_ok get redirect/3/data/1000 "$T/r3" || return 1
    bad_gen 1000 "$T/want1000"
    same_file "$T/r3" "$T/want1000" "three redirects" || return 1
    raw_expect 0 get redirect/7/data/1000 "$T/x" || return 1
    echo "redirects: $RAW_OUT ($RAW_MS ms)" >> "$T/messages"
    good_transfer "too many redirects" || return 1
    failure_logged '"reset"' || return 1
    [ -z "$late" ] || { fail "$late"; return 1; }
}

t_http_put_errors() {
    badhttp_up || return 1
    gw_http "$BAD_URL" || return 1
    local spec route code want bad=()
    # route/path:TFTP error; only create maps 409/412 (a racing writer) to 6.
    # Every mismatch is collected, so one run shows the whole mapping.
    for spec in o/put-500:0 o/put-403:2 o/put-401:2 o/put-413:3 o/put-409:0 \
        c/put-409:6 c/put-412:6 o/put-early-413:3 o/put-early-403:2; do
        route=${spec%:*} want=${spec#*:}
        code=${route##*-}
        if raw_expect "$want" put "$FIX/f50k" "$route" -o blksize=1468; then
            [ "$want" = 0 ] && [[ $RAW_OUT != *"$code"* ]] &&
                bad+=("PUT answered $code: ERROR message '$RAW_OUT' does not name the status")
        else
            bad+=("$REASON")
        fi
        # with tsize (Content-Length) and without it (chunked) too
        curl_expect "$want" put "$FIX/f4404" "$route" || bad+=("$REASON")
        hpa_expect "$want" octet put "$FIX/f4404" "$route" || bad+=("$REASON")
    done
    [ ${#bad[@]} -eq 0 ] || { fail "${#bad[@]} wrong answers: $(printf '%s | ' "${bad[@]}")"; return 1; }
    # the final ACK waits for the 2xx (badhttp answers 2 s after the body)
    raw_ok put "$FIX/f4404" o/put-slow-201 -o blksize=1468 --retries 10 || return 1
    [ "$RAW_MS" -ge 1900 ] || { fail "final ACK after $RAW_MS ms, before the server's answer (2 s)"; return 1; }
    "$PY" - "$BAD_LOG" <<'EOF' || { fail "badhttp log: $(tail -n 2 "$BAD_LOG" | cut -c1-300 | tr '\n' ' ')"; return 1; }
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
def hdr(r, name):
    return {k.lower(): v for k, v in r["headers"]}.get(name)
# create mode: HEAD first, then PUT with If-None-Match: *
seq = [r["method"] for r in recs if r["target"].endswith("/put-412")]
assert seq[:2] == ["HEAD", "PUT"], seq
p = [r for r in recs if r["method"] == "PUT" and r["target"].endswith("/put-412")]
assert all(hdr(r, "if-none-match") == "*" for r in p), [r["headers"] for r in p]
# tsize (raw client with blksize only sends none): check the slow-201 upload
s = [r for r in recs if r["method"] == "PUT" and r["target"].endswith("/put-slow-201")][-1]
assert s["complete"] and s["body_len"] == 4404, s
EOF
    good_transfer "failed PUTs"
}

# ------------------------------------------------------------ TLS

# tls_certs DIR: a CA, a server certificate for 127.0.0.1, a client certificate
tls_certs() {
    local d=$1
    mkdir -p "$d"
    (
        cd "$d" || exit 1
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
            -subj "/CN=tftpgw test CA" || exit 1
        openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=127.0.0.1" || exit 1
        printf 'subjectAltName=IP:127.0.0.1\n' > srv.ext
        openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem \
            -days 2 -extfile srv.ext || exit 1
        openssl req -newkey rsa:2048 -nodes -keyout cli.key -out cli.csr -subj "/CN=tftp client" || exit 1
        openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cli.pem -days 2 || exit 1
    ) > "$d/openssl.log" 2>&1
}

t_http_tls() {
    command -v openssl > /dev/null || { REASON="openssl not installed"; return 77; }
    tls_certs "$T/pki" || { fail "openssl failed: $(tail -n 3 "$T/pki/openssl.log" | tr '\n' ' ')"; return 1; }
    local P=$T/pki
    nginx_up "ssl_certificate $P/srv.pem; ssl_certificate_key $P/srv.key;
        ssl_client_certificate $P/ca.pem; ssl_verify_client optional;
        if (\$uri ~ ^/base/mtls/) { set \$need_cert 1; }
        if (\$ssl_client_verify != SUCCESS) { set \$need_cert \"\${need_cert}0\"; }
        if (\$need_cert = 10) { return 403; }" ssl || return 1
    mkdir -p "$NGX_ROOT/mtls"
    ln "$FIX/f50k" "$NGX_ROOT/f50k"
    ln "$FIX/f50k" "$NGX_ROOT/mtls/f50k"
    local url="https://127.0.0.1:$NGX_PORT/base/"
    # verification on by default: our CA given -> ok
    gw_http "$url" "ca_file=$P/ca.pem" || return 1
    raw_ok get f50k "$T/o1" || return 1
    same_file "$T/o1" "$FIX/f50k" "https get with ca_file" || return 1
    raw_expect 2 get mtls/f50k "$T/x" || { REASON="https without a client certificate: $REASON"; return 1; }
    hpa octet put "$FIX/f513" o/tls-put || return 1
    same_file "$NGX_ROOT/tls-put" "$FIX/f513" "https put" || return 1
    gw_stop || return 1
    # no ca_file: the system store does not know our CA -> ERROR 0
    gw_http "$url" || return 1
    raw_expect 0 get f50k "$T/x" || { REASON="https with an unknown CA: $REASON"; return 1; }
    echo "unknown CA: $RAW_OUT" >> "$T/messages"
    gw_stop || return 1
    # insecure = yes: no verification
    gw_http "$url" insecure=yes || return 1
    raw_ok get f50k "$T/o2" || return 1
    same_file "$T/o2" "$FIX/f50k" "https get with insecure=yes" || return 1
    gw_stop || return 1
    # client certificate
    gw_http "$url" "ca_file=$P/ca.pem" "client_cert=$P/cli.pem" "client_key=$P/cli.key" || return 1
    raw_ok get mtls/f50k "$T/o3" || return 1
    same_file "$T/o3" "$FIX/f50k" "https get with a client certificate"
}

# ------------------------------------------------------------ the list

# tests/bench/http_bench.sh sources this file for its helpers only
[ -n "${HTTP_SH_LIB_ONLY:-}" ] && return 0

run_test http_get_sizes        hx t_http_get_sizes
run_test http_get_100M         hx t_http_get_100M
run_test http_tsize            hx t_http_tsize
run_test http_slow_client      hx t_http_slow_client
run_test http_concurrent50     hx t_http_concurrent50
run_test http_put              hx t_http_put
run_test http_write_policy     hx t_http_write_policy
run_test http_killed_upload    hx t_http_killed_upload
run_test http_key_encoding     hx t_http_key_encoding
run_test http_headers          hx t_http_headers
run_test http_chunked          hx t_http_chunked
run_test http_status           hx t_http_status
run_test http_broken_bodies    hx t_http_broken_bodies
run_test http_put_errors       hx t_http_put_errors
run_test http_tls              hx t_http_tls
