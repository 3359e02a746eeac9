# SPDX-License-Identifier: MIT
# A-B-C chain: C is not connected to A and gets A's file only through B.
. ./lib.sh

for n in a b c; do
	init_node $n
	sh_node $n folder add f "$T/f$n" || fail "folder add $n"
	start_node $n
done
connect_pair a b f
connect_pair b c f
head -c 500000 /dev/urandom >"$T/fa/from-a.bin"
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "a-b"
wait_until 60 synced b "$T/fb" c "$T/fc" f || fail "b-c"
cmp "$T/fa/from-a.bin" "$T/fc/from-a.bin" || fail "c's copy differs"
jqs c ".peers | map(select(.connected)) | length == 1" || fail "c connected to more than b"
log "passed"
