// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric over a PCIe non-transparent bridge: the provider, an NTB client
 * that makes every link a kfabric domain, and the link handshake.
 *
 * Only the generic NTB API is used: memory window 0 (ntb_mw_set_trans()
 * for our inbound buffer, ntb_peer_mw_get_addr() for the peer's), one
 * doorbell bit in each direction, five scratchpads for the handshake and
 * link events. The handshake publishes our buffer's size, its number of
 * channels and a session number in the peer's scratchpads; each side
 * clears its buffer and acknowledges the peer's session before the peer
 * may write into it. A new session of the peer, or the link going down,
 * ends every connection: endpoints see %KFI_CM_DISCONNECTED and their
 * operations complete with -ECANCELED, and ULPs can connect again once the
 * link is back.
 */
#include <linux/debugfs.h>
#include <linux/dmaengine.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/random.h>
#include <linux/seq_buf.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "kfi_ntb.h"

static unsigned int mw_size = SZ_16M;
module_param(mw_size, uint, 0444);
MODULE_PARM_DESC(mw_size, "Largest inbound buffer per link, in bytes (default 16 MiB)");

static unsigned int channels = 16;
module_param(channels, uint, 0444);
MODULE_PARM_DESC(channels, "Connections per link (default 16)");

static bool use_dma = true;
module_param(use_dma, bool, 0444);
MODULE_PARM_DESC(use_dma, "Copy large payloads with a DMA engine channel when there is one (default true)");

unsigned int kfn_poll_us = 20;
module_param_named(poll_us, kfn_poll_us, uint, 0644);
MODULE_PARM_DESC(poll_us, "Microseconds to wait for the next piece of a transfer in progress before sleeping until the doorbell, with more than one CPU; 0 never waits (default 20)");

#define KFN_MIN_MW		SZ_64K
#define KFN_POLL_UP		HZ
#define KFN_POLL_HANDSHAKE	(HZ / 10)

struct workqueue_struct *kfn_wq;
static struct dentry *kfn_debugfs;

/**
 * kfn_layout_init() - compute the layout of an inbound buffer
 * @l: the layout
 * @size: bytes of the buffer
 * @nch: channels wanted; fewer when the buffer is small
 *
 * Both sides compute the layout of each buffer from its size and channel
 * count, so they agree on it; the peer's values are checked here.
 *
 * Return: 0, or -EINVAL when the buffer is too small.
 */
int kfn_layout_init(struct kfn_layout *l, u32 size, u32 nch)
{
	if (size < KFN_CTRL_AREA + KFN_MIN_CHAN || !nch)
		return -EINVAL;
	nch = min3(nch, (u32)KFN_MAX_CHANNELS,
		   (size - KFN_CTRL_AREA) / KFN_MIN_CHAN);
	l->size = size;
	l->nch = nch;
	l->chan_size = round_down((size - KFN_CTRL_AREA) / nch, SZ_4K);
	l->stage_size = l->chan_size - KFN_CHAN_HDR;
	l->max_chunk = min_t(u32, KFN_MAX_CHUNK,
			     round_down(l->stage_size / 4, SMP_CACHE_BYTES));
	return 0;
}

/**
 * kfn_kick() - have the data worker run
 * @link: the link
 *
 * Context: any.
 */
void kfn_kick(struct kfn_link *link)
{
	/* The fuzzer runs its link's worker itself, round by round. */
	if (link->ntb)
		queue_work(kfn_wq, &link->data_work);
}

/* ------------------------------------------------------------------ */
/* The link                                                            */

static int kfn_alloc_inbound(struct kfn_link *link)
{
	struct ntb_dev *ntb = link->ntb;
	resource_size_t addr_align, size_align, size_max;
	size_t size;
	int ret;

	ret = ntb_mw_get_align(ntb, KFN_PIDX, KFN_MW, &addr_align, &size_align,
			       &size_max);
	if (ret)
		return ret;
	size = min_t(u64, size_max, mw_size);
	size = rounddown_pow_of_two(min_t(size_t, size, SZ_1G));
	for (; size >= KFN_MIN_MW; size /= 2) {
		if (size_align && !IS_ALIGNED(size, size_align))
			continue;
		link->in = dma_alloc_coherent(&ntb->pdev->dev, size, &link->in_dma,
					      GFP_KERNEL | __GFP_NOWARN);
		if (!link->in)
			continue;
		if (!addr_align || IS_ALIGNED(link->in_dma, addr_align))
			break;
		dma_free_coherent(&ntb->pdev->dev, size, link->in, link->in_dma);
		link->in = NULL;
	}
	if (!link->in)
		return -ENOMEM;
	ret = kfn_layout_init(&link->in_l, size, channels);
	if (!ret) {
		link->chans = kcalloc(link->in_l.nch, sizeof(*link->chans),
				      GFP_KERNEL);
		if (link->chans)
			return 0;
		ret = -ENOMEM;
	}
	dma_free_coherent(&ntb->pdev->dev, size, link->in, link->in_dma);
	link->in = NULL;
	memset(&link->in_l, 0, sizeof(link->in_l));
	return ret;
}

static void kfn_free_inbound(struct kfn_link *link)
{
	struct ntb_dev *ntb = link->ntb;

	if (!link->in)
		return;
	ntb_mw_clear_trans(ntb, KFN_PIDX, KFN_MW);
	dma_free_coherent(&ntb->pdev->dev, link->in_l.size, link->in, link->in_dma);
	link->in = NULL;
}

static void kfn_publish(struct kfn_link *link)
{
	struct ntb_dev *ntb = link->ntb;

	link->nonce = get_random_u32() ?: 1;
	link->peer_nonce = 0;
	link->acked = false;
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_MAGIC, 0);
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_ACK, 0);
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_SIZE, link->in_l.size);
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_NCH, link->in_l.nch);
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_NONCE, link->nonce);
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_MAGIC, KFN_MAGIC | KFN_VERSION);
}

