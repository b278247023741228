// SPDX-License-Identifier: GPL-2.0
/*
 * NVMe over Fabrics target transport on kfabric ("kfi").
 *
 * The logic is that of the RDMA target (rdma.c): a passive endpoint per
 * port, one endpoint per NVMe queue, command capsules received into
 * buffers posted before the connection is accepted (with room for inline
 * data on I/O queues), data moved to and from the host's keyed SGL data
 * blocks with the kfabric read/write helper, and responses that invalidate
 * the host's key when it asked for it. The nvmet-level logic of that
 * (SGL decisions, connection private data, the queue list) is shared with
 * rdma.c in rdma-common.[ch]; this file keeps the kfabric objects.
 *
 * Only the kfabric API is used. The connection private data, capsules and
 * SGL descriptors are NVMe/RDMA's (<linux/nvme-rdma.h>), so on the verbs
 * provider the wire is exactly NVMe/RDMA and stock nvme-rdma hosts connect
 * to a kfi port; the port then advertises transport type RDMA in the
 * discovery log (see nvmet_kfi_disc_trtype()).
 *
 * Not supported: shared receive queues and end-to-end protection
 * information (kfabric has neither).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/err.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/nvme.h>
#include <linux/nvme-rdma.h>
#include <linux/sbitmap.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/unaligned.h>
#include <net/ipv6.h>
#include <rdma/kfi/kfi.h>
#include <rdma/kfi/rw.h>

#include "nvmet.h"
#include "rdma-common.h"

/*
 * NVM Express assigns transport types 1-3 (RDMA, FC, TCP) and FEh for
 * intra-host transports; 04h-FDh are reserved. No code is assigned to
 * kfabric, so a port whose wire has none (not NVMe/RDMA) is announced in
 * the discovery log with a local value: Linux's NVMF_TRTYPE_KFI by
 * default, which only a Linux nvme-kfi host on the same link can use.
 */
static u8 local_trtype = NVMF_TRTYPE_KFI;
module_param(local_trtype, byte, 0644);
MODULE_PARM_DESC(local_trtype,
		 "discovery log TRTYPE of ports on wires NVMe has no code for (a local value, default 253)");

/* mpsmin == 4KB: 1MB per command. */
#define NVMET_KFI_MAX_MDTS			8
#define NVMET_KFI_MAX_IO_SIZE			(SZ_4K << NVMET_KFI_MAX_MDTS)

#define NVMET_KFI_BACKLOG			128

/* What a queue needs of a domain; remote invalidation is used if offered. */
#define NVMET_KFI_CAPS				(KFI_CAP_MSG | KFI_CAP_RMA)

struct nvmet_kfi_queue;

/* One posted receive: a command capsule and its inline data pages. */
struct nvmet_kfi_cmd {
	struct kfi_cqe		cqe;
	struct nvmet_kfi_queue	*queue;
	struct nvme_command	*nvme_cmd;
	struct kvec		kvec;
	struct scatterlist	inline_sg[NVMET_RDMA_COMMON_MAX_INLINE_SGE];
};

/* After NVMET_RDMA_COMMON_REQ_INLINE_DATA. */
enum {
	NVMET_KFI_REQ_INVALIDATE	= (1 << 1),
};

struct nvmet_kfi_rsp {
	struct kfi_cqe		send_cqe;
	struct kfi_cqe		read_cqe;
	struct nvmet_kfi_cmd	*cmd;
	struct nvmet_kfi_queue	*queue;
	struct kfi_rw_ctx	rw;
	bool			rw_active;
	bool			sq_slot;	/* holds one of sq_avail */
	struct nvmet_req	req;
	struct kvec		kvec;		/* the completion queue entry */
	u32			flags;
	u64			invalidate_key;
	struct list_head	wait_list;
	int			tag;
};

struct nvmet_kfi_queue {
	struct kfi_ep		*ep;
	struct kfi_cq		*cq;
	bool			remote_inv;	/* the domain can send with invalidate */
	atomic_t		sq_avail;	/* responses (each with a helper context) */
	struct nvmet_cq		nvme_cq;
	struct nvmet_sq		nvme_sq;

	struct nvmet_kfi_rsp	*rsps;
	struct sbitmap		rsp_tags;
	struct nvmet_kfi_cmd	*cmds;
	int			inline_data_size;
	int			inline_page_count;

	struct work_struct	release_work;
	struct list_head	rsp_wr_wait_list;	/* waiting for sq_avail */
	spinlock_t		rsp_wr_wait_lock;	/* rsp_wr_wait_list */

	struct kfi_addr		src_addr;
	struct kfi_addr		dest_addr;
	int			idx;
	int			host_qid;
	int			recv_queue_size;
	int			send_queue_size;

	struct nvmet_rdma_common_queue common;
};

struct nvmet_kfi_port {
	struct nvmet_port	*nport;
	struct kfi_addr		addr;
	struct kfi_pep		*pep;
	struct delayed_work	repair_work;	/* listens again after a loss */
	u8			wire_trtype;
};

static DEFINE_IDA(nvmet_kfi_queue_ida);
static struct nvmet_rdma_common_queues nvmet_kfi_queues;
/* Queues disconnected and not yet freed, for the connect throttle. */
static atomic_t nvmet_kfi_releasing = ATOMIC_INIT(0);

static bool nvmet_kfi_execute_command(struct nvmet_kfi_rsp *rsp);
static void nvmet_kfi_send_done(struct kfi_cq *cq, struct kfi_wc *wc);
static void nvmet_kfi_recv_done(struct kfi_cq *cq, struct kfi_wc *wc);
static void nvmet_kfi_read_data_done(struct kfi_cq *cq, struct kfi_wc *wc);
static void nvmet_kfi_queue_disconnect(struct nvmet_kfi_queue *queue);

static const struct nvmet_fabrics_ops nvmet_kfi_ops;

static void nvmet_kfi_free_cmd(struct nvmet_kfi_queue *queue,
			       struct nvmet_kfi_cmd *c)
{
	int i;

