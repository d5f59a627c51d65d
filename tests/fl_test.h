/* SPDX-License-Identifier: MIT */
/* fl_test.h: what every cmocka test executable shares — includes and a main that takes a case filter. */
#ifndef FL_TEST_H
#define FL_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* The test's own scratch directory ($FL_TEST_TMP, set per ctest test), created on first use. */
static inline const char *fl_test_tmp(void)
{
	static char dir[1024];
	if (!dir[0]) {
		const char *t = getenv("FL_TEST_TMP");
		snprintf(dir, sizeof dir, "%s", t && *t ? t : "/tmp/fuguelog-test");
		for (char *p = dir + 1; *p; p++)
			if (*p == '/') {
				*p = 0;
				mkdir(dir, 0700);
				*p = '/';
			}
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			fail_msg("cannot create scratch dir %s: %s", dir, strerror(errno));
	}
	return dir;
}

/*
 * FL_TEST_MAIN("group", tests): runs every case, or only those matching argv[1]
 * (a cmocka pattern), which is how tests/CMakeLists.txt registers each case as
 * its own ctest test. A filter that matches nothing fails, so a typo in the
 * CMake list cannot pass silently.
 */
#define FL_TEST_MAIN(group, tests)                                                                                     \
	int main(int argc, char **argv)                                                                                \
	{                                                                                                              \
		if (argc > 1) {                                                                                        \
			int found_ = 0;                                                                                \
			for (size_t i_ = 0; i_ < sizeof(tests) / sizeof((tests)[0]); i_++)                             \
				found_ |= (tests)[i_].name && !strcmp((tests)[i_].name, argv[1]);                      \
			if (!found_) {                                                                                 \
				fprintf(stderr, "%s: no test case named %s\n", argv[0], argv[1]);                      \
				return 1;                                                                              \
			}                                                                                              \
			cmocka_set_test_filter(argv[1]);                                                               \
		}                                                                                                      \
		return cmocka_run_group_tests_name(group, tests, NULL, NULL);                                          \
	}

#endif
