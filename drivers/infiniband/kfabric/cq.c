// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric completion queues.
 *
 * A completion queue delivers each operation's completion to the
 * &struct kfi_cqe::done callback the ULP gave with it, in the context the
 * queue was created for. Providers built on hardware queues dispatch from
 * their own handlers through kfi_complete(); software providers push
 * completions into the core's software queue (kfi_cq_sw_init()), which
 * dispatches them in softirq context through irq_poll, on a workqueue, or
 * when the ULP polls, with a budget, like drivers/infiniband/core/cq.c.
 */
#include <linux/delay.h>
#include <linux/irq_poll.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "kfi_core.h"
#include <trace/events/kfabric.h>

/* Completions dispatched per irq_poll or work item run before yielding. */
#define KFI_CQ_BUDGET		64

/**
 * struct kfi_cq_sw - the core's software completion queue
 * @cq: the queue it belongs to
 * @lock: protects the ring; taken with interrupts off since providers may
 *	push from hard interrupt context
 * @ring: completions waiting for dispatch
 * @size: entries in @ring
 * @head: next entry to dispatch
 * @count: entries waiting
 * @iop: softirq dispatch (%KFI_POLL_SOFTIRQ)
 * @work: process-context dispatch (%KFI_POLL_*WORKQUEUE)
 * @wq: workqueue @work runs on
 * @running: completions taken off the ring whose callback has not returned
 *	yet, so that a flush can wait for them too
 *
 * Dispatch is serialised by its context: an irq_poll instance and a work
 * item never run concurrently with themselves, and a %KFI_POLL_DIRECT
 * queue is dispatched under &kfi_cq.poll_lock. So callbacks of one queue
 * never run concurrently, as ULPs expect from &struct ib_cq, and
 * workqueue and direct callbacks may sleep.
 */
struct kfi_cq_sw {
	struct kfi_cq *cq;
	spinlock_t lock;	/* ring, head, count, running */
	struct kfi_wc *ring;
	u32 size;
	u32 head;
	u32 count;
	u32 running;
	struct irq_poll iop;
	struct work_struct work;
	struct workqueue_struct *wq;
};

/**
 * kfi_complete() - deliver a completion to its ULP callback
 * @cq: the completion queue
 * @wc: the completion
 *
 * For providers: every completion goes through here, in the queue's
 * context (see &enum kfi_poll_ctx), so that tracing and the domain's
 * counters see it.
 */
void kfi_complete(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct kfi_domain *domain = cq->domain;

	kfi_stat_inc(domain, KFI_STAT_COMPLETED);
	if (unlikely(wc->status)) {
		kfi_stat_inc(domain, wc->status == -ECANCELED ?
			     KFI_STAT_FLUSHED : KFI_STAT_ERRORS);
	}
	trace_kfi_complete(cq, wc);
	wc->cqe->done(cq, wc);
}
EXPORT_SYMBOL_GPL(kfi_complete);

/* Dispatch up to @budget completions; returns how many ran. */
static int kfi_cq_sw_process(struct kfi_cq_sw *sw, int budget)
{
	struct kfi_wc wc;
	unsigned long flags;
	int n = 0;

	while (n < budget) {
		spin_lock_irqsave(&sw->lock, flags);
		if (n)
			sw->running--;
		if (!sw->count) {
			spin_unlock_irqrestore(&sw->lock, flags);
			return n;
		}
		wc = sw->ring[sw->head];
		sw->head = (sw->head + 1) % sw->size;
		sw->count--;
		sw->running++;
		spin_unlock_irqrestore(&sw->lock, flags);
		kfi_complete(sw->cq, &wc);
		n++;
	}
	if (n) {
		spin_lock_irqsave(&sw->lock, flags);
		sw->running--;
		spin_unlock_irqrestore(&sw->lock, flags);
	}
	return n;
}

static bool kfi_cq_sw_pending(struct kfi_cq_sw *sw)
{
	return READ_ONCE(sw->count) || READ_ONCE(sw->running);
}

static int kfi_cq_sw_iop(struct irq_poll *iop, int budget)
{
	struct kfi_cq_sw *sw = container_of(iop, struct kfi_cq_sw, iop);
	int n = kfi_cq_sw_process(sw, budget);

	if (n < budget) {
		irq_poll_complete(iop);
		/*
		 * A push between the last empty check and irq_poll_complete()
		 * found the poll still scheduled and did not schedule it
		 * again: look once more.
		 */
		if (kfi_cq_sw_pending(sw))
			irq_poll_sched(iop);
	}
	return n;
}

