# SPDX-License-Identifier: MIT
# A virtual LAN for discovery tests (sourced, not run): one network
# namespace per node, each with a veth port on a bridge in a "switch"
# namespace, addresses 10.77.0.N/24. Everything is created by the test and
# destroyed on exit. Source it BEFORE lib.sh; it skips (exit 77) where
# namespaces cannot be made. Then call lan_setup NAME... after lib.sh.
#
# Uses: SCENARIO (set here), NSP prefix, NS_<name> variables, ns_of NAME.

SCENARIO=$(basename "$0" .sh)
skip() {
	echo "[$SCENARIO] SKIP: $*" >&2
	exit 77
}

[ "$(id -u)" -eq 0 ] || skip "needs root to create network namespaces"
command -v ip >/dev/null 2>&1 || skip "no ip command (iproute2)"
command -v python3 >/dev/null 2>&1 || skip "no python3 (broadcast probe)"

# Names unique to this run, so parallel runs and leftovers never clash.
NSP="shoalns-$$"
NS_SW="$NSP-sw"
NS_CREATED=""

netns_cleanup() {
	local _ns
	for _ns in $NS_CREATED; do
		ip netns del "$_ns" 2>/dev/null
	done
	NS_CREATED=""
}

# Namespaces left by an earlier run that was killed (SIGKILL skips traps).
for _ns in $(ip netns list 2>/dev/null | awk '{print $1}' |
    grep '^shoalns-[0-9]*-'); do
	_pid=${_ns#shoalns-}
	_pid=${_pid%%-*}
	kill -0 "$_pid" 2>/dev/null || ip netns del "$_ns" 2>/dev/null
done

if ! ip netns add "$NS_SW" 2>/dev/null; then
	skip "ip netns add failed (no CAP_SYS_ADMIN or no netns support)"
fi
NS_CREATED="$NS_SW"
trap 'netns_cleanup' EXIT
# A timeout's SIGTERM must still run the EXIT trap and tear the LAN down.
trap 'exit 143' TERM
trap 'exit 130' INT

ns_of() { eval "echo \$NS_$1"; }

# After lib.sh: its fail() and EXIT trap must also take the LAN down.
netns_hook_lib() {
	fail() {
		echo "[$SCENARIO] FAIL: $*" >&2
		dump_logs >&2
		echo "[$SCENARIO] kept $T" >&2
		stop_all
		netns_cleanup
		trap - EXIT
		exit 1
	}
	lan_exit() {
		local _rc=$?
		# Stop the daemons before their namespaces go away.
		stop_all
		netns_cleanup
		(exit "$_rc")
		on_exit
	}
	trap lan_exit EXIT
	# The CLI must run in the node's namespace: the control API listens
	# on 127.0.0.1 inside it. Every lib.sh helper goes through sh_node.
	sh_node() {
		local _n=$1
		shift
		ip netns exec "$(ns_of "$_n")" "$SHOAL" --home "$T/$_n" "$@"
	}
}

# lan_setup NAME...: a bridge and one namespace per name, 10.77.0.1, .2 ...
lan_setup() {
	local _i=1 _n _ns
	ip -n "$NS_SW" link add br0 type bridge || fail "bridge"
	# Snooping would drop IPv6 multicast before any MLD report was seen.
	ip -n "$NS_SW" link set br0 type bridge mcast_snooping 0 || fail "snooping"
	ip -n "$NS_SW" link set br0 up || fail "bridge up"
	for _n in "$@"; do
		_ns="$NSP-$_n"
		eval "NS_$_n=$_ns"
		ip netns add "$_ns" || fail "netns add $_ns"
		NS_CREATED="$NS_CREATED $_ns"
		ip -n "$NS_SW" link add "port-$_n" type veth peer name eth0 \
		    netns "$_ns" || fail "veth for $_n"
		ip -n "$NS_SW" link set "port-$_n" master br0 up || fail "port-$_n"
		ip -n "$_ns" link set lo up || fail "lo up in $_ns"
		ip -n "$_ns" addr add "10.77.0.$_i/24" brd + dev eth0 || fail "addr $_n"
		ip -n "$_ns" link set eth0 up || fail "eth0 up in $_ns"
		_i=$((_i + 1))
	done
	log "namespaces $NS_CREATED up"
}
