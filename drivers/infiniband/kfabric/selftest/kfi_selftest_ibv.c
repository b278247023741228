// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric self-test: the raw verbs baseline of the benchmark.
 *
 * "bench api=verbs" runs the benchmark cases of kfi_selftest.c written
 * directly against rdma_cm and the kernel verbs, the way a kverbs ULP
 * would: an RC QP that rdma_cm creates and moves through its states, a
 * completion queue from the device's pool polled in softirq context,
 * message and RMA buffers DMA-mapped once and used with the PD's
 * local_dma_lkey, and the R/W API for transfers larger than a message.
 * It connects to the same responder ("serve", on the kfabric verbs
 * provider), speaks the same protocol and runs the same operations with
 * the same sizes, queue depths and iterations, each case after one checked
 * untimed transfer as in the kfabric mode, so that the ratio of the two
 * modes' rows is what kfabric costs on the client side.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/completion.h>
#include <linux/dma-mapping.h>
#include <linux/err.h>
#include <linux/ktime.h>
#include <linux/minmax.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <net/net_namespace.h>
#include <rdma/ib_verbs.h>
#include <rdma/rdma_cm.h>
#include <rdma/rw.h>

#include "kfi_selftest.h"

#define KST_IBV_CM_TIMEOUT_MS	2000

/**
 * struct kst_ibv_op - a work request the test thread waits for
 * @cqe: its completion object
 * @done: completed by the completion callback
 * @status: completion status
 * @byte_len: bytes received
 * @start: when it was posted
 * @lat_ns: nanoseconds from @start to its completion
 */
struct kst_ibv_op {
	struct ib_cqe cqe;
	struct completion done;
	enum ib_wc_status status;
	u32 byte_len;
	ktime_t start;
	s64 lat_ns;
};

/**
 * struct kst_ibv_buf - a kmalloc()ed buffer, DMA-mapped for its lifetime
 * @addr: its first byte
 * @dma: its DMA address
 * @len: bytes
 * @dir: direction of the mapping
 */
struct kst_ibv_buf {
	void *addr;
	u64 dma;
	u32 len;
	enum dma_data_direction dir;
};

/**
 * struct kst_ibv_conn - a client connection on raw verbs
 * @run: the run it belongs to, for messages
 * @id: its rdma_cm id, which owns the QP
 * @dev: the device the id is bound to
 * @pd: protection domain
 * @cq: completion queue, from the device's pool
 * @nr_cqe: entries taken from the pool
 * @cm_done: completed by each connection manager event
 * @cm_status: outcome of the last event
 * @connected: the connection was established
 * @rx: receive buffers; the responder's messages fill them in turn
 * @rx_op: their receives
 * @rx_first: first byte of the last message each of @rx held
 * @nr_rx: number of @rx
 * @rx_next: the receive the next message lands in
 * @tx: the message send buffer
 * @tx_op: its send
 * @rma: a read/write API transfer
 * @msg_size: largest message both sides take
 * @send_ops: RMA operations kept in flight at most
 * @rw_ctxs: read/write API transfers kept in flight at most
 * @max_msg_sz: largest transfer of the port
 * @peer_addr: address of the responder's buffer
 * @peer_rkey: its key
 * @peer_len: its bytes
 */
struct kst_ibv_conn {
	struct kst_run *run;
	struct rdma_cm_id *id;
	struct ib_device *dev;
	struct ib_pd *pd;
	struct ib_cq *cq;
	u32 nr_cqe;
	struct completion cm_done;
	int cm_status;
	bool connected;
	struct kst_ibv_buf rx[KST_CLI_RX];
	struct kst_ibv_op rx_op[KST_CLI_RX];
	u8 rx_first[KST_CLI_RX];
	u32 nr_rx;
	u32 rx_next;
	struct kst_ibv_buf tx;
	struct kst_ibv_op tx_op;
	struct kst_ibv_op rma;
	u32 msg_size;
	u32 send_ops;
	u32 rw_ctxs;
	u32 max_msg_sz;
	u64 peer_addr;
	u32 peer_rkey;
	u64 peer_len;
};

static void kst_ibv_op_done(struct ib_cq *cq, struct ib_wc *wc)
{
	struct kst_ibv_op *op = container_of(wc->wr_cqe, struct kst_ibv_op, cqe);

	op->status = wc->status;
	op->byte_len = wc->byte_len;
	op->lat_ns = ktime_to_ns(ktime_sub(ktime_get(), op->start));
	complete(&op->done);
}

static void kst_ibv_op_init(struct kst_ibv_op *op)
{
	op->cqe.done = kst_ibv_op_done;
	init_completion(&op->done);
}

