# SPDX-License-Identifier: GPL-2.0
# Series mechanics: apply, import, export and the consistency check.
#
# The repository holds the submission: the fixes, patches/fixes/*.patch
# listed in patches/fixes/series, and the main series, patches/*.patch
# listed in `series` (quilt order each, the fixes applied first), plus the
# files the patches create, mirrored at the root, and MAINTAINERS.fragment,
# the entry the series adds. The kernel work tree
# is where code is edited; export is the only way changes flow back, so the
# two cannot drift unnoticed: `kf check` compares them byte for byte.

# Top-level kernel directories the root of the repository mirrors.
KF_MIRROR_TOPS=(drivers include Documentation)

KF_TEST_TREE=${KFABRIC_TEST_TREE:-$KF_CACHE/work/test}
KF_TEST_BRANCH=kfabric-test

# git am and commit need an identity; a fresh machine may have none.
kf_git_identity() {
	git config user.name >/dev/null 2>&1 ||
		export GIT_COMMITTER_NAME=${GIT_COMMITTER_NAME:-kfabric tooling}
	git config user.email >/dev/null 2>&1 ||
		export GIT_COMMITTER_EMAIL=${GIT_COMMITTER_EMAIL:-kfabric@localhost}
}

# kf_format_patches TREE RANGE OUT: the commits of RANGE in TREE as patch
# files in OUT, exactly as patches/ holds them: --zero-commit and
# --no-signature keep the files stable across rebases and git versions,
# so only real changes show up in a diff (kf export writes patches/ with
# this, and kf send compares an applied series against it).
kf_format_patches() {
	git -C "$1" format-patch -q --zero-commit --no-signature --no-numbered \
		-o "$3" "$2"
}

# kf_format_series DIR TIP NFIX OUT: the commits base..TIP of DIR as the
# repository holds them, written into OUT: the first NFIX as the fixes
# (OUT/patches/fixes/ with its series file), the rest as the main series
# (OUT/patches/, OUT/series). Each series is numbered from 1, since each
# is posted on its own.
kf_format_series() {
	local dir=$1 tip=$2 nfix=$3 out=$4 split=$KF_BASE_REV
	if ((nfix > 0)); then
		split=$(git -C "$dir" rev-list --reverse "$KF_BASE_REV..$tip" | sed -n "${nfix}p")
		[ -n "$split" ] || return 1
		kf_format_patches "$dir" "$KF_BASE_REV..$split" "$out/patches/fixes" || return 1
		(cd "$out/patches/fixes" && ls -1 -- *.patch) >"$out/patches/fixes/series" || return 1
	fi
	kf_format_patches "$dir" "$split..$tip" "$out/patches" || return 1
	(cd "$out/patches" && ls -1 -- *.patch) >"$out/series"
}

# kf_series_counts: "N fixes and M patches", for the logs.
kf_series_counts() {
	echo "$(kf_series_fixes | wc -l) fixes and $(kf_series_main | wc -l) patches"
}

# kf_tree_dirty DIR: true when DIR has uncommitted or untracked files. Debian's
# .gitignore hides every untracked file, so they are listed without it.
kf_tree_dirty() {
	[ -n "$(git -C "$1" status --porcelain --untracked-files=no)" ] ||
		[ -n "$(git -C "$1" ls-files --others | head -n 1)" ]
}

# kf_am DIR PATCH...: git am each patch in turn, naming the first that fails.
kf_am() {
	local dir=$1 p out n=0
	shift
	kf_git_identity
	for p in "$@"; do
		n=$((n + 1))
		[ -f "$KF_TOP/patches/$p" ] || kf_die "series lists $p, but patches/$p does not exist"
		if ! out=$(git -C "$dir" am -q --whitespace=nowarn "$KF_TOP/patches/$p" 2>&1); then
			git -C "$dir" am --abort >/dev/null 2>&1
			kf_die "patches/$p (patch $n in git am order) does not apply to $KF_BASE_DESC: $(echo "$out" |
				grep -m1 -E '^(error|fatal):' || echo "$out" | head -n 1)"
		fi
	done
}

# kf_apply_to DIR BRANCH: fresh BRANCH at the base in DIR, the fixes and
# then the main series applied.
kf_apply_to() {
	local dir=$1 branch=$2
	local -a list
	mapfile -t list < <(kf_series_list)
	kf_worktree "$dir" "$branch"
	kf_am "$dir" "${list[@]}"
}

kf_cmd_apply() {
	kf_host_setup
	kf_base_resolve
	kf_log "base: $KF_BASE_DESC"
	kf_apply_to "$KF_TEST_TREE" "$KF_TEST_BRANCH"
	kf_log "applied $(kf_series_counts) in $KF_TEST_TREE ($KF_TEST_BRANCH)"
}

