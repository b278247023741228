// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric over NTB: the data path.
 *
 * The post operations only queue: they fill a slot of the endpoint's send
 * or receive queue and kick the link's data worker. The worker, a work
 * item that runs under the link's mutex, does everything else for every
 * endpoint of the link: it consumes the descriptors the peer wrote into
 * the endpoint's channel, transmits queued operations into the peer's
 * channel in chunks that fit the peer's staging area, and completes
 * operations in order. Because only the worker (or a drain, once the
 * endpoint has left the worker's list) touches the queued operations, no
 * buffer is accessed after its operation completed.
 *
 * A descriptor is trusted for nothing: the worker copies it out of the
 * ring before looking at it, checks its payload against the staging area,
 * and checks every remote access with kfi_mr_check() under the lock that
 * guards the regions' mappings, holding that lock across the copy. A
 * descriptor that breaks the protocol fails its endpoint; one that asks
 * for an access the region does not grant is refused with a NAK.
 */
#include <linux/cpumask.h>
#include <linux/dma-mapping.h>
#include <linux/dmaengine.h>
#include <linux/highmem.h>
#include <linux/ktime.h>
#include <linux/random.h>
#include <linux/slab.h>

#include "kfi_ntb.h"

/* Bytes of payload one endpoint moves per pass of the worker. */
#define KFN_TX_BUDGET		SZ_1M

/* Copies at least this long go to the DMA engine, if there is one. */
#define KFN_DMA_MIN		SZ_16K
/*
 * A payload piece of at least this much is announced to the peer at once
 * rather than at the end of the worker's pass, and so is our taking one:
 * the peer copies a piece out while we copy the next one in, and frees
 * its staging area for the next as soon as it can, so the two copies of
 * a transfer overlap when the two sides run on different CPUs.
 */
#define KFN_DB_EARLY		SZ_32K

/**
 * kfn_set_state() - change an endpoint's state
 * @kep: the endpoint
 * @state: the new state
 *
 * Under the link's mutex; the post operations read the state under the
 * endpoint's lock.
 */
void kfn_set_state(struct kfn_ep *kep, enum kfn_ep_state state)
{
	unsigned long flags;

	lockdep_assert_held(&kep->link->mutex);
	spin_lock_irqsave(&kep->lock, flags);
	kep->state = state;
	spin_unlock_irqrestore(&kep->lock, flags);
}

static enum kfn_ep_state kfn_state(struct kfn_ep *kep)
{
	unsigned long flags;
	enum kfn_ep_state state;

	spin_lock_irqsave(&kep->lock, flags);
	state = kep->state;
	spin_unlock_irqrestore(&kep->lock, flags);
	return state;
}

/* Our completion wrapper: frees the slot, then calls the ULP. */
static void kfn_op_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct kfn_op *op = container_of(wc->cqe, struct kfn_op, cqe);
	struct kfi_cqe *ulp = op->ulp_cqe;
	unsigned long flags;

	spin_lock_irqsave(&op->kep->lock, flags);
	op->busy = false;
	spin_unlock_irqrestore(&op->kep->lock, flags);
	wc->cqe = ulp;
	ulp->done(cq, wc);
}

static void kfn_push(struct kfn_op *op, struct kfi_cq *cq, int status,
		     u32 byte_len)
{
	struct kfi_wc wc = {
		.cqe = &op->cqe,
		.ep = &op->kep->ep,
		.status = status,
		.opcode = op->opcode,
	};

	if (op->opcode == KFI_WC_RECV && !status) {
		wc.flags = op->wc_flags;
		wc.byte_len = byte_len;
		wc.imm_data = op->imm;
		wc.inv_key = op->inv_key;
	}
	op->cqe.done = kfn_op_done;
	WARN_ON_ONCE(kfi_cq_sw_push(cq, &wc));
}

static bool kfn_flushing(enum kfn_ep_state state)
{
	return state == KFN_EP_ERROR || state == KFN_EP_DISCONNECTED ||
	       state == KFN_EP_DEAD;
}

static bool kfn_op_finished(struct kfn_ep *kep, struct kfn_op *op, bool flush)
{
	if (op->done)
		return true;
	if (op->sent && (op->opcode == KFI_WC_SEND || op->opcode == KFI_WC_WRITE) &&
	    (s32)(kep->tx_acked - op->last) >= 0)
		return true;
	if (!flush)
		return false;
	if (!op->status)
		op->status = -ECANCELED;
	op->done = true;
	return true;
}

/* Complete send-side operations, in posting order. */
static void kfn_sq_sweep(struct kfn_ep *kep)
{
	unsigned long flags;
	struct kfn_op *op;
	int status;

	for (;;) {
		spin_lock_irqsave(&kep->lock, flags);
		if (kep->sq_head == kep->sq_tail) {
			spin_unlock_irqrestore(&kep->lock, flags);
			return;
		}
		op = &kep->sq[kep->sq_head % kep->nsq];
		if (!kfn_op_finished(kep, op, kfn_flushing(kep->state))) {
			spin_unlock_irqrestore(&kep->lock, flags);
			return;
		}
		kep->sq_head++;
		if ((s32)(kep->sq_tx - kep->sq_head) < 0)
			kep->sq_tx = kep->sq_head;
		status = op->status;
		if (!op->ulp_cqe || (!status && (op->flags & KFI_UNSIGNALED))) {
			op->busy = false;
			spin_unlock_irqrestore(&kep->lock, flags);
			continue;
		}
		spin_unlock_irqrestore(&kep->lock, flags);
		kfn_push(op, kep->ep.attr.send_cq, status, 0);
	}
}

/* The receive a send lands in, or NULL. */
static struct kfn_op *kfn_rq_head(struct kfn_ep *kep)
{
	struct kfn_op *op = NULL;
	unsigned long flags;

	spin_lock_irqsave(&kep->lock, flags);
	if (kep->rq_head != kep->rq_tail)
		op = &kep->rq[kep->rq_head % kep->nrq];
	spin_unlock_irqrestore(&kep->lock, flags);
	return op;
}

static void kfn_rq_complete(struct kfn_ep *kep, int status, u32 byte_len)
{
	unsigned long flags;
	struct kfn_op *op;

	spin_lock_irqsave(&kep->lock, flags);
	op = &kep->rq[kep->rq_head % kep->nrq];
	kep->rq_head++;
	spin_unlock_irqrestore(&kep->lock, flags);
	kfn_push(op, kep->ep.attr.recv_cq, status, byte_len);
}

static void kfn_rq_flush(struct kfn_ep *kep)
{
	kep->rx_msg = false;
	while (kfn_rq_head(kep))
		kfn_rq_complete(kep, -ECANCELED, 0);
}

/**
 * kfn_ep_flush() - complete what an endpoint that left the link has queued
 * @kep: the endpoint, in a final state and no longer on the link's list
 */
void kfn_ep_flush(struct kfn_ep *kep)
{
	kfn_sq_sweep(kep);
	kfn_rq_flush(kep);
}

/*
 * Copy a physically contiguous piece into the outbound window with the
 * CPU, a page at a time.
 */
