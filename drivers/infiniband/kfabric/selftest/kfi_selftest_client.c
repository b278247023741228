// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric self-test: the client: its connections on kfabric, the tests and the
 * kfabric backend of the benchmark.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitops.h>
#include <linux/bvec.h>
#include <linux/completion.h>
#include <linux/gfp.h>
#include <linux/ktime.h>
#include <linux/math64.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/string_choices.h>
#include <rdma/kfi/kfi.h>
#include <rdma/kfi/rw.h>

#include "kfi_selftest.h"

/**
 * struct kst_op - an operation the test thread waits for
 * @cqe: its completion object
 * @done: completed by the completion callback
 * @status: completion status
 * @flags: completion flags (%KFI_WC_*)
 * @byte_len: bytes received
 * @imm: immediate data received
 * @start: when it was posted
 * @lat_ns: nanoseconds from @start to its completion
 */
struct kst_op {
	struct kfi_cqe cqe;
	struct completion done;
	int status;
	u32 flags;
	u32 byte_len;
	u32 imm;
	ktime_t start;
	s64 lat_ns;
};

static void kst_op_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct kst_op *op = container_of(wc->cqe, struct kst_op, cqe);

	op->status = wc->status;
	op->flags = wc->flags;
	op->byte_len = wc->byte_len;
	op->imm = wc->imm_data;
	op->lat_ns = ktime_to_ns(ktime_sub(ktime_get(), op->start));
	complete(&op->done);
}

static void kst_op_init(struct kst_op *op)
{
	op->cqe.done = kst_op_done;
	init_completion(&op->done);
}

/* Prepares @op for posting. */
static void kst_op_arm(struct kst_op *op)
{
	reinit_completion(&op->done);
	op->status = -EINPROGRESS;
	op->start = ktime_get();
}

/**
 * struct kst_rx - a receive buffer of a client connection
 * @op: the receive
 * @kvec: the buffer
 * @first: its first byte, as of the last message it held
 */
struct kst_rx {
	struct kst_op op;
	struct kvec kvec;
	u8 first;
};

/**
 * struct kst_peer - what the responder's descriptor says
 * @addr: address of its buffer
 * @key: key of its buffer
 * @len: bytes of its buffer
 * @msg_size: largest message it receives
 * @flags: %KST_DESC_* flags
 */
struct kst_peer {
	u64 addr;
	u64 key;
	u64 len;
	u32 msg_size;
	u32 flags;
};

/**
 * struct kst_conn - a client connection
 * @run: the run it belongs to, for messages
 * @cq: its completion queue
 * @ep: its endpoint
 * @connected: completed with the outcome of the connection attempt
 * @disconnected: completed when the connection is gone
 * @cm_status: 0 when connected, else why not
 * @cm_done: @connected has been completed
 * @rejected: the responder rejected the request
 * @rej: the rejection's private data
 * @rej_len: bytes of @rej received
 * @rx: receive buffers; the responder's messages fill them in turn
 * @nr_rx: number of @rx
 * @rx_next: the receive the next message lands in
 * @tx: the message send
 * @tx_kvec: its buffer
 * @rma: an RMA operation or read/write helper transfer
 * @msg_size: largest message both sides take
 * @send_ops: send-side operations the endpoint may have outstanding
 * @rw_ctxs: read/write helper transfers the endpoint may have outstanding
 * @timeout: jiffies one operation, or command, may take
 * @peer: the responder's buffer
 */
struct kst_conn {
	struct kst_run *run;
	struct kfi_cq *cq;
	struct kfi_ep *ep;
	struct completion connected;
	struct completion disconnected;
	int cm_status;
	bool cm_done;
	bool rejected;
	struct kst_reject rej;
	u32 rej_len;
	struct kst_rx rx[KST_CLI_RX];
	u32 nr_rx;
	u32 rx_next;
	struct kst_op tx;
	struct kvec tx_kvec;
	struct kst_op rma;
	u32 msg_size;
	u32 send_ops;
	u32 rw_ctxs;
	unsigned long timeout;
	struct kst_peer peer;
};

/**
 * struct kst_conn_param - what a client connection is set up for
 * @region_len: responder buffer to ask for
 * @msg_size: largest message to send
 * @rw_size: bytes per read/write helper transfer; 0 without the helper
 * @rw_segs: segments of the local buffer of a helper transfer
 * @rw_ctxs: helper transfers in flight at once
 * @magic: magic of the connection request
 * @version: protocol version of the connection request
 */
struct kst_conn_param {
	u64 region_len;
	u32 msg_size;
	u64 rw_size;
	u32 rw_segs;
	u32 rw_ctxs;
	u32 magic;
	u16 version;
};

static void kst_param(struct kst_conn_param *p, u64 region_len, u32 msg_size)
{
	*p = (struct kst_conn_param){
		.region_len = region_len,
		.msg_size = msg_size,
		.magic = KST_MAGIC,
		.version = KST_VERSION,
	};
}

/*
 * Send queue slots one helper transfer can take when the core splits it
 * into RMA operations: kfi_ep_alloc() adds them to the endpoint's send
 * queue and completion queue reservation.
 */
static u64 kst_rw_ops(const struct kfi_domain_attr *a, u64 len, u32 segs)
{
	return DIV_ROUND_UP(segs, a->max_rma_sge) +
	       DIV64_U64_ROUND_UP(len, a->max_rma_size);
}

/*
 * Asks for read/write helper transfers of up to @len bytes, as much of it
 * as the domain's send queue can take, and for up to @ctxs of them at once
 * as far as the queue has room for more. Segments are counted in pages, as
 * providers that register memory for the helper do, which also covers
 * local buffers made of larger blocks.
 */
static void kst_param_rw(struct kst_conn_param *p, const struct kfi_domain_attr *a,
			 u64 len, u32 ctxs)
{
	u32 room = a->max_send_ops - min_t(u32, KST_SEND_OPS, a->max_send_ops);
	u64 ops;

	len = min(len, a->max_mr_size);
	while (len > PAGE_SIZE &&
	       kst_rw_ops(a, len, DIV64_U64_ROUND_UP(len, PAGE_SIZE)) > room)
		len /= 2;
	p->rw_size = len;
	p->rw_segs = DIV64_U64_ROUND_UP(len, PAGE_SIZE);
	ops = kst_rw_ops(a, len, p->rw_segs);
	p->rw_ctxs = clamp_t(u64, div64_u64(room, ops), 1, ctxs);
}

/**
 * kst_hello_check() - check the private data of an accept
 * @data: the private data
 * @len: its bytes
 *
 * Return: 0 if it is a &struct kst_hello of this protocol version, else
 * -EPROTO.
 */
int kst_hello_check(const void *data, u32 len)
{
	struct kst_hello h;

	/* Some providers carry no accept data; the descriptor suffices. */
	if (len < sizeof(h))
		return 0;
	memcpy(&h, data, sizeof(h));
	if (le32_to_cpu(h.magic) != KST_MAGIC ||
	    le16_to_cpu(h.version) != KST_VERSION)
		return -EPROTO;
	return 0;
}

static void kst_conn_cm_handler(void *context, const struct kfi_cm_event *ev)
{
	struct kst_conn *c = context;
	int status;

	switch (ev->type) {
	case KFI_CM_CONNECTED:
		status = kst_hello_check(ev->private_data, ev->private_data_len);
		break;
	case KFI_CM_REJECTED:
		c->rejected = true;
		c->rej_len = min_t(u32, ev->private_data_len, sizeof(c->rej));
		if (c->rej_len)
			memcpy(&c->rej, ev->private_data, c->rej_len);
		status = -ECONNREFUSED;
		break;
	case KFI_CM_UNREACHABLE:
		status = ev->status ?: -EHOSTUNREACH;
		break;
	default:
		/* DISCONNECTED, ADDR_CHANGE or DOMAIN_REMOVAL: it is over. */
		status = -ENOTCONN;
		complete_all(&c->disconnected);
		break;
	}
	if (!c->cm_done) {
		c->cm_done = true;
		c->cm_status = status;
		complete(&c->connected);
	}
}

/* Bytes per second the slowest provider and responder may manage. */
#define KST_MIN_RATE		SZ_64K

/*
 * Time an operation or command on @len bytes may take: the base timeout,
 * plus @len at KST_MIN_RATE. Soft-RoCE in an emulated guest moves data,
 * and the responder computes patterns, at a few hundred KiB/s.
 */
static unsigned long kst_timeout(u64 len)
{
	return KST_TIMEOUT + div64_u64(len, KST_MIN_RATE) * HZ;
}

/*
 * Waits for @op. After a timeout the endpoint is drained, so that @op has
 * completed, and its memory may be reused, when this returns.
 */
static int kst_wait(struct kst_conn *c, struct kst_op *op)
{
	if (!wait_for_completion_timeout(&op->done, c->timeout)) {
		kst_diag(c->run, "operation timed out after %lu s",
			 c->timeout / HZ);
		kfi_ep_drain(c->ep);
		return -ETIMEDOUT;
	}
	return op->status;
}

static int kst_post_recv(struct kst_conn *c, struct kst_rx *rx)
{
	struct kfi_iov iov;
	struct kfi_msg msg = { .iov = &iov, .niov = 1, .cqe = &rx->op.cqe };

	kfi_iov_kvec(&iov, &rx->kvec, 1);
	kst_op_arm(&rx->op);
	return kfi_recv(c->ep, &msg, 0);
}

/* Waits for the next message from the responder. */
static struct kst_rx *kst_recv_next(struct kst_conn *c)
{
	struct kst_rx *rx = &c->rx[c->rx_next];
	int ret;

	ret = kst_wait(c, &rx->op);
	if (ret)
		return ERR_PTR(ret);
	rx->first = *(u8 *)rx->kvec.iov_base;
	return rx;
}

/* Done with the message in @rx: post it again for the one after next. */
static int kst_rx_repost(struct kst_conn *c, struct kst_rx *rx)
{
	c->rx_next = (c->rx_next + 1) % c->nr_rx;
	return kst_post_recv(c, rx);
}