static void kfi_cq_sw_work(struct work_struct *work)
{
	struct kfi_cq_sw *sw = container_of(work, struct kfi_cq_sw, work);

	if (kfi_cq_sw_process(sw, KFI_CQ_BUDGET) >= KFI_CQ_BUDGET ||
	    kfi_cq_sw_pending(sw))
		queue_work(sw->wq, &sw->work);
}

/**
 * kfi_cq_sw_init() - give a completion queue the core's dispatch
 * @cq: a queue being created (from &kfi_provider_ops.cq_create)
 *
 * Allocates a ring of &kfi_cq_attr.nr_cqe entries. The core frees it after
 * the provider's cq_destroy, and kfi_cq_poll() dispatches from it.
 *
 * Return: 0 or -ENOMEM.
 */
int kfi_cq_sw_init(struct kfi_cq *cq)
{
	struct kfi_cq_sw *sw;

	sw = kzalloc_obj(*sw, GFP_KERNEL);
	if (!sw)
		return -ENOMEM;
	sw->ring = kvcalloc(cq->attr.nr_cqe, sizeof(*sw->ring), GFP_KERNEL);
	if (!sw->ring) {
		kfree(sw);
		return -ENOMEM;
	}
	sw->cq = cq;
	sw->size = cq->attr.nr_cqe;
	spin_lock_init(&sw->lock);
	switch (cq->attr.poll_ctx) {
	case KFI_POLL_SOFTIRQ:
		irq_poll_init(&sw->iop, KFI_CQ_BUDGET, kfi_cq_sw_iop);
		break;
	case KFI_POLL_WORKQUEUE:
	case KFI_POLL_UNBOUND_WORKQUEUE:
		sw->wq = cq->attr.poll_ctx == KFI_POLL_WORKQUEUE ?
			 kfi_comp_wq : kfi_comp_unbound_wq;
		INIT_WORK(&sw->work, kfi_cq_sw_work);
		break;
	case KFI_POLL_DIRECT:
		break;
	}
	cq->sw = sw;
	return 0;
}
EXPORT_SYMBOL_GPL(kfi_cq_sw_init);

/**
 * kfi_cq_sw_push() - queue a completion for dispatch
 * @cq: a queue set up with kfi_cq_sw_init()
 * @wc: the completion (copied)
 *
 * Context: any, including hard interrupt context.
 * Return: 0, or -ENOSPC if the ring is full, which the queue-depth
 * reservations of kfi_ep_alloc() rule out for a correct provider.
 */
int kfi_cq_sw_push(struct kfi_cq *cq, const struct kfi_wc *wc)
{
	struct kfi_cq_sw *sw = cq->sw;
	unsigned long flags;

	spin_lock_irqsave(&sw->lock, flags);
	if (WARN_ON_ONCE(sw->count == sw->size)) {
		spin_unlock_irqrestore(&sw->lock, flags);
		return -ENOSPC;
	}
	sw->ring[(sw->head + sw->count) % sw->size] = *wc;
	sw->count++;
	spin_unlock_irqrestore(&sw->lock, flags);

	switch (cq->attr.poll_ctx) {
	case KFI_POLL_SOFTIRQ:
		irq_poll_sched(&sw->iop);
		break;
	case KFI_POLL_WORKQUEUE:
	case KFI_POLL_UNBOUND_WORKQUEUE:
		queue_work(sw->wq, &sw->work);
		break;
	case KFI_POLL_DIRECT:
		break;
	}
	return 0;
}
EXPORT_SYMBOL_GPL(kfi_cq_sw_push);

/**
 * kfi_cq_sw_flush() - dispatch what is queued and wait for it
 * @cq: a queue set up with kfi_cq_sw_init()
 *
 * For a provider's drain: returns once every completion pushed before the
 * call has been delivered. A %KFI_POLL_DIRECT queue is processed by the
 * caller, since its owner may not poll it again before the drain returns;
 * as with ib_drain_qp() on an %IB_POLL_DIRECT queue, completions of other
 * endpoints sharing the queue may then be delivered in the caller's
 * context, but never concurrently with the owner's kfi_cq_poll(): the
 * core holds the queue's poll lock across &kfi_provider_ops.ep_drain.
 *
 * Context: process context; may sleep.
 */
