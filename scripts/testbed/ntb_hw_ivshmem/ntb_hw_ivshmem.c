// SPDX-License-Identifier: GPL-2.0-only
/*
 * NTB hardware driver over QEMU ivshmem devices (test device)
 *
 * This driver lets the NTB clients (ntb_transport, ntb_perf, ntb_tool, ...)
 * run between two QEMU guests, or inside one guest, without NTB hardware.
 * It is tooling of the kfabric test bed, not part of the kfabric series:
 * scripts/lib/build.sh builds it as an external module against the guest
 * kernel's build tree (Kbuild in this directory).
 *
 * Emulation model
 * ---------------
 * One NTB port is two functions of one PCI slot:
 *
 * - function 0, an "ivshmem-doorbell" device, connected to an ivshmem server
 *   (QEMU docs/specs/ivshmem-spec.txt) with two MSI-X vectors. Its BAR0 has
 *   the ivshmem registers: IVPosition (the port id the server assigned, 0 or
 *   1; the peer is id ^ 1) and Doorbell (raise vector V of peer P). Its BAR2
 *   is a small memory shared by both ports: a header written by the server
 *   (see &struct ntb_ivshmem_hdr) and one block of "registers" per port id
 *   (&struct ntb_ivshmem_port_regs) holding that port's link status, inbound
 *   doorbell bits and scratchpads.
 *
 * - function 1, an "ivshmem-plain" device whose BAR2 is the peer guest's RAM
 *   (QEMU memory-backend-file on the file that backs the peer's RAM): offset
 *   X of the BAR is guest physical address X of the peer. This is the
 *   outbound side of the memory windows.
 *
 * Memory windows: real NTB translates the sender's stores into its BAR to
 * whatever address the receiver programmed with ntb_mw_set_trans(). Stores
 * into the plain BAR cannot be redirected, and clients map their outbound
 * windows when they probe, long before the peer programs a translation, so
 * the windows are fixed: every guest reserves the same physical range
 * (memmap=SIZE$BASE on its command line), split into one region per port
 * id and each region into mw_count windows. Outbound window i of port P is
 * the plain BAR at the peer's region + i * mw_size. The PCI function has
 * DMA mapping operations of its own (ntb_ivshmem_dma_map_ops): coherent
 * allocations come from the local region, so the inbound buffers clients
 * get from dma_alloc_coherent() on it lie in the windows, and streaming
 * mappings are the identity. The guest kernel needs ARCH_HAS_DMA_OPS
 * (on x86, GART_IOMMU selects it) and no IOMMU in front of the port.
 * Pool allocations are aligned to their size, so a client allocating
 * full-size window buffers in window order (as ntb_transport does) finds
 * buffer i at the start of window i. ntb_mw_set_trans() only accepts
 * that address: a translation the peer's window cannot reach is rejected
 * with -EINVAL and a message.
 *
 * With strict_align=1 the port behaves as bridges that want a translation
 * aligned to the window's size, with an allocator that does not align for
 * the client: windows are half a region (window i is the second half of
 * region slot i), the pool allocates first-fit by pages, and its first
 * page is taken. A client that allocates just the window size gets a
 * misaligned buffer, which mw_set_trans refuses; one that over-allocates
 * by the alignment and aligns inside (as ntb_transport does, and real
 * bridges need) finds window 0 at its aligned address. Only window 0 is
 * usable that way, which is what the kfabric NTB provider uses.
 *
 * Doorbells: the peer ORs bits into this port's doorbell word in the shared
 * memory and rings its doorbell vector; the interrupt handler calls
 * ntb_db_event() for the bits that are set and not masked. Unmasking bits
 * that are set rings the local vector, as a level-triggered interrupt would
 * fire.
 *
 * Link: each port publishes READY (driver bound) and LINK (link enabled and
 * not forced down) and rings the peer's link vector on every change. The
 * link is up when both ports have both bits. The ivshmem server clears the
 * block of a port whose QEMU disconnects and rings the survivor; a slow poll
 * backs the interrupt up, and a changed probe generation of the peer takes
 * the link down and up again, as a peer reset would.
 *
 * Ports numbers are both 0 (%NTB_TOPO_CROSSLINK): the two ends are
 * symmetric. With unique numbers ntb_perf would use inbound window 1 on one
 * side, which a first-fit pool cannot place at window 1's fixed address.
 *
 * DMA engine: NTB hardware often comes with a DMA engine (in the switch, or
 * an I/OAT next to the bridge), and NTB clients offload their copies into
 * the outbound windows to it. QEMU has no memcpy DMA engine, so with
 * dma_engine=1 every port offers one: a dmaengine device with one
 * DMA_MEMCPY channel whose "hardware" is a work item copying with the CPU.
 * It reaches what an engine in the bridge would, system RAM and the port's
 * own outbound windows; any other address fails the descriptor with a
 * DMA_TRANS_* result, and so does a failure injected through debugfs, so
 * that the clients' DMA paths and their error handling can be tested. Its
 * dmaengine device is the port's PCI function, whose streaming mappings
 * are the identity, so a DMA address is the physical address to copy.
 *
 * With local_ring=1, for one guest that has both ports (the test bed's
 * single mode), a port rings its peer, or itself, through an irq_work of
 * the port rung instead of the doorbell register: an event the ivshmem
 * device carries is an eventfd that QEMU's main loop picks up whenever the
 * host gets to it, so the instruction at which the interrupt lands differs
 * from run to run. The irq_work's interrupt is a self-IPI, taken at the
 * same instruction on every run, which kf bench --icount needs for
 * identical runs. A ring for a port that is not bound in this guest is
 * dropped (the slow poll still sees the link come up).
 *
 * debugfs: <debugfs>/ntb_hw_ivshmem/<pci name>/link takes "down" and "up"
 * to force link loss as a cable pull would; "info" shows the state; "dma"
 * shows the engine's counters and takes a number of descriptors to fail.
 */

#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/dma-map-ops.h>
#include <linux/dmaengine.h>
#include <linux/genalloc.h>
#include <linux/highmem.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/irq_work.h>
#include <linux/log2.h>
#include <linux/module.h>
#include <linux/ntb.h>
#include <linux/pci.h>
#include <linux/seq_file.h>
#include <linux/sizes.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/workqueue.h>

/* The cookie helpers every dmaengine provider uses (drivers/dma, see Kbuild). */
#include "dmaengine.h"

static bool dma_engine;
module_param(dma_engine, bool, 0444);
MODULE_PARM_DESC(dma_engine, "Offer an emulated memcpy DMA engine per port, copying with the CPU (default false)");

static bool strict_align;
module_param(strict_align, bool, 0444);
MODULE_PARM_DESC(strict_align, "Behave as a bridge that wants translations aligned to the window size, with an allocator that does not align for the client (default false)");

static bool local_ring;
module_param(local_ring, bool, 0444);
MODULE_PARM_DESC(local_ring, "Both ports are in this guest: ring them through an irq_work, not the device, so interrupts land at the same instruction on every run (default false)");

#define PCI_DEVICE_ID_IVSHMEM		0x1110

/* ivshmem BAR0 registers */
#define IVSHMEM_REG_IVPOSITION		0x08
#define IVSHMEM_REG_DOORBELL		0x0c
#define IVSHMEM_DOORBELL(peer, vec)	(((u32)(peer) << 16) | (vec))

#define IVSHMEM_REG_BAR			0
#define IVSHMEM_MEM_BAR			2

/* MSI-X vectors of the doorbell device, the same on both ports */
#define NTB_IVSHMEM_VEC_LINK		0
#define NTB_IVSHMEM_VEC_DB		1
#define NTB_IVSHMEM_NR_VECS		2

#define NTB_IVSHMEM_MAGIC		0x4d485349	/* "ISHM" */
#define NTB_IVSHMEM_VERSION		1
#define NTB_IVSHMEM_BLOCK		SZ_4K
#define NTB_IVSHMEM_MAX_MW		8
#define NTB_IVSHMEM_SPAD_COUNT		16
#define NTB_IVSHMEM_DB_COUNT		16
#define NTB_IVSHMEM_DB_MASK		GENMASK_ULL(NTB_IVSHMEM_DB_COUNT - 1, 0)
#define NTB_IVSHMEM_POLL		HZ
#define NTB_IVSHMEM_BOUNCE		(HZ / 10)

