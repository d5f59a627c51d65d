/* SPDX-License-Identifier: MIT */
/* sessread.c: one session's events in seq order and their byte fields, for replay, export and cat's renderings. */
#define _GNU_SOURCE
#include "sessread.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segread.h"
#include "text.h"

struct cls {
	const char *name;
	struct fl_seg *segs;
	int nseg, next;
	uint64_t last_num; /* the last segment opened; 0 before any */
	struct fl_segread *rd;
	char *pend; /* the next line of this class */
	size_t plen, pcap;
	uint64_t pseq;
	int has;
};

struct fl_sessread {
	int dirfd;
	struct cls c[2];
	char *cur; /* the line handed out */
	size_t ccap;
};

static void list_why(char *why, size_t whylen, const char *dir, int rc)
{
	if (rc == -EAGAIN)
		snprintf(why, whylen,
			 "cannot list %s: it kept changing (rotating faster than it can be listed); try again", dir);
	else
		snprintf(why, whylen, "cannot list %s: %s", dir, strerror(-rc));
}

int fl_sessread_open(struct fl_sessread **out, const char *root, const char *id, char *why, size_t whylen)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/%s", root, id);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		snprintf(why, whylen, "no log directory %s: %s", path, strerror(-e));
		return e;
	}
	struct fl_sessread *r = calloc(1, sizeof *r);
	if (!r) {
		close(fd);
		return -ENOMEM;
	}
	r->dirfd = fd;
	r->c[0].name = "system";
	r->c[1].name = "user";
	for (int i = 0; i < 2; i++) {
		int n = fl_segments_list(fd, r->c[i].name, &r->c[i].segs);
		if (n < 0) {
			list_why(why, whylen, path, n);
			fl_sessread_close(r);
			return n;
		}
		r->c[i].nseg = n;
	}
	*out = r;
	return 0;
}

/*
 * The active file was rotated since the listing (its name holds another
 * inode): list again and go on after the last segment opened, so the segment
 * it became is read first.
 */
static int relist(struct fl_sessread *r, struct cls *c, char *why, size_t whylen)
{
	fl_segments_free(c->segs, c->nseg);
	c->segs = NULL;
	c->nseg = c->next = 0;
	int n = fl_segments_list(r->dirfd, c->name, &c->segs);
	if (n < 0) {
		list_why(why, whylen, c->name, n);
		return n;
	}
	c->nseg = n;
	for (c->next = 0; c->next < n && c->segs[c->next].num <= c->last_num; c->next++)
		;
	return 0;
}

/* Opens the class's next file: 1, 0 when there is none, -errno. */
static int open_next(struct fl_sessread *r, struct cls *c, char *why, size_t whylen)
{
	for (int attempt = 0; c->next < c->nseg; attempt++) {
		const struct fl_seg *sg = &c->segs[c->next++];
		int rc = fl_segread_open(&c->rd, r->dirfd, sg->name, why, whylen);
		if (rc == -ENOENT && sg->num != FL_SEG_ACTIVE && !sg->lz4) {
			/* archived and removed since the listing: its archive holds the same lines */
			char lz[sizeof sg->name + 8];
			snprintf(lz, sizeof lz, "%s.lz4", sg->name);
			rc = fl_segread_open(&c->rd, r->dirfd, lz, why, whylen);
		}
		if (rc < 0)
			return rc;
		if (sg->num != FL_SEG_ACTIVE) {
			c->last_num = sg->num;
			return 1;
		}
		struct stat sb;
		if (fl_segread_stat(c->rd, &sb) == 0 && sb.st_ino == sg->ino)
			return 1;
		fl_segread_close(c->rd);
		c->rd = NULL;
		if (attempt == 8) {
			/* reading the newer file would skip the segments rotated in between */
			snprintf(why, whylen, "%s: kept rotating while it was opened; try again", sg->name);
			return -EAGAIN;
		}
		if ((rc = relist(r, c, why, whylen)) < 0)
			return rc;
	}
	return 0;
}

