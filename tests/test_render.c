/* SPDX-License-Identifier: MIT */
/* test_render.c: fl_jsonl_render and fl_event_decode against plain reference code, on many random events. */
#define _GNU_SOURCE
#include "fl_test.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decode.h"
#include "jsonl.h"

/* ---- the reference: byte by byte, straight from docs/schema.md ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return rng;
}

/* RFC 3629 by code points: a decoder, not the renderer's table of byte ranges */
static int ref_utf8(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint32_t c = s[i], need, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0)
			need = 1, min = 0x80, c &= 0x1f;
		else if ((c & 0xf0) == 0xe0)
			need = 2, min = 0x800, c &= 0x0f;
		else if ((c & 0xf8) == 0xf0)
			need = 3, min = 0x10000, c &= 0x07;
		else
			return 0;
		if (i + need >= n)
			return 0;
		for (uint32_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			c = c << 6 | (s[i + k] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

static size_t ref_b64(const uint8_t *s, size_t n, char *o)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t k = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v =
		    (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
		o[k++] = a[v >> 18];
		o[k++] = a[v >> 12 & 63];
		o[k++] = i + 1 < n ? a[v >> 6 & 63] : '=';
		o[k++] = i + 2 < n ? a[v & 63] : '=';
	}
	return k;
}

/* ,"key":"escaped" or ,"key_b64":"base64" */
static size_t ref_text(char *o, const char *key, const uint8_t *s, size_t n)
{
	size_t k = 0;
	if (!ref_utf8(s, n)) {
		k += (size_t)sprintf(o, ",\"%s_b64\":\"", key);
		k += ref_b64(s, n, o + k);
		o[k++] = '"';
		return k;
	}
	k += (size_t)sprintf(o, ",\"%s\":\"", key);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		const char *e = c == '"'    ? "\\\""
				: c == '\\' ? "\\\\"
				: c == '\b' ? "\\b"
				: c == '\f' ? "\\f"
				: c == '\n' ? "\\n"
				: c == '\r' ? "\\r"
				: c == '\t' ? "\\t"
					    : NULL;
		if (e)
			k += (size_t)sprintf(o + k, "%s", e);
		else if (c < 0x20)
			k += (size_t)sprintf(o + k, "\\u%04x", c);
		else
			o[k++] = (char)c;
	}
	o[k++] = '"';
	return k;
}

/* The whole line of a transcript event of session sid with seq. */
static size_t ref_line(char *o, const Fugue__Event *ev, const char *sid, uint64_t seq)
{
	uint64_t ns = ev->ts_ns > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : ev->ts_ns;
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t k = (size_t)sprintf(
	    o, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09uZ\",\"ts_ns\":\"%" PRIu64 "\",\"seq\":%" PRIu64,
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    (unsigned)(ns % 1000000000u), ns, seq);
	k += ref_text(o + k, "session", (const uint8_t *)sid, strlen(sid));
	k += (size_t)sprintf(o + k,
			     ",\"class\":\"system\",\"event\":\"transcript\",\"level\":\"full\",\"pid\":%" PRIu32
			     ",\"tid\":%" PRIu32 ",\"id\":\"%" PRIu64 "\",\"ref\":\"%" PRIu64
			     "\",\"data\":{\"stream\":%" PRIu32,
			     ev->pid, ev->tid, ev->id, ev->ref, ev->transcript->stream);
	k += ref_text(o + k, "data", ev->transcript->data.data, ev->transcript->data.len);
	k += (size_t)sprintf(o + k, "}}\n");
	return k;
}

/* ---- random events ---- */

/* Terminal-like bytes: printable runs, ESC sequences, CR LF, quotes, UTF-8, and now and then an invalid byte. */
static size_t random_bytes(uint8_t *p, size_t n, int invalid)
{
	static const char *const pieces[] = {
	    "\033[32m",		"\033[0m", "\r\n", "\"", "\\", "\t",   "\xc3\xa9", "\xe2\x94\x80",
	    "\xf0\x9f\x98\x80", "\x7f",	   "\x01", "\b", "\f", "\x1f", " "};
	size_t k = 0;
	while (k < n) {
		uint64_t r = next();
		if (r % 4) {
			size_t run = 1 + r / 4 % 70;
			for (size_t i = 0; i < run && k < n; i++)
				p[k++] = (uint8_t)(0x20 + (next() % 95));
		} else {
			const char *s = pieces[r / 4 % (sizeof pieces / sizeof *pieces)];
			size_t l = strlen(s);
			if (k + l > n)
				break;
			memcpy(p + k, s, l);
			k += l;
		}
		if (invalid && next() % 200 == 0)
			p[k - 1] = (uint8_t)(0x80 + next() % 0x80); /* a stray or cut sequence */
	}
	return k;
}

