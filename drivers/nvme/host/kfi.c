// SPDX-License-Identifier: GPL-2.0
/*
 * NVMe over Fabrics host transport on kfabric ("kfi").
 *
 * The logic is that of the RDMA host (rdma.c): one kfabric endpoint per
 * NVMe queue, command capsules sent as messages, responses received into
 * a ring of buffers posted before the connection is made, and the data of
 * every I/O described by a keyed SGL data block naming a memory region
 * that is mapped for that I/O and invalidated by the target's response
 * (or locally when the target did not). Small writes on I/O queues go
 * inline in the capsule.
 *
 * The controller state machine (queue setup and teardown, error recovery,
 * reconnect, reset, delete) is the fabrics library's (fabrics-ctrl.c),
 * shared with nvme-rdma; this file supplies its queue operations.
 *
 * Only the kfabric API is used, so the transport runs on every kfabric
 * provider that offers messages, RMA and remote invalidation. The queue
 * connection private data, the capsules and the SGL descriptors are those
 * of NVMe/RDMA (<linux/nvme-rdma.h>, NVMe over Fabrics RDMA transport
 * binding); on the verbs provider the wire is exactly NVMe/RDMA, with real
 * rkeys, so this host interoperates with any NVMe/RDMA target.
 *
 * Not supported: end-to-end protection information (kfabric has no
 * signature memory regions) and the unsafe global rkey of nvme-rdma's
 * register_always=N.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/async.h>
#include <linux/blk-mq.h>
#include <linux/err.h>
#include <linux/init.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/nvme.h>
#include <linux/nvme-rdma.h>
#include <linux/refcount.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/unaligned.h>
#include <rdma/kfi/kfi.h>

#include "nvme.h"
#include "fabrics.h"

/* How long a queue's connection may take before the attempt is failed. */
#define NVME_KFI_CONNECT_TIMEOUT	(10 * HZ)

#define NVME_KFI_MAX_SEGMENTS		256
#define NVME_KFI_MAX_INLINE_SEGMENTS	4

/* Per queue: a mapping, the command and an invalidation per request. */
#define NVME_KFI_SEND_FACTOR		3

/* Completions a ->poll() call processes at most. */
#define NVME_KFI_POLL_BUDGET		64

#define NVME_KFI_DATA_SGL_SIZE \
	(sizeof(struct scatterlist) * NVME_INLINE_SG_CNT)

/* What the transport needs of a domain. */
#define NVME_KFI_CAPS	(KFI_CAP_MSG | KFI_CAP_RMA | KFI_CAP_REMOTE_INV)

static DEFINE_MUTEX(nvme_kfi_ctrl_mutex);
static LIST_HEAD(nvme_kfi_ctrl_list);

struct nvme_kfi_queue;

/* One posted receive: a response capsule. */
struct nvme_kfi_rsp {
	struct kfi_cqe		cqe;
	struct nvme_kfi_queue	*queue;
	struct kvec		kvec;
	struct nvme_completion	*nvme_cqe;	/* its own allocation */
};

struct nvme_kfi_request {
	struct nvme_request	req;
	struct nvme_kfi_queue	*queue;
	struct kfi_cqe		send_cqe;
	struct kfi_cqe		inv_cqe;
	struct kfi_cqe		abort_inv_cqe;
	struct nvme_command	*cmd;
	struct kvec		cmd_kvec;
	struct kfi_mr		*mr;		/* mapped for this I/O, or NULL */
	union nvme_result	result;
	__le16			status;
	refcount_t		ref;
	bool			inline_data;
	int			nents;
	struct sg_table		sgt;
	/* NVME_INLINE_SG_CNT scatterlist entries follow */
};

enum nvme_kfi_queue_flags {
	NVME_KFI_Q_ALLOCATED	= 0,
	NVME_KFI_Q_LIVE		= 1,
};

struct nvme_kfi_queue {
	struct nvme_kfi_ctrl	*ctrl;
	struct kfi_domain	*domain;
	struct kfi_cq		*cq;
	struct kfi_ep		*ep;
	struct nvme_kfi_rsp	*rsp_ring;
	struct kfi_mr		**mrs;		/* one per tag */
	int			nr_mrs;
	int			queue_size;
	size_t			cmnd_capsule_len;
	unsigned long		flags;
	struct nvmf_queue_budget budget;
	int			cm_error;
	struct completion	cm_done;
	struct mutex		queue_lock;	/* stop vs. stop */
};

struct nvme_kfi_ctrl {
	struct nvme_kfi_queue	*queues;

	struct list_head	list;

	/* The asynchronous event request has no struct request. */
	struct nvme_command	*aen_cmd;
	struct kvec		aen_kvec;
	struct kfi_cqe		aen_cqe;

	struct kfi_addr		addr;
	struct kfi_addr		src_addr;
	u32			max_fr_pages;
	u32			num_inline_segments;

	struct nvmf_ctrl	fctrl;
	bool			use_inline_data;
};

static inline struct nvme_kfi_ctrl *to_kfi_ctrl(struct nvme_ctrl *ctrl)
{
	return container_of(ctrl, struct nvme_kfi_ctrl, fctrl.ctrl);
}

static void nvme_kfi_cm_handler(void *context, const struct kfi_cm_event *ev);
static void nvme_kfi_recv_done(struct kfi_cq *cq, struct kfi_wc *wc);
static void nvme_kfi_complete_rq(struct request *rq);

static inline int nvme_kfi_queue_idx(struct nvme_kfi_queue *queue)
{
	return queue - queue->ctrl->queues;
}

static bool nvme_kfi_poll_queue(struct nvme_kfi_queue *queue)
{
	return nvme_kfi_queue_idx(queue) >
		queue->ctrl->fctrl.io_queues[HCTX_TYPE_DEFAULT] +
		queue->ctrl->fctrl.io_queues[HCTX_TYPE_READ];
}

static inline size_t nvme_kfi_inline_data_size(struct nvme_kfi_queue *queue)
{
	return queue->cmnd_capsule_len - sizeof(struct nvme_command);
}

static void nvme_kfi_exit_request(struct blk_mq_tag_set *set,
				  struct request *rq, unsigned int hctx_idx)
{
	struct nvme_kfi_request *req = blk_mq_rq_to_pdu(rq);

	kfree(req->cmd);
}

static void nvme_kfi_send_done(struct kfi_cq *cq, struct kfi_wc *wc);
static void nvme_kfi_inv_done(struct kfi_cq *cq, struct kfi_wc *wc);
static void nvme_kfi_abort_inv_done(struct kfi_cq *cq, struct kfi_wc *wc);

