# SPDX-License-Identifier: GPL-2.0
# Benchmark, not a test: kfi_selftest's bench mode over the verbs provider
# in one guest (rxe0 -> rxe1). Prints its table with a "BENCH " prefix for
# scripts/kf bench. Numbers are reported, never asserted.
KF_MODES="single"
PORT=18516

test_single() {
	modprobe kfi_verbs
	modprobe kfi_selftest
	dir=/sys/kernel/debug/kfi_selftest
	echo "serve fabric=verbs addr=$KF_PEER_IP port=$PORT" >"$dir/run"
	# TCG makes every round trip take milliseconds: few iterations.
	echo "bench fabric=verbs addr=$KF_PEER_IP port=$PORT iters=${KF_BENCH_ITERS:-50}" >"$dir/run"
	echo "kfabric over verbs (Soft-RoCE, TCG guest)" | sed 's/^/BENCH /'
	grep -v '^ *\(KTAP\|ok\|not ok\|1\.\.\)' "$dir/results" | sed 's/^/BENCH /'
	echo "stop" >"$dir/run"
	rmmod kfi_selftest kfi_verbs
}
