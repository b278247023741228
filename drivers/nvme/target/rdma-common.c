// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers shared by the NVMe target transports that speak NVMe/RDMA.
 *
 * Part of nvmet itself rather than a module of their own: they are small,
 * make no transport calls, and every such transport depends on nvmet.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/export.h>
#include <linux/string.h>
#include "rdma-common.h"

/**
 * nvmet_rdma_common_process_wr_wait_list() - run commands waiting for room
 * @lock: protects @wait_list
 * @wait_list: commands that found the send queue full, oldest first
 * @execute: the transport's start of a command; returns false, having
 *	done nothing, if the send queue is still full
 *
 * Starts the waiting commands in order, until one still does not fit; that
 * one stays first on @wait_list. @lock is dropped around @execute.
 */
void nvmet_rdma_common_process_wr_wait_list(spinlock_t *lock,
					    struct list_head *wait_list,
					    bool (*execute)(struct list_head *entry))
{
	spin_lock(lock);
	while (!list_empty(wait_list)) {
		struct list_head *entry = wait_list->next;
		bool ret;

		list_del(entry);

		spin_unlock(lock);
		ret = execute(entry);
		spin_lock(lock);

		if (!ret) {
			list_add(entry, wait_list);
			break;
		}
	}
	spin_unlock(lock);
}
EXPORT_SYMBOL_GPL(nvmet_rdma_common_process_wr_wait_list);

/**
 * nvmet_rdma_common_parse_cm_req() - parse a connect request's private data
 * @private_data: the private data, of any alignment
 * @len: the length of @private_data
 * @qid: returns the queue ID the host asks for
 * @recv_queue_size: returns the receive queue size (the host's SQ size)
 * @send_queue_size: returns the send queue size (the host's RQ size)
 *
 * Checks the record format and, for an admin queue, its size; limits on
 * I/O queues are the transport's.
 *
 * Return: 0, or the NVMe/RDMA status to reject the request with.
 */
int nvmet_rdma_common_parse_cm_req(const void *private_data, size_t len,
				   int *qid, int *recv_queue_size,
				   int *send_queue_size)
{
	struct nvme_rdma_cm_req req;

	if (!private_data || len < sizeof(req))
		return NVME_RDMA_CM_INVALID_LEN;
	memcpy(&req, private_data, sizeof(req));

	if (le16_to_cpu(req.recfmt) != NVME_RDMA_CM_FMT_1_0)
		return NVME_RDMA_CM_INVALID_RECFMT;

	*qid = le16_to_cpu(req.qid);

	/*
	 * req.hsqsize corresponds to our recv queue size plus 1
	 * req.hrqsize corresponds to our send queue size
	 */
	*recv_queue_size = le16_to_cpu(req.hsqsize) + 1;
	*send_queue_size = le16_to_cpu(req.hrqsize);

	if (!*qid && *recv_queue_size > NVME_AQ_DEPTH)
		return NVME_RDMA_CM_INVALID_HSQSIZE;

	return 0;
}
EXPORT_SYMBOL_GPL(nvmet_rdma_common_parse_cm_req);

static void nvmet_rdma_common_established_work(struct work_struct *w)
{
	struct nvmet_rdma_common_queue *q =
		container_of(w, struct nvmet_rdma_common_queue,
			     established_work);
	unsigned long flags;

	spin_lock_irqsave(&q->state_lock, flags);
	while (q->state == NVMET_RDMA_COMMON_Q_LIVE &&
	       !list_empty(&q->parked)) {
		struct list_head *entry = q->parked.next;

		list_del(entry);

		spin_unlock_irqrestore(&q->state_lock, flags);
		q->queues->handle_parked(q, entry);
		spin_lock_irqsave(&q->state_lock, flags);
	}
	spin_unlock_irqrestore(&q->state_lock, flags);
}

/**
 * nvmet_rdma_common_queue_init() - set up the shared part of a new queue
 * @q: the shared part of the queue
 * @queues: the transport's queue list
 * @port: the port the queue is connected on
 * @nvme_sq: the queue's submission queue
 *
 * The queue starts out connecting and not listed.
 */