static int nvme_kfi_init_request(struct blk_mq_tag_set *set,
				 struct request *rq, unsigned int hctx_idx,
				 int numa_node)
{
	struct nvme_kfi_ctrl *ctrl = to_kfi_ctrl(set->driver_data);
	struct nvme_kfi_request *req = blk_mq_rq_to_pdu(rq);
	int queue_idx = (set == &ctrl->fctrl.tag_set) ? hctx_idx + 1 : 0;

	nvme_req(rq)->ctrl = &ctrl->fctrl.ctrl;
	req->cmd = kzalloc_obj(*req->cmd);
	if (!req->cmd)
		return -ENOMEM;
	req->cmd_kvec.iov_base = req->cmd;
	req->cmd_kvec.iov_len = sizeof(*req->cmd);
	req->send_cqe.done = nvme_kfi_send_done;
	req->inv_cqe.done = nvme_kfi_inv_done;
	req->abort_inv_cqe.done = nvme_kfi_abort_inv_done;
	req->queue = &ctrl->queues[queue_idx];
	nvme_req(rq)->cmd = req->cmd;
	return 0;
}

static int nvme_kfi_init_hctx(struct blk_mq_hw_ctx *hctx, void *data,
			      unsigned int hctx_idx)
{
	struct nvme_kfi_ctrl *ctrl = to_kfi_ctrl(data);

	if (WARN_ON_ONCE(hctx_idx + 1 >= ctrl->fctrl.ctrl.queue_count))
		return -EINVAL;
	hctx->driver_data = &ctrl->queues[hctx_idx + 1];
	return 0;
}

static int nvme_kfi_init_admin_hctx(struct blk_mq_hw_ctx *hctx, void *data,
				    unsigned int hctx_idx)
{
	struct nvme_kfi_ctrl *ctrl = to_kfi_ctrl(data);

	if (WARN_ON_ONCE(hctx_idx))
		return -EINVAL;
	hctx->driver_data = &ctrl->queues[0];
	return 0;
}

/*
 * The domain that reaches the target, chosen by the provider from the
 * destination (and the source address, if the user gave one).
 */
static struct kfi_domain *nvme_kfi_find_domain(struct nvme_kfi_ctrl *ctrl)
{
	struct kfi_hints hints = {
		.caps = NVME_KFI_CAPS,
		.ep_type = KFI_EP_MSG,
		.dest_addr = &ctrl->addr,
		.min_cm_data = sizeof(struct nvme_rdma_cm_req),
	};
	struct kfi_domain *domain = ERR_PTR(-ENODATA);
	struct kfi_info *info;
	LIST_HEAD(infos);
	int ret;

	if (ctrl->fctrl.ctrl.opts->mask & NVMF_OPT_HOST_TRADDR)
		hints.src_addr = &ctrl->src_addr;
	ret = kfi_getinfo(&hints, &infos);
	if (ret)
		return ERR_PTR(ret);
	list_for_each_entry(info, &infos, list) {
		/*
		 * Keyed SGL data blocks carry 32-bit keys, and a mapping
		 * needs a spare segment for a misaligned first page.
		 */
		if (info->attr.mr_key_size > sizeof(u32) ||
		    info->attr.max_mr_segs < 2)
			continue;
		domain = info->domain;
		kfi_domain_get(domain);
		break;
	}
	kfi_freeinfo(&infos);
	return domain;
}

/*
 * The admin queue finds the controller's domain, and its I/O queues use
 * that one, as nvme-rdma's queues use the admin queue's device: a lookup
 * (address resolution on RDMA) per queue would cost a controller with
 * many queues as many round trips, and could spread them over devices.
 * A reconnect sets the admin queue up first, so it finds the domain that
 * reaches the target then.
 */
static struct kfi_domain *nvme_kfi_queue_domain(struct nvme_kfi_queue *queue)
{
	struct kfi_domain *domain = queue->ctrl->queues[0].domain;

	if (!nvme_kfi_queue_idx(queue) || !domain)
		return nvme_kfi_find_domain(queue->ctrl);
	kfi_domain_get(domain);
	return domain;
}

static u32 nvme_kfi_max_fr_pages(struct kfi_domain *domain)
{
	return min_t(u32, NVME_KFI_MAX_SEGMENTS,
		     kfi_domain_attr(domain)->max_mr_segs - 1);
}

static int nvme_kfi_post_recv(struct nvme_kfi_rsp *rsp)
{
	struct kfi_iov iov;
	struct kfi_msg msg = { .iov = &iov, .niov = 1, .cqe = &rsp->cqe };

	kfi_iov_kvec(&iov, &rsp->kvec, 1);
	return kfi_recv(rsp->queue->ep, &msg, 0);
}

static void nvme_kfi_free_ring(struct nvme_kfi_queue *queue)
{
	int i;

	if (!queue->rsp_ring)
		return;
	for (i = 0; i < queue->queue_size; i++)
		kfree(queue->rsp_ring[i].nvme_cqe);
	kfree(queue->rsp_ring);
	queue->rsp_ring = NULL;
}

static int nvme_kfi_alloc_ring(struct nvme_kfi_queue *queue)
{
	int i;

	queue->rsp_ring = kzalloc_objs(*queue->rsp_ring, queue->queue_size);
	if (!queue->rsp_ring)
		return -ENOMEM;
	for (i = 0; i < queue->queue_size; i++) {
		struct nvme_kfi_rsp *rsp = &queue->rsp_ring[i];

		/* Received into: kept apart from what the CPU writes. */
		rsp->nvme_cqe = kzalloc_obj(*rsp->nvme_cqe);
		if (!rsp->nvme_cqe) {
			nvme_kfi_free_ring(queue);
			return -ENOMEM;
		}
		rsp->queue = queue;
		rsp->cqe.done = nvme_kfi_recv_done;
		rsp->kvec.iov_base = rsp->nvme_cqe;
		rsp->kvec.iov_len = sizeof(*rsp->nvme_cqe);
	}
	return 0;
}

/*
 * Requests that still hold a mapped region are about to be cancelled or
 * failed, and their pages reused or bounced back: the target's access
 * and the DMA mappings must end before that, not when the queue is freed
 * after the cancellation. Freeing a region revokes its key, and after the
 * drain no operation uses one. A stopped queue is only ever freed, and a
 * new one gets regions of its own.
 */
static void nvme_kfi_revoke_mrs(struct nvme_kfi_queue *queue)
{
	int i;

	for (i = 0; queue->mrs && i < queue->nr_mrs; i++) {
		kfi_mr_free(queue->mrs[i]);
		queue->mrs[i] = NULL;
	}
}

static void nvme_kfi_free_mrs(struct nvme_kfi_queue *queue)
{
	if (!queue->mrs)
		return;
	nvme_kfi_revoke_mrs(queue);
	kfree(queue->mrs);
	queue->mrs = NULL;
}

/*
 * Regions are indexed by tag, and an I/O queue's tags come from the tag
 * set, whose depth is fixed when the controller is created: a reconnect
 * that gets a smaller queue (the target lowered its MQES) keeps the deeper
 * tag set. So every tag has a region; how many are in use at once is held
 * to the queue size by the queue's budget (nvmf_queue_get_budget()).
 */
static int nvme_kfi_nr_tags(struct nvme_kfi_queue *queue)
{
	struct blk_mq_tag_set *set = &queue->ctrl->fctrl.tag_set;

	if (nvme_kfi_queue_idx(queue) && set->tags)
		return max_t(int, queue->queue_size, set->queue_depth);
	return queue->queue_size;
}