/* Prepares @op for posting. */
static void kst_ibv_op_arm(struct kst_ibv_op *op)
{
	reinit_completion(&op->done);
	op->status = IB_WC_GENERAL_ERR;
	op->start = ktime_get();
}

/*
 * Waits for @op. After a timeout the QP is drained, so that @op has
 * completed, and its memory may be reused, when this returns.
 */
static int kst_ibv_wait(struct kst_ibv_conn *c, struct kst_ibv_op *op)
{
	if (!wait_for_completion_timeout(&op->done, KST_TIMEOUT)) {
		kst_diag(c->run, "operation timed out after %d s", KST_TIMEOUT_SECS);
		ib_drain_qp(c->id->qp);
		return -ETIMEDOUT;
	}
	if (op->status == IB_WC_SUCCESS)
		return 0;
	kst_diag(c->run, "completion: %s", ib_wc_status_msg(op->status));
	return op->status == IB_WC_WR_FLUSH_ERR ? -ECANCELED : -EIO;
}

static int kst_ibv_buf_map(struct kst_ibv_conn *c, struct kst_ibv_buf *b,
			   u32 len, enum dma_data_direction dir)
{
	b->addr = kzalloc(len, GFP_KERNEL);
	if (!b->addr)
		return -ENOMEM;
	b->dma = ib_dma_map_single(c->dev, b->addr, len, dir);
	if (ib_dma_mapping_error(c->dev, b->dma)) {
		kfree(b->addr);
		b->addr = NULL;
		return -ENOMEM;
	}
	b->len = len;
	b->dir = dir;
	return 0;
}

static void kst_ibv_buf_unmap(struct kst_ibv_conn *c, struct kst_ibv_buf *b)
{
	if (!b->addr)
		return;
	ib_dma_unmap_single(c->dev, b->dma, b->len, b->dir);
	kfree(b->addr);
	b->addr = NULL;
}

static struct ib_sge kst_ibv_sge(const struct kst_ibv_conn *c,
				 const struct kst_ibv_buf *b, u32 len)
{
	return (struct ib_sge){
		.addr = b->dma,
		.length = len,
		.lkey = c->pd->local_dma_lkey,
	};
}

static int kst_ibv_post_recv(struct kst_ibv_conn *c, u32 i)
{
	struct ib_sge sge = kst_ibv_sge(c, &c->rx[i], c->msg_size);
	struct ib_recv_wr wr = {
		.wr_cqe = &c->rx_op[i].cqe,
		.sg_list = &sge,
		.num_sge = 1,
	};

	ib_dma_sync_single_for_device(c->dev, c->rx[i].dma, c->msg_size,
				      DMA_FROM_DEVICE);
	kst_ibv_op_arm(&c->rx_op[i]);
	return ib_post_recv(c->id->qp, &wr, NULL);
}

/* Waits for the next message from the responder; the index of its buffer. */
static int kst_ibv_recv_next(struct kst_ibv_conn *c)
{
	u32 i = c->rx_next;
	int ret;

	ret = kst_ibv_wait(c, &c->rx_op[i]);
	if (ret)
		return ret;
	ib_dma_sync_single_for_cpu(c->dev, c->rx[i].dma, c->rx_op[i].byte_len,
				   DMA_FROM_DEVICE);
	c->rx_first[i] = *(u8 *)c->rx[i].addr;
	return i;
}

/* Done with the message in the next buffer: post it again. */
static int kst_ibv_rx_repost(struct kst_ibv_conn *c)
{
	u32 i = c->rx_next;

	c->rx_next = (c->rx_next + 1) % c->nr_rx;
	return kst_ibv_post_recv(c, i);
}

/* Sends the first @len bytes of the send buffer. */
static int kst_ibv_send(struct kst_ibv_conn *c, u32 len)
{
	struct ib_sge sge = kst_ibv_sge(c, &c->tx, len);
	struct ib_send_wr wr = {
		.wr_cqe = &c->tx_op.cqe,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = IB_WR_SEND,
		.send_flags = IB_SEND_SIGNALED,
	};

	ib_dma_sync_single_for_device(c->dev, c->tx.dma, len, DMA_TO_DEVICE);
	kst_ibv_op_arm(&c->tx_op);
	return ib_post_send(c->id->qp, &wr, NULL);
}

/* Copies the message in receive buffer @i and checks that it is a @type. */
static int kst_ibv_msg_get(struct kst_ibv_conn *c, u32 i,
			   enum kst_msg_type type, struct kst_msg *m)
{
	if (c->rx_op[i].byte_len < sizeof(*m))
		return -EPROTO;
	memcpy(m, c->rx[i].addr, sizeof(*m));
	if (le32_to_cpu(m->magic) != KST_MAGIC ||
	    le16_to_cpu(m->version) != KST_VERSION ||
	    le16_to_cpu(m->type) != type)
		return -EPROTO;
	return kst_ibv_rx_repost(c);
}

