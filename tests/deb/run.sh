#!/bin/bash
# tests/deb/run.sh - the Debian package, installed with apt on this machine.
#
#   make test-deb      (builds it with `make deb` first; needs root)
#
# install      apt-get install ./build/tftpgw_VERSION_ARCH.deb succeeds; the
#              files of the package are there (binary, both man pages, both
#              units, /etc/tftpgw.ini recorded as a conffile); the units are
#              the package's (ExecStart on /usr/bin and /etc/tftpgw.ini, the
#              static user tftpgw, not a dynamic one); the socket is enabled
#              and the service is not; tftpgw is a system user and group
#              with no login and no home; /srv/tftp exists
# check_config tftpgw --check-config /etc/tftpgw.ini exits 0
# serve        /usr/bin/tftpgw -c /etc/tftpgw.ini started as root serves a
#              random file from /srv/tftp (tftp-hpa over IPv4, curl over
#              IPv6; same SHA-256), refuses an upload (read-only), and runs
#              as user tftpgw
# purge        apt-get purge leaves none of the package's files, no
#              /etc/tftpgw.ini, no user or group tftpgw, no /srv/tftp,
#              /var/lib/tftpgw or enable links, no file named *tftpgw* that
#              was not there before, and nothing on UDP port 69
#
# The packaged configuration listens on UDP port 69 of every address. The
# server runs in a network namespace this script creates, so it uses that
# configuration unchanged and neither takes the host's port 69 nor finds it
# taken. A user, group or /srv/tftp that existed before the install is the
# administrator's: postinst leaves it, purge must too, and the test checks
# that instead. Each wait is bounded; about 20 s after the build.
set -u
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO" || exit 1
export DEBIAN_FRONTEND=noninteractive
PASS=0
FAIL=0
NS=tgdeb$$
WORK=$(mktemp -d /tmp/tftpgw-deb.XXXXXX)
GW_PID=
INSTALLED=no
TESTFILE=

ok() { echo "  ok   $*"; }
bad() { echo "  FAIL $*"; FAILED_NOW=1; }
check() { # check DESCRIPTION COMMAND...: one assertion
    local what=$1
    shift
    if "$@" > /dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}
begin() { FAILED_NOW=0; T0=$(date +%s); echo "== $1"; }
finish() {
    if [ "$FAILED_NOW" = 0 ]; then
        PASS=$((PASS + 1)); echo "PASS $1 ($(( $(date +%s) - T0 )) s)"
    else
        FAIL=$((FAIL + 1)); echo "FAIL $1 ($(( $(date +%s) - T0 )) s)"
    fi
}

stop_gw() {
    [ -n "$GW_PID" ] || return 0
    kill -TERM "$GW_PID" 2> /dev/null
    for _ in $(seq 100); do kill -0 "$GW_PID" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$GW_PID" 2> /dev/null
    wait "$GW_PID" 2> /dev/null
    GW_PID=
}

