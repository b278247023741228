# SPDX-License-Identifier: GPL-2.0
# Helpers for guest test scripts. Sourced by the runner; every test runs in
# its own subshell with "set -e", so the first failing command fails it.

KF_ROLE=${KF_ROLE:-single}

# busybox sh runs its own applets before anything in PATH; iproute2's ip
# and rdma live in /usr/sbin and are called through these functions.
ip() { /usr/sbin/ip "$@"; }
rdma() { /usr/sbin/rdma "$@"; }
fio() { /usr/sbin/fio "$@"; }

# Print the reason a test fails and fail it.
kf_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# kf_kv KEY: a kf.KEY=value argument from the kernel command line.
kf_kv() {
	tr ' ' '\n' </proc/cmdline | sed -n "s/^kf\.$1=//p" | tail -n 1
}

# kf_exchange NAME VALUE: two-guest rendezvous over TCP. Both guests call
# it with the same NAME in the same order; it returns when the other one got
# there too and prints the VALUE the peer passed. A listens, B connects.
kf_exchange() {
	local name=$1 val=${2:-} got="" i xtrace=""
	case $- in *x*) xtrace=1; set +x ;; esac
	if [ "$KF_ROLE" = A ]; then
		got=$(echo "$name $val" | timeout "${KF_RDV_TIMEOUT:-120}" nc -l -p 7777) ||
			kf_fail "rendezvous $name: no peer"
	else
		for i in $(seq 1 $((${KF_RDV_TIMEOUT:-120} * 2))); do
			got=$(echo "$name $val" | timeout 5 nc -w 2 "$KF_PEER_IP" 7777 2>/dev/null) &&
				[ -n "$got" ] && break
			sleep 0.5
		done
	fi
	[ -n "$xtrace" ] && set -x
	[ "${got%% *}" = "$name" ] || kf_fail "rendezvous $name: peer is at '${got%% *}'"
	echo "${got#* }"
}

# kf_barrier NAME: kf_exchange without a value.
kf_barrier() {
	kf_exchange "$1" - >/dev/null
}

KF_CFS=/sys/kernel/config/nvmet

# kf_nvmet_subsys NQN BACKING...: subsystem NQN, open to any host, whose
# namespace i is backed by the i-th BACKING: a block device, or a regular
# file (a RAM file here: served through the page cache, buffered_io, which
# needs nothing of the file system the initramfs root is).
kf_nvmet_subsys() {
	local s=$KF_CFS/subsystems/$1 n=0 b
	shift
	mkdir "$s"
	echo 1 >"$s/attr_allow_any_host"
	for b in "$@"; do
		n=$((n + 1))
		mkdir "$s/namespaces/$n"
		echo "$b" >"$s/namespaces/$n/device_path"
		if [ -f "$b" ]; then echo 1 >"$s/namespaces/$n/buffered_io"; fi
		echo 1 >"$s/namespaces/$n/enable"
	done
}

