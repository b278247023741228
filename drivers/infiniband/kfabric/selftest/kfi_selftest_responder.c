// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric self-test: the responder, which serves the tests and the benchmark.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bvec.h>
#include <linux/completion.h>
#include <linux/gfp.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/workqueue.h>
#include <rdma/kfi/kfi.h>

#include "kfi_selftest.h"

/*
 * The responder lends buffers to any peer that says hello: bound what all
 * of them, and each peer host, may hold at once. The tests take a few
 * MiB at a time (4 MiB buffers, many_eps 64 x 96 KiB), plus connections
 * of earlier tests not yet torn down.
 */
static unsigned int responder_mem_mb = 64;
module_param(responder_mem_mb, uint, 0644);
MODULE_PARM_DESC(responder_mem_mb,
		 "MiB of buffers the responder lends all peers together (default 64)");

static unsigned int responder_peer_mem_mb = 32;
module_param(responder_peer_mem_mb, uint, 0644);
MODULE_PARM_DESC(responder_peer_mem_mb,
		 "MiB of buffers the responder lends one peer host (default 32)");

/* ------------------------------------------------------------------ */
/* Responder                                                           */

/**
 * struct kst_server - the responder
 * @pep: its passive endpoint
 * @wq: runs the teardown of connections
 * @lock: protects @conns, @nr_conns, @mem and @hosts
 * @conns: connections not yet claimed for teardown (&kst_sconn.entry)
 * @nr_conns: connections, including those being torn down
 * @mem: bytes their buffers may take (kst_sconn_charge())
 * @hosts: what each peer host's connections hold (&kst_srv_host.entry)
 */
struct kst_server {
	struct kfi_pep *pep;
	struct workqueue_struct *wq;
	struct mutex lock;	/* conns, nr_conns, mem, hosts */
	struct list_head conns;
	u32 nr_conns;
	u64 mem;
	struct list_head hosts;
};

/**
 * struct kst_srv_host - the responder's connections from one peer host
 * @entry: on &kst_server.hosts while it has connections
 * @addr: its address, port 0
 * @mem: bytes their buffers may take
 * @nr_conns: connections, including those being torn down
 */
struct kst_srv_host {
	struct list_head entry;
	struct kfi_addr addr;
	u64 mem;
	u32 nr_conns;
};

struct kst_sconn;

/**
 * struct kst_srx - a receive buffer of a responder connection
 * @recv_cqe: completion object of the receive
 * @send_cqe: completion object of the reply sent from the same buffer
 * @conn: the connection
 * @recv_kvec: the whole buffer
 * @send_kvec: the part of it sent back
 */
struct kst_srx {
	struct kfi_cqe recv_cqe;
	struct kfi_cqe send_cqe;
	struct kst_sconn *conn;
	struct kvec recv_kvec;
	struct kvec send_kvec;
};

/**
 * struct kst_sconn - a responder connection
 * @srv: the responder
 * @entry: on &kst_server.conns until claimed for teardown
 * @cq: its completion queue
 * @ep: its endpoint
 * @mr: memory region over @region
 * @region: the buffer the client reads and writes
 * @rx: receive buffers; each reply goes out of the buffer it answers
 * @nr_rx: number of @rx
 * @msg_size: bytes of each receive buffer
 * @echo_left: messages still to be sent back unchanged
 * @imm: the domain has %KFI_CAP_RMA_IMM
 * @map_cqe: completion object of the mapping of @region
 * @described: the buffer is mapped and its descriptor went out
 * @lock: protects @listed, @dead and @release_queued
 * @listed: on the list: teardown goes through @release_work
 * @dead: the connection is over
 * @release_queued: @release_work was queued, or teardown was claimed
 * @release_work: claims the connection and tears it down
 * @host: the peer host it counts against
 * @charge: bytes it counts for (kst_sconn_charge())
 *
 * @echo_left and @described are only used by completion callbacks, which
 * do not run concurrently on one completion queue.
 */
