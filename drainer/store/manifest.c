/* SPDX-License-Identifier: MIT */
/* manifest.c: renders session.json, replaces it atomically with temp + rename, and loads it back. */
#define _GNU_SOURCE
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuguelog.h"
#include "jsonl.h"
#include "segread.h"
#include "sysutil.h"

#define TMP_NAME ".session.json.tmp"
#define NAME "session.json"

const char *fl_manifest_state_name(uint32_t end)
{
	return end == FL_CKPT_ENDED ? "ended" : end == FL_CKPT_ABANDONED ? "abandoned" : "live";
}

static int add(struct fl_jbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || fl_jbuf_reserve(b, (size_t)n + 1) < 0)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

static int add_time(struct fl_jbuf *b, struct fl_tsfmt *tc, const char *key, int64_t ns)
{
	char t[32];
	if (ns <= 0)
		return add(b, "\"%s\":null,\"%s_ns\":null", key, key);
	fl_jsonl_time(tc, (uint64_t)ns, t);
	/* a decimal string, as in the JSON lines (schema 2): nanoseconds since 1970 exceed a double's 2^53 */
	return add(b, "\"%s\":\"%s\",\"%s_ns\":\"%lld\"", key, t, key, (long long)ns);
}

static const char *level_or_null(uint32_t l, char *buf)
{
	if (l < FL_LEVEL_SPAWNS || l > FL_LEVEL_FULL)
		return "null";
	snprintf(buf, 16, "\"%s\"", fl_level_name((int)l));
	return buf;
}

static int render(struct fl_jbuf *b, const struct fl_manifest *m)
{
	const struct fl_ckpt *ck = m->ck;
	struct fl_tsfmt tc = {0};
	char l1[16], l2[16];
	int rc = add(b, "{\"id\":\"%s\",\"pid\":%u,", m->id, m->pid);
	rc = rc ? rc : add_time(b, &tc, "start", m->start_ns);
	rc = rc ? rc : add(b, ",");
	rc = rc ? rc : add_time(b, &tc, "end", ck->end ? ck->end_ns : 0);
	rc = rc ? rc
		: add(b, ",\"state\":\"%s\",\"level\":%s,\"lanes\":%u,\"lane_size\":%llu,",
		      fl_manifest_state_name(ck->end), level_or_null(m->level, l1), m->lanes,
		      (unsigned long long)m->lane_size);
	rc = rc ? rc
		: add(b, "\"next_seq\":%llu,\"lines\":{\"system\":%llu,\"user\":%llu},",
		      (unsigned long long)ck->next_seq, (unsigned long long)ck->lines[FL_SINK_SYSTEM],
		      (unsigned long long)ck->lines[FL_SINK_USER]);
	rc = rc ? rc
		: add(b, "\"drops\":%llu,\"undecodable\":%llu,\"quarantined_lanes\":[", (unsigned long long)ck->drops,
		      (unsigned long long)ck->undecodable);
	int first = 1;
	for (unsigned l = 0; l < 64 && !rc; l++)
		if (ck->quarantined >> l & 1) {
			rc = add(b, "%s%u", first ? "" : ",", l);
			first = 0;
		}
	rc = rc ? rc : add(b, "],\"level_changes\":%llu,\"levels\":[", (unsigned long long)ck->level_changes);
	for (size_t i = 0; i < m->nlevels && !rc; i++) {
		const struct fl_level_rec *r = &m->levels[i];
		rc = add(b, "%s{", i ? "," : "");
		rc = rc ? rc : add_time(b, &tc, "ts", r->ts_ns);
		rc = rc ? rc
			: add(b, ",\"seq\":%llu,\"old\":%s,\"new\":%s,\"changes\":%llu}", (unsigned long long)r->seq,
			      level_or_null(r->old, l1), level_or_null(r->new_, l2), (unsigned long long)r->changes);
	}
	rc = rc ? rc : add(b, "],\"files\":{");
	for (int c = 0; c < FL_SINK_CLASSES && !rc; c++) {
		const struct fl_sink_state *s = &ck->sink;
		rc =
		    add(b, "%s\"%s\":{\"size\":%llu,\"lines\":%llu,\"first_seq\":%llu,\"last_seq\":%llu,", c ? "," : "",
			fl_sink_file_name(c), (unsigned long long)s->size[c], (unsigned long long)s->lines[c],
			(unsigned long long)s->first_seq[c], (unsigned long long)s->last_seq[c]);
		rc = rc ? rc : add_time(b, &tc, "first_ts", s->lines[c] ? s->first_ts[c] : 0);
		rc = rc ? rc : add(b, ",");
		rc = rc ? rc : add_time(b, &tc, "last_ts", s->lines[c] ? s->last_ts[c] : 0);
		rc = rc ? rc : add(b, "}");
	}
	rc = rc ? rc : add(b, "}");
	if (m->extra && *m->extra)
		rc = rc ? rc : add(b, ",%s", m->extra);
	return rc ? rc : add(b, "}\n");
}

