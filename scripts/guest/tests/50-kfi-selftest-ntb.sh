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

# kfn_load: the provider first, so that it is the client the ports bind
# to, then the device; false when either is not built.
kfn_load() {
	if ! modprobe kfi_ntb 2>/dev/null || ! modprobe ntb_hw_ivshmem 2>/dev/null; then
		echo "kfi_ntb or ntb_hw_ivshmem is not built: nothing to test"
		modprobe -r kfi_ntb 2>/dev/null || true
		return 1
	fi
}

# kfn_wait_up DEV: wait until kfi_ntb has DEV's link up and knows its peer.
kfn_wait_up() {
	local i info
	for i in $(seq 1 300); do
		info=$(cat "$DBG/kfi_ntb/$1/info" 2>/dev/null) || info=
		case $info in *"link up"*)
			echo "$info" | grep -q '^peer -$' || return 0 ;;
		esac
		sleep 0.1
	done
	cat "$DBG/kfi_ntb/$1/info" 2>/dev/null || true
	kf_fail "$1: kfi_ntb link did not come up"
}

kfn_unload() {
	rmmod kfi_selftest 2>/dev/null || true
	rmmod ntb_hw_ivshmem
	rmmod kfi_ntb
}

test_single() {
	kfn_load || return 0
	kfn_wait_up $NTB_P0
	kfn_wait_up $NTB_P1
	# Served on one port, reached from the other.
	kf_selftest loop fabric=ntb addr=$NTB_P0 port=$PORT
	cat "$DBG/kfi_ntb/$NTB_P0/info" "$DBG/kfi_ntb/$NTB_P1/info"
	kfn_unload
}

test_A() {
	kfn_load || { kf_barrier server-ready; kf_barrier client-done; return 0; }
	kfn_wait_up $NTB_P0
	kf_selftest serve fabric=ntb addr=$NTB_P0 port=$PORT
	kf_barrier server-ready
	kf_barrier client-done
	kf_selftest stop
	cat "$DBG/kfi_ntb/$NTB_P0/info"
	kfn_unload
}

test_B() {
	kfn_load || { kf_barrier server-ready; kf_barrier client-done; return 0; }
	kfn_wait_up $NTB_P0
	kf_barrier server-ready
	rc=0
	# A's port has the same name as ours: the link whose peer it is.
	(kf_selftest client fabric=ntb addr=$NTB_P0 port=$PORT) || rc=$?
	kf_barrier client-done
	cat "$DBG/kfi_ntb/$NTB_P0/info"
	kfn_unload
	[ "$rc" -eq 0 ] || kf_fail "the self-test failed"
}
