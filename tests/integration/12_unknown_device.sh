# SPDX-License-Identifier: MIT
# A device that is not configured is refused before any folder data moves
# and is listed as pending with its ID and address.
. ./lib.sh

init_node a
init_node c
sh_node a folder add f "$T/fa" || fail "folder add"
printf secret >"$T/fa/secret.txt"
sh_node c folder add f "$T/fc" || fail "folder add"
start_node a
start_node c
# c knows a; a does not know c.
sh_node c device add "$(node_id a)" --name a --address "$(listen_addr a)" || fail "device add"
sh_node c folder share f "$(node_id a)" || fail "share"

cid=$(node_id c)
wait_until 20 jqs a ".pending_devices | map(.device_id) | index(\"$cid\") != null" ||
    fail "c not pending on a: $(status a)"
jqs a ".pending_devices[0].address | test(\"^127\\\\.0\\\\.0\\\\.1:\")" || fail "pending address: $(status a)"
jqs a '.pending_devices[0].name == "c"' || fail "pending name: $(status a)"
grep -q 'not configured' "$T/a.log" || fail "no log line about the refusal"
jqs c '.peers[0].connected == false' || fail "c shows a connected"
# Nothing of a's folder reached c.
expect_eq "records c got from a" "$(remote_count c a f)" 0
log "passed"
