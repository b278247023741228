// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric over NTB: a fuzzer for what the peer writes, for testing only
 * (CONFIG_KFABRIC_NTB_FUZZ).
 *
 * A write of N to kfi_ntb/fuzz in debugfs sets up a link with no NTB
 * device behind it, whose inbound buffer is written by the fuzzer instead
 * of a peer, and runs N rounds. The link's domain is registered privately,
 * so that no ULP finds it, and its connection requests reach no listener:
 * fuzzing never touches real users. Each round writes a descriptor into the
 * ring of a connected endpoint, made from a valid one (a send into a
 * posted receive, a write into or read from a mapped region, the answer
 * to a read of ours, a NAK) and then mutated, or not, with a valid
 * sequence number most of the time; sometimes also a control message, and
 * credit counters; then runs the link's data worker on it. The endpoint
 * is connected again whenever a descriptor broke its connection, and the
 * link gets a new session whenever the provider reset it. Writers in
 * parallel each fuzz a link of their own.
 *
 * Before the random rounds, each run plays scripted scenarios of a peer
 * that misbehaves in a given way and checks how the link copes: a peer
 * that floods connection requests and never consumes our answers gets its
 * link reset, with what we queued for it bounded; channels that a peer
 * never answers a DISCONNECT for are reclaimed; a late answer to a
 * request given up is not taken for the answer to the request that
 * reused its channel. A run whose scripted scenario fails names it in
 * its summary and runs no rounds.
 *
 * Now and then a round also plays a random scenario, a peer that breaks
 * the protocol in a given way, and checks how the provider took it; the
 * summary counts the scenarios that failed, scripted or random, and the
 * write fails with -EIO if any did.
 *
 * Every buffer the descriptors may reach is a kmalloc()ed buffer of the
 * exact size, so that under KASAN any write outside a registered region
 * or a posted receive is reported.
 */
#include <linux/debugfs.h>
#include <linux/prandom.h>
#include <linux/random.h>
#include <linux/seq_buf.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "kfi_ntb.h"

#define KFN_FUZZ_SIZE		SZ_512K
#define KFN_FUZZ_CHANNELS	4
#define KFN_FUZZ_REGION		SZ_64K
#define KFN_FUZZ_RX		8
#define KFN_FUZZ_RX_SIZE	SZ_4K
#define KFN_FUZZ_LOCAL		SZ_4K
#define KFN_FUZZ_PORT		0xfff0	/* up to 0xfff3; nobody listens */
#define KFN_FUZZ_PEER		"ntb-fuzz-peer"
#define KFN_FUZZ_OUT_MAX	SZ_4K

struct kfn_fuzz {
	struct rnd_state rnd;
	struct kfn_link *link;
	struct kfi_cq *cq;
	struct kfi_ep *ep;
	struct kfn_ep *kep;
	struct kfi_mr *mr;
	struct kfi_cqe cqe;
	struct kvec region;
	struct kvec rx[KFN_FUZZ_RX];
	struct kvec local;
	u32 rx_next;
	u32 read_len;
	atomic64_t completions;
	u64 descs;
	u64 ctrls;
	u64 resets;
	u64 consumed;
	u64 sessions;
	u64 random_scenarios;
	u64 failures;
	bool remap;
	u32 scenarios;
	const char *failed;
};

static u32 kfn_rnd(struct kfn_fuzz *f)
{
	return prandom_u32_state(&f->rnd);
}

static bool kfn_one_in(struct kfn_fuzz *f, u32 n)
{
	return !(kfn_rnd(f) % n);
}

static void kfn_fuzz_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct kfn_fuzz *f = container_of(wc->cqe, struct kfn_fuzz, cqe);

	atomic64_inc(&f->completions);
}

static void kfn_fuzz_cm(void *context, const struct kfi_cm_event *event)
{
}

/* Fuzz runs may go on in parallel, one per writer: tell them apart. */
static atomic_t kfn_fuzz_runs = ATOMIC_INIT(0);

/*
 * Start a session on the fuzzer's link, as the handshake does on a real
 * link: nothing sent or consumed yet, a new session number, and the peer
 * named as by its HELLO. Only the control area needs clearing: a channel
 * is cleared when it is bound.
 */
static void kfn_fuzz_start(struct kfn_link *link)
{
	memset(link->in, 0, KFN_CTRL_AREA);
	link->ctrl_cons = 0;
	link->ctrl_cons_pub = 0;
	link->ctrl_prod = 0;
	link->ctrl_acked = 0;
	link->nonce = link->nonce + 1 ?: 1;
	link->session_gen = atomic_read(&link->gen);
	strscpy(link->peer_name, KFN_FUZZ_PEER);
	link->named = true;
	link->up = true;
}

static struct kfn_link *kfn_fuzz_link(void)
{
	struct kfi_domain *dom = kfi_domain_alloc(&kfn_fabric, NULL);
	struct kfn_link *link;
	int ret = -ENOMEM;
	void *out;

