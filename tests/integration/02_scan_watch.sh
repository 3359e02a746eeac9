# SPDX-License-Identifier: MIT
# serve scans a folder, then the watcher picks up creates, modifies,
# renames and deletes of files and directories; status --json and the
# index follow.
. ./lib.sh

init_node a
F="$T/fa"
sh_node a folder add f "$F" || fail "folder add"
printf hello >"$F/a.txt"
mkdir -p "$F/dir/sub"
printf 'twelve bytes' >"$F/dir/b.txt"
: >"$F/empty"
ln -s a.txt "$F/link"
chmod 0640 "$F/dir/b.txt"

start_node a
wait_until 20 idle_scanned a f 1 || fail "initial scan did not finish"
expect_eq "local_files" "$(folder_field a f local_files)" 4
expect_eq "local_bytes" "$(folder_field a f local_bytes)" 17
expect_eq "in_sync" "$(folder_field a f in_sync)" true

# The index holds what the scan saw (local device = 0).
q() { db_query a "SELECT $1 FROM files WHERE device = 0 AND name = '$2'"; }
expect_eq "a.txt size" "$(q size a.txt)" 5
expect_eq "b.txt perms" "$(q permissions dir/b.txt)" "$(printf %d 0640)"
expect_eq "link type" "$(q type link)" 4
expect_eq "link target" "$(q symlink_target link)" a.txt
expect_eq "dir type" "$(q type dir/sub)" 1
expect_eq "marker not indexed" "$(db_query a "SELECT count(*) FROM files WHERE name LIKE '.st%'")" 0
seq1=$(db_query a "SELECT max(sequence) FROM files WHERE device = 0")
mt=$(stat -c %Y "$F/a.txt")
expect_eq "mtime s" "$(q modified_s a.txt)" "$mt"

# Modify: new size shows up without a manual rescan (watcher).
printf 'hello, world' >"$F/a.txt"
wait_until 10 jqs a '.folders[0].local_bytes == 24' || fail "modify not seen: $(status a)"
seq2=$(q sequence a.txt)
[ "$seq2" -gt "$seq1" ] || fail "sequence did not increase ($seq2 <= $seq1)"

# Rename a file: old name becomes a tombstone, new one appears.
mv "$F/dir/b.txt" "$F/dir/c.txt"
wait_until 10 sh -c "[ \"\$(sqlite3 -readonly '$T/a/index.db' \"SELECT deleted FROM files WHERE device=0 AND name='dir/b.txt'\")\" = 1 ]" ||
    fail "rename: old name not deleted"
wait_until 10 sh -c "[ \"\$(sqlite3 -readonly '$T/a/index.db' \"SELECT deleted FROM files WHERE device=0 AND name='dir/c.txt'\")\" = 0 ]" ||
    fail "rename: new name not indexed"

# A new directory with a file inside is watched and indexed.
mkdir "$F/newdir"
printf abc >"$F/newdir/x"
wait_until 10 jqs a '.folders[0].local_files == 5' || fail "new dir file not seen: $(status a)"
printf abcdef >"$F/newdir/x"
wait_until 10 sh -c "[ \"\$(sqlite3 -readonly '$T/a/index.db' \"SELECT size FROM files WHERE device=0 AND name='newdir/x'\")\" = 6 ]" ||
    fail "change inside new directory not seen"

# Delete a directory tree: every entry below becomes a tombstone.
rm -rf "$F/dir"
wait_until 10 sh -c "[ \"\$(sqlite3 -readonly '$T/a/index.db' \"SELECT count(*) FROM files WHERE device=0 AND (name='dir' OR name LIKE 'dir/%') AND deleted=0\")\" = 0 ]" ||
    fail "directory delete not recorded"
expect_eq "tombstones kept" "$(db_query a "SELECT count(*) FROM files WHERE device=0 AND name IN ('dir','dir/sub','dir/c.txt') AND deleted=1")" 3
wait_until 10 jqs a '.folders[0].local_files == 4 and .folders[0].state == "idle"' ||
    fail "counts after delete: $(status a)"

# A manual scan request through the CLI completes.
n=$(folder_field a f scan.completed)
sh_node a scan f || fail "scan request"
wait_until 10 idle_scanned a f $((n + 1)) || fail "requested scan did not run"
sh_node a scan nosuch 2>/dev/null && fail "scan of unknown folder succeeded"

# Sequences are unique and strictly increasing per folder.
expect_eq "unique sequences" "$(db_query a "SELECT count(DISTINCT sequence) = count(*) FROM files WHERE device=0")" 1

# SIGTERM: clean exit, API address file removed.
stop_node a
[ ! -f "$T/a/api.addr" ] || fail "api.addr left behind"
grep -q 'shutting down (SIGTERM)' "$T/a.log" || fail "no shutdown log line"

# Offline changes are found by the initial scan of the next start.
rm "$F/empty"
start_node a
wait_until 20 sh -c "[ \"\$(sqlite3 -readonly '$T/a/index.db' \"SELECT deleted FROM files WHERE device=0 AND name='empty'\")\" = 1 ]" ||
    fail "offline delete not found on restart"
log "passed"
