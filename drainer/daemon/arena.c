/* SPDX-License-Identifier: MIT */
/* arena.c: the bump allocator a drain worker decodes a batch into (arena.h). */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

struct fl_arena_extra {
	struct fl_arena_extra *next;
	max_align_t data[];
};

void *fl_arena_alloc_extra(struct fl_arena *a, size_t n)
{
	struct fl_arena_extra *e = malloc(sizeof *e + n);
	if (!e)
		return NULL;
	e->next = a->extra;
	a->extra = e;
	a->extra_bytes += n;
	return e->data;
}

char *fl_arena_strdup(struct fl_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = fl_arena_alloc(a, n);
	if (p)
		memcpy(p, s, n);
	return p;
}

void fl_arena_reset(struct fl_arena *a)
{
	size_t want = a->used + a->extra_bytes;
	while (a->extra) {
		struct fl_arena_extra *e = a->extra;
		a->extra = e->next;
		free(e);
	}
	a->extra_bytes = 0;
	a->used = 0;
	if (want > a->cap) {
		size_t cap = a->cap ? a->cap : 1u << 20;
		while (cap < want)
			cap *= 2;
		uint8_t *p = malloc(cap);
		if (p) {
			free(a->base);
			a->base = p;
			a->cap = cap;
		}
	}
}

void fl_arena_trim(struct fl_arena *a, size_t keep)
{
	a->used = 0;
	fl_arena_reset(a);
	if (a->cap > keep) {
		free(a->base);
		a->base = NULL;
		a->cap = 0;
	}
}

void fl_arena_destroy(struct fl_arena *a)
{
	a->used = 0;
	a->extra_bytes = 0;
	while (a->extra) {
		struct fl_arena_extra *e = a->extra;
		a->extra = e->next;
		free(e);
	}
	free(a->base);
	memset(a, 0, sizeof *a);
}

static void *pb_alloc(void *d, size_t n)
{
	return fl_arena_alloc(d, n);
}

/* everything goes at the next reset */
static void pb_free(void *d, void *p)
{
	(void)d;
	(void)p;
}

void fl_arena_allocator(struct fl_arena *a, ProtobufCAllocator *out)
{
	out->alloc = pb_alloc;
	out->free = pb_free;
	out->allocator_data = a;
}
