# SPDX-License-Identifier: GPL-2.0
# kf send: mail the series with b4 (Debian's b4 0.12), and its check.
#
# The series is applied onto the base in a work tree of its own under the
# cache, its commits are re-authored to whoever runs the tool (the patches
# in the repository carry a placeholder identity), and b4 prepares the
# branch there: enrolment, the cover letter from cover-letter.txt, the
# revision, and the recipients from get_maintainer.pl on the patched tree.
# "b4 send -o DIR" then writes the messages; they are checked with
# checkpatch.pl and only sent ("b4 send") when asked to with --confirm.
# Everything up to the messages works offline.
#
# b4 0.12 has no "b4 prep --check" (later versions run checkpatch.pl on
# the prepared patches); kf send runs checkpatch.pl on the messages b4
# wrote instead. b4 0.12 also addresses every message of a series to the
# union of the recipients of all its patches.

KF_SEND_PKGS=(b4)
KF_SEND_TREE=${KFABRIC_SEND_TREE:-$KF_CACHE/work/send}
KF_SEND_BRANCH=kfabric-send
KF_COVER=$KF_TOP/cover-letter.txt

# kf_git_cfg KEY VALUE: set a git configuration value for every git (and
# so every b4) run from here on, in this process and its children, above
# the user's own files, without writing any file (GIT_CONFIG_COUNT).
kf_git_cfg() {
	local n=${GIT_CONFIG_COUNT:-0}
	export "GIT_CONFIG_KEY_$n=$1" "GIT_CONFIG_VALUE_$n=$2"
	export GIT_CONFIG_COUNT=$((n + 1))
}

# kf_send_identity: KF_SEND_NAME and KF_SEND_EMAIL, the git identity of
# whoever runs the tool, as git sees it in the repository.
kf_send_identity() {
	KF_SEND_NAME=$(git -C "$KF_TOP" config user.name)
	KF_SEND_EMAIL=$(git -C "$KF_TOP" config user.email)
	if [ -z "$KF_SEND_NAME" ] || [ -z "$KF_SEND_EMAIL" ]; then
		kf_die "kf send mails the series as you: set git config user.name and user.email"
	fi
}

# kf_patch_author PATCH: "Name<TAB>email" of a patch file's From:.
kf_patch_author() {
	git mailinfo /dev/null /dev/null <"$1" |
		awk '/^Author: / { sub(/^Author: /, ""); n = $0 } /^Email: / { sub(/^Email: /, ""); e = $0 }
			END { printf "%s\t%s\n", n, e }'
}

# kf_send_revision: the revision to send: -v N, else the newest "Changes in
# vN:" heading of the cover letter, else 1. A revision above 1 must have
# its change log in the cover letter.
kf_send_revision() {
	local want=$1 newest
	newest=$(sed -n 's/^Changes in v\([0-9][0-9]*\):.*/\1/p' "$KF_COVER" | sort -n | tail -n 1)
	[ -n "$want" ] || want=${newest:-1}
	[[ $want =~ ^[1-9][0-9]*$ ]] || kf_die "kf send: -v takes a revision number, not '$want'"
	if ((want > 1)) && ! grep -q "^Changes in v$want:" "$KF_COVER"; then
		kf_die "kf send: revision $want needs a \"Changes in v$want:\" change log in $(basename "$KF_COVER")"
	fi
	echo "$want"
}

# kf_send_applied: print the tip of the series applied onto the base, as the
# patches are (their own identity). The test tree's branch is reused when
# its commits give back patches/ byte for byte (kf check and kf bisect left
# it so); otherwise the series is applied in the send tree.
kf_send_applied() {
	local -a list
	local fp
	mapfile -t list < <(kf_series_list)
	if [ -e "$KF_TEST_TREE/.git" ] &&
		[ "$(git -C "$KF_TEST_TREE" rev-parse --path-format=absolute --git-common-dir 2>/dev/null)" = "$KF_BASE_GIT" ] &&
		git -C "$KF_TEST_TREE" merge-base --is-ancestor "$KF_BASE_REV" "$KF_TEST_BRANCH" 2>/dev/null; then
		fp=$(mktemp -d)
		if git -C "$KF_TEST_TREE" format-patch -q --zero-commit --no-signature --no-numbered \
			-o "$fp" "$KF_BASE_REV..$KF_TEST_BRANCH" 2>/dev/null &&
			[ "$(cd "$fp" && ls -1)" = "$(printf '%s\n' "${list[@]}")" ] &&
			diff -rq "$fp" "$KF_TOP/patches" >/dev/null; then
			rm -rf "$fp"
			kf_log "reusing the series applied in $KF_TEST_TREE ($KF_TEST_BRANCH)"
			git -C "$KF_TEST_TREE" rev-parse "$KF_TEST_BRANCH"
			return 0
		fi
		rm -rf "$fp"
	fi
	kf_log "applying the series in $KF_SEND_TREE"
	(kf_apply_to "$KF_SEND_TREE" "$KF_SEND_BRANCH") >&2 || exit 1
	git -C "$KF_SEND_TREE" rev-parse HEAD
}

