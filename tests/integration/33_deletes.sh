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

# Ignored files on b: (?d) ones do not keep a deleted directory alive, nor
# do (?d) directories, which go with all they hold (a symlink in one is
# removed, not followed); other ignored files do (the directory and the
# file stay).
printf '(?d).DS_Store\n(?d)__pycache__\nprivate.log\n' >"$T/fb/.stignore"
mkdir -p "$T/fa/d1" "$T/fa/d2"
printf 1 >"$T/fa/d1/x"
printf 2 >"$T/fa/d2/y"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "d1, d2"
printf junk >"$T/fb/d1/.DS_Store"
mkdir -p "$T/fb/d1/__pycache__/deeper"
printf pyc >"$T/fb/d1/__pycache__/x.pyc"
printf pyc >"$T/fb/d1/__pycache__/deeper/y.pyc"
printf outside >"$T/outside.txt"
ln -s "$T/outside.txt" "$T/fb/d1/__pycache__/link"
ln -s "$T" "$T/fb/d1/__pycache__/dirlink"
printf mine >"$T/fb/d2/private.log"
sh_node b scan f || fail "scan b"
wait_until 10 in_sync b f || fail "b after scan"
rm -rf "$T/fa/d1" "$T/fa/d2"
wait_until 30 sh -c "[ ! -e '$T/fb/d1' ]" || fail "d1 kept although only (?d) entries were in it"
[ "$(cat "$T/outside.txt")" = outside ] || fail "a symlink's target was removed"
[ -f "$T/fa/keep" ] || fail "a directory symlink was followed"
wait_until 30 sh -c "[ ! -e '$T/fb/d2/y' ]" || fail "d2/y not deleted"
[ -f "$T/fb/d2/private.log" ] || fail "an ignored file was deleted"
rm "$T/fb/.stignore"

# b offline while a changes things; b catches up on restart.
stop_node b
printf new >"$T/fa/while-away"
rm "$T/fa/keep"
rm -rf "$T/fb/d2"	# let the trees match again
start_node b
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "offline catch-up: a=$(status a) b=$(status b)"
log "passed"
