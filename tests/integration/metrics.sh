# tests/integration/metrics.sh - the Prometheus endpoint (metrics_listen),
# sourced by run.sh after lib.sh (bash). A known set of transfers, then a
# scrape with curl whose values must be exact; the exposition is checked
# against the text format's grammar; a busy TCP port stops start-up.

MPORT=""


# scrape PATH [curl args]: body in $T/scrape.out, headers in $T/scrape.hdr,
# status in SCRAPE_STATUS
scrape() {
    local path=$1
    shift
    SCRAPE_STATUS=$(timeout 15 curl -sS --max-time 10 -o "$T/scrape.out" -D "$T/scrape.hdr" \
        -w '%{http_code}' "$@" "http://127.0.0.1:$MPORT$path" 2> "$T/scrape.err")
}

# metric_value 'name{labels}': its value in the last scrape, empty if absent
metric_value() {
    awk -v k="$1" '$1 == k { print $2 }' "$T/scrape.out"
}

expect_metric() {
    local got
    got=$(metric_value "$1")
    [ "$got" = "$2" ] && return 0
    fail "metric $1 = '$got', want '$2'"
}

# The page follows text format 0.0.4: HELP and TYPE before a family's
# samples, names and label syntax, counters ending _total, histogram
# buckets cumulative with +Inf equal to _count.
metrics_grammar() {
    "$PY" - "$1" << 'EOF'
import re, sys
name = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
label = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
sample = re.compile(r'^(%s)(?:\{(%s(?:,%s)*)?\})? (-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?|\+Inf|NaN)$'
                    % (name, label, label))
types, helps, errs = {}, set(), []
buckets = {}
for n, line in enumerate(open(sys.argv[1], encoding='utf-8').read().split('\n')[:-1], 1):
    if line.startswith('# HELP '):
        helps.add(line.split(' ')[2])
        continue
    if line.startswith('# TYPE '):
        _, _, fam, typ = line.split(' ')
        if fam in types or typ not in ('counter', 'gauge', 'histogram'):
            errs.append('%d: bad or repeated TYPE' % n)
        if typ == 'counter' and not fam.endswith('_total'):
            errs.append('%d: counter %s does not end in _total' % (n, fam))
        types[fam] = typ
        continue
    m = sample.match(line)
    if not m:
        errs.append('%d: not a sample: %r' % (n, line))
        continue
    fam = re.sub(r'_(bucket|sum|count)$', '', m.group(1)) if m.group(1) not in types else m.group(1)
    if fam not in types or fam not in helps:
        errs.append('%d: %s has no TYPE/HELP before it' % (n, m.group(1)))
    if m.group(1).endswith('_bucket'):
        labels = m.group(2)
        key = re.sub(r',?le="[^"]*"', '', labels)
        prev = buckets.get(key, 0)
        if float(m.group(3)) < prev:
            errs.append('%d: bucket not cumulative' % n)
        buckets[key] = float(m.group(3))
        if 'le="+Inf"' in labels:
            buckets[key + '+Inf'] = float(m.group(3))
    if m.group(1).endswith('_count') and types.get(fam) == 'histogram':
        key = m.group(2) or ''
        if buckets.get(key + '+Inf') != float(m.group(3)):
            errs.append('%d: _count differs from the +Inf bucket' % n)
if errs:
    print('; '.join(errs[:5]))
    sys.exit(1)
EOF
}

