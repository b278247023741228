/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kfabric over a PCIe non-transparent bridge: internal definitions.
 *
 * Every NTB link is a kfabric domain. Each side allocates an inbound
 * buffer, exposes it to the peer through memory window 0 and writes into
 * the peer's buffer through its outbound window. A buffer holds a control
 * ring, for connection management, and a number of channels, each the
 * receive side of one connection: a descriptor ring and a staging area
 * for payload. Everything in a buffer is written by the peer, so every
 * value read from it is snapshotted and checked before it is used.
 */
#ifndef _KFI_NTB_H
#define _KFI_NTB_H

#include <linux/bits.h>
#include <linux/bvec.h>
#include <linux/completion.h>
#include <linux/log2.h>
#include <linux/mempool.h>
#include <linux/mutex.h>
#include <linux/ntb.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include <rdma/kfi/provider.h>

/*
 * The magic scratchpad: "kf" above the range of protocol versions its
 * writer speaks. A link speaks the highest version both sides speak, with
 * the features both have; a peer with no version in common is refused.
 * A new version may change anything but this scratchpad; what a version
 * only adds, which the other side may ignore, is a feature.
 */
#define KFN_MAGIC		0x6b660000	/* "kf" */
#define KFN_MAGIC_MASK		GENMASK(31, 16)
#define KFN_MAGIC_VER_MAX	GENMASK(15, 8)
#define KFN_MAGIC_VER_MIN	GENMASK(7, 0)
#define KFN_VERSION_MIN		1	/* the versions we speak */
#define KFN_VERSION_MAX		1
#define KFN_FEAT_HEARTBEAT	BIT(0)	/* &kfn_hdr.beat */
/* The features we have. */
#define KFN_FEATURES		KFN_FEAT_HEARTBEAT

/* Scratchpads each side writes into its peer's: the link handshake. */
enum kfn_spad {
	KFN_SPAD_MAGIC,		/* KFN_MAGIC and versions, 0 when gone */
	KFN_SPAD_SIZE,		/* bytes of the writer's inbound buffer */
	KFN_SPAD_NCH,		/* channels in it */
	KFN_SPAD_NONCE,		/* the writer's session, never 0 */
	KFN_SPAD_ACK,		/* the reader's session, as the writer saw it */
	KFN_SPAD_FEATURES,	/* the writer's features */
	KFN_NR_SPADS,
};

#define KFN_PIDX		0	/* two-port devices: the one peer */
#define KFN_MW			0	/* the memory window we use */
#define KFN_DB_BIT		BIT_ULL(0)

#define KFN_RING		64	/* descriptors per channel */
#define KFN_CTRL_RING		16	/* control messages in flight */
#define KFN_CTRL_AREA		SZ_8K	/* control header and ring */
#define KFN_CHAN_HDR		SZ_8K	/* channel header and ring */
#define KFN_MIN_CHAN		SZ_16K
#define KFN_MAX_CHANNELS	256
#define KFN_MAX_CONNREQS	64	/* the peer's, queued for delivery */
/*
 * Connection events an endpoint holds for its handler, at most. A
 * connect() or an accept() brings two at most (the outcome, then the
 * disconnection), and is refused unless there is room for both.
 */
#define KFN_EP_EVENTS		4
#define KFN_CONN_EVENTS		2
/*
 * Payload per descriptor, at most (and a quarter of the staging area).
 * Each piece costs a descriptor, a doorbell and a wake-up of the peer's
 * worker; a piece is also what the receiver waits for before it starts
 * copying and what it still copies after the sender is done, so pieces
 * are not larger still.
 */
#define KFN_MAX_CHUNK		SZ_128K
/*
 * Memory region keys are 32 bits, the size of the keys in NVMe keyed SGL
 * data blocks and of RDMA rkeys: a region's index above a generation. The
 * generation starts at a random value and advances by a random step of 1
 * to KFN_MR_GEN_STEP with every mapping, so a peer that saw a key of a
 * region cannot tell the next one, and a key comes back only after
 * BIT(KFN_MR_GEN_BITS) / KFN_MR_GEN_STEP mappings of the region at the
 * earliest. The address of a mapping is random as well (KFN_MR_ADDR_MASK,
 * above the largest mapping, so that no address in it wraps around), so a
 * peer has to be given both.
 */
