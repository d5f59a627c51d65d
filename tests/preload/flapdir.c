/* SPDX-License-Identifier: MIT */
/*
 * flapdir.c: an LD_PRELOAD shim for tests. Every other time a directory walk
 * reaches the entry named $FLT_FLAP_NAME, readdir skips it, so no two walks in
 * a row ever agree: a directory that keeps changing while it is listed, made
 * without timing. Used to reach the segment lister's give-up path
 * (fl_segments_list's -EAGAIN) in the real CLI.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong seen; /* walks that reached the name: odd ones do not see it */

static int flapped(const char *name)
{
	const char *flap = getenv("FLT_FLAP_NAME");
	return flap && !strcmp(name, flap) && (atomic_fetch_add(&seen, 1) & 1);
}

struct dirent *readdir(DIR *d)
{
	static struct dirent *(*next)(DIR *);
	if (!next)
		next = (struct dirent * (*)(DIR *)) dlsym(RTLD_NEXT, "readdir");
	struct dirent *e;
	while ((e = next(d)) && flapped(e->d_name))
		;
	return e;
}

struct dirent64 *readdir64(DIR *d)
{
	static struct dirent64 *(*next)(DIR *);
	if (!next)
		next = (struct dirent64 * (*)(DIR *)) dlsym(RTLD_NEXT, "readdir64");
	struct dirent64 *e;
	while ((e = next(d)) && flapped(e->d_name))
		;
	return e;
}
