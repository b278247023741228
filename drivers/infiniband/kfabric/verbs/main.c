// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric over the kernel verbs stack: the provider, its domains (one per
 * port of every RDMA device that uses the IB connection manager) and its
 * completion queues.
 *
 * The provider is an ib_client, so it learns of devices as they come and
 * go. It is a user of kverbs like any other ULP: rdma_cm sets up
 * connections, completion queues come from the CQ pool (or are allocated
 * for KFI_POLL_DIRECT, which the pool does not offer), and the read/write
 * helper is rdma_rw.
 */
#include <linux/log2.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <rdma/ib_cm.h>

#include "kfi_verbs.h"

static LIST_HEAD(vbs_domains);
static DEFINE_MUTEX(vbs_domains_lock);

/**
 * vbs_find_domain() - find the domain of a device port
 * @ibdev: the device
 * @port: the port
 *
 * Return: the domain with a reference held, or NULL.
 */
struct vbs_domain *vbs_find_domain(struct ib_device *ibdev, u32 port)
{
	struct vbs_domain *vdom;

	guard(mutex)(&vbs_domains_lock);
	list_for_each_entry(vdom, &vbs_domains, entry) {
		if (vdom->ibdev == ibdev && vdom->port == port) {
			kfi_domain_get(&vdom->dom);
			return vdom;
		}
	}
	return NULL;
}

static enum ib_poll_context vbs_poll_ctx(enum kfi_poll_ctx ctx)
{
	switch (ctx) {
	case KFI_POLL_DIRECT:
		return IB_POLL_DIRECT;
	case KFI_POLL_SOFTIRQ:
		return IB_POLL_SOFTIRQ;
	case KFI_POLL_WORKQUEUE:
		return IB_POLL_WORKQUEUE;
	default:
		return IB_POLL_UNBOUND_WORKQUEUE;
	}
}

/*
 * Completion queues shared by endpoints are what the CQ pool is for; only
 * the direct context, which the pool does not offer, gets its own.
 */
static int vbs_cq_create(struct kfi_cq *cq, const struct kfi_cq_attr *attr)
{
	struct vbs_domain *vdom = to_vdom(cq->domain);
	struct vbs_cq *vcq = to_vcq(cq);
	enum ib_poll_context ctx = vbs_poll_ctx(attr->poll_ctx);
	int vector = attr->comp_vector < 0 ? 0 : attr->comp_vector;

	if (ctx == IB_POLL_DIRECT) {
		vcq->ibcq = ib_alloc_cq(vdom->ibdev, vcq, attr->nr_cqe, vector, ctx);
	} else {
		vcq->ibcq = ib_cq_pool_get(vdom->ibdev, attr->nr_cqe, vector, ctx);
		vcq->pooled = true;
	}
	return PTR_ERR_OR_ZERO(vcq->ibcq);
}

static void vbs_cq_destroy(struct kfi_cq *cq)
{
	struct vbs_cq *vcq = to_vcq(cq);

	if (vcq->pooled)
		ib_cq_pool_put(vcq->ibcq, cq->attr.nr_cqe);
	else
		ib_free_cq(vcq->ibcq);
}

static int vbs_cq_poll(struct kfi_cq *cq, int budget)
{
	struct vbs_cq *vcq = to_vcq(cq);

	if (vcq->pooled)
		return 0;
	return ib_process_cq_direct(vcq->ibcq, budget);
}

static void vbs_domain_release(struct kfi_domain *domain)
{
	xa_destroy(&to_vdom(domain)->mrs);
}

static const struct kfi_provider_ops vbs_ops = {
	.resolve	= vbs_resolve,
	.domain_release	= vbs_domain_release,
	.cq_create	= vbs_cq_create,
	.cq_destroy	= vbs_cq_destroy,
	.cq_poll	= vbs_cq_poll,
	.ep_create	= vbs_ep_create,
	.ep_drain	= vbs_ep_drain,
	.ep_destroy	= vbs_ep_destroy,
	.connect	= vbs_connect,
	.accept		= vbs_accept,
	.reject		= vbs_reject,
	.disconnect	= vbs_disconnect,
	.pep_listen	= vbs_pep_listen,
	.pep_destroy	= vbs_pep_destroy,
	.post_send	= vbs_post_send,
	.post_recv	= vbs_post_recv,
	.post_read	= vbs_post_read,
	.post_write	= vbs_post_write,
	.mr_create	= vbs_mr_create,
	.mr_destroy	= vbs_mr_destroy,
	.mr_map		= vbs_mr_map,
	.mr_invalidate	= vbs_mr_invalidate,
	.rw_init	= vbs_rw_init,
	.rw_post	= vbs_rw_post,
	.rw_destroy	= vbs_rw_destroy,
};

struct kfi_fabric vbs_fabric = {
	.name		= "verbs",
	.owner		= THIS_MODULE,
	.ops		= &vbs_ops,
	.addr_format	= KFI_ADDR_INET,
	.domain_size	= sizeof(struct vbs_domain),
	.cq_size	= sizeof(struct vbs_cq),
	.ep_size	= sizeof(struct vbs_ep),
	.pep_size	= sizeof(struct vbs_pep),
	.mr_size	= sizeof(struct vbs_mr),
};