	if (!dom)
		return ERR_PTR(-ENOMEM);
	link = to_kfn_link(dom);
	ret = kfn_link_init(link, KFN_FUZZ_CHANNELS);
	if (ret)
		goto err;
	ret = -ENOMEM;
	snprintf(dom->attr.name, sizeof(dom->attr.name), "ntb-fuzz.%d",
		 atomic_inc_return(&kfn_fuzz_runs));
	link->name = dom->attr.name;
	kfn_fill_attr(link);
	kfn_layout_init(&link->in_l, KFN_FUZZ_SIZE, KFN_FUZZ_CHANNELS);
	link->out_l = link->in_l;
	link->in = vzalloc(KFN_FUZZ_SIZE);
	/* What the window would lead to: RAM here, as with a software bridge. */
	out = vzalloc(KFN_FUZZ_SIZE);
	link->out = (void __force __iomem *)out;
	link->chans = kcalloc(link->in_l.nch, sizeof(*link->chans), GFP_KERNEL);
	if (!link->in || !link->out || !link->chans)
		goto err;
	link->peer_nonce = 1;
	kfn_fuzz_start(link);
	ret = kfi_domain_register_private(dom);
	if (ret)
		goto err;
	return link;

err:
	vfree(link->in);
	vfree((void __force *)link->out);
	kfi_domain_free(dom);
	return ERR_PTR(ret);
}

static void kfn_fuzz_link_free(struct kfn_link *link)
{
	mutex_lock(&link->mutex);
	link->dying = true;
	mutex_unlock(&link->mutex);
	cancel_work_sync(&link->cm_work);
	kfi_domain_get(&link->dom);
	kfi_domain_unregister(&link->dom);
	mutex_lock(&link->mutex);
	kfn_cm_flush(link);
	link->up = false;
	mutex_unlock(&link->mutex);
	cancel_work_sync(&link->data_work);
	cancel_work_sync(&link->cm_work);
	vfree(link->in);
	vfree((void __force *)link->out);
	kfi_domain_put(&link->dom);
}

/*
 * Connect the endpoint to the fuzzer, on a fresh channel; the mutex held,
 * and dropped meanwhile.
 */
static void kfn_fuzz_attach(struct kfn_fuzz *f)
{
	struct kfn_link *link = f->link;
	u32 i;

	/*
	 * As a ULP does, let the events of the last connection reach the
	 * handler first: an endpoint holds a few only. Not under the mutex,
	 * which handlers may take through kfabric calls.
	 */
	mutex_unlock(&link->mutex);
	flush_work(&f->kep->cm_work);
	mutex_lock(&link->mutex);
	/* Flush what the last connection left. */
	kfn_ep_process(f->kep);
	for (i = 0; i < link->in_l.nch; i++)
		kfn_chan_free(link, i);
	if (kfn_chan_alloc(link, f->kep) >= 0)
		kfn_ep_connected(f->kep, kfn_rnd(f) % link->out_l.nch, kfn_rnd(f));
}

/*
 * Play the link worker when the session is over, or before a scripted
 * scenario: end it as kfn_link_down() does and start another. The
 * region's key is stale now: the ULP maps it again.
 */
static void kfn_fuzz_session(struct kfn_fuzz *f)
{
	f->link->up = false;
	kfn_session_end(f->link);
	kfn_fuzz_start(f->link);
	f->remap = true;
	f->sessions++;
}

/* A new session if the last one is over, a new connection if it broke. */
static void kfn_fuzz_recover(struct kfn_fuzz *f)
{
	if (kfn_link_stale(f->link))
		kfn_fuzz_session(f);
	if (f->kep->state != KFN_EP_CONNECTED || f->kep->lc < 0) {
		f->resets++;
		kfn_fuzz_attach(f);
	}
}

static int kfn_fuzz_setup(struct kfn_fuzz *f)
{
	struct kfi_cq_attr cq_attr = {
		.nr_cqe = 64,
		.comp_vector = -1,
		.poll_ctx = KFI_POLL_WORKQUEUE,
	};
	struct kfi_ep_attr ep_attr = {
		.type = KFI_EP_MSG,
		.max_send_ops = 8,
		.max_recv_ops = KFN_FUZZ_RX,
		.max_send_sge = 1,
		.max_recv_sge = 1,
		.handler = kfn_fuzz_cm,
	};
	u32 i;

	f->cqe.done = kfn_fuzz_done;
	f->region.iov_len = KFN_FUZZ_REGION;
	f->region.iov_base = kzalloc(KFN_FUZZ_REGION, GFP_KERNEL);
	f->local.iov_len = KFN_FUZZ_LOCAL;
	f->local.iov_base = kzalloc(KFN_FUZZ_LOCAL, GFP_KERNEL);
	if (!f->region.iov_base || !f->local.iov_base)
		return -ENOMEM;
	for (i = 0; i < KFN_FUZZ_RX; i++) {
		f->rx[i].iov_len = KFN_FUZZ_RX_SIZE;
		f->rx[i].iov_base = kzalloc(KFN_FUZZ_RX_SIZE, GFP_KERNEL);
		if (!f->rx[i].iov_base)
			return -ENOMEM;
	}
	f->cq = kfi_cq_alloc(&f->link->dom, &cq_attr);
	if (IS_ERR(f->cq))
		return PTR_ERR(f->cq);
	ep_attr.send_cq = f->cq;
	ep_attr.recv_cq = f->cq;
	ep_attr.context = f;
	f->ep = kfi_ep_alloc(&f->link->dom, &ep_attr);
	if (IS_ERR(f->ep))
		return PTR_ERR(f->ep);
	f->kep = to_kfn_ep(f->ep);
	f->mr = kfi_mr_alloc(&f->link->dom, 1);
	if (IS_ERR(f->mr))
		return PTR_ERR(f->mr);
	mutex_lock(&f->link->mutex);
	kfn_fuzz_attach(f);
	mutex_unlock(&f->link->mutex);
	return 0;
}

