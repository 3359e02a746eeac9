# SPDX-License-Identifier: MIT
# Shared helpers for integration scenarios (sourced, not run).
# Each scenario gets its own mktemp -d, removed on success; on failure the
# directory is kept and every node's log is printed.
set -u

: "${SHOAL:?SHOAL must point at the shoal binary}"
MULT=${SHOAL_TEST_TIMEOUT_MULT:-1}
T=$(mktemp -d /tmp/shoal-it.XXXXXX)
NODES=""
TMPFS_DIRS=""
SCENARIO=$(basename "$0" .sh)

log() { printf '[%s] %s\n' "$SCENARIO" "$*"; }

dump_logs() {
	local _n
	for _n in $NODES; do
		if [ -f "$T/$_n.log" ]; then
			echo "----- log of node $_n ($T/$_n.log) -----"
			tail -n 60 "$T/$_n.log"
		fi
	done
}

fail() {
	echo "[$SCENARIO] FAIL: $*" >&2
	dump_logs >&2
	echo "[$SCENARIO] kept $T" >&2
	stop_all
	trap - EXIT
	exit 1
}

stop_all() {
	local _n _pidf
	for _n in $NODES; do
		_pidf="$T/$_n.pid"
		if [ -f "$_pidf" ]; then
			kill "$(cat "$_pidf")" 2>/dev/null
		fi
	done
	for _n in $NODES; do
		_pidf="$T/$_n.pid"
		if [ -f "$_pidf" ]; then
			wait "$(cat "$_pidf")" 2>/dev/null
			rm -f "$_pidf"
		fi
	done
	# File systems go once nothing uses them (lazily if still busy).
	for _n in $TMPFS_DIRS; do
		umount "$_n" 2>/dev/null || umount -l "$_n"
	done
	TMPFS_DIRS=""
}

# tmpfs_or_skip DIR SIZE: a tmpfs of SIZE (mode 0755) mounted on DIR
# until the scenario ends; where mounting is not allowed (not root) the
# scenario skips (exit 77).
tmpfs_or_skip() {
	mkdir -p "$1"
	if [ "$(id -u)" != 0 ] ||
	    ! mount -t tmpfs -o "size=$2,mode=0755" tmpfs "$1" 2>/dev/null; then
		echo "[$SCENARIO] skip: cannot mount a tmpfs (needs root)"
		trap - EXIT
		rm -rf "$T"
		exit 77
	fi
	TMPFS_DIRS="$TMPFS_DIRS $1"
}

on_exit() {
	rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "[$SCENARIO] exited with status $rc" >&2
		dump_logs >&2
		echo "[$SCENARIO] kept $T" >&2
		stop_all
		exit "$rc"
	fi
	stop_all
	# SHOAL_KEEP=1 keeps the directory of a passing scenario too.
	[ -n "${SHOAL_KEEP:-}" ] && echo "[$SCENARIO] kept $T" || rm -rf "$T"
}
trap on_exit EXIT

# sh NODE ARGS... : run the CLI against NODE's home.
sh_node() {
	local _n=$1
	shift
	"$SHOAL" --home "$T/$_n" "$@"
}

# init_node NAME [init args]: create a home; prints nothing.
init_node() {
	local _n=$1
	shift
	case " $NODES " in *" $_n "*) ;; *) NODES="$NODES $_n" ;; esac
	HOME="$T/$_n-user" "$SHOAL" --home "$T/$_n" init --name "$_n" \
	    --listen tcp://127.0.0.1:0 --api 127.0.0.1:0 --no-default-folder \
	    "$@" >"$T/$_n.id" || fail "init of $_n failed"
}

node_id() { cat "$T/$1.id"; }

# start_node NAME: run `serve` in the background and wait for its API.
start_node() {
	local _n=$1
	"$SHOAL" --home "$T/$_n" --log-level "${SHOAL_TEST_LOG_LEVEL:-info}" \
	    serve >>"$T/$_n.log" 2>&1 &
	echo $! >"$T/$_n.pid"
	wait_until 20 sh_node "$_n" status --json || fail "node $_n did not start"
}

# stop_node NAME: SIGTERM and wait; fails if the exit status is not 0.
stop_node() {
	local _n=$1 _pid _st
	_pid=$(cat "$T/$_n.pid")
	kill -TERM "$_pid"
	wait "$_pid"
	_st=$?
	rm -f "$T/$_n.pid"
	[ "$_st" -eq 0 ] || fail "node $_n exited with status $_st"
}

# wait_until SECONDS CMD...: poll CMD until it succeeds; 1 on timeout.
wait_until() {
	local _limit=$(( $1 * MULT * 10 )) _i=0
	shift
	while [ "$_i" -lt "$_limit" ]; do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
		_i=$((_i + 1))
	done
	return 1
}

# status NODE: the status JSON.
status() { sh_node "$1" status --json; }