#define NTB_IVSHMEM_STS_READY		BIT(0)
#define NTB_IVSHMEM_STS_LINK		BIT(1)
#define NTB_IVSHMEM_STS_UP		(NTB_IVSHMEM_STS_READY | NTB_IVSHMEM_STS_LINK)

/**
 * struct ntb_ivshmem_hdr - start of the shared control memory
 * @magic: %NTB_IVSHMEM_MAGIC, written by the server
 * @version: %NTB_IVSHMEM_VERSION
 * @mw_count: memory windows per port
 * @rsvd: zero
 * @region_base: guest physical base of the range reserved in every guest
 * @region_size: bytes of it per port id; port id i owns
 *	[@region_base + i * @region_size, + @region_size)
 *
 * The server that hands out the memory fills this in; the driver only reads
 * it. Both guests must reserve the range with memmap=.
 */
struct ntb_ivshmem_hdr {
	u32 magic;
	u32 version;
	u32 mw_count;
	u32 rsvd;
	u64 region_base;
	u64 region_size;
};

/**
 * struct ntb_ivshmem_port_regs - one port's block of the control memory
 * @status: %NTB_IVSHMEM_STS_* bits, written by the port (zeroed by the server
 *	when the port's QEMU disconnects)
 * @generation: incremented by every probe of the port
 * @db: inbound doorbell bits: set by the peer, cleared by the port
 * @spad: scratchpads: written by either side, read by either side
 *
 * Block i + 1 of the control memory belongs to port id i.
 */
struct ntb_ivshmem_port_regs {
	u32 status;
	u32 generation;
	atomic64_t db;
	u32 spad[NTB_IVSHMEM_SPAD_COUNT];
};

/**
 * struct ntb_ivshmem_dma_desc - one memcpy descriptor of the emulated engine
 * @tx: the descriptor the client sees
 * @node: in &ntb_ivshmem_dma.submitted or &ntb_ivshmem_dma.issued
 * @dst: destination DMA address
 * @src: source DMA address
 * @len: bytes to copy
 */
struct ntb_ivshmem_dma_desc {
	struct dma_async_tx_descriptor tx;
	struct list_head node;
	dma_addr_t dst;
	dma_addr_t src;
	size_t len;
};

/**
 * struct ntb_ivshmem_dma - the emulated DMA engine of one port
 * @dma: the dmaengine device; its refcount keeps this alive for clients
 *	that still hold the channel after the port went away
 * @chan: its only channel
 * @lock: protects the lists, the cookies and @dead
 * @submitted: descriptors submitted and not yet issued
 * @issued: descriptors issued and not yet taken by @work
 * @work: the "hardware": copies the issued descriptors in order
 * @dead: the port is going away: no new descriptors, no more copies
 * @win: the port's outbound windows, mapped for the copies
 * @win_phys: their physical address
 * @win_len: their length
 * @fail: number of descriptors still to fail on purpose (debugfs)
 * @copies: descriptors copied
 * @errors: descriptors failed
 */
struct ntb_ivshmem_dma {
	struct dma_device dma;
	struct dma_chan chan;
	spinlock_t lock;	/* the lists, the cookies, @dead */
	struct list_head submitted;
	struct list_head issued;
	struct work_struct work;
	bool dead;
	void *win;
	phys_addr_t win_phys;
	size_t win_len;
	atomic_t fail;
	atomic64_t copies;
	atomic64_t errors;
};

/**
 * struct ntb_ivshmem - one emulated NTB port
 * @ntb: the NTB device registered for the port
 * @plain: function 1 of the slot; its BAR2 is the peer's RAM
 * @regs: BAR0 of function 0 (ivshmem registers)
 * @self: this port's block of the control memory
 * @peer: the peer's block of the control memory
 * @id: this port's ivshmem id (0 or 1)
 * @peer_id: the peer's ivshmem id
 * @mw_count: memory windows per direction
 * @mw_size: size of each window's region (see strict_align)
 * @win_size: size of each window: @mw_size, or half of it if strict_align
 * @win_off: offset of a window in its region: 0, or @win_size if
 *	strict_align
 * @local_base: physical base of this port's inbound region
 * @pool: allocator of ntb_ivshmem_dma_map_ops over the inbound region
 * @pool_guard: its first page, taken if strict_align
 * @peer_win: CPU physical address of outbound window 0
 * @xlat: inbound translation of each window, 0 when cleared
 * @xlat_size: size of each inbound translation
 * @lock: protects the fields below and the publishing of @self->status
 * @db_mask: masked doorbell bits
 * @ready: registered and not being removed: events go to the NTB core
 * @link_enabled: a client enabled the link
 * @force_down: link forced down through debugfs
 * @link_up: link state last reported to the clients
 * @peer_gen: peer generation the link came up with
 * @link_work: evaluates the link state; also the slow poll
 * @dma: the emulated DMA engine, or NULL
 * @dbgfs: debugfs directory of the port
 * @ring_work: with local_ring, the link and doorbell "vectors"
 * @local: with local_ring, entry in ntb_ivshmem_local
 */
struct ntb_ivshmem {
	struct ntb_dev ntb;
	struct pci_dev *plain;
	void __iomem *regs;
	struct ntb_ivshmem_port_regs *self;
	struct ntb_ivshmem_port_regs *peer;
	u32 id;
	u32 peer_id;
	u32 mw_count;
	resource_size_t mw_size;
	resource_size_t win_size;
	resource_size_t win_off;
	phys_addr_t local_base;
	struct gen_pool *pool;
	unsigned long pool_guard;
	phys_addr_t peer_win;
	dma_addr_t xlat[NTB_IVSHMEM_MAX_MW];
	resource_size_t xlat_size[NTB_IVSHMEM_MAX_MW];

	spinlock_t lock;	/* db_mask, the link state, status publishing */
	u64 db_mask;
	bool ready;
	bool link_enabled;
	bool force_down;
	bool link_up;
	u32 peer_gen;
	struct delayed_work link_work;
	struct ntb_ivshmem_dma *dma;
	struct dentry *dbgfs;
	struct irq_work ring_work[NTB_IVSHMEM_NR_VECS];
	struct list_head local;
};

static struct dentry *ntb_ivshmem_dbgfs_root;

/* With local_ring: the bound ports, which ntb_ivshmem_ring() looks up. */
static LIST_HEAD(ntb_ivshmem_local);
static DEFINE_SPINLOCK(ntb_ivshmem_local_lock);

static struct ntb_ivshmem *ntb_ndev(struct ntb_dev *ntb)
{
	return container_of(ntb, struct ntb_ivshmem, ntb);
}

/*
 * Raise MSI-X vector @vec of port @id (ours or the peer's); with
 * local_ring, queue its irq_work instead (see the top of the file).
 */
static void ntb_ivshmem_ring(struct ntb_ivshmem *ndev, u32 id, u32 vec)
{
	struct ntb_ivshmem *t;
	unsigned long flags;

	if (!local_ring) {
		writel(IVSHMEM_DOORBELL(id, vec), ndev->regs + IVSHMEM_REG_DOORBELL);
		return;
	}
	spin_lock_irqsave(&ntb_ivshmem_local_lock, flags);
	list_for_each_entry(t, &ntb_ivshmem_local, local) {
		if (t->id == id) {
			irq_work_queue(&t->ring_work[vec]);
			break;
		}
	}
	spin_unlock_irqrestore(&ntb_ivshmem_local_lock, flags);
}

/*
 * Publish this port's status and tell the peer. The caller holds the lock,
 * so concurrent changes publish in order.
 */
static void ntb_ivshmem_publish(struct ntb_ivshmem *ndev)
{
	u32 sts = 0;

	lockdep_assert_held(&ndev->lock);
	if (ndev->ready) {
		sts |= NTB_IVSHMEM_STS_READY;
		if (ndev->link_enabled && !ndev->force_down)
			sts |= NTB_IVSHMEM_STS_LINK;
	}
	WRITE_ONCE(ndev->self->status, sts);
	ntb_ivshmem_ring(ndev, ndev->peer_id, NTB_IVSHMEM_VEC_LINK);
}

