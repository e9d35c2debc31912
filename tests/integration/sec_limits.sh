# tests/integration/sec_limits.sh - limits an attacker cannot turn against
# a victim (docs/security.md, "Fair limits"); sourced by run.sh after lib.sh.
#
#  - rate_limit: a victim polling under its limit keeps being served while
#    thousands of other addresses, its neighbours and addresses chosen to
#    collide with it in the old unkeyed table flood the port;
#  - metrics_listen: one address holding many idle connections, or many
#    addresses holding one each, cannot keep a scraper from another
#    address out, and idle connections are closed by the server.

limits_tcp_port() {
    "$PY" -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# limits_metric NAME{LABELS}: its value on a fresh scrape of MPORT (empty
# if absent)
limits_metric() {
    timeout 10 curl -sS --max-time 5 "http://127.0.0.1:$MPORT/metrics" 2> /dev/null |
        awk -v k="$1" '$1 == k { print $2 }'
}

# The flood: about 200 RRQs a second for $2 seconds, each from a fresh
# socket bound to its source address. Three quarters come from 2000
# distinct addresses 127.1.0.1-127.1.7.250 (one each in turn, a missing
# file); the rest alternate between 127.0.0.2's neighbours and eight
# addresses of 127.1.0.0/16 that shared 127.0.0.2's slot in the table this
# replaced (FNV-1a of the address, modulo 4096), asking for a real file.
# Prints a JSON summary.
limits_flood() {
    "$PY" - "$@" << 'EOF'
import json, socket, sys, time
port, duration, rate = int(sys.argv[1]), float(sys.argv[2]), 200.0

def fnv_slot(a):
    h = 2166136261
    for x in bytes(a) + bytes(12):
        h = ((h ^ x) * 16777619) & 0xffffffff
    return h % 4096

victim = fnv_slot([127, 0, 0, 2])
colliders = []
for n in range(1, 65536):
    a = [127, 1, n >> 8, n & 255]
    if fnv_slot(a) == victim:
        colliders.append("%d.%d.%d.%d" % tuple(a))
    if len(colliders) == 8:
        break
neighbours = ["127.0.0.%d" % i for i in (1, 3, 4, 5, 6)]
spread = ["127.1.%d.%d" % (i // 250, i % 250 + 1) for i in range(2000)]
sent = {"spread": 0, "colliders": 0, "neighbours": 0}
used = set()
start = time.monotonic()
n = 0
while True:
    now = time.monotonic()
    if now - start >= duration:
        break
    due = start + n / rate
    if due > now:
        time.sleep(due - now)
    if n % 4 != 3:
        src, name, kind = spread[sent["spread"] % len(spread)], "nope-%d" % n, "spread"
        used.add(src)
    elif (n // 4) % 2 == 0:
        src, name, kind = colliders[(n // 8) % len(colliders)], "f4404", "colliders"
    else:
        src, name, kind = neighbours[(n // 8) % len(neighbours)], "f4404", "neighbours"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((src, 0))
        s.sendto(b"\x00\x01" + name.encode() + b"\x00octet\x00", ("127.0.0.1", port))
        sent[kind] += 1
    finally:
        s.close()
    n += 1
elapsed = time.monotonic() - start
print(json.dumps({"sent": sent, "distinct_spread": len(used), "colliders": colliders,
                  "rate": round(n / elapsed, 1)}))
EOF
}

# rate_limit = 2 (burst 4): 127.0.0.2 fetches a real file once a second for
# 12 s with curl while the flood runs; every fetch must succeed, whole.
t_sec_limits_rate_victim() {
    [ -n "$PEER" ] && { REASON="gateway-specific (rate_limit)"; return 77; }
    local apid i rc refused=0 failed=() summary limited started
    MPORT=$(limits_tcp_port)
    gw_up rate_limit=2 "metrics_listen=127.0.0.1:$MPORT" || return 1
    limits_flood "$PORT" 13.5 > "$T/flood.json" 2> "$T/flood.err" &
    apid=$!
    track "$apid"
    sleep 0.5
    for i in $(seq 1 12); do
        rm -f "$T/v$i"
        timeout 10 curl -sS --interface 127.0.0.2 --connect-timeout 2 --max-time 8 \
            -o "$T/v$i" "tftp://127.0.0.1:$PORT/f4404" 2> "$T/v$i.err"
        rc=$?
        if [ $rc -eq 71 ]; then
            refused=$((refused + 1)); failed+=("$i:ERROR0")
        elif [ $rc -ne 0 ]; then
            failed+=("$i:exit$rc")
        elif [ "$(sha "$T/v$i")" != "$(sha "$FIX/f4404")" ]; then
            failed+=("$i:content")
        fi
        sleep 1
    done
    wait "$apid"; rc=$?
    untrack "$apid"
    summary=$(cat "$T/flood.json")
    [ $rc -eq 0 ] || { fail "flood exited $rc: $(cat "$T/flood.err")"; return 1; }
    [ ${#failed[@]} -eq 0 ] ||
        { fail "victim refused $refused of 12 (rate_limit 2), failures ${failed[*]}; flood $summary"; return 1; }
    # The flood was real: 2000 distinct sources, about 200/s, and the
    # gateway both served the spread (a session each) and limited the
    # neighbours and the colliders (5 + 8 addresses at 3 to 5 requests/s).
    "$PY" -c 'import json, sys
s = json.loads(sys.argv[1])
ok = s["distinct_spread"] >= 2000 and s["rate"] >= 150 and len(s["colliders"]) == 8
sys.exit(0 if ok else 1)' "$summary" || { fail "flood too weak: $summary"; return 1; }
    limited=$(limits_metric 'tftpgw_requests_refused_total{reason="rate_limited"}')
    started=$(limits_metric 'tftpgw_transfers_started_total{op="rrq",route="all"}')
    [ "${limited:-0}" -ge 150 ] ||
        { fail "only '${limited}' requests rate-limited during the flood: $summary"; return 1; }
    [ "${started:-0}" -ge 2000 ] ||
        { fail "only '${started}' sessions started during the flood: $summary"; return 1; }
    log_has "refused client=127." "rate limit exceeded" || return 1
    log_lines "refused client=127.0.0.2:" > /dev/null &&
        { fail "the victim was refused: $(log_lines "refused client=127.0.0.2:" | head -n 2)"; return 1; }
    echo "    victim 12/12 served; flood $("$PY" -c 'import json, sys
s = json.loads(sys.argv[1])
print("%(rate)s/s, sent %(sent)s" % s)' "$summary"); rate_limited=$limited sessions=$started"
    return 0
}

# limits_hold MODE N: N idle TCP connections to the metrics port, from
# 127.0.0.1 (MODE one) or from 127.2.0.1.. one each (MODE many; there a
# connection the server ends within the first 2 s is made again at once,
# at most 40 times, to keep the endpoint full). Prints READY once the
# first N are connected, then waits up to 6 s for the server to end every
# connection and prints a JSON summary: how each ended (eof, reset, data,
# open), after how many seconds from its own connect, and the remakes.
limits_hold() {
    "$PY" - "$MPORT" "$@" << 'EOF2'
import json, select, socket, sys, time
port, mode, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conns = []

def connect(src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(2)
    s.connect(("127.0.0.1", port))
    conns.append({"s": s, "src": src, "t": time.monotonic(), "end": None})

for i in range(n):
    connect("127.0.0.1" if mode == "one" else "127.2.0.%d" % (i + 1))
start = time.monotonic()
print("READY", flush=True)
remade = 0
while time.monotonic() < start + 6:
    live = [c for c in conns if c["end"] is None]
    if not live:
        break
    r, _, _ = select.select([c["s"] for c in live], [], [], 0.02)
    for c in live:
        if c["s"] not in r:
            continue
        try:
            kind = "eof" if c["s"].recv(1) == b"" else "data"
        except ConnectionResetError:
            kind = "reset"
        c["end"] = (kind, round(time.monotonic() - c["t"], 3))
        if mode == "many" and time.monotonic() < start + 2 and remade < 40:
            remade += 1
            connect(c["src"])
kinds = {}
for c in conns:
    k = c["end"][0] if c["end"] else "open"
    kinds[k] = kinds.get(k, 0) + 1
after = sorted(c["end"][1] for c in conns if c["end"])
print(json.dumps({"kinds": kinds, "remade": remade, "after": after}))
EOF2
}

# limits_scrapes N: N scrapes from 127.0.0.3, one every 0.15 s, each
# allowed 1 s; sets SCRAPES_OK and SCRAPES_BAD (what went wrong).
limits_scrapes() {
    local i code
    SCRAPES_OK=0 SCRAPES_BAD=""
    for i in $(seq 1 "$1"); do
        code=$(timeout 5 curl -sS --interface 127.0.0.3 --max-time 1 -o "$T/scrape$i" \
            -w '%{http_code}' "http://127.0.0.1:$MPORT/metrics" 2> "$T/scrape$i.err")
        if [ "$code" = 200 ] && grep -q '^tftpgw_build_info{version="' "$T/scrape$i"; then
            SCRAPES_OK=$((SCRAPES_OK + 1))
        else
            SCRAPES_BAD="$SCRAPES_BAD #$i:${code:-none}:$(head -c 80 "$T/scrape$i.err")"
        fi
        sleep 0.15
    done
}

# limits_hold_start MODE N: limits_hold in the background; HPID, and
# waits for READY (up to 5 s).
limits_hold_start() {
    limits_hold "$@" > "$T/hold.out" 2> "$T/hold.err" &
    HPID=$!
    track "$HPID"
    local i
    for i in $(seq 1 50); do
        grep -q READY "$T/hold.out" && return 0
        sleep 0.1
    done
    fail "the idle connections were not all made: $(tail -n 2 "$T/hold.err")"
}

limits_hold_result() {
    wait "$HPID"
    untrack "$HPID"
    HOLD=$(tail -n 1 "$T/hold.out")
}

limits_hold_summary() {
    echo "    10/10 scrapes; idle connections: $("$PY" -c 'import json, sys
h = json.loads(sys.argv[1])
a = h["after"]
print("%s, %d remade; ended before 1.8 s: %d, later: %d, last at %.3f s"
      % (h["kinds"], h["remade"], sum(t < 1.8 for t in a), sum(t >= 1.8 for t in a), max(a)))' "$HOLD")"
}

# One client, 64 idle connections: four are kept until the 2 s head
# timeout, the other 60 closed at once; ten scrapes from 127.0.0.3 in the
# meantime are all answered.
t_sec_limits_metrics_one_client() {
    [ -n "$PEER" ] && { REASON="gateway-specific (metrics)"; return 77; }
    MPORT=$(limits_tcp_port)
    gw_up "metrics_listen=127.0.0.1:$MPORT" || return 1
    limits_hold_start one 64 || return 1
    limits_scrapes 10
    limits_hold_result
    [ "$SCRAPES_OK" = 10 ] ||
        { fail "$SCRAPES_OK of 10 scrapes from 127.0.0.3 answered:$SCRAPES_BAD; idle: $HOLD"; return 1; }
    "$PY" -c 'import json, sys
h = json.loads(sys.argv[1])
a = h["after"]
# every one ended by the server with EOF: 60 at once (per-client cap 4),
# the 4 kept ones at the 2 s head timeout, none later than 3 s
ok = h["kinds"] == {"eof": 64} and sum(t < 0.5 for t in a) == 60 and      all(1.8 <= t <= 3.0 for t in a[60:])
sys.exit(0 if ok else 1)' "$HOLD" || { fail "idle connections from one client: $HOLD"; return 1; }
    log_has "metrics 127.0.0.1:$MPORT: closed a connection from 127.0.0.1: too many connections" || return 1
    limits_hold_summary
}

# 64 idle connections from 64 addresses fill the endpoint (and are made
# again as they end): a newcomer, scrape or not, takes the slot of the
# oldest connection still without a request head, so the scrapes from
# 127.0.0.3 are answered; the rest end at the head timeout.
t_sec_limits_metrics_many_clients() {
    [ -n "$PEER" ] && { REASON="gateway-specific (metrics)"; return 77; }
    MPORT=$(limits_tcp_port)
    gw_up "metrics_listen=127.0.0.1:$MPORT" || return 1
    limits_hold_start many 64 || return 1
    limits_scrapes 10
    limits_hold_result
    [ "$SCRAPES_OK" = 10 ] ||
        { fail "$SCRAPES_OK of 10 scrapes from 127.0.0.3 answered:$SCRAPES_BAD; idle: $HOLD"; return 1; }
    "$PY" -c 'import json, sys
h = json.loads(sys.argv[1])
a = h["after"]
# every connection ended by the server with EOF within 3 s of its
# connect; one closed early per newcomer at most (a scrape, or a remade
# connection that found the endpoint full again: never a mass close), and
# at least one (the endpoint was full when scraped)
early = sum(t < 1.8 for t in a)
ok = h["kinds"] == {"eof": 64 + h["remade"]} and 1 <= early <= 10 + h["remade"] and \
     all(t <= 3.0 for t in a)
sys.exit(0 if ok else 1)' "$HOLD" || { fail "idle connections from 64 addresses: $HOLD"; return 1; }
    log_has "metrics 127.0.0.1:$MPORT: closed a connection from 127.2.0." "sent no request" || return 1
    limits_hold_summary
}

run_test sec_limits_rate_victim        t_sec_limits_rate_victim
run_test sec_limits_metrics_one_client t_sec_limits_metrics_one_client
run_test sec_limits_metrics_many_clients t_sec_limits_metrics_many_clients
