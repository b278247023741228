/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kfabric self-test: what the files of the module share: the wire
 * protocol, the test pattern and buffers, a run and its KTAP output, the
 * tests and the benchmark's cases, and the benchmark's backends.
 */
#ifndef _KFI_SELFTEST_H
#define _KFI_SELFTEST_H

#include <linux/bits.h>
#include <linux/bvec.h>
#include <linux/compiler_attributes.h>
#include <linux/jiffies.h>
#include <linux/list.h>
#include <linux/seq_buf.h>
#include <linux/sizes.h>
#include <linux/types.h>
#include <rdma/kfi/kfi.h>

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

#define KST_MAGIC		0x6b667374	/* "kfst" */
#define KST_VERSION		2

#define KST_TIMEOUT_SECS	10
#define KST_TIMEOUT		(KST_TIMEOUT_SECS * HZ)

#define KST_REGION_MAX		SZ_4M	/* responder buffer per connection */
#define KST_MSG_MAX		SZ_64K	/* largest message */
#define KST_RW_BLOCK		SZ_64K	/* blocks of read/write helper buffers */
#define KST_BLOCK_MAX		SZ_2M	/* largest blocks of responder buffers */
#define KST_CLI_RX		4	/* receives per client connection */
#define KST_SEND_OPS		16	/* client send-side operations */
#define KST_RW_QD		4	/* benchmark helper transfers in flight */

/**
 * struct kst_hello - private data of a connection request and its accept
 * @magic: %KST_MAGIC
 * @version: %KST_VERSION
 * @reserved: zero
 * @region_len: request: bytes of responder buffer wanted, 0 for the
 *	default; accept: bytes the responder maps
 * @msg_size: request: largest message the client sends; accept: largest
 *	message the responder receives
 */
struct kst_hello {
	__le32 magic;
	__le16 version;
	__le16 reserved;
	__le32 region_len;
	__le32 msg_size;
};

/**
 * enum kst_msg_type - protocol messages
 * @KST_MSG_DESC: client, first message: map and describe the buffer;
 *	responder, the answer: the buffer's address, key and length, the
 *	largest message it receives and %KST_DESC_* flags. The client asks
 *	because on iWARP the side that connects must send first (MPA).
 * @KST_MSG_FILL: client: fill a range of the buffer with a pattern
 * @KST_MSG_VERIFY: client: check a range of the buffer against a pattern
 * @KST_MSG_ECHO: client: send back the next messages unchanged
 * @KST_MSG_DISCONNECT: client: drop this connection; there is no reply
 * @KST_MSG_REPLY: responder: the status of a command and, for VERIFY, the
 *	offset of the first wrong byte
 * @KST_MSG_IMM: responder: a receive completed with immediate data; what
 *	it saw
 */
enum kst_msg_type {
	KST_MSG_DESC = 1,
	KST_MSG_FILL,
	KST_MSG_VERIFY,
	KST_MSG_ECHO,
	KST_MSG_DISCONNECT,
	KST_MSG_REPLY,
	KST_MSG_IMM,
};

#define KST_DESC_IMM		BIT(0)	/* the responder has KFI_CAP_RMA_IMM */
#define KST_IMM_WC_IMM		BIT(0)	/* the receive had KFI_WC_IMM */
#define KST_IMM_WC_WRITE	BIT(1)	/* the receive had KFI_WC_RDMA_WRITE */

/**
 * struct kst_msg - a protocol message
 * @magic: %KST_MAGIC
 * @version: %KST_VERSION
 * @type: &enum kst_msg_type
 * @status: REPLY: 0 or a positive errno
 * @seed: FILL, VERIFY: pattern seed
 * @addr: DESC: address of the buffer's first byte
 * @key: DESC: key of the buffer
 * @offset: FILL, VERIFY: first byte; REPLY to VERIFY: first wrong byte
 * @len: DESC: bytes of the buffer; FILL, VERIFY: bytes of the range;
 *	IMM: bytes the receive reported
 * @imm: IMM: the immediate data
 * @flags: DESC: %KST_DESC_* flags; IMM: %KST_IMM_* flags
 * @count: ECHO: number of messages to send back
 * @msg_size: DESC: largest message the responder receives
 */
