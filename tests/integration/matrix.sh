# tests/integration/matrix.sh - the client compatibility matrix (sourced by
# run.sh after http.sh, s3.sh and cache.sh, whose helpers it uses; bash).
#
#   matrix_clients_file, matrix_clients_http, matrix_clients_s3,
#   matrix_clients_cache
#       every client row x get/put x octet/netascii x per-port/single-port
#       against one backend: the file root, nginx (http), s3rver (s3), and a
#       cache in front of nginx. One gateway per backend and port mode, the
#       cells one after the other on it. A cell is a real transfer of about
#       200 kB (octet: random bytes; netascii: text with LF, CRLF and bare
#       CR) checked by sha256: a get compares what the client received, a
#       put what the backend stored, read back from the backend itself (the
#       file root, nginx's directory, s3rver through awscli; the cache's
#       uploads go through to nginx, etc/tftpgw.ini). Every cell also checks
#       the gateway's summary line: result=ok, the mode, and the blksize and
#       windowsize the row asks for (so an option silently dropped is a
#       FAIL). Cache gets read an object not cached yet (a miss, served while
#       it fills) and then once more (a hit); both must be right.
#   matrix_doc
#       turns $WORK/matrix.tsv into docs/compatibility.md with
#       matrix_doc.py: only when the four backend tests above all ran in this
#       run (every cell attempted), so a run with a narrower name filter never
#       overwrites a complete table; MATRIX_DOC=0 writes nothing to the source
#       tree. Otherwise the table goes to $T/compatibility.md (KEEP=1 keeps
#       it) and the test SKIPs saying what is missing.
#
# Rows (mx_label): tftp-hpa `tftp` (it has no option support), atftp with
# no options / blksize+tsize / blksize+tsize+windowsize, curl with its
# defaults / --tftp-blksize / --tftp-no-options, busybox tftp without and
# with -b. busybox always asks for octet (no mode switch), so its netascii
# cells are n.a. curl sends mode netascii (";mode=netascii" in the URL) but
# converts nothing: its netascii get must receive the netascii form of the
# text (CRLF, CR NUL) and its netascii put sends that form, the gateway
# storing the text. iPXE is covered by `make e2e` (tests/e2e/run.sh), which
# writes no machine-readable result: matrix_doc.py adds its row as
# "covered by make e2e".
#
# The port mode is set by matrix.sh (single_port = yes|no); a single_port
# key in TG_SERVER_EXTRA is ignored here, its other keys are kept.
#
#   MATRIX_ROWS="ROW..."  only these rows (ids as in mx_label; the table is
#                    then partial and docs/compatibility.md is not written)
#   MX_BATCH_MAX=S   cells that would start S seconds after their gateway
#                    (default 120) FAIL unrun, so a hanging gateway cannot
#                    hold the suite for 30 s a cell

MX_TSV=$WORK/matrix.tsv
MX_BATCH_MAX=${MX_BATCH_MAX:-120}
MX_BACKENDS=(file http s3 cache)
MX_PMODES=(per-port single-port)
MX_ALL_ROWS="hpa atftp atftp_bs atftp_ws curl curl_bs curl_noopt bb bb_bs"
# shellcheck disable=SC2206 # words
MX_ROWS=(${MATRIX_ROWS:-$MX_ALL_ROWS})
MX_WS=16

declare -A MX_RES=() MX_WHY=() MX_MS=() MX_XF=() MX_STAT=()
MX_CELLS=()
MX_STOP=()

# shellcheck disable=SC2016 # Markdown backticks, not a command
mx_label() {
    case $1 in
        hpa) echo 'tftp-hpa `tftp` (no options)' ;;
        atftp) echo 'atftp (no options)' ;;
        atftp_bs) echo 'atftp blksize 1468, tsize' ;;
        atftp_ws) echo "atftp blksize 1468, tsize, windowsize $MX_WS" ;;
        curl) echo 'curl (defaults: tsize, timeout)' ;;
        curl_bs) echo 'curl --tftp-blksize 1468' ;;
        curl_noopt) echo 'curl --tftp-no-options' ;;
        bb) echo 'busybox tftp (no -b)' ;;
        bb_bs) echo 'busybox tftp -b 1468' ;;
    esac
}