/*
 * Sends a command and waits for its reply. Returns the responder's status
 * as a negative errno.
 */
static int kst_ibv_cmd(struct kst_ibv_conn *c, enum kst_msg_type type, u64 off,
		       u64 len, u32 seed, u32 count)
{
	struct kst_msg *m = c->tx.addr, r;
	u32 status;
	int ret, i;

	kst_msg_init(m, type);
	m->offset = cpu_to_le64(off);
	m->len = cpu_to_le64(len);
	m->seed = cpu_to_le32(seed);
	m->count = cpu_to_le32(count);
	ret = kst_ibv_send(c, sizeof(*m));
	if (!ret)
		ret = kst_ibv_wait(c, &c->tx_op);
	if (ret)
		return ret;
	i = kst_ibv_recv_next(c);
	if (i < 0)
		return i;
	ret = kst_ibv_msg_get(c, i, KST_MSG_REPLY, &r);
	if (ret)
		return ret;
	status = le32_to_cpu(r.status);
	return status <= MAX_ERRNO ? -(int)status : -EPROTO;
}

/* Asks for the responder's descriptor of its buffer and reads it. */
static int kst_ibv_desc_get(struct kst_ibv_conn *c)
{
	struct kst_msg m;
	int ret, i;

	kst_msg_init(c->tx.addr, KST_MSG_DESC);
	ret = kst_ibv_send(c, sizeof(m));
	if (!ret)
		ret = kst_ibv_wait(c, &c->tx_op);
	if (ret)
		return ret;
	i = kst_ibv_recv_next(c);
	if (i < 0)
		return i;
	ret = kst_ibv_msg_get(c, i, KST_MSG_DESC, &m);
	if (ret)
		return ret;
	c->peer_addr = le64_to_cpu(m.addr);
	c->peer_len = le64_to_cpu(m.len);
	/* The verbs provider's keys are rkeys. */
	if (le64_to_cpu(m.key) > U32_MAX || !c->peer_len ||
	    c->peer_len > KST_REGION_MAX ||
	    le32_to_cpu(m.msg_size) < sizeof(m))
		return -EPROTO;
	c->peer_rkey = le64_to_cpu(m.key);
	c->msg_size = min(c->msg_size, le32_to_cpu(m.msg_size));
	return 0;
}

static int kst_ibv_cm_handler(struct rdma_cm_id *id, struct rdma_cm_event *ev)
{
	struct kst_ibv_conn *c = id->context;
	int status;

	switch (ev->event) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		status = rdma_resolve_route(id, KST_IBV_CM_TIMEOUT_MS);
		if (!status)
			return 0;
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		/* The test thread sets up the QP and connects. */
		status = 0;
		break;
	case RDMA_CM_EVENT_ESTABLISHED:
		status = kst_hello_check(ev->param.conn.private_data,
					 ev->param.conn.private_data_len);
		break;
	case RDMA_CM_EVENT_REJECTED:
		status = -ECONNREFUSED;
		break;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_CONNECT_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
		status = ev->status < 0 ? ev->status : -EHOSTUNREACH;
		break;
	default:
		/*
		 * Disconnected, address change or device removal: the
		 * operations in flight fail or time out, and the test thread
		 * then tears the connection down, which lets a removal go on.
		 */
		status = -ENOTCONN;
		break;
	}
	c->cm_status = status;
	complete(&c->cm_done);
	return 0;
}

static int kst_ibv_cm_wait(struct kst_ibv_conn *c, const char *what)
{
	if (!wait_for_completion_timeout(&c->cm_done, KST_TIMEOUT)) {
		kst_diag(c->run, "%s: no event in %d s", what, KST_TIMEOUT_SECS);
		return -ETIMEDOUT;
	}
	if (c->cm_status)
		kst_diag(c->run, "%s: %pe", what, ERR_PTR(c->cm_status));
	return c->cm_status;
}

static void kst_ibv_close(struct kst_ibv_conn *c)
{
	u32 i;

	if (c->id->qp) {
		if (c->connected)
			rdma_disconnect(c->id);
		/* Every receive and send has completed after this. */
		ib_drain_qp(c->id->qp);
		rdma_destroy_qp(c->id);
	}
	if (c->cq)
		ib_cq_pool_put(c->cq, c->nr_cqe);
	kst_ibv_buf_unmap(c, &c->tx);
	for (i = 0; i < c->nr_rx; i++)
		kst_ibv_buf_unmap(c, &c->rx[i]);
	if (c->pd)
		ib_dealloc_pd(c->pd);
	rdma_destroy_id(c->id);
	kfree(c);
}

