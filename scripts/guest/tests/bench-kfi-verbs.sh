# SPDX-License-Identifier: GPL-2.0
# Benchmark, not a test: kfi_selftest's bench over Soft-RoCE in one guest
# (rxe0 -> rxe1), through kfabric on the verbs provider (api=kfi) and
# through raw verbs (api=verbs, the baseline), alternately, against the
# same responder. Prints every run's rows and then a table of the best of
# each mode with their ratios, every line prefixed "BENCH " for
# scripts/kf bench. Numbers are reported, never asserted.
KF_MODES="single"
PORT=18516
# Under TCG a round trip takes a few hundred microseconds and rxe moves a
# few tens of MB/s (without the debug options; far less with them): few
# iterations, at most 512 KiB per case (a case at a queue depth runs at
# least that many), sizes up to 1 MiB. The modes alternate case by case,
# so that both see the same load of the host.
# Under icount (kf bench --icount) every round gives the same numbers:
# one round, of many operations: with 50, where timer interrupts land
# (which any change to the kernel moves) moved 64-byte cases by up to
# 10 % between builds; 2,000 keep throughput within 1 %, and a run
# still takes well under a minute.
ROUNDS=2
ITERS=50
BYTES=512K
if [ "${KF_BENCH_MODE:-wall}" = icount ]; then
	ROUNDS=1
	ITERS=2000
	BYTES=8M
fi
ROUNDS=${KF_BENCH_ROUNDS:-$ROUNDS}
ARGS="sizes=1M iters=${KF_BENCH_ITERS:-$ITERS} bytes=${KF_BENCH_BYTES:-$BYTES}"

# bench_run API CASE: one benchmark case; its rows on stdout. Returns 2
# when the module has no such API.
bench_run() {
	local err
	err=$({ echo "bench fabric=verbs addr=$KF_PEER_IP port=$PORT api=$1 tests=$2 $ARGS" \
		>"$dir/run"; } 2>&1) || {
		case $err in *"not supported"*) return 2 ;; esac
		echo "$err" >&2
		return 1
	}
	awk '$1 == "#" && NF == 9 && $3 ~ /^[0-9]+$/ && $4 ~ /^[0-9]+$/' \
		"$dir/results"
}

# The best of each mode per case (highest throughput, lowest latency) and
# their ratios: throughput kfabric/verbs (target >= 0.95), latency
# kfabric/verbs (target <= 1.05). Throughput is bytes * iters / time_us.
# bench_table csv: the same as comma-separated values, with a header.
bench_table() {
	awk -v csv="${1:-}" '
	{
		k = $2 " " $4 " " $3
		if (!(k in seen)) { seen[k] = 1; keys[n++] = k }
		bw = $8 > 0 ? $4 * $5 / $8 : 0
		if (!((k, $9) in tput) || bw > tput[k, $9]) tput[k, $9] = bw
		if (!((k, $9) in lat) || $7 < lat[k, $9]) lat[k, $9] = $7
	}
	function ratio(a, b) { return b > 0 ? sprintf("%.3f", a / b) : "-" }
	END {
		if (csv) {
			head = "%s,%s,%s,%s,%s,%s,%s,%s,%s\n"
			row = "%s,%s,%s,%.4f,%.4f,%s,%.1f,%.1f,%s\n"
		} else {
			head = "%-9s %8s %3s %10s %10s %6s %10s %10s %6s\n"
			row = "%-9s %8s %3s %10.4f %10.4f %6s %10.1f %10.1f %6s\n"
		}
		printf head, "op", "bytes", "qd", "kfi_MB/s", "verbs_MB/s",
		       "ratio", "kfi_us", "verbs_us", csv ? "lat_ratio" : "ratio"
		for (i = 0; i < n; i++) {
			k = keys[i]
			split(k, f, " ")
			if (!((k, "kfi") in tput) || !((k, "verbs") in tput))
				continue
			printf row, f[1], f[2], f[3], tput[k, "kfi"], tput[k, "verbs"],
			       ratio(tput[k, "kfi"], tput[k, "verbs"]),
			       lat[k, "kfi"] / 1000, lat[k, "verbs"] / 1000,
			       ratio(lat[k, "kfi"], lat[k, "verbs"])
		}
	}'
}

test_single() {
	modprobe kfi_verbs
	modprobe kfi_selftest
	dir=/sys/kernel/debug/kfi_selftest
	rows=/tmp/bench-rows
	: >"$rows"
	verbs=1
	echo "serve fabric=verbs addr=$KF_PEER_IP port=$PORT" >"$dir/run"
	echo "kfabric over verbs vs raw verbs (Soft-RoCE, TCG guest, clock $KF_BENCH_MODE): $ARGS, best of $ROUNDS" |
		sed 's/^/BENCH /'
	for r in $(seq 1 "$ROUNDS"); do
		# Whichever mode runs second meets the teardown of the first
		# one's connection: swap the order every round, and let it end.
		order="kfi verbs"
		[ $((r % 2)) -eq 0 ] && order="verbs kfi"
		for case in send write read; do
			for api in $order; do
				[ "$api" = kfi ] || [ -n "$verbs" ] || continue
				sleep 1
				rc=0
				bench_run "$api" "$case" >>"$rows" || rc=$?
				if [ $rc -eq 2 ] && [ "$api" = verbs ]; then
					echo "BENCH api=verbs is not built (CONFIG_KFABRIC_SELFTEST_IBV): kfabric only"
					verbs=
				elif [ $rc -ne 0 ]; then
					grep -v '^ *\(KTAP\|ok\|1\.\.\)' "$dir/results" |
						sed 's/^/BENCH /'
					kf_fail "bench api=$api tests=$case failed"
				fi
			done
		done
	done
	echo "stop" >"$dir/run"
	rmmod kfi_selftest kfi_verbs
	echo "runs: op qd bytes iters MB/s avg_ns time_us api" | sed 's/^/BENCH /'
	sed 's/^# /BENCH   /' "$rows"
	echo "BENCH"
	bench_table <"$rows" | sed 's/^/BENCH /'
	bench_table csv <"$rows" | sed 's/^/CSV /'
}
