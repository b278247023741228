// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric endpoints, passive endpoints and connection events.
 *
 * Object lifetime: a ULP object holds a reference on its domain, which pins
 * the provider module, and sits on its domain's list while live. Whoever
 * takes it off the list destroys its provider part: the ULP's free, or the
 * removal of the domain. A free that finds the object already taken waits
 * until removal has destroyed it, then frees the memory. Calls take no
 * reference: they run inside the removal fence (kfi_core.h).
 *
 * Posts and drains: a drain must not race a post into the provider (the
 * post could land behind the provider's drain marker and complete after
 * the endpoint is gone). kfi_ep_close() stops new posts and records an
 * RCU grace period; the drain waits for it before flushing. ULPs that
 * disconnect all their endpoints before draining them wait for one grace
 * period in total, not one per endpoint.
 */
#include <linux/module.h>
#include <linux/slab.h>

#include "kfi_core.h"
#include <trace/events/kfabric.h>

static atomic_t kfi_ep_ids = ATOMIC_INIT(0);

/* Per-context operation count of the core's read/write helper. */
static u32 kfi_rw_ops_per_ctx(const struct kfi_domain_attr *a, u64 size, u32 segs)
{
	if (!size || !segs)
		return 0;
	return DIV_ROUND_UP(segs, a->max_rma_sge) +
	       DIV64_U64_ROUND_UP(size, a->max_rma_size);
}

static int kfi_ep_attr_check(struct kfi_domain *domain,
			     const struct kfi_ep_attr *attr)
{
	const struct kfi_domain_attr *a = &domain->attr;

	if (!attr->handler || !attr->send_cq || !attr->recv_cq)
		return -EINVAL;
	if (attr->type == KFI_EP_RDM)
		return -EOPNOTSUPP;	/* reserved */
	if (attr->type != KFI_EP_MSG)
		return -EINVAL;
	if (attr->send_cq->domain != domain || attr->recv_cq->domain != domain)
		return -EINVAL;
	if (!attr->max_send_ops || attr->max_send_ops > a->max_send_ops ||
	    !attr->max_recv_ops || attr->max_recv_ops > a->max_recv_ops ||
	    !attr->max_send_sge || attr->max_send_sge > a->max_send_sge ||
	    !attr->max_recv_sge || attr->max_recv_sge > a->max_recv_sge)
		return -EINVAL;
	if (attr->max_rw_ctxs) {
		if (!(a->caps & KFI_CAP_RMA))
			return -EOPNOTSUPP;
		if (!attr->max_rw_size || attr->max_rw_size > a->max_mr_size ||
		    !attr->max_rw_segs)
			return -EINVAL;
	}
	if (attr->tclass && (!(a->caps & KFI_CAP_TCLASS) ||
			     attr->tclass >= 32 || !(a->tclass_mask & BIT(attr->tclass))))
		return -EOPNOTSUPP;
	if (attr->auth_key && !(a->caps & KFI_CAP_AUTH_KEY))
		return -EOPNOTSUPP;
	if (attr->src_addr && attr->src_addr->format != a->addr_format)
		return -EINVAL;
	return 0;
}

/*
 * Completion queue room an endpoint reserves: its queue depths, plus one
 * entry on each queue for the marker a provider's drain may post.
 */
static u32 kfi_ep_cq_need(const struct kfi_ep *ep, const struct kfi_cq *cq)
{
	u32 need = 0;

	if (ep->attr.send_cq == cq) {
		need += ep->attr.max_send_ops + 1;
		/*
		 * Provider helper contexts complete once each; the core's own
		 * count as send operations, already in max_send_ops.
		 */
		if (ep->domain->fabric->ops->rw_init)
			need += ep->attr.max_rw_ctxs;
	}
	if (ep->attr.recv_cq == cq)
		need += ep->attr.max_recv_ops + 1;
	return need;
}

