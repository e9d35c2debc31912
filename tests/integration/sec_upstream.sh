# tests/integration/sec_upstream.sh - secrets go only to the configured
# origin, and clients learn nothing internal (sourced by run.sh after lib.sh,
# http.sh and s3.sh; bash). Tests are named sec_upstream_*.
#
# Peers, all on 127.0.0.1: nginx (http.sh's nginx_up) as the configured
# origin, answering redirects from extra `location` blocks; badhttp.py
# (http.sh's badhttp_up) as "another host" on another port, whose JSON log
# records every request it received with its headers; s3rver (s3.sh's
# s3_up) for the S3 prefix; `openssl s_server` for the TLS minimum and as
# the other host of an https redirect.
#
# What is checked:
#   redirect_default  a 302 to another origin fails with ERROR 0 "upstream
#                     error 302" and the other server receives nothing; a
#                     302 within the origin is followed, with the configured
#                     headers, and the bytes arrive; create mode's HEAD
#                     follows the same rules; a redirect loop stops after
#                     max_redirects
#   redirect_any      redirects = any follows the 302 elsewhere, and the
#                     other server gets neither the configured headers, nor
#                     user:password from the URL, nor X-TFTP-*; a PUT is never
#                     redirected
#   redirect_none     redirects = none: a 302 even within the origin fails
#   s3_redirect       the same for SigV4: signed at the origin only, for
#                     GETs and for both create-mode probes (engine HEAD with
#                     tsize, multipart HEAD without)
#   redirect_cert     the same for a TLS client certificate
#   unavailable       connection refused and a stall: ERROR 0 "upstream
#                     unavailable" exactly (tftp-hpa and a raw client; through
#                     a cache too), curl's detail in the log only
#   status_texts      upstream 503/500/400 -> "upstream error N", 403 ->
#                     ERROR 2 "Access violation" (RFC 1350's words), the
#                     detail "access denied by upstream" in the log
#   tls_minimum       a TLS 1.1-only upstream is refused even when the
#                     system's OpenSSL policy allows TLS 1.1 (shown with curl
#                     first), for http and s3 backends; TLS 1.2 works
#   s3_prefix         prefix = tftp cannot reach tftp-private/...

SU_TLS_PIDS=()

# su FUNCTION: run a test, then stop its gateway (a crash is a failure) and
# every peer it started
su() {
    [ -n "$PEER" ] && { REASON="gateway-specific (upstream backends)"; return 77; }
    "$@"
    gw_verdict $?
    local rc=$? pid
    peers_stop
    s3_down
    for pid in "${SU_TLS_PIDS[@]}"; do stop_pid "$pid"; done
    SU_TLS_PIDS=()
    REASON=$GW_REASON
    return $rc
}

# su_gw_up TEXT [NAME=VALUE...]: a gateway whose [backend]s and [route]s are
# TEXT, started with the extra environment given
su_gw_up() {
    local text=$1
    shift
    HOST=127.0.0.1
    for _ in 1 2 3; do
        PORT=$(free_port)
        {
            echo "; written by tests/integration/sec_upstream.sh"
            echo "[server]"
            echo "listen = 127.0.0.1:$PORT"
            server_extra
            echo "timeout = 1000"
            echo "retries = 5"
            echo "max_blksize = 65464"
            echo
            printf '%s\n' "$text"
        } > "$T/gw.ini"
        chmod 600 "$T/gw.ini"
        start_gateway env "$@" "$GW" --config "$T/gw.ini" && return 0
        case $REASON in *"did not bind"*|*"exited at start-up"*) return 1 ;; esac
    done
    return 1
}

# raw_text CODE TEXT get|put A B [args]: the transfer ends in ERROR CODE
# whose text is exactly TEXT
raw_text() {
    local code=$1 text=$2
    shift 2
    rawc "$@"
    [ "$RAW_OUT" = "error $code $text" ] && return 0
    fail "raw $1 $2: '$RAW_OUT' (exit $RAW_RC), want ERROR $code \"$text\""
}

# bad_requests: how many requests badhttp (the other host) received
bad_requests() { grep -c . "$BAD_LOG" 2>/dev/null; }