/* Sends the first @len bytes of the send buffer. */
static int kst_send(struct kst_conn *c, u32 len, u32 flags, u32 imm)
{
	struct kfi_iov iov;
	struct kfi_msg msg = {
		.iov = &iov,
		.niov = 1,
		.cqe = &c->tx.cqe,
		.imm_data = imm,
	};

	c->tx_kvec.iov_len = len;
	kfi_iov_kvec(&iov, &c->tx_kvec, 1);
	kst_op_arm(&c->tx);
	return kfi_send(c->ep, &msg, flags);
}

/* Copies the message in @rx and checks that it is a @type message. */
static int kst_msg_get(const struct kst_rx *rx, enum kst_msg_type type,
		       struct kst_msg *m)
{
	return kst_msg_check(rx->kvec.iov_base, rx->op.byte_len, type, m);
}

static int kst_cmd_post(struct kst_conn *c, enum kst_msg_type type, u64 off,
			u64 len, u32 seed, u32 count)
{
	struct kst_msg *m = c->tx_kvec.iov_base;

	kst_msg_init(m, type);
	m->offset = cpu_to_le64(off);
	m->len = cpu_to_le64(len);
	m->seed = cpu_to_le32(seed);
	m->count = cpu_to_le32(count);
	return kst_send(c, sizeof(*m), 0, 0);
}

/*
 * Waits for a command to go out and for its reply. Returns the
 * responder's status as a negative errno; @offset, if not NULL, gets the
 * reply's offset.
 */
static int kst_cmd_wait(struct kst_conn *c, u64 *offset)
{
	struct kst_rx *rx;
	struct kst_msg m;
	u32 status;
	int ret;

	ret = kst_wait(c, &c->tx);
	if (ret)
		return ret;
	rx = kst_recv_next(c);
	if (IS_ERR(rx))
		return PTR_ERR(rx);
	ret = kst_msg_get(rx, KST_MSG_REPLY, &m);
	if (!ret)
		ret = kst_rx_repost(c, rx);
	if (ret)
		return ret;
	if (offset)
		*offset = le64_to_cpu(m.offset);
	status = le32_to_cpu(m.status);
	return status <= MAX_ERRNO ? -(int)status : -EPROTO;
}

static int kst_cmd(struct kst_conn *c, enum kst_msg_type type, u64 off,
		   u64 len, u32 seed, u32 count)
{
	int ret;

	ret = kst_cmd_post(c, type, off, len, seed, count);
	if (ret)
		return ret;
	return kst_cmd_wait(c, NULL);
}

static int kst_fill(struct kst_conn *c, u64 off, u64 len, u32 seed)
{
	int ret;

	ret = kst_cmd(c, KST_MSG_FILL, off, len, seed, 0);
	if (ret)
		kst_diag(c->run, "FILL of %llu bytes at %llu: %pe", len, off,
			 ERR_PTR(ret));
	return ret;
}

static int kst_verify(struct kst_conn *c, u64 off, u64 len, u32 seed)
{
	u64 bad = 0;
	int ret;

	ret = kst_cmd_post(c, KST_MSG_VERIFY, off, len, seed, 0);
	if (!ret)
		ret = kst_cmd_wait(c, &bad);
	if (ret == -EBADMSG)
		kst_diag(c->run, "responder: byte %llu of its buffer is wrong", bad);
	else if (ret)
		kst_diag(c->run, "VERIFY of %llu bytes at %llu: %pe", len, off,
			 ERR_PTR(ret));
	return ret;
}

static int kst_desc_get(struct kst_conn *c)
{
	struct kst_rx *rx;
	struct kst_msg m;
	int ret;

	ret = kst_cmd_post(c, KST_MSG_DESC, 0, 0, 0, 0);
	ret = ret ?: kst_wait(c, &c->tx);
	if (ret)
		return ret;
	rx = kst_recv_next(c);
	if (IS_ERR(rx))
		return PTR_ERR(rx);
	ret = kst_msg_get(rx, KST_MSG_DESC, &m);
	if (!ret)
		ret = kst_rx_repost(c, rx);
	if (ret)
		return ret;
	c->peer.addr = le64_to_cpu(m.addr);
	c->peer.key = le64_to_cpu(m.key);
	c->peer.len = le64_to_cpu(m.len);
	c->peer.msg_size = le32_to_cpu(m.msg_size);
	c->peer.flags = le32_to_cpu(m.flags);
	if (!c->peer.len || c->peer.len > KST_REGION_MAX ||
	    c->peer.msg_size < sizeof(m))
		return -EPROTO;
	c->msg_size = min(c->msg_size, c->peer.msg_size);
	return 0;
}

static void kst_conn_free(struct kst_conn *c)
{
	u32 i;

	/* Drains: no callback or handler of the endpoint runs after it. */
	kfi_ep_free(c->ep);
	kfi_cq_free(c->cq);
	kfree(c->tx_kvec.iov_base);
	for (i = 0; i < c->nr_rx; i++)
		kfree(c->rx[i].kvec.iov_base);
	kfree(c);
}

/*
 * Sets up a connection to the responder on @info's domain and starts
 * connecting; kst_conn_finish() waits for it.
 */
static struct kst_conn *kst_conn_start(struct kst_run *run,
				       const struct kfi_info *info,
				       const struct kst_conn_param *p)
{
	const struct kfi_domain_attr *a = &info->attr;
	struct kfi_cq_attr cq_attr = {
		.comp_vector = -1,
		.poll_ctx = KFI_POLL_SOFTIRQ,
	};
	struct kfi_ep_attr ep_attr = {
		.type = KFI_EP_MSG,
		/* kst_layout_write() writes a kvec and a region at once. */
		.max_send_sge = 2,
		.max_recv_sge = 1,
		.handler = kst_conn_cm_handler,
	};
	struct kst_hello hello = {
		.magic = cpu_to_le32(p->magic),
		.version = cpu_to_le16(p->version),
		.region_len = cpu_to_le32(min_t(u64, p->region_len, KST_REGION_MAX)),
	};
	struct kst_conn *c;
	u64 nr_cqe;
	int ret;
	u32 i;

	c = kzalloc_obj(*c, GFP_KERNEL);
	if (!c)
		return ERR_PTR(-ENOMEM);
	c->run = run;
	c->timeout = KST_TIMEOUT;
	init_completion(&c->connected);
	init_completion(&c->disconnected);
	kst_op_init(&c->tx);
	kst_op_init(&c->rma);
	c->msg_size = min_t(u64, min(p->msg_size, KST_MSG_MAX), a->max_msg_size);
	c->send_ops = min_t(u32, KST_SEND_OPS, a->max_send_ops);
	c->nr_rx = min_t(u32, KST_CLI_RX, a->max_recv_ops);
	hello.msg_size = cpu_to_le32(c->msg_size);
	if (c->msg_size < sizeof(struct kst_msg)) {
		kst_diag(run, "domain %s carries only %llu-byte messages",
			 a->name, a->max_msg_size);
		ret = -EMSGSIZE;
		goto err;
	}

	ret = -ENOMEM;
	c->tx_kvec.iov_base = kmalloc(c->msg_size, GFP_KERNEL);
	if (!c->tx_kvec.iov_base)
		goto err;
	for (i = 0; i < c->nr_rx; i++) {
		kst_op_init(&c->rx[i].op);
		c->rx[i].kvec.iov_len = c->msg_size;
		c->rx[i].kvec.iov_base = kzalloc(c->msg_size, GFP_KERNEL);
		if (!c->rx[i].kvec.iov_base)
			goto err;
	}

	ep_attr.max_send_ops = c->send_ops;
	ep_attr.max_recv_ops = c->nr_rx;
	nr_cqe = c->send_ops + c->nr_rx + 2;
	if (p->rw_size) {
		c->rw_ctxs = p->rw_ctxs;
		ep_attr.max_rw_ctxs = c->rw_ctxs;
		ep_attr.max_rw_size = p->rw_size;
		ep_attr.max_rw_segs = p->rw_segs;
		nr_cqe += (u64)c->rw_ctxs * kst_rw_ops(a, p->rw_size, p->rw_segs);
	}
	cq_attr.nr_cqe = min_t(u64, nr_cqe, a->max_cqe);
	c->cq = kfi_cq_alloc(info->domain, &cq_attr);
	if (IS_ERR(c->cq)) {
		ret = PTR_ERR(c->cq);
		c->cq = NULL;
		kst_diag(run, "kfi_cq_alloc: %pe", ERR_PTR(ret));
		goto err;
	}
	ep_attr.send_cq = c->cq;
	ep_attr.recv_cq = c->cq;
	ep_attr.context = c;
	ep_attr.net = run->net;
	if (run->o.has_src)
		ep_attr.src_addr = &run->o.src_addr;
	c->ep = kfi_ep_alloc(info->domain, &ep_attr);
	if (IS_ERR(c->ep)) {
		ret = PTR_ERR(c->ep);
		c->ep = NULL;
		kst_diag(run, "kfi_ep_alloc: %pe", ERR_PTR(ret));
		goto err;
	}

	/* The responder sends its descriptor as soon as it is connected. */
	for (i = 0; i < c->nr_rx; i++) {
		ret = kst_post_recv(c, &c->rx[i]);
		if (ret) {
			kst_diag(run, "kfi_recv before connecting: %pe", ERR_PTR(ret));
			goto err;
		}
	}
	ret = kfi_connect(c->ep, &run->o.addr, &hello, sizeof(hello));
	if (ret) {
		kst_diag(run, "kfi_connect: %pe", ERR_PTR(ret));
		goto err;
	}
	return c;

err:
	kst_conn_free(c);
	return ERR_PTR(ret);
}

/* Waits until a started connection is established and described. */
static int kst_conn_finish(struct kst_conn *c)
{
	int ret;

	if (!wait_for_completion_timeout(&c->connected, KST_TIMEOUT)) {
		kst_diag(c->run, "no connection event in %d s", KST_TIMEOUT_SECS);
		return -ETIMEDOUT;
	}
	if (c->cm_status) {
		if (c->rejected && c->rej_len == sizeof(c->rej))
			kst_diag(c->run, "connecting: %pe (rejected, reason %u)",
				 ERR_PTR(c->cm_status), le16_to_cpu(c->rej.reason));
		else
			kst_diag(c->run, "connecting: %pe%s", ERR_PTR(c->cm_status),
				 c->rejected ? " (rejected)" : "");
		return c->cm_status;
	}
	ret = kst_desc_get(c);
	if (ret)
		kst_diag(c->run, "no valid descriptor from the responder: %pe",
			 ERR_PTR(ret));
	return ret;
}

