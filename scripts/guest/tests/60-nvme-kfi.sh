# SPDX-License-Identifier: GPL-2.0
# NVMe over Fabrics on kfabric (nvme-kfi, nvmet-kfi) over Soft-RoCE.
#
# Pair mode (target on guest A, host on guest B; namespace 1 a null_blk
# with memory_backed=1, namespace 2 a RAM file): first the discovery log,
# read by nvme-kfi and by nvme-rdma, must list the subsystem on the kfi
# port as transport type rdma, the wire it speaks; then the matrix nvme-kfi -> nvmet-kfi, nvme-rdma -> nvmet-kfi
# and nvme-kfi -> nvmet-rdma. For each, the host writes a random pattern
# with O_DIRECT in 4 KiB, 16 KiB, 64 KiB, 256 KiB and 1 MiB I/Os (one
# 1 MiB region per size), reads every region back with the same size and
# compares checksums, disconnects, reconnects and reads it all again; the
# target checks that the same bytes landed in its namespace. Then faults:
# the kfi port is removed while the host is connected (the host must start
# reconnecting, an I/O issued meanwhile must wait rather than fail or
# hang, and everything must resume once the port is back), and finally the
# controller is deleted while it is still trying to reconnect.
#
# The nvme-kfi -> nvmet-kfi cell also connects with a write and a poll
# queue besides the default one, runs fio with verify=crc32c, interrupt
# driven and polled, and checks namespace 2 the same way.
#
# Single mode runs the discovery log and the nvme-kfi -> nvmet-kfi cell
# across rxe0/rxe1 in one guest, then deletes the host's Soft-RoCE device (rxe0)
# while a write is in flight and adds it back: the controller reconnects
# (reconnect_delay=1), the write completes and the data reads back intact;
# then resets the controller under fio (verify=crc32c), brings the port
# back with a smaller queue size than the controller's tag set while it
# reconnects (fio verify at a deeper queue depth), and finally deletes
# and re-adds the target's device (rxe1): the port listens again.
#
# Without "nvmet-rdma: run commands that beat ESTABLISHED from a work
# item", the nvme-kfi -> nvmet-rdma cell gets a lockdep report whenever
# the host's connect command overtakes the ESTABLISHED event, since kfi
# ports are enabled and removed here (see 20-nvme-rdma-interop.sh).
KF_MODES="single pair"
NQN=nqn.2026-11.io.kfabric:nvme-kfi
REGION=$KF_NVME_REGION
NREG=$KF_NVME_NREG
# Ports and services of their own: 20-nvme-rdma-interop.sh leaves its port
# 1 on 4420 configured.
KPORT=61 KSVC=4430 RPORT=62 RSVC=4431
# The kfi-kfi cell (fio interrupt driven and polled, two namespaces,
# reconnect) takes about 300 s under TCG with the other mode's guest
# running next to this pair, and the test over 600 s.
KF_RDV_TIMEOUT=900
KF_TEST_TIMEOUT=2400

have_modules() {
	local d=/lib/modules/$(uname -r)
	[ -n "$(find "$d" -name 'nvme-kfi.ko*' 2>/dev/null)" ] &&
		[ -n "$(find "$d" -name 'nvmet-kfi.ko*' 2>/dev/null)" ]
}

# connect TRANSPORT ADDR SVCID [OPTIONS]: connect a controller, print nvmeN.
connect() {
	kf_nvme_connect "$1" "$2" "$3" "$NQN" "${4:-}"
}

# host_run NAME TRANSPORT SVCID [full]: one cell of the matrix, on the
# host. With "full", the controller also gets a write and a poll queue
# besides the default one, fio verifies with interrupts and polled, and
# namespace 2 (a RAM file on the target) is written and read back too;
# prints "SUM1 SUM2", else "SUM1".
host_run() {
	local name=$1 ctrl sum sum2= again opts= ns1 ns2
	[ "${4:-}" = full ] && opts=nr_write_queues=1,nr_poll_queues=1
	kf_pattern /tmp/pattern $NREG
	ctrl=$(connect "$2" "$KF_PEER_IP" "$3" $opts)
	echo "$name: connected $ctrl ($(cat /sys/class/nvme/$ctrl/transport))" >&2
	ns1=$(kf_nvme_ns "$ctrl" 1 30) || kf_fail "$name: no namespace on $ctrl"
	if [ "${4:-}" = full ]; then
		kf_nvme_queues "$ctrl" 3
		kf_fio_verify $ns1 "$name"
		kf_fio_verify $ns1 "$name-polled" poll
		ns2=$(kf_nvme_ns "$ctrl" 2 30) || kf_fail "$name: no namespace 2 on $ctrl"
		kf_pattern /tmp/pattern.n2 $NREG
		sum2=$(kf_nvme_io_check $ns2 /tmp/pattern.n2)
	fi
	sum=$(kf_nvme_io_check $ns1 /tmp/pattern)
	kf_nvme_disconnect "$ctrl"
	ctrl=$(connect "$2" "$KF_PEER_IP" "$3")
	ns1=$(kf_nvme_ns "$ctrl" 1 30) || kf_fail "$name: no namespace after reconnecting"
	again=$(kf_nvme_area $ns1)
	[ "$again" = "$sum" ] || kf_fail "$name: after reconnecting read $again, wrote $sum"
	kf_nvme_disconnect "$ctrl"
	echo "$name: wrote and read back $sum, also after reconnecting" >&2
	echo "$sum${sum2:+ $sum2}"
}

