# tests/integration/live.sh - the live transfers view on the metrics
# endpoint (docs/metrics.md, "Live transfers"), sourced by run.sh after
# lib.sh (bash): GET /transfers while a slow read runs and after it ended,
# a missing file's error, a hostile file name's escaping, and the page
# GET / rendered by headless Chromium.

LPORT=""


# live_fetch OUT: GET /transfers into OUT; fails unless 200 and JSON
live_fetch() {
    local code
    code=$(timeout 10 curl -sS --max-time 5 -o "$1" -D "$1.hdr" -w '%{http_code}' \
        "http://127.0.0.1:$LPORT/transfers" 2> "$T/curl.err") ||
        { fail "GET /transfers: curl: $(cat "$T/curl.err")"; return 1; }
    [ "$code" = 200 ] || { fail "GET /transfers: status $code"; return 1; }
    grep -qi '^content-type: application/json' "$1.hdr" ||
        { fail "GET /transfers: $(grep -i '^content-type' "$1.hdr")"; return 1; }
}

# live_slow_get FILE [DELAY]: a reader in the background that takes one
# 512-byte block per DELAY s (0.03; asking tsize) until $T/go exists, then
# runs to the end.
# Its client port is in $T/slow.port once it started; LIVE_PID is its pid.
live_slow_get() {
    rm -f "$T/go" "$T/slow.port"
    timeout 60 "$PY" - "$HERE" "$HOST" "$PORT" "$1" "$T/slow.out" "$T/go" "$T/slow.port" \
        "${2:-0.03}" > "$T/slow.log" 2>&1 <<'PYEOF' &
import os, sys, time
sys.path.insert(0, sys.argv[1])
import tftpraw as T
host, port, name, dst, go, portfile = sys.argv[2], int(sys.argv[3]), *sys.argv[4:8]
delay = float(sys.argv[8])
def hook(c, res, block):
    if not os.path.exists(go):
        time.sleep(delay)
with T.Client(host, port, timeout=1.0, retries=10) as c:
    open(portfile + ".tmp", "w").write("%d\n" % c.addr[1])
    os.rename(portfile + ".tmp", portfile)
    r = c.get(name, options=[("blksize", "512"), ("tsize", "0")], hook=hook)
open(dst, "wb").write(r.data)
print("DONE bytes=%d" % len(r.data), flush=True)
PYEOF
    LIVE_PID=$!
    track "$LIVE_PID"
    local i
    for i in $(seq 1 50); do
        [ -s "$T/slow.port" ] && return 0
        sleep 0.1
    done
    fail "the slow reader did not start: $(tail -n 2 "$T/slow.log" | tr '\n' ' ')"
}

# live_end_slow: let the slow reader finish; it must get the whole file
live_end_slow() {
    local st
    touch "$T/go"
    wait "$LIVE_PID"; st=$?
    untrack "$LIVE_PID"
    [ "$st" = 0 ] || { fail "slow reader exited $st: $(tail -n 2 "$T/slow.log" | tr '\n' ' ')"; return 1; }
}

