# SPDX-License-Identifier: MIT
# kill -9 of the receiver mid-transfer: after a restart it finishes from
# the blocks already verified in its temporary file (they are not fetched
# again) and the result is byte-identical, never a corrupted file.
. ./lib.sh

init_node a
init_node b
sh_node a folder add f "$T/fa" || fail "folder add"
sh_node b folder add f "$T/fb" || fail "folder add"
size=$((300 * 1024 * 1024))
head -c $size /dev/urandom >"$T/fa/big.bin"
start_node a
wait_until 60 idle_scanned a f 1 || fail "scan"
start_node b
connect_pair a b f

# Wait until b's temporary file has real data, then kill -9 b.
tmp="$T/fb/.syncthing.big.bin.tmp"
has_data() { [ -f "$tmp" ] && [ "$(du -k "$tmp" | cut -f1)" -gt 20000 ]; }
wait_until 60 has_data || fail "no partial transfer seen"
# Progress while it runs: syncing, with the file's bytes still needed.
jqs b ".folders[0] | .state == \"syncing\" and .need_bytes == $size and
    .need_files == 1 and .pull.running" || fail "progress: $(status b)"
kill -9 "$(cat "$T/b.pid")"
wait "$(cat "$T/b.pid")" 2>/dev/null
rm -f "$T/b.pid"
[ ! -e "$T/fb/big.bin" ] || ! cmp -s "$T/fa/big.bin" "$T/fb/big.bin" ||
    fail "transfer finished before the kill; nothing to resume (make the file bigger)"
[ -e "$T/fb/big.bin" ] && fail "a partial big.bin is in place"
partial=$(du -k "$tmp" | cut -f1)

start_node b
wait_until 120 synced a "$T/fa" b "$T/fb" f || fail "did not finish after restart"
cmp "$T/fa/big.bin" "$T/fb/big.bin" || fail "corrupted file"
reused=$(folder_field b f pull.bytes_reused)
net=$(folder_field b f pull.bytes_network)
[ "$reused" -gt 0 ] || fail "no block of the temp file was reused (partial ${partial} KiB)"
# Counters are totals since b started (a pass that found no peer yet may
# have counted the reused blocks once already): what matters is that the
# network carried less than the file.
[ "$net" -le $((size - 8 * 1048576)) ] || fail "the verified blocks crossed the network again ($net bytes)"
log "passed (partial ${partial} KiB, reused $reused bytes, fetched $net bytes after restart)"
