/* SPDX-License-Identifier: MIT */
/* jsonl.c: one decoded Event to one JSON line, with reversible escaping of text and bytes. */
#define _GNU_SOURCE
#include "jsonl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "fuguelog.h"

int fl_jbuf_reserve(struct fl_jbuf *b, size_t more)
{
	if (b->cap - b->len >= more)
		return 0;
	if (more > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < more)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

void fl_jbuf_free(struct fl_jbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* ---- small writers; the caller reserved the room ---------------------------------- */

static inline char *put(char *o, const char *s, size_t n)
{
	memcpy(o, s, n);
	return o + n;
}

#define PUTS(o, lit) put((o), (lit), sizeof(lit) - 1)

/* Decimal digits, two per step from a table: numbers are most of a small event's line. */
static char *put_u64(char *o, uint64_t v)
{
	static const char pairs[201] =
	    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	    "8081828384858687888990919293949596979899";
	char tmp[20];
	int n = 20;
	while (v >= 100) {
		unsigned r = (unsigned)(v % 100);
		v /= 100;
		tmp[--n] = pairs[2 * r + 1];
		tmp[--n] = pairs[2 * r];
	}
	if (v >= 10) {
		tmp[--n] = pairs[2 * v + 1];
		tmp[--n] = pairs[2 * v];
	} else
		tmp[--n] = (char)('0' + v);
	memcpy(o, tmp + n, (size_t)(20 - n));
	return o + (20 - n);
}

static char *put_i64(char *o, int64_t v)
{
	if (v < 0) {
		*o++ = '-';
		return put_u64(o, (uint64_t)0 - (uint64_t)v);
	}
	return put_u64(o, (uint64_t)v);
}

static void two(char *o, int v)
{
	o[0] = (char)('0' + v / 10);
	o[1] = (char)('0' + v % 10);
}

size_t fl_jsonl_time(struct fl_tsfmt *tc, uint64_t ns, char *out)
{
	if (ns > (uint64_t)INT64_MAX)
		ns = (uint64_t)INT64_MAX; /* year 2262: still four digits */
	int64_t sec = (int64_t)(ns / 1000000000u);
	uint32_t frac = (uint32_t)(ns % 1000000000u);
	if (!tc->valid || tc->sec != sec) {
		time_t t = (time_t)sec;
		struct tm tm;
		gmtime_r(&t, &tm);
		int y = tm.tm_year + 1900;
		char *o = tc->text;
		o[0] = (char)('0' + y / 1000);
		o[1] = (char)('0' + y / 100 % 10);
		o[2] = (char)('0' + y / 10 % 10);
		o[3] = (char)('0' + y % 10);
		o[4] = '-';
		two(o + 5, tm.tm_mon + 1);
		o[7] = '-';
		two(o + 8, tm.tm_mday);
		o[10] = 'T';
		two(o + 11, tm.tm_hour);
		o[13] = ':';
		two(o + 14, tm.tm_min);
		o[16] = ':';
		two(o + 17, tm.tm_sec);
		o[19] = '.';
		tc->sec = sec;
		tc->valid = 1;
	}
	memcpy(out, tc->text, 20);
	for (int i = 28; i >= 20; i--) {
		out[i] = (char)('0' + frac % 10);
		frac /= 10;
	}
	out[29] = 'Z';
	out[30] = 0;
	return 30;
}

/* ---- UTF-8 and base64 ---------------------------------------------------------------- */

int fl_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		/* eight ASCII bytes at a time: the common case for logs */
		while (i + 8 <= len) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (w & 0x8080808080808080ull)
				break;
			i += 8;
		}
		if (i >= len)
			break;
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint8_t lo = 0x80, hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			else if (c == 0xed)
				hi = 0x9f; /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* above U+10FFFF */
		} else
			return 0;
		if (len - i <= n)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k <= n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		i += n + 1;
	}
	return 1;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t fl_base64(const uint8_t *s, size_t len, char *out)
{
	char *o = out;
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = b64[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)s[i] << 16;
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = '=';
	}
	return (size_t)(o - out);
}

