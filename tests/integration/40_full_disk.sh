# SPDX-License-Identifier: MIT
# A receiver whose folder's file system fills up in the middle of a file
# (a real 4 MiB tmpfs; min_disk_free 0, so that the write itself fails):
# the folder stops with a clear error, the older version of the file stays
# as it was, the daemon and its index keep working, and once there is room
# (the tmpfs grown) a rescan request finishes the sync from the blocks the
# temporary file kept.
#
# Needs root and tmpfs mounts; otherwise it skips (exit 77).
. ./lib.sh

tmpfs_or_skip "$T/fb" 4m

init_node a
init_node b
sh_node a folder add f "$T/fa" || fail "folder add"
chmod 0755 "$T/fa"	# as the tmpfs root below
sh_node b folder add f "$T/fb" || fail "folder add"
sed -i 's|^min_disk_free = .*|min_disk_free = 0|' "$T/b/config"
head -c 1000000 /dev/urandom >"$T/fa/data.bin"
start_node a
start_node b
connect_pair a b f
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "initial sync: b=$(status b)"
cp "$T/fb/data.bin" "$T/old.bin"

# 6 MB do not fit next to the old 1 MB in 4 MiB.
head -c 6000000 /dev/urandom >"$T/new.bin"
cp "$T/new.bin" "$T/fa/data.bin.part"
mv "$T/fa/data.bin.part" "$T/fa/data.bin"
disk_error() {
	[ "$(folder_field b f state)" = error ] &&
	    folder_field b f error | grep -q 'sync stopped: no space left on device (free some space; nothing was replaced)'
}
wait_until 60 disk_error || fail "no full-disk error: b=$(status b)"
cmp -s "$T/old.bin" "$T/fb/data.bin" || fail "the old version was touched"
ls "$T"/fb/.syncthing.data.bin.tmp >/dev/null 2>&1 || fail "temporary file not kept"
grep -q 'no space left on device' "$T/b.log" || fail "not logged"
# Still answering, index readable.
expect_eq "index" "$(db_query b "SELECT count(*) FROM files WHERE device=0 AND name='data.bin'")" "1"

# Room again: a rescan request retries at once, and the blocks already
# in the temporary file are not fetched again.
mount -o remount,size=32m "$T/fb" || fail "remount"
sh_node b scan f || fail "scan"
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "no sync after space was freed: b=$(status b)"
cmp -s "$T/new.bin" "$T/fb/data.bin" || fail "content"
expect_eq "error" "$(folder_field b f error)" "null"
[ "$(folder_field b f pull.bytes_reused)" -gt 0 ] || fail "temporary file not reused: $(status b)"
[ -z "$(find "$T/fb" -name '.syncthing.*.tmp')" ] || fail "temporary file left"
log "passed (reused $(folder_field b f pull.bytes_reused) bytes)"
