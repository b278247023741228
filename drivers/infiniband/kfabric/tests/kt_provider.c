// SPDX-License-Identifier: GPL-2.0-only
/*
 * A software kfabric provider for the KUnit tests: fabric "kunit", domains
 * named by the tests, addresses of the form (domain name, port).
 * Endpoints connect to passive endpoints of the same fabric and move data
 * with the CPU, synchronously when an operation is posted; completions go
 * through the core's software completion queue, connection events through
 * a work item per endpoint. Every remote access is checked with
 * kfi_mr_check(), and the shape of RMA operations is recorded so the
 * tests can see what the core's read/write helper posts.
 */
#include <linux/delay.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "kt_provider.h"

static DEFINE_SPINLOCK(kt_lock);	/* data path and mapping state */
static DEFINE_MUTEX(kt_cm_mutex);	/* passive endpoints, connection setup */
static LIST_HEAD(kt_peps);

static struct kt_domain *to_kt_domain(struct kfi_domain *d)
{
	return container_of(d, struct kt_domain, dom);
}

static struct kt_ep *to_kt_ep(struct kfi_ep *ep)
{
	return container_of(ep, struct kt_ep, ep);
}

static struct kt_mr *to_kt_mr(struct kfi_mr *mr)
{
	return container_of(mr, struct kt_mr, mr);
}

static struct kt_pep *to_kt_pep(struct kfi_pep *pep)
{
	return container_of(pep, struct kt_pep, pep);
}

/*
 * Connection events: queued, then delivered in order by cm_work. Queued
 * under kt_lock, while the endpoint is known to be linked and therefore not
 * yet drained or destroyed.
 */
static void kt_event_locked(struct kt_ep *kep, enum kfi_cm_event_type type,
			    int status, const void *data, u32 len)
{
	struct kt_event *e = kzalloc_obj(*e, GFP_ATOMIC);

	lockdep_assert_held(&kt_lock);
	if (WARN_ON(!e))
		return;
	e->ev.type = type;
	e->ev.status = status;
	if (len) {
		memcpy(e->data, data, len);
		e->ev.private_data = e->data;
		e->ev.private_data_len = len;
	}
	list_add_tail(&e->list, &kep->events);
	schedule_work(&kep->cm_work);
}

static void kt_event(struct kt_ep *kep, enum kfi_cm_event_type type, int status,
		     const void *data, u32 len)
{
	spin_lock_irq(&kt_lock);
	kt_event_locked(kep, type, status, data, len);
	spin_unlock_irq(&kt_lock);
}

static void kt_connect_work(struct kt_ep *kep);

static void kt_cm_work(struct work_struct *work)
{
	struct kt_ep *kep = container_of(work, struct kt_ep, cm_work);
	struct kt_event *e;

	if (READ_ONCE(kep->connect_pending)) {
		kep->connect_pending = false;
		kt_connect_work(kep);
	}
	for (;;) {
		spin_lock_irq(&kt_lock);
		e = list_first_entry_or_null(&kep->events, struct kt_event, list);
		if (e)
			list_del(&e->list);
		spin_unlock_irq(&kt_lock);
		if (!e)
			break;
		kfi_cm_event(&kep->ep, &e->ev);
		kfree(e);
	}
}

/* Completion wrapper: frees the provider slot, then calls the ULP. */
static void kt_op_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct kt_op *op = container_of(wc->cqe, struct kt_op, cqe);
	struct kfi_cqe *ulp = op->ulp_cqe;
	unsigned long flags;

	spin_lock_irqsave(&kt_lock, flags);
	op->busy = false;
	spin_unlock_irqrestore(&kt_lock, flags);
	wc->cqe = ulp;
	ulp->done(cq, wc);
}

/* Queue a completion for @op; kt_lock held. */
static void kt_complete(struct kt_op *op, struct kfi_cq *cq,
			enum kfi_wc_opcode opcode, int status, u32 flags,
			u32 byte_len, u32 imm, u64 inv_key)
{
	struct kfi_wc wc = {
		.cqe = &op->cqe, .ep = &op->ep->ep, .status = status,
		.opcode = opcode, .flags = flags, .byte_len = byte_len,
		.imm_data = imm, .inv_key = inv_key,
	};

	op->cqe.done = kt_op_done;
	WARN_ON(kfi_cq_sw_push(cq, &wc));
}

