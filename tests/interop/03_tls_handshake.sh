#!/bin/sh
# SPDX-License-Identifier: MIT
# Interop: tls.c (through test_tls's two interop tests) against Debian's
# syncthing on loopback, in both roles: we dial it, then it dials us.
# Syncthing 1.19 speaks TLS 1.2 only with insecureAllowOldTLSVersions
# (bep-brief §2.2), which stctl.py sets. Passes when each handshake
# completes with ALPN bep/1.0, the peer's device ID is Syncthing's, and its
# Hello magic 2e a7 d9 0b arrives. Exits 77 (skip) if syncthing or python3
# is missing.
#
#   tests/interop/03_tls_handshake.sh [BUILDDIR]  (default: the dir of $SHOAL)
set -u

here=$(cd "$(dirname "$0")" && pwd)
builddir=${1:-${SHOAL_BUILDDIR:-$(dirname "${SHOAL:-build/shoal}")}}
test_bin=$builddir/tests/test_tls

for c in syncthing python3; do
	if ! command -v "$c" >/dev/null 2>&1; then
		echo "SKIP: $c is not installed"
		exit 77
	fi
done
if [ ! -x "$test_bin" ]; then
	echo "tls_handshake: $test_bin missing; run: make BUILDDIR=$builddir $test_bin" >&2
	exit 1
fi

dir=$(mktemp -d /tmp/shoal-interop-tls.XXXXXX)
st_pid=
cleanup() {
	if [ -n "$st_pid" ]; then
		kill "$st_pid" 2>/dev/null
		wait "$st_pid" 2>/dev/null
	fi
}
trap cleanup EXIT INT TERM

# Three free loopback ports (syncthing listen, its GUI, ours).
ports=$(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
set -- $ports
listen_port=$1
gui_port=$2
our_port=$3

st_id=$(python3 "$here/stctl.py" init "$dir/st" "$listen_port" "$gui_port") || {
	echo "tls_handshake: stctl.py init failed" >&2; exit 1; }
mkdir "$dir/ours"
our_id=$("$test_bin" --print-id "$dir/ours") || {
	echo "tls_handshake: cannot make our identity" >&2; exit 1; }
# Syncthing must know us to dial us.
python3 "$here/stctl.py" add-device "$dir/st" "$our_id" shoal \
	"tcp://127.0.0.1:$our_port" || exit 1
STNOUPGRADE=1 STNORESTART=1 syncthing serve --home="$dir/st" --no-browser \
	--no-restart --no-upgrade >"$dir/syncthing.log" 2>&1 &
st_pid=$!

# Wait (bounded) until syncthing accepts TCP connections on its port.
i=0
until python3 -c "
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(s.connect_ex(('127.0.0.1', $listen_port)))" 2>/dev/null; do
	i=$((i + 1))
	if [ "$i" -gt 300 ] || ! kill -0 "$st_pid" 2>/dev/null; then
		echo "tls_handshake: syncthing did not start; log:" >&2
		cat "$dir/syncthing.log" >&2
		echo "kept $dir" >&2
		exit 1
	fi
	sleep 0.1
done

if SHOAL_INTEROP_HOME=$dir/ours SHOAL_INTEROP_ID=$st_id \
    SHOAL_INTEROP_PORT=$listen_port SHOAL_INTEROP_LISTEN=$our_port \
    "$test_bin" >"$dir/test.log" 2>&1 &&
    grep -q 'OK \] test_tls_interop_we_dial' "$dir/test.log" &&
    grep -q 'OK \] test_tls_interop_it_dials' "$dir/test.log"; then
	grep 'interop (' "$dir/test.log"
	echo "tls_handshake: OK (syncthing $st_id)"
	cleanup
	st_pid=
	rm -rf "$dir"
	exit 0
fi
echo "tls_handshake: FAILED; test output:" >&2
cat "$dir/test.log" >&2
echo "--- syncthing log:" >&2
cat "$dir/syncthing.log" >&2
echo "kept $dir" >&2
exit 1