# mx_want ROW: the blksize and windowsize the gateway must log for the row
mx_want() {
    case $1 in
        atftp_bs|curl_bs|bb_bs) echo "1468 1" ;;
        atftp_ws) echo "1468 $MX_WS" ;;
        *) echo "512 1" ;;
    esac
}

# mx_na ROW XMODE: why the cell does not apply (a matrix_doc.py note key), or
# nothing
mx_na() {
    case $1/$2 in
        bb/netascii|bb_bs/netascii) echo busybox-octet ;;
    esac
}

# the fixtures: 200000 random bytes, about 150 kB of text and its netascii
# form (LF -> CR LF, CR -> CR NUL), made once
mx_fixtures() {
    [ -f "$FIX/mx.na" ] && return 0
    cp "$FIX/f200k" "$FIX/mx.bin"
    "$PY" - "$FIX/mx.txt" "$FIX/mx.na" <<'EOF'
import random, sys
rnd = random.Random()
words = "boot kernel initrd pxelinux.cfg menu label append root console tftp".split()
out = []
size = 0
while size < 150000:
    line = " ".join(rnd.choice(words) for _ in range(rnd.randint(0, 16)))
    r = rnd.random()
    if r < 0.05:
        line += "\r"              # a CRLF line end in the file
    elif r < 0.10:
        line = line.replace(" ", "\r", 1)   # a bare CR inside a line
    out.append(line + "\n")
    size += len(out[-1])
text = "".join(out).encode("ascii")
if not text.endswith(b"\r"):
    text += b"last line ends in a bare CR\r"
open(sys.argv[1], "wb").write(text)
open(sys.argv[2], "wb").write(text.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n"))
EOF
    chmod 644 "$FIX/mx.bin" "$FIX/mx.txt" "$FIX/mx.na"
}

# mx_key get|put PMODE ROW XMODE: the cell's object key
mx_key() { echo "mx/$1/$2/$3.$4"; }

# mx_src XMODE: the object a get reads
mx_src() { if [ "$1" = octet ]; then echo "$FIX/mx.bin"; else echo "$FIX/mx.txt"; fi; }

# mx_stage DIR: every get object of both port modes under DIR (hard links)
mx_stage() {
    local d=$1 pm row xm k
    for pm in "${MX_PMODES[@]}"; do
        mkdir -p "$d/mx/get/$pm"
        for row in "${MX_ROWS[@]}"; do
            for xm in octet netascii; do
                [ -n "$(mx_na "$row" "$xm")" ] && continue
                k=$(mx_key get "$pm" "$row" "$xm")
                ln -f "$(mx_src "$xm")" "$d/$k" 2>/dev/null || cp "$(mx_src "$xm")" "$d/$k"
            done
        done
    done
    chmod -R a+rX "$d/mx"
}

# ------------------------------------------------------------ the clients

# mx_client ROW get|put XMODE REMOTE LOCAL: one transfer; REASON on failure,
# the client's output in $MX_OUT (atftp's with --trace)
MX_OUT=/dev/null
mx_client() {
    local row=$1 op=$2 xm=$3 r=$4 l=$5 out rc a=()
    case $row in
        hpa)
            if [ "$op" = get ]; then hpa "$xm" get "$r" "$l"; else hpa "$xm" put "$l" "$r"; fi
            rc=$?
            printf '%s\n' "$REASON" > "$MX_OUT"
            return $rc ;;
        atftp*)
            a=(timeout 30 atftp --trace --tftp-timeout 2)
            [ "$xm" = netascii ] && a+=(--option "mode netascii")
            case $row in
                atftp_bs) a+=(--option "blksize 1468" --option "tsize 0") ;;
                atftp_ws) a+=(--option "blksize 1468" --option "tsize 0" --option "windowsize $MX_WS") ;;
            esac
            if [ "$op" = get ]; then a+=(-g); else a+=(-p); fi
            "${a[@]}" -r "$r" -l "$l" "$HOST" "$PORT" > "$MX_OUT" 2>&1
            rc=$?
            # atftp 0.8 may exit 0 after an ERROR from the server
            if [ $rc -ne 0 ] || grep -qiE 'error|abort|timeout' "$MX_OUT"; then
                fail "atftp $op: exit $rc: $(grep -iE 'error|abort|timeout' "$MX_OUT" | head -n 2 | tr '\n' ' ')"
                return 1
            fi
            return 0 ;;
        curl*)
            a=(timeout 30 curl -sS -g --connect-timeout 2 --max-time 25)
            case $row in
                curl_bs) a+=(--tftp-blksize 1468) ;;
                curl_noopt) a+=(--tftp-no-options) ;;
            esac
            local url="tftp://$HOST:$PORT/$r"
            [ "$xm" = netascii ] && url+=";mode=netascii"
            if [ "$op" = get ]; then a+=(-o "$l"); else a+=(-T "$l"); fi
            "${a[@]}" "$url" > "$MX_OUT" 2>&1
            rc=$?
            out=$(head -c 300 "$MX_OUT")
            [ $rc -eq 0 ] && return 0
            fail "curl $op: exit $rc $out"
            return 1 ;;
        bb*)
            a=(timeout 30 busybox tftp)
            [ "$row" = bb_bs ] && a+=(-b 1468)
            if [ "$op" = get ]; then a+=(-g); else a+=(-p); fi
            "${a[@]}" -r "$r" -l "$l" "$HOST" "$PORT" > "$MX_OUT" 2>&1
            rc=$?
            out=$(tail -n 2 "$MX_OUT")
            [ $rc -eq 0 ] && return 0
            fail "busybox tftp $op: exit $rc: $(tr '\n' ' ' <<< "$out")"
            return 1 ;;
    esac
    fail "unknown row $row"
}

