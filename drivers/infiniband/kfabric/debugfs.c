// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric debugfs:
 *
 *   kfabric/fabrics                    registered fabrics and their domains
 *   kfabric/<fabric>/<domain>/attr     the domain's attributes
 *   kfabric/<fabric>/<domain>/objects  endpoints, queues and regions
 *   kfabric/<fabric>/<domain>/counters operations posted and completed
 */
#include <linux/debugfs.h>
#include <linux/device.h>
#include <linux/module.h>
#include <linux/seq_file.h>

#include "kfi_core.h"

static struct dentry *kfi_debugfs_root;

static int kfi_fabrics_show(struct seq_file *s, void *unused)
{
	struct kfi_fabric *fabric;
	struct kfi_domain *domain;

	guard(mutex)(&kfi_lock);
	list_for_each_entry(fabric, &kfi_fabrics, list) {
		seq_printf(s, "%s provider=%s format=%d\n", fabric->name,
			   module_name(fabric->owner), fabric->addr_format);
		list_for_each_entry(domain, &fabric->domains, list)
			seq_printf(s, "  %s caps=%#llx protocol=%d device=%s\n",
				   domain->attr.name, domain->attr.caps,
				   domain->attr.protocol,
				   domain->dev ? dev_name(domain->dev) : "-");
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(kfi_fabrics);

static int kfi_domain_attr_show(struct seq_file *s, void *unused)
{
	struct kfi_domain *domain = s->private;
	const struct kfi_domain_attr *a = &domain->attr;

	seq_printf(s, "name %s\ncaps %#llx\nep_types %#x\nprotocol %d\n"
		   "addr_format %d\n", a->name, a->caps, a->ep_types,
		   a->protocol, a->addr_format);
	seq_printf(s, "max_ep %u\nmax_cq %u\nmax_cqe %u\nmax_mr %u\n",
		   a->max_ep, a->max_cq, a->max_cqe, a->max_mr);
	seq_printf(s, "max_send_ops %u\nmax_recv_ops %u\nmax_send_sge %u\n"
		   "max_recv_sge %u\nmax_rma_sge %u\n", a->max_send_ops,
		   a->max_recv_ops, a->max_send_sge, a->max_recv_sge,
		   a->max_rma_sge);
	seq_printf(s, "max_msg_size %llu\nmax_rma_size %llu\nmax_mr_size %llu\n"
		   "max_mr_segs %u\nmax_mr_block %llu\nmr_key_size %u\n"
		   "cq_data_size %u\n", a->max_msg_size, a->max_rma_size,
		   a->max_mr_size, a->max_mr_segs, a->max_mr_block,
		   a->mr_key_size, a->cq_data_size);
	seq_printf(s, "max_cm_data %u\nmax_reject_data %u\nnum_comp_vectors %u\n"
		   "auth_key_size %u\ntclass_mask %#x\nmr_key_cycle %u\n",
		   a->max_cm_data, a->max_reject_data, a->num_comp_vectors,
		   a->auth_key_size, a->tclass_mask, a->mr_key_cycle);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(kfi_domain_attr);

static int kfi_domain_objects_show(struct seq_file *s, void *unused)
{
	struct kfi_domain *domain = s->private;
	char src[80], dst[80];
	struct kfi_ep *ep;
	struct kfi_cq *cq;
	struct kfi_mr *mr;

	guard(mutex)(&domain->lock);
	seq_printf(s, "endpoints %u cqs %u mrs %u%s\n", domain->nr_ep,
		   domain->nr_cq, domain->nr_mr, domain->dying ? " (removed)" : "");
	list_for_each_entry(ep, &domain->eps, entry) {
		kfi_addr_print(src, sizeof(src), &ep->src_addr);
		kfi_addr_print(dst, sizeof(dst), &ep->dest_addr);
		seq_printf(s, "ep %u send_ops %u recv_ops %u rw_ctxs %u %s -> %s%s\n",
			   ep->id, ep->attr.max_send_ops, ep->attr.max_recv_ops,
			   ep->attr.max_rw_ctxs, src, dst,
			   ep->drained ? " drained" : "");
	}
	list_for_each_entry(cq, &domain->cqs, entry)
		seq_printf(s, "cq %p nr_cqe %u reserved %u users %u poll_ctx %d\n",
			   cq, cq->attr.nr_cqe, cq->reserved, cq->users,
			   cq->attr.poll_ctx);
	list_for_each_entry(mr, &domain->mrs, entry)
		seq_printf(s, "mr %p max_segs %u key %#llx length %llu access %#x\n",
			   mr, mr->max_segs, mr->key, mr->length, mr->access);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(kfi_domain_objects);

static const char *const kfi_stat_names[KFI_STAT_NR] = {
	[KFI_STAT_SEND] = "send",
	[KFI_STAT_RECV] = "recv",
	[KFI_STAT_READ] = "read",
	[KFI_STAT_WRITE] = "write",
	[KFI_STAT_MR_MAP] = "mr_map",
	[KFI_STAT_MR_INV] = "mr_invalidate",
	[KFI_STAT_COMPLETED] = "completed",
	[KFI_STAT_ERRORS] = "errors",
	[KFI_STAT_FLUSHED] = "flushed",
};

/**
 * kfi_domain_stat() - sum a per-CPU counter of a domain
 * @domain: the domain
 * @stat: the counter
 *
 * Return: the sum over all CPUs.
 */
u64 kfi_domain_stat(struct kfi_domain *domain, enum kfi_stat stat)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += per_cpu_ptr(domain->stats, cpu)->count[stat];
	return sum;
}

static int kfi_domain_counters_show(struct seq_file *s, void *unused)
{
	struct kfi_domain *domain = s->private;
	int i;

	for (i = 0; i < KFI_STAT_NR; i++)
		seq_printf(s, "%s %llu\n", kfi_stat_names[i],
			   kfi_domain_stat(domain, i));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(kfi_domain_counters);

void kfi_debugfs_add_fabric(struct kfi_fabric *fabric)
{
	fabric->debugfs = debugfs_create_dir(fabric->name, kfi_debugfs_root);
}

void kfi_debugfs_remove_fabric(struct kfi_fabric *fabric)
{
	debugfs_remove_recursive(fabric->debugfs);
	fabric->debugfs = NULL;
}

void kfi_debugfs_add_domain(struct kfi_domain *domain)
{
	struct dentry *d;

	d = debugfs_create_dir(domain->attr.name, domain->fabric->debugfs);
	domain->debugfs = d;
	debugfs_create_file("attr", 0400, d, domain, &kfi_domain_attr_fops);
	debugfs_create_file("objects", 0400, d, domain, &kfi_domain_objects_fops);
	debugfs_create_file("counters", 0400, d, domain, &kfi_domain_counters_fops);
}

void kfi_debugfs_remove_domain(struct kfi_domain *domain)
{
	debugfs_remove_recursive(domain->debugfs);
	domain->debugfs = NULL;
}

void kfi_debugfs_init(void)
{
	kfi_debugfs_root = debugfs_create_dir("kfabric", NULL);
	debugfs_create_file("fabrics", 0400, kfi_debugfs_root, NULL,
			    &kfi_fabrics_fops);
}

void kfi_debugfs_exit(void)
{
	debugfs_remove_recursive(kfi_debugfs_root);
}
