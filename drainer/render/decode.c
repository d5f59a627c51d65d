/* SPDX-License-Identifier: MIT */
/* decode.c: reads the plainly encoded flat Event straight from the record bytes; anything else goes to protobuf-c. */
#include "decode.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

/*
 * Why: protobuf-c's generic unpack walks descriptors, counts and sorts fields
 * and allocates every bytes field, ~10% of the drainer's time on small events.
 * This path only takes input whose meaning is unambiguous (no duplicates, so
 * no merging; no unknown fields; shortest tags); it never rejects anything
 * itself, so what is malformed stays exactly what protobuf-c says it is.
 */

enum ftype { F_NONE, F_U32, F_I32, F_U64, F_BOOL, F_STR, F_BYTES };

struct fdesc {
	uint8_t type;
	uint8_t off;
};

/* Any body this decoder takes: it comes in one allocation with its Event. */
union flat_body {
	Fugue__Exit exit;
	Fugue__Action action;
	Fugue__Completion completion;
	Fugue__Error error;
	Fugue__State state;
	Fugue__Prompt prompt;
	Fugue__Transcript transcript;
	Fugue__Input input;
	Fugue__Level level;
	Fugue__Dropped dropped;
};

struct event_block {
	Fugue__Event ev;
	union flat_body body;
};

struct kdesc {
	const union flat_body *init; /* the message's INIT value */
	struct fdesc f[5];	     /* by field number 1..4 */
};

static const union flat_body exit0 = {.exit = FUGUE__EXIT__INIT};
static const union flat_body action0 = {.action = FUGUE__ACTION__INIT};
static const union flat_body completion0 = {.completion = FUGUE__COMPLETION__INIT};
static const union flat_body error0 = {.error = FUGUE__ERROR__INIT};
static const union flat_body state0 = {.state = FUGUE__STATE__INIT};
static const union flat_body prompt0 = {.prompt = FUGUE__PROMPT__INIT};
static const union flat_body transcript0 = {.transcript = FUGUE__TRANSCRIPT__INIT};
static const union flat_body input0 = {.input = FUGUE__INPUT__INIT};
static const union flat_body level0 = {.level = FUGUE__LEVEL__INIT};
static const union flat_body dropped0 = {.dropped = FUGUE__DROPPED__INIT};

#define FD(t, s, m)                                                                                                    \
	{                                                                                                              \
		(t), (uint8_t)offsetof(s, m)                                                                           \
	}

/* by body field number - 6; spawn and command (repeated strings) are left to protobuf-c */
static const struct kdesc kinds[12] = {
    [FUGUE__EVENT__BODY_EXIT - 6] = {&exit0,
				     {{0},
				      FD(F_I32, Fugue__Exit, status),
				      FD(F_I32, Fugue__Exit, signal),
				      FD(F_U64, Fugue__Exit, duration_ns),
				      FD(F_BOOL, Fugue__Exit, abandoned)}},
    [FUGUE__EVENT__BODY_ACTION - 6] =
	{&action0,
	 {{0}, FD(F_STR, Fugue__Action, action), FD(F_STR, Fugue__Action, target), FD(F_STR, Fugue__Action, detail)}},
    [FUGUE__EVENT__BODY_COMPLETION - 6] = {&completion0,
					   {{0},
					    FD(F_STR, Fugue__Completion, task),
					    FD(F_STR, Fugue__Completion, outcome),
					    FD(F_U64, Fugue__Completion, duration_ns)}},
    [FUGUE__EVENT__BODY_ERROR -
	6] = {&error0,
	      {{0}, FD(F_I32, Fugue__Error, code), FD(F_STR, Fugue__Error, message), FD(F_STR, Fugue__Error, origin)}},
    [FUGUE__EVENT__BODY_STATE -
	6] = {&state0,
	      {{0}, FD(F_STR, Fugue__State, from), FD(F_STR, Fugue__State, to), FD(F_STR, Fugue__State, reason)}},
    [FUGUE__EVENT__BODY_PROMPT - 6] = {&prompt0, {{0}, FD(F_BYTES, Fugue__Prompt, text)}},
    [FUGUE__EVENT__BODY_TRANSCRIPT -
	6] = {&transcript0, {{0}, FD(F_U32, Fugue__Transcript, stream), FD(F_BYTES, Fugue__Transcript, data)}},
    [FUGUE__EVENT__BODY_INPUT - 6] = {&input0, {{0}, FD(F_BYTES, Fugue__Input, data)}},
    [FUGUE__EVENT__BODY_LEVEL -
	6] = {&level0,
	      {{0}, FD(F_U32, Fugue__Level, old), FD(F_U32, Fugue__Level, new_), FD(F_U64, Fugue__Level, changes)}},
    [FUGUE__EVENT__BODY_DROPPED - 6] = {&dropped0,
					{{0}, FD(F_U64, Fugue__Dropped, count), FD(F_U32, Fugue__Dropped, lane)}},
};