static struct kst_conn *kst_conn_open(struct kst_run *run,
				      const struct kfi_info *info,
				      const struct kst_conn_param *p)
{
	struct kst_conn *c;
	int ret;

	c = kst_conn_start(run, info, p);
	if (IS_ERR(c))
		return c;
	ret = kst_conn_finish(c);
	if (ret) {
		kst_conn_free(c);
		return ERR_PTR(ret);
	}
	return c;
}

/**
 * kst_msg_size() - largest message a client connection asks for
 * @run: the run
 *
 * Return: sizes=, but room for the protocol's messages.
 */
u32 kst_msg_size(const struct kst_run *run)
{
	return clamp_t(u64, run->o.sizes, sizeof(struct kst_msg), KST_MSG_MAX);
}

/* A connection with a small responder buffer, for messages and checks. */
static struct kst_conn *kst_conn_open_small(struct kst_run *run)
{
	struct kst_conn_param p;

	kst_param(&p, SZ_64K, SZ_4K);
	return kst_conn_open(run, run->info, &p);
}

/*
 * Sends @count messages of @len bytes and checks each echo, with the
 * pattern if @verify. Adds the time the round trips took to *@ns.
 */
static int kst_pingpong(struct kst_conn *c, u32 len, u32 count, bool verify,
			s64 *ns)
{
	void *tx = c->tx_kvec.iov_base;
	struct kst_rx *rx;
	ktime_t start;
	u32 i, seed = 0;
	size_t bad;
	int ret;

	ret = kst_cmd(c, KST_MSG_ECHO, 0, 0, 0, count);
	if (ret) {
		kst_diag(c->run, "ECHO: %pe", ERR_PTR(ret));
		return ret;
	}
	start = ktime_get();
	for (i = 0; i < count; i++) {
		/* An echo that never lands cannot pass for one that did. */
		if (verify) {
			seed = kst_seed_not(c->rx[c->rx_next].first, 0);
			kst_pat_fill(tx, 0, len, seed);
		}
		ret = kst_send(c, len, 0, 0);
		if (!ret)
			ret = kst_wait(c, &c->tx);
		if (ret) {
			kst_diag(c->run, "send of %u bytes: %pe", len, ERR_PTR(ret));
			return ret;
		}
		rx = kst_recv_next(c);
		if (IS_ERR(rx)) {
			kst_diag(c->run, "echo of %u bytes: %pe", len, rx);
			return PTR_ERR(rx);
		}
		if (rx->op.byte_len != len) {
			kst_diag(c->run, "echo of %u bytes came back with %u",
				 len, rx->op.byte_len);
			return -EPROTO;
		}
		if (verify) {
			bad = kst_pat_check(rx->kvec.iov_base, 0, len, seed);
			if (bad < len) {
				kst_diag(c->run, "echo of %u bytes: byte %zu is wrong",
					 len, bad);
				return -EBADMSG;
			}
		}
		ret = kst_rx_repost(c, rx);
		if (ret)
			return ret;
	}
	if (ns)
		*ns += ktime_to_ns(ktime_sub(ktime_get(), start));
	return 0;
}

/* Opens a fresh connection and echoes one message: the responder is fine. */
static int kst_check_alive(struct kst_run *run)
{
	struct kst_conn *c;
	int ret;

	c = kst_conn_open_small(run);
	if (IS_ERR(c)) {
		kst_diag(run, "cannot connect to the responder again");
		return PTR_ERR(c);
	}
	ret = kst_pingpong(c, 64, 1, true, NULL);
	kst_conn_free(c);
	return ret;
}

/**
 * struct kst_local - a client buffer for RMA
 * @kvec: a kmalloc()ed buffer for a single kfi_read() or kfi_write()
 * @big: blocks of pages, for the read/write helper
 * @mr: when set, @kvec mapped once into this region, and single
 *	operations name the region rather than the kvec
 * @rw: the buffer is @big and transfers use the read/write helper
 * @len: bytes
 */
struct kst_local {
	struct kvec kvec;
	struct kst_buf big;
	struct kfi_mr *mr;
	bool rw;
	u64 len;
};

static int kst_local_alloc(struct kst_local *l, u64 len, bool rw,
			   unsigned int order)
{
	*l = (struct kst_local){ .rw = rw, .len = len };
	if (rw)
		return kst_buf_alloc(&l->big, len, order);
	l->kvec.iov_base = kmalloc(len, GFP_KERNEL);
	if (!l->kvec.iov_base)
		return -ENOMEM;
	l->kvec.iov_len = len;
	return 0;
}

static void kst_local_free(struct kst_local *l)
{
	if (l->rw)
		kst_buf_free(&l->big);
	else
		kfree(l->kvec.iov_base);
}

/*
 * Fills, or checks, the whole buffer with pattern @seed as at offset @off
 * of the responder's buffer. Returns the first wrong byte or U64_MAX.
 */
static u64 kst_local_pattern(struct kst_local *l, u64 off, u32 seed, bool check)
{
	size_t bad;

	if (l->rw)
		return kst_buf_pattern(&l->big, 0, l->len, off, seed, check);
	if (!check) {
		kst_pat_fill(l->kvec.iov_base, off, l->len, seed);
		return U64_MAX;
	}
	bad = kst_pat_check(l->kvec.iov_base, off, l->len, seed);
	return bad < l->len ? bad : U64_MAX;
}

static struct kfi_rma_iov kst_remote(const struct kst_conn *c, u64 off, u64 len)
{
	return (struct kfi_rma_iov){
		.addr = c->peer.addr + off,
		.len = len,
		.key = c->peer.key,
	};
}

/* Posts one kfi_write() or kfi_read() of a kvec buffer, completing @op. */
static int kst_rma_post(struct kst_conn *c, struct kst_local *l,
			const struct kfi_rma_iov *rma, bool write, u32 flags,
			u32 imm, struct kst_op *op)
{
	struct kfi_iov iov;
	struct kfi_msg msg = {
		.iov = &iov,
		.niov = 1,
		.cqe = &op->cqe,
		.imm_data = imm,
	};

	if (l->rw)
		kfi_iov_bvec(&iov, l->big.bvec, l->big.nr);
	else if (l->mr)
		kfi_iov_mr(&iov, l->mr, 0, l->len);
	else
		kfi_iov_kvec(&iov, &l->kvec, 1);
	kst_op_arm(op);
	if (write)
		return kfi_write(c->ep, &msg, rma, flags);
	return kfi_read(c->ep, &msg, rma, flags);
}

/*
 * Writes @l to, or reads it from, offset @off of the responder's buffer
 * and waits: one RMA operation, or a read/write helper transfer.
 */
static int kst_xfer(struct kst_conn *c, struct kst_local *l, u64 off, bool write)
{
	struct kfi_rma_iov rma = kst_remote(c, off, l->len);
	struct kfi_rw_ctx ctx;
	struct kfi_iov iov;
	int ret;

	if (!l->rw) {
		ret = kst_rma_post(c, l, &rma, write, 0, 0, &c->rma);
		return ret ?: kst_wait(c, &c->rma);
	}

	kfi_iov_bvec(&iov, l->big.bvec, l->big.nr);
	ret = kfi_rw_ctx_init(&ctx, c->ep, &iov, &rma,
			      write ? DMA_TO_DEVICE : DMA_FROM_DEVICE);
	if (ret < 0) {
		kst_diag(c->run, "kfi_rw_ctx_init: %pe", ERR_PTR(ret));
		return ret;
	}
	kst_op_arm(&c->rma);
	ret = kfi_rw_ctx_post(&ctx, &c->rma.cqe, NULL, 0);
	if (ret) {
		kst_diag(c->run, "kfi_rw_ctx_post: %pe", ERR_PTR(ret));
		/* Part of the transfer may be running: wait for all of it. */
		kfi_ep_drain(c->ep);
	} else {
		ret = kst_wait(c, &c->rma);
	}
	kfi_rw_ctx_destroy(&ctx);
	return ret;
}

/*
 * One checked transfer at offset @off of the responder's buffer. A write
 * goes over another pattern, which differs at the first byte, and the
 * responder checks the result; a read goes into a buffer holding another
 * pattern and is checked here.
 */
static int kst_rma_once(struct kst_conn *c, struct kst_local *l, u64 off,
			bool write)
{
	const char *what = str_write_read(write);
	u32 seed, other;
	u64 bad;
	int ret;

	other = get_random_u32();
	seed = kst_seed_not(kst_pat_byte(other, off), off);
	ret = kst_fill(c, off, l->len, write ? other : seed);
	if (ret)
		return ret;
	kst_local_pattern(l, off, write ? seed : other, false);
	ret = kst_xfer(c, l, off, write);
	if (ret) {
		kst_diag(c->run, "%s of %llu bytes at %llu: %pe", what, l->len,
			 off, ERR_PTR(ret));
		return ret;
	}
	if (write)
		return kst_verify(c, off, l->len, seed);
	bad = kst_local_pattern(l, off, seed, true);
	if (bad != U64_MAX) {
		kst_diag(c->run, "read of %llu bytes at %llu: byte %llu is wrong",
			 l->len, off, bad);
		return -EBADMSG;
	}
	return 0;
}

