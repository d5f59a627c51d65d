/* SPDX-License-Identifier: MIT */
/* test_cli.c: fugue-log as a real process — help, exit codes, level, emit counts, ls --json, cat merging. */
#define _GNU_SOURCE
#include "fl_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fl_itest.h"
#include "fuguelog.h"
#include "ring.h"
#include "segread.h"

static char out_buf[1 << 20], err_buf[1 << 16];
static struct rusage last_ru; /* CPU time of the last run_argv child */

static const char *cli_path(void)
{
	static char p[1024];
	const char *b = getenv("FL_BUILD_DIR");
	snprintf(p, sizeof p, "%s/drainer/fugue-log", b && *b ? b : ".");
	return p;
}

static void slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	size_t n = 0;
	ssize_t k;
	while (fd >= 0 && n + 1 < cap && (k = read(fd, buf + n, cap - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = 0;
	if (fd >= 0)
		close(fd);
}

static void put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Runs argv with stdout/stderr into out_buf/err_buf (and stdin from stdin_file when not NULL); returns its exit code.
 */
static int run_argv(const char *stdin_file, char *const argv[])
{
	char o[1200], e[1200];
	snprintf(o, sizeof o, "%s/stdout", fl_test_tmp());
	snprintf(e, sizeof e, "%s/stderr", fl_test_tmp());
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0600), fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fo < 0 || fe < 0)
			_exit(126);
		dup2(fo, 1);
		dup2(fe, 2);
		if (stdin_file) {
			int fi = open(stdin_file, O_RDONLY);
			if (fi < 0)
				_exit(126);
			dup2(fi, 0);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	int st;
	assert_int_equal(wait4(pid, &st, 0, &last_ru), pid);
	slurp(o, out_buf, sizeof out_buf);
	slurp(e, err_buf, sizeof err_buf);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* run_prog(path, "ls", "--json", NULL): the program at path with these arguments. */
static int run_prog(const char *prog, ...)
{
	char *argv[64];
	int n = 0;
	argv[n++] = (char *)prog;
	va_list ap;
	va_start(ap, prog);
	for (const char *a = va_arg(ap, const char *); a && n < 63; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	return run_argv(NULL, argv);
}

/* run("ls", "--json", NULL): fugue-log with these arguments. */
#define run(...) run_prog(cli_path(), __VA_ARGS__)

/* Starts argv (NULL-terminated) in the background with its stdout in out_path (and its stderr in err_path
 * unless NULL); returns its pid. */
static pid_t spawn_to_err(const char *out_path, const char *err_path, const char *const *argv)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		if (err_path) {
			int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fe < 0)
				_exit(126);
			dup2(fe, 2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

#define spawn_to(out_path, argv) spawn_to_err((out_path), NULL, (argv))

/* Removes every shm object of this test's prefix (sessions opened by the CLI stay after close). */
static void shm_cleanup(void)
{
	const char *pfx = fl_ring_prefix();
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, pfx, strlen(pfx))) {
			char n[512];
			snprintf(n, sizeof n, "/%s", e->d_name);
			shm_unlink(n);
		}
	if (d)
		closedir(d);
}

/* Isolates the CLI from the machine: no user config, no level from the environment. */
static int setup(void **state)
{
	(void)state;
	setenv("HOME", fl_test_tmp(), 1);
	unsetenv("FUGUE_SESSION_LOG");
	unsetenv("FUGUE_LOG_DIR");
	shm_cleanup();
	return 0;
}

static pid_t child = -1;	  /* a follower still running when an assertion fails */
static struct fl_itd *drainer_up; /* a drainer still running when an assertion fails */
static pid_t daemon_pid = -1;	  /* a daemonized fugue-logd (not our child) still running */

static int teardown(void **state)
{
	(void)state;
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = -1;
	}
	if (drainer_up) {
		fl_it_drainer_kill(drainer_up);
		drainer_up = NULL;
	}
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGKILL);
		daemon_pid = -1;
	}
	shm_cleanup();
	return 0;
}

static fl_session *open_session(const char *id, int level)
{
	fl_session *s;
	struct fl_session_opts o = {.id = id, .level = level};
	char why[256] = "";
	int rc = fl_session_open(&s, &o, why, sizeof why);
	if (rc < 0)
		fail_msg("fl_session_open(%s): %s", id, why);
	return s;
}

static struct fl_ring attach(const char *id)
{
	char name[256], why[256] = "";
	struct fl_ring r;
	assert_int_equal(fl_ring_name(name, sizeof name, NULL, id), 0);
	if (fl_ring_attach(&r, name, why, sizeof why) < 0)
		fail_msg("attach %s: %s", name, why);
	return r;
}

/* An unsigned field of the JSON object in out_buf. */
static uint64_t json_u64(const char *key)
{
	const char *v;
	size_t n;
	if (fl_json_field(out_buf, strlen(out_buf), key, &v, &n) < 0)
		fail_msg("no \"%s\" in: %s", key, out_buf);
	char tmp[32];
	assert_true(n < sizeof tmp);
	memcpy(tmp, v, n);
	tmp[n] = 0;
	return strtoull(tmp, NULL, 10);
}

/* ---- help and usage ------------------------------------------------------------------ */

static void test_help_every_command(void **state)
{
	(void)state;
	static const char *const cmds[] = {"ls", "level", "emit", "cat", "gc"};
	const int n = (int)(sizeof cmds / sizeof cmds[0]);
	assert_int_equal(run("--help", NULL), 0);
	for (int i = 0; i < n; i++)
		assert_non_null(strstr(out_buf, cmds[i]));
	for (int i = 0; i < n; i++) {
		assert_int_equal(run(cmds[i], "--help", NULL), 0);
		assert_non_null(strstr(out_buf, "usage: fugue-log"));
		assert_non_null(strstr(out_buf, "Exit codes"));
	}
	assert_int_equal(run(NULL), 2);
	assert_int_equal(run("frobnicate", NULL), 2);
	assert_non_null(strstr(err_buf, "unknown command 'frobnicate'"));
	assert_int_equal(run("ls", "--bogus", NULL), 2);
	assert_non_null(strstr(err_buf, "--help"));
	assert_int_equal(run("emit", NULL), 2);
	assert_non_null(strstr(err_buf, "--event KIND is required"));
	assert_int_equal(run("emit", "--event", "sneeze", NULL), 2);
	assert_non_null(strstr(err_buf, "unknown event kind 'sneeze'"));
	assert_int_equal(run("emit", "--event", "spawn", "--count", "x", NULL), 2);
	assert_int_equal(run("emit", "--event", "spawn", "--lanes", "3", NULL), 2);
	assert_int_equal(run("cat", NULL), 2);
	assert_int_equal(run("cat", "--class", "both", "x", NULL), 2);
}

/* ---- level ------------------------------------------------------------------------- */

static void test_level_get_set(void **state)
{
	(void)state;
	fl_session *s = open_session("lv1", FL_LEVEL_SIGNALS);
	struct fl_ring r = attach("lv1");
	uint64_t gen0 = FL_LEVEL_GEN(fl_ring_level_word(&r));

	assert_int_equal(run("level", "lv1", NULL), 0);
	assert_string_equal(out_buf, "signals\n");
	assert_int_equal(run("level", "lv1", "full", NULL), 0);
	assert_string_equal(out_buf, "signals -> full\n");
	assert_int_equal(fl_get_level(s), FL_LEVEL_FULL);
	assert_int_equal(FL_LEVEL_GEN(fl_ring_level_word(&r)), gen0 + 1);
	/* the producer's own emits follow at once */
	assert_true(fl_emit_transcript(s, 0, 1, "x", 1) > 0);

	/* the same level again: said, not written */
	assert_int_equal(run("level", "lv1", "full", NULL), 0);
	assert_string_equal(out_buf, "full -> full\n");
	assert_int_equal(FL_LEVEL_GEN(fl_ring_level_word(&r)), gen0 + 1);

	assert_int_equal(run("level", "lv1", "1", NULL), 0);
	assert_string_equal(out_buf, "full -> spawns\n");
	assert_int_equal(fl_get_level(s), FL_LEVEL_SPAWNS);
	assert_int_equal(FL_LEVEL_GEN(fl_ring_level_word(&r)), gen0 + 2);
	assert_int_equal(fl_emit_transcript(s, 0, 1, "x", 1), 0);

	/* a level set by the producer is what the CLI reads */
	fl_set_level(s, FL_LEVEL_PROMPTS);
	assert_int_equal(run("level", "lv1", NULL), 0);
	assert_string_equal(out_buf, "prompts\n");

	fl_ring_detach(&r);
	fl_session_close(s);
	/* closed: reading works, setting is refused */
	assert_int_equal(run("level", "lv1", NULL), 0);
	assert_string_equal(out_buf, "prompts\n");
	assert_int_equal(run("level", "lv1", "full", NULL), 1);
	assert_non_null(strstr(err_buf, "was closed"));
}