static void kfn_fuzz_teardown(struct kfn_fuzz *f)
{
	u32 i;

	if (!IS_ERR_OR_NULL(f->ep))
		kfi_ep_free(f->ep);
	if (!IS_ERR_OR_NULL(f->mr))
		kfi_mr_free(f->mr);
	if (!IS_ERR_OR_NULL(f->cq))
		kfi_cq_free(f->cq);
	for (i = 0; i < KFN_FUZZ_RX; i++)
		kfree(f->rx[i].iov_base);
	kfree(f->local.iov_base);
	kfree(f->region.iov_base);
}

/* What a ULP would do: receives, a mapped region, now and then an RMA. */
static void kfn_fuzz_ulp(struct kfn_fuzz *f)
{
	struct kfi_rma_iov rma;
	struct kfi_iov iov;
	struct kfi_msg msg = { .iov = &iov, .niov = 1, .cqe = &f->cqe };
	u32 r;

	kfi_iov_kvec(&iov, &f->rx[f->rx_next], 1);
	if (!kfi_recv(f->ep, &msg, 0))
		f->rx_next = (f->rx_next + 1) % KFN_FUZZ_RX;
	if (f->remap && !kfi_mr_invalidate(f->ep, f->mr, &f->cqe, 0))
		f->remap = false;
	if (!READ_ONCE(f->mr->length)) {
		kfi_iov_kvec(&iov, &f->region, 1);
		kfi_mr_map(f->ep, f->mr, &iov,
			   KFI_ACCESS_REMOTE_READ | KFI_ACCESS_REMOTE_WRITE,
			   &f->cqe, 0);
	}
	r = kfn_rnd(f) % 64;
	if (r > 2)
		return;
	kfi_iov_kvec(&iov, &f->local, 1);
	iov.len = kfn_rnd(f) % KFN_FUZZ_LOCAL + 1;
	rma.addr = f->mr->addr;
	rma.key = f->mr->key;
	rma.len = iov.len;
	if (r == 0 && !kfi_read(f->ep, &msg, &rma, 0))
		f->read_len = iov.len;
	else if (r == 1)
		kfi_write(f->ep, &msg, &rma, KFI_IMM);
	else
		kfi_send(f->ep, &msg, 0);
}

/*
 * A payload length up to @max: mostly short, since what is checked are
 * the bounds, not the bulk, and every byte costs a copy or two; one in
 * eight anywhere up to @max, which reaches every bound.
 */
static u32 kfn_fuzz_len(struct kfn_fuzz *f, u32 max)
{
	return kfn_rnd(f) % ((kfn_one_in(f, 8) ? max : min(max, 256U)) + 1);
}

/* A descriptor, valid before it is mutated. */
static void kfn_fuzz_make(struct kfn_fuzz *f, struct kfn_desc *d, u32 *len)
{
	const struct kfn_layout *l = &f->link->in_l;
	struct kfn_ep *kep = f->kep;
	u32 n = kfn_fuzz_len(f, l->max_chunk);
	u32 type = kfn_rnd(f) % 20;

	memset(d, 0, sizeof(*d));
	/* Mostly what a peer sends; answers to reads only when one waits. */
	if (type < 6)
		type = 0;
	else if (type < 12)
		type = 1;
	else if (type < 15)
		type = 2;
	else if (type < 18)
		type = kep->sq_head != kep->sq_tail ? 3 : 0;
	else
		type -= 14;
	switch (type) {
	case 0:
		d->type = KFN_D_SEND;
		n = min_t(u32, n, KFN_FUZZ_RX_SIZE);
		d->flags = !kfn_one_in(f, 8) ? KFN_DF_FIRST | KFN_DF_LAST :
					       kfn_rnd(f) & 0xf;
		d->imm = cpu_to_le32(kfn_rnd(f));
		d->inv_key = cpu_to_le64(f->mr->key);
		break;
	case 1:
		d->type = KFN_D_WRITE;
		d->key = cpu_to_le64(f->mr->key);
		d->addr = cpu_to_le64(f->mr->addr +
				      kfn_rnd(f) % (KFN_FUZZ_REGION - n + 1));
		d->flags = KFN_DF_LAST | (kfn_one_in(f, 4) ? KFN_DF_IMM : 0);
		d->off = cpu_to_le32(n);
		break;
	case 2:
		d->type = KFN_D_READ_REQ;
		d->key = cpu_to_le64(f->mr->key);
		n = kfn_fuzz_len(f, KFN_FUZZ_REGION);
		d->addr = cpu_to_le64(f->mr->addr +
				      kfn_rnd(f) % (KFN_FUZZ_REGION - n + 1));
		d->tag = cpu_to_le32(kfn_rnd(f));
		*len = 0;
		d->len = cpu_to_le32(n);
		return;
	case 3:
		d->type = KFN_D_READ_RESP;
		d->tag = cpu_to_le32(kep->rd_next - 1);
		n = kfn_one_in(f, 4) ? min_t(u32, n, KFN_FUZZ_LOCAL) : f->read_len;
		d->flags = KFN_DF_LAST;
		break;
	case 4:
		d->type = KFN_D_NAK;
		d->tag = cpu_to_le32(kep->tx_acked + kfn_rnd(f) % 4);
		d->status = kfn_rnd(f) % 4;
		n = 0;
		break;
	default:
		d->type = kfn_rnd(f);
		break;
	}
	n = min(n, l->max_chunk);
	d->stage_off = cpu_to_le32(kfn_rnd(f) % (l->stage_size - n + 1));
	d->len = cpu_to_le32(n);
	*len = n;
}