/* Reads the responder's report of a receive with immediate data. */
static int kst_imm_check(struct kst_conn *c, u32 imm, u64 len, bool write)
{
	u32 want = KST_IMM_WC_IMM | (write ? KST_IMM_WC_WRITE : 0);
	struct kst_rx *rx;
	struct kst_msg m;
	int ret;

	rx = kst_recv_next(c);
	if (IS_ERR(rx)) {
		kst_diag(c->run, "no report of the immediate data: %pe", rx);
		return PTR_ERR(rx);
	}
	ret = kst_msg_get(rx, KST_MSG_IMM, &m);
	if (!ret)
		ret = kst_rx_repost(c, rx);
	if (ret) {
		kst_diag(c->run, "bad report of the immediate data: %pe",
			 ERR_PTR(ret));
		return ret;
	}
	if (le32_to_cpu(m.imm) != imm || le64_to_cpu(m.len) != len ||
	    le32_to_cpu(m.flags) != want) {
		kst_diag(c->run,
			 "responder got imm %#x, %llu bytes, flags %#x; sent imm %#x, %llu bytes, flags %#x",
			 le32_to_cpu(m.imm), le64_to_cpu(m.len),
			 le32_to_cpu(m.flags), imm, len, want);
		return -EPROTO;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */

/* Disconnects and checks the way down: the event, then flushed receives. */
static int kst_conn_close(struct kst_conn *c)
{
	int ret;
	u32 i;

	ret = kfi_disconnect(c->ep);
	if (ret) {
		kst_diag(c->run, "kfi_disconnect: %pe", ERR_PTR(ret));
		return ret;
	}
	if (!wait_for_completion_timeout(&c->disconnected, KST_TIMEOUT)) {
		kst_diag(c->run, "no DISCONNECTED event in %d s", KST_TIMEOUT_SECS);
		return -ETIMEDOUT;
	}
	for (i = 0; i < c->nr_rx; i++) {
		ret = kst_wait(c, &c->rx[i].op);
		if (ret != -ECANCELED) {
			kst_diag(c->run, "receive %u completed with %d, not -ECANCELED",
				 i, ret);
			return -EPROTO;
		}
	}
	return 0;
}

/*
 * A client given a source address (src=) connects from it: the address
 * its connection uses is that one, whatever the route would pick.
 */
static int kst_src_check(struct kst_conn *c)
{
	struct kfi_addr local = *kfi_ep_src_addr(c->ep);
	char buf[80];

	kfi_addr_print(buf, sizeof(buf), &local);
	kst_diag(c->run, "connected from %s", buf);
	kst_addr_host(&local);
	if (c->run->o.has_src && !kfi_addr_equal(&local, &c->run->o.src_addr)) {
		kst_diag(c->run, "not from the source asked for, %s", c->run->o.src);
		return -EADDRNOTAVAIL;
	}
	return 0;
}

static enum kst_result kst_test_connect(struct kst_run *run)
{
	struct kst_conn *c;
	int ret;
	u32 i;

	for (i = 0; i < run->o.iters; i++) {
		c = kst_conn_open_small(run);
		if (IS_ERR(c))
			return KST_FAIL;
		ret = i ? 0 : kst_src_check(c);
		if (ret) {
			kst_conn_close(c);
			kst_conn_free(c);
			return KST_FAIL;
		}
		ret = kst_conn_close(c);
		kst_conn_free(c);
		if (ret)
			return KST_FAIL;
	}
	return KST_PASS;
}

/*
 * A request with a wrong magic or version is rejected, and the rejection's
 * private data says why.
 */
static enum kst_result kst_test_reject(struct kst_run *run)
{
	static const char * const names[] = { "bad_magic", "bad_version" };
	struct kst_conn_param p;
	struct kst_conn *c;
	enum kst_result res;
	unsigned int i;

	kst_sub_begin(run, "reject", ARRAY_SIZE(names));
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		kst_param(&p, SZ_4K, SZ_4K);
		if (i)
			p.version = KST_VERSION + 1;
		else
			p.magic = ~(u32)KST_MAGIC;
		res = KST_FAIL;
		c = kst_conn_start(run, run->info, &p);
		if (!IS_ERR(c)) {
			if (!wait_for_completion_timeout(&c->connected, KST_TIMEOUT))
				kst_diag(run, "no connection event in %d s",
					 KST_TIMEOUT_SECS);
			else if (!c->rejected)
				kst_diag(run, "not rejected: %pe",
					 ERR_PTR(c->cm_status));
			else if (c->rej_len < sizeof(c->rej) ||
				 le32_to_cpu(c->rej.magic) != KST_MAGIC ||
				 le16_to_cpu(c->rej.reason) != KST_REJ_HELLO)
				kst_diag(run, "rejected, no reason in %u bytes of data",
					 c->rej_len);
			else
				res = KST_PASS;
			kst_conn_free(c);
		}
		kst_result(run, res, names[i]);
	}
	return kst_sub_end(run);
}

static enum kst_result kst_test_sendrecv(struct kst_run *run)
{
	struct kst_conn_param p;
	struct kst_conn *c;
	char name[32];
	u64 sizes[4];
	unsigned int i, n;
	int ret;

	kst_param(&p, SZ_4K, kst_msg_size(run));
	c = kst_conn_open(run, run->info, &p);
	if (IS_ERR(c))
		return KST_FAIL;
	sizes[0] = 1;
	sizes[1] = 64;
	sizes[2] = SZ_4K;
	sizes[3] = c->msg_size;
	n = kst_sizes(sizes, ARRAY_SIZE(sizes), min(run->o.sizes, c->msg_size));
	kst_diag(run, "largest message: %u bytes", c->msg_size);

	kst_sub_begin(run, "sendrecv", n);
	for (i = 0; i < n; i++) {
		ret = kst_pingpong(c, sizes[i], run->o.iters, true, NULL);
		snprintf(name, sizeof(name), "size_%llu", sizes[i]);
		kst_result(run, kst_res(ret), name);
	}
	kst_conn_free(c);
	return kst_sub_end(run);
}

/*
 * RMA at 1 B, 4 KiB, 64 KiB, 1 MiB and 4 MiB, at the end of the
 * responder's buffer: single operations up to the domain's RMA size limit
 * (at most 64 KiB), the read/write helper above.
 */
static enum kst_result kst_test_rma(struct kst_run *run, bool write)
{
	static const u64 rma_sizes[] = { 1, SZ_4K, SZ_64K, SZ_1M, SZ_4M };
	const struct kfi_domain_attr *a = &run->info->attr;
	unsigned int order = get_order(KST_RW_BLOCK);
	u64 direct = min_t(u64, KST_MSG_MAX, a->max_rma_size);
	u64 sizes[ARRAY_SIZE(rma_sizes)];
	struct kst_conn_param p;
	struct kst_local l;
	struct kst_conn *c;
	unsigned int i, n;
	char name[32];
	int ret = 0;
	u32 k;

	memcpy(sizes, rma_sizes, sizeof(sizes));
	n = kst_sizes(sizes, ARRAY_SIZE(sizes), run->o.sizes);
	kst_param(&p, sizes[n - 1], SZ_4K);
	if (sizes[n - 1] > direct)
		kst_param_rw(&p, a, sizes[n - 1], 1);
	c = kst_conn_open(run, run->info, &p);
	if (IS_ERR(c))
		return KST_FAIL;
	kst_diag(run, "single operations up to %llu bytes", direct);
	if (p.rw_size)
		kst_diag(run, "read/write helper up to %llu bytes", p.rw_size);

	kst_sub_begin(run, write ? "rma_write" : "rma_read", n);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "size_%llu", sizes[i]);
		/* After a failure, go on with a fresh connection. */
		if (!c) {
			c = kst_conn_open(run, run->info, &p);
			if (IS_ERR(c)) {
				c = NULL;
				kst_result(run, KST_FAIL, name);
				continue;
			}
		}
		if (sizes[i] > c->peer.len) {
			kst_skip(run, "responder buffer is %llu bytes", c->peer.len);
			kst_result(run, KST_SKIP, name);
			continue;
		}
		if (sizes[i] > direct && sizes[i] > p.rw_size) {
			kst_skip(run, "domain limits transfers to %llu bytes",
				 max(direct, p.rw_size));
			kst_result(run, KST_SKIP, name);
			continue;
		}
		c->timeout = kst_timeout(sizes[i]);
		ret = kst_local_alloc(&l, sizes[i], sizes[i] > direct, order);
		for (k = 0; !ret && k < run->o.iters; k++)
			ret = kst_rma_once(c, &l, c->peer.len - sizes[i], write);
		kst_local_free(&l);
		kst_result(run, kst_res(ret), name);
		if (ret) {
			kst_conn_free(c);
			c = NULL;
		}
	}
	if (c)
		kst_conn_free(c);
	return kst_sub_end(run);
}

static enum kst_result kst_test_rma_write(struct kst_run *run)
{
	return kst_test_rma(run, true);
}

static enum kst_result kst_test_rma_read(struct kst_run *run)
{
	return kst_test_rma(run, false);
}

/*
 * A write of @len bytes with immediate data, then VERIFY. One operation,
 * and the client's endpoints take one send segment (kst_conn_open()): a
 * local buffer beyond a message's size is one physically contiguous block.
 */
static int kst_write_imm(struct kst_conn *c, u64 len)
{
	struct kfi_rma_iov rma = kst_remote(c, 0, len);
	bool big = len > KST_MSG_MAX;
	struct kst_local l;
	u32 seed, other, imm;
	int ret;

	ret = kst_local_alloc(&l, len, big, big ? get_order(len) : 0);
	if (ret)
		return ret;
	other = get_random_u32();
	seed = kst_seed_not(kst_pat_byte(other, 0), 0);
	imm = get_random_u32();
	ret = kst_fill(c, 0, len, other);
	if (ret)
		goto out;
	kst_local_pattern(&l, 0, seed, false);
	ret = kst_rma_post(c, &l, &rma, true, KFI_IMM, imm, &c->rma);
	if (!ret)
		ret = kst_wait(c, &c->rma);
	if (ret) {
		kst_diag(c->run, "write with immediate data: %pe", ERR_PTR(ret));
		goto out;
	}
	ret = kst_imm_check(c, imm, len, true);
	if (!ret)
		ret = kst_verify(c, 0, len, seed);
out:
	kst_local_free(&l);
	return ret;
}

/* A 64-byte send with immediate data. */
static int kst_send_imm(struct kst_conn *c)
{
	u32 imm = get_random_u32();
	int ret;

	kst_pat_fill(c->tx_kvec.iov_base, 0, 64, imm);
	ret = kst_send(c, 64, KFI_IMM, imm);
	if (!ret)
		ret = kst_wait(c, &c->tx);
	if (ret) {
		kst_diag(c->run, "send with immediate data: %pe", ERR_PTR(ret));
		return ret;
	}
	return kst_imm_check(c, imm, 64, false);
}

static enum kst_result kst_test_imm(struct kst_run *run)
{
	static const char * const names[] = {
		"write_1", "write_4096", "write_4194304", "send"
	};
	static const u64 sizes[] = { 1, SZ_4K, SZ_4M };
	const struct kfi_domain_attr *a;
	struct kst_conn_param p;
	struct kst_conn *c;
	unsigned int i;
	int ret;