static void test_level_all(void **state)
{
	(void)state;
	fl_session *a = open_session("all-a", FL_LEVEL_SPAWNS);
	fl_session *b = open_session("all-b", FL_LEVEL_FULL);
	fl_session *c = open_session("all-c", FL_LEVEL_SIGNALS);
	fl_session_close(c); /* closed: read, but skipped by a set */

	assert_int_equal(run("level", "--all", NULL), 0);
	assert_non_null(strstr(out_buf, "all-a spawns\n"));
	assert_non_null(strstr(out_buf, "all-b full\n"));
	assert_non_null(strstr(out_buf, "all-c signals\n"));

	assert_int_equal(run("level", "--all", "prompts", NULL), 0);
	assert_non_null(strstr(out_buf, "all-a: spawns -> prompts\n"));
	assert_non_null(strstr(out_buf, "all-b: full -> prompts\n"));
	assert_null(strstr(out_buf, "all-c"));
	assert_non_null(strstr(err_buf, "skipping all-c"));
	assert_int_equal(fl_get_level(a), FL_LEVEL_PROMPTS);
	assert_int_equal(fl_get_level(b), FL_LEVEL_PROMPTS);
	fl_session_close(a);
	fl_session_close(b);
}

static void test_level_errors(void **state)
{
	(void)state;
	fl_session *s = open_session("lverr", FL_LEVEL_SIGNALS);
	assert_int_equal(run("level", "lverr", "loud", NULL), 2);
	assert_non_null(strstr(err_buf, "unknown level 'loud'"));
	assert_non_null(strstr(err_buf, "spawns, signals, prompts or full"));
	assert_int_equal(run("level", "lverr", "5", NULL), 2);
	assert_int_equal(fl_get_level(s), FL_LEVEL_SIGNALS);
	assert_int_equal(run("level", "no-such-session", NULL), 3);
	assert_non_null(strstr(err_buf, "no session 'no-such-session'"));
	assert_int_equal(run("level", "no-such-session", "full", NULL), 3);
	assert_int_equal(run("level", "../etc", "full", NULL), 2);
	assert_non_null(strstr(err_buf, "not a session id"));
	assert_int_equal(run("level", NULL), 2);
	assert_int_equal(run("level", "--all", "full", "extra", NULL), 2);
	assert_int_equal(run("level", "lverr", "full", "extra", NULL), 2);
	fl_session_close(s);
}

/* ---- emit ---------------------------------------------------------------------------- */

static void test_emit_counts(void **state)
{
	(void)state;
	/* completion needs signals: every call at spawns is filtered */
	assert_int_equal(
	    run("emit", "--event", "completion", "--count", "1000", "--level", "spawns", "--session-id", "em1", NULL),
	    0);
	assert_int_equal(json_u64("emitted"), 1000);
	assert_int_equal(json_u64("admitted"), 0);
	assert_int_equal(json_u64("dropped"), 0);
	assert_int_equal(json_u64("filtered"), 1000);
	assert_non_null(strstr(out_buf, "\"session\":\"em1\""));

	assert_int_equal(
	    run("emit", "--event", "spawn", "--count", "1000", "--level", "spawns", "--session-id", "em2", NULL), 0);
	assert_int_equal(json_u64("admitted"), 1000);
	assert_int_equal(json_u64("filtered"), 0);
	/* what the CLI says is what the ring holds */
	struct fl_ring r = attach("em2");
	uint64_t seq = 0;
	for (uint32_t l = 0; l < r.lane_count; l++)
		seq += fl_load_acquire(&r.lanes[l].seq);
	assert_int_equal(seq, 1000);
	assert_int_equal(FL_LEVEL_VALUE(fl_ring_level_word(&r)), FL_LEVEL_SPAWNS);
	fl_ring_detach(&r);

	/* all ten kinds in turn: at prompts, 8 of every 10 pass (not transcript, not input) */
	assert_int_equal(run("emit", "--event", "all", "--count", "1000", "--level", "prompts", NULL), 0);
	assert_int_equal(json_u64("emitted"), 1000);
	assert_int_equal(json_u64("admitted"), 800);
	assert_int_equal(json_u64("filtered"), 200);

	/* threads split the count exactly; FUGUE_SESSION_LOG loses to --level */
	setenv("FUGUE_SESSION_LOG", "spawns", 1);
	assert_int_equal(run("emit", "--event", "all", "--count", "1001", "--threads", "3", "--level", "full",
			     "--lane-size", "4M", NULL),
			 0);
	unsetenv("FUGUE_SESSION_LOG");
	assert_int_equal(json_u64("emitted"), 1001);
	assert_int_equal(json_u64("admitted"), 1001);

	/* a lane too small for the burst: drops are counted, not fatal */
	assert_int_equal(run("emit", "--event", "transcript", "--count", "100", "--size", "900", "--lanes", "1",
			     "--lane-size", "4K", "--level", "full", NULL),
			 0);
	uint64_t ad = json_u64("admitted"), dr = json_u64("dropped");
	assert_int_equal(ad + dr, 100);
	assert_true(ad >= 1 && ad < 10);

	/* an event that cannot fit a quarter lane is refused up front */
	assert_int_equal(run("emit", "--event", "transcript", "--size", "2000", "--lane-size", "4K", NULL), 2);
	assert_non_null(strstr(err_buf, "--lane-size"));
}

static void test_emit_rate_duration(void **state)
{
	(void)state;
	/* 20 events at 100/s: paced by sleeping, the count is exact */
	assert_int_equal(run("emit", "--event", "error", "--count", "20", "--rate", "100", "--level", "signals", NULL),
			 0);
	assert_int_equal(json_u64("admitted"), 20);
	/* --duration without --count: stops by itself */
	assert_int_equal(run("emit", "--event", "state", "--duration", "0.3", "--rate", "50", "--level", "full", NULL),
			 0);
	uint64_t n = json_u64("emitted");
	assert_true(n >= 1 && n <= 16);
	assert_int_equal(json_u64("admitted"), n);
	/* a low rate sleeps between events: 1.5 s of pacing must not cost a core (a spin would use ~1.5 s) */
	assert_int_equal(run("emit", "--event", "state", "--duration", "1.5", "--rate", "20", "--threads", "2",
			     "--level", "full", NULL),
			 0);
	double cpu = (double)last_ru.ru_utime.tv_sec + last_ru.ru_utime.tv_usec / 1e6 +
		     (double)last_ru.ru_stime.tv_sec + last_ru.ru_stime.tv_usec / 1e6;
	if (cpu > 0.75)
		fail_msg("emit --rate 20 for 1.5 s used %.2f s of CPU: it spins instead of sleeping", cpu);
	/* --burst adds transcripts */
	assert_int_equal(run("emit", "--event", "spawn", "--count", "3", "--burst", "50", "--level", "full", NULL), 0);
	assert_int_equal(json_u64("emitted"), 53);
	assert_int_equal(json_u64("admitted"), 53);
}