#define KFN_MR_GEN_BITS		12
#define KFN_MR_GEN_MASK		GENMASK(KFN_MR_GEN_BITS - 1, 0)
#define KFN_MR_GEN_STEP		16
#define KFN_MR_INDEX_MAX	GENMASK(31 - KFN_MR_GEN_BITS, 0)
#define KFN_MR_MAX_SIZE		SZ_1G
#define KFN_MR_ADDR_MASK	GENMASK_ULL(62, ilog2(KFN_MR_MAX_SIZE))

/*
 * Reserved fields and flags of the wire structures are written as zero
 * and checked on receipt, so that a later version or feature can give
 * them a meaning.
 */

/**
 * struct kfn_hdr - the header of the control area or of a channel
 * @cons: how many of the reader's messages or descriptors the writer of
 *	this header has consumed from the reader's buffer; the reader's
 *	send credits
 * @beat: control area, with %KFN_FEAT_HEARTBEAT: the writer's heartbeat,
 *	which its link worker counts up every second; zero otherwise
 * @rsvd: zero
 */
struct kfn_hdr {
	__le32 cons;
	__le32 beat;
	__le32 rsvd[14];
};

/* Reserved words are zero, and so is @hdr->beat unless it may beat. */
static inline bool kfn_hdr_valid(const struct kfn_hdr *hdr, bool beat)
{
	return (beat || !hdr->beat) &&
	       !memchr_inv(hdr->rsvd, 0, sizeof(hdr->rsvd));
}

/* Control message types. */
enum kfn_ctrl_type {
	KFN_CTRL_HELLO = 1,	/* data: the sender's domain name */
	KFN_CTRL_CONNREQ,
	KFN_CTRL_ACCEPT,
	KFN_CTRL_REJECT,
	KFN_CTRL_DISCONNECT,
};

/* &struct kfn_ctrl.status of a reject */
#define KFN_REJ_CONSUMER	0	/* the listener rejected it */
#define KFN_REJ_NOLISTENER	1	/* nobody listens on the port */
#define KFN_REJ_BUSY		2	/* no channel or no room */

/**
 * struct kfn_ctrl - a control message
 * @seq: how many messages the sender has sent, this one included;
 *	written last
 * @session: the receiver's session (&enum kfn_spad %KFN_SPAD_NONCE)
 * @type: &enum kfn_ctrl_type
 * @status: reject reason
 * @len: bytes of @data
 * @src_chan: the sender's channel of the connection
 * @dst_chan: the receiver's channel of the connection
 * @port: CONNREQ: the service
 * @seq_base: CONNREQ, ACCEPT: the sequence base of @src_chan
 * @auth_key: CONNREQ: the authorization key
 * @req_base: ACCEPT, REJECT: the @seq_base of the CONNREQ answered, which
 *	tells an answer to this attempt from one to an earlier attempt on
 *	the same channel
 * @rsvd: zero
 * @data: private data or the HELLO name
 */
struct kfn_ctrl {
	__le32 seq;
	__le32 session;
	u8 type;
	u8 status;
	__le16 len;
	__le32 src_chan;
	__le32 dst_chan;
	__le32 port;
	__le32 seq_base;
	__le32 auth_key;
	__le32 req_base;
	__le32 rsvd[4];
	u8 data[KFI_CM_DATA_MAX];
} __packed;

#define KFN_CTRL_SIZE		256
static_assert(sizeof(struct kfn_ctrl) <= KFN_CTRL_SIZE);
static_assert(sizeof(struct kfn_hdr) + KFN_CTRL_RING * KFN_CTRL_SIZE <=
	      KFN_CTRL_AREA);

/* Descriptor types. */
enum kfn_desc_type {
	KFN_D_SEND = 1,
	KFN_D_WRITE,
	KFN_D_READ_REQ,
	KFN_D_READ_RESP,
	KFN_D_NAK,
};

#define KFN_DF_FIRST		BIT(0)	/* first chunk of a send */
#define KFN_DF_LAST		BIT(1)	/* last chunk of a send, write, read */
#define KFN_DF_IMM		BIT(2)	/* @imm is valid (with LAST) */
#define KFN_DF_INV		BIT(3)	/* invalidate @inv_key (send, LAST) */
#define KFN_DF_ALL		GENMASK(3, 0)

/* Status codes on the wire (NAK, READ_RESP). */
enum kfn_status {
	KFN_ST_OK,
	KFN_ST_ACCESS,
	KFN_ST_MSGSIZE,
	KFN_ST_REMOTE,
};

