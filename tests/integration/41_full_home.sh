# SPDX-License-Identifier: MIT
# The disk of a receiver's home (its index database) fills up: the daemon
# keeps running, every folder's status says why it is stuck, the log does
# not fill with a line per file, and once there is room (the tmpfs grown)
# the sync completes by itself and the message goes.
#
# Needs root and tmpfs mounts; otherwise it skips (exit 77).
. ./lib.sh

tmpfs_or_skip "$T/b" 1m

init_node a
init_node b
sh_node a folder add f "$T/fa" || fail "folder add"
sh_node b folder add f "$T/fb" || fail "folder add"
# 5,000 names: their index does not fit in what is left of 1 MiB.
for d in $(seq 50); do
	mkdir "$T/fa/d$d"
	for i in $(seq 100); do
		echo "file $d $i" >"$T/fa/d$d/f$i.txt"
	done
done
start_node a
start_node b
connect_pair a b f

db_full() {
	folder_field b f error | grep -q "the index database in \"$T/b\" cannot grow: its disk is full"
}
wait_until 60 db_full || fail "no full-disk error: b=$(status b)"
grep -q 'database or disk is full' "$T/b.log" || fail "not logged"
# A few passes have failed by now; each says so in one line, not one per
# file.
[ "$(grep -c 'no connected device has' "$T/b.log")" -lt 100 ] ||
	fail "a log line per file"

mount -o remount,size=64m "$T/b" || fail "remount"
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "no sync after space was freed: b=$(status b)"
expect_eq "error" "$(folder_field b f error)" "null"
expect_eq "files" "$(folder_field b f local_files)" "5000"
log "passed"