static void kfn_copy_bv(void __iomem *dst, const struct bio_vec *bv)
{
	u32 done = 0, pos, off, n;
	void *src;

	while (done < bv->bv_len) {
		pos = bv->bv_offset + done;
		off = pos & ~PAGE_MASK;
		n = min_t(u32, bv->bv_len - done, PAGE_SIZE - off);
		src = kmap_local_page(bv->bv_page + (pos >> PAGE_SHIFT));
		memcpy_toio(dst + done, src + off, n);
		kunmap_local(src);
		done += n;
	}
}

/*
 * Copy bytes @skip.. of a buffer: into it from @src, in our inbound
 * buffer, or when @src is NULL out of it to @dst, in the outbound window.
 */
static int kfn_iov_xfer(const struct kfi_iov *iov, u64 skip, const void *src,
			void __iomem *dst, u64 len)
{
	struct kfi_iov_iter it;
	struct kfi_iov sub;
	struct bio_vec bv;

	if (src)
		return kfi_iov_copy(iov, skip, (void *)src, len, true);
	if (skip > iov->len || len > iov->len - skip)
		return -EINVAL;
	sub = *iov;
	sub.offset += skip;
	sub.len = len;
	if (kfi_iov_iter_init(&it, &sub))
		return -EINVAL;
	while (kfi_iov_iter_next(&it, &bv, 0)) {
		kfn_copy_bv(dst, &bv);
		dst += bv.bv_len;
	}
	return it.left ? -EINVAL : 0;
}

/* Copy into or out of a range of a local memory region, as kfn_iov_xfer(). */
static int kfn_mr_local_copy(struct kfn_link *link, const struct kfi_iov *iov,
			     u64 pos, const void *src, void __iomem *dst,
			     u64 len)
{
	struct kfn_mr *km = to_kfn_mr(iov->mr);
	unsigned long flags;
	struct kfi_iov r;
	int ret = -EFAULT;

	spin_lock_irqsave(&link->mr_lock, flags);
	if (km->mr.length && iov->offset <= km->mr.length &&
	    iov->len <= km->mr.length - iov->offset) {
		r = km->iov;
		r.offset += iov->offset;
		r.len = iov->len;
		ret = kfn_iov_xfer(&r, pos, src, dst, len);
	}
	spin_unlock_irqrestore(&link->mr_lock, flags);
	return ret;
}

/* Copy bytes @pos.. of an operation's buffers, as kfn_iov_xfer(). */
static int kfn_op_copy(struct kfn_link *link, const struct kfn_op *op, u64 pos,
		       const void *src, void __iomem *dst, u64 len)
{
	const struct kfi_iov *iov;
	u32 i;
	u64 n;
	int ret;

	for (i = 0; i < op->niov && len; i++) {
		iov = &op->iov[i];
		if (pos >= iov->len) {
			pos -= iov->len;
			continue;
		}
		n = min(len, iov->len - pos);
		if (iov->type == KFI_IOV_MR)
			ret = kfn_mr_local_copy(link, iov, pos, src, dst, n);
		else
			ret = kfn_iov_xfer(iov, pos, src, dst, n);
		if (ret)
			return -EFAULT;
		if (src)
			src += n;
		else
			dst += n;
		len -= n;
		pos = 0;
	}
	return len ? -EFAULT : 0;
}

/*
 * A peer's access to one of our regions: the key is looked up, the range
 * checked and the data copied under mr_lock, the lock under which the
 * mapping changes and the region is erased, so the region can be neither
 * unmapped nor freed during the copy. A write copies from @src; a read
 * copies to @dst, or with @dst NULL only checks.
 */
static int kfn_mr_access(struct kfn_link *link, u64 key, u64 addr, u32 len,
			 const void *src, void __iomem *dst)
{
	unsigned long flags;
	struct kfn_mr *km;
	u64 off;
	int ret;

	spin_lock_irqsave(&link->mr_lock, flags);
	km = xa_load(&link->mrs, key >> KFN_MR_GEN_BITS);
	/* Mapped in an earlier session: not for this peer. */
	if (km && km->epoch != link->mr_epoch)
		km = NULL;
	ret = kfi_mr_check(km ? &km->mr : NULL, key, addr, len,
			   src ? KFI_ACCESS_REMOTE_WRITE : KFI_ACCESS_REMOTE_READ,
			   &off);
	if (!ret && (src || dst) && len)
		ret = kfn_iov_xfer(&km->iov, off, src, dst, len) ? -EACCES : 0;
	spin_unlock_irqrestore(&link->mr_lock, flags);
	return ret;
}

/* A peer's KFI_SEND_INV. */
static int kfn_remote_inv(struct kfn_link *link, u64 key)
{
	unsigned long flags;
	struct kfn_mr *km;
	int ret = -EINVAL;

	spin_lock_irqsave(&link->mr_lock, flags);
	km = xa_load(&link->mrs, key >> KFN_MR_GEN_BITS);
	if (km && km->mr.key == key && km->mr.length &&
	    km->epoch == link->mr_epoch) {
		km->mr.length = 0;
		km->mr.access = 0;
		ret = 0;
	}
	spin_unlock_irqrestore(&link->mr_lock, flags);
	return ret;
}

static int kfn_errno(u8 status)
{
	switch (status) {
	case KFN_ST_ACCESS:
		return -EACCES;
	case KFN_ST_MSGSIZE:
		return -EMSGSIZE;
	default:
		return -EREMOTEIO;
	}
}

static u8 kfn_wire_status(int err)
{
	switch (err) {
	case -EACCES:
		return KFN_ST_ACCESS;
	case -EMSGSIZE:
		return KFN_ST_MSGSIZE;
	default:
		return KFN_ST_REMOTE;
	}
}

/* The peer consumed our descriptors up to position @v. */
static int kfn_ack(struct kfn_ep *kep, u32 v)
{
	if (v - kep->tx_acked > kep->tx_prod - kep->tx_acked)
		return -EPROTO;
	while (kep->tx_acked != v) {
		kep->stage_used -= kep->stage_cost[kep->tx_acked % KFN_RING];
		kep->tx_acked++;
	}
	return 0;
}

static struct kfn_hdr *kfn_in_hdr(struct kfn_ep *kep)
{
	return kfn_in_chan(kep->link, kep->lc);
}

/* Send-side operations that are on the wire: sq_head up to sq_tx. */
static struct kfn_op *kfn_sq_find(struct kfn_ep *kep,
				  bool (*match)(struct kfn_op *op, u32 arg),
				  u32 arg)
{
	struct kfn_op *op;
	u32 i;

	for (i = kep->sq_head; i != kep->sq_tx; i++) {
		op = &kep->sq[i % kep->nsq];
		if (match(op, arg))
			return op;
	}
	return NULL;
}

static bool kfn_is_pending_read(struct kfn_op *op, u32 arg)
{
	return op->opcode == KFI_WC_READ && op->sent && !op->done;
}

