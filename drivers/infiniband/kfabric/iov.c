// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric local buffers: constructors for ULPs, and an iterator that walks
 * any &struct kfi_iov as physically contiguous page ranges, so providers
 * handle kvec, bio_vec and scatterlist buffers with one loop.
 */
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/vmalloc.h>

#include "kfi_core.h"

static u64 kfi_iov_entries_len(const struct kfi_iov *iov)
{
	struct scatterlist *sg;
	u64 len = 0;
	u32 i;

	switch (iov->type) {
	case KFI_IOV_KVEC:
		for (i = 0; i < iov->nr; i++)
			len += iov->kvec[i].iov_len;
		break;
	case KFI_IOV_BVEC:
		for (i = 0; i < iov->nr; i++)
			len += iov->bvec[i].bv_len;
		break;
	case KFI_IOV_SG:
		for_each_sg(iov->sg, sg, iov->nr, i)
			len += sg->length;
		break;
	case KFI_IOV_MR:
		break;
	}
	return len;
}

/**
 * kfi_iov_kvec() - describe an array of kvecs
 * @iov: the descriptor to fill
 * @kvec: the array
 * @nr: entries in @kvec
 *
 * Uses every byte of every entry.
 */
void kfi_iov_kvec(struct kfi_iov *iov, const struct kvec *kvec, u32 nr)
{
	*iov = (struct kfi_iov){ .type = KFI_IOV_KVEC, .nr = nr, .kvec = kvec };
	iov->len = kfi_iov_entries_len(iov);
}
EXPORT_SYMBOL_GPL(kfi_iov_kvec);

/**
 * kfi_iov_bvec() - describe an array of bio_vecs
 * @iov: the descriptor to fill
 * @bvec: the array
 * @nr: entries in @bvec
 *
 * Uses every byte of every entry.
 */
void kfi_iov_bvec(struct kfi_iov *iov, const struct bio_vec *bvec, u32 nr)
{
	*iov = (struct kfi_iov){ .type = KFI_IOV_BVEC, .nr = nr, .bvec = bvec };
	iov->len = kfi_iov_entries_len(iov);
}
EXPORT_SYMBOL_GPL(kfi_iov_bvec);

/**
 * kfi_iov_sg() - describe a scatterlist
 * @iov: the descriptor to fill
 * @sg: the first entry; chained lists are followed
 * @nr: entries to use
 *
 * Uses every byte of @nr entries. The list must not be DMA-mapped: kfabric
 * maps buffers itself.
 */
void kfi_iov_sg(struct kfi_iov *iov, struct scatterlist *sg, u32 nr)
{
	*iov = (struct kfi_iov){ .type = KFI_IOV_SG, .nr = nr, .sg = sg };
	iov->len = kfi_iov_entries_len(iov);
}
EXPORT_SYMBOL_GPL(kfi_iov_sg);

/**
 * kfi_iov_mr() - describe a range of a mapped memory region
 * @iov: the descriptor to fill
 * @mr: a region mapped with kfi_mr_map()
 * @offset: first byte, relative to the start of the mapping
 * @len: bytes
 */
void kfi_iov_mr(struct kfi_iov *iov, struct kfi_mr *mr, u64 offset, u64 len)
{
	*iov = (struct kfi_iov){ .type = KFI_IOV_MR, .mr = mr,
				 .offset = offset, .len = len };
}
EXPORT_SYMBOL_GPL(kfi_iov_mr);

/**
 * kfi_iov_iter_init() - start walking a buffer
 * @it: the iterator
 * @iov: a %KFI_IOV_KVEC, %KFI_IOV_BVEC or %KFI_IOV_SG buffer
 *
 * Return: 0, or -EINVAL when @iov is of another type, or when @offset and
 * @len do not fit in its entries.
 */
int kfi_iov_iter_init(struct kfi_iov_iter *it, const struct kfi_iov *iov)
{
	u64 total;

	if (iov->type == KFI_IOV_MR || iov->type > KFI_IOV_MR)
		return -EINVAL;
	total = kfi_iov_entries_len(iov);
	if (iov->offset > total || iov->len > total - iov->offset)
		return -EINVAL;
	*it = (struct kfi_iov_iter){ .iov = iov, .left = iov->len,
				     .skip = iov->offset };
	if (iov->type == KFI_IOV_SG)
		it->sg = iov->sg;
	return 0;
}
EXPORT_SYMBOL_GPL(kfi_iov_iter_init);

