# tests/integration/faults.sh - fault injection (sourced by run.sh after
# http.sh, s3.sh and cache.sh, whose helpers it uses; bash).
#
#   fault_matrix_file, fault_matrix_http
#       get and put of a 200 kB file through relay.py, for every windowsize
#       {1, 8, 64} x loss level {0, 5 %, 20 %}; at 5 % the relay also
#       duplicates, reorders and delays datagrams. Every cell checks the
#       sha256 of what arrived (get) or what was stored (put), the negotiated
#       windowsize, and that the relay really dropped something when it
#       should have. Cells run $FAULT_JOBS at a time (default 3), each with
#       its own relay and seed; FAULT_CELLS=SUBSTRING runs only the matching
#       cells (names like http-put-ws8-l20). $T/matrix.txt gets one line per
#       cell: time, restarts, relay counters, client output.
#       Timeouts are the gateway's timeout = 100 (ms) and tftpraw's 0.15 s,
#       not the TFTP timeout option: its 1 s minimum would make a cell at
#       20 % loss and windowsize 1 take minutes. 1024-byte blocks.
#   fault_http_get_midstream
#       the upstream fails after part of the body (short body, an HTTP 500
#       status line where a chunk belongs, RST, stall) during a windowed
#       transfer: ERROR 0, and every byte delivered before it was right.
#   fault_http_put_midstream
#       the upstream fails during an upload (an error status after part of
#       the body, RST, no reading, no answer after the body): ERROR per the
#       README's mapping, never a final ACK.
#   fault_http_put_nginx_413
#       nginx refuses a body that grows past client_max_body_size mid-stream:
#       ERROR 3, nothing stored, no temp file left.
#   fault_s3_complete_error
#       the bucket is deleted between the last UploadPart and
#       CompleteMultipartUpload, and during a single PUT: ERROR 0, no object.
#   fault_vanish_file, fault_vanish_http
#       a client that disappears mid-get and mid-put: the session ends after
#       its retries (timeout=200 retries=3), the backend transfer is aborted,
#       and the gateway's open descriptors are back to where they were.
#
# Every test ends with a good transfer (checksum) on the same gateway.

FAULT_JOBS=${FAULT_JOBS:-3}
FAULT_CELLS=${FAULT_CELLS:-}
FM_BLKSIZE=1024
FM_DIR=""

# ------------------------------------------------------------ the matrix

# fm_faults LEVEL: relay.py's fault options for a loss level in percent
fm_faults() {
    case $1 in
        0) echo "--drop 0 --dup 0 --reorder 0" ;;
        5) echo "--drop 0.05 --dup 0.05 --reorder 0.05 --delay 0.02" ;;
        20) echo "--drop 0.20 --dup 0 --reorder 0" ;;
    esac
}

