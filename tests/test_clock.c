/* SPDX-License-Identifier: MIT */
/* test_clock.c: TSC timestamps — conversion math, clock choice, a real fugue-logd's lines against CLOCK_REALTIME. */
#define _GNU_SOURCE
#include "fl_test.h"
#include "fl_itest.h"

#include <pthread.h>

#include "clock.h"
#include "fuguelog.h"
#include "ring.h"

static int64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ticks * m >> 32 by halves, exact while m < 2^32 and (ticks >> 32) * m fits: a second way to the same number. */
static uint64_t scale_ref(uint64_t ticks, uint64_t m)
{
	return (ticks >> 32) * m + ((ticks & 0xffffffffu) * m >> 32);
}

/* ---- the math ------------------------------------------------------------------------------ */

static void test_scale_math(void **state)
{
	(void)state;
	assert_int_equal(fl_clock_scale(0, 123456789, 32), 0);
	assert_int_equal(fl_clock_scale(1ull << 40, 3ull << 31, 32), (1ull << 40) + (1ull << 39)); /* x1.5 */
	assert_int_equal(fl_clock_scale(UINT64_MAX, 1ull << 32, 32), UINT64_MAX);		   /* x1 */
	assert_int_equal(fl_clock_scale(UINT64_MAX, UINT64_MAX, 32), UINT64_MAX);		   /* saturates */
	assert_int_equal(fl_clock_scale(UINT64_MAX, 1ull << 31, 32), UINT64_MAX >> 1);

	/* 2.596 GHz: a second of ticks is a second of ns, to the ns */
	uint64_t m = fl_clock_mult(1000000000, 2596000000ull, 32);
	assert_true(m > 0 && m < (1ull << 32));
	uint64_t s = fl_clock_scale(2596000000ull, m, 32);
	assert_true(s >= 999999999 && s <= 1000000000);
	/* products far beyond 64 bits (a year of ticks times m) agree with the split computation */
	uint64_t x = 1;
	for (int i = 0; i < 2000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t t = x >> (i % 24);  /* up to 2^64 ticks */
		uint64_t mm = (x >> 33) | 1; /* < 2^31 */
		if ((t >> 32) > UINT64_MAX / mm)
			continue;
		assert_int_equal(fl_clock_scale(t, mm, 32), scale_ref(t, mm));
	}
	/* mult: 1 ns per tick is 2^32; a rate that overflows or no ticks gives 0 */
	assert_int_equal(fl_clock_mult(1000, 1000, 32), 1ull << 32);
	assert_int_equal(fl_clock_mult(1000, 0, 32), 0);
	assert_int_equal(fl_clock_mult(UINT64_MAX, 1, 32), 0);
}

static void test_from_anchor(void **state)
{
	(void)state;
	uint64_t one = 1ull << 32; /* 1 ns per tick */
	assert_int_equal(fl_clock_from_anchor(1500, 1000, 7000, one, 32), 7500);
	assert_int_equal(fl_clock_from_anchor(500, 1000, 7000, one, 32), 6500);
	assert_int_equal(fl_clock_from_anchor(1000, 1000, 7000, one, 32), 7000);
	/* 0.5 ns per tick, backwards past zero */
	assert_int_equal(fl_clock_from_anchor(0, 40000, 1000, one / 2, 32), -19000);
	/* saturation both ways, no signed overflow (UBSan watches) */
	assert_true(fl_clock_from_anchor(UINT64_MAX, 0, INT64_MAX - 5, one, 32) == INT64_MAX);
	assert_true(fl_clock_from_anchor(0, UINT64_MAX, INT64_MIN + 5, one, 32) == INT64_MIN);
	assert_true(fl_clock_from_anchor(0, UINT64_MAX, 0, UINT64_MAX, 32) == INT64_MIN);
	/* a real-sized case: 2.5e18 ns since the epoch, an hour of 3 GHz ticks later */
	uint64_t m3 = fl_clock_mult(1000000000, 3000000000ull, FL_CLOCK_SHIFT);
	int64_t rt = fl_clock_from_anchor(5000000000000ull + 3600ull * 3000000000ull, 5000000000000ull,
					  2500000000000000000ll, m3, FL_CLOCK_SHIFT);
	assert_true(rt >= 2500000000000000000ll + 3600000000000ll - 1 && rt <= 2500000000000000000ll + 3600000000000ll);
}