static int kfi_ep_reserve(struct kfi_ep *ep)
{
	struct kfi_cq *scq = ep->attr.send_cq, *rcq = ep->attr.recv_cq;
	struct kfi_domain *domain = ep->domain;

	lockdep_assert_held(&domain->lock);
	if (scq->state != KFI_OBJ_LIVE || rcq->state != KFI_OBJ_LIVE)
		return -ENODEV;
	if (domain->nr_ep >= domain->attr.max_ep)
		return -ENOSPC;
	if (scq->reserved + kfi_ep_cq_need(ep, scq) > scq->attr.nr_cqe)
		return -ENOSPC;
	if (rcq != scq && rcq->reserved + kfi_ep_cq_need(ep, rcq) > rcq->attr.nr_cqe)
		return -ENOSPC;
	scq->reserved += kfi_ep_cq_need(ep, scq);
	scq->users++;
	if (rcq != scq) {
		rcq->reserved += kfi_ep_cq_need(ep, rcq);
		rcq->users++;
	}
	domain->nr_ep++;
	return 0;
}

static void kfi_ep_unreserve(struct kfi_ep *ep)
{
	struct kfi_cq *scq = ep->attr.send_cq, *rcq = ep->attr.recv_cq;

	lockdep_assert_held(&ep->domain->lock);
	scq->reserved -= kfi_ep_cq_need(ep, scq);
	scq->users--;
	if (rcq != scq) {
		rcq->reserved -= kfi_ep_cq_need(ep, rcq);
		rcq->users--;
	}
	ep->domain->nr_ep--;
}

/**
 * kfi_ep_alloc() - allocate an endpoint
 * @domain: the domain; for an accepted connection, &kfi_connreq.domain
 * @attr: type, completion queues, queue depths and handler
 *
 * The endpoint reserves its queue depths (plus one entry each for
 * draining) in its completion queues, so they cannot overflow. With
 * @attr->max_rw_ctxs, it also gets room for that many read/write helper
 * contexts of up to @attr->max_rw_size bytes in @attr->max_rw_segs
 * segments.
 *
 * Context: process context; may sleep.
 * Return: the endpoint or an ERR_PTR(): -EINVAL for attributes outside the
 * domain's limits, -EOPNOTSUPP for a feature it lacks, -ENOSPC when the
 * domain or a completion queue is full, -ENODEV when the domain is being
 * removed, or the provider's error.
 */
struct kfi_ep *kfi_ep_alloc(struct kfi_domain *domain,
			    const struct kfi_ep_attr *attr)
{
	const struct kfi_provider_ops *ops;
	struct kfi_ep_attr pattr;
	struct kfi_ep *ep;
	int ret, idx;

	if (!domain || !attr)
		return ERR_PTR(-EINVAL);
	ret = kfi_ep_attr_check(domain, attr);
	if (ret)
		return ERR_PTR(ret);
	ops = domain->fabric->ops;

	ep = kzalloc(domain->fabric->ep_size, GFP_KERNEL);
	if (!ep)
		return ERR_PTR(-ENOMEM);
	ep->domain = domain;
	ep->attr = *attr;
	/* The ULP's address may not outlive this call; ours does. */
	if (attr->src_addr) {
		ep->src_addr = *attr->src_addr;
		ep->attr.src_addr = &ep->src_addr;
	}
	ep->net = get_net(attr->net ?: &init_net);
	ep->attr.net = ep->net;
	ep->id = atomic_inc_return(&kfi_ep_ids);
	INIT_LIST_HEAD(&ep->entry);
	mutex_init(&ep->cm_lock);
	mutex_init(&ep->drain_lock);
	spin_lock_init(&ep->close_lock);

	/*
	 * Without provider read/write operations, helper contexts are
	 * carried as ordinary RMA operations, so the provider sees the
	 * queue room and segments they need as part of the send side.
	 */
	pattr = ep->attr;
	if (attr->max_rw_ctxs && !ops->rw_init) {
		u32 per_ctx = kfi_rw_ops_per_ctx(&domain->attr, attr->max_rw_size,
						 attr->max_rw_segs);
		u64 send_ops = attr->max_send_ops + (u64)attr->max_rw_ctxs * per_ctx;

		ep->rw_sge = min(attr->max_rw_segs, domain->attr.max_rma_sge);
		pattr.max_send_sge = max(attr->max_send_sge, ep->rw_sge);
		if (send_ops > domain->attr.max_send_ops) {
			ret = -EINVAL;
			goto out_free;
		}
		pattr.max_send_ops = send_ops;
		ep->attr.max_send_ops = send_ops;
		ep->attr.max_send_sge = pattr.max_send_sge;
	}

	/* Removal waits until the endpoint is on the list, or gone. */
	idx = kfi_fence_enter(domain);
	mutex_lock(&domain->lock);
	if (!kfi_domain_get_live(domain)) {
		mutex_unlock(&domain->lock);
		ret = -ENODEV;
		goto out_fence;
	}
	ret = kfi_ep_reserve(ep);
	mutex_unlock(&domain->lock);
	if (ret)
		goto out_put;

	ret = ops->ep_create(ep, &pattr);
	if (ret)
		goto out_unreserve;

	mutex_lock(&domain->lock);
	list_add_tail(&ep->entry, &domain->eps);
	mutex_unlock(&domain->lock);
	kfi_fence_exit(domain, idx);
	trace_kfi_ep_alloc(ep);
	return ep;

out_unreserve:
	mutex_lock(&domain->lock);
	kfi_ep_unreserve(ep);
	mutex_unlock(&domain->lock);
out_put:
	/* Leave the fence first: the reference may be the domain's last. */
	kfi_fence_exit(domain, idx);
	kfi_domain_put(domain);
	goto out_free;
out_fence:
	kfi_fence_exit(domain, idx);
out_free:
	put_net(ep->net);
	mutex_destroy(&ep->cm_lock);
	mutex_destroy(&ep->drain_lock);
	kfree(ep);
	return ERR_PTR(ret);
}
EXPORT_SYMBOL_GPL(kfi_ep_alloc);