static struct kt_op *kt_send_slot(struct kt_ep *kep)
{
	u32 i;

	for (i = 0; i < kep->nsops; i++) {
		if (!kep->sops[i].busy) {
			kep->sops[i].busy = true;
			return &kep->sops[i];
		}
	}
	return NULL;
}

/* Finish a send-side operation: completion, or just the slot if unsignaled. */
static void kt_send_done(struct kt_ep *kep, struct kt_op *op,
			 enum kfi_wc_opcode opcode, struct kfi_cqe *cqe,
			 u32 flags, int status)
{
	if (status && status != -ECANCELED)
		kep->state = KT_ERROR;
	if (!cqe || ((flags & KFI_UNSIGNALED) && !status)) {
		op->busy = false;
		return;
	}
	op->ulp_cqe = cqe;
	kt_complete(op, kep->ep.attr.send_cq, opcode, status, 0, 0, 0, 0);
}

static void kt_flush_recvs(struct kt_ep *kep)
{
	while (kep->rcount) {
		struct kt_op *op = &kep->rops[kep->rhead];

		kep->rhead = (kep->rhead + 1) % kep->nrops;
		kep->rcount--;
		kt_complete(op, kep->ep.attr.recv_cq, KFI_WC_RECV, -ECANCELED,
			    0, 0, 0, 0);
	}
}

/* A buffer the iterator can walk: memory region ranges become the mapping. */
static struct kfi_iov kt_buf_resolve(const struct kfi_iov *iov)
{
	struct kfi_iov r = *iov;

	if (iov->type == KFI_IOV_MR) {
		r = to_kt_mr(iov->mr)->iov;
		r.offset += iov->offset;
		r.len = iov->len;
	}
	return r;
}

static u64 kt_len(const struct kfi_iov *iov, u32 niov)
{
	u64 len = 0;
	u32 i;

	for (i = 0; i < niov; i++)
		len += iov[i].len;
	return len;
}

/* Copy buffers into the bounce buffer, in order. */
static int kt_gather(struct kt_domain *kd, const struct kfi_iov *iov, u32 niov)
{
	struct kfi_iov r;
	u64 done = 0;
	u32 i;
	int ret;

	if (kt_len(iov, niov) > KT_BOUNCE)
		return -EMSGSIZE;
	for (i = 0; i < niov; i++) {
		r = kt_buf_resolve(&iov[i]);
		ret = kfi_iov_copy(&r, 0, kd->bounce + done, r.len, false);
		if (ret)
			return ret;
		done += r.len;
	}
	return 0;
}

/* Copy @len bytes of the bounce buffer into buffers, in order. */
static int kt_scatter(struct kt_domain *kd, u64 len, const struct kfi_iov *iov,
		      u32 niov)
{
	struct kfi_iov r;
	u64 done = 0, n;
	u32 i;
	int ret;

	for (i = 0; i < niov && done < len; i++) {
		r = kt_buf_resolve(&iov[i]);
		n = min(r.len, len - done);
		ret = kfi_iov_copy(&r, 0, kd->bounce + done, n, true);
		if (ret)
			return ret;
		done += n;
	}
	return 0;
}

static int kt_check_bufs(struct kt_ep *kep, const struct kfi_iov *iov, u32 niov,
			 u32 max_segs)
{
	int segs = 0, n;
	u32 i;

	for (i = 0; i < niov; i++) {
		if (iov[i].type == KFI_IOV_MR) {
			if (!iov[i].mr->length)
				return -EINVAL;	/* not mapped */
			segs++;
			continue;
		}
		n = kfi_iov_nsegs(&iov[i], 0);
		if (n < 0)
			return n;
		segs += n;
	}
	return segs > max_segs ? -EINVAL : segs;
}