/**
 * struct kfn_desc - a descriptor of a channel ring
 * @seq: the receiver's sequence base plus the descriptor's position,
 *	counted from 1; written last
 * @type: &enum kfn_desc_type
 * @flags: %KFN_DF_* flags
 * @status: READ_RESP, NAK: &enum kfn_status
 * @rsvd0: zero
 * @len: bytes of payload in the staging area; READ_REQ: bytes to read
 * @stage_off: offset of the payload in the staging area
 * @tag: READ_REQ, READ_RESP: the read; NAK: the position of the failed
 *	descriptor
 * @imm: immediate data
 * @addr: WRITE, READ_REQ: remote address
 * @key: WRITE, READ_REQ: memory region key
 * @inv_key: SEND with %KFN_DF_INV: key to invalidate
 * @off: READ_RESP: offset of the payload in the read; last WRITE chunk:
 *	bytes of the whole write
 * @rsvd: zero
 */
struct kfn_desc {
	__le32 seq;
	u8 type;
	u8 flags;
	u8 status;
	u8 rsvd0;
	__le32 len;
	__le32 stage_off;
	__le32 tag;
	__le32 imm;
	__le64 addr;
	__le64 key;
	__le64 inv_key;
	__le32 off;
	__le32 rsvd[3];
};

static_assert(sizeof(struct kfn_desc) == 64);
static_assert(sizeof(struct kfn_hdr) + KFN_RING * sizeof(struct kfn_desc) <=
	      KFN_CHAN_HDR);

/**
 * struct kfn_layout - where things are in an inbound buffer
 * @size: bytes of the buffer
 * @nch: channels
 * @chan_size: bytes per channel
 * @stage_size: bytes of a channel's staging area
 * @max_chunk: most payload bytes per descriptor
 */
struct kfn_layout {
	u32 size;
	u32 nch;
	u32 chan_size;
	u32 stage_size;
	u32 max_chunk;
};

enum kfn_chan_state {
	KFN_CHAN_FREE,
	KFN_CHAN_BOUND,		/* an endpoint receives on it */
	KFN_CHAN_CLOSING,	/* until the peer's DISCONNECT or REJECT */
};

/**
 * struct kfn_chan - a channel of our inbound buffer
 * @ep: the endpoint receiving on it, when bound
 * @state: &enum kfn_chan_state
 * @rc: the peer's channel of the connection, -1 before it is known
 * @deadline: closing: when it is reclaimed without the peer's answer
 * @base: the sequence base announced for it; an answer to our CONNREQ
 *	echoes it (&kfn_ctrl.req_base)
 */
struct kfn_chan {
	struct kfn_ep *ep;
	u8 state;
	int rc;
	unsigned long deadline;
	u32 base;
};

#define KFN_DMA_BATCH		16	/* copies waited for at once */

/**
 * struct kfn_dma_batch - outbound copies in flight on the DMA engine
 * @done: completed when the last of them finished
 * @pending: copies not finished, plus one while more may be added
 * @failed: how many of them the engine failed
 * @n: pieces in the batch
 * @src: their DMA addresses
 * @bv: the pieces
 * @dst: where each goes in the window
 *
 * Copies are submitted one after the other and waited for once, not one
 * by one: each costs a descriptor, not a round trip to the engine.
 */
struct kfn_dma_batch {
	struct completion done;
	atomic_t pending;
	atomic_t failed;
	u32 n;
	dma_addr_t src[KFN_DMA_BATCH];
	struct bio_vec bv[KFN_DMA_BATCH];
	void __iomem *dst[KFN_DMA_BATCH];
};

