// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric over the kernel verbs stack: endpoints, data operations, memory
 * regions and the read/write helper.
 *
 * Each endpoint keeps a ring of operation slots per queue, sized to its
 * queue depth when it is created, so posting allocates nothing. A slot
 * holds the ib_cqe of its work request and the DMA mappings of its local
 * buffers. Work requests on one queue of an RC QP complete in the order
 * they were posted, so a completion retires its slot and every older
 * (unsignaled) one, unmapping their buffers: no reference count and no
 * mutex per operation, only the queue's spinlock that keeps slot order
 * and posting order the same. The sge arrays the buffers are mapped into
 * are not tied to slots: an operation takes one without the lock, maps
 * its buffers into it, and only then takes the lock, a slot, and posts,
 * as rdma_rw maps in rdma_rw_ctx_init() and posts later. (Taking the slot
 * first and mapping with the lock dropped would not do: a later slot
 * could be posted first, and its completion retire the earlier slot
 * before that was even posted.)
 */
#include <linux/bitmap.h>
#include <linux/bvec.h>
#include <linux/scatterlist.h>

#include "kfi_verbs.h"

#define VBS_SEND_SIGNALED	BIT(0)

static int vbs_wc_status(enum ib_wc_status status)
{
	switch (status) {
	case IB_WC_SUCCESS:
		return 0;
	case IB_WC_WR_FLUSH_ERR:
		return -ECANCELED;
	case IB_WC_REM_ACCESS_ERR:
	case IB_WC_MW_BIND_ERR:
		return -EACCES;
	case IB_WC_LOC_PROT_ERR:
	case IB_WC_LOC_ACCESS_ERR:
		return -EFAULT;
	case IB_WC_LOC_LEN_ERR:
		return -EMSGSIZE;
	case IB_WC_RETRY_EXC_ERR:
	case IB_WC_RNR_RETRY_EXC_ERR:
	case IB_WC_RESP_TIMEOUT_ERR:
		return -ETIMEDOUT;
	case IB_WC_REM_INV_REQ_ERR:
	case IB_WC_REM_OP_ERR:
	case IB_WC_REM_ABORT_ERR:
	case IB_WC_INV_EEC_STATE_ERR:
		return -EREMOTEIO;
	default:
		return -EIO;
	}
}

static int vbs_ring_init(struct vbs_ring *ring, struct vbs_ep *vep, u32 size,
			 u32 max_sge, bool rd,
			 void (*done)(struct ib_cq *, struct ib_wc *))
{
	u32 i;

	spin_lock_init(&ring->lock);
	ring->size = size;
	ring->max_sge = max_sge;
	ring->ops = kvcalloc(size, sizeof(*ring->ops), GFP_KERNEL);
	ring->bufs = bitmap_zalloc(size, GFP_KERNEL);
	ring->sges = kvcalloc(size, array_size(max_sge, sizeof(*ring->sges)),
			      GFP_KERNEL);
	if (!ring->ops || !ring->bufs || !ring->sges)
		return -ENOMEM;
	if (rd) {
		ring->rd_sgls = kvcalloc(size, array_size(max_sge,
							  sizeof(*ring->rd_sgls)),
					 GFP_KERNEL);
		if (!ring->rd_sgls)
			return -ENOMEM;
	}
	for (i = 0; i < size; i++) {
		ring->ops[i].cqe.done = done;
		ring->ops[i].vep = vep;
		ring->ops[i].idx = i;
	}
	return 0;
}

static void vbs_ring_free(struct vbs_ring *ring)
{
	kvfree(ring->ops);
	bitmap_free(ring->bufs);
	kvfree(ring->sges);
	kvfree(ring->rd_sgls);
}

/*
 * Take a free buffer of @ring for an operation about to be mapped, with
 * no lock, so that mapping runs with interrupts enabled and other CPUs
 * post meanwhile. There are as many buffers as slots, and an operation
 * holds its buffer only from before it takes a slot until the slot is
 * retired, so a ULP within its queue depth always finds one.
 */
static int vbs_buf_get(struct vbs_ring *ring, struct vbs_map *map)
{
	unsigned long i;

	do {
		i = find_first_zero_bit(ring->bufs, ring->size);
		if (i >= ring->size)
			return -EAGAIN;
	} while (test_and_set_bit_lock(i, ring->bufs));
	map->buf = i;
	map->sge = ring->sges + i * ring->max_sge;
	if (ring->rd_sgls)
		map->rd_sgl = ring->rd_sgls + i * ring->max_sge;
	return 0;
}

/* Unmap what @map holds, and give its buffer back to @ring. */
static void vbs_unmap(struct vbs_ep *vep, struct vbs_ring *ring,
		      struct vbs_map *map)
{
	struct vbs_domain *vdom = vep_dom(vep);
	u32 i;

	if (map->rd_mr) {
		ib_dma_unmap_sg(vdom->ibdev, map->rd_sgl, map->rd_nsg,
				DMA_FROM_DEVICE);
		ib_mr_pool_put(vep->qp, &vep->qp->rdma_mrs, map->rd_mr);
		map->rd_mr = NULL;
	}
	for (i = 0; i < map->nsge; i++)
		if (map->sge[i].lkey == vdom->pd->local_dma_lkey)
			ib_dma_unmap_page(vdom->ibdev, map->sge[i].addr,
					  map->sge[i].length, map->dir);
	map->nsge = 0;
	if (map->sge) {
		map->sge = NULL;
		clear_bit_unlock(map->buf, ring->bufs);
	}
}

static void vbs_mr_set_state(struct vbs_mr *vmr, enum vbs_mr_state state)
{
	unsigned long flags;

	spin_lock_irqsave(&vmr->lock, flags);
	vmr->state = state;
	spin_unlock_irqrestore(&vmr->lock, flags);
}

/*
 * End a memory region's mapping under @key: peers can no longer reach it.
 * The completion of a local invalidation or of a failed registration, a
 * peer's send with invalidate and vbs_mr_map() may run on different CPUs
 * at once. Under the region's lock exactly one caller takes a VALID
 * mapping, and it unmaps with the region BUSY, which vbs_mr_map() refuses,
 * so the scatterlist is not refilled while it is being unmapped. The key
 * check keeps the late end of an older mapping from ending a newer one.
 */
static void vbs_mr_end(struct vbs_domain *vdom, struct vbs_mr *vmr, u32 key)
{
	unsigned long flags;
	int nents;

	spin_lock_irqsave(&vmr->lock, flags);
	if (vmr->state != VBS_MR_VALID || vmr->key != key) {
		spin_unlock_irqrestore(&vmr->lock, flags);
		return;
	}
	vmr->state = VBS_MR_BUSY;
	nents = vmr->nents;
	vmr->nents = 0;
	spin_unlock_irqrestore(&vmr->lock, flags);

	ib_dma_unmap_sg(vdom->ibdev, vmr->sgl, nents, DMA_BIDIRECTIONAL);
	vbs_mr_set_state(vmr, VBS_MR_FREE);
}

/*
 * Retire the slots of @ring up to and including @op. Only the queue's
 * completion context calls this (or the drain, once the queue is idle),
 * so the slots between tail and @op are ours to read without the lock,
 * and the tail is ours to write: posters only read it, to see whether a
 * slot is free. The release store hands the retired slots back only once
 * we are done with them (see vbs_slot_take()).
 */
