# SPDX-License-Identifier: GPL-2.0
# Shared helpers for the kfabric series tooling. Sourced, never executed.
#
# Everything large (downloads, the base tree, work trees, build dirs, guest
# images) lives under $KF_CACHE, outside the repository, so a clone stays
# small and a failed run can never leave half-written files in it.

KF_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KF_CACHE=${KFABRIC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kfabric}
KF_JOBS=${KFABRIC_JOBS:-$(nproc)}

# The distribution's tools first: checkpatch's SPDX check and kernel-doc run
# "python3", which must be the one Debian's python3-* modules belong to, not
# a user-installed interpreter that happens to be earlier in PATH.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# Directories of the kernel tree that the series creates and that the
# repository root mirrors byte for byte (see kf_check_sync).
KF_OWNED_DIRS=(drivers/infiniband/kfabric drivers/ntb/kfi include/rdma/kfi
	Documentation/kfabric)

kf_log()  { printf '[kf] %s\n' "$*" >&2; }
kf_die()  { printf 'kf: error: %s\n' "$*" >&2; exit 1; }
kf_warn() { printf 'kf: warning: %s\n' "$*" >&2; }

# Step timing: every top-level step reports its wall time so a slow CI run
# shows where the minutes went.
KF_STEP_LOG=${KF_STEP_LOG:-}
kf_step() {
	local name=$1 t0 rc
	shift
	t0=$(date +%s)
	kf_log "== $name"
	"$@"
	rc=$?
	local dt=$(($(date +%s) - t0))
	kf_log "== $name: $( ((rc == 0)) && echo ok || echo "FAILED ($rc)") in ${dt}s"
	[ -n "$KF_STEP_LOG" ] && printf '%-28s %-8s %5ss\n' "$name" \
		"$( ((rc == 0)) && echo ok || echo FAILED)" "$dt" >>"$KF_STEP_LOG"
	return $rc
}

# kf_need_pkgs PKG...: install the Debian packages that are missing.
# Tools are checked by package status, so a second run costs nothing.
kf_need_pkgs() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			missing+=("$p")
	done
	((${#missing[@]})) || return 0
	[ "$(id -u)" = 0 ] || kf_die "packages missing (${missing[*]}); run as root or install them"
	kf_log "installing: ${missing[*]}"
	if [ -z "${KF_APT_UPDATED:-}" ]; then
		apt-get update -qq >"$KF_CACHE/apt-update.log" 2>&1 ||
			kf_die "apt-get update failed (see $KF_CACHE/apt-update.log)"
		KF_APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >"$KF_CACHE/apt-install.log" 2>&1 ||
		kf_die "apt-get install ${missing[*]} failed (see $KF_CACHE/apt-install.log)"
}

# Packages for building the kernel, checking the series and running guests.
KF_HOST_PKGS=(git make gcc libc6-dev flex bison bc libelf-dev libssl-dev kmod cpio
	xz-utils zstd rsync python3 perl ccache sparse codespell busybox-static
	qemu-system-x86 iproute2 fio ca-certificates gzip python3-ply python3-git
	python3-sphinx python3-yaml graphviz)

kf_host_setup() {
	mkdir -p "$KF_CACHE" || kf_die "cannot create cache dir $KF_CACHE"
	kf_need_pkgs "${KF_HOST_PKGS[@]}"
}

# The work tree is where the series is applied, edited and built from.
KF_WORK=${KFABRIC_WORK:-$KF_CACHE/work/linux}
KF_BRANCH=${KFABRIC_BRANCH:-kfabric}

# The submission is two series. The fixes (patches/fixes/, listed by
# patches/fixes/series) are changes to other subsystems' code that the main
# series needs; they go to the trees that own that code, so they must apply
# to the base by themselves. The main series (patches/, listed by `series`)
# applies on top of them. Both are quilt style: each series file names
# its patches relative to its own directory, in git am order.
KF_FIXES_DIR=$KF_TOP/patches/fixes

# kf_series_file FILE: the patch file names FILE lists, in order.
kf_series_file() {
	[ -f "$1" ] || return 0
	sed -e 's/#.*//' -e 's/[[:space:]]*$//' "$1" | grep -v '^$' || true
}

# kf_series_fixes: the fixes, relative to patches/fixes/.
kf_series_fixes() { kf_series_file "$KF_FIXES_DIR/series"; }

# kf_series_main: the main series, relative to patches/.
kf_series_main() { kf_series_file "$KF_TOP/series"; }

# kf_series_list: every patch, in the order they apply to the base (the
# fixes first), relative to patches/: "$KF_TOP/patches/$p" is each file.
kf_series_list() {
	kf_series_fixes | sed 's|^|fixes/|'
	kf_series_main
}
