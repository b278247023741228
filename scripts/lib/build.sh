# SPDX-License-Identifier: GPL-2.0
# Configure and build the kernel, bisect-build the series, run the static
# checks (W=1, sparse, kernel-doc, checkpatch).

KF_BUILD=${KFABRIC_BUILD:-$KF_CACHE/build/guest}
KF_CFG_DIR=$KF_TOP/scripts/config

# kf_sparse: print the path of a sparse that understands the v7.3 headers.
# Debian 12's sparse 0.6.4 predates __typeof_unqual__, so checker-valid.sh
# rejects it and C=1 would silently check nothing. Debian unstable's sparse
# does; it needs a newer C library, so it runs with unstable's libc6 through
# that library's own loader, all unpacked under the cache.
kf_sparse() {
	local d=$KF_CACHE/tools/sparse s=$KF_CACHE/tools/apt deb
	local valid=$KF_TEST_TREE/scripts/checker-valid.sh
	if [ -x "$d/sparse" ] && [ "$("$valid" "$d/sparse" -m64 2>/dev/null)" = 1 ]; then
		echo "$d/sparse"
		return 0
	fi
	rm -rf "$d"
	mkdir -p "$d/debs" "$d/root"
	kf_apt_state "$s" "${KFABRIC_SPARSE_SUITE:-unstable}"
	(cd "$d/debs" && kf_apt "$s" apt-get -qq download sparse libc6) >"$s/download.log" 2>&1 ||
		kf_die "downloading sparse failed: $(grep -m1 -E '^(E|W):' "$s/download.log")"
	for deb in "$d"/debs/*.deb; do
		dpkg-deb -x "$deb" "$d/root" || kf_die "cannot unpack $deb"
	done
	printf '#!/bin/sh\nexec "%s" --library-path "%s" "%s" "$@"\n' \
		"$d/root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
		"$d/root/usr/lib/x86_64-linux-gnu" "$d/root/usr/bin/sparse" >"$d/sparse"
	chmod +x "$d/sparse"
	[ "$("$valid" "$d/sparse" -m64 2>/dev/null)" = 1 ] ||
		kf_die "sparse from ${KFABRIC_SPARSE_SUITE:-unstable} cannot check this tree either"
	echo "$d/sparse"
}

kf_codespell_dict() {
	dpkg -L codespell 2>/dev/null | grep -m1 '/codespell_lib/data/dictionary.txt$'
}

# kf_make SRC OUT ARGS...: make in SRC with build dir OUT, through ccache,
# for x86_64 unless KF_ARCH and KF_CROSS_COMPILE name another target.
kf_make() {
	local src=$1 out=$2 cross=${KF_CROSS_COMPILE:-}
	shift 2
	CCACHE_DIR=$KF_CACHE/ccache CCACHE_MAXSIZE=5G CCACHE_BASEDIR=$src \
		make -C "$src" O="$out" ARCH="${KF_ARCH:-x86_64}" \
		${cross:+CROSS_COMPILE=$cross} CC="ccache ${cross}gcc" -j"$KF_JOBS" "$@"
}

# kf_config SRC OUT FRAGMENT...: tinyconfig plus fragments. Every value the
# guest and debug fragments ask for must end up in the .config (a silently
# dropped option would make tests pass for the wrong reason); kfabric.config
# may name symbols that a prefix of the series does not define yet.
kf_config() {
	local src=$1 out=$2 f line sym val
	shift 2
	mkdir -p "$out"
	kf_make "$src" "$out" -s tinyconfig >/dev/null 2>"$out/config.log" ||
		{ cat "$out/config.log" >&2; kf_die "make tinyconfig failed"; }
	(cd "$out" && "$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "$@") \
		>>"$out/config.log" 2>&1 || kf_die "merge_config.sh failed (see $out/config.log)"
	kf_make "$src" "$out" -s olddefconfig >>"$out/config.log" 2>&1 ||
		kf_die "make olddefconfig failed (see $out/config.log)"
	local -a bad=()
	for f in "$@"; do
		[ "$(basename "$f")" = kfabric.config ] && continue
		while IFS= read -r line; do
			case "$line" in CONFIG_*=*) ;; *) continue ;; esac
			sym=${line%%=*}
			val=${line#*=}
			if [ "$val" = n ]; then
				grep -q "^$sym=" "$out/.config" && bad+=("$sym=n")
			else
				grep -qx "$sym=$val" "$out/.config" || bad+=("$sym=$val")
			fi
		done <"$f"
	done
	((${#bad[@]} == 0)) || kf_die "the .config lacks requested options: ${bad[*]}"
}

kf_guest_fragments() {
	echo "$KF_CFG_DIR/guest.config"
	[ -n "${KFABRIC_NODEBUG:-}" ] || echo "$KF_CFG_DIR/debug.config"
	echo "$KF_CFG_DIR/kfabric.config"
}

# kf_config_key SRC FRAGMENT...: what the .config depends on: the Kconfig
# files of the tree (by git object ids) and the fragments.
kf_config_key() {
	local src=$1
	shift
	{
		git -C "$src" ls-files -s -- '*Kconfig*' | git hash-object --stdin
		cat "$@" | git hash-object --stdin
	} | tr -d '\n'
}

# kf_build_tree SRC OUT: configure and build the guest kernel and modules.
# The .config is regenerated only when a Kconfig file or a fragment changed,
# which keeps a bisect step that touches only C files short.
kf_build_tree() {
	local src=$1 out=$2 key
	local -a frags
	mapfile -t frags < <(kf_guest_fragments)
	key=$(kf_config_key "$src" "${frags[@]}")
	if [ ! -f "$out/.config" ] || [ "$(cat "$out/.kf-config-key" 2>/dev/null)" != "$key" ]; then
		rm -f "$out/.kf-config-key"
		kf_config "$src" "$out" "${frags[@]}"
		echo "$key" >"$out/.kf-config-key"
	fi
	kf_make "$src" "$out" bzImage modules >"$out/build.log" 2>&1 || {
		grep -E 'error:|Error [0-9]' "$out/build.log" | head -n 20 >&2
		return 1
	}
}

# kf_series_paths SRC: files the series touches, relative to the base.
kf_series_paths() {
	git -C "$1" diff --name-only --no-renames "$KF_BASE_REV" HEAD
}

# kf_series_objs SRC [REV]: the objects of the C files that the series up
# to HEAD touches (all of them), or that the commit REV touches when REV is
# given and changed no header.
kf_series_objs() {
	local src=$1 f
	local -a files
	if [ -n "${2:-}" ] && ! git -C "$src" diff --name-only --no-renames "$2~1" "$2" | grep -q '\.h$'; then
		mapfile -t files < <(git -C "$src" diff --name-only --no-renames "$2~1" "$2" | grep '\.c$')
	else
		mapfile -t files < <(kf_series_paths "$src" | grep '\.c$')
	fi
	for f in "${files[@]}"; do
		echo "${f%.c}.o"
	done
}

# kf_sparse_w1 SRC OUT OBJ...: W=1 and sparse over the objects OBJ. Only
# these files are compiled again (with W=1; the next build compiles them
# back from ccache), not whole directories, which keeps a bisect step short.
kf_sparse_w1() {
	local src=$1 out=$2 o
	local -a objs=()
	shift 2
	for o in "$@"; do
		[ -f "$src/${o%.o}.c" ] && objs+=("$o")
	done
	((${#objs[@]})) || return 0
	# -k: an object this configuration does not build stops only itself.
	kf_make "$src" "$out" -k W=1 C=2 CHECK="$KF_SPARSE" "${objs[@]}" 2>&1 |
		grep -E '(warning|error):' || true
}

# kf_static_checks SRC OUT: W=1 + sparse over the C files the last commit
# changed (all of the series' C files when it changed a header), and
# kernel-doc over the files it changed that the series adds. Earlier
# commits were checked at their own step. Prints the diagnostics (one per
# line); the caller decides which are new.
kf_static_checks() {
	local src=$1 out=$2
	local -a objs docs changed
	mapfile -t changed < <(git -C "$src" diff --name-only --no-renames HEAD~1 HEAD)
	((${#changed[@]})) || return 0
	mapfile -t objs < <(kf_series_objs "$src" HEAD)
	kf_sparse_w1 "$src" "$out" "${objs[@]}"
	mapfile -t docs < <(git -C "$src" diff --name-only --no-renames --diff-filter=A \
		"$KF_BASE_REV" HEAD -- "${changed[@]}" | grep -E '\.[ch]$')
	((${#docs[@]})) && (cd "$src" && scripts/kernel-doc -none -Wall "${docs[@]}" 2>&1) || true
}

# Normalise a diagnostic so that moving code does not make it "new".
kf_norm_diag() {
	sed -E -e "s|$KF_CACHE/[^ ]*/work/[^/]+/||g" -e 's|^(\.\./)+||' \
		-e 's|:[0-9]+(:[0-9]+)?:|:|' -e 's|line [0-9]+|line N|g' | sort -u
}

