// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric data operations and memory regions.
 *
 * The data path costs one indirect call, a few argument checks and an RCU
 * read-side section: no reference counts, no locks and no allocation in
 * the core. The RCU section is what lets a drain and domain removal fence
 * operations that race with them (see kfi_ep_close() and the removal fence
 * in kfi_core.h). Provider post operations therefore must not sleep.
 */
#include <linux/device.h>
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>

#include "kfi_core.h"
#include <trace/events/kfabric.h>

#define KFI_SEND_FLAGS	(KFI_MORE | KFI_UNSIGNALED | KFI_FENCE | KFI_IMM | \
			 KFI_SEND_INV)
#define KFI_RECV_FLAGS	(KFI_MORE)
#define KFI_WRITE_FLAGS	(KFI_MORE | KFI_UNSIGNALED | KFI_FENCE | KFI_IMM)
#define KFI_READ_FLAGS	(KFI_MORE | KFI_UNSIGNALED | KFI_FENCE)
#define KFI_MR_FLAGS	(KFI_MORE | KFI_UNSIGNALED | KFI_FENCE)

/* Checks every operation shares; the provider checks segment counts. */
static int kfi_msg_check(const struct kfi_ep *ep, const struct kfi_msg *msg,
			 u32 flags, u32 valid, bool recv)
{
	u32 max_iov;
	u64 caps;
	u32 i;

	if (unlikely(!ep || !msg))
		return -EINVAL;
	max_iov = recv ? ep->attr.max_recv_sge : ep->attr.max_send_sge;
	if (unlikely((flags & ~valid) || msg->niov > max_iov ||
		     (msg->niov && !msg->iov)))
		return -EINVAL;
	caps = ep->domain->attr.caps;
	if (unlikely(!msg->cqe && !(flags & KFI_UNSIGNALED)))
		return -EINVAL;
	if (unlikely((flags & KFI_IMM) && !(caps & KFI_CAP_RMA_IMM)))
		return -EOPNOTSUPP;
	if (unlikely((flags & KFI_SEND_INV) && !(caps & KFI_CAP_REMOTE_INV)))
		return -EOPNOTSUPP;
	for (i = 0; i < msg->niov; i++) {
		const struct kfi_iov *iov = &msg->iov[i];

		if (unlikely(iov->type > KFI_IOV_MR))
			return -EINVAL;
		if (iov->type == KFI_IOV_MR) {
			if (unlikely(!iov->mr || iov->mr->domain != ep->domain ||
				     iov->offset > iov->mr->length ||
				     iov->len > iov->mr->length - iov->offset))
				return -EINVAL;
		} else if (unlikely(iov->nr && !iov->kvec)) {
			return -EINVAL;
		}
	}
	return 0;
}

static const struct kfi_provider_ops *kfi_ep_ops(const struct kfi_ep *ep)
{
	return ep->domain->fabric->ops;
}

/**
 * kfi_send() - send a message
 * @ep: a connected endpoint
 * @msg: buffers (at most &kfi_ep_attr.max_send_sge segments), completion,
 *	immediate data and key to invalidate
 * @flags: %KFI_MORE, %KFI_UNSIGNALED, %KFI_FENCE, %KFI_IMM, %KFI_SEND_INV
 *
 * Context: any; does not sleep.
 * Return: 0 when posted; -EINVAL for bad arguments; -EOPNOTSUPP for a flag
 * the domain lacks the capability for; -EAGAIN when the send queue is
 * full; -ENOTCONN when not connected, also once kfi_disconnect() or a
 * drain started; -ENODEV when the domain is going away.
 */
int kfi_send(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags)
{
	int ret;

	ret = kfi_msg_check(ep, msg, flags, KFI_SEND_FLAGS, false);
	if (!ret) {
		rcu_read_lock();
		ret = kfi_ep_post_check(ep);
		if (!ret)
			ret = kfi_ep_ops(ep)->post_send(ep, msg, flags);
		rcu_read_unlock();
		if (!ret)
			kfi_stat_inc(ep->domain, KFI_STAT_SEND);
	}
	trace_kfi_post(ep, KFI_WC_SEND, msg, flags, ret);
	return ret;
}
EXPORT_SYMBOL_GPL(kfi_send);

