# SPDX-License-Identifier: GPL-2.0
# The provider-independent kfabric self-test over the verbs provider on
# soft-iWARP (siw), in one guest from siw1 to siw0 across the veth pair:
# the verbs provider offers iWARP devices too. iWARP has no immediate
# data, so the domains lack KFI_CAP_RMA_IMM and write_imm is skipped;
# reads into plain buffers register their sinks (the provider's iWARP read
# path), the read/write helper's reads go through rdma_rw's registrations.
# The test bed's Soft-RoCE devices make way for the test (two RDMA devices
# on one netdev would leave rdma_cm's choice to chance) and come back
# after it.
KF_MODES="single"
PORT=18516
R=/sys/kernel/debug/kfi_selftest/results

kfw_restore() {
	rmmod kfi_selftest kfi_verbs 2>/dev/null || true
	rdma link delete siw0 2>/dev/null || true
	rdma link delete siw1 2>/dev/null || true
	rmmod siw 2>/dev/null || true
	rdma link show rxe0 >/dev/null 2>&1 || kf_rxe_setup veth0 rxe0
	rdma link show rxe1 >/dev/null 2>&1 || kf_rxe_setup veth1 rxe1
}

test_single() {
	modprobe siw || kf_fail "siw does not load"
	trap kfw_restore EXIT
	rdma link delete rxe0
	rdma link delete rxe1
	kf_rdma_link_add siw veth0 siw0
	kf_rdma_link_add siw veth1 siw1
	modprobe kfi_verbs
	kf_selftest loop fabric=verbs addr="$KF_PEER_IP" port=$PORT
	grep -q '# domain siw[01],' $R || kf_fail "the self-test did not run on a siw domain"
	grep -q 'ok [0-9]* write_imm # SKIP' $R ||
		kf_fail "write with immediate data was not skipped on iWARP"
	grep -q '^ *ok [0-9]* size_1048576' $R || kf_fail "no 1 MiB transfer passed"
}
