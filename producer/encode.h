/* SPDX-License-Identifier: MIT */
/* encode.h: a minimal protobuf wire writer for flat messages, sized first, written in place. */
#ifndef FL_ENCODE_H
#define FL_ENCODE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { PB_VARINT = 0, PB_FIXED64 = 1, PB_LEN = 2 };

/* One field of a flat submessage. Zero scalars and empty strings are omitted, as proto3 does. */
enum fl_ftype {
	F_U64,	 /* varint */
	F_I32,	 /* int32: negative values take ten bytes, as protobuf says */
	F_BYTES, /* length-delimited: string or bytes */
	F_REP,	 /* repeated string: p points at `const char *const[len]`; empty elements kept */
};

struct fl_field {
	uint8_t num;
	uint8_t type;
	uint32_t len; /* F_BYTES: bytes; F_REP: element count */
	union {
		uint64_t u;
		const void *p;
	};
};

/* ceil(bits / 7) without a loop: bits * 9 / 64 rounds the same way for 1..64 bits */
static inline size_t pb_varint_size(uint64_t v)
{
	unsigned bits = 64u - (unsigned)__builtin_clzll(v | 1);
	return (bits * 9u + 64u) / 64u;
}

static inline uint8_t *pb_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static inline uint64_t pb_tag(unsigned num, unsigned wire)
{
	return ((uint64_t)num << 3) | wire;
}

static inline size_t pb_len_size(unsigned num, size_t len)
{
	return pb_varint_size(pb_tag(num, PB_LEN)) + pb_varint_size(len) + len;
}

static inline uint8_t *pb_len(uint8_t *p, unsigned num, const void *data, size_t len)
{
	p = pb_varint(p, pb_tag(num, PB_LEN));
	p = pb_varint(p, len);
	if (len)
		memcpy(p, data, len);
	return p + len;
}

static inline uint64_t fl_field_varint(const struct fl_field *f)
{
	return f->type == F_I32 ? (uint64_t)(int64_t)(int32_t)f->u : f->u;
}

static inline size_t fl_fields_size(const struct fl_field *f, int n)
{
	size_t sz = 0;
	for (int i = 0; i < n; i++) {
		switch (f[i].type) {
		case F_U64:
		case F_I32:
			if (f[i].u)
				sz += pb_varint_size(pb_tag(f[i].num, PB_VARINT)) +
				      pb_varint_size(fl_field_varint(&f[i]));
			break;
		case F_BYTES:
			if (f[i].len)
				sz += pb_len_size(f[i].num, f[i].len);
			break;
		case F_REP: {
			const char *const *v = f[i].p;
			for (uint32_t k = 0; k < f[i].len; k++)
				sz += pb_len_size(f[i].num, v[k] ? strlen(v[k]) : 0);
			break;
		}
		}
	}
	return sz;
}

static inline uint8_t *fl_fields_write(uint8_t *p, const struct fl_field *f, int n)
{
	for (int i = 0; i < n; i++) {
		switch (f[i].type) {
		case F_U64:
		case F_I32:
			if (f[i].u) {
				p = pb_varint(p, pb_tag(f[i].num, PB_VARINT));
				p = pb_varint(p, fl_field_varint(&f[i]));
			}
			break;
		case F_BYTES:
			if (f[i].len)
				p = pb_len(p, f[i].num, f[i].p, f[i].len);
			break;
		case F_REP: {
			const char *const *v = f[i].p;
			for (uint32_t k = 0; k < f[i].len; k++)
				p = pb_len(p, f[i].num, v[k] ? v[k] : "", v[k] ? strlen(v[k]) : 0);
			break;
		}
		}
	}
	return p;
}

#endif