/**
 * struct kfn_link - an NTB link, and the kfabric domain it is
 * @dom: the domain; first, as the core allocates it
 * @ntb: the NTB device, NULL for the fuzzing link
 * @name: a name for messages
 * @mutex: serialises the link state, the channels, connection state of
 *	the endpoints, the control queue and the data worker
 * @eps: endpoints of the domain (&kfn_ep.node)
 * @in: inbound buffer, written by the peer
 * @in_dma: its DMA address, aligned as the bridge requires
 * @in_alloc: the allocation @in lies in
 * @in_alloc_dma: its DMA address
 * @in_alloc_len: its size
 * @in_l: its layout
 * @out: the outbound window, mapped while the link is up; MMIO, or RAM
 *	behind a software bridge, written with the io accessors either way
 * @out_phys: its physical address
 * @out_max: its size
 * @out_ram: the window is RAM (a software bridge), not a BAR
 * @out_l: the layout of the peer's buffer behind it
 * @chans: one per channel of @in
 * @nr_closing: of them, closing
 * @reap_at: when the first closing one is due for kfn_chan_reap()
 * @up: handshake done; data may flow
 * @gen: the link's generation: link events that found the link down
 * @session_gen: @gen when our session was published
 * @nonce: our session
 * @peer_nonce: the peer's session
 * @peer_magic: the peer's magic scratchpad in that session
 * @version: the protocol version of the session
 * @features: the features of the session, ours and the peer's
 * @acked: we acknowledged @peer_nonce
 * @named: the peer's name arrived, in its one HELLO of the session
 * @reset: kfn_link_reset() was called: nothing more is read or written
 *	until @link_work has started a new session
 * @peer_name: the peer's domain name
 * @beat: our heartbeat
 * @peer_beat: the peer's heartbeat, as last seen
 * @peer_beat_at: when it last changed, in jiffies
 * @ctrl_cons: control messages consumed
 * @ctrl_cons_pub: @ctrl_cons as last told to the peer
 * @ctrl_prod: control messages sent
 * @ctrl_acked: control messages the peer consumed
 * @ctrl_q: control messages waiting for room (&kfn_ctrl_item)
 * @ctrl_pool: the messages, @ctrl_max of them reserved
 * @ctrl_queued: messages taken from @ctrl_pool
 * @ctrl_max: the most messages a well-behaved peer lets pile up
 * @connreqs: requests waiting for @cm_work (&kfn_connreq)
 * @connreq_pool: the requests, %KFN_MAX_CONNREQS of them reserved
 * @nr_connreqs: requests taken from @connreq_pool
 * @db_pending: the peer must be told about what we wrote
 * @dying: the device is going away
 * @data_work: processes the rings
 * @cm_work: delivers connection requests
 * @link_work: the handshake; polls while the link is up
 * @mr_lock: memory region mappings (&kfi_mr fields), and @mrs lookups
 *	with the use of what they find
 * @mrs: memory regions by key index; a region leaves it under @mr_lock
 * @mr_epoch: changes when a session ends, under @mr_lock: keys of
 *	mappings made before give no access (&kfn_mr.epoch)
 * @dma: DMA engine channel for outbound copies, or NULL
 * @out_dma: the outbound window mapped for @dma while the link is up, or
 *	%DMA_MAPPING_ERROR (no engine, a window onto RAM, no mapping)
 * @dma_hung: @dma once missed a deadline: copies go by the CPU for good
 * @dma_batch: the copies in flight on @dma
 * @debugfs: our directory
 * @stats: counters shown in debugfs
 */
struct kfn_link {
	struct kfi_domain dom;
	struct ntb_dev *ntb;
	const char *name;
	struct mutex mutex;		/* link, channels, control, worker */
	struct list_head eps;

	void *in;
	dma_addr_t in_dma;
	void *in_alloc;
	dma_addr_t in_alloc_dma;
	size_t in_alloc_len;
	struct kfn_layout in_l;
	void __iomem *out;
	phys_addr_t out_phys;
	resource_size_t out_max;
	bool out_ram;
	struct kfn_layout out_l;
	struct kfn_chan *chans;
	u32 nr_closing;
	unsigned long reap_at;

	bool up;
	atomic_t gen;
	u32 session_gen;
	u32 nonce;
	u32 peer_nonce;
	u32 peer_magic;
	u8 version;
	u32 features;
	bool acked;
	bool named;
	bool reset;
	char peer_name[KFI_NAME_MAX];
	u32 beat;
	u32 peer_beat;
	unsigned long peer_beat_at;

	u32 ctrl_cons;
	u32 ctrl_cons_pub;
	u32 ctrl_prod;
	u32 ctrl_acked;
	struct list_head ctrl_q;
	mempool_t *ctrl_pool;
	u32 ctrl_queued;
	u32 ctrl_max;
	struct list_head connreqs;
	mempool_t *connreq_pool;
	u32 nr_connreqs;
	bool db_pending;
	bool dying;

	struct work_struct data_work;
	struct work_struct cm_work;
	struct delayed_work link_work;

