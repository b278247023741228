/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kfabric: a transport-agnostic kernel fabric interface.
 *
 * This is the interface for upper-layer protocols (ULPs). Providers, which
 * map it onto a wire, use <rdma/kfi/provider.h>. Documentation/kfabric/
 * describes the object model and the rules summarised here.
 *
 * Conventions used throughout:
 *
 * - Functions return 0 or a negative errno; allocators return a pointer or
 *   an ERR_PTR(). Invalid arguments give -EINVAL, an operation the domain
 *   does not support gives -EOPNOTSUPP, a removed domain gives -ENODEV.
 * - Control functions (allocation, connection management, freeing) may
 *   sleep. Data functions (kfi_send() and friends) never sleep and may be
 *   called from any context, including completion callbacks.
 * - Buffers are CPU memory described with the kernel's own vector types;
 *   the provider DMA-maps them (see &struct kfi_iov). ULPs never call the
 *   DMA API for kfabric.
 */
#ifndef _RDMA_KFI_KFI_H
#define _RDMA_KFI_KFI_H

#include <linux/bits.h>
#include <linux/bvec.h>
#include <linux/dma-direction.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/scatterlist.h>
#include <linux/socket.h>
#include <linux/types.h>
#include <linux/uio.h>
#include <linux/wait.h>

struct kfi_fabric;
struct kfi_domain;
struct kfi_cq;
struct kfi_ep;
struct kfi_pep;
struct kfi_mr;
struct kfi_wc;
struct kfi_connreq;
struct kfi_domain_stats;
struct dentry;
struct net;

/* Longest fabric, domain or node name, including the terminating NUL. */
#define KFI_NAME_MAX		64

/* Longest connection private data any provider may offer. */
#define KFI_CM_DATA_MAX		196

/**
 * DOC: capabilities
 *
 * A capability is a promise: a domain advertises a bit only when its
 * provider implements everything the bit stands for, and kfi_getinfo()
 * only returns domains that have every bit a ULP asks for.
 *
 * %KFI_CAP_MSG: kfi_send() and kfi_recv().
 *
 * %KFI_CAP_RMA: kfi_read() and kfi_write() as initiator, memory regions
 * with remote access (kfi_mr_map()) as target, and the read/write helper.
 *
 * %KFI_CAP_RMA_IMM: kfi_write() with %KFI_IMM; the peer consumes a receive
 * and sees the immediate data in its completion. Also kfi_send() with
 * %KFI_IMM.
 *
 * %KFI_CAP_REMOTE_INV: kfi_send() with %KFI_SEND_INV, invalidating a memory
 * region of the receiver, and kfi_mr_invalidate().
 *
 * %KFI_CAP_AUTH_KEY: endpoints carry an authorization key that the provider
 * checks on both sides of a connection (&struct kfi_ep_attr.auth_key).
 *
 * %KFI_CAP_TCLASS: endpoints honour a traffic class
 * (&struct kfi_ep_attr.tclass).
 *
 * %KFI_CAP_DELIVERY: kfi_send() and kfi_write() complete only once the
 * peer has accepted their data or refused it, so a write that the peer
 * refuses completes with its error (-EACCES). Accepted means that the
 * peer checked the operation against its receive queue or memory region
 * and took responsibility for the data: on InfiniBand and RoCE it is the
 * responder's acknowledgment, which the RC transport sends once the data
 * is committed to the responder's memory subsystem; on NTB it is the peer
 * provider's acknowledgment, sent after it copied the data. It is not a
 * promise that the peer's CPU sees the data yet: that holds once the
 * peer's own completion for it (a receive, or the receive consumed by a
 * write with %KFI_IMM) is delivered, or a later message of this endpoint
 * has been received, as for kverbs. Without the capability, as on iWARP,
 * they complete once their buffers may be reused, which can be before the
 * data arrives; a refusal then ends the connection, and the operations
 * after the refused one fail. Either way a successful completion means
 * the local buffers may be reused, and the ordering rules of the posting
 * flags hold.
 */