static bool kfn_holds_desc(struct kfn_op *op, u32 pos)
{
	return !op->done && (op->opcode == KFI_WC_SEND ||
			     op->opcode == KFI_WC_WRITE ||
			     op->opcode == KFI_WC_READ) &&
	       pos - op->first < op->last - op->first;
}

static int kfn_rx_send(struct kfn_ep *kep, const struct kfn_desc *d,
		       const void *src, u32 len)
{
	bool first = d->flags & KFN_DF_FIRST;
	struct kfn_op *rop;
	u64 key;

	if (first == kep->rx_msg)
		return -EPROTO;
	rop = kfn_rq_head(kep);
	if (!rop)
		return 1;	/* no receive yet: wait for one */
	if (first) {
		rop->pos = 0;
		rop->wc_flags = 0;
		rop->imm = 0;
		rop->inv_key = 0;
		kep->rx_msg = true;
	}
	if (len > rop->len - rop->pos) {
		kep->rx_msg = false;
		kfn_rq_complete(kep, -EMSGSIZE, 0);
		return -EMSGSIZE;
	}
	if (len && kfn_op_copy(kep->link, rop, rop->pos, src, NULL, len)) {
		kep->rx_msg = false;
		kfn_rq_complete(kep, -EFAULT, 0);
		return -EREMOTEIO;
	}
	rop->pos += len;
	if (!(d->flags & KFN_DF_LAST))
		return 0;
	kep->rx_msg = false;
	if (d->flags & KFN_DF_IMM) {
		rop->wc_flags |= KFI_WC_IMM;
		rop->imm = le32_to_cpu(d->imm);
	}
	if (d->flags & KFN_DF_INV) {
		key = le64_to_cpu(d->inv_key);
		if (kfn_remote_inv(kep->link, key)) {
			kfn_rq_complete(kep, -EREMOTEIO, 0);
			return -EREMOTEIO;
		}
		rop->wc_flags |= KFI_WC_INV;
		rop->inv_key = key;
	}
	kfn_rq_complete(kep, 0, rop->pos);
	return 0;
}

static int kfn_rx_write(struct kfn_ep *kep, const struct kfn_desc *d,
			const void *src, u32 len)
{
	bool last = d->flags & KFN_DF_LAST;
	bool imm = last && (d->flags & KFN_DF_IMM);
	/* Of the whole write, once this piece is placed; as @off, mod 2^32. */
	u32 placed = kep->rx_write + len;
	struct kfn_op *rop = NULL;

	if (kep->rx_msg)
		return -EPROTO;
	if (imm) {
		/*
		 * The ULP is told the length of the write: what we placed of
		 * it, never a count of the peer's that disagrees with it.
		 */
		if (le32_to_cpu(d->off) != placed)
			return -EPROTO;
		rop = kfn_rq_head(kep);
		if (!rop)
			return 1;
	}
	if (kfn_mr_access(kep->link, le64_to_cpu(d->key), le64_to_cpu(d->addr),
			  len, src, NULL))
		return -EACCES;
	kep->rx_write = last ? 0 : placed;
	if (imm) {
		rop->wc_flags = KFI_WC_IMM | KFI_WC_RDMA_WRITE;
		rop->imm = le32_to_cpu(d->imm);
		rop->inv_key = 0;
		kfn_rq_complete(kep, 0, placed);
	}
	return 0;
}

static int kfn_rx_read_req(struct kfn_ep *kep, const struct kfn_desc *d)
{
	u32 len = le32_to_cpu(d->len);
	struct kfn_rd_job *job;

	if (kep->rx_msg)
		return -EPROTO;
	if (kep->rd_tail - kep->rd_head >= KFN_RING)
		return 1;
	if (len > kep->link->dom.attr.max_rma_size ||
	    kfn_mr_access(kep->link, le64_to_cpu(d->key), le64_to_cpu(d->addr),
			  len, NULL, NULL))
		return -EACCES;
	job = &kep->rd[kep->rd_tail++ % KFN_RING];
	job->key = le64_to_cpu(d->key);
	job->addr = le64_to_cpu(d->addr);
	job->len = len;
	job->tag = le32_to_cpu(d->tag);
	job->pos = 0;
	return 0;
}

static int kfn_rx_read_resp(struct kfn_ep *kep, const struct kfn_desc *d,
			    const void *src, u32 len)
{
	struct kfn_op *op = kfn_sq_find(kep, kfn_is_pending_read, 0);

	if (kep->rx_msg || !op || le32_to_cpu(d->tag) != op->tag)
		return -EPROTO;
	/* The peer consumed the request before it answered. */
	if ((s32)(op->last - kep->tx_acked) > 0)
		kfn_ack(kep, op->last);
	if (d->status) {
		op->status = kfn_errno(d->status);
		op->done = true;
		return -ECANCELED;
	}
	if (le32_to_cpu(d->off) != op->pos || len > op->len - op->pos)
		return -EPROTO;
	if (len && kfn_op_copy(kep->link, op, op->pos, src, NULL, len)) {
		op->status = -EFAULT;
		op->done = true;
		return -ECANCELED;
	}
	op->pos += len;
	if (d->flags & KFN_DF_LAST) {
		if (op->pos != op->len)
			return -EPROTO;
		op->done = true;
	}
	return 0;
}

static int kfn_rx_nak(struct kfn_ep *kep, const struct kfn_desc *d)
{
	u32 pos = le32_to_cpu(d->tag);
	struct kfn_op *op;

	if (pos - kep->tx_acked >= kep->tx_prod - kep->tx_acked)
		return -EPROTO;
	/* Everything before the refused descriptor was consumed. */
	kfn_ack(kep, pos);
	op = kfn_sq_find(kep, kfn_holds_desc, pos);
	if (op) {
		op->status = kfn_errno(d->status);
		op->done = true;
	}
	kep->link->stats.naks++;
	return -ECANCELED;
}

/*
 * One descriptor, already copied out of the ring: 0 when consumed, 1 to
 * try again later, -EPROTO when it breaks the protocol, -ECANCELED when
 * it reported an error of ours, another negative errno when we refuse it.
 */
static int kfn_rx_desc(struct kfn_ep *kep, const struct kfn_desc *d,
		       const void *stage)
{
	const struct kfn_layout *l = &kep->link->in_l;
	u32 len = le32_to_cpu(d->len), off = le32_to_cpu(d->stage_off);

	if (d->rsvd0 || (d->flags & ~KFN_DF_ALL) ||
	    memchr_inv(d->rsvd, 0, sizeof(d->rsvd)))
		return -EPROTO;
	switch (d->type) {
	case KFN_D_SEND:
	case KFN_D_WRITE:
	case KFN_D_READ_RESP:
		if (len > l->max_chunk || off > l->stage_size ||
		    len > l->stage_size - off)
			return -EPROTO;
		break;
	}
	switch (d->type) {
	case KFN_D_SEND:
		return kfn_rx_send(kep, d, stage + off, len);
	case KFN_D_WRITE:
		return kfn_rx_write(kep, d, stage + off, len);
	case KFN_D_READ_REQ:
		return kfn_rx_read_req(kep, d);
	case KFN_D_READ_RESP:
		return kfn_rx_read_resp(kep, d, stage + off, len);
	case KFN_D_NAK:
		return kfn_rx_nak(kep, d);
	default:
		return -EPROTO;
	}
}

