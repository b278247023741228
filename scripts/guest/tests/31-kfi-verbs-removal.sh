# SPDX-License-Identifier: GPL-2.0
# Device removal under traffic: `rdma link delete` of a Soft-RoCE device
# while the self-test moves data through it, first on the client's side,
# then on the responder's. The client must come back (with an error: its
# work is flushed or times out), the kernel must not complain (the host
# checks the console, kmemleak included), and once the device is re-added
# the same guest passes a fresh self-test run: nothing was left behind.
KF_MODES="single"
PORT=18517
DBG=/sys/kernel/debug

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
	sleep 2
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

test_single() {
	modprobe kfi_verbs
	modprobe kfi_selftest
	echo "serve fabric=verbs addr=$KF_PEER_IP port=$PORT" >"$DBG/kfi_selftest/run"

	# The client's own device goes away: its work flushes.
	traffic_then_delete rxe0 rxe0 veth0
	kf_selftest client fabric=verbs addr="$KF_PEER_IP" port=$PORT tests=sendrecv,rma_write

	# The responder's device goes away: the responder's endpoints flush,
	# the client's operations fail on the wire.
	echo stop >"$DBG/kfi_selftest/run"
	traffic_then_delete_responder
	rmmod kfi_selftest kfi_verbs
}

traffic_then_delete_responder() {
	echo "serve fabric=verbs addr=$KF_PEER_IP port=$PORT" >"$DBG/kfi_selftest/run"
	traffic_then_delete rxe0 rxe1 veth1
	# The old listener went with rxe1: a new one on the re-added device.
	echo stop >"$DBG/kfi_selftest/run"
	kf_selftest loop fabric=verbs addr="$KF_PEER_IP" port=$PORT tests=sendrecv,rma_write
}
