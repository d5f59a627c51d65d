/* SPDX-License-Identifier: MIT */
/* jsonl.c: one decoded Event to one JSON line, with reversible escaping of text and bytes. */
#define _GNU_SOURCE
#include "jsonl.h"

#include <ctype.h>
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

/*
 * Exactly eight digits of v < 10^8, leading zeros included, as the eight
 * bytes of a register (the first digit in the low byte): stored once, never
 * stored in pieces and read back wider, which stalls on store forwarding.
 * Split in lanes, not looked up: the two halves of four digits each in 32-bit
 * lanes, their hundreds in 16-bit lanes, their tens in bytes, each step one
 * multiply by a reciprocal that is exact for the lane's range.
 */
static inline uint64_t digits8(uint32_t v)
{
	uint64_t x = v / 10000 | (uint64_t)(v % 10000) << 32;	/* < 10^4 each */
	uint64_t h = (x * 10486 >> 20) & 0x0000007f0000007full; /* x / 100 */
	uint64_t y = h | (x - h * 100) << 16;			/* < 100 each */
	uint64_t t = (y * 103 >> 10) & 0x000f000f000f000full;	/* y / 10 */
	return (t | (y - t * 10) << 8) + 0x3030303030303030ull;
}

static char *put_8(char *o, uint32_t v)
{
	uint64_t d = digits8(v);
	memcpy(o, &d, 8);
	return o + 8;
}

/*
 * The decimal digits of v < 2^32: counted first, then eight digits with
 * their leading zeros made in a register and shifted into place, one store
 * (a loop of divisions cost twice as much for the 6-8 digit ids; digits
 * stored and read back wider stalled on store forwarding). Writes up to 8
 * bytes past the digits, which the callers' room covers.
 */
static char *put_u32(char *o, uint32_t v)
{
	static const uint32_t pow10[10] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000};
	if (v < 10) { /* ref 0, stream 1, small data fields */
		*o = (char)('0' + v);
		return o + 1;
	}
	/* bits * 1233 / 4096 is floor(log10(2^bits)): the count, or one less */
	unsigned n = (unsigned)(32 - __builtin_clz(v)) * 1233 >> 12;
	n += n < 10 && v >= pow10[n];
	if (n > 8) { /* 9 or 10 digits */
		uint32_t hi = v / 100000000;
		if (hi >= 10) {
			o[0] = (char)('0' + hi / 10);
			o[1] = (char)('0' + hi % 10);
		} else
			*o = (char)('0' + hi);
		put_8(o + n - 8, v % 100000000);
		return o + n;
	}
	/* little-endian: the first digit is the low byte; drop the 8 - n leading zeros */
	uint64_t d = digits8(v) >> 8 * (8 - n);
	memcpy(o, &d, 8);
	return o + n;
}