#define KFI_CAP_MSG		BIT_ULL(0)
#define KFI_CAP_RMA		BIT_ULL(1)
#define KFI_CAP_RMA_IMM		BIT_ULL(2)
#define KFI_CAP_REMOTE_INV	BIT_ULL(3)
#define KFI_CAP_AUTH_KEY	BIT_ULL(4)
#define KFI_CAP_TCLASS		BIT_ULL(5)
#define KFI_CAP_DELIVERY	BIT_ULL(6)
#define KFI_CAP_ALL		(KFI_CAP_MSG | KFI_CAP_RMA | KFI_CAP_RMA_IMM | \
				 KFI_CAP_REMOTE_INV | KFI_CAP_AUTH_KEY | \
				 KFI_CAP_TCLASS | KFI_CAP_DELIVERY)

/**
 * enum kfi_ep_type - endpoint types
 * @KFI_EP_UNSPEC: any type (hints only)
 * @KFI_EP_MSG: connected, reliable, ordered message endpoint. Every
 *	operation goes to the one peer the endpoint is connected to.
 * @KFI_EP_RDM: reliable datagram endpoint addressing many peers through
 *	an address vector. Reserved: no provider offers it yet, so a hint for
 *	it fails with -ENODATA. Its data operations will take a destination,
 *	as new functions, so code written for %KFI_EP_MSG is not affected.
 */
enum kfi_ep_type {
	KFI_EP_UNSPEC,
	KFI_EP_MSG,
	KFI_EP_RDM,
};

/**
 * enum kfi_protocol - wire protocols of endpoints
 * @KFI_PROTO_UNSPEC: any protocol (hints only)
 * @KFI_PROTO_RDMA_RC: InfiniBand/RoCE/iWARP reliable connections set up by
 *	rdma_cm; interoperates with kverbs peers.
 * @KFI_PROTO_NTB: kfabric's ring protocol over a PCIe non-transparent
 *	bridge.
 * @KFI_PROTO_TEST: in-kernel test providers.
 */
enum kfi_protocol {
	KFI_PROTO_UNSPEC,
	KFI_PROTO_RDMA_RC,
	KFI_PROTO_NTB,
	KFI_PROTO_TEST,
};

/**
 * enum kfi_addr_format - address formats
 * @KFI_ADDR_UNSPEC: no address / any format (hints only)
 * @KFI_ADDR_INET: IPv4 or IPv6 socket address; the port selects a service
 * @KFI_ADDR_NAME: a node name chosen by the provider (for NTB, the bridge's
 *	PCI device name) and a port that selects a service on that node
 */
enum kfi_addr_format {
	KFI_ADDR_UNSPEC,
	KFI_ADDR_INET,
	KFI_ADDR_NAME,
};

/**
 * struct kfi_addr - a fabric address
 * @format: which member of the union is valid
 * @sa: generic view of @sin/@sin6 (%KFI_ADDR_INET)
 * @sin: IPv4 address and port (%KFI_ADDR_INET, @sa.sa_family == AF_INET)
 * @sin6: IPv6 address and port (%KFI_ADDR_INET, AF_INET6)
 * @name: node name and port (%KFI_ADDR_NAME)
 * @name.node: NUL-terminated node name; empty means any node
 * @name.port: service on the node
 */
struct kfi_addr {
	enum kfi_addr_format format;
	union {
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
		struct {
			char node[KFI_NAME_MAX];
			u32 port;
		} name;
	};
};

int kfi_addr_parse(struct kfi_addr *addr, const char *node, const char *service);
bool kfi_addr_equal(const struct kfi_addr *a, const struct kfi_addr *b);
int kfi_addr_print(char *buf, size_t size, const struct kfi_addr *addr);

