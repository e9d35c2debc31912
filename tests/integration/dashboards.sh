#!/bin/bash
# tests/integration/dashboards.sh - the Prometheus rules and the Grafana
# dashboard (etc/prometheus/tftpgw.rules.yml, etc/grafana/tftpgw.json)
# against promtool, a real tftpgw and a real Prometheus on loopback.
#
#   make test-dashboards      (or: bash tests/integration/dashboards.sh [NAME...])
#
# Not part of run.sh: it needs Prometheus, which is taken from Debian's
# prometheus package unpacked into build/prometheus (apt-get download +
# dpkg -x, never installed: the package starts a system service). About
# 20 s once the package is there.
#
# rules_check       promtool check rules accepts the rules file
# rules_unit        promtool test rules tests/prometheus/tftpgw.rules.test.yml
#                   (series in, recorded values and alerts out; declined
#                   probes alone must not fire TftpgwTransfersFailing)
# dashboard_json    the dashboard parses, uses ${DS_PROMETHEUS} everywhere and
#                   has the expected panels; the name checker rejects a
#                   name the gateway does not serve
# prometheus_live   tftpgw with metrics_listen, Prometheus scraping it every
#                   second with the rules loaded: the target is up, every
#                   rule evaluates, reads (ok and not found) give a failure
#                   ratio strictly between 0 and 1, every name the
#                   dashboard uses is served by this gateway or recorded by
#                   a rule, and every dashboard query is accepted by
#                   Prometheus
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"

# shellcheck disable=SC2034 # read by lib.sh's want_test
FILTER=("$@")
lib_init

RULES=$REPO/etc/prometheus/tftpgw.rules.yml
RULES_TEST=$REPO/tests/prometheus/tftpgw.rules.test.yml
DASH=$REPO/etc/grafana/tftpgw.json
NAMES=$REPO/tests/prometheus/dashboard_names.py
PROM_DIR=${PROM_DIR:-$REPO/build/prometheus}
PROM=$PROM_DIR/root/usr/bin/prometheus
PROMTOOL=$PROM_DIR/root/usr/bin/promtool

setup_fail() {
    echo "FAIL setup: $*"
    echo "0 passed, 1 failed"
    exit 1
}

# Debian's prometheus, unpacked privately (as tests/e2e/run.sh does GRUB).
prom_fetch() {
    [ -x "$PROM" ] && [ -x "$PROMTOOL" ] && return 0
    echo "fetching Debian's prometheus into $PROM_DIR (apt-get download + dpkg -x)"
    rm -rf -- "$PROM_DIR"
    mkdir -p "$PROM_DIR/deb"
    chmod 755 "$PROM_DIR/deb"
    # -o APT::Sandbox::User=root: the download directory is root's
    if ! (cd "$PROM_DIR/deb" && apt-get -o APT::Sandbox::User=root download prometheus) \
            > "$PROM_DIR/apt.log" 2>&1; then
        apt-get update -qq >> "$PROM_DIR/apt.log" 2>&1
        (cd "$PROM_DIR/deb" && apt-get -o APT::Sandbox::User=root download prometheus) \
            >> "$PROM_DIR/apt.log" 2>&1 ||
            setup_fail "cannot download prometheus: $(tail -n 1 "$PROM_DIR/apt.log")"
    fi
    dpkg -x "$PROM_DIR"/deb/prometheus_*.deb "$PROM_DIR/root" ||
        setup_fail "cannot unpack $(ls "$PROM_DIR"/deb/*.deb)"
    rm -rf -- "$PROM_DIR/deb"
    if [ ! -x "$PROM" ] || [ ! -x "$PROMTOOL" ]; then setup_fail "no prometheus or promtool in the package"; fi
}

[ -x "$GW" ] || setup_fail "no gateway binary at $GW (run make first)"
command -v tftp > /dev/null || setup_fail "tftp (tftp-hpa) not installed (make deps)"
command -v curl > /dev/null || setup_fail "curl not installed (make deps)"
prom_fetch

# A small fixture set: make_root hard-links FIX into each test's root.
FIX=$WORK/fix
mkdir -p "$FIX"
head -c 4404 /dev/urandom > "$FIX/f4404"
chmod 644 "$FIX/f4404"

# ------------------------------------------------------------ promtool

t_rules_check() {
    local out
    out=$(timeout 30 "$PROMTOOL" check rules "$RULES" 2>&1) ||
        { fail "promtool check rules: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"; return 1; }
    [[ $out =~ SUCCESS:\ ([0-9]+)\ rules\ found ]] || { fail "promtool check rules: $out"; return 1; }
    [ "${BASH_REMATCH[1]}" -ge 20 ] || { fail "only ${BASH_REMATCH[1]} rules found"; return 1; }
}

t_rules_unit() {
    local out
    out=$(cd "$T" && timeout 60 "$PROMTOOL" test rules "$RULES_TEST" 2>&1) ||
        { fail "promtool test rules: $(printf '%s' "$out" | head -n 12 | tr '\n' ' ')"; return 1; }
    grep -q SUCCESS <<< "$out" || { fail "promtool test rules: $out"; return 1; }
}

