# SPDX-License-Identifier: GPL-2.0
# Top-level commands of scripts/kf: the main job, the test command and the
# pieces they are made of.

kf_cmd_base() {
	kf_host_setup
	kf_base_resolve
	echo "base: $KF_BASE_DESC"
}

# Results are collected as "group<TAB>ok|not ok<TAB>name<TAB>detail" lines.
KF_RESULTS=""

kf_result() {
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$KF_RESULTS"
}

# kf_host_check NAME CMD...: run a host-side check in a subshell (kf_die
# only ends the subshell) and record its result.
kf_host_check() {
	local name=$1 log t0
	shift
	log=$KF_RUNS/host-$name.log
	mkdir -p "$KF_RUNS"
	t0=$(date +%s)
	if (kf_step "$name" "$@") >"$log" 2>&1; then
		kf_result host ok "$name"
	else
		kf_result host "not ok" "$name" "$(grep -m1 '^kf: error:' "$log" | sed 's/^kf: error: //')"
		tail -n 15 "$log" >&2
		# kf_die ended the step before it could log its time.
		grep -q "^$name " "$KF_STEP_LOG" ||
			printf '%-28s %-8s %5ss\n' "$name" FAILED "$(($(date +%s) - t0))" >>"$KF_STEP_LOG"
	fi
	grep '^\[kf\] == ' "$log" | tail -n 1 >&2
}

kf_print_results() {
	local pass fail
	echo
	printf '%-6s  %-7s  %-34s  %s\n' group result test detail
	printf '%-6s  %-7s  %-34s  %s\n' ------ ------- ---------------------------------- ------
	awk -F'\t' '{ printf "%-6s  %-7s  %-34s  %s\n", $1, $2, $3, substr($4, 1, 120) }' "$KF_RESULTS"
	[ -n "$KF_STEP_LOG" ] && [ -s "$KF_STEP_LOG" ] && { echo; echo "step times:"; cat "$KF_STEP_LOG"; }
	pass=$(awk -F'\t' '$2 == "ok"' "$KF_RESULTS" | wc -l)
	fail=$(awk -F'\t' '$2 != "ok"' "$KF_RESULTS" | wc -l)
	echo
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}

# kf_guests FILTER MODE...: initramfs, accelerator, then each mode.
kf_guests() {
	local filter=$1 mode
	local -a pids=()
	shift
	[ -f "$KF_BUILD/arch/x86/boot/bzImage" ] || {
		kf_result guest "not ok" "test bed" "no kernel was built"
		return 1
	}
	(kf_step initramfs kf_initramfs "$KF_BUILD") || {
		kf_result guest "not ok" initramfs "building the initramfs failed"
		return 1
	}
	kf_accel
	# The modes boot at the same time (KFABRIC_GUEST_SERIAL=1: one after
	# the other): a TCG guest mostly keeps one host CPU busy and the two
	# guests of a pair take turns, so on two CPUs this saves most of the
	# shorter mode's time. The tests allow for a loaded host.
	for mode in "$@"; do
		(kf_step "guests-$mode" kf_boot_mode "$mode" "$filter") >"$KF_RUNS/$mode.results" &
		pids+=($!)
		[ -z "${KFABRIC_GUEST_SERIAL:-}" ] || wait $!
	done
	wait "${pids[@]}"
	for mode in "$@"; do
		awk -F'\t' '{ print "guest\t" $2 "\t" $1 ":" $3 "\t" $4 }' "$KF_RUNS/$mode.results" >>"$KF_RESULTS"
		[ -s "$KF_RUNS/$mode.results" ] ||
			kf_result guest "not ok" "$mode" "no results (logs in $KF_RUNS)"
	done
}

kf_results_init() {
	mkdir -p "$KF_RUNS"
	KF_RESULTS=$KF_RUNS/results.tsv
	KF_STEP_LOG=$KF_RUNS/steps.txt
	: >"$KF_RESULTS"
	: >"$KF_STEP_LOG"
	export KF_STEP_LOG
}