struct kst_sconn {
	struct kst_server *srv;
	struct list_head entry;
	struct kfi_cq *cq;
	struct kfi_ep *ep;
	struct kfi_mr *mr;
	struct kst_buf region;
	struct kst_srx *rx;
	u32 nr_rx;
	u32 msg_size;
	u32 echo_left;
	bool imm;
	struct kfi_cqe map_cqe;
	bool described;
	spinlock_t lock;	/* listed, dead, release_queued */
	bool listed;
	bool dead;
	bool release_queued;
	struct work_struct release_work;
	struct kst_srv_host *host;
	u64 charge;
};

/* Queues the teardown of a dead, listed connection once; conn->lock held. */
static void kst_sconn_queue_release(struct kst_sconn *conn)
{
	lockdep_assert_held(&conn->lock);
	if (conn->dead && conn->listed && !conn->release_queued) {
		conn->release_queued = true;
		queue_work(conn->srv->wq, &conn->release_work);
	}
}

/*
 * The connection is over or broken. Handlers and completion callbacks
 * cannot free their endpoint: the teardown runs from a work item.
 */
static void kst_sconn_kill(struct kst_sconn *conn)
{
	unsigned long flags;

	spin_lock_irqsave(&conn->lock, flags);
	conn->dead = true;
	kst_sconn_queue_release(conn);
	spin_unlock_irqrestore(&conn->lock, flags);
}

/*
 * The connection broke on the responder's side: say why, since only the
 * client reports results, then tear it down.
 */
static void kst_sconn_fail(struct kst_sconn *conn, const char *what, int err)
{
	pr_info_ratelimited("responder: %s: %pe, dropping the connection\n",
			    what, ERR_PTR(err));
	kst_sconn_kill(conn);
}

static int kst_srx_post(struct kst_srx *rx)
{
	struct kfi_iov iov;
	struct kfi_msg msg = { .iov = &iov, .niov = 1, .cqe = &rx->recv_cqe };

	kfi_iov_kvec(&iov, &rx->recv_kvec, 1);
	return kfi_recv(rx->conn->ep, &msg, 0);
}

/*
 * Maps the buffer and describes it in @m. The mapping is ordered before
 * the reply on the endpoint, so the key can go out at once. There is one
 * mapping per connection.
 */
static int kst_sconn_describe(struct kst_sconn *conn, struct kst_msg *m)
{
	struct kfi_iov region;
	int ret;

	if (conn->described)
		return -EPROTO;
	kfi_iov_bvec(&region, conn->region.bvec, conn->region.nr);
	ret = kfi_mr_map(conn->ep, conn->mr, &region,
			 KFI_ACCESS_REMOTE_READ | KFI_ACCESS_REMOTE_WRITE,
			 &conn->map_cqe, KFI_MORE);
	if (ret)
		return ret;
	conn->described = true;
	kst_msg_init(m, KST_MSG_DESC);
	m->addr = cpu_to_le64(conn->mr->addr);
	m->key = cpu_to_le64(conn->mr->key);
	m->len = cpu_to_le64(conn->mr->length);
	m->msg_size = cpu_to_le32(conn->msg_size);
	m->flags = cpu_to_le32(conn->imm ? KST_DESC_IMM : 0);
	return sizeof(*m);
}

/*
 * Handles a message that arrived in @rx and builds the reply in the same
 * buffer. Returns the reply's length, or a negative errno to drop the
 * connection: -ENOTCONN when the client asked for that.
 */
