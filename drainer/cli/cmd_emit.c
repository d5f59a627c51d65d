/* SPDX-License-Identifier: MIT */
/* cli_emit.c: fugue-log emit — one session of events through the public libfuguelog API (logger(1), load). */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fuguelog.h"

#define N_PRODUCER_KINDS (FL_KIND_FIRST_DRAINER - 1) /* level and dropped are the drainer's */
#define MAX_THREADS 256
#define FL_RING_ID_MAX_CLI 72 /* a session id (64) and its NUL, rounded up */

struct emit_cfg {
	int kind; /* 0: cycle through every producer kind */
	uint64_t count;
	uint64_t size;
	int have_size;
	unsigned threads;
	double rate; /* events/s over all threads; 0 = as fast as possible */
	double duration;
	const char *text;
	int binary;
	uint64_t burst;
	double start;
};

struct worker {
	pthread_t th;
	fl_session *s;
	const struct emit_cfg *cfg;
	uint64_t first, n; /* event indices [first, first+n); n UINT64_MAX = until --duration or a signal */
	uint64_t emitted, admitted, filtered, dropped;
	char *str;	/* text of string fields, NUL-terminated */
	uint8_t *bytes; /* payload of prompt/transcript/input */
	size_t blen;
	int64_t last_spawn;
	char cwd[512];
	char target[72];
};

static atomic_int stop_flag;

static void on_signal(int sig)
{
	/* the second signal ends at once: a --block emit may be waiting on a drainer that is gone */
	if (atomic_exchange(&stop_flag, 1))
		_exit(128 + sig);
}

static const char *default_text(int kind)
{
	switch (kind) {
	case FL_KIND_SPAWN:
		return "fugue-session";
	case FL_KIND_ACTION:
		return "attach";
	case FL_KIND_COMMAND:
		return "make";
	case FL_KIND_COMPLETION:
		return "turn";
	case FL_KIND_ERROR:
		return "something failed";
	case FL_KIND_STATE:
		return "waiting for input";
	case FL_KIND_PROMPT:
		return "write a haiku about ring buffers";
	case FL_KIND_TRANSCRIPT:
		return "building... done\n";
	case FL_KIND_INPUT:
		return "y\n";
	}
	return "fugue";
}

/* Prepares the thread's payloads: --text or the kind's default, stretched or cut to --size. */
static int prepare(struct worker *w, unsigned seed)
{
	const struct emit_cfg *c = w->cfg;
	const char *base = c->text ? c->text : default_text(c->kind ? c->kind : FL_KIND_TRANSCRIPT);
	size_t blen = strlen(base);
	size_t n = c->have_size ? c->size : blen;
	w->str = malloc(n + 1);
	w->bytes = malloc(n ? n : 1);
	if (!w->str || !w->bytes)
		return -ENOMEM;
	uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
	for (size_t i = 0; i < n; i++) {
		char ch = blen ? base[i % blen] : 'x';
		w->str[i] = ch;
		if (c->binary) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			w->bytes[i] = (uint8_t)x;
		} else {
			w->bytes[i] = (uint8_t)ch;
		}
	}
	w->str[n] = 0;
	w->blen = n;
	return 0;
}

static uint64_t elapsed_ns(const struct emit_cfg *c)
{
	return (uint64_t)((fl_cli_now() - c->start) * 1e9);
}

