/* SPDX-License-Identifier: MIT */
/* test_scale: the real fugue-logd at machine scale — thousands of sessions on few fds, mass truncation, memory, junk.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fl_test.h"

#include "fl_itest.h"
#include "fuguelog.h"
#include "ring.h"
#include "rings.h"

static char root[1024];

static int setup(void **state)
{
	(void)state;
	fl_it_fresh_root(root, sizeof root);
	/* this process holds one fd per producer ring it opens */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fl_it_shm_cleanup();
	return 0;
}

static long soft_nofile(void)
{
	struct rlimit rl;
	return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (long)rl.rlim_cur : 1024;
}

struct many {
	int n;
	const char *state;
	const char *fmt;
};

static int all_in_state(void *a)
{
	const struct many *m = a;
	for (int i = 0; i < m->n; i++) {
		char id[64];
		snprintf(id, sizeof id, m->fmt, i);
		if (!fl_it_session_state_is(root, id, m->state))
			return 0;
	}
	return 1;
}

/* utime + stime of pid in clock ticks, from /proc/<pid>/stat. */
static long cpu_ticks(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	char *b = fl_it_read_file(path, NULL);
	assert_non_null(b);
	char *p = strrchr(b, ')');
	long ut = 0, st = 0;
	for (int field = 2; p && field < 14; field++)
		p = strchr(p + 1, ' ');
	assert_non_null(p);
	assert_int_equal(sscanf(p + 1, "%ld %ld", &ut, &st), 2);
	free(b);
	return ut + st;
}

/* "Anonymous:" of /proc/<pid>/smaps_rollup in KiB: the drainer's private memory, rings excluded. */
static long anon_kib(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
	char *b = fl_it_read_file(path, NULL);
	if (!b)
		return -1;
	char *p = strstr(b, "\nAnonymous:");
	long kib = p ? strtol(p + 11, NULL, 10) : -1;
	free(b);
	return kib;
}

/*
 * n sessions of 1 lane x 4 KiB live at once against a drainer whose fd limit
 * (soft and hard) is nofile: far fewer fds than the sessions' files need. Each
 * session emits in rounds, interleaved with the others; every admitted event
 * must be on disk and every session must end `ended` (none `abandoned`).
 */
static void many_sessions(int n, long nofile)
{
	if (soft_nofile() < n + 64) {
		print_message("this process may open only %ld fds, %d sessions need more: skipped\n", soft_nofile(), n);
		skip();
	}
	struct fl_itd d;
	fl_it_drainer_start_nofile(&d, root, NULL, nofile);
	fl_session **s = calloc((size_t)n, sizeof *s);
	assert_non_null(s);
	for (int i = 0; i < n; i++) {
		char id[64], why[256] = "";
		snprintf(id, sizeof id, "many-%05d", i);
		struct fl_session_opts o = {.id = id, .level = FL_LEVEL_FULL, .lanes = 1, .lane_size = 4096};
		if (fl_session_open(&s[i], &o, why, sizeof why) < 0)
			fail_msg("fl_session_open %s: %s", id, why);
	}
	enum { ROUNDS = 20 };
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < n; i++) {
			char t[32];
			snprintf(t, sizeof t, "r%d", r);
			fl_emit_action(s[i], 0, "tick", t, "many sessions");
		}
		fl_it_sleep_ms(20); /* let the drainer take some; what it cannot take is dropped, and counted */
	}
	uint64_t *admitted = calloc((size_t)n, sizeof *admitted);
	assert_non_null(admitted);
	uint64_t total = 0;
	for (int i = 0; i < n; i++) {
		struct fl_stats st;
		assert_int_equal(fl_session_stats(s[i], &st), 0);
		admitted[i] = st.admitted;
		total += st.admitted;
		fl_session_close(s[i]);
	}
	struct many m = {n, "ended", "many-%05d"};
	int ok = fl_it_wait(all_in_state, &m, 600);
	fl_it_assert_alive(&d);
	if (!ok) {
		char *b = fl_it_read_file(d.log, NULL);
		fail_msg("not every session ended; the drainer's log:\n%.4000s", b ? b : "");
	}
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	for (int i = 0; i < n; i++) {
		char path[1200];
		snprintf(path, sizeof path, "%s/many-%05d/user.jsonl", root, i);
		int got = fl_it_count_in(path, "\"event\":\"action\"");
		if ((uint64_t)got != admitted[i])
			fail_msg("session many-%05d: %d action lines on disk, %llu admitted", i, got,
				 (unsigned long long)admitted[i]);
		snprintf(path, sizeof path, "%s/many-%05d/system.jsonl", root, i);
		assert_int_equal(fl_it_count_in(path, "\"abandoned\":true"), 0);
	}
	/* resource trouble is one line per condition, never one per session or attempt */
	int emfile = fl_it_count_in(d.log, "Too many open files");
	print_message("%d sessions, drainer fd limit %ld: %llu admitted events all on disk, %d EMFILE log lines\n", n,
		      nofile, (unsigned long long)total, emfile);
	assert_true(emfile <= 8);
	assert_int_equal(fl_it_count_in(d.log, "abandoned"), 0);
	free(admitted);
	free(s);
}

