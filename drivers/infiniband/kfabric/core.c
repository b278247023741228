// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric core: fabric and domain registry, clients and discovery.
 *
 * Locking: kfi_lock protects the list of fabrics and each fabric's list of
 * domains; discovery holds it only to take references, never while a
 * provider resolves an address. kfi_clients_lock serialises client
 * callbacks with the registration of domains and clients, so a client sees
 * add and remove for a domain exactly once each, in that order. It is
 * taken outside kfi_lock: a domain joins or leaves the list and gets its
 * client callbacks in one kfi_clients_lock section, so (un)registering a
 * client sees it either before or after, never in between. Client
 * callbacks may call anything in kfabric except client and domain
 * (un)registration.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/log2.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <kunit/visibility.h>

#include "kfi_core.h"
#include <trace/events/kfabric.h>

/* Protects kfi_fabrics and each fabric's domains and peps lists. */
DEFINE_MUTEX(kfi_lock);
LIST_HEAD(kfi_fabrics);
/* Frees of passive endpoints wait here for fabric removal to destroy them. */
DECLARE_WAIT_QUEUE_HEAD(kfi_wait);

static DEFINE_MUTEX(kfi_clients_lock);
static LIST_HEAD(kfi_clients);
static DEFINE_XARRAY_ALLOC(kfi_client_ids);

struct workqueue_struct *kfi_comp_wq;
struct workqueue_struct *kfi_comp_unbound_wq;
/* kfi_getinfo()'s resolutions; storage ULPs reconnect under reclaim. */
static struct workqueue_struct *kfi_resolve_wq;

/*
 * ntb.h-style validation: required and optional operations are listed once,
 * here and in the kernel-doc of &struct kfi_provider_ops.
 */
static bool kfi_provider_ops_valid(const struct kfi_provider_ops *ops)
{
	if (!ops)
		return false;
	/* Required of every provider. */
	if (!ops->cq_create || !ops->cq_destroy || !ops->ep_create ||
	    !ops->ep_drain || !ops->ep_destroy || !ops->connect ||
	    !ops->accept || !ops->reject || !ops->disconnect ||
	    !ops->pep_listen || !ops->pep_destroy || !ops->post_send ||
	    !ops->post_recv)
		return false;
	/* The read/write helper: all or nothing. */
	if (!!ops->rw_init != !!ops->rw_post || !!ops->rw_init != !!ops->rw_destroy)
		return false;
	return true;
}

/* Operations a domain's capabilities require, checked at registration. */
static bool kfi_domain_ops_valid(const struct kfi_domain *domain)
{
	const struct kfi_provider_ops *ops = domain->fabric->ops;

	if (domain->attr.caps & (KFI_CAP_RMA | KFI_CAP_REMOTE_INV)) {
		if (!ops->post_read || !ops->post_write || !ops->mr_create ||
		    !ops->mr_destroy || !ops->mr_map || !ops->mr_invalidate)
			return false;
	}
	return true;
}

/**
 * kfi_fabric_register() - register a provider's fabric
 * @fabric: the fabric, filled in by the provider
 *
 * Checks the operations table and the object sizes, and makes the fabric
 * visible to kfi_getinfo(). Domains are added afterwards with
 * kfi_domain_register().
 *
 * Context: process context; takes kfi_lock.
 * Return: 0, -EINVAL for an invalid fabric, -EEXIST when the name is taken.
 */
int kfi_fabric_register(struct kfi_fabric *fabric)
{
	struct kfi_fabric *f;

	if (!fabric || !fabric->name || !fabric->name[0] ||
	    strlen(fabric->name) >= KFI_NAME_MAX ||
	    !kfi_provider_ops_valid(fabric->ops) ||
	    fabric->addr_format == KFI_ADDR_UNSPEC ||
	    fabric->addr_format > KFI_ADDR_NAME ||
	    fabric->domain_size < sizeof(struct kfi_domain) ||
	    fabric->cq_size < sizeof(struct kfi_cq) ||
	    fabric->ep_size < sizeof(struct kfi_ep) ||
	    fabric->pep_size < sizeof(struct kfi_pep) ||
	    fabric->mr_size < sizeof(struct kfi_mr))
		return -EINVAL;

	guard(mutex)(&kfi_lock);
	list_for_each_entry(f, &kfi_fabrics, list)
		if (!strcmp(f->name, fabric->name))
			return -EEXIST;
	INIT_LIST_HEAD(&fabric->domains);
	INIT_LIST_HEAD(&fabric->peps);
	list_add_tail(&fabric->list, &kfi_fabrics);
	fabric->registered = true;
	kfi_debugfs_add_fabric(fabric);
	trace_kfi_fabric_register(fabric);
	return 0;
}
EXPORT_SYMBOL_GPL(kfi_fabric_register);