static void kfn_fuzz_mutate(struct kfn_fuzz *f, void *p, size_t size)
{
	u32 i, n = kfn_rnd(f) % 4 + 1;
	u8 *b = p;

	for (i = 0; i < n; i++) {
		switch (kfn_rnd(f) % 3) {
		case 0:
			b[kfn_rnd(f) % size] ^= BIT(kfn_rnd(f) % 8);
			break;
		case 1:
			b[kfn_rnd(f) % size] = kfn_rnd(f);
			break;
		default:
			b[kfn_rnd(f) % size] = 0xff;
			break;
		}
	}
}

/* Write @d into the endpoint's ring as the peer's next descriptor. */
static void kfn_fuzz_put_desc(struct kfn_fuzz *f, const struct kfn_desc *d,
			      u32 seq)
{
	struct kfn_ep *kep = f->kep;
	struct kfn_desc *slot = kfn_in_chan(f->link, kep->lc) +
				sizeof(struct kfn_hdr);

	slot += kep->rx_cons % KFN_RING;
	memcpy((void *)slot + sizeof(d->seq), (void *)d + sizeof(d->seq),
	       sizeof(*d) - sizeof(d->seq));
	WRITE_ONCE(slot->seq, cpu_to_le32(seq));
}

/* The sequence number of the endpoint's next descriptor. */
static u32 kfn_fuzz_seq(struct kfn_fuzz *f)
{
	return f->kep->rx_base + f->kep->rx_cons + 1;
}

/* Play the peer: a descriptor, maybe credits, into the endpoint's channel. */
static void kfn_fuzz_desc(struct kfn_fuzz *f)
{
	struct kfn_link *link = f->link;
	struct kfn_ep *kep = f->kep;
	void *chan = kfn_in_chan(link, kep->lc);
	struct kfn_hdr *hdr = chan;
	struct kfn_desc d;
	u32 len, off;

	kfn_fuzz_make(f, &d, &len);
	if (len) {
		off = le32_to_cpu(d.stage_off);
		memset(chan + KFN_CHAN_HDR + off, kfn_rnd(f), len);
	}
	if (kfn_one_in(f, 4))
		kfn_fuzz_mutate(f, &d, sizeof(d));
	kfn_fuzz_put_desc(f, &d, kfn_one_in(f, 16) ? kfn_rnd(f) :
				 kfn_fuzz_seq(f));
	/* The peer's credits: all we sent consumed, or nonsense. */
	WRITE_ONCE(hdr->cons, cpu_to_le32(kfn_one_in(f, 32) ? kfn_rnd(f) :
					  kep->tx_prod));
	f->descs++;
}

/*
 * Write @m into the control ring as the peer's message @ahead places after
 * its next one.
 */
static void kfn_fuzz_put_ctrl_at(struct kfn_fuzz *f, const struct kfn_ctrl *m,
				 u32 ahead)
{
	struct kfn_link *link = f->link;
	u32 seq = link->ctrl_cons + ahead + 1;
	struct kfn_ctrl *slot = link->in + sizeof(struct kfn_hdr) +
				((seq - 1) % KFN_CTRL_RING) * KFN_CTRL_SIZE;

	memcpy((void *)slot + sizeof(m->seq), (void *)m + sizeof(m->seq),
	       sizeof(*m) - sizeof(m->seq));
	WRITE_ONCE(slot->seq, cpu_to_le32(seq));
}

/* Write @m into the control ring as the peer's next message. */
static void kfn_fuzz_put_ctrl(struct kfn_fuzz *f, const struct kfn_ctrl *m)
{
	kfn_fuzz_put_ctrl_at(f, m, 0);
}