# jqs NODE FILTER: true if FILTER (jq -e) holds on NODE's status.
jqs() {
	local _out
	_out=$(status "$1") || return 1
	printf '%s' "$_out" | jq -e "$2" >/dev/null
}

# folder_field NODE FOLDER FIELD: print one field of a folder's status.
folder_field() {
	status "$1" | jq -r --arg f "$2" ".folders[] | select(.id == \$f) | .$3"
}

# idle_scanned NODE FOLDER MIN_SCANS: folder idle with >= MIN_SCANS scans.
idle_scanned() {
	jqs "$1" ".folders[] | select(.id == \"$2\") |
	    .state == \"idle\" and .scan.completed >= $3"
}

# db_query NODE SQL: run a read-only query on NODE's index.
db_query() { sqlite3 -readonly "$T/$1/index.db" "$2"; }

# expect_eq WHAT GOT WANT
expect_eq() {
	[ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# compare_trees A B: byte-for-byte and mode comparison, ignoring what is
# never synced (.stfolder, .stignore, .stversions, temporary files).
compare_trees() {
	diff -r --no-dereference -x .stfolder -x .stignore -x .stversions \
	    -x '.syncthing.*.tmp' "$1" "$2" >/dev/null || return 1
	(cd "$1" && find . \( -path ./.stfolder -o -path ./.stignore -o \
	    -path ./.stversions \) -prune -o -printf '%p %m %y\n' | sort) >"$T/.ta"
	(cd "$2" && find . \( -path ./.stfolder -o -path ./.stignore -o \
	    -path ./.stversions \) -prune -o -printf '%p %m %y\n' | sort) >"$T/.tb"
	cmp -s "$T/.ta" "$T/.tb"
}

# listen_addr NODE: the BEP address the running node actually bound.
listen_addr() { status "$1" | jq -r '.listen[0]'; }

# connect_pair A B [FOLDER]: add each node to the other (static address)
# and share FOLDER both ways; both nodes must be running.
connect_pair() {
	local _a=$1 _b=$2 _f=${3:-}
	sh_node "$_a" device add "$(node_id "$_b")" --name "$_b" \
	    --address "$(listen_addr "$_b")" || fail "device add $_b on $_a"
	sh_node "$_b" device add "$(node_id "$_a")" --name "$_a" \
	    --address "$(listen_addr "$_a")" || fail "device add $_a on $_b"
	if [ -n "$_f" ]; then
		sh_node "$_a" folder share "$_f" "$(node_id "$_b")" || fail "share on $_a"
		sh_node "$_b" folder share "$_f" "$(node_id "$_a")" || fail "share on $_b"
	fi
}

# connected A B: A shows B as connected.
connected() {
	jqs "$1" ".peers[] | select(.device_id == \"$(node_id "$2")\") | .connected"
}

# disconnected A B: A shows B as configured but not connected.
disconnected() {
	jqs "$1" ".peers[] | select(.device_id == \"$(node_id "$2")\") | .connected == false"
}

# peer_field A B FIELD: one field of B's entry in A's peers.
peer_field() {
	status "$1" | jq -r ".peers[] | select(.device_id == \"$(node_id "$2")\") | .$3"
}

# id_hex NODE: the node's raw device ID (SHA-256 of its certificate) in hex.
id_hex() {
	openssl x509 -in "$T/$1/cert.pem" -outform der | sha256sum | cut -c1-64 |
	    tr a-f A-F
}

# remote_count A B FOLDER: present records A stored from B for FOLDER.
remote_count() {
	db_query "$1" "SELECT count(*) FROM files f
	    JOIN folders o ON o.idx = f.folder JOIN devices d ON d.idx = f.device
	    WHERE o.id = '$3' AND f.deleted = 0 AND hex(d.device_id) = '$(id_hex "$2")'"
}

# remote_is A B FOLDER N: A holds exactly N present records from B.
remote_is() { [ "$(remote_count "$1" "$2" "$3")" = "$4" ]; }

# api NODE METHOD PATH: call NODE's control API, print the body.
api() {
	curl -sf -X "$2" -H "X-API-Key: $(cat "$T/$1/apikey")" \
	    "http://$(cat "$T/$1/api.addr")$3"
}

# in_sync NODE FOLDER: the folder is idle, needs nothing, and its peers
# have been sent our whole index.
in_sync() {
	jqs "$1" ".folders[] | select(.id == \"$2\") | .in_sync and .need_files == 0"
}

# synced A DIR_A B DIR_B FOLDER: both in sync and the trees are identical.
synced() {
	in_sync "$1" "$5" && in_sync "$3" "$5" && compare_trees "$2" "$4"
}

# remote_field A B FOLDER NAME COLUMN: one column of the record A holds
# from B for NAME.
remote_field() {
	db_query "$1" "SELECT f.$5 FROM files f
	    JOIN folders o ON o.idx = f.folder JOIN devices d ON d.idx = f.device
	    WHERE o.id = '$3' AND f.name = '$4' AND hex(d.device_id) = '$(id_hex "$2")'"
}
