# SPDX-License-Identifier: MIT
# Folder types: send-only never applies remote changes (shown as needed)
# until `folder override` pushes ours; receive-only applies remote changes,
# keeps local changes local (reported), and `folder revert` drops them.
. ./lib.sh

init_node a
init_node s
init_node r
sh_node a folder add f "$T/fa" || fail "folder add"
sh_node s folder add f "$T/fs" --type sendonly || fail "folder add sendonly"
sh_node r folder add f "$T/fr" --type receiveonly || fail "folder add receiveonly"
printf 'original' >"$T/fs/doc.txt"
for n in a s r; do start_node $n; done
connect_pair a s f
connect_pair a r f
wait_until 60 synced a "$T/fa" s "$T/fs" f || fail "initial sync a-s"
wait_until 60 synced a "$T/fa" r "$T/fr" f || fail "initial sync a-r"

# --- send-only ---
printf 'changed on a' >"$T/fa/doc.txt"
wait_until 30 jqs s '.folders[0].need_files == 1' || fail "s does not show the remote change: $(status s)"
expect_eq "send-only untouched" "$(cat "$T/fs/doc.txt")" "original"
jqs s '.folders[0].in_sync == false' || fail "s claims to be in sync"
out=$(sh_node s folder override f) || fail "override"
printf '%s' "$out" | grep -q '1 item' || fail "override output: $out"
wait_until 30 sh -c "[ \"\$(cat '$T/fa/doc.txt')\" = original ]" || fail "override did not reach a"
wait_until 30 in_sync s f || fail "s not in sync after override"
sh_node a folder override f 2>"$T/err" && fail "override accepted on a send-receive folder"
grep -q 'send-only' "$T/err" || fail "override error: $(cat "$T/err")"

# --- receive-only ---
wait_until 30 sh -c "[ \"\$(cat '$T/fr/doc.txt')\" = original ]" || fail "r did not apply a remote change"
printf 'local edit on r' >"$T/fr/doc.txt"
printf 'only on r' >"$T/fr/extra.txt"
wait_until 30 jqs r '.folders[0].receive_only_changed == 2' || fail "local changes not reported: $(status r)"
# They stay local: r announces them as invalid, and a takes neither.
r_invalid() { [ "$(remote_field a r f "$1" invalid)" = 1 ]; }
wait_until 30 r_invalid doc.txt || fail "r did not announce its local change as invalid"
wait_until 30 r_invalid extra.txt || fail "r did not announce its local addition as invalid"
wait_until 30 in_sync a f || fail "a not in sync"
expect_eq "a unchanged" "$(cat "$T/fa/doc.txt")" "original"
[ ! -e "$T/fa/extra.txt" ] || fail "a local-only file left the receive-only folder"
out=$(sh_node r folder revert f) || fail "revert"
printf '%s' "$out" | grep -q '^1 local change' || fail "revert output: $out"
wait_until 30 sh -c "[ \"\$(cat '$T/fr/doc.txt')\" = original ]" || fail "revert did not restore doc.txt"
[ -f "$T/fr/extra.txt" ] || fail "revert removed a file that exists only on r"
wait_until 10 jqs r '.folders[0].receive_only_changed == 1' || fail "after revert: $(status r)"

# A change found by `scan --once` while r's daemon is stopped is flagged
# the same way: it stays on r after the restart.
stop_node r
printf 'offline edit on r' >"$T/fr/doc.txt"
sh_node r scan --once f >/dev/null || fail "scan --once on r"
start_node r
wait_until 30 jqs r '.folders[0].receive_only_changed == 2' || fail "offline change not reported: $(status r)"
wait_until 30 r_invalid doc.txt || fail "offline change not announced as invalid"
wait_until 30 in_sync a f || fail "a not in sync (2)"
expect_eq "a unchanged (2)" "$(cat "$T/fa/doc.txt")" "original"
expect_eq "r keeps its edit" "$(cat "$T/fr/doc.txt")" "offline edit on r"
log "passed"