static void kfn_link_down(struct kfn_link *link)
{
	lockdep_assert_held(&link->mutex);
	if (link->up) {
		link->stats.link_downs++;
		dev_info(link->dom.dev, "kfi_ntb %s: link down\n", link->name);
	}
	link->up = false;
	link->named = false;
	kfn_cm_flush(link);
	if (link->out) {
		memunmap(link->out);
		link->out = NULL;
	}
	link->nonce = 0;
	link->peer_nonce = 0;
	link->acked = false;
}

/* A new session of the peer: clear our buffer, then let it write. */
static int kfn_peer_session(struct kfn_link *link, u32 nonce)
{
	struct ntb_dev *ntb = link->ntb;
	u32 size = ntb_spad_read(ntb, KFN_SPAD_SIZE);
	u32 nch = ntb_spad_read(ntb, KFN_SPAD_NCH);

	if (size > link->out_max || kfn_layout_init(&link->out_l, size, nch)) {
		dev_warn_ratelimited(link->dom.dev,
				     "kfi_ntb %s: peer buffer of %u bytes, %u channels, window of %llu bytes\n",
				     link->name, size, nch, (u64)link->out_max);
		return -EINVAL;
	}
	memset(link->in, 0, link->in_l.size);
	link->ctrl_cons = 0;
	link->ctrl_cons_pub = 0;
	link->ctrl_prod = 0;
	link->ctrl_acked = 0;
	link->peer_nonce = nonce;
	link->acked = true;
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_ACK, nonce);
	return 0;
}

static void kfn_handshake(struct kfn_link *link)
{
	struct ntb_dev *ntb = link->ntb;
	struct kfn_ctrl_item *hello;
	u32 nonce, len;

	/* Window sizes are only known with the link up: allocate then. */
	if (!link->in && kfn_alloc_inbound(link)) {
		dev_warn_once(link->dom.dev, "kfi_ntb %s: no inbound buffer\n",
			      link->name);
		return;
	}
	if (!link->nonce) {
		if (ntb_mw_set_trans(ntb, KFN_PIDX, KFN_MW, link->in_dma,
				     link->in_l.size))
			return;
		kfn_publish(link);
	}
	if (ntb_spad_read(ntb, KFN_SPAD_MAGIC) != (KFN_MAGIC | KFN_VERSION))
		return;
	nonce = ntb_spad_read(ntb, KFN_SPAD_NONCE);
	if (!nonce)
		return;
	if (nonce != link->peer_nonce && kfn_peer_session(link, nonce))
		return;
	if (ntb_spad_read(ntb, KFN_SPAD_ACK) != link->nonce)
		return;
	link->out_ram = region_intersects(link->out_phys, link->out_l.size,
					  IORESOURCE_SYSTEM_RAM,
					  IORES_DESC_NONE) != REGION_DISJOINT;
	/* A software bridge may translate to RAM, which must not be ioremapped. */
	link->out = memremap(link->out_phys, link->out_l.size,
			     link->out_ram ? MEMREMAP_WB : MEMREMAP_WC);
	if (!link->out)
		return;
	link->up = true;
	link->stats.link_ups++;
	len = strlen(link->dom.attr.name);
	hello = kfn_ctrl_new(KFN_CTRL_HELLO, 0, 0);
	hello->msg.len = cpu_to_le16(len);
	memcpy(hello->msg.data, link->dom.attr.name, len);
	kfn_ctrl_queue(link, hello);
	dev_info(link->dom.dev, "kfi_ntb %s: link up, %u channels of %u bytes\n",
		 link->name, link->out_l.nch, link->out_l.chan_size);
	kfn_kick(link);
}