/**
 * kfi_recv() - post a receive buffer
 * @ep: an endpoint, connected or not yet
 * @msg: buffers (at most &kfi_ep_attr.max_recv_sge segments) and the
 *	completion, which is required
 * @flags: %KFI_MORE
 *
 * Receives are consumed in the order they were posted, by the peer's sends
 * and writes with immediate data. Data received into vmalloc'd kvec
 * memory is seen through its vmalloc address once the ULP called
 * kfi_iov_dma_end() on the buffer.
 *
 * Context: any; does not sleep.
 * Return: 0, -EINVAL, -EAGAIN when the receive queue is full, -ENOTCONN
 * once kfi_disconnect() or a drain started, -ENODEV.
 */
int kfi_recv(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags)
{
	int ret;

	ret = kfi_msg_check(ep, msg, flags, KFI_RECV_FLAGS, true);
	if (!ret) {
		rcu_read_lock();
		ret = kfi_ep_post_check(ep);
		if (!ret)
			ret = kfi_ep_ops(ep)->post_recv(ep, msg, flags);
		rcu_read_unlock();
		if (!ret)
			kfi_stat_inc(ep->domain, KFI_STAT_RECV);
	}
	trace_kfi_post(ep, KFI_WC_RECV, msg, flags, ret);
	return ret;
}
EXPORT_SYMBOL_GPL(kfi_recv);

static int kfi_rma_check(const struct kfi_ep *ep, const struct kfi_msg *msg,
			 const struct kfi_rma_iov *rma)
{
	if (unlikely(!(ep->domain->attr.caps & KFI_CAP_RMA)))
		return -EOPNOTSUPP;
	if (unlikely(!rma || rma->len != kfi_msg_len(msg) ||
		     rma->len > ep->domain->attr.max_rma_size))
		return -EINVAL;
	return 0;
}

/**
 * kfi_write() - write local buffers into a peer's memory region
 * @ep: a connected endpoint
 * @msg: local buffers (at most &kfi_ep_attr.max_send_sge segments),
 *	completion and immediate data
 * @rma: the remote range; its length must equal the local one
 * @flags: %KFI_MORE, %KFI_UNSIGNALED, %KFI_FENCE, %KFI_IMM
 *
 * With %KFI_IMM the peer consumes a receive, which completes with
 * %KFI_WC_IMM after the data is placed.
 *
 * Context: any; does not sleep.
 * Return: as kfi_send().
 */
int kfi_write(struct kfi_ep *ep, const struct kfi_msg *msg,
	      const struct kfi_rma_iov *rma, u32 flags)
{
	int ret;

	ret = kfi_msg_check(ep, msg, flags, KFI_WRITE_FLAGS, false);
	if (!ret)
		ret = kfi_rma_check(ep, msg, rma);
	if (!ret) {
		rcu_read_lock();
		ret = kfi_ep_post_check(ep);
		if (!ret)
			ret = kfi_ep_ops(ep)->post_write(ep, msg, rma, flags);
		rcu_read_unlock();
		if (!ret)
			kfi_stat_inc(ep->domain, KFI_STAT_WRITE);
	}
	trace_kfi_post(ep, KFI_WC_WRITE, msg, flags, ret);
	return ret;
}
EXPORT_SYMBOL_GPL(kfi_write);

