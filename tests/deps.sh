#!/bin/sh
# Install the Debian packages tftpgw builds and tests with, when missing.
set -e
PKGS="gcc make pkg-config libc6-dev libuv1-dev libcurl4-openssl-dev libinih-dev libcmocka-dev
      tftp-hpa atftp busybox curl python3 iproute2 valgrind"
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
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
