// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric over NTB: connection management.
 *
 * Addresses are names: a node is the name of a link's domain (the NTB
 * device's name) and the port a service on it. A link learns its peer's
 * name from the peer's HELLO, so a connection to a node goes out on the
 * link whose peer has that name, which works the same between two hosts
 * and between two ports of one host that are joined to each other.
 *
 * Connection requests, accepts, rejects and disconnections are control
 * messages, carried in a ring of each side's inbound buffer like the
 * data. A connection is a channel on each side; each side frees its
 * channel only when the peer's DISCONNECT (or REJECT) says that the peer
 * writes no more into it, or when the link resets, so a late write of an
 * old connection never reaches a new one.
 */
#include <linux/random.h>
#include <linux/slab.h>

#include "kfi_ntb.h"

#define KFN_CONNECT_TIMEOUT	(5 * HZ)
#define KFN_MAX_CONNREQS	64	/* queued for delivery, per link */

static DEFINE_MUTEX(kfn_cm_mutex);	/* passive endpoints, request delivery */
static LIST_HEAD(kfn_peps);

/**
 * kfn_event() - queue a connection event for an endpoint's handler
 * @kep: the endpoint
 * @type: the event
 * @status: its status
 * @data: private data, copied
 * @len: its bytes, at most %KFI_CM_DATA_MAX
 *
 * Events are delivered in order by the endpoint's work item, in process
 * context and without any of our locks held.
 */
void kfn_event(struct kfn_ep *kep, enum kfi_cm_event_type type, int status,
	       const void *data, u32 len)
{
	struct kfn_event *e = kzalloc_obj(*e, GFP_KERNEL | __GFP_NOFAIL);
	unsigned long flags;

	e->ev.type = type;
	e->ev.status = status;
	len = min_t(u32, len, KFI_CM_DATA_MAX);
	if (len) {
		memcpy(e->data, data, len);
		e->ev.private_data = e->data;
		e->ev.private_data_len = len;
	}
	spin_lock_irqsave(&kep->lock, flags);
	list_add_tail(&e->node, &kep->events);
	spin_unlock_irqrestore(&kep->lock, flags);
	queue_work(kfn_wq, &kep->cm_work);
}

/**
 * kfn_ep_cm_work() - deliver an endpoint's connection events
 * @work: &kfn_ep.cm_work
 */
void kfn_ep_cm_work(struct work_struct *work)
{
	struct kfn_ep *kep = container_of(work, struct kfn_ep, cm_work);
	struct kfn_event *e;

	for (;;) {
		spin_lock_irq(&kep->lock);
		e = list_first_entry_or_null(&kep->events, struct kfn_event, node);
		if (e)
			list_del(&e->node);
		spin_unlock_irq(&kep->lock);
		if (!e)
			return;
		kfi_cm_event(&kep->ep, &e->ev);
		kfree(e);
	}
}

/**
 * kfn_ctrl_new() - a control message to queue
 * @type: &enum kfn_ctrl_type
 * @src_chan: our channel
 * @dst_chan: the peer's channel
 *
 * Return: the message, zeroed but for the arguments.
 */
struct kfn_ctrl_item *kfn_ctrl_new(u8 type, u32 src_chan, u32 dst_chan)
{
	struct kfn_ctrl_item *item = kzalloc_obj(*item, GFP_KERNEL | __GFP_NOFAIL);

	item->msg.type = type;
	item->msg.src_chan = cpu_to_le32(src_chan);
	item->msg.dst_chan = cpu_to_le32(dst_chan);
	return item;
}

/**
 * kfn_ctrl_queue() - queue a control message for the peer
 * @link: the link; its mutex held
 * @item: from kfn_ctrl_new(); freed once sent or dropped
 */
void kfn_ctrl_queue(struct kfn_link *link, struct kfn_ctrl_item *item)
{
	lockdep_assert_held(&link->mutex);
	if (!link->up) {
		kfree(item);
		return;
	}
	list_add_tail(&item->node, &link->ctrl_q);
}