static void ntb_ivshmem_link_check(struct ntb_ivshmem *ndev)
{
	mod_delayed_work(system_dfl_wq, &ndev->link_work, 0);
}

static void ntb_ivshmem_link_work(struct work_struct *work)
{
	struct ntb_ivshmem *ndev = container_of(to_delayed_work(work),
						struct ntb_ivshmem, link_work);
	unsigned long delay = NTB_IVSHMEM_POLL;
	bool up, changed;
	u32 sts, gen;

	spin_lock_irq(&ndev->lock);
	sts = READ_ONCE(ndev->peer->status);
	gen = READ_ONCE(ndev->peer->generation);
	up = ndev->ready && ndev->link_enabled && !ndev->force_down &&
	     (sts & NTB_IVSHMEM_STS_UP) == NTB_IVSHMEM_STS_UP;
	/*
	 * The peer was removed and probed again between two looks: report
	 * the link loss the clients missed, then come back up.
	 */
	if (up && ndev->link_up && gen != ndev->peer_gen) {
		up = false;
		delay = NTB_IVSHMEM_BOUNCE;
	}
	changed = up != ndev->link_up;
	WRITE_ONCE(ndev->link_up, up);
	if (up)
		WRITE_ONCE(ndev->peer_gen, gen);
	spin_unlock_irq(&ndev->lock);

	if (changed) {
		dev_info(&ndev->ntb.pdev->dev, "link %s\n", up ? "up" : "down");
		ntb_link_event(&ndev->ntb);
	}
	queue_delayed_work(system_dfl_wq, &ndev->link_work, delay);
}

static irqreturn_t ntb_ivshmem_link_isr(int irq, void *data)
{
	ntb_ivshmem_link_check(data);
	return IRQ_HANDLED;
}

static irqreturn_t ntb_ivshmem_db_isr(int irq, void *data)
{
	struct ntb_ivshmem *ndev = data;

	if (!READ_ONCE(ndev->ready))
		return IRQ_HANDLED;
	if (atomic64_read(&ndev->self->db) & ~READ_ONCE(ndev->db_mask))
		ntb_db_event(&ndev->ntb, 0);
	return IRQ_HANDLED;
}

static void ntb_ivshmem_link_ring(struct irq_work *w)
{
	ntb_ivshmem_link_isr(0, container_of(w, struct ntb_ivshmem,
					     ring_work[NTB_IVSHMEM_VEC_LINK]));
}

static void ntb_ivshmem_db_ring(struct irq_work *w)
{
	ntb_ivshmem_db_isr(0, container_of(w, struct ntb_ivshmem,
					   ring_work[NTB_IVSHMEM_VEC_DB]));
}

/* Undo ntb_ivshmem_local_add(): no ring reaches the port after this. */
static void ntb_ivshmem_local_del(void *data)
{
	struct ntb_ivshmem *ndev = data;
	int i;

	spin_lock_irq(&ntb_ivshmem_local_lock);
	list_del(&ndev->local);
	spin_unlock_irq(&ntb_ivshmem_local_lock);
	for (i = 0; i < NTB_IVSHMEM_NR_VECS; i++)
		irq_work_sync(&ndev->ring_work[i]);
}

/*
 * With local_ring, make the port reachable by ntb_ivshmem_ring(); undone
 * before its IRQs are freed.
 */
static int ntb_ivshmem_local_add(struct ntb_ivshmem *ndev, struct device *dev)
{
	if (!local_ring)
		return 0;
	init_irq_work(&ndev->ring_work[NTB_IVSHMEM_VEC_LINK], ntb_ivshmem_link_ring);
	init_irq_work(&ndev->ring_work[NTB_IVSHMEM_VEC_DB], ntb_ivshmem_db_ring);
	spin_lock_irq(&ntb_ivshmem_local_lock);
	list_add_tail(&ndev->local, &ntb_ivshmem_local);
	spin_unlock_irq(&ntb_ivshmem_local_lock);
	return devm_add_action_or_reset(dev, ntb_ivshmem_local_del, ndev);
}

/*
 * The link as a hardware status register shows it: up while both ports
 * are bound and enabled, whether or not the link work has told the
 * clients yet. The peer may see the link first and at once send
 * doorbells and scratchpad commands; a client that looks at the link
 * state when they arrive (ntb_perf does, and drops them when it is down)
 * must see it up. A peer probed again since the link came up shows it
 * down until the link work has reported the loss.
 */
static bool ntb_ivshmem_link_live(struct ntb_ivshmem *ndev)
{
	u32 sts = READ_ONCE(ndev->peer->status);

	if (!READ_ONCE(ndev->ready) || !READ_ONCE(ndev->link_enabled) ||
	    READ_ONCE(ndev->force_down) ||
	    (sts & NTB_IVSHMEM_STS_UP) != NTB_IVSHMEM_STS_UP)
		return false;
	return !READ_ONCE(ndev->link_up) ||
	       READ_ONCE(ndev->peer->generation) == READ_ONCE(ndev->peer_gen);
}

static u64 ntb_ivshmem_link_is_up(struct ntb_dev *ntb, enum ntb_speed *speed,
				  enum ntb_width *width)
{
	struct ntb_ivshmem *ndev = ntb_ndev(ntb);
	bool up = ntb_ivshmem_link_live(ndev);

	/* A memory copy between guests has no PCIe speed or width. */
	if (speed)
		*speed = up ? NTB_SPEED_AUTO : NTB_SPEED_NONE;
	if (width)
		*width = up ? NTB_WIDTH_AUTO : NTB_WIDTH_NONE;
	return up;
}

static int ntb_ivshmem_link_set(struct ntb_ivshmem *ndev, bool enable)
{
	unsigned long flags;

	spin_lock_irqsave(&ndev->lock, flags);
	WRITE_ONCE(ndev->link_enabled, enable);
	ntb_ivshmem_publish(ndev);
	spin_unlock_irqrestore(&ndev->lock, flags);
	ntb_ivshmem_link_check(ndev);
	return 0;
}

static int ntb_ivshmem_link_enable(struct ntb_dev *ntb,
				   enum ntb_speed max_speed,
				   enum ntb_width max_width)
{
	return ntb_ivshmem_link_set(ntb_ndev(ntb), true);
}

static int ntb_ivshmem_link_disable(struct ntb_dev *ntb)
{
	return ntb_ivshmem_link_set(ntb_ndev(ntb), false);
}

static int ntb_ivshmem_mw_count(struct ntb_dev *ntb, int pidx)
{
	if (pidx != NTB_DEF_PEER_IDX)
		return -EINVAL;
	return ntb_ndev(ntb)->mw_count;
}

static bool ntb_ivshmem_mw_valid(struct ntb_ivshmem *ndev, int pidx, int widx)
{
	return pidx == NTB_DEF_PEER_IDX && widx >= 0 && widx < ndev->mw_count;
}

static int ntb_ivshmem_mw_get_align(struct ntb_dev *ntb, int pidx, int widx,
				    resource_size_t *addr_align,
				    resource_size_t *size_align,
				    resource_size_t *size_max)
{
	struct ntb_ivshmem *ndev = ntb_ndev(ntb);

	if (!ntb_ivshmem_mw_valid(ndev, pidx, widx))
		return -EINVAL;
	/*
	 * A window-aligned buffer from the device's pool starts at a window;
	 * only the right one is accepted by mw_set_trans.
	 */
	if (addr_align)
		*addr_align = ndev->win_size;
	if (size_align)
		*size_align = PAGE_SIZE;
	if (size_max)
		*size_max = ndev->win_size;
	return 0;
}