/**
 * kfi_ep_domain() - the domain of an endpoint
 * @ep: the endpoint
 *
 * Return: its domain.
 */
struct kfi_domain *kfi_ep_domain(const struct kfi_ep *ep)
{
	return ep->domain;
}
EXPORT_SYMBOL_GPL(kfi_ep_domain);

/**
 * kfi_ep_src_addr() - the local address of an endpoint
 * @ep: the endpoint
 *
 * Valid once %KFI_CM_CONNECTED was delivered (or, for an accepted
 * endpoint, once kfi_accept() returned): the address the connection
 * really uses, with its port, which is the bound source when the
 * endpoint was given one.
 *
 * Return: the address.
 */
const struct kfi_addr *kfi_ep_src_addr(const struct kfi_ep *ep)
{
	return &ep->src_addr;
}
EXPORT_SYMBOL_GPL(kfi_ep_src_addr);

/*
 * Stop posts on @ep. Posts check @closing under rcu_read_lock(), so the
 * grace period that starts here ends once none that missed it is still
 * inside the provider. A spinlock, not @drain_lock: completion callbacks
 * that a drain waits for may disconnect. Returns the grace period cookie
 * taken when the endpoint was first closed.
 */
static unsigned long kfi_ep_close(struct kfi_ep *ep)
{
	unsigned long fence;

	spin_lock(&ep->close_lock);
	if (!ep->closing) {
		WRITE_ONCE(ep->closing, true);
		ep->post_fence = start_poll_synchronize_rcu();
	}
	fence = ep->post_fence;
	spin_unlock(&ep->close_lock);
	return fence;
}

/*
 * A drain dispatches the endpoint's %KFI_POLL_DIRECT queues itself (a
 * provider's ib_drain_qp() or kfi_cq_sw_flush()): hold their poll locks
 * so that the owners' kfi_cq_poll() stays out meanwhile. Two queues are
 * locked in address order.
 */