/**
 * kfn_ctrl_tx() - write queued control messages into the peer's ring
 * @link: the link, up; its mutex held
 */
void kfn_ctrl_tx(struct kfn_link *link)
{
	struct kfn_hdr *hdr = link->in;
	struct kfn_ctrl_item *item;
	struct kfn_ctrl *slot;
	u32 v;

	v = le32_to_cpu(READ_ONCE(hdr->cons));
	if (v - link->ctrl_acked <= link->ctrl_prod - link->ctrl_acked)
		link->ctrl_acked = v;
	else
		link->stats.proto_errors++;
	while (!list_empty(&link->ctrl_q) &&
	       link->ctrl_prod - link->ctrl_acked < KFN_CTRL_RING) {
		item = list_first_entry(&link->ctrl_q, struct kfn_ctrl_item, node);
		list_del(&item->node);
		item->msg.session = cpu_to_le32(link->peer_nonce);
		slot = link->out + sizeof(struct kfn_hdr) +
		       (link->ctrl_prod % KFN_CTRL_RING) * KFN_CTRL_SIZE;
		memcpy((void *)slot + sizeof(slot->seq),
		       (void *)&item->msg + sizeof(slot->seq),
		       sizeof(item->msg) - sizeof(slot->seq));
		/* The body before the sequence number that validates it. */
		wmb();
		WRITE_ONCE(slot->seq, cpu_to_le32(++link->ctrl_prod));
		link->db_pending = true;
		kfree(item);
	}
}

/**
 * kfn_chan_alloc() - give an endpoint a channel of our inbound buffer
 * @link: the link; its mutex held
 * @kep: the endpoint
 *
 * Return: the channel, or -EBUSY when all are in use.
 */
int kfn_chan_alloc(struct kfn_link *link, struct kfn_ep *kep)
{
	struct kfn_chan *chan;
	u32 i;

	lockdep_assert_held(&link->mutex);
	for (i = 0; i < link->in_l.nch; i++) {
		chan = &link->chans[i];
		if (chan->state != KFN_CHAN_FREE)
			continue;
		chan->state = KFN_CHAN_BOUND;
		chan->ep = kep;
		chan->rc = -1;
		/* Header and ring; the peer writes only after we told it. */
		memset(kfn_in_chan(link, i), 0, KFN_CHAN_HDR);
		kep->lc = i;
		/* Never 0 in the first round: that is what a cleared ring holds. */
		kep->rx_base = get_random_u32_below(U32_MAX - KFN_RING);
		kep->rx_cons = 0;
		kep->rx_cons_pub = 0;
		return i;
	}
	return -EBUSY;
}

/**
 * kfn_chan_free() - a channel the peer writes no more into
 * @link: the link; its mutex held
 * @c: the channel
 */
void kfn_chan_free(struct kfn_link *link, int c)
{
	struct kfn_chan *chan = &link->chans[c];

	if (chan->ep)
		chan->ep->lc = -1;
	chan->ep = NULL;
	chan->rc = -1;
	chan->state = KFN_CHAN_FREE;
}

/**
 * kfn_ep_connected() - an endpoint's connection is set up
 * @kep: the endpoint, with its channel; the link's mutex held
 * @rc: the peer's channel
 * @tx_base: the sequence base of the peer's channel
 */
void kfn_ep_connected(struct kfn_ep *kep, u32 rc, u32 tx_base)
{
	kep->rc = rc;
	kep->tx_base = tx_base;
	kep->tx_prod = 0;
	kep->tx_acked = 0;
	kep->stage_head = 0;
	kep->stage_used = 0;
	kep->rd_head = 0;
	kep->rd_tail = 0;
	kep->rx_msg = false;
	kep->sent_disconnect = false;
	kep->link->chans[kep->lc].rc = rc;
	kfn_set_state(kep, KFN_EP_CONNECTED);
}

