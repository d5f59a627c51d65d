/* SPDX-License-Identifier: MIT */
/* sink.c: buffered, symlink-safe writer of a session's active JSON-lines files. */
#define _GNU_SOURCE
#include "sink.h"
#include "why.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "jsonl.h"

#define SINK_BUF_MIN 1024u /* a class's buffer at its first line: thousands of quiet sessions stay small */
/* a buffer grown past this (a huge line, an outage) is freed once empty; big enough for the room a 64 KiB
 * record's line needs (fugue-log run reads up to that), so those do not allocate and fault in per write() */
#define SINK_BUF_KEEP (1024u * 1024)

struct sink_file {
	int fd;
	uint64_t written;  /* the file's size: bytes write() took */
	uint64_t prealloc; /* blocks are allocated up to here (fallocate, past the size); 0 = none */
	int no_prealloc;   /* fallocate failed for this file: not tried again until it rotates */
	/*
	 * The lines not yet written; the drainer renders each line straight into
	 * it (fl_sink_line_buf). No bytes until the first line; it grows by
	 * doubling to what FL_SINK_WRITE bytes plus one line's room need, and past it
	 * only for a huge line or while the file refuses bytes.
	 */
	struct fl_jbuf b;
};

struct fl_sink {
	int dirfd;
	struct fl_sink_state st;
	struct sink_file f[FL_SINK_CLASSES];
	int segfd;	   /* .segments: one seg_rec per segment number (rotation) */
	uint64_t *pending; /* segment numbers rotated since the last checkpoint */
	uint8_t *pend_cls;
	size_t npending, pending_cap;
};

/*
 * Rotation. What each rotated segment held, at index n-1 of .segments: a
 * record is written before its rotation's rename, so every segment on disk has
 * one; records at or past the checkpoint's next_segment mean nothing (that
 * rotation is undone on reopen and the record written again).
 */
struct seg_rec {
	uint64_t n; /* 0: no record */
	uint32_t cls;
	uint32_t pad;
	uint64_t lines, first_seq, last_seq;
	int64_t first_ts, last_ts;
	uint64_t size;
	int64_t min_ts, max_ts;
};

#define SEGMENTS_NAME ".segments"

static const char *const cls_names[FL_SINK_CLASSES] = {"system", "user"};
static _Atomic uint64_t rot_max; /* max_file_size; 0 = no rotation */
static pthread_mutex_t rot_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fl_archiver *rot_arch; /* under rot_mu */

static const char *const names[FL_SINK_CLASSES] = {"system.jsonl", "user.jsonl"};

const char *fl_sink_file_name(int cls)
{
	return cls >= 0 && cls < FL_SINK_CLASSES ? names[cls] : NULL;
}

int fl_sink_open_root(const char *root, char *why, size_t whylen)
{
	char path[4096];
	if (!root || !*root || strlen(root) >= sizeof path) {
		fl_why(why, whylen, "log root '%s' is empty or too long", root ? root : "");
		return -EINVAL;
	}
	snprintf(path, sizeof path, "%s", root);
	for (char *p = path + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(path, 0700) < 0 && errno != EEXIST) {
				int e = -errno;
				fl_why(why, whylen, "cannot create %s: %s", path, strerror(-e));
				return e;
			}
			*p = '/';
		}
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		int e = -errno;
		fl_why(why, whylen, "cannot create log root %s: %s", path, strerror(-e));
		return e;
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		fl_why(why, whylen, "cannot open log root %s: %s", path, strerror(-e));
		return e;
	}
	return fd;
}