/* Is the peer still in the session we connected to? */
static bool kfn_peer_same(struct kfn_link *link)
{
	struct ntb_dev *ntb = link->ntb;

	return ntb_spad_read(ntb, KFN_SPAD_MAGIC) == (KFN_MAGIC | KFN_VERSION) &&
	       ntb_spad_read(ntb, KFN_SPAD_NONCE) == link->peer_nonce &&
	       ntb_spad_read(ntb, KFN_SPAD_ACK) == link->nonce;
}

static void kfn_link_work(struct work_struct *work)
{
	struct kfn_link *link = container_of(to_delayed_work(work),
					     struct kfn_link, link_work);
	unsigned long delay = KFN_POLL_HANDSHAKE;

	mutex_lock(&link->mutex);
	if (link->dying)
		goto out;
	if (!ntb_link_is_up(link->ntb, NULL, NULL)) {
		/* Back when the link event comes. */
		if (link->up || link->nonce)
			kfn_link_down(link);
		goto out;
	}
	if (link->up) {
		if (kfn_peer_same(link)) {
			delay = KFN_POLL_UP;
			/* A backstop for a doorbell the bridge lost. */
			kfn_kick(link);
		} else {
			kfn_link_down(link);
			kfn_publish(link);
		}
	} else {
		kfn_handshake(link);
		if (link->up)
			delay = KFN_POLL_UP;
	}
	queue_delayed_work(kfn_wq, &link->link_work, delay);
out:
	mutex_unlock(&link->mutex);
}

static void kfn_link_event(void *ctx)
{
	struct kfn_link *link = ctx;

	mod_delayed_work(kfn_wq, &link->link_work, 0);
}

static void kfn_db_event(void *ctx, int vector)
{
	struct kfn_link *link = ctx;
	u64 db = ntb_db_read(link->ntb);

	if (db & KFN_DB_BIT) {
		ntb_db_clear(link->ntb, KFN_DB_BIT);
		kfn_kick(link);
	}
}

static const struct ntb_ctx_ops kfn_ctx_ops = {
	.link_event = kfn_link_event,
	.db_event = kfn_db_event,
};

/* ------------------------------------------------------------------ */
/* Provider operations                                                 */

static int kfn_cq_create(struct kfi_cq *cq, const struct kfi_cq_attr *attr)
{
	return kfi_cq_sw_init(cq);
}

static void kfn_cq_destroy(struct kfi_cq *cq)
{
}

static void kfn_domain_release(struct kfi_domain *domain)
{
	struct kfn_link *link = to_kfn_link(domain);

	xa_destroy(&link->mrs);
	kfree(link->chans);
	mutex_destroy(&link->mutex);
}

static const struct kfi_provider_ops kfn_ops = {
	.resolve	= kfn_resolve,
	.domain_release	= kfn_domain_release,
	.cq_create	= kfn_cq_create,
	.cq_destroy	= kfn_cq_destroy,
	.ep_create	= kfn_ep_create,
	.ep_drain	= kfn_ep_drain,
	.ep_destroy	= kfn_ep_destroy,
	.connect	= kfn_connect,
	.accept		= kfn_accept,
	.reject		= kfn_reject,
	.disconnect	= kfn_disconnect,
	.pep_listen	= kfn_pep_listen,
	.pep_destroy	= kfn_pep_destroy,
	.post_send	= kfn_post_send,
	.post_recv	= kfn_post_recv,
	.post_read	= kfn_post_read,
	.post_write	= kfn_post_write,
	.mr_create	= kfn_mr_create,
	.mr_destroy	= kfn_mr_destroy,
	.mr_map		= kfn_mr_map,
	.mr_invalidate	= kfn_mr_invalidate,
};