/**
 * kfn_send_disconnect() - tell the peer we write no more to it
 * @kep: a connected endpoint; the link's mutex held
 *
 * Our channel stays reserved until the peer's DISCONNECT arrives.
 */
void kfn_send_disconnect(struct kfn_ep *kep)
{
	struct kfn_link *link = kep->link;

	lockdep_assert_held(&link->mutex);
	if (kep->sent_disconnect || kep->rc < 0 || kep->lc < 0)
		return;
	kfn_ctrl_queue(link, kfn_ctrl_new(KFN_CTRL_DISCONNECT, kep->lc, kep->rc));
	kep->sent_disconnect = true;
	link->chans[kep->lc].state = KFN_CHAN_CLOSING;
}

/**
 * kfn_connect_timeout() - the peer did not answer a connection request
 * @work: &kfn_ep.connect_to
 */
void kfn_connect_timeout(struct work_struct *work)
{
	struct kfn_ep *kep = container_of(to_delayed_work(work), struct kfn_ep,
					  connect_to);
	struct kfn_link *link = kep->link;
	struct kfn_chan *chan;

	mutex_lock(&link->mutex);
	if (kep->state == KFN_EP_CONNECTING) {
		/* An answer may still come: the channel waits for it. */
		chan = &link->chans[kep->lc];
		chan->ep = NULL;
		chan->state = KFN_CHAN_CLOSING;
		kep->lc = -1;
		kfn_set_state(kep, KFN_EP_IDLE);
		kfn_event(kep, KFI_CM_UNREACHABLE, -ETIMEDOUT, NULL, 0);
	}
	mutex_unlock(&link->mutex);
}

static void kfn_rx_hello(struct kfn_link *link, const struct kfn_ctrl *m,
			 u32 len)
{
	char name[KFI_NAME_MAX];

	memcpy(name, m->data, min_t(u32, len, sizeof(name) - 1));
	name[min_t(u32, len, sizeof(name) - 1)] = '\0';
	if (!name[0]) {
		link->stats.proto_errors++;
		return;
	}
	strscpy(link->peer_name, name);
	link->named = true;
}

static void kfn_rx_connreq(struct kfn_link *link, const struct kfn_ctrl *m,
			   u32 src, u32 len)
{
	struct kfn_ctrl_item *item;
	struct kfn_connreq *cr;
	u32 n = 0;

	list_for_each_entry(cr, &link->connreqs, node)
		n++;
	if (n >= KFN_MAX_CONNREQS || link->dying) {
		item = kfn_ctrl_new(KFN_CTRL_REJECT, 0, src);
		item->msg.status = KFN_REJ_BUSY;
		kfn_ctrl_queue(link, item);
		return;
	}
	cr = kzalloc_obj(*cr, GFP_KERNEL | __GFP_NOFAIL);
	cr->link = link;
	cr->nonce = link->nonce;
	cr->port = le32_to_cpu(m->port);
	cr->peer_chan = src;
	cr->peer_base = le32_to_cpu(m->seq_base);
	cr->auth_key = le32_to_cpu(m->auth_key);
	cr->pdata_len = len;
	memcpy(cr->pdata, m->data, len);
	list_add_tail(&cr->node, &link->connreqs);
	queue_work(kfn_wq, &link->cm_work);
}

