/* SPDX-License-Identifier: MIT */
/* cmd_run.c: fugue-log run — script(1) for sessions: a program on a PTY, recorded through libfuguelog. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fuguelog.h"
#include "pty.h"

struct rec {
	fl_session *s;
	int64_t spawn; /* id of the spawn event: the ref of everything after it */
	int no_input;
	char size[32]; /* "ROWSxCOLS" now */
	char *const *argv;
	int argc;
	struct fl_capture cap; /* the reservation PTY output is being read into */
};

static uint64_t ref_of(const struct rec *r)
{
	return r->spawn > 0 ? (uint64_t)r->spawn : 0;
}

static void on_started(void *ctx, pid_t pid, unsigned rows, unsigned cols)
{
	struct rec *r = ctx;
	char cwd[4096];
	if (!getcwd(cwd, sizeof cwd))
		snprintf(cwd, sizeof cwd, "?");
	r->spawn = fl_emit_spawn(r->s, 0, (uint32_t)pid, (uint32_t)getpid(), (const char *const *)r->argv,
				 (uint32_t)r->argc, cwd);
	/* the spawn has no room for the terminal: its TERM and size follow as the first state */
	const char *term = getenv("TERM");
	char reason[256];
	snprintf(reason, sizeof reason, "start TERM=%s", term ? term : "");
	snprintf(r->size, sizeof r->size, "%ux%u", rows, cols);
	fl_emit_state(r->s, ref_of(r), "", r->size, reason);
}

/* PTY output read straight into the ring: one reservation per read, below full none at all */
static uint8_t *on_reserve(void *ctx, size_t max, size_t *cap)
{
	struct rec *r = ctx;
	if (fl_capture_transcript(r->s, ref_of(r), 1, max, &r->cap) <= 0)
		return NULL; /* below full, or the lane is full (counted as dropped): the relay reads on */
	*cap = r->cap.cap;
	return r->cap.data;
}

static void on_commit(void *ctx, size_t n)
{
	struct rec *r = ctx;
	fl_capture_commit(r->s, &r->cap, n);
}

static void on_input(void *ctx, const uint8_t *p, size_t n)
{
	struct rec *r = ctx;
	if (!r->no_input)
		fl_emit_input(r->s, ref_of(r), p, n);
}

static void on_resize(void *ctx, unsigned rows, unsigned cols)
{
	struct rec *r = ctx;
	char now[32];
	snprintf(now, sizeof now, "%ux%u", rows, cols);
	fl_emit_state(r->s, ref_of(r), r->size, now, "SIGWINCH");
	memcpy(r->size, now, sizeof now);
}

