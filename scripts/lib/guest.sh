# SPDX-License-Identifier: GPL-2.0
# The QEMU test bed: an initramfs built from busybox-static, iproute2's ip
# and rdma, fio and the built modules; one guest (two Soft-RoCE devices
# over a veth pair) or two guests joined by a virtual Ethernet link on
# loopback.
#
# Every guest also gets NTB ports (scripts/testbed/ntb_hw_ivshmem, built
# as an external module): one guest two ports joined to each other, two
# guests one port each, joined to each
# other. A guest's RAM is then a file in /dev/shm that its peer maps; an
# ivshmem server started for the run carries the doorbells.
#
# Each guest writes kernel messages to its first serial port (console.log)
# and KTAP from the test runner to its second (results.log). A run fails on
# a "not ok", on a timeout, and on any oops, BUG, WARN, KASAN, UBSAN,
# lockdep, hung-task or kmemleak report in a console.

KF_RUNS=${KFABRIC_RUNS:-$KF_CACHE/runs}
KF_GUEST_MEM=${KFABRIC_GUEST_MEM:-2G}
KF_GUEST_TIMEOUT=${KFABRIC_GUEST_TIMEOUT:-3000}

# KF_ICOUNT: QEMU -icount options (kf bench --icount). The guest's clock
# then counts executed instructions (shift=2: 4 ns each) and jumps over
# idle time (sleep=off), so the times the guest measures depend on the
# code it runs, not on the host's load. icount needs single-threaded TCG
# and one vCPU: under icount a second vCPU hangs the guest at its
# bring-up. -seed makes QEMU's random numbers (RDRAND, RDSEED) the same
# on every boot, and the RTC starts at the same date and follows the
# guest's clock: the kernel mixes both into its random pool at boot.
KF_ICOUNT=${KF_ICOUNT:-}

# Console lines that mean the kernel complained. Markers the runner writes
# ("kf-runner: test NAME start") attribute each to the test that ran.
KF_SPLAT_RE='BUG:|WARNING:|Oops|general protection fault|kernel BUG at|UBSAN:|KASAN|unreferenced object|ODEBUG:|INFO: task .* blocked|INFO: possible|INFO: trying to register|INFO: lockdep|detected stalls|soft lockup|hard LOCKUP|Kernel panic|Call Trace:|list_(add|del) corruption|refcount_t:|kfabric: .*leak'

# NTB test device: every guest reserves KF_NTB_RESERVE at KF_NTB_BASE
# (memmap=) for the inbound memory windows, KF_NTB_PORT bytes per port id.
# The driver reads the layout from the server; the numbers live here only.
KF_NTB_BASE=0x40000000
KF_NTB_PORT=32M
KF_NTB_RESERVE=64M
KF_NTB_MWS=2
KF_NTB_SHM=""
KF_NTB_SERVER=""

# Host binaries copied into the guest with their shared libraries. fio
# (NVMe tests and benchmarks) links some 80 MB of libraries, most of them
# for I/O engines the guest never uses; the dynamic linker wants them all.
KF_GUEST_BINS=(/bin/ip /usr/bin/rdma /usr/bin/fio)

# kf_copy_bin STAGE BIN: copy BIN and the libraries ldd names into STAGE.
kf_copy_bin() {
	local stage=$1 bin=$2 dest lib
	dest=${3:-$bin}
	mkdir -p "$stage/$(dirname "$dest")"
	cp -L "$bin" "$stage/$dest"
	for lib in $(ldd "$bin" | grep -oE '/[^ ]+'); do
		[ -e "$stage/$lib" ] && continue
		mkdir -p "$stage/$(dirname "$lib")"
		cp -L "$lib" "$stage/$lib"
	done
}