# ------------------------------------------------------------ dashboard

t_dashboard_json() {
    local out
    out=$("$PY" - "$DASH" << 'EOF'
import json, sys
d = json.load(open(sys.argv[1], encoding='utf-8'))
errs = []
if not 36 <= d.get('schemaVersion', 0) <= 41:
    errs.append('schemaVersion %r' % d.get('schemaVersion'))
if [i.get('name') for i in d.get('__inputs', [])] != ['DS_PROMETHEUS']:
    errs.append('__inputs is not DS_PROMETHEUS')
titles, ids = [], set()
for p in d['panels']:
    titles.append(p['title'])
    if p['id'] in ids:
        errs.append('panel id %s twice' % p['id'])
    ids.add(p['id'])
    if p['type'] == 'row':
        continue
    for o in [p] + p.get('targets', []):
        if o.get('datasource', {}).get('uid') != '${DS_PROMETHEUS}':
            errs.append('%s: datasource %r' % (p['title'], o.get('datasource')))
    if not p.get('targets'):
        errs.append('%s: no query' % p['title'])
want = ['Transfers/s by op and result', 'Failure ratio by op', 'Bytes/s sent and received',
        'Active sessions by instance', 'Retransmissions', 'Backend latency quantiles',
        'Upstream errors by route', 'Cache hit ratio', 'Cache events/s', 'Refused requests by reason']
errs += ['no panel %r' % w for w in want if w not in titles]
print('; '.join(errs) if errs else '%d panels' % len(titles))
sys.exit(1 if errs else 0)
EOF
) || { fail "dashboard: $out"; return 1; }
    # The name check must be able to fail: a name no gateway serves.
    printf '%s\n' '# TYPE tftpgw_active_sessions gauge' 'tftpgw_active_sessions 0' > "$T/m.txt"
    printf '%s' '{"panels":[{"targets":[{"expr":"rate(tftpgw_nonexistent_total{a=\"b\"}[5m])"}]}]}' \
        > "$T/bad.json"
    if out=$("$PY" "$NAMES" check "$T/bad.json" "$RULES" "$T/m.txt"); then
        fail "the name check accepted tftpgw_nonexistent_total: $out"; return 1
    fi
    grep -q 'tftpgw_nonexistent_total' <<< "$out" || { fail "name check: $out"; return 1; }
}

# ------------------------------------------------------------ live

PPORT=""

# pquery QUERY: Prometheus's instant query; the JSON answer in $T/q.json
pquery() {
    timeout 10 curl -sS --max-time 5 -o "$T/q.json" -G \
        --data-urlencode "query=$1" "http://127.0.0.1:$PPORT/api/v1/query" 2> "$T/q.err"
}

# pvalue QUERY: the value of the first sample of the answer, empty if none
pvalue() {
    pquery "$1" || return 1
    "$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
r = d["data"]["result"] if d.get("status") == "success" else []
print(r[0]["value"][1] if r else "")' "$T/q.json"
}

# wait_value QUERY PYTHON-TEST SECONDS: poll until the first sample's value
# v passes the test (e.g. "v > 0"); the last value in PVAL
wait_value() {
    local q=$1 test=$2 n=$(($3 * 4)) i
    PVAL=""
    for ((i = 0; i < n; i++)); do
        PVAL=$(pvalue "$q")
        if [ -n "$PVAL" ] && "$PY" -c "import sys; v = float(sys.argv[1]); sys.exit(0 if ($test) else 1)" \
                "$PVAL" 2> /dev/null; then
            return 0
        fi
        sleep 0.25
    done
    return 1
}

prom_up() {
    local mport=$1 i
    mkdir -p "$T/tsdb"
    cat > "$T/prometheus.yml" << EOF
# written by tests/integration/dashboards.sh
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $RULES
scrape_configs:
  - job_name: tftpgw
    static_configs:
      - targets: ['127.0.0.1:$mport']
EOF
    PPORT=$(free_tcp_port)
    "$PROM" --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
        --web.listen-address="127.0.0.1:$PPORT" --log.level=warn \
        > "$T/prometheus.log" 2>&1 < /dev/null &
    PROM_PID=$!
    track "$PROM_PID"
    for i in $(seq 1 60); do
        kill -0 "$PROM_PID" 2> /dev/null ||
            { fail "prometheus exited: $(tail -n 3 "$T/prometheus.log" | tr '\n' ' ')"; return 1; }
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$PPORT/-/ready")" = 200 ] &&
            return 0
        sleep 0.25
    done
    fail "prometheus not ready within 15 s: $(tail -n 3 "$T/prometheus.log" | tr '\n' ' ')"
}