/* Decimal digits: numbers are most of a small event's line, and most of them fit 32 bits. */
static char *put_u64(char *o, uint64_t v)
{
	if (v <= UINT32_MAX)
		return put_u32(o, (uint32_t)v);
	uint64_t hi = v / 100000000;
	uint32_t lo = (uint32_t)(v % 100000000);
	if (hi <= UINT32_MAX)
		o = put_u32(o, (uint32_t)hi);
	else {
		o = put_u32(o, (uint32_t)(hi / 100000000));
		o = put_8(o, (uint32_t)(hi % 100000000));
	}
	return put_8(o, lo);
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

/* The cached text of one second: its date and time, and its decimal digits (the head of ts_ns). */
static void ts_second(struct fl_tsfmt *tc, int64_t sec)
{
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
	tc->secn = (uint8_t)(put_u64(tc->secd, (uint64_t)sec) - tc->secd);
	tc->sec = sec;
	tc->valid = 1;
}

/* The second of ns in tc, and its nine fraction digits: the first, and the other eight as digits8 gives them. */
static inline void ts_parts(struct fl_tsfmt *tc, uint64_t ns, char *f0, uint64_t *f8)
{
	if (ns > (uint64_t)INT64_MAX)
		ns = (uint64_t)INT64_MAX; /* year 2262: still four digits */
	int64_t sec = (int64_t)(ns / 1000000000u);
	uint32_t frac = (uint32_t)(ns % 1000000000u);
	if (!tc->valid || tc->sec != sec)
		ts_second(tc, sec);
	*f0 = (char)('0' + frac / 100000000);
	*f8 = digits8(frac % 100000000);
}

/* "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" from the parts; 30 bytes. */
static inline void put_ts(const struct fl_tsfmt *tc, char f0, uint64_t f8, char *out)
{
	memcpy(out, tc->text, 20);
	out[20] = f0;
	memcpy(out + 21, &f8, 8);
	out[29] = 'Z';
}

size_t fl_jsonl_time(struct fl_tsfmt *tc, uint64_t ns, char *out)
{
	char f0;
	uint64_t f8;
	ts_parts(tc, ns, &f0, &f8);
	put_ts(tc, f0, f8, out);
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

#define HEXD(n) ((n) < 10 ? '0' + (n) : 'a' + (n)-10)
#define U(c) [c] = {'\\', 'u', '0', '0', HEXD((c) >> 4), HEXD((c)&15), 0, 6}
#define S(c, e) [c] = {'\\', (e), 0, 0, 0, 0, 0, 2}

/* The escape of each byte below 0x20, '"' and '\\', its length in the last byte: no branch on which. */
static const char esc8[0x5d][8] = {
    U(0x00),	  U(0x01),	U(0x02), U(0x03),      U(0x04),	     U(0x05),	  U(0x06),	 U(0x07), S(0x08, 'b'),
    S(0x09, 't'), S(0x0a, 'n'), U(0x0b), S(0x0c, 'f'), S(0x0d, 'r'), U(0x0e),	  U(0x0f),	 U(0x10), U(0x11),
    U(0x12),	  U(0x13),	U(0x14), U(0x15),      U(0x16),	     U(0x17),	  U(0x18),	 U(0x19), U(0x1a),
    U(0x1b),	  U(0x1c),	U(0x1d), U(0x1e),      U(0x1f),	     S('"', '"'), S('\\', '\\'),
};

#undef HEXD
#undef U
#undef S

/* The escape of one byte below 0x20, '"' or '\\'; needs 8 bytes of room. */
static inline char *put_escape1(char *o, uint8_t c)
{
	memcpy(o, esc8[c], 8);
	return o + esc8[c][7];
}

#if defined(__SSE2__) && defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FL_ESCAPE_AVX2 1
/* The bytes of v that need escaping (below 0x20, '"', '\\'), one bit each, for CPUs with AVX2. */
__attribute__((target("avx2"))) static inline unsigned esc_mask32(__m256i v)
{
	/* '"' and '\\' by their low nibble; every other entry is a control byte, caught anyway */
	const __m256i quotes = _mm256_setr_epi8(0, 1, '"', 3, 4, 5, 6, 7, 8, 9, 10, 11, '\\', 13, 14, 15, 0, 1, '"', 3,
						4, 5, 6, 7, 8, 9, 10, 11, '\\', 13, 14, 15);
	__m256i low = _mm256_cmpeq_epi8(_mm256_max_epu8(v, _mm256_set1_epi8(0x1f)), _mm256_set1_epi8(0x1f));
	/* pshufb gives 0 for bytes >= 0x80, which never equal it */
	__m256i qb = _mm256_cmpeq_epi8(v, _mm256_shuffle_epi8(quotes, v));
	return (unsigned)_mm256_movemask_epi8(_mm256_or_si256(low, qb));
}
#endif

#ifdef __SSE2__
/* The bytes of v that need escaping (below 0x20, '"', '\\'), one bit each. */
static inline unsigned esc_mask16(__m128i v)
{
	__m128i low = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
	__m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
	__m128i back = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
	return (unsigned)_mm_movemask_epi8(_mm_or_si128(low, _mm_or_si128(quote, back)));
}

/*
 * Sixteen bytes at a time from *pi while 16 are left: copy them blindly, then
 * keep as many as come before the first byte that needs escaping, escape it,
 * and so on; *pi moves. While *check is set, the first block with a byte
 * >= 0x80 has everything from there validated, once (a character may straddle
 * blocks), and clears it; returns NULL for invalid UTF-8.
 */
static char *escape_sse2(char *o, const uint8_t *s, size_t len, size_t *pi, int *check)
{
	size_t i = *pi;
	int chk = *check;
	while (i + 16 <= len) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
		_mm_storeu_si128((__m128i *)(void *)o, v);
		if (chk && _mm_movemask_epi8(v)) {
			if (!fl_utf8_valid(s + i, len - i))
				return NULL;
			chk = 0;
		}
		unsigned m = esc_mask16(v);
		if (!m) {
			o += 16;
			i += 16;
			continue;
		}
		/*
		 * Every escape of the block from the one mask: the clean bytes before
		 * it are in place, and after it the rest of the block is stored again
		 * from s, as long as 16 bytes can be read there; else the loop goes on
		 * from the byte after the escape.
		 */
		unsigned at = 0; /* bytes of the block written */
		for (;;) {
			unsigned k = (unsigned)__builtin_ctz(m);
			o = put_escape1(o + (k - at), s[i + k]);
			at = k + 1;
			m &= m - 1;
			if (i + at + 16 > len)
				break;
			_mm_storeu_si128((__m128i *)(void *)o,
					 _mm_loadu_si128((const __m128i *)(const void *)(s + i + at)));
			if (!m) {
				o += 16 - at;
				at = 16;
				break;
			}
		}
		i += at;
	}
	*pi = i;
	*check = chk;
	return o;
}

/*
 * The last 1..15 bytes from *pi through the same test, from a padded copy:
 * a clean tail (the common case) costs no byte loop and no separate
 * validation. Sets *done and returns the end when the tail was clean;
 * otherwise returns o for the byte loop, or NULL for invalid UTF-8. Clears
 * *check either way: the tail is ASCII or was just validated.
 */
static char *escape_tail_sse2(char *o, const uint8_t *s, size_t len, size_t i, int *check, int *done)
{
	size_t rem = len - i;
	uint8_t pad[16];
	_mm_storeu_si128((__m128i *)(void *)pad, _mm_set1_epi8('a'));
	memcpy(pad, s + i, rem);
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)pad);
	if (*check && _mm_movemask_epi8(v) && !fl_utf8_valid(s + i, rem))
		return NULL;
	*check = 0;
	if (esc_mask16(v))
		return o;
	_mm_storeu_si128((__m128i *)(void *)o, v);
	*done = 1;
	return o + rem;
}
#endif

