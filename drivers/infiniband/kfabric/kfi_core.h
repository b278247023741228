/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kfabric core internals, shared by the files of the core module.
 */
#ifndef _KFI_CORE_H
#define _KFI_CORE_H

#include <linux/mutex.h>
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

bool kfi_domain_get_live(struct kfi_domain *domain);
void kfi_domain_kill_objects(struct kfi_domain *domain);
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