# target_check NAME "SUM1 [SUM2]": the namespaces hold what the host wrote.
target_check() {
	set -- "$1" $2
	kf_nvme_target_check "$1" "$2"
	[ -z "${3:-}" ] || kf_nvme_target_check "$1" "$3" $KF_NVME_RAMFILE
}

# setup_target ADDR: the namespaces (null_blk, a RAM file), in a subsystem
# on a kfi port.
setup_target() {
	modprobe null_blk nr_devices=1 gb=1 memory_backed=1
	modprobe kfi_verbs
	modprobe nvmet-kfi
	kf_nvme_ramfile
	kf_nvmet_subsys $NQN /dev/nullb0 $KF_NVME_RAMFILE
	kf_nvmet_port $KPORT kfi ipv4 "$1" $KSVC $NQN
}

teardown_target() {
	kf_nvmet_port_del $KPORT $NQN
	kf_nvmet_subsys_del $NQN
}

test_A() {
	have_modules || kf_fail "nvme-kfi or nvmet-kfi is not built"
	setup_target "$KF_MY_IP"
	modprobe nvmet-rdma
	kf_nvmet_port $RPORT rdma ipv4 "$KF_MY_IP" $RSVC $NQN
	kf_barrier target-ready
	target_check kfi-kfi "$(kf_exchange kfi-kfi -)"
	target_check rdma-kfi "$(kf_exchange rdma-kfi -)"
	target_check kfi-rdma "$(kf_exchange kfi-rdma -)"

	kf_barrier remove-port
	kf_nvmet_port_del $KPORT $NQN
	echo "removed the kfi port"
	kf_barrier port-removed
	kf_barrier host-reconnecting
	kf_nvmet_port $KPORT kfi ipv4 "$KF_MY_IP" $KSVC $NQN
	echo "added the kfi port back"
	kf_barrier port-back
	kf_barrier host-live
	kf_nvmet_port_del $KPORT $NQN
	kf_barrier port-removed-again
	kf_barrier host-deleted
	# nvmet-kfi has nothing left and unloads cleanly.
	rmmod nvmet_kfi
}

test_B() {
	local ctrl pid sum rc ns1
	have_modules || kf_fail "nvme-kfi or nvmet-kfi is not built"
	modprobe kfi_verbs
	modprobe nvme-kfi
	modprobe nvme-rdma
	kf_barrier target-ready
	# The kfi port speaks NVMe/RDMA on the wire, and says so: to
	# nvme-kfi and to a stock nvme-rdma host alike.
	kf_nvme_disc_check "$(kf_nvme_discover kfi "$KF_PEER_IP" $KSVC)" $NQN 1 1 "$KF_PEER_IP"
	kf_nvme_disc_check "$(kf_nvme_discover rdma "$KF_PEER_IP" $KSVC)" $NQN 1 1 "$KF_PEER_IP"
	kf_exchange kfi-kfi "$(host_run kfi-kfi kfi $KSVC full)" >/dev/null
	kf_exchange rdma-kfi "$(host_run rdma-kfi rdma $KSVC)" >/dev/null
	kf_exchange kfi-rdma "$(host_run kfi-rdma kfi $RSVC)" >/dev/null

	# The port goes away under a connected host.
	ctrl=$(connect kfi "$KF_PEER_IP" $KSVC reconnect_delay=1,ctrl_loss_tmo=120)
	ns1=$(kf_nvme_ns "$ctrl" 1 30) || kf_fail "no namespace on $ctrl"
	sum=$(kf_nvme_area $ns1)
	kf_barrier remove-port
	kf_barrier port-removed
	kf_nvme_wait_state "$ctrl" connecting 60 ||
		kf_fail "$ctrl did not start reconnecting (state $(kf_nvme_state "$ctrl"))"
	echo "$ctrl is $(kf_nvme_state "$ctrl") after the port was removed"
	# An I/O issued now waits for the controller to come back.
	(dd if=$ns1 bs=$REGION count=$NREG iflag=direct status=none |
		kf_md5 >/tmp/during) &
	pid=$!
	sleep 3
	kill -0 $pid 2>/dev/null || kf_fail "I/O during reconnection ended early: $(cat /tmp/during)"
	[ "$(kf_nvme_state "$ctrl")" = connecting ] || kf_fail "$ctrl left connecting without a port"
	kf_barrier host-reconnecting
	kf_barrier port-back
	kf_nvme_wait_state "$ctrl" live 60 || kf_fail "$ctrl did not reconnect (state $(kf_nvme_state "$ctrl"))"
	rc=0
	wait $pid || rc=$?
	[ $rc -eq 0 ] || kf_fail "I/O across the reconnection failed ($rc)"
	[ "$(cat /tmp/during)" = "$sum" ] ||
		kf_fail "read $(cat /tmp/during) across the reconnection, expected $sum"
	[ "$(kf_nvme_area $ns1)" = "$sum" ] || kf_fail "data differs after reconnecting"
	echo "$ctrl reconnected; I/O issued while it was away completed intact"
	kf_barrier host-live

	# Deleting a controller that is still trying to reconnect must not hang.
	kf_barrier port-removed-again
	kf_nvme_wait_state "$ctrl" connecting 60 || kf_fail "$ctrl did not start reconnecting again"
	timeout 60 sh -c "echo 1 >/sys/class/nvme/$ctrl/delete_controller" ||
		kf_fail "deleting $ctrl while it reconnects hangs"
	kf_nvme_wait_state "$ctrl" gone 30 || kf_fail "$ctrl outlived its deletion"
	echo "deleted $ctrl while it was reconnecting"
	kf_barrier host-deleted
	rmmod nvme_kfi
}

