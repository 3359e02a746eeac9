# SPDX-License-Identifier: MIT
# A rename is a delete plus a create whose blocks exist locally: the data
# does not cross the network again (bytes on the wire stay far below the
# file size).
. ./lib.sh

init_node a
init_node b
sh_node a folder add f "$T/fa" || fail "folder add"
sh_node b folder add f "$T/fb" || fail "folder add"
head -c 4000000 /dev/urandom >"$T/fa/movie.bin"
start_node a
start_node b
connect_pair a b f
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "initial sync"
before=$(peer_field b a in_bytes)
mv "$T/fa/movie.bin" "$T/fa/renamed.bin"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "rename not synced"
after=$(peer_field b a in_bytes)
moved=$((after - before))
[ "$moved" -lt 400000 ] || fail "rename moved $moved bytes over the wire (file is 4000000)"
log "passed ($moved bytes on the wire for a 4 MB rename)"