	spinlock_t mr_lock;		/* region mappings and lookups */
	struct xarray mrs;
	u32 mr_epoch;
	struct dma_chan *dma;
	dma_addr_t out_dma;
	bool dma_hung;
	struct kfn_dma_batch dma_batch;
	struct dentry *debugfs;
	struct {
		u64 proto_errors;
		u64 naks;
		u64 link_ups;
		u64 link_downs;
		u64 dma_copies;
		u64 dma_errors;
		u64 resets;
		u64 reclaimed;
	} stats;
};

struct kfn_event {
	struct kfi_cm_event ev;
	u8 data[KFI_CM_DATA_MAX];
};

enum kfn_ep_state {
	KFN_EP_IDLE,
	KFN_EP_CONNECTING,
	KFN_EP_CONNECTED,
	KFN_EP_ERROR,		/* an operation failed; still bound */
	KFN_EP_DISCONNECTED,
	KFN_EP_DEAD,		/* drained */
};

/**
 * struct kfn_op - a posted operation: a slot of a send or receive queue
 * @cqe: our completion object, which frees the slot
 * @ulp_cqe: the ULP's
 * @kep: the endpoint
 * @busy: the slot is in use
 * @opcode: &enum kfi_wc_opcode
 * @done: finished; completes when the ops before it have
 * @sent: every descriptor is out
 * @flags: the post's flags
 * @niov: buffers
 * @iov: copies of the buffers
 * @len: bytes of the buffers
 * @pos: bytes sent or received so far
 * @rma: the remote buffer
 * @imm: immediate data
 * @inv_key: key to invalidate
 * @first: position of its first descriptor
 * @last: position after its last descriptor
 * @tag: reads: the tag of the request
 * @status: how it ended
 * @wc_flags: receives: %KFI_WC_* flags
 */
struct kfn_op {
	struct kfi_cqe cqe;
	struct kfi_cqe *ulp_cqe;
	struct kfn_ep *kep;
	bool busy;
	u8 opcode;
	bool done;
	bool sent;
	u32 flags;
	u32 niov;
	struct kfi_iov *iov;
	u64 len;
	u64 pos;
	struct kfi_rma_iov rma;
	u32 imm;
	u64 inv_key;
	u32 first;
	u32 last;
	u32 tag;
	int status;
	u32 wc_flags;
};

/**
 * struct kfn_rd_job - a read the peer asked us for
 * @key: the key it named
 * @addr: its address
 * @len: bytes
 * @tag: its tag
 * @pos: bytes sent back so far
 */
struct kfn_rd_job {
	u64 key;
	u64 addr;
	u32 len;
	u32 tag;
	u32 pos;
};

/**
 * struct kfn_ep - an endpoint
 * @ep: the core part; first
 * @link: its link
 * @node: in &kfn_link.eps
 * @lock: the queues and @state against the post operations
 * @state: &enum kfn_ep_state; written under @lock and the link's mutex
 * @sq: send queue slots
 * @nsq: their number
 * @sq_head: oldest slot not completed
 * @sq_tx: next slot to transmit
 * @sq_tail: next slot to post
 * @rq: receive queue slots
 * @nrq: their number
 * @rq_head: oldest receive not completed
 * @rq_tail: next slot to post
 * @iovs: buffer copies of the slots
 * @max_send_sge: buffers per send-side operation
 * @max_recv_sge: buffers per receive
 * @lc: our channel, -1 for none
 * @rc: the peer's channel, -1 for none
 * @rx_base: sequence base of @lc
 * @tx_base: sequence base of @rc
 * @rx_cons: descriptors consumed from @lc
 * @rx_cons_pub: @rx_cons as last told to the peer
 * @tx_prod: descriptors written to @rc
 * @tx_acked: of those, consumed by the peer
 * @stage_head: where the next payload goes in the peer's staging area
 * @stage_used: bytes of it in flight, with what wrapping skipped
 * @stage_cost: bytes of it each descriptor in flight holds
 * @rx_msg: a send is arriving in chunks
 * @rx_write: bytes placed so far of the write arriving in chunks
 * @rx_more: the last descriptor taken was a piece of a transfer that
 *	more pieces follow
 * @rd_next: tag of our next read
 * @rd: reads we serve, in order
 * @rd_head: oldest of @rd
 * @rd_tail: next free of @rd
 * @sent_disconnect: the peer has our DISCONNECT; we write no more
 * @events: connection events to deliver, a ring
 * @ev_head: oldest of @events, freed once its handler returned
 * @ev_tail: next free of @events
 * @cm_work: delivers them
 * @connect_to: gives up connecting
 * @connect_by: when, for the attempt in progress; a run of @connect_to
 *	that waited for the link's mutex across attempts finds a later time
 */
