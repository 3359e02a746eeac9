# SPDX-License-Identifier: MIT
# Running out of inotify watches is reported clearly and the folder falls
# back to periodic scans. The limit is lowered only inside a user namespace
# made for this test (/proc/sys/user/max_inotify_watches is per namespace).
. ./lib.sh

if ! unshare --user --map-root-user sh -c 'echo 3 >/proc/sys/user/max_inotify_watches' 2>/dev/null; then
	log "SKIP: cannot create a user namespace with its own inotify limit"
	trap - EXIT
	rm -rf "$T"
	exit 77
fi

init_node a
F="$T/f"
sh_node a folder add f "$F" --rescan 3 || fail "folder add"
for i in 1 2 3 4 5 6 7 8; do mkdir -p "$F/d$i/sub"; done
unshare --user --map-root-user sh -c \
    "echo 3 >/proc/sys/user/max_inotify_watches && exec '$SHOAL' --home '$T/a' serve" \
    >>"$T/a.log" 2>&1 &
echo $! >"$T/a.pid"
wait_until 20 sh_node a status --json || fail "daemon did not start"
wait_until 20 jqs a '.folders[0].watch_degraded == true' || fail "not degraded: $(status a)"
grep -q 'inotify watch limit reached' "$T/a.log" || fail "no clear log line"
[ "$(grep -c 'inotify watch limit reached' "$T/a.log")" -eq 1 ] || fail "limit logged more than once"
# A change in an unwatched directory is still found, by the periodic scan.
printf late >"$F/d8/sub/late.txt"
wait_until 20 sh -c "[ \"\$(sqlite3 -readonly '$T/a/index.db' \"SELECT size FROM files WHERE device=0 AND name='d8/sub/late.txt'\")\" = 4 ]" ||
    fail "periodic fallback scan did not find the file"
stop_node a
log "passed"
