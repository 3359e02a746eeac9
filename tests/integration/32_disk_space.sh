# SPDX-License-Identifier: MIT
# min_disk_free: a node whose folder may not eat into its free space
# leaves the file out, says why in its status (not in sync), leaves no
# temporary file, and pulls it as soon as an edit of its config makes room.
. ./lib.sh

init_node a
init_node b
sh_node a folder add f "$T/fa" || fail "folder add"
sh_node b folder add f "$T/fb" || fail "folder add"
expect_eq "default" "$(sh_node b folder list --json |
    jq -r '.[] | select(.id == "f") | .min_disk_free')" "1%"
# 100 % of the disk must stay free: nothing fits.
sed -i 's|^min_disk_free = .*|min_disk_free = 100%|' "$T/b/config"
head -c 300000 /dev/urandom >"$T/fa/big.bin"
printf 'tiny' >"$T/fa/tiny.txt"
start_node a
start_node b
connect_pair a b f

space_error() {
	folder_field b f error | grep -q '2 files wait for disk space: the largest needs 293.0 KiB more, .* is free and min_disk_free keeps .* (100%)'
}
wait_until 60 space_error || fail "no disk space error: b=$(status b)"
# Not stopped: the folder goes on scanning and retrying (every 5 s, then
# less often), and files_failed counts every try.
[ "$(folder_field b f state)" != error ] || fail "folder stopped: $(status b)"
expect_eq "in sync" "$(folder_field b f in_sync)" "false"
[ "$(folder_field b f pull.files_failed)" -ge 2 ] || fail "failures not counted"
[ ! -e "$T/fb/big.bin" ] && [ ! -e "$T/fb/tiny.txt" ] ||
	fail "a file was pulled below min_disk_free"
[ -z "$(find "$T/fb" -name '.syncthing.*.tmp')" ] || fail "temporary file left"
grep -q 'wait for disk space' "$T/b.log" || fail "not logged"

# Room again: the reload pulls at once, and the message goes. After two
# failed passes the retry timer is 10 s away, so only the reload's own
# pull can make it in time.
failed_twice() { [ "$(folder_field b f pull.files_failed)" -ge 4 ]; }
wait_until 30 failed_twice || fail "no second try: b=$(status b)"
sed -i 's|^min_disk_free = .*|min_disk_free = 0|' "$T/b/config"
wait_until 4 synced a "$T/fa" b "$T/fb" f || fail "no sync soon after the edit: b=$(status b)"
expect_eq "error" "$(folder_field b f error)" "null"
grep -q 'enough disk space again' "$T/b.log" || fail "recovery not logged"
log "passed"
