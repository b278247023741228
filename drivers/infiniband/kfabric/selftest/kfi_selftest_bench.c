// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric self-test: the benchmark, whose cases run the same code on kfabric
 * and, as a baseline, on raw verbs.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/completion.h>
#include <linux/ktime.h>
#include <linux/math64.h>
#include <linux/minmax.h>
#include <linux/random.h>
#include <linux/sizes.h>
#include <linux/string.h>
#include <linux/string_choices.h>
#include <rdma/kfi/kfi.h>

#include "kfi_selftest.h"

/* Sizes of the benchmark's cases, the same in both modes. */
#define KST_BENCH_SEND_SIZES	4
#define KST_BENCH_RMA_SIZES	5

/*
 * Both modes (api=kfi and api=verbs) run the same cases: the same sizes,
 * queue depths and iterations, each case after one untimed transfer of
 * its size whose data is checked, and they print the same rows.
 */
static u32 kst_bench_iters(const struct kst_run *run, u64 size)
{
	return clamp_t(u64, div64_u64(run->o.bytes, size), 1, run->o.iters);
}

/* Message sizes of the ping-pong case, up to @msg_size; their count. */
static unsigned int kst_bench_send_sizes(const struct kst_run *run,
					 u64 *sizes, u32 msg_size)
{
	sizes[0] = 1;
	sizes[1] = 64;
	sizes[2] = SZ_4K;
	sizes[3] = msg_size;
	return kst_sizes(sizes, KST_BENCH_SEND_SIZES,
			 min_t(u64, run->o.sizes, msg_size));
}

/* Transfer sizes of the RMA cases; their count. */
static unsigned int kst_bench_rma_sizes(const struct kst_run *run, u64 *sizes)
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
static void kst_bench_header(struct kst_run *run)
{
	kst_diag(run, "%-10s %3s %8s %8s %12s %10s %10s %s", "op", "qd", "bytes",
		 "iters", "MB/s", "avg_ns", "time_us", "api");
}

static void kst_bench_row(struct kst_run *run, const char *op, u32 qd,
			  u64 size, u32 n, s64 ns, s64 lat_ns)
{
	u64 mbps = div64_u64(size * n * 100000ULL, max_t(s64, ns, 1));
	u32 hundredths;

	mbps = div_u64_rem(mbps, 100, &hundredths);
	kst_diag(run, "%-10s %3u %8llu %8u %9llu.%02u %10llu %10lld %s", op, qd,
		 size, n, mbps, hundredths,
		 div_u64(max_t(s64, lat_ns, 0), n), div_s64(ns, NSEC_PER_USEC),
		 kst_api_names[run->o.api]);
}

static const struct kst_bench_ops *kst_bench_ops(const struct kst_run *run)
{
	if (IS_ENABLED(CONFIG_KFABRIC_SELFTEST_IBV) &&
	    run->o.api == KST_API_VERBS)
		return &kst_ibv_bench_ops;
	return &kst_kfi_bench_ops;
}

/*
 * Sends a command and waits for its reply. Returns the responder's status
 * as a negative errno; @offset, if not NULL, gets the reply's offset.
 */
static int kst_bench_cmd(const struct kst_bench_ops *ops,
			 struct kst_bench_conn *c, enum kst_msg_type type,
			 u64 len, u32 seed, u32 count, u64 *offset)
{
	struct kst_msg *m = c->tx, r;
	const void *data;
	u32 got, status;
	int ret;

	kst_msg_init(m, type);
	m->len = cpu_to_le64(len);
	m->seed = cpu_to_le32(seed);
	m->count = cpu_to_le32(count);
	ret = ops->msg_send(c, sizeof(*m));
	ret = ret ?: ops->msg_recv(c, &data, &got);
	ret = ret ?: kst_msg_check(data, got, KST_MSG_REPLY, &r);
	ret = ret ?: ops->msg_repost(c);
	if (ret)
		return ret;
	if (offset)
		*offset = le64_to_cpu(r.offset);
	status = le32_to_cpu(r.status);
	return status <= MAX_ERRNO ? -(int)status : -EPROTO;
}

/*
 * Sends @count messages of @len bytes and checks each echo, with the
 * pattern if @verify. Adds the time the round trips took to *@ns.
 */