static uint64_t random_u64(void)
{
	uint64_t v = next();
	unsigned bits = (unsigned)(next() % 65);
	return bits == 64 ? v : v & ((1ull << bits) - 1);
}

/* Every transcript line the renderer writes equals the reference's, byte for byte. */
static void test_render_matches_reference(void **state)
{
	(void)state;
	struct fl_jbuf b = {0};
	struct fl_tsfmt tc = {0};
	static uint8_t data[9000];
	static char want[9000 * 6 + 1024];
	static const char *const sids[] = {"s", "0193a7b2-5c1e-7d3a-9f00-1234567890ab", "a.b_c-d", "x"};
	uint64_t seq = 1, ts = 1795624926491496632ull;
	for (int i = 0; i < 20000; i++) {
		Fugue__Event ev = FUGUE__EVENT__INIT;
		Fugue__Transcript t = FUGUE__TRANSCRIPT__INIT;
		/* sequential seq and time mostly (the cached digits), with jumps and carries */
		uint64_t r = next();
		if (r % 50 == 0)
			seq = random_u64();
		else if (r % 50 == 1)
			seq = (next() % 2 ? 9999999 : 99) + (next() % 2);
		else
			seq++;
		ts += r % 7 == 0 ? random_u64() % 4000000000ull : r % 1000;
		ev.ts_ns = r % 997 == 0 ? random_u64() : ts;
		ev.id = r % 3 ? (((uint64_t)i + 1) << 6 | (r % 4)) : random_u64();
		ev.ref = r % 5 ? 0 : random_u64();
		ev.pid = (uint32_t)(r % 11 ? 4242 : random_u64());
		ev.tid = (uint32_t)(r % 13 ? 4243 : random_u64());
		ev.body_case = FUGUE__EVENT__BODY_TRANSCRIPT;
		ev.transcript = &t;
		t.stream = (uint32_t)(r % 17 ? 1 : random_u64());
		size_t n = next() % 8 == 0 ? next() % 9000 : next() % 300;
		size_t off = next() % 64; /* every alignment */
		if (off + n > sizeof data)
			n = sizeof data - off;
		n = random_bytes(data + off, n, next() % 3 == 0);
		t.data.data = n ? data + off : NULL;
		t.data.len = n;
		const char *sid = sids[next() % 4 == 0 ? next() % 4 : 0];
		size_t wn = ref_line(want, &ev, sid, seq);
		b.len = 0;
		assert_int_equal(fl_jbuf_reserve(&b, 16), 0);
		b.len = (size_t)(next() % 3) * 7; /* appended after whatever the buffer holds */
		size_t at = b.len;
		assert_int_equal(fl_jsonl_render(&b, &tc, &ev, sid, seq), 0);
		if (b.len - at != wn || memcmp(b.p + at, want, wn)) {
			fprintf(stderr, "event %d: got  %.*s\n         want %.*s\n", i, (int)(b.len - at), b.p + at,
				(int)wn, want);
			fail();
		}
	}
	fl_jbuf_free(&b);
}

/* Encodes a transcript record as the producer does: ts, id, ref, pid, tid, then the body; fields at 0 left out. */
static size_t put_varint(uint8_t *o, uint64_t v)
{
	size_t k = 0;
	while (v >= 0x80)
		o[k++] = (uint8_t)(v | 0x80), v >>= 7;
	o[k++] = (uint8_t)v;
	return k;
}

/* A bump allocator reset per record, as the drainer's arena: the decoder allocates before it knows whether it
 * takes the record */
static _Alignas(16) uint8_t pool[1 << 16];
static size_t pool_used;

