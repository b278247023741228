# SPDX-License-Identifier: GPL-2.0
# The NTB test device (module ntb_hw_ivshmem, scripts/testbed) under the
# stock NTB clients, run unchanged: ntb_tool (link, scratchpads and
# doorbells both ways, both memory windows both ways with every byte
# checked, a translation the device must refuse), ntb_perf (bandwidth, as
# a "BENCH ntb_perf" line), ntb_transport with ntb_netdev (link flaps
# before its first handshake, then files sent both ways over the netdevs,
# md5 checked), the debugfs link knob, and driver
# unload with the link up and reload. single: the guest's two ports are
# cabled to each other; pair: one port in each guest.
KF_MODES="single pair"

DBG=/sys/kernel/debug
NTB_ADDR_A=10.77.0.1
NTB_ADDR_B=10.77.0.2
# Port devices (PCI functions 0 of the slots guest.sh plugs them into).
NTB_P0=0000:00:05.0
NTB_P1=0000:00:06.0

# ntb_present: load the driver (the test bed always builds it).
ntb_present() {
	modprobe ntb_hw_ivshmem || kf_fail "ntb_hw_ivshmem does not load"
	[ -d "/sys/bus/ntb/devices/$NTB_P0" ] || kf_fail "no NTB port at $NTB_P0"
}

# tool DEV: ntb_tool's debugfs directory of port DEV.
tool() { echo "$DBG/ntb_tool/$1"; }

# ntb_wait_link DEV Y|N: wait until the link of DEV is up (Y) or down (N).
ntb_wait_link() {
	timeout 30 sh -c "echo $2 >$(tool "$1")/peer0/link_event" ||
		kf_fail "$1: link did not become $2"
}

# db_irqs DEV: interrupts taken on the doorbell vector (vector 1) of DEV.
db_irqs() {
	grep "$1" /proc/interrupts | grep ntb_hw_ivshmem | sed -n 2p |
		awk '{ s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; print s }'
}

# spad_send DEV VALUES: write VALUES to DEV's peer scratchpads 0, 1, ...
spad_send() {
	local t i=0 v
	t=$(tool "$1")
	for v in $2; do
		echo "$v" >"$t/peer0/spad$i"
		i=$((i + 1))
	done
}

# spad_check DEV VALUES: DEV's own scratchpads hold VALUES.
spad_check() {
	local t i=0 v got
	t=$(tool "$1")
	for v in $2; do
		got=$(cat "$t/spad$i")
		[ "$((got))" -eq "$v" ] || kf_fail "$1: spad$i is $got, the peer wrote $v"
		i=$((i + 1))
	done
}

spad_values() {
	local i
	for i in $(seq 0 15); do echo $(((RANDOM << 8) ^ RANDOM ^ i)); done | tr '\n' ' '
}

# db_arm DEV BITS: clear and unmask DEV's doorbells, then wait in the
# background until they read BITS; db_done waits for that. The waiter is
# started before the peer rings, so it needs the interrupt to wake up.
db_arm() {
	local t
	t=$(tool "$1")
	echo "c 0xffff" >"$t/db"
	echo "c 0xffff" >"$t/db_mask"
	DB_IRQS=$(db_irqs "$1")
	timeout 20 sh -c "echo $2 >$t/db_event" &
	DB_WAITER=$!
	sleep 0.5
}

db_done() {
	local t got
	t=$(tool "$1")
	wait "$DB_WAITER" || kf_fail "$1: doorbell $2 was not received"
	got=$(cat "$t/db")
	[ "$((got))" -eq "$(($2))" ] || kf_fail "$1: doorbell reads $got, expected $2"
	[ "$(db_irqs "$1")" -gt "$DB_IRQS" ] || kf_fail "$1: no doorbell interrupt"
	echo "c $2" >"$t/db"
	[ "$(($(cat "$t/db")))" -eq 0 ] || kf_fail "$1: doorbell not cleared"
}

# MW_SIZE: each window is 16 MiB; ntb_tool rounds its buffers up to that.
MW_SIZE=$((16 << 20))

