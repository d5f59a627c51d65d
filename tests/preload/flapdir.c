/* SPDX-License-Identifier: MIT */
/*
 * flapdir.c: an LD_PRELOAD shim for tests. Every other time a directory walk
 * reaches the entry named $FLT_FLAP_NAME, readdir skips it, so no two walks in
 * a row ever agree: a directory that keeps changing while it is listed, made
 * without timing. Used to reach the segment lister's give-up path
 * (fl_segments_list's -EAGAIN) in the real CLI. Once the file
 * $FLT_FLAP_STOP exists, walks see everything again. After
 * FLT_FLAP_PROOF walks that reached the name (two give-ups' worth of the
 * lister's FL_SEG_LIST_WALKS), the file $FLT_FLAP_SEEN is created, so a test
 * knows the give-up has happened without waiting for a time.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "segread.h"

#define FLT_FLAP_PROOF (2 * FL_SEG_LIST_WALKS)

static atomic_ulong seen; /* walks that reached the name: odd ones do not see it */

static void proof(unsigned long n)
{
	const char *path = getenv("FLT_FLAP_SEEN");
	if (path && n == FLT_FLAP_PROOF)
		close(creat(path, 0600));
}

static int flapped(const char *name)
{
	const char *flap = getenv("FLT_FLAP_NAME"), *stop = getenv("FLT_FLAP_STOP");
	if (!flap || strcmp(name, flap) || (stop && access(stop, F_OK) == 0))
		return 0;
	unsigned long n = atomic_fetch_add(&seen, 1);
	proof(n + 1);
	return n & 1;
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
