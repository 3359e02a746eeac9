# SPDX-License-Identifier: MIT
# Shoal and Debian's syncthing (TLS 1.2 allowed on its side) connect on
# loopback, each reports the other connected, each one's files appear in
# the other's global index, and each pulls the other's files.
# With SHOAL_DIALS=1 syncthing knows us only as "dynamic", so Shoal must
# dial (the TLS client role; see 02_bep_dial.sh).
. ./lib.sh
require_syncthing

init_node a
sh_node a folder add f "$T/fa" || fail "folder add"
printf 'from shoal' >"$T/fa/shoal.txt"
mkdir "$T/fa/sdir"
printf 'nested' >"$T/fa/sdir/n.txt"

st_init s
mkdir -p "$T/fs/.stfolder"
printf 'from syncthing' >"$T/fs/st.txt"
start_node a
if [ -n "${SHOAL_DIALS:-}" ]; then st_addr=dynamic; else st_addr=$(listen_addr a); fi
$STCTL add-device "$T/s" "$(node_id a)" shoal "$st_addr" || fail "st add-device"
$STCTL add-folder "$T/s" f "$T/fs" "$(node_id a)" || fail "st add-folder"
sh_node a device add "$ST_ID_s" --name st --address "tcp://127.0.0.1:$ST_PORT_s" || fail "device add"
sh_node a folder share f "$ST_ID_s" || fail "share"
st_start s

wait_until 60 connected a s || fail "shoal does not see syncthing connected: $(status a)"
wait_until 30 st_connected s "$(node_id a)" || fail "syncthing does not see shoal connected"
peer_field a s client | grep -q '^syncthing v1\.' || fail "client: $(peer_field a s client)"

# Our files in syncthing's global index.
for name in shoal.txt sdir sdir/n.txt; do
	wait_until 30 st_jq s "/rest/db/file?folder=f&file=$name" '.global.name != null' ||
	    fail "syncthing lacks $name: $(st_get s "/rest/db/file?folder=f&file=$name" 2>&1)"
done
st_jq s "/rest/db/file?folder=f&file=shoal.txt" '.global.size == 10' || fail "size in syncthing"
# Syncthing's file in ours, plus our three items, which syncthing pulled
# and re-announced with our version vectors.
wait_until 30 remote_is a s f 4 || fail "shoal lacks syncthing's index ($(remote_count a s f))"
expect_eq "st.txt size" "$(db_query a "SELECT size FROM files WHERE device != 0 AND name = 'st.txt'")" 14
# Syncthing pulled our files through our block server: same bytes on its disk.
wait_until 30 cmp -s "$T/fa/shoal.txt" "$T/fs/shoal.txt" || fail "syncthing did not pull shoal.txt"
wait_until 30 cmp -s "$T/fa/sdir/n.txt" "$T/fs/sdir/n.txt" || fail "syncthing did not pull sdir/n.txt"
# And Shoal pulled syncthing's file through syncthing's block server.
wait_until 30 cmp -s "$T/fs/st.txt" "$T/fa/st.txt" || fail "shoal did not pull st.txt"
if [ -n "${SHOAL_DIALS:-}" ]; then
	grep -q "outgoing" "$T/a.log" || fail "shoal did not dial"
else
	grep -q "incoming" "$T/a.log" || fail "syncthing did not dial"
fi
log "passed"
