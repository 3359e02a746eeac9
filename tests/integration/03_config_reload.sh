# SPDX-License-Identifier: MIT
# Config commands apply to a running daemon within 2 s; a broken config
# file is reported as FILE:LINE and the daemon keeps its last good config.
. ./lib.sh

init_node a
init_node b
start_node a

sh_node a folder add g "$T/g" --no-watch || fail "folder add"
wait_until 2 jqs a '.folders | map(.id) == ["g"]' || fail "folder not applied within 2 s"

# low_priority (on by default): every thread of the daemon, the pool's
# too, runs under SCHED_BATCH (policy 3, field 41 of /proc/PID/task/TID/
# stat); a reload switches them all to SCHED_OTHER (0) and back.
policies() { awk '{print $41}' /proc/"$(cat "$T/a.pid")"/task/*/stat | sort -u | tr '\n' ' '; }
policy_is() { [ "$(policies)" = "$1 " ]; }
threads() { ls /proc/"$(cat "$T/a.pid")"/task | wc -l; }
[ "$(threads)" -gt 1 ] || fail "no threads besides the loop: $(threads)"
expect_eq "policy of every thread" "$(policies)" "3 "
sed -i 's|^low_priority = true$|low_priority = false|' "$T/a/config"
wait_until 5 policy_is 0 || fail "low_priority = false not applied: $(policies)"
sed -i 's|^low_priority = false$|low_priority = true|' "$T/a/config"
wait_until 5 policy_is 3 || fail "low_priority = true not applied: $(policies)"

sh_node a device add "$(node_id b)" --name bee --address tcp://127.0.0.1:1 || fail "device add"
wait_until 2 jqs a '.peers | length == 1 and .[0].name == "bee"' || fail "device not applied within 2 s"

# A hand edit that breaks the file: the daemon logs FILE:LINE and keeps
# running with the folder it had.
printf 'bogus_key = 1\n' >>"$T/a/config"
wait_until 5 grep -Eq 'config:[0-9]+: .*bogus_key' "$T/a.log" || fail "no FILE:LINE error logged"
jqs a '.folders | map(.id) == ["g"]' || fail "last good config not kept"

# Remove the broken lines by hand (not through the CLI, whose load fails).
head -n -1 "$T/a/config" >"$T/cfg" && cat "$T/cfg" >"$T/a/config"
sh_node a folder remove g || fail "folder remove after fix"
wait_until 2 jqs a '.folders | length == 0' || fail "folder removal not applied within 2 s"

# An introducer is recorded (16_introducer checks what it does).
sh_node a device add "$(node_id b)" --introducer 2>/dev/null && fail "duplicate device accepted"
sh_node a device remove "$(node_id b)" || fail "device remove"
sh_node a device add "$(node_id b)" --introducer --address tcp://127.0.0.1:1 || fail "device add --introducer"
expect_eq "introducer recorded" "$(sh_node a device list --json | jq -r '.[] | select(.device_id == "'"$(node_id b)"'") | .introducer')" true

# A versioning setting is recorded and taken up without a warning
# (37_versioning checks what it does).
sh_node a folder add v "$T/v" --versioning trashcan 2>"$T/err" || fail "folder add --versioning"
[ ! -s "$T/err" ] || fail "folder add --versioning said: $(cat "$T/err")"
expect_eq "versioning recorded" "$(sh_node a folder list --json | jq -r '.[] | select(.id == "v") | .versioning')" trashcan
wait_until 5 jqs a '.folders | map(.id) | index("v") != null' || fail "folder v not applied"
grep -q 'versioning' "$T/a.log" && fail "versioning warned about: $(grep versioning "$T/a.log")"

# A new listen address applies too: the daemon listens there, and a peer
# reaches it; an address it cannot bind keeps the old one.
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i "s|^listen = .*|listen = tcp://127.0.0.1:$port|" "$T/a/config"
wait_until 5 jqs a ".listen[0] == \"tcp://127.0.0.1:$port\"" || fail "listen address not applied: $(status a | jq -c .listen)"
grep -q 'take effect after a restart' "$T/a.log" && fail "listen change warned about"
start_node b
sh_node b device add "$(node_id a)" --name a --address "tcp://127.0.0.1:$port" || fail "device add a on b"
sh_node a device remove "$(node_id b)" || fail "device remove"
sh_node a device add "$(node_id b)" --name b || fail "device add b on a (dynamic: only b dials)"
wait_until 20 connected b a || fail "b did not reach a at its new address"
sed -i "s|^listen = .*|listen = $(listen_addr b)|" "$T/a/config"
wait_until 5 grep -q "keeping the old listen address tcp://127.0.0.1:$port" "$T/a.log" ||
    fail "an address in use was not refused"
expect_eq "old address kept" "$(status a | jq -r '.listen[0]')" "tcp://127.0.0.1:$port"
stop_node b

# So does a new api address: api.addr follows (the CLI finds the daemon
# there) and the old listener closes a moment later.
old_api=$(cat "$T/a/api.addr")
aport=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i "s|^api = .*|api = 127.0.0.1:$aport|" "$T/a/config"
wait_until 5 grep -qx "127.0.0.1:$aport" "$T/a/api.addr" || fail "api address not applied: $(cat "$T/a/api.addr")"
sh_node a status --json >/dev/null || fail "CLI cannot reach the new api address"
old_closed() { ! curl -s -o /dev/null "http://$old_api/rest/status"; }
wait_until 5 old_closed || fail "the old api address still answers"
grep -q 'take effect after a restart' "$T/a.log" && fail "api change warned about"

# Two daemons on one home are refused.
"$SHOAL" --home "$T/a" serve 2>"$T/err" && fail "second daemon started"
grep -q 'another shoal daemon' "$T/err" || fail "second daemon message: $(cat "$T/err")"
stop_node a
log "passed"