# mw_in DEV: allocate DEV's inbound buffers for windows 0 and 1, in this
# order, which puts them at the windows' fixed translations. A buffer for
# window 1 alone would land at window 0's address: the device refuses it.
mw_in() {
	local t
	t=$(tool "$1")
	if echo $MW_SIZE >"$t/peer0/mw_trans1" 2>/dev/null; then
		kf_fail "$1: window 1 accepted a translation its peer cannot reach"
	fi
	echo $MW_SIZE >"$t/peer0/mw_trans0"
	echo $MW_SIZE >"$t/peer0/mw_trans1"
	grep -q "DMA Address" "$t/peer0/mw_trans1"
}

mw_in_free() {
	local t
	t=$(tool "$1")
	echo 0 >"$t/peer0/mw_trans1"
	echo 0 >"$t/peer0/mw_trans0"
}

# mw_write DEV W FILE: write FILE through DEV's outbound window W.
mw_write() {
	local t
	t=$(tool "$1")
	echo "0:$MW_SIZE" >"$t/peer0/peer_mw_trans$2"
	dd if="$3" of="$t/peer0/peer_mw$2" bs=1M 2>/dev/null
	echo "0:0" >"$t/peer0/peer_mw_trans$2"
}

# mw_check DEV W FILE: DEV's inbound window W holds FILE, every byte.
mw_check() {
	dd if="$(tool "$1")/peer0/mw$2" of=/tmp/ntb.got bs=1M 2>/dev/null
	cmp /tmp/ntb.got "$3" || kf_fail "$1: window $2 differs from what the peer wrote"
	rm -f /tmp/ntb.got
}

# knob DEV down|up: the driver's debugfs link knob.
knob() {
	echo "$2" >"$DBG/ntb_hw_ivshmem/$1/link"
}

# perf_run DEV: ntb_perf from DEV to its peer; prints the BENCH line.
perf_run() {
	local p i out mbs
	p=$DBG/ntb_perf/$1
	for i in $(seq 1 60); do
		echo 0 >"$p/run" 2>/dev/null && break
		[ "$i" -lt 60 ] || kf_fail "$1: ntb_perf did not start ($(cat "$p/info"))"
		sleep 0.5
	done
	out=$(cat "$p/run")
	echo "$out"
	! echo "$out" | grep -q "error" || kf_fail "$1: ntb_perf reported an error"
	# One "N: copied B bytes in U usecs, M MBytes/s" line per thread.
	mbs=$(echo "$out" | awk '/copied .* MBytes\/s/ { s += $(NF - 1); n++ } END { if (n) print s }')
	[ -n "$mbs" ] && [ "$mbs" -gt 0 ] || kf_fail "$1: ntb_perf reported no bandwidth"
	echo "BENCH ntb_perf $KF_MODE $1 $mbs MBytes/s"
}

# netdev DEV: the ntb_netdev interface on NTB port DEV.
netdev() {
	local n
	for n in /sys/class/net/*; do
		case "$(readlink -f "$n/device")" in
		*"$1"*) echo "${n##*/}"; return ;;
		esac
	done
	kf_fail "no ntb_netdev interface on $1"
}

# net_fetch ADDR IF FILE WHAT: fetch FILE from the HTTP server at ADDR of
# this guest; its data must come in through interface IF. Compare it.
net_fetch() {
	local rx
	rx=$(cat "/sys/class/net/$2/statistics/rx_bytes")
	wget -q -O /tmp/ntb.recv "http://$1:8888/${3#/tmp/}" || kf_fail "fetch over $4 failed"
	cmp /tmp/ntb.recv "$3" || kf_fail "the file sent over $4 differs"
	[ "$(cat "/sys/class/net/$2/statistics/rx_bytes")" -gt \
		$((rx + $(wc -c <"$3"))) ] || kf_fail "the file did not come through $2"
}