# kf_testbed_make SRC OUT TARGET...: make TARGET for each external module
# of the test bed (scripts/testbed/*/Kbuild: device models that are not
# part of the series) against the kernel built from SRC in OUT. Objects go
# to OUT/testbed/NAME, never into the repository.
kf_testbed_make() {
	local src=$1 out=$2 kbuild d
	shift 2
	for kbuild in "$KF_TOP"/scripts/testbed/*/Kbuild; do
		d=$(dirname "$kbuild")
		mkdir -p "$out/testbed/$(basename "$d")"
		kf_make "$src" "$out" M="$d" MO="$out/testbed/$(basename "$d")" "$@" || return 1
	done
}

# kf_initramfs OUT: build OUT/initramfs.cpio.gz from the build in OUT.
kf_initramfs() {
	local out=$1 stage=$1/initramfs a b t
	rm -rf "$stage"
	mkdir -p "$stage"/{bin,sbin,proc,sys,dev,tmp,run,kf/tests,lib64}
	for a in $(/bin/busybox --list); do
		ln -sf busybox "$stage/bin/$a"
	done
	# After the links: the applet list names busybox itself.
	rm -f "$stage/bin/busybox"
	cp /bin/busybox "$stage/bin/busybox"
	# Real tools go to /usr/sbin: busybox's ip cannot create veth pairs,
	# and its shell runs applets before PATH, so lib.sh calls these by
	# absolute path.
	for b in "${KF_GUEST_BINS[@]}"; do
		kf_copy_bin "$stage" "$b" "/usr/sbin/$(basename "$b")"
	done
	# Small tools of the test bed itself, static so they need no library.
	for t in "$KF_TOP"/scripts/guest/tools/*.c; do
		gcc -static -O2 -Wall -Werror -o "$stage/usr/sbin/kf-$(basename "$t" .c)" "$t" ||
			kf_die "cannot build $t"
	done
	kf_make "$KF_TEST_TREE" "$out" -s INSTALL_MOD_PATH="$stage" INSTALL_MOD_STRIP=1 \
		modules_install >"$out/modules_install.log" 2>&1 ||
		kf_die "modules_install failed (see $out/modules_install.log)"
	kf_testbed_make "$KF_TEST_TREE" "$out" modules >"$out/testbed.log" 2>&1 &&
		kf_testbed_make "$KF_TEST_TREE" "$out" -s INSTALL_MOD_PATH="$stage" \
			INSTALL_MOD_STRIP=1 modules_install >>"$out/testbed.log" 2>&1 ||
		kf_die "the test bed's modules do not build (see $out/testbed.log)"
	cp "$KF_TOP/scripts/guest/init" "$stage/init"
	cp "$KF_TOP/scripts/guest/runner.sh" "$KF_TOP/scripts/guest/lib.sh" "$stage/kf/"
	cp "$KF_TOP"/scripts/guest/tests/*.sh "$stage/kf/tests/" 2>/dev/null
	chmod +x "$stage/init" "$stage/kf/runner.sh"
	# The same bytes for the same files: file times, inode numbers and
	# order fixed. Under kf bench --icount the guest's instruction
	# stream, and with it every time it measures, would otherwise differ
	# from boot to boot from the unpacking of the initramfs on.
	find "$stage" -exec touch -h -d @946684800 {} +
	(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --reproducible --quiet | gzip -1 -n) \
		>"$out/initramfs.cpio.gz" || kf_die "cannot pack the initramfs"
}

# kf_accel: "kvm" when KVM really boots a guest here, else "tcg". /dev/kvm
# can exist and still fail (nested virtualisation without the MSRs QEMU
# wants), so a tiny boot decides. The answer is kept for the whole run.
kf_accel() {
	if [ -z "${KF_ACCEL:-}" ]; then
		KF_ACCEL=tcg
		if [ -w /dev/kvm ] && [ -z "${KFABRIC_NO_KVM:-}" ] &&
			[ -f "$KF_BUILD/arch/x86/boot/bzImage" ]; then
			local log
			log=$(mktemp)
			timeout 30 qemu-system-x86_64 -accel kvm -cpu host -m 256M -nodefaults \
				-display none -no-reboot -kernel "$KF_BUILD/arch/x86/boot/bzImage" \
				-append "console=ttyS0 panic=-1" -serial "file:$log" >/dev/null 2>&1
			grep -q 'Kernel panic\|VFS:' "$log" && KF_ACCEL=kvm
			rm -f "$log"
		fi
		kf_log "QEMU accelerator: $KF_ACCEL"
	fi
	export KF_ACCEL
}

# kf_qemu DIR CMDLINE [QEMU ARGS...]: start a guest in the background with
# logs in DIR; its pid goes into DIR/pid.
kf_qemu() {
	# No 5-level paging: identify_cpu() clears boot_cpu_data's feature bits,
	# LA57 included, with interrupts on and before the alternatives are
	# patched; a timer interrupt in that window makes KASAN compute its
	# shadow range for 4-level paging and report the IRQ descriptor's
	# lock as a wild-memory-access (seen in pair mode under TCG, at
	# 0.15-0.26 s, in cpu_detect()). A kernel bug outside kfabric.
	#
	# Two CPUs, one per socket: the guest kernel has no ACPI and takes its
	# CPUs from SeaBIOS's MP table, which lists the first CPU of each
	# socket only. tsc=reliable: with two CPUs under TCG the boot-time TSC
	# sync check fails, and the kernel, which has no HPET or ACPI PM timer
	# without ACPI, falls back to jiffies, 4 ms resolution for every
	# ktime_get(); TCG derives each vCPU's TSC from the host's, which is
	# constant and synchronised.
	local dir=$1 cmdline=$2 cpu=${KFABRIC_QEMU_CPU:-max,la57=off}
	local accel=$KF_ACCEL smp=${KFABRIC_QEMU_SMP:-2,sockets=2}
	local -a det=()
	shift 2
	[ "$KF_ACCEL" = kvm ] && cpu=host
	if [ -n "$KF_ICOUNT" ]; then
		accel=tcg,thread=single
		smp=1
		det=(-icount "$KF_ICOUNT" -seed 1 -rtc base=2026-01-01T00:00:00,clock=vm)
	fi
	mkdir -p "$dir"
	rm -f "$dir"/{console,results}.log
	qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -m "$KF_GUEST_MEM" \
		-smp "$smp" "${det[@]}" \
		-nodefaults -display none -no-reboot \
		-kernel "$KF_BUILD/arch/x86/boot/bzImage" -initrd "$KF_BUILD/initramfs.cpio.gz" \
		-append "console=ttyS0 panic=-1 loglevel=7 tsc=reliable $cmdline" \
		-serial "file:$dir/console.log" -serial "file:$dir/results.log" \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 "$@" \
		>"$dir/qemu.log" 2>&1 &
	echo $! >"$dir/pid"
}

# kf_qemu_wait DIR DEADLINE: wait for the guest; 0 when the runner passed.
kf_qemu_wait() {
	local dir=$1 deadline=$2 pid rc
	pid=$(cat "$dir/pid")
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			kill "$pid" 2>/dev/null
			sleep 1
			kill -9 "$pid" 2>/dev/null
			echo timeout >"$dir/status"
			return 1
		fi
		sleep 1
	done
	wait "$pid" 2>/dev/null
	rc=$?
	# isa-debug-exit turns the runner's status s into (s << 1) | 1.
	echo "$rc" >"$dir/status"
	[ "$rc" = 1 ]
}

# kf_ntb_start DIR: make a /dev/shm directory for the guests' RAM files and
# start the ivshmem server (log in DIR). Sets KF_NTB_SHM and KF_NTB_SERVER;
# kf_ntb_stop undoes it. Dies with one line when either fails.
kf_ntb_start() {
	local dir=$1 i
	mkdir -p "$dir"
	KF_NTB_SHM=$(mktemp -d /dev/shm/kfabric-ntb.XXXXXX 2>/dev/null) ||
		kf_die "cannot create a directory in /dev/shm for the guests' RAM"
	python3 "$KF_TOP/scripts/lib/ivshmem-server.py" --socket "$KF_NTB_SHM/ivshmem.sock" \
		--vectors 2 --mw-count "$KF_NTB_MWS" --region-base "$KF_NTB_BASE" \
		--region-size "$KF_NTB_PORT" --ready-file "$KF_NTB_SHM/ready" \
		>"$dir/ivshmem-server.log" 2>&1 &
	KF_NTB_SERVER=$!
	for i in $(seq 1 100); do
		[ -e "$KF_NTB_SHM/ready" ] && return 0
		kill -0 "$KF_NTB_SERVER" 2>/dev/null || break
		sleep 0.1
	done
	kf_die "the ivshmem server did not start (see $dir/ivshmem-server.log)"
}

# kf_ntb_stop [DIR...]: kill what kf_ntb_start and kf_qemu started for the
# guests in DIR... if it still runs, and remove the RAM files. Runs on every
# exit of a mode, so a failure leaves nothing behind.
kf_ntb_stop() {
	local d pid
	for d in "$@"; do
		pid=$(cat "$d/pid" 2>/dev/null) || continue
		kill -0 "$pid" 2>/dev/null && kill "$pid" 2>/dev/null
	done
	if [ -n "$KF_NTB_SERVER" ]; then
		kill "$KF_NTB_SERVER" 2>/dev/null
		wait "$KF_NTB_SERVER" 2>/dev/null
	fi
	[ -n "$KF_NTB_SHM" ] && rm -rf "$KF_NTB_SHM"
	KF_NTB_SERVER=""
	KF_NTB_SHM=""
}

# kf_ntb_ram NAME: QEMU arguments, one a line, that put the guest's RAM in
# the shared file NAME, which a peer's ivshmem-plain device can map.
kf_ntb_ram() {
	printf '%s\n' -object \
		"memory-backend-file,id=ram,size=$KF_GUEST_MEM,mem-path=$KF_NTB_SHM/$1,share=on" \
		-machine pc,memory-backend=ram
}

# kf_ntb_port SLOT N PEER: QEMU arguments, one a line, for NTB port N at PCI
# slot SLOT: the doorbell device at function 0 and, at function 1, the RAM
# of the guest whose file is PEER.
kf_ntb_port() {
	printf '%s\n' -chardev "socket,path=$KF_NTB_SHM/ivshmem.sock,id=ntb$2" \
		-device "ivshmem-doorbell,chardev=ntb$2,vectors=2,addr=$1.0,multifunction=on" \
		-object "memory-backend-file,id=ntbpeer$2,size=$KF_GUEST_MEM,mem-path=$KF_NTB_SHM/$3,share=on" \
		-device "ivshmem-plain,memdev=ntbpeer$2,addr=$1.1"
}

kf_free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 20000))
		ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo $p; return; }
	done
}

# kf_guest_results DIR: print "ok|not ok<TAB>test<TAB>detail" for a guest.
# Splats fail the test during which they were printed ("boot" before the
# first test); a missing KTAP line for a planned test fails it too.
kf_guest_results() {
	local dir=$1
	awk -v re="$KF_SPLAT_RE" '
		FNR == 1 { file++ }
		file == 1 {
			if (match($0, /kf-runner: test [^ ]+ start/)) {
				cur = $0; sub(/.*kf-runner: test /, "", cur); sub(/ start.*/, "", cur)
			} else if (match($0, /kf-runner: test [^ ]+ end/)) {
				cur = "(between tests)"
			} else if ($0 ~ re) {
				t = (cur == "" ? "boot" : cur)
				if (!(t in splat)) { splat[t] = $0; order[++ns] = t }
			}
			next
		}
		/^(not )?ok [0-9]+ / {
			ok = ($1 == "ok"); name = ($1 == "ok") ? $3 : $4
			seen[name] = 1
			res[++nr] = name; st[name] = ok
			next
		}
		/^1\.\.[0-9]+/ { plan = substr($0, 4) + 0 }
		/# kf-runner: done/ { done = 1 }
		END {
			for (i = 1; i <= nr; i++) {
				n = res[i]
				if (n in splat) { printf "not ok\t%s\tsplat: %s\n", n, splat[n]; delete splat[n] }
				else printf "%s\t%s\t\n", st[n] ? "ok" : "not ok", n
			}
			for (i = 1; i <= ns; i++) if (order[i] in splat) {
				gsub(/\t/, " ", splat[order[i]])
				printf "not ok\t%s\tsplat: %s\n", order[i], splat[order[i]]
			}
			if (!done) printf "not ok\trunner\tno completion (%d of %d results)\n", nr, plan
		}' "$dir/console.log" "$dir/results.log"
}