/* A varint of at most 10 bytes (protobuf-c's limit), its 7-bit groups summed mod 2^64 as protobuf-c does. */
static inline int varint(const uint8_t **pp, const uint8_t *end, uint64_t *v, int *nonzero)
{
	const uint8_t *p = *pp;
	if (p < end && p[0] < 0x80) { /* one byte: stream, ref 0, lengths of small fields */
		*v = p[0];
		*pp = p + 1;
		if (nonzero)
			*nonzero = p[0] != 0;
		return 1;
	}
	uint64_t r = 0;
	unsigned any = 0;
	if (end - p >= 10) { /* room for the longest: no bounds test per byte */
		for (unsigned i = 0; i < 10; i++) {
			uint8_t b = p[i];
			r |= (uint64_t)(b & 0x7f) << (7 * i);
			any |= b & 0x7f;
			if (!(b & 0x80)) {
				*pp = p + i + 1;
				*v = r;
				if (nonzero)
					*nonzero = any != 0;
				return 1;
			}
		}
		return 0;
	}
	for (unsigned i = 0; i < 10 && p < end; i++) {
		uint8_t b = *p++;
		r |= (uint64_t)(b & 0x7f) << (7 * i);
		any |= b & 0x7f;
		if (!(b & 0x80)) {
			*pp = p;
			*v = r;
			if (nonzero)
				*nonzero = any != 0; /* protobuf-c's bool: any set bit, also beyond bit 63 */
			return 1;
		}
	}
	return 0;
}

/*
 * A tag in its shortest form (one or two bytes, field > 0), returned as its
 * value (field << 3 | wire type); 0 for anything else, which is not ours to
 * judge. A value rather than out-parameters: they kept the hot loop in memory.
 */
static inline unsigned tag(const uint8_t **pp, const uint8_t *end)
{
	const uint8_t *p = *pp;
	if (p >= end)
		return 0;
	unsigned v = p[0];
	if (v & 0x80) {
		if (p + 1 >= end || p[1] == 0 || p[1] & 0x80)
			return 0;
		v = (v & 0x7f) | (unsigned)p[1] << 7;
		p += 2;
	} else
		p++;
	*pp = p;
	return v >> 3 ? v : 0;
}

/* A length prefix as protobuf-c reads it (at most 5 bytes) that fits in what is left. */
static inline int length(const uint8_t **pp, const uint8_t *end, size_t *n)
{
	const uint8_t *p = *pp;
	if (p < end && p[0] < 0x80) { /* one byte: every small event's */
		if (p[0] > end - p - 1)
			return 0;
		*n = p[0];
		*pp = p + 1;
		return 1;
	}
	uint64_t v = 0;
	for (unsigned i = 0; i < 5 && p < end; i++) {
		uint8_t b = *p++;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			if (v > (uint64_t)(end - p))
				return 0;
			*n = (size_t)v;
			*pp = p;
			return 1;
		}
	}
	return 0;
}