# kf_nvmet_subsys_del NQN: disable and remove its namespaces, then it.
kf_nvmet_subsys_del() {
	local s=$KF_CFS/subsystems/$1 n
	for n in "$s"/namespaces/*; do
		[ -d "$n" ] || continue
		echo 0 >"$n/enable"
		rmdir "$n"
	done
	rmdir "$s"
}

# kf_nvmet_port ID TRTYPE ADRFAM ADDR SVCID NQN: port ID, serving NQN.
kf_nvmet_port() {
	local p=$KF_CFS/ports/$1
	mkdir "$p"
	echo "$2" >"$p/addr_trtype"
	echo "$3" >"$p/addr_adrfam"
	echo "$4" >"$p/addr_traddr"
	echo "$5" >"$p/addr_trsvcid"
	[ -z "${KF_NVMET_QUEUE_SIZE:-}" ] ||
		echo "$KF_NVMET_QUEUE_SIZE" >"$p/param_max_queue_size"
	ln -s "$KF_CFS/subsystems/$6" "$p/subsystems/$6"
}

# kf_nvmet_port_del ID NQN: undo kf_nvmet_port.
kf_nvmet_port_del() {
	rm -f "$KF_CFS/ports/$1/subsystems/$2"
	rmdir "$KF_CFS/ports/$1"
}

# kf_nvmet_export TRTYPE NQN DEVICE ADDR SVCID: export DEVICE as namespace 1
# of subsystem NQN on a new IPv4 port (id 1).
kf_nvmet_export() {
	kf_nvmet_subsys "$2" "$3"
	kf_nvmet_port 1 "$1" ipv4 "$4" "$5" "$2"
}

# kf_nvmet_unexport NQN: undo kf_nvmet_export.
kf_nvmet_unexport() {
	kf_nvmet_port_del 1 "$1"
	kf_nvmet_subsys_del "$1"
}

# kf_nvme_target_check NAME SUM [BACKING]: the first regions of BACKING
# (default /dev/nullb0) hold SUM, what the host says it wrote.
kf_nvme_target_check() {
	local b=${3:-/dev/nullb0} mine
	if [ -b "$b" ]; then
		mine=$(dd if="$b" bs=$KF_NVME_REGION count=$KF_NVME_NREG iflag=direct status=none | kf_md5)
	else
		mine=$(dd if="$b" bs=$KF_NVME_REGION count=$KF_NVME_NREG status=none | kf_md5)
	fi
	echo "$1: host wrote $2, $b holds $mine"
	[ "$2" = "$mine" ] || kf_fail "$1: $b differs from what the host wrote"
}

# kf_nvme_ramfile: a RAM file for a second namespace (16 MiB of zeroes).
KF_NVME_RAMFILE=/tmp/nvmet-ns2.img
kf_nvme_ramfile() {
	dd if=/dev/zero of=$KF_NVME_RAMFILE bs=1M count=16 status=none
}

# kf_nvme_connect TRANSPORT ADDR SVCID NQN [OPTIONS]: connect a host
# controller (OPTIONS: more of the fabrics options, comma-separated) and
# print its name (nvmeN).
kf_nvme_connect() {
	local out
	exec 3<>/dev/nvme-fabrics
	echo "transport=$1,traddr=$2,trsvcid=$3,nqn=$4${5:+,$5}" >&3
	read -r out <&3
	exec 3>&-
	out=${out#instance=}
	echo "nvme${out%%,*}"
}

# kf_nvme_state CTRL: the state of host controller CTRL, "gone" without it.
kf_nvme_state() {
	cat /sys/class/nvme/$1/state 2>/dev/null || echo gone
}

# kf_nvme_wait_state CTRL STATE SECONDS: wait for CTRL to reach STATE.
kf_nvme_wait_state() {
	local i=0
	while [ "$(kf_nvme_state "$1")" != "$2" ]; do
		i=$((i + 1))
		[ $i -le $(($3 * 10)) ] || return 1
		sleep 0.1
	done
}

# kf_nvme_disconnect CTRL: delete host controller CTRL and wait for it to go.
kf_nvme_disconnect() {
	local t0 q
	q=$(cat /sys/class/nvme/$1/queue_count 2>/dev/null)
	t0=$(kf_uptime_cs)
	echo 1 >/sys/class/nvme/$1/delete_controller
	kf_nvme_wait_state "$1" gone 30 || kf_fail "$1 outlived its deletion"
	# The teardown's cost, for the record: it grows with the queues.
	echo "kf-teardown: $1 ($q queues) deleted in $((($(kf_uptime_cs) - t0) * 10)) ms" >&2
}

# kf_uptime_cs: uptime in centiseconds.
kf_uptime_cs() {
	local up
	read -r up _ </proc/uptime
	echo "${up%.*}${up#*.}"
}

# kf_nvme_discover TRANSPORT ADDR SVCID: connect to the discovery
# controller there, print its discovery log page (kf-nvme-disc: a line per
# record) and disconnect.
kf_nvme_discover() {
	local ctrl out rc=0
	ctrl=$(kf_nvme_connect "$1" "$2" "$3" nqn.2014-08.org.nvmexpress.discovery)
	kf_wait_for /dev/$ctrl 30 || kf_fail "no discovery controller node /dev/$ctrl"
	out=$(/usr/sbin/kf-nvme-disc /dev/$ctrl) || rc=$?
	kf_nvme_disconnect "$ctrl"
	[ $rc -eq 0 ] || kf_fail "reading the discovery log from $ctrl failed"
	echo "$out"
}

# kf_nvme_disc_check LOG NQN TRTYPE ADRFAM TRADDR: the discovery log LOG
# has a record for NQN with these transport type and address.
kf_nvme_disc_check() {
	echo "$1" | grep "subnqn=$2\$" | grep -q "^trtype=$3 adrfam=$4 .* traddr=$5 " || {
		echo "$1" >&2
		kf_fail "no discovery record for $2 with trtype $3, adrfam $4, traddr $5"
	}
	echo "discovery log: $2 at trtype $3, adrfam $4, traddr $5" >&2
}

# kf_nvme_queues CTRL MIN: host controller CTRL has at least MIN I/O queues.
kf_nvme_queues() {
	local n
	n=$(($(cat /sys/class/nvme/$1/queue_count) - 1))
	[ "$n" -ge "$2" ] || kf_fail "$1 has $n I/O queues, expected at least $2"
	echo "$1: $n I/O queues" >&2
}

# Byte-verified NVMe I/O: KF_NVME_NREG regions of KF_NVME_REGION bytes, the
# i-th written and read back in I/Os of the i-th of KF_NVME_SIZES.
KF_NVME_SIZES="4096 16384 65536 262144 1048576"
KF_NVME_REGION=1048576
KF_NVME_NREG=5

# kf_md5: the md5 of stdin, alone.
kf_md5() {
	md5sum | cut -d' ' -f1
}

# kf_nvme_area DEV: md5 of the regions, read in 1 MiB direct I/Os.
kf_nvme_area() {
	dd if="$1" bs=$KF_NVME_REGION count=$KF_NVME_NREG iflag=direct status=none | kf_md5
}

# kf_nvme_io_check DEV PATTERN: write region i of PATTERN (a file of
# KF_NVME_NREG regions) to DEV with the i-th I/O size, read it back with the
# same size and compare; then print the md5 of all regions as read back in
# 1 MiB I/Os, which must be that of PATTERN.
kf_nvme_io_check() {
	local dev=$1 pat=$2 i=0 bs cnt off want got sum
	for bs in $KF_NVME_SIZES; do
		cnt=$((KF_NVME_REGION / bs))
		off=$((i * cnt))
		dd if="$pat" of="$dev" bs="$bs" count=$cnt skip=$off seek=$off \
			oflag=direct status=none || kf_fail "write in $bs-byte I/Os failed"
		dd if="$dev" of=/tmp/readback bs="$bs" count=$cnt skip=$off \
			iflag=direct status=none || kf_fail "read in $bs-byte I/Os failed"
		want=$(dd if="$pat" bs=$KF_NVME_REGION skip=$i count=1 status=none | kf_md5)
		got=$(kf_md5 </tmp/readback)
		[ "$want" = "$got" ] || kf_fail "$bs-byte I/Os: wrote $want, read back $got"
		echo "  $bs-byte I/Os: $got" >&2
		i=$((i + 1))
	done
	sum=$(kf_nvme_area "$dev")
	want=$(dd if="$pat" bs=$KF_NVME_REGION count=$KF_NVME_NREG status=none | kf_md5)
	[ "$sum" = "$want" ] || kf_fail "the regions read $sum, the pattern is $want"
	echo "$sum"
}

# kf_fio_verify DEV NAME [poll]: fio writes DEV's first 8 MiB in random
# order with a crc32c in every block (sizes 4 KiB to 256 KiB, 16 I/Os in
# flight, or KF_FIO_DEPTH), then reads it all back and checks every
# block: fio's own checksums, on top of the md5 comparisons. With "poll",
# 4 MiB in polled synchronous I/Os (RWF_HIPRI), which go to the
# controller's poll queues.
# --thread: the guest kernel has no SysV shared memory.
kf_fio_verify() {
	local how="--ioengine=libaio --iodepth=${KF_FIO_DEPTH:-16} --bsrange=4k-256k --size=8M"
	local what="8 MiB"
	if [ "${3:-}" = poll ]; then
		how="--ioengine=pvsync2 --hipri --bsrange=4k-64k --size=4M"
		what="4 MiB polled"
	fi
	[ -x /usr/sbin/fio ] || kf_fail "fio is not in the guest image"
	# shellcheck disable=SC2086
	fio --thread --name="$2" --filename="$1" --direct=1 $how --rw=randwrite \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_dump=1 \
		--output-format=terse --terse-version=3 >/tmp/fio.$2 2>&1 || {
		cat /tmp/fio.$2 >&2
		kf_fail "$2: fio verify failed"
	}
	echo "$2: fio wrote and verified $what (crc32c) on $1" >&2
}

# A writer for fault tests: copies a file to a block device in 64 KiB
# direct writes, pass after pass, until kf_writer_stop. A fault injected
# while it runs always meets writes in flight, however fast the guest is,
# and since every pass writes the same bytes the device ends up holding
# the file. A failed pass ends the writer with an error.
KF_WRITER_DIR=/tmp/kf-writer

# kf_writer_start FILE DEV: start it in the background (KF_WRITER_PID).
kf_writer_start() {
	rm -rf $KF_WRITER_DIR
	mkdir -p $KF_WRITER_DIR
	echo 0 >$KF_WRITER_DIR/passes
	(
		n=0
		while [ ! -e $KF_WRITER_DIR/stop ]; do
			dd if="$1" of="$2" bs=64k oflag=direct status=none || exit 1
			n=$((n + 1))
			echo $n >$KF_WRITER_DIR/passes
		done
	) &
	KF_WRITER_PID=$!
}

# kf_writer_passes: the passes the writer has completed.
kf_writer_passes() {
	cat $KF_WRITER_DIR/passes
}

# kf_writer_stop: let the pass under way finish, then stop; false when a
# pass failed.
kf_writer_stop() {
	touch $KF_WRITER_DIR/stop
	wait "$KF_WRITER_PID"
}

# kf_pattern FILE MIB: write MIB MiB of random data to FILE.
kf_pattern() {
	dd if=/dev/urandom of="$1" bs=1M count="$2" 2>/dev/null
}

# kf_wait_for PATH SECONDS: wait for a device node or file to appear.
kf_wait_for() {
	local i=0
	while [ ! -e "$1" ]; do
		i=$((i + 1))
		[ $i -gt $(($2 * 10)) ] && return 1
		sleep 0.1
	done
}

# kf_wait_blk DEV SECONDS: wait until block device DEV can be read. The
# node appears in devtmpfs a moment before the disk can be opened.
kf_wait_blk() {
	local i=0
	while ! dd if="$1" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt $(($2 * 10)) ] && return 1
		sleep 0.1
	done
}

# kf_nvme_ns CTRL NSID SECONDS: wait until namespace NSID of host controller
# CTRL can be read and print its block device. Y in nvmeXnY is not the
# NSID, and which namespace gets which name changes across reconnections.
kf_nvme_ns() {
	local i=0 d
	while [ $i -le $(($3 * 10)) ]; do
		for d in /sys/class/nvme/$1/$1n*; do
			[ "$(cat "$d/nsid" 2>/dev/null)" = "$2" ] || continue
			if dd if=/dev/${d##*/} of=/dev/null bs=4k count=1 iflag=direct \
				status=none 2>/dev/null; then
				echo "/dev/${d##*/}"
				return 0
			fi
		done
		i=$((i + 1))
		sleep 0.1
	done
	return 1
}