# no_secret_logged TOKEN: the gateway log never holds a secret
no_secret_logged() {
    grep -qF -- "$1" "$GW_LOG" || return 0
    fail "a secret reached the gateway log: $(grep -F -- "$1" "$GW_LOG" | head -n 1 | cut -c1-200)"
}

# ngx_count PATTERN: access-log lines holding the fixed string PATTERN
ngx_count() { grep -cF -- "$1" "$NGX_DIR/logs/access.log" 2>/dev/null; }

# su_web_config URL [backend lines...]: [backend web] (http) and routes
# o/ (overwrite, key {rest}), c/ (create: HEAD first, key {rest}) and
# everything else (read only)
su_web_config() {
    local url=$1 l
    shift
    echo "[backend web]"
    echo "type = http"
    echo "url = $url"
    for l in "$@"; do echo "$l"; done
    echo
    echo "[route o]"
    echo "match = o/"
    echo "backend = web"
    echo "key = {rest}"
    echo "write = overwrite"
    echo
    echo "[route c]"
    echo "match = c/"
    echo "backend = web"
    echo "key = {rest}"
    echo "write = create"
    echo
    echo "[route all]"
    echo "match ="
    echo "backend = web"
}

# nginx with the redirects the tests need: away/ -> the other host, here/
# -> f50k in the same origin, loop/ -> itself, putaway/ -> 307 elsewhere
su_nginx_up() {
    nginx_up "location /base/away/ { return 302 http://127.0.0.1:$BAD_PORT/data/1000; }
        location /base/here/ { return 302 /base/f50k; }
        location /base/loop/ { return 302 /base/loop/again; }
        location /base/putaway/ { return 307 http://127.0.0.1:$BAD_PORT/put-201; }" || return 1
    ln "$FIX/f50k" "$NGX_ROOT/f50k"
}

# ------------------------------------------------------------ redirects

t_su_redirect_default() {
    badhttp_up || return 1
    su_nginx_up || return 1
    local tok="key-$RANDOM$RANDOM"
    su_gw_up "$(su_web_config "$(ngx_url)" 'header = X-Api-Key: ${SU_TOKEN}' \
        'header = Authorization: Bearer ${SU_TOKEN}')" SU_TOKEN="$tok" || return 1
    # to another origin: refused, the other host hears nothing
    raw_text 0 "upstream error 302" get away/x "$T/x" || return 1
    [ "$(ngx_count 'GET "/base/away/x" 302')" = 1 ] ||
        { fail "nginx did not see the request: $(tail -n 2 "$NGX_DIR/logs/access.log" | tr '\n' '|')"; return 1; }
    sleep 0.3
    [ "$(bad_requests)" = 0 ] ||
        { fail "the other host received $(bad_requests) request(s): $(head -c 400 "$BAD_LOG")"; return 1; }
    log_has "backend web: GET" "127.0.0.1:$BAD_PORT/data/1000" "another origin (redirects = same-origin)" \
        'file "away/x"' || return 1
    # within the origin: followed, with the configured headers, bytes intact
    raw_ok get here/x "$T/here" -o blksize=1468 -o tsize=0 || return 1
    same_file "$T/here" "$FIX/f50k" "same-origin redirect to f50k" || return 1
    [[ $RAW_OUT == *"('tsize', '50000')"* ]] || { fail "tsize after the redirect: $RAW_OUT"; return 1; }
    ngx_log_has 'GET "/base/here/x" 302' "auth=\"Bearer $tok\"" || return 1
    ngx_log_has 'GET "/base/f50k" 200' "auth=\"Bearer $tok\"" 'xc="127.0.0.1"' 'xf="here/x"' || return 1
    # create mode's HEAD follows too: here/x leads to f50k, which exists
    raw_text 6 "File already exists" put "$FIX/f513" c/here/x -o tsize=513 || return 1
    ngx_log_has 'HEAD "/base/here/x" 302' || return 1
    ngx_log_has 'HEAD "/base/f50k" 200' "auth=\"Bearer $tok\"" || return 1
    raw_text 0 "upstream error 302" put "$FIX/f513" c/away/x -o tsize=513 || return 1
    # a loop ends after max_redirects (5): the first request and 5 hops
    raw_text 0 "upstream error 302" get loop/x "$T/x" || return 1
    local n
    n=$(($(ngx_count 'GET "/base/loop/x" 302') + $(ngx_count 'GET "/base/loop/again" 302')))
    [ "$n" = 6 ] || { fail "redirect loop: nginx saw $n requests, want 6 (1 + max_redirects)"; return 1; }
    log_has "more than max_redirects = 5" || return 1
    no_secret_logged "$tok" || return 1
    [ "$(bad_requests)" = 0 ] || { fail "the other host received a request"; return 1; }
}

# bad_log_clean TOKEN WANT: badhttp (the other host) received exactly the
# one request WANT ("GET /data/1000"), free of credentials, of configured
# and client headers, and of TOKEN anywhere in a header value
bad_log_clean() {
    "$PY" - "$BAD_LOG" "$1" "$2" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
want = sys.argv[3]
assert [r["method"] + " " + r["target"] for r in recs] == [want], \
    "requests: %r" % [r["method"] + " " + r["target"] for r in recs]
for r in recs:
    names = {k.lower() for k, _ in r["headers"]}
    leaked = names & {"x-api-key", "authorization", "x-tftp-client", "x-tftp-file",
                      "x-amz-security-token", "x-amz-content-sha256", "x-amz-date"}
    assert not leaked, "sent to the other host: %s (headers %r)" % (sorted(leaked), r["headers"])
    assert not any(sys.argv[2] in v for _, v in r["headers"]), "a secret in %r" % r["headers"]
EOF
}

t_su_redirect_any() {
    badhttp_up || return 1
    su_nginx_up || return 1
    local tok="key-$RANDOM$RANDOM"
    # user:password in the URL is a credential as well
    su_gw_up "$(su_web_config "http://tftp:pw-$tok@127.0.0.1:$NGX_PORT/base/" \
        'header = X-Api-Key: ${SU_TOKEN}' 'redirects = any')" SU_TOKEN="$tok" || return 1
    raw_ok get away/x "$T/away" -o blksize=1468 || return 1
    bad_gen 1000 "$T/want1000"
    same_file "$T/away" "$T/want1000" "redirect to the other host under redirects = any" || return 1
    # the origin got the credentials (so their absence below means something)
    ngx_log_has 'GET "/base/away/x" 302' 'auth="Basic ' 'xc="127.0.0.1"' 'xf="away/x"' || return 1
    bad_log_clean "$tok" "GET /data/1000" ||
        { fail "the other host: $(cut -c1-400 "$BAD_LOG" | tr '\n' '|')"; return 1; }
    # within the origin the headers still go along
    raw_ok get here/x "$T/here" || return 1
    same_file "$T/here" "$FIX/f50k" "same-origin redirect under redirects = any" || return 1
    ngx_log_has 'GET "/base/f50k" 200' 'auth="Basic ' 'xc="127.0.0.1"' || return 1
    # a PUT is never redirected, even under any: its body cannot be sent twice
    : > "$BAD_LOG"
    raw_text 0 "upstream error 307" put "$FIX/f50k" o/putaway/x -o blksize=1468 || return 1
    raw_text 0 "upstream error 307" put "$FIX/f50k" o/putaway/y -o blksize=1468 -o tsize=50000 || return 1
    sleep 0.3
    [ "$(bad_requests)" = 0 ] ||
        { fail "a redirected PUT reached the other host: $(head -c 400 "$BAD_LOG")"; return 1; }
    log_has "backend web: PUT" "a PUT is not redirected" || return 1
    no_secret_logged "$tok"
}

