#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest test runner. Runs /kf/tests/*.sh that apply to this guest's mode and
# role, one subshell each, and prints KTAP to the results port (/dev/ttyS1);
# test output and kernel messages go to the console (/dev/ttyS0), where the
# host looks for oopses, warnings and sanitizer reports. Markers written to
# /dev/kmsg tie every console line to the test that was running.
. /kf/lib.sh

KF_MODE=$(kf_kv mode)
KF_MODE=${KF_MODE:-single}
KF_ROLE=$(kf_kv role)
KF_ROLE=${KF_ROLE:-single}
KF_FILTER=$(kf_kv filter)
KF_TIMEOUT=$(kf_kv timeout)
KF_TIMEOUT=${KF_TIMEOUT:-600}
# kf.bench=icount: the guest's clock counts instructions (kf bench
# --icount); benchmarks run fewer rounds, since every round gives the
# same numbers.
KF_BENCH_MODE=$(kf_kv bench)
KF_BENCH_MODE=${KF_BENCH_MODE:-wall}
export KF_MODE KF_ROLE KF_BENCH_MODE

out=/dev/ttyS1
[ -c "$out" ] || out=/dev/console

mark() { echo "kf-runner: $*" >/dev/kmsg; }

# Addresses of this guest and its peer: single mode has both ends in one
# guest, pair mode has one on each side of the virtual link.
case "$KF_MODE" in
single) KF_MY_IP=10.0.0.1 KF_PEER_IP=10.0.0.2 ;;
*) if [ "$KF_ROLE" = A ]; then KF_MY_IP=10.1.0.1 KF_PEER_IP=10.1.0.2
	else KF_MY_IP=10.1.0.2 KF_PEER_IP=10.1.0.1; fi ;;
esac
export KF_MY_IP KF_PEER_IP

# Both addresses of the single guest are local, so by default traffic
# between them takes the loopback device and one rxe device talks to itself.
# Policy routing sends locally generated packets for the other address out
# of the veth it does not own, so rxe0 and rxe1 really exchange packets over
# the pair; received packets still hit the local table. accept_local lets a
# packet whose source is a local address in; static neighbours avoid ARP
# between two local addresses.
single_routes() {
	local mac0 mac1 f
	mac0=$(cat /sys/class/net/veth0/address)
	mac1=$(cat /sys/class/net/veth1/address)
	for f in all default veth0 veth1; do
		echo 1 >/proc/sys/net/ipv4/conf/$f/accept_local
		echo 0 >/proc/sys/net/ipv4/conf/$f/rp_filter
	done
	ip rule add pref 100 lookup local
	ip rule del pref 0 lookup local
	ip rule add pref 10 iif lo to "$KF_PEER_IP" lookup 10
	ip rule add pref 10 iif lo to "$KF_MY_IP" lookup 11
	ip route add "$KF_PEER_IP" dev veth0 src "$KF_MY_IP" table 10
	ip route add "$KF_MY_IP" dev veth1 src "$KF_PEER_IP" table 11
	ip neigh replace "$KF_PEER_IP" lladdr "$mac1" dev veth0 nud permanent
	ip neigh replace "$KF_MY_IP" lladdr "$mac0" dev veth1 nud permanent
}

# Networking for the test bed. single: two Soft-RoCE devices over a veth
# pair; pair: one Soft-RoCE device over the virtio-net link to the other
# guest.
net_setup() {
	case "$KF_MODE" in
	single)
		ip link add veth0 type veth peer name veth1
		ip addr add "$KF_MY_IP/24" dev veth0
		ip addr add "$KF_PEER_IP/24" dev veth1
		ip link set veth0 up
		ip link set veth1 up
		single_routes
		kf_rxe_setup veth0 rxe0
		kf_rxe_setup veth1 rxe1
		;;
	pair)
		ip addr add "$KF_MY_IP/24" dev eth0
		ip link set eth0 up
		kf_rxe_setup eth0 rxe0
		;;
	esac
}