static int nvme_kfi_alloc_mrs(struct nvme_kfi_queue *queue)
{
	/*
	 * A transfer of max_fr_pages pages whose first page is misaligned
	 * spans one page more.
	 */
	u32 segs = nvme_kfi_max_fr_pages(queue->domain) + 1;
	int i;

	queue->nr_mrs = nvme_kfi_nr_tags(queue);
	queue->mrs = kzalloc_objs(*queue->mrs, queue->nr_mrs);
	if (!queue->mrs)
		return -ENOMEM;
	for (i = 0; i < queue->nr_mrs; i++) {
		queue->mrs[i] = kfi_mr_alloc(queue->domain, segs);
		if (IS_ERR(queue->mrs[i])) {
			int ret = PTR_ERR(queue->mrs[i]);

			queue->mrs[i] = NULL;
			nvme_kfi_free_mrs(queue);
			return ret;
		}
	}
	return 0;
}

/* Free what nvme_kfi_create_queue_res() set up; the endpoint drains first. */
static void nvme_kfi_destroy_queue_res(struct nvme_kfi_queue *queue)
{
	kfi_ep_free(queue->ep);
	queue->ep = NULL;
	nvme_kfi_free_mrs(queue);
	nvme_kfi_free_ring(queue);
	kfi_cq_free(queue->cq);
	queue->cq = NULL;
	kfi_domain_put(queue->domain);
	queue->domain = NULL;
}

static int nvme_kfi_create_queue_res(struct nvme_kfi_queue *queue)
{
	struct nvme_kfi_ctrl *ctrl = queue->ctrl;
	const struct kfi_domain_attr *attr;
	int idx = nvme_kfi_queue_idx(queue);
	struct kfi_cq_attr cq_attr = {
		/* the endpoint's queues, plus one entry each for the drain */
		.nr_cqe = (NVME_KFI_SEND_FACTOR + 1) * queue->queue_size + 2,
		.poll_ctx = nvme_kfi_poll_queue(queue) ? KFI_POLL_DIRECT :
							 KFI_POLL_SOFTIRQ,
	};
	struct kfi_ep_attr ep_attr = {
		.type = KFI_EP_MSG,
		.max_send_ops = NVME_KFI_SEND_FACTOR * queue->queue_size,
		.max_recv_ops = queue->queue_size,
		.max_send_sge = 1 + ctrl->num_inline_segments,
		.max_recv_sge = 1,
		.handler = nvme_kfi_cm_handler,
		.context = queue,
	};
	int ret, i;

	queue->domain = nvme_kfi_queue_domain(queue);
	if (IS_ERR(queue->domain)) {
		ret = PTR_ERR(queue->domain);
		queue->domain = NULL;
		dev_info(ctrl->fctrl.ctrl.device,
			 "no kfabric domain reaches %s:%s (%d)\n",
			 ctrl->fctrl.ctrl.opts->traddr, ctrl->fctrl.ctrl.opts->trsvcid, ret);
		return ret;
	}
	attr = kfi_domain_attr(queue->domain);

	/* The admin queue's domain sets what the controller's queues use. */
	if (!idx) {
		ctrl->num_inline_segments = min_t(u32, NVME_KFI_MAX_INLINE_SEGMENTS,
						  attr->max_send_sge - 1);
		ctrl->max_fr_pages = nvme_kfi_max_fr_pages(queue->domain);
		ep_attr.max_send_sge = 1;
	}

	/* Spread I/O queues over the completion vectors; admin on 0. */
	cq_attr.comp_vector = attr->num_comp_vectors ?
		(idx ? idx - 1 : 0) % attr->num_comp_vectors : -1;
	queue->cq = kfi_cq_alloc(queue->domain, &cq_attr);
	if (IS_ERR(queue->cq)) {
		ret = PTR_ERR(queue->cq);
		queue->cq = NULL;
		goto out_destroy;
	}
	ep_attr.send_cq = queue->cq;
	ep_attr.recv_cq = queue->cq;
	/* As nvme-rdma: host_traddr is the source, not a mere hint. */
	if (ctrl->fctrl.ctrl.opts->mask & NVMF_OPT_HOST_TRADDR)
		ep_attr.src_addr = &ctrl->src_addr;
	queue->ep = kfi_ep_alloc(queue->domain, &ep_attr);
	if (IS_ERR(queue->ep)) {
		ret = PTR_ERR(queue->ep);
		queue->ep = NULL;
		goto out_destroy;
	}
	ret = nvme_kfi_alloc_ring(queue);
	if (ret)
		goto out_destroy;
	ret = nvme_kfi_alloc_mrs(queue);
	if (ret) {
		dev_err(ctrl->fctrl.ctrl.device,
			"failed to allocate %d memory regions for QID %d\n",
			queue->queue_size, idx);
		goto out_destroy;
	}
	/* The target may send as soon as it has accepted. */
	for (i = 0; i < queue->queue_size; i++) {
		ret = nvme_kfi_post_recv(&queue->rsp_ring[i]);
		if (ret)
			goto out_destroy;
	}
	return 0;

out_destroy:
	nvme_kfi_destroy_queue_res(queue);
	return ret;
}

static int nvme_kfi_connect_queue(struct nvme_kfi_queue *queue)
{
	struct nvme_kfi_ctrl *ctrl = queue->ctrl;
	struct nvme_rdma_cm_req priv = { };
	long left;
	int ret;

	priv.recfmt = cpu_to_le16(NVME_RDMA_CM_FMT_1_0);
	priv.qid = cpu_to_le16(nvme_kfi_queue_idx(queue));
	/*
	 * As nvme-rdma: the admin queue depth is the minimum the Fabrics
	 * specification allows, I/O queues say sqsize + 1 in hrqsize, and
	 * only I/O queues carry the controller ID.
	 */
	if (priv.qid == 0) {
		priv.hrqsize = cpu_to_le16(NVME_AQ_DEPTH);
		priv.hsqsize = cpu_to_le16(NVME_AQ_DEPTH - 1);
	} else {
		priv.hrqsize = cpu_to_le16(queue->queue_size);
		priv.hsqsize = cpu_to_le16(ctrl->fctrl.ctrl.sqsize);
		priv.cntlid = cpu_to_le16(ctrl->fctrl.ctrl.cntlid);
	}

	queue->cm_error = -ETIMEDOUT;
	reinit_completion(&queue->cm_done);
	ret = kfi_connect(queue->ep, &ctrl->addr, &priv, sizeof(priv));
	if (ret) {
		dev_info(ctrl->fctrl.ctrl.device, "kfi_connect failed (%d)\n", ret);
		return ret;
	}
	left = wait_for_completion_interruptible_timeout(&queue->cm_done,
							 NVME_KFI_CONNECT_TIMEOUT);
	if (left < 0)
		return left;
	if (!left)
		return -ETIMEDOUT;
	return queue->cm_error;
}

