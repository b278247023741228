# SPDX-License-Identifier: GPL-2.0
# The NTB provider's DMA path, in one guest whose two NTB ports are cabled
# to each other. The test device offers a memcpy DMA engine per port
# (ntb_hw_ivshmem dma_engine=1, copies by the CPU in a work item), and
# kfi_ntb copies large payloads into the outbound window with the engine
# of its own port:
# - the self-test runs over it, every byte checked, and both links count
#   DMA copies and no DMA error;
# - each engine fails descriptors on purpose (its debugfs knob): kfi_ntb
#   copies those with the CPU, the self-test still passes, and every
#   failure is counted once;
# - a port unbound and bound again under the provider: its engine goes
#   away and comes back, and the provider takes the new one.
KF_MODES="single"
PORT=18519
DBG=/sys/kernel/debug
NTB_P0=0000:00:05.0
NTB_P1=0000:00:06.0
DRV=/sys/bus/pci/drivers/ntb_hw_ivshmem
FAILS=5

# kfn_stat DEV COUNTER: one of kfi_ntb's counters for DEV.
kfn_stat() {
	sed -n "s/.* $2 \([0-9]*\).*/\1/p" "$DBG/kfi_ntb/$1/info"
}

# kfn_engine DEV: the name of DEV's DMA engine channel; fails the test when
# kfi_ntb does not use it.
kfn_engine() {
	local eng
	[ -f "$DBG/ntb_hw_ivshmem/$1/dma" ] || kf_fail "$1: the test device offers no DMA engine"
	eng=$(cut -d' ' -f1 "$DBG/ntb_hw_ivshmem/$1/dma")
	grep -qx "dma $eng" "$DBG/kfi_ntb/$1/info" ||
		kf_fail "$1: kfi_ntb does not use its port's engine $eng"
	echo "$eng"
}

test_single() {
	local dev errs old new
	kf_ntb_load dma_engine=1
	kf_ntb_wait $NTB_P0 up
	kf_ntb_wait $NTB_P1 up
	for dev in $NTB_P0 $NTB_P1; do
		echo "$dev: engine $(kfn_engine $dev)"
	done

	kf_selftest loop fabric=ntb addr=$NTB_P0 port=$PORT
	for dev in $NTB_P0 $NTB_P1; do
		cat "$DBG/ntb_hw_ivshmem/$dev/dma"
		[ "$(kfn_stat $dev dma_copies)" -gt 0 ] || kf_fail "$dev: no payload was copied by DMA"
		[ "$(kfn_stat $dev dma_errors)" -eq 0 ] || kf_fail "$dev: DMA copies failed"
	done

	# A faulty engine: the copies it fails are done by the CPU.
	for dev in $NTB_P0 $NTB_P1; do
		echo $FAILS >"$DBG/ntb_hw_ivshmem/$dev/dma"
	done
	kf_selftest loop fabric=ntb addr=$NTB_P0 port=$PORT tests=connect,sendrecv,rma_write sizes=1048576 iters=8
	for dev in $NTB_P0 $NTB_P1; do
		cat "$DBG/ntb_hw_ivshmem/$dev/dma"
		grep -q ' fail 0$' "$DBG/ntb_hw_ivshmem/$dev/dma" ||
			kf_fail "$dev: the engine did not get to fail $FAILS descriptors"
		errs=$(kfn_stat $dev dma_errors)
		[ "$errs" -eq $FAILS ] || kf_fail "$dev: kfi_ntb counted $errs DMA errors, not $FAILS"
	done

	# The engine goes with its port and comes back with it. The client's
	# port is rebound: its writes are what the engine copies.
	old=$(kfn_engine $NTB_P1)
	echo $NTB_P1 >"$DRV/unbind"
	kf_ntb_wait $NTB_P0 down
	[ ! -e "$DBG/ntb_hw_ivshmem/$NTB_P1" ] || kf_fail "the unbound port's debugfs stayed"
	echo $NTB_P1 >"$DRV/bind"
	kf_ntb_wait $NTB_P0 up
	kf_ntb_wait $NTB_P1 up
	new=$(kfn_engine $NTB_P1)
	echo "$NTB_P1: engine $old, after a rebind $new"
	kf_selftest loop fabric=ntb addr=$NTB_P0 port=$PORT tests=connect,rma_write,rma_read sizes=1048576
	[ "$(kfn_stat $NTB_P1 dma_copies)" -gt 0 ] || kf_fail "$NTB_P1: no DMA copy after the rebind"

	# The provider holds the engines' channels: it goes first.
	rmmod kfi_selftest
	rmmod kfi_ntb
	rmmod ntb_hw_ivshmem
}