static void kfn_rx_accept(struct kfn_link *link, const struct kfn_ctrl *m,
			  u32 src, u32 dst, u32 len)
{
	struct kfn_chan *chan = &link->chans[dst];
	struct kfn_ep *kep = chan->ep;

	if (chan->state == KFN_CHAN_FREE || chan->rc >= 0)
		return;
	if (!kep || kep->state != KFN_EP_CONNECTING ||
	    le32_to_cpu(m->auth_key) != kep->ep.attr.auth_key) {
		/* Nobody waits for it any more: close the peer's side. */
		chan->rc = src;
		chan->state = KFN_CHAN_CLOSING;
		kfn_ctrl_queue(link, kfn_ctrl_new(KFN_CTRL_DISCONNECT, dst, src));
		if (kep && kep->state == KFN_EP_CONNECTING) {
			chan->ep = NULL;
			kep->lc = -1;
			cancel_delayed_work(&kep->connect_to);
			kfn_set_state(kep, KFN_EP_IDLE);
			kfn_event(kep, KFI_CM_UNREACHABLE, -EACCES, NULL, 0);
		}
		return;
	}
	cancel_delayed_work(&kep->connect_to);
	kfn_ep_connected(kep, src, le32_to_cpu(m->seq_base));
	kfn_event(kep, KFI_CM_CONNECTED, 0, m->data, len);
}

static void kfn_rx_reject(struct kfn_link *link, const struct kfn_ctrl *m,
			  u32 dst, u32 len)
{
	struct kfn_chan *chan = &link->chans[dst];
	struct kfn_ep *kep = chan->ep;

	/* Only a connection the peer never accepted can be rejected. */
	if (chan->state == KFN_CHAN_FREE || chan->rc >= 0)
		return;
	kfn_chan_free(link, dst);
	if (!kep || kep->state != KFN_EP_CONNECTING)
		return;
	cancel_delayed_work(&kep->connect_to);
	kfn_set_state(kep, KFN_EP_IDLE);
	if (m->status == KFN_REJ_CONSUMER)
		kfn_event(kep, KFI_CM_REJECTED, -ECONNREFUSED, m->data, len);
	else
		kfn_event(kep, KFI_CM_UNREACHABLE,
			  m->status == KFN_REJ_BUSY ? -EBUSY : -ECONNREFUSED,
			  NULL, 0);
}

static void kfn_rx_disconnect(struct kfn_link *link, u32 src, u32 dst)
{
	struct kfn_chan *chan = &link->chans[dst];
	struct kfn_ep *kep = chan->ep;

	if (chan->state == KFN_CHAN_FREE || chan->rc != (int)src)
		return;
	if (kep && (kep->state == KFN_EP_CONNECTED || kep->state == KFN_EP_ERROR)) {
		kfn_send_disconnect(kep);
		kfn_set_state(kep, KFN_EP_DISCONNECTED);
		kfn_event(kep, KFI_CM_DISCONNECTED, 0, NULL, 0);
	}
	kfn_chan_free(link, dst);
	kfn_kick(link);
}

/* One control message, copied out of the ring and not trusted. */
static void kfn_ctrl_one(struct kfn_link *link, const struct kfn_ctrl *m)
{
	u32 len = le16_to_cpu(m->len);
	u32 src = le32_to_cpu(m->src_chan);
	u32 dst = le32_to_cpu(m->dst_chan);

	if (len > KFI_CM_DATA_MAX)
		goto bad;
	switch (m->type) {
	case KFN_CTRL_HELLO:
		kfn_rx_hello(link, m, len);
		return;
	case KFN_CTRL_CONNREQ:
		if (src >= link->out_l.nch)
			goto bad;
		kfn_rx_connreq(link, m, src, len);
		return;
	case KFN_CTRL_ACCEPT:
		if (src >= link->out_l.nch || dst >= link->in_l.nch)
			goto bad;
		kfn_rx_accept(link, m, src, dst, len);
		return;
	case KFN_CTRL_REJECT:
		if (dst >= link->in_l.nch)
			goto bad;
		kfn_rx_reject(link, m, dst, len);
		return;
	case KFN_CTRL_DISCONNECT:
		if (src >= link->out_l.nch || dst >= link->in_l.nch)
			goto bad;
		kfn_rx_disconnect(link, src, dst);
		return;
	}
bad:
	link->stats.proto_errors++;
}

/**
 * kfn_ctrl_rx() - consume the control messages the peer wrote
 * @link: the link, up; its mutex held
 */
