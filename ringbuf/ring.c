/* SPDX-License-Identifier: MIT */
/* ring.c: slow paths of the shared-memory ring — create, attach, validate, wait, consume. */
#define _GNU_SOURCE
#include "ring.h"
#include "why.h"
#include "guard.h"
#include "doorbell.h"
#include "sysutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(struct fl_lane_ctl) == 2 * FL_CACHELINE, "lane control is two cache lines");
_Static_assert(offsetof(struct fl_lane_ctl, tail) == FL_CACHELINE, "tail on its own line");
_Static_assert(offsetof(struct fl_ring_hdr, level) % FL_CACHELINE == 0, "level word on its own line");
_Static_assert(sizeof(struct fl_ring_hdr) % FL_CACHELINE == 0, "header ends on a line");
_Static_assert(sizeof(struct fl_rec_hdr) == FL_REC_HDR, "record header is 16 bytes");
_Static_assert(-105 == -ENOBUFS, "fl_lane_reserve hard-codes ENOBUFS");
_Static_assert(offsetof(struct fl_ring_hdr, attached) % FL_CACHELINE == 0, "the drainer's line is its own");
_Static_assert(offsetof(struct fl_lane_ctl, nudge_at) < FL_CACHELINE, "nudge_at on the owner's line");

#define PAGE 4096ull

static int pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static uint64_t lanes_off(void)
{
	return sizeof(struct fl_ring_hdr);
}

static uint64_t data_off(uint32_t lane_count)
{
	uint64_t end = lanes_off() + (uint64_t)lane_count * sizeof(struct fl_lane_ctl);
	return (end + PAGE - 1) & ~(PAGE - 1);
}

uint64_t fl_ring_size(uint32_t lane_count, uint64_t lane_size)
{
	if (!pow2(lane_count) || lane_count > FL_RING_MAX_LANES)
		return 0;
	if (!pow2(lane_size) || lane_size < FL_RING_MIN_LANE_SIZE || lane_size > FL_RING_MAX_LANE_SIZE)
		return 0;
	return data_off(lane_count) + (uint64_t)lane_count * lane_size;
}

const char *fl_ring_prefix(void)
{
	const char *p = getenv("FUGUE_SHM_PREFIX");
	if (!p || !*p || strlen(p) > 64 || strchr(p, '/'))
		return "fugue-";
	return p;
}

int fl_ring_name(char *out, size_t cap, const char *prefix, const char *id)
{
	if (!prefix)
		prefix = fl_ring_prefix();
	int n = snprintf(out, cap, "/%s%s", prefix, id);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/*
 * starttime (field 22) of /proc/<pid>/stat: with the pid it names one process for good.
 * -ESRCH only when the process does not exist; any other failure (EMFILE, ENOMEM, ...)
 * is its own -errno, so a caller never mistakes "could not look" for "gone".
 */
int fl_proc_start(int pid, uint64_t *start)
{
	char path[64], buf[1024];
	*start = 0;
	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? -ESRCH : -errno;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return e == ESRCH ? -ESRCH : -e; /* ESRCH: it exited between open and read */
	if (n == 0)
		return -ESRCH;
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	if (!p)
		return -EIO;
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return -EIO;
	*start = strtoull(p + 1, NULL, 10);
	return 0;
}

/* 1 when the first "flags" line of /proc/cpuinfo has every word of want (NULL-terminated). */
static int cpu_flags_have(const char *const *want)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return 0;
	char *line = NULL;
	size_t cap = 0;
	int ok = 0;
	while (getline(&line, &cap, f) > 0) {
		if (strncmp(line, "flags", 5))
			continue;
		char *colon = strchr(line, ':');
		ok = colon != NULL;
		for (const char *const *w = want; ok && *w; w++) {
			size_t n = strlen(*w);
			const char *p = colon;
			ok = 0;
			while ((p = strstr(p + 1, *w)))
				if (p[-1] == ' ' && (p[n] == ' ' || p[n] == '\n' || !p[n])) {
					ok = 1;
					break;
				}
		}
		break;
	}
	free(line);
	fclose(f);
	return ok;
}

static int tsc_ok;
static pthread_once_t tsc_once = PTHREAD_ONCE_INIT;