/* Creates the PD, CQ, QP and buffers once the route is resolved. */
static int kst_ibv_setup(struct kst_ibv_conn *c, u32 msg_size, u32 rw_segs)
{
	struct ib_qp_init_attr qp_attr = {
		.qp_context = c,
		.sq_sig_type = IB_SIGNAL_REQ_WR,
		.qp_type = IB_QPT_RC,
		.port_num = c->id->port_num,
		.cap.max_send_sge = 1,
		.cap.max_recv_sge = 1,
	};
	const struct ib_device_attr *da;
	struct ib_port_attr pattr;
	u32 rw_wrs = 0, i;
	int ret;

	c->dev = c->id->device;
	da = &c->dev->attrs;
	ret = ib_query_port(c->dev, c->id->port_num, &pattr);
	if (ret)
		return ret;
	c->max_msg_sz = pattr.max_msg_sz;
	c->msg_size = min3(msg_size, (u32)KST_MSG_MAX, c->max_msg_sz);
	c->send_ops = min_t(u32, KST_SEND_OPS, da->max_qp_wr - 1);
	c->nr_rx = min_t(u32, KST_CLI_RX, da->max_qp_wr - 1);
	if (rw_segs) {
		/*
		 * As many segments in a work request as the device takes,
		 * and room for the work requests a transfer is split into,
		 * for as many transfers at once as the benchmark runs in the
		 * kfabric mode, if the queue takes them.
		 */
		qp_attr.cap.max_send_sge = min3(rw_segs, da->max_send_sge,
						da->max_sge_rd);
		if (!qp_attr.cap.max_send_sge)
			return -EINVAL;
		rw_wrs = DIV_ROUND_UP(rw_segs, qp_attr.cap.max_send_sge);
		c->rw_ctxs = clamp_t(u32, (da->max_qp_wr - c->send_ops - 1) / rw_wrs,
				     1, KST_RW_QD);
		qp_attr.cap.max_rdma_ctxs = c->rw_ctxs;
		rw_wrs *= c->rw_ctxs;
	}
	/* One more of each for the drain work requests of ib_drain_qp(). */
	qp_attr.cap.max_send_wr = c->send_ops + rw_wrs + 1;
	qp_attr.cap.max_recv_wr = c->nr_rx + 1;

	c->pd = ib_alloc_pd(c->dev, 0);
	if (IS_ERR(c->pd)) {
		ret = PTR_ERR(c->pd);
		c->pd = NULL;
		return ret;
	}
	c->nr_cqe = qp_attr.cap.max_send_wr + qp_attr.cap.max_recv_wr +
		    rdma_rw_max_send_wr(c->dev, c->id->port_num,
					qp_attr.cap.max_rdma_ctxs, 0);
	c->cq = ib_cq_pool_get(c->dev, c->nr_cqe, 0, IB_POLL_SOFTIRQ);
	if (IS_ERR(c->cq)) {
		ret = PTR_ERR(c->cq);
		c->cq = NULL;
		return ret;
	}
	qp_attr.send_cq = c->cq;
	qp_attr.recv_cq = c->cq;
	ret = rdma_create_qp(c->id, c->pd, &qp_attr);
	if (ret)
		return ret;

	ret = kst_ibv_buf_map(c, &c->tx, c->msg_size, DMA_TO_DEVICE);
	for (i = 0; i < c->nr_rx && !ret; i++) {
		kst_ibv_op_init(&c->rx_op[i]);
		ret = kst_ibv_buf_map(c, &c->rx[i], c->msg_size, DMA_FROM_DEVICE);
		/* The responder sends its descriptor as soon as it is connected. */
		if (!ret)
			ret = kst_ibv_post_recv(c, i);
	}
	return ret;
}

/*
 * Connects to the responder and reads its descriptor. The connection asks
 * for @region_len bytes of responder buffer and messages of up to
 * @msg_size bytes, and takes read/write API transfers of @rw_segs local
 * segments if that is not 0.
 */