/* Makes c->pend the class's next line: 1, 0 at its end, -errno for a bad file (then skipped). */
static int fill(struct fl_sessread *r, struct cls *c, char *why, size_t whylen)
{
	while (!c->has) {
		if (!c->rd) {
			int rc = open_next(r, c, why, whylen);
			if (rc <= 0)
				return rc;
		}
		const char *line;
		size_t len;
		int rc = fl_segread_next(c->rd, &line, &len, why, whylen);
		if (rc <= 0) {
			fl_segread_close(c->rd);
			c->rd = NULL;
			if (rc < 0)
				return rc;
			continue;
		}
		if (len + 1 > c->pcap) {
			char *np = realloc(c->pend, len + 1);
			if (!np)
				return -ENOMEM;
			c->pend = np, c->pcap = len + 1;
		}
		memcpy(c->pend, line, len);
		c->pend[len] = 0;
		c->plen = len;
		if (fl_line_seq(line, len, &c->pseq) < 0)
			c->pseq = UINT64_MAX; /* no seq: after everything else */
		c->has = 1;
	}
	return 1;
}

void fl_evline_parse(struct fl_evline *ev, const char *line, size_t len)
{
	memset(ev, 0, sizeof *ev);
	ev->line = line;
	ev->len = len;
	fl_line_seq(line, len, &ev->seq);
	fl_json_u64(line, len, "ts_ns", &ev->ts_ns);
	const char *v;
	size_t n;
	if (fl_json_field(line, len, "event", &v, &n) == 0 && n >= 2 && n - 2 < sizeof ev->kind) {
		memcpy(ev->kind, v + 1, n - 2);
		ev->kind[n - 2] = 0;
	}
	if (fl_json_field(line, len, "data", &v, &n) == 0 && n && *v == '{')
		ev->data = v, ev->dlen = n;
}

int fl_sessread_next(struct fl_sessread *r, struct fl_evline *ev, char *why, size_t whylen)
{
	for (int i = 0; i < 2; i++) {
		int rc = fill(r, &r->c[i], why, whylen);
		if (rc < 0)
			return rc;
	}
	struct cls *a = &r->c[0], *b = &r->c[1];
	struct cls *pick = a->has && (!b->has || a->pseq <= b->pseq) ? a : b->has ? b : NULL;
	if (!pick)
		return 0;
	char *t = r->cur;
	size_t tc = r->ccap;
	r->cur = pick->pend, r->ccap = pick->pcap;
	pick->pend = t, pick->pcap = tc, pick->has = 0;

	fl_evline_parse(ev, r->cur, pick->plen);
	ev->seq = pick->pseq;
	return 1;
}

void fl_sessread_close(struct fl_sessread *r)
{
	if (!r)
		return;
	for (int i = 0; i < 2; i++) {
		fl_segread_close(r->c[i].rd);
		fl_segments_free(r->c[i].segs, r->c[i].nseg);
		free(r->c[i].pend);
	}
	free(r->cur);
	close(r->dirfd);
	free(r);
}

int fl_json_u64(const char *obj, size_t len, const char *key, uint64_t *v)
{
	const char *p;
	size_t n;
	int rc = fl_json_field(obj, len, key, &p, &n);
	if (rc < 0)
		return rc;
	uint64_t x = 0;
	/* 64-bit fields are decimal strings since schema 2 (docs/schema.md), bare numbers before */
	if (n >= 2 && p[0] == '"' && p[n - 1] == '"')
		p++, n -= 2;
	if (!n)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EBADMSG;
		x = x * 10 + (uint64_t)(p[i] - '0');
	}
	*v = x;
	return 0;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* A JSON string's contents (between the quotes) unescaped into out; returns the length or -EBADMSG. */