# live_check JSONFILE MODE ARGS: python assertions on a /transfers answer;
# prints the reason and exits 1 when one fails.
live_check() {
    "$PY" - "$@" 2>&1 << 'PYEOF'
import json, sys
path, mode = sys.argv[1], sys.argv[2]
try:
    j = json.loads(open(path, "rb").read().decode("utf-8"))
except Exception as e:
    print("not JSON: %s" % e); sys.exit(1)
def die(msg):
    print(msg); sys.exit(1)
for k in ("active", "finished", "truncated", "active_count"):
    if k not in j: die("no %r in %s" % (k, sorted(j)))
want = ("client", "port", "op", "file", "route", "backend", "mode", "blksize",
        "windowsize", "tsize", "bytes", "rate", "retransmits", "age", "state", "stuck")
def find(lst, file, port=None):
    for t in lst:
        missing = [k for k in want if k not in t]
        if missing: die("fields missing: %s in %r" % (missing, t))
        if t["file"] == file and (port is None or t["port"] == port):
            return t
    return None
if mode == "active":            # file port tsize [min_bytes]
    file, port, tsize = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    t = find(j["active"], file, port)
    if not t: die("%s from port %d not active: %r" % (file, port, j["active"]))
    if (t["client"], t["op"], t["tsize"], t["route"], t["backend"], t["mode"], t["blksize"]) != \
            ("127.0.0.1", "rrq", tsize, "all", "files", "octet", 512):
        die("wrong fields: %r" % t)
    if not (0 < t["bytes"] < tsize): die("bytes %r not in (0, %d)" % (t["bytes"], tsize))
    if t["state"] not in ("sending", "source_wait"): die("state %r" % t["state"])
    if t["stuck"] is not False: die("a moving transfer is stuck: %r" % t)
    if not t["rate"] > 0: die("rate %r" % t["rate"])
    print(t["bytes"])
elif mode == "finished":        # file port result bytes|- error|-
    file, port, result, nbytes, err = sys.argv[3], sys.argv[4], *sys.argv[5:8]
    t = find(j["finished"], file, None if port == "-" else int(port))
    if not t: die("%r not finished: %r" % (file, [x["file"] for x in j["finished"]]))
    if t["result"] != result: die("result %r, want %r: %r" % (t["result"], result, t))
    if nbytes != "-" and t["bytes"] != int(nbytes): die("bytes %r, want %s" % (t["bytes"], nbytes))
    if err != "-" and t["error"] != err: die("error %r, want %r" % (t["error"], err))
    if err == "-" and t["error"] is not None: die("error %r, want null" % t["error"])
    if not isinstance(t["finished"], int) or t["state"] != "done": die("finished/state: %r" % t)
    if find(j["active"], file, None if port == "-" else int(port)): die("%s still active" % file)
else:
    die("mode?")
PYEOF
}

t_live_json() {
    [ -n "$PEER" ] && { REASON="gateway-specific (metrics)"; return 77; }
    local port b1 b2 out
    LPORT=$(free_tcp_port)
    gw_up "metrics_listen=127.0.0.1:$LPORT" || return 1
    live_slow_get f200k || return 1
    port=$(cat "$T/slow.port")
    sleep 0.5
    live_fetch "$T/j1" || return 1
    b1=$(live_check "$T/j1" active f200k "$port" 200000) || { fail "first fetch: $b1"; return 1; }
    sleep 1
    live_fetch "$T/j2" || return 1
    b2=$(live_check "$T/j2" active f200k "$port" 200000) || { fail "second fetch: $b2"; return 1; }
    [ "$b2" -gt "$b1" ] || { fail "bytes did not grow: $b1 then $b2"; return 1; }
    live_end_slow || return 1
    same_file "$T/slow.out" "$FIX/f200k" "slow get" || return 1
    hpa_expect 1 octet get nope "$T/x" || return 1
    live_fetch "$T/j3" || return 1
    out=$(live_check "$T/j3" finished f200k "$port" ok 200000 -) || { fail "after: $out"; return 1; }
    out=$(live_check "$T/j3" finished nope - not_found 0 "file not found") ||
        { fail "not found: $out"; return 1; }
}

# A reader that stops answering for longer than the timeout (1 s): the
# gateway retransmits and the view flags the transfer stuck; once it
# answers again and finishes it is ok.
t_live_stuck() {
    [ -n "$PEER" ] && { REASON="gateway-specific (metrics)"; return 77; }
    local port i out=""
    LPORT=$(free_tcp_port)
    gw_up "metrics_listen=127.0.0.1:$LPORT" || return 1
    live_slow_get f4404 2.5 || return 1
    port=$(cat "$T/slow.port")
    for i in $(seq 1 30); do
        live_fetch "$T/j" || return 1
        out=$("$PY" - "$T/j" "$port" 2>&1 << 'PYEOF'
import json, sys
j = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
t = [t for t in j["active"] if t["file"] == "f4404" and t["port"] == int(sys.argv[2])]
if not t: print("not active"); sys.exit(1)
t = t[0]
if t["stuck"] is not True or t["retransmits"] < 1 or t["state"] != "sending":
    print("not stuck yet: %r" % t); sys.exit(1)
PYEOF
        ) && break
        sleep 0.2
    done
    [ "$i" -lt 30 ] || { fail "never stuck: $out"; return 1; }
    live_end_slow || return 1
    same_file "$T/slow.out" "$FIX/f4404" "stalled get" || return 1
    live_fetch "$T/j" || return 1
    out=$(live_check "$T/j" finished f4404 "$port" ok 4404 -) || { fail "after: $out"; return 1; }
}