/**
 * struct kfi_domain_attr - what a domain offers
 * @name: domain name, unique within its fabric (e.g. the RDMA device name)
 * @caps: %KFI_CAP_* bits the domain implements
 * @ep_types: bit mask of supported &enum kfi_ep_type values
 * @protocol: wire protocol of its endpoints
 * @addr_format: address format of its endpoints
 * @max_ep: endpoints per domain
 * @max_cq: completion queues per domain
 * @max_cqe: entries per completion queue
 * @max_mr: memory regions per domain
 * @max_send_ops: outstanding send-side operations per endpoint
 * @max_recv_ops: outstanding receives per endpoint
 * @max_send_sge: local segments per send
 * @max_recv_sge: local segments per receive
 * @max_rma_sge: local segments per RMA read or write
 * @max_msg_size: bytes per message
 * @max_rma_size: bytes per RMA operation
 * @max_mr_size: bytes one mapping of a memory region may cover; whether a
 *	buffer of that size fits also depends on its layout (&struct kfi_mr)
 * @max_mr_segs: segments one mapping of a memory region may have, the
 *	largest @max_segs kfi_mr_alloc() takes; a segment is a physically
 *	contiguous piece of the buffer (&struct kfi_mr)
 * @max_mr_block: the largest aligned block that one segment of a memory
 *	region covers, a power of two from PAGE_SIZE to @max_mr_size: for a
 *	provider that maps memory in pages, its largest page (&struct kfi_mr)
 * @mr_key_size: significant bytes of a memory region key
 * @cq_data_size: bytes of immediate data (%KFI_IMM), 0 if none
 * @max_cm_data: bytes of private data on connect and accept
 * @max_reject_data: bytes of private data on reject
 * @num_comp_vectors: completion vectors (&struct kfi_cq_attr.comp_vector)
 * @auth_key_size: bytes of authorization key, 0 without %KFI_CAP_AUTH_KEY
 * @tclass_mask: traffic classes supported, bit n for class n
 * @mr_key_cycle: mappings of one memory region before a key may repeat
 *	(see &struct kfi_mr); 0 when the provider has no regions
 */
struct kfi_domain_attr {
	char name[KFI_NAME_MAX];
	u64 caps;
	u32 ep_types;
	enum kfi_protocol protocol;
	enum kfi_addr_format addr_format;
	u32 max_ep;
	u32 max_cq;
	u32 max_cqe;
	u32 max_mr;
	u32 max_send_ops;
	u32 max_recv_ops;
	u32 max_send_sge;
	u32 max_recv_sge;
	u32 max_rma_sge;
	u64 max_msg_size;
	u64 max_rma_size;
	u64 max_mr_size;
	u32 max_mr_segs;
	u64 max_mr_block;
	u32 mr_key_size;
	u32 cq_data_size;
	u32 max_cm_data;
	u32 max_reject_data;
	u32 num_comp_vectors;
	u32 auth_key_size;
	u32 tclass_mask;
	u32 mr_key_cycle;
};

/**
 * struct kfi_hints - what a ULP asks kfi_getinfo() for
 * @caps: %KFI_CAP_* bits every returned domain must have
 * @ep_type: endpoint type, or %KFI_EP_UNSPEC
 * @protocol: wire protocol, or %KFI_PROTO_UNSPEC
 * @addr_format: address format, or %KFI_ADDR_UNSPEC (implied by the
 *	addresses when they are given)
 * @net: network namespace the addresses belong to, or NULL for &init_net;
 *	the caller holds a reference for the duration of the call
 * @src_addr: local address to listen on or connect from, or NULL
 * @dest_addr: peer to reach, or NULL; only domains that can reach it match
 * @fabric_name: fabric (provider) name, or NULL for any
 * @domain_name: domain name, or NULL for any
 * @min_msg_size: smallest acceptable &kfi_domain_attr.max_msg_size
 * @min_rma_size: smallest acceptable &kfi_domain_attr.max_rma_size
 * @min_cq_data_size: smallest acceptable &kfi_domain_attr.cq_data_size
 * @min_cm_data: smallest acceptable &kfi_domain_attr.max_cm_data
 *
 * A zeroed structure matches every domain. Every field that is set is a
 * requirement: a hint no domain satisfies makes kfi_getinfo() fail, it is
 * never silently dropped.
 */
struct kfi_hints {
	u64 caps;
	enum kfi_ep_type ep_type;
	enum kfi_protocol protocol;
	enum kfi_addr_format addr_format;
	struct net *net;
	const struct kfi_addr *src_addr;
	const struct kfi_addr *dest_addr;
	const char *fabric_name;
	const char *domain_name;
	u64 min_msg_size;
	u64 min_rma_size;
	u32 min_cq_data_size;
	u32 min_cm_data;
};

/**
 * struct kfi_info - one domain matching a kfi_getinfo() request
 * @list: entry in the list kfi_getinfo() fills
 * @fabric: the domain's fabric
 * @domain: the domain, referenced until kfi_freeinfo()
 * @attr: a copy of the domain's attributes
 * @ep_type: endpoint type to use on it
 * @src_addr: local address, resolved by the provider when the hints gave
 *	a destination, else the hints' source address
 * @dest_addr: the hints' destination address, if any
 */
