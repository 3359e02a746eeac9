# SPDX-License-Identifier: MIT
# Local discovery interop (issue #5): a Shoal node and Debian's syncthing,
# each in its own network namespace on a bridge made here, with local
# discovery on and each knowing the other only by device ID: each finds
# the other's address (syncthing's /rest/system/discovery, our status
# --json "discovered") and they connect. Skips (77) without namespaces.
cd ../integration || exit 1
. ./netns.sh
command -v syncthing >/dev/null 2>&1 || skip "syncthing not installed"
export SHOAL_DISCO_INTERVAL_MS=2000
. ./lib.sh
netns_hook_lib
cd ../interop || fail "cd"
STCTL="/usr/bin/python3 $(pwd)/stctl.py"

lan_setup a s

init_node a
st_id=$($STCTL init "$T/s" 22000 8384 --lan --listen-host 0.0.0.0) || fail "syncthing init"
echo "$st_id" >"$T/s.id"
NODES="$NODES s"
# Shoal listens on every address of its namespace (a real LAN setup).
sed -i 's|^listen = .*|listen = tcp://0.0.0.0:0|' "$T/a/config"
sh_node a device add "$st_id" --name st || fail "device add"
$STCTL add-device "$T/s" "$(node_id a)" shoal dynamic || fail "st add-device"

ip netns exec "$NS_a" "$SHOAL" --home "$T/a" serve >>"$T/a.log" 2>&1 &
echo $! >"$T/a.pid"
wait_until 20 sh_node a status --json || fail "shoal did not start"
ip netns exec "$NS_s" env STNOUPGRADE=1 syncthing serve --home="$T/s" \
    --no-browser --no-restart --no-upgrade --skip-port-probing >>"$T/s.log" 2>&1 &
echo $! >"$T/s.pid"
st_get() { ip netns exec "$NS_s" $STCTL get "$T/s" "$1"; }
wait_until 30 st_get /rest/system/status || fail "syncthing did not start"

shoal_port=$(listen_addr a | sed 's/.*://')
# Syncthing learned our address from our announcement, with the host
# filled in from the packet's source.
st_found() {
	st_get /rest/system/discovery | jq -e --arg id "$(node_id a)" \
	    --arg u "tcp://10.77.0.1:$shoal_port" '.[$id].addresses | index($u) != null'
}
wait_until 30 st_found || fail "syncthing did not discover shoal: $(st_get /rest/system/discovery)"
# We learned syncthing's (it announces tcp://0.0.0.0:22000 and more).
wait_until 30 jqs a "[.discovered[] | select(.device_id == \"$st_id\") |
    .addresses[] | select(. == \"tcp://10.77.0.2:22000\")] | length == 1" ||
    fail "shoal did not discover syncthing: $(status a)"
wait_until 30 connected a s || fail "no connection through discovered addresses"
log "passed"