static void kt_record(struct kt_domain *kd, int segs, u64 len)
{
	kd->ops_seen++;
	kd->max_segs_seen = max_t(u32, kd->max_segs_seen, segs);
	kd->max_len_seen = max(kd->max_len_seen, len);
}

/*
 * Deliver a send (or the immediate data of a write) into the peer's next
 * receive. Returns the status for the sender's completion; kt_lock held.
 */
static int kt_deliver(struct kt_ep *kep, const struct kfi_msg *msg, u32 flags,
		      bool write)
{
	struct kt_ep *peer = kep->peer;
	struct kt_domain *pd = to_kt_domain(peer->ep.domain);
	u32 wflags = write ? KFI_WC_RDMA_WRITE : 0, len = 0;
	u64 inv_key = 0;
	struct kt_op *rop;
	int ret;

	if (peer->state != KT_CONNECTED || !peer->rcount)
		return -ETIMEDOUT;	/* receiver not ready */
	rop = &peer->rops[peer->rhead];
	/* The write's length for both: kfi.h defines byte_len that way. */
	len = kt_len(msg->iov, msg->niov);
	if (!write) {
		if (len > kt_len(rop->iov, rop->niov))
			return -EMSGSIZE;
		ret = kt_gather(to_kt_domain(kep->ep.domain), msg->iov, msg->niov);
		if (ret)
			return ret;
		if (pd != to_kt_domain(kep->ep.domain))
			memcpy(pd->bounce, to_kt_domain(kep->ep.domain)->bounce, len);
		ret = kt_scatter(pd, len, rop->iov, rop->niov);
		if (ret)
			return ret;
	}
	if (flags & KFI_SEND_INV) {
		struct kt_mr *km = xa_load(&pd->mrs, msg->inv_key >> 8);

		if (!km || km->mr.key != msg->inv_key || !km->mr.length)
			return -EREMOTEIO;
		km->mr.length = 0;
		km->mr.access = 0;
		wflags |= KFI_WC_INV;
		inv_key = msg->inv_key;
	}
	if (flags & KFI_IMM)
		wflags |= KFI_WC_IMM;
	peer->rhead = (peer->rhead + 1) % peer->nrops;
	peer->rcount--;
	kt_complete(rop, peer->ep.attr.recv_cq, KFI_WC_RECV, 0, wflags, len,
		    msg->imm_data, inv_key);
	return 0;
}

/* Common front of send-side posts: state, slot and segment checks. */
static int kt_post_begin(struct kt_ep *kep, const struct kfi_iov *iov, u32 niov,
			 struct kt_op **op)
{
	int segs;

	if (kep->state == KT_IDLE || kep->state == KT_CONNECTING)
		return -ENOTCONN;
	segs = kt_check_bufs(kep, iov, niov, kep->ep.attr.max_send_sge);
	if (segs < 0)
		return segs;
	*op = kt_send_slot(kep);
	if (!*op)
		return -EAGAIN;
	(*op)->ep = kep;
	return segs;
}

static int kt_post_send(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags)
{
	struct kt_ep *kep = to_kt_ep(ep);
	unsigned long irqflags;
	struct kt_op *op;
	int ret;

	spin_lock_irqsave(&kt_lock, irqflags);
	ret = kt_post_begin(kep, msg->iov, msg->niov, &op);
	if (ret >= 0) {
		ret = kep->state == KT_CONNECTED ?
		      kt_deliver(kep, msg, flags, false) : -ECANCELED;
		kt_send_done(kep, op, KFI_WC_SEND, msg->cqe, flags, ret);
		ret = 0;
	}
	spin_unlock_irqrestore(&kt_lock, irqflags);
	return ret;
}