/**
 * kfi_fabric_unregister() - remove a fabric
 * @fabric: a registered fabric
 *
 * Unregisters the domains the provider left registered and destroys the
 * passive endpoints ULPs still hold (they remain allocated until the ULP
 * frees them; further calls on them fail). Called from the provider's
 * module exit, which cannot run while a ULP holds objects of the fabric.
 *
 * Context: process context; may sleep.
 */
void kfi_fabric_unregister(struct kfi_fabric *fabric)
{
	struct kfi_domain *domain;
	struct kfi_pep *pep;

	for (;;) {
		mutex_lock(&kfi_lock);
		domain = list_first_entry_or_null(&fabric->domains,
						  struct kfi_domain, list);
		mutex_unlock(&kfi_lock);
		if (!domain)
			break;
		kfi_domain_unregister(domain);
	}

	mutex_lock(&kfi_lock);
	fabric->registered = false;
	list_del(&fabric->list);
	mutex_unlock(&kfi_lock);

	for (;;) {
		mutex_lock(&kfi_lock);
		pep = list_first_entry_or_null(&fabric->peps, struct kfi_pep, entry);
		if (pep)
			list_del_init(&pep->entry);
		mutex_unlock(&kfi_lock);
		if (!pep)
			break;
		kfi_pep_kill(pep);
	}
	trace_kfi_fabric_unregister(fabric);
	kfi_debugfs_remove_fabric(fabric);
}
EXPORT_SYMBOL_GPL(kfi_fabric_unregister);

/**
 * kfi_domain_alloc() - allocate a domain
 * @fabric: the registered fabric it belongs to
 * @dev: the device behind it
 *
 * Allocates &kfi_fabric.domain_size bytes; the provider's structure embeds
 * &struct kfi_domain first. The provider fills in &kfi_domain.attr and then
 * calls kfi_domain_register(), or kfi_domain_free() to give up.
 *
 * Return: the domain or NULL when out of memory.
 */
struct kfi_domain *kfi_domain_alloc(struct kfi_fabric *fabric, struct device *dev)
{
	struct kfi_domain *domain;

	domain = kzalloc(fabric->domain_size, GFP_KERNEL);
	if (!domain)
		return NULL;
	domain->stats = alloc_percpu(struct kfi_domain_stats);
	if (!domain->stats)
		goto out_free;
	if (init_srcu_struct(&domain->srcu))
		goto out_stats;
	domain->fabric = fabric;
	domain->dev = dev;
	kref_init(&domain->ref);
	mutex_init(&domain->lock);
	init_waitqueue_head(&domain->wait);
	INIT_LIST_HEAD(&domain->list);
	INIT_LIST_HEAD(&domain->cqs);
	INIT_LIST_HEAD(&domain->eps);
	INIT_LIST_HEAD(&domain->mrs);
	/* An allocating xarray keeps NULL entries, and their marks. */
	xa_init_flags(&domain->client_data, XA_FLAGS_ALLOC);
	return domain;

out_stats:
	free_percpu(domain->stats);
out_free:
	kfree(domain);
	return NULL;
}
EXPORT_SYMBOL_GPL(kfi_domain_alloc);

static void kfi_domain_release(struct kref *ref)
{
	struct kfi_domain *domain = container_of(ref, struct kfi_domain, ref);

	WARN_ON(!list_empty(&domain->eps) || !list_empty(&domain->cqs) ||
		!list_empty(&domain->mrs));
	if (domain->fabric->ops->domain_release)
		domain->fabric->ops->domain_release(domain);
	xa_destroy(&domain->client_data);
	cleanup_srcu_struct(&domain->srcu);
	free_percpu(domain->stats);
	mutex_destroy(&domain->lock);
	kfree(domain);
}

/**
 * kfi_domain_free() - free a domain that was never registered
 * @domain: a domain from kfi_domain_alloc() that is not registered,
 *	because registration was not attempted or failed
 */