struct kfi_info {
	struct list_head list;
	struct kfi_fabric *fabric;
	struct kfi_domain *domain;
	struct kfi_domain_attr attr;
	enum kfi_ep_type ep_type;
	struct kfi_addr src_addr;
	struct kfi_addr dest_addr;
};

int kfi_getinfo(const struct kfi_hints *hints, struct list_head *infos);
void kfi_freeinfo(struct list_head *infos);

/**
 * struct kfi_client - a ULP that wants to know about domains
 * @name: name for debugfs and messages
 * @add: called for every registered domain, and for every domain
 *	registered later. May sleep. May return an error, after which the
 *	client gets no further callbacks for that domain.
 * @remove: called before a domain goes away, with the data the client
 *	set with kfi_set_client_data(). The client frees everything it has on
 *	the domain; whatever it leaves is flushed and destroyed by the core
 *	after @remove returns (see kfi_domain_unregister()). May sleep.
 *
 * The kfabric counterpart of &struct ib_client.
 */
struct kfi_client {
	const char *name;
	int (*add)(struct kfi_domain *domain);
	void (*remove)(struct kfi_domain *domain, void *client_data);

	/* private: core */
	struct list_head list;
	u32 id;
};

int kfi_register_client(struct kfi_client *client);
void kfi_unregister_client(struct kfi_client *client);
void *kfi_get_client_data(struct kfi_domain *domain, struct kfi_client *client);
void kfi_set_client_data(struct kfi_domain *domain, struct kfi_client *client,
			 void *data);

void kfi_domain_get(struct kfi_domain *domain);
void kfi_domain_put(struct kfi_domain *domain);
struct device *kfi_domain_device(struct kfi_domain *domain);
const char *kfi_domain_name(const struct kfi_domain *domain);
const struct kfi_domain_attr *kfi_domain_attr(const struct kfi_domain *domain);

/**
 * enum kfi_poll_ctx - where completion callbacks run
 * @KFI_POLL_DIRECT: only when the ULP calls kfi_cq_poll(), e.g. from a
 *	blk-mq ->poll() handler
 * @KFI_POLL_SOFTIRQ: in softirq context, through irq_poll
 * @KFI_POLL_WORKQUEUE: in process context on a bound workqueue
 * @KFI_POLL_UNBOUND_WORKQUEUE: in process context on an unbound workqueue
 */
enum kfi_poll_ctx {
	KFI_POLL_DIRECT,
	KFI_POLL_SOFTIRQ,
	KFI_POLL_WORKQUEUE,
	KFI_POLL_UNBOUND_WORKQUEUE,
};

/**
 * struct kfi_cq_attr - completion queue parameters
 * @nr_cqe: number of entries; the endpoints using the queue reserve their
 *	queue depths from it, so it never overflows
 * @comp_vector: completion vector, below
 *	&kfi_domain_attr.num_comp_vectors; -1 lets the provider choose
 * @poll_ctx: where completions are processed
 */
struct kfi_cq_attr {
	u32 nr_cqe;
	int comp_vector;
	enum kfi_poll_ctx poll_ctx;
};

struct kfi_cq *kfi_cq_alloc(struct kfi_domain *domain,
			    const struct kfi_cq_attr *attr);
void kfi_cq_free(struct kfi_cq *cq);
int kfi_cq_poll(struct kfi_cq *cq, int budget);

/**
 * enum kfi_wc_opcode - what a completion completes
 * @KFI_WC_SEND: kfi_send()
 * @KFI_WC_RECV: kfi_recv(), consumed by a peer's send or write with
 *	immediate data
 * @KFI_WC_READ: kfi_read()
 * @KFI_WC_WRITE: kfi_write()
 * @KFI_WC_MR_MAP: kfi_mr_map()
 * @KFI_WC_MR_INV: kfi_mr_invalidate()
 */
enum kfi_wc_opcode {
	KFI_WC_SEND,
	KFI_WC_RECV,
	KFI_WC_READ,
	KFI_WC_WRITE,
	KFI_WC_MR_MAP,
	KFI_WC_MR_INV,
};

