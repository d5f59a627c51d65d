/* SPDX-License-Identifier: MIT */
/* json_check.h: a strict RFC 8259 + UTF-8 validator for one JSON line, used by the fuzzers to judge rendered output. */
#ifndef FL_JSON_CHECK_H
#define FL_JSON_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * Strict means: no NaN/Infinity, no leading zeros, no raw control characters
 * in strings, only the escapes JSON defines, \u surrogates paired, and every
 * byte of a string well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
 * Nesting is bounded so a hostile input cannot exhaust the stack.
 */
struct jc {
	const uint8_t *p, *end;
	int depth;
};

#define JC_MAX_DEPTH 64

static int jc_value(struct jc *c);

static void jc_ws(struct jc *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static int jc_lit(struct jc *c, const char *w)
{
	for (; *w; w++, c->p++)
		if (c->p >= c->end || *c->p != (uint8_t)*w)
			return -1;
	return 0;
}

static int jc_hex4(struct jc *c, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++, c->p++) {
		if (c->p >= c->end)
			return -1;
		uint8_t h = *c->p;
		v <<= 4;
		if (h >= '0' && h <= '9')
			v |= h - '0';
		else if (h >= 'a' && h <= 'f')
			v |= h - 'a' + 10;
		else if (h >= 'A' && h <= 'F')
			v |= h - 'A' + 10;
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* One UTF-8 sequence starting at c->p (first byte >= 0x80). */
static int jc_utf8(struct jc *c)
{
	uint8_t b = *c->p;
	int n;
	uint32_t cp, min;
	if (b >= 0xc2 && b <= 0xdf)
		n = 1, cp = b & 0x1f, min = 0x80;
	else if (b >= 0xe0 && b <= 0xef)
		n = 2, cp = b & 0x0f, min = 0x800;
	else if (b >= 0xf0 && b <= 0xf4)
		n = 3, cp = b & 0x07, min = 0x10000;
	else
		return -1;
	if (c->end - c->p <= n)
		return -1;
	for (int i = 1; i <= n; i++) {
		uint8_t k = c->p[i];
		if ((k & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (k & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	c->p += n + 1;
	return 0;
}

static int jc_string(struct jc *c)
{
	c->p++; /* opening quote */
	while (c->p < c->end) {
		uint8_t b = *c->p;
		if (b == '"') {
			c->p++;
			return 0;
		}
		if (b < 0x20)
			return -1;
		if (b >= 0x80) {
			if (jc_utf8(c) < 0)
				return -1;
			continue;
		}
		if (b != '\\') {
			c->p++;
			continue;
		}
		if (++c->p >= c->end)
			return -1;
		b = *c->p++;
		if (b == 'u') {
			unsigned u, lo;
			if (jc_hex4(c, &u) < 0)
				return -1;
			if (u >= 0xdc00 && u <= 0xdfff)
				return -1; /* lone low surrogate */
			if (u >= 0xd800 && u <= 0xdbff) {
				if (jc_lit(c, "\\u") < 0 || jc_hex4(c, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
					return -1;
			}
		} else if (!b || !strchr("\"\\/bfnrt", b)) {
			return -1;
		}
	}
	return -1;
}

static int jc_digits(struct jc *c)
{
	const uint8_t *s = c->p;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
		c->p++;
	return c->p > s ? 0 : -1;
}

static int jc_number(struct jc *c)
{
	if (*c->p == '-')
		c->p++;
	if (c->p >= c->end)
		return -1;
	if (*c->p == '0')
		c->p++;
	else if (jc_digits(c) < 0)
		return -1;
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (jc_digits(c) < 0)
			return -1;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (jc_digits(c) < 0)
			return -1;
	}
	return 0;
}

static int jc_container(struct jc *c, uint8_t close, int object)
{
	if (++c->depth > JC_MAX_DEPTH)
		return -1;
	c->p++;
	jc_ws(c);
	if (c->p < c->end && *c->p == close) {
		c->p++;
		c->depth--;
		return 0;
	}
	for (;;) {
		jc_ws(c);
		if (object) {
			if (c->p >= c->end || *c->p != '"' || jc_string(c) < 0)
				return -1;
			jc_ws(c);
			if (c->p >= c->end || *c->p++ != ':')
				return -1;
		}
		if (jc_value(c) < 0)
			return -1;
		jc_ws(c);
		if (c->p >= c->end)
			return -1;
		uint8_t b = *c->p++;
		if (b == close)
			break;
		if (b != ',')
			return -1;
	}
	c->depth--;
	return 0;
}

static int jc_value(struct jc *c)
{
	jc_ws(c);
	if (c->p >= c->end)
		return -1;
	switch (*c->p) {
	case '{':
		return jc_container(c, '}', 1);
	case '[':
		return jc_container(c, ']', 0);
	case '"':
		return jc_string(c);
	case 't':
		return jc_lit(c, "true");
	case 'f':
		return jc_lit(c, "false");
	case 'n':
		return jc_lit(c, "null");
	default:
		if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9'))
			return jc_number(c);
		return -1;
	}
}

/*
 * 0 when [s, s+len) is exactly one JSON object followed by one '\n' (a JSON
 * line as the drainer writes it), else -1 with *at set to the offending offset.
 */
static inline int fl_json_line_check(const char *s, size_t len, size_t *at)
{
	struct jc c = {(const uint8_t *)s, (const uint8_t *)s + len, 0};
	int rc = -1;
	if (len >= 2 && s[0] == '{' && s[len - 1] == '\n') {
		c.end--; /* the newline ends the line and may not appear inside it */
		if (jc_container(&c, '}', 1) == 0 && c.p == c.end && !memchr(s, '\n', len - 1))
			rc = 0;
	}
	if (at)
		*at = (size_t)(c.p - (const uint8_t *)s);
	return rc;
}

#endif