static void tsc_probe(void)
{
#if defined(__x86_64__)
	static const char *const want[] = {"constant_tsc", "nonstop_tsc", NULL};
	tsc_ok = cpu_flags_have(want);
#endif
}

int fl_tsc_usable(void)
{
	pthread_once(&tsc_once, tsc_probe);
	return tsc_ok;
}

uint64_t fl_tsc_anchor(uint64_t *tsc, int64_t *realtime_ns)
{
	uint64_t best = UINT64_MAX;
	/* an interrupt or preemption inside one bracket only widens that one: keep the tightest */
	for (int i = 0; i < 5; i++) {
		uint64_t t0 = fl_rdtsc();
		int64_t rt = fl_now_ns(CLOCK_REALTIME);
		uint64_t t1 = fl_rdtsc();
		if (t1 - t0 < best) {
			best = t1 - t0;
			*tsc = t0 + (t1 - t0) / 2;
			*realtime_ns = rt;
		}
	}
	return best;
}

static void fill_handle(struct fl_ring *r, void *base, uint64_t size)
{
	r->hdr = base;
	r->lanes = (struct fl_lane_ctl *)((uint8_t *)base + r->hdr->lanes_off);
	r->data = (uint8_t *)base + r->hdr->data_off;
	r->map_size = size;
}

/* Maps every page of a fresh (all-zero) ring writable, so no emit takes a page fault. */
static void prefault(void *base, uint64_t size)
{
#ifdef MADV_POPULATE_WRITE
	if (madvise(base, size, MADV_POPULATE_WRITE) == 0)
		return;
#endif
	/* older kernels: one write per page; the bytes are zero and stay zero */
	for (uint64_t off = 0; off < size; off += PAGE)
		((volatile uint8_t *)base)[off] = 0;
}

int fl_ring_create(struct fl_ring *r, const char *name, const struct fl_ring_params *p)
{
	uint32_t lanes = p->lane_count ? p->lane_count : 4;
	uint64_t lane_size = p->lane_size ? p->lane_size : (1ull << 20);
	uint64_t size = fl_ring_size(lanes, lane_size);
	if (!size || !p->id || strlen(p->id) > FL_RING_ID_MAX)
		return -EINVAL;

	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* fchmod: the umask must not widen or narrow what docs/layout.md fixes */
	if (fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t)size) < 0) {
		int e = -errno;
		close(fd);
		shm_unlink(name);
		return e;
	}
	/*
	 * Every page now: a full /dev/shm is an error here, not a SIGBUS at some
	 * later emit, and the first lap of each lane does not pay a page fault per
	 * 4 KiB (about 3.4 us per 4 KiB transcript chunk against 0.1 us after).
	 */
	if (fallocate(fd, 0, 0, (off_t)size) < 0 && errno != EOPNOTSUPP) {
		int e = -errno;
		close(fd);
		shm_unlink(name);
		return e;
	}
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		int e = -errno;
		close(fd);
		shm_unlink(name);
		return e;
	}
	prefault(base, size);
	struct fl_ring_hdr *h = base; /* ftruncate zeroed it */
	h->version = FL_RING_VERSION;
	h->hdr_size = sizeof *h;
	h->total_size = size;
	h->lane_size = lane_size;
	h->lanes_off = lanes_off();
	h->data_off = data_off(lanes);
	h->lane_count = lanes;
	h->flags = p->flags;
	h->pid = (uint32_t)getpid();
	int prc = fl_proc_start(getpid(), &h->pid_start);
	if (prc < 0) {
		/* without its start time the ring would look abandoned to every drainer */
		munmap(base, size);
		close(fd);
		shm_unlink(name);
		return prc;
	}
	h->start_realtime_ns = fl_now_ns(CLOCK_REALTIME);
	h->clock = p->clock == FL_RING_CLOCK_TSC && fl_tsc_usable() ? FL_RING_CLOCK_TSC : FL_RING_CLOCK_REALTIME;
	if (h->clock == FL_RING_CLOCK_TSC)
		fl_tsc_anchor(&h->anchor_tsc, &h->anchor_realtime_ns);
	h->start_monotonic_ns = fl_now_ns(CLOCK_MONOTONIC);
	snprintf(h->id, sizeof h->id, "%s", p->id);
	atomic_init(&h->level, p->level);
	h->level0 = p->level;
	/* magic last: an attacher racing creation sees a bad magic, never a half header */
	atomic_thread_fence(memory_order_release);
	h->magic = FL_RING_MAGIC;

	r->fd = fd;
	r->lane_count = lanes;
	r->lane_size = lane_size;
	r->bell = NULL;
	r->bell_for = 0;
	r->bell_busy = 0;
	r->bell_name[0] = 0;
	fill_handle(r, base, size);
	return 0;
}