	if (!run->imm_info) {
		kst_skip(run, "no domain offers KFI_CAP_RMA_IMM");
		return KST_SKIP;
	}
	a = &run->imm_info->attr;
	kst_param(&p, max_t(u64, SZ_64K, min_t(u64, SZ_4M, run->o.sizes)), SZ_4K);
	c = kst_conn_open(run, run->imm_info, &p);
	if (IS_ERR(c))
		return KST_FAIL;
	if (!(c->peer.flags & KST_DESC_IMM)) {
		kst_conn_free(c);
		kst_skip(run, "the responder's domain lacks KFI_CAP_RMA_IMM");
		return KST_SKIP;
	}

	kst_sub_begin(run, "write_imm", ARRAY_SIZE(names));
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		/* After a failure, go on with a fresh connection. */
		if (!c) {
			c = kst_conn_open(run, run->imm_info, &p);
			if (IS_ERR(c)) {
				c = NULL;
				kst_result(run, KST_FAIL, names[i]);
				continue;
			}
		}
		if (i == ARRAY_SIZE(sizes)) {
			ret = kst_send_imm(c);
		} else if (i == 2 && (sizes[i] > c->peer.len ||
				      sizes[i] > a->max_rma_size)) {
			kst_skip(run, "%llu bytes: responder buffer %llu, domain limit %llu",
				 sizes[i], c->peer.len, a->max_rma_size);
			kst_result(run, KST_SKIP, names[i]);
			continue;
		} else if (c->peer.len < SZ_4K) {
			ret = -ENOSPC;
		} else {
			c->timeout = kst_timeout(sizes[i]);
			ret = kst_write_imm(c, sizes[i]);
		}
		kst_result(run, kst_res(ret), names[i]);
		if (ret) {
			kst_conn_free(c);
			c = NULL;
		}
	}
	if (c)
		kst_conn_free(c);
	return kst_sub_end(run);
}

/*
 * The read/write helper with local buffers of separately allocated pages:
 * 1 and 2 segments, the domain's max_rma_sge, one more, and twice as many
 * plus one, up to 256 pages.
 */
static enum kst_result kst_test_rw_sge(struct kst_run *run)
{
	const struct kfi_domain_attr *a = &run->info->attr;
	u64 max = min_t(u64, KST_MAX_SEGS, run->o.sizes >> PAGE_SHIFT);
	u32 sge = a->max_rma_sge;
	struct kst_conn_param p;
	struct kst_local l;
	struct kst_conn *c;
	unsigned int i, n;
	u64 segs[5], len;
	char name[32];
	int ret;
	u32 k;

	if (!max) {
		kst_skip(run, "sizes= is below a page");
		return KST_SKIP;
	}
	segs[0] = 1;
	segs[1] = 2;
	segs[2] = sge;
	segs[3] = (u64)sge + 1;
	segs[4] = 2 * (u64)sge + 1;
	n = kst_sizes(segs, ARRAY_SIZE(segs), max);
	kst_param(&p, segs[n - 1] << PAGE_SHIFT, SZ_4K);
	kst_param_rw(&p, a, segs[n - 1] << PAGE_SHIFT, 1);
	c = kst_conn_open(run, run->info, &p);
	if (IS_ERR(c))
		return KST_FAIL;
	kst_diag(run, "domain max_rma_sge %u", sge);

	kst_sub_begin(run, "rw_sge", n);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "segs_%llu", segs[i]);
		len = segs[i] << PAGE_SHIFT;
		if (!c) {
			c = kst_conn_open(run, run->info, &p);
			if (IS_ERR(c)) {
				c = NULL;
				kst_result(run, KST_FAIL, name);
				continue;
			}
		}
		if (len > c->peer.len || len > p.rw_size) {
			kst_skip(run, "domain limits transfers to %llu bytes",
				 min(c->peer.len, p.rw_size));
			kst_result(run, KST_SKIP, name);
			continue;
		}
		ret = kst_local_alloc(&l, len, true, 0);
		for (k = 0; !ret && k < run->o.iters; k++) {
			ret = kst_rma_once(c, &l, c->peer.len - len, true);
			if (!ret)
				ret = kst_rma_once(c, &l, c->peer.len - len, false);
		}
		kst_local_free(&l);
		kst_result(run, kst_res(ret), name);
		if (ret) {
			kst_conn_free(c);
			c = NULL;
		}
	}
	if (c)
		kst_conn_free(c);
	return kst_sub_end(run);
}

/**
 * struct kst_many - one connection of the many-endpoint test
 * @c: the connection
 * @l: its 4 KiB buffer
 * @seed: pattern of the current round
 */
struct kst_many {
	struct kst_conn *c;
	struct kst_local l;
	u32 seed;
};

/* One round: every connection writes and has it checked, all at once. */
static int kst_many_round(struct kst_many *m, u32 n, u32 round)
{
	struct kfi_rma_iov rma;
	u64 off;
	int ret;
	u32 i;

	for (i = 0; i < n; i++) {
		div64_u64_rem((u64)round * SZ_4K, m[i].c->peer.len - SZ_4K + 1,
			      &off);
		m[i].seed = get_random_u32();
		kst_local_pattern(&m[i].l, off, m[i].seed, false);
		rma = kst_remote(m[i].c, off, SZ_4K);
		ret = kst_rma_post(m[i].c, &m[i].l, &rma, true, 0, 0, &m[i].c->rma);
		/* A send follows the data of the writes before it. */
		if (!ret)
			ret = kst_cmd_post(m[i].c, KST_MSG_VERIFY, off, SZ_4K,
					   m[i].seed, 0);
		if (ret) {
			kst_diag(m[i].c->run, "endpoint %u: post: %pe", i,
				 ERR_PTR(ret));
			return ret;
		}
	}
	for (i = 0; i < n; i++) {
		ret = kst_wait(m[i].c, &m[i].c->rma);
		if (!ret)
			ret = kst_cmd_wait(m[i].c, NULL);
		if (ret) {
			kst_diag(m[i].c->run, "endpoint %u: %pe", i, ERR_PTR(ret));
			return ret;
		}
	}
	return 0;
}

static enum kst_result kst_test_many_eps(struct kst_run *run)
{
	u32 i, n = run->o.eps, started = 0;
	struct kst_conn_param p;
	struct kst_many *m;
	int ret = 0;

	m = kzalloc_objs(*m, n, GFP_KERNEL);
	if (!m)
		return KST_FAIL;
	kst_param(&p, SZ_64K, SZ_4K);
	/* Connect them all at once, then wait for each. */
	for (i = 0; i < n && !ret; i++) {
		m[i].c = kst_conn_start(run, run->info, &p);
		if (IS_ERR(m[i].c))
			ret = PTR_ERR(m[i].c);
		else
			started++;
	}
	for (i = 0; i < started && !ret; i++) {
		ret = kst_conn_finish(m[i].c);
		if (!ret && m[i].c->peer.len < SZ_4K)
			ret = -ENOSPC;
		if (!ret)
			ret = kst_local_alloc(&m[i].l, SZ_4K, false, 0);
		if (ret)
			kst_diag(run, "endpoint %u of %u: %pe", i, n, ERR_PTR(ret));
	}
	for (i = 0; i < run->o.iters && !ret; i++)
		ret = kst_many_round(m, n, i);
	for (i = 0; i < started; i++) {
		kst_conn_free(m[i].c);
		kst_local_free(&m[i].l);
	}
	kfree(m);
	if (!ret)
		kst_diag(run, "%u endpoints, %u rounds", n, run->o.iters);
	return kst_res(ret);
}

/*
 * Without %KFI_CAP_DELIVERY a refused write may complete before the
 * refusal arrives, which then ends the connection: a valid read of the
 * same 64 bytes behind it must fail.
 */
static int kst_rma_refused_later(struct kst_conn *c, struct kst_local *l)
{
	struct kfi_rma_iov rma = kst_remote(c, 0, 64);
	int ret;

	ret = kst_rma_post(c, l, &rma, false, 0, 0, &c->rma);
	if (ret) {
		kst_diag(c->run, "completed successfully; a read behind it: post failed with %pe",
			 ERR_PTR(ret));
		return 0;
	}
	ret = kst_wait(c, &c->rma);
	if (ret == -ETIMEDOUT)
		return ret;
	if (!ret) {
		kst_diag(c->run, "completed successfully, and so did a read behind it");
		return -EPROTO;
	}
	kst_diag(c->run, "completed successfully (no KFI_CAP_DELIVERY); a read behind it: %pe",
		 ERR_PTR(ret));
	return 0;
}

/*
 * An RMA that the responder must refuse completes with an error, on a
 * connection of its own since the error ends it. The 64 bytes go @delta
 * bytes from the start of the responder's buffer, or from its end if
 * @from_end, with the buffer's key changed by @key_xor.
 */
static int kst_rma_refused(struct kst_run *run, bool write, bool from_end,
			   s64 delta, u64 key_xor)
{
	struct kfi_rma_iov rma;
	struct kst_local l;
	struct kst_conn *c;
	int ret;

	c = kst_conn_open_small(run);
	if (IS_ERR(c))
		return PTR_ERR(c);
	ret = kst_local_alloc(&l, 64, false, 0);
	if (ret)
		goto out_conn;
	memset(l.kvec.iov_base, 0, 64);
	rma = kst_remote(c, from_end ? c->peer.len : 0, 64);
	rma.addr += delta;
	rma.key ^= key_xor;
	ret = kst_rma_post(c, &l, &rma, write, 0, 0, &c->rma);
	if (ret) {
		kst_diag(run, "post failed with %pe; it should complete with an error",
			 ERR_PTR(ret));
		goto out_local;
	}
	ret = kst_wait(c, &c->rma);
	if (ret == -ETIMEDOUT)
		goto out_local;
	if (!ret && write && !(run->info->attr.caps & KFI_CAP_DELIVERY)) {
		ret = kst_rma_refused_later(c, &l);
		goto out_local;
	}
	if (!ret) {
		kst_diag(run, "completed successfully");
		ret = -EPROTO;
		goto out_local;
	}
	kst_diag(run, "completed with %pe", ERR_PTR(ret));
	ret = 0;
out_local:
	kst_local_free(&l);
out_conn:
	kst_conn_free(c);
	return ret;
}

static enum kst_result kst_test_bad_key(struct kst_run *run)
{
	int ret;

