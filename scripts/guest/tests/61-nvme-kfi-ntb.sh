# SPDX-License-Identifier: GPL-2.0
# NVMe over Fabrics on kfabric over the NTB provider: nvme-kfi and
# nvmet-kfi on kfi_ntb, on the NTB test device (ntb_hw_ivshmem).
#
# The target's port is a kfi port whose address is an NTB device name
# (addr_adrfam pci, addr_traddr 0000:00:05.0): the discovery log then
# reports transport type kfi, as the wire is not NVMe/RDMA. The host
# connects with transport=kfi,traddr=0000:00:05.0: a connection to a node
# goes out on the link whose peer has that name. Pair mode: target on
# guest A, host on guest B, one port each, cabled to each other. Single
# mode: target on 0000:00:05.0, host through 0000:00:06.0, its peer.
#
# The host reads the discovery log (the subsystem must be listed with
# transport type kfi and address family pci), connects with a write and a
# poll queue besides the default one and runs fio with verify=crc32c,
# interrupt driven and polled, then writes a random pattern with O_DIRECT
# in 4 KiB to 1 MiB I/Os to both namespaces (1: null_blk, memory_backed=1;
# 2: a RAM file) and reads every region back with the same size,
# disconnects, reconnects and reads it again; the target checks the bytes
# in both namespaces. Then the NTB link is pulled (the device's debugfs
# knob) while a write is in flight: the controller must fall back to
# reconnecting (reconnect_delay=1), the write
# must wait and complete once the link is back, and the data must read back
# intact on both sides. Skipped when the tree has no NTB device, provider
# or NVMe kfi transports.
KF_MODES="single pair"
NQN=nqn.2026-11.io.kfabric:nvme-kfi-ntb
DBG=/sys/kernel/debug
NTB_P0=0000:00:05.0
NTB_P1=0000:00:06.0
PORT=63 SVC=4440
REGION=$KF_NVME_REGION
NREG=$KF_NVME_NREG
OPTS=reconnect_delay=1,ctrl_loss_tmo=120
# host_io moves about as much as 60-nvme-kfi's kfi-kfi cell: allow as much.
KF_RDV_TIMEOUT=900
KF_TEST_TIMEOUT=2400

# load: the NTB provider before the device, so that it is the client the
# ports bind to; fails the test when something is not built.
load() {
	local d=/lib/modules/$(uname -r)
	[ -n "$(find "$d" -name 'nvme-kfi.ko*' 2>/dev/null)" ] &&
		[ -n "$(find "$d" -name 'nvmet-kfi.ko*' 2>/dev/null)" ] ||
		kf_fail "nvme-kfi or nvmet-kfi is not built"
	kf_ntb_load
}

unload() {
	rmmod ntb_hw_ivshmem
	rmmod kfi_ntb
}

setup_target() {
	modprobe null_blk nr_devices=1 gb=1 memory_backed=1
	modprobe nvmet-kfi
	kf_nvme_ramfile
	kf_nvmet_subsys $NQN /dev/nullb0 $KF_NVME_RAMFILE
	kf_nvmet_port $PORT kfi pci $NTB_P0 $SVC $NQN
}

teardown_target() {
	kf_nvmet_port_del $PORT $NQN
	kf_nvmet_subsys_del $NQN
	rmmod nvmet_kfi
}

# target_check NAME "SUM1 [SUM2]": the namespaces hold what the host wrote.
target_check() {
	set -- "$1" $2
	kf_nvme_target_check "$1" "$2"
	[ -z "${3:-}" ] || kf_nvme_target_check "$1" "$3" $KF_NVME_RAMFILE
}

connect() {
	kf_nvme_connect kfi $NTB_P0 $SVC "$NQN" $OPTS${1:+,$1}
}