static void test_emit_refused_id(void **state)
{
	(void)state;
	assert_int_equal(run("emit", "--event", "spawn", "--session-id", "bad id", NULL), 2);
	assert_non_null(strstr(err_buf, "session id 'bad id' refused"));
	assert_string_equal(out_buf, "");
	assert_int_equal(run("emit", "--event", "spawn", "--session-id", "..", NULL), 2);
	char longid[80];
	memset(longid, 'a', 65);
	longid[65] = 0;
	assert_int_equal(run("emit", "--event", "spawn", "--session-id", longid, NULL), 2);
	/* a ring of that id exists: not a usage error, a failure */
	fl_session *s = open_session("taken", FL_LEVEL_FULL);
	assert_int_equal(run("emit", "--event", "spawn", "--session-id", "taken", NULL), 1);
	assert_non_null(strstr(err_buf, "exists"));
	fl_session_close(s);
	/* a bad level from the environment is named */
	setenv("FUGUE_SESSION_LOG", "chatty", 1);
	assert_int_equal(run("emit", "--event", "spawn", NULL), 1);
	assert_non_null(strstr(err_buf, "FUGUE_SESSION_LOG=chatty"));
	unsetenv("FUGUE_SESSION_LOG");
}

/* ---- ls ---------------------------------------------------------------------------------- */

static void test_ls_json(void **state)
{
	(void)state;
	fl_session *s = open_session("ls-live", FL_LEVEL_FULL);
	for (int i = 0; i < 37; i++)
		assert_true(fl_emit_transcript(s, 0, 1, "abcdefgh", 8) > 0);
	fl_session *c = open_session("ls-closed", FL_LEVEL_SPAWNS);
	fl_session_close(c);
	/* a foreign object under the prefix: listed as broken, not a crash */
	char name[256];
	assert_int_equal(fl_ring_name(name, sizeof name, NULL, "ls-broken"), 0);
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 65536), 0);
	close(fd);
	/* a name that is no session id, with terminal escapes and a non-UTF-8 byte in it */
	snprintf(name, sizeof name, "/%sx\x1b[31m\xff", fl_ring_prefix());
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);

	assert_int_equal(run("ls", "--json", NULL), 0);
	char path[1200];
	snprintf(path, sizeof path, "%s/ls.json", fl_test_tmp());
	put_file(path, out_buf);
	char *py[] = {"/usr/bin/env", "python3", "-c",
		      "import json,sys\n"
		      "d=json.load(sys.stdin)\n"
		      "s={x['id']:x for x in d['sessions']}\n"
		      "assert len(s)==4, s\n"
		      "x=[v for k,v in s.items() if k.endswith('x?[31m?')][0]\n"
		      "assert x['state']=='broken' and 'valid session id' in x['reason'], x\n"
		      "l=s['ls-live']\n"
		      "assert l['state']=='live' and l['level']=='full' and l['events']==37 and l['drops']==0, l\n"
		      "assert l['pid']>0 and l['lanes']==4 and 0<l['fill']<1 and l['queued_bytes']>0, l\n"
		      "assert s['ls-closed']['state']=='closed' and s['ls-closed']['level']=='spawns'\n"
		      "b=s['ls-broken']\n"
		      "assert b['state']=='broken' and b['reason'], b\n",
		      NULL};
	int rc = run_argv(path, py);
	if (rc)
		fail_msg("python3 check of ls --json failed (%d): %s\n%s", rc, err_buf, out_buf);

	assert_int_equal(run("ls", NULL), 0);
	assert_non_null(strstr(out_buf, "SESSION"));
	assert_non_null(strstr(out_buf, "ls-live"));
	assert_non_null(strstr(out_buf, "broken"));
	assert_null(strchr(out_buf, '\x1b'));
	fl_session_close(s);
}

/* ---- cat on hand-made files ------------------------------------------------------------ */

static char root[1100], sdir[1200];

static void make_session_dir(const char *id)
{
	snprintf(root, sizeof root, "%s/root", fl_test_tmp());
	mkdir(root, 0700);
	snprintf(sdir, sizeof sdir, "%s/%s", root, id);
	char cmd[2600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", sdir, sdir);
	assert_int_equal(system(cmd), 0);
}

static void file_in(const char *name, const char *text)
{
	char p[1400];
	snprintf(p, sizeof p, "%s/%s", sdir, name);
	put_file(p, text);
}

/* Compresses text into sdir/name with the lz4 CLI, appending a frame when append is set. */
static void lz4_in(const char *name, const char *text, int append)
{
	char p[1400], cmd[3200];
	snprintf(p, sizeof p, "%s/plain.tmp", fl_test_tmp());
	put_file(p, text);
	snprintf(cmd, sizeof cmd, "lz4 -q -c '%s' %s '%s/%s'", p, append ? ">>" : ">", sdir, name);
	if (system(cmd) != 0)
		fail_msg("lz4 CLI failed: %s (is the lz4 package installed?)", cmd);
}

static const char *line(int seq, const char *cls)
{
	static char buf[8][160];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, 160, "{\"ts\":\"2026-01-01T00:00:00.%09dZ\",\"seq\":%d,\"class\":\"%s\",\"data\":{\"seq\":0}}\n",
		 seq, seq, cls);
	return b;
}

static void test_cat_merge_handmade(void **state)
{
	(void)state;
	make_session_dir("hand");
	char buf[4096];
	/* system: archive 1 (two concatenated frames), archive 2 with a plain twin (plain wins), plain 3, active */
	snprintf(buf, sizeof buf, "%s%s", line(0, "system"), line(1, "system"));
	lz4_in("system.000001.jsonl.lz4", buf, 0);
	lz4_in("system.000001.jsonl.lz4", line(3, "system"), 1);
	snprintf(buf, sizeof buf, "%s%s", line(5, "system"), line(6, "system"));
	file_in("system.000002.jsonl", buf);
	lz4_in("system.000002.jsonl.lz4", line(5, "system"), 0);
	file_in("system.000003.jsonl", line(8, "system"));
	/* the active file ends in half a line the drainer is still writing: held back */
	snprintf(buf, sizeof buf, "%s{\"seq\":12,\"cla", line(10, "system"));
	file_in("system.jsonl", buf);
	/* user: archive, then active */
	snprintf(buf, sizeof buf, "%s%s", line(2, "user"), line(4, "user"));
	lz4_in("user.000002.jsonl.lz4", buf, 0);
	snprintf(buf, sizeof buf, "%s%s%s", line(7, "user"), line(9, "user"), line(11, "user"));
	file_in("user.jsonl", buf);
	/* noise that is not a segment */
	file_in("session.json", "{\"id\":\"hand\",\"state\":\"live\"}\n");
	file_in("system.000004.jsonl.lz4.tmp", "junk");
	file_in("notes.txt", "{\"seq\":99}\n");

	assert_int_equal(run("cat", "--root", root, "hand", NULL), 0);
	char want[8192] = "";
	for (int i = 0; i <= 11; i++)
		strcat(want, line(i, (i == 2 || i == 4 || i == 7 || i == 9 || i == 11) ? "user" : "system"));
	assert_string_equal(out_buf, want);

	/* FUGUE_LOG_DIR is the root when --root is absent */
	setenv("FUGUE_LOG_DIR", root, 1);
	assert_int_equal(run("cat", "hand", "--class", "user", NULL), 0);
	unsetenv("FUGUE_LOG_DIR");
	snprintf(want, sizeof want, "%s%s%s%s%s", line(2, "user"), line(4, "user"), line(7, "user"), line(9, "user"),
		 line(11, "user"));
	assert_string_equal(out_buf, want);

	assert_int_equal(run("cat", "--root", root, "--class", "system", "hand", NULL), 0);
	snprintf(want, sizeof want, "%s%s%s%s%s%s%s", line(0, "system"), line(1, "system"), line(3, "system"),
		 line(5, "system"), line(6, "system"), line(8, "system"), line(10, "system"));
	assert_string_equal(out_buf, want);

	assert_int_equal(run("cat", "--root", root, "nobody", NULL), 3);
	assert_non_null(strstr(err_buf, "no logs for session 'nobody'"));
}

