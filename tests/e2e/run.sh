#!/usr/bin/env bash
# tests/e2e/run.sh - PXE boot end to end: QEMU with Debian's iPXE ROM boots
# through tftpgw (docs/e2e.md).
#
# The boot: DHCP -> iPXE fetches boot.ipxe over TFTP from tftpgw, which
# streams it from nginx (http backend) -> the script fetches boot/vmlinuz
# (a 24 MiB Multiboot test kernel, tests/e2e/kernel.[cS]) and
# boot/initrd.img (6 MiB random) through the route on the cache backend in
# front of the same nginx, prints the sizes (imgstat) and a marker, and boots
# the kernel -> the kernel prints the length and CRC-32 of its payload and of
# the initrd on the serial port and makes QEMU exit with status 33.
#
# Variants:
#   user  QEMU user networking (slirp). slirp answers UDP port 69 of 10.0.2.2
#         itself, so tftpgw listens on a free port of 127.0.0.1 and the DHCP
#         bootfile names it: tftp://10.0.2.2:PORT/boot.ipxe.
#   tap   a network namespace created here with a tap device; dnsmasq in it
#         for DHCP only; tftpgw on port 69 of the namespace's address, nginx
#         on the namespace's loopback. Skipped without /dev/net/tun or netns.
#   uefi  the same namespace and tap, but QEMU runs OVMF (Debian's ovmf) with
#         the NIC's option ROM turned off, so EDK2's own PXE stack fetches the
#         NBP: GRUB's EFI network image, built here with grub-mkimage from
#         Debian's grub-efi-amd64-bin (unpacked under the work directory, the
#         system's boot set-up untouched). GRUB searches its config over TFTP
#         (grub.cfg-01-MAC, grub.cfg-HEXIP..., grub.cfg), and grub.cfg loads
#         the same kernel and initrd with multiboot/module. Skipped without
#         namespaces, tun or OVMF.
#
# Each variant boots E2E_BOOTS times (default 2) against one gateway: the
# first boot fills the cache, the next ones are served from it. Checked: QEMU's
# exit status (33: the kernel ran to its end), the markers, the image sizes
# iPXE reports and the CRC-32s the kernel computed on each serial log, the
# bytes tftpgw logged per transfer, exactly one upstream GET per artifact in
# nginx's access log (the script, not cached, once per boot), the cache's
# counters and copies, and the time. The uefi variant checks nginx's log boot
# by boot: the NBP once per boot (EDK2's size probe and its download share
# one GET through probe_hold), GRUB's missing config names once per run
# (negative_ttl), grub.cfg, kernel and initrd once per run.
#
# Usage: bash tests/e2e/run.sh [user] [tap] [uefi]   (default: all three)
# Environment:
#   TFTPGW_BIN     gateway binary (default: ./tftpgw at the repository root)
#   E2E_BOOTS      boots per variant (default 2; 1 skips the cache hits)
#   E2E_TIMEOUT    seconds one QEMU boot may run (default 90)
#   E2E_MAX        seconds a whole variant may take, set-up included (180)
#   E2E_CORRUPT=1  harness self-check: nginx serves an initrd with one byte
#                  changed, so every variant must FAIL on its CRC-32
#   KEEP=1         keep the work directory (it is kept anyway on failure,
#                  without the big files)
# Exit status: 0 all run variants passed (skips allowed), 1 a failure,
# 2 set-up impossible (packages, kernel build).

set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
GW=${TFTPGW_BIN:-$REPO/tftpgw}
E2E_BOOTS=${E2E_BOOTS:-2}
E2E_TIMEOUT=${E2E_TIMEOUT:-90}
E2E_MAX=${E2E_MAX:-180}
ROM=/usr/lib/ipxe/qemu/efi-virtio.rom
OVMF_CODE=/usr/share/OVMF/OVMF_CODE.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS.fd
KERNEL_SIZE=$((24 << 20))   # payload bytes inside the kernel file
INITRD_SIZE=$((6 << 20))
QEMU_DONE=33                # isa-debug-exit: (0x10 << 1) | 1, see kernel.c
NS_ADDR=192.0.2.1           # TEST-NET-1, only inside our namespace

PIDS=()
NETNS=""
WORK=""
FAILED=0
SUMMARY=()

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { printf '%d.%01d' $(($1 / 1000)) $((($1 % 1000) / 100)); }
say() { echo "e2e: $*"; }

track() { PIDS+=("$1"); }
untrack() {
    local i
    for i in "${!PIDS[@]}"; do [ "${PIDS[$i]}" = "$1" ] && unset 'PIDS[i]'; done
}

# stop_pid PID: TERM, up to 5 s, then KILL; its exit status in STOP_ST
# (no command substitution: a subshell cannot wait for our children)
STOP_ST=""
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    STOP_ST=$?
    untrack "$pid"
}

netns_del() {
    [ -n "$NETNS" ] || return 0
    ip netns exec "$NETNS" ip link del e2etap0 2>/dev/null
    ip netns del "$NETNS" 2>/dev/null
    NETNS=""
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    netns_del
    [ -n "$WORK" ] || return 0
    if [ "${KEEP:-0}" = 1 ]; then
        say "kept $WORK"
    elif [ "$FAILED" -gt 0 ]; then
        find "$WORK" -type f -size +1M -delete
        say "logs of this run kept in $WORK"
    else
        rm -rf -- "$WORK"
    fi
}

# ------------------------------------------------------------------ set-up

