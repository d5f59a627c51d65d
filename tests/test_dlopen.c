/* SPDX-License-Identifier: MIT */
/*
 * test_dlopen: libfuguelog.so loaded at run time with dlopen(), as a binding's
 * FFI loader (Python's ctypes, a plugin host) loads it. Its fast path keeps a
 * pointer in initial-exec TLS, which must fit in the static TLS that glibc
 * keeps for late-loaded libraries: dlopen() fails with "cannot allocate memory
 * in static TLS block" when it does not. Threads then emit into two sessions
 * in turn, so the cached slot switches on every call, and every record is read
 * back from its thread's own lane and decoded with protobuf-c.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl_test.h"

#include "fuguelog.h"
#include "fugue_event.pb-c.h"
#include "ring.h"

enum { THREADS = 3, PER = 2000, SESSIONS = 2 };

struct api {
	int (*open)(fl_session **, const struct fl_session_opts *, char *, size_t);
	int (*close)(fl_session *);
	const char *(*id)(const fl_session *);
	int64_t (*transcript)(fl_session *, uint64_t, uint32_t, const void *, size_t);
	int (*stats)(const fl_session *, struct fl_stats *);
};

static struct api api;
static fl_session *sess[SESSIONS];

static void *sym(void *h, const char *name)
{
	void *p = dlsym(h, name);
	if (!p)
		fail_msg("dlsym %s: %s", name, dlerror());
	return p;
}

/* Each thread writes PER records into each session, alternating, with its index and count in the bytes. */
static void *emitter(void *arg)
{
	int t = (int)(intptr_t)arg;
	for (int i = 0; i < PER; i++)
		for (int k = 0; k < SESSIONS; k++) {
			char text[48];
			int n = snprintf(text, sizeof text, "t%d s%d #%d", t, k, i);
			if (api.transcript(sess[k], 0, (uint32_t)t + 1, text, (size_t)n) <= 0)
				return (void *)1;
		}
	return NULL;
}

/* Reads every record of r: per stream (thread), the counts must run 0..PER-1 in order within one lane. */
static void check_ring(struct fl_ring *r, int k)
{
	int next[THREADS] = {0}, lane_of[THREADS];
	for (int t = 0; t < THREADS; t++)
		lane_of[t] = -1;
	for (uint32_t l = 0; l < r->lane_count; l++) {
		struct fl_rec rec;
		uint64_t nt;
		char why[256];
		int n;
		while ((n = fl_lane_peek(r, l, &rec, 1, &nt, why, sizeof why)) > 0) {
			Fugue__Event *e = fugue__event__unpack(NULL, rec.len, rec.data);
			assert_non_null(e);
			assert_int_equal(e->body_case, FUGUE__EVENT__BODY_TRANSCRIPT);
			int t = (int)e->transcript->stream - 1;
			assert_true(t >= 0 && t < THREADS);
			if (lane_of[t] < 0)
				lane_of[t] = (int)l;
			assert_int_equal(lane_of[t], (int)l); /* one thread, one lane */
			char want[48];
			int wn = snprintf(want, sizeof want, "t%d s%d #%d", t, k, next[t]++);
			assert_int_equal(e->transcript->data.len, (size_t)wn);
			assert_memory_equal(e->transcript->data.data, want, (size_t)wn);
			fugue__event__free_unpacked(e, NULL);
			fl_lane_release(r, l, nt);
		}
		if (n < 0)
			fail_msg("session %d lane %u: %s", k, l, why);
	}
	for (int t = 0; t < THREADS; t++)
		assert_int_equal(next[t], PER);
}

static void test_dlopen_emit(void **state)
{
	(void)state;
	const char *path = getenv("FL_LIBFUGUELOG");
	if (!path || !*path)
		fail_msg("FL_LIBFUGUELOG (the built libfuguelog.so) is not set");
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		fail_msg("dlopen %s: %s", path, dlerror());
	api.open = (int (*)(fl_session **, const struct fl_session_opts *, char *, size_t))sym(h, "fl_session_open");
	api.close = (int (*)(fl_session *))sym(h, "fl_session_close");
	api.id = (const char *(*)(const fl_session *))sym(h, "fl_session_id");
	api.transcript =
	    (int64_t(*)(fl_session *, uint64_t, uint32_t, const void *, size_t))sym(h, "fl__emit_transcript");
	api.stats = (int (*)(const fl_session *, struct fl_stats *))sym(h, "fl_session_stats");

	struct fl_ring r[SESSIONS];
	for (int k = 0; k < SESSIONS; k++) {
		char id[32], name[160], why[256];
		snprintf(id, sizeof id, "dlopen-%d", k);
		assert_int_equal(fl_ring_name(name, sizeof name, NULL, id), 0);
		fl_ring_unlink(name); /* left by an earlier failed run */
		struct fl_session_opts o = {.id = id, .level = FL_LEVEL_FULL, .lanes = 4, .lane_size = 1 << 20};
		if (api.open(&sess[k], &o, why, sizeof why) != 0)
			fail_msg("fl_session_open: %s", why);
		if (fl_ring_attach(&r[k], name, why, sizeof why) != 0)
			fail_msg("attach %s: %s", name, why);
	}
	pthread_t th[THREADS];
	for (int t = 0; t < THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, emitter, (void *)(intptr_t)t), 0);
	for (int t = 0; t < THREADS; t++) {
		void *rc;
		assert_int_equal(pthread_join(th[t], &rc), 0);
		assert_null(rc);
	}
	for (int k = 0; k < SESSIONS; k++) {
		struct fl_stats st;
		assert_int_equal(api.stats(sess[k], &st), 0);
		assert_int_equal(st.admitted, (uint64_t)THREADS * PER);
		assert_int_equal(st.dropped, 0);
		check_ring(&r[k], k);
		char name[160];
		assert_int_equal(fl_ring_name(name, sizeof name, NULL, api.id(sess[k])), 0);
		fl_ring_detach(&r[k]);
		assert_int_equal(api.close(sess[k]), 0);
		assert_int_equal(fl_ring_unlink(name), 0);
	}
	assert_int_equal(dlclose(h), 0);
}

static int hermetic(void **state)
{
	(void)state;
	unsetenv("FUGUE_SESSION_LOG");
	setenv("HOME", fl_test_tmp(), 1);
	return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_dlopen_emit, hermetic),
};

FL_TEST_MAIN("dlopen", tests)