int fl_ring_validate(struct fl_ring *r, void *base, uint64_t size, char *why, size_t whylen)
{
	const struct fl_ring_hdr *h = base;
	if ((uintptr_t)base % FL_CACHELINE) {
		fl_why(why, whylen, "ring image at %p is not cache-line aligned", base);
		return -EINVAL;
	}
	if (size < sizeof *h) {
		fl_why(why, whylen, "mapping of %llu bytes is smaller than a ring header", (unsigned long long)size);
		return -EBADF;
	}
	if (h->magic != FL_RING_MAGIC) {
		fl_why(why, whylen, "bad magic %#llx: not a fuguelog ring", (unsigned long long)h->magic);
		return -EBADF;
	}
	if (h->version != FL_RING_VERSION || h->hdr_size != sizeof *h) {
		fl_why(why, whylen,
		       "layout version %u (header %u bytes); this build reads version %u (%zu bytes): the producer "
		       "links a%s libfuguelog, so run producer and drainer of one release",
		       h->version, h->hdr_size, FL_RING_VERSION, sizeof *h,
		       h->version < FL_RING_VERSION ? "n older" : " newer");
		return -EPROTO;
	}
	uint32_t lanes = h->lane_count;
	uint64_t lane_size = h->lane_size;
	uint64_t want = fl_ring_size(lanes, lane_size);
	if (!want) {
		fl_why(why, whylen, "bad geometry: %u lanes of %llu bytes", lanes, (unsigned long long)lane_size);
		return -EPROTO;
	}
	if (h->lanes_off != lanes_off() || h->data_off != data_off(lanes)) {
		fl_why(why, whylen, "bad offsets: lanes at %llu, data at %llu", (unsigned long long)h->lanes_off,
		       (unsigned long long)h->data_off);
		return -EPROTO;
	}
	if (h->total_size != want || size < want) {
		fl_why(why, whylen, "size mismatch: header says %llu, layout needs %llu, mapping has %llu",
		       (unsigned long long)h->total_size, (unsigned long long)want, (unsigned long long)size);
		return -EPROTO;
	}
	if (!memchr(h->id, 0, sizeof h->id)) {
		fl_why(why, whylen, "session id is not NUL-terminated");
		return -EPROTO;
	}
	r->lane_count = lanes;
	r->lane_size = lane_size;
	r->hdr = base;
	r->lanes = (struct fl_lane_ctl *)((uint8_t *)base + lanes_off());
	r->data = (uint8_t *)base + data_off(lanes);
	r->map_size = size;
	return 0;
}