#ifdef FL_ESCAPE_AVX2
/* Loads and stores of 32 bytes, the casts in one place. */
__attribute__((target("avx2"))) static inline __m256i load32(const uint8_t *p)
{
	return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

__attribute__((target("avx2"))) static inline void store32(char *o, __m256i v)
{
	_mm256_storeu_si256((__m256i *)(void *)o, v);
}

/*
 * Thirty-two bytes at p (a, with m its bytes to escape) escaped into o: stored
 * blindly, then after each escape the rest of them stored again from the byte
 * after it, so clean runs cost no loop. Reads 64 bytes from p, writes up to 32
 * past the end. Halves, not 64-byte blocks: an escape then re-stores one
 * vector, not two (4 KiB of terminal output with 104 escapes, AMD EPYC
 * guest: 388 -> 340 ns, best of 8 interleaved runs).
 */
__attribute__((target("avx2"))) static inline char *escape_half(char *o, const uint8_t *p, __m256i a, unsigned m)
{
	store32(o, a);
	/* byte k of the half goes to ob + k; each escape moves ob on by its length less one */
	char *ob = o;
	while (m) {
		unsigned k = (unsigned)__builtin_ctz(m);
		ob = put_escape1(ob + k, p[k]) - k - 1;
		store32(ob + k + 1, load32(p + k + 1));
		m &= m - 1;
	}
	return ob + 32;
}

/* The n < 128 bytes at s to o in at most two overlapping copies of one fixed size: no call, no loop. */
__attribute__((target("avx2"))) static inline void copy_short(char *o, const uint8_t *s, size_t n)
{
	if (n >= 64) {
		__m256i a = load32(s), b = load32(s + 32), c = load32(s + n - 64), d = load32(s + n - 32);
		store32(o, a);
		store32(o + 32, b);
		store32(o + n - 64, c);
		store32(o + n - 32, d);
	} else if (n >= 32) {
		__m256i a = load32(s), b = load32(s + n - 32);
		store32(o, a);
		store32(o + n - 32, b);
	} else if (n >= 16) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)s);
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(s + n - 16));
		_mm_storeu_si128((__m128i *)(void *)o, a);
		_mm_storeu_si128((__m128i *)(void *)(o + n - 16), b);
	} else if (n >= 8) {
		uint64_t a, b;
		memcpy(&a, s, 8);
		memcpy(&b, s + n - 8, 8);
		memcpy(o, &a, 8);
		memcpy(o + n - 8, &b, 8);
	} else if (n >= 4) {
		uint32_t a, b;
		memcpy(&a, s, 4);
		memcpy(&b, s + n - 4, 4);
		memcpy(o, &a, 4);
		memcpy(o + n - 4, &b, 4);
	} else if (n) {
		char a = (char)s[0], b = (char)s[n / 2], c = (char)s[n - 1];
		o[0] = a;
		o[n / 2] = b;
		o[n - 1] = c;
	}
}