static int nvme_kfi_alloc_queue(struct nvmf_ctrl *fctrl, int idx,
				size_t queue_size)
{
	struct nvme_kfi_ctrl *ctrl = to_kfi_ctrl(&fctrl->ctrl);
	struct nvme_kfi_queue *queue = &ctrl->queues[idx];
	int ret;

	queue->ctrl = ctrl;
	queue->queue_size = queue_size;
	nvmf_queue_budget_init(fctrl, &queue->budget, idx, queue_size);
	mutex_init(&queue->queue_lock);
	init_completion(&queue->cm_done);
	if (idx > 0)
		queue->cmnd_capsule_len = fctrl->ctrl.ioccsz * 16;
	else
		queue->cmnd_capsule_len = sizeof(struct nvme_command);

	ret = nvme_kfi_create_queue_res(queue);
	if (ret)
		goto out_destroy_mutex;
	ret = nvme_kfi_connect_queue(queue);
	if (ret) {
		dev_info(fctrl->ctrl.device,
			 "kfabric connection establishment failed (%d)\n", ret);
		goto out_destroy_res;
	}
	set_bit(NVME_KFI_Q_ALLOCATED, &queue->flags);
	return 0;

out_destroy_res:
	nvme_kfi_destroy_queue_res(queue);
out_destroy_mutex:
	mutex_destroy(&queue->queue_lock);
	return ret;
}

static void __nvme_kfi_stop_queue(struct nvme_kfi_queue *queue)
{
	kfi_disconnect(queue->ep);
	kfi_ep_drain(queue->ep);
	nvme_kfi_revoke_mrs(queue);
}

static void nvme_kfi_stop_queue(struct nvmf_ctrl *fctrl, int qid)
{
	struct nvme_kfi_ctrl *ctrl = to_kfi_ctrl(&fctrl->ctrl);
	struct nvme_kfi_queue *queue = &ctrl->queues[qid];

	if (!test_bit(NVME_KFI_Q_ALLOCATED, &queue->flags))
		return;

	mutex_lock(&queue->queue_lock);
	if (test_and_clear_bit(NVME_KFI_Q_LIVE, &queue->flags))
		__nvme_kfi_stop_queue(queue);
	mutex_unlock(&queue->queue_lock);
}

static void nvme_kfi_free_queue(struct nvmf_ctrl *fctrl, int qid)
{
	struct nvme_kfi_ctrl *ctrl = to_kfi_ctrl(&fctrl->ctrl);
	struct nvme_kfi_queue *queue = &ctrl->queues[qid];

	if (!test_and_clear_bit(NVME_KFI_Q_ALLOCATED, &queue->flags))
		return;

	nvme_kfi_destroy_queue_res(queue);
	mutex_destroy(&queue->queue_lock);
}

static void nvme_kfi_stop_io_queues(struct nvmf_ctrl *fctrl)
{
	struct nvme_kfi_ctrl *ctrl = to_kfi_ctrl(&fctrl->ctrl);
	struct nvme_kfi_queue *queue;
	int i;

	/*
	 * Disconnect every queue before draining any: each drain waits for
	 * posts that raced its disconnect (an RCU grace period), and this
	 * way they share one wait instead of taking one per queue.
	 */
	for (i = 1; i < fctrl->ctrl.queue_count; i++) {
		queue = &ctrl->queues[i];
		if (test_bit(NVME_KFI_Q_ALLOCATED, &queue->flags) &&
		    test_bit(NVME_KFI_Q_LIVE, &queue->flags))
			kfi_disconnect(queue->ep);
	}
	for (i = 1; i < fctrl->ctrl.queue_count; i++)
		nvme_kfi_stop_queue(fctrl, i);
}

static int nvme_kfi_start_queue(struct nvmf_ctrl *fctrl, int idx)
{
	struct nvme_kfi_queue *queue = &to_kfi_ctrl(&fctrl->ctrl)->queues[idx];
	int ret;

	ret = nvmf_ctrl_connect_queue(fctrl, idx, &queue->flags,
				      NVME_KFI_Q_LIVE);
	if (ret)
		__nvme_kfi_stop_queue(queue);
	return ret;
}

static void nvme_kfi_free_admin_queue(struct nvmf_ctrl *fctrl)
{
	cancel_work_sync(&fctrl->ctrl.async_event_work);
	nvme_kfi_free_queue(fctrl, 0);
}

static int nvme_kfi_alloc_admin_queue(struct nvmf_ctrl *fctrl)
{
	struct nvme_kfi_ctrl *ctrl = to_kfi_ctrl(&fctrl->ctrl);
	struct device *dev;
	int error;

	error = nvme_kfi_alloc_queue(fctrl, 0, NVME_AQ_DEPTH);
	if (error)
		return error;

	dev = kfi_domain_device(ctrl->queues[0].domain);
	fctrl->ctrl.numa_node = dev ? dev_to_node(dev) : NUMA_NO_NODE;

	/* max_fr_pages comes from the admin queue's domain. */
	fctrl->ctrl.max_segments = ctrl->max_fr_pages;
	fctrl->ctrl.max_hw_sectors = ctrl->max_fr_pages << (ilog2(SZ_4K) - 9);
	fctrl->ctrl.max_integrity_segments = 0;
	return 0;
}

static void nvme_kfi_free_ctrl(struct nvme_ctrl *nctrl)
{
	struct nvme_kfi_ctrl *ctrl = to_kfi_ctrl(nctrl);

	if (list_empty_careful(&ctrl->list))
		goto free_ctrl;

	mutex_lock(&nvme_kfi_ctrl_mutex);
	list_del(&ctrl->list);
	mutex_unlock(&nvme_kfi_ctrl_mutex);

	nvmf_free_options(nctrl->opts);
free_ctrl:
	kfree(ctrl->aen_cmd);
	kfree(ctrl->queues);
	kfree(ctrl);
}

static int nvme_kfi_check_ctrl(struct nvmf_ctrl *fctrl)
{
	return nvmf_ctrl_check_keyed_sgls(fctrl,
			&to_kfi_ctrl(&fctrl->ctrl)->use_inline_data);
}

static u16 nvme_kfi_max_queue_size(struct nvmf_ctrl *fctrl)
{
	return NVME_RDMA_MAX_QUEUE_SIZE;
}

static void nvme_kfi_end_request(struct nvme_kfi_request *req)
{
	struct request *rq = blk_mq_rq_from_pdu(req);

	if (!refcount_dec_and_test(&req->ref))
		return;
	if (!nvme_try_complete_req(rq, req->status, req->result))
		nvme_kfi_complete_rq(rq);
}

static void nvme_kfi_wc_error(struct nvme_kfi_queue *queue,
			      struct kfi_wc *wc, const char *op)
{
	struct nvme_kfi_ctrl *ctrl = queue->ctrl;

	/* A flush is the consequence of an error reported already. */
	if (wc->status != -ECANCELED &&
	    nvme_ctrl_state(&ctrl->fctrl.ctrl) == NVME_CTRL_LIVE)
		dev_info(ctrl->fctrl.ctrl.device, "%s failed with status %d\n",
			 op, wc->status);
	nvmf_ctrl_error_recovery(&ctrl->fctrl);
}