cleanup() {
    stop_gw
    ip netns del "$NS" 2> /dev/null
    [ -n "$TESTFILE" ] && rm -f -- "$TESTFILE"
    # Never leave the package behind, whatever failed.
    if [ "$INSTALLED" = yes ] && dpkg-query -W -f='${Status}' tftpgw 2> /dev/null | grep -q installed; then
        echo "cleanup: purging tftpgw"
        timeout 300 apt-get purge -y -qq tftpgw > /dev/null 2>&1
    fi
    rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

setup_fail() { echo "FAIL setup: $*"; echo "0 passed, 1 failed"; exit 1; }

[ "$(id -u)" = 0 ] || setup_fail "needs root (apt-get install, a network namespace)"
mapfile -t DEBS < <(ls build/tftpgw_*.deb 2> /dev/null)
[ "${#DEBS[@]}" = 1 ] || setup_fail "want exactly one build/tftpgw_*.deb (make deb), found ${#DEBS[@]}"
DEB=$REPO/${DEBS[0]}
if dpkg-query -W -f='${Status}' tftpgw 2> /dev/null | grep -q 'install ok'; then
    setup_fail "a tftpgw package is installed already; not touching it"
fi
if [ -d /run/systemd/system ]; then
    echo "systemd is running: postinst starts tftpgw.socket on the host's UDP port 69"
else
    echo "systemd is not running (PID 1: $(ps -o comm= -p 1)): postinst starts nothing"
fi

# What is there before: the package's paths, names with tftpgw in them, the
# user, group and /srv/tftp, and UDP port 69.
SCAN_DIRS="/etc /lib/systemd /usr/bin /usr/sbin /usr/share/man /usr/share/doc /usr/share/tftpgw /usr/lib /var/lib /var/cache /srv"
scan() { find $SCAN_DIRS -xdev -name '*tftpgw*' 2> /dev/null | sort; }
scan > "$WORK/names.before"
dpkg-deb --fsys-tarfile "$DEB" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' -e '/^$/d' | sort > "$WORK/deb.list"
: > "$WORK/existed"
while read -r p; do [ -e "$p" ] && echo "$p" >> "$WORK/existed"; done < "$WORK/deb.list"
getent passwd tftpgw > /dev/null && USER_BEFORE=yes || USER_BEFORE=no
getent group tftpgw > /dev/null && GROUP_BEFORE=yes || GROUP_BEFORE=no
[ -e /srv/tftp ] && SRV_BEFORE=yes || SRV_BEFORE=no
udp69() { ss -Hulnp 'sport = :69' 2> /dev/null | sort; }
udp69 > "$WORK/udp69.before"
echo "before: user tftpgw $USER_BEFORE, group $GROUP_BEFORE, /srv/tftp $SRV_BEFORE"

test_install() {
    begin install
    INSTALLED=yes
    if timeout 300 apt-get install -y -q "$DEB" > "$WORK/install.log" 2>&1; then
        ok "apt-get install $(basename "$DEB")"
    else
        bad "apt-get install (log below)"; tail -20 "$WORK/install.log"
        finish install
        return
    fi
    check "package installed" sh -c "dpkg-query -W -f='\${Status}' tftpgw | grep -qx 'install ok installed'"
    dpkg -L tftpgw | sed -e '/^\/\.$/d' | sort > "$WORK/dpkg-L"
    check "dpkg -L lists what the .deb holds" diff <(sed '/^\/\.\?$/d' "$WORK/deb.list") <(sed '/^\/\.\?$/d' "$WORK/dpkg-L")
    check "/usr/bin/tftpgw executable, version $(/usr/bin/tftpgw --version 2>&1)" \
        sh -c '[ -x /usr/bin/tftpgw ] && /usr/bin/tftpgw --version | grep -q "^tftpgw [0-9]"'
    check "man page tftpgw(8)" test -f /usr/share/man/man8/tftpgw.8.gz
    check "man page tftpgw.ini(5)" test -f /usr/share/man/man5/tftpgw.ini.5.gz
    check "man -l tftpgw.8 renders" sh -c 'man -l /usr/share/man/man8/tftpgw.8.gz | grep -q check-config'
    local unitdir=""
    for d in /usr/lib/systemd/system /lib/systemd/system; do
        [ -f "$d/tftpgw.service" ] && unitdir=$d && break
    done
    check "units tftpgw.service and tftpgw.socket in ${unitdir:-(none)}" \
        test -n "$unitdir" -a -f "$unitdir/tftpgw.socket"
    check "unit runs /usr/bin/tftpgw --config /etc/tftpgw.ini" \
        grep -qx 'ExecStart=/usr/bin/tftpgw --config /etc/tftpgw.ini' "$unitdir/tftpgw.service"
    check "unit: static user tftpgw (DynamicUser=no, User=tftpgw)" \
        sh -c "grep -qx DynamicUser=no '$unitdir/tftpgw.service' && grep -qx User=tftpgw '$unitdir/tftpgw.service'"
    check "unit names no /etc/tftpgw/ directory" sh -c "! grep -q '/etc/tftpgw/' '$unitdir/tftpgw.service'"
    check "tftpgw.socket enabled (sockets.target.wants)" test -L /etc/systemd/system/sockets.target.wants/tftpgw.socket
    check "tftpgw.service not enabled" test ! -e /etc/systemd/system/multi-user.target.wants/tftpgw.service
    check "/etc/tftpgw.ini is a conffile (dpkg-query Conffiles)" \
        sh -c "dpkg-query -W -f='\${Conffiles}\n' tftpgw | grep -q '^ /etc/tftpgw.ini [0-9a-f]\{32\}'"
    check "/etc/tftpgw.ini in /var/lib/dpkg/info/tftpgw.conffiles" grep -qx /etc/tftpgw.ini /var/lib/dpkg/info/tftpgw.conffiles
    local pw uid sysmax
    pw=$(getent passwd tftpgw)
    uid=$(echo "$pw" | cut -d: -f3)
    sysmax=$(awk '$1 == "SYS_UID_MAX" { print $2 }' /etc/login.defs)
    check "user tftpgw: $pw" test -n "$pw"
    check "tftpgw is a system user (uid $uid <= ${sysmax:-999})" test -n "$uid" -a "${uid:-99999}" -le "${sysmax:-999}"
    if [ "$USER_BEFORE" = no ]; then
        check "no login shell, home /nonexistent (not created)" \
            sh -c "echo '$pw' | grep -Eq ':/nonexistent:(/usr/sbin/nologin|/bin/false)$' && [ ! -e /nonexistent ]"
        check "group tftpgw is the user's primary group" \
            test "$(getent group tftpgw | cut -d: -f3)" = "$(echo "$pw" | cut -d: -f4)"
    fi
    check "/srv/tftp is a directory, root's, mode 755" \
        sh -c '[ -d /srv/tftp ] && [ "$(stat -c %U:%a /srv/tftp)" = root:755 ]'
    finish install
}

test_check_config() {
    begin check_config
    if /usr/bin/tftpgw --check-config /etc/tftpgw.ini > "$WORK/check.out" 2>&1; then
        ok "tftpgw --check-config /etc/tftpgw.ini exits 0"
    else
        bad "tftpgw --check-config /etc/tftpgw.ini:"; cat "$WORK/check.out"
    fi
    check "it reads /srv/tftp read-only" grep -q 'read yes, write off' "$WORK/check.out"
    sed 's/^/    /' "$WORK/check.out"
    finish check_config
}

test_serve() {
    begin serve
    local name sum got i up=no
    name=deb-test-$$-$RANDOM.bin
    TESTFILE=/srv/tftp/$name
    head -c 300000 /dev/urandom > "$TESTFILE" && chmod 0644 "$TESTFILE"
    sum=$(sha256sum < "$TESTFILE" | cut -d' ' -f1)
    if ! ip netns add "$NS" || ! ip -n "$NS" link set lo up; then
        bad "network namespace $NS"
        finish serve
        return
    fi
    # ip netns exec runs tftpgw in its own process: $! is the gateway.
    ip netns exec "$NS" /usr/bin/tftpgw -c /etc/tftpgw.ini > "$WORK/gw.log" 2>&1 &
    GW_PID=$!
    for i in $(seq 50); do
        if ip netns exec "$NS" ss -Huln 'sport = :69' | grep -q '127.0.0.1\|0.0.0.0' &&
            ip netns exec "$NS" ss -Huln 'sport = :69' | grep -q '\[::\]\|\*:69'; then
            up=yes
            break
        fi
        kill -0 "$GW_PID" 2> /dev/null || break
        sleep 0.1
    done
    if [ "$up" = yes ]; then
        ok "tftpgw -c /etc/tftpgw.ini listens on UDP 69 (IPv4 and IPv6) in $NS"
    else
        bad "tftpgw did not come up on port 69 within 5 s; log:"; cat "$WORK/gw.log"
    fi
    # tftp-hpa resolves with AI_ADDRCONFIG, which finds no IPv6 in a
    # namespace with only a loopback: it reads over IPv4, curl over IPv6.
    rm -f "$WORK/hpa.bin"
    (cd "$WORK" && ip netns exec "$NS" timeout 20 tftp 127.0.0.1 -c get "$name" hpa.bin) > /dev/null 2>&1
    got=$(sha256sum < "$WORK/hpa.bin" 2> /dev/null | cut -d' ' -f1)
    check "tftp-hpa get from 127.0.0.1: same SHA-256" test "$got" = "$sum"
    got=$(ip netns exec "$NS" timeout 20 curl -s -g "tftp://[::1]/$name" | sha256sum | cut -d' ' -f1)
    check "curl tftp://[::1]/$name: same SHA-256" test "$got" = "$sum"
    echo upload > "$WORK/up.txt"
    (cd "$WORK" && ip netns exec "$NS" timeout 20 tftp 127.0.0.1 -c put up.txt "up-$name") > "$WORK/put.out" 2>&1
    check "upload refused (read-only): $(tr -d '\n' < "$WORK/put.out")" \
        sh -c "grep -qi 'error' '$WORK/put.out' && [ ! -e '/srv/tftp/up-$name' ]"
    check "gateway runs as user tftpgw (ps: $(ps -o user= -p "$GW_PID" 2> /dev/null))" \
        test "$(ps -o user= -p "$GW_PID" 2> /dev/null)" = tftpgw
    check "it is /usr/bin/tftpgw" test "$(readlink "/proc/$GW_PID/exe" 2> /dev/null)" = /usr/bin/tftpgw
    check "log: dropped to tftpgw by default" grep -q 'running as user tftpgw' "$WORK/gw.log"
    check "log: a transfer line for $name" grep -q "$name" "$WORK/gw.log"
    local pid=$GW_PID
    stop_gw
    check "stopped by pid $pid" sh -c "! kill -0 $pid"
    ip netns del "$NS"
    rm -f -- "$TESTFILE"
    TESTFILE=
    finish serve
}

test_purge() {
    begin purge
    if timeout 300 apt-get purge -y -q tftpgw > "$WORK/purge.log" 2>&1; then
        ok "apt-get purge -y tftpgw"
    else
        bad "apt-get purge (log below)"; tail -20 "$WORK/purge.log"
    fi
    check "package gone from dpkg's database" sh -c "! dpkg-query -W -f='\${Status}' tftpgw 2>/dev/null | grep -q installed"
    local left=0 p
    while read -r p; do
        [ -z "$p" ] || [ "$p" = / ] && continue
        grep -qxF -- "$p" "$WORK/existed" && continue
        if [ -e "$p" ] || [ -L "$p" ]; then echo "    left: $p"; left=$((left + 1)); fi
    done < "$WORK/dpkg-L"
    check "none of the $(wc -l < "$WORK/dpkg-L") paths of dpkg -L left (but those there before)" test "$left" = 0
    check "no /etc/tftpgw.ini" test ! -e /etc/tftpgw.ini
    if [ "$USER_BEFORE" = no ]; then
        check "no user tftpgw" sh -c '! getent passwd tftpgw'
    else
        check "user tftpgw (there before) kept" getent passwd tftpgw
    fi
    if [ "$GROUP_BEFORE" = no ]; then
        check "no group tftpgw" sh -c '! getent group tftpgw'
    else
        check "group tftpgw (there before) kept" getent group tftpgw
    fi
    if [ "$SRV_BEFORE" = no ]; then
        check "no /srv/tftp (created by the package, empty)" test ! -e /srv/tftp
    else
        check "/srv/tftp (there before) kept" test -d /srv/tftp
    fi
    check "no /var/lib/tftpgw or /var/cache/tftpgw" test ! -e /var/lib/tftpgw -a ! -e /var/cache/tftpgw
    check "no enable link for the socket" test ! -e /etc/systemd/system/sockets.target.wants/tftpgw.socket
    scan > "$WORK/names.after"
    if diff "$WORK/names.before" "$WORK/names.after" > "$WORK/names.diff"; then
        ok "no new name *tftpgw* under $SCAN_DIRS"
    else
        bad "names *tftpgw* left:"; sed 's/^/    /' "$WORK/names.diff"
    fi
    udp69 > "$WORK/udp69.after"
    check "UDP port 69 as before the install" diff "$WORK/udp69.before" "$WORK/udp69.after"
    INSTALLED=no
    finish purge
}

test_install
if dpkg-query -W -f='${Status}' tftpgw 2> /dev/null | grep -q 'install ok installed'; then
    test_check_config
    test_serve
fi
test_purge
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