static int kst_sconn_handle(struct kst_sconn *conn, struct kst_srx *rx,
			    const struct kfi_wc *wc)
{
	struct kst_msg *m = rx->recv_kvec.iov_base;
	u32 status = 0, seed, count;
	u64 off, len, bad = 0;
	u16 type;

	if (wc->flags & KFI_WC_IMM) {
		kst_msg_init(m, KST_MSG_IMM);
		m->imm = cpu_to_le32(wc->imm_data);
		m->len = cpu_to_le64(wc->byte_len);
		m->flags = cpu_to_le32(KST_IMM_WC_IMM |
				       ((wc->flags & KFI_WC_RDMA_WRITE) ?
					KST_IMM_WC_WRITE : 0));
		return sizeof(*m);
	}
	if (conn->echo_left) {
		conn->echo_left--;
		/* Never trust a length, even the provider's. */
		if (wc->byte_len > conn->msg_size)
			return -ENOTCONN;
		return wc->byte_len;
	}

	if (wc->byte_len < sizeof(*m) || le32_to_cpu(m->magic) != KST_MAGIC ||
	    le16_to_cpu(m->version) != KST_VERSION) {
		status = EPROTO;
		goto reply;
	}
	type = le16_to_cpu(m->type);
	off = le64_to_cpu(m->offset);
	len = le64_to_cpu(m->len);
	seed = le32_to_cpu(m->seed);
	count = le32_to_cpu(m->count);
	switch (type) {
	case KST_MSG_FILL:
	case KST_MSG_VERIFY:
		if (len > conn->region.len || off > conn->region.len - len) {
			status = ERANGE;
			break;
		}
		bad = kst_buf_pattern(&conn->region, off, len, off, seed,
				      type == KST_MSG_VERIFY);
		if (bad != U64_MAX)
			status = EBADMSG;
		break;
	case KST_MSG_ECHO:
		if (count > KST_MAX_ITERS)
			status = ERANGE;
		else
			conn->echo_left = count;
		break;
	case KST_MSG_DESC:
		return kst_sconn_describe(conn, m);
	case KST_MSG_DISCONNECT:
		return -ENOTCONN;
	default:
		status = EOPNOTSUPP;
		break;
	}
reply:
	kst_msg_init(m, KST_MSG_REPLY);
	m->status = cpu_to_le32(status);
	if (status == EBADMSG)
		m->offset = cpu_to_le64(bad);
	return sizeof(*m);
}

static void kst_srx_recv_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct kst_srx *rx = container_of(wc->cqe, struct kst_srx, recv_cqe);
	struct kst_sconn *conn = rx->conn;
	struct kfi_iov iov;
	struct kfi_msg msg = { .iov = &iov, .niov = 1, .cqe = &rx->send_cqe };
	int len;

	if (wc->status) {
		if (wc->status != -ECANCELED)
			kst_sconn_fail(conn, "receive", wc->status);
		return;
	}
	len = kst_sconn_handle(conn, rx, wc);
	if (len == -ENOTCONN) {
		kst_sconn_kill(conn);
		return;
	}
	if (len < 0) {
		kst_sconn_fail(conn, "handling a message", len);
		return;
	}
	rx->send_kvec.iov_len = len;
	kfi_iov_kvec(&iov, &rx->send_kvec, 1);
	len = kfi_send(conn->ep, &msg, 0);
	if (len)
		kst_sconn_fail(conn, "posting a reply", len);
}

/* The reply went out: the buffer takes the next message. */
static void kst_srx_send_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct kst_srx *rx = container_of(wc->cqe, struct kst_srx, send_cqe);
	int ret;

	if (wc->status) {
		if (wc->status != -ECANCELED)
			kst_sconn_fail(rx->conn, "reply", wc->status);
		return;
	}
	ret = kst_srx_post(rx);
	if (ret)
		kst_sconn_fail(rx->conn, "posting a receive", ret);
}

static void kst_sconn_map_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct kst_sconn *conn = container_of(wc->cqe, struct kst_sconn, map_cqe);

	if (wc->status && wc->status != -ECANCELED)
		kst_sconn_fail(conn, "mapping the region", wc->status);
}

static void kst_sconn_cm_handler(void *context, const struct kfi_cm_event *ev)
{
	struct kst_sconn *conn = context;

	/* The client speaks first (KST_MSG_DESC). */
	if (ev->type == KFI_CM_CONNECTED)
		return;
	/* Every other event means the connection is gone. */
	kst_sconn_kill(conn);
}

/* Frees a connection: endpoint (drained), region, queue, then memory. */
static void kst_sconn_free(struct kst_sconn *conn)
{
	u32 i;

	kfi_ep_free(conn->ep);
	kfi_mr_free(conn->mr);
	kfi_cq_free(conn->cq);
	for (i = 0; conn->rx && i < conn->nr_rx; i++)
		kfree(conn->rx[i].recv_kvec.iov_base);
	kfree(conn->rx);
	kst_buf_free(&conn->region);
	kfree(conn);
}

