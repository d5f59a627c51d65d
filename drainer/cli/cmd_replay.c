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
#include "sysutil.h"

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

struct play {
	double speed;
	int timing;
	uint64_t prev; /* ts_ns of the chunk written last; 0 before the first */
};

/* Reads the command line into p: 0, -1 when help was printed, or a usage exit code. */
static int parse_args(struct play *p, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"speed", required_argument, NULL, 's'}, {"no-timing", no_argument, NULL, 'n'}, FL_CLI_COMMON_OPTS, {0}};
	int have_speed = 0, c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (fl_cli_common_opt(c, optarg))
			continue;
		switch (c) {
		case 's':
			if (fl_cli_double(optarg, &p->speed) < 0 || p->speed <= 0)
				return fl_cli_usage_err("replay", "--speed '%s' is not a positive number", optarg);
			have_speed = 1;
			break;
		case 'n':
			p->timing = 0;
			break;
		case 'h':
			help();
			return -1;
		default:
			return fl_cli_usage_err("replay", "bad option");
		}
	}
	if (!p->timing && have_speed)
		return fl_cli_usage_err("replay", "--speed and --no-timing exclude each other");
	return fl_cli_session_arg("replay", argc, argv);
}

/* One event (fl_cli_session_each): a transcript chunk is written after its recorded delay. */
static int play_event(const struct fl_evline *ev, void *arg)
{
	struct play *p = arg;
	if (strcmp(ev->kind, "transcript"))
		return 0;
	uint8_t *b;
	size_t n;
	if (fl_json_bytes(ev->data, ev->dlen, "data", &b, &n) < 0) {
		fl_cli_err("seq %llu: transcript without readable data; skipped", (unsigned long long)ev->seq);
		return FL_EXIT_FAIL;
	}
	if (p->timing && p->prev && ev->ts_ns > p->prev) {
		double d = (double)(ev->ts_ns - p->prev) / 1e9 / p->speed;
		struct timespec ts = {(time_t)d, (long)((d - floor(d)) * 1e9)};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	p->prev = ev->ts_ns;
	int rc = fl_write_full(STDOUT_FILENO, b, n);
	free(b);
	if (rc < 0) {
		fl_cli_err("cannot write to stdout: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

int fl_cmd_replay(int argc, char **argv)
{
	struct play p = {.speed = 1, .timing = 1};
	int rc = parse_args(&p, argc, argv);
	if (rc)
		return rc < 0 ? FL_EXIT_OK : rc;
	struct fl_sessread *r;
	if ((rc = fl_cli_session_open(argv[optind], &r)))
		return rc;
	return fl_cli_session_each(r, play_event, &p);
}
