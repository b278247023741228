// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests for the kfabric core, run against the software provider in
 * kt_provider.c.
 */
#include <kunit/test.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <rdma/kfi/rw.h>

#include "../kfi_core.h"
#include "kt_provider.h"

MODULE_IMPORT_NS("EXPORTED_FOR_KUNIT_TESTING");

#define KT_TIMEOUT	(10 * HZ)

/* A completion object that records what it got. */
struct kt_wait {
	struct kfi_cqe cqe;
	struct completion done;
	struct kfi_wc wc;
	int count;
};

static void kt_wait_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct kt_wait *w = container_of(wc->cqe, struct kt_wait, cqe);

	w->wc = *wc;
	w->count++;
	complete(&w->done);
}

static void kt_wait_init(struct kt_wait *w)
{
	w->cqe.done = kt_wait_done;
	init_completion(&w->done);
	w->count = 0;
}

/* Wait for @w; DIRECT queues are polled by the waiter. */
static int kt_wait_for(struct kt_wait *w, struct kfi_cq *cq)
{
	unsigned long end = jiffies + KT_TIMEOUT;

	if (cq && cq->attr.poll_ctx == KFI_POLL_DIRECT) {
		while (!completion_done(&w->done) && time_before(jiffies, end))
			kfi_cq_poll(cq, 16);
	}
	if (!wait_for_completion_timeout(&w->done, KT_TIMEOUT))
		return -ETIMEDOUT;
	return w->wc.status;
}

/* Post @n receives of @msg on @ep, each completing into its own of @w. */
static void kt_post_recvs(struct kunit *test, struct kfi_ep *ep,
			  struct kfi_msg *msg, struct kt_wait *w, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		kt_wait_init(&w[i]);
		msg->cqe = &w[i].cqe;
		KUNIT_ASSERT_EQ(test, kfi_recv(ep, msg, 0), 0);
	}
}

/* Connection events of one endpoint. */
struct kt_cm {
	struct kunit *test;
	struct completion event;
	enum kfi_cm_event_type last;
	int status;
	u8 pdata[KFI_CM_DATA_MAX];
	u32 pdata_len;
	int removals;
	/*
	 * For passive endpoints: how to answer, and the endpoint made; one
	 * whose accept failed is freed by the test, not in the handler (a
	 * listener's handler must not free kfabric objects).
	 */
	struct kfi_ep *accepted;
	struct kfi_ep *refused;
	struct kfi_cq *cq;
	bool reject;
	u32 auth_key;
	struct kt_cm *child;
};

static void kt_cm_handler(void *context, const struct kfi_cm_event *ev)
{
	struct kt_cm *cm = context;

	cm->last = ev->type;
	cm->status = ev->status;
	cm->pdata_len = ev->private_data_len;
	memcpy(cm->pdata, ev->private_data, ev->private_data_len);
	if (ev->type == KFI_CM_DOMAIN_REMOVAL)
		cm->removals++;
	complete(&cm->event);
}

static void kt_cm_init(struct kt_cm *cm, struct kunit *test)
{
	memset(cm, 0, sizeof(*cm));
	cm->test = test;
	init_completion(&cm->event);
}

static void kt_ep_attr(struct kfi_ep_attr *attr, struct kfi_cq *cq,
		       struct kt_cm *cm)
{
	*attr = (struct kfi_ep_attr){
		.type = KFI_EP_MSG, .send_cq = cq, .recv_cq = cq,
		.max_send_ops = 16, .max_recv_ops = 16,
		.max_send_sge = KT_MAX_SGE, .max_recv_sge = KT_MAX_SGE,
		.handler = kt_cm_handler, .context = cm,
	};
}

static void kt_listen_handler(void *context, const struct kfi_cm_event *ev)
{
	struct kt_cm *cm = context;
	struct kfi_ep_attr attr;
	struct kfi_ep *ep;
	static const char reply[] = "welcome";
	static const char no[] = "go away";

	cm->last = ev->type;
	cm->pdata_len = ev->private_data_len;
	memcpy(cm->pdata, ev->private_data, ev->private_data_len);
	if (cm->reject) {
		cm->status = kfi_reject(ev->connreq, no, sizeof(no));
		complete(&cm->event);
		return;
	}
	kt_ep_attr(&attr, cm->cq, cm->child);
	attr.auth_key = cm->auth_key;
	ep = kfi_ep_alloc(ev->connreq->domain, &attr);
	if (IS_ERR(ep)) {
		cm->status = PTR_ERR(ep);
		complete(&cm->event);
		return;
	}
	cm->status = kfi_accept(ep, ev->connreq, reply, sizeof(reply));
	if (cm->status)
		cm->refused = ep;
	else
		cm->accepted = ep;
	complete(&cm->event);
}

/* Two domains with a connected pair of endpoints between them. */
struct kt_pair {
	struct kunit *test;
	struct kt_domain *d0, *d1;
	struct kfi_cq *cq0, *cq1;
	struct kfi_pep *pep;
	struct kfi_ep *client, *server;
	struct kt_cm ccm, scm, lcm;
};

static int kt_addr(struct kfi_addr *a, const char *node, u32 port)
{
	char svc[16];

	snprintf(svc, sizeof(svc), "%u", port);
	return kfi_addr_parse(a, node, svc);
}

static int kt_pair_cqs(struct kt_pair *p, enum kfi_poll_ctx ctx)
{
	struct kfi_cq_attr cqa = { .nr_cqe = 512, .comp_vector = -1, .poll_ctx = ctx };

	p->cq0 = kfi_cq_alloc(&p->d0->dom, &cqa);
	if (IS_ERR(p->cq0))
		return PTR_ERR(p->cq0);
	p->cq1 = kfi_cq_alloc(&p->d1->dom, &cqa);
	if (IS_ERR(p->cq1))
		return PTR_ERR(p->cq1);
	return 0;
}

/* Listen on d1:port, connect from d0; the client's attributes from @cattr. */
static int kt_pair_connect(struct kt_pair *p, u32 port, struct kfi_ep_attr *cattr,
			   const void *pdata, u32 len)
{
	struct kfi_ep_attr attr;
	struct kfi_addr addr;
	int ret;

	bool reject = p->lcm.reject;
	u32 auth_key = p->lcm.auth_key;

	kt_cm_init(&p->ccm, p->test);
	kt_cm_init(&p->scm, p->test);
	kt_cm_init(&p->lcm, p->test);
	p->lcm.reject = reject;
	p->lcm.auth_key = auth_key;
	p->lcm.cq = p->cq1;
	p->lcm.child = &p->scm;
	p->pep = kfi_pep_alloc(&kt_fabric, NULL, kt_listen_handler, &p->lcm);
	if (IS_ERR(p->pep))
		return PTR_ERR(p->pep);
	ret = kt_addr(&addr, "kt1", port);
	if (!ret)
		ret = kfi_listen(p->pep, &addr, 8);
	if (ret)
		return ret;
	if (!cattr) {
		kt_ep_attr(&attr, p->cq0, &p->ccm);
		cattr = &attr;
	}
	cattr->context = &p->ccm;
	p->client = kfi_ep_alloc(&p->d0->dom, cattr);
	if (IS_ERR(p->client))
		return PTR_ERR(p->client);
	ret = kfi_connect(p->client, &addr, pdata, len);
	if (ret)
		return ret;
	if (!wait_for_completion_timeout(&p->ccm.event, KT_TIMEOUT))
		return -ETIMEDOUT;
	p->server = p->lcm.accepted;
	if (p->ccm.last != KFI_CM_CONNECTED)
		return p->ccm.last == KFI_CM_REJECTED ? -ECONNREFUSED : -EHOSTUNREACH;
	if (!wait_for_completion_timeout(&p->scm.event, KT_TIMEOUT))
		return -ETIMEDOUT;
	return p->scm.last == KFI_CM_CONNECTED ? 0 : -EIO;
}

static void kt_pair_free(struct kt_pair *p)
{
	if (!IS_ERR_OR_NULL(p->client))
		kfi_ep_free(p->client);
	if (!IS_ERR_OR_NULL(p->server))
		kfi_ep_free(p->server);
	if (!IS_ERR_OR_NULL(p->pep))
		kfi_pep_free(p->pep);
	/* After kfi_pep_free(): no handler can set it any more. */
	kfi_ep_free(p->lcm.refused);
	p->lcm.refused = NULL;
	if (!IS_ERR_OR_NULL(p->cq0))
		kfi_cq_free(p->cq0);
	if (!IS_ERR_OR_NULL(p->cq1))
		kfi_cq_free(p->cq1);
	p->client = NULL;
	p->server = NULL;
	p->pep = NULL;
	p->cq0 = NULL;
	p->cq1 = NULL;
}

/* Fixture: the kunit fabric with domains kt0 and kt1. */
static int kt_init(struct kunit *test)
{
	struct kt_pair *p;
	int ret;

	p = kunit_kzalloc(test, sizeof(*p), GFP_KERNEL);
	if (!p)
		return -ENOMEM;
	p->test = test;
	ret = kt_register();
	if (ret)
		return ret;
	p->d0 = kt_domain_add("kt0", 0);
	p->d1 = kt_domain_add("kt1", 0);
	if (IS_ERR(p->d0) || IS_ERR(p->d1)) {
		kt_unregister();
		return -ENOMEM;
	}
	test->priv = p;
	return 0;
}

static void kt_exit(struct kunit *test)
{
	struct kt_pair *p = test->priv;

	kt_pair_free(p);
	kt_unregister();
}

static struct kt_pair *kt_connected(struct kunit *test, enum kfi_poll_ctx ctx)
{
	struct kt_pair *p = test->priv;

	KUNIT_ASSERT_EQ(test, kt_pair_cqs(p, ctx), 0);
	KUNIT_ASSERT_EQ(test, kt_pair_connect(p, 1, NULL, NULL, 0), 0);
	return p;
}

/* --- addresses and buffers --- */

/* An IPv4 address without the parser, which needs CONFIG_INET. */
static void kt_inet(struct kfi_addr *a, u32 host, u16 port)
{
	memset(a, 0, sizeof(*a));
	a->format = KFI_ADDR_INET;
	a->sin.sin_family = AF_INET;
	a->sin.sin_addr.s_addr = htonl(host);
	a->sin.sin_port = htons(port);
}

