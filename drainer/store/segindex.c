/* SPDX-License-Identifier: MIT */
/* segindex.c: reads session.json's segment list and decides which segments a time range can skip; parses time
 * arguments. */
#define _GNU_SOURCE
#include "jsonl.h"
#include "segindex.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "config.h"
#include "grow.h"
#include "manifest.h"
#include "segread.h"

/* The end of the JSON value starting at p (object, array, string or scalar), or NULL when it does not end. */
static const char *value_end(const char *p, const char *e)
{
	int depth = 0;
	for (; p < e; p++) {
		if (*p == '"') {
			for (p++; p < e && *p != '"'; p++)
				if (*p == '\\')
					p++;
			if (p >= e)
				return NULL;
			if (!depth)
				return p + 1;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			if (--depth < 0)
				return p; /* a scalar ended by its container */
			if (!depth)
				return p + 1;
		} else if (!depth && (*p == ',' || isspace((unsigned char)*p))) {
			return p;
		}
	}
	return depth ? NULL : p;
}

/* The next object in an array's body [*p, e): 1 with [*o, *o + *olen), 0 at the end, -EBADMSG for a non-object. */
static int next_object(const char **p, const char *e, const char **o, size_t *olen)
{
	const char *q = *p;
	while (q < e && (isspace((unsigned char)*q) || *q == ','))
		q++;
	if (q >= e)
		return 0;
	const char *end = value_end(q, e);
	if (!end || *q != '{')
		return -EBADMSG;
	*o = q;
	*olen = (size_t)(end - q);
	*p = end;
	return 1;
}

/* a number, or a decimal string as the 64-bit times are (fl_manifest_u64) */
static int num_field(const char *o, size_t len, const char *key, uint64_t *out)
{
	*out = 0;
	return fl_manifest_u64(o, len, key, out) < 0 ? -1 : 0;
}

int fl_segindex_load(int dirfd, struct fl_segindex *idx)
{
	memset(idx, 0, sizeof *idx);
	char *buf;
	size_t got;
	int lrc = fl_manifest_load(dirfd, &buf, &got);
	if (lrc < 0 || !buf)
		return lrc;
	const char *arr;
	size_t alen;
	int rc = 0;
	if (fl_json_field(buf, got, "segments", &arr, &alen) < 0 || alen < 2 || arr[0] != '[')
		goto out; /* a manifest without segments: nothing to skip by */
	const char *p = arr + 1, *e = arr + alen - 1, *o;
	size_t cap = 0, olen;
	while ((rc = next_object(&p, e, &o, &olen)) > 0) {
		struct fl_segindex_ent *nv = fl_grow(idx->v, &cap, idx->n, sizeof *nv, 32);
		if (!nv) {
			rc = -ENOMEM;
			break;
		}
		idx->v = nv;
		struct fl_segindex_ent *s = &idx->v[idx->n];
		memset(s, 0, sizeof *s);
		uint64_t a, b;
		const char *cv;
		size_t cl;
		if (num_field(o, olen, "n", &s->n) == 0 && fl_json_field(o, olen, "class", &cv, &cl) == 0 && cl >= 3 &&
		    cl - 2 < sizeof s->cls) {
			memcpy(s->cls, cv + 1, cl - 2);
			num_field(o, olen, "first_seq", &s->first_seq);
			num_field(o, olen, "last_seq", &s->last_seq);
			/* the smallest and largest ts in the segment when listed, else its first and last line's */
			if (num_field(o, olen, "min_ts_ns", &a) < 0)
				num_field(o, olen, "first_ts_ns", &a);
			if (num_field(o, olen, "max_ts_ns", &b) < 0)
				num_field(o, olen, "last_ts_ns", &b);
			s->first_ts = (int64_t)a;
			s->last_ts = (int64_t)b;
			idx->n++;
		}
	}
out:
	free(buf);
	if (rc < 0)
		fl_segindex_free(idx);
	return rc;
}

void fl_segindex_free(struct fl_segindex *idx)
{
	free(idx->v);
	idx->v = NULL;
	idx->n = 0;
}