static struct kst_ibv_conn *kst_ibv_open(struct kst_run *run, u64 region_len,
					 u32 msg_size, u32 rw_segs)
{
	const struct kfi_addr *dst = kst_run_dest(run), *src = kst_run_src(run);
	struct kst_hello hello = {
		.magic = cpu_to_le32(KST_MAGIC),
		.version = cpu_to_le16(KST_VERSION),
		.region_len = cpu_to_le32(min_t(u64, region_len, KST_REGION_MAX)),
	};
	struct rdma_conn_param param = {
		.private_data = &hello,
		.private_data_len = sizeof(hello),
		.flow_control = 1,
		.retry_count = 7,
		.rnr_retry_count = 7,
	};
	struct kst_ibv_conn *c;
	int ret;

	if (dst->format != KFI_ADDR_INET ||
	    (src && src->format != KFI_ADDR_INET)) {
		kst_diag(run, "raw verbs take IP addresses only");
		return ERR_PTR(-EAFNOSUPPORT);
	}
	c = kzalloc_obj(*c, GFP_KERNEL);
	if (!c)
		return ERR_PTR(-ENOMEM);
	c->run = run;
	init_completion(&c->cm_done);
	kst_ibv_op_init(&c->tx_op);
	kst_ibv_op_init(&c->rma);
	c->id = rdma_create_id(&init_net, kst_ibv_cm_handler, c, RDMA_PS_TCP,
			       IB_QPT_RC);
	if (IS_ERR(c->id)) {
		ret = PTR_ERR(c->id);
		kfree(c);
		kst_diag(run, "rdma_create_id: %pe", ERR_PTR(ret));
		return ERR_PTR(ret);
	}

	ret = rdma_resolve_addr(c->id, src ? (struct sockaddr *)&src->sa : NULL,
				&dst->sa, KST_IBV_CM_TIMEOUT_MS);
	if (ret)
		kst_diag(run, "rdma_resolve_addr: %pe", ERR_PTR(ret));
	else
		ret = kst_ibv_cm_wait(c, "resolving the route");
	if (ret)
		goto err;
	ret = kst_ibv_setup(c, msg_size, rw_segs);
	if (ret) {
		kst_diag(run, "setting up the QP: %pe", ERR_PTR(ret));
		goto err;
	}

	hello.msg_size = cpu_to_le32(c->msg_size);
	param.responder_resources = min_t(u32, c->dev->attrs.max_qp_rd_atom,
					  U8_MAX);
	param.initiator_depth = min_t(u32, c->dev->attrs.max_qp_init_rd_atom,
				      U8_MAX);
	ret = rdma_connect(c->id, &param);
	if (ret)
		kst_diag(run, "rdma_connect: %pe", ERR_PTR(ret));
	else
		ret = kst_ibv_cm_wait(c, "connecting");
	if (ret)
		goto err;
	c->connected = true;
	ret = kst_ibv_desc_get(c);
	if (ret) {
		kst_diag(run, "no valid descriptor from the responder: %pe",
			 ERR_PTR(ret));
		goto err;
	}
	return c;

err:
	kst_ibv_close(c);
	return ERR_PTR(ret);
}

/*
 * Sends @count messages of @len bytes and checks each echo, with the
 * pattern if @verify. Adds the time the round trips took to *@ns.
 */
static int kst_ibv_pingpong(struct kst_ibv_conn *c, u32 len, u32 count,
			    bool verify, s64 *ns)
{
	u32 k, seed = 0;
	ktime_t start;
	size_t bad;
	int ret, i;

	ret = kst_ibv_cmd(c, KST_MSG_ECHO, 0, 0, 0, count);
	if (ret) {
		kst_diag(c->run, "ECHO: %pe", ERR_PTR(ret));
		return ret;
	}
	start = ktime_get();
	for (k = 0; k < count; k++) {
		/* An echo that never lands cannot pass for one that did. */
		if (verify) {
			seed = kst_seed_not(c->rx_first[c->rx_next], 0);
			kst_pat_fill(c->tx.addr, 0, len, seed);
		}
		ret = kst_ibv_send(c, len);
		if (!ret)
			ret = kst_ibv_wait(c, &c->tx_op);
		if (ret) {
			kst_diag(c->run, "send of %u bytes: %pe", len, ERR_PTR(ret));
			return ret;
		}
		i = kst_ibv_recv_next(c);
		if (i < 0) {
			kst_diag(c->run, "echo of %u bytes: %pe", len, ERR_PTR(i));
			return i;
		}
		if (c->rx_op[i].byte_len != len) {
			kst_diag(c->run, "echo of %u bytes came back with %u",
				 len, c->rx_op[i].byte_len);
			return -EPROTO;
		}
		if (verify) {
			bad = kst_pat_check(c->rx[i].addr, 0, len, seed);
			if (bad < len) {
				kst_diag(c->run, "echo of %u bytes: byte %zu is wrong",
					 len, bad);
				return -EBADMSG;
			}
		}
		ret = kst_ibv_rx_repost(c);
		if (ret)
			return ret;
	}
	if (ns)
		*ns += ktime_to_ns(ktime_sub(ktime_get(), start));
	return 0;
}

enum kst_result kst_ibv_bench_send(struct kst_run *run)
{
	u64 sizes[KST_BENCH_SEND_SIZES];
	struct kst_ibv_conn *c;
	unsigned int i, n;
	int ret = 0;
	s64 ns;
	u32 k;

