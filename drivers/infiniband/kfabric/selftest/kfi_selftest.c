// SPDX-License-Identifier: GPL-2.0-only
/*
 * kfabric self-test and benchmark.
 *
 * Checks what upper-layer protocols rely on, through the kfabric ULP API
 * only (<rdma/kfi/kfi.h> and <rdma/kfi/rw.h>), so that the same module
 * runs unchanged over every provider. One instance runs a responder;
 * another, on the same host or on another one, connects to it and runs
 * the tests or the benchmark. Commands are written to the debugfs file
 * kfi_selftest/run, one per write(), and the write returns once the
 * command has run: with its length when every test passed, -EIO when one
 * failed and -EINVAL for a malformed command. kfi_selftest/results holds
 * the KTAP output of the last command, which also goes to the kernel log.
 * A command runs in the network namespace of the task that writes it, and
 * a client given src= connects from that address (the connect test checks
 * that it did).
 *
 *   serve fabric=<name> addr=<node> port=<service>
 *   stop
 *   client fabric=<name> addr=<node> port=<service> [src=<node>]
 *          [tests=<test>[,<test>...]] [sizes=<max bytes>] [eps=<n>]
 *          [iters=<n>]
 *   loop   <as client>: serve on addr:port, run the client, stop
 *   bench  <as client> [api=kfi|verbs] [bytes=<n>]: tests= selects the
 *          benchmark cases, iters= and bytes= bound the repetitions of
 *          each; api=verbs runs them on raw verbs, as a baseline
 *
 * The wire protocol is the module's own, version 2, little-endian. The
 * connection request carries a &struct kst_hello, which the responder
 * checks and answers in its accept. Once connected, the client asks with
 * a %KST_MSG_DESC message for the responder's buffer of up to 4 MiB, which
 * the responder maps for remote reads and writes, answering with its
 * address, key and length. The client speaks first, as iWARP requires of
 * the side that connects. It then sends
 * commands, one at a time, each answered with a %KST_MSG_REPLY: FILL and
 * VERIFY write and check a seeded pattern in a range of the buffer, ECHO
 * makes the responder send the next messages back unchanged, DISCONNECT
 * makes it drop the connection. A receive consumed with immediate data is
 * answered with a %KST_MSG_IMM report of what the responder saw. The
 * responder checks every length and offset it is sent.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitops.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/minmax.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/nsproxy.h>
#include <linux/parser.h>
#include <linux/sched.h>
#include <linux/seq_buf.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <rdma/kfi/kfi.h>

#include "kfi_selftest.h"

/* ------------------------------------------------------------------ */
/* Commands, runs and KTAP output                                      */

static const char * const kst_cmd_names[] = {
	[KST_CMD_SERVE] = "serve",
	[KST_CMD_STOP] = "stop",
	[KST_CMD_CLIENT] = "client",
	[KST_CMD_LOOP] = "loop",
	[KST_CMD_BENCH] = "bench",
};

const char * const kst_api_names[] = {
	[KST_API_KFI] = "kfi",
	[KST_API_VERBS] = "verbs",
};

/* Serialises commands, and so the responder's start and stop. */
static DEFINE_MUTEX(kst_lock);

/* Protects the output of the last command. */
static DEFINE_MUTEX(kst_results_lock);
static char *kst_results;
static size_t kst_results_len;

static struct dentry *kst_dir;

static __printf(3, 0) void kst_vprint(struct kst_run *run, const char *prefix,
				      const char *fmt, va_list args)
{
	int n;

	n = scnprintf(run->line, sizeof(run->line), "%*s%s", (int)run->level * 4,
		      "", prefix);
	vscnprintf(run->line + n, sizeof(run->line) - n, fmt, args);
	pr_info("%s\n", run->line);
	seq_buf_printf(&run->out, "%s\n", run->line);
}

/* A KTAP line, indented for the current level. */
static __printf(2, 3) void kst_print(struct kst_run *run, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	kst_vprint(run, "", fmt, args);
	va_end(args);
}

/**
 * kst_diag() - print a KTAP diagnostic line
 * @run: the run
 * @fmt: printf() format of the line, without the "# "
 */
__printf(2, 3) void kst_diag(struct kst_run *run, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	kst_vprint(run, "# ", fmt, args);
	va_end(args);
}

/**
 * kst_skip() - set why the test or case about to be reported is skipped
 * @run: the run
 * @fmt: printf() format of the reason
 */
__printf(2, 3) void kst_skip(struct kst_run *run, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vscnprintf(run->skip_buf, sizeof(run->skip_buf), fmt, args);
	va_end(args);
	run->skip = run->skip_buf;
}

