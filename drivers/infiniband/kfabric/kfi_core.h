/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kfabric core internals, shared by the files of the core module.
 */
#ifndef _KFI_CORE_H
#define _KFI_CORE_H

#include <linux/mutex.h>
#include <linux/srcu.h>
#include <linux/wait.h>
#include <rdma/kfi/provider.h>

/* Per-CPU counters of a domain, shown in debugfs. */
enum kfi_stat {
	KFI_STAT_SEND,
	KFI_STAT_RECV,
	KFI_STAT_READ,
	KFI_STAT_WRITE,
	KFI_STAT_MR_MAP,
	KFI_STAT_MR_INV,
	KFI_STAT_COMPLETED,
	KFI_STAT_ERRORS,
	KFI_STAT_FLUSHED,
	KFI_STAT_NR
};

struct kfi_domain_stats {
	u64 count[KFI_STAT_NR];
};

extern struct mutex kfi_lock;
extern struct wait_queue_head kfi_wait;
extern struct list_head kfi_fabrics;
extern struct workqueue_struct *kfi_comp_wq;
extern struct workqueue_struct *kfi_comp_unbound_wq;

/*
 * The removal fence (Documentation/kfabric/object-model.rst). Removal of a
 * domain sets @domain->dying, waits for one SRCU and one RCU grace period
 * and then sets @domain->revoked. Calls into the provider that may sleep
 * (object creation, connection management, kfi_cq_poll(),
 * kfi_rw_ctx_init(), address resolution) run between kfi_fence_enter()
 * and kfi_fence_exit(); those that may not (posts, region mapping, the
 * read/write helper's post and destroy) under rcu_read_lock(). Each checks
 * @domain->dying inside its section, so once removal's wait returns no
 * call is inside the provider and none can enter it: one fence for the
 * whole domain, however many objects it has.
 */
static inline int kfi_fence_enter(struct kfi_domain *domain)
{
	return srcu_read_lock(&domain->srcu);
}

static inline void kfi_fence_exit(struct kfi_domain *domain, int idx)
{
	srcu_read_unlock(&domain->srcu, idx);
}

static inline bool kfi_domain_dying(const struct kfi_domain *domain)
{
	return READ_ONCE(domain->dying);
}

/*
 * May a post on @ep reach the provider? Called inside the removal fence
 * (rcu_read_lock() for posts, the domain's SRCU for kfi_rw_ctx_init()),
 * which kfi_domain_kill_objects() and the drain after kfi_ep_close() wait
 * for.
 */
static inline int kfi_ep_post_check(const struct kfi_ep *ep)
{
	if (unlikely(kfi_domain_dying(ep->domain)))
		return -ENODEV;
	if (unlikely(READ_ONCE(ep->closing)))
		return -ENOTCONN;
	return 0;
}

bool kfi_domain_get_live(struct kfi_domain *domain);
void kfi_domain_kill_objects(struct kfi_domain *domain);
bool kfi_obj_take(struct kfi_domain *domain, struct list_head *entry);
void kfi_obj_taken_done(struct kfi_domain *domain);
void kfi_ep_kill(struct kfi_ep *ep);
void kfi_cq_kill(struct kfi_cq *cq);
void kfi_mr_kill(struct kfi_mr *mr);
void kfi_pep_kill(struct kfi_pep *pep);

u64 kfi_domain_stat(struct kfi_domain *domain, enum kfi_stat stat);

static inline void kfi_stat_inc(struct kfi_domain *domain, enum kfi_stat stat)
{
	this_cpu_inc(domain->stats->count[stat]);
}

#if IS_ENABLED(CONFIG_KUNIT)
int kfi_hints_valid(const struct kfi_hints *hints);
bool kfi_domain_matches(const struct kfi_domain *domain,
			const struct kfi_hints *hints);
#endif

#ifdef CONFIG_DEBUG_FS
void kfi_debugfs_init(void);
void kfi_debugfs_exit(void);
void kfi_debugfs_add_fabric(struct kfi_fabric *fabric);
void kfi_debugfs_remove_fabric(struct kfi_fabric *fabric);
void kfi_debugfs_add_domain(struct kfi_domain *domain);
void kfi_debugfs_remove_domain(struct kfi_domain *domain);
#else
static inline void kfi_debugfs_init(void) {}
static inline void kfi_debugfs_exit(void) {}
static inline void kfi_debugfs_add_fabric(struct kfi_fabric *fabric) {}
static inline void kfi_debugfs_remove_fabric(struct kfi_fabric *fabric) {}
static inline void kfi_debugfs_add_domain(struct kfi_domain *domain) {}
static inline void kfi_debugfs_remove_domain(struct kfi_domain *domain) {}
#endif

#endif /* _KFI_CORE_H */
