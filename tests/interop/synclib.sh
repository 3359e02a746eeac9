# SPDX-License-Identifier: MIT
# Helpers for the Shoal <-> syncthing sync scenarios (04, 05, 07): one
# Shoal node "a" with folder f at T/fa, one syncthing node "s" with f at
# T/fs. Sourced after lib.sh.

# st_post NAME PATH: POST to a syncthing node's REST API.
st_post() {
	local _gui
	_gui=$(sed -n 's|.*<address>\(127\.0\.0\.1:[0-9]*\)</address>.*|\1|p' "$T/$1/config.xml" | head -n 1)
	curl -sf -X POST -H "X-API-Key: shoal-interop-test-key" "http://$_gui$2" >/dev/null
}

# trees_equal A B: compare_trees, also ignoring syncthing's .stversions.
trees_equal() {
	diff -r --no-dereference -x .stfolder -x .stversions -x '.syncthing.*.tmp' \
	    -x '~syncthing~*.tmp' "$1" "$2" >/dev/null || return 1
	(cd "$1" && find . \( -path ./.stfolder -o -path ./.stversions \) -prune -o \
	    -printf '%p %m %y\n' | sort) >"$T/.ta"
	(cd "$2" && find . \( -path ./.stfolder -o -path ./.stversions \) -prune -o \
	    -printf '%p %m %y\n' | sort) >"$T/.tb"
	cmp -s "$T/.ta" "$T/.tb"
}

# st_in_sync: syncthing's folder is idle, needs nothing, and it believes
# Shoal holds everything too.
st_in_sync() {
	st_jq s "/rest/db/status?folder=f" \
	    '.state == "idle" and .needFiles == 0 and .needTotalItems == 0' &&
	    st_jq s "/rest/db/completion?folder=f&device=$(node_id a)" \
	    '.completion == 100 and .needItems == 0 and .needDeletes == 0'
}

both_synced() {
	in_sync a f && st_in_sync && trees_equal "$T/fa" "$T/fs"
}

# explain: one line on where the two sides disagree, for failure messages.
explain() {
	printf 'shoal: %s; syncthing: %s; completion of shoal: %s; diff: %s' \
	    "$(status a | jq -c '.folders[] | select(.id == "f") |
	        {state, in_sync, need_files, local_files, global_files, error}')" \
	    "$(st_get s '/rest/db/status?folder=f' | jq -c '{state, needFiles,
	        needTotalItems, localFiles, globalFiles, pullErrors, errors}')" \
	    "$(st_get s "/rest/db/completion?folder=f&device=$(node_id a)" | jq -c .)" \
	    "$(diff -r -x .stfolder -x .stversions "$T/fa" "$T/fs" 2>&1 | head -n 5 | tr '\n' '|')
	    $(diff "$T/.ta" "$T/.tb" 2>&1 | head -n 6 | tr '\n' '|')"
}

# step WHAT: wait until both sides are in sync with identical trees.
step() {
	wait_until 90 both_synced || fail "$1: not in sync: $(explain)"
	log "step ok: $1"
}

# setup_pair: start Shoal node a (folder f at T/fa, already populated by
# the caller) and syncthing node s (folder f at T/fs), sharing f, and wait
# for the connection.
setup_pair() {
	start_node a
	$STCTL add-device "$T/s" "$(node_id a)" shoal "$(listen_addr a)" || fail "st add-device"
	$STCTL add-folder "$T/s" f "$T/fs" "$(node_id a)" || fail "st add-folder"
	sh_node a device add "$ST_ID_s" --name st --address "tcp://127.0.0.1:$ST_PORT_s" || fail "device add"
	sh_node a folder share f "$ST_ID_s" || fail "share"
	st_start s
	wait_until 60 connected a s || fail "shoal does not see syncthing connected: $(status a)"
}

# st_local_jq FILE FILTER: FILTER holds on syncthing's local record of FILE.
st_local_jq() { st_jq s "/rest/db/file?folder=f&file=$1" ".local | $2"; }

# sh_local NAME COLUMN: a column of Shoal's own record of NAME in f.
sh_local() {
	db_query a "SELECT f.$2 FROM files f JOIN folders o ON o.idx = f.folder
	    WHERE o.id = 'f' AND f.device = 0 AND f.name = '$1'"
}