/* Length of the entry the iterator is in; 0 past the end. */
static u64 kfi_iov_iter_entry_len(const struct kfi_iov_iter *it)
{
	if (it->idx >= it->iov->nr)
		return 0;
	switch (it->iov->type) {
	case KFI_IOV_KVEC:
		return it->iov->kvec[it->idx].iov_len;
	case KFI_IOV_BVEC:
		return it->iov->bvec[it->idx].bv_len;
	default:
		return it->sg->length;
	}
}

static void kfi_iov_iter_next_entry(struct kfi_iov_iter *it)
{
	it->idx++;
	if (it->iov->type == KFI_IOV_SG && it->idx < it->iov->nr)
		it->sg = sg_next(it->sg);
}

/**
 * kfi_iov_iter_next() - next physically contiguous piece of a buffer
 * @it: the iterator
 * @seg: filled with the piece: page, offset (below PAGE_SIZE) and length
 * @max: longest piece wanted; 0 for no limit. A @max of at most PAGE_SIZE
 *	also keeps every piece inside one @max-sized block of its page, so
 *	PAGE_SIZE gives pieces that kmap_local_page() can map whole.
 *
 * A piece never crosses an entry, and never a page of vmalloc memory.
 *
 * Return: true with @seg filled, false when the buffer is exhausted.
 */
bool kfi_iov_iter_next(struct kfi_iov_iter *it, struct bio_vec *seg, u64 max)
{
	u64 elen, len, pos;
	struct page *page;

	while (it->left) {
		elen = kfi_iov_iter_entry_len(it);
		if (it->skip >= elen) {
			if (it->idx >= it->iov->nr)
				return false;
			it->skip -= elen;
			kfi_iov_iter_next_entry(it);
			continue;
		}
		len = min(elen - it->skip, it->left);
		switch (it->iov->type) {
		case KFI_IOV_KVEC: {
			void *addr = it->iov->kvec[it->idx].iov_base + it->skip;

			if (is_vmalloc_addr(addr)) {
				page = vmalloc_to_page(addr);
				len = min_t(u64, len, PAGE_SIZE - offset_in_page(addr));
			} else {
				page = virt_to_page(addr);
			}
			pos = offset_in_page(addr);
			break;
		}
		case KFI_IOV_BVEC: {
			const struct bio_vec *bv = &it->iov->bvec[it->idx];

			pos = bv->bv_offset + it->skip;
			page = bv->bv_page + (pos >> PAGE_SHIFT);
			pos &= ~PAGE_MASK;
			break;
		}
		default:
			pos = it->sg->offset + it->skip;
			page = sg_page(it->sg) + (pos >> PAGE_SHIFT);
			pos &= ~PAGE_MASK;
			break;
		}
		/* A bio_vec length is an unsigned int. */
		if (max && max <= PAGE_SIZE)
			len = min_t(u64, len, max - (u32)pos % (u32)max);
		else
			len = min_t(u64, len, max ? max : UINT_MAX & PAGE_MASK);
		bvec_set_page(seg, page, len, pos);
		it->skip += len;
		it->left -= len;
		return true;
	}
	return false;
}
EXPORT_SYMBOL_GPL(kfi_iov_iter_next);

/*
 * Call @fn on the vmalloc'd parts of the kvec entries that @iov covers:
 * DMA to and from them goes through their page addresses, so on machines
 * with virtually indexed caches the vmap alias must be written back before
 * and invalidated after, as for any vmalloc buffer handed to DMA.
 */
static void kfi_iov_vmap_each(const struct kfi_iov *iov,
			      void (*fn)(void *vaddr, int size))
{
	/* Physically indexed caches: nothing to do, and no walk either. */
#ifdef ARCH_IMPLEMENTS_FLUSH_KERNEL_VMAP_RANGE
	u64 skip = iov->offset, left = iov->len, n;
	void *addr;
	u32 i;

	if (iov->type != KFI_IOV_KVEC)
		return;
	for (i = 0; i < iov->nr && left; i++) {
		n = iov->kvec[i].iov_len;
		if (skip >= n) {
			skip -= n;
			continue;
		}
		addr = iov->kvec[i].iov_base + skip;
		n = min(n - skip, left);
		skip = 0;
		left -= n;
		if (is_vmalloc_addr(addr))
			fn(addr, n);
	}
#endif
}