struct kfn_ep {
	struct kfi_ep ep;
	struct kfn_link *link;
	struct list_head node;
	spinlock_t lock;		/* queues and @state vs. posts */
	enum kfn_ep_state state;

	struct kfn_op *sq;
	u32 nsq;
	u32 sq_head;
	u32 sq_tx;
	u32 sq_tail;
	struct kfn_op *rq;
	u32 nrq;
	u32 rq_head;
	u32 rq_tail;
	struct kfi_iov *iovs;
	u32 max_send_sge;
	u32 max_recv_sge;

	int lc;
	int rc;
	u32 rx_base;
	u32 tx_base;
	u32 rx_cons;
	u32 rx_cons_pub;
	u32 tx_prod;
	u32 tx_acked;
	u32 stage_head;
	u32 stage_used;
	u32 stage_cost[KFN_RING];
	bool rx_msg;
	u32 rx_write;
	bool rx_more;
	u32 rd_next;
	struct kfn_rd_job rd[KFN_RING];
	u32 rd_head;
	u32 rd_tail;
	bool sent_disconnect;

	struct kfn_event events[KFN_EP_EVENTS];
	u32 ev_head;
	u32 ev_tail;
	struct work_struct cm_work;
	struct delayed_work connect_to;
	unsigned long connect_by;
};

struct kfn_pep {
	struct kfi_pep pep;
	struct list_head node;		/* kfn_peps */
	bool listening;
};

/**
 * struct kfn_connreq - a connection request from the peer
 * @req: the core part
 * @node: in &kfn_link.connreqs
 * @link: where it arrived
 * @nonce: the link session it arrived in
 * @port: the service asked for
 * @peer_chan: the peer's channel
 * @peer_base: its sequence base
 * @auth_key: the peer endpoint's authorization key
 * @pdata_len: bytes of @pdata
 * @pdata: the peer's private data
 * @rej_len: bytes of @rej
 * @rej: our reject data
 */
struct kfn_connreq {
	struct kfi_connreq req;
	struct list_head node;
	struct kfn_link *link;
	u32 nonce;
	u32 port;
	u32 peer_chan;
	u32 peer_base;
	u32 auth_key;
	u32 pdata_len;
	u8 pdata[KFI_CM_DATA_MAX];
	u32 rej_len;
	u8 rej[KFI_CM_DATA_MAX];
};

struct kfn_ctrl_item {
	struct list_head node;
	struct kfn_ctrl msg;
};

struct kfn_mr {
	struct kfi_mr mr;
	struct kfi_iov iov;		/* the mapping */
	u32 index;
	u32 gen;
	u32 epoch;			/* &kfn_link.mr_epoch when mapped */
};

static inline struct kfn_link *to_kfn_link(struct kfi_domain *d)
{
	return container_of(d, struct kfn_link, dom);
}

static inline struct kfn_ep *to_kfn_ep(struct kfi_ep *ep)
{
	return container_of(ep, struct kfn_ep, ep);
}

static inline struct kfn_mr *to_kfn_mr(struct kfi_mr *mr)
{
	return container_of(mr, struct kfn_mr, mr);
}

static inline struct kfn_pep *to_kfn_pep(struct kfi_pep *pep)
{
	return container_of(pep, struct kfn_pep, pep);
}

/*
 * The session is over, though the link worker has not ended it yet: it
 * was reset (kfn_link_reset(): the peer broke the protocol, or let what
 * we owe it pile up), or a link event found the link down since the
 * session began, and writes of either side may have been lost even if the
 * link is up again. Nothing more is read or written in it.
 */
static inline bool kfn_link_stale(struct kfn_link *link)
{
	return link->reset || atomic_read(&link->gen) != link->session_gen;
}

/* Our channel @c: header, ring and staging area. */
static inline void *kfn_in_chan(struct kfn_link *link, u32 c)
{
	return link->in + KFN_CTRL_AREA + (size_t)c * link->in_l.chan_size;
}

/* The peer's channel @c, through the outbound window. */
static inline void __iomem *kfn_out_chan(struct kfn_link *link, u32 c)
{
	return link->out + KFN_CTRL_AREA + (size_t)c * link->out_l.chan_size;
}

extern struct kfi_fabric kfn_fabric;
extern struct workqueue_struct *kfn_wq;
extern struct kmem_cache *kfn_ctrl_cache;
extern struct kmem_cache *kfn_connreq_cache;
extern unsigned int kfn_poll_us;