/*
 * The bytes to escape among the n < 128 at p, one bit each (m[0] for bytes
 * 0-63, m[1] for 64-127), from loads in place that overlap rather than go past
 * the end; returns nonzero when one of the bytes is >= 0x80.
 */
__attribute__((target("avx2"))) static inline unsigned tail_mask(const uint8_t *p, size_t n, uint64_t m[2])
{
	m[1] = 0;
	if (n >= 64) {
		__m256i a = load32(p), b = load32(p + 32), c = load32(p + n - 64), d = load32(p + n - 32);
		m[0] = esc_mask32(a) | (uint64_t)esc_mask32(b) << 32;
		/* bit j of the last 64 bytes is byte n - 64 + j: bytes from 64 on are bits from 128 - n on */
		uint64_t e = esc_mask32(c) | (uint64_t)esc_mask32(d) << 32;
		m[1] = n > 64 ? e >> (128 - n) : 0;
		return (unsigned)_mm256_movemask_epi8(_mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d)));
	}
	if (n >= 32) {
		__m256i a = load32(p), c = load32(p + n - 32);
		m[0] = esc_mask32(a) | ((uint64_t)esc_mask32(c) >> (64 - n)) << 32;
		return (unsigned)_mm256_movemask_epi8(_mm256_or_si256(a, c));
	}
	if (n >= 16) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i c = _mm_loadu_si128((const __m128i *)(const void *)(p + n - 16));
		m[0] = esc_mask16(a) | ((uint64_t)esc_mask16(c) >> (32 - n)) << 16;
		return (unsigned)_mm_movemask_epi8(_mm_or_si128(a, c));
	}
	/* a short text from a zeroed copy: a load of what was just stored waits, but only once */
	uint8_t pad[16] = {0};
	copy_short((char *)pad, p, n);
	__m128i a = _mm_loadu_si128((const __m128i *)(const void *)pad);
	m[0] = esc_mask16(a) & ((1u << n) - 1); /* the zeros are not the text's to escape */
	return (unsigned)_mm_movemask_epi8(a);
}

/* The escapes in bits (bytes base to base + 63 of p), each after the clean run before it from *at on. */
__attribute__((target("avx2"))) static inline char *escape_runs(char *o, const uint8_t *p, size_t *at, uint64_t bits,
								unsigned base)
{
	size_t a = *at;
	for (; bits; bits &= bits - 1) {
		size_t k = base + (unsigned)__builtin_ctzll(bits);
		copy_short(o, p + a, k - a);
		o = put_escape1(o + (k - a), p[k]);
		a = k + 1;
	}
	*at = a;
	return o;
}

/*
 * The last n < 128 bytes of a text, p, with m0 and m1 their bytes to escape
 * (as tail_mask gives them), escaped into o: each clean run copied in one or
 * two loads from p in place, then its escape. Writes at most 6 bytes past the end.
 */
__attribute__((target("avx2"))) static inline char *escape_tail(char *o, const uint8_t *p, size_t n, uint64_t m0,
								uint64_t m1)
{
	size_t at = 0; /* bytes of p written */
	o = escape_runs(o, p, &at, m0, 0);
	o = escape_runs(o, p, &at, m1, 64);
	copy_short(o, p + at, n - at);
	return o + (n - at);
}

/*
 * put_escaped_checked (below) for CPUs with AVX2, 64 bytes at a time: long
 * transcript chunks are mostly clean runs with an escape (ESC, CR, LF) every
 * few dozen bytes. Blocks are read in place while the 128 bytes an escape may
 * re-read are there; the last bytes (all of a short text) by escape_tail. No
 * load reads what was just stored (it would wait for it), but for texts under
 * 16 bytes. Needs 6*len + 64 bytes of room; NULL for invalid UTF-8.
 */
