// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric self-test: the wire protocol's messages and the test pattern and buffers
 * both sides use.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bvec.h>
#include <linux/gfp.h>
#include <linux/jhash.h>
#include <linux/math64.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <rdma/kfi/kfi.h>

#include "kfi_selftest.h"

/**
 * kst_msg_init() - start a protocol message
 * @m: the message
 * @type: its type
 *
 * Zeroes @m and sets its magic, version and type; the sender fills in the
 * fields of its type.
 */
void kst_msg_init(struct kst_msg *m, enum kst_msg_type type)
{
	memset(m, 0, sizeof(*m));
	m->magic = cpu_to_le32(KST_MAGIC);
	m->version = cpu_to_le16(KST_VERSION);
	m->type = cpu_to_le16(type);
}

/**
 * kst_msg_check() - copy a received message and check that it is a @type
 * @data: the bytes received
 * @len: how many
 * @type: the type expected
 * @m: the copy
 *
 * Return: 0, or -EPROTO if the bytes are no valid @type message.
 */
int kst_msg_check(const void *data, u32 len, enum kst_msg_type type,
		  struct kst_msg *m)
{
	if (len < sizeof(*m))
		return -EPROTO;
	memcpy(m, data, sizeof(*m));
	if (le32_to_cpu(m->magic) != KST_MAGIC ||
	    le16_to_cpu(m->version) != KST_VERSION ||
	    le16_to_cpu(m->type) != type)
		return -EPROTO;
	return 0;
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

/**
 * kst_pat_byte() - one byte of a test pattern
 * @seed: the pattern's seed
 * @off: offset of the byte in the responder's buffer
 *
 * Return: the byte.
 */
u8 kst_pat_byte(u32 seed, u64 off)
{
	return kst_pat_word(seed, off >> 2) >> (8 * (off & 3));
}

/**
 * kst_pat_fill() - fill memory with a test pattern
 * @buf: the memory
 * @off: offset in the responder's buffer that @buf stands for
 * @len: bytes to fill
 * @seed: the pattern's seed
 */
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

/**
 * kst_pat_check() - check memory against a test pattern
 * @buf: the memory
 * @off: offset in the responder's buffer that @buf stands for
 * @len: bytes to check
 * @seed: the pattern's seed
 *
 * Return: index of the first byte that is not the pattern, or @len.
 */
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

/**
 * kst_seed_not() - a seed whose pattern differs from a byte
 * @cur: the byte now at @off
 * @off: an offset in the responder's buffer
 *
 * A transfer of the new pattern that never lands then fails the check.
 *
 * Return: a random seed whose pattern at @off is not @cur.
 */
u32 kst_seed_not(u8 cur, u64 off)
{
	u32 seed;

	do {
		seed = get_random_u32();
	} while (kst_pat_byte(seed, off) == cur);
	return seed;
}

/**
 * kst_buf_free() - free a buffer of kst_buf_alloc() or kst_buf_alloc_blocks()
 * @b: the buffer; may be empty
 */
void kst_buf_free(struct kst_buf *b)
{
	u32 i;

	for (i = 0; i < b->nr; i++)
		__free_pages(b->bvec[i].bv_page, b->order);
	kfree(b->bvec);
	b->bvec = NULL;
	b->nr = 0;
}

/**
 * kst_buf_alloc() - allocate a buffer of blocks of one order
 * @b: the buffer
 * @len: bytes
 * @order: allocation order of the blocks
 *
 * Return: 0 or -ENOMEM.
 */
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

/**
 * kst_buf_alloc_blocks() - allocate a buffer of the largest blocks at hand
 * @b: the buffer
 * @len: bytes wanted
 * @max_blocks: most blocks to take
 * @max_block: largest block to take
 *
 * Up to @len bytes in at most @max_blocks blocks of one order, the largest
 * the page allocator gives, up to KST_BLOCK_MAX and @max_block: blocks of
 * one size, each aligned to it, are what a provider that maps memory in
 * pages maps in a page each, up to its largest page (see &struct kfi_mr).
 * With only small blocks left, the buffer is shorter than @len; @b->len
 * says how long.
 *
 * Return: 0 or -ENOMEM.
 */
int kst_buf_alloc_blocks(struct kst_buf *b, u64 len, u32 max_blocks,
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

/**
 * kst_buf_pattern() - fill, or check, part of a buffer with a test pattern
 * @b: the buffer
 * @off: first byte of @b
 * @len: bytes
 * @pat_off: offset in the responder's buffer that @off stands for
 * @seed: the pattern's seed
 * @check: check rather than fill
 *
 * Return: the offset in @b of the first wrong byte, or U64_MAX.
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

/**
 * kst_addr_host() - drop the port of an address
 * @a: the address
 *
 * A host's connections come from different ports, and src= names an
 * address only.
 */
void kst_addr_host(struct kfi_addr *a)
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
