/* SPDX-License-Identifier: MIT */
/* segread.c: line reader over plain and lz4-framed log segments, segment listing, top-level JSON field lookup. */
#define _GNU_SOURCE
#include "segread.h"
#include "grow.h"
#include "why.h"

#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <errno.h>
#include <fcntl.h>
#include <lz4frame.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUF_INIT (64u << 10)
#define SRC_CAP (64u << 10)

struct fl_segread {
	int fd;
	int lz4;
	int active; /* hold back an incomplete last line */
	int err;    /* sticky error of an lz4 archive */
	LZ4F_dctx *dctx;
	size_t hint;	 /* last LZ4F_decompress result: 0 between frames */
	uint64_t frames; /* lz4 frames decoded to their end */
	char *buf;	 /* decoded bytes [pos, end); no '\n' in [pos, scan) */
	size_t cap, pos, end, scan;
	uint8_t *src; /* compressed bytes [spos, send) */
	size_t spos, send;
	char name[96];
	char errmsg[160];
};

static int has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && !strcmp(s + n - m, suf);
}

int fl_segread_open(struct fl_segread **out, int dirfd, const char *name, char *why, size_t whylen)
{
	*out = NULL;
	if (!*name || strchr(name, '/') || strlen(name) >= sizeof((struct fl_segread *)0)->name) {
		fl_why(why, whylen, "'%s' is not a segment file name", name);
		return -EINVAL;
	}
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		fl_why(why, whylen, e == ELOOP ? "%s: is a symlink; refusing to follow it" : "%s: %s", name,
		       strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		fl_why(why, whylen, "%s: not a regular file", name);
		close(fd);
		return -EINVAL;
	}
	struct fl_segread *r = calloc(1, sizeof *r);
	if (!r) {
		close(fd);
		return -ENOMEM;
	}
	r->fd = fd;
	snprintf(r->name, sizeof r->name, "%s", name);
	r->lz4 = has_suffix(name, ".lz4");
	/* "<class>.jsonl": exactly one dot before "jsonl" */
	const char *dot = strchr(name, '.');
	r->active = !r->lz4 && dot && !strcmp(dot, ".jsonl");
	r->cap = BUF_INIT;
	r->buf = malloc(r->cap);
	if (r->lz4) {
		r->src = malloc(SRC_CAP);
		if (LZ4F_isError(LZ4F_createDecompressionContext(&r->dctx, LZ4F_VERSION)))
			r->dctx = NULL;
	}
	if (!r->buf || (r->lz4 && (!r->src || !r->dctx))) {
		fl_segread_close(r);
		return -ENOMEM;
	}
	*out = r;
	return 0;
}

void fl_segread_close(struct fl_segread *r)
{
	if (!r)
		return;
	if (r->dctx)
		LZ4F_freeDecompressionContext(r->dctx);
	if (r->fd >= 0)
		close(r->fd);
	free(r->src);
	free(r->buf);
	free(r);
}

int fl_segread_stat(const struct fl_segread *r, struct stat *st)
{
	return fstat(r->fd, st) < 0 ? -errno : 0;
}

static ssize_t read_some(int fd, void *p, size_t n)
{
	ssize_t k;
	do
		k = read(fd, p, n);
	while (k < 0 && errno == EINTR);
	return k < 0 ? -errno : k;
}

/* Makes room after end: drops consumed bytes, then grows. -E2BIG past the line limit. */
static int make_room(struct fl_segread *r)
{
	if (r->pos) {
		memmove(r->buf, r->buf + r->pos, r->end - r->pos);
		r->end -= r->pos;
		r->scan -= r->pos;
		r->pos = 0;
	}
	if (r->end < r->cap)
		return 0;
	if (r->cap > FL_SEGREAD_MAX_LINE)
		return -E2BIG;
	size_t ncap = r->cap * 2;
	char *nb = realloc(r->buf, ncap);
	if (!nb)
		return -ENOMEM;
	r->buf = nb;
	r->cap = ncap;
	return 0;
}

