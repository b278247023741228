/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the NVMe target transports that speak NVMe/RDMA.
 *
 * What is shared is nvmet-level logic: how a command's SGL decides where
 * its data is, the connection private data, a queue's connection state,
 * and the bookkeeping of a transport's queues. The transport objects
 * (queue pairs, completion queues, memory registration) stay in the
 * transports.
 *
 * The helpers that run for every command, or that print, are inline: the
 * command path then makes no extra call, and messages keep the prefix of
 * the transport that prints them.
 */
#ifndef _NVMET_RDMA_COMMON_H
#define _NVMET_RDMA_COMMON_H

#include <linux/bits.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/nvme-rdma.h>
#include <linux/scatterlist.h>
#include <linux/sizes.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include "nvmet.h"

/* At least a page, up to 4 pages and up to 16KB of inline data. */
#define NVMET_RDMA_COMMON_DEFAULT_INLINE_DATA_SIZE	PAGE_SIZE
#define NVMET_RDMA_COMMON_MAX_INLINE_SGE		4
#define NVMET_RDMA_COMMON_MAX_INLINE_DATA_SIZE		max_t(int, SZ_16K, PAGE_SIZE)

/*
 * A request flag: the command's data came in the capsule, so there is
 * nothing to transfer. Transports number their own flags after it.
 */
#define NVMET_RDMA_COMMON_REQ_INLINE_DATA	BIT(0)

/**
 * nvmet_rdma_common_num_pages() - pages that @len bytes span from a page start
 * @len: a length in bytes, at least 1
 *
 * Return: the number of pages.
 */
static inline int nvmet_rdma_common_num_pages(int len)
{
	return 1 + (((len - 1) & PAGE_MASK) >> PAGE_SHIFT);
}

/**
 * nvmet_rdma_common_need_data_in() - whether to fetch a command's data
 * @req: the request
 * @flags: the request's NVMET_RDMA_COMMON_REQ_* flags
 *
 * Return: true if the host's data must be read before the command runs.
 */
static inline bool nvmet_rdma_common_need_data_in(struct nvmet_req *req,
						  u32 flags)
{
	return nvme_is_write(req->cmd) &&
		req->transfer_len &&
		!(flags & NVMET_RDMA_COMMON_REQ_INLINE_DATA);
}

/**
 * nvmet_rdma_common_need_data_out() - whether to send a command's data
 * @req: the request, completed
 * @flags: the request's NVMET_RDMA_COMMON_REQ_* flags
 *
 * Return: true if data must be written to the host before the response.
 */
static inline bool nvmet_rdma_common_need_data_out(struct nvmet_req *req,
						   u32 flags)
{
	return !nvme_is_write(req->cmd) &&
		req->transfer_len &&
		!req->cqe->status &&
		!(flags & NVMET_RDMA_COMMON_REQ_INLINE_DATA);
}

/**
 * nvmet_rdma_common_use_inline_sg() - point a request at its inline data
 * @req: the request
 * @inline_sg: the inline data pages of the receive buffer the command is in
 * @len: the length of the inline data
 * @off: the offset of the inline data in the inline data pages
 *
 * Trims @inline_sg to the pages that hold the data and makes it the
 * request's scatterlist.
 */
static inline void nvmet_rdma_common_use_inline_sg(struct nvmet_req *req,
						   struct scatterlist *inline_sg,
						   u32 len, u64 off)
{
	u64 page_off = off % PAGE_SIZE;
	u64 page_idx = off / PAGE_SIZE;
	int sg_count = nvmet_rdma_common_num_pages(page_off + len);
	struct scatterlist *sg;
	int i;

	sg = &inline_sg[page_idx];
	for (i = 0; i < sg_count; i++, sg++) {
		if (i < sg_count - 1)
			sg_unmark_end(sg);
		else
			sg_mark_end(sg);
		sg->offset = page_off;
		sg->length = min_t(u64, len, PAGE_SIZE - page_off);
		len -= sg->length;
		page_off = 0;
	}

	req->sg = &inline_sg[page_idx];
	req->sg_cnt = sg_count;
}

/**
 * nvmet_rdma_common_map_sgl_inline() - map an offset SGL data block
 * @req: the request
 * @inline_sg: the inline data pages of the receive buffer the command is in
 * @inline_data_size: the size of the inline data the receive buffer holds
 * @flags: the request's flags, which get NVMET_RDMA_COMMON_REQ_INLINE_DATA
 *	if the command has data
 *
 * Return: 0 or an NVMe status code.
 */