static int64_t emit_one(struct worker *w, int kind)
{
	fl_session *s = w->s;
	const char *t = w->cfg->text || w->cfg->have_size ? w->str : default_text(kind);
	uint64_t ref = w->last_spawn > 0 ? (uint64_t)w->last_spawn : 0;
	const void *b = w->bytes;
	size_t bl = w->blen;
	if (!w->cfg->text && !w->cfg->have_size && !w->cfg->binary)
		b = t, bl = strlen(t); /* each byte kind its own default text */
	switch (kind) {
	case FL_KIND_SPAWN: {
		const char *argv[] = {t};
		int64_t id = fl_emit_spawn(s, 0, (uint32_t)getpid(), (uint32_t)getppid(), argv, 1, w->cwd);
		if (id > 0)
			w->last_spawn = id;
		return id;
	}
	case FL_KIND_EXIT:
		return fl_emit_exit(s, ref, 0, 0, elapsed_ns(w->cfg));
	case FL_KIND_ACTION:
		return fl_emit_action(s, 0, t, w->target, "fugue-log emit");
	case FL_KIND_COMMAND: {
		const char *args[] = {"-j2"};
		return fl_emit_command(s, 0, t, args, 1);
	}
	case FL_KIND_COMPLETION:
		return fl_emit_completion(s, ref, t, "ok", elapsed_ns(w->cfg));
	case FL_KIND_ERROR:
		return fl_emit_error(s, ref, 1, t, "fugue-log emit");
	case FL_KIND_STATE:
		return fl_emit_state(s, ref, "running", "waiting", t);
	case FL_KIND_PROMPT:
		return fl_emit_prompt(s, 0, b, bl);
	case FL_KIND_TRANSCRIPT:
		return fl_emit_transcript(s, 0, 1, b, bl);
	case FL_KIND_INPUT:
		return fl_emit_input(s, 0, b, bl);
	}
	return -EINVAL;
}

static void count(struct worker *w, int64_t rc)
{
	w->emitted++;
	if (rc > 0)
		w->admitted++;
	else if (rc == 0)
		w->filtered++;
	else
		w->dropped++;
}

