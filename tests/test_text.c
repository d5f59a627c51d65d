/* SPDX-License-Identifier: MIT */
/* test_text.c: the human one-line rendering (fugue-log cat --output text): time, kind, escaped summary, cut. */
#define _GNU_SOURCE
#include "fl_test.h"

#include <stdlib.h>
#include <string.h>

#include "text.h"

static const uint64_t T = 1795624926491496632ull; /* 2026-11-25T16:42:06.491Z */

static void test_line_shape(void **state)
{
	(void)state;
	setenv("TZ", "UTC", 1);
	char out[512];
	size_t n = fl_text_line(out, sizeof out, T, "exit", (const uint8_t *)"status 3", 8);
	assert_string_equal(out, "Nov 25 16:42:06.491 exit       status 3\n");
	assert_int_equal(n, strlen(out));
}

static void test_bytes_escaped(void **state)
{
	(void)state;
	setenv("TZ", "UTC", 1);
	char out[512];
	static const uint8_t s[] = "a\033[1mb\r\n\t\xc3\xa9\xff\x01";
	fl_text_line(out, sizeof out, T, "transcript", s, sizeof s - 1);
	/* one terminal line whatever the bytes: escapes for controls and non-UTF-8, UTF-8 kept */
	assert_string_equal(out, "Nov 25 16:42:06.491 transcript a\\e[1mb\\r\\n\\t\xc3\xa9\\xff\\x01\n");
}

static void test_long_cut_and_small_buffer(void **state)
{
	(void)state;
	setenv("TZ", "UTC", 1);
	char big[300], out[512];
	memset(big, 'x', sizeof big);
	fl_text_line(out, sizeof out, T, "input", (const uint8_t *)big, sizeof big);
	const char *sum = out + strlen("Nov 25 16:42:06.491 input      ");
	assert_int_equal(strlen(sum), FL_TEXT_SUMMARY_MAX + 4); /* the cut summary, "...", "\n" */
	assert_memory_equal(sum + FL_TEXT_SUMMARY_MAX, "...\n", 4);
	char tiny[10];
	size_t n = fl_text_line(tiny, sizeof tiny, T, "input", (const uint8_t *)big, sizeof big);
	assert_int_equal(n, 9);
	assert_string_equal(tiny, "Nov 25 16");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_line_shape),
    cmocka_unit_test(test_bytes_escaped),
    cmocka_unit_test(test_long_cut_and_small_buffer),
};

FL_TEST_MAIN("text", tests)