static int ntb_ivshmem_mw_set_trans(struct ntb_dev *ntb, int pidx, int widx,
				    dma_addr_t addr, resource_size_t size)
{
	struct ntb_ivshmem *ndev = ntb_ndev(ntb);
	phys_addr_t win;

	if (!ntb_ivshmem_mw_valid(ndev, pidx, widx))
		return -EINVAL;
	win = ndev->local_base + widx * ndev->mw_size + ndev->win_off;
	if (addr != win) {
		dev_err(&ntb->dev,
			"MW%d: the peer's window reaches only %pa, not %pad: allocate window buffers of the full window size from this device, in window order\n",
			widx, &win, &addr);
		return -EINVAL;
	}
	if (!size || size > ndev->win_size || !IS_ALIGNED(size, PAGE_SIZE)) {
		dev_err(&ntb->dev, "MW%d: bad translation size %pa (window %pa)\n",
			widx, &size, &ndev->win_size);
		return -EINVAL;
	}
	WRITE_ONCE(ndev->xlat_size[widx], size);
	WRITE_ONCE(ndev->xlat[widx], addr);
	return 0;
}

static int ntb_ivshmem_mw_clear_trans(struct ntb_dev *ntb, int pidx, int widx)
{
	struct ntb_ivshmem *ndev = ntb_ndev(ntb);

	if (!ntb_ivshmem_mw_valid(ndev, pidx, widx))
		return -EINVAL;
	WRITE_ONCE(ndev->xlat[widx], 0);
	WRITE_ONCE(ndev->xlat_size[widx], 0);
	return 0;
}

static int ntb_ivshmem_peer_mw_count(struct ntb_dev *ntb)
{
	return ntb_ndev(ntb)->mw_count;
}

static int ntb_ivshmem_peer_mw_get_addr(struct ntb_dev *ntb, int widx,
					phys_addr_t *base,
					resource_size_t *size)
{
	struct ntb_ivshmem *ndev = ntb_ndev(ntb);

	if (!ntb_ivshmem_mw_valid(ndev, NTB_DEF_PEER_IDX, widx))
		return -EINVAL;
	if (base)
		*base = ndev->peer_win + widx * ndev->mw_size + ndev->win_off;
	if (size)
		*size = ndev->win_size;
	return 0;
}

static u64 ntb_ivshmem_db_valid_mask(struct ntb_dev *ntb)
{
	return NTB_IVSHMEM_DB_MASK;
}

static int ntb_ivshmem_db_vector_count(struct ntb_dev *ntb)
{
	return 1;
}

static u64 ntb_ivshmem_db_vector_mask(struct ntb_dev *ntb, int db_vector)
{
	return db_vector ? 0 : NTB_IVSHMEM_DB_MASK;
}

static u64 ntb_ivshmem_db_read(struct ntb_dev *ntb)
{
	return atomic64_read(&ntb_ndev(ntb)->self->db);
}

static int ntb_ivshmem_db_set(struct ntb_dev *ntb, u64 db_bits)
{
	struct ntb_ivshmem *ndev = ntb_ndev(ntb);

	if (db_bits & ~NTB_IVSHMEM_DB_MASK)
		return -EINVAL;
	atomic64_or(db_bits, &ndev->self->db);
	ntb_ivshmem_ring(ndev, ndev->id, NTB_IVSHMEM_VEC_DB);
	return 0;
}

static int ntb_ivshmem_db_clear(struct ntb_dev *ntb, u64 db_bits)
{
	if (db_bits & ~NTB_IVSHMEM_DB_MASK)
		return -EINVAL;
	atomic64_andnot(db_bits, &ntb_ndev(ntb)->self->db);
	return 0;
}

static u64 ntb_ivshmem_db_read_mask(struct ntb_dev *ntb)
{
	return READ_ONCE(ntb_ndev(ntb)->db_mask);
}

static int ntb_ivshmem_db_set_mask(struct ntb_dev *ntb, u64 db_bits)
{
	struct ntb_ivshmem *ndev = ntb_ndev(ntb);
	unsigned long flags;

	if (db_bits & ~NTB_IVSHMEM_DB_MASK)
		return -EINVAL;
	spin_lock_irqsave(&ndev->lock, flags);
	WRITE_ONCE(ndev->db_mask, ndev->db_mask | db_bits);
	spin_unlock_irqrestore(&ndev->lock, flags);
	return 0;
}

static int ntb_ivshmem_db_clear_mask(struct ntb_dev *ntb, u64 db_bits)
{
	struct ntb_ivshmem *ndev = ntb_ndev(ntb);
	unsigned long flags;

	if (db_bits & ~NTB_IVSHMEM_DB_MASK)
		return -EINVAL;
	spin_lock_irqsave(&ndev->lock, flags);
	WRITE_ONCE(ndev->db_mask, ndev->db_mask & ~db_bits);
	spin_unlock_irqrestore(&ndev->lock, flags);
	/* A pending bit that gets unmasked interrupts, as on hardware. */
	if (atomic64_read(&ndev->self->db) & db_bits)
		ntb_ivshmem_ring(ndev, ndev->id, NTB_IVSHMEM_VEC_DB);
	return 0;
}

static int ntb_ivshmem_peer_db_set(struct ntb_dev *ntb, u64 db_bits)
{
	struct ntb_ivshmem *ndev = ntb_ndev(ntb);

	if (db_bits & ~NTB_IVSHMEM_DB_MASK)
		return -EINVAL;
	/* The locked OR orders the client's earlier window stores too. */
	atomic64_or(db_bits, &ndev->peer->db);
	ntb_ivshmem_ring(ndev, ndev->peer_id, NTB_IVSHMEM_VEC_DB);
	return 0;
}

static int ntb_ivshmem_spad_count(struct ntb_dev *ntb)
{
	return NTB_IVSHMEM_SPAD_COUNT;
}

static u32 ntb_ivshmem_spad_read(struct ntb_dev *ntb, int sidx)
{
	if (sidx < 0 || sidx >= NTB_IVSHMEM_SPAD_COUNT)
		return 0;
	return READ_ONCE(ntb_ndev(ntb)->self->spad[sidx]);
}

static int ntb_ivshmem_spad_write(struct ntb_dev *ntb, int sidx, u32 val)
{
	if (sidx < 0 || sidx >= NTB_IVSHMEM_SPAD_COUNT)
		return -EINVAL;
	WRITE_ONCE(ntb_ndev(ntb)->self->spad[sidx], val);
	return 0;
}

static u32 ntb_ivshmem_peer_spad_read(struct ntb_dev *ntb, int pidx, int sidx)
{
	if (pidx != NTB_DEF_PEER_IDX || sidx < 0 ||
	    sidx >= NTB_IVSHMEM_SPAD_COUNT)
		return 0;
	return READ_ONCE(ntb_ndev(ntb)->peer->spad[sidx]);
}

static int ntb_ivshmem_peer_spad_write(struct ntb_dev *ntb, int pidx,
				       int sidx, u32 val)
{
	if (pidx != NTB_DEF_PEER_IDX || sidx < 0 ||
	    sidx >= NTB_IVSHMEM_SPAD_COUNT)
		return -EINVAL;
	WRITE_ONCE(ntb_ndev(ntb)->peer->spad[sidx], val);
	return 0;
}

static const struct ntb_dev_ops ntb_ivshmem_ops = {
	.link_is_up		= ntb_ivshmem_link_is_up,
	.link_enable		= ntb_ivshmem_link_enable,
	.link_disable		= ntb_ivshmem_link_disable,
	.mw_count		= ntb_ivshmem_mw_count,
	.mw_get_align		= ntb_ivshmem_mw_get_align,
	.mw_set_trans		= ntb_ivshmem_mw_set_trans,
	.mw_clear_trans		= ntb_ivshmem_mw_clear_trans,
	.peer_mw_count		= ntb_ivshmem_peer_mw_count,
	.peer_mw_get_addr	= ntb_ivshmem_peer_mw_get_addr,
	.db_valid_mask		= ntb_ivshmem_db_valid_mask,
	.db_vector_count	= ntb_ivshmem_db_vector_count,
	.db_vector_mask		= ntb_ivshmem_db_vector_mask,
	.db_read		= ntb_ivshmem_db_read,
	.db_set			= ntb_ivshmem_db_set,
	.db_clear		= ntb_ivshmem_db_clear,
	.db_read_mask		= ntb_ivshmem_db_read_mask,
	.db_set_mask		= ntb_ivshmem_db_set_mask,
	.db_clear_mask		= ntb_ivshmem_db_clear_mask,
	.peer_db_set		= ntb_ivshmem_peer_db_set,
	.spad_count		= ntb_ivshmem_spad_count,
	.spad_read		= ntb_ivshmem_spad_read,
	.spad_write		= ntb_ivshmem_spad_write,
	.peer_spad_read		= ntb_ivshmem_peer_spad_read,
	.peer_spad_write	= ntb_ivshmem_peer_spad_write,
};