void kfi_domain_free(struct kfi_domain *domain)
{
	if (WARN_ON(domain->registered))
		return;
	kref_put(&domain->ref, kfi_domain_release);
}
EXPORT_SYMBOL_GPL(kfi_domain_free);

/**
 * kfi_domain_get() - take a reference on a domain
 * @domain: the domain
 *
 * A reference keeps the memory of the domain and its provider module, not
 * the device: the domain may still be unregistered, after which calls on
 * it fail with -ENODEV.
 */
void kfi_domain_get(struct kfi_domain *domain)
{
	__module_get(domain->fabric->owner);
	kref_get(&domain->ref);
}
EXPORT_SYMBOL_GPL(kfi_domain_get);

/**
 * kfi_domain_put() - drop a reference taken with kfi_domain_get()
 * @domain: the domain
 *
 * Context: process context; may sleep (the last reference frees the
 * domain's SRCU state).
 */
void kfi_domain_put(struct kfi_domain *domain)
{
	struct module *owner = domain->fabric->owner;

	kref_put(&domain->ref, kfi_domain_release);
	module_put(owner);
}
EXPORT_SYMBOL_GPL(kfi_domain_put);

/*
 * kfi_domain_get_live() - reference a domain for a new ULP object. Fails
 * once the domain is being removed or its provider module is going away.
 * Caller holds domain->lock.
 */
bool kfi_domain_get_live(struct kfi_domain *domain)
{
	lockdep_assert_held(&domain->lock);
	if (!domain->registered || domain->dying)
		return false;
	if (!try_module_get(domain->fabric->owner))
		return false;
	kref_get(&domain->ref);
	return true;
}

static bool kfi_domain_attr_valid(const struct kfi_domain *domain)
{
	const struct kfi_domain_attr *a = &domain->attr;

	if (!a->name[0] || strnlen(a->name, KFI_NAME_MAX) >= KFI_NAME_MAX)
		return false;
	if (a->caps & ~KFI_CAP_ALL)
		return false;
	/* KFI_EP_RDM is reserved until it has data operations of its own. */
	if (a->ep_types != BIT(KFI_EP_MSG))
		return false;
	if (a->addr_format != domain->fabric->addr_format ||
	    a->protocol == KFI_PROTO_UNSPEC || a->protocol > KFI_PROTO_TEST)
		return false;
	if (!a->max_ep || !a->max_cq || !a->max_cqe || !a->max_send_ops ||
	    !a->max_recv_ops || !a->max_send_sge || !a->max_recv_sge ||
	    !a->max_msg_size || !a->num_comp_vectors)
		return false;
	if (a->max_cm_data > KFI_CM_DATA_MAX ||
	    a->max_reject_data > KFI_CM_DATA_MAX)
		return false;
	if ((a->caps & KFI_CAP_RMA) && (!a->max_rma_sge || !a->max_rma_size ||
					!a->max_mr || !a->max_mr_segs ||
					!a->mr_key_size || a->mr_key_size > 8 ||
					a->mr_key_cycle < 2))
		return false;
	/* ULPs size the blocks of their regions' buffers by it. */
	if ((a->caps & KFI_CAP_RMA) &&
	    (!is_power_of_2(a->max_mr_block) || a->max_mr_block < PAGE_SIZE ||
	     a->max_mr_block > a->max_mr_size))
		return false;
	if ((a->caps & KFI_CAP_RMA_IMM) && !a->cq_data_size)
		return false;
	if (!!(a->caps & KFI_CAP_AUTH_KEY) != !!a->auth_key_size ||
	    a->auth_key_size > sizeof(u32))
		return false;
	if (!!(a->caps & KFI_CAP_TCLASS) != !!a->tclass_mask)
		return false;
	return kfi_domain_ops_valid(domain);
}

/* Marks a client's slot once its add() succeeded, as ib_core does. */
#define KFI_CLIENT_ADDED XA_MARK_1

static void kfi_client_add_one(struct kfi_client *client,
			       struct kfi_domain *domain)
{
	int ret;

