# tests/integration/pxe_probe.sh - held UEFI probes (probe_hold): a UEFI
# client's tsize probe and its download cost one upstream GET (sourced by
# run.sh after http.sh and s3.sh; bash).
#
# The client is tests/integration/uefiprobe.py, EDK2's pattern: RRQ with
# blksize 1468, windowsize 4, tsize 0 -> OACK -> ERROR 8 -> a new socket's
# RRQ -> the whole download. Upstream requests are counted where they
# arrive: nginx's access log (http.sh's nginx_up), s3rver's request log
# (s3.sh's S3RVER_REQLOG). Both log a request when its response ends, a
# GET dropped mid-body included.

# pxp_uefi ARGS...: uefiprobe.py against the running gateway; UEFI_OUT, UEFI_RC
pxp_uefi() {
    UEFI_OUT=$(timeout 60 "$PY" "$HERE/uefiprobe.py" "$HOST" "$PORT" "$@" 2>&1)
    UEFI_RC=$?
    [ "$UEFI_RC" = 0 ] && return 0
    fail "uefiprobe $*: exit $UEFI_RC: $(printf '%s' "$UEFI_OUT" | tail -n 2 | tr '\n' ' ')"
}

# pxp_gets KEY: GETs of /base/KEY in nginx's access log
pxp_gets() { grep -cF "GET \"/base/$1\" " "$NGX_DIR/logs/access.log" 2>/dev/null; }

# pxp_gets_are KEY N: exactly N GETs of KEY reached nginx (waits up to 3 s
# for the log line of a response that is still ending)
pxp_gets_are() {
    local i n
    for i in $(seq 1 30); do
        n=$(pxp_gets "$1")
        [ "$n" = "$2" ] && { sleep 0.2; n=$(pxp_gets "$1"); [ "$n" = "$2" ] && return 0; }
        [ "$n" -gt "$2" ] 2>/dev/null && break
        sleep 0.1
    done
    fail "nginx saw $n GET(s) of /base/$1, want $2: $(grep -F "/base/$1" "$NGX_DIR/logs/access.log" | cut -c1-60 | tr '\n' '|')"
}

# pxp_one_worker: false (with REASON) where a download may miss its held
# probe: several workers in single-port mode, whose steering follows the
# client's port (docs/design.md, "Workers"). Per-port mode hands the
# download to the worker that holds the probe.
pxp_one_worker() {
    [ "${TFTPGW_WORKERS:-1}" -gt 1 ] && [[ " ${TG_SERVER_EXTRA:-} " == *" single_port=yes "* ]] &&
        { REASON="single-port mode with workers: held probes are per worker"; return 1; }
    return 0
}

# pxp_conns: established TCP connections to nginx's port (only the gateway
# connects to it in these tests)
pxp_conns() { ss -tnH state established "( dport = :$NGX_PORT )" 2>/dev/null | grep -c .; }

# pxp_held_logged KEY: the download's transfer line says it continued a probe
pxp_held_logged() {
    log_has "result=ok" "key=\"$1\"" " held=1" || return 1
    log_has "key=\"$1\"" "result=declined" || return 1
}

t_pxe_probe_http() {
    pxp_one_worker || return 77
    nginx_up || return 1
    cp "$FIX/f2M" "$NGX_ROOT/boot.efi"
    cp "$FIX/f4404" "$NGX_ROOT/small.efi"
    gw_http "$(ngx_url)" log_level=debug || return 1
    # a download larger than the ring: the held GET resumes after adoption
    pxp_uefi boot.efi "$T/boot.efi" || return 1
    same_file "$T/boot.efi" "$FIX/f2M" "UEFI download of boot.efi" || return 1
    pxp_gets_are boot.efi 1 || return 1
    pxp_held_logged boot.efi || return 1
    # a body the held GET already has whole; the download asks without tsize
    pxp_uefi small.efi "$T/small.efi" --no-tsize || return 1
    same_file "$T/small.efi" "$FIX/f4404" "UEFI download of small.efi" || return 1
    pxp_gets_are small.efi 1 || return 1
    pxp_held_logged small.efi || return 1
    log_has "continues a held probe GET" || return 1
}

t_pxe_probe_s3() {
    pxp_one_worker || return 77
    s3_up || return $?
    s3_put_obj "$FIX/f2M" boot.efi || return 1
    s3_gw_up log_level=debug || return 1
    pxp_uefi boot.efi "$T/boot.efi" || return 1
    same_file "$T/boot.efi" "$FIX/f2M" "UEFI download of s3 boot.efi" || return 1
    local i n
    for i in $(seq 1 30); do
        n=$(grep -cE "^GET /$S3_BUCKET/boot\.efi " "$S3_REQLOG")
        [ "$n" -ge 1 ] && break
        sleep 0.1
    done
    sleep 0.3
    n=$(grep -cE "^GET /$S3_BUCKET/boot\.efi " "$S3_REQLOG")
    [ "$n" = 1 ] || { fail "s3rver saw $n GET(s) of boot.efi, want 1: $(s3_log_tail)"; return 1; }
    pxp_held_logged boot.efi
}