# ------------------------------------------------------------ the gateway

# mx_write_config FILE LISTEN BACKEND PMODE
mx_write_config() {
    local file=$1 listen=$2 be=$3 pm=$4 sp=no kv
    [ "$pm" = single-port ] && sp=yes
    {
        echo "; written by tests/integration/matrix.sh"
        echo "[server]"
        echo "listen = $listen"
        echo "single_port = $sp"
        # the single-port column puts on the shared port too
        echo "single_port_writes = $sp"
        for kv in ${TG_SERVER_EXTRA:-}; do
            case ${kv%%=*} in single_port|single_port_writes) ;; *) echo "${kv%%=*} = ${kv#*=}" ;; esac
        done
        echo "timeout = 1000"
        echo "retries = 5"
        echo "max_blksize = 65464"
        echo "max_windowsize = 64"
        # a client that walked away mid-transfer must not hold the stop
        # past gw_stop's 10 s (the session's own backoff runs 31 s)
        echo "drain_timeout = 5"
        case $be in
            file)
                printf '\n[backend b]\ntype = file\nroot = %s\n' "$ROOT" ;;
            http)
                printf '\n[backend b]\ntype = http\nurl = %s\n' "$(ngx_url)" ;;
            s3)
                s3_backend b ;;
            cache)
                printf '\n[backend up]\ntype = http\nurl = %s\n' "$(ngx_url)"
                printf '\n[backend b]\ntype = cache\nupstream = up\ndir = %s\n' "$T/cache-$pm" ;;
        esac
        printf '\n[route all]\nmatch =\nbackend = b\nwrite = overwrite\n'
    } > "$file"
}

# mx_gw_up BACKEND PMODE: the gateway for one batch on a free port
mx_gw_up() {
    HOST=127.0.0.1
    GW_LOG=$T/gw-$2.log
    : > "$GW_LOG"
    for _ in 1 2 3; do
        PORT=$(free_port)
        mx_write_config "$T/gw-$2.ini" "127.0.0.1:$PORT" "$1" "$2"
        chmod 600 "$T/gw-$2.ini"    # the s3 variant holds secrets
        start_gateway "$GW" --config "$T/gw-$2.ini" && return 0
        case $REASON in *"did not bind"*|*"exited at start-up"*) return 1 ;; esac
    done
    return 1
}

# ------------------------------------------------------------ cells

mx_set() {
    local c=$1
    MX_RES[$c]=$2
    MX_WHY[$c]=${3:-}
}

# mx_fail CELL WHY: the first reason a cell failed is kept
mx_fail() {
    [ "${MX_RES[$1]:-}" = FAIL ] && return 0
    mx_set "$1" FAIL "$(printf '%s' "$2" | tr '\t\n' '  ' | cut -c1-300)"
}

now_ms_mx() { echo $(($(date +%s%N) / 1000000)); }