	for (i = 0; i < queue->inline_page_count; i++)
		if (sg_page(&c->inline_sg[i]))
			__free_page(sg_page(&c->inline_sg[i]));
	kfree(c->nvme_cmd);
}

static int nvmet_kfi_alloc_cmd(struct nvmet_kfi_queue *queue,
			       struct nvmet_kfi_cmd *c)
{
	int len = queue->inline_data_size, i;
	struct page *pg;

	c->queue = queue;
	c->cqe.done = nvmet_kfi_recv_done;
	c->nvme_cmd = kmalloc_obj(*c->nvme_cmd);
	if (!c->nvme_cmd)
		return -ENOMEM;
	c->kvec.iov_base = c->nvme_cmd;
	c->kvec.iov_len = sizeof(*c->nvme_cmd);

	if (!queue->inline_page_count)
		return 0;
	sg_init_table(c->inline_sg, queue->inline_page_count);
	for (i = 0; i < queue->inline_page_count; i++) {
		pg = alloc_page(GFP_KERNEL);
		if (!pg) {
			nvmet_kfi_free_cmd(queue, c);
			return -ENOMEM;
		}
		sg_set_page(&c->inline_sg[i], pg, min_t(int, len, PAGE_SIZE), 0);
		len -= PAGE_SIZE;
	}
	return 0;
}

static void nvmet_kfi_free_cmds(struct nvmet_kfi_queue *queue)
{
	int i;

	if (!queue->cmds)
		return;
	for (i = 0; i < queue->recv_queue_size; i++)
		nvmet_kfi_free_cmd(queue, &queue->cmds[i]);
	kvfree(queue->cmds);
	queue->cmds = NULL;
}

static int nvmet_kfi_alloc_cmds(struct nvmet_kfi_queue *queue)
{
	int i, ret;

	queue->cmds = kvzalloc_objs(*queue->cmds, queue->recv_queue_size);
	if (!queue->cmds)
		return -ENOMEM;
	for (i = 0; i < queue->recv_queue_size; i++) {
		ret = nvmet_kfi_alloc_cmd(queue, &queue->cmds[i]);
		if (ret) {
			while (--i >= 0)
				nvmet_kfi_free_cmd(queue, &queue->cmds[i]);
			kvfree(queue->cmds);
			queue->cmds = NULL;
			return ret;
		}
	}
	return 0;
}

/*
 * A command holds its response from its receive until the response's send
 * completes. Its receive buffer is reposted only when the response goes
 * out, so at most a receive queue of commands execute and at most a send
 * queue of responses are being sent: the pool never runs dry, and a
 * command never waits for a response (nvmet-rdma allocates one then).
 */
static int nvmet_kfi_nr_rsps(const struct nvmet_kfi_queue *queue)
{
	return queue->recv_queue_size + queue->send_queue_size;
}

static void nvmet_kfi_free_rsps(struct nvmet_kfi_queue *queue)
{
	int i, nr_rsps = nvmet_kfi_nr_rsps(queue);

	if (!queue->rsps)
		return;
	for (i = 0; i < nr_rsps; i++)
		kfree(queue->rsps[i].req.cqe);
	kvfree(queue->rsps);
	queue->rsps = NULL;
	sbitmap_free(&queue->rsp_tags);
}

static int nvmet_kfi_alloc_rsps(struct nvmet_kfi_queue *queue)
{
	int nr_rsps = nvmet_kfi_nr_rsps(queue);
	int i;

	if (sbitmap_init_node(&queue->rsp_tags, nr_rsps, -1, GFP_KERNEL,
			      NUMA_NO_NODE, false, true))
		return -ENOMEM;
	queue->rsps = kvzalloc_objs(*queue->rsps, nr_rsps);
	if (!queue->rsps)
		goto out_free_sbitmap;
	for (i = 0; i < nr_rsps; i++) {
		struct nvmet_kfi_rsp *r = &queue->rsps[i];

		r->req.cqe = kmalloc_obj(*r->req.cqe);
		if (!r->req.cqe)
			goto out_free;
		r->kvec.iov_base = r->req.cqe;
		r->kvec.iov_len = sizeof(*r->req.cqe);
		r->send_cqe.done = nvmet_kfi_send_done;
		r->read_cqe.done = nvmet_kfi_read_data_done;
		r->queue = queue;
		r->tag = i;
	}
	return 0;

out_free:
	while (--i >= 0)
		kfree(queue->rsps[i].req.cqe);
	kvfree(queue->rsps);
	queue->rsps = NULL;
out_free_sbitmap:
	sbitmap_free(&queue->rsp_tags);
	return -ENOMEM;
}

static struct nvmet_kfi_rsp *nvmet_kfi_get_rsp(struct nvmet_kfi_queue *queue)
{
	int tag = sbitmap_get(&queue->rsp_tags);

	return tag < 0 ? NULL : &queue->rsps[tag];
}

static void nvmet_kfi_put_rsp(struct nvmet_kfi_rsp *rsp)
{
	sbitmap_clear_bit(&rsp->queue->rsp_tags, rsp->tag);
}

/* Restore the receive layout nvmet_kfi_use_inline_sg() changed. */
static void nvmet_kfi_reset_inline_sg(struct nvmet_kfi_cmd *cmd)
{
	struct nvmet_kfi_queue *queue = cmd->queue;
	int len = queue->inline_data_size, i;

	for (i = 0; i < queue->inline_page_count; i++) {
		cmd->inline_sg[i].offset = 0;
		cmd->inline_sg[i].length = min_t(int, len, PAGE_SIZE);
		len -= PAGE_SIZE;
		if (i < queue->inline_page_count - 1)
			sg_unmark_end(&cmd->inline_sg[i]);
		else
			sg_mark_end(&cmd->inline_sg[i]);
	}
}

