# SPDX-License-Identifier: MIT
# Three nodes, each configured with the other two: all pairs connect
# (exactly one connection per pair) and every index reaches every node.
. ./lib.sh

for n in a b c; do
	init_node $n
	sh_node $n folder add f "$T/f$n" || fail "folder add $n"
	printf "data of $n" >"$T/f$n/$n.txt"
	mkdir "$T/f$n/dir-$n"
done
for n in a b c; do start_node $n; done
connect_pair a b f
connect_pair b c f
connect_pair a c f

for p in "a b" "a c" "b a" "b c" "c a" "c b"; do
	set -- $p
	wait_until 20 connected $1 $2 || fail "$1 does not see $2 connected"
	# Each node has a file and a directory; after syncing every node
	# announces all six items.
	wait_until 30 remote_is $1 $2 f 6 || fail "$1 lacks $2's index ($(remote_count $1 $2 f))"
done
# One connection per pair: the counters of a single link match up.
for n in a b c; do
	jqs $n '[.peers[] | select(.connected)] | length == 2' || fail "$n: $(status $n)"
done
log "passed"
