/* SPDX-License-Identifier: MIT */
/* run_bench.c: scenario run — `fugue-log run` (and script(1)) against the bare program on output-heavy work. */

/*
 * Part of fugue_bench.c (included there, after the drainer helpers it uses).
 *
 * Every variant runs on a PTY whose master this process drains in 64 KiB
 * reads, as a terminal emulator would: the bare program (cat of a file,
 * seq), `fugue-log run --level full --block -- PROGRAM` with fugue-logd
 * running, and `script -q -E never -c PROGRAM /dev/null` (through $SHELL -c,
 * as script runs it). Wall time is from the fork to the PTY's end with the
 * child reaped; CPU is user+sys of the started process and everything it
 * waited for (wait4), plus fugue-logd's CPU until the session has ended on
 * disk. --block, so the recording loses nothing: a dropping run would be
 * cheaper by what it did not record.
 */
#include <pty.h>
#include <sys/ioctl.h>

struct run_cost {
	double wall_ns, cpu_ns;
};

/* Runs argv on a new PTY (80x24, the slave its controlling terminal), reads the master until it ends. */
static struct run_cost run_on_pty(char *const argv[], uint64_t *bytes)
{
	struct winsize ws = {.ws_row = 24, .ws_col = 80};
	int m, sl;
	if (openpty(&m, &sl, NULL, NULL, &ws) < 0)
		die("openpty: %s", strerror(errno));
	fflush(NULL);
	uint64_t t0 = fl_bench_mono_ns();
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		close(m);
		setsid();
		ioctl(sl, TIOCSCTTY, 0);
		dup2(sl, 0), dup2(sl, 1), dup2(sl, 2);
		if (sl > 2)
			close(sl);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(sl);
	static char buf[64 << 10];
	ssize_t n;
	*bytes = 0;
	while ((n = read(m, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
		*bytes += n > 0 ? (uint64_t)n : 0;
	int st;
	struct rusage ru;
	if (wait4(pid, &st, 0, &ru) < 0)
		die("wait4: %s", strerror(errno));
	struct run_cost c = {(double)(fl_bench_mono_ns() - t0), 0};
	close(m);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		die("run: %s ... exited with status %#x", argv[0], st);
	c.cpu_ns = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
		   (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
	return c;
}

/* The session's manifest says it ended: fugue-logd has written all of it. */
static void run_wait_ended(const struct drainer *d, const char *sid)
{
	char path[4400], buf[4096];
	snprintf(path, sizeof path, "%s/%s/session.json", d->root, sid);
	uint64_t deadline = fl_bench_mono_ns() + 600 * 1000000000ull;
	for (;;) {
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = 0;
		if (strstr(buf, "\"ended\""))
			return;
		if (fl_bench_mono_ns() > deadline)
			die("run: session %s did not end on disk within 600 s", sid);
		usleep(2000);
	}
}

/* A file of size bytes of terminal-like text (the transcript chunks: lines, escapes), for cat. */
static void run_make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die("cannot create %s: %s", path, strerror(errno));
	for (uint64_t off = 0; off < size; off += CHUNK)
		if (write(fd, chunks[(off / CHUNK) % NCHUNKS], CHUNK) != CHUNK)
			die("cannot write %s: %s", path, strerror(errno));
	close(fd);
}

/* The figure "<pre>.<name>.<what>": one workload's keys, built from its name where they are used. */
static struct fl_fig *run_fig(const char *pre, const char *name, const char *what, const char *unit)
{
	char k[96];
	snprintf(k, sizeof k, "%s.%s.%s", pre, name, what);
	return fl_fig(k, unit);
}

static void run_declare(const char *name, const char *script)
{
	fl_fig_target(run_fig("run.overhead", name, "wall", "x"), '<', 1.05);
	fl_fig_target(run_fig("run.overhead", name, "cpu", "x"), '<', 1.05);
	fl_fig_note(run_fig("run.overhead", name, "wall", "x"),
		    "fugue-log run --level full --block / the bare program, wall, both on a PTY drained alike");
	fl_fig_note(run_fig("run.overhead", name, "cpu", "x"),
		    "user+sys of run, its program and fugue-logd / the bare program's");
	run_fig("run.bare", name, "wall", "s");
	run_fig("run.bare", name, "cpu", "s");
	fl_fig_note(run_fig("run.fl", name, "cpu", "s"), "user+sys of fugue-log run and its program, not fugue-logd");
	run_fig("run.fl", name, "drainer_cpu", "s");
	char k[96];
	for (int i = 0; i < 2; i++) {
		const char *what = i ? "cpu" : "wall";
		if (script) {
			fl_fig_note(run_fig("script1.overhead", name, what, "x"),
				    i ? "script(1) and its program's user+sys / the bare program's"
				      : "script -q -E never -c CMD /dev/null / the bare program, wall");
		} else {
			snprintf(k, sizeof k, "script1.overhead.%s.%s", name, what);
			fl_fig_absent(k, "x", "%s", "script(1) not found (util-linux)");
		}
	}
}

enum { RUN_BARE, RUN_FL, RUN_SCRIPT, RUN_VARIANTS };

/* One round of fugue-log run: the program's PTY output and its cost, fugue-logd's CPU in *logd. */
static struct run_cost run_fl(const char *name, int round, char *bare[], const char *fugue_log, struct drainer *d,
			      uint64_t *bytes, double *logd)
{
	char sid[64], dir[4400];
	snprintf(sid, sizeof sid, "bench-run-%d-%s-%d", (int)getpid(), name, round);
	char *argv[16] = {(char *)fugue_log, "run", "--level", "full", "--block", "--session-id", sid, "--"};
	for (int i = 0; bare[i] && i < 7; i++)
		argv[8 + i] = bare[i];
	/* fugue-logd's lines land in page cache this guest has just touched, not memory its host took back */
	warm_page_cache(opt.quick ? 32u << 20 : 512u << 20);
	double d0 = drainer_cpu_ns(d);
	struct run_cost c = run_on_pty(argv, bytes);
	run_wait_ended(d, sid);
	*logd = drainer_cpu_ns(d) - d0;
	c.cpu_ns += *logd;
	snprintf(dir, sizeof dir, "%s/%s", d->root, sid);
	rm_rf(dir); /* hundreds of MB of JSON lines a round */
	return c;
}

/* One workload, rounds of bare / fugue-log run / script(1) in rotating order; ratios per round. */
static void run_workload(const char *name, const char *cmdline, char *bare[], const char *fugue_log, const char *script,
			 struct drainer *d, int rounds)
{
	run_declare(name, script);
	for (int r = 0; r < rounds; r++) {
		struct run_cost c[RUN_VARIANTS] = {0};
		uint64_t bytes[RUN_VARIANTS] = {0};
		double logd = 0;
		for (int v0 = 0; v0 < RUN_VARIANTS; v0++) {
			int v = (v0 + r) % RUN_VARIANTS;
			if (v == RUN_BARE) {
				c[v] = run_on_pty(bare, &bytes[v]);
			} else if (v == RUN_FL) {
				c[v] = run_fl(name, r, bare, fugue_log, d, &bytes[v], &logd);
			} else if (script) {
				char *argv[] = {(char *)script,	 "-q",	      "-E", "never", "-c",
						(char *)cmdline, "/dev/null", NULL};
				c[v] = run_on_pty(argv, &bytes[v]);
			}
		}
		if (bytes[RUN_FL] != bytes[RUN_BARE])
			die("run %s: %" PRIu64 " bytes reached the terminal through fugue-log run, %" PRIu64 " bare",
			    name, bytes[RUN_FL], bytes[RUN_BARE]);
		fl_fig_add(run_fig("run.overhead", name, "wall", "x"), c[RUN_FL].wall_ns / c[RUN_BARE].wall_ns);
		fl_fig_add(run_fig("run.overhead", name, "cpu", "x"), c[RUN_FL].cpu_ns / c[RUN_BARE].cpu_ns);
		fl_fig_add(run_fig("run.bare", name, "wall", "s"), c[RUN_BARE].wall_ns / 1e9);
		fl_fig_add(run_fig("run.bare", name, "cpu", "s"), c[RUN_BARE].cpu_ns / 1e9);
		fl_fig_add(run_fig("run.fl", name, "cpu", "s"), (c[RUN_FL].cpu_ns - logd) / 1e9);
		fl_fig_add(run_fig("run.fl", name, "drainer_cpu", "s"), logd / 1e9);
		if (script) {
			fl_fig_add(run_fig("script1.overhead", name, "wall", "x"),
				   c[RUN_SCRIPT].wall_ns / c[RUN_BARE].wall_ns);
			fl_fig_add(run_fig("script1.overhead", name, "cpu", "x"),
				   c[RUN_SCRIPT].cpu_ns / c[RUN_BARE].cpu_ns);
		}
	}
}

/* The program on PATH, or NULL. */
static const char *run_which(const char *prog, char *out, size_t cap)
{
	const char *path = getenv("PATH");
	for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
		size_t l = strcspn(p, ":");
		snprintf(out, cap, "%.*s/%s", (int)l, p, prog);
		if (l && access(out, X_OK) == 0)
			return out;
		p += l + (p[l] == ':');
	}
	return NULL;
}

static void scen_run(void)
{
	static const char *keys[] = {"run.overhead.cat.wall", "run.overhead.cat.cpu", "run.overhead.seq.wall",
				     "run.overhead.seq.cpu"};
	char fugue_log[4200] = "";
	const char *slash = strrchr(opt.logd, '/');
	if (slash)
		snprintf(fugue_log, sizeof fugue_log, "%.*s/fugue-log", (int)(slash - opt.logd), opt.logd);
	if (!opt.logd[0] || access(fugue_log, X_OK) != 0) {
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
			fl_fig_absent(keys[i], "x", "%s",
				      opt.logd[0] ? "no fugue-log beside fugue-logd (build the fugue-log target)"
						  : "fugue-logd not found (build drainer/)");
		return;
	}
	char scriptbuf[4200];
	const char *script = run_which("script", scriptbuf, sizeof scriptbuf);
	struct drainer d;
	drainer_start(&d, NULL, 0);
	char file[4200], cat[4400], seq[64], last[32];
	snprintf(file, sizeof file, "%s/run-cat.txt", opt.tmp);
	run_make_file(file, opt.quick ? 8u << 20 : 256u << 20);
	snprintf(cat, sizeof cat, "cat '%s'", file);
	snprintf(last, sizeof last, "%d", opt.quick ? 500000 : 20000000);
	snprintf(seq, sizeof seq, "seq 1 %s", last);
	int rounds = opt.quick ? 1 : 5;
	char *bare_cat[] = {"cat", file, NULL};
	char *bare_seq[] = {"seq", "1", last, NULL};
	run_workload("cat", cat, bare_cat, fugue_log, script, &d, rounds);
	run_workload("seq", seq, bare_seq, fugue_log, script, &d, rounds);
	drainer_stop(&d);
	unlink(file);
}
