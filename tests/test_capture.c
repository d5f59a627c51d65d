/* SPDX-License-Identifier: MIT */
/* test_capture: zero-copy capture records through a real fugue-logd come back byte for byte in the JSON lines. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fl_test.h"
#include "fl_itest.h"

#include "fuguelog.h"

static char root[1024];

/* Transcript and input captured in place, every length 1..1500 and bytes that are not UTF-8, end to end. */
static void test_capture_end_to_end(void **state)
{
	(void)state;
	unsetenv("FUGUE_SESSION_LOG");
	fl_it_fresh_root(root, sizeof root);
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	fl_session *s = NULL;
	char why[512] = "";
	struct fl_session_opts o = {.id = "cap-e2e", .level = FL_LEVEL_FULL, .full_policy = FL_FULL_BLOCK};
	if (fl_session_open(&s, &o, why, sizeof why) != 0)
		fail_msg("fl_session_open: %s", why);
	char want_out[1200], want_in[1200];
	snprintf(want_out, sizeof want_out, "%s/want.out", fl_test_tmp());
	snprintf(want_in, sizeof want_in, "%s/want.in", fl_test_tmp());
	FILE *fo = fopen(want_out, "wb"), *fi = fopen(want_in, "wb");
	assert_non_null(fo);
	assert_non_null(fi);
	long n_out = 0, n_in = 0;
	for (unsigned i = 1; i <= 1500; i++) {
		struct fl_capture c;
		int input = i % 4 == 0;
		int64_t id = input ? fl_capture_input(s, 0, 2048, &c) : fl_capture_transcript(s, 0, 1, 2048, &c);
		assert_true(id > 0);
		uint8_t *p = c.data;
		for (unsigned k = 0; k < i; k++)
			p[k] = (uint8_t)(k % 7 == 3 ? 0xff : 'a' + (i + k) % 26); /* 0xff: never UTF-8 */
		if (i % 3 == 0)
			p[0] = 'x'; /* some records valid UTF-8 only when short: both encodings on disk */
		fwrite(p, 1, i, input ? fi : fo);
		assert_int_equal(fl_capture_commit(s, &c, i), id);
		input ? n_in++ : n_out++;
	}
	fclose(fo);
	fclose(fi);
	assert_int_equal(fl_session_close(s), 0);
	assert_true(fl_it_wait_state(root, "cap-e2e", "ended", 60));
	assert_int_equal(fl_it_drainer_stop(&d), 0);

	char script[1200], dir[1100];
	fl_it_source_path(script, sizeof script, "tests/capture_bytes.py");
	snprintf(dir, sizeof dir, "%s/cap-e2e", root);
	char cnt_out[32], cnt_in[32];
	snprintf(cnt_out, sizeof cnt_out, "%ld", n_out);
	snprintf(cnt_in, sizeof cnt_in, "%ld", n_in);
	const char *argv[] = {"python3", script, dir, want_out, want_in, cnt_out, cnt_in, NULL};
	assert_int_equal(fl_it_run(argv, NULL), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_capture_end_to_end),
};

FL_TEST_MAIN("capture", tests)
