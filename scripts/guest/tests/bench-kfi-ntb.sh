# SPDX-License-Identifier: GPL-2.0
# Benchmark, not a test: kfabric over the NTB provider (kfi_ntb) on the NTB
# test device, in one guest from one port to the other: kfi_selftest's
# bench (RMA write and read bandwidth at 1 MiB, one transfer at a time and
# several in flight, send/receive round trips), and the guest's own
# memcpy() bandwidth (kfi_ntb/memcpy in debugfs, with a length known at
# run time, as the provider calls it) as the reference the RMA numbers are
# divided by. The provider moves data with the CPU, twice per transfer:
# the sending port's worker copies it into the peer's window, the
# receiving port's copies it out, each on the CPU of its port, so with two
# CPUs the copies overlap and memcpy() is the ceiling. One transfer at a
# time also pays the pipeline's fill and drain and the completion's round
# trip; a ULP keeps several in flight. The compiler's inline copy
# (memcpy_inline) is printed too: QEMU's TCG runs it four times faster
# than the memcpy() function, which real CPUs do not.
# Before it, on the same ports, the stock ntb_perf client measures the
# device's own bandwidth (1 MiB chunks, CPU copies, as kfi_ntb without a
# DMA engine); the two clients bind the device in turn, each with the
# device driver freshly loaded. Every line is prefixed "BENCH " for
# scripts/kf bench. Numbers are reported, never asserted.
KF_MODES="single"
PORT=18519
DBG=/sys/kernel/debug
NTB_P0=0000:00:05.0
NTB_P1=0000:00:06.0
ARGS="sizes=1M iters=${KF_BENCH_ITERS:-200}"
# Under icount the ports ring each other without a host event, so that
# doorbells land at the same instruction on every run (local_ring=1).
NTB_PARAMS=
[ "${KF_BENCH_MODE:-wall}" != icount ] || NTB_PARAMS=local_ring=1

# ntb_perf_mbs DEV: ntb_perf's bandwidth from DEV to its peer in MB/s (the
# sum over its threads), empty when it did not run.
ntb_perf_mbs() {
	local p=$DBG/ntb_perf/$1 i
	for i in $(seq 1 60); do
		echo 0 >"$p/run" 2>/dev/null && break
		sleep 0.5
	done
	# One "N: copied B bytes in U usecs, M MBytes/s" line per thread.
	awk '/copied .* MBytes\/s/ { s += $(NF - 1); n++ } END { if (n) print s }' "$p/run"
}

# ntb_irq_spread: the interrupts of each port on a CPU of its own. The two
# ports stand for two hosts, whose sides of a transfer run on different
# CPUs; left alone, both ports' doorbells may land on one CPU, and so may
# both sides' workers. The client's bench then runs on the CPU of its port
# (NTB_P1's, CLIENT_CPU), as it would on its own host.
CLIENT_CPU=0
ntb_irq_spread() {
	local cpus irq cpu=0
	cpus=$(nproc)
	[ "$cpus" -gt 1 ] || return 0
	for dev in $NTB_P0 $NTB_P1; do
		for irq in $(awk -v d="$dev" '$0 ~ d { sub(":", "", $1); print $1 }' /proc/interrupts); do
			echo $((cpu % cpus)) >/proc/irq/$irq/smp_affinity_list || true
		done
		echo "BENCH irq: $dev on CPU $((cpu % cpus))"
		CLIENT_CPU=$((cpu % cpus))
		cpu=$((cpu + 1))
	done
}