# mx_atftp_bug ROW XMODE: a failed upload that atftp 0.8's trace shows to be
# its own bug, printed as a note key for matrix_doc.py. Both start when the
# gateway ACKs a block inside a window (RFC 7440 4: resend from there):
#   atftp-netascii-rewind  it cannot go back in a netascii file (its
#       converted stream does not seek): it sends DATA of "size -1"
#   atftp-past-end         after going back it loses track of the end: the
#       short final DATA was ACKed, yet it sends a block after it
# Such a cell is XFAIL: in the table, not a failure of the test. Any other
# failure is a FAIL.
mx_atftp_bug() {
    [[ $1 == atftp* ]] || return 1
    if [ "$2" = netascii ] && grep -qE '^sent [0-9]+\. DATA <block: [0-9]+, size -1>' "$MX_OUT"; then
        echo atftp-netascii-rewind
        return 0
    fi
    local bs
    read -r bs _ <<< "$(mx_want "$1")"
    awk -v bs="$bs" '
        /^sent [0-9]+\. DATA <block: [0-9]+, size -?[0-9]+>/ {
            n = split($0, f, /[^0-9-]+/)
            blk = f[n - 2] + 0; size = f[n - 1] + 0
            if (acked && blk == last + 1) found = 1
            if (last == "" && size >= 0 && size < bs) last = blk
        }
        /^received ACK <block: [0-9]+>/ {
            n = split($0, f, /[^0-9]+/)
            if (last != "" && f[n - 1] + 0 == last) acked = 1
        }
        END { exit !found }' "$MX_OUT" || return 1
    echo atftp-past-end
}

# mx_run_cell BACKEND PMODE ROW OP XMODE: the transfer and its client-side
# check; the backend and log checks come after the batch
mx_run_cell() {
    local be=$1 pm=$2 row=$3 op=$4 xm=$5 c="$1/$2/$3/$4/$5" key t0 got want n
    key=$(mx_key "$op" "$pm" "$row" "$xm")
    mkdir -p "$T/out"
    MX_OUT=$T/out/$pm-$row-$op-$xm.txt
    t0=$(now_ms_mx)
    REASON=""
    if [ "$op" = get ]; then
        want=$(mx_src "$xm")
        [ "$xm" = netascii ] && [[ $row == curl* ]] && want=$FIX/mx.na
        # a cache get reads twice: the miss (filling), then the hit
        n=1
        [ "$be" = cache ] && n=2
        local i
        for i in $(seq 1 $n); do
            got=$T/got/$pm-$row-$op-$xm-$i
            if ! mx_client "$row" get "$xm" "$key" "$got"; then
                mx_fail "$c" "get $i of $n: $REASON"
                break
            fi
            same_file "$got" "$want" "get $i of $n" || { mx_fail "$c" "$REASON"; break; }
        done
    else
        local src=$FIX/mx.bin
        [ "$xm" = netascii ] && src=$FIX/mx.txt
        [ "$xm" = netascii ] && [[ $row == curl* ]] && src=$FIX/mx.na
        if ! mx_client "$row" put "$xm" "$key" "$src"; then
            local bug
            if bug=$(mx_atftp_bug "$row" "$xm"); then
                # past-end: the upload itself went through, which the
                # backend and log checks still have to confirm
                if [ "$bug" = atftp-past-end ]; then MX_XF[$c]=$bug; else mx_set "$c" XFAIL "$bug"; fi
            else
                mx_fail "$c" "$REASON"
            fi
        fi
        # what a windowed upload cost the client: a loss-free one sends
        # each block once and gets one ACK a window
        [ "$row" = atftp_ws ] &&
            MX_STAT[$c]="data=$(grep -cE '^sent [0-9]+\. DATA' "$MX_OUT") acks=$(grep -c '^received ACK' "$MX_OUT")"
    fi
    MX_MS[$c]=$(($(now_ms_mx) - t0))
}

