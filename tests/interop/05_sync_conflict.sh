# SPDX-License-Identifier: MIT
# Concurrent edits between Shoal and Debian's syncthing while they cannot
# talk, in both directions: the newer mtime wins, both trees end identical
# with exactly one conflict copy NAME.sync-conflict-YYYYMMDD-HHMMSS-SHORTID.EXT
# (SHORTID = the winner's, Go's Ext rule) holding the loser's content, and
# a file modified on one side and deleted on the other survives on both.
# Round 1: syncthing pauses Shoal; Shoal wins the edit, Shoal deletes.
# Round 2: Shoal removes syncthing; syncthing wins, syncthing deletes.
. ./lib.sh
. ./synclib.sh
require_syncthing

# put SIDE_DIR NAME CONTENT MTIME: replace NAME atomically (rename) with
# CONTENT and MTIME, so a scan never sees the new content with a stale mtime.
put() {
	printf '%s' "$3" >"$T/put.tmp"
	touch -d "$4" "$T/put.tmp"
	mv "$T/put.tmp" "$1/$2"
}

# check_conflict NAME_PATTERN_PREFIX EXT WINNER_ID LOSER_CONTENT: exactly one
# conflict copy on each side, same name, the winner's short ID, the loser's
# content inside.
check_conflict() {
	local _stem=$1 _ext=$2 _short _copy _n _re
	_short=$(printf '%s' "$3" | cut -c1-7)
	_copy=$(cd "$T/fa" && ls -d "$_stem".sync-conflict-* 2>/dev/null)
	_n=$(printf '%s' "$_copy" | grep -c .)
	[ "$_n" = 1 ] || fail "want one conflict copy of $_stem$_ext on shoal, got $_n: $(ls -a "$T/fa")"
	_re="^$(printf '%s' "$_stem" | sed 's/\./\\./g')\.sync-conflict-[0-9]{8}-[0-9]{6}-$_short$(printf '%s' "$_ext" | sed 's/\./\\./g')\$"
	printf '%s' "$_copy" | grep -Eq "$_re" ||
	    fail "conflict copy name '$_copy' does not match $_re (winner short ID $_short)"
	_n=$(cd "$T/fs" && ls -d "$_stem".sync-conflict-* 2>/dev/null | grep -c .)
	[ "$_n" = 1 ] || fail "want one conflict copy of $_stem$_ext on syncthing, got $_n: $(ls -a "$T/fs")"
	[ -f "$T/fs/$_copy" ] || fail "conflict copy name differs on syncthing: $(ls -a "$T/fs")"
	expect_eq "loser's content in $_copy on shoal" "$(cat "$T/fa/$_copy")" "$4"
	expect_eq "loser's content in $_copy on syncthing" "$(cat "$T/fs/$_copy")" "$4"
	sh_node a conflicts f --json | jq -e --arg c "$_copy" 'map(.name) | index($c) != null' >/dev/null ||
	    fail "shoal conflicts does not list $_copy: $(sh_node a conflicts f --json)"
	log "conflict copy: $_copy"
}

init_node a
sh_node a folder add f "$T/fa" || fail "folder add"
printf 'base doc' >"$T/fa/doc.txt"
printf 'base gone' >"$T/fa/gone.txt"
st_init s
mkdir -p "$T/fs/.stfolder"
printf 'base data' >"$T/fs/data.tar.gz"
printf 'base gone2' >"$T/fs/gone2.txt"
setup_pair
step "initial sync"
A=$(node_id a)