__attribute__((target("avx2"))) static char *escape_avx2(char *o, const uint8_t *s, size_t len, int check)
{
	__m256i high = _mm256_setzero_si256(); /* every byte seen, or'ed: UTF-8 is checked once, after */
	size_t i = 0;
	for (; i + 128 <= len; i += 64) {
		__m256i a = load32(s + i), b = load32(s + i + 32);
		high = _mm256_or_si256(high, _mm256_or_si256(a, b));
		o = escape_half(o, s + i, a, esc_mask32(a));
		o = escape_half(o, s + i + 32, b, esc_mask32(b));
	}
	uint64_t m[2];
	unsigned tail_high = tail_mask(s + i, len - i, m);
	o = escape_tail(o, s + i, len - i, m[0], m[1]);
	if (check && (_mm256_movemask_epi8(high) || tail_high) && !fl_utf8_valid(s, len))
		return NULL;
	return o;
}
#endif

/* Escapes s[i..len) eight bytes at a time while they are clean, else byte by byte; returns the end. */
static char *escape_scalar(char *o, const uint8_t *s, size_t i, size_t len)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
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

/*
 * Writes s as the inside of a JSON string (needs 6*len + 64 bytes of room) and
 * returns the end; when check is set, s is also validated as UTF-8 on the way,
 * and NULL comes back when it is not valid (what was written is garbage then).
 * One pass instead of a validation pass and an escaping pass: ASCII (terminal
 * output, mostly) is proven valid by the same vector loads that escape it;
 * only text with a byte >= 0x80 is validated, once, with fl_utf8_valid.
 */
static inline char *put_escaped_checked(char *o, const uint8_t *s, size_t len, int check)
{
#ifdef FL_ESCAPE_AVX2
	if (__builtin_cpu_supports("avx2"))
		return escape_avx2(o, s, len, check);
#endif
	size_t i = 0;
#ifdef __SSE2__
	if (!(o = escape_sse2(o, s, len, &i, &check)))
		return NULL;
	if (i < len) {
		int done = 0;
		o = escape_tail_sse2(o, s, len, i, &check, &done);
		if (!o)
			return NULL;
		if (done)
			return o;
	}
#endif
	if (check && !fl_utf8_valid(s + i, len - i))
		return NULL;
	return escape_scalar(o, s, i, len);
}

/* Writes the valid UTF-8 s as the inside of a JSON string; needs 6*len + 64 bytes of room. */
static char *put_escaped(char *o, const uint8_t *s, size_t len)
{
	return put_escaped_checked(o, s, len, 0);
}

/* Room a field needs at most: key, quotes, escapes or base64, separators. */
static size_t text_room(size_t keylen, size_t len)
{
	return keylen + 80 + (len > SIZE_MAX / 8 ? SIZE_MAX / 2 : len * 6);
}

/* fl_jbuf_reserve with its common case inline: the buffer is reused for every line. */
static inline int reserve(struct fl_jbuf *b, size_t more)
{
	return b->cap - b->len >= more ? 0 : fl_jbuf_reserve(b, more);
}