static void kfi_ep_poll_lock(struct kfi_ep *ep, bool lock)
{
	struct kfi_cq *a = ep->attr.send_cq, *b = ep->attr.recv_cq;

	if (a > b)
		swap(a, b);
	if (a == b || b->attr.poll_ctx != KFI_POLL_DIRECT)
		b = NULL;
	if (a->attr.poll_ctx != KFI_POLL_DIRECT)
		a = NULL;
	if (lock) {
		if (a)
			mutex_lock(&a->poll_lock);
		if (b)
			mutex_lock_nested(&b->poll_lock, SINGLE_DEPTH_NESTING);
	} else {
		if (b)
			mutex_unlock(&b->poll_lock);
		if (a)
			mutex_unlock(&a->poll_lock);
	}
}

static void kfi_ep_do_drain(struct kfi_ep *ep)
{
	unsigned long fence;

	mutex_lock(&ep->drain_lock);
	if (!ep->drained) {
		fence = kfi_ep_close(ep);
		/* Domain removal fenced every post at once. */
		if (!smp_load_acquire(&ep->domain->revoked))
			cond_synchronize_rcu(fence);
		kfi_ep_poll_lock(ep, true);
		ep->domain->fabric->ops->ep_drain(ep);
		kfi_ep_poll_lock(ep, false);
		ep->drained = true;
	}
	mutex_unlock(&ep->drain_lock);
}

/**
 * kfi_ep_drain() - flush an endpoint and wait for its completions
 * @ep: the endpoint
 *
 * Disconnects the endpoint if it is connected, makes every outstanding
 * operation complete (those that did not run with -ECANCELED), and returns
 * once all their done() callbacks have returned. Operations posted
 * afterwards fail. The kfabric counterpart of ib_drain_qp(); kfi_ep_free()
 * drains too.
 *
 * Context: process context; may sleep. Not from a completion callback of
 * the endpoint's own queues.
 */
void kfi_ep_drain(struct kfi_ep *ep)
{
	if (READ_ONCE(ep->state) != KFI_OBJ_LIVE)
		return;
	kfi_ep_do_drain(ep);
}
EXPORT_SYMBOL_GPL(kfi_ep_drain);

/*
 * Stop connection events, drain (which fences posts), destroy. No other
 * call on @ep runs: the ULP does not use an endpoint it frees, and domain
 * removal fenced every call before it destroys objects.
 */
static void kfi_ep_destroy(struct kfi_ep *ep)
{
	mutex_lock(&ep->cm_lock);
	WRITE_ONCE(ep->dying, true);
	mutex_unlock(&ep->cm_lock);
	kfi_ep_do_drain(ep);
	ep->domain->fabric->ops->ep_destroy(ep);
}

/* Domain removal: tell the ULP, then destroy (ep is off the domain list). */
void kfi_ep_kill(struct kfi_ep *ep)
{
	struct kfi_domain *domain = ep->domain;
	struct kfi_cm_event ev = { .type = KFI_CM_DOMAIN_REMOVAL, .status = -ENODEV };

	mutex_lock(&ep->cm_lock);
	if (!ep->dying) {
		ep->cm_owner = current;
		ep->attr.handler(ep->attr.context, &ev);
		ep->cm_owner = NULL;
	}
	mutex_unlock(&ep->cm_lock);
	kfi_ep_destroy(ep);
	mutex_lock(&domain->lock);
	ep->state = KFI_OBJ_DEAD;
	mutex_unlock(&domain->lock);
	wake_up_all(&domain->wait);
}

/**
 * kfi_ep_free() - free an endpoint
 * @ep: the endpoint
 *
 * Stops connection events, drains the endpoint (see kfi_ep_drain()) and
 * releases it and its completion queue reservations. Works the same after
 * the endpoint's domain was removed.
 *
 * Context: process context; may sleep. Not from the endpoint's own
 * connection event handler or completion callbacks.
 */
void kfi_ep_free(struct kfi_ep *ep)
{
	struct kfi_domain *domain;

	if (IS_ERR_OR_NULL(ep))
		return;
	if (WARN_ON(ep->cm_owner == current))
		return;
	domain = ep->domain;

	/* Removal must not destroy our queues under the drain. */
	if (kfi_obj_take(domain, &ep->entry)) {
		kfi_ep_destroy(ep);
		kfi_obj_taken_done(domain);
	} else {
		wait_event(domain->wait, READ_ONCE(ep->state) == KFI_OBJ_DEAD);
	}
	trace_kfi_ep_free(ep);

	mutex_lock(&domain->lock);
	kfi_ep_unreserve(ep);
	mutex_unlock(&domain->lock);
	put_net(ep->net);
	mutex_destroy(&ep->cm_lock);
	mutex_destroy(&ep->drain_lock);
	kfree(ep);
	kfi_domain_put(domain);
}
EXPORT_SYMBOL_GPL(kfi_ep_free);