/* The escape of one byte below 0x20, '"' or '\\'. */
static char *put_escape1(char *o, uint8_t c)
{
	static const char hex[] = "0123456789abcdef";
	*o++ = '\\';
	switch (c) {
	case '"':
	case '\\':
		*o++ = (char)c;
		break;
	case '\b':
		*o++ = 'b';
		break;
	case '\t':
		*o++ = 't';
		break;
	case '\n':
		*o++ = 'n';
		break;
	case '\f':
		*o++ = 'f';
		break;
	case '\r':
		*o++ = 'r';
		break;
	default:
		o = PUTS(o, "u00");
		*o++ = hex[c >> 4];
		*o++ = hex[c & 15];
	}
	return o;
}

/*
 * Writes s as the inside of a JSON string (needs 6*len bytes of room) and
 * returns the end; when check is set, s is also validated as UTF-8 on the way,
 * and NULL comes back when it is not valid (what was written is garbage then).
 * One pass instead of a validation pass and an escaping pass: ASCII (terminal
 * output, mostly) is proven valid by the same 16-byte loads that escape it;
 * from the first byte >= 0x80 on, the rest is validated once with
 * fl_utf8_valid (everything before it was ASCII, so it starts a character).
 */
static char *put_escaped_checked(char *o, const uint8_t *s, size_t len, int check)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	size_t i = 0;
#ifdef __SSE2__
	/*
	 * Sixteen bytes at a time: copy them blindly, then keep as many as come
	 * before the first byte that needs escaping, escape it, and go on from
	 * the byte after it.
	 */
	while (i + 16 <= len) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
		_mm_storeu_si128((__m128i *)(void *)o, v);
		if (check && _mm_movemask_epi8(v)) {
			if (!fl_utf8_valid(s + i, len - i))
				return NULL;
			check = 0;
		}
		__m128i low = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
		__m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
		__m128i back = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(low, _mm_or_si128(quote, back)));
		if (!m) {
			o += 16;
			i += 16;
			continue;
		}
		unsigned k = (unsigned)__builtin_ctz(m);
		o = put_escape1(o + k, s[i + k]);
		i += k + 1;
	}
#endif
	if (check && !fl_utf8_valid(s + i, len - i))
		return NULL;
	while (i < len) {
		/* eight bytes at a time while none is below 0x20, '"' or '\\' (exact SWAR tests) */
		while (i + 8 <= len) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
			uint64_t ctl = (w - ones * 0x20) & ~w; /* a byte below 0x20 */
			uint64_t quote = (q - ones) & ~q;      /* a byte equal to '"' */
			uint64_t back = (bs - ones) & ~bs;     /* a byte equal to '\\' */
			if ((ctl | quote | back) & highs)
				break;
			memcpy(o, &w, 8);
			o += 8;
			i += 8;
		}
		if (i >= len)
			break;
		uint8_t c = s[i++];
		if (__builtin_expect(c >= 0x20 && c != '"' && c != '\\', 1))
			*o++ = (char)c;
		else
			o = put_escape1(o, c);
	}
	return o;
}

/* Writes the valid UTF-8 s as the inside of a JSON string; needs 6*len bytes of room. */
static char *put_escaped(char *o, const uint8_t *s, size_t len)
{
	return put_escaped_checked(o, s, len, 0);
}

/* Room a field needs at most: key, quotes, escapes or base64, separators. */
static size_t text_room(size_t keylen, size_t len)
{
	return keylen + 16 + (len > SIZE_MAX / 8 ? SIZE_MAX / 2 : len * 6);
}