static int kt_post_recv(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags)
{
	struct kt_ep *kep = to_kt_ep(ep);
	unsigned long irqflags;
	struct kt_op *op;
	int ret;

	if (msg->niov > KT_MAX_SGE)
		return -EINVAL;
	spin_lock_irqsave(&kt_lock, irqflags);
	ret = kt_check_bufs(kep, msg->iov, msg->niov, ep->attr.max_recv_sge);
	if (ret < 0)
		goto out;
	op = &kep->rops[(kep->rhead + kep->rcount) % kep->nrops];
	if (kep->rcount == kep->nrops || op->busy) {
		ret = -EAGAIN;
		goto out;
	}
	op->busy = true;
	op->ep = kep;
	op->ulp_cqe = msg->cqe;
	memcpy(op->iov, msg->iov, msg->niov * sizeof(*msg->iov));
	op->niov = msg->niov;
	if (kep->state == KT_ERROR || kep->state == KT_DISCONNECTED) {
		kt_complete(op, ep->attr.recv_cq, KFI_WC_RECV, -ECANCELED,
			    0, 0, 0, 0);
	} else {
		kep->rcount++;
	}
	ret = 0;
out:
	spin_unlock_irqrestore(&kt_lock, irqflags);
	return ret;
}

static int kt_post_rma(struct kfi_ep *ep, const struct kfi_msg *msg,
		       const struct kfi_rma_iov *rma, u32 flags, bool write)
{
	struct kt_ep *kep = to_kt_ep(ep);
	struct kt_domain *kd = to_kt_domain(ep->domain);
	enum kfi_wc_opcode opcode = write ? KFI_WC_WRITE : KFI_WC_READ;
	unsigned long irqflags;
	struct kt_domain *pd;
	struct kt_mr *km;
	struct kt_op *op;
	u64 off;
	int ret, segs;

	spin_lock_irqsave(&kt_lock, irqflags);
	segs = kt_post_begin(kep, msg->iov, msg->niov, &op);
	if (segs < 0) {
		ret = segs;
		goto out;
	}
	kt_record(kd, segs, rma->len);
	if (kep->state != KT_CONNECTED) {
		kt_send_done(kep, op, opcode, msg->cqe, flags, -ECANCELED);
		ret = 0;
		goto out;
	}
	pd = to_kt_domain(kep->peer->ep.domain);
	km = xa_load(&pd->mrs, rma->key >> 8);
	ret = kfi_mr_check(km ? &km->mr : NULL, rma->key, rma->addr, rma->len,
			   write ? KFI_ACCESS_REMOTE_WRITE : KFI_ACCESS_REMOTE_READ,
			   &off);
	if (!ret && write) {
		ret = kt_gather(kd, msg->iov, msg->niov);
		if (!ret)
			ret = kfi_iov_copy(&km->iov, off, kd->bounce, rma->len, true);
		if (!ret && (flags & KFI_IMM))
			ret = kt_deliver(kep, msg, flags, true);
	} else if (!ret) {
		ret = kfi_iov_copy(&km->iov, off, kd->bounce, rma->len, false);
		if (!ret)
			ret = kt_scatter(kd, rma->len, msg->iov, msg->niov);
	}
	kt_send_done(kep, op, opcode, msg->cqe, flags, ret);
	ret = 0;
out:
	spin_unlock_irqrestore(&kt_lock, irqflags);
	return ret;
}

static int kt_post_write(struct kfi_ep *ep, const struct kfi_msg *msg,
			 const struct kfi_rma_iov *rma, u32 flags)
{
	return kt_post_rma(ep, msg, rma, flags, true);
}

static int kt_post_read(struct kfi_ep *ep, const struct kfi_msg *msg,
			const struct kfi_rma_iov *rma, u32 flags)
{
	return kt_post_rma(ep, msg, rma, flags, false);
}

static int kt_mr_create(struct kfi_mr *mr)
{
	struct kt_domain *kd = to_kt_domain(mr->domain);
	struct kt_mr *km = to_kt_mr(mr);

	return xa_alloc(&kd->mrs, &km->index, km, XA_LIMIT(1, 0xffffff),
			GFP_KERNEL);
}

/*
 * A slow destruction, as a device's may be: removal must not return (and
 * a provider free what the object uses) while it runs.
 */
static void kt_destroy_begin(struct kt_domain *kd)
{
	struct kt_hold *hold = kd->destroy_hold;

	if (hold) {
		atomic_inc(&hold->inside);
		wait_for_completion(&hold->gate);
	}
}

static void kt_destroy_end(struct kt_domain *kd)
{
	struct kt_hold *hold = kd->destroy_hold;

	if (hold)
		atomic_dec(&hold->inside);
}