static void kfn_publish_cons(struct kfn_ep *kep);

/* Bytes of payload a descriptor carries: a read request carries none. */
static u32 kfn_desc_payload(const struct kfn_desc *d)
{
	return d->type == KFN_D_READ_REQ ? 0 : le32_to_cpu(d->len);
}

/* Ring the peer's doorbell now for what we wrote into its buffer. */
static void kfn_db_ring(struct kfn_link *link)
{
	if (link->ntb && link->up) {
		/* Write-combined stores into the window may still be buffered. */
		wmb();
		ntb_peer_db_set(link->ntb, KFN_DB_BIT);
	}
	link->db_pending = false;
}

/*
 * The next piece of a transfer in progress is on its way when the peer
 * copies it while we copy the last one out. Waking up through the
 * doorbell for each piece costs more than a piece's copy takes to
 * overlap, so wait a little for it, as NAPI busy polling does, where
 * another CPU can be copying it.
 */
static bool kfn_rx_wait(struct kfn_ep *kep, const struct kfn_desc *slot,
			u32 seq)
{
	unsigned int us = READ_ONCE(kfn_poll_us);
	u64 end;

	/* Not on the fuzzer's link: nothing is on its way there. */
	if (!kep->rx_more || !us || !kep->link->ntb || num_online_cpus() < 2)
		return false;
	kep->rx_more = false;
	end = ktime_get_ns() + (u64)us * NSEC_PER_USEC;
	do {
		if (le32_to_cpu(READ_ONCE(slot->seq)) == seq)
			return true;
		cpu_relax();
	} while (ktime_get_ns() < end);
	return false;
}

static int kfn_rx(struct kfn_ep *kep, bool *more)
{
	void *chan = kfn_in_chan(kep->link, kep->lc);
	struct kfn_desc *ring = chan + sizeof(struct kfn_hdr), *slot;
	int budget = KFN_RING, ret;
	struct kfn_desc d;
	u32 seq;

	while (budget--) {
		seq = kep->rx_base + kep->rx_cons + 1;
		slot = &ring[kep->rx_cons % KFN_RING];
		if (le32_to_cpu(READ_ONCE(slot->seq)) != seq &&
		    !kfn_rx_wait(kep, slot, seq))
			return 0;
		/*
		 * The peer wrote the body and the payload before the
		 * sequence number (wmb() in kfn_tx_desc()); they reach our
		 * coherent buffer through the bridge, as a device's writes do.
		 */
		dma_rmb();
		memcpy(&d, slot, sizeof(d));
		if (le32_to_cpu(d.seq) != seq)
			return 0;
		ret = kfn_rx_desc(kep, &d, chan + KFN_CHAN_HDR);
		if (ret > 0)
			return 0;
		/*
		 * A refused descriptor is not consumed: the peer must not
		 * count it as done before our NAK for it arrives.
		 */
		if (ret)
			return ret;
		kep->rx_cons++;
		kep->rx_more = false;
		if (kfn_desc_payload(&d) >= KFN_DB_EARLY) {
			kfn_publish_cons(kep);
			kfn_db_ring(kep->link);
			kep->rx_more = !(d.flags & KFN_DF_LAST);
		}
	}
	*more = true;
	return 0;
}

/* Room for one descriptor; the last slot is kept for a NAK. */
static bool kfn_tx_credit(struct kfn_ep *kep)
{
	return kep->tx_prod - kep->tx_acked < KFN_RING - 1;
}

/*
 * Allocate up to @want bytes of the peer's staging area, contiguously:
 * returns the bytes, 0 when there is no room yet.
 */
static u32 kfn_stage_alloc(struct kfn_ep *kep, u32 want, u32 *off, u32 *cost)
{
	const struct kfn_layout *l = &kep->link->out_l;
	u32 free = l->stage_size - kep->stage_used;
	u32 end, min_n, waste = 0, n;

	if (!kep->stage_used)
		kep->stage_head = 0;
	want = min(want, l->max_chunk);
	min_n = min_t(u32, want, SZ_4K);
	end = l->stage_size - kep->stage_head;
	if (end >= min_n) {
		*off = kep->stage_head;
		n = min(want, end);
	} else {
		/* Too little left before the end: skip it. */
		*off = 0;
		waste = end;
		n = want;
	}
	if (waste + min_n > free)
		return 0;
	n = min(n, free - waste);
	kep->stage_head = *off + n;
	if (kep->stage_head == l->stage_size)
		kep->stage_head = 0;
	kep->stage_used += waste + n;
	*cost = waste + n;
	return n;
}

static void __iomem *kfn_out_stage(struct kfn_ep *kep, u32 off)
{
	return kfn_out_chan(kep->link, kep->rc) + KFN_CHAN_HDR + off;
}

/*
 * Write descriptor @d into the peer's ring; its payload is in place. A
 * large piece is announced at once (KFN_DB_EARLY), the rest when the
 * worker's pass ends.
 */
static void kfn_tx_desc(struct kfn_ep *kep, struct kfn_desc *d, u32 cost)
{
	struct kfn_desc __iomem *slot = kfn_out_chan(kep->link, kep->rc) +
					sizeof(struct kfn_hdr);

	slot += kep->tx_prod % KFN_RING;
	memcpy_toio((void __iomem *)slot + sizeof(d->seq),
		    (void *)d + sizeof(d->seq), sizeof(*d) - sizeof(d->seq));
	/*
	 * Payload and body before the sequence number that validates them:
	 * iowrite32() alone does not order write-combined stores on x86.
	 */
	wmb();
	iowrite32(kep->tx_base + kep->tx_prod + 1, &slot->seq);
	kep->stage_cost[kep->tx_prod % KFN_RING] = cost;
	kep->tx_prod++;
	kep->link->db_pending = true;
	if (kfn_desc_payload(d) >= KFN_DB_EARLY)
		kfn_db_ring(kep->link);
}

static void kfn_tx_nak(struct kfn_ep *kep, u32 pos, u8 status)
{
	struct kfn_desc d = {
		.type = KFN_D_NAK,
		.status = status,
		.tag = cpu_to_le32(pos),
	};

	if (kep->tx_prod - kep->tx_acked < KFN_RING)
		kfn_tx_desc(kep, &d, 0);
}

void kfn_dma_batch_init(struct kfn_dma_batch *b)
{
	init_completion(&b->done);
	atomic_set(&b->pending, 1);
	atomic_set(&b->failed, 0);
	b->n = 0;
}

static void kfn_dma_done(void *arg, const struct dmaengine_result *res)
{
	struct kfn_dma_batch *b = arg;

	if (res->result != DMA_TRANS_NOERROR)
		atomic_inc(&b->failed);
	if (atomic_dec_and_test(&b->pending))
		complete(&b->done);
}

