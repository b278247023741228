// SPDX-License-Identifier: GPL-2.0
/*
 * NVMe over Fabrics controller state machine shared by the transports.
 *
 * Setting up the admin and I/O queues, tearing them down, error recovery,
 * reconnecting, resetting and deleting a controller are the same for every
 * transport whose queues are connected one by one and then sent a Fabrics
 * Connect command. This file holds that flow once; a transport supplies
 * what is its own in a struct nvmf_ctrl_ops: how to allocate, start, stop
 * and free one queue, and its blk-mq operations. The flow is that of
 * nvme-rdma, which it came from.
 *
 * Copyright (c) 2015-2016 HGST, a Western Digital Company.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/async.h>
#include <linux/blk-mq.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/workqueue.h>

#include "nvme.h"
#include "fabrics.h"

struct nvmf_ctrl_setup_ctx {
	struct nvmf_ctrl	*ctrl;
	int			qid;
	size_t			queue_size;
	int			*err;
};

static void nvmf_ctrl_free_io_queues(struct nvmf_ctrl *ctrl)
{
	int i;

	for (i = 1; i < ctrl->ctrl.queue_count; i++)
		ctrl->ops->free_queue(ctrl, i);
}

static void nvmf_ctrl_stop_io_queues(struct nvmf_ctrl *ctrl)
{
	int i;

	if (ctrl->ops->stop_io_queues) {
		ctrl->ops->stop_io_queues(ctrl);
		return;
	}

	for (i = 1; i < ctrl->ctrl.queue_count; i++)
		ctrl->ops->stop_queue(ctrl, i);
}

static void nvmf_ctrl_setup_queue_async(void *data, async_cookie_t cookie)
{
	struct nvmf_ctrl_setup_ctx *ctx = data;
	struct nvmf_ctrl *ctrl = ctx->ctrl;
	int ret;

	ret = ctrl->ops->alloc_queue(ctrl, ctx->qid, ctx->queue_size);
	if (ret)
		goto out_err;

	ret = ctrl->ops->start_queue(ctrl, ctx->qid);
	if (ret)
		goto out_err;

	return;
out_err:
	WRITE_ONCE(*ctx->err, ret);
}

/*
 * Each queue waits for its own transport handshake and Connect command,
 * so set the queues up in parallel rather than one after the other.
 */
static int nvmf_ctrl_setup_io_queues(struct nvmf_ctrl *ctrl,
				     unsigned int first, unsigned int last,
				     size_t queue_size)
{
	ASYNC_DOMAIN_EXCLUSIVE(queue_domain);
	struct nvmf_ctrl_setup_ctx *ctxs;
	int nr_queues = last - first;
	int err = 0, i, ret;

	ctxs = kmalloc_objs(*ctxs, nr_queues);
	if (!ctxs)
		return -ENOMEM;

	for (i = 0; i < nr_queues; i++) {
		ctxs[i].ctrl = ctrl;
		ctxs[i].qid = first + i;
		ctxs[i].queue_size = queue_size;
		ctxs[i].err = &err;
		async_schedule_domain(nvmf_ctrl_setup_queue_async, &ctxs[i],
				      &queue_domain);
	}

	async_synchronize_full_domain(&queue_domain);
	kfree(ctxs);

	ret = READ_ONCE(err);
	if (ret)
		goto out_free_queues;

	return 0;
out_free_queues:
	/* ->stop_queue and ->free_queue skip what was not set up. */
	for (i = 0; i < nr_queues; i++) {
		ctrl->ops->stop_queue(ctrl, first + i);
		ctrl->ops->free_queue(ctrl, first + i);
	}

	return ret;
}

static int nvmf_ctrl_alloc_tag_set(struct nvmf_ctrl *ctrl)
{
	unsigned int nr_maps = ctrl->ctrl.opts->nr_poll_queues ?
		HCTX_MAX_TYPES : 2;
	unsigned int cmd_size = ctrl->ops->cmd_size;

	if (ctrl->ctrl.max_integrity_segments)
		cmd_size += ctrl->ops->pi_cmd_size;

	return nvme_alloc_io_tag_set(&ctrl->ctrl, &ctrl->tag_set,
				     ctrl->ops->mq_ops, nr_maps, cmd_size);
}

