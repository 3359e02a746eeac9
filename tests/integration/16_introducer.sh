# SPDX-License-Identifier: MIT
# Introducers (bep-brief §12): a and c each know only b, marked introducer;
# b shares folder f with both. From b's cluster configuration a learns c
# and c learns a (recorded as introduced by b, f shared with them); they
# connect to each other and sync without b. When b forgets c, a removes
# the c that b introduced.
. ./lib.sh

for n in a b c; do
	init_node $n
	sh_node $n folder add f "$T/f$n" || fail "folder add $n"
done
for n in a b c; do start_node $n; done
bid=$(node_id b)
for n in a c; do
	sh_node b device add "$(node_id $n)" --name $n --address "$(listen_addr $n)" ||
	    fail "device add $n on b"
	sh_node b folder share f "$(node_id $n)" || fail "share f with $n on b"
	sh_node $n device add "$bid" --name b --introducer --address "$(listen_addr b)" ||
	    fail "device add b on $n"
	sh_node $n folder share f "$bid" || fail "share f with b on $n"
done

# introduced A B: A's config has B, introduced by b, and shares f with it.
introduced() {
	[ "$(sh_node "$1" device list --json |
	    jq -r --arg id "$(node_id "$2")" '.[] | select(.device_id == $id) | .introduced_by')" = "$bid" ] &&
	    sh_node "$1" folder list --json |
	    jq -e --arg id "$(node_id "$2")" '.[] | select(.id == "f") | .shared_with | index($id) != null' >/dev/null
}
wait_until 30 introduced a c || fail "a was not introduced to c: $(sh_node a device list)"
wait_until 30 introduced c a || fail "c was not introduced to a: $(sh_node c device list)"
grep -q "intro: device $(node_id c) added (introduced)" "$T/a.log" || fail "a did not log the introduction"
wait_until 30 connected a c || fail "a and c did not connect"

# Without b, a's change reaches c directly.
stop_node b
printf 'from a' >"$T/fa/a.txt"
wait_until 30 sh -c "[ \"\$(cat '$T/fc/a.txt' 2>/dev/null)\" = 'from a' ]" || fail "a.txt did not reach c"

# b forgets c: a drops the c that b introduced (and only that).
start_node b
sh_node b device remove "$(node_id c)" || fail "device remove c on b"
gone() { ! sh_node a device list --json | jq -e --arg id "$(node_id c)" '.[] | select(.device_id == $id)' >/dev/null; }
wait_until 30 gone || fail "a kept the device b no longer introduces"
sh_node a device list --json | jq -e --arg id "$bid" '.[] | select(.device_id == $id) | .introducer' >/dev/null ||
    fail "a lost its introducer"
log "passed"
