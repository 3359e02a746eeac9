# SPDX-License-Identifier: MIT
# File versioning: a node with "simple" versioning keeps each file a remote
# change replaces or deletes in .stversions (tagged name, content intact);
# `shoal versions` lists them and `shoal restore` brings one back, keeping
# the file it replaces; the restored file syncs back like any edit. A
# "trashcan" folder keeps a deleted file under its own name.
. ./lib.sh

init_node a
init_node b
sh_node a folder add f "$T/fa" || fail "folder add"
sh_node b folder add f "$T/fb" --versioning simple || fail "folder add simple"
sh_node a folder add t "$T/ta" || fail "folder add t"
sh_node b folder add t "$T/tb" --versioning trashcan 2>"$T/warn" || fail "folder add trashcan"
[ ! -s "$T/warn" ] || fail "folder add warned: $(cat "$T/warn")"
mkdir -p "$T/fa/docs"
printf 'first' >"$T/fa/docs/note.txt"
printf 'bye' >"$T/fa/gone.txt"
printf 'trash me' >"$T/ta/t.txt"
start_node a
start_node b
connect_pair a b f
sh_node a folder share t "$(node_id b)" || fail "share t on a"
sh_node b folder share t "$(node_id a)" || fail "share t on b"
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "initial sync"
wait_until 60 synced a "$T/ta" b "$T/tb" t || fail "initial sync t"
[ ! -e "$T/fb/.stversions" ] || fail "versions kept without a change"

printf 'second' >"$T/fa/docs/note.txt"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "edit 1"
printf 'third!' >"$T/fa/docs/note.txt"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "edit 2"
rm "$T/fa/gone.txt"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "delete"
rm "$T/ta/t.txt"
wait_until 30 synced a "$T/ta" b "$T/tb" t || fail "delete t"

# What b kept, under Syncthing's names, with the old contents.
kept=$(cd "$T/fb/.stversions" && find . -type f | sort)
expect_eq "kept files" "$(printf '%s\n' "$kept" | sed 's/~[0-9]\{8\}-[0-9]\{6\}\(-[0-9]*\)\{0,1\}\./~TAG./')" \
    "$(printf './docs/note~TAG.txt\n./docs/note~TAG.txt\n./gone~TAG.txt')"
expect_eq "deleted content" "$(cat "$T"/fb/.stversions/gone~*.txt)" "bye"
expect_eq "trash can" "$(cat "$T/tb/.stversions/t.txt")" "trash me"
[ ! -e "$T/fa/.stversions" ] || fail "a kept versions of its own edits"

# versions: the CLI lists them, newest first per name.
sh_node b versions f --json >"$T/v.json" || fail "versions --json"
expect_eq "versions listed" "$(jq -r '[.[].name] | join(",")' "$T/v.json")" \
    "docs/note.txt,docs/note.txt,gone.txt"
expect_eq "sizes" "$(jq -r '[.[].size] | join(",")' "$T/v.json")" "6,5,3"
expect_eq "only one name" "$(sh_node b versions f docs/note.txt | wc -l)" 2
sh_node b versions f nosuch.txt >"$T/none" || fail "versions of a name without any"
[ ! -s "$T/none" ] || fail "versions listed for a name without any"
sh_node b versions nosuch 2>/dev/null && fail "versions of an unknown folder succeeded"
sh_node b versions f ../x 2>/dev/null && fail "versions accepted a path outside the folder"

# restore: the oldest note ("first") comes back on b; b's current one is
# kept; the restored content is a local change that reaches a.
oldest=$(jq -r '[.[] | select(.name == "docs/note.txt")] | last | .unix' "$T/v.json")
sh_node b restore f docs/note.txt --at "@$oldest" >"$T/r.out" || fail "restore: $(cat "$T/r.out")"
grep -q 'restored "docs/note.txt"' "$T/r.out" || fail "restore said: $(cat "$T/r.out")"
expect_eq "restored on b" "$(cat "$T/fb/docs/note.txt")" "first"
wait_until 30 sh -c "[ \"\$(cat '$T/fa/docs/note.txt')\" = first ]" || fail "restore did not sync to a"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "after restore"
expect_eq "versions after restore" "$(sh_node b versions f docs/note.txt --json | jq -r '[.[].size] | join(",")')" "6,6"
# A deleted file comes back, and so does the trash can's.
sh_node b restore f gone.txt >/dev/null || fail "restore gone.txt"
wait_until 30 sh -c "[ \"\$(cat '$T/fa/gone.txt' 2>/dev/null)\" = bye ]" || fail "restored gone.txt did not sync"
sh_node b restore t t.txt >/dev/null || fail "restore from the trash can"
wait_until 30 sh -c "[ \"\$(cat '$T/ta/t.txt' 2>/dev/null)\" = 'trash me' ]" || fail "trash can restore did not sync"
sh_node b restore f gone.txt --at 2001-01-01T00:00:00 2>/dev/null && fail "restore found a version before any"
sh_node b restore f gone.txt --at yesterday 2>/dev/null && fail "restore took a bad --at"
# simple keeps the newest 5 of a file: after five more edits there are 5,
# the newest first (thinned after each pull pass that kept one).
for i in 1 2 3 4 5; do
	printf 'edit %s' "$i" >"$T/fa/docs/note.txt"
	wait_until 30 sh -c "[ \"\$(cat '$T/fb/docs/note.txt')\" = 'edit $i' ]" || fail "edit $i"
done
five() { [ "$(sh_node b versions f docs/note.txt --json | jq length)" = 5 ]; }
wait_until 10 five || fail "versions of note.txt: $(sh_node b versions f docs/note.txt)"
expect_eq "newest kept" "$(cat "$T/fb/.stversions/$(sh_node b versions f docs/note.txt --json | jq -r '.[0].stored' | sed 's|^.stversions/||')")" "edit 4"
log "passed"