void kfn_ctrl_rx(struct kfn_link *link)
{
	struct kfn_hdr *hdr;
	struct kfn_ctrl *slot;
	struct kfn_ctrl m;
	int budget;

	for (budget = KFN_CTRL_RING; budget; budget--) {
		slot = link->in + sizeof(struct kfn_hdr) +
		       (link->ctrl_cons % KFN_CTRL_RING) * KFN_CTRL_SIZE;
		if (le32_to_cpu(READ_ONCE(slot->seq)) != link->ctrl_cons + 1)
			break;
		/* Pairs with the peer's wmb() before the sequence number. */
		rmb();
		memcpy(&m, slot, sizeof(m));
		if (le32_to_cpu(m.seq) != link->ctrl_cons + 1)
			break;
		link->ctrl_cons++;
		if (le32_to_cpu(m.session) != link->nonce) {
			link->stats.proto_errors++;
			continue;
		}
		kfn_ctrl_one(link, &m);
	}
	if (!budget)
		kfn_kick(link);
	if (link->ctrl_cons != link->ctrl_cons_pub) {
		hdr = link->out;
		WRITE_ONCE(hdr->cons, cpu_to_le32(link->ctrl_cons));
		link->ctrl_cons_pub = link->ctrl_cons;
		link->db_pending = true;
	}
}

/**
 * kfn_cm_flush() - the link went down: every connection is gone
 * @link: the link; its mutex held
 *
 * Connecting endpoints get %KFI_CM_UNREACHABLE, connected ones
 * %KFI_CM_DISCONNECTED, and their operations are flushed. The endpoints
 * stay usable for a new connection once the link is up again.
 */
void kfn_cm_flush(struct kfn_link *link)
{
	struct kfn_ctrl_item *item, *itmp;
	struct kfn_connreq *cr, *ctmp;
	struct kfn_ep *kep;
	u32 i;

	lockdep_assert_held(&link->mutex);
	list_for_each_entry(kep, &link->eps, node) {
		switch (kep->state) {
		case KFN_EP_CONNECTING:
			cancel_delayed_work(&kep->connect_to);
			kfn_set_state(kep, KFN_EP_IDLE);
			kfn_event(kep, KFI_CM_UNREACHABLE, -ENETRESET, NULL, 0);
			break;
		case KFN_EP_CONNECTED:
		case KFN_EP_ERROR:
			kfn_set_state(kep, KFN_EP_DISCONNECTED);
			kfn_event(kep, KFI_CM_DISCONNECTED, -ENETRESET, NULL, 0);
			break;
		default:
			break;
		}
		kep->lc = -1;
		kep->rc = -1;
		kfn_ep_process(kep);
	}
	for (i = 0; i < link->in_l.nch; i++)
		kfn_chan_free(link, i);
	list_for_each_entry_safe(item, itmp, &link->ctrl_q, node) {
		list_del(&item->node);
		kfree(item);
	}
	list_for_each_entry_safe(cr, ctmp, &link->connreqs, node) {
		list_del(&cr->node);
		kfree(cr);
	}
}

/* Deliver a request to the passive endpoint listening for it. */
static void kfn_connreq_deliver(struct kfn_link *link, struct kfn_connreq *cr)
{
	struct kfn_pep *kp, *pep = NULL;
	struct kfn_ctrl_item *item;
	u8 status = KFN_REJ_NOLISTENER;
	bool accepted = false;

	cr->req.domain = &link->dom;
	cr->req.src_addr.format = KFI_ADDR_NAME;
	strscpy(cr->req.src_addr.name.node, link->dom.attr.name);
	cr->req.src_addr.name.port = cr->port;
	cr->req.dest_addr.format = KFI_ADDR_NAME;
	mutex_lock(&link->mutex);
	strscpy(cr->req.dest_addr.name.node, link->peer_name);
	mutex_unlock(&link->mutex);

	mutex_lock(&kfn_cm_mutex);
	list_for_each_entry(kp, &kfn_peps, node) {
		if (kp->listening && kp->pep.addr.name.port == cr->port &&
		    (!kp->pep.addr.name.node[0] ||
		     !strcmp(kp->pep.addr.name.node, link->dom.attr.name))) {
			pep = kp;
			break;
		}
	}
	if (pep) {
		status = KFN_REJ_CONSUMER;
		accepted = kfi_pep_connreq(&pep->pep, &cr->req, cr->pdata,
					   cr->pdata_len);
	}
	mutex_unlock(&kfn_cm_mutex);
	if (accepted)
		return;

	mutex_lock(&link->mutex);
	if (link->up && link->nonce == cr->nonce) {
		item = kfn_ctrl_new(KFN_CTRL_REJECT, 0, cr->peer_chan);
		item->msg.status = status;
		item->msg.len = cpu_to_le16(cr->rej_len);
		memcpy(item->msg.data, cr->rej, cr->rej_len);
		kfn_ctrl_queue(link, item);
	}
	mutex_unlock(&link->mutex);
	kfn_kick(link);
}