/*
 * Queue a copy of @bv into the window at @dst; false when the engine
 * cannot take it (the batch is then to be flushed, and the piece copied
 * by the CPU).
 */
static bool kfn_dma_add(struct kfn_link *link, struct kfn_dma_batch *b,
			const struct bio_vec *bv, void __iomem *dst)
{
	struct dma_chan *chan = link->dma;
	struct device *dev = chan->device->dev;
	struct dma_async_tx_descriptor *tx;
	dma_addr_t src;

	src = dma_map_page(dev, bv->bv_page, bv->bv_offset, bv->bv_len,
			   DMA_TO_DEVICE);
	if (dma_mapping_error(dev, src))
		return false;
	tx = dmaengine_prep_dma_memcpy(chan, link->out_dma + (dst - link->out),
				       src, bv->bv_len, DMA_PREP_INTERRUPT);
	if (!tx)
		goto unmap;
	tx->callback_result = kfn_dma_done;
	tx->callback_param = b;
	atomic_inc(&b->pending);
	if (dma_submit_error(dmaengine_submit(tx))) {
		atomic_dec(&b->pending);
		goto unmap;
	}
	b->src[b->n] = src;
	b->bv[b->n] = *bv;
	b->dst[b->n] = dst;
	b->n++;
	return true;

unmap:
	dma_unmap_page(dev, src, bv->bv_len, DMA_TO_DEVICE);
	return false;
}

/*
 * Wait for the batch's copies. Should the engine fail one, or miss the
 * deadline, the CPU copies all of them again: the window holds what the
 * pieces hold either way before the descriptor that covers them is
 * published.
 */
static void kfn_dma_flush(struct kfn_link *link, struct kfn_dma_batch *b)
{
	struct dma_chan *chan = link->dma;
	u32 i, failed;

	if (!b->n)
		return;
	dma_async_issue_pending(chan);
	if (!atomic_dec_and_test(&b->pending) &&
	    !wait_for_completion_timeout(&b->done, HZ)) {
		/* After this no callback runs: @b can be reused. */
		dmaengine_terminate_sync(chan);
		/*
		 * A hung engine must not hold the link's mutex a second per
		 * batch: that would also stop our heartbeat (a peer would
		 * take us for dead). The CPU copies from now on.
		 */
		link->dma_hung = true;
		dev_warn(link->dom.dev, "kfi_ntb %s: DMA copy timed out, copying with the CPU\n",
			 link->name);
		atomic_inc(&b->failed);
	}
	failed = min_t(u32, atomic_read(&b->failed), b->n);
	for (i = 0; i < b->n; i++) {
		dma_unmap_page(chan->device->dev, b->src[i], b->bv[i].bv_len,
			       DMA_TO_DEVICE);
		if (failed)
			kfn_copy_bv(b->dst[i], &b->bv[i]);
	}
	link->stats.dma_errors += failed;
	link->stats.dma_copies += b->n - failed;
	kfn_dma_batch_init(b);
}

/*
 * Gather bytes @pos.. of @op into the outbound window at @dst: large
 * pieces of kvec and bio_vec buffers with the DMA engine, when the link
 * has one and its window is mapped for it, the rest with the CPU.
 */
static int kfn_tx_copy(struct kfn_link *link, const struct kfn_op *op, u64 pos,
		       void __iomem *dst, u32 len)
{
	const struct kfi_iov *iov;
	struct kfn_dma_batch *b = &link->dma_batch;
	struct kfi_iov_iter it;
	struct kfi_iov sub;
	struct bio_vec bv;
	int ret = 0;
	u32 i;
	u64 n;

	if (!link->dma || link->dma_hung || link->out_dma == DMA_MAPPING_ERROR ||
	    len < KFN_DMA_MIN)
		return kfn_op_copy(link, op, pos, NULL, dst, len);
	for (i = 0; i < op->niov && len; i++) {
		iov = &op->iov[i];
		if (pos >= iov->len) {
			pos -= iov->len;
			continue;
		}
		n = min_t(u64, len, iov->len - pos);
		if (iov->type == KFI_IOV_MR) {
			/* @pos counts from this buffer, not from the first. */
			if (kfn_mr_local_copy(link, iov, pos, NULL, dst, n)) {
				ret = -EFAULT;
				break;
			}
			dst += n;
			goto next;
		}
		sub = *iov;
		sub.offset += pos;
		sub.len = n;
		if (kfi_iov_iter_init(&it, &sub)) {
			ret = -EFAULT;
			break;
		}
		while (kfi_iov_iter_next(&it, &bv, 0)) {
			if (b->n == KFN_DMA_BATCH)
				kfn_dma_flush(link, b);
			if (bv.bv_len < KFN_DMA_MIN || link->dma_hung ||
			    !kfn_dma_add(link, b, &bv, dst))
				kfn_copy_bv(dst, &bv);
			dst += bv.bv_len;
		}
		if (it.left) {
			ret = -EFAULT;
			break;
		}
next:
		len -= n;
		pos = 0;
	}
	/* Nothing is published before every copy is in. */
	kfn_dma_flush(link, b);
	if (ret)
		return ret;
	return len ? -EFAULT : 0;
}

/*
 * Transmit what fits of a send or write: 1 when all of it is out, 0 when
 * it has to wait for room, a negative errno when a local buffer fails.
 */
static int kfn_tx_data(struct kfn_ep *kep, struct kfn_op *op, u32 *budget)
{
	bool send = op->opcode == KFI_WC_SEND;
	struct kfn_desc d;
	u32 n, off, cost;

	do {
		if (!kfn_tx_credit(kep))
			return 0;
		n = 0;
		off = 0;
		cost = 0;
		if (op->len > op->pos) {
			n = kfn_stage_alloc(kep, min_t(u64, op->len - op->pos, U32_MAX),
					    &off, &cost);
			if (!n)
				return 0;
			if (kfn_tx_copy(kep->link, op, op->pos,
					kfn_out_stage(kep, off), n)) {
				kep->stage_used -= cost;
				op->status = -EFAULT;
				op->done = true;
				return -EFAULT;
			}
		}
		memset(&d, 0, sizeof(d));
		d.type = send ? KFN_D_SEND : KFN_D_WRITE;
		d.len = cpu_to_le32(n);
		d.stage_off = cpu_to_le32(off);
		if (send && !op->pos)
			d.flags |= KFN_DF_FIRST;
		if (!send) {
			d.addr = cpu_to_le64(op->rma.addr + op->pos);
			d.key = cpu_to_le64(op->rma.key);
		}
		if (op->pos + n == op->len) {
			d.flags |= KFN_DF_LAST;
			if (op->flags & KFI_IMM) {
				d.flags |= KFN_DF_IMM;
				d.imm = cpu_to_le32(op->imm);
			}
			if (send && (op->flags & KFI_SEND_INV)) {
				d.flags |= KFN_DF_INV;
				d.inv_key = cpu_to_le64(op->inv_key);
			}
			if (!send)
				d.off = cpu_to_le32(op->len);
		}
		if (!op->pos)
			op->first = kep->tx_prod;
		kfn_tx_desc(kep, &d, cost);
		op->last = kep->tx_prod;
		op->pos += n;
		*budget -= min(n, *budget);
	} while (op->pos < op->len && *budget);
	if (op->pos < op->len)
		return 0;
	op->sent = true;
	return 1;
}