static void sleep_until(double t)
{
	struct timespec ts = {(time_t)t, (long)((t - floor(t)) * 1e9)};
	/* EINTR (a signal) returns early; the loop then sees stop_flag */
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void *run(void *arg)
{
	struct worker *w = arg;
	const struct emit_cfg *c = w->cfg;
	double per = c->rate > 0 ? (double)c->threads / c->rate : 0; /* seconds between this thread's events */
	double end = c->duration > 0 ? c->start + c->duration : INFINITY;
	for (uint64_t j = 0; j < w->n; j++) {
		if (atomic_load_explicit(&stop_flag, memory_order_relaxed))
			break;
		if (per > 0) {
			/* absolute schedule: a late thread catches up, an early one sleeps (never spins) */
			double due = c->start + (double)j * per;
			if (due >= end)
				break;
			if (fl_cli_now() < due) {
				sleep_until(due);
				if (atomic_load_explicit(&stop_flag, memory_order_relaxed))
					break;
			}
		}
		if (c->duration > 0 && (per > 0 || (j & 63) == 0) && fl_cli_now() >= end)
			break;
		uint64_t idx = w->first + j;
		int kind = c->kind ? c->kind : (int)(idx % N_PRODUCER_KINDS) + 1;
		count(w, emit_one(w, kind));
	}
	return NULL;
}

static void help(void)
{
	printf("usage: fugue-log emit --event KIND [options]\n"
	       "\n"
	       "Opens one session, writes events through libfuguelog, closes it, and prints one JSON\n"
	       "object on stdout:\n"
	       "  {\"session\":ID,\"emitted\":N,\"admitted\":N,\"dropped\":N,\"filtered\":N,\"seconds\":S}\n"
	       "emitted = calls made; admitted = written to the ring; filtered = above the session's\n"
	       "level; dropped = lost to a full lane (the drainer writes a 'dropped' line for them).\n"
	       "\n"
	       "  --event KIND      spawn, exit, action, command, completion, error, state, prompt,\n"
	       "                    transcript, input, or 'all' to cycle through these ten in order\n"
	       "  --count N         events to emit (default 1; unlimited when --duration is given)\n"
	       "  --duration S      stop after S seconds (whichever of --count/--duration comes first)\n"
	       "  --rate EPS        events per second over all threads (default: as fast as possible);\n"
	       "                    paced by sleeping, so low rates cost no CPU\n"
	       "  --threads T       emitting threads, 1..%d (default 1); --count is split between them\n"
	       "  --text STR        the event's text: spawn argv[0], action, command name, completion\n"
	       "                    task, error message, state reason, prompt/transcript/input bytes\n"
	       "  --size BYTES      stretch or cut the text to exactly BYTES (K/M suffixes allowed)\n"
	       "  --binary          prompt/transcript/input carry pseudo-random bytes (not UTF-8)\n"
	       "  --burst N         then emit N transcript events (--size bytes, default 1K) at full speed\n"
	       "  --session-id ID   the session id (default a new UUIDv7): 1 to 64 of A-Z a-z 0-9 . _ -\n"
	       "  --level L         spawns, signals, prompts, full (default: FUGUE_SESSION_LOG, config\n"
	       "                    default_level, signals); this flag wins over FUGUE_SESSION_LOG\n"
	       "  --block           wait for room when a lane is full instead of dropping\n"
	       "  --block-timeout MS  with --block: drop after waiting MS milliseconds (default: forever)\n"
	       "  --wait-attach[=MS] before emitting, wait up to MS (default 5000) for the drainer to\n"
	       "                    attach the ring, so a fast start does not fill a lane nobody reads\n"
	       "  --lanes N         lanes, a power of two up to 64 (default: 4, or enough for --threads)\n"
	       "  --lane-size BYTES bytes per lane, a power of two from 4K to 1G (default 1M)\n"
	       "  --root DIR, --config FILE   as for every command (the config gives default_level)\n"
	       "\n"
	       "SIGINT/SIGTERM stop emitting; the session is closed and the JSON printed as usual.\n"
	       "A second signal exits at once (128+signal), e.g. when --block waits for a dead drainer.\n"
	       "Exit codes: 0 the session ran (drops are reported, not failures); 1 the session could\n"
	       "not be opened (e.g. a live session with that id exists); 2 usage error (bad kind,\n"
	       "level, number or session id).\n",
	       MAX_THREADS);
}

enum {
	O_EVENT = 0x100,
	O_COUNT,
	O_SIZE,
	O_THREADS,
	O_RATE,
	O_DURATION,
	O_ID,
	O_LEVEL,
	O_TEXT,
	O_BLOCK,
	O_BLOCK_TIMEOUT,
	O_LANES,
	O_LANE_SIZE,
	O_BURST,
	O_BINARY,
	O_WAIT_ATTACH
};

/* What the command line asked for beyond the load itself: the session and its ring. */
struct emit_args {
	struct emit_cfg c;
	struct fl_session_opts so;
	const char *event;
	int have_count, level;
	uint64_t lanes, lane_size, block_ms;
};

/* The load's options: how many events, how big, how fast. 1 when ch is not one of them, else 0 or an exit code. */
static int parse_load_opt(struct emit_args *a, int ch, const char *arg)
{
	uint64_t v;
	switch (ch) {
	case O_COUNT:
		if (fl_cli_u64(arg, &a->c.count) < 0)
			return fl_cli_usage_err("emit", "--count '%s' is not a non-negative number", arg);
		a->have_count = 1;
		return 0;
	case O_SIZE:
		if (fl_cli_u64(arg, &a->c.size) < 0 || a->c.size > (1ull << 30))
			return fl_cli_usage_err("emit", "--size '%s' is not a size up to 1G (e.g. 100, 4K)", arg);
		a->c.have_size = 1;
		return 0;
	case O_THREADS:
		if (fl_cli_u64(arg, &v) < 0 || v < 1 || v > MAX_THREADS)
			return fl_cli_usage_err("emit", "--threads '%s': use 1 to %d", arg, MAX_THREADS);
		a->c.threads = (unsigned)v;
		return 0;
	case O_RATE:
		if (fl_cli_double(arg, &a->c.rate) < 0)
			return fl_cli_usage_err("emit", "--rate '%s' is not a number of events per second", arg);
		return 0;
	case O_DURATION:
		if (fl_cli_double(arg, &a->c.duration) < 0)
			return fl_cli_usage_err("emit", "--duration '%s' is not a number of seconds", arg);
		return 0;
	case O_BURST:
		if (fl_cli_u64(arg, &a->c.burst) < 0)
			return fl_cli_usage_err("emit", "--burst '%s' is not a non-negative number", arg);
		return 0;
	}
	return 1;
}

/* The session's options: id, level, ring shape, what a full lane does. Returns as parse_load_opt. */
static int parse_session_opt(struct emit_args *a, int ch, const char *arg)
{
	switch (ch) {
	case O_ID:
		if (fl_id_check(arg) < 0)
			return fl_cli_usage_err("emit",
						"session id '%s' refused: use 1 to 64 of A-Z a-z 0-9 . _ - "
						"(not '.' or '..')",
						arg);
		a->so.id = arg;
		return 0;
	case O_LEVEL:
		if ((a->level = fl_level_parse(arg)) < 0)
			return fl_cli_usage_err("emit", "unknown level '%s': use " FL_LEVEL_ALLOWED, arg);
		return 0;
	case O_BLOCK:
		a->so.full_policy = FL_FULL_BLOCK;
		return 0;
	case O_WAIT_ATTACH: {
		uint64_t ms = 5000;
		if (arg && fl_cli_u64(arg, &ms) < 0)
			return fl_cli_usage_err("emit", "--wait-attach='%s' is not a number of milliseconds", arg);
		a->so.attach_timeout_ns = ms * 1000000ull;
		return 0;
	}
	case O_BLOCK_TIMEOUT:
		if (fl_cli_u64(arg, &a->block_ms) < 0)
			return fl_cli_usage_err("emit", "--block-timeout '%s' is not a number of milliseconds", arg);
		return 0;
	case O_LANES:
		if (fl_cli_u64(arg, &a->lanes) < 0 || a->lanes < 1 || a->lanes > 64 || (a->lanes & (a->lanes - 1)))
			return fl_cli_usage_err("emit", "--lanes '%s': use a power of two from 1 to 64", arg);
		return 0;
	case O_LANE_SIZE:
		if (fl_cli_u64(arg, &a->lane_size) < 0 || a->lane_size < 4096 || a->lane_size > (1ull << 30) ||
		    (a->lane_size & (a->lane_size - 1)))
			return fl_cli_usage_err("emit", "--lane-size '%s': use a power of two from 4K to 1G", arg);
		return 0;
	}
	return 1;
}

/* Reads the command line into a; 0, FL_EXIT_HELP when help was printed, or a usage exit code. */
#define FL_EXIT_HELP (-1)
static int parse_args(struct emit_args *a, int argc, char **argv)
{
	static const struct option opts[] = {{"event", required_argument, NULL, O_EVENT},
					     {"count", required_argument, NULL, O_COUNT},
					     {"size", required_argument, NULL, O_SIZE},
					     {"threads", required_argument, NULL, O_THREADS},
					     {"rate", required_argument, NULL, O_RATE},
					     {"duration", required_argument, NULL, O_DURATION},
					     {"session-id", required_argument, NULL, O_ID},
					     {"level", required_argument, NULL, O_LEVEL},
					     {"text", required_argument, NULL, O_TEXT},
					     {"block", no_argument, NULL, O_BLOCK},
					     {"block-timeout", required_argument, NULL, O_BLOCK_TIMEOUT},
					     {"wait-attach", optional_argument, NULL, O_WAIT_ATTACH},
					     {"lanes", required_argument, NULL, O_LANES},
					     {"lane-size", required_argument, NULL, O_LANE_SIZE},
					     {"burst", required_argument, NULL, O_BURST},
					     {"binary", no_argument, NULL, O_BINARY},
					     FL_CLI_COMMON_OPTS,
					     {0}};
	int ch, rc;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (fl_cli_common_opt(ch, optarg))
			continue;
		if ((rc = parse_load_opt(a, ch, optarg)) != 1 || (rc = parse_session_opt(a, ch, optarg)) != 1) {
			if (rc)
				return rc;
			continue;
		}
		switch (ch) {
		case O_EVENT:
			a->event = optarg;
			if (!strcmp(optarg, "all"))
				a->c.kind = 0;
			else if ((a->c.kind = fl_kind_parse(optarg)) < 0 || a->c.kind > N_PRODUCER_KINDS)
				return fl_cli_usage_err("emit",
							"unknown event kind '%s': use spawn, exit, action, command, "
							"completion, error, state, prompt, transcript, input or all",
							optarg);
			break;
		case O_TEXT:
			a->c.text = optarg;
			break;
		case O_BINARY:
			a->c.binary = 1;
			break;
		case 'h':
			help();
			return FL_EXIT_HELP;
		default:
			return fl_cli_usage_err("emit", "bad option");
		}
	}
	if (optind < argc)
		return fl_cli_usage_err("emit", "unexpected argument '%s'", argv[optind]);
	if (!a->event)
		return fl_cli_usage_err("emit", "--event KIND is required (a kind, or 'all')");
	if (!a->have_count)
		a->c.count = a->c.duration > 0 ? UINT64_MAX : 1;
	if (a->block_ms && a->so.full_policy != FL_FULL_BLOCK)
		return fl_cli_usage_err("emit", "--block-timeout needs --block");
	return 0;
}