/*
 * Bytes a connection may take: its buffer rounded up to the first block
 * size kst_buf_alloc_blocks() tries (it only tries smaller ones after
 * that), and its receive buffers.
 */
static u64 kst_sconn_charge(u64 region_len, u32 msg_size)
{
	u64 block = PAGE_SIZE << min(get_order(KST_BLOCK_MAX),
				     get_order(region_len));

	return round_up(region_len, block) + (u64)KST_SRV_RX * msg_size;
}

static struct kst_srv_host *kst_srv_host_find(struct kst_server *srv,
					      const struct kfi_addr *addr)
{
	struct kst_srv_host *host;

	list_for_each_entry(host, &srv->hosts, entry)
		if (kfi_addr_equal(&host->addr, addr))
			return host;
	return NULL;
}

/*
 * Counts a new connection of @charge bytes from @addr (a peer's address,
 * port 0) against the responder's bounds. Returns 0 with its host in
 * @hostp, or the reason to reject it.
 */
static u16 kst_srv_charge(struct kst_server *srv, const struct kfi_addr *addr,
			  u64 charge, struct kst_srv_host **hostp)
{
	u64 max = (u64)READ_ONCE(responder_mem_mb) << 20;
	u64 host_max = (u64)READ_ONCE(responder_peer_mem_mb) << 20;
	struct kst_srv_host *host;

	lockdep_assert_held(&srv->lock);
	if (srv->nr_conns >= KST_MAX_CONNS)
		return KST_REJ_BUSY;
	host = kst_srv_host_find(srv, addr);
	if (srv->mem + charge > max ||
	    (host ? host->mem : 0) + charge > host_max)
		return KST_REJ_MEMORY;
	if (!host) {
		host = kzalloc_obj(*host, GFP_KERNEL);
		if (!host)
			return KST_REJ_BUSY;
		host->addr = *addr;
		list_add_tail(&host->entry, &srv->hosts);
	}
	srv->nr_conns++;
	srv->mem += charge;
	host->nr_conns++;
	host->mem += charge;
	*hostp = host;
	return 0;
}

static void kst_srv_uncharge(struct kst_server *srv, struct kst_srv_host *host,
			     u64 charge)
{
	lockdep_assert_held(&srv->lock);
	srv->nr_conns--;
	srv->mem -= charge;
	host->mem -= charge;
	if (!--host->nr_conns) {
		list_del(&host->entry);
		kfree(host);
	}
}

static void kst_sconn_destroy(struct kst_sconn *conn)
{
	struct kst_server *srv = conn->srv;
	struct kst_srv_host *host = conn->host;
	u64 charge = conn->charge;

	kst_sconn_free(conn);
	mutex_lock(&srv->lock);
	kst_srv_uncharge(srv, host, charge);
	mutex_unlock(&srv->lock);
}

static void kst_sconn_release_work(struct work_struct *work)
{
	struct kst_sconn *conn = container_of(work, struct kst_sconn, release_work);
	struct kst_server *srv = conn->srv;
	bool mine;

	/* Whoever takes it off the list tears it down. */
	mutex_lock(&srv->lock);
	mine = !list_empty(&conn->entry);
	list_del_init(&conn->entry);
	mutex_unlock(&srv->lock);
	if (mine)
		kst_sconn_destroy(conn);
}

/*
 * Everything a connection needs, with its receives posted, on the domain
 * of a connection request. An ERR_PTR() when nothing was allocated; a
 * dead connection when part of it could not be set up.
 */
