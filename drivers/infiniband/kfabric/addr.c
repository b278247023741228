// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric addresses: parsing the (node, service) strings ULPs get from
 * users, comparing and printing.
 */
#include <linux/inet.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/string.h>

#include "kfi_core.h"

/**
 * kfi_addr_parse() - build an address from a node and a service string
 * @addr: the address to fill
 * @node: an IPv4 or IPv6 literal (IPv6 optionally with a %scope), or a
 *	provider node name such as an NTB device name; NULL or "" for any
 * @service: the port, a decimal number; NULL for 0
 *
 * An IP literal gives %KFI_ADDR_INET, anything else %KFI_ADDR_NAME (which
 * is how a mistyped IP address ends up: no INET fabric will match it). No
 * name resolution takes place.
 *
 * Return: 0 or -EINVAL.
 */
int kfi_addr_parse(struct kfi_addr *addr, const char *node, const char *service)
{
	struct sockaddr_storage ss;
	u16 port16 = 0;
	u32 port = 0;
	int ret;

	memset(addr, 0, sizeof(*addr));
	if (service && kstrtou32(service, 10, &port))
		return -EINVAL;

	/* Without INET no fabric uses IP addresses: keep them as names. */
	if (IS_ENABLED(CONFIG_INET) && node && node[0] &&
	    !inet_pton_with_scope(&init_net, AF_UNSPEC, node, NULL, &ss)) {
		if (port > U16_MAX)
			return -EINVAL;
		port16 = port;
		addr->format = KFI_ADDR_INET;
		if (ss.ss_family == AF_INET) {
			addr->sin = *(struct sockaddr_in *)&ss;
			addr->sin.sin_port = htons(port16);
		} else {
			addr->sin6 = *(struct sockaddr_in6 *)&ss;
			addr->sin6.sin6_port = htons(port16);
		}
		return 0;
	}

	addr->format = KFI_ADDR_NAME;
	if (node) {
		ret = strscpy(addr->name.node, node, sizeof(addr->name.node));
		if (ret < 0)
			return -EINVAL;
	}
	addr->name.port = port;
	return 0;
}
EXPORT_SYMBOL_GPL(kfi_addr_parse);

/**
 * kfi_addr_equal() - compare two addresses
 * @a: an address
 * @b: another one
 *
 * Return: true when format, address and port are the same.
 */
bool kfi_addr_equal(const struct kfi_addr *a, const struct kfi_addr *b)
{
	if (a->format != b->format)
		return false;
	switch (a->format) {
	case KFI_ADDR_INET:
		if (a->sa.sa_family != b->sa.sa_family)
			return false;
		if (a->sa.sa_family == AF_INET)
			return a->sin.sin_addr.s_addr == b->sin.sin_addr.s_addr &&
			       a->sin.sin_port == b->sin.sin_port;
		return !memcmp(&a->sin6.sin6_addr, &b->sin6.sin6_addr,
				sizeof(a->sin6.sin6_addr)) &&
		       a->sin6.sin6_port == b->sin6.sin6_port &&
		       a->sin6.sin6_scope_id == b->sin6.sin6_scope_id;
	case KFI_ADDR_NAME:
		return !strncmp(a->name.node, b->name.node, KFI_NAME_MAX) &&
		       a->name.port == b->name.port;
	default:
		return true;
	}
}
EXPORT_SYMBOL_GPL(kfi_addr_equal);

/**
 * kfi_addr_print() - format an address
 * @buf: output buffer
 * @size: its size
 * @addr: the address
 *
 * Formats as "192.0.2.1:4420", "[2001:db8::1]:4420" or "node:port".
 *
 * Return: the number of characters written, as scnprintf().
 */
int kfi_addr_print(char *buf, size_t size, const struct kfi_addr *addr)
{
	switch (addr->format) {
	case KFI_ADDR_INET:
		if (addr->sa.sa_family == AF_INET6)
			return scnprintf(buf, size, "[%pI6c]:%u", &addr->sin6.sin6_addr,
					 ntohs(addr->sin6.sin6_port));
		return scnprintf(buf, size, "%pI4:%u", &addr->sin.sin_addr,
				 ntohs(addr->sin.sin_port));
	case KFI_ADDR_NAME:
		return scnprintf(buf, size, "%.*s:%u", KFI_NAME_MAX,
				 addr->name.node, addr->name.port);
	default:
		return scnprintf(buf, size, "-");
	}
}
EXPORT_SYMBOL_GPL(kfi_addr_print);
