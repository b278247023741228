/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kfabric self-test: what kfi_selftest.c shares with the raw verbs
 * baseline of its benchmark, kfi_selftest_ibv.c: the wire protocol, the
 * test pattern, buffers, and the benchmark's cases and report lines, so
 * that both modes do the same operations and print them alike.
 */
#ifndef _KFI_SELFTEST_H
#define _KFI_SELFTEST_H

#include <linux/bvec.h>
#include <linux/compiler_attributes.h>
#include <linux/jiffies.h>
#include <linux/sizes.h>
#include <linux/types.h>
#include <rdma/kfi/kfi.h>

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

/* Benchmark cases, sizes and iterations, the same in both modes. */
#define KST_BENCH_SEND_SIZES	4
#define KST_BENCH_RMA_SIZES	5
unsigned int kst_bench_send_sizes(const struct kst_run *run, u64 *sizes,
				  u32 msg_size);
unsigned int kst_bench_rma_sizes(const struct kst_run *run, u64 *sizes);
u32 kst_bench_iters(const struct kst_run *run, u64 size);
void kst_bench_header(struct kst_run *run);
void kst_bench_row(struct kst_run *run, const char *op, u32 qd, u64 size,
		   u32 n, s64 ns, s64 lat_ns);

/* The raw verbs baseline: bench api=verbs, with CONFIG_KFABRIC_SELFTEST_IBV. */
enum kst_result kst_ibv_bench_send(struct kst_run *run);
enum kst_result kst_ibv_bench_rma(struct kst_run *run, bool write);

#endif /* _KFI_SELFTEST_H */