static int nvmf_ctrl_configure_admin_queue(struct nvmf_ctrl *ctrl, bool new)
{
	int error;

	error = ctrl->ops->alloc_admin_queue(ctrl);
	if (error)
		return error;

	if (new) {
		error = nvme_alloc_admin_tag_set(&ctrl->ctrl,
						 &ctrl->admin_tag_set,
						 ctrl->ops->admin_mq_ops,
						 ctrl->ops->cmd_size);
		if (error)
			goto out_free_queue;
	}

	error = ctrl->ops->start_queue(ctrl, 0);
	if (error)
		goto out_remove_admin_tag_set;

	error = nvme_enable_ctrl(&ctrl->ctrl);
	if (error)
		goto out_stop_queue;

	nvme_unquiesce_admin_queue(&ctrl->ctrl);

	error = nvme_init_ctrl_finish(&ctrl->ctrl, false);
	if (error)
		goto out_quiesce_queue;

	return 0;

out_quiesce_queue:
	nvme_quiesce_admin_queue(&ctrl->ctrl);
	blk_sync_queue(ctrl->ctrl.admin_q);
out_stop_queue:
	ctrl->ops->stop_queue(ctrl, 0);
	nvme_cancel_admin_tagset(&ctrl->ctrl);
out_remove_admin_tag_set:
	if (new)
		nvme_remove_admin_tag_set(&ctrl->ctrl);
out_free_queue:
	ctrl->ops->free_admin_queue(ctrl);
	return error;
}

static int nvmf_ctrl_configure_io_queues(struct nvmf_ctrl *ctrl, bool new)
{
	unsigned int nr_io_queues;
	int ret, nr_queues;

	nr_io_queues = nvmf_nr_io_queues(ctrl->ctrl.opts);
	ret = nvme_set_queue_count(&ctrl->ctrl, &nr_io_queues);
	if (ret)
		return ret;

	if (nr_io_queues == 0) {
		dev_err(ctrl->ctrl.device, "unable to set any I/O queues\n");
		return -ENOMEM;
	}

	ctrl->ctrl.queue_count = nr_io_queues + 1;
	dev_info(ctrl->ctrl.device, "creating %d I/O queues.\n", nr_io_queues);
	nvmf_set_io_queues(ctrl->ctrl.opts, nr_io_queues, ctrl->io_queues);

	if (new) {
		ret = nvmf_ctrl_alloc_tag_set(ctrl);
		if (ret)
			goto out_free_io_queues;
	}

	/*
	 * Only start IO queues for which we have allocated the tagset
	 * and limited it to the available queues. On reconnects, the
	 * queue number might have changed.
	 */
	nr_queues = min(ctrl->tag_set.nr_hw_queues + 1, ctrl->ctrl.queue_count);
	if (ctrl->ctrl.sqsize < ctrl->tag_set.queue_depth)
		dev_info(ctrl->ctrl.device,
			 "queue size %u < %u tags, throttling each I/O queue to %u requests\n",
			 ctrl->ctrl.sqsize + 1, ctrl->tag_set.queue_depth,
			 ctrl->ctrl.sqsize);
	ret = nvmf_ctrl_setup_io_queues(ctrl, 1, nr_queues,
					ctrl->ctrl.sqsize + 1);

	if (ret)
		goto out_cleanup_tagset;

	if (!new) {
		nvme_start_freeze(&ctrl->ctrl);
		nvme_unquiesce_io_queues(&ctrl->ctrl);
		if (!nvme_wait_freeze_timeout(&ctrl->ctrl)) {
			/*
			 * If we timed out waiting for freeze we are likely to
			 * be stuck.  Fail the controller initialization just
			 * to be safe.
			 */
			ret = -ENODEV;
			nvme_unfreeze(&ctrl->ctrl);
			goto out_wait_freeze_timed_out;
		}
		blk_mq_update_nr_hw_queues(ctrl->ctrl.tagset,
					   ctrl->ctrl.queue_count - 1);
		nvme_unfreeze(&ctrl->ctrl);
	}

	/*
	 * If the number of queues has increased (reconnect case)
	 * setup all new queues now.
	 */
	if (ctrl->tag_set.nr_hw_queues + 1 > nr_queues) {
		ret = nvmf_ctrl_setup_io_queues(ctrl, nr_queues,
						ctrl->tag_set.nr_hw_queues + 1,
						ctrl->ctrl.sqsize + 1);
		if (ret)
			goto out_wait_freeze_timed_out;
	}

	return 0;

out_wait_freeze_timed_out:
	nvme_quiesce_io_queues(&ctrl->ctrl);
	nvme_sync_io_queues(&ctrl->ctrl);
	nvmf_ctrl_stop_io_queues(ctrl);
out_cleanup_tagset:
	nvme_cancel_tagset(&ctrl->ctrl);
	if (new)
		nvme_remove_io_tag_set(&ctrl->ctrl);
out_free_io_queues:
	nvmf_ctrl_free_io_queues(ctrl);
	return ret;
}

