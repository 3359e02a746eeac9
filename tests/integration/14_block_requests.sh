# SPDX-License-Identifier: MIT
# Block requests end to end: a peer's file fetched block by block matches
# the original; a block that changed on disk (new mtime) is refused by the
# server, not served wrong; a block whose content changed behind unchanged
# size, mtime and inode is served without the server hashing it (it trusts
# the metadata as its scanner does) and the requester's hash check rejects
# it; a file grown and rescanned is served against its new record; a
# peer answering with wrong data is caught by the hash check.
. ./lib.sh

init_node a
init_node b
init_node h
sh_node a folder add f "$T/fa" --no-watch || fail "folder add"
sh_node b folder add f "$T/fb" || fail "folder add"
head -c 1000000 /dev/urandom >"$T/fa/big.bin"
: >"$T/fa/empty"
printf 'will change' >"$T/fa/change.txt"
printf 'original 11' >"$T/fa/same.txt"
start_node a
start_node b
connect_pair a b f
wait_until 20 remote_is b a f 4 || fail "b lacks a's index"

fetch_done() { api b GET /rest/debug/fetch | jq -e '.done' >/dev/null; }
aid=$(node_id a)
api b POST "/rest/debug/fetch?device=$aid&folder=f&name=big.bin" >/dev/null || fail "fetch start"
wait_until 20 fetch_done || fail "fetch did not finish"
res=$(api b GET /rest/debug/fetch)
expect_eq "blocks ok" "$(printf '%s' "$res" | jq .blocks_ok)" 8
expect_eq "blocks failed" "$(printf '%s' "$res" | jq .blocks_failed)" 0
expect_eq "fetched digest" "$(printf '%s' "$res" | jq -r .sha256)" \
    "$(sha256sum "$T/fa/big.bin" | cut -d' ' -f1)"

# a keeps the record it served last while its index is unchanged; once a
# rescan stores a new one, requests are judged against that: the blocks of
# the grown file past its old size are served, not refused as outside.
head -c 100000 /dev/urandom >>"$T/fa/big.bin"
sh_node a scan f || fail "scan request"
grown_known() { [ "$(remote_field b a f big.bin size)" = 1100000 ]; }
wait_until 20 grown_known || fail "b lacks a's grown big.bin"
api b POST "/rest/debug/fetch?device=$aid&folder=f&name=big.bin" >/dev/null || fail "fetch start"
wait_until 20 fetch_done || fail "fetch did not finish"
res=$(api b GET /rest/debug/fetch)
expect_eq "grown file served" "$(printf '%s' "$res" | jq .blocks_ok)/$(printf '%s' "$res" | jq .blocks_failed)" 9/0
expect_eq "grown digest" "$(printf '%s' "$res" | jq -r .sha256)" \
    "$(sha256sum "$T/fa/big.bin" | cut -d' ' -f1)"

# The file changes on a's disk but a has not rescanned (no watcher): the
# old block hash no longer matches, so a answers NO_SUCH_FILE.
printf 'has changed' >"$T/fa/change.txt"
api b POST "/rest/debug/fetch?device=$aid&folder=f&name=change.txt" >/dev/null || fail "fetch start"
wait_until 20 fetch_done || fail "fetch did not finish"
expect_eq "changed block refused" "$(api b GET /rest/debug/fetch | jq .blocks_failed)" 1
# Refused by a, not sent and caught by b.
bad_lines() { grep -c 'not matching the block hash' "$T/b.log" || true; }
expect_eq "changed block not sent" "$(bad_lines)" 0

# Content changed in place, then size, mtime (ns) and inode put back.
touch -r "$T/fa/same.txt" "$T/same.ref"
ino=$(stat -c %i "$T/fa/same.txt")
printf 'tampered 11' 1<>"$T/fa/same.txt"
touch -r "$T/same.ref" "$T/fa/same.txt"
expect_eq "same inode" "$(stat -c %i "$T/fa/same.txt")" "$ino"
api b POST "/rest/debug/fetch?device=$aid&folder=f&name=same.txt" >/dev/null || fail "fetch start"
wait_until 20 fetch_done || fail "fetch did not finish"
expect_eq "stale block rejected by requester" "$(api b GET /rest/debug/fetch | jq .blocks_failed)" 1
expect_eq "stale block caught by its hash" "$(bad_lines)" 1


# A peer that lies about a block's content.
port_file="$T/liar.port"
/usr/bin/python3 ./bepclient.py liar "$T/h" "$port_file" "$(node_id b)" f >"$T/liar.out" 2>&1 &
liar=$!
wait_until 10 test -s "$port_file" || fail "liar did not start"
sh_node b device add "$(node_id h)" --name liar --address "tcp://127.0.0.1:$(cat "$port_file")" ||
    fail "device add liar"
sh_node b folder share f "$(node_id h)" || fail "share liar"
wait_until 20 remote_is b h f 1 || fail "b did not take the liar's index"
api b POST "/rest/debug/fetch?device=$(node_id h)&folder=f&name=lie.txt" >/dev/null || fail "fetch start"
wait_until 20 fetch_done || fail "fetch from liar did not finish"
expect_eq "lying block rejected" "$(api b GET /rest/debug/fetch | jq .blocks_failed)" 1
expect_eq "log line for the lying block" "$(bad_lines)" 2
wait "$liar" || fail "liar: $(cat "$T/liar.out")"
log "passed"