static void kfi_test_addr(struct kunit *test)
{
	struct kfi_addr a, b;
	char buf[80];

	kt_inet(&a, 0xc0000207, 4420);
	kfi_addr_print(buf, sizeof(buf), &a);
	KUNIT_EXPECT_STREQ(test, buf, "192.0.2.7:4420");
	memset(&b, 0, sizeof(b));
	b.format = KFI_ADDR_INET;
	b.sin6.sin6_family = AF_INET6;
	b.sin6.sin6_addr.s6_addr[0] = 0x20;
	b.sin6.sin6_addr.s6_addr[1] = 0x01;
	b.sin6.sin6_addr.s6_addr[15] = 1;
	b.sin6.sin6_port = htons(4420);
	kfi_addr_print(buf, sizeof(buf), &b);
	KUNIT_EXPECT_STREQ(test, buf, "[2001::1]:4420");
	KUNIT_EXPECT_FALSE(test, kfi_addr_equal(&a, &b));

	if (IS_ENABLED(CONFIG_INET)) {
		KUNIT_EXPECT_EQ(test, kfi_addr_parse(&b, "192.0.2.7", "4420"), 0);
		KUNIT_EXPECT_TRUE(test, kfi_addr_equal(&a, &b));
		KUNIT_EXPECT_EQ(test, kfi_addr_parse(&b, "2001::1", "4420"), 0);
		KUNIT_EXPECT_EQ(test, b.sa.sa_family, AF_INET6);
		KUNIT_EXPECT_EQ(test, ntohs(b.sin6.sin6_port), 4420);
		KUNIT_EXPECT_EQ(test, kfi_addr_parse(&a, "192.0.2.7", "65536"), -EINVAL);
	} else {
		/* Without INET no fabric takes IP addresses: they stay names. */
		KUNIT_EXPECT_EQ(test, kfi_addr_parse(&b, "192.0.2.7", "4420"), 0);
		KUNIT_EXPECT_EQ(test, b.format, KFI_ADDR_NAME);
	}

	KUNIT_EXPECT_EQ(test, kfi_addr_parse(&a, "0000:00:04.0", "7"), 0);
	KUNIT_EXPECT_EQ(test, a.format, KFI_ADDR_NAME);
	KUNIT_EXPECT_STREQ(test, a.name.node, "0000:00:04.0");
	KUNIT_EXPECT_EQ(test, a.name.port, 7);
	kfi_addr_print(buf, sizeof(buf), &a);
	KUNIT_EXPECT_STREQ(test, buf, "0000:00:04.0:7");
	KUNIT_EXPECT_EQ(test, kfi_addr_parse(&b, "0000:00:04.0", "7"), 0);
	KUNIT_EXPECT_TRUE(test, kfi_addr_equal(&a, &b));
	b.name.port = 8;
	KUNIT_EXPECT_FALSE(test, kfi_addr_equal(&a, &b));
	KUNIT_EXPECT_EQ(test, kfi_addr_parse(&a, NULL, NULL), 0);
	KUNIT_EXPECT_EQ(test, a.format, KFI_ADDR_NAME);
	KUNIT_EXPECT_STREQ(test, a.name.node, "");

	KUNIT_EXPECT_EQ(test, kfi_addr_parse(&a, "192.0.2.7", "port"), -EINVAL);
	KUNIT_EXPECT_EQ(test, kfi_addr_parse(&a, "x", "-1"), -EINVAL);
	memset(buf, 'n', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = 0;
	KUNIT_EXPECT_EQ(test, kfi_addr_parse(&a, buf, "1"), -EINVAL);
}

static void kfi_test_iov(struct kunit *test)
{
	u8 *a = kunit_kmalloc(test, 300, GFP_KERNEL), *out;
	u8 *b = kunit_kmalloc(test, 5000, GFP_KERNEL);
	struct page *pg = alloc_pages(GFP_KERNEL, 1);
	struct scatterlist sg[3];
	struct kvec kv[2];
	struct bio_vec bv[2], seg;
	struct kfi_iov iov;
	struct kfi_iov_iter it;
	void *vm;
	int i;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_NOT_NULL(test, b);
	KUNIT_ASSERT_NOT_NULL(test, pg);
	out = kunit_kzalloc(test, 9000, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, out);
	for (i = 0; i < 300; i++)
		a[i] = i;
	for (i = 0; i < 5000; i++)
		b[i] = i * 7;

	/* kvec: length, copy out with a skip, bad offsets. */
	kv[0] = (struct kvec){ a, 300 };
	kv[1] = (struct kvec){ b, 5000 };
	kfi_iov_kvec(&iov, kv, 2);
	KUNIT_EXPECT_EQ(test, iov.len, 5300);
	KUNIT_EXPECT_EQ(test, kfi_iov_copy(&iov, 290, out, 20, false), 0);
	KUNIT_EXPECT_EQ(test, memcmp(out, a + 290, 10), 0);
	KUNIT_EXPECT_EQ(test, memcmp(out + 10, b, 10), 0);
	KUNIT_EXPECT_EQ(test, kfi_iov_copy(&iov, 5290, out, 20, false), -EINVAL);
	iov.offset = 10;
	KUNIT_EXPECT_EQ(test, kfi_iov_iter_init(&it, &iov), -EINVAL);
	iov.len = 5290;
	KUNIT_EXPECT_EQ(test, kfi_iov_nsegs(&iov, 0), 2);
	KUNIT_EXPECT_EQ(test, kfi_iov_nsegs(&iov, 1024), 6);

	/* bio_vec spanning two contiguous pages, with an offset. */
	bvec_set_page(&bv[0], pg, PAGE_SIZE + 100, 50);
	memset(page_address(pg), 0x5a, 2 * PAGE_SIZE);
	kfi_iov_bvec(&iov, bv, 1);
	KUNIT_EXPECT_EQ(test, kfi_iov_iter_init(&it, &iov), 0);
	KUNIT_EXPECT_TRUE(test, kfi_iov_iter_next(&it, &seg, 0));
	KUNIT_EXPECT_EQ(test, seg.bv_len, PAGE_SIZE + 100);
	KUNIT_EXPECT_EQ(test, seg.bv_offset, 50);
	KUNIT_EXPECT_FALSE(test, kfi_iov_iter_next(&it, &seg, 0));
	/* With max = PAGE_SIZE, each piece lies within one page. */
	KUNIT_EXPECT_EQ(test, kfi_iov_iter_init(&it, &iov), 0);
	KUNIT_EXPECT_TRUE(test, kfi_iov_iter_next(&it, &seg, PAGE_SIZE));
	KUNIT_EXPECT_EQ(test, seg.bv_offset, 50);
	KUNIT_EXPECT_EQ(test, seg.bv_len, PAGE_SIZE - 50);
	KUNIT_EXPECT_TRUE(test, kfi_iov_iter_next(&it, &seg, PAGE_SIZE));
	KUNIT_EXPECT_PTR_EQ(test, seg.bv_page, pg + 1);
	KUNIT_EXPECT_EQ(test, seg.bv_offset, 0);
	KUNIT_EXPECT_EQ(test, seg.bv_len, 150);
	KUNIT_EXPECT_FALSE(test, kfi_iov_iter_next(&it, &seg, PAGE_SIZE));
	KUNIT_EXPECT_EQ(test, kfi_iov_nsegs(&iov, 1024), 5);
	KUNIT_EXPECT_EQ(test, kfi_iov_copy(&iov, 0, b, 5000, true), -EINVAL);
	KUNIT_EXPECT_EQ(test, kfi_iov_copy(&iov, 10, b, 4000, true), 0);
	KUNIT_EXPECT_EQ(test, memcmp((u8 *)page_address(pg) + 60, b, 4000), 0);

	/* scatterlist: three entries, copy in and out. */
	sg_init_table(sg, 3);
	sg_set_buf(&sg[0], a, 100);
	sg_set_page(&sg[1], pg, 200, 300);
	sg_set_buf(&sg[2], b + 1000, 1000);
	kfi_iov_sg(&iov, sg, 3);
	KUNIT_EXPECT_EQ(test, iov.len, 1300);
	KUNIT_EXPECT_EQ(test, kfi_iov_nsegs(&iov, 0), 3);
	for (i = 0; i < 1300; i++)
		out[i] = i ^ 0x33;
	KUNIT_EXPECT_EQ(test, kfi_iov_copy(&iov, 0, out, 1300, true), 0);
	KUNIT_EXPECT_EQ(test, memcmp(a, out, 100), 0);
	KUNIT_EXPECT_EQ(test, memcmp((u8 *)page_address(pg) + 300, out + 100, 200), 0);
	KUNIT_EXPECT_EQ(test, memcmp(b + 1000, out + 300, 1000), 0);

	/* vmalloc memory is split at page boundaries. */
	vm = vmalloc(3 * PAGE_SIZE);
	KUNIT_ASSERT_NOT_NULL(test, vm);
	kv[0] = (struct kvec){ vm + 100, 2 * PAGE_SIZE };
	kfi_iov_kvec(&iov, kv, 1);
	KUNIT_EXPECT_EQ(test, kfi_iov_nsegs(&iov, 0), 3);
	memset(vm, 0xa5, 3 * PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, kfi_iov_copy(&iov, 0, out, 2 * PAGE_SIZE, false), 0);
	KUNIT_EXPECT_NULL(test, memchr_inv(out, 0xa5, 2 * PAGE_SIZE));
	vfree(vm);

	/* Memory regions cannot be walked without their provider. */
	kfi_iov_mr(&iov, NULL, 0, 10);
	KUNIT_EXPECT_EQ(test, kfi_iov_iter_init(&it, &iov), -EINVAL);
	__free_pages(pg, 1);
}

/* --- registry, clients and discovery --- */

static const struct kfi_provider_ops kt_bad_ops = {
	.cq_create = (void *)1,
};

static void kfi_test_fabric_register(struct kunit *test)
{
	struct kfi_fabric f = kt_fabric;

	f.ops = &kt_bad_ops;
	KUNIT_EXPECT_EQ(test, kfi_fabric_register(&f), -EINVAL);
	f = kt_fabric;
	f.name = "";
	KUNIT_EXPECT_EQ(test, kfi_fabric_register(&f), -EINVAL);
	f = kt_fabric;
	f.ep_size = sizeof(struct kfi_ep) - 1;
	KUNIT_EXPECT_EQ(test, kfi_fabric_register(&f), -EINVAL);
	f = kt_fabric;
	f.addr_format = KFI_ADDR_UNSPEC;
	KUNIT_EXPECT_EQ(test, kfi_fabric_register(&f), -EINVAL);
	f = kt_fabric;
	KUNIT_EXPECT_EQ(test, kfi_fabric_register(&f), -EEXIST);
	KUNIT_EXPECT_EQ(test, kfi_fabric_register(NULL), -EINVAL);
}

static void kfi_test_domain_register(struct kunit *test)
{
	struct kfi_domain *d;
	struct kt_domain *kd;

	/* A duplicate name and inconsistent attributes are refused. */
	kd = kt_domain_add("kt0", 0);
	KUNIT_EXPECT_EQ(test, PTR_ERR_OR_ZERO(kd), -EEXIST);

	d = kfi_domain_alloc(&kt_fabric, NULL);
	KUNIT_ASSERT_NOT_NULL(test, d);
	xa_init_flags(&container_of(d, struct kt_domain, dom)->mrs, XA_FLAGS_ALLOC1);
	strscpy(d->attr.name, "bad", sizeof(d->attr.name));
	d->attr.caps = KFI_CAP_MSG | BIT_ULL(40);
	KUNIT_EXPECT_EQ(test, kfi_domain_register(d), -EINVAL);
	d->attr.caps = KFI_CAP_MSG | KFI_CAP_RMA;
	d->attr.ep_types = BIT(KFI_EP_MSG);
	d->attr.protocol = KFI_PROTO_TEST;
	d->attr.addr_format = KFI_ADDR_NAME;
	d->attr.max_ep = 1;
	d->attr.max_cq = 1;
	d->attr.max_cqe = 1;
	d->attr.max_send_ops = 1;
	d->attr.max_recv_ops = 1;
	d->attr.max_send_sge = 1;
	d->attr.max_recv_sge = 1;
	d->attr.max_msg_size = 1;
	d->attr.num_comp_vectors = 1;
	/* RMA without RMA limits. */
	KUNIT_EXPECT_EQ(test, kfi_domain_register(d), -EINVAL);
	d->attr.max_rma_sge = 1;
	d->attr.max_rma_size = SZ_64K;
	d->attr.max_mr = 1;
	d->attr.max_mr_segs = 16;
	d->attr.max_mr_size = SZ_64K;
	d->attr.mr_key_size = 4;
	d->attr.mr_key_cycle = 256;
	/* Region blocks that are no power of two, or beyond a region. */
	d->attr.max_mr_block = 3 * PAGE_SIZE;
	KUNIT_EXPECT_EQ(test, kfi_domain_register(d), -EINVAL);
	d->attr.max_mr_block = SZ_128K;
	KUNIT_EXPECT_EQ(test, kfi_domain_register(d), -EINVAL);
	d->attr.max_mr_block = PAGE_SIZE;
	/* A key that never changes. */
	d->attr.mr_key_cycle = 1;
	KUNIT_EXPECT_EQ(test, kfi_domain_register(d), -EINVAL);
	d->attr.mr_key_cycle = 256;
	d->attr.caps = KFI_CAP_MSG | KFI_CAP_AUTH_KEY;
	/* An authorization key capability without a key size. */
	KUNIT_EXPECT_EQ(test, kfi_domain_register(d), -EINVAL);
	d->attr.caps = KFI_CAP_MSG;
	d->attr.addr_format = KFI_ADDR_INET;
	KUNIT_EXPECT_EQ(test, kfi_domain_register(d), -EINVAL);
	d->attr.addr_format = KFI_ADDR_NAME;
	/* Reliable datagram endpoints are reserved. */
	d->attr.ep_types = BIT(KFI_EP_MSG) | BIT(KFI_EP_RDM);
	KUNIT_EXPECT_EQ(test, kfi_domain_register(d), -EINVAL);
	d->attr.ep_types = BIT(KFI_EP_MSG);
	KUNIT_EXPECT_EQ(test, kfi_domain_register(d), 0);
	kfi_domain_unregister(d);
}

static void kfi_test_module_refs(struct kunit *test)
{
#if IS_MODULE(CONFIG_KFABRIC_KUNIT_TEST) && IS_ENABLED(CONFIG_MODULE_UNLOAD)
	struct kt_pair *p = test->priv;
	struct kfi_cq_attr cqa = { .nr_cqe = 4, .comp_vector = -1 };
	unsigned int before = module_refcount(THIS_MODULE);
	struct kfi_cq *cq;

	/* Every object a ULP holds pins the provider module. */
	cq = kfi_cq_alloc(&p->d0->dom, &cqa);
	KUNIT_ASSERT_FALSE(test, IS_ERR(cq));
	KUNIT_EXPECT_EQ(test, module_refcount(THIS_MODULE), before + 1);
	kfi_cq_free(cq);
	KUNIT_EXPECT_EQ(test, module_refcount(THIS_MODULE), before);
#else
	kunit_skip(test, "the test provider is not a module");
#endif
}

struct kt_client {
	struct kfi_client client;
	int adds, removes;
	bool decline;
	char last[KFI_NAME_MAX];
};

static struct kt_client *kt_clients;

static int kt_client_add_real(struct kfi_domain *domain)
{
	struct kt_client *c = kt_clients;

	if (domain->fabric != &kt_fabric)
		return -ENODEV;
	if (c->decline && !strcmp(kfi_domain_name(domain), "kt1"))
		return -EPERM;
	c->adds++;
	kfi_set_client_data(domain, &c->client, c);
	return 0;
}

static void kt_client_remove(struct kfi_domain *domain, void *data)
{
	struct kt_client *c = data;

	c->removes++;
	strscpy(c->last, kfi_domain_name(domain), sizeof(c->last));
}

/*
 * Register the kunit client, as kt_clients: the test unregisters it and
 * sets kt_clients back to NULL. With @decline, it declines kt1.
 */
static struct kt_client *kt_client_setup(struct kunit *test, bool decline)
{
	struct kt_client *c = kunit_kzalloc(test, sizeof(*c), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, c);
	kt_clients = c;
	c->client.name = "kunit";
	c->client.add = kt_client_add_real;
	c->client.remove = kt_client_remove;
	c->decline = decline;
	KUNIT_ASSERT_EQ(test, kfi_register_client(&c->client), 0);
	return c;
}

static void kfi_test_clients(struct kunit *test)
{
	struct kt_client *c = kt_client_setup(test, true);
	struct kt_pair *p = test->priv;
	struct kt_domain *kd;

	/* kt0 was added; kt1 declined. */
	KUNIT_EXPECT_EQ(test, c->adds, 1);
	KUNIT_EXPECT_PTR_EQ(test, kfi_get_client_data(&p->d0->dom, &c->client), c);
	KUNIT_EXPECT_NULL(test, kfi_get_client_data(&p->d1->dom, &c->client));

	kd = kt_domain_add("kt2", 0);
	KUNIT_ASSERT_FALSE(test, IS_ERR(kd));
	KUNIT_EXPECT_EQ(test, c->adds, 2);
	kt_domain_remove(kd);
	KUNIT_EXPECT_EQ(test, c->removes, 1);
	KUNIT_EXPECT_STREQ(test, c->last, "kt2");

	/* Unregistering removes from kt0 only: kt1 declined its add(). */
	kfi_unregister_client(&c->client);
	KUNIT_EXPECT_EQ(test, c->removes, 2);
	KUNIT_EXPECT_STREQ(test, c->last, "kt0");
	kt_clients = NULL;
}

static int kt_getinfo_count(struct kunit *test, const struct kfi_hints *h)
{
	struct kfi_info *info;
	LIST_HEAD(infos);
	int ret, n = 0;

	ret = kfi_getinfo(h, &infos);
	if (ret)
		return ret;
	list_for_each_entry(info, &infos, list) {
		KUNIT_EXPECT_PTR_EQ(test, info->fabric, info->domain->fabric);
		if (!h || !h->fabric_name)
			n += info->fabric == &kt_fabric;
		else
			n++;
	}
	kfi_freeinfo(&infos);
	KUNIT_EXPECT_TRUE(test, list_empty(&infos));
	return n;
}

static void kfi_test_getinfo(struct kunit *test)
{
	struct kt_pair *p = test->priv;
	struct kfi_addr inet, name, bad;
	struct kfi_hints h = { .fabric_name = "kunit" };
	struct kt_domain *small;
	LIST_HEAD(infos);
	struct kfi_info *info;

	KUNIT_EXPECT_EQ(test, kt_getinfo_count(test, NULL), 2);
	KUNIT_EXPECT_EQ(test, kt_getinfo_count(test, &h), 2);
	h.caps = KFI_CAP_MSG | KFI_CAP_RMA;
	h.ep_type = KFI_EP_MSG;
	h.protocol = KFI_PROTO_TEST;
	h.min_msg_size = SZ_4K;
	KUNIT_EXPECT_EQ(test, kt_getinfo_count(test, &h), 2);
	h.domain_name = "kt1";
	KUNIT_ASSERT_EQ(test, kfi_getinfo(&h, &infos), 0);
	info = list_first_entry(&infos, struct kfi_info, list);
	KUNIT_EXPECT_PTR_EQ(test, info->domain, &p->d1->dom);
	KUNIT_EXPECT_STREQ(test, info->attr.name, "kt1");
	KUNIT_EXPECT_EQ(test, info->ep_type, KFI_EP_MSG);
	kfi_freeinfo(&infos);

	/* Every hint is a requirement. */
	small = kt_domain_add("kts", KFI_CAP_RMA_IMM);
	KUNIT_ASSERT_FALSE(test, IS_ERR(small));
	h = (struct kfi_hints){ .fabric_name = "kunit", .caps = KFI_CAP_RMA_IMM };
	KUNIT_EXPECT_EQ(test, kt_getinfo_count(test, &h), 2);
	h.domain_name = "kts";
	KUNIT_EXPECT_EQ(test, kfi_getinfo(&h, &infos), -ENODATA);
	kt_domain_remove(small);

#define KT_NODATA(field, value) do {					\
	struct kfi_hints x = { .fabric_name = "kunit" };		\
	x.field = value;						\
	KUNIT_EXPECT_EQ_MSG(test, kfi_getinfo(&x, &infos), -ENODATA, #field); \
	KUNIT_EXPECT_TRUE(test, list_empty(&infos));			\
} while (0)
	KT_NODATA(ep_type, KFI_EP_RDM);
	KT_NODATA(protocol, KFI_PROTO_RDMA_RC);
	KT_NODATA(addr_format, KFI_ADDR_INET);
	KT_NODATA(fabric_name, "nope");
	KT_NODATA(domain_name, "nope");
	KT_NODATA(min_msg_size, SZ_1M);
	KT_NODATA(min_rma_size, SZ_1M);
	KT_NODATA(min_cq_data_size, 8);
	KT_NODATA(min_cm_data, 100);
#undef KT_NODATA

	/* Addresses: the format must match; resolve() picks the domain. */
	kt_inet(&inet, 0xc0000201, 1);
	KUNIT_ASSERT_EQ(test, kfi_addr_parse(&name, "kt0", "1"), 0);
	h = (struct kfi_hints){ .fabric_name = "kunit", .dest_addr = &inet };
	KUNIT_EXPECT_EQ(test, kfi_getinfo(&h, &infos), -ENODATA);
	h.dest_addr = &name;
	KUNIT_ASSERT_EQ(test, kfi_getinfo(&h, &infos), 0);
	info = list_first_entry(&infos, struct kfi_info, list);
	KUNIT_EXPECT_PTR_EQ(test, info->domain, &p->d0->dom);
	KUNIT_EXPECT_TRUE(test, list_is_singular(&infos));
	KUNIT_EXPECT_TRUE(test, kfi_addr_equal(&info->dest_addr, &name));
	kfi_freeinfo(&infos);

	/*
	 * A provider error is reported when no domain succeeds, rather than
	 * the -ENODATA of domains that only do not match.
	 */
	p->d0->resolve_err = -EIO;
	KUNIT_EXPECT_EQ(test, kfi_getinfo(&h, &infos), -EIO);
	p->d1->resolve_err = -ENODATA;
	KUNIT_EXPECT_EQ(test, kfi_getinfo(&h, &infos), -EIO);
	p->d0->resolve_err = 0;
	p->d1->resolve_err = 0;
	KUNIT_EXPECT_EQ(test, kt_getinfo_count(test, &h), 1);

	/* Candidates resolve at the same time, not one after the other. */
	p->d0->resolve_ms = 100;
	p->d1->resolve_ms = 100;
	kt_resolving_max = 0;
	KUNIT_EXPECT_EQ(test, kt_getinfo_count(test, &h), 1);
	KUNIT_EXPECT_EQ(test, kt_resolving_max, 2);
	p->d0->resolve_ms = 0;
	p->d1->resolve_ms = 0;

	/* Invalid hints and arguments. */
	h = (struct kfi_hints){ .caps = BIT_ULL(50) };
	KUNIT_EXPECT_EQ(test, kfi_getinfo(&h, &infos), -EINVAL);
	h = (struct kfi_hints){ .ep_type = 9 };
	KUNIT_EXPECT_EQ(test, kfi_getinfo(&h, &infos), -EINVAL);
	h = (struct kfi_hints){ .addr_format = KFI_ADDR_INET, .dest_addr = &name };
	KUNIT_EXPECT_EQ(test, kfi_getinfo(&h, &infos), -EINVAL);
	h = (struct kfi_hints){ .src_addr = &inet, .dest_addr = &name };
	KUNIT_EXPECT_EQ(test, kfi_getinfo(&h, &infos), -EINVAL);
	bad = inet;
	bad.sa.sa_family = AF_UNIX;
	h = (struct kfi_hints){ .dest_addr = &bad };
	KUNIT_EXPECT_EQ(test, kfi_getinfo(&h, &infos), -EINVAL);
	KUNIT_EXPECT_EQ(test, kfi_getinfo(NULL, NULL), -EINVAL);
	KUNIT_ASSERT_EQ(test, kfi_getinfo(NULL, &infos), 0);
	KUNIT_EXPECT_EQ(test, kfi_getinfo(NULL, &infos), -EINVAL);
	kfi_freeinfo(&infos);
}

/* A private domain is usable, but neither discovery nor clients see it. */
static void kfi_test_domain_private(struct kunit *test)
{
	struct kt_client *c = kt_client_setup(test, false);
	struct kfi_cq_attr cqa = { .nr_cqe = 4, .comp_vector = -1 };
	struct kfi_hints h = { .fabric_name = "kunit" };
	struct kt_domain *kd;
	struct kfi_cq *cq;

	KUNIT_EXPECT_EQ(test, c->adds, 2);
	/* Even under the name of a visible domain. */
	kd = kt_domain_add_private("kt0");
	KUNIT_ASSERT_FALSE(test, IS_ERR(kd));
	KUNIT_EXPECT_EQ(test, kt_getinfo_count(test, &h), 2);
	KUNIT_EXPECT_EQ(test, c->adds, 2);
	KUNIT_EXPECT_NULL(test, kfi_get_client_data(&kd->dom, &c->client));

	cq = kfi_cq_alloc(&kd->dom, &cqa);
	KUNIT_EXPECT_FALSE(test, IS_ERR(cq));
	if (!IS_ERR(cq))
		kfi_cq_free(cq);
	kt_domain_remove(kd);
	KUNIT_EXPECT_EQ(test, c->removes, 0);
	kfi_unregister_client(&c->client);
	KUNIT_EXPECT_EQ(test, c->removes, 2);
	kt_clients = NULL;
}

/* --- object life cycles --- */

static void kfi_test_cq_args(struct kunit *test)
{
	struct kt_pair *p = test->priv;
	struct kfi_domain *d = &p->d0->dom;
	struct kfi_cq_attr a = { .nr_cqe = 8, .comp_vector = -1 };
	struct kfi_cq *cqs[16];
	int i;

	a.nr_cqe = 0;
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_cq_alloc(d, &a)), -EINVAL);
	a.nr_cqe = d->attr.max_cqe + 1;
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_cq_alloc(d, &a)), -EINVAL);
	a.nr_cqe = 8;
	a.comp_vector = d->attr.num_comp_vectors;
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_cq_alloc(d, &a)), -EINVAL);
	a.comp_vector = -2;
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_cq_alloc(d, &a)), -EINVAL);
	a.comp_vector = 1;
	a.poll_ctx = 42;
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_cq_alloc(d, &a)), -EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_cq_alloc(NULL, &a)), -EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_cq_alloc(d, NULL)), -EINVAL);

	/* The domain's queue limit. */
	a.poll_ctx = KFI_POLL_WORKQUEUE;
	for (i = 0; i < d->attr.max_cq; i++) {
		cqs[i] = kfi_cq_alloc(d, &a);
		KUNIT_ASSERT_FALSE(test, IS_ERR(cqs[i]));
	}
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_cq_alloc(d, &a)), -ENOSPC);
	KUNIT_EXPECT_EQ(test, kfi_cq_poll(cqs[0], 4), -EINVAL);
	while (i--)
		kfi_cq_free(cqs[i]);
	kfi_cq_free(NULL);
}