/**
 * kfi_read() - read a peer's memory region into local buffers
 * @ep: a connected endpoint
 * @msg: local buffers (at most &kfi_ep_attr.max_send_sge segments) and
 *	completion
 * @rma: the remote range; its length must equal the local one
 * @flags: %KFI_MORE, %KFI_UNSIGNALED, %KFI_FENCE
 *
 * A local buffer of type %KFI_IOV_MR must have been mapped with
 * %KFI_ACCESS_REMOTE_WRITE where the wire places read responses like
 * remote writes (iWARP), or the provider refuses the read with -EINVAL; a
 * portable ULP maps the regions it reads into that way. Buffers of the
 * other types need nothing. Data read into vmalloc'd kvec memory is seen
 * through its vmalloc address once the ULP called kfi_iov_dma_end() on
 * the buffer, as with any DMA into vmalloc memory.
 *
 * Context: any; does not sleep.
 * Return: as kfi_send().
 */
int kfi_read(struct kfi_ep *ep, const struct kfi_msg *msg,
	     const struct kfi_rma_iov *rma, u32 flags)
{
	int ret;

	ret = kfi_msg_check(ep, msg, flags, KFI_READ_FLAGS, false);
	if (!ret)
		ret = kfi_rma_check(ep, msg, rma);
	if (!ret) {
		rcu_read_lock();
		ret = kfi_ep_post_check(ep);
		if (!ret)
			ret = kfi_ep_ops(ep)->post_read(ep, msg, rma, flags);
		rcu_read_unlock();
		if (!ret)
			kfi_stat_inc(ep->domain, KFI_STAT_READ);
	}
	trace_kfi_post(ep, KFI_WC_READ, msg, flags, ret);
	return ret;
}
EXPORT_SYMBOL_GPL(kfi_read);

/**
 * kfi_mr_alloc() - allocate a memory region
 * @domain: the domain
 * @max_segs: most segments a mapping of it may have, at most
 *	&kfi_domain_attr.max_mr_segs
 *
 * The region has no key until kfi_mr_map().
 *
 * Context: process context; may sleep.
 * Return: the region or an ERR_PTR(): -EINVAL, -EOPNOTSUPP without
 * memory region support, -ENOSPC, -ENODEV, or the provider's error.
 */
struct kfi_mr *kfi_mr_alloc(struct kfi_domain *domain, u32 max_segs)
{
	const struct kfi_provider_ops *ops;
	struct kfi_mr *mr;
	int ret, idx;

	if (!domain)
		return ERR_PTR(-EINVAL);
	ops = domain->fabric->ops;
	if (!ops->mr_create || !domain->attr.max_mr_segs)
		return ERR_PTR(-EOPNOTSUPP);
	if (!max_segs || max_segs > domain->attr.max_mr_segs)
		return ERR_PTR(-EINVAL);

	/* Removal waits until the region is on the list, or gone. */
	idx = kfi_fence_enter(domain);
	mutex_lock(&domain->lock);
	if (!kfi_domain_get_live(domain)) {
		mutex_unlock(&domain->lock);
		ret = -ENODEV;
		goto out_fence;
	}
	if (domain->nr_mr >= domain->attr.max_mr) {
		mutex_unlock(&domain->lock);
		ret = -ENOSPC;
		goto out_put;
	}
	domain->nr_mr++;
	mutex_unlock(&domain->lock);

	ret = -ENOMEM;
	mr = kzalloc(domain->fabric->mr_size, GFP_KERNEL);
	if (!mr)
		goto out_unreserve;
	mr->domain = domain;
	mr->max_segs = max_segs;
	INIT_LIST_HEAD(&mr->entry);
	ret = ops->mr_create(mr);
	if (ret)
		goto out_free;
	mutex_lock(&domain->lock);
	list_add_tail(&mr->entry, &domain->mrs);
	mutex_unlock(&domain->lock);
	kfi_fence_exit(domain, idx);
	return mr;

out_free:
	kfree(mr);
out_unreserve:
	mutex_lock(&domain->lock);
	domain->nr_mr--;
	mutex_unlock(&domain->lock);
out_put:
	/* Leave the fence first: the reference may be the domain's last. */
	kfi_fence_exit(domain, idx);
	kfi_domain_put(domain);
	return ERR_PTR(ret);
out_fence:
	kfi_fence_exit(domain, idx);
	return ERR_PTR(ret);
}
EXPORT_SYMBOL_GPL(kfi_mr_alloc);