# kf_send_reauthor DIR TIP: print the tip of a copy of base..TIP whose
# commits are authored by the sender, with the sender's Signed-off-by in
# place of the original author's. Trees, dates and every other trailer are
# kept; no file is touched (git commit-tree).
kf_send_reauthor() {
	local dir=$1 tip=$2 parent=$KF_BASE_REV c an ae ad
	local new="Signed-off-by: $KF_SEND_NAME <$KF_SEND_EMAIL>"
	for c in $(git -C "$dir" rev-list --reverse "$KF_BASE_REV..$tip"); do
		IFS=$'\t' read -r an ae ad < <(git -C "$dir" show -s --format=$'%an\t%ae\t%ad' --date=raw "$c")
		# The message exactly as stored; the author's sign-off becomes
		# the sender's, at the same place, and is not doubled.
		parent=$(git -C "$dir" cat-file commit "$c" | sed '1,/^$/d' |
			awk -v old="Signed-off-by: $an <$ae>" -v new="$new" '
				$0 == old || $0 == new { if (!done++) print new; next }
				{ print }' |
			GIT_AUTHOR_NAME=$KF_SEND_NAME GIT_AUTHOR_EMAIL=$KF_SEND_EMAIL GIT_AUTHOR_DATE=$ad \
				GIT_COMMITTER_NAME=$KF_SEND_NAME GIT_COMMITTER_EMAIL=$KF_SEND_EMAIL \
				git -C "$dir" commit-tree "$c^{tree}" -p "$parent") ||
			kf_die "cannot re-author $(git -C "$dir" show -s --format=%s "$c")"
	done
	echo "$parent"
}

# kf_send_template FILE: b4's cover letter template. A base made from
# Debian's source package is a one-commit import whose id means nothing on
# the lists, so its "base-commit:" line says what the base is instead.
kf_send_template() {
	local base="base-commit: \${base_commit}"
	[ -n "${KFABRIC_KERNEL:-}" ] ||
		base="base: ${KF_BASE_DESC//\$/\$\$}, a one-commit import; the series targets mainline ${KFABRIC_REF:-v7.3}"
	cat >"$1" <<EOF
\${cover}

---
\${shortlog}

\${diffstat}
---
$base
change-id: \${change_id}

Best regards,
-- 
\${signature}
EOF
}

# kf_send_prepare REV: the send tree's branch holds the re-authored series
# and is enrolled with b4: cover letter, revision, To/Cc.
kf_send_prepare() {
	local rev=$1 applied tip work
	applied=$(kf_send_applied) || exit 1
	kf_worktree "$KF_SEND_TREE" "$KF_SEND_BRANCH"
	# b4 keeps a branch's prep state in the configuration: start afresh.
	git -C "$KF_SEND_TREE" config --remove-section "branch.$KF_SEND_BRANCH" 2>/dev/null
	git -C "$KF_SEND_TREE" branch -q -f "$KF_SEND_BRANCH-base" "$KF_BASE_REV"
	tip=$(kf_send_reauthor "$KF_SEND_TREE" "$applied") || exit 1
	git -C "$KF_SEND_TREE" reset -q --hard "$tip" || kf_die "cannot check out the series in $KF_SEND_TREE"

	work=$KF_SEND_WORK
	kf_send_template "$work/cover-template"
	# The cover letter lives in the branch description, which needs
	# neither a commit of its own nor git-filter-repo to edit it; b4
	# "edits" it with an editor that copies the repository's file.
	kf_git_cfg b4.prep-cover-strategy branch-description
	kf_git_cfg b4.prep-cover-template "$work/cover-template"
	kf_git_cfg core.editor "cp -- '$KF_COVER'"
	kf_git_cfg b4.send-auto-to-cmd "'$KF_TOP/scripts/lib/b4-get-maintainer' to '$work/get-maintainer'"
	kf_git_cfg b4.send-auto-cc-cmd "'$KF_TOP/scripts/lib/b4-get-maintainer' cc '$work/get-maintainer'"
	(
		cd "$KF_SEND_TREE" || exit 1
		b4 --offline-mode -n prep -e "$KF_SEND_BRANCH-base" &&
			b4 --offline-mode -n prep --edit-cover &&
			b4 --offline-mode -n prep --force-revision "$rev" &&
			b4 --offline-mode -n prep --auto-to-cc
	) || kf_die "b4 prep failed in $KF_SEND_TREE"
	local n
	n=$(git -C "$KF_SEND_TREE" rev-list --count "$KF_BASE_REV..HEAD")
	[ "$n" = "$(kf_series_list | wc -l)" ] || kf_die "the send branch has $n commits, the series $(kf_series_list | wc -l)"
}