/*
 * Advertise what the device does, and only that: remote invalidation and
 * memory regions need the memory management extensions (FRWR).
 *
 * A region is an FRWR MR whose page list has as many entries as the ULP
 * allocates it segments. The page size is chosen for each mapping (see
 * vbs_mr_pgsz()), so the largest mapping is a full page list of the
 * largest page size the device supports. Pages smaller than PAGE_SIZE
 * would only take more entries; a device that reports no page size of
 * PAGE_SIZE or larger gets PAGE_SIZE, the size FRWR ULPs assume.
 */
static void vbs_domain_attr(struct vbs_domain *vdom,
			    const struct ib_port_attr *pattr)
{
	const struct ib_device_attr *da = &vdom->ibdev->attrs;
	struct kfi_domain_attr *a = &vdom->dom.attr;

	if (rdma_end_port(vdom->ibdev) == rdma_start_port(vdom->ibdev))
		strscpy(a->name, dev_name(&vdom->ibdev->dev));
	else
		snprintf(a->name, sizeof(a->name), "%s:%u",
			 dev_name(&vdom->ibdev->dev), vdom->port);
	vdom->iwarp = rdma_protocol_iwarp(vdom->ibdev, vdom->port);
	a->caps = KFI_CAP_MSG | KFI_CAP_RMA | KFI_CAP_TCLASS;
	/*
	 * iWARP carries no immediate data, and completes sends and writes
	 * once they are handed to TCP; InfiniBand and RoCE once the peer
	 * acknowledged them.
	 */
	if (!vdom->iwarp)
		a->caps |= KFI_CAP_RMA_IMM | KFI_CAP_DELIVERY;
	if (da->device_cap_flags & IB_DEVICE_MEM_MGT_EXTENSIONS) {
		a->caps |= KFI_CAP_REMOTE_INV;
		a->max_mr = da->max_mr;
		a->max_mr_segs = min_t(u32, da->max_fast_reg_page_list_len,
				       SG_MAX_SEGMENTS);
		vdom->mr_pgsz_bitmap = da->page_size_cap &
				       GENMASK(31, PAGE_SHIFT) ?: PAGE_SIZE;
		a->max_mr_size = min_t(u64, da->max_mr_size,
				       (u64)a->max_mr_segs <<
				       __fls(vdom->mr_pgsz_bitmap));
		a->max_mr_block = min_t(u64, BIT_ULL(__fls(vdom->mr_pgsz_bitmap)),
					rounddown_pow_of_two(a->max_mr_size));
	}
	/*
	 * Scatterlist entries no longer than the device maps in one DMA
	 * segment, in whole pages so that splitting keeps them page-aligned.
	 */
	vdom->max_seg_size = max_t(unsigned int, PAGE_SIZE,
				   rounddown(ib_dma_max_seg_size(vdom->ibdev),
					     PAGE_SIZE));
	a->ep_types = BIT(KFI_EP_MSG);
	a->protocol = KFI_PROTO_RDMA_RC;
	a->addr_format = KFI_ADDR_INET;
	a->max_ep = da->max_qp;
	a->max_cq = da->max_cq;
	a->max_cqe = da->max_cqe;
	/* Room for the drain work requests of ib_drain_qp(). */
	a->max_send_ops = da->max_qp_wr - 1;
	a->max_recv_ops = da->max_qp_wr - 1;
	a->max_send_sge = min_t(u32, da->max_send_sge, U8_MAX);
	a->max_recv_sge = min_t(u32, da->max_recv_sge, U8_MAX);
	a->max_rma_sge = min_t(u32, a->max_send_sge, da->max_sge_rd);
	a->max_msg_size = pattr->max_msg_sz;
	a->max_rma_size = pattr->max_msg_sz;
	/*
	 * An iWARP read registers its sink with one MR of the QP's pool,
	 * which rdma_rw sizes to at most 256 pages; the sink may start
	 * inside its first page.
	 */
	if (vdom->iwarp)
		a->max_rma_size = min_t(u64, a->max_rma_size,
					(u64)(min_t(u32, da->max_fast_reg_page_list_len,
						    256) - 1) << PAGE_SHIFT);
	a->mr_key_size = sizeof(u32);
	/* ib_inc_rkey() varies the low 8 bits of an FRWR key. */
	a->mr_key_cycle = 256;
	a->cq_data_size = vdom->iwarp ? 0 : sizeof(u32);
	/* rdma_cm keeps part of the IB CM's private data for itself. */
	a->max_cm_data = IB_CM_REQ_PRIVATE_DATA_SIZE - 36;
	a->max_reject_data = IB_CM_REJ_PRIVATE_DATA_SIZE;
	a->num_comp_vectors = vdom->ibdev->num_comp_vectors;
	/* Every class is a DSCP value (vbs_connect()). */
	a->tclass_mask = U32_MAX;
}