static void test_2000_sessions_1024_fds(void **state)
{
	(void)state;
	many_sessions((int)fl_it_scale(2000, 4), 1024);
}

static void test_64_sessions_40_fds(void **state)
{
	(void)state;
	many_sessions(64, 40);
}

/*
 * n rings attached by a running drainer, then truncated to nothing by their
 * producer: each one is a SIGBUS in the drainer, which must live, report each
 * ring, and keep draining a healthy session throughout.
 */
static void test_truncate_10000_rings(void **state)
{
	(void)state;
	int n = (int)fl_it_scale(10000, 10);
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	for (int i = 0; i < n; i++) {
		char id[64], name[256];
		snprintf(id, sizeof id, "trunc-%05d", i);
		assert_int_equal(fl_ring_name(name, sizeof name, NULL, id), 0);
		struct fl_ring r;
		struct fl_ring_params p = {.id = id, .lane_count = 1, .lane_size = 4096, .level = FL_LEVEL_FULL};
		assert_int_equal(fl_ring_create(&r, name, &p), 0);
		fl_ring_detach(&r);
	}
	/* attached: every one has its directory and manifest (the drainer opens files on the first step) */
	struct many m = {n, "live", "trunc-%05d"};
	assert_true(fl_it_wait(all_in_state, &m, 600));

	fl_session *good;
	char why[256] = "";
	struct fl_session_opts o = {
	    .id = "healthy", .level = FL_LEVEL_FULL, .lanes = 1, .lane_size = 1 << 16, .full_policy = FL_FULL_BLOCK};
	assert_int_equal(fl_session_open(&good, &o, why, sizeof why), 0);
	int emitted = 0;
	for (int i = 0; i < n; i++) {
		char id[64], name[256];
		snprintf(id, sizeof id, "trunc-%05d", i);
		assert_int_equal(fl_ring_name(name, sizeof name, NULL, id), 0);
		int fd = shm_open(name, O_RDWR, 0);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, 0), 0); /* header and lanes gone: the next read of any of it faults */
		close(fd);
		if (i % 10 == 0) {
			assert_true(fl_emit_action(good, 0, "still", "draining", "x") > 0);
			emitted++;
		}
	}
	fl_session_close(good);
	assert_true(fl_it_wait_state(root, "healthy", "ended", 300));
	struct many a = {n, "abandoned", "trunc-%05d"};
	int ok = fl_it_wait(all_in_state, &a, 600);
	fl_it_assert_alive(&d);
	assert_true(ok);
	assert_int_equal(fl_it_drainer_stop(&d), 0);

	char path[1200];
	snprintf(path, sizeof path, "%s/healthy/user.jsonl", root);
	assert_int_equal(fl_it_count_in(path, "\"event\":\"action\""), emitted);
	for (int i = 0; i < n; i += 97) {
		snprintf(path, sizeof path, "%s/trunc-%05d/system.jsonl", root, i);
		assert_int_equal(fl_it_count_in(path, "truncated its shm object"), 1);
	}
	int reported = fl_it_count_in(d.log, "was truncated by its producer");
	print_message("%d rings truncated under the drainer: %d reported, healthy session drained %d events\n", n,
		      reported, emitted);
	assert_int_equal(reported, n);
}

struct big {
	fl_session *s;
	size_t len;
	const char *bytes;
};

static void *big_emit(void *a)
{
	struct big *b = a;
	/* each thread is its own lane: every lane holds a big record at once */
	assert_true(fl_emit_transcript(b->s, 0, 1, b->bytes, b->len) > 0);
	return NULL;
}

/*
 * Sessions of 8 lanes x 64 MiB carrying ~16 MiB records grow the drainer's
 * decode buffers by hundreds of MB; once they have ended, its private memory
 * must come back to within 2x of what it was idle (plus a little slack).
 */
