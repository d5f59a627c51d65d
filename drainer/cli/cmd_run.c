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
	struct fl_capture cap[2]; /* the reservations output and input are being read into */
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

/* PTY output and typed input read straight into the ring: one reservation per wakeup, below full none at all */
static uint8_t *on_reserve(void *ctx, enum fl_pty_dir dir, size_t max, size_t *cap)
{
	struct rec *r = ctx;
	struct fl_capture *c = &r->cap[dir];
	int64_t id = dir == FL_PTY_OUTPUT ? fl_capture_transcript(r->s, ref_of(r), 1, max, c)
		     : r->no_input	  ? 0
					  : fl_capture_input(r->s, ref_of(r), max, c);
	if (id <= 0)
		return NULL; /* below full, --no-input, or the lane is full (counted as dropped): the relay reads on */
	*cap = c->cap;
	return c->data;
}

static void on_commit(void *ctx, enum fl_pty_dir dir, size_t n)
{
	struct rec *r = ctx;
	fl_capture_commit(r->s, &r->cap[dir], n);
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

/* What the command line asked for. */
struct run_args {
	struct fl_session_opts so;
	int level;
	uint64_t lanes, lane_size;
};

/* One option; 0 taken, -1 help was printed, else the exit code of a usage error. */
static int parse_opt(int ch, struct run_args *a, struct rec *r)
{
	switch (ch) {
	case O_ID:
		if (fl_id_check(optarg) < 0)
			return fl_cli_usage_err(
			    "run", "session id '%s' refused: use 1 to 64 of A-Z a-z 0-9 . _ - (not '.' or '..')",
			    optarg);
		a->so.id = optarg;
		return 0;
	case O_LEVEL:
		if ((a->level = fl_level_parse(optarg)) < 0)
			return fl_cli_usage_err("run", "unknown level '%s': use " FL_LEVEL_ALLOWED, optarg);
		return 0;
	case O_NOINPUT:
		r->no_input = 1;
		return 0;
	case O_BLOCK:
		a->so.full_policy = FL_FULL_BLOCK;
		return 0;
	case O_LANES:
		if (fl_cli_u64(optarg, &a->lanes) < 0 || a->lanes < 1 || a->lanes > 64 || (a->lanes & (a->lanes - 1)))
			return fl_cli_usage_err("run", "--lanes '%s': use a power of two from 1 to 64", optarg);
		return 0;
	case O_LANE_SIZE:
		if (fl_cli_u64(optarg, &a->lane_size) < 0 || a->lane_size < 4096 || a->lane_size > (1ull << 30) ||
		    (a->lane_size & (a->lane_size - 1)))
			return fl_cli_usage_err("run", "--lane-size '%s': use a power of two from 4K to 1G", optarg);
		return 0;
	case 'h':
		help();
		return -1;
	default:
		return fl_cli_usage_err("run", "bad option");
	}
}

/* The command line into a and r (CMD and its arguments); 0, -1 after --help, or a usage error's exit code. */
static int parse_args(int argc, char **argv, struct run_args *a, struct rec *r)
{
	static const struct option opts[] = {{"session-id", required_argument, NULL, O_ID},
					     {"level", required_argument, NULL, O_LEVEL},
					     {"no-input", no_argument, NULL, O_NOINPUT},
					     {"block", no_argument, NULL, O_BLOCK},
					     {"lanes", required_argument, NULL, O_LANES},
					     {"lane-size", required_argument, NULL, O_LANE_SIZE},
					     FL_CLI_COMMON_OPTS,
					     {0}};
	int ch, rc;
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1)
		if (!fl_cli_common_opt(ch, optarg) && (rc = parse_opt(ch, a, r)) != 0)
			return rc;
	if (optind >= argc)
		return fl_cli_usage_err("run", "no command: use 'fugue-log run [options] -- CMD [ARGS...]'");
	r->argv = argv + optind;
	r->argc = argc - optind;
	return 0;
}

/* The session the recording goes to; 0 or the exit code, said why. */
static int open_session(struct run_args *a, struct rec *r)
{
	if (a->level)
		unsetenv("FUGUE_SESSION_LOG"); /* the command line wins over the environment */
	struct fl_config cfg;
	int rc = fl_cli_config(&cfg);
	if (rc)
		return rc;
	a->so.level = a->level;
	a->so.lanes = (uint32_t)a->lanes;
	a->so.lane_size = a->lane_size;
	a->so.shm_prefix = cfg.shm_prefix;
	a->so.config_path = fl_cli.config;
	char why[512] = "";
	rc = fl_session_open(&r->s, &a->so, why, sizeof why);
	if (rc < 0) {
		fl_cli_err("cannot open the session: %s", *why ? why : strerror(-rc));
		return rc == -EINVAL ? FL_EXIT_USAGE : FL_EXIT_FAIL;
	}
	return 0;
}

int fl_cmd_run(int argc, char **argv)
{
	struct run_args a = {0};
	struct rec r = {0};
	int rc = parse_args(argc, argv, &a, &r);
	if (rc)
		return rc < 0 ? FL_EXIT_OK : rc;
	if ((rc = open_session(&a, &r)) != 0)
		return rc;
	/* a record must fit a quarter lane: read the PTY in chunks that do */
	uint64_t ls = a.lane_size ? a.lane_size : (1ull << 20);
	struct fl_pty_opts po = {.chunk = ls / 4 - 128 < FL_PTY_CHUNK ? ls / 4 - 128 : FL_PTY_CHUNK};
	struct fl_pty_hooks hooks = {&r, on_started, on_reserve, on_commit, on_resize, on_error};
	struct fl_pty_result res = {0};
	uint64_t t0 = now_ns();
	rc = fl_pty_run(r.argv, &po, &hooks, &res);
	if (rc == 0)
		fl_emit_exit(r.s, ref_of(&r), res.status, res.signal, now_ns() - t0);
	char id[80];
	snprintf(id, sizeof id, "%s", fl_session_id(r.s));
	fl_session_close(r.s);
	if (!a.so.id)
		fprintf(stderr, "fugue-log run: session %s\n", id);
	if (rc < 0)
		return FL_EXIT_FAIL;
	return res.signal ? 128 + res.signal : res.status;
}
