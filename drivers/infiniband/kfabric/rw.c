// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric read/write helper.
 *
 * Providers with a native way to move large scatter lists (the verbs
 * provider hands them to rdma_rw, which also picks memory registration
 * where the device needs it) implement &kfi_provider_ops.rw_init and
 * friends. For the others, the core splits a transfer into kfi_read() or
 * kfi_write() operations that respect the endpoint's segment and size
 * limits, posts them unsignaled with %KFI_MORE, and signals only the last
 * one, or the send chained after them. Each operation is a slice of the
 * caller's own array, so nothing is allocated.
 */
#include <linux/module.h>
#include <rdma/kfi/rw.h>

#include "kfi_core.h"

/*
 * Position in a bio_vec array or scatterlist: entry index, the entry itself
 * for scatterlists, and bytes consumed in it.
 */
struct kfi_rw_pos {
	u32 idx;
	struct scatterlist *sg;
	u64 skip;
};

static u64 kfi_rw_entry_len(const struct kfi_iov *iov, const struct kfi_rw_pos *p)
{
	if (iov->type == KFI_IOV_BVEC)
		return iov->bvec[p->idx].bv_len;
	return p->sg->length;
}

static void kfi_rw_entry_next(const struct kfi_iov *iov, struct kfi_rw_pos *p)
{
	p->idx++;
	p->skip = 0;
	if (iov->type == KFI_IOV_SG && p->idx < iov->nr)
		p->sg = sg_next(p->sg);
}

/* Position at the first byte of @iov; -EINVAL if its offset is too big. */
static int kfi_rw_pos_init(const struct kfi_iov *iov, struct kfi_rw_pos *p)
{
	u64 off = iov->offset, elen;

	*p = (struct kfi_rw_pos){ .sg = iov->type == KFI_IOV_SG ? iov->sg : NULL };
	while (p->idx < iov->nr) {
		elen = kfi_rw_entry_len(iov, p);
		if (off < elen) {
			p->skip = off;
			return 0;
		}
		off -= elen;
		kfi_rw_entry_next(iov, p);
	}
	return off ? -EINVAL : 0;
}

/*
 * Carve the next operation out of the transfer at @p: at most @max_sge
 * entries and @max_size bytes of the @left still to go. Fills @op with a
 * slice of the caller's array and advances @p. Returns the bytes taken; 0
 * means the entries ran out before the transfer's length.
 */
static u64 kfi_rw_next_op(const struct kfi_iov *iov, struct kfi_rw_pos *p,
			  u64 left, u32 max_sge, u64 max_size, struct kfi_iov *op)
{
	u64 len = 0, avail, take;
	u32 nents = 0;

	/* Empty entries do not start an operation. */
	while (p->idx < iov->nr && kfi_rw_entry_len(iov, p) == p->skip)
		kfi_rw_entry_next(iov, p);
	if (p->idx >= iov->nr)
		return 0;

	*op = (struct kfi_iov){ .type = iov->type, .offset = p->skip };
	if (iov->type == KFI_IOV_BVEC)
		op->bvec = iov->bvec + p->idx;
	else
		op->sg = p->sg;

	while (left && nents < max_sge && len < max_size && p->idx < iov->nr) {
		avail = kfi_rw_entry_len(iov, p) - p->skip;
		take = min3(avail, left, max_size - len);
		len += take;
		left -= take;
		nents++;
		if (take == avail)
			kfi_rw_entry_next(iov, p);
		else
			p->skip += take;
	}
	op->nr = nents;
	op->len = len;
	return len;
}

/* Split the whole transfer without posting; the operation count. */
static int kfi_rw_count(const struct kfi_iov *iov, u32 max_sge, u64 max_size)
{
	struct kfi_rw_pos p;
	struct kfi_iov op;
	u64 left = iov->len, got;
	int n = 0, ret;

	ret = kfi_rw_pos_init(iov, &p);
	if (ret)
		return ret;
	while (left) {
		got = kfi_rw_next_op(iov, &p, left, max_sge, max_size, &op);
		if (!got)
			return -EINVAL;
		left -= got;
		n++;
	}
	return n;
}

