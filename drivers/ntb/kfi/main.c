// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric over a PCIe non-transparent bridge: the provider, an NTB client
 * that makes every link a kfabric domain, and the link handshake.
 *
 * Only the generic NTB API is used: memory window 0 (ntb_mw_set_trans()
 * for our inbound buffer, ntb_peer_mw_get_addr() for the peer's), one
 * doorbell bit in each direction, six scratchpads for the handshake and
 * link events. The handshake publishes the protocol versions and features
 * we have, our buffer's size, its number of channels and a session number
 * in the peer's scratchpads; each side clears its buffer and acknowledges
 * the peer's session before the peer may write into it, and both speak
 * the highest version and the features they have in common. A new session
 * of the peer, or the link going down, ends every connection: endpoints
 * see %KFI_CM_DISCONNECTED and their operations complete with -ECANCELED,
 * and ULPs can connect again once the link is back.
 * Documentation/kfabric/ntb-wire.rst describes the protocol.
 */
#include <linux/bitfield.h>
#include <linux/debugfs.h>
#include <linux/dmaengine.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/mempool.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/random.h>
#include <linux/sched/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string_choices.h>
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
#define KFN_MAGIC_OURS	(KFN_MAGIC | \
			 FIELD_PREP(KFN_MAGIC_VER_MAX, KFN_VERSION_MAX) | \
			 FIELD_PREP(KFN_MAGIC_VER_MIN, KFN_VERSION_MIN))
#define KFN_POLL_UP		HZ
#define KFN_POLL_HANDSHAKE	(HZ / 10)
/* A peer's link worker may wait for ours, or for DMA, for a while. */
#define KFN_KEEPALIVE		(10 * HZ)

struct workqueue_struct *kfn_wq;
struct kmem_cache *kfn_ctrl_cache;
struct kmem_cache *kfn_connreq_cache;
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

/*
 * @size bytes at a bus address aligned to @align, as the bridge wants a
 * translation (ntb_mw_get_align(); often the window's size, beyond what
 * an allocator aligns to). Like ntb_transport: an allocation is often
 * aligned already; if not, allocate @align more and align inside it,
 * when *@pad allows.
 *
 * The caller tries sizes from the largest down. Where @align is not
 * below @size, the padded allocation is mostly padding, and about as
 * large for every smaller size: it is tried once, at the largest such
 * size, and *@pad is cleared so that the smaller sizes only get a plain
 * allocation, kept if it happens to be aligned.
 */
static int kfn_alloc_aligned(struct kfn_link *link, size_t size,
			     resource_size_t align, bool *pad)
{
	struct device *dev = &link->ntb->pdev->dev;
	size_t len = size;
	dma_addr_t dma;
	void *buf;

	if (align > 1 && !is_power_of_2(align))
		return -EINVAL;
	buf = dma_alloc_coherent(dev, len, &dma, GFP_KERNEL | __GFP_NOWARN);
	if (buf && align > 1 && !IS_ALIGNED(dma, align)) {
		dma_free_coherent(dev, len, buf, dma);
		buf = NULL;
		if (*pad) {
			*pad = align < size;
			len = size + align;
			buf = dma_alloc_coherent(dev, len, &dma,
						 GFP_KERNEL | __GFP_NOWARN);
		}
	}
	if (!buf)
		return -ENOMEM;
	link->in_alloc = buf;
	link->in_alloc_dma = dma;
	link->in_alloc_len = len;
	link->in_dma = align > 1 ? ALIGN(dma, align) : dma;
	link->in = buf + (link->in_dma - dma);
	return 0;
}

static void kfn_free_aligned(struct kfn_link *link)
{
	dma_free_coherent(&link->ntb->pdev->dev, link->in_alloc_len,
			  link->in_alloc, link->in_alloc_dma);
	link->in_alloc = NULL;
	link->in = NULL;
}

