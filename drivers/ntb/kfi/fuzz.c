// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric over NTB: a fuzzer for what the peer writes.
 *
 * A write of N to kfi_ntb/fuzz in debugfs sets up a link with no NTB
 * device behind it, whose inbound buffer is written by the fuzzer instead
 * of a peer, and runs N rounds. Each round writes a descriptor into the
 * ring of a connected endpoint, made from a valid one (a send into a
 * posted receive, a write into or read from a mapped region, the answer
 * to a read of ours, a NAK) and then mutated, or not, with a valid
 * sequence number most of the time; sometimes also a control message, and
 * credit counters; then runs the link's data worker on it. The endpoint
 * is connected again whenever a descriptor broke its connection. Writers
 * in parallel each fuzz a link of their own.
 *
 * Every buffer the descriptors may reach is a kmalloc()ed buffer of the
 * exact size, so that under KASAN any write outside a registered region
 * or a posted receive is reported.
 */
#include <linux/prandom.h>
#include <linux/seq_buf.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "kfi_ntb.h"

#define KFN_FUZZ_SIZE		SZ_512K
#define KFN_FUZZ_CHANNELS	4
#define KFN_FUZZ_REGION		SZ_64K
#define KFN_FUZZ_RX		8
#define KFN_FUZZ_RX_SIZE	SZ_4K
#define KFN_FUZZ_LOCAL		SZ_4K

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

/* Fuzz runs may go on in parallel, one per writer: name their domains apart. */
static atomic_t kfn_fuzz_runs = ATOMIC_INIT(0);

static struct kfn_link *kfn_fuzz_link(void)
{
	struct kfi_domain *dom = kfi_domain_alloc(&kfn_fabric, NULL);
	struct kfn_link *link;
	int ret = -ENOMEM;

	if (!dom)
		return ERR_PTR(-ENOMEM);
	link = to_kfn_link(dom);
	kfn_link_init(link);
	snprintf(dom->attr.name, sizeof(dom->attr.name), "ntb-fuzz.%d",
		 atomic_inc_return(&kfn_fuzz_runs));
	link->name = dom->attr.name;
	kfn_fill_attr(link);
	kfn_layout_init(&link->in_l, KFN_FUZZ_SIZE, KFN_FUZZ_CHANNELS);
	link->out_l = link->in_l;
	link->in = vzalloc(KFN_FUZZ_SIZE);
	link->out = vzalloc(KFN_FUZZ_SIZE);
	link->chans = kcalloc(link->in_l.nch, sizeof(*link->chans), GFP_KERNEL);
	if (!link->in || !link->out || !link->chans)
		goto err;
	link->up = true;
	link->named = true;
	strscpy(link->peer_name, "ntb-fuzz-peer");
	link->nonce = 1;
	link->peer_nonce = 2;
	ret = kfi_domain_register(dom);
	if (ret)
		goto err;
	return link;

err:
	vfree(link->in);
	vfree(link->out);
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
	vfree(link->out);
	kfi_domain_put(&link->dom);
}

