/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Tracepoints of the kfabric core: control operations (fabrics, domains,
 * queues, endpoints, connection events) and the data path (every posted
 * operation and every completion). Enable with
 * /sys/kernel/tracing/events/kfabric/.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM kfabric

#if !defined(_TRACE_KFABRIC_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TRACE_KFABRIC_H

#include <linux/tracepoint.h>
#include <rdma/kfi/provider.h>

TRACE_DEFINE_ENUM(KFI_WC_SEND);
TRACE_DEFINE_ENUM(KFI_WC_RECV);
TRACE_DEFINE_ENUM(KFI_WC_READ);
TRACE_DEFINE_ENUM(KFI_WC_WRITE);
TRACE_DEFINE_ENUM(KFI_WC_MR_MAP);
TRACE_DEFINE_ENUM(KFI_WC_MR_INV);

#define show_kfi_op(op)							\
	__print_symbolic(op,						\
			 { KFI_WC_SEND, "SEND" }, { KFI_WC_RECV, "RECV" },	\
			 { KFI_WC_READ, "READ" }, { KFI_WC_WRITE, "WRITE" },	\
			 { KFI_WC_MR_MAP, "MR_MAP" }, { KFI_WC_MR_INV, "MR_INV" })

TRACE_DEFINE_ENUM(KFI_CM_CONNREQ);
TRACE_DEFINE_ENUM(KFI_CM_CONNECTED);
TRACE_DEFINE_ENUM(KFI_CM_REJECTED);
TRACE_DEFINE_ENUM(KFI_CM_UNREACHABLE);
TRACE_DEFINE_ENUM(KFI_CM_DISCONNECTED);
TRACE_DEFINE_ENUM(KFI_CM_ADDR_CHANGE);
TRACE_DEFINE_ENUM(KFI_CM_DOMAIN_REMOVAL);

#define show_kfi_cm(type)						\
	__print_symbolic(type,						\
			 { KFI_CM_CONNREQ, "CONNREQ" },			\
			 { KFI_CM_CONNECTED, "CONNECTED" },		\
			 { KFI_CM_REJECTED, "REJECTED" },		\
			 { KFI_CM_UNREACHABLE, "UNREACHABLE" },		\
			 { KFI_CM_DISCONNECTED, "DISCONNECTED" },	\
			 { KFI_CM_ADDR_CHANGE, "ADDR_CHANGE" },		\
			 { KFI_CM_DOMAIN_REMOVAL, "DOMAIN_REMOVAL" })

DECLARE_EVENT_CLASS(kfi_fabric_class,
		    TP_PROTO(const struct kfi_fabric *fabric),
		    TP_ARGS(fabric),
		    TP_STRUCT__entry(__string(name, fabric->name)),
		    TP_fast_assign(__assign_str(name);),
		    TP_printk("fabric=%s", __get_str(name)));

DEFINE_EVENT(kfi_fabric_class, kfi_fabric_register,
	     TP_PROTO(const struct kfi_fabric *fabric), TP_ARGS(fabric));
DEFINE_EVENT(kfi_fabric_class, kfi_fabric_unregister,
	     TP_PROTO(const struct kfi_fabric *fabric), TP_ARGS(fabric));

DECLARE_EVENT_CLASS(kfi_domain_class,
		    TP_PROTO(const struct kfi_domain *domain),
		    TP_ARGS(domain),
		    TP_STRUCT__entry(__string(fabric, domain->fabric->name)
				     __string(name, domain->attr.name)
				     __field(u64, caps)),
		    TP_fast_assign(__assign_str(fabric);
				   __assign_str(name);
				   __entry->caps = domain->attr.caps;),
		    TP_printk("fabric=%s domain=%s caps=%#llx", __get_str(fabric),
			      __get_str(name), __entry->caps));

DEFINE_EVENT(kfi_domain_class, kfi_domain_register,
	     TP_PROTO(const struct kfi_domain *domain), TP_ARGS(domain));
DEFINE_EVENT(kfi_domain_class, kfi_domain_unregister,
	     TP_PROTO(const struct kfi_domain *domain), TP_ARGS(domain));

DECLARE_EVENT_CLASS(kfi_cq_class,
		    TP_PROTO(const struct kfi_cq *cq),
		    TP_ARGS(cq),
		    TP_STRUCT__entry(__string(domain, cq->domain->attr.name)
				     __field(const void *, cq)
				     __field(u32, nr_cqe)
				     __field(int, vector)
				     __field(int, poll_ctx)),
		    TP_fast_assign(__assign_str(domain);
				   __entry->cq = cq;
				   __entry->nr_cqe = cq->attr.nr_cqe;
				   __entry->vector = cq->attr.comp_vector;
				   __entry->poll_ctx = cq->attr.poll_ctx;),
		    TP_printk("domain=%s cq=%p nr_cqe=%u vector=%d poll_ctx=%d",
			      __get_str(domain), __entry->cq, __entry->nr_cqe,
			      __entry->vector, __entry->poll_ctx));

DEFINE_EVENT(kfi_cq_class, kfi_cq_alloc,
	     TP_PROTO(const struct kfi_cq *cq), TP_ARGS(cq));
DEFINE_EVENT(kfi_cq_class, kfi_cq_free,
	     TP_PROTO(const struct kfi_cq *cq), TP_ARGS(cq));

DECLARE_EVENT_CLASS(kfi_ep_class,
		    TP_PROTO(const struct kfi_ep *ep),
		    TP_ARGS(ep),
		    TP_STRUCT__entry(__string(domain, ep->domain->attr.name)
				     __field(u32, id)
				     __field(u32, send_ops)
				     __field(u32, recv_ops)),
		    TP_fast_assign(__assign_str(domain);
				   __entry->id = ep->id;
				   __entry->send_ops = ep->attr.max_send_ops;
				   __entry->recv_ops = ep->attr.max_recv_ops;),
		    TP_printk("domain=%s ep=%u send_ops=%u recv_ops=%u",
			      __get_str(domain), __entry->id, __entry->send_ops,
			      __entry->recv_ops));