int fl_ring_attach(struct fl_ring *r, const char *name, char *why, size_t whylen)
{
	memset(r, 0, sizeof *r);
	r->fd = -1;
	int fd = shm_open(name, O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0);
	if (fd < 0) {
		int e = -errno;
		fl_why(why, whylen, "cannot open shm %s: %s", name, strerror(-e));
		return e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		fl_why(why, whylen, "shm %s is not a regular object", name);
		close(fd);
		return -EBADF;
	}
	/* before a single byte is read: only our own user's private objects are believed */
	if (st.st_uid != geteuid()) {
		fl_why(why, whylen, "shm %s belongs to uid %u, not to this process's uid %u: left alone", name,
		       (unsigned)st.st_uid, (unsigned)geteuid());
		close(fd);
		return -EPERM;
	}
	if (st.st_mode & 077) {
		fl_why(why, whylen,
		       "shm %s has mode %04o: group or others may read or write it (a ring is 0600): left alone", name,
		       (unsigned)(st.st_mode & 07777));
		close(fd);
		return -EPERM;
	}
	if ((uint64_t)st.st_size < sizeof(struct fl_ring_hdr) ||
	    (uint64_t)st.st_size > data_off(FL_RING_MAX_LANES) + FL_RING_MAX_LANES * FL_RING_MAX_LANE_SIZE) {
		fl_why(why, whylen, "shm %s has an impossible size of %lld bytes", name, (long long)st.st_size);
		close(fd);
		return -EBADF;
	}
	uint64_t size = (uint64_t)st.st_size;
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		int e = -errno;
		fl_why(why, whylen, "cannot map shm %s: %s", name, strerror(-e));
		close(fd);
		return e;
	}
	/* the mapping holds the object: the fd is not needed again, and 10,000 rings must not cost 10,000 fds */
	close(fd);
	/* before the first read: the producer may truncate at any time */
	int rc = fl_guard_add(base, size);
	if (rc < 0) {
		fl_why(why, whylen, "shm %s: no memory to guard its mapping against truncation", name);
		munmap(base, size);
		return rc;
	}
	rc = fl_ring_validate(r, base, size, why, whylen);
	if (rc == 0 && fl_guard_tripped(base)) {
		fl_why(why, whylen, "shm %s was truncated while being attached", name);
		rc = -EBADF;
	}
	if (rc < 0) {
		fl_guard_del(base);
		munmap(base, size);
		memset(r, 0, sizeof *r);
		r->fd = -1;
		return rc;
	}
	r->fd = -1;
	return 0;
}

void fl_ring_detach(struct fl_ring *r)
{
	fl_bell_unmap(atomic_load(&r->bell));
	if (r->hdr) {
		fl_guard_del(r->hdr);
		munmap(r->hdr, r->map_size);
	}
	if (r->fd > 0)
		close(r->fd);
	memset(r, 0, sizeof *r);
	r->fd = -1;
}

int fl_ring_owner_alive(const struct fl_ring *r)
{
	uint32_t pid = r->hdr->pid;
	uint64_t want = r->hdr->pid_start;
	if (!pid || pid > INT32_MAX)
		return 0;
	uint64_t st;
	int rc = fl_proc_start((int)pid, &st);
	if (rc == -ESRCH)
		return 0;
	if (rc < 0)
		return rc; /* could not look: not a verdict */
	/* a pid the header names (pid 1 included) is the producer only if it started when the header says */
	return st == want;
}

int fl_ring_unlink(const char *name)
{
	return shm_unlink(name) < 0 ? -errno : 0;
}

uint64_t fl_ring_level_set(struct fl_ring *r, uint8_t value)
{
	uint64_t old = atomic_load_explicit(&r->hdr->level, memory_order_relaxed);
	uint64_t next;
	do
		next = ((FL_LEVEL_GEN(old) + 1) << 8) | value;
	while (!atomic_compare_exchange_weak_explicit(&r->hdr->level, &old, next, memory_order_acq_rel,
						      memory_order_relaxed));
	return old;
}

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	/* shared futex (no FUTEX_PRIVATE_FLAG): waiter and waker live in different processes */
	return syscall(SYS_futex, (uint32_t *)uaddr, op, val, ts, NULL, 0);
}