static void nvmf_ctrl_teardown_admin_queue(struct nvmf_ctrl *ctrl,
					   bool remove)
{
	nvme_quiesce_admin_queue(&ctrl->ctrl);
	blk_sync_queue(ctrl->ctrl.admin_q);
	ctrl->ops->stop_queue(ctrl, 0);
	nvme_cancel_admin_tagset(&ctrl->ctrl);
	if (remove) {
		nvme_unquiesce_admin_queue(&ctrl->ctrl);
		nvme_remove_admin_tag_set(&ctrl->ctrl);
	}
	ctrl->ops->free_admin_queue(ctrl);
}

static void nvmf_ctrl_teardown_io_queues(struct nvmf_ctrl *ctrl,
					 bool remove)
{
	if (ctrl->ctrl.queue_count > 1) {
		nvme_quiesce_io_queues(&ctrl->ctrl);
		nvme_sync_io_queues(&ctrl->ctrl);
		nvmf_ctrl_stop_io_queues(ctrl);
		nvme_cancel_tagset(&ctrl->ctrl);
		if (remove) {
			nvme_unquiesce_io_queues(&ctrl->ctrl);
			nvme_remove_io_tag_set(&ctrl->ctrl);
		}
		nvmf_ctrl_free_io_queues(ctrl);
	}
}

static void nvmf_ctrl_reconnect_or_remove(struct nvmf_ctrl *ctrl, int status)
{
	enum nvme_ctrl_state state = nvme_ctrl_state(&ctrl->ctrl);

	/* If we are resetting/deleting then do nothing */
	if (state != NVME_CTRL_CONNECTING) {
		WARN_ON_ONCE(state == NVME_CTRL_NEW || state == NVME_CTRL_LIVE);
		return;
	}

	if (nvmf_should_reconnect(&ctrl->ctrl, status)) {
		dev_info(ctrl->ctrl.device, "Reconnecting in %d seconds...\n",
			 ctrl->ctrl.opts->reconnect_delay);
		queue_delayed_work(nvme_wq, &ctrl->reconnect_work,
				   ctrl->ctrl.opts->reconnect_delay * HZ);
	} else {
		nvme_delete_ctrl(&ctrl->ctrl);
	}
}

