/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kfabric provider interface.
 *
 * A provider module registers a fabric: a network with one address format,
 * and the operations that implement kfabric on it. It then adds a domain
 * for every device or link it drives, and removes it when the device goes
 * away. The core allocates every object with the size the fabric declares,
 * so providers embed the core structure first and use container_of().
 *
 * The core owns the object lifetimes and the removal fence: data
 * operations on an object whose domain is being removed fail with -ENODEV
 * before they reach the provider, and an object's destroy operation is
 * called exactly once, either from the ULP's free or from the removal of
 * its domain, whichever comes first.
 */
#ifndef _RDMA_KFI_PROVIDER_H
#define _RDMA_KFI_PROVIDER_H

#include <linux/completion.h>
#include <linux/overflow.h>
#include <linux/percpu.h>
#include <linux/refcount.h>
#include <linux/spinlock.h>
#include <linux/srcu.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include <net/net_namespace.h>
#include <rdma/kfi/kfi.h>

struct module;
struct device;
struct kfi_rw_ctx;

/**
 * struct kfi_provider_ops - what a provider implements
 *
 * Required of every provider: @cq_create, @cq_destroy, @ep_create,
 * @ep_destroy, @ep_drain, @connect, @accept, @reject, @disconnect,
 * @pep_listen, @pep_destroy, @post_send, @post_recv.
 * Required with %KFI_CAP_RMA: @post_read, @post_write, @mr_create,
 * @mr_destroy, @mr_map, @mr_invalidate.
 * Optional: @resolve (without it, a domain matches any address of its
 * format), @cq_poll (required when @cq_create does not use the core's
 * software completion queue, kfi_cq_sw_init()), @domain_release,
 * @rw_init/@rw_post/@rw_destroy (all or none; without them the core
 * splits read/write helper transfers into kfi_read() and kfi_write()).
 * kfi_fabric_register() checks this.
 *
 * Context rules: the data operations (post_*, @mr_map, @mr_invalidate,
 * @rw_post) run under rcu_read_lock() and must not sleep, nor may
 * @rw_destroy. Every other operation may sleep. Apart from the destroy,
 * drain and release operations, @rw_destroy and @reject (which answers a
 * request of the provider's own, during its delivery), every operation
 * on a domain's objects runs inside the core's removal fence
 * (rcu_read_lock() or the domain's SRCU), so it never overlaps the
 * removal of the domain: once kfi_domain_unregister() starts destroying
 * objects, no other operation is running on them. For a
 * %KFI_POLL_DIRECT queue, @ep_drain runs with the queue's poll lock
 * held, so it may dispatch the queue itself. @rw_destroy may be called at any time
 * while the endpoint's memory exists, also after @ep_destroy, which must
 * release the contexts still set up on the endpoint.
 *
 * @resolve: decide whether @domain can serve @hints (e.g. route to
 *	@hints->dest_addr in kfi_hints_net(@hints)) and fill @info->src_addr.
 *	Return -ENODATA when it cannot. A provider whose addresses are not
 *	network addresses (a bridge's peer names) ignores the namespace.
 * @domain_release: free the provider part of a domain after its last
 *	reference is gone. The core kfree()s the domain afterwards.
 * @cq_create: set up the provider part of @cq. The core has checked
 *	@attr against the domain's limits.
 * @cq_destroy: tear down @cq; no endpoint uses it any more.
 * @cq_poll: process up to @budget completions of a %KFI_POLL_DIRECT queue.
 * @ep_create: set up @ep; @attr has been checked against the domain's
 *	limits and its completion queues hold room for its queue depths.
 * @ep_drain: flush @ep's outstanding operations and wait until each of
 *	them completed (flushed ones with -ECANCELED), then return. The
 *	endpoint is disconnected if it was not. Called once at most.
 * @ep_destroy: release @ep; it has been drained.
 * @connect: start connecting @ep to @dest; the outcome is reported to the
 *	endpoint's handler.
 * @accept: accept @req on @ep (called from a %KFI_CM_CONNREQ handler).
 * @reject: reject @req (called from a %KFI_CM_CONNREQ handler).
 * @disconnect: start disconnecting; %KFI_CM_DISCONNECTED follows.
 * @pep_listen: start listening on @addr for connection requests. Requests
 *	may be delivered with kfi_pep_connreq() before it returns.
 * @pep_destroy: stop listening and release @pep. No handler runs after it
 *	returns.
 * @post_send: post a send.
 * @post_recv: post a receive.
 * @post_read: post an RMA read.
 * @post_write: post an RMA write.
 * @mr_create: set up @mr for mappings of up to @mr->max_segs segments.
 * @mr_destroy: release @mr; remote access to it has ended.
 * @mr_map: map @iov into @mr with @access and a fresh key, in order on
 *	@ep.
 * @mr_invalidate: end remote access to @mr, in order on @ep.
 * @rw_init: provider implementation of kfi_rw_ctx_init().
 * @rw_post: provider implementation of kfi_rw_ctx_post().
 * @rw_destroy: provider implementation of kfi_rw_ctx_destroy().
 */