/**
 * kfi_iov_dma_begin() - prepare vmalloc'd kvec memory for DMA
 * @iov: a buffer about to be DMA-mapped, in any direction
 *
 * For providers that DMA-map the pages kfi_iov_iter_next() yields: writes
 * back the vmap alias of vmalloc'd kvec entries (flush_kernel_vmap_range()).
 * Free on machines with physically indexed caches.
 */
void kfi_iov_dma_begin(const struct kfi_iov *iov)
{
	kfi_iov_vmap_each(iov, flush_kernel_vmap_range);
}
EXPORT_SYMBOL_GPL(kfi_iov_dma_begin);

/**
 * kfi_iov_dma_end() - finish DMA into vmalloc'd kvec memory
 * @iov: a buffer that was DMA-mapped
 * @dir: the direction it was mapped for
 *
 * After DMA into a buffer has completed, invalidates the vmap alias of its
 * vmalloc'd kvec entries (invalidate_kernel_vmap_range()), so the CPU
 * reads what the device wrote. Providers do not keep the kvec array of an
 * operation until it completes, so the ULP, which owns the buffer, calls
 * this from the completion of a receive or read into vmalloc memory, as
 * file systems do for their vmapped buffers.
 */
void kfi_iov_dma_end(const struct kfi_iov *iov, enum dma_data_direction dir)
{
	if (dir != DMA_TO_DEVICE)
		kfi_iov_vmap_each(iov, invalidate_kernel_vmap_range);
}
EXPORT_SYMBOL_GPL(kfi_iov_dma_end);

/**
 * kfi_iov_nsegs() - count the pieces kfi_iov_iter_next() yields
 * @iov: the buffer
 * @max: as for kfi_iov_iter_next()
 *
 * Return: the count, or -EINVAL for a buffer kfi_iov_iter_init() rejects.
 */
int kfi_iov_nsegs(const struct kfi_iov *iov, u64 max)
{
	struct kfi_iov_iter it;
	struct bio_vec seg;
	int n = 0, ret;

	ret = kfi_iov_iter_init(&it, iov);
	if (ret)
		return ret;
	while (kfi_iov_iter_next(&it, &seg, max))
		n++;
	return n;
}
EXPORT_SYMBOL_GPL(kfi_iov_nsegs);

/**
 * kfi_iov_copy() - copy between a buffer and kernel memory
 * @iov: the buffer
 * @skip: bytes of @iov to skip
 * @buf: kernel memory
 * @len: bytes to copy
 * @to_iov: copy from @buf into @iov if true, from @iov into @buf if not
 *
 * For software providers that move data with the CPU. @buf may be an
 * ioremapped or memremapped window: it is accessed with plain memcpy(),
 * which is what x86 requires for write-combining windows too.
 *
 * Return: 0, or -EINVAL when @iov is invalid or shorter than @skip + @len.
 */
int kfi_iov_copy(const struct kfi_iov *iov, u64 skip, void *buf, u64 len,
		 bool to_iov)
{
	struct kfi_iov_iter it;
	struct bio_vec seg;
	struct kfi_iov sub;
	int ret;

	if (skip > iov->len || len > iov->len - skip)
		return -EINVAL;
	sub = *iov;
	sub.offset += skip;
	sub.len = len;
	ret = kfi_iov_iter_init(&it, &sub);
	if (ret)
		return ret;
	while (kfi_iov_iter_next(&it, &seg, 0)) {
		u32 done = 0;

		/* Pieces may span pages; copy a page at a time. */
		while (done < seg.bv_len) {
			u32 pos = seg.bv_offset + done;
			struct page *page = seg.bv_page + (pos >> PAGE_SHIFT);
			u32 off = pos & ~PAGE_MASK;
			u32 n = min_t(u32, seg.bv_len - done, PAGE_SIZE - off);

			if (to_iov)
				memcpy_to_page(page, off, buf, n);
			else
				memcpy_from_page(buf, page, off, n);
			buf += n;
			done += n;
		}
	}
	return 0;
}
EXPORT_SYMBOL_GPL(kfi_iov_copy);