t_su_redirect_none() {
    badhttp_up || return 1
    su_nginx_up || return 1
    su_gw_up "$(su_web_config "$(ngx_url)" 'redirects = none')" || return 1
    raw_text 0 "upstream error 302" get here/x "$T/x" || return 1
    [ "$(ngx_count 'GET "/base/here/x" 302')" = 1 ] && [ "$(ngx_count '/base/f50k')" = 0 ] ||
        { fail "redirects = none followed: $(tail -n 3 "$NGX_DIR/logs/access.log" | tr '\n' '|')"; return 1; }
    log_has "redirects = none" || return 1
    # and the gateway still serves
    raw_ok get f50k "$T/f" || return 1
    same_file "$T/f" "$FIX/f50k" "after a refused redirect"
}

# nginx plays an S3 endpoint (path style, no signature check): the first
# request must be signed, a hop to another origin must not be
t_su_s3_redirect() {
    badhttp_up || return 1
    nginx_up "location /bkt/away/ { return 302 http://127.0.0.1:$BAD_PORT/data/1000; }
        location /bkt/here/ { return 302 /bkt/obj; }" || return 1
    mkdir -p "$NGX_DIR/root/bkt"
    ln "$FIX/f4404" "$NGX_DIR/root/bkt/obj"
    local tok="tok$RANDOM$RANDOM" b
    for b in same any; do
        cat <<EOF
[backend s3$b]
type = s3
endpoint = http://127.0.0.1:$NGX_PORT
bucket = bkt
path_style = yes
access_key = AKIDEXAMPLE
secret_key = \${SU_SECRET}
session_token = \${SU_TOKEN}
$([ $b = any ] && echo "redirects = any")

[route $b]
match = $b/
backend = s3$b
key = {rest}

[route c$b]
match = c$b/
backend = s3$b
key = {rest}
write = create

EOF
    done > "$T/s3part.ini"
    su_gw_up "$(cat "$T/s3part.ini")" SU_SECRET="secret-$tok" SU_TOKEN="$tok" || return 1
    raw_text 0 "upstream error 302" get same/away/x "$T/x" || return 1
    sleep 0.3
    [ "$(bad_requests)" = 0 ] ||
        { fail "s3, same-origin: the other host received: $(head -c 400 "$BAD_LOG")"; return 1; }
    raw_ok get same/here/x "$T/here" || return 1
    same_file "$T/here" "$FIX/f4404" "s3: same-origin redirect" || return 1
    ngx_log_has 'GET "/bkt/obj" 200' 'auth="AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/' || return 1
    raw_ok get any/away/x "$T/away" || return 1
    bad_gen 1000 "$T/want1000"
    same_file "$T/away" "$T/want1000" "s3: redirect to the other host under redirects = any" || return 1
    ngx_log_has 'GET "/bkt/away/x" 302' 'auth="AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/' || return 1
    bad_log_clean "$tok" "GET /data/1000" ||
        { fail "s3, the other host: $(cut -c1-400 "$BAD_LOG" | tr '\n' '|')"; return 1; }
    # create mode: the HEAD before an upload follows the same rules, both
    # the engine's (with tsize) and the multipart probe's (without)
    raw_text 6 "File already exists" put "$FIX/f513" csame/here/x -o tsize=513 || return 1
    raw_text 6 "File already exists" put "$FIX/f513" csame/here/y || return 1
    [ "$(ngx_count 'HEAD "/bkt/obj" 200')" = 2 ] ||
        { fail "s3 create: HEADs of /bkt/obj: $(grep HEAD "$NGX_DIR/logs/access.log" | tr '\n' '|')"; return 1; }
    ngx_log_has 'HEAD "/bkt/obj" 200' 'auth="AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/' || return 1
    : > "$BAD_LOG"
    raw_text 0 "upstream error 302" put "$FIX/f513" csame/away/x || return 1
    raw_text 0 "upstream error 302" put "$FIX/f513" csame/away/y -o tsize=513 || return 1
    sleep 0.3
    [ "$(bad_requests)" = 0 ] ||
        { fail "s3 create, same-origin: the other host received: $(head -c 400 "$BAD_LOG")"; return 1; }
    raw_text 6 "File already exists" put "$FIX/f513" cany/away/x || return 1
    bad_log_clean "$tok" "HEAD /data/1000" ||
        { fail "s3 create, the other host: $(cut -c1-400 "$BAD_LOG" | tr '\n' '|')"; return 1; }
    no_secret_logged "$tok"
}