/* Connect the endpoint to the fuzzer, on a fresh channel. */
static void kfn_fuzz_attach(struct kfn_fuzz *f)
{
	struct kfn_link *link = f->link;
	u32 i;

	mutex_lock(&link->mutex);
	/* Flush what the last connection left. */
	kfn_ep_process(f->kep);
	for (i = 0; i < link->in_l.nch; i++)
		kfn_chan_free(link, i);
	if (kfn_chan_alloc(link, f->kep) >= 0)
		kfn_ep_connected(f->kep, kfn_rnd(f) % link->out_l.nch, kfn_rnd(f));
	mutex_unlock(&link->mutex);
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
	kfn_fuzz_attach(f);
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

/* Play the peer: a descriptor, maybe credits, into the endpoint's channel. */
static void kfn_fuzz_desc(struct kfn_fuzz *f)
{
	struct kfn_link *link = f->link;
	struct kfn_ep *kep = f->kep;
	void *chan = kfn_in_chan(link, kep->lc);
	struct kfn_hdr *hdr = chan;
	struct kfn_desc d, *slot;
	u32 len, off;

	kfn_fuzz_make(f, &d, &len);
	if (len) {
		off = le32_to_cpu(d.stage_off);
		memset(chan + KFN_CHAN_HDR + off, kfn_rnd(f), len);
	}
	if (kfn_one_in(f, 4))
		kfn_fuzz_mutate(f, &d, sizeof(d));
	slot = chan + sizeof(*hdr);
	slot += kep->rx_cons % KFN_RING;
	memcpy((void *)slot + sizeof(d.seq), (void *)&d + sizeof(d.seq),
	       sizeof(d) - sizeof(d.seq));
	WRITE_ONCE(slot->seq, cpu_to_le32(kfn_one_in(f, 16) ? kfn_rnd(f) :
					  kep->rx_base + kep->rx_cons + 1));
	/* The peer's credits: all we sent consumed, or nonsense. */
	WRITE_ONCE(hdr->cons, cpu_to_le32(kfn_one_in(f, 32) ? kfn_rnd(f) :
					  kep->tx_prod));
	f->descs++;
}

/* Play the peer: a control message. */
static void kfn_fuzz_ctrl(struct kfn_fuzz *f)
{
	struct kfn_link *link = f->link;
	struct kfn_hdr *hdr = link->in;
	struct kfn_ctrl m, *slot;
	u32 nch = link->in_l.nch;

	memset(&m, 0, sizeof(m));
	m.type = kfn_rnd(f) % 7;
	m.status = kfn_rnd(f) % 4;
	m.session = cpu_to_le32(kfn_one_in(f, 8) ? kfn_rnd(f) : link->nonce);
	m.src_chan = cpu_to_le32(kfn_rnd(f) % (nch + 1));
	m.dst_chan = cpu_to_le32(kfn_one_in(f, 2) && f->kep->lc >= 0 ?
				 f->kep->lc : kfn_rnd(f) % (nch + 1));
	m.port = cpu_to_le32(kfn_rnd(f) % 4 + 0xfff0);
	m.len = cpu_to_le16(kfn_rnd(f) % (KFI_CM_DATA_MAX + 8));
	memset(m.data, 'a' + kfn_rnd(f) % 26, sizeof(m.data));
	if (kfn_one_in(f, 2))
		kfn_fuzz_mutate(f, &m, sizeof(m));
	slot = link->in + sizeof(*hdr) +
	       (link->ctrl_cons % KFN_CTRL_RING) * KFN_CTRL_SIZE;
	memcpy((void *)slot + sizeof(m.seq), (void *)&m + sizeof(m.seq),
	       sizeof(m) - sizeof(m.seq));
	WRITE_ONCE(slot->seq, cpu_to_le32(link->ctrl_cons + 1));
	WRITE_ONCE(hdr->cons, cpu_to_le32(kfn_one_in(f, 32) ? kfn_rnd(f) :
					  link->ctrl_prod));
	f->ctrls++;
}

/**
 * kfn_fuzz_run() - feed a link mutated peer writes
 * @count: descriptors to write
 * @seed: seed of the pseudo-random sequence
 * @out: for the summary
 *
 * Return: 0, or a negative errno when the set-up failed.
 */
int kfn_fuzz_run(u64 count, u32 seed, struct seq_buf *out)
{
	struct kfn_fuzz *f;
	bool reset;
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
		reset = f->kep->state != KFN_EP_CONNECTED || f->kep->lc < 0;
		mutex_unlock(&f->link->mutex);
		if (reset) {
			f->resets++;
			kfn_fuzz_attach(f);
		}
		if (signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		cond_resched();
	}
	seq_buf_printf(out,
		       "seed %u rounds %llu descriptors %llu consumed %llu control %llu resets %llu protocol_errors %llu naks %llu completions %lld\n",
		       seed, i, f->descs, f->consumed, f->ctrls, f->resets,
		       f->link->stats.proto_errors, f->link->stats.naks,
		       (s64)atomic64_read(&f->completions));
	kfn_fuzz_teardown(f);
	kfn_fuzz_link_free(f->link);
	kfree(f);
	return ret;
}