static int nvmet_kfi_post_recv(struct nvmet_kfi_cmd *cmd)
{
	struct nvmet_kfi_queue *queue = cmd->queue;
	struct kfi_iov iov[2];
	struct kfi_msg msg = { .iov = iov, .niov = 1, .cqe = &cmd->cqe };
	int ret;

	kfi_iov_kvec(&iov[0], &cmd->kvec, 1);
	if (queue->inline_page_count) {
		nvmet_kfi_reset_inline_sg(cmd);
		/* The capsule: the command, then its inline data. */
		kfi_iov_sg(&iov[1], cmd->inline_sg, queue->inline_page_count);
		msg.niov = 2;
	}
	ret = kfi_recv(queue->ep, &msg, 0);
	if (unlikely(ret))
		pr_err("post_recv cmd failed (%d)\n", ret);
	return ret;
}

static bool nvmet_kfi_execute_waiting(struct list_head *entry)
{
	return nvmet_kfi_execute_command(list_entry(entry, struct nvmet_kfi_rsp,
						    wait_list));
}

static void nvmet_kfi_process_wr_wait_list(struct nvmet_kfi_queue *queue)
{
	nvmet_rdma_common_process_wr_wait_list(&queue->rsp_wr_wait_lock,
					       &queue->rsp_wr_wait_list,
					       nvmet_kfi_execute_waiting);
}

static void nvmet_kfi_free_rsp_resources(struct nvmet_kfi_rsp *rsp)
{
	struct nvmet_kfi_queue *queue = rsp->queue;

	if (rsp->rw_active) {
		kfi_rw_ctx_destroy(&rsp->rw);
		rsp->rw_active = false;
	}
	nvmet_rdma_common_free_sgls(&rsp->req, rsp->cmd->inline_sg,
				    queue->inline_page_count);
}

static void nvmet_kfi_release_rsp(struct nvmet_kfi_rsp *rsp)
{
	struct nvmet_kfi_queue *queue = rsp->queue;

	if (rsp->sq_slot) {
		atomic_inc(&queue->sq_avail);
		rsp->sq_slot = false;
	}
	nvmet_kfi_free_rsp_resources(rsp);
	if (unlikely(!list_empty_careful(&queue->rsp_wr_wait_list)))
		nvmet_kfi_process_wr_wait_list(queue);
	nvmet_kfi_put_rsp(rsp);
}

static void nvmet_kfi_error_comp(struct nvmet_kfi_queue *queue)
{
	nvmet_rdma_common_error_comp(&queue->common);
}

static void nvmet_kfi_send_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct nvmet_kfi_rsp *rsp =
		container_of(wc->cqe, struct nvmet_kfi_rsp, send_cqe);
	struct nvmet_kfi_queue *queue = rsp->queue;

	nvmet_kfi_release_rsp(rsp);

	if (unlikely(wc->status && wc->status != -ECANCELED)) {
		pr_err("SEND for queue %d failed with status %d.\n",
		       queue->idx, wc->status);
		nvmet_kfi_error_comp(queue);
	}
}

static void nvmet_kfi_queue_response(struct nvmet_req *req)
{
	struct nvmet_kfi_rsp *rsp =
		container_of(req, struct nvmet_kfi_rsp, req);
	struct nvmet_kfi_queue *queue = rsp->queue;
	struct kfi_iov iov;
	struct kfi_msg msg = { .iov = &iov, .niov = 1, .cqe = &rsp->send_cqe };
	u32 flags = 0;
	int ret;

	kfi_iov_kvec(&iov, &rsp->kvec, 1);
	if (rsp->flags & NVMET_KFI_REQ_INVALIDATE) {
		msg.inv_key = rsp->invalidate_key;
		flags |= KFI_SEND_INV;
	}

	/* The buffer takes the next command; this one is done with it. */
	nvmet_kfi_post_recv(rsp->cmd);

	if (nvmet_rdma_common_need_data_out(&rsp->req, rsp->flags))
		/* The data, then the response, which reports both. */
		ret = kfi_rw_ctx_post(&rsp->rw, NULL, &msg, flags);
	else
		ret = kfi_send(queue->ep, &msg, flags);
	if (unlikely(ret)) {
		pr_err("sending cmd response failed (%d)\n", ret);
		nvmet_kfi_release_rsp(rsp);
	}
}

static void nvmet_kfi_read_data_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct nvmet_kfi_rsp *rsp =
		container_of(wc->cqe, struct nvmet_kfi_rsp, read_cqe);
	struct nvmet_kfi_queue *queue = rsp->queue;

	kfi_rw_ctx_destroy(&rsp->rw);
	rsp->rw_active = false;

	if (unlikely(wc->status)) {
		nvmet_req_uninit(&rsp->req);
		nvmet_kfi_release_rsp(rsp);
		if (wc->status != -ECANCELED) {
			pr_info("RDMA READ for queue %d failed with status %d.\n",
				queue->idx, wc->status);
			nvmet_kfi_error_comp(queue);
		}
		return;
	}

	rsp->req.execute(&rsp->req);
}

static u16 nvmet_kfi_map_sgl_keyed(struct nvmet_req *req,
				   struct nvme_keyed_sgl_desc *sgl, bool invalidate)
{
	struct nvmet_kfi_rsp *rsp = container_of(req, struct nvmet_kfi_rsp, req);
	struct kfi_rma_iov remote = {
		.addr = le64_to_cpu(sgl->addr),
		.key = get_unaligned_le32(sgl->key),
	};
	struct kfi_iov local;
	int ret;

	rsp->req.transfer_len = get_unaligned_le24(sgl->length);

	/* no data command? */
	if (!rsp->req.transfer_len)
		return 0;

	ret = nvmet_req_alloc_sgls(&rsp->req);
	if (unlikely(ret < 0))
		goto error_out;

	/* The helper maps the buffer and splits it as the endpoint needs. */
	remote.len = rsp->req.transfer_len;
	kfi_iov_sg(&local, rsp->req.sg, rsp->req.sg_cnt);
	ret = kfi_rw_ctx_init(&rsp->rw, rsp->queue->ep, &local, &remote,
			      nvmet_data_dir(&rsp->req));
	if (unlikely(ret < 0))
		goto error_out;
	rsp->rw_active = true;

	if (invalidate && rsp->queue->remote_inv) {
		rsp->invalidate_key = remote.key;
		rsp->flags |= NVMET_KFI_REQ_INVALIDATE;
	}
	return 0;

error_out:
	rsp->req.transfer_len = 0;
	return NVME_SC_INTERNAL;
}

