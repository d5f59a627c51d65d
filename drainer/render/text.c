/* SPDX-License-Identifier: MIT */
/* text.c: the human one-line rendering of an event; pure (no I/O), for fugue-log cat --output text. */
#define _GNU_SOURCE
#include "text.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "jsonl.h"

struct out {
	char *p;
	size_t cap, n;
};

static void put(struct out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n && o->n + 1 < o->cap; i++)
		o->p[o->n++] = s[i];
	if (o->cap)
		o->p[o->n] = 0;
}

size_t fl_text_line(char *out, size_t cap, uint64_t ts_ns, const char *kind, const uint8_t *s, size_t slen)
{
	struct out o = {out, cap, 0};
	time_t t = (time_t)(ts_ns / 1000000000ull);
	struct tm tm;
	char head[96];
	localtime_r(&t, &tm);
	size_t h = strftime(head, sizeof head, "%b %d %H:%M:%S", &tm);
	h += (size_t)snprintf(head + h, sizeof head - h, ".%03u %-10s ", (unsigned)(ts_ns / 1000000 % 1000), kind);
	put(&o, head, h < sizeof head ? h : sizeof head - 1);
	size_t shown = 0;
	for (size_t i = 0; i < slen; i++) {
		if (shown >= FL_TEXT_SUMMARY_MAX) {
			put(&o, "...", 3);
			break;
		}
		char e[8];
		uint8_t c = s[i];
		size_t k = 1;
		while (k < 4 && i + k < slen && (s[i + k] & 0xc0) == 0x80)
			k++;
		if (c >= 0x80 && k > 1 && fl_utf8_valid(s + i, k)) {
			put(&o, (const char *)s + i, k);
			i += k - 1;
		} else if (c == '\n' || c == '\r' || c == '\t' || c == 0x1b) {
			e[0] = '\\', e[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : 'e';
			put(&o, e, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			snprintf(e, sizeof e, "\\x%02x", c);
			put(&o, e, 4);
		} else {
			put(&o, (const char *)&c, 1);
		}
		shown++;
	}
	put(&o, "\n", 1);
	return o.n;
}
