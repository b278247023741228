# SPDX-License-Identifier: GPL-2.0
# The provider-independent kfabric self-test over the verbs provider on
# Soft-RoCE: in one guest from rxe0 to rxe1 across the veth pair, and
# between two guests across the virtual link. Every byte moved is checked
# by the module; its KTAP subtests show up under this test.
KF_MODES="single pair"
PORT=18515

# The verbs provider maps regions in pages (FRWR): of the mr_layout cases
# that struct kfi_mr says may not fit, a boundary inside a page fails with
# -EINVAL (-22) and more pages than the region holds with -E2BIG (-7).
kfv_layouts() {
	local r=/sys/kernel/debug/kfi_selftest/results
	grep -q 'unaligned_boundary: .*: -22$' $r ||
		kf_fail "a boundary inside a page did not fail with -EINVAL"
	grep -q 'pages_beyond_max: .*: -7$' $r ||
		kf_fail "more pages than the region holds did not fail with -E2BIG"
}

test_single() {
	modprobe kfi_verbs
	kf_selftest loop fabric=verbs addr="$KF_PEER_IP" port=$PORT
	kfv_layouts
	rmmod kfi_selftest kfi_verbs
}

test_A() {
	modprobe kfi_verbs
	kf_selftest serve fabric=verbs addr="$KF_MY_IP" port=$PORT
	kf_barrier server-ready
	# The client moves 4 MiB each way at the ~1 MB/s of rxe under TCG.
	KF_RDV_TIMEOUT=540 kf_barrier client-done
	kf_selftest stop
	rmmod kfi_selftest kfi_verbs
}

test_B() {
	modprobe kfi_verbs
	kf_barrier server-ready
	rc=0
	(kf_selftest client fabric=verbs addr="$KF_PEER_IP" port=$PORT) || rc=$?
	[ "$rc" -ne 0 ] || (kfv_layouts) || rc=$?
	kf_barrier client-done
	rmmod kfi_selftest kfi_verbs
	[ "$rc" -eq 0 ] || kf_fail "the self-test failed"
}