struct kfi_provider_ops {
	int (*resolve)(struct kfi_domain *domain, const struct kfi_hints *hints,
		       struct kfi_info *info);
	void (*domain_release)(struct kfi_domain *domain);

	int (*cq_create)(struct kfi_cq *cq, const struct kfi_cq_attr *attr);
	void (*cq_destroy)(struct kfi_cq *cq);
	int (*cq_poll)(struct kfi_cq *cq, int budget);

	int (*ep_create)(struct kfi_ep *ep, const struct kfi_ep_attr *attr);
	void (*ep_drain)(struct kfi_ep *ep);
	void (*ep_destroy)(struct kfi_ep *ep);
	int (*connect)(struct kfi_ep *ep, const struct kfi_addr *dest,
		       const void *private_data, u32 len);
	int (*accept)(struct kfi_ep *ep, struct kfi_connreq *req,
		      const void *private_data, u32 len);
	int (*reject)(struct kfi_connreq *req, const void *private_data, u32 len);
	int (*disconnect)(struct kfi_ep *ep);

	int (*pep_listen)(struct kfi_pep *pep, const struct kfi_addr *addr,
			  int backlog);
	void (*pep_destroy)(struct kfi_pep *pep);

	int (*post_send)(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags);
	int (*post_recv)(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags);
	int (*post_read)(struct kfi_ep *ep, const struct kfi_msg *msg,
			 const struct kfi_rma_iov *rma, u32 flags);
	int (*post_write)(struct kfi_ep *ep, const struct kfi_msg *msg,
			  const struct kfi_rma_iov *rma, u32 flags);

	int (*mr_create)(struct kfi_mr *mr);
	void (*mr_destroy)(struct kfi_mr *mr);
	int (*mr_map)(struct kfi_ep *ep, struct kfi_mr *mr,
		      const struct kfi_iov *iov, u32 access,
		      struct kfi_cqe *cqe, u32 flags);
	int (*mr_invalidate)(struct kfi_ep *ep, struct kfi_mr *mr,
			     struct kfi_cqe *cqe, u32 flags);

	int (*rw_init)(struct kfi_rw_ctx *ctx, struct kfi_ep *ep,
		       const struct kfi_iov *local,
		       const struct kfi_rma_iov *remote,
		       enum dma_data_direction dir);
	int (*rw_post)(struct kfi_rw_ctx *ctx, struct kfi_cqe *cqe,
		       const struct kfi_msg *chain, u32 chain_flags);
	void (*rw_destroy)(struct kfi_rw_ctx *ctx);
};

/**
 * struct kfi_fabric - what a provider registers
 * @name: fabric name ("verbs", "ntb"); unique
 * @owner: the provider module; every object a ULP holds pins it
 * @ops: the provider's operations
 * @addr_format: address format of the fabric
 * @domain_size: bytes to allocate for a domain (>= sizeof(struct kfi_domain))
 * @cq_size: bytes for a completion queue
 * @ep_size: bytes for an endpoint
 * @pep_size: bytes for a passive endpoint
 * @mr_size: bytes for a memory region
 *
 * A ULP sees a fabric in &kfi_info.fabric and listens on it with
 * kfi_pep_alloc().
 */
