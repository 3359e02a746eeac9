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

# Ignored files on b: (?d) ones do not keep a deleted directory alive;
# other ignored files do (the directory and the file stay).
printf '(?d).DS_Store\nprivate.log\n' >"$T/fb/.stignore"
mkdir -p "$T/fa/d1" "$T/fa/d2"
printf 1 >"$T/fa/d1/x"
printf 2 >"$T/fa/d2/y"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "d1, d2"
printf junk >"$T/fb/d1/.DS_Store"
printf mine >"$T/fb/d2/private.log"
sh_node b scan f || fail "scan b"
wait_until 10 in_sync b f || fail "b after scan"
rm -rf "$T/fa/d1" "$T/fa/d2"
wait_until 30 sh -c "[ ! -e '$T/fb/d1' ]" || fail "d1 kept although only a (?d) file was in it"
wait_until 30 sh -c "[ ! -e '$T/fb/d2/y' ]" || fail "d2/y not deleted"
[ -f "$T/fb/d2/private.log" ] || fail "an ignored file was deleted"
rm "$T/fb/.stignore"

# b offline while a changes things; b catches up on restart.
stop_node b
printf new >"$T/fa/while-away"
rm "$T/fa/keep"
rm -rf "$T/fb/d2"	# let the trees match again
start_node b
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "offline catch-up"
log "passed"