/**
 * kst_run_dest() - the responder's address
 * @run: the run
 *
 * Return: the address of addr= and port=.
 */
const struct kfi_addr *kst_run_dest(const struct kst_run *run)
{
	return &run->o.addr;
}

/**
 * kst_run_src() - the local address to connect from
 * @run: the run
 *
 * Return: the address of src=, or NULL for any.
 */
const struct kfi_addr *kst_run_src(const struct kst_run *run)
{
	return run->o.has_src ? &run->o.src_addr : NULL;
}

/**
 * kst_result() - report the result of a test, or of a case of a test
 * @run: the run
 * @res: the result
 * @name: the test or case
 *
 * Prints the KTAP result line, with the reason of kst_skip() for a skip,
 * and counts it for the test's, or the run's, result.
 */
void kst_result(struct kst_run *run, enum kst_result res,
		const char *name)
{
	unsigned int n = ++run->nr[run->level];

	switch (res) {
	case KST_PASS:
		kst_print(run, "ok %u %s", n, name);
		break;
	case KST_SKIP:
		kst_print(run, "ok %u %s # SKIP %s", n, name, run->skip ?: "");
		break;
	default:
		kst_print(run, "not ok %u %s", n, name);
		break;
	}
	if (run->level) {
		if (res == KST_PASS)
			run->sub_pass++;
		else if (res == KST_FAIL)
			run->sub_fail++;
	} else if (res == KST_FAIL) {
		run->failed = true;
	}
	run->skip = NULL;
}

/**
 * kst_sub_begin() - start the cases of a test
 * @run: the run
 * @name: the test
 * @n: number of cases
 *
 * Each case is then reported with kst_result(); kst_sub_end() gives the
 * test's result.
 */
void kst_sub_begin(struct kst_run *run, const char *name, unsigned int n)
{
	run->level = 1;
	run->nr[1] = 0;
	run->sub_pass = 0;
	run->sub_fail = 0;
	kst_print(run, "KTAP version 1");
	kst_print(run, "# Subtest: %s", name);
	kst_print(run, "1..%u", n);
}

/**
 * kst_sub_end() - end the cases of a test
 * @run: the run
 *
 * Return: the test's result from its cases: failed if one failed, skipped
 * if all were skipped, else passed.
 */
enum kst_result kst_sub_end(struct kst_run *run)
{
	run->level = 0;
	if (run->sub_fail)
		return KST_FAIL;
	if (!run->sub_pass) {
		kst_skip(run, "every case was skipped");
		return KST_SKIP;
	}
	return KST_PASS;
}

/**
 * kst_res() - the result of a test from its return code
 * @ret: 0 or a negative errno
 *
 * Return: %KST_PASS for 0, else %KST_FAIL.
 */
enum kst_result kst_res(int ret)
{
	return ret ? KST_FAIL : KST_PASS;
}

static int kst_cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

/**
 * kst_sizes() - the sizes of a test or case that apply
 * @v: sizes
 * @n: number of @v
 * @max: largest size that applies
 *
 * Sorts @v and drops zeroes, duplicates and values above @max.
 *
 * Return: the number of sizes left at the start of @v.
 */
unsigned int kst_sizes(u64 *v, unsigned int n, u64 max)
{
	unsigned int i, k = 0;

	sort(v, n, sizeof(*v), kst_cmp_u64, NULL);
	for (i = 0; i < n; i++)
		if (v[i] && v[i] <= max && (!k || v[i] != v[k - 1]))
			v[k++] = v[i];
	return k;
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */

static void kst_table(enum kst_cmd cmd, const struct kst_test **tab,
		      unsigned int *n)
{
	if (cmd == KST_CMD_BENCH) {
		*tab = kst_bench_cases;
		*n = kst_nr_bench_cases;
	} else {
		*tab = kst_tests;
		*n = kst_nr_tests;
	}
}

enum {
	KST_OPT_FABRIC,
	KST_OPT_ADDR,
	KST_OPT_PORT,
	KST_OPT_SRC,
	KST_OPT_TESTS,
	KST_OPT_SIZES,
	KST_OPT_EPS,
	KST_OPT_ITERS,
	KST_OPT_API,
	KST_OPT_BYTES,
	KST_OPT_ERR,
};

static const match_table_t kst_opt_tokens = {
	{ KST_OPT_FABRIC, "fabric=%s" },
	{ KST_OPT_ADDR, "addr=%s" },
	{ KST_OPT_PORT, "port=%s" },
	{ KST_OPT_SRC, "src=%s" },
	{ KST_OPT_TESTS, "tests=%s" },
	{ KST_OPT_SIZES, "sizes=%s" },
	{ KST_OPT_EPS, "eps=%u" },
	{ KST_OPT_ITERS, "iters=%u" },
	{ KST_OPT_API, "api=%s" },
	{ KST_OPT_BYTES, "bytes=%s" },
	{ KST_OPT_ERR, NULL },
};

#define KST_OPTS_ADDR	(BIT(KST_OPT_FABRIC) | BIT(KST_OPT_ADDR) | BIT(KST_OPT_PORT))
#define KST_OPTS_CLIENT	(KST_OPTS_ADDR | BIT(KST_OPT_SRC) | BIT(KST_OPT_TESTS) | \
			 BIT(KST_OPT_SIZES) | BIT(KST_OPT_EPS) | BIT(KST_OPT_ITERS))

