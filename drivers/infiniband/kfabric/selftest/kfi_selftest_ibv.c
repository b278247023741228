// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric self-test: the raw verbs baseline of the benchmark.
 *
 * "bench api=verbs" runs the benchmark cases of kfi_selftest_bench.c on a
 * backend (struct kst_bench_ops) written directly against rdma_cm and the
 * kernel verbs, the way a kverbs ULP would: an RC QP that rdma_cm creates
 * and moves through its states, a completion queue from the device's pool
 * polled in softirq context, message and RMA buffers DMA-mapped once and
 * used with the PD's local_dma_lkey, and the R/W API for transfers larger
 * than a message. It connects to the same responder ("serve", on the
 * kfabric verbs provider) and speaks the same protocol. The cases, down to
 * the loops that post and wait, are the same code in both modes, so the
 * ratio of the two modes' rows is what kfabric costs on the client side.
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
 * @bc: what the benchmark cases see of it
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
 * @peer_addr: address of the responder's buffer
 * @peer_rkey: its key
 */
struct kst_ibv_conn {
	struct kst_bench_conn bc;
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
	u64 peer_addr;
	u32 peer_rkey;
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
		kst_diag(c->bc.run, "operation timed out after %d s",
			 KST_TIMEOUT_SECS);
		ib_drain_qp(c->id->qp);
		return -ETIMEDOUT;
	}
	if (op->status == IB_WC_SUCCESS)
		return 0;
	kst_diag(c->bc.run, "completion: %s", ib_wc_status_msg(op->status));
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
	struct ib_sge sge = kst_ibv_sge(c, &c->rx[i], c->bc.msg_size);
	struct ib_recv_wr wr = {
		.wr_cqe = &c->rx_op[i].cqe,
		.sg_list = &sge,
		.num_sge = 1,
	};

	ib_dma_sync_single_for_device(c->dev, c->rx[i].dma, c->bc.msg_size,
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
	ret = kst_msg_check(c->rx[i].addr, c->rx_op[i].byte_len, KST_MSG_DESC,
			    &m);
	ret = ret ?: kst_ibv_rx_repost(c);
	if (ret)
		return ret;
	c->peer_addr = le64_to_cpu(m.addr);
	c->bc.peer_len = le64_to_cpu(m.len);
	/* The verbs provider's keys are rkeys. */
	if (le64_to_cpu(m.key) > U32_MAX || !c->bc.peer_len ||
	    c->bc.peer_len > KST_REGION_MAX ||
	    le32_to_cpu(m.msg_size) < sizeof(m))
		return -EPROTO;
	c->peer_rkey = le64_to_cpu(m.key);
	c->bc.msg_size = min(c->bc.msg_size, le32_to_cpu(m.msg_size));
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
		kst_diag(c->bc.run, "%s: no event in %d s", what,
			 KST_TIMEOUT_SECS);
		return -ETIMEDOUT;
	}
	if (c->cm_status)
		kst_diag(c->bc.run, "%s: %pe", what, ERR_PTR(c->cm_status));
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
	c->bc.direct = min_t(u64, KST_MSG_MAX, pattr.max_msg_sz);
	c->bc.msg_size = min3(msg_size, (u32)KST_MSG_MAX, pattr.max_msg_sz);
	c->bc.send_ops = min_t(u32, KST_SEND_OPS, da->max_qp_wr - 1);
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
		c->bc.rw_ctxs = clamp_t(u32, (da->max_qp_wr - c->bc.send_ops - 1) /
					rw_wrs, 1, KST_RW_QD);
		qp_attr.cap.max_rdma_ctxs = c->bc.rw_ctxs;
		rw_wrs *= c->bc.rw_ctxs;
	}
	/* One more of each for the drain work requests of ib_drain_qp(). */
	qp_attr.cap.max_send_wr = c->bc.send_ops + rw_wrs + 1;
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

	ret = kst_ibv_buf_map(c, &c->tx, c->bc.msg_size, DMA_TO_DEVICE);
	for (i = 0; i < c->nr_rx && !ret; i++) {
		kst_ibv_op_init(&c->rx_op[i]);
		ret = kst_ibv_buf_map(c, &c->rx[i], c->bc.msg_size, DMA_FROM_DEVICE);
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
	c->bc.run = run;
	init_completion(&c->cm_done);
	kst_ibv_op_init(&c->tx_op);
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

	hello.msg_size = cpu_to_le32(c->bc.msg_size);
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

static struct kst_bench_conn *kst_ibv_bench_open(struct kst_run *run,
						 u64 region_len, u32 msg_size,
						 u64 rw_len)
{
	struct kst_ibv_conn *c;
	u32 rw_segs = 0;

	/* Larger transfers than a message go through the read/write API. */
	if (rw_len > KST_MSG_MAX)
		rw_segs = DIV_ROUND_UP(rw_len, PAGE_SIZE);
	c = kst_ibv_open(run, region_len, msg_size, rw_segs);
	if (IS_ERR(c))
		return ERR_CAST(c);
	c->bc.rw_size = rw_segs ? rw_len : 0;
	c->bc.tx = c->tx.addr;
	return &c->bc;
}

static void kst_ibv_bench_close(struct kst_bench_conn *bc)
{
	kst_ibv_close(container_of(bc, struct kst_ibv_conn, bc));
}

static int kst_ibv_bench_msg_send(struct kst_bench_conn *bc, u32 len)
{
	struct kst_ibv_conn *c = container_of(bc, struct kst_ibv_conn, bc);
	int ret;

	ret = kst_ibv_send(c, len);
	return ret ?: kst_ibv_wait(c, &c->tx_op);
}

static int kst_ibv_bench_msg_recv(struct kst_bench_conn *bc, const void **data,
				  u32 *len)
{
	struct kst_ibv_conn *c = container_of(bc, struct kst_ibv_conn, bc);
	int i;

	i = kst_ibv_recv_next(c);
	if (i < 0)
		return i;
	*data = c->rx[i].addr;
	*len = c->rx_op[i].byte_len;
	return 0;
}

static int kst_ibv_bench_msg_repost(struct kst_bench_conn *bc)
{
	return kst_ibv_rx_repost(container_of(bc, struct kst_ibv_conn, bc));
}

static u8 kst_ibv_bench_rx_first(struct kst_bench_conn *bc)
{
	struct kst_ibv_conn *c = container_of(bc, struct kst_ibv_conn, bc);

	return c->rx_first[c->rx_next];
}

/**
 * struct kst_ibv_local - a client buffer for RMA
 * @bb: what the benchmark cases see of it
 * @buf: a buffer mapped once, for single RDMA READ or WRITE work requests
 * @big: blocks of pages, for the read/write API, which maps them
 */
struct kst_ibv_local {
	struct kst_bench_buf bb;
	struct kst_ibv_buf buf;
	struct kst_buf big;
};

/*
 * The buffer of single operations is DMA-mapped once, as a kverbs ULP
 * does with the buffers of every I/O, so it counts as mapped.
 */
static struct kst_bench_buf *kst_ibv_bench_buf_alloc(struct kst_bench_conn *bc,
						     u64 len, bool rw,
						     bool write)
{
	struct kst_ibv_conn *c = container_of(bc, struct kst_ibv_conn, bc);
	struct kst_ibv_local *l;
	int ret;

	l = kzalloc_obj(*l, GFP_KERNEL);
	if (!l)
		return ERR_PTR(-ENOMEM);
	l->bb = (struct kst_bench_buf){ .len = len, .rw = rw, .mapped = !rw };
	if (rw)
		ret = kst_buf_alloc(&l->big, len, get_order(KST_RW_BLOCK));
	else
		ret = kst_ibv_buf_map(c, &l->buf, len,
				      write ? DMA_TO_DEVICE : DMA_FROM_DEVICE);
	if (ret) {
		kfree(l);
		return ERR_PTR(ret);
	}
	return &l->bb;
}

static void kst_ibv_bench_buf_free(struct kst_bench_conn *bc,
				   struct kst_bench_buf *bb)
{
	struct kst_ibv_conn *c = container_of(bc, struct kst_ibv_conn, bc);
	struct kst_ibv_local *l = container_of(bb, struct kst_ibv_local, bb);

	if (bb->rw)
		kst_buf_free(&l->big);
	else
		kst_ibv_buf_unmap(c, &l->buf);
	kfree(l);
}

/* Posts one RDMA WRITE or READ of @l to the start of the responder's buffer. */
static int kst_ibv_rma_post(struct kst_ibv_conn *c, struct kst_ibv_local *l,
			    bool write, struct kst_ibv_op *op)
{
	struct ib_sge sge = kst_ibv_sge(c, &l->buf, l->bb.len);
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

/* Sets up @ctx for a read/write API transfer of @l. */
static int kst_ibv_rw_init(struct kst_ibv_conn *c, struct kst_ibv_local *l,
			   struct rdma_rw_ctx *ctx, enum dma_data_direction dir)
{
	struct bvec_iter iter = { .bi_size = l->bb.len };

	return rdma_rw_ctx_init_bvec(ctx, c->id->qp, c->id->port_num,
				     l->big.bvec, l->big.nr, iter, c->peer_addr,
				     c->peer_rkey, dir);
}

static void kst_ibv_rw_destroy(struct kst_ibv_conn *c, struct kst_ibv_local *l,
			       struct rdma_rw_ctx *ctx,
			       enum dma_data_direction dir)
{
	rdma_rw_ctx_destroy_bvec(ctx, c->id->qp, c->id->port_num, l->big.bvec,
				 l->big.nr, dir);
}

static u64 kst_ibv_bench_buf_pattern(struct kst_bench_conn *bc,
				     struct kst_bench_buf *bb, u32 seed,
				     bool check)
{
	struct kst_ibv_conn *c = container_of(bc, struct kst_ibv_conn, bc);
	struct kst_ibv_local *l = container_of(bb, struct kst_ibv_local, bb);
	u64 len = bb->len;
	size_t bad;

	if (l->bb.rw)
		return kst_buf_pattern(&l->big, 0, len, 0, seed, check);
	if (!check) {
		kst_pat_fill(l->buf.addr, 0, len, seed);
		ib_dma_sync_single_for_device(c->dev, l->buf.dma, len,
					      l->buf.dir);
		return U64_MAX;
	}
	ib_dma_sync_single_for_cpu(c->dev, l->buf.dma, len, l->buf.dir);
	bad = kst_pat_check(l->buf.addr, 0, len, seed);
	return bad < len ? bad : U64_MAX;
}

/**
 * struct kst_ibv_slot - an operation of a window
 * @ctx: the read/write API context of a transfer through it
 * @op: its completion
 * @live: @ctx is set up and not torn down yet
 */
struct kst_ibv_slot {
	struct rdma_rw_ctx ctx;
	struct kst_ibv_op op;
	bool live;
};

/**
 * struct kst_ibv_win - a window of operations on raw verbs
 * @w: what the benchmark cases see of it
 * @c: the connection
 * @l: the buffer
 * @dir: direction of read/write API transfers
 * @qd: number of @slot
 * @slot: one per operation in flight
 */
struct kst_ibv_win {
	struct kst_bench_win w;
	struct kst_ibv_conn *c;
	struct kst_ibv_local *l;
	enum dma_data_direction dir;
	u32 qd;
	struct kst_ibv_slot slot[] __counted_by(qd);
};

static struct kst_bench_win *kst_ibv_bench_win_alloc(struct kst_bench_conn *bc,
						     struct kst_bench_buf *bb,
						     bool write, u32 qd)
{
	struct kst_ibv_win *iw;
	u32 i;

	iw = kzalloc_flex(*iw, slot, qd, GFP_KERNEL);
	if (!iw)
		return ERR_PTR(-ENOMEM);
	for (i = 0; i < qd; i++)
		kst_ibv_op_init(&iw->slot[i].op);
	iw->w = (struct kst_bench_win){ .c = bc, .b = bb, .write = write };
	iw->c = container_of(bc, struct kst_ibv_conn, bc);
	iw->l = container_of(bb, struct kst_ibv_local, bb);
	iw->dir = write ? DMA_TO_DEVICE : DMA_FROM_DEVICE;
	return &iw->w;
}

static void kst_ibv_bench_win_free(struct kst_bench_win *w)
{
	kfree(container_of(w, struct kst_ibv_win, w));
}

/* As on kfabric, a transfer whose post failed is torn down by the abort. */
static int kst_ibv_bench_post(struct kst_bench_win *w, u32 i)
{
	struct kst_ibv_win *iw = container_of(w, struct kst_ibv_win, w);
	struct kst_ibv_slot *s = &iw->slot[i];
	int ret;

	if (!w->b->rw)
		return kst_ibv_rma_post(iw->c, iw->l, w->write, &s->op);
	ret = kst_ibv_rw_init(iw->c, iw->l, &s->ctx, iw->dir);
	if (ret < 0)
		return ret;
	s->live = true;
	kst_ibv_op_arm(&s->op);
	return rdma_rw_ctx_post(&s->ctx, iw->c->id->qp, iw->c->id->port_num,
				&s->op.cqe, NULL);
}

static int kst_ibv_bench_complete(struct kst_bench_win *w, u32 i,
				  s64 *lat_ns)
{
	struct kst_ibv_win *iw = container_of(w, struct kst_ibv_win, w);
	struct kst_ibv_slot *s = &iw->slot[i];
	int ret;

	ret = kst_ibv_wait(iw->c, &s->op);
	if (ret)
		return ret;
	if (s->live) {
		kst_ibv_rw_destroy(iw->c, iw->l, &s->ctx, iw->dir);
		s->live = false;
	}
	*lat_ns = s->op.lat_ns;
	return 0;
}

static void kst_ibv_bench_abort(struct kst_bench_win *w)
{
	struct kst_ibv_win *iw = container_of(w, struct kst_ibv_win, w);
	u32 i;

	ib_drain_qp(iw->c->id->qp);
	for (i = 0; i < iw->qd; i++) {
		if (iw->slot[i].live)
			kst_ibv_rw_destroy(iw->c, iw->l, &iw->slot[i].ctx,
					   iw->dir);
	}
}

/* Raw verbs have no per-operation mapping to compare with: no buf_unmap. */
const struct kst_bench_ops kst_ibv_bench_ops = {
	.open = kst_ibv_bench_open,
	.close = kst_ibv_bench_close,
	.msg_send = kst_ibv_bench_msg_send,
	.msg_recv = kst_ibv_bench_msg_recv,
	.msg_repost = kst_ibv_bench_msg_repost,
	.rx_first = kst_ibv_bench_rx_first,
	.buf_alloc = kst_ibv_bench_buf_alloc,
	.buf_free = kst_ibv_bench_buf_free,
	.buf_pattern = kst_ibv_bench_buf_pattern,
	.win_alloc = kst_ibv_bench_win_alloc,
	.win_free = kst_ibv_bench_win_free,
	.post = kst_ibv_bench_post,
	.complete = kst_ibv_bench_complete,
	.abort = kst_ibv_bench_abort,
};