static void nvme_kfi_inv_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct nvme_kfi_request *req =
		container_of(wc->cqe, struct nvme_kfi_request, inv_cqe);

	if (unlikely(wc->status))
		nvme_kfi_wc_error(req->queue, wc, "LOCAL_INV");
	else
		nvme_kfi_end_request(req);	/* the old key is dead now */
}

/*
 * The invalidation of a region whose command was never sent: signalled,
 * so that the region is free for the tag's next request as soon as it
 * completes rather than whenever a later completion retires it.
 */
static void nvme_kfi_abort_inv_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct nvme_kfi_request *req =
		container_of(wc->cqe, struct nvme_kfi_request, abort_inv_cqe);

	if (unlikely(wc->status))
		nvme_kfi_wc_error(req->queue, wc, "LOCAL_INV");
}

static void nvme_kfi_set_sg_null(struct nvme_command *c)
{
	struct nvme_keyed_sgl_desc *sg = &c->common.dptr.ksgl;

	sg->addr = 0;
	put_unaligned_le24(0, sg->length);
	put_unaligned_le32(0, sg->key);
	sg->type = NVME_KEY_SGL_FMT_DATA_DESC << 4;
}

static void nvme_kfi_map_sg_inline(struct nvme_kfi_queue *queue,
				   struct nvme_kfi_request *req, struct nvme_command *c)
{
	struct nvme_sgl_desc *sg = &c->common.dptr.sgl;

	sg->addr = cpu_to_le64(queue->ctrl->fctrl.ctrl.icdoff);
	sg->length = cpu_to_le32(blk_rq_payload_bytes(blk_mq_rq_from_pdu(req)));
	sg->type = (NVME_SGL_FMT_DATA_DESC << 4) | NVME_SGL_FMT_OFFSET;
	req->inline_data = true;
}

/*
 * Map the data into the request's memory region under a fresh key and
 * describe it with a keyed SGL data block that asks the target to
 * invalidate the key with its response. The mapping is ordered before the
 * command's send on the endpoint, and is unsignaled: if it fails, the
 * endpoint fails the send after it.
 */
static int nvme_kfi_map_sg_mr(struct nvme_kfi_queue *queue,
			      struct nvme_kfi_request *req, struct nvme_command *c)
{
	struct nvme_keyed_sgl_desc *sg = &c->common.dptr.ksgl;
	struct request *rq = blk_mq_rq_from_pdu(req);
	struct kfi_mr *mr;
	struct kfi_iov iov;
	u32 access;
	int ret;

	if (WARN_ON_ONCE(rq->tag < 0 || rq->tag >= queue->nr_mrs ||
			 !queue->mrs[rq->tag]))
		return -EIO;
	mr = queue->mrs[rq->tag];
	kfi_iov_sg(&iov, req->sgt.sgl, req->nents);
	/* The target reads what we write and writes what we read. */
	access = rq_data_dir(rq) == WRITE ? KFI_ACCESS_REMOTE_READ :
					    KFI_ACCESS_REMOTE_WRITE;
	ret = kfi_mr_map(queue->ep, mr, &iov, access, NULL,
			 KFI_UNSIGNALED | KFI_MORE);
	if (unlikely(ret))
		return ret;
	req->mr = mr;

	sg->addr = cpu_to_le64(mr->addr);
	put_unaligned_le24(mr->length, sg->length);
	put_unaligned_le32(mr->key, sg->key);
	sg->type = (NVME_KEY_SGL_FMT_DATA_DESC << 4) | NVME_SGL_FMT_INVALIDATE;
	return 0;
}

static int nvme_kfi_map_data(struct nvme_kfi_queue *queue,
			     struct request *rq, struct nvme_command *c)
{
	struct nvme_kfi_request *req = blk_mq_rq_to_pdu(rq);
	struct nvme_kfi_ctrl *ctrl = queue->ctrl;
	int ret;

	req->mr = NULL;
	req->inline_data = false;
	req->nents = 0;
	refcount_set(&req->ref, 2);	/* send and response completions */

	c->common.flags |= NVME_CMD_SGL_METABUF;

	if (!blk_rq_nr_phys_segments(rq)) {
		nvme_kfi_set_sg_null(c);
		return 0;
	}

	req->sgt.sgl = (struct scatterlist *)(req + 1);
	ret = sg_alloc_table_chained(&req->sgt, blk_rq_nr_phys_segments(rq),
				     req->sgt.sgl, NVME_INLINE_SG_CNT);
	if (ret)
		return -ENOMEM;
	/* kfabric maps the buffers: the scatterlist stays CPU memory. */
	req->nents = blk_rq_map_sg(rq, req->sgt.sgl);

	if (req->nents <= ctrl->num_inline_segments &&
	    rq_data_dir(rq) == WRITE && nvme_kfi_queue_idx(queue) &&
	    ctrl->use_inline_data &&
	    blk_rq_payload_bytes(rq) <= nvme_kfi_inline_data_size(queue)) {
		nvme_kfi_map_sg_inline(queue, req, c);
		return 0;
	}

	ret = nvme_kfi_map_sg_mr(queue, req, c);
	if (unlikely(ret)) {
		sg_free_table_chained(&req->sgt, NVME_INLINE_SG_CNT);
		req->nents = 0;
	}
	return ret;
}

static void nvme_kfi_unmap_data(struct nvme_kfi_request *req)
{
	/* A region still mapped is revoked before it is mapped again. */
	req->mr = NULL;
	if (req->nents) {
		sg_free_table_chained(&req->sgt, NVME_INLINE_SG_CNT);
		req->nents = 0;
	}
}

static void nvme_kfi_send_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct nvme_kfi_request *req =
		container_of(wc->cqe, struct nvme_kfi_request, send_cqe);

	if (unlikely(wc->status))
		nvme_kfi_wc_error(req->queue, wc, "SEND");
	else
		nvme_kfi_end_request(req);
}

static int nvme_kfi_post_cmd(struct nvme_kfi_queue *queue,
			     struct nvme_kfi_request *req)
{
	struct kfi_iov iov[2];
	struct kfi_msg msg = { .iov = iov, .niov = 1, .cqe = &req->send_cqe };
	int ret;

	kfi_iov_kvec(&iov[0], &req->cmd_kvec, 1);
	if (req->inline_data) {
		/* The capsule: command, then the data in its own segments. */
		kfi_iov_sg(&iov[1], req->sgt.sgl, req->nents);
		msg.niov = 2;
	}
	ret = kfi_send(queue->ep, &msg, 0);
	if (unlikely(ret))
		dev_err(queue->ctrl->fctrl.ctrl.device,
			"%s failed with error code %d\n", __func__, ret);
	return ret;
}

static struct blk_mq_tags *nvme_kfi_tagset(struct nvme_kfi_queue *queue)
{
	u32 queue_idx = nvme_kfi_queue_idx(queue);

	if (queue_idx == 0)
		return queue->ctrl->fctrl.admin_tag_set.tags[queue_idx];
	return queue->ctrl->fctrl.tag_set.tags[queue_idx - 1];
}