/* ---- the drainer's converter on this machine ------------------------------------------------- */

static void need_tsc(void)
{
	if (!fl_tsc_usable()) {
		print_message("skipped: no constant_tsc + nonstop_tsc here\n");
		exit(77);
	}
}

static void test_convert(void **state)
{
	(void)state;
	need_tsc();
	struct fl_ring_hdr h = {.clock = FL_RING_CLOCK_TSC};
	/* the producer's anchor, deliberately one second "wrong", so its use shows */
	h.anchor_tsc = fl_rdtsc();
	h.anchor_realtime_ns = realtime_ns() + 1000000000;
	h.start_realtime_ns = h.anchor_realtime_ns - 1000;
	struct fl_clock_sess cs;
	fl_clock_sess_init(&cs, &h);
	assert_true(cs.have_anchor);
	struct fl_clock_cal cal = {0};
	char why[256] = "";
	assert_int_equal(fl_clock_check(&cal, &cs, why, sizeof why), 0);
	assert_int_equal(cal.state, 1);
	double hz = (double)(1ull << FL_CLOCK_SHIFT) * 1e9 / (double)cal.mult;
	print_message("measured TSC %.6f GHz after %llu anchors\n", hz / 1e9, (unsigned long long)cal.refreshes);

	/* near the session's anchor: converted from it (a second ahead of the truth, as planted) */
	uint64_t v = fl_clock_convert(&cal, &cs, 0, h.anchor_tsc + 1000);
	assert_true((int64_t)v - h.anchor_realtime_ns >= 0 && (int64_t)v - h.anchor_realtime_ns < 100000);

	/* now: newer than every anchor, so the converter re-anchors and lands on CLOCK_REALTIME */
	for (int i = 0; i < 200; i++) {
		int64_t before = realtime_ns();
		uint64_t t = fl_rdtsc();
		int64_t after = realtime_ns();
		uint64_t c = fl_clock_convert(&cal, &cs, 1, t);
		assert_true((int64_t)c >= before - 20000 && (int64_t)c <= after + 20000);
		struct timespec d = {0, 50000};
		nanosleep(&d, NULL);
	}
	/* a lane never goes back, even fed an older tick */
	uint64_t a = fl_clock_convert(&cal, &cs, 2, fl_rdtsc());
	uint64_t b = fl_clock_convert(&cal, &cs, 2, fl_rdtsc() - 1000000);
	assert_true(b >= a);
	/* lanes are independent */
	uint64_t c = fl_clock_convert(&cal, &cs, 3, fl_rdtsc() - 1000000);
	assert_true(c < a);

	/* an anchor that disagrees with the ring's start time is not believed */
	h.start_realtime_ns = h.anchor_realtime_ns - 5000000000ll;
	fl_clock_sess_init(&cs, &h);
	assert_false(cs.have_anchor);
	int64_t before = realtime_ns();
	v = fl_clock_convert(&cal, &cs, 0, fl_rdtsc());
	assert_true((int64_t)v >= before - 20000 && (int64_t)v < realtime_ns() + 20000);
}

static void test_unknown_clock(void **state)
{
	(void)state;
	struct fl_ring_hdr h = {.clock = 7};
	struct fl_clock_sess cs;
	fl_clock_sess_init(&cs, &h);
	struct fl_clock_cal cal = {0};
	char why[256] = "";
	assert_int_equal(fl_clock_check(&cal, &cs, why, sizeof why), -EPROTO);
	assert_non_null(strstr(why, "ring clock 7 is unknown"));
	/* REALTIME rings pass through untouched */
	h.clock = FL_RING_CLOCK_REALTIME;
	fl_clock_sess_init(&cs, &h);
	assert_int_equal(fl_clock_check(&cal, &cs, why, sizeof why), 0);
	assert_int_equal(fl_clock_convert(&cal, &cs, 0, 123456789), 123456789);
}

/* ---- which clock a session gets ---------------------------------------------------------------- */