static u16 nvmet_kfi_map_sgl(struct nvmet_kfi_rsp *rsp)
{
	return nvmet_rdma_common_map_sgl(&rsp->req, rsp->cmd->inline_sg,
					 rsp->queue->inline_data_size,
					 &rsp->flags, nvmet_kfi_map_sgl_keyed);
}

/*
 * Each response in flight holds one send queue slot, which also covers
 * its read/write helper context: the endpoint has as many of each.
 */
static bool nvmet_kfi_execute_command(struct nvmet_kfi_rsp *rsp)
{
	struct nvmet_kfi_queue *queue = rsp->queue;

	if (unlikely(atomic_dec_return(&queue->sq_avail) < 0)) {
		pr_debug("send queue full: queue %u\n", queue->idx);
		atomic_inc(&queue->sq_avail);
		return false;
	}
	rsp->sq_slot = true;

	if (nvmet_rdma_common_need_data_in(&rsp->req, rsp->flags)) {
		if (kfi_rw_ctx_post(&rsp->rw, &rsp->read_cqe, NULL, 0))
			nvmet_req_complete(&rsp->req, NVME_SC_DATA_XFER_ERROR);
	} else {
		rsp->req.execute(&rsp->req);
	}
	return true;
}

static void nvmet_kfi_handle_command(struct nvmet_kfi_queue *queue,
				     struct nvmet_kfi_rsp *cmd)
{
	u16 status;

	if (!nvmet_req_init(&cmd->req, &queue->nvme_sq, &nvmet_kfi_ops))
		return;

	status = nvmet_kfi_map_sgl(cmd);
	if (status)
		goto out_err;

	if (unlikely(!nvmet_kfi_execute_command(cmd))) {
		spin_lock(&queue->rsp_wr_wait_lock);
		list_add_tail(&cmd->wait_list, &queue->rsp_wr_wait_list);
		spin_unlock(&queue->rsp_wr_wait_lock);
	}
	return;

out_err:
	nvmet_req_complete(&cmd->req, status);
}

static bool nvmet_kfi_recv_not_live(struct nvmet_kfi_queue *queue,
				    struct nvmet_kfi_rsp *rsp)
{
	int ret = nvmet_rdma_common_park(&queue->common, &rsp->wait_list);

	if (ret < 0)
		nvmet_kfi_put_rsp(rsp);
	return ret != 0;
}

static void nvmet_kfi_recv_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct nvmet_kfi_cmd *cmd =
		container_of(wc->cqe, struct nvmet_kfi_cmd, cqe);
	struct nvmet_kfi_queue *queue = cmd->queue;
	struct nvmet_kfi_rsp *rsp;

	if (unlikely(wc->status)) {
		if (wc->status != -ECANCELED) {
			pr_err("RECV for queue %d failed with status %d\n",
			       queue->idx, wc->status);
			nvmet_kfi_error_comp(queue);
		}
		return;
	}

	if (unlikely(wc->byte_len < sizeof(struct nvme_command))) {
		pr_err("Ctrl Fatal Error: capsule size less than 64 bytes\n");
		nvmet_kfi_error_comp(queue);
		return;
	}

	rsp = nvmet_kfi_get_rsp(queue);
	if (unlikely(!rsp)) {
		/* Not for a host that follows the protocol: nvmet_kfi_nr_rsps(). */
		pr_warn_ratelimited("queue %d: no response for a command, dropped\n",
				    queue->idx);
		nvmet_kfi_post_recv(cmd);
		return;
	}

	rsp->cmd = cmd;
	rsp->flags = 0;
	rsp->req.cmd = cmd->nvme_cmd;
	rsp->req.port = queue->common.port;
	rsp->rw_active = false;
	rsp->sq_slot = false;
	rsp->invalidate_key = 0;

	if (unlikely(!nvmet_rdma_common_queue_live(&queue->common)) &&
	    nvmet_kfi_recv_not_live(queue, rsp))
		return;

	nvmet_kfi_handle_command(queue, rsp);
}

static void nvmet_kfi_handle_parked(struct nvmet_rdma_common_queue *q,
				    struct list_head *entry)
{
	nvmet_kfi_handle_command(container_of(q, struct nvmet_kfi_queue, common),
				 list_entry(entry, struct nvmet_kfi_rsp,
					    wait_list));
}

static void nvmet_kfi_reclaim_rsps(struct nvmet_kfi_queue *queue)
{
	unsigned int i;

	/*
	 * Responses still in flight when the connection was torn down: no
	 * completion will release them any more.
	 */
	for (i = 0; i < nvmet_kfi_nr_rsps(queue); i++)
		if (sbitmap_test_bit(&queue->rsp_tags, i))
			nvmet_kfi_free_rsp_resources(&queue->rsps[i]);
}

static void nvmet_kfi_free_queue(struct nvmet_kfi_queue *queue)
{
	struct nvmet_kfi_rsp *rsp, *tmp;
	LIST_HEAD(parked);

	pr_debug("freeing queue %d\n", queue->idx);

	/* The queue is DISCONNECTING: parked commands never run. */
	nvmet_rdma_common_queue_stop(&queue->common, &parked);
	list_for_each_entry_safe(rsp, tmp, &parked, wait_list) {
		list_del(&rsp->wait_list);
		nvmet_kfi_put_rsp(rsp);
	}
	/* Flush what is outstanding, so the requests below finish. */
	kfi_disconnect(queue->ep);

	nvmet_sq_destroy(&queue->nvme_sq);
	nvmet_cq_put(&queue->nvme_cq);

	kfi_ep_drain(queue->ep);	/* every done() has returned */
	nvmet_kfi_reclaim_rsps(queue);
	kfi_ep_free(queue->ep);
	kfi_cq_free(queue->cq);
	nvmet_kfi_free_cmds(queue);
	nvmet_kfi_free_rsps(queue);
	ida_free(&nvmet_kfi_queue_ida, queue->idx);
	kfree(queue);
}