static void nvme_kfi_async_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct nvme_kfi_ctrl *ctrl =
		container_of(wc->cqe, struct nvme_kfi_ctrl, aen_cqe);

	if (unlikely(wc->status))
		nvme_kfi_wc_error(&ctrl->queues[0], wc, "ASYNC");
}

static void nvme_kfi_submit_async_event(struct nvme_ctrl *arg)
{
	struct nvme_kfi_ctrl *ctrl = to_kfi_ctrl(arg);
	struct nvme_kfi_queue *queue = &ctrl->queues[0];
	struct nvme_command *cmd = ctrl->aen_cmd;
	struct kfi_iov iov;
	struct kfi_msg msg = { .iov = &iov, .niov = 1, .cqe = &ctrl->aen_cqe };
	int ret;

	memset(cmd, 0, sizeof(*cmd));
	cmd->common.opcode = nvme_admin_async_event;
	cmd->common.command_id = NVME_AQ_BLK_MQ_DEPTH;
	cmd->common.flags |= NVME_CMD_SGL_METABUF;
	nvme_kfi_set_sg_null(cmd);

	kfi_iov_kvec(&iov, &ctrl->aen_kvec, 1);
	ret = kfi_send(queue->ep, &msg, 0);
	if (ret)
		dev_warn(ctrl->fctrl.ctrl.device, "AER submission failed (%d)\n", ret);
}

static void nvme_kfi_process_nvme_rsp(struct nvme_kfi_queue *queue,
				      struct nvme_completion *cqe, struct kfi_wc *wc)
{
	struct nvme_kfi_request *req;
	struct request *rq;
	int ret;

	rq = nvme_find_rq(nvme_kfi_tagset(queue), cqe->command_id);
	if (!rq) {
		dev_err(queue->ctrl->fctrl.ctrl.device,
			"got bad command_id %#x on QID %d\n",
			cqe->command_id, nvme_kfi_queue_idx(queue));
		nvmf_ctrl_error_recovery(&queue->ctrl->fctrl);
		return;
	}
	req = blk_mq_rq_to_pdu(rq);

	req->status = cqe->status;
	req->result = cqe->result;

	if (wc->flags & KFI_WC_INV) {
		/* The target may only invalidate the key it was given. */
		if (unlikely(!req->mr || wc->inv_key != req->mr->key)) {
			dev_err(queue->ctrl->fctrl.ctrl.device,
				"Bogus remote invalidation for key %#llx\n",
				req->mr ? req->mr->key : 0);
			nvmf_ctrl_error_recovery(&queue->ctrl->fctrl);
			return;
		}
	} else if (req->mr) {
		/* Until the key is dead the target could touch the buffer. */
		ret = kfi_mr_invalidate(queue->ep, req->mr, &req->inv_cqe, 0);
		if (unlikely(ret)) {
			dev_err(queue->ctrl->fctrl.ctrl.device,
				"Queueing invalidation of key %#llx failed (%d)\n",
				req->mr->key, ret);
			nvmf_ctrl_error_recovery(&queue->ctrl->fctrl);
		}
		/* The invalidation's completion ends the request. */
		return;
	}

	nvme_kfi_end_request(req);
}

static void nvme_kfi_recv_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct nvme_kfi_rsp *rsp = container_of(wc->cqe, struct nvme_kfi_rsp, cqe);
	struct nvme_kfi_queue *queue = rsp->queue;
	struct nvme_completion *cqe = rsp->nvme_cqe;

	if (unlikely(wc->status)) {
		nvme_kfi_wc_error(queue, wc, "RECV");
		return;
	}

	if (unlikely(wc->byte_len < sizeof(*cqe))) {
		dev_err(queue->ctrl->fctrl.ctrl.device,
			"Unexpected nvme completion length(%d)\n", wc->byte_len);
		nvmf_ctrl_error_recovery(&queue->ctrl->fctrl);
		return;
	}

	/*
	 * AEN requests are special: they don't time out, survive queue
	 * freezes and have no struct request.
	 */
	if (unlikely(nvme_is_aen_req(nvme_kfi_queue_idx(queue),
				     cqe->command_id)))
		nvme_complete_async_event(&queue->ctrl->fctrl.ctrl, cqe->status,
					  &cqe->result);
	else
		nvme_kfi_process_nvme_rsp(queue, cqe, wc);

	if (unlikely(nvme_kfi_post_recv(rsp)))
		nvmf_ctrl_error_recovery(&queue->ctrl->fctrl);
}

static void nvme_kfi_conn_rejected(struct nvme_kfi_queue *queue,
				   const struct kfi_cm_event *ev)
{
	const struct nvme_rdma_cm_rej *rej = ev->private_data;

	if (rej && ev->private_data_len >= sizeof(*rej)) {
		u16 sts = le16_to_cpu(rej->sts);

		dev_err(queue->ctrl->fctrl.ctrl.device,
			"Connect rejected: nvme status %d (%s).\n",
			sts, nvme_rdma_cm_msg(sts));
	} else {
		dev_err(queue->ctrl->fctrl.ctrl.device,
			"Connect rejected: status %d.\n", ev->status);
	}
}

/*
 * Connection events. The outcome of a connect completes cm_done; every
 * event after that means the connection is gone, and error recovery tears
 * the queues down from a work item (a handler cannot free its endpoint).
 */
static void nvme_kfi_cm_handler(void *context, const struct kfi_cm_event *ev)
{
	struct nvme_kfi_queue *queue = context;

	dev_dbg(queue->ctrl->fctrl.ctrl.device, "kfi cm event %d status %d QID %d\n",
		ev->type, ev->status, nvme_kfi_queue_idx(queue));

	switch (ev->type) {
	case KFI_CM_CONNECTED:
		queue->cm_error = 0;
		complete(&queue->cm_done);
		return;
	case KFI_CM_REJECTED:
		nvme_kfi_conn_rejected(queue, ev);
		queue->cm_error = -ECONNRESET;
		complete(&queue->cm_done);
		return;
	case KFI_CM_UNREACHABLE:
		queue->cm_error = -ECONNRESET;
		complete(&queue->cm_done);
		return;
	default:
		/* DISCONNECTED, ADDR_CHANGE or DOMAIN_REMOVAL */
		dev_dbg(queue->ctrl->fctrl.ctrl.device,
			"disconnect received - connection closed\n");
		if (!completion_done(&queue->cm_done)) {
			queue->cm_error = -ECONNRESET;
			complete(&queue->cm_done);
		}
		nvmf_ctrl_error_recovery(&queue->ctrl->fctrl);
		return;
	}
}

static enum blk_eh_timer_return nvme_kfi_timeout(struct request *rq)
{
	struct nvme_kfi_request *req = blk_mq_rq_to_pdu(rq);
	struct nvme_kfi_queue *queue = req->queue;

	return nvmf_ctrl_timeout(&queue->ctrl->fctrl, rq,
				 nvme_kfi_queue_idx(queue));
}

