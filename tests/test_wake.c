/* SPDX-License-Identifier: MIT */
/* test_wake.c: the doorbell, the start-up handshake and exact level lines, against the real fugue-logd. */
#define _GNU_SOURCE
#include "fl_test.h"
#include <dirent.h>
#include "fl_itest.h"

#include "fuguelog.h"
#include "ring.h"

static char root[1024];

static void fresh(void)
{
	unsetenv("FUGUE_SESSION_LOG");
	fl_it_fresh_root(root, sizeof root);
}

static fl_session *open_session(const char *id, uint32_t lanes, uint64_t lane_size, uint64_t attach_ns, int *rc)
{
	fl_session *s = NULL;
	char why[256] = "";
	struct fl_session_opts o = {
	    .id = id, .level = FL_LEVEL_FULL, .lanes = lanes, .lane_size = lane_size, .attach_timeout_ns = attach_ns};
	*rc = fl_session_open(&s, &o, why, sizeof why);
	if (*rc < 0)
		fail_msg("fl_session_open(%s): %s", id, why);
	return s;
}

static void check(const char *id, const char *const *extra)
{
	const char *args[16] = {"--gapless", "--unique-ids"};
	int n = 2;
	for (int i = 0; extra[i]; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	char dir[1200];
	snprintf(dir, sizeof dir, "%s/%s", root, id);
	int rc = fl_it_check(dir, args);
	if (rc == 77)
		skip();
	assert_int_equal(rc, 0);
}

static const char *expect(char pool[][64], int *used, const char *key, long n)
{
	snprintf(pool[*used], 64, "--expect=%s=%ld", key, n);
	return pool[(*used)++];
}

/* A fresh root, a private drainer, and session id (one lane) opened and attached to it. */
static fl_session *start(struct fl_itd *d, const char *id, uint64_t lane_size)
{
	fresh();
	fl_it_drainer_start(d, root, NULL);
	int rc;
	fl_session *s = open_session(id, 1, lane_size, 30ull * 1000000000u, &rc);
	assert_int_equal(rc, 0);
	return s;
}

/* Closes s, which dropped nothing, and checks that its files hold exactly lines records and no drop. */
static void close_lossless(struct fl_itd *d, fl_session *s, const char *id, long lines)
{
	struct fl_stats st;
	fl_session_stats(s, &st);
	assert_int_equal(st.dropped, 0);
	fl_session_close(s);
	assert_true(fl_it_wait_state(root, id, "ended", 60));
	assert_int_equal(fl_it_drainer_stop(d), 0);
	char pool[4][64];
	int used = 0;
	const char *e[] = {"--state", "ended", expect(pool, &used, "producer_lines", lines),
			   expect(pool, &used, "drops", 0), NULL};
	check(id, e);
}

/* Without a drainer the bounded wait says so and the session works; with one, open returns once attached. */
static void test_attach_handshake(void **state)
{
	(void)state;
	fresh();
	int rc;
	fl_session *early = open_session("early", 1, 1u << 16, 20 * 1000000ull, &rc);
	assert_int_equal(rc, FL_OPEN_UNATTACHED);
	assert_true(fl_emit_action(early, 0, "before", "the drainer", "") > 0);
	struct fl_stats st;
	assert_int_equal(fl_session_stats(early, &st), 0);
	assert_int_equal(st.attached, 0); /* the stats say it too */

	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	fl_session *s = open_session("handshake", 1, 1u << 16, 30ull * 1000000000u, &rc);
	assert_int_equal(rc, 0); /* attached: the drainer has the ring in its table */
	assert_int_equal(fl_session_stats(s, &st), 0);
	assert_int_equal(st.attached, 1);
	/* the early ring is attached once the drainer finds it */
	for (int i = 0; i < 3000 && (fl_session_stats(early, &st), !st.attached); i++)
		fl_it_sleep_ms(10);
	assert_int_equal(st.attached, 1);
	assert_true(fl_emit_action(s, 0, "after", "attach", "") > 0);
	fl_session_close(s);
	fl_session_close(early);
	assert_true(fl_it_wait_state(root, "handshake", "ended", 60));
	assert_true(fl_it_wait_state(root, "early", "ended", 60));
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	char pool[4][64];
	int used = 0;
	const char *e1[] = {"--state", "ended", expect(pool, &used, "producer_lines", 1),
			    expect(pool, &used, "drops", 0), NULL};
	check("handshake", e1);
	check("early", e1);
}

/*
 * After an idle spell (workers asleep on the doorbell), an unpaced burst that
 * fits in the lane loses nothing: the lane was emptied while idle, and the
 * burst rings the doorbell on its way up.
 */
static void test_burst_fits_lane_after_idle(void **state)
{
	(void)state;
	struct fl_itd d;
	fl_session *s = start(&d, "burst", 1u << 18);
	assert_true(fl_emit_action(s, 0, "first", "", "") > 0);
	assert_true(fl_it_wait_lines(root, "burst", 1, 60));
	fl_it_sleep_ms(1500); /* idle: the workers go to sleep */
	enum { N = 1500 };    /* ~120 B a record: 180 KB of a 256 KiB lane */
	static const char detail[64] = "a burst record that fits";
	for (int i = 0; i < N; i++)
		assert_true(fl_emit_action(s, 0, "burst", "lane", detail) > 0);
	close_lossless(&d, s, "burst", N + 1);
}

/* A session that starts at a steady rate right after open loses nothing: the handshake, then the doorbell. */
static void test_slow_steady_start(void **state)
{
	(void)state;
	struct fl_itd d;
	fl_session *s = start(&d, "steady", 1u << 20);
	long n = fl_it_scale(20000, 4);
	for (long i = 0; i < n; i++) {
		assert_true(fl_emit_action(s, 0, "steady", "start", "at about 20k events/s") > 0);
		if (i % 20 == 19)
			fl_it_sleep_ms(1);
	}
	close_lossless(&d, s, "steady", n);
}

/*
 * Without the handshake, a session that starts at 200k events/s (about 26 MB/s, well under half what
 * the drainer writes here) straight after open loses nothing: the drainer attaches the new ring
 * and starts reading it before its 1 MiB lane fills (about 40 ms at that rate). Sanitized builds,
 * a tenth as fast, go at a tenth of the rate.
 */
static void test_steady_start_without_handshake(void **state)
{
	(void)state;
	struct fl_itd d;
	fresh();
	fl_it_drainer_start(&d, root, NULL);
	fl_it_sleep_ms(300); /* the drainer is up and idle when the session appears */
	int rc;
	fl_session *s = open_session("nohandshake", 1, 1u << 20, 0, &rc);
	assert_int_equal(rc, 0);
	long n = fl_it_scale(200000, 10), per_ms = fl_it_scale(200, 10);
	long refused = 0;
	for (long i = 0; i < n; i++) {
		refused += fl_emit_action(s, 0, "steady", "start", "at 200k events/s, no handshake") <= 0;
		if (i % per_ms == per_ms - 1)
			fl_it_sleep_ms(1);
	}
	if (refused)
		fail_msg("%ld of %ld events found the lane full before the drainer read it", refused, n);
	close_lossless(&d, s, "nohandshake", n);
}

/*
 * Each level line comes directly before the first record emitted under the
 * new level, knows old and new, and quick changes are counted: whenever the
 * drainer happens to look, the order on disk is the order of the calls.
 */
static void test_level_lines_exact(void **state)
{
	(void)state;
	struct fl_itd d;
	fl_session *s = start(&d, "levels", 1u << 16);
	assert_true(fl_emit_transcript(s, 0, 1, "at full", 7) > 0);
	assert_true(fl_it_wait_lines(root, "levels", 1, 60)); /* the drainer has read the first record */
	fl_set_level(s, FL_LEVEL_SPAWNS);
	assert_true(fl_emit_action(s, 0, "at", "spawns", "") > 0);
	fl_set_level(s, FL_LEVEL_FULL);
	fl_set_level(s, FL_LEVEL_SIGNALS); /* two quick changes */
	assert_true(fl_emit_completion(s, 0, "at", "signals", 1) > 0);
	fl_set_level(s, FL_LEVEL_PROMPTS); /* a change no record follows: its line still comes */
	fl_session_close(s);
	assert_true(fl_it_wait_state(root, "levels", "ended", 60));
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	char pool[4][64];
	int used = 0;
	const char *e[] = {"--state",
			   "ended",
			   "--level-chain",
			   "full",
			   "--sequence",
			   "transcript,level,action,level,completion,level",
			   expect(pool, &used, "level_changes", 4),
			   NULL};
	check("levels", e);
}

/*
 * session.json keeps the newest 256 level changes, oldest first, also after a
 * restart that reloads them from .levels: 300 changes, the drainer restarted,
 * one more. Every record is tagged with the level it was emitted under, so each
 * change is a line whenever the drainer looks.
 */
static void test_level_list_after_restart(void **state)
{
	(void)state;
	fresh();
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	int rc;
	fl_session *s = open_session("levlist", 1, 1u << 16, 30ull * 1000000000u, &rc);
	assert_int_equal(rc, 0);
	char shm[160], why[256];
	struct fl_ring r;
	fl_ring_name(shm, sizeof shm, NULL, "levlist");
	assert_int_equal(fl_ring_attach(&r, shm, why, sizeof why), 0);
	for (int i = 0; i < 300; i++) {
		fl_set_level(s, i % 2 ? FL_LEVEL_FULL : FL_LEVEL_PROMPTS);
		assert_true(fl_emit_action(s, 0, "level", "change", "") > 0);
		/* a tag holds 8 bits of the generation: the drainer must look within 256 changes */
		for (int k = 0; i % 16 == 15 && k < 60000; k++) {
			if (fl_load_acquire(&r.lanes[0].tail) == fl_load_acquire(&r.lanes[0].head))
				break;
			fl_it_sleep_ms(1);
		}
	}
	fl_ring_detach(&r);
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	fl_it_drainer_start(&d, root, NULL);
	fl_set_level(s, FL_LEVEL_SIGNALS);
	assert_true(fl_emit_action(s, 0, "level", "after restart", "") > 0);
	fl_session_close(s);
	assert_true(fl_it_wait_state(root, "levlist", "ended", 60));
	assert_int_equal(fl_it_drainer_stop(&d), 0);

	char path[1200];
	snprintf(path, sizeof path, "%s/levlist/session.json", root);
	size_t len;
	char *json = fl_it_read_file(path, &len);
	assert_non_null(json);
	const char *p = strstr(json, "\"levels\":[");
	assert_non_null(p);
	const char *end = strchr(p, ']');
	assert_non_null(end);
	long n = 0, prev = -1, seq;
	while ((p = strstr(p, "\"seq\":")) && p < end) {
		p += 6;
		seq = strtol(p, NULL, 10);
		if (seq <= prev)
			fail_msg("session.json levels: seq %ld after %ld (entry %ld)", seq, prev, n);
		prev = seq;
		n++;
	}
	assert_int_equal(n, 256);
	/* the newest is the change after the restart */
	const char *last = end;
	while (last > json && *last != '{')
		last--;
	char tail[256];
	snprintf(tail, sizeof tail, "%.*s", (int)(end - last), last);
	if (!strstr(tail, "\"old\":\"full\",\"new\":\"signals\""))
		fail_msg("session.json levels: the newest entry is %s", tail);
	free(json);
}

/* Context switches (voluntary and not) of pid's threads named name: each is a wake-up. */
static long switches(pid_t pid, const char *name, int *threads)
{
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
	DIR *d = opendir(dir);
	assert_non_null(d);
	long total = 0;
	*threads = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[128], comm[32] = "", line[128];
		snprintf(path, sizeof path, "%s/%s/comm", dir, e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue; /* the thread just ended */
		if (!fgets(comm, sizeof comm, f))
			comm[0] = 0;
		fclose(f);
		comm[strcspn(comm, "\n")] = 0;
		snprintf(path, sizeof path, "%s/%s/status", dir, e->d_name);
		if (strcmp(comm, name) || !(f = fopen(path, "r")))
			continue;
		while (fgets(line, sizeof line, f)) {
			long v;
			if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1 ||
			    sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1)
				total += v;
		}
		fclose(f);
		(*threads)++;
	}
	closedir(d);
	return total;
}