static inline u16 nvmet_rdma_common_map_sgl_inline(struct nvmet_req *req,
						   struct scatterlist *inline_sg,
						   int inline_data_size,
						   u32 *flags)
{
	struct nvme_sgl_desc *sgl = &req->cmd->common.dptr.sgl;
	u64 off = le64_to_cpu(sgl->addr);
	u32 len = le32_to_cpu(sgl->length);

	if (!nvme_is_write(req->cmd)) {
		req->error_loc = offsetof(struct nvme_common_command, opcode);
		return NVME_SC_INVALID_FIELD | NVME_STATUS_DNR;
	}

	if (off > (u64)inline_data_size ||
	    len > (u64)inline_data_size - off) {
		pr_err("invalid inline data offset!\n");
		return NVME_SC_SGL_INVALID_OFFSET | NVME_STATUS_DNR;
	}

	/* no data command? */
	if (!len)
		return 0;

	nvmet_rdma_common_use_inline_sg(req, inline_sg, len, off);
	*flags |= NVMET_RDMA_COMMON_REQ_INLINE_DATA;
	req->transfer_len += len;
	return 0;
}

/**
 * nvmet_rdma_common_map_sgl() - map a command's data by its SGL descriptor
 * @req: the request, initialized by nvmet_req_init()
 * @inline_sg: the inline data pages of the receive buffer the command is in
 * @inline_data_size: the size of the inline data the receive buffer holds
 * @flags: the request's NVMET_RDMA_COMMON_REQ_* flags
 * @map_keyed: the transport's mapping of a keyed SGL data block
 *	descriptor; its last argument says whether the host asked for
 *	its key to be invalidated
 *
 * Checks the descriptor type the NVMe/RDMA binding allows and hands each
 * to its mapping. Always inlined, so that @map_keyed is a direct call.
 *
 * Return: 0 or an NVMe status code.
 */
static __always_inline u16
nvmet_rdma_common_map_sgl(struct nvmet_req *req, struct scatterlist *inline_sg,
			  int inline_data_size, u32 *flags,
			  u16 (*map_keyed)(struct nvmet_req *req,
					   struct nvme_keyed_sgl_desc *sgl,
					   bool invalidate))
{
	struct nvme_keyed_sgl_desc *sgl = &req->cmd->common.dptr.ksgl;

	switch (sgl->type >> 4) {
	case NVME_SGL_FMT_DATA_DESC:
		switch (sgl->type & 0xf) {
		case NVME_SGL_FMT_OFFSET:
			return nvmet_rdma_common_map_sgl_inline(req, inline_sg,
						inline_data_size, flags);
		default:
			pr_err("invalid SGL subtype: %#x\n", sgl->type);
			req->error_loc =
				offsetof(struct nvme_common_command, dptr);
			return NVME_SC_INVALID_FIELD | NVME_STATUS_DNR;
		}
	case NVME_KEY_SGL_FMT_DATA_DESC:
		switch (sgl->type & 0xf) {
		case NVME_SGL_FMT_ADDRESS | NVME_SGL_FMT_INVALIDATE:
			return map_keyed(req, sgl, true);
		case NVME_SGL_FMT_ADDRESS:
			return map_keyed(req, sgl, false);
		default:
			pr_err("invalid SGL subtype: %#x\n", sgl->type);
			req->error_loc =
				offsetof(struct nvme_common_command, dptr);
			return NVME_SC_INVALID_FIELD | NVME_STATUS_DNR;
		}
	default:
		pr_err("invalid SGL type: %#x\n", sgl->type);
		req->error_loc = offsetof(struct nvme_common_command, dptr);
		return NVME_SC_SGL_INVALID_TYPE | NVME_STATUS_DNR;
	}
}

/**
 * nvmet_rdma_common_free_sgls() - free a request's data buffer
 * @req: the request
 * @inline_sg: the inline data pages of the receive buffer the command is in
 * @inline_page_count: the number of inline data pages
 *
 * Frees the buffer nvmet_req_alloc_sgls() gave the request, if it has one:
 * inline data stays in the receive buffer, which is reused.
 */
static inline void nvmet_rdma_common_free_sgls(struct nvmet_req *req,
					       struct scatterlist *inline_sg,
					       int inline_page_count)
{
	if (req->sg < inline_sg || req->sg >= inline_sg + inline_page_count)
		nvmet_req_free_sgls(req);
}