/**
 * kfn_cm_work() - deliver the connection requests of a link
 * @work: &kfn_link.cm_work
 */
void kfn_cm_work(struct work_struct *work)
{
	struct kfn_link *link = container_of(work, struct kfn_link, cm_work);
	struct kfn_connreq *cr;

	for (;;) {
		mutex_lock(&link->mutex);
		cr = list_first_entry_or_null(&link->connreqs, struct kfn_connreq,
					      node);
		if (cr)
			list_del(&cr->node);
		mutex_unlock(&link->mutex);
		if (!cr)
			return;
		kfn_connreq_deliver(link, cr);
		kfree(cr);
	}
}

int kfn_connect(struct kfi_ep *ep, const struct kfi_addr *dest,
		const void *private_data, u32 len)
{
	struct kfn_ep *kep = to_kfn_ep(ep);
	struct kfn_link *link = kep->link;
	struct kfn_ctrl_item *item;
	int c, ret = 0;

	mutex_lock(&link->mutex);
	if (kep->state != KFN_EP_IDLE) {
		ret = -EISCONN;
		goto out;
	}
	if (!link->up || !link->named ||
	    (dest->name.node[0] && strcmp(dest->name.node, link->peer_name))) {
		kfn_event(kep, KFI_CM_UNREACHABLE, -EHOSTUNREACH, NULL, 0);
		goto out;
	}
	c = kfn_chan_alloc(link, kep);
	if (c < 0) {
		kfn_event(kep, KFI_CM_UNREACHABLE, c, NULL, 0);
		goto out;
	}
	item = kfn_ctrl_new(KFN_CTRL_CONNREQ, c, 0);
	item->msg.port = cpu_to_le32(dest->name.port);
	item->msg.seq_base = cpu_to_le32(kep->rx_base);
	item->msg.auth_key = cpu_to_le32(ep->attr.auth_key);
	item->msg.len = cpu_to_le16(len);
	memcpy(item->msg.data, private_data, len);
	kfn_ctrl_queue(link, item);
	kfn_set_state(kep, KFN_EP_CONNECTING);
	queue_delayed_work(kfn_wq, &kep->connect_to, KFN_CONNECT_TIMEOUT);
out:
	mutex_unlock(&link->mutex);
	kfn_kick(link);
	return ret;
}

