# SPDX-License-Identifier: MIT
# Two nodes converge: initial sync both ways, then edits on each side,
# directories, an empty file; trees compared byte for byte and by mode.
. ./lib.sh

init_node a
init_node b
sh_node a folder add f "$T/fa" || fail "folder add"
sh_node b folder add f "$T/fb" || fail "folder add"
mkdir -p "$T/fa/docs/deep" "$T/fb/pics"
head -c 3000000 /dev/urandom >"$T/fa/docs/big.bin"
printf 'alpha' >"$T/fa/docs/deep/a.txt"
: >"$T/fa/empty"
chmod 0600 "$T/fa/docs/deep/a.txt"
printf 'beta' >"$T/fb/pics/b.txt"
start_node a
start_node b
connect_pair a b f
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "initial sync: a=$(status a) b=$(status b)"

# Edits on each side propagate.
printf 'alpha, edited on b' >"$T/fb/docs/deep/a.txt"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "edit on b did not reach a"
expect_eq "content" "$(cat "$T/fa/docs/deep/a.txt")" "alpha, edited on b"
printf 'more' >>"$T/fa/pics/b.txt"
mkdir "$T/fa/newdir"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "edit on a did not reach b"
expect_eq "content" "$(cat "$T/fb/pics/b.txt")" "betamore"
[ -d "$T/fb/newdir" ] || fail "directory not created"
# A pulled file keeps the version it came with: no counter was bumped by b.
expect_eq "same version both sides" \
    "$(db_query a "SELECT hex(version) FROM files WHERE device=0 AND name='pics/b.txt'")" \
    "$(db_query b "SELECT hex(version) FROM files WHERE device=0 AND name='pics/b.txt'")"
log "passed"
