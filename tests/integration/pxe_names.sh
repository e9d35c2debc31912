# tests/integration/pxe_names.sh - names as boot programs send them, and
# layered backends (sourced by run.sh after http.sh and cache.sh; bash).
#
#   case = insensitive   Windows boot (WDS, SCCM) asks \Boot\BCD and
#                        \boot\x64\wdsnbp.com in any case; the file backend
#                        finds them, and no case trick leaves the root
#   case = lower         the name in lower case before routing
#   backend = a, b       reads try a, then b on "not found" only; writes go
#                        to a; the transfer line says which one served
#
# What reached nginx is read from its access log (http.sh's nginx_up).

# names_ngx METHOD KEY [STATUS]: requests for /base/KEY in nginx's access log
# (own name: other groups define ngx_count differently)
names_ngx() {
    grep -cF "$1 \"/base/$2\" ${3:-}" "$NGX_DIR/logs/access.log" 2>/dev/null
}

# names_ngx_is N METHOD KEY [STATUS]: exactly N such requests, waiting up to
# 3 s for nginx to log them (it logs after the response went out)
names_ngx_is() {
    local want=$1 i n
    shift
    for i in $(seq 1 30); do
        n=$(names_ngx "$@")
        [ "$n" = "$want" ] && return 0
        [ "$n" -gt "$want" ] 2>/dev/null && break
        sleep 0.1
    done
    fail "nginx logged $n of '$*', want $want: $(tail -n 4 "$NGX_DIR/logs/access.log" | tr '\n' '|')"
}

# names_config FILE LISTEN ROUTE-LINES...: a [server] at debug level, the
# standard file backend at $ROOT, then the given route lines verbatim.
names_config() {
    local file=$1 listen=$2
    shift 2
    {
        echo "; written by tests/integration/pxe_names.sh"
        echo "[server]"
        echo "listen = $listen"
        server_extra
        echo "timeout = 1000"
        echo "log_level = debug"
        echo
        echo "[backend files]"
        echo "type = file"
        echo "root = $ROOT"
        echo
        printf '%s\n' "$@"
    } > "$file"
}

# names_up ROUTE-LINES...: the gateway with names_config on a free port
names_up() {
    HOST=127.0.0.1
    for _ in 1 2 3; do
        PORT=$(free_port)
        names_config "$T/gw.ini" "127.0.0.1:$PORT" "$@"
        start_gateway "$GW" --config "$T/gw.ini" && return 0
        case $REASON in *"did not bind"*|*"exited at start-up"*) return 1 ;; esac
    done
    return 1
}

# names_get NAME WANT WHAT: tftp-hpa fetches NAME and gets WANT's bytes
names_get() {
    rm -f "$T/got"
    hpa octet get "$1" "$T/got" || return 1
    same_file "$T/got" "$2" "$3"
}

# a Windows boot tree stored in mixed case, and a place outside the root
names_tree() {
    mkdir -p "$ROOT/Boot/x64" "$T/outside"
    cp "$FIX/f4404" "$ROOT/Boot/BCD"
    cp "$FIX/f513" "$ROOT/Boot/x64/WdsNbp.com"
    cp "$FIX/f1" "$ROOT/Dup.txt"
    cp "$FIX/f511" "$ROOT/DUP.TXT"
    echo "secret outside the root" > "$T/outside/secret"
    chmod -R a+rX "$ROOT" "$T/outside"
    # a symlink whose name only case-matches the request, leading out
    ln -s "$T/outside/secret" "$ROOT/Boot/Evil"
    # a directory symlink leading out, reached through a case-variant
    ln -s "$T/outside" "$ROOT/Out"
}

