# tests/integration/remap.sh - tftpd-hpa remap files (sourced by run.sh; bash).
#
# The same remap file and the same requests against Debian's in.tftpd
# (tftpd-hpa, unpacked privately into build/peers like tests/bench/run.sh
# does, never installed) and against tftpgw --root DIR --remap FILE: each
# request must give the same file (sha256) or the same TFTP error code, and
# the result the table below says. Where tftpgw differs on purpose (a
# remapped name that climbs out of the root) both answers are asserted.
# Then: reload re-reads the file, `remap =` in a route, --check-config.

RM_PEERS=$REPO/build/peers
RM_LIB=$RM_PEERS/usr/lib/x86_64-linux-gnu:$RM_PEERS/lib/x86_64-linux-gnu
RM_HPA=$RM_PEERS/usr/sbin/in.tftpd

# rm_peer: in.tftpd unpacked with its libraries, or REASON and 77
rm_peer() {
    if [ ! -x "$RM_HPA" ]; then
        mkdir -p "$RM_PEERS/debs" && chmod 777 "$RM_PEERS/debs" # apt's _apt user writes here
        (cd "$RM_PEERS/debs" &&
            { timeout 60 apt-get download tftpd-hpa libwrap0 > /dev/null 2>&1 ||
              { timeout 60 apt-get update -qq > /dev/null 2>&1 &&
                timeout 60 apt-get download tftpd-hpa libwrap0 > /dev/null 2>&1; }; }) ||
            { REASON="apt-get download tftpd-hpa libwrap0 failed: no reference server"; return 77; }
        local d
        for d in "$RM_PEERS"/debs/tftpd-hpa_*.deb "$RM_PEERS"/debs/libwrap0_*.deb; do
            dpkg -x "$d" "$RM_PEERS" || { REASON="dpkg -x $d failed"; return 77; }
        done
    fi
    if LD_LIBRARY_PATH=$RM_LIB ldd "$RM_HPA" 2>/dev/null | grep -q 'not found'; then
        REASON="in.tftpd: a library is missing: $(LD_LIBRARY_PATH=$RM_LIB ldd "$RM_HPA" | grep 'not found' | head -n 1)"
        return 77
    fi
    return 0
}

# The rule file: every flag tftpd-hpa 5.2 has (r g i e s a G P ~; 4 and 6
# in the unit tests) and every substitution (\0..\9 \i \x \U \E \# \SPACE).
rm_rules() {
    cat > "$1" <<'EOF'
# remap rules shared by in.tftpd and tftpgw
rg \\ /                               # r g: Windows separators (\boot\x86)
r ^/                                  # a leading slash goes
rs ^loop(.*)$ loop\1                  # restarts for ever: the step limit
a ^secret                             # refused, tftpd-hpa's own text
a ^private/(.*) no\ \1\ for\ \i       # refused with a message (\1 \i \SPACE)
ri ^PXE/(.*)$ pxe/\1                  # i: any case
re ^menu$ pxe/menu.cfg                # e: the next rule never sees it
r menu ZZZ
rs ^old/(.*)$ \1                      # s: strip every old/, from the top again
r ^ip$ by-ip/\i                       # \i
r ^hex$ by-hex/\x                     # \x (PXELINUX's config names)
r ^(.)(.)(.)\.swap$ \3\2\1            # \1..\3
r ^whole-(.*)$ w/\0                   # \0
r ^up-(.*)$ \U\1\E.txt                # \U \E
r ^hash$ a\#b                         # \#
rG ^get/(.*)$ \1                      # G: reads only
rP ^up/(.*)$ in/\i-\1                 # P: writes only
aP ^ro/                               # P: writes refused, reads not
r ^escape$ ../../etc/passwd           # a name that climbs out of the root
r ^abs$ /etc/hostname                 # an absolute name
e~ ^deep/                             # ~: all but deep/ stop here
r ^deep/ dir/
EOF
}

