/* SPDX-License-Identifier: MIT */
/* sink.c: buffered, symlink-safe writer of a session's active JSON-lines files. */
#define _GNU_SOURCE
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SINK_BUF (256u * 1024) /* per class: one write() per this many bytes of lines */

struct sink_file {
	int fd;
	size_t used;
	char *buf;
};

struct fl_sink {
	int dirfd;
	struct fl_sink_state st;
	struct sink_file f[FL_SINK_CLASSES];
};

static const char *const names[FL_SINK_CLASSES] = {"system.jsonl", "user.jsonl"};

static void say(char *why, size_t whylen, const char *fmt, ...)
{
	if (!why || !whylen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

const char *fl_sink_file_name(int cls)
{
	return cls >= 0 && cls < FL_SINK_CLASSES ? names[cls] : NULL;
}

int fl_sink_open_root(const char *root, char *why, size_t whylen)
{
	char path[4096];
	if (!root || !*root || strlen(root) >= sizeof path) {
		say(why, whylen, "log root '%s' is empty or too long", root ? root : "");
		return -EINVAL;
	}
	snprintf(path, sizeof path, "%s", root);
	for (char *p = path + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(path, 0700) < 0 && errno != EEXIST) {
				int e = -errno;
				say(why, whylen, "cannot create %s: %s", path, strerror(-e));
				return e;
			}
			*p = '/';
		}
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		int e = -errno;
		say(why, whylen, "cannot create log root %s: %s", path, strerror(-e));
		return e;
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		say(why, whylen, "cannot open log root %s: %s", path, strerror(-e));
		return e;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int fl_sink_open(struct fl_sink **out, int root_fd, const char *id, const struct fl_sink_state *resume,
		 char *why, size_t whylen)
{
	*out = NULL;
	if (mkdirat(root_fd, id, 0700) < 0 && errno != EEXIST) {
		int e = -errno;
		say(why, whylen, "cannot create session directory %s: %s", id, strerror(-e));
		return e;
	}
	int dirfd = openat(root_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0) {
		int e = -errno;
		say(why, whylen, "cannot open session directory %s: %s%s", id, strerror(-e),
		    e == -ELOOP || e == -ENOTDIR ? " (a symlink or file is in the way)" : "");
		return e;
	}
	struct fl_sink *s = calloc(1, sizeof *s);
	if (!s) {
		close(dirfd);
		return -ENOMEM;
	}
	s->dirfd = dirfd;
	if (resume)
		s->st = *resume;
	for (int c = 0; c < FL_SINK_CLASSES; c++)
		s->f[c].fd = -1;
	int rc = 0;
	for (int c = 0; c < FL_SINK_CLASSES && !rc; c++) {
		struct sink_file *f = &s->f[c];
		f->buf = malloc(SINK_BUF);
		f->fd = openat(dirfd, names[c], O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (!f->buf || f->fd < 0) {
			rc = f->buf ? -errno : -ENOMEM;
			say(why, whylen, "cannot open %s/%s: %s", id, names[c], strerror(-rc));
			break;
		}
		struct stat st;
		if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			rc = -EBADF;
			say(why, whylen, "%s/%s is not a regular file", id, names[c]);
			break;
		}
		if ((uint64_t)st.st_size < s->st.size[c]) {
			rc = -EBADMSG;
			say(why, whylen, "%s/%s has %lld bytes, the checkpoint says %llu: it was cut by someone else", id,
			    names[c], (long long)st.st_size, (unsigned long long)s->st.size[c]);
			break;
		}
		/* lines past the checkpoint were never acknowledged to the ring: they are written again */
		if ((uint64_t)st.st_size != s->st.size[c] && ftruncate(f->fd, (off_t)s->st.size[c]) < 0) {
			rc = -errno;
			say(why, whylen, "cannot truncate %s/%s: %s", id, names[c], strerror(-rc));
		}
	}
	if (rc < 0) {
		for (int c = 0; c < FL_SINK_CLASSES; c++)
			s->f[c].used = 0; /* nothing to flush */
		fl_sink_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

static int flush_one(struct fl_sink *s, int c)
{
	struct sink_file *f = &s->f[c];
	if (!f->used)
		return 0;
	int rc = write_all(f->fd, f->buf, f->used);
	if (rc == 0)
		f->used = 0;
	return rc;
}

int fl_sink_append(struct fl_sink *s, int cls, const char *line, size_t len, uint64_t seq, int64_t ts_ns)
{
	struct sink_file *f = &s->f[cls];
	if (len > SINK_BUF - f->used) {
		int rc = flush_one(s, cls);
		if (rc < 0)
			return rc;
	}
	if (len > SINK_BUF) {
		int rc = write_all(f->fd, line, len);
		if (rc < 0)
			return rc;
	} else {
		memcpy(f->buf + f->used, line, len);
		f->used += len;
	}
	struct fl_sink_state *st = &s->st;
	if (!st->lines[cls]) {
		st->first_seq[cls] = seq;
		st->first_ts[cls] = ts_ns;
	}
	st->last_seq[cls] = seq;
	st->last_ts[cls] = ts_ns;
	st->lines[cls]++;
	st->size[cls] += len;
	st->total_bytes += len;
	return 0;
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
		if (s->f[c].fd >= 0)
			close(s->f[c].fd);
		free(s->f[c].buf);
	}
	close(s->dirfd);
	free(s);
}