kf_cmd_build() {
	kf_host_setup
	kf_base_resolve
	kf_log "base: $KF_BASE_DESC"
	kf_apply_to "$KF_TEST_TREE" "$KF_TEST_BRANCH"
	kf_build_tree "$KF_TEST_TREE" "$KF_BUILD" || kf_die "the kernel does not build (see $KF_BUILD/build.log)"
	kf_log "built $(make -s -C "$KF_TEST_TREE" O="$KF_BUILD" kernelrelease 2>/dev/null) in $KF_BUILD"
}

# kf devbuild: build the developer work tree without applying anything,
# so work in progress can be booted (KFABRIC_TEST_TREE=<work tree> kf boot).
kf_cmd_devbuild() {
	kf_host_setup
	kf_base_resolve
	[ -d "$KF_WORK/.git" ] || [ -f "$KF_WORK/.git" ] || kf_die "no work tree at $KF_WORK (run scripts/kf import)"
	kf_build_tree "$KF_WORK" "$KF_BUILD" || kf_die "the kernel does not build (see $KF_BUILD/build.log)"
	kf_log "built $KF_WORK in $KF_BUILD"
}

# Bisect build: the base first (its warnings are the baseline), then each
# prefix of the fixes and the main series (the fixes first, as they are
# applied) in the same build directory, so only what a patch
# changes is rebuilt. The last prefix is the whole series: the build dir is
# left ready for the guests.
kf_cmd_bisect() {
	kf_host_setup
	kf_base_resolve
	kf_log "base: $KF_BASE_DESC"
	kf_apply_to "$KF_TEST_TREE" "$KF_TEST_BRANCH"
	local -a list commits
	mapfile -t list < <(kf_series_list)
	mapfile -t commits < <(git -C "$KF_TEST_TREE" rev-list --reverse "$KF_BASE_REV"..HEAD)
	((${#list[@]} == ${#commits[@]})) || kf_die "series and applied commits disagree"
	local base_diag=$KF_BUILD/diag.base i t0 name new
	KF_SPARSE=$(kf_sparse) || exit 1
	git -C "$KF_TEST_TREE" checkout -q --detach "$KF_BASE_REV"
	t0=$(date +%s)
	kf_build_tree "$KF_TEST_TREE" "$KF_BUILD" || kf_die "the base itself does not build (see $KF_BUILD/build.log)"
	# The base's own diagnostics, including those of the directories the
	# whole series will touch, are the baseline for every prefix.
	git -C "$KF_TEST_TREE" checkout -q "$KF_TEST_BRANCH"
	local -a all_objs
	mapfile -t all_objs < <(kf_series_objs "$KF_TEST_TREE")
	git -C "$KF_TEST_TREE" checkout -q --detach "$KF_BASE_REV"
	{
		grep -E '(warning|error):' "$KF_BUILD/build.log"
		kf_sparse_w1 "$KF_TEST_TREE" "$KF_BUILD" "${all_objs[@]}"
	} | kf_norm_diag >"$base_diag"
	kf_log "base built in $(($(date +%s) - t0))s"
	for i in "${!commits[@]}"; do
		name=${list[$i]}
		t0=$(date +%s)
		git -C "$KF_TEST_TREE" checkout -q --detach "${commits[$i]}"
		if ! kf_build_tree "$KF_TEST_TREE" "$KF_BUILD"; then
			git -C "$KF_TEST_TREE" checkout -q "$KF_TEST_BRANCH"
			kf_die "patches/$name (prefix $((i + 1))) breaks the build (see $KF_BUILD/build.log)"
		fi
		new=$({
			grep -E '(warning|error):|WARNING:' "$KF_BUILD/build.log"
			kf_static_checks "$KF_TEST_TREE" "$KF_BUILD"
		} | kf_norm_diag | comm -23 - "$base_diag")
		if [ -n "$new" ]; then
			echo "$new" | head -n 20 >&2
			git -C "$KF_TEST_TREE" checkout -q "$KF_TEST_BRANCH"
			kf_die "patches/$name (prefix $((i + 1))) adds warnings"
		fi
		kf_log "prefix $((i + 1))/${#list[@]} ok in $(($(date +%s) - t0))s: $name"
	done
	git -C "$KF_TEST_TREE" checkout -q "$KF_TEST_BRANCH"
}

# checkpatch on every patch: zero errors, warnings and checks. --codespell
# makes checkpatch match every word against a large dictionary, tens of
# seconds per patch, so patches are checked in parallel.
kf_checkpatch_one() {
	local p=$1 out
	# shellcheck disable=SC2086
	out=$(cd "$KF_TEST_TREE" && perl scripts/checkpatch.pl --strict --codespell \
		--codespellfile "$KF_CODESPELL" --color=never --showfile -q \
		$KF_CHECKPATCH_EXTRA "$KF_TOP/patches/$p" 2>&1)
	[ -z "$out" ] && return 0
	printf '%s\n' "$out" "kf: warning: checkpatch: $p is not clean" >&2
	return 1
}

# The files the series adds, from its patches.
kf_series_added_files() {
	local p
	kf_series_list | while read -r p; do
		awk '/^diff --git /{f=substr($4, 3)} /^new file mode/{print f}' \
			"$KF_TOP/patches/$p"
	done
}

# checkpatch asks of every patch that adds a file whether MAINTAINERS needs
# updating. Here that has an answer, so the question is not asked (one
# entry per directory, not a line per file to quiet it). Every file the
# series adds must fall under an F: pattern of the entries the series adds,
# or be one more file of a directory that an existing entry names itself
# (drivers/nvme/target/, say): a new directory needs an entry of its own,
# and a catch-all such as drivers/infiniband/ does not count. A pattern
# ending in / covers its tree; * and ? match within one path component.
kf_maint_covers() {
	{
		git -C "$KF_TEST_TREE" show "$KF_BASE_REV:MAINTAINERS" |
			sed -n 's/^F:[[:space:]]*/base /p'
		sed -n 's/^F:[[:space:]]*/ours /p' "$KF_TOP/MAINTAINERS.fragment"
	} | awk -v files=<(kf_series_added_files) '
	{
		if ($2 ~ /\/$/) {
			dir[++nd] = $2
			tree[nd] = $1 == "ours"
		} else {
			re = $2
			gsub(/[.+^$(){}|[\]]/, "\\\\&", re)
			gsub(/\*/, "[^/]*", re)
			gsub(/\?/, "[^/]", re)
			pat[++np] = "^" re "$"
		}
	}
	END {
		while ((getline f < files) > 0) {
			parent = f
			sub(/[^\/]*$/, "", parent)
			ok = 0
			for (i = 1; i <= nd && !ok; i++)
				ok = tree[i] ? index(f, dir[i]) == 1 : dir[i] == parent
			for (i = 1; i <= np && !ok; i++)
				ok = f ~ pat[i]
			if (!ok) {
				print "kf: " f ": added by the series, in no MAINTAINERS entry of its own" > "/dev/stderr"
				bad = 1
			}
		}
		exit bad
	}'
}

kf_cmd_checkpatch() {
	kf_host_setup
	kf_base_resolve
	[ -e "$KF_TEST_TREE/scripts/checkpatch.pl" ] || kf_apply_to "$KF_TEST_TREE" "$KF_TEST_BRANCH"
	KF_CODESPELL=$(kf_codespell_dict) || true
	[ -n "$KF_CODESPELL" ] || kf_die "codespell's dictionary is missing (package codespell)"
	# A base imported from a source package has no history: checkpatch
	# cannot look up the commits that Fixes: tags name. With a mainline
	# git tree as the base (KFABRIC_KERNEL) it checks them.
	KF_CHECKPATCH_EXTRA="--ignore FILE_PATH_CHANGES"
	git -C "$KF_TEST_TREE" rev-parse -q --verify "$KF_BASE_REV^" >/dev/null ||
		KF_CHECKPATCH_EXTRA="$KF_CHECKPATCH_EXTRA --ignore UNKNOWN_COMMIT_ID"
	export KF_CODESPELL KF_TEST_TREE KF_TOP KF_CHECKPATCH_EXTRA
	export -f kf_checkpatch_one
	local n
	n=$(kf_series_list | wc -l)
	kf_series_list | xargs -r -P "$KF_JOBS" -I{} bash -c 'kf_checkpatch_one "$1"' _ {} ||
		kf_die "checkpatch found problems (see above)"
	kf_maint_covers || kf_die "MAINTAINERS.fragment misses files the series adds"
	kf_log "checkpatch --strict --codespell: $n patches clean ($(kf_series_counts)); MAINTAINERS covers every file added"
}

# kf_qemu_tcg_path: a directory with a qemu-system-x86_64 that drops the
# -accel options kunit.py passes (it always tries KVM first, and KVM can be
# present yet hang); prepended to PATH when the test bed found no usable
# KVM.
kf_qemu_tcg_path() {
	local d=$KF_CACHE/tools/qemu-tcg
	mkdir -p "$d"
	cat >"$d/qemu-system-x86_64" <<'EOF'
#!/bin/sh
for a; do
	shift
	if [ -n "$skip" ]; then skip=; continue; fi
	if [ "$a" = -accel ]; then skip=1; continue; fi
	set -- "$@" "$a"
done
exec /usr/bin/qemu-system-x86_64 -accel tcg "$@"
EOF
	chmod +x "$d/qemu-system-x86_64"
	echo "$d"
}

# KUnit through kunit.py with the core's .kunitconfig on x86_64: its config
# has neither INFINIBAND nor NET, so this is also the proof that the core
# builds and works without the RDMA stack. Two CPUs, so that the removal
# stress cases really run their threads side by side; the .kunitconfig
# turns on SMP, KASAN and lockdep, and any kernel report fails the step.
kf_cmd_kunit() {
	local out=$KF_CACHE/build/kunit-x86 path=$PATH log
	kf_host_setup
	kf_base_resolve
	[ -e "$KF_TEST_TREE/.git" ] || kf_apply_to "$KF_TEST_TREE" "$KF_TEST_BRANCH"
	[ -f "$KF_TEST_TREE/drivers/infiniband/kfabric/.kunitconfig" ] ||
		kf_die "the series has no drivers/infiniband/kfabric/.kunitconfig"
	kf_accel
	[ "$KF_ACCEL" = kvm ] || path=$(kf_qemu_tcg_path):$PATH
	mkdir -p "$out"
	log=$out/kunit.log
	(cd "$KF_TEST_TREE" && PATH=$path CCACHE_DIR=$KF_CACHE/ccache \
		python3 tools/testing/kunit/kunit.py run --arch=x86_64 \
		--kunitconfig=drivers/infiniband/kfabric --build_dir="$out" \
		--jobs="$KF_JOBS" --make_options CC="ccache gcc" --timeout 900 \
		--qemu_args="-smp 2") >"$log" 2>&1
	local rc=$?
	grep -E '^\[[0-9:]+\] (Testing complete|# |.*FAILED)' "$log" | tail -n 5 >&2
	((rc == 0)) || kf_die "kunit.py failed (see $log)"
	grep -q '^CONFIG_KFABRIC=y' "$out/.config" || kf_die "kunit.py did not build kfabric"
	# A splat fails the run even when every expectation held.
	if grep -E 'BUG:|WARNING:|KASAN:|possible circular locking|inconsistent lock state|possible recursive locking|suspicious RCU usage' \
		"$out/test.log" >&2; then
		kf_die "the KUnit kernel reported a problem (see $out/test.log)"
	fi
	if grep -q '^CONFIG_INFINIBAND=' "$out/.config"; then
		kf_die "the KUnit config has INFINIBAND; it must prove the core builds without it"
	fi
	kf_log "KUnit on x86_64 passed, built with INFINIBAND=n and NET=$(grep -q '^CONFIG_NET=y' "$out/.config" && echo y || echo n)"
}

# kf docs: build Documentation/kfabric/ of the applied series with Sphinx;
# any warning fails. Debian's sphinx-build runs under the system python,
# which the docs helper scripts must use too.
kf_cmd_docs() {
	local out=$KF_CACHE/build/docs log
	kf_host_setup
	kf_base_resolve
	[ -e "$KF_TEST_TREE/.git" ] || kf_apply_to "$KF_TEST_TREE" "$KF_TEST_BRANCH"
	[ -f "$KF_TEST_TREE/Documentation/kfabric/index.rst" ] ||
		kf_die "the series has no Documentation/kfabric/index.rst"
	mkdir -p "$out"
	log=$out/docs.log
	(cd "$KF_TEST_TREE" && PATH=/usr/bin:$PATH make O="$out" SPHINXDIRS=kfabric \
		cleandocs htmldocs) >"$log" 2>&1 || kf_die "the docs do not build (see $log)"
	if grep -Ei 'warning|error' "$log" >&2; then
		kf_die "the docs build warns (see $log)"
	fi
	kf_log "Documentation/kfabric built without warnings"
}