struct kfi_fabric {
	const char *name;
	struct module *owner;
	const struct kfi_provider_ops *ops;
	enum kfi_addr_format addr_format;
	size_t domain_size;
	size_t cq_size;
	size_t ep_size;
	size_t pep_size;
	size_t mr_size;

	/* private: core */
	struct list_head list;
	struct list_head domains;
	struct list_head peps;
	struct dentry *debugfs;
	bool registered;
};

int kfi_fabric_register(struct kfi_fabric *fabric);
void kfi_fabric_unregister(struct kfi_fabric *fabric);

/**
 * struct kfi_domain - a device or link of a fabric
 * @fabric: the fabric
 * @attr: what the domain offers; filled in by the provider before
 *	kfi_domain_register()
 * @dev: the device behind the domain, for messages and DMA mapping
 *
 * Allocated with kfi_domain_alloc(), the provider's structure embedding
 * this one first.
 */
struct kfi_domain {
	struct kfi_fabric *fabric;
	struct kfi_domain_attr attr;
	struct device *dev;

	/* private: core */
	struct kref ref;
	struct list_head list;
	struct mutex lock;	/* object lists and counts, state */
	wait_queue_head_t wait;
	bool registered;
	bool dying;		/* removal started: no new objects, no calls */
	bool revoked;		/* ... and every call already in has returned */
	struct srcu_struct srcu;	/* calls that may sleep, see ep.c */
	struct list_head cqs;
	struct list_head eps;
	struct list_head mrs;
	u32 nr_ep;
	u32 nr_cq;
	u32 nr_mr;
	u32 freeing;	/* taken off a list by their *_free(), not destroyed */
	struct xarray client_data;
	struct kfi_domain_stats __percpu *stats;
	struct dentry *debugfs;
};

struct kfi_domain *kfi_domain_alloc(struct kfi_fabric *fabric, struct device *dev);
void kfi_domain_free(struct kfi_domain *domain);
int kfi_domain_register(struct kfi_domain *domain);
int kfi_domain_register_private(struct kfi_domain *domain);
void kfi_domain_unregister(struct kfi_domain *domain);

/**
 * enum kfi_obj_state - core life-cycle of ULP objects
 * @KFI_OBJ_LIVE: in use
 * @KFI_OBJ_DEAD: destroyed by the provider (freed by the ULP, or its domain
 *	removed); only the memory remains until the ULP frees it
 */
enum kfi_obj_state {
	KFI_OBJ_LIVE,
	KFI_OBJ_DEAD,
};

/**
 * struct kfi_cq - a completion queue
 * @domain: its domain
 * @attr: its parameters
 *
 * Providers either implement completion dispatch themselves (e.g. on top of
 * an &struct ib_cq) or use the core's software completion queue through
 * kfi_cq_sw_init() and kfi_cq_sw_push().
 */
struct kfi_cq {
	struct kfi_domain *domain;
	struct kfi_cq_attr attr;

	/* private: core */
	struct list_head entry;
	enum kfi_obj_state state;
	u32 reserved;
	u32 users;
	struct kfi_cq_sw *sw;
	struct mutex poll_lock;	/* %KFI_POLL_DIRECT dispatch: owner or drain */
};

/**
 * struct kfi_ep - an endpoint
 * @domain: its domain
 * @attr: its parameters, as the ULP asked (the core adds the room the
 *	read/write helper needs when the provider has no rw operations)
 * @net: network namespace it connects in (&kfi_ep_attr.net), referenced
 * @src_addr: local address, once known; from the start when the ULP
 *	chose it, and then @attr.src_addr points here: connect from it
 * @dest_addr: peer address, once known
 * @rw_ops_per_ctx: send queue slots one read/write helper context may
 *	take; set by providers that implement the rw operations
 *
 * @closing is read without locks by the data path, under rcu_read_lock(),
 * and set before the RCU grace period that a drain waits for.
 */
struct kfi_ep {
	struct kfi_domain *domain;
	struct kfi_ep_attr attr;
	struct net *net;
	struct kfi_addr src_addr;
	struct kfi_addr dest_addr;
	u32 rw_ops_per_ctx;