static int kfn_alloc_inbound(struct kfn_link *link)
{
	struct ntb_dev *ntb = link->ntb;
	resource_size_t addr_align, size_align, size_max;
	bool pad = true;
	size_t size;
	int ret;

	ret = ntb_mw_get_align(ntb, KFN_PIDX, KFN_MW, &addr_align, &size_align,
			       &size_max);
	if (ret)
		return ret;
	/*
	 * GFP_KERNEL although the link work runs on the reclaim workqueue:
	 * the buffer is allocated once, at the first link-up, before any
	 * ULP can use the link, and kept while the link goes down and up.
	 */
	size = min_t(u64, size_max, mw_size);
	size = rounddown_pow_of_two(min_t(size_t, size, SZ_1G));
	for (; size >= KFN_MIN_MW; size /= 2) {
		if (size_align && !IS_ALIGNED(size, size_align))
			continue;
		ret = kfn_alloc_aligned(link, size, addr_align, &pad);
		if (ret != -ENOMEM)
			break;
	}
	if (!link->in)
		return ret ?: -ENOMEM;
	ret = kfn_layout_init(&link->in_l, size, channels);
	if (!ret) {
		link->chans = kcalloc(link->in_l.nch, sizeof(*link->chans),
				      GFP_KERNEL);
		if (link->chans)
			return 0;
		ret = -ENOMEM;
	}
	kfn_free_aligned(link);
	memset(&link->in_l, 0, sizeof(link->in_l));
	return ret;
}

static void kfn_free_inbound(struct kfn_link *link)
{
	struct ntb_dev *ntb = link->ntb;

	if (!link->in)
		return;
	ntb_mw_clear_trans(ntb, KFN_PIDX, KFN_MW);
	kfn_free_aligned(link);
}

static void kfn_publish(struct kfn_link *link)
{
	struct ntb_dev *ntb = link->ntb;

	link->nonce = get_random_u32() ?: 1;
	link->session_gen = atomic_read(&link->gen);
	link->peer_nonce = 0;
	link->acked = false;
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_MAGIC, 0);
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_ACK, 0);
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_SIZE, link->in_l.size);
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_NCH, link->in_l.nch);
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_NONCE, link->nonce);
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_FEATURES, KFN_FEATURES);
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_MAGIC, KFN_MAGIC_OURS);
}

/*
 * The outbound window is MMIO, mapped write-combining. A software bridge
 * may translate it to RAM, which must not be ioremapped: that is
 * memremapped, and written with the same io accessors.
 */
static void __iomem *kfn_out_map(struct kfn_link *link)
{
	void __iomem *out;
	unsigned int noio;

	/*
	 * A storage ULP reconnecting after a link reset waits for this, on
	 * the reclaim workqueue: the mapping's allocations must not recurse
	 * into I/O.
	 */
	noio = memalloc_noio_save();
	if (link->out_ram)
		out = (void __force __iomem *)memremap(link->out_phys,
						       link->out_l.size,
						       MEMREMAP_WB);
	else
		out = ioremap_wc(link->out_phys, link->out_l.size);
	memalloc_noio_restore(noio);
	return out;
}

/*
 * The window is mapped for the DMA engine once per session, not per copy.
 * dma_map_resource() is for MMIO: a window onto RAM is copied by the CPU.
 */
static void kfn_out_dma_map(struct kfn_link *link)
{
	struct device *dev;

	link->out_dma = DMA_MAPPING_ERROR;
	if (!link->dma || link->out_ram)
		return;
	dev = link->dma->device->dev;
	link->out_dma = dma_map_resource(dev, link->out_phys, link->out_l.size,
					 DMA_FROM_DEVICE, 0);
	if (dma_mapping_error(dev, link->out_dma))
		link->out_dma = DMA_MAPPING_ERROR;
}

static void kfn_out_unmap(struct kfn_link *link)
{
	if (link->out_dma != DMA_MAPPING_ERROR)
		dma_unmap_resource(link->dma->device->dev, link->out_dma,
				   link->out_l.size, DMA_FROM_DEVICE, 0);
	link->out_dma = DMA_MAPPING_ERROR;
	if (link->out_ram)
		memunmap((void __force *)link->out);
	else
		iounmap(link->out);
	link->out = NULL;
}