void kfi_cq_sw_flush(struct kfi_cq *cq)
{
	struct kfi_cq_sw *sw = cq->sw;

	switch (cq->attr.poll_ctx) {
	case KFI_POLL_DIRECT:
		lockdep_assert_held(&cq->poll_lock);
		while (kfi_cq_sw_pending(sw)) {
			kfi_cq_sw_process(sw, KFI_CQ_BUDGET);
			cond_resched();
		}
		break;
	case KFI_POLL_SOFTIRQ:
		while (kfi_cq_sw_pending(sw)) {
			irq_poll_sched(&sw->iop);
			usleep_range(50, 100);
		}
		break;
	case KFI_POLL_WORKQUEUE:
	case KFI_POLL_UNBOUND_WORKQUEUE:
		while (kfi_cq_sw_pending(sw))
			flush_work(&sw->work);
		flush_work(&sw->work);
		break;
	}
}
EXPORT_SYMBOL_GPL(kfi_cq_sw_flush);

static void kfi_cq_sw_destroy(struct kfi_cq *cq)
{
	struct kfi_cq_sw *sw = cq->sw;

	if (!sw)
		return;
	switch (cq->attr.poll_ctx) {
	case KFI_POLL_SOFTIRQ:
		irq_poll_disable(&sw->iop);
		break;
	case KFI_POLL_WORKQUEUE:
	case KFI_POLL_UNBOUND_WORKQUEUE:
		cancel_work_sync(&sw->work);
		break;
	case KFI_POLL_DIRECT:
		break;
	}
	WARN_ON_ONCE(sw->count || sw->running);
	kvfree(sw->ring);
	kfree(sw);
	cq->sw = NULL;
}

/**
 * kfi_cq_alloc() - allocate a completion queue
 * @domain: the domain
 * @attr: size, completion vector and poll context
 *
 * Context: process context; may sleep.
 * Return: the queue or an ERR_PTR(): -EINVAL for attributes outside the
 * domain's limits, -ENOSPC when the domain has no queue left, -ENODEV when
 * it is being removed, or the provider's error.
 */
struct kfi_cq *kfi_cq_alloc(struct kfi_domain *domain,
			    const struct kfi_cq_attr *attr)
{
	const struct kfi_domain_attr *da;
	struct kfi_cq *cq;
	int ret, idx;

	if (!domain || !attr)
		return ERR_PTR(-EINVAL);
	da = &domain->attr;
	if (!attr->nr_cqe || attr->nr_cqe > da->max_cqe ||
	    attr->comp_vector < -1 || attr->comp_vector >= (int)da->num_comp_vectors ||
	    attr->poll_ctx > KFI_POLL_UNBOUND_WORKQUEUE)
		return ERR_PTR(-EINVAL);

	/* Removal waits until the queue is on the list, or gone. */
	idx = kfi_fence_enter(domain);
	mutex_lock(&domain->lock);
	if (!kfi_domain_get_live(domain)) {
		mutex_unlock(&domain->lock);
		kfi_fence_exit(domain, idx);
		return ERR_PTR(-ENODEV);
	}
	if (domain->nr_cq >= da->max_cq) {
		mutex_unlock(&domain->lock);
		kfi_fence_exit(domain, idx);
		kfi_domain_put(domain);
		return ERR_PTR(-ENOSPC);
	}
	domain->nr_cq++;
	mutex_unlock(&domain->lock);

	ret = -ENOMEM;
	cq = kzalloc(domain->fabric->cq_size, GFP_KERNEL);
	if (!cq)
		goto out_unreserve;
	cq->domain = domain;
	cq->attr = *attr;
	INIT_LIST_HEAD(&cq->entry);
	mutex_init(&cq->poll_lock);
	ret = domain->fabric->ops->cq_create(cq, attr);
	if (ret)
		goto out_free;
	if (attr->poll_ctx == KFI_POLL_DIRECT && !cq->sw &&
	    WARN_ON_ONCE(!domain->fabric->ops->cq_poll)) {
		ret = -EOPNOTSUPP;
		goto out_destroy;
	}

	mutex_lock(&domain->lock);
	list_add_tail(&cq->entry, &domain->cqs);
	mutex_unlock(&domain->lock);
	kfi_fence_exit(domain, idx);
	trace_kfi_cq_alloc(cq);
	return cq;

out_destroy:
	domain->fabric->ops->cq_destroy(cq);
	kfi_cq_sw_destroy(cq);
out_free:
	mutex_destroy(&cq->poll_lock);
	kfree(cq);
out_unreserve:
	mutex_lock(&domain->lock);
	domain->nr_cq--;
	mutex_unlock(&domain->lock);
	kfi_fence_exit(domain, idx);
	kfi_domain_put(domain);
	return ERR_PTR(ret);
}
EXPORT_SYMBOL_GPL(kfi_cq_alloc);