static void test_cat_bad_files(void **state)
{
	(void)state;
	make_session_dir("bad");
	char buf[4096], p[1400];
	snprintf(buf, sizeof buf, "%s%s%s", line(0, "system"), line(1, "system"), line(2, "system"));
	lz4_in("system.000001.jsonl.lz4", buf, 0);
	/* cut the archive short: the lines before the cut may show, the error is reported */
	snprintf(p, sizeof p, "%s/system.000001.jsonl.lz4", sdir);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(truncate(p, st.st_size - 6), 0);
	file_in("system.jsonl", line(3, "system"));
	/* a symlink where a segment should be is refused, not followed */
	char target[1400];
	snprintf(target, sizeof target, "%s/secret", fl_test_tmp());
	put_file(target, "{\"seq\":1000}\n");
	snprintf(p, sizeof p, "%s/user.000001.jsonl", sdir);
	assert_int_equal(symlink(target, p), 0);
	file_in("user.jsonl", line(4, "user"));

	assert_int_equal(run("cat", "--root", root, "bad", NULL), 1);
	assert_non_null(strstr(err_buf, "system.000001.jsonl.lz4"));
	assert_non_null(strstr(err_buf, "symlink"));
	assert_null(strstr(out_buf, "1000"));
	assert_non_null(strstr(out_buf, line(3, "system")));
	assert_non_null(strstr(out_buf, line(4, "user")));

	/* the session directory itself as a symlink is refused */
	char link[1400];
	snprintf(link, sizeof link, "%s/viaLink", root);
	unlink(link);
	assert_int_equal(symlink(sdir, link), 0);
	assert_int_equal(run("cat", "--root", root, "viaLink", NULL), 1);
	assert_int_equal(run("cat", "--root", root, "../x", NULL), 2);
}

/* Appends text to sdir/name. */
static void append_in(const char *name, const char *text)
{
	char p[1400];
	snprintf(p, sizeof p, "%s/%s", sdir, name);
	FILE *f = fopen(p, "a");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int count_lines(const char *path)
{
	slurp(path, out_buf, sizeof out_buf);
	int n = 0;
	for (const char *c = out_buf; *c; c++)
		n += *c == '\n';
	return n;
}

static void test_cat_follow_rotation(void **state)
{
	(void)state;
	make_session_dir("fol");
	file_in("system.jsonl", line(0, "system"));
	file_in("user.jsonl", line(1, "user"));
	char outp[1200];
	snprintf(outp, sizeof outp, "%s/follow.out", fl_test_tmp());
	unlink(outp); /* a stale copy from an earlier run must not count */
	const char *cat_argv[] = {cli_path(), "cat", "--root", root, "--follow", "fol", NULL};
	pid_t pid = spawn_to(outp, cat_argv);
	child = pid;
	/* bounded waits for what the follower prints; no timing assertion */
	int n = 0;
	for (int i = 0; i < 3000 && (n = count_lines(outp)) < 2; i++)
		usleep(10000);
	assert_int_equal(n, 2);

	/* the drainer appends, then rotates: rename the active file, open a new one */
	append_in("system.jsonl", line(2, "system"));
	append_in("user.jsonl", line(3, "user"));
	char a[1400], b[1400];
	snprintf(a, sizeof a, "%s/system.jsonl", sdir);
	snprintf(b, sizeof b, "%s/system.000001.jsonl", sdir);
	append_in("system.jsonl", line(4, "system"));
	assert_int_equal(rename(a, b), 0);
	file_in("system.jsonl", line(5, "system"));
	append_in("user.jsonl", line(6, "user"));
	for (int i = 0; i < 3000 && (n = count_lines(outp)) < 7; i++)
		usleep(10000);
	assert_int_equal(n, 7);

	/* the rotated segment is archived and its plain copy removed: nothing is printed twice */
	char cmd[3000];
	snprintf(cmd, sizeof cmd, "lz4 -q '%s' '%s.lz4' && rm '%s'", b, b, b);
	assert_int_equal(system(cmd), 0);
	append_in("system.jsonl", line(7, "system"));
	file_in("session.json", "{\"id\":\"fol\",\"state\":\"ended\"}\n");

	int st = 0;
	pid_t w = 0;
	for (int i = 0; i < 3000 && (w = waitpid(pid, &st, WNOHANG)) == 0; i++)
		usleep(10000);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		child = -1;
		fail_msg("cat --follow did not end after session.json said ended");
	}
	child = -1;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	slurp(outp, out_buf, sizeof out_buf);
	char want[4096] = "";
	for (int i = 0; i <= 7; i++)
		strcat(want, line(i, (i == 1 || i == 3 || i == 6) ? "user" : "system"));
	assert_string_equal(out_buf, want);
}