/* The record must fit a quarter lane: refused here rather than counted as every event dropped. */
static int check_fits(const struct emit_args *a, const char *cwd)
{
	const struct emit_cfg *c = &a->c;
	uint64_t ls = a->lane_size ? a->lane_size : (1ull << 20);
	uint64_t text_len = c->have_size ? c->size : c->text ? strlen(c->text) : 64;
	/* header fields and the kind's short strings take under 96 bytes; spawn also carries the cwd */
	uint64_t need = text_len + 96 + (c->kind == 0 || c->kind == FL_KIND_SPAWN ? strlen(cwd) : 0);
	uint64_t burst_len = c->have_size ? c->size : 1024;
	if (c->burst && burst_len + 96 > need)
		need = burst_len + 96;
	if (need > ls / 4 - 16)
		return fl_cli_usage_err("emit",
					"an event of about %llu bytes does not fit a lane of %llu bytes (the limit is "
					"a quarter lane); raise --lane-size",
					(unsigned long long)need, (unsigned long long)ls);
	return 0;
}

/* Opens the session the options describe; 0 or an exit code (the error said). */
static int open_session(struct emit_args *a, fl_session **s)
{
	if (a->level)
		unsetenv("FUGUE_SESSION_LOG"); /* the command line wins over the environment */
	struct fl_config cfg;
	int rc = fl_cli_config(&cfg);
	if (rc)
		return rc;
	uint64_t lanes = a->lanes;
	if (!lanes && a->c.threads > 4) {
		lanes = 8;
		while (lanes < a->c.threads && lanes < 64)
			lanes *= 2;
	}
	a->so.level = a->level;
	a->so.lanes = (uint32_t)lanes;
	a->so.lane_size = a->lane_size;
	a->so.block_timeout_ns = a->block_ms * 1000000ull;
	a->so.shm_prefix = cfg.shm_prefix;
	a->so.config_path = fl_cli.config;
	char why[512] = "";
	rc = fl_session_open(s, &a->so, why, sizeof why);
	if (rc < 0) {
		fl_cli_err("cannot open the session: %s", *why ? why : strerror(-rc));
		return rc == -EINVAL ? FL_EXIT_USAGE : FL_EXIT_FAIL;
	}
	if (rc == FL_OPEN_UNATTACHED)
		fl_cli_err("warning: no drainer attached the ring within %llu ms; emitting anyway (events may be "
			   "dropped until one does: is fugue-logd running?)",
			   (unsigned long long)(a->so.attach_timeout_ns / 1000000));
	return 0;
}