# Tests that apply here: KF_MODES in the script names the modes; in pair
# mode the script must define test_A and test_B, otherwise test_single.
tests=""
for t in /kf/tests/*.sh; do
	[ -f "$t" ] || continue
	name=$(basename "$t" .sh)
	modes=$(sed -n 's/^KF_MODES="\(.*\)"$/\1/p' "$t")
	case " $modes " in *" $KF_MODE "*) ;; *) continue ;; esac
	if [ -n "$KF_FILTER" ]; then
		case "$name" in $KF_FILTER) ;; *) continue ;; esac
	else
		# Benchmarks run only when asked for (scripts/kf bench).
		case "$name" in bench-*) continue ;; esac
	fi
	tests="$tests $t"
done

n=0
for t in $tests; do n=$((n + 1)); done
{
	echo "KTAP version 1"
	echo "# kfabric test bed: mode $KF_MODE role $KF_ROLE on $(uname -r)"
	echo "1..$((n + 2))"
} >"$out"

fails=0
i=1
mark "setup start"
# Not as an "if" condition: that would switch off "set -e" inside.
(set -e; net_setup) >/dev/console 2>&1
if [ $? -eq 0 ]; then
	echo "ok $i setup" >"$out"
	net_setup_ok=1
else
	echo "not ok $i setup" >"$out"
	fails=$((fails + 1))
fi
mark "setup end"
for t in $tests; do
	i=$((i + 1))
	name=$(basename "$t" .sh)
	fn=test_$KF_ROLE
	sub=/tmp/ktap.$name
	: >"$sub"
	mark "test $name start"
	start=$(date +%s)
	if [ -z "${net_setup_ok:-}" ]; then
		rc=1
		echo "kf-runner: skipping $name, setup failed" >/dev/console
	else
		# A script may ask for more time with a KF_TEST_TIMEOUT=SECONDS line.
		tt=$(sed -n 's/^KF_TEST_TIMEOUT=\([0-9][0-9]*\)$/\1/p' "$t")
		tt=${tt:-$KF_TIMEOUT}
		KF_KTAP_SUB=$sub timeout "$tt" sh -c \
			". /kf/lib.sh; . '$t'; set -ex; $fn" >/dev/console 2>&1 </dev/null
		rc=$?
	fi
	mark "test $name end rc=$rc"
	if [ -s "$sub" ]; then
		sed 's/^/    /' "$sub" >"$out"
	fi
	if [ $rc -eq 0 ]; then
		echo "ok $i $name # time=$(($(date +%s) - start))s" >"$out"
	else
		[ $rc -eq 143 ] && echo "kf-runner: $name timed out after ${tt}s" >/dev/console
		echo "not ok $i $name # time=$(($(date +%s) - start))s rc=$rc" >"$out"
		fails=$((fails + 1))
	fi
done

# kmemleak: objects younger than 5 s are not reported, so wait, then scan
# twice (the second scan confirms the first one's suspects).
i=$((i + 1))
mark "test kmemleak start"
if [ -e /sys/kernel/debug/kmemleak ]; then
	sleep 6
	echo scan >/sys/kernel/debug/kmemleak
	echo scan >/sys/kernel/debug/kmemleak
	if [ -s /sys/kernel/debug/kmemleak ] && grep -q unreferenced /sys/kernel/debug/kmemleak; then
		cat /sys/kernel/debug/kmemleak >/dev/console
		echo "not ok $i kmemleak" >"$out"
		fails=$((fails + 1))
	else
		echo "ok $i kmemleak" >"$out"
	fi
else
	echo "ok $i kmemleak # SKIP kmemleak not configured" >"$out"
fi
mark "test kmemleak end"
mark "done fails=$fails"
echo "# kf-runner: done" >"$out"
[ $fails -eq 0 ]
