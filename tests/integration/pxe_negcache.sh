# tests/integration/pxe_negcache.sh - the cache backend's negative entries
# (negative_ttl) and how it treats an origin's Cache-Control, Expires and
# Vary (RFC 9111), against nginx (sourced by run.sh after cache.sh, whose
# helpers it uses: cx, cache_gw_up, cache_get, ngx_count, cache_stop).
#
# What reached the origin is counted in nginx's access log; what the cache
# kept is looked up in its directory (dir/<sha256 of the key>.data).

# neg_nginx_up: nginx with locations whose answers carry caching headers
neg_nginx_up() {
    nginx_up "
        location = /base/boom { return 500; }
        location = /base/forbidden { return 403; }
        location /base/nostore/ { add_header Cache-Control no-store; }
        location /base/private/ { add_header Cache-Control private; }
        location /base/maxage3/ { add_header Cache-Control max-age=3; }
        location /base/nocache/ { add_header Cache-Control no-cache; }
        location /base/expfuture/ { add_header Expires \"Thu, 01 Jan 2099 00:00:00 GMT\"; }
        location /base/expbad/ { add_header Expires 0; }
        location /base/varyclient/ { add_header Vary X-TFTP-Client; }
        location /base/varyenc/ { add_header Vary Accept-Encoding; }
        location /base/varystar/ { add_header Vary *; }"
}

# neg_py MODE ARGS...: tftpraw clients bound to chosen loopback addresses
#   fleet N WORKERS DEFAULT_FILE NAME...: N clients (WORKERS at a time), each
#     from its own address, ask for every NAME (each must be ERROR 1), then
#     for `default` (must be DEFAULT_FILE's bytes)
#   get BIND NAME OUT: one read from address BIND; exit 0, or 100+code
neg_py() {
    timeout 100 "$PY" - "$HERE" "$HOST" "$PORT" "$@" <<'EOF'
import hashlib, sys, concurrent.futures as cf
sys.path.insert(0, sys.argv[1])
import tftpraw as T
host, port, mode, args = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]

def one(bind, name):
    with T.Client(host, port, timeout=1.0, retries=6, bind_host=bind) as c:
        return c.get(name, "octet", [("blksize", "1468")]).data

if mode == "get":
    try:
        data = one(args[0], args[1])
    except T.TftpError as e:
        print("error %d %s" % (e.code, e.msg))
        sys.exit(100 + e.code)
    open(args[2], "wb").write(data)
    sys.exit(0)

n, workers, want, names = int(args[0]), int(args[1]), args[2], args[3:]
want = hashlib.sha256(open(want, "rb").read()).hexdigest()

def client(i):
    bind = "127.0.%d.%d" % (1 + i // 200, 2 + i % 200)
    bad = []
    for nm in names:
        try:
            one(bind, nm)
            bad.append("%s: served, want ERROR 1" % nm)
        except T.TftpError as e:
            if e.code != 1 or e.msg != "File not found":
                bad.append("%s: ERROR %d %s" % (nm, e.code, e.msg))
        except Exception as e:
            bad.append("%s: %r" % (nm, e))
    try:
        got = hashlib.sha256(one(bind, "default")).hexdigest()
        if got != want:
            bad.append("default: wrong bytes")
    except Exception as e:
        bad.append("default: %r" % e)
    return bad

with cf.ThreadPoolExecutor(workers) as ex:
    res = list(ex.map(client, range(n)))
bad = [b for r in res for b in r]
print("%d clients, %d bad: %s" % (n, len(bad), "; ".join(bad[:4])))
sys.exit(1 if bad else 0)
EOF
}

# neg_want CODE BIND NAME WHAT: a read from BIND ends in ERROR CODE
neg_want() {
    local out
    out=$(neg_py get "$2" "$3" "$T/neg.out")
    [ $? = $((100 + $1)) ] && return 0
    fail "$4: $3 from $2: $out, want ERROR $1"
}

# neg_get BIND NAME WANT WHAT: a read from BIND gets WANT's bytes
neg_get() {
    local out
    rm -f "$T/neg.out"
    out=$(neg_py get "$1" "$2" "$T/neg.out") || { fail "$4: $2 from $1: $out"; return 1; }
    same_file "$T/neg.out" "$3" "$4"
}

# neg_count KEY [STATUS]: GETs of /base/KEY in nginx's access log (a group
# of its own, as other groups define an ngx_count of their own)
neg_count() {
    grep -cF "GET \"/base/$1\" ${2:-}" "$NGX_DIR/logs/access.log" 2>/dev/null
}

# neg_gets KEY N [STATUS] WHAT: exactly N GETs (with STATUS) of KEY reached nginx
neg_gets() {
    local n
    n=$(neg_count "$1" "${4:+$3}")
    [ "$n" = "$2" ] && return 0
    fail "${4:-$3}: $n upstream GETs of $1${4:+ with $3}, want $2 (nginx: $(ngx_lines "$1"))"
}

# neg_stored KEY yes|no WHAT: whether the cache holds a copy of KEY
neg_stored() {
    local h
    h=$(printf '%s' "$1" | sha256sum | cut -c1-64)
    sleep 0.3    # a commit runs on the thread pool after the last byte
    if [ -f "$CACHE_DIR/$h.data" ]; then
        [ "$2" = yes ] && return 0
        fail "$3: $1 was stored ($CACHE_DIR/$h.data)"
    else
        [ "$2" = no ] && return 0
        fail "$3: $1 was not stored: $(dir_listing)"
    fi
}

PXE_MISSES="pxelinux.cfg/01-52-54-00-12-34-56 pxelinux.cfg/C0A80A0B pxelinux.cfg/C0A80A0
pxelinux.cfg/C0A80A pxelinux.cfg/C0A80 pxelinux.cfg/C0A8 pxelinux.cfg/C0A pxelinux.cfg/C0
pxelinux.cfg/C pxelinux.cfg/44454c4c-5300-1048-8057-b4c04f564831"

# A fleet booting at once: 50 PXELINUX-like clients each probe ten names
# that do not exist, then `default`. Within negative_ttl every name costs
# one upstream request, whatever the number of clients; after it, one more.
t_pxe_negcache_fleet() {
    neg_nginx_up || return 1
    cp "$FIX/f4404" "$NGX_ROOT/default"
    cache_gw_up "$(ngx_url)" negative_ttl=8 log_level=info || return 1
    local out nm t0=$SECONDS
    # shellcheck disable=SC2086
    out=$(neg_py fleet 50 25 "$FIX/f4404" $PXE_MISSES) ||
        { fail "fleet: $out"; return 1; }
    echo "fleet: $out in $((SECONDS - t0)) s" >> "$T/notes"
    [ $((SECONDS - t0)) -lt 8 ] || { fail "the fleet took $((SECONDS - t0)) s, more than negative_ttl"; return 1; }
    for nm in $PXE_MISSES; do
        neg_gets "$nm" 1 404 "50 clients within negative_ttl" || return 1
    done
    neg_gets default 1 200 "default, cached" || return 1
    sleep 8.5
    # shellcheck disable=SC2086
    out=$(neg_py fleet 1 1 "$FIX/f4404" $PXE_MISSES) || { fail "after negative_ttl: $out"; return 1; }
    for nm in $PXE_MISSES; do
        neg_gets "$nm" 2 404 "one more client after negative_ttl" || return 1
    done
    cache_stop || return 1
    echo "$CACHE_COUNTERS" >> "$T/notes"
    # 500 misses answered: 10 went upstream, the rest joined those or hit a negative entry
    counter_cmp negative_hits ge 100 "negative entries answered most probes"
}

# Only "not found" is remembered: a 500 or a 403 goes upstream every time;
# a name that appears is served once negative_ttl has passed.
t_pxe_negcache_errors() {
    neg_nginx_up || return 1
    cache_gw_up "$(ngx_url)" negative_ttl=2 || return 1
    neg_want 0 127.0.0.1 boom "HTTP 500" || return 1
    neg_want 0 127.0.0.1 boom "HTTP 500 again" || return 1
    neg_gets boom 2 500 "a 500 is not remembered as a miss" || return 1
    neg_want 2 127.0.0.1 forbidden "HTTP 403" || return 1
    neg_want 2 127.0.0.1 forbidden "HTTP 403 again" || return 1
    neg_gets forbidden 2 403 "a 403 is not remembered as a miss" || return 1
    neg_want 1 127.0.0.1 late.bin "before it exists" || return 1
    cp "$FIX/f513" "$NGX_ROOT/late.bin"
    neg_want 1 127.0.0.1 late.bin "right after it appeared, within negative_ttl" || return 1
    neg_gets late.bin 1 "the second read was answered from the negative entry" || return 1
    sleep 2.3
    neg_get 127.0.0.1 late.bin "$FIX/f513" "after negative_ttl" || return 1
    neg_gets late.bin 2 "after negative_ttl" || return 1
    neg_gets late.bin 1 200 "after negative_ttl"
}

# A write through the cache drops the key's negative entry at once; with
# negative_ttl = 0 nothing is remembered.
t_pxe_negcache_wrq() {
    neg_nginx_up || return 1
    cache_gw_up "$(ngx_url)" negative_ttl=60 || return 1
    neg_want 1 127.0.0.1 up/new.bin "before the upload" || return 1
    neg_want 1 127.0.0.1 up/new.bin "again (negative entry)" || return 1
    neg_gets up/new.bin 1 "one upstream GET for two misses" || return 1
    raw_ok put "$FIX/f4404" up/new.bin -o blksize=1468 || return 1
    neg_get 127.0.0.1 up/new.bin "$FIX/f4404" "right after the upload, negative_ttl 60" || return 1
    gw_stop || return 1
    cache_gw_up "$(ngx_url)" negative_ttl=0 || return 1
    neg_want 1 127.0.0.1 none.bin "negative_ttl 0" || return 1
    neg_want 1 127.0.0.1 none.bin "negative_ttl 0, again" || return 1
    neg_gets none.bin 2 "negative_ttl 0 remembers nothing"
}

# no-store and private: relayed, never stored; max-age=3 fresh for 3 s,
# then revalidated; no-cache and an invalid Expires stored but revalidated
# on every read; an Expires in the future outlives ttl.
t_pxe_negcache_cache_control() {
    neg_nginx_up || return 1
    local d
    for d in nostore private maxage3 nocache expfuture expbad; do
        mkdir -p "$NGX_ROOT/$d"
        cp "$FIX/f4404" "$NGX_ROOT/$d/a"
    done
    cache_gw_up "$(ngx_url)" ttl=1 log_level=debug || return 1
    for d in nostore private; do
        neg_get 127.0.0.1 $d/a "$FIX/f4404" "$d, first" || return 1
        neg_get 127.0.0.1 $d/a "$FIX/f4404" "$d, second" || return 1
        neg_gets $d/a 2 200 "$d is never served from the cache" || return 1
        neg_stored $d/a no "$d" || return 1
    done
    log_has "not stored: Cache-Control no-store" || return 1
    log_has "not stored: Cache-Control private" || return 1
    # ttl 1, max-age=3: fresh past ttl, stale after 3 s. Date has whole
    # seconds, so the age on arrival may count up to 1 s (RFC 9111 section
    # 4.2.3): fresh for 2 to 3 s.
    neg_get 127.0.0.1 maxage3/a "$FIX/f4404" "max-age=3, first" || return 1
    neg_stored maxage3/a yes "max-age=3" || return 1
    sleep 1.2
    neg_get 127.0.0.1 maxage3/a "$FIX/f4404" "max-age=3 after 1.5 s" || return 1
    neg_gets maxage3/a 1 "max-age=3 is fresh for 2 s or more though ttl is 1" || return 1
    sleep 2
    neg_get 127.0.0.1 maxage3/a "$FIX/f4404" "max-age=3 after 3.5 s" || return 1
    neg_gets maxage3/a 1 304 "max-age=3 revalidated after 3 s" || return 1
    # no-cache and Expires: 0: stored, revalidated on every read
    for d in nocache expbad; do
        neg_get 127.0.0.1 $d/a "$FIX/f4404" "$d, first" || return 1
        neg_stored $d/a yes "$d" || return 1
        neg_get 127.0.0.1 $d/a "$FIX/f4404" "$d, second" || return 1
        neg_get 127.0.0.1 $d/a "$FIX/f4404" "$d, third" || return 1
        neg_gets $d/a 1 200 "$d: one full fetch" || return 1
        neg_gets $d/a 2 304 "$d: every later read revalidated" || return 1
    done
    # Expires in 2099: fresh long after ttl
    neg_get 127.0.0.1 expfuture/a "$FIX/f4404" "Expires 2099, first" || return 1
    sleep 1.3
    neg_get 127.0.0.1 expfuture/a "$FIX/f4404" "Expires 2099 after ttl" || return 1
    neg_gets expfuture/a 1 "Expires 2099 outlives ttl 1" || return 1
}

# ttl_override = yes: ttl, not max-age or no-cache, decides freshness;
# no-store is still never stored.
t_pxe_negcache_ttl_override() {
    neg_nginx_up || return 1
    local d
    for d in nostore maxage3 nocache; do
        mkdir -p "$NGX_ROOT/$d"
        cp "$FIX/f513" "$NGX_ROOT/$d/b"
    done
    cache_gw_up "$(ngx_url)" ttl=300 ttl_override=yes || return 1
    for d in maxage3 nocache nostore; do
        neg_get 127.0.0.1 $d/b "$FIX/f513" "$d, first" || return 1
    done
    sleep 3.2
    for d in maxage3 nocache nostore; do
        neg_get 127.0.0.1 $d/b "$FIX/f513" "$d, after 3.2 s" || return 1
    done
    neg_gets maxage3/b 1 "ttl_override: max-age=3 ignored" || return 1
    neg_gets nocache/b 1 "ttl_override: no-cache ignored" || return 1
    neg_gets nostore/b 2 "ttl_override: no-store still not stored" || return 1
    neg_stored nostore/b no "ttl_override with no-store"
}

# Vary: X-TFTP-Client is per client: every read goes upstream with the
# reader's own address (the fill passes it on); Vary: * likewise; Vary:
# Accept-Encoding is the same for every client and is stored.
t_pxe_negcache_vary() {
    neg_nginx_up || return 1
    local d
    for d in varyclient varyenc varystar; do
        mkdir -p "$NGX_ROOT/$d"
        cp "$FIX/f4404" "$NGX_ROOT/$d/c"
    done
    cache_gw_up "$(ngx_url)" || return 1
    neg_get 127.0.0.2 varyclient/c "$FIX/f4404" "Vary X-TFTP-Client from .2" || return 1
    neg_get 127.0.0.3 varyclient/c "$FIX/f4404" "Vary X-TFTP-Client from .3" || return 1
    neg_get 127.0.0.2 varyclient/c "$FIX/f4404" "Vary X-TFTP-Client from .2 again" || return 1
    neg_gets varyclient/c 3 200 "Vary: X-TFTP-Client is never served from the cache" || return 1
    ngx_log_has '"/base/varyclient/c"' 'xc="127.0.0.2"' 'xf="varyclient/c"' || return 1
    ngx_log_has '"/base/varyclient/c"' 'xc="127.0.0.3"' || return 1
    neg_stored varyclient/c no "Vary: X-TFTP-Client" || return 1
    neg_get 127.0.0.2 varystar/c "$FIX/f4404" "Vary * first" || return 1
    neg_get 127.0.0.2 varystar/c "$FIX/f4404" "Vary * second" || return 1
    neg_gets varystar/c 2 200 "Vary: * is never stored" || return 1
    neg_get 127.0.0.2 varyenc/c "$FIX/f4404" "Vary Accept-Encoding from .2" || return 1
    neg_get 127.0.0.3 varyenc/c "$FIX/f4404" "Vary Accept-Encoding from .3" || return 1
    neg_gets varyenc/c 1 "Vary: Accept-Encoding is the same for every client" || return 1
    neg_stored varyenc/c yes "Vary: Accept-Encoding"
}

# S3: NoSuchKey is a miss like a 404; one request for three reads
t_pxe_negcache_s3() {
    s3_up || return $?
    cache_gw_up s3 negative_ttl=30 || return 1
    local i n
    for i in 1 2 3; do
        raw_expect 1 get cache/pxelinux.cfg/C0A8 "$T/x" || return 1
    done
    sleep 0.2
    n=$(s3_req "^GET /$S3_BUCKET/cache/pxelinux.cfg/C0A8[ ?]" | grep -c .)
    [ "$n" = 1 ] || { fail "$n upstream GETs of a missing key for 3 reads, want 1: $(s3_log_tail)"; return 1; }
    cache_stop || return 1
    counter_cmp negative_hits eq 2 "two reads answered from the negative entry"
}

run_test pxe_negcache_fleet          cx t_pxe_negcache_fleet
run_test pxe_negcache_errors         cx t_pxe_negcache_errors
run_test pxe_negcache_wrq            cx t_pxe_negcache_wrq
run_test pxe_negcache_cache_control  cx t_pxe_negcache_cache_control
run_test pxe_negcache_ttl_override   cx t_pxe_negcache_ttl_override
run_test pxe_negcache_vary           cx t_pxe_negcache_vary
run_test pxe_negcache_s3             cx t_pxe_negcache_s3
