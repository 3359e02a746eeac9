# SPDX-License-Identifier: MIT
# .stignore patterns keep files out of the index; a folder whose marker or
# root disappears stops with an error and records no deletions.
. ./lib.sh

init_node a
F="$T/f"
sh_node a folder add f "$F" || fail "folder add"
mkdir -p "$F/build/out" "$F/src" "$F/cache"
printf x >"$F/build/out/o.bin"
printf y >"$F/src/main.c"
printf z >"$F/src/main.o"
printf k >"$F/cache/keep.me"
printf 'Z' >"$F/TODO.txt"
cat >"$F/.stignore" <<'PAT'
// build output
/build
*.o
!cache/keep.me
cache
(?i)todo.TXT
PAT
start_node a
wait_until 20 idle_scanned a f 1 || fail "scan"
names=$(db_query a "SELECT name FROM files WHERE device=0 AND deleted=0 ORDER BY name" | tr '\n' ' ')
expect_eq "indexed names" "$names" "cache/keep.me src src/main.c "

# Marker removed: the folder goes to error and nothing is deleted.
rmdir "$F/.stfolder"
sh_node a scan f || fail "scan request"
wait_until 10 jqs a '.folders[0].state == "error" and (.folders[0].error | test("stfolder"))' ||
    fail "missing marker not reported: $(status a)"
expect_eq "no tombstones" "$(db_query a "SELECT count(*) FROM files WHERE device=0 AND deleted=1")" 0
mkdir "$F/.stfolder"
sh_node a scan f || fail "scan request"
wait_until 10 jqs a '.folders[0].state == "idle" and .folders[0].error == null' ||
    fail "folder did not recover: $(status a)"

# Whole root gone (an unmounted disk): error, still no deletions.
mv "$F" "$T/elsewhere"
sh_node a scan f || fail "scan request"
wait_until 10 jqs a '.folders[0].state == "error"' || fail "missing root not reported"
expect_eq "no tombstones" "$(db_query a "SELECT count(*) FROM files WHERE device=0 AND deleted=1")" 0
mv "$T/elsewhere" "$F"
stop_node a
log "passed"