static void vbs_retire(struct vbs_ring *ring, struct vbs_op *op, int status)
{
	struct vbs_ep *vep = op->vep;
	u32 tail = READ_ONCE(ring->tail);
	struct vbs_op *cur;

	for (;;) {
		cur = &ring->ops[tail % ring->size];
		vbs_unmap(vep, ring, &cur->map);
		if (cur->mr && (cur->opcode == KFI_WC_MR_INV ? !status :
				cur == op && status))
			vbs_mr_end(vep_dom(vep), cur->mr, cur->key);
		cur->mr = NULL;
		tail++;
		if (cur == op || WARN_ON_ONCE(tail == READ_ONCE(ring->head)))
			break;
	}
	/* Slots go back only now; pairs with vbs_slot_take()'s acquire. */
	smp_store_release(&ring->tail, tail);
}

static void vbs_send_done(struct ib_cq *cq, struct ib_wc *wc)
{
	struct vbs_op *op = container_of(wc->wr_cqe, struct vbs_op, cqe);
	struct vbs_ep *vep = op->vep;
	struct kfi_cqe *ulp = op->ulp;
	struct kfi_wc kwc = {
		.cqe = ulp,
		.ep = &vep->ep,
		.status = vbs_wc_status(wc->status),
		.opcode = op->opcode,
	};

	vbs_retire(&vep->sq, op, kwc.status);
	if (ulp)
		kfi_complete(vep->ep.attr.send_cq, &kwc);
}

/*
 * A peer's send with invalidate ended the mapping of one of our regions.
 * The peer picks the key, at any time: look the region up and end its
 * mapping under the xarray's lock, which vbs_mr_destroy() takes to erase
 * it, so the region cannot be freed meanwhile.
 */
static void vbs_remote_inv(struct vbs_domain *vdom, u32 rkey)
{
	struct vbs_mr *vmr;
	unsigned long flags;

	xa_lock_irqsave(&vdom->mrs, flags);
	vmr = xa_load(&vdom->mrs, rkey >> 8);
	if (vmr)
		vbs_mr_end(vdom, vmr, rkey);
	xa_unlock_irqrestore(&vdom->mrs, flags);
}

static void vbs_recv_done(struct ib_cq *cq, struct ib_wc *wc)
{
	struct vbs_op *op = container_of(wc->wr_cqe, struct vbs_op, cqe);
	struct vbs_ep *vep = op->vep;
	struct kfi_wc kwc = {
		.cqe = op->ulp,
		.ep = &vep->ep,
		.status = vbs_wc_status(wc->status),
		.opcode = KFI_WC_RECV,
	};

	if (!kwc.status) {
		kwc.byte_len = wc->byte_len;
		if (wc->wc_flags & IB_WC_WITH_IMM) {
			kwc.flags |= KFI_WC_IMM;
			kwc.imm_data = be32_to_cpu(wc->ex.imm_data);
		}
		if (wc->opcode == IB_WC_RECV_RDMA_WITH_IMM)
			kwc.flags |= KFI_WC_RDMA_WRITE;
		if (wc->wc_flags & IB_WC_WITH_INVALIDATE) {
			kwc.flags |= KFI_WC_INV;
			kwc.inv_key = wc->ex.invalidate_rkey;
			vbs_remote_inv(vep_dom(vep), wc->ex.invalidate_rkey);
		}
	}
	vbs_retire(&vep->rq, op, kwc.status);
	kfi_complete(vep->ep.attr.recv_cq, &kwc);
}

/*
 * The common buffer, one kvec entry in the linear map, is one piece: set
 * @seg to the page, offset and length kfi_iov_iter_next() would yield for
 * it (kfi_iov_dma_begin() has nothing to do for it either), so that small
 * messages are mapped without the walk. False for any other buffer.
 */
static bool vbs_kvec_piece(const struct kfi_iov *iov, struct bio_vec *seg)
{
	const struct kvec *kv = iov->kvec;
	void *addr;

	if (iov->type != KFI_IOV_KVEC || iov->nr != 1 ||
	    iov->offset > kv->iov_len || iov->len > kv->iov_len - iov->offset ||
	    iov->len > (UINT_MAX & PAGE_MASK))
		return false;
	addr = kv->iov_base + iov->offset;
	if (is_vmalloc_addr(addr))
		return false;
	bvec_set_virt(seg, addr, iov->len);
	return true;
}

/*
 * DMA-map one piece of a buffer into the next of @map's @max_sge sges,
 * under the PD's local key: -EINVAL when they are all taken.
 */
static int vbs_map_seg(struct vbs_domain *vdom, struct vbs_map *map,
		       u32 max_sge, const struct bio_vec *seg,
		       enum dma_data_direction dir)
{
	struct ib_sge *sge;

	if (map->nsge >= max_sge)
		return -EINVAL;
	sge = &map->sge[map->nsge];
	sge->addr = ib_dma_map_page(vdom->ibdev, seg->bv_page, seg->bv_offset,
				    seg->bv_len, dir);
	if (ib_dma_mapping_error(vdom->ibdev, sge->addr))
		return -EFAULT;
	sge->length = seg->bv_len;
	sge->lkey = vdom->pd->local_dma_lkey;
	map->nsge++;
	return 0;
}

/*
 * DMA-map the local buffers of @msg into a buffer of @ring, without the
 * ring's lock. Memory region ranges are already mapped and use the
 * region's lkey. On success the caller posts @map in a slot, or undoes
 * it with vbs_unmap().
 */
static int vbs_map_msg(struct vbs_ep *vep, struct vbs_ring *ring,
		       struct vbs_map *map, const struct kfi_msg *msg,
		       enum dma_data_direction dir)
{
	struct vbs_domain *vdom = vep_dom(vep);
	u32 i, max_sge = ring->max_sge;
	struct kfi_iov_iter it;
	struct bio_vec seg;
	int ret;

	*map = (struct vbs_map){ .dir = dir };
	if (!msg->niov)
		return 0;
	ret = vbs_buf_get(ring, map);
	if (ret)
		return ret;
	for (i = 0; i < msg->niov; i++) {
		const struct kfi_iov *iov = &msg->iov[i];

		if (!iov->len)
			continue;
		if (iov->type == KFI_IOV_MR) {
			struct vbs_mr *vmr = to_vmr(iov->mr);

			if (map->nsge >= max_sge || iov->len > U32_MAX)
				goto inval;
			map->sge[map->nsge++] = (struct ib_sge){
				.addr = vmr->ibmr->iova + iov->offset,
				.length = iov->len,
				.lkey = vmr->ibmr->lkey,
			};
			continue;
		}
		if (vbs_kvec_piece(iov, &seg)) {
			ret = vbs_map_seg(vdom, map, max_sge, &seg, dir);
			if (ret)
				goto unmap;
			continue;
		}
		kfi_iov_dma_begin(iov);
		ret = kfi_iov_iter_init(&it, iov);
		if (ret)
			goto unmap;
		while (kfi_iov_iter_next(&it, &seg, 0)) {
			ret = vbs_map_seg(vdom, map, max_sge, &seg, dir);
			if (ret)
				goto unmap;
		}
	}
	return 0;

inval:
	ret = -EINVAL;
unmap:
	vbs_unmap(vep, ring, map);
	return ret;
}