static int open_clock(const char *id, int opt, const char *env, char *why, size_t whylen, int *clock)
{
	if (env)
		setenv("FUGUE_CLOCK", env, 1);
	else
		unsetenv("FUGUE_CLOCK");
	fl_session *s = NULL;
	struct fl_session_opts o = {.id = id, .level = FL_LEVEL_FULL, .clock = opt};
	int rc = fl_session_open(&s, &o, why, whylen);
	unsetenv("FUGUE_CLOCK");
	if (rc < 0)
		return rc;
	struct fl_stats st;
	fl_session_stats(s, &st);
	*clock = st.clock;
	char name[256];
	fl_ring_name(name, sizeof name, NULL, id);
	fl_session_close(s);
	fl_ring_unlink(name);
	return 0;
}

static void test_clock_choice(void **state)
{
	(void)state;
	fl_it_shm_cleanup();
	char why[256];
	int c = -1;
	int tsc = fl_tsc_usable() ? FL_CLOCK_TSC : FL_CLOCK_REALTIME;
	assert_int_equal(open_clock("c1", FL_CLOCK_AUTO, NULL, why, sizeof why, &c), 0);
	assert_int_equal(c, tsc);
	assert_int_equal(open_clock("c2", FL_CLOCK_REALTIME, NULL, why, sizeof why, &c), 0);
	assert_int_equal(c, FL_CLOCK_REALTIME);
	assert_int_equal(open_clock("c3", FL_CLOCK_TSC, NULL, why, sizeof why, &c), 0);
	assert_int_equal(c, tsc);
	/* the environment wins over the option */
	assert_int_equal(open_clock("c4", FL_CLOCK_TSC, "realtime", why, sizeof why, &c), 0);
	assert_int_equal(c, FL_CLOCK_REALTIME);
	assert_int_equal(open_clock("c5", FL_CLOCK_REALTIME, "tsc", why, sizeof why, &c), 0);
	assert_int_equal(c, tsc);
	why[0] = 0;
	assert_int_equal(open_clock("c6", 0, "hpet", why, sizeof why, &c), -EINVAL);
	assert_non_null(strstr(why, "FUGUE_CLOCK=hpet"));
	assert_int_equal(open_clock("c7", 9, NULL, why, sizeof why, &c), -EINVAL);
	assert_int_equal(fl_it_shm_cleanup(), 0);
}

/* ---- end to end: a real fugue-logd, TSC ring, lines against CLOCK_REALTIME ------------------------- */

#define PER_THREAD 3000

struct stamp {
	int64_t id, before, after;
};

struct emitter {
	fl_session *s;
	struct stamp st[PER_THREAD];
	int bad;
};

static void *emit_thread(void *a)
{
	struct emitter *e = a;
	for (int i = 0; i < PER_THREAD; i++) {
		e->st[i].before = realtime_ns();
		e->st[i].id = fl_emit_transcript(e->s, 0, 1, "tick tock", 9);
		e->st[i].after = realtime_ns();
		if (e->st[i].id <= 0)
			e->bad++;
		if (i % 100 == 99)
			fl_it_sleep_ms(1); /* spread over time: the drainer re-anchors as it goes */
	}
	return NULL;
}