# kf_boot_mode MODE FILTER: run one test-bed mode; print its result lines
# prefixed with the mode.
kf_boot_mode() {
	local mode=$1 filter=$2 dir deadline port rc=0
	local extra="memmap=$KF_NTB_RESERVE\$$KF_NTB_BASE"
	local -a ntb
	[ -n "$filter" ] && extra="$extra kf.filter=$filter"
	[ -n "${KF_GUEST_ARGS:-}" ] && extra="$extra $KF_GUEST_ARGS"
	deadline=$(($(date +%s) + KF_GUEST_TIMEOUT))
	# This runs in a subshell of its own (see kf_guests), maybe next to
	# the other mode's: stop only this mode's guests.
	if [ "$mode" = single ]; then
		trap 'kf_ntb_stop "$KF_RUNS/single"' EXIT
	else
		trap 'kf_ntb_stop "$KF_RUNS/pairA" "$KF_RUNS/pairB"' EXIT
	fi
	trap 'exit 130' INT TERM
	case "$mode" in
	single)
		dir=$KF_RUNS/single
		rm -rf "$dir"
		kf_ntb_start "$dir"
		# Both ports map this guest's own RAM: a loopback cable.
		mapfile -t ntb < <(kf_ntb_ram ram; kf_ntb_port 0x5 0 ram; kf_ntb_port 0x6 1 ram)
		kf_qemu "$dir" "kf.mode=single $extra" "${ntb[@]}"
		kf_qemu_wait "$dir" "$deadline" || rc=1
		kf_guest_results "$dir" | sed "s/^/single\t/"
		;;
	pair)
		rm -rf "$KF_RUNS/pairA" "$KF_RUNS/pairB"
		port=$(kf_free_port)
		kf_ntb_start "$KF_RUNS/pairA"
		# Each guest's port maps the other guest's RAM.
		mapfile -t ntb < <(kf_ntb_ram ramA; kf_ntb_port 0x5 0 ramB)
		kf_qemu "$KF_RUNS/pairA" "kf.mode=pair kf.role=A $extra" "${ntb[@]}" \
			-netdev "socket,id=n0,listen=127.0.0.1:$port" \
			-device virtio-net-pci,netdev=n0,mac=52:54:00:4b:46:01
		local i
		for i in $(seq 1 100); do
			ss -Hltn "sport = :$port" | grep -q . && break
			sleep 0.1
		done
		mapfile -t ntb < <(kf_ntb_ram ramB; kf_ntb_port 0x5 1 ramA)
		kf_qemu "$KF_RUNS/pairB" "kf.mode=pair kf.role=B $extra" "${ntb[@]}" \
			-netdev "socket,id=n0,connect=127.0.0.1:$port" \
			-device virtio-net-pci,netdev=n0,mac=52:54:00:4b:46:02
		kf_qemu_wait "$KF_RUNS/pairA" "$deadline" || rc=1
		kf_qemu_wait "$KF_RUNS/pairB" "$deadline" || rc=1
		# A test passes when both sides passed it.
		join -t "$(printf '\t')" -a1 -a2 -e MISSING -o 0,1.2,2.2,1.3,2.3 \
			<(kf_guest_results "$KF_RUNS/pairA" | awk -F'\t' '{print $2 "\t" $1 "\t" $3}' | sort -t"$(printf '\t')" -k1,1) \
			<(kf_guest_results "$KF_RUNS/pairB" | awk -F'\t' '{print $2 "\t" $1 "\t" $3}' | sort -t"$(printf '\t')" -k1,1) |
			awk -F'\t' '{
				st = ($2 == "ok" && $3 == "ok") ? "ok" : "not ok"
				d = ""
				if ($2 != "ok") d = "A: " ($4 == "MISSING" || $4 == "" ? $2 : $4)
				if ($3 != "ok") d = d (d == "" ? "" : "; ") "B: " ($5 == "MISSING" || $5 == "" ? $3 : $5)
				printf "pair\t%s\t%s\t%s\n", st, $1, d
			}'
		;;
	*) kf_die "unknown test-bed mode $mode" ;;
	esac
	return $rc
}
