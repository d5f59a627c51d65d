/* SPDX-License-Identifier: MIT */
/* test_crash: producers and the drainer SIGKILLed at random points; what was published is on disk exactly once. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fl_test.h"

#include "fl_itest.h"
#include "fuguelog.h"

static char root[1024];

static int setup(void **state)
{
	(void)state;
	fl_it_fresh_root(root, sizeof root);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fl_it_shm_cleanup();
	return 0;
}

/* Shared with the child: how many emits returned success, stored after each return. */
struct ledger {
	_Atomic long done;
	_Atomic int ready;
};

static fl_session *open_blocking(const char *id, uint64_t lane_size)
{
	fl_session *s;
	char why[256] = "";
	struct fl_session_opts o = {
	    .id = id, .level = FL_LEVEL_FULL, .lanes = 1, .lane_size = lane_size, .full_policy = FL_FULL_BLOCK};
	if (fl_session_open(&s, &o, why, sizeof why) < 0) {
		fprintf(stderr, "fl_session_open %s: %s\n", id, why);
		_exit(90);
	}
	return s;
}

/* Emits action "k=<n>" for n = 0, 1, ... until count (or forever when count < 0); one lane, so order is n. */
static void emit_numbered(fl_session *s, struct ledger *lg, long count)
{
	char detail[32];
	for (long n = 0; count < 0 || n < count; n++) {
		snprintf(detail, sizeof detail, "k=%ld", n);
		if (fl_emit_action(s, 0, "crash", "test", detail) <= 0)
			_exit(91); /* blocking mode: nothing may be refused */
		atomic_store(&lg->done, n + 1);
		if (n == 100)
			atomic_store(&lg->ready, 1);
	}
}

/*
 * Reads every "k=<n>" detail of the user lines in file and checks they are
 * 0, 1, ... in order, each once; returns how many.
 */
static long numbered_lines(const char *path)
{
	char *b = fl_it_read_file(path, NULL);
	if (!b)
		fail_msg("cannot read %s", path);
	long want = 0;
	for (char *p = b; (p = strstr(p, "\"detail\":\"k="));) {
		p += strlen("\"detail\":\"k=");
		long n = strtol(p, &p, 10);
		if (n != want) {
			free(b);
			fail_msg("%s: event k=%ld where k=%ld was due (lost, repeated or reordered)", path, n, want);
		}
		want++;
	}
	free(b);
	return want;
}

static void check(const char *id, const char *const *args)
{
	char dir[1200];
	snprintf(dir, sizeof dir, "%s/%s", root, id);
	int rc = fl_it_check(dir, args);
	if (rc == 77)
		skip();
	if (rc != 0) {
		char out[1100];
		snprintf(out, sizeof out, "%s/check.json", fl_test_tmp());
		char *b = fl_it_read_file(out, NULL);
		fail_msg("check_jsonl.py failed (%d) on %s: %s", rc, dir, b ? b : "");
	}
}

/*
 * A producer SIGKILLed at a random point of its emit loop, many times: the
 * files hold exactly the events it published, in order, once each. The ledger
 * is bumped after each emit returns, so the process may have published one
 * more than it says (killed between the commit and the ledger store).
 */
static void test_producer_killed_at_random(void **state)
{
	(void)state;
	long runs = fl_it_scale(12, 3);
	/* no rotation: the check reads user.jsonl alone, and a victim that runs long passes 10M */
	char conf[1100];
	snprintf(conf, sizeof conf, "%s/norotate.conf", fl_test_tmp());
	FILE *f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "max_file_size = 0\n");
	fclose(f);
	const char *extra[] = {"--config", conf, NULL};
	struct fl_itd d;
	fl_it_drainer_start(&d, root, extra);
	struct ledger *lg = mmap(NULL, sizeof *lg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(lg != MAP_FAILED);
	unsigned seed = (unsigned)getpid();
	for (long run = 0; run < runs; run++) {
		char id[32];
		snprintf(id, sizeof id, "victim-%ld", run);
		atomic_store(&lg->done, 0);
		atomic_store(&lg->ready, 0);
		pid_t kid = fork();
		assert_true(kid >= 0);
		if (kid == 0) {
			fl_session *s = open_blocking(id, 1u << 14);
			emit_numbered(s, lg, -1);
			_exit(0);
		}
		while (!atomic_load(&lg->ready))
			fl_it_sleep_ms(1);
		/* a random moment: anywhere in an emit, in the ledger store, or while blocked on a full lane */
		struct timespec ts = {0, (long)(rand_r(&seed) % 20000) * 1000};
		nanosleep(&ts, NULL);
		kill(kid, SIGKILL);
		int st;
		assert_int_equal(waitpid(kid, &st, 0), kid);
		assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		long said = atomic_load(&lg->done);

		assert_true(fl_it_wait_state(root, id, "abandoned", 60));
		char usr[1200];
		snprintf(usr, sizeof usr, "%s/%s/user.jsonl", root, id);
		long got = numbered_lines(usr);
		if (got < said || got > said + 1)
			fail_msg("run %ld: %ld events on disk, the producer had published %ld or %ld", run, got, said,
				 said + 1);
		const char *args[] = {"--gapless", "--unique-ids", "--state", "abandoned",
				      "--expect",  "abandoned=1",  NULL};
		check(id, args);
	}
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	munmap(lg, sizeof *lg);
	assert_int_equal(fl_it_shm_cleanup(), 0); /* every abandoned ring was removed */
}

