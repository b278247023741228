# SPDX-License-Identifier: GPL-2.0
# kf send: mail the series with b4 (Debian's b4 0.12), and its check.
#
# The series is applied onto the base in a work tree of its own under the
# cache, its commits are re-authored to whoever runs the tool (the patches
# in the repository carry a placeholder identity), and b4 prepares the
# branches there: enrolment, the cover letter, the revision, and the
# recipients from get_maintainer.pl on the patched tree. "b4 send -o DIR"
# then writes the messages; they are checked with checkpatch.pl and only
# sent ("b4 send") when asked to with --confirm. Everything up to the
# messages works offline.
#
# The fixes (patches/fixes/) and the main series are sent apart. Each fix
# is a message of its own, without a cover letter, on a branch of its own
# that holds the base and that fix alone: the fixes go to different trees
# (rdma, ntb, nvme), each maintainer takes a fix into a fixes branch on
# its own, and a fix that stands alone is what stable backports pick.
# One thread of them would also, with b4 0.12, address every fix to the
# union of all their maintainers and lists. The main series is one thread
# with the cover letter from cover-letter.txt, enrolled on top of the
# fixes, which it names as its prerequisites.
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
	local fp
	if [ -e "$KF_TEST_TREE/.git" ] &&
		[ "$(git -C "$KF_TEST_TREE" rev-parse --path-format=absolute --git-common-dir 2>/dev/null)" = "$KF_BASE_GIT" ] &&
		git -C "$KF_TEST_TREE" merge-base --is-ancestor "$KF_BASE_REV" "$KF_TEST_BRANCH" 2>/dev/null; then
		fp=$(mktemp -d)
		if kf_format_series "$KF_TEST_TREE" "$KF_TEST_BRANCH" "$(kf_series_fixes | wc -l)" "$fp" 2>/dev/null &&
			cmp -s "$fp/series" "$KF_TOP/series" &&
			diff -rq "$fp/patches" "$KF_TOP/patches" >/dev/null; then
			rm -rf "$fp"
			kf_log "reusing the series applied in $KF_TEST_TREE ($KF_TEST_BRANCH)"
			git -C "$KF_TEST_TREE" rev-parse "$KF_TEST_BRANCH"
			return 0
		fi
		rm -rf "$fp"
	fi
	kf_log "applying the series in $KF_SEND_TREE"
	(kf_apply_to "$KF_SEND_TREE" "$KF_SEND_BRANCH-applied") >&2 || exit 1
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