/*
 * A device that failed fatally completes nothing more by itself: end
 * every connection on it now, as a fatal QP error does, so that ULPs
 * tear down instead of waiting. A port going down is not reported: a
 * connection survives a short outage through its retries, and a long one
 * ends it with a retry error, which the ULP sees as any other failure.
 */
static void vbs_device_event(struct ib_event_handler *handler,
			     struct ib_event *event)
{
	struct vbs_domain *vdom = container_of(handler, struct vbs_domain,
					       event_handler);

	if (event->event != IB_EVENT_DEVICE_FATAL)
		return;
	dev_err(&vdom->ibdev->dev, "kfi_verbs: device fatal error, port %u\n",
		vdom->port);
	kfi_domain_visit_eps(&vdom->dom, vbs_ep_fatal, NULL);
}

static int vbs_add_port(struct ib_device *ibdev, u32 port)
{
	struct ib_port_attr pattr;
	struct vbs_domain *vdom;
	struct kfi_domain *dom;
	int ret;

	ret = ib_query_port(ibdev, port, &pattr);
	if (ret)
		return ret;
	dom = kfi_domain_alloc(&vbs_fabric, &ibdev->dev);
	if (!dom)
		return -ENOMEM;
	vdom = to_vdom(dom);
	vdom->ibdev = ibdev;
	vdom->port = port;
	xa_init(&vdom->mrs);
	vdom->pd = ib_alloc_pd(ibdev, 0);
	if (IS_ERR(vdom->pd)) {
		ret = PTR_ERR(vdom->pd);
		goto out_free;
	}
	vbs_domain_attr(vdom, &pattr);
	INIT_IB_EVENT_HANDLER(&vdom->event_handler, ibdev, vbs_device_event);
	ib_register_event_handler(&vdom->event_handler);

	/*
	 * Listed before registration: a client's add() may connect, and a
	 * connection request then looks the domain up.
	 */
	mutex_lock(&vbs_domains_lock);
	list_add_tail(&vdom->entry, &vbs_domains);
	mutex_unlock(&vbs_domains_lock);
	ret = kfi_domain_register(dom);
	if (ret)
		goto out_unlist;
	return 0;

out_unlist:
	mutex_lock(&vbs_domains_lock);
	list_del(&vdom->entry);
	mutex_unlock(&vbs_domains_lock);
	ib_unregister_event_handler(&vdom->event_handler);
	ib_dealloc_pd(vdom->pd);
out_free:
	kfi_domain_free(dom);
	return ret;
}

static int vbs_add_one(struct ib_device *ibdev)
{
	int added = 0;
	u32 port;

	rdma_for_each_port(ibdev, port) {
		/*
		 * rdma_cm connections: over the IB CM for InfiniBand and RoCE,
		 * over the iWARP CM (MPA on TCP) for iWARP, whose reads need
		 * fast registration (vbs_post_read_iw()).
		 */
		if (rdma_cap_iw_cm(ibdev, port) ?
		    !(ibdev->attrs.device_cap_flags &
		      IB_DEVICE_MEM_MGT_EXTENSIONS) :
		    !rdma_cap_ib_cm(ibdev, port))
			continue;
		if (!vbs_add_port(ibdev, port))
			added++;
	}
	return added ? 0 : -EOPNOTSUPP;
}

static struct vbs_domain *vbs_first_domain(struct ib_device *ibdev)
{
	struct vbs_domain *vdom;

	guard(mutex)(&vbs_domains_lock);
	list_for_each_entry(vdom, &vbs_domains, entry)
		if (vdom->ibdev == ibdev) {
			list_del_init(&vdom->entry);
			return vdom;
		}
	return NULL;
}

/*
 * The device is going away. kfi_domain_unregister() returns once every
 * object ULPs had on a domain is destroyed, flushed with error
 * completions, so the PD can go after it.
 */
static void vbs_remove_one(struct ib_device *ibdev, void *client_data)
{
	struct vbs_domain *vdom;
	struct ib_pd *pd;

	while ((vdom = vbs_first_domain(ibdev))) {
		pd = vdom->pd;
		/* Removal ends every connection anyway. */
		ib_unregister_event_handler(&vdom->event_handler);
		kfi_domain_unregister(&vdom->dom);
		ib_dealloc_pd(pd);
	}
}

static struct ib_client vbs_client = {
	.name	= "kfi_verbs",
	.add	= vbs_add_one,
	.remove	= vbs_remove_one,
};

static int __init vbs_init(void)
{
	int ret;

	ret = kfi_fabric_register(&vbs_fabric);
	if (ret)
		return ret;
	ret = ib_register_client(&vbs_client);
	if (ret)
		kfi_fabric_unregister(&vbs_fabric);
	return ret;
}

static void __exit vbs_exit(void)
{
	ib_unregister_client(&vbs_client);
	kfi_fabric_unregister(&vbs_fabric);
}

module_init(vbs_init);
module_exit(vbs_exit);

MODULE_DESCRIPTION("kfabric provider over the kernel verbs stack");
MODULE_LICENSE("GPL");
