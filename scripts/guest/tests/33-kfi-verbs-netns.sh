# SPDX-License-Identifier: GPL-2.0
# Network namespaces and source binding on the verbs provider. Two
# namespaces of their own, kfa and kfb, are joined by a veth pair with a
# Soft-RoCE device on each end; kfa's end has two addresses. The
# self-test's responder runs in kfb, its client in kfa, connecting from
# kfa's second address (src=): the connect test checks that the
# connection's local address is that one, and data moves both ways.
# Neither namespace's addresses exist in the initial one, so a responder
# started there must fail: endpoints and listeners live in the namespace
# of the task that asked for them, not in init_net.
KF_MODES="single"
PORT=18518
A1=10.99.0.1 A2=10.99.0.3 B=10.99.0.2
DIR=/sys/kernel/debug/kfi_selftest

# in_ns NS COMMAND...: a kfi_selftest command written by a task inside NS.
# The debugfs file is opened out here: `ip netns exec` mounts a /sys of
# the namespace's own, without debugfs.
in_ns() {
	local ns=$1 rc=0
	shift
	ip netns exec "$ns" sh -c 'echo "$*" >&3' sh "$@" 3>"$DIR/run" || rc=$?
	case "$1" in client) cat "$DIR/results" >>"$KF_KTAP_SUB" ;; esac
	[ "$rc" -eq 0 ] || kf_fail "kfi_selftest '$*' in $ns failed"
}

# Also on failure: a responder left running, or namespaces holding the
# Soft-RoCE devices, would break the tests after this one.
cleanup() {
	echo stop >"$DIR/run" 2>/dev/null || true
	rdma link delete kfrxa 2>/dev/null || true
	rdma link delete kfrxb 2>/dev/null || true
	ip netns del kfa 2>/dev/null || true
	ip netns del kfb 2>/dev/null || true
	rmmod kfi_selftest kfi_verbs 2>/dev/null || true
}

test_single() {
	local r=$DIR/results
	trap cleanup EXIT
	modprobe kfi_verbs
	modprobe kfi_selftest
	ip netns add kfa
	ip netns add kfb
	ip link add kfv0 type veth peer name kfv1
	ip link set kfv0 netns kfa
	ip link set kfv1 netns kfb
	ip -n kfa addr add $A1/24 dev kfv0
	ip -n kfa addr add $A2/24 dev kfv0
	ip -n kfb addr add $B/24 dev kfv1
	ip -n kfa link set lo up
	ip -n kfb link set lo up
	ip -n kfa link set kfv0 up
	ip -n kfb link set kfv1 up
	kf_rdma_link_add rxe kfv0 kfrxa kfa
	kf_rdma_link_add rxe kfv1 kfrxb kfb

	# The address is kfb's: the initial namespace cannot listen on it.
	if echo "serve fabric=verbs addr=$B port=$PORT" >"$DIR/run" 2>/dev/null; then
		echo stop >"$DIR/run"
		kf_fail "a responder in the initial namespace listened on kfb's $B"
	fi

	in_ns kfb serve fabric=verbs addr=$B port=$PORT
	in_ns kfa client fabric=verbs addr=$B port=$PORT src=$A2 \
		tests=connect,sendrecv,rma_write,rma_read sizes=64K
	grep -q "connected from $A2:[0-9]*\$" $r ||
		kf_fail "the client did not connect from $A2"
	echo stop >"$DIR/run"
	rdma link delete kfrxa
	rdma link delete kfrxb
	ip netns del kfa
	ip netns del kfb
	rmmod kfi_selftest kfi_verbs
}