/*
 * Take the next slot of @ring for an operation whose buffers @map holds,
 * with the ring's lock held. The slot counts as posted from here: its
 * completion may run on another CPU before the post returns, and retiring
 * walks the ring up to its head. If the post fails, the caller gives the
 * slot back with vbs_unpost() (no completion can name it) and undoes
 * @map itself. NULL when the ring is full.
 */
static struct vbs_op *vbs_slot_take(struct vbs_ring *ring, u8 opcode,
				    struct kfi_cqe *ulp,
				    const struct vbs_map *map)
{
	struct vbs_op *op;

	/* Pairs with the release in vbs_retire(): the slot is retired. */
	if (ring->head - smp_load_acquire(&ring->tail) >= ring->size)
		return NULL;
	op = &ring->ops[ring->head % ring->size];
	op->opcode = opcode;
	op->ulp = ulp;
	op->mr = NULL;
	op->map = *map;
	ring->head++;
	return op;
}

static bool vbs_connected(struct vbs_ep *vep)
{
	enum vbs_ep_state state = READ_ONCE(vep->state);

	return state == VBS_EP_CONNECTED || state == VBS_EP_DOWN;
}

/* The work request flags of the kfabric posting flags. */
static unsigned int vbs_send_flags(u32 flags)
{
	unsigned int send_flags = 0;

	if (!(flags & KFI_UNSIGNALED))
		send_flags |= IB_SEND_SIGNALED;
	if (flags & KFI_FENCE)
		send_flags |= IB_SEND_FENCE;
	return send_flags;
}

/*
 * Fill @wr for a send-side operation in the next slot of the send queue
 * (vbs_slot_take()), which takes over @map, already mapped. Called with
 * the send queue lock held.
 */
static int vbs_sq_prep(struct vbs_ep *vep, const struct vbs_map *map,
		       struct kfi_cqe *ulp, u32 flags, enum kfi_wc_opcode opcode,
		       struct ib_send_wr *wr, struct vbs_op **opp)
{
	struct vbs_op *op;

	op = vbs_slot_take(&vep->sq, opcode, ulp, map);
	if (!op)
		return -EAGAIN;
	wr->wr_cqe = &op->cqe;
	wr->sg_list = map->sge;
	wr->num_sge = map->nsge;
	wr->send_flags = vbs_send_flags(flags);
	*opp = op;
	return 0;
}

/* Give back the slot of a post that failed; ring lock held. */
static void vbs_unpost(struct vbs_ring *ring)
{
	ring->head--;
}

/*
 * Post @wr in the next send queue slot, which takes over @map. A region's
 * map or invalidation names the region (@vmr) and the key it is about,
 * since its completion ends the mapping under that key only. On failure
 * the caller still owns @map (and the region's state).
 */
static int vbs_sq_post(struct vbs_ep *vep, const struct vbs_map *map,
		       struct kfi_cqe *ulp, u32 flags, enum kfi_wc_opcode opcode,
		       struct ib_send_wr *wr, struct vbs_mr *vmr, u32 key)
{
	unsigned long irqflags;
	struct vbs_op *op;
	int ret;

	spin_lock_irqsave(&vep->sq.lock, irqflags);
	ret = vbs_sq_prep(vep, map, ulp, flags, opcode, wr, &op);
	if (!ret) {
		op->mr = vmr;
		op->key = key;
		ret = ib_post_send(vep->qp, wr, NULL);
		if (ret)
			vbs_unpost(&vep->sq);
	}
	spin_unlock_irqrestore(&vep->sq.lock, irqflags);
	return ret;
}

static int vbs_post_sq(struct vbs_ep *vep, const struct kfi_msg *msg, u32 flags,
		       enum kfi_wc_opcode opcode, struct ib_send_wr *wr)
{
	struct vbs_map map;
	int ret;

	if (unlikely(!vbs_connected(vep)))
		return -ENOTCONN;
	ret = vbs_map_msg(vep, &vep->sq, &map, msg, opcode == KFI_WC_READ ?
			  DMA_FROM_DEVICE : DMA_TO_DEVICE);
	if (ret)
		return ret;
	ret = vbs_sq_post(vep, &map, msg->cqe, flags, opcode, wr, NULL, 0);
	if (ret)
		vbs_unmap(vep, &vep->sq, &map);
	return ret;
}

static void vbs_send_wr(const struct kfi_msg *msg, u32 flags,
			struct ib_send_wr *wr)
{
	wr->opcode = IB_WR_SEND;
	if (flags & KFI_IMM) {
		wr->opcode = IB_WR_SEND_WITH_IMM;
		wr->ex.imm_data = cpu_to_be32(msg->imm_data);
	} else if (flags & KFI_SEND_INV) {
		wr->opcode = IB_WR_SEND_WITH_INV;
		wr->ex.invalidate_rkey = msg->inv_key;
	}
}

int vbs_post_send(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags)
{
	struct ib_send_wr wr = {};

	if (unlikely((flags & KFI_IMM) && (flags & KFI_SEND_INV)))
		return -EINVAL;
	if (unlikely((flags & KFI_SEND_INV) && msg->inv_key > U32_MAX))
		return -EINVAL;
	vbs_send_wr(msg, flags, &wr);
	return vbs_post_sq(to_vep(ep), msg, flags, KFI_WC_SEND, &wr);
}

static int vbs_post_rma(struct kfi_ep *ep, const struct kfi_msg *msg,
			const struct kfi_rma_iov *rma, u32 flags,
			enum kfi_wc_opcode opcode)
{
	struct ib_rdma_wr wr = {
		.remote_addr = rma->addr,
		.rkey = rma->key,
	};

	if (unlikely(rma->key > U32_MAX))
		return -EINVAL;
	if (opcode == KFI_WC_READ) {
		wr.wr.opcode = IB_WR_RDMA_READ;
	} else if (flags & KFI_IMM) {
		wr.wr.opcode = IB_WR_RDMA_WRITE_WITH_IMM;
		wr.wr.ex.imm_data = cpu_to_be32(msg->imm_data);
	} else {
		wr.wr.opcode = IB_WR_RDMA_WRITE;
	}
	return vbs_post_sq(to_vep(ep), msg, flags, opcode, &wr.wr);
}

/*
 * The registration ahead of an iWARP read is unsignaled: it completes
 * only in error, and the read behind it is then flushed and retires the
 * slot.
 */
static void vbs_rd_reg_done(struct ib_cq *cq, struct ib_wc *wc)
{
}

static struct ib_cqe vbs_rd_reg_cqe = { .done = vbs_rd_reg_done };

