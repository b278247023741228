/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kfabric over the kernel verbs stack: internal definitions.
 *
 * Every port of an RDMA device that uses the IB connection manager
 * (InfiniBand, RoCE) is a kfabric domain. Connections are rdma_cm RC
 * connections, completions come from the CQ pool, and the read/write
 * helper is rdma_rw, so the wire is exactly what a kverbs ULP puts on it.
 */
#ifndef _KFI_VERBS_H
#define _KFI_VERBS_H

#include <linux/spinlock.h>
#include <rdma/ib_verbs.h>
#include <rdma/rdma_cm.h>
#include <rdma/rw.h>
#include <rdma/kfi/provider.h>
#include <rdma/kfi/rw.h>

/* Every rdma_cm id we own points at one of these through its context. */
struct vbs_cm_ctx {
	bool passive;
};

struct vbs_domain {
	struct kfi_domain dom;
	struct ib_device *ibdev;
	u32 port;
	struct ib_pd *pd;
	struct list_head entry;		/* vbs_domains */
	struct xarray mrs;		/* key index -> vbs_mr, for remote invalidation */
	u32 mr_pgsz_bitmap;		/* FRWR page sizes to choose from */
	unsigned int max_seg_size;	/* longest scatterlist entry to map */
	bool iwarp;			/* RDMA READ sinks must be registered */
	struct ib_event_handler event_handler;	/* device fatal */
};

struct vbs_cq {
	struct kfi_cq cq;
	struct ib_cq *ibcq;
	bool pooled;			/* from ib_cq_pool_get() */
};

/*
 * The DMA mappings of one operation's local buffers. The sge array (and,
 * for an iWARP read, the sink's scatterlist) is one of its ring's
 * buffers, taken before the operation gets a slot (vbs_buf_get()). An sge
 * with the PD's local_dma_lkey was mapped by us, any other points into a
 * memory region.
 */
struct vbs_map {
	struct ib_sge *sge;		/* the buffer's sges; NULL: no buffer held */
	struct scatterlist *rd_sgl;	/* iWARP read sink, send ring only */
	struct ib_mr *rd_mr;		/* its registration, from the QP's pool */
	u32 buf;			/* index of the buffer in its ring */
	u8 nsge;
	u8 dir;				/* enum dma_data_direction */
	u8 rd_nsg;			/* entries of @rd_sgl mapped */
};

/*
 * One posted work request: a slot of an endpoint's send or receive ring.
 * It holds the mappings of its operation until it is retired.
 */
struct vbs_op {
	struct ib_cqe cqe;
	struct kfi_cqe *ulp;
	struct vbs_ep *vep;
	u32 idx;
	u8 opcode;			/* enum kfi_wc_opcode */
	struct vbs_mr *mr;		/* MR_MAP and MR_INV */
	u32 key;			/* the key of @mr they register or invalidate */
	struct vbs_map map;
};

/*
 * Slots are taken and posted in order under @lock; buffers are taken
 * and released in any order, with atomic bit operations on @bufs, so
 * that mapping needs no lock. There are as many buffers as slots.
 */
struct vbs_ring {
	spinlock_t lock;		/* head; posting order */
	u32 size;
	u32 head;			/* next slot to post */
	u32 tail;			/* oldest slot not yet retired; only
					 * the completion context writes it
					 */
	u32 max_sge;			/* sges of a buffer */
	struct vbs_op *ops;
	unsigned long *bufs;		/* bitmap: buffers in use */
	struct ib_sge *sges;		/* the buffers' sges */
	struct scatterlist *rd_sgls;	/* iWARP send ring: read sinks */
};

enum vbs_ep_state {
	VBS_EP_IDLE,
	VBS_EP_CONNECTING,
	VBS_EP_CONNECTED,
	VBS_EP_DOWN,
};

/* The connection's end was reported to the ULP (vbs_report_down()). */
#define VBS_EP_F_DOWN_REPORTED	0

/* Reads into plain buffers in flight at once on iWARP (vbs_post_read_iw()). */
#define VBS_IW_READS		32

struct vbs_ep {
	struct kfi_ep ep;
	struct vbs_cm_ctx cm;
	struct ib_qp *qp;
	struct rdma_cm_id *id;
	enum vbs_ep_state state;	/* read locklessly by the data path */
	struct vbs_ring sq;
	struct vbs_ring rq;
	u32 max_sge;			/* per send-side operation */
	spinlock_t rw_lock;		/* rw_ctxs */
	struct list_head rw_ctxs;	/* helper contexts set up, not destroyed */
	struct work_struct fatal_work;	/* reports a failed QP */
	unsigned long flags;		/* VBS_EP_F_* */
	u8 pdata[KFI_CM_DATA_MAX];
	u32 pdata_len;
};

