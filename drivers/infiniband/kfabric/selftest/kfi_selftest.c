// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric self-test and benchmark.
 *
 * Checks what upper-layer protocols rely on, through the kfabric ULP API
 * only (<rdma/kfi/kfi.h> and <rdma/kfi/rw.h>), so that the same module
 * runs unchanged over every provider. One instance runs a responder;
 * another, on the same host or on another one, connects to it and runs
 * the tests or the benchmark. Commands are written to the debugfs file
 * kfi_selftest/run, one per write(), and the write returns once the
 * command has run: with its length when every test passed, -EIO when one
 * failed and -EINVAL for a malformed command. kfi_selftest/results holds
 * the KTAP output of the last command, which also goes to the kernel log.
 * A command runs in the network namespace of the task that writes it, and
 * a client given src= connects from that address (the connect test checks
 * that it did).
 *
 *   serve fabric=<name> addr=<node> port=<service>
 *   stop
 *   client fabric=<name> addr=<node> port=<service> [src=<node>]
 *          [tests=<test>[,<test>...]] [sizes=<max bytes>] [eps=<n>]
 *          [iters=<n>]
 *   loop   <as client>: serve on addr:port, run the client, stop
 *   bench  <as client> [api=kfi|verbs] [bytes=<n>]: tests= selects the
 *          benchmark cases, iters= and bytes= bound the repetitions of
 *          each; api=verbs runs them on raw verbs, as a baseline
 *
 * The wire protocol is the module's own, version 2, little-endian. The
 * connection request carries a &struct kst_hello, which the responder
 * checks and answers in its accept. Once connected, the client asks with
 * a %KST_MSG_DESC message for the responder's buffer of up to 4 MiB, which
 * the responder maps for remote reads and writes, answering with its
 * address, key and length. The client speaks first, as iWARP requires of
 * the side that connects. It then sends
 * commands, one at a time, each answered with a %KST_MSG_REPLY: FILL and
 * VERIFY write and check a seeded pattern in a range of the buffer, ECHO
 * makes the responder send the next messages back unchanged, DISCONNECT
 * makes it drop the connection. A receive consumed with immediate data is
 * answered with a %KST_MSG_IMM report of what the responder saw. The
 * responder checks every length and offset it is sent.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitops.h>
#include <linux/bvec.h>
#include <linux/completion.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/jhash.h>
#include <linux/ktime.h>
#include <linux/math64.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/nsproxy.h>
#include <linux/parser.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/seq_buf.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>
#include <rdma/kfi/kfi.h>
#include <rdma/kfi/rw.h>

#include "kfi_selftest.h"

/* What every test connection needs of a domain. */
#define KST_CAPS		(KFI_CAP_MSG | KFI_CAP_RMA)

#define KST_SRV_RX		8	/* receives per responder connection */
#define KST_MAX_SEGS		256	/* pages of a multi-segment buffer */
#define KST_MAX_CONNS		128	/* responder connections */
#define KST_BACKLOG		16
#define KST_MAX_EPS		64
#define KST_EPS			4
#define KST_MAX_ITERS		1000000
#define KST_ITERS		4
#define KST_BENCH_ITERS		1000
#define KST_BENCH_BYTES		SZ_256M	/* default of bytes= */
#define KST_CMD_MAX		512
#define KST_OUT_SIZE		SZ_256K
#define KST_LINE_MAX		256
/* Changes a key in every byte of its low half, so no provider maps it back. */
#define KST_BAD_KEY_XOR		0x5a5a5a5aULL

/**
 * struct kst_reject - private data of the responder's rejections
 * @magic: %KST_MAGIC
 * @version: %KST_VERSION
 * @reason: %KST_REJ_* code
 *
 * Part of the wire protocol; only this module is ever rejected.
 */
struct kst_reject {
	__le32 magic;
	__le16 version;
	__le16 reason;
};

#define KST_REJ_HELLO		1	/* no valid &struct kst_hello */
#define KST_REJ_DOMAIN		2	/* the domain cannot serve the tests */
#define KST_REJ_BUSY		3	/* no room for another connection */
#define KST_REJ_MEMORY		4	/* the responder's memory bound is reached */

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

void kst_msg_init(struct kst_msg *m, enum kst_msg_type type)
{
	memset(m, 0, sizeof(*m));
	m->magic = cpu_to_le32(KST_MAGIC);
	m->version = cpu_to_le16(KST_VERSION);
	m->type = cpu_to_le16(type);
}

/*
 * The test pattern: every byte depends on the seed and on its offset in
 * the responder's buffer, so misplaced, stale or lost data is caught, and
 * both sides compute it alike whatever their byte order.
 */
static u32 kst_pat_word(u32 seed, u64 idx)
{
	return jhash_2words(lower_32_bits(idx), upper_32_bits(idx), seed);
}

u8 kst_pat_byte(u32 seed, u64 off)
{
	return kst_pat_word(seed, off >> 2) >> (8 * (off & 3));
}

void kst_pat_fill(void *buf, u64 off, size_t len, u32 seed)
{
	u32 w = kst_pat_word(seed, off >> 2);
	u8 *p = buf;
	size_t i;

	for (i = 0; i < len; i++, off++) {
		if (i && !(off & 3))
			w = kst_pat_word(seed, off >> 2);
		p[i] = w >> (8 * (off & 3));
	}
}