int fl_segindex_skip(const struct fl_segindex *idx, const char *cls, uint64_t n, int64_t since, int64_t until)
{
	for (size_t i = 0; i < idx->n; i++) {
		const struct fl_segindex_ent *s = &idx->v[i];
		if (s->n != n || strcmp(s->cls, cls))
			continue;
		if (!s->first_ts || !s->last_ts)
			return 0; /* times not known: read it */
		return s->last_ts < since || s->first_ts > until;
	}
	return 0;
}

/* Appends n bytes to a growing buffer; -ENOMEM leaves it as it was. */
static int put(char **b, size_t *len, size_t *cap, const char *p, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t nc = (*len + n + 1) * 2;
		char *nb = realloc(*b, nc);
		if (!nb)
			return -ENOMEM;
		*b = nb;
		*cap = nc;
	}
	memcpy(*b + *len, p, n);
	*len += n;
	(*b)[*len] = 0;
	return 0;
}

/* Replaces the first `from` in the element text [p, p+n) while copying it out. */
static int put_replaced(char **b, size_t *len, size_t *cap, const char *p, size_t n, const char *from, const char *to)
{
	const char *hit = memmem(p, n, from, strlen(from));
	if (!hit)
		return put(b, len, cap, p, n);
	int rc = put(b, len, cap, p, (size_t)(hit - p));
	rc = rc ? rc : put(b, len, cap, to, strlen(to));
	size_t skip = (size_t)(hit - p) + strlen(from);
	return rc ? rc : put(b, len, cap, hit + strlen(from), n - skip);
}

/* A growing copy of session.json with its segment list brought up to date. */
struct rebuilt {
	char *b;
	size_t len, cap;
	int first;   /* no entry kept yet: the next one needs no comma */
	int changed; /* an entry was dropped or rewritten */
};

/* The entry archived after the drainer last wrote the list: its file, state and compressed size updated. */
static int put_archived(struct rebuilt *r, const char *o, size_t n, const char *plain, const char *lz4, off_t size)
{
	char from[FL_SEG_NAME_MAX + 16], to[FL_SEG_NAME_MAX + 16], comp[40];
	snprintf(from, sizeof from, "\"file\":\"%s\"", plain);
	snprintf(to, sizeof to, "\"file\":\"%s\"", lz4);
	snprintf(comp, sizeof comp, "\"compressed\":%lld", (long long)size);
	char *tmp = NULL, *tmp2 = NULL;
	size_t tl = 0, tc = 0, t2l = 0, t2c = 0;
	int rc = put_replaced(&tmp, &tl, &tc, o, n, from, to);
	rc = rc ? rc : put_replaced(&tmp2, &t2l, &t2c, tmp, tl, "\"state\":\"closed\"", "\"state\":\"archived\"");
	rc = rc ? rc : put_replaced(&r->b, &r->len, &r->cap, tmp2, t2l, "\"compressed\":null", comp);
	free(tmp);
	free(tmp2);
	r->changed = 1;
	return rc;
}

/* One entry of the list against the directory: dropped when retention removed it, rewritten when archived. */
static int refresh_entry(int dirfd, struct rebuilt *r, const char *o, size_t n)
{
	uint64_t num;
	const char *cv;
	size_t cl;
	char cls[16] = "";
	if (num_field(o, n, "n", &num) == 0 && fl_json_field(o, n, "class", &cv, &cl) == 0 && cl >= 3 &&
	    cl - 2 < sizeof cls)
		memcpy(cls, cv + 1, cl - 2);
	char plain[FL_SEG_NAME_MAX], lz4[FL_SEG_NAME_MAX];
	struct stat ps, ls;
	int have_plain = 0, have_lz4 = 0;
	if (cls[0] && fl_seg_name(plain, sizeof plain, cls, num, FL_SEG_PLAIN) == 0 &&
	    fl_seg_name(lz4, sizeof lz4, cls, num, FL_SEG_LZ4) == 0) {
		have_plain = fstatat(dirfd, plain, &ps, AT_SYMLINK_NOFOLLOW) == 0;
		have_lz4 = fstatat(dirfd, lz4, &ls, AT_SYMLINK_NOFOLLOW) == 0;
	} else {
		have_plain = 1; /* an entry we cannot read: keep it as it is */
	}
	if (!have_plain && !have_lz4) {
		r->changed = 1; /* removed by retention */
		return 0;
	}
	int rc = r->first ? 0 : put(&r->b, &r->len, &r->cap, ",", 1);
	r->first = 0;
	if (rc)
		return rc;
	if (!have_plain && !memmem(o, n, "\"state\":\"archived\"", 18))
		return put_archived(r, o, n, plain, lz4, ls.st_size);
	return put(&r->b, &r->len, &r->cap, o, n);
}

