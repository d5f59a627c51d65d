/* SPDX-License-Identifier: MIT */
/* archive.c: segment scanning, crash-safe lz4 archiving of closed segments, and the compressor thread. */
#define _GNU_SOURCE
#include "archive.h"
#include "jsonl.h"
#include "sysutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lz4frame.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FL_IO_CHUNK (64u << 10)

/*
 * One frame per archive, 256 KiB linked blocks (better ratio than independent
 * blocks on line-oriented text, and small enough that decoding needs little
 * memory), content checksum on so `lz4 -t` and our own verify catch any damage,
 * and the content size in the header so a truncated frame can never look whole.
 */
static void archive_prefs(LZ4F_preferences_t *p, uint64_t content_size)
{
	memset(p, 0, sizeof *p);
	p->frameInfo.blockSizeID = LZ4F_max256KB;
	p->frameInfo.blockMode = LZ4F_blockLinked;
	p->frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	p->frameInfo.contentSize = content_size;
	p->compressionLevel = 0; /* the fast default: the drainer shares two cores with the sessions it logs */
}

static int open_seg(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int read_full(int fd, void *buf, size_t len, size_t *got)
{
	size_t n = 0;
	while (n < len) {
		ssize_t r = read(fd, (char *)buf + n, len - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*got = n;
	return 0;
}

struct scan_state {
	struct fl_seg_info *info;
	char head[192]; /* the start of the current line: "ts" and "seq" lead every line */
	size_t headlen;
};

/* The one line-field reader (fl_json_field) on the line's head: "ts" and "seq" lead every line. */
static void scan_line(struct scan_state *s)
{
	struct fl_seg_info *in = s->info;
	size_t n = s->headlen < sizeof s->head ? s->headlen : sizeof s->head - 1;
	uint64_t seq = 0, ts = 0;
	const char *v;
	size_t vlen;
	if (fl_line_seq(s->head, n, &seq) < 0)
		seq = 0;
	if (fl_json_field(s->head, n, "ts", &v, &vlen) < 0 || vlen < 2 || v[0] != '"' ||
	    fl_ts_parse(v + 1, vlen - 2, &ts) < 0)
		ts = 0;
	if (in->lines == 0) {
		in->first_seq = seq;
		in->first_ts = ts;
	}
	in->last_seq = seq;
	in->last_ts = ts;
	in->lines++;
}

static int scan_chunk(void *arg, const void *buf, size_t len)
{
	struct scan_state *s = arg;
	const char *p = buf, *end = p + len;
	s->info->plain_bytes += len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;
		size_t room = sizeof s->head - 1 - (s->headlen < sizeof s->head - 1 ? s->headlen : sizeof s->head - 1);
		size_t take = (size_t)(stop - p) < room ? (size_t)(stop - p) : room;
		memcpy(s->head + s->headlen, p, take);
		s->headlen += take;
		if (!nl)
			break;
		scan_line(s);
		s->headlen = 0;
		p = nl + 1;
	}
	return 0;
}

int fl_seg_scan(int dirfd, const char *name, struct fl_seg_info *info)
{
	memset(info, 0, sizeof *info);
	struct scan_state s = {.info = info};
	return fl_seg_read(dirfd, name, scan_chunk, &s);
}

static int count_chunk(void *arg, const void *buf, size_t len)
{
	(void)buf;
	*(uint64_t *)arg += len;
	return 0;
}

int fl_archive_verify(int dirfd, const char *lz4_name, uint64_t *plain_bytes)
{
	uint64_t n = 0;
	int rc = fl_seg_read(dirfd, lz4_name, count_chunk, &n);
	if (rc == 0 && plain_bytes)
		*plain_bytes = n;
	return rc;
}

/* Compares decoded archive bytes against the plain segment, chunk by chunk. */
struct cmp_state {
	int fd;
	char *buf;
	uint64_t n;
};

static int cmp_chunk(void *arg, const void *buf, size_t len)
{
	struct cmp_state *c = arg;
	const char *p = buf;
	while (len) {
		size_t want = len < FL_IO_CHUNK ? len : FL_IO_CHUNK, got = 0;
		int rc = read_full(c->fd, c->buf, want, &got);
		if (rc < 0)
			return rc;
		if (got != want || memcmp(c->buf, p, want))
			return 1; /* differs */
		p += want;
		len -= want;
		c->n += want;
	}
	return 0;
}

/* 1 when the archive decodes whole and equals the plain segment byte for byte, 0 when not, -errno on I/O errors. */
static int archive_matches(int dirfd, const char *lz4_name, int plain_fd)
{
	struct stat st;
	if (fstat(plain_fd, &st) < 0)
		return -errno;
	struct cmp_state c = {.fd = plain_fd, .buf = malloc(FL_IO_CHUNK)};
	if (!c.buf)
		return -ENOMEM;
	if (lseek(plain_fd, 0, SEEK_SET) < 0) {
		free(c.buf);
		return -errno;
	}
	int rc = fl_seg_read(dirfd, lz4_name, cmp_chunk, &c);
	free(c.buf);
	if (rc == 1 || rc == -EBADMSG)
		return 0;
	if (rc < 0)
		return rc;
	return c.n == (uint64_t)st.st_size;
}

/* Writes what one LZ4F_compress* call produced (w bytes of dst, or an lz4 error) and counts it. */
static int put_lz4(int out, const char *dst, size_t w, uint64_t *total)
{
	if (LZ4F_isError(w))
		return -EIO;
	int rc = fl_write_full(out, dst, w);
	if (rc == 0)
		*total += w;
	return rc;
}

static int compress_fd(int in, int out, uint64_t size, uint64_t *out_bytes, long pause_ms)
{
	LZ4F_preferences_t prefs;
	archive_prefs(&prefs, size);
	LZ4F_cctx *cc;
	if (LZ4F_isError(LZ4F_createCompressionContext(&cc, LZ4F_VERSION)))
		return -ENOMEM;
	size_t cap = LZ4F_compressBound(FL_IO_CHUNK, &prefs);
	if (cap < LZ4F_HEADER_SIZE_MAX)
		cap = LZ4F_HEADER_SIZE_MAX;
	char *src = malloc(FL_IO_CHUNK), *dst = malloc(cap);
	int rc = 0;
	uint64_t total = 0, seen = 0;
	if (!src || !dst) {
		rc = -ENOMEM;
		goto done;
	}
	if ((rc = put_lz4(out, dst, LZ4F_compressBegin(cc, dst, cap, &prefs), &total)) < 0)
		goto done;
	for (;;) {
		size_t got = 0;
		if ((rc = read_full(in, src, FL_IO_CHUNK, &got)) < 0)
			goto done;
		if (got == 0)
			break;
		seen += got;
		if ((rc = put_lz4(out, dst, LZ4F_compressUpdate(cc, dst, cap, src, got, NULL), &total)) < 0)
			goto done;
		if (pause_ms > 0) {
			/* FUGUE_ARCHIVE_PAUSE_MS: tests hold the temp file half written to crash in the middle */
			struct timespec ts = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
			nanosleep(&ts, NULL);
			pause_ms = 0;
		}
	}
	if (seen != size) {
		rc = -EAGAIN; /* the segment changed under us: it was not closed */
		goto done;
	}
	if ((rc = put_lz4(out, dst, LZ4F_compressEnd(cc, dst, cap, NULL), &total)) < 0)
		goto done;
	*out_bytes = total;
done:
	free(src);
	free(dst);
	LZ4F_freeCompressionContext(cc);
	return rc;
}

static int fsync_dir(int dirfd)
{
	return fsync(dirfd) < 0 ? -errno : 0;
}

/* The plain segment is gone: archived before (the plain bytes go last), or it never existed. */
static int archive_done_before(int dirfd, const char *lz4, const char *tmp)
{
	unlinkat(dirfd, tmp, 0);
	struct stat ls;
	return fstatat(dirfd, lz4, &ls, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(ls.st_mode) ? 0 : -ENOENT;
}

/*
 * An archive already beside the plain segment: a crash hit between the rename
 * and the unlink, or the archive is damaged. 1 when it matches (only the plain
 * bytes have to go), 0 once a bad one is removed and in is rewound, or -errno.
 */
static int archive_existing(int dirfd, const char *lz4, int in)
{
	struct stat ls;
	if (fstatat(dirfd, lz4, &ls, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	int rc = S_ISREG(ls.st_mode) ? archive_matches(dirfd, lz4, in) : 0;
	if (rc != 0)
		return rc;
	if (unlinkat(dirfd, lz4, 0) < 0 || lseek(in, 0, SEEK_SET) < 0)
		return -errno;
	return 0;
}

/* Compresses in into tmp, durable, then renames it over lz4. 0 or -errno; no temp file is left on failure. */
static int archive_write(int dirfd, int in, const struct stat *ps, const char *tmp, const char *lz4,
			 struct fl_archive_stats *st, long pause_ms)
{
	int out = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, ps->st_mode & 0666);
	if (out < 0)
		return -errno;
	int rc = compress_fd(in, out, (uint64_t)ps->st_size, &st->out_bytes, pause_ms);
	if (rc == 0) {
		/* Keep the segment's mtime so age-based tools (find -mtime, ls -lt) see when its lines were written. */
		struct timespec ts[2] = {ps->st_atim, ps->st_mtim};
		futimens(out, ts);
		if (fsync(out) < 0)
			rc = -errno;
	}
	if (close(out) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(dirfd, tmp, dirfd, lz4) < 0)
		/* our own temp file vanished: not "nothing to do" (-ENOENT), the segment is still plain */
		rc = errno == ENOENT ? -ESTALE : -errno;
	if (rc < 0) {
		unlinkat(dirfd, tmp, 0);
		return rc;
	}
	return fsync_dir(dirfd);
}

static int archive_segment(int dirfd, const char *plain, struct fl_archive_stats *st, long pause_ms)
{
	char cls[16], lz4[FL_SEG_NAME_MAX], tmp[FL_SEG_NAME_MAX];
	uint64_t n;
	struct fl_archive_stats dummy;
	if (!st)
		st = &dummy;
	memset(st, 0, sizeof *st);
	if (fl_seg_parse(plain, cls, &n) != FL_SEG_PLAIN)
		return -EINVAL;
	fl_seg_name(lz4, sizeof lz4, cls, n, FL_SEG_LZ4);
	fl_seg_name(tmp, sizeof tmp, cls, n, FL_SEG_TMP);

	int in = open_seg(dirfd, plain);
	if (in == -ENOENT)
		return archive_done_before(dirfd, lz4, tmp);
	if (in < 0)
		return in;
	struct stat ps;
	int rc = fstat(in, &ps) < 0 ? -errno : 0;
	if (rc == 0 && !S_ISREG(ps.st_mode))
		rc = -EINVAL;
	if (rc == 0) {
		st->in_bytes = (uint64_t)ps.st_size;
		rc = archive_existing(dirfd, lz4, in);
	}
	if (rc == 0)
		rc = archive_write(dirfd, in, &ps, tmp, lz4, st, pause_ms);
	/* Only now, with the archive durable under its final name, may the plain bytes go. */
	if (rc >= 0 && unlinkat(dirfd, plain, 0) < 0 && errno != ENOENT)
		rc = -errno;
	else if (rc >= 0)
		rc = fsync_dir(dirfd);
	close(in);
	return rc;
}

int fl_archive_segment(int dirfd, const char *plain, struct fl_archive_stats *st)
{
	return archive_segment(dirfd, plain, st, 0);
}

struct recover_state {
	int dirfd;
	uint64_t skip_from;
	void (*todo)(const char *plain, void *arg);
	void *arg;
	int count;
};

static int remove_tmp(void *arg, const struct fl_seg_ent *e)
{
	struct recover_state *r = arg;
	if (e->kind == FL_SEG_TMP)
		unlinkat(r->dirfd, e->name, 0);
	return 0;
}

static int recover_one(void *arg, const struct fl_seg_ent *e)
{
	struct recover_state *r = arg;
	if (e->kind == FL_SEG_PLAIN && e->n < r->skip_from) {
		if (r->todo)
			r->todo(e->name, r->arg);
		r->count++;
	}
	return 0;
}

/*
 * Two passes: every temp file goes before the first plain segment is handed
 * to todo. todo usually queues it for the compressor thread, which may open
 * that segment's temp file at once; removing temp files in the same walk
 * could then unlink the one being written (when the directory lists it after
 * its plain segment), the rename would fail, and the segment would stay plain.
 */
int fl_archive_recover(int dirfd, uint64_t skip_from, void (*todo)(const char *plain, void *arg), void *arg)
{
	struct recover_state r = {.dirfd = dirfd, .skip_from = skip_from, .todo = todo, .arg = arg};
	int rc = fl_seg_each(dirfd, remove_tmp, &r);
	if (rc == 0)
		rc = fl_seg_each(dirfd, recover_one, &r);
	return rc < 0 ? rc : r.count;
}

/* ---- compressor thread ---- */

struct fl_archive_job {
	struct fl_archive_job *next;
	int dirfd;
	uint64_t tag;
	char name[FL_SEG_NAME_MAX];
};

struct fl_archiver {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work, idle;
	struct fl_archive_job *head, *tail;
	unsigned pending; /* queued + running */
	int stopping, finish;
	long pause_ms; /* FUGUE_ARCHIVE_PAUSE_MS, read once at start */
	fl_archive_done_fn done;
	void *arg;
};

static void *archiver_main(void *p)
{
	struct fl_archiver *a = p;
	pthread_setname_np(pthread_self(), "fl-archiver");
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->head && !a->stopping)
			pthread_cond_wait(&a->work, &a->mu);
		if (!a->head || (a->stopping && !a->finish))
			break;
		struct fl_archive_job *j = a->head;
		a->head = j->next;
		if (!a->head)
			a->tail = NULL;
		pthread_mutex_unlock(&a->mu);

		struct fl_archive_stats st;
		int rc = archive_segment(j->dirfd, j->name, &st, a->pause_ms);
		if (a->done)
			a->done(a->arg, j->tag, j->name, rc, &st);
		close(j->dirfd);
		free(j);

		pthread_mutex_lock(&a->mu);
		if (--a->pending == 0)
			pthread_cond_broadcast(&a->idle);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int fl_archiver_start(struct fl_archiver **out, fl_archive_done_fn done, void *arg)
{
	struct fl_archiver *a = calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->work, NULL);
	pthread_cond_init(&a->idle, NULL);
	a->done = done;
	a->arg = arg;
	const char *pause = getenv("FUGUE_ARCHIVE_PAUSE_MS");
	a->pause_ms = pause ? strtol(pause, NULL, 10) : 0;
	int rc = pthread_create(&a->thread, NULL, archiver_main, a);
	if (rc) {
		pthread_mutex_destroy(&a->mu);
		pthread_cond_destroy(&a->work);
		pthread_cond_destroy(&a->idle);
		free(a);
		return -rc;
	}
	*out = a;
	return 0;
}

int fl_archiver_enqueue(struct fl_archiver *a, int dirfd, const char *plain, uint64_t tag)
{
	struct fl_archive_job *j = calloc(1, sizeof *j);
	if (!j)
		return -ENOMEM;
	if (snprintf(j->name, sizeof j->name, "%s", plain) >= (int)sizeof j->name) {
		free(j);
		return -ENAMETOOLONG;
	}
	j->tag = tag;
	j->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (j->dirfd < 0) {
		int e = -errno;
		free(j);
		return e;
	}
	pthread_mutex_lock(&a->mu);
	if (a->stopping) {
		pthread_mutex_unlock(&a->mu);
		close(j->dirfd);
		free(j);
		return -ESHUTDOWN;
	}
	if (a->tail)
		a->tail->next = j;
	else
		a->head = j;
	a->tail = j;
	a->pending++;
	pthread_cond_signal(&a->work);
	pthread_mutex_unlock(&a->mu);
	return 0;
}

void fl_archiver_wait_idle(struct fl_archiver *a)
{
	pthread_mutex_lock(&a->mu);
	while (a->pending)
		pthread_cond_wait(&a->idle, &a->mu);
	pthread_mutex_unlock(&a->mu);
}

unsigned fl_archiver_pending(struct fl_archiver *a)
{
	pthread_mutex_lock(&a->mu);
	unsigned n = a->pending;
	pthread_mutex_unlock(&a->mu);
	return n;
}

void fl_archiver_stop(struct fl_archiver *a, int finish)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stopping = 1;
	a->finish = finish;
	pthread_cond_broadcast(&a->work);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thread, NULL);
	for (struct fl_archive_job *j = a->head, *next; j; j = next) {
		next = j->next;
		close(j->dirfd);
		free(j);
	}
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->work);
	pthread_cond_destroy(&a->idle);
	free(a);
}

int fl_archive_bench(const void *buf, size_t len, uint64_t min_ns, double *mb_per_s, double *ratio)
{
	LZ4F_preferences_t prefs;
	archive_prefs(&prefs, len);
	size_t cap = LZ4F_compressFrameBound(len, &prefs);
	void *dst = malloc(cap);
	if (!dst)
		return -ENOMEM;
	uint64_t t0 = (uint64_t)fl_now_ns(CLOCK_MONOTONIC), t, bytes = 0;
	size_t out = 0;
	do {
		out = LZ4F_compressFrame(dst, cap, buf, len, &prefs);
		if (LZ4F_isError(out)) {
			free(dst);
			return -EIO;
		}
		bytes += len;
		t = (uint64_t)fl_now_ns(CLOCK_MONOTONIC);
	} while (t - t0 < min_ns);
	free(dst);
	*mb_per_s = (double)bytes / 1e6 / ((double)(t - t0) / 1e9);
	*ratio = out ? (double)len / (double)out : 0;
	return 0;
}
