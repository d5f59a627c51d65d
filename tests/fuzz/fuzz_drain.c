/* SPDX-License-Identifier: MIT */
/* fuzz_drain: the drainer's real per-session step (decode, order, number, write) over a hostile ring image; every line
 * it writes must be strict JSON. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drain.h"
#include "json_check.h"
#include "ring.h"

#define CHECK(c)                                                                                                       \
	do {                                                                                                           \
		if (!(c)) {                                                                                            \
			fprintf(stderr, "fuzz_drain: invariant broken: %s (line %d)\n", #c, __LINE__);                 \
			abort();                                                                                       \
		}                                                                                                      \
	} while (0)

#define ID "fz"

static char root[128];
static struct fl_drain_worker *worker;

static void quiet(const char *line)
{
	(void)line; /* the drainer's own log lines: refusals are expected here by the million */
}

/* Removes <root>/fz and what the session wrote into it. */
static void wipe(void)
{
	char dir[256];
	snprintf(dir, sizeof dir, "%s/" ID, root);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(dir);
}

static void cleanup(void)
{
	wipe();
	rmdir(root);
	fl_drain_worker_free(worker);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	/* tmpfs: file creation per input must be cheap */
	snprintf(root, sizeof root, "/dev/shm/flfz-drain-%d", (int)getpid());
	CHECK(mkdir(root, 0700) == 0 || errno == EEXIST);
	fl_drain_set_logger(quiet);
	CHECK(fl_drain_worker_new(&worker) == 0);
	atexit(cleanup);
	return 0;
}

/* Every line of <root>/fz/<name> is one strict JSON object. */
static void check_file(const char *name)
{
	char path[256];
	snprintf(path, sizeof path, "%s/" ID "/%s", root, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) > 0) {
		size_t at = 0;
		if (fl_json_line_check(line, (size_t)n, &at) < 0) {
			fprintf(stderr, "fuzz_drain: %s: not a strict JSON line (offset %zu): %.*s\n", name, at, (int)n,
				line);
			abort();
		}
	}
	free(line);
	fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	size_t cap = (len + 63) & ~(size_t)63;
	uint8_t *img = aligned_alloc(64, cap ? cap : 64);
	CHECK(img);
	memcpy(img, data, len);
	struct fl_ring r;
	memset(&r, 0, sizeof r);
	r.fd = -1;
	char why[256];
	if (fl_ring_validate(&r, img, len, why, sizeof why) == 0) {
		r.fd = -1; /* a heap image: nothing to close */
		struct fl_dsess *s;
		CHECK(fl_dsess_new(&s, &r, ID, "/flfz-drain-no-such-ring") == 0);
		int status = FL_DRAIN_LIVE;
		/* a few steps: enough to drain, quarantine, notice a closed flag and finish */
		for (int i = 0; i < 4 && status != FL_DRAIN_FINISHED; i++)
			fl_drain_step(worker, s, root, &status);
		fl_dsess_free(s);
		check_file("system.jsonl");
		check_file("user.jsonl");
		check_file("session.json");
		wipe();
	}
	free(img);
	return 0;
}