# ------------------------------------------------------------ error texts

t_su_unavailable() {
    local dead
    dead=$(free_tcp_port)
    su_gw_up "[backend dead]
type = http
url = http://127.0.0.1:$dead/nothing/
connect_timeout = 2000

[backend edge]
type = cache
upstream = dead
dir = $T/cache

[route cached]
match = cached/
backend = edge
key = {rest}

[route put]
match = put/
backend = dead
key = {rest}
write = overwrite

[route all]
match =
backend = dead" || return 1
    raw_text 0 "upstream unavailable" get some/file "$T/x" || return 1
    local out
    out=$(timeout 30 tftp -m octet "$HOST" "$PORT" -c get other/file "$T/y" 2>&1)
    [ "$out" = "Error code 0: upstream unavailable" ] ||
        { fail "tftp-hpa printed '$out', want 'Error code 0: upstream unavailable'"; return 1; }
    raw_text 0 "upstream unavailable" get cached/file "$T/x" || return 1
    raw_text 0 "upstream unavailable" put "$FIX/f513" put/file -o tsize=513 || return 1
    # the detail is in the log, on the line that names the request
    log_has "backend dead: GET http://127.0.0.1:$dead/nothing/some/file failed" \
        "Failed to connect to 127.0.0.1 port $dead" 'file "some/file"' || return 1
    log_has "backend dead: PUT http://127.0.0.1:$dead/nothing/file failed" "curl 7" || return 1
    log_has 'file="some/file"' 'error="upstream unavailable"' || return 1
    # a stall: the same text
    badhttp_up || return 1
    gw_stop || return 1
    su_gw_up "$(su_web_config "$BAD_URL" 'stall_timeout = 1500')" || return 1
    raw_text 0 "upstream unavailable" get stall "$T/x" -o blksize=1468 --retries 20 || return 1
    log_has "backend web: GET ${BAD_URL}stall failed: stalled: nothing moved for 1500 ms"
}

