// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric over the kernel verbs stack: connections through rdma_cm.
 *
 * kfabric creates an endpoint, and its queue pair, on a domain before it
 * knows whether the endpoint will connect or accept, and ULPs post
 * receives before either. So the queue pair is not tied to an rdma_cm id
 * (rdma_create_qp()); the provider moves it through its states itself
 * with the attributes rdma_init_qp_attr() gives, as rdma_cm documents for
 * ids without a QP. The wire is unchanged: the connection is a plain RC
 * connection with the ULP's private data, so kverbs peers interoperate.
 */
#include <linux/completion.h>
#include <rdma/ib_cm.h>

#include "kfi_verbs.h"

#define VBS_CM_TIMEOUT_MS	2000

static void vbs_addr_from(struct kfi_addr *addr, const struct sockaddr *sa)
{
	memset(addr, 0, sizeof(*addr));
	addr->format = KFI_ADDR_INET;
	if (sa->sa_family == AF_INET6)
		addr->sin6 = *(const struct sockaddr_in6 *)sa;
	else
		addr->sin = *(const struct sockaddr_in *)sa;
}

/* Move the QP to @state with the attributes rdma_cm derived for @id. */
static int vbs_qp_cm_modify(struct vbs_ep *vep, struct rdma_cm_id *id,
			    enum ib_qp_state state)
{
	struct ib_qp_attr attr = { .qp_state = state };
	int mask, ret;

	ret = rdma_init_qp_attr(id, &attr, &mask);
	if (ret)
		return ret;
	return ib_modify_qp(vep->qp, &attr, mask);
}

/**
 * vbs_qp_error() - move an endpoint's QP to the error state
 * @vep: the endpoint
 *
 * Outstanding and later work requests then complete with a flush error,
 * which the endpoint reports as -ECANCELED.
 */
void vbs_qp_error(struct vbs_ep *vep)
{
	struct ib_qp_attr attr = { .qp_state = IB_QPS_ERR };

	ib_modify_qp(vep->qp, &attr, IB_QP_STATE);
}

static void vbs_event(struct vbs_ep *vep, enum kfi_cm_event_type type,
		      int status, const void *data, u32 len)
{
	struct kfi_cm_event ev = {
		.type = type,
		.status = status,
		.private_data = data,
		.private_data_len = data ? len : 0,
	};

	kfi_cm_event(&vep->ep, &ev);
}

static void vbs_fail(struct vbs_ep *vep, enum kfi_cm_event_type type,
		     int status, const void *data, u32 len)
{
	WRITE_ONCE(vep->state, VBS_EP_DOWN);
	vbs_qp_error(vep);
	vbs_event(vep, type, status, data, len);
}

/*
 * The end of an established connection is reported once, whichever comes
 * first: rdma_cm's DISCONNECTED or a fatal error of the QP.
 */
static void vbs_report_down(struct vbs_ep *vep, int status)
{
	if (test_and_set_bit(VBS_EP_F_DOWN_REPORTED, &vep->flags))
		return;
	vbs_fail(vep, KFI_CM_DISCONNECTED, status, NULL, 0);
}

void vbs_qp_fatal_work(struct work_struct *work)
{
	struct vbs_ep *vep = container_of(work, struct vbs_ep, fatal_work);

	if (READ_ONCE(vep->state) == VBS_EP_CONNECTED)
		vbs_report_down(vep, -EIO);
}

static int vbs_route_resolved(struct vbs_ep *vep, struct rdma_cm_id *id)
{
	const struct ib_device_attr *da = &vep_dom(vep)->ibdev->attrs;
	struct rdma_conn_param param = {
		.private_data = vep->pdata,
		.private_data_len = vep->pdata_len,
		.responder_resources = da->max_qp_rd_atom,
		.initiator_depth = da->max_qp_init_rd_atom,
		.flow_control = 1,
		.retry_count = 7,
		.rnr_retry_count = 7,
		.qp_num = vep->qp->qp_num,
	};
	int ret;

	/*
	 * Before the connection exists rdma_cm gives an iWARP QP no remote
	 * access, and the iWARP CM takes it to RTS without another INIT:
	 * keep the access the QP got when it was created.
	 */
	if (!vep_dom(vep)->iwarp) {
		ret = vbs_qp_cm_modify(vep, id, IB_QPS_INIT);
		if (ret)
			return ret;
	}
	return rdma_connect_locked(id, &param);
}