test_single() {
	perf=
	if modprobe ntb_perf total_order=26 chunk_order=20 max_mw_size=0x400000 2>/dev/null &&
		modprobe ntb_hw_ivshmem $NTB_PARAMS 2>/dev/null; then
		perf=$(ntb_perf_mbs $NTB_P0)
		echo "BENCH ntb_perf $NTB_P0 to $NTB_P1: ${perf:-failed} MB/s (64 MiB in 1 MiB chunks)"
		rmmod ntb_hw_ivshmem
	fi
	rmmod ntb_perf 2>/dev/null || true
	if ! modprobe kfi_ntb 2>/dev/null ||
		! modprobe ntb_hw_ivshmem $NTB_PARAMS 2>/dev/null; then
		echo "BENCH kfi_ntb or ntb_hw_ivshmem is not built: no NTB benchmark"
		return 0
	fi
	kf_ntb_wait $NTB_P0 up
	kf_ntb_wait $NTB_P1 up
	ntb_irq_spread
	modprobe kfi_selftest
	dir=$DBG/kfi_selftest
	echo "serve fabric=ntb addr=$NTB_P0 port=$PORT" >"$dir/run"
	taskset -c $CLIENT_CPU sh -c "echo 'bench fabric=ntb addr=$NTB_P0 port=$PORT $ARGS' >$dir/run" || {
		sed 's/^/BENCH /' "$dir/results"
		kf_fail "bench failed"
	}
	# "stop" replaces the results: keep the bench's.
	cp "$dir/results" /tmp/bench-kfi-ntb.results
	echo "stop" >"$dir/run"
	sed -n 's/^\(memcpy[a-z_]*\) \([0-9]*\) MB\/s$/\1 \2/p' "$DBG/kfi_ntb/memcpy" >/tmp/memcpy
	memcpy=$(sed -n 's/^memcpy //p' /tmp/memcpy)
	inline=$(sed -n 's/^memcpy_inline //p' /tmp/memcpy)
	echo "BENCH kfabric over NTB (kfi_ntb on ntb_hw_ivshmem, one guest, port to port): $ARGS"
	echo "BENCH dma: $(sed -n 's/^dma //p' "$DBG/kfi_ntb/$NTB_P1/info")"
	echo "BENCH runs: op qd bytes iters MB/s avg_ns"
	awk '$1 == "#" && $3 ~ /^[0-9]+$/ && $4 ~ /^[0-9]+$/ { $1 = ""; print "BENCH  " $0 }' \
		/tmp/bench-kfi-ntb.results
	awk -v memcpy="$memcpy" -v inline="${inline:-0}" -v perf="${perf:-0}" '
	# Per direction, the best 1 MiB row and the queue depth it ran at,
	# and the row of one transfer at a time.
	function keep(d, qd, mbs) {
		if (mbs > best[d]) { best[d] = mbs; best_qd[d] = qd }
		if (qd == 1) one[d] = mbs
	}
	function line(name, mbs, qd) {
		printf "BENCH %s_MB/s %.2f qd %d ratio_to_memcpy %.3f ratio_to_ntb_perf %.3f\n",
			name, mbs, qd, memcpy ? mbs / memcpy : 0, perf ? mbs / perf : 0
	}
	$1 == "#" && $3 ~ /^[0-9]+$/ && $4 ~ /^[0-9]+$/ {
		if ($2 ~ /write$/ && $4 == 1048576) keep("write", $3, $6)
		if ($2 ~ /read$/ && $4 == 1048576) keep("read", $3, $6)
		if ($2 == "send_rtt" && (lat == "" || $4 < lat_size)) { lat = $7; lat_size = $4 }
	}
	END {
		printf "BENCH memcpy_1MiB_MB/s %d (inline copy %d)\n", memcpy, inline
		printf "BENCH ntb_perf_1MiB_MB/s %d\n", perf
		line("rma_write_1MiB", best["write"], best_qd["write"])
		line("rma_read_1MiB", best["read"], best_qd["read"])
		line("rma_write_1MiB_qd1", one["write"], 1)
		line("rma_read_1MiB_qd1", one["read"], 1)
		printf "BENCH send_recv_rtt_%dB_us %.1f\n", lat_size, lat / 1000
	}' /tmp/bench-kfi-ntb.results
	# Every row as CSV for scripts/kf bench, with the baselines (1 MiB
	# only) in the RMA rows.
	awk -v memcpy="$memcpy" -v perf="${perf:-0}" '
	function r(a, b) { return b > 0 ? sprintf("%.3f", a / b) : "" }
	BEGIN {
		print "CSV op,bytes,qd,kfi_MB/s,ntb_perf_MB/s,ratio_to_ntb_perf," \
		      "memcpy_MB/s,ratio_to_memcpy,avg_us"
	}
	$1 == "#" && $3 ~ /^[0-9]+$/ && $4 ~ /^[0-9]+$/ {
		p = ""; m = ""
		if ($2 ~ /(write|read)$/ && $4 == 1048576) {
			p = perf > 0 ? perf : ""; m = memcpy > 0 ? memcpy : ""
		}
		printf "CSV %s,%s,%s,%s,%s,%s,%s,%s,%.1f\n", $2, $4, $3, $6,
		       p, r($6, p), m, r($6, m), $7 / 1000
	}' /tmp/bench-kfi-ntb.results
	rmmod kfi_selftest
	rmmod ntb_hw_ivshmem
	rmmod kfi_ntb
}
