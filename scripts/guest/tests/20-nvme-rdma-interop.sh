# SPDX-License-Identifier: GPL-2.0
# Stock nvme-rdma (guest B) against stock nvmet-rdma (guest A) over Soft-RoCE
# on the virtual link: proves the test bed carries RDMA between two kernels,
# and that the interop peers the kfabric NVMe transport is tested against
# work. B writes a random pattern with O_DIRECT and reads it back; A checks
# the same bytes landed in its namespace.
KF_MODES="pair"
NQN=nqn.2026-11.io.kfabric:interop-rdma
MIB=8

test_A() {
	modprobe null_blk nr_devices=1 gb=1 memory_backed=1
	modprobe nvmet-rdma
	kf_nvmet_export rdma "$NQN" /dev/nullb0 "$KF_MY_IP" 4420
	kf_barrier target-ready
	sum=$(kf_exchange host-wrote -)
	mine=$(dd if=/dev/nullb0 bs=1M count=$MIB iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
	echo "host wrote $sum, namespace holds $mine"
	kf_barrier host-done
	kf_nvmet_unexport "$NQN"
	rmmod nvmet_rdma nvmet null_blk
	[ "$sum" = "$mine" ] || kf_fail "namespace content differs from what the host wrote"
}

test_B() {
	modprobe nvme-rdma
	kf_pattern /tmp/pattern $MIB
	kf_barrier target-ready
	ctrl=$(kf_nvme_connect rdma "$KF_PEER_IP" 4420 "$NQN")
	echo "connected $ctrl"
	kf_wait_for /dev/${ctrl}n1 30 || kf_fail "no namespace on $ctrl"
	dd if=/tmp/pattern of=/dev/${ctrl}n1 bs=1M oflag=direct 2>/dev/null
	dd if=/dev/${ctrl}n1 of=/tmp/readback bs=1M count=$MIB iflag=direct 2>/dev/null
	want=$(md5sum </tmp/pattern | cut -d' ' -f1)
	got=$(md5sum </tmp/readback | cut -d' ' -f1)
	echo "wrote $want, read back $got"
	kf_exchange host-wrote "$want" >/dev/null
	echo 1 >/sys/class/nvme/$ctrl/delete_controller
	kf_barrier host-done
	rmmod nvme_rdma nvme_fabrics nvme_core 2>/dev/null || true
	[ "$want" = "$got" ] || kf_fail "read-back differs from the pattern"
}
