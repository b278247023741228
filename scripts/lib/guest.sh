# SPDX-License-Identifier: GPL-2.0
# The QEMU test bed: an initramfs built from busybox-static, iproute2's ip
# and rdma and the built modules; one guest (two Soft-RoCE devices over a
# veth pair) or two guests joined by a virtual Ethernet link on loopback.
#
# Each guest writes kernel messages to its first serial port (console.log)
# and KTAP from the test runner to its second (results.log). A run fails on
# a "not ok", on a timeout, and on any oops, BUG, WARN, KASAN, UBSAN,
# lockdep, hung-task or kmemleak report in a console.

KF_RUNS=${KFABRIC_RUNS:-$KF_CACHE/runs}
KF_GUEST_MEM=${KFABRIC_GUEST_MEM:-2G}
KF_GUEST_TIMEOUT=${KFABRIC_GUEST_TIMEOUT:-1800}

# Console lines that mean the kernel complained. Markers the runner writes
# ("kf-runner: test NAME start") attribute each to the test that ran.
KF_SPLAT_RE='BUG:|WARNING:|Oops|general protection fault|kernel BUG at|UBSAN:|KASAN|unreferenced object|ODEBUG:|INFO: task .* blocked|INFO: possible|INFO: trying to register|INFO: lockdep|detected stalls|soft lockup|hard LOCKUP|Kernel panic|Call Trace:|list_(add|del) corruption|refcount_t:|kfabric: .*leak'

# Host binaries copied into the guest with their shared libraries.
KF_GUEST_BINS=(/bin/ip /usr/bin/rdma)

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

# kf_initramfs OUT: build OUT/initramfs.cpio.gz from the build in OUT.
kf_initramfs() {
	local out=$1 stage=$1/initramfs a b
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
	kf_make "$KF_TEST_TREE" "$out" -s INSTALL_MOD_PATH="$stage" INSTALL_MOD_STRIP=1 \
		modules_install >"$out/modules_install.log" 2>&1 ||
		kf_die "modules_install failed (see $out/modules_install.log)"
	cp "$KF_TOP/scripts/guest/init" "$stage/init"
	cp "$KF_TOP/scripts/guest/runner.sh" "$KF_TOP/scripts/guest/lib.sh" "$stage/kf/"
	cp "$KF_TOP"/scripts/guest/tests/*.sh "$stage/kf/tests/" 2>/dev/null
	chmod +x "$stage/init" "$stage/kf/runner.sh"
	(cd "$stage" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) \
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
	local dir=$1 cmdline=$2 cpu=max
	shift 2
	[ "$KF_ACCEL" = kvm ] && cpu=host
	mkdir -p "$dir"
	rm -f "$dir"/{console,results}.log
	qemu-system-x86_64 -accel "$KF_ACCEL" -cpu "$cpu" -m "$KF_GUEST_MEM" -smp 2 \
		-nodefaults -display none -no-reboot \
		-kernel "$KF_BUILD/arch/x86/boot/bzImage" -initrd "$KF_BUILD/initramfs.cpio.gz" \
		-append "console=ttyS0 panic=-1 loglevel=7 $cmdline" \
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
	local extra=""
	[ -n "$filter" ] && extra="kf.filter=$filter"
	deadline=$(($(date +%s) + KF_GUEST_TIMEOUT))
	case "$mode" in
	single)
		dir=$KF_RUNS/single
		rm -rf "$dir"
		kf_qemu "$dir" "kf.mode=single $extra"
		kf_qemu_wait "$dir" "$deadline" || rc=1
		kf_guest_results "$dir" | sed "s/^/single\t/"
		;;
	pair)
		rm -rf "$KF_RUNS/pairA" "$KF_RUNS/pairB"
		port=$(kf_free_port)
		kf_qemu "$KF_RUNS/pairA" "kf.mode=pair kf.role=A $extra" \
			-netdev "socket,id=n0,listen=127.0.0.1:$port" \
			-device virtio-net-pci,netdev=n0,mac=52:54:00:4b:46:01
		local i
		for i in $(seq 1 100); do
			ss -Hltn "sport = :$port" | grep -q . && break
			sleep 0.1
		done
		kf_qemu "$KF_RUNS/pairB" "kf.mode=pair kf.role=B $extra" \
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
