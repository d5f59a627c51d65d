/* SPDX-License-Identifier: MIT */
/* retention.c: one retention pass over the log root (age, per-session and total caps), whole-session removal, retention
 * lines. */
#define _GNU_SOURCE
#include "retention.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "fuguelog.h"
#include "grow.h"
#include "manifest.h"
#include "segindex.h"
#include "segread.h"

#define GC_LOCK "@gc.lock"
#define REMOVING_PREFIX "@removing."

void fl_retention_policy_from_config(struct fl_retention_policy *p, const struct fl_config *c)
{
	p->retention_s = c->retention_s;
	p->max_session_size = c->max_session_size;
	p->max_total_size = c->max_total_size;
	p->cleanup_on_exit = c->cleanup_on_exit;
}

const char *fl_retention_reason_name(enum fl_retention_reason r)
{
	switch (r) {
	case FL_RET_RETENTION:
	case FL_RET_ENDED:
		return "retention";
	case FL_RET_SESSION_SIZE:
		return "max_session_size";
	case FL_RET_TOTAL_SIZE:
		return "max_total_size";
	case FL_RET_CLEANUP:
		return "cleanup_on_exit";
	}
	return "?";
}

static int64_t ts_of(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000ll + st->st_mtim.tv_nsec;
}

static void fmt_time(int64_t ns, char out[40])
{
	if (ns < 0)
		ns = 0;
	time_t s = (time_t)(ns / 1000000000ll);
	struct tm tm;
	gmtime_r(&s, &tm);
	size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 40 - n, ".%09ldZ", (long)(ns % 1000000000ll));
}

int fl_retention_render(char *buf, size_t len, const struct fl_retention_removal *r, uint64_t seq, int64_t ts_ns,
			const char *by)
{
	char ts[40], newest[40];
	fmt_time(ts_ns, ts);
	fmt_time(r->newest_ns, newest);
	/* Session ids and segment names are [A-Za-z0-9._-] only, so nothing here needs escaping. */
	int w = snprintf(buf, len,
			 "{\"ts\":\"%s\",\"ts_ns\":\"%" PRId64 "\",\"seq\":%" PRIu64
			 ",\"session\":\"%s\",\"class\":\"system\",\"event\":\"retention\",\"level\":\"spawns\","
			 "\"pid\":%d,\"tid\":%d,\"id\":\"0\",\"ref\":\"0\",\"data\":{\"scope\":\"%s\",\"file\":%s%s%s,"
			 "\"reason\":\"%s\",\"bytes\":%" PRIu64 ",\"files\":%" PRIu64 ",\"newest\":\"%s\","
			 "\"by\":\"%s\"}}\n",
			 ts, ts_ns, seq, r->session, (int)getpid(), (int)gettid(), r->file ? "segment" : "session",
			 r->file ? "\"" : "", r->file ? r->file : "null", r->file ? "\"" : "",
			 fl_retention_reason_name(r->reason), r->bytes, r->files, newest, by ? by : "fugue-log");
	if (w < 0 || (size_t)w >= len)
		return -ENOSPC;
	return w;
}

/* The seq of the last line of the drainer log, 0 when empty or missing. */
static uint64_t last_log_seq(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size == 0)
		return 0;
	char buf[4096];
	off_t off = st.st_size > (off_t)sizeof buf - 1 ? st.st_size - (off_t)(sizeof buf - 1) : 0;
	ssize_t n = pread(fd, buf, sizeof buf - 1, off);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* the last complete line starts after the newline before the final one */
	char *end = buf + n;
	if (end > buf && end[-1] == '\n')
		end--;
	*end = 0;
	char *line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	char *p = strstr(line, "\"seq\":");
	return p ? strtoull(p + 6, NULL, 10) : 0;
}