static int kst_opt_str(const substring_t *arg, char *buf, size_t size)
{
	if (arg->to - arg->from >= size)
		return -EINVAL;
	match_strlcpy(buf, arg, size);
	return 0;
}

static int kst_opt_tests(const substring_t *arg, struct kst_opts *o)
{
	const struct kst_test *tab;
	char *list, *p, *name;
	unsigned int i, n;
	int ret = 0;

	kst_table(o->cmd, &tab, &n);
	list = match_strdup(arg);
	if (!list)
		return -ENOMEM;
	p = list;
	o->tests = 0;
	while ((name = strsep(&p, ",")) != NULL) {
		for (i = 0; i < n; i++)
			if (!strcmp(name, tab[i].name))
				break;
		if (i == n) {
			ret = -EINVAL;
			break;
		}
		o->tests |= BIT(i);
	}
	kfree(list);
	return ret;
}

/* A byte count with an optional K, M or G suffix; not 0. */
static int kst_opt_bytes(const substring_t *arg, u64 *val)
{
	char *s, *end;
	int ret = 0;

	s = match_strdup(arg);
	if (!s)
		return -ENOMEM;
	*val = memparse(s, &end);
	if (*end || !*val)
		ret = -EINVAL;
	kfree(s);
	return ret;
}

static int kst_opt_api(const substring_t *arg, struct kst_opts *o)
{
	char name[8];
	int ret;

	ret = kst_opt_str(arg, name, sizeof(name));
	if (ret)
		return ret;
	ret = match_string(kst_api_names, ARRAY_SIZE(kst_api_names), name);
	if (ret < 0)
		return -EINVAL;
	o->api = ret;
	/* The baseline is built only where the RDMA stack is reachable. */
	if (o->api == KST_API_VERBS && !IS_ENABLED(CONFIG_KFABRIC_SELFTEST_IBV))
		return -EOPNOTSUPP;
	return 0;
}

static int kst_opt_u32(substring_t *arg, u32 *val, u32 max)
{
	unsigned int v;
	int ret;

	ret = match_uint(arg, &v);
	if (ret)
		return ret;
	if (!v || v > max)
		return -EINVAL;
	*val = v;
	return 0;
}