static void test_cat_follow_sigint(void **state)
{
	(void)state;
	make_session_dir("sig");
	file_in("user.jsonl", line(0, "user"));
	char outp[1200];
	snprintf(outp, sizeof outp, "%s/sig.out", fl_test_tmp());
	unlink(outp); /* a stale copy from an earlier run must not count */
	const char *cat_argv[] = {cli_path(), "cat", "--root", root, "-f", "sig", NULL};
	pid_t pid = spawn_to(outp, cat_argv);
	child = pid;
	int n = 0;
	for (int i = 0; i < 3000 && (n = count_lines(outp)) < 1; i++)
		usleep(10000);
	assert_int_equal(n, 1);
	kill(pid, SIGINT);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	child = -1;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- segread and the JSON field lookup, directly ----------------------------------------- */

static void test_segread_lines(void **state)
{
	(void)state;
	const char *v;
	size_t n;
	uint64_t seq;
	/* nested and quoted "seq" before the top-level one must not be taken */
	const char *l1 = "{\"data\":{\"seq\":5,\"x\":\"\\\"seq\\\":7 }\"},\"a\":[1,{\"seq\":8}],\"seq\":3}";
	assert_int_equal(fl_line_seq(l1, strlen(l1), &seq), 0);
	assert_int_equal(seq, 3);
	assert_int_equal(fl_json_field(l1, strlen(l1), "a", &v, &n), 0);
	assert_int_equal(n, strlen("[1,{\"seq\":8}]"));
	assert_int_equal(fl_json_field(l1, strlen(l1), "nope", &v, &n), -ENOENT);
	const char *l2 = " { \"seq\" : 18446744073709551615 , \"s\" : \"x\" } ";
	assert_int_equal(fl_line_seq(l2, strlen(l2), &seq), 0);
	assert_true(seq == UINT64_MAX);
	assert_int_equal(fl_json_field(l2, strlen(l2), "s", &v, &n), 0);
	assert_int_equal(n, 3);
	const char *bad[] = {"",
			     "[1]",
			     "{\"seq\":-1}",
			     "{\"seq\":\"1\"}",
			     "{\"seq\" 1}",
			     "{\"a\":1 \"seq\":2}",
			     "{\"seq\":18446744073709551616}",
			     "{\"a\":\"unterminated}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (fl_line_seq(bad[i], strlen(bad[i]), &seq) >= 0)
			fail_msg("a seq was found in %s", bad[i]);

	/* a 300 KB line (past the first buffer) plain and in lz4, then a short one */
	make_session_dir("long");
	size_t big = 300000;
	char *text = malloc(big + 64);
	assert_non_null(text);
	int k = snprintf(text, big + 64, "{\"seq\":1,\"pad\":\"");
	memset(text + k, 'x', big);
	strcpy(text + k + big, "\"}\n{\"seq\":2}\n");
	file_in("system.000001.jsonl", text);
	lz4_in("system.000002.jsonl.lz4", text, 0);
	int dfd = open(sdir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	struct fl_seg *segs;
	assert_int_equal(fl_segments_list(dfd, "system", &segs), 2);
	assert_int_equal(segs[0].num, 1);
	assert_int_equal(segs[1].lz4, 1);
	for (int i = 0; i < 2; i++) {
		struct fl_segread *r;
		const char *line;
		size_t len;
		assert_int_equal(fl_segread_open(&r, dfd, segs[i].name, NULL, 0), 0);
		assert_int_equal(fl_segread_next(r, &line, &len, NULL, 0), 1);
		assert_int_equal(len, (size_t)k + big + 2);
		assert_int_equal(fl_line_seq(line, len, &seq), 0);
		assert_int_equal(seq, 1);
		assert_int_equal(fl_segread_next(r, &line, &len, NULL, 0), 1);
		assert_int_equal(len, 9);
		assert_int_equal(fl_segread_next(r, &line, &len, NULL, 0), 0);
		fl_segread_close(r);
	}
	fl_segments_free(segs, 2);
	/* the active file: an incomplete line waits until its newline arrives */
	file_in("user.jsonl", "{\"seq\":3}\n{\"seq\":4");
	struct fl_segread *r;
	const char *line;
	size_t len;
	assert_int_equal(fl_segread_open(&r, dfd, "user.jsonl", NULL, 0), 0);
	assert_int_equal(fl_segread_next(r, &line, &len, NULL, 0), 1);
	assert_int_equal(fl_segread_next(r, &line, &len, NULL, 0), 0);
	append_in("user.jsonl", "}\n");
	assert_int_equal(fl_segread_next(r, &line, &len, NULL, 0), 1);
	assert_int_equal(len, 9);
	assert_memory_equal(line, "{\"seq\":4}", 9);
	fl_segread_close(r);
	char why[200];
	assert_int_equal(fl_segread_open(&r, dfd, "../x", why, sizeof why), -EINVAL);
	close(dfd);
	free(text);
}

/* ---- cat on a real drainer's files ------------------------------------------------------- */

/* Checks out_buf: n lines with seq 1..n in order, each in the file of its class. */
static void check_merged(long n, long *user_lines)
{
	long i = 0, users = 0;
	for (char *l = out_buf, *nl; *l; l = nl + 1, i++) {
		nl = strchr(l, '\n');
		assert_non_null(nl);
		uint64_t seq;
		if (fl_line_seq(l, (size_t)(nl - l), &seq) < 0)
			fail_msg("line %ld has no seq: %.200s", i + 1, l);
		if ((long)seq != i + 1)
			fail_msg("line %ld has seq %llu", i + 1, (unsigned long long)seq);
		const char *v;
		size_t vl;
		assert_int_equal(fl_json_field(l, (size_t)(nl - l), "class", &v, &vl), 0);
		users += vl == 6 && !memcmp(v, "\"user\"", 6);
	}
	assert_int_equal(i, n);
	if (user_lines)
		*user_lines = users;
}

/*
 * A listing never misses a segment, however fast the directory changes: a
 * thread rotates (each active file says which segment it will become) and
 * archives the segment before the last one (its .lz4 renamed into place, then
 * the plain file removed) while listings are taken. While a listing is being
 * taken the thread rotates as fast as it can, up to ROT_BURST times, far more
 * often than a walk of the directory takes (its foreign files make walks
 * slow); between listings it waits, so each listing can be checked against
 * the directory at rest: with active file k+1 (believed only when its inode
 * is the listed one, compared while the listing holds it), segments k and k-1
 * (plain or archived) must be listed. A listing that gives up (-EAGAIN) is
 * counted, not checked; the test wants ROT_CHECKS checked listings. The old
 * lister (64 retakes, one walk each) missed 1-460 of 500 here.
 */
#define ROT_BURST 100
#define ROT_CHECKS 500
#define ROT_FOREIGN 2000

struct rotator {
	int dirfd;
	_Atomic int stop, done, listing; /* listing: a listing is being taken, rotate */
};

static void put_file_at(int dirfd, const char *name, unsigned k)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	char b[32];
	int n = snprintf(b, sizeof b, "%u\n", k);
	assert_int_equal(write(fd, b, (size_t)n), n);
	close(fd);
}

static void *rotate_main(void *arg)
{
	struct rotator *r = arg;
	unsigned k = 1;
	while (!atomic_load(&r->stop)) {
		while (!atomic_load(&r->stop) && !atomic_load(&r->listing))
			sched_yield();
		for (int burst = 0; burst < ROT_BURST && atomic_load(&r->listing); burst++, k++) {
			char name[FL_SEG_NAME_MAX], tmp[FL_SEG_NAME_MAX];
			fl_seg_name(name, sizeof name, "system", k, FL_SEG_PLAIN);
			if (renameat(r->dirfd, "system.jsonl", r->dirfd, name) < 0)
				goto out;
			put_file_at(r->dirfd, "system.jsonl", k + 1);
			if (k > 1) {
				fl_seg_name(tmp, sizeof tmp, "system", k - 1, FL_SEG_TMP);
				fl_seg_name(name, sizeof name, "system", k - 1, FL_SEG_LZ4);
				put_file_at(r->dirfd, tmp, k - 1);
				renameat(r->dirfd, tmp, r->dirfd, name);
				fl_seg_name(name, sizeof name, "system", k - 1, FL_SEG_PLAIN);
				unlinkat(r->dirfd, name, 0);
			}
			if (k > 2) {
				fl_seg_name(name, sizeof name, "system", k - 2, FL_SEG_LZ4);
				unlinkat(r->dirfd, name, 0);
			}
		}
		/* this listing has had its burst: it may settle now */
		while (!atomic_load(&r->stop) && atomic_load(&r->listing))
			sched_yield();
	}
out:
	atomic_store(&r->done, 1);
	return NULL;
}

/* 1 when v[0..n) lists segment num (plain or archived). */
static int lists_segment(const struct fl_seg *v, int n, uint64_t num)
{
	for (int i = 0; i < n; i++)
		if (v[i].num == num)
			return 1;
	return 0;
}

static void test_segments_list_during_rotation(void **state)
{
	(void)state;
	make_session_dir("rot-list");
	struct rotator r = {.dirfd = open(sdir, O_RDONLY | O_DIRECTORY)};
	assert_true(r.dirfd >= 0);
	for (unsigned i = 0; i < ROT_FOREIGN; i++) {
		char name[32];
		snprintf(name, sizeof name, "foreign.%u", i);
		put_file_at(r.dirfd, name, i);
	}
	put_file_at(r.dirfd, "system.jsonl", 1);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, rotate_main, &r), 0);
	long checked = 0, missed = 0, gave_up = 0;
	for (long i = 0; i < 100000 && checked < ROT_CHECKS && !atomic_load(&r.done); i++) {
		struct fl_seg *v;
		atomic_store(&r.listing, 1);
		int n = fl_segments_list(r.dirfd, "system", &v);
		atomic_store(&r.listing, 0);
		if (n == -EAGAIN) {
			gave_up++;
			continue;
		}
		assert_true(n >= 0);
		/* a rotation still under way when the listing returned makes the active file not the listed one */
		int fd = n && v[n - 1].num == FL_SEG_ACTIVE ? openat(r.dirfd, "system.jsonl", O_RDONLY) : -1;
		struct stat sb;
		char b[32] = "";
		if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_ino == v[n - 1].ino && read(fd, b, sizeof b - 1) > 0) {
			uint64_t k = strtoull(b, NULL, 10) - 1; /* the active file is segment k+1 to be */
			checked++;
			if ((k >= 1 && !lists_segment(v, n, k)) || (k >= 2 && !lists_segment(v, n, k - 1)))
				missed++;
		}
		if (fd >= 0)
			close(fd);
		fl_segments_free(v, n);
	}
	atomic_store(&r.stop, 1);
	pthread_join(th, NULL);
	close(r.dirfd);
	print_message("%ld listings checked, %ld missed a segment, %ld gave up\n", checked, missed, gave_up);
	assert_true(checked >= ROT_CHECKS);
	assert_int_equal(missed, 0);
}

/* FLT_FLAPDIR preloaded into the programs started until flap_env_clear, hiding name on every other walk. */
static char *flap_asan_was;
static void flap_env_set(const char *name)
{
	char asan[1024];
	const char *was = getenv("ASAN_OPTIONS");
	snprintf(asan, sizeof asan, "%s%sverify_asan_link_order=0", was ? was : "", was && *was ? ":" : "");
	flap_asan_was = was ? strdup(was) : NULL;
	setenv("ASAN_OPTIONS", asan, 1);
	setenv("LD_PRELOAD", FLT_FLAPDIR, 1);
	setenv("FLT_FLAP_NAME", name, 1);
}

static void flap_env_clear(void)
{
	unsetenv("LD_PRELOAD");
	unsetenv("FLT_FLAP_NAME");
	unsetenv("FLT_FLAP_STOP");
	unsetenv("FLT_FLAP_SEEN");
	if (flap_asan_was)
		setenv("ASAN_OPTIONS", flap_asan_was, 1);
	else
		unsetenv("ASAN_OPTIONS");
	free(flap_asan_was);
	flap_asan_was = NULL;
}