# kf_kunit MODULE: load a KUnit test module, which runs its suites, copy
# each suite's KTAP into the runner's subtest file and fail on any "not ok".
kf_kunit() {
	local dir=/sys/kernel/debug/kunit before s
	before=$(ls "$dir" 2>/dev/null | tr '\n' ' ')
	modprobe "$1"
	for s in $(ls "$dir"); do
		case " $before " in *" $s "*) continue ;; esac
		cat "$dir/$s/results" >>"$KF_KTAP_SUB"
	done
	rmmod "$1"
	grep -q '^ *ok ' "$KF_KTAP_SUB" || kf_fail "$1 ran no test"
	! grep -q '^ *not ok ' "$KF_KTAP_SUB" || kf_fail "$1 has failing tests"
}

# kf_rdma_link_add TYPE NETDEV NAME [NETNS]: software RDMA device NAME of
# TYPE (rxe: Soft-RoCE, siw: soft-iWARP) on NETDEV, which lives in network
# namespace NETNS if given; waits for ACTIVE.
kf_rdma_link_add() {
	local i
	case $1 in
	rxe) modprobe rdma_rxe ;;
	*) modprobe "$1" ;;
	esac
	if [ -n "${4:-}" ]; then
		ip netns exec "$4" /usr/sbin/rdma link add "$3" type "$1" netdev "$2"
	else
		rdma link add "$3" type "$1" netdev "$2"
	fi
	for i in $(seq 1 100); do
		rdma link show "$3/1" 2>/dev/null | grep -q 'state ACTIVE' && return 0
		sleep 0.1
	done
	kf_fail "$3 on $2 did not become ACTIVE"
}

