# SPDX-License-Identifier: GPL-2.0
# The NTB provider (kfi_ntb) when the link or the device goes away, in one
# guest whose two NTB ports are cabled to each other:
# - the link pulled (the device's debugfs knob) under traffic: the
#   self-test's client fails instead of hanging, every endpoint is flushed,
#   and once the link is back a new connection works;
# - the device removed (ntb_hw_ivshmem unloaded) while connections are
#   live and a responder listens: the domains go away, the ULP frees its
#   objects afterwards, and the modules unload;
# - a bridge that wants window-size aligned translations (the device's
#   strict_align): the provider's inbound buffer is aligned as required.
KF_MODES="single"
PORT=18518
DBG=/sys/kernel/debug
NTB_P0=0000:00:05.0
NTB_P1=0000:00:06.0

# kfn_bound DEV: connections with a channel on DEV.
kfn_bound() {
	sed -n 's/^channels bound \([0-9]*\).*/\1/p' "$DBG/kfi_ntb/$1/info"
}

test_single() {
	kf_ntb_load
	kf_ntb_wait $NTB_P0 up
	kf_ntb_wait $NTB_P1 up
	modprobe kfi_selftest
	run=$DBG/kfi_selftest/run

	# The link pulled while a client pings the responder.
	kf_selftest serve fabric=ntb addr=$NTB_P0 port=$PORT
	rc=0
	(echo "client fabric=ntb addr=$NTB_P0 port=$PORT tests=sendrecv sizes=4096 iters=1000000" >"$run") &
	client=$!
	for i in $(seq 1 100); do
		[ "$(kfn_bound $NTB_P0)" -gt 0 ] && break
		sleep 0.1
	done
	[ "$(kfn_bound $NTB_P0)" -gt 0 ] || kf_fail "no connection to pull the link under"
	sleep 1
	echo down >"$DBG/ntb_hw_ivshmem/$NTB_P0/link"
	kf_ntb_wait $NTB_P0 down
	kf_ntb_wait $NTB_P1 down
	wait $client || rc=$?
	[ "$rc" -ne 0 ] || kf_fail "the client went on without a link"
	grep -q '^ *not ok' "$DBG/kfi_selftest/results" ||
		kf_fail "the client did not report the failure"
	[ "$(kfn_bound $NTB_P0)" -eq 0 ] && [ "$(kfn_bound $NTB_P1)" -eq 0 ] ||
		kf_fail "channels still bound after the link went down"
	echo up >"$DBG/ntb_hw_ivshmem/$NTB_P0/link"
	kf_ntb_wait $NTB_P0 up
	kf_ntb_wait $NTB_P1 up
	# The responder still listens: connect again.
	kf_selftest client fabric=ntb addr=$NTB_P0 port=$PORT tests=connect,sendrecv,rma_write,rma_read sizes=65536

	# The device goes away under live connections and a listener.
	(echo "client fabric=ntb addr=$NTB_P0 port=$PORT tests=sendrecv sizes=4096 iters=1000000" >"$run") &
	client=$!
	for i in $(seq 1 100); do
		[ "$(kfn_bound $NTB_P0)" -gt 0 ] && break
		sleep 0.1
	done
	sleep 1
	rmmod ntb_hw_ivshmem
	rc=0
	wait $client || rc=$?
	[ "$rc" -ne 0 ] || kf_fail "the client went on without a device"
	[ ! -d "$DBG/kfi_ntb/$NTB_P0" ] || kf_fail "the domain outlived its device"
	kf_selftest stop

	# A bridge that wants translations aligned to the window size, with
	# an allocator that does not align for us (strict_align): only an
	# inbound buffer over-allocated and aligned inside is accepted, or
	# the link never comes up.
	modprobe ntb_hw_ivshmem strict_align=1
	kf_ntb_wait $NTB_P0 up
	kf_ntb_wait $NTB_P1 up
	kf_selftest serve fabric=ntb addr=$NTB_P0 port=$PORT
	kf_selftest client fabric=ntb addr=$NTB_P0 port=$PORT tests=connect,sendrecv,rma_write,rma_read sizes=65536
	kf_selftest stop
	rmmod ntb_hw_ivshmem
	rmmod kfi_selftest
	rmmod kfi_ntb
}