int kfn_accept(struct kfi_ep *ep, struct kfi_connreq *req,
	       const void *private_data, u32 len)
{
	struct kfn_connreq *cr = container_of(req, struct kfn_connreq, req);
	struct kfn_ep *kep = to_kfn_ep(ep);
	struct kfn_link *link = cr->link;
	struct kfn_ctrl_item *item;
	int c, ret = 0;

	/* The peer checks ours against its endpoint's key too. */
	if (ep->attr.auth_key != cr->auth_key)
		return -EACCES;
	mutex_lock(&link->mutex);
	if (!link->up || link->nonce != cr->nonce) {
		ret = -ENOTCONN;
		goto out;
	}
	if (kep->state != KFN_EP_IDLE) {
		ret = -EINVAL;
		goto out;
	}
	c = kfn_chan_alloc(link, kep);
	if (c < 0) {
		ret = c;
		goto out;
	}
	kfn_ep_connected(kep, cr->peer_chan, cr->peer_base);
	item = kfn_ctrl_new(KFN_CTRL_ACCEPT, c, cr->peer_chan);
	item->msg.seq_base = cpu_to_le32(kep->rx_base);
	item->msg.auth_key = cpu_to_le32(ep->attr.auth_key);
	item->msg.len = cpu_to_le16(len);
	memcpy(item->msg.data, private_data, len);
	kfn_ctrl_queue(link, item);
	kfn_event(kep, KFI_CM_CONNECTED, 0, NULL, 0);
out:
	mutex_unlock(&link->mutex);
	kfn_kick(link);
	return ret;
}

int kfn_reject(struct kfi_connreq *req, const void *private_data, u32 len)
{
	struct kfn_connreq *cr = container_of(req, struct kfn_connreq, req);

	memcpy(cr->rej, private_data, len);
	cr->rej_len = len;
	return 0;
}

int kfn_disconnect(struct kfi_ep *ep)
{
	struct kfn_ep *kep = to_kfn_ep(ep);
	struct kfn_link *link = kep->link;
	int ret = 0;

	mutex_lock(&link->mutex);
	if (kep->state == KFN_EP_CONNECTED || kep->state == KFN_EP_ERROR) {
		kfn_send_disconnect(kep);
		kfn_set_state(kep, KFN_EP_DISCONNECTED);
		kfn_event(kep, KFI_CM_DISCONNECTED, 0, NULL, 0);
	} else {
		ret = -ENOTCONN;
	}
	mutex_unlock(&link->mutex);
	kfn_kick(link);
	return ret;
}

static bool kfn_nodes_overlap(const char *a, const char *b)
{
	return !a[0] || !b[0] || !strcmp(a, b);
}

int kfn_pep_listen(struct kfi_pep *pep, const struct kfi_addr *addr,
		   int backlog)
{
	struct kfn_pep *kp = to_kfn_pep(pep), *other;

	guard(mutex)(&kfn_cm_mutex);
	list_for_each_entry(other, &kfn_peps, node)
		if (other->listening && other->pep.addr.name.port == addr->name.port &&
		    kfn_nodes_overlap(other->pep.addr.name.node, addr->name.node))
			return -EADDRINUSE;
	kp->listening = true;
	list_add_tail(&kp->node, &kfn_peps);
	return 0;
}

void kfn_pep_destroy(struct kfi_pep *pep)
{
	struct kfn_pep *kp = to_kfn_pep(pep);

	guard(mutex)(&kfn_cm_mutex);
	if (kp->listening)
		list_del(&kp->node);
	kp->listening = false;
}

/*
 * A source names this domain; a destination names the peer of this link,
 * so only the link that reaches it matches.
 */
int kfn_resolve(struct kfi_domain *domain, const struct kfi_hints *hints,
		struct kfi_info *info)
{
	struct kfn_link *link = to_kfn_link(domain);
	const char *node;
	bool ok = true;

	if (hints->src_addr && hints->src_addr->name.node[0] &&
	    strcmp(hints->src_addr->name.node, domain->attr.name))
		return -ENODATA;
	if (hints->dest_addr) {
		node = hints->dest_addr->name.node;
		mutex_lock(&link->mutex);
		ok = link->up && link->named &&
		     (!node[0] || !strcmp(node, link->peer_name));
		mutex_unlock(&link->mutex);
	}
	if (!ok)
		return -ENODATA;
	info->src_addr.format = KFI_ADDR_NAME;
	strscpy(info->src_addr.name.node, domain->attr.name);
	info->src_addr.name.port = hints->src_addr ? hints->src_addr->name.port : 0;
	return 0;
}