	lockdep_assert_held(&kfi_clients_lock);
	if (xa_get_mark(&domain->client_data, client->id, KFI_CLIENT_ADDED))
		return;
	/* The slot exists before add() so that it can store its data. */
	if (xa_err(xa_store(&domain->client_data, client->id, NULL, GFP_KERNEL)))
		return;
	if (client->add) {
		ret = client->add(domain);
		if (ret) {
			xa_erase(&domain->client_data, client->id);
			dev_dbg(domain->dev, "kfabric client %s declined %s: %d\n",
				client->name, domain->attr.name, ret);
			return;
		}
	}
	xa_set_mark(&domain->client_data, client->id, KFI_CLIENT_ADDED);
}

static void kfi_client_remove_one(struct kfi_client *client,
				  struct kfi_domain *domain)
{
	lockdep_assert_held(&kfi_clients_lock);
	if (!xa_get_mark(&domain->client_data, client->id, KFI_CLIENT_ADDED))
		return;
	xa_clear_mark(&domain->client_data, client->id, KFI_CLIENT_ADDED);
	if (client->remove)
		client->remove(domain, xa_load(&domain->client_data, client->id));
	xa_erase(&domain->client_data, client->id);
}

/*
 * Referenced snapshot of the registered domains, for client callbacks that
 * must not run under kfi_lock. Returns NULL with *nr = 0 when there are
 * none, ERR_PTR(-ENOMEM) when the array cannot be allocated.
 */
static struct kfi_domain **kfi_domains_snapshot(unsigned int *nr, gfp_t gfp)
{
	struct kfi_domain *domain, **doms = NULL;
	struct kfi_fabric *fabric;
	unsigned int n = 0, max = 0;

	guard(mutex)(&kfi_lock);
	list_for_each_entry(fabric, &kfi_fabrics, list)
		list_for_each_entry(domain, &fabric->domains, list)
			max++;
	*nr = 0;
	if (!max)
		return NULL;
	doms = kmalloc_objs(*doms, max, gfp);
	if (!doms)
		return ERR_PTR(-ENOMEM);
	list_for_each_entry(fabric, &kfi_fabrics, list) {
		list_for_each_entry(domain, &fabric->domains, list) {
			kref_get(&domain->ref);
			doms[n++] = domain;
		}
	}
	*nr = n;
	return doms;
}

static void kfi_domains_snapshot_put(struct kfi_domain **doms, unsigned int nr)
{
	while (nr--)
		kref_put(&doms[nr]->ref, kfi_domain_release);
	kfree(doms);
}

/**
 * kfi_domain_register() - make a domain visible
 * @domain: a domain from kfi_domain_alloc() with its attributes filled in
 *
 * Checks the attributes against the fabric's operations, adds the domain
 * to discovery and calls every client's add().
 *
 * Context: process context; may sleep.
 * Return: 0, -EINVAL for inconsistent attributes, -EEXIST for a duplicate
 * name, -ENODEV when the fabric is not registered.
 */
int kfi_domain_register(struct kfi_domain *domain)
{
	struct kfi_fabric *fabric = domain->fabric;
	struct kfi_client *client;
	struct kfi_domain *d;

	if (!kfi_domain_attr_valid(domain))
		return -EINVAL;

	mutex_lock(&kfi_clients_lock);
	mutex_lock(&kfi_lock);
	if (!fabric->registered) {
		mutex_unlock(&kfi_lock);
		mutex_unlock(&kfi_clients_lock);
		return -ENODEV;
	}
	list_for_each_entry(d, &fabric->domains, list) {
		if (!strcmp(d->attr.name, domain->attr.name)) {
			mutex_unlock(&kfi_lock);
			mutex_unlock(&kfi_clients_lock);
			return -EEXIST;
		}
	}
	mutex_lock(&domain->lock);
	domain->registered = true;
	mutex_unlock(&domain->lock);
	list_add_tail(&domain->list, &fabric->domains);
	mutex_unlock(&kfi_lock);

	kfi_debugfs_add_domain(domain);
	trace_kfi_domain_register(domain);

	list_for_each_entry(client, &kfi_clients, list)
		kfi_client_add_one(client, domain);
	mutex_unlock(&kfi_clients_lock);
	return 0;
}
EXPORT_SYMBOL_GPL(kfi_domain_register);