static int ntb_ivshmem_info_show(struct seq_file *s, void *unused)
{
	struct ntb_ivshmem *ndev = s->private;
	int i;

	seq_printf(s, "id %u peer %u\n", ndev->id, ndev->peer_id);
	seq_printf(s, "link %s%s%s\n", READ_ONCE(ndev->link_up) ? "up" : "down",
		   READ_ONCE(ndev->link_enabled) ? "" : " (disabled)",
		   READ_ONCE(ndev->force_down) ? " (forced down)" : "");
	seq_printf(s, "status local %#x peer %#x, peer generation %u\n",
		   READ_ONCE(ndev->self->status), READ_ONCE(ndev->peer->status),
		   READ_ONCE(ndev->peer->generation));
	seq_printf(s, "db %#llx mask %#llx\n",
		   (u64)atomic64_read(&ndev->self->db),
		   (u64)READ_ONCE(ndev->db_mask));
	for (i = 0; i < ndev->mw_count; i++) {
		phys_addr_t in = ndev->local_base + i * ndev->mw_size +
				 ndev->win_off;
		phys_addr_t out = ndev->peer_win + i * ndev->mw_size +
				  ndev->win_off;
		dma_addr_t xlat = READ_ONCE(ndev->xlat[i]);
		resource_size_t xsz = READ_ONCE(ndev->xlat_size[i]);

		seq_printf(s, "mw%d size %pa inbound %pa xlat %pad/%pa outbound %pa\n",
			   i, &ndev->win_size, &in, &xlat, &xsz, &out);
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ntb_ivshmem_info);

static ssize_t ntb_ivshmem_link_read(struct file *file, char __user *ubuf,
				     size_t count, loff_t *ppos)
{
	struct ntb_ivshmem *ndev = file->private_data;
	const char *s = READ_ONCE(ndev->force_down) ? "down\n" : "up\n";

	return simple_read_from_buffer(ubuf, count, ppos, s, strlen(s));
}

static ssize_t ntb_ivshmem_link_write(struct file *file,
				      const char __user *ubuf,
				      size_t count, loff_t *ppos)
{
	struct ntb_ivshmem *ndev = file->private_data;
	char buf[8] = {};
	bool down;

	if (count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	if (sysfs_streq(buf, "down"))
		down = true;
	else if (sysfs_streq(buf, "up"))
		down = false;
	else
		return -EINVAL;

	spin_lock_irq(&ndev->lock);
	WRITE_ONCE(ndev->force_down, down);
	ntb_ivshmem_publish(ndev);
	spin_unlock_irq(&ndev->lock);
	ntb_ivshmem_link_check(ndev);
	return count;
}

static const struct file_operations ntb_ivshmem_link_fops = {
	.owner	= THIS_MODULE,
	.open	= simple_open,
	.read	= ntb_ivshmem_link_read,
	.write	= ntb_ivshmem_link_write,
	.llseek	= default_llseek,
};

static struct ntb_ivshmem_dma *to_ntb_ivshmem_dma(struct dma_chan *chan)
{
	return container_of(chan, struct ntb_ivshmem_dma, chan);
}

/* Where @len bytes at physical @phys can be reached: 1 window, 0 RAM. */
static int ntb_ivshmem_dma_reach(struct ntb_ivshmem_dma *e, phys_addr_t phys,
				 size_t len)
{
	if (phys >= e->win_phys && len <= e->win_len &&
	    phys - e->win_phys <= e->win_len - len)
		return 1;
	if (region_intersects(phys, len, IORESOURCE_SYSTEM_RAM,
			      IORES_DESC_NONE) == REGION_INTERSECTS)
		return 0;
	return -EFAULT;
}

/* Map a piece that does not cross a page of RAM; unmap in reverse order. */
static void *ntb_ivshmem_dma_map(struct ntb_ivshmem_dma *e, phys_addr_t phys,
				 bool win)
{
	if (win)
		return e->win + (phys - e->win_phys);
	return kmap_local_pfn(PHYS_PFN(phys)) + offset_in_page(phys);
}

static void ntb_ivshmem_dma_unmap(void *addr, bool win)
{
	if (!win)
		kunmap_local(addr);
}

static int ntb_ivshmem_dma_copy(struct ntb_ivshmem_dma *e,
				struct ntb_ivshmem_dma_desc *d)
{
	/* The identity mappings of ntb_ivshmem_dma_map_ops. */
	phys_addr_t dst = d->dst;
	phys_addr_t src = d->src;
	int dst_win = ntb_ivshmem_dma_reach(e, dst, d->len);
	int src_win = ntb_ivshmem_dma_reach(e, src, d->len);
	size_t done, n;
	void *to, *from;

	if (dst_win < 0 || src_win < 0)
		return -EFAULT;
	for (done = 0; done < d->len; done += n) {
		n = d->len - done;
		if (!dst_win)
			n = min(n, PAGE_SIZE - offset_in_page(dst + done));
		if (!src_win)
			n = min(n, PAGE_SIZE - offset_in_page(src + done));
		to = ntb_ivshmem_dma_map(e, dst + done, dst_win);
		from = ntb_ivshmem_dma_map(e, src + done, src_win);
		memcpy(to, from, n);
		ntb_ivshmem_dma_unmap(from, src_win);
		ntb_ivshmem_dma_unmap(to, dst_win);
		cond_resched();
	}
	return 0;
}

static void ntb_ivshmem_dma_work(struct work_struct *work)
{
	struct ntb_ivshmem_dma *e = container_of(work, struct ntb_ivshmem_dma,
						 work);
	struct ntb_ivshmem_dma_desc *d;
	struct dmaengine_desc_callback cb;
	struct dmaengine_result res;
	bool dead;

	for (;;) {
		spin_lock_irq(&e->lock);
		d = list_first_entry_or_null(&e->issued,
					     struct ntb_ivshmem_dma_desc, node);
		if (d)
			list_del(&d->node);
		dead = e->dead;
		spin_unlock_irq(&e->lock);
		if (!d)
			return;

		res.residue = 0;
		if (dead)
			res.result = DMA_TRANS_ABORTED;
		else if (atomic_add_unless(&e->fail, -1, 0))
			res.result = DMA_TRANS_WRITE_FAILED;
		else if (ntb_ivshmem_dma_copy(e, d))
			res.result = DMA_TRANS_READ_FAILED;
		else
			res.result = DMA_TRANS_NOERROR;
		if (res.result == DMA_TRANS_NOERROR) {
			atomic64_inc(&e->copies);
		} else {
			res.residue = d->len;
			atomic64_inc(&e->errors);
		}

		spin_lock_irq(&e->lock);
		dma_cookie_complete(&d->tx);
		spin_unlock_irq(&e->lock);
		dmaengine_desc_get_callback(&d->tx, &cb);
		dmaengine_desc_callback_invoke(&cb, &res);
		kfree(d);
	}
}

static dma_cookie_t ntb_ivshmem_dma_submit(struct dma_async_tx_descriptor *tx)
{
	struct ntb_ivshmem_dma *e = to_ntb_ivshmem_dma(tx->chan);
	struct ntb_ivshmem_dma_desc *d = container_of(tx, struct ntb_ivshmem_dma_desc,
						      tx);
	unsigned long flags;
	dma_cookie_t cookie;

	spin_lock_irqsave(&e->lock, flags);
	cookie = dma_cookie_assign(tx);
	list_add_tail(&d->node, &e->submitted);
	spin_unlock_irqrestore(&e->lock, flags);
	return cookie;
}

static struct dma_async_tx_descriptor *
ntb_ivshmem_dma_prep_memcpy(struct dma_chan *chan, dma_addr_t dst,
			    dma_addr_t src, size_t len, unsigned long flags)
{
	struct ntb_ivshmem_dma *e = to_ntb_ivshmem_dma(chan);
	struct ntb_ivshmem_dma_desc *d;

	if (!len || READ_ONCE(e->dead))
		return NULL;
	d = kzalloc_obj(*d, GFP_NOWAIT);
	if (!d)
		return NULL;
	dma_async_tx_descriptor_init(&d->tx, chan);
	d->tx.tx_submit = ntb_ivshmem_dma_submit;
	d->tx.flags = flags;
	d->dst = dst;
	d->src = src;
	d->len = len;
	return &d->tx;
}

static void ntb_ivshmem_dma_issue_pending(struct dma_chan *chan)
{
	struct ntb_ivshmem_dma *e = to_ntb_ivshmem_dma(chan);
	unsigned long flags;

	spin_lock_irqsave(&e->lock, flags);
	list_splice_tail_init(&e->submitted, &e->issued);
	/* Under the lock: the port's removal flushes the work after @dead. */
	if (!e->dead && !list_empty(&e->issued))
		queue_work(system_dfl_wq, &e->work);
	spin_unlock_irqrestore(&e->lock, flags);
}

static enum dma_status ntb_ivshmem_dma_tx_status(struct dma_chan *chan,
						 dma_cookie_t cookie,
						 struct dma_tx_state *state)
{
	return dma_cookie_status(chan, cookie, state);
}

static void ntb_ivshmem_dma_free_list(struct list_head *list)
{
	struct ntb_ivshmem_dma_desc *d, *tmp;

	list_for_each_entry_safe(d, tmp, list, node)
		kfree(d);
}

/* Drops what was not started, without callbacks, as hardware would. */
static int ntb_ivshmem_dma_terminate_all(struct dma_chan *chan)
{
	struct ntb_ivshmem_dma *e = to_ntb_ivshmem_dma(chan);
	unsigned long flags;
	LIST_HEAD(list);

	spin_lock_irqsave(&e->lock, flags);
	list_splice_tail_init(&e->submitted, &list);
	list_splice_tail_init(&e->issued, &list);
	spin_unlock_irqrestore(&e->lock, flags);
	ntb_ivshmem_dma_free_list(&list);
	return 0;
}

static void ntb_ivshmem_dma_synchronize(struct dma_chan *chan)
{
	flush_work(&to_ntb_ivshmem_dma(chan)->work);
}

static int ntb_ivshmem_dma_alloc_chan(struct dma_chan *chan)
{
	dma_cookie_init(chan);
	return 0;
}

static void ntb_ivshmem_dma_free_chan(struct dma_chan *chan)
{
	ntb_ivshmem_dma_terminate_all(chan);
	ntb_ivshmem_dma_synchronize(chan);
}

/* The last reference is gone: no client holds the channel any more. */
static void ntb_ivshmem_dma_release(struct dma_device *dma)
{
	struct ntb_ivshmem_dma *e = container_of(dma, struct ntb_ivshmem_dma,
						 dma);

	ntb_ivshmem_dma_free_list(&e->submitted);
	ntb_ivshmem_dma_free_list(&e->issued);
	kfree(e);
}

static int ntb_ivshmem_dma_probe(struct ntb_ivshmem *ndev, struct pci_dev *pdev)
{
	struct device *dev = &pdev->dev;
	struct ntb_ivshmem_dma *e;
	struct dma_device *dma;
	int rc;

	/* The peer's RAM BAR and the guest's RAM may lie above 4 GiB. */
	rc = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64));
	if (rc)
		return rc;
	e = kzalloc_obj(*e, GFP_KERNEL);
	if (!e)
		return -ENOMEM;
	spin_lock_init(&e->lock);
	INIT_LIST_HEAD(&e->submitted);
	INIT_LIST_HEAD(&e->issued);
	INIT_WORK(&e->work, ntb_ivshmem_dma_work);
	e->win_phys = ndev->peer_win;
	e->win_len = ndev->mw_count * ndev->mw_size;
	e->win = memremap(e->win_phys, e->win_len, MEMREMAP_WC);
	if (!e->win) {
		rc = -ENOMEM;
		goto err_free;
	}

	dma = &e->dma;
	dma->dev = dev;
	INIT_LIST_HEAD(&dma->channels);
	dma_cap_set(DMA_MEMCPY, dma->cap_mask);
	dma->copy_align = DMAENGINE_ALIGN_1_BYTE;
	dma->directions = BIT(DMA_MEM_TO_MEM);
	dma->residue_granularity = DMA_RESIDUE_GRANULARITY_DESCRIPTOR;
	dma->device_alloc_chan_resources = ntb_ivshmem_dma_alloc_chan;
	dma->device_free_chan_resources = ntb_ivshmem_dma_free_chan;
	dma->device_prep_dma_memcpy = ntb_ivshmem_dma_prep_memcpy;
	dma->device_issue_pending = ntb_ivshmem_dma_issue_pending;
	dma->device_tx_status = ntb_ivshmem_dma_tx_status;
	dma->device_terminate_all = ntb_ivshmem_dma_terminate_all;
	dma->device_synchronize = ntb_ivshmem_dma_synchronize;
	dma->device_release = ntb_ivshmem_dma_release;
	e->chan.device = dma;
	list_add_tail(&e->chan.device_node, &dma->channels);

	rc = dma_async_device_register(dma);
	if (rc)
		goto err_unmap;
	ndev->dma = e;
	return 0;

err_unmap:
	memunmap(e->win);
err_free:
	kfree(e);
	return rc;
}

