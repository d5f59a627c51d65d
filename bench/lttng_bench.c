/* SPDX-License-Identifier: MIT */
/* lttng_bench.c: fugue-bench-lttng — the same events through LTTng-UST and libfuguelog, in one process, interleaved. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "fuguelog.h"
#include "lttng_tp.h"
#include "ring.h"

/*
 * Run by fugue-bench as `fugue-bench-lttng --quick|--full`. It prints sample
 * lines ("fig KEY UNIT v1 v2 ...", "absent KEY UNIT reason") on stdout.
 *
 * Driver: starts a private lttng-sessiond (its own LTTNG_HOME under /tmp; as
 * root it first drops to nobody, because a root session daemon always uses
 * /var/run/lttng), then for the discard and blocking channel modes creates a
 * session, runs itself as `--app MODE`, stops the session and counts the
 * recorded events with babeltrace2. App: opens a libfuguelog session with the
 * built-in consumer draining it and times batches of the same event through
 * both, interleaved round by round.
 */

#define SMALL 100
#define CHUNK 4096
#define NOBODY 65534

static int quick;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fugue-bench-lttng: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

/* ---- app ----------------------------------------------------------------------------------- */

static double time_lttng(const void *data, size_t len, int calls)
{
	uint64_t t0 = fl_bench_ticks();
	for (int i = 0; i < calls; i++)
		lttng_ust_tracepoint(fugue_bench, transcript, 0, 1, (const uint8_t *)data, len);
	return fl_bench_ticks_ns(fl_bench_ticks() - t0) / calls;
}

static double time_fl(fl_session *s, const void *data, size_t len, int calls)
{
	uint64_t t0 = fl_bench_ticks();
	for (int i = 0; i < calls; i++)
		fl_emit_transcript(s, 0, 1, data, len);
	return fl_bench_ticks_ns(fl_bench_ticks() - t0) / calls;
}

static int wait_drained(const char *shm)
{
	struct fl_ring r;
	char why[256];
	if (fl_ring_attach(&r, shm, why, sizeof why) < 0)
		return -1;
	for (int i = 0; i < 600000; i++) {
		int busy = 0;
		for (uint32_t l = 0; l < r.lane_count; l++)
			busy |= fl_load_acquire(&r.lanes[l].head) != fl_load_acquire(&r.lanes[l].tail);
		if (!busy)
			break;
		usleep(50);
	}
	fl_ring_detach(&r);
	return 0;
}