/**
 * kfn_session_end() - forget the peer's session
 * @link: the link, no longer up; its mutex held
 *
 * Every connection ends (kfn_cm_flush()), the peer's name is forgotten
 * until the HELLO of its next session, and the keys of the regions mapped
 * so far give no access any more: a key the peer was given in this
 * session never matches in the next one, whoever the peer is by then.
 */
void kfn_session_end(struct kfn_link *link)
{
	lockdep_assert_held(&link->mutex);
	link->named = false;
	link->reset = false;
	kfn_cm_flush(link);
	spin_lock_irq(&link->mr_lock);
	link->mr_epoch++;
	spin_unlock_irq(&link->mr_lock);
}

/**
 * kfn_link_reset() - end the session at once: the link work starts another
 * @link: the link; its mutex held
 * @why: &enum kfn_reset_why
 *
 * For what cannot be confined to a connection: the peer broke the protocol
 * of the control ring or its identity, which are the link's, or let what
 * we owe it pile up beyond our pools by not consuming its control ring.
 * The data path stops at once (@link->up false): nothing more is read
 * from the peer or written to it. The link work ends the session and
 * publishes a new one, which the peer has to handshake again, as after a
 * link event. The fuzzer's link has no link work, and a dying link none
 * that runs: the fuzzer does that part itself.
 */
void kfn_link_reset(struct kfn_link *link, enum kfn_reset_why why)
{
	lockdep_assert_held(&link->mutex);
	if (why == KFN_RESET_PROTO)
		link->stats.proto_errors++;
	/* Not up, or being reset already: nothing flows. */
	if (!link->up)
		return;
	link->up = false;
	link->reset = true;
	link->stats.resets++;
	if (!link->ntb || link->dying)
		return;
	dev_warn_ratelimited(link->dom.dev,
			     "kfi_ntb %s: %s, resetting the link\n", link->name,
			     why == KFN_RESET_PROTO ? "protocol error" :
			     "the peer does not consume our control messages");
	mod_delayed_work(kfn_wq, &link->link_work, 0);
}

static void kfn_link_down(struct kfn_link *link)
{
	lockdep_assert_held(&link->mutex);
	if (link->up) {
		link->stats.link_downs++;
		dev_info(link->dom.dev, "kfi_ntb %s: link down\n", link->name);
	}
	link->up = false;
	kfn_session_end(link);
	if (link->out)
		kfn_out_unmap(link);
	link->nonce = 0;
	link->peer_nonce = 0;
	link->acked = false;
}

/*
 * The version to speak with a peer that speaks versions @lo to @hi: the
 * highest one both sides speak, 0 when there is none.
 */
static u8 kfn_version(u32 lo, u32 hi)
{
	hi = min_t(u32, hi, KFN_VERSION_MAX);
	return hi >= lo && hi >= KFN_VERSION_MIN ? hi : 0;
}