# kf_send_template FILE WHAT [PREREQ...]: b4's cover letter template for
# WHAT ("the series", "the fix"). A base made from Debian's source package
# is a one-commit import whose id means nothing on the lists, so its
# "base-commit:" line says what the base is instead. Otherwise the line
# names the base itself: b4 0.12's \${base_commit} is the parent of the
# commit a branch was enrolled at under the branch-description strategy,
# and the main series is enrolled at the fixes, which exist only here.
# The main series names the fixes it applies on top of as
# "prerequisite-patch-id:" lines (git patch-id --stable), as later b4
# versions do.
kf_send_template() {
	local out=$1 what=$2 base="base-commit: $KF_BASE_REV" pre
	shift 2
	[ -n "${KFABRIC_KERNEL:-}" ] ||
		base="base: ${KF_BASE_DESC//\$/\$\$}, a one-commit import; $what targets mainline ${KFABRIC_REF:-v7.3}"
	for pre in "$@"; do
		base="$base
prerequisite-patch-id: $pre"
	done
	cat >"$out" <<EOF
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

# kf_send_fix_cover FILE PATCH: the "cover letter" of a fix. b4 puts what
# it says below the fix's "---" line (a one-patch series has no cover
# letter), so it is a note to the maintainers, not part of the commit.
kf_send_fix_cover() {
	local subj
	subj=$(git mailinfo /dev/null /dev/null <"$2" | sed -n 's/^Subject: //p')
	cat >"$1" <<EOF
$subj

This fix stands alone: it applies to mainline ${KFABRIC_REF:-v7.3} without
any other patch. It came out of work on kfabric, a kernel fabric
interface for ULPs, which is posted separately and applies on top of it.
EOF
}

# kf_send_b4 BRANCH ARGS...: b4 ARGS on BRANCH of the send tree, with the
# cover letter template of that branch: a fix's, or the main series'.
kf_send_b4() {
	local branch=$1 template=$KF_SEND_WORK/cover-template
	shift
	[[ $branch != "$KF_SEND_BRANCH"-fix* ]] || template=$KF_SEND_WORK/fix-template
	git -C "$KF_SEND_TREE" checkout -q "$branch" || kf_die "cannot check out $branch in $KF_SEND_TREE"
	(
		kf_git_cfg b4.prep-cover-template "$template"
		cd "$KF_SEND_TREE" && b4 "$@"
	)
}

# kf_send_b4_prep BASE COVER REV: enrol the send tree's current branch
# with b4 at BASE, with the cover letter in file COVER, the revision and
# To/Cc from get_maintainer.pl.
kf_send_b4_prep() {
	local base=$1 cover=$2 rev=$3 branch
	branch=$(git -C "$KF_SEND_TREE" symbolic-ref --short HEAD) || kf_die "the send tree is on no branch"
	# b4 keeps a branch's prep state in the configuration: start afresh.
	git -C "$KF_SEND_TREE" config --remove-section "branch.$branch" 2>/dev/null
	(
		cd "$KF_SEND_TREE" || exit 1
		# b4 "edits" the cover letter with an editor that copies the
		# file.
		kf_git_cfg core.editor "cp -- '$cover'"
		b4 --offline-mode -n prep -e "$base" &&
			b4 --offline-mode -n prep --edit-cover &&
			b4 --offline-mode -n prep --force-revision "$rev" &&
			b4 --offline-mode -n prep --auto-to-cc
	) || kf_die "b4 prep failed in $KF_SEND_TREE ($branch)"
}

# kf_send_fix_branch I: the send tree's branch of fix I (from 1).
kf_send_fix_branch() { echo "$KF_SEND_BRANCH-fix$1"; }

# kf_send_prepare REV: the send tree's branch holds the re-authored series
# and is enrolled with b4: cover letter, revision, To/Cc.
kf_send_prepare() {
	local rev=$1 applied tip work fixtip i c
	local -a fixes commits prereqs=()
	applied=$(kf_send_applied) || exit 1
	kf_worktree "$KF_SEND_TREE" "$KF_SEND_BRANCH"
	git -C "$KF_SEND_TREE" branch -q -f "$KF_SEND_BRANCH-base" "$KF_BASE_REV"
	# The series as applied, for kf send-check (and kept from gc).
	git -C "$KF_SEND_TREE" branch -q -f "$KF_SEND_BRANCH-applied" "$applied"
	tip=$(kf_send_reauthor "$KF_SEND_TREE" "$applied") || exit 1
	mapfile -t fixes < <(kf_series_fixes)
	mapfile -t commits < <(git -C "$KF_SEND_TREE" rev-list --reverse "$KF_BASE_REV..$tip")
	fixtip=$KF_BASE_REV
	((${#fixes[@]} == 0)) || fixtip=${commits[$((${#fixes[@]} - 1))]}
	# The fixes as the main series finds them (kf send-check compares
	# the tree of the fixes' messages with it).
	git -C "$KF_SEND_TREE" branch -q -f "$KF_SEND_BRANCH-fixes" "$fixtip"

	work=$KF_SEND_WORK
	# The cover letter lives in the branch description, which needs
	# neither a commit of its own nor git-filter-repo to edit it.
	kf_git_cfg b4.prep-cover-strategy branch-description
	kf_git_cfg b4.send-auto-to-cmd "'$KF_TOP/scripts/lib/b4-get-maintainer' to '$work/get-maintainer'"
	kf_git_cfg b4.send-auto-cc-cmd "'$KF_TOP/scripts/lib/b4-get-maintainer' cc '$work/get-maintainer'"

	# Each fix on the base alone. A fix that needs an earlier one does
	# not stand alone, and the maintainer taking it could not apply it.
	kf_send_template "$work/fix-template" "the fix"
	for i in "${!fixes[@]}"; do
		c=${commits[$i]}
		git -C "$KF_SEND_TREE" checkout -q -f -B "$(kf_send_fix_branch $((i + 1)))" "$KF_BASE_REV" ||
			kf_die "cannot make a branch for fix $((i + 1)) in $KF_SEND_TREE"
		if ! git -C "$KF_SEND_TREE" cherry-pick "$c" >/dev/null 2>&1; then
			git -C "$KF_SEND_TREE" cherry-pick --abort >/dev/null 2>&1
			kf_die "fix $((i + 1)) (${fixes[$i]}) does not apply to the base by itself"
		fi
		kf_send_fix_cover "$work/fix-cover" "$KF_FIXES_DIR/${fixes[$i]}"
		kf_send_b4_prep "$KF_SEND_BRANCH-base" "$work/fix-cover" 1
		prereqs+=("$(git -C "$KF_SEND_TREE" show "$c" | git patch-id --stable | cut -d' ' -f1)")
	done

	git -C "$KF_SEND_TREE" checkout -q -f "$KF_SEND_BRANCH" &&
		git -C "$KF_SEND_TREE" reset -q --hard "$tip" || kf_die "cannot check out the series in $KF_SEND_TREE"
	kf_send_template "$work/cover-template" "the series" "${prereqs[@]}"
	kf_send_b4_prep "$KF_SEND_BRANCH-fixes" "$KF_COVER" "$rev"
	local n
	n=$(git -C "$KF_SEND_TREE" rev-list --count "$KF_SEND_BRANCH-fixes..HEAD")
	[ "$n" = "$(kf_series_main | wc -l)" ] || kf_die "the send branch has $n commits, the series $(kf_series_main | wc -l)"
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
	{
		grep -l '^In-Reply-To:' "$dir"/*.eml
		[ ! -d "$dir/fixes" ] || ls -1 "$dir"/fixes/*.eml
	} | xargs -r -P "$KF_JOBS" -I{} bash -c 'kf_send_checkpatch_one "$1"' _ {}
}

# kf_send_write DIR: the messages, written by "b4 send -o": each fix's
# into DIR/fixes/, named after its patch file, the main series' into DIR.
# "b4 send -o" signs nothing and, with an SMTP server named, does not
# pick the kernel.org web endpoint: no key and no network needed.
kf_send_write() {
	local dir=$1 i p one
	local -a fixes
	mapfile -t fixes < <(kf_series_fixes)
	kf_git_cfg sendemail.smtpserver localhost
	for i in "${!fixes[@]}"; do
		p=${fixes[$i]}
		one=$KF_SEND_WORK/fix-msg.$((i + 1))
		mkdir -p "$dir/fixes" "$one" || kf_die "cannot create $dir/fixes"
		kf_send_b4 "$(kf_send_fix_branch $((i + 1)))" --offline-mode -n send -o "$one" --no-sign ||
			kf_die "b4 send -o failed for fix $((i + 1)) ($p)"
		[ "$(ls -1 "$one" | wc -l)" = 1 ] || kf_die "b4 wrote $(ls -1 "$one" | wc -l) messages for fix $((i + 1))"
		mv "$one"/*.eml "$dir/fixes/${p%.patch}.eml" || kf_die "cannot move the message of fix $((i + 1))"
	done
	kf_send_b4 "$KF_SEND_BRANCH" --offline-mode -n send -o "$dir" --no-sign ||
		kf_die "b4 send -o failed"
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
	if [ -n "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
		kf_die "kf send: $out is not empty"
	fi
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
	mkdir -p "$dir" || kf_die "cannot create $dir"
	(kf_send_write "$dir") || exit 1
	local n nf
	n=$(find "$dir" -maxdepth 1 -name '*.eml' | wc -l)
	nf=$(find "$dir" -mindepth 2 -maxdepth 2 -path '*/fixes/*.eml' | wc -l)
	kf_log "b4 wrote $nf fixes into $dir/fixes and the $n messages of the series into $dir"
	if [ -n "$check" ]; then
		kf_send_checkpatch "$dir" || kf_die "checkpatch.pl found problems in the messages (see above)"
		kf_log "checkpatch.pl --strict: every patch message is clean"
	fi
	[ -n "$out" ] && return 0
	local f i
	if [ -z "$confirm" ]; then
		for f in "$dir"/fixes/*.eml "$(grep -L '^In-Reply-To:' "$dir"/*.eml | head -n 1)"; do
			[ -f "$f" ] || continue
			echo "== ${f#"$dir"/}" >&2
			awk '/^(To|Cc):/ { p = 1 } /^[A-Za-z-]+:/ && !/^(To|Cc):/ { p = 0 } p' "$f" >&2
		done
		# Subjects, unfolded.
		awk '/^Subject:/ { s = $0; f = 1; next } f && /^[ \t]/ { s = s $0; next }
			f { print s; f = 0 }' "$dir"/fixes/*.eml "$dir"/*.eml 2>/dev/null | sort >&2
		kf_log "nothing sent: scripts/kf send --confirm sends these $nf fixes, each on its own, and the $n messages of the series (-o DIR writes them)"
		return 0
	fi
	for ((i = 1; i <= nf; i++)); do
		kf_send_b4 "$(kf_send_fix_branch "$i")" send || kf_die "b4 send failed for fix $i"
	done
	kf_send_b4 "$KF_SEND_BRANCH" send || kf_die "b4 send failed"
	kf_log "sent; b4 tagged the revisions in $KF_SEND_TREE"
}

# kf send-check: the test command's check of kf send. It runs "kf send -o"
# into a temporary directory as a sender that is neither the machine's
# identity nor the patches' (so that re-authoring shows), and checks the
# messages: each fix a message of its own, answering none, to exactly
# what get_maintainer.pl names for it; a cover letter that names the
# fixes, and one message per patch of the main series, in order,
# threaded to the cover letter; From: and Signed-off-by: the sender's
# and no one else's; To/Cc holding what get_maintainer.pl, run here on
# each patch file as b4 runs it by default, names for that patch (the
# cover letter: for all of the main series), which puts each subsystem's
# patches before its list; each fix's message applying to the base by
# itself; and "git am" of all the messages, the fixes first, onto the
# base giving the tree the fixes give, then the tree the series gives.
# checkpatch is the checkpatch step's.
kf_cmd_send_check() {
	local out rc=0 name="kfabric send check" email="send-check@kfabric.invalid"
	SECONDS=0
	kf_base_resolve
	out=$(mktemp -d) || kf_die "cannot create a temporary directory"
	# shellcheck disable=SC2064
	trap "rm -rf '$out'" EXIT
	(
		kf_git_cfg user.name "$name"
		kf_git_cfg user.email "$email"
		kf_cmd_send --no-checkpatch -o "$out/msgs"
	) || kf_die "kf send -o failed"
	kf_log "kf send -o took ${SECONDS}s"
	kf_send_verify "$out/msgs" "$name" "$email" "$out" || rc=1
	kf_log "checked in ${SECONDS}s in all"
	((rc == 0)) || kf_die "the messages kf send wrote are not what the series and MAINTAINERS say"
	kf_log "kf send -o: $(kf_series_fixes | wc -l) fixes on their own, $(kf_series_main | wc -l) patches and a cover letter, threaded, from $name, To/Cc as get_maintainer.pl says, git am gives the fixes' and the series' trees"
}

# kf_send_headers DIR: one line per message: file, Message-Id, In-Reply-To,
# References, From address, From name, To addresses, Cc addresses (space
# separated), Signed-off-by lines (| separated), in-body From: lines, the
# Subject; separated by \037 (a tab would merge empty fields in read).
kf_send_headers() {
	python3 - "$1" <<'PYEOF'
import email, email.policy, email.utils, glob, os, re, sys
for f in sorted(glob.glob(os.path.join(sys.argv[1], '*.eml'))):
    with open(f, 'rb') as fh:
        m = email.message_from_binary_file(fh, policy=email.policy.default)
    def addrs(h):
        return ' '.join(a for _, a in email.utils.getaddresses([str(x) for x in m.get_all(h, [])]))
    fname, faddr = email.utils.parseaddr(str(m['From']))
    body = m.get_content()
    head = body.split('\n---\n', 1)[0]
    sobs = '|'.join(re.findall(r'^Signed-off-by: (.*)$', head, re.M))
    inbody = '|'.join(re.findall(r'^From: (.*)$', head, re.M))
    print('\x1f'.join([os.path.basename(f), str(m['Message-Id'] or ''), str(m['In-Reply-To'] or ''),
                     ' '.join(str(m['References'] or '').split()), faddr, fname,
                     addrs('To'), addrs('Cc'), sobs, inbody,
                     ' '.join(str(m['Subject']).split())]))
PYEOF
}

# kf_send_gm PATCH: "to ADDR" and "cc ADDR" lines, get_maintainer.pl's
# answer for a patch file with b4's default options: the lists are Cc
# (b4 runs it with --nom), everyone else To (--nol). One run with the
# roles shown answers both.
kf_send_gm() {
	(cd "$KF_SEND_TREE" && perl scripts/get_maintainer.pl --nogit --nogit-fallback \
		--nogit-chief-penguins "$1" 2>/dev/null) |
		python3 -c 'import email.utils, re, sys
for line in sys.stdin.read().splitlines():
    addr = email.utils.parseaddr(line.split(" (")[0] if "<" not in line else line[:line.index(">") + 1])[1]
    role = line[line.index(">") + 1:] if "<" in line else line[len(line.split(" (")[0]):]
    print("cc" if re.match(r" \((open|moderated|subscriber) list", role) else "to", addr)'
}

# kf_send_verify_msg WHAT PATCH LINE: the checks every patch message gets,
# a fix's or the series': subject that of patches/PATCH, From: and the
# only Signed-off-by: the sender's, no in-body From:, To/Cc holding what
# get_maintainer.pl names for the patch and the list of its subsystem,
# nothing to the placeholder. LINE is the message's kf_send_headers line;
# the rest comes from kf_send_verify's locals. Sets bad on a failure.
kf_send_verify_msg() {
	local what=$1 p=$2 s ps want_to want_cc a list_want
	local -a f
	IFS=$'\037' read -r -a f <<<"$3"
	ps=$(git mailinfo /dev/null /dev/null <"$KF_TOP/patches/$p" | sed -n 's/^Subject: //p')
	s=${f[10]#*] }
	[ "$s" = "$ps" ] || { kf_warn "$what is '$s', its patch '$ps'"; bad=1; }
	if [ "${f[4]}" != "$email" ] || [ "${f[5]}" != "$name" ]; then
		kf_warn "$what is from ${f[5]} <${f[4]}>"
		bad=1
	fi
	[ "${f[8]}" = "$name <$email>" ] ||
		{ kf_warn "$what signed off by '${f[8]}'"; bad=1; }
	[ -z "${f[9]}" ] || { kf_warn "$what has an in-body From: ${f[9]}"; bad=1; }
	want_to=$(awk -v x="$placeholder" '$1 == "to" && $2 != x { print $2 }' "$tmp/gm/$p")
	want_cc=$(awk -v x="$placeholder" '$1 == "cc" && $2 != x { print $2 }' "$tmp/gm/$p")
	for a in $want_to; do
		[[ " ${f[6]} " == *" $a "* ]] || { kf_warn "$what: $a not in To"; bad=1; }
	done
	for a in $want_cc; do
		[[ " ${f[7]} " == *" $a "* ]] || [[ " ${f[6]} " == *" $a "* ]] ||
			{ kf_warn "$what: $a not in Cc"; bad=1; }
	done
	[[ " ${f[6]} ${f[7]} " == *" $placeholder "* ]] &&
		{ kf_warn "$what is addressed to the placeholder $placeholder"; bad=1; }
	case $s in
	RDMA/* | "Documentation: kfabric:"*) list_want=$l_rdma ;;
	nvme*) list_want=$l_nvme ;;
	NTB* | ntb*) list_want=$l_ntb ;;
	*) list_want="" ;;
	esac
	if [ -n "$list_want" ] && ! grep -qx "cc $list_want" "$tmp/gm/$p"; then
		kf_warn "get_maintainer.pl does not name $list_want for $what ($s)"
		bad=1
	fi
	[ -z "$list_want" ] || [[ " ${f[7]} " == *" $list_want "* ]] ||
		{ kf_warn "$what ($s) does not go to $list_want"; bad=1; }
	return 0
}

# kf_send_verify DIR NAME EMAIL TMP: the checks of kf send-check.
kf_send_verify() {
	local dir=$1 name=$2 email=$3 tmp=$4 bad=0 i n nf cover line p
	local -a list fixes hdr f
	mapfile -t list < <(kf_series_main)
	mapfile -t fixes < <(kf_series_fixes)
	n=${#list[@]}
	nf=${#fixes[@]}
	kf_send_headers "$dir" >"$tmp/headers" || kf_die "cannot parse the messages in $dir"
	[ "$(wc -l <"$tmp/headers")" = $((n + 1)) ] ||
		{ kf_warn "$(wc -l <"$tmp/headers") messages for a series of $n patches"; return 1; }
	if ((nf > 0)); then
		kf_send_headers "$dir/fixes" >"$tmp/fix-headers" || kf_die "cannot parse the messages in $dir/fixes"
		[ "$(wc -l <"$tmp/fix-headers")" = "$nf" ] ||
			{ kf_warn "$(wc -l <"$tmp/fix-headers") messages in $dir/fixes for $nf fixes"; return 1; }
	elif [ -e "$dir/fixes" ]; then
		kf_warn "messages in $dir/fixes, but there is no fixes series"
		return 1
	fi
	# The cover letter: the one message that answers none, "0/N".
	cover=$(awk -F'\037' '$3 == ""' "$tmp/headers")
	[ "$(printf '%s\n' "$cover" | grep -c .)" = 1 ] || { kf_warn "not exactly one cover letter"; return 1; }
	IFS=$'\037' read -r -a hdr <<<"$cover"
	local cid=${hdr[1]} subj
	subj=$(sed -e '/^#/d' -e '/^[[:space:]]*$/d' "$KF_COVER" | head -n 1)
	if ! [[ ${hdr[10]} =~ ^\[PATCH(\ v[0-9]+)?\ 0+/$n\]\ (.*)$ ]] ||
		[ "${BASH_REMATCH[2]}" != "$subj" ]; then
		kf_warn "cover letter subject '${hdr[10]}', expected [PATCH 0/$n] $subj"
		bad=1
	fi

	# get_maintainer.pl on each patch file of both series, in parallel.
	mkdir -p "$tmp/gm/fixes"
	export -f kf_send_gm
	export KF_SEND_TREE
	# shellcheck disable=SC2016
	kf_series_list | xargs -P "$KF_JOBS" -I{} bash -c \
		'kf_send_gm "$1/patches/$2" >"$3/gm/$2"' _ "$KF_TOP" {} "$tmp" ||
		kf_die "get_maintainer.pl failed"
	local placeholder
	placeholder=$(kf_patch_author "$KF_TOP/patches/$(kf_series_list | head -n 1)" | cut -f2)
	# The lists each subsystem's patches must reach: the kfabric and
	# kfabric NVMe entries of MAINTAINERS.fragment, and the base's NTB
	# entry.
	local l_rdma l_nvme l_ntb
	l_rdma=$(awk '/^KFABRIC KERNEL FABRIC INTERFACE$/ { s = 1 } s && /^L:/ { print $2; exit }' "$KF_TOP/MAINTAINERS.fragment")
	l_nvme=$(awk '/^NVM EXPRESS KFABRIC TRANSPORT DRIVERS$/ { s = 1 } s && /^L:/ { print $2; exit }' "$KF_TOP/MAINTAINERS.fragment")
	l_ntb=$(git -C "$KF_SEND_TREE" show "$KF_BASE_REV:MAINTAINERS" |
		awk '/^NTB DRIVER CORE$/ { s = 1 } s && /^L:/ { print $2; exit }')
	if [ -z "$l_rdma" ] || [ -z "$l_nvme" ] || [ -z "$l_ntb" ]; then
		kf_die "cannot find the RDMA, NVMe and NTB lists in MAINTAINERS"
	fi

	# Each fix: a message of its own, answering none, "[PATCH]" without
	# a number, to exactly what get_maintainer.pl names for it (and the
	# sender, whom b4 copies), not to the union of all fixes.
	local -a fixmsgs=()
	local got want
	for ((i = 1; i <= nf; i++)); do
		p=${fixes[$((i - 1))]}
		line=$(awk -F'\037' -v m="${p%.patch}.eml" '$1 == m' "$tmp/fix-headers")
		[ -n "$line" ] || { kf_warn "no message for fix $i ($p)"; bad=1; continue; }
		IFS=$'\037' read -r -a f <<<"$line"
		fixmsgs+=("$dir/fixes/${f[0]}")
		[[ ${f[10]} =~ ^\[PATCH(\ v[0-9]+)?\]\  ]] ||
			{ kf_warn "fix $i is '${f[10]}', not a patch of its own"; bad=1; }
		[ -z "${f[2]}" ] && [ -z "${f[3]}" ] ||
			{ kf_warn "fix $i answers another message (${f[2]} ${f[3]})"; bad=1; }
		kf_send_verify_msg "fix $i" "fixes/$p" "$line"
		# shellcheck disable=SC2086 # one address a line
		got=$(printf '%s\n' ${f[6]} ${f[7]} | grep -vxF "$email" | sort -u)
		want=$(awk -v x="$placeholder" '$2 != x { print $2 }' "$tmp/gm/fixes/$p" | grep -vxF "$email" | sort -u)
		[ "$got" = "$want" ] ||
			{ kf_warn "fix $i recipients differ from get_maintainer.pl's: $(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | tr '\n' ' ')"; bad=1; }
	done

	# The series: one message per patch, in order, each answering the
	# cover letter.
	local -a msgs=()
	for ((i = 1; i <= n; i++)); do
		p=${list[$((i - 1))]}
		line=$(awk -F'\037' -v re="^\\\\[PATCH( v[0-9]+)? 0*$i/$n\\\\] " '$11 ~ re' "$tmp/headers")
		[ "$(printf '%s\n' "$line" | grep -c .)" = 1 ] || { kf_warn "no single message for patch $i/$n"; bad=1; continue; }
		IFS=$'\037' read -r -a f <<<"$line"
		msgs+=("$dir/${f[0]}")
		if [ "${f[2]}" != "$cid" ] || [[ " ${f[3]} " != *" $cid "* ]]; then
			kf_warn "message $i/$n is not threaded to the cover letter"
			bad=1
		fi
		kf_send_verify_msg "message $i/$n" "$p" "$line"
	done
	# The cover letter goes to every address named for any patch of the
	# series (not the fixes), and to no one else but the sender (b4
	# copies whoever signed off).
	local wantall
	got=$(printf '%s\n' "${hdr[6]} ${hdr[7]}" | tr ' ' '\n' | sed '/^$/d' | sort -u)
	wantall=$({ awk -v x="$placeholder" '$2 != x { print $2 }' "$tmp"/gm/*.patch; echo "$email"; } | sort -u)
	[ "$got" = "$wantall" ] ||
		{ kf_warn "cover letter recipients differ from get_maintainer.pl's: $(diff <(echo "$wantall") <(echo "$got") | grep '^[<>]' | tr '\n' ' ')"; bad=1; }
	# It says that the series applies on top of the fixes, naming each.
	local body fs
	body=$(python3 -c 'import email, email.policy, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
print(" ".join(m.get_content().split()))' "$dir/${hdr[0]}") || kf_die "cannot read the cover letter"
	for p in "${fixes[@]}"; do
		fs=$(git mailinfo /dev/null /dev/null <"$KF_FIXES_DIR/$p" | sed -n 's/^Subject: //p')
		[[ $body == *"$fs"* ]] || { kf_warn "the cover letter does not name the fix '$fs'"; bad=1; }
	done

	# git am of each fix's message alone onto the base; then of all the
	# messages in order, the fixes first: the fixes' tree, then the
	# series' tree.
	local want_tree got_tree fix_tree
	want_tree=$(git -C "$KF_SEND_TREE" rev-parse "$KF_SEND_BRANCH^{tree}")
	fix_tree=$(git -C "$KF_SEND_TREE" rev-parse "$KF_SEND_BRANCH-fixes^{tree}")
	local am=(git -C "$KF_SEND_TREE" -c user.name="$name" -c user.email="$email" am -q --whitespace=nowarn)
	for ((i = 1; i <= ${#fixmsgs[@]}; i++)); do
		git -C "$KF_SEND_TREE" checkout -q -f --detach "$KF_BASE_REV" || kf_die "cannot check out the base"
		if ! "${am[@]}" "${fixmsgs[$((i - 1))]}" >"$tmp/am.log" 2>&1; then
			git -C "$KF_SEND_TREE" am --abort >/dev/null 2>&1
			kf_warn "fix $i does not apply to the base by itself: $(grep -m1 -E '^(error|fatal|Patch failed)' "$tmp/am.log")"
			bad=1
		fi
	done
	git -C "$KF_SEND_TREE" checkout -q -f --detach "$KF_BASE_REV" || kf_die "cannot check out the base"
	if ((${#fixmsgs[@]} == 0)) || "${am[@]}" "${fixmsgs[@]}" >"$tmp/am.log" 2>&1; then
		got_tree=$(git -C "$KF_SEND_TREE" rev-parse "HEAD^{tree}")
		[ "$got_tree" = "$fix_tree" ] || { kf_warn "git am of the fixes' messages gives tree $got_tree, the fixes $fix_tree"; bad=1; }
		if "${am[@]}" "${msgs[@]}" >"$tmp/am.log" 2>&1; then
			got_tree=$(git -C "$KF_SEND_TREE" rev-parse "HEAD^{tree}")
			[ "$got_tree" = "$want_tree" ] || { kf_warn "git am of the messages gives tree $got_tree, the series $want_tree"; bad=1; }
			[ "$(git -C "$KF_SEND_TREE" log --format='%an <%ae>' "$KF_BASE_REV..HEAD" | sort -u)" = "$name <$email>" ] ||
				{ kf_warn "git am of the messages gives other authors than $name <$email>"; bad=1; }
		else
			git -C "$KF_SEND_TREE" am --abort >/dev/null 2>&1
			kf_warn "git am of the series' messages on the fixes failed: $(grep -m1 -E '^(error|fatal|Patch failed)' "$tmp/am.log")"
			bad=1
		fi
	else
		git -C "$KF_SEND_TREE" am --abort >/dev/null 2>&1
		kf_warn "git am of the fixes' messages failed: $(grep -m1 -E '^(error|fatal|Patch failed)' "$tmp/am.log")"
		bad=1
	fi
	git -C "$KF_SEND_TREE" checkout -q -f "$KF_SEND_BRANCH"
	# The series' tree is the one applying patches/ gives, whoever sends.
	[ "$want_tree" = "$(git -C "$KF_SEND_TREE" rev-parse "$KF_SEND_BRANCH-applied^{tree}")" ] ||
		{ kf_warn "the send branch's tree is not the series' tree"; bad=1; }
	return $bad
}