t_names_insensitive() {
    names_tree
    names_up "[route win]" "match =" "backend = files" "case = insensitive" || return 1
    names_get '\Boot\BCD' "$FIX/f4404" 'get \Boot\BCD (exact case, backslashes)' || return 1
    names_get 'BOOT\bcd' "$FIX/f4404" 'get BOOT\bcd' || return 1
    names_get 'boot/BCD' "$FIX/f4404" 'get boot/BCD' || return 1
    names_get '\boot\x64\wdsnbp.com' "$FIX/f513" 'get \boot\x64\wdsnbp.com' || return 1
    log_has 'file="boot/x64/wdsnbp.com"' 'backend=files' 'result=ok' || return 1
    # an exact match wins; otherwise the byte-wise smallest variant
    names_get 'Dup.txt' "$FIX/f1" 'get Dup.txt (exact)' || return 1
    names_get 'DUP.TXT' "$FIX/f511" 'get DUP.TXT (exact)' || return 1
    names_get 'dup.txt' "$FIX/f511" 'get dup.txt (variants Dup.txt, DUP.TXT: smallest is DUP.TXT)' ||
        return 1
    hpa_expect 1 octet get 'boot/nothing.bin' "$T/x" || return 1
    hpa_expect 1 octet get 'BOOT/X64/missing/deeper' "$T/x" || return 1
    # no case trick leads out of the root
    hpa_expect 2 octet get 'boot/evil' "$T/x" || return 1
    hpa_expect 2 octet get 'BOOT\EVIL' "$T/x" || return 1
    hpa_expect 2 octet get 'out/secret' "$T/x" || return 1
    hpa_expect 2 octet get 'OUT\SECRET' "$T/x" || return 1
    hpa_expect 2 octet get 'boot/../../outside/secret' "$T/x" || return 1
    hpa_expect 2 octet get 'BOOT\..\..\OUTSIDE\SECRET' "$T/x" || return 1
    hpa_expect 2 octet get '..\OUTSIDE\secret' "$T/x" || return 1
    [ -e "$T/x" ] && [ -s "$T/x" ] && { fail "a refused get left bytes in $T/x"; return 1; }
    return 0
}

t_names_lower_exact() {
    names_tree
    mkdir -p "$ROOT/pxe"
    cp "$FIX/f50k" "$ROOT/pxe/menu.cfg"
    cp "$FIX/f1" "$ROOT/pxe/Mixed.cfg"
    names_up "[route low]" "match = pxe" "backend = files" "case = lower" "" \
        "[route all]" "match =" "backend = files" || return 1
    # the route prefix "pxe" matches the lower-cased PXE/...
    names_get 'PXE/MENU.CFG' "$FIX/f50k" 'get PXE/MENU.CFG (lower)' || return 1
    log_has 'route=low' 'key="pxe/menu.cfg"' 'result=ok' || return 1
    names_get '\Pxe\Menu.cfg' "$FIX/f50k" 'get \Pxe\Menu.cfg (lower)' || return 1
    # stored in mixed case: lower never finds it
    hpa_expect 1 octet get 'pxe/Mixed.cfg' "$T/x" || return 1
    hpa_expect 1 octet get 'PXE/MIXED.CFG' "$T/x" || return 1
    # exact (the default) is unchanged
    names_get 'Boot/BCD' "$FIX/f4404" 'get Boot/BCD (exact)' || return 1
    hpa_expect 1 octet get 'boot/bcd' "$T/x" || return 1
    hpa_expect 1 octet get 'BOOT/BCD' "$T/x" || return 1
    hpa_expect 2 octet get 'Boot/Evil' "$T/x" || return 1
}

