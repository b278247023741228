// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric: a transport-agnostic kernel fabric interface.
 *
 * This module is the core that providers register with and that
 * upper-layer protocols open fabric objects through.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>

static int __init kfi_init(void)
{
	return 0;
}

static void __exit kfi_exit(void)
{
}

module_init(kfi_init);
module_exit(kfi_exit);

MODULE_DESCRIPTION("kfabric: transport-agnostic kernel fabric interface");
MODULE_LICENSE("GPL");
