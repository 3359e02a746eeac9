# SPDX-License-Identifier: MIT
# Deletions propagate: files, then directories once empty; a node that was
# offline during the changes catches up.
. ./lib.sh

init_node a
init_node b
sh_node a folder add f "$T/fa" || fail "folder add"
sh_node b folder add f "$T/fb" || fail "folder add"
mkdir -p "$T/fa/tree/sub"
for x in 1 2 3; do printf $x >"$T/fa/tree/sub/$x"; done
printf keep >"$T/fa/keep"
start_node a
start_node b
connect_pair a b f
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "initial sync"

rm "$T/fa/tree/sub/1"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "file delete"
[ ! -e "$T/fb/tree/sub/1" ] || fail "file not deleted on b"
rm -rf "$T/fa/tree"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "tree delete"
[ ! -e "$T/fb/tree" ] || fail "directory tree not deleted on b"

# b offline while a changes things; b catches up on restart.
stop_node b
printf new >"$T/fa/while-away"
rm "$T/fa/keep"
start_node b
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "offline catch-up"
log "passed"