/* Put the pieces of @msg's buffers into @sgl; their number, or an errno. */
static int vbs_rd_fill_sgl(struct scatterlist *sgl, u32 max,
			   const struct kfi_msg *msg)
{
	struct scatterlist *sg = NULL;
	struct kfi_iov_iter it;
	struct bio_vec seg;
	u32 i, n = 0;
	int ret;

	sg_init_table(sgl, max);
	for (i = 0; i < msg->niov; i++) {
		if (!msg->iov[i].len)
			continue;
		kfi_iov_dma_begin(&msg->iov[i]);
		ret = kfi_iov_iter_init(&it, &msg->iov[i]);
		if (ret)
			return ret;
		while (kfi_iov_iter_next(&it, &seg, 0)) {
			if (n >= max)
				return -EINVAL;
			sg = &sgl[n++];
			sg_set_page(sg, seg.bv_page, seg.bv_len, seg.bv_offset);
		}
	}
	if (!sg)
		return -EINVAL;
	sg_mark_end(sg);
	return n;
}

/*
 * iWARP: the data of an RDMA READ response is placed by the sink's STag,
 * so the sink must be registered with remote write access; the PD's local
 * DMA lkey will not do. As rdma_rw does for iWARP, a read into a kvec or
 * bio_vec buffer registers the buffer with an MR of the QP's pool and
 * reads with invalidate, which ends the registration once the data is in.
 * So the buffer must fit one fast registration: its pieces joined at page
 * boundaries (see &struct kfi_mr), at most max_rma_size bytes.
 */
static int vbs_post_read_iw(struct vbs_ep *vep, const struct kfi_msg *msg,
			    const struct kfi_rma_iov *rma, u32 flags)
{
	struct vbs_domain *vdom = vep_dom(vep);
	struct ib_qp *qp = vep->qp;
	struct ib_rdma_wr rd = {
		.wr.opcode = IB_WR_RDMA_READ_WITH_INV,
		.remote_addr = rma->addr,
		.rkey = rma->key,
	};
	struct ib_reg_wr reg = {
		.wr.opcode = IB_WR_REG_MR,
		.wr.wr_cqe = &vbs_rd_reg_cqe,
		.wr.next = &rd.wr,
		.access = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE,
	};
	struct vbs_map map = { .dir = DMA_FROM_DEVICE };
	const struct ib_send_wr *bad;
	unsigned long irqflags;
	struct ib_sge sge;
	struct vbs_op *op;
	struct ib_mr *mr;
	int n, nents, ret;

	if (unlikely(rma->key > U32_MAX))
		return -EINVAL;
	if (unlikely(!vbs_connected(vep)))
		return -ENOTCONN;
	/*
	 * Map and register before taking the send queue lock: the buffer
	 * and the pool MR are ours alone until posted. The buffers bound
	 * the pool MRs these reads hold at once to the queue depth.
	 */
	ret = vbs_buf_get(&vep->sq, &map);
	if (ret)
		return ret;
	n = vbs_rd_fill_sgl(map.rd_sgl, vep->max_sge, msg);
	ret = n;
	if (n < 0)
		goto out_buf;
	nents = ib_dma_map_sg(vdom->ibdev, map.rd_sgl, n, DMA_FROM_DEVICE);
	ret = -EFAULT;
	if (!nents)
		goto out_buf;
	mr = ib_mr_pool_get(qp, &qp->rdma_mrs);
	ret = -EAGAIN;
	if (!mr)
		goto out_unmap;
	ret = ib_map_mr_sg(mr, map.rd_sgl, nents, NULL, PAGE_SIZE);
	if (ret != nents) {
		ret = ret < 0 ? ret : -EINVAL;
		goto out_put;
	}
	ib_update_fast_reg_key(mr, ib_inc_rkey(mr->rkey));
	reg.mr = mr;
	reg.key = mr->rkey;
	sge = (struct ib_sge){
		.addr = mr->iova,
		.length = mr->length,
		.lkey = mr->lkey,
	};
	rd.wr.sg_list = &sge;
	rd.wr.num_sge = 1;
	rd.wr.ex.invalidate_rkey = mr->lkey;
	rd.wr.send_flags = vbs_send_flags(flags);
	map.rd_nsg = n;
	map.rd_mr = mr;

	spin_lock_irqsave(&vep->sq.lock, irqflags);
	op = vbs_slot_take(&vep->sq, KFI_WC_READ, msg->cqe, &map);
	ret = -EAGAIN;
	if (op) {
		rd.wr.wr_cqe = &op->cqe;
		ret = ib_post_send(qp, &reg.wr, &bad);
		if (ret)
			vbs_unpost(&vep->sq);
	}
	spin_unlock_irqrestore(&vep->sq.lock, irqflags);
	/* Not posted: unmap, put the MR back and free the buffer. */
	if (ret)
		vbs_unmap(vep, &vep->sq, &map);
	return ret;

out_put:
	ib_mr_pool_put(qp, &qp->rdma_mrs, mr);
out_unmap:
	ib_dma_unmap_sg(vdom->ibdev, map.rd_sgl, n, DMA_FROM_DEVICE);
out_buf:
	vbs_unmap(vep, &vep->sq, &map);
	return ret;
}

/*
 * How many buffers of @msg lie in memory regions, and whether each of
 * those was mapped with remote write access.
 */
static u32 vbs_msg_mrs(const struct kfi_msg *msg, bool *writable)
{
	u32 i, n = 0;

	*writable = true;
	for (i = 0; i < msg->niov; i++) {
		if (msg->iov[i].type != KFI_IOV_MR)
			continue;
		n++;
		if (!(msg->iov[i].mr->access & KFI_ACCESS_REMOTE_WRITE))
			*writable = false;
	}
	return n;
}

int vbs_post_read(struct kfi_ep *ep, const struct kfi_msg *msg,
		  const struct kfi_rma_iov *rma, u32 flags)
{
	struct vbs_ep *vep = to_vep(ep);
	bool writable;
	u32 mrs;

	if (!vep_dom(vep)->iwarp)
		return vbs_post_rma(ep, msg, rma, flags, KFI_WC_READ);
	/*
	 * On iWARP the read response is placed like a remote write, under
	 * the sink's STag: plain buffers get a registration of their own,
	 * regions must have been mapped with remote write (see kfi_read()).
	 */
	mrs = vbs_msg_mrs(msg, &writable);
	if (!mrs)
		return vbs_post_read_iw(vep, msg, rma, flags);
	if (mrs != msg->niov || !writable)
		return -EINVAL;
	return vbs_post_rma(ep, msg, rma, flags, KFI_WC_READ);
}

int vbs_post_write(struct kfi_ep *ep, const struct kfi_msg *msg,
		   const struct kfi_rma_iov *rma, u32 flags)
{
	return vbs_post_rma(ep, msg, rma, flags, KFI_WC_WRITE);
}

int vbs_post_recv(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags)
{
	struct vbs_ep *vep = to_vep(ep);
	const struct ib_recv_wr *bad;
	struct ib_recv_wr wr = {};
	unsigned long irqflags;
	struct vbs_map map;
	struct vbs_op *op;
	int ret;

	/* Map first, without the lock, as for sends (see vbs_buf_get()). */
	ret = vbs_map_msg(vep, &vep->rq, &map, msg, DMA_FROM_DEVICE);
	if (ret)
		return ret;
	spin_lock_irqsave(&vep->rq.lock, irqflags);
	op = vbs_slot_take(&vep->rq, KFI_WC_RECV, msg->cqe, &map);
	ret = -EAGAIN;
	if (op) {
		wr.wr_cqe = &op->cqe;
		wr.sg_list = map.sge;
		wr.num_sge = map.nsge;
		ret = ib_post_recv(vep->qp, &wr, &bad);
		if (ret)
			vbs_unpost(&vep->rq);
	}
	spin_unlock_irqrestore(&vep->rq.lock, irqflags);
	if (ret)
		vbs_unmap(vep, &vep->rq, &map);
	return ret;
}

