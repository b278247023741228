// SPDX-License-Identifier: GPL-2.0
/*
 * kf-nvme-disc: print the discovery log page of an NVMe over Fabrics
 * discovery controller, one line per record, for the guest tests (the
 * test bed has no nvme-cli).
 *
 * usage: kf-nvme-disc /dev/nvmeN
 *
 * Each line: trtype=N adrfam=N subtype=N portid=N trsvcid=S traddr=S subnqn=S
 * Exit status 0 when the log page was read, 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/nvme_ioctl.h>

#define LOG_DISC	0x70
#define HDR_SIZE	1024
#define REC_SIZE	1024
#define MAX_RECS	15
#define BUF_SIZE	(HDR_SIZE + MAX_RECS * REC_SIZE)

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* A fixed-size, space- or NUL-padded field as a C string. */
static void field(char *dst, const unsigned char *src, size_t len)
{
	memcpy(dst, src, len);
	dst[len] = '\0';
	while (len && (dst[len - 1] == ' ' || dst[len - 1] == '\0'))
		dst[--len] = '\0';
}

int main(int argc, char **argv)
{
	static unsigned char buf[BUF_SIZE];
	struct nvme_admin_cmd cmd;
	char trsvcid[33], traddr[257], subnqn[257];
	uint64_t numrec, i;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: %s /dev/nvmeN\n", argv[0]);
		return 1;
	}
	fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.opcode = 0x02;			/* Get Log Page */
	cmd.addr = (uintptr_t)buf;
	cmd.data_len = sizeof(buf);
	/* NUMDL (dwords, 0's based) and the log page identifier. */
	cmd.cdw10 = ((sizeof(buf) / 4 - 1) & 0xffff) << 16 | LOG_DISC;
	cmd.cdw11 = (sizeof(buf) / 4 - 1) >> 16;
	if (ioctl(fd, NVME_IOCTL_ADMIN_CMD, &cmd) != 0) {
		fprintf(stderr, "%s: get log page: %s\n", argv[1],
			errno ? strerror(errno) : "NVMe error status");
		return 1;
	}
	close(fd);
	numrec = le64(buf + 8);
	printf("genctr=%llu numrec=%llu\n", (unsigned long long)le64(buf),
	       (unsigned long long)numrec);
	for (i = 0; i < numrec && i < MAX_RECS; i++) {
		const unsigned char *e = buf + HDR_SIZE + i * REC_SIZE;

		field(trsvcid, e + 32, 32);
		field(subnqn, e + 256, 256);
		field(traddr, e + 512, 256);
		printf("trtype=%u adrfam=%u subtype=%u portid=%u trsvcid=%s traddr=%s subnqn=%s\n",
		       e[0], e[1], e[2], e[4] | e[5] << 8, trsvcid, traddr, subnqn);
	}
	return 0;
}