# fm_cell BACKEND OP WS LOSS SEED: one transfer through its own relay. Runs in
# the background: it reports only through $FM_DIR/TAG.res, one line,
# "ok MS" or "FAIL WHY".
fm_cell() {
    local be=$1 op=$2 ws=$3 loss=$4 seed=$5
    local tag="$be-$op-ws$ws-l$loss"
    local d=$FM_DIR/$tag res=$FM_DIR/$tag.res
    mkdir -p "$d"
    # shellcheck disable=SC2046 # the options are words
    "$PY" "$HERE/relay.py" --target "$HOST:$PORT" $(fm_faults "$loss") --seed "$seed" \
        --hold-max 0.3 --lifetime 150 --stats "$d/relay.json" \
        > "$d/relay.out" 2> "$d/relay.err" < /dev/null &
    local rpid=$! port="" i
    for i in $(seq 1 100); do
        port=$(awk '/^PORT/ {print $2}' "$d/relay.out" 2>/dev/null)
        [ -n "$port" ] && break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        kill -TERM "$rpid" 2>/dev/null; wait "$rpid" 2>/dev/null
        echo "FAIL $tag: relay did not start: $(head -c 200 "$d/relay.err")" > "$res"
        return
    fi
    local opts=(-o "blksize=$FM_BLKSIZE" -o "windowsize=$ws") out rc t0 ms got remote restarts=0
    # tsize on the windowed uploads: the http backend then sends
    # Content-Length, and chunked for windowsize 1
    [ "$op" = put ] && [ "$ws" -gt 1 ] && opts+=(-o "tsize=$(stat -c %s "$FIX/f200k")")
    if [ "$op" = get ]; then
        got=$d/out
    elif [ "$be" = file ]; then
        remote=rw/m-$tag got=$ROOT/rw/m-$tag
    else
        remote=o/m-$tag got=$NGX_ROOT/m-$tag
    fi
    t0=$(now_ms)
    while :; do
        if [ "$op" = get ]; then
            out=$(timeout 120 "$PY" "$HERE/tftpraw.py" get "$HOST" "$port" f200k "$got" \
                "${opts[@]}" -o tsize=0 --timeout 0.15 --retries 25 --dally 0.6 2>&1)
        else
            out=$(timeout 120 "$PY" "$HERE/tftpraw.py" put "$HOST" "$port" "$FIX/f200k" "$remote" \
                "${opts[@]}" --timeout 0.15 --retries 25 2>&1)
        fi
        rc=$?
        # A session that has not heard from its client yet gives up after
        # its first retransmission (3 x timeout: 300 ms here), so a lost
        # first ACK/DATA plus a lost retry ends it before block 1. Real
        # clients then send the request again; so does this one, twice.
        case $out in
            "timeout: no DATA after block 0"|"timeout: no ACK after block 0 "*) ;;
            *) break ;;
        esac
        [ "$restarts" -lt 2 ] || break
        restarts=$((restarts + 1))
    done
    ms=$(($(now_ms) - t0))
    kill -TERM "$rpid" 2>/dev/null
    wait "$rpid" 2>/dev/null
    local stats
    stats=$("$PY" -c 'import json, sys
s = json.load(open(sys.argv[1]))
print(" ".join("%s:in=%d,drop=%d,dup=%d,reord=%d,delay=%d" % (d, v["in"], v["dropped"],
      v["duplicated"], v["reordered"], v["delayed"]) for d, v in sorted(s.items())))' \
        "$d/relay.json" 2>/dev/null)
    printf '%-22s %6d ms  restarts=%d %s | %s\n' "$tag" "$ms" "$restarts" "$stats" "$out" >> "$FM_DIR/log"
    if [ "$rc" -ne 0 ]; then
        echo "FAIL $tag: client exit $rc after $ms ms ($restarts restarts): $out; relay $stats" > "$res"
        return
    fi
    if [ "$loss" = 0 ] && [ "$restarts" -gt 0 ]; then
        echo "FAIL $tag: the transfer had to be restarted on a lossless path: $out" > "$res"
        return
    fi
    if [ ! -f "$got" ]; then
        echo "FAIL $tag: $got missing after a successful $op" > "$res"
        return
    fi
    if [ "$(sha "$got")" != "$(sha "$FIX/f200k")" ]; then
        echo "FAIL $tag: sha256 of the $([ "$op" = get ] && echo received || echo stored) file differs ($(stat -c %s "$got") bytes of $(stat -c %s "$FIX/f200k"))" > "$res"
        return
    fi
    if [[ $out != *"windowsize=$ws "* ]]; then
        echo "FAIL $tag: negotiated other than windowsize $ws: $out" > "$res"
        return
    fi
    if [ "$loss" != 0 ] && ! "$PY" -c 'import json, sys
s = json.load(open(sys.argv[1]))
sys.exit(0 if s["c2s"]["dropped"] + s["s2c"]["dropped"] > 0 else 1)' "$d/relay.json"; then
        echo "FAIL $tag: the relay dropped nothing at loss $loss %: $stats" > "$res"
        return
    fi
    echo "ok $ms" > "$res"
}