# rxe_removal_during_io CTRL: delete the host's Soft-RoCE device (rxe0)
# while writes of the pattern to CTRL's namespace are in flight, then add
# it back: the controller must fall back to reconnecting, the writes must
# wait and complete once the device is back, and the namespace must then
# read back as the pattern.
rxe_removal_during_io() {
	local ctrl=$1 passes sum ns1
	ns1=$(kf_nvme_ns "$ctrl" 1 30) || kf_fail "no namespace on $ctrl"
	kf_pattern /tmp/pattern2 $NREG
	sum=$(dd if=/tmp/pattern2 bs=$REGION count=$NREG status=none | kf_md5)
	kf_writer_start /tmp/pattern2 $ns1
	sleep 1
	kill -0 $KF_WRITER_PID 2>/dev/null || kf_fail "the writer failed before rxe0 was deleted"
	rdma link delete rxe0
	echo "deleted rxe0 with the writer running; $ctrl is $(kf_nvme_state "$ctrl")" >&2
	kf_nvme_wait_state "$ctrl" connecting 60 ||
		kf_fail "$ctrl did not start reconnecting (state $(kf_nvme_state "$ctrl"))"
	passes=$(kf_writer_passes)
	sleep 2
	[ "$(kf_writer_passes)" = "$passes" ] || kf_fail "a write completed while rxe0 was gone"
	kf_rxe_setup veth0 rxe0
	kf_nvme_wait_state "$ctrl" live 60 || kf_fail "$ctrl did not reconnect (state $(kf_nvme_state "$ctrl"))"
	kf_writer_stop || kf_fail "a write across the removal of rxe0 failed"
	echo "the writer made $(kf_writer_passes) passes, $passes before rxe0 came back" >&2
	[ "$(kf_nvme_area $ns1)" = "$sum" ] ||
		kf_fail "after rxe0 came back the namespace differs from what was written"
	echo "$ctrl reconnected after rxe0 came back; the write completed intact" >&2
	echo "$sum"
}

# resets_during_fio CTRL NS: controller resets while fio writes and
# verifies NS. A reset tears the queues down and cancels what is in
# flight, after revoking the requests' regions; the I/O is retried on the
# new queues and every byte must verify. At least one reset must meet fio.
resets_during_fio() {
	local ctrl=$1 ns=$2 pid n=0 rc=0
	(kf_fio_verify "$ns" resets) &
	pid=$!
	while [ $n -lt 3 ]; do
		sleep 1
		kill -0 $pid 2>/dev/null || break
		echo 1 >/sys/class/nvme/$ctrl/reset_controller
		n=$((n + 1))
		kf_nvme_wait_state "$ctrl" live 60 ||
			kf_fail "$ctrl did not come back from reset $n"
	done
	wait $pid || rc=$?
	[ "$rc" -eq 0 ] || kf_fail "fio across controller resets failed"
	[ $n -gt 0 ] || kf_fail "fio ended before the first reset"
	echo "$n controller resets under fio, data verified" >&2
}