/* Domain removal: destroy a region the ULP still holds (off the list). */
void kfi_mr_kill(struct kfi_mr *mr)
{
	struct kfi_domain *domain = mr->domain;

	domain->fabric->ops->mr_destroy(mr);
	mutex_lock(&domain->lock);
	mr->state = KFI_OBJ_DEAD;
	mutex_unlock(&domain->lock);
	wake_up_all(&domain->wait);
}

/**
 * kfi_mr_free() - free a memory region
 * @mr: the region
 *
 * Ends remote access to it if it is still mapped: the provider revokes the
 * key before the memory can be reused. The ULP must not free it while an
 * operation that uses it (a mapping, an invalidation, or a local buffer of
 * type %KFI_IOV_MR) is outstanding.
 *
 * Context: process context; may sleep.
 */
void kfi_mr_free(struct kfi_mr *mr)
{
	struct kfi_domain *domain;

	if (IS_ERR_OR_NULL(mr))
		return;
	domain = mr->domain;
	if (kfi_obj_take(domain, &mr->entry)) {
		domain->fabric->ops->mr_destroy(mr);
		kfi_obj_taken_done(domain);
	} else {
		wait_event(domain->wait, READ_ONCE(mr->state) == KFI_OBJ_DEAD);
	}

	mutex_lock(&domain->lock);
	domain->nr_mr--;
	mutex_unlock(&domain->lock);
	kfree(mr);
	kfi_domain_put(domain);
}
EXPORT_SYMBOL_GPL(kfi_mr_free);

/**
 * kfi_mr_map() - map buffers into a memory region under a fresh key
 * @ep: endpoint the mapping is ordered on; operations posted on it later
 *	(such as the send that tells the peer the key) run after it
 * @mr: the region, of @ep's domain and not currently mapped
 * @iov: the buffers (%KFI_IOV_KVEC, %KFI_IOV_BVEC or %KFI_IOV_SG), at most
 *	@mr->max_segs segments and &kfi_domain_attr.max_mr_size bytes, laid
 *	out as &struct kfi_mr describes
 * @access: %KFI_ACCESS_REMOTE_READ and/or %KFI_ACCESS_REMOTE_WRITE, or 0 for
 *	a region used only locally (as %KFI_IOV_MR buffers)
 * @cqe: completion, or NULL with %KFI_UNSIGNALED
 * @flags: %KFI_MORE, %KFI_UNSIGNALED, %KFI_FENCE
 *
 * On return @mr->key, @mr->addr and @mr->length describe the mapping; the
 * peer addresses bytes @mr->addr to @mr->addr + @mr->length - 1 with
 * @mr->key, and only those, with only the rights in @access.
 *
 * Context: any; does not sleep.
 * Return: 0, -EINVAL (also for a buffer of more segments than @mr takes,
 * or whose segment boundaries the provider cannot map), -E2BIG when the
 * buffer needs more pages than @mr holds, -EOPNOTSUPP, -EBUSY when @mr is
 * mapped, -EAGAIN, -ENODEV, or the provider's error.
 */
int kfi_mr_map(struct kfi_ep *ep, struct kfi_mr *mr, const struct kfi_iov *iov,
	       u32 access, struct kfi_cqe *cqe, u32 flags)
{
	int ret;

	if (unlikely(!ep || !mr || ep->domain != mr->domain || !iov ||
		     iov->type > KFI_IOV_SG || !iov->len ||
		     iov->len > ep->domain->attr.max_mr_size ||
		     (access & ~(KFI_ACCESS_REMOTE_READ | KFI_ACCESS_REMOTE_WRITE)) ||
		     (flags & ~KFI_MR_FLAGS) || (!cqe && !(flags & KFI_UNSIGNALED))))
		return -EINVAL;
	if (unlikely(!kfi_ep_ops(ep)->mr_map))
		return -EOPNOTSUPP;
	rcu_read_lock();
	ret = kfi_ep_post_check(ep);
	if (!ret)
		ret = kfi_ep_ops(ep)->mr_map(ep, mr, iov, access, cqe, flags);
	rcu_read_unlock();
	if (!ret)
		kfi_stat_inc(ep->domain, KFI_STAT_MR_MAP);
	trace_kfi_mr_map(ep, mr, access, ret);
	return ret;
}
EXPORT_SYMBOL_GPL(kfi_mr_map);