static void kt_count_ep(struct kfi_ep *ep, void *arg)
{
	(*(unsigned int *)arg)++;
}

static unsigned int kt_nr_eps(struct kfi_domain *domain)
{
	unsigned int n = 0;

	kfi_domain_visit_eps(domain, kt_count_ep, &n);
	return n;
}

static void kfi_test_ep_args(struct kunit *test)
{
	struct kt_pair *p = test->priv;
	struct kfi_domain *d = &p->d0->dom;
	struct kfi_cq_attr cqa = { .nr_cqe = 40, .comp_vector = -1 };
	struct kfi_ep_attr a, ok;
	struct kfi_addr src, inet;
	struct kt_cm cm;
	struct kfi_ep *ep;

	KUNIT_ASSERT_EQ(test, kt_pair_cqs(p, KFI_POLL_WORKQUEUE), 0);
	KUNIT_ASSERT_EQ(test, kt_addr(&src, "kt0", 7), 0);
	kt_inet(&inet, 0xc0000201, 7);
	kt_cm_init(&cm, test);
	kt_ep_attr(&ok, p->cq0, &cm);

#define KT_EP_ERR(err, change) do {					\
	a = ok;								\
	change;								\
	KUNIT_EXPECT_EQ_MSG(test, PTR_ERR(kfi_ep_alloc(d, &a)), err, #change); \
} while (0)
	KT_EP_ERR(-EINVAL, a.handler = NULL);
	KT_EP_ERR(-EINVAL, a.send_cq = NULL);
	KT_EP_ERR(-EINVAL, a.recv_cq = p->cq1);
	KT_EP_ERR(-EINVAL, a.max_send_ops = 0);
	KT_EP_ERR(-EINVAL, a.max_recv_ops = d->attr.max_recv_ops + 1);
	KT_EP_ERR(-EINVAL, a.max_send_sge = d->attr.max_send_sge + 1);
	KT_EP_ERR(-EINVAL, a.max_recv_sge = 0);
	KT_EP_ERR(-EINVAL, a.type = KFI_EP_UNSPEC);
	KT_EP_ERR(-EOPNOTSUPP, a.type = KFI_EP_RDM);
	KT_EP_ERR(-EOPNOTSUPP, a.tclass = 2);
	KT_EP_ERR(-EINVAL, a.max_rw_ctxs = 1);
	KT_EP_ERR(-EINVAL, a.max_rw_ctxs = 1; a.max_rw_size = SZ_1M);
	KT_EP_ERR(-EINVAL, a.max_rw_ctxs = 100; a.max_rw_size = SZ_1M; a.max_rw_segs = 256);
	KT_EP_ERR(-EINVAL, a.src_addr = &inet);
#undef KT_EP_ERR
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_ep_alloc(NULL, &ok)), -EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_ep_alloc(d, NULL)), -EINVAL);

	/* Queue depths are reserved in the completion queue. */
	kfi_cq_free(p->cq0);
	p->cq0 = kfi_cq_alloc(d, &cqa);
	KUNIT_ASSERT_FALSE(test, IS_ERR(p->cq0));
	kt_ep_attr(&a, p->cq0, &cm);
	a.tclass = 1;
	ep = kfi_ep_alloc(d, &a);
	KUNIT_ASSERT_FALSE(test, IS_ERR(ep));
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_ep_alloc(d, &a)), -ENOSPC);
	KUNIT_EXPECT_PTR_EQ(test, kfi_ep_domain(ep), d);
	/* A provider walks the core's list of endpoints, which has it. */
	KUNIT_EXPECT_EQ(test, kt_nr_eps(d), 1);
	kfi_ep_free(ep);
	KUNIT_EXPECT_EQ(test, kt_nr_eps(d), 0);
	ep = kfi_ep_alloc(d, &a);
	KUNIT_ASSERT_FALSE(test, IS_ERR(ep));
	KUNIT_EXPECT_PTR_EQ(test, ep->net, &init_net);
	KUNIT_EXPECT_NULL(test, ep->attr.src_addr);
	kfi_ep_free(ep);
	kfi_ep_free(NULL);

	/* The source is the endpoint's own copy, the ULP's may go. */
	a.src_addr = &src;
	ep = kfi_ep_alloc(d, &a);
	KUNIT_ASSERT_FALSE(test, IS_ERR(ep));
	memset(&src, 0, sizeof(src));
	KUNIT_EXPECT_PTR_EQ(test, ep->attr.src_addr, &ep->src_addr);
	KUNIT_EXPECT_STREQ(test, ep->src_addr.name.node, "kt0");
	kfi_ep_free(ep);
}