static struct kst_sconn *kst_sconn_create(struct kst_server *srv,
					  struct kfi_domain *domain,
					  u64 region_len, u32 msg_size)
{
	const struct kfi_domain_attr *a = kfi_domain_attr(domain);
	struct kfi_cq_attr cq_attr = {
		.comp_vector = -1,
		.poll_ctx = KFI_POLL_UNBOUND_WORKQUEUE,
	};
	struct kfi_ep_attr ep_attr = {
		.type = KFI_EP_MSG,
		.max_send_sge = 1,
		.max_recv_sge = 1,
		.handler = kst_sconn_cm_handler,
	};
	struct kst_sconn *conn;
	struct kst_srx *rx;
	int ret;
	u32 i;

	/* Each receive may have a reply out, plus the mapping. */
	if (a->max_send_ops < 2)
		return ERR_PTR(-EINVAL);
	conn = kzalloc_obj(*conn, GFP_KERNEL);
	if (!conn)
		return ERR_PTR(-ENOMEM);
	conn->srv = srv;
	INIT_LIST_HEAD(&conn->entry);
	spin_lock_init(&conn->lock);
	INIT_WORK(&conn->release_work, kst_sconn_release_work);
	conn->msg_size = msg_size;
	conn->imm = a->caps & KFI_CAP_RMA_IMM;
	conn->map_cqe.done = kst_sconn_map_done;
	conn->nr_rx = min_t(u32, KST_SRV_RX,
			    min(a->max_recv_ops, a->max_send_ops - 1));

	ret = kst_buf_alloc_blocks(&conn->region, region_len, a->max_mr_segs,
				   a->max_mr_block);
	if (ret)
		goto err;

	ret = -ENOMEM;
	conn->rx = kzalloc_objs(*conn->rx, conn->nr_rx, GFP_KERNEL);
	if (!conn->rx)
		goto err;
	for (i = 0; i < conn->nr_rx; i++) {
		rx = &conn->rx[i];
		rx->conn = conn;
		rx->recv_cqe.done = kst_srx_recv_done;
		rx->send_cqe.done = kst_srx_send_done;
		rx->recv_kvec.iov_len = msg_size;
		rx->recv_kvec.iov_base = kmalloc(msg_size, GFP_KERNEL);
		if (!rx->recv_kvec.iov_base)
			goto err;
		rx->send_kvec.iov_base = rx->recv_kvec.iov_base;
	}

	ep_attr.max_send_ops = conn->nr_rx + 2;
	ep_attr.max_recv_ops = conn->nr_rx;
	cq_attr.nr_cqe = ep_attr.max_send_ops + ep_attr.max_recv_ops + 2;
	conn->cq = kfi_cq_alloc(domain, &cq_attr);
	if (IS_ERR(conn->cq)) {
		ret = PTR_ERR(conn->cq);
		conn->cq = NULL;
		goto err;
	}
	conn->mr = kfi_mr_alloc(domain, conn->region.nr);
	if (IS_ERR(conn->mr)) {
		ret = PTR_ERR(conn->mr);
		conn->mr = NULL;
		goto err;
	}
	ep_attr.send_cq = conn->cq;
	ep_attr.recv_cq = conn->cq;
	ep_attr.context = conn;
	conn->ep = kfi_ep_alloc(domain, &ep_attr);
	if (IS_ERR(conn->ep)) {
		ret = PTR_ERR(conn->ep);
		conn->ep = NULL;
		goto err;
	}
	/* The client may send as soon as the connection is up. */
	for (i = 0; i < conn->nr_rx; i++) {
		ret = kst_srx_post(&conn->rx[i]);
		if (ret)
			goto err;
	}
	return conn;

err:
	/*
	 * Dead, for the caller to publish: this runs in the listener's
	 * handler, which must not free kfabric objects (see
	 * kst_srv_connreq()); the release work does.
	 */
	conn->dead = true;
	return conn;
}

/* Puts a new connection on the list; teardown now goes through the work. */
static void kst_sconn_publish(struct kst_sconn *conn)
{
	struct kst_server *srv = conn->srv;
	unsigned long flags;

	mutex_lock(&srv->lock);
	list_add_tail(&conn->entry, &srv->conns);
	mutex_unlock(&srv->lock);

	/* It may have died before it was listed. */
	spin_lock_irqsave(&conn->lock, flags);
	conn->listed = true;
	kst_sconn_queue_release(conn);
	spin_unlock_irqrestore(&conn->lock, flags);
}