/* Index of the first byte that is not the pattern, or @len. */
size_t kst_pat_check(const void *buf, u64 off, size_t len, u32 seed)
{
	u32 w = kst_pat_word(seed, off >> 2);
	const u8 *p = buf;
	size_t i;

	for (i = 0; i < len; i++, off++) {
		if (i && !(off & 3))
			w = kst_pat_word(seed, off >> 2);
		if (p[i] != (u8)(w >> (8 * (off & 3))))
			return i;
	}
	return len;
}

/* A seed whose pattern at @off differs from @cur, so a lost transfer fails. */
u32 kst_seed_not(u8 cur, u64 off)
{
	u32 seed;

	do {
		seed = get_random_u32();
	} while (kst_pat_byte(seed, off) == cur);
	return seed;
}

void kst_buf_free(struct kst_buf *b)
{
	u32 i;

	for (i = 0; i < b->nr; i++)
		__free_pages(b->bvec[i].bv_page, b->order);
	kfree(b->bvec);
	b->bvec = NULL;
	b->nr = 0;
}

int kst_buf_alloc(struct kst_buf *b, u64 len, unsigned int order)
{
	u64 block = PAGE_SIZE << order, left = len, n;
	u32 nr = DIV64_U64_ROUND_UP(len, block);
	/* Zeroed: the responder's buffers are open to any peer's reads. */
	gfp_t gfp = GFP_KERNEL | __GFP_NOWARN | __GFP_ZERO |
		    (order ? __GFP_COMP : 0);
	struct page *page;

	*b = (struct kst_buf){ .order = order, .len = len };
	b->bvec = kzalloc_objs(*b->bvec, nr, GFP_KERNEL);
	if (!b->bvec)
		return -ENOMEM;
	while (b->nr < nr) {
		page = alloc_pages(gfp, order);
		if (!page) {
			kst_buf_free(b);
			return -ENOMEM;
		}
		n = min(left, block);
		bvec_set_page(&b->bvec[b->nr++], page, n, 0);
		left -= n;
	}
	return 0;
}

/*
 * Up to @len bytes in at most @max_blocks blocks of one order, the largest
 * the page allocator gives, up to KST_BLOCK_MAX and @max_block: blocks of
 * one size, each aligned to it, are what a provider that maps memory in
 * pages maps in a page each, up to its largest page (see &struct kfi_mr).
 * With only small blocks left, the buffer is shorter than @len; @b->len
 * says how long.
 */
static int kst_buf_alloc_blocks(struct kst_buf *b, u64 len, u32 max_blocks,
				u64 max_block)
{
	unsigned int order = min3(get_order(KST_BLOCK_MAX), get_order(len),
				  get_order(max_block));

	for (;; order--) {
		if (!kst_buf_alloc(b, min(len, (u64)max_blocks << (PAGE_SHIFT + order)),
				   order))
			return 0;
		if (!order)
			return -ENOMEM;
	}
}

/*
 * Fill, or check, @len bytes of @b from offset @off with pattern @seed as
 * at buffer offset @pat_off. Returns the offset in @b of the first wrong
 * byte, or U64_MAX.
 */
u64 kst_buf_pattern(const struct kst_buf *b, u64 off, u64 len, u64 pat_off,
		    u32 seed, bool check)
{
	u64 start = 0, skip, n;
	size_t bad;
	void *p;
	u32 i;

	for (i = 0; i < b->nr && len; start += b->bvec[i].bv_len, i++) {
		if (off >= start + b->bvec[i].bv_len)
			continue;
		skip = off - start;
		n = min_t(u64, b->bvec[i].bv_len - skip, len);
		p = page_address(b->bvec[i].bv_page) + b->bvec[i].bv_offset + skip;
		if (check) {
			bad = kst_pat_check(p, pat_off, n, seed);
			if (bad < n)
				return off + bad;
		} else {
			kst_pat_fill(p, pat_off, n, seed);
		}
		off += n;
		pat_off += n;
		len -= n;
	}
	return U64_MAX;
}

/*
 * An address without its port: a host's connections come from different
 * ports, and src= names an address only.
 */