static int nvmf_ctrl_setup(struct nvmf_ctrl *ctrl, bool new)
{
	int ret;
	bool changed;
	u16 max_queue_size;

	ret = nvmf_ctrl_configure_admin_queue(ctrl, new);
	if (ret)
		return ret;

	if (ctrl->ctrl.icdoff) {
		ret = -EOPNOTSUPP;
		dev_err(ctrl->ctrl.device, "icdoff is not supported!\n");
		goto destroy_admin;
	}

	if (ctrl->ops->check_ctrl) {
		ret = ctrl->ops->check_ctrl(ctrl);
		if (ret)
			goto destroy_admin;
	}

	if (ctrl->ctrl.opts->queue_size > ctrl->ctrl.sqsize + 1) {
		dev_warn(ctrl->ctrl.device,
			 "queue_size %zu > ctrl sqsize %u, clamping down\n",
			 ctrl->ctrl.opts->queue_size, ctrl->ctrl.sqsize + 1);
	}

	max_queue_size = ctrl->ops->max_queue_size ?
		ctrl->ops->max_queue_size(ctrl) : 0;
	if (max_queue_size && ctrl->ctrl.sqsize + 1 > max_queue_size) {
		dev_warn(ctrl->ctrl.device,
			 "ctrl sqsize %u > max queue size %u, clamping down\n",
			 ctrl->ctrl.sqsize + 1, max_queue_size);
		ctrl->ctrl.sqsize = max_queue_size - 1;
	}

	if (ctrl->ctrl.sqsize + 1 > ctrl->ctrl.maxcmd) {
		dev_warn(ctrl->ctrl.device,
			 "sqsize %u > ctrl maxcmd %u, clamping down\n",
			 ctrl->ctrl.sqsize + 1, ctrl->ctrl.maxcmd);
		ctrl->ctrl.sqsize = ctrl->ctrl.maxcmd - 1;
	}

	if (ctrl->ctrl.queue_count > 1) {
		ret = nvmf_ctrl_configure_io_queues(ctrl, new);
		if (ret)
			goto destroy_admin;
	}

	changed = nvme_change_ctrl_state(&ctrl->ctrl, NVME_CTRL_LIVE);
	if (!changed) {
		/*
		 * state change failure is ok if we started ctrl delete,
		 * unless we're during creation of a new controller to
		 * avoid races with teardown flow.
		 */
		enum nvme_ctrl_state state = nvme_ctrl_state(&ctrl->ctrl);

		WARN_ON_ONCE(state != NVME_CTRL_DELETING &&
			     state != NVME_CTRL_DELETING_NOIO);
		WARN_ON_ONCE(new);
		ret = -EINVAL;
		goto destroy_io;
	}

	nvme_start_ctrl(&ctrl->ctrl);
	return 0;

destroy_io:
	if (ctrl->ctrl.queue_count > 1) {
		nvme_quiesce_io_queues(&ctrl->ctrl);
		nvme_sync_io_queues(&ctrl->ctrl);
		nvmf_ctrl_stop_io_queues(ctrl);
		nvme_cancel_tagset(&ctrl->ctrl);
		if (new)
			nvme_remove_io_tag_set(&ctrl->ctrl);
		nvmf_ctrl_free_io_queues(ctrl);
	}
destroy_admin:
	nvme_stop_keep_alive(&ctrl->ctrl);
	nvmf_ctrl_teardown_admin_queue(ctrl, new);
	return ret;
}

static void nvmf_ctrl_reconnect_work(struct work_struct *work)
{
	struct nvmf_ctrl *ctrl = container_of(to_delayed_work(work),
					      struct nvmf_ctrl, reconnect_work);
	int ret;

	++ctrl->ctrl.nr_reconnects;

	ret = nvmf_ctrl_setup(ctrl, false);
	if (ret)
		goto requeue;

	dev_info(ctrl->ctrl.device, "Successfully reconnected (%d attempts)\n",
		 ctrl->ctrl.nr_reconnects);

	/* accumulate reconnect attempts before resetting it to zero */
	atomic_long_add(ctrl->ctrl.nr_reconnects, &ctrl->ctrl.acc_reconnects);
	ctrl->ctrl.nr_reconnects = 0;

	return;

requeue:
	dev_info(ctrl->ctrl.device, "Failed reconnect attempt %d/%d\n",
		 ctrl->ctrl.nr_reconnects, ctrl->ctrl.opts->max_reconnects);
	nvmf_ctrl_reconnect_or_remove(ctrl, ret);
}

