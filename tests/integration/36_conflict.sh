# SPDX-License-Identifier: MIT
# A concurrent edit yields the same conflict copy name on both nodes, the
# loser's content kept in it; modify vs delete keeps the modified file.
. ./lib.sh

init_node a
init_node b
sh_node a folder add f "$T/fa" || fail "folder add"
sh_node b folder add f "$T/fb" || fail "folder add"
printf base >"$T/fa/doc.txt"
printf base >"$T/fa/gone.txt"
start_node a
start_node b
connect_pair a b f
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "initial sync"

# Disconnect: b forgets a for a moment (config), both edit.
sh_node b device remove "$(node_id a)" || fail "device remove"
wait_until 20 disconnected a b || fail "still connected"
printf 'edit on a' >"$T/fa/doc.txt"
touch -d '2030-01-01 00:00:00' "$T/fa/doc.txt"	# a's is newer: it wins
printf 'edit on b' >"$T/fb/doc.txt"
touch -d '2029-01-01 00:00:00' "$T/fb/doc.txt"
rm "$T/fa/gone.txt"				# a deletes, b modifies
printf 'b keeps this' >"$T/fb/gone.txt"
wait_until 20 sh -c "[ \"\$(sqlite3 -readonly '$T/a/index.db' \"SELECT deleted FROM files WHERE device=0 AND name='gone.txt'\")\" = 1 ]" ||
    fail "a did not record the delete"
wait_until 20 sh -c "[ \"\$(sqlite3 -readonly '$T/b/index.db' \"SELECT size FROM files WHERE device=0 AND name='doc.txt'\")\" = 9 ]" ||
    fail "b did not record its edit"
sh_node b device add "$(node_id a)" --name a --address "$(listen_addr a)" || fail "re-add"
sh_node b folder share f "$(node_id a)" || fail "re-share"
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "no convergence after the conflict"
expect_eq "winner" "$(cat "$T/fb/doc.txt")" "edit on a"
copy=$(cd "$T/fa" && ls doc.sync-conflict-*.txt 2>/dev/null)
[ -n "$copy" ] || fail "no conflict copy on a: $(ls "$T/fa")"
expect_eq "one copy" "$(printf '%s\n' "$copy" | wc -l)" 1
expect_eq "loser kept" "$(cat "$T/fa/$copy")" "edit on b"
[ -f "$T/fb/$copy" ] || fail "conflict copy name differs on b"
# Modify beats delete: the modified file survives everywhere.
expect_eq "modify wins" "$(cat "$T/fa/gone.txt")" "b keeps this"
sh_node a conflicts --json | jq -e --arg c "$copy" 'map(.name) | index($c) != null' >/dev/null ||
    fail "shoal conflicts does not list the copy"

# max_conflicts = 1 on b (hand-edited config, reloaded): a second conflict
# of doc.txt replaces the first copy, and the removal reaches a too.
grep -q '^max_conflicts = 10$' "$T/b/config" || fail "config lacks the default max_conflicts"
sed -i 's/^max_conflicts = 10$/max_conflicts = 1/' "$T/b/config"
wait_until 20 sh -c "'$SHOAL' --home '$T/b' folder list --json | jq -e '.[0].max_conflicts == 1' >/dev/null" ||
    fail "b did not take max_conflicts"
sh_node b device remove "$(node_id a)" || fail "device remove (2)"
wait_until 20 disconnected a b || fail "still connected (2)"
printf 'second edit on a' >"$T/fa/doc.txt"
touch -d '2031-01-01 00:00:00' "$T/fa/doc.txt"
printf 'second edit on b' >"$T/fb/doc.txt"
touch -d '2030-06-01 00:00:00' "$T/fb/doc.txt"
wait_until 20 sh -c "[ \"\$(sqlite3 -readonly '$T/b/index.db' \"SELECT size FROM files WHERE device=0 AND name='doc.txt'\")\" = 16 ]" ||
    fail "b did not record its second edit"
sh_node b device add "$(node_id a)" --name a --address "$(listen_addr a)" || fail "re-add (2)"
sh_node b folder share f "$(node_id a)" || fail "re-share (2)"
wait_until 60 sh -c "[ \"\$(cd '$T/fa' && ls doc.sync-conflict-*.txt | wc -l)\" = 1 ] && ! [ -e '$T/fa/$copy' ]" ||
    fail "a still has the first copy: $(ls "$T/fa")"
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "no convergence after the second conflict"
copy2=$(cd "$T/fb" && ls doc.sync-conflict-*.txt 2>/dev/null)
expect_eq "one copy left" "$(printf '%s\n' "$copy2" | wc -l)" 1
expect_eq "newest loser kept" "$(cat "$T/fb/$copy2")" "second edit on b"
expect_eq "winner (2)" "$(cat "$T/fa/doc.txt")" "second edit on a"
log "passed"