struct kfi_fabric kfn_fabric = {
	.name		= "ntb",
	.owner		= THIS_MODULE,
	.ops		= &kfn_ops,
	.addr_format	= KFI_ADDR_NAME,
	.domain_size	= sizeof(struct kfn_link),
	.cq_size	= sizeof(struct kfi_cq),
	.ep_size	= sizeof(struct kfn_ep),
	.pep_size	= sizeof(struct kfn_pep),
	.mr_size	= sizeof(struct kfn_mr),
};

/**
 * kfn_fill_attr() - what a link offers
 * @link: the link, its layout known
 */
void kfn_fill_attr(struct kfn_link *link)
{
	struct kfi_domain_attr *a = &link->dom.attr;

	/* Operations complete when the peer consumed or refused them. */
	a->caps = KFI_CAP_MSG | KFI_CAP_RMA | KFI_CAP_RMA_IMM |
		  KFI_CAP_REMOTE_INV | KFI_CAP_AUTH_KEY | KFI_CAP_DELIVERY;
	a->ep_types = BIT(KFI_EP_MSG);
	a->protocol = KFI_PROTO_NTB;
	a->addr_format = KFI_ADDR_NAME;
	a->max_ep = 4096;
	a->max_cq = 4096;
	a->max_cqe = SZ_64K;
	a->max_mr = KFN_MR_INDEX_MAX;
	a->max_send_ops = 4096;
	a->max_recv_ops = 1024;
	a->max_send_sge = 32;
	a->max_recv_sge = 32;
	a->max_rma_sge = 32;
	a->max_msg_size = SZ_1M;
	a->max_rma_size = SZ_16M;
	a->max_mr_size = SZ_1G;
	a->max_mr_segs = SZ_1G >> PAGE_SHIFT;
	/* Regions are copied to and from, never mapped in pages. */
	a->max_mr_block = SZ_1G;
	a->mr_key_size = sizeof(u32);
	a->mr_key_cycle = BIT(KFN_MR_GEN_BITS);
	a->cq_data_size = sizeof(u32);
	a->max_cm_data = KFI_CM_DATA_MAX;
	a->max_reject_data = KFI_CM_DATA_MAX;
	a->num_comp_vectors = 1;
	a->auth_key_size = sizeof(u32);
}

/**
 * kfn_link_init() - initialise a link's software state
 * @link: a zeroed link
 */
void kfn_link_init(struct kfn_link *link)
{
	mutex_init(&link->mutex);
	INIT_LIST_HEAD(&link->eps);
	INIT_LIST_HEAD(&link->ctrl_q);
	INIT_LIST_HEAD(&link->connreqs);
	INIT_WORK(&link->data_work, kfn_data_work);
	INIT_WORK(&link->cm_work, kfn_cm_work);
	INIT_DELAYED_WORK(&link->link_work, kfn_link_work);
	spin_lock_init(&link->mr_lock);
	xa_init_flags(&link->mrs, XA_FLAGS_ALLOC1);
}

