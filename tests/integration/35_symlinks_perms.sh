# SPDX-License-Identifier: MIT
# Symlinks are synced as links (never followed), permission changes and
# mtime-only changes propagate, a case-only rename converges.
. ./lib.sh

init_node a
init_node b
sh_node a folder add f "$T/fa" || fail "folder add"
sh_node b folder add f "$T/fb" || fail "folder add"
mkdir -p "$T/fa/dir" "$T/outside"
printf secret >"$T/outside/secret.txt"
printf data >"$T/fa/dir/file.txt"
ln -s dir/file.txt "$T/fa/link-to-file"
ln -s "$T/outside" "$T/fa/link-outside"	# must not be followed
chmod 0750 "$T/fa/dir"
chmod 0604 "$T/fa/dir/file.txt"
start_node a
start_node b
connect_pair a b f
wait_until 60 synced a "$T/fa" b "$T/fb" f || fail "initial sync"
[ -L "$T/fb/link-to-file" ] || fail "link-to-file is not a symlink on b"
expect_eq "link target" "$(readlink "$T/fb/link-to-file")" dir/file.txt
[ -L "$T/fb/link-outside" ] || fail "link-outside is not a symlink on b"
[ ! -e "$T/fb/link-outside/secret.txt" ] || [ -L "$T/fb/link-outside" ] ||
    fail "the link was followed"
expect_eq "dir mode" "$(stat -c %a "$T/fb/dir")" 750
expect_eq "file mode" "$(stat -c %a "$T/fb/dir/file.txt")" 604

# Permission-only change.
chmod 0640 "$T/fa/dir/file.txt"
wait_until 30 sh -c "[ \$(stat -c %a '$T/fb/dir/file.txt') = 640 ]" || fail "mode change not synced"
# mtime-only change.
touch -d '2024-02-03 04:05:06.123456789' "$T/fa/dir/file.txt"
wait_until 30 sh -c "[ \$(stat -c %Y.%y '$T/fb/dir/file.txt' | cut -d' ' -f1) = \$(stat -c %Y.%y '$T/fa/dir/file.txt' | cut -d' ' -f1) ]" ||
    fail "mtime change not synced"
expect_eq "mtime with nanoseconds" "$(stat -c %y "$T/fb/dir/file.txt")" "$(stat -c %y "$T/fa/dir/file.txt")"
# A symlink retargeted.
ln -sfn dir "$T/fa/link-to-file"
wait_until 30 sh -c "[ \"\$(readlink '$T/fb/link-to-file')\" = dir ]" || fail "symlink change not synced"
# Case-only rename.
mv "$T/fa/dir/file.txt" "$T/fa/dir/FILE.txt"
wait_until 30 synced a "$T/fa" b "$T/fb" f || fail "case-only rename"
[ -f "$T/fb/dir/FILE.txt" ] && [ ! -e "$T/fb/dir/file.txt" ] || fail "case-only rename result: $(ls "$T/fb/dir")"
log "passed"
