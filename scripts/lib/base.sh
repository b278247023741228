# SPDX-License-Identifier: GPL-2.0
# The base kernel the series applies to.
#
# Default: Debian's linux-source-7.3 binary package (v7.3.x plus Debian's
# patches), downloaded with apt-get through a private apt state so the host's
# apt configuration is neither used for packages nor modified. The archive
# address is read from the machine's own apt sources; no host name is kept in
# this repository. The package and a one-commit git base made from it are
# cached under $KF_CACHE.
#
# Alternative: KFABRIC_KERNEL=<git tree> [KFABRIC_REF=<ref>, default v7.3].
#
# After kf_base_resolve, KF_BASE_GIT is the git dir holding the base,
# KF_BASE_REV the base commit and KF_BASE_DESC a line saying what it is.

KF_DEB_PKG=${KFABRIC_DEB_PKG:-linux-source-7.3}
KF_DEB_SUITE=${KFABRIC_DEB_SUITE:-trixie-backports}
KF_DEB_KEYRING=${KFABRIC_DEB_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}

# kf_apt_archive: print the Debian archive URI the machine's apt uses.
# deb822 .sources files are read first, then one-line sources.list files;
# security archives are skipped since they do not carry backports.
kf_apt_archive() {
	local f uri=""
	if [ -n "${KFABRIC_DEB_MIRROR:-}" ]; then
		echo "$KFABRIC_DEB_MIRROR"
		return 0
	fi
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		uri=$(awk '
			/^[[:space:]]*$/ { if (u != "" && d && !sec) { print u; exit } u=""; d=0; sec=0; next }
			/^Types:/ && / deb( |$)/ { d=1 }
			/^URIs:/ { u=$2 }
			/^Suites:/ && /-security/ { sec=1 }
			END { if (u != "" && d && !sec) print u }' "$f" | head -n 1)
		[ -n "$uri" ] && break
	done
	if [ -z "$uri" ]; then
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[ -f "$f" ] || continue
			uri=$(awk '$1 == "deb" && $0 !~ /-security/ {
				for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; exit } }' \
				"$f" | head -n 1)
			[ -n "$uri" ] && break
		done
	fi
	[ -n "$uri" ] || return 1
	echo "$uri"
}

# kf_apt STATE TOOL ARGS...: run apt-get/apt-cache against a private state
# directory made by kf_apt_state.
kf_apt() {
	local s=$1 tool=$2
	shift 2
	"$tool" -o Dir::Etc::SourceList="$s/sources.list" \
		-o Dir::Etc::SourceParts="$s/sources.list.d" \
		-o Dir::Etc::Preferences="$s/preferences" \
		-o Dir::Etc::PreferencesParts="$s/preferences.d" \
		-o Dir::State="$s/state" -o Dir::State::Lists="$s/lists" \
		-o Dir::State::status="$s/state/status" \
		-o Dir::Cache="$s/cache" -o APT::Sandbox::User=root \
		-o Debug::NoLocking=1 -o Acquire::Retries=2 "$@"
}

# kf_apt_state STATE SUITE...: a private apt state for the given suites of
# the machine's Debian archive, with fresh package lists.
kf_apt_state() {
	local s=$1 uri suite
	shift
	kf_need_pkgs apt debian-archive-keyring
	uri=$(kf_apt_archive) || kf_die "no Debian archive found in the machine's apt sources"
	rm -rf "$s"
	mkdir -p "$s/lists/partial" "$s/cache/archives/partial" "$s/state" \
		"$s/sources.list.d" "$s/preferences.d"
	: >"$s/state/status"
	for suite in "$@"; do
		echo "deb [signed-by=$KF_DEB_KEYRING] $uri $suite main"
	done >"$s/sources.list"
	kf_apt "$s" apt-get -qq update >"$s/update.log" 2>&1 ||
		kf_die "cannot reach the Debian archive for $*: $(grep -m1 -E '^(E|W):' "$s/update.log")"
}