static void kfi_test_connect(struct kunit *test)
{
	struct kt_pair *p = test->priv;
	static const char hello[] = "hello";
	struct kfi_addr addr, inet;
	u8 big[KFI_CM_DATA_MAX] = {};

	KUNIT_ASSERT_EQ(test, kt_pair_cqs(p, KFI_POLL_WORKQUEUE), 0);
	KUNIT_ASSERT_EQ(test, kt_pair_connect(p, 1, NULL, hello, sizeof(hello)), 0);
	/* Private data both ways. */
	KUNIT_EXPECT_EQ(test, p->lcm.pdata_len, sizeof(hello));
	KUNIT_EXPECT_STREQ(test, (char *)p->lcm.pdata, hello);
	KUNIT_EXPECT_STREQ(test, (char *)p->ccm.pdata, "welcome");
	KUNIT_EXPECT_EQ(test, kfi_connect(p->client, &p->pep->addr, NULL, 0), -EISCONN);

	/* A second listener on the port is refused. */
	KUNIT_ASSERT_EQ(test, kt_addr(&addr, "kt1", 1), 0);
	{
		struct kfi_pep *pep2 = kfi_pep_alloc(&kt_fabric, NULL,
						     kt_listen_handler, &p->lcm);

		KUNIT_ASSERT_FALSE(test, IS_ERR(pep2));
		KUNIT_EXPECT_EQ(test, kfi_listen(pep2, &addr, 1), -EADDRINUSE);
		kt_inet(&inet, 0xc0000201, 1);
		KUNIT_EXPECT_EQ(test, kfi_listen(pep2, &inet, 1), -EINVAL);
		kfi_pep_free(pep2);
	}

	/* Disconnect reaches both sides. */
	reinit_completion(&p->ccm.event);
	reinit_completion(&p->scm.event);
	KUNIT_EXPECT_EQ(test, kfi_disconnect(p->client), 0);
	KUNIT_EXPECT_GT(test, wait_for_completion_timeout(&p->ccm.event, KT_TIMEOUT), 0);
	KUNIT_EXPECT_GT(test, wait_for_completion_timeout(&p->scm.event, KT_TIMEOUT), 0);
	KUNIT_EXPECT_EQ(test, p->ccm.last, KFI_CM_DISCONNECTED);
	KUNIT_EXPECT_EQ(test, p->scm.last, KFI_CM_DISCONNECTED);
	kt_pair_free(p);

	/* Invalid private data and addresses. */
	KUNIT_ASSERT_EQ(test, kt_pair_cqs(p, KFI_POLL_WORKQUEUE), 0);
	{
		struct kfi_ep_attr a;
		struct kfi_ep *ep;

		kt_cm_init(&p->ccm, test);
		kt_ep_attr(&a, p->cq0, &p->ccm);
		ep = kfi_ep_alloc(&p->d0->dom, &a);
		KUNIT_ASSERT_FALSE(test, IS_ERR(ep));
		KUNIT_EXPECT_EQ(test, kfi_connect(ep, &addr, big, sizeof(big)), -EINVAL);
		KUNIT_EXPECT_EQ(test, kfi_connect(ep, &addr, NULL, 4), -EINVAL);
		KUNIT_EXPECT_EQ(test, kfi_connect(ep, &inet, NULL, 0), -EINVAL);
		KUNIT_EXPECT_EQ(test, kfi_connect(ep, NULL, NULL, 0), -EINVAL);
		/* Nobody listens: unreachable. */
		KUNIT_EXPECT_EQ(test, kfi_connect(ep, &addr, NULL, 0), 0);
		KUNIT_EXPECT_GT(test, wait_for_completion_timeout(&p->ccm.event, KT_TIMEOUT), 0);
		KUNIT_EXPECT_EQ(test, p->ccm.last, KFI_CM_UNREACHABLE);
		kfi_ep_free(ep);
	}
}

static void kfi_test_reject(struct kunit *test)
{
	struct kt_pair *p = test->priv;
	struct kfi_ep_attr a;

	KUNIT_ASSERT_EQ(test, kt_pair_cqs(p, KFI_POLL_WORKQUEUE), 0);
	/* Rejected by the handler, with private data. */
	p->lcm.reject = true;
	kt_cm_init(&p->ccm, test);
	kt_ep_attr(&a, p->cq0, &p->ccm);
	KUNIT_EXPECT_EQ(test, kt_pair_connect(p, 2, &a, NULL, 0), -ECONNREFUSED);
	KUNIT_EXPECT_EQ(test, p->ccm.status, -ECONNREFUSED);
	KUNIT_EXPECT_STREQ(test, (char *)p->ccm.pdata, "go away");
	kt_pair_free(p);

	/* Authorization keys must match. */
	p->lcm.reject = false;
	KUNIT_ASSERT_EQ(test, kt_pair_cqs(p, KFI_POLL_WORKQUEUE), 0);
	kt_ep_attr(&a, p->cq0, &p->ccm);
	a.auth_key = 0x1234;
	KUNIT_EXPECT_EQ(test, kt_pair_connect(p, 3, &a, NULL, 0), -ECONNREFUSED);
	KUNIT_EXPECT_EQ(test, p->lcm.status, -EACCES);
	kt_pair_free(p);
	KUNIT_ASSERT_EQ(test, kt_pair_cqs(p, KFI_POLL_WORKQUEUE), 0);
	kt_ep_attr(&a, p->cq0, &p->ccm);
	a.auth_key = 0x1234;
	p->lcm.auth_key = 0x1234;
	KUNIT_EXPECT_EQ(test, kt_pair_connect(p, 4, &a, NULL, 0), 0);
}

/* Removing a domain with live objects and outstanding operations. */
static void kfi_test_domain_removal(struct kunit *test)
{
	struct kt_pair *p = kt_connected(test, KFI_POLL_WORKQUEUE);
	struct kfi_cq_attr cqa = { .nr_cqe = 4, .comp_vector = -1 };
	struct kt_wait w[4];
	struct kvec kv;
	struct kfi_iov iov;
	struct kfi_msg msg = { .iov = &iov, .niov = 1 };
	struct kfi_mr *mr;
	char buf[64];
	int i;

	kv = (struct kvec){ buf, sizeof(buf) };
	kfi_iov_kvec(&iov, &kv, 1);
	kt_post_recvs(test, p->server, &msg, w, ARRAY_SIZE(w));
	mr = kfi_mr_alloc(&p->d1->dom, 4);
	KUNIT_ASSERT_FALSE(test, IS_ERR(mr));
	KUNIT_ASSERT_EQ(test, kfi_mr_map(p->server, mr, &iov,
					 KFI_ACCESS_REMOTE_WRITE, NULL,
					 KFI_UNSIGNALED), 0);

	kt_domain_remove(p->d1);
	/* The ULP heard, and its receives were flushed before it returned. */
	KUNIT_EXPECT_EQ(test, p->scm.removals, 1);
	for (i = 0; i < 4; i++) {
		KUNIT_EXPECT_EQ(test, w[i].count, 1);
		KUNIT_EXPECT_EQ(test, w[i].wc.status, -ECANCELED);
	}
	/* Everything on the removed domain fails cleanly. */
	msg.cqe = &w[0].cqe;
	KUNIT_EXPECT_EQ(test, kfi_send(p->server, &msg, 0), -ENODEV);
	KUNIT_EXPECT_EQ(test, kfi_recv(p->server, &msg, 0), -ENODEV);
	KUNIT_EXPECT_EQ(test, kfi_disconnect(p->server), -ENODEV);
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_cq_alloc(&p->d1->dom, &cqa)), -ENODEV);
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_mr_alloc(&p->d1->dom, 1)), -ENODEV);
	KUNIT_EXPECT_EQ(test, kfi_mr_map(p->server, mr, &iov, 0, NULL,
					 KFI_UNSIGNALED), -ENODEV);
	/* The peer lost its connection. */
	KUNIT_EXPECT_GT(test, wait_for_completion_timeout(&p->ccm.event, KT_TIMEOUT), 0);
	KUNIT_EXPECT_EQ(test, p->ccm.last, KFI_CM_DISCONNECTED);
	/* And the ULP can still free everything. */
	kfi_mr_free(mr);
	kt_pair_free(p);
	p->d1 = kt_domain_add("kt1", 0);
	KUNIT_EXPECT_FALSE(test, IS_ERR(p->d1));
}

/* --- data operations --- */