static blk_status_t nvme_kfi_queue_rq(struct blk_mq_hw_ctx *hctx,
				      const struct blk_mq_queue_data *bd)
{
	struct nvme_ns *ns = hctx->queue->queuedata;
	struct nvme_kfi_queue *queue = hctx->driver_data;
	struct request *rq = bd->rq;
	struct nvme_kfi_request *req = blk_mq_rq_to_pdu(rq);
	struct nvme_command *c = nvme_req(rq)->cmd;
	bool queue_ready = test_bit(NVME_KFI_Q_LIVE, &queue->flags);
	blk_status_t ret;
	int err;

	WARN_ON_ONCE(rq->tag < 0);

	if (!nvme_check_ready(&queue->ctrl->fctrl.ctrl, rq, queue_ready))
		return nvme_fail_nonready_command(&queue->ctrl->fctrl.ctrl, rq);

	ret = nvmf_queue_get_budget(&queue->budget);
	if (ret)
		return ret;

	ret = nvme_setup_cmd(ns, rq);
	if (ret) {
		nvmf_queue_put_budget(&queue->budget);
		return ret;
	}

	nvme_start_request(rq);

	err = nvme_kfi_map_data(queue, rq, c);
	if (unlikely(err < 0)) {
		dev_err(queue->ctrl->fctrl.ctrl.device,
			"Failed to map data (%d)\n", err);
		goto err;
	}

	err = nvme_kfi_post_cmd(queue, req);
	if (unlikely(err)) {
		/* Nobody got the key: end the mapping before a retry. */
		if (req->mr &&
		    kfi_mr_invalidate(queue->ep, req->mr, &req->abort_inv_cqe, 0))
			nvmf_ctrl_error_recovery(&queue->ctrl->fctrl);
		nvme_kfi_unmap_data(req);
		goto err;
	}

	return BLK_STS_OK;

err:
	nvme_cleanup_cmd(rq);
	nvmf_queue_put_budget(&queue->budget);
	if (err == -EIO)
		return nvme_host_path_error(rq);
	/* -EBUSY: the tag's region is still being invalidated, see above. */
	if (err == -ENOMEM || err == -EAGAIN || err == -EBUSY)
		return BLK_STS_RESOURCE;
	return BLK_STS_IOERR;
}

static int nvme_kfi_poll(struct blk_mq_hw_ctx *hctx, struct io_comp_batch *iob)
{
	struct nvme_kfi_queue *queue = hctx->driver_data;

	return kfi_cq_poll(queue->cq, NVME_KFI_POLL_BUDGET);
}

static void nvme_kfi_complete_rq(struct request *rq)
{
	struct nvme_kfi_request *req = blk_mq_rq_to_pdu(rq);

	nvme_kfi_unmap_data(req);
	nvmf_queue_put_budget(&req->queue->budget);
	nvme_complete_rq(rq);
}

static void nvme_kfi_map_queues(struct blk_mq_tag_set *set)
{
	struct nvme_kfi_ctrl *ctrl = to_kfi_ctrl(set->driver_data);

	nvmf_map_queues(set, &ctrl->fctrl.ctrl, ctrl->fctrl.io_queues);
}

static const struct blk_mq_ops nvme_kfi_mq_ops = {
	.queue_rq	= nvme_kfi_queue_rq,
	.complete	= nvme_kfi_complete_rq,
	.init_request	= nvme_kfi_init_request,
	.exit_request	= nvme_kfi_exit_request,
	.init_hctx	= nvme_kfi_init_hctx,
	.timeout	= nvme_kfi_timeout,
	.map_queues	= nvme_kfi_map_queues,
	.poll		= nvme_kfi_poll,
};

static const struct blk_mq_ops nvme_kfi_admin_mq_ops = {
	.queue_rq	= nvme_kfi_queue_rq,
	.complete	= nvme_kfi_complete_rq,
	.init_request	= nvme_kfi_init_request,
	.exit_request	= nvme_kfi_exit_request,
	.init_hctx	= nvme_kfi_init_admin_hctx,
	.timeout	= nvme_kfi_timeout,
};

static const struct nvmf_ctrl_ops nvme_kfi_fctrl_ops = {
	.alloc_admin_queue	= nvme_kfi_alloc_admin_queue,
	.free_admin_queue	= nvme_kfi_free_admin_queue,
	.alloc_queue		= nvme_kfi_alloc_queue,
	.free_queue		= nvme_kfi_free_queue,
	.start_queue		= nvme_kfi_start_queue,
	.stop_queue		= nvme_kfi_stop_queue,
	.stop_io_queues		= nvme_kfi_stop_io_queues,
	.check_ctrl		= nvme_kfi_check_ctrl,
	.max_queue_size		= nvme_kfi_max_queue_size,
	.admin_mq_ops		= &nvme_kfi_admin_mq_ops,
	.mq_ops			= &nvme_kfi_mq_ops,
	.cmd_size		= sizeof(struct nvme_kfi_request) +
				  NVME_KFI_DATA_SGL_SIZE,
};

static const struct nvme_ctrl_ops nvme_kfi_ctrl_ops = {
	.name			= "kfi",
	.module			= THIS_MODULE,
	.flags			= NVME_F_FABRICS,
	.reg_read32		= nvmf_reg_read32,
	.reg_read64		= nvmf_reg_read64,
	.reg_write32		= nvmf_reg_write32,
	.subsystem_reset	= nvmf_subsystem_reset,
	.free_ctrl		= nvme_kfi_free_ctrl,
	.submit_async_event	= nvme_kfi_submit_async_event,
	.delete_ctrl		= nvmf_ctrl_delete,
	.get_address		= nvmf_get_address,
	.stop_ctrl		= nvmf_ctrl_stop,
	.get_virt_boundary	= nvme_get_virt_boundary,
};

/*
 * Fail a connection request that matches an existing controller
 * (association) with the same <Host NQN, Host ID, local address, remote
 * address, remote port, SUBSYS NQN>, compared as the user wrote them.
 */
static bool nvme_kfi_existing_controller(struct nvmf_ctrl_options *opts)
{
	struct nvme_kfi_ctrl *ctrl;
	bool found = false;

	mutex_lock(&nvme_kfi_ctrl_mutex);
	list_for_each_entry(ctrl, &nvme_kfi_ctrl_list, list) {
		found = nvmf_ip_options_match(&ctrl->fctrl.ctrl, opts);
		if (found)
			break;
	}
	mutex_unlock(&nvme_kfi_ctrl_mutex);

	return found;
}

static struct nvme_kfi_ctrl *nvme_kfi_alloc_ctrl(struct device *dev,
						 struct nvmf_ctrl_options *opts)
{
	struct nvme_kfi_ctrl *ctrl;
	int ret;

	ctrl = kzalloc_obj(*ctrl);
	if (!ctrl)
		return ERR_PTR(-ENOMEM);
	ctrl->fctrl.ctrl.opts = opts;
	INIT_LIST_HEAD(&ctrl->list);

	if (!(opts->mask & NVMF_OPT_TRSVCID)) {
		opts->trsvcid =
			kstrdup(__stringify(NVME_RDMA_IP_PORT), GFP_KERNEL);
		if (!opts->trsvcid) {
			ret = -ENOMEM;
			goto out_free_ctrl;
		}
		opts->mask |= NVMF_OPT_TRSVCID;
	}