/* Read/write helper contexts that rdma_rw may split into. */
static u32 vbs_rw_ops_per_ctx(struct vbs_domain *vdom, const struct kfi_ep_attr *attr)
{
	u32 sge = min(max(attr->max_send_sge, attr->max_rw_segs),
		      vdom->dom.attr.max_rma_sge);

	return DIV_ROUND_UP(attr->max_rw_segs, sge) +
	       rdma_rw_mr_factor(vdom->ibdev, vdom->port, attr->max_rw_segs) * 2;
}

/*
 * Asynchronous events of an endpoint's QP, in any context. A lost RTU
 * must not fail the passive side: data arriving first establishes the
 * connection (COMM_EST), which rdma_cm learns from rdma_notify(). A QP
 * that failed takes its connection with it; the ULP hears of it as a
 * disconnection with an error, from process context.
 */
static void vbs_qp_event(struct ib_event *event, void *context)
{
	struct vbs_ep *vep = context;

	switch (event->event) {
	case IB_EVENT_COMM_EST:
		if (vep->id)
			rdma_notify(vep->id, IB_EVENT_COMM_EST);
		break;
	case IB_EVENT_QP_FATAL:
	case IB_EVENT_QP_REQ_ERR:
	case IB_EVENT_QP_ACCESS_ERR:
		dev_warn_ratelimited(&vep_dom(vep)->ibdev->dev,
				     "kfi_verbs: QP %u: %s\n", vep->qp->qp_num,
				     ib_event_msg(event->event));
		queue_work(system_wq, &vep->fatal_work);
		break;
	default:
		break;
	}
}

/* A device's fatal error, for each of its endpoints (vbs_device_event()). */
void vbs_ep_fatal(struct kfi_ep *ep, void *unused)
{
	queue_work(system_wq, &to_vep(ep)->fatal_work);
}

int vbs_ep_create(struct kfi_ep *ep, const struct kfi_ep_attr *attr)
{
	struct vbs_domain *vdom = to_vdom(ep->domain);
	struct vbs_ep *vep = to_vep(ep);
	struct ib_qp_init_attr init = {
		.send_cq = to_vcq(attr->send_cq)->ibcq,
		.recv_cq = to_vcq(attr->recv_cq)->ibcq,
		.cap = {
			.max_send_wr = attr->max_send_ops,
			.max_recv_wr = attr->max_recv_ops,
			.max_send_sge = attr->max_send_sge,
			.max_recv_sge = attr->max_recv_sge,
			.max_rdma_ctxs = attr->max_rw_ctxs,
		},
		.sq_sig_type = IB_SIGNAL_REQ_WR,
		.qp_type = IB_QPT_RC,
		.port_num = vdom->port,
		.qp_context = vep,
	};
	struct ib_qp_attr qattr = {
		.qp_state = IB_QPS_INIT,
		.pkey_index = 0,
		.port_num = vdom->port,
		.qp_access_flags = IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_WRITE |
				   IB_ACCESS_LOCAL_WRITE,
	};
	u64 need, rw_add;
	int ret;

	/*
	 * Send queue room: the ring's slots, the work requests of the
	 * helper's contexts, the registrations of iWARP reads and the drain
	 * work request. rdma_rw_init_qp() adds room for max_rdma_ctxs on its
	 * own, so ask for what it does not add, and check what the device
	 * gave once the QP exists: it clamps to max_qp_wr silently.
	 */
	need = (u64)attr->max_send_ops + 1;
	if (attr->max_rw_ctxs) {
		/*
		 * rdma_rw puts as many segments in a work request as the QP
		 * allows: give it what a context may carry, and queue room
		 * for as many work requests as that takes.
		 */
		init.cap.max_send_sge = max(attr->max_send_sge,
					    min(attr->max_rw_segs,
						vdom->dom.attr.max_rma_sge));
		ep->rw_ops_per_ctx = vbs_rw_ops_per_ctx(vdom, attr);
		need += (u64)attr->max_rw_ctxs * ep->rw_ops_per_ctx;
	}
	if (vdom->iwarp) {
		/*
		 * A read into plain buffers registers its sink with an MR of
		 * the QP's pool (vbs_post_read_iw()), and the helper's reads
		 * take one per rdma_rw_mr_factor(). The plain reads get a
		 * budget of MRs rather than one per send slot; past it they
		 * wait (-EAGAIN) for earlier ones to complete.
		 */
		u32 reads = min_t(u32, attr->max_send_ops, VBS_IW_READS);

		if (attr->max_rw_ctxs)
			init.cap.max_rdma_ctxs = attr->max_rw_ctxs *
				rdma_rw_mr_factor(vdom->ibdev, vdom->port,
						  attr->max_rw_segs);
		init.cap.max_rdma_ctxs += reads;
		need += reads;
	}
	rw_add = rdma_rw_max_send_wr(vdom->ibdev, vdom->port,
				     init.cap.max_rdma_ctxs, 0);
	if (need > vdom->dom.attr.max_send_ops + 1)
		return -EINVAL;
	init.cap.max_send_wr = max_t(u64, need > rw_add ? need - rw_add : 0,
				     attr->max_send_ops + 1);
	/* One more for the drain work request of ib_drain_qp(). */
	init.cap.max_recv_wr++;
	vep->max_sge = attr->max_send_sge;
	spin_lock_init(&vep->rw_lock);
	INIT_LIST_HEAD(&vep->rw_ctxs);
	INIT_WORK(&vep->fatal_work, vbs_qp_fatal_work);
	ret = vbs_ring_init(&vep->sq, vep, attr->max_send_ops, attr->max_send_sge,
			    vdom->iwarp, vbs_send_done);
	if (!ret)
		ret = vbs_ring_init(&vep->rq, vep, attr->max_recv_ops,
				    attr->max_recv_sge, false, vbs_recv_done);
	if (ret)
		goto out_free;

	init.event_handler = vbs_qp_event;
	vep->qp = ib_create_qp(vdom->pd, &init);
	if (IS_ERR(vep->qp)) {
		ret = PTR_ERR(vep->qp);
		goto out_free;
	}
	ret = -EINVAL;
	if (init.cap.max_send_wr < need)
		goto out_qp;
	/*
	 * INIT now, so that receives can be posted before the connection
	 * exists; connect and accept refine it with rdma_cm's attributes.
	 */
	ret = ib_modify_qp(vep->qp, &qattr, IB_QP_STATE | IB_QP_PKEY_INDEX |
			   IB_QP_PORT | IB_QP_ACCESS_FLAGS);
	if (ret)
		goto out_qp;
	return 0;

out_qp:
	disable_work_sync(&vep->fatal_work);
	ib_destroy_qp(vep->qp);
out_free:
	vbs_ring_free(&vep->rq);
	vbs_ring_free(&vep->sq);
	return ret;
}

