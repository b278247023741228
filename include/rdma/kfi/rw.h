/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kfabric read/write helper: move a local buffer to or from a peer's
 * memory region in as many RMA operations as the endpoint needs, the
 * kfabric counterpart of rdma_rw_ctx. The ULP supplies a bio_vec array or
 * a scatterlist and the peer's (address, length, key); the helper hides
 * DMA mapping, registration where the provider needs it, splitting into
 * operations the endpoint can carry, and chaining a final send.
 */
#ifndef _RDMA_KFI_RW_H
#define _RDMA_KFI_RW_H

#include <rdma/kfi/kfi.h>

/*
 * Provider-private words in a context: enough for an rdma_rw_ctx and what
 * the verbs provider keeps beside it.
 */
#define KFI_RW_PRIV_WORDS	24

/**
 * struct kfi_rw_ctx - one read/write helper transfer
 * @ep: endpoint it runs on
 * @dir: %DMA_TO_DEVICE writes the local buffer to the peer,
 *	%DMA_FROM_DEVICE reads the peer's buffer into it
 * @nr_ops: RMA operations the transfer takes (send queue slots)
 *
 * Embed it in the per-I/O structure; it needs no other allocation.
 */
struct kfi_rw_ctx {
	struct kfi_ep *ep;
	enum dma_data_direction dir;
	u32 nr_ops;

	/* private: core and provider */
	bool by_provider;
	u32 max_sge;
	union {
		struct {
			struct kfi_iov local;
			struct kfi_rma_iov remote;
		} gen;
		u64 priv[KFI_RW_PRIV_WORDS];
	};
};

int kfi_rw_ctx_init(struct kfi_rw_ctx *ctx, struct kfi_ep *ep,
		    const struct kfi_iov *local, const struct kfi_rma_iov *remote,
		    enum dma_data_direction dir);
int kfi_rw_ctx_post(struct kfi_rw_ctx *ctx, struct kfi_cqe *cqe,
		    const struct kfi_msg *chain, u32 chain_flags);
void kfi_rw_ctx_destroy(struct kfi_rw_ctx *ctx);
u32 kfi_rw_max_ops(struct kfi_ep *ep, u64 len, u32 nsegs);

#endif /* _RDMA_KFI_RW_H */