/* Play the peer: a control message. */
static void kfn_fuzz_ctrl(struct kfn_fuzz *f)
{
	struct kfn_link *link = f->link;
	struct kfn_hdr *hdr = link->in;
	u32 nch = link->in_l.nch;
	struct kfn_ctrl m;

	memset(&m, 0, sizeof(m));
	m.type = kfn_rnd(f) % 7;
	m.status = kfn_rnd(f) % 4;
	m.session = cpu_to_le32(kfn_one_in(f, 8) ? kfn_rnd(f) : link->nonce);
	m.src_chan = cpu_to_le32(kfn_rnd(f) % (nch + 1));
	m.dst_chan = cpu_to_le32(kfn_one_in(f, 2) && f->kep->lc >= 0 ?
				 f->kep->lc : kfn_rnd(f) % (nch + 1));
	m.port = cpu_to_le32(KFN_FUZZ_PORT + kfn_rnd(f) % 4);
	m.len = cpu_to_le16(kfn_rnd(f) % (KFI_CM_DATA_MAX + 8));
	memset(m.data, 'a' + kfn_rnd(f) % 26, sizeof(m.data));
	if (kfn_one_in(f, 2))
		kfn_fuzz_mutate(f, &m, sizeof(m));
	kfn_fuzz_put_ctrl(f, &m);
	WRITE_ONCE(hdr->cons, cpu_to_le32(kfn_one_in(f, 32) ? kfn_rnd(f) :
					  link->ctrl_prod));
	f->ctrls++;
}

/* How the provider took a scenario. */
enum kfn_fuzz_verdict {
	KFN_FUZZ_SKIP,		/* it does not apply now */
	KFN_FUZZ_PASS,
	KFN_FUZZ_FAIL,
};

static enum kfn_fuzz_verdict kfn_fuzz_verdict(bool pass)
{
	return pass ? KFN_FUZZ_PASS : KFN_FUZZ_FAIL;
}

/* A valid control message of the current session. */
static void kfn_fuzz_ctrl_init(struct kfn_fuzz *f, struct kfn_ctrl *m, u8 type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->session = cpu_to_le32(f->link->nonce);
}

/*
 * A peer that floods us with connection requests, a ring full at a time,
 * and never consumes our answers: what we owe it must stay within the
 * link's pools, and the link must be reset. The delivery work is kept
 * out by the mutex, so requests pile up too and are refused as busy.
 * The mutex held, as for every scenario.
 */
static bool kfn_fuzz_connreq_flood(struct kfn_fuzz *f)
{
	struct kfn_link *link = f->link;
	u32 i, j, rounds;
	struct kfn_ctrl m;
	bool ok = true;

	kfn_fuzz_ctrl_init(f, &m, KFN_CTRL_CONNREQ);
	m.port = cpu_to_le32(KFN_FUZZ_PORT);
	/* Twice what it takes to fill the pools. */
	rounds = 2 * (link->ctrl_max + KFN_MAX_CONNREQS) / KFN_CTRL_RING;
	for (i = 0; i < rounds && !link->reset; i++) {
		for (j = 0; j < KFN_CTRL_RING; j++) {
			m.src_chan = cpu_to_le32(j % link->out_l.nch);
			kfn_fuzz_put_ctrl_at(f, &m, j);
		}
		kfn_link_process(link);
		ok &= link->ctrl_queued <= link->ctrl_max &&
		      link->nr_connreqs <= KFN_MAX_CONNREQS;
	}
	ok &= link->reset;
	return ok;
}

/*
 * A peer that never answers our DISCONNECTs: once every channel waits
 * for an answer, none is left for a new connection until they are
 * reclaimed. The wait is skipped by moving the deadlines. The mutex held.
 */
static bool kfn_fuzz_silent_close(struct kfn_fuzz *f)
{
	struct kfn_link *link = f->link;
	struct kfn_ep *kep = f->kep;
	bool ok = true;
	int c;
	u32 i;

	for (i = 0; i < link->in_l.nch; i++) {
		c = kfn_chan_alloc(link, kep);
		ok = c >= 0;
		if (!ok)
			break;
		kfn_ep_connected(kep, i % link->out_l.nch, kfn_rnd(f));
		kfn_send_disconnect(kep);
		/* Then freed, as kfn_ep_drain() leaves the channel. */
		link->chans[c].ep = NULL;
		kep->lc = -1;
	}
	kfn_link_process(link);
	ok &= kfn_chan_alloc(link, kep) < 0;
	for (i = 0; i < link->in_l.nch; i++)
		link->chans[i].deadline = jiffies - 1;
	link->reap_at = jiffies - 1;
	kfn_link_process(link);
	ok &= !link->nr_closing && kfn_chan_alloc(link, kep) >= 0;
	return ok;
}

/*
 * Connect a new endpoint to the fuzzer's port as a ULP's does. Called, as
 * every scenario, with the link's mutex held; it is dropped meanwhile,
 * since the provider takes it.
 */
static struct kfi_ep *kfn_fuzz_connect(struct kfn_link *link,
				       const struct kfi_ep_attr *attr,
				       const struct kfi_addr *dest)
{
	struct kfi_ep *ep;
	int ret;

	lockdep_assert_held(&link->mutex);
	mutex_unlock(&link->mutex);
	ep = kfi_ep_alloc(&link->dom, attr);
	if (!IS_ERR(ep)) {
		ret = kfi_connect(ep, dest, NULL, 0);
		if (ret) {
			kfi_ep_free(ep);
			ep = ERR_PTR(ret);
		}
	}
	mutex_lock(&link->mutex);
	return ep;
}