static int kfn_tx_op(struct kfn_ep *kep, struct kfn_op *op, u32 *budget)
{
	struct kfn_desc d = { .type = KFN_D_READ_REQ };

	switch (op->opcode) {
	case KFI_WC_MR_MAP:
	case KFI_WC_MR_INV:
		return 1;
	case KFI_WC_READ:
		if (!kfn_tx_credit(kep))
			return 0;
		op->tag = kep->rd_next++;
		d.len = cpu_to_le32(op->len);
		d.addr = cpu_to_le64(op->rma.addr);
		d.key = cpu_to_le64(op->rma.key);
		d.tag = cpu_to_le32(op->tag);
		op->first = kep->tx_prod;
		kfn_tx_desc(kep, &d, 0);
		op->last = kep->tx_prod;
		op->sent = true;
		return 1;
	default:
		return kfn_tx_data(kep, op, budget);
	}
}

/* Answer the reads the peer asked for, in order. */
static int kfn_tx_reads(struct kfn_ep *kep, u32 *budget)
{
	struct kfn_rd_job *job;
	struct kfn_desc d;
	u32 n, off, cost;
	u8 status;

	while (kep->rd_head != kep->rd_tail) {
		job = &kep->rd[kep->rd_head % KFN_RING];
		do {
			if (!kfn_tx_credit(kep))
				return 0;
			n = 0;
			off = 0;
			cost = 0;
			status = KFN_ST_OK;
			if (job->len > job->pos) {
				n = kfn_stage_alloc(kep, job->len - job->pos, &off,
						    &cost);
				if (!n)
					return 0;
				/* Checked again: the region may be gone. */
				if (kfn_mr_access(kep->link, job->key,
						  job->addr + job->pos, n, NULL,
						  kfn_out_stage(kep, off))) {
					status = KFN_ST_ACCESS;
					n = 0;
				}
			}
			memset(&d, 0, sizeof(d));
			d.type = KFN_D_READ_RESP;
			d.status = status;
			d.len = cpu_to_le32(n);
			d.stage_off = cpu_to_le32(off);
			d.tag = cpu_to_le32(job->tag);
			d.off = cpu_to_le32(job->pos);
			if (status || job->pos + n == job->len)
				d.flags = KFN_DF_LAST;
			kfn_tx_desc(kep, &d, cost);
			job->pos += n;
			*budget -= min(n, *budget);
			if (status) {
				kep->rd_head++;
				return -EACCES;
			}
		} while (job->pos < job->len && *budget);
		if (job->pos < job->len)
			return 0;
		kep->rd_head++;
	}
	return 0;
}

static bool kfn_read_before(struct kfn_ep *kep)
{
	return kfn_sq_find(kep, kfn_is_pending_read, 0);
}

static int kfn_tx(struct kfn_ep *kep, bool *more)
{
	u32 budget = KFN_TX_BUDGET;
	unsigned long flags;
	struct kfn_op *op;
	int ret;

	ret = kfn_tx_reads(kep, &budget);
	if (ret)
		return ret;
	while (budget) {
		spin_lock_irqsave(&kep->lock, flags);
		op = kep->sq_tx != kep->sq_tail ? &kep->sq[kep->sq_tx % kep->nsq] : NULL;
		spin_unlock_irqrestore(&kep->lock, flags);
		if (!op)
			return 0;
		if ((op->flags & KFI_FENCE) && kfn_read_before(kep))
			return 0;
		ret = kfn_tx_op(kep, op, &budget);
		if (ret <= 0)
			return ret;
		spin_lock_irqsave(&kep->lock, flags);
		kep->sq_tx++;
		spin_unlock_irqrestore(&kep->lock, flags);
	}
	*more = true;
	return 0;
}

/* Tell the peer how far we consumed its descriptors. */
static void kfn_publish_cons(struct kfn_ep *kep)
{
	struct kfn_hdr __iomem *hdr;

	if (kep->rx_cons == kep->rx_cons_pub || kep->sent_disconnect ||
	    kep->rc < 0)
		return;
	hdr = kfn_out_chan(kep->link, kep->rc);
	/*
	 * The peer reuses the ring slots and the staging area we consumed
	 * once it reads this: our reads of them must be done first.
	 * iowrite32() orders only earlier writes, and the dma_*() barriers
	 * do not order MMIO.
	 */
	mb();
	iowrite32(kep->rx_cons, &hdr->cons);
	kep->rx_cons_pub = kep->rx_cons;
	kep->link->db_pending = true;
}

/**
 * kfn_ep_fail() - the peer broke the protocol on an endpoint
 * @kep: the endpoint
 * @status: why
 *
 * The connection is torn down: the peer is told, the ULP gets
 * %KFI_CM_DISCONNECTED and the endpoint's operations are flushed.
 */
void kfn_ep_fail(struct kfn_ep *kep, int status)
{
	struct kfn_link *link = kep->link;

	lockdep_assert_held(&link->mutex);
	if (status == -EPROTO) {
		link->stats.proto_errors++;
		/* The fuzzer's link breaks the protocol on purpose. */
		if (link->ntb)
			dev_warn_ratelimited(link->dom.dev,
					     "kfi_ntb %s: protocol error on channel %d\n",
					     link->name, kep->lc);
	}
	if (kep->state != KFN_EP_CONNECTED && kep->state != KFN_EP_ERROR)
		return;
	kfn_send_disconnect(kep);
	kfn_set_state(kep, KFN_EP_DISCONNECTED);
	kfn_event(kep, KFI_CM_DISCONNECTED, status, NULL, 0);
}

/**
 * kfn_ep_process() - one pass of the data worker over an endpoint
 * @kep: the endpoint
 *
 * Return: true when there is more to do at once.
 */
bool kfn_ep_process(struct kfn_ep *kep)
{
	struct kfn_link *link = kep->link;
	bool more = false;
	int ret;

	lockdep_assert_held(&link->mutex);
	if (kfn_state(kep) == KFN_EP_CONNECTED && link->up && kep->lc >= 0 &&
	    kep->rc >= 0) {
		/*
		 * Written by the peer once done with the slots (mb() in
		 * kfn_publish_cons()); our writes into them depend on it, a
		 * control dependency, which orders them after this read.
		 */
		ret = kfn_ack(kep, le32_to_cpu(READ_ONCE(kfn_in_hdr(kep)->cons)));
		if (!ret && !kfn_hdr_valid(kfn_in_hdr(kep), false))
			ret = -EPROTO;
		if (!ret)
			ret = kfn_rx(kep, &more);
		/* Acknowledgements go out before any NAK or read data. */
		kfn_publish_cons(kep);
		if (ret == -EPROTO) {
			kfn_ep_fail(kep, ret);
		} else if (ret) {
			if (ret != -ECANCELED)
				kfn_tx_nak(kep, kep->rx_cons, kfn_wire_status(ret));
			kfn_set_state(kep, KFN_EP_ERROR);
		} else if (kfn_tx(kep, &more)) {
			kfn_set_state(kep, KFN_EP_ERROR);
		}
	}
	kfn_sq_sweep(kep);
	if (kfn_flushing(kfn_state(kep)))
		kfn_rq_flush(kep);
	return more;
}