# e2e_deps: install what the boot needs and the main test dependencies do
# not bring (QEMU is large, so only the e2e run installs it). Arguments: the
# variants to run; OVMF only when uefi is one of them.
e2e_deps() {
    local pkgs=()
    if [[ " $* " == *" uefi "* ]]; then
        [ -f "$OVMF_CODE" ] || pkgs+=(ovmf)
        # grub-mkimage, unpacked from grub-common, links libdevmapper
        ldconfig -p | grep -q 'libdevmapper\.so\.1\.02\.1 ' || pkgs+=(libdevmapper1.02.1)
        command -v dpkg-deb > /dev/null || pkgs+=(dpkg)
    fi
    command -v nginx > /dev/null || sh "$REPO/tests/deps.sh" || return 1
    command -v qemu-system-x86_64 > /dev/null || pkgs+=(qemu-system-x86)
    [ -f "$ROM" ] || pkgs+=(ipxe-qemu)
    command -v dnsmasq > /dev/null || pkgs+=(dnsmasq-base)
    command -v gcc > /dev/null || pkgs+=(gcc)
    command -v ld > /dev/null || pkgs+=(binutils)
    command -v python3 > /dev/null || pkgs+=(python3)
    command -v ip > /dev/null || pkgs+=(iproute2)
    [ ${#pkgs[@]} -eq 0 ] && return 0
    say "installing ${pkgs[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" ||
        { $sudo apt-get update -qq &&
          DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; }
}

crc32_of() {
    python3 -c 'import sys, zlib
c = 0
with open(sys.argv[1], "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""):
        c = zlib.crc32(b, c)
print("%08x" % c)' "$1"
}

FIX="" KERNEL_LEN="" KERNEL_CRC="" INITRD_CRC="" SCRIPT_LEN="" NBP_LEN="" GRUBCFG_LEN=""
# build_fixtures: random payload and initrd, the test kernel around the payload
build_fixtures() {
    FIX=$WORK/fix
    mkdir -p "$FIX/k"
    head -c "$KERNEL_SIZE" /dev/urandom > "$FIX/k/payload.bin"
    head -c "$INITRD_SIZE" /dev/urandom > "$FIX/initrd.img"
    local kf=(-m32 -std=c11 -O2 -ffreestanding -fno-pic -fno-pie -fno-stack-protector
              -fno-builtin -mgeneral-regs-only -fno-asynchronous-unwind-tables
              -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes)
    if ! { gcc "${kf[@]}" -c "$HERE/kernel.c" -o "$FIX/k/kernel.o" &&
           gcc -m32 -fno-pic -c "-Wa,-I,$FIX/k" "$HERE/kernel.S" -o "$FIX/k/entry.o" &&
           ld -m elf_i386 -nostdlib -z max-page-size=0x1000 --no-warn-rwx-segments \
               -T "$HERE/kernel.ld" -o "$FIX/vmlinuz" "$FIX/k/entry.o" "$FIX/k/kernel.o"; }; then
        say "cannot build the test kernel (gcc -m32, ld -m elf_i386)"
        return 1
    fi
    chmod 644 "$FIX/vmlinuz" "$FIX/initrd.img"
    cp "$HERE/boot.ipxe" "$FIX/boot.ipxe"
    KERNEL_LEN=$(stat -c %s "$FIX/vmlinuz")
    SCRIPT_LEN=$(stat -c %s "$FIX/boot.ipxe")
    KERNEL_CRC=$(crc32_of "$FIX/k/payload.bin")
    INITRD_CRC=$(crc32_of "$FIX/initrd.img")
    say "fixtures: vmlinuz $KERNEL_LEN bytes (payload crc32 $KERNEL_CRC)," \
        "initrd.img $INITRD_SIZE bytes (crc32 $INITRD_CRC)"
}

# build_grub: GRUB's EFI network image for the uefi variant in $FIX/grubx64.efi.
# grub-efi-amd64-bin and grub-common are unpacked under the work directory
# (apt-get download, dpkg -x) rather than installed, so the machine's own boot
# set-up is never touched. The prefix (tftp)/grub makes GRUB's normal module
# search its config on the server it booted from (grub.cfg-01-MAC, then
# grub.cfg-HEXIP shortened a digit at a time, then grub.cfg); multiboot and
# module load the test kernel and initrd as iPXE does. Returns 1 with
# SKIP_REASON set when the packages cannot be had.
build_grub() {
    local g=$WORK/grub mods
    mkdir -p "$g/deb" "$g/root"
    chmod 755 "$g/deb"
    # -o APT::Sandbox::User=root: the download directory is root's
    if ! (cd "$g/deb" && apt-get -o APT::Sandbox::User=root download \
              grub-efi-amd64-bin grub-common) > "$g/apt.log" 2>&1; then
        apt-get update -qq >> "$g/apt.log" 2>&1
        (cd "$g/deb" && apt-get -o APT::Sandbox::User=root download \
             grub-efi-amd64-bin grub-common) >> "$g/apt.log" 2>&1 || {
            SKIP_REASON="cannot download grub-efi-amd64-bin and grub-common: $(tail -n 1 "$g/apt.log")"
            return 1
        }
    fi
    local deb ver
    for deb in "$g"/deb/*.deb; do
        dpkg -x "$deb" "$g/root" || { SKIP_REASON="cannot unpack $deb"; return 1; }
    done
    ver=$(dpkg-deb -f "$(ls "$g"/deb/grub-efi-amd64-bin_*.deb)" Version)
    mods="tftp efinet net normal configfile echo test multiboot boot halt"
    # shellcheck disable=SC2086 # the module list is words
    if ! "$g/root/usr/bin/grub-mkimage" -d "$g/root/usr/lib/grub/x86_64-efi" -O x86_64-efi \
             -p '(tftp)/grub' -o "$FIX/grubx64.efi" $mods > "$g/mkimage.log" 2>&1; then
        SKIP_REASON="grub-mkimage failed: $(tail -n 1 "$g/mkimage.log")"
        return 1
    fi
    rm -rf -- "$g/deb"
    chmod 644 "$FIX/grubx64.efi"
    cp "$HERE/grub.cfg" "$FIX/grub.cfg"
    NBP_LEN=$(stat -c %s "$FIX/grubx64.efi")
    GRUBCFG_LEN=$(stat -c %s "$FIX/grub.cfg")
    say "NBP: grubx64.efi $NBP_LEN bytes (GRUB $ver: $mods)"
}

free_port() {
    python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "$1"
}

# ------------------------------------------------------------------ peers
# Each takes NSX: the command prefix that runs a program in the variant's
# network (empty, or `ip netns exec NS`).
NSX=()

# nginx_up DIR PORT: nginx serving DIR/root on 127.0.0.1:PORT; the access
# log has one line per request: method, URI, status, body bytes sent
NGX_PID=""
nginx_up() {
    local d=$1 port=$2 i
    mkdir -p "$d/logs" "$d/tmp"
    cat > "$d/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log info;
events { worker_connections 64; }
http {
    log_format e2e '\$request_method "\$request_uri" \$status \$body_bytes_sent';
    access_log $d/logs/access.log e2e;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$port;
        root $d/root;
    }
}
EOF
    "${NSX[@]}" nginx -e "$d/logs/error.log" -p "$d" -c "$d/nginx.conf" \
        > "$d/logs/stderr" 2>&1 < /dev/null &
    NGX_PID=$!
    track "$NGX_PID"
    for i in $(seq 1 50); do
        kill -0 "$NGX_PID" 2>/dev/null || break
        # a bare connect: no request line in the access log
        # shellcheck disable=SC2016 # $1 is the inner shell's
        "${NSX[@]}" timeout 1 bash -c 'exec 3<> "/dev/tcp/127.0.0.1/$1"' _ "$port" 2>/dev/null &&
            return 0
        sleep 0.1
    done
    say "nginx did not start: $(tail -n 3 "$d/logs/error.log" "$d/logs/stderr" 2>/dev/null | tr '\n' ' ')"
    return 1
}

# gw_up DIR LISTEN NGINX_PORT [VARIANT]: tftpgw with the test's configuration
GW_PID=""
gw_up() {
    local d=$1 listen=$2 nport=$3 variant=${4:-} i
    cat > "$d/tftpgw.ini" <<EOF
; written by tests/e2e/run.sh
[server]
listen = $listen
log_level = info

; the artifact server
[backend web]
type = http
url = http://127.0.0.1:$nport/e2e/
; a UEFI size probe's GET waits for the download that follows it
probe_hold = 3s

; the edge cache in front of it
[backend edge]
type = cache
upstream = web
dir = $d/cache
; a missing name (GRUB's config search) is asked upstream once a run
negative_ttl = 10m

; kernel and initrd through the cache
[route artifacts]
match = boot
backend = edge
EOF
    if [ "$variant" = uefi ]; then
        # GRUB's config names through the cache too: the missing ones are
        # answered by its negative entries after the first boot. The NBP
        # straight from the HTTP server, uncached: EDK2's size probe and its
        # download reach the route, and probe_hold makes them one GET.
        cat >> "$d/tftpgw.ini" <<EOF

; grub.cfg-01-MAC, grub.cfg-HEXIP..., grub.cfg
[route grubcfg]
match = grub
backend = edge

; the NBP, grubx64.efi, straight from the HTTP server
[route nbp]
match = ""
backend = web
EOF
    else
        cat >> "$d/tftpgw.ini" <<EOF

; the iPXE script straight from the HTTP server
[route script]
match = ""
backend = web
EOF
    fi
    # --allow-root: the test runs as root and the gateway drops nothing.
    "${NSX[@]}" "$GW" --config "$d/tftpgw.ini" --allow-root > "$d/tftpgw.log" 2>&1 < /dev/null &
    GW_PID=$!
    track "$GW_PID"
    for i in $(seq 1 100); do
        kill -0 "$GW_PID" 2>/dev/null || break
        grep -q ' ready ' "$d/tftpgw.log" && return 0
        sleep 0.05
    done
    say "tftpgw did not start: $(tail -n 3 "$d/tftpgw.log" | tr '\n' ' ')"
    return 1
}

# dnsmasq_up DIR BOOTFILE [OPTION...]: DHCP only (port=0) on the tap; RA so that iPXE
# does not wait for IPv6 autoconfiguration, no ping so that the offer is not
# delayed. The offer's siaddr (next-server) is dnsmasq's own address, which
# is tftpgw's: EDK2 and GRUB take the TFTP server from it.
DNSMASQ_PID=""
dnsmasq_up() {
    local d=$1 bootfile=$2 i
    shift 2
    "${NSX[@]}" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface=e2etap0 \
        --bind-dynamic --no-ping --enable-ra --log-dhcp --log-facility=- \
        --dhcp-range=192.0.2.100,192.0.2.150,255.255.255.0,1h --dhcp-range=fd00:feed::,ra-only \
        --dhcp-boot="$bootfile" --no-resolv --no-hosts \
        --dhcp-leasefile="$d/dnsmasq.leases" "$@" \
        > "$d/dnsmasq.log" 2>&1 < /dev/null &
    DNSMASQ_PID=$!
    track "$DNSMASQ_PID"
    for i in $(seq 1 50); do
        kill -0 "$DNSMASQ_PID" 2>/dev/null || break
        grep -q 'sockets bound' "$d/dnsmasq.log" && return 0
        sleep 0.1
    done
    say "dnsmasq did not start: $(tail -n 3 "$d/dnsmasq.log" | tr '\n' ' ')"
    return 1
}

# ------------------------------------------------------------------ checks

ERRS=()
bad() { ERRS+=("$*"); }

# transfer_line LOG FILE: tftpgw's summary line of the RRQ of FILE
transfer_line() { grep -F "op=RRQ file=\"$2\"" "$1"; }

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<< "$1" | head -n 1; }

# check_transfer LOG FILE ROUTE BYTES: one summary line per boot, each on
# ROUTE, result=ok and exactly BYTES sent and acknowledged
check_transfer() {
    local log=$1 file=$2 route=$3 want=$4 lines n line
    lines=$(transfer_line "$log" "$file")
    n=$(grep -c . <<< "$lines")
    [ "$n" = "$E2E_BOOTS" ] || bad "tftpgw logged $n transfers of $file, want $E2E_BOOTS"
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        grep -q "route=$route " <<< "$line" || bad "$file: route $(field "$line" route), want $route"
        grep -q 'result=ok' <<< "$line" || bad "$file: result=$(field "$line" result)"
        [ "$(field "$line" bytes)" = "$want" ] ||
            bad "$file: tftpgw sent bytes=$(field "$line" bytes), want $want"
    done <<< "$lines"
}

# check_upstream LOG URI SIZE N: exactly N requests of URI reached nginx,
# each a GET answered 200 with the whole body
check_upstream() {
    local log=$1 uri=$2 size=$3 want=$4 n ok
    n=$(grep -c -F "\"$uri\"" "$log")
    ok=$(grep -c "^GET \"$uri\" 200 $size\$" "$log")
    if [ "$n" != "$want" ] || [ "$ok" != "$want" ]; then
        bad "nginx: $n requests of $uri ($ok GET 200 with $size bytes), want $want:" \
            "$(grep -F "\"$uri\"" "$log" | tr '\n' '|')"
    fi
}

# a committed cache copy byte-identical to FILE
check_cached() {
    local dir=$1 file=$2 f
    for f in "$dir"/*.data; do
        [ -f "$f" ] && cmp -s "$f" "$file" && return 0
    done
    bad "no copy of $(basename "$file") in the cache directory"
}

# clean_serial FILE: the serial log without CRs, colours and other terminal
# controls (iPXE's, OVMF's) and iPXE's progress counters (a character followed by a backspace)
clean_serial() {
    tr -d '\r' < "$1" 2>/dev/null | sed 's/\x1b\[[0-9;=?]*[A-Za-z]//g' | perl -pe '1 while s/[^\x08]\x08//'
}

# check_boot SERIAL_LOG QEMU_STATUS BOOT: what the guest saw
check_boot() {
    local qrc=$2 b="boot $3" serial
    serial=$(clean_serial "$1")
    case $qrc in
        "$QEMU_DONE") ;;
        124) bad "$b: QEMU still running after ${E2E_TIMEOUT} s (killed)" ;;
        0) bad "$b: QEMU exited 0: the guest reset or iPXE gave up before the kernel's end" ;;
        *) bad "$b: QEMU exit status $qrc, want $QEMU_DONE (kernel end)" ;;
    esac
    grep -q '^E2E-SCRIPT started' <<< "$serial" || bad "$b: the script never ran"
    grep -q '^E2E-FAILED' <<< "$serial" && bad "$b: $(grep '^E2E-FAILED' <<< "$serial")"
    grep -q '^E2E-FETCHED$' <<< "$serial" || bad "$b: no E2E-FETCHED marker"
    grep -q "^vmlinuz : $KERNEL_LEN bytes" <<< "$serial" ||
        bad "$b: imgstat has no 'vmlinuz : $KERNEL_LEN bytes'"
    grep -q "^initrd.img : $INITRD_SIZE bytes" <<< "$serial" ||
        bad "$b: imgstat has no 'initrd.img : $INITRD_SIZE bytes'"
    grep -q "^E2E-PAYLOAD len=$KERNEL_SIZE crc32=$KERNEL_CRC\$" <<< "$serial" ||
        bad "$b: kernel payload '$(grep '^E2E-PAYLOAD' <<< "$serial")', want len=$KERNEL_SIZE crc32=$KERNEL_CRC"
    grep -q "^E2E-MODULE name=tftp://[^ ]*/boot/initrd.img len=$INITRD_SIZE crc32=$INITRD_CRC\$" <<< "$serial" ||
        bad "$b: initrd '$(grep '^E2E-MODULE' <<< "$serial")', want len=$INITRD_SIZE crc32=$INITRD_CRC"
    grep -q '^E2E-KERNEL modules=1 end$' <<< "$serial" || bad "$b: the kernel did not report its end"
}

# check_gateway DIR: what tftpgw sent, what reached nginx, what was cached
check_gateway() {
    local d=$1 hits=$((2 * (E2E_BOOTS - 1)))
    check_transfer "$d/tftpgw.log" boot.ipxe script "$SCRIPT_LEN"
    check_transfer "$d/tftpgw.log" boot/vmlinuz artifacts "$KERNEL_LEN"
    check_transfer "$d/tftpgw.log" boot/initrd.img artifacts "$INITRD_SIZE"
    check_upstream "$d/ngx/logs/access.log" /e2e/boot.ipxe "$SCRIPT_LEN" "$E2E_BOOTS"
    check_upstream "$d/ngx/logs/access.log" /e2e/boot/vmlinuz "$KERNEL_LEN" 1
    check_upstream "$d/ngx/logs/access.log" /e2e/boot/initrd.img "$INITRD_SIZE" 1
    # the counters the cache logs when the gateway stops
    grep -q "cache edge: hits=$hits misses=2 .*upstream_bytes=$((KERNEL_LEN + INITRD_SIZE)) " "$d/tftpgw.log" ||
        bad "cache counters '$(grep -o 'cache edge: hits.*' "$d/tftpgw.log")', want hits=$hits misses=2" \
            "upstream_bytes=$((KERNEL_LEN + INITRD_SIZE))"
    check_cached "$d/cache" "$FIX/vmlinuz"
    check_cached "$d/cache" "$FIX/initrd.img"
}

# ------------------------------------------------------------------ uefi

# Upstream GETs nginx must log per boot in the uefi variant.
#
# EDK2 first probes the NBP's size (RRQ with blksize 1468, windowsize 4,
# tsize 0; ERROR 8 on the OACK), then downloads it: two RRQs on the
# uncached nbp route, one GET per boot with probe_hold (set on [backend web]
# in gw_up; the download adopts the probe's GET).
UEFI_NBP_GETS=1
# Each name in UEFI_MISSING (GRUB's config search and its module lists, none
# of which exists): the first boot asks nginx once per name; the cache's
# negative entries (negative_ttl on [backend edge] in gw_up, longer than a
# run) answer the later boots.
UEFI_MISS_GETS_FIRST=1
UEFI_MISS_GETS_LATER=0

UEFI_MAC=52:54:00:e2:e2:01
UEFI_IP=192.0.2.100
UEFI_MISSING=()
# uefi_expect: the names GRUB asks for that do not exist, in its order:
# grub.cfg-01-MAC, then grub.cfg-HEXIP with the hex address shortened one
# digit at a time (8 names), as GRUB's net config search does before
# grub.cfg; then, once grub.cfg is found, the normal module's lists of
# loadable modules under the prefix (this image carries its modules inside).
uefi_expect() {
    local hex i
    # shellcheck disable=SC2086 # the address's four numbers are words
    hex=$(printf '%02X' ${UEFI_IP//./ })
    UEFI_MISSING=("grub/grub.cfg-01-${UEFI_MAC//:/-}")
    for i in 8 7 6 5 4 3 2 1; do UEFI_MISSING+=("grub/grub.cfg-${hex:0:i}"); done
    for i in command fs crypto terminal; do UEFI_MISSING+=("grub/x86_64-efi/$i.lst"); done
}

# check_boot_uefi SERIAL_LOG QEMU_STATUS BOOT: what the guest saw: EDK2's own
# PXE started, GRUB ran grub.cfg, the kernel checksummed what GRUB loaded
check_boot_uefi() {
    local qrc=$2 b="boot $3" serial
    serial=$(clean_serial "$1")
    case $qrc in
        "$QEMU_DONE") ;;
        124) bad "$b: QEMU still running after ${E2E_TIMEOUT} s (killed)" ;;
        0) bad "$b: QEMU exited 0: GRUB halted (E2E-FAILED) or the firmware gave up" ;;
        *) bad "$b: QEMU exit status $qrc, want $QEMU_DONE (kernel end)" ;;
    esac
    grep -q 'Start PXE over IPv4' <<< "$serial" || bad "$b: EDK2 never started its PXE boot"
    # the size EDK2's probe learnt from the OACK's tsize (RFC 2349)
    grep -q "NBP filesize is $NBP_LEN Bytes" <<< "$serial" ||
        bad "$b: EDK2 did not report 'NBP filesize is $NBP_LEN Bytes'"
    grep -q 'E2E-GRUB started' <<< "$serial" || bad "$b: GRUB never ran grub.cfg"
    grep -q 'E2E-FAILED' <<< "$serial" && bad "$b: grub.cfg could not load the kernel or the initrd"
    grep -q 'E2E-FETCHED' <<< "$serial" || bad "$b: no E2E-FETCHED marker"
    grep -q "^E2E-PAYLOAD len=$KERNEL_SIZE crc32=$KERNEL_CRC\$" <<< "$serial" ||
        bad "$b: kernel payload '$(grep '^E2E-PAYLOAD' <<< "$serial")', want len=$KERNEL_SIZE crc32=$KERNEL_CRC"
    grep -q "^E2E-MODULE name=/boot/initrd.img len=$INITRD_SIZE crc32=$INITRD_CRC\$" <<< "$serial" ||
        bad "$b: initrd '$(grep '^E2E-MODULE' <<< "$serial")', want name=/boot/initrd.img len=$INITRD_SIZE crc32=$INITRD_CRC"
    grep -q '^E2E-KERNEL modules=1 end$' <<< "$serial" || bad "$b: the kernel did not report its end"
}

# slice_gets LINES URI STATUS N WHAT [SIZE]: exactly N requests of URI among
# nginx's access-log LINES, each a GET answered STATUS; with SIZE, at least
# one of them (when N > 0) carried the whole body
slice_gets() {
    local lines=$1 uri=$2 status=$3 want=$4 what=$5 size=${6:-} n ok full
    n=$(grep -c -F "\"$uri\"" <<< "$lines")
    ok=$(grep -c "^GET \"$uri\" $status " <<< "$lines")
    if [ "$n" != "$want" ] || [ "$ok" != "$want" ]; then
        bad "$what: nginx logged $n requests of $uri ($ok GET $status), want $want:" \
            "$(grep -F "\"$uri\"" <<< "$lines" | tr '\n' '|')"
        return
    fi
    if [ -n "$size" ] && [ "$want" -gt 0 ]; then
        full=$(grep -c "^GET \"$uri\" $status $size\$" <<< "$lines")
        [ "$full" -ge 1 ] || bad "$what: no GET of $uri sent the whole $size bytes"
    fi
}