	kst_sub_begin(run, "bad_key", 2);
	ret = kst_rma_refused(run, true, false, 0, KST_BAD_KEY_XOR);
	kst_result(run, kst_res(ret), "write");
	ret = kst_rma_refused(run, false, false, 0, KST_BAD_KEY_XOR);
	kst_result(run, kst_res(ret), "read");
	if (kst_sub_end(run) != KST_PASS)
		return KST_FAIL;
	return kst_res(kst_check_alive(run));
}

static enum kst_result kst_test_out_of_bounds(struct kst_run *run)
{
	int ret;

	kst_sub_begin(run, "out_of_bounds", 3);
	ret = kst_rma_refused(run, true, true, -32, 0);
	kst_result(run, kst_res(ret), "write_past_end");
	ret = kst_rma_refused(run, false, true, -32, 0);
	kst_result(run, kst_res(ret), "read_past_end");
	ret = kst_rma_refused(run, false, false, -32, 0);
	kst_result(run, kst_res(ret), "read_before_start");
	if (kst_sub_end(run) != KST_PASS)
		return KST_FAIL;
	return kst_res(kst_check_alive(run));
}

/*
 * The responder drops the connection while reads are in flight: the
 * client sees DISCONNECTED, every outstanding operation completes, none
 * successfully after one that failed, the receives all fail, a send
 * fails, and a new connection works.
 */
static int kst_peer_disconnect(struct kst_conn *c)
{
	u32 i, nops = c->send_ops - 1, posted = 0, good = 0;
	struct kfi_rma_iov rma = kst_remote(c, 0, SZ_4K);
	struct kst_run *run = c->run;
	struct kst_local l;
	struct kst_op *ops;
	bool failed = false;
	int ret;

	ops = kzalloc_objs(*ops, nops, GFP_KERNEL);
	if (!ops)
		return -ENOMEM;
	ret = kst_local_alloc(&l, SZ_4K, false, 0);
	if (ret)
		goto out_ops;
	for (i = 0; i < nops; i++)
		kst_op_init(&ops[i]);

	ret = kst_cmd_post(c, KST_MSG_DISCONNECT, 0, 0, 0, 0);
	if (ret) {
		kst_diag(run, "DISCONNECT: %pe", ERR_PTR(ret));
		goto out_local;
	}
	for (i = 0; i < nops; i++) {
		if (kst_rma_post(c, &l, &rma, false, 0, 0, &ops[i]))
			break;
		posted++;
	}

	if (!wait_for_completion_timeout(&c->disconnected, KST_TIMEOUT)) {
		kst_diag(run, "no DISCONNECTED event in %d s", KST_TIMEOUT_SECS);
		kfi_ep_drain(c->ep);
		ret = -ETIMEDOUT;
		goto out_local;
	}
	kst_wait(c, &c->tx);
	for (i = 0; i < posted; i++) {
		ret = kst_wait(c, &ops[i]);
		if (ret == -ETIMEDOUT)
			goto out_local;
		if (!ret && failed) {
			kst_diag(run, "read %u succeeded after an earlier one failed", i);
			ret = -EPROTO;
			goto out_local;
		}
		if (ret)
			failed = true;
		else
			good++;
	}
	for (i = 0; i < c->nr_rx; i++) {
		ret = kst_wait(c, &c->rx[i].op);
		if (ret == -ETIMEDOUT)
			goto out_local;
		if (!ret) {
			kst_diag(run, "receive %u succeeded after the disconnection", i);
			ret = -EPROTO;
			goto out_local;
		}
	}
	kst_diag(run, "%u of %u reads completed before the disconnection",
		 good, posted);

	ret = kst_send(c, sizeof(struct kst_msg), 0, 0);
	if (!ret) {
		ret = kst_wait(c, &c->tx);
		if (!ret) {
			kst_diag(run, "a send succeeded after the disconnection");
			ret = -EPROTO;
			goto out_local;
		}
	}
	ret = ret == -ETIMEDOUT ? ret : 0;
out_local:
	/* Every read has completed before its structure goes. */
	kfi_ep_drain(c->ep);
	kst_local_free(&l);
out_ops:
	kfree(ops);
	return ret;
}

static enum kst_result kst_test_peer_disconnect(struct kst_run *run)
{
	struct kst_conn *c;
	int ret;

	c = kst_conn_open_small(run);
	if (IS_ERR(c))
		return KST_FAIL;
	ret = kst_peer_disconnect(c);
	kst_conn_free(c);
	if (!ret)
		ret = kst_check_alive(run);
	return kst_res(ret);
}

static void kst_check_einval(struct kst_run *run, const char *name, int ret)
{
	if (ret != -EINVAL)
		kst_diag(run, "%s returned %d, not -EINVAL", name, ret);
	kst_result(run, ret == -EINVAL ? KST_PASS : KST_FAIL, name);
}

/*
 * Invalid arguments make the API calls fail with -EINVAL and post
 * nothing. Every call gets valid buffers and completion objects besides
 * the invalid argument, so that a call that wrongly succeeds does no harm.
 */
static void kst_invalid_args(struct kst_conn *c, struct kst_local *l)
{
	struct kfi_domain *domain = c->run->info->domain;
	struct kfi_rma_iov rma = kst_remote(c, 0, l->len);
	struct kst_run *run = c->run;
	struct kfi_cq_attr cq_attr = { .comp_vector = -1 };
	struct kfi_ep_attr ep_attr = {
		.type = KFI_EP_MSG,
		.send_cq = c->cq,
		.recv_cq = c->cq,
		.max_send_ops = 1,
		.max_recv_ops = 1,
		.max_send_sge = 1,
		.max_recv_sge = 1,
	};
	struct kfi_iov iov[3], bad;
	struct kfi_msg msg = { .iov = iov, .niov = 1, .cqe = &c->rma.cqe };
	struct kfi_addr addr;
	struct kfi_mr *mr;
	struct kfi_cq *cq;
	struct kfi_ep *ep;

	kfi_iov_kvec(&iov[0], &l->kvec, 1);
	iov[1] = iov[0];
	iov[2] = iov[0];

	kst_check_einval(run, "send_null_msg", kfi_send(c->ep, NULL, 0));
	kst_check_einval(run, "recv_null_msg", kfi_recv(c->ep, NULL, 0));
	kst_check_einval(run, "write_null_msg", kfi_write(c->ep, NULL, &rma, 0));
	kst_check_einval(run, "read_null_rma", kfi_read(c->ep, &msg, NULL, 0));

	msg.iov = NULL;
	kst_check_einval(run, "send_null_iov", kfi_send(c->ep, &msg, 0));
	bad = iov[0];
	bad.type = (enum kfi_iov_type)0x7f;
	msg.iov = &bad;
	kst_check_einval(run, "send_bad_iov_type", kfi_send(c->ep, &msg, 0));
	bad = iov[0];
	bad.kvec = NULL;
	kst_check_einval(run, "send_null_kvec", kfi_send(c->ep, &msg, 0));
	/* The endpoint takes two buffers per operation. */
	msg.iov = iov;
	msg.niov = 3;
	kst_check_einval(run, "send_too_many_iovs", kfi_send(c->ep, &msg, 0));
	msg.niov = 1;
	kst_check_einval(run, "send_unknown_flag", kfi_send(c->ep, &msg, BIT(31)));
	msg.cqe = NULL;
	kst_check_einval(run, "send_no_cqe", kfi_send(c->ep, &msg, 0));
	msg.cqe = &c->rma.cqe;
	rma.len++;
	kst_check_einval(run, "write_length_mismatch",
			 kfi_write(c->ep, &msg, &rma, 0));
	rma.len--;
	kst_check_einval(run, "mr_map_null_mr",
			 kfi_mr_map(c->ep, NULL, iov, KFI_ACCESS_REMOTE_READ,
				    &c->rma.cqe, 0));
	kst_check_einval(run, "rw_ctx_init_null_ctx",
			 kfi_rw_ctx_init(NULL, c->ep, iov, &rma, DMA_TO_DEVICE));
	kst_check_einval(run, "connect_null_addr", kfi_connect(c->ep, NULL, NULL, 0));

	cq = kfi_cq_alloc(domain, &cq_attr);
	kst_check_einval(run, "cq_alloc_no_entries", PTR_ERR_OR_ZERO(cq));
	if (!IS_ERR(cq))
		kfi_cq_free(cq);
	ep = kfi_ep_alloc(domain, &ep_attr);
	kst_check_einval(run, "ep_alloc_no_handler", PTR_ERR_OR_ZERO(ep));
	if (!IS_ERR(ep))
		kfi_ep_free(ep);
	mr = kfi_mr_alloc(domain, 0);
	kst_check_einval(run, "mr_alloc_no_segs", PTR_ERR_OR_ZERO(mr));
	if (!IS_ERR(mr))
		kfi_mr_free(mr);
	kst_check_einval(run, "getinfo_null_list", kfi_getinfo(NULL, NULL));
	kst_check_einval(run, "addr_parse_bad_port",
			 kfi_addr_parse(&addr, "node", "port"));
}

#define KST_NR_INVALID	19

static enum kst_result kst_test_invalid_args(struct kst_run *run)
{
	struct kst_local l;
	struct kst_conn *c;
	int ret;

	c = kst_conn_open_small(run);
	if (IS_ERR(c))
		return KST_FAIL;
	ret = kst_local_alloc(&l, 64, false, 0);
	if (ret) {
		kst_conn_free(c);
		return KST_FAIL;
	}
	kst_sub_begin(run, "invalid_args", KST_NR_INVALID + 1);
	kst_invalid_args(c, &l);
	/* Nothing was posted: the connection still works. */
	ret = kst_pingpong(c, 64, 1, true, NULL);
	kst_result(run, kst_res(ret), "still_usable");
	kst_conn_free(c);
	kst_local_free(&l);
	return kst_sub_end(run);
}

/*
 * Buffer layouts for kfi_mr_map(), on a block of KST_LAYOUT_ORDER: each
 * segment is @len[i] bytes from the start of page @page[i] of the block.
 * @err is 0 for a layout that must map, the errno it must fail with when
 * @must_fail, else the errno it may fail with (see &struct kfi_mr).
 */
struct kst_layout {
	const char *name;
	u32 nr;
	u32 page[3];
	u32 len[3];
	int err;
	bool must_fail;
};

#define KST_LAYOUT_ORDER	3
#define KST_LAYOUT_SEGS		2