/* Free an endpoint of kfn_fuzz_connect(), with the link's mutex held. */
static void kfn_fuzz_ep_free(struct kfn_link *link, struct kfi_ep *ep)
{
	lockdep_assert_held(&link->mutex);
	mutex_unlock(&link->mutex);
	kfi_ep_free(ep);
	mutex_lock(&link->mutex);
}

/*
 * Answers to an earlier request on a channel, which came after we gave
 * that request up and reused the channel for a new one: a REJECT or an
 * ACCEPT whose req_base is not the new request's leaves the new one
 * waiting (the ACCEPT is answered with DISCONNECT), and the real answer
 * still ends it.
 */
static bool kfn_fuzz_late_answer(struct kfn_fuzz *f)
{
	struct kfi_addr dest = {
		.format = KFI_ADDR_NAME,
		.name.port = KFN_FUZZ_PORT,
	};
	struct kfi_ep_attr attr = {
		.type = KFI_EP_MSG,
		.max_send_ops = 1,
		.max_recv_ops = 1,
		.max_send_sge = 1,
		.max_recv_sge = 1,
		.send_cq = f->cq,
		.recv_cq = f->cq,
		.handler = kfn_fuzz_cm,
	};
	struct kfn_link *link = f->link;
	struct kfn_ctrl m;
	struct kfn_ep *kep;
	struct kfi_ep *ep;
	u32 base, prod;
	bool ok;
	int c;

	ep = kfn_fuzz_connect(link, &attr, &dest);
	if (IS_ERR(ep))
		return false;
	kep = to_kfn_ep(ep);
	c = kep->lc;
	/* No answer has come yet: the request must still hold its channel. */
	ok = kep->state == KFN_EP_CONNECTING && c >= 0;
	if (!ok)
		goto out;
	base = link->chans[c].base;

	kfn_fuzz_ctrl_init(f, &m, KFN_CTRL_REJECT);
	m.dst_chan = cpu_to_le32(c);
	m.req_base = cpu_to_le32(base + 1);
	kfn_fuzz_put_ctrl(f, &m);
	kfn_link_process(link);
	ok &= kep->state == KFN_EP_CONNECTING && kep->lc == c;

	kfn_fuzz_ctrl_init(f, &m, KFN_CTRL_ACCEPT);
	m.src_chan = cpu_to_le32(0);
	m.dst_chan = cpu_to_le32(c);
	m.seq_base = cpu_to_le32(kfn_rnd(f) % (U32_MAX - KFN_RING));
	m.auth_key = cpu_to_le32(ep->attr.auth_key);
	m.req_base = cpu_to_le32(~base);
	prod = link->ctrl_prod;
	kfn_fuzz_put_ctrl(f, &m);
	kfn_link_process(link);
	ok &= kep->state == KFN_EP_CONNECTING && link->chans[c].rc < 0 &&
	      link->ctrl_prod == prod + 1;

	kfn_fuzz_ctrl_init(f, &m, KFN_CTRL_REJECT);
	m.dst_chan = cpu_to_le32(c);
	m.req_base = cpu_to_le32(base);
	kfn_fuzz_put_ctrl(f, &m);
	kfn_link_process(link);
	ok &= kep->state == KFN_EP_IDLE &&
	      link->chans[c].state == KFN_CHAN_FREE;
out:
	kfn_fuzz_ep_free(link, ep);
	return ok;
}

struct kfn_fuzz_script {
	const char *name;
	bool (*play)(struct kfn_fuzz *f);
};

/* Scripted scenarios, each played once per run, before the rounds. */
static const struct kfn_fuzz_script kfn_fuzz_scripts[] = {
	{ "late_answer", kfn_fuzz_late_answer },
	{ "connreq_flood", kfn_fuzz_connreq_flood },
	{ "silent_close", kfn_fuzz_silent_close },
};

/*
 * The scripted scenarios, each in a session of its own, the endpoint
 * without a channel; false when one failed. Then a new session, with the
 * endpoint connected, for the rounds.
 */
static bool kfn_fuzz_play(struct kfn_fuzz *f)
{
	const struct kfn_fuzz_script *s;
	bool ok = true;

	mutex_lock(&f->link->mutex);
	for (s = kfn_fuzz_scripts;
	     s < kfn_fuzz_scripts + ARRAY_SIZE(kfn_fuzz_scripts); s++) {
		kfn_fuzz_session(f);
		if (!s->play(f)) {
			f->failed = s->name;
			f->failures++;
			ok = false;
			break;
		}
		f->scenarios++;
	}
	if (ok) {
		kfn_fuzz_session(f);
		/* The ULP has not mapped its region yet. */
		f->remap = false;
		kfn_fuzz_attach(f);
	}
	mutex_unlock(&f->link->mutex);
	return ok;
}

/*
 * A second HELLO, which would rename the peer under its connections: the
 * link is reset, and the peer keeps its name.
 */
static enum kfn_fuzz_verdict kfn_fuzz_hello(struct kfn_fuzz *f)
{
	static const char name[] = "ntb-fuzz-rogue";
	struct kfn_link *link = f->link;
	struct kfn_ctrl m;

