# SPDX-License-Identifier: GPL-2.0
# The NTB provider (kfi_ntb) against a peer that writes anything: its
# fuzzer (kfi_ntb/fuzz in debugfs) writes a million random and mutated
# descriptors and control messages where the peer writes, into the rings
# of a link without a device, and runs the provider's data path on each.
# Under KASAN in the debug build any access outside the buffers a
# descriptor may reach is reported, which fails the test through the
# console. Needs only the provider module.
KF_MODES="single"
# A round costs a few hundred microseconds under TCG and KASAN, and more
# on a loaded host.
KF_TEST_TIMEOUT=1500
DBG=/sys/kernel/debug
FUZZ_ROUNDS=${KF_NTB_FUZZ_ROUNDS:-1000000}

test_single() {
	local n i per total line before lines
	if ! modprobe kfi_ntb 2>/dev/null; then
		echo "kfi_ntb is not built: nothing to test"
		return 0
	fi
	# One writer per CPU, each on a link of its own.
	n=$(nproc)
	per=$(((FUZZ_ROUNDS + n - 1) / n))
	before=$(dmesg | grep -c 'kfi_ntb: fuzz:' || true)
	for i in $(seq 1 "$n"); do
		echo "$per" >"$DBG/kfi_ntb/fuzz" &
	done
	wait
	lines=$(dmesg | grep 'kfi_ntb: fuzz:' | tail -n +$((before + 1)))
	echo "$lines"
	total=0
	for line in $(echo "$lines" | sed -n 's/.* descriptors \([0-9]*\) .*/\1/p'); do
		total=$((total + line))
	done
	[ "$(echo "$lines" | grep -c " rounds $per descriptors $per " || true)" -eq "$n" ] ||
		kf_fail "not every fuzz writer ran its $per rounds"
	[ "$total" -ge "$FUZZ_ROUNDS" ] ||
		kf_fail "the fuzzers wrote $total descriptors, not $FUZZ_ROUNDS"
	echo "fuzz: $total descriptors by $n writers"
	rmmod kfi_ntb
}