/**
 * kfn_link_process() - one pass of the data worker over a link
 * @link: the link
 *
 * Return: true when there is more to do at once.
 */
bool kfn_link_process(struct kfn_link *link)
{
	struct kfn_ep *kep;
	bool more = false;

	lockdep_assert_held(&link->mutex);
	if (link->up) {
		/* The link worker ends the session. */
		if (kfn_link_stale(link))
			return false;
		kfn_chan_reap(link);
		kfn_ctrl_rx(link);
		/* Reset (kfn_link_reset()): the same. */
		if (link->reset)
			return false;
	}
	list_for_each_entry(kep, &link->eps, node)
		more |= kfn_ep_process(kep);
	if (link->up)
		kfn_ctrl_tx(link);
	if (link->db_pending)
		kfn_db_ring(link);
	return more;
}

/**
 * kfn_data_work() - the data worker of a link
 * @work: &kfn_link.data_work
 */
void kfn_data_work(struct work_struct *work)
{
	struct kfn_link *link = container_of(work, struct kfn_link, data_work);
	bool more;

	mutex_lock(&link->mutex);
	more = kfn_link_process(link);
	mutex_unlock(&link->mutex);
	if (more)
		kfn_kick(link);
}

/* ------------------------------------------------------------------ */
/* Endpoints                                                           */

int kfn_ep_create(struct kfi_ep *ep, const struct kfi_ep_attr *attr)
{
	struct kfn_link *link = to_kfn_link(ep->domain);
	struct kfn_ep *kep = to_kfn_ep(ep);
	struct kfi_iov *iov;
	u32 i;

	kep->link = link;
	spin_lock_init(&kep->lock);
	kep->state = KFN_EP_IDLE;
	kep->lc = -1;
	kep->rc = -1;
	kep->nsq = attr->max_send_ops;
	kep->nrq = attr->max_recv_ops;
	kep->max_send_sge = attr->max_send_sge;
	kep->max_recv_sge = attr->max_recv_sge;
	kep->sq = kvcalloc(kep->nsq, sizeof(*kep->sq), GFP_KERNEL);
	kep->rq = kvcalloc(kep->nrq, sizeof(*kep->rq), GFP_KERNEL);
	kep->iovs = kvcalloc(size_add(size_mul(kep->nsq, kep->max_send_sge),
				      size_mul(kep->nrq, kep->max_recv_sge)),
			     sizeof(*kep->iovs), GFP_KERNEL);
	if (!kep->sq || !kep->rq || !kep->iovs) {
		kvfree(kep->sq);
		kvfree(kep->rq);
		kvfree(kep->iovs);
		return -ENOMEM;
	}
	iov = kep->iovs;
	for (i = 0; i < kep->nsq; i++, iov += kep->max_send_sge) {
		kep->sq[i].kep = kep;
		kep->sq[i].iov = iov;
	}
	for (i = 0; i < kep->nrq; i++, iov += kep->max_recv_sge) {
		kep->rq[i].kep = kep;
		kep->rq[i].iov = iov;
		kep->rq[i].opcode = KFI_WC_RECV;
	}
	INIT_WORK(&kep->cm_work, kfn_ep_cm_work);
	INIT_DELAYED_WORK(&kep->connect_to, kfn_connect_timeout);
	ep->src_addr.format = KFI_ADDR_NAME;
	strscpy(ep->src_addr.name.node, link->dom.attr.name);

	mutex_lock(&link->mutex);
	list_add_tail(&kep->node, &link->eps);
	mutex_unlock(&link->mutex);
	return 0;
}

/*
 * Disconnect if connected, leave the link's list, then complete what is
 * queued: from here on only this function touches the queues.
 */
void kfn_ep_drain(struct kfi_ep *ep)
{
	struct kfn_ep *kep = to_kfn_ep(ep);
	struct kfn_link *link = kep->link;
	struct kfn_chan *chan;

	cancel_delayed_work_sync(&kep->connect_to);
	mutex_lock(&link->mutex);
	if (kep->state == KFN_EP_CONNECTED || kep->state == KFN_EP_ERROR)
		kfn_send_disconnect(kep);
	if (kep->lc >= 0) {
		/* Reused once the peer answered (or the link reset). */
		chan = &link->chans[kep->lc];
		chan->ep = NULL;
		kfn_chan_close(link, kep->lc);
		kep->lc = -1;
	}
	kfn_set_state(kep, KFN_EP_DEAD);
	list_del_init(&kep->node);
	mutex_unlock(&link->mutex);
	kfn_kick(link);

	kfn_ep_flush(kep);
	kfi_cq_sw_flush(ep->attr.send_cq);
	if (ep->attr.recv_cq != ep->attr.send_cq)
		kfi_cq_sw_flush(ep->attr.recv_cq);
}

void kfn_ep_destroy(struct kfi_ep *ep)
{
	struct kfn_ep *kep = to_kfn_ep(ep);

	cancel_work_sync(&kep->cm_work);
	kvfree(kep->sq);
	kvfree(kep->rq);
	kvfree(kep->iovs);
}

/* Buffers: mapped regions, and no more segments than the endpoint takes. */
static int kfn_check_bufs(const struct kfi_iov *iov, u32 niov, u32 max_segs)
{
	int segs = 0, n;
	u32 i;

	if (niov > max_segs)
		return -EINVAL;
	for (i = 0; i < niov; i++) {
		if (iov[i].type == KFI_IOV_MR) {
			if (!READ_ONCE(iov[i].mr->length))
				return -EINVAL;
			segs++;
			continue;
		}
		n = kfi_iov_nsegs(&iov[i], 0);
		if (n < 0)
			return n;
		segs += n;
	}
	return segs > max_segs ? -EINVAL : 0;
}

/* A free send queue slot; the endpoint's lock held. */
static struct kfn_op *kfn_sq_slot(struct kfn_ep *kep)
{
	struct kfn_op *op;

	if (kep->sq_tail - kep->sq_head >= kep->nsq)
		return NULL;
	op = &kep->sq[kep->sq_tail % kep->nsq];
	if (op->busy)
		return NULL;
	op->busy = true;
	op->done = false;
	op->sent = false;
	op->pos = 0;
	op->status = 0;
	op->niov = 0;
	op->len = 0;
	op->imm = 0;
	op->inv_key = 0;
	op->wc_flags = 0;
	return op;
}

static int kfn_post(struct kfi_ep *ep, const struct kfi_msg *msg,
		    const struct kfi_rma_iov *rma, u32 flags,
		    enum kfi_wc_opcode opcode)
{
	struct kfn_ep *kep = to_kfn_ep(ep);
	u64 len = kfi_msg_len(msg);
	unsigned long irqflags;
	struct kfn_op *op;
	int ret;