/* Splits the count over the threads and runs them (the only one on this thread); 0 or an exit code. */
static int run_workers(struct worker *w, const struct emit_cfg *c, fl_session *s, const char *cwd)
{
	uint64_t per = c->count == UINT64_MAX ? UINT64_MAX : c->count / c->threads;
	uint64_t extra = c->count == UINT64_MAX ? 0 : c->count % c->threads, first = 0;
	unsigned started = 0;
	int rc = FL_EXIT_OK;
	for (unsigned t = 0; t < c->threads; t++) {
		w[t].s = s;
		w[t].cfg = c;
		w[t].first = first;
		w[t].n = per == UINT64_MAX ? UINT64_MAX : per + (t < extra);
		first += w[t].n == UINT64_MAX ? 0 : w[t].n;
		snprintf(w[t].cwd, sizeof w[t].cwd, "%s", cwd);
		snprintf(w[t].target, sizeof w[t].target, "%s", fl_session_id(s));
		if (prepare(&w[t], t) < 0) {
			uint64_t text_len = c->have_size ? c->size : c->text ? strlen(c->text) : 64;
			fl_cli_err("out of memory preparing %llu-byte payloads", (unsigned long long)text_len);
			rc = FL_EXIT_FAIL;
			atomic_store(&stop_flag, 1);
			break;
		}
		int e = c->threads == 1 ? 0 : pthread_create(&w[t].th, NULL, run, &w[t]);
		if (e) {
			fl_cli_err("cannot start thread %u: %s", t, strerror(e));
			rc = FL_EXIT_FAIL;
			atomic_store(&stop_flag, 1);
			break;
		}
		started++;
	}
	if (c->threads == 1 && started == 1)
		run(&w[0]);
	else
		for (unsigned t = 0; t < started; t++)
			pthread_join(w[t].th, NULL);
	return rc;
}