static void kfi_test_send_recv(struct kunit *test, enum kfi_poll_ctx ctx)
{
	struct kt_pair *p = kt_connected(test, ctx);
	u8 *src = kunit_kmalloc(test, 3 * PAGE_SIZE, GFP_KERNEL);
	u8 *dst = kunit_kzalloc(test, 3 * PAGE_SIZE, GFP_KERNEL);
	struct kt_wait ws, wr;
	struct kvec kv[2];
	struct bio_vec bv;
	struct scatterlist sg[2];
	struct kfi_iov siov, riov[2];
	struct kfi_msg smsg = { .iov = &siov, .niov = 1, .cqe = &ws.cqe };
	struct kfi_msg rmsg = { .iov = riov, .niov = 2, .cqe = &wr.cqe };
	int i;

	KUNIT_ASSERT_NOT_NULL(test, src);
	KUNIT_ASSERT_NOT_NULL(test, dst);
	for (i = 0; i < 3 * PAGE_SIZE; i++)
		src[i] = i * 13 + 1;

	/* kvec send into a receive made of a bio_vec and a scatterlist. */
	bvec_set_virt(&bv, dst, 100);
	kfi_iov_bvec(&riov[0], &bv, 1);
	sg_init_table(sg, 2);
	sg_set_buf(&sg[0], dst + 100, PAGE_SIZE);
	sg_set_buf(&sg[1], dst + 100 + PAGE_SIZE, PAGE_SIZE);
	kfi_iov_sg(&riov[1], sg, 2);
	kt_wait_init(&wr);
	KUNIT_ASSERT_EQ(test, kfi_recv(p->server, &rmsg, 0), 0);

	kv[0] = (struct kvec){ src, 50 };
	kv[1] = (struct kvec){ src + 50, PAGE_SIZE };
	kfi_iov_kvec(&siov, kv, 2);
	kt_wait_init(&ws);
	smsg.imm_data = 0xfeed;
	KUNIT_ASSERT_EQ(test, kfi_send(p->client, &smsg, KFI_IMM), 0);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&ws, p->cq0), 0);
	KUNIT_EXPECT_EQ(test, ws.wc.opcode, KFI_WC_SEND);
	KUNIT_EXPECT_PTR_EQ(test, ws.wc.ep, p->client);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&wr, p->cq1), 0);
	KUNIT_EXPECT_EQ(test, wr.wc.opcode, KFI_WC_RECV);
	KUNIT_EXPECT_EQ(test, wr.wc.byte_len, 50 + PAGE_SIZE);
	KUNIT_EXPECT_TRUE(test, wr.wc.flags & KFI_WC_IMM);
	KUNIT_EXPECT_EQ(test, wr.wc.imm_data, 0xfeed);
	KUNIT_EXPECT_EQ(test, memcmp(dst, src, 50 + PAGE_SIZE), 0);

	/* A message larger than the receive fails the sender. */
	kfi_iov_kvec(&riov[0], kv, 1);
	rmsg.niov = 1;
	kt_wait_init(&wr);
	KUNIT_ASSERT_EQ(test, kfi_recv(p->server, &rmsg, 0), 0);
	kt_wait_init(&ws);
	KUNIT_ASSERT_EQ(test, kfi_send(p->client, &smsg, 0), 0);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&ws, p->cq0), -EMSGSIZE);
	/* The endpoint is broken now: later operations are flushed. */
	kt_wait_init(&ws);
	KUNIT_ASSERT_EQ(test, kfi_send(p->client, &smsg, 0), 0);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&ws, p->cq0), -ECANCELED);
	/* Flush the receive still posted while its waiter is in scope. */
	kt_pair_free(p);
}

static void kfi_test_send_recv_softirq(struct kunit *test)
{
	kfi_test_send_recv(test, KFI_POLL_SOFTIRQ);
}

static void kfi_test_send_recv_workqueue(struct kunit *test)
{
	kfi_test_send_recv(test, KFI_POLL_WORKQUEUE);
}

static void kfi_test_send_recv_unbound(struct kunit *test)
{
	kfi_test_send_recv(test, KFI_POLL_UNBOUND_WORKQUEUE);
}

static void kfi_test_send_recv_direct(struct kunit *test)
{
	struct kt_pair *p;
	struct kt_wait w;
	struct kfi_msg msg = { .cqe = &w.cqe };

	kfi_test_send_recv(test, KFI_POLL_DIRECT);
	/* Nothing runs on a direct queue until it is polled. */
	p = kt_connected(test, KFI_POLL_DIRECT);
	kt_wait_init(&w);
	KUNIT_ASSERT_EQ(test, kfi_recv(p->server, &msg, 0), 0);
	KUNIT_ASSERT_EQ(test, kfi_send(p->client, &msg, 0), 0);
	msleep(20);
	KUNIT_EXPECT_EQ(test, w.count, 0);
	KUNIT_EXPECT_EQ(test, kfi_cq_poll(p->cq0, 0), 0);
	KUNIT_EXPECT_EQ(test, kfi_cq_poll(p->cq0, -1), -EINVAL);
	KUNIT_EXPECT_EQ(test, kfi_cq_poll(p->cq0, 8), 1);
	KUNIT_EXPECT_EQ(test, w.count, 1);
	KUNIT_EXPECT_EQ(test, w.wc.opcode, KFI_WC_SEND);
	KUNIT_EXPECT_EQ(test, kfi_cq_poll(p->cq1, 8), 1);
	KUNIT_EXPECT_EQ(test, w.count, 2);
	KUNIT_EXPECT_EQ(test, w.wc.opcode, KFI_WC_RECV);
	KUNIT_EXPECT_EQ(test, kfi_cq_poll(p->cq1, 8), 0);
	kt_pair_free(p);
}

static void kfi_test_data_args(struct kunit *test)
{
	struct kt_pair *p = kt_connected(test, KFI_POLL_WORKQUEUE);
	struct kt_domain *noimm, *orig;
	struct kt_wait w;
	char buf[16];
	struct kvec kv = { buf, sizeof(buf) };
	struct kfi_iov iov, big[KT_MAX_SGE + 1];
	struct kfi_msg msg = { .iov = &iov, .niov = 1, .cqe = &w.cqe };
	struct kfi_rma_iov rma = { .len = sizeof(buf) };
	struct kfi_mr *mr;
	int i;

	kt_wait_init(&w);
	kfi_iov_kvec(&iov, &kv, 1);
	KUNIT_EXPECT_EQ(test, kfi_send(NULL, &msg, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, kfi_send(p->client, NULL, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, kfi_send(p->client, &msg, BIT(20)), -EINVAL);
	KUNIT_EXPECT_EQ(test, kfi_recv(p->client, &msg, KFI_IMM), -EINVAL);
	KUNIT_EXPECT_EQ(test, kfi_recv(p->client, &msg, KFI_UNSIGNALED), -EINVAL);
	msg.cqe = NULL;
	KUNIT_EXPECT_EQ(test, kfi_send(p->client, &msg, 0), -EINVAL);
	msg.cqe = &w.cqe;
	msg.iov = NULL;
	KUNIT_EXPECT_EQ(test, kfi_send(p->client, &msg, 0), -EINVAL);
	for (i = 0; i < ARRAY_SIZE(big); i++)
		big[i] = iov;
	msg.iov = big;
	msg.niov = ARRAY_SIZE(big);
	KUNIT_EXPECT_EQ(test, kfi_send(p->client, &msg, 0), -EINVAL);
	msg.niov = 1;
	big[0].type = 17;
	KUNIT_EXPECT_EQ(test, kfi_send(p->client, &msg, 0), -EINVAL);
	/* A buffer whose offset and length do not fit its entries. */
	big[0] = iov;
	big[0].len = sizeof(buf) + 1;
	KUNIT_EXPECT_EQ(test, kfi_send(p->client, &msg, 0), -EINVAL);
	msg.iov = &iov;

	KUNIT_EXPECT_EQ(test, kfi_write(p->client, &msg, NULL, 0), -EINVAL);
	rma.len = 1;
	KUNIT_EXPECT_EQ(test, kfi_write(p->client, &msg, &rma, 0), -EINVAL);
	rma.len = sizeof(buf);
	KUNIT_EXPECT_EQ(test, kfi_read(p->client, &msg, &rma, KFI_IMM), -EINVAL);

	/* Memory regions. */
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_mr_alloc(&p->d0->dom, 0)), -EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(kfi_mr_alloc(&p->d0->dom, 2000)), -EINVAL);
	mr = kfi_mr_alloc(&p->d0->dom, 1);
	KUNIT_ASSERT_FALSE(test, IS_ERR(mr));
	KUNIT_EXPECT_EQ(test, kfi_mr_map(p->client, mr, &iov, BIT(7), &w.cqe, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, kfi_mr_map(p->client, mr, NULL, 0, &w.cqe, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, kfi_mr_map(p->client, mr, &iov, 0, NULL, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, kfi_mr_map(p->server, mr, &iov, 0, &w.cqe, 0), -EINVAL);
	{
		struct kfi_iov miov;

		kfi_iov_mr(&miov, mr, 0, 4);
		KUNIT_EXPECT_EQ(test, kfi_mr_map(p->client, mr, &miov, 0, &w.cqe, 0),
				-EINVAL);
		/* An unmapped region cannot be used as a local buffer. */
		msg.iov = &miov;
		KUNIT_EXPECT_EQ(test, kfi_send(p->client, &msg, 0), -EINVAL);
		msg.iov = &iov;
	}
	KUNIT_EXPECT_EQ(test, kfi_mr_map(p->client, mr, &iov, 0, NULL, KFI_UNSIGNALED), 0);
	KUNIT_EXPECT_EQ(test, kfi_mr_map(p->client, mr, &iov, 0, NULL, KFI_UNSIGNALED), -EBUSY);
	KUNIT_EXPECT_EQ(test, kfi_mr_invalidate(p->client, mr, NULL, 0), -EINVAL);
	kfi_mr_free(mr);

	/* Flags need the capability they stand for. */
	noimm = kt_domain_add("kt9", KFI_CAP_RMA_IMM | KFI_CAP_REMOTE_INV);
	KUNIT_ASSERT_FALSE(test, IS_ERR(noimm));
	kt_pair_free(p);
	orig = p->d0;
	p->d0 = noimm;
	KUNIT_ASSERT_EQ(test, kt_pair_cqs(p, KFI_POLL_WORKQUEUE), 0);
	KUNIT_ASSERT_EQ(test, kt_pair_connect(p, 5, NULL, NULL, 0), 0);
	KUNIT_EXPECT_EQ(test, kfi_send(p->client, &msg, KFI_IMM), -EOPNOTSUPP);
	KUNIT_EXPECT_EQ(test, kfi_send(p->client, &msg, KFI_SEND_INV), -EOPNOTSUPP);
	KUNIT_EXPECT_EQ(test, kfi_write(p->client, &msg, &rma, KFI_IMM), -EOPNOTSUPP);
	kt_pair_free(p);
	kt_domain_remove(noimm);
	p->d0 = orig;
}

/* RMA, immediate data, keys and their checks. */
static void kfi_test_rma(struct kunit *test)
{
	struct kt_pair *p = kt_connected(test, KFI_POLL_SOFTIRQ);
	u8 *target = kunit_kzalloc(test, SZ_8K, GFP_KERNEL);
	u8 *local = kunit_kmalloc(test, SZ_8K, GFP_KERNEL);
	struct kvec tkv = { target, SZ_8K }, lkv = { local, SZ_4K };
	struct kfi_iov tiov, liov;
	struct kfi_msg msg = { .iov = &liov, .niov = 1 };
	struct kfi_msg rmsg = { .niov = 0 };
	struct kfi_rma_iov rma;
	struct kt_wait w, wr;
	struct kfi_mr *mr;
	u64 key;
	int i;

	KUNIT_ASSERT_NOT_NULL(test, target);
	KUNIT_ASSERT_NOT_NULL(test, local);
	for (i = 0; i < SZ_8K; i++)
		local[i] = i * 3;
	kfi_iov_kvec(&tiov, &tkv, 1);
	kfi_iov_kvec(&liov, &lkv, 1);
	mr = kfi_mr_alloc(&p->d1->dom, 4);
	KUNIT_ASSERT_FALSE(test, IS_ERR(mr));
	kt_wait_init(&w);
	KUNIT_ASSERT_EQ(test, kfi_mr_map(p->server, mr, &tiov,
					 KFI_ACCESS_REMOTE_WRITE, &w.cqe, 0), 0);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&w, p->cq1), 0);
	KUNIT_EXPECT_EQ(test, w.wc.opcode, KFI_WC_MR_MAP);
	KUNIT_EXPECT_EQ(test, mr->length, SZ_8K);

	/* Write with immediate data into the middle of the region. */
	rma = (struct kfi_rma_iov){ .addr = mr->addr + 100, .len = SZ_4K, .key = mr->key };
	kt_wait_init(&wr);
	rmsg.cqe = &wr.cqe;
	KUNIT_ASSERT_EQ(test, kfi_recv(p->server, &rmsg, 0), 0);
	kt_wait_init(&w);
	msg.cqe = &w.cqe;
	msg.imm_data = 77;
	KUNIT_ASSERT_EQ(test, kfi_write(p->client, &msg, &rma, KFI_IMM), 0);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&w, p->cq0), 0);
	KUNIT_EXPECT_EQ(test, w.wc.opcode, KFI_WC_WRITE);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&wr, p->cq1), 0);
	KUNIT_EXPECT_EQ(test, wr.wc.flags, KFI_WC_IMM | KFI_WC_RDMA_WRITE);
	KUNIT_EXPECT_EQ(test, wr.wc.imm_data, 77);
	KUNIT_EXPECT_EQ(test, wr.wc.byte_len, SZ_4K);
	KUNIT_EXPECT_EQ(test, memcmp(target + 100, local, SZ_4K), 0);
	KUNIT_EXPECT_NULL(test, memchr_inv(target, 0, 100));

	/* The region grants no read access. */
	kt_wait_init(&w);
	KUNIT_ASSERT_EQ(test, kfi_read(p->client, &msg, &rma, 0), 0);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&w, p->cq0), -EACCES);
	kt_pair_free(p);

	/* Out of bounds, wrong key, stale key: each refused. */
	kt_connected(test, KFI_POLL_SOFTIRQ);
	KUNIT_ASSERT_EQ(test, kfi_mr_invalidate(p->server, mr, NULL, KFI_UNSIGNALED), 0);
	KUNIT_ASSERT_EQ(test, kfi_mr_map(p->server, mr, &tiov, KFI_ACCESS_REMOTE_READ |
					 KFI_ACCESS_REMOTE_WRITE, NULL, KFI_UNSIGNALED), 0);
	key = mr->key;
	{
		struct kfi_rma_iov bad[] = {
			{ .addr = mr->addr + SZ_8K - SZ_4K + 1, .len = SZ_4K, .key = key },
			{ .addr = mr->addr - 1, .len = SZ_4K, .key = key },
			{ .addr = U64_MAX - 10, .len = SZ_4K, .key = key },
			{ .addr = mr->addr, .len = SZ_4K, .key = key ^ 0x100 },
			{ .addr = mr->addr, .len = SZ_4K, .key = key - 1 },
		};

		for (i = 0; i < ARRAY_SIZE(bad); i++) {
			kt_wait_init(&w);
			KUNIT_ASSERT_EQ(test, kfi_read(p->client, &msg, &bad[i], 0), 0);
			KUNIT_EXPECT_EQ_MSG(test, kt_wait_for(&w, p->cq0), -EACCES, "case %d", i);
			kt_pair_free(p);
			kt_connected(test, KFI_POLL_SOFTIRQ);
		}
	}
	/* A valid read, then the peer invalidates the key with a send. */
	memset(local, 0, SZ_4K);
	rma = (struct kfi_rma_iov){ .addr = mr->addr + SZ_4K, .len = SZ_4K, .key = key };
	kt_wait_init(&w);
	KUNIT_ASSERT_EQ(test, kfi_read(p->client, &msg, &rma, 0), 0);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&w, p->cq0), 0);
	KUNIT_EXPECT_EQ(test, memcmp(local, target + SZ_4K, SZ_4K), 0);

	kt_wait_init(&wr);
	KUNIT_ASSERT_EQ(test, kfi_recv(p->server, &rmsg, 0), 0);
	kt_wait_init(&w);
	rmsg.cqe = &w.cqe;
	rmsg.inv_key = key;
	KUNIT_ASSERT_EQ(test, kfi_send(p->client, &rmsg, KFI_SEND_INV), 0);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&w, p->cq0), 0);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&wr, p->cq1), 0);
	KUNIT_EXPECT_TRUE(test, wr.wc.flags & KFI_WC_INV);
	KUNIT_EXPECT_EQ(test, wr.wc.inv_key, key);
	kt_wait_init(&w);
	KUNIT_ASSERT_EQ(test, kfi_read(p->client, &msg, &rma, 0), 0);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&w, p->cq0), -EACCES);
	kt_pair_free(p);

	/* A new mapping gets a new key; the old one stays dead. */
	kt_connected(test, KFI_POLL_SOFTIRQ);
	KUNIT_ASSERT_EQ(test, kfi_mr_map(p->server, mr, &tiov, KFI_ACCESS_REMOTE_READ,
					 NULL, KFI_UNSIGNALED), 0);
	KUNIT_EXPECT_NE(test, mr->key, key);
	kt_wait_init(&w);
	KUNIT_ASSERT_EQ(test, kfi_read(p->client, &msg, &rma, 0), 0);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&w, p->cq0), -EACCES);
	kt_pair_free(p);
	kfi_mr_free(mr);
}