# host_io DEV: the discovery log (the subsystem on an NTB port: transport
# type kfi), then, on a controller with a write and a poll queue besides
# the default one: fio verify, interrupt driven and polled, the
# byte-verified I/O on both namespaces, disconnect, reconnect and read
# again, from the host's NTB port DEV. Prints the md5s of the regions of
# namespaces 1 and 2.
host_io() {
	local ctrl sum sum2 again bound ns1 ns2
	kf_nvme_disc_check "$(kf_nvme_discover kfi $NTB_P0 $SVC)" $NQN 253 0 $NTB_P0
	kf_pattern /tmp/pattern $NREG
	kf_pattern /tmp/pattern.n2 $NREG
	ctrl=$(connect nr_write_queues=1,nr_poll_queues=1)
	echo "connected $ctrl ($(cat /sys/class/nvme/$ctrl/transport)," \
		"$(cat /sys/class/nvme/$ctrl/address))" >&2
	ns1=$(kf_nvme_ns "$ctrl" 1 30) || kf_fail "no namespace on $ctrl"
	kf_nvme_queues "$ctrl" 3
	# Its queues are connections on the host's NTB port.
	bound=$(sed -n 's/^channels bound \([0-9]*\).*/\1/p' "$DBG/kfi_ntb/$1/info")
	[ "${bound:-0}" -gt 0 ] || kf_fail "$ctrl has no connection on $1"
	kf_fio_verify $ns1 kfi-ntb
	kf_fio_verify $ns1 kfi-ntb-polled poll
	sum=$(kf_nvme_io_check $ns1 /tmp/pattern)
	ns2=$(kf_nvme_ns "$ctrl" 2 30) || kf_fail "no namespace 2 on $ctrl"
	sum2=$(kf_nvme_io_check $ns2 /tmp/pattern.n2)
	kf_nvme_disconnect "$ctrl"
	ctrl=$(connect)
	ns1=$(kf_nvme_ns "$ctrl" 1 30) || kf_fail "no namespace after reconnecting"
	again=$(kf_nvme_area $ns1)
	[ "$again" = "$sum" ] || kf_fail "after reconnecting read $again, wrote $sum"
	kf_nvme_disconnect "$ctrl"
	echo "wrote and read back $sum and $sum2, also after reconnecting" >&2
	echo "$sum $sum2"
}

# host_linkdown: pull the NTB link (on the host's port DEV, $1) while
# writes are in flight, put it back; prints the md5 of what was written.
host_linkdown() {
	local dev=$1 ctrl passes sum ns1
	ctrl=$(connect)
	ns1=$(kf_nvme_ns "$ctrl" 1 30) || kf_fail "no namespace on $ctrl"
	kf_pattern /tmp/pattern2 $NREG
	sum=$(dd if=/tmp/pattern2 bs=$REGION count=$NREG status=none | kf_md5)
	kf_writer_start /tmp/pattern2 $ns1
	sleep 0.5
	kill -0 $KF_WRITER_PID 2>/dev/null || kf_fail "the writer failed before the link went down"
	echo down >"$DBG/ntb_hw_ivshmem/$dev/link"
	kf_ntb_wait "$dev" down
	echo "pulled the link of $dev with the writer running" >&2
	kf_nvme_wait_state "$ctrl" connecting 60 ||
		kf_fail "$ctrl did not start reconnecting (state $(kf_nvme_state "$ctrl"))"
	passes=$(kf_writer_passes)
	sleep 2
	[ "$(kf_nvme_state "$ctrl")" = connecting ] ||
		kf_fail "$ctrl left connecting without a link"
	[ "$(kf_writer_passes)" = "$passes" ] || kf_fail "a write completed without a link"
	echo up >"$DBG/ntb_hw_ivshmem/$dev/link"
	kf_ntb_wait "$dev" up
	kf_nvme_wait_state "$ctrl" live 60 ||
		kf_fail "$ctrl did not reconnect (state $(kf_nvme_state "$ctrl"))"
	kf_writer_stop || kf_fail "a write across the link loss failed"
	echo "the writer made $(kf_writer_passes) passes, $passes before the link came back" >&2
	[ "$(kf_nvme_area $ns1)" = "$sum" ] ||
		kf_fail "after the link came back the namespace differs from what was written"
	kf_fio_verify $ns1 after-linkdown
	# fio wrote the first 8 MiB: put the pattern back for the target.
	dd if=/tmp/pattern2 of=$ns1 bs=1M oflag=direct status=none
	kf_nvme_disconnect "$ctrl"
	echo "$ctrl reconnected after the link came back; the write completed intact" >&2
	echo "$sum"
}

test_single() {
	local sum
	load
	kf_ntb_wait $NTB_P0 up
	kf_ntb_wait $NTB_P1 up
	setup_target
	modprobe nvme-kfi
	sum=$(host_io $NTB_P1)
	target_check kfi-ntb "$sum"
	sum=$(host_linkdown $NTB_P0)
	target_check kfi-ntb-linkdown "$sum"
	teardown_target
	rmmod nvme_kfi
	unload
}

test_A() {
	load
	kf_ntb_wait $NTB_P0 up
	setup_target
	kf_barrier target-ready
	target_check kfi-ntb "$(kf_exchange kfi-ntb -)"
	target_check kfi-ntb-linkdown "$(kf_exchange kfi-ntb-linkdown -)"
	kf_barrier host-done
	teardown_target
	unload
}

test_B() {
	load
	kf_ntb_wait $NTB_P0 up
	modprobe nvme-kfi
	kf_barrier target-ready
	kf_exchange kfi-ntb "$(host_io $NTB_P0)" >/dev/null
	kf_exchange kfi-ntb-linkdown "$(host_linkdown $NTB_P0)" >/dev/null
	kf_barrier host-done
	rmmod nvme_kfi
	unload
}