	/* An IP address for the verbs provider, a node name for NTB. */
	ret = kfi_addr_parse(&ctrl->addr, opts->traddr, opts->trsvcid);
	if (ret) {
		pr_err("malformed address passed: %s:%s\n",
		       opts->traddr, opts->trsvcid);
		goto out_free_ctrl;
	}

	if (opts->mask & NVMF_OPT_HOST_TRADDR) {
		ret = kfi_addr_parse(&ctrl->src_addr, opts->host_traddr, NULL);
		if (ret || ctrl->src_addr.format != ctrl->addr.format) {
			pr_err("malformed src address passed: %s\n",
			       opts->host_traddr);
			ret = -EINVAL;
			goto out_free_ctrl;
		}
	}

	if (!opts->duplicate_connect && nvme_kfi_existing_controller(opts)) {
		ret = -EALREADY;
		goto out_free_ctrl;
	}

	ret = -ENOMEM;
	ctrl->aen_cmd = kzalloc_obj(*ctrl->aen_cmd);
	if (!ctrl->aen_cmd)
		goto out_free_ctrl;
	ctrl->aen_kvec.iov_base = ctrl->aen_cmd;
	ctrl->aen_kvec.iov_len = sizeof(*ctrl->aen_cmd);
	ctrl->aen_cqe.done = nvme_kfi_async_done;

	nvmf_ctrl_init(&ctrl->fctrl, &nvme_kfi_fctrl_ops);

	ctrl->queues = kzalloc_objs(*ctrl->queues, ctrl->fctrl.ctrl.queue_count);
	if (!ctrl->queues)
		goto out_free_aen;

	ret = nvme_init_ctrl(&ctrl->fctrl.ctrl, dev, &nvme_kfi_ctrl_ops, 0);
	if (ret)
		goto out_kfree_queues;

	return ctrl;

out_kfree_queues:
	kfree(ctrl->queues);
out_free_aen:
	kfree(ctrl->aen_cmd);
out_free_ctrl:
	kfree(ctrl);
	return ERR_PTR(ret);
}

static struct nvme_ctrl *nvme_kfi_create_ctrl(struct device *dev,
					      struct nvmf_ctrl_options *opts)
{
	struct nvme_kfi_ctrl *ctrl;
	int ret;

	ctrl = nvme_kfi_alloc_ctrl(dev, opts);
	if (IS_ERR(ctrl))
		return ERR_CAST(ctrl);

	ret = nvmf_ctrl_create(&ctrl->fctrl);
	if (ret)
		return ERR_PTR(ret);

	dev_info(ctrl->fctrl.ctrl.device, "new ctrl: NQN \"%s\", addr %s:%s, hostnqn: %s\n",
		 nvmf_ctrl_subsysnqn(&ctrl->fctrl.ctrl), opts->traddr, opts->trsvcid,
		 opts->host->nqn);

	mutex_lock(&nvme_kfi_ctrl_mutex);
	list_add_tail(&ctrl->list, &nvme_kfi_ctrl_list);
	mutex_unlock(&nvme_kfi_ctrl_mutex);

	return &ctrl->fctrl.ctrl;
}

static struct nvmf_transport_ops nvme_kfi_transport = {
	.name		= "kfi",
	.module		= THIS_MODULE,
	.required_opts	= NVMF_OPT_TRADDR,
	.allowed_opts	= NVMF_OPT_TRSVCID | NVMF_OPT_RECONNECT_DELAY |
			  NVMF_OPT_HOST_TRADDR | NVMF_OPT_CTRL_LOSS_TMO |
			  NVMF_OPT_NR_WRITE_QUEUES | NVMF_OPT_NR_POLL_QUEUES,
	.create_ctrl	= nvme_kfi_create_ctrl,
};

static bool nvme_kfi_ctrl_uses(struct nvme_kfi_ctrl *ctrl,
			       struct kfi_domain *domain)
{
	int i;

	for (i = 0; i < ctrl->fctrl.ctrl.queue_count; i++)
		if (READ_ONCE(ctrl->queues[i].domain) == domain)
			return true;
	return false;
}

/*
 * A domain is going away: recover every controller with queues on it, and
 * wait until their queues are torn down, so nothing of ours is left on the
 * domain. Unlike nvme-rdma, which deletes such controllers, the
 * controllers then reconnect, through whatever domain reaches the target
 * by then (the same device added back, or another route), until
 * ctrl_loss_tmo gives up.
 */
static void nvme_kfi_remove_one(struct kfi_domain *domain, void *client_data)
{
	struct nvme_kfi_ctrl *ctrl, **ctrls;
	int n = 0, nr = 0, i;

	mutex_lock(&nvme_kfi_ctrl_mutex);
	list_for_each_entry(ctrl, &nvme_kfi_ctrl_list, list)
		nr++;
	ctrls = kzalloc_objs(*ctrls, nr ? nr : 1);
	list_for_each_entry(ctrl, &nvme_kfi_ctrl_list, list) {
		if (!nvme_kfi_ctrl_uses(ctrl, domain))
			continue;
		if (!ctrls) {
			/* No memory to wait with: deleting does not need it. */
			nvme_delete_ctrl(&ctrl->fctrl.ctrl);
			continue;
		}
		nvme_get_ctrl(&ctrl->fctrl.ctrl);
		ctrls[n++] = ctrl;
		nvmf_ctrl_error_recovery(&ctrl->fctrl);
	}
	mutex_unlock(&nvme_kfi_ctrl_mutex);

	for (i = 0; i < n; i++) {
		flush_work(&ctrls[i]->fctrl.err_work);
		nvme_put_ctrl(&ctrls[i]->fctrl.ctrl);
	}
	kfree(ctrls);
	flush_workqueue(nvme_delete_wq);
}

static struct kfi_client nvme_kfi_client = {
	.name	= "nvme_kfi",
	.remove	= nvme_kfi_remove_one,
};

static int __init nvme_kfi_init_module(void)
{
	int ret;

	ret = kfi_register_client(&nvme_kfi_client);
	if (ret)
		return ret;

	ret = nvmf_register_transport(&nvme_kfi_transport);
	if (ret)
		goto err_unreg_client;

	return 0;

err_unreg_client:
	kfi_unregister_client(&nvme_kfi_client);
	return ret;
}

static void __exit nvme_kfi_cleanup_module(void)
{
	struct nvme_kfi_ctrl *ctrl;

	nvmf_unregister_transport(&nvme_kfi_transport);

	mutex_lock(&nvme_kfi_ctrl_mutex);
	list_for_each_entry(ctrl, &nvme_kfi_ctrl_list, list)
		nvme_delete_ctrl(&ctrl->fctrl.ctrl);
	mutex_unlock(&nvme_kfi_ctrl_mutex);
	flush_workqueue(nvme_delete_wq);

	kfi_unregister_client(&nvme_kfi_client);
}

module_init(nvme_kfi_init_module);
module_exit(nvme_kfi_cleanup_module);

MODULE_DESCRIPTION("NVMe host transport over kfabric");
MODULE_LICENSE("GPL");
MODULE_ALIAS("nvme-kfi");