static void kfi_test_mr_check(struct kunit *test)
{
	struct kfi_mr mr = { .key = 0x105, .addr = 1000, .length = 100,
			     .access = KFI_ACCESS_REMOTE_READ };
	u64 off = 0;

	KUNIT_EXPECT_EQ(test, kfi_mr_check(&mr, 0x105, 1000, 100,
					   KFI_ACCESS_REMOTE_READ, &off), 0);
	KUNIT_EXPECT_EQ(test, off, 0);
	KUNIT_EXPECT_EQ(test, kfi_mr_check(&mr, 0x105, 1099, 1,
					   KFI_ACCESS_REMOTE_READ, &off), 0);
	KUNIT_EXPECT_EQ(test, off, 99);
	KUNIT_EXPECT_EQ(test, kfi_mr_check(&mr, 0x105, 1100, 0,
					   KFI_ACCESS_REMOTE_READ, &off), 0);
	KUNIT_EXPECT_EQ(test, kfi_mr_check(&mr, 0x105, 1099, 2,
					   KFI_ACCESS_REMOTE_READ, &off), -EACCES);
	KUNIT_EXPECT_EQ(test, kfi_mr_check(&mr, 0x105, 999, 1,
					   KFI_ACCESS_REMOTE_READ, &off), -EACCES);
	KUNIT_EXPECT_EQ(test, kfi_mr_check(&mr, 0x105, 1050, U64_MAX,
					   KFI_ACCESS_REMOTE_READ, &off), -EACCES);
	KUNIT_EXPECT_EQ(test, kfi_mr_check(&mr, 0x105, U64_MAX, 2,
					   KFI_ACCESS_REMOTE_READ, &off), -EACCES);
	KUNIT_EXPECT_EQ(test, kfi_mr_check(&mr, 0x105, 1000, 1,
					   KFI_ACCESS_REMOTE_WRITE, &off), -EACCES);
	KUNIT_EXPECT_EQ(test, kfi_mr_check(&mr, 0x105, 1000, 1, 0, &off), -EACCES);
	KUNIT_EXPECT_EQ(test, kfi_mr_check(&mr, 0x104, 1000, 1,
					   KFI_ACCESS_REMOTE_READ, &off), -EACCES);
	KUNIT_EXPECT_EQ(test, kfi_mr_check(NULL, 0x105, 1000, 1,
					   KFI_ACCESS_REMOTE_READ, &off), -EACCES);
	mr.length = 0;
	KUNIT_EXPECT_EQ(test, kfi_mr_check(&mr, 0x105, 1000, 0,
					   KFI_ACCESS_REMOTE_READ, &off), -EACCES);
}

/* Outstanding receives of both kinds are flushed by a drain. */
static void kfi_test_drain(struct kunit *test)
{
	struct kt_pair *p = kt_connected(test, KFI_POLL_WORKQUEUE);
	struct kt_wait w[8], ws;
	struct kfi_msg msg = { .niov = 0 };
	int i;

	kt_post_recvs(test, p->server, &msg, w, ARRAY_SIZE(w));
	kfi_ep_drain(p->server);
	for (i = 0; i < ARRAY_SIZE(w); i++) {
		KUNIT_EXPECT_EQ(test, w[i].count, 1);
		KUNIT_EXPECT_EQ(test, w[i].wc.status, -ECANCELED);
	}
	/* Posting after the drain fails at once, never silently. */
	kt_wait_init(&ws);
	msg.cqe = &ws.cqe;
	KUNIT_EXPECT_EQ(test, kfi_send(p->server, &msg, 0), -ENOTCONN);
	KUNIT_EXPECT_EQ(test, kfi_recv(p->server, &msg, 0), -ENOTCONN);
	kfi_ep_drain(p->server);
	KUNIT_EXPECT_EQ(test, ws.count, 0);
	kt_pair_free(p);
}

/* --- the read/write helper --- */

struct kt_rw {
	struct kt_pair *p;
	struct kfi_mr *mr;
	u8 *target;
	struct kvec tkv;
	struct kfi_iov tiov;
};

static void kt_rw_setup(struct kunit *test, struct kt_rw *rw, size_t size)
{
	struct kt_pair *p = test->priv;
	struct kfi_ep_attr a;

	KUNIT_ASSERT_EQ(test, kt_pair_cqs(p, KFI_POLL_WORKQUEUE), 0);
	kt_cm_init(&p->ccm, test);
	kt_ep_attr(&a, p->cq0, &p->ccm);
	a.max_rw_ctxs = 1;
	a.max_rw_size = SZ_1M;
	a.max_rw_segs = 256;
	KUNIT_ASSERT_EQ(test, kt_pair_connect(p, 6, &a, NULL, 0), 0);
	rw->p = p;
	rw->target = vzalloc(size);
	KUNIT_ASSERT_NOT_NULL(test, rw->target);
	rw->tkv = (struct kvec){ rw->target, size };
	kfi_iov_kvec(&rw->tiov, &rw->tkv, 1);
	rw->mr = kfi_mr_alloc(&p->d1->dom, size / PAGE_SIZE + 1);
	KUNIT_ASSERT_FALSE(test, IS_ERR(rw->mr));
	KUNIT_ASSERT_EQ(test, kfi_mr_map(p->server, rw->mr, &rw->tiov,
					 KFI_ACCESS_REMOTE_READ | KFI_ACCESS_REMOTE_WRITE,
					 NULL, KFI_UNSIGNALED), 0);
}

static void kt_rw_teardown(struct kt_rw *rw)
{
	kfi_mr_free(rw->mr);
	vfree(rw->target);
}

/* Many page segments: split by segment count and operation size. */
static void kfi_test_rw_split(struct kunit *test)
{
	struct kt_rw rw;
	struct kt_domain *d0;
	const int npages = 64;
	struct page **pages = kunit_kcalloc(test, npages, sizeof(*pages), GFP_KERNEL);
	struct bio_vec *bv = kunit_kcalloc(test, npages, sizeof(*bv), GFP_KERNEL);
	struct kfi_rw_ctx ctx;
	struct kfi_rma_iov rma;
	struct kfi_iov local;
	struct kt_wait w;
	int i, n;

	KUNIT_ASSERT_NOT_NULL(test, pages);
	KUNIT_ASSERT_NOT_NULL(test, bv);
	kt_rw_setup(test, &rw, npages * PAGE_SIZE);
	d0 = rw.p->d0;
	for (i = 0; i < npages; i++) {
		pages[i] = alloc_page(GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, pages[i]);
		memset(page_address(pages[i]), i + 1, PAGE_SIZE);
		bvec_set_page(&bv[i], pages[i], PAGE_SIZE, 0);
	}
	/* Start 100 bytes in and end 100 bytes early. */
	kfi_iov_bvec(&local, bv, npages);
	local.offset = 100;
	local.len -= 200;
	rma = (struct kfi_rma_iov){ .addr = rw.mr->addr + 100, .len = local.len,
				    .key = rw.mr->key };
	n = kfi_rw_ctx_init(&ctx, rw.p->client, &local, &rma, DMA_TO_DEVICE);
	KUNIT_ASSERT_GT(test, n, 0);
	KUNIT_EXPECT_LE(test, n, kfi_rw_max_ops(rw.p->client, local.len, npages));
	/* 64 pages, at most 4 segments of at most 16K per operation. */
	KUNIT_EXPECT_EQ(test, n, 16);
	d0->ops_seen = 0;
	d0->max_segs_seen = 0;
	d0->max_len_seen = 0;
	kt_wait_init(&w);
	KUNIT_ASSERT_EQ(test, kfi_rw_ctx_post(&ctx, &w.cqe, NULL, 0), 0);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&w, rw.p->cq0), 0);
	KUNIT_EXPECT_EQ(test, w.count, 1);
	KUNIT_EXPECT_EQ(test, d0->ops_seen, n);
	KUNIT_EXPECT_LE(test, d0->max_segs_seen, KT_MAX_SGE);
	KUNIT_EXPECT_LE(test, d0->max_len_seen, SZ_16K);
	kfi_rw_ctx_destroy(&ctx);
	for (i = 0; i < npages; i++) {
		u8 *t = rw.target + i * PAGE_SIZE;
		u32 from = i ? 0 : 100, to = i == npages - 1 ? PAGE_SIZE - 100 : PAGE_SIZE;

		KUNIT_EXPECT_NULL_MSG(test, memchr_inv(t + from, i + 1, to - from), "page %d", i);
	}
	KUNIT_EXPECT_NULL(test, memchr_inv(rw.target, 0, 100));

	/* Read it all back into a scatterlist of the same pages. */
	for (i = 0; i < npages; i++)
		memset(page_address(pages[i]), 0, PAGE_SIZE);
	{
		struct scatterlist *sg = kunit_kcalloc(test, npages, sizeof(*sg), GFP_KERNEL);

		KUNIT_ASSERT_NOT_NULL(test, sg);
		sg_init_table(sg, npages);
		for (i = 0; i < npages; i++)
			sg_set_page(&sg[i], pages[i], PAGE_SIZE, 0);
		kfi_iov_sg(&local, sg, npages);
		rma = (struct kfi_rma_iov){ .addr = rw.mr->addr, .len = local.len,
					    .key = rw.mr->key };
		n = kfi_rw_ctx_init(&ctx, rw.p->client, &local, &rma, DMA_FROM_DEVICE);
		KUNIT_EXPECT_EQ(test, n, 16);
		kt_wait_init(&w);
		KUNIT_ASSERT_EQ(test, kfi_rw_ctx_post(&ctx, &w.cqe, NULL, 0), 0);
		KUNIT_EXPECT_EQ(test, kt_wait_for(&w, rw.p->cq0), 0);
		kfi_rw_ctx_destroy(&ctx);
		for (i = 0; i < npages; i++)
			KUNIT_EXPECT_EQ(test, memcmp(page_address(pages[i]),
						     rw.target + i * PAGE_SIZE, PAGE_SIZE), 0);
	}
	for (i = 0; i < npages; i++)
		__free_page(pages[i]);
	kt_rw_teardown(&rw);
}