static void kst_addr_host(struct kfi_addr *a)
{
	switch (a->format) {
	case KFI_ADDR_INET:
		if (a->sa.sa_family == AF_INET)
			a->sin.sin_port = 0;
		else
			a->sin6.sin6_port = 0;
		break;
	case KFI_ADDR_NAME:
		a->name.port = 0;
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Commands, runs and KTAP output                                      */

enum kst_cmd {
	KST_CMD_SERVE,
	KST_CMD_STOP,
	KST_CMD_CLIENT,
	KST_CMD_LOOP,
	KST_CMD_BENCH,
};

static const char * const kst_cmd_names[] = {
	[KST_CMD_SERVE] = "serve",
	[KST_CMD_STOP] = "stop",
	[KST_CMD_CLIENT] = "client",
	[KST_CMD_LOOP] = "loop",
	[KST_CMD_BENCH] = "bench",
};

/* What a benchmark runs on. */
enum kst_api {
	KST_API_KFI,
	KST_API_VERBS,
};

static const char * const kst_api_names[] = {
	[KST_API_KFI] = "kfi",
	[KST_API_VERBS] = "verbs",
};

/**
 * struct kst_opts - a parsed command
 * @cmd: the command
 * @line: the command as written, for the output
 * @fabric: fabric name
 * @node: node of the responder
 * @service: service (port) of the responder
 * @src: local node to connect from, if @has_src
 * @addr: @node and @service parsed
 * @src_addr: @src parsed
 * @has_src: a source address was given
 * @tests: bit mask of the tests or benchmark cases to run
 * @sizes: largest transfer
 * @eps: endpoints of the many-endpoint test
 * @iters: repetitions of each case
 * @bytes: most bytes a benchmark case moves, which bounds its repetitions
 * @api: what the benchmark runs on: kfabric, or raw verbs as a baseline
 */
struct kst_opts {
	enum kst_cmd cmd;
	char line[KST_CMD_MAX + 1];
	char fabric[KFI_NAME_MAX];
	char node[KFI_NAME_MAX];
	char service[16];
	char src[KFI_NAME_MAX];
	struct kfi_addr addr;
	struct kfi_addr src_addr;
	bool has_src;
	unsigned long tests;
	u64 sizes;
	u32 eps;
	u32 iters;
	u64 bytes;
	enum kst_api api;
};

/**
 * struct kst_run - one command being run
 * @o: the command
 * @out: the KTAP output
 * @outbuf: memory of @out, handed over to the results file at the end
 * @line: the line being printed
 * @skip_buf: room for a formatted skip reason
 * @skip: why the test or case being finished was skipped
 * @level: 0 for tests, 1 for the cases of a test
 * @nr: results printed at each level
 * @sub_pass: cases of the current test that passed
 * @sub_fail: cases of the current test that failed
 * @failed: a test failed
 * @infos: kfi_getinfo() list of the domains reaching the responder
 * @info: the domain used, or NULL when none was found
 * @imm_infos: kfi_getinfo() list of those with immediate data too
 * @imm_info: the domain used for immediate data, or NULL
 * @net: network namespace of the task that wrote the command, where the
 *	responder listens and clients connect
 */
struct kst_run {
	struct kst_opts o;
	struct seq_buf out;
	char *outbuf;
	char line[KST_LINE_MAX];
	char skip_buf[80];
	const char *skip;
	unsigned int level;
	unsigned int nr[2];
	unsigned int sub_pass;
	unsigned int sub_fail;
	bool failed;
	struct list_head infos;
	struct kfi_info *info;
	struct list_head imm_infos;
	struct kfi_info *imm_info;
	struct net *net;
};

struct kst_server;

/* Serialises commands; protects kst_server. */
static DEFINE_MUTEX(kst_lock);
static struct kst_server *kst_server;

/* Protects the output of the last command. */
static DEFINE_MUTEX(kst_results_lock);
static char *kst_results;
static size_t kst_results_len;

static struct dentry *kst_dir;

static __printf(3, 0) void kst_vprint(struct kst_run *run, const char *prefix,
				      const char *fmt, va_list args)
{
	int n;

	n = scnprintf(run->line, sizeof(run->line), "%*s%s", (int)run->level * 4,
		      "", prefix);
	vscnprintf(run->line + n, sizeof(run->line) - n, fmt, args);
	pr_info("%s\n", run->line);
	seq_buf_printf(&run->out, "%s\n", run->line);
}

/* A KTAP line, indented for the current level. */
static __printf(2, 3) void kst_print(struct kst_run *run, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	kst_vprint(run, "", fmt, args);
	va_end(args);
}

/* A KTAP diagnostic line. */
__printf(2, 3) void kst_diag(struct kst_run *run, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	kst_vprint(run, "# ", fmt, args);
	va_end(args);
}

/* Sets the skip reason of the test or case about to be reported. */
__printf(2, 3) void kst_skip(struct kst_run *run, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vscnprintf(run->skip_buf, sizeof(run->skip_buf), fmt, args);
	va_end(args);
	run->skip = run->skip_buf;
}

/* The responder's address. */
const struct kfi_addr *kst_run_dest(const struct kst_run *run)
{
	return &run->o.addr;
}

/* The local address to connect from, or NULL for any. */
const struct kfi_addr *kst_run_src(const struct kst_run *run)
{
	return run->o.has_src ? &run->o.src_addr : NULL;
}

static void kst_result(struct kst_run *run, enum kst_result res,
		       const char *name)
{
	unsigned int n = ++run->nr[run->level];

	switch (res) {
	case KST_PASS:
		kst_print(run, "ok %u %s", n, name);
		break;
	case KST_SKIP:
		kst_print(run, "ok %u %s # SKIP %s", n, name, run->skip ?: "");
		break;
	default:
		kst_print(run, "not ok %u %s", n, name);
		break;
	}
	if (run->level) {
		if (res == KST_PASS)
			run->sub_pass++;
		else if (res == KST_FAIL)
			run->sub_fail++;
	} else if (res == KST_FAIL) {
		run->failed = true;
	}
	run->skip = NULL;
}

/* Starts the @n cases of a test; each is reported with kst_result(). */
static void kst_sub_begin(struct kst_run *run, const char *name, unsigned int n)
{
	run->level = 1;
	run->nr[1] = 0;
	run->sub_pass = 0;
	run->sub_fail = 0;
	kst_print(run, "KTAP version 1");
	kst_print(run, "# Subtest: %s", name);
	kst_print(run, "1..%u", n);
}

/* The test's result from its cases. */
static enum kst_result kst_sub_end(struct kst_run *run)
{
	run->level = 0;
	if (run->sub_fail)
		return KST_FAIL;
	if (!run->sub_pass) {
		kst_skip(run, "every case was skipped");
		return KST_SKIP;
	}
	return KST_PASS;
}

static enum kst_result kst_res(int ret)
{
	return ret ? KST_FAIL : KST_PASS;
}

static int kst_cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

/* Sorts @v, drops zeroes, duplicates and values above @max; the count left. */
static unsigned int kst_sizes(u64 *v, unsigned int n, u64 max)
{
	unsigned int i, k = 0;

	sort(v, n, sizeof(*v), kst_cmp_u64, NULL);
	for (i = 0; i < n; i++)
		if (v[i] && v[i] <= max && (!k || v[i] != v[k - 1]))
			v[k++] = v[i];
	return k;
}

/* ------------------------------------------------------------------ */
/* Client connections                                                  */

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
	if (rx->op.byte_len < sizeof(*m))
		return -EPROTO;
	memcpy(m, rx->kvec.iov_base, sizeof(*m));
	if (le32_to_cpu(m->magic) != KST_MAGIC ||
	    le16_to_cpu(m->version) != KST_VERSION ||
	    le16_to_cpu(m->type) != type)
		return -EPROTO;
	return 0;
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

/* Largest message to ask for: sizes=, but room for the protocol's messages. */
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
	const char *what = write ? "write" : "read";
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
		off = ((u64)round * SZ_4K) % (m[i].c->peer.len - SZ_4K + 1);
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

/* ------------------------------------------------------------------ */
/* Benchmark                                                           */

/*
 * Both modes (api=kfi and api=verbs) run the same cases: the same sizes,
 * queue depths and iterations, each case after one untimed transfer of
 * its size whose data is checked, and they print the same rows.
 */
u32 kst_bench_iters(const struct kst_run *run, u64 size)
{
	return clamp_t(u64, div64_u64(run->o.bytes, size), 1, run->o.iters);
}

/* Message sizes of the ping-pong case, up to @msg_size; their count. */
unsigned int kst_bench_send_sizes(const struct kst_run *run, u64 *sizes,
				  u32 msg_size)
{
	sizes[0] = 1;
	sizes[1] = 64;
	sizes[2] = SZ_4K;
	sizes[3] = msg_size;
	return kst_sizes(sizes, KST_BENCH_SEND_SIZES,
			 min_t(u64, run->o.sizes, msg_size));
}

/* Transfer sizes of the RMA cases; their count. */
unsigned int kst_bench_rma_sizes(const struct kst_run *run, u64 *sizes)
{
	static const u64 rma_sizes[KST_BENCH_RMA_SIZES] = {
		64, SZ_4K, SZ_64K, SZ_1M, SZ_4M
	};

	memcpy(sizes, rma_sizes, sizeof(rma_sizes));
	return kst_sizes(sizes, KST_BENCH_RMA_SIZES, run->o.sizes);
}

/*
 * One row per case: MB/s over the time the case took (time_us), and
 * avg_ns, the mean time from posting an operation to its completion (a
 * round trip for a ping-pong).
 */
void kst_bench_header(struct kst_run *run)
{
	kst_diag(run, "%-10s %3s %8s %8s %12s %10s %10s %s", "op", "qd", "bytes",
		 "iters", "MB/s", "avg_ns", "time_us", "api");
}

void kst_bench_row(struct kst_run *run, const char *op, u32 qd, u64 size,
		   u32 n, s64 ns, s64 lat_ns)
{
	u64 mbps = div64_u64(size * n * 100000ULL, max_t(s64, ns, 1));

	kst_diag(run, "%-10s %3u %8llu %8u %9llu.%02llu %10llu %10lld %s", op, qd,
		 size, n, mbps / 100, mbps % 100,
		 div_u64(max_t(s64, lat_ns, 0), n), div_s64(ns, NSEC_PER_USEC),
		 kst_api_names[run->o.api]);
}

static enum kst_result kst_bench_send(struct kst_run *run)
{
	struct kst_conn_param p;
	u64 sizes[KST_BENCH_SEND_SIZES];
	struct kst_conn *c;
	unsigned int i, n;
	int ret = 0;
	s64 ns;
	u32 k;

	if (IS_ENABLED(CONFIG_KFABRIC_SELFTEST_IBV) &&
	    run->o.api == KST_API_VERBS)
		return kst_ibv_bench_send(run);

	kst_param(&p, SZ_4K, kst_msg_size(run));
	c = kst_conn_open(run, run->info, &p);
	if (IS_ERR(c))
		return KST_FAIL;
	n = kst_bench_send_sizes(run, sizes, c->msg_size);
	kst_bench_header(run);
	for (i = 0; i < n && !ret; i++) {
		k = kst_bench_iters(run, sizes[i]);
		ns = 0;
		ret = kst_pingpong(c, sizes[i], 1, true, NULL);
		if (!ret)
			ret = kst_pingpong(c, sizes[i], k, false, &ns);
		if (!ret)
			kst_bench_row(run, "send_rtt", 1, sizes[i], k, ns, ns);
	}
	kst_conn_free(c);
	return kst_res(ret);
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

/* @n single RMA operations of @l, @qd at a time. */
static int kst_bench_window(struct kst_conn *c, struct kst_local *l, bool write,
			    u32 qd, u32 n, s64 *ns, s64 *lat)
{
	struct kfi_rma_iov rma = kst_remote(c, 0, l->len);
	u32 posted = 0, done = 0, i;
	struct kst_op *ops, *op;
	ktime_t start;
	int ret = 0;

	ops = kzalloc_objs(*ops, qd, GFP_KERNEL);
	if (!ops)
		return -ENOMEM;
	for (i = 0; i < qd; i++)
		kst_op_init(&ops[i]);
	*lat = 0;
	start = ktime_get();
	while (done < n) {
		for (; posted < n && posted - done < qd; posted++) {
			ret = kst_rma_post(c, l, &rma, write, 0, 0,
					   &ops[posted % qd]);
			if (ret)
				goto drain;
		}
		/* Send-side completions arrive in posting order. */
		op = &ops[done % qd];
		ret = kst_wait(c, op);
		if (ret)
			goto drain;
		*lat += op->lat_ns;
		done++;
	}
	*ns = ktime_to_ns(ktime_sub(ktime_get(), start));
	kfree(ops);
	return 0;

drain:
	kst_diag(c->run, "%s: %pe", write ? "write" : "read", ERR_PTR(ret));
	kfi_ep_drain(c->ep);
	kfree(ops);
	return ret;
}

/**
 * struct kst_rw - a read/write helper transfer of the benchmark
 * @ctx: its context, set up when it is posted
 * @op: its completion
 */
struct kst_rw {
	struct kfi_rw_ctx ctx;
	struct kst_op op;
};

/*
 * @n read/write helper transfers of @l, @qd at a time, as
 * kst_bench_window() does with single operations. A context lives from
 * posting to completion; those of a failed window are torn down once the
 * endpoint is drained.
 */
static int kst_bench_rw_window(struct kst_conn *c, struct kst_local *l,
			       bool write, u32 qd, u32 n, s64 *ns, s64 *lat)
{
	enum dma_data_direction dir = write ? DMA_TO_DEVICE : DMA_FROM_DEVICE;
	struct kfi_rma_iov rma = kst_remote(c, 0, l->len);
	u32 posted = 0, done = 0, i;
	struct kst_rw *rws, *rw;
	struct kfi_iov iov;
	ktime_t start;
	int ret = 0;

	rws = kzalloc_objs(*rws, qd, GFP_KERNEL);
	if (!rws)
		return -ENOMEM;
	for (i = 0; i < qd; i++)
		kst_op_init(&rws[i].op);
	kfi_iov_bvec(&iov, l->big.bvec, l->big.nr);
	*lat = 0;
	start = ktime_get();
	while (done < n) {
		for (; posted < n && posted - done < qd; posted++) {
			rw = &rws[posted % qd];
			ret = kfi_rw_ctx_init(&rw->ctx, c->ep, &iov, &rma, dir);
			if (ret < 0)
				goto drain;
			kst_op_arm(&rw->op);
			ret = kfi_rw_ctx_post(&rw->ctx, &rw->op.cqe, NULL, 0);
			if (ret) {
				/* Part of it may be running: drain, then destroy. */
				posted++;
				goto drain;
			}
		}
		/* Helper transfers complete in posting order, too. */
		rw = &rws[done % qd];
		ret = kst_wait(c, &rw->op);
		if (ret)
			goto drain;
		kfi_rw_ctx_destroy(&rw->ctx);
		*lat += rw->op.lat_ns;
		done++;
	}
	*ns = ktime_to_ns(ktime_sub(ktime_get(), start));
	kfree(rws);
	return 0;

drain:
	kst_diag(c->run, "%s: %pe", write ? "rw_write" : "rw_read", ERR_PTR(ret));
	kfi_ep_drain(c->ep);
	for (; done < posted; done++)
		kfi_rw_ctx_destroy(&rws[done % qd].ctx);
	kfree(rws);
	return ret;
}

/* @k single operations of @l, one at a time and at the queue depth. */
static int kst_bench_direct(struct kst_conn *c, struct kst_local *l,
			    bool write, u32 k, const char *name)
{
	s64 ns, lat;
	u32 kq;
	int ret;

	ret = kst_bench_window(c, l, write, 1, k, &ns, &lat);
	if (ret)
		return ret;
	kst_bench_row(c->run, name, 1, l->len, k, ns, lat);
	if (c->send_ops <= 1)
		return 0;
	/* At least as many as are to be in flight. */
	kq = max(k, c->send_ops);
	ret = kst_bench_window(c, l, write, c->send_ops, kq, &ns, &lat);
	if (!ret)
		kst_bench_row(c->run, name, c->send_ops, l->len, kq, ns, lat);
	return ret;
}

static enum kst_result kst_bench_rma(struct kst_run *run, bool write)
{
	const struct kfi_domain_attr *a = &run->info->attr;
	const char *kvec_name = write ? "write_kvec" : "read_kvec";
	const char *rw_name = write ? "rw_write" : "rw_read";
	const char *name = write ? "write" : "read";
	unsigned int order = get_order(KST_RW_BLOCK);
	u64 direct = min_t(u64, KST_MSG_MAX, a->max_rma_size);
	u64 sizes[KST_BENCH_RMA_SIZES];
	struct kst_conn_param p;
	struct kst_local l;
	struct kst_conn *c;
	unsigned int i, n;
	s64 ns, lat;
	int ret = 0;
	u32 k, kq;

	if (IS_ENABLED(CONFIG_KFABRIC_SELFTEST_IBV) &&
	    run->o.api == KST_API_VERBS)
		return kst_ibv_bench_rma(run, write);

	n = kst_bench_rma_sizes(run, sizes);
	if (!n) {
		kst_skip(run, "sizes= is below 64 bytes");
		return KST_SKIP;
	}
	kst_param(&p, sizes[n - 1], SZ_4K);
	if (sizes[n - 1] > direct)
		kst_param_rw(&p, a, sizes[n - 1], KST_RW_QD);
	c = kst_conn_open(run, run->info, &p);
	if (IS_ERR(c))
		return KST_FAIL;
	kst_bench_header(run);
	for (i = 0; i < n && !ret; i++) {
		if (sizes[i] > c->peer.len ||
		    (sizes[i] > direct && sizes[i] > p.rw_size))
			continue;
		k = kst_bench_iters(run, sizes[i]);
		ret = kst_local_alloc(&l, sizes[i], sizes[i] > direct, order);
		if (ret)
			break;
		ret = kst_local_map(c, &l, write);
		ret = ret ?: kst_rma_once(c, &l, 0, write);
		if (ret) {
			kst_local_unmap(c, &l);
			kst_local_free(&l);
			break;
		}
		if (!l.rw) {
			/* The region first, as the baseline; then the kvec. */
			ret = kst_bench_direct(c, &l, write, k,
					       l.mr ? name : kvec_name);
			if (l.mr) {
				ret = kst_local_unmap(c, &l) ?: ret;
				ret = ret ?: kst_bench_direct(c, &l, write, k,
							      kvec_name);
			}
		} else {
			ret = kst_bench_rw_window(c, &l, write, 1, k, &ns, &lat);
			if (!ret)
				kst_bench_row(run, rw_name, 1, sizes[i], k, ns, lat);
			kq = max(k, c->rw_ctxs);
			if (!ret && c->rw_ctxs > 1)
				ret = kst_bench_rw_window(c, &l, write, c->rw_ctxs,
							  kq, &ns, &lat);
			if (!ret && c->rw_ctxs > 1)
				kst_bench_row(run, rw_name, c->rw_ctxs, sizes[i], kq,
					      ns, lat);
		}
		kst_local_free(&l);
	}
	kst_conn_free(c);
	return kst_res(ret);
}

static enum kst_result kst_bench_write(struct kst_run *run)
{
	return kst_bench_rma(run, true);
}

static enum kst_result kst_bench_read(struct kst_run *run)
{
	return kst_bench_rma(run, false);
}

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

static enum kst_result kst_serve(struct kst_run *run)
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

static void kst_stop(void)
{
	if (kst_server) {
		kst_server_stop(kst_server);
		kst_server = NULL;
	}
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */

struct kst_test {
	const char *name;
	enum kst_result (*run)(struct kst_run *run);
};

static const struct kst_test kst_tests[] = {
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

static const struct kst_test kst_bench_cases[] = {
	{ "send", kst_bench_send },
	{ "write", kst_bench_write },
	{ "read", kst_bench_read },
};

static void kst_table(enum kst_cmd cmd, const struct kst_test **tab,
		      unsigned int *n)
{
	if (cmd == KST_CMD_BENCH) {
		*tab = kst_bench_cases;
		*n = ARRAY_SIZE(kst_bench_cases);
	} else {
		*tab = kst_tests;
		*n = ARRAY_SIZE(kst_tests);
	}
}

enum {
	KST_OPT_FABRIC,
	KST_OPT_ADDR,
	KST_OPT_PORT,
	KST_OPT_SRC,
	KST_OPT_TESTS,
	KST_OPT_SIZES,
	KST_OPT_EPS,
	KST_OPT_ITERS,
	KST_OPT_API,
	KST_OPT_BYTES,
	KST_OPT_ERR,
};

static const match_table_t kst_opt_tokens = {
	{ KST_OPT_FABRIC, "fabric=%s" },
	{ KST_OPT_ADDR, "addr=%s" },
	{ KST_OPT_PORT, "port=%s" },
	{ KST_OPT_SRC, "src=%s" },
	{ KST_OPT_TESTS, "tests=%s" },
	{ KST_OPT_SIZES, "sizes=%s" },
	{ KST_OPT_EPS, "eps=%u" },
	{ KST_OPT_ITERS, "iters=%u" },
	{ KST_OPT_API, "api=%s" },
	{ KST_OPT_BYTES, "bytes=%s" },
	{ KST_OPT_ERR, NULL },
};

#define KST_OPTS_ADDR	(BIT(KST_OPT_FABRIC) | BIT(KST_OPT_ADDR) | BIT(KST_OPT_PORT))
#define KST_OPTS_CLIENT	(KST_OPTS_ADDR | BIT(KST_OPT_SRC) | BIT(KST_OPT_TESTS) | \
			 BIT(KST_OPT_SIZES) | BIT(KST_OPT_EPS) | BIT(KST_OPT_ITERS))

static int kst_opt_str(const substring_t *arg, char *buf, size_t size)
{
	if (arg->to - arg->from >= size)
		return -EINVAL;
	match_strlcpy(buf, arg, size);
	return 0;
}

static int kst_opt_tests(const substring_t *arg, struct kst_opts *o)
{
	const struct kst_test *tab;
	char *list, *p, *name;
	unsigned int i, n;
	int ret = 0;

	kst_table(o->cmd, &tab, &n);
	list = match_strdup(arg);
	if (!list)
		return -ENOMEM;
	p = list;
	o->tests = 0;
	while ((name = strsep(&p, ",")) != NULL) {
		for (i = 0; i < n; i++)
			if (!strcmp(name, tab[i].name))
				break;
		if (i == n) {
			ret = -EINVAL;
			break;
		}
		o->tests |= BIT(i);
	}
	kfree(list);
	return ret;
}

/* A byte count with an optional K, M or G suffix; not 0. */
static int kst_opt_bytes(const substring_t *arg, u64 *val)
{
	char *s, *end;
	int ret = 0;

	s = match_strdup(arg);
	if (!s)
		return -ENOMEM;
	*val = memparse(s, &end);
	if (*end || !*val)
		ret = -EINVAL;
	kfree(s);
	return ret;
}

static int kst_opt_api(const substring_t *arg, struct kst_opts *o)
{
	char name[8];
	int ret;

	ret = kst_opt_str(arg, name, sizeof(name));
	if (ret)
		return ret;
	ret = match_string(kst_api_names, ARRAY_SIZE(kst_api_names), name);
	if (ret < 0)
		return -EINVAL;
	o->api = ret;
	/* The baseline is built only where the RDMA stack is reachable. */
	if (o->api == KST_API_VERBS && !IS_ENABLED(CONFIG_KFABRIC_SELFTEST_IBV))
		return -EOPNOTSUPP;
	return 0;
}

static int kst_opt_u32(substring_t *arg, u32 *val, u32 max)
{
	unsigned int v;
	int ret;

	ret = match_uint(arg, &v);
	if (ret)
		return ret;
	if (!v || v > max)
		return -EINVAL;
	*val = v;
	return 0;
}

/* Parses a command line into @o; -EINVAL for anything malformed. */
static int kst_parse(char *line, struct kst_opts *o)
{
	unsigned long seen = 0, allowed, required;
	substring_t args[MAX_OPT_ARGS];
	const struct kst_test *tab;
	unsigned int n;
	char *word;
	int token, ret;

	line = strim(line);
	strscpy(o->line, line);
	word = strsep(&line, " \t");
	ret = match_string(kst_cmd_names, ARRAY_SIZE(kst_cmd_names), word);
	if (ret < 0)
		return -EINVAL;
	o->cmd = ret;
	kst_table(o->cmd, &tab, &n);
	o->tests = BIT(n) - 1;
	o->sizes = KST_REGION_MAX;
	o->eps = KST_EPS;
	o->iters = o->cmd == KST_CMD_BENCH ? KST_BENCH_ITERS : KST_ITERS;
	o->bytes = KST_BENCH_BYTES;

	while ((word = strsep(&line, " \t")) != NULL) {
		if (!*word)
			continue;
		token = match_token(word, kst_opt_tokens, args);
		if (token == KST_OPT_ERR || (seen & BIT(token)))
			return -EINVAL;
		seen |= BIT(token);
		switch (token) {
		case KST_OPT_FABRIC:
			ret = kst_opt_str(&args[0], o->fabric, sizeof(o->fabric));
			break;
		case KST_OPT_ADDR:
			ret = kst_opt_str(&args[0], o->node, sizeof(o->node));
			break;
		case KST_OPT_PORT:
			ret = kst_opt_str(&args[0], o->service, sizeof(o->service));
			break;
		case KST_OPT_SRC:
			ret = kst_opt_str(&args[0], o->src, sizeof(o->src));
			break;
		case KST_OPT_TESTS:
			ret = kst_opt_tests(&args[0], o);
			break;
		case KST_OPT_SIZES:
			ret = kst_opt_bytes(&args[0], &o->sizes);
			break;
		case KST_OPT_EPS:
			ret = kst_opt_u32(&args[0], &o->eps, KST_MAX_EPS);
			break;
		case KST_OPT_ITERS:
			ret = kst_opt_u32(&args[0], &o->iters, KST_MAX_ITERS);
			break;
		case KST_OPT_API:
			ret = kst_opt_api(&args[0], o);
			break;
		case KST_OPT_BYTES:
			ret = kst_opt_bytes(&args[0], &o->bytes);
			break;
		}
		if (ret)
			return ret;
	}

	switch (o->cmd) {
	case KST_CMD_STOP:
		allowed = 0;
		required = 0;
		break;
	case KST_CMD_SERVE:
		allowed = KST_OPTS_ADDR;
		required = KST_OPTS_ADDR;
		break;
	case KST_CMD_BENCH:
		allowed = KST_OPTS_CLIENT | BIT(KST_OPT_API) | BIT(KST_OPT_BYTES);
		required = KST_OPTS_ADDR;
		break;
	default:
		allowed = KST_OPTS_CLIENT;
		required = KST_OPTS_ADDR;
		break;
	}
	if ((seen & ~allowed) || (seen & required) != required || !o->tests)
		return -EINVAL;
	if (required) {
		ret = kfi_addr_parse(&o->addr, o->node, o->service);
		if (ret)
			return ret;
	}
	if (seen & BIT(KST_OPT_SRC)) {
		ret = kfi_addr_parse(&o->src_addr, o->src, NULL);
		if (ret)
			return ret;
		o->has_src = true;
	}
	o->sizes = min_t(u64, o->sizes, KST_REGION_MAX);
	return 0;
}

/* Finds the domains that reach the responder. */
static void kst_discover(struct kst_run *run)
{
	const struct kst_opts *o = &run->o;
	struct kfi_hints hints = {
		.caps = KST_CAPS,
		.ep_type = KFI_EP_MSG,
		.net = run->net,
		.src_addr = o->has_src ? &o->src_addr : NULL,
		.dest_addr = &o->addr,
		.fabric_name = o->fabric,
		.min_cm_data = sizeof(struct kst_hello),
	};
	const struct kfi_domain_attr *a;
	char src[80];
	int ret;

	ret = kfi_getinfo(&hints, &run->infos);
	if (ret) {
		kst_diag(run, "no domain of fabric %s reaches %s: %pe", o->fabric,
			 o->node, ERR_PTR(ret));
		return;
	}
	run->info = list_first_entry(&run->infos, struct kfi_info, list);
	a = &run->info->attr;
	kfi_addr_print(src, sizeof(src), &run->info->src_addr);
	kst_diag(run, "domain %s, local address %s, caps %#llx", a->name, src,
		 a->caps);
	kst_diag(run,
		 "max_msg_size %llu max_rma_size %llu max_mr_size %llu max_rma_sge %u max_mr_segs %u max_mr_block %llu",
		 a->max_msg_size, a->max_rma_size, a->max_mr_size,
		 a->max_rma_sge, a->max_mr_segs, a->max_mr_block);

	hints.caps |= KFI_CAP_RMA_IMM;
	if (!kfi_getinfo(&hints, &run->imm_infos))
		run->imm_info = list_first_entry(&run->imm_infos, struct kfi_info,
						 list);
}

static void kst_run_tests(struct kst_run *run, bool responder)
{
	const struct kst_test *tab;
	enum kst_result res;
	unsigned int i, n;

	kst_table(run->o.cmd, &tab, &n);
	if (responder)
		kst_discover(run);
	for (i = 0; i < n; i++) {
		if (!(run->o.tests & BIT(i)))
			continue;
		if (!responder) {
			kst_skip(run, "the responder did not start");
			res = KST_SKIP;
		} else if (!run->info) {
			res = KST_FAIL;
		} else {
			res = tab[i].run(run);
		}
		kst_result(run, res, tab[i].name);
	}
	kfi_freeinfo(&run->imm_infos);
	kfi_freeinfo(&run->infos);
	run->info = NULL;
	run->imm_info = NULL;
}

/* Runs a parsed command; kst_lock held. */
static int kst_execute(struct kst_run *run)
{
	const struct kst_opts *o = &run->o;
	unsigned int nr_tests = hweight_long(o->tests);
	enum kst_result res;

	if (kst_server && (o->cmd == KST_CMD_SERVE || o->cmd == KST_CMD_LOOP))
		return -EBUSY;

	kst_print(run, "KTAP version 1");
	kst_diag(run, "kfi_selftest: %s", o->line);
	switch (o->cmd) {
	case KST_CMD_SERVE:
		kst_print(run, "1..1");
		kst_result(run, kst_serve(run), "serve");
		break;
	case KST_CMD_STOP:
		kst_print(run, "1..1");
		if (kst_server) {
			kst_stop();
			res = KST_PASS;
		} else {
			kst_skip(run, "no responder running");
			res = KST_SKIP;
		}
		kst_result(run, res, "stop");
		break;
	case KST_CMD_CLIENT:
	case KST_CMD_BENCH:
		kst_print(run, "1..%u", nr_tests);
		kst_run_tests(run, true);
		break;
	case KST_CMD_LOOP:
		kst_print(run, "1..%u", nr_tests + 2);
		res = kst_serve(run);
		kst_result(run, res, "serve");
		kst_run_tests(run, res == KST_PASS);
		if (res == KST_PASS) {
			kst_stop();
		} else {
			kst_skip(run, "the responder did not start");
			res = KST_SKIP;
		}
		kst_result(run, res, "stop");
		break;
	}

	mutex_lock(&kst_results_lock);
	kvfree(kst_results);
	kst_results = run->outbuf;
	kst_results_len = seq_buf_used(&run->out);
	mutex_unlock(&kst_results_lock);
	run->outbuf = NULL;
	return run->failed ? -EIO : 0;
}

static ssize_t kst_run_write(struct file *file, const char __user *ubuf,
			     size_t count, loff_t *ppos)
{
	struct kst_run *run;
	char *line;
	int ret;

	if (!count || count > KST_CMD_MAX)
		return -EINVAL;
	line = memdup_user_nul(ubuf, count);
	if (IS_ERR(line))
		return PTR_ERR(line);
	ret = -ENOMEM;
	run = kzalloc_obj(*run, GFP_KERNEL);
	if (!run)
		goto out_line;
	INIT_LIST_HEAD(&run->infos);
	INIT_LIST_HEAD(&run->imm_infos);
	/* Commands run in the writer's context, which holds a reference. */
	run->net = current->nsproxy->net_ns;
	run->outbuf = kvmalloc(KST_OUT_SIZE, GFP_KERNEL);
	if (!run->outbuf)
		goto out_run;
	seq_buf_init(&run->out, run->outbuf, KST_OUT_SIZE);

	ret = kst_parse(line, &run->o);
	if (ret)
		goto out_buf;
	ret = mutex_lock_interruptible(&kst_lock);
	if (ret)
		goto out_buf;
	ret = kst_execute(run);
	mutex_unlock(&kst_lock);
out_buf:
	kvfree(run->outbuf);
out_run:
	kfree(run);
out_line:
	kfree(line);
	if (ret)
		return ret;
	return count;
}

static ssize_t kst_results_read(struct file *file, char __user *ubuf,
				size_t count, loff_t *ppos)
{
	ssize_t ret;

	mutex_lock(&kst_results_lock);
	ret = simple_read_from_buffer(ubuf, count, ppos, kst_results,
				      kst_results_len);
	mutex_unlock(&kst_results_lock);
	return ret;
}

static const struct file_operations kst_run_fops = {
	.owner = THIS_MODULE,
	.write = kst_run_write,
	.llseek = noop_llseek,
};

static const struct file_operations kst_results_fops = {
	.owner = THIS_MODULE,
	.read = kst_results_read,
	.llseek = default_llseek,
};

static int __init kst_init(void)
{
	kst_dir = debugfs_create_dir("kfi_selftest", NULL);
	debugfs_create_file("run", 0200, kst_dir, NULL, &kst_run_fops);
	debugfs_create_file("results", 0400, kst_dir, NULL, &kst_results_fops);
	return 0;
}

static void __exit kst_exit(void)
{
	/* No command runs after this: an open file pins the module. */
	debugfs_remove(kst_dir);
	mutex_lock(&kst_lock);
	kst_stop();
	mutex_unlock(&kst_lock);
	kvfree(kst_results);
}

module_init(kst_init);
module_exit(kst_exit);

MODULE_DESCRIPTION("kfabric self-test and benchmark");
MODULE_LICENSE("GPL");