# case = insensitive where it cannot work is a start-up error naming the
# route, the key and the backend type, also from --check-config
t_names_refused() {
    local out rc port
    port=$(free_port)
    names_config "$T/http.ini" "127.0.0.1:$port" \
        "[backend web]" "type = http" "url = http://127.0.0.1:9/base/" "" \
        "[route win]" "match =" "backend = web" "case = insensitive"
    out=$(timeout 10 "$GW" --check-config "$T/http.ini" 2>&1); rc=$?
    [ $rc -eq 1 ] || { fail "--check-config http: exit $rc, want 1: $out"; return 1; }
    case $out in *"[route win] case: insensitive needs a file backend, but [backend web] is type http"*) ;;
        *) fail "--check-config http: message: $out"; return 1 ;; esac
    out=$(timeout 10 "$GW" --config "$T/http.ini" --allow-root 2>&1 < /dev/null); rc=$?
    [ $rc -ne 0 ] || { fail "start-up with insensitive on http: exit 0"; return 1; }
    case $out in *"[route win] case: insensitive needs a file backend, but [backend web] is type http"*) ;;
        *) fail "start-up http: message: $out"; return 1 ;; esac
    udp_bound "$port" && { fail "port $port bound by a refused configuration"; return 1; }
    # a layer list: every backend in it must support it (the cache does not)
    names_config "$T/cache.ini" "127.0.0.1:$port" \
        "[backend up]" "type = http" "url = http://127.0.0.1:9/base/" "" \
        "[backend edge]" "type = cache" "upstream = up" "dir = $T/cache" "" \
        "[route win]" "match =" "backend = files, edge" "case = insensitive"
    out=$(timeout 10 "$GW" --check-config "$T/cache.ini" 2>&1); rc=$?
    [ $rc -eq 1 ] || { fail "--check-config cache: exit $rc, want 1: $out"; return 1; }
    case $out in *"[route win] case:"*"[backend edge] is type cache"*) ;;
        *) fail "--check-config cache: message: $out"; return 1 ;; esac
    # unknown and repeated names in a layer list
    names_config "$T/unknown.ini" "127.0.0.1:$port" "[route r]" "backend = files, nosuch"
    out=$(timeout 10 "$GW" --check-config "$T/unknown.ini" 2>&1); rc=$?
    [ $rc -eq 1 ] || { fail "--check-config unknown layer: exit $rc: $out"; return 1; }
    case $out in *"[route r] backend: no [backend nosuch] section"*) ;;
        *) fail "unknown layer: message: $out"; return 1 ;; esac
    names_config "$T/twice.ini" "127.0.0.1:$port" "[route r]" "backend = files, files"
    out=$(timeout 10 "$GW" --check-config "$T/twice.ini" 2>&1); rc=$?
    [ $rc -eq 1 ] || { fail "--check-config repeated layer: exit $rc: $out"; return 1; }
    case $out in *"listed twice"*) ;; *) fail "repeated layer: message: $out"; return 1 ;; esac
    # a good layered route is shown in order, with the case
    names_config "$T/good.ini" "127.0.0.1:$port" "[backend web]" "type = http" \
        "url = http://127.0.0.1:9/base/" "" "[route r]" "backend = files, web" "case = lower"
    out=$(timeout 10 "$GW" --check-config "$T/good.ini" 2>&1); rc=$?
    [ $rc -eq 0 ] || { fail "--check-config layered: exit $rc: $out"; return 1; }
    case $out in *"backend files (file), then web (http)"*"case lower"*) ;;
        *) fail "--check-config layered: output: $out"; return 1 ;; esac
}

# local overrides in front of nginx: the first backend that has the object
# serves; only "not found" falls through; writes go to the first
t_names_layered() {
    nginx_up 'location = /base/broken.bin { return 500; }' || return 1
    mkdir -p "$ROOT/local"
    chmod 777 "$ROOT/local"
    cp "$FIX/f513" "$ROOT/local/both.bin"
    cp "$FIX/f4404" "$NGX_ROOT/both.bin"
    cp "$FIX/f50k" "$NGX_ROOT/edge.bin"
    cp "$FIX/f1" "$ROOT/local/broken.bin.not"
    HOST=127.0.0.1
    PORT=$(free_port)
    {
        echo "[server]"
        echo "listen = 127.0.0.1:$PORT"
        server_extra
        echo "log_level = debug"
        echo "[backend local]"
        echo "type = file"
        echo "root = $ROOT/local"
        echo "[backend edge]"
        echo "type = http"
        echo "url = $(ngx_url)"
        echo "[route r]"
        echo "match ="
        echo "backend = local, edge"
        echo "write = create"
    } > "$T/gw.ini"
    start_gateway "$GW" --config "$T/gw.ini" || return 1
    names_get both.bin "$FIX/f513" "get both.bin (local override)" || return 1
    log_has 'file="both.bin"' 'backend=local' 'result=ok' || return 1
    names_get edge.bin "$FIX/f50k" "get edge.bin (not local: from nginx)" || return 1
    log_has 'file="edge.bin"' 'backend=edge' 'result=ok' || return 1
    log_has 'not in backend local, asking edge' || return 1
    names_ngx_is 1 GET edge.bin 200 || return 1
    # nginx logs in order: edge.bin is there, so both.bin would be too
    names_ngx_is 0 GET both.bin || return 1
    # nginx's 500 is the answer: not hidden as "not found"
    hpa octet get broken.bin "$T/x" && { fail "broken.bin: succeeded"; return 1; }
    [ -n "$HPA_CODE" ] && [ "$HPA_CODE" != 1 ] ||
        { fail "broken.bin: error code '${HPA_CODE}', want an upstream failure (not 1)"; return 1; }
    names_ngx_is 1 GET broken.bin 500 || return 1
    failure_logged 'file="broken.bin"' || return 1
    log_has 'file="broken.bin"' 'backend=edge' || return 1
    # nowhere: the last layer's "not found"
    hpa_expect 1 octet get nowhere.bin "$T/x" || return 1
    names_ngx_is 1 GET nowhere.bin 404 || return 1
    # writes land in the first backend only
    hpa octet put "$FIX/f4404" up.bin || return 1
    same_file "$ROOT/local/up.bin" "$FIX/f4404" "put up.bin into the first backend" || return 1
    [ -e "$NGX_ROOT/up.bin" ] && { fail "put up.bin reached nginx's tree"; return 1; }
    [ "$(grep -c '^PUT' "$NGX_DIR/logs/access.log")" = 0 ] ||
        { fail "a PUT reached nginx: $(grep '^PUT' "$NGX_DIR/logs/access.log" | head -n 2)"; return 1; }
    log_has 'op=WRQ' 'file="up.bin"' 'backend=local' || return 1
    return 0
}