static void nvmf_ctrl_error_recovery_work(struct work_struct *work)
{
	struct nvmf_ctrl *ctrl = container_of(work, struct nvmf_ctrl, err_work);

	nvme_stop_keep_alive(&ctrl->ctrl);
	flush_work(&ctrl->ctrl.async_event_work);
	nvmf_ctrl_teardown_io_queues(ctrl, false);
	nvme_unquiesce_io_queues(&ctrl->ctrl);
	nvmf_ctrl_teardown_admin_queue(ctrl, false);
	nvme_unquiesce_admin_queue(&ctrl->ctrl);
	nvme_auth_stop(&ctrl->ctrl);

	if (!nvme_change_ctrl_state(&ctrl->ctrl, NVME_CTRL_CONNECTING)) {
		/* state change failure is ok if we started ctrl delete */
		enum nvme_ctrl_state state = nvme_ctrl_state(&ctrl->ctrl);

		WARN_ON_ONCE(state != NVME_CTRL_DELETING &&
			     state != NVME_CTRL_DELETING_NOIO);
		return;
	}

	nvmf_ctrl_reconnect_or_remove(ctrl, 0);
}

/**
 * nvmf_queue_budget_init() - set the budget of a queue being allocated
 * @ctrl: the controller
 * @budget: the queue's budget
 * @qid: the queue
 * @queue_size: the number of entries the queue is allocated with
 *
 * For nvmf_ctrl_ops->alloc_queue, with nothing in flight on the queue. An
 * I/O queue smaller than the I/O tag set is held to the requests a tag set
 * sized for it would have (nvme_alloc_io_tag_set(): one fewer than its
 * entries, the Connect command included). Any other queue gets no limit,
 * so its requests pay only a test of @budget->limit.
 */
void nvmf_queue_budget_init(struct nvmf_ctrl *ctrl,
			    struct nvmf_queue_budget *budget, int qid,
			    size_t queue_size)
{
	atomic_set(&budget->in_flight, 0);
	budget->limit = 0;
	if (qid && queue_size - 1 < ctrl->tag_set.queue_depth)
		budget->limit = queue_size - 1;
}
EXPORT_SYMBOL_GPL(nvmf_queue_budget_init);

/**
 * nvmf_ctrl_connect_queue() - send the Connect command and mark a queue live
 * @ctrl: the controller
 * @qid: the queue, 0 for the admin queue
 * @flags: the transport's flags of the queue
 * @live_bit: the bit of @flags that says the queue is live
 *
 * For nvmf_ctrl_ops->start_queue: sends the Fabrics Connect command on
 * queue @qid and sets @live_bit once it succeeded. On failure the queue is
 * left not live, for the transport to stop its connection.
 *
 * Return: 0 on success, a negative errno or an NVMe status otherwise.
 */
int nvmf_ctrl_connect_queue(struct nvmf_ctrl *ctrl, int qid,
			    unsigned long *flags, int live_bit)
{
	int ret;

	if (qid)
		ret = nvmf_connect_io_queue(&ctrl->ctrl, qid);
	else
		ret = nvmf_connect_admin_queue(&ctrl->ctrl);

	if (ret) {
		dev_info(ctrl->ctrl.device,
			 "failed to connect queue: %d ret=%d\n", qid, ret);
		return ret;
	}

	set_bit(live_bit, flags);
	return 0;
}
EXPORT_SYMBOL_GPL(nvmf_ctrl_connect_queue);

/**
 * nvmf_ctrl_check_keyed_sgls() - check a controller takes keyed SGLs
 * @ctrl: the controller, with its admin queue up
 * @inline_data: set to true if it also takes in-capsule data
 *
 * For nvmf_ctrl_ops->check_ctrl of a transport whose controller fetches
 * and returns data by remote memory access, described by keyed SGL data
 * block descriptors, which it then must support. In-capsule data needs
 * SGL data block descriptors with an offset address.
 *
 * Return: 0, or -EOPNOTSUPP if the controller does not take keyed SGLs.
 */
