/* SPDX-License-Identifier: MIT */
/* sessread.c: one session's events in seq order and their byte fields, for replay, export and cat's renderings. */
#define _GNU_SOURCE
#include "sessread.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "segread.h"

struct cls {
	const char *name;
	struct fl_seg *segs;
	int nseg, next;
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
			snprintf(why, whylen, "cannot list %s: %s", path, strerror(-n));
			fl_sessread_close(r);
			return n;
		}
		r->c[i].nseg = n;
	}
	*out = r;
	return 0;
}

/* Makes c->pend the class's next line: 1, 0 at its end, -errno for a bad file (then skipped). */
static int fill(struct fl_sessread *r, struct cls *c, char *why, size_t whylen)
{
	while (!c->has) {
		if (!c->rd) {
			if (c->next >= c->nseg)
				return 0;
			int rc = fl_segread_open(&c->rd, r->dirfd, c->segs[c->next++].name, why, whylen);
			if (rc < 0)
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

	memset(ev, 0, sizeof *ev);
	ev->line = r->cur;
	ev->len = pick->plen;
	ev->seq = pick->pseq;
	fl_json_u64(ev->line, ev->len, "ts_ns", &ev->ts_ns);
	const char *v;
	size_t n;
	if (fl_json_field(ev->line, ev->len, "event", &v, &n) == 0 && n >= 2 && n - 2 < sizeof ev->kind) {
		memcpy(ev->kind, v + 1, n - 2);
		ev->kind[n - 2] = 0;
	}
	if (fl_json_field(ev->line, ev->len, "data", &v, &n) == 0 && n && *v == '{')
		ev->data = v, ev->dlen = n;
	return 1;
}

void fl_sessread_close(struct fl_sessread *r)
{
	if (!r)
		return;
	for (int i = 0; i < 2; i++) {
		fl_segread_close(r->c[i].rd);
		free(r->c[i].segs);
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
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
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
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case '"': case '\\': case '/': out[o++] = (uint8_t)s[i]; break;
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
		int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
			: c == '+' ? 62 : c == '/' ? 63 : c == '=' ? -2 : -1;
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
