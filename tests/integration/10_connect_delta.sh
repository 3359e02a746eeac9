# SPDX-License-Identifier: MIT
# Two nodes on loopback connect over BEP, show each other as connected,
# exchange full indexes; after one restarts only the delta crosses.
. ./lib.sh

init_node a
init_node b
sh_node a folder add f "$T/fa" || fail "folder add a"
sh_node b folder add f "$T/fb" || fail "folder add b"
for i in 1 2 3; do printf "file $i" >"$T/fa/a$i.txt"; done
printf 'from b' >"$T/fb/b1.txt"
start_node a
start_node b
connect_pair a b f

wait_until 20 connected a b || fail "a does not see b connected: $(status a)"
wait_until 20 connected b a || fail "b does not see a connected: $(status b)"
# Each side ends up announcing all four files: its own and the one it pulled.
wait_until 20 remote_is b a f 4 || fail "b did not get a's index ($(remote_count b a f))"
wait_until 20 remote_is a b f 4 || fail "a did not get b's index ($(remote_count a b f))"

# Peer details in status.
peer_field a b client | grep -q '^shoal ' || fail "client: $(peer_field a b client)"
# One version everywhere: the CLI, the status and the Hello peers see.
expect_eq "client version" "$(peer_field a b client)" "$("$SHOAL" --version)"
expect_eq "status version" "shoal $(status b | jq -r .version)" "$("$SHOAL" --version)"
peer_field a b address | grep -q '^127\.0\.0\.1:' || fail "address: $(peer_field a b address)"
[ "$(peer_field a b in_bytes)" -gt 0 ] || fail "in_bytes not counted"
[ "$(peer_field a b out_bytes)" -gt 0 ] || fail "out_bytes not counted"
jqs a '.folders[0].peers | length == 1' || fail "folder peers: $(status a)"
jqs a '.folders[0].peers[0].completion | type == "number"' || fail "completion missing"
wait_until 20 synced a "$T/fa" b "$T/fb" f || fail "not in sync: $(status a)"
jqs a '.folders[0] | .global_files == 4 and .need_files == 0' || fail "global view: $(status a)"

sent_before=$(peer_field a b index_records_sent)
expect_eq "full index sent (3 own + 1 pulled)" "$sent_before" 4

# b goes away; a changes two files; b comes back (on a new port: it dials a).
stop_node b
wait_until 10 disconnected a b || fail "a still shows b connected"
printf 'four' >"$T/fa/a4.txt"
printf 'one, changed' >"$T/fa/a1.txt"
wait_until 10 jqs a '.folders[0].local_files == 5 and .folders[0].local_bytes == 34' ||
    fail "a did not scan the changes: $(status a)"
start_node b
wait_until 20 connected b a || fail "b did not reconnect"
wait_until 20 remote_is b a f 5 || fail "b did not get the new file"
wait_until 10 sh -c "[ \"\$(sqlite3 -readonly '$T/b/index.db' \"SELECT size FROM files WHERE device != 0 AND name = 'a1.txt'\")\" = 12 ]" ||
    fail "b did not get the changed file"
# Only the two changed records crossed, not the whole index again.
wait_until 10 jqs a ".peers[0].index_records_sent >= $((sent_before + 2))" ||
    fail "delta not sent"
expect_eq "delta records sent by a" "$(peer_field a b index_records_sent)" $((sent_before + 2))
expect_eq "records b received after restart" "$(peer_field b a index_records_received)" 2
log "passed"
