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
FUZZ_SCENARIOS=3

test_single() {
	local n i per total line before lines pids
	modprobe kfi_ntb || kf_fail "kfi_ntb does not load"
	[ -e "$DBG/kfi_ntb/fuzz" ] || kf_fail "kfi_ntb has no fuzzer (CONFIG_KFABRIC_NTB_FUZZ)"
	# One writer per CPU, each on a link of its own.
	n=$(nproc)
	per=$(((FUZZ_ROUNDS + n - 1) / n))
	before=$(dmesg | grep -c 'kfi_ntb: fuzz:' || true)
	# Each write first plays the scripted peers (a CONNREQ flood without
	# consuming, disconnects never answered), then the random rounds with
	# random scenarios among them; a failed scenario fails the write.
	pids=
	for i in $(seq 1 "$n"); do
		echo "$per" >"$DBG/kfi_ntb/fuzz" &
		pids="$pids $!"
	done
	for i in $pids; do
		wait "$i" || kf_fail "a fuzz writer failed"
	done
	lines=$(dmesg | grep 'kfi_ntb: fuzz:' | tail -n +$((before + 1)))
	echo "$lines"
	total=0
	for line in $(echo "$lines" | sed -n 's/.* descriptors \([0-9]*\) .*/\1/p'); do
		total=$((total + line))
	done
	[ "$(echo "$lines" | grep -c " rounds $per descriptors $per " || true)" -eq "$n" ] ||
		kf_fail "not every fuzz writer ran its $per rounds"
	! echo "$lines" | grep -q " failed " || kf_fail "a scripted peer scenario failed"
	[ "$(echo "$lines" | grep -c " scenarios $FUZZ_SCENARIOS sessions " || true)" -eq "$n" ] ||
		kf_fail "not every fuzz writer played the $FUZZ_SCENARIOS scripted scenarios"
	# Random scenarios (a second HELLO, a session flip, a non-zero reserved
	# field, a stale link generation) in about one round of 64.
	[ "$(echo "$lines" | grep -cE ' random_scenarios [1-9][0-9]* failures 0$' || true)" -eq "$n" ] ||
		kf_fail "a fuzz writer played no random scenario, or one failed"
	[ "$total" -ge "$FUZZ_ROUNDS" ] ||
		kf_fail "the fuzzers wrote $total descriptors, not $FUZZ_ROUNDS"
	echo "fuzz: $total descriptors by $n writers"
	rmmod kfi_ntb
}