# kf_send_checkpatch DIR: checkpatch.pl --strict on every patch message b4
# wrote into DIR (what "b4 prep --check" does in later b4 versions), in
# parallel as kf checkpatch does.
kf_send_checkpatch_one() {
	local out
	# shellcheck disable=SC2086
	out=$(cd "$KF_SEND_TREE" && perl scripts/checkpatch.pl -q --terse --no-summary \
		--strict --showfile $KF_SEND_CHECKPATCH_EXTRA "$1" 2>&1)
	[ -z "$out" ] && return 0
	printf '%s\n' "$out" >&2
	return 1
}

kf_send_checkpatch() {
	local dir=$1
	KF_SEND_CHECKPATCH_EXTRA="--ignore FILE_PATH_CHANGES"
	git -C "$KF_SEND_TREE" rev-parse -q --verify "$KF_BASE_REV^" >/dev/null ||
		KF_SEND_CHECKPATCH_EXTRA="$KF_SEND_CHECKPATCH_EXTRA --ignore UNKNOWN_COMMIT_ID"
	export KF_SEND_TREE KF_SEND_CHECKPATCH_EXTRA
	export -f kf_send_checkpatch_one
	# shellcheck disable=SC2016
	grep -l '^In-Reply-To:' "$dir"/*.eml | xargs -r -P "$KF_JOBS" -I{} \
		bash -c 'kf_send_checkpatch_one "$1"' _ {}
}

kf_cmd_send() {
	local out="" confirm="" check=1 want=""
	while [ $# -gt 0 ]; do
		case $1 in
		-o)
			[ $# -ge 2 ] || kf_die "kf send: -o needs a directory"
			out=$2
			shift
			;;
		-v)
			[ $# -ge 2 ] || kf_die "kf send: -v needs a revision"
			want=$2
			shift
			;;
		--confirm) confirm=1 ;;
		--no-checkpatch) check="" ;;
		*) kf_die "kf send: unknown argument '$1' ([-o DIR] [-v N] [--confirm] [--no-checkpatch])" ;;
		esac
		shift
	done
	[ -z "$out" ] || [ -z "$confirm" ] || kf_die "kf send: -o writes the messages, --confirm sends them; not both"
	kf_host_setup
	kf_need_pkgs "${KF_SEND_PKGS[@]}"
	[ -f "$KF_COVER" ] || kf_die "no cover letter at $KF_COVER"
	kf_send_identity
	local rev
	rev=$(kf_send_revision "$want") || exit 1
	kf_base_resolve
	kf_log "base: $KF_BASE_DESC"
	kf_log "sender: $KF_SEND_NAME <$KF_SEND_EMAIL>; revision $rev"

	KF_SEND_WORK=$(mktemp -d) || kf_die "cannot create a temporary directory"
	# shellcheck disable=SC2064
	trap "rm -rf '$KF_SEND_WORK'" EXIT
	kf_git_cfg user.name "$KF_SEND_NAME"
	kf_git_cfg user.email "$KF_SEND_EMAIL"
	# The identity the patches carry in the repository is a placeholder
	# (also named in MAINTAINERS.fragment): nothing is mailed to it.
	local placeholder
	placeholder=$(kf_patch_author "$KF_TOP/patches/$(kf_series_list | head -n 1)" | cut -f2)
	[ -z "$placeholder" ] || [ "$placeholder" = "$KF_SEND_EMAIL" ] ||
		kf_git_cfg b4.email-exclude "$placeholder"
	kf_send_prepare "$rev"

	local dir=${out:-$KF_SEND_WORK/messages}
	if [ -d "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
		kf_die "$dir is not empty"
	fi
	mkdir -p "$dir" || kf_die "cannot create $dir"
	# "b4 send -o" signs nothing and, with an SMTP server named, does not
	# pick the kernel.org web endpoint: no key and no network needed.
	(
		cd "$KF_SEND_TREE" || exit 1
		kf_git_cfg sendemail.smtpserver localhost
		b4 --offline-mode -n send -o "$dir" --no-sign
	) || kf_die "b4 send -o failed"
	local n
	n=$(find "$dir" -maxdepth 1 -name '*.eml' | wc -l)
	kf_log "b4 wrote $n messages into $dir"
	if [ -n "$check" ]; then
		kf_send_checkpatch "$dir" || kf_die "checkpatch.pl found problems in the messages (see above)"
		kf_log "checkpatch.pl --strict: every patch message is clean"
	fi
	[ -n "$out" ] && return 0
	if [ -z "$confirm" ]; then
		awk '/^(To|Cc):/ { p = 1 } /^[A-Za-z-]+:/ && !/^(To|Cc):/ { p = 0 } p' \
			"$(grep -L '^In-Reply-To:' "$dir"/*.eml | head -n 1)" >&2
		grep -h '^Subject:' "$dir"/*.eml | sort >&2
		kf_log "nothing sent: scripts/kf send --confirm sends these $n messages (-o DIR writes them)"
		return 0
	fi
	(cd "$KF_SEND_TREE" && b4 send) || kf_die "b4 send failed"
	kf_log "sent; b4 tagged the revision in $KF_SEND_TREE"
}