t_su_status_texts() {
    badhttp_up || return 1
    su_gw_up "$(su_web_config "$BAD_URL")" || return 1
    local code
    for code in 503 500 400 502; do
        raw_text 0 "upstream error $code" get "$code" "$T/x" || return 1
        log_has "backend web: GET ${BAD_URL}$code failed: HTTP $code" || return 1
    done
    # codes 1-7 carry RFC 1350's words; the detail is the log's
    raw_text 2 "Access violation" get 403 "$T/x" || return 1
    log_has "file=\"403\"" "result=error error=\"access denied by upstream\"" || return 1
    raw_text 1 "File not found" get 404 "$T/x" || return 1
    raw_text 0 "upstream error 500" put "$FIX/f513" o/put-500 || return 1
    raw_text 0 "upstream error 500" put "$FIX/f513" o/put-500 -o tsize=513 || return 1
    local out
    out=$(timeout 30 tftp -m octet "$HOST" "$PORT" -c get 503 "$T/y" 2>&1)
    [ "$out" = "Error code 0: upstream error 503" ] ||
        { fail "tftp-hpa printed '$out', want 'Error code 0: upstream error 503'"; return 1; }
}

# ------------------------------------------------------------ TLS

# su_tls_server CONF DIR PORT_VAR NAME [ARGS...]: openssl s_server serving
# DIR (-WWW) with the test PKI ($T/pki) under OPENSSL_CONF=CONF (the
# system's when ""); its output in $T/s_server-NAME.out
su_tls_server() {
    local conf=$1 dir=$2 var=$3 name=$4 port pid i
    shift 4
    for _ in 1 2 3; do
        port=$(free_tcp_port)
        (cd "$dir" && if [ -n "$conf" ]; then export OPENSSL_CONF=$conf; fi &&
            exec openssl s_server -WWW -accept "127.0.0.1:$port" -cert "$T/pki/srv.pem" \
            -key "$T/pki/srv.key" "$@") > "$T/s_server-$name.out" 2>&1 < /dev/null &
        pid=$!
        track "$pid"
        SU_TLS_PIDS+=("$pid")
        for i in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || break
            tcp_ready "$port" && { printf -v "$var" '%s' "$port"; return 0; }
            sleep 0.1
        done
        stop_pid "$pid"
    done
    fail "openssl s_server $name did not start: $(tail -n 2 "$T/s_server-$name.out" | tr '\n' ' ')"
}