struct kst_msg {
	__le32 magic;
	__le16 version;
	__le16 type;
	__le32 status;
	__le32 seed;
	__le64 addr;
	__le64 key;
	__le64 offset;
	__le64 len;
	__le32 imm;
	__le32 flags;
	__le32 count;
	__le32 msg_size;
};

static_assert(sizeof(struct kst_msg) == 64);

void kst_msg_init(struct kst_msg *m, enum kst_msg_type type);
int kst_msg_check(const void *data, u32 len, enum kst_msg_type type,
		  struct kst_msg *m);
int kst_hello_check(const void *data, u32 len);

u8 kst_pat_byte(u32 seed, u64 off);
void kst_pat_fill(void *buf, u64 off, size_t len, u32 seed);
size_t kst_pat_check(const void *buf, u64 off, size_t len, u32 seed);
u32 kst_seed_not(u8 cur, u64 off);

/**
 * struct kst_buf - a buffer made of separately allocated blocks of pages
 * @bvec: one entry per block
 * @nr: number of blocks
 * @order: allocation order of the blocks
 * @len: bytes
 */
struct kst_buf {
	struct bio_vec *bvec;
	u32 nr;
	unsigned int order;
	u64 len;
};

void kst_buf_free(struct kst_buf *b);
int kst_buf_alloc(struct kst_buf *b, u64 len, unsigned int order);
u64 kst_buf_pattern(const struct kst_buf *b, u64 off, u64 len, u64 pat_off,
		    u32 seed, bool check);

enum kst_result {
	KST_PASS,
	KST_FAIL,
	KST_SKIP,
};

struct kst_run;

__printf(2, 3) void kst_diag(struct kst_run *run, const char *fmt, ...);
__printf(2, 3) void kst_skip(struct kst_run *run, const char *fmt, ...);
const struct kfi_addr *kst_run_dest(const struct kst_run *run);
const struct kfi_addr *kst_run_src(const struct kst_run *run);
u32 kst_msg_size(const struct kst_run *run);

/**
 * struct kst_bench_conn - a benchmark connection, as the cases see it
 * @run: the run it belongs to, for messages
 * @tx: the message send buffer
 * @msg_size: largest message both sides take
 * @send_ops: single RMA operations kept in flight at most
 * @rw_ctxs: read/write helper transfers kept in flight at most
 * @peer_len: bytes of the responder's buffer
 * @direct: largest single RMA operation
 * @rw_size: largest read/write helper transfer; 0 without the helper
 */
struct kst_bench_conn {
	struct kst_run *run;
	void *tx;
	u32 msg_size;
	u32 send_ops;
	u32 rw_ctxs;
	u64 peer_len;
	u64 direct;
	u64 rw_size;
};

/**
 * struct kst_bench_buf - a local buffer of an RMA case
 * @len: bytes
 * @rw: transfers of it go through the read/write helper
 * @mapped: single operations name a region the buffer was mapped into
 *	once, rather than the buffer itself
 */
struct kst_bench_buf {
	u64 len;
	bool rw;
	bool mapped;
};

/**
 * struct kst_bench_win - operations on one buffer, kept in flight together
 * @c: the connection
 * @b: the buffer
 * @write: RMA writes, or reads
 */
struct kst_bench_win {
	struct kst_bench_conn *c;
	struct kst_bench_buf *b;
	bool write;
};