/**
 * kfi_domain_register_private() - make a domain usable by its provider only
 * @domain: a domain from kfi_domain_alloc() with its attributes filled in
 *
 * For a domain that only its provider uses, such as one its tests set up
 * with no device behind it: objects can be created on it as on a domain
 * kfi_domain_register() made visible, but discovery never returns it and
 * clients are not told about it, so no ULP reaches it, and its name need
 * not be unique. The provider removes it with kfi_domain_unregister()
 * before it unregisters the fabric.
 *
 * Context: process context; may sleep.
 * Return: 0, -EINVAL for inconsistent attributes, -ENODEV when the fabric
 * is not registered.
 */
int kfi_domain_register_private(struct kfi_domain *domain)
{
	if (!kfi_domain_attr_valid(domain))
		return -EINVAL;

	guard(mutex)(&kfi_lock);
	if (!domain->fabric->registered)
		return -ENODEV;
	mutex_lock(&domain->lock);
	domain->registered = true;
	mutex_unlock(&domain->lock);
	trace_kfi_domain_register(domain);
	return 0;
}
EXPORT_SYMBOL_GPL(kfi_domain_register_private);

/**
 * kfi_domain_unregister() - remove a domain
 * @domain: a registered domain
 *
 * Removes the domain from discovery, calls every client's remove() (in the
 * reverse order of registration), and then destroys what ULPs left on it:
 * each endpoint gets %KFI_CM_DOMAIN_REMOVAL, is drained so that its
 * outstanding operations complete with -ECANCELED, and is destroyed; then
 * memory regions and completion queues are destroyed. The ULP's structures
 * stay allocated, and calls on them fail with -ENODEV, until the ULP frees
 * them. Returns once the provider resources of every object are released,
 * so the provider may then tear down its device. Drops the reference of
 * kfi_domain_alloc().
 *
 * Context: process context; may sleep.
 */
void kfi_domain_unregister(struct kfi_domain *domain)
{
	struct kfi_client *client;

	/*
	 * Unlinking under kfi_clients_lock: a client unregistering
	 * concurrently either finds the domain in its snapshot and removes
	 * itself, or is off the client list by the time it is unlinked.
	 */
	mutex_lock(&kfi_clients_lock);
	mutex_lock(&kfi_lock);
	list_del_init(&domain->list);
	mutex_unlock(&kfi_lock);
	list_for_each_entry_reverse(client, &kfi_clients, list)
		kfi_client_remove_one(client, domain);
	mutex_unlock(&kfi_clients_lock);

	kfi_domain_kill_objects(domain);

	mutex_lock(&domain->lock);
	domain->registered = false;
	mutex_unlock(&domain->lock);

	trace_kfi_domain_unregister(domain);
	kfi_debugfs_remove_domain(domain);
	kref_put(&domain->ref, kfi_domain_release);
}
EXPORT_SYMBOL_GPL(kfi_domain_unregister);

/**
 * kfi_register_client() - register a ULP for domain notifications
 * @client: the client; @client->add runs for every registered domain
 *
 * Context: process context; may sleep.
 * Return: 0 or -ENOMEM.
 */
int kfi_register_client(struct kfi_client *client)
{
	struct kfi_domain **doms;
	unsigned int i, nr;
	int ret;

	ret = xa_alloc(&kfi_client_ids, &client->id, client, xa_limit_31b,
		       GFP_KERNEL);
	if (ret)
		return ret;

	mutex_lock(&kfi_clients_lock);
	/*
	 * Domains registered after the snapshot see the client in the list
	 * once kfi_domain_register() gets kfi_clients_lock.
	 */
	doms = kfi_domains_snapshot(&nr, GFP_KERNEL);
	if (IS_ERR(doms)) {
		mutex_unlock(&kfi_clients_lock);
		xa_erase(&kfi_client_ids, client->id);
		return PTR_ERR(doms);
	}
	list_add_tail(&client->list, &kfi_clients);
	for (i = 0; i < nr; i++)
		if (!list_empty(&doms[i]->list))
			kfi_client_add_one(client, doms[i]);
	mutex_unlock(&kfi_clients_lock);
	kfi_domains_snapshot_put(doms, nr);
	return 0;
}
EXPORT_SYMBOL_GPL(kfi_register_client);

/**
 * kfi_unregister_client() - unregister a ULP
 * @client: a registered client
 *
 * Calls @client->remove for every domain it was added to, then returns; no
 * callback of the client runs after that.
 *
 * Context: process context; may sleep.
 */