static void *pool_alloc(void *d, size_t n)
{
	(void)d;
	n = (n + 15) & ~(size_t)15;
	if (n > sizeof pool - pool_used)
		return NULL;
	pool_used += n;
	return pool + pool_used - n;
}

static void pool_free(void *d, void *p)
{
	(void)d, (void)p;
}

static ProtobufCAllocator arena = {pool_alloc, pool_free, NULL};

/* The bytes-body fast path of the decoder gives what protobuf-c gives, for the plain form and its variants. */
static void test_decode_bytes_bodies(void **state)
{
	(void)state;
	static uint8_t rec[4096], data[3000];
	int taken = 0;
	for (int i = 0; i < 5000; i++) {
		uint64_t r = next();
		int field = 13 + (int)(r % 3); /* prompt, transcript, input */
		size_t n = next() % 5 == 0 ? 0 : next() % sizeof data;
		for (size_t k = 0; k < n; k++)
			data[k] = (uint8_t)next();
		uint8_t body[3100];
		size_t bl = 0;
		uint64_t stream = next() % 4 == 0 ? random_u64() : next() % 3;
		int skew =
		    (int)(next() % 8); /* 0: plain form; else a variant the fast path must leave alone or get right */
		if (field == 14 && (stream || skew == 1)) {
			body[bl++] = 1 << 3;
			bl += put_varint(body + bl, stream);
		}
		if (n || skew == 2) {
			body[bl++] = (uint8_t)((field == 14 ? 2 : 1) << 3 | 2);
			bl += put_varint(body + bl, n);
			memcpy(body + bl, data, n);
			bl += n;
		}
		if (field == 14 && skew == 3) { /* stream after data: another order */
			body[bl++] = 1 << 3;
			bl += put_varint(body + bl, 7);
		}
		if (skew == 4) { /* an unknown field */
			body[bl++] = 9 << 3;
			body[bl++] = 1;
		}
		size_t k = 0;
		rec[k++] = 1 << 3 | 1;
		uint64_t ts = next();
		memcpy(rec + k, &ts, 8);
		k += 8;
		uint64_t id = next() >> (next() % 64), pid = next() % 100000;
		rec[k++] = 2 << 3;
		k += put_varint(rec + k, id);
		rec[k++] = 4 << 3;
		k += put_varint(rec + k, pid);
		rec[k++] = (uint8_t)(field << 3 | 2);
		k += put_varint(rec + k, bl + (skew == 5)); /* 5: the body claims one byte more than there is */
		memcpy(rec + k, body, bl);
		k += bl;
		if (skew == 6) /* a field after the body */
			rec[k++] = 5 << 3, rec[k++] = 3;
		Fugue__Event *ref = fugue__event__unpack(NULL, k, rec);
		Fugue__Event *got = NULL;
		pool_used = 0;
		int rc = fl_event_decode(rec, k, &arena, &got);
		if (rc == 0 || !ref) {
			/* not taken: protobuf-c decides; never taken where protobuf-c refuses */
			assert_true(rc == 0 || ref);
			if (ref)
				fugue__event__free_unpacked(ref, NULL);
			continue;
		}
		assert_int_equal(rc, 1);
		taken++;
		assert_int_equal(got->body_case, ref->body_case);
		assert_true(got->ts_ns == ref->ts_ns && got->id == ref->id && got->pid == ref->pid &&
			    got->tid == ref->tid);
		const ProtobufCBinaryData *gd, *rd;
		if (field == 14) {
			assert_int_equal(got->transcript->stream, ref->transcript->stream);
			gd = &got->transcript->data, rd = &ref->transcript->data;
		} else if (field == 15)
			gd = &got->input->data, rd = &ref->input->data;
		else
			gd = &got->prompt->text, rd = &ref->prompt->text;
		assert_int_equal(gd->len, rd->len);
		if (gd->len)
			assert_memory_equal(gd->data, rd->data, gd->len);
		fugue__event__free_unpacked(ref, NULL);
	}
	assert_true(taken > 2000); /* the plain form and the harmless variants, most of the 5000 */
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_render_matches_reference),
    cmocka_unit_test(test_decode_bytes_bodies),
};

FL_TEST_MAIN("render", tests)