/* Runs fugue-log with FLT_FLAPDIR preloaded, hiding name on every other directory walk. */
static int run_flapping(const char *name, char **argv)
{
	flap_env_set(name);
	int rc = run_argv(NULL, argv);
	flap_env_clear();
	return rc;
}

/* A session directory with system lines 1, 3 (an archive, a plain segment) and 4 (active), user line 2. */
static void make_flap_dir(const char *id)
{
	make_session_dir(id);
	lz4_in("system.000001.jsonl.lz4", line(1, "system"), 0);
	file_in("system.000002.jsonl", line(3, "system"));
	file_in("system.jsonl", line(4, "system"));
	file_in("user.jsonl", line(2, "user"));
}

/*
 * A directory that differs on every walk (a segment there, then not: the shim
 * stands in for rotation faster than a listing) makes the segment lister give
 * up with -EAGAIN instead of returning a listing that may miss a segment; cat
 * and replay say so and fail, and the class that could be listed is still printed.
 */
static void test_cat_listing_gives_up(void **state)
{
	(void)state;
	make_flap_dir("flap");
	file_in("session.json", "{\"id\":\"flap\",\"state\":\"live\"}\n");
	file_in("notes.txt", "not a segment\n");
	char want[1024];
	snprintf(want, sizeof want, "%s%s%s%s", line(1, "system"), line(2, "user"), line(3, "system"),
		 line(4, "system"));

	/* without the shim the same directory lists and prints whole: the shim is what fails the runs below */
	char *cat[] = {(char *)cli_path(), "cat", "--root", root, "flap", NULL};
	assert_int_equal(run_argv(NULL, cat), 0);
	assert_string_equal(out_buf, want);

	assert_int_equal(run_flapping("system.000001.jsonl.lz4", cat), 1);
	if (!strstr(err_buf, "kept changing while it was listed") || !strstr(err_buf, "the system lines stop here"))
		fail_msg("cat said: %s", err_buf);
	assert_string_equal(out_buf, line(2, "user"));

	/* a name the lister ignores changes nothing */
	assert_int_equal(run_flapping("notes.txt", cat), 0);
	assert_string_equal(out_buf, want);

	char *replay[] = {(char *)cli_path(), "replay", "--root", root, "--no-timing", "flap", NULL};
	assert_int_not_equal(run_flapping("system.000002.jsonl", replay), 0);
	if (!strstr(err_buf, "kept changing (rotating faster than it can be listed)"))
		fail_msg("replay said: %s", err_buf);
	assert_string_equal(out_buf, "");
}

/*
 * With --follow, a listing that gives up is not the end: the next wake-up
 * lists again. The shim flaps until at least two listings have given up
 * (FLT_FLAP_SEEN), then stops; a new line wakes cat, which prints every line
 * exactly once and says nothing on stderr.
 */