/* Rejects @req, saying why when the domain carries that much. */
static void kst_srv_reject(struct kfi_connreq *req, u16 reason)
{
	struct kst_reject rej = {
		.magic = cpu_to_le32(KST_MAGIC),
		.version = cpu_to_le16(KST_VERSION),
		.reason = cpu_to_le16(reason),
	};

	if (kfi_domain_attr(req->domain)->max_reject_data < sizeof(rej))
		kfi_reject(req, NULL, 0);
	else
		kfi_reject(req, &rej, sizeof(rej));
}

static void kst_srv_connreq(struct kst_server *srv, const struct kfi_cm_event *ev)
{
	struct kfi_connreq *req = ev->connreq;
	const struct kfi_domain_attr *a = kfi_domain_attr(req->domain);
	struct kfi_addr peer = req->dest_addr;
	struct kst_srv_host *host;
	struct kst_sconn *conn;
	struct kst_hello hello;
	u64 region_len, charge;
	u32 msg_size;
	u16 reason = KST_REJ_HELLO;

	if (ev->private_data_len < sizeof(hello))
		goto reject;
	/* The private data need not be aligned. */
	memcpy(&hello, ev->private_data, sizeof(hello));
	if (le32_to_cpu(hello.magic) != KST_MAGIC ||
	    le16_to_cpu(hello.version) != KST_VERSION)
		goto reject;
	/* A wildcard listener hears requests on every domain of the fabric. */
	reason = KST_REJ_DOMAIN;
	if ((a->caps & KST_CAPS) != KST_CAPS ||
	    a->max_msg_size < sizeof(struct kst_msg) ||
	    a->max_cm_data < sizeof(hello))
		goto reject;
	reason = KST_REJ_BUSY;

	region_len = le32_to_cpu(hello.region_len) ?: KST_REGION_MAX;
	region_len = min3(region_len, (u64)KST_REGION_MAX, a->max_mr_size);
	msg_size = clamp_t(u32, le32_to_cpu(hello.msg_size),
			   sizeof(struct kst_msg), KST_MSG_MAX);
	msg_size = min_t(u64, msg_size, a->max_msg_size);

	/* Charged per peer host, whatever port it connects from. */
	kst_addr_host(&peer);
	charge = kst_sconn_charge(region_len, msg_size);
	mutex_lock(&srv->lock);
	reason = kst_srv_charge(srv, &peer, charge, &host);
	mutex_unlock(&srv->lock);
	if (reason)
		goto reject;

	conn = kst_sconn_create(srv, req->domain, region_len, msg_size);
	if (IS_ERR(conn)) {
		mutex_lock(&srv->lock);
		kst_srv_uncharge(srv, host, charge);
		mutex_unlock(&srv->lock);
		reason = KST_REJ_BUSY;
		goto reject;
	}
	/* Counted until kst_sconn_destroy(); teardown starts at publishing. */
	conn->host = host;
	conn->charge = charge;
	/*
	 * Set-up failed: reject, and let the release work free it. Freeing
	 * an endpoint or a queue waits for completion work, which must not
	 * happen under the listener's CM lock: a ULP's completion work may
	 * take locks (nvmet's config_sem) that are held around kfi_listen().
	 */
	if (conn->dead) {
		kst_srv_reject(req, KST_REJ_BUSY);
		kst_sconn_publish(conn);
		return;
	}
	hello.region_len = cpu_to_le32((u32)conn->region.len);
	hello.msg_size = cpu_to_le32(msg_size);
	/* A failed accept counts as a rejection; tear down from the work. */
	if (kfi_accept(conn->ep, req, &hello, sizeof(hello)))
		kst_sconn_kill(conn);
	kst_sconn_publish(conn);
	return;

reject:
	kst_srv_reject(req, reason);
}

static void kst_srv_cm_handler(void *context, const struct kfi_cm_event *ev)
{
	if (ev->type == KFI_CM_CONNREQ)
		kst_srv_connreq(context, ev);
}