static void kt_mr_destroy(struct kfi_mr *mr)
{
	struct kt_domain *kd = to_kt_domain(mr->domain);
	struct kt_mr *km = to_kt_mr(mr);

	kt_destroy_begin(kd);
	spin_lock_irq(&kt_lock);
	mr->length = 0;
	mr->access = 0;
	spin_unlock_irq(&kt_lock);
	xa_erase(&kd->mrs, km->index);
	kt_destroy_end(kd);
}

static int kt_mr_map(struct kfi_ep *ep, struct kfi_mr *mr,
		     const struct kfi_iov *iov, u32 access, struct kfi_cqe *cqe,
		     u32 flags)
{
	struct kt_ep *kep = to_kt_ep(ep);
	struct kt_mr *km = to_kt_mr(mr);
	unsigned long irqflags;
	struct kt_op *op;
	int ret;

	ret = kfi_iov_nsegs(iov, 0);
	if (ret < 0)
		return ret;
	if (ret > mr->max_segs)
		return -EINVAL;
	spin_lock_irqsave(&kt_lock, irqflags);
	if (mr->length) {
		ret = -EBUSY;
		goto out;
	}
	op = kt_send_slot(kep);
	if (!op) {
		ret = -EAGAIN;
		goto out;
	}
	op->ep = kep;
	km->iov = *iov;
	km->gen++;
	mr->key = (u64)km->index << 8 | km->gen;
	mr->addr = (u64)km->index << 32;
	mr->length = iov->len;
	mr->access = access;
	kt_send_done(kep, op, KFI_WC_MR_MAP, cqe, flags, 0);
	ret = 0;
out:
	spin_unlock_irqrestore(&kt_lock, irqflags);
	return ret;
}

static int kt_mr_invalidate(struct kfi_ep *ep, struct kfi_mr *mr,
			    struct kfi_cqe *cqe, u32 flags)
{
	struct kt_ep *kep = to_kt_ep(ep);
	unsigned long irqflags;
	struct kt_op *op;
	int ret = -EAGAIN;

	spin_lock_irqsave(&kt_lock, irqflags);
	op = kt_send_slot(kep);
	if (op) {
		op->ep = kep;
		mr->length = 0;
		mr->access = 0;
		kt_send_done(kep, op, KFI_WC_MR_INV, cqe, flags, 0);
		ret = 0;
	}
	spin_unlock_irqrestore(&kt_lock, irqflags);
	return ret;
}

static int kt_cq_create(struct kfi_cq *cq, const struct kfi_cq_attr *attr)
{
	return kfi_cq_sw_init(cq);
}

static void kt_cq_destroy(struct kfi_cq *cq)
{
	struct kt_domain *kd = to_kt_domain(cq->domain);

	kt_destroy_begin(kd);
	kt_destroy_end(kd);
}

static int kt_ep_create(struct kfi_ep *ep, const struct kfi_ep_attr *attr)
{
	struct kt_ep *kep = to_kt_ep(ep);

	kep->nsops = attr->max_send_ops;
	kep->nrops = attr->max_recv_ops;
	kep->sops = kvcalloc(kep->nsops, sizeof(*kep->sops), GFP_KERNEL);
	kep->rops = kvcalloc(kep->nrops, sizeof(*kep->rops), GFP_KERNEL);
	if (!kep->sops || !kep->rops) {
		kvfree(kep->sops);
		kvfree(kep->rops);
		return -ENOMEM;
	}
	INIT_LIST_HEAD(&kep->events);
	INIT_WORK(&kep->cm_work, kt_cm_work);
	return 0;
}

/* Break the connection on both sides; kt_lock held. */
static void kt_break(struct kt_ep *kep, enum kt_state state)
{
	struct kt_ep *peer = kep->peer;

	kep->state = state;
	kt_flush_recvs(kep);
	if (peer) {
		peer->peer = NULL;
		if (peer->state == KT_CONNECTED)
			peer->state = KT_DISCONNECTED;
		kt_flush_recvs(peer);
		kep->peer = NULL;
	}
}