/* Inside the removal fence: may a connection call reach the provider? */
static bool kfi_ep_live(struct kfi_ep *ep)
{
	return !READ_ONCE(ep->dying) && READ_ONCE(ep->state) == KFI_OBJ_LIVE &&
	       !kfi_domain_dying(ep->domain);
}

static int kfi_cm_data_check(const void *data, u32 len, u32 max)
{
	if (len > max || (len && !data))
		return -EINVAL;
	return 0;
}

/**
 * kfi_connect() - connect an endpoint to a peer
 * @ep: an endpoint that has not connected yet
 * @dest: the passive endpoint to connect to, in the domain's address format
 * @private_data: data for the peer's %KFI_CM_CONNREQ handler, or NULL
 * @len: bytes of @private_data, at most &kfi_domain_attr.max_cm_data
 *
 * Returns once the attempt has started; its outcome arrives at the
 * endpoint's handler as %KFI_CM_CONNECTED, %KFI_CM_REJECTED or
 * %KFI_CM_UNREACHABLE. The connection is made in the endpoint's network
 * namespace and from its source address when it was given one
 * (&kfi_ep_attr.net, &kfi_ep_attr.src_addr); a source that is not local
 * there makes the attempt fail, it is never silently replaced.
 *
 * Context: process context; may sleep.
 * Return: 0, -EINVAL, -ENODEV, or the provider's error.
 */
int kfi_connect(struct kfi_ep *ep, const struct kfi_addr *dest,
		const void *private_data, u32 len)
{
	int ret, idx;

	if (!ep || !dest || dest->format != ep->domain->attr.addr_format)
		return -EINVAL;
	ret = kfi_cm_data_check(private_data, len, ep->domain->attr.max_cm_data);
	if (ret)
		return ret;
	idx = kfi_fence_enter(ep->domain);
	if (!kfi_ep_live(ep)) {
		ret = -ENODEV;
	} else if (READ_ONCE(ep->closing)) {
		ret = -ENOTCONN;	/* disconnected or drained: no way back */
	} else {
		ep->dest_addr = *dest;
		ret = ep->domain->fabric->ops->connect(ep, dest, private_data, len);
	}
	kfi_fence_exit(ep->domain, idx);
	trace_kfi_connect(ep, ret);
	return ret;
}
EXPORT_SYMBOL_GPL(kfi_connect);

/**
 * kfi_accept() - accept a connection request
 * @ep: a new endpoint on @req->domain
 * @req: the request, from the %KFI_CM_CONNREQ handler being run
 * @private_data: data for the peer, or NULL
 * @len: bytes of @private_data, at most &kfi_domain_attr.max_cm_data
 *
 * %KFI_CM_CONNECTED follows on @ep when the connection is established.
 * The connecting side transmits first: on iWARP, @ep must not post a
 * send, write or read before one of its receives has completed.
 *
 * Context: the %KFI_CM_CONNREQ handler.
 * Return: 0, -EINVAL, -ENODEV, or the provider's error (after which the
 * request counts as rejected).
 */