t_prometheus_live() {
    local mport out q bad=0 n=0
    PROM_PID=""
    mport=$(free_tcp_port)
    gw_up "metrics_listen=127.0.0.1:$mport" || return 1
    prom_up "$mport" || return 1

    # The target is scraped and healthy.
    wait_value 'up{job="tftpgw"}' 'v == 1' 20 || { fail "up{job=\"tftpgw\"} = '$PVAL', want 1"; return 1; }
    timeout 10 curl -sS --max-time 5 -o "$T/targets.json" "http://127.0.0.1:$PPORT/api/v1/targets" ||
        { fail "GET /api/v1/targets failed"; return 1; }
    out=$("$PY" - "$T/targets.json" "127.0.0.1:$mport" << 'EOF'
import json, sys
t = json.load(open(sys.argv[1]))['data']['activeTargets']
m = [x for x in t if x['labels'].get('instance') == sys.argv[2]]
if len(m) != 1 or m[0]['health'] != 'up' or m[0]['labels'].get('job') != 'tftpgw':
    print('targets: %r' % [(x['labels'], x['health'], x.get('lastError')) for x in t]); sys.exit(1)
EOF
) || { fail "$out"; return 1; }

    # One read that works and one of a missing file. Counters appear at
    # their first event and rate() needs two samples, so a second round
    # after Prometheus has seen the first is what the rules can count.
    hpa octet get f4404 "$T/a" || return 1
    same_file "$T/a" "$FIX/f4404" "get f4404" || return 1
    hpa_expect 1 octet get nope "$T/x" || return 1
    wait_value 'count(tftpgw_transfers_finished_total{result=~"ok|not_found"})' 'v == 2' 20 ||
        { fail "Prometheus did not see the first round (series: '$PVAL')"; return 1; }
    sleep 1.5
    hpa octet get f4404 "$T/b" || return 1
    hpa_expect 1 octet get nope "$T/x" || return 1

    # Ok first, then not found: the ratio is 0 until both are scraped, and
    # never 1 unless ok counted as a failure.
    wait_value 'op:tftpgw_transfers_failed:ratio_rate5m{job="tftpgw",op="rrq"}' 'v > 0' 30 ||
        { fail "op:tftpgw_transfers_failed:ratio_rate5m{op=\"rrq\"} = '$PVAL' after 30 s, want > 0"; return 1; }
    "$PY" -c 'import sys; v = float(sys.argv[1]); sys.exit(0 if 0 < v < 1 else 1)' "$PVAL" ||
        { fail "failure ratio $PVAL, want between 0 and 1"; return 1; }
    echo "    failure ratio of rrq: $PVAL"
    wait_value 'op_result:tftpgw_transfers_finished:rate5m{op="rrq",result="not_found"}' 'v > 0' 10 ||
        { fail "op_result:...{result=\"not_found\"} = '$PVAL'"; return 1; }
    out=$(pvalue 'op:tftpgw_transfers_failed:rate5m{op="rrq"} / op:tftpgw_transfers_finished:rate5m{op="rrq"}')
    [ -n "$out" ] || { fail "recorded failed and finished rates do not divide"; return 1; }

    # Every rule loaded and evaluated without error.
    timeout 10 curl -sS --max-time 5 -o "$T/rules.json" "http://127.0.0.1:$PPORT/api/v1/rules" ||
        { fail "GET /api/v1/rules failed"; return 1; }
    out=$("$PY" - "$T/rules.json" << 'EOF'
import json, sys
g = json.load(open(sys.argv[1]))['data']['groups']
r = [x for grp in g for x in grp['rules']]
bad = ['%s: %s %s' % (x['name'], x['health'], x.get('lastError', '')) for x in r if x['health'] != 'ok']
if len(r) < 20 or bad:
    print('%d rules; %s' % (len(r), '; '.join(bad))); sys.exit(1)
print(len(r))
EOF
) || { fail "rules: $out"; return 1; }
    echo "    $out rules loaded, all health ok"

    # The dashboard's names against this gateway's page and the rules.
    timeout 10 curl -sS --max-time 5 -o "$T/metrics.txt" "http://127.0.0.1:$mport/metrics" ||
        { fail "scrape of the gateway failed"; return 1; }
    out=$("$PY" "$NAMES" check "$DASH" "$RULES" "$T/metrics.txt") || { fail "dashboard: $out"; return 1; }
    echo "    dashboard names served or recorded: $(wc -w <<< "$out")"
    # And every dashboard query is PromQL that Prometheus accepts.
    while IFS= read -r q; do
        q=$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1]))' "$q")
        n=$((n + 1))
        if ! pquery "$q" || ! "$PY" -c 'import json, sys
sys.exit(json.load(open(sys.argv[1])).get("status") != "success")' "$T/q.json" 2> /dev/null; then
            bad=1
            echo "    rejected: $q: $(cat "$T/q.json" "$T/q.err" 2> /dev/null | head -c 300)"
        fi
    done < <("$PY" "$NAMES" exprs "$DASH")
    [ "$bad" = 0 ] || { fail "Prometheus rejected dashboard queries"; return 1; }
    [ "$n" -ge 15 ] || { fail "only $n dashboard queries"; return 1; }
    echo "    $n dashboard queries accepted"

    stop_pid "$PROM_PID"
    PROM_PID=""
}


run_test rules_check     t_rules_check
run_test rules_unit      t_rules_unit
run_test dashboard_json  t_dashboard_json
run_test prometheus_live t_prometheus_live

summary