struct starts_arg {
	const char *log;
	pid_t pid;
};

/* 1 once the drainer with this pid has logged its start (its signals are handled from then on). */
static int started_cond(void *a)
{
	struct starts_arg *sa = a;
	char want[64];
	snprintf(want, sizeof want, "fugue-logd[%d]: draining", (int)sa->pid);
	char *b = fl_it_read_file(sa->log, NULL);
	int yes = b && strstr(b, want);
	free(b);
	return yes;
}

static int count_segments(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strstr(e->d_name, ".jsonl.lz4") != NULL;
	closedir(d);
	return n;
}

/*
 * The drainer SIGKILLed at random points while a producer writes and files
 * rotate every few KiB and get compressed: after the last restart, `fugue-log
 * cat` (archives included) shows every event once, in order, and every
 * archive passes `lz4 -t`.
 */
static void test_drainer_killed_at_random(void **state)
{
	(void)state;
	long count = fl_it_scale(30000, 5), kills = fl_it_scale(15, 3);
	char conf[1100];
	snprintf(conf, sizeof conf, "%s/rotate.conf", fl_test_tmp());
	FILE *f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "max_file_size = 64K\n");
	fclose(f);
	const char *extra[] = {"--config", conf, NULL};

	struct fl_itd d;
	fl_it_drainer_start(&d, root, extra);
	struct ledger *lg = mmap(NULL, sizeof *lg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(lg != MAP_FAILED);
	memset(lg, 0, sizeof *lg);
	pid_t kid = fork();
	assert_true(kid >= 0);
	if (kid == 0) {
		/* a small lane: the producer waits on the drainer, so kills land mid-stream */
		fl_session *s = open_blocking("steady", 1u << 13);
		emit_numbered(s, lg, count);
		fl_session_close(s);
		_exit(0);
	}
	unsigned seed = (unsigned)getpid() * 7u;
	for (long k = 0; k < kills; k++) {
		struct timespec ts = {0, (long)(rand_r(&seed) % 40000) * 1000 + 5000000};
		nanosleep(&ts, NULL);
		fl_it_drainer_kill(&d);
		fl_it_drainer_start(&d, root, extra);
	}
	int st;
	assert_int_equal(waitpid(kid, &st, 0), kid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(fl_it_wait_state(root, "steady", "ended", 120));
	/* the last drainer may still be between fork and exec: a SIGTERM there would not be its own */
	struct starts_arg sa = {d.log, d.pid};
	assert_true(fl_it_wait(started_cond, &sa, 30));
	assert_int_equal(fl_it_drainer_stop(&d), 0);

	char bin[1024], out[1100], dir[1200];
	fl_it_build_path(bin, sizeof bin, "drainer/fugue-log");
	snprintf(out, sizeof out, "%s/cat.out", fl_test_tmp());
	const char *cat[] = {bin, "--root", root, "cat", "steady", NULL};
	assert_int_equal(fl_it_run(cat, out), 0);
	assert_int_equal(numbered_lines(out), count);

	char expect[64];
	snprintf(expect, sizeof expect, "event:action=%ld", count);
	const char *args[] = {"--gapless", "--unique-ids", "--state", "ended", "--expect", expect, NULL};
	check("steady", args);

	snprintf(dir, sizeof dir, "%s/steady", root);
	DIR *dd = opendir(dir);
	assert_non_null(dd);
	struct dirent *e;
	while ((e = readdir(dd))) {
		if (!strstr(e->d_name, ".lz4"))
			continue;
		char p[1500];
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		const char *t[] = {"lz4", "-tq", p, NULL};
		int rc = fl_it_run(t, "/dev/null");
		if (rc != 0)
			fail_msg("archive %s fails lz4 -t (%d)", p, rc);
	}
	closedir(dd);
	int segs = count_segments(dir);
	print_message("%ld events, %ld drainer kills, %d archived segments\n", count, kills, segs);
	assert_true(segs > 0); /* the kills did land among rotations and compressions */
	munmap(lg, sizeof *lg);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_producer_killed_at_random, setup, teardown),
    cmocka_unit_test_setup_teardown(test_drainer_killed_at_random, setup, teardown),
};

FL_TEST_MAIN("crash", tests)