int fl_lane_wait_room(struct fl_ring *r, uint32_t lane, uint32_t len, uint64_t timeout_ns)
{
	struct fl_lane_ctl *c = &r->lanes[lane];
	uint64_t size = r->lane_size;
	/* worst case: a pad to the end of the lane, then the record */
	uint64_t need = fl_rec_space(len) + fl_rec_space(fl_ring_max_record(r));
	if (need > size)
		need = size;
	int64_t deadline = timeout_ns ? fl_now_ns(CLOCK_MONOTONIC) + (int64_t)timeout_ns : 0;

	for (unsigned spin = 0; spin < 256; spin++) {
		/* pairs with the store-release of tail in fl_lane_release */
		c->cached_tail = fl_load_acquire(&c->tail);
		if (fl_load_relaxed(&c->head) + need - c->cached_tail <= size)
			return 0;
		fl_cpu_relax();
	}
	fl_ring_bell_ring(r); /* a full lane: a sleeping drainer must come now, not on its timer */
	for (;;) {
		atomic_fetch_add_explicit(&c->waiters, 1, memory_order_seq_cst);
		uint32_t w = atomic_load_explicit(&c->wake, memory_order_seq_cst);
		c->cached_tail = atomic_load_explicit(&c->tail, memory_order_seq_cst);
		int room = fl_load_relaxed(&c->head) + need - c->cached_tail <= size;
		if (!room) {
			struct timespec ts = {0, 10 * 1000 * 1000}; /* re-check: the drainer may be gone */
			if (deadline) {
				int64_t left = deadline - fl_now_ns(CLOCK_MONOTONIC);
				if (left <= 0) {
					atomic_fetch_sub_explicit(&c->waiters, 1, memory_order_relaxed);
					return -ETIMEDOUT;
				}
				if (left < 10 * 1000 * 1000)
					ts.tv_nsec = left;
			}
			futex(&c->wake, FUTEX_WAIT, w, &ts);
		}
		atomic_fetch_sub_explicit(&c->waiters, 1, memory_order_relaxed);
		if (room)
			return 0;
	}
}

int fl_lane_peek(struct fl_ring *r, uint32_t lane, struct fl_rec *out, unsigned max, uint64_t *next_tail, char *why,
		 size_t whylen)
{
	struct fl_lane_ctl *c = &r->lanes[lane];
	uint64_t size = r->lane_size;
	uint64_t tail = fl_load_relaxed(&c->tail); /* our own store, but shared memory: validate */
	/* pairs with the store-release of head in fl_lane_commit */
	uint64_t head = fl_load_acquire(&c->head);
	uint8_t *base = r->data + (uint64_t)lane * size;
	unsigned n = 0;

	*next_tail = tail;
	if ((head | tail) & (FL_REC_ALIGN - 1)) {
		fl_why(why, whylen, "lane %u: unaligned head %llu or tail %llu", lane, (unsigned long long)head,
		       (unsigned long long)tail);
		return -EBADMSG;
	}
	if (head - tail > size) {
		fl_why(why, whylen, "lane %u: head %llu is %lld bytes from tail %llu, lane holds %llu", lane,
		       (unsigned long long)head, (long long)(head - tail), (unsigned long long)tail,
		       (unsigned long long)size);
		return -EBADMSG;
	}
	uint64_t pos = tail;
	while (pos != head && n < max) {
		uint64_t off = pos & (size - 1);
		uint64_t room = size - off;
		if (room < FL_REC_HDR) {
			if (head - pos < room)
				goto torn;
			pos += room; /* implicit skip at the wrap */
			continue;
		}
		if (head - pos < FL_REC_HDR)
			goto torn;
		struct fl_rec_hdr h;
		memcpy(&h, base + off, sizeof h); /* one read: the producer may change the bytes */
		if (h.type == FL_REC_PAD) {
			if ((uint64_t)h.len + FL_REC_HDR != room || head - pos < room) {
				fl_why(why, whylen, "lane %u: pad record at %llu of %u bytes does not reach the end",
				       lane, (unsigned long long)pos, h.len);
				goto bad;
			}
			pos += room;
			continue;
		}
		if (h.type != FL_REC_DATA) {
			fl_why(why, whylen, "lane %u: record at %llu has unknown type %#x", lane,
			       (unsigned long long)pos, h.type);
			goto bad;
		}
		uint64_t space = fl_rec_space(h.len);
		if (h.len > size / 4 || space > room || space > head - pos) {
			fl_why(why, whylen, "lane %u: record at %llu claims %u bytes, beyond the lane or the head",
			       lane, (unsigned long long)pos, h.len);
			goto bad;
		}
		out[n].data = base + off + FL_REC_HDR;
		out[n].len = h.len;
		out[n].tag = h.tag;
		out[n].seq = h.seq;
		n++;
		pos += space;
		*next_tail = pos;
	}
	if (pos == head)
		*next_tail = pos; /* trailing pads are consumed with the batch */
	return (int)n;
torn:
	fl_why(why, whylen, "lane %u: head %llu stops inside a record header at %llu", lane, (unsigned long long)head,
	       (unsigned long long)pos);
bad:
	/* the records before the damage are sound: hand them out; the next call starts at it and refuses */
	return n ? (int)n : -EBADMSG;
}