/* &struct kfi_wc flags */
#define KFI_WC_IMM		BIT(0)	/* @imm_data is valid */
#define KFI_WC_INV		BIT(1)	/* the peer invalidated @inv_key */
#define KFI_WC_RDMA_WRITE	BIT(2)	/* receive consumed by a write */

/**
 * struct kfi_cqe - the completion object of one operation
 * @done: called once when the operation completes, successfully or not,
 *	in the completion queue's context (&enum kfi_poll_ctx)
 *
 * Embed it in the per-operation structure and recover that with
 * container_of(wc->cqe, ...) in @done, as with &struct ib_cqe. The core
 * does not touch it between posting and completion.
 */
struct kfi_cqe {
	void (*done)(struct kfi_cq *cq, struct kfi_wc *wc);
};

/**
 * struct kfi_wc - a completion
 * @cqe: completion object passed with the operation
 * @ep: endpoint the operation was posted on
 * @status: 0 or a negative errno:
 *	-ECANCELED: flushed; the endpoint was disconnected, drained, freed or
 *	its domain removed before the operation ran.
 *	-EACCES: the peer refused a remote access: unknown or invalidated key,
 *	out of the region's bounds, or access rights it does not grant.
 *	-EFAULT: a local buffer could not be accessed or mapped.
 *	-EMSGSIZE: the message did not fit the receive buffer.
 *	-ETIMEDOUT: the peer stopped responding.
 *	-EREMOTEIO: the peer failed the operation for another reason.
 *	-EIO: any other error.
 * @opcode: what completed
 * @flags: %KFI_WC_* flags
 * @byte_len: bytes received (%KFI_WC_RECV); for a receive consumed by a
 *	write with immediate data (%KFI_WC_RDMA_WRITE), the bytes that write
 *	placed in the target region, as InfiniBand reports them
 * @imm_data: immediate data (with %KFI_WC_IMM)
 * @inv_key: key the peer invalidated (with %KFI_WC_INV)
 */
struct kfi_wc {
	struct kfi_cqe *cqe;
	struct kfi_ep *ep;
	int status;
	enum kfi_wc_opcode opcode;
	u32 flags;
	u32 byte_len;
	u32 imm_data;
	u64 inv_key;
};

/**
 * enum kfi_cm_event_type - connection events
 * @KFI_CM_CONNREQ: a passive endpoint received a connection request
 *	(&kfi_cm_event.connreq); accept or reject it before returning
 * @KFI_CM_CONNECTED: the endpoint is connected; data may flow
 * @KFI_CM_REJECTED: the peer rejected the connection (&kfi_cm_event.status
 *	is -ECONNREFUSED; private data may be present)
 * @KFI_CM_UNREACHABLE: the peer could not be reached (address or route
 *	resolution failed, or the connection attempt timed out)
 * @KFI_CM_DISCONNECTED: the connection is gone; outstanding operations
 *	complete with -ECANCELED; the endpoint cannot be reconnected.
 *	&kfi_cm_event.status is 0 when a side disconnected, or the error
 *	that ended it (-EIO: the provider's queue failed)
 * @KFI_CM_ADDR_CHANGE: the local address moved to another domain; ULPs
 *	should disconnect and connect again
 * @KFI_CM_DOMAIN_REMOVAL: the endpoint's domain is going away; to a
 *	passive endpoint: it lost the device it listened on and listens no
 *	more
 */
enum kfi_cm_event_type {
	KFI_CM_CONNREQ,
	KFI_CM_CONNECTED,
	KFI_CM_REJECTED,
	KFI_CM_UNREACHABLE,
	KFI_CM_DISCONNECTED,
	KFI_CM_ADDR_CHANGE,
	KFI_CM_DOMAIN_REMOVAL,
};

/**
 * struct kfi_cm_event - a connection event
 * @type: what happened
 * @status: 0 or a negative errno explaining @type
 * @private_data: private data from the peer, valid during the handler
 * @private_data_len: bytes at @private_data
 * @connreq: the request (%KFI_CM_CONNREQ only)
 */
struct kfi_cm_event {
	enum kfi_cm_event_type type;
	int status;
	const void *private_data;
	u32 private_data_len;
	struct kfi_connreq *connreq;
};