static int app(const char *mode)
{
	int blocking = !strcmp(mode, "blocking");
	char small[SMALL], chunk[CHUNK], id[64], shm[160], why[256] = "";
	fl_bench_small_payload(small);
	fl_bench_transcript_chunk(chunk, CHUNK, 1);
	fl_bench_clock_init(quick ? 20 : 100);
	snprintf(id, sizeof id, "bench-lttng-%d", (int)getpid());
	unsetenv("FUGUE_SESSION_LOG");
	/* blocking mode on both sides: neither loses an event, so the bulk rates compare the same work */
	struct fl_session_opts o = {.id = id,
				    .level = FL_LEVEL_FULL,
				    .lanes = 4,
				    .lane_size = 8 << 20,
				    .full_policy = blocking ? FL_FULL_BLOCK : FL_FULL_DROP};
	fl_session *s;
	if (fl_session_open(&s, &o, why, sizeof why) < 0)
		fail("cannot open a session: %s", why);
	fl_ring_name(shm, sizeof shm, NULL, id);
	const char *names[] = {shm};
	struct fl_consumer c;
	if (fl_consumer_start(&c, names, 1) < 0)
		fail("the consumer could not attach to %s", shm);

	const char *sfx = blocking ? ".blocking" : "";
	char k[64];
	snprintf(k, sizeof k, "lttng.small%s", sfx);
	struct fl_fig *ls = fl_fig(k, "ns");
	snprintf(k, sizeof k, "lttng.transcript4k%s", sfx);
	struct fl_fig *lt = fl_fig(k, "ns");
	snprintf(k, sizeof k, "lttng.fl.small%s", sfx);
	struct fl_fig *fs = fl_fig(k, "ns");
	snprintf(k, sizeof k, "lttng.fl.transcript4k%s", sfx);
	struct fl_fig *ft = fl_fig(k, "ns");
	snprintf(k, sizeof k, "lttng.speedup.small%s", sfx);
	struct fl_fig *sp = fl_fig(k, "x");

	/* warm both up: fault in every page of our lane and of LTTng's sub-buffers, then let them drain */
	unsigned long long calls = 0;
	for (int i = 0; i < 3 * (8 << 20) / CHUNK; i++) {
		fl_emit_transcript(s, 0, 1, chunk, CHUNK);
		if (i % 1024 == 1023)
			wait_drained(shm);
	}
	for (int i = 0; i < 4096; i++)
		lttng_ust_tracepoint(fugue_bench, transcript, 0, 1, (const uint8_t *)chunk, CHUNK);
	calls += 4096;
	wait_drained(shm);
	usleep(200000);
	int rounds = quick ? 4 : 100;
	for (int r = 0; r < rounds; r++) {
		double lsum = 0, fsum = 0;
		for (int v0 = 0; v0 < 4; v0++) {
			int v = (v0 + r) % 4;
			for (int b = 0; b < 16; b++) {
				double x;
				switch (v) {
				case 0:
					x = time_lttng(small, SMALL, 64);
					fl_fig_add(ls, x);
					lsum += x;
					calls += 64;
					break;
				case 1:
					x = time_fl(s, small, SMALL, 64);
					fl_fig_add(fs, x);
					fsum += x;
					break;
				case 2:
					fl_fig_add(lt, time_lttng(chunk, CHUNK, 16));
					calls += 16;
					break;
				case 3:
					fl_fig_add(ft, time_fl(s, chunk, CHUNK, 16));
					break;
				}
			}
		}
		fl_fig_add(sp, lsum / fsum);
		/* let both consumers empty their buffers before the next round */
		wait_drained(shm);
		usleep(5000);
	}
	/*
	 * In bulk: millions of back-to-back small events through each, in rounds
	 * of 1M, alternating, each system's consumer emptying its buffers in
	 * between. Events per second, and the same as a ratio.
	 */
	snprintf(k, sizeof k, "lttng.bulk.small%s", sfx);
	struct fl_fig *lb = fl_fig(k, "Mev/s");
	snprintf(k, sizeof k, "lttng.fl.bulk.small%s", sfx);
	struct fl_fig *fb = fl_fig(k, "Mev/s");
	snprintf(k, sizeof k, "lttng.bulk.speedup.small%s", sfx);
	struct fl_fig *bsp = fl_fig(k, "x");
	int bulk = quick ? 100000 : 1000000;
	for (int r = 0; r < (quick ? 2 : 5); r++) {
		uint64_t t0 = fl_bench_ticks();
		for (int i = 0; i < bulk; i++)
			lttng_ust_tracepoint(fugue_bench, transcript, 0, 1, (const uint8_t *)small, SMALL);
		double lns = fl_bench_ticks_ns(fl_bench_ticks() - t0);
		calls += (unsigned long long)bulk;
		usleep(quick ? 50000 : 300000); /* consumerd writes the sub-buffers out */
		t0 = fl_bench_ticks();
		for (int i = 0; i < bulk; i++)
			fl_emit_transcript(s, 0, 1, small, SMALL);
		double fns = fl_bench_ticks_ns(fl_bench_ticks() - t0);
		wait_drained(shm);
		fl_fig_add(lb, bulk / lns * 1e3);
		fl_fig_add(fb, bulk / fns * 1e3);
		fl_fig_add(bsp, lns / fns);
	}
	struct fl_stats st;
	fl_session_stats(s, &st);
	fl_session_close(s);
	fl_consumer_stop(&c);
	fl_ring_unlink(shm);
	for (size_t i = 0; i < fl_fig_count(); i++)
		fl_bench_write_samples(stdout, fl_fig_at(i));
	printf("calls %llu fl_dropped %llu\n", calls, (unsigned long long)st.dropped);
	return 0;
}

/* ---- driver ----------------------------------------------------------------------------------- */

static char home[256], logpath[300];