/**
 * struct kst_bench_ops - what the benchmark runs on: kfabric or raw verbs
 * @open: connect to the responder and read its descriptor, asking for
 *	@region_len bytes of its buffer, messages of up to @msg_size bytes,
 *	and read/write helper transfers of up to @rw_len bytes if single
 *	operations cannot move that much
 * @close: disconnect and free the connection
 * @msg_send: send the first @len bytes of &kst_bench_conn.tx and wait
 *	for the send to complete
 * @msg_recv: wait for the next message; its bytes in *@data and *@len
 * @msg_repost: done with the last message: post its receive again
 * @rx_first: first byte of the receive buffer the next message lands in
 * @buf_alloc: allocate a buffer of @len bytes for writes or reads, for
 *	the read/write helper if @rw, else mapped once if the backend can
 * @buf_unmap: optional: end the mapping of a &kst_bench_buf.mapped buffer,
 *	so that single operations name the buffer itself
 * @buf_free: free a buffer, ending its mapping
 * @buf_pattern: fill, or check, a buffer with pattern @seed; the first
 *	wrong byte or U64_MAX
 * @win_alloc: allocate a window of @qd operations on a buffer
 * @win_free: free a window
 * @post: post operation @i of a window
 * @complete: wait for operation @i of a window and tear it down; its
 *	latency in *@lat_ns
 * @abort: drain the connection after a failure, and tear down the
 *	operations of the window still set up
 *
 * The benchmark's cases run the same code over both, down to the loops
 * that post and wait, so that their rows differ only by what the
 * operations cost on each.
 */
struct kst_bench_ops {
	struct kst_bench_conn *(*open)(struct kst_run *run, u64 region_len,
				       u32 msg_size, u64 rw_len);
	void (*close)(struct kst_bench_conn *c);
	int (*msg_send)(struct kst_bench_conn *c, u32 len);
	int (*msg_recv)(struct kst_bench_conn *c, const void **data, u32 *len);
	int (*msg_repost)(struct kst_bench_conn *c);
	u8 (*rx_first)(struct kst_bench_conn *c);
	struct kst_bench_buf *(*buf_alloc)(struct kst_bench_conn *c, u64 len,
					   bool rw, bool write);
	int (*buf_unmap)(struct kst_bench_conn *c, struct kst_bench_buf *b);
	void (*buf_free)(struct kst_bench_conn *c, struct kst_bench_buf *b);
	u64 (*buf_pattern)(struct kst_bench_conn *c, struct kst_bench_buf *b,
			   u32 seed, bool check);
	struct kst_bench_win *(*win_alloc)(struct kst_bench_conn *c,
					   struct kst_bench_buf *b, bool write,
					   u32 qd);
	void (*win_free)(struct kst_bench_win *w);
	int (*post)(struct kst_bench_win *w, u32 i);
	int (*complete)(struct kst_bench_win *w, u32 i, s64 *lat_ns);
	void (*abort)(struct kst_bench_win *w);
};

/* The raw verbs baseline: bench api=verbs, with CONFIG_KFABRIC_SELFTEST_IBV. */
extern const struct kst_bench_ops kst_ibv_bench_ops;

enum kst_cmd {
	KST_CMD_SERVE,
	KST_CMD_STOP,
	KST_CMD_CLIENT,
	KST_CMD_LOOP,
	KST_CMD_BENCH,
};

/* What a benchmark runs on. */
enum kst_api {
	KST_API_KFI,
	KST_API_VERBS,
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

/**
 * struct kst_test - a test, or a benchmark case
 * @name: its name in tests= and in the output
 * @run: runs it
 */
struct kst_test {
	const char *name;
	enum kst_result (*run)(struct kst_run *run);
};

/* The output of a run (kfi_selftest.c). */
void kst_result(struct kst_run *run, enum kst_result res,
		const char *name);
void kst_sub_begin(struct kst_run *run, const char *name, unsigned int n);
enum kst_result kst_sub_end(struct kst_run *run);
enum kst_result kst_res(int ret);
unsigned int kst_sizes(u64 *v, unsigned int n, u64 max);

/* Addresses and buffers (kfi_selftest_proto.c). */
void kst_addr_host(struct kfi_addr *a);
int kst_buf_alloc_blocks(struct kst_buf *b, u64 len, u32 max_blocks,
			 u64 max_block);

/* The responder (kfi_selftest_responder.c). */
enum kst_result kst_serve(struct kst_run *run);
void kst_stop(void);
bool kst_serving(void);

extern const char * const kst_api_names[];
extern const struct kst_test kst_tests[];
extern const unsigned int kst_nr_tests;
extern const struct kst_test kst_bench_cases[];
extern const unsigned int kst_nr_bench_cases;
extern const struct kst_bench_ops kst_kfi_bench_ops;

#endif /* _KFI_SELFTEST_H */