# kf boot [single|pair|all] [FILTER]: boot the built test tree.
kf_cmd_boot() {
	local modes=${1:-all} filter=${2:-}
	[ "$modes" = all ] && modes="single pair"
	kf_host_setup
	kf_base_resolve
	kf_results_init
	# shellcheck disable=SC2086
	kf_guests "$filter" $modes
	kf_print_results
}

# The main job: base, series, build, test bed, demo and tests.
kf_cmd_main() {
	kf_results_init
	kf_step packages kf_host_setup || exit 1
	kf_step base kf_base_resolve || exit 1
	kf_log "base: $KF_BASE_DESC"
	kf_host_check series-check kf_cmd_check
	kf_host_check build kf_cmd_build
	kf_guests "" single pair
	echo "base: $KF_BASE_DESC"
	kf_print_results
}

# Every test: series consistency, checkpatch, the messages kf send writes,
# bisect build with W=1, sparse and kernel-doc, KUnit, the arm64 and i386
# builds with coccicheck, and the guests under the debug config.
kf_cmd_test() {
	kf_results_init
	kf_step packages kf_host_setup || exit 1
	kf_step base kf_base_resolve || exit 1
	kf_log "base: $KF_BASE_DESC"
	kf_host_check series-check kf_cmd_check
	kf_host_check checkpatch kf_cmd_checkpatch
	kf_host_check b4-send kf_cmd_send_check
	kf_host_check bisect-build kf_cmd_bisect
	kf_host_check kunit-x86_64 kf_cmd_kunit
	kf_host_check docs kf_cmd_docs
	# The cross builds and coccicheck need the host CPUs the guests leave
	# idle (mostly after the pair finished), so they run beside the guests
	# at the lowest priority instead of adding their time to the run.
	local cross
	(renice -n 19 -p "$BASHPID" >/dev/null; kf_host_check cross kf_cmd_cross) &
	cross=$!
	kf_guests "" single pair
	wait "$cross"
	echo "base: $KF_BASE_DESC"
	kf_print_results
}

# kf bench [--icount|--wall-clock]: build the series without the debug
# options into a build directory of its own, boot one guest on it, run
# the benchmark scripts (tests/bench-*.sh) and print the tables they emit
# (lines starting with "BENCH "). KASAN, lockdep, kmemleak and the debug
# objects tax code in proportion to the loads, stores and locks it does,
# so under them a ratio against a baseline (raw verbs, ntb_perf's
# memcpy_toio()) would measure the instrumentation. KFABRIC_BENCH_TREE=
# <tree> builds that tree as it is, without applying the series (a work
# tree under development); KFABRIC_BENCH_FILTER=<glob> runs only the
# benchmark scripts it matches.
#
# Modes (--icount or KFABRIC_BENCH_MODE=icount; default wall-clock):
# under TCG on a shared host the wall-clock ratios move by tens of
# percent from run to run. With --icount the guest's clock counts
# executed instructions (KF_ICOUNT, see kf_qemu), on one vCPU, so a
# benchmark's times are those of the instructions it ran: the same on
# every run, whatever the host's load. Such a guest has one CPU, so
# only single-guest cases apply, and its numbers are instruction counts,
# not speeds a real CPU would reach (every instruction costs the same,
# memory is never slow); they compare kfabric with its baselines.
#
# Each benchmark's lines also go to KF_RUNS/NAME.txt; the lines its
# script prints with the prefix "CSV " to KF_RUNS/NAME.csv (first line
# the header; columns 1-5: case, bytes, queue depth, kfabric MB/s,
# baseline MB/s), which gnuplot draws as KF_RUNS/NAME.png.
KF_BENCH_PKGS=(gnuplot-nox)

