# SPDX-License-Identifier: MIT
# CLI contract (design.md §5) without a daemon: init, id, --help everywhere,
# --version, argument errors, device and folder commands, config errors.
. ./lib.sh

# --help works on every subcommand without a home.
for args in "init" "id" "serve" "status" "scan" "conflicts" "versions" \
    "restore" "device add" "device remove" "device list" "folder add" \
    "folder share" "folder remove" "folder list" "folder override" \
    "folder revert"; do
	# shellcheck disable=SC2086
	out=$("$SHOAL" --home /nonexistent/home $args --help) ||
	    fail "'$args --help' failed"
	printf '%s' "$out" | grep -q '^usage: shoal' || fail "'$args --help' printed no usage"
done
"$SHOAL" --help | grep -q 'commands:' || fail "--help"
"$SHOAL" --version | grep -q '^shoal ' || fail "--version"

# Bad arguments: one line on stderr, exit 2, never a crash.
check_usage() {
	"$SHOAL" --home "$T/a" "$@" >/dev/null 2>"$T/err"
	st=$?
	[ "$st" -eq 2 ] || fail "'$*' exited $st, want 2"
	[ "$(wc -l <"$T/err")" -eq 1 ] || fail "'$*' printed $(wc -l <"$T/err") lines"
}
check_usage frobnicate
check_usage --bogus id
check_usage init --listen nonsense
check_usage init --api 10.0.0.1:80
check_usage device add NOT-AN-ID
check_usage device add
check_usage folder add bad/id /tmp/x
check_usage folder add f1 /tmp/x --type sideways
check_usage folder add f1 /tmp/x --rescan -5
check_usage folder add f1 /tmp/x --min-disk-free 150%
check_usage device

# Commands before init fail with a clear message and status 1.
"$SHOAL" --home "$T/a" id 2>"$T/err" && fail "id before init succeeded"
grep -q 'not initialised' "$T/err" || fail "id before init: $(cat "$T/err")"

init_node a
id=$(node_id a)
printf '%s\n' "$id" | grep -Eq '^([A-Z2-7]{7}-){7}[A-Z2-7]{7}$' || fail "bad ID '$id'"
expect_eq "id" "$(sh_node a id)" "$id"
expect_eq "key mode" "$(stat -c %a "$T/a/key.pem")" "600"
[ -f "$T/a/index.db" ] || fail "no index.db"
[ -f "$T/a/config" ] || fail "no config"
cert_before=$(sha256sum "$T/a/cert.pem")
sh_node a init 2>"$T/err" && fail "second init succeeded"
grep -q 'refusing to overwrite' "$T/err" || fail "second init: $(cat "$T/err")"
expect_eq "cert unchanged" "$(sha256sum "$T/a/cert.pem")" "$cert_before"

# Default folder: created with its marker.
HOME="$T/u" "$SHOAL" --home "$T/d" init --api 127.0.0.1:0 >/dev/null || fail "default init"
[ -d "$T/u/Shoal/.stfolder" ] || fail "default folder marker missing"
sh_node d folder list --json | jq -e '.[0].id == "default"' >/dev/null || fail "default folder not listed"

# Devices: add with and without address, list, wrong check character.
init_node b
bid=$(node_id b)
sh_node a device add "$bid" --name bee --address tcp://127.0.0.1:22001 || fail "device add"
sh_node a device list --json | jq -e --arg id "$bid" \
    '.[0].device_id == $id and .[0].name == "bee" and .[0].addresses == ["tcp://127.0.0.1:22001"]' \
    >/dev/null || fail "device list: $(sh_node a device list --json)"
sh_node a device add "$bid" 2>"$T/err" && fail "duplicate device add succeeded"
lower=$(printf '%s' "$bid" | tr 'A-Z' 'a-z' | tr -d '-')
sh_node a device remove "$lower" || fail "remove by lower-case undashed ID"
sh_node a device add "$bid" || fail "device add without address"
sh_node a device list --json | jq -e '.[0].addresses == ["dynamic"]' >/dev/null ||
    fail "default address is not dynamic"
# Flip the last check character of the ID.
last=$(printf '%s' "$bid" | tail -c 1)
if [ "$last" = A ]; then other=B; else other=A; fi
bad=$(printf '%s' "$bid" | sed "s/.\$/$other/")
"$SHOAL" --home "$T/a" device add "$bad" 2>"$T/err"
[ $? -eq 2 ] || fail "bad check character accepted"
grep -qi 'check character' "$T/err" || fail "bad check char message: $(cat "$T/err")"

# Folders: add (path and marker created), share, list, remove.
sh_node a folder add docs "$T/docs" --type sendonly --share "$bid" --rescan 60 --no-watch \
    --min-disk-free "2.5 GiB" || fail "folder add"
[ -d "$T/docs/.stfolder" ] || fail "folder add did not create the marker"
sh_node a folder list --json | jq -e --arg id "$bid" '.[0] | .id == "docs" and
    .type == "sendonly" and .rescan == 60 and .watch == false and
    .min_disk_free == "2560 MiB" and
    .shared_with == [$id]' >/dev/null || fail "folder list: $(sh_node a folder list --json)"
sh_node a folder add docs "$T/docs2" 2>/dev/null && fail "duplicate folder add succeeded"
sh_node a device remove "$bid" || fail "device remove"
sh_node a folder list --json | jq -e '.[0].shared_with == []' >/dev/null ||
    fail "device remove did not unshare"
sh_node a folder remove docs || fail "folder remove"
sh_node a folder list --json | jq -e 'length == 0' >/dev/null || fail "folder not removed"
sh_node a folder remove docs 2>/dev/null && fail "removing a missing folder succeeded"

# A broken config file is reported as FILE:LINE: reason.
cp "$T/a/config" "$T/config.good"
printf '[folder x]\ntype = sideways\n' >>"$T/a/config"
sh_node a folder list 2>"$T/err" && fail "bad config accepted"
grep -Eq 'config:[0-9]+: .*sideways' "$T/err" || fail "config error text: $(cat "$T/err")"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "config error not one line"
cp "$T/config.good" "$T/a/config"

# Status without a daemon is a clear error.
sh_node a status 2>"$T/err" && fail "status without daemon succeeded"
grep -q 'no daemon' "$T/err" || fail "status without daemon: $(cat "$T/err")"
log "passed"
