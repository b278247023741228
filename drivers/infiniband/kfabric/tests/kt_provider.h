/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The KUnit tests' software provider.
 */
#ifndef _KFI_KT_PROVIDER_H
#define _KFI_KT_PROVIDER_H

#include <linux/workqueue.h>
#include <rdma/kfi/provider.h>

#define KT_MAX_SGE	4
#define KT_BOUNCE	SZ_64K

struct kt_ep;

/* A provider slot for one operation with a completion. */
struct kt_op {
	struct kfi_cqe cqe;
	struct kfi_cqe *ulp_cqe;
	struct kt_ep *ep;
	bool busy;
	struct kfi_iov iov[KT_MAX_SGE];
	u32 niov;
};

/* A gate that provider calls wait at, and a count of those inside. */
struct kt_hold {
	struct completion gate;
	atomic_t inside;
};

struct kt_domain {
	struct kfi_domain dom;
	struct xarray mrs;
	void *bounce;
	/* Shape of the RMA operations seen, for the read/write tests. */
	u32 ops_seen;
	u32 max_segs_seen;
	u64 max_len_seen;
	/* Fault injection: fail resolve() with this error. */
	int resolve_err;
	/* Make resolve() take this long, as rdma_resolve_addr() may. */
	unsigned int resolve_ms;
	/* Make a drain start this late, as a slow device's may. */
	unsigned int drain_ms;
	/* Hold destructions of regions and queues here, if set. */
	struct kt_hold *destroy_hold;
};

enum kt_state {
	KT_IDLE,
	KT_CONNECTING,
	KT_CONNECTED,
	KT_ERROR,
	KT_DISCONNECTED,
};

struct kt_event {
	struct list_head list;
	struct kfi_cm_event ev;
	u8 data[KFI_CM_DATA_MAX];
};

struct kt_ep {
	struct kfi_ep ep;
	struct kt_ep *peer;
	enum kt_state state;
	struct kt_op *sops;
	u32 nsops;
	struct kt_op *rops;
	u32 nrops;
	u32 rhead;
	u32 rcount;
	/* Connection events, delivered in order from @cm_work. */
	struct work_struct cm_work;
	struct list_head events;
	/* Pending connect: destination and private data. */
	struct kfi_addr dest;
	u8 pdata[KFI_CM_DATA_MAX];
	u32 pdata_len;
	bool connect_pending;
};

struct kt_pep {
	struct kfi_pep pep;
	struct list_head list;
	bool listening;
};

struct kt_mr {
	struct kfi_mr mr;
	u32 index;
	u8 gen;
	struct kfi_iov iov;
};

struct kt_connreq {
	struct kfi_connreq req;
	struct kt_ep *client;
	struct kt_ep *server;
	const void *pdata;
	u32 pdata_len;
	u8 reject_data[KFI_CM_DATA_MAX];
	u32 reject_len;
};

extern struct kfi_fabric kt_fabric;
/* Most resolve() calls seen running at once. */
extern int kt_resolving_max;

int kt_register(void);
void kt_unregister(void);
struct kt_domain *kt_domain_add(const char *name, u64 caps_off);
struct kt_domain *kt_domain_add_private(const char *name);
void kt_domain_remove(struct kt_domain *kd);

#endif /* _KFI_KT_PROVIDER_H */