/**
 * typedef kfi_cm_handler_t - connection event handler
 * @context: the context given with the endpoint
 * @event: the event
 *
 * Runs in process context and may sleep. Events of one endpoint are
 * serialised. A handler must not free its own endpoint.
 */
typedef void (*kfi_cm_handler_t)(void *context, const struct kfi_cm_event *event);

/**
 * struct kfi_connreq - an incoming connection request
 * @domain: domain the request arrived on; the accepting endpoint must be
 *	allocated there
 * @src_addr: local address the request was sent to
 * @dest_addr: address of the requesting peer
 *
 * Valid only during the %KFI_CM_CONNREQ handler, which must call
 * kfi_accept() or kfi_reject() on it; a request left alone is rejected.
 */
struct kfi_connreq {
	struct kfi_domain *domain;
	struct kfi_addr src_addr;
	struct kfi_addr dest_addr;

	/* private: core */
	bool answered;
	bool accepted;
};

/**
 * struct kfi_ep_attr - endpoint parameters
 * @type: endpoint type (%KFI_EP_MSG)
 * @send_cq: completion queue for send-side operations
 * @recv_cq: completion queue for receives (may equal @send_cq)
 * @max_send_ops: outstanding send-side operations (sends, reads, writes,
 *	memory region mappings and invalidations, read/write helper
 *	operations beyond @max_rw_ctxs)
 * @max_recv_ops: outstanding receives
 * @max_send_sge: local segments per send-side operation
 * @max_recv_sge: local segments per receive
 * @max_rw_ctxs: read/write helper contexts in flight at once; the endpoint
 *	gets the queue room they need on top of @max_send_ops, as rdma_rw
 *	does for max_rdma_ctxs
 * @max_rw_size: bytes one read/write helper context may carry
 * @max_rw_segs: segments of one read/write helper context's local buffer
 * @tclass: traffic class (with %KFI_CAP_TCLASS), 0 to 31: a Differentiated
 *	Services code point where the wire has one (IP, RoCE), never the ECN
 *	bits; 0 is the default class
 * @auth_key: authorization key (with %KFI_CAP_AUTH_KEY); a connection
 *	only forms between endpoints with the same key
 * @net: network namespace kfi_connect() resolves and connects in, or NULL
 *	for &init_net; the endpoint holds a reference until it is freed
 * @src_addr: local address kfi_connect() connects from, or NULL for the
 *	one the route to the peer gives; in the domain's address format,
 *	normally the &kfi_info.src_addr kfi_getinfo() resolved for the hints'
 *	source (a ULP's host address). Copied into &kfi_ep.src_addr.
 * @handler: connection event handler
 * @context: passed to @handler
 *
 * Addresses and namespaces only matter to an endpoint that connects; one
 * made for kfi_accept() takes its connection from the request.
 */
struct kfi_ep_attr {
	enum kfi_ep_type type;
	struct kfi_cq *send_cq;
	struct kfi_cq *recv_cq;
	u32 max_send_ops;
	u32 max_recv_ops;
	u32 max_send_sge;
	u32 max_recv_sge;
	u32 max_rw_ctxs;
	u64 max_rw_size;
	u32 max_rw_segs;
	u32 tclass;
	u32 auth_key;
	struct net *net;
	const struct kfi_addr *src_addr;
	kfi_cm_handler_t handler;
	void *context;
};

struct kfi_ep *kfi_ep_alloc(struct kfi_domain *domain,
			    const struct kfi_ep_attr *attr);
void kfi_ep_free(struct kfi_ep *ep);
int kfi_connect(struct kfi_ep *ep, const struct kfi_addr *dest,
		const void *private_data, u32 len);
int kfi_accept(struct kfi_ep *ep, struct kfi_connreq *req,
	       const void *private_data, u32 len);
int kfi_reject(struct kfi_connreq *req, const void *private_data, u32 len);
int kfi_disconnect(struct kfi_ep *ep);
void kfi_ep_drain(struct kfi_ep *ep);
struct kfi_domain *kfi_ep_domain(const struct kfi_ep *ep);
const struct kfi_addr *kfi_ep_src_addr(const struct kfi_ep *ep);

struct kfi_pep *kfi_pep_alloc(struct kfi_fabric *fabric, struct net *net,
			      kfi_cm_handler_t handler, void *context);