static ssize_t unescape(const char *s, size_t n, uint8_t *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\') {
			out[o++] = (uint8_t)s[i];
			continue;
		}
		if (++i >= n)
			return -EBADMSG;
		switch (s[i]) {
		case 'b':
			out[o++] = '\b';
			break;
		case 'f':
			out[o++] = '\f';
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 'r':
			out[o++] = '\r';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case '"':
		case '\\':
		case '/':
			out[o++] = (uint8_t)s[i];
			break;
		case 'u': {
			if (i + 4 >= n)
				return -EBADMSG;
			unsigned cp = 0;
			for (int k = 1; k <= 4; k++) {
				int h = hexval(s[i + k]);
				if (h < 0)
					return -EBADMSG;
				cp = cp * 16 + (unsigned)h;
			}
			i += 4;
			/* the renderer escapes only bytes below 0x20 this way; any other code point is encoded back */
			if (cp < 0x80) {
				out[o++] = (uint8_t)cp;
			} else if (cp < 0x800) {
				out[o++] = (uint8_t)(0xc0 | cp >> 6);
				out[o++] = (uint8_t)(0x80 | (cp & 0x3f));
			} else {
				out[o++] = (uint8_t)(0xe0 | cp >> 12);
				out[o++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
				out[o++] = (uint8_t)(0x80 | (cp & 0x3f));
			}
			break;
		}
		default:
			return -EBADMSG;
		}
	}
	return (ssize_t)o;
}

static ssize_t unbase64(const char *s, size_t n, uint8_t *out)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int v = c >= 'A' && c <= 'Z'   ? c - 'A'
			: c >= 'a' && c <= 'z' ? c - 'a' + 26
			: c >= '0' && c <= '9' ? c - '0' + 52
			: c == '+'	       ? 62
			: c == '/'	       ? 63
			: c == '='	       ? -2
					       : -1;
		if (v == -2)
			break;
		if (v < 0)
			return -EBADMSG;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	return (ssize_t)o;
}

int fl_json_bytes(const char *obj, size_t len, const char *key, uint8_t **out, size_t *n)
{
	const char *v;
	size_t vl;
	char k64[64];
	int b64 = 0;
	if (fl_json_field(obj, len, key, &v, &vl) < 0) {
		snprintf(k64, sizeof k64, "%s_b64", key);
		if (fl_json_field(obj, len, k64, &v, &vl) < 0)
			return -ENOENT;
		b64 = 1;
	}
	if (vl < 2 || v[0] != '"' || v[vl - 1] != '"')
		return -EBADMSG;
	uint8_t *buf = malloc(vl + 1);
	if (!buf)
		return -ENOMEM;
	ssize_t got = b64 ? unbase64(v + 1, vl - 2, buf) : unescape(v + 1, vl - 2, buf);
	if (got < 0) {
		free(buf);
		return (int)got;
	}
	buf[got] = 0;
	*out = buf;
	*n = (size_t)got;
	return 0;
}

/* Appends the bytes of text field key to m, with sep before it when m is not empty; 1 when there was one. */
static int add_field(FILE *m, const struct fl_evline *ev, const char *key, const char *sep)
{
	uint8_t *b;
	size_t n;
	if (fl_json_bytes(ev->data, ev->dlen, key, &b, &n) < 0)
		return 0;
	if (ftell(m) && sep)
		fputs(sep, m);
	fwrite(b, 1, n, m);
	free(b);
	return 1;
}

/* Appends the elements of the text array key, space separated. */
static void add_array(FILE *m, const struct fl_evline *ev, const char *key)
{
	const char *v;
	size_t vl;
	if (fl_json_field(ev->data, ev->dlen, key, &v, &vl) < 0 || vl < 2)
		return;
	for (size_t i = 1; i + 1 < vl; i++) {
		if (v[i] != '"')
			continue;
		size_t j = i + 1;
		while (j + 1 < vl && v[j] != '"')
			j += v[j] == '\\' ? 2 : 1;
		char *o = malloc(j - i + 16);
		if (!o)
			return;
		int on = snprintf(o, j - i + 16, "{\"a\":%.*s}", (int)(j - i + 1), v + i);
		struct fl_evline one = {.data = o, .dlen = (size_t)on};
		add_field(m, &one, "a", " ");
		free(o);
		i = j;
	}
}