/*
 * Active side, IB CM: the REP arrived; ready the QP, then send the RTU.
 * The QP went to INIT before the IB CM existed, with no remote access;
 * INIT again takes the IB CM's access flags, remote reads included when
 * the connection gave us responder resources (as cma_modify_qp_rtr()).
 */
static int vbs_connect_response(struct vbs_ep *vep, struct rdma_cm_id *id)
{
	int ret;

	ret = vbs_qp_cm_modify(vep, id, IB_QPS_INIT);
	if (!ret)
		ret = vbs_qp_cm_modify(vep, id, IB_QPS_RTR);
	if (!ret)
		ret = vbs_qp_cm_modify(vep, id, IB_QPS_RTS);
	if (!ret)
		ret = rdma_accept(id, NULL);
	return ret;
}

static int vbs_ep_cm_event(struct vbs_ep *vep, struct rdma_cm_id *id,
			   struct rdma_cm_event *ev)
{
	struct vbs_domain *vdom = vep_dom(vep);
	const void *data;
	u8 len;
	int ret;

	switch (ev->event) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		/* The route must leave through this endpoint's device port. */
		if (id->device != vdom->ibdev || id->port_num != vdom->port) {
			vbs_fail(vep, KFI_CM_UNREACHABLE, -ENETUNREACH, NULL, 0);
			break;
		}
		vbs_addr_from(&vep->ep.src_addr,
			      (struct sockaddr *)&id->route.addr.src_addr);
		ret = rdma_resolve_route(id, VBS_CM_TIMEOUT_MS);
		if (ret)
			vbs_fail(vep, KFI_CM_UNREACHABLE, ret, NULL, 0);
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		ret = vbs_route_resolved(vep, id);
		if (ret)
			vbs_fail(vep, KFI_CM_UNREACHABLE, ret, NULL, 0);
		break;
	case RDMA_CM_EVENT_CONNECT_RESPONSE:
		ret = vbs_connect_response(vep, id);
		if (ret) {
			vbs_fail(vep, KFI_CM_UNREACHABLE, ret, NULL, 0);
			break;
		}
		WRITE_ONCE(vep->state, VBS_EP_CONNECTED);
		vbs_event(vep, KFI_CM_CONNECTED, 0, ev->param.conn.private_data,
			  ev->param.conn.private_data_len);
		break;
	case RDMA_CM_EVENT_ESTABLISHED:
		/*
		 * Active side on iWARP: the iWARP CM moved the QP to RTS when
		 * the MPA reply came, and this event carries the reply's
		 * private data. Passive side: the QP is ready since the
		 * accept.
		 */
		if (READ_ONCE(vep->state) == VBS_EP_CONNECTING) {
			WRITE_ONCE(vep->state, VBS_EP_CONNECTED);
			vbs_event(vep, KFI_CM_CONNECTED, 0,
				  ev->param.conn.private_data,
				  ev->param.conn.private_data_len);
			break;
		}
		vbs_event(vep, KFI_CM_CONNECTED, 0, NULL, 0);
		break;
	case RDMA_CM_EVENT_REJECTED:
		data = rdma_consumer_reject_data(id, ev, &len);
		vbs_fail(vep, KFI_CM_REJECTED, -ECONNREFUSED, data, data ? len : 0);
		break;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_CONNECT_ERROR:
		vbs_fail(vep, KFI_CM_UNREACHABLE,
			 ev->status < 0 ? ev->status : -ETIMEDOUT, NULL, 0);
		break;
	case RDMA_CM_EVENT_DISCONNECTED:
		vbs_report_down(vep, 0);
		break;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		/*
		 * Our ib_client is removed before rdma_cm's, and it destroys
		 * every id first; this is only reached if that ever changes.
		 */
		vbs_report_down(vep, -ENODEV);
		break;
	case RDMA_CM_EVENT_ADDR_CHANGE:
		vbs_event(vep, KFI_CM_ADDR_CHANGE, 0, NULL, 0);
		break;
	default:
		break;
	}
	/* The endpoint owns the id and destroys it; never let rdma_cm. */
	return 0;
}