static const struct kst_layout kst_layouts[] = {
	/* Page-aligned boundaries, no more pages than the region holds. */
	{ "whole_pages", 2, { 0, 2 }, { PAGE_SIZE, PAGE_SIZE }, 0, false },
	/* More segments than the region takes: never. */
	{ "too_many_segs", 3, { 0, 2, 4 }, { PAGE_SIZE, PAGE_SIZE, PAGE_SIZE },
	  -EINVAL, true },
	/* A boundary inside a page: not for a provider that maps pages. */
	{ "unaligned_boundary", 2, { 0, 2 }, { 100, PAGE_SIZE }, -EINVAL, false },
	/* Two segments, six pages: not for one that maps two pages. */
	{ "pages_beyond_max", 2, { 0, 4 }, { 3 * PAGE_SIZE, 3 * PAGE_SIZE },
	  -E2BIG, false },
};

/* Bytes of a plain buffer before the region in kst_layout_write(). */
#define KST_LAYOUT_PREFIX	512

/*
 * Writes a small kvec and then the mapped region @mr (@len bytes), as a
 * %KFI_IOV_MR buffer, to the responder and has it checked there: the
 * mapping covers the buffer, and a region that is not an operation's
 * first buffer is read from its own start.
 */
static int kst_layout_write(struct kst_conn *c, struct kfi_mr *mr,
			    const struct bio_vec *bv, u32 nr, u64 len)
{
	struct kfi_rma_iov rma = kst_remote(c, 0, KST_LAYOUT_PREFIX + len);
	struct kfi_iov iov[2];
	struct kfi_msg msg = { .iov = iov, .niov = 2, .cqe = &c->rma.cqe };
	u32 seed = get_random_u32(), i;
	u64 off = KST_LAYOUT_PREFIX;
	struct kvec kv;
	int ret;

	kv.iov_len = KST_LAYOUT_PREFIX;
	kv.iov_base = kmalloc(kv.iov_len, GFP_KERNEL);
	if (!kv.iov_base)
		return -ENOMEM;
	ret = kst_fill(c, 0, KST_LAYOUT_PREFIX + len, ~seed);
	if (ret)
		goto out;
	kst_pat_fill(kv.iov_base, 0, kv.iov_len, seed);
	for (i = 0; i < nr; off += bv[i].bv_len, i++)
		kst_pat_fill(page_address(bv[i].bv_page) + bv[i].bv_offset, off,
			     bv[i].bv_len, seed);
	kfi_iov_kvec(&iov[0], &kv, 1);
	kfi_iov_mr(&iov[1], mr, 0, len);
	kst_op_arm(&c->rma);
	ret = kfi_write(c->ep, &msg, &rma, 0);
	ret = ret ?: kst_wait(c, &c->rma);
	ret = ret ?: kst_verify(c, 0, KST_LAYOUT_PREFIX + len, seed);
out:
	kfree(kv.iov_base);
	return ret;
}

/* Invalidate @mr's mapping on the connection's endpoint and wait for it. */
static int kst_mr_invalidate(struct kst_conn *c, struct kfi_mr *mr)
{
	int ret;

	kst_op_arm(&c->rma);
	ret = kfi_mr_invalidate(c->ep, mr, &c->rma.cqe, 0);
	return ret ?: kst_wait(c, &c->rma);
}

static enum kst_result kst_layout_one(struct kst_conn *c, struct page *block,
				      const struct kst_layout *t)
{
	struct kfi_domain *domain = c->run->info->domain;
	struct kst_run *run = c->run;
	struct bio_vec bv[ARRAY_SIZE(t->page)];
	enum kst_result res = KST_FAIL;
	struct kfi_iov iov;
	struct kfi_mr *mr;
	u64 len = 0;
	int ret, inv;
	u32 i;

	for (i = 0; i < t->nr; i++) {
		bvec_set_page(&bv[i], block + t->page[i], t->len[i], 0);
		len += t->len[i];
	}
	mr = kfi_mr_alloc(domain, KST_LAYOUT_SEGS);
	if (IS_ERR(mr)) {
		kst_diag(run, "kfi_mr_alloc: %pe", mr);
		return KST_FAIL;
	}
	kfi_iov_bvec(&iov, bv, t->nr);
	kst_op_arm(&c->rma);
	ret = kfi_mr_map(c->ep, mr, &iov, 0, &c->rma.cqe, 0);
	if (ret) {
		if (ret == t->err)
			res = KST_PASS;
		kst_diag(run, "%s: %u segments, %llu bytes: %pe%s", t->name, t->nr,
			 len, ERR_PTR(ret), ret == t->err ? "" : ", unexpected");
		goto out;
	}
	ret = kst_wait(c, &c->rma);
	if (ret) {
		kst_diag(run, "%s: the mapping failed: %pe", t->name, ERR_PTR(ret));
		goto out;
	}
	if (t->must_fail) {
		kst_diag(run, "%s: %u segments mapped into a region of %u",
			 t->name, t->nr, KST_LAYOUT_SEGS);
	} else {
		ret = kst_layout_write(c, mr, bv, t->nr, len);
		if (!ret) {
			res = KST_PASS;
			kst_diag(run, "%s: %u segments, %llu bytes: mapped",
				 t->name, t->nr, len);
		} else {
			kst_diag(run, "%s: write from the region: %pe",
				 t->name, ERR_PTR(ret));
		}
	}
	inv = kst_mr_invalidate(c, mr);
	if (inv) {
		kst_diag(run, "%s: invalidation: %pe", t->name, ERR_PTR(inv));
		res = KST_FAIL;
	}
out:
	kfi_mr_free(mr);
	return res;
}

/*
 * kfi_mr_map() on the layouts of &struct kfi_mr: what must map maps and
 * is written from, byte-checked; what must fail fails with -EINVAL; what
 * may not fit either maps and is checked, or fails with its errno. Over
 * a provider that maps pages (the verbs one) the last two fail, and the
 * diagnostics say with what.
 */
static enum kst_result kst_test_mr_layout(struct kst_run *run)
{
	struct kst_conn *c;
	struct page *block;
	unsigned int i;

	block = alloc_pages(GFP_KERNEL, KST_LAYOUT_ORDER);
	if (!block)
		return KST_FAIL;
	c = kst_conn_open_small(run);
	if (IS_ERR(c)) {
		__free_pages(block, KST_LAYOUT_ORDER);
		return KST_FAIL;
	}
	kst_sub_begin(run, "mr_layout", ARRAY_SIZE(kst_layouts) + 1);
	for (i = 0; i < ARRAY_SIZE(kst_layouts); i++)
		kst_result(run, kst_layout_one(c, block, &kst_layouts[i]),
			   kst_layouts[i].name);
	kst_result(run, kst_res(kst_pingpong(c, 64, 1, true, NULL)),
		   "still_usable");
	kst_conn_free(c);
	__free_pages(block, KST_LAYOUT_ORDER);
	return kst_sub_end(run);
}

/*
 * Map @l's kvec once into a region for the single operations of the
 * benchmark, as a ULP does with buffers that take part in every I/O and
 * as the raw verbs baseline does with its buffer: per operation the
 * provider then only names the region. A read's sink is mapped with
 * remote write, as kfi_read() asks of portable ULPs. Without regions, or
 * for a buffer the domain cannot map whole, @l stays a plain kvec.
 */
static int kst_local_map(struct kst_conn *c, struct kst_local *l, bool write)
{
	const struct kfi_domain_attr *a = &c->run->info->attr;
	u32 pages = DIV_ROUND_UP(offset_in_page(l->kvec.iov_base) + l->len,
				 PAGE_SIZE);
	struct kfi_iov iov;
	struct kfi_mr *mr;
	int ret;

	if (l->rw || pages > a->max_mr_segs || l->len > a->max_mr_size)
		return 0;
	mr = kfi_mr_alloc(c->run->info->domain, pages);
	if (IS_ERR(mr)) {
		kst_diag(c->run, "kfi_mr_alloc: %pe", mr);
		return PTR_ERR(mr);
	}
	kfi_iov_kvec(&iov, &l->kvec, 1);
	kst_op_arm(&c->rma);
	ret = kfi_mr_map(c->ep, mr, &iov, write ? 0 : KFI_ACCESS_REMOTE_WRITE,
			 &c->rma.cqe, 0);
	ret = ret ?: kst_wait(c, &c->rma);
	if (ret) {
		kst_diag(c->run, "kfi_mr_map: %pe", ERR_PTR(ret));
		kfi_mr_free(mr);
		return ret;
	}
	l->mr = mr;
	return 0;
}

/* End the region of kst_local_map(); @l is a plain kvec again. */
static int kst_local_unmap(struct kst_conn *c, struct kst_local *l)
{
	int ret;

	if (!l->mr)
		return 0;
	ret = kst_mr_invalidate(c, l->mr);
	if (ret)
		kst_diag(c->run, "kfi_mr_invalidate: %pe", ERR_PTR(ret));
	kfi_mr_free(l->mr);
	l->mr = NULL;
	return ret;
}

/*
 * The benchmark on kfabric: a client connection and its buffers, as
 * struct kst_bench_ops hands them to the cases.
 */

/**
 * struct kst_kfi_bench - a benchmark connection on kfabric
 * @bc: what the cases see of it
 * @c: the connection
 */
struct kst_kfi_bench {
	struct kst_bench_conn bc;
	struct kst_conn *c;
};

/**
 * struct kst_kfi_bench_buf - a buffer of an RMA case on kfabric
 * @bb: what the cases see of it
 * @l: the buffer
 */
struct kst_kfi_bench_buf {
	struct kst_bench_buf bb;
	struct kst_local l;
};

/**
 * struct kst_kfi_slot - an operation of a window
 * @ctx: the read/write helper context of a helper transfer
 * @op: its completion
 * @live: @ctx is set up and not torn down yet
 */
struct kst_kfi_slot {
	struct kfi_rw_ctx ctx;
	struct kst_op op;
	bool live;
};

/**
 * struct kst_kfi_win - a window of operations on kfabric
 * @w: what the cases see of it
 * @c: the connection
 * @l: the buffer
 * @rma: the start of the responder's buffer, @l's length
 * @iov: @l's blocks, for helper transfers
 * @dir: direction of helper transfers
 * @qd: number of @slot
 * @slot: one per operation in flight
 */