int kfi_accept(struct kfi_ep *ep, struct kfi_connreq *req,
	       const void *private_data, u32 len)
{
	bool called = false;
	int ret, idx;

	if (!ep || !req || req->answered || ep->domain != req->domain)
		return -EINVAL;
	ret = kfi_cm_data_check(private_data, len, ep->domain->attr.max_cm_data);
	if (ret)
		return ret;
	idx = kfi_fence_enter(ep->domain);
	if (!kfi_ep_live(ep)) {
		ret = -ENODEV;
	} else if (READ_ONCE(ep->closing)) {
		ret = -ENOTCONN;
	} else {
		ep->src_addr = req->src_addr;
		ep->dest_addr = req->dest_addr;
		ret = ep->domain->fabric->ops->accept(ep, req, private_data, len);
		called = true;
	}
	kfi_fence_exit(ep->domain, idx);
	/* Without an answer, kfi_pep_connreq() rejects the request. */
	if (!called)
		return ret;
	req->answered = true;
	req->accepted = !ret;
	trace_kfi_accept(ep, ret);
	return ret;
}
EXPORT_SYMBOL_GPL(kfi_accept);

/**
 * kfi_reject() - reject a connection request
 * @req: the request, from the %KFI_CM_CONNREQ handler being run
 * @private_data: data for the peer (e.g. a reason), or NULL
 * @len: bytes of @private_data, at most &kfi_domain_attr.max_reject_data
 *
 * Context: the %KFI_CM_CONNREQ handler.
 * Return: 0, -EINVAL, or the provider's error.
 */
int kfi_reject(struct kfi_connreq *req, const void *private_data, u32 len)
{
	struct kfi_fabric *fabric;
	int ret;

	if (!req || req->answered)
		return -EINVAL;
	ret = kfi_cm_data_check(private_data, len,
				req->domain->attr.max_reject_data);
	if (ret)
		return ret;
	fabric = req->domain->fabric;
	ret = fabric->ops->reject(req, private_data, len);
	req->answered = true;
	return ret;
}
EXPORT_SYMBOL_GPL(kfi_reject);

/**
 * kfi_disconnect() - start disconnecting an endpoint
 * @ep: the endpoint
 *
 * %KFI_CM_DISCONNECTED follows. Outstanding operations complete with
 * -ECANCELED; kfi_ep_drain() waits for them. Operations posted after the
 * call fail with -ENOTCONN. A ULP that tears down several endpoints
 * disconnects them all before draining them: the drains then share the
 * wait that fences posts racing the disconnect.
 *
 * Context: process context; may sleep.
 * Return: 0, -ENODEV, or the provider's error (for example when the
 * endpoint is not connected).
 */
int kfi_disconnect(struct kfi_ep *ep)
{
	int ret, idx;

	if (!ep)
		return -EINVAL;
	idx = kfi_fence_enter(ep->domain);
	ret = -ENODEV;
	if (kfi_ep_live(ep)) {
		kfi_ep_close(ep);
		ret = ep->domain->fabric->ops->disconnect(ep);
	}
	kfi_fence_exit(ep->domain, idx);
	trace_kfi_disconnect(ep, ret);
	return ret;
}
EXPORT_SYMBOL_GPL(kfi_disconnect);

/**
 * kfi_cm_event() - deliver a connection event to an endpoint's handler
 * @ep: the endpoint
 * @event: the event; %KFI_CM_CONNREQ is not valid here
 *
 * For providers. Events are serialised per endpoint and dropped once the
 * ULP started freeing the endpoint.
 *
 * Context: process context; may sleep.
 */
void kfi_cm_event(struct kfi_ep *ep, const struct kfi_cm_event *event)
{
	if (WARN_ON_ONCE(event->type == KFI_CM_CONNREQ))
		return;
	mutex_lock(&ep->cm_lock);
	trace_kfi_cm_event(ep, event);
	if (!ep->dying) {
		ep->cm_owner = current;
		ep->attr.handler(ep->attr.context, event);
		ep->cm_owner = NULL;
	}
	mutex_unlock(&ep->cm_lock);
}
EXPORT_SYMBOL_GPL(kfi_cm_event);

/**
 * kfi_domain_visit_eps() - call a function on every endpoint of a domain
 * @domain: the domain
 * @fn: called once per endpoint the provider created and has not yet been
 *	asked to destroy, with @arg
 * @arg: passed to @fn
 *
 * For providers, for events that concern a whole device (a fatal error,
 * say): the core already lists a domain's endpoints, so a provider need
 * not keep a second list. @fn runs under the domain's lock, which keeps
 * each endpoint from being destroyed meanwhile; it must not call into the
 * core for this domain. Queueing work that reports through kfi_cm_event()
 * is what @fn is for.
 *
 * Context: process context; may sleep.
 */