/* Adds decoded bytes after end. Returns the count added, 0 at end of file, or -errno. */
static ssize_t fill(struct fl_segread *r)
{
	int rc = make_room(r);
	if (rc < 0)
		return rc;
	if (!r->lz4) {
		ssize_t k = read_some(r->fd, r->buf + r->end, r->cap - r->end);
		if (k > 0)
			r->end += (size_t)k;
		return k;
	}
	for (;;) {
		if (r->spos == r->send) {
			ssize_t k = read_some(r->fd, r->src, SRC_CAP);
			if (k < 0)
				return k;
			if (k == 0) {
				if (r->hint) {
					snprintf(r->errmsg, sizeof r->errmsg,
						 "%s: lz4 archive is truncated (ends inside a frame)", r->name);
					return -EBADMSG;
				}
				return 0;
			}
			r->spos = 0;
			r->send = (size_t)k;
		}
		size_t dsz = r->cap - r->end, ssz = r->send - r->spos;
		size_t ret = LZ4F_decompress(r->dctx, r->buf + r->end, &dsz, r->src + r->spos, &ssz, NULL);
		if (LZ4F_isError(ret)) {
			snprintf(r->errmsg, sizeof r->errmsg, "%s: corrupt lz4 archive (%s)", r->name,
				 LZ4F_getErrorName(ret));
			return -EBADMSG;
		}
		/* 0 means a frame ended and dctx is ready for the next one (concatenated frames) */
		r->hint = ret;
		r->frames += ret == 0;
		r->spos += ssz;
		r->end += dsz;
		if (dsz)
			return (ssize_t)dsz;
	}
}

int fl_segread_next(struct fl_segread *r, const char **line, size_t *len, char *why, size_t whylen)
{
	if (r->err) {
		fl_why(why, whylen, "%s", r->errmsg);
		return r->err;
	}
	for (;;) {
		char *nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
		if (nl) {
			*line = r->buf + r->pos;
			*len = (size_t)(nl - (r->buf + r->pos));
			r->pos = r->scan = (size_t)(nl - r->buf) + 1;
			return 1;
		}
		r->scan = r->end;
		ssize_t k = fill(r);
		if (k > 0)
			continue;
		if (k < 0) {
			if (k == -E2BIG)
				snprintf(r->errmsg, sizeof r->errmsg, "%s: a line is longer than %u bytes", r->name,
					 FL_SEGREAD_MAX_LINE);
			else if (k != -EBADMSG)
				snprintf(r->errmsg, sizeof r->errmsg, "%s: %s", r->name, strerror((int)-k));
			fl_why(why, whylen, "%s", r->errmsg);
			if (r->lz4 || k == -E2BIG)
				r->err = (int)k;
			return (int)k;
		}
		/* end of file for now */
		if (r->active || r->pos == r->end)
			return 0;
		*line = r->buf + r->pos;
		*len = r->end - r->pos;
		r->pos = r->scan = r->end;
		return 1;
	}
}

/* Next decoded bytes regardless of lines: 1 with the bytes in *p and *len, 0 at the end, or -errno (why in r->errmsg).
 */
static int next_chunk(struct fl_segread *r, const char **p, size_t *len)
{
	if (r->pos == r->end) {
		r->pos = r->end = r->scan = 0;
		ssize_t k = fill(r);
		if (k <= 0)
			return (int)k;
	}
	*p = r->buf + r->pos;
	*len = r->end - r->pos;
	r->pos = r->scan = r->end;
	return 1;
}

int fl_seg_read(int dirfd, const char *name, int (*fn)(void *arg, const void *buf, size_t len), void *arg)
{
	struct fl_segread *r;
	int rc = fl_segread_open(&r, dirfd, name, NULL, 0);
	if (rc < 0)
		return rc;
	const char *p = NULL;
	size_t len = 0;
	while ((rc = next_chunk(r, &p, &len)) > 0)
		if ((rc = fn(arg, p, len)) != 0)
			break;
	if (rc == 0 && r->lz4 && r->frames == 0)
		rc = -EBADMSG; /* an empty file is never a whole archive */
	fl_segread_close(r);
	return rc;
}

/* ---- names and listing ---------------------------------------------------------------- */

int fl_seg_name(char *buf, size_t len, const char *cls, uint64_t n, enum fl_seg_kind kind)
{
	const char *suffix = kind == FL_SEG_LZ4 ? ".lz4" : kind == FL_SEG_TMP ? ".lz4.tmp" : "";
	int w = snprintf(buf, len, "%s.%06" PRIu64 ".jsonl%s", cls, n, suffix);
	return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
}

int fl_seg_parse(const char *name, char cls[16], uint64_t *n)
{
	size_t i = 0;
	while (name[i] >= 'a' && name[i] <= 'z')
		i++;
	if (i == 0 || i > 15 || name[i] != '.')
		return 0;
	size_t d = i + 1, j = d;
	uint64_t v = 0;
	while (isdigit((unsigned char)name[j])) {
		if (j - d >= 19)
			return 0;
		v = v * 10 + (uint64_t)(name[j] - '0');
		j++;
	}
	if (j - d < 6)
		return 0;
	const char *rest = name + j;
	int kind;
	if (!strcmp(rest, ".jsonl"))
		kind = FL_SEG_PLAIN;
	else if (!strcmp(rest, ".jsonl.lz4"))
		kind = FL_SEG_LZ4;
	else if (!strcmp(rest, ".jsonl.lz4.tmp"))
		kind = FL_SEG_TMP;
	else
		return 0;
	memcpy(cls, name, i);
	cls[i] = 0;
	*n = v;
	return kind;
}

