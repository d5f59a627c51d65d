/* SPDX-License-Identifier: MIT */
/* doorbell.c: create, map and ring the drainer's doorbell; the worker's sleep on it. */
#define _GNU_SOURCE
#include "doorbell.h"
#include "why.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(struct fl_bell) == 4096, "the doorbell is one page");

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	/* shared futex (no FUTEX_PRIVATE_FLAG): producers and drainer are different processes */
	return syscall(SYS_futex, (uint32_t *)uaddr, op, val, ts, NULL, 0);
}

int fl_bell_name(char *out, size_t cap, const char *prefix)
{
	if (!prefix)
		prefix = fl_ring_prefix();
	int n = snprintf(out, cap, "/%s%s", prefix, FL_BELL_SUFFIX);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* The object behind fd is ours, private, of the doorbell's size (or empty when may_be_empty). */
static int fit(int fd, int may_be_empty, char *why, size_t whylen)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		fl_why(why, whylen, "not a regular object");
		return 0;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		fl_why(why, whylen, "owned by uid %u with mode %03o; want uid %u and mode 600", (unsigned)st.st_uid,
		       (unsigned)(st.st_mode & 0777), (unsigned)geteuid());
		return 0;
	}
	if (st.st_size != (off_t)sizeof(struct fl_bell) && !(may_be_empty && st.st_size == 0)) {
		fl_why(why, whylen, "%lld bytes, want %zu", (long long)st.st_size, sizeof(struct fl_bell));
		return 0;
	}
	return 1;
}

static struct fl_bell *map(int fd)
{
	void *p = mmap(NULL, sizeof(struct fl_bell), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

struct fl_bell *fl_bell_create(const char *name, char *why, size_t whylen)
{
	int fd = shm_open(name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		fl_why(why, whylen, "cannot open %s: %s", name, strerror(errno));
		return NULL;
	}
	char how[160] = "";
	if (!fit(fd, 1, how, sizeof how)) {
		fl_why(why, whylen, "refusing doorbell %s: %s; remove it (rm /dev/shm%s) if it is stale", name, how,
		       name);
		close(fd);
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_size == 0 && ftruncate(fd, sizeof(struct fl_bell)) < 0) {
		fl_why(why, whylen, "cannot size %s: %s", name, strerror(errno));
		close(fd);
		return NULL;
	}
	struct fl_bell *b = map(fd);
	close(fd); /* the mapping keeps the object; no fd per doorbell */
	if (!b) {
		fl_why(why, whylen, "cannot map %s: %s", name, strerror(errno));
		return NULL;
	}
	if (b->magic == 0) {
		b->version = FL_BELL_VERSION;
		b->size = sizeof *b;
		/* magic last: a producer that sees it sees the rest */
		atomic_thread_fence(memory_order_release);
		b->magic = FL_BELL_MAGIC;
	} else if (b->magic != FL_BELL_MAGIC || b->version != FL_BELL_VERSION || b->size != sizeof *b) {
		fl_why(why, whylen, "refusing doorbell %s: unknown layout (version %u); remove it (rm /dev/shm%s)",
		       name, b->version, name);
		munmap(b, sizeof *b);
		return NULL;
	}
	return b;
}

struct fl_bell *fl_bell_open(const char *name)
{
	int fd = shm_open(name, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	struct fl_bell *b = fit(fd, 0, NULL, 0) ? map(fd) : NULL;
	close(fd);
	if (b && (b->magic != FL_BELL_MAGIC || b->version != FL_BELL_VERSION || b->size != sizeof *b)) {
		munmap(b, sizeof *b);
		b = NULL;
	}
	return b;
}

void fl_bell_unmap(struct fl_bell *b)
{
	if (b)
		munmap(b, sizeof *b);
}

void fl_bell_ring(struct fl_bell *b)
{
	/* Dekker with fl_bell_arm: our head store before the look at sleepers */
	fl_smp_mb();
	if (!atomic_load_explicit(&b->sleepers, memory_order_relaxed))
		return;
	if (!atomic_exchange_explicit(&b->sleepers, 0, memory_order_seq_cst))
		return; /* another producer rang first */
	atomic_fetch_add_explicit(&b->rings, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&b->word, 1, memory_order_seq_cst);
	futex(&b->word, FUTEX_WAKE, INT_MAX, NULL);
}

void fl_bell_wake_all(struct fl_bell *b)
{
	atomic_fetch_add_explicit(&b->word, 1, memory_order_seq_cst);
	futex(&b->word, FUTEX_WAKE, INT_MAX, NULL);
}

uint32_t fl_bell_arm(struct fl_bell *b)
{
	uint32_t w = atomic_load_explicit(&b->word, memory_order_seq_cst);
	atomic_store_explicit(&b->sleepers, 1, memory_order_seq_cst);
	/* Dekker with fl_bell_ring: sleepers before the worker's last look at the heads */
	fl_smp_mb();
	return w;
}

int fl_bell_sleep(struct fl_bell *b, uint32_t word, uint64_t timeout_ns)
{
	struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
	long rc = futex(&b->word, FUTEX_WAIT, word, &ts);
	if (rc < 0 && errno == ETIMEDOUT)
		return 0;
	return 1; /* woken, or the word had moved already (EAGAIN), or a signal: look again */
}