struct kst_kfi_win {
	struct kst_bench_win w;
	struct kst_conn *c;
	struct kst_local *l;
	struct kfi_rma_iov rma;
	struct kfi_iov iov;
	enum dma_data_direction dir;
	u32 qd;
	struct kst_kfi_slot slot[] __counted_by(qd);
};

static struct kst_bench_conn *kst_kfi_bench_open(struct kst_run *run,
						 u64 region_len, u32 msg_size,
						 u64 rw_len)
{
	const struct kfi_domain_attr *a = &run->info->attr;
	u64 direct = min_t(u64, KST_MSG_MAX, a->max_rma_size);
	struct kst_conn_param p;
	struct kst_kfi_bench *kb;
	struct kst_conn *c;

	kst_param(&p, region_len, msg_size);
	if (rw_len > direct)
		kst_param_rw(&p, a, rw_len, KST_RW_QD);
	kb = kzalloc_obj(*kb, GFP_KERNEL);
	if (!kb)
		return ERR_PTR(-ENOMEM);
	c = kst_conn_open(run, run->info, &p);
	if (IS_ERR(c)) {
		kfree(kb);
		return ERR_CAST(c);
	}
	kb->c = c;
	kb->bc = (struct kst_bench_conn){
		.run = run,
		.tx = c->tx_kvec.iov_base,
		.msg_size = c->msg_size,
		.send_ops = c->send_ops,
		.rw_ctxs = c->rw_ctxs,
		.peer_len = c->peer.len,
		.direct = direct,
		.rw_size = p.rw_size,
	};
	return &kb->bc;
}

static void kst_kfi_bench_close(struct kst_bench_conn *bc)
{
	struct kst_kfi_bench *kb = container_of(bc, struct kst_kfi_bench, bc);

	kst_conn_free(kb->c);
	kfree(kb);
}

static int kst_kfi_bench_msg_send(struct kst_bench_conn *bc, u32 len)
{
	struct kst_kfi_bench *kb = container_of(bc, struct kst_kfi_bench, bc);
	int ret;

	ret = kst_send(kb->c, len, 0, 0);
	return ret ?: kst_wait(kb->c, &kb->c->tx);
}

static int kst_kfi_bench_msg_recv(struct kst_bench_conn *bc, const void **data,
				  u32 *len)
{
	struct kst_kfi_bench *kb = container_of(bc, struct kst_kfi_bench, bc);
	struct kst_rx *rx;

	rx = kst_recv_next(kb->c);
	if (IS_ERR(rx))
		return PTR_ERR(rx);
	*data = rx->kvec.iov_base;
	*len = rx->op.byte_len;
	return 0;
}

static int kst_kfi_bench_msg_repost(struct kst_bench_conn *bc)
{
	struct kst_kfi_bench *kb = container_of(bc, struct kst_kfi_bench, bc);

	return kst_rx_repost(kb->c, &kb->c->rx[kb->c->rx_next]);
}

static u8 kst_kfi_bench_rx_first(struct kst_bench_conn *bc)
{
	struct kst_kfi_bench *kb = container_of(bc, struct kst_kfi_bench, bc);

	return kb->c->rx[kb->c->rx_next].first;
}

static struct kst_bench_buf *kst_kfi_bench_buf_alloc(struct kst_bench_conn *bc,
						     u64 len, bool rw,
						     bool write)
{
	struct kst_kfi_bench *kb = container_of(bc, struct kst_kfi_bench, bc);
	struct kst_kfi_bench_buf *kbuf;
	int ret;

	kbuf = kzalloc_obj(*kbuf, GFP_KERNEL);
	if (!kbuf)
		return ERR_PTR(-ENOMEM);
	ret = kst_local_alloc(&kbuf->l, len, rw, get_order(KST_RW_BLOCK));
	if (ret) {
		kfree(kbuf);
		return ERR_PTR(ret);
	}
	ret = kst_local_map(kb->c, &kbuf->l, write);
	if (ret) {
		kst_local_free(&kbuf->l);
		kfree(kbuf);
		return ERR_PTR(ret);
	}
	kbuf->bb = (struct kst_bench_buf){
		.len = len,
		.rw = rw,
		.mapped = kbuf->l.mr,
	};
	return &kbuf->bb;
}

static int kst_kfi_bench_buf_unmap(struct kst_bench_conn *bc,
				   struct kst_bench_buf *bb)
{
	struct kst_kfi_bench *kb = container_of(bc, struct kst_kfi_bench, bc);
	struct kst_kfi_bench_buf *kbuf;

	kbuf = container_of(bb, struct kst_kfi_bench_buf, bb);
	bb->mapped = false;
	return kst_local_unmap(kb->c, &kbuf->l);
}

static void kst_kfi_bench_buf_free(struct kst_bench_conn *bc,
				   struct kst_bench_buf *bb)
{
	struct kst_kfi_bench *kb = container_of(bc, struct kst_kfi_bench, bc);
	struct kst_kfi_bench_buf *kbuf;

	kbuf = container_of(bb, struct kst_kfi_bench_buf, bb);
	kst_local_unmap(kb->c, &kbuf->l);
	kst_local_free(&kbuf->l);
	kfree(kbuf);
}

static u64 kst_kfi_bench_buf_pattern(struct kst_bench_conn *bc,
				     struct kst_bench_buf *bb, u32 seed,
				     bool check)
{
	struct kst_kfi_bench_buf *kbuf;

	kbuf = container_of(bb, struct kst_kfi_bench_buf, bb);
	return kst_local_pattern(&kbuf->l, 0, seed, check);
}

static struct kst_bench_win *kst_kfi_bench_win_alloc(struct kst_bench_conn *bc,
						     struct kst_bench_buf *bb,
						     bool write, u32 qd)
{
	struct kst_kfi_bench *kb = container_of(bc, struct kst_kfi_bench, bc);
	struct kst_kfi_bench_buf *kbuf;
	struct kst_kfi_win *kw;
	u32 i;

	kbuf = container_of(bb, struct kst_kfi_bench_buf, bb);
	kw = kzalloc_flex(*kw, slot, qd, GFP_KERNEL);
	if (!kw)
		return ERR_PTR(-ENOMEM);
	for (i = 0; i < qd; i++)
		kst_op_init(&kw->slot[i].op);
	kw->w = (struct kst_bench_win){ .c = bc, .b = bb, .write = write };
	kw->c = kb->c;
	kw->l = &kbuf->l;
	kw->rma = kst_remote(kb->c, 0, bb->len);
	if (bb->rw)
		kfi_iov_bvec(&kw->iov, kw->l->big.bvec, kw->l->big.nr);
	kw->dir = write ? DMA_TO_DEVICE : DMA_FROM_DEVICE;
	return &kw->w;
}

static void kst_kfi_bench_win_free(struct kst_bench_win *w)
{
	kfree(container_of(w, struct kst_kfi_win, w));
}

/*
 * A helper transfer's context lives from posting to completion. One whose
 * post failed may be partly running: it is torn down by the abort, once
 * the endpoint is drained.
 */
static int kst_kfi_bench_post(struct kst_bench_win *w, u32 i)
{
	struct kst_kfi_win *kw = container_of(w, struct kst_kfi_win, w);
	struct kst_kfi_slot *s = &kw->slot[i];
	int ret;

	if (!w->b->rw)
		return kst_rma_post(kw->c, kw->l, &kw->rma, w->write, 0, 0,
				    &s->op);
	ret = kfi_rw_ctx_init(&s->ctx, kw->c->ep, &kw->iov, &kw->rma, kw->dir);
	if (ret < 0)
		return ret;
	s->live = true;
	kst_op_arm(&s->op);
	return kfi_rw_ctx_post(&s->ctx, &s->op.cqe, NULL, 0);
}

static int kst_kfi_bench_complete(struct kst_bench_win *w, u32 i,
				  s64 *lat_ns)
{
	struct kst_kfi_win *kw = container_of(w, struct kst_kfi_win, w);
	struct kst_kfi_slot *s = &kw->slot[i];
	int ret;

	ret = kst_wait(kw->c, &s->op);
	if (ret)
		return ret;
	if (s->live) {
		kfi_rw_ctx_destroy(&s->ctx);
		s->live = false;
	}
	*lat_ns = s->op.lat_ns;
	return 0;
}

static void kst_kfi_bench_abort(struct kst_bench_win *w)
{
	struct kst_kfi_win *kw = container_of(w, struct kst_kfi_win, w);
	u32 i;

	kfi_ep_drain(kw->c->ep);
	for (i = 0; i < kw->qd; i++) {
		if (kw->slot[i].live)
			kfi_rw_ctx_destroy(&kw->slot[i].ctx);
	}
}

const struct kst_bench_ops kst_kfi_bench_ops = {
	.open = kst_kfi_bench_open,
	.close = kst_kfi_bench_close,
	.msg_send = kst_kfi_bench_msg_send,
	.msg_recv = kst_kfi_bench_msg_recv,
	.msg_repost = kst_kfi_bench_msg_repost,
	.rx_first = kst_kfi_bench_rx_first,
	.buf_alloc = kst_kfi_bench_buf_alloc,
	.buf_unmap = kst_kfi_bench_buf_unmap,
	.buf_free = kst_kfi_bench_buf_free,
	.buf_pattern = kst_kfi_bench_buf_pattern,
	.win_alloc = kst_kfi_bench_win_alloc,
	.win_free = kst_kfi_bench_win_free,
	.post = kst_kfi_bench_post,
	.complete = kst_kfi_bench_complete,
	.abort = kst_kfi_bench_abort,
};

const struct kst_test kst_tests[] = {
	{ "connect", kst_test_connect },
	{ "reject", kst_test_reject },
	{ "sendrecv", kst_test_sendrecv },
	{ "rma_write", kst_test_rma_write },
	{ "rma_read", kst_test_rma_read },
	{ "write_imm", kst_test_imm },
	{ "rw_sge", kst_test_rw_sge },
	{ "many_eps", kst_test_many_eps },
	{ "bad_key", kst_test_bad_key },
	{ "out_of_bounds", kst_test_out_of_bounds },
	{ "peer_disconnect", kst_test_peer_disconnect },
	{ "invalid_args", kst_test_invalid_args },
	{ "mr_layout", kst_test_mr_layout },
};

const unsigned int kst_nr_tests = ARRAY_SIZE(kst_tests);