static int kst_bench_pingpong(const struct kst_bench_ops *ops,
			      struct kst_bench_conn *c, u32 len, u32 count,
			      bool verify, s64 *ns)
{
	const void *data;
	u32 i, got, seed = 0;
	ktime_t start;
	size_t bad;
	int ret;

	ret = kst_bench_cmd(ops, c, KST_MSG_ECHO, 0, 0, count, NULL);
	if (ret) {
		kst_diag(c->run, "ECHO: %pe", ERR_PTR(ret));
		return ret;
	}
	start = ktime_get();
	for (i = 0; i < count; i++) {
		/* An echo that never lands cannot pass for one that did. */
		if (verify) {
			seed = kst_seed_not(ops->rx_first(c), 0);
			kst_pat_fill(c->tx, 0, len, seed);
		}
		ret = ops->msg_send(c, len);
		if (ret) {
			kst_diag(c->run, "send of %u bytes: %pe", len, ERR_PTR(ret));
			return ret;
		}
		ret = ops->msg_recv(c, &data, &got);
		if (ret) {
			kst_diag(c->run, "echo of %u bytes: %pe", len, ERR_PTR(ret));
			return ret;
		}
		if (got != len) {
			kst_diag(c->run, "echo of %u bytes came back with %u",
				 len, got);
			return -EPROTO;
		}
		if (verify) {
			bad = kst_pat_check(data, 0, len, seed);
			if (bad < len) {
				kst_diag(c->run, "echo of %u bytes: byte %zu is wrong",
					 len, bad);
				return -EBADMSG;
			}
		}
		ret = ops->msg_repost(c);
		if (ret)
			return ret;
	}
	if (ns)
		*ns += ktime_to_ns(ktime_sub(ktime_get(), start));
	return 0;
}

static enum kst_result kst_bench_send(struct kst_run *run)
{
	const struct kst_bench_ops *ops = kst_bench_ops(run);
	u64 sizes[KST_BENCH_SEND_SIZES];
	struct kst_bench_conn *c;
	unsigned int i, n;
	int ret = 0;
	s64 ns;
	u32 k;

	c = ops->open(run, SZ_4K, kst_msg_size(run), 0);
	if (IS_ERR(c))
		return KST_FAIL;
	n = kst_bench_send_sizes(run, sizes, c->msg_size);
	kst_bench_header(run);
	for (i = 0; i < n && !ret; i++) {
		k = kst_bench_iters(run, sizes[i]);
		ns = 0;
		ret = kst_bench_pingpong(ops, c, sizes[i], 1, true, NULL);
		if (!ret)
			ret = kst_bench_pingpong(ops, c, sizes[i], k, false,
						 &ns);
		if (!ret)
			kst_bench_row(run, "send_rtt", 1, sizes[i], k, ns, ns);
	}
	ops->close(c);
	return kst_res(ret);
}

/*
 * @n operations of @b, @qd at a time: single RMA operations, or read/write
 * helper transfers. Both complete in posting order, so the oldest one is
 * always the next to wait for.
 */
static int kst_bench_window(const struct kst_bench_ops *ops,
			    struct kst_bench_conn *c, struct kst_bench_buf *b,
			    bool write, u32 qd, u32 n, s64 *ns, s64 *lat)
{
	u32 posted = 0, done = 0;
	struct kst_bench_win *w;
	ktime_t start;
	s64 op_lat;
	int ret = 0;

	w = ops->win_alloc(c, b, write, qd);
	if (IS_ERR(w))
		return PTR_ERR(w);
	*lat = 0;
	start = ktime_get();
	while (done < n) {
		for (; posted < n && posted - done < qd; posted++) {
			ret = ops->post(w, posted % qd);
			if (ret)
				goto abort;
		}
		ret = ops->complete(w, done % qd, &op_lat);
		if (ret)
			goto abort;
		*lat += op_lat;
		done++;
	}
	*ns = ktime_to_ns(ktime_sub(ktime_get(), start));
	ops->win_free(w);
	return 0;

abort:
	if (b->rw)
		kst_diag(c->run, "%s: %pe", write ? "rw_write" : "rw_read",
			 ERR_PTR(ret));
	else
		kst_diag(c->run, "%s: %pe", str_write_read(write),
			 ERR_PTR(ret));
	ops->abort(w);
	ops->win_free(w);
	return ret;
}

/*
 * One checked transfer of @b, untimed, before the timed ones of its size,
 * as kst_rma_once() does in the tests: a write goes over another pattern
 * and the responder checks the result; a read goes into a buffer holding
 * another pattern and is checked here.
 */