int nvmf_ctrl_check_keyed_sgls(struct nvmf_ctrl *ctrl, bool *inline_data)
{
	if (!(ctrl->ctrl.sgls & NVME_CTRL_SGLS_KSDBDS)) {
		dev_err(ctrl->ctrl.device,
			"Mandatory keyed sgls are not supported!\n");
		return -EOPNOTSUPP;
	}

	if (ctrl->ctrl.sgls & NVME_CTRL_SGLS_SAOS)
		*inline_data = true;

	return 0;
}
EXPORT_SYMBOL_GPL(nvmf_ctrl_check_keyed_sgls);

/**
 * nvmf_ctrl_error_recovery() - start recovering a controller from an error
 * @ctrl: the controller
 *
 * Moves a live or connecting controller to RESETTING and queues its error
 * recovery, which tears the queues down and reconnects (or deletes the
 * controller when reconnecting is given up). Does nothing if the
 * controller is already resetting or being deleted. Callable from any
 * context that may queue work.
 */
void nvmf_ctrl_error_recovery(struct nvmf_ctrl *ctrl)
{
	if (!nvme_change_ctrl_state(&ctrl->ctrl, NVME_CTRL_RESETTING))
		return;

	dev_warn(ctrl->ctrl.device, "starting error recovery\n");
	queue_work(nvme_reset_wq, &ctrl->err_work);
}
EXPORT_SYMBOL_GPL(nvmf_ctrl_error_recovery);

/**
 * nvmf_ctrl_timeout() - handle a request timeout
 * @ctrl: the controller
 * @rq: the request that timed out
 * @qid: the queue it was sent on
 *
 * For a transport's blk_mq_ops->timeout. A request of a live controller
 * starts error recovery, which will complete it. Otherwise the controller
 * is resetting, connecting or being deleted and the request may be one
 * that sequence waits for, so stop its queue and complete it at once.
 *
 * Return: the blk_eh_timer_return for blk-mq.
 */
enum blk_eh_timer_return nvmf_ctrl_timeout(struct nvmf_ctrl *ctrl,
					   struct request *rq, int qid)
{
	struct nvme_command *cmd = nvme_req(rq)->cmd;

	dev_warn(ctrl->ctrl.device,
		 "I/O tag %d (%04x) opcode %#x (%s) QID %d timeout\n",
		 rq->tag, nvme_cid(rq), cmd->common.opcode,
		 nvme_fabrics_opcode_str(qid, cmd), qid);

	if (nvme_ctrl_state(&ctrl->ctrl) != NVME_CTRL_LIVE) {
		/*
		 * If we are resetting, connecting or deleting we should
		 * complete immediately because we may block controller
		 * teardown or setup sequence
		 * - ctrl disable/shutdown fabrics requests
		 * - connect requests
		 * - initialization admin requests
		 * - I/O requests that entered after unquiescing and
		 *   the controller stopped responding
		 *
		 * All other requests should be cancelled by the error
		 * recovery work, so it's fine that we fail it here.
		 */
		ctrl->ops->stop_queue(ctrl, qid);
		nvmf_complete_timed_out_request(rq);
		return BLK_EH_DONE;
	}

	/*
	 * LIVE state should trigger the normal error recovery which will
	 * handle completing this request.
	 */
	nvmf_ctrl_error_recovery(ctrl);
	return BLK_EH_RESET_TIMER;
}
EXPORT_SYMBOL_GPL(nvmf_ctrl_timeout);

static void nvmf_ctrl_shutdown(struct nvmf_ctrl *ctrl, bool shutdown)
{
	nvmf_ctrl_teardown_io_queues(ctrl, shutdown);
	nvme_quiesce_admin_queue(&ctrl->ctrl);
	nvme_disable_ctrl(&ctrl->ctrl, shutdown);
	nvmf_ctrl_teardown_admin_queue(ctrl, shutdown);
}

/**
 * nvmf_ctrl_delete() - shut a controller down for deletion
 * @nctrl: the controller
 *
 * For nvme_ctrl_ops->delete_ctrl: tears the I/O queues down, shuts the
 * controller down and tears the admin queue down, removing the tag sets.
 */
void nvmf_ctrl_delete(struct nvme_ctrl *nctrl)
{
	nvmf_ctrl_shutdown(to_nvmf_ctrl(nctrl), true);
}
EXPORT_SYMBOL_GPL(nvmf_ctrl_delete);

