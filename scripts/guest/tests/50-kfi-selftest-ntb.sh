# SPDX-License-Identifier: GPL-2.0
# The provider-independent kfabric self-test over the NTB provider
# (kfi_ntb) on the NTB test device (ntb_hw_ivshmem): in one guest between
# its two ports, which are cabled to each other, and between two guests.
# Every byte moved is checked by the module; its KTAP subtests show up
# under this test. Skipped when the tree has no NTB device or provider.
KF_MODES="single pair"
PORT=18517
DBG=/sys/kernel/debug
NTB_P0=0000:00:05.0
NTB_P1=0000:00:06.0

# The NTB provider copies with the CPU or a DMA engine and maps no pages:
# it maps the mr_layout cases that struct kfi_mr says may not fit (the
# self-test writes from them and checks every byte).
kfn_layouts() {
	local r=$DBG/kfi_selftest/results
	grep -q 'unaligned_boundary: .*: mapped$' $r ||
		kf_fail "a boundary inside a page was not mapped"
	grep -q 'pages_beyond_max: .*: mapped$' $r ||
		kf_fail "two segments of three pages each were not mapped"
}

kfn_unload() {
	rmmod kfi_selftest 2>/dev/null || true
	rmmod ntb_hw_ivshmem
	rmmod kfi_ntb
}

test_single() {
	kf_ntb_load
	kf_ntb_wait $NTB_P0 up
	kf_ntb_wait $NTB_P1 up
	# Served on one port, reached from the other.
	kf_selftest loop fabric=ntb addr=$NTB_P0 port=$PORT
	kfn_layouts
	cat "$DBG/kfi_ntb/$NTB_P0/info" "$DBG/kfi_ntb/$NTB_P1/info"
	kfn_unload
}

test_A() {
	kf_ntb_load
	kf_ntb_wait $NTB_P0 up
	kf_selftest serve fabric=ntb addr=$NTB_P0 port=$PORT
	kf_barrier server-ready
	kf_barrier client-done
	kf_selftest stop
	cat "$DBG/kfi_ntb/$NTB_P0/info"
	kfn_unload
}

test_B() {
	kf_ntb_load
	kf_ntb_wait $NTB_P0 up
	kf_barrier server-ready
	rc=0
	# A's port has the same name as ours: the link whose peer it is.
	(kf_selftest client fabric=ntb addr=$NTB_P0 port=$PORT) || rc=$?
	[ "$rc" -ne 0 ] || (kfn_layouts) || rc=$?
	kf_barrier client-done
	cat "$DBG/kfi_ntb/$NTB_P0/info"
	kfn_unload
	[ "$rc" -eq 0 ] || kf_fail "the self-test failed"
}