kf_cmd_bench() {
	local src=${KFABRIC_BENCH_TREE:-} mode=${KFABRIC_BENCH_MODE:-wall} label
	while [ $# -gt 0 ]; do
		case $1 in
		--icount) mode=icount ;;
		--wall-clock) mode=wall ;;
		*) kf_die "kf bench: unknown argument '$1' (--icount or --wall-clock)" ;;
		esac
		shift
	done
	case $mode in
	icount)
		KF_ICOUNT="shift=2,sleep=off"
		label="mode: icount shift=2 (deterministic)"
		;;
	wall | wall-clock)
		mode=wall
		label="mode: wall-clock (noisy)"
		;;
	*) kf_die "KFABRIC_BENCH_MODE=$mode: icount or wall" ;;
	esac
	kf_host_setup
	kf_need_pkgs "${KF_BENCH_PKGS[@]}"
	kf_base_resolve
	kf_log "base: $KF_BASE_DESC"
	kf_log "bench $label"
	if [ -z "$src" ]; then
		kf_apply_to "$KF_TEST_TREE" "$KF_TEST_BRANCH"
		src=$KF_TEST_TREE
	fi
	# kf_initramfs installs the modules and builds the test bed's own
	# modules against KF_TEST_TREE: that must be the benchmarked tree,
	# not the test tree, which may hold another version of the series
	# (and may be in use by another run).
	KF_TEST_TREE=$src
	KF_BUILD=${KFABRIC_BENCH_BUILD:-$KF_CACHE/build/bench}
	KFABRIC_NODEBUG=1
	[ -n "${KFABRIC_RUNS:-}" ] || KF_RUNS=$KF_CACHE/runs-bench
	if [ "$mode" = icount ]; then
		# icount exists only under TCG. The guest's seconds are
		# instructions now, not the host's seconds, and the guest
		# skips its idle time: the only deadline that is one on the
		# host is kf_qemu_wait's. Give it twice the usual time and let
		# the runner's per-test timeout (guest seconds) wait as long.
		KF_ACCEL=tcg
		kf_log "QEMU accelerator: tcg, -icount $KF_ICOUNT, one vCPU"
		[ -n "${KFABRIC_GUEST_TIMEOUT:-}" ] || KF_GUEST_TIMEOUT=$((KF_GUEST_TIMEOUT * 2))
		KF_GUEST_ARGS="kf.bench=icount kf.timeout=$KF_GUEST_TIMEOUT"
	fi
	kf_results_init
	rm -rf "$KF_RUNS"/single "$KF_RUNS"/single.results "$KF_RUNS"/bench-*
	kf_step bench-build kf_build_tree "$src" "$KF_BUILD" ||
		kf_die "the benchmark kernel does not build (see $KF_BUILD/build.log)"
	if [ "$mode" = icount ]; then
		kf_bench_each "${KFABRIC_BENCH_FILTER:-bench-*}"
	else
		kf_guests "${KFABRIC_BENCH_FILTER:-bench-*}" single
	fi
	echo
	echo "kernel: $src without debug options, in $KF_BUILD; logs in $KF_RUNS"
	echo "$label"
	kf_bench_report "$label"
	kf_print_results
}

# kf_bench_each FILTER: one boot per benchmark script FILTER matches,
# logs in KF_RUNS/NAME/single. Under icount a benchmark's numbers then do
# not depend on which others ran before it in the same guest: the work
# of one moves the instruction at which every later timer interrupt
# lands, which moves some numbers of the next by up to 7 %.
kf_bench_each() {
	local filter=$1 runs=$KF_RUNS t name
	for t in "$KF_TOP"/scripts/guest/tests/bench-*.sh; do
		name=$(basename "$t" .sh)
		# shellcheck disable=SC2254
		case $name in $filter) ;; *) continue ;; esac
		KF_RUNS=$runs/$name
		mkdir -p "$KF_RUNS"
		kf_guests "$name" single
	done
	KF_RUNS=$runs
}

