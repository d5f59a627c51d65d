/* SPDX-License-Identifier: MIT */
/* arena.h: the per-worker bump allocator that protobuf-c decodes a batch into. */
#ifndef FL_ARENA_H
#define FL_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/*
 * protobuf-c's unpack allocates the message, every string and every bytes field;
 * with this allocator it bumps a pointer in one block per batch and free is a
 * no-op. Overflow goes to extra blocks, and the next reset grows the main block
 * to cover them, so a steady load settles to zero mallocs. One thread at a time.
 */
struct fl_arena_extra;

struct fl_arena {
	uint8_t *base;
	size_t used, cap;
	size_t extra_bytes;
	struct fl_arena_extra *extra;
};

/* fl_arena_alloc's way out when the main block is full: an extra block for n (a multiple of 16) bytes. */
void *fl_arena_alloc_extra(struct fl_arena *a, size_t n);

/* 16-byte aligned room for n bytes until the next reset, or NULL. Inline: a record takes two. */
static inline void *fl_arena_alloc(struct fl_arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n <= a->cap - a->used) {
		void *p = a->base + a->used;
		a->used += n;
		return p;
	}
	return fl_arena_alloc_extra(a, n);
}
char *fl_arena_strdup(struct fl_arena *a, const char *s);
/* Forgets every allocation, growing the main block to what the last batch needed. */
void fl_arena_reset(struct fl_arena *a);
/* An idle worker's trim: the arena is reset, and its main block freed when it grew beyond keep bytes. */
void fl_arena_trim(struct fl_arena *a, size_t keep);
/* Frees every block; the arena is empty and reusable after it. */
void fl_arena_destroy(struct fl_arena *a);
/* A protobuf-c allocator on a. */
void fl_arena_allocator(struct fl_arena *a, ProtobufCAllocator *out);

#endif