static void test_memory_returns_after_big_sessions(void **state)
{
	(void)state;
	int sessions = (int)fl_it_scale(8, 4);
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	fl_session *warm;
	char why[256] = "";
	struct fl_session_opts wo = {.id = "warm", .level = FL_LEVEL_FULL, .lanes = 1, .lane_size = 4096};
	assert_int_equal(fl_session_open(&warm, &wo, why, sizeof why), 0);
	assert_true(fl_emit_action(warm, 0, "warm", "up", "x") > 0);
	fl_session_close(warm);
	assert_true(fl_it_wait_state(root, "warm", "ended", 60));
	fl_it_sleep_ms(500);
	long idle = anon_kib(d.pid);
	if (idle < 0) {
		fl_it_drainer_stop(&d);
		skip(); /* no smaps_rollup on this kernel */
	}

	size_t len = (64u << 20) / 4 - 64; /* near the lane's largest record (a quarter of it) */
	char *bytes = malloc(len);
	assert_non_null(bytes);
	memset(bytes, 'b', len);
	long peak = 0;
	for (int k = 0; k < sessions; k++) {
		char id[32];
		snprintf(id, sizeof id, "big-%d", k);
		fl_session *s;
		struct fl_session_opts o = {
		    .id = id, .level = FL_LEVEL_FULL, .lanes = 8, .lane_size = 64u << 20, .full_policy = FL_FULL_BLOCK};
		assert_int_equal(fl_session_open(&s, &o, why, sizeof why), 0);
		pthread_t t[8];
		struct big b = {s, len, bytes};
		for (int i = 0; i < 8; i++)
			assert_int_equal(pthread_create(&t[i], NULL, big_emit, &b), 0);
		for (int i = 0; i < 8; i++)
			pthread_join(t[i], NULL);
		fl_session_close(s);
		/* the high-water mark while it drains: what the old drainer kept for good */
		double end = fl_it_now() + 300;
		while (!fl_it_session_state_is(root, id, "ended") && fl_it_now() < end) {
			long now = anon_kib(d.pid);
			if (now > peak)
				peak = now;
			fl_it_sleep_ms(2);
		}
		assert_true(fl_it_session_state_is(root, id, "ended"));
	}
	free(bytes);
	fl_it_sleep_ms(1000); /* the workers go idle and trim */
	long after = anon_kib(d.pid);
	fl_it_assert_alive(&d);
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	print_message("drainer private memory: idle %ld KiB, highest while draining %ld KiB, after all ended %ld KiB\n",
		      idle, peak, after);
	/* a sanitizer's allocator keeps freed memory in quarantine: there the figure is printed, not judged */
	if (!fl_it_sanitized())
		assert_true(after <= 2 * idle + 4096);
}

/* Thousands of junk names under the prefix: reported, then they cost the idle drainer (almost) no CPU. */
static void test_junk_names_idle_cpu(void **state)
{
	(void)state;
	enum { N = 5000 };
	for (int i = 0; i < N; i++) {
		char path[512];
		/* half are not session ids at all, half are valid ids holding garbage */
		snprintf(path, sizeof path, FL_SHM_DIR "/%s%s%d", fl_ring_prefix(), i % 2 ? "junk " : "junk-", i);
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "not a ring", 10), 10);
		close(fd);
	}
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	/* every garbage ring is reported once it is older than a ring being created could be */
	double end = fl_it_now() + 60;
	while (fl_it_count_in(d.log, "ignoring shm object") < N && fl_it_now() < end)
		fl_it_sleep_ms(100);
	assert_int_equal(fl_it_count_in(d.log, "ignoring shm object"), N);
	fl_it_sleep_ms(500);
	long t0 = cpu_ticks(d.pid);
	fl_it_sleep_ms(3000);
	long used = cpu_ticks(d.pid) - t0;
	fl_it_assert_alive(&d);
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	assert_int_equal(fl_it_count_in(d.log, "ignoring shm object"), N); /* once each, not once per rescan */
	long hz = sysconf(_SC_CLK_TCK);
	print_message("idle drainer with %d junk names: %ld CPU ticks (1/%ld s) in 3 s\n", N, used, hz);
	/* a generous bound, not a timing: the linear list and 50 ms rescans cost a third of a core (~100 ticks);
	   a sanitizer's instrumentation multiplies every rescan's cost, so there the figure is printed, not judged */
	if (!fl_it_sanitized())
		assert_true(used <= hz * 3 / 10);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_2000_sessions_1024_fds, setup, teardown),
    cmocka_unit_test_setup_teardown(test_64_sessions_40_fds, setup, teardown),
    cmocka_unit_test_setup_teardown(test_truncate_10000_rings, setup, teardown),
    cmocka_unit_test_setup_teardown(test_memory_returns_after_big_sessions, setup, teardown),
    cmocka_unit_test_setup_teardown(test_junk_names_idle_cpu, setup, teardown),
};

FL_TEST_MAIN("scale", tests)