/* One body message into m; 1 decoded, 0 not plain, -ENOMEM. */
static int body(const struct kdesc *k, const uint8_t *p, const uint8_t *end, ProtobufCAllocator *a, uint8_t *m)
{
	/* the whole union: a copy of variable size compiled to a slow rep movs */
	memcpy(m, k->init, sizeof(union flat_body));
	unsigned seen = 0;
	while (p < end) {
		unsigned t = tag(&p, end), field = t >> 3, wt = t & 7;
		if (!t || field > 4 || seen >> field & 1)
			return 0;
		seen |= 1u << field;
		const struct fdesc *f = &k->f[field];
		void *dst = m + f->off;
		uint64_t v;
		int nz;
		size_t n;
		switch (f->type) {
		case F_U32:
		case F_I32:
		case F_U64:
		case F_BOOL:
			if (wt != 0 || !varint(&p, end, &v, &nz))
				return 0;
			if (f->type == F_U32) {
				uint32_t x = (uint32_t)v;
				memcpy(dst, &x, sizeof x);
			} else if (f->type == F_I32) {
				int32_t x = (int32_t)(uint32_t)v;
				memcpy(dst, &x, sizeof x);
			} else if (f->type == F_U64)
				memcpy(dst, &v, sizeof v);
			else {
				protobuf_c_boolean x = nz;
				memcpy(dst, &x, sizeof x);
			}
			break;
		case F_STR: {
			if (wt != 2 || !length(&p, end, &n))
				return 0;
			char *s = a->alloc(a->allocator_data, n + 1);
			if (!s)
				return -ENOMEM;
			memcpy(s, p, n);
			s[n] = 0;
			memcpy(dst, &s, sizeof s);
			p += n;
			break;
		}
		case F_BYTES: {
			if (wt != 2 || !length(&p, end, &n))
				return 0;
			ProtobufCBinaryData bd = {n, n ? (uint8_t *)p : NULL};
			memcpy(dst, &bd, sizeof bd);
			p += n;
			break;
		}
		default:
			return 0; /* an unknown field: protobuf-c keeps it, so it decides */
		}
	}
	return 1;
}

/* Hangs a decoded body on ev by its field number: 1, or 0 for a field that is not a body. */
static inline int set_body(Fugue__Event *ev, unsigned field, void *m)
{
	ev->body_case = (Fugue__Event__BodyCase)field;
	switch (ev->body_case) {
	case FUGUE__EVENT__BODY_EXIT:
		ev->exit = m;
		return 1;
	case FUGUE__EVENT__BODY_ACTION:
		ev->action = m;
		return 1;
	case FUGUE__EVENT__BODY_COMPLETION:
		ev->completion = m;
		return 1;
	case FUGUE__EVENT__BODY_ERROR:
		ev->error = m;
		return 1;
	case FUGUE__EVENT__BODY_STATE:
		ev->state = m;
		return 1;
	case FUGUE__EVENT__BODY_PROMPT:
		ev->prompt = m;
		return 1;
	case FUGUE__EVENT__BODY_TRANSCRIPT:
		ev->transcript = m;
		return 1;
	case FUGUE__EVENT__BODY_INPUT:
		ev->input = m;
		return 1;
	case FUGUE__EVENT__BODY_LEVEL:
		ev->level = m;
		return 1;
	case FUGUE__EVENT__BODY_DROPPED:
		ev->dropped = m;
		return 1;
	default:
		return 0;
	}
}

/*
 * The rest of a record, p..end, when it is just the body of a transcript,
 * input or prompt in the producer's order: a stream varint (transcript only),
 * then the bytes, each optional, nothing else. Hangs it on ev: 1, or 0 for
 * any other form, which the general loop then reads from p.
 */