# kf_rxe_setup NETDEV NAME: Soft-RoCE device NAME on NETDEV, waits for ACTIVE.
kf_rxe_setup() {
	kf_rdma_link_add rxe "$1" "$2"
}

# kf_selftest COMMAND...: one command of the kfi_selftest module (see
# drivers/infiniband/kfabric/tests/kfi_selftest.c). Its KTAP becomes this
# test's subtests; a failing run fails the test.
kf_selftest() {
	local dir=/sys/kernel/debug/kfi_selftest rc=0
	[ -d "$dir" ] || modprobe kfi_selftest
	echo "$*" >"$dir/run" || rc=$?
	case "$1" in
	client | loop | bench) cat "$dir/results" >>"$KF_KTAP_SUB" ;;
	esac
	[ "$rc" -eq 0 ] || kf_fail "kfi_selftest '$*' failed"
}

# The NTB provider (kfi_ntb) on the NTB test device (ntb_hw_ivshmem).
# kf_ntb_load [PARAM...]: the provider first, so that it is the client the
# ports bind to, then the device with PARAMs. Fails the test, with nothing
# left loaded, when either does not load: the configuration builds both, so
# a missing module is a broken build, not something to skip.
kf_ntb_load() {
	if ! modprobe kfi_ntb 2>/dev/null || ! modprobe ntb_hw_ivshmem "$@" 2>/dev/null; then
		modprobe -r kfi_ntb 2>/dev/null || true
		kf_fail "kfi_ntb or ntb_hw_ivshmem does not load"
	fi
}

# kf_ntb_wait DEV up|down: wait for kfi_ntb's view of DEV's link (up: with
# the peer's name known); fails the test after 30 s.
kf_ntb_wait() {
	local i info
	for i in $(seq 1 300); do
		info=$(cat "/sys/kernel/debug/kfi_ntb/$1/info" 2>/dev/null) || info=
		if [ "$2" = up ]; then
			case $info in *"link up"*)
				echo "$info" | grep -q '^peer -$' || return 0 ;;
			esac
		else
			case $info in *"link down"*) return 0 ;; esac
		fi
		sleep 0.1
	done
	cat "/sys/kernel/debug/kfi_ntb/$1/info" 2>/dev/null || true
	kf_fail "$1: kfi_ntb link did not go $2"
}
