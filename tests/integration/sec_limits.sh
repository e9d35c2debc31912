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
    echo "    victim 12/12 served; flood $summary; rate_limited=$limited sessions=$started"
    return 0
}

run_test sec_limits_rate_victim        t_sec_limits_rate_victim