int fl_evline_words(const struct fl_evline *ev, const char *key, char **out)
{
	size_t cap = 0;
	*out = NULL;
	FILE *m = open_memstream(out, &cap);
	if (!m)
		return -ENOMEM;
	if (ev->data)
		add_array(m, ev, key);
	return fclose(m) ? -ENOMEM : 0;
}

int fl_evline_summary(const struct fl_evline *ev, char **out, size_t *n)
{
	*out = NULL;
	FILE *m = open_memstream(out, n);
	if (!m)
		return -ENOMEM;
	const char *k = ev->kind;
	uint64_t a = 0, b = 0;
	if (!ev->data) {
		/* nothing to summarise */
	} else if (!strcmp(k, "transcript") || !strcmp(k, "input")) {
		add_field(m, ev, "data", NULL);
	} else if (!strcmp(k, "prompt")) {
		add_field(m, ev, "text", NULL);
	} else if (!strcmp(k, "spawn")) {
		fl_json_u64(ev->data, ev->dlen, "pid", &a);
		fprintf(m, "pid %llu:", (unsigned long long)a);
		add_array(m, ev, "argv");
	} else if (!strcmp(k, "exit")) {
		fl_json_u64(ev->data, ev->dlen, "signal", &b);
		fl_json_u64(ev->data, ev->dlen, "duration_ns", &a);
		if (b)
			fprintf(m, "killed by signal %llu", (unsigned long long)b);
		else if (fl_json_u64(ev->data, ev->dlen, "status", &b) == 0)
			fprintf(m, "status %llu", (unsigned long long)b);
		fprintf(m, " after %.3fs", (double)a / 1e9);
	} else if (!strcmp(k, "state")) {
		add_field(m, ev, "from", NULL);
		add_field(m, ev, "to", " -> ");
		add_field(m, ev, "reason", " : ");
	} else if (!strcmp(k, "error")) {
		add_field(m, ev, "message", NULL);
		add_field(m, ev, "origin", " : ");
	} else if (!strcmp(k, "action")) {
		add_field(m, ev, "action", NULL);
		add_field(m, ev, "target", " ");
		add_field(m, ev, "detail", " : ");
	} else if (!strcmp(k, "command")) {
		add_field(m, ev, "name", NULL);
		add_array(m, ev, "args");
	} else if (!strcmp(k, "completion")) {
		add_field(m, ev, "task", NULL);
		add_field(m, ev, "outcome", " : ");
	} else {
		/* level, dropped and kinds this reader does not know: their data as written */
		fwrite(ev->data, 1, ev->dlen, m);
	}
	return fclose(m) ? -ENOMEM : 0;
}

int fl_cat_output_parse(const char *s)
{
	return !strcmp(s, "json")	  ? FL_CAT_JSON
	       : !strcmp(s, "text")	  ? FL_CAT_TEXT
	       : !strcmp(s, "transcript") ? FL_CAT_TRANSCRIPT
					  : -EINVAL;
}

void fl_cat_render(FILE *f, int mode, const char *line, size_t len)
{
	struct fl_evline ev;
	fl_evline_parse(&ev, line, len);
	if (mode == FL_CAT_TRANSCRIPT) {
		uint8_t *b;
		size_t n;
		if (!strcmp(ev.kind, "transcript") && ev.data && fl_json_bytes(ev.data, ev.dlen, "data", &b, &n) == 0) {
			fwrite(b, 1, n, f);
			free(b);
		}
		return;
	}
	char *sum;
	size_t n;
	if (fl_evline_summary(&ev, &sum, &n) < 0)
		return;
	char out[FL_TEXT_SUMMARY_MAX * 4 + 128];
	size_t k = fl_text_line(out, sizeof out, ev.ts_ns, *ev.kind ? ev.kind : "?", (const uint8_t *)sum, n);
	fwrite(out, 1, k, f);
	free(sum);
}