static void nvmet_kfi_release_queue_work(struct work_struct *w)
{
	struct nvmet_kfi_queue *queue =
		container_of(w, struct nvmet_kfi_queue, release_work);

	nvmet_kfi_free_queue(queue);
	atomic_dec(&nvmet_kfi_releasing);
}

static void __nvmet_kfi_queue_disconnect(struct nvmet_kfi_queue *queue)
{
	/*
	 * Parked commands are dropped as the queue is freed. The endpoint
	 * is freed from process context, never its handler.
	 */
	if (nvmet_rdma_common_set_disconnecting(&queue->common, NULL)) {
		atomic_inc(&nvmet_kfi_releasing);
		queue_work(nvmet_wq, &queue->release_work);
	}
}

static void nvmet_kfi_disconnect_unlisted(struct nvmet_rdma_common_queue *q)
{
	__nvmet_kfi_queue_disconnect(container_of(q, struct nvmet_kfi_queue,
						  common));
}

static void nvmet_kfi_queue_disconnect(struct nvmet_kfi_queue *queue)
{
	nvmet_rdma_common_queue_disconnect(&queue->common);
}

static void nvmet_kfi_queue_cm_handler(void *context,
				       const struct kfi_cm_event *ev)
{
	struct nvmet_kfi_queue *queue = context;

	pr_debug("queue %d: cm event %d status %d\n", queue->idx, ev->type,
		 ev->status);

	switch (ev->type) {
	case KFI_CM_CONNECTED:
		nvmet_rdma_common_queue_established(&queue->common);
		break;
	default:
		/*
		 * DISCONNECTED, ADDR_CHANGE, DOMAIN_REMOVAL, or a connection
		 * that failed after it was accepted.
		 */
		nvmet_kfi_queue_disconnect(queue);
		break;
	}
}

static int nvmet_kfi_parse_cm_connect_req(const struct kfi_cm_event *ev,
					  struct nvmet_kfi_queue *queue)
{
	int ret;

	ret = nvmet_rdma_common_parse_cm_req(ev->private_data,
					     ev->private_data_len,
					     &queue->host_qid,
					     &queue->recv_queue_size,
					     &queue->send_queue_size);
	if (ret)
		return ret;

	/* The queues are sized from these: bound them. */
	if (queue->recv_queue_size > NVME_RDMA_MAX_QUEUE_SIZE)
		return NVME_RDMA_CM_INVALID_HSQSIZE;
	if (!queue->send_queue_size ||
	    queue->send_queue_size > NVME_RDMA_MAX_QUEUE_SIZE)
		return NVME_RDMA_CM_INVALID_HRQSIZE;
	return 0;
}

static void nvmet_kfi_cm_reject(struct kfi_connreq *req,
				enum nvme_rdma_cm_status status)
{
	struct nvme_rdma_cm_rej rej;

	nvmet_rdma_common_cm_rej(&rej, status);
	kfi_reject(req, &rej, sizeof(rej));
}

/*
 * Completions one read/write helper transfer of a command may take. A
 * provider that implements the helper completes a transfer once; where
 * the core carries it, as on NTB, every RMA operation of it completes:
 * one per max_rma_sge pages and per max_rma_size bytes (see
 * kfi_rw_max_ops()). The queue is sized for the larger of the two.
 */
static u32 nvmet_kfi_rw_cqes(const struct kfi_domain_attr *attr)
{
	u32 segs = NVMET_KFI_MAX_IO_SIZE / PAGE_SIZE;

	return DIV_ROUND_UP(segs, min(segs, attr->max_rma_sge)) +
	       DIV_ROUND_UP_ULL(NVMET_KFI_MAX_IO_SIZE, attr->max_rma_size);
}

static int nvmet_kfi_create_queue_ep(struct nvmet_kfi_queue *queue,
				     struct kfi_domain *domain)
{
	const struct kfi_domain_attr *attr = kfi_domain_attr(domain);
	struct kfi_cq_attr cq_attr = {
		/* receives, responses and helper transfers, and the drain */
		.nr_cqe = min_t(u64, attr->max_cqe,
				queue->recv_queue_size + queue->send_queue_size +
				(u64)queue->send_queue_size *
				nvmet_kfi_rw_cqes(attr) + 2),
		.poll_ctx = KFI_POLL_WORKQUEUE,	/* kfi_rw_ctx_init() may sleep */
	};
	struct kfi_ep_attr ep_attr = {
		.type = KFI_EP_MSG,
		.max_send_ops = queue->send_queue_size,
		.max_recv_ops = queue->recv_queue_size,
		.max_send_sge = 1,
		.max_recv_sge = 1 + queue->inline_page_count,
		.max_rw_ctxs = queue->send_queue_size,
		.max_rw_size = NVMET_KFI_MAX_IO_SIZE,
		.max_rw_segs = NVMET_KFI_MAX_IO_SIZE / PAGE_SIZE,
		.handler = nvmet_kfi_queue_cm_handler,
		.context = queue,
	};
	int i, ret;

	/* Spread I/O queues over the completion vectors; admin on 0. */
	cq_attr.comp_vector = !queue->host_qid || !attr->num_comp_vectors ? 0 :
		queue->idx % attr->num_comp_vectors;
	queue->cq = kfi_cq_alloc(domain, &cq_attr);
	if (IS_ERR(queue->cq)) {
		ret = PTR_ERR(queue->cq);
		queue->cq = NULL;
		pr_err("failed to create CQ cqe= %d ret= %d\n",
		       cq_attr.nr_cqe, ret);
		return ret;
	}
	ep_attr.send_cq = queue->cq;
	ep_attr.recv_cq = queue->cq;
	queue->ep = kfi_ep_alloc(domain, &ep_attr);
	if (IS_ERR(queue->ep)) {
		ret = PTR_ERR(queue->ep);
		queue->ep = NULL;
		pr_err("failed to create endpoint ret= %d\n", ret);
		return ret;
	}
	atomic_set(&queue->sq_avail, queue->send_queue_size);