# ---- Round 1: syncthing pauses Shoal; Shoal's edit is newer. ----
st_post s "/rest/system/pause?device=$A" || fail "pause"
wait_until 30 disconnected a s || fail "round 1: still connected after pause"
put "$T/fa" doc.txt 'edit on shoal' '2030-01-01 00:00:00'
rm "$T/fa/gone.txt"
put "$T/fs" doc.txt 'edit on syncthing, older' '2029-01-01 00:00:00'
# The modification's mtime is older than the deleted file's: only the
# "modify beats delete" rule (1.x), not the mtime rule, keeps it.
put "$T/fs" gone.txt 'syncthing keeps this' '2020-01-01 00:00:00'
wait_until 30 sh -c "[ \"\$(sqlite3 -readonly '$T/a/index.db' \"SELECT deleted FROM files WHERE device = 0 AND name = 'gone.txt'\")\" = 1 ] &&
    [ \"\$(sqlite3 -readonly '$T/a/index.db' \"SELECT size FROM files WHERE device = 0 AND name = 'doc.txt'\")\" = 13 ]" ||
    fail "round 1: shoal did not record its edit and delete"
st_post s "/rest/db/scan?folder=f" || fail "st scan"
wait_until 30 st_local_jq doc.txt '.size == 24' || fail "round 1: syncthing did not record its edit"
wait_until 30 st_local_jq gone.txt '.size == 20' || fail "round 1: syncthing did not record its edit"
st_post s "/rest/system/resume?device=$A" || fail "resume"
wait_until 60 connected a s || fail "round 1: no reconnection: $(status a)"
step "round 1 conflict"
expect_eq "round 1 winner on shoal" "$(cat "$T/fa/doc.txt")" "edit on shoal"
expect_eq "round 1 winner on syncthing" "$(cat "$T/fs/doc.txt")" "edit on shoal"
check_conflict doc .txt "$A" 'edit on syncthing, older'
expect_eq "round 1 modify beats delete (shoal)" "$(cat "$T/fa/gone.txt" 2>&1)" "syncthing keeps this"
expect_eq "round 1 modify beats delete (syncthing)" "$(cat "$T/fs/gone.txt" 2>&1)" "syncthing keeps this"

# ---- Round 2: Shoal forgets syncthing; syncthing's edit is newer. ----
sh_node a device remove "$ST_ID_s" || fail "device remove"
wait_until 30 sh -c "! $STCTL get '$T/s' /rest/system/connections |
    jq -e '.connections[\"$A\"].connected' >/dev/null" ||
    fail "round 2: syncthing still sees shoal connected"
put "$T/fs" data.tar.gz 'edit on syncthing' '2031-06-01 12:00:00'
rm "$T/fs/gone2.txt"
put "$T/fa" data.tar.gz 'edit on shoal, older' '2030-06-01 12:00:00'
put "$T/fa" gone2.txt 'shoal keeps this' '2020-06-01 12:00:00'
wait_until 30 sh -c "[ \"\$(sqlite3 -readonly '$T/a/index.db' \"SELECT size FROM files WHERE device = 0 AND name = 'data.tar.gz'\")\" = 20 ] &&
    [ \"\$(sqlite3 -readonly '$T/a/index.db' \"SELECT size FROM files WHERE device = 0 AND name = 'gone2.txt'\")\" = 16 ]" ||
    fail "round 2: shoal did not record its edits"
st_post s "/rest/db/scan?folder=f" || fail "st scan"
wait_until 30 st_local_jq data.tar.gz '.size == 17' || fail "round 2: syncthing did not record its edit"
wait_until 30 st_local_jq gone2.txt '.deleted' || fail "round 2: syncthing did not record its delete"
sh_node a device add "$ST_ID_s" --name st --address "tcp://127.0.0.1:$ST_PORT_s" || fail "re-add"
sh_node a folder share f "$ST_ID_s" || fail "re-share"
wait_until 60 connected a s || fail "round 2: no reconnection: $(status a)"
step "round 2 conflict"
expect_eq "round 2 winner on shoal" "$(cat "$T/fa/data.tar.gz")" "edit on syncthing"
expect_eq "round 2 winner on syncthing" "$(cat "$T/fs/data.tar.gz")" "edit on syncthing"
check_conflict data.tar .gz "$ST_ID_s" 'edit on shoal, older'
expect_eq "round 2 modify beats delete (shoal)" "$(cat "$T/fa/gone2.txt" 2>&1)" "shoal keeps this"
expect_eq "round 2 modify beats delete (syncthing)" "$(cat "$T/fs/gone2.txt" 2>&1)" "shoal keeps this"
# Round 1's copy is still the only copy of doc.txt, and there are no others.
check_conflict doc .txt "$A" 'edit on syncthing, older'
expect_eq "conflict copies on shoal" "$(ls "$T/fa" | grep -c sync-conflict)" 2
log "passed"