# net_wait IF: wait for the carrier of IF (ntb_transport's queue is up).
net_wait() {
	local i
	for i in $(seq 1 120); do
		[ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ] && return 0
		sleep 0.5
	done
	cat "$DBG"/ntb_transport/*/qp*/stats "$DBG"/ntb_hw_ivshmem/*/info || true
	kf_fail "$1: no carrier"
}

test_single() {
	ntb_present || return 0
	local t0 t1 v f
	t0=$(tool $NTB_P0)
	t1=$(tool $NTB_P1)

	# ntb_tool on both ports of the loopback cable.
	modprobe ntb_tool
	echo Y >"$t0/link"
	echo Y >"$t1/link"
	ntb_wait_link $NTB_P0 Y
	ntb_wait_link $NTB_P1 Y
	[ "$(cat "$t0/port")" = "$(cat "$t0/peer0/port")" ]

	v=$(spad_values)
	spad_send $NTB_P0 "$v"
	spad_check $NTB_P1 "$v"
	v=$(spad_values)
	spad_send $NTB_P1 "$v"
	spad_check $NTB_P0 "$v"

	db_arm $NTB_P1 0x5
	echo "s 0x5" >"$t0/peer_db"
	db_done $NTB_P1 0x5
	db_arm $NTB_P0 0x8001
	echo "s 0x8001" >"$t1/peer_db"
	db_done $NTB_P0 0x8001
	# Bits outside db_valid_mask are refused.
	! echo "s 0x10000" >"$t0/peer_db" 2>/dev/null

	kf_pattern /tmp/ntb.w0 16
	kf_pattern /tmp/ntb.w1 16
	mw_in $NTB_P1
	mw_in $NTB_P0
	mw_write $NTB_P0 0 /tmp/ntb.w0
	mw_write $NTB_P0 1 /tmp/ntb.w1
	mw_check $NTB_P1 0 /tmp/ntb.w0
	mw_check $NTB_P1 1 /tmp/ntb.w1
	mw_write $NTB_P1 0 /tmp/ntb.w1
	mw_write $NTB_P1 1 /tmp/ntb.w0
	mw_check $NTB_P0 0 /tmp/ntb.w1
	mw_check $NTB_P0 1 /tmp/ntb.w0
	mw_in_free $NTB_P0
	mw_in_free $NTB_P1

	# The debugfs knob pulls the cable for both ends.
	knob $NTB_P0 down
	ntb_wait_link $NTB_P0 N
	ntb_wait_link $NTB_P1 N
	knob $NTB_P0 up
	ntb_wait_link $NTB_P0 Y
	ntb_wait_link $NTB_P1 Y

	# Unload with the link up, reload, link up again.
	rmmod ntb_hw_ivshmem
	modprobe ntb_hw_ivshmem
	echo Y >"$t0/link"
	echo Y >"$t1/link"
	ntb_wait_link $NTB_P0 Y
	ntb_wait_link $NTB_P1 Y
	rmmod ntb_tool

	# ntb_perf kmallocs a source buffer of the window size: cap it at 4 MiB.
	modprobe ntb_perf total_order=26 max_mw_size=0x400000
	perf_run $NTB_P0
	perf_run $NTB_P1
	rmmod ntb_perf

	# ntb_netdev: both interfaces are local, so policy routing sends the
	# packets for the other address out of the interface that does not
	# own it (as the runner does for the veth pair). ntb_transport comes
	# up through link flaps before its first handshake: its link work and
	# cleanup must not deadlock or lose the final up (net_wait below).
	knob $NTB_P0 down
	modprobe ntb_netdev
	for v in $(seq 1 40); do
		knob $NTB_P0 up
		knob $NTB_P0 down
	done
	knob $NTB_P0 up
	local n0 n1 mac0 mac1
	n0=$(netdev $NTB_P0)
	n1=$(netdev $NTB_P1)
	for f in all default "$n0" "$n1"; do
		echo 1 >"/proc/sys/net/ipv4/conf/$f/accept_local"
		echo 0 >"/proc/sys/net/ipv4/conf/$f/rp_filter"
	done
	ip addr add $NTB_ADDR_A/24 dev "$n0"
	ip addr add $NTB_ADDR_B/24 dev "$n1"
	ip link set "$n0" up
	ip link set "$n1" up
	mac0=$(cat "/sys/class/net/$n0/address")
	mac1=$(cat "/sys/class/net/$n1/address")
	ip rule add pref 20 iif lo to $NTB_ADDR_B lookup 20
	ip rule add pref 20 iif lo to $NTB_ADDR_A lookup 21
	ip route add $NTB_ADDR_B dev "$n0" src $NTB_ADDR_A table 20
	ip route add $NTB_ADDR_A dev "$n1" src $NTB_ADDR_B table 21
	ip neigh replace $NTB_ADDR_B lladdr "$mac1" dev "$n0" nud permanent
	ip neigh replace $NTB_ADDR_A lladdr "$mac0" dev "$n1" nud permanent
	net_wait "$n0"
	net_wait "$n1"
	# HTTP, not nc: busybox nc drops the connection when its stdin ends.
	kf_pattern /tmp/ntb.send 8
	httpd -f -p 8888 -h /tmp &
	v=$!
	sleep 0.5
	net_fetch $NTB_ADDR_B "$n0" /tmp/ntb.send "$n1 -> $n0"
	net_fetch $NTB_ADDR_A "$n1" /tmp/ntb.send "$n0 -> $n1"
	kill $v
	ip rule del pref 20 iif lo to $NTB_ADDR_B lookup 20
	ip rule del pref 20 iif lo to $NTB_ADDR_A lookup 21
	# Driver removal under ntb_transport with the link up.
	rmmod ntb_hw_ivshmem
	rmmod ntb_netdev ntb_transport
	modprobe ntb_hw_ivshmem
	rmmod ntb_hw_ivshmem
	rm -f /tmp/ntb.*
}

# The pair: each guest runs its half; kf_exchange carries the values and
# orders the steps. "me"/"peer" below are the port devices of this guest
# (both at 0000:00:05.0).
test_A() { ntb_pair A; }
test_B() { ntb_pair B; }

ntb_pair() {
	local role=$1 me=$NTB_P0 t v present=1 f sum
	ntb_present || present=0
	# Both guests must agree to skip.
	[ "$(kf_exchange ntb-present $present)" = 1 ] && [ $present = 1 ] || return 0
	t=$(tool $me)

	modprobe ntb_tool
	echo Y >"$t/link"
	ntb_wait_link $me Y
	kf_barrier ntb-up

	# Scratchpads: each side writes the other's, then checks its own.
	v=$(spad_values)
	spad_send $me "$v"
	v=$(kf_exchange ntb-spad "$v")
	spad_check $me "$v"
	kf_barrier ntb-spad-done

	# Doorbells: A rings B, then B rings A.
	if [ $role = A ]; then
		kf_barrier ntb-db1
		echo "s 0x3" >"$t/peer_db"
		kf_barrier ntb-db1-rung
		db_arm $me 0x4000
		kf_barrier ntb-db2
		db_done $me 0x4000
	else
		db_arm $me 0x3
		kf_barrier ntb-db1
		kf_barrier ntb-db1-rung
		db_done $me 0x3
		kf_barrier ntb-db2
		echo "s 0x4000" >"$t/peer_db"
	fi
	kf_barrier ntb-db-done

	# Memory windows: both windows of each side, written by the other.
	mw_in $me
	kf_pattern /tmp/ntb.w0 16
	kf_pattern /tmp/ntb.w1 16
	sum=$(cat /tmp/ntb.w0 /tmp/ntb.w1 | md5sum)
	kf_barrier ntb-mw-ready
	if [ $role = A ]; then
		mw_write $me 0 /tmp/ntb.w0
		mw_write $me 1 /tmp/ntb.w1
		kf_exchange ntb-mw-written "$sum" >/dev/null
		kf_exchange ntb-mw-checked - >/dev/null
	else
		v=$(kf_exchange ntb-mw-written -)
		dd if="$t/peer0/mw0" of=/tmp/ntb.r0 bs=1M 2>/dev/null
		dd if="$t/peer0/mw1" of=/tmp/ntb.r1 bs=1M 2>/dev/null
		[ "$(cat /tmp/ntb.r0 /tmp/ntb.r1 | md5sum)" = "$v" ] ||
			kf_fail "the windows differ from what A wrote"
		kf_exchange ntb-mw-checked - >/dev/null
		mw_write $me 0 /tmp/ntb.w0
		mw_write $me 1 /tmp/ntb.w1
	fi
	v=$(kf_exchange ntb-mw-back "$sum")
	if [ $role = A ]; then
		dd if="$t/peer0/mw0" of=/tmp/ntb.r0 bs=1M 2>/dev/null
		dd if="$t/peer0/mw1" of=/tmp/ntb.r1 bs=1M 2>/dev/null
		[ "$(cat /tmp/ntb.r0 /tmp/ntb.r1 | md5sum)" = "$v" ] ||
			kf_fail "the windows differ from what B wrote"
	fi
	kf_barrier ntb-mw-done
	mw_in_free $me

	# The knob on A takes the link down on both sides.
	[ $role = A ] && knob $me down
	ntb_wait_link $me N
	kf_barrier ntb-knob-down
	[ $role = A ] && knob $me up
	ntb_wait_link $me Y
	kf_barrier ntb-knob-up

	# Unload with the link up: A first, then B; the peer sees the link go
	# down, and up again after the reload.
	for f in A B; do
		if [ $role = $f ]; then
			rmmod ntb_hw_ivshmem
			kf_barrier ntb-unloaded-$f
			kf_barrier ntb-seen-down-$f
			modprobe ntb_hw_ivshmem
			echo Y >"$t/link"
		else
			kf_barrier ntb-unloaded-$f
			ntb_wait_link $me N
			kf_barrier ntb-seen-down-$f
		fi
		ntb_wait_link $me Y
		kf_barrier ntb-reloaded-$f
	done
	rmmod ntb_tool
	# Both links down before the next client: ntb_perf clears its
	# scratchpads when it loads, which would eat a command sent early.
	kf_barrier ntb-tool-gone

	# ntb_perf: A to B, then B to A (source buffers capped as above).
	modprobe ntb_perf total_order=26 max_mw_size=0x400000
	kf_barrier ntb-perf-loaded
	[ $role = A ] && perf_run $me
	kf_barrier ntb-perf-a
	[ $role = B ] && perf_run $me
	kf_barrier ntb-perf-b
	rmmod ntb_perf
	kf_barrier ntb-perf-gone

	# ntb_transport + ntb_netdev: a file each way, md5 checked.
	modprobe ntb_netdev
	local n my peer
	n=$(netdev $me)
	if [ $role = A ]; then my=$NTB_ADDR_A peer=$NTB_ADDR_B; else my=$NTB_ADDR_B peer=$NTB_ADDR_A; fi
	ip addr add $my/24 dev "$n"
	ip link set "$n" up
	net_wait "$n"
	kf_pattern /tmp/ntb.send 8
	httpd -f -p 8888 -h /tmp &
	v=$!
	sum=$(kf_exchange ntb-http-ready "$(md5sum </tmp/ntb.send)")
	for f in A B; do
		if [ $role = $f ]; then
			wget -q -O /tmp/ntb.recv "http://$peer:8888/ntb.send" ||
				kf_fail "fetching the peer's file over $n failed"
			[ "$(md5sum </tmp/ntb.recv)" = "$sum" ] ||
				kf_fail "the file fetched over $n differs"
		fi
		kf_barrier ntb-http-$f
	done
	kill $v
	kf_barrier ntb-http-done
	# Driver removal under ntb_transport with the link up, A first.
	[ $role = A ] && rmmod ntb_hw_ivshmem
	kf_barrier ntb-final-a
	[ $role = B ] && rmmod ntb_hw_ivshmem
	rmmod ntb_netdev ntb_transport
	kf_barrier ntb-final
	rm -f /tmp/ntb.*
}
