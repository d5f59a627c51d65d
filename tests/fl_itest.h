/* SPDX-License-Identifier: MIT */
/* fl_itest.h: integration-test helpers — run the real fugue-logd, run programs, poll files with bounded waits. */
#ifndef FL_ITEST_H
#define FL_ITEST_H

/*
 * Include after fl_test.h. Everything here is static inline so each test
 * executable carries its own copy. Paths come from the environment that
 * tests/CMakeLists.txt sets per ctest test: FL_BUILD_DIR (binaries),
 * FL_SOURCE_DIR (scripts such as tests/check_jsonl.py), FL_TEST_TMP (scratch)
 * and FUGUE_SHM_PREFIX (this test's rings). Waits poll with a generous bound
 * and fail the test when the condition never comes; nothing asserts a time.
 */

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Builds FL_BUILD_DIR/rel. */
static inline const char *fl_it_build_path(char *out, size_t cap, const char *rel)
{
	const char *b = getenv("FL_BUILD_DIR");
	snprintf(out, cap, "%s/%s", b && *b ? b : ".", rel);
	return out;
}

/* Builds FL_SOURCE_DIR/rel. */
static inline const char *fl_it_source_path(char *out, size_t cap, const char *rel)
{
	const char *s = getenv("FL_SOURCE_DIR");
	snprintf(out, cap, "%s/%s", s && *s ? s : "..", rel);
	return out;
}

/* 1 under ASan/UBSan or TSan builds (FL_SANITIZED set and not "0"): scale loads down, never assertions. */
static inline int fl_it_sanitized(void)
{
	const char *v = getenv("FL_SANITIZED");
	return v && *v && strcmp(v, "0");
}

/* n, or n/div (at least 1) in a sanitizer build. */
static inline long fl_it_scale(long n, long div)
{
	long v = fl_it_sanitized() ? n / div : n;
	return v < 1 ? 1 : v;
}

static inline double fl_it_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void fl_it_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Polls cond(arg) every few milliseconds (backing off to 20 ms) until it
 * returns non-zero or timeout_s passes. Returns the last value of cond.
 */
static inline int fl_it_wait(int (*cond)(void *), void *arg, double timeout_s)
{
	double end = fl_it_now() + timeout_s;
	long ms = 1;
	for (;;) {
		int v = cond(arg);
		if (v || fl_it_now() > end)
			return v;
		fl_it_sleep_ms(ms);
		ms = ms < 20 ? ms * 2 : 20;
	}
}