# Names with a quote, a backslash, a control byte, an invalid UTF-8 byte
# and markup: one refused before any session (control bytes are illegal
# in a name), one that reaches the backend and is not found there. The
# answer must stay valid JSON and give each name back as it was sent.
t_live_escape() {
    [ -n "$PEER" ] && { REASON="gateway-specific (metrics)"; return 77; }
    local out
    LPORT=$(free_tcp_port)
    gw_up "metrics_listen=127.0.0.1:$LPORT" || return 1
    out=$("$PY" - "$HERE" "$HOST" "$PORT" << 'PYEOF'
import sys
sys.path.insert(0, sys.argv[1])
import tftpraw as T
for name in (b'we"ird\\na\x01me\xff<b>', b'dir\\q"uote<x>&'):
    with T.Client(sys.argv[2], int(sys.argv[3]), timeout=1.0, retries=2) as c:
        c.send_raw(T.build_rrq(name))
        got = c.recv(3)
        p = got[0] if got else None
        print(p.op if p else None, p.code if p else None, end=" ")
PYEOF
    ) || { fail "raw requests: $out"; return 1; }
    [ "$out" = "5 2 5 1 " ] || { fail "answers '$out', want ERROR 2 then ERROR 1"; return 1; }
    live_fetch "$T/j" || return 1
    out=$("$PY" - "$T/j" 2>&1 << 'PYEOF'
import json, sys
j = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
want = {'we"ird\\na\x01me\xff<b>': ("denied", "refused", "access violation: illegal file name"),
        'dir\\q"uote<x>&': ("not_found", "done", "file not found")}
files = {t["file"]: t for t in j["finished"]}
for name, (result, state, err) in want.items():
    t = files.get(name)
    if not t:
        print("%r not among %r" % (name, list(files))); sys.exit(1)
    if (t["result"], t["state"], t["error"], t["op"], t["client"]) != \
            (result, state, err, "rrq", "127.0.0.1"):
        print("wrong: %r" % t); sys.exit(1)
PYEOF
    ) || { fail "escaped names: $out"; return 1; }
    # the escapes themselves, as the file holds them
    grep -qF '"file":"we\"ird\\na\u0001me\u00ff\u003cb\u003e"' "$T/j" ||
        { fail "raw JSON: $(grep -o '"file":"we[^,]*' "$T/j" | head -1)"; return 1; }
}

# live_browser ARGS...: headless Chromium on the page; CHROME_OK says
# whether it could run (else REASON says why)
live_browser() {
    timeout 60 chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --no-first-run --user-data-dir="$T/chrome" "$@" "http://127.0.0.1:$LPORT/" \
        2>> "$T/chrome.err"
}

live_have_chromium() {
    if ! command -v chromium > /dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null 2>&1; then
            timeout 600 apt-get install -y chromium > "$T/apt.log" 2>&1
        fi
    fi
    command -v chromium > /dev/null 2>&1 ||
        { REASON="chromium is not installed and apt-get install -y chromium failed"; return 1; }
    chromium --version > "$T/chrome.version" 2>> "$T/chrome.err" ||
        { REASON="chromium --version failed: $(tail -n 1 "$T/chrome.err")"; return 1; }
}

# live_dom_progress DOM FILE: the value of FILE's progress bar in a dumped
# DOM, after checking the row shows the name, a percentage and a rate
live_dom_progress() {
    "$PY" - "$1" "$2" << 'PYEOF'
import re, sys
dom, name = open(sys.argv[1], encoding="utf-8").read(), sys.argv[2]
rows = re.findall(r'<tr data-file="%s" data-bytes="(\d+)"[^>]*>(.*?)</tr>' % re.escape(name), dom, re.S)
if len(rows) != 1:
    print("%d rows for %s in the active table; status: %s" % (len(rows), name,
          re.findall(r'<div id="st"[^>]*>(.*?)</div>', dom))); sys.exit(1)
row = rows[0][1]
m = re.search(r'<progress max="(\d+)" value="(\d+)"></progress> (\d+)%', row)
if not m or m.group(1) != "200000":
    print("no progress bar of 200000 in %r" % row[:400]); sys.exit(1)
if ">%s<" % name not in row or "/s<" not in row or "all / files" not in row:
    print("row lacks the name, rate or route: %r" % row[:400]); sys.exit(1)
if int(m.group(2)) != int(rows[0][0]) or not 0 < int(m.group(2)) < 200000:
    print("progress %s, bytes %s" % (m.group(2), rows[0][0])); sys.exit(1)
print(m.group(2))
PYEOF
}

t_live_page() {
    [ -n "$PEER" ] && { REASON="gateway-specific (metrics)"; return 77; }
    local v1 v2 code
    live_have_chromium || return 77
    LPORT=$(free_tcp_port)
    gw_up "metrics_listen=127.0.0.1:$LPORT" || return 1
    code=$(timeout 10 curl -sS --max-time 5 -o "$T/page.html" -D "$T/page.hdr" -w '%{http_code}' \
        "http://127.0.0.1:$LPORT/" 2> "$T/curl.err")
    [ "$code" = 200 ] || { fail "GET /: status $code $(cat "$T/curl.err")"; return 1; }
    grep -qi '^content-type: text/html' "$T/page.hdr" || { fail "GET /: not text/html"; return 1; }
    grep -qi "^content-security-policy: default-src 'none'" "$T/page.hdr" ||
        { fail "GET /: no Content-Security-Policy"; return 1; }
    [ "$(stat -c %s "$T/page.html")" -lt 8192 ] || { fail "page over 8 KiB"; return 1; }
    grep -qiE '(src|href)="?(https?:)?//' "$T/page.html" && { fail "page loads an external asset"; return 1; }
    hpa_expect 1 octet get gone "$T/x" || return 1
    # a UEFI-style size probe: OACK, then the client's ERROR 8 (declined)
    code=$("$PY" - "$HERE" "$HOST" "$PORT" << 'PYEOF'
import sys
sys.path.insert(0, sys.argv[1])
import tftpraw as T
with T.Client(sys.argv[2], int(sys.argv[3]), timeout=1.0, retries=2) as c:
    c.send_raw(T.build_rrq("f4404", options=[("tsize", "0")]))
    got = c.recv(3)
    if got and got[0] is not None and got[0].op == T.OACK:
        c.send_raw(T.build_error(8, "tsize only"), got[1])
    print(got[0].op if got and got[0] is not None else None)
PYEOF
    )
    [ "$code" = 6 ] || { fail "size probe: answer $code, want an OACK"; return 1; }
    live_slow_get f200k 0.05 || return 1
    sleep 0.5
    live_browser --virtual-time-budget=1500 --dump-dom > "$T/dom1.html" ||
        { REASON="chromium could not run: $(tail -n 2 "$T/chrome.err" | tr '\n' ' ')"; touch "$T/go"; return 77; }
    v1=$(live_dom_progress "$T/dom1.html" f200k) || { fail "first DOM: $v1"; return 1; }
    # finished rows: the missing file is a failure, the declined probe is not
    grep -q '<td class="fail">not_found</td><td>file not found</td>' "$T/dom1.html" ||
        { fail "the not-found request is no failure row in the finished table"; return 1; }
    grep -q '<td>declined</td>' "$T/dom1.html" && ! grep -q 'class="fail">declined' "$T/dom1.html" ||
        { fail "the declined probe is no plain row in the finished table"; return 1; }
    sleep 1
    live_browser --virtual-time-budget=1500 --dump-dom > "$T/dom2.html" ||
        { fail "chromium, second run: $(tail -n 2 "$T/chrome.err" | tr '\n' ' ')"; return 1; }
    v2=$(live_dom_progress "$T/dom2.html" f200k) || { fail "second DOM: $v2"; return 1; }
    [ "$v2" -gt "$v1" ] || { fail "progress did not advance: $v1 then $v2"; return 1; }
    live_browser --virtual-time-budget=1500 --screenshot="$T/live.png" --window-size=1200,600 \
        > /dev/null || { fail "chromium screenshot: $(tail -n 2 "$T/chrome.err" | tr '\n' ' ')"; return 1; }
    [ "$(head -c 8 "$T/live.png" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] ||
        { fail "the screenshot is no PNG"; return 1; }
    [ -z "${LIVE_SHOT:-}" ] || cp "$T/live.png" "$LIVE_SHOT"
    live_end_slow || return 1
    same_file "$T/slow.out" "$FIX/f200k" "slow get" || return 1
}

run_test live_json   t_live_json
run_test live_stuck  t_live_stuck
run_test live_escape t_live_escape
run_test live_page   t_live_page
