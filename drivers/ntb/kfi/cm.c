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
 * old connection never reaches a new one. A peer that never answers gets
 * the channel reclaimed after KFN_CLOSE_TIMEOUT: its late descriptors then
 * fail the sequence check of the next connection.
 */
#include <linux/ctype.h>
#include <linux/random.h>
#include <linux/slab.h>

#include "kfi_ntb.h"

#define KFN_CONNECT_TIMEOUT	(5 * HZ)
/*
 * How long a closing channel waits for the peer's DISCONNECT or REJECT.
 * The peer's worker answers a DISCONNECT as soon as it runs, and a
 * CONNREQ once its ULP's handler took it, while the link work checks
 * every second that the peer's session is alive: a peer that is alive
 * and silent for this long does not answer at all, and would otherwise
 * pin our channels for good. Far longer than a connection attempt waits
 * (%KFN_CONNECT_TIMEOUT), so that a slow answer usually finds its channel
 * still closing; one that comes after the channel was reused echoes the
 * sequence base of another request (&kfn_ctrl.req_base) and is not taken
 * for the answer to the new one.
 */
#define KFN_CLOSE_TIMEOUT	(30 * HZ)

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
 * context and without any of our locks held. They are held in a ring of
 * the endpoint, which cannot overflow: an event ends a connection attempt
 * or a connection, and kfn_connect() and kfn_accept() start one only with
 * room for all its events (kfn_event_room()).
 */
void kfn_event(struct kfn_ep *kep, enum kfi_cm_event_type type, int status,
	       const void *data, u32 len)
{
	struct kfn_event *e;
	unsigned long flags;

	spin_lock_irqsave(&kep->lock, flags);
	if (WARN_ON_ONCE(kep->ev_tail - kep->ev_head >= KFN_EP_EVENTS)) {
		spin_unlock_irqrestore(&kep->lock, flags);
		return;
	}
	e = &kep->events[kep->ev_tail % KFN_EP_EVENTS];
	memset(e, 0, sizeof(*e));
	e->ev.type = type;
	e->ev.status = status;
	len = min_t(u32, len, KFI_CM_DATA_MAX);
	if (len) {
		memcpy(e->data, data, len);
		e->ev.private_data = e->data;
		e->ev.private_data_len = len;
	}
	kep->ev_tail++;
	spin_unlock_irqrestore(&kep->lock, flags);
	queue_work(kfn_wq, &kep->cm_work);
}

/* May a connection attempt start: is there room for all its events? */
static bool kfn_event_room(struct kfn_ep *kep)
{
	unsigned long flags;
	bool room;

	spin_lock_irqsave(&kep->lock, flags);
	room = KFN_EP_EVENTS - (kep->ev_tail - kep->ev_head) >= KFN_CONN_EVENTS;
	spin_unlock_irqrestore(&kep->lock, flags);
	return room;
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
		e = kep->ev_head != kep->ev_tail ?
		    &kep->events[kep->ev_head % KFN_EP_EVENTS] : NULL;
		spin_unlock_irq(&kep->lock);
		if (!e)
			return;
		kfi_cm_event(&kep->ep, &e->ev);
		/* The handler is done with the event and its data. */
		spin_lock_irq(&kep->lock);
		kep->ev_head++;
		spin_unlock_irq(&kep->lock);
	}
}

/**
 * kfn_ctrl_new() - a control message to queue
 * @link: the link; its mutex held
 * @type: &enum kfn_ctrl_type
 * @src_chan: our channel
 * @dst_chan: the peer's channel
 *
 * Messages come from the link's pool, which holds as many as a
 * well-behaved peer lets pile up (see kfn_link_init()); they pile up
 * while the peer does not consume its control ring. One more means the
 * peer never will: the link is reset (kfn_link_reset()).
 *
 * Return: the message, zeroed but for the arguments; NULL when the link
 * is down, or being reset.
 */
struct kfn_ctrl_item *kfn_ctrl_new(struct kfn_link *link, u8 type,
				   u32 src_chan, u32 dst_chan)
{
	struct kfn_ctrl_item *item;

	lockdep_assert_held(&link->mutex);
	if (!link->up)
		return NULL;
	/* Never fails below ctrl_max, the pool's reserve. */
	item = link->ctrl_queued < link->ctrl_max ?
	       mempool_alloc(link->ctrl_pool, GFP_NOWAIT) : NULL;
	if (!item) {
		kfn_link_reset(link, KFN_RESET_BACKLOG);
		return NULL;
	}
	link->ctrl_queued++;
	memset(item, 0, sizeof(*item));
	item->msg.type = type;
	item->msg.src_chan = cpu_to_le32(src_chan);
	item->msg.dst_chan = cpu_to_le32(dst_chan);
	return item;
}

