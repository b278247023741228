# SPDX-License-Identifier: GPL-2.0
# Benchmark, not a test: NVMe over Fabrics on kfabric against the stock
# transports over the same links, in one guest, with fio (libaio, O_DIRECT)
# on a null_blk namespace (memory_backed=1) exported by one subsystem on
# four ports:
# - nvme-kfi -> nvmet-kfi over Soft-RoCE (rxe0 -> rxe1), against
#   nvme-rdma -> nvmet-rdma over the same devices;
# - nvme-kfi -> nvmet-kfi over NTB (kfi_ntb on ntb_hw_ivshmem, port
#   0000:00:06.0 -> 0000:00:05.0), against nvme-tcp -> nvmet-tcp over the
#   veth pair (the link a host without RDMA would use).
# Jobs: 4 KiB random read at queue depth 32, 128 KiB sequential read and
# 128 KiB sequential write at queue depth 8, KF_BENCH_RUNTIME seconds each
# (TCG is slow). The transports take turns job by job, so they see the
# same load of the host. Every line is prefixed "BENCH " for scripts/kf
# bench. Numbers are reported, never asserted.
KF_MODES="single"
NQN=nqn.2026-11.io.kfabric:bench
CFS=/sys/kernel/config/nvmet
DBG=/sys/kernel/debug
NTB_P0=0000:00:05.0
# Under icount (kf bench --icount) a job's numbers do not depend on the
# host's load, and the guest's seconds cost more of the host's: shorter
# jobs.
RUNTIME=10
[ "${KF_BENCH_MODE:-wall}" != icount ] || RUNTIME=3
RUNTIME=${KF_BENCH_RUNTIME:-$RUNTIME}
JOBS="randread:4k:32 read:128k:8 write:128k:8"
SIZE_MB=64

# port ID TRTYPE ADRFAM ADDR SVCID: a port of the subsystem.
port() {
	local p=$CFS/ports/$1
	mkdir "$p"
	echo "$2" >"$p/addr_trtype"
	echo "$3" >"$p/addr_adrfam"
	echo "$4" >"$p/addr_traddr"
	echo "$5" >"$p/addr_trsvcid"
	ln -s "$CFS/subsystems/$NQN" "$p/subsystems/$NQN"
}

# Under icount the ports ring each other without a host event, so that
# doorbells land at the same instruction on every run (local_ring=1).
ntb_up() {
	if [ "${KF_BENCH_MODE:-wall}" = icount ]; then
		kf_ntb_load local_ring=1 || return 1
	else
		kf_ntb_load || return 1
	fi
	# A subshell: a link that stays down means no NTB rows, not a failure.
	(kf_ntb_wait $NTB_P0 up >/dev/null)
}

# run NAME DEV RW BS QD: one fio job; prints "NAME RW BS QD MB/s IOPS
# clat_us" (terse v3: read bandwidth KiB/s, IOPS and mean completion
# latency in fields 7, 8 and 16, write in 48, 49 and 57).
run() {
	local out
	out=$(fio --thread --name="$1" --filename="$2" --direct=1 --ioengine=libaio \
		--rw="$3" --bs="$4" --iodepth="$5" --size=${SIZE_MB}M --time_based \
		--runtime="$RUNTIME" --output-format=terse --terse-version=3 2>&1) || {
		echo "BENCH $1 $3 $4: fio failed: $out"
		return 0
	}
	echo "$out" | awk -F';' -v n="$1" -v rw="$3" -v bs="$4" -v qd="$5" '
	$1 == "3" {
		f = rw ~ /write/ ? 48 : 7
		printf "%s %s %s %s %.3f %.0f %.0f\n", n, rw, bs, qd,
		       $f * 1024 / 1e6, $(f + 1), $(f + 9)
	}'
}

# The table: every transport's numbers, and the ratios kfi-verbs/rdma and
# kfi-ntb/tcp (throughput: higher is better; latency: lower is better).
table() {
	awk '
	{
		k = $2 " " $3 " " $4
		if (!(k in seen)) { seen[k] = 1; keys[n++] = k }
		mb[k, $1] = $5; iops[k, $1] = $6; lat[k, $1] = $7; have[$1] = 1
	}
	function ratio(k, a, b) {
		return ((k, a) in mb) && ((k, b) in mb) && mb[k, b] > 0 ?
		       sprintf("%.3f", mb[k, a] / mb[k, b]) : "-"
	}
	# The job and every transport'"'"'s value of a[] for row key k.
	function row(k, a,    i, f) {
		split(k, f, " ")
		printf "%-9s %5s %3s", f[1], f[2], f[3]
		for (i = 1; i <= 4; i++)
			printf " %10s", (k, t[i]) in a ? a[k, t[i]] : "-"
	}
	END {
		printf "%-9s %5s %3s", "job", "bs", "qd"
		split("kfi-verbs rdma kfi-ntb tcp", t, " ")
		for (i = 1; i <= 4; i++)
			printf " %10s", t[i] "_MB/s"
		printf " %14s %12s\n", "kfi-verbs/rdma", "kfi-ntb/tcp"
		for (j = 0; j < n; j++) {
			row(keys[j], mb)
			printf " %14s %12s\n", ratio(keys[j], "kfi-verbs", "rdma"),
			       ratio(keys[j], "kfi-ntb", "tcp")
		}
		printf "mean completion latency, us:\n"
		for (j = 0; j < n; j++) {
			row(keys[j], lat)
			printf "\n"
		}
	}'
}