rm_tree() {
    local d=$1
    mkdir -p "$d"/{boot/x86,pxe,by-ip,by-hex,w,dir,ro,etc,in}
    echo "boot file" > "$d/boot/x86/file.bin"
    head -c 3000 /dev/urandom > "$d/a.txt"
    echo "pxelinux" > "$d/pxe/pxelinux.0"
    echo "menu cfg" > "$d/pxe/menu.cfg"
    echo "by ip" > "$d/by-ip/127.0.0.1"
    echo "by hex" > "$d/by-hex/7F000001"
    echo "swapped" > "$d/cba"
    echo "whole" > "$d/w/whole-x"
    echo "upper" > "$d/ABC.txt"
    echo "hash" > "$d/a#b"
    echo "deep" > "$d/dir/f"
    echo "read-only" > "$d/ro/file"
    echo "in-root passwd" > "$d/etc/passwd"
    echo "in-root hostname" > "$d/etc/hostname"
    echo "secret" > "$d/secret.txt"
    chmod -R a+rX "$d"
    chmod 777 "$d/in" # in.tftpd writes as nobody
}

# rm_get PORT NAME: "ok SHA" or "error CODE" (tftpraw.py: 100+code)
rm_get() {
    local out="$T/got.$1" rc
    rm -f "$out"
    timeout 20 "$PY" "$HERE/tftpraw.py" get 127.0.0.1 "$1" "$2" "$out" > "$T/raw.$1" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then echo "ok $(sha "$out")"
    elif [ $rc -gt 100 ]; then echo "error $((rc - 100))"
    else echo "client rc $rc: $(tail -n 1 "$T/raw.$1")"; fi
}

# The requests: NAME and what both servers must answer (a file under the
# root, or error CODE).
RM_CASES=(
    '\boot\x86\file.bin'  boot/x86/file.bin
    /a.txt                a.txt
    secret.txt            'error 2'
    private/key           'error 2'
    loop                  'error 2'
    pXe/pxelinux.0        pxe/pxelinux.0
    menu                  pxe/menu.cfg
    old/old/a.txt         a.txt
    ip                    by-ip/127.0.0.1
    hex                   by-hex/7F000001
    abc.swap              cba
    whole-x               w/whole-x
    up-abc                ABC.txt
    hash                  'a#b'
    get/a.txt             a.txt
    up/a.txt              'error 1'
    ro/file               ro/file
    abs                   etc/hostname
    deep/f                dir/f
    nothere               'error 1'
)

