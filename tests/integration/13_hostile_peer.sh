# SPDX-License-Identifier: MIT
# A peer that authenticates correctly and then misbehaves is dropped with a
# log line; the daemon keeps serving an honest peer.
. ./lib.sh

init_node a
init_node b
init_node h		# its identity is used by the scripted client
sh_node a folder add f "$T/fa" || fail "folder add"
sh_node b folder add f "$T/fb" || fail "folder add"
printf hello >"$T/fa/a.txt"
start_node a
start_node b
connect_pair a b f
sh_node a device add "$(node_id h)" --name h || fail "device add h"
sh_node a folder share f "$(node_id h)" || fail "share h"
wait_until 20 connected a b || fail "honest peer not connected"
wait_until 20 remote_is b a f 1 || fail "honest peer lacks the index"
since=$(peer_field a b connected_since)

addr=$(listen_addr a)
host=${addr#tcp://}
port=${host##*:}
host=${host%:*}
aid=$(node_id a)
client() { /usr/bin/python3 ./bepclient.py "$T/h" "$host" "$port" "$aid" f "$@"; }

client ok >"$T/out" || fail "well-behaved scripted client refused: $(cat "$T/out")"
for sc in garbage bigheader biglen badlz4 badname absname dotdot beforecc hugereq; do
	n=$(grep -c 'protocol error' "$T/a.log")
	client $sc >"$T/out" || fail "scenario $sc: server did not drop the peer ($(cat "$T/out"))"
	wait_until 5 sh -c "[ \$(grep -c 'protocol error' '$T/a.log') -gt $n ]" ||
	    fail "scenario $sc: no log line"
	connected a b || fail "honest peer dropped after $sc"
done
client outside a.txt >"$T/out" || fail "request outside the file: $(cat "$T/out")"
grep -q 'request outside "a.txt"' "$T/a.log" || fail "no log line for the outside request"

# The daemon still runs and the honest connection is the same one.
expect_eq "honest connection unchanged" "$(peer_field a b connected_since)" "$since"
printf more >"$T/fa/more.txt"
wait_until 20 remote_is b a f 2 || fail "honest peer no longer served"
log "passed"