/* --burst: that many transcript events back to back after the paced load, counted into *burst. */
static void run_burst(struct worker *burst, const struct emit_cfg *c, fl_session *s)
{
	/* the burst has its own payload: --size, or 1 KiB of transcript-like text */
	struct emit_cfg bc = *c;
	bc.kind = FL_KIND_TRANSCRIPT;
	if (!bc.have_size)
		bc.size = 1024, bc.have_size = 1;
	burst->cfg = &bc;
	burst->str = NULL, burst->bytes = NULL;
	if (prepare(burst, 99) == 0)
		for (uint64_t i = 0; i < c->burst && !atomic_load(&stop_flag); i++)
			count(burst, fl_emit_transcript(s, 0, 1, burst->bytes, burst->blen));
	free(burst->str);
	free(burst->bytes);
	burst->cfg = NULL;
}

/* The summary line: what the threads and the burst emitted, and what the ring took. */
static int report(const char *id, const struct worker *w, unsigned n, const struct worker *burst, double secs)
{
	uint64_t em = burst->emitted, ad = burst->admitted, fi = burst->filtered, dr = burst->dropped;
	for (unsigned t = 0; t < n; t++)
		em += w[t].emitted, ad += w[t].admitted, fi += w[t].filtered, dr += w[t].dropped;
	printf("{\"session\":");
	fl_cli_json_str(stdout, id);
	printf(",\"emitted\":%llu,\"admitted\":%llu,\"dropped\":%llu,\"filtered\":%llu,\"seconds\":%.3f}\n",
	       (unsigned long long)em, (unsigned long long)ad, (unsigned long long)dr, (unsigned long long)fi, secs);
	return fflush(stdout) ? FL_EXIT_FAIL : FL_EXIT_OK;
}

int fl_cmd_emit(int argc, char **argv)
{
	struct emit_args a = {.c = {.kind = -1, .threads = 1}};
	int rc = parse_args(&a, argc, argv);
	if (rc)
		return rc == FL_EXIT_HELP ? FL_EXIT_OK : rc;
	char cwd[512];
	if (!getcwd(cwd, sizeof cwd))
		snprintf(cwd, sizeof cwd, "?");
	if ((rc = check_fits(&a, cwd)))
		return rc;
	fl_session *s;
	if ((rc = open_session(&a, &s)))
		return rc;

	struct sigaction sa = {0};
	sa.sa_handler = on_signal; /* no SA_RESTART: a sleeping thread wakes to see the flag */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	struct emit_cfg *c = &a.c;
	struct worker *w = calloc(c->threads, sizeof *w);
	if (!w) {
		fl_session_close(s);
		fl_cli_err("out of memory");
		return FL_EXIT_FAIL;
	}
	c->start = fl_cli_now();
	rc = run_workers(w, c, s, cwd);
	struct worker burst = w[0];
	burst.emitted = burst.admitted = burst.filtered = burst.dropped = 0;
	if (c->burst && !rc && !atomic_load(&stop_flag))
		run_burst(&burst, c, s);
	double secs = fl_cli_now() - c->start;
	char id[FL_RING_ID_MAX_CLI];
	snprintf(id, sizeof id, "%s", fl_session_id(s));
	fl_session_close(s);

	int out = report(id, w, c->threads, &burst, secs);
	for (unsigned t = 0; t < c->threads; t++) {
		free(w[t].str);
		free(w[t].bytes);
	}
	free(w);
	return rc ? rc : out;
}