int fl_seg_each(int dirfd, int (*fn)(void *arg, const struct fl_seg_ent *e), void *arg)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int e = -errno;
		if (fd >= 0)
			close(fd);
		return e;
	}
	int rc = 0;
	struct dirent *de;
	while (!rc && (de = readdir(d))) {
		struct fl_seg_ent s = {.name = de->d_name};
		int kind = fl_seg_parse(de->d_name, s.cls, &s.n);
		if (!kind)
			continue;
		s.kind = (enum fl_seg_kind)kind;
		rc = fn(arg, &s);
	}
	closedir(d);
	return rc;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct fl_seg *x = a, *y = b;
	if (x->num != y->num)
		return x->num < y->num ? -1 : 1;
	return x->lz4 - y->lz4; /* plain first: it wins over a possibly incomplete archive */
}

struct seg_list {
	const char *cls;
	struct fl_seg *v;
	size_t n, cap;
};

static int seg_list_add(struct seg_list *l, uint64_t num, int lz4, const char *name)
{
	if (strlen(name) >= sizeof l->v->name)
		return 0;
	struct fl_seg *nv = fl_grow(l->v, &l->cap, l->n, sizeof *nv, 16);
	if (!nv)
		return -ENOMEM;
	l->v = nv;
	struct fl_seg *s = &l->v[l->n++];
	s->num = num;
	s->lz4 = lz4;
	s->ino = 0;
	s->pin = -1;
	snprintf(s->name, sizeof s->name, "%s", name);
	return 0;
}

static int seg_list_one(void *arg, const struct fl_seg_ent *e)
{
	struct seg_list *l = arg;
	if (strcmp(e->cls, l->cls) || (e->kind != FL_SEG_PLAIN && e->kind != FL_SEG_LZ4) || e->n == FL_SEG_ACTIVE)
		return 0;
	return seg_list_add(l, e->n, e->kind == FL_SEG_LZ4, e->name);
}

/* Two sorted walks found the same names. */
static int seg_list_equal(const struct seg_list *a, const struct seg_list *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].num != b->v[i].num || a->v[i].lz4 != b->v[i].lz4 || strcmp(a->v[i].name, b->v[i].name))
			return 0;
	return 1;
}

/*
 * The active file as it was when a listing began, held open (O_PATH, the name
 * itself even when it is a symlink) so that its inode cannot be freed and
 * handed to a newer file: the same inode under the name later means the very
 * same file. fd -1 when there was none.
 */
struct active_hold {
	int fd;
	dev_t dev;
	ino_t ino;
};

static int active_hold(int dirfd, const char *name, struct active_hold *h)
{
	h->fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	h->dev = 0;
	h->ino = 0;
	if (h->fd < 0)
		return errno == ENOENT ? 0 : -errno;
	struct stat st;
	if (fstat(h->fd, &st) < 0) {
		int e = -errno;
		close(h->fd);
		h->fd = -1;
		return e;
	}
	h->dev = st.st_dev;
	h->ino = st.st_ino;
	return 0;
}

static void active_release(struct active_hold *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

/* 1 when the name still holds the held file (or still nothing), 0 when it changed (a rotation), or -errno. */
static int active_same(int dirfd, const char *name, const struct active_hold *h)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? h->fd < 0 : -errno;
	return h->fd >= 0 && st.st_dev == h->dev && st.st_ino == h->ino;
}

/*
 * A directory walk that runs while names change may miss them: a segment
 * renamed from the active file behind the walk's position, or a segment whose
 * archive appeared behind it and whose plain file went before the walk got
 * there. A listing is therefore only taken as the answer when two walks in a
 * row found the same names while the active name held one and the same file
 * (checked after every walk). Then no rotation happened since the first walk
 * began (a rotation renames the held file away), so every segment existed
 * before it; a segment both walks missed would have to have changed form
 * during each, but its archive, once there, stays until retention removes the
 * segment for good, so the second walk would have seen it and differed.
 * Without an active file there is nothing to hold; a rotation then goes
 * unseen only if the file is created, filled and renamed away within one walk
 * with the name empty at both ends (fugue-logd creates the next file right
 * after each rename, so the name is empty only for that instant).
 */