int fl_retention_log_append(int root_fd, const struct fl_retention_removal *r, const char *by, char *line, size_t cap)
{
	char own[1024];
	if (!line || cap < sizeof own) {
		line = own;
		cap = sizeof own;
	}
	line[0] = 0;
	int fd = openat(root_fd, FL_RETENTION_LOG, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int n = fl_retention_render(line, cap, r, last_log_seq(fd) + 1,
				    (int64_t)now.tv_sec * 1000000000ll + now.tv_nsec, by);
	int rc = 0;
	if (n < 0)
		rc = n;
	else if (write(fd, line, (size_t)n) != n)
		rc = -EIO;
	close(fd);
	return rc;
}

static void report(const struct fl_retention_hooks *h, int root_fd, const struct fl_retention_removal *r)
{
	if (h && h->report)
		h->report(h->arg, r);
	else
		fl_retention_log_append(root_fd, r, h ? h->by : NULL, NULL, 0);
}

static int lock_root(int root_fd)
{
	int fd = openat(root_fd, GC_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int e = -errno;
			close(fd);
			return e;
		}
	}
	return fd;
}

static void unlock_root(int fd)
{
	if (fd >= 0)
		close(fd); /* closing drops the flock */
}

/* Removes parent/name and everything below it (at most a few levels: session dirs are flat). */
static int rm_tree(int parent, const char *name, int depth, uint64_t *files)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (unlinkat(fd, e->d_name, 0) == 0) {
			if (files)
				(*files)++;
		} else if (errno == EISDIR && depth < 4) {
			int r = rm_tree(fd, e->d_name, depth + 1, files);
			if (r < 0 && !rc)
				rc = r;
		} else if (errno != ENOENT && !rc) {
			rc = -errno;
		}
	}
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && !rc)
		rc = -errno;
	return rc;
}

/*
 * Renames the session out of the id namespace first, so a crash half way
 * leaves "@removing.<id>" (finished by the next pass) and never a session
 * directory missing some of its files.
 */
static int remove_session_dir(int root_fd, const char *id, uint64_t *files)
{
	char gone[128];
	snprintf(gone, sizeof gone, REMOVING_PREFIX "%s", id);
	if (renameat(root_fd, id, root_fd, gone) < 0)
		return -errno;
	fsync(root_fd);
	int rc = rm_tree(root_fd, gone, 0, files);
	fsync(root_fd);
	return rc;
}

struct seg {
	char name[FL_SEG_NAME_MAX];
	char cls[16];
	uint64_t n;
	uint64_t bytes;
	int64_t mtime;
	int kind;
	int eligible; /* a complete archive: .lz4 with no plain/.tmp of the same number and class */
	int gone;
	struct sess *s;
};

struct sess {
	char id[72];
	int dirfd;
	int live;
	int pending; /* a closed segment waits for compression */
	int gone;
	uint64_t bytes;
	int64_t newest; /* newest mtime of its line files; 0 when it has none */
	struct seg *segs;
	size_t nsegs;
};

static int is_line_file(const char *name)
{
	return !strcmp(name, "system.jsonl") || !strcmp(name, "user.jsonl");
}