# fm_matrix BACKEND: every cell, FAULT_JOBS at a time; fails naming each
# failed cell
fm_matrix() {
    local be=$1 op ws loss tag seed=0 pids=() pid alive p
    FM_DIR=$T/matrix
    mkdir -p "$FM_DIR"
    : > "$FM_DIR/log"
    for loss in 0 5 20; do
        for ws in 1 8 64; do
            for op in get put; do
                seed=$((seed + 1))
                tag="$be-$op-ws$ws-l$loss"
                [ -z "$FAULT_CELLS" ] || [[ $tag == *"$FAULT_CELLS"* ]] || continue
                # bounded: a cell ends within its client's 120 s timeout
                while :; do
                    alive=()
                    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
                    [ ${#alive[@]} -lt "$FAULT_JOBS" ] && break
                    wait -n "${alive[@]}" 2>/dev/null
                done
                fm_cell "$be" "$op" "$ws" "$loss" "$((seed * 7919 + ${#be}))" &
                pid=$!
                track "$pid"
                pids+=("$pid")
            done
        done
    done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; untrack "$pid"; done
    sort "$FM_DIR/log" > "$T/matrix.txt"
    local bad=() n=0 f
    for f in "$FM_DIR"/*.res; do
        [ -f "$f" ] || continue
        n=$((n + 1))
        read -r p _ < "$f"
        [ "$p" = ok ] || bad+=("$(cat "$f")")
    done
    [ "$n" -gt 0 ] || { fail "no matrix cell ran (FAULT_CELLS=$FAULT_CELLS)"; return 1; }
    [ ${#bad[@]} -eq 0 ] || { fail "${#bad[@]} of $n cells failed: $(printf '%s | ' "${bad[@]}")"; return 1; }
    # the 5 % level really duplicated, reordered and delayed: summed over
    # its cells and both directions (one short cell may see none of it)
    if [ -z "$FAULT_CELLS" ]; then
        "$PY" - "$FM_DIR" <<'EOF' || { fail "relay counters at 5 %: $(cat "$FM_DIR/agg")"; return 1; }
import glob, json, os, sys
tot = {"duplicated": 0, "reordered": 0, "delayed": 0}
for p in glob.glob(os.path.join(sys.argv[1], "*-l5", "relay.json")):
    for v in json.load(open(p)).values():
        for k in tot:
            tot[k] += v[k]
open(os.path.join(sys.argv[1], "agg"), "w").write(repr(tot))
sys.exit(0 if all(tot.values()) else 1)
EOF
    fi
    return 0
}

t_fault_matrix_file() {
    gw_up timeout=100 retries=12 || return 1
    fm_matrix file
}

t_fault_matrix_http() {
    nginx_up || return 1
    ln "$FIX/f200k" "$NGX_ROOT/f200k"
    gw_http "$(ngx_url)" timeout=100 retries=12 || return 1
    fm_matrix http
}

# ------------------------------------------------------------ upstream faults

# ft_get_midstream REMOTE EXPECT_CODE: a get (blksize 1468, windowsize 16, tsize)
# whose upstream fails mid-body. FG_OUT: "error CODE MSG bytes=N prefix_ok=0|1",
# or "ok bytes=N" / "timeout ..."; FG_MS its duration. Succeeds when the
# client got ERROR EXPECT_CODE after at least one DATA and every byte before
# it matched badhttp's data().
ft_get_midstream() {
    local remote=$1 want=$2 t0
    shift 2
    t0=$(now_ms)
    FG_OUT=$(timeout 60 "$PY" - "$HERE" "$HOST" "$PORT" "$remote" <<'EOF' 2>&1
import sys
sys.path.insert(0, sys.argv[1])
import tftpraw as T
import badhttp

class Spy(T.Client):
    """Keeps the first copy of every DATA block, to check what was
    delivered before the ERROR."""
    blocks = None

    def recv(self, timeout):
        got = super().recv(timeout)
        if got and got[0] is not None and got[0].op == T.DATA:
            self.blocks.setdefault(got[0].block, got[0].data)
        return got

def prefix(blocks):
    out, i = [], 1
    while i in blocks:
        out.append(blocks[i])
        i += 1
    return b"".join(out)

with Spy(sys.argv[2], int(sys.argv[3]), timeout=0.5, retries=20) as c:
    c.blocks = {}
    opts = [("blksize", "1468"), ("windowsize", "16"), ("tsize", "0")]
    try:
        r = c.get(sys.argv[4], options=opts)
        print("ok bytes=%d" % len(r.data))
    except T.TftpError as e:
        p = prefix(c.blocks)
        print("error %d %s bytes=%d prefix_ok=%d" % (e.code, e.msg, len(p),
              int(p == badhttp.data(len(p)))))
    except T.Timeout as e:
        print("timeout %s" % e)
EOF
    )
    FG_MS=$(($(now_ms) - t0))
    [[ $FG_OUT == "error $want "* ]] ||
        { fail "get $remote: '$FG_OUT' after $FG_MS ms, want ERROR $want"; return 1; }
    [[ $FG_OUT == *" prefix_ok=1" ]] ||
        { fail "get $remote: bytes delivered before the ERROR are not the upstream's: $FG_OUT"; return 1; }
    [[ $FG_OUT == *" bytes=0 "* ]] &&
        { fail "get $remote: ERROR before any DATA ($FG_OUT): not a mid-stream failure"; return 1; }
    return 0
}

t_fault_http_get_midstream() {
    badhttp_up || return 1
    gw_http "$BAD_URL" stall_timeout=1500 || return 1
    local bad=() path
    # a body that ends short of its Content-Length (clean close), and a
    # chunked body cut by an HTTP/1.1 500 status line: the gateway must not
    # take either for the end of the file
    for path in cut/300000 chunked-500/300000 reset; do
        if ft_get_midstream "$path" 0; then
            echo "$path: $FG_OUT ($FG_MS ms)" >> "$T/messages"
            [ "$FG_MS" -lt 5000 ] || bad+=("$path: ERROR after $FG_MS ms")
        else
            bad+=("$REASON")
        fi
        good_transfer "get $path" || return 1
    done
    # a stall: ERROR once stall_timeout (1.5 s) passed with nothing moving
    if ft_get_midstream stall 0; then
        echo "stall: $FG_OUT ($FG_MS ms)" >> "$T/messages"
        [ "$FG_MS" -ge 1300 ] && [ "$FG_MS" -lt 6000 ] ||
            bad+=("stall: ERROR after $FG_MS ms with stall_timeout 1500")
    else
        bad+=("$REASON")
    fi
    good_transfer "get stall" || return 1
    [ ${#bad[@]} -eq 0 ] || { fail "$(printf '%s | ' "${bad[@]}")"; return 1; }
    failure_logged '"cut/300000"' || return 1
    failure_logged '"chunked-500/300000"'
}

# ft_bad_put_rec PATH: badhttp's last log record of a PUT to .../PATH as
# "body_len complete" (empty when none)
ft_bad_put_rec() {
    "$PY" - "$BAD_LOG" "$1" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
p = [r for r in recs if r["method"] == "PUT" and r["target"].endswith("/" + sys.argv[2])]
if p:
    print(p[-1].get("body_len"), int(bool(p[-1].get("complete"))))
EOF
}

t_fault_http_put_midstream() {
    badhttp_up || return 1
    gw_http "$BAD_URL" stall_timeout=1500 || return 1
    local bad=() spec path want ts size rec
    size=$(stat -c %s "$FIX/f2M")
    # PATH:ERROR, each with Content-Length (tsize) and chunked (no tsize);
    # the README maps 401/403 to 2, 413 on a write to 3, others to 0
    for spec in put-500-after/300000:0 put-403-after/300000:2 put-413-after/300000:3 \
        put-reset-after/300000:0; do
        path=${spec%:*} want=${spec#*:}
        for ts in tsize chunked; do
            local opts=(-o blksize=1468 -o windowsize=16)
            [ $ts = tsize ] && opts+=(-o "tsize=$size")
            if raw_expect "$want" put "$FIX/f2M" "o/$ts/_/$path" "${opts[@]}" --retries 10; then
                [ "$want" = 0 ] && [ "${path#put-500}" != "$path" ] && [[ $RAW_OUT != *500* ]] &&
                    bad+=("$ts $path: ERROR message '$RAW_OUT' does not name the status")
                [ "$RAW_MS" -lt 5000 ] || bad+=("$ts $path: ERROR after $RAW_MS ms")
            else
                bad+=("$ts: $REASON")
            fi
            echo "$ts $path: $RAW_OUT ($RAW_MS ms)" >> "$T/messages"
            rec=$(ft_bad_put_rec "$path")
            [ "${rec#* }" = 0 ] || bad+=("$ts $path: badhttp log '$rec', want an incomplete body")
        done
        good_transfer "put $path" || return 1
    done
    # the server stops reading mid-body, or never answers after the body:
    # ERROR 0 after stall_timeout, never the final ACK
    for path in put-stall-after/300000 put-hang; do
        if raw_expect 0 put "$FIX/f5M" "o/_/$path" -o blksize=1468 -o windowsize=16 --retries 20; then
            [ "$RAW_MS" -ge 1300 ] || bad+=("$path: ERROR after $RAW_MS ms, before stall_timeout 1500")
            [ "$RAW_MS" -lt 12000 ] || bad+=("$path: ERROR only after $RAW_MS ms")
        else
            bad+=("$REASON")
        fi
        echo "$path: $RAW_OUT ($RAW_MS ms)" >> "$T/messages"
        good_transfer "put $path" || return 1
    done
    [ ${#bad[@]} -eq 0 ] || { fail "${#bad[@]} wrong: $(printf '%s | ' "${bad[@]}")"; return 1; }
    # and a good upload still goes through whole
    raw_ok put "$FIX/f2M" o/good-after -o blksize=1468 -o windowsize=16 || return 1
    "$PY" - "$BAD_LOG" "$(sha "$FIX/f2M")" <<'EOF' || { fail "good upload after the faults: $(tail -n 1 "$BAD_LOG" | cut -c1-300)"; return 1; }
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
p = [r for r in recs if r["method"] == "PUT" and r["target"].endswith("/good-after")]
assert p and p[-1]["complete"] and p[-1]["sha256"] == sys.argv[2], p
EOF
}

# nginx refuses a body past client_max_body_size only once it has grown
# past it when no Content-Length announced it: a 413 mid-stream
t_fault_http_put_nginx_413() {
    nginx_up "location /base/small/ { client_max_body_size 100k; dav_methods PUT; create_full_put_path on; }" ||
        return 1
    gw_http "$(ngx_url)" || return 1
    local size
    size=$(stat -c %s "$FIX/f2M")
    raw_expect 3 put "$FIX/f2M" o/small/chunked -o blksize=1468 -o windowsize=16 || return 1
    echo "chunked: $RAW_OUT ($RAW_MS ms)" >> "$T/messages"
    raw_expect 3 put "$FIX/f2M" o/small/length -o blksize=1468 -o windowsize=16 -o "tsize=$size" ||
        return 1
    echo "length: $RAW_OUT ($RAW_MS ms)" >> "$T/messages"
    ngx_log_has 'PUT "/base/small/chunked" 413' || return 1
    sleep 0.3
    local f
    for f in small/chunked small/length; do
        [ -e "$NGX_ROOT/$f" ] && { fail "refused upload stored as $f ($(stat -c %s "$NGX_ROOT/$f") bytes)"; return 1; }
    done
    local left
    left=$(find "$NGX_DIR/tmp/body" -type f 2>/dev/null | wc -l)
    [ "$left" -eq 0 ] || { fail "nginx temp dir holds $left files after refused uploads"; return 1; }
    # under the limit it works on the same gateway
    raw_ok put "$FIX/f50k" o/small/ok -o blksize=1468 -o windowsize=16 || return 1
    same_file "$NGX_ROOT/small/ok" "$FIX/f50k" "upload under client_max_body_size" || return 1
    raw_ok put "$FIX/f2M" o/big-ok -o blksize=1468 -o windowsize=16 || return 1
    same_file "$NGX_ROOT/big-ok" "$FIX/f2M" "upload elsewhere after the refused ones"
}

# ft_paused_put KEY HOLD_AT_BLOCK [tsize]: an upload of f5M in
# 32768-byte blocks that stops after block HOLD_AT_BLOCK is ACKed, prints
# HELD, waits for $T/go, then sends the rest. Runs in the background:
# FSP_PID, output in $T/put-KEY.out (KEY with / made -)
ft_paused_put() {
    local key=$1 at=$2 ts=${3:-}
    FSP_OUT=$T/put-${key//\//-}.out
    rm -f "$T/go"
    "$PY" - "$HERE" "$HOST" "$PORT" "$FIX/f5M" "$key" "$at" "$T/go" "$ts" > "$FSP_OUT" 2>&1 <<'EOF' &
import os, sys, time
sys.path.insert(0, sys.argv[1])
import tftpraw as T
data = open(sys.argv[4], "rb").read()
at, go = int(sys.argv[6]), sys.argv[7]
held = []
def hook(c, res, n):
    if n >= at and not held:
        held.append(n)
        print("HELD", n, flush=True)
        end = time.monotonic() + 60
        while not os.path.exists(go) and time.monotonic() < end:
            time.sleep(0.05)
opts = [("blksize", "32768"), ("windowsize", "4")]
if sys.argv[8]:
    opts.append(("tsize", str(len(data))))
try:
    with T.Client(sys.argv[2], int(sys.argv[3]), timeout=1.0, retries=10) as c:
        c.put(sys.argv[5], data, options=opts, hook=hook)
    print("ok")
except T.TftpError as e:
    print("error %d %s" % (e.code, e.msg))
except T.Timeout as e:
    print("timeout %s" % e)
EOF
    FSP_PID=$!
    track "$FSP_PID"
}

# ft_paused_finish: wait for the paused upload's client; FSP_RES its last line
ft_paused_finish() {
    local i
    for i in $(seq 1 600); do kill -0 "$FSP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$FSP_PID" 2>/dev/null
    wait "$FSP_PID" 2>/dev/null
    untrack "$FSP_PID"
    FSP_RES=$(tail -n 1 "$FSP_OUT")
}

# ft_wait_for FILE PATTERN SECONDS: an extended-regex line appears in FILE
ft_wait_for() {
    local i
    for i in $(seq 1 $(($3 * 10))); do
        grep -qE -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

ft_s3_bucket_delete() {
    aws3 s3api delete-bucket --bucket "$S3_BUCKET" ||
        { fail "awscli delete-bucket: $(tr '\n' ' ' < "$T/aws.err")"; return 1; }
}

ft_s3_bucket_create() {
    aws3 s3api create-bucket --bucket "$S3_BUCKET" ||
        { fail "awscli create-bucket: $(tr '\n' ' ' < "$T/aws.err")"; return 1; }
}

# The bucket is deleted (awscli, as an operator would) between the last
# UploadPart and CompleteMultipartUpload: f5M is exactly one part of 5 MiB,
# sent in 32 KiB blocks without tsize, so block 160 fills part 1 and the
# empty block 161 only triggers the complete. (Blocks of at least half the
# spool buffer, 64 KiB, are flushed to the spool as they come; smaller ones
# may wait in the buffer for the next block, and part 1 would then start
# only at the commit.) Then a single PUT with Content-Length (tsize) whose
# storage goes half-way through.
t_fault_s3_complete_error() {
    s3_up || return $?
    s3_gw_up || return 1
    [ "$(stat -c %s "$FIX/f5M")" = "$PART" ] || { fail "f5M is not one part_size"; return 1; }
    ft_paused_put cmp/obj 160
    ft_wait_for "$FSP_OUT" '^HELD' 60 || { ft_paused_finish; fail "upload did not reach block 160: $FSP_RES"; return 1; }
    ft_wait_for "$S3_REQLOG" "^PUT /$S3_BUCKET/cmp/obj\?([^ ]*&)?partNumber=1[&= ].* 200 " 20 ||
        { touch "$T/go"; ft_paused_finish; fail "part 1 was not uploaded while the client held back: $(s3_log_tail)"; return 1; }
    s3_req "^POST /$S3_BUCKET/cmp/obj\?uploadId=" > /dev/null &&
        { touch "$T/go"; ft_paused_finish; fail "completed before the last (empty) block"; return 1; }
    ft_s3_bucket_delete || { touch "$T/go"; ft_paused_finish; return 1; }
    touch "$T/go"
    ft_paused_finish
    [[ $FSP_RES == "error 0 "* ]] ||
        { fail "upload whose CompleteMultipartUpload failed: '$FSP_RES', want ERROR 0"; return 1; }
    echo "complete: $FSP_RES" >> "$T/messages"
    s3_req "^POST /$S3_BUCKET/cmp/obj\?uploadId=" | grep -qv ' 200 ' ||
        { fail "no failed CompleteMultipartUpload in the request log: $(s3_log_tail)"; return 1; }
    failure_logged cmp/obj || return 1
    # any failure aborts the multipart upload (s3rver, bucket gone: 404)
    ft_wait_for "$S3_REQLOG" "^DELETE /$S3_BUCKET/cmp/obj\?([^ ]*&)?uploadId=" 3 ||
        { fail "no AbortMultipartUpload after the failed complete: $(s3_log_tail)"; return 1; }
    s3_spool_empty "after a failed complete" || return 1
    ft_s3_bucket_create || return 1
    s3_absent cmp/obj "after a failed complete" || return 1
    # single PUT with Content-Length: s3rver writes the object in place as
    # it arrives, so DeleteBucket half-way answers BucketNotEmpty. Its
    # storage is taken away instead (the bucket's folder removed): the PUT
    # then fails at its end, when s3rver writes the object's metadata.
    ft_paused_put one/obj 80 tsize
    ft_wait_for "$FSP_OUT" '^HELD' 60 || { ft_paused_finish; fail "tsize upload did not reach block 80: $FSP_RES"; return 1; }
    rm -rf -- "${T:?}/s3data/$S3_BUCKET"
    touch "$T/go"
    ft_paused_finish
    echo "single PUT: $FSP_RES" >> "$T/messages"
    [[ $FSP_RES == "error 0 "* ]] ||
        { fail "single PUT whose storage vanished half-way: '$FSP_RES', want ERROR 0; $(s3_log_tail)"; return 1; }
    s3_req "^PUT /$S3_BUCKET/one/obj " | grep -q ' 200 ' &&
        { fail "s3rver answered 200 to the single PUT: $(s3_req "^PUT /$S3_BUCKET/one/obj ")"; return 1; }
    ft_s3_bucket_create || return 1
    s3_absent one/obj "after a failed single PUT" || return 1
    s3_spool_empty "after the failed single PUT" || return 1
    # the gateway goes on: an upload and a read
    hpa octet put "$FIX/f513" after/obj || return 1
    s3_check_obj after/obj "$FIX/f513" "upload after the failed ones" || return 1
    hpa octet get after/obj "$T/back" || return 1
    same_file "$T/back" "$FIX/f513" "get after the failed uploads"
}

# ------------------------------------------------------------ vanishing client

# ft_gw_fds: the gateway's descriptors as "udp=N tcp=N other=N" (sockets
# found by inode in /proc/net; other: files, pipes, eventfds, unix sockets)
ft_gw_fds() {
    "$PY" - "$GW_PID" <<'EOF'
import os, sys
pid = sys.argv[1]
kind = {}
for name, k in (("udp", "udp"), ("udp6", "udp"), ("tcp", "tcp"), ("tcp6", "tcp")):
    try:
        for line in open("/proc/net/" + name).readlines()[1:]:
            kind[line.split()[9]] = k
    except OSError:
        pass
n = {"udp": 0, "tcp": 0, "other": 0}
for fd in os.listdir("/proc/%s/fd" % pid):
    try:
        t = os.readlink("/proc/%s/fd/%s" % (pid, fd))
    except OSError:
        continue
    ino = t[8:-1] if t.startswith("socket:[") else None
    n[kind.get(ino, "other")] += 1
print("udp=%d tcp=%d other=%d" % (n["udp"], n["tcp"], n["other"]))
EOF
}

ft_gw_fd_list() {
    local f
    for f in /proc/"$GW_PID"/fd/*; do readlink "$f"; done 2>/dev/null | sed 's/[0-9]\{4,\}/N/g' | sort | uniq -c
}

# ft_fd_check BEFORE WHAT: UDP sockets (the listener; a session's socket would
# be one more) and other descriptors exactly as BEFORE, TCP connections no
# more (curl may drop an idle pooled one; with TFTPGW_WORKERS=N each worker
# has a pool of its own, so up to N - 1 more). Waits up to 3 s: a backend
# may close after the summary line.
ft_fd_check() {
    local before=$1 now i ub tb ob un tn on pools=$((${TFTPGW_WORKERS:-1} - 1))
    read -r ub tb ob <<< "$(echo "$before" | tr -c '0-9\n' ' ')"
    for i in $(seq 1 30); do
        now=$(ft_gw_fds)
        read -r un tn on <<< "$(echo "$now" | tr -c '0-9\n' ' ')"
        [ "$un" = "$ub" ] && [ "$on" = "$ob" ] && [ "$tn" -le $((tb + pools)) ] && return 0
        sleep 0.1
    done
    fail "$2: the gateway holds $now descriptors, $before before; now: $(ft_gw_fd_list | tr -s ' \n' ' ')"
}

# ft_vanish get|put REMOTE LOCAL: a client that stops answering for good once
# 50 blocks moved (it exits: its port is gone). Then waits for the session's
# summary line (not result=ok) and checks when it came: after the retries of
# timeout=200 retries=3 (about 3 s with backoff), not at once and not never.
ft_vanish() {
    local op=$1 remote=$2 src=$3 out t0 ms i line
    out=$(timeout 60 "$PY" - "$HERE" "$HOST" "$PORT" "$op" "$remote" "$src" <<'EOF' 2>&1
import os, sys
sys.path.insert(0, sys.argv[1])
import tftpraw as T
op, remote, src = sys.argv[4], sys.argv[5], sys.argv[6]
def hook(c, res, n):
    if n >= 50:
        print("VANISHED at block %d" % n, flush=True)
        os._exit(0)
opts = [("blksize", "1024"), ("windowsize", "4")]
with T.Client(sys.argv[2], int(sys.argv[3]), timeout=1.0, retries=5) as c:
    if op == "get":
        c.get(remote, options=opts, hook=hook)
    else:
        c.put(remote, open(src, "rb").read(), options=opts, hook=hook)
print("FINISHED")
EOF
    )
    t0=$(now_ms)
    [[ $out == "VANISHED"* ]] || { fail "vanishing $op client: $out"; return 1; }
    # the session is still there: its socket is counted (so ft_fd_check can
    # see one that is never closed)
    local during
    during=$(ft_gw_fds)
    echo "$op $remote: descriptors while the session waits: $during" >> "$T/messages"
    [ "$(echo "$during" | sed 's/^udp=\([0-9]*\).*/\1/')" -ge 2 ] ||
        { fail "$op $remote: no session socket counted after the client vanished ($during)"; return 1; }
    for i in $(seq 1 150); do
        line=$(grep -F "file=\"$remote\"" "$GW_LOG" | grep -E 'result=' | tail -n 1)
        [ -n "$line" ] && break
        sleep 0.1
    done
    ms=$(($(now_ms) - t0))
    [ -n "$line" ] || { fail "$op $remote: no summary line 15 s after the client vanished"; return 1; }
    echo "$op $remote: ended after $ms ms: $line" >> "$T/messages"
    [[ $line == *result=ok* ]] && { fail "$op $remote: a vanished client's transfer logged ok: $line"; return 1; }
    [ "$ms" -ge 1000 ] && [ "$ms" -le 10000 ] ||
        { fail "$op $remote: session ended $ms ms after the client vanished, want about 3 s (timeout=200 retries=3)"; return 1; }
    return 0
}

# ft_settle REMOTE...: wait (up to 8 s) until each transfer's summary line is
# logged, so a session that dallies after its final ACK is gone
ft_settle() {
    local r i
    for r in "$@"; do
        for i in $(seq 1 80); do
            grep -qF "file=\"$r\"" "$GW_LOG" && break
            sleep 0.1
        done
    done
}

t_fault_vanish_file() {
    [ -n "$PEER" ] && { REASON="gateway-specific (/proc of the gateway)"; return 77; }
    gw_up timeout=200 retries=3 || return 1
    # warm up: whatever the first transfers allocate for good is in BEFORE
    hpa octet get f50k "$T/w1" || return 1
    hpa octet put "$FIX/f50k" rw/warm || return 1
    local before listing after
    ft_settle f50k rw/warm
    before=$(ft_gw_fds)
    ft_gw_fd_list > "$T/fds-before"
    echo "descriptors before: $before" >> "$T/messages"
    listing=$(cd "$ROOT" && find . -print | sort)
    ft_vanish get f5M "" || return 1
    ft_vanish put rw/vanished "$FIX/f5M" || return 1
    ft_fd_check "$before" "after a vanished get and put" || return 1
    ft_gw_fd_list > "$T/fds-after"
    after=$(cd "$ROOT" && find . -print | sort)
    [ "$listing" = "$after" ] ||
        { fail "root changed by the vanished upload: $(diff <(echo "$listing") <(echo "$after") | grep '^[<>]' | head -n 5 | tr '\n' ' ')"; return 1; }
    hpa octet get f5M "$T/good" || return 1
    same_file "$T/good" "$FIX/f5M" "get after the vanished clients" || return 1
    hpa octet put "$FIX/f513" rw/after || return 1
    same_file "$ROOT/rw/after" "$FIX/f513" "put after the vanished clients" || return 1
    ft_fd_check "$before" "after the good transfers" || return 1
    echo "descriptors at the end: $(ft_gw_fds)" >> "$T/messages"
}

t_fault_vanish_http() {
    nginx_up || return 1
    ln "$FIX/f40M" "$NGX_ROOT/f40M"
    ln "$FIX/f50k" "$NGX_ROOT/f50k"
    gw_http "$(ngx_url)" timeout=200 retries=3 || return 1
    hpa octet get f50k "$T/w1" || return 1
    hpa octet put "$FIX/f50k" o/warm || return 1
    local before
    ft_settle f50k o/warm
    before=$(ft_gw_fds)
    ft_gw_fd_list > "$T/fds-before"
    echo "descriptors before: $before" >> "$T/messages"
    # get: 40 MiB cannot fit in the buffers between nginx and the paused
    # transfer, so nginx finishes (logs) the request only when the gateway
    # closes the connection
    ft_vanish get f40M "" || return 1
    ft_wait_for "$NGX_DIR/logs/access.log" '^GET "/base/f40M" ' 5 ||
        { fail "nginx still sending f40M 5 s after the session ended: the GET was not aborted"; return 1; }
    local why
    why=$(grep -F 'GET /base/f40M ' "$NGX_DIR/logs/error.log" | grep -E 'prematurely closed|reset by peer|Broken pipe')
    echo "nginx: $why" >> "$T/messages"
    [ -n "$why" ] ||
        { fail "nginx's error log does not show the client closing mid-response: $(tail -n 3 "$NGX_DIR/logs/error.log" | tr '\n' ' ')"; return 1; }
    # put (chunked, no tsize): aborted, so nginx stores nothing
    ft_vanish put o/vanished "$FIX/f5M" || return 1
    sleep 0.5
    [ -e "$NGX_ROOT/vanished" ] &&
        { fail "vanished upload stored by nginx ($(stat -c %s "$NGX_ROOT/vanished") bytes)"; return 1; }
    if grep -F 'PUT "/base/vanished"' "$NGX_DIR/logs/access.log" | grep -qE '" 20[0-9] '; then
        fail "nginx answered 2xx to the vanished upload"; return 1
    fi
    local left
    left=$(find "$NGX_DIR/tmp/body" -type f 2>/dev/null | wc -l)
    [ "$left" -eq 0 ] || { fail "nginx temp dir holds $left files after the vanished upload"; return 1; }
    ft_fd_check "$before" "after a vanished get and put" || return 1
    ft_gw_fd_list > "$T/fds-after"
    hpa octet get f50k "$T/good" || return 1
    same_file "$T/good" "$FIX/f50k" "get after the vanished clients" || return 1
    hpa octet put "$FIX/f513" o/after || return 1
    same_file "$NGX_ROOT/after" "$FIX/f513" "put after the vanished clients" || return 1
    ft_fd_check "$before" "after the good transfers" || return 1
    echo "descriptors at the end: $(ft_gw_fds)" >> "$T/messages"
}

# ------------------------------------------------------------ the list

run_test fault_matrix_file          gw_only t_fault_matrix_file
run_test fault_matrix_http          hx t_fault_matrix_http
run_test fault_http_get_midstream   hx t_fault_http_get_midstream
run_test fault_http_put_midstream   hx t_fault_http_put_midstream
run_test fault_http_put_nginx_413   hx t_fault_http_put_nginx_413
run_test fault_s3_complete_error    sx t_fault_s3_complete_error
run_test fault_vanish_file          t_fault_vanish_file
run_test fault_vanish_http          hx t_fault_vanish_http