/*
 * A listener bound to an address of a device that goes away: rdma_cm's
 * removal waits until the id is destroyed, and the passive endpoint may
 * live on for as long as its ULP likes, so the listener gives the id up
 * here and rdma_cm destroys it. Whoever takes the id out of @vpep first,
 * this handler or vbs_pep_destroy(), owns its destruction; the handler runs
 * under rdma_cm's handler mutex, which rdma_destroy_id() waits for.
 */
static int vbs_pep_cm_event(struct vbs_pep *vpep, struct rdma_cm_id *id,
			    struct rdma_cm_event *ev)
{
	if (ev->event != RDMA_CM_EVENT_DEVICE_REMOVAL)
		return 0;
	if (cmpxchg(&vpep->id, id, NULL) != id)
		return 0;
	pr_info("listener on %pISpc lost its device\n", &id->route.addr.src_addr);
	kfi_pep_lost(&vpep->pep);
	/* rdma_cm destroys the id. */
	return 1;
}

static int vbs_connreq(struct vbs_pep *vpep, struct rdma_cm_id *id,
		       struct rdma_cm_event *ev)
{
	struct vbs_connreq cr = { .id = id, .param = &ev->param.conn };
	struct vbs_domain *vdom;
	bool accepted;

	vdom = vbs_find_domain(id->device, id->port_num);
	if (!vdom) {
		rdma_reject(id, NULL, 0, IB_CM_REJ_CONSUMER_DEFINED);
		return 1;
	}
	cr.req.domain = &vdom->dom;
	vbs_addr_from(&cr.req.src_addr, (struct sockaddr *)&id->route.addr.src_addr);
	vbs_addr_from(&cr.req.dest_addr, (struct sockaddr *)&id->route.addr.dst_addr);
	accepted = kfi_pep_connreq(&vpep->pep, &cr.req, ev->param.conn.private_data,
				   ev->param.conn.private_data_len);
	kfi_domain_put(&vdom->dom);
	/* A rejected request's id is rdma_cm's to destroy. */
	return accepted ? 0 : 1;
}

/**
 * vbs_cm_handler() - rdma_cm event handler of every id the provider owns
 * @id: the id; its context is a &struct vbs_cm_ctx
 * @ev: the event
 *
 * A connection request arrives on a new id whose context is still the
 * listener's; the accepting endpoint takes the id over.
 *
 * Return: non-zero to make rdma_cm destroy @id.
 */
int vbs_cm_handler(struct rdma_cm_id *id, struct rdma_cm_event *ev)
{
	struct vbs_cm_ctx *ctx = id->context;

	if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST)
		return vbs_connreq(container_of(ctx, struct vbs_pep, cm), id, ev);
	if (ctx->passive)
		return vbs_pep_cm_event(container_of(ctx, struct vbs_pep, cm), id, ev);
	return vbs_ep_cm_event(container_of(ctx, struct vbs_ep, cm), id, ev);
}

