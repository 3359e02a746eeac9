# SPDX-License-Identifier: MIT
# Changes made while one daemon is stopped reach the other after restart,
# with Shoal as the dialling side (syncthing knows it only as "dynamic"):
# edits, new files, a file and a directory delete, and a concurrent edit
# of the same file on both sides resolved by mtime into one conflict copy
# named with the winner's short ID. First syncthing is stopped (Shoal's
# edit wins, syncthing keeps the copy), then Shoal (syncthing's wins).
. ./lib.sh
. ./synclib.sh
require_syncthing

put() {
	printf '%s' "$3" >"$T/put.tmp"
	touch -d "$4" "$T/put.tmp"
	mv "$T/put.tmp" "$1/$2"
}

st_stop() {
	kill -TERM "$(cat "$T/s.pid")"
	wait "$(cat "$T/s.pid")"
	rm -f "$T/s.pid"
	wait_until 30 sh -c "! pgrep -f -- '[-]-home=$T/s ' >/dev/null" ||
	    fail "syncthing did not exit"
}

# one_copy STEM EXT WINNER_ID CONTENT: exactly one conflict copy of STEM,
# the same on both sides, with the winner's short ID and CONTENT.
one_copy() {
	local _copy _short
	_short=$(printf '%s' "$3" | cut -c1-7)
	_copy=$(cd "$T/fa" && ls -d "$1".sync-conflict-* 2>/dev/null)
	expect_eq "conflict copies of $1$2" "$(printf '%s' "$_copy" | grep -c .)" 1
	printf '%s' "$_copy" | grep -Eq "^$1\.sync-conflict-[0-9]{8}-[0-9]{6}-$_short\\$2\$" ||
	    fail "conflict copy name '$_copy' lacks the winner's short ID $_short"
	[ -f "$T/fs/$_copy" ] || fail "conflict copy name differs on syncthing: $(ls "$T/fs")"
	expect_eq "loser's content in $_copy" "$(cat "$T/fs/$_copy")" "$4"
	log "conflict copy: $_copy"
}

init_node a
sh_node a folder add f "$T/fa" || fail "folder add"
printf 'a one' >"$T/fa/a.txt"
printf 'c base' >"$T/fa/c.txt"
printf 'e base' >"$T/fa/e.txt"
mkdir -p "$T/fa/d/sub"
printf 'x' >"$T/fa/d/x.txt"
printf 'y' >"$T/fa/d/sub/y.txt"
st_init s
mkdir -p "$T/fs/.stfolder" "$T/fs/k"
printf 'b one' >"$T/fs/b.txt"
printf 'k' >"$T/fs/k/k.txt"
printf 'z' >"$T/fs/k/z.txt"

start_node a
$STCTL add-device "$T/s" "$(node_id a)" shoal dynamic || fail "st add-device"
$STCTL add-folder "$T/s" f "$T/fs" "$(node_id a)" || fail "st add-folder"
sh_node a device add "$ST_ID_s" --name st --address "tcp://127.0.0.1:$ST_PORT_s" || fail "device add"
sh_node a folder share f "$ST_ID_s" || fail "share"
st_start s
wait_until 60 connected a s || fail "shoal does not see syncthing connected: $(status a)"
step "initial sync"

# 1. Syncthing is down; both sides change things.
st_stop
put "$T/fs" b.txt 'b edited offline on syncthing' '2028-01-01 00:00:00'
printf 'new on syncthing' >"$T/fs/new-st.txt"
rm "$T/fs/d/x.txt"
put "$T/fs" c.txt 'c on syncthing, older' '2029-01-01 00:00:00'
put "$T/fa" c.txt 'c on shoal' '2030-01-01 00:00:00'
printf 'new on shoal' >"$T/fa/new-sh.txt"
rm -r "$T/fa/k"
wait_until 30 sh -c "[ \"\$(sqlite3 -readonly '$T/a/index.db' \"SELECT size FROM files WHERE device = 0 AND name = 'c.txt'\")\" = 10 ]" ||
    fail "shoal did not record its edit"
st_start s
wait_until 60 connected a s || fail "no reconnection after syncthing restart: $(status a)"
step "after syncthing restart"
expect_eq "b.txt on shoal" "$(cat "$T/fa/b.txt")" 'b edited offline on syncthing'
expect_eq "c.txt winner" "$(cat "$T/fs/c.txt")" 'c on shoal'
[ ! -e "$T/fa/d/x.txt" ] && [ -f "$T/fa/d/sub/y.txt" ] || fail "d/x.txt delete wrong: $(ls -R "$T/fa/d")"
[ ! -e "$T/fs/k" ] || fail "k/ not deleted on syncthing"
one_copy c .txt "$(node_id a)" 'c on syncthing, older'

# 2. Shoal is down; both sides change things.
stop_node a
put "$T/fa" a.txt 'a edited offline on shoal' '2028-02-01 00:00:00'
rm -r "$T/fa/d"
put "$T/fa" e.txt 'e on shoal, older' '2030-01-01 00:00:00'
put "$T/fs" e.txt 'e on syncthing' '2031-01-01 00:00:00'
rm "$T/fs/new-sh.txt"
st_post s "/rest/db/scan?folder=f" || fail "st scan"
wait_until 30 st_local_jq e.txt '.size == 14' || fail "syncthing did not record its edit"
wait_until 30 st_local_jq new-sh.txt '.deleted' || fail "syncthing did not record its delete"
start_node a
wait_until 60 connected a s || fail "no reconnection after shoal restart: $(status a)"
step "after shoal restart"
expect_eq "a.txt on syncthing" "$(cat "$T/fs/a.txt")" 'a edited offline on shoal'
expect_eq "e.txt winner" "$(cat "$T/fa/e.txt")" 'e on syncthing'
[ ! -e "$T/fs/d" ] || fail "d/ not deleted on syncthing"
[ ! -e "$T/fa/new-sh.txt" ] || fail "new-sh.txt not deleted on shoal"
one_copy e .txt "$ST_ID_s" 'e on shoal, older'
one_copy c .txt "$(node_id a)" 'c on syncthing, older'
grep -q "outgoing" "$T/a.log" || fail "shoal did not dial"
log "passed"