void nvmet_rdma_common_process_wr_wait_list(spinlock_t *lock,
					    struct list_head *wait_list,
					    bool (*execute)(struct list_head *entry));

/**
 * nvmet_rdma_common_init_port() - default and limit a port's queue settings
 * @nport: the port being added
 *
 * Sets the inline data size and the queue size a port was not given, and
 * reduces them to what NVMe/RDMA allows.
 */
static inline void nvmet_rdma_common_init_port(struct nvmet_port *nport)
{
	if (nport->inline_data_size < 0) {
		nport->inline_data_size =
			NVMET_RDMA_COMMON_DEFAULT_INLINE_DATA_SIZE;
	} else if (nport->inline_data_size >
		   NVMET_RDMA_COMMON_MAX_INLINE_DATA_SIZE) {
		pr_warn("inline_data_size %u is too large, reducing to %u\n",
			nport->inline_data_size,
			NVMET_RDMA_COMMON_MAX_INLINE_DATA_SIZE);
		nport->inline_data_size = NVMET_RDMA_COMMON_MAX_INLINE_DATA_SIZE;
	}

	if (nport->max_queue_size < 0) {
		nport->max_queue_size = NVME_RDMA_DEFAULT_QUEUE_SIZE;
	} else if (nport->max_queue_size > NVME_RDMA_MAX_QUEUE_SIZE) {
		pr_warn("max_queue_size %u is too large, reducing to %u\n",
			nport->max_queue_size, NVME_RDMA_MAX_QUEUE_SIZE);
		nport->max_queue_size = NVME_RDMA_MAX_QUEUE_SIZE;
	}
}

int nvmet_rdma_common_parse_cm_req(const void *private_data, size_t len,
				   int *qid, int *recv_queue_size,
				   int *send_queue_size);

/**
 * nvmet_rdma_common_cm_rej() - fill in the private data of a reject
 * @rej: the private data
 * @status: why the connection is rejected
 */
static inline void nvmet_rdma_common_cm_rej(struct nvme_rdma_cm_rej *rej,
					    enum nvme_rdma_cm_status status)
{
	pr_debug("rejecting connect request: status %d (%s)\n",
		 status, nvme_rdma_cm_msg(status));

	rej->recfmt = cpu_to_le16(NVME_RDMA_CM_FMT_1_0);
	rej->sts = cpu_to_le16(status);
}

/**
 * nvmet_rdma_common_cm_rep() - fill in the private data of an accept
 * @rep: the private data, zeroed
 * @recv_queue_size: the queue's receive queue size (the host's SQ size)
 */
static inline void nvmet_rdma_common_cm_rep(struct nvme_rdma_cm_rep *rep,
					    int recv_queue_size)
{
	rep->recfmt = cpu_to_le16(NVME_RDMA_CM_FMT_1_0);
	rep->crqsize = cpu_to_le16(recv_queue_size);
}

/**
 * enum nvmet_rdma_common_queue_state - the connection state of a queue
 * @NVMET_RDMA_COMMON_Q_CONNECTING: accepted, not yet reported established;
 *	commands that arrive are parked
 * @NVMET_RDMA_COMMON_Q_LIVE: established; commands run as they arrive
 * @NVMET_RDMA_COMMON_Q_DISCONNECTING: being torn down; commands are dropped
 */
enum nvmet_rdma_common_queue_state {
	NVMET_RDMA_COMMON_Q_CONNECTING,
	NVMET_RDMA_COMMON_Q_LIVE,
	NVMET_RDMA_COMMON_Q_DISCONNECTING,
};

struct nvmet_rdma_common_queues;

/**
 * struct nvmet_rdma_common_queue - what the shared helpers know of a queue
 * @entry: on the transport's queue list while the queue is connected
 * @queues: the transport's queue list
 * @port: the port the queue was connected on
 * @nvme_sq: the queue's submission queue
 * @state_lock: protects @state and @parked
 * @state: the connection state
 * @parked: commands that arrived before the connection was established
 * @established_work: runs the @parked commands once it is
 */
struct nvmet_rdma_common_queue {
	struct list_head	entry;
	struct nvmet_rdma_common_queues *queues;
	struct nvmet_port	*port;
	struct nvmet_sq		*nvme_sq;
	spinlock_t		state_lock;	/* state and parked */
	enum nvmet_rdma_common_queue_state state;
	struct list_head	parked;
	struct work_struct	established_work;
};