# A probe nobody follows: its GET is paused mid-body (40 MiB: more than
# the ring and the sockets hold), then released after probe_hold.
t_pxe_probe_unfollowed() {
    nginx_up || return 1
    cp "$FIX/f40M" "$NGX_ROOT/big.efi"
    gw_http "$(ngx_url)" log_level=debug probe_hold=1 || return 1
    pxp_uefi big.efi "$T/none" --probe-only || return 1
    [[ $UEFI_OUT == *"tsize $((40 << 20))"* ]] || { fail "probe: $UEFI_OUT"; return 1; }
    log_has "probe GET of \"big.efi\" for 127.0.0.1 held for 1 s" || return 1
    [ "$(pxp_conns)" -ge 1 ] || { fail "no upstream connection while the probe is held"; return 1; }
    local i
    for i in $(seq 1 40); do
        [ "$(pxp_conns)" = 0 ] && break
        sleep 0.1
    done
    [ "$(pxp_conns)" = 0 ] ||
        { fail "upstream connection still open 4 s after a 1 s probe_hold: $(ss -tn "( dport = :$NGX_PORT )" | tr '\n' '|')"; return 1; }
    log_has "held probe GET of \"big.efi\" for 127.0.0.1 released: not adopted within 1 s" ||
        return 1
    pxp_gets_are big.efi 1 || return 1
    # too late to adopt: a new request is a new GET
    pxp_uefi big.efi "$T/none" --probe-only || return 1
    pxp_gets_are big.efi 2
}

# A held probe belongs to its client address: another address gets its own
# GET, and the first client still adopts its own.
t_pxe_probe_other_client() {
    pxp_one_worker || return 77
    nginx_up || return 1
    cp "$FIX/f2M" "$NGX_ROOT/boot.efi"
    gw_http "$(ngx_url)" log_level=debug probe_hold=10 || return 1
    pxp_uefi boot.efi "$T/none" --probe-only || return 1
    log_has "probe GET of \"boot.efi\" for 127.0.0.1 held" || return 1
    pxp_uefi boot.efi "$T/other.efi" --no-probe --bind 127.0.0.2 || return 1
    same_file "$T/other.efi" "$FIX/f2M" "download from 127.0.0.2" || return 1
    pxp_gets_are boot.efi 2 || return 1
    log_has "client=127.0.0.2:" "result=ok" || return 1
    if log_lines "client=127.0.0.2:" "held=1" > /dev/null; then
        fail "127.0.0.2's download adopted 127.0.0.1's held probe"; return 1
    fi
    pxp_uefi boot.efi "$T/mine.efi" --no-probe || return 1
    same_file "$T/mine.efi" "$FIX/f2M" "download from 127.0.0.1" || return 1
    log_has "client=127.0.0.1:" "result=ok" " held=1" || return 1
    pxp_gets_are boot.efi 2
}

t_pxe_probe_off() {
    nginx_up || return 1
    cp "$FIX/f2M" "$NGX_ROOT/boot.efi"
    gw_http "$(ngx_url)" log_level=debug probe_hold=0 || return 1
    pxp_uefi boot.efi "$T/boot.efi" || return 1
    same_file "$T/boot.efi" "$FIX/f2M" "UEFI download, probe_hold 0" || return 1
    pxp_gets_are boot.efi 2 || return 1
    if log_lines "held=1" > /dev/null || log_lines "held for" > /dev/null; then
        fail "probe_hold = 0 still held a probe: $(log_lines held | head -n 2)"; return 1
    fi
}

# A reload and a shutdown release what is held, at once.
t_pxe_probe_reload_stop() {
    nginx_up || return 1
    cp "$FIX/f40M" "$NGX_ROOT/big.efi"
    gw_http "$(ngx_url)" log_level=debug probe_hold=30 || return 1
    pxp_uefi big.efi "$T/none" --probe-only || return 1
    log_has "probe GET of \"big.efi\" for 127.0.0.1 held for 30 s" || return 1
    kill -HUP "$GW_PID"
    log_has "held probe GET of \"big.efi\" for 127.0.0.1 released: reload or shutdown" || return 1
    log_has "configuration reloaded" || return 1
    local i
    for i in $(seq 1 30); do [ "$(pxp_conns)" = 0 ] && break; sleep 0.1; done
    [ "$(pxp_conns)" = 0 ] || { fail "upstream connection open after the reload"; return 1; }
    pxp_uefi big.efi "$T/none" --probe-only || return 1
    [ "$(grep -c "held for 30 s" "$GW_LOG")" = 2 ] || { fail "second probe not held"; return 1; }
    local t0
    t0=$(now_ms)
    gw_stop || return 1
    [ $(($(now_ms) - t0)) -lt 3000 ] ||
        { fail "shutdown took $(($(now_ms) - t0)) ms with a probe held for 30 s"; return 1; }
    [ "$(grep -c "released: reload or shutdown" "$GW_LOG")" = 2 ] ||
        { fail "shutdown did not release the held probe: $(grep released "$GW_LOG" | tr '\n' '|')"; return 1; }
}

run_test pxe_probe_http          hx t_pxe_probe_http
run_test pxe_probe_s3            sx t_pxe_probe_s3
run_test pxe_probe_unfollowed    hx t_pxe_probe_unfollowed
run_test pxe_probe_other_client  hx t_pxe_probe_other_client
run_test pxe_probe_off           hx t_pxe_probe_off
run_test pxe_probe_reload_stop   hx t_pxe_probe_reload_stop