static int kt_disconnect(struct kfi_ep *ep)
{
	struct kt_ep *kep = to_kt_ep(ep);

	spin_lock_irq(&kt_lock);
	if (kep->state != KT_CONNECTED && kep->state != KT_ERROR) {
		spin_unlock_irq(&kt_lock);
		return -ENOTCONN;
	}
	if (kep->peer)
		kt_event_locked(kep->peer, KFI_CM_DISCONNECTED, 0, NULL, 0);
	kt_event_locked(kep, KFI_CM_DISCONNECTED, 0, NULL, 0);
	kt_break(kep, KT_DISCONNECTED);
	spin_unlock_irq(&kt_lock);
	return 0;
}

static void kt_ep_drain(struct kfi_ep *ep)
{
	struct kt_ep *kep = to_kt_ep(ep);
	unsigned int ms = to_kt_domain(ep->domain)->drain_ms;

	if (ms)
		msleep(ms);
	spin_lock_irq(&kt_lock);
	if (kep->peer)
		kt_event_locked(kep->peer, KFI_CM_DISCONNECTED, 0, NULL, 0);
	kt_break(kep, KT_ERROR);
	spin_unlock_irq(&kt_lock);
	/* Send-side operations complete when posted; receives were flushed. */
	kfi_cq_sw_flush(ep->attr.send_cq);
	if (ep->attr.recv_cq != ep->attr.send_cq)
		kfi_cq_sw_flush(ep->attr.recv_cq);
}

static void kt_ep_destroy(struct kfi_ep *ep)
{
	struct kt_ep *kep = to_kt_ep(ep);
	struct kt_event *e, *tmp;

	cancel_work_sync(&kep->cm_work);
	list_for_each_entry_safe(e, tmp, &kep->events, list)
		kfree(e);
	kvfree(kep->sops);
	kvfree(kep->rops);
}

static int kt_connect(struct kfi_ep *ep, const struct kfi_addr *dest,
		      const void *pdata, u32 len)
{
	struct kt_ep *kep = to_kt_ep(ep);

	spin_lock_irq(&kt_lock);
	if (kep->state != KT_IDLE) {
		spin_unlock_irq(&kt_lock);
		return -EISCONN;
	}
	kep->state = KT_CONNECTING;
	kep->dest = *dest;
	memcpy(kep->pdata, pdata, len);
	kep->pdata_len = len;
	kep->connect_pending = true;
	spin_unlock_irq(&kt_lock);
	schedule_work(&kep->cm_work);
	return 0;
}

/* Runs from the connecting endpoint's cm_work. */
static void kt_connect_work(struct kt_ep *kep)
{
	struct kt_connreq *req = kzalloc_obj(*req, GFP_KERNEL);
	struct kfi_domain *target = NULL;
	struct kfi_info *info;
	struct kt_pep *kp, *pep = NULL;
	struct kfi_hints hints = {
		.fabric_name = kt_fabric.name,
		.domain_name = kep->dest.name.node,
	};
	LIST_HEAD(infos);
	bool accepted;

	if (!req)
		goto unreachable;
	if (!kfi_getinfo(&hints, &infos)) {
		info = list_first_entry(&infos, struct kfi_info, list);
		target = info->domain;
	}
	mutex_lock(&kt_cm_mutex);
	list_for_each_entry(kp, &kt_peps, list) {
		if (kp->listening && kp->pep.addr.name.port == kep->dest.name.port &&
		    (!kp->pep.addr.name.node[0] ||
		     !strcmp(kp->pep.addr.name.node, kep->dest.name.node)))
			pep = kp;
	}
	if (!pep || !target) {
		mutex_unlock(&kt_cm_mutex);
		kfi_freeinfo(&infos);
		kfree(req);
		goto unreachable;
	}
	req->client = kep;
	req->req.domain = target;
	req->req.src_addr = kep->dest;
	req->req.dest_addr = kep->ep.src_addr;
	accepted = kfi_pep_connreq(&pep->pep, &req->req, kep->pdata, kep->pdata_len);
	mutex_unlock(&kt_cm_mutex);
	kfi_freeinfo(&infos);
	if (!accepted) {
		spin_lock_irq(&kt_lock);
		kep->state = KT_IDLE;
		spin_unlock_irq(&kt_lock);
		kt_event(kep, KFI_CM_REJECTED, -ECONNREFUSED, req->reject_data,
			 req->reject_len);
		kfree(req);
		return;
	}
	kt_event(req->server, KFI_CM_CONNECTED, 0, NULL, 0);
	kt_event(kep, KFI_CM_CONNECTED, 0, req->reject_data, req->reject_len);
	kfree(req);
	return;

unreachable:
	spin_lock_irq(&kt_lock);
	kep->state = KT_IDLE;
	spin_unlock_irq(&kt_lock);
	kt_event(kep, KFI_CM_UNREACHABLE, -EHOSTUNREACH, NULL, 0);
}