/*
 * Stop copying before the windows go; a client may hold the channel for a
 * while longer and gets errors meanwhile, the engine is freed when it lets
 * go (ntb_ivshmem_dma_release()).
 */
static void ntb_ivshmem_dma_remove(struct ntb_ivshmem *ndev)
{
	struct ntb_ivshmem_dma *e = ndev->dma;

	if (!e)
		return;
	spin_lock_irq(&e->lock);
	WRITE_ONCE(e->dead, true);
	spin_unlock_irq(&e->lock);
	flush_work(&e->work);
	memunmap(e->win);
	ndev->dma = NULL;
	dma_async_device_unregister(&e->dma);
}

static int ntb_ivshmem_dma_show(struct seq_file *s, void *unused)
{
	struct ntb_ivshmem_dma *e = s->private;

	seq_printf(s, "%s copies %llu errors %llu fail %d\n",
		   dma_chan_name(&e->chan), (u64)atomic64_read(&e->copies),
		   (u64)atomic64_read(&e->errors), atomic_read(&e->fail));
	return 0;
}

static int ntb_ivshmem_dma_open(struct inode *inode, struct file *file)
{
	return single_open(file, ntb_ivshmem_dma_show, inode->i_private);
}

/* Fail the next N descriptors, as a faulty engine would. */
static ssize_t ntb_ivshmem_dma_write(struct file *file, const char __user *ubuf,
				     size_t count, loff_t *ppos)
{
	struct ntb_ivshmem_dma *e = file_inode(file)->i_private;
	unsigned int n;
	int rc;

	rc = kstrtouint_from_user(ubuf, count, 0, &n);
	if (rc)
		return rc;
	if (n > INT_MAX)
		return -EINVAL;
	atomic_set(&e->fail, n);
	return count;
}

static const struct file_operations ntb_ivshmem_dma_fops = {
	.owner		= THIS_MODULE,
	.open		= ntb_ivshmem_dma_open,
	.read		= seq_read,
	.write		= ntb_ivshmem_dma_write,
	.llseek		= seq_lseek,
	.release	= single_release,
};

static void ntb_ivshmem_put_plain(void *data)
{
	struct pci_dev *plain = data;

	pci_release_region(plain, IVSHMEM_MEM_BAR);
	pci_disable_device(plain);
	pci_dev_put(plain);
}

/*
 * Find function 1 of our slot, the ivshmem-plain device mapping the peer's
 * RAM, and enable its memory decoding; no driver binds it.
 */