/* ,"key":"text" or ,"key_b64":"base64"; first says whether to leave out the comma. */
static int put_text(struct fl_jbuf *b, int first, const char *key, const void *p, size_t len)
{
	size_t klen = strlen(key);
	int rc = fl_jbuf_reserve(b, text_room(klen, len));
	if (rc < 0)
		return rc;
	char *o = b->p + b->len;
	const uint8_t *s = p ? p : (const uint8_t *)"";
	if (!first)
		*o++ = ',';
	*o++ = '"';
	o = put(o, key, klen);
	char *e = put_escaped_checked(PUTS(o, "\":\""), s, len, 1);
	if (e)
		o = e;
	else {
		o = PUTS(o, "_b64\":\"");
		o += fl_base64(s, len, o);
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
	return 0;
}

static int put_cstr(struct fl_jbuf *b, int first, const char *key, const char *s)
{
	return put_text(b, first, key, s, s ? strlen(s) : 0);
}

/*
 * ,"key":["a","b"] when every element is valid UTF-8, else ,"key_b64":[...] with
 * every element base64, so a reader never has to guess which element is which.
 */
static int put_cstr_array(struct fl_jbuf *b, const char *key, char *const *v, size_t n)
{
	size_t klen = strlen(key);
	size_t room = klen + 16;
	int valid = 1;
	for (size_t i = 0; i < n; i++) {
		size_t l = v[i] ? strlen(v[i]) : 0;
		room += text_room(0, l);
		if (valid && v[i])
			valid = fl_utf8_valid((const uint8_t *)v[i], l);
	}
	int rc = fl_jbuf_reserve(b, room);
	if (rc < 0)
		return rc;
	char *o = b->p + b->len;
	*o++ = ',';
	*o++ = '"';
	o = put(o, key, klen);
	o = valid ? PUTS(o, "\":[") : PUTS(o, "_b64\":[");
	for (size_t i = 0; i < n; i++) {
		const uint8_t *s = v[i] ? (const uint8_t *)v[i] : (const uint8_t *)"";
		size_t l = strlen((const char *)s);
		if (i)
			*o++ = ',';
		*o++ = '"';
		o = valid ? put_escaped(o, s, l) : o + fl_base64(s, l, o);
		*o++ = '"';
	}
	*o++ = ']';
	b->len = (size_t)(o - b->p);
	return 0;
}

/*
 * ,"key":number, or ,"key":"number" when quoted: 64-bit fields are decimal
 * strings (protobuf's JSON mapping), because jq 1.6 and JavaScript read JSON
 * numbers as doubles and round anything above 2^53.
 */
static int put_num(struct fl_jbuf *b, const char *key, uint64_t u, int is_signed, int quoted)
{
	size_t klen = strlen(key);
	int rc = fl_jbuf_reserve(b, klen + 32);
	if (rc < 0)
		return rc;
	char *o = b->p + b->len;
	*o++ = ',';
	*o++ = '"';
	o = put(o, key, klen);
	o = quoted ? PUTS(o, "\":\"") : PUTS(o, "\":");
	o = is_signed ? put_i64(o, (int64_t)u) : put_u64(o, u);
	if (quoted)
		*o++ = '"';
	b->len = (size_t)(o - b->p);
	return 0;
}

#define NUM(key, v) put_num(b, (key), (uint64_t)(v), 0, 0)
#define INT(key, v) put_num(b, (key), (uint64_t)(int64_t)(v), 1, 0)
#define U64(key, v) put_num(b, (key), (uint64_t)(v), 0, 1)

static int put_raw(struct fl_jbuf *b, const char *s)
{
	size_t n = strlen(s);
	int rc = fl_jbuf_reserve(b, n);
	if (rc < 0)
		return rc;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

static int put_level_name(struct fl_jbuf *b, const char *key, uint32_t level)
{
	if (level >= FL_LEVEL_SPAWNS && level <= FL_LEVEL_FULL)
		return put_cstr(b, 0, key, fl_level_name((int)level));
	int rc = put_raw(b, ",\"");
	if (!rc)
		rc = put_raw(b, key);
	return rc ? rc : put_raw(b, "\":null");
}

/* The data object of each kind: every field, always, so the schema never depends on values. */
static int put_data(struct fl_jbuf *b, const Fugue__Event *ev)
{
	int rc = 0;
#define T(key, s) (rc = rc ? rc : put_cstr(b, 0, (key), (s)))
#define TB(key, bin) (rc = rc ? rc : put_text(b, 0, (key), (bin).data, (bin).len))
#define N(key, v) (rc = rc ? rc : NUM((key), (v)))
#define I(key, v) (rc = rc ? rc : INT((key), (v)))
#define Q(key, v) (rc = rc ? rc : U64((key), (v)))
	switch (ev->body_case) {
	case FUGUE__EVENT__BODY_SPAWN:
		N("pid", ev->spawn->pid);
		N("ppid", ev->spawn->ppid);
		rc = rc ? rc : put_cstr_array(b, "argv", ev->spawn->argv, ev->spawn->n_argv);
		T("cwd", ev->spawn->cwd);
		break;
	case FUGUE__EVENT__BODY_EXIT:
		I("status", ev->exit->status);
		I("signal", ev->exit->signal);
		Q("duration_ns", ev->exit->duration_ns);
		rc = rc ? rc : put_raw(b, ev->exit->abandoned ? ",\"abandoned\":true" : ",\"abandoned\":false");
		break;
	case FUGUE__EVENT__BODY_ACTION:
		T("action", ev->action->action);
		T("target", ev->action->target);
		T("detail", ev->action->detail);
		break;
	case FUGUE__EVENT__BODY_COMMAND:
		T("name", ev->command->name);
		rc = rc ? rc : put_cstr_array(b, "args", ev->command->args, ev->command->n_args);
		break;
	case FUGUE__EVENT__BODY_COMPLETION:
		T("task", ev->completion->task);
		T("outcome", ev->completion->outcome);
		Q("duration_ns", ev->completion->duration_ns);
		break;
	case FUGUE__EVENT__BODY_ERROR:
		I("code", ev->error->code);
		T("message", ev->error->message);
		T("origin", ev->error->origin);
		break;
	case FUGUE__EVENT__BODY_STATE:
		T("from", ev->state->from);
		T("to", ev->state->to);
		T("reason", ev->state->reason);
		break;
	case FUGUE__EVENT__BODY_PROMPT:
		TB("text", ev->prompt->text);
		break;
	case FUGUE__EVENT__BODY_TRANSCRIPT:
		N("stream", ev->transcript->stream);
		TB("data", ev->transcript->data);
		break;
	case FUGUE__EVENT__BODY_INPUT:
		TB("data", ev->input->data);
		break;
	case FUGUE__EVENT__BODY_LEVEL:
		rc = put_level_name(b, "old", ev->level->old);
		rc = rc ? rc : put_level_name(b, "new", ev->level->new_);
		Q("changes", ev->level->changes);
		break;
	case FUGUE__EVENT__BODY_DROPPED:
		Q("count", ev->dropped->count);
		N("lane", ev->dropped->lane);
		break;
	default:
		return -EINVAL;
	}
#undef T
#undef TB
#undef N
#undef I
#undef Q
	return rc;
}

int fl_jsonl_render(struct fl_jbuf *b, struct fl_tsfmt *tc, const Fugue__Event *ev, const char *session, uint64_t seq)
{
	int kind = (int)ev->body_case - 5;
	const char *name = fl_kind_name(kind);
	/* a set body_case with a NULL message cannot come from unpack, but the renderer is fuzzed directly */
	if (!name || !ev->spawn)
		return -EINVAL;
	size_t start = b->len;
	int cls = fl_kind_class(kind);
	const char *lvl = fl_level_name(fl_kind_min_level(kind));
	int rc = fl_jbuf_reserve(b, 64 + 32);
	if (rc < 0)
		return rc;
	char *o = b->p + b->len;
	o = PUTS(o, "{\"ts\":\"");
	o += fl_jsonl_time(tc, ev->ts_ns, o);
	o = PUTS(o, "\",\"ts_ns\":\"");
	o = put_u64(o, ev->ts_ns > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : ev->ts_ns);
	o = PUTS(o, "\",\"seq\":");
	o = put_u64(o, seq);
	b->len = (size_t)(o - b->p);
	rc = put_cstr(b, 0, "session", session);
	/* the fixed middle of the line in one go: kind and level names are short, numbers at most 20 digits */
	if (!rc)
		rc = fl_jbuf_reserve(b, 256);
	if (!rc) {
		o = b->p + b->len;
		o = cls == FL_CLASS_USER ? PUTS(o, ",\"class\":\"user\",\"event\":\"")
					 : PUTS(o, ",\"class\":\"system\",\"event\":\"");
		o = put(o, name, strlen(name));
		o = PUTS(o, "\",\"level\":\"");
		o = put(o, lvl, strlen(lvl));
		o = PUTS(o, "\",\"pid\":");
		o = put_u64(o, ev->pid);
		o = PUTS(o, ",\"tid\":");
		o = put_u64(o, ev->tid);
		o = PUTS(o, ",\"id\":\"");
		o = put_u64(o, ev->id);
		o = PUTS(o, "\",\"ref\":\"");
		o = put_u64(o, ev->ref);
		o = PUTS(o, "\",\"data\":");
		b->len = (size_t)(o - b->p);
	}
	if (!rc) {
		size_t data_at = b->len;
		rc = put_data(b, ev);
		/* every field was written with a leading comma: the first becomes the brace */
		if (!rc && b->len > data_at)
			b->p[data_at] = '{';
		else if (!rc)
			rc = put_raw(b, "{");
	}
	if (!rc)
		rc = put_raw(b, "}}\n");
	if (rc < 0)
		b->len = start;
	return rc;
}