	kfn_fuzz_ctrl_init(f, &m, KFN_CTRL_HELLO);
	m.len = cpu_to_le16(sizeof(name) - 1);
	memcpy(m.data, name, sizeof(name) - 1);
	kfn_fuzz_put_ctrl(f, &m);
	kfn_link_process(link);
	return kfn_fuzz_verdict(link->reset &&
				!strcmp(link->peer_name, KFN_FUZZ_PEER));
}

/*
 * The session flips while the region is mapped: in the next session, a
 * write with the key and address of the last one is refused, though the
 * region is still mapped, and not consumed.
 */
static enum kfn_fuzz_verdict kfn_fuzz_flip(struct kfn_fuzz *f)
{
	struct kfn_desc d = { .type = KFN_D_WRITE, .flags = KFN_DF_LAST };
	struct kfn_mr *km = to_kfn_mr(f->mr);
	struct kfn_link *link = f->link;
	struct kfn_ep *kep = f->kep;
	u32 cons;

	if (!READ_ONCE(f->mr->length) || km->epoch != link->mr_epoch)
		return KFN_FUZZ_SKIP;
	d.key = cpu_to_le64(f->mr->key);
	d.addr = cpu_to_le64(f->mr->addr);
	d.len = cpu_to_le32(8);
	d.off = d.len;
	kfn_fuzz_session(f);
	kfn_fuzz_attach(f);
	cons = kep->rx_cons;
	kfn_fuzz_put_desc(f, &d, kfn_fuzz_seq(f));
	kfn_link_process(link);
	return kfn_fuzz_verdict(kep->rx_cons == cons &&
				kep->state == KFN_EP_ERROR);
}

/* A reserved word of a header set; the heartbeat too, as the link has none. */
static void kfn_fuzz_hdr_rsvd(struct kfn_fuzz *f, struct kfn_hdr *hdr, u32 v)
{
	if (kfn_one_in(f, 4))
		hdr->beat = cpu_to_le32(v);
	else
		hdr->rsvd[kfn_rnd(f) % ARRAY_SIZE(hdr->rsvd)] = cpu_to_le32(v);
}

/*
 * Write a REJECT for the channel after the endpoint's, which is free, so
 * that the message is otherwise ignored; with a reserved word set to
 * @rsvd unless it is 0.
 */
static void kfn_fuzz_put_free_reject(struct kfn_fuzz *f, u32 rsvd)
{
	struct kfn_link *link = f->link;
	struct kfn_ctrl m;

	kfn_fuzz_ctrl_init(f, &m, KFN_CTRL_REJECT);
	m.dst_chan = cpu_to_le32((f->kep->lc + 1) % link->in_l.nch);
	if (rsvd)
		m.rsvd[kfn_rnd(f) % ARRAY_SIZE(m.rsvd)] = cpu_to_le32(rsvd);
	kfn_fuzz_put_ctrl(f, &m);
}

/*
 * A reserved field or flag that is not zero, in a control message or the
 * control header, which resets the link, or in a descriptor or a channel
 * header, which breaks the endpoint's connection; nothing of it is
 * consumed.
 */
static enum kfn_fuzz_verdict kfn_fuzz_reserved(struct kfn_fuzz *f)
{
	struct kfn_desc d = {
		.type = KFN_D_SEND,
		.flags = KFN_DF_FIRST | KFN_DF_LAST,
	};
	struct kfn_link *link = f->link;
	struct kfn_ep *kep = f->kep;
	u32 cons = kep->rx_cons, v = kfn_rnd(f) | 1;

	switch (kfn_rnd(f) % 6) {
	case 0:
		kfn_fuzz_put_free_reject(f, v);
		kfn_link_process(link);
		return kfn_fuzz_verdict(link->reset);
	case 1:
		kfn_fuzz_hdr_rsvd(f, link->in, v);
		kfn_link_process(link);
		return kfn_fuzz_verdict(link->reset);
	case 2:
		d.rsvd0 = v;
		break;
	case 3:
		d.rsvd[kfn_rnd(f) % ARRAY_SIZE(d.rsvd)] = cpu_to_le32(v);
		break;
	case 4:
		/* One above the flags there are. */
		d.flags |= BIT(fls(KFN_DF_ALL) +
			       kfn_rnd(f) % (8 - fls(KFN_DF_ALL)));
		break;
	default:
		kfn_fuzz_hdr_rsvd(f, kfn_in_chan(link, kep->lc), v);
		d.type = 0;
		break;
	}
	if (d.type)
		kfn_fuzz_put_desc(f, &d, kfn_fuzz_seq(f));
	kfn_link_process(link);
	return kfn_fuzz_verdict(kep->rx_cons == cons &&
				kep->state == KFN_EP_DISCONNECTED);
}

/*
 * A link event found the link down, and the link worker has not run yet:
 * what the peer wrote meanwhile, a control message and a descriptor, is
 * not consumed.
 */
static enum kfn_fuzz_verdict kfn_fuzz_stale(struct kfn_fuzz *f)
{
	struct kfn_desc d = {
		.type = KFN_D_SEND,
		.flags = KFN_DF_FIRST | KFN_DF_LAST,
	};
	struct kfn_link *link = f->link;
	struct kfn_ep *kep = f->kep;
	u32 ctrl = link->ctrl_cons, cons = kep->rx_cons;