/*
 * After a drain: retire what unsignaled operations left behind. Memory
 * regions stay mapped; they belong to the domain, not to the endpoint.
 */
static void vbs_ring_sweep(struct vbs_ep *vep, struct vbs_ring *ring)
{
	struct vbs_op *op;

	while (ring->tail != ring->head) {
		op = &ring->ops[ring->tail % ring->size];
		vbs_unmap(vep, ring, &op->map);
		op->mr = NULL;
		WRITE_ONCE(ring->tail, ring->tail + 1);
	}
}

void vbs_ep_drain(struct kfi_ep *ep)
{
	struct vbs_ep *vep = to_vep(ep);

	if (vep->id && READ_ONCE(vep->state) == VBS_EP_CONNECTED)
		rdma_disconnect(vep->id);
	WRITE_ONCE(vep->state, VBS_EP_DOWN);
	ib_drain_qp(vep->qp);
	vbs_ring_sweep(vep, &vep->sq);
	vbs_ring_sweep(vep, &vep->rq);
}

static void vbs_rw_release_all(struct vbs_ep *vep);

void vbs_ep_destroy(struct kfi_ep *ep)
{
	struct vbs_ep *vep = to_vep(ep);

	/* No event handler runs once the id is gone. */
	if (vep->id)
		rdma_destroy_id(vep->id);
	vbs_rw_release_all(vep);
	/* The work uses the QP; later QP or device events no longer queue it. */
	disable_work_sync(&vep->fatal_work);
	ib_destroy_qp(vep->qp);
	vbs_ring_free(&vep->rq);
	vbs_ring_free(&vep->sq);
}

int vbs_mr_create(struct kfi_mr *mr)
{
	struct vbs_domain *vdom = to_vdom(mr->domain);
	struct vbs_mr *vmr = to_vmr(mr);
	int ret;

	spin_lock_init(&vmr->lock);
	vmr->sgl = kvcalloc(mr->max_segs, sizeof(*vmr->sgl), GFP_KERNEL);
	if (!vmr->sgl)
		return -ENOMEM;
	vmr->ibmr = ib_alloc_mr(vdom->pd, IB_MR_TYPE_MEM_REG, mr->max_segs);
	if (IS_ERR(vmr->ibmr)) {
		ret = PTR_ERR(vmr->ibmr);
		goto out_free;
	}
	/* The key's upper 24 bits name the MR; the lower 8 change per map. */
	vmr->index = vmr->ibmr->rkey >> 8;
	ret = xa_insert_irq(&vdom->mrs, vmr->index, vmr, GFP_KERNEL);
	if (ret)
		goto out_dereg;
	return 0;

out_dereg:
	ib_dereg_mr(vmr->ibmr);
out_free:
	kvfree(vmr->sgl);
	return ret;
}

void vbs_mr_destroy(struct kfi_mr *mr)
{
	struct vbs_domain *vdom = to_vdom(mr->domain);
	struct vbs_mr *vmr = to_vmr(mr);

	/* After this, vbs_remote_inv() cannot find or be using it. */
	xa_erase_irq(&vdom->mrs, vmr->index);
	/* Deregister before unmapping: the device must be done with it. */
	ib_dereg_mr(vmr->ibmr);
	/* Nothing else uses the region now: end its mapping, if any. */
	vbs_mr_end(vdom, vmr, vmr->key);
	kvfree(vmr->sgl);
}

/*
 * Can @seg extend @sg? Only when it starts where @sg ends in physical
 * memory, on the same device pagemap, and the result is still one DMA
 * segment for the device.
 */
static bool vbs_sg_mergeable(struct scatterlist *sg, const struct bio_vec *seg,
			     unsigned int max)
{
	return sg_phys(sg) + sg->length == bvec_phys(seg) &&
	       zone_device_pages_have_same_pgmap(sg_page(sg), seg->bv_page) &&
	       seg->bv_len <= max - sg->length;
}

/*
 * Build the region's scatterlist, one entry per physically contiguous
 * run of the buffer: large folios and high-order blocks take one entry
 * however many pages they hold, and so, with a large enough MR page
 * size, one entry of the device's page list. Return: the entries, or
 * -EINVAL when there are more than the region was allocated for.
 */
static int vbs_mr_fill_sgl(struct vbs_domain *vdom, struct vbs_mr *vmr,
			   const struct kfi_iov *iov)
{
	unsigned int max = vdom->max_seg_size;
	struct scatterlist *sg = NULL;
	struct kfi_iov_iter it;
	struct bio_vec seg;
	u32 n = 0;
	int ret;

	kfi_iov_dma_begin(iov);
	ret = kfi_iov_iter_init(&it, iov);
	if (ret)
		return ret;
	sg_init_table(vmr->sgl, vmr->mr.max_segs);
	while (kfi_iov_iter_next(&it, &seg, max)) {
		if (sg && vbs_sg_mergeable(sg, &seg, max)) {
			sg->length += seg.bv_len;
			continue;
		}
		if (n >= vmr->mr.max_segs)
			return -EINVAL;
		sg = &vmr->sgl[n++];
		sg_set_page(sg, seg.bv_page, seg.bv_len, seg.bv_offset);
	}
	if (!sg)
		return -EINVAL;
	sg_mark_end(sg);
	return n;
}

/*
 * The MR page size for a DMA-mapped region: the largest the device
 * supports that every address where the region's DMA segments are not
 * contiguous is a multiple of, since FRWR maps whole pages and only the
 * start of the first and the end of the last may fall inside one. It is
 * also no larger than the smallest page that covers all of the region,
 * as in ib_umem_find_best_pgsz(). Return 0 when no supported size fits.
 */
static u32 vbs_mr_pgsz(struct vbs_domain *vdom, struct scatterlist *sgl,
		       int nents, u64 len)
{
	u64 pgsz = vdom->mr_pgsz_bitmap;
	u64 iova = sg_dma_address(sgl), end = iova, mask = 0;
	struct scatterlist *sg;
	unsigned int bits;
	int i;

	for_each_sg(sgl, sg, nents, i) {
		if (i && sg_dma_address(sg) != end)
			mask |= end | sg_dma_address(sg);
		end = sg_dma_address(sg) + sg_dma_len(sg);
	}
	bits = bits_per(iova ^ (iova + len - 1));
	if (bits < 64)
		mask |= pgsz & GENMASK_ULL(63, bits);
	if (mask)
		pgsz &= GENMASK_ULL(__ffs64(mask), 0);
	return pgsz ? BIT_ULL(fls64(pgsz) - 1) : 0;
}

/* Entries of the device's page list the region takes with @pgsz pages. */
static u64 vbs_mr_npages(struct scatterlist *sgl, int nents, u32 pgsz)
{
	unsigned int shift = ilog2(pgsz);
	u64 start = 0, end = 0, n = 0;
	struct scatterlist *sg;
	int i;

	for_each_sg(sgl, sg, nents, i) {
		if (i && sg_dma_address(sg) == end) {
			end += sg_dma_len(sg);
			continue;
		}
		if (i)
			n += (ALIGN(end, pgsz) - ALIGN_DOWN(start, pgsz)) >> shift;
		start = sg_dma_address(sg);
		end = start + sg_dma_len(sg);
	}
	return n + ((ALIGN(end, pgsz) - ALIGN_DOWN(start, pgsz)) >> shift);
}