/* Runs an lttng command line quietly, its output appended to the log. */
static int lt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int lt(const char *fmt, ...)
{
	char cmd[2048], full[2400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	snprintf(full, sizeof full, "%s >>'%s' 2>&1", cmd, logpath);
	return system(full);
}

static void absent_all(const char *why)
{
	static const char *const keys[] = {"lttng.small", "lttng.transcript4k"};
	for (int i = 0; i < 2; i++)
		printf("absent %s ns %s\n", keys[i], why);
	fflush(stdout);
}

static pid_t sessiond = -1;

static void stop_sessiond(void)
{
	if (sessiond > 0) {
		kill(sessiond, SIGTERM);
		for (int i = 0; i < 300 && waitpid(sessiond, NULL, WNOHANG) == 0; i++)
			usleep(10000);
		if (waitpid(sessiond, NULL, WNOHANG) == 0) {
			kill(sessiond, SIGKILL);
			waitpid(sessiond, NULL, 0);
		}
		sessiond = -1;
	}
}

/* One channel mode: session, app run, count. Returns 0 or -1 (reason on stderr). */
static int run_mode(const char *self, const char *mode)
{
	int blocking = !strcmp(mode, "blocking");
	char out[400];
	snprintf(out, sizeof out, "%s/trace-%s", home, mode);
	if (lt("lttng create fb-%s --output='%s'", mode, out) ||
	    lt("lttng enable-channel -u -s fb-%s ch --subbuf-size=4M --num-subbuf=8%s", mode,
	       blocking ? " --blocking-timeout=inf" : "") ||
	    lt("lttng enable-event -u -s fb-%s -c ch fugue_bench:transcript", mode) ||
	    lt("lttng add-context -u -s fb-%s -c ch -t vpid -t vtid", mode) || lt("lttng start fb-%s", mode)) {
		fprintf(stderr, "fugue-bench-lttng: lttng session setup failed, see %s\n", logpath);
		return -1;
	}
	int p[2];
	if (pipe(p) < 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		if (blocking)
			setenv("LTTNG_UST_ALLOW_BLOCKING", "1", 1);
		/* wait for the session daemon's registration before main, so the first events count */
		setenv("LTTNG_UST_REGISTER_TIMEOUT", "10000", 1);
		execl(self, self, "--app", mode, quick ? "--quick" : "--full", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	FILE *in = fdopen(p[0], "r");
	char *line = NULL;
	size_t cap = 0;
	unsigned long long calls = 0, fl_dropped = 0;
	while (in && getline(&line, &cap, in) > 0) {
		if (sscanf(line, "calls %llu fl_dropped %llu", &calls, &fl_dropped) == 2)
			continue;
		fputs(line, stdout);
	}
	free(line);
	if (in)
		fclose(in);
	int st;
	waitpid(pid, &st, 0);
	lt("lttng stop fb-%s", mode);
	lt("lttng destroy fb-%s", mode);
	if (!WIFEXITED(st) || WEXITSTATUS(st) || !calls) {
		fprintf(stderr, "fugue-bench-lttng: the %s app run failed\n", mode);
		return -1;
	}
	char cmd[600];
	snprintf(cmd, sizeof cmd, "babeltrace2 '%s' 2>>'%s' | grep -c 'fugue_bench:transcript'", out, logpath);
	FILE *bt = popen(cmd, "r");
	unsigned long long recorded = 0;
	if (!bt || fscanf(bt, "%llu", &recorded) != 1)
		recorded = 0;
	if (bt)
		pclose(bt);
	printf("fig lttng.%s.recorded events %llu\n", mode, recorded);
	printf("fig lttng.%s.lost events %llu\n", mode, calls - recorded);
	printf("fig lttng.%s.fl_dropped events %llu\n", mode, fl_dropped);
	fflush(stdout);
	lt("rm -rf '%s'", out);
	return 0;
}

static int driver(const char *self)
{
	if (system("command -v lttng-sessiond >/dev/null && command -v lttng >/dev/null && "
		   "command -v babeltrace2 >/dev/null") != 0) {
		absent_all("lttng-tools or babeltrace2 not installed (apt-get install lttng-tools babeltrace2)");
		return 0;
	}
	snprintf(home, sizeof home, "/tmp/fugue-bench-lttng.XXXXXX");
	if (!mkdtemp(home))
		fail("mkdtemp: %s", strerror(errno));
	snprintf(logpath, sizeof logpath, "%s/lttng.log", home);
	if (geteuid() == 0) {
		/* a root sessiond ignores LTTNG_HOME; an unprivileged one is private to it */
		if (chown(home, NOBODY, NOBODY) < 0 || setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 ||
		    setuid(NOBODY) < 0) {
			absent_all("running as root and cannot drop to nobody for a private lttng-sessiond");
			return 0;
		}
	}
	setenv("LTTNG_HOME", home, 1);
	fflush(NULL);
	sessiond = fork();
	if (sessiond == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("lttng-sessiond", "lttng-sessiond", "--no-kernel", (char *)NULL);
		_exit(127);
	}
	int up = 0;
	for (int i = 0; i < 100 && !up; i++) {
		usleep(100000);
		up = lt("lttng list") == 0;
	}
	int rc = -1;
	if (up)
		rc = run_mode(self, "discard") == 0 && run_mode(self, "blocking") == 0 ? 0 : -1;
	stop_sessiond();
	if (rc < 0) {
		char tailcmd[400];
		snprintf(tailcmd, sizeof tailcmd, "tail -n 20 '%s' >&2", logpath);
		if (system(tailcmd) != 0)
			fprintf(stderr, "fugue-bench-lttng: no log\n");
		absent_all(up ? "the LTTng run failed (see stderr)"
			      : "a private lttng-sessiond did not come up in 10 s");
	}
	char rm[400];
	snprintf(rm, sizeof rm, "rm -rf '%s'", home);
	if (system(rm) != 0)
		fprintf(stderr, "fugue-bench-lttng: could not remove %s\n", home);
	return 0;
}

int main(int argc, char **argv)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		fail("cannot find my own executable");
	self[n] = 0;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
	if (argc >= 3 && !strcmp(argv[1], "--app"))
		return app(argv[2]);
	return driver(self);
}