	c = kst_ibv_open(run, SZ_4K, kst_msg_size(run), 0);
	if (IS_ERR(c))
		return KST_FAIL;
	n = kst_bench_send_sizes(run, sizes, c->msg_size);
	kst_bench_header(run);
	for (i = 0; i < n && !ret; i++) {
		k = kst_bench_iters(run, sizes[i]);
		ns = 0;
		ret = kst_ibv_pingpong(c, sizes[i], 1, true, NULL);
		if (!ret)
			ret = kst_ibv_pingpong(c, sizes[i], k, false, &ns);
		if (!ret)
			kst_bench_row(run, "send_rtt", 1, sizes[i], k, ns, ns);
	}
	kst_ibv_close(c);
	return ret ? KST_FAIL : KST_PASS;
}

/**
 * struct kst_ibv_local - a client buffer for RMA
 * @buf: a buffer mapped once, for single RDMA READ or WRITE work requests
 * @big: blocks of pages, for the read/write API, which maps them
 * @rw: the buffer is @big
 * @len: bytes
 */
struct kst_ibv_local {
	struct kst_ibv_buf buf;
	struct kst_buf big;
	bool rw;
	u32 len;
};

static int kst_ibv_local_alloc(struct kst_ibv_conn *c, struct kst_ibv_local *l,
			       u32 len, bool rw, bool write)
{
	*l = (struct kst_ibv_local){ .rw = rw, .len = len };
	if (rw)
		return kst_buf_alloc(&l->big, len, get_order(KST_RW_BLOCK));
	return kst_ibv_buf_map(c, &l->buf, len,
			       write ? DMA_TO_DEVICE : DMA_FROM_DEVICE);
}

static void kst_ibv_local_free(struct kst_ibv_conn *c, struct kst_ibv_local *l)
{
	if (l->rw)
		kst_buf_free(&l->big);
	else
		kst_ibv_buf_unmap(c, &l->buf);
}

/* Posts one RDMA WRITE or READ of @l to the start of the responder's buffer. */
static int kst_ibv_rma_post(struct kst_ibv_conn *c, struct kst_ibv_local *l,
			    bool write, struct kst_ibv_op *op)
{
	struct ib_sge sge = kst_ibv_sge(c, &l->buf, l->len);
	struct ib_rdma_wr wr = {
		.wr = {
			.wr_cqe = &op->cqe,
			.sg_list = &sge,
			.num_sge = 1,
			.opcode = write ? IB_WR_RDMA_WRITE : IB_WR_RDMA_READ,
			.send_flags = IB_SEND_SIGNALED,
		},
		.remote_addr = c->peer_addr,
		.rkey = c->peer_rkey,
	};

	kst_ibv_op_arm(op);
	return ib_post_send(c->id->qp, &wr.wr, NULL);
}

/* One read/write API transfer of @l to or from the responder's buffer. */
static int kst_ibv_rw(struct kst_ibv_conn *c, struct kst_ibv_local *l,
		      bool write)
{
	enum dma_data_direction dir = write ? DMA_TO_DEVICE : DMA_FROM_DEVICE;
	struct bvec_iter iter = { .bi_size = l->len };
	u32 port = c->id->port_num;
	struct rdma_rw_ctx ctx;
	int ret;

	ret = rdma_rw_ctx_init_bvec(&ctx, c->id->qp, port, l->big.bvec,
				    l->big.nr, iter, c->peer_addr, c->peer_rkey,
				    dir);
	if (ret < 0) {
		kst_diag(c->run, "rdma_rw_ctx_init_bvec: %pe", ERR_PTR(ret));
		return ret;
	}
	kst_ibv_op_arm(&c->rma);
	ret = rdma_rw_ctx_post(&ctx, c->id->qp, port, &c->rma.cqe, NULL);
	if (ret) {
		kst_diag(c->run, "rdma_rw_ctx_post: %pe", ERR_PTR(ret));
		/* Part of the transfer may be running: wait for all of it. */
		ib_drain_qp(c->id->qp);
	} else {
		ret = kst_ibv_wait(c, &c->rma);
	}
	rdma_rw_ctx_destroy_bvec(&ctx, c->id->qp, port, l->big.bvec, l->big.nr,
				 dir);
	return ret;
}

static int kst_ibv_xfer(struct kst_ibv_conn *c, struct kst_ibv_local *l,
			bool write)
{
	int ret;

	if (l->rw)
		return kst_ibv_rw(c, l, write);
	ret = kst_ibv_rma_post(c, l, write, &c->rma);
	return ret ?: kst_ibv_wait(c, &c->rma);
}

/* Fills, or checks, @l with pattern @seed; the first wrong byte or U64_MAX. */
static u64 kst_ibv_local_pattern(struct kst_ibv_conn *c,
				 struct kst_ibv_local *l, u32 seed, bool check)
{
	size_t bad;