void kfi_unregister_client(struct kfi_client *client)
{
	struct kfi_domain **doms;
	unsigned int i, nr;

	mutex_lock(&kfi_clients_lock);
	list_del(&client->list);
	/*
	 * Domains unregistered meanwhile already called remove() themselves;
	 * the mark makes a second call a no-op. Unregistration cannot fail,
	 * so the snapshot may not either.
	 */
	doms = kfi_domains_snapshot(&nr, GFP_KERNEL | __GFP_NOFAIL);
	for (i = 0; i < nr; i++)
		kfi_client_remove_one(client, doms[i]);
	mutex_unlock(&kfi_clients_lock);
	kfi_domains_snapshot_put(doms, nr);
	xa_erase(&kfi_client_ids, client->id);
}
EXPORT_SYMBOL_GPL(kfi_unregister_client);

/**
 * kfi_get_client_data() - a client's data for a domain
 * @domain: the domain
 * @client: the client
 *
 * Return: what the client stored with kfi_set_client_data(), or NULL.
 */
void *kfi_get_client_data(struct kfi_domain *domain, struct kfi_client *client)
{
	return xa_load(&domain->client_data, client->id);
}
EXPORT_SYMBOL_GPL(kfi_get_client_data);

/**
 * kfi_set_client_data() - store a client's data for a domain
 * @domain: the domain
 * @client: the client, from within its add() callback or later
 * @data: the data, passed back to remove()
 */
void kfi_set_client_data(struct kfi_domain *domain, struct kfi_client *client,
			 void *data)
{
	WARN_ON(xa_is_err(xa_store(&domain->client_data, client->id, data,
				   GFP_KERNEL)));
}
EXPORT_SYMBOL_GPL(kfi_set_client_data);

/**
 * kfi_domain_device() - the device behind a domain
 * @domain: the domain
 *
 * For messages and NUMA placement; kfabric maps buffers itself.
 *
 * Return: the device.
 */
struct device *kfi_domain_device(struct kfi_domain *domain)
{
	return domain->dev;
}
EXPORT_SYMBOL_GPL(kfi_domain_device);

/**
 * kfi_domain_name() - name of a domain
 * @domain: the domain
 *
 * Return: the name, unique within the domain's fabric.
 */
const char *kfi_domain_name(const struct kfi_domain *domain)
{
	return domain->attr.name;
}
EXPORT_SYMBOL_GPL(kfi_domain_name);

/**
 * kfi_domain_attr() - attributes of a domain
 * @domain: the domain
 *
 * Return: the attributes; they do not change while the domain exists.
 */
const struct kfi_domain_attr *kfi_domain_attr(const struct kfi_domain *domain)
{
	return &domain->attr;
}
EXPORT_SYMBOL_GPL(kfi_domain_attr);

static bool kfi_addr_valid(const struct kfi_addr *addr)
{
	switch (addr->format) {
	case KFI_ADDR_INET:
		return addr->sa.sa_family == AF_INET ||
		       addr->sa.sa_family == AF_INET6;
	case KFI_ADDR_NAME:
		return strnlen(addr->name.node, KFI_NAME_MAX) < KFI_NAME_MAX;
	default:
		return false;
	}
}

/**
 * kfi_hints_valid() - check hints before matching
 * @hints: hints from a ULP
 *
 * Return: 0 or -EINVAL for values no domain could ever match (unknown
 * capability bits, out-of-range enums, inconsistent address formats).
 */