static int kfn_info_show(struct seq_file *s, void *unused)
{
	struct kfn_link *link = s->private;
	u32 i, bound = 0, closing = 0;

	mutex_lock(&link->mutex);
	for (i = 0; i < link->in_l.nch; i++) {
		bound += link->chans[i].state == KFN_CHAN_BOUND;
		closing += link->chans[i].state == KFN_CHAN_CLOSING;
	}
	seq_printf(s, "name %s\n", link->dom.attr.name);
	seq_printf(s, "peer %s\n", link->named ? link->peer_name : "-");
	seq_printf(s, "link %s\n", link->up ? "up" : "down");
	seq_printf(s, "inbound %u bytes, %u channels of %u, chunk %u\n",
		   link->in_l.size, link->in_l.nch, link->in_l.chan_size,
		   link->in_l.max_chunk);
	if (link->up)
		seq_printf(s, "outbound %u bytes, %u channels of %u, chunk %u\n",
			   link->out_l.size, link->out_l.nch,
			   link->out_l.chan_size, link->out_l.max_chunk);
	seq_printf(s, "channels bound %u closing %u\n", bound, closing);
	seq_printf(s, "dma %s\n", link->dma ? dma_chan_name(link->dma) : "none");
	seq_printf(s, "link_ups %llu link_downs %llu proto_errors %llu naks %llu dma_copies %llu dma_errors %llu\n",
		   link->stats.link_ups, link->stats.link_downs,
		   link->stats.proto_errors, link->stats.naks,
		   link->stats.dma_copies, link->stats.dma_errors);
	mutex_unlock(&link->mutex);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(kfn_info);

static bool kfn_dma_filter(struct dma_chan *chan, void *dev)
{
	return chan->device->dev == dev;
}

/*
 * A memcpy channel for the outbound copies: one of an engine on the NTB
 * device itself, which reaches its windows for sure, else any.
 */
static void kfn_dma_init(struct kfn_link *link)
{
	dma_cap_mask_t mask;
	struct dma_chan *chan;

	if (!use_dma)
		return;
	dma_cap_zero(mask);
	dma_cap_set(DMA_MEMCPY, mask);
	chan = dma_request_channel(mask, kfn_dma_filter, &link->ntb->pdev->dev);
	if (!chan) {
		chan = dma_request_chan_by_mask(&mask);
		if (IS_ERR(chan))
			return;
	}
	link->dma = chan;
}

static int kfn_probe(struct ntb_client *client, struct ntb_dev *ntb)
{
	struct kfn_link *link;
	struct kfi_domain *dom;
	int ret;

	if (ntb_peer_port_count(ntb) != 1 || ntb_mw_count(ntb, KFN_PIDX) < 1 ||
	    ntb_peer_mw_count(ntb) < 1 || ntb_spad_count(ntb) < KFN_NR_SPADS ||
	    !(ntb_db_valid_mask(ntb) & KFN_DB_BIT)) {
		dev_info(&ntb->dev, "kfi_ntb: needs two ports, a memory window, %d scratchpads and a doorbell\n",
			 KFN_NR_SPADS);
		return -EOPNOTSUPP;
	}
	dom = kfi_domain_alloc(&kfn_fabric, &ntb->dev);
	if (!dom)
		return -ENOMEM;
	link = to_kfn_link(dom);
	kfn_link_init(link);
	link->ntb = ntb;
	link->name = dev_name(&ntb->dev);
	strscpy(dom->attr.name, link->name);
	kfn_fill_attr(link);

	ret = ntb_peer_mw_get_addr(ntb, KFN_MW, &link->out_phys, &link->out_max);
	if (ret)
		goto err_dom;
	kfn_dma_init(link);
	ret = ntb_set_ctx(ntb, link, &kfn_ctx_ops);
	if (ret)
		goto err_dma;
	ret = kfi_domain_register(dom);
	if (ret)
		goto err_ctx;
	link->debugfs = debugfs_create_dir(link->name, kfn_debugfs);
	debugfs_create_file("info", 0400, link->debugfs, link, &kfn_info_fops);

	ntb_db_clear(ntb, KFN_DB_BIT);
	ntb_db_clear_mask(ntb, KFN_DB_BIT);
	ntb_link_enable(ntb, NTB_SPEED_AUTO, NTB_WIDTH_AUTO);
	queue_delayed_work(kfn_wq, &link->link_work, 0);
	return 0;

err_ctx:
	ntb_clear_ctx(ntb);
err_dma:
	if (link->dma)
		dma_release_channel(link->dma);
err_dom:
	kfi_domain_free(dom);
	return ret;
}

/*
 * The device goes away, or the module: unregister the domain, which drains
 * and destroys what ULPs left on it, then take the link down.
 */
static void kfn_remove(struct ntb_client *client, struct ntb_dev *ntb)
{
	struct kfn_link *link = ntb->ctx;
	struct kfn_connreq *cr, *tmp;

	mutex_lock(&link->mutex);
	link->dying = true;
	mutex_unlock(&link->mutex);
	ntb_db_set_mask(ntb, KFN_DB_BIT);
	ntb_clear_ctx(ntb);
	cancel_delayed_work_sync(&link->link_work);
	cancel_work_sync(&link->cm_work);
	list_for_each_entry_safe(cr, tmp, &link->connreqs, node) {
		list_del(&cr->node);
		kfree(cr);
	}

	kfi_domain_get(&link->dom);
	kfi_domain_unregister(&link->dom);
	debugfs_remove_recursive(link->debugfs);

	mutex_lock(&link->mutex);
	/* Send the DISCONNECTs of the drains, then tell the peer we left. */
	if (link->up)
		kfn_link_process(link);
	kfn_link_down(link);
	mutex_unlock(&link->mutex);
	cancel_work_sync(&link->data_work);
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_MAGIC, 0);
	ntb_peer_db_set(ntb, KFN_DB_BIT);
	ntb_link_disable(ntb);
	if (link->dma)
		dma_release_channel(link->dma);
	kfn_free_inbound(link);
	kfi_domain_put(&link->dom);
}