kf_cmd_import() {
	local force=""
	[ "${1:-}" = --force ] && force=1
	kf_host_setup
	kf_base_resolve
	if [ -e "$KF_WORK/.git" ] && [ -z "$force" ]; then
		kf_tree_dirty "$KF_WORK" &&
			kf_die "$KF_WORK has uncommitted changes; export or discard them (or --force)"
		local cur
		cur=$(git -C "$KF_WORK" rev-parse -q --verify "refs/heads/$KF_BRANCH^{tree}" 2>/dev/null)
		kf_apply_to "$KF_TEST_TREE" "$KF_TEST_BRANCH"
		if [ -n "$cur" ] && [ "$cur" != "$(git -C "$KF_TEST_TREE" rev-parse HEAD^{tree})" ] &&
			[ "$(git -C "$KF_WORK" rev-parse "refs/heads/$KF_BRANCH")" != "$KF_BASE_REV" ]; then
			kf_die "branch $KF_BRANCH in $KF_WORK differs from the series; export it first (or --force)"
		fi
	fi
	kf_apply_to "$KF_WORK" "$KF_BRANCH"
	kf_log "imported $(kf_series_counts) into $KF_WORK ($KF_BRANCH), the fixes first"
}

# kf_added_files DIR: the files the series creates (relative to the base).
kf_added_files() {
	git -C "$1" diff --name-only --no-renames --diff-filter=A "$KF_BASE_REV" HEAD
}

# kf_maint_fragment DIR: the MAINTAINERS lines the series adds.
kf_maint_fragment() {
	git -C "$1" diff -U0 --no-renames "$KF_BASE_REV" HEAD -- MAINTAINERS |
		sed -n '/^+++ /d; s/^+//p'
}