static void kfi_cq_destroy(struct kfi_cq *cq)
{
	cq->domain->fabric->ops->cq_destroy(cq);
	kfi_cq_sw_destroy(cq);
}

/* Domain removal: destroy a queue the ULP still holds (taken off the list). */
void kfi_cq_kill(struct kfi_cq *cq)
{
	struct kfi_domain *domain = cq->domain;

	kfi_cq_destroy(cq);
	mutex_lock(&domain->lock);
	cq->state = KFI_OBJ_DEAD;
	mutex_unlock(&domain->lock);
	wake_up_all(&domain->wait);
}

/**
 * kfi_cq_free() - free a completion queue
 * @cq: the queue; no endpoint may use it any more
 *
 * Freeing a queue that endpoints still use is a ULP bug: it warns and
 * leaves the queue alone.
 *
 * Context: process context; may sleep.
 */
void kfi_cq_free(struct kfi_cq *cq)
{
	struct kfi_domain *domain;

	if (IS_ERR_OR_NULL(cq))
		return;
	domain = cq->domain;
	mutex_lock(&domain->lock);
	if (WARN_ON(cq->users)) {
		mutex_unlock(&domain->lock);
		return;
	}
	mutex_unlock(&domain->lock);

	if (kfi_obj_take(domain, &cq->entry)) {
		kfi_cq_destroy(cq);
		kfi_obj_taken_done(domain);
	} else {
		wait_event(domain->wait, READ_ONCE(cq->state) == KFI_OBJ_DEAD);
	}
	trace_kfi_cq_free(cq);

	mutex_lock(&domain->lock);
	domain->nr_cq--;
	mutex_unlock(&domain->lock);
	mutex_destroy(&cq->poll_lock);
	kfree(cq);
	kfi_domain_put(domain);
}
EXPORT_SYMBOL_GPL(kfi_cq_free);

/**
 * kfi_cq_poll() - process completions of a %KFI_POLL_DIRECT queue
 * @cq: the queue
 * @budget: the most completions to process
 *
 * Calls the done() callbacks of up to @budget completions in the caller's
 * context, e.g. a blk-mq ->poll() handler. Callers of one queue must not
 * poll it concurrently. While a drain of one of the queue's endpoints
 * dispatches the queue itself (see kfi_cq_sw_flush()), this returns 0.
 * Dispatch runs under a mutex, so callbacks may sleep when the caller
 * may; the caller must not be in interrupt context.
 * Safe against concurrent removal of the domain, after which it fails.
 *
 * Return: the number processed, -EINVAL for a queue of another context,
 * or -ENODEV once the domain is being removed.
 */
int kfi_cq_poll(struct kfi_cq *cq, int budget)
{
	struct kfi_domain *domain;
	int ret, idx;

	if (!cq || cq->attr.poll_ctx != KFI_POLL_DIRECT || budget < 0)
		return -EINVAL;
	domain = cq->domain;
	idx = kfi_fence_enter(domain);
	if (kfi_domain_dying(domain) || READ_ONCE(cq->state) != KFI_OBJ_LIVE) {
		ret = -ENODEV;
	} else if (!mutex_trylock(&cq->poll_lock)) {
		/* A drain is dispatching: what it leaves is ours next time. */
		ret = 0;
	} else {
		if (cq->sw)
			ret = kfi_cq_sw_process(cq->sw, budget);
		else
			ret = domain->fabric->ops->cq_poll(cq, budget);
		mutex_unlock(&cq->poll_lock);
	}
	kfi_fence_exit(domain, idx);
	return ret;
}
EXPORT_SYMBOL_GPL(kfi_cq_poll);