int fl_sink_check_private(int fd, const char *what, char *why, size_t whylen)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		fl_why(why, whylen, "cannot stat %s: %s", what, strerror(-e));
		return e;
	}
	if (st.st_uid != geteuid()) {
		fl_why(why, whylen,
		       "%s belongs to uid %u, not to fugue-logd's uid %u: nothing is written into it (move it away, "
		       "or use a log root only this user can write)",
		       what, (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st.st_mode & 022) {
		fl_why(why, whylen,
		       "%s has mode %04o: group or others can write it, so nothing is written into it (chmod go-w it)",
		       what, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/*
 * Puts the directory back to what the checkpoint describes after a rotation:
 * every segment numbered from next on was rotated after it. Per class, the
 * lowest of them is the file that was active at the checkpoint: the others go
 * first (so a crash in here leaves the lowest in place for the next try), then
 * it is renamed back over the active name, to be truncated by the caller.
 */
struct undo_state {
	int dirfd;
	uint64_t next;
	uint64_t low[FL_SINK_CLASSES]; /* per class, the lowest plain segment numbered from next on */
	int found;
	int err; /* the last removal that failed; the others are still tried */
};

static int is_low(const struct undo_state *u, const struct fl_seg_ent *e)
{
	int low = 0;
	for (int c = 0; c < FL_SINK_CLASSES; c++)
		low |= !strcmp(e->cls, cls_names[c]) && e->kind == FL_SEG_PLAIN && e->n == u->low[c];
	return low;
}

static int undo_find_low(void *arg, const struct fl_seg_ent *e)
{
	struct undo_state *u = arg;
	if (e->n < u->next)
		return 0;
	u->found = 1;
	for (int c = 0; c < FL_SINK_CLASSES; c++)
		if (!strcmp(e->cls, cls_names[c]) && e->kind == FL_SEG_PLAIN && e->n < u->low[c])
			u->low[c] = e->n;
	return 0;
}

static int undo_remove_rest(void *arg, const struct fl_seg_ent *e)
{
	struct undo_state *u = arg;
	if (e->n >= u->next && !is_low(u, e) && unlinkat(u->dirfd, e->name, 0) < 0 && errno != ENOENT)
		u->err = -errno;
	return 0;
}

static int undo_rotations(int dirfd, uint64_t next)
{
	struct undo_state u = {.dirfd = dirfd, .next = next, .low = {UINT64_MAX, UINT64_MAX}};
	int rc = fl_seg_each(dirfd, undo_find_low, &u);
	if (rc < 0 || !u.found)
		return rc;
	rc = fl_seg_each(dirfd, undo_remove_rest, &u);
	rc = rc < 0 ? rc : u.err;
	if (rc < 0 || fsync(dirfd) < 0)
		return rc < 0 ? rc : -errno;
	for (int c = 0; c < FL_SINK_CLASSES; c++) {
		char name[FL_SEG_NAME_MAX];
		if (u.low[c] == UINT64_MAX)
			continue;
		fl_seg_name(name, sizeof name, cls_names[c], u.low[c], FL_SEG_PLAIN);
		if (renameat(dirfd, name, dirfd, names[c]) < 0)
			return -errno;
	}
	return fsync(dirfd) < 0 ? -errno : 0;
}

/* Creates and opens <root>/<id>, refusing a symlink or a directory others can write. dirfd or -errno. */
static int open_session_dir(int root_fd, const char *id, char *why, size_t whylen)
{
	if (mkdirat(root_fd, id, 0700) < 0 && errno != EEXIST) {
		int e = -errno;
		fl_why(why, whylen, "cannot create session directory %s: %s", id, strerror(-e));
		return e;
	}
	int dirfd = openat(root_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0) {
		int e = -errno;
		fl_why(why, whylen, "cannot open session directory %s: %s%s", id, strerror(-e),
		       e == -ELOOP || e == -ENOTDIR ? " (a symlink or file is in the way)" : "");
		return e;
	}
	char what[160]; /* an id is at most 64 bytes */
	snprintf(what, sizeof what, "session directory %s", id);
	int prc = fl_sink_check_private(dirfd, what, why, whylen);
	if (prc < 0) {
		close(dirfd);
		return prc;
	}
	return dirfd;
}

/* Opens class c's active file and cuts it back to the checkpoint's size. 0 or -errno. */
static int open_class_file(struct fl_sink *s, int c, const char *id, char *why, size_t whylen)
{
	struct sink_file *f = &s->f[c];
	memset(&f->b, 0, sizeof f->b);
	f->fd = openat(s->dirfd, names[c], O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		int rc = -errno;
		fl_why(why, whylen, "cannot open %s/%s: %s", id, names[c], strerror(-rc));
		return rc;
	}
	struct stat st;
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		fl_why(why, whylen, "%s/%s is not a regular file", id, names[c]);
		return -EBADF;
	}
	char what[160];
	snprintf(what, sizeof what, "%s/%s", id, names[c]);
	int rc = fl_sink_check_private(f->fd, what, why, whylen);
	if (rc < 0)
		return rc;
	if ((uint64_t)st.st_size < s->st.size[c]) {
		fl_why(why, whylen, "%s/%s has %lld bytes, the checkpoint says %llu: it was cut by someone else", id,
		       names[c], (long long)st.st_size, (unsigned long long)s->st.size[c]);
		return -EBADMSG;
	}
	/* lines past the checkpoint were never acknowledged to the ring: they are written again; and
	   blocks allocated past the size (FL_SINK_PREALLOC) by a drainer that did not stop cleanly go */
	f->written = s->st.size[c];
	if (((uint64_t)st.st_size != s->st.size[c] ||
	     (uint64_t)st.st_blocks * 512 > s->st.size[c] + FL_SINK_PREALLOC / 4) &&
	    ftruncate(f->fd, (off_t)s->st.size[c]) < 0) {
		rc = -errno;
		fl_why(why, whylen, "cannot truncate %s/%s: %s", id, names[c], strerror(-rc));
		return rc;
	}
	return 0;
}

int fl_sink_open(struct fl_sink **out, int root_fd, const char *id, const struct fl_sink_state *resume, char *why,
		 size_t whylen)
{
	*out = NULL;
	int dirfd = open_session_dir(root_fd, id, why, whylen);
	if (dirfd < 0)
		return dirfd;
	struct fl_sink *s = calloc(1, sizeof *s);
	if (!s) {
		close(dirfd);
		return -ENOMEM;
	}
	s->dirfd = dirfd;
	s->segfd = -1;
	if (resume)
		s->st = *resume;
	for (int c = 0; c < FL_SINK_CLASSES; c++)
		s->f[c].fd = -1;
	int rc = undo_rotations(dirfd, s->st.next_segment ? s->st.next_segment : 1);
	if (rc < 0) {
		fl_why(why, whylen, "cannot undo the rotations after the checkpoint in %s: %s", id, strerror(-rc));
	} else {
		s->segfd = openat(dirfd, SEGMENTS_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (s->segfd < 0) {
			rc = -errno;
			fl_why(why, whylen, "cannot open %s/" SEGMENTS_NAME ": %s", id, strerror(-rc));
		}
	}
	for (int c = 0; c < FL_SINK_CLASSES && !rc; c++)
		rc = open_class_file(s, c, id, why, whylen);
	if (rc < 0) {
		for (int c = 0; c < FL_SINK_CLASSES; c++)
			s->f[c].b.len = 0; /* nothing to flush */
		fl_sink_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

int fl_sink_alloc_ahead(int fd, uint64_t at, size_t n, uint64_t *ahead)
{
	if (at + n <= *ahead)
		return 0;
	uint64_t from = at > *ahead ? at : *ahead, to = at + n + FL_SINK_PREALLOC;
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)(to - from)) < 0)
		return -errno;
	*ahead = to;
	return 0;
}

/* Blocks ahead for a big write into f (best effort: a failure only stops the trying). */
static void prealloc(struct sink_file *f, size_t n)
{
	if (n >= FL_SINK_WRITE / 2 && !f->no_prealloc && fl_sink_alloc_ahead(f->fd, f->written, n, &f->prealloc) < 0)
		f->no_prealloc = 1; /* not supported here, or the disk is short: the write alone decides */
}

/* Gives back the blocks past the file's size that prealloc took. */
static void prealloc_trim(struct sink_file *f)
{
	struct stat st;
	/* to the size it has (never shorter): ext4 frees the blocks past it */
	if (f->prealloc > f->written && f->fd >= 0 && fstat(f->fd, &st) == 0)
		(void)!ftruncate(f->fd, st.st_size);
	f->prealloc = 0;
}

/*
 * Writes the first n buffered bytes (the lines before the last keep bytes).
 * On a failure what was written is gone from the buffer and the rest stays,
 * so the next try goes on exactly where the file stopped: the file is only
 * ever appended to, never cut back.
 */
static int write_head(struct sink_file *f, size_t n)
{
	size_t done = 0;
	int rc = 0;
	prealloc(f, n);
	while (done < n) {
		ssize_t w = write(f->fd, f->b.p + done, n - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		done += (size_t)w;
	}
	f->written += done;
	if (done && done < f->b.len)
		memmove(f->b.p, f->b.p + done, f->b.len - done);
	f->b.len -= done;
	if (!f->b.len && f->b.cap > SINK_BUF_KEEP)
		fl_jbuf_free(&f->b); /* the huge line or the outage that grew it is over */
	return rc;
}

/* Writes everything buffered for class c. */
static int flush_one(struct fl_sink *s, int c)
{
	return write_head(&s->f[c], s->f[c].b.len);
}

int fl_sink_write_error_waits(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT || rc == -EFBIG || rc == -EIO || rc == -EAGAIN || rc == -EINTR;
}

/*
 * Closes the active file of cls as the next segment and opens a new one; see
 * fl_sink_set_rotation. The buffered lines but the last keep bytes (the line
 * that starts the new file) go to the old file first.
 */
static int rotate(struct fl_sink *s, int cls, size_t keep)
{
	struct sink_file *f = &s->f[cls];
	struct fl_sink_state *st = &s->st;
	int rc = write_head(f, f->b.len - keep);
	if (rc < 0)
		return rc;
	prealloc_trim(f); /* a closed segment holds no blocks past its end */
	if (fdatasync(f->fd) < 0)
		return -errno;
	if (s->npending == s->pending_cap) {
		size_t nc = s->pending_cap ? s->pending_cap * 2 : 8;
		uint64_t *np = realloc(s->pending, nc * sizeof *np);
		if (!np)
			return -ENOMEM;
		s->pending = np;
		uint8_t *nk = realloc(s->pend_cls, nc);
		if (!nk)
			return -ENOMEM;
		s->pend_cls = nk;
		s->pending_cap = nc;
	}
	uint64_t n = st->next_segment ? st->next_segment : 1;
	char name[FL_SEG_NAME_MAX];
	fl_seg_name(name, sizeof name, cls_names[cls], n, FL_SEG_PLAIN);
	struct seg_rec r = {.n = n,
			    .cls = (uint32_t)cls,
			    .lines = st->lines[cls],
			    .first_seq = st->first_seq[cls],
			    .last_seq = st->last_seq[cls],
			    .first_ts = st->first_ts[cls],
			    .last_ts = st->last_ts[cls],
			    .size = st->size[cls],
			    .min_ts = st->min_ts[cls],
			    .max_ts = st->max_ts[cls]};
	if (pwrite(s->segfd, &r, sizeof r, (off_t)((n - 1) * sizeof r)) != (ssize_t)sizeof r)
		return -EIO;
	if (renameat(s->dirfd, names[cls], s->dirfd, name) < 0)
		return -errno;
	/* the name was just renamed away; from here a failure is undone by the reopen */
	int nfd = openat(s->dirfd, names[cls], O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (nfd < 0)
		return -errno;
	close(f->fd);
	f->fd = nfd;
	f->written = 0;
	f->no_prealloc = 0;
	if (fsync(s->dirfd) < 0)
		return -errno;
	st->next_segment = n + 1;
	st->segments[cls]++;
	st->size[cls] = st->lines[cls] = st->first_seq[cls] = st->last_seq[cls] = 0;
	st->first_ts[cls] = st->last_ts[cls] = st->min_ts[cls] = st->max_ts[cls] = 0;
	s->pending[s->npending] = n;
	s->pend_cls[s->npending++] = (uint8_t)cls;
	return 0;
}

void fl_sink_set_rotation(uint64_t max_file_size, struct fl_archiver *arch)
{
	pthread_mutex_lock(&rot_mu);
	atomic_store_explicit(&rot_max, max_file_size, memory_order_relaxed);
	rot_arch = arch;
	pthread_mutex_unlock(&rot_mu);
}

void fl_sink_get_rotation(uint64_t *max_file_size, struct fl_archiver **arch)
{
	pthread_mutex_lock(&rot_mu);
	if (max_file_size)
		*max_file_size = atomic_load_explicit(&rot_max, memory_order_relaxed);
	if (arch)
		*arch = rot_arch;
	pthread_mutex_unlock(&rot_mu);
}

void fl_sink_committed(struct fl_sink *s)
{
	if (!s->npending)
		return;
	/* held across the enqueue so fugue-logd cannot stop the archiver under us */
	pthread_mutex_lock(&rot_mu);
	for (size_t i = 0; rot_arch && i < s->npending; i++) {
		char name[FL_SEG_NAME_MAX];
		fl_seg_name(name, sizeof name, cls_names[s->pend_cls[i]], s->pending[i], FL_SEG_PLAIN);
		fl_archiver_enqueue(rot_arch, s->dirfd, name, s->pending[i]);
	}
	pthread_mutex_unlock(&rot_mu);
	s->npending = 0; /* without an archiver they stay plain; the next fugue-logd start queues them */
}

char *fl_sink_segments_json(const struct fl_sink *s)
{
	struct fl_jbuf b = {0};
	struct fl_tsfmt tc = {0};
	uint64_t next = s->st.next_segment ? s->st.next_segment : 1;
	int rc = fl_jbuf_reserve(&b, 64);
	if (rc == 0)
		b.len = (size_t)sprintf(b.p, "\"segments\":[");
	int first = 1;
	/* one read for every record: this runs at each manifest write */
	size_t want = (size_t)(next - 1) * sizeof(struct seg_rec);
	struct seg_rec *recs = want ? malloc(want) : NULL;
	ssize_t got = recs ? pread(s->segfd, recs, want, 0) : 0;
	if (want && !recs)
		rc = -ENOMEM;
	for (uint64_t n = 1; n < next && rc == 0; n++) {
		if ((size_t)got < n * sizeof(struct seg_rec))
			break;
		struct seg_rec r = recs[n - 1];
		if (r.n != n || r.cls >= FL_SINK_CLASSES)
			continue;
		char plain[FL_SEG_NAME_MAX], lz4[FL_SEG_NAME_MAX], t1[32], t2[32];
		fl_seg_name(plain, sizeof plain, cls_names[r.cls], n, FL_SEG_PLAIN);
		fl_seg_name(lz4, sizeof lz4, cls_names[r.cls], n, FL_SEG_LZ4);
		struct stat ps, ls;
		int have_plain = fstatat(s->dirfd, plain, &ps, AT_SYMLINK_NOFOLLOW) == 0;
		int have_lz4 = fstatat(s->dirfd, lz4, &ls, AT_SYMLINK_NOFOLLOW) == 0;
		if (!have_plain && !have_lz4)
			continue; /* removed by retention */
		/* the _ns times are decimal strings, as in the lines (schema 2): past 2^53, a double is not exact */
		fl_jsonl_time(&tc, (uint64_t)(r.first_ts > 0 ? r.first_ts : 0), t1);
		fl_jsonl_time(&tc, (uint64_t)(r.last_ts > 0 ? r.last_ts : 0), t2);
		char comp[24] = "null";
		if (!have_plain)
			snprintf(comp, sizeof comp, "%lld", (long long)ls.st_size);
		rc = fl_jbuf_reserve(&b, 512);
		if (rc < 0)
			break;
		b.len += (size_t)snprintf(
		    b.p + b.len, 512,
		    "%s{\"n\":%" PRIu64 ",\"class\":\"%s\",\"file\":\"%s\",\"state\":\"%s\",\"lines\":%" PRIu64
		    ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64 ",\"first_ts\":\"%s\",\"first_ts_ns\":\"%" PRId64
		    "\",\"last_ts\":\"%s\",\"last_ts_ns\":\"%" PRId64 "\",\"min_ts_ns\":\"%" PRId64
		    "\",\"max_ts_ns\":\"%" PRId64 "\",\"size\":%" PRIu64 ",\"compressed\":%s}",
		    first ? "" : ",", n, cls_names[r.cls], have_plain ? plain : lz4, have_plain ? "closed" : "archived",
		    r.lines, r.first_seq, r.last_seq, t1, r.first_ts, t2, r.last_ts, r.min_ts, r.max_ts, r.size, comp);
		first = 0;
	}
	free(recs);
	if (rc == 0)
		rc = fl_jbuf_reserve(&b, 2);
	if (rc < 0) {
		fl_jbuf_free(&b);
		return NULL;
	}
	b.p[b.len++] = ']';
	b.p[b.len] = 0;
	return b.p;
}

struct fl_jbuf *fl_sink_line_buf(struct fl_sink *s, int cls)
{
	struct sink_file *f = &s->f[cls];
	/* the first line's buffer is small; fl_jbuf_reserve doubles it from there */
	if (!f->b.cap && fl_jbuf_reserve(&f->b, SINK_BUF_MIN) < 0)
		return NULL;
	return &f->b;
}

int fl_sink_commit_line(struct fl_sink *s, int cls, size_t at, uint64_t seq, int64_t ts_ns)
{
	struct sink_file *f = &s->f[cls];
	size_t len = f->b.len - at;
	uint64_t max = atomic_load_explicit(&rot_max, memory_order_relaxed);
	if (max && s->st.size[cls] && s->st.size[cls] + len > max) {
		/* a file that refuses bytes keeps them buffered (write_head): rotation waits until it takes them */
		int rc = write_head(f, at);
		if (rc < 0 && !fl_sink_write_error_waits(rc))
			return rc;
		/* once the rename is done a failure is undone only by the reopen: rotate's errors never wait */
		if (rc == 0 && (rc = rotate(s, cls, len)) < 0)
			return rc;
	}
	struct fl_sink_state *st = &s->st;
	if (!st->lines[cls]) {
		st->first_seq[cls] = seq;
		st->first_ts[cls] = ts_ns;
		st->min_ts[cls] = st->max_ts[cls] = ts_ns;
	}
	if (ts_ns < st->min_ts[cls])
		st->min_ts[cls] = ts_ns;
	if (ts_ns > st->max_ts[cls])
		st->max_ts[cls] = ts_ns;
	st->last_seq[cls] = seq;
	st->last_ts[cls] = ts_ns;
	st->lines[cls]++;
	st->size[cls] += len;
	st->total_bytes += len;
	if (f->b.len >= FL_SINK_WRITE) {
		/* one write() per FL_SINK_WRITE bytes; a file that refuses them keeps them buffered */
		int rc = flush_one(s, cls);
		if (rc < 0 && !fl_sink_write_error_waits(rc))
			return rc;
	}
	return 0;
}

int fl_sink_append(struct fl_sink *s, int cls, const char *line, size_t len, uint64_t seq, int64_t ts_ns)
{
	struct fl_jbuf *b = fl_sink_line_buf(s, cls);
	if (!b || fl_jbuf_reserve(b, len) < 0)
		return -ENOMEM;
	size_t at = b->len;
	memcpy(b->p + at, line, len);
	b->len += len;
	return fl_sink_commit_line(s, cls, at, seq, ts_ns);
}

void fl_sink_trim(struct fl_sink *s)
{
	for (int c = 0; c < FL_SINK_CLASSES; c++) {
		if (!s->f[c].b.len)
			fl_jbuf_free(&s->f[c].b);
		prealloc_trim(&s->f[c]);
	}
}

int fl_sink_flush(struct fl_sink *s)
{
	for (int c = 0; c < FL_SINK_CLASSES; c++) {
		int rc = flush_one(s, c);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int fl_sink_sync(struct fl_sink *s)
{
	int rc = fl_sink_flush(s);
	for (int c = 0; c < FL_SINK_CLASSES && !rc; c++)
		if (fdatasync(s->f[c].fd) < 0)
			rc = -errno;
	if (!rc && fsync(s->dirfd) < 0)
		rc = -errno;
	return rc;
}

void fl_sink_get_state(const struct fl_sink *s, struct fl_sink_state *st)
{
	*st = s->st;
}

int fl_sink_dirfd(const struct fl_sink *s)
{
	return s->dirfd;
}

void fl_sink_close(struct fl_sink *s)
{
	if (!s)
		return;
	fl_sink_flush(s);
	for (int c = 0; c < FL_SINK_CLASSES; c++) {
		prealloc_trim(&s->f[c]);
		if (s->f[c].fd >= 0)
			close(s->f[c].fd);
		fl_jbuf_free(&s->f[c].b);
	}
	if (s->segfd >= 0)
		close(s->segfd);
	free(s->pending);
	free(s->pend_cls);
	close(s->dirfd);
	free(s);
}