static int kt_accept(struct kfi_ep *ep, struct kfi_connreq *req,
		     const void *pdata, u32 len)
{
	struct kt_connreq *kr = container_of(req, struct kt_connreq, req);
	struct kt_ep *server = to_kt_ep(ep), *client = kr->client;

	/* An authorization key must match on both sides. */
	if (server->ep.attr.auth_key != client->ep.attr.auth_key)
		return -EACCES;
	spin_lock_irq(&kt_lock);
	if (server->state != KT_IDLE || client->state != KT_CONNECTING) {
		spin_unlock_irq(&kt_lock);
		return -EINVAL;
	}
	server->peer = client;
	client->peer = server;
	server->state = KT_CONNECTED;
	client->state = KT_CONNECTED;
	spin_unlock_irq(&kt_lock);
	kr->server = server;
	/* The accept's private data reaches the client with CONNECTED. */
	memcpy(kr->reject_data, pdata, len);
	kr->reject_len = len;
	return 0;
}

static int kt_reject(struct kfi_connreq *req, const void *pdata, u32 len)
{
	struct kt_connreq *kr = container_of(req, struct kt_connreq, req);

	memcpy(kr->reject_data, pdata, len);
	kr->reject_len = len;
	return 0;
}

static int kt_pep_listen(struct kfi_pep *pep, const struct kfi_addr *addr,
			 int backlog)
{
	struct kt_pep *kp = to_kt_pep(pep), *other;

	guard(mutex)(&kt_cm_mutex);
	list_for_each_entry(other, &kt_peps, list)
		if (other->listening && other->pep.addr.name.port == addr->name.port)
			return -EADDRINUSE;
	kp->listening = true;
	list_add_tail(&kp->list, &kt_peps);
	return 0;
}

static void kt_pep_destroy(struct kfi_pep *pep)
{
	struct kt_pep *kp = to_kt_pep(pep);

	guard(mutex)(&kt_cm_mutex);
	if (kp->listening)
		list_del(&kp->list);
	kp->listening = false;
}

static atomic_t kt_resolving = ATOMIC_INIT(0);
int kt_resolving_max;

static int kt_resolve(struct kfi_domain *domain, const struct kfi_hints *hints,
		      struct kfi_info *info)
{
	struct kt_domain *kd = to_kt_domain(domain);

	if (kd->resolve_ms) {
		int n = atomic_inc_return(&kt_resolving);

		if (n > READ_ONCE(kt_resolving_max))
			WRITE_ONCE(kt_resolving_max, n);
		msleep(kd->resolve_ms);
		atomic_dec(&kt_resolving);
	}
	if (kd->resolve_err)
		return kd->resolve_err;
	/* A destination names its domain; only that one reaches it. */
	if (hints->dest_addr && hints->dest_addr->name.node[0] &&
	    strcmp(hints->dest_addr->name.node, domain->attr.name))
		return -ENODATA;
	return 0;
}

static void kt_domain_release(struct kfi_domain *domain)
{
	struct kt_domain *kd = to_kt_domain(domain);

	xa_destroy(&kd->mrs);
	vfree(kd->bounce);
}