int vbs_connect(struct kfi_ep *ep, const struct kfi_addr *dest,
		const void *private_data, u32 len)
{
	struct vbs_ep *vep = to_vep(ep);
	struct rdma_cm_id *id;
	int ret;

	if (vep->state != VBS_EP_IDLE || vep->id)
		return -EISCONN;
	memcpy(vep->pdata, private_data, len);
	vep->pdata_len = len;
	id = rdma_create_id(ep->net, vbs_cm_handler, &vep->cm, RDMA_PS_TCP,
			    IB_QPT_RC);
	if (IS_ERR(id))
		return PTR_ERR(id);
	/*
	 * Class n is DSCP n: rdma_cm puts the ToS byte in the GRH traffic
	 * class (RoCE), the IP header (iWARP) or the path's QoS class
	 * (InfiniBand); the two ECN bits below the DSCP stay clear.
	 */
	if (ep->attr.tclass)
		rdma_set_service_type(id, ep->attr.tclass << 2);
	vep->id = id;
	WRITE_ONCE(vep->state, VBS_EP_CONNECTING);
	/* rdma_cm binds to the source, which must be local in ep->net. */
	ret = rdma_resolve_addr(id, ep->attr.src_addr ?
				(struct sockaddr *)&ep->src_addr.sa : NULL,
				(struct sockaddr *)&dest->sa, VBS_CM_TIMEOUT_MS);
	if (ret) {
		vep->id = NULL;
		WRITE_ONCE(vep->state, VBS_EP_IDLE);
		rdma_destroy_id(id);
	}
	return ret;
}

int vbs_accept(struct kfi_ep *ep, struct kfi_connreq *req,
	       const void *private_data, u32 len)
{
	struct vbs_connreq *cr = container_of(req, struct vbs_connreq, req);
	const struct ib_device_attr *da = &to_vdom(ep->domain)->ibdev->attrs;
	struct vbs_ep *vep = to_vep(ep);
	struct rdma_conn_param param = {
		.private_data = private_data,
		.private_data_len = len,
		/* The request's parameters are already from our side's view. */
		.responder_resources = min_t(u32, cr->param->responder_resources,
					     da->max_qp_rd_atom),
		.initiator_depth = min_t(u32, cr->param->initiator_depth,
					 da->max_qp_init_rd_atom),
		.flow_control = 1,
		.rnr_retry_count = 7,
		.qp_num = vep->qp->qp_num,
	};
	int ret = -EISCONN;

	if (vep->state != VBS_EP_IDLE || vep->id)
		goto reject;
	/*
	 * The iWARP CM moves the QP on from INIT itself, in the accept,
	 * once it has the TCP connection the QP runs on.
	 */
	ret = vbs_qp_cm_modify(vep, cr->id, IB_QPS_INIT);
	if (!ret && !to_vdom(ep->domain)->iwarp)
		ret = vbs_qp_cm_modify(vep, cr->id, IB_QPS_RTR);
	if (!ret && !to_vdom(ep->domain)->iwarp)
		ret = vbs_qp_cm_modify(vep, cr->id, IB_QPS_RTS);
	if (ret)
		goto reject;

	/*
	 * No event reaches the new id while its request is being handled;
	 * from here on they go to the endpoint, which owns the id.
	 */
	WRITE_ONCE(vep->state, VBS_EP_CONNECTED);
	ret = rdma_accept(cr->id, &param);
	if (ret) {
		/* rdma_accept() rejected the request. */
		cr->rejected = true;
		WRITE_ONCE(vep->state, VBS_EP_IDLE);
		vbs_qp_error(vep);
		return ret;
	}
	vep->id = cr->id;
	cr->id->context = &vep->cm;
	return 0;

reject:
	vbs_reject(req, NULL, 0);
	return ret;
}

int vbs_reject(struct kfi_connreq *req, const void *private_data, u32 len)
{
	struct vbs_connreq *cr = container_of(req, struct vbs_connreq, req);

	if (cr->rejected)
		return 0;
	cr->rejected = true;
	return rdma_reject(cr->id, private_data, len, IB_CM_REJ_CONSUMER_DEFINED);
}

int vbs_disconnect(struct kfi_ep *ep)
{
	struct vbs_ep *vep = to_vep(ep);
	int ret;

	if (!vep->id)
		return -ENOTCONN;
	ret = rdma_disconnect(vep->id);
	/* Flush what is outstanding, as rdma_disconnect() does for its QPs. */
	vbs_qp_error(vep);
	return ret;
}