/* One large segment is split by size; a chained send follows the data. */
static void kfi_test_rw_large_chain(struct kunit *test)
{
	struct kt_rw rw;
	struct page *pg = alloc_pages(GFP_KERNEL, 5);
	struct kfi_rw_ctx ctx;
	struct kfi_rma_iov rma;
	struct kfi_iov local;
	struct kfi_msg chain = { .niov = 0 };
	struct kt_wait ws, wr;
	struct kfi_msg rmsg = { .niov = 0, .cqe = &wr.cqe };
	struct bio_vec bv;

	KUNIT_ASSERT_NOT_NULL(test, pg);
	kt_rw_setup(test, &rw, SZ_128K);
	get_random_bytes(page_address(pg), SZ_128K);
	bvec_set_page(&bv, pg, SZ_128K, 0);
	kfi_iov_bvec(&local, &bv, 1);
	rma = (struct kfi_rma_iov){ .addr = rw.mr->addr, .len = SZ_128K, .key = rw.mr->key };
	KUNIT_ASSERT_EQ(test, kfi_rw_ctx_init(&ctx, rw.p->client, &local, &rma,
					      DMA_TO_DEVICE), 8);
	kt_wait_init(&wr);
	KUNIT_ASSERT_EQ(test, kfi_recv(rw.p->server, &rmsg, 0), 0);
	kt_wait_init(&ws);
	chain.cqe = &ws.cqe;
	KUNIT_EXPECT_EQ(test, kfi_rw_ctx_post(&ctx, &ws.cqe, &chain, 0), -EINVAL);
	KUNIT_ASSERT_EQ(test, kfi_rw_ctx_post(&ctx, NULL, &chain, 0), 0);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&ws, rw.p->cq0), 0);
	KUNIT_EXPECT_EQ(test, ws.wc.opcode, KFI_WC_SEND);
	KUNIT_EXPECT_EQ(test, ws.count, 1);
	/* The message arrived after the data. */
	KUNIT_EXPECT_EQ(test, kt_wait_for(&wr, rw.p->cq1), 0);
	KUNIT_EXPECT_EQ(test, memcmp(rw.target, page_address(pg), SZ_128K), 0);
	kfi_rw_ctx_destroy(&ctx);

	/* A failing operation in the chain fails the chained send too. */
	rma.key ^= 0x100;
	KUNIT_ASSERT_EQ(test, kfi_rw_ctx_init(&ctx, rw.p->client, &local, &rma,
					      DMA_TO_DEVICE), 8);
	kt_wait_init(&ws);
	KUNIT_ASSERT_EQ(test, kfi_rw_ctx_post(&ctx, NULL, &chain, 0), 0);
	KUNIT_EXPECT_EQ(test, kt_wait_for(&ws, rw.p->cq0), -ECANCELED);
	kfi_rw_ctx_destroy(&ctx);
	__free_pages(pg, 5);
	kt_rw_teardown(&rw);
}

static void kfi_test_rw_args(struct kunit *test)
{
	struct kt_rw rw;
	struct kfi_rw_ctx ctx;
	struct kfi_rma_iov rma;
	struct kfi_iov local;
	char buf[64];
	struct kvec kv = { buf, sizeof(buf) };
	struct bio_vec bv;

	kt_rw_setup(test, &rw, SZ_4K);
	bvec_set_virt(&bv, buf, sizeof(buf));
	kfi_iov_bvec(&local, &bv, 1);
	rma = (struct kfi_rma_iov){ .addr = rw.mr->addr, .len = sizeof(buf), .key = rw.mr->key };
	KUNIT_EXPECT_EQ(test, kfi_rw_ctx_init(&ctx, rw.p->client, &local, &rma,
					      DMA_BIDIRECTIONAL), -EINVAL);
	KUNIT_EXPECT_EQ(test, kfi_rw_ctx_init(NULL, rw.p->client, &local, &rma,
					      DMA_TO_DEVICE), -EINVAL);
	rma.len--;
	KUNIT_EXPECT_EQ(test, kfi_rw_ctx_init(&ctx, rw.p->client, &local, &rma,
					      DMA_TO_DEVICE), -EINVAL);
	rma.len++;
	kfi_iov_kvec(&local, &kv, 1);
	KUNIT_EXPECT_EQ(test, kfi_rw_ctx_init(&ctx, rw.p->client, &local, &rma,
					      DMA_TO_DEVICE), -EINVAL);
	kfi_iov_bvec(&local, &bv, 1);
	local.offset = 8;
	KUNIT_EXPECT_EQ(test, kfi_rw_ctx_init(&ctx, rw.p->client, &local, &rma,
					      DMA_TO_DEVICE), -EINVAL);
	local.offset = 0;
	/* An endpoint without helper contexts. */
	KUNIT_EXPECT_EQ(test, kfi_rw_ctx_init(&ctx, rw.p->server, &local, &rma,
					      DMA_TO_DEVICE), -EOPNOTSUPP);
	KUNIT_EXPECT_EQ(test, kfi_rw_ctx_init(&ctx, rw.p->client, &local, &rma,
					      DMA_TO_DEVICE), 1);
	kfi_rw_ctx_destroy(&ctx);
	KUNIT_EXPECT_EQ(test, kfi_rw_max_ops(rw.p->client, 0, 0), 0);
	kt_rw_teardown(&rw);
}

/* --- removal racing everything else --- */

/*
 * A client that unregisters while a domain is being removed gets remove()
 * for it exactly once. The race is made deterministic: a third client's
 * add() holds kfi_clients_lock while the unregistration and then the
 * removal queue up behind it, so the unregistration runs first.
 */
struct kt_gate {
	struct kfi_client client;
	struct completion entered;
	struct completion release;
};

static struct kt_gate *kt_gate;

static int kt_gate_add(struct kfi_domain *domain)
{
	if (domain->fabric != &kt_fabric || strcmp(kfi_domain_name(domain), "kt0"))
		return -ENODEV;
	complete(&kt_gate->entered);
	wait_for_completion(&kt_gate->release);
	return -ENODEV;
}

static int kt_race_add(struct kfi_domain *domain)
{
	struct kt_client *c = kt_clients;

	if (domain->fabric != &kt_fabric || strcmp(kfi_domain_name(domain), "ktr"))
		return -ENODEV;
	c->adds++;
	kfi_set_client_data(domain, &c->client, c);
	return 0;
}

/* A call made from a thread of its own, so that it can block. */
struct kt_call {
	void (*fn)(void *arg);
	void *arg;
	struct completion done;
};

static int kt_call_fn(void *data)
{
	struct kt_call *call = data;

	call->fn(call->arg);
	complete(&call->done);
	return 0;
}

static int kt_call_start(struct kt_call *call, void (*fn)(void *arg), void *arg)
{
	struct task_struct *t;

	call->fn = fn;
	call->arg = arg;
	init_completion(&call->done);
	t = kthread_run(kt_call_fn, call, "kt_call");
	return PTR_ERR_OR_ZERO(t);
}

static void kt_call_register(void *arg)
{
	WARN_ON(kfi_register_client(arg));
}

static void kt_call_unregister(void *arg)
{
	kfi_unregister_client(arg);
}

static void kt_call_remove(void *arg)
{
	kt_domain_remove(arg);
}

static void kfi_test_client_unregister_race(struct kunit *test)
{
	struct kt_client *c = kunit_kzalloc(test, sizeof(*c), GFP_KERNEL);
	struct kt_gate *g = kunit_kzalloc(test, sizeof(*g), GFP_KERNEL);
	struct kt_call reg, unreg, rem;
	struct kt_domain *kd;

	KUNIT_ASSERT_NOT_NULL(test, c);
	KUNIT_ASSERT_NOT_NULL(test, g);
	kt_clients = c;
	kt_gate = g;
	c->client.name = "kunit-race";
	c->client.add = kt_race_add;
	c->client.remove = kt_client_remove;
	g->client.name = "kunit-gate";
	g->client.add = kt_gate_add;
	init_completion(&g->entered);
	init_completion(&g->release);

	KUNIT_ASSERT_EQ(test, kfi_register_client(&c->client), 0);
	kd = kt_domain_add("ktr", 0);
	KUNIT_ASSERT_FALSE(test, IS_ERR(kd));
	KUNIT_ASSERT_EQ(test, c->adds, 1);

	KUNIT_ASSERT_EQ(test, kt_call_start(&reg, kt_call_register, &g->client), 0);
	wait_for_completion(&g->entered);
	KUNIT_ASSERT_EQ(test, kt_call_start(&unreg, kt_call_unregister, &c->client), 0);
	msleep(50);
	KUNIT_ASSERT_EQ(test, kt_call_start(&rem, kt_call_remove, kd), 0);
	msleep(50);
	complete(&g->release);
	wait_for_completion(&reg.done);
	wait_for_completion(&unreg.done);
	wait_for_completion(&rem.done);

	KUNIT_EXPECT_EQ(test, c->removes, 1);
	KUNIT_EXPECT_STREQ(test, c->last, "ktr");
	kfi_unregister_client(&g->client);
	kt_clients = NULL;
	kt_gate = NULL;
}

/*
 * Stress: threads post, poll a direct queue, connect, map regions, run
 * read/write helper transfers and (un)register a client while the domain
 * is removed. Every operation that was posted completes exactly once, no
 * two callbacks of one queue overlap, and nothing the debug options watch
 * (KASAN, lockdep, kmemleak) complains.
 */
#define KT_STRESS_ROUNDS	16

struct kt_stress {
	struct kt_domain *kd;
	struct kfi_cq *cq, *dcq;
	struct kfi_ep *ep;
	struct kfi_mr *mr;
	struct kt_cm cm, ecm;
	struct kfi_cqe cqe;
	atomic_t posted;
	atomic_t completed;
	atomic_t in_direct;
	atomic_t overlaps;
	atomic_t running;
	bool stop;
	char buf[256];
	struct kt_call calls[6];
};

static void kt_stress_done(struct kfi_cq *cq, struct kfi_wc *wc)
{
	struct kt_stress *st = container_of(wc->cqe, struct kt_stress, cqe);

	if (cq->attr.poll_ctx == KFI_POLL_DIRECT &&
	    atomic_inc_return(&st->in_direct) != 1)
		atomic_inc(&st->overlaps);
	/*
	 * Long enough for a second dispatcher to run into this one; a
	 * direct queue's callbacks may run in atomic context.
	 */
	if (cq->attr.poll_ctx == KFI_POLL_DIRECT)
		udelay(8);
	atomic_inc(&st->completed);
	if (cq->attr.poll_ctx == KFI_POLL_DIRECT)
		atomic_dec(&st->in_direct);
}

static bool kt_stress_go(struct kt_stress *st)
{
	cond_resched();
	return !READ_ONCE(st->stop);
}

static void kt_stress_post(void *arg)
{
	struct kt_stress *st = arg;
	struct kvec kv = { st->buf, sizeof(st->buf) };
	struct kfi_iov iov;
	struct kfi_msg msg = { .iov = &iov, .niov = 1, .cqe = &st->cqe };
	int ret;

	kfi_iov_kvec(&iov, &kv, 1);
	while (kt_stress_go(st)) {
		ret = kfi_recv(st->ep, &msg, 0);
		if (!ret)
			atomic_inc(&st->posted);
		ret = kfi_send(st->ep, &msg, 0);
		if (!ret)
			atomic_inc(&st->posted);
	}
}

static void kt_stress_poll(void *arg)
{
	struct kt_stress *st = arg;

	while (kt_stress_go(st))
		kfi_cq_poll(st->dcq, 4);
}

static void kt_stress_connect(void *arg)
{
	struct kt_stress *st = arg;
	struct kfi_ep_attr attr;
	struct kfi_addr addr;
	struct kfi_ep *ep;

	/* Nobody listens there: the attempt fails, asynchronously. */
	kt_addr(&addr, "kt1", 99);
	while (kt_stress_go(st)) {
		kt_ep_attr(&attr, st->cq, &st->ecm);
		attr.max_send_ops = 1;
		attr.max_recv_ops = 1;
		ep = kfi_ep_alloc(&st->kd->dom, &attr);
		if (IS_ERR(ep)) {
			usleep_range(1000, 2000);
			continue;
		}
		kfi_connect(ep, &addr, NULL, 0);
		kfi_disconnect(ep);
		kfi_ep_free(ep);
	}
}

static void kt_stress_map(void *arg)
{
	struct kt_stress *st = arg;
	struct kvec kv = { st->buf, sizeof(st->buf) };
	struct kfi_iov iov;
	struct kfi_mr *mr;

	kfi_iov_kvec(&iov, &kv, 1);
	while (kt_stress_go(st)) {
		if (!kfi_mr_map(st->ep, st->mr, &iov, KFI_ACCESS_REMOTE_READ,
				NULL, KFI_UNSIGNALED))
			kfi_mr_invalidate(st->ep, st->mr, NULL, KFI_UNSIGNALED);
		mr = kfi_mr_alloc(&st->kd->dom, 1);
		if (!IS_ERR(mr))
			kfi_mr_free(mr);
	}
}