	if (l->rw)
		return kst_buf_pattern(&l->big, 0, l->len, 0, seed, check);
	if (!check) {
		kst_pat_fill(l->buf.addr, 0, l->len, seed);
		ib_dma_sync_single_for_device(c->dev, l->buf.dma, l->len,
					      l->buf.dir);
		return U64_MAX;
	}
	ib_dma_sync_single_for_cpu(c->dev, l->buf.dma, l->len, l->buf.dir);
	bad = kst_pat_check(l->buf.addr, 0, l->len, seed);
	return bad < l->len ? bad : U64_MAX;
}

/*
 * One checked transfer, as kst_rma_once() does in the kfabric mode: a
 * write goes over another pattern and the responder checks the result; a
 * read goes into a buffer holding another pattern and is checked here.
 */
static int kst_ibv_rma_once(struct kst_ibv_conn *c, struct kst_ibv_local *l,
			    bool write)
{
	u32 seed, other = get_random_u32();
	u64 bad;
	int ret;

	seed = kst_seed_not(kst_pat_byte(other, 0), 0);
	ret = kst_ibv_cmd(c, KST_MSG_FILL, 0, l->len, write ? other : seed, 0);
	if (ret) {
		kst_diag(c->run, "FILL of %u bytes: %pe", l->len, ERR_PTR(ret));
		return ret;
	}
	kst_ibv_local_pattern(c, l, write ? seed : other, false);
	ret = kst_ibv_xfer(c, l, write);
	if (ret)
		return ret;
	if (write) {
		ret = kst_ibv_cmd(c, KST_MSG_VERIFY, 0, l->len, seed, 0);
		if (ret)
			kst_diag(c->run, "VERIFY of %u bytes: %pe", l->len,
				 ERR_PTR(ret));
		return ret;
	}
	bad = kst_ibv_local_pattern(c, l, seed, true);
	if (bad != U64_MAX) {
		kst_diag(c->run, "read of %u bytes: byte %llu is wrong", l->len,
			 bad);
		return -EBADMSG;
	}
	return 0;
}

/* @n single RDMA operations of @l, @qd at a time, as kst_bench_window(). */
static int kst_ibv_window(struct kst_ibv_conn *c, struct kst_ibv_local *l,
			  bool write, u32 qd, u32 n, s64 *ns, s64 *lat)
{
	u32 posted = 0, done = 0, i;
	struct kst_ibv_op *ops, *op;
	ktime_t start;
	int ret = 0;

	ops = kzalloc_objs(*ops, qd, GFP_KERNEL);
	if (!ops)
		return -ENOMEM;
	for (i = 0; i < qd; i++)
		kst_ibv_op_init(&ops[i]);
	*lat = 0;
	start = ktime_get();
	while (done < n) {
		for (; posted < n && posted - done < qd; posted++) {
			ret = kst_ibv_rma_post(c, l, write, &ops[posted % qd]);
			if (ret)
				goto drain;
		}
		/* Send queue completions arrive in posting order. */
		op = &ops[done % qd];
		ret = kst_ibv_wait(c, op);
		if (ret)
			goto drain;
		*lat += op->lat_ns;
		done++;
	}
	*ns = ktime_to_ns(ktime_sub(ktime_get(), start));
	kfree(ops);
	return 0;

drain:
	kst_diag(c->run, "%s: %pe", write ? "write" : "read", ERR_PTR(ret));
	ib_drain_qp(c->id->qp);
	kfree(ops);
	return ret;
}

/**
 * struct kst_ibv_rw_op - a read/write API transfer of the benchmark
 * @ctx: its context, set up when it is posted
 * @op: its completion
 */
struct kst_ibv_rw_op {
	struct rdma_rw_ctx ctx;
	struct kst_ibv_op op;
};