void kfi_domain_visit_eps(struct kfi_domain *domain,
			  void (*fn)(struct kfi_ep *ep, void *arg), void *arg)
{
	struct kfi_ep *ep;

	mutex_lock(&domain->lock);
	list_for_each_entry(ep, &domain->eps, entry)
		fn(ep, arg);
	mutex_unlock(&domain->lock);
}
EXPORT_SYMBOL_GPL(kfi_domain_visit_eps);

/**
 * kfi_pep_alloc() - allocate a passive endpoint
 * @fabric: the fabric to listen on (&kfi_info.fabric)
 * @net: network namespace to listen in, or NULL for &init_net; referenced
 *	until kfi_pep_free()
 * @handler: receives %KFI_CM_CONNREQ events, and %KFI_CM_DOMAIN_REMOVAL
 *	when the listener lost its address's device (it listens no more)
 * @context: passed to @handler
 *
 * @handler runs under the passive endpoint's lock, which kfi_listen() and
 * kfi_pep_free() take too, often under the ULP's own locks; it must not
 * free kfabric objects (an endpoint whose accept failed, say), since
 * freeing waits for completion work, and a ULP's completion work may
 * take those locks. Free them later, from process context.
 *
 * Context: process context; may sleep.
 * Return: the passive endpoint or an ERR_PTR(): -EINVAL, -ENODEV when the
 * fabric is going away, -ENOMEM.
 */
struct kfi_pep *kfi_pep_alloc(struct kfi_fabric *fabric, struct net *net,
			      kfi_cm_handler_t handler, void *context)
{
	struct kfi_pep *pep;

	if (!fabric || !handler)
		return ERR_PTR(-EINVAL);
	pep = kzalloc(fabric->pep_size, GFP_KERNEL);
	if (!pep)
		return ERR_PTR(-ENOMEM);
	pep->fabric = fabric;
	pep->handler = handler;
	pep->context = context;
	pep->net = get_net(net ?: &init_net);
	mutex_init(&pep->lock);
	mutex_init(&pep->cm_lock);

	mutex_lock(&kfi_lock);
	if (!fabric->registered || !try_module_get(fabric->owner)) {
		mutex_unlock(&kfi_lock);
		put_net(pep->net);
		kfree(pep);
		return ERR_PTR(-ENODEV);
	}
	list_add_tail(&pep->entry, &fabric->peps);
	mutex_unlock(&kfi_lock);
	return pep;
}
EXPORT_SYMBOL_GPL(kfi_pep_alloc);

/**
 * kfi_listen() - start accepting connection requests
 * @pep: a passive endpoint that is not listening yet
 * @addr: local address in the fabric's format; a wildcard address or
 *	empty node listens on every domain
 * @backlog: requests that may wait for the handler
 *
 * Context: process context; may sleep.
 * Return: 0, -EINVAL, -EADDRINUSE, -ENODEV, or the provider's error.
 */
int kfi_listen(struct kfi_pep *pep, const struct kfi_addr *addr, int backlog)
{
	int ret;

	if (!pep || !addr || addr->format != pep->fabric->addr_format ||
	    backlog < 0)
		return -EINVAL;
	mutex_lock(&pep->lock);
	if (pep->listening || pep->state != KFI_OBJ_LIVE) {
		ret = pep->listening ? -EINVAL : -ENODEV;
		goto out;
	}
	/*
	 * Requests may arrive before pep_listen() returns: let them reach
	 * the handler rather than bounce, and withdraw if listening failed.
	 */
	mutex_lock(&pep->cm_lock);
	pep->addr = *addr;
	pep->listening = true;
	mutex_unlock(&pep->cm_lock);
	ret = pep->fabric->ops->pep_listen(pep, addr, backlog);
	if (ret) {
		mutex_lock(&pep->cm_lock);
		pep->listening = false;
		mutex_unlock(&pep->cm_lock);
	}
out:
	mutex_unlock(&pep->lock);
	return ret;
}
EXPORT_SYMBOL_GPL(kfi_listen);