/* Writes text to dirfd/tmp, then renames it over session.json; durable adds fsync of the file and the directory. */
static int replace(int dirfd, const char *tmp, const char *text, size_t len, int durable)
{
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = fl_write_full(fd, text, len);
	if (!rc && durable && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (!rc && renameat(dirfd, tmp, dirfd, NAME) < 0)
		rc = -errno;
	if (rc)
		unlinkat(dirfd, tmp, 0);
	else if (durable && fsync(dirfd) < 0)
		rc = -errno;
	return rc;
}

int fl_manifest_write(int dirfd, const struct fl_manifest *m, int durable)
{
	struct fl_jbuf b = {0};
	int rc = render(&b, m);
	if (!rc)
		rc = replace(dirfd, TMP_NAME, b.p, b.len, durable);
	fl_jbuf_free(&b);
	return rc;
}

int fl_manifest_u64(const char *obj, size_t len, const char *key, uint64_t *v)
{
	const char *p;
	size_t n;
	if (fl_json_field(obj, len, key, &p, &n) < 0 || (n == 4 && !memcmp(p, "null", 4)))
		return -ENOENT;
	if (n >= 2 && p[0] == '"' && p[n - 1] == '"')
		p++, n -= 2;
	if (!n || n > 20)
		return -EBADMSG;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(p[i] - '0');
		if (d > 9 || x > (UINT64_MAX - d) / 10)
			return -EBADMSG;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

int fl_manifest_rewrite(int dirfd, const char *text, size_t len)
{
	/* '@' cannot start a name the drainer uses, so this temp never meets the drainer's own */
	return replace(dirfd, "@session.json.tmp", text, len, 1);
}

int fl_manifest_load(int dirfd, char **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	int fd = openat(dirfd, NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || (uint64_t)st.st_size > FL_MANIFEST_MAX_BYTES) {
		close(fd);
		return 0;
	}
	size_t want = (size_t)st.st_size, got = 0;
	char *b = malloc(want + 1);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	ssize_t k;
	while (got < want && ((k = read(fd, b + got, want - got)) > 0 || (k < 0 && errno == EINTR)))
		if (k > 0)
			got += (size_t)k;
	close(fd);
	b[got] = 0;
	*buf = b;
	*len = got;
	return 0;
}

int fl_manifest_over(int dirfd)
{
	char *buf;
	size_t len;
	const char *v;
	size_t vlen;
	if (fl_manifest_load(dirfd, &buf, &len) < 0 || !buf)
		return 0;
	int over = fl_json_field(buf, len, "state", &v, &vlen) == 0 &&
		   ((vlen == 7 && !memcmp(v, "\"ended\"", 7)) || (vlen == 11 && !memcmp(v, "\"abandoned\"", 11)));
	free(buf);
	return over;
}