/* A new session of the peer: clear our buffer, then let it write. */
static int kfn_peer_session(struct kfn_link *link, u32 nonce, u32 magic)
{
	struct ntb_dev *ntb = link->ntb;
	u32 size = ntb_spad_read(ntb, KFN_SPAD_SIZE);
	u32 nch = ntb_spad_read(ntb, KFN_SPAD_NCH);
	u32 lo = FIELD_GET(KFN_MAGIC_VER_MIN, magic);
	u32 hi = FIELD_GET(KFN_MAGIC_VER_MAX, magic);
	u8 ver = kfn_version(lo, hi);
	u32 features;

	/* Not acknowledged until the peer offers a version we speak. */
	if (!ver) {
		dev_warn_ratelimited(link->dom.dev,
				     "kfi_ntb %s: peer speaks protocol versions %u to %u, we %u to %u\n",
				     link->name, lo, hi, KFN_VERSION_MIN,
				     KFN_VERSION_MAX);
		return -EPROTONOSUPPORT;
	}
	if (size > link->out_max || kfn_layout_init(&link->out_l, size, nch)) {
		dev_warn_ratelimited(link->dom.dev,
				     "kfi_ntb %s: peer buffer of %u bytes, %u channels, window of %llu bytes\n",
				     link->name, size, nch, (u64)link->out_max);
		return -EINVAL;
	}
	features = ntb_spad_read(ntb, KFN_SPAD_FEATURES);
	/*
	 * The peer publishes MAGIC last and clears it first: if MAGIC and
	 * NONCE still read as before, the values read in between are of
	 * the same session. Otherwise the link work tries again.
	 */
	if (ntb_spad_read(ntb, KFN_SPAD_MAGIC) != magic ||
	    ntb_spad_read(ntb, KFN_SPAD_NONCE) != nonce)
		return -EAGAIN;
	memset(link->in, 0, link->in_l.size);
	link->ctrl_cons = 0;
	link->ctrl_cons_pub = 0;
	link->ctrl_prod = 0;
	link->ctrl_acked = 0;
	link->peer_nonce = nonce;
	link->peer_magic = magic;
	link->version = ver;
	/* Features unknown to us are ignored. */
	link->features = features & KFN_FEATURES;
	link->acked = true;
	ntb_peer_spad_write(ntb, KFN_PIDX, KFN_SPAD_ACK, nonce);
	return 0;
}

static void kfn_handshake(struct kfn_link *link)
{
	struct ntb_dev *ntb = link->ntb;
	struct kfn_ctrl_item *hello;
	u32 magic, nonce, len;

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
	/* Not there yet, or gone. */
	magic = ntb_spad_read(ntb, KFN_SPAD_MAGIC);
	if ((magic & KFN_MAGIC_MASK) != KFN_MAGIC)
		return;
	nonce = ntb_spad_read(ntb, KFN_SPAD_NONCE);
	if (!nonce)
		return;
	if (nonce != link->peer_nonce && kfn_peer_session(link, nonce, magic))
		return;
	if (ntb_spad_read(ntb, KFN_SPAD_ACK) != link->nonce)
		return;
	link->out_ram = region_intersects(link->out_phys, link->out_l.size,
					  IORESOURCE_SYSTEM_RAM,
					  IORES_DESC_NONE) != REGION_DISJOINT;
	link->out = kfn_out_map(link);
	if (!link->out)
		return;
	kfn_out_dma_map(link);
	link->up = true;
	link->stats.link_ups++;
	link->peer_beat = 0;
	link->peer_beat_at = jiffies;
	len = strlen(link->dom.attr.name);
	hello = kfn_ctrl_new(link, KFN_CTRL_HELLO, 0, 0);
	if (hello) {
		hello->msg.len = cpu_to_le16(len);
		memcpy(hello->msg.data, link->dom.attr.name, len);
		kfn_ctrl_queue(link, hello);
	}
	dev_info(link->dom.dev, "kfi_ntb %s: link up, protocol version %u features %#x, %u channels of %u bytes\n",
		 link->name, link->version, link->features, link->out_l.nch,
		 link->out_l.chan_size);
	kfn_kick(link);
}

/* Is the peer still in the session we connected to? */
static bool kfn_peer_same(struct kfn_link *link)
{
	struct ntb_dev *ntb = link->ntb;

	return ntb_spad_read(ntb, KFN_SPAD_MAGIC) == link->peer_magic &&
	       ntb_spad_read(ntb, KFN_SPAD_NONCE) == link->peer_nonce &&
	       ntb_spad_read(ntb, KFN_SPAD_ACK) == link->nonce;
}

/*
 * Is the peer alive? A host that died, or a peer stuck, may leave the link
 * up and its scratchpads as they were. With %KFN_FEAT_HEARTBEAT each side
 * counts up a heartbeat in the peer's control header whenever its link
 * worker polls, and a peer whose heartbeat stood still for KFN_KEEPALIVE
 * is taken for dead.
 */
