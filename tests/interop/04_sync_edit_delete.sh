# SPDX-License-Identifier: MIT
# Shoal and Debian's syncthing sync a folder both ways: initial sync with
# files on both sides (nested directory, empty file, 2 MB random file,
# executable bits), an edit on each side, then a file delete and a whole
# directory delete on each side. After every step both report in sync and
# the trees are identical byte for byte, modes included.
. ./lib.sh
. ./synclib.sh
require_syncthing

init_node a
sh_node a folder add f "$T/fa" || fail "folder add"
# Shoal's side.
printf 'from shoal\n' >"$T/fa/shoal.txt"
mkdir -p "$T/fa/sdir/deep"
printf 'nested on shoal\n' >"$T/fa/sdir/deep/n.txt"
printf 'second\n' >"$T/fa/sdir/two.txt"
: >"$T/fa/empty-shoal"
head -c 2097152 /dev/urandom >"$T/fa/big-shoal.bin"
printf '#!/bin/sh\necho shoal\n' >"$T/fa/run-shoal.sh"
chmod 755 "$T/fa/run-shoal.sh"

# Syncthing's side.
st_init s
mkdir -p "$T/fs/.stfolder" "$T/fs/tdir/inner"
printf 'from syncthing\n' >"$T/fs/st.txt"
printf 'nested on syncthing\n' >"$T/fs/tdir/inner/m.txt"
printf 'other\n' >"$T/fs/tdir/o.txt"
: >"$T/fs/empty-st"
head -c 2097152 /dev/urandom >"$T/fs/big-st.bin"
printf '#!/bin/sh\necho st\n' >"$T/fs/run-st.sh"
chmod 750 "$T/fs/run-st.sh"

setup_pair

# 1. Initial sync both ways.
step "initial sync"
for p in shoal.txt sdir/deep/n.txt empty-shoal big-shoal.bin run-shoal.sh \
    st.txt tdir/inner/m.txt empty-st big-st.bin run-st.sh; do
	[ -f "$T/fa/$p" ] && [ -f "$T/fs/$p" ] || fail "initial sync: $p missing on one side"
done
expect_eq "mode of run-st.sh on shoal" "$(stat -c %a "$T/fa/run-st.sh")" 750
expect_eq "mode of run-shoal.sh on syncthing" "$(stat -c %a "$T/fs/run-shoal.sh")" 755
expect_eq "empty file on syncthing" "$(stat -c %s "$T/fs/empty-shoal")" 0

# 2. Edit on the Shoal side reaches syncthing (new size and content).
printf 'edited on shoal, longer than before\n' >"$T/fa/shoal.txt"
head -c 1000000 /dev/urandom >>"$T/fa/big-shoal.bin"
wait_until 60 cmp -s "$T/fa/shoal.txt" "$T/fs/shoal.txt" ||
    fail "edit on shoal did not reach syncthing: $(explain)"
step "edit on shoal"

# 3. Edit on the syncthing side reaches Shoal.
printf 'edited on syncthing, longer too\n' >"$T/fs/st.txt"
printf 'x' | dd of="$T/fs/big-st.bin" bs=1 seek=1048576 conv=notrunc 2>/dev/null
wait_until 60 cmp -s "$T/fs/st.txt" "$T/fa/st.txt" ||
    fail "edit on syncthing did not reach shoal: $(explain)"
step "edit on syncthing"

# 4. Deletes on the Shoal side: a file, then a whole directory tree.
rm "$T/fa/empty-st"
wait_until 60 sh -c "[ ! -e '$T/fs/empty-st' ]" ||
    fail "delete on shoal did not reach syncthing: $(explain)"
step "file delete on shoal"
rm -r "$T/fa/tdir"
wait_until 60 sh -c "[ ! -e '$T/fs/tdir' ]" ||
    fail "directory delete on shoal did not reach syncthing: $(explain)"
step "directory delete on shoal"

# 5. Deletes on the syncthing side: a file, then a whole directory tree.
rm "$T/fs/big-shoal.bin"
wait_until 60 sh -c "[ ! -e '$T/fa/big-shoal.bin' ]" ||
    fail "delete on syncthing did not reach shoal: $(explain)"
step "file delete on syncthing"
rm -r "$T/fs/sdir"
wait_until 60 sh -c "[ ! -e '$T/fa/sdir' ]" ||
    fail "directory delete on syncthing did not reach shoal: $(explain)"
step "directory delete on syncthing"

# What is left is exactly what neither side deleted.
expect_eq "remaining files" "$(cd "$T/fa" && find . -path ./.stfolder -prune -o \
    -print | sort | tr '\n' ' ')" \
    ". ./big-st.bin ./empty-shoal ./run-shoal.sh ./run-st.sh ./shoal.txt ./st.txt "
grep -i "panic\|protocol error" "$T/s.log" && fail "syncthing logged an error"
log "passed"