static const struct kfi_provider_ops kt_ops = {
	.resolve = kt_resolve,
	.domain_release = kt_domain_release,
	.cq_create = kt_cq_create,
	.cq_destroy = kt_cq_destroy,
	.ep_create = kt_ep_create,
	.ep_drain = kt_ep_drain,
	.ep_destroy = kt_ep_destroy,
	.connect = kt_connect,
	.accept = kt_accept,
	.reject = kt_reject,
	.disconnect = kt_disconnect,
	.pep_listen = kt_pep_listen,
	.pep_destroy = kt_pep_destroy,
	.post_send = kt_post_send,
	.post_recv = kt_post_recv,
	.post_read = kt_post_read,
	.post_write = kt_post_write,
	.mr_create = kt_mr_create,
	.mr_destroy = kt_mr_destroy,
	.mr_map = kt_mr_map,
	.mr_invalidate = kt_mr_invalidate,
};

struct kfi_fabric kt_fabric = {
	.name = "kunit",
	.owner = THIS_MODULE,
	.ops = &kt_ops,
	.addr_format = KFI_ADDR_NAME,
	.domain_size = sizeof(struct kt_domain),
	.cq_size = sizeof(struct kfi_cq),
	.ep_size = sizeof(struct kt_ep),
	.pep_size = sizeof(struct kt_pep),
	.mr_size = sizeof(struct kt_mr),
};

int kt_register(void)
{
	return kfi_fabric_register(&kt_fabric);
}

void kt_unregister(void)
{
	kfi_fabric_unregister(&kt_fabric);
}

/* Attributes small enough that the tests reach every limit. */
static void kt_fill_attr(struct kfi_domain_attr *a, const char *name)
{
	strscpy(a->name, name, sizeof(a->name));
	a->caps = KFI_CAP_ALL;
	a->ep_types = BIT(KFI_EP_MSG);
	a->protocol = KFI_PROTO_TEST;
	a->addr_format = KFI_ADDR_NAME;
	a->max_ep = 16;
	a->max_cq = 16;
	a->max_cqe = 4096;
	a->max_mr = 64;
	a->max_send_ops = 1024;
	a->max_recv_ops = 64;
	a->max_send_sge = KT_MAX_SGE;
	a->max_recv_sge = KT_MAX_SGE;
	a->max_rma_sge = KT_MAX_SGE;
	a->max_msg_size = KT_BOUNCE;
	a->max_rma_size = SZ_16K;
	a->max_mr_size = SZ_4M;
	a->max_mr_segs = 1024;
	a->max_mr_block = SZ_4M;
	a->mr_key_size = 4;
	a->mr_key_cycle = 256;	/* kt_mr.gen */
	a->cq_data_size = 4;
	a->max_cm_data = 64;
	a->max_reject_data = 32;
	a->num_comp_vectors = 2;
	a->auth_key_size = 4;
	a->tclass_mask = 0x3;
}

static struct kt_domain *kt_domain_new(const char *name, u64 caps_off,
				       int (*reg)(struct kfi_domain *d))
{
	struct kfi_domain *d = kfi_domain_alloc(&kt_fabric, NULL);
	struct kt_domain *kd;
	int ret;

	if (!d)
		return ERR_PTR(-ENOMEM);
	kd = to_kt_domain(d);
	xa_init_flags(&kd->mrs, XA_FLAGS_ALLOC1);
	kd->bounce = vmalloc(KT_BOUNCE);
	if (!kd->bounce) {
		kfi_domain_free(d);
		return ERR_PTR(-ENOMEM);
	}
	kt_fill_attr(&d->attr, name);
	d->attr.caps &= ~caps_off;
	ret = reg(d);
	if (ret) {
		kfi_domain_free(d);
		return ERR_PTR(ret);
	}
	return kd;
}

struct kt_domain *kt_domain_add(const char *name, u64 caps_off)
{
	return kt_domain_new(name, caps_off, kfi_domain_register);
}

/* A domain the test provider keeps to itself. */
struct kt_domain *kt_domain_add_private(const char *name)
{
	return kt_domain_new(name, 0, kfi_domain_register_private);
}

void kt_domain_remove(struct kt_domain *kd)
{
	kfi_domain_unregister(&kd->dom);
}