/* Stops listening, disconnects and frees every connection. */
static void kst_server_stop(struct kst_server *srv)
{
	struct kst_sconn *conn;
	unsigned long flags;

	/* No handler runs after it: no new connections. */
	kfi_pep_free(srv->pep);
	for (;;) {
		mutex_lock(&srv->lock);
		conn = list_first_entry_or_null(&srv->conns, struct kst_sconn,
						entry);
		if (conn)
			list_del_init(&conn->entry);
		mutex_unlock(&srv->lock);
		if (!conn)
			break;
		/* Claimed here: its release work must not be queued again. */
		spin_lock_irqsave(&conn->lock, flags);
		conn->release_queued = true;
		spin_unlock_irqrestore(&conn->lock, flags);
		cancel_work_sync(&conn->release_work);
		kst_sconn_destroy(conn);
	}
	/* Waits for teardowns their work claimed. */
	destroy_workqueue(srv->wq);
	WARN_ON(srv->nr_conns || srv->mem || !list_empty(&srv->hosts));
	mutex_destroy(&srv->lock);
	kfree(srv);
}

static struct kst_server *kst_server;

/**
 * kst_serve() - start the responder
 * @run: the run of the serve or loop command
 *
 * Listens on the run's address, on a domain of its fabric, until
 * kst_stop(). Called with kst_lock held, as kst_stop() is.
 *
 * Return: %KST_PASS once listening, else %KST_FAIL.
 */
enum kst_result kst_serve(struct kst_run *run)
{
	const struct kst_opts *o = &run->o;
	struct kfi_hints hints = {
		.caps = KST_CAPS,
		.ep_type = KFI_EP_MSG,
		.net = run->net,
		.src_addr = &o->addr,
		.fabric_name = o->fabric,
		.min_cm_data = sizeof(struct kst_hello),
	};
	struct kst_server *srv;
	struct kfi_info *info;
	LIST_HEAD(infos);
	int ret;

	srv = kzalloc_obj(*srv, GFP_KERNEL);
	if (!srv)
		return KST_FAIL;
	mutex_init(&srv->lock);
	INIT_LIST_HEAD(&srv->conns);
	INIT_LIST_HEAD(&srv->hosts);
	srv->wq = alloc_workqueue("kfi_selftest", WQ_UNBOUND, 0);
	if (!srv->wq) {
		ret = -ENOMEM;
		goto err_free;
	}
	ret = kfi_getinfo(&hints, &infos);
	if (ret) {
		kst_diag(run, "no domain of fabric %s serves %s: %pe", o->fabric,
			 o->node, ERR_PTR(ret));
		goto err_wq;
	}
	info = list_first_entry(&infos, struct kfi_info, list);
	srv->pep = kfi_pep_alloc(info->fabric, run->net, kst_srv_cm_handler, srv);
	kfi_freeinfo(&infos);
	if (IS_ERR(srv->pep)) {
		ret = PTR_ERR(srv->pep);
		kst_diag(run, "kfi_pep_alloc: %pe", ERR_PTR(ret));
		goto err_wq;
	}
	/* Requests may arrive before kfi_listen() returns: all is set up. */
	ret = kfi_listen(srv->pep, &o->addr, KST_BACKLOG);
	if (ret) {
		kst_diag(run, "kfi_listen on %s port %s: %pe", o->node, o->service,
			 ERR_PTR(ret));
		goto err_pep;
	}
	kst_diag(run, "responder listening on %s port %s", o->node, o->service);
	kst_server = srv;
	return KST_PASS;

err_pep:
	kfi_pep_free(srv->pep);
err_wq:
	destroy_workqueue(srv->wq);
err_free:
	mutex_destroy(&srv->lock);
	kfree(srv);
	return KST_FAIL;
}

/**
 * kst_stop() - stop the responder, if it runs
 *
 * Rejects new connections and tears down the responder's connections.
 */
void kst_stop(void)
{
	if (kst_server) {
		kst_server_stop(kst_server);
		kst_server = NULL;
	}
}

/**
 * kst_serving() - whether the responder runs
 *
 * Return: true between kst_serve() and kst_stop().
 */
bool kst_serving(void)
{
	return kst_server;
}