DEFINE_EVENT(kfi_ep_class, kfi_ep_alloc,
	     TP_PROTO(const struct kfi_ep *ep), TP_ARGS(ep));
DEFINE_EVENT(kfi_ep_class, kfi_ep_free,
	     TP_PROTO(const struct kfi_ep *ep), TP_ARGS(ep));

DECLARE_EVENT_CLASS(kfi_ep_ret_class,
		    TP_PROTO(const struct kfi_ep *ep, int ret),
		    TP_ARGS(ep, ret),
		    TP_STRUCT__entry(__field(u32, id)
				     __field(int, ret)),
		    TP_fast_assign(__entry->id = ep->id;
				   __entry->ret = ret;),
		    TP_printk("ep=%u ret=%d", __entry->id, __entry->ret));

DEFINE_EVENT(kfi_ep_ret_class, kfi_connect,
	     TP_PROTO(const struct kfi_ep *ep, int ret), TP_ARGS(ep, ret));
DEFINE_EVENT(kfi_ep_ret_class, kfi_accept,
	     TP_PROTO(const struct kfi_ep *ep, int ret), TP_ARGS(ep, ret));
DEFINE_EVENT(kfi_ep_ret_class, kfi_disconnect,
	     TP_PROTO(const struct kfi_ep *ep, int ret), TP_ARGS(ep, ret));

TRACE_EVENT(kfi_cm_event,
	    TP_PROTO(const struct kfi_ep *ep, const struct kfi_cm_event *ev),
	    TP_ARGS(ep, ev),
	    TP_STRUCT__entry(__field(u32, id)
			     __field(int, type)
			     __field(int, status)
			     __field(u32, pdata_len)),
	    TP_fast_assign(__entry->id = ep->id;
			   __entry->type = ev->type;
			   __entry->status = ev->status;
			   __entry->pdata_len = ev->private_data_len;),
	    TP_printk("ep=%u event=%s status=%d private_data_len=%u",
		      __entry->id, show_kfi_cm(__entry->type), __entry->status,
		      __entry->pdata_len));

TRACE_EVENT(kfi_post,
	    TP_PROTO(const struct kfi_ep *ep, enum kfi_wc_opcode op,
		     const struct kfi_msg *msg, u32 flags, int ret),
	    TP_ARGS(ep, op, msg, flags, ret),
	    TP_STRUCT__entry(__field(u32, id)
			     __field(int, op)
			     __field(u64, len)
			     __field(u32, niov)
			     __field(u32, flags)
			     __field(int, ret)),
	    TP_fast_assign(__entry->id = ep ? ep->id : 0;
			   __entry->op = op;
			   __entry->len = kfi_msg_len(msg);
			   __entry->niov = msg ? msg->niov : 0;
			   __entry->flags = flags;
			   __entry->ret = ret;),
	    TP_printk("ep=%u op=%s len=%llu niov=%u flags=%#x ret=%d",
		      __entry->id, show_kfi_op(__entry->op), __entry->len,
		      __entry->niov, __entry->flags, __entry->ret));

TRACE_EVENT(kfi_complete,
	    TP_PROTO(const struct kfi_cq *cq, const struct kfi_wc *wc),
	    TP_ARGS(cq, wc),
	    TP_STRUCT__entry(__field(const void *, cq)
			     __field(u32, id)
			     __field(int, op)
			     __field(int, status)
			     __field(u32, byte_len)
			     __field(u32, flags)),
	    TP_fast_assign(__entry->cq = cq;
			   __entry->id = wc->ep ? wc->ep->id : 0;
			   __entry->op = wc->opcode;
			   __entry->status = wc->status;
			   __entry->byte_len = wc->byte_len;
			   __entry->flags = wc->flags;),
	    TP_printk("cq=%p ep=%u op=%s status=%d byte_len=%u flags=%#x",
		      __entry->cq, __entry->id, show_kfi_op(__entry->op),
		      __entry->status, __entry->byte_len, __entry->flags));

TRACE_EVENT(kfi_mr_map,
	    TP_PROTO(const struct kfi_ep *ep, const struct kfi_mr *mr,
		     u32 access, int ret),
	    TP_ARGS(ep, mr, access, ret),
	    TP_STRUCT__entry(__field(u32, id)
			     __field(u64, key)
			     __field(u64, addr)
			     __field(u64, length)
			     __field(u32, access)
			     __field(int, ret)),
	    TP_fast_assign(__entry->id = ep->id;
			   __entry->key = mr->key;
			   __entry->addr = mr->addr;
			   __entry->length = mr->length;
			   __entry->access = access;
			   __entry->ret = ret;),
	    TP_printk("ep=%u key=%#llx addr=%#llx length=%llu access=%#x ret=%d",
		      __entry->id, __entry->key, __entry->addr,
		      __entry->length, __entry->access, __entry->ret));

TRACE_EVENT(kfi_mr_invalidate,
	    TP_PROTO(const struct kfi_ep *ep, const struct kfi_mr *mr, int ret),
	    TP_ARGS(ep, mr, ret),
	    TP_STRUCT__entry(__field(u32, id)
			     __field(u64, key)
			     __field(int, ret)),
	    TP_fast_assign(__entry->id = ep->id;
			   __entry->key = mr->key;
			   __entry->ret = ret;),
	    TP_printk("ep=%u key=%#llx ret=%d", __entry->id, __entry->key,
		      __entry->ret));

#endif /* _TRACE_KFABRIC_H */

#include <trace/define_trace.h>