/**
 * struct nvmet_rdma_common_queues - a transport's list of queues
 * @mutex: protects @list
 * @list: the queues that have yet to be disconnected
 * @disconnect: the transport's start of a queue's teardown, for a queue
 *	just taken off @list; may be called with @mutex held
 * @handle_parked: the transport's handling of a parked command, called
 *	from a work item once the queue is live
 */
struct nvmet_rdma_common_queues {
	struct mutex		mutex;	/* protects list */
	struct list_head	list;
	void			(*disconnect)(struct nvmet_rdma_common_queue *q);
	void			(*handle_parked)(struct nvmet_rdma_common_queue *q,
						 struct list_head *entry);
};

/**
 * nvmet_rdma_common_queues_init() - initialize a transport's queue list
 * @queues: the queue list
 * @disconnect: the transport's start of a queue's teardown
 * @handle_parked: the transport's handling of a parked command
 *
 * Inline, so that each transport's mutex is a lock class of its own.
 */
static inline void
nvmet_rdma_common_queues_init(struct nvmet_rdma_common_queues *queues,
			      void (*disconnect)(struct nvmet_rdma_common_queue *q),
			      void (*handle_parked)(struct nvmet_rdma_common_queue *q,
						    struct list_head *entry))
{
	mutex_init(&queues->mutex);
	INIT_LIST_HEAD(&queues->list);
	queues->disconnect = disconnect;
	queues->handle_parked = handle_parked;
}

/**
 * nvmet_rdma_common_queue_live() - whether commands run as they arrive
 * @q: the queue
 *
 * Return: true if @q is live; if not, nvmet_rdma_common_park() decides.
 */
static inline bool nvmet_rdma_common_queue_live(struct nvmet_rdma_common_queue *q)
{
	return READ_ONCE(q->state) == NVMET_RDMA_COMMON_Q_LIVE;
}

/**
 * nvmet_rdma_common_queue_established() - make a queue live
 * @q: the queue, whose connection was reported established
 *
 * Commands parked until now run from a work item, not from the caller:
 * a connect command takes nvmet_config_sem, which must not nest inside
 * the connection manager's locks the caller holds, since ports are enabled
 * and disabled, and their listeners created and destroyed, under it.
 */
static inline void
nvmet_rdma_common_queue_established(struct nvmet_rdma_common_queue *q)
{
	unsigned long flags;

	spin_lock_irqsave(&q->state_lock, flags);
	if (q->state != NVMET_RDMA_COMMON_Q_CONNECTING) {
		pr_warn("trying to establish a connected queue\n");
		goto out_unlock;
	}
	WRITE_ONCE(q->state, NVMET_RDMA_COMMON_Q_LIVE);
	if (!list_empty(&q->parked))
		queue_work(nvmet_wq, &q->established_work);

out_unlock:
	spin_unlock_irqrestore(&q->state_lock, flags);
}

void nvmet_rdma_common_queue_init(struct nvmet_rdma_common_queue *q,
				  struct nvmet_rdma_common_queues *queues,
				  struct nvmet_port *port,
				  struct nvmet_sq *nvme_sq);
int nvmet_rdma_common_park(struct nvmet_rdma_common_queue *q,
			   struct list_head *entry);
bool nvmet_rdma_common_set_disconnecting(struct nvmet_rdma_common_queue *q,
					 struct list_head *dropped);
void nvmet_rdma_common_queue_stop(struct nvmet_rdma_common_queue *q,
				  struct list_head *dropped);
void nvmet_rdma_common_queue_add(struct nvmet_rdma_common_queue *q);
bool nvmet_rdma_common_queue_unlist(struct nvmet_rdma_common_queue *q);
void nvmet_rdma_common_queue_disconnect(struct nvmet_rdma_common_queue *q);
void nvmet_rdma_common_error_comp(struct nvmet_rdma_common_queue *q);
void nvmet_rdma_common_delete_ctrl(struct nvmet_rdma_common_queues *queues,
				   struct nvmet_ctrl *ctrl);
void nvmet_rdma_common_disconnect_port(struct nvmet_rdma_common_queues *queues,
				       struct nvmet_port *port);

#endif /* _NVMET_RDMA_COMMON_H */
