# SPDX-License-Identifier: MIT
# A node that ignores names another node has is in sync all the same: the
# index counts those names as needed (it does not know the patterns), the
# puller never pulls them, and the status must not wait for them, also
# after the other node changes them. Once the pattern goes, they come.
. ./lib.sh

init_node a
init_node b
sh_node a folder add f "$T/fa" || fail "folder add"
sh_node b folder add f "$T/fb" || fail "folder add"
printf '*.log\n' >"$T/fb/.stignore"
printf keep >"$T/fa/keep.txt"
printf log >"$T/fa/x.log"
mkdir "$T/fa/logs"
printf more >"$T/fa/logs/y.log"
start_node a
start_node b
connect_pair a b f

ignored_in_sync() {
	[ -f "$T/fb/keep.txt" ] && [ -d "$T/fb/logs" ] && in_sync a f &&
	    in_sync b f
}
wait_until 30 ignored_in_sync || fail "not in sync with ignored names: b=$(status b)"
expect_eq "need" "$(folder_field b f need_bytes)" "0"
[ ! -e "$T/fb/x.log" ] && [ ! -e "$T/fb/logs/y.log" ] || fail "an ignored name was pulled"

# The other node changes and deletes ignored names: still in sync.
printf 'log, longer' >"$T/fa/x.log"
rm "$T/fa/logs/y.log"
printf new >"$T/fa/new.txt"
after_change() { [ -f "$T/fb/new.txt" ] && in_sync a f && in_sync b f; }
wait_until 30 after_change || fail "not in sync after remote changes to ignored names: b=$(status b)"
[ ! -e "$T/fb/x.log" ] || fail "an ignored name was pulled"

# Without the pattern the name is pulled like any other.
rm "$T/fb/.stignore"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "not pulled once no longer ignored: b=$(status b)"
expect_eq "content" "$(cat "$T/fb/x.log")" "log, longer"

# A name b had, then ignored (its record flagged so), deleted while
# ignored and then no longer ignored: its flagged record stays, as no file
# replaces it, but the name comes back from a all the same (it stayed
# away for good, and b said it was in sync).
printf '*.log\n' >"$T/fb/.stignore"
flagged() { [ "$(db_query b "SELECT COUNT(*) FROM files WHERE name = 'x.log' AND device = 0 AND invalid = 1")" = 1 ]; }
wait_until 30 flagged || fail "x.log not flagged as ignored on b: $(db_query b "SELECT name, invalid FROM files WHERE name = 'x.log'")"
rm "$T/fb/x.log"
printf 'log, edited on a' >"$T/fa/x.log"
rm "$T/fb/.stignore"
back() { [ "$(cat "$T/fb/x.log" 2>/dev/null)" = "log, edited on a" ] && in_sync a f && in_sync b f; }
wait_until 30 back || fail "an unignored name deleted while ignored did not come back: b=$(status b)"

# Ignored and un-ignored again, unchanged: b's record comes back with only
# b's counter (it cannot know what changed meanwhile), concurrent with a's,
# but the bytes are the same, so no conflict copy is made anywhere.
printf '*.log\n' >"$T/fb/.stignore"
wait_until 30 flagged || fail "x.log not flagged as ignored on b again"
rm "$T/fb/.stignore"
valid() { [ "$(db_query b "SELECT COUNT(*) FROM files WHERE name = 'x.log' AND device = 0 AND invalid = 0")" = 1 ]; }
wait_until 30 valid || fail "x.log not valid again on b"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "not in sync after un-ignoring: b=$(status b)"
copies=$(find "$T/fa" "$T/fb" -name '*sync-conflict*')
[ -z "$copies" ] || fail "conflict copies of identical files: $copies"

# A directory b had, then ignored, then deleted while ignored, changed on
# a meanwhile: once no longer ignored it comes back whole. (b's flagged
# records, whose vectors the flag had bumped past a's, were taken as
# newer than a's: the directories were never made, the files in them
# failed for good.)
mkdir -p "$T/fa/var/sub"
printf one >"$T/fa/var/one"
printf two >"$T/fa/var/sub/two"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "var not synced"
printf 'var\n' >"$T/fb/.stignore"
var_flagged() { [ "$(db_query b "SELECT COUNT(*) FROM files WHERE name LIKE 'var%' AND device = 0 AND invalid = 1")" = 4 ]; }
wait_until 30 var_flagged || fail "var not flagged as ignored on b: $(db_query b "SELECT name, invalid FROM files WHERE device = 0")"
rm -r "$T/fb/var"
printf 'one, edited' >"$T/fa/var/one"
printf three >"$T/fa/var/three"
a_has_three() { [ "$(db_query a "SELECT COUNT(*) FROM files WHERE device = 0 AND name = 'var/three'")" = 1 ]; }
wait_until 30 a_has_three || fail "a did not scan var/three"
rm "$T/fb/.stignore"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "var did not come back: b=$(status b)"
expect_eq "var/one" "$(cat "$T/fb/var/one")" "one, edited"
copies=$(find "$T/fa" "$T/fb" -name '*sync-conflict*')
[ -z "$copies" ] || fail "conflict copies: $copies"
log "passed"
