#!/bin/sh
# SPDX-License-Identifier: MIT
# Install every Debian package Shoal needs to build, test and run.
# Idempotent: installs only what is missing. Needs root or sudo.
set -eu

PKGS="build-essential pkg-config git
libuv1-dev libmbedtls-dev libsodium-dev libsqlite3-dev libprotobuf-c-dev
protobuf-c-compiler liblz4-dev libjansson-dev libssl-dev libhttp-parser-dev
libcmocka-dev clang libclang-rt-14-dev sqlite3 time procps iproute2
syncthing python3 python3-pytest jq"

missing=
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi
SUDO=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root or sudo to install:$missing" >&2; exit 1; }
	SUDO=sudo
fi
echo "install-deps: installing:$missing"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
