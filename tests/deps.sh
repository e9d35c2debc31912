#!/bin/sh
# Install the Debian packages tftpgw builds and tests with, when missing.
set -e
# awscli: /usr/bin/aws for tests/integration/s3.sh. Its S3 server needs node
# >= 20 and npm, which Debian 12 does not have (nodejs 18): s3.sh installs
# the server with npm when node and npm are there and skips otherwise.
# clang + libclang-rt-14-dev (libFuzzer and sanitizer runtimes, only a
# recommendation of clang): make fuzz / fuzz-short (tests/fuzz).
# Not here: qemu-system-x86, ipxe-qemu and dnsmasq-base (about 100 MB with
# their dependencies) are installed by tests/e2e/run.sh on the first make e2e.
PKGS="gcc make pkg-config libc6-dev libuv1-dev libcurl4-openssl-dev libinih-dev libcmocka-dev
      tftp-hpa atftp busybox curl python3 iproute2 nftables valgrind nginx openssl awscli clang libclang-rt-14-dev"
# Arguments: more packages a target needs beyond these (make deb: debhelper,
# lintian and the rest of a package build).
PKGS="$PKGS $*"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# nginx's package starts a system service on install; the tests run their own
# on free ports. Without a policy of the host's own, refuse service starts
# (exit 101) for the duration of the install only.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# tftpgw tests/deps.sh: no service starts during its apt-get install\nexit 101\n' |
        $SUDO tee "$POLICY" > /dev/null
    $SUDO chmod 755 "$POLICY"
    trap '$SUDO rm -f "$POLICY"' EXIT
    trap 'exit 1' INT TERM HUP
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