# The rows as CSV for scripts/kf bench: per job, kfi-verbs against rdma
# and kfi-ntb against tcp.
csv() {
	awk '
	{
		k = $2 " " $3 " " $4
		if (!(k in seen)) { seen[k] = 1; keys[n++] = k }
		mb[k, $1] = $5; iops[k, $1] = $6; lat[k, $1] = $7
	}
	function v(a, k, t) { return (k, t) in a ? a[k, t] : "" }
	function pair(k, a, b,    f, bytes) {
		if (!((k, a) in mb) || !((k, b) in mb))
			return
		split(k, f, " ")
		bytes = f[2]; sub(/k$/, "", bytes); bytes *= 1024
		printf "%s:%s/%s,%d,%s,%s,%s,%s,%s,%s,%s,%s\n", f[1], a, b, bytes,
		       f[3], mb[k, a], mb[k, b],
		       (mb[k, b] > 0 ? sprintf("%.3f", mb[k, a] / mb[k, b]) : ""),
		       v(iops, k, a), v(iops, k, b), v(lat, k, a), v(lat, k, b)
	}
	END {
		print "job,bytes,qd,kfi_MB/s,baseline_MB/s,ratio,kfi_iops," \
		      "baseline_iops,kfi_lat_us,baseline_lat_us"
		for (j = 0; j < n; j++) {
			pair(keys[j], "kfi-verbs", "rdma")
			pair(keys[j], "kfi-ntb", "tcp")
		}
	}'
}

test_single() {
	local s=$CFS/subsystems/$NQN ctrls="" c name job rw bs qd ntb=1
	if [ -z "$(find /lib/modules/$(uname -r) -name 'nvme-kfi.ko*')" ]; then
		echo "BENCH nvme-kfi is not built: no NVMe benchmark"
		return 0
	fi
	[ -x /usr/sbin/fio ] || kf_fail "fio is not in the guest image"
	modprobe null_blk nr_devices=1 gb=1 memory_backed=1
	# The area the jobs use holds data: reads of null_blk pages never
	# written would not move any.
	dd if=/dev/urandom of=/dev/nullb0 bs=1M count=$SIZE_MB oflag=direct status=none
	modprobe kfi_verbs
	ntb_up || { ntb=""; echo "BENCH no NTB link: no kfi-ntb rows"; }
	modprobe nvmet-kfi
	modprobe nvmet-rdma
	modprobe nvmet-tcp
	modprobe nvme-kfi
	modprobe nvme-rdma
	modprobe nvme-tcp
	mkdir "$s"
	echo 1 >"$s/attr_allow_any_host"
	mkdir "$s/namespaces/1"
	echo /dev/nullb0 >"$s/namespaces/1/device_path"
	echo 1 >"$s/namespaces/1/enable"
	# Targets on the rxe1/veth1 side, hosts on rxe0/veth0.
	port 71 kfi ipv4 "$KF_PEER_IP" 4450
	port 72 rdma ipv4 "$KF_PEER_IP" 4451
	port 73 tcp ipv4 "$KF_PEER_IP" 4452
	[ -z "$ntb" ] || port 74 kfi pci $NTB_P0 4453
	c=$(kf_nvme_connect kfi "$KF_PEER_IP" 4450 "$NQN")
	kf_wait_blk /dev/${c}n1 30 || kf_fail "no namespace on $c"
	ctrls="kfi-verbs:$c"
	c=$(kf_nvme_connect rdma "$KF_PEER_IP" 4451 "$NQN")
	ctrls="$ctrls rdma:$c"
	c=$(kf_nvme_connect tcp "$KF_PEER_IP" 4452 "$NQN")
	ctrls="$ctrls tcp:$c"
	if [ -n "$ntb" ]; then
		c=$(kf_nvme_connect kfi $NTB_P0 4453 "$NQN")
		ctrls="$ctrls kfi-ntb:$c"
	fi
	for c in $ctrls; do
		kf_wait_blk /dev/${c#*:}n1 30 || kf_fail "no namespace on ${c#*:}"
	done

	echo "BENCH NVMe over Fabrics, one guest: fio libaio direct, ${RUNTIME} s per job, null_blk namespace"
	echo "BENCH kfi-verbs: nvme-kfi -> nvmet-kfi over rxe0 -> rxe1; rdma: nvme-rdma -> nvmet-rdma, same devices"
	echo "BENCH kfi-ntb: nvme-kfi -> nvmet-kfi over NTB (kfi_ntb, ntb_hw_ivshmem); tcp: nvme-tcp -> nvmet-tcp over veth"
	: >/tmp/bench.rows
	for job in $JOBS; do
		rw=${job%%:*} qd=${job##*:} bs=${job#*:} bs=${bs%:*}
		for c in $ctrls; do
			name=${c%%:*}
			run "$name" /dev/${c#*:}n1 "$rw" "$bs" "$qd" | tee -a /tmp/bench.rows |
				sed 's/^/BENCH run: /'
		done
	done
	echo "BENCH"
	table </tmp/bench.rows | sed 's/^/BENCH /'
	csv </tmp/bench.rows | sed 's/^/CSV /'

	for c in $ctrls; do
		echo 1 >/sys/class/nvme/${c#*:}/delete_controller
	done
	for c in $ctrls; do
		kf_nvme_wait_state ${c#*:} gone 30 || kf_fail "${c#*:} outlived its deletion"
	done
	for c in 71 72 73 74; do
		[ -d $CFS/ports/$c ] || continue
		rm -f $CFS/ports/$c/subsystems/$NQN
		rmdir $CFS/ports/$c
	done
	echo 0 >"$s/namespaces/1/enable"
	rmdir "$s/namespaces/1"
	rmdir "$s"
	rmmod nvme_kfi nvme_rdma nvme_tcp nvmet_kfi nvmet_rdma nvmet_tcp
	if [ -n "$ntb" ]; then
		rmmod ntb_hw_ivshmem
		rmmod kfi_ntb
	fi
}