t_remap_vs_hpa() {
    [ -n "$PEER" ] && { REASON="gateway-specific"; return 77; }
    rm_peer || return $?
    local H=$T/hpa G=$T/gw rules=$T/remap.rules hport gport hpid i name want wantv h g
    rm_tree "$H"
    mkdir -p "$G" && cp -a "$H/." "$G/"
    rm_rules "$rules"
    hport=$(free_port)
    env LD_LIBRARY_PATH="$RM_LIB" "$RM_HPA" -L -a "127.0.0.1:$hport" -s -c -m "$rules" "$H" \
        > "$T/hpa.log" 2>&1 < /dev/null &
    hpid=$!
    track "$hpid"
    for i in $(seq 1 50); do udp_bound "$hport" && break; sleep 0.1; done
    udp_bound "$hport" || { stop_pid "$hpid"; REASON="in.tftpd did not bind: $(tail -n 2 "$T/hpa.log")"; return 1; }
    gw_cli --root "$G" --remap "$rules" --write create || { stop_pid "$hpid"; return 1; }
    gport=$PORT
    printf '%-22s %-22s %-s\n' REQUEST EXPECTED RESULT > "$T/table"
    for ((i = 0; i < ${#RM_CASES[@]}; i += 2)); do
        name=${RM_CASES[i]} want=${RM_CASES[i + 1]}
        if [[ $want == error* ]]; then wantv=$want; else wantv="ok $(sha "$H/$want")"; fi
        h=$(rm_get "$hport" "$name") g=$(rm_get "$gport" "$name")
        printf '%-22s %-22s in.tftpd=%s tftpgw=%s\n' "$name" "$want" "${h:0:11}" "${g:0:11}" >> "$T/table"
        [ "$h" = "$wantv" ] || { stop_pid "$hpid"; fail "in.tftpd: $name gave '$h', want $want"; return 1; }
        [ "$g" = "$wantv" ] || { stop_pid "$hpid"; fail "tftpgw: $name gave '$g', want $want (in.tftpd agrees with the table)"; return 1; }
    done
    # A name remapped out of the root: in.tftpd's chroot (-s) serves the
    # root's own etc/passwd; tftpgw refuses the climb (invariant 5), and so
    # it does for a client's own "../".
    h=$(rm_get "$hport" escape) g=$(rm_get "$gport" escape)
    [ "$h" = "ok $(sha "$H/etc/passwd")" ] || { stop_pid "$hpid"; fail "in.tftpd escape: '$h'"; return 1; }
    [ "$g" = "error 2" ] || { stop_pid "$hpid"; fail "tftpgw escape: '$g', want error 2"; return 1; }
    printf '%-22s %-22s in.tftpd=%s tftpgw=%s\n' escape "(differs)" "${h:0:11}" "$g" >> "$T/table"
    # writes: the P rule names the stored file, the P abort refuses
    head -c 700 /dev/urandom > "$T/upload"
    timeout 20 "$PY" "$HERE/tftpraw.py" put 127.0.0.1 "$hport" "$T/upload" up/f1 > /dev/null 2>&1 ||
        { stop_pid "$hpid"; fail "in.tftpd put up/f1 failed"; return 1; }
    timeout 20 "$PY" "$HERE/tftpraw.py" put 127.0.0.1 "$gport" "$T/upload" up/f1 > /dev/null 2>&1 ||
        { stop_pid "$hpid"; fail "tftpgw put up/f1 failed"; return 1; }
    same_file "$H/in/127.0.0.1-f1" "$T/upload" "in.tftpd stored in/127.0.0.1-f1" || { stop_pid "$hpid"; return 1; }
    same_file "$G/in/127.0.0.1-f1" "$T/upload" "tftpgw stored in/127.0.0.1-f1" || { stop_pid "$hpid"; return 1; }
    [ -e "$G/up/f1" ] && { stop_pid "$hpid"; fail "tftpgw stored up/f1 as asked"; return 1; }
    printf '%-22s %-22s in.tftpd=ok tftpgw=ok\n' "WRQ up/f1" in/127.0.0.1-f1 >> "$T/table"
    timeout 20 "$PY" "$HERE/tftpraw.py" put 127.0.0.1 "$hport" "$T/upload" ro/new > /dev/null 2>&1
    h=$?
    timeout 20 "$PY" "$HERE/tftpraw.py" put 127.0.0.1 "$gport" "$T/upload" ro/new > /dev/null 2>&1
    g=$?
    stop_pid "$hpid"
    [ "$h" = 102 ] && [ "$g" = 102 ] || { fail "WRQ ro/new: in.tftpd rc $h, tftpgw rc $g, want 102 (error 2)"; return 1; }
    [ -e "$H/ro/new" ] || [ -e "$G/ro/new" ] && { fail "ro/new stored"; return 1; }
    printf '%-22s %-22s in.tftpd=error 2 tftpgw=error 2\n' "WRQ ro/new" "error 2" >> "$T/table"
    # the transfer line names both: file= as served, asked= as sent
    log_has 'file="pxe/menu.cfg"' || return 1
    grep -F 'file="pxe/menu.cfg"' "$GW_LOG" | grep -qF 'asked="menu"' ||
        { fail "no asked=\"menu\" on the transfer line"; return 1; }
    [ "${RM_TABLE:-0}" = 1 ] && cat "$T/table"
    return 0
}

# SIGHUP re-reads the --remap file; a broken file keeps the old rules
t_remap_reload() {
    [ -n "$PEER" ] && { REASON="gateway-specific"; return 77; }
    echo one > "$ROOT/one" && echo two > "$ROOT/two"
    echo 'r ^x$ one' > "$T/rules"
    gw_cli --root "$ROOT" --remap "$T/rules" || return 1
    hpa octet get x "$T/out" || return 1
    same_file "$T/out" "$ROOT/one" "x before reload" || return 1
    echo 'r ^x$ two' > "$T/rules"
    kill -HUP "$GW_PID"
    local i
    for i in $(seq 1 50); do grep -q 'reload: 1 remap rules' "$GW_LOG" && break; sleep 0.1; done
    hpa octet get x "$T/out" || return 1
    same_file "$T/out" "$ROOT/two" "x after reload" || return 1
    printf 'r ^x$ one\nq bad line\n' > "$T/rules"
    kill -HUP "$GW_PID"
    for i in $(seq 1 50); do grep -q 'reload refused' "$GW_LOG" && break; sleep 0.1; done
    log_has "reload refused, running remap rules kept: $T/rules:2: invalid flag 'q'" || return 1
    hpa octet get x "$T/out" || return 1
    same_file "$T/out" "$ROOT/two" "x after a refused reload" || return 1
}

# `remap =` in a route; the remapped name is routed again, so another
# route's rules (read = no here) and the root still hold
t_remap_route() {
    [ -n "$PEER" ] && { REASON="gateway-specific"; return 77; }
    mkdir -p "$ROOT/b" "$ROOT/c" && echo bee > "$ROOT/b/f" && echo sea > "$ROOT/c/f"
    printf 'r ^a/up$ ../f0\nr ^a/two/(.*)$ b/\\1\nr ^a/(.*)$ c/\\1\n' > "$T/rules"
    PORT=$(free_port)
    cat > "$T/gw.ini" <<EOF
[server]
listen = 127.0.0.1:$PORT
[backend files]
type = file
root = $ROOT
[route b]
match = b/
backend = files
read = no
[route a]
match = a
backend = files
remap = $T/rules
[route all]
match =
backend = files
EOF
    timeout 20 "$GW" --check-config "$T/gw.ini" > "$T/check" 2>&1 ||
        { fail "--check-config refused a good remap: $(tail -n 2 "$T/check")"; return 1; }
    grep -qF "remap $T/rules (3 rules)" "$T/check" ||
        { fail "--check-config does not show the remap file: $(grep '^route a' "$T/check")"; return 1; }
    start_gateway "$GW" --config "$T/gw.ini" || return 1
    hpa octet get a/f "$T/out" || return 1
    same_file "$T/out" "$ROOT/c/f" "a/f remapped to c/f" || return 1
    hpa_expect 2 octet get a/two/f "$T/out" || return 1 # to b/f: b/ is read = no
    hpa_expect 2 octet get a/up "$T/out" || return 1   # remapped to ../f0: refused
    hpa_expect 1 octet get a/none "$T/out" || return 1  # to c/none: not found
    # bad files are refused at load with the file's line
    printf 'r a b\nr a(b c\n' > "$T/rules"
    timeout 20 "$GW" --check-config "$T/gw.ini" > "$T/check" 2>&1 &&
        { fail "--check-config accepted a bad remap file"; return 1; }
    grep -qF "[route a] remap: $T/rules:2: bad regex" "$T/check" ||
        { fail "--check-config said: $(tail -n 2 "$T/check")"; return 1; }
    return 0
}

run_test remap_vs_tftpd_hpa t_remap_vs_hpa
run_test remap_reload t_remap_reload
run_test remap_route t_remap_route