# the cache as the second layer: a local override never reaches it
t_names_layered_cache() {
    nginx_up || return 1
    mkdir -p "$ROOT/local"
    cp "$FIX/f513" "$ROOT/local/both.bin"
    cp "$FIX/f4404" "$NGX_ROOT/both.bin"
    cp "$FIX/f50k" "$NGX_ROOT/edge.bin"
    HOST=127.0.0.1
    PORT=$(free_port)
    {
        echo "[server]"
        echo "listen = 127.0.0.1:$PORT"
        server_extra
        echo "[backend local]"
        echo "type = file"
        echo "root = $ROOT/local"
        echo "[backend up]"
        echo "type = http"
        echo "url = $(ngx_url)"
        echo "[backend edge]"
        echo "type = cache"
        echo "upstream = up"
        echo "dir = $T/cache"
        echo "[route r]"
        echo "match ="
        echo "backend = local, edge"
    } > "$T/gw.ini"
    start_gateway "$GW" --config "$T/gw.ini" || return 1
    names_get both.bin "$FIX/f513" "get both.bin (local override before the cache)" || return 1
    log_has 'file="both.bin"' 'backend=local' 'result=ok' || return 1
    names_get edge.bin "$FIX/f50k" "get edge.bin (through the cache)" || return 1
    log_has 'file="edge.bin"' 'backend=edge' 'result=ok' || return 1
    sleep 0.3    # the fill commits after nginx logged it
    names_get edge.bin "$FIX/f50k" "get edge.bin again (cached)" || return 1
    names_ngx_is 1 GET edge.bin || return 1
    names_ngx_is 0 GET both.bin || return 1
    hpa_expect 1 octet get nowhere.bin "$T/x" || return 1
    names_ngx_is 1 GET nowhere.bin 404
}

# debug: the options the client asked for and those granted, one line
t_names_options_line() {
    names_tree
    names_up "[route all]" "match =" "backend = files" || return 1
    timeout 30 "$PY" "$HERE/tftpraw.py" get "$HOST" "$PORT" Boot/BCD "$T/got" \
        -o blksize=1468 -o tsize=0 -o windowsize=4 > "$T/raw.out" 2>&1 ||
        { fail "tftpraw get with options: exit $?"; return 1; }
    same_file "$T/got" "$FIX/f4404" "get Boot/BCD with options" || return 1
    log_has 'options asked: blksize=1468 tsize=0 windowsize=4; granted: blksize=1468 tsize=4404 windowsize=4' ||
        return 1
    # values are made safe for the log
    timeout 30 "$PY" "$HERE/tftpraw.py" get "$HOST" "$PORT" Boot/BCD "$T/got2" \
        -o 'blksize=51"2' -o 'x-odd=a\b' > /dev/null 2>&1
    log_has 'options asked: blksize=51\"2 x-odd=a\\b; granted: none' || return 1
}

hx_names() {
    [ -n "$PEER" ] && { REASON="gateway-specific"; return 77; }
    hx "$@"
}

run_test pxe_names_insensitive hx_names t_names_insensitive
run_test pxe_names_lower_exact hx_names t_names_lower_exact
run_test pxe_names_refused hx_names t_names_refused
run_test pxe_names_layered hx_names t_names_layered
run_test pxe_names_layered_cache hx_names t_names_layered_cache
run_test pxe_names_options_line hx_names t_names_options_line