static bool kfn_peer_alive(struct kfn_link *link)
{
	struct kfn_hdr __iomem *out = link->out;
	struct kfn_hdr *in = link->in;
	u32 beat;

	if (!(link->features & KFN_FEAT_HEARTBEAT))
		return true;
	/* Into the window, MMIO, as every write to the peer. */
	iowrite32(++link->beat, &out->beat);
	/* No doorbell announces it: out of a write-combining buffer now. */
	wmb();
	beat = le32_to_cpu(READ_ONCE(in->beat));
	if (beat != link->peer_beat) {
		link->peer_beat = beat;
		link->peer_beat_at = jiffies;
		return true;
	}
	if (time_before(jiffies, link->peer_beat_at + KFN_KEEPALIVE))
		return true;
	dev_warn(link->dom.dev, "kfi_ntb %s: no heartbeat of the peer for %u ms\n",
		 link->name, jiffies_to_msecs(jiffies - link->peer_beat_at));
	return false;
}

static void kfn_link_work(struct work_struct *work)
{
	struct kfn_link *link = container_of(to_delayed_work(work),
					     struct kfn_link, link_work);
	unsigned long delay = KFN_POLL_HANDSHAKE;

	mutex_lock(&link->mutex);
	if (link->dying)
		goto out;
	/* Start over: the handshake below publishes a new session. */
	if (link->nonce && kfn_link_stale(link))
		kfn_link_down(link);
	if (!ntb_link_is_up(link->ntb, NULL, NULL)) {
		/* Back when the link event comes. */
		if (link->up || link->nonce)
			kfn_link_down(link);
		goto out;
	}
	if (link->up) {
		if (kfn_peer_same(link) && kfn_peer_alive(link)) {
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

	/*
	 * The link may be up again by the time the link worker runs, with
	 * writes of either side lost in between: a new generation ends the
	 * session however short the loss was (kfn_link_stale()).
	 */
	if (ntb_link_is_up(link->ntb, NULL, NULL) != 1)
		atomic_inc(&link->gen);
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
	mempool_destroy(link->ctrl_pool);
	mempool_destroy(link->connreq_pool);
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
	a->max_mr_size = KFN_MR_MAX_SIZE;
	a->max_mr_segs = SZ_1G >> PAGE_SHIFT;
	/* Regions are copied to and from, never mapped in pages. */
	a->max_mr_block = SZ_1G;
	a->mr_key_size = sizeof(u32);
	a->mr_key_cycle = BIT(KFN_MR_GEN_BITS) / KFN_MR_GEN_STEP;
	a->cq_data_size = sizeof(u32);
	a->max_cm_data = KFI_CM_DATA_MAX;
	a->max_reject_data = KFI_CM_DATA_MAX;
	a->num_comp_vectors = 1;
	a->auth_key_size = sizeof(u32);
}

/**
 * kfn_link_init() - initialise a link's software state
 * @link: a zeroed link
 * @nch: most channels its inbound buffer will have
 *
 * What the peer makes us allocate comes from pools reserved here: the
 * control messages we owe it, at most a CONNREQ or ACCEPT and a
 * DISCONNECT per channel of ours, an answer per channel of the peer's and
 * our HELLO; and its connection requests waiting for delivery. The data
 * path never waits for memory, and a peer that makes more pile up gets
 * its link reset (kfn_link_reset()).
 *
 * Return: 0, or -ENOMEM; the domain's release frees what was set up.
 */
int kfn_link_init(struct kfn_link *link, u32 nch)
{
	mutex_init(&link->mutex);
	INIT_LIST_HEAD(&link->eps);
	INIT_LIST_HEAD(&link->ctrl_q);
	INIT_LIST_HEAD(&link->connreqs);
	link->out_dma = DMA_MAPPING_ERROR;
	kfn_dma_batch_init(&link->dma_batch);
	INIT_WORK(&link->data_work, kfn_data_work);
	INIT_WORK(&link->cm_work, kfn_cm_work);
	INIT_DELAYED_WORK(&link->link_work, kfn_link_work);
	spin_lock_init(&link->mr_lock);
	xa_init_flags(&link->mrs, XA_FLAGS_ALLOC1 | XA_FLAGS_LOCK_IRQ);
	link->ctrl_max = 2 * nch + KFN_MAX_CHANNELS + 1;
	link->ctrl_pool = mempool_create_slab_pool(link->ctrl_max,
						   kfn_ctrl_cache);
	link->connreq_pool = mempool_create_slab_pool(KFN_MAX_CONNREQS,
						      kfn_connreq_cache);
	return link->ctrl_pool && link->connreq_pool ? 0 : -ENOMEM;
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
	seq_printf(s, "link %s\n", str_up_down(link->up));
	if (link->up)
		seq_printf(s, "protocol version %u features %#x\n",
			   link->version, link->features);
	seq_printf(s, "inbound %u bytes, %u channels of %u, chunk %u\n",
		   link->in_l.size, link->in_l.nch, link->in_l.chan_size,
		   link->in_l.max_chunk);
	if (link->up)
		seq_printf(s, "outbound %u bytes, %u channels of %u, chunk %u\n",
			   link->out_l.size, link->out_l.nch,
			   link->out_l.chan_size, link->out_l.max_chunk);
	seq_printf(s, "channels bound %u closing %u\n", bound, closing);
	seq_printf(s, "dma %s\n", link->dma ? dma_chan_name(link->dma) : "none");
	seq_printf(s, "link_ups %llu link_downs %llu proto_errors %llu naks %llu dma_copies %llu dma_errors %llu resets %llu reclaimed %llu\n",
		   link->stats.link_ups, link->stats.link_downs,
		   link->stats.proto_errors, link->stats.naks,
		   link->stats.dma_copies, link->stats.dma_errors,
		   link->stats.resets, link->stats.reclaimed);
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
	ret = kfn_link_init(link, min_t(u32, channels, KFN_MAX_CHANNELS));
	if (ret)
		goto err_dom;
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

	/*
	 * From here on the data worker rejects the peer's connection
	 * requests rather than queue them.
	 */
	mutex_lock(&link->mutex);
	link->dying = true;
	mutex_unlock(&link->mutex);
	ntb_db_set_mask(ntb, KFN_DB_BIT);
	ntb_clear_ctx(ntb);
	cancel_delayed_work_sync(&link->link_work);
	/*
	 * The connection worker delivers no more requests. Those still
	 * queued are freed by kfn_link_down() below, with the link's mutex
	 * held; none is queued meanwhile (@dying). Until then the data
	 * worker still runs: not for the peer's doorbell, masked and
	 * unhooked above, but for the ULPs' drains and posts, which kick it.
	 */
	cancel_work_sync(&link->cm_work);

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
/* The memcpy reference                                                */

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

	kfn_ctrl_cache = KMEM_CACHE(kfn_ctrl_item, 0);
	if (!kfn_ctrl_cache)
		return -ENOMEM;
	ret = -ENOMEM;
	kfn_connreq_cache = KMEM_CACHE(kfn_connreq, 0);
	if (!kfn_connreq_cache)
		goto err_ctrl;
	kfn_wq = alloc_workqueue("kfi_ntb", WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!kfn_wq)
		goto err_connreq;
	ret = kfi_fabric_register(&kfn_fabric);
	if (ret)
		goto err_wq;
	kfn_debugfs = debugfs_create_dir("kfi_ntb", NULL);
	kfn_fuzz_init(kfn_debugfs);
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
err_connreq:
	kmem_cache_destroy(kfn_connreq_cache);
err_ctrl:
	kmem_cache_destroy(kfn_ctrl_cache);
	return ret;
}

static void __exit kfn_exit(void)
{
	ntb_unregister_client(&kfn_client);
	debugfs_remove_recursive(kfn_debugfs);
	kfi_fabric_unregister(&kfn_fabric);
	destroy_workqueue(kfn_wq);
	kmem_cache_destroy(kfn_connreq_cache);
	kmem_cache_destroy(kfn_ctrl_cache);
}

module_init(kfn_init);
module_exit(kfn_exit);

MODULE_DESCRIPTION("kfabric provider for PCIe non-transparent bridges");
MODULE_LICENSE("GPL");