/**
 * kfi_mr_invalidate() - end remote access to a memory region
 * @ep: endpoint the invalidation is ordered on
 * @mr: the region, of @ep's domain and mapped
 * @cqe: completion, or NULL with %KFI_UNSIGNALED; once it completes, no
 *	peer access with the old key can happen
 * @flags: %KFI_MORE, %KFI_UNSIGNALED, %KFI_FENCE
 *
 * Context: any; does not sleep.
 * Return: 0, -EINVAL, -EOPNOTSUPP, -EAGAIN, -ENODEV, or the provider's
 * error.
 */
int kfi_mr_invalidate(struct kfi_ep *ep, struct kfi_mr *mr,
		      struct kfi_cqe *cqe, u32 flags)
{
	int ret;

	if (unlikely(!ep || !mr || ep->domain != mr->domain ||
		     (flags & ~KFI_MR_FLAGS) || (!cqe && !(flags & KFI_UNSIGNALED))))
		return -EINVAL;
	if (unlikely(!kfi_ep_ops(ep)->mr_invalidate))
		return -EOPNOTSUPP;
	rcu_read_lock();
	ret = kfi_ep_post_check(ep);
	if (!ret)
		ret = kfi_ep_ops(ep)->mr_invalidate(ep, mr, cqe, flags);
	rcu_read_unlock();
	if (!ret)
		kfi_stat_inc(ep->domain, KFI_STAT_MR_INV);
	trace_kfi_mr_invalidate(ep, mr, ret);
	return ret;
}
EXPORT_SYMBOL_GPL(kfi_mr_invalidate);

/**
 * kfi_mr_check() - check a peer's access to a memory region
 * @mr: the region the key names, or NULL if none does
 * @key: the key the peer used
 * @addr: the first address the peer named
 * @len: bytes
 * @access: %KFI_ACCESS_REMOTE_READ or %KFI_ACCESS_REMOTE_WRITE
 * @offset: set to the offset of @addr in the mapping
 *
 * For software providers, which must check every remote access (the
 * hardware does it for the verbs provider). The provider keeps @mr->key,
 * @mr->addr, @mr->length and @mr->access up to date under its own lock,
 * setting @mr->length and @mr->access to 0 when the region is invalidated,
 * and calls this under the same lock. The arithmetic cannot overflow, so
 * no @addr/@len pair a peer chooses reaches outside the mapping.
 *
 * Return: 0, or -EACCES when the key is unknown or stale, the region is
 * not mapped, lacks @access, or does not contain the whole range.
 */
int kfi_mr_check(const struct kfi_mr *mr, u64 key, u64 addr, u64 len,
		 u32 access, u64 *offset)
{
	if (!mr || mr->key != key || !mr->length)
		return -EACCES;
	if ((mr->access & access) != access || !access)
		return -EACCES;
	if (addr < mr->addr || addr - mr->addr > mr->length ||
	    len > mr->length - (addr - mr->addr))
		return -EACCES;
	*offset = addr - mr->addr;
	return 0;
}
EXPORT_SYMBOL_GPL(kfi_mr_check);