# kf_bench_split CONSOLE: each benchmark's "BENCH " lines into
# KF_RUNS/NAME.txt and its "CSV " lines into KF_RUNS/NAME.csv, by the
# runner's markers in the console.
kf_bench_split() {
	awk -v dir="$KF_RUNS" '
	{ sub(/\r$/, "") }
	/kf-runner: test [^ ]+ start/ {
		cur = $0; sub(/.*kf-runner: test /, "", cur); sub(/ start.*/, "", cur)
		next
	}
	/kf-runner: test [^ ]+ end/ { cur = ""; next }
	cur !~ /^bench-/ { next }
	/^BENCH( |$)/ { sub(/^BENCH ?/, ""); print > (dir "/" cur ".txt") }
	/^CSV / { sub(/^CSV /, ""); print > (dir "/" cur ".csv") }' "$1"
}

# kf_bench_plot CSV PNG TITLE: throughput against transfer size, one
# line per case and queue depth for kfabric (column 4) and, dashed in the
# same colour, for its baseline (column 5); log scales, as the numbers
# span orders of magnitude.
kf_bench_plot() {
	local csv=$1 png=$2 title=$3
	awk -F, -v png="$png" -v title="$title" '
	function num(v) { return (v == "" || v == "-") ? "NaN" : v }
	NR == 1 { kname = $4; bname = $5; next }
	$2 ~ /^[0-9]+$/ {
		key = $1 " qd" $3
		if (!(key in data)) keys[n++] = key
		data[key] = data[key] $2 " " num($4) " " num($5) "\n"
	}
	END {
		print "set terminal pngcairo size 1200,750"
		print "set output \"" png "\""
		print "set title \"" title "\" noenhanced"
		print "set logscale x 2"
		print "set logscale y 10"
		print "set format x \"%.0b%BB\""
		print "set xlabel \"transfer size\""
		print "set ylabel \"MB/s\""
		print "set key outside right noenhanced"
		print "set grid"
		print "set offsets graph 0.05, graph 0.05, 0, 0"
		for (i = 0; i < n; i++)
			printf "$d%d << EOD\n%sEOD\n", i, data[keys[i]]
		# Ten colours, then the next point shape (filled for kfabric,
		# open for the baseline).
		nc = split("#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b " \
			   "#e377c2 #7f7f7f #bcbd22 #17becf", col, " ")
		split("7 5 9 11 13", fpt, " "); split("6 4 8 10 12", opt, " ")
		printf "plot "
		for (i = 0; i < n; i++) {
			c = col[i % nc + 1]; s = int(i / nc) % 5 + 1
			printf "%s$d%d using 1:2 with linespoints lw 2 lc rgb \"%s\" pt %d title \"%s %s\", ",
			       i ? ", " : "", i, c, fpt[s], keys[i], kname
			printf "$d%d using 1:3 with linespoints lw 2 dt 2 lc rgb \"%s\" pt %d title \"%s %s\"",
			       i, c, opt[s], keys[i], bname
		}
		print ""
	}' "$csv" | gnuplot
}

# kf_bench_report LABEL: each benchmark's lines under LABEL, its CSV and
# its plot; their paths at the end.
kf_bench_report() {
	local label=$1 f name
	local -a files=()
	for f in "$KF_RUNS"/single/console.log "$KF_RUNS"/bench-*/single/console.log; do
		[ -f "$f" ] && kf_bench_split "$f"
	done
	for f in "$KF_RUNS"/bench-*.txt; do
		[ -f "$f" ] || continue
		name=$(basename "$f" .txt)
		sed -i "1i $name, $label" "$f"
		echo
		echo "== $(cat "$f")"
	done
	for f in "$KF_RUNS"/bench-*.csv; do
		[ -f "$f" ] || continue
		name=$(basename "$f" .csv)
		files+=("$f")
		if kf_bench_plot "$f" "${f%.csv}.png" "$name, $label" \
			2>"${f%.csv}.gnuplot.log"; then
			files+=("${f%.csv}.png")
		else
			kf_warn "gnuplot failed for $name (see ${f%.csv}.gnuplot.log)"
		fi
	done
	echo
	if ((${#files[@]})); then printf 'written: %s\n' "${files[@]}"; fi
}