static void on_error(void *ctx, int code, const char *what)
{
	struct rec *r = ctx;
	char msg[256];
	snprintf(msg, sizeof msg, "%s: %s", what, strerror(-code));
	fl_emit_error(r->s, ref_of(r), code, msg, "fugue-log run");
	fl_cli_err("run: %s", msg);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void help(void)
{
	printf("usage: fugue-log run [options] -- CMD [ARGS...]\n"
	       "\n"
	       "Runs CMD on a new pseudo-terminal, as script(1) does, and records it as one session:\n"
	       "spawn (argv, cwd, pid), a state with TERM and the size, every output byte as transcript,\n"
	       "typed bytes as input (at level full only), each resize as a state (\"ROWSxCOLS\"), PTY\n"
	       "failures as error, and exit (status, signal, duration). The terminal is in raw mode\n"
	       "while CMD runs and is restored however it ends; Ctrl-Z suspends both, fg resumes.\n"
	       "\n"
	       "  --level L         spawns, signals, prompts, full (default: FUGUE_SESSION_LOG, config\n"
	       "                    default_level, signals); transcript and input need full\n"
	       "  --session-id ID   the session id (default a new UUIDv7, said on stderr at the end)\n"
	       "  --no-input        never record typed bytes, even at full (they can hold passwords)\n"
	       "  --block           wait for room when a lane is full instead of dropping\n"
	       "  --lanes N         lanes, a power of two up to 64 (default 4)\n"
	       "  --lane-size BYTES bytes per lane, a power of two from 4K to 1G (default 1M)\n"
	       "  --root DIR, --config FILE   as for every command\n"
	       "\n"
	       "Exit codes: CMD's exit status, or 128+N when CMD died of signal N; 127 CMD not found,\n"
	       "126 not executable; 1 the session or the PTY could not be made; 2 usage error.\n");
}

enum { O_ID = 0x100, O_LEVEL, O_NOINPUT, O_BLOCK, O_LANES, O_LANE_SIZE };

int fl_cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {{"session-id", required_argument, NULL, O_ID},
					     {"level", required_argument, NULL, O_LEVEL},
					     {"no-input", no_argument, NULL, O_NOINPUT},
					     {"block", no_argument, NULL, O_BLOCK},
					     {"lanes", required_argument, NULL, O_LANES},
					     {"lane-size", required_argument, NULL, O_LANE_SIZE},
					     FL_CLI_COMMON_OPTS,
					     {0}};
	struct fl_session_opts so = {0};
	struct rec r = {0};
	int level = 0, ch;
	uint64_t lanes = 0, lane_size = 0;
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (fl_cli_common_opt(ch, optarg))
			continue;
		switch (ch) {
		case O_ID:
			if (fl_id_check(optarg) < 0)
				return fl_cli_usage_err("run",
							"session id '%s' refused: use 1 to 64 of A-Z a-z 0-9 . _ - "
							"(not '.' or '..')",
							optarg);
			so.id = optarg;
			break;
		case O_LEVEL:
			if ((level = fl_level_parse(optarg)) < 0)
				return fl_cli_usage_err("run", "unknown level '%s': use " FL_LEVEL_ALLOWED, optarg);
			break;
		case O_NOINPUT:
			r.no_input = 1;
			break;
		case O_BLOCK:
			so.full_policy = FL_FULL_BLOCK;
			break;
		case O_LANES:
			if (fl_cli_u64(optarg, &lanes) < 0 || lanes < 1 || lanes > 64 || (lanes & (lanes - 1)))
				return fl_cli_usage_err("run", "--lanes '%s': use a power of two from 1 to 64", optarg);
			break;
		case O_LANE_SIZE:
			if (fl_cli_u64(optarg, &lane_size) < 0 || lane_size < 4096 || lane_size > (1ull << 30) ||
			    (lane_size & (lane_size - 1)))
				return fl_cli_usage_err("run", "--lane-size '%s': use a power of two from 4K to 1G",
							optarg);
			break;
		case 'h':
			help();
			return FL_EXIT_OK;
		default:
			return fl_cli_usage_err("run", "bad option");
		}
	}
	if (optind >= argc)
		return fl_cli_usage_err("run", "no command: use 'fugue-log run [options] -- CMD [ARGS...]'");
	r.argv = argv + optind;
	r.argc = argc - optind;

	if (level)
		unsetenv("FUGUE_SESSION_LOG"); /* the command line wins over the environment */
	struct fl_config cfg;
	int rc = fl_cli_config(&cfg);
	if (rc)
		return rc;
	so.level = level;
	so.lanes = (uint32_t)lanes;
	so.lane_size = lane_size;
	so.shm_prefix = cfg.shm_prefix;
	so.config_path = fl_cli.config;
	char why[512] = "";
	rc = fl_session_open(&r.s, &so, why, sizeof why);
	if (rc < 0) {
		fl_cli_err("cannot open the session: %s", *why ? why : strerror(-rc));
		return rc == -EINVAL ? FL_EXIT_USAGE : FL_EXIT_FAIL;
	}

	/* a record must fit a quarter lane: read the PTY in chunks that do */
	uint64_t ls = lane_size ? lane_size : (1ull << 20);
	struct fl_pty_opts po = {.chunk = ls / 4 - 128 < (64 << 10) ? ls / 4 - 128 : (64 << 10)};
	struct fl_pty_hooks hooks = {&r, on_started, NULL, on_reserve, on_commit, on_input, on_resize, on_error};
	struct fl_pty_result res = {0};
	uint64_t t0 = now_ns();
	rc = fl_pty_run(r.argv, &po, &hooks, &res);
	if (rc == 0)
		fl_emit_exit(r.s, ref_of(&r), res.status, res.signal, now_ns() - t0);
	char id[80];
	snprintf(id, sizeof id, "%s", fl_session_id(r.s));
	fl_session_close(r.s);
	if (!so.id)
		fprintf(stderr, "fugue-log run: session %s\n", id);
	if (rc < 0)
		return FL_EXIT_FAIL;
	return res.signal ? 128 + res.signal : res.status;
}
