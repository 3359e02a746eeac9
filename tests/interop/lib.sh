# SPDX-License-Identifier: MIT
# Interop helpers: the integration helpers plus a Debian `syncthing` node
# on loopback (configured by stctl.py). Sourced by tests/interop/NN_*.sh.
. ../integration/lib.sh

STCTL="/usr/bin/python3 $(pwd)/stctl.py"
ST_PIDS=""

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now,
# chosen below the kernel's ephemeral range (32768+) so that the port-0
# listeners of our own daemons cannot take it before syncthing binds it.
free_port() {
	/usr/bin/python3 -c '
import random, socket
for _ in range(200):
    p = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
'
}

# st_init NAME: create a syncthing home T/NAME with loopback-only settings;
# sets ST_ID_<NAME>, ST_PORT_<NAME>. Prints nothing.
st_init() {
	local _n=$1 _port _gui _id
	_port=$(free_port)
	_gui=$(free_port)
	_id=$($STCTL init "$T/$_n" "$_port" "$_gui") || fail "syncthing init $_n"
	eval "ST_ID_$_n=$_id ST_PORT_$_n=$_port"
	echo "$_id" >"$T/$_n.id"
	NODES="$NODES $_n"
}

st_start() {
	local _n=$1
	STNOUPGRADE=1 syncthing serve --home="$T/$_n" --no-browser --no-restart \
	    --no-upgrade --skip-port-probing >>"$T/$_n.log" 2>&1 &
	echo $! >"$T/$_n.pid"
	wait_until 30 $STCTL get "$T/$_n" /rest/system/status ||
	    fail "syncthing $_n did not start"
}

# st_get NAME PATH: GET a REST path, print the JSON.
st_get() { $STCTL get "$T/$1" "$2"; }

# st_jq NAME PATH FILTER: true if FILTER holds on the REST answer.
st_jq() {
	local _out
	_out=$(st_get "$1" "$2") || return 1
	printf '%s' "$_out" | jq -e "$3" >/dev/null
}

# st_connected NAME DEVICE_ID
st_connected() {
	st_jq "$1" /rest/system/connections ".connections[\"$2\"].connected"
}

# require_syncthing: skip (status 77) when syncthing is not installed.
require_syncthing() {
	command -v syncthing >/dev/null 2>&1 || { log "SKIP: syncthing not installed"; trap - EXIT; rm -rf "$T"; exit 77; }
}