# queue_shrinks CTRL NS: the target's port comes back with a smaller
# queue size (param_max_queue_size 16, from 128) while CTRL reconnects.
# The controller's tag set keeps its 128 tags, and blk-mq hands them out
# round the whole set, so tags above the new queue size reach the
# transport: each must still have its region. fio verifies every byte at
# queue depth 48, three times the new queue size: the host must hold back
# what the queue cannot take (the shared controller code throttles each
# queue to the size it connected with) instead of overrunning the target,
# which fails the queue and sends the controller into error recovery.
queue_shrinks() {
	local ctrl=$1 ns=$2 sq log
	kf_nvmet_port_del $KPORT $NQN
	kf_nvme_wait_state "$ctrl" connecting 60 ||
		kf_fail "$ctrl did not start reconnecting when its port went"
	KF_NVMET_QUEUE_SIZE=16 kf_nvmet_port $KPORT kfi ipv4 "$KF_PEER_IP" $KSVC $NQN
	kf_nvme_wait_state "$ctrl" live 60 ||
		kf_fail "$ctrl did not reconnect to the smaller port"
	sq=$(cat /sys/class/nvme/$ctrl/sqsize)
	[ "$sq" -eq 15 ] || kf_fail "$ctrl reconnected with sqsize $sq, not 15"
	# What the kernel logs from here on: a host that overruns the queue
	# may log enough to wrap the ring, which the lost mark then tells.
	echo "kf: queue_shrinks: fio at depth 48" >/dev/kmsg
	KF_FIO_DEPTH=48 kf_fio_verify "$ns" queue-shrunk
	log=$(dmesg | sed -n '/kf: queue_shrinks: fio at depth 48/,$p')
	[ -n "$log" ] || kf_fail "the kernel log wrapped under fio at depth 48"
	case $log in *"$ctrl: starting error recovery"*)
		kf_fail "$ctrl went into error recovery under fio at depth 48" ;;
	esac
	echo "$ctrl reconnected with 16-entry queues under a 128-tag set; fio verified at depth 48" >&2
}

# target_device_back: the target's Soft-RoCE device (rxe1, which its port
# is bound to through KF_PEER_IP) goes away and comes back. The port's
# listener dies with the device; the port must listen again on its own
# (nvmet-kfi retries every 5 s, as nvmet-rdma does) and take a connection.
target_device_back() {
	local ctrl i=0
	rdma link delete rxe1
	kf_rxe_setup veth1 rxe1
	while :; do
		ctrl=$(connect kfi "$KF_PEER_IP" $KSVC 2>/dev/null) || ctrl=
		case $ctrl in nvme[0-9]*) break ;; esac
		i=$((i + 1))
		[ $i -le 30 ] || kf_fail "the kfi port did not listen again after rxe1 came back"
		sleep 1
	done
	echo "the kfi port listens again after rxe1 came back ($i s)" >&2
	kf_nvme_ns "$ctrl" 1 30 >/dev/null || kf_fail "no namespace after the port came back"
	kf_nvme_disconnect "$ctrl"
}

test_single() {
	local sum rcvd ctrl ns1
	have_modules || kf_fail "nvme-kfi or nvmet-kfi is not built"
	setup_target "$KF_PEER_IP"
	modprobe nvme-kfi
	kf_nvme_disc_check "$(kf_nvme_discover kfi "$KF_PEER_IP" $KSVC)" $NQN 1 1 "$KF_PEER_IP"
	sum=$(host_run kfi-kfi kfi $KSVC full)
	target_check kfi-kfi "$sum"
	# The traffic crossed the veth pair: rxe0 talked to rxe1.
	rcvd=$(rdma statistic show link rxe1/1 | sed -n 's/.* rcvd_pkts \([0-9]*\) .*/\1/p')
	[ "${rcvd:-0}" -gt 1000 ] || kf_fail "the I/O did not reach rxe1 ($rcvd packets)"

	# The host's device goes away under I/O and comes back.
	ctrl=$(connect kfi "$KF_PEER_IP" $KSVC reconnect_delay=1,ctrl_loss_tmo=120)
	ns1=$(kf_nvme_ns "$ctrl" 1 30) || kf_fail "no namespace on $ctrl"
	sum=$(rxe_removal_during_io "$ctrl")
	target_check rxe-removal "$sum"
	kf_fio_verify $ns1 after-rxe-removal
	resets_during_fio "$ctrl" $ns1
	queue_shrinks "$ctrl" $ns1
	kf_nvme_disconnect "$ctrl"
	target_device_back


	teardown_target
	rmmod nvme_kfi nvmet_kfi
}
