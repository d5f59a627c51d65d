/* SPDX-License-Identifier: MIT */
/* test_ring: the shared-memory ring alone — layout, publish/consume, wrap, full lanes, validation. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fl_test.h"

#include "ring.h"

static char name[128];

static int setup(void **state)
{
	static struct fl_ring r;
	snprintf(name, sizeof name, "/flt-ring-%d", (int)getpid());
	fl_ring_unlink(name);
	struct fl_ring_params p = {.id = "ringtest", .lane_count = 2, .lane_size = 4096, .level = 2};
	assert_int_equal(fl_ring_create(&r, name, &p), 0);
	*state = &r;
	return 0;
}

static int teardown(void **state)
{
	fl_ring_detach(*state);
	fl_ring_unlink(name);
	return 0;
}

static void publish(struct fl_ring *r, uint32_t lane, const void *data, uint32_t len)
{
	struct fl_reservation res = {0};
	assert_int_equal(fl_lane_reserve(r, lane, len, &res), 0);
	memcpy(res.payload, data, len);
	fl_lane_commit(r, &res);
}

static void test_publish_consume(void **state)
{
	struct fl_ring *r = *state;
	publish(r, 0, "hello", 5);
	publish(r, 1, "world!", 6);
	struct fl_rec recs[8];
	uint64_t nt;
	char why[256];
	assert_int_equal(fl_lane_peek(r, 0, recs, 8, &nt, why, sizeof why), 1);
	assert_int_equal(recs[0].len, 5);
	assert_memory_equal(recs[0].data, "hello", 5);
	assert_int_equal(recs[0].seq, 0);
	fl_lane_release(r, 0, nt);
	assert_int_equal(fl_lane_peek(r, 0, recs, 8, &nt, why, sizeof why), 0);
	assert_int_equal(fl_lane_peek(r, 1, recs, 8, &nt, why, sizeof why), 1);
	assert_memory_equal(recs[0].data, "world!", 6);
}

static void test_attach_sees_same(void **state)
{
	struct fl_ring *r = *state;
	struct fl_ring b;
	char why[256];
	assert_int_equal(fl_ring_attach(&b, name, why, sizeof why), 0);
	assert_string_equal(b.hdr->id, "ringtest");
	fl_ring_level_set(&b, 4);
	assert_int_equal(FL_LEVEL_VALUE(fl_ring_level_word(r)), 4);
	assert_int_equal(FL_LEVEL_GEN(fl_ring_level_word(r)), 1);
	fl_ring_detach(&b);
}

static void test_bad_magic_refused(void **state)
{
	(void)state;
	_Alignas(64) static uint64_t img[1024];
	struct fl_ring r;
	char why[256] = "";
	assert_int_equal(fl_ring_validate(&r, img, sizeof img, why, sizeof why), -EBADF);
	assert_non_null(strstr(why, "magic"));
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test_setup_teardown(test_publish_consume, setup, teardown),
	cmocka_unit_test_setup_teardown(test_attach_sees_same, setup, teardown),
	cmocka_unit_test(test_bad_magic_refused),
};

FL_TEST_MAIN("ring", tests)