	/* The host sends its connect command as soon as we accept. */
	for (i = 0; i < queue->recv_queue_size; i++) {
		ret = nvmet_kfi_post_recv(&queue->cmds[i]);
		if (ret)
			return ret;
	}
	return 0;
}

/* A queue that failed to set up, never accepted: undo nvmet_kfi_alloc_queue(). */
static void nvmet_kfi_abort_queue_work(struct work_struct *w)
{
	struct nvmet_kfi_queue *queue =
		container_of(w, struct nvmet_kfi_queue, release_work);

	kfi_ep_free(queue->ep);
	kfi_cq_free(queue->cq);
	nvmet_kfi_free_cmds(queue);
	nvmet_kfi_free_rsps(queue);
	ida_free(&nvmet_kfi_queue_ida, queue->idx);
	nvmet_sq_destroy(&queue->nvme_sq);
	nvmet_cq_put(&queue->nvme_cq);
	kfree(queue);
}

static struct nvmet_kfi_queue *
nvmet_kfi_alloc_queue(struct nvmet_kfi_port *port,
		      const struct kfi_cm_event *ev, int *status)
{
	struct kfi_connreq *req = ev->connreq;
	const struct kfi_domain_attr *attr = kfi_domain_attr(req->domain);
	struct nvmet_kfi_queue *queue;
	int ret;

	*status = NVME_RDMA_CM_NO_RSC;
	queue = kzalloc_obj(*queue);
	if (!queue)
		return NULL;

	nvmet_cq_init(&queue->nvme_cq);
	ret = nvmet_sq_init(&queue->nvme_sq, &queue->nvme_cq);
	if (ret)
		goto out_free_queue;

	ret = nvmet_kfi_parse_cm_connect_req(ev, queue);
	if (ret) {
		*status = ret;
		goto out_destroy_sq;
	}

	INIT_WORK(&queue->release_work, nvmet_kfi_release_queue_work);
	nvmet_rdma_common_queue_init(&queue->common, &nvmet_kfi_queues,
				     port->nport, &queue->nvme_sq);
	queue->remote_inv = attr->caps & KFI_CAP_REMOTE_INV;
	queue->src_addr = req->src_addr;
	queue->dest_addr = req->dest_addr;
	INIT_LIST_HEAD(&queue->rsp_wr_wait_list);
	spin_lock_init(&queue->rsp_wr_wait_lock);

	/* Inline data only on I/O queues, as much as the domain receives. */
	if (queue->host_qid) {
		queue->inline_data_size = port->nport->inline_data_size;
		queue->inline_page_count =
			nvmet_rdma_common_num_pages(queue->inline_data_size);
		if (queue->inline_page_count + 1 > attr->max_recv_sge) {
			queue->inline_page_count = attr->max_recv_sge - 1;
			queue->inline_data_size =
				queue->inline_page_count * PAGE_SIZE;
		}
		if (!queue->inline_data_size)
			queue->inline_page_count = 0;
	}

	queue->idx = ida_alloc(&nvmet_kfi_queue_ida, GFP_KERNEL);
	if (queue->idx < 0)
		goto out_destroy_sq;

	if (nvmet_kfi_alloc_rsps(queue))
		goto out_ida_remove;
	if (nvmet_kfi_alloc_cmds(queue))
		goto out_free_responses;

	ret = nvmet_kfi_create_queue_ep(queue, req->domain);
	if (ret) {
		pr_err("%s: creating kfabric queue failed (%d).\n", __func__, ret);
		/*
		 * Not here: freeing an endpoint waits for its completion
		 * queue's work, and this runs in the port's connection
		 * handler, under the passive endpoint's lock, which
		 * nvmet_enable_port() takes under nvmet_config_sem, which
		 * completion work takes to run a connect command. Free it
		 * from nvmet_wq, as released queues are.
		 */
		INIT_WORK(&queue->release_work, nvmet_kfi_abort_queue_work);
		queue_work(nvmet_wq, &queue->release_work);
		return NULL;
	}
	return queue;

out_free_responses:
	nvmet_kfi_free_rsps(queue);
out_ida_remove:
	ida_free(&nvmet_kfi_queue_ida, queue->idx);
out_destroy_sq:
	nvmet_sq_destroy(&queue->nvme_sq);
out_free_queue:
	nvmet_cq_put(&queue->nvme_cq);
	kfree(queue);
	return NULL;
}

/* A connection request on a port's passive endpoint; answered here. */
static void nvmet_kfi_connreq_handler(void *context,
				      const struct kfi_cm_event *ev)
{
	struct nvmet_kfi_port *port = context;
	struct kfi_connreq *req = ev->connreq;
	struct nvme_rdma_cm_rep rep = { };
	struct nvmet_kfi_queue *queue;
	int status;

	if (ev->type == KFI_CM_DOMAIN_REMOVAL) {
		/* Its device went away: listen again once it is back. */
		queue_delayed_work(nvmet_wq, &port->repair_work, 0);
		return;
	}
	if (ev->type != KFI_CM_CONNREQ)
		return;

	/* A wildcard listener hears every domain of its fabric. */
	if ((kfi_domain_attr(req->domain)->caps & NVMET_KFI_CAPS) !=
	    NVMET_KFI_CAPS) {
		nvmet_kfi_cm_reject(req, NVME_RDMA_CM_NO_RSC);
		return;
	}

	queue = nvmet_kfi_alloc_queue(port, ev, &status);
	if (!queue) {
		nvmet_kfi_cm_reject(req, status);
		return;
	}

	nvmet_rdma_common_cm_rep(&rep, queue->recv_queue_size);

	/* Listed first: its handler may disconnect it once accepted. */
	nvmet_rdma_common_queue_add(&queue->common);

	/*
	 * A connect storm, as nvmet-rdma throttles it: while more queues
	 * than a backlog wait to be freed, no new controller starts; the
	 * host retries. I/O queues of controllers that exist still come.
	 */
	if (!queue->host_qid &&
	    atomic_read(&nvmet_kfi_releasing) > NVMET_KFI_BACKLOG) {
		nvmet_kfi_cm_reject(req, NVME_RDMA_CM_NO_RSC);
		nvmet_kfi_queue_disconnect(queue);
		return;
	}

	if (kfi_accept(queue->ep, req, &rep, sizeof(rep))) {
		/* The request counts as rejected. */
		pr_err("kfi_accept failed\n");
		nvmet_kfi_queue_disconnect(queue);
	}
}