/* utime + stime of the whole process, in clock ticks (/proc/PID/stat fields 14 and 15). */
static long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	assert_non_null(p);
	unsigned long ut = 0, st = 0;
	assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
	return (long)(ut + st);
}

/*
 * An idle drainer sleeps on the doorbell and inotify. With three open idle
 * sessions its two workers wake a few times in 6 s (the 5 s safety timer),
 * not every 100 ms (about 120 wake-ups before); the whole process uses no
 * measurable CPU. Bounds are generous and count wake-ups and ticks, not time.
 * (The discovery thread also wakes for names other tests create in the shared
 * /dev/shm, so it is not counted.) A session close still gets through at once.
 */
static void test_idle_drainer_sleeps(void **state)
{
	(void)state;
	fresh();
	struct fl_itd d;
	const char *extra[] = {"--workers", "2", NULL};
	fl_it_drainer_start(&d, root, extra);
	fl_session *s[3];
	char id[3][16];
	for (int i = 0; i < 3; i++) {
		int rc;
		snprintf(id[i], sizeof id[i], "idle-%d", i);
		s[i] = open_session(id[i], 1, 1u << 16, 30ull * 1000000000u, &rc);
		assert_int_equal(rc, 0);
		assert_true(fl_emit_action(s[i], 0, "once", "", "") > 0);
		assert_true(fl_it_wait_lines(root, id[i], 1, 60));
	}
	fl_it_sleep_ms(3000); /* quiet for longer than the 2 s after the last line that keep the short timer */
	int workers;
	long before = switches(d.pid, "fl-worker", &workers), t0 = cpu_ticks(d.pid);
	assert_int_equal(workers, 2);
	fl_it_sleep_ms(6000);
	long woke = switches(d.pid, "fl-worker", &workers) - before, ticks = cpu_ticks(d.pid) - t0;
	print_message("2 idle workers woke %ld times in 6 s; the drainer used %ld CPU ticks\n", woke, ticks);
	assert_true(woke <= 16);
	assert_true(ticks <= 30);
	for (int i = 0; i < 3; i++)
		fl_session_close(s[i]);
	for (int i = 0; i < 3; i++)
		assert_true(fl_it_wait_state(root, id[i], "ended", 60));
	assert_int_equal(fl_it_drainer_stop(&d), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_attach_handshake),	cmocka_unit_test(test_burst_fits_lane_after_idle),
    cmocka_unit_test(test_slow_steady_start),	cmocka_unit_test(test_steady_start_without_handshake),
    cmocka_unit_test(test_level_lines_exact),	cmocka_unit_test(test_level_list_after_restart),
    cmocka_unit_test(test_idle_drainer_sleeps),
};

FL_TEST_MAIN("wake", tests)