/**
 * nvmf_ctrl_stop() - wait for error recovery and cancel reconnecting
 * @nctrl: the controller
 *
 * For nvme_ctrl_ops->stop_ctrl.
 */
void nvmf_ctrl_stop(struct nvme_ctrl *nctrl)
{
	struct nvmf_ctrl *ctrl = to_nvmf_ctrl(nctrl);

	flush_work(&ctrl->err_work);
	cancel_delayed_work_sync(&ctrl->reconnect_work);
}
EXPORT_SYMBOL_GPL(nvmf_ctrl_stop);

static void nvmf_ctrl_reset_work(struct work_struct *work)
{
	struct nvmf_ctrl *ctrl =
		container_of(work, struct nvmf_ctrl, ctrl.reset_work);
	int ret;

	nvme_stop_ctrl(&ctrl->ctrl);
	nvmf_ctrl_shutdown(ctrl, false);

	if (!nvme_change_ctrl_state(&ctrl->ctrl, NVME_CTRL_CONNECTING)) {
		/* state change failure should never happen */
		WARN_ON_ONCE(1);
		return;
	}

	ret = nvmf_ctrl_setup(ctrl, false);
	if (ret)
		goto out_fail;

	return;

out_fail:
	++ctrl->ctrl.nr_reconnects;
	nvmf_ctrl_reconnect_or_remove(ctrl, ret);
}

/**
 * nvmf_ctrl_init() - initialise the shared part of a new controller
 * @ctrl: the controller, with ctrl->ctrl.opts set
 * @ops: the transport's operations
 *
 * Sets up the error recovery, reconnect and reset work and takes the
 * queue count, queue size and keep alive timeout from the options. Call
 * before nvme_init_ctrl(); ctrl->ctrl.queue_count is then the number of
 * queues the transport must have room for.
 */
void nvmf_ctrl_init(struct nvmf_ctrl *ctrl, const struct nvmf_ctrl_ops *ops)
{
	struct nvmf_ctrl_options *opts = ctrl->ctrl.opts;

	ctrl->ops = ops;
	INIT_DELAYED_WORK(&ctrl->reconnect_work, nvmf_ctrl_reconnect_work);
	INIT_WORK(&ctrl->err_work, nvmf_ctrl_error_recovery_work);
	INIT_WORK(&ctrl->ctrl.reset_work, nvmf_ctrl_reset_work);

	ctrl->ctrl.queue_count = opts->nr_io_queues + opts->nr_write_queues +
				opts->nr_poll_queues + 1;
	ctrl->ctrl.sqsize = opts->queue_size - 1;
	ctrl->ctrl.kato = opts->kato;
}
EXPORT_SYMBOL_GPL(nvmf_ctrl_init);

/**
 * nvmf_ctrl_create() - add a new controller and connect it
 * @ctrl: the controller, initialised by nvme_init_ctrl()
 *
 * Adds the controller and connects its admin and I/O queues for the first
 * time. On failure the controller is uninitialised and the reference
 * nvme_init_ctrl() took is put, so the transport must not touch it again.
 *
 * Return: 0 on success, a negative errno otherwise.
 */
int nvmf_ctrl_create(struct nvmf_ctrl *ctrl)
{
	bool changed;
	int ret;

	ret = nvme_add_ctrl(&ctrl->ctrl);
	if (ret)
		goto out_put_ctrl;

	changed = nvme_change_ctrl_state(&ctrl->ctrl, NVME_CTRL_CONNECTING);
	WARN_ON_ONCE(!changed);

	ret = nvmf_ctrl_setup(ctrl, true);
	if (ret)
		goto out_uninit_ctrl;

	return 0;

out_uninit_ctrl:
	nvme_uninit_ctrl(&ctrl->ctrl);
out_put_ctrl:
	nvme_put_ctrl(&ctrl->ctrl);
	if (ret > 0)
		ret = -EIO;
	return ret;
}
EXPORT_SYMBOL_GPL(nvmf_ctrl_create);
