# SPDX-License-Identifier: GPL-2.0
# Device removal under traffic: `rdma link delete` of a Soft-RoCE device
# while the self-test moves data through it, ROUNDS times, alternating the
# client's side and the responder's. Each time the client must come back
# (with an error: its work is flushed or times out), the kernel must not
# complain (the host checks the console, KASAN, lockdep and kmemleak
# included), and once the device is re-added the next round runs on it.
# Before that, `rmmod kfi_verbs` with live endpoints must be refused
# cleanly (every kfabric object pins its provider), and after the rounds a
# fresh self-test run passes and both modules unload: nothing was left
# behind.
KF_MODES="single"
# Each round on the responder's side waits out the client's RC retries.
KF_TEST_TIMEOUT=1500
PORT=18517
DBG=/sys/kernel/debug
ROUNDS=20

# counters DEV: the kfabric counters of the verbs domain on DEV.
counters() {
	cat "$DBG/kfabric/verbs/$1/counters" 2>/dev/null
}

# traffic_then_delete CLIENT_DEV DELETE_DEV NETDEV: start a long RMA-write
# run from CLIENT_DEV, delete DELETE_DEV once data moves, re-add it on
# NETDEV and check the client returned.
traffic_then_delete() {
	local cdev=$1 ddev=$2 netdev=$3 before pid i rc=0
	before=$(counters "$cdev")
	[ -n "$before" ] || kf_fail "no kfabric domain for $cdev"
	# iters is far more than the guest moves before the deletion.
	(echo "client fabric=verbs addr=$KF_PEER_IP port=$PORT tests=rma_write iters=100000" \
		>"$DBG/kfi_selftest/run") &
	pid=$!
	i=0
	while [ "$(counters "$cdev")" = "$before" ]; do
		i=$((i + 1))
		[ $i -le 600 ] || kf_fail "no traffic on $cdev after 60 s"
		kill -0 $pid 2>/dev/null || kf_fail "the client ended before any traffic"
		sleep 0.1
	done
	# Let a few operations be in flight, then remove the device.
	sleep 0.5
	kill -0 $pid 2>/dev/null || kf_fail "the client ended before the removal"
	echo "deleting $ddev with the client running"
	rdma link delete "$ddev"
	[ ! -d "$DBG/kfabric/verbs/$ddev" ] || kf_fail "domain $ddev outlived its device"
	i=0
	while kill -0 $pid 2>/dev/null; do
		i=$((i + 1))
		[ $i -le 1800 ] || kf_fail "the client hangs after $ddev was deleted"
		sleep 0.1
	done
	wait $pid || rc=$?
	[ "$rc" -ne 0 ] || kf_fail "the client reported success across the removal of $ddev"
	echo "client returned $rc after $((i / 10)) s"
	kf_rxe_setup "$netdev" "$ddev"
}

# serve: a fresh responder; a deleted device takes its listener along.
serve() {
	echo stop >"$DBG/kfi_selftest/run"
	echo "serve fabric=verbs addr=$KF_PEER_IP port=$PORT" >"$DBG/kfi_selftest/run"
}

# rmmod_busy: kfi_verbs cannot go while the self-test's endpoints (and
# the responder's passive endpoint) use it, and the refused unload leaves
# them working.
rmmod_busy() {
	local pid rc=0 before i=0
	serve
	before=$(counters rxe0)
	(echo "client fabric=verbs addr=$KF_PEER_IP port=$PORT tests=sendrecv iters=200" \
		>"$DBG/kfi_selftest/run") &
	pid=$!
	while [ "$(counters rxe0)" = "$before" ]; do
		i=$((i + 1))
		[ $i -le 600 ] || kf_fail "no traffic on rxe0 after 60 s"
		sleep 0.1
	done
	if rmmod kfi_verbs 2>/dev/null; then
		kf_fail "kfi_verbs unloaded under live endpoints"
	fi
	grep -q '^kfi_verbs ' /proc/modules || kf_fail "kfi_verbs is gone"
	wait $pid || rc=$?
	[ "$rc" -eq 0 ] || kf_fail "the client failed after the refused unload ($rc)"
	echo "rmmod kfi_verbs refused with live endpoints; the client passed"
}

test_single() {
	local r
	modprobe kfi_verbs
	modprobe kfi_selftest
	rmmod_busy
	for r in $(seq 1 $ROUNDS); do
		if [ $((r % 2)) -eq 1 ]; then
			# The client's own device goes away: its work flushes.
			serve
			traffic_then_delete rxe0 rxe0 veth0
		else
			# The responder's device goes away: the responder's
			# endpoints flush, the client's operations fail on the
			# wire.
			serve
			traffic_then_delete rxe0 rxe1 veth1
		fi
		echo "round $r of $ROUNDS done"
	done
	echo stop >"$DBG/kfi_selftest/run"
	kf_selftest loop fabric=verbs addr="$KF_PEER_IP" port=$PORT tests=sendrecv,rma_write
	rmmod kfi_selftest kfi_verbs || kf_fail "the modules do not unload after the rounds"
}