/* Runs argv (PATH lookup), stdout to out_path when not NULL; returns the exit code, 128+sig, or -1. */
static inline int fl_it_run(const char *const argv[], const char *out_path)
{
	pid_t p = fork();
	if (p < 0)
		return -1;
	if (p == 0) {
		if (out_path) {
			int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd < 0 || dup2(fd, 1) < 0)
				_exit(126);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	int st;
	while (waitpid(p, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* rm -rf path (scratch only). */
static inline void fl_it_rmtree(const char *path)
{
	const char *argv[] = {"rm", "-rf", "--", path, NULL};
	assert_int_equal(fl_it_run(argv, NULL), 0);
}

/* Unlinks every /dev/shm object of this test's FUGUE_SHM_PREFIX; returns how many there were. */
static inline int fl_it_shm_cleanup(void)
{
	const char *pre = getenv("FUGUE_SHM_PREFIX");
	if (!pre || !*pre)
		return 0;
	size_t n = strlen(pre);
	int count = 0;
	DIR *d = opendir("/dev/shm");
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, pre, n)) {
			char name[300];
			snprintf(name, sizeof name, "/dev/shm/%s", e->d_name);
			unlink(name);
			/* the drainer's doorbell stays by design (ringbuf/doorbell.h): not a leftover ring */
			count += strcmp(e->d_name + n, "@doorbell") != 0;
		}
	closedir(d);
	return count;
}

/* A fresh start for an integration test: root = $FL_TEST_TMP/root, emptied, no rings of this test
   left in shm, and no drainer log from an earlier run (tests look for this run's lines in it). */
static inline void fl_it_fresh_root(char *root, size_t cap)
{
	snprintf(root, cap, "%s/root", fl_test_tmp());
	fl_it_rmtree(root);
	fl_it_shm_cleanup();
	char log[1100];
	snprintf(log, sizeof log, "%s/fugue-logd.log", fl_test_tmp());
	unlink(log);
}

/* ---- the drainer process -------------------------------------------------------------- */

struct fl_itd {
	pid_t pid;
	char root[1024];
	char log[1024];
	char config[1024];
};

/*
 * Starts $FL_BUILD_DIR/drainer/fugue-logd --foreground --root root --config
 * <empty file in FL_TEST_TMP>, plus extra arguments (NULL-terminated list or
 * NULL), its stderr appended to FL_TEST_TMP/fugue-logd.log.
 */
static inline void fl_it_drainer_start_nofile(struct fl_itd *d, const char *root, const char *const *extra,
					      long nofile);
static inline void fl_it_drainer_start_via(struct fl_itd *d, const char *root, const char *const *via,
					   const char *const *extra, long nofile);

static inline void fl_it_drainer_start(struct fl_itd *d, const char *root, const char *const *extra)
{
	fl_it_drainer_start_nofile(d, root, extra, 0);
}

/* fl_it_drainer_start with RLIMIT_NOFILE (soft and hard) set to nofile in the drainer, when nofile > 0. */
static inline void fl_it_drainer_start_nofile(struct fl_itd *d, const char *root, const char *const *extra, long nofile)
{
	fl_it_drainer_start_via(d, root, NULL, extra, nofile);
}

/* The same, started through the command via (NULL-terminated: "nice", "-n", "15", NULL), which execs the rest. */
static inline void fl_it_drainer_start_via(struct fl_itd *d, const char *root, const char *const *via,
					   const char *const *extra, long nofile)
{
	char bin[1024];
	fl_it_build_path(bin, sizeof bin, "drainer/fugue-logd");
	snprintf(d->root, sizeof d->root, "%s", root);
	snprintf(d->log, sizeof d->log, "%s/fugue-logd.log", fl_test_tmp());
	snprintf(d->config, sizeof d->config, "%s/empty.conf", fl_test_tmp());
	int cfd = open(d->config, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(cfd >= 0);
	close(cfd);
	const char *argv[48];
	int n = 0;
	for (int i = 0; via && via[i] && n < 16; i++)
		argv[n++] = via[i];
	const char *own[] = {bin, "--foreground", "--root", d->root, "--config", d->config};
	for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
		argv[n++] = own[i];
	for (int i = 0; extra && extra[i] && n < 47; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	/*
	 * Blocked across fork and kept through exec: a SIGTERM sent before the new
	 * process even ran still finds it blocked and means a clean stop.
	 */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &old);
	d->pid = fork();
	if (d->pid != 0)
		sigprocmask(SIG_SETMASK, &old, NULL);
	assert_true(d->pid >= 0);
	if (d->pid == 0) {
		/* a test that fails an assertion exits at once: its drainer must not outlive it */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0)
			dup2(fd, 2);
		struct rlimit rl = {(rlim_t)nofile, (rlim_t)nofile};
		if (nofile > 0 && setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(126);
		execvp(argv[0], (char *const *)argv); /* bin has a '/': no PATH search for it */
		_exit(127);
	}
}

/* Waits (bounded) for the drainer to exit; returns its exit code, 128+signal, or -1 on timeout. */
static inline int fl_it_drainer_wait(struct fl_itd *d, double timeout_s)
{
	double end = fl_it_now() + timeout_s;
	int st;
	for (;;) {
		pid_t r = waitpid(d->pid, &st, WNOHANG);
		if (r == d->pid) {
			d->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		if (fl_it_now() > end)
			return -1;
		fl_it_sleep_ms(5);
	}
}

/* SIGTERM, then waits up to 60 s; returns the exit status as fl_it_drainer_wait (0 for a clean stop). */
static inline int fl_it_drainer_stop(struct fl_itd *d)
{
	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	int rc = fl_it_drainer_wait(d, 60);
	if (rc < 0) {
		kill(d->pid, SIGKILL);
		fl_it_drainer_wait(d, 10);
	}
	return rc;
}

/* SIGKILL and reap. */
static inline void fl_it_drainer_kill(struct fl_itd *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGKILL);
	fl_it_drainer_wait(d, 30);
}

/* Fails the test when the drainer has exited (whatever it met must not kill it). */
static inline void fl_it_assert_alive(const struct fl_itd *d)
{
	int st;
	if (waitpid(d->pid, &st, WNOHANG) == d->pid)
		fail_msg("fugue-logd died: %s %d", WIFSIGNALED(st) ? "signal" : "exit",
			 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

/* ---- files ------------------------------------------------------------------------------- */

/* The whole file, NUL-terminated (free it), or NULL; *len when not NULL. */
static inline char *fl_it_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	for (;;) {
		if (n + 1 >= cap)
			b = realloc(b, cap *= 2);
		ssize_t r = read(fd, b + n, cap - n - 1);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	b[n] = 0;
	if (len)
		*len = n;
	return b;
}

/* How many times needle stands in the file (0 when it does not exist). */
static inline int fl_it_count_in(const char *path, const char *needle)
{
	char *b = fl_it_read_file(path, NULL);
	int n = 0;
	for (char *p = b; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(b);
	return n;
}

/* Lines in a file (count of '\n'), -1 when it does not exist. */
static inline long fl_it_count_lines(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	char buf[65536];
	long lines = 0;
	ssize_t r;
	while ((r = read(fd, buf, sizeof buf)) > 0)
		for (ssize_t i = 0; i < r; i++)
			lines += buf[i] == '\n';
	close(fd);
	return lines;
}

/* Lines in <root>/<id>/system.jsonl + user.jsonl (the active files only, not rotated segments). */
static inline long fl_it_session_lines(const char *root, const char *id)
{
	char p[1200];
	long total = 0;
	snprintf(p, sizeof p, "%s/%s/system.jsonl", root, id);
	long a = fl_it_count_lines(p);
	snprintf(p, sizeof p, "%s/%s/user.jsonl", root, id);
	long b = fl_it_count_lines(p);
	total = (a > 0 ? a : 0) + (b > 0 ? b : 0);
	return total;
}

/* 1 when <root>/<id>/session.json says "state":"<state>". */
static inline int fl_it_session_state_is(const char *root, const char *id, const char *state)
{
	char p[1200], want[64];
	snprintf(p, sizeof p, "%s/%s/session.json", root, id);
	snprintf(want, sizeof want, "\"state\":\"%s\"", state);
	char *b = fl_it_read_file(p, NULL);
	int yes = b && strstr(b, want);
	free(b);
	return yes;
}

struct fl_it_state_arg {
	const char *root, *id, *state;
};

static inline int fl_it_state_cond(void *a)
{
	struct fl_it_state_arg *s = a;
	return fl_it_session_state_is(s->root, s->id, s->state);
}

/* Waits (bounded) until the session's manifest says state; returns 1 when it did. */
static inline int fl_it_wait_state(const char *root, const char *id, const char *state, double timeout_s)
{
	struct fl_it_state_arg a = {root, id, state};
	return fl_it_wait(fl_it_state_cond, &a, timeout_s);
}

/*
 * The session's next seq as session.json says (lines written so far + 1,
 * rotated segments included; the drainer refreshes it every 200 ms while
 * lines flow), 0 when there is no manifest yet.
 */
static inline long fl_it_session_next_seq(const char *root, const char *id)
{
	char p[1200];
	snprintf(p, sizeof p, "%s/%s/session.json", root, id);
	char *b = fl_it_read_file(p, NULL);
	const char *at = b ? strstr(b, "\"next_seq\":") : NULL;
	long v = at ? strtol(at + 11, NULL, 10) : 0;
	free(b);
	return v;
}

struct fl_it_lines_arg {
	const char *root, *id;
	long n;
};

static inline int fl_it_lines_cond(void *a)
{
	struct fl_it_lines_arg *s = a;
	return fl_it_session_next_seq(s->root, s->id) - 1 >= s->n;
}

/* Waits (bounded) until the session has at least n lines (by session.json); returns 1 when it had. */
static inline int fl_it_wait_lines(const char *root, const char *id, long n, double timeout_s)
{
	struct fl_it_lines_arg a = {root, id, n};
	return fl_it_wait(fl_it_lines_cond, &a, timeout_s);
}

/*
 * Runs tests/check_jsonl.py on the session directory dir with the given
 * checker arguments (NULL-terminated); its JSON summary goes to
 * FL_TEST_TMP/check.json, its complaints to stderr. Returns its exit code
 * (0: every check passed), or 77 when python3 is missing.
 */
static inline int fl_it_check(const char *dir, const char *const *args)
{
	char script[1024], out[1100];
	fl_it_source_path(script, sizeof script, "tests/check_jsonl.py");
	snprintf(out, sizeof out, "%s/check.json", fl_test_tmp());
	const char *argv[64] = {"python3", script};
	int n = 2;
	for (int i = 0; args && args[i] && n < 62; i++)
		argv[n++] = args[i];
	argv[n++] = dir;
	argv[n] = NULL;
	int rc = fl_it_run(argv, out);
	return rc == 127 ? 77 : rc;
}

#endif