struct vbs_pep {
	struct kfi_pep pep;
	struct vbs_cm_ctx cm;
	struct rdma_cm_id *id;
};

/* A connection request on its way through kfi_pep_connreq(). */
struct vbs_connreq {
	struct kfi_connreq req;
	struct rdma_cm_id *id;
	const struct rdma_conn_param *param;
	bool rejected;
};

/*
 * The mapping of a memory region: FREE (nothing mapped), BUSY (one of
 * vbs_mr_map() and vbs_mr_end() owns the scatterlist and the DMA mapping)
 * or VALID (registered under the key, or posted to be).
 */
enum vbs_mr_state {
	VBS_MR_FREE,
	VBS_MR_BUSY,
	VBS_MR_VALID,
};

struct vbs_mr {
	struct kfi_mr mr;
	struct ib_mr *ibmr;
	struct scatterlist *sgl;
	spinlock_t lock;		/* state, nents, key */
	u8 state;			/* enum vbs_mr_state */
	int nents;			/* DMA-mapped entries while VALID */
	u32 key;			/* the key of the mapping while VALID */
	u32 index;			/* in vbs_domain.mrs */
};

static inline struct vbs_domain *to_vdom(struct kfi_domain *d)
{
	return container_of(d, struct vbs_domain, dom);
}

static inline struct vbs_cq *to_vcq(struct kfi_cq *cq)
{
	return container_of(cq, struct vbs_cq, cq);
}

static inline struct vbs_ep *to_vep(struct kfi_ep *ep)
{
	return container_of(ep, struct vbs_ep, ep);
}

static inline struct vbs_pep *to_vpep(struct kfi_pep *pep)
{
	return container_of(pep, struct vbs_pep, pep);
}

static inline struct vbs_mr *to_vmr(struct kfi_mr *mr)
{
	return container_of(mr, struct vbs_mr, mr);
}

static inline struct vbs_domain *vep_dom(struct vbs_ep *vep)
{
	return to_vdom(vep->ep.domain);
}

extern struct kfi_fabric vbs_fabric;

struct vbs_domain *vbs_find_domain(struct ib_device *ibdev, u32 port);

/* cm.c */
int vbs_cm_handler(struct rdma_cm_id *id, struct rdma_cm_event *ev);
int vbs_connect(struct kfi_ep *ep, const struct kfi_addr *dest,
		const void *private_data, u32 len);
int vbs_accept(struct kfi_ep *ep, struct kfi_connreq *req,
	       const void *private_data, u32 len);
int vbs_reject(struct kfi_connreq *req, const void *private_data, u32 len);
int vbs_disconnect(struct kfi_ep *ep);
int vbs_pep_listen(struct kfi_pep *pep, const struct kfi_addr *addr,
		   int backlog);
void vbs_pep_destroy(struct kfi_pep *pep);
int vbs_resolve(struct kfi_domain *domain, const struct kfi_hints *hints,
		struct kfi_info *info);

/* data.c */
int vbs_ep_create(struct kfi_ep *ep, const struct kfi_ep_attr *attr);
void vbs_ep_drain(struct kfi_ep *ep);
void vbs_ep_destroy(struct kfi_ep *ep);
int vbs_post_send(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags);
int vbs_post_recv(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags);
int vbs_post_read(struct kfi_ep *ep, const struct kfi_msg *msg,
		  const struct kfi_rma_iov *rma, u32 flags);
int vbs_post_write(struct kfi_ep *ep, const struct kfi_msg *msg,
		   const struct kfi_rma_iov *rma, u32 flags);
int vbs_mr_create(struct kfi_mr *mr);
void vbs_mr_destroy(struct kfi_mr *mr);
int vbs_mr_map(struct kfi_ep *ep, struct kfi_mr *mr, const struct kfi_iov *iov,
	       u32 access, struct kfi_cqe *cqe, u32 flags);
int vbs_mr_invalidate(struct kfi_ep *ep, struct kfi_mr *mr,
		      struct kfi_cqe *cqe, u32 flags);
int vbs_rw_init(struct kfi_rw_ctx *ctx, struct kfi_ep *ep,
		const struct kfi_iov *local, const struct kfi_rma_iov *remote,
		enum dma_data_direction dir);
int vbs_rw_post(struct kfi_rw_ctx *ctx, struct kfi_cqe *cqe,
		const struct kfi_msg *chain, u32 chain_flags);
void vbs_rw_destroy(struct kfi_rw_ctx *ctx);
int vbs_qp_modify(struct vbs_ep *vep, enum ib_qp_state state);
void vbs_qp_error(struct vbs_ep *vep);
void vbs_qp_fatal_work(struct work_struct *work);
void vbs_ep_fatal(struct kfi_ep *ep, void *unused);

#endif /* _KFI_VERBS_H */