# mx_check_log BACKEND PMODE: every cell of the batch has its summary lines in the
# gateway's log (an upload's after its dally: the gateway has stopped, so they
# are all there) with result=ok, its mode, blksize and windowsize
mx_check_log() {
    local be=$1 pm=$2 row op xm c key lines want_n line bs ws
    for row in "${MX_ROWS[@]}"; do
        read -r bs ws <<< "$(mx_want "$row")"
        for op in get put; do
            for xm in octet netascii; do
                c="$be/$pm/$row/$op/$xm"
                [ "${MX_RES[$c]:-}" = PENDING ] || continue
                key=$(mx_key "$op" "$pm" "$row" "$xm")
                lines=$(grep -F " file=\"$key\" " "$GW_LOG" | grep -F ' transfer ')
                want_n=1
                [ "$be" = cache ] && [ "$op" = get ] && want_n=2
                if [ "$(grep -c . <<< "$lines")" != "$want_n" ]; then
                    mx_fail "$c" "$(grep -c . <<< "$lines") summary lines for $key in the gateway log, want $want_n"
                    continue
                fi
                while IFS= read -r line; do
                    case $line in
                        *" result=ok"*) ;;
                        *) mx_fail "$c" "gateway logged: ${line#* transfer }"; continue ;;
                    esac
                    [[ $line == *" mode=$xm "* && $line == *" blksize=$bs "* && $line == *" windowsize=$ws "* ]] ||
                        mx_fail "$c" "want mode=$xm blksize=$bs windowsize=$ws, gateway logged: ${line#* transfer }"
                done <<< "$lines"
            done
        done
    done
}

# mx_stored BACKEND KEY: where the backend's copy of KEY can be read
mx_stored() {
    case $1 in
        file) echo "$ROOT/$2" ;;
        http|cache) echo "$NGX_ROOT/$2" ;;
        s3) echo "$T/s3back/$2" ;;
    esac
}

# mx_check_puts BACKEND: every pending put is stored with the right bytes
mx_check_puts() {
    local be=$1 pm row xm c key want
    if [ "$be" = s3 ]; then
        mkdir -p "$T/s3back/mx"
        aws3 s3 cp --recursive --only-show-errors "s3://$S3_BUCKET/mx/put/" "$T/s3back/mx/put/" ||
            echo "awscli: $(tr '\n' ' ' < "$T/aws.err")" > "$T/s3back.err"
    fi
    for pm in "${MX_PMODES[@]}"; do
        for row in "${MX_ROWS[@]}"; do
            for xm in octet netascii; do
                c="$be/$pm/$row/put/$xm"
                [ "${MX_RES[$c]:-}" = PENDING ] || continue
                key=$(mx_key put "$pm" "$row" "$xm")
                want=$FIX/mx.bin
                [ "$xm" = netascii ] && want=$FIX/mx.txt
                if ! same_file "$(mx_stored "$be" "$key")" "$want" "stored $key"; then
                    [ -s "$T/s3back.err" ] && REASON="$REASON; $(cat "$T/s3back.err")"
                    mx_fail "$c" "$REASON"
                fi
            done
        done
    done
}

# mx_batch BACKEND PMODE: one gateway, every cell of the port mode on it
mx_batch() {
    local be=$1 pm=$2 row op xm c na t0
    mkdir -p "$T/got"
    t0=$SECONDS
    local up=1 why=""
    mx_gw_up "$be" "$pm" || { up=0; why="gateway did not start: $REASON"; }
    for row in "${MX_ROWS[@]}"; do
        for op in get put; do
            for xm in octet netascii; do
                c="$be/$pm/$row/$op/$xm"
                MX_CELLS+=("$c")
                na=$(mx_na "$row" "$xm")
                if [ -n "$na" ]; then
                    mx_set "$c" n.a. "$na"
                    continue
                fi
                mx_set "$c" PENDING
                if [ $up = 0 ]; then
                    mx_fail "$c" "$why"
                elif [ $((SECONDS - t0)) -ge "$MX_BATCH_MAX" ]; then
                    mx_fail "$c" "not run: the batch passed MX_BATCH_MAX=$MX_BATCH_MAX s"
                else
                    mx_run_cell "$be" "$pm" "$row" "$op" "$xm"
                fi
            done
        done
    done
    [ $up = 1 ] || return 0
    # SIGTERM drains: the uploads' summary lines are logged by then. A stop
    # that fails (a crash, a hang) fails the test, not the cells already
    # checked.
    gw_stop || MX_STOP+=("$be/$pm: $REASON")
    mx_check_log "$be" "$pm"
}