static int ntb_ivshmem_get_plain(struct ntb_ivshmem *ndev, struct pci_dev *pdev)
{
	struct pci_dev *plain;
	int rc;

	plain = pci_get_slot(pdev->bus, PCI_DEVFN(PCI_SLOT(pdev->devfn), 1));
	if (!plain || plain->vendor != PCI_VENDOR_ID_REDHAT_QUMRANET ||
	    plain->device != PCI_DEVICE_ID_IVSHMEM || plain->msix_cap ||
	    !(pci_resource_flags(plain, IVSHMEM_MEM_BAR) & IORESOURCE_MEM)) {
		pci_dev_put(plain);
		dev_err(&pdev->dev,
			"no ivshmem-plain device (the peer's RAM) at function 1 of this slot\n");
		return -ENODEV;
	}
	rc = pci_enable_device_mem(plain);
	if (rc)
		goto err_put;
	rc = pci_request_region(plain, IVSHMEM_MEM_BAR, KBUILD_MODNAME);
	if (rc)
		goto err_disable;
	ndev->plain = plain;
	return devm_add_action_or_reset(&pdev->dev, ntb_ivshmem_put_plain, plain);

err_disable:
	pci_disable_device(plain);
err_put:
	pci_dev_put(plain);
	return rc;
}

static void ntb_ivshmem_stop_work(void *data)
{
	struct ntb_ivshmem *ndev = data;

	disable_delayed_work_sync(&ndev->link_work);
}

/*
 * DMA mapping of the port's PCI function, on which clients allocate their
 * inbound window buffers and the emulated engine's clients map theirs.
 * The peer reaches only the fixed windows, so coherent allocations come
 * from the local region, aligned to their size (see "Memory windows"
 * above). Nothing translates the function's bus addresses (probe refuses
 * an IOMMU): a streaming mapping is the physical address.
 */
static struct gen_pool *ntb_ivshmem_pool(struct device *dev)
{
	struct ntb_ivshmem *ndev = pci_get_drvdata(to_pci_dev(dev));

	return ndev->pool;
}

static void *ntb_ivshmem_dma_alloc(struct device *dev, size_t size,
				   dma_addr_t *dma_handle, gfp_t gfp,
				   unsigned long attrs)
{
	return gen_pool_dma_zalloc(ntb_ivshmem_pool(dev), size, dma_handle);
}

static void ntb_ivshmem_dma_free(struct device *dev, size_t size,
				 void *vaddr, dma_addr_t dma_handle,
				 unsigned long attrs)
{
	gen_pool_free(ntb_ivshmem_pool(dev), (unsigned long)vaddr, size);
}

static dma_addr_t ntb_ivshmem_map_phys(struct device *dev, phys_addr_t phys,
				       size_t size,
				       enum dma_data_direction dir,
				       unsigned long attrs)
{
	return phys;
}

static int ntb_ivshmem_map_sg(struct device *dev, struct scatterlist *sgl,
			      int nents, enum dma_data_direction dir,
			      unsigned long attrs)
{
	struct scatterlist *sg;
	int i;

	for_each_sg(sgl, sg, nents, i) {
		sg->dma_address = sg_phys(sg);
		sg_dma_len(sg) = sg->length;
	}
	return nents;
}

static const struct dma_map_ops ntb_ivshmem_dma_map_ops = {
	.alloc		= ntb_ivshmem_dma_alloc,
	.free		= ntb_ivshmem_dma_free,
	.map_phys	= ntb_ivshmem_map_phys,
	.map_sg		= ntb_ivshmem_map_sg,
};

/* Before the pool goes, which must be empty then. */
static void ntb_ivshmem_free_guard(void *data)
{
	struct ntb_ivshmem *ndev = data;

	gen_pool_free(ndev->pool, ndev->pool_guard, PAGE_SIZE);
}

static void ntb_ivshmem_clear_dma_ops(void *data)
{
	set_dma_ops(data, NULL);
}

/* Make the local region the pool of ntb_ivshmem_dma_map_ops. */
static int ntb_ivshmem_setup_dma(struct ntb_ivshmem *ndev, struct device *dev)
{
	resource_size_t size = ndev->mw_count * ndev->mw_size;
	void *base;
	int rc;

	if (device_iommu_mapped(dev))
		return dev_err_probe(dev, -ENODEV,
				     "behind an IOMMU: the fixed windows need untranslated DMA\n");
	/* The region is RAM on the host, shared with the peer's QEMU. */
	base = devm_memremap(dev, ndev->local_base, size, MEMREMAP_WB);
	if (IS_ERR(base))
		return PTR_ERR(base);
	ndev->pool = devm_gen_pool_create(dev, PAGE_SHIFT, dev_to_node(dev),
					  NULL);
	if (IS_ERR(ndev->pool))
		return PTR_ERR(ndev->pool);
	gen_pool_set_algo(ndev->pool, strict_align ? gen_pool_first_fit :
			  gen_pool_first_fit_order_align, NULL);
	rc = gen_pool_add_virt(ndev->pool, (unsigned long)base,
			       ndev->local_base, size, dev_to_node(dev));
	if (rc)
		return rc;
	if (strict_align) {
		/* Nothing the client gets is aligned by luck. */
		ndev->pool_guard = gen_pool_alloc(ndev->pool, PAGE_SIZE);
		rc = devm_add_action_or_reset(dev, ntb_ivshmem_free_guard, ndev);
		if (rc)
			return rc;
	}
	set_dma_ops(dev, &ntb_ivshmem_dma_map_ops);
	if (get_dma_ops(dev) != &ntb_ivshmem_dma_map_ops)
		return dev_err_probe(dev, -ENODEV,
				     "the kernel has no per-device DMA ops (ARCH_HAS_DMA_OPS; GART_IOMMU on x86)\n");
	return devm_add_action_or_reset(dev, ntb_ivshmem_clear_dma_ops, dev);
}

/* Read and check the layout the server set up; find both regions. */
static int ntb_ivshmem_setup_layout(struct ntb_ivshmem *ndev,
				    struct pci_dev *pdev, void *ctrl,
				    resource_size_t ctrl_len)
{
	const struct ntb_ivshmem_hdr *hdr = ctrl;
	struct device *dev = &pdev->dev;
	resource_size_t plain_len;
	u64 base, size, peer_off;
	u32 mw_count;

	if (ctrl_len < 3 * NTB_IVSHMEM_BLOCK || hdr->magic != NTB_IVSHMEM_MAGIC ||
	    hdr->version != NTB_IVSHMEM_VERSION) {
		dev_err(dev, "shared memory has no NTB layout (is the server the kfabric ivshmem server?)\n");
		return -ENODEV;
	}
	base = hdr->region_base;
	size = hdr->region_size;
	mw_count = hdr->mw_count;
	if (!mw_count || mw_count > NTB_IVSHMEM_MAX_MW || !size ||
	    size % mw_count || !is_power_of_2(size / mw_count) ||
	    size / mw_count < SZ_1M || !IS_ALIGNED(base, size / mw_count)) {
		dev_err(dev, "bad window layout: %u windows in %#llx bytes at %#llx\n",
			mw_count, size, base);
		return -EINVAL;
	}
	ndev->mw_count = mw_count;
	ndev->mw_size = size / mw_count;
	ndev->win_size = strict_align ? ndev->mw_size / 2 : ndev->mw_size;
	ndev->win_off = ndev->mw_size - ndev->win_size;

	ndev->id = readl(ndev->regs + IVSHMEM_REG_IVPOSITION);
	if (ndev->id > 1) {
		dev_err(dev, "ivshmem id %u: only ids 0 and 1 (one pair) are supported\n",
			ndev->id);
		return -EINVAL;
	}
	ndev->peer_id = ndev->id ^ 1;
	ndev->self = ctrl + (ndev->id + 1) * NTB_IVSHMEM_BLOCK;
	ndev->peer = ctrl + (ndev->peer_id + 1) * NTB_IVSHMEM_BLOCK;

	ndev->local_base = base + ndev->id * size;
	if (region_intersects(ndev->local_base, size, IORESOURCE_SYSTEM_RAM,
			      IORES_DESC_NONE) != REGION_DISJOINT) {
		dev_err(dev, "inbound region %pa+%#llx is System RAM: boot with memmap=%lluK$%#llx\n",
			&ndev->local_base, size, 2 * size / SZ_1K, base);
		return -EINVAL;
	}

	peer_off = base + ndev->peer_id * size;
	plain_len = pci_resource_len(ndev->plain, IVSHMEM_MEM_BAR);
	if (peer_off + size > plain_len) {
		dev_err(dev, "peer memory BAR (%pa bytes) ends before the peer's region\n",
			&plain_len);
		return -EINVAL;
	}
	ndev->peer_win = pci_resource_start(ndev->plain, IVSHMEM_MEM_BAR) + peer_off;
	return 0;
}