# kf_fetch_deb: download the linux-source package into $KF_CACHE/debs and
# print its path. An already downloaded package is reused (offline runs work)
# unless KFABRIC_REFRESH=1.
kf_fetch_deb() {
	local s=$KF_CACHE/apt debs=$KF_CACHE/debs deb
	mkdir -p "$debs"
	deb=$(ls -1 "$debs/${KF_DEB_PKG}"_*.deb 2>/dev/null | sort -V | tail -n 1)
	if [ -n "$deb" ] && [ -z "${KFABRIC_REFRESH:-}" ]; then
		echo "$deb"
		return 0
	fi
	kf_apt_state "$s" "$KF_DEB_SUITE"
	kf_apt "$s" apt-cache show "$KF_DEB_PKG" >/dev/null 2>&1 ||
		kf_die "package $KF_DEB_PKG is not in $KF_DEB_SUITE"
	rm -f "$debs"/*.part
	(cd "$debs" && kf_apt "$s" apt-get -qq download "$KF_DEB_PKG") >"$s/download.log" 2>&1 ||
		kf_die "downloading $KF_DEB_PKG failed: $(grep -m1 -E '^(E|W):' "$s/download.log")"
	deb=$(ls -1 "$debs/${KF_DEB_PKG}"_*.deb 2>/dev/null | sort -V | tail -n 1)
	[ -n "$deb" ] || kf_die "apt-get download left no $KF_DEB_PKG package"
	echo "$deb"
}

# kf_deb_base: turn the package into a bare git repository with a single
# commit of the pristine source, tagged with the kernel and package versions.
kf_deb_base() {
	local deb pkgver tag repo tmp kver
	deb=$(kf_fetch_deb) || exit 1
	pkgver=$(dpkg-deb -f "$deb" Version) || kf_die "$deb is not a Debian package"
	# git refnames may not contain '~' or ':': map them the DEP-14 way.
	tag=debian/$(echo "$pkgver" | tr '~:' '_%')
	repo=$KF_CACHE/base/${KF_DEB_PKG}.git
	if git --git-dir="$repo" rev-parse -q --verify "refs/tags/$tag^{commit}" >/dev/null 2>&1; then
		KF_BASE_GIT=$repo
		KF_BASE_REV=$(git --git-dir="$repo" rev-parse "refs/tags/$tag^{commit}")
		KF_BASE_DESC="Debian $KF_DEB_PKG $pkgver ($tag, $(git --git-dir="$repo" describe --tags --exact-match --match 'v*' "$KF_BASE_REV" 2>/dev/null))"
		return 0
	fi
	# An existing base also holds the developer's work trees and their
	# branches (kf import): never delete it. One git cannot read is an
	# error to look at (a removed working directory is enough to make
	# every git call fail); a readable one without this package's tag
	# gets the new version added next to what it has.
	if [ -e "$repo" ] && ! git --git-dir="$repo" rev-parse -q --verify 'base^{commit}' >/dev/null 2>&1; then
		kf_die "$repo exists but git cannot read it; move it away to have it made again"
	fi
	kf_log "unpacking $(basename "$deb") into a git base"
	tmp=$KF_CACHE/base/tmp.$$
	rm -rf "$KF_CACHE"/base/tmp.*
	mkdir -p "$tmp/src"
	dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards './usr/src/linux-source-*.tar.xz' |
		tar -xJ -C "$tmp/src" --strip-components=1 ||
		{ rm -rf "$tmp"; kf_die "unpacking $deb failed"; }
	[ -f "$tmp/src/Makefile" ] || { rm -rf "$tmp"; kf_die "$deb holds no kernel source"; }
	kver=$(make -s -C "$tmp/src" kernelversion 2>/dev/null) ||
		{ rm -rf "$tmp"; kf_die "cannot read the kernel version of $deb"; }
	git init -q --bare "$tmp/repo.git"
	# Debian's top-level .gitignore ignores everything (its packaging repo
	# holds only debian/), so the whole tree has to be added with force.
	(
		export GIT_DIR=$tmp/repo.git GIT_WORK_TREE=$tmp/src
		export GIT_AUTHOR_NAME="kfabric base" GIT_AUTHOR_EMAIL="kfabric@localhost"
		export GIT_COMMITTER_NAME="kfabric base" GIT_COMMITTER_EMAIL="kfabric@localhost"
		export GIT_AUTHOR_DATE="2000-01-01T00:00:00Z" GIT_COMMITTER_DATE="2000-01-01T00:00:00Z"
		git add -f -A . &&
			git commit -q -m "Linux $kver as shipped in Debian $KF_DEB_PKG $pkgver" &&
			git tag "$tag" && git tag "v$kver" && git branch -q -M base
	) || { rm -rf "$tmp"; kf_die "creating the git base failed"; }
	# Work trees are added to this repository; GitPython (used by
	# checkpatch's SPDX check) treats work trees of a bare repository as
	# bare themselves, so mark it as an ordinary repository.
	git --git-dir="$tmp/repo.git" config core.bare false
	if [ -e "$repo" ]; then
		git --git-dir="$repo" fetch -q "$tmp/repo.git" 'refs/tags/*:refs/tags/*' \
			'+refs/heads/base:refs/heads/base' ||
			{ rm -rf "$tmp"; kf_die "adding $pkgver to $repo failed"; }
	else
		mv "$tmp/repo.git" "$repo"
	fi
	rm -rf "$tmp"
	KF_BASE_GIT=$repo
	KF_BASE_REV=$(git --git-dir="$repo" rev-parse "refs/tags/$tag^{commit}")
	KF_BASE_DESC="Debian $KF_DEB_PKG $pkgver ($tag, v$kver)"
}

# kf_base_resolve: pick the base (Debian package or KFABRIC_KERNEL).
kf_base_resolve() {
	if [ -n "${KFABRIC_KERNEL:-}" ]; then
		local ref=${KFABRIC_REF:-v7.3} gd
		gd=$(git -C "$KFABRIC_KERNEL" rev-parse --absolute-git-dir 2>/dev/null) ||
			kf_die "KFABRIC_KERNEL=$KFABRIC_KERNEL is not a git tree"
		gd=$(git --git-dir="$gd" rev-parse --path-format=absolute --git-common-dir)
		KF_BASE_REV=$(git --git-dir="$gd" rev-parse -q --verify "$ref^{commit}") ||
			kf_die "KFABRIC_KERNEL=$KFABRIC_KERNEL has no ref $ref"
		KF_BASE_GIT=$gd
		KF_BASE_DESC="$KFABRIC_KERNEL at $ref ($(git --git-dir="$gd" rev-parse --short=12 "$KF_BASE_REV"))"
	else
		kf_deb_base
	fi
	export KF_BASE_GIT KF_BASE_REV KF_BASE_DESC
}

# kf_worktree DIR BRANCH: make DIR a work tree of the base repository with
# BRANCH reset to the base commit. A DIR that belongs to another base is
# replaced; KFABRIC_KERNEL trees only gain a branch and a worktree entry.
kf_worktree() {
	local dir=$1 branch=$2 gd
	if [ -e "$dir/.git" ]; then
		gd=$(git -C "$dir" rev-parse --path-format=absolute --git-common-dir 2>/dev/null)
		if [ "$gd" != "$KF_BASE_GIT" ]; then
			kf_log "$dir belongs to another base; recreating it"
			rm -rf "$dir"
			git --git-dir="$KF_BASE_GIT" worktree prune
		fi
	elif [ -e "$dir" ]; then
		rm -rf "$dir"
	fi
	if [ ! -e "$dir" ]; then
		mkdir -p "$(dirname "$dir")"
		git --git-dir="$KF_BASE_GIT" worktree prune
		git --git-dir="$KF_BASE_GIT" worktree add -q -f --detach "$dir" "$KF_BASE_REV" ||
			kf_die "cannot create a work tree at $dir"
	fi
	git -C "$dir" am --abort >/dev/null 2>&1
	git -C "$dir" checkout -q -f -B "$branch" "$KF_BASE_REV" ||
		kf_die "cannot reset $dir to the base"
}
