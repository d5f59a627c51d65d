/* SPDX-License-Identifier: MIT */
/* cmd_replay.c: fugue-log replay — a session's transcript to stdout with its original timing, as scriptreplay does. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fuguelog.h"
#include "sessread.h"

static void help(void)
{
	printf("usage: fugue-log replay SESSION [--speed X | --no-timing] [--root DIR] [--config FILE]\n"
	       "\n"
	       "Writes the transcript bytes of SESSION (what 'fugue-log run' recorded) to stdout, each\n"
	       "chunk after the delay it had when recorded, as scriptreplay(1) does.\n"
	       "\n"
	       "  --speed X     divide every delay by X (2 plays twice as fast; default 1)\n"
	       "  --no-timing   no delays: the bytes at once (the same as 'cat --output transcript')\n"
	       "\n"
	       "Exit codes: 0 played; 1 a file could not be read; 2 usage error; 3 no such session.\n");
}

static int write_all(const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(STDOUT_FILENO, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -errno;
		p += w, n -= (size_t)w;
	}
	return 0;
}

int fl_cmd_replay(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"speed", required_argument, NULL, 's'}, {"no-timing", no_argument, NULL, 'n'}, FL_CLI_COMMON_OPTS, {0}};
	double speed = 1;
	int timing = 1, have_speed = 0, c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (fl_cli_common_opt(c, optarg))
			continue;
		switch (c) {
		case 's':
			if (fl_cli_double(optarg, &speed) < 0 || speed <= 0)
				return fl_cli_usage_err("replay", "--speed '%s' is not a positive number", optarg);
			have_speed = 1;
			break;
		case 'n':
			timing = 0;
			break;
		case 'h':
			help();
			return FL_EXIT_OK;
		default:
			return fl_cli_usage_err("replay", "bad option");
		}
	}
	if (!timing && have_speed)
		return fl_cli_usage_err("replay", "--speed and --no-timing exclude each other");
	if (optind + 1 != argc)
		return fl_cli_usage_err("replay", "give exactly one SESSION");
	if (fl_id_check(argv[optind]) < 0)
		return fl_cli_usage_err("replay", "'%s' is not a session id: ids are 1 to 64 of A-Z a-z 0-9 . _ -",
					argv[optind]);
	struct fl_config cfg;
	int rc = fl_cli_config(&cfg);
	if (rc)
		return rc;
	struct fl_sessread *r;
	char why[512];
	rc = fl_sessread_open(&r, cfg.root, argv[optind], why, sizeof why);
	if (rc < 0) {
		fl_cli_err("%s", why);
		return rc == -ENOENT ? FL_EXIT_NOSESSION : FL_EXIT_FAIL;
	}
	struct fl_evline ev;
	uint64_t prev = 0;
	int ret = FL_EXIT_OK;
	while ((rc = fl_sessread_next(r, &ev, why, sizeof why)) != 0) {
		if (rc < 0) {
			fl_cli_err("%s", why);
			ret = FL_EXIT_FAIL;
			continue;
		}
		if (strcmp(ev.kind, "transcript") || !ev.data)
			continue;
		uint8_t *b;
		size_t n;
		if (fl_json_bytes(ev.data, ev.dlen, "data", &b, &n) < 0) {
			fl_cli_err("seq %llu: transcript without readable data; skipped", (unsigned long long)ev.seq);
			ret = FL_EXIT_FAIL;
			continue;
		}
		if (timing && prev && ev.ts_ns > prev) {
			double d = (double)(ev.ts_ns - prev) / 1e9 / speed;
			struct timespec ts = {(time_t)d, (long)((d - floor(d)) * 1e9)};
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}
		prev = ev.ts_ns;
		rc = write_all(b, n);
		free(b);
		if (rc < 0) {
			fl_cli_err("cannot write to stdout: %s", strerror(-rc));
			ret = FL_EXIT_FAIL;
			break;
		}
	}
	fl_sessread_close(r);
	return ret;
}
