# SPDX-License-Identifier: GPL-2.0
# kf cross: what a 0-day bot would build. The applied series is built for
# arm64 with every kfabric, NTB and NVMe option a module and for i386 (a
# 32-bit architecture, where a 64-bit division or a pointer cast shows)
# with all of them built in, each time vmlinux and the modules, so modpost
# and the final link see undefined symbols. The C files the series touches
# are then compiled again with W=1, and coccicheck runs over the
# directories the series adds. Debian's cross compiler builds arm64; i386
# uses the host's gcc, as the kernel does for ARCH=i386 on x86_64.

# ARCH:VALUE pairs: VALUE is what every tristate of cross.config becomes.
KF_CROSS_TARGETS=${KFABRIC_CROSS_TARGETS:-arm64:m i386:y}

# kf_cross_prefix ARCH: the cross compiler prefix for ARCH.
kf_cross_prefix() {
	case "$1" in
	arm64) echo aarch64-linux-gnu- ;;
	x86_64 | i386) echo "" ;;
	*) kf_die "no cross compiler known for $1" ;;
	esac
}

# kf_cross_fragment ARCH VALUE OUT: cross.config with its tristates set to
# VALUE, plus what ARCH needs for them, written to OUT.
kf_cross_fragment() {
	local arch=$1 val=$2 out=$3
	local skip='^$'
	# rxe depends on 64BIT: its fixes are built on arm64 only. The
	# self-test's raw verbs baseline is optional: i386 builds it, arm64
	# builds the self-test without it.
	case "$arch" in
	i386) skip='^CONFIG_RDMA_RXE=' ;;
	arm64) skip='^CONFIG_KFABRIC_SELFTEST_IBV=' ;;
	esac
	sed -e "s/=m\$/=$val/" "$KF_CFG_DIR/cross.config" | grep -v -- "$skip" >"$out"
	[ "$arch" = arm64 ] && echo CONFIG_KFABRIC_SELFTEST_IBV=n >>"$out"
	return 0
}

# kf_cross_one SRC ARCH VALUE: configure and build SRC for ARCH in a build
# directory of its own, then W=1 over the series' C files. Prints the
# diagnostics; fails when the build fails.
kf_cross_one() {
	local src=$1 arch=$2 val=$3 out=$KF_CACHE/build/cross-$2 frag
	local -a objs
	KF_ARCH=$arch KF_CROSS_COMPILE=$(kf_cross_prefix "$arch") || return 1
	export KF_ARCH KF_CROSS_COMPILE
	mkdir -p "$out"
	frag=$out/kf-cross.config
	kf_cross_fragment "$arch" "$val" "$frag"
	# The guest build's config step: tinyconfig, the fragment, and every
	# value it asks for checked in the result.
	kf_config "$src" "$out" "$frag"
	kf_make "$src" "$out" vmlinux modules >"$out/build.log" 2>&1 || {
		grep -E 'error:|ERROR:|Error [0-9]|undefined reference' "$out/build.log" |
			head -n 20 >&2
		kf_die "$arch ($val): the series does not build (see $out/build.log)"
	}
	mapfile -t objs < <(kf_series_objs "$src")
	# W=1 again over the series' files only; -k: an object this
	# configuration does not build stops only itself.
	kf_make "$src" "$out" -k W=1 "${objs[@]}" 2>&1 | grep -E '(warning|error):' |
		sed "s|^|$arch: |" || true
}

# kf_cross_cocci SRC: coccicheck in report mode over each directory the
# series adds; prints what it reports.
kf_cross_cocci() {
	local src=$1 out=$KF_CACHE/build/cocci d
	mkdir -p "$out"
	# coccicheck with M= works in the source tree and writes nothing there.
	for d in drivers/infiniband/kfabric drivers/ntb/kfi include/rdma/kfi; do
		[ -d "$src/$d" ] || continue
		# Reports name files relative to M=; put the directory back.
		make -s -C "$src" coccicheck MODE=report M="$src/$d" J="$KF_JOBS" \
			2>"$out/cocci.err" | grep -E '^[^ ]+\.[ch]:[0-9]+' | sed "s|^\./|$d/|" || true
	done
}

kf_cmd_cross() {
	local t arch val diags
	kf_host_setup
	kf_need_pkgs gcc-aarch64-linux-gnu coccinelle
	kf_base_resolve
	[ -e "$KF_TEST_TREE/.git" ] || kf_apply_to "$KF_TEST_TREE" "$KF_TEST_BRANCH"
	diags=$(
		for t in $KF_CROSS_TARGETS; do
			arch=${t%%:*}
			val=${t#*:}
			kf_cross_one "$KF_TEST_TREE" "$arch" "$val" || exit 1
			kf_log "$arch: built with every option =$val" >&2
		done
	) || exit 1
	[ -z "$diags" ] || { echo "$diags" >&2; kf_die "W=1 warnings in the series' files (above)"; }
	diags=$(kf_cross_cocci "$KF_TEST_TREE")
	[ -z "$diags" ] || { echo "$diags" >&2; kf_die "coccicheck reports (above)"; }
	kf_log "arm64 (modules) and i386 (built in) build without W=1 warnings; coccicheck reports nothing"
}