int vbs_pep_listen(struct kfi_pep *pep, const struct kfi_addr *addr,
		   int backlog)
{
	struct vbs_pep *vpep = to_vpep(pep);
	struct rdma_cm_id *id;
	int ret;

	vpep->cm.passive = true;
	id = rdma_create_id(pep->net, vbs_cm_handler, &vpep->cm, RDMA_PS_TCP,
			    IB_QPT_RC);
	if (IS_ERR(id))
		return PTR_ERR(id);
	ret = rdma_bind_addr(id, (struct sockaddr *)&addr->sa);
	if (!ret)
		ret = rdma_listen(id, backlog);
	if (ret) {
		rdma_destroy_id(id);
		return ret;
	}
	/*
	 * Published only now, so the removal handler never destroys an id
	 * this function still uses. A removal in between finds no id to
	 * give up and waits for vbs_pep_destroy() instead.
	 */
	WRITE_ONCE(vpep->id, id);
	return 0;
}

/*
 * Destroying the listening id waits for request handlers in flight. The id
 * is gone already when its device was removed (vbs_pep_cm_event()).
 */
void vbs_pep_destroy(struct kfi_pep *pep)
{
	struct rdma_cm_id *id = xchg(&to_vpep(pep)->id, NULL);

	if (id)
		rdma_destroy_id(id);
}

struct vbs_resolve {
	struct completion done;
	int status;
};

static int vbs_resolve_handler(struct rdma_cm_id *id, struct rdma_cm_event *ev)
{
	struct vbs_resolve *r = id->context;

	r->status = ev->event == RDMA_CM_EVENT_ADDR_RESOLVED ? 0 : -EHOSTUNREACH;
	complete(&r->done);
	return 0;
}

static bool vbs_addr_any(const struct kfi_addr *addr)
{
	if (addr->sa.sa_family == AF_INET6)
		return ipv6_addr_any(&addr->sin6.sin6_addr);
	return addr->sin.sin_addr.s_addr == htonl(INADDR_ANY);
}

/*
 * Which domain serves a request: the one the route to the destination
 * leaves through, or the one that owns the source address. rdma_cm
 * answers both, with a short-lived id.
 */
int vbs_resolve(struct kfi_domain *domain, const struct kfi_hints *hints,
		struct kfi_info *info)
{
	struct vbs_domain *vdom = to_vdom(domain);
	struct vbs_resolve r = { .status = -EHOSTUNREACH };
	const struct kfi_addr *src = NULL;
	struct rdma_cm_id *id;
	struct kfi_addr any;
	int ret;

	if (!hints->dest_addr && (!hints->src_addr || vbs_addr_any(hints->src_addr)))
		return 0;
	/*
	 * Only the device behind the address matters here: bind without the
	 * port, which stays free for the ULP's listener or connection and
	 * for the other domains kfi_getinfo() asks at the same time.
	 */
	if (hints->src_addr) {
		any = *hints->src_addr;
		if (any.sa.sa_family == AF_INET6)
			any.sin6.sin6_port = 0;
		else
			any.sin.sin_port = 0;
		src = &any;
	}
	init_completion(&r.done);
	id = rdma_create_id(kfi_hints_net(hints), vbs_resolve_handler, &r,
			    RDMA_PS_TCP, IB_QPT_RC);
	if (IS_ERR(id))
		return PTR_ERR(id);
	if (hints->dest_addr) {
		ret = rdma_resolve_addr(id, src ? (struct sockaddr *)&src->sa : NULL,
					(struct sockaddr *)&hints->dest_addr->sa,
					VBS_CM_TIMEOUT_MS);
		if (!ret &&
		    !wait_for_completion_timeout(&r.done,
						 msecs_to_jiffies(2 * VBS_CM_TIMEOUT_MS)))
			ret = -ETIMEDOUT;
		if (!ret)
			ret = r.status;
	} else {
		ret = rdma_bind_addr(id, (struct sockaddr *)&src->sa);
	}
	if (!ret && (id->device != vdom->ibdev || id->port_num != vdom->port))
		ret = -ENODATA;
	if (!ret && hints->dest_addr)
		vbs_addr_from(&info->src_addr,
			      (struct sockaddr *)&id->route.addr.src_addr);
	rdma_destroy_id(id);
	return ret ? -ENODATA : 0;
}