/* Parses a command line into @o; -EINVAL for anything malformed. */
static int kst_parse(char *line, struct kst_opts *o)
{
	unsigned long seen = 0, allowed, required;
	substring_t args[MAX_OPT_ARGS];
	const struct kst_test *tab;
	unsigned int n;
	char *word;
	int token, ret;

	line = strim(line);
	strscpy(o->line, line);
	word = strsep(&line, " \t");
	ret = match_string(kst_cmd_names, ARRAY_SIZE(kst_cmd_names), word);
	if (ret < 0)
		return -EINVAL;
	o->cmd = ret;
	kst_table(o->cmd, &tab, &n);
	o->tests = BIT(n) - 1;
	o->sizes = KST_REGION_MAX;
	o->eps = KST_EPS;
	o->iters = o->cmd == KST_CMD_BENCH ? KST_BENCH_ITERS : KST_ITERS;
	o->bytes = KST_BENCH_BYTES;

	while ((word = strsep(&line, " \t")) != NULL) {
		if (!*word)
			continue;
		token = match_token(word, kst_opt_tokens, args);
		if (token == KST_OPT_ERR || (seen & BIT(token)))
			return -EINVAL;
		seen |= BIT(token);
		switch (token) {
		case KST_OPT_FABRIC:
			ret = kst_opt_str(&args[0], o->fabric, sizeof(o->fabric));
			break;
		case KST_OPT_ADDR:
			ret = kst_opt_str(&args[0], o->node, sizeof(o->node));
			break;
		case KST_OPT_PORT:
			ret = kst_opt_str(&args[0], o->service, sizeof(o->service));
			break;
		case KST_OPT_SRC:
			ret = kst_opt_str(&args[0], o->src, sizeof(o->src));
			break;
		case KST_OPT_TESTS:
			ret = kst_opt_tests(&args[0], o);
			break;
		case KST_OPT_SIZES:
			ret = kst_opt_bytes(&args[0], &o->sizes);
			break;
		case KST_OPT_EPS:
			ret = kst_opt_u32(&args[0], &o->eps, KST_MAX_EPS);
			break;
		case KST_OPT_ITERS:
			ret = kst_opt_u32(&args[0], &o->iters, KST_MAX_ITERS);
			break;
		case KST_OPT_API:
			ret = kst_opt_api(&args[0], o);
			break;
		case KST_OPT_BYTES:
			ret = kst_opt_bytes(&args[0], &o->bytes);
			break;
		}
		if (ret)
			return ret;
	}

	switch (o->cmd) {
	case KST_CMD_STOP:
		allowed = 0;
		required = 0;
		break;
	case KST_CMD_SERVE:
		allowed = KST_OPTS_ADDR;
		required = KST_OPTS_ADDR;
		break;
	case KST_CMD_BENCH:
		allowed = KST_OPTS_CLIENT | BIT(KST_OPT_API) | BIT(KST_OPT_BYTES);
		required = KST_OPTS_ADDR;
		break;
	default:
		allowed = KST_OPTS_CLIENT;
		required = KST_OPTS_ADDR;
		break;
	}
	if ((seen & ~allowed) || (seen & required) != required || !o->tests)
		return -EINVAL;
	if (required) {
		ret = kfi_addr_parse(&o->addr, o->node, o->service);
		if (ret)
			return ret;
	}
	if (seen & BIT(KST_OPT_SRC)) {
		ret = kfi_addr_parse(&o->src_addr, o->src, NULL);
		if (ret)
			return ret;
		o->has_src = true;
	}
	o->sizes = min_t(u64, o->sizes, KST_REGION_MAX);
	return 0;
}

/* Finds the domains that reach the responder. */
static void kst_discover(struct kst_run *run)
{
	const struct kst_opts *o = &run->o;
	struct kfi_hints hints = {
		.caps = KST_CAPS,
		.ep_type = KFI_EP_MSG,
		.net = run->net,
		.src_addr = o->has_src ? &o->src_addr : NULL,
		.dest_addr = &o->addr,
		.fabric_name = o->fabric,
		.min_cm_data = sizeof(struct kst_hello),
	};
	const struct kfi_domain_attr *a;
	char src[80];
	int ret;

	ret = kfi_getinfo(&hints, &run->infos);
	if (ret) {
		kst_diag(run, "no domain of fabric %s reaches %s: %pe", o->fabric,
			 o->node, ERR_PTR(ret));
		return;
	}
	run->info = list_first_entry(&run->infos, struct kfi_info, list);
	a = &run->info->attr;
	kfi_addr_print(src, sizeof(src), &run->info->src_addr);
	kst_diag(run, "domain %s, local address %s, caps %#llx", a->name, src,
		 a->caps);
	kst_diag(run,
		 "max_msg_size %llu max_rma_size %llu max_mr_size %llu max_rma_sge %u max_mr_segs %u max_mr_block %llu",
		 a->max_msg_size, a->max_rma_size, a->max_mr_size,
		 a->max_rma_sge, a->max_mr_segs, a->max_mr_block);

	hints.caps |= KFI_CAP_RMA_IMM;
	if (!kfi_getinfo(&hints, &run->imm_infos))
		run->imm_info = list_first_entry(&run->imm_infos, struct kfi_info,
						 list);
}

static void kst_run_tests(struct kst_run *run, bool responder)
{
	const struct kst_test *tab;
	enum kst_result res;
	unsigned int i, n;

	kst_table(run->o.cmd, &tab, &n);
	if (responder)
		kst_discover(run);
	for (i = 0; i < n; i++) {
		if (!(run->o.tests & BIT(i)))
			continue;
		if (!responder) {
			kst_skip(run, "the responder did not start");
			res = KST_SKIP;
		} else if (!run->info) {
			res = KST_FAIL;
		} else {
			res = tab[i].run(run);
		}
		kst_result(run, res, tab[i].name);
	}
	kfi_freeinfo(&run->imm_infos);
	kfi_freeinfo(&run->infos);
	run->info = NULL;
	run->imm_info = NULL;
}