	ret = kfn_check_bufs(msg->iov, msg->niov, kep->max_send_sge);
	if (ret)
		return ret;
	if (opcode == KFI_WC_SEND && len > ep->domain->attr.max_msg_size)
		return -EINVAL;
	if (rma && rma->len != len)
		return -EINVAL;

	spin_lock_irqsave(&kep->lock, irqflags);
	if (kep->state == KFN_EP_IDLE || kep->state == KFN_EP_CONNECTING ||
	    kep->state == KFN_EP_DEAD) {
		ret = -ENOTCONN;
		goto out;
	}
	op = kfn_sq_slot(kep);
	if (!op) {
		ret = -EAGAIN;
		goto out;
	}
	op->opcode = opcode;
	op->ulp_cqe = msg->cqe;
	op->flags = flags;
	op->niov = msg->niov;
	memcpy(op->iov, msg->iov, msg->niov * sizeof(*msg->iov));
	op->len = len;
	if (rma)
		op->rma = *rma;
	op->imm = msg->imm_data;
	op->inv_key = msg->inv_key;
	kep->sq_tail++;
out:
	spin_unlock_irqrestore(&kep->lock, irqflags);
	if (!ret && !(flags & KFI_MORE))
		kfn_kick(kep->link);
	return ret;
}

int kfn_post_send(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags)
{
	return kfn_post(ep, msg, NULL, flags, KFI_WC_SEND);
}

int kfn_post_write(struct kfi_ep *ep, const struct kfi_msg *msg,
		   const struct kfi_rma_iov *rma, u32 flags)
{
	return kfn_post(ep, msg, rma, flags, KFI_WC_WRITE);
}

int kfn_post_read(struct kfi_ep *ep, const struct kfi_msg *msg,
		  const struct kfi_rma_iov *rma, u32 flags)
{
	return kfn_post(ep, msg, rma, flags, KFI_WC_READ);
}

int kfn_post_recv(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags)
{
	struct kfn_ep *kep = to_kfn_ep(ep);
	unsigned long irqflags;
	struct kfn_op *op;
	int ret;

	ret = kfn_check_bufs(msg->iov, msg->niov, kep->max_recv_sge);
	if (ret)
		return ret;
	spin_lock_irqsave(&kep->lock, irqflags);
	if (kep->state == KFN_EP_DEAD) {
		ret = -ENOTCONN;
		goto out;
	}
	op = &kep->rq[kep->rq_tail % kep->nrq];
	if (kep->rq_tail - kep->rq_head >= kep->nrq || op->busy) {
		ret = -EAGAIN;
		goto out;
	}
	op->busy = true;
	op->ulp_cqe = msg->cqe;
	op->niov = msg->niov;
	memcpy(op->iov, msg->iov, msg->niov * sizeof(*msg->iov));
	op->len = kfi_msg_len(msg);
	op->pos = 0;
	kep->rq_tail++;
out:
	spin_unlock_irqrestore(&kep->lock, irqflags);
	/* A send may be waiting for it, or a flush. */
	if (!ret)
		kfn_kick(kep->link);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Memory regions                                                      */

int kfn_mr_create(struct kfi_mr *mr)
{
	struct kfn_link *link = to_kfn_link(mr->domain);
	struct kfn_mr *km = to_kfn_mr(mr);

	/* A random start makes keys of a fresh region hard to guess. */
	km->gen = get_random_u32();
	return xa_alloc_irq(&link->mrs, &km->index, km,
			    XA_LIMIT(1, KFN_MR_INDEX_MAX), GFP_KERNEL);
}

void kfn_mr_destroy(struct kfi_mr *mr)
{
	struct kfn_link *link = to_kfn_link(mr->domain);
	struct kfn_mr *km = to_kfn_mr(mr);

	/*
	 * The peer's accesses look the key up and use the region they find
	 * under mr_lock (kfn_mr_access(), kfn_remote_inv()), and the core
	 * frees the region as soon as we return: erase it under mr_lock
	 * too, so that no access can still hold it then. The xarray's lock
	 * nests inside, which is why the xarray takes it with interrupts off.
	 */
	spin_lock_irq(&link->mr_lock);
	mr->length = 0;
	mr->access = 0;
	xa_erase(&link->mrs, km->index);
	spin_unlock_irq(&link->mr_lock);
}

/* A send queue slot that completes a mapping change in order. */
static int kfn_mr_op(struct kfn_ep *kep, struct kfi_mr *mr,
		     const struct kfi_iov *iov, u32 access,
		     struct kfi_cqe *cqe, u32 flags)
{
	struct kfn_link *link = kep->link;
	struct kfn_mr *km = to_kfn_mr(mr);
	unsigned long irqflags;
	struct kfn_op *op;
	int ret = 0;

	spin_lock_irqsave(&kep->lock, irqflags);
	if (kep->state == KFN_EP_DEAD) {
		ret = -ENOTCONN;
		goto out;
	}
	op = kfn_sq_slot(kep);
	if (!op) {
		ret = -EAGAIN;
		goto out;
	}
	spin_lock(&link->mr_lock);
	if (iov && mr->length) {
		ret = -EBUSY;
	} else if (iov) {
		km->iov = *iov;
		/* Neither the key nor the address follows from the last. */
		km->gen += 1 + get_random_u32_below(KFN_MR_GEN_STEP);
		km->gen &= KFN_MR_GEN_MASK;
		km->epoch = link->mr_epoch;
		mr->key = km->index << KFN_MR_GEN_BITS | km->gen;
		mr->addr = get_random_u64() & KFN_MR_ADDR_MASK;
		mr->length = iov->len;
		mr->access = access;
	} else {
		mr->length = 0;
		mr->access = 0;
	}
	spin_unlock(&link->mr_lock);
	if (ret) {
		op->busy = false;
		goto out;
	}
	op->opcode = iov ? KFI_WC_MR_MAP : KFI_WC_MR_INV;
	/* Applied already: it completes once the operations before it did. */
	op->done = true;
	op->sent = true;
	op->ulp_cqe = cqe;
	op->flags = flags;
	kep->sq_tail++;
out:
	spin_unlock_irqrestore(&kep->lock, irqflags);
	if (!ret && !(flags & KFI_MORE))
		kfn_kick(link);
	return ret;
}

int kfn_mr_map(struct kfi_ep *ep, struct kfi_mr *mr, const struct kfi_iov *iov,
	       u32 access, struct kfi_cqe *cqe, u32 flags)
{
	int n = kfi_iov_nsegs(iov, 0);

	if (n < 0)
		return n;
	if (n > mr->max_segs)
		return -EINVAL;
	return kfn_mr_op(to_kfn_ep(ep), mr, iov, access, cqe, flags);
}

int kfn_mr_invalidate(struct kfi_ep *ep, struct kfi_mr *mr,
		      struct kfi_cqe *cqe, u32 flags)
{
	return kfn_mr_op(to_kfn_ep(ep), mr, NULL, 0, cqe, flags);
}