int kfi_listen(struct kfi_pep *pep, const struct kfi_addr *addr, int backlog);
void kfi_pep_free(struct kfi_pep *pep);

/**
 * enum kfi_iov_type - kinds of local buffer
 * @KFI_IOV_KVEC: an array of &struct kvec (kernel virtual addresses in
 *	the linear map or vmalloc space)
 * @KFI_IOV_BVEC: an array of &struct bio_vec
 * @KFI_IOV_SG: a scatterlist (chained lists allowed), not DMA-mapped
 * @KFI_IOV_MR: a range of a memory region already mapped with
 *	kfi_mr_map(); used for buffers that take part in every I/O, such as
 *	command and response rings, so the data path maps nothing
 */
enum kfi_iov_type {
	KFI_IOV_KVEC,
	KFI_IOV_BVEC,
	KFI_IOV_SG,
	KFI_IOV_MR,
};

/**
 * struct kfi_iov - a local buffer
 * @type: which member of the union is valid
 * @nr: number of entries (%KFI_IOV_KVEC, %KFI_IOV_BVEC, %KFI_IOV_SG)
 * @kvec: the kvec array
 * @bvec: the bio_vec array
 * @sg: the first scatterlist entry
 * @mr: the memory region (%KFI_IOV_MR)
 * @offset: bytes to skip: into the concatenated entries, or into @mr
 * @len: bytes to use after @offset
 *
 * The one rule on DMA mapping: kfabric maps. Buffers are CPU memory, and
 * the provider maps them to its device for as long as an operation or a
 * memory region needs them. The entry arrays and the memory they describe
 * must stay valid until the operation completes; the &struct kfi_iov
 * itself is only read during the call that takes it.
 */
struct kfi_iov {
	enum kfi_iov_type type;
	u32 nr;
	union {
		const struct kvec *kvec;
		const struct bio_vec *bvec;
		struct scatterlist *sg;
		struct kfi_mr *mr;
	};
	u64 offset;
	u64 len;
};

void kfi_iov_kvec(struct kfi_iov *iov, const struct kvec *kvec, u32 nr);
void kfi_iov_bvec(struct kfi_iov *iov, const struct bio_vec *bvec, u32 nr);
void kfi_iov_sg(struct kfi_iov *iov, struct scatterlist *sg, u32 nr);
void kfi_iov_mr(struct kfi_iov *iov, struct kfi_mr *mr, u64 offset, u64 len);

/**
 * struct kfi_rma_iov - a remote buffer
 * @addr: address in the peer's memory region (&kfi_mr.addr + offset)
 * @len: bytes
 * @key: the region's key (&kfi_mr.key)
 */
struct kfi_rma_iov {
	u64 addr;
	u64 len;
	u64 key;
};

/**
 * struct kfi_msg - the local side of a data operation
 * @iov: local buffers; gathered in order for sends and writes, scattered
 *	in order for receives and reads
 * @niov: number of buffers in @iov (may be 0 for a zero-byte operation)
 * @cqe: completion object; may be NULL only with %KFI_UNSIGNALED
 * @imm_data: immediate data (with %KFI_IMM)
 * @inv_key: key of the peer's memory region to invalidate (with
 *	%KFI_SEND_INV)
 */
struct kfi_msg {
	const struct kfi_iov *iov;
	u32 niov;
	struct kfi_cqe *cqe;
	u32 imm_data;
	u64 inv_key;
};

/**
 * DOC: operation flags
 *
 * %KFI_MORE: more operations follow at once on this endpoint; the provider
 * may defer ringing the doorbell until an operation without it.
 *
 * %KFI_UNSIGNALED: no completion when the operation succeeds. If it fails,
 * the endpoint enters an error state and the operations after it complete
 * with -ECANCELED, so a chain must end with a signaled operation.
 *
 * %KFI_FENCE: start only after every earlier read on the endpoint has
 * completed.
 *
 * %KFI_IMM: carry &kfi_msg.imm_data (sends and writes; %KFI_CAP_RMA_IMM).
 *
 * %KFI_SEND_INV: invalidate the peer's region &kfi_msg.inv_key when the send
 * arrives (%KFI_CAP_REMOTE_INV).
 *
 * Operations on one endpoint execute in the order they are posted, a send
 * is delivered after the data of earlier writes is placed, and completions
 * of send-side operations are delivered in posting order.
 */
