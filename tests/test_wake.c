/* SPDX-License-Identifier: MIT */
/* test_wake.c: the doorbell, the start-up handshake and exact level lines, against the real fugue-logd. */
#define _GNU_SOURCE
#include "fl_test.h"
#include "fl_itest.h"

#include "fuguelog.h"

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

	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	fl_session *s = open_session("handshake", 1, 1u << 16, 30ull * 1000000000u, &rc);
	assert_int_equal(rc, 0); /* attached: the drainer has the ring in its table */
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

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_attach_handshake),
    cmocka_unit_test(test_burst_fits_lane_after_idle),
    cmocka_unit_test(test_slow_steady_start),
    cmocka_unit_test(test_level_lines_exact),
};

FL_TEST_MAIN("wake", tests)