t_metrics_scrape() {
    [ -n "$PEER" ] && { REASON="gateway-specific (metrics)"; return 77; }
    local i version out
    MPORT=$(free_tcp_port)
    gw_up "metrics_listen=127.0.0.1:$MPORT" || return 1
    log_has "metrics on http://127.0.0.1:$MPORT/metrics" || return 1

    scrape /metrics || { fail "scrape: curl: $(cat "$T/scrape.err")"; return 1; }
    [ "$SCRAPE_STATUS" = 200 ] || { fail "GET /metrics: status $SCRAPE_STATUS"; return 1; }
    grep -qi '^content-type: text/plain; version=0.0.4' "$T/scrape.hdr" ||
        { fail "GET /metrics: $(grep -i '^content-type' "$T/scrape.hdr")"; return 1; }
    version=$("$GW" --version | awk '{print $2}')
    expect_metric "tftpgw_build_info{version=\"$version\"}" 1 || return 1
    expect_metric tftpgw_active_sessions 0 || return 1
    expect_metric tftpgw_bytes_sent_total 0 || return 1

    # Three reads of known sizes, a missing file, a name refused before any
    # session, and one upload.
    hpa octet get f511 "$T/a" || return 1
    same_file "$T/a" "$FIX/f511" "get f511" || return 1
    curl_get f4404 "$T/b" --tftp-blksize 1468 || return 1
    same_file "$T/b" "$FIX/f4404" "get f4404" || return 1
    curl_get f50k "$T/c" || return 1
    same_file "$T/c" "$FIX/f50k" "get f50k" || return 1
    hpa_expect 1 octet get nope "$T/x" || return 1
    curl_expect 2 put "$FIX/f1" f1 || return 1    # route "all" is read-only
    curl_put "$FIX/f513" rw/m513 || return 1
    same_file "$ROOT/rw/m513" "$FIX/f513" "put f513" || return 1

    # The upload's session dallies after its final ACK: wait until it ended.
    for i in $(seq 1 80); do
        scrape /metrics
        [ "$(metric_value tftpgw_active_sessions)" = 0 ] &&
            [ -n "$(metric_value 'tftpgw_transfers_finished_total{op="wrq",route="rw",result="ok"}')" ] &&
            break
        sleep 0.1
    done
    [ "$SCRAPE_STATUS" = 200 ] || { fail "GET /metrics: status $SCRAPE_STATUS"; return 1; }
    cp "$T/scrape.out" "$T/metrics.txt"
    expect_metric tftpgw_active_sessions 0 || return 1
    expect_metric 'tftpgw_transfers_started_total{op="rrq",route="all"}' 4 || return 1
    expect_metric 'tftpgw_transfers_started_total{op="wrq",route="rw"}' 1 || return 1
    expect_metric 'tftpgw_transfers_finished_total{op="rrq",route="all",result="ok"}' 3 || return 1
    expect_metric 'tftpgw_transfers_finished_total{op="rrq",route="all",result="not_found"}' 1 || return 1
    expect_metric 'tftpgw_transfers_finished_total{op="wrq",route="rw",result="ok"}' 1 || return 1
    [ "$(grep -c '^tftpgw_transfers_finished_total{' "$T/scrape.out")" = 3 ] ||
        { fail "other results: $(grep '^tftpgw_transfers_finished_total{' "$T/scrape.out" | tr '\n' ' ')"; return 1; }
    expect_metric 'tftpgw_requests_refused_total{reason="denied"}' 1 || return 1
    [ "$(grep -c '^tftpgw_requests_refused_total{' "$T/scrape.out")" = 1 ] ||
        { fail "other refusals: $(grep '^tftpgw_requests_refused_total{' "$T/scrape.out" | tr '\n' ' ')"; return 1; }
    # Nothing was lost on loopback, so what was sent is the three files.
    expect_metric tftpgw_retransmissions_total 0 || return 1
    expect_metric tftpgw_bytes_sent_total $((511 + 4404 + 50000)) || return 1
    expect_metric tftpgw_bytes_received_total 513 || return 1
    # Backend answers timed: three opens for reading (the missing file has
    # no OPENED), one open for writing and its commit.
    expect_metric 'tftpgw_backend_request_duration_seconds_count{backend="files"}' 5 || return 1
    expect_metric 'tftpgw_backend_request_duration_seconds_bucket{backend="files",le="+Inf"}' 5 || return 1
    out=$(metrics_grammar "$T/scrape.out") || { fail "exposition format: $out"; return 1; }

    scrape /other
    [ "$SCRAPE_STATUS" = 404 ] || { fail "GET /other: status $SCRAPE_STATUS, want 404"; return 1; }
    scrape /metrics -X POST -d x=1
    [ "$SCRAPE_STATUS" = 405 ] || { fail "POST /metrics: status $SCRAPE_STATUS, want 405"; return 1; }
    scrape /metrics -I
    [ "$SCRAPE_STATUS" = 200 ] || { fail "HEAD /metrics: status $SCRAPE_STATUS, want 200"; return 1; }
}