# redirects = any over https: the client certificate goes to the origin
# (nginx refuses the request without it) and not to the other host (an
# s_server that asks for one and prints the certificate it gets)
t_su_redirect_client_cert() {
    command -v openssl > /dev/null || { REASON="openssl not installed"; return 77; }
    tls_certs "$T/pki" || { fail "openssl failed: $(tail -n 3 "$T/pki/openssl.log" | tr '\n' ' ')"; return 1; }
    local P=$T/pki sp=""
    mkdir -p "$T/www"
    cp "$FIX/f4404" "$T/www/f4404"
    su_tls_server "" "$T/www" sp other -verify 1 -CAfile "$P/ca.pem" || return 1
    nginx_up "ssl_certificate $P/srv.pem; ssl_certificate_key $P/srv.key;
        ssl_client_certificate $P/ca.pem; ssl_verify_client optional;
        location /base/away/ {
            if (\$ssl_client_verify != SUCCESS) { return 403; }
            return 302 https://127.0.0.1:$sp/f4404;
        }" ssl || return 1
    su_gw_up "$(su_web_config "https://127.0.0.1:$NGX_PORT/base/" "ca_file = $P/ca.pem" \
        "client_cert = $P/cli.pem" "client_key = $P/cli.key" 'redirects = any')" || return 1
    raw_ok get away/x "$T/away" || return 1
    same_file "$T/away" "$FIX/f4404" "https redirect to the other host" || return 1
    ngx_log_has 'GET "/base/away/x" 302' || return 1
    local out=$T/s_server-other.out
    [ "$(grep -c '^FILE:f4404' "$out")" = 1 ] ||
        { fail "the other host did not serve f4404 once: $(tr '\n' '|' < "$out")"; return 1; }
    if grep -q 'CN = tftp client' "$out"; then
        fail "the client certificate was presented to the other host: $(tr '\n' '|' < "$out")"
        return 1
    fi
}

t_su_tls_minimum() {
    command -v openssl > /dev/null || { REASON="openssl not installed"; return 77; }
    tls_certs "$T/pki" || { fail "openssl failed: $(tail -n 3 "$T/pki/openssl.log" | tr '\n' ' ')"; return 1; }
    # A system policy that allows TLS 1.0 and 1.1 (the kind an old
    # distribution or a hand-edited openssl.cnf has)
    cat > "$T/openssl-low.cnf" <<'EOF'
openssl_conf = tftpgw_test
[tftpgw_test]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1
CipherString = DEFAULT@SECLEVEL=0
EOF
    mkdir -p "$T/www/bkt"
    cp "$FIX/f4404" "$T/www/f4404"
    cp "$FIX/f4404" "$T/www/bkt/obj"
    local p11="" p12=""
    local low=$T/openssl-low.cnf
    su_tls_server "$low" "$T/www" p11 tls11 -quiet -tls1_1 -cipher 'DEFAULT@SECLEVEL=0' || return 1
    su_tls_server "$low" "$T/www" p12 tls12 -quiet -tls1_2 -cipher 'DEFAULT@SECLEVEL=0' || return 1
    # precondition: under this policy a TLS 1.1 handshake with it succeeds,
    # so only the gateway's own minimum can refuse it
    OPENSSL_CONF="$T/openssl-low.cnf" timeout 20 curl -sS --tlsv1.1 --cacert "$T/pki/ca.pem" \
        -o "$T/curl11" "https://127.0.0.1:$p11/f4404" 2> "$T/curl11.err" ||
        { fail "precondition: curl --tlsv1.1 under the lowered policy failed: $(cat "$T/curl11.err")"; return 1; }
    same_file "$T/curl11" "$FIX/f4404" "precondition: curl over TLS 1.1" || return 1
    su_gw_up "[backend tls11]
type = http
url = https://127.0.0.1:$p11/
ca_file = $T/pki/ca.pem

[backend tls12]
type = http
url = https://127.0.0.1:$p12/
ca_file = $T/pki/ca.pem

[backend s311]
type = s3
endpoint = https://127.0.0.1:$p11
bucket = bkt
path_style = yes
access_key = AK
secret_key = \${SU_SECRET}
ca_file = $T/pki/ca.pem

[route old]
match = old/
backend = tls11
key = {rest}

[route s3old]
match = s3old/
backend = s311
key = {rest}

[route all]
match =
backend = tls12" OPENSSL_CONF="$T/openssl-low.cnf" SU_SECRET=sk || return 1
    raw_text 0 "upstream unavailable" get old/f4404 "$T/x" || return 1
    log_has "backend tls11: GET https://127.0.0.1:$p11/f4404 failed: curl 35" || return 1
    raw_text 0 "upstream unavailable" get s3old/obj "$T/x" || return 1
    log_has "backend s311: GET https://127.0.0.1:$p11/bkt/obj failed: curl 35" || return 1
    # TLS 1.2 from the same gateway, PKI and policy: served
    raw_ok get f4404 "$T/ok" || return 1
    same_file "$T/ok" "$FIX/f4404" "https get over TLS 1.2"
}

