# SPDX-License-Identifier: MIT
# A large index crosses in bounded batches (at most 1000 records each).
. ./lib.sh

init_node a
init_node b
sh_node a folder add f "$T/fa" || fail "folder add"
sh_node b folder add f "$T/fb" || fail "folder add"
mkdir -p "$T/fa/d"
i=0
while [ $i -lt 2500 ]; do
	printf '%d' $i >"$T/fa/d/f$i"
	i=$((i + 1))
done
start_node a
wait_until 60 idle_scanned a f 1 || fail "scan"
start_node b
connect_pair a b f
wait_until 60 remote_is b a f 2501 || fail "b has $(remote_count b a f) of 2501 records"
msgs=$(peer_field a b index_messages_sent)
[ "$msgs" -ge 3 ] || fail "2501 records went out in $msgs message(s)"
expect_eq "records sent" "$(peer_field a b index_records_sent)" 2501
log "passed ($msgs index messages)"
