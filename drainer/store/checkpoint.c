/* SPDX-License-Identifier: MIT */
/* checkpoint.c: two checksummed slots in <session dir>/.checkpoint, written alternately. */
#define _GNU_SOURCE
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define CKPT_NAME ".checkpoint"
#define CKPT_MAGIC 0x54504b434c47554full /* "OUGLCKPT" */
#define CKPT_VERSION 1u
#define SLOT 4096u

struct slot {
	uint64_t magic;
	uint32_t version;
	uint32_t size; /* sizeof(struct fl_ckpt) */
	uint64_t gen;
	uint64_t sum; /* FNV-1a 64 of gen and body */
	struct fl_ckpt body;
};

_Static_assert(sizeof(struct slot) <= SLOT, "a checkpoint fits its slot");

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t slot_sum(const struct slot *s)
{
	uint64_t h = fnv(0xcbf29ce484222325ull, &s->gen, sizeof s->gen);
	return fnv(h, &s->body, sizeof s->body);
}

static int slot_ok(const struct slot *s)
{
	return s->magic == CKPT_MAGIC && s->version == CKPT_VERSION && s->size == sizeof(struct fl_ckpt) &&
	       s->sum == slot_sum(s);
}

/* Newest valid slot of fd: 0 with *best filled, -ENOENT (no slot written yet) or -EBADMSG. */
static int newest(int fd, struct slot *best)
{
	struct slot s[2];
	int any = 0;
	for (int i = 0; i < 2; i++) {
		ssize_t n = pread(fd, &s[i], sizeof s[i], (off_t)i * SLOT);
		if (n < 0)
			return -errno;
		/* a slot never written is zeros (fl_ckpt_open allocates both): nothing, not damage */
		if (n != (ssize_t)sizeof s[i] || !s[i].magic) {
			memset(&s[i], 0, sizeof s[i]);
			continue;
		}
		any = 1;
	}
	int ok0 = slot_ok(&s[0]), ok1 = slot_ok(&s[1]);
	if (!ok0 && !ok1)
		return any ? -EBADMSG : -ENOENT;
	*best = ok0 && (!ok1 || s[0].gen > s[1].gen) ? s[0] : s[1];
	return 0;
}

int fl_ckpt_load(int dirfd, struct fl_ckpt *c)
{
	int fd = openat(dirfd, CKPT_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct slot s;
	int rc = newest(fd, &s);
	close(fd);
	if (rc == 0)
		*c = s.body;
	return rc;
}

int fl_ckpt_open(struct fl_ckpt_file *f, int dirfd)
{
	f->fd = openat(dirfd, CKPT_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (f->fd < 0)
		return -errno;
	/*
	 * Both slots' blocks now: the first write lands in slot 1, so slot 0 would
	 * otherwise be a hole whose first write needs a new block, and fails on a
	 * full disk after the lines it covers are already in the files. With the
	 * blocks in place, a checkpoint write never needs space.
	 */
	int arc = posix_fallocate(f->fd, 0, 2 * SLOT);
	if (arc) {
		close(f->fd);
		f->fd = -1;
		return -arc;
	}
	struct slot s;
	f->gen = newest(f->fd, &s) == 0 ? s.gen : 0;
	return 0;
}

int fl_ckpt_write(struct fl_ckpt_file *f, const struct fl_ckpt *c, int durable)
{
	struct slot s;
	memset(&s, 0, sizeof s);
	s.magic = CKPT_MAGIC;
	s.version = CKPT_VERSION;
	s.size = sizeof s.body;
	s.gen = f->gen + 1;
	s.body = *c;
	s.sum = slot_sum(&s);
	/* slot by generation parity: the newest valid slot is never the one overwritten */
	ssize_t n = pwrite(f->fd, &s, sizeof s, (off_t)(s.gen & 1) * SLOT);
	if (n != (ssize_t)sizeof s)
		return n < 0 ? -errno : -EIO;
	if (durable && fdatasync(f->fd) < 0)
		return -errno;
	f->gen = s.gen;
	return 0;
}

void fl_ckpt_close(struct fl_ckpt_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}