VISIBLE_IF_KUNIT int kfi_hints_valid(const struct kfi_hints *hints)
{
	enum kfi_addr_format fmt = hints->addr_format;

	if (hints->caps & ~KFI_CAP_ALL)
		return -EINVAL;
	if (hints->ep_type > KFI_EP_RDM || hints->protocol > KFI_PROTO_TEST ||
	    fmt > KFI_ADDR_NAME)
		return -EINVAL;
	if (hints->src_addr) {
		if (!kfi_addr_valid(hints->src_addr))
			return -EINVAL;
		if (fmt != KFI_ADDR_UNSPEC && fmt != hints->src_addr->format)
			return -EINVAL;
		fmt = hints->src_addr->format;
	}
	if (hints->dest_addr) {
		if (!kfi_addr_valid(hints->dest_addr))
			return -EINVAL;
		if (fmt != KFI_ADDR_UNSPEC && fmt != hints->dest_addr->format)
			return -EINVAL;
	}
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(kfi_hints_valid);

/**
 * kfi_domain_matches() - does a domain satisfy every hint?
 * @domain: a registered domain
 * @hints: valid hints
 *
 * Only the attributes are compared; addresses are the provider's business
 * (&kfi_provider_ops.resolve) apart from their format.
 *
 * Return: true when it does.
 */
VISIBLE_IF_KUNIT bool kfi_domain_matches(const struct kfi_domain *domain,
					 const struct kfi_hints *hints)
{
	const struct kfi_domain_attr *a = &domain->attr;
	enum kfi_addr_format fmt = hints->addr_format;

	if (hints->fabric_name && strcmp(hints->fabric_name, domain->fabric->name))
		return false;
	if (hints->domain_name && strcmp(hints->domain_name, a->name))
		return false;
	if (hints->caps & ~a->caps)
		return false;
	if (hints->ep_type != KFI_EP_UNSPEC && !(a->ep_types & BIT(hints->ep_type)))
		return false;
	if (hints->protocol != KFI_PROTO_UNSPEC && hints->protocol != a->protocol)
		return false;
	if (fmt == KFI_ADDR_UNSPEC && hints->src_addr)
		fmt = hints->src_addr->format;
	if (fmt == KFI_ADDR_UNSPEC && hints->dest_addr)
		fmt = hints->dest_addr->format;
	if (fmt != KFI_ADDR_UNSPEC && fmt != a->addr_format)
		return false;
	if (hints->min_msg_size > a->max_msg_size ||
	    hints->min_rma_size > a->max_rma_size ||
	    hints->min_cq_data_size > a->cq_data_size ||
	    hints->min_cm_data > a->max_cm_data)
		return false;
	return true;
}
EXPORT_SYMBOL_IF_KUNIT(kfi_domain_matches);

/* One candidate of kfi_getinfo(), resolved on a work item of its own. */
struct kfi_resolve {
	struct kfi_info info;
	const struct kfi_hints *hints;
	struct work_struct work;
	int ret;
};

static void kfi_resolve_work(struct work_struct *work)
{
	struct kfi_resolve *r = container_of(work, struct kfi_resolve, work);
	struct kfi_domain *domain = r->info.domain;
	unsigned int noio;
	int idx;

	/* The caller may be a storage ULP reconnecting under reclaim. */
	noio = memalloc_noio_save();
	idx = kfi_fence_enter(domain);
	r->ret = kfi_domain_dying(domain) ? -ENODEV :
		 domain->fabric->ops->resolve(domain, r->hints, &r->info);
	kfi_fence_exit(domain, idx);
	memalloc_noio_restore(noio);
}

/**
 * kfi_getinfo() - find the domains that satisfy a ULP's hints
 * @hints: requirements (see &struct kfi_hints)
 * @infos: an empty list head; filled with &struct kfi_info entries, each
 *	holding a reference on its domain
 *
 * Candidates are the registered domains whose attributes satisfy every
 * hint; each is then asked (&kfi_provider_ops.resolve) whether it can
 * serve the addresses. The candidates resolve concurrently, so the call
 * takes as long as the slowest provider's resolution (which providers
 * bound, as rdma_resolve_addr() is by its timeout), not their sum. The
 * list is in fabric, then domain, registration order. Free it with
 * kfi_freeinfo().
 *
 * Context: process context; may sleep while providers resolve addresses.
 * Return: 0 with at least one entry; -EINVAL for invalid hints; -ENODATA
 * when no domain satisfies them; -ENOMEM; or the first error a provider
 * reported when none succeeded.
 */
int kfi_getinfo(const struct kfi_hints *hints, struct list_head *infos)
{
	static const struct kfi_hints none;
	struct kfi_resolve *r, *tmp;
	struct kfi_fabric *fabric;
	struct kfi_domain *domain;
	LIST_HEAD(cands);
	int ret, err = -ENODATA;
	bool nomem = false, async;
	unsigned int n = 0;

	if (!infos || !list_empty(infos))
		return -EINVAL;
	if (!hints)
		hints = &none;
	ret = kfi_hints_valid(hints);
	if (ret)
		return ret;

	mutex_lock(&kfi_lock);
	list_for_each_entry(fabric, &kfi_fabrics, list) {
		list_for_each_entry(domain, &fabric->domains, list) {
			if (!kfi_domain_matches(domain, hints))
				continue;
			r = kzalloc_obj(*r, GFP_KERNEL);
			if (!r) {
				nomem = true;
				goto out_unlock;
			}
			mutex_lock(&domain->lock);
			if (!kfi_domain_get_live(domain)) {
				mutex_unlock(&domain->lock);
				kfree(r);
				continue;
			}
			mutex_unlock(&domain->lock);
			r->info.domain = domain;
			r->info.fabric = fabric;
			r->hints = hints;
			list_add_tail(&r->info.list, &cands);
			n++;
		}
	}
out_unlock:
	mutex_unlock(&kfi_lock);

	/* One candidate resolves in the caller's context. */
	async = n > 1;
	list_for_each_entry(r, &cands, info.list) {
		domain = r->info.domain;
		r->info.attr = domain->attr;
		r->info.ep_type = hints->ep_type == KFI_EP_UNSPEC ? KFI_EP_MSG :
								    hints->ep_type;
		if (hints->src_addr)
			r->info.src_addr = *hints->src_addr;
		if (hints->dest_addr)
			r->info.dest_addr = *hints->dest_addr;
		if (nomem || !domain->fabric->ops->resolve)
			continue;
		INIT_WORK(&r->work, kfi_resolve_work);
		if (async)
			queue_work(kfi_resolve_wq, &r->work);
		else
			kfi_resolve_work(&r->work);
	}
	list_for_each_entry_safe(r, tmp, &cands, info.list) {
		domain = r->info.domain;
		if (!nomem && async && domain->fabric->ops->resolve)
			flush_work(&r->work);
		list_del(&r->info.list);
		ret = nomem ? -ENOMEM : r->ret;
		if (ret) {
			if (err == -ENODATA && ret != -ENODATA)
				err = ret;
			kfi_domain_put(domain);
			kfree(r);
			continue;
		}
		list_add_tail(&r->info.list, infos);
	}
	if (nomem)
		return -ENOMEM;
	if (list_empty(infos))
		return err;
	return 0;
}
EXPORT_SYMBOL_GPL(kfi_getinfo);

/**
 * kfi_freeinfo() - free a list filled by kfi_getinfo()
 * @infos: the list; empty afterwards
 */
void kfi_freeinfo(struct list_head *infos)
{
	struct kfi_info *info, *tmp;

	list_for_each_entry_safe(info, tmp, infos, list) {
		list_del(&info->list);
		kfi_domain_put(info->domain);
		/* kfi_getinfo() allocates each info inside a kfi_resolve. */
		kfree(container_of(info, struct kfi_resolve, info));
	}
}
EXPORT_SYMBOL_GPL(kfi_freeinfo);

static int __init kfi_init(void)
{
	/*
	 * Like ib_comp_wq: completion work must make progress under memory
	 * pressure, since storage ULPs complete I/O from it.
	 */
	kfi_comp_wq = alloc_workqueue("kfi_comp", WQ_HIGHPRI | WQ_MEM_RECLAIM |
				      WQ_PERCPU | WQ_SYSFS, 0);
	if (!kfi_comp_wq)
		return -ENOMEM;
	kfi_comp_unbound_wq = alloc_workqueue("kfi_comp_unbound",
					      WQ_UNBOUND | WQ_HIGHPRI |
					      WQ_MEM_RECLAIM | WQ_SYSFS, 0);
	if (!kfi_comp_unbound_wq)
		goto out_comp;
	kfi_resolve_wq = alloc_workqueue("kfi_resolve", WQ_UNBOUND |
					 WQ_MEM_RECLAIM, 0);
	if (!kfi_resolve_wq)
		goto out_unbound;
	kfi_debugfs_init();
	return 0;

out_unbound:
	destroy_workqueue(kfi_comp_unbound_wq);
out_comp:
	destroy_workqueue(kfi_comp_wq);
	return -ENOMEM;
}

static void __exit kfi_exit(void)
{
	WARN_ON(!list_empty(&kfi_fabrics));
	kfi_debugfs_exit();
	destroy_workqueue(kfi_resolve_wq);
	destroy_workqueue(kfi_comp_unbound_wq);
	destroy_workqueue(kfi_comp_wq);
	xa_destroy(&kfi_client_ids);
}

module_init(kfi_init);
module_exit(kfi_exit);

MODULE_DESCRIPTION("kfabric: transport-agnostic kernel fabric interface");
MODULE_LICENSE("GPL");