# check_upstream_uefi LOG FROM BOOT: the access-log lines after line FROM are
# boot BOOT's upstream requests: UEFI_NBP_GETS for the NBP, the config, kernel
# and initrd once in boot 1 (cached after), each missing config name
# UEFI_MISS_GETS_FIRST / _LATER times, and nothing else
check_upstream_uefi() {
    local log=$1 from=$2 boot=$3 lines once miss name total
    lines=$(tail -n "+$((from + 1))" "$log")
    if [ "$boot" = 1 ]; then once=1 miss=$UEFI_MISS_GETS_FIRST; else once=0 miss=$UEFI_MISS_GETS_LATER; fi
    slice_gets "$lines" /e2e/grubx64.efi 200 "$UEFI_NBP_GETS" "boot $boot" "$NBP_LEN"
    slice_gets "$lines" /e2e/grub/grub.cfg 200 "$once" "boot $boot" "$GRUBCFG_LEN"
    slice_gets "$lines" /e2e/boot/vmlinuz 200 "$once" "boot $boot" "$KERNEL_LEN"
    slice_gets "$lines" /e2e/boot/initrd.img 200 "$once" "boot $boot" "$INITRD_SIZE"
    for name in "${UEFI_MISSING[@]}"; do
        slice_gets "$lines" "/e2e/$name" 404 "$miss" "boot $boot"
    done
    total=$((UEFI_NBP_GETS + 3 * once + ${#UEFI_MISSING[@]} * miss))
    [ "$(grep -c . <<< "$lines")" = "$total" ] ||
        bad "boot $boot: nginx logged $(grep -c . <<< "$lines") requests, want $total"
}

# check_gateway_uefi DIR: what tftpgw sent and logged over the whole run
check_gateway_uefi() {
    local d=$1 log=$1/tftpgw.log lines n name want hits misses
    # EDK2's probe: the OACK carried the real size, then ERROR 8 (RFC 2347)
    lines=$(transfer_line "$log" grubx64.efi)
    n=$(grep -c "route=nbp .* blksize=1468 windowsize=4 tsize=$NBP_LEN bytes=0 .*result=declined" <<< "$lines")
    [ "$n" = "$E2E_BOOTS" ] || bad "tftpgw logged $n declined size probes of grubx64.efi, want $E2E_BOOTS"
    # and the download itself, continuing the probe's held upstream GET
    n=$(grep -c "route=nbp .* blksize=1468 windowsize=4 held=1 bytes=$NBP_LEN .*result=ok" <<< "$lines")
    [ "$n" = "$E2E_BOOTS" ] || bad "tftpgw logged $n whole downloads of grubx64.efi, want $E2E_BOOTS"
    [ "$(grep -c . <<< "$lines")" = $((2 * E2E_BOOTS)) ] ||
        bad "tftpgw logged $(grep -c . <<< "$lines") RRQs of grubx64.efi, want $((2 * E2E_BOOTS))"
    for name in "${UEFI_MISSING[@]}"; do
        n=$(transfer_line "$log" "$name" | grep -c 'route=grubcfg .*result=error error="file not found"')
        [ "$n" = "$E2E_BOOTS" ] || bad "tftpgw logged $n 'file not found' for $name, want $E2E_BOOTS"
    done
    check_transfer "$log" grub/grub.cfg grubcfg "$GRUBCFG_LEN"
    check_transfer "$log" boot/vmlinuz artifacts "$KERNEL_LEN"
    check_transfer "$log" boot/initrd.img artifacts "$INITRD_SIZE"
    want=$(((5 + ${#UEFI_MISSING[@]}) * E2E_BOOTS))
    n=$(grep -c ' transfer .* op=RRQ ' "$log")
    [ "$n" = "$want" ] || bad "tftpgw logged $n RRQs in all, want $want"
    # the cache: every upstream fetch on its routes is a miss (the nginx
    # count, whatever the missing names cost); the three files hit after boot 1
    misses=$(grep -c -E '^GET "/e2e/(grub|boot)/' "$d/ngx/logs/access.log")
    hits=$(sed -n 's/.*cache edge: hits=\([0-9]*\) .*/\1/p' "$log")
    if ! { grep -q "cache edge: hits=[0-9]* misses=$misses .*upstream_bytes=$((KERNEL_LEN + INITRD_SIZE + GRUBCFG_LEN)) " "$log" &&
           [ "${hits:-0}" -ge $((3 * (E2E_BOOTS - 1))) ]; }; then
        bad "cache counters '$(grep -o 'cache edge: hits.*' "$log")', want hits>=$((3 * (E2E_BOOTS - 1)))" \
            "misses=$misses upstream_bytes=$((KERNEL_LEN + INITRD_SIZE + GRUBCFG_LEN))"
    fi
    check_cached "$d/cache" "$FIX/grub.cfg"
    check_cached "$d/cache" "$FIX/vmlinuz"
    check_cached "$d/cache" "$FIX/initrd.img"
}

# ------------------------------------------------------------------ variants

# serve_root DIR VARIANT: nginx's document root, the fixtures hard-linked
serve_root() {
    mkdir -p "$1/ngx/root/e2e/boot"
    if [ "$2" = uefi ]; then
        mkdir -p "$1/ngx/root/e2e/grub"
        ln "$FIX/grubx64.efi" "$1/ngx/root/e2e/grubx64.efi"
        ln "$FIX/grub.cfg" "$1/ngx/root/e2e/grub/grub.cfg"
    else
        ln "$FIX/boot.ipxe" "$1/ngx/root/e2e/boot.ipxe"
    fi
    ln "$FIX/vmlinuz" "$1/ngx/root/e2e/boot/vmlinuz"
    if [ "${E2E_CORRUPT:-0}" = 1 ]; then
        # harness self-check: one byte changed in the middle, size unchanged
        cp "$FIX/initrd.img" "$1/ngx/root/e2e/boot/initrd.img"
        printf '\x5a' | dd of="$1/ngx/root/e2e/boot/initrd.img" bs=1 seek=$((INITRD_SIZE / 2)) \
            conv=notrunc status=none
    else
        ln "$FIX/initrd.img" "$1/ngx/root/e2e/boot/initrd.img"
    fi
    chmod -R a+rX "$1/ngx/root"
}

# qemu_run DIR NETDEV SERIAL_LOG VARIANT: one boot from the network; QEMU's
# exit status in QEMU_ST.
# iPXE variants: QEMU's default ROM for virtio-net-pci is efi-virtio.rom,
# found in $ROM's directory (Debian's firmware path). Naming it with romfile=
# made SeaBIOS skip the NIC on QEMU 7.2, so it is left implicit.
# uefi: OVMF on pflash, a fresh copy of its variable store per boot (so no
# boot order a previous boot wrote carries over), and romfile= empty so that
# the NIC has no option ROM and EDK2's own PXE stack (its Mtftp4 driver over
# the virtio-net driver OVMF carries) does the work.
QEMU_ST=""
qemu_run() {
    local d=$1 netdev=$2 serial=$3 variant=$4 pid fw=() nic=virtio-net-pci,netdev=n0
    if [ "$variant" = uefi ]; then
        cp "$OVMF_VARS" "$d/ovmf-vars.fd"
        fw=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE"
            -drive "if=pflash,format=raw,unit=1,file=$d/ovmf-vars.fd")
        nic+=",mac=$UEFI_MAC,romfile="
    fi
    "${NSX[@]}" timeout -k 5 "$E2E_TIMEOUT" qemu-system-x86_64 \
        -machine pc,accel=tcg -m 256 -nographic -monitor none \
        "${fw[@]}" -serial "file:$serial" \
        -netdev "$netdev" -device "$nic" \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
        -boot order=n,reboot-timeout=0 -no-reboot \
        >> "$d/qemu.log" 2>&1 < /dev/null &
    pid=$!
    track "$pid"
    wait "$pid"
    QEMU_ST=$?
    untrack "$pid"
}

# netns_up DIR: the namespace with the tap device at $NS_ADDR; 77 with
# SKIP_REASON set when the machine cannot give one
netns_up() {
    local d=$1
    if [ ! -c /dev/net/tun ]; then
        SKIP_REASON="no /dev/net/tun"
        return 77
    fi
    NETNS=tftpgw-e2e-$$
    if ! ip netns add "$NETNS" 2> "$d/netns.err"; then
        NETNS=""
        SKIP_REASON="cannot create a network namespace: $(tr '\n' ' ' < "$d/netns.err")"
        return 77
    fi
    NSX=(ip netns exec "$NETNS")
    if ! { "${NSX[@]}" ip link set lo up &&
           "${NSX[@]}" ip tuntap add dev e2etap0 mode tap &&
           "${NSX[@]}" ip addr add "$NS_ADDR/24" dev e2etap0 &&
           "${NSX[@]}" ip -6 addr add fd00:feed::1/64 dev e2etap0 nodad &&
           "${NSX[@]}" ip link set e2etap0 up; } 2> "$d/netns.err"; then
        SKIP_REASON="cannot set up a tap device in the namespace: $(tr '\n' ' ' < "$d/netns.err")"
        netns_del
        return 77
    fi
    return 0
}
# run_variant NAME: 0 pass, 1 fail, 77 skipped
run_variant() {
    local name=$1 d=$WORK/$1 t0 tq0 tq1 t1 i nport listen netdev rc bootfile
    local dhcp_extra=() from
    mkdir -p "$d"
    ERRS=() NSX=() GW_PID="" NGX_PID="" DNSMASQ_PID="" BOOT_TIMES=()
    say "== variant $name"
    t0=$(now_ms)
    case $name in
        user)
            nport=$(free_port tcp)
            local tport
            tport=$(free_port udp)
            listen=127.0.0.1:$tport
            netdev="user,id=n0,bootfile=tftp://10.0.2.2:$tport/boot.ipxe"
            ;;
        tap|uefi)
            if [ "$name" = uefi ]; then
                if [ ! -f "$OVMF_CODE" ] || [ ! -f "$OVMF_VARS" ]; then
                    SKIP_REASON="no OVMF ($OVMF_CODE, $OVMF_VARS: Debian's ovmf)"
                    return 77
                fi
                [ -f "$FIX/grubx64.efi" ] || build_grub || return 77
                uefi_expect
                bootfile=grubx64.efi
                # a fixed address, so that the grub.cfg-HEXIP names are known
                dhcp_extra=(--dhcp-host="$UEFI_MAC,$UEFI_IP")
            else
                bootfile=tftp://$NS_ADDR/boot.ipxe
            fi
            netns_up "$d"
            rc=$?
            [ "$rc" = 0 ] || return "$rc"
            nport=8080   # the namespace's own loopback: nothing else there
            listen=$NS_ADDR:69
            netdev="tap,id=n0,ifname=e2etap0,script=no,downscript=no"
            ;;
        *) say "unknown variant $name"; return 1 ;;
    esac
    serve_root "$d" "$name"

    nginx_up "$d/ngx" "$nport" || bad "nginx did not start"
    [ ${#ERRS[@]} -eq 0 ] && { gw_up "$d" "$listen" "$nport" "$name" || bad "tftpgw did not start"; }
    [ ${#ERRS[@]} -eq 0 ] && [ "$name" != user ] &&
        { dnsmasq_up "$d" "$bootfile" "${dhcp_extra[@]}" || bad "dnsmasq did not start"; }
    if [ ${#ERRS[@]} -eq 0 ]; then
        for i in $(seq 1 "$E2E_BOOTS"); do
            from=$(wc -l < "$d/ngx/logs/access.log")
            tq0=$(now_ms)
            qemu_run "$d" "$netdev" "$d/serial-$i.log" "$name"
            tq1=$(now_ms)
            BOOT_TIMES+=("$(secs $((tq1 - tq0)))")
            if [ "$name" = uefi ]; then
                check_boot_uefi "$d/serial-$i.log" "$QEMU_ST" "$i"
                check_upstream_uefi "$d/ngx/logs/access.log" "$from" "$i"
            else
                check_boot "$d/serial-$i.log" "$QEMU_ST" "$i"
            fi
        done
        # SIGTERM drains; a clean stop is exit status 0
        stop_pid "$GW_PID"
        [ "$STOP_ST" = 0 ] || bad "tftpgw exit status $STOP_ST after SIGTERM"
        if [ "$name" = uefi ]; then
            check_gateway_uefi "$d"
        else
            check_gateway "$d"
        fi
    fi
    [ -n "$DNSMASQ_PID" ] && stop_pid "$DNSMASQ_PID"
    [ -n "$NGX_PID" ] && stop_pid "$NGX_PID"
    [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null && stop_pid "$GW_PID"
    netns_del
    t1=$(now_ms)
    [ $((t1 - t0)) -le $((E2E_MAX * 1000)) ] ||
        bad "variant took $(secs $((t1 - t0))) s, more than E2E_MAX=$E2E_MAX s"

    # the evidence, whatever the verdict
    if [ "$name" = uefi ]; then
        echo "-- serial log of boot 1 (from EDK2's PXE on):"
        clean_serial "$d/serial-1.log" | sed -n '/Start PXE over IPv4/,$p' | sed 's/^/   | /'
    else
        echo "-- serial log of boot 1 (from iPXE's DHCP on):"
        clean_serial "$d/serial-1.log" | sed -n '/^Configuring/,$p' | sed 's/^/   | /'
    fi
    echo "-- tftpgw:"
    grep -E ' transfer |cache edge:' "$d/tftpgw.log" 2>/dev/null | sed 's/^/   | /'
    echo "-- nginx access log:"
    sed 's/^/   | /' "$d/ngx/logs/access.log" 2>/dev/null
    TIMING="total $(secs $((t1 - t0))) s; boots ${BOOT_TIMES[*]/%/ s}; TFTP ms vmlinuz"
    TIMING+=" $(transfer_line "$d/tftpgw.log" boot/vmlinuz 2>/dev/null | sed -n 's/.* duration_ms=\([0-9]*\).*/\1/p' | paste -sd/)"
    TIMING+=", initrd $(transfer_line "$d/tftpgw.log" boot/initrd.img 2>/dev/null | sed -n 's/.* duration_ms=\([0-9]*\).*/\1/p' | paste -sd/)"
    if [ ${#ERRS[@]} -gt 0 ]; then
        local e
        for e in "${ERRS[@]}"; do say "FAIL $name: $e"; done
        return 1
    fi
    return 0
}

# ------------------------------------------------------------------ main

main() {
    local variants=("$@") v rc
    [ ${#variants[@]} -gt 0 ] || variants=(user tap uefi)
    [ -x "$GW" ] || { say "no gateway binary at $GW (make tftpgw)"; exit 2; }
    e2e_deps "${variants[@]}" || { say "cannot install the e2e packages"; exit 2; }
    WORK=$(mktemp -d /tmp/tftpgw-e2e.XXXXXX) || exit 2
    chmod 755 "$WORK"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    build_fixtures || exit 2
    for v in "${variants[@]}"; do
        SKIP_REASON="" TIMING=""
        run_variant "$v"
        rc=$?
        case $rc in
            0) SUMMARY+=("PASS $v: $TIMING") ;;
            77) SUMMARY+=("SKIP $v: $SKIP_REASON") ;;
            *) SUMMARY+=("FAIL $v: $TIMING"); FAILED=$((FAILED + 1)) ;;
        esac
    done
    echo
    for v in "${SUMMARY[@]}"; do say "$v"; done
    [ "$FAILED" -eq 0 ]
}

main "$@"