/**
 * kfi_rw_ctx_init() - prepare a transfer between a local buffer and a
 *	peer's memory region
 * @ctx: the context, usually embedded in the ULP's per-I/O structure
 * @ep: a connected endpoint with &kfi_ep_attr.max_rw_ctxs set
 * @local: the local buffer: %KFI_IOV_BVEC or %KFI_IOV_SG
 * @remote: the peer's range (address, length, key); the lengths must match
 * @dir: %DMA_TO_DEVICE to write the local buffer to the peer,
 *	%DMA_FROM_DEVICE to read the peer's range into the local buffer
 *
 * Nothing is sent yet. The arrays behind @local must stay valid until
 * kfi_rw_ctx_destroy().
 *
 * Context: process context; may sleep, as providers may allocate (rdma_rw
 * does). A completion callback of a workqueue-polled queue qualifies.
 * Return: the number of operations the transfer takes (send queue slots,
 * as for rdma_rw_ctx_init()), or -EINVAL, -EOPNOTSUPP, -ENODEV, or the
 * provider's error.
 */
int kfi_rw_ctx_init(struct kfi_rw_ctx *ctx, struct kfi_ep *ep,
		    const struct kfi_iov *local, const struct kfi_rma_iov *remote,
		    enum dma_data_direction dir)
{
	const struct kfi_provider_ops *ops;
	const struct kfi_domain_attr *a;
	int ret, idx;

	if (unlikely(!ctx || !ep || !local || !remote))
		return -EINVAL;
	a = &ep->domain->attr;
	ops = ep->domain->fabric->ops;
	if (unlikely(!(a->caps & KFI_CAP_RMA) || !ep->attr.max_rw_ctxs))
		return -EOPNOTSUPP;
	if (unlikely((dir != DMA_TO_DEVICE && dir != DMA_FROM_DEVICE) ||
		     (local->type != KFI_IOV_BVEC && local->type != KFI_IOV_SG) ||
		     !local->len || local->len != remote->len ||
		     local->len > ep->attr.max_rw_size || (local->nr && !local->bvec)))
		return -EINVAL;

	*ctx = (struct kfi_rw_ctx){ .ep = ep, .dir = dir };
	if (ops->rw_init) {
		/* May sleep: the removal fence of the sleeping calls. */
		idx = kfi_fence_enter(ep->domain);
		ret = kfi_ep_post_check(ep);
		if (!ret) {
			ctx->by_provider = true;
			ret = ops->rw_init(ctx, ep, local, remote, dir);
		}
		kfi_fence_exit(ep->domain, idx);
	} else {
		ctx->max_sge = ep->rw_sge;
		ctx->gen.local = *local;
		ctx->gen.remote = *remote;
		ret = kfi_rw_count(local, ctx->max_sge, a->max_rma_size);
	}
	if (ret > 0)
		ctx->nr_ops = ret;
	return ret;
}
EXPORT_SYMBOL_GPL(kfi_rw_ctx_init);

/**
 * kfi_rw_ctx_post() - start a prepared transfer
 * @ctx: a context set up by kfi_rw_ctx_init()
 * @cqe: completion of the whole transfer; NULL when @chain is given
 * @chain: a send to post right after the transfer (e.g. the response that
 *	follows the data of a read command), or NULL; its own &kfi_msg.cqe
 *	reports the whole sequence, and for a read it waits for the data
 * @chain_flags: flags of the chained send
 *
 * The operations are posted unsignaled, so the ULP hears of the transfer
 * only through @cqe or the chained send's completion; an error in any of
 * them fails that completion (with the error, or -ECANCELED).
 *
 * Context: any; does not sleep.
 * Return: 0, or the error of the first operation that could not be posted,
 * in which case earlier ones may already run and the ULP must treat the
 * endpoint as broken (disconnect it).
 */