/* @n read/write API transfers of @l, @qd at a time, as kst_bench_rw_window(). */
static int kst_ibv_rw_window(struct kst_ibv_conn *c, struct kst_ibv_local *l,
			     bool write, u32 qd, u32 n, s64 *ns, s64 *lat)
{
	enum dma_data_direction dir = write ? DMA_TO_DEVICE : DMA_FROM_DEVICE;
	struct bvec_iter iter = { .bi_size = l->len };
	u32 port = c->id->port_num, posted = 0, done = 0, i;
	struct kst_ibv_rw_op *rws, *rw;
	ktime_t start;
	int ret = 0;

	rws = kzalloc_objs(*rws, qd, GFP_KERNEL);
	if (!rws)
		return -ENOMEM;
	for (i = 0; i < qd; i++)
		kst_ibv_op_init(&rws[i].op);
	*lat = 0;
	start = ktime_get();
	while (done < n) {
		for (; posted < n && posted - done < qd; posted++) {
			rw = &rws[posted % qd];
			ret = rdma_rw_ctx_init_bvec(&rw->ctx, c->id->qp, port,
						    l->big.bvec, l->big.nr, iter,
						    c->peer_addr, c->peer_rkey,
						    dir);
			if (ret < 0)
				goto drain;
			kst_ibv_op_arm(&rw->op);
			ret = rdma_rw_ctx_post(&rw->ctx, c->id->qp, port,
					       &rw->op.cqe, NULL);
			if (ret) {
				/* Part of it may be running: drain, then destroy. */
				posted++;
				goto drain;
			}
		}
		rw = &rws[done % qd];
		ret = kst_ibv_wait(c, &rw->op);
		if (ret)
			goto drain;
		rdma_rw_ctx_destroy_bvec(&rw->ctx, c->id->qp, port, l->big.bvec,
					 l->big.nr, dir);
		*lat += rw->op.lat_ns;
		done++;
	}
	*ns = ktime_to_ns(ktime_sub(ktime_get(), start));
	kfree(rws);
	return 0;

drain:
	kst_diag(c->run, "%s: %pe", write ? "rw_write" : "rw_read", ERR_PTR(ret));
	ib_drain_qp(c->id->qp);
	for (; done < posted; done++)
		rdma_rw_ctx_destroy_bvec(&rws[done % qd].ctx, c->id->qp, port,
					 l->big.bvec, l->big.nr, dir);
	kfree(rws);
	return ret;
}

/* One size of an RMA case: a checked transfer, then the timed ones. */
static int kst_ibv_rma_size(struct kst_ibv_conn *c, struct kst_ibv_local *l,
			    bool write, u32 k)
{
	const char *rw_name = write ? "rw_write" : "rw_read";
	const char *name = write ? "write" : "read";
	struct kst_run *run = c->run;
	s64 ns, lat;
	int ret;
	u32 kq;

	ret = kst_ibv_rma_once(c, l, write);
	if (ret)
		return ret;
	if (!l->rw) {
		/* At least as many as are to be in flight. */
		kq = max(k, c->send_ops);
		ret = kst_ibv_window(c, l, write, 1, k, &ns, &lat);
		if (!ret)
			kst_bench_row(run, name, 1, l->len, k, ns, lat);
		if (!ret && c->send_ops > 1)
			ret = kst_ibv_window(c, l, write, c->send_ops, kq, &ns,
					     &lat);
		if (!ret && c->send_ops > 1)
			kst_bench_row(run, name, c->send_ops, l->len, kq, ns, lat);
		return ret;
	}
	ret = kst_ibv_rw_window(c, l, write, 1, k, &ns, &lat);
	if (!ret)
		kst_bench_row(run, rw_name, 1, l->len, k, ns, lat);
	kq = max(k, c->rw_ctxs);
	if (!ret && c->rw_ctxs > 1)
		ret = kst_ibv_rw_window(c, l, write, c->rw_ctxs, kq, &ns, &lat);
	if (!ret && c->rw_ctxs > 1)
		kst_bench_row(run, rw_name, c->rw_ctxs, l->len, kq, ns, lat);
	return ret;
}

enum kst_result kst_ibv_bench_rma(struct kst_run *run, bool write)
{
	u64 sizes[KST_BENCH_RMA_SIZES], direct;
	struct kst_ibv_local l;
	struct kst_ibv_conn *c;
	unsigned int i, n;
	u32 rw_segs = 0;
	int ret = 0;

	n = kst_bench_rma_sizes(run, sizes);
	if (!n) {
		kst_skip(run, "sizes= is below 64 bytes");
		return KST_SKIP;
	}
	/* Larger transfers than a message go through the read/write API. */
	if (sizes[n - 1] > KST_MSG_MAX)
		rw_segs = DIV_ROUND_UP(sizes[n - 1], PAGE_SIZE);
	c = kst_ibv_open(run, sizes[n - 1], SZ_4K, rw_segs);
	if (IS_ERR(c))
		return KST_FAIL;
	direct = min_t(u64, KST_MSG_MAX, c->max_msg_sz);
	kst_bench_header(run);
	for (i = 0; i < n && !ret; i++) {
		if (sizes[i] > c->peer_len || (sizes[i] > direct && !rw_segs))
			continue;
		ret = kst_ibv_local_alloc(c, &l, sizes[i], sizes[i] > direct,
					  write);
		if (ret)
			break;
		ret = kst_ibv_rma_size(c, &l, write,
				       kst_bench_iters(run, sizes[i]));
		kst_ibv_local_free(c, &l);
	}
	kst_ibv_close(c);
	return ret ? KST_FAIL : KST_PASS;
}