static int bytes_body(const uint8_t *p, const uint8_t *end, union flat_body *m, Fugue__Event *ev)
{
	ProtobufCBinaryData bd = {0, NULL};
	uint64_t v = 0;
	size_t n;
	if (p >= end || (p[0] != (FUGUE__EVENT__BODY_TRANSCRIPT << 3 | 2) &&
			 p[0] != (FUGUE__EVENT__BODY_INPUT << 3 | 2) && p[0] != (FUGUE__EVENT__BODY_PROMPT << 3 | 2)))
		return 0;
	unsigned field = *p++ >> 3;
	if (!length(&p, end, &n) || n != (size_t)(end - p))
		return 0;
	unsigned data_tag = field == FUGUE__EVENT__BODY_TRANSCRIPT ? (2 << 3 | 2) : (1 << 3 | 2);
	if (field == FUGUE__EVENT__BODY_TRANSCRIPT && p < end && p[0] == (1 << 3) && (p++, !varint(&p, end, &v, NULL)))
		return 0;
	if (p < end && p[0] == data_tag) {
		p++;
		if (!length(&p, end, &n))
			return 0;
		bd.len = n;
		bd.data = n ? (uint8_t *)p : NULL;
		p += n;
	}
	if (p != end)
		return 0;
	if (field == FUGUE__EVENT__BODY_TRANSCRIPT) {
		m->transcript = (Fugue__Transcript)FUGUE__TRANSCRIPT__INIT;
		m->transcript.stream = (uint32_t)v;
		m->transcript.data = bd;
	} else if (field == FUGUE__EVENT__BODY_INPUT) {
		m->input = (Fugue__Input)FUGUE__INPUT__INIT;
		m->input.data = bd;
	} else {
		m->prompt = (Fugue__Prompt)FUGUE__PROMPT__INIT;
		m->prompt.text = bd;
	}
	return set_body(ev, field, m);
}

int fl_event_decode(const uint8_t *p, size_t len, ProtobufCAllocator *a, Fugue__Event **out)
{
	const uint8_t *end = p + len;
	struct event_block *blk = a->alloc(a->allocator_data, sizeof *blk);
	if (!blk)
		return -ENOMEM;
	Fugue__Event *ev = &blk->ev;
	/* FUGUE__EVENT__INIT is all zeros but the descriptor; a struct copy of it became a slow rep movs */
	memset(ev, 0, sizeof *ev);
	ev->base.descriptor = &fugue__event__descriptor;
	unsigned seen = 0;
	uint64_t x;
	/* the head in the producer's order (ts, id, ref, pid, tid) without the loop's dispatch; each at most
	 * once, so the loop below sees them as seen and takes whatever else comes */
	if (end - p >= 9 && p[0] == (1 << 3 | 1)) {
		memcpy(&ev->ts_ns, p + 1, 8);
		p += 9;
		seen |= 1u << 1;
	}
#define HEAD(field, dst, type)                                                                                         \
	if (p < end && p[0] == (field) << 3) {                                                                         \
		p++;                                                                                                   \
		if (!varint(&p, end, &x, NULL))                                                                        \
			return 0;                                                                                      \
		dst = (type)x;                                                                                         \
		seen |= 1u << (field);                                                                                 \
	}
	HEAD(2, ev->id, uint64_t)
	HEAD(3, ev->ref, uint64_t)
	HEAD(4, ev->pid, uint32_t)
	HEAD(5, ev->tid, uint32_t)
#undef HEAD
	/* the bytes kinds, most records by count and nearly all by bytes, without the loop's dispatch */
	if (bytes_body(p, end, &blk->body, ev)) {
		*out = ev;
		return 1;
	}
	while (p < end) {
		unsigned t = tag(&p, end), field = t >> 3, wt = t & 7;
		uint64_t v;
		size_t n;
		if (!t || field > 17 || seen >> field & 1)
			return 0;
		seen |= 1u << field;
		if (field == 1) {
			if (wt != 1 || end - p < 8)
				return 0;
			memcpy(&v, p, 8); /* fixed64 is little-endian, as is every host this runs on */
			ev->ts_ns = v;
			p += 8;
		} else if (field <= 5) {
			if (wt != 0 || !varint(&p, end, &v, NULL))
				return 0;
			if (field == 2)
				ev->id = v;
			else if (field == 3)
				ev->ref = v;
			else if (field == 4)
				ev->pid = (uint32_t)v;
			else
				ev->tid = (uint32_t)v;
		} else {
			/* a second body would replace or merge into the first: protobuf-c's business */
			const struct kdesc *k = &kinds[field - 6];
			if (ev->body_case != FUGUE__EVENT__BODY__NOT_SET || !k->init || wt != 2 || !length(&p, end, &n))
				return 0;
			void *m = &blk->body;
			int rc = body(k, p, p + n, a, m);
			if (rc <= 0)
				return rc;
			p += n;
			if (!set_body(ev, field, m))
				return 0;
		}
	}
	*out = ev;
	return 1;
}