int fl_segindex_refresh(int dirfd)
{
	char *buf;
	size_t got;
	int rc = fl_manifest_load(dirfd, &buf, &got);
	if (rc < 0 || !buf)
		return rc;
	struct rebuilt r = {.first = 1};
	const char *arr, *o;
	size_t alen, olen;
	if (fl_json_field(buf, got, "segments", &arr, &alen) < 0 || alen < 2 || arr[0] != '[')
		goto done;
	rc = put(&r.b, &r.len, &r.cap, buf, (size_t)(arr - buf) + 1);
	const char *p = arr + 1, *e = arr + alen - 1;
	int more;
	while (!rc && (more = next_object(&p, e, &o, &olen)) != 0) {
		if (more < 0) {
			r.changed = 0; /* not ours to fix: leave the file alone */
			goto done;
		}
		rc = refresh_entry(dirfd, &r, o, olen);
	}
	if (!rc)
		rc = put(&r.b, &r.len, &r.cap, arr + alen - 1, got - (size_t)(arr + alen - 1 - buf));
	if (!rc && r.changed)
		rc = fl_manifest_rewrite(dirfd, r.b, r.len);
done:
	free(buf);
	free(r.b);
	return rc < 0 ? rc : r.changed;
}

int fl_time_arg_parse(const char *s, int64_t now_ns, int64_t *out_ns)
{
	if (!s || !*s)
		return -EINVAL;
	size_t len = strlen(s);
	if (s[0] == '@') {
		char *end;
		errno = 0;
		double v = strtod(s + 1, &end);
		if (errno || *end || end == s + 1 || v < 0 || v > 9.2e9)
			return -EINVAL;
		*out_ns = (int64_t)(v * 1e9);
		return 0;
	}
	/* a duration before now: digits then one unit */
	if (isdigit((unsigned char)s[0]) && len >= 2 && strchr("smhdw", s[len - 1]) && !strchr(s, '-')) {
		uint64_t secs;
		if (fl_parse_duration(s, &secs) < 0 || secs > (uint64_t)(now_ns / 1000000000ll))
			return -EINVAL;
		*out_ns = now_ns - (int64_t)secs * 1000000000ll;
		return 0;
	}
	/* ISO 8601: normalize to "YYYY-MM-DDTHH:MM:SS[.f]Z" and apply the offset */
	char buf[64];
	int64_t off_s = 0;
	if (len == 10) {
		if (len + 10 >= sizeof buf)
			return -EINVAL;
		memcpy(buf, s, 10);
		memcpy(buf + 10, "T00:00:00Z", 11);
	} else {
		if (len < 19 || len >= sizeof buf - 2)
			return -EINVAL;
		memcpy(buf, s, len + 1);
		if (buf[10] == ' ')
			buf[10] = 'T';
		size_t z = len;
		if (buf[len - 1] == 'Z' || buf[len - 1] == 'z') {
			z = len - 1;
		} else if (len >= 25 && (buf[len - 6] == '+' || buf[len - 6] == '-') && buf[len - 3] == ':') {
			int hh, mm;
			if (!isdigit((unsigned char)buf[len - 5]) || !isdigit((unsigned char)buf[len - 4]) ||
			    !isdigit((unsigned char)buf[len - 2]) || !isdigit((unsigned char)buf[len - 1]))
				return -EINVAL;
			hh = (buf[len - 5] - '0') * 10 + buf[len - 4] - '0';
			mm = (buf[len - 2] - '0') * 10 + buf[len - 1] - '0';
			if (hh > 23 || mm > 59)
				return -EINVAL;
			off_s = (hh * 3600 + mm * 60) * (buf[len - 6] == '+' ? 1 : -1);
			z = len - 6;
		}
		buf[z] = 'Z';
		buf[z + 1] = 0;
		len = z + 1;
	}
	uint64_t ns;
	if (fl_ts_parse(buf, strlen(buf), &ns) < 0)
		return -EINVAL;
	*out_ns = (int64_t)ns - off_s * 1000000000ll;
	return 0;
}