void nvmet_rdma_common_queue_init(struct nvmet_rdma_common_queue *q,
				  struct nvmet_rdma_common_queues *queues,
				  struct nvmet_port *port,
				  struct nvmet_sq *nvme_sq)
{
	INIT_LIST_HEAD(&q->entry);
	q->queues = queues;
	q->port = port;
	q->nvme_sq = nvme_sq;
	spin_lock_init(&q->state_lock);
	q->state = NVMET_RDMA_COMMON_Q_CONNECTING;
	INIT_LIST_HEAD(&q->parked);
	INIT_WORK(&q->established_work, nvmet_rdma_common_established_work);
}
EXPORT_SYMBOL_GPL(nvmet_rdma_common_queue_init);

/**
 * nvmet_rdma_common_park() - decide on a command that came while not live
 * @q: the queue
 * @entry: the command's list entry
 *
 * Rechecks the state under the lock, since the connection may just have
 * been reported established. A command that came before that is parked on
 * @q and runs once it is.
 *
 * Return: 0 if @q is live and the command is to run now, 1 if it was
 * parked, or -ESHUTDOWN if @q is going away and the caller drops it.
 */
int nvmet_rdma_common_park(struct nvmet_rdma_common_queue *q,
			   struct list_head *entry)
{
	unsigned long flags;
	int ret;

	spin_lock_irqsave(&q->state_lock, flags);
	switch (q->state) {
	case NVMET_RDMA_COMMON_Q_LIVE:
		ret = 0;
		break;
	case NVMET_RDMA_COMMON_Q_CONNECTING:
		list_add_tail(entry, &q->parked);
		ret = 1;
		break;
	default:
		ret = -ESHUTDOWN;
		break;
	}
	spin_unlock_irqrestore(&q->state_lock, flags);

	return ret;
}
EXPORT_SYMBOL_GPL(nvmet_rdma_common_park);

/**
 * nvmet_rdma_common_set_disconnecting() - start a queue's teardown, once
 * @q: the queue
 * @dropped: if not NULL, gets the commands still parked, for the caller
 *	to drop; if NULL, they stay until nvmet_rdma_common_queue_stop()
 *
 * Return: true if @q was connecting or live, i.e. if the caller is the one
 * to tear it down.
 */
bool nvmet_rdma_common_set_disconnecting(struct nvmet_rdma_common_queue *q,
					 struct list_head *dropped)
{
	bool disconnect = false;
	unsigned long flags;

	spin_lock_irqsave(&q->state_lock, flags);
	switch (q->state) {
	case NVMET_RDMA_COMMON_Q_CONNECTING:
		if (dropped)
			list_splice_tail_init(&q->parked, dropped);
		fallthrough;
	case NVMET_RDMA_COMMON_Q_LIVE:
		WRITE_ONCE(q->state, NVMET_RDMA_COMMON_Q_DISCONNECTING);
		disconnect = true;
		break;
	case NVMET_RDMA_COMMON_Q_DISCONNECTING:
		break;
	}
	spin_unlock_irqrestore(&q->state_lock, flags);

	return disconnect;
}
EXPORT_SYMBOL_GPL(nvmet_rdma_common_set_disconnecting);

/**
 * nvmet_rdma_common_queue_stop() - stop running parked commands
 * @q: the queue, no longer live
 * @dropped: gets the commands still parked, which never run, for the
 *	caller to drop
 *
 * Called as the queue is freed.
 */
void nvmet_rdma_common_queue_stop(struct nvmet_rdma_common_queue *q,
				  struct list_head *dropped)
{
	unsigned long flags;

	cancel_work_sync(&q->established_work);
	spin_lock_irqsave(&q->state_lock, flags);
	list_splice_tail_init(&q->parked, dropped);
	spin_unlock_irqrestore(&q->state_lock, flags);
}
EXPORT_SYMBOL_GPL(nvmet_rdma_common_queue_stop);