	kfn_fuzz_put_free_reject(f, 0);
	kfn_fuzz_put_desc(f, &d, kfn_fuzz_seq(f));
	/* What kfn_link_event() does when it finds the link down. */
	atomic_inc(&link->gen);
	kfn_link_process(link);
	return kfn_fuzz_verdict(link->ctrl_cons == ctrl &&
				kep->rx_cons == cons);
}

static const struct {
	const char *name;
	enum kfn_fuzz_verdict (*run)(struct kfn_fuzz *f);
} kfn_fuzz_scenarios[] = {
	{ "second HELLO", kfn_fuzz_hello },
	{ "session flip", kfn_fuzz_flip },
	{ "reserved field", kfn_fuzz_reserved },
	{ "stale generation", kfn_fuzz_stale },
};

/* One random scenario, on the connected endpoint; the mutex held. */
static void kfn_fuzz_scenario(struct kfn_fuzz *f)
{
	u32 i = kfn_rnd(f) % ARRAY_SIZE(kfn_fuzz_scenarios);

	switch (kfn_fuzz_scenarios[i].run(f)) {
	case KFN_FUZZ_SKIP:
		return;
	case KFN_FUZZ_FAIL:
		f->failures++;
		/* Not a "kfi_ntb: fuzz:" line: those are the summaries. */
		pr_err_ratelimited("kfi_ntb: %s: fuzz scenario \"%s\" failed\n",
				   f->link->name, kfn_fuzz_scenarios[i].name);
		break;
	case KFN_FUZZ_PASS:
		break;
	}
	f->random_scenarios++;
}

/*
 * Feed a link @count rounds of mutated peer writes from the pseudo-random
 * sequence of @seed, and write a summary to @out. Returns 0, -EIO when a
 * scenario failed, or a negative errno when the set-up failed.
 */
static int kfn_fuzz_run(u64 count, u32 seed, struct seq_buf *out)
{
	struct kfn_fuzz *f;
	u32 cons;
	u64 i;
	int ret;

	f = kzalloc_obj(*f, GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	prandom_seed_state(&f->rnd, seed);
	f->link = kfn_fuzz_link();
	if (IS_ERR(f->link)) {
		ret = PTR_ERR(f->link);
		kfree(f);
		return ret;
	}
	ret = kfn_fuzz_setup(f);
	if (!ret && !kfn_fuzz_play(f))
		ret = -EIO;
	for (i = 0; !ret && i < count; i++) {
		kfn_fuzz_ulp(f);
		mutex_lock(&f->link->mutex);
		if (f->kep->state == KFN_EP_CONNECTED && f->kep->lc >= 0) {
			cons = f->kep->rx_cons;
			kfn_fuzz_desc(f);
			if (kfn_one_in(f, 8))
				kfn_fuzz_ctrl(f);
			kfn_link_process(f->link);
			f->consumed += f->kep->rx_cons - cons;
		}
		kfn_fuzz_recover(f);
		if (kfn_one_in(f, 64)) {
			kfn_fuzz_scenario(f);
			kfn_fuzz_recover(f);
		}
		mutex_unlock(&f->link->mutex);
		if (signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		cond_resched();
	}
	seq_buf_printf(out,
		       "seed %u rounds %llu descriptors %llu consumed %llu control %llu resets %llu protocol_errors %llu naks %llu completions %lld scenarios %u sessions %llu random_scenarios %llu failures %llu%s%s\n",
		       seed, i, f->descs, f->consumed, f->ctrls, f->resets,
		       f->link->stats.proto_errors, f->link->stats.naks,
		       (s64)atomic64_read(&f->completions), f->scenarios,
		       f->sessions, f->random_scenarios, f->failures,
		       f->failed ? " failed " : "", f->failed ?: "");
	if (!ret && f->failures)
		ret = -EIO;
	kfn_fuzz_teardown(f);
	kfn_fuzz_link_free(f->link);
	kfree(f);
	return ret;
}

static ssize_t kfn_fuzz_write(struct file *file, const char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	char buf[32], *out;
	struct seq_buf sb;
	u64 n;
	int ret;

	if (count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	ret = kstrtou64(strim(buf), 0, &n);
	if (ret)
		return ret;
	out = kzalloc(KFN_FUZZ_OUT_MAX, GFP_KERNEL);
	if (!out)
		return -ENOMEM;
	seq_buf_init(&sb, out, KFN_FUZZ_OUT_MAX);
	ret = kfn_fuzz_run(n, get_random_u32(), &sb);
	pr_info("kfi_ntb: fuzz: %s", seq_buf_str(&sb));
	kfree(out);
	return ret ?: count;
}

static const struct file_operations kfn_fuzz_fops = {
	.owner = THIS_MODULE,
	.write = kfn_fuzz_write,
	.llseek = noop_llseek,
};

/**
 * kfn_fuzz_init() - offer the fuzzer in debugfs
 * @dir: the provider's directory
 */
void kfn_fuzz_init(struct dentry *dir)
{
	debugfs_create_file("fuzz", 0200, dir, NULL, &kfn_fuzz_fops);
}