int fl_segments_list(int dirfd, const char *cls, struct fl_seg **out)
{
	*out = NULL;
	char active[FL_SEG_NAME_MAX];
	if (snprintf(active, sizeof active, "%s.jsonl", cls) >= (int)sizeof active)
		return -ENAMETOOLONG;
	struct seg_list prev = {.cls = cls}, cur = {.cls = cls};
	struct active_hold h;
	int rc = active_hold(dirfd, active, &h), have_prev = 0;
	for (int walk = 0; rc == 0; walk++) {
		if (walk == FL_SEG_LIST_WALKS) {
			rc = -EAGAIN;
			break;
		}
		/* unsettled for long: let the writer finish its burst rather than compete with it for the CPU */
		if (walk && walk % 64 == 0)
			nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
		cur.n = 0;
		if ((rc = fl_seg_each(dirfd, seg_list_one, &cur)) < 0)
			break;
		if (cur.n > 1)
			qsort(cur.v, cur.n, sizeof *cur.v, seg_cmp);
		if ((rc = active_same(dirfd, active, &h)) < 0)
			break;
		if (rc == 0) {
			/* rotated: what was walked so far proves nothing about the new active file */
			active_release(&h);
			rc = active_hold(dirfd, active, &h);
			have_prev = 0;
			continue;
		}
		rc = 0;
		if (have_prev && seg_list_equal(&prev, &cur))
			break;
		struct seg_list t = prev;
		prev = cur;
		cur = t;
		have_prev = 1;
	}
	free(prev.v);
	if (!rc && h.fd >= 0) {
		rc = seg_list_add(&cur, FL_SEG_ACTIVE, 0, active);
		if (!rc) {
			cur.v[cur.n - 1].ino = h.ino;
			cur.v[cur.n - 1].pin = h.fd;
			h.fd = -1;
		}
	}
	active_release(&h);
	if (rc < 0) {
		free(cur.v);
		return rc;
	}
	size_t k = 0;
	for (size_t i = 0; i < cur.n; i++)
		if (!k || cur.v[k - 1].num != cur.v[i].num)
			cur.v[k++] = cur.v[i];
	if (!k) {
		free(cur.v);
		cur.v = NULL;
	}
	*out = cur.v;
	return (int)k;
}

void fl_segments_free(struct fl_seg *v, int n)
{
	for (int i = 0; v && i < n; i++)
		if (v[i].pin >= 0)
			close(v[i].pin);
	free(v);
}

/* ---- JSON ----------------------------------------------------------------------------- */

static const char *skip_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* p at an opening quote: returns just past the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *e)
{
	for (p++; p < e; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* p at the start of a value: returns just past it, or NULL. */
static const char *skip_value(const char *p, const char *e)
{
	if (p >= e)
		return NULL;
	if (*p == '"')
		return skip_string(p, e);
	if (*p == '{' || *p == '[') {
		int depth = 0;
		while (p < e) {
			if (*p == '"') {
				p = skip_string(p, e);
				if (!p)
					return NULL;
				continue;
			}
			if (*p == '{' || *p == '[')
				depth++;
			else if (*p == '}' || *p == ']')
				if (--depth == 0)
					return p + 1;
			p++;
		}
		return NULL;
	}
	const char *s = p;
	while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
		p++;
	return p > s ? p : NULL;
}

int fl_json_field(const char *line, size_t len, const char *key, const char **val, size_t *vlen)
{
	const char *p = line, *e = line + len;
	size_t klen = strlen(key);
	p = skip_ws(p, e);
	if (p >= e || *p++ != '{')
		return -EBADMSG;
	for (;;) {
		p = skip_ws(p, e);
		if (p < e && *p == '}')
			return -ENOENT;
		if (p >= e || *p != '"')
			return -EBADMSG;
		const char *k = p + 1, *kend = skip_string(p, e);
		if (!kend)
			return -EBADMSG;
		int match = (size_t)(kend - 1 - k) == klen && !memcmp(k, key, klen);
		p = skip_ws(kend, e);
		if (p >= e || *p++ != ':')
			return -EBADMSG;
		p = skip_ws(p, e);
		const char *v = p;
		p = skip_value(p, e);
		if (!p)
			return -EBADMSG;
		if (match) {
			*val = v;
			*vlen = (size_t)(p - v);
			return 0;
		}
		p = skip_ws(p, e);
		if (p < e && *p == ',') {
			p++;
			continue;
		}
		if (p < e && *p == '}')
			return -ENOENT;
		return -EBADMSG;
	}
}

int fl_line_seq(const char *line, size_t len, uint64_t *seq)
{
	const char *v;
	size_t n;
	int rc = fl_json_field(line, len, "seq", &v, &n);
	if (rc < 0)
		return rc;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t d = (uint64_t)(v[i] - '0');
		if (v[i] < '0' || v[i] > '9' || x > (UINT64_MAX - d) / 10)
			return -EBADMSG;
		x = x * 10 + d;
	}
	*seq = x;
	return 0;
}