/* Runs a parsed command; kst_lock held. */
static int kst_execute(struct kst_run *run)
{
	const struct kst_opts *o = &run->o;
	unsigned int nr_tests = hweight_long(o->tests);
	enum kst_result res;

	if (kst_serving() && (o->cmd == KST_CMD_SERVE || o->cmd == KST_CMD_LOOP))
		return -EBUSY;

	kst_print(run, "KTAP version 1");
	kst_diag(run, "kfi_selftest: %s", o->line);
	switch (o->cmd) {
	case KST_CMD_SERVE:
		kst_print(run, "1..1");
		kst_result(run, kst_serve(run), "serve");
		break;
	case KST_CMD_STOP:
		kst_print(run, "1..1");
		if (kst_serving()) {
			kst_stop();
			res = KST_PASS;
		} else {
			kst_skip(run, "no responder running");
			res = KST_SKIP;
		}
		kst_result(run, res, "stop");
		break;
	case KST_CMD_CLIENT:
	case KST_CMD_BENCH:
		kst_print(run, "1..%u", nr_tests);
		kst_run_tests(run, true);
		break;
	case KST_CMD_LOOP:
		kst_print(run, "1..%u", nr_tests + 2);
		res = kst_serve(run);
		kst_result(run, res, "serve");
		kst_run_tests(run, res == KST_PASS);
		if (res == KST_PASS) {
			kst_stop();
		} else {
			kst_skip(run, "the responder did not start");
			res = KST_SKIP;
		}
		kst_result(run, res, "stop");
		break;
	}

	mutex_lock(&kst_results_lock);
	kvfree(kst_results);
	kst_results = run->outbuf;
	kst_results_len = seq_buf_used(&run->out);
	mutex_unlock(&kst_results_lock);
	run->outbuf = NULL;
	return run->failed ? -EIO : 0;
}

static ssize_t kst_run_write(struct file *file, const char __user *ubuf,
			     size_t count, loff_t *ppos)
{
	struct kst_run *run;
	char *line;
	int ret;

	if (!count || count > KST_CMD_MAX)
		return -EINVAL;
	line = memdup_user_nul(ubuf, count);
	if (IS_ERR(line))
		return PTR_ERR(line);
	ret = -ENOMEM;
	run = kzalloc_obj(*run, GFP_KERNEL);
	if (!run)
		goto out_line;
	INIT_LIST_HEAD(&run->infos);
	INIT_LIST_HEAD(&run->imm_infos);
	/* Commands run in the writer's context, which holds a reference. */
	run->net = current->nsproxy->net_ns;
	run->outbuf = kvmalloc(KST_OUT_SIZE, GFP_KERNEL);
	if (!run->outbuf)
		goto out_run;
	seq_buf_init(&run->out, run->outbuf, KST_OUT_SIZE);

	ret = kst_parse(line, &run->o);
	if (ret)
		goto out_buf;
	ret = mutex_lock_interruptible(&kst_lock);
	if (ret)
		goto out_buf;
	ret = kst_execute(run);
	mutex_unlock(&kst_lock);
out_buf:
	kvfree(run->outbuf);
out_run:
	kfree(run);
out_line:
	kfree(line);
	if (ret)
		return ret;
	return count;
}

static ssize_t kst_results_read(struct file *file, char __user *ubuf,
				size_t count, loff_t *ppos)
{
	ssize_t ret;

	mutex_lock(&kst_results_lock);
	ret = simple_read_from_buffer(ubuf, count, ppos, kst_results,
				      kst_results_len);
	mutex_unlock(&kst_results_lock);
	return ret;
}

static const struct file_operations kst_run_fops = {
	.owner = THIS_MODULE,
	.write = kst_run_write,
	.llseek = noop_llseek,
};

static const struct file_operations kst_results_fops = {
	.owner = THIS_MODULE,
	.read = kst_results_read,
	.llseek = default_llseek,
};

static int __init kst_init(void)
{
	kst_dir = debugfs_create_dir("kfi_selftest", NULL);
	debugfs_create_file("run", 0200, kst_dir, NULL, &kst_run_fops);
	debugfs_create_file("results", 0400, kst_dir, NULL, &kst_results_fops);
	return 0;
}

static void __exit kst_exit(void)
{
	/* No command runs after this: an open file pins the module. */
	debugfs_remove(kst_dir);
	mutex_lock(&kst_lock);
	kst_stop();
	mutex_unlock(&kst_lock);
	kvfree(kst_results);
}

module_init(kst_init);
module_exit(kst_exit);

MODULE_DESCRIPTION("kfabric self-test and benchmark");
MODULE_LICENSE("GPL");