#define KFI_MORE		BIT(0)
#define KFI_UNSIGNALED		BIT(1)
#define KFI_FENCE		BIT(2)
#define KFI_IMM			BIT(3)
#define KFI_SEND_INV		BIT(4)

int kfi_send(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags);
int kfi_recv(struct kfi_ep *ep, const struct kfi_msg *msg, u32 flags);
int kfi_write(struct kfi_ep *ep, const struct kfi_msg *msg,
	      const struct kfi_rma_iov *rma, u32 flags);
int kfi_read(struct kfi_ep *ep, const struct kfi_msg *msg,
	     const struct kfi_rma_iov *rma, u32 flags);

/* Memory region access rights */
#define KFI_ACCESS_REMOTE_READ	BIT(0)
#define KFI_ACCESS_REMOTE_WRITE	BIT(1)

/**
 * struct kfi_mr - a memory region
 * @domain: domain the region belongs to; its key means nothing elsewhere
 * @max_segs: most segments one mapping may have
 * @key: key peers name the region by, valid while mapped
 * @addr: address peers use for the first byte of the mapping
 * @length: bytes mapped
 * @access: %KFI_ACCESS_* rights of the current mapping
 *
 * A region is allocated once and mapped for each I/O: kfi_mr_map() gives
 * it a fresh key, and kfi_mr_invalidate() or a peer's %KFI_SEND_INV ends
 * remote access. No key covers memory outside its mapping, and a key that
 * was invalidated gives no access. Keys are finite, though: a region's key
 * differs from those of its last &kfi_domain_attr.mr_key_cycle mappings
 * (256 on RDMA devices, whose fast registration varies the 8 low bits of
 * the key; more on software providers), and may repeat after that. So a
 * peer that kept a key of an earlier mapping can reach a later one only
 * after that many mappings of the region, as with kverbs; ULPs that must
 * not trust their peers that far keep their regions few mappings apart
 * or allocate fresh ones.
 *
 * The segments of a mapping are the physically contiguous pieces of its
 * buffer, as kfi_iov_nsegs(iov, 0) counts them: one per entry, and one
 * per page of vmalloc memory. A provider may merge a piece with the one
 * before it when they are contiguous in physical memory, so a large folio
 * or a high-order block given as several entries may take one segment;
 * a piece longer than its device maps in one DMA segment
 * (dma_get_max_seg_size()) counts as several.
 *
 * A provider that maps memory in pages of one size, as the verbs provider
 * does with fast registration (FRWR), uses the largest page size its
 * device supports that every boundary between two segments that are not
 * contiguous is aligned to, and the region holds @max_segs pages. Its
 * largest page is &kfi_domain_attr.max_mr_block. So a buffer of at most
 * @max_segs segments always fits when its segments are blocks of one
 * power-of-two size from PAGE_SIZE to max_mr_block, each aligned to that
 * size (blocks from alloc_pages() of one order, folios of one order), or
 * when every boundary between segments is page-aligned and the buffer
 * spans at most @max_segs pages. A larger block takes a segment for each
 * max_mr_block bytes of it. Only the first segment may start, and only
 * the last may end, inside a block or page. Other layouts may not fit:
 * kfi_mr_map() fails with -EINVAL when a boundary is not page-aligned and
 * with -E2BIG when the buffer needs more than @max_segs pages.
 */
struct kfi_mr {
	struct kfi_domain *domain;
	u32 max_segs;
	u64 key;
	u64 addr;
	u64 length;
	u32 access;

	/* private: core */
	struct list_head entry;
	u8 state;
};

struct kfi_mr *kfi_mr_alloc(struct kfi_domain *domain, u32 max_segs);
void kfi_mr_free(struct kfi_mr *mr);
int kfi_mr_map(struct kfi_ep *ep, struct kfi_mr *mr, const struct kfi_iov *iov,
	       u32 access, struct kfi_cqe *cqe, u32 flags);
int kfi_mr_invalidate(struct kfi_ep *ep, struct kfi_mr *mr,
		      struct kfi_cqe *cqe, u32 flags);

#endif /* _RDMA_KFI_KFI_H */