int kfi_rw_ctx_post(struct kfi_rw_ctx *ctx, struct kfi_cqe *cqe,
		    const struct kfi_msg *chain, u32 chain_flags)
{
	struct kfi_ep *ep = ctx->ep;
	struct kfi_rma_iov rma;
	struct kfi_rw_pos p;
	struct kfi_iov op;
	struct kfi_msg msg = { .iov = &op, .niov = 1 };
	u64 left, got, max_size;
	u32 flags;
	int ret;

	if (unlikely(!chain == !cqe))
		return -EINVAL;
	if (ctx->by_provider) {
		/* The same removal fence as kfi_send() and friends. */
		rcu_read_lock();
		ret = kfi_ep_post_check(ep);
		if (!ret)
			ret = ep->domain->fabric->ops->rw_post(ctx, cqe, chain,
							       chain_flags);
		rcu_read_unlock();
		return ret;
	}

	max_size = ep->domain->attr.max_rma_size;
	rma = ctx->gen.remote;
	left = ctx->gen.local.len;
	ret = kfi_rw_pos_init(&ctx->gen.local, &p);
	if (ret)
		return ret;
	while (left) {
		got = kfi_rw_next_op(&ctx->gen.local, &p, left, ctx->max_sge,
				     max_size, &op);
		if (WARN_ON_ONCE(!got))
			return -EINVAL;
		left -= got;
		rma.len = got;
		if (left || chain) {
			flags = KFI_UNSIGNALED | KFI_MORE;
			msg.cqe = NULL;
		} else {
			flags = 0;
			msg.cqe = cqe;
		}
		if (ctx->dir == DMA_TO_DEVICE)
			ret = kfi_write(ep, &msg, &rma, flags);
		else
			ret = kfi_read(ep, &msg, &rma, flags);
		if (ret)
			return ret;
		rma.addr += got;
	}
	if (!chain)
		return 0;
	/* A send after reads must not overtake the data it acknowledges. */
	if (ctx->dir == DMA_FROM_DEVICE)
		chain_flags |= KFI_FENCE;
	return kfi_send(ep, chain, chain_flags);
}
EXPORT_SYMBOL_GPL(kfi_rw_ctx_post);

/**
 * kfi_rw_ctx_destroy() - release a transfer's resources
 * @ctx: a context set up by kfi_rw_ctx_init(), completed or never posted
 *
 * Also after the endpoint was destroyed, by its domain's removal, as
 * long as the endpoint is not freed: the provider released the context
 * then, and this only forgets it.
 *
 * Context: any; does not sleep.
 */
void kfi_rw_ctx_destroy(struct kfi_rw_ctx *ctx)
{
	if (ctx->by_provider) {
		ctx->ep->domain->fabric->ops->rw_destroy(ctx);
		ctx->by_provider = false;
	}
	ctx->nr_ops = 0;
}
EXPORT_SYMBOL_GPL(kfi_rw_ctx_destroy);

/**
 * kfi_rw_max_ops() - send queue slots one transfer may take
 * @ep: the endpoint
 * @len: bytes of the transfer
 * @nsegs: segments of its local buffer
 *
 * For ULPs that account send queue room per I/O, as nvmet-rdma does with
 * the return value of rdma_rw_ctx_init().
 *
 * Return: an upper bound of what kfi_rw_ctx_init() returns for it.
 */
u32 kfi_rw_max_ops(struct kfi_ep *ep, u64 len, u32 nsegs)
{
	const struct kfi_domain_attr *a = &ep->domain->attr;

	if (!len || !nsegs)
		return 0;
	if (ep->domain->fabric->ops->rw_init)
		return ep->rw_ops_per_ctx;
	return DIV_ROUND_UP(nsegs, ep->rw_sge ? ep->rw_sge : a->max_rma_sge) +
	       DIV64_U64_ROUND_UP(len, a->max_rma_size);
}
EXPORT_SYMBOL_GPL(kfi_rw_max_ops);