/**
 * kfi_obj_take() - claim an object for its *_free()
 * @domain: the object's domain
 * @entry: the object's entry on one of @domain's lists
 *
 * An object's *_free() destroys it only while it is still on its list
 * (removal takes it off before killing it), and then counts the
 * destruction in @domain->freeing until kfi_obj_taken_done(): removal
 * waits for that before it returns, since the provider frees what the
 * object uses right after. Otherwise the removal has the object and the
 * caller waits for it to be dead.
 *
 * Return: true if the caller must destroy the object.
 */
bool kfi_obj_take(struct kfi_domain *domain, struct list_head *entry)
{
	bool mine;

	mutex_lock(&domain->lock);
	mine = !list_empty(entry);
	if (mine) {
		list_del_init(entry);
		WRITE_ONCE(domain->freeing, domain->freeing + 1);
	}
	mutex_unlock(&domain->lock);
	return mine;
}

/* The destruction claimed by kfi_obj_take() is over. */
void kfi_obj_taken_done(struct kfi_domain *domain)
{
	mutex_lock(&domain->lock);
	WRITE_ONCE(domain->freeing, domain->freeing - 1);
	mutex_unlock(&domain->lock);
	wake_up_all(&domain->wait);
}

/* The first entry of @head, unlinked under the domain lock, or NULL. */
static struct list_head *kfi_domain_pop(struct kfi_domain *domain,
					struct list_head *head)
{
	struct list_head *e = NULL;

	mutex_lock(&domain->lock);
	if (!list_empty(head)) {
		e = head->next;
		list_del_init(e);
	}
	mutex_unlock(&domain->lock);
	return e;
}

/**
 * kfi_domain_kill_objects() - destroy what ULPs left on a removed domain
 * @domain: a domain whose clients have been removed
 *
 * Marks the domain dying (no new objects, no new calls), waits once for
 * the calls already inside the provider (the removal fence, kfi_core.h),
 * then destroys endpoints, memory regions and completion queues in that
 * order, since endpoints use the others.
 */
void kfi_domain_kill_objects(struct kfi_domain *domain)
{
	struct list_head *e;
	bool eps;

	mutex_lock(&domain->lock);
	WRITE_ONCE(domain->dying, true);
	mutex_unlock(&domain->lock);
	/*
	 * When synchronize_srcu() returns, creations that got past
	 * kfi_domain_get_live() have put their object on its list, and no
	 * call that saw the domain alive is still inside the provider.
	 */
	synchronize_srcu(&domain->srcu);
	synchronize_rcu();
	/* Pairs with kfi_ep_do_drain(): the fence above covers its posts. */
	smp_store_release(&domain->revoked, true);

	mutex_lock(&domain->lock);
	eps = !list_empty(&domain->eps);
	mutex_unlock(&domain->lock);
	if (eps)
		dev_info(domain->dev, "kfabric: %s removed with %s in use\n",
			 domain->attr.name, "endpoints");

	/*
	 * Take the objects off the domain's lists one at a time, under the
	 * lock: the ULP may free them meanwhile (killing an endpoint runs
	 * its handler, which often frees its regions), and its *_free() owns
	 * an object only while it is still on the list; otherwise it waits
	 * for the kill to mark it dead. A private list spliced off at once
	 * would leave the objects linked, and both sides would unlink them.
	 */
	while ((e = kfi_domain_pop(domain, &domain->eps)))
		kfi_ep_kill(list_entry(e, struct kfi_ep, entry));
	/*
	 * Endpoints the ULP took off the list to free them may still be
	 * draining into their completion queues: wait for them before the
	 * queues go.
	 */
	wait_event(domain->wait, !READ_ONCE(domain->freeing));
	while ((e = kfi_domain_pop(domain, &domain->mrs)))
		kfi_mr_kill(list_entry(e, struct kfi_mr, entry));
	while ((e = kfi_domain_pop(domain, &domain->cqs)))
		kfi_cq_kill(list_entry(e, struct kfi_cq, entry));
	/* And regions and queues being freed must be gone when we return. */
	wait_event(domain->wait, !READ_ONCE(domain->freeing));
}