# A metrics port that cannot be bound is a start-up error that names it.
t_metrics_bind_busy() {
    [ -n "$PEER" ] && { REASON="gateway-specific (metrics)"; return 77; }
    local holder port i
    "$PY" -c 'import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
time.sleep(60)' > "$T/holder.out" 2>&1 &
    holder=$!
    track "$holder"
    for i in $(seq 1 50); do
        port=$(head -n 1 "$T/holder.out")
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { fail "port holder did not start"; return 1; }
    # The gateway binds its TFTP port before the metrics port, so a bound
    # UDP port (what gw_up waits for) does not yet say it started: run it
    # to its exit instead, which must come at once and be a failure.
    write_config "$T/gw.ini" "127.0.0.1:$(free_port)" "metrics_listen=127.0.0.1:$port"
    local ra=()
    [ "$(id -u)" = 0 ] && ra=(--allow-root)
    timeout 20 "$GW" --config "$T/gw.ini" "${ra[@]}" >> "$GW_LOG" 2>&1 < /dev/null
    local st=$?
    stop_pid "$holder"
    case $st in
        0) fail "gateway started although metrics port $port is taken (exit 0)"; return 1 ;;
        124) fail "gateway still running 20 s after start although metrics port $port is taken"; return 1 ;;
        1) ;;
        *) fail "exit status $st$(sigdesc "$st") (want 1)"; return 1 ;;
    esac
    grep -qF "metrics_listen 127.0.0.1:$port: cannot listen: address already in use" "$GW_LOG" ||
        { fail "no clear start-up error: $(tail -n 2 "$GW_LOG" | tr '\n' ' ')"; return 1; }
    if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$GW_LOG"; then
        fail "sanitizer report in the gateway log"; return 1
    fi
    REASON=""
}

# Cache events through cache.sh's setup (nginx upstream, [backend edge]):
# miss, hit, a second miss whose commit evicts the first copy (max_size
# holds one of the two files).
t_metrics_cache() {
    local TG_SERVER_EXTRA="${TG_SERVER_EXTRA:-} metrics_listen=127.0.0.1:$MPORT"
    cache_nginx_up || return 1
    ln "$FIX/f4404" "$NGX_ROOT/f4404"
    ln "$FIX/f513" "$NGX_ROOT/f513"
    cache_gw_up "$(ngx_url)" max_size=4500 || return 1
    cache_get f4404 "$FIX/f4404" "get f4404 (miss)" || return 1
    cache_get f4404 "$FIX/f4404" "get f4404 again (hit)" tsize || return 1
    cache_get f513 "$FIX/f513" "get f513 (miss, evicts f4404)" || return 1
    ngx_gets_are f4404 1 "f4404 fetched once" || return 1
    local i
    for i in $(seq 1 30); do
        scrape /metrics
        [ "$(metric_value 'tftpgw_cache_events_total{cache="edge",event="eviction"}')" = 1 ] && break
        sleep 0.1
    done
    [ "$SCRAPE_STATUS" = 200 ] || { fail "GET /metrics: status $SCRAPE_STATUS"; return 1; }
    expect_metric 'tftpgw_cache_events_total{cache="edge",event="miss"}' 2 || return 1
    expect_metric 'tftpgw_cache_events_total{cache="edge",event="hit"}' 1 || return 1
    expect_metric 'tftpgw_cache_events_total{cache="edge",event="eviction"}' 1 || return 1
    [ "$(grep -c '^tftpgw_cache_events_total{' "$T/scrape.out")" = 3 ] ||
        { fail "other cache events: $(grep '^tftpgw_cache_events_total{' "$T/scrape.out" | tr '\n' ' ')"; return 1; }
    expect_metric 'tftpgw_transfers_finished_total{op="rrq",route="r",result="ok"}' 3 || return 1
    expect_metric 'tftpgw_backend_request_duration_seconds_count{backend="edge"}' 3 || return 1
    expect_metric tftpgw_bytes_sent_total $((4404 * 2 + 513)) || return 1
}

t_metrics_cache_run() {
    MPORT=$(free_tcp_port)
    cx t_metrics_cache
}

run_test metrics_scrape    t_metrics_scrape
run_test metrics_bind_busy t_metrics_bind_busy
run_test metrics_cache     t_metrics_cache_run