/**
 * nvmet_rdma_common_queue_add() - list a queue
 * @q: the queue
 *
 * From here on the other helpers can disconnect @q.
 */
void nvmet_rdma_common_queue_add(struct nvmet_rdma_common_queue *q)
{
	struct nvmet_rdma_common_queues *queues = q->queues;

	mutex_lock(&queues->mutex);
	list_add_tail(&q->entry, &queues->list);
	mutex_unlock(&queues->mutex);
}
EXPORT_SYMBOL_GPL(nvmet_rdma_common_queue_add);

/**
 * nvmet_rdma_common_queue_unlist() - take a queue off its list
 * @q: the queue
 *
 * Return: true if @q was listed, i.e. if the caller is the one to tear it
 * down.
 */
bool nvmet_rdma_common_queue_unlist(struct nvmet_rdma_common_queue *q)
{
	struct nvmet_rdma_common_queues *queues = q->queues;
	bool listed = false;

	mutex_lock(&queues->mutex);
	if (!list_empty(&q->entry)) {
		list_del_init(&q->entry);
		listed = true;
	}
	mutex_unlock(&queues->mutex);

	return listed;
}
EXPORT_SYMBOL_GPL(nvmet_rdma_common_queue_unlist);

/**
 * nvmet_rdma_common_queue_disconnect() - disconnect a queue, once
 * @q: the queue
 *
 * Takes @q off its list and disconnects it, unless another path already
 * did.
 */
void nvmet_rdma_common_queue_disconnect(struct nvmet_rdma_common_queue *q)
{
	if (nvmet_rdma_common_queue_unlist(q))
		q->queues->disconnect(q);
}
EXPORT_SYMBOL_GPL(nvmet_rdma_common_queue_disconnect);

/**
 * nvmet_rdma_common_error_comp() - handle a failed completion on a queue
 * @q: the queue
 *
 * Fails the queue's controller, which tears down all its queues; a queue
 * that has no controller yet (its admin connect failed) is disconnected
 * and cleaned up by itself.
 */
void nvmet_rdma_common_error_comp(struct nvmet_rdma_common_queue *q)
{
	if (q->nvme_sq->ctrl)
		nvmet_ctrl_fatal_error(q->nvme_sq->ctrl);
	else
		nvmet_rdma_common_queue_disconnect(q);
}
EXPORT_SYMBOL_GPL(nvmet_rdma_common_error_comp);

/**
 * nvmet_rdma_common_delete_ctrl() - disconnect the queues of a controller
 * @queues: the transport's queue list
 * @ctrl: the controller being deleted
 */
void nvmet_rdma_common_delete_ctrl(struct nvmet_rdma_common_queues *queues,
				   struct nvmet_ctrl *ctrl)
{
	struct nvmet_rdma_common_queue *q, *n;

	mutex_lock(&queues->mutex);
	list_for_each_entry_safe(q, n, &queues->list, entry) {
		if (q->nvme_sq->ctrl != ctrl)
			continue;
		list_del_init(&q->entry);
		queues->disconnect(q);
	}
	mutex_unlock(&queues->mutex);
}
EXPORT_SYMBOL_GPL(nvmet_rdma_common_delete_ctrl);

/**
 * nvmet_rdma_common_disconnect_port() - disconnect the queues of a port
 * @queues: the transport's queue list
 * @port: the port going away
 *
 * Called once the port accepts no more connections, for the queues that
 * are not part of a controller yet; nvmet deletes the controllers.
 */
void nvmet_rdma_common_disconnect_port(struct nvmet_rdma_common_queues *queues,
				       struct nvmet_port *port)
{
	struct nvmet_rdma_common_queue *q, *n;

	mutex_lock(&queues->mutex);
	list_for_each_entry_safe(q, n, &queues->list, entry) {
		if (q->port != port)
			continue;
		list_del_init(&q->entry);
		queues->disconnect(q);
	}
	mutex_unlock(&queues->mutex);
}
EXPORT_SYMBOL_GPL(nvmet_rdma_common_disconnect_port);