static void kfn_ctrl_free(struct kfn_link *link, struct kfn_ctrl_item *item)
{
	link->ctrl_queued--;
	mempool_free(item, link->ctrl_pool);
}

/**
 * kfn_ctrl_queue() - queue a control message for the peer
 * @link: the link; its mutex held
 * @item: from kfn_ctrl_new(), freed once sent or dropped; may be NULL
 */
void kfn_ctrl_queue(struct kfn_link *link, struct kfn_ctrl_item *item)
{
	lockdep_assert_held(&link->mutex);
	if (!item)
		return;
	if (!link->up) {
		kfn_ctrl_free(link, item);
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
	struct kfn_ctrl __iomem *slot;
	u32 v;

	/*
	 * The peer wrote this once done with the slots (mb() in
	 * kfn_ctrl_rx()); our writes into them depend on it, a control
	 * dependency, which orders them after this read.
	 */
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
		memcpy_toio((void __iomem *)slot + sizeof(slot->seq),
			    (void *)&item->msg + sizeof(slot->seq),
			    sizeof(item->msg) - sizeof(slot->seq));
		/*
		 * The body before the sequence number that validates it:
		 * iowrite32() alone does not order write-combined stores
		 * on x86.
		 */
		wmb();
		iowrite32(++link->ctrl_prod, &slot->seq);
		link->db_pending = true;
		kfn_ctrl_free(link, item);
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
		chan->base = kep->rx_base;
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

	if (chan->state == KFN_CHAN_CLOSING)
		link->nr_closing--;
	if (chan->ep)
		chan->ep->lc = -1;
	chan->ep = NULL;
	chan->rc = -1;
	chan->state = KFN_CHAN_FREE;
}

/**
 * kfn_chan_close() - a channel waits for the peer's last word on it
 * @link: the link; its mutex held
 * @c: the channel
 *
 * The channel stays reserved until the peer's DISCONNECT or REJECT says
 * that it writes no more into it, or the link resets; at most for
 * %KFN_CLOSE_TIMEOUT, after which kfn_chan_reap() frees it.
 */
void kfn_chan_close(struct kfn_link *link, int c)
{
	struct kfn_chan *chan = &link->chans[c];

	if (chan->state == KFN_CHAN_CLOSING)
		return;
	chan->state = KFN_CHAN_CLOSING;
	chan->deadline = jiffies + KFN_CLOSE_TIMEOUT;
	/* Later channels are due later: only the first sets the time. */
	if (!link->nr_closing++)
		link->reap_at = chan->deadline;
}

/**
 * kfn_chan_reap() - free the closing channels the peer left unanswered
 * @link: the link, up; its mutex held
 *
 * Called by the data worker, which the link work runs every second while
 * the link is up. Should the peer still write into a freed channel, its
 * descriptors do not carry the sequence base of the channel's next
 * connection, and are ignored.
 */
void kfn_chan_reap(struct kfn_link *link)
{
	unsigned long now = jiffies;
	struct kfn_chan *chan;
	u32 i;

	lockdep_assert_held(&link->mutex);
	if (!link->nr_closing || time_before(now, link->reap_at))
		return;
	link->reap_at = now + KFN_CLOSE_TIMEOUT;
	for (i = 0; i < link->in_l.nch; i++) {
		chan = &link->chans[i];
		if (chan->state != KFN_CHAN_CLOSING)
			continue;
		if (time_before(now, chan->deadline)) {
			if (time_before(chan->deadline, link->reap_at))
				link->reap_at = chan->deadline;
			continue;
		}
		kfn_chan_free(link, i);
		link->stats.reclaimed++;
		/* The fuzzer's link leaves them unanswered on purpose. */
		if (link->ntb)
			dev_warn_ratelimited(link->dom.dev,
					     "kfi_ntb %s: no answer from the peer on channel %u, reclaimed\n",
					     link->name, i);
	}
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
	kep->rx_write = 0;
	kep->sent_disconnect = false;
	kep->link->chans[kep->lc].rc = rc;
	kfn_set_state(kep, KFN_EP_CONNECTED);
}

/**
 * kfn_send_disconnect() - tell the peer we write no more to it
 * @kep: a connected endpoint; the link's mutex held
 *
 * Our channel stays reserved until the peer's DISCONNECT arrives
 * (kfn_chan_close()).
 */
void kfn_send_disconnect(struct kfn_ep *kep)
{
	struct kfn_link *link = kep->link;

	lockdep_assert_held(&link->mutex);
	if (kep->sent_disconnect || kep->rc < 0 || kep->lc < 0)
		return;
	kfn_ctrl_queue(link, kfn_ctrl_new(link, KFN_CTRL_DISCONNECT, kep->lc,
					  kep->rc));
	kep->sent_disconnect = true;
	kfn_chan_close(link, kep->lc);
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
	/* Not a timeout of a later attempt than the one that queued us. */
	if (kep->state == KFN_EP_CONNECTING &&
	    time_after_eq(jiffies, kep->connect_by)) {
		/* An answer may still come: the channel waits for it. */
		chan = &link->chans[kep->lc];
		chan->ep = NULL;
		kfn_chan_close(link, kep->lc);
		kep->lc = -1;
		kfn_set_state(kep, KFN_EP_IDLE);
		kfn_event(kep, KFI_CM_UNREACHABLE, -ETIMEDOUT, NULL, 0);
	}
	mutex_unlock(&link->mutex);
}

/*
 * The peer names itself once per session, with a name that fits, of
 * printable ASCII characters other than space. Connections go out, and
 * requests are reported, under that name, so a HELLO that came again,
 * maybe with another name, would move the node under them: that breaks
 * the protocol, as a bad name does.
 */
static void kfn_rx_hello(struct kfn_link *link, const struct kfn_ctrl *m,
			 u32 len)
{
	u32 i;

	if (link->named || !len || len >= KFI_NAME_MAX)
		goto bad;
	for (i = 0; i < len; i++)
		if (!isascii(m->data[i]) || !isgraph(m->data[i]))
			goto bad;
	memcpy(link->peer_name, m->data, len);
	link->peer_name[len] = '\0';
	link->named = true;
	return;
bad:
	kfn_link_reset(link, KFN_RESET_PROTO);
}

static void kfn_rx_connreq(struct kfn_link *link, const struct kfn_ctrl *m,
			   u32 src, u32 len)
{
	struct kfn_ctrl_item *item;
	struct kfn_connreq *cr;

	/* Never fails below KFN_MAX_CONNREQS, the pool's reserve. */
	cr = link->nr_connreqs < KFN_MAX_CONNREQS && !link->dying ?
	     mempool_alloc(link->connreq_pool, GFP_NOWAIT) : NULL;
	if (!cr) {
		item = kfn_ctrl_new(link, KFN_CTRL_REJECT, 0, src);
		if (item) {
			item->msg.status = KFN_REJ_BUSY;
			item->msg.req_base = m->seq_base;
			kfn_ctrl_queue(link, item);
		}
		return;
	}
	link->nr_connreqs++;
	memset(cr, 0, sizeof(*cr));
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

	if (chan->state == KFN_CHAN_FREE) {
		/*
		 * An answer after we gave the request up and reclaimed its
		 * channel (kfn_chan_reap()): the peer's side waits for us.
		 */
		kfn_ctrl_queue(link, kfn_ctrl_new(link, KFN_CTRL_DISCONNECT,
						  dst, src));
		return;
	}
	if (chan->rc >= 0)
		return;
	if (le32_to_cpu(m->req_base) != chan->base) {
		/*
		 * An answer to an earlier request on this channel, which we
		 * gave up and reclaimed: close the peer's side of that one,
		 * and keep waiting for the answer to ours.
		 */
		kfn_ctrl_queue(link, kfn_ctrl_new(link, KFN_CTRL_DISCONNECT,
						  dst, src));
		return;
	}
	if (!kep || kep->state != KFN_EP_CONNECTING ||
	    le32_to_cpu(m->auth_key) != kep->ep.attr.auth_key) {
		/* Nobody waits for it any more: close the peer's side. */
		chan->rc = src;
		kfn_chan_close(link, dst);
		kfn_ctrl_queue(link, kfn_ctrl_new(link, KFN_CTRL_DISCONNECT,
						  dst, src));
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

	/*
	 * Only a connection the peer never accepted can be rejected, and
	 * only by an answer to the request on the channel now, not to an
	 * earlier one we gave up.
	 */
	if (chan->state == KFN_CHAN_FREE || chan->rc >= 0 ||
	    le32_to_cpu(m->req_base) != chan->base)
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

	if (memchr_inv(m->rsvd, 0, sizeof(m->rsvd))) {
		kfn_link_reset(link, KFN_RESET_PROTO);
		return;
	}
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
	struct kfn_hdr __iomem *hdr;
	struct kfn_ctrl *slot;
	struct kfn_ctrl m;
	int budget;

	if (!kfn_hdr_valid(link->in, link->features & KFN_FEAT_HEARTBEAT)) {
		kfn_link_reset(link, KFN_RESET_PROTO);
		return;
	}
	for (budget = KFN_CTRL_RING; budget; budget--) {
		slot = link->in + sizeof(struct kfn_hdr) +
		       (link->ctrl_cons % KFN_CTRL_RING) * KFN_CTRL_SIZE;
		if (le32_to_cpu(READ_ONCE(slot->seq)) != link->ctrl_cons + 1)
			break;
		/*
		 * The body before the sequence number, as the peer wrote
		 * them (wmb() in kfn_ctrl_tx()): they reach our coherent
		 * buffer through the bridge, as a device's writes do.
		 */
		dma_rmb();
		memcpy(&m, slot, sizeof(m));
		if (le32_to_cpu(m.seq) != link->ctrl_cons + 1)
			break;
		link->ctrl_cons++;
		if (le32_to_cpu(m.session) != link->nonce) {
			link->stats.proto_errors++;
			continue;
		}
		kfn_ctrl_one(link, &m);
		/*
		 * Reset, by the message or by kfn_ctrl_new(): nothing more
		 * of this session is read, or written.
		 */
		if (link->reset)
			return;
	}
	if (!budget)
		kfn_kick(link);
	if (link->ctrl_cons != link->ctrl_cons_pub) {
		hdr = link->out;
		/*
		 * The peer reuses the slots once it reads this: our reads of
		 * them must be done first. iowrite32() orders only earlier
		 * writes, and the dma_*() barriers do not order MMIO.
		 */
		mb();
		iowrite32(link->ctrl_cons, &hdr->cons);
		link->ctrl_cons_pub = link->ctrl_cons;
		link->db_pending = true;
	}
}

static void kfn_connreq_free(struct kfn_link *link, struct kfn_connreq *cr)
{
	lockdep_assert_held(&link->mutex);
	link->nr_connreqs--;
	mempool_free(cr, link->connreq_pool);
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
		kfn_ctrl_free(link, item);
	}
	list_for_each_entry_safe(cr, ctmp, &link->connreqs, node) {
		list_del(&cr->node);
		kfn_connreq_free(link, cr);
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
	/* Listeners are real users': none of them hears the fuzzer's link. */
	list_for_each_entry(kp, &kfn_peps, node) {
		if (link->ntb && kp->listening &&
		    kp->pep.addr.name.port == cr->port &&
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
	item = link->nonce == cr->nonce ?
	       kfn_ctrl_new(link, KFN_CTRL_REJECT, 0, cr->peer_chan) : NULL;
	if (item) {
		item->msg.status = status;
		item->msg.req_base = cpu_to_le32(cr->peer_base);
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
 *
 * Up to %KFN_MAX_CONNREQS requests a run, what the queue holds at most:
 * a peer that keeps asking would keep the worker going otherwise. The
 * worker queues itself again for the rest.
 */
void kfn_cm_work(struct work_struct *work)
{
	struct kfn_link *link = container_of(work, struct kfn_link, cm_work);
	int budget = KFN_MAX_CONNREQS;
	struct kfn_connreq *cr = NULL;

	for (;;) {
		mutex_lock(&link->mutex);
		if (cr)
			kfn_connreq_free(link, cr);
		cr = list_first_entry_or_null(&link->connreqs, struct kfn_connreq,
					      node);
		if (cr && !budget--) {
			queue_work(kfn_wq, &link->cm_work);
			cr = NULL;
		}
		if (cr)
			list_del(&cr->node);
		mutex_unlock(&link->mutex);
		if (!cr)
			return;
		kfn_connreq_deliver(link, cr);
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
	/* The handler has yet to take the events of earlier attempts. */
	if (!kfn_event_room(kep)) {
		ret = -EAGAIN;
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
	item = kfn_ctrl_new(link, KFN_CTRL_CONNREQ, c, 0);
	if (!item) {
		/* The link is being reset. */
		kfn_chan_free(link, c);
		kfn_event(kep, KFI_CM_UNREACHABLE, -ENETRESET, NULL, 0);
		goto out;
	}
	item->msg.port = cpu_to_le32(dest->name.port);
	item->msg.seq_base = cpu_to_le32(kep->rx_base);
	item->msg.auth_key = cpu_to_le32(ep->attr.auth_key);
	item->msg.len = cpu_to_le16(len);
	memcpy(item->msg.data, private_data, len);
	kfn_ctrl_queue(link, item);
	kfn_set_state(kep, KFN_EP_CONNECTING);
	kep->connect_by = jiffies + KFN_CONNECT_TIMEOUT;
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
	if (!kfn_event_room(kep)) {
		ret = -EAGAIN;
		goto out;
	}
	c = kfn_chan_alloc(link, kep);
	if (c < 0) {
		ret = c;
		goto out;
	}
	item = kfn_ctrl_new(link, KFN_CTRL_ACCEPT, c, cr->peer_chan);
	if (!item) {
		/* The link is being reset. */
		kfn_chan_free(link, c);
		ret = -ENOTCONN;
		goto out;
	}
	kfn_ep_connected(kep, cr->peer_chan, cr->peer_base);
	item->msg.seq_base = cpu_to_le32(kep->rx_base);
	item->msg.auth_key = cpu_to_le32(ep->attr.auth_key);
	item->msg.req_base = cpu_to_le32(cr->peer_base);
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