/*
 * Exactly the rights asked for. A region for local use only gets none
 * remote, also on iWARP, where a kfi_read() into it is refused unless it
 * was mapped with remote write (vbs_post_read()).
 */
static u32 vbs_ib_access(const struct vbs_domain *vdom, u32 access)
{
	u32 flags = IB_ACCESS_LOCAL_WRITE;

	if (access & KFI_ACCESS_REMOTE_READ)
		flags |= IB_ACCESS_REMOTE_READ;
	if (access & KFI_ACCESS_REMOTE_WRITE)
		flags |= IB_ACCESS_REMOTE_WRITE;
	return flags;
}

int vbs_mr_map(struct kfi_ep *ep, struct kfi_mr *mr, const struct kfi_iov *iov,
	       u32 access, struct kfi_cqe *cqe, u32 flags)
{
	struct vbs_domain *vdom = to_vdom(mr->domain);
	struct vbs_ep *vep = to_vep(ep);
	struct vbs_mr *vmr = to_vmr(mr);
	struct ib_reg_wr wr = {
		.wr.opcode = IB_WR_REG_MR,
		.mr = vmr->ibmr,
		.access = vbs_ib_access(vdom, access),
	};
	struct vbs_map none = {};
	unsigned long irqflags;
	int nsg, nents, ret;
	u32 pgsz, key;
	bool busy;

	if (unlikely(!vbs_connected(vep)))
		return -ENOTCONN;
	/*
	 * Own the scatterlist: not while the region is mapped, nor while
	 * the end of its last mapping (vbs_mr_end()) still unmaps it.
	 */
	spin_lock_irqsave(&vmr->lock, irqflags);
	busy = vmr->state != VBS_MR_FREE;
	if (!busy)
		vmr->state = VBS_MR_BUSY;
	spin_unlock_irqrestore(&vmr->lock, irqflags);
	if (busy)
		return -EBUSY;
	nsg = vbs_mr_fill_sgl(vdom, vmr, iov);
	ret = nsg;
	if (nsg < 0)
		goto out_free;
	nents = ib_dma_map_sg(vdom->ibdev, vmr->sgl, nsg, DMA_BIDIRECTIONAL);
	ret = -EFAULT;
	if (!nents)
		goto out_free;
	/* FRWR maps whole pages: a gap inside one cannot be mapped. */
	pgsz = vbs_mr_pgsz(vdom, vmr->sgl, nents, iov->len);
	ret = -EINVAL;
	if (!pgsz)
		goto out_unmap;
	ret = -E2BIG;
	if (vbs_mr_npages(vmr->sgl, nents, pgsz) > mr->max_segs)
		goto out_unmap;
	ret = ib_map_mr_sg(vmr->ibmr, vmr->sgl, nents, NULL, pgsz);
	if (ret != nents) {
		ret = ret < 0 ? ret : -EINVAL;
		goto out_unmap;
	}
	key = ib_inc_rkey(vmr->ibmr->rkey);
	ib_update_fast_reg_key(vmr->ibmr, key);
	wr.key = key;

	/*
	 * Publish the mapping before posting it: from then on the
	 * registration may fail and vbs_retire() end it, or complete and
	 * the ULP read @mr or a peer invalidate it, on another CPU before
	 * ib_post_send() has even returned.
	 */
	mr->key = key;
	mr->addr = vmr->ibmr->iova;
	mr->length = vmr->ibmr->length;
	mr->access = access;
	spin_lock_irqsave(&vmr->lock, irqflags);
	vmr->nents = nsg;
	vmr->key = key;
	vmr->state = VBS_MR_VALID;
	spin_unlock_irqrestore(&vmr->lock, irqflags);

	ret = vbs_sq_post(vep, &none, cqe, flags, KFI_WC_MR_MAP, &wr.wr, vmr,
			  key);
	/* Not posted, so neither the device nor a peer saw it: roll back. */
	if (ret)
		vbs_mr_end(vdom, vmr, key);
	return ret;

out_unmap:
	ib_dma_unmap_sg(vdom->ibdev, vmr->sgl, nsg, DMA_BIDIRECTIONAL);
out_free:
	vbs_mr_set_state(vmr, VBS_MR_FREE);
	return ret;
}

int vbs_mr_invalidate(struct kfi_ep *ep, struct kfi_mr *mr,
		      struct kfi_cqe *cqe, u32 flags)
{
	struct vbs_mr *vmr = to_vmr(mr);
	struct vbs_ep *vep = to_vep(ep);
	struct ib_send_wr wr = {
		.opcode = IB_WR_LOCAL_INV,
		.ex.invalidate_rkey = vmr->ibmr->rkey,
	};
	struct vbs_map none = {};

	if (unlikely(!vbs_connected(vep)))
		return -ENOTCONN;
	return vbs_sq_post(vep, &none, cqe, flags, KFI_WC_MR_INV, &wr, vmr,
			   wr.ex.invalidate_rkey);
}

/* What the verbs provider keeps in &struct kfi_rw_ctx. */
struct vbs_rw {
	struct rdma_rw_ctx rw;
	struct ib_cqe cqe;
	struct kfi_cqe *ulp;
	union {
		struct scatterlist *sg;
		const struct bio_vec *bvec;
	};
	struct list_head entry;		/* on vbs_ep.rw_ctxs while set up */
	u32 nr;
	u8 type;
};

static struct vbs_rw *to_vrw(struct kfi_rw_ctx *ctx)
{
	BUILD_BUG_ON(sizeof(struct vbs_rw) > sizeof(ctx->priv));
	return (struct vbs_rw *)ctx->priv;
}

static struct kfi_rw_ctx *vrw_ctx(struct vbs_rw *vrw)
{
	return container_of((void *)vrw, struct kfi_rw_ctx, priv);
}

/* Entries covering @off + @len bytes of a scatterlist, which must end there. */
static int vbs_sg_span(struct scatterlist *sg, u32 nr, u64 off, u64 len,
		       struct scatterlist **first, u32 *first_off)
{
	u64 end = off + len, pos = 0;
	u32 i, cnt = 0;

	*first = NULL;
	for (i = 0; i < nr && sg; i++, sg = sg_next(sg)) {
		if (!*first && off < pos + sg->length) {
			*first = sg;
			*first_off = off - pos;
		}
		pos += sg->length;
		if (*first)
			cnt++;
		if (pos >= end)
			break;
	}
	/* rdma_rw moves whole entries from the offset on. */
	if (!*first || pos != end || *first_off > U32_MAX)
		return -EINVAL;
	return cnt;
}

int vbs_rw_init(struct kfi_rw_ctx *ctx, struct kfi_ep *ep,
		const struct kfi_iov *local, const struct kfi_rma_iov *remote,
		enum dma_data_direction dir)
{
	struct vbs_domain *vdom = to_vdom(ep->domain);
	struct vbs_ep *vep = to_vep(ep);
	struct vbs_rw *vrw = to_vrw(ctx);
	struct bvec_iter iter = {};
	u64 off = local->offset;
	unsigned long flags;
	u32 first_off = 0;
	int ret;