	/* private: core */
	bool dying;		/* no more connection events */
	bool closing;		/* no more posts, see kfi_ep_close() */
	bool drained;
	unsigned long post_fence;	/* RCU cookie taken when @closing was set */
	enum kfi_obj_state state;
	struct list_head entry;
	struct mutex cm_lock;	/* serialises events, guards dying */
	struct mutex drain_lock;	/* drains run once */
	spinlock_t close_lock;		/* closing, post_fence */
	struct task_struct *cm_owner;
	u32 rw_sge;
	u32 id;
};

/**
 * struct kfi_pep - a passive (listening) endpoint
 * @fabric: its fabric
 * @handler: connection request handler
 * @context: passed to @handler
 * @net: network namespace it listens in, referenced
 * @addr: address it listens on
 */
struct kfi_pep {
	struct kfi_fabric *fabric;
	kfi_cm_handler_t handler;
	void *context;
	struct net *net;
	struct kfi_addr addr;

	/* private: core */
	struct list_head entry;
	/*
	 * lock serialises kfi_listen() against destruction and is held
	 * across the provider's pep_listen(); cm_lock only serialises
	 * request delivery. Providers deliver requests under their own
	 * locks, which pep_listen() takes too, so one lock for both would
	 * invert against them.
	 */
	struct mutex lock;	/* listen against destroy */
	struct mutex cm_lock;	/* request delivery, state */
	enum kfi_obj_state state;
	bool listening;
	bool killed;
};

/**
 * struct kfi_iov_iter - walks a &struct kfi_iov in contiguous pieces
 * @iov: the buffer
 * @idx: current entry
 * @sg: current entry of a scatterlist
 * @skip: bytes of the current entry already walked
 * @left: bytes of the buffer still to walk
 */
struct kfi_iov_iter {
	const struct kfi_iov *iov;
	u32 idx;
	struct scatterlist *sg;
	u64 skip;
	u64 left;
};

int kfi_iov_iter_init(struct kfi_iov_iter *it, const struct kfi_iov *iov);
bool kfi_iov_iter_next(struct kfi_iov_iter *it, struct bio_vec *seg, u64 max);
int kfi_iov_nsegs(const struct kfi_iov *iov, u64 max);
void kfi_iov_dma_begin(const struct kfi_iov *iov);
void kfi_iov_dma_end(const struct kfi_iov *iov, enum dma_data_direction dir);
int kfi_iov_copy(const struct kfi_iov *iov, u64 skip, void *buf, u64 len,
		 bool to_iov);

void kfi_cm_event(struct kfi_ep *ep, const struct kfi_cm_event *event);
void kfi_domain_visit_eps(struct kfi_domain *domain,
			  void (*fn)(struct kfi_ep *ep, void *arg), void *arg);
bool kfi_pep_connreq(struct kfi_pep *pep, struct kfi_connreq *req,
		     const void *private_data, u32 len);
void kfi_pep_lost(struct kfi_pep *pep);
void kfi_complete(struct kfi_cq *cq, struct kfi_wc *wc);

/**
 * kfi_hints_net() - the network namespace of a kfi_getinfo() request
 * @hints: the request
 *
 * Return: @hints->net, or &init_net when the ULP left it NULL.
 */
static inline struct net *kfi_hints_net(const struct kfi_hints *hints)
{
	return hints->net ?: &init_net;
}

/**
 * kfi_msg_len() - total length of a message's buffers
 * @msg: the message, or NULL
 *
 * Return: the sum of the buffers' lengths, 0 for none, U64_MAX when the sum
 * overflows.
 */
static inline u64 kfi_msg_len(const struct kfi_msg *msg)
{
	u64 len = 0;
	u32 i;

	if (!msg || (msg->niov && !msg->iov))
		return 0;
	for (i = 0; i < msg->niov; i++)
		if (check_add_overflow(len, msg->iov[i].len, &len))
			return U64_MAX;
	return len;
}

int kfi_mr_check(const struct kfi_mr *mr, u64 key, u64 addr, u64 len,
		 u32 access, u64 *offset);

int kfi_cq_sw_init(struct kfi_cq *cq);
int kfi_cq_sw_push(struct kfi_cq *cq, const struct kfi_wc *wc);
void kfi_cq_sw_flush(struct kfi_cq *cq);

#endif /* _RDMA_KFI_PROVIDER_H */