/* Why kfn_link_reset() ends a session. */
enum kfn_reset_why {
	KFN_RESET_PROTO,	/* the peer broke the link protocol */
	KFN_RESET_BACKLOG,	/* it lets what we owe it pile up */
};

/* main.c */
int kfn_layout_init(struct kfn_layout *l, u32 size, u32 nch);
int kfn_link_init(struct kfn_link *link, u32 nch);
void kfn_fill_attr(struct kfn_link *link);
void kfn_kick(struct kfn_link *link);
void kfn_link_reset(struct kfn_link *link, enum kfn_reset_why why);
void kfn_session_end(struct kfn_link *link);

/* cm.c */
void kfn_event(struct kfn_ep *kep, enum kfi_cm_event_type type, int status,
	       const void *data, u32 len);
void kfn_cm_work(struct work_struct *work);
void kfn_ep_cm_work(struct work_struct *work);
void kfn_ctrl_queue(struct kfn_link *link, struct kfn_ctrl_item *item);
struct kfn_ctrl_item *kfn_ctrl_new(struct kfn_link *link, u8 type,
				   u32 src_chan, u32 dst_chan);
void kfn_ctrl_rx(struct kfn_link *link);
void kfn_ctrl_tx(struct kfn_link *link);
void kfn_send_disconnect(struct kfn_ep *kep);
int kfn_chan_alloc(struct kfn_link *link, struct kfn_ep *kep);
void kfn_chan_free(struct kfn_link *link, int c);
void kfn_chan_close(struct kfn_link *link, int c);
void kfn_chan_reap(struct kfn_link *link);
void kfn_ep_connected(struct kfn_ep *kep, u32 rc, u32 tx_base);
void kfn_connect_timeout(struct work_struct *work);
void kfn_cm_flush(struct kfn_link *link);
int kfn_connect(struct kfi_ep *ep, const struct kfi_addr *dest,
		const void *private_data, u32 len);
int kfn_accept(struct kfi_ep *ep, struct kfi_connreq *req,
	       const void *private_data, u32 len);
int kfn_reject(struct kfi_connreq *req, const void *private_data, u32 len);
int kfn_disconnect(struct kfi_ep *ep);
int kfn_pep_listen(struct kfi_pep *pep, const struct kfi_addr *addr,
		   int backlog);
void kfn_pep_destroy(struct kfi_pep *pep);
int kfn_resolve(struct kfi_domain *domain, const struct kfi_hints *hints,
		struct kfi_info *info);

/* data.c */
void kfn_set_state(struct kfn_ep *kep, enum kfn_ep_state state);
bool kfn_ep_process(struct kfn_ep *kep);
bool kfn_link_process(struct kfn_link *link);
void kfn_ep_fail(struct kfn_ep *kep, int status);
void kfn_ep_flush(struct kfn_ep *kep);
void kfn_data_work(struct work_struct *work);
void kfn_dma_batch_init(struct kfn_dma_batch *b);
int kfn_ep_create(struct kfi_ep *ep, const struct kfi_ep_attr *attr);
void kfn_ep_drain(struct kfi_ep *ep);
void kfn_ep_destroy(struct kfi_ep *ep);
int kfn_post_send(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags);
int kfn_post_recv(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags);
int kfn_post_read(struct kfi_ep *ep, const struct kfi_msg *msg,
		  const struct kfi_rma_iov *rma, u32 flags);
int kfn_post_write(struct kfi_ep *ep, const struct kfi_msg *msg,
		   const struct kfi_rma_iov *rma, u32 flags);
int kfn_mr_create(struct kfi_mr *mr);
void kfn_mr_destroy(struct kfi_mr *mr);
int kfn_mr_map(struct kfi_ep *ep, struct kfi_mr *mr, const struct kfi_iov *iov,
	       u32 access, struct kfi_cqe *cqe, u32 flags);
int kfn_mr_invalidate(struct kfi_ep *ep, struct kfi_mr *mr,
		      struct kfi_cqe *cqe, u32 flags);

/* fuzz.c */
#ifdef CONFIG_KFABRIC_NTB_FUZZ
void kfn_fuzz_init(struct dentry *dir);
#else
static inline void kfn_fuzz_init(struct dentry *dir)
{
}
#endif

#endif /* _KFI_NTB_H */
