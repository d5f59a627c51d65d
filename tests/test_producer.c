/* SPDX-License-Identifier: MIT */
/* test_producer: libfuguelog sessions, levels and typed emits, decoded back with protobuf-c. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fl_test.h"

#include "fuguelog.h"
#include "fugue_event.pb-c.h"
#include "ring.h"

static void test_roundtrip_action(void **state)
{
	(void)state;
	fl_session *s;
	char why[256] = "";
	struct fl_session_opts o = {.id = "rt-action", .level = FL_LEVEL_FULL};
	assert_int_equal(fl_session_open(&s, &o, why, sizeof why), 0);
	int64_t id = fl_emit_action(s, 7, "kill", "child-3", "by user");
	assert_true(id > 0);
	char name[160];
	fl_ring_name(name, sizeof name, NULL, "rt-action");
	struct fl_ring r;
	assert_int_equal(fl_ring_attach(&r, name, why, sizeof why), 0);
	struct fl_rec rec[4];
	uint64_t nt = 0;
	int n = 0;
	for (uint32_t l = 0; l < r.lane_count && n == 0; l++)
		n = fl_lane_peek(&r, l, rec, 4, &nt, why, sizeof why);
	assert_int_equal(n, 1);
	Fugue__Event *e = fugue__event__unpack(NULL, rec[0].len, rec[0].data);
	assert_non_null(e);
	assert_int_equal(e->body_case, FUGUE__EVENT__BODY_ACTION);
	assert_string_equal(e->action->action, "kill");
	assert_string_equal(e->action->target, "child-3");
	assert_string_equal(e->action->detail, "by user");
	assert_int_equal(e->ref, 7);
	assert_int_equal(e->id, (uint64_t)id);
	assert_int_equal(e->pid, getpid());
	fugue__event__free_unpacked(e, NULL);
	fl_ring_detach(&r);
	fl_session_close(s);
	fl_ring_unlink(name);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_roundtrip_action),
};

FL_TEST_MAIN("producer", tests)