static int load_session(int root_fd, const char *id, struct sess *s, const struct fl_retention_hooks *h)
{
	memset(s, 0, sizeof *s);
	snprintf(s->id, sizeof s->id, "%s", id);
	s->dirfd = openat(root_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->dirfd < 0)
		return -errno;
	int dfd = fcntl(s->dirfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		close(s->dirfd);
		return -ENOMEM;
	}
	size_t cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
			continue;
		if (fstatat(s->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		s->bytes += (uint64_t)st.st_size;
		char cls[16];
		uint64_t n;
		int kind = fl_seg_parse(e->d_name, cls, &n);
		if (kind || is_line_file(e->d_name))
			if (ts_of(&st) > s->newest)
				s->newest = ts_of(&st);
		if (!kind)
			continue;
		if (kind != FL_SEG_LZ4)
			s->pending = 1;
		struct seg *ns = fl_grow(s->segs, &cap, s->nsegs, sizeof *ns, 16);
		if (!ns) {
			closedir(d);
			close(s->dirfd);
			free(s->segs);
			s->segs = NULL;
			s->dirfd = -1;
			return -ENOMEM;
		}
		s->segs = ns;
		struct seg *g = &s->segs[s->nsegs++];
		memset(g, 0, sizeof *g);
		snprintf(g->name, sizeof g->name, "%s", e->d_name);
		memcpy(g->cls, cls, sizeof g->cls);
		g->n = n;
		g->bytes = (uint64_t)st.st_size;
		g->mtime = ts_of(&st);
		g->kind = kind;
	}
	closedir(d);
	/* An archive is complete only when nothing else of its number and class is left. */
	for (size_t i = 0; i < s->nsegs; i++) {
		struct seg *g = &s->segs[i];
		g->eligible = g->kind == FL_SEG_LZ4;
		for (size_t j = 0; j < s->nsegs && g->eligible; j++)
			if (j != i && s->segs[j].n == g->n && !strcmp(s->segs[j].cls, g->cls))
				g->eligible = 0;
	}
	int live = h && h->live ? h->live(h->arg, id) : -1;
	s->live = live >= 0 ? live : !fl_manifest_over(s->dirfd);
	/* a sweep of thousands of sessions must not hold a directory fd for each: reopened when acted on */
	close(s->dirfd);
	s->dirfd = -1;
	return 0;
}

/* The session's directory, opened again for one action; -errno when it is gone. */
static int sess_dir(int root_fd, const struct sess *s)
{
	int fd = openat(root_fd, s->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void free_session(struct sess *s)
{
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->segs);
}

static int remove_seg(int root_fd, struct sess *s, struct seg *g, enum fl_retention_reason why,
		      const struct fl_retention_hooks *h, struct fl_retention_stats *st)
{
	int dfd = sess_dir(root_fd, s);
	if (dfd < 0)
		return dfd;
	if (unlinkat(dfd, g->name, 0) < 0 && errno != ENOENT) {
		int e = -errno;
		close(dfd);
		return e;
	}
	fsync(dfd);
	close(dfd);
	g->gone = 1;
	s->bytes -= g->bytes;
	st->removed_segments++;
	st->freed_bytes += g->bytes;
	struct fl_retention_removal r = {.session = s->id,
					 .file = g->name,
					 .reason = why,
					 .bytes = g->bytes,
					 .files = 1,
					 .newest_ns = g->mtime,
					 .live = s->live};
	report(h, root_fd, &r);
	return 0;
}

static int remove_whole(int root_fd, struct sess *s, enum fl_retention_reason why, const struct fl_retention_hooks *h,
			struct fl_retention_stats *st)
{
	uint64_t files = 0;
	int rc = remove_session_dir(root_fd, s->id, &files);
	if (rc < 0 && rc != -ENOTEMPTY)
		return rc;
	s->gone = 1;
	st->removed_sessions++;
	st->freed_bytes += s->bytes;
	struct fl_retention_removal r = {.session = s->id,
					 .file = NULL,
					 .reason = why,
					 .bytes = s->bytes,
					 .files = files,
					 .newest_ns = s->newest,
					 .live = 0};
	s->bytes = 0;
	report(h, root_fd, &r);
	return 0;
}

static int cmp_seg_age(const void *a, const void *b)
{
	const struct seg *x = *(struct seg *const *)a, *y = *(struct seg *const *)b;
	if (x->mtime != y->mtime)
		return x->mtime < y->mtime ? -1 : 1;
	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* A unit for max_total_size: an archive (seg != NULL) or a whole ended session. */
struct unit {
	int64_t t;
	struct sess *s;
	struct seg *g;
};

static int cmp_unit(const void *a, const void *b)
{
	const struct unit *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	int c = strcmp(x->s->id, y->s->id);
	if (c)
		return c;
	uint64_t xn = x->g ? x->g->n : UINT64_MAX, yn = y->g ? y->g->n : UINT64_MAX;
	return xn < yn ? -1 : xn > yn;
}

/* The eligible archives of s, oldest first, into a malloc'ed array (caller frees). */
static struct seg **oldest_first(struct sess *s, size_t *count)
{
	struct seg **v = malloc((s->nsegs ? s->nsegs : 1) * sizeof *v);
	size_t k = 0;
	if (!v)
		return NULL;
	for (size_t i = 0; i < s->nsegs; i++)
		if (s->segs[i].eligible && !s->segs[i].gone)
			v[k++] = &s->segs[i];
	qsort(v, k, sizeof *v, cmp_seg_age);
	*count = k;
	return v;
}

/* One pass over the root: its sessions and what it was asked to do. */
struct run {
	int root_fd;
	const struct fl_retention_policy *p;
	const struct fl_retention_hooks *h;
	struct fl_retention_stats *st;
	struct sess *ss;
	size_t ns;
};

/* Loads every session directory of the root, finishing removals a crash interrupted. 0 or -errno. */
static int scan_root(struct run *r)
{
	int dfd = openat(r->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		int e = dfd < 0 ? -errno : -ENOMEM;
		if (dfd >= 0)
			close(dfd);
		return e;
	}
	size_t cap = 0;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strncmp(e->d_name, REMOVING_PREFIX, strlen(REMOVING_PREFIX))) {
			rm_tree(r->root_fd, e->d_name, 0, NULL); /* a removal a crash interrupted */
			continue;
		}
		if (fl_id_check(e->d_name) < 0)
			continue;
		struct stat sst;
		if (fstatat(r->root_fd, e->d_name, &sst, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(sst.st_mode))
			continue;
		struct sess *n2 = fl_grow(r->ss, &cap, r->ns, sizeof *n2, 16);
		if (!n2) {
			rc = -ENOMEM;
			break;
		}
		r->ss = n2;
		if (load_session(r->root_fd, e->d_name, &r->ss[r->ns], r->h) == 0)
			r->ns++;
	}
	closedir(d);
	r->st->sessions = r->ns;
	return rc;
}

/* cleanup_on_exit: an ended session is not kept at all. */
static void pass_cleanup(struct run *r)
{
	for (size_t i = 0; i < r->ns; i++)
		if (!r->ss[i].live && !r->ss[i].pending)
			remove_whole(r->root_fd, &r->ss[i], FL_RET_CLEANUP, r->h, r->st);
}

/* Age: ended sessions and archived segments older than retention. */
static void pass_age(struct run *r, int64_t now_ns)
{
	int64_t cutoff = now_ns - (int64_t)r->p->retention_s * 1000000000ll;
	for (size_t i = 0; i < r->ns; i++) {
		struct sess *s = &r->ss[i];
		if (s->gone)
			continue;
		if (!s->live && !s->pending && s->newest < cutoff) {
			remove_whole(r->root_fd, s, FL_RET_ENDED, r->h, r->st);
			continue;
		}
		size_t k;
		struct seg **v = oldest_first(s, &k);
		for (size_t j = 0; v && j < k && v[j]->mtime < cutoff; j++)
			remove_seg(r->root_fd, s, v[j], FL_RET_RETENTION, r->h, r->st);
		free(v);
	}
}

/* Per-session cap: a session's oldest archived segments go until it fits. */
static void pass_session_cap(struct run *r)
{
	uint64_t cap = r->p->max_session_size;
	for (size_t i = 0; i < r->ns; i++) {
		struct sess *s = &r->ss[i];
		if (s->gone || s->bytes <= cap)
			continue;
		size_t k;
		struct seg **v = oldest_first(s, &k);
		for (size_t j = 0; v && j < k && s->bytes > cap; j++)
			remove_seg(r->root_fd, s, v[j], FL_RET_SESSION_SIZE, r->h, r->st);
		free(v);
	}
}

/* Root cap: the oldest unit (an archived segment or an ended session) first across sessions. 0 or -ENOMEM. */
static int pass_total_cap(struct run *r, uint64_t *total)
{
	size_t nu = 0, ucap = 0;
	for (size_t i = 0; i < r->ns; i++)
		ucap += r->ss[i].nsegs + 1;
	struct unit *u = malloc((ucap ? ucap : 1) * sizeof *u);
	if (!u)
		return -ENOMEM;
	for (size_t i = 0; i < r->ns; i++) {
		struct sess *s = &r->ss[i];
		if (s->gone)
			continue;
		if (!s->live && !s->pending)
			u[nu++] = (struct unit){.t = s->newest, .s = s, .g = NULL};
		for (size_t j = 0; j < s->nsegs; j++)
			if (s->segs[j].eligible && !s->segs[j].gone)
				u[nu++] = (struct unit){.t = s->segs[j].mtime, .s = s, .g = &s->segs[j]};
	}
	qsort(u, nu, sizeof *u, cmp_unit);
	for (size_t j = 0; j<nu && * total> r->p->max_total_size; j++) {
		struct sess *s = u[j].s;
		if (s->gone || (u[j].g && u[j].g->gone))
			continue;
		uint64_t before = s->bytes;
		int rc = u[j].g ? remove_seg(r->root_fd, s, u[j].g, FL_RET_TOTAL_SIZE, r->h, r->st)
				: remove_whole(r->root_fd, s, FL_RET_TOTAL_SIZE, r->h, r->st);
		if (rc == 0)
			*total -= before - s->bytes;
	}
	free(u);
	return 0;
}

/* Brings ended sessions' segment lists up to date and frees the pass. */
static void finish_run(struct run *r)
{
	for (size_t i = 0; i < r->ns; i++) {
		/* nothing else rewrites an ended session's manifest: keep its segment list true */
		int sfd = !r->ss[i].gone && !r->ss[i].live ? sess_dir(r->root_fd, &r->ss[i]) : -1;
		if (sfd >= 0) {
			fl_segindex_refresh(sfd);
			close(sfd);
		}
		free_session(&r->ss[i]);
	}
	free(r->ss);
}

int fl_retention_run(int root_fd, const struct fl_retention_policy *p, int64_t now_ns,
		     const struct fl_retention_hooks *h, struct fl_retention_stats *stp)
{
	struct fl_retention_stats dummy;
	struct run r = {.root_fd = root_fd, .p = p, .h = h, .st = stp ? stp : &dummy};
	memset(r.st, 0, sizeof *r.st);
	int lock = lock_root(root_fd);
	if (lock < 0)
		return lock;
	int rc = scan_root(&r);
	if (rc < 0 && !r.ss) {
		unlock_root(lock);
		return rc;
	}
	if (!rc && p->cleanup_on_exit)
		pass_cleanup(&r);
	if (!rc && p->retention_s)
		pass_age(&r, now_ns);
	if (!rc && p->max_session_size)
		pass_session_cap(&r);
	uint64_t total = 0;
	for (size_t i = 0; i < r.ns; i++)
		total += r.ss[i].gone ? 0 : r.ss[i].bytes;
	if (!rc && p->max_total_size && total > p->max_total_size)
		rc = pass_total_cap(&r, &total);
	r.st->total_bytes = total;
	finish_run(&r);
	unlock_root(lock);
	return rc;
}

int fl_retention_remove_session(int root_fd, const char *id, enum fl_retention_reason reason,
				const struct fl_retention_hooks *h)
{
	if (fl_id_check(id) < 0)
		return -EINVAL;
	int lock = lock_root(root_fd);
	if (lock < 0)
		return lock;
	struct sess s;
	int rc = load_session(root_fd, id, &s, NULL);
	if (rc == 0) {
		struct fl_retention_stats st = {0};
		rc = remove_whole(root_fd, &s, reason, h, &st);
		free_session(&s);
	}
	unlock_root(lock);
	return rc;
}
