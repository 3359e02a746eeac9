#!/bin/sh
# SPDX-License-Identifier: MIT
# Take a fresh Debian 12 machine to a running Shoal node: install the
# build dependencies (if missing), build, create an identity on first run,
# then run the daemon in the foreground. Extra arguments go to `shoal init`
# on first run (e.g. --name laptop). SHOAL_HOME overrides the home.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
make
home=${SHOAL_HOME:-${XDG_STATE_HOME:-$HOME/.local/state}/shoal}
if [ ! -f "$home/cert.pem" ]; then
	./build/shoal --home "$home" init "$@"
fi
echo "Device ID: $(./build/shoal --home "$home" id)"
exec ./build/shoal --home "$home" serve