static int ntb_ivshmem_probe(struct pci_dev *pdev,
			     const struct pci_device_id *id)
{
	struct device *dev = &pdev->dev;
	resource_size_t ctrl_len;
	struct ntb_ivshmem *ndev;
	void *ctrl;
	int rc;

	/*
	 * The plain device of the slot has no MSI-X; it is used through
	 * function 0.
	 */
	if (!pdev->msix_cap || PCI_FUNC(pdev->devfn) != 0)
		return -ENODEV;

	ndev = devm_kzalloc(dev, sizeof(*ndev), GFP_KERNEL);
	if (!ndev)
		return -ENOMEM;
	spin_lock_init(&ndev->lock);
	INIT_DELAYED_WORK(&ndev->link_work, ntb_ivshmem_link_work);
	ndev->db_mask = NTB_IVSHMEM_DB_MASK;
	/* The DMA ops find the pool through it. */
	pci_set_drvdata(pdev, ndev);

	rc = pcim_enable_device(pdev);
	if (rc)
		return rc;
	ndev->regs = pcim_iomap_region(pdev, IVSHMEM_REG_BAR, KBUILD_MODNAME);
	if (IS_ERR(ndev->regs))
		return PTR_ERR(ndev->regs);
	rc = pcim_request_region(pdev, IVSHMEM_MEM_BAR, KBUILD_MODNAME);
	if (rc)
		return rc;
	/* The control memory is RAM on the host: map it cacheable. */
	ctrl_len = pci_resource_len(pdev, IVSHMEM_MEM_BAR);
	ctrl = devm_memremap(dev, pci_resource_start(pdev, IVSHMEM_MEM_BAR),
			     ctrl_len, MEMREMAP_WB);
	if (IS_ERR(ctrl))
		return PTR_ERR(ctrl);

	rc = ntb_ivshmem_get_plain(ndev, pdev);
	if (rc)
		return rc;
	rc = ntb_ivshmem_setup_layout(ndev, pdev, ctrl, ctrl_len);
	if (rc)
		return rc;

	rc = ntb_ivshmem_setup_dma(ndev, dev);
	if (rc)
		return rc;
	/*
	 * The link work reads the status blocks in the control memory.
	 * Registered after it is mapped and before the IRQs are requested,
	 * the action runs once the IRQs are freed, so nothing queues the
	 * work again, and before the memory is unmapped.
	 */
	rc = devm_add_action_or_reset(dev, ntb_ivshmem_stop_work, ndev);
	if (rc)
		return rc;

	/* MSI-X messages are memory writes of the device. */
	pci_set_master(pdev);
	rc = pci_alloc_irq_vectors(pdev, NTB_IVSHMEM_NR_VECS,
				   NTB_IVSHMEM_NR_VECS, PCI_IRQ_MSIX);
	if (rc < 0)
		return rc;

	/* A fresh port: nothing pending, link down, new generation. */
	WRITE_ONCE(ndev->self->status, 0);
	atomic64_set(&ndev->self->db, 0);
	memset(ndev->self->spad, 0, sizeof(ndev->self->spad));
	WRITE_ONCE(ndev->self->generation, ndev->self->generation + 1);

	rc = devm_request_irq(dev, pci_irq_vector(pdev, NTB_IVSHMEM_VEC_LINK),
			      ntb_ivshmem_link_isr, 0, KBUILD_MODNAME, ndev);
	if (rc)
		return rc;
	rc = devm_request_irq(dev, pci_irq_vector(pdev, NTB_IVSHMEM_VEC_DB),
			      ntb_ivshmem_db_isr, 0, KBUILD_MODNAME, ndev);
	if (rc)
		return rc;
	rc = ntb_ivshmem_local_add(ndev, dev);
	if (rc)
		return rc;

	/* Before the clients probe, so that they find the engine. */
	if (dma_engine) {
		rc = ntb_ivshmem_dma_probe(ndev, pdev);
		if (rc)
			return rc;
	}

	ndev->ntb.pdev = pdev;
	ndev->ntb.topo = NTB_TOPO_CROSSLINK;
	ndev->ntb.ops = &ntb_ivshmem_ops;

	rc = ntb_register_device(&ndev->ntb);
	if (rc) {
		ntb_ivshmem_dma_remove(ndev);
		return rc;
	}

	/* Events reach the NTB core only from here on (see ->ready). */
	spin_lock_irq(&ndev->lock);
	WRITE_ONCE(ndev->ready, true);
	ntb_ivshmem_publish(ndev);
	spin_unlock_irq(&ndev->lock);
	ntb_ivshmem_link_check(ndev);

	ndev->dbgfs = debugfs_create_dir(pci_name(pdev), ntb_ivshmem_dbgfs_root);
	debugfs_create_file("info", 0400, ndev->dbgfs, ndev,
			    &ntb_ivshmem_info_fops);
	debugfs_create_file("link", 0600, ndev->dbgfs, ndev,
			    &ntb_ivshmem_link_fops);
	if (ndev->dma)
		debugfs_create_file("dma", 0600, ndev->dbgfs, ndev->dma,
				    &ntb_ivshmem_dma_fops);

	dev_info(dev, "NTB port id %u: %u x %pa windows, inbound at %pa\n",
		 ndev->id, ndev->mw_count, &ndev->win_size, &ndev->local_base);
	return 0;
}

static void ntb_ivshmem_remove(struct pci_dev *pdev)
{
	struct ntb_ivshmem *ndev = pci_get_drvdata(pdev);

	debugfs_remove_recursive(ndev->dbgfs);

	/* Tell the peer first, so it stops writing into our windows. */
	spin_lock_irq(&ndev->lock);
	WRITE_ONCE(ndev->ready, false);
	ntb_ivshmem_publish(ndev);
	spin_unlock_irq(&ndev->lock);

	/* The link work stops in ntb_ivshmem_stop_work() once IRQs are off. */
	ntb_unregister_device(&ndev->ntb);
	/* The clients are gone and have released their channels. */
	ntb_ivshmem_dma_remove(ndev);
}

static const struct pci_device_id ntb_ivshmem_pci_tbl[] = {
	{ PCI_DEVICE(PCI_VENDOR_ID_REDHAT_QUMRANET, PCI_DEVICE_ID_IVSHMEM) },
	{ }
};
MODULE_DEVICE_TABLE(pci, ntb_ivshmem_pci_tbl);

static struct pci_driver ntb_ivshmem_pci_driver = {
	.name		= KBUILD_MODNAME,
	.id_table	= ntb_ivshmem_pci_tbl,
	.probe		= ntb_ivshmem_probe,
	.remove		= ntb_ivshmem_remove,
};

static int __init ntb_ivshmem_init(void)
{
	int rc;

	ntb_ivshmem_dbgfs_root = debugfs_create_dir(KBUILD_MODNAME, NULL);
	rc = pci_register_driver(&ntb_ivshmem_pci_driver);
	if (rc)
		debugfs_remove_recursive(ntb_ivshmem_dbgfs_root);
	return rc;
}
module_init(ntb_ivshmem_init);

static void __exit ntb_ivshmem_exit(void)
{
	pci_unregister_driver(&ntb_ivshmem_pci_driver);
	debugfs_remove_recursive(ntb_ivshmem_dbgfs_root);
}
module_exit(ntb_ivshmem_exit);

MODULE_DESCRIPTION("NTB test device over QEMU ivshmem");
MODULE_LICENSE("GPL");