# mx_record BACKEND: the backend's cells to $MX_TSV (PENDING ones passed)
mx_record() {
    local be=$1 c res row label pm op xm
    for c in "${MX_CELLS[@]}"; do
        [[ $c == "$be/"* ]] || continue
        IFS=/ read -r _ pm row op xm <<< "$c"
        res=${MX_RES[$c]}
        if [ "$res" = PENDING ] && [ -n "${MX_XF[$c]:-}" ]; then
            res=XFAIL
            MX_WHY[$c]=${MX_XF[$c]}
        fi
        [ "$res" = PENDING ] && res=PASS
        MX_RES[$c]=$res
        label=$(mx_label "$row")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$be" "$pm" "$row" "$label" "$op" "$xm" \
            "$res" "${MX_WHY[$c]:-}" "${MX_MS[$c]:-}" "${MX_STAT[$c]:-}" >> "$MX_TSV"
    done
}

# mx_verdict BACKEND: fail naming every failed cell
mx_verdict() {
    local be=$1 c bad=() n=0
    for c in "${MX_CELLS[@]}"; do
        [[ $c == "$be/"* ]] || continue
        [ "${MX_RES[$c]}" = XFAIL ] &&
            echo "    note: $c: XFAIL, a client bug (${MX_WHY[$c]}, see matrix_doc.py)"
        [ "${MX_RES[$c]}" = FAIL ] || continue
        n=$((n + 1))
        [ $n -le 6 ] && bad+=("$c (${MX_WHY[$c]})")
    done
    local stops=""
    [ ${#MX_STOP[@]} -gt 0 ] && stops="gateway stop: $(printf '%s; ' "${MX_STOP[@]}")"
    if [ $n -eq 0 ]; then
        [ -z "$stops" ] && return 0
        fail "$stops"
        return 1
    fi
    local more=""
    [ $n -gt 6 ] && more=" and $((n - 6)) more"
    fail "$n cells failed: $(printf '%s; ' "${bad[@]}")$more${stops:+; $stops}"
}

# ------------------------------------------------------------ the tests

t_matrix_backend() {
    local be=$1 pm
    mx_fixtures
    case $be in
        file)
            mx_stage "$ROOT" ;;
        http|cache)
            nginx_up || return 1
            mx_stage "$NGX_ROOT" ;;
        s3)
            s3_up || return $?
            mkdir -p "$T/s3stage"
            mx_stage "$T/s3stage"
            aws3 s3 cp --recursive --only-show-errors "$T/s3stage/mx/" "s3://$S3_BUCKET/mx/" ||
                { fail "awscli upload of the get objects: $(tr '\n' ' ' < "$T/aws.err")"; return 1; }
            ;;
    esac
    MX_STOP=()
    for pm in "${MX_PMODES[@]}"; do
        mx_batch "$be" "$pm"
    done
    mx_check_puts "$be"
    mx_record "$be"
    mx_verdict "$be"
}

# mxx FUNCTION ARGS...: run a matrix test, then stop what it started
mxx() {
    [ -n "$PEER" ] && { REASON="gateway-specific (the matrix configures the gateway)"; return 77; }
    "$@"
    gw_verdict $?
    local rc=$?
    peers_stop
    s3_down
    REASON=$GW_REASON
    return $rc
}

t_matrix_doc() {
    [ -s "$MX_TSV" ] || { REASON="no matrix cells ran in this run"; return 77; }
    local out=$REPO/docs/compatibility.md args=() msg
    [ "${MATRIX_DOC:-1}" = 0 ] && out=""
    args=(--results "$MX_TSV" --expect "${MX_BACKENDS[*]}" --rows "$MX_ALL_ROWS"
        --partial-out "$T/compatibility.md"
        --s3rver "$S3_VERSION" --gateway "$("$GW" --version 2>&1 | head -n 1)")
    [ -n "$out" ] && args+=(--out "$out")
    msg=$("$PY" "$HERE/matrix_doc.py" "${args[@]}" 2>&1)
    local rc=$?
    printf '%s\n' "$msg" | sed 's/^/    /'
    case $rc in
        0) return 0 ;;
        3) REASON="not every cell ran in this run: the table went to $T/compatibility.md only"; return 77 ;;
        *) fail "matrix_doc.py exited $rc" ;;
    esac
}

run_test matrix_clients_file  mxx t_matrix_backend file
run_test matrix_clients_http  mxx t_matrix_backend http
run_test matrix_clients_s3    mxx t_matrix_backend s3
run_test matrix_clients_cache mxx t_matrix_backend cache
run_test matrix_doc           t_matrix_doc