# kf_mirror DIR OUT: write the root mirror of DIR's series (added files and
# MAINTAINERS.fragment) into OUT. Fails when the series adds a file outside
# the mirrored top-level directories, where the mirror cannot hold it.
kf_mirror() {
	local dir=$1 out=$2 f top ok t
	mkdir -p "$out"
	while IFS= read -r f; do
		top=${f%%/*}
		ok=""
		for t in "${KF_MIRROR_TOPS[@]}"; do [ "$top" = "$t" ] && ok=1; done
		[ -n "$ok" ] || kf_die "the series adds $f, outside the mirrored directories (${KF_MIRROR_TOPS[*]})"
		mkdir -p "$out/$(dirname "$f")"
		git -C "$dir" show "HEAD:$f" >"$out/$f" || kf_die "cannot read $f"
		[ -x "$dir/$f" ] && chmod +x "$out/$f"
	done < <(kf_added_files "$dir")
	kf_maint_fragment "$dir" >"$out/MAINTAINERS.fragment"
}

# kf_compare_mirror OUT: differences between a mirror and the repository root.
kf_compare_mirror() {
	local out=$1 t rc=0 d
	for t in "${KF_MIRROR_TOPS[@]}"; do
		[ -e "$out/$t" ] || [ -e "$KF_TOP/$t" ] || continue
		d=$(diff -rq "$out/$t" "$KF_TOP/$t" 2>&1 | sed "s|$out/||g; s|$KF_TOP/|root:|g")
		[ -n "$d" ] && { echo "$d"; rc=1; }
	done
	if ! cmp -s "$out/MAINTAINERS.fragment" "$KF_TOP/MAINTAINERS.fragment"; then
		echo "MAINTAINERS.fragment differs from the entry the series adds"
		rc=1
	fi
	return $rc
}

kf_cmd_check() {
	local out d
	kf_host_setup
	kf_base_resolve
	kf_apply_to "$KF_TEST_TREE" "$KF_TEST_BRANCH"
	out=$(mktemp -d)
	(kf_mirror "$KF_TEST_TREE" "$out") || { rm -rf "$out"; exit 1; }
	if ! d=$(kf_compare_mirror "$out"); then
		rm -rf "$out"
		echo "$d" | head -n 20 >&2
		kf_die "the root folders differ from what the series produces (run scripts/kf export)"
	fi
	rm -rf "$out"
	kf_log "root folders and MAINTAINERS.fragment match the series"
}

# Export: developer branch -> patches/fixes/ + patches/ + their series
# files + root mirror. Everything is written into a staging directory
# first and moved into place only when all of it succeeded, so a failed
# export leaves the repository untouched.
#
# The branch holds the fixes first, then the main series. How many of its
# commits are fixes is what patches/fixes/series says now: the subjects of
# the branch's first commits must be those of the fixes, in order, so a
# fix that was reordered, dropped or reworded is noticed instead of
# becoming part of the wrong series. --fixes N says it instead (adding,
# dropping or renaming a fix; 0 ends the fixes series). Either way the
# fixes must leave kfabric's own directories alone: they are fixes to
# other subsystems and must apply to the base without the series.
kf_cmd_export() {
	local nfix="" given=""
	while [ $# -gt 0 ]; do
		case $1 in
		--fixes)
			[ $# -ge 2 ] || kf_die "kf export: --fixes needs a number"
			nfix=$2
			given=1
			shift
			;;
		*) kf_die "kf export: unknown argument '$1' ([--fixes N])" ;;
		esac
		shift
	done
	[ -z "$given" ] || [[ $nfix =~ ^[0-9]+$ ]] || kf_die "kf export: --fixes takes a number, not '$nfix'"
	kf_host_setup
	kf_base_resolve
	[ -e "$KF_WORK/.git" ] || kf_die "no work tree at $KF_WORK (run scripts/kf import)"
	kf_tree_dirty "$KF_WORK" && kf_die "$KF_WORK has uncommitted changes; commit them first"
	git -C "$KF_WORK" merge-base --is-ancestor "$KF_BASE_REV" HEAD ||
		kf_die "$KF_WORK HEAD is not based on $KF_BASE_DESC"
	local n
	n=$(git -C "$KF_WORK" rev-list --count "$KF_BASE_REV"..HEAD)
	((n > 0)) || kf_die "$KF_WORK has no commits on top of the base"
	git -C "$KF_WORK" rev-list --merges "$KF_BASE_REV"..HEAD | grep -q . &&
		kf_die "$KF_WORK has merge commits; the series must be linear"

	local -a fixes subjects
	local i want
	if [ -z "$given" ]; then
		mapfile -t fixes < <(kf_series_fixes)
		nfix=${#fixes[@]}
		mapfile -t subjects < <(git -C "$KF_WORK" log --reverse --format=%s "$KF_BASE_REV"..HEAD | head -n "$nfix")
		for ((i = 0; i < nfix; i++)); do
			[ -f "$KF_FIXES_DIR/${fixes[$i]}" ] ||
				kf_die "patches/fixes/series lists ${fixes[$i]}, which does not exist"
			want=$(git mailinfo /dev/null /dev/null <"$KF_FIXES_DIR/${fixes[$i]}" | sed -n 's/^Subject: //p')
			[ "${subjects[$i]:-}" = "$want" ] ||
				kf_die "commit $((i + 1)) of $KF_WORK is '${subjects[$i]:-}', fix $((i + 1)) is '$want': put the $nfix fixes first, or give their number with --fixes N"
		done
	fi
	((nfix < n)) || kf_die "$KF_WORK has $n commits: $nfix fixes leave no main series"
	if ((nfix > 0)); then
		local split owned
		split=$(git -C "$KF_WORK" rev-list --reverse "$KF_BASE_REV"..HEAD | sed -n "${nfix}p")
		owned=$(git -C "$KF_WORK" diff --name-only "$KF_BASE_REV" "$split" -- "${KF_OWNED_DIRS[@]}" | head -n 3)
		[ -z "$owned" ] ||
			kf_die "the first $nfix commits (the fixes) touch kfabric's own files (${owned//$'\n'/ }); a fix must apply without the series"
	fi

	local stage
	stage=$(mktemp -d "$KF_TOP/.export.XXXXXX") || kf_die "cannot create a staging dir"
	trap 'rm -rf "$stage"' EXIT
	kf_format_series "$KF_WORK" HEAD "$nfix" "$stage" || kf_die "git format-patch failed"
	(kf_mirror "$KF_WORK" "$stage/mirror") || exit 1

	rm -rf "$KF_TOP/patches"
	mv "$stage/patches" "$KF_TOP/patches"
	mv "$stage/series" "$KF_TOP/series"
	for t in "${KF_MIRROR_TOPS[@]}"; do
		rm -rf "${KF_TOP:?}/$t"
		[ -e "$stage/mirror/$t" ] && mv "$stage/mirror/$t" "$KF_TOP/$t"
	done
	mv "$stage/mirror/MAINTAINERS.fragment" "$KF_TOP/MAINTAINERS.fragment"
	rm -rf "$stage"
	trap - EXIT
	kf_log "exported $nfix fixes (patches/fixes/) and $((n - nfix)) patches (patches/); review with: git -C $KF_TOP status"
}