static int kst_bench_once(const struct kst_bench_ops *ops,
			  struct kst_bench_conn *c, struct kst_bench_buf *b,
			  bool write)
{
	u32 seed, other = get_random_u32();
	u64 bad = 0;
	s64 ns, lat;
	int ret;

	seed = kst_seed_not(kst_pat_byte(other, 0), 0);
	ret = kst_bench_cmd(ops, c, KST_MSG_FILL, b->len, write ? other : seed,
			    0, NULL);
	if (ret) {
		kst_diag(c->run, "FILL of %llu bytes: %pe", b->len, ERR_PTR(ret));
		return ret;
	}
	ops->buf_pattern(c, b, write ? seed : other, false);
	ret = kst_bench_window(ops, c, b, write, 1, 1, &ns, &lat);
	if (ret)
		return ret;
	if (write) {
		ret = kst_bench_cmd(ops, c, KST_MSG_VERIFY, b->len, seed, 0,
				    &bad);
		if (ret == -EBADMSG)
			kst_diag(c->run, "responder: byte %llu of its buffer is wrong",
				 bad);
		else if (ret)
			kst_diag(c->run, "VERIFY of %llu bytes: %pe", b->len,
				 ERR_PTR(ret));
		return ret;
	}
	bad = ops->buf_pattern(c, b, seed, true);
	if (bad != U64_MAX) {
		kst_diag(c->run, "read of %llu bytes: byte %llu is wrong", b->len,
			 bad);
		return -EBADMSG;
	}
	return 0;
}

/*
 * @k operations of @b as case @name, one at a time, then at the most the
 * connection keeps in flight (@qd) if that is more than one.
 */
static int kst_bench_depths(const struct kst_bench_ops *ops,
			    struct kst_bench_conn *c, struct kst_bench_buf *b,
			    bool write, u32 k, u32 qd, const char *name)
{
	s64 ns, lat;
	u32 kq;
	int ret;

	ret = kst_bench_window(ops, c, b, write, 1, k, &ns, &lat);
	if (ret)
		return ret;
	kst_bench_row(c->run, name, 1, b->len, k, ns, lat);
	if (qd <= 1)
		return 0;
	/* At least as many as are to be in flight. */
	kq = max(k, qd);
	ret = kst_bench_window(ops, c, b, write, qd, kq, &ns, &lat);
	if (!ret)
		kst_bench_row(c->run, name, qd, b->len, kq, ns, lat);
	return ret;
}

static enum kst_result kst_bench_rma(struct kst_run *run, bool write)
{
	const struct kst_bench_ops *ops = kst_bench_ops(run);
	const char *kvec_name = write ? "write_kvec" : "read_kvec";
	const char *rw_name = write ? "rw_write" : "rw_read";
	const char *name = str_write_read(write);
	u64 sizes[KST_BENCH_RMA_SIZES];
	struct kst_bench_conn *c;
	struct kst_bench_buf *b;
	unsigned int i, n;
	int ret = 0;
	u32 k;

	n = kst_bench_rma_sizes(run, sizes);
	if (!n) {
		kst_skip(run, "sizes= is below 64 bytes");
		return KST_SKIP;
	}
	c = ops->open(run, sizes[n - 1], SZ_4K, sizes[n - 1]);
	if (IS_ERR(c))
		return KST_FAIL;
	kst_bench_header(run);
	for (i = 0; i < n && !ret; i++) {
		if (sizes[i] > c->peer_len ||
		    (sizes[i] > c->direct && sizes[i] > c->rw_size))
			continue;
		k = kst_bench_iters(run, sizes[i]);
		b = ops->buf_alloc(c, sizes[i], sizes[i] > c->direct, write);
		if (IS_ERR(b)) {
			ret = PTR_ERR(b);
			break;
		}
		ret = kst_bench_once(ops, c, b, write);
		if (ret) {
			ops->buf_free(c, b);
			break;
		}
		if (b->rw) {
			ret = kst_bench_depths(ops, c, b, write, k, c->rw_ctxs,
					       rw_name);
		} else {
			/* The region first, as the baseline; then the kvec. */
			ret = kst_bench_depths(ops, c, b, write, k, c->send_ops,
					       b->mapped ? name : kvec_name);
			if (b->mapped && ops->buf_unmap) {
				ret = ops->buf_unmap(c, b) ?: ret;
				ret = ret ?: kst_bench_depths(ops, c, b, write, k,
							      c->send_ops,
							      kvec_name);
			}
		}
		ops->buf_free(c, b);
	}
	ops->close(c);
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

const struct kst_test kst_bench_cases[] = {
	{ "send", kst_bench_send },
	{ "write", kst_bench_write },
	{ "read", kst_bench_read },
};

const unsigned int kst_nr_bench_cases = ARRAY_SIZE(kst_bench_cases);