static void kt_stress_rw(void *arg)
{
	struct kt_stress *st = arg;
	struct bio_vec bv;
	struct kfi_iov local;
	struct kfi_rma_iov remote = { .len = 64, .key = 1 };
	struct kfi_rw_ctx ctx;

	bvec_set_virt(&bv, st->buf, 64);
	local = (struct kfi_iov){ .type = KFI_IOV_BVEC, .bvec = &bv, .nr = 1, .len = 64 };
	while (kt_stress_go(st)) {
		if (kfi_rw_ctx_init(&ctx, st->ep, &local, &remote, DMA_TO_DEVICE) > 0) {
			if (!kfi_rw_ctx_post(&ctx, &st->cqe, NULL, 0))
				atomic_inc(&st->posted);
			kfi_rw_ctx_destroy(&ctx);
		}
	}
}

static int kt_stress_client_add(struct kfi_domain *domain)
{
	return 0;
}

static void kt_stress_client(void *arg)
{
	struct kt_stress *st = arg;
	struct kfi_client client = {
		.name = "kunit-stress", .add = kt_stress_client_add,
	};

	while (kt_stress_go(st)) {
		if (!kfi_register_client(&client))
			kfi_unregister_client(&client);
	}
}

static void kt_stress_round(struct kunit *test, struct kt_stress *st)
{
	struct kfi_cq_attr cqa = { .nr_cqe = 512, .comp_vector = -1,
				   .poll_ctx = KFI_POLL_WORKQUEUE };
	void (*fns[])(void *) = {
		kt_stress_post, kt_stress_poll, kt_stress_connect,
		kt_stress_map, kt_stress_rw, kt_stress_client,
	};
	struct kfi_ep_attr attr;
	int i;

	st->kd = kt_domain_add("kts", 0);
	KUNIT_ASSERT_FALSE(test, IS_ERR(st->kd));
	st->cq = kfi_cq_alloc(&st->kd->dom, &cqa);
	KUNIT_ASSERT_FALSE(test, IS_ERR(st->cq));
	cqa.poll_ctx = KFI_POLL_DIRECT;
	st->dcq = kfi_cq_alloc(&st->kd->dom, &cqa);
	KUNIT_ASSERT_FALSE(test, IS_ERR(st->dcq));
	kt_cm_init(&st->cm, test);
	kt_cm_init(&st->ecm, test);
	kt_ep_attr(&attr, st->cq, &st->cm);
	attr.recv_cq = st->dcq;
	attr.max_rw_ctxs = 4;
	attr.max_rw_size = SZ_4K;
	attr.max_rw_segs = 1;
	st->ep = kfi_ep_alloc(&st->kd->dom, &attr);
	KUNIT_ASSERT_FALSE(test, IS_ERR(st->ep));
	st->mr = kfi_mr_alloc(&st->kd->dom, 1);
	KUNIT_ASSERT_FALSE(test, IS_ERR(st->mr));

	WRITE_ONCE(st->stop, false);
	for (i = 0; i < ARRAY_SIZE(fns); i++)
		KUNIT_ASSERT_EQ(test, kt_call_start(&st->calls[i], fns[i], st), 0);
	msleep(20);
	kt_domain_remove(st->kd);
	usleep_range(5000, 10000);
	WRITE_ONCE(st->stop, true);
	for (i = 0; i < ARRAY_SIZE(fns); i++)
		wait_for_completion(&st->calls[i].done);

	KUNIT_EXPECT_EQ(test, st->cm.removals, 1);
	kfi_ep_free(st->ep);
	kfi_mr_free(st->mr);
	kfi_cq_free(st->dcq);
	kfi_cq_free(st->cq);
	KUNIT_EXPECT_EQ(test, atomic_read(&st->completed), atomic_read(&st->posted));
	KUNIT_EXPECT_EQ(test, atomic_read(&st->overlaps), 0);
}

/*
 * A drain dispatches a direct queue while its owner polls it: the two
 * never run callbacks at the same time, and every completion runs once.
 */
static void kfi_test_direct_drain(struct kunit *test)
{
	struct kt_pair *p = kt_connected(test, KFI_POLL_DIRECT);
	struct kt_stress *st = kunit_kzalloc(test, sizeof(*st), GFP_KERNEL);
	struct kvec kv;
	struct kfi_iov iov;
	struct kfi_msg msg = { .iov = &iov, .niov = 1 };
	int i, n = 0;

	KUNIT_ASSERT_NOT_NULL(test, st);
	kv = (struct kvec){ st->buf, sizeof(st->buf) };
	kfi_iov_kvec(&iov, &kv, 1);
	st->cqe.done = kt_stress_done;
	msg.cqe = &st->cqe;
	for (i = 0; i < 16; i++)
		n += !kfi_recv(p->server, &msg, 0);
	KUNIT_ASSERT_EQ(test, n, 16);
	st->dcq = p->cq1;
	KUNIT_ASSERT_EQ(test, kt_call_start(&st->calls[0], kt_stress_poll, st), 0);
	usleep_range(5000, 10000);
	kfi_ep_drain(p->server);
	WRITE_ONCE(st->stop, true);
	wait_for_completion(&st->calls[0].done);
	KUNIT_EXPECT_EQ(test, atomic_read(&st->completed), n);
	KUNIT_EXPECT_EQ(test, atomic_read(&st->overlaps), 0);
}

static void kt_call_ep_free(void *arg)
{
	kfi_ep_free(arg);
}

/*
 * The ULP frees an endpoint while its domain is removed: the removal
 * must not destroy the completion queues the endpoint is still draining
 * into.
 */
static void kfi_test_free_vs_removal(struct kunit *test)
{
	struct kt_pair *p = kt_connected(test, KFI_POLL_WORKQUEUE);
	struct kt_wait w[4];
	struct kfi_msg msg = { .niov = 0 };
	struct kt_call call;
	int i;

	kt_post_recvs(test, p->server, &msg, w, ARRAY_SIZE(w));
	p->d1->drain_ms = 200;
	KUNIT_ASSERT_EQ(test, kt_call_start(&call, kt_call_ep_free, p->server), 0);
	msleep(50);
	kt_domain_remove(p->d1);
	wait_for_completion(&call.done);
	p->server = NULL;
	for (i = 0; i < ARRAY_SIZE(w); i++) {
		KUNIT_EXPECT_EQ(test, w[i].count, 1);
		KUNIT_EXPECT_EQ(test, w[i].wc.status, -ECANCELED);
	}
	kt_pair_free(p);
	p->d1 = kt_domain_add("kt1", 0);
	KUNIT_EXPECT_FALSE(test, IS_ERR(p->d1));
}

static void kt_call_mr_free(void *arg)
{
	kfi_mr_free(arg);
}

static void kt_call_cq_free(void *arg)
{
	kfi_cq_free(arg);
}

/*
 * The ULP frees a region and a queue while their domain is removed: the
 * removal returns only when both are destroyed, since the provider frees
 * what they use (kfi_verbs: the protection domain) right after it.
 */
static void kfi_test_free_vs_removal_mr_cq(struct kunit *test)
{
	struct kfi_cq_attr cqa = { .nr_cqe = 4, .comp_vector = -1 };
	struct kt_domain *kd = kt_domain_add("ktf", 0);
	struct kt_call calls[2], removal;
	struct kt_hold hold;
	struct kfi_mr *mr;
	struct kfi_cq *cq;
	int i;

	KUNIT_ASSERT_FALSE(test, IS_ERR(kd));
	mr = kfi_mr_alloc(&kd->dom, 4);
	cq = kfi_cq_alloc(&kd->dom, &cqa);
	KUNIT_ASSERT_FALSE(test, IS_ERR(mr) || IS_ERR(cq));
	init_completion(&hold.gate);
	atomic_set(&hold.inside, 0);
	kd->destroy_hold = &hold;
	KUNIT_ASSERT_EQ(test, kt_call_start(&calls[0], kt_call_mr_free, mr), 0);
	KUNIT_ASSERT_EQ(test, kt_call_start(&calls[1], kt_call_cq_free, cq), 0);
	for (i = 0; i < 250 && atomic_read(&hold.inside) < 2; i++)
		msleep(20);
	KUNIT_ASSERT_EQ(test, atomic_read(&hold.inside), 2);
	/* The frees hold references: @kd lives until they return. */
	KUNIT_ASSERT_EQ(test, kt_call_start(&removal, kt_call_remove, kd), 0);
	msleep(500);
	KUNIT_EXPECT_FALSE(test, completion_done(&removal.done));
	complete_all(&hold.gate);
	wait_for_completion(&removal.done);
	KUNIT_EXPECT_EQ(test, atomic_read(&hold.inside), 0);
	wait_for_completion(&calls[0].done);
	wait_for_completion(&calls[1].done);
}

static void kfi_test_removal_stress(struct kunit *test)
{
	struct kt_stress *st;
	int round;

	st = kunit_kzalloc(test, sizeof(*st), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, st);
	st->cqe.done = kt_stress_done;
	for (round = 0; round < KT_STRESS_ROUNDS && !test->status; round++) {
		atomic_set(&st->posted, 0);
		atomic_set(&st->completed, 0);
		kt_stress_round(test, st);
	}
}

static struct kunit_case kfabric_util_cases[] = {
	KUNIT_CASE(kfi_test_addr),
	KUNIT_CASE(kfi_test_iov),
	KUNIT_CASE(kfi_test_mr_check),
	{}
};

static struct kunit_suite kfabric_util_suite = {
	.name = "kfabric_util",
	.test_cases = kfabric_util_cases,
};

static struct kunit_case kfabric_registry_cases[] = {
	KUNIT_CASE(kfi_test_fabric_register),
	KUNIT_CASE(kfi_test_domain_register),
	KUNIT_CASE(kfi_test_module_refs),
	KUNIT_CASE(kfi_test_clients),
	KUNIT_CASE(kfi_test_getinfo),
	KUNIT_CASE(kfi_test_domain_private),
	{}
};

static struct kunit_suite kfabric_registry_suite = {
	.name = "kfabric_registry",
	.init = kt_init,
	.exit = kt_exit,
	.test_cases = kfabric_registry_cases,
};

static struct kunit_case kfabric_object_cases[] = {
	KUNIT_CASE(kfi_test_cq_args),
	KUNIT_CASE(kfi_test_ep_args),
	KUNIT_CASE(kfi_test_connect),
	KUNIT_CASE(kfi_test_reject),
	KUNIT_CASE(kfi_test_domain_removal),
	{}
};

static struct kunit_suite kfabric_object_suite = {
	.name = "kfabric_object",
	.init = kt_init,
	.exit = kt_exit,
	.test_cases = kfabric_object_cases,
};

static struct kunit_case kfabric_data_cases[] = {
	KUNIT_CASE(kfi_test_send_recv_softirq),
	KUNIT_CASE(kfi_test_send_recv_workqueue),
	KUNIT_CASE(kfi_test_send_recv_unbound),
	KUNIT_CASE(kfi_test_send_recv_direct),
	KUNIT_CASE(kfi_test_data_args),
	KUNIT_CASE(kfi_test_rma),
	KUNIT_CASE(kfi_test_drain),
	{}
};

static struct kunit_case kfabric_removal_cases[] = {
	KUNIT_CASE(kfi_test_client_unregister_race),
	KUNIT_CASE(kfi_test_direct_drain),
	KUNIT_CASE(kfi_test_free_vs_removal),
	KUNIT_CASE(kfi_test_free_vs_removal_mr_cq),
	KUNIT_CASE_SLOW(kfi_test_removal_stress),
	{}
};

static struct kunit_suite kfabric_removal_suite = {
	.name = "kfabric_removal",
	.init = kt_init,
	.exit = kt_exit,
	.test_cases = kfabric_removal_cases,
};

static struct kunit_suite kfabric_data_suite = {
	.name = "kfabric_data",
	.init = kt_init,
	.exit = kt_exit,
	.test_cases = kfabric_data_cases,
};

static struct kunit_case kfabric_rw_cases[] = {
	KUNIT_CASE(kfi_test_rw_split),
	KUNIT_CASE(kfi_test_rw_large_chain),
	KUNIT_CASE(kfi_test_rw_args),
	{}
};

static struct kunit_suite kfabric_rw_suite = {
	.name = "kfabric_rw",
	.init = kt_init,
	.exit = kt_exit,
	.test_cases = kfabric_rw_cases,
};

kunit_test_suites(&kfabric_util_suite, &kfabric_registry_suite,
		  &kfabric_object_suite, &kfabric_data_suite, &kfabric_rw_suite,
		  &kfabric_removal_suite);

MODULE_DESCRIPTION("KUnit tests for kfabric");
MODULE_LICENSE("GPL");