/**
 * kfi_pep_connreq() - deliver a connection request to a passive endpoint
 * @pep: the passive endpoint
 * @req: the request, filled in by the provider
 * @private_data: the peer's private data
 * @len: its length
 *
 * For providers. Calls the handler, and rejects the request if the
 * handler neither accepted nor rejected it.
 *
 * Context: process context; may sleep.
 * Return: true when the handler accepted the request.
 */
bool kfi_pep_connreq(struct kfi_pep *pep, struct kfi_connreq *req,
		     const void *private_data, u32 len)
{
	struct kfi_cm_event ev = {
		.type = KFI_CM_CONNREQ,
		.private_data = private_data,
		.private_data_len = len,
		.connreq = req,
	};
	bool accepted = false;

	req->answered = false;
	req->accepted = false;
	mutex_lock(&pep->cm_lock);
	if (pep->state == KFI_OBJ_LIVE && pep->listening)
		pep->handler(pep->context, &ev);
	mutex_unlock(&pep->cm_lock);
	if (!req->answered)
		pep->fabric->ops->reject(req, NULL, 0);
	else
		accepted = req->accepted;
	return accepted;
}
EXPORT_SYMBOL_GPL(kfi_pep_connreq);

/**
 * kfi_pep_lost() - report that a passive endpoint stopped listening
 * @pep: the passive endpoint
 *
 * For providers, when what the listener was bound to went away (the
 * device of its address was removed). The handler gets
 * %KFI_CM_DOMAIN_REMOVAL with -ENODEV; the passive endpoint no longer
 * listens, and the ULP may free it and listen anew once the address is
 * served again, as nvmet-rdma does with its listeners.
 *
 * Context: process context; may sleep.
 */
void kfi_pep_lost(struct kfi_pep *pep)
{
	struct kfi_cm_event ev = {
		.type = KFI_CM_DOMAIN_REMOVAL,
		.status = -ENODEV,
	};

	mutex_lock(&pep->cm_lock);
	if (pep->state == KFI_OBJ_LIVE && pep->listening) {
		pep->listening = false;
		pep->handler(pep->context, &ev);
	}
	mutex_unlock(&pep->cm_lock);
}
EXPORT_SYMBOL_GPL(kfi_pep_lost);

static void kfi_pep_destroy(struct kfi_pep *pep)
{
	mutex_lock(&pep->lock);
	mutex_lock(&pep->cm_lock);
	pep->state = KFI_OBJ_DEAD;
	pep->listening = false;
	mutex_unlock(&pep->cm_lock);
	pep->fabric->ops->pep_destroy(pep);
	mutex_unlock(&pep->lock);
}

/* Fabric removal: destroy a passive endpoint the ULP still holds. */
void kfi_pep_kill(struct kfi_pep *pep)
{
	kfi_pep_destroy(pep);
	mutex_lock(&kfi_lock);
	pep->killed = true;
	mutex_unlock(&kfi_lock);
	wake_up_all(&kfi_wait);
}

/**
 * kfi_pep_free() - stop listening and free a passive endpoint
 * @pep: the passive endpoint
 *
 * No handler runs after it returns.
 *
 * Context: process context; may sleep. Not from the handler itself.
 */
void kfi_pep_free(struct kfi_pep *pep)
{
	struct module *owner;
	bool mine;

	if (IS_ERR_OR_NULL(pep))
		return;
	owner = pep->fabric->owner;
	mutex_lock(&kfi_lock);
	mine = !list_empty(&pep->entry);
	if (mine)
		list_del_init(&pep->entry);
	mutex_unlock(&kfi_lock);
	if (mine)
		kfi_pep_destroy(pep);
	else
		wait_event(kfi_wait, READ_ONCE(pep->killed));
	mutex_destroy(&pep->cm_lock);
	mutex_destroy(&pep->lock);
	put_net(pep->net);
	kfree(pep);
	module_put(owner);
}
EXPORT_SYMBOL_GPL(kfi_pep_free);