/* ,"key":"text" or ,"key_b64":"base64"; first says whether to leave out the comma. */
static int put_text(struct fl_jbuf *b, int first, const char *key, size_t klen, const void *p, size_t len)
{
	int rc = reserve(b, text_room(klen, len));
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

/* keys are literals: their length is known when compiling */
#define put_cstr(b, key, s) put_text((b), 0, (key), sizeof(key) - 1, (s), (s) ? strlen(s) : 0)

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
	int rc = reserve(b, room);
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
static int put_num(struct fl_jbuf *b, const char *key, size_t klen, uint64_t u, int is_signed, int quoted)
{
	int rc = reserve(b, klen + 32);
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

#define NUM(key, v) put_num(b, (key), sizeof(key) - 1, (uint64_t)(v), 0, 0)
#define INT(key, v) put_num(b, (key), sizeof(key) - 1, (uint64_t)(int64_t)(v), 1, 0)
#define U64(key, v) put_num(b, (key), sizeof(key) - 1, (uint64_t)(v), 0, 1)

static int put_raw(struct fl_jbuf *b, const char *s, size_t n)
{
	int rc = reserve(b, n);
	if (rc < 0)
		return rc;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

#define PUT_RAW(b, lit) put_raw((b), (lit), sizeof(lit) - 1)

static int put_level_name(struct fl_jbuf *b, const char *key, size_t klen, uint32_t level)
{
	if (level >= FL_LEVEL_SPAWNS && level <= FL_LEVEL_FULL) {
		const char *name = fl_level_name((int)level);
		return put_text(b, 0, key, klen, name, strlen(name));
	}
	int rc = PUT_RAW(b, ",\"");
	if (!rc)
		rc = put_raw(b, key, klen);
	return rc ? rc : PUT_RAW(b, "\":null");
}

/* The data object of each kind: every field, always, so the schema never depends on values. */
static int put_data(struct fl_jbuf *b, const Fugue__Event *ev)
{
	int rc = 0;
#define T(key, s) (rc = rc ? rc : put_cstr(b, (key), (s)))
#define TB(key, bin) (rc = rc ? rc : put_text(b, 0, (key), sizeof(key) - 1, (bin).data, (bin).len))
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
		rc =
		    rc ? rc
		       : (ev->exit->abandoned ? PUT_RAW(b, ",\"abandoned\":true") : PUT_RAW(b, ",\"abandoned\":false"));
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
		rc = put_level_name(b, "old", 3, ev->level->old);
		rc = rc ? rc : put_level_name(b, "new", 3, ev->level->new_);
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

/*
 * memcmp(a, b, n) == 0 for the few bytes of a session id, inline: the call
 * cost more than the compare. In words, the last one overlapping the one
 * before it rather than a byte loop for the rest (a UUID is 36 bytes).
 */
static inline int same(const char *a, const char *b, size_t n)
{
	uint64_t x, y, diff = 0;
	if (n < 8) {
		for (size_t k = 0; k < n; k++)
			diff |= (uint64_t)(a[k] ^ b[k]);
		return !diff;
	}
	for (size_t k = 0; k + 8 < n; k += 8) {
		memcpy(&x, a + k, 8);
		memcpy(&y, b + k, 8);
		diff |= x ^ y;
	}
	memcpy(&x, a + n - 8, 8);
	memcpy(&y, b + n - 8, 8);
	return !(diff | (x ^ y));
}

/* ,"session":"..." from the cache when it is the same id as last time (every line of a batch is). */
static int put_session(struct fl_jbuf *b, struct fl_tsfmt *tc, const char *session)
{
	size_t n = strlen(session);
	if (n && n == tc->sess_len && same(session, tc->sess, n)) {
		/* in whole 32-byte steps: a short copy of variable length became a slow rep movs */
		int rc = reserve(b, (size_t)tc->sess_jlen + 32);
		if (rc == 0) {
			for (size_t k = 0; k < tc->sess_jlen; k += 32)
				memcpy(b->p + b->len + k, tc->sess_json + k, 32);
			b->len += tc->sess_jlen;
		}
		return rc;
	}
	size_t at = b->len;
	int rc = put_text(b, 0, "session", 7, session, n);
	if (rc == 0 && n && n <= FL_TSFMT_SESSION_MAX && b->len - at <= sizeof tc->sess_json) {
		memcpy(tc->sess, session, n);
		memcpy(tc->sess_json, b->p + at, b->len - at);
		tc->sess_len = (uint8_t)n;
		tc->sess_jlen = (uint16_t)(b->len - at);
	}
	return rc;
}

/*
 * The digits of seq: the lines of a session come with seq one up from the
 * last, so the cached text is copied out and counted up in both places, the
 * copy first (reading back a byte just stored in the cache would stall the
 * copy); a carry past the first digit, or another seq, formats it anew.
 * Needs 24 bytes of room.
 */
static char *put_seq(struct fl_tsfmt *tc, char *o, uint64_t seq)
{
	memcpy(o, tc->seqd, sizeof tc->seqd);
	int k = -1;
	if (tc->seqn && seq && seq == tc->seq + 1)
		for (k = (int)tc->seqn - 1; k >= 0 && tc->seqd[k] == '9'; k--)
			o[k] = tc->seqd[k] = '0';
	if (k >= 0) {
		o[k] = ++tc->seqd[k];
	} else {
		tc->seqn = (uint8_t)(put_u64(tc->seqd, seq) - tc->seqd);
		memcpy(o, tc->seqd, sizeof tc->seqd);
	}
	tc->seq = seq;
	return o + tc->seqn;
}

/* Caches the run from "class" to the opening quote of "id" for this kind (it has a name), pid and tid. */
static void put_middle(struct fl_tsfmt *tc, int kind, uint32_t pid, uint32_t tid)
{
	const char *name = fl_kind_name(kind), *lvl = fl_level_name(fl_kind_min_level(kind));
	char *o = tc->mid;
	o = fl_kind_class(kind) == FL_CLASS_USER ? PUTS(o, ",\"class\":\"user\",\"event\":\"")
						 : PUTS(o, ",\"class\":\"system\",\"event\":\"");
	o = put(o, name, strlen(name));
	o = PUTS(o, "\",\"level\":\"");
	o = put(o, lvl, strlen(lvl));
	o = PUTS(o, "\",\"pid\":");
	o = put_u32(o, pid);
	o = PUTS(o, ",\"tid\":");
	o = put_u32(o, tid);
	o = PUTS(o, ",\"id\":\"");
	tc->mid_len = (uint32_t)(o - tc->mid);
	tc->mid_kind = kind;
	tc->mid_pid = pid;
	tc->mid_tid = tid;
}

int fl_jsonl_render(struct fl_jbuf *b, struct fl_tsfmt *tc, const Fugue__Event *ev, const char *session, uint64_t seq)
{
	int kind = (int)ev->body_case - 5;
	/* a set body_case with a NULL message cannot come from unpack, but the renderer is fuzzed directly */
	if (!fl_kind_name(kind) || !ev->spawn)
		return -EINVAL;
	size_t start = b->len;
	/* ts, ts_ns and seq */
	int rc = reserve(b, 128);
	if (rc < 0)
		return rc;
	char *o = b->p + b->len;
	o = PUTS(o, "{\"ts\":\"");
	char f0;
	uint64_t f8;
	ts_parts(tc, ev->ts_ns, &f0, &f8);
	put_ts(tc, f0, f8, o);
	o = PUTS(o + 30, "\",\"ts_ns\":\"");
	/* ts_ns is the second's cached digits and the same nine fraction digits */
	if (tc->sec) {
		memcpy(o, tc->secd, sizeof tc->secd); /* fixed size: a few moves, not a rep movs */
		o += tc->secn;
		*o = f0;
		memcpy(o + 1, &f8, 8);
		o += 9;
	} else
		o = put_u64(o, ev->ts_ns > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : ev->ts_ns);
	o = PUTS(o, "\",\"seq\":");
	o = put_seq(tc, o, seq);
	b->len = (size_t)(o - b->p);
	rc = put_session(b, tc, session);
	/* the fixed middle of the line in one go: kind and level names are short, numbers at most 20 digits */
	if (!rc)
		rc = reserve(b, 256);
	if (!rc) {
		o = b->p + b->len;
		if (tc->mid_kind != kind || tc->mid_pid != ev->pid || tc->mid_tid != ev->tid)
			put_middle(tc, kind, ev->pid, ev->tid);
		memcpy(o, tc->mid, sizeof tc->mid); /* all of it: a fixed size copies in a few moves */
		o += tc->mid_len;
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
			rc = PUT_RAW(b, "{");
	}
	if (!rc)
		rc = PUT_RAW(b, "}}\n");
	if (rc < 0)
		b->len = start;
	return rc;
}

/* ---- the ts field, read back ---- */

static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int fl_ts_parse(const char *s, size_t len, uint64_t *ns)
{
	int Y, M, D, h, m, sec;
	if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
	    s[16] != ':')
		return -EINVAL;
	if (digits(s, 4, &Y) || digits(s + 5, 2, &M) || digits(s + 8, 2, &D) || digits(s + 11, 2, &h) ||
	    digits(s + 14, 2, &m) || digits(s + 17, 2, &sec))
		return -EINVAL;
	if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		return -EINVAL;
	size_t i = 19;
	uint64_t frac = 0;
	if (i < len && s[i] == '.') {
		size_t nd = 0;
		for (i++; i < len && isdigit((unsigned char)s[i]); i++, nd++)
			if (nd < 9)
				frac = frac * 10 + (uint64_t)(s[i] - '0');
		if (nd == 0)
			return -EINVAL;
		for (; nd < 9; nd++)
			frac *= 10;
	}
	if (i + 1 != len || (s[i] != 'Z' && s[i] != 'z'))
		return -EINVAL;
	struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec};
	time_t t = timegm(&tm);
	if (t < 0)
		return -EINVAL;
	*ns = (uint64_t)t * 1000000000ull + frac;
	return 0;
}
