# SPDX-License-Identifier: GPL-2.0
# The provider-independent kfabric self-test over the verbs provider on
# Soft-RoCE: in one guest from rxe0 to rxe1 across the veth pair, and
# between two guests across the virtual link. Every byte moved is checked
# by the module; its KTAP subtests show up under this test.
KF_MODES="single pair"
PORT=18515

test_single() {
	modprobe kfi_verbs
	kf_selftest loop fabric=verbs addr="$KF_PEER_IP" port=$PORT
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
	kf_barrier client-done
	rmmod kfi_selftest kfi_verbs
	[ "$rc" -eq 0 ] || kf_fail "the self-test failed"
}