	/* Not on the list until set up: vbs_rw_destroy() leaves it alone. */
	memset(vrw, 0, sizeof(*vrw));
	INIT_LIST_HEAD(&vrw->entry);
	if (remote->key > U32_MAX || remote->len > U32_MAX)
		return -EINVAL;
	vrw->type = local->type;
	if (local->type == KFI_IOV_SG) {
		ret = vbs_sg_span(local->sg, local->nr, off, local->len,
				  &vrw->sg, &first_off);
		if (ret < 0)
			return ret;
		vrw->nr = ret;
	} else {
		/* A bio_vec array: start the iterator at the offset. */
		while (iter.bi_idx < local->nr &&
		       off >= local->bvec[iter.bi_idx].bv_len) {
			off -= local->bvec[iter.bi_idx].bv_len;
			iter.bi_idx++;
		}
		if (iter.bi_idx >= local->nr)
			return -EINVAL;
		iter.bi_offset = off;
		iter.bi_size = local->len;
		vrw->bvec = local->bvec;
		vrw->nr = local->nr;
	}

	/*
	 * The core's removal fence keeps vbs_ep_destroy() waiting until this
	 * returns, so the context is on the list before the release pass.
	 */
	if (local->type == KFI_IOV_SG)
		ret = rdma_rw_ctx_init(&vrw->rw, vep->qp, vdom->port, vrw->sg,
				       vrw->nr, first_off, remote->addr,
				       remote->key, dir);
	else
		ret = rdma_rw_ctx_init_bvec(&vrw->rw, vep->qp, vdom->port,
					    local->bvec, local->nr, iter,
					    remote->addr, remote->key, dir);
	if (ret > 0) {
		spin_lock_irqsave(&vep->rw_lock, flags);
		list_add_tail(&vrw->entry, &vep->rw_ctxs);
		spin_unlock_irqrestore(&vep->rw_lock, flags);
	}
	return ret;
}

static void vbs_rw_done(struct ib_cq *cq, struct ib_wc *wc)
{
	struct vbs_rw *vrw = container_of(wc->wr_cqe, struct vbs_rw, cqe);
	struct kfi_rw_ctx *ctx = vrw_ctx(vrw);
	struct kfi_wc kwc = {
		.cqe = vrw->ulp,
		.ep = ctx->ep,
		.status = vbs_wc_status(wc->status),
		.opcode = ctx->dir == DMA_TO_DEVICE ? KFI_WC_WRITE : KFI_WC_READ,
	};

	kfi_complete(ctx->ep->attr.send_cq, &kwc);
}

int vbs_rw_post(struct kfi_rw_ctx *ctx, struct kfi_cqe *cqe,
		const struct kfi_msg *chain, u32 chain_flags)
{
	struct vbs_domain *vdom = to_vdom(ctx->ep->domain);
	struct vbs_ep *vep = to_vep(ctx->ep);
	struct vbs_rw *vrw = to_vrw(ctx);
	struct ib_send_wr wr = {};
	struct vbs_map map = {};
	unsigned long irqflags;
	struct vbs_op *op;
	int ret;

	if (unlikely(!vbs_connected(vep)))
		return -ENOTCONN;
	if (chain) {
		if ((chain_flags & KFI_IMM) && (chain_flags & KFI_SEND_INV))
			return -EINVAL;
		/* A send after reads must not overtake the data it acknowledges. */
		if (ctx->dir == DMA_FROM_DEVICE)
			chain_flags |= KFI_FENCE;
		vbs_send_wr(chain, chain_flags, &wr);
		ret = vbs_map_msg(vep, &vep->sq, &map, chain, DMA_TO_DEVICE);
		if (ret)
			return ret;
	}
	vrw->ulp = cqe;
	vrw->cqe.done = vbs_rw_done;
	spin_lock_irqsave(&vep->sq.lock, irqflags);
	if (!chain) {
		ret = rdma_rw_ctx_post(&vrw->rw, vep->qp, vdom->port, &vrw->cqe,
				       NULL);
		goto out;
	}
	ret = vbs_sq_prep(vep, &map, chain->cqe, chain_flags, KFI_WC_SEND, &wr,
			  &op);
	if (ret)
		goto out;
	ret = rdma_rw_ctx_post(&vrw->rw, vep->qp, vdom->port, NULL, &wr);
	if (ret)
		vbs_unpost(&vep->sq);
out:
	spin_unlock_irqrestore(&vep->sq.lock, irqflags);
	if (ret)
		vbs_unmap(vep, &vep->sq, &map);
	return ret;
}

/* Release what rdma_rw holds for a context; the QP must still exist. */
static void vbs_rw_release(struct vbs_ep *vep, struct vbs_rw *vrw)
{
	struct kfi_rw_ctx *ctx = vrw_ctx(vrw);
	u32 port = vep_dom(vep)->port;

	if (vrw->type == KFI_IOV_SG)
		rdma_rw_ctx_destroy(&vrw->rw, vep->qp, port, vrw->sg, vrw->nr,
				    ctx->dir);
	else
		rdma_rw_ctx_destroy_bvec(&vrw->rw, vep->qp, port, vrw->bvec,
					 vrw->nr, ctx->dir);
}

/*
 * Whoever takes a context off the endpoint's list releases it, under
 * rw_lock: a kfi_rw_ctx_destroy() that raced with the endpoint's
 * destruction and saw it not yet gone either released its context before
 * vbs_rw_release_all() looks, or finds it released and does nothing. So a
 * second call, or one after vbs_ep_destroy(), is harmless, and the QP is
 * not destroyed while a context still puts MRs back into its pool.
 */
void vbs_rw_destroy(struct kfi_rw_ctx *ctx)
{
	struct vbs_ep *vep = to_vep(ctx->ep);
	struct vbs_rw *vrw = to_vrw(ctx);
	unsigned long flags;

	spin_lock_irqsave(&vep->rw_lock, flags);
	if (!list_empty(&vrw->entry)) {
		list_del_init(&vrw->entry);
		vbs_rw_release(vep, vrw);
	}
	spin_unlock_irqrestore(&vep->rw_lock, flags);
}

/*
 * The endpoint is drained and its QP about to go: release the contexts
 * the ULP has not destroyed yet, whose MRs and DMA mappings would leak
 * otherwise (and trip ib_destroy_qp()'s check that the MR pool is whole).
 * The ULP may still destroy them later (kfi_rw_ctx_destroy() calls
 * vbs_rw_destroy() at any time), which then finds them off the list.
 * One at a time, so that interrupts are not held off for all of them.
 */
static void vbs_rw_release_all(struct vbs_ep *vep)
{
	struct vbs_rw *vrw;
	unsigned long flags;

	do {
		spin_lock_irqsave(&vep->rw_lock, flags);
		vrw = list_first_entry_or_null(&vep->rw_ctxs, struct vbs_rw,
					       entry);
		if (vrw) {
			list_del_init(&vrw->entry);
			vbs_rw_release(vep, vrw);
		}
		spin_unlock_irqrestore(&vep->rw_lock, flags);
	} while (vrw);
}
