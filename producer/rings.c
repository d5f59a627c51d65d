/* SPDX-License-Identifier: MIT */
/* rings.c: list the session rings of one shm prefix. */
#define _GNU_SOURCE
#include "rings.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "doorbell.h"
#include "fuguelog.h"

int fl_rings_scan(const char *prefix, int (*fn)(const char *id, const char *shm_name, void *arg),
		  void (*bad)(const char *name, void *arg), void *arg)
{
	DIR *d = opendir(FL_SHM_DIR);
	if (!d)
		return -errno;
	size_t plen = strlen(prefix);
	struct dirent *e;
	int rc = 0;
	while (!rc && (e = readdir(d))) {
		if (strncmp(e->d_name, prefix, plen) || e->d_type == DT_DIR)
			continue;
		const char *id = e->d_name + plen;
		if (!strcmp(id, FL_BELL_SUFFIX))
			continue; /* the drainer's doorbell, not a ring */
		if (fl_id_check(id) < 0) {
			if (bad)
				bad(e->d_name, arg);
			continue;
		}
		char shm[sizeof e->d_name + 1];
		snprintf(shm, sizeof shm, "/%s", e->d_name);
		rc = fn(id, shm, arg);
	}
	closedir(d);
	return rc;
}