void fl_lane_release(struct fl_ring *r, uint32_t lane, uint64_t new_tail)
{
	struct fl_lane_ctl *c = &r->lanes[lane];
	/* pairs with the load-acquire of tail in fl_lane_reserve/fl_lane_wait_room */
	fl_store_release(&c->tail, new_tail);
	fl_smp_mb(); /* order the tail store before reading waiters (Dekker with fl_lane_wait_room) */
	if (atomic_load_explicit(&c->waiters, memory_order_relaxed)) {
		atomic_fetch_add_explicit(&c->wake, 1, memory_order_seq_cst);
		futex(&c->wake, FUTEX_WAKE, INT32_MAX, NULL);
	}
}

/* ---- start-up handshake and doorbell ------------------------------------------------- */

void fl_ring_set_attached(struct fl_ring *r)
{
	/* pairs with the load-acquire in fl_ring_attached / fl_ring_wait_attached */
	fl_store_release(&r->hdr->attached, (uint32_t)getpid());
	futex(&r->hdr->attached, FUTEX_WAKE, INT32_MAX, NULL);
}

int fl_ring_wait_attached(struct fl_ring *r, uint64_t timeout_ns)
{
	int64_t deadline =
	    fl_now_ns(CLOCK_MONOTONIC) + (int64_t)(timeout_ns > INT64_MAX / 2 ? INT64_MAX / 2 : timeout_ns);
	while (!fl_ring_attached(r)) {
		int64_t left = deadline - fl_now_ns(CLOCK_MONOTONIC);
		if (left <= 0)
			return -ETIMEDOUT;
		struct timespec ts = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
		futex(&r->hdr->attached, FUTEX_WAIT, 0, &ts);
	}
	return 0;
}

/*
 * The doorbell, mapped on first need: at fl_ring_bell_use, then again each time
 * the ring is attached by a drainer we have not looked for (a drainer started
 * after the session). One thread looks; the others go on without.
 */
static struct fl_bell *bell_get(struct fl_ring *r)
{
	/* pairs with the store-release below */
	struct fl_bell *b = atomic_load_explicit(&r->bell, memory_order_acquire);
	if (b || !r->bell_name[0])
		return b;
	uint32_t att = fl_load_acquire(&r->hdr->attached);
	if (!att || att == atomic_load_explicit(&r->bell_for, memory_order_relaxed))
		return NULL;
	if (atomic_exchange_explicit(&r->bell_busy, 1, memory_order_acquire))
		return NULL;
	atomic_store_explicit(&r->bell_for, att, memory_order_relaxed);
	b = fl_bell_open(r->bell_name);
	if (b)
		atomic_store_explicit(&r->bell, b, memory_order_release);
	atomic_store_explicit(&r->bell_busy, 0, memory_order_release);
	return b;
}

int fl_ring_bell_use(struct fl_ring *r, const char *prefix)
{
	int rc = fl_bell_name(r->bell_name, sizeof r->bell_name, prefix);
	if (rc < 0) {
		r->bell_name[0] = 0;
		return rc;
	}
	struct fl_bell *b = fl_bell_open(r->bell_name);
	if (b)
		atomic_store_explicit(&r->bell, b, memory_order_release);
	return 0;
}

void fl_ring_bell_ring(struct fl_ring *r)
{
	struct fl_bell *b = bell_get(r);
	if (b)
		fl_bell_ring(b);
}

void fl_lane_nudge(struct fl_ring *r, uint32_t lane, uint64_t head)
{
	struct fl_lane_ctl *c = &r->lanes[lane];
	uint64_t size = r->lane_size, wm = FL_BELL_WATERMARK(size);
	/* pairs with the store-release of tail in fl_lane_release; also refreshes the reserve's copy */
	uint64_t tail = fl_load_acquire(&c->tail);
	c->cached_tail = tail;
	if (head - tail < wm) {
		c->nudge_at = tail + wm; /* the head at which the lane can first hold a watermark */
		return;
	}
	/* above the watermark: look again a step later, so a lane that stays full pays once per step */
	c->nudge_at = head + FL_BELL_STEP(size);
	fl_ring_bell_ring(r);
}