static void test_cat_follow_listing_gives_up(void **state)
{
	(void)state;
	make_flap_dir("flapf");
	char outp[1200], errp[1200], stop[1200], seen[1200];
	snprintf(outp, sizeof outp, "%s/flapf.out", fl_test_tmp());
	snprintf(errp, sizeof errp, "%s/flapf.err", fl_test_tmp());
	snprintf(stop, sizeof stop, "%s/flapf.stop", fl_test_tmp());
	snprintf(seen, sizeof seen, "%s/flapf.seen", fl_test_tmp());
	unlink(outp), unlink(errp), unlink(stop), unlink(seen);
	flap_env_set("system.000001.jsonl.lz4");
	setenv("FLT_FLAP_STOP", stop, 1);
	setenv("FLT_FLAP_SEEN", seen, 1);
	const char *cat_argv[] = {cli_path(), "cat", "--root", root, "-f", "flapf", NULL};
	pid_t pid = spawn_to_err(outp, errp, cat_argv);
	child = pid;
	flap_env_clear();
	/* cat lists again on its own wake-ups (timer or inotify) until the shim has seen two give-ups */
	for (int i = 0; i < 6000 && access(seen, F_OK) != 0; i++) {
		if (i % 50 == 0)
			file_in("notes.txt", "a wake-up\n");
		usleep(10000);
	}
	if (access(seen, F_OK) != 0)
		fail_msg("cat --follow stopped listing the directory before two listings had given up (it must list "
			 "again at each wake-up)");
	assert_int_equal(waitpid(pid, NULL, WNOHANG), 0); /* still following */
	close(creat(stop, 0600));
	char more[512];
	snprintf(more, sizeof more, "%s%s", line(2, "user"), line(5, "user"));
	file_in("user.jsonl", more);
	for (int i = 0; i < 3000 && count_lines(outp) < 5; i++)
		usleep(10000);
	kill(pid, SIGINT);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	child = -1;
	slurp(outp, out_buf, sizeof out_buf);
	slurp(errp, err_buf, sizeof err_buf);
	/* every line once; user seq 2 may come first: with system unlisted past a second, cat prints what it has */
	const char *want[] = {line(1, "system"), line(2, "user"), line(3, "system"), line(4, "system"),
			      line(5, "user")};
	size_t total = 0;
	for (int i = 0; i < 5; i++) {
		const char *at = strstr(out_buf, want[i]);
		if (!at || strstr(at + 1, want[i]))
			fail_msg("line %d not printed exactly once: %s", i, out_buf);
		total += strlen(want[i]);
	}
	assert_int_equal(strlen(out_buf), total);
	assert_string_equal(err_buf, "");
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_cat_real_drainer(void **state)
{
	(void)state;
	char droot[1200], conf[1300];
	snprintf(droot, sizeof droot, "%s/droot", fl_test_tmp());
	fl_it_rmtree(droot);
	snprintf(conf, sizeof conf, "%s/rotate.conf", fl_test_tmp());
	/* small segments: the session spans several rotated, lz4-archived files */
	put_file(conf, "max_file_size = 4K\n");
	const char *extra[] = {"--config", conf, NULL};
	struct fl_itd d;
	fl_it_drainer_start(&d, droot, extra);
	drainer_up = &d;

	/* 300 events of all ten kinds at full: 120 user, 180 system */
	/* 300 small events fit one 1 MiB lane: no drops even if the drainer lags, and no --block that a
	   dead drainer could hang */
	assert_int_equal(
	    run("emit", "--event", "all", "--count", "300", "--level", "full", "--session-id", "real", NULL), 0);
	assert_int_equal(json_u64("admitted"), 300);
	if (!fl_it_wait_state(droot, "real", "ended", 60))
		fail_msg("session 'real' never ended (drainer log: %s)", d.log);

	assert_int_equal(run("cat", "--root", droot, "real", NULL), 0);
	long users;
	check_merged(300, &users);
	assert_int_equal(users, 120);
	/* the archives really were read: rotation happened */
	char p[1400];
	int archives = 0;
	for (int k = 1; k < 1000; k++) {
		snprintf(p, sizeof p, "%s/real/system.%06d.jsonl.lz4", droot, k);
		archives += access(p, F_OK) == 0;
	}
	snprintf(p, sizeof p, "%s/real/system.000001.jsonl", droot);
	assert_true(archives > 0 || access(p, F_OK) == 0);

	assert_int_equal(run("cat", "--root", droot, "--class", "user", "real", NULL), 0);
	long n = 0;
	for (const char *c = out_buf; *c; c++)
		n += *c == '\n';
	assert_int_equal(n, 120);
	assert_null(strstr(out_buf, "\"class\":\"system\""));
	drainer_up = NULL;
	assert_int_equal(fl_it_drainer_stop(&d), 0);
}

static void test_cat_follow_real_drainer(void **state)
{
	(void)state;
	char droot[1200], conf[1300];
	snprintf(droot, sizeof droot, "%s/droot", fl_test_tmp());
	fl_it_rmtree(droot);
	snprintf(conf, sizeof conf, "%s/rotate.conf", fl_test_tmp());
	put_file(conf, "max_file_size = 4K\n");
	const char *extra[] = {"--config", conf, NULL};
	struct fl_itd d;
	fl_it_drainer_start(&d, droot, extra);
	drainer_up = &d;

	/* a paced session; the follower starts while it runs and ends with it */
	char emit_out[1200];
	snprintf(emit_out, sizeof emit_out, "%s/emit.json", fl_test_tmp());
	const char *emit[] = {cli_path(), "emit",    "--event", "all",		"--count",  "200", "--rate",
			      "400",	  "--level", "full",	"--session-id", "fol-real", NULL};
	pid_t ep = spawn_to(emit_out, emit);
	char name[256];
	struct fl_ring r;
	assert_int_equal(fl_ring_name(name, sizeof name, NULL, "fol-real"), 0);
	int seen = 0;
	for (int i = 0; i < 3000 && !seen; i++) {
		seen = fl_ring_attach(&r, name, NULL, 0) == 0;
		if (seen)
			fl_ring_detach(&r);
		else
			usleep(2000);
	}
	/* the session may already be finished and unlinked on a fast machine: then cat reads the files */
	char outp[1200];
	snprintf(outp, sizeof outp, "%s/follow.out", fl_test_tmp());
	unlink(outp);
	const char *cat_argv[] = {cli_path(), "cat", "--root", droot, "--follow", "fol-real", NULL};
	pid_t cp = spawn_to(outp, cat_argv);
	child = cp;
	int st;
	assert_int_equal(waitpid(ep, &st, 0), ep);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	pid_t w = 0;
	for (int i = 0; i < 6000 && (w = waitpid(cp, &st, WNOHANG)) == 0; i++)
		usleep(10000);
	if (w == 0)
		fail_msg("cat --follow did not end with the session (drainer log: %s)", d.log);
	child = -1;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	slurp(outp, out_buf, sizeof out_buf);
	check_merged(200, NULL);
	drainer_up = NULL;
	assert_int_equal(fl_it_drainer_stop(&d), 0);
}

/* ---- log roots, config paths and gc -------------------------------------------------------- */

static const char *logd_path(void)
{
	static char p[1024];
	return fl_it_build_path(p, sizeof p, "drainer/fugue-logd");
}

/* fugue-logd with these arguments (NULL-terminated), from the test's scratch directory. */
#define run_logd(...) run_prog(logd_path(), __VA_ARGS__)

/* A relative root is refused from every source, by both tools, naming the source and the value. */
static void test_root_relative_refused(void **state)
{
	(void)state;
	assert_int_equal(chdir(fl_test_tmp()), 0); /* where a relative root would have gone */
	char conf[1200], empty[1200];
	snprintf(conf, sizeof conf, "%s/rel.conf", fl_test_tmp());
	snprintf(empty, sizeof empty, "%s/empty.conf", fl_test_tmp());
	put_file(conf, "root = relc\n");
	put_file(empty, "");

	assert_int_equal(run("--root", "relf", "gc", NULL), 2);
	assert_non_null(strstr(err_buf, "--root=relf is refused: use an absolute directory path or ~/..."));
	assert_int_equal(run("gc", "--root", "relf", NULL), 2);
	assert_int_equal(run("cat", "--root", "relf", "x", NULL), 2);
	assert_int_equal(run_logd("--foreground", "--config", empty, "--root", "relf", NULL), 3);
	assert_non_null(strstr(err_buf, "--root=relf is refused"));

	setenv("FUGUE_LOG_DIR", "rele", 1);
	assert_int_equal(run("gc", "--config", empty, NULL), 1);
	assert_non_null(strstr(err_buf, "FUGUE_LOG_DIR=rele is refused"));
	assert_int_equal(run_logd("--foreground", "--config", empty, NULL), 3);
	assert_non_null(strstr(err_buf, "FUGUE_LOG_DIR=rele is refused"));
	unsetenv("FUGUE_LOG_DIR");

	assert_int_equal(run("gc", "--config", conf, NULL), 1);
	assert_non_null(strstr(err_buf, "rel.conf:1: root=relc is refused"));
	assert_int_equal(run_logd("--foreground", "--config", conf, NULL), 3);
	assert_non_null(strstr(err_buf, "rel.conf:1: root=relc is refused"));

	/* a directory given as the config is not an empty config */
	assert_int_equal(run("gc", "--config", fl_test_tmp(), NULL), 1);
	assert_non_null(strstr(err_buf, "is a directory, not a config file"));
	assert_int_equal(run("ls", "--config", fl_test_tmp(), NULL), 1);
	assert_int_equal(run_logd("--foreground", "--config", fl_test_tmp(), NULL), 3);
	assert_non_null(strstr(err_buf, "is a directory, not a config file"));

	static const char *const never[] = {"relf", "rele", "relc", "/relf", "/rele", "/relc"};
	for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
		if (access(never[i], F_OK) == 0)
			fail_msg("%s was created", never[i]);
}

static int file_exists_cond(void *path)
{
	return access(path, F_OK) == 0;
}

/*
 * fugue-logd daemonized (it changes to /) with its root given as ~/sub by one
 * source: it writes the session under $HOME/sub, and nothing under ./~ or /~.
 * The extra arguments and environment are the source.
 */
static void daemon_tilde_root(const char *sub, const char *flag_root, const char *env_root, const char *conf_root)
{
	char home_root[1200], pidf[1300], conf[1200], sys[1400], tilde[1200], id[64];
	snprintf(home_root, sizeof home_root, "%s/%s", fl_test_tmp(), sub);
	fl_it_rmtree(home_root);
	snprintf(pidf, sizeof pidf, "%s/fugue-logd.pid", home_root);
	snprintf(conf, sizeof conf, "%s/tilde.conf", fl_test_tmp());
	char text[128] = "";
	if (conf_root)
		snprintf(text, sizeof text, "root = %s\n", conf_root);
	put_file(conf, text);
	if (env_root)
		setenv("FUGUE_LOG_DIR", env_root, 1);
	int rc = flag_root ? run_logd("--config", conf, "--root", flag_root, NULL) : run_logd("--config", conf, NULL);
	unsetenv("FUGUE_LOG_DIR");
	if (rc != 0)
		fail_msg("fugue-logd exited %d: %s", rc, err_buf);
	if (!fl_it_wait(file_exists_cond, pidf, 30))
		fail_msg("no %s: the daemon did not use $HOME/%s", pidf, sub);
	char pidtext[32];
	slurp(pidf, pidtext, sizeof pidtext);
	daemon_pid = (pid_t)atoi(pidtext);
	assert_true(daemon_pid > 0);
	snprintf(id, sizeof id, "tilde-%s", sub);
	assert_int_equal(run("emit", "--event", "error", "--session-id", id, NULL), 0);
	snprintf(sys, sizeof sys, "%s/%s/system.jsonl", home_root, id);
	if (!fl_it_wait(file_exists_cond, sys, 60))
		fail_msg("the session was not written to %s", sys);
	kill(daemon_pid, SIGTERM);
	if (!fl_it_wait_state(home_root, id, "ended", 60))
		fail_msg("session %s never ended under %s", id, home_root);
	for (int i = 0; i < 3000 && kill(daemon_pid, 0) == 0; i++)
		usleep(10000);
	assert_int_not_equal(kill(daemon_pid, 0), 0);
	daemon_pid = -1;
	snprintf(tilde, sizeof tilde, "%s/~", fl_test_tmp());
	assert_int_not_equal(access(tilde, F_OK), 0);
	assert_int_not_equal(access("/~", F_OK), 0);
}

/* ~ expands from $HOME for every source, and fugue-log finds the same root. */
static void test_root_tilde_every_source(void **state)
{
	(void)state;
	assert_int_equal(chdir(fl_test_tmp()), 0);
	daemon_tilde_root("t-flag", "~/t-flag", NULL, NULL);
	daemon_tilde_root("t-env", NULL, "~/t-env", NULL);
	daemon_tilde_root("t-conf", NULL, NULL, "~/t-conf");
	char conf[1200];
	snprintf(conf, sizeof conf, "%s/tilde.conf", fl_test_tmp());
	put_file(conf, "root = ~/t-conf\n");
	assert_int_equal(run("--config", conf, "cat", "tilde-t-conf", NULL), 0);
	assert_non_null(strstr(out_buf, "\"event\":\"error\""));
	setenv("FUGUE_LOG_DIR", "~/t-env", 1);
	assert_int_equal(run("cat", "tilde-t-env", NULL), 0);
	unsetenv("FUGUE_LOG_DIR");
	assert_non_null(strstr(out_buf, "\"event\":\"error\""));
	assert_int_equal(run("cat", "--root", "~/t-flag", "tilde-t-flag", NULL), 0);
	assert_non_null(strstr(out_buf, "\"event\":\"error\""));
}

/* gc: a missing root is a failure; --json prints exactly the lines appended to the root's log. */
static void test_gc_json_matches_log(void **state)
{
	(void)state;
	char groot[1200], conf[1300], logp[1400], p[1500];
	assert_int_equal(run("gc", "--root", "/nonexistent-fuguelog-root", NULL), 1);
	assert_non_null(strstr(err_buf, "/nonexistent-fuguelog-root does not exist"));
	assert_int_equal(run("gc", "--json", "--root", "/nonexistent-fuguelog-root", NULL), 1);

	snprintf(groot, sizeof groot, "%s/gcroot", fl_test_tmp());
	fl_it_rmtree(groot);
	assert_int_equal(mkdir(groot, 0700), 0);
	snprintf(conf, sizeof conf, "%s/gc.conf", fl_test_tmp());
	put_file(conf, "retention = 1d\n");
	struct timespec old[2] = {{time(NULL) - 3 * 86400, 0}, {time(NULL) - 3 * 86400, 0}};
	static const char *const sess[] = {"gone-a", "gone-b"};
	for (int i = 0; i < 2; i++) {
		snprintf(p, sizeof p, "%s/%s", groot, sess[i]);
		assert_int_equal(mkdir(p, 0700), 0);
		snprintf(p, sizeof p, "%s/%s/session.json", groot, sess[i]);
		put_file(p, "{\"state\":\"ended\"}\n");
		assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
		snprintf(p, sizeof p, "%s/%s/system.jsonl", groot, sess[i]);
		put_file(p, "{}\n");
		assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
	}
	assert_int_equal(run("gc", "--json", "--root", groot, "--config", conf, NULL), 0);
	snprintf(logp, sizeof logp, "%s/@fugue-logd.jsonl", groot);
	static char logged[1 << 16];
	slurp(logp, logged, sizeof logged);
	assert_string_equal(out_buf, logged);
	assert_int_equal(fl_it_count_lines(logp), 2);
	assert_non_null(strstr(out_buf, "\"seq\":1,"));
	assert_non_null(strstr(out_buf, "\"seq\":2,"));
}

/* 1 when /proc/<pid>/maps of the pid in *arg maps the shm object named in shm_name. */
static char shm_name[256];
static int maps_ring_cond(void *arg)
{
	char p[64], maps[1 << 16];
	snprintf(p, sizeof p, "/proc/%d/maps", *(pid_t *)arg);
	slurp(p, maps, sizeof maps);
	return strstr(maps, shm_name) != NULL;
}

/* A producer truncates its ring while `ls` samples it: ls reports the ring, it is not killed by SIGBUS. */
static void test_ls_ring_truncated(void **state)
{
	(void)state;
	char emit_out[1200], ls_out[1200], ls_err[1200];
	snprintf(emit_out, sizeof emit_out, "%s/emit.json", fl_test_tmp());
	/* a live producer that sleeps: its first event, then one per 1000 s */
	const char *emit[] = {cli_path(),   "emit", "--event",	    "state", "--rate", "0.001",
			      "--duration", "3000", "--session-id", "trunc", NULL};
	pid_t ep = spawn_to(emit_out, emit);
	child = ep;
	snprintf(shm_name, sizeof shm_name, "/dev/shm/%strunc", fl_ring_prefix());
	int caught = 0;
	for (int attempt = 0; attempt < 20 && !caught; attempt++) {
		if (!fl_it_wait(file_exists_cond, shm_name, 30))
			fail_msg("the emitting session never appeared as %s", shm_name);
		snprintf(ls_out, sizeof ls_out, "%s/ls.out", fl_test_tmp());
		snprintf(ls_err, sizeof ls_err, "%s/ls.err", fl_test_tmp());
		pid_t lp = fork();
		assert_true(lp >= 0);
		if (lp == 0) {
			int fo = open(ls_out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			int fe = open(ls_err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			dup2(fo, 1);
			dup2(fe, 2);
			execl(cli_path(), cli_path(), "ls", "--json", (char *)NULL);
			_exit(127);
		}
		/* ls maps the ring, then sleeps 200 ms between its two samples: truncate in between */
		if (fl_it_wait(maps_ring_cond, &lp, 10)) {
			int fd = open(shm_name, O_RDWR);
			assert_true(fd >= 0);
			assert_int_equal(ftruncate(fd, 0), 0);
			close(fd);
			caught = 1;
		}
		int st;
		assert_int_equal(waitpid(lp, &st, 0), lp);
		if (WIFSIGNALED(st))
			fail_msg("fugue-log ls was killed by signal %d", WTERMSIG(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	assert_true(caught);
	slurp(ls_out, out_buf, sizeof out_buf);
	assert_non_null(strstr(out_buf, "\"id\":\"trunc\",\"state\":\"broken\""));
	/* caught between the samples, or (the ring was just mapped) while ls was still attaching it */
	if (!strstr(out_buf, "truncated while being read") && !strstr(out_buf, "truncated while being attached"))
		fail_msg("ls did not say the ring was truncated: %s", out_buf);
	kill(ep, SIGKILL);
	waitpid(ep, NULL, 0);
	child = -1;
}

/* Lines removed by retention leave holes in seq: cat and cat --follow say so once per hole, on stderr. */
static void test_cat_retention_gap(void **state)
{
	(void)state;
	make_session_dir("holes");
	char all[1024] = "";
	strcat(all, line(183, "system"));
	strcat(all, line(184, "system"));
	strcat(all, line(186, "system"));
	file_in("system.jsonl", all);
	file_in("user.jsonl", line(185, "user"));
	file_in("session.json", "{\"state\":\"ended\"}\n");
	const char *want = "fugue-log: seq 1-182 of holes are not on disk (removed by retention: ";
	assert_int_equal(run("cat", "--root", root, "holes", NULL), 0);
	assert_non_null(strstr(err_buf, want));
	assert_null(strstr(err_buf, "seq 185"));
	assert_int_equal(run("cat", "--root", root, "--follow", "holes", NULL), 0);
	assert_non_null(strstr(err_buf, want));
	file_in("user.jsonl", "");
	assert_int_equal(run("cat", "--root", root, "holes", NULL), 0);
	assert_non_null(strstr(err_buf, want));
	assert_non_null(strstr(err_buf, "fugue-log: seq 185 of holes is not on disk"));
	int notes = 0;
	for (const char *c = err_buf; (c = strstr(c, "not on disk")); c++)
		notes++;
	assert_int_equal(notes, 2);
	/* one class alone has holes by nature: no notes */
	assert_int_equal(run("cat", "--root", root, "--class", "system", "holes", NULL), 0);
	assert_string_equal(err_buf, "");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_help_every_command, setup, teardown),
    cmocka_unit_test_setup_teardown(test_level_get_set, setup, teardown),
    cmocka_unit_test_setup_teardown(test_level_all, setup, teardown),
    cmocka_unit_test_setup_teardown(test_level_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_emit_counts, setup, teardown),
    cmocka_unit_test_setup_teardown(test_emit_rate_duration, setup, teardown),
    cmocka_unit_test_setup_teardown(test_emit_refused_id, setup, teardown),
    cmocka_unit_test_setup_teardown(test_ls_json, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cat_merge_handmade, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cat_bad_files, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cat_follow_rotation, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cat_follow_sigint, setup, teardown),
    cmocka_unit_test_setup_teardown(test_segread_lines, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cat_real_drainer, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cat_follow_real_drainer, setup, teardown),
    cmocka_unit_test_setup_teardown(test_segments_list_during_rotation, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cat_listing_gives_up, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cat_follow_listing_gives_up, setup, teardown),
    cmocka_unit_test_setup_teardown(test_root_relative_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_root_tilde_every_source, setup, teardown),
    cmocka_unit_test_setup_teardown(test_gc_json_matches_log, setup, teardown),
    cmocka_unit_test_setup_teardown(test_ls_ring_truncated, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cat_retention_gap, setup, teardown),
};

FL_TEST_MAIN("cli", tests)