static struct ntb_client kfn_client = {
	.ops = {
		.probe = kfn_probe,
		.remove = kfn_remove,
	},
};

/* ------------------------------------------------------------------ */
/* Fuzzing and the memcpy reference                                    */

#define KFN_OUT_MAX		SZ_4K

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
	out = kzalloc(KFN_OUT_MAX, GFP_KERNEL);
	if (!out)
		return -ENOMEM;
	seq_buf_init(&sb, out, KFN_OUT_MAX);
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

/* MB/s of copying 1 MiB from @src to @dst in pieces of @chunk, for 500 ms. */
static __always_inline u64 kfn_memcpy_rate(void *dst, const void *src,
					   u32 chunk)
{
	u64 ns, bytes = 0;
	ktime_t start;
	u32 off;

	start = ktime_get();
	do {
		for (off = 0; off < SZ_1M; off += chunk)
			memcpy(dst + off, src + off, chunk);
		bytes += SZ_1M;
		cond_resched();
	} while (ktime_ms_delta(ktime_get(), start) < 500);
	ns = ktime_to_ns(ktime_sub(ktime_get(), start));
	return div64_u64(bytes * 1000, max(ns, 1ULL));
}

/*
 * The guest's own memcpy() bandwidth over 1 MiB buffers, the reference
 * the benchmark compares the provider with: memcpy() called with a length
 * known only at run time, as the provider's copies are (a page or less at
 * a time). A length the compiler knows may be copied with an inline
 * instruction sequence instead; that rate is shown too, since emulators
 * run the two at very different speeds (QEMU's TCG: four times).
 */
static int kfn_memcpy_show(struct seq_file *s, void *unused)
{
	u32 chunk = PAGE_SIZE;
	void *src, *dst;

	src = vzalloc(SZ_1M);
	dst = vzalloc(SZ_1M);
	if (!src || !dst) {
		vfree(src);
		vfree(dst);
		return -ENOMEM;
	}
	/* Hide the length from the compiler: a call to memcpy(). */
	OPTIMIZER_HIDE_VAR(chunk);
	seq_printf(s, "memcpy %llu MB/s\n", kfn_memcpy_rate(dst, src, chunk));
	seq_printf(s, "memcpy_inline %llu MB/s\n",
		   kfn_memcpy_rate(dst, src, SZ_64K));
	vfree(src);
	vfree(dst);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(kfn_memcpy);

static int __init kfn_init(void)
{
	int ret;

	kfn_wq = alloc_workqueue("kfi_ntb", WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!kfn_wq)
		return -ENOMEM;
	ret = kfi_fabric_register(&kfn_fabric);
	if (ret)
		goto err_wq;
	kfn_debugfs = debugfs_create_dir("kfi_ntb", NULL);
	debugfs_create_file("fuzz", 0200, kfn_debugfs, NULL, &kfn_fuzz_fops);
	debugfs_create_file("memcpy", 0400, kfn_debugfs, NULL, &kfn_memcpy_fops);
	ret = ntb_register_client(&kfn_client);
	if (ret)
		goto err_fabric;
	return 0;

err_fabric:
	debugfs_remove_recursive(kfn_debugfs);
	kfi_fabric_unregister(&kfn_fabric);
err_wq:
	destroy_workqueue(kfn_wq);
	return ret;
}

static void __exit kfn_exit(void)
{
	ntb_unregister_client(&kfn_client);
	debugfs_remove_recursive(kfn_debugfs);
	kfi_fabric_unregister(&kfn_fabric);
	destroy_workqueue(kfn_wq);
}

module_init(kfn_init);
module_exit(kfn_exit);

MODULE_DESCRIPTION("kfabric provider for PCIe non-transparent bridges");
MODULE_LICENSE("GPL");