static void nvmet_kfi_delete_ctrl(struct nvmet_ctrl *ctrl)
{
	nvmet_rdma_common_delete_ctrl(&nvmet_kfi_queues, ctrl);
}

static int nvmet_kfi_enable_port(struct nvmet_kfi_port *port)
{
	struct nvmet_port *nport = port->nport;
	struct kfi_hints hints = {
		.caps = NVMET_KFI_CAPS,
		.ep_type = KFI_EP_MSG,
		.src_addr = &port->addr,
		.min_cm_data = sizeof(struct nvme_rdma_cm_req),
	};
	struct kfi_info *info;
	struct kfi_pep *pep;
	u32 max_inline_sge = NVMET_RDMA_COMMON_MAX_INLINE_SGE;
	LIST_HEAD(infos);
	int ret;

	ret = kfi_getinfo(&hints, &infos);
	if (ret) {
		pr_err("no kfabric domain for %s:%s (%d)\n",
		       nport->disc_addr.traddr, nport->disc_addr.trsvcid, ret);
		return ret;
	}
	info = list_first_entry(&infos, struct kfi_info, list);

	/*
	 * The port's inline data size is advertised in IOCCSZ: make it
	 * what every domain the port hears can receive.
	 */
	list_for_each_entry(info, &infos, list)
		max_inline_sge = min(max_inline_sge, info->attr.max_recv_sge - 1);
	if (nvmet_rdma_common_num_pages(nport->inline_data_size) >
	    max_inline_sge) {
		pr_warn("inline_data_size %d cannot be supported. Reducing to %lu.\n",
			nport->inline_data_size, max_inline_sge * PAGE_SIZE);
		nport->inline_data_size = max_inline_sge * PAGE_SIZE;
	}

	info = list_first_entry(&infos, struct kfi_info, list);
	/*
	 * Over an RDMA provider the wire is NVMe/RDMA: say so in the
	 * discovery log, with the RDMA transport specific address subtype
	 * an NVMe/RDMA port has.
	 */
	if (info->attr.protocol == KFI_PROTO_RDMA_RC) {
		port->wire_trtype = NVMF_TRTYPE_RDMA;
		nport->disc_addr.tsas.rdma.qptype = NVMF_RDMA_QPTYPE_CONNECTED;
		nport->disc_addr.tsas.rdma.prtype = NVMF_RDMA_PRTYPE_NOT_SPECIFIED;
		nport->disc_addr.tsas.rdma.cms = NVMF_RDMA_CMS_RDMA_CM;
	} else {
		port->wire_trtype = local_trtype;
	}

	/* Ports listen in the initial namespace, as nvmet-rdma's do. */
	pep = kfi_pep_alloc(info->fabric, NULL, nvmet_kfi_connreq_handler, port);
	kfi_freeinfo(&infos);
	if (IS_ERR(pep))
		return PTR_ERR(pep);

	/* Requests may arrive before kfi_listen() returns: publish first. */
	port->pep = pep;
	ret = kfi_listen(pep, &port->addr, NVMET_KFI_BACKLOG);
	if (ret) {
		pr_err("listening to %s:%s failed (%d)\n",
		       nport->disc_addr.traddr, nport->disc_addr.trsvcid, ret);
		port->pep = NULL;
		kfi_pep_free(pep);
		return ret;
	}
	return 0;
}

static void nvmet_kfi_disable_port(struct nvmet_kfi_port *port)
{
	/* Waits for request handlers in flight: no new queues after it. */
	kfi_pep_free(port->pep);
	port->pep = NULL;

	/* The queues not yet part of a controller. */
	nvmet_rdma_common_disconnect_port(&nvmet_kfi_queues, port->nport);
}

/* As nvmet-rdma: retry every 5 s until the address is served again. */
static void nvmet_kfi_repair_port_work(struct work_struct *w)
{
	struct nvmet_kfi_port *port = container_of(to_delayed_work(w),
						   struct nvmet_kfi_port,
						   repair_work);

	nvmet_kfi_disable_port(port);
	if (nvmet_kfi_enable_port(port))
		queue_delayed_work(nvmet_wq, &port->repair_work, 5 * HZ);
}

static int nvmet_kfi_add_port(struct nvmet_port *nport)
{
	struct nvmet_kfi_port *port;
	int ret;

	port = kzalloc_obj(*port);
	if (!port)
		return -ENOMEM;

	nport->priv = port;
	port->nport = nport;
	INIT_DELAYED_WORK(&port->repair_work, nvmet_kfi_repair_port_work);

	/* An IP address for the verbs provider, a node name for NTB. */
	ret = kfi_addr_parse(&port->addr, nport->disc_addr.traddr,
			     nport->disc_addr.trsvcid);
	if (ret ||
	    (nport->disc_addr.adrfam == NVMF_ADDR_FAMILY_IP4 &&
	     (port->addr.format != KFI_ADDR_INET ||
	      port->addr.sa.sa_family != AF_INET)) ||
	    (nport->disc_addr.adrfam == NVMF_ADDR_FAMILY_IP6 &&
	     (port->addr.format != KFI_ADDR_INET ||
	      port->addr.sa.sa_family != AF_INET6))) {
		pr_err("malformed address passed: %s:%s\n",
		       nport->disc_addr.traddr, nport->disc_addr.trsvcid);
		ret = -EINVAL;
		goto out_free_port;
	}

	nvmet_rdma_common_init_port(nport);

	ret = nvmet_kfi_enable_port(port);
	if (ret)
		goto out_free_port;

	pr_info("enabling port %d (%s:%s)\n",
		le16_to_cpu(nport->disc_addr.portid),
		nport->disc_addr.traddr, nport->disc_addr.trsvcid);
	return 0;

out_free_port:
	nport->priv = NULL;
	kfree(port);
	return ret;
}

