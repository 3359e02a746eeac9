# SPDX-License-Identifier: MIT
# Local discovery on a real (virtual) LAN, issue #5. Three network
# namespaces, each with one veth port on a bridge that lives in a fourth
# "switch" namespace, addresses 10.77.0.1-3/24. All of it is created here
# and destroyed on exit. Each node knows the other two only by device ID
# (dynamic addresses): they must find each other through UDP broadcast /
# multicast on port 21027 and connect, exchange indexes, and a node that
# restarts on a new port (listen port 0) must be found again within one
# announcement interval (SHOAL_DISCO_INTERVAL_MS, a test knob read by
# disco_open(), shortens it).
#
# Needs root, iproute2 and `ip netns add`; otherwise it skips (exit 77).
# SHOAL_NETNS_ONLY=1 only builds the network, checks that a broadcast
# crosses the bridge, and tears it down (no shoal needed beyond lib.sh's
# SHOAL variable).

. ./netns.sh

INTERVAL_MS=${SHOAL_DISCO_INTERVAL_MS:-2000}
export SHOAL_DISCO_INTERVAL_MS=$INTERVAL_MS

. ./lib.sh

netns_hook_lib

# --- the network -----------------------------------------------------------
lan_setup a b c

# A UDP broadcast from a must reach b and c across the bridge, exactly
# the path the announcements take. Receivers time out on their own.
probe_rx() {
	ip netns exec "$(ns_of "$1")" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 21099))
s.settimeout(float(sys.argv[1]))
d, a = s.recvfrom(100)
sys.exit(0 if d == b"probe" and a[0] == "10.77.0.1" else 1)
' "$((5 * MULT))"
}
probe_rx b & pb=$!
probe_rx c & pc=$!
ok=0
for _try in 1 2 3 4 5 6 7 8 9 10; do
	ip netns exec "$NS_a" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.sendto(b"probe", ("10.77.0.255", 21099))
' || fail "broadcast send"
	if ! kill -0 $pb 2>/dev/null && ! kill -0 $pc 2>/dev/null; then
		break
	fi
	sleep 0.2
done
wait $pb || fail "b did not receive a's broadcast"
wait $pc || fail "c did not receive a's broadcast"
log "broadcast a -> b, c crosses the bridge"

if [ -n "${SHOAL_NETNS_ONLY:-}" ]; then
	log "passed (network only)"
	exit 0
fi

# --- the nodes -------------------------------------------------------------
for n in a b c; do
	case " $NODES " in *" $n "*) ;; *) NODES="$NODES $n" ;; esac
	HOME="$T/$n-user" "$SHOAL" --home "$T/$n" init --name "$n" \
	    --listen tcp://0.0.0.0:0 --api 127.0.0.1:0 --no-default-folder \
	    >"$T/$n.id" || fail "init of $n failed"
done
for n in a b c; do
	share=""
	for m in a b c; do
		[ "$m" = "$n" ] && continue
		# No --address: the device is dynamic, found by discovery.
		sh_node $n device add "$(node_id $m)" --name $m ||
		    fail "device add $m on $n"
		share="$share --share $(node_id $m)"
	done
	mkdir -p "$T/f$n"
	sh_node $n folder add f "$T/f$n" $share || fail "folder add on $n"
	printf 'data of %s\n' $n >"$T/f$n/$n.txt"
done

# start_node_ns NAME: serve inside NAME's namespace, wait for its API.
start_node_ns() {
	local _n=$1
	ip netns exec "$(ns_of "$_n")" "$SHOAL" --home "$T/$_n" \
	    --log-level "${SHOAL_TEST_LOG_LEVEL:-info}" serve \
	    >>"$T/$_n.log" 2>&1 &
	echo $! >"$T/$_n.pid"
	wait_until 20 sh_node "$_n" status --json || fail "node $_n did not start"
}
for n in a b c; do start_node_ns $n; done

# discovered A B: A's status lists B among discovered devices with an
# address on B's LAN IP.
discovered() {
	local _ip
	case $2 in a) _ip=10.77.0.1 ;; b) _ip=10.77.0.2 ;; *) _ip=10.77.0.3 ;; esac
	jqs "$1" "[.discovered[] | select(.device_id == \"$(node_id "$2")\") |
	    .addresses[] | select(startswith(\"tcp://$_ip:\"))] | length > 0"
}
# discovered_port A B PORT: ... at exactly that port.
discovered_port() {
	jqs "$1" "[.discovered[] | select(.device_id == \"$(node_id "$2")\") |
	    .addresses[] | select(endswith(\":$3\"))] | length > 0"
}

# remote_has A B FOLDER: A stored at least one record of B's index (B's
# own file; records B pulled from others count too once the puller runs).
remote_has() { [ "$(remote_count "$1" "$2" "$3")" -ge 1 ]; }

# Every node finds and connects to the other two; no address configured.
for p in "a b" "a c" "b a" "b c" "c a" "c b"; do
	set -- $p
	wait_until 20 discovered $1 $2 || fail "$1 did not discover $2: $(status $1)"
	wait_until 20 connected $1 $2 || fail "$1 does not see $2 connected"
	wait_until 20 remote_has $1 $2 f ||
	    fail "$1 lacks $2's index ($(remote_count $1 $2 f))"
done
for n in a b c; do
	jqs $n '[.peers[] | select(.connected)] | length == 2' ||
	    fail "$n: $(status $n)"
done
log "all three discovered and connected each other"
# Every node ends up with all three files, byte for byte.
wait_until 30 compare_trees "$T/fa" "$T/fb" || fail "fa and fb differ"
wait_until 30 compare_trees "$T/fa" "$T/fc" || fail "fa and fc differ"
[ -f "$T/fa/c.txt" ] || fail "c.txt did not reach a"
log "a file from each node reached the other two"

# A node with discovery off (init --no-discovery) on b's LAN announces
# nothing: it never shows up in a's discovered list (checked after c's
# restart below, by which time announcements have gone round).
NODES="$NODES q"
HOME="$T/q-user" "$SHOAL" --home "$T/q" init --name q --no-discovery \
    --listen tcp://0.0.0.0:0 --api 127.0.0.1:0 --no-default-folder \
    >"$T/q.id" || fail "init of q failed"
grep -q '^announce_lan = false' "$T/q/config" || fail "--no-discovery not in config"
NS_q=$NS_b
start_node_ns q

# Restart c: listen port 0 gives it a new port. a and b must learn it
# within one announcement interval (c announces at once on start, and a
# new instance ID makes a and b answer at once too) and reconnect.
old_port=$(listen_addr c | sed 's/.*://')
stop_node c
wait_until 20 disconnected a c || fail "a still sees c connected"
start_node_ns c
new_port=$(listen_addr c | sed 's/.*://')
[ -n "$new_port" ] && [ "$new_port" != 0 ] || fail "c has no listen port"
log "c restarted on port $new_port (was $old_port)"
# One interval, rounded up to whole seconds, plus a second for the
# packet and the status poll.
limit=$(( (INTERVAL_MS + 999) / 1000 + 1 ))
for n in a b; do
	wait_until $limit discovered_port $n c "$new_port" ||
	    fail "$n did not rediscover c on port $new_port within ${INTERVAL_MS} ms"
done
for n in a b; do
	wait_until 20 connected $n c || fail "$n did not reconnect to c"
	wait_until 20 connected c $n || fail "c did not reconnect to $n"
done
jqs a "[.discovered[] | select(.device_id == \"$(node_id q)\")] | length == 0" ||
    fail "q announced although discovery is off"
grep -q 'LAN discovery is off' "$T/q.log" || fail "q did not log that discovery is off"
log "passed"