# ------------------------------------------------------------ S3 prefix

t_su_s3_prefix() {
    s3_up || return $?
    s3_put_obj "$FIX/f513" tftp-private/secret.txt || return 1
    s3_put_obj "$FIX/f4404" tftp/ok.txt || return 1
    [ -s "$S3_REQLOG" ] && mv "$S3_REQLOG" "$T/s3req-setup.log"
    local cfg="[backend store]
type = s3
endpoint = $S3_URL
bucket = $S3_BUCKET
path_style = yes
access_key = S3RVER
secret_key = S3RVER
prefix = tftp
spool_dir = $S3_SPOOL

[route s]
match = s/
backend = store
key = {rest}
write = overwrite"
    su_gw_up "$cfg" || return 1
    raw_expect 1 get s/-private/secret.txt "$T/x" || return 1
    [ -s "$T/x" ] && { fail "bytes of tftp-private/secret.txt were served"; return 1; }
    raw_ok get s/ok.txt "$T/ok" || return 1
    same_file "$T/ok" "$FIX/f4404" "s/ok.txt (tftp/ok.txt)" || return 1
    hpa octet put "$FIX/f1k" s/-private/new || return 1
    s3_check_obj tftp/-private/new "$FIX/f1k" "upload to s/-private/new" || return 1
    s3_keys || return 1
    s3_listed tftp-private/new && { fail "an upload landed in tftp-private/"; return 1; }
    s3_req "^GET /$S3_BUCKET/tftp/-private/secret.txt " > /dev/null ||
        { fail "no GET of tftp/-private/secret.txt: $(s3_log_tail)"; return 1; }
    if s3_req "/$S3_BUCKET/tftp-private" > /dev/null; then
        fail "a request reached tftp-private/: $(s3_req "/$S3_BUCKET/tftp-private" | head -n 2 | tr '\n' '|')"
        return 1
    fi
    # --check-config says what the prefix means
    local out
    out=$("$GW" --check-config "$T/gw.ini" 2>&1)
    [[ $out == *'prefix "tftp" is a folder: keys are read and written under "tftp/" only'* ]] ||
        { fail "--check-config does not explain the prefix: $out"; return 1; }
}

run_test sec_upstream_redirect_default su t_su_redirect_default
run_test sec_upstream_redirect_any     su t_su_redirect_any
run_test sec_upstream_redirect_none    su t_su_redirect_none
run_test sec_upstream_s3_redirect      su t_su_s3_redirect
run_test sec_upstream_unavailable      su t_su_unavailable
run_test sec_upstream_status_texts     su t_su_status_texts
run_test sec_upstream_redirect_cert    su t_su_redirect_client_cert
run_test sec_upstream_tls_minimum      su t_su_tls_minimum
run_test sec_upstream_s3_prefix        su t_su_s3_prefix
