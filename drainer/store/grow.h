/* SPDX-License-Identifier: MIT */
/* grow.h: the one doubling growth of the arrays the drainer's libraries build (segment lists, sessions, items). */
#ifndef FL_GROW_H
#define FL_GROW_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/*
 * Room for element n of the array p (*cap elements of size bytes): p itself
 * while n < *cap, else p grown to twice *cap (to first when empty) with *cap
 * updated. NULL when memory ran out; p is then still valid and *cap unchanged.
 */
static inline void *fl_grow(void *p, size_t *cap, size_t n, size_t size, size_t first)
{
	if (n < *cap)
		return p;
	size_t nc = *cap ? *cap * 2 : first;
	if (nc < *cap || nc > SIZE_MAX / size)
		return NULL;
	void *np = realloc(p, nc * size);
	if (np)
		*cap = nc;
	return np;
}

#endif