static void nvmet_kfi_remove_port(struct nvmet_port *nport)
{
	struct nvmet_kfi_port *port = nport->priv;

	/* A handler that runs after this queues the work no more. */
	disable_delayed_work_sync(&port->repair_work);
	nvmet_kfi_disable_port(port);
	kfree(port);
}

/* The address part of a kfabric address, as a traddr. */
static void nvmet_kfi_print_traddr(char *buf, size_t size,
				   const struct kfi_addr *addr)
{
	if (addr->format == KFI_ADDR_INET)
		snprintf(buf, size, "%pISc", &addr->sa);
	else
		strscpy(buf, addr->name.node, size);
}

static bool nvmet_kfi_addr_any(const struct kfi_addr *addr)
{
	switch (addr->format) {
	case KFI_ADDR_INET:
		if (addr->sa.sa_family == AF_INET6)
			return ipv6_addr_any(&addr->sin6.sin6_addr);
		return addr->sin.sin_addr.s_addr == htonl(INADDR_ANY);
	case KFI_ADDR_NAME:
		return !addr->name.node[0];
	default:
		return true;
	}
}

static void nvmet_kfi_disc_port_addr(struct nvmet_req *req,
				     struct nvmet_port *nport, char *traddr)
{
	struct nvmet_kfi_port *port = nport->priv;

	if (nvmet_kfi_addr_any(&port->addr)) {
		struct nvmet_kfi_rsp *rsp =
			container_of(req, struct nvmet_kfi_rsp, req);

		nvmet_kfi_print_traddr(traddr, NVMF_TRADDR_SIZE,
				       &rsp->queue->src_addr);
	} else {
		memcpy(traddr, nport->disc_addr.traddr, NVMF_TRADDR_SIZE);
	}
}

static ssize_t nvmet_kfi_host_port_addr(struct nvmet_ctrl *ctrl,
					char *traddr, size_t traddr_len)
{
	struct nvmet_sq *nvme_sq = ctrl->sqs[0];
	struct nvmet_kfi_queue *queue =
		container_of(nvme_sq, struct nvmet_kfi_queue, nvme_sq);

	nvmet_kfi_print_traddr(traddr, traddr_len, &queue->dest_addr);
	return strlen(traddr);
}

/*
 * The discovery log describes the wire. Over an RDMA provider that is
 * NVMe/RDMA, which any NVMe/RDMA host can connect to; only other wires
 * (such as NTB), which have no code, get the local one (local_trtype).
 */
static u8 nvmet_kfi_disc_trtype(struct nvmet_port *nport)
{
	struct nvmet_kfi_port *port = nport->priv;

	return port->wire_trtype;
}

static u8 nvmet_kfi_get_mdts(const struct nvmet_ctrl *ctrl)
{
	return NVMET_KFI_MAX_MDTS;
}

static u16 nvmet_kfi_get_max_queue_size(const struct nvmet_ctrl *ctrl)
{
	return NVME_RDMA_MAX_QUEUE_SIZE;
}

static const struct nvmet_fabrics_ops nvmet_kfi_ops = {
	.owner			= THIS_MODULE,
	.type			= NVMF_TRTYPE_KFI,
	.msdbd			= 1,
	.flags			= NVMF_KEYED_SGLS,
	.add_port		= nvmet_kfi_add_port,
	.remove_port		= nvmet_kfi_remove_port,
	.queue_response		= nvmet_kfi_queue_response,
	.delete_ctrl		= nvmet_kfi_delete_ctrl,
	.disc_traddr		= nvmet_kfi_disc_port_addr,
	.disc_trtype		= nvmet_kfi_disc_trtype,
	.host_traddr		= nvmet_kfi_host_port_addr,
	.get_mdts		= nvmet_kfi_get_mdts,
	.get_max_queue_size	= nvmet_kfi_get_max_queue_size,
};

/* A domain is going away: disconnect every queue on it. */
static void nvmet_kfi_remove_one(struct kfi_domain *domain, void *client_data)
{
	struct nvmet_kfi_queue *queue, *tmp;
	bool found = false;

	mutex_lock(&nvmet_kfi_queues.mutex);
	list_for_each_entry_safe(queue, tmp, &nvmet_kfi_queues.list,
				 common.entry) {
		if (kfi_ep_domain(queue->ep) != domain)
			continue;
		pr_info("Removing queue %d\n", queue->idx);
		list_del_init(&queue->common.entry);
		__nvmet_kfi_queue_disconnect(queue);
		found = true;
	}
	mutex_unlock(&nvmet_kfi_queues.mutex);

	if (found) {
		flush_workqueue(nvmet_wq);
		flush_workqueue(nvmet_aen_wq);
	}
}

static struct kfi_client nvmet_kfi_client = {
	.name	= "nvmet_kfi",
	.remove	= nvmet_kfi_remove_one,
};

static int __init nvmet_kfi_init(void)
{
	int ret;

	nvmet_rdma_common_queues_init(&nvmet_kfi_queues,
				      nvmet_kfi_disconnect_unlisted,
				      nvmet_kfi_handle_parked);

	ret = kfi_register_client(&nvmet_kfi_client);
	if (ret)
		return ret;

	ret = nvmet_register_transport(&nvmet_kfi_ops);
	if (ret)
		goto err_client;

	return 0;

err_client:
	kfi_unregister_client(&nvmet_kfi_client);
	return ret;
}

static void __exit nvmet_kfi_exit(void)
{
	nvmet_unregister_transport(&nvmet_kfi_ops);
	kfi_unregister_client(&nvmet_kfi_client);
	flush_workqueue(nvmet_wq);
	WARN_ON_ONCE(!list_empty(&nvmet_kfi_queues.list));
	ida_destroy(&nvmet_kfi_queue_ida);
}

module_init(nvmet_kfi_init);
module_exit(nvmet_kfi_exit);

MODULE_DESCRIPTION("NVMe over Fabrics target transport over kfabric");
MODULE_LICENSE("GPL");
MODULE_ALIAS("nvmet-transport-253"); /* 253 == NVMF_TRTYPE_KFI */