static int64_t num_after(const char *line, const char *key)
{
	const char *p = strstr(line, key);
	return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static void test_drained_tsc_lines(void **state)
{
	(void)state;
	need_tsc();
	unsetenv("FUGUE_CLOCK");
	unsetenv("FUGUE_SESSION_LOG");
	fl_it_shm_cleanup();
	char root[1024];
	snprintf(root, sizeof root, "%s/root", fl_test_tmp());
	fl_it_rmtree(root);
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);

	fl_session *s = NULL;
	char why[256] = "";
	struct fl_session_opts o = {
	    .id = "tsc", .level = FL_LEVEL_FULL, .clock = FL_CLOCK_TSC, .full_policy = FL_FULL_BLOCK};
	assert_int_equal(fl_session_open(&s, &o, why, sizeof why), 0);
	struct fl_stats st;
	fl_session_stats(s, &st);
	assert_int_equal(st.clock, FL_CLOCK_TSC);
	static struct emitter em[2];
	pthread_t t[2];
	for (int i = 0; i < 2; i++) {
		memset(&em[i], 0, sizeof em[i]);
		em[i].s = s;
		assert_int_equal(pthread_create(&t[i], NULL, emit_thread, &em[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(em[i].bad, 0);
	}
	fl_session_close(s);
	assert_true(fl_it_wait_state(root, "tsc", "ended", 60));
	assert_int_equal(fl_it_drainer_stop(&d), 0);

	/* every line: its ts within 1 ms of the CLOCK_REALTIME bracket of its emit */
	enum { N = 2 * PER_THREAD };
	static struct stamp *by_id[64][PER_THREAD + 1];
	memset(by_id, 0, sizeof by_id);
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < PER_THREAD; k++) {
			int64_t id = em[i].st[k].id;
			uint64_t lane = (uint64_t)id & 63, seq = ((uint64_t)id >> 6) - 1;
			assert_true(seq < PER_THREAD);
			by_id[lane][seq] = &em[i].st[k];
		}
	char path[1200];
	snprintf(path, sizeof path, "%s/tsc/system.jsonl", root);
	char *b = fl_it_read_file(path, NULL);
	assert_non_null(b);
	int64_t last[64];
	int64_t worst = 0;
	for (int l = 0; l < 64; l++)
		last[l] = INT64_MIN;
	int lines = 0;
	for (char *line = b, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = 0;
		assert_non_null(strstr(line, "\"event\":\"transcript\""));
		int64_t ts = num_after(line, "\"ts_ns\":\""), id = num_after(line, ",\"id\":\"");
		assert_true(ts > 0 && id > 0);
		uint64_t lane = (uint64_t)id & 63, seq = ((uint64_t)id >> 6) - 1;
		assert_true(seq < PER_THREAD);
		struct stamp *sp = by_id[lane][seq];
		assert_non_null(sp);
		if (ts < sp->before - 1000000 || ts > sp->after + 1000000)
			fail_msg("id %lld: ts %lld outside [%lld, %lld] +- 1 ms", (long long)id, (long long)ts,
				 (long long)sp->before, (long long)sp->after);
		int64_t off = ts < sp->before ? sp->before - ts : ts > sp->after ? ts - sp->after : 0;
		worst = off > worst ? off : worst;
		/* a lane's lines are in its seq order (one thread each) with non-decreasing times */
		assert_true(ts >= last[lane]);
		last[lane] = ts;
		lines++;
	}
	assert_int_equal(lines, N);
	print_message("%d lines; worst distance outside the emit bracket %lld ns\n", lines, (long long)worst);
	free(b);
	assert_int_equal(fl_it_shm_cleanup(), 0);
}

/* A ring whose clock fugue-logd does not know: its lanes are quarantined with the reason, nothing is printed as a time.
 */
static void test_drainer_refuses_unknown_clock(void **state)
{
	(void)state;
	unsetenv("FUGUE_SESSION_LOG");
	fl_it_shm_cleanup();
	char root[1024];
	snprintf(root, sizeof root, "%s/root", fl_test_tmp());
	fl_it_rmtree(root);

	fl_session *s = NULL;
	char why[256] = "";
	struct fl_session_opts o = {.id = "odd", .level = FL_LEVEL_FULL, .lanes = 2};
	assert_int_equal(fl_session_open(&s, &o, why, sizeof why), 0);
	assert_true(fl_emit_transcript(s, 0, 1, "never shown", 11) > 0);
	char name[256];
	fl_ring_name(name, sizeof name, NULL, "odd");
	struct fl_ring r;
	assert_int_equal(fl_ring_attach(&r, name, why, sizeof why), 0);
	r.hdr->clock = 7; /* before any drainer has seen it */
	fl_ring_detach(&r);
	fl_session_close(s);

	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	assert_true(fl_it_wait_state(root, "odd", "ended", 60));
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	char path[1200];
	snprintf(path, sizeof path, "%s/odd/system.jsonl", root);
	char *b = fl_it_read_file(path, NULL);
	assert_non_null(b);
	assert_null(strstr(b, "\"transcript\""));
	int n = 0;
	for (const char *p = b; (p = strstr(p, "quarantined: ring clock 7 is unknown")); p++)
		n++;
	assert_int_equal(n, 2); /* one per lane */
	free(b);
	assert_int_equal(fl_it_shm_cleanup(), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_scale_math),
    cmocka_unit_test(test_from_anchor),
    cmocka_unit_test(test_convert),
    cmocka_unit_test(test_unknown_clock),
    cmocka_unit_test(test_clock_choice),
    cmocka_unit_test(test_drained_tsc_lines),
    cmocka_unit_test(test_drainer_refuses_unknown_clock),
};

FL_TEST_MAIN("clock", tests)
